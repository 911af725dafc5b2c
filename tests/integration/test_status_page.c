/* The masters' status page (GET / on the peer port): headless Chromium renders it from three
 * real masters and the test reads the rendered DOM (ids, classes and data- attributes, never
 * layout): one leader and its term, and after the leader is killed the new one and the change
 * in the recent leader changes; the leader's under-replicated and missing block counts as
 * chunkservers die. Also: the page is public when a secret is configured. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "common/json.h"

#define T_LEADER_MS 10000

/* The rendered DOM of http://127.0.0.1:port/ after Chromium ran its scripts for a few seconds of
 * virtual time (the page refreshes every 1.5 s). malloc'd, NUL-terminated. */
static char *render_page(struct tc_cluster *c, uint16_t port, const char *name)
{
    const char *bin = getenv("DFS_CHROMIUM") ? getenv("DFS_CHROMIUM") : "chromium";
    char out[300], cmd[1400];
    snprintf(out, sizeof(out), "%s/%s.html", c->root, name);
    /* --no-sandbox: Chromium refuses to run as root with its sandbox. A fresh profile directory
     * per run, so parallel tests do not share one. */
    snprintf(cmd, sizeof(cmd),
             "timeout 90 %s --headless --no-sandbox --disable-gpu --no-first-run "
             "--disable-extensions --user-data-dir=%s/chromium-%s --virtual-time-budget=4000 "
             "--dump-dom http://127.0.0.1:%u/ >%s 2>>%s/chromium.log",
             bin, c->root, name, port, out, c->root);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "chromium failed (%d): is it installed (scripts/deps.sh)? see %s", rc,
                 c->root);
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    char *dom = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(dom);
    size_t n = fread(dom, 1, (size_t)st.st_size, f);
    dom[n] = '\0';
    fclose(f);
    return dom;
}

/* The value of attribute name in the start tag at tag (up to its '>'), copied into out. */
static bool tag_attr(const char *tag, const char *name, char *out, size_t cap)
{
    const char *end = strchr(tag, '>');
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=\"", name);
    const char *a = strstr(tag, pat);
    if (end == NULL || a == NULL || a > end)
        return false;
    a += strlen(pat);
    const char *q = strchr(a, '"');
    if (q == NULL || q > end || (size_t)(q - a) >= cap)
        return false;
    memcpy(out, a, (size_t)(q - a));
    out[q - a] = '\0';
    return true;
}

static uint64_t tag_u64(const char *tag, const char *name)
{
    char v[32];
    return tag_attr(tag, name, v, sizeof(v)) ? strtoull(v, NULL, 10) : 0;
}

/* The start tags "<tr class=\"cls\"" in dom, up to max. */
static int rows(const char *dom, const char *cls, const char **out, int max)
{
    char pat[64];
    int n = 0;
    snprintf(pat, sizeof(pat), "<tr class=\"%s\"", cls);
    for (const char *p = strstr(dom, pat); p != NULL && n < max; p = strstr(p + 1, pat))
        out[n++] = p;
    return n;
}

struct master_row {
    uint64_t id, term, leader_id;
    char role[32], reachable[8];
};

static int master_rows(const char *dom, struct master_row *out, int max)
{
    const char *tags[8];
    int n = rows(dom, "master", tags, max < 8 ? max : 8);
    for (int i = 0; i < n; i++) {
        out[i].id = tag_u64(tags[i], "data-id");
        out[i].term = tag_u64(tags[i], "data-term");
        out[i].leader_id = tag_u64(tags[i], "data-leader-id");
        cr_assert(tag_attr(tags[i], "data-role", out[i].role, sizeof(out[i].role)));
        cr_assert(tag_attr(tags[i], "data-reachable", out[i].reachable, sizeof(out[i].reachable)));
    }
    return n;
}

static bool has_leader_change(const char *dom, uint64_t term, uint64_t leader)
{
    const char *tags[32];
    int n = rows(dom, "leader-change", tags, 32);
    for (int i = 0; i < n; i++)
        if (tag_u64(tags[i], "data-term") == term && tag_u64(tags[i], "data-leader-id") == leader)
            return true;
    return false;
}

static uint64_t status_u64(struct tc_cluster *c, int i, const char *field)
{
    cJSON *s = tc_status(c, i);
    uint64_t v = 0;
    if (s != NULL)
        cm_json_get_u64(s, field, &v);
    cJSON_Delete(s);
    return v;
}

static void assert_rendered(const char *dom)
{
    const char *body = strstr(dom, "<body");
    char state[16];
    cr_assert_not_null(body, "no <body> in the dump");
    cr_assert(tag_attr(body, "data-state", state, sizeof(state)));
    cr_assert_str_eq(state, "ok", "the page did not render /status");
}

