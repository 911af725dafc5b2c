/* dfs-chunkserver as a process: its flags and exit codes, a crash in the middle of a write
 * (SIGKILL) leaving a temporary that the restart drops before reporting its blocks to a fake
 * master, a three-process pipeline losing its middle member, and a clean SIGTERM. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../test_ports.h"
#include "chunk/cs_proto.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "cs_harness.h"

struct daemon {
    pid_t pid;
    uint16_t port;
    char addr[32];
    char dir[300];
};

static char *root;
static struct fake_master fm;
/* Every daemon started, so teardown can stop those a failed assertion left running. */
static pid_t started[16];
static int nstarted;

static void setup(void)
{
    cm_log_init("test", CM_LOG_ERROR);
    root = th_tmpdir();
    fm_start(&fm);
}

/* pid has been waited for: it is no longer ours to kill. */
static void reaped(pid_t pid)
{
    for (int i = 0; i < nstarted; i++)
        if (started[i] == pid)
            started[i] = 0;
}

static void teardown(void)
{
    for (int i = 0; i < nstarted; i++) {
        if (started[i] > 0 && kill(started[i], SIGKILL) == 0)
            waitpid(started[i], NULL, 0);
    }
    nstarted = 0;
    fm_stop(&fm);
    th_rmrf(root);
    free(root);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 120);

/* Runs the binary with argv (NULL-terminated, without argv[0]); stdout and stderr go to out
 * (may be NULL: the test's stderr). */
static pid_t spawn(char *const *args, const char *out)
{
    char *argv[32];
    int n = 0;
    pid_t pid;

    argv[n++] = (char *)DFS_CHUNKSERVER_BIN;
    for (; args[n - 1] != NULL && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        if (out != NULL) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (nstarted < (int)(sizeof(started) / sizeof(started[0])))
        started[nstarted++] = pid;
    return pid;
}

static int run_rc(char *const *args, const char *out)
{
    int st = 0;
    pid_t pid = spawn(args, out);

    cr_assert_eq(waitpid(pid, &st, 0), pid);
    reaped(pid);
    cr_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static bool answers(void *arg)
{
    struct daemon *d = arg;
    cJSON *st = th_json_get(d->addr, CS_PATH_STATUS);
    bool ok = st != NULL;

    cJSON_Delete(st);
    return ok;
}

static void start(struct daemon *d, int i, bool keep_port)
{
    char listen[64], log[400];

    if (!keep_port) {
        d->port = free_port();
        snprintf(d->dir, sizeof(d->dir), "%s/cs%d", root, i);
    }
    snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%u", d->port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", d->port);
    snprintf(log, sizeof(log), "%s/cs%d.log", root, i);
    char *args[] = {"--addr",
                    listen,
                    "--master-addr",
                    fm.addr,
                    "--storage-dir",
                    d->dir,
                    "--block-size",
                    "1M",
                    "--heartbeat-ms",
                    "100",
                    "--scrub-rate",
                    "0",
                    "--rack",
                    "rack-a",
                    "--log-level",
                    "info",
                    NULL};
    d->pid = spawn(args, log);
    cr_assert(th_wait(answers, d), "chunkserver %d did not come up (see %s)", i, log);
}

static void kill_daemon(struct daemon *d, int sig)
{
    int st = 0;

    kill(d->pid, sig);
    cr_assert_eq(waitpid(d->pid, &st, 0), d->pid);
    reaped(d->pid);
    if (sig == SIGTERM)
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM did not exit cleanly");
    d->pid = 0;
}

Test(daemon, flags_and_exit_codes)
{
    char out[400], file[400], *text;
    FILE *f;
    long n;

    snprintf(out, sizeof(out), "%s/help.txt", root);
    cr_assert_eq(run_rc((char *[]){"--help", NULL}, out), 0);
    f = fopen(out, "r");
    text = calloc(1, 8192);
    n = (long)fread(text, 1, 8191, f);
    fclose(f);
    cr_assert_gt(n, 0);
    const char *flags[] = {"--addr",       "--advertise-addr", "--master-addr", "--storage-dir",
                           "--rack",       "--secret-file",    "--log-level",   "--help",
                           "--block-size", "--scrub-rate",     "--journal-size"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert_not_null(strstr(text, flags[i]), "--help does not list %s", flags[i]);
    free(text);

    snprintf(file, sizeof(file), "%s/plainfile", root);
    f = fopen(file, "w");
    fclose(f);
    cr_assert_eq(run_rc((char *[]){"--bogus", NULL}, out), 2);
    cr_assert_eq(run_rc((char *[]){"--storage-dir", root, NULL}, out), 2); /* no masters */
    cr_assert_eq(run_rc((char *[]){"--master-addr", "x", "--storage-dir", root, NULL}, out), 2);
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, NULL}, out), 2); /* no dir */
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", file, NULL}, out), 2);
    cr_assert_eq(
        run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", "/proc/nope/x", NULL}, out),
        2);
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", root, "--block-size",
                                   "12", NULL},
                        out),
                 2);
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", root,
                                   "--journal-size", "100K", NULL},
                        out),
                 2);
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", root, "--addr",
                                   "nohostport", NULL},
                        out),
                 2);
    cr_assert_eq(run_rc((char *[]){"--master-addr", fm.addr, "--storage-dir", root, "--secret-file",
                                   "/nonexistent", NULL},
                        out),
                 2);
    f = fopen(out, "r");
    text = calloc(1, 8192);
    n = (long)fread(text, 1, 8191, f);
    fclose(f);
    cr_assert_not_null(strstr(text, "--secret-file"), "the message names the flag: %s", text);
    free(text);
}

