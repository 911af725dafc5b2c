/* libdfs's data half (client/dfs.h, "file data") against real dfs-master and dfs-chunkserver
 * processes with 1 MiB blocks: byte-identical round trips of many sizes, writes at random
 * offsets, overwrites and holes, three distinct replicas per block, pipeline recovery around a
 * dead chunkserver the masters still place (first, last or in the middle of the pipeline), small
 * blocks sent to their chunkservers side by side, reads
 * falling back past a dead and a damaged replica, a leader kill -9 in the middle of writing,
 * placement after a master restart, close-to-open visibility, parallel writers, errors reported
 * once, paged block listings, the read-ahead (used by sequential reads, also out of order, and
 * never read after a write), and the commit of stored blocks by age. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/dfs.h"
#include "cluster.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"

#define T_LEADER_MS 10000
#define T_CS_MS     20000
#define BS          (1u << 20)
#define CS_ARGS     "--block-size 1M --heartbeat-ms 200"

static const struct dfs_fh root = {DFS_ROOT_INO, DFS_ROOT_GEN};

static struct dfs_fh fh_of(const struct dfs_attr *a)
{
    return (struct dfs_fh){a->ino, a->gen};
}

/* xorshift64*: reproducible random bytes from a seed. */
static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void rnd_fill(uint8_t *buf, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(rnd_next(&s) >> 56);
}

static uint8_t *xmalloc(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

/* ---- the cluster ---- */

/* nm masters and ncs chunkservers (racks as tc_cs_start takes them) with cs_args, all seen
 * alive. */
static struct tc_cluster *start_with(int nm, int ncs, int racks, const char *cs_args,
                                     uint64_t ids[TC_MAX_CHUNKSERVERS])
{
    struct tc_cluster *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    tc_init(c, nm, NULL);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < ncs; k++)
        tc_cs_start(c, k, racks, cs_args);
    tc_wait_cs_alive(c, ncs, ids, T_CS_MS);
    return c;
}

static struct tc_cluster *start(int nm, int ncs, int racks, uint64_t ids[TC_MAX_CHUNKSERVERS])
{
    return start_with(nm, ncs, racks, CS_ARGS, ids);
}

static struct dfs *open_fs_with(struct tc_cluster *c, uint32_t block_size, unsigned replication)
{
    char masters[512] = "";
    size_t len = 0;
    for (int i = 0; i < c->n; i++)
        len += (size_t)snprintf(masters + len, sizeof(masters) - len, "%s127.0.0.1:%u",
                                i > 0 ? "," : "", c->m[i].client_port);
    struct dfs_options opt = {.op_timeout_ms = 30000,
                              .block_size = block_size,
                              .replication = replication,
                              .data_timeout_ms = 10000};
    struct dfs *fs = NULL;
    cr_assert_eq(dfs_open(masters, &opt, &fs), 0);
    return fs;
}

static struct dfs *open_fs(struct tc_cluster *c)
{
    return open_fs_with(c, BS, 3);
}

static void finish(struct tc_cluster *c, struct dfs *fs)
{
    dfs_close(fs);
    tc_destroy(c);
    free(c);
}

static struct dfs_attr create_file(struct dfs *fs, const char *name)
{
    struct dfs_attr a;
    bool created = false;
    cr_assert_eq(dfs_create(fs, NULL, root, name, 0644, DFS_CREATE_EXCL, &a, &created), 0);
    cr_assert(created);
    cr_assert_eq(a.size, 0);
    return a;
}

/* ---- reading and checking ---- */

/* The whole of f read in pieces of `step` bytes, compared with want[0, n): the same bytes and
 * CRC, a short read exactly at the end, nothing past it. */
static void check_read(struct dfs_file *f, const uint8_t *want, size_t n, size_t step,
                       const char *what)
{
    uint8_t *got = xmalloc(n + step);
    size_t off = 0, g = 0;
    for (;;) {
        int rc = dfs_file_read(f, off, step, got + off, &g);
        cr_assert_eq(rc, 0, "%s: read at %zu: %s", what, off, cm_strerror(rc));
        cr_assert_leq(g, step);
        off += g;
        if (g < step)
            break;
    }
    cr_assert_eq(off, n, "%s: read %zu bytes, the file has %zu", what, off, n);
    cr_assert_eq(cm_crc32c(0, got, n), cm_crc32c(0, want, n), "%s: CRC differs", what);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            cr_assert_fail("%s: byte %zu is %u, want %u", what, i, got[i], want[i]);
    cr_assert_eq(dfs_file_read(f, n, 10, got, &g), 0);
    cr_assert_eq(g, 0, "%s: read at the end gives %zu bytes", what, g);
    cr_assert_eq(dfs_file_read(f, n + 12345, 10, got, &g), 0);
    cr_assert_eq(g, 0, "%s: read past the end gives %zu bytes", what, g);
    free(got);
}

/* Through a new dfs_file: what another opener sees. */
static void check_fresh(struct dfs *fs, struct dfs_fh fh, const uint8_t *want, size_t n,
                        size_t step, const char *what)
{
    struct dfs_file *f = NULL;
    struct dfs_attr a;
    cr_assert_eq(dfs_getattr(fs, NULL, fh, &a), 0);
    cr_assert_eq(a.size, n, "%s: size %llu, want %zu", what, (unsigned long long)a.size, n);
    cr_assert_eq(dfs_file_open(fs, NULL, fh, &f), 0);
    check_read(f, want, n, step, what);
    dfs_file_close(f);
}

/* Writes want[0, n) sequentially in pieces of varying sizes (seeded). */
static void write_all(struct dfs_file *f, const uint8_t *data, size_t n, uint64_t seed)
{
    size_t off = 0;
    while (off < n) {
        size_t k = 1 + (size_t)(rnd_next(&seed) % (3 * BS / 4));
        if (k > n - off)
            k = n - off;
        int rc = dfs_file_write(f, off, data + off, k);
        cr_assert_eq(rc, 0, "write at %zu: %s", off, cm_strerror(rc));
        off += k;
    }
}

/* ---- the blocks as the masters list them ---- */

struct listed {
    uint64_t off, len, block_off, id;
    unsigned nrep;
    uint64_t reps[DFS_MAX_REPLICAS];
    char addrs[DFS_MAX_REPLICAS][64];
};

