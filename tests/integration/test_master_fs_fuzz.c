/* A fuzz test of the master's HTTP request handlers: a few thousand deterministic pseudo-random
 * requests (fixed seed) to every /v1/fs/... and /v1/kv/... endpoint of one real dfs-master: random
 * JSON shapes (wrong types, huge and negative numbers, odd bytes in strings, deep nesting,
 * missing and extra fields, truncated bodies, random bytes). Every answer must be a 2xx, or a 4xx
 * with a JSON error body: never a 5xx, never a dropped connection. Afterwards the master is alive
 * and consistent (a mkdir and a lookup work; GET /status answers). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/json.h"

#define T_LEADER_MS 10000
#define N_REQUESTS  4000

static const char *PATHS[] = {
    "/v1/fs/lookup",  "/v1/fs/getattr", "/v1/fs/mkdir",   "/v1/fs/create",       "/v1/fs/unlink",
    "/v1/fs/rmdir",   "/v1/fs/rename",  "/v1/fs/link",    "/v1/fs/symlink",      "/v1/fs/readlink",
    "/v1/fs/setattr", "/v1/fs/readdir", "/v1/fs/statfs",  "/v1/fs/alloc-blocks", "/v1/fs/commit",
    "/v1/fs/blocks",  "/v1/kv/put",     "/v1/kv/delete",  "/v1/kv/get",
};
#define N_PATHS (sizeof(PATHS) / sizeof(PATHS[0]))

static const char *FIELDS[] = {
    "client",   "seq",        "credential", "uid",      "gid",       "groups",      "ino",
    "gen",      "parent",     "pgen",       "name",     "mode",      "excl",        "trunc",
    "src_parent", "src_pgen", "src_name",   "dst_parent", "dst_pgen", "dst_name",   "noreplace",
    "exchange", "target",     "size",       "atime_ns", "mtime_ns",  "atime_now",   "mtime_now",
    "count",    "off",        "len",        "set_size", "blocks",    "id",          "crc32c",
    "replicas", "cookie",     "max_entries", "max",     "follower_read", "key",     "value",
    "newparent", "npgen",     "newname",    "new_parent", "new_pgen", "new_name",   "flags",
};
#define N_FIELDS (sizeof(FIELDS) / sizeof(FIELDS[0]))

static uint64_t rs = 0x9e3779b97f4a7c15ull;

static uint64_t rnd64(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static uint32_t rnd(uint32_t n)
{
    return (uint32_t)(rnd64() % n);
}

struct buf {
    char *p;
    size_t n, cap;
};

static void put(struct buf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        b->cap = (b->n + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
}

static const char *NUMS[] = {
    "0", "1", "2", "-1", "-9223372036854775808", "9223372036854775807", "18446744073709551615",
    "18446744073709551616", "1e300", "-1e300", "1.5", "0.0", "-0", "4294967295", "4294967296",
    "65535", "65536", "65537", "493", "420", "511", "4095", "4096", "1e19", "123456789012345678901234567890",
    "2147483648", "-2147483649", "3", "100", "1000000",
};

static void gen_string(struct buf *b)
{
    puts_(b, "\"");
    switch (rnd(8)) {
    case 0:
        break; /* "" */
    case 1:
        puts_(b, rnd(2) ? "." : "..");
        break;
    case 2: { /* long */
        uint32_t n = rnd(2) ? 255 + rnd(3) : 4090 + rnd(10);
        for (uint32_t i = 0; i < n; i++)
            put(b, "x", 1);
        break;
    }
    case 3: /* escapes and odd bytes */
        puts_(b, rnd(2) ? "a\\u0000b" : "a/b");
        break;
    case 4: { /* raw bytes, possibly invalid UTF-8 or control characters */
        uint32_t n = 1 + rnd(20);
        for (uint32_t i = 0; i < n; i++) {
            char ch = (char)(rnd(2) ? 0x80 + rnd(128) : 1 + rnd(127));
            if (ch == '"' || ch == '\\')
                ch = 'q';
            put(b, &ch, 1);
        }
        break;
    }
    case 5:
        puts_(b, rnd(2) ? "\\ud800" : "\\uffff\\u00e9\\n\\t");
        break;
    default:
        putf(b, "n%u", rnd(6));
        break;
    }
    puts_(b, "\"");
}

