/* The namespace through the masters' client API (/v1/fs/...) on three real dfs-master
 * processes: a round trip of every operation, exactly-once retries across a leader kill -9,
 * refusal of malformed requests, and a namespace that survives a full restart unchanged. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/json.h"

#define T_LEADER_MS 10000
#define T_OP_MS     10000

struct handle {
    uint64_t ino, gen;
};

static const struct handle root = {1, 1};

/* POSTs the JSON built from fmt at the leader; *ans (may be NULL) the answer. */
static int fs(struct tc_cluster *c, const char *path, cJSON **ans, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cJSON *b = cJSON_Parse(buf);
    cr_assert_not_null(b, "bad test JSON %s", buf);
    cJSON *a = NULL;
    int rc = tc_post(c, path, b, &a, T_OP_MS);
    cJSON_Delete(b);
    if (ans != NULL)
        *ans = a;
    else
        cJSON_Delete(a);
    return rc;
}

/* Like fs at master i, without following hints; *status the HTTP status. */
static int fs_at(struct tc_cluster *c, int i, const char *path, int *status, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cJSON *b = cJSON_Parse(buf);
    cr_assert_not_null(b, "bad test JSON %s", buf);
    int rc = tc_post_at(c, i, path, b, NULL, status);
    cJSON_Delete(b);
    return rc;
}

static int raw_post(struct tc_cluster *c, int i, const char *path, const char *body, int *status)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->m[i].client_port, path);
    struct cm_http_call call = {.method = "POST",
                                .url = url,
                                .body = body,
                                .body_len = strlen(body),
                                .content_type = "application/json"};
    struct cm_http_response r = {0};
    int rc = cm_http_call(c->http, &call, &r);
    *status = r.status;
    cm_http_response_clear(&r);
    return rc;
}

static uint64_t u64(const cJSON *o, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "field %s", field);
    return v;
}

static const cJSON *attr_of(const cJSON *ans)
{
    const cJSON *a = NULL;
    cr_assert_eq(cm_json_get_object(ans, "attr", &a), 0);
    return a;
}

static struct handle handle_of(const cJSON *ans)
{
    const cJSON *a = attr_of(ans);
    return (struct handle){u64(a, "ino"), u64(a, "gen")};
}

static struct handle mkdir_at(struct tc_cluster *c, uint64_t client, uint64_t seq, struct handle p,
                              const char *name)
{
    cJSON *a;
    cr_assert_eq(fs(c, "/v1/fs/mkdir", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"%s\","
                    "\"mode\":493}",
                    client, seq, p.ino, p.gen, name),
                 0, "mkdir %s", name);
    struct handle h = handle_of(a);
    cJSON_Delete(a);
    return h;
}

static struct handle create_at(struct tc_cluster *c, uint64_t client, uint64_t seq, struct handle p,
                               const char *name)
{
    cJSON *a;
    cr_assert_eq(fs(c, "/v1/fs/create", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"%s\","
                    "\"mode\":420,\"excl\":true}",
                    client, seq, p.ino, p.gen, name),
                 0, "create %s", name);
    cr_assert_eq(u64(a, "value"), 1, "created");
    struct handle h = handle_of(a);
    cJSON_Delete(a);
    return h;
}

static int lookup(struct tc_cluster *c, struct handle p, const char *name, struct handle *out)
{
    cJSON *a;
    int rc = fs(c, "/v1/fs/lookup", &a, "{\"parent\":%lu,\"pgen\":%lu,\"name\":\"%s\"}", p.ino,
                p.gen, name);
    if (rc == 0 && out != NULL)
        *out = handle_of(a);
    cJSON_Delete(a);
    return rc;
}