/* Every extent of the file (fewer than max). */
static size_t list_blocks(struct tc_cluster *c, struct dfs_fh fh, struct listed *out, size_t max)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"ino\":%llu,\"gen\":%llu,\"off\":0,\"len\":1099511627776}",
             (unsigned long long)fh.ino, (unsigned long long)fh.gen);
    cJSON *b = cJSON_Parse(buf), *a = NULL;
    const cJSON *e, *x;
    size_t n = 0;
    cr_assert_eq(tc_post(c, "/v1/fs/blocks", b, &a, 10000), 0);
    cJSON_Delete(b);
    cr_assert_not(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "more")));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(a, "extents"))
    {
        cr_assert_lt(n, max);
        struct listed *l = &out[n++];
        const cJSON *blk = cJSON_GetObjectItemCaseSensitive(e, "block");
        memset(l, 0, sizeof(*l));
        cr_assert_eq(cm_json_get_u64(e, "off", &l->off), 0);
        cr_assert_eq(cm_json_get_u64(e, "len", &l->len), 0);
        cr_assert_eq(cm_json_get_u64(e, "block_off", &l->block_off), 0);
        cr_assert_eq(cm_json_get_u64(blk, "id", &l->id), 0);
        unsigned i = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(blk, "replicas"))
        {
            cr_assert_lt(i, DFS_MAX_REPLICAS);
            cr_assert(cJSON_IsNumber(x), "a replica id is a number");
            l->reps[i++] = (uint64_t)x->valuedouble;
        }
        l->nrep = i;
        i = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(blk, "addrs"))
        {
            cr_assert(cJSON_IsString(x) && i < DFS_MAX_REPLICAS);
            snprintf(l->addrs[i++], sizeof(l->addrs[0]), "%s", x->valuestring);
        }
        cr_assert_eq(i, l->nrep, "addrs and replicas differ in length");
    }
    cJSON_Delete(a);
    return n;
}

/* Each extent's block on exactly 3 distinct chunkservers, none of them `avoid` (0: none), and
 * each of those serving the block's bytes of data (the file as written sequentially). */
static void check_replicas(struct tc_cluster *c, struct dfs_fh fh, const uint8_t *data, size_t n,
                           uint64_t avoid)
{
    static struct listed ls[64];
    size_t ne = list_blocks(c, fh, ls, 64), covered = 0;
    cr_assert_gt(ne, 0);
    for (size_t i = 0; i < ne; i++) {
        const struct listed *l = &ls[i];
        cr_assert_eq(l->off, covered, "extents laid end to end");
        covered += l->len;
        cr_assert_eq(l->nrep, 3, "block %llu has %u replicas", (unsigned long long)l->id, l->nrep);
        for (unsigned a = 0; a < l->nrep; a++) {
            cr_assert_neq(l->reps[a], avoid, "block %llu placed on the dead chunkserver",
                          (unsigned long long)l->id);
            for (unsigned b = a + 1; b < l->nrep; b++) {
                cr_assert_neq(l->reps[a], l->reps[b], "block %llu: replica twice",
                              (unsigned long long)l->id);
                cr_assert_str_neq(l->addrs[a], l->addrs[b]);
            }
            /* The copy itself, from that chunkserver. */
            char url[128], range[64];
            snprintf(url, sizeof(url), "http://%s/blocks/%016llx", l->addrs[a],
                     (unsigned long long)l->id);
            snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)l->block_off,
                     (unsigned long long)(l->block_off + l->len - 1));
            struct cm_http_call get = {
                .method = "GET", .url = url, .range = range, .flags = CM_HTTP_CALL_RAW};
            struct cm_http_response r = {0};
            int rc = cm_http_call(c->http, &get, &r);
            cr_assert_eq(rc, 0, "GET %s: %s", url, cm_strerror(rc));
            cr_assert_eq(r.body_len, l->len);
            cr_assert_eq(memcmp(r.body, data + l->off, l->len), 0, "%s: bytes differ", url);
            cm_http_response_clear(&r);
        }
    }
    cr_assert_eq(covered, n, "the extents cover %zu bytes of %zu", covered, n);
}

/* ---- 1. round trips ---- */

Test(client_data, round_trip_of_many_sizes, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t sizes[] = {0, 1, BS - 1, BS, BS + 1, 20 * BS + 12345};
    struct dfs_data_stats st0, st1;
    dfs_data_stats(fs, &st0);

    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        size_t n = sizes[t];
        char name[32], what[64];
        snprintf(name, sizeof(name), "f%zu", n);
        struct dfs_attr a = create_file(fs, name);
        uint8_t *data = xmalloc(n);
        rnd_fill(data, n, 1000 + t);
        struct dfs_file *f = NULL;
        uint64_t end = 0;
        cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
        cr_assert_not(dfs_file_dirty(f, NULL));
        write_all(f, data, n, t);
        cr_assert_eq(dfs_file_dirty(f, &end), n > 0, "size %zu: dirty", n);
        if (n > 0)
            cr_assert_eq(end, n, "size %zu: dirty end %llu", n, (unsigned long long)end);

        /* Its own writes, before any flush. */
        snprintf(what, sizeof(what), "size %zu, same file before flush", n);
        check_read(f, data, n, 256 * 1024 + 3, what);

        struct dfs_attr after;
        cr_assert_eq(dfs_file_flush(f, &after), 0);
        cr_assert_eq(after.size, n, "size %zu: flush says %llu", n, (unsigned long long)after.size);
        cr_assert_not(dfs_file_dirty(f, NULL));
        dfs_file_close(f);

        snprintf(what, sizeof(what), "size %zu, fresh file", n);
        check_fresh(fs, fh_of(&a), data, n, n > BS ? BS + 4097 : 4096, what);
        snprintf(what, sizeof(what), "size %zu, fresh file, one read", n);
        check_fresh(fs, fh_of(&a), data, n, n + 1, what);
        free(data);
    }
    dfs_data_stats(fs, &st1);
    /* 0 + 1 + 1 + 1 + 2 + 21 blocks at least (writes in pieces seal no extra block). */
    cr_assert_geq(st1.blocks_written - st0.blocks_written, 26);
    cr_assert_geq(st1.bytes_written - st0.bytes_written, 3 * BS + 1 + 20 * BS + 12345);
    cr_assert_gt(st1.commits, st0.commits);
    cr_assert_gt(st1.reads, st0.reads);
    cr_assert_eq(st1.read_fallbacks, 0);
    cr_assert_eq(st1.pipeline_retries, 0);
    finish(c, fs);
}

