/* The test cluster harness. */
#include "cluster.h"
#include "cs_harness.h"
#include "test_ports.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/json.h"

uint64_t tc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tc_init(struct tc_cluster *c, int n, const char *extra_args)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->root, sizeof(c->root), "/tmp/dfs-tc-XXXXXX");
    cr_assert_not_null(mkdtemp(c->root));
    c->n = n;
    c->extra_args = extra_args;
    for (int i = 0; i < TC_MAX_MASTERS; i++) {
        c->m[i].id = i + 1;
        c->m[i].client_port = free_port();
        c->m[i].http_port = free_port();
        snprintf(c->m[i].dir, sizeof(c->m[i].dir), "%s/m%d", c->root, i + 1);
        snprintf(c->m[i].host, sizeof(c->m[i].host), "127.0.0.1");
    }
    struct cm_http_client_config cc = {.connect_timeout_ms = 300, .timeout_ms = 3000};
    cr_assert_eq(cm_http_client_new(&cc, &c->http), 0);
}

void tc_start(struct tc_cluster *c, int i)
{
    struct tc_master *m = &c->m[i];
    char peers[1024] = "", args[2048];
    for (int k = 0; k < c->n; k++) {
        if (k == i)
            continue;
        size_t l = strlen(peers);
        snprintf(peers + l, sizeof(peers) - l, "%shttp://%s:%u", l ? "," : "--peers ", c->m[k].host,
                 c->m[k].http_port);
    }
    char netns[64] = "";
    if (m->netns[0] != '\0') /* ip netns exec execs the command: the pid stays the master's */
        snprintf(netns, sizeof(netns), "ip netns exec %s ", m->netns);
    snprintf(args, sizeof(args),
             "exec %s%s --id %d --addr %s:%u --http-port %u --http-bind %s "
             "%s --storage-dir %s --log-level %s %s %s >/dev/null 2>>%s/m%d.log",
             netns, DFS_MASTER_BIN, m->id, m->host, m->client_port, m->http_port, m->host, peers,
             m->dir, getenv("TC_LOG") ? "debug" : "info", m->join ? "--join" : "",
             c->extra_args ? c->extra_args : "", c->root, m->id);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Die with the test: a failed assertion must not leave masters running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", args, (char *)NULL);
        _exit(127);
    }
    m->pid = pid;
}

void tc_start_all(struct tc_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        tc_start(c, i);
}

void tc_cs_start(struct tc_cluster *c, int k, int racks, const char *extra_args)
{
    struct tc_chunkserver *cs = &c->cs[k];
    char masters[1024] = "", rack[32] = "", args[2048];
    if (cs->port == 0) {
        char root[sizeof(c->root)];
        memcpy(root, c->root, sizeof(root)); /* both live in *c: no overlap for snprintf */
        cs->port = free_port();
        snprintf(cs->dir, sizeof(cs->dir), "%s/cs%d", root, k + 1);
    }
    for (int i = 0; i < c->n; i++) {
        size_t l = strlen(masters);
        snprintf(masters + l, sizeof(masters) - l, "%s%s:%u", l ? "," : "", c->m[i].host,
                 c->m[i].client_port);
    }
    if (racks > 0)
        snprintf(rack, sizeof(rack), "--rack r%d", k % racks);
    snprintf(args, sizeof(args),
             "exec %s --addr 127.0.0.1:%u --master-addr %s --storage-dir %s %s --log-level %s "
             "%s >/dev/null 2>>%s/cs%d.log",
             DFS_CHUNKSERVER_BIN, cs->port, masters, cs->dir, rack,
             getenv("TC_LOG") ? "debug" : "info", extra_args ? extra_args : "", c->root, k + 1);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", args, (char *)NULL);
        _exit(127);
    }
    cs->pid = pid;
}

static void cs_signal_wait(struct tc_cluster *c, int k, int sig)
{
    struct tc_chunkserver *cs = &c->cs[k];
    if (cs->pid == 0)
        return;
    kill(cs->pid, sig);
    int st;
    waitpid(cs->pid, &st, 0);
    cs->pid = 0;
}

void tc_cs_kill(struct tc_cluster *c, int k)
{
    cs_signal_wait(c, k, SIGKILL);
}

void tc_cs_stop(struct tc_cluster *c, int k)
{
    cs_signal_wait(c, k, SIGTERM);
}

static void signal_wait(struct tc_cluster *c, int i, int sig)
{
    struct tc_master *m = &c->m[i];
    if (m->pid == 0)
        return;
    kill(m->pid, sig);
    int st;
    waitpid(m->pid, &st, 0);
    m->pid = 0;
}