static void gen_value(struct buf *b, int depth);

static void gen_container(struct buf *b, int depth, bool obj)
{
    puts_(b, obj ? "{" : "[");
    uint32_t n = rnd(4);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            puts_(b, ",");
        if (obj) {
            putf(b, "\"%s\":", FIELDS[rnd(N_FIELDS)]);
        }
        gen_value(b, depth + 1);
    }
    puts_(b, obj ? "}" : "]");
}

static void gen_value(struct buf *b, int depth)
{
    uint32_t k = rnd(depth > 4 ? 6 : 9);
    switch (k) {
    case 0:
    case 1:
    case 2:
        puts_(b, NUMS[rnd(sizeof(NUMS) / sizeof(NUMS[0]))]);
        break;
    case 3:
        putf(b, "%u", rnd(40));
        break;
    case 4:
        gen_string(b);
        break;
    case 5:
        puts_(b, rnd(3) == 0 ? "null" : rnd(2) ? "true" : "false");
        break;
    case 6:
        gen_container(b, depth, false);
        break;
    case 7:
        gen_container(b, depth, true);
        break;
    default: { /* deep nesting */
        uint32_t d = rnd(5) == 0 ? 1500 : 50 + rnd(200);
        bool arr = rnd(2);
        for (uint32_t i = 0; i < d; i++)
            puts_(b, arr ? "[" : "{\"a\":");
        puts_(b, "1");
        for (uint32_t i = 0; i < d; i++)
            puts_(b, arr ? "]" : "}");
        break;
    }
    }
}

/* The fields each endpoint takes (same order as PATHS). */
static const char *SHAPES[] = {
    "parent pgen name credential",
    "ino gen",
    "client seq parent pgen name mode credential",
    "client seq parent pgen name mode excl trunc",
    "client seq parent pgen name",
    "client seq parent pgen name",
    "client seq src_parent src_pgen src_name dst_parent dst_pgen dst_name noreplace exchange",
    "client seq ino gen parent pgen name",
    "client seq parent pgen name target",
    "ino gen",
    "client seq ino gen mode uid gid size atime_ns mtime_ns atime_now mtime_now",
    "ino gen cookie max_entries",
    "",
    "client seq count",
    "client seq ino gen off len size set_size blocks",
    "ino gen off len max",
    "key client seq value",
    "key client seq",
    "key follower_read",
};

static bool wild = true; /* field values are random one time in four */

