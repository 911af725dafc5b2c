/* dfsctl, the real binary, against 3 dfs-master and 3 or 4 dfs-chunkserver processes:
 * byte-identical put/get round trips (0 B, 1 B, block size +-1, ~30 MiB with 1 MiB blocks; 200 MiB
 * with 8 MiB blocks), a tree of 200 files with put -r / get / ls -R, the namespace commands, df,
 * du, fsck, cluster status, a clear failure against a wrong master list; and kill -9 during puts:
 * of the leader during a 200 MiB put (then cluster status shows the new leader) and during a put -r
 * of 1,000 files, of a chunkserver in the pipeline (then fsck finds no block missing). And
 * `dfsctl bench` on a local directory, with no masters at all. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "common/crc32c.h"
#include "common/json.h"

#define BS       (1u << 20)
#define BIG      (30u * 1024 * 1024 + 12345)
#define HUGE     (200u * 1024 * 1024 + 4321) /* with 8 MiB blocks: 26 blocks */
#define HUGE_BS  (8u << 20)
#define NTREE    1000 /* files of the put -r across a leader kill */
#define NTREE_D  20   /* in this many directories */
#define T_LEADER 10000
#define T_CS     20000
#define T_PUT    120000 /* a put observed from the test */
#define CS_ARGS  "--heartbeat-ms 300 --block-size "

struct env {
    struct tc_cluster *c;
    char masters[256], admin[256];
    const char *bs; /* dfsctl's --block-size, as the chunkservers' */
    int ncs, runs;
};

/* ---- running dfsctl ---- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

/* Starts dfsctl with args (NULL-terminated); with defaults the test cluster's --masters,
 * --admin, --block-size (the chunkservers') and --timeout 30 come first. stdout and stderr go to
 * files. */
static pid_t spawn(struct env *e, bool defaults, const char *const *args, char *out_path,
                   char *err_path)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = DFSCTL_BIN;
    if (defaults) {
        const char *d[] = {"--masters",    e->masters, "--admin",   e->admin,
                           "--block-size", e->bs,      "--timeout", "30"};
        for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
            argv[n++] = d[i];
    }
    for (int i = 0; args[i] != NULL; i++) {
        cr_assert_lt(n, 62);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    e->runs++;
    snprintf(out_path, 256, "%s/ctl%d.out", e->c->root, e->runs);
    snprintf(err_path, 256, "%s/ctl%d.err", e->c->root, e->runs);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int er = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || er < 0 || dup2(o, 1) < 0 || dup2(er, 2) < 0)
            _exit(126);
        execv(DFSCTL_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The exit code; stdout and stderr (may be NULL) malloc'd. Fails on a sanitizer report. */
static int finish_run(pid_t pid, const char *out_path, const char *err_path, char **out, char **err)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char *o = slurp(out_path, NULL), *er = slurp(err_path, NULL);
    cr_assert_null(strstr(er, "Sanitizer"), "dfsctl: %s", er);
    cr_assert_null(strstr(er, "runtime error:"), "dfsctl: %s", er);
    cr_assert(WIFEXITED(st), "dfsctl died: %s", er);
    if (out != NULL)
        *out = o;
    else
        free(o);
    if (err != NULL)
        *err = er;
    else
        free(er);
    return WEXITSTATUS(st);
}

static int run_args(struct env *e, bool defaults, char **out, char **err, const char *const *args)
{
    char op[256], ep[256];
    pid_t pid = spawn(e, defaults, args, op, ep);
    return finish_run(pid, op, ep, out, err);
}

#define CTL(e, out, err, ...)                                                                      \
    run_args((e), true, (out), (err), (const char *const[]){__VA_ARGS__, NULL})

/* Runs dfsctl and asserts it succeeded; returns its stdout (caller frees). */
static char *ok(struct env *e, const char *const *args)
{
    char *out, *err;
    int rc = run_args(e, true, &out, &err, args);
    cr_assert_eq(rc, 0, "dfsctl %s %s failed (%d): %s", args[0], args[1] ? args[1] : "", rc, err);
    free(err);
    return out;
}
#define OK(e, ...) ok((e), (const char *const[]){__VA_ARGS__, NULL})

/* ---- local files ---- */

/* Writes size pseudo-random bytes; returns their CRC32C. */
static uint32_t write_random(const char *path, size_t size, uint64_t seed)
{
    uint32_t crc = 0;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    char buf[65536];
    while (size > 0) {
        size_t n = size < sizeof(buf) ? size : sizeof(buf);
        for (size_t i = 0; i < n; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
        }
        cr_assert_eq(fwrite(buf, 1, n, f), n);
        crc = cm_crc32c(crc, buf, n);
        size -= n;
    }
    cr_assert_eq(fclose(f), 0);
    return crc;
}

/* The CRC32C and size of a local file. */
static uint32_t file_crc(const char *path, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    static char buf[1 << 20];
    uint32_t crc = 0;
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        crc = cm_crc32c(crc, buf, n);
        *size += n;
    }
    cr_assert_eq(ferror(f), 0);
    fclose(f);
    return crc;
}