/* ---- 2. random offsets, overwrites, holes ---- */

static void model_write(uint8_t *model, size_t *size, struct dfs_file *f, size_t off,
                        const uint8_t *src, size_t len)
{
    int rc = dfs_file_write(f, off, src, len);
    cr_assert_eq(rc, 0, "write %zu at %zu: %s", len, off, cm_strerror(rc));
    memcpy(model + off, src, len);
    if (off + len > *size)
        *size = off + len;
}

Test(client_data, random_writes_overwrites_and_holes, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t cap = 8 * BS;
    uint8_t *model = calloc(1, cap), *src = xmalloc(cap);
    size_t size = 0;
    uint64_t seed = 77;
    struct dfs_attr a = create_file(fs, "r"), got;
    struct dfs_file *f = NULL;
    cr_assert_not_null(model);
    rnd_fill(src, cap, 5);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);

    /* 3.5 blocks, flushed. */
    model_write(model, &size, f, 0, src, 3 * BS + BS / 2);
    cr_assert_eq(dfs_file_flush(f, &got), 0);
    cr_assert_eq(got.size, size);

    /* An overwrite across a block boundary in the middle, then one inside the buffered one. */
    model_write(model, &size, f, BS - 1000, src + 5 * BS, 3000);
    model_write(model, &size, f, BS - 500, src + 6 * BS, 100);
    /* Seen at once through the same file (before the flush). */
    check_read(f, model, size, 65536, "overwrite, same file");
    cr_assert_eq(dfs_file_flush(f, &got), 0);
    cr_assert_eq(got.size, size);
    check_fresh(fs, fh_of(&a), model, size, BS / 3, "overwrite");

    /* Writes of 1..20000 bytes at random offsets inside the file, some sequential runs. */
    for (int i = 0; i < 40; i++) {
        size_t len = 1 + (size_t)(rnd_next(&seed) % 20000);
        size_t off = (size_t)(rnd_next(&seed) % (size - len));
        size_t from = (size_t)(rnd_next(&seed) % (cap - len));
        model_write(model, &size, f, off, src + from, len);
        if (i % 7 == 3) /* the next write right after this one */
            model_write(model, &size, f, off + len, src + from, len / 2);
    }
    cr_assert_eq(size, 3 * BS + BS / 2, "all inside the file");
    uint64_t end = 0;
    cr_assert(dfs_file_dirty(f, &end));
    cr_assert_eq(dfs_file_flush(f, &got), 0);
    cr_assert_eq(got.size, size);
    cr_assert_not(dfs_file_dirty(f, NULL));
    check_fresh(fs, fh_of(&a), model, size, 300000, "random writes");

    /* A write 1.5 blocks past the end: the gap reads as zeros and the size grows. */
    size_t hole = size, at = size + BS + BS / 2;
    model_write(model, &size, f, at, src + 7 * BS, 1000);
    cr_assert(dfs_file_dirty(f, &end));
    cr_assert_eq(end, at + 1000);
    cr_assert_eq(dfs_file_flush(f, &got), 0);
    cr_assert_eq(got.size, at + 1000);
    for (size_t i = hole; i < at; i++)
        cr_assert_eq(model[i], 0);
    check_fresh(fs, fh_of(&a), model, size, BS / 2 + 1, "hole");
    /* Within the hole alone. */
    struct dfs_file *g = NULL;
    uint8_t buf[4096];
    size_t n = 0;
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &g), 0);
    memset(buf, 0xAB, sizeof(buf));
    cr_assert_eq(dfs_file_read(g, hole + 100, sizeof(buf), buf, &n), 0);
    cr_assert_eq(n, sizeof(buf));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(buf[i], 0, "hole byte %zu", i);
    dfs_file_close(g);

    /* Overwrite the start of the hole and the head of the file, then a getattr shows the size
     * unchanged (writes inside the file do not grow it). */
    model_write(model, &size, f, hole, src + 100, 5000);
    model_write(model, &size, f, 0, src + 200, 10);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    cr_assert_eq(dfs_getattr(fs, NULL, fh_of(&a), &got), 0);
    cr_assert_eq(got.size, size);
    check_fresh(fs, fh_of(&a), model, size, 777777, "hole filled");
    /* The writer's own later reads see it too. */
    dfs_file_invalidate(f);
    check_read(f, model, size, BS, "writer after invalidate");

    dfs_file_close(f);
    free(model);
    free(src);
    finish(c, fs);
}

/* ---- 3. three distinct replicas ---- */

Test(client_data, every_block_on_three_distinct_chunkservers, .timeout = 120)
{
    struct tc_cluster *c = start(1, 4, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 5 * BS + 4321;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "three");
    struct dfs_file *f = NULL;
    rnd_fill(data, n, 3);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, 3);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);
    check_replicas(c, fh_of(&a), data, n, 0);
    check_fresh(fs, fh_of(&a), data, n, BS, "three replicas");
    free(data);
    finish(c, fs);
}

/* ---- 4. pipeline recovery ---- */

static bool cs_alive_at_leader(struct tc_cluster *c, uint64_t id)
{
    int leader = tc_wait_leader(c, T_LEADER_MS);
    cJSON *s = leader >= 0 ? tc_status(c, leader) : NULL;
    const cJSON *x;
    bool alive = false;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "chunkservers"))
    {
        uint64_t v = 0;
        if (cm_json_get_u64(x, "id", &v) == 0 && v == id)
            alive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive"));
    }
    cJSON_Delete(s);
    return alive;
}

