/* Fault injection on a real cluster (3 masters, 3 chunkservers, 1 MiB blocks): kill -9 of the
 * FUSE daemon while it writes (every fsynced file survives a remount), SIGSTOP of the leader for
 * longer than the election timeout (it steps down; no write it alone acknowledged exists; the
 * writes it got while frozen are applied at most once), SIGKILL of all three masters at once,
 * twice (nothing acknowledged is lost or applied twice) and a chunkserver whose disk fills up
 * (writes go on elsewhere or fail with ENOSPC; nothing reads back wrong), and 50 kills of the
 * leader under 4 clients' puts and gets (every acknowledged put present or overwritten, none
 * applied twice, the history linearizable by tests/raft's checker). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/dfs.h"
#include "cluster.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"
#include "tests/raft/lincheck.h"

#define T_LEADER_MS 15000
#define T_CS_MS     20000
#define BS          (1u << 20)
#define CS_ARGS     "--block-size 1M --heartbeat-ms 200"

static const struct dfs_fh root = {DFS_ROOT_INO, DFS_ROOT_GEN};

/* ---- helpers ---- */

/* xorshift64*: reproducible bytes from a seed. */
static void rnd_fill(uint8_t *buf, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        buf[i] = (uint8_t)((s * UINT64_C(2685821657736338717)) >> 56);
    }
}

/* 3 masters and ncs chunkservers (started by the caller when ncs is 0). */
static struct tc_cluster *start(int ncs)
{
    struct tc_cluster *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    tc_init(c, 3, NULL);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < ncs; k++)
        tc_cs_start(c, k, 0, CS_ARGS);
    if (ncs > 0)
        tc_wait_cs_alive(c, ncs, NULL, T_CS_MS);
    return c;
}

static void finish(struct tc_cluster *c)
{
    tc_destroy(c);
    free(c);
}

static struct dfs *open_fs(struct tc_cluster *c)
{
    char masters[512];
    struct dfs_options opt = {
        .op_timeout_ms = 60000, .block_size = BS, .replication = 3, .data_timeout_ms = 10000};
    struct dfs *fs = NULL;
    tc_masters(c, masters, sizeof(masters));
    cr_assert_eq(dfs_open(masters, &opt, &fs), 0);
    return fs;
}

/* ---- the mount ---- */

/* Waits up to timeout_ms for child pid; true when it exited (*st set). */
static bool wait_child(pid_t pid, int *st, int timeout_ms)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 || tc_now_ms() >= end)
            return false;
        usleep(20000);
    }
}

TestSuite(fault, .timeout = 240);

/* ---- 1. kill -9 of the FUSE daemon ---- */

#define F_MAX (3u * BS)

/* Sizes of every kind: empty, small, exactly one block, just over, several blocks. */
static size_t fuse_file_size(int i)
{
    switch (i % 6) {
    case 0:
        return 2 * BS + 500000 + (size_t)i;
    case 1:
        return (size_t)(i % 3) * 1000;
    case 2:
        return BS;
    case 3:
        return BS + 1 + (size_t)i * 77;
    default:
        return ((size_t)i * 7919u) % 300000u + 1;
    }
}

/* The writer child: files d<i%4>/f<i> written in pieces, fsynced, and only then logged as
 * "name size crc32c". Each stays open while the next 3 are written, so that only fsync (not
 * close) can have made it durable. Exits when the mount fails under it. Never returns. */
static void fuse_writer(const char *dir, const char *logpath)
{
    int lfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644), open_fds[4] = {-1, -1, -1, -1};
    uint8_t *buf = malloc(F_MAX);
    if (lfd < 0 || buf == NULL)
        _exit(2);
    for (int i = 0;; i++) {
        char name[64], path[400];
        size_t n = fuse_file_size(i), piece = 65536 + (size_t)(i % 5) * 40000;
        rnd_fill(buf, n, (uint64_t)i + 1);
        snprintf(name, sizeof(name), "d%d/f%d", i % 4, i);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0)
            _exit(0);
        for (size_t off = 0; off < n;) {
            size_t want = n - off < piece ? n - off : piece;
            ssize_t w = write(fd, buf + off, want);
            if (w <= 0)
                _exit(0);
            off += (size_t)w;
        }
        if (fsync(fd) != 0)
            _exit(0);
        if (dprintf(lfd, "%s %zu %08x\n", name, n, cm_crc32c(0, buf, n)) < 0)
            _exit(3);
        /* After fsync: close's result does not matter to the record. */
        if (open_fds[i % 4] >= 0)
            close(open_fds[i % 4]);
        open_fds[i % 4] = fd;
    }
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (f == NULL)
        return 0;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