/* A plausible value for a field, sometimes valid. */
static void gen_field_value(struct buf *b, const char *f, uint64_t *seq)
{
    if (wild && rnd(4) == 0) {
        gen_value(b, 1);
        return;
    }
    if (!strcmp(f, "seq")) {
        putf(b, "%llu", (unsigned long long)(rnd(8) == 0 ? *seq - rnd(3) : ++*seq));
    } else if (!strcmp(f, "client") || !strcmp(f, "key")) {
        if (rnd(2))
            putf(b, "\"c%u\"", rnd(3));
        else
            putf(b, "%u", 1 + rnd(3));
    } else if (!strcmp(f, "name") || !strcmp(f, "src_name") || !strcmp(f, "dst_name") ||
               !strcmp(f, "newname") || !strcmp(f, "target") || !strcmp(f, "value")) {
        if (rnd(3))
            putf(b, "\"n%u\"", rnd(6));
        else
            gen_string(b);
    } else if (!strcmp(f, "credential")) {
        if (rnd(2))
            putf(b, "{\"uid\":%u,\"gid\":%u,\"groups\":[%u,%u]}", rnd(2) ? 0 : 1000, rnd(60),
                 rnd(60), rnd(60));
        else
            gen_container(b, 1, true);
    } else if (!strcmp(f, "blocks")) {
        puts_(b, "[");
        uint32_t n = rnd(4);
        for (uint32_t i = 0; i < n; i++)
            putf(b, "%s{\"id\":%u,\"len\":%u,\"crc32c\":%u,\"replicas\":[%u%s]}", i ? "," : "",
                 rnd(40), rnd(3) ? rnd(2000) : 0, rnd(1000), rnd(5), rnd(3) ? "" : ",1,2,3,4,5,6,7,8,9");
        puts_(b, "]");
    } else if (!strcmp(f, "mode")) {
        putf(b, "%u", rnd(3) ? 0755 : rnd(0200000));
    } else if (!strcmp(f, "count") || !strcmp(f, "max_entries") || !strcmp(f, "max")) {
        putf(b, "%u", rnd(3) ? 1 + rnd(10) : rnd(100000));
    } else if (!strcmp(f, "off") || !strcmp(f, "len") || !strcmp(f, "size") ||
               !strcmp(f, "cookie")) {
        if (rnd(3))
            putf(b, "%u", rnd(5000));
        else
            puts_(b, NUMS[rnd(sizeof(NUMS) / sizeof(NUMS[0]))]);
    } else if (f[0] == 'e' || f[0] == 't' || !strcmp(f, "noreplace") || !strcmp(f, "set_size") ||
               !strcmp(f, "follower_read") || strstr(f, "_now")) {
        puts_(b, rnd(2) ? "true" : "false");
    } else if (strstr(f, "gen") != NULL && rnd(4)) {
        puts_(b, "1"); /* generations: mostly the first */
    } else if (strstr(f, "parent") != NULL && rnd(3) == 0) {
        puts_(b, "1"); /* the root */
    } else { /* inodes, generations, ids */
        putf(b, "%u", rnd(4) == 0 ? rnd(100) : 1 + rnd(12));
    }
}

static void gen_body(struct buf *b, uint64_t *seq, uint32_t path)
{
    b->n = 0;
    puts_(b, "");
    if (rnd(2)) { /* the endpoint's own shape, plausible values, one field sometimes wild */
        char shape[256];
        snprintf(shape, sizeof(shape), "%s", SHAPES[path]);
        uint32_t wild_one = rnd(24);
        uint32_t k = 0;
        bool first = true;
        puts_(b, "{");
        for (char *save = NULL, *f = strtok_r(shape, " ", &save); f != NULL;
             f = strtok_r(NULL, " ", &save), k++) {
            if (rnd(12) == 0)
                continue; /* missing */
            putf(b, "%s\"%s\":", first ? "" : ",", f);
            first = false;
            wild = false;
            if (k == wild_one)
                gen_value(b, 1);
            else if (!strcmp(f, "client") && path >= 16)
                putf(b, "\"c%u\"", rnd(3));
            else if (!strcmp(f, "client"))
                putf(b, "%u", 1 + rnd(3));
            else if (!strcmp(f, "credential") && rnd(2))
                puts_(b, "{\"uid\":0,\"gid\":0}");
            else
                gen_field_value(b, f, seq);
            wild = true;
        }
        if (rnd(6) == 0)
            putf(b, "%s\"extra\":1", first ? "" : ",");
        puts_(b, "}");
        return;
    }
    switch (rnd(10)) {
    case 0: { /* random bytes */
        uint32_t n = rnd(200);
        for (uint32_t i = 0; i < n; i++) {
            char ch = (char)rnd(256);
            put(b, &ch, 1);
        }
        return;
    }
    case 1: /* any JSON value */
        gen_value(b, 0);
        return;
    default:
        break;
    }
    /* An object with mostly the expected fields. */
    puts_(b, "{");
    uint32_t n = rnd(16);
    bool first = true;
    /* The common ones first, most of the time. */
    static const char *COMMON[] = {"client", "seq", "parent", "pgen", "name", "ino", "gen"};
    for (uint32_t i = 0; i < 7; i++) {
        if (rnd(5) == 0)
            continue;
        putf(b, "%s\"%s\":", first ? "" : ",", COMMON[i]);
        first = false;
        gen_field_value(b, COMMON[i], seq);
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *f = FIELDS[rnd(N_FIELDS)];
        putf(b, "%s\"%s\":", first ? "" : ",", f);
        first = false;
        gen_field_value(b, f, seq);
    }
    puts_(b, "}");
    if (rnd(8) == 0) /* truncated */
        b->n = rnd((uint32_t)b->n + 1);
}