void tc_kill(struct tc_cluster *c, int i)
{
    signal_wait(c, i, SIGKILL);
}

void tc_stop(struct tc_cluster *c, int i)
{
    signal_wait(c, i, SIGTERM);
}

void tc_signal(struct tc_cluster *c, int i, int sig)
{
    if (c->m[i].pid != 0)
        kill(c->m[i].pid, sig);
}

/* Fails the test when a master's log holds a sanitizer report (masters stopped with SIGTERM
 * run their leak check at exit). */
static void check_logs(struct tc_cluster *c)
{
    for (int i = 0; i < TC_MAX_MASTERS + TC_MAX_CHUNKSERVERS; i++) {
        char path[300], line[512];
        if (i < TC_MAX_MASTERS)
            snprintf(path, sizeof(path), "%s/m%d.log", c->root, i + 1);
        else
            snprintf(path, sizeof(path), "%s/cs%d.log", c->root, i - TC_MAX_MASTERS + 1);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:")) {
                fclose(f);
                setenv("TC_KEEP", "1", 1);
                cr_assert(0, "sanitizer report in %s: %s", path, line);
                return;
            }
        }
        fclose(f);
    }
}

void tc_destroy(struct tc_cluster *c)
{
    for (int k = 0; k < TC_MAX_CHUNKSERVERS; k++)
        tc_cs_stop(c, k);
    for (int i = 0; i < TC_MAX_MASTERS; i++)
        tc_stop(c, i);
    check_logs(c);
    cm_http_client_free(c->http);
    if (getenv("TC_KEEP") == NULL) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", c->root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", c->root);
    } else {
        fprintf(stderr, "cluster kept in %s\n", c->root);
    }
}

cJSON *tc_status(struct tc_cluster *c, int i)
{
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/status", c->m[i].host, c->m[i].http_port);
    struct cm_http_response r = {0};
    if (cm_http_get_json(c->http, url, &r) != 0) {
        cm_http_response_clear(&r);
        return NULL;
    }
    cJSON *j = r.json;
    r.json = NULL;
    cm_http_response_clear(&r);
    return j;
}

int tc_wait_leader(struct tc_cluster *c, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    while (tc_now_ms() < deadline) {
        int leader = -1, agree = 0, running = 0;
        uint64_t lid = 0, term = 0;
        for (int i = 0; i < TC_MAX_MASTERS; i++) {
            if (c->m[i].pid == 0)
                continue;
            running++;
            cJSON *s = tc_status(c, i);
            uint64_t l = 0, t = 0;
            if (s != NULL && cm_json_get_u64(s, "leader_id", &l) == 0 &&
                cm_json_get_u64(s, "term", &t) == 0 && l != 0) {
                if (lid == 0) {
                    lid = l;
                    term = t;
                }
                if (l == lid && t == term)
                    agree++;
            }
            cJSON_Delete(s);
        }
        if (lid != 0 && agree == running) {
            leader = (int)lid - 1;
            if (c->m[leader].pid != 0)
                return leader;
        }
        usleep(20 * 1000);
    }
    return -1;
}

static int post(struct tc_cluster *c, const char *host, uint16_t port, const char *path,
                cJSON *body, struct cm_http_response *r)
{
    char url[160];
    snprintf(url, sizeof(url), "http://%s:%u%s", host, port, path);
    int rc = cm_http_post_json(c->http, url, body, r);
    return rc;
}

static int hint_index(struct tc_cluster *c, const struct cm_http_response *r)
{
    const char *hint = NULL;
    if (r->error == NULL || cm_json_get_str(r->error, "leader_hint", 64, &hint, NULL) != 0)
        return -1;
    const char *colon = strrchr(hint, ':');
    if (colon == NULL)
        return -1;
    unsigned port = (unsigned)atoi(colon + 1);
    for (int i = 0; i < TC_MAX_MASTERS; i++)
        if (c->m[i].client_port == port)
            return i;
    return -1;
}

static int post_hint(struct tc_cluster *c, int i, const char *path, const cJSON *body,
                     cJSON **answer, int *status, int *hint)
{
    struct cm_http_response r = {0};
    int rc = post(c, c->m[i].host, c->m[i].client_port, path, (cJSON *)body, &r);
    if (status != NULL)
        *status = r.status;
    if (hint != NULL)
        *hint = rc == CM_E_NOT_LEADER ? hint_index(c, &r) : -1;
    if (answer != NULL) {
        *answer = rc == 0 ? r.json : NULL;
        if (rc == 0)
            r.json = NULL;
    }
    cm_http_response_clear(&r);
    return rc;
}