/* Appends a line per entry of directory d (recursively), listing pages of page entries. */
static void dump_dir(struct tc_cluster *c, struct handle d, const char *path, int page, char **s,
                     size_t *len, int *count)
{
    uint64_t cookie = 0;
    bool eof = false;
    while (!eof) {
        cJSON *a;
        cr_assert_eq(fs(c, "/v1/fs/readdir", &a,
                        "{\"ino\":%lu,\"gen\":%lu,\"cookie\":%lu,\"max_entries\":%d}", d.ino, d.gen,
                        cookie, page),
                     0);
        const cJSON *ents, *e;
        cr_assert_eq(cm_json_get_array(a, "entries", &ents), 0);
        cr_assert_eq(cm_json_get_bool(a, "eof", &eof), 0);
        cr_assert_leq(cJSON_GetArraySize(ents), page);
        cr_assert(eof || cJSON_GetArraySize(ents) > 0);
        cJSON_ArrayForEach(e, ents)
        {
            const char *name;
            cr_assert_eq(cm_json_get_str(e, "name", 4096, &name, NULL), 0);
            cookie = u64(e, "cookie");
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            const cJSON *at = attr_of(e);
            char *attr;
            cr_assert_eq(cm_json_print(at, &attr, NULL), 0);
            char child[1024];
            snprintf(child, sizeof(child), "%s/%s", path, name);
            char line[2048];
            int n = snprintf(line, sizeof(line), "%s %s\n", child, attr);
            free(attr);
            *s = realloc(*s, *len + (size_t)n + 1);
            memcpy(*s + *len, line, (size_t)n + 1);
            *len += (size_t)n;
            (*count)++;
            struct handle h = {u64(at, "ino"), u64(at, "gen")};
            if (S_ISDIR(u64(at, "mode")))
                dump_dir(c, h, child, page, s, len, count);
        }
        cJSON_Delete(a);
    }
}

static char *dump(struct tc_cluster *c, int *count)
{
    char *s = calloc(1, 1);
    size_t len = 0;
    *count = 0;
    dump_dir(c, root, "", 3, &s, &len, count);
    return s;
}