/* Renders the page of master at (-1: the leader, -2: a follower) while the cluster keeps one
 * leader and term, which it sets in *leader and *term: an election during the render (Chromium's
 * start loads the machine) makes it render again. */
static char *render_stable(struct tc_cluster *c, int at, const char *name, int *leader,
                           uint64_t *term)
{
    for (int tries = 0; tries < 5; tries++) {
        int l = tc_wait_leader(c, T_LEADER_MS);
        cr_assert_geq(l, 0, "no leader");
        uint64_t t = status_u64(c, l, "term");
        int i = at;
        for (int k = 0; at == -2 && k < c->n; k++)
            if (k != l && c->m[k].pid != 0)
                i = k;
        char *dom = render_page(c, c->m[at == -1 ? l : i].http_port, name);
        if (tc_wait_leader(c, T_LEADER_MS) == l && status_u64(c, l, "term") == t) {
            *leader = l;
            *term = t;
            return dom;
        }
        free(dom);
    }
    cr_assert_fail("the cluster kept electing during the renders");
    return NULL;
}

Test(status_page, shows_masters_leader_term_and_leader_changes, .timeout = 300)
{
    struct tc_cluster c;
    /* Longer timeouts than the default 150 ms: Chromium's start loads the machine. */
    tc_init(&c, 3, "--election-timeout-ms 1000 --heartbeat-ms 100");
    tc_start_all(&c);
    int leader;
    uint64_t term;

    /* The leader's page: three masters, each as it reports itself, exactly one LEADER. */
    char *dom = render_stable(&c, -1, "leader", &leader, &term);
    cr_assert_gt(term, 0);
    assert_rendered(dom);
    struct master_row mr[8];
    int n = master_rows(dom, mr, 8);
    cr_assert_eq(n, 3, "masters shown: %d", n);
    int leaders = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(mr[i].reachable, "true", "master %lu", (unsigned long)mr[i].id);
        cr_assert_eq(mr[i].term, term, "master %lu shows term %lu, not %lu",
                     (unsigned long)mr[i].id, (unsigned long)mr[i].term, (unsigned long)term);
        cr_assert_eq(mr[i].leader_id, (uint64_t)leader + 1);
        if (strcmp(mr[i].role, "LEADER") == 0) {
            leaders++;
            cr_assert_eq(mr[i].id, (uint64_t)leader + 1);
        } else {
            cr_assert_str_eq(mr[i].role, "FOLLOWER");
        }
    }
    cr_assert_eq(leaders, 1);
    cr_assert(has_leader_change(dom, term, (uint64_t)leader + 1));
    cr_assert_not_null(strstr(dom, "<p id=\"leader-note\" hidden"), "the leader links to no one");
    free(dom);

    /* Kill the leader; a survivor's page shows the new leader, the dead master unreachable,
     * and both leaderships among the recent changes. */
    tc_kill(&c, leader);
    int next;
    uint64_t term2;
    dom = render_stable(&c, -2, "after", &next, &term2);
    cr_assert_neq(next, leader);
    cr_assert_gt(term2, term);
    assert_rendered(dom);
    n = master_rows(dom, mr, 8);
    cr_assert_eq(n, 3, "masters shown: %d", n);
    leaders = 0;
    for (int i = 0; i < n; i++) {
        if (mr[i].id == (uint64_t)leader + 1) {
            cr_assert_str_eq(mr[i].reachable, "false");
            cr_assert_str_eq(mr[i].role, "UNREACHABLE");
            continue;
        }
        cr_assert_str_eq(mr[i].reachable, "true");
        cr_assert_eq(mr[i].term, term2);
        if (strcmp(mr[i].role, "LEADER") == 0) {
            leaders++;
            cr_assert_eq(mr[i].id, (uint64_t)next + 1);
        }
    }
    cr_assert_eq(leaders, 1);
    cr_assert(has_leader_change(dom, term2, (uint64_t)next + 1), "new leadership listed");
    cr_assert(has_leader_change(dom, term, (uint64_t)leader + 1), "old leadership listed");
    /* This follower links to the new leader's page. */
    const char *a = strstr(dom, "<a id=\"leader-link\"");
    char href[128], want[128];
    cr_assert_not_null(a);
    cr_assert(tag_attr(a, "href", href, sizeof(href)));
    snprintf(want, sizeof(want), "http://127.0.0.1:%u/", c.m[next].http_port);
    cr_assert_str_eq(href, want);
    free(dom);
    tc_destroy(&c);
}

/* GET path on 127.0.0.1:port over a plain socket (no secret header): the whole answer, headers
 * and body, into buf (NUL-terminated). Returns the status code or -1. */