static void assert_crc(const char *path, uint64_t size, uint32_t crc)
{
    uint64_t got_size;
    uint32_t got = file_crc(path, &got_size);
    cr_assert_eq(got_size, size, "%s has %llu bytes, want %llu", path, (unsigned long long)got_size,
                 (unsigned long long)size);
    cr_assert_eq(got, crc, "%s: CRC32C %08x, want %08x", path, got, crc);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void assert_same(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    cr_assert_eq(la, lb, "%s has %zu bytes, %s %zu", a, la, b, lb);
    cr_assert(memcmp(x, y, la) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* ---- the cluster ---- */

static uint64_t leader_u64(struct tc_cluster *c, int leader, const char *obj, const char *field)
{
    cJSON *st = tc_status(c, leader);
    uint64_t v = 0;
    const cJSON *o = st;
    if (st != NULL && obj != NULL)
        o = cJSON_GetObjectItemCaseSensitive(st, obj);
    if (o != NULL)
        cm_json_get_u64(o, field, &v);
    cJSON_Delete(st);
    return v;
}

static int live_chunkservers(struct tc_cluster *c, int leader)
{
    cJSON *st = tc_status(c, leader);
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(st, "chunkservers")) n +=
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive"));
    cJSON_Delete(st);
    return n;
}

static uint64_t term_of(struct tc_cluster *c, int i)
{
    cJSON *st = tc_status(c, i);
    uint64_t term = 0;
    cr_assert_not_null(st);
    cr_assert_eq(cm_json_get_u64(st, "term", &term), 0);
    cJSON_Delete(st);
    return term;
}

/* `dfsctl fsck [-b] path` answered by a leader that counted `live` chunkservers alive before and
 * after it and stayed leader meanwhile: a leader elected during the test (a loaded machine) knows
 * only the heartbeats sent to it, and fsck shows the chunkservers it has not heard from yet as
 * dead. Returns fsck's exit code; *out and *err filled. */
static int fsck_settled(struct env *e, bool blocks, const char *path, int live, char **out,
                        char **err)
{
    uint64_t t0 = tc_now_ms();
    for (;;) {
        int leader = tc_wait_leader(e->c, T_LEADER);
        cr_assert_geq(leader, 0);
        if (live_chunkservers(e->c, leader) == live) {
            uint64_t term = term_of(e->c, leader);
            int rc = blocks ? CTL(e, out, err, "fsck", "-b", path) : CTL(e, out, err, "fsck", path);
            if (tc_wait_leader(e->c, T_LEADER) == leader && term_of(e->c, leader) == term &&
                live_chunkservers(e->c, leader) == live)
                return rc;
            free(*out);
            free(*err);
        }
        cr_assert_lt(tc_now_ms() - t0, T_CS, "the leader does not see %d chunkservers live", live);
        usleep(20000);
    }
}

/* 3 masters (master_args may be NULL) and ncs chunkservers taking blocks of up to bs, all
 * registered at the leader. */
static struct env *start_with(int ncs, const char *bs, const char *master_args)
{
    struct env *e = calloc(1, sizeof(*e));
    cr_assert_not_null(e);
    e->c = calloc(1, sizeof(*e->c));
    cr_assert_not_null(e->c);
    e->bs = bs;
    e->ncs = ncs;
    tc_init(e->c, 3, master_args);
    tc_start_all(e->c);
    char cs_args[64];
    snprintf(cs_args, sizeof(cs_args), CS_ARGS "%s", bs);
    for (int k = 0; k < ncs; k++)
        tc_cs_start(e->c, k, 0, cs_args);
    size_t lm = 0, la = 0;
    for (int i = 0; i < 3; i++) {
        lm += (size_t)snprintf(e->masters + lm, sizeof(e->masters) - lm, "%s127.0.0.1:%u",
                               i ? "," : "", e->c->m[i].client_port);
        la += (size_t)snprintf(e->admin + la, sizeof(e->admin) - la, "%shttp://127.0.0.1:%u",
                               i ? "," : "", e->c->m[i].http_port);
    }
    int leader = tc_wait_leader(e->c, T_LEADER);
    cr_assert_geq(leader, 0);
    uint64_t t0 = tc_now_ms();
    while (live_chunkservers(e->c, leader) < ncs) {
        cr_assert_lt(tc_now_ms() - t0, T_CS, "%d chunkservers did not register", ncs);
        usleep(20000);
        leader = tc_wait_leader(e->c, T_LEADER);
    }
    return e;
}

static struct env *start(void)
{
    return start_with(3, "1M", NULL);
}

static void stop(struct env *e)
{
    tc_destroy(e->c);
    free(e->c);
    free(e);
}

static size_t count_substr(const char *s, const char *sub)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, sub)) != NULL; p += strlen(sub))
        n++;
    return n;
}

static size_t count_lines(const char *s, const char *line)
{
    size_t n = 0, l = strlen(line);
    for (const char *p = s; (p = strstr(p, line)) != NULL; p += l)
        if ((p == s || p[-1] == '\n') && (p[l] == '\n' || p[l] == 0))
            n++;
    return n;
}