static int put_at(struct tc_cluster *c, int i, const char *client, uint64_t seq, const char *key,
                  const char *value, uint64_t *revision, int *hint)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "key", key);
    cJSON_AddStringToObject(b, "value", value);
    cJSON_AddStringToObject(b, "client", client);
    cm_json_add_u64(b, "seq", seq);
    struct cm_http_response r = {0};
    int rc = post(c, c->m[i].host, c->m[i].client_port, "/v1/kv/put", b, &r);
    cJSON_Delete(b);
    if (rc == 0 && revision != NULL)
        cm_json_get_u64(r.json, "revision", revision);
    if (hint != NULL)
        *hint = rc == CM_E_NOT_LEADER ? hint_index(c, &r) : -1;
    cm_http_response_clear(&r);
    return rc;
}

int tc_put_at(struct tc_cluster *c, int i, const char *client, uint64_t seq, const char *key,
              const char *value, uint64_t *revision)
{
    return put_at(c, i, client, seq, key, value, revision, NULL);
}

int tc_put(struct tc_cluster *c, const char *client, uint64_t seq, const char *key,
           const char *value, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    int i = 0, rc = CM_E_TIMEOUT;
    while (tc_now_ms() < deadline) {
        if (c->m[i].pid != 0) {
            int hint = -1;
            rc = put_at(c, i, client, seq, key, value, NULL, &hint);
            if (rc == 0)
                return 0;
            if (rc == CM_E_NOT_LEADER && hint >= 0 && c->m[hint].pid != 0) {
                i = hint;
                continue;
            }
        }
        i = (i + 1) % TC_MAX_MASTERS;
        if (i == 0)
            usleep(10 * 1000);
    }
    return rc;
}

int tc_get_at(struct tc_cluster *c, int i, const char *key, bool follower_read, char **value)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "key", key);
    cJSON_AddBoolToObject(b, "follower_read", follower_read);
    struct cm_http_response r = {0};
    int rc = post(c, c->m[i].host, c->m[i].client_port, "/v1/kv/get", b, &r);
    cJSON_Delete(b);
    const char *v;
    if (rc == 0 && cm_json_get_str(r.json, "value", 1 << 20, &v, NULL) == 0)
        *value = strdup(v);
    cm_http_response_clear(&r);
    return rc;
}

int tc_get(struct tc_cluster *c, const char *key, char **value, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    int rc = CM_E_TIMEOUT;
    while (tc_now_ms() < deadline) {
        for (int i = 0; i < TC_MAX_MASTERS; i++) {
            if (c->m[i].pid == 0)
                continue;
            rc = tc_get_at(c, i, key, false, value);
            if (rc == 0 || rc == CM_E_NOENT)
                return rc;
        }
        usleep(10 * 1000);
    }
    return rc;
}

int tc_admin(struct tc_cluster *c, int i, const char *path, const char *json)
{
    cJSON *b = cJSON_Parse(json);
    struct cm_http_response r = {0};
    int rc = post(c, c->m[i].host, c->m[i].http_port, path, b, &r);
    cJSON_Delete(b);
    cm_http_response_clear(&r);
    return rc;
}

int tc_post_at(struct tc_cluster *c, int i, const char *path, const cJSON *body, cJSON **answer,
               int *status)
{
    return post_hint(c, i, path, body, answer, status, NULL);
}

static bool retryable(int rc)
{
    return rc == CM_E_NOT_LEADER || rc == CM_E_UNAVAILABLE || rc == CM_E_CONNECT ||
           rc == CM_E_TIMEOUT || rc == CM_E_IO || rc == CM_E_PROTO || rc == CM_E_CANCELED ||
           rc == CM_E_BUSY;
}

int tc_post(struct tc_cluster *c, const char *path, const cJSON *body, cJSON **answer,
            int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    int i = 0, rc = CM_E_TIMEOUT;
    if (answer != NULL)
        *answer = NULL;
    while (tc_now_ms() < deadline) {
        if (c->m[i].pid != 0) {
            int hint = -1;
            rc = post_hint(c, i, path, body, answer, NULL, &hint);
            if (!retryable(rc))
                return rc;
            if (rc == CM_E_NOT_LEADER && hint >= 0 && c->m[hint].pid != 0) {
                i = hint;
                continue;
            }
        }
        i = (i + 1) % TC_MAX_MASTERS;
        if (i == 0)
            usleep(10 * 1000);
    }
    return rc;
}