static int raw_get(uint16_t port, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[256];
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)len), len);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    int status = 0;
    return sscanf(buf, "HTTP/1.%*d %d", &status) == 1 ? status : -1;
}

Test(status_page, is_public_html_when_a_secret_is_configured, .timeout = 60)
{
    struct tc_cluster c;
    char args[256], path[200];
    static char buf[256 * 1024];
    tc_init(&c, 1, NULL);
    snprintf(path, sizeof(path), "%s/secret", c.root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("s3cret-value\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "--secret-file %s", path);
    c.extra_args = args;
    tc_start_all(&c);
    uint64_t deadline = tc_now_ms() + 10000;
    int st;
    while ((st = raw_get(c.m[0].http_port, "/", buf, sizeof(buf))) < 0 && tc_now_ms() < deadline)
        usleep(50 * 1000);
    cr_assert_eq(st, 200, "GET / without the secret: %d", st);
    cr_assert_not_null(strcasestr(buf, "\r\nContent-Type: text/html"), "%.300s", buf);
    cr_assert_not_null(strstr(buf, "<table id=\"masters\""), "the page holds the masters table");
    /* The page reads /status, public too and readable from any origin (the peers' pages). */
    deadline = tc_now_ms() + 10000;
    const char *lc = "\"leader_changes_recent\":[{\"term\":";
    while (((st = raw_get(c.m[0].http_port, "/status", buf, sizeof(buf))) != 200 ||
            strstr(buf, lc) == NULL) &&
           tc_now_ms() < deadline)
        usleep(50 * 1000);
    cr_assert_eq(st, 200);
    cr_assert_not_null(strstr(buf, lc), "the single master's leadership is listed: %s", buf);
    cr_assert_not_null(strcasestr(buf, "\r\nAccess-Control-Allow-Origin: *\r\n"), "%.300s", buf);
    tc_destroy(&c);
}

/* ---- under-replicated and missing blocks ---- */

#define T_BLOCKS_MS 40000
#define BLOCK_LEN   (64 * 1024)
#define BLOCKS_ARGS "--election-timeout-ms 1000 --heartbeat-ms 100 --cs-dead-timeout-s 2"
#define CS_ARGS     "--heartbeat-ms 200"

/* /status "blocks" of master i: -1 for null (or absent). */
struct blocks {
    bool ready;
    int64_t referenced, under, missing, ago;
};

static bool status_blocks(struct tc_cluster *c, int i, struct blocks *b)
{
    cJSON *s = tc_status(c, i);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "blocks");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(s);
        return false;
    }
    const char *names[] = {"referenced", "under_replicated", "missing", "computed_ms_ago"};
    int64_t *vals[] = {&b->referenced, &b->under, &b->missing, &b->ago};
    for (int k = 0; k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, names[k]);
        cr_assert(cJSON_IsNumber(v) || cJSON_IsNull(v), "blocks.%s: neither number nor null",
                  names[k]);
        *vals[k] = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "ready");
    cr_assert(cJSON_IsBool(r), "blocks.ready is not a boolean");
    b->ready = cJSON_IsTrue(r);
    cJSON_Delete(s);
    return true;
}

/* Waits until the leader's counts are known and equal to these; returns the leader. Counts are
 * null while not known, and a follower never has any. */
static int wait_blocks(struct tc_cluster *c, int64_t referenced, int64_t under, int64_t missing)
{
    uint64_t deadline = tc_now_ms() + T_BLOCKS_MS;
    struct blocks b = {0};
    for (;;) {
        int l = tc_wait_leader(c, T_LEADER_MS);
        cr_assert_geq(l, 0, "no leader");
        bool got = status_blocks(c, l, &b);
        if (got && b.ready) {
            cr_assert_eq(b.referenced, referenced);
            cr_assert_geq(b.ago, 0, "computed_ms_ago with known counts");
            if (b.under == under && b.missing == missing)
                return l;
        } else if (got) {
            cr_assert(b.under == -1 && b.missing == -1 && b.ago == -1, "counts while not ready");
        }
        for (int i = 0; i < c->n; i++) {
            struct blocks f;
            if (i != l && status_blocks(c, i, &f) && tc_wait_leader(c, T_LEADER_MS) == l)
                cr_assert(!f.ready && f.under == -1 && f.missing == -1,
                          "follower %d reports counts", i);
        }
        cr_assert_lt(tc_now_ms(), deadline,
                     "leader's blocks: ready %d referenced %lld under %lld missing %lld, want "
                     "%lld %lld %lld",
                     b.ready, (long long)b.referenced, (long long)b.under, (long long)b.missing,
                     (long long)referenced, (long long)under, (long long)missing);
        usleep(200 * 1000);
    }
}