Test(client_data, pipeline_recovers_from_a_dead_chunkserver_still_placed, .timeout = 120)
{
    /* Racks r0, r1, r2, r0: chunkserver 1 is alone in r1, so every placement names it while
     * the masters think it alive (the dead timeout is 30 s). */
    uint64_t ids[TC_MAX_CHUNKSERVERS];
    struct tc_cluster *c = start(1, 4, 3, ids);
    struct dfs *fs = open_fs(c);
    const size_t n = 6 * BS + 999;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "pipe");
    struct dfs_file *f = NULL;
    struct dfs_data_stats st;
    rnd_fill(data, n, 4);

    tc_cs_kill(c, 1);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, 4);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);
    cr_assert(cs_alive_at_leader(c, ids[1]), "the masters noticed the dead chunkserver already");

    dfs_data_stats(fs, &st);
    cr_assert_geq(st.pipeline_retries, 7, "every block was sent again (%llu retries)",
                  (unsigned long long)st.pipeline_retries);
    cr_assert_eq(st.blocks_written, 7);
    /* Topped up to 3 copies on the 3 live chunkservers. */
    check_replicas(c, fh_of(&a), data, n, ids[1]);
    check_fresh(fs, fh_of(&a), data, n, BS + 1, "after pipeline recovery");
    free(data);
    finish(c, fs);
}

/* ---- 4b. small blocks side by side ---- */

/* One file of n random bytes (seed), written and closed. */
static struct dfs_attr write_file(struct dfs *fs, const char *name, uint8_t *data, size_t n,
                                  uint64_t seed)
{
    struct dfs_attr a = create_file(fs, name);
    struct dfs_file *f = NULL;
    rnd_fill(data, n, seed);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, seed);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);
    return a;
}

Test(client_data, small_blocks_go_to_their_chunkservers_side_by_side, .timeout = 120)
{
    /* Racks r0, r1, r2, r0 as above: chunkserver 1 is in every placement. */
    static const size_t sizes[] = {1, 4096, 256 * 1024, 256 * 1024 + 1};
    uint64_t ids[TC_MAX_CHUNKSERVERS];
    struct tc_cluster *c = start(1, 4, 3, ids);
    struct dfs *fs = open_fs(c);
    uint8_t *data = xmalloc(256 * 1024 + 1);
    struct dfs_data_stats st;
    char name[32];

    /* Up to 256 KiB a block goes to its three chunkservers at once; above, down a pipeline. */
    for (size_t i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "small%zu", i);
        struct dfs_attr a = write_file(fs, name, data, sizes[i], 40 + i);
        check_replicas(c, fh_of(&a), data, sizes[i], 0);
        check_fresh(fs, fh_of(&a), data, sizes[i], 4096, "side by side");
    }
    dfs_data_stats(fs, &st);
    cr_assert_eq(st.blocks_written, 4);
    cr_assert_eq(st.side_by_side, 3, "%llu", (unsigned long long)st.side_by_side);
    cr_assert_eq(st.pipeline_retries, 0);

    /* A dead chunkserver the masters still place: the two live ones of each first attempt keep
     * their copies, and one more is stored on the fourth chunkserver. */
    tc_cs_kill(c, 1);
    for (size_t i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "dead%zu", i);
        struct dfs_attr a = write_file(fs, name, data, sizes[i], 50 + i);
        check_replicas(c, fh_of(&a), data, sizes[i], ids[1]);
        check_fresh(fs, fh_of(&a), data, sizes[i], 4096, "side by side, one dead");
    }
    cr_assert(cs_alive_at_leader(c, ids[1]), "the masters noticed the dead chunkserver already");
    dfs_data_stats(fs, &st);
    cr_assert_eq(st.blocks_written, 7);
    cr_assert_eq(st.side_by_side, 6, "%llu", (unsigned long long)st.side_by_side);
    cr_assert_eq(st.pipeline_retries, 3, "one retry per block, %llu",
                 (unsigned long long)st.pipeline_retries);
    free(data);
    finish(c, fs);
}

/* ---- 5. read fallback ---- */

Test(client_data, reads_fall_back_to_another_replica, .timeout = 120)
{
    uint64_t ids[TC_MAX_CHUNKSERVERS];
    struct tc_cluster *c = start(1, 3, 0, ids);
    struct dfs *fs = open_fs(c);
    const size_t n = 3 * BS + 17;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "fallback");
    struct dfs_file *f = NULL;
    struct dfs_data_stats st0, st1;
    static struct listed ls[16];
    rnd_fill(data, n, 5);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, 5);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);

    /* kill -9 the chunkserver listed first for the first block: still alive for the masters,
     * so it stays first and the reader must fall back. */
    size_t ne = list_blocks(c, fh_of(&a), ls, 16);
    cr_assert_eq(ne, 4);
    int victim = -1;
    for (int k = 0; k < 3; k++)
        if (ids[k] == ls[0].reps[0])
            victim = k;
    cr_assert_geq(victim, 0);
    tc_cs_kill(c, victim);
    ne = list_blocks(c, fh_of(&a), ls, 16);
    cr_assert_eq(ls[0].reps[0], ids[victim], "the masters no longer list it first");

    /* And the first live copy of the second block damaged on disk: checked and skipped. */
    int bad = -1;
    for (unsigned r = 0; r < ls[1].nrep && bad < 0; r++)
        for (int k = 0; k < 3; k++)
            if (k != victim && ids[k] == ls[1].reps[r])
                bad = k;
    cr_assert_geq(bad, 0);
    char path[512];
    tc_cs_block_path(c, bad, ls[1].id, path, sizeof(path));
    FILE *bf = fopen(path, "r+b");
    cr_assert_not_null(bf, "no block file %s", path);
    cr_assert_eq(fseek(bf, 1000, SEEK_SET), 0);
    int ch = fgetc(bf);
    cr_assert_neq(ch, EOF);
    cr_assert_eq(fseek(bf, 1000, SEEK_SET), 0);
    fputc(ch ^ 0x40, bf);
    cr_assert_eq(fclose(bf), 0);

    dfs_data_stats(fs, &st0);
    check_fresh(fs, fh_of(&a), data, n, BS / 2, "one replica dead, one damaged");
    dfs_data_stats(fs, &st1);
    /* Every block listed with the dead one first fell back, and the damaged block (its sound
     * copy comes after the damaged one) too. */
    uint64_t want = 0;
    for (size_t i = 0; i < ne; i++)
        want += i == 1 || ls[i].reps[0] == ids[victim];
    cr_assert_geq(st1.read_fallbacks - st0.read_fallbacks, want, "%llu fallbacks, want %llu",
                  (unsigned long long)(st1.read_fallbacks - st0.read_fallbacks),
                  (unsigned long long)want);
    /* The damaged copy was read (and found damaged by its chunkserver). */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", c->cs[bad].port);
    struct cm_http_response r = {0};
    uint64_t corrupt = 0;
    cr_assert_eq(cm_http_get_json(c->http, url, &r), 0);
    cr_assert_eq(cm_json_get_u64(r.json, "corrupt", &corrupt), 0);
    cr_assert_eq(corrupt, 1);
    cm_http_response_clear(&r);
    free(data);
    finish(c, fs);
}