void tc_masters(struct tc_cluster *c, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < c->n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s:%u", i > 0 ? "," : "", c->m[i].host,
                                c->m[i].client_port);
}

int tc_cs_view(struct tc_cluster *c, int ncs, uint64_t *ids, bool *no_space)
{
    int leader = tc_wait_leader(c, 10000), alive = 0;
    cJSON *s = leader >= 0 ? tc_status(c, leader) : NULL;
    const cJSON *x;

    if (ids != NULL)
        memset(ids, 0, (size_t)ncs * sizeof(*ids));
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "chunkservers"))
    {
        const char *addr = NULL;
        uint64_t id = 0;
        cm_json_get_str(x, "addr", 256, &addr, NULL);
        cm_json_get_u64(x, "id", &id);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive")))
            continue;
        alive++;
        for (int k = 0; addr != NULL && k < ncs; k++) {
            char want[32];
            snprintf(want, sizeof(want), "127.0.0.1:%u", c->cs[k].port);
            if (strcmp(addr, want) != 0)
                continue;
            if (ids != NULL)
                ids[k] = id;
            if (no_space != NULL)
                no_space[k] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "no_space"));
        }
    }
    cJSON_Delete(s);
    return alive;
}

void tc_wait_cs_alive(struct tc_cluster *c, int ncs, uint64_t *ids, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms, buf[TC_MAX_CHUNKSERVERS];

    cr_assert_leq(ncs, TC_MAX_CHUNKSERVERS);
    if (ids == NULL)
        ids = buf;
    for (;;) {
        bool all = tc_cs_view(c, ncs, ids, NULL) == ncs;
        for (int k = 0; k < ncs; k++)
            all = all && ids[k] != 0;
        if (all)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "the leader does not see %d live chunkservers", ncs);
        usleep(50 * 1000);
    }
}

cJSON *tc_post_fmt(struct tc_cluster *c, const char *path, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cJSON *b = cJSON_Parse(buf), *a = NULL;
    cr_assert_not_null(b, "bad test JSON %s", buf);
    int rc = tc_post(c, path, b, &a, 10000);
    cJSON_Delete(b);
    cr_assert_eq(rc, 0, "%s %s: %s", path, buf, cm_strerror(rc));
    return a;
}

static uint64_t json_u64(const cJSON *o, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "field %s", field);
    return v;
}

uint64_t tc_write_block_file(struct tc_cluster *c, uint64_t client, uint64_t *seq, const char *name,
                             const uint64_t ids[3], const void *data, size_t len)
{
    cJSON *a = tc_post_fmt(c, "/v1/fs/create",
                           "{\"client\":%llu,\"seq\":%llu,\"parent\":1,\"pgen\":1,\"name\":\"%s\","
                           "\"mode\":420,\"excl\":true}",
                           (unsigned long long)client, (unsigned long long)++*seq, name);
    const cJSON *attr = cJSON_GetObjectItemCaseSensitive(a, "attr");
    uint64_t ino = json_u64(attr, "ino"), gen = json_u64(attr, "gen");
    cJSON_Delete(a);
    a = tc_post_fmt(c, "/v1/fs/alloc-blocks", "{\"client\":%llu,\"seq\":%llu,\"count\":1}",
                    (unsigned long long)client, (unsigned long long)++*seq);
    uint64_t block = json_u64(a, "value");
    cJSON_Delete(a);
    char url[256];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%u/blocks/%016llx?pipeline=127.0.0.1:%u,127.0.0.1:%u", c->cs[0].port,
             (unsigned long long)block, c->cs[1].port, c->cs[2].port);
    struct cm_http_call call = {.method = "PUT", .url = url, .body = data, .body_len = len};
    struct cm_http_response r = {0};
    cr_assert_eq(cm_http_call(c->http, &call, &r), 0, "block PUT");
    uint64_t crc = json_u64(r.json, "crc32c");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "failed")), 0,
                 "pipeline incomplete");
    cm_http_response_clear(&r);
    a = tc_post_fmt(c, "/v1/fs/commit",
                    "{\"client\":%llu,\"seq\":%llu,\"ino\":%llu,\"gen\":%llu,\"off\":0,\"len\":%zu,"
                    "\"size\":%zu,\"blocks\":[{\"id\":%llu,\"len\":%zu,\"crc32c\":%llu,"
                    "\"replicas\":[%llu,%llu,%llu]}]}",
                    (unsigned long long)client, (unsigned long long)++*seq, (unsigned long long)ino,
                    (unsigned long long)gen, len, len, (unsigned long long)block, len,
                    (unsigned long long)crc, (unsigned long long)ids[0], (unsigned long long)ids[1],
                    (unsigned long long)ids[2]);
    cJSON_Delete(a);
    return block;
}