/* The Blocks card of a rendered page: its state and the value of each count ("" unknown). */
static void assert_blocks_shown(const char *dom, const char *state, const char *referenced,
                                const char *under, const char *missing)
{
    char v[32];
    const char *dl = strstr(dom, "<dl id=\"blocks\"");
    cr_assert_not_null(dl, "no Blocks card");
    cr_assert(tag_attr(dl, "data-state", v, sizeof(v)));
    cr_assert_str_eq(v, state, "Blocks card state");
    const char *fields[] = {"referenced", "under_replicated", "missing"};
    const char *want[] = {referenced, under, missing};
    for (int k = 0; k < 3; k++) {
        char pat[64];
        snprintf(pat, sizeof(pat), "<dd data-field=\"%s\"", fields[k]);
        const char *dd = strstr(dl, pat);
        cr_assert_not_null(dd, "no %s in the Blocks card", fields[k]);
        cr_assert(tag_attr(dd, "data-value", v, sizeof(v)), "%s has no value", fields[k]);
        cr_assert_str_eq(v, want[k], "%s shown", fields[k]);
    }
}

/* Renders a follower's page (it must take the counts from the leader's /status) once the leader
 * counts as wanted, until one render happened while the leadership held. */
static void render_blocks(struct tc_cluster *c, const char *name, int64_t under, int64_t missing,
                          const char *state)
{
    char u[24], m[24];
    snprintf(u, sizeof(u), "%lld", (long long)under);
    snprintf(m, sizeof(m), "%lld", (long long)missing);
    for (int tries = 0; tries < 5; tries++) {
        int l = wait_blocks(c, 1, under, missing), f = -1;
        uint64_t t = status_u64(c, l, "term");
        for (int k = 0; k < c->n; k++)
            if (k != l && c->m[k].pid != 0)
                f = k;
        char *dom = render_page(c, c->m[f].http_port, name);
        if (tc_wait_leader(c, T_LEADER_MS) == l && status_u64(c, l, "term") == t) {
            assert_rendered(dom);
            assert_blocks_shown(dom, state, "1", u, m);
            free(dom);
            return;
        }
        free(dom);
    }
    cr_assert_fail("the cluster kept electing during the renders");
}

Test(status_page, shows_under_replicated_and_missing_blocks, .timeout = 300)
{
    struct tc_cluster c;
    uint64_t ids[3];
    static char buf[256 * 1024];
    tc_init(&c, 3, BLOCKS_ARGS);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < 3; k++)
        tc_cs_start(&c, k, 0, CS_ARGS);
    tc_wait_cs_alive(&c, 3, ids, T_BLOCKS_MS);
    static uint8_t data[BLOCK_LEN];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31 + 7);
    uint64_t seq = 0;
    tc_write_block_file(&c, 7, &seq, "f", ids, data, sizeof(data));

    /* Three sound copies of the one block: nothing under-replicated or missing, also in the
     * metrics. */
    int l = wait_blocks(&c, 1, 0, 0);
    cr_assert_eq(raw_get(c.m[l].http_port, "/metrics", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(buf, "\ndfs_blocks_referenced 1\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\ndfs_blocks_under_replicated 0\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\ndfs_blocks_missing 0\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\ndfs_master_chunkservers{state=\"live\"} 3\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\ndfs_master_chunkservers{state=\"dead\"} 0\n"), "%s", buf);
    for (int i = 0; i < c.n; i++) {
        if (i == l || raw_get(c.m[i].http_port, "/metrics", buf, sizeof(buf)) != 200 ||
            tc_wait_leader(&c, T_LEADER_MS) != l)
            continue;
        cr_assert_null(strstr(buf, "dfs_blocks_missing"), "a follower has no count: %s", buf);
        /* It hears no heartbeats: it would count every chunkserver dead. */
        cr_assert_null(strstr(buf, "dfs_master_chunkservers"), "a follower counts: %s", buf);
    }
    render_blocks(&c, "blocks-ok", 0, 0, "ok");

    /* kill -9 one holder: past the dead timeout the block has two copies (no fourth chunkserver
     * to copy it to). */
    tc_cs_kill(&c, 2);
    l = wait_blocks(&c, 1, 1, 0);
    cr_assert_eq(raw_get(c.m[l].http_port, "/metrics", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(buf, "\ndfs_blocks_under_replicated 1\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "\ndfs_master_chunkservers{state=\"dead\"} 1\n"), "%s", buf);
    render_blocks(&c, "blocks-under", 1, 0, "under");

    /* And the other two: no live copy left. */
    tc_cs_kill(&c, 0);
    tc_cs_kill(&c, 1);
    wait_blocks(&c, 1, 1, 1);
    render_blocks(&c, "blocks-missing", 1, 1, "missing");
    tc_destroy(&c);
}