Test(master_fs, round_trip_of_every_operation, .timeout = 120)
{
    struct tc_cluster c;
    cJSON *a;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    uint64_t cl = 7, seq = 1;

    struct handle d = mkdir_at(&c, cl, seq++, root, "a");
    cr_assert_eq(fs(&c, "/v1/fs/getattr", &a, "{\"ino\":%lu,\"gen\":%lu}", d.ino, d.gen), 0);
    cr_assert(S_ISDIR(u64(attr_of(a), "mode")));
    cr_assert_eq(u64(attr_of(a), "mode") & 07777, 0755);
    cr_assert_eq(u64(attr_of(a), "nlink"), 2);
    cJSON_Delete(a);

    struct handle f = create_at(&c, cl, seq++, d, "f");
    struct handle got;
    cr_assert_eq(lookup(&c, d, "f", &got), 0);
    cr_assert_eq(got.ino, f.ino);
    cr_assert_eq(got.gen, f.gen);
    cr_assert_eq(lookup(&c, d, "nope", NULL), CM_E_NOENT);
    /* create without excl opens the existing file. */
    cr_assert_eq(fs(&c, "/v1/fs/create", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"f\","
                    "\"mode\":420}",
                    cl, seq++, d.ino, d.gen),
                 0);
    cr_assert_eq(u64(a, "value"), 0);
    cJSON_Delete(a);

    /* Readdir paging sees every entry exactly once. */
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        create_at(&c, cl, seq++, d, name);
    }
    int seen[10] = {0}, dots = 0, fseen = 0;
    uint64_t cookie = 0;
    bool eof = false;
    int pages = 0;
    while (!eof) {
        cr_assert_eq(fs(&c, "/v1/fs/readdir", &a,
                        "{\"ino\":%lu,\"gen\":%lu,\"cookie\":%lu,\"max_entries\":3}", d.ino, d.gen,
                        cookie),
                     0);
        const cJSON *ents, *e;
        cr_assert_eq(cm_json_get_array(a, "entries", &ents), 0);
        cr_assert_leq(cJSON_GetArraySize(ents), 3);
        cr_assert_eq(cm_json_get_bool(a, "eof", &eof), 0);
        cJSON_ArrayForEach(e, ents)
        {
            const char *name;
            cr_assert_eq(cm_json_get_str(e, "name", 300, &name, NULL), 0);
            if (name[0] == '.')
                dots++;
            else if (strcmp(name, "f") == 0)
                fseen++;
            else
                seen[atoi(name + 1)]++;
        }
        cookie = u64(a, "cookie");
        cJSON_Delete(a);
        pages++;
    }
    cr_assert_eq(dots, 2);
    cr_assert_eq(fseen, 1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(seen[i], 1, "n%d", i);
    cr_assert_geq(pages, 5);

    /* rename f -> g */
    cr_assert_eq(fs(&c, "/v1/fs/rename", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"src_parent\":%lu,\"src_pgen\":%lu,"
                    "\"src_name\":\"f\",\"dst_parent\":%lu,\"dst_pgen\":%lu,\"dst_name\":\"g\"}",
                    cl, seq++, d.ino, d.gen, d.ino, d.gen),
                 0);
    cr_assert_eq(lookup(&c, d, "f", NULL), CM_E_NOENT);
    cr_assert_eq(lookup(&c, d, "g", &got), 0);
    cr_assert_eq(got.ino, f.ino);
    /* noreplace onto an existing name */
    cr_assert_eq(fs(&c, "/v1/fs/rename", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"src_parent\":%lu,\"src_pgen\":%lu,"
                    "\"src_name\":\"g\",\"dst_parent\":%lu,\"dst_pgen\":%lu,\"dst_name\":\"n1\","
                    "\"noreplace\":true}",
                    cl, seq++, d.ino, d.gen, d.ino, d.gen),
                 CM_E_EXIST);

    /* symlink + readlink */
    cr_assert_eq(fs(&c, "/v1/fs/symlink", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"s\","
                    "\"target\":\"../some/where\"}",
                    cl, seq++, d.ino, d.gen),
                 0);
    struct handle s = handle_of(a);
    cr_assert(S_ISLNK(u64(attr_of(a), "mode")));
    cJSON_Delete(a);
    cr_assert_eq(fs(&c, "/v1/fs/readlink", &a, "{\"ino\":%lu,\"gen\":%lu}", s.ino, s.gen), 0);
    const char *target;
    cr_assert_eq(cm_json_get_str(a, "target", 4096, &target, NULL), 0);
    cr_assert_str_eq(target, "../some/where");
    cJSON_Delete(a);
    cr_assert_eq(fs(&c, "/v1/fs/readlink", NULL, "{\"ino\":%lu,\"gen\":%lu}", f.ino, f.gen),
                 CM_E_INVAL);

    /* setattr: mode, owner and a time beyond 2^53 (a string) */
    cr_assert_eq(fs(&c, "/v1/fs/setattr", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"ino\":%lu,\"gen\":%lu,\"mode\":384,"
                    "\"uid\":1000,\"gid\":100,\"mtime_ns\":\"1700000000123456789\"}",
                    cl, seq++, f.ino, f.gen),
                 0);
    cJSON_Delete(a);
    cr_assert_eq(fs(&c, "/v1/fs/getattr", &a, "{\"ino\":%lu,\"gen\":%lu}", f.ino, f.gen), 0);
    cr_assert_eq(u64(attr_of(a), "mode"), S_IFREG | 0600);
    cr_assert_eq(u64(attr_of(a), "uid"), 1000);
    cr_assert_eq(u64(attr_of(a), "gid"), 100);
    cr_assert_eq(u64(attr_of(a), "mtime_ns"), 1700000000123456789ull);
    cr_assert_gt(u64(attr_of(a), "ctime_ns"), 1700000000000000000ull, "leader clock stamped");
    cJSON_Delete(a);

    /* link: g also as h */
    cr_assert_eq(fs(&c, "/v1/fs/link", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"ino\":%lu,\"gen\":%lu,\"parent\":%lu,"
                    "\"pgen\":%lu,\"name\":\"h\"}",
                    cl, seq++, f.ino, f.gen, d.ino, d.gen),
                 0);
    cr_assert_eq(u64(attr_of(a), "nlink"), 2);
    cJSON_Delete(a);

    /* alloc-blocks, commit, blocks */
    cr_assert_eq(
        fs(&c, "/v1/fs/alloc-blocks", &a, "{\"client\":%lu,\"seq\":%lu,\"count\":4}", cl, seq++),
        0);
    uint64_t first = u64(a, "value");
    cJSON_Delete(a);
    cr_assert_eq(fs(&c, "/v1/fs/commit", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"ino\":%lu,\"gen\":%lu,\"off\":0,\"len\":300,"
                    "\"size\":300,\"blocks\":[{\"id\":%lu,\"len\":100,\"crc32c\":11,"
                    "\"replicas\":[1,2]},{\"id\":%lu,\"len\":200,\"crc32c\":22,"
                    "\"replicas\":[3]}]}",
                    cl, seq++, f.ino, f.gen, first, first + 1),
                 0);
    cr_assert_eq(u64(attr_of(a), "size"), 300);
    cJSON_Delete(a);
    cr_assert_eq(fs(&c, "/v1/fs/blocks", &a,
                    "{\"ino\":%lu,\"gen\":%lu,\"off\":0,\"len\":1000,\"max\":10}", f.ino, f.gen),
                 0);
    cr_assert_eq(u64(a, "size"), 300);
    const cJSON *exts;
    cr_assert_eq(cm_json_get_array(a, "extents", &exts), 0);
    cr_assert_eq(cJSON_GetArraySize(exts), 2);
    const cJSON *e1 = cJSON_GetArrayItem(exts, 1), *b1, *reps;
    cr_assert_eq(u64(e1, "off"), 100);
    cr_assert_eq(u64(e1, "len"), 200);
    cr_assert_eq(cm_json_get_object(e1, "block", &b1), 0);
    cr_assert_eq(u64(b1, "id"), first + 1);
    cr_assert_eq(u64(b1, "crc32c"), 22);
    cr_assert_eq(cm_json_get_array(b1, "replicas", &reps), 0);
    cr_assert_eq(cJSON_GetArraySize(reps), 1);
    cJSON_Delete(a);
    /* Truncating frees the blocks. */
    cr_assert_eq(fs(&c, "/v1/fs/setattr", &a,
                    "{\"client\":%lu,\"seq\":%lu,\"ino\":%lu,\"gen\":%lu,\"size\":0}", cl, seq++,
                    f.ino, f.gen),
                 0);
    const cJSON *freed;
    cr_assert_eq(cm_json_get_array(a, "freed", &freed), 0);
    cr_assert_eq(cJSON_GetArraySize(freed), 2);
    cJSON_Delete(a);

    /* unlink both names, then rmdir of a non-empty directory */
    const char *gone[] = {"h", "g"};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(fs(&c, "/v1/fs/unlink", NULL,
                        "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"%s\"}",
                        cl, seq++, d.ino, d.gen, gone[i]),
                     0);
    cr_assert_eq(lookup(&c, d, "g", NULL), CM_E_NOENT);
    cr_assert_eq(fs(&c, "/v1/fs/getattr", NULL, "{\"ino\":%lu,\"gen\":%lu}", f.ino, f.gen),
                 CM_E_STALE);
    cr_assert_eq(fs(&c, "/v1/fs/rmdir", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":1,\"pgen\":1,\"name\":\"a\"}", cl,
                    seq++),
                 CM_E_NOTEMPTY);
    mkdir_at(&c, cl, seq++, root, "empty");
    cr_assert_eq(fs(&c, "/v1/fs/rmdir", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":1,\"pgen\":1,\"name\":\"empty\"}", cl,
                    seq++),
                 0);

    /* statfs, and a follower read on a follower */
    cr_assert_eq(fs(&c, "/v1/fs/statfs", &a, "{}"), 0);
    cr_assert_eq(u64(a, "dirs"), 2);
    cr_assert_eq(u64(a, "files"), 10);
    cr_assert_eq(u64(a, "symlinks"), 1);
    cJSON_Delete(a);
    int follower = (leader + 1) % 3, st;
    cr_assert_eq(fs_at(&c, follower, "/v1/fs/lookup", &st,
                       "{\"parent\":%lu,\"pgen\":%lu,\"name\":\"s\"}", d.ino, d.gen),
                 CM_E_NOT_LEADER);
    cr_assert_eq(st, 421);
    cr_assert_eq(fs_at(&c, follower, "/v1/fs/lookup", &st,
                       "{\"parent\":%lu,\"pgen\":%lu,\"name\":\"s\",\"follower_read\":true}", d.ino,
                       d.gen),
                 0);
    cr_assert_eq(fs_at(&c, follower, "/v1/fs/mkdir", &st,
                       "{\"client\":9,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"x\","
                       "\"mode\":493}"),
                 CM_E_NOT_LEADER);
    tc_destroy(&c);
}