Test(dfsctl, files_trees_namespace_and_status, .timeout = 300)
{
    struct env *e = start();
    const char *root = e->c->root;
    char lp[512], gp[512], dp[256], *out, *err;

    /* put/get round trips, byte-identical */
    const size_t sizes[] = {0, 1, BS - 1, BS, BS + 1, BIG};
    OK(e, "mkdir", "/rt");
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(lp, sizeof(lp), "%s/f%zu", root, i);
        snprintf(gp, sizeof(gp), "%s/f%zu.back", root, i);
        snprintf(dp, sizeof(dp), "/rt/f%zu", i);
        write_random(lp, sizes[i], i + 1);
        free(OK(e, "put", lp, dp));
        free(OK(e, "get", dp, gp));
        assert_same(lp, gp);
        total += sizes[i];
    }
    /* put into a directory keeps the name; cat writes the bytes */
    snprintf(lp, sizeof(lp), "%s/f1", root);
    free(OK(e, "put", lp, "/"));
    out = OK(e, "cat", "/f1");
    snprintf(gp, sizeof(gp), "%s/f1", root);
    char *one = slurp(gp, NULL);
    cr_assert_eq(out[0], one[0]);
    free(one);
    free(out);

    /* du and fsck over the round-trip files */
    out = OK(e, "du", "-s", "/rt");
    char want[64];
    snprintf(want, sizeof(want), "%llu\t/rt\n", (unsigned long long)total);
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(fsck_settled(e, false, "/rt", e->ncs, &out, &err), 0, "fsck: %s%s", out, err);
    cr_assert_not_null(strstr(out, "Status: HEALTHY"), "%s", out);
    free(out);
    free(err);

    /* put -r of a tree of 200 small files, get it back, ls -R */
    char tree[300], back[300];
    snprintf(tree, sizeof(tree), "%s/tree", root);
    cr_assert_eq(mkdir(tree, 0755), 0);
    for (int d = 0; d < 10; d++) {
        snprintf(lp, sizeof(lp), "%s/d%d", tree, d);
        cr_assert_eq(mkdir(lp, 0755), 0);
        for (int f = 0; f < 20; f++) {
            char text[64];
            snprintf(lp, sizeof(lp), "%s/d%d/file%03d", tree, d, f);
            snprintf(text, sizeof(text), "dir %d file %d\n", d, f);
            write_text(lp, text);
        }
    }
    free(OK(e, "put", "-r", tree, "/"));
    snprintf(back, sizeof(back), "%s/tree.back", root);
    free(OK(e, "get", "/tree", back));
    for (int d = 0; d < 10; d++)
        for (int f = 0; f < 20; f++) {
            snprintf(lp, sizeof(lp), "%s/d%d/file%03d", tree, d, f);
            snprintf(gp, sizeof(gp), "%s/d%d/file%03d", back, d, f);
            assert_same(lp, gp);
        }
    out = OK(e, "ls", "-R", "/tree");
    cr_assert_eq(count_lines(out, "/tree:"), 1, "%s", out);
    for (int d = 0; d < 10; d++) {
        char hdr[32], name[32];
        snprintf(hdr, sizeof(hdr), "/tree/d%d:", d);
        snprintf(name, sizeof(name), "d%d", d);
        cr_assert_eq(count_lines(out, hdr), 1, "%s missing", hdr);
        cr_assert_eq(count_lines(out, name), 1);
    }
    size_t files = 0;
    for (int f = 0; f < 20; f++) {
        char name[32];
        snprintf(name, sizeof(name), "file%03d", f);
        files += count_lines(out, name);
    }
    cr_assert_eq(files, 200, "ls -R listed %zu files", files);
    free(out);
    out = OK(e, "--json", "ls", "-R", "/tree");
    cJSON *j = NULL;
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    cr_assert_eq(cJSON_GetArraySize(j), 210);
    cJSON_Delete(j);
    free(out);

    /* mkdir -p, mv, ln -s, stat, rm -r */
    free(OK(e, "mkdir", "-p", "/a/b/c"));
    free(OK(e, "mkdir", "-p", "/a/b/c"));
    cr_assert_eq(CTL(e, NULL, &err, "mkdir", "/a"), 1);
    cr_assert_str_eq(err, "dfsctl: mkdir /a: already exists\n");
    free(err);
    free(OK(e, "mv", "/rt/f2", "/a/b/c"));
    free(OK(e, "mv", "/a/b/c/f2", "/a/b/moved"));
    cr_assert_eq(CTL(e, NULL, &err, "stat", "/rt/f2"), 1);
    cr_assert_str_eq(err, "dfsctl: stat /rt/f2: no such file, directory or object\n");
    free(err);
    out = OK(e, "--json", "stat", "/a/b/moved");
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    uint64_t size = 0;
    cr_assert_eq(cm_json_get_u64(j, "size", &size), 0);
    cr_assert_eq(size, BS - 1);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "file");
    cJSON_Delete(j);
    free(out);
    free(OK(e, "ln", "-s", "/a/b/moved", "/lnk"));
    out = OK(e, "--json", "stat", "/lnk");
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "symlink");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "target")->valuestring, "/a/b/moved");
    cJSON_Delete(j);
    free(out);
    snprintf(gp, sizeof(gp), "%s/via-link", root);
    free(OK(e, "get", "/lnk", gp));
    snprintf(lp, sizeof(lp), "%s/f2", root);
    assert_same(lp, gp);
    out = OK(e, "stat", "/a/b/c");
    cr_assert_not_null(strstr(out, "Type: directory"), "%s", out);
    free(out);
    cr_assert_eq(CTL(e, NULL, &err, "rm", "/tree"), 1);
    cr_assert_not_null(strstr(err, "is a directory"), "%s", err);
    free(err);
    free(OK(e, "rm", "-r", "/tree"));
    out = OK(e, "ls", "/");
    cr_assert_eq(count_lines(out, "tree"), 0, "%s", out);
    cr_assert_eq(count_lines(out, "a"), 1, "%s", out);
    cr_assert_eq(count_lines(out, "lnk"), 1, "%s", out);
    free(out);

    /* df */
    out = OK(e, "--json", "df");
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    uint64_t live = 0, cap = 0, nfiles = 0;
    cr_assert_eq(cm_json_get_u64(j, "chunkservers_live", &live), 0);
    cr_assert_eq(cm_json_get_u64(j, "capacity_bytes", &cap), 0);
    cr_assert_eq(cm_json_get_u64(j, "files", &nfiles), 0);
    cr_assert_eq(live, 3);
    cr_assert_gt(cap, 0);
    cr_assert_eq(nfiles, 7, "files: 6 round trips + /f1, got %llu", (unsigned long long)nfiles);
    cJSON_Delete(j);
    free(out);
    free(OK(e, "df"));

    /* cluster status: 3 masters, one leader, 3 chunkservers */
    out = OK(e, "cluster", "status");
    cr_assert_not_null(strstr(out, "LEADER"), "%s", out);
    cr_assert_null(strstr(strstr(out, "LEADER") + 6, "LEADER"), "%s", out);
    free(out);
    out = OK(e, "--json", "cluster", "status");
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    const cJSON *ms = cJSON_GetObjectItem(j, "masters"), *x;
    cr_assert_eq(cJSON_GetArraySize(ms), 3, "%s", out);
    int leaders = 0, followers = 0;
    cJSON_ArrayForEach(x, ms)
    {
        const char *role = cJSON_GetObjectItem(x, "role")->valuestring;
        leaders += strcmp(role, "LEADER") == 0;
        followers += strcmp(role, "FOLLOWER") == 0;
    }
    cr_assert_eq(leaders, 1, "%s", out);
    cr_assert_eq(followers, 2, "%s", out);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "chunkservers")), 3, "%s", out);
    cJSON_Delete(j);
    free(out);

    /* a wrong master list: one clear line and exit 1 within the timeout */
    uint64_t t0 = tc_now_ms();
    int rc = run_args(
        e, false, NULL, &err,
        (const char *const[]){"--masters", "127.0.0.1:1", "--timeout", "3", "ls", "/", NULL});
    uint64_t took = tc_now_ms() - t0;
    cr_assert_eq(rc, 1);
    cr_assert_str_eq(err, "dfsctl: ls /: no master could be reached (masters: 127.0.0.1:1)\n");
    cr_assert_lt(took, 6000, "took %llu ms", (unsigned long long)took);
    free(err);
    /* usage errors exit 2 */
    cr_assert_eq(CTL(e, NULL, NULL, "ls", "-z"), 2);
    cr_assert_eq(CTL(e, NULL, NULL, "frobnicate"), 2);
    cr_assert_eq(CTL(e, NULL, NULL, "mv", "/a"), 2);
    stop(e);
}