static int post(struct tc_cluster *c, const char *path, const char *body, size_t len,
                struct cm_http_response *r)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->m[0].client_port, path);
    struct cm_http_call call = {.method = "POST",
                                .url = url,
                                .body = body,
                                .body_len = len,
                                .content_type = "application/json"};
    memset(r, 0, sizeof(*r));
    return cm_http_call(c->http, &call, r);
}

static void check_answer(int rc, const struct cm_http_response *r, const char *path,
                         const struct buf *b, int i)
{
    int st = r->status;
    bool ok = (st >= 200 && st < 300) ||
              (st >= 400 && st < 500 && r->json != NULL && r->error != NULL);
    if (!ok) {
        char shown[301];
        size_t k = b->n < 300 ? b->n : 300;
        for (size_t j = 0; j < k; j++)
            shown[j] = (b->p[j] >= 32 && b->p[j] < 127) ? b->p[j] : '?';
        shown[k] = 0;
        cr_assert_fail("request %d to %s: rc %d status %d, body %s", i, path, rc, st, shown);
    }
}

Test(master_fs_fuzz, handlers_answer_2xx_or_4xx, .timeout = 120)
{
    struct tc_cluster c;
    tc_init(&c, 1, NULL);
    tc_start_all(&c);
    cr_assert_eq(tc_wait_leader(&c, T_LEADER_MS), 0);
    struct buf b = {0};
    uint64_t seq = 0;
    int n2xx = 0, by_status[600] = {0};
    for (int i = 0; i < N_REQUESTS; i++) {
        uint32_t pi = rnd(N_PATHS);
        const char *path = PATHS[pi];
        gen_body(&b, &seq, pi);
        struct cm_http_response r;
        int rc = post(&c, path, b.p, b.n, &r);
        check_answer(rc, &r, path, &b, i);
        by_status[r.status]++;
        if (r.status < 300)
            n2xx++;
        cm_http_response_clear(&r);
    }
    if (getenv("FUZZ_VERBOSE"))
        for (int k = 0; k < 600; k++)
            if (by_status[k])
                fprintf(stderr, "status %d: %d\n", k, by_status[k]);
    /* The fuzz reaches past the parsing too. */
    cr_assert_gt(n2xx, N_REQUESTS / 50, "2xx answers: %d", n2xx);
    /* Still alive and consistent. */
    cJSON *st = tc_status(&c, 0);
    cr_assert_not_null(st, "GET /status answers");
    cJSON_Delete(st);
    const char *mk = "{\"client\":99,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"after-fuzz\","
                     "\"mode\":493}";
    struct cm_http_response r;
    cr_assert_eq(post(&c, "/v1/fs/mkdir", mk, strlen(mk), &r), 0);
    uint64_t ino = 0, gen = 0;
    const cJSON *a = NULL;
    cr_assert_eq(cm_json_get_object(r.json, "attr", &a), 0);
    cr_assert_eq(cm_json_get_u64(a, "ino", &ino), 0);
    cr_assert_eq(cm_json_get_u64(a, "gen", &gen), 0);
    cm_http_response_clear(&r);
    const char *lk = "{\"parent\":1,\"pgen\":1,\"name\":\"after-fuzz\"}";
    cr_assert_eq(post(&c, "/v1/fs/lookup", lk, strlen(lk), &r), 0);
    uint64_t ino2 = 0, gen2 = 0;
    cr_assert_eq(cm_json_get_object(r.json, "attr", &a), 0);
    cr_assert_eq(cm_json_get_u64(a, "ino", &ino2), 0);
    cr_assert_eq(cm_json_get_u64(a, "gen", &gen2), 0);
    cr_assert_eq(ino2, ino);
    cr_assert_eq(gen2, gen);
    cm_http_response_clear(&r);
    const char *sf = "{}";
    cr_assert_eq(post(&c, "/v1/fs/statfs", sf, strlen(sf), &r), 0);
    cm_http_response_clear(&r);
    free(b.p);
    tc_destroy(&c);
}