/* ---- 6. leader kill -9 while writing ---- */

struct killer {
    struct tc_cluster *c;
    struct dfs *fs;
    atomic_bool done;
    atomic_int killed; /* the master killed, -1: none */
};

/* Kills the leader once the writer has stored 3 blocks. */
static void *kill_leader(void *arg)
{
    struct killer *k = arg;
    uint64_t deadline = tc_now_ms() + 30000;
    struct dfs_data_stats st;
    for (;;) {
        dfs_data_stats(k->fs, &st);
        if (st.blocks_written >= 3 || atomic_load(&k->done) || tc_now_ms() > deadline)
            break;
        usleep(2000);
    }
    int leader = tc_wait_leader(k->c, T_LEADER_MS);
    if (leader >= 0 && !atomic_load(&k->done)) {
        tc_kill(k->c, leader);
        atomic_store(&k->killed, leader);
    }
    return NULL;
}

Test(client_data, leader_kill_during_writes, .timeout = 150)
{
    /* Heartbeats every 1.5 s: the new leader knows no live chunkserver for a while. */
    struct tc_cluster *c = start_with(3, 3, 0, "--block-size 1M --heartbeat-ms 1500", NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 10 * BS + 333, piece = BS / 2 + 77;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "failover");
    struct dfs_file *f = NULL;
    struct killer k = {.c = c, .fs = fs};
    pthread_t th;
    size_t flushed = 0;
    rnd_fill(data, n, 6);
    atomic_init(&k.done, false);
    atomic_init(&k.killed, -1);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    cr_assert_eq(pthread_create(&th, NULL, kill_leader, &k), 0);

    /* Pieces written, a flush after every 2 MiB or so. The library rides out the failover: its
     * mutations are retried at the new leader (exactly once), and so is placement until the new
     * leader has heard from the chunkservers; no call fails. */
    for (size_t off = 0; off < n;) {
        size_t len = piece < n - off ? piece : n - off;
        int rc = dfs_file_write(f, off, data + off, len);
        cr_assert_eq(rc, 0, "write at %zu: %s", off, cm_strerror(rc));
        off += len;
        /* The second half is written after the kill at the latest. */
        for (uint64_t until = tc_now_ms() + 10000; off >= n / 2 && atomic_load(&k.killed) < 0;) {
            cr_assert_lt(tc_now_ms(), until, "the leader is not killed");
            usleep(1000);
        }
        if (off - flushed >= 2 * BS || off == n) {
            rc = dfs_file_flush(f, NULL);
            cr_assert_eq(rc, 0, "flush at %zu: %s", off, cm_strerror(rc));
            flushed = off;
        }
    }
    atomic_store(&k.done, true);
    pthread_join(th, NULL);
    cr_assert_geq(atomic_load(&k.killed), 0, "the leader was not killed during the writes");
    dfs_file_close(f);
    check_fresh(fs, fh_of(&a), data, n, BS + 3, "after the leader kill");
    free(data);
    finish(c, fs);
}

/* ---- 7. a leader that has not heard from the chunkservers yet ---- */

struct writer {
    struct dfs_file *f;
    const uint8_t *data;
    size_t n;
    int rc;
    atomic_bool done;
};

static void *write_and_flush(void *arg)
{
    struct writer *w = arg;
    w->rc = dfs_file_write(w->f, 0, w->data, w->n);
    if (w->rc == 0)
        w->rc = dfs_file_flush(w->f, NULL);
    atomic_store(&w->done, true);
    return NULL;
}

Test(client_data, store_waits_for_a_new_leader_to_hear_chunkservers, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 2 * BS + 5;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "wait"), w0 = create_file(fs, "warm");
    struct dfs_file *f = NULL;
    struct dfs_master_conn_stats cs0, cs1;
    struct writer w = {.data = data, .n = n};
    pthread_t th;
    rnd_fill(data, n, 7);
    atomic_init(&w.done, false);

    /* Connections made before the restart (the reader at the end uses them). */
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&w0), &f), 0);
    cr_assert_eq(dfs_file_write(f, 0, "x", 1), 0);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);

    /* The chunkservers frozen, the master restarted: as leader of a new term it knows none
     * alive until they heartbeat again. */
    for (int k = 0; k < 3; k++)
        cr_assert_eq(kill(c->cs[k].pid, SIGSTOP), 0);
    tc_kill(c, 0);
    tc_start(c, 0);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0);
    cJSON *b = cJSON_Parse("{\"count\":3}"), *ans = NULL;
    int st = 0;
    int prc = tc_post_at(c, 0, "/v1/fs/place", b, &ans, &st);
    cr_assert_eq(prc, CM_E_UNAVAILABLE, "place: %s (%d)", cm_strerror(prc), st);
    cJSON_Delete(b);
    cJSON_Delete(ans);

    /* A writer starts and is put off (it asks the masters more than once)... It is another
     * client: this one may place a block where its last placement went for a second
     * (PLACE_CACHE_MS in client/dfs_data.c). */
    struct dfs *fs2 = open_fs(c);
    dfs_conn_stats(fs2, &cs0);
    cr_assert_eq(dfs_file_open(fs2, NULL, fh_of(&a), &w.f), 0);
    cr_assert_eq(pthread_create(&th, NULL, write_and_flush, &w), 0);
    uint64_t deadline = tc_now_ms() + 5000;
    cs1 = cs0;
    do {
        cr_assert_lt(tc_now_ms(), deadline, "the writer asked the masters %llu times",
                     (unsigned long long)(cs1.attempts - cs0.attempts));
        cr_assert_not(atomic_load(&w.done), "the write ended (%s) with no chunkserver known",
                      cm_strerror(w.rc));
        usleep(10 * 1000);
        dfs_conn_stats(fs2, &cs1);
    } while (cs1.attempts < cs0.attempts + 3);
    /* ...and goes on once the chunkservers are back. */
    for (int k = 0; k < 3; k++)
        cr_assert_eq(kill(c->cs[k].pid, SIGCONT), 0);
    pthread_join(th, NULL);
    cr_assert_eq(w.rc, 0, "write and flush: %s", cm_strerror(w.rc));
    dfs_file_close(w.f);
    dfs_close(fs2);
    check_fresh(fs, fh_of(&a), data, n, BS, "after waiting for placement");
    free(data);
    finish(c, fs);
}