/* ---- kill -9 during puts ---- */

/* GET /status of chunkserver k; NULL when it does not answer. Caller frees. */
static cJSON *cs_status(struct tc_cluster *c, int k)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", c->cs[k].port);
    struct cm_http_response r = {0};
    cJSON *j = NULL;
    if (cm_http_get_json(c->http, url, &r) == 0) {
        j = r.json;
        r.json = NULL;
    }
    cm_http_response_clear(&r);
    return j;
}

static uint64_t cs_u64(struct tc_cluster *c, int k, const char *field)
{
    cJSON *st = cs_status(c, k);
    uint64_t v = 0;
    if (st != NULL)
        cm_json_get_u64(st, field, &v);
    cJSON_Delete(st);
    return v;
}

/* Block copies the running chunkservers hold together. */
static uint64_t cs_blocks(struct env *e)
{
    uint64_t n = 0;
    for (int k = 0; k < e->ncs; k++)
        if (e->c->cs[k].pid != 0)
            n += cs_u64(e->c, k, "blocks");
    return n;
}

static void assert_running(pid_t pid, const char *what)
{
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "dfsctl ended %s", what);
}

/* Waits until the chunkservers hold n more block copies than base, the put still running. */
static void wait_stored(struct env *e, pid_t put, uint64_t base, uint64_t n)
{
    uint64_t t0 = tc_now_ms();
    while (cs_blocks(e) < base + n) {
        assert_running(put, "before the chunkservers stored enough of its blocks");
        cr_assert_lt(tc_now_ms() - t0, T_PUT, "the put stored fewer than %llu block copies",
                     (unsigned long long)n);
        usleep(5000);
    }
}