/* One mutation of each type, each from its own client (a session remembers its last seq). */
struct mutation {
    const char *path;
    char body[1024];
    cJSON *first;
};

Test(master_fs, retries_across_leader_kill_are_applied_once, .timeout = 180)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    uint64_t seq = 1;
    struct handle d = mkdir_at(&c, 1, seq++, root, "d");
    struct handle x = create_at(&c, 1, seq++, d, "x");
    create_at(&c, 1, seq++, d, "u1");
    create_at(&c, 1, seq++, d, "x2");
    mkdir_at(&c, 1, seq++, d, "r1");
    cJSON *a;
    cr_assert_eq(fs(&c, "/v1/fs/alloc-blocks", &a, "{\"client\":1,\"seq\":%lu,\"count\":2}", seq++),
                 0);
    uint64_t blk = u64(a, "value");
    cJSON_Delete(a);

    struct mutation mu[] = {
        {"/v1/fs/mkdir", "", NULL},        {"/v1/fs/create", "", NULL},
        {"/v1/fs/symlink", "", NULL},      {"/v1/fs/link", "", NULL},
        {"/v1/fs/unlink", "", NULL},       {"/v1/fs/rmdir", "", NULL},
        {"/v1/fs/rename", "", NULL},       {"/v1/fs/setattr", "", NULL},
        {"/v1/fs/alloc-blocks", "", NULL}, {"/v1/fs/commit", "", NULL},
    };
    size_t n = sizeof(mu) / sizeof(mu[0]);
    const char *ent = "\"parent\":%lu,\"pgen\":%lu,\"name\":\"%s\"";
    char e[256];