Test(daemon, second_daemon_on_the_same_directory_exits_2)
{
    struct daemon d;
    char listen[64], out[400];

    start(&d, 0, false);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", free_port());
    snprintf(out, sizeof(out), "%s/second.log", root);
    cr_assert_eq(
        run_rc((char *[]){"--addr", listen, "--master-addr", fm.addr, "--storage-dir", d.dir, NULL},
               out),
        2);
    kill_daemon(&d, SIGTERM);
}

/* Starts a 1 MiB PUT on a raw socket and sends only part of it. */
static int partial_put(const struct daemon *d, uint64_t id)
{
    struct sockaddr_in sa = {0};
    static char data[300000];
    char req[512];
    int fd, len;

    len = snprintf(req, sizeof(req),
                   "PUT /blocks/%016llx HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
                   (unsigned long long)id);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(d->port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(write(fd, req, (size_t)len), len);
    cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    return fd;
}

static bool has_temp(void *arg)
{
    return th_count_temps(arg) > 0;
}

struct report_check {
    uint64_t first, n;
    uint64_t before; /* full reports the fake master had before the restart */
};

static bool reported(void *arg)
{
    struct report_check *r = arg;

    /* A report of the restarted daemon: the first life may have been killed before its own. */
    if (fm_count(&fm, &fm.reports) <= r->before)
        return false;
    for (uint64_t id = r->first; id < r->first + r->n; id++)
        if (!fm_has(&fm, &fm.report, id))
            return false;
    return true;
}

Test(daemon, crash_mid_write_then_restart_drops_the_temporary_and_reports)
{
    struct report_check rc = {.first = 1, .n = 5};
    struct daemon d;
    char data[123456], *got;
    size_t n;
    int fd;

    th_random(data, sizeof(data), 1);
    start(&d, 0, false);
    for (uint64_t id = 1; id <= 5; id++)
        cr_assert_eq(th_put(d.addr, id, data, sizeof(data) - id, NULL, NULL, false, NULL), 0);
    fd = partial_put(&d, 99);
    cr_assert(th_wait(has_temp, d.dir), "no temporary while the write is in progress");
    kill_daemon(&d, SIGKILL);
    close(fd);
    cr_assert_eq(th_count_temps(d.dir), 1, "the crash leaves the temporary behind");

    rc.before = fm_count(&fm, &fm.reports);
    start(&d, 0, true);
    cr_assert_eq(th_count_temps(d.dir), 0, "the restart drops it");
    cr_assert(th_wait(reported, &rc), "the blocks were not reported after the restart");
    cr_assert_not(fm_has(&fm, &fm.report, 99), "the half block is not reported");
    cr_assert_eq(th_get(d.addr, 99, NULL, &got, &n), CM_E_NOENT);
    for (uint64_t id = 1; id <= 5; id++) {
        cr_assert_eq(th_get(d.addr, id, NULL, &got, &n), 0);
        cr_assert(n == sizeof(data) - id && memcmp(got, data, n) == 0);
        free(got);
    }
    kill_daemon(&d, SIGTERM);
}

Test(daemon, pipeline_of_three_processes_survives_a_killed_member)
{
    struct daemon d[3];
    char pipe[128], want[128], data[400000], *got;
    cJSON *ans = NULL;
    size_t n;

    th_random(data, sizeof(data), 2);
    for (int i = 0; i < 3; i++)
        start(&d[i], i, false);
    snprintf(pipe, sizeof(pipe), "%s,%s", d[1].addr, d[2].addr);
    snprintf(want, sizeof(want), "%s,%s,%s", d[0].addr, d[1].addr, d[2].addr);
    cr_assert_eq(th_put(d[0].addr, 1, data, sizeof(data), pipe, NULL, false, &ans), 0);
    cr_assert_str_eq(th_replicas(ans), want);
    cJSON_Delete(ans);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(th_get(d[i].addr, 1, NULL, &got, &n), 0);
        cr_assert(n == sizeof(data) && memcmp(got, data, n) == 0);
        free(got);
    }
    kill_daemon(&d[1], SIGKILL);
    int hold = th_hold_port(d[1].port);
    cr_assert_eq(th_put(d[0].addr, 2, data, sizeof(data), pipe, NULL, false, &ans), 0);
    cr_assert_str_eq(th_replicas(ans), d[0].addr);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ans, CS_F_FAILED)), 2);
    cJSON_Delete(ans);
    /* The client rebuilds the pipeline without the dead member. */
    cr_assert_eq(th_put(d[0].addr, 2, data, sizeof(data), d[2].addr, NULL, false, &ans), 0);
    snprintf(want, sizeof(want), "%s,%s", d[0].addr, d[2].addr);
    cr_assert_str_eq(th_replicas(ans), want);
    cJSON_Delete(ans);
    kill_daemon(&d[0], SIGTERM);
    kill_daemon(&d[2], SIGTERM);
    close(hold);
}