/* The row of the MASTERS table of "cluster status" whose ID column is id, copied to buf. */
static bool master_row(const char *out, unsigned id, char *buf, size_t cap)
{
    char pfx[16];
    const char *end = strstr(out, "\nCHUNKSERVERS");
    snprintf(pfx, sizeof(pfx), "%u ", id);
    for (const char *p = out; p != NULL && (end == NULL || p < end); p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, pfx, strlen(pfx)) == 0) {
            snprintf(buf, cap, "%.*s", (int)strcspn(p, "\n"), p);
            return true;
        }
    }
    return false;
}

/* "cluster status" and its --json say master `leader` leads and master `dead` is unreachable. */
static void assert_cluster_view(struct env *e, int leader, int dead)
{
    char row[256];
    unsigned lid = (unsigned)e->c->m[leader].id, did = (unsigned)e->c->m[dead].id;
    char *out = OK(e, "cluster", "status");
    cr_assert(master_row(out, lid, row, sizeof(row)), "no row for master %u: %s", lid, out);
    cr_assert_not_null(strstr(row, " LEADER "), "master %u is not shown as LEADER: %s", lid, out);
    cr_assert(master_row(out, did, row, sizeof(row)), "no row for master %u: %s", did, out);
    cr_assert_not_null(strstr(row, " UNREACHABLE "), "master %u is not shown unreachable: %s", did,
                       out);
    const char *masters_end = strstr(out, "\nCHUNKSERVERS");
    cr_assert_not_null(masters_end, "%s", out);
    size_t leaders = 0;
    for (const char *p = out; (p = strstr(p, " LEADER ")) != NULL && p < masters_end; p++)
        leaders++;
    cr_assert_eq(leaders, 1, "%s", out);
    free(out);

    out = OK(e, "--json", "cluster", "status");
    cJSON *j = NULL;
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0, "%s", out);
    uint64_t shown = 0;
    cr_assert_eq(cm_json_get_u64(j, "leader", &shown), 0, "%s", out);
    cr_assert_eq(shown, lid, "%s", out);
    const cJSON *ms = cJSON_GetObjectItem(j, "masters"), *x;
    cr_assert_eq(cJSON_GetArraySize(ms), 3, "%s", out);
    int nleaders = 0, seen_leader = 0, seen_dead = 0;
    cJSON_ArrayForEach(x, ms)
    {
        uint64_t id = 0;
        const char *role = cJSON_GetObjectItem(x, "role")->valuestring;
        cr_assert_eq(cm_json_get_u64(x, "id", &id), 0, "%s", out);
        bool reachable = cJSON_IsTrue(cJSON_GetObjectItem(x, "reachable"));
        nleaders += strcmp(role, "LEADER") == 0;
        if (id == lid) {
            seen_leader++;
            cr_assert(reachable, "%s", out);
            cr_assert_str_eq(role, "LEADER", "%s", out);
        } else if (id == did) {
            seen_dead++;
            cr_assert_not(reachable, "%s", out);
            cr_assert_str_eq(role, "UNREACHABLE", "%s", out);
        } else {
            cr_assert(reachable, "%s", out);
            cr_assert_str_eq(role, "FOLLOWER", "%s", out);
        }
    }
    cr_assert_eq(nleaders, 1, "%s", out);
    cr_assert_eq(seen_leader, 1, "%s", out);
    cr_assert_eq(seen_dead, 1, "%s", out);
    cJSON_Delete(j);
    free(out);
}

Test(dfsctl, put_200mib_round_trip_and_leader_kill, .timeout = 500)
{
    struct env *e = start_with(3, "8M", NULL);
    char lp[300], gp[300], op[256], ep[256], *out, *err;
    snprintf(lp, sizeof(lp), "%s/huge", e->c->root);
    snprintf(gp, sizeof(gp), "%s/huge.back", e->c->root);
    const uint32_t crc = write_random(lp, HUGE, 200);
    const uint64_t nblocks = (HUGE + HUGE_BS - 1) / HUGE_BS;

    /* a round trip, compared by CRC32C */
    free(OK(e, "put", lp, "/huge"));
    free(OK(e, "get", "/huge", gp));
    assert_crc(gp, HUGE, crc);
    cr_assert_eq(fsck_settled(e, false, "/huge", e->ncs, &out, &err), 0, "fsck: %s%s", out, err);
    free(err);
    char want[128];
    snprintf(want, sizeof(want), "/huge: %u bytes, %llu blocks: OK\n", HUGE,
             (unsigned long long)nblocks);
    cr_assert_not_null(strstr(out, want), "%s", out);
    cr_assert_not_null(strstr(out, "Status: HEALTHY"), "%s", out);
    free(out);

    /* the same bytes to another file, the leader killed once a third of its blocks are stored
     * on all three chunkservers: placement and the commit go to the new leader */
    int leader = tc_wait_leader(e->c, T_LEADER);
    cr_assert_geq(leader, 0);
    uint64_t base = cs_blocks(e);
    pid_t put = spawn(e, true, (const char *const[]){"put", lp, "/huge2", NULL}, op, ep);
    wait_stored(e, put, base, 3 * (nblocks / 3));
    assert_running(put, "before the kill");
    tc_kill(e->c, leader);
    int rc = finish_run(put, op, ep, NULL, &err);
    cr_assert_eq(rc, 0, "put across the leader kill failed: %s", err);
    free(err);

    /* cluster status shows the failover */
    int now = tc_wait_leader(e->c, T_LEADER);
    cr_assert_geq(now, 0);
    cr_assert_neq(now, leader);
    assert_cluster_view(e, now, leader);

    cr_assert_eq(unlink(gp), 0);
    free(OK(e, "get", "/huge2", gp));
    assert_crc(gp, HUGE, crc);
    stop(e);
}