#define BODY(i, ...) snprintf(mu[i].body, sizeof(mu[i].body), __VA_ARGS__)
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "m1");
    BODY(0, "{\"client\":101,\"seq\":1,%s,\"mode\":493}", e);
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "c1");
    BODY(1, "{\"client\":102,\"seq\":1,%s,\"mode\":420,\"excl\":true}", e);
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "s1");
    BODY(2, "{\"client\":103,\"seq\":1,%s,\"target\":\"x\"}", e);
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "l1");
    BODY(3, "{\"client\":104,\"seq\":1,\"ino\":%lu,\"gen\":%lu,%s}", x.ino, x.gen, e);
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "u1");
    BODY(4, "{\"client\":105,\"seq\":1,%s}", e);
    snprintf(e, sizeof(e), ent, d.ino, d.gen, "r1");
    BODY(5, "{\"client\":106,\"seq\":1,%s}", e);
    BODY(6,
         "{\"client\":107,\"seq\":1,\"src_parent\":%lu,\"src_pgen\":%lu,\"src_name\":\"x2\","
         "\"dst_parent\":%lu,\"dst_pgen\":%lu,\"dst_name\":\"y2\"}",
         d.ino, d.gen, d.ino, d.gen);
    BODY(7, "{\"client\":108,\"seq\":1,\"ino\":%lu,\"gen\":%lu,\"mode\":384,\"mtime_now\":true}",
         x.ino, x.gen);
    BODY(8, "{\"client\":109,\"seq\":1,\"count\":5}");
    BODY(9,
         "{\"client\":110,\"seq\":1,\"ino\":%lu,\"gen\":%lu,\"off\":0,\"len\":10,\"size\":10,"
         "\"blocks\":[{\"id\":%lu,\"len\":10,\"crc32c\":5,\"replicas\":[1]}]}",
         x.ino, x.gen, blk);