Test(fault, fuse_kill_9_keeps_every_fsynced_file)
{
    struct tc_cluster *c = start(3);
    struct tc_mount m;
    char logpath[300];
    int st;

    tc_mount(c, &m, "mnt", NULL);
    cr_assert_eq(tc_sh("mkdir %s/d0 %s/d1 %s/d2 %s/d3", m.dir, m.dir, m.dir, m.dir), 0);
    snprintf(logpath, sizeof(logpath), "%s/fsynced.log", c->root);
    pid_t w = fork();
    cr_assert_geq(w, 0);
    if (w == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fuse_writer(m.dir, logpath);
    }
    /* Kill the daemon once a good number of files (some multi-block) are fsynced. */
    for (uint64_t end = tc_now_ms() + 120000; count_lines(logpath) < 30;) {
        cr_assert_eq(waitpid(w, &st, WNOHANG), 0, "the writer stopped early: %d", st);
        cr_assert_lt(tc_now_ms(), end, "the writer does not get going (see %s)", m.log);
        usleep(20000);
    }
    cr_assert_eq(kill(m.pid, SIGKILL), 0);
    cr_assert_eq(waitpid(m.pid, &st, 0), m.pid);
    /* The writer fails on the dead mount and stops. */
    cr_assert(wait_child(w, &st, 30000), "the writer hangs on the dead mount");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer: %d", st);
    cr_assert_eq(tc_sh("fusermount3 -u -z %s", m.dir), 0);
    cr_assert_not(tc_mounted(m.dir));

    tc_mount(c, &m, "mnt", NULL);
    FILE *f = fopen(logpath, "r");
    cr_assert_not_null(f);
    char name[64];
    size_t size;
    unsigned crc;
    int checked = 0;
    uint8_t *buf = malloc(F_MAX + 1);
    cr_assert_not_null(buf);
    while (fscanf(f, "%63s %zu %x", name, &size, &crc) == 3) {
        char path[400];
        snprintf(path, sizeof(path), "%s/%s", m.dir, name);
        int fd = open(path, O_RDONLY);
        cr_assert_geq(fd, 0, "fsynced %s is gone: %s", name, strerror(errno));
        size_t got = 0;
        ssize_t r;
        while ((r = read(fd, buf + got, F_MAX + 1 - got)) > 0)
            got += (size_t)r;
        cr_assert_eq(r, 0, "reading %s: %s", name, strerror(errno));
        close(fd);
        cr_assert_eq(got, size, "fsynced %s has %zu bytes, not %zu", name, got, size);
        cr_assert_eq(cm_crc32c(0, buf, got), crc, "fsynced %s has other bytes", name);
        checked++;
    }
    fclose(f);
    free(buf);
    cr_assert_geq(checked, 30);
    /* The remounted file system works. */
    cr_assert_eq(tc_sh("echo after > %s/after && test \"$(cat %s/after)\" = after", m.dir, m.dir),
                 0);
    tc_umount(&m);
    finish(c);
}

/* ---- KV writes with revisions ---- */

static bool retryable(int rc)
{
    return rc == CM_E_NOT_LEADER || rc == CM_E_UNAVAILABLE || rc == CM_E_CONNECT ||
           rc == CM_E_TIMEOUT || rc == CM_E_IO || rc == CM_E_PROTO || rc == CM_E_CANCELED ||
           rc == CM_E_BUSY;
}

/* A put of (client, seq) retried with the same body at every master in turn (starting at *at,
 * which is left at the one that answered) until timeout_ms; *rev gets the revision. Reads only
 * the masters' ports, so it may run while another thread stops and starts them. */
static int kv_put(struct tc_cluster *c, int *at, const char *client, uint64_t seq, const char *key,
                  const char *value, uint64_t *rev, int timeout_ms)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    cJSON *b = cJSON_CreateObject();
    int rc;
    cJSON_AddStringToObject(b, "key", key);
    cJSON_AddStringToObject(b, "value", value);
    cJSON_AddStringToObject(b, "client", client);
    cm_json_add_u64(b, "seq", seq);
    for (;;) {
        cJSON *ans = NULL;
        rc = tc_post_at(c, *at, "/v1/kv/put", b, &ans, NULL);
        if (rc == 0 && cm_json_get_u64(ans, "revision", rev) != 0)
            rc = CM_E_PROTO;
        cJSON_Delete(ans);
        if (rc == 0 || !retryable(rc) || tc_now_ms() >= end)
            break;
        *at = (*at + 1) % c->n;
        if (*at == 0)
            usleep(10000);
    }
    cJSON_Delete(b);
    return rc;
}

/* A linearizable get at the leader: 0 with *value (malloc'd) and *rev, or CM_E_NOENT. */
static int kv_get(struct tc_cluster *c, const char *key, char **value, uint64_t *rev)
{
    cJSON *b = cJSON_CreateObject(), *ans = NULL;
    const char *v;
    cJSON_AddStringToObject(b, "key", key);
    int rc = tc_post(c, "/v1/kv/get", b, &ans, 20000);
    cJSON_Delete(b);
    if (rc == 0 && (cm_json_get_str(ans, "value", 1 << 20, &v, NULL) != 0 ||
                    cm_json_get_u64(ans, "revision", rev) != 0))
        rc = CM_E_PROTO;
    if (rc == 0)
        *value = strdup(v);
    cJSON_Delete(ans);
    return rc;
}

#define KV_MAX 100000

/* Puts w/<seq> = "w-<seq>" for seq 1, 2, ... as client "w" until stopped. */
struct kv_writer {
    struct tc_cluster *c;
    atomic_bool stop;
    atomic_int acked;  /* seqs 1..acked are acknowledged */
    atomic_int failed; /* a put's error (0: none) */
    uint64_t *rev;     /* rev[seq] */
};

static void *kv_writer_run(void *arg)
{
    struct kv_writer *w = arg;
    int at = 0;
    for (uint64_t seq = 1; seq < KV_MAX && !atomic_load(&w->stop); seq++) {
        char key[32], value[32];
        snprintf(key, sizeof(key), "w/%llu", (unsigned long long)seq);
        snprintf(value, sizeof(value), "w-%llu", (unsigned long long)seq);
        int rc = kv_put(w->c, &at, "w", seq, key, value, &w->rev[seq], 30000);
        if (rc != 0) {
            w->failed = rc;
            break;
        }
        atomic_store(&w->acked, (int)seq);
    }
    return NULL;
}

static void wait_acked(struct kv_writer *w, int n, int timeout_ms, const char *what)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&w->acked) < n) {
        cr_assert_eq(w->failed, 0, "a put failed (%s): %s", what, cm_strerror(w->failed));
        cr_assert_lt(tc_now_ms(), end, "no progress %s: %d of %d puts acknowledged", what,
                     atomic_load(&w->acked), n);
        usleep(10000);
    }
}