Test(dfsctl, put_r_of_1000_files_survives_leader_kill, .timeout = 500)
{
    struct env *e = start();
    const char *root = e->c->root;
    char tree[300], back[300], lp[512], gp[512], op[256], ep[256], *out, *err;
    snprintf(tree, sizeof(tree), "%s/many", root);
    snprintf(back, sizeof(back), "%s/many.back", root);
    cr_assert_eq(mkdir(tree, 0755), 0);
    for (int d = 0; d < NTREE_D; d++) {
        snprintf(lp, sizeof(lp), "%s/d%02d", tree, d);
        cr_assert_eq(mkdir(lp, 0755), 0);
    }
    /* file i in directory i % NTREE_D, 1 to 4,000 bytes, every name once */
    for (int i = 0; i < NTREE; i++) {
        snprintf(lp, sizeof(lp), "%s/d%02d/f%04d", tree, i % NTREE_D, i);
        write_random(lp, 1 + (size_t)(i * 7919) % 4000, (uint64_t)i + 1000);
    }
    int leader = tc_wait_leader(e->c, T_LEADER);
    cr_assert_geq(leader, 0);
    uint64_t base = leader_u64(e->c, leader, "namespace", "files");

    pid_t put = spawn(e, true, (const char *const[]){"put", "-r", tree, "/", NULL}, op, ep);
    /* killed once about a third of the files exist */
    uint64_t t0 = tc_now_ms();
    while (leader_u64(e->c, leader, "namespace", "files") < base + NTREE / 3) {
        assert_running(put, "before it created a third of the files");
        cr_assert_lt(tc_now_ms() - t0, T_PUT, "the put created too few files");
        usleep(10000);
    }
    assert_running(put, "before the kill");
    tc_kill(e->c, leader);
    int rc = finish_run(put, op, ep, NULL, &err);
    cr_assert_eq(rc, 0, "put -r across the leader kill failed: %s", err);
    cr_assert_str_eq(err, "");
    free(err);
    cr_assert_geq(tc_wait_leader(e->c, T_LEADER), 0);

    /* every file there once, byte-identical */
    free(OK(e, "get", "/many", back));
    for (int i = 0; i < NTREE; i++) {
        snprintf(lp, sizeof(lp), "%s/d%02d/f%04d", tree, i % NTREE_D, i);
        snprintf(gp, sizeof(gp), "%s/d%02d/f%04d", back, i % NTREE_D, i);
        assert_same(lp, gp);
    }
    out = OK(e, "ls", "-R", "/many");
    cr_assert_eq(count_lines(out, "/many:"), 1, "%s", out);
    for (int d = 0; d < NTREE_D; d++) {
        char hdr[32], name[32];
        snprintf(hdr, sizeof(hdr), "/many/d%02d:", d);
        snprintf(name, sizeof(name), "d%02d", d);
        cr_assert_eq(count_lines(out, hdr), 1, "%s listed %zu times", hdr, count_lines(out, hdr));
        cr_assert_eq(count_lines(out, name), 1, "%s listed %zu times", name,
                     count_lines(out, name));
    }
    for (int i = 0; i < NTREE; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%04d", i);
        cr_assert_eq(count_lines(out, name), 1, "%s listed %zu times", name,
                     count_lines(out, name));
    }
    free(out);
    out = OK(e, "--json", "ls", "-R", "/many");
    cJSON *j = NULL;
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    cr_assert_eq(cJSON_GetArraySize(j), NTREE + NTREE_D);
    cJSON_Delete(j);
    free(out);
    out = OK(e, "--json", "df");
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0);
    uint64_t files = 0;
    cr_assert_eq(cm_json_get_u64(j, "files", &files), 0);
    cr_assert_eq(files, NTREE, "the namespace holds %llu files", (unsigned long long)files);
    cJSON_Delete(j);
    free(out);
    stop(e);
}