/* ---- 8. close-to-open: another opener sees a flush after invalidating ---- */

Test(client_data, reader_sees_flushed_writes_after_invalidate, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 2 * BS + 100;
    uint8_t *data = xmalloc(n), *v2 = xmalloc(n);
    struct dfs_attr a = create_file(fs, "cto");
    struct dfs_file *w = NULL, *r = NULL;
    rnd_fill(data, n, 8);
    memcpy(v2, data, n);
    rnd_fill(v2 + BS / 2, 1000, 9);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &w), 0);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &r), 0);
    cr_assert_eq(dfs_file_write(w, 0, data, BS), 0);
    cr_assert_eq(dfs_file_flush(w, NULL), 0);
    check_read(r, data, BS, 4096, "first version");

    /* Grown and changed by the writer: not flushed, then flushed. */
    cr_assert_eq(dfs_file_write(w, BS, data + BS, n - BS), 0);
    cr_assert_eq(dfs_file_write(w, BS / 2, v2 + BS / 2, 1000), 0);
    dfs_file_invalidate(r);
    check_read(r, data, BS, 65536, "unflushed writes are not visible to others");
    cr_assert_eq(dfs_file_flush(w, NULL), 0);
    dfs_file_invalidate(r);
    check_read(r, v2, n, 65536, "flushed writes after invalidate");
    dfs_file_close(w);

    /* Truncated by someone else: the reader sees it after invalidating. */
    struct dfs_setattr sa = {.valid = DFS_SET_SIZE, .size = 1000};
    cr_assert_eq(dfs_setattr(fs, NULL, fh_of(&a), &sa, NULL), 0);
    dfs_file_invalidate(r);
    check_read(r, v2, 1000, 333, "truncated");
    dfs_file_close(r);
    free(data);
    free(v2);
    finish(c, fs);
}

/* ---- 9. several writers at once through one dfs ---- */

struct par {
    struct dfs *fs;
    struct dfs_fh fh;
    const uint8_t *data;
    size_t n;
    int rc;
};

static void *par_write(void *arg)
{
    struct par *p = arg;
    struct dfs_file *f = NULL;
    if ((p->rc = dfs_file_open(p->fs, NULL, p->fh, &f)) != 0)
        return NULL;
    for (size_t off = 0; off < p->n && p->rc == 0; off += 300000)
        p->rc = dfs_file_write(f, off, p->data + off, p->n - off < 300000 ? p->n - off : 300000);
    if (p->rc == 0)
        p->rc = dfs_file_flush(f, NULL);
    dfs_file_close(f);
    return NULL;
}

Test(client_data, concurrent_writers_share_one_dfs, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    enum { NW = 4 };
    const size_t n = 2 * BS + 4097;
    struct par p[NW];
    pthread_t th[NW];
    uint8_t *data[NW];
    for (int i = 0; i < NW; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        struct dfs_attr a = create_file(fs, name);
        data[i] = xmalloc(n);
        rnd_fill(data[i], n, 20 + (uint64_t)i);
        p[i] = (struct par){.fs = fs, .fh = fh_of(&a), .data = data[i], .n = n};
    }
    for (int i = 0; i < NW; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, par_write, &p[i]), 0);
    for (int i = 0; i < NW; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NW; i++) {
        cr_assert_eq(p[i].rc, 0, "writer %d: %s", i, cm_strerror(p[i].rc));
        check_fresh(fs, p[i].fh, data[i], n, BS / 4, "parallel writer");
        free(data[i]);
    }
    struct dfs_data_stats st;
    dfs_data_stats(fs, &st);
    cr_assert_eq(st.blocks_written, NW * 3);
    cr_assert_eq(st.bytes_written, NW * n);
    finish(c, fs);
}

/* ---- 10. errors: a lost write stays reported ---- */

Test(client_data, a_failed_flush_drops_the_writes_and_stays_reported, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    struct dfs_attr a = create_file(fs, "gone");
    struct dfs_file *f = NULL;
    uint8_t buf[5000];
    size_t got = 0;
    rnd_fill(buf, sizeof(buf), 10);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    cr_assert_eq(dfs_file_write(f, 0, buf, sizeof(buf)), 0);
    cr_assert_eq(dfs_unlink(fs, NULL, root, "gone"), 0);
    uint64_t end = 0;
    cr_assert(dfs_file_dirty(f, &end));
    cr_assert_eq(end, sizeof(buf));
    cr_assert_eq(dfs_file_flush(f, NULL), CM_E_STALE);
    cr_assert_not(dfs_file_dirty(f, NULL), "the writes were dropped");
    cr_assert_eq(dfs_file_flush(f, NULL), CM_E_STALE, "a lost write stays reported");
    cr_assert_eq(dfs_file_write(f, 0, buf, 10), CM_E_STALE);
    cr_assert_eq(dfs_file_read(f, 0, 10, buf, &got), CM_E_STALE, "the file is gone");
    dfs_file_close(f);
    finish(c, fs);
}

/* ---- 11. more extents than one listing gives ---- */

Test(client_data, files_of_many_small_blocks_list_in_pages, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs_with(c, 4096, 1);
    const size_t n = 1300 * 4096 + 10; /* 1301 blocks: two listings of at most 1024 */
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "small");
    struct dfs_file *f = NULL;
    struct dfs_data_stats st;
    rnd_fill(data, n, 11);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, 11);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);
    dfs_data_stats(fs, &st);
    cr_assert_eq(st.blocks_written, 1301);
    check_fresh(fs, fh_of(&a), data, n, n + 1, "1301 blocks, one read");
    check_fresh(fs, fh_of(&a), data, n, 3 * BS / 2 + 1, "1301 blocks");
    free(data);
    finish(c, fs);
}