/* A raw HTTP put written into master port's socket (which a stopped master's kernel accepts);
 * returns the socket. */
static int raw_put(uint16_t port, const char *client, const char *key, const char *value)
{
    char body[256], req[512];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
    int bl = snprintf(body, sizeof(body),
                      "{\"key\":\"%s\",\"value\":\"%s\",\"client\":\"%s\",\"seq\":1}", key, value,
                      client);
    int rl = snprintf(req, sizeof(req),
                      "POST /v1/kv/put HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: "
                      "application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                      port, bl, body);
    cr_assert_eq(write(fd, req, (size_t)rl), rl);
    return fd;
}

/* The answer to raw_put within timeout_ms: its HTTP status (0: none, the connection closed or
 * timed out) and, for a 200, *rev. Closes fd. */
static int raw_answer(int fd, int timeout_ms, uint64_t *rev)
{
    char buf[8192];
    size_t len = 0;
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    int status = 0;
    for (;;) {
        buf[len] = '\0';
        char *hdr_end = strstr(buf, "\r\n\r\n");
        if (hdr_end != NULL) {
            const char *cl = strcasestr(buf, "content-length:");
            size_t want = cl != NULL && cl < hdr_end ? (size_t)atol(cl + 15) : 0;
            if (cl == NULL || (size_t)(hdr_end + 4 - buf) + want <= len)
                break;
        }
        int left = (int)(end - tc_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0 || len + 1 >= sizeof(buf))
            break;
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (hdr_end == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    if (status == 200) {
        cJSON *j = cJSON_Parse(hdr_end + 4);
        cr_assert_eq(cm_json_get_u64(j, "revision", rev), 0, "200 without a revision: %s", buf);
        cJSON_Delete(j);
    }
    return status;
}

static const char *role_of(cJSON *s)
{
    const char *r = NULL;
    if (s == NULL || cm_json_get_str(s, "role", 64, &r, NULL) != 0)
        return "";
    return r;
}

static uint64_t term_of(cJSON *s)
{
    uint64_t t = 0;
    if (s != NULL)
        cm_json_get_u64(s, "term", &t);
    return t;
}

/* Every acknowledged w/<seq> holds its value at the revision of its acknowledgement: present,
 * and not written again since (a second application would carry a later revision). */
static void check_writer(struct tc_cluster *c, struct kv_writer *w)
{
    int n = atomic_load(&w->acked);
    for (int seq = 1; seq <= n; seq++) {
        char key[32], want[32], *v = NULL;
        uint64_t rev = 0;
        snprintf(key, sizeof(key), "w/%d", seq);
        snprintf(want, sizeof(want), "w-%d", seq);
        int rc = kv_get(c, key, &v, &rev);
        cr_assert_eq(rc, 0, "acknowledged %s is lost: %s", key, cm_strerror(rc));
        cr_assert_str_eq(v, want);
        cr_assert_eq(rev, w->rev[seq], "%s: revision %llu, acknowledged at %llu", key,
                     (unsigned long long)rev, (unsigned long long)w->rev[seq]);
        free(v);
    }
    /* A retry of the last put gets the first answer. */
    char key[32], value[32];
    uint64_t rev = 0;
    int at = 0;
    snprintf(key, sizeof(key), "w/%d", n);
    snprintf(value, sizeof(value), "w-%d", n);
    cr_assert_eq(kv_put(c, &at, "w", (uint64_t)n, key, value, &rev, 20000), 0);
    cr_assert_eq(rev, w->rev[n], "a retried put was applied again");
}

/* The number of keys the leader's state machine holds. */
static uint64_t kv_keys(struct tc_cluster *c)
{
    int leader = tc_wait_leader(c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    cJSON *s = tc_status(c, leader);
    uint64_t n = UINT64_MAX;
    cm_json_get_u64(cJSON_GetObjectItemCaseSensitive(s, "kv"), "keys", &n);
    cJSON_Delete(s);
    return n;
}

/* ---- 2. SIGSTOP of the leader ---- */

#define STALE 6

Test(fault, sigstop_leader_steps_down_and_loses_no_acknowledged_write)
{
    struct tc_cluster *c = start(0);
    struct kv_writer w = {.c = c};
    pthread_t th;
    int old = tc_wait_leader(c, T_LEADER_MS), nl = -1, fds[STALE];

    cr_assert_geq(old, 0);
    cJSON *s = tc_status(c, old);
    uint64_t t0 = term_of(s), t_new = 0;
    cJSON_Delete(s);
    w.rev = calloc(KV_MAX, sizeof(*w.rev));
    cr_assert_not_null(w.rev);
    cr_assert_eq(pthread_create(&th, NULL, kv_writer_run, &w), 0);
    wait_acked(&w, 20, 30000, "before the stop");

    tc_signal(c, old, SIGSTOP);
    int at_stop = atomic_load(&w.acked);
    /* Puts only the frozen leader receives: each its own client, so a retry gets the first
     * answer. */
    for (int i = 0; i < STALE; i++) {
        char client[32], key[32];
        snprintf(client, sizeof(client), "stale-%d", i);
        snprintf(key, sizeof(key), "s/%d", i);
        fds[i] = raw_put(c->m[old].client_port, client, key, client);
    }
    /* Frozen beyond the election timeout: the other two elect a leader of a later term and the
     * writer goes on with it. */
    for (uint64_t end = tc_now_ms() + T_LEADER_MS; nl < 0;) {
        for (int i = 0; i < c->n && nl < 0; i++) {
            if (i == old)
                continue;
            s = tc_status(c, i);
            if (strcmp(role_of(s), "LEADER") == 0 && term_of(s) > t0) {
                nl = i;
                t_new = term_of(s);
            }
            cJSON_Delete(s);
        }
        if (nl < 0) {
            cr_assert_lt(tc_now_ms(), end, "no new leader while the leader is stopped");
            usleep(20000);
        }
    }
    wait_acked(&w, at_stop + 20, 40000, "while the old leader is stopped");

    tc_signal(c, old, SIGCONT);
    int at_cont = atomic_load(&w.acked);
    /* The old leader learns of the later term and steps down: it is no longer the leader of
     * term t0 (it may win a later election once back, never term t_new's). */
    for (uint64_t end = tc_now_ms() + T_LEADER_MS;;) {
        s = tc_status(c, old);
        bool leads = strcmp(role_of(s), "LEADER") == 0;
        uint64_t t = term_of(s);
        cJSON_Delete(s);
        cr_assert(!(leads && t == t_new), "two leaders in term %llu", (unsigned long long)t);
        if (t >= t_new && (!leads || t > t_new))
            break;
        cr_assert_lt(tc_now_ms(), end, "the old leader does not step down after SIGCONT");
        usleep(20000);
    }
    /* What the old leader answers to the puts it got while frozen. */
    int status[STALE];
    uint64_t stale_rev[STALE] = {0};
    for (int i = 0; i < STALE; i++)
        status[i] = raw_answer(fds[i], 15000, &stale_rev[i]);
    wait_acked(&w, at_cont + 20, 30000, "after SIGCONT");
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(w.failed, 0, "a put failed: %s", cm_strerror(w.failed));

    check_writer(c, &w);
    /* A frozen put is absent, or present once: acknowledged ones at their revision, and a retry
     * of each (same client and seq) is applied at most once. */
    for (int i = 0; i < STALE; i++) {
        char client[32], key[32], *v = NULL;
        uint64_t rev = 0, rev2 = 0, got = 0;
        int at = 0;
        snprintf(client, sizeof(client), "stale-%d", i);
        snprintf(key, sizeof(key), "s/%d", i);
        int rc = kv_get(c, key, &v, &got);
        cr_assert(rc == 0 || rc == CM_E_NOENT, "%s: %s", key, cm_strerror(rc));
        if (status[i] == 200)
            cr_assert(rc == 0 && got == stale_rev[i], "%s acknowledged at %llu is not there", key,
                      (unsigned long long)stale_rev[i]);
        if (rc == 0)
            cr_assert_str_eq(v, client);
        free(v);
        cr_assert_eq(kv_put(c, &at, client, 1, key, client, &rev, 20000), 0);
        if (rc == 0)
            cr_assert_eq(rev, got, "%s applied twice (revisions %llu and %llu)", key,
                         (unsigned long long)got, (unsigned long long)rev);
        cr_assert_eq(kv_put(c, &at, client, 1, key, client, &rev2, 20000), 0);
        cr_assert_eq(rev2, rev, "%s applied twice on retry", key);
        cr_assert_eq(kv_get(c, key, &v, &got), 0);
        cr_assert_eq(got, rev);
        free(v);
        cr_log_info("frozen put %d: HTTP %d", i, status[i]);
    }
    cr_assert_eq(kv_keys(c), (uint64_t)atomic_load(&w.acked) + STALE);
    free(w.rev);
    finish(c);
}

/* ---- 3. SIGKILL of every master ---- */

#define MK_MAX 100000

/* mkdir /n<i> for i = 0, 1, ... through libdfs until stopped. */
struct mkdir_writer {
    struct dfs *fs;
    atomic_bool stop;
    atomic_int done;   /* n0..n<done-1> are acknowledged */
    atomic_int failed; /* the error of a mkdir (CM_E_EXIST: applied twice or lost its answer) */
};

static void *mkdir_writer_run(void *arg)
{
    struct mkdir_writer *w = arg;
    for (int i = 0; i < MK_MAX && !atomic_load(&w->stop); i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d", i);
        int rc = dfs_mkdir(w->fs, NULL, root, name, 0755, NULL);
        if (rc != 0) {
            w->failed = rc;
            break;
        }
        atomic_store(&w->done, i + 1);
    }
    return NULL;
}

static void wait_done(struct mkdir_writer *w, int n, int timeout_ms, const char *what)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&w->done) < n) {
        cr_assert_eq(w->failed, 0, "mkdir n%d failed (%s): %s", atomic_load(&w->done), what,
                     cm_strerror(w->failed));
        cr_assert_lt(tc_now_ms(), end, "no progress %s: %d of %d", what, atomic_load(&w->done), n);
        usleep(10000);
    }
}

Test(fault, sigkill_of_all_masters_loses_no_acknowledged_operation)
{
    struct tc_cluster *c = start(0);
    struct dfs *fs = open_fs(c);
    struct mkdir_writer w = {.fs = fs};
    struct kv_writer kw = {.c = c};
    pthread_t th, kth;

    kw.rev = calloc(KV_MAX, sizeof(*kw.rev));
    cr_assert_not_null(kw.rev);
    cr_assert_eq(pthread_create(&th, NULL, mkdir_writer_run, &w), 0);
    cr_assert_eq(pthread_create(&kth, NULL, kv_writer_run, &kw), 0);
    wait_done(&w, 40, 30000, "before the kill");
    wait_acked(&kw, 40, 30000, "before the kill");

    /* All three at once, mid-operation, twice. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < c->n; i++)
            tc_signal(c, i, SIGKILL);
        int at_kill = atomic_load(&w.done), kv_at_kill = atomic_load(&kw.acked);
        for (int i = 0; i < c->n; i++)
            tc_kill(c, i);
        tc_start_all(c);
        cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader after the restart");
        /* Both writers carry on (what was in flight at the kill retried with the same seq). */
        wait_done(&w, at_kill + 40, 60000, "after the restart");
        wait_acked(&kw, kv_at_kill + 40, 60000, "after the restart");
    }
    atomic_store(&w.stop, true);
    atomic_store(&kw.stop, true);
    pthread_join(th, NULL);
    pthread_join(kth, NULL);
    cr_assert_eq(w.failed, 0, "mkdir n%d: %s", atomic_load(&w.done), cm_strerror(w.failed));
    cr_assert_eq(kw.failed, 0, "put: %s", cm_strerror(kw.failed));

    /* The root lists exactly n0..n<done-1>, each once. */
    int n = atomic_load(&w.done), listed = 0;
    bool *seen = calloc((size_t)n, sizeof(bool));
    struct dfs_dirpage page = {0};
    uint64_t cookie = 0;
    cr_assert_not_null(seen);
    for (bool eof = false; !eof;) {
        cr_assert_eq(dfs_readdir(fs, NULL, root, cookie, 0, &page), 0);
        for (size_t k = 0; k < page.n; k++) {
            const char *nm = page.entries[k].name;
            if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
                continue;
            int i = nm[0] == 'n' ? atoi(nm + 1) : -1;
            cr_assert(i >= 0 && i < n, "unexpected entry %s (%d made)", nm, n);
            cr_assert_not(seen[i], "%s listed twice", nm);
            seen[i] = true;
            listed++;
        }
        eof = page.eof;
        cookie = page.cookie;
        dfs_dirpage_clear(&page);
    }
    for (int i = 0; i < n; i++)
        cr_assert(seen[i], "acknowledged mkdir n%d is lost", i);
    cr_assert_eq(listed, n);
    free(seen);
    check_writer(c, &kw);
    cr_assert_eq(kv_keys(c), (uint64_t)atomic_load(&kw.acked));
    free(kw.rev);
    dfs_close(fs);
    finish(c);
}