Test(dfsctl, put_survives_chunkserver_kill, .timeout = 300)
{
    /* 4 chunkservers: 3 copies stay possible without the killed one, which the masters declare
     * dead after 2 s of silence */
    struct env *e = start_with(4, "1M", "--cs-dead-timeout-s 2");
    const size_t size = 48u * BS + 777, nblocks = 49;
    char lp[300], gp[300], op[256], ep[256], *out, *err;
    snprintf(lp, sizeof(lp), "%s/big", e->c->root);
    snprintf(gp, sizeof(gp), "%s/big.back", e->c->root);
    const uint32_t crc = write_random(lp, size, 44);

    uint64_t base = cs_blocks(e);
    pid_t put = spawn(e, true, (const char *const[]){"put", lp, "/p", NULL}, op, ep);
    wait_stored(e, put, base, 3 * 8);
    /* a chunkserver receiving a block right now: a member of the put's pipeline */
    int victim = -1;
    uint64_t t0 = tc_now_ms();
    while (victim < 0) {
        assert_running(put, "before a chunkserver was seen receiving");
        cr_assert_lt(tc_now_ms() - t0, T_PUT, "no chunkserver was seen receiving a block");
        for (int k = 0; k < e->ncs && victim < 0; k++)
            if (cs_u64(e->c, k, "load") > 0)
                victim = k;
    }
    uint64_t vid = cs_u64(e->c, victim, "id");
    cr_assert_gt(vid, 0);
    tc_cs_kill(e->c, victim);
    assert_running(put, "before the chunkserver kill");
    int rc = finish_run(put, op, ep, NULL, &err);
    cr_assert_eq(rc, 0, "put across the chunkserver kill failed: %s", err);
    free(err);
    free(OK(e, "get", "/p", gp));
    assert_crc(gp, size, crc);

    /* Once the leader counts it dead, fsck sees each block on 2 or 3 live chunkservers (those
     * stored before the kill on the killed one are under-replicated until the masters copy
     * them); none is missing, and the killed one's replicas are marked dead. */
    rc = fsck_settled(e, true, "/p", e->ncs - 1, &out, &err);
    cr_assert_eq(rc, 0, "fsck: %s%s", out, err);
    free(err);
    char want[128], at[64];
    snprintf(want, sizeof(want), "/p: %zu bytes, %zu blocks: ", size, nblocks);
    cr_assert_not_null(strstr(out, want), "%s", out);
    cr_assert_not_null(strstr(out, "Missing blocks: 0\n"), "%s", out);
    cr_assert(strstr(out, "Status: HEALTHY\n") || strstr(out, "Status: UNDER-REPLICATED\n"), "%s",
              out);
    size_t full = count_substr(out, ": 3/3 replicas"), under = count_substr(out, ": 2/3 replicas");
    cr_assert_eq(full + under, nblocks, "%zu blocks on 3, %zu on 2 chunkservers: %s", full, under,
                 out);
    snprintf(at, sizeof(at), "%llu@127.0.0.1:%u", (unsigned long long)vid, e->c->cs[victim].port);
    cr_assert_geq(count_substr(out, at), under, "%s", out);
    for (const char *p = out; (p = strstr(p, at)) != NULL; p++)
        cr_assert_eq(strncmp(p + strlen(at), "(dead)", 6), 0, "%s", out);
    free(out);
    stop(e);
}

/* ---- bench: a local directory, no masters ---- */

/* A temporary directory and no daemon; DFS_MASTERS unset, so a subcommand needing the masters
 * would fail. */
static struct env *start_local(void)
{
    struct env *e = calloc(1, sizeof(*e));
    cr_assert_not_null(e);
    e->c = calloc(1, sizeof(*e->c));
    cr_assert_not_null(e->c);
    tc_init(e->c, 0, NULL);
    unsetenv("DFS_MASTERS");
    unsetenv("DFS_ADMIN");
    return e;
}

/* Names in dir other than "." and "..". */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *x;
    while ((x = readdir(d)) != NULL)
        n += strcmp(x->d_name, ".") != 0 && strcmp(x->d_name, "..") != 0;
    closedir(d);
    return n;
}

static uint64_t jnum(const cJSON *o, const char *field, const char *all)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "no %s in %s", field, all);
    return v;
}

static double jdbl(const cJSON *o, const char *field, const char *all)
{
    double v = -1;
    cr_assert_eq(cm_json_get_double(o, field, &v), 0, "no %s in %s", field, all);
    return v;
}