#undef BODY
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(fs(&c, mu[i].path, &mu[i].first, "%s", mu[i].body), 0, "%s", mu[i].path);
    cr_assert_eq(fs(&c, "/v1/fs/statfs", &a, "{}"), 0);
    uint64_t allocated = u64(a, "blocks_allocated");
    cJSON_Delete(a);

    /* The answers were "lost": the leader dies, the clients retry at the new one. */
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    tc_kill(&c, leader);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    for (size_t i = 0; i < n; i++) {
        cJSON *again;
        cr_assert_eq(fs(&c, mu[i].path, &again, "%s", mu[i].body), 0, "retry %s", mu[i].path);
        cr_assert(cJSON_Compare(again, mu[i].first, true), "retry of %s answered differently",
                  mu[i].path);
        cJSON_Delete(again);
        cJSON_Delete(mu[i].first);
    }
    /* Applied once: nothing was allocated or created twice. */
    cr_assert_eq(fs(&c, "/v1/fs/statfs", &a, "{}"), 0);
    cr_assert_eq(u64(a, "blocks_allocated"), allocated);
    cJSON_Delete(a);
    cr_assert_eq(lookup(&c, d, "y2", NULL), 0);
    cr_assert_eq(lookup(&c, d, "x2", NULL), CM_E_NOENT);
    cr_assert_eq(fs(&c, "/v1/fs/getattr", &a, "{\"ino\":%lu,\"gen\":%lu}", x.ino, x.gen), 0);
    cr_assert_eq(u64(attr_of(a), "nlink"), 2);
    cr_assert_eq(u64(attr_of(a), "size"), 10);
    cJSON_Delete(a);
    /* An older seq of a client is refused. */
    cr_assert_eq(fs(&c, "/v1/fs/alloc-blocks", NULL, "{\"client\":1,\"seq\":1,\"count\":1}"),
                 CM_E_INVAL);
    tc_start(&c, leader);
    tc_destroy(&c);
}

Test(master_fs, malformed_requests_are_refused, .timeout = 60)
{
    struct tc_cluster c;
    int st;
    tc_init(&c, 1, NULL);
    tc_start_all(&c);
    cr_assert_eq(tc_wait_leader(&c, T_LEADER_MS), 0);
    cr_assert_eq(raw_post(&c, 0, "/v1/fs/mkdir", "{", &st), CM_E_BAD_JSON);
    cr_assert_eq(st, 400);
    cr_assert_eq(raw_post(&c, 0, "/v1/fs/lookup", "[1]", &st), CM_E_BAD_JSON);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":\"one\",\"pgen\":1,\"name\":\"a\","
                       "\"mode\":493}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(st, 400);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":7,\"mode\":493}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"a\"}"),
                 CM_E_MISSING_FIELD);
    cr_assert_eq(st, 400);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"a\",\"mode\":493}"),
                 CM_E_MISSING_FIELD);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":0,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"a\","
                       "\"mode\":493}"),
                 CM_E_RANGE);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"a\","
                       "\"mode\":493,\"credential\":{\"uid\":\"x\",\"gid\":0}}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"a\","
                       "\"mode\":493,\"credential\":{\"uid\":1,\"gid\":0,\"groups\":[-1]}}"),
                 CM_E_RANGE);
    /* Names the namespace refuses. */
    const char *bad[] = {"", ".", "..", "a/b"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                           "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"%s\","
                           "\"mode\":493}",
                           bad[i]),
                     CM_E_INVAL, "name '%s'", bad[i]);
        cr_assert_eq(st, 400);
    }
    char longname[300];
    memset(longname, 'n', 299);
    longname[299] = 0;
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/create", &st,
                       "{\"client\":1,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"%s\","
                       "\"mode\":420}",
                       longname),
                 CM_E_NAMETOOLONG);
    cr_assert_eq(st, 400);
    cr_assert_eq(
        fs_at(&c, 0, "/v1/fs/lookup", &st, "{\"parent\":1,\"pgen\":1,\"name\":\"%s\"}", longname),
        CM_E_NAMETOOLONG);
    /* Stale generations and handles. */
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/getattr", &st, "{\"ino\":1,\"gen\":2}"), CM_E_STALE);
    cr_assert_eq(st, 404);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":2,\"parent\":1,\"pgen\":5,\"name\":\"a\","
                       "\"mode\":493}"),
                 CM_E_STALE);
    cr_assert_eq(st, 404);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/readdir", &st, "{\"ino\":77,\"gen\":1}"), CM_E_STALE);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/readdir", &st, "{\"ino\":1,\"gen\":1,\"max_entries\":0}"),
                 CM_E_RANGE);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/setattr", &st,
                       "{\"client\":1,\"seq\":3,\"ino\":1,\"gen\":1,\"mtime_ns\":\"12x\"}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/commit", &st,
                       "{\"client\":1,\"seq\":3,\"ino\":1,\"gen\":1,\"off\":0,\"len\":1,"
                       "\"size\":1,\"blocks\":[7]}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/commit", &st,
                       "{\"client\":1,\"seq\":3,\"ino\":1,\"gen\":1,\"off\":0,\"len\":1,"
                       "\"size\":1,\"blocks\":[{\"id\":1,\"len\":1,\"crc32c\":0,"
                       "\"replicas\":[]}]}"),
                 CM_E_RANGE);
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/alloc-blocks", &st, "{\"client\":1,\"seq\":3,\"count\":0}"),
                 CM_E_INVAL);
    /* Permission: a credential without write access to a root-owned 0755 directory. */
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":4,\"parent\":1,\"pgen\":1,\"name\":\"a\","
                       "\"mode\":493,\"credential\":{\"uid\":1000,\"gid\":1000}}"),
                 CM_E_ACCES);
    cr_assert_eq(st, 403);
    /* The master still works. */
    cr_assert_eq(fs_at(&c, 0, "/v1/fs/mkdir", &st,
                       "{\"client\":1,\"seq\":5,\"parent\":1,\"pgen\":1,\"name\":\"ok\","
                       "\"mode\":493}"),
                 0);
    tc_destroy(&c);
}