/* ---- 12. members after a broken hop are tried again ---- */

Test(client_data, members_after_a_broken_hop_are_not_given_up, .timeout = 120)
{
    /* Three live chunkservers in rack r0 and a registered one in rack r1 that nothing serves,
     * with less free space: every placement is live, dead (the only other rack), live, so the
     * third member is "not reached" behind the dead one and must get the block on retry. */
    struct tc_cluster *c = start(1, 3, 1, NULL);
    cJSON *b = cJSON_Parse("{\"storage_id\":\"fake-dead\",\"addr\":\"127.0.0.1:1\",\"rack\":\"r1\","
                           "\"capacity\":2000000000,\"used\":0,\"free\":1000000000}"),
          *ans = NULL;
    uint64_t dead = 0;
    cr_assert_eq(tc_post(c, "/v1/cs/register", b, &ans, 10000), 0);
    cr_assert_eq(cm_json_get_u64(ans, "cs_id", &dead), 0);
    cJSON_Delete(b);
    cJSON_Delete(ans);
    cr_assert(cs_alive_at_leader(c, dead));

    struct dfs *fs = open_fs(c);
    const size_t n = 4 * BS + 1;
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "hop");
    struct dfs_file *f = NULL;
    struct dfs_data_stats st;
    rnd_fill(data, n, 12);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    write_all(f, data, n, 12);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    dfs_file_close(f);
    dfs_data_stats(fs, &st);
    cr_assert_eq(st.blocks_written, 5);
    cr_assert_eq(st.pipeline_retries, 5, "one retry per block, %llu",
                 (unsigned long long)st.pipeline_retries);
    check_replicas(c, fh_of(&a), data, n, dead);
    check_fresh(fs, fh_of(&a), data, n, BS, "broken hop");
    free(data);
    finish(c, fs);
}

/* ---- 13. read-ahead ---- */

#define RA (8u << 20) /* client/dfs_data.c's READAHEAD: the window fetched past a read */

Test(client_data, sequential_reads_go_on_into_the_window_read_ahead, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 3 * RA + 12345, step = 128 * 1024;
    uint8_t *data = xmalloc(n), *got = xmalloc(n);
    struct dfs_attr a = write_file(fs, "ra", data, n, 13);
    struct dfs_data_stats st0, st1;

    dfs_data_stats(fs, &st0);
    check_fresh(fs, fh_of(&a), data, n, step, "in order");
    dfs_data_stats(fs, &st1);
    /* Windows at 0 (fetched by the first read), RA, 2 RA and 3 RA (read ahead). */
    cr_assert_geq(st1.readahead_hits - st0.readahead_hits, 3, "%llu windows read ahead used",
                  (unsigned long long)(st1.readahead_hits - st0.readahead_hits));
    cr_assert_geq(st1.readaheads - st0.readaheads, st1.readahead_hits - st0.readahead_hits);

    /* As FUSE's threads deliver the kernel's read-ahead: pairs swapped, so a read comes after
     * the next one, also across the windows' edges. */
    struct dfs_file *f = NULL;
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    for (size_t i = 0; i * step < n; i += 2) {
        for (size_t k = 2; k-- > 0;) {
            size_t off = (i + k) * step, g = 0;
            if (off >= n)
                continue;
            cr_assert_eq(dfs_file_read(f, off, step, got + off, &g), 0);
            cr_assert_eq(g, n - off < step ? n - off : step, "read at %zu", off);
        }
    }
    cr_assert(memcmp(got, data, n) == 0, "reads out of order got other bytes");
    dfs_data_stats(fs, &st0);
    /* The first read (at step) fetched [step, RA + step): windows at RA + step and 2 RA + step
     * were read ahead; the file ends before 3 RA + step. */
    cr_assert_geq(st0.readahead_hits - st1.readahead_hits, 2, "%llu windows read ahead used",
                  (unsigned long long)(st0.readahead_hits - st1.readahead_hits));
    dfs_file_close(f);
    free(data);
    free(got);
    finish(c, fs);
}

/* Reads all of f sequentially in 128 KiB pieces, checking the bytes against want and, after
 * each read, that the read buffers of the whole handle stay within budget. */
static void read_within(struct dfs *fs, struct dfs_file *f, const uint8_t *want, size_t n,
                        size_t budget)
{
    const size_t step = 128 * 1024;
    uint8_t *got = xmalloc(step);
    struct dfs_data_stats st;
    for (size_t off = 0; off < n; off += step) {
        size_t g = 0, w = n - off < step ? n - off : step;
        cr_assert_eq(dfs_file_read(f, off, step, got, &g), 0);
        cr_assert_eq(g, w, "read at %zu", off);
        cr_assert(memcmp(got, want + off, w) == 0, "read at %zu", off);
        dfs_data_stats(fs, &st);
        cr_assert_leq(st.readahead_bytes, budget, "%llu bytes of read buffers at %zu",
                      (unsigned long long)st.readahead_bytes, off);
    }
    free(got);
}

/* Two sequential readers under a budget of 20 MiB: while the first reads, it holds its window
 * and the one read ahead (16 MiB), so the second, reading meanwhile, gets no window of 8 MiB
 * and reads what it asks for, the same bytes. A reader at the end of its file keeps one window;
 * closing both gives everything back. */