Test(dfsctl, bench_local_dir_json_and_cleanup, .timeout = 120)
{
    struct env *e = start_local();
    char dir[256], op[256], ep[256], kept[512], path[600], *out, *err;
    snprintf(dir, sizeof(dir), "%s/bench", e->c->root);
    cr_assert_eq(mkdir(dir, 0755), 0);

    int rc = run_args(
        e, false, &out, &err,
        (const char *const[]){"bench", "--json", "-b", "8M", "-s", "200", "-p", "2", dir, NULL});
    cr_assert_eq(rc, 0, "bench failed (%d): %s", rc, err);
    cr_assert_str_eq(err, "", "stderr is not a terminal: no progress expected");
    cJSON *j = NULL;
    cr_assert_eq(cm_json_parse(out, strlen(out), &j), 0, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, dir);
    cr_assert_eq(jnum(j, "threads", out), 2);
    cr_assert_eq(jnum(j, "big_size", out), 8u << 20);
    cr_assert_eq(jnum(j, "small_files", out), 200);
    cr_assert_eq(jnum(j, "small_size", out), 4096);
    const char *names[] = {"big_write",  "big_read",   "small_create",
                           "small_stat", "small_read", "small_unlink"};
    /* ops: 1 MiB calls on the big files, else files; bytes moved */
    const uint64_t ops[] = {16, 16, 200, 200, 200, 200};
    const uint64_t bytes[] = {16u << 20, 16u << 20, 200 * 4096, 0, 200 * 4096, 0};
    const cJSON *ps = cJSON_GetObjectItem(j, "phases");
    cr_assert_eq(cJSON_GetArraySize(ps), 6, "%s", out);
    for (int i = 0; i < 6; i++) {
        const cJSON *p = cJSON_GetArrayItem(ps, i);
        cr_assert_str_eq(cJSON_GetObjectItem(p, "name")->valuestring, names[i], "%s", out);
        cr_assert_eq(jnum(p, "ops", out), ops[i], "%s: %s", names[i], out);
        cr_assert_eq(jnum(p, "bytes", out), bytes[i], "%s: %s", names[i], out);
        cr_assert_gt(jdbl(p, "seconds", out), 0, "%s: %s", names[i], out);
        cr_assert_gt(jdbl(p, "per_sec", out), 0, "%s: %s", names[i], out);
        cr_assert_geq(jdbl(p, "avg_ms", out), 0, "%s: %s", names[i], out);
        cr_assert_eq(jdbl(p, "mib_per_sec", out) > 0, bytes[i] > 0, "%s: %s", names[i], out);
    }
    cJSON_Delete(j);
    free(out);
    free(err);
    cr_assert_eq(dir_entries(dir), 0, "bench left files in %s", dir);

    /* the table; --keep leaves the big file (the small ones were unlinked by their phase) */
    pid_t pid =
        spawn(e, false, (const char *const[]){"bench", "-b", "1M", "-s", "10", "--keep", dir, NULL},
              op, ep);
    rc = finish_run(pid, op, ep, &out, &err);
    cr_assert_eq(rc, 0, "bench --keep failed (%d): %s", rc, err);
    for (int i = 0; i < 6; i++)
        cr_assert_not_null(strstr(out, names[i]), "%s missing: %s", names[i], out);
    cr_assert_not_null(strstr(out, "MiB/s"), "%s", out);
    cr_assert_not_null(strstr(out, "files/s"), "%s", out);
    snprintf(kept, sizeof(kept), "%s/.dfsctl-bench-%ld", dir, (long)pid);
    cr_assert_not_null(strstr(err, kept), "%s", err);
    snprintf(path, sizeof(path), "%s/w0/big", kept);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(st.st_size, 1 << 20);
    snprintf(path, sizeof(path), "%s/w0", kept);
    cr_assert_eq(dir_entries(path), 1, "only the big file stays in %s", path);
    free(out);
    free(err);
    stop(e);
}

Test(dfsctl, bench_fails_clearly, .timeout = 60)
{
    struct env *e = start_local();
    char missing[256], file[256], *out, *err;
    snprintf(missing, sizeof(missing), "%s/no-such-dir", e->c->root);
    int rc = run_args(e, false, &out, &err,
                      (const char *const[]){"bench", "-b", "1M", "-s", "10", missing, NULL});
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert_not_null(strstr(err, missing), "%s", err);
    cr_assert_not_null(strstr(err, "No such file or directory (ENOENT)"), "%s", err);
    free(out);
    free(err);

    snprintf(file, sizeof(file), "%s/a-file", e->c->root);
    write_text(file, "x");
    rc = run_args(e, false, NULL, &err, (const char *const[]){"bench", file, NULL});
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert_not_null(strstr(err, "(ENOTDIR)"), "%s", err);
    free(err);

    /* bad usage exits 2 */
    const char *root = e->c->root;
    cr_assert_eq(run_args(e, false, NULL, NULL, (const char *const[]){"bench", NULL}), 2);
    cr_assert_eq(
        run_args(e, false, NULL, NULL, (const char *const[]){"bench", "-p", "0", root, NULL}), 2);
    cr_assert_eq(
        run_args(e, false, NULL, NULL, (const char *const[]){"bench", "-b", "1X", root, NULL}), 2);
    cr_assert_eq(run_args(e, false, NULL, NULL,
                          (const char *const[]){"bench", "-b", "0", "-s", "0", root, NULL}),
                 2);
    stop(e);
}

Test(dfsctl, bench_sigint_removes_its_directory, .timeout = 120)
{
    struct env *e = start_local();
    char dir[256], big[512], op[256], ep[256];
    snprintf(dir, sizeof(dir), "%s/bench", e->c->root);
    cr_assert_eq(mkdir(dir, 0755), 0);
    /* 4 GiB in 4 KiB writes: far from done when the signal comes */
    pid_t pid = spawn(
        e, false, (const char *const[]){"bench", "-b", "4G", "--block", "4K", "-s", "0", dir, NULL},
        op, ep);
    snprintf(big, sizeof(big), "%s/.dfsctl-bench-%ld/w0/big", dir, (long)pid);
    struct stat st;
    uint64_t t0 = tc_now_ms();
    while (stat(big, &st) != 0 || st.st_size == 0) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "bench ended before writing");
        cr_assert_lt(tc_now_ms() - t0, 30000, "%s was not written", big);
        usleep(1000);
    }
    cr_assert_eq(kill(pid, SIGINT), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char *err = slurp(ep, NULL);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x: %s", status, err);
    cr_assert_not_null(strstr(err, "stopped by SIGINT"), "%s", err);
    cr_assert_null(strstr(err, "Sanitizer"), "%s", err);
    free(err);
    cr_assert_eq(dir_entries(dir), 0, "bench left files in %s", dir);
    stop(e);
}