Test(master_fs, namespace_survives_full_restart, .timeout = 180)
{
    struct tc_cluster c;
    tc_init(&c, 3, "--snapshot-entries 20");
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    uint64_t cl = 3, seq = 1;
    cr_assert_eq(tc_put(&c, "kvc", 1, "setting", "on", T_OP_MS), 0);
    struct handle dirs[4];
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "dir%d", i);
        dirs[i] = mkdir_at(&c, cl, seq++, root, name);
        for (int k = 0; k < 12; k++) {
            snprintf(name, sizeof(name), "file%d", k);
            struct handle f = create_at(&c, cl, seq++, dirs[i], name);
            if (k % 4 == 0)
                cr_assert_eq(fs(&c, "/v1/fs/setattr", NULL,
                                "{\"client\":%lu,\"seq\":%lu,\"ino\":%lu,\"gen\":%lu,"
                                "\"size\":%d}",
                                cl, seq++, f.ino, f.gen, 1000 + k),
                             0);
        }
    }
    cr_assert_eq(fs(&c, "/v1/fs/symlink", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"ln\","
                    "\"target\":\"/dir0/file1\"}",
                    cl, seq++, dirs[1].ino, dirs[1].gen),
                 0);
    cr_assert_eq(fs(&c, "/v1/fs/unlink", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,\"name\":\"file3\"}",
                    cl, seq++, dirs[2].ino, dirs[2].gen),
                 0);
    cr_assert_eq(fs(&c, "/v1/fs/rename", NULL,
                    "{\"client\":%lu,\"seq\":%lu,\"src_parent\":%lu,\"src_pgen\":%lu,"
                    "\"src_name\":\"dir3\",\"dst_parent\":%lu,\"dst_pgen\":%lu,"
                    "\"dst_name\":\"moved\"}",
                    cl, seq++, root.ino, root.gen, dirs[0].ino, dirs[0].gen),
                 0);
    int before_n, after_n;
    char *before = dump(&c, &before_n);
    cr_assert_eq(before_n, 4 + 48 + 1 - 1, "%s", before);
    cJSON *a;
    cr_assert_eq(fs(&c, "/v1/fs/statfs", &a, "{}"), 0);
    char *st_before;
    cJSON_DeleteItemFromObject(a, "applied");
    cm_json_print(a, &st_before, NULL);
    cJSON_Delete(a);

    for (int i = 0; i < 3; i++)
        tc_stop(&c, i);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    char *after = dump(&c, &after_n);
    cr_assert_str_eq(after, before);
    cr_assert_eq(fs(&c, "/v1/fs/statfs", &a, "{}"), 0);
    char *st_after;
    cJSON_DeleteItemFromObject(a, "applied");
    cm_json_print(a, &st_after, NULL);
    cJSON_Delete(a);
    cr_assert_str_eq(st_after, st_before);
    char *v = NULL;
    cr_assert_eq(tc_get(&c, "setting", &v, T_OP_MS), 0);
    cr_assert_str_eq(v, "on");
    /* Snapshots were taken (the log was compacted) on every master. */
    for (int i = 0; i < 3; i++) {
        cJSON *s = tc_status(&c, i);
        uint64_t snap = 0;
        cr_assert_not_null(s);
        cm_json_get_u64(s, "snapshot_index", &snap);
        cr_assert_gt(snap, 0, "master %d took no snapshot", i);
        cJSON_Delete(s);
    }
    free(v);
    free(before);
    free(after);
    free(st_before);
    free(st_after);
    tc_destroy(&c);
}