void tc_cs_block_path(struct tc_cluster *c, int k, uint64_t block, char *out, size_t cap)
{
    th_block_path(c->cs[k].dir, block, out, cap);
}

uint64_t tc_cs_metric(struct tc_cluster *c, int k, const char *name)
{
    char url[128];
    size_t len = strlen(name);
    struct cm_http_response r = {0};

    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", c->cs[k].port);
    struct cm_http_call call = {.url = url, .flags = CM_HTTP_CALL_RAW};
    int rc = cm_http_call(c->http, &call, &r);
    cr_assert_eq(rc, 0, "GET %s: %s", url, cm_strerror(rc));
    for (const char *line = r.body; line != NULL && *line != '\0';) {
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            char *end;
            unsigned long long v = strtoull(line + len + 1, &end, 10);
            cr_assert(end > line + len + 1 && (*end == '\n' || *end == '\0'),
                      "%s on chunkserver %d: not an unsigned integer", name, k);
            cm_http_response_clear(&r);
            return v;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    cr_assert_fail("no %s in chunkserver %d's metrics", name, k);
    return 0;
}

bool tc_log_has(struct tc_cluster *c, int i, const char *first, const char *then)
{
    char path[300], line[2048];
    bool found = false;

    snprintf(path, sizeof(path), "%s/m%d.log", c->root, c->m[i].id);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, first);
        found = at != NULL && (then == NULL || strstr(at + strlen(first), then) != NULL);
    }
    fclose(f);
    return found;
}

bool tc_wait_log(struct tc_cluster *c, int i, const char *first, const char *then, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    bool found;

    while (!(found = tc_log_has(c, i, first, then)) && tc_now_ms() < deadline)
        usleep(20 * 1000);
    return found;
}

int tc_sh(const char *fmt, ...)
{
    char body[4096], cmd[4300];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "bash -c 'set -eo pipefail; %s'", body);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

bool tc_mounted(const char *dir)
{
    struct stat a, b;
    char parent[320];

    snprintf(parent, sizeof(parent), "%s/..", dir);
    return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

void tc_mount(struct tc_cluster *c, struct tc_mount *m, const char *name, const char *extra)
{
    static int mounts;
    char cmd[2048], masters[512];

    tc_masters(c, masters, sizeof(masters));
    snprintf(m->dir, sizeof(m->dir), "%s/%s", c->root, name);
    snprintf(m->log, sizeof(m->log), "%s/%s.%d.log", c->root, name, ++mounts);
    cr_assert(mkdir(m->dir, 0755) == 0 || errno == EEXIST);
    snprintf(cmd, sizeof(cmd),
             "exec %s %s %s -f -o block_size=1048576,allow_other,attr_timeout=0.5,entry_timeout="
             "0.5,log_level=info%s%s >%s 2>&1",
             DFS_FUSE_BIN, masters, m->dir, extra ? "," : "", extra ? extra : "", m->log);
    m->pid = fork();
    cr_assert_geq(m->pid, 0);
    if (m->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    uint64_t end = tc_now_ms() + 20000;
    while (!tc_mounted(m->dir)) {
        int st;
        cr_assert_eq(waitpid(m->pid, &st, WNOHANG), 0, "dfs exited before mounting (see %s)",
                     m->log);
        cr_assert_lt(tc_now_ms(), end, "%s not mounted within 20 s", m->dir);
        usleep(20000);
    }
}

/* Fails on a sanitizer report in a log. */
static void check_log(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        cr_assert(strstr(line, "Sanitizer") == NULL && strstr(line, "runtime error:") == NULL,
                  "sanitizer report in %s: %s", path, line);
    fclose(f);
}

void tc_umount(struct tc_mount *m)
{
    char cmd[400];
    int st = 0;

    snprintf(cmd, sizeof(cmd), "fusermount3 -u %s", m->dir);
    for (int i = 0; system(cmd) != 0; i++) {
        cr_assert_lt(i, 100, "fusermount3 -u %s keeps failing", m->dir);
        usleep(100000);
    }
    cr_assert_eq(waitpid(m->pid, &st, 0), m->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dfs did not exit cleanly: %d (see %s)", st,
              m->log);
    check_log(m->log);
}