/* ---- 4. A chunkserver's disk fills up ---- */

static char tmpfs_dir[300]; /* unmounted by the fini of the test that mounts it */

static void umount_tmpfs(void)
{
    if (tmpfs_dir[0] != '\0' && umount2(tmpfs_dir, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", tmpfs_dir, strerror(errno));
    tmpfs_dir[0] = '\0';
}

#define FULL_FILES 16
#define MORE_FILES 6
#define FULL_SIZE  (BS + BS / 2)

/* Chunkserver k's dfs_cs_no_space_total: the writes it refused for lack of space. */
static uint64_t cs_refused(struct tc_cluster *c, int k)
{
    char url[96];
    struct cm_http_call call = {.url = url, .flags = CM_HTTP_CALL_RAW};
    struct cm_http_response r = {0};
    unsigned long long v = UINT64_MAX;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", c->cs[k].port);
    cr_assert_eq(cm_http_call(c->http, &call, &r), 0);
    const char *line = strstr(r.body, "\ndfs_cs_no_space_total ");
    cr_assert_not_null(line);
    cr_assert_eq(sscanf(line, "\ndfs_cs_no_space_total %llu", &v), 1);
    cm_http_response_clear(&r);
    return v;
}

/* Writes file name (FULL_SIZE bytes from seed) in one flush: its result, *a its attributes. */
static int write_file(struct dfs *fs, const char *name, uint64_t seed, uint8_t *buf,
                      struct dfs_attr *a)
{
    struct dfs_file *f = NULL;
    int rc = 0;
    cr_assert_eq(dfs_create(fs, NULL, root, name, 0644, DFS_CREATE_EXCL, a, NULL), 0);
    cr_assert_eq(dfs_file_open(fs, NULL, (struct dfs_fh){a->ino, a->gen}, &f), 0);
    rnd_fill(buf, FULL_SIZE, seed);
    for (size_t off = 0; off < FULL_SIZE && rc == 0; off += 256 * 1024)
        rc = dfs_file_write(f, off, buf + off, 256 * 1024);
    int frc = dfs_file_flush(f, NULL);
    dfs_file_close(f);
    return rc != 0 ? rc : frc;
}

/* Reads fh whole with a fresh handle: 0 and the bytes, or the error. */
static int read_all(struct dfs *fs, const struct dfs_attr *a, uint8_t *buf, size_t cap, size_t *len)
{
    struct dfs_file *f = NULL;
    int rc = dfs_file_open(fs, NULL, (struct dfs_fh){a->ino, a->gen}, &f);
    *len = 0;
    if (rc == 0)
        rc = dfs_file_read(f, 0, cap, buf, len);
    dfs_file_close(f);
    return rc;
}

/* Chunkserver 0 stores on an 8 MiB tmpfs; every block wants all three chunkservers. What
 * happens (and is asserted): each file's write either succeeds and reads back identical, or
 * fails with ENOSPC and leaves the file empty -- never a file that reads back wrong. In practice
 * every write succeeds: a pipeline member out of space refuses the block and is left out of it
 * ("stored on 2 of 3"), and once its heartbeat says no_space the masters place blocks on the
 * other two only (it refuses nothing more). With only chunkserver 0 left, a file reads back
 * identical or fails to read, never returns other bytes. */
Test(fault, full_chunkserver_disk_is_avoided_or_enospc, .fini = umount_tmpfs)
{
    struct tc_cluster *c = start(0);
    bool no_space[3] = {false, false, false};
    int ok = 0, nospc = 0, rc;
    uint8_t *buf = malloc(FULL_SIZE), *back = malloc(FULL_SIZE + 1);

    cr_assert(buf != NULL && back != NULL);
    snprintf(tmpfs_dir, sizeof(tmpfs_dir), "%s/cs1", c->root);
    cr_assert_eq(mkdir(tmpfs_dir, 0755), 0);
    cr_assert_eq(mount("tmpfs", tmpfs_dir, "tmpfs", 0, "size=8m"), 0, "mount tmpfs: %s",
                 strerror(errno));
    for (int k = 0; k < 3; k++)
        tc_cs_start(c, k, 0, CS_ARGS);
    cr_assert_str_eq(c->cs[0].dir, tmpfs_dir);
    tc_wait_cs_alive(c, 3, NULL, T_CS_MS);
    struct dfs *fs = open_fs(c);

    int result[FULL_FILES + MORE_FILES];
    struct dfs_attr attr[FULL_FILES + MORE_FILES];
    for (int i = 0; i < FULL_FILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        rc = write_file(fs, name, (uint64_t)i + 100, buf, &attr[i]);
        cr_assert(rc == 0 || rc == CM_E_NOSPC, "writing f%d: %s", i, cm_strerror(rc));
        result[i] = rc;
        rc == 0 ? ok++ : nospc++;
    }
    /* Depending on timing it refused blocks that did not fit (the pipeline then went on
     * without it), or its heartbeat said no_space before any did not fit. */
    cr_log_info("full chunkserver: %llu blocks refused while filling",
                (unsigned long long)cs_refused(c, 0));
    /* The full chunkserver says so. */
    for (uint64_t end = tc_now_ms() + T_CS_MS; !no_space[0];) {
        tc_cs_view(c, 3, NULL, no_space);
        cr_assert_lt(tc_now_ms(), end, "chunkserver 0 never reports no_space");
        usleep(50000);
    }
    cr_assert_not(no_space[1] || no_space[2]);
    /* From now on the masters place blocks on the other two only: it refuses nothing more. */
    uint64_t refused = cs_refused(c, 0);
    for (int i = FULL_FILES; i < FULL_FILES + MORE_FILES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        rc = write_file(fs, name, (uint64_t)i + 100, buf, &attr[i]);
        cr_assert(rc == 0 || rc == CM_E_NOSPC, "writing f%d: %s", i, cm_strerror(rc));
        result[i] = rc;
        rc == 0 ? ok++ : nospc++;
    }
    cr_assert_eq(cs_refused(c, 0), refused, "a chunkserver reporting no_space was placed");
    /* Each file is what was written, or empty after ENOSPC. */
    for (int i = 0; i < FULL_FILES + MORE_FILES; i++) {
        size_t len;
        rnd_fill(buf, FULL_SIZE, (uint64_t)i + 100);
        cr_assert_eq(read_all(fs, &attr[i], back, FULL_SIZE + 1, &len), 0);
        if (result[i] == 0)
            cr_assert(len == FULL_SIZE && memcmp(back, buf, len) == 0, "f%d reads back wrong", i);
        else
            cr_assert_eq(len, 0, "f%d failed with ENOSPC but has %zu bytes", i, len);
    }
    cr_log_info("full chunkserver: %d files written, %d ENOSPC", ok, nospc);
    /* Other chunkservers have room: nothing fails. */
    cr_assert_eq(nospc, 0);

    /* The blocks the masters think the full chunkserver holds are whole. */
    tc_cs_kill(c, 1);
    tc_cs_kill(c, 2);
    int from_full = 0;
    for (int i = 0; i < FULL_FILES + MORE_FILES; i++) {
        size_t len;
        rnd_fill(buf, FULL_SIZE, (uint64_t)i + 100);
        rc = read_all(fs, &attr[i], back, FULL_SIZE + 1, &len);
        if (rc == 0) {
            cr_assert(len == FULL_SIZE && memcmp(back, buf, len) == 0,
                      "f%d reads back wrong from the full chunkserver", i);
            from_full++;
        }
    }
    cr_log_info("full chunkserver: %d files read whole from it alone", from_full);
    cr_assert_gt(from_full, 0);
    dfs_close(fs);
    tc_cs_stop(c, 0);
    umount_tmpfs();
    free(buf);
    free(back);
    finish(c);
}

/* ---- 5. Leader kills under a checked workload ---- */

#define LK_KILLS   50
#define LK_CLIENTS 4
#define LK_KEYS    4
#define LK_MAX_OPS 20000 /* per client: bounds the history the checker searches */
#define LK_ARGS    "--election-timeout-ms 100 --heartbeat-ms 20"

/* One operation of a client: a put of "c<client>-<index>" or a get, with the logical times of
 * its invocation and response (LIN_PENDING: a put that may or may not have been applied). */
struct lk_op {
    uint8_t kind; /* LIN_PUT, LIN_GET */
    uint32_t key;
    char value[32]; /* put: the argument; get: what it returned ("" for no such key) */
    uint64_t invoke, response;
    uint64_t seq; /* put: the client's seq */
    uint64_t rev; /* the revision answered (0: none or no such key) */
};

struct lk_client {
    struct tc_cluster *c;
    int id;
    atomic_bool *stop;
    atomic_uint_fast64_t *clock; /* shared: every invocation and response takes a distinct tick */
    atomic_int *acked;           /* puts acknowledged by all clients */
    atomic_int failed;           /* a non-retryable error (0: none) */
    struct lk_op *ops;
    size_t n; /* read after the join */
};

/* A linearizable get (at the leader, found by trying the masters in turn from *at) until
 * timeout_ms: 0 with value (cap bytes) and *rev, CM_E_NOENT, or the last error. Like kv_put it
 * reads only the masters' ports. */
static int lk_get(struct tc_cluster *c, int *at, const char *key, char *value, size_t cap,
                  uint64_t *rev, int timeout_ms)
{
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    cJSON *b = cJSON_CreateObject();
    int rc;
    cJSON_AddStringToObject(b, "key", key);
    for (;;) {
        cJSON *ans = NULL;
        const char *v;
        rc = tc_post_at(c, *at, "/v1/kv/get", b, &ans, NULL);
        if (rc == 0 && (cm_json_get_str(ans, "value", cap - 1, &v, NULL) != 0 ||
                        cm_json_get_u64(ans, "revision", rev) != 0))
            rc = CM_E_PROTO;
        if (rc == 0)
            snprintf(value, cap, "%s", v);
        cJSON_Delete(ans);
        if (rc == 0 || !retryable(rc) || tc_now_ms() >= end)
            break;
        *at = (*at + 1) % c->n;
        if (*at == 0)
            usleep(10000);
    }
    cJSON_Delete(b);
    return rc;
}

static uint64_t lk_tick(struct lk_client *cl)
{
    return atomic_fetch_add(cl->clock, 1) + 1;
}

/* Client k, step i: put key k, get key k+1, put key k+1, get key k (mod LK_KEYS), so that each
 * key has two writers and two readers. */
static void *lk_client_run(void *arg)
{
    struct lk_client *cl = arg;
    char client[16];
    uint64_t seq = 0;
    int at = cl->id % cl->c->n;
    snprintf(client, sizeof(client), "lk%d", cl->id);
    for (size_t i = 0; i < LK_MAX_OPS && !atomic_load(cl->stop); i++) {
        struct lk_op *op = &cl->ops[i];
        char key[16];
        int rc;
        op->key = (uint32_t)(cl->id + (i % 4 == 1 || i % 4 == 2)) % LK_KEYS;
        snprintf(key, sizeof(key), "lk/%u", op->key);
        if (i % 2 == 0) {
            op->kind = LIN_PUT;
            op->seq = ++seq;
            snprintf(op->value, sizeof(op->value), "c%d-%zu", cl->id, i);
            op->invoke = lk_tick(cl);
            rc = kv_put(cl->c, &at, client, op->seq, key, op->value, &op->rev, 20000);
            op->response = rc == 0 ? lk_tick(cl) : LIN_PENDING;
            if (rc == 0)
                atomic_fetch_add(cl->acked, 1);
            else
                op->rev = 0;
        } else {
            op->kind = LIN_GET;
            op->invoke = lk_tick(cl);
            rc = lk_get(cl->c, &at, key, op->value, sizeof(op->value), &op->rev, 20000);
            op->response = rc == 0 || rc == CM_E_NOENT ? lk_tick(cl) : LIN_PENDING;
            if (rc == CM_E_NOENT)
                op->value[0] = '\0';
        }
        cl->n = i + 1;
        if (rc != 0 && rc != CM_E_NOENT && !retryable(rc)) {
            atomic_store(&cl->failed, rc);
            break;
        }
    }
    return NULL;
}

static void lk_wait_acked(atomic_int *acked, int n, struct lk_client *cls, const char *what)
{
    uint64_t end = tc_now_ms() + 30000;
    while (atomic_load(acked) < n) {
        for (int k = 0; k < LK_CLIENTS; k++)
            cr_assert_eq(atomic_load(&cls[k].failed), 0, "client %d failed (%s): %s", k, what,
                         cm_strerror(atomic_load(&cls[k].failed)));
        cr_assert_lt(tc_now_ms(), end, "no progress %s: %d of %d puts acknowledged", what,
                     atomic_load(acked), n);
        usleep(5000);
    }
}

/* The put whose value v is ("c<client>-<index>"), NULL for "". */
static struct lk_op *lk_put_of(struct lk_client *cls, const char *v)
{
    int k;
    size_t i;
    if (v[0] == '\0')
        return NULL;
    cr_assert_eq(sscanf(v, "c%d-%zu", &k, &i), 2, "a value nobody wrote: %s", v);
    cr_assert(k >= 0 && k < LK_CLIENTS && i < cls[k].n && cls[k].ops[i].kind == LIN_PUT,
              "a value nobody wrote: %s", v);
    return &cls[k].ops[i];
}

/* Every value a get returns carries one revision: that of its put's acknowledgement, or for a
 * put without one the revision it was first read at (a put applied twice would be read at a
 * second, later revision). */
static void lk_check_rev(struct lk_client *cls, const struct lk_op *get)
{
    struct lk_op *put = lk_put_of(cls, get->value);
    if (put == NULL)
        return;
    cr_assert_eq(put->key, get->key, "%s read from key %u", get->value, get->key);
    if (put->rev == 0)
        put->rev = get->rev;
    cr_assert_eq(get->rev, put->rev, "%s read at revision %llu, written at %llu", get->value,
                 (unsigned long long)get->rev, (unsigned long long)put->rev);
}

Test(fault, leader_kills_keep_history_linearizable, .timeout = 400)
{
    struct tc_cluster *c = calloc(1, sizeof(*c));
    struct lk_client cls[LK_CLIENTS];
    pthread_t th[LK_CLIENTS];
    atomic_bool stop = false;
    atomic_uint_fast64_t clock = 0;
    atomic_int acked = 0;
    uint64_t t0 = tc_now_ms();

    cr_assert_not_null(c);
    tc_init(c, 3, LK_ARGS);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < LK_CLIENTS; k++) {
        cls[k] = (struct lk_client){.c = c,
                                    .id = k,
                                    .stop = &stop,
                                    .clock = &clock,
                                    .acked = &acked,
                                    .ops = calloc(LK_MAX_OPS, sizeof(struct lk_op))};
        cr_assert_not_null(cls[k].ops);
        cr_assert_eq(pthread_create(&th[k], NULL, lk_client_run, &cls[k]), 0);
    }
    lk_wait_acked(&acked, 20, cls, "before the first kill");

    /* Kill the leader, wait for the next one, restart the killed master, wait until it follows
     * the new leader and the clients got more writes through; 50 times. */
    for (int round = 0; round < LK_KILLS; round++) {
        int old = tc_wait_leader(c, T_LEADER_MS);
        cr_assert_geq(old, 0, "no leader before kill %d", round + 1);
        tc_kill(c, old);
        cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader after kill %d", round + 1);
        tc_start(c, old);
        cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "master %d does not rejoin", old + 1);
        lk_wait_acked(&acked, atomic_load(&acked) + 2 * LK_CLIENTS, cls, "after a kill");
    }
    atomic_store(&stop, true);
    for (int k = 0; k < LK_CLIENTS; k++)
        pthread_join(th[k], NULL);
    uint64_t t_run = tc_now_ms();
    for (int k = 0; k < LK_CLIENTS; k++) {
        cr_assert_eq(atomic_load(&cls[k].failed), 0, "client %d: %s", k,
                     cm_strerror(atomic_load(&cls[k].failed)));
        cr_assert_lt(cls[k].n, LK_MAX_OPS, "client %d's history filled up before the end", k);
    }

    /* The final state of every key, read after the workload, ends the history. */
    struct lk_op fin[LK_KEYS] = {0};
    int at = 0;
    for (uint32_t k = 0; k < LK_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "lk/%u", k);
        fin[k].kind = LIN_GET;
        fin[k].key = k;
        fin[k].invoke = atomic_fetch_add(&clock, 1) + 1;
        int rc = lk_get(c, &at, key, fin[k].value, sizeof(fin[k].value), &fin[k].rev, 20000);
        cr_assert(rc == 0 || rc == CM_E_NOENT, "%s: %s", key, cm_strerror(rc));
        fin[k].response = atomic_fetch_add(&clock, 1) + 1;
    }

    /* No put applied twice: each value is read at one revision, its acknowledgement's. */
    size_t total = LK_KEYS, puts = 0, pending = 0;
    for (int k = 0; k < LK_CLIENTS; k++) {
        for (size_t i = 0; i < cls[k].n; i++) {
            const struct lk_op *op = &cls[k].ops[i];
            total++;
            puts += op->kind == LIN_PUT;
            pending += op->kind == LIN_PUT && op->response == LIN_PENDING;
        }
    }
    for (int k = 0; k < LK_CLIENTS; k++) {
        for (size_t i = 0; i < cls[k].n; i++) {
            if (cls[k].ops[i].kind == LIN_GET && cls[k].ops[i].response != LIN_PENDING)
                lk_check_rev(cls, &cls[k].ops[i]);
        }
    }
    /* Every acknowledged put is present or overwritten: the revision of a key's final value
     * (the log index that wrote it) is at least that of each put acknowledged on it. */
    for (uint32_t k = 0; k < LK_KEYS; k++) {
        lk_check_rev(cls, &fin[k]);
        for (int j = 0; j < LK_CLIENTS; j++) {
            for (size_t i = 0; i < cls[j].n; i++) {
                const struct lk_op *op = &cls[j].ops[i];
                if (op->kind == LIN_PUT && op->key == k && op->response != LIN_PENDING)
                    cr_assert_geq(fin[k].rev, op->rev,
                                  "lk/%u: %s acknowledged at %llu is lost (final %s at %llu)", k,
                                  op->value, (unsigned long long)op->rev, fin[k].value,
                                  (unsigned long long)fin[k].rev);
            }
        }
    }
    /* A retry of each client's last acknowledged put gets the first answer. */
    for (int k = 0; k < LK_CLIENTS; k++) {
        for (size_t i = cls[k].n; i-- > 0;) {
            const struct lk_op *op = &cls[k].ops[i];
            if (op->kind != LIN_PUT || op->response == LIN_PENDING)
                continue;
            char client[16], key[16];
            uint64_t rev = 0;
            snprintf(client, sizeof(client), "lk%d", k);
            snprintf(key, sizeof(key), "lk/%u", op->key);
            cr_assert_eq(kv_put(c, &at, client, op->seq, key, op->value, &rev, 20000), 0);
            cr_assert_eq(rev, op->rev, "%s applied again on retry", op->value);
            break;
        }
    }

    /* The whole history is linearizable. */
    struct lin_op *h = calloc(total, sizeof(*h));
    size_t n = 0;
    cr_assert_not_null(h);
    for (int k = 0; k <= LK_CLIENTS; k++) {
        size_t cnt = k < LK_CLIENTS ? cls[k].n : LK_KEYS;
        for (size_t i = 0; i < cnt; i++) {
            const struct lk_op *op = k < LK_CLIENTS ? &cls[k].ops[i] : &fin[i];
            h[n++] = (struct lin_op){.kind = op->kind,
                                     .key = op->key,
                                     .value = op->value,
                                     .len = (uint32_t)strlen(op->value),
                                     .invoke = op->invoke,
                                     .response = op->response};
        }
    }
    struct lin_report rep;
    uint64_t t_check = tc_now_ms();
    int lr = lin_check(h, n, 50000000, &rep);
    cr_log_info("leader kills: %d kills in %llu ms; %zu operations (%zu puts, %zu without an "
                "answer), %llu per key at most; checked in %llu ms, %llu states",
                LK_KILLS, (unsigned long long)(t_run - t0), n, puts, pending,
                (unsigned long long)rep.max_key_ops, (unsigned long long)(tc_now_ms() - t_check),
                (unsigned long long)rep.states);
    cr_assert_eq(lr, LIN_OK, "the history of lk/%u is %s", rep.key,
                 lr == LIN_VIOLATION ? "not linearizable" : "too large to check");
    free(h);
    for (int k = 0; k < LK_CLIENTS; k++)
        free(cls[k].ops);
    finish(c);
}