static uint64_t reads_fast(struct tc_cluster *c, int i)
{
    cJSON *st = tc_status(c, i);
    cr_assert_not_null(st);
    uint64_t v = u64(st, "reads_fast");
    cJSON_Delete(st);
    return v;
}

/* Under the leader lease, the leader answers reads on its HTTP threads (rn_read_fast); each one
 * still sees every write acknowledged before it (read your writes, through create, unlink and
 * rename). With --no-lease-read every read goes through a heartbeat round instead. */
static void reads_see_acknowledged_writes(const char *args, bool expect_fast)
{
    struct tc_cluster c;
    tc_init(&c, 3, args);
    tc_start_all(&c);
    int l = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(l, 0);
    uint64_t cl = 9, seq = 1;
    struct handle d = mkdir_at(&c, cl, seq++, root, "d");
    uint64_t before = reads_fast(&c, l);
    int nreads = 0;
    for (int i = 0; i < 100; i++) {
        char name[16], moved[16];
        snprintf(name, sizeof(name), "f%d", i);
        snprintf(moved, sizeof(moved), "g%d", i);
        struct handle f = create_at(&c, cl, seq++, d, name), got;
        cr_assert_eq(lookup(&c, d, name, &got), 0, "%s created, then not found", name);
        cr_assert_eq(got.ino, f.ino);
        cr_assert_eq(fs(&c, "/v1/fs/rename", NULL,
                        "{\"client\":%lu,\"seq\":%lu,\"src_parent\":%lu,\"src_pgen\":%lu,"
                        "\"src_name\":\"%s\",\"dst_parent\":%lu,\"dst_pgen\":%lu,"
                        "\"dst_name\":\"%s\"}",
                        cl, seq++, d.ino, d.gen, name, d.ino, d.gen, moved),
                     0);
        cr_assert_eq(lookup(&c, d, name, NULL), CM_E_NOENT, "%s renamed, then still found", name);
        cr_assert_eq(lookup(&c, d, moved, &got), 0);
        cr_assert_eq(got.ino, f.ino);
        if (i % 2 == 0) {
            cr_assert_eq(fs(&c, "/v1/fs/unlink", NULL,
                            "{\"client\":%lu,\"seq\":%lu,\"parent\":%lu,\"pgen\":%lu,"
                            "\"name\":\"%s\"}",
                            cl, seq++, d.ino, d.gen, moved),
                         0);
            cr_assert_eq(lookup(&c, d, moved, NULL), CM_E_NOENT, "%s unlinked, still found", moved);
            nreads++;
        }
        nreads += 3;
    }
    cr_assert_eq(tc_wait_leader(&c, T_LEADER_MS), l, "the leader changed: the test ran short");
    uint64_t fast = reads_fast(&c, l) - before;
    if (expect_fast)
        cr_assert_gt(fast, 0, "none of %d reads used the lease", nreads);
    else
        cr_assert_eq(fast, 0, "%lu reads used a lease that is off", fast);
    tc_destroy(&c);
}

Test(master_fs, lease_reads_on_http_threads_see_acknowledged_writes, .timeout = 120)
{
    reads_see_acknowledged_writes(NULL, true);
}

Test(master_fs, no_lease_read_means_no_fast_reads, .timeout = 120)
{
    reads_see_acknowledged_writes("--no-lease-read", false);
}