Test(client_data, read_buffers_of_open_files_stay_within_the_budget, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    char masters[512] = "";
    size_t len = 0;
    for (int i = 0; i < c->n; i++)
        len += (size_t)snprintf(masters + len, sizeof(masters) - len, "%s127.0.0.1:%u",
                                i > 0 ? "," : "", c->m[i].client_port);
    const size_t budget = 20u << 20, n = 3 * RA + 12345;
    struct dfs_options opt = {.op_timeout_ms = 30000,
                              .block_size = BS,
                              .data_timeout_ms = 10000,
                              .readahead_budget = budget};
    struct dfs *fs = NULL;
    cr_assert_eq(dfs_open(masters, &opt, &fs), 0);
    uint8_t *d1 = xmalloc(n), *d2 = xmalloc(n);
    struct dfs_attr a1 = write_file(fs, "b1", d1, n, 21), a2 = write_file(fs, "b2", d2, n, 22);
    struct dfs_file *f1 = NULL, *f2 = NULL;
    struct dfs_data_stats st0, st1;

    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a1), &f1), 0);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a2), &f2), 0);
    dfs_data_stats(fs, &st0);
    read_within(fs, f1, d1, 2 * RA, budget); /* stops inside the file: two windows held */
    dfs_data_stats(fs, &st1);
    cr_assert_geq(st1.readahead_hits - st0.readahead_hits, 1, "the first reader read ahead");
    cr_assert_eq(st1.readahead_bytes, 2 * RA, "the first reader's buffers are held");
    read_within(fs, f2, d2, n, budget);
    dfs_data_stats(fs, &st0);
    cr_assert_gt(st0.readahead_over_budget, st1.readahead_over_budget,
                 "the second reader was not refused a window");
    dfs_file_close(f2);
    read_within(fs, f1, d1, n, budget); /* again from the start, to the end */
    dfs_data_stats(fs, &st1);
    cr_assert_leq(st1.readahead_bytes, RA, "%llu bytes held at the end",
                  (unsigned long long)st1.readahead_bytes);
    dfs_file_close(f1);
    dfs_data_stats(fs, &st0);
    cr_assert_eq(st0.readahead_bytes, 0, "%llu bytes still counted after the closes",
                 (unsigned long long)st0.readahead_bytes);
    free(d1);
    free(d2);
    finish(c, fs);
}

/* Reads [0, upto) in 1 MiB pieces and checks them against want. */
static void read_upto(struct dfs_file *f, const uint8_t *want, size_t upto)
{
    uint8_t *got = xmalloc(BS);
    for (size_t off = 0; off < upto; off += BS) {
        size_t g = 0;
        cr_assert_eq(dfs_file_read(f, off, BS, got, &g), 0);
        cr_assert_eq(g, BS);
        cr_assert(memcmp(got, want + off, BS) == 0, "read at %zu", off);
    }
    free(got);
}

/* Until a read-ahead has finished (at most 20 s). */
static void wait_readahead(struct dfs *fs, uint64_t before)
{
    struct dfs_data_stats st;
    for (int i = 0; i < 2000; i++) {
        dfs_data_stats(fs, &st);
        if (st.readaheads > before)
            return;
        usleep(10 * 1000);
    }
    cr_assert_fail("no read-ahead finished");
}

Test(client_data, a_window_read_ahead_before_a_write_is_not_read, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = 2 * RA + 100;
    uint8_t *data = xmalloc(n), *got = xmalloc(BS);
    struct dfs_attr a = write_file(fs, "raw", data, n, 14);
    struct dfs_file *r = NULL, *w = NULL;
    struct dfs_data_stats st;
    size_t g = 0;

    /* Another opener's write, flushed after the window was read ahead: the reader sees it
     * once it invalidates (what the mount does at open). */
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &r), 0);
    dfs_data_stats(fs, &st);
    read_upto(r, data, RA);
    wait_readahead(fs, st.readaheads); /* [RA, 2 RA) fetched, old bytes */
    rnd_fill(data + RA + 10, 1000, 15);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &w), 0);
    cr_assert_eq(dfs_file_write(w, RA + 10, data + RA + 10, 1000), 0);
    cr_assert_eq(dfs_file_flush(w, NULL), 0);
    dfs_file_close(w);
    dfs_file_invalidate(r);
    cr_assert_eq(dfs_file_read(r, RA, BS, got, &g), 0);
    cr_assert_eq(g, BS);
    cr_assert(memcmp(got, data + RA, BS) == 0, "the window read ahead before the write was read");

    /* Its own write: seen without any invalidation. */
    dfs_data_stats(fs, &st);
    read_upto(r, data, RA);
    wait_readahead(fs, st.readaheads);
    rnd_fill(data + RA + 5000, 3000, 16);
    cr_assert_eq(dfs_file_write(r, RA + 5000, data + RA + 5000, 3000), 0);
    cr_assert_eq(dfs_file_read(r, RA, BS, got, &g), 0);
    cr_assert_eq(g, BS);
    cr_assert(memcmp(got, data + RA, BS) == 0, "its own write was not read back");
    dfs_file_close(r);
    check_fresh(fs, fh_of(&a), data, n, BS, "after both writes");
    free(data);
    free(got);
    finish(c, fs);
}

/* ---- 14. stored blocks a quiet writer left are committed by age ---- */

Test(client_data, commit_aged_commits_stored_blocks_that_waited, .timeout = 120)
{
    struct tc_cluster *c = start(1, 3, 0, NULL);
    struct dfs *fs = open_fs(c);
    const size_t n = BS + 1000; /* one whole block (stored at once) and 1000 bytes buffered */
    uint8_t *data = xmalloc(n);
    struct dfs_attr a = create_file(fs, "quiet"), got;
    struct dfs_file *f = NULL;
    rnd_fill(data, n, 17);
    cr_assert_eq(dfs_file_open(fs, NULL, fh_of(&a), &f), 0);
    cr_assert_eq(dfs_file_write(f, 0, data, n), 0);
    cr_assert_eq(dfs_file_commit_aged(f, 3600 * 1000), 0);
    cr_assert_eq(dfs_getattr(fs, NULL, fh_of(&a), &got), 0);
    cr_assert_eq(got.size, 0, "committed before it was that old");
    cr_assert_eq(dfs_file_commit_aged(f, 0), 0);
    cr_assert_eq(dfs_getattr(fs, NULL, fh_of(&a), &got), 0);
    cr_assert_eq(got.size, BS, "the stored block is committed, the buffered bytes are not");
    uint64_t end = 0;
    cr_assert(dfs_file_dirty(f, &end));
    cr_assert_eq(end, n);
    cr_assert_eq(dfs_file_flush(f, NULL), 0);
    cr_assert_not(dfs_file_dirty(f, NULL));
    dfs_file_close(f);
    check_fresh(fs, fh_of(&a), data, n, 4096, "after the aged commit and the flush");
    free(data);
    finish(c, fs);
}
