/* Three masters and three real dfs-chunkservers: blocks of deleted files are deleted on the
 * chunkservers and the leader acknowledges them (GC_ACK), so its pending garbage goes back to
 * 0; a chunkserver that is dead does not hold the acknowledgement up. A block stored and never
 * committed is deleted as an orphan once the replicated orphan bound passes it, and its late
 * commit is refused. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/json.h"

#define T_LEADER_MS 10000
#define T_GC_MS     30000
#define MASTER_ARGS "--cs-dead-timeout-s 2"
#define CS_ARGS     "--heartbeat-ms 200"
#define N_CS        3
#define N_FILES     5
#define BLOCK_LEN   (16 * 1024)

/* The leader's view: chunkservers alive (ids by k into ids) and the pending garbage. */
static int leader_view(struct tc_cluster *c, uint64_t ids[N_CS], uint64_t *gc_pending)
{
    int leader = tc_wait_leader(c, T_LEADER_MS);
    cJSON *s = leader >= 0 ? tc_status(c, leader) : NULL;

    *gc_pending = UINT64_MAX;
    if (s == NULL)
        return 0;
    cm_json_get_u64(cJSON_GetObjectItemCaseSensitive(s, "namespace"), "gc_pending", gc_pending);
    cJSON_Delete(s);
    return tc_cs_view(c, N_CS, ids, NULL);
}

static void start_cluster(struct tc_cluster *c, uint64_t ids[N_CS])
{
    tc_init(c, 3, MASTER_ARGS);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < N_CS; k++)
        tc_cs_start(c, k, 0, CS_ARGS);
    tc_wait_cs_alive(c, N_CS, ids, T_GC_MS);
}

/* The cm code of a GET of the block from chunkserver k. */
static int get_block(struct tc_cluster *c, int k, uint64_t block)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blocks/%016llx", c->cs[k].port,
             (unsigned long long)block);
    struct cm_http_call get = {.method = "GET", .url = url, .flags = CM_HTTP_CALL_RAW};
    struct cm_http_response r = {0};
    int rc = cm_http_call(c->http, &get, &r);
    cm_http_response_clear(&r);
    return rc;
}

/* File "f<i>" with one block on all three chunkservers (one pipeline), committed. */
static uint64_t write_file(struct tc_cluster *c, const uint64_t ids[N_CS], int i, uint64_t *seq)
{
    static uint8_t data[BLOCK_LEN];
    char name[16];
    for (size_t k = 0; k < sizeof(data); k++)
        data[k] = (uint8_t)(k * 7 + (size_t)i);
    snprintf(name, sizeof(name), "f%d", i);
    return tc_write_block_file(c, 9, seq, name, ids, data, sizeof(data));
}

/* Writes N_FILES files (their blocks into blocks), checks every copy is there, kills
 * chunkserver kill (unless -1), then deletes the files. */
static void write_and_delete(struct tc_cluster *c, const uint64_t ids[N_CS], uint64_t *blocks,
                             int kill)
{
    uint64_t seq = 0, gc;
    for (int i = 0; i < N_FILES; i++)
        blocks[i] = write_file(c, ids, i, &seq);
    for (int i = 0; i < N_FILES; i++)
        for (int k = 0; k < N_CS; k++)
            cr_assert_eq(get_block(c, k, blocks[i]), 0, "block %d on chunkserver %d", i, k);
    if (kill >= 0)
        tc_cs_kill(c, kill); /* keeps its copies, and the leader sees it alive for a while */
    for (int i = 0; i < N_FILES; i++)
        cJSON_Delete(
            tc_post_fmt(c, "/v1/fs/unlink",
                        "{\"client\":9,\"seq\":%llu,\"parent\":1,\"pgen\":1,\"name\":\"f%d\"}",
                        (unsigned long long)++seq, i));
    uint64_t tmp[N_CS];
    leader_view(c, tmp, &gc);
    cr_assert_gt(gc, 0, "the deleted files' blocks are pending garbage");
}

/* Waits until the leader's pending garbage is 0 and the live chunkservers (not skip) have
 * deleted every block. */
static void wait_collected(struct tc_cluster *c, const uint64_t *blocks, int skip)
{
    uint64_t deadline = tc_now_ms() + T_GC_MS, gc = UINT64_MAX, ids[N_CS];
    for (;;) {
        bool gone = true;
        for (int i = 0; i < N_FILES; i++)
            for (int k = 0; k < N_CS; k++)
                if (k != skip && get_block(c, k, blocks[i]) != CM_E_NOENT)
                    gone = false;
        leader_view(c, ids, &gc);
        if (gone && gc == 0)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "blocks deleted: %d, gc_pending %llu", gone,
                     (unsigned long long)gc);
        usleep(100 * 1000);
    }
}

Test(cs_gc, deleted_blocks_are_collected_and_acknowledged, .timeout = 180)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], blocks[N_FILES];
    start_cluster(&c, ids);
    write_and_delete(&c, ids, blocks, -1);
    wait_collected(&c, blocks, -1);
    tc_destroy(&c);
}

Test(cs_gc, a_dead_chunkserver_does_not_hold_up_acknowledgement, .timeout = 180)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], blocks[N_FILES];
    start_cluster(&c, ids);
    write_and_delete(&c, ids, blocks, 2);
    wait_collected(&c, blocks, 2);
    tc_destroy(&c);
}

/* ---- orphans ---- */

#define ORPHAN_ARGS "--cs-dead-timeout-s 2 --orphan-grace-s 1"

/* The orphan bound master i has applied (0 when it does not answer). */
static uint64_t orphan_below_at(struct tc_cluster *c, int i)
{
    cJSON *s = tc_status(c, i);
    uint64_t v = 0;
    if (s != NULL)
        cm_json_get_u64(cJSON_GetObjectItemCaseSensitive(s, "namespace"), "orphan_below", &v);
    cJSON_Delete(s);
    return v;
}

Test(cs_gc, a_block_never_committed_is_deleted_and_its_late_commit_refused, .timeout = 180)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    tc_init(&c, 3, ORPHAN_ARGS);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < N_CS; k++)
        tc_cs_start(&c, k, 0, CS_ARGS);
    tc_wait_cs_alive(&c, N_CS, ids, T_GC_MS);
    uint64_t kept = write_file(&c, ids, 0, &seq); /* committed: referenced */

    /* A client that stores a block and never commits it (it crashed, or sat on it too long). */
    cJSON *a = tc_post_fmt(&c, "/v1/fs/create",
                           "{\"client\":9,\"seq\":%llu,\"parent\":1,\"pgen\":1,\"name\":\"late\","
                           "\"mode\":420,\"excl\":true}",
                           (unsigned long long)++seq);
    const cJSON *attr = cJSON_GetObjectItemCaseSensitive(a, "attr");
    uint64_t ino = 0, gen = 0, orphan = 0;
    cm_json_get_u64(attr, "ino", &ino);
    cm_json_get_u64(attr, "gen", &gen);
    cJSON_Delete(a);
    a = tc_post_fmt(&c, "/v1/fs/alloc-blocks", "{\"client\":9,\"seq\":%llu,\"count\":1}",
                    (unsigned long long)++seq);
    cm_json_get_u64(a, "value", &orphan);
    cJSON_Delete(a);
    static uint8_t data[BLOCK_LEN];
    memset(data, 0x5a, sizeof(data));
    char url[256];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%u/blocks/%016llx?pipeline=127.0.0.1:%u,127.0.0.1:%u", c.cs[0].port,
             (unsigned long long)orphan, c.cs[1].port, c.cs[2].port);
    struct cm_http_call put = {.method = "PUT", .url = url, .body = data, .body_len = sizeof(data)};
    struct cm_http_response r = {0};
    cr_assert_eq(cm_http_call(c.http, &put, &r), 0, "block PUT");
    uint64_t crc = 0;
    cm_json_get_u64(r.json, "crc32c", &crc);
    cm_http_response_clear(&r);
    for (int k = 0; k < N_CS; k++)
        cr_assert_eq(get_block(&c, k, orphan), 0, "stored on chunkserver %d", k);

    /* The bound passes it (one grace to record it, one to age it), then every copy goes. */
    uint64_t deadline = tc_now_ms() + T_GC_MS;
    for (;;) {
        int leader = tc_wait_leader(&c, T_LEADER_MS);
        bool gone = true;
        for (int k = 0; k < N_CS; k++)
            if (get_block(&c, k, orphan) != CM_E_NOENT)
                gone = false;
        if (gone && leader >= 0 && orphan_below_at(&c, leader) > orphan)
            break;
        cr_assert_lt(tc_now_ms(), deadline, "orphan %llu: deleted %d, bound %llu",
                     (unsigned long long)orphan, gone,
                     (unsigned long long)(leader >= 0 ? orphan_below_at(&c, leader) : 0));
        usleep(100 * 1000);
    }
    for (int k = 0; k < N_CS; k++)
        cr_assert_eq(get_block(&c, k, kept), 0, "a referenced block stays on chunkserver %d", k);

    /* Its commit now: refused on every master alike, never a file pointing at a deleted block. */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"client\":9,\"seq\":%llu,\"ino\":%llu,\"gen\":%llu,\"off\":0,\"len\":%d,"
             "\"size\":%d,\"blocks\":[{\"id\":%llu,\"len\":%d,\"crc32c\":%llu,"
             "\"replicas\":[%llu,%llu,%llu]}]}",
             (unsigned long long)++seq, (unsigned long long)ino, (unsigned long long)gen, BLOCK_LEN,
             BLOCK_LEN, (unsigned long long)orphan, BLOCK_LEN, (unsigned long long)crc,
             (unsigned long long)ids[0], (unsigned long long)ids[1], (unsigned long long)ids[2]);
    cJSON *b = cJSON_Parse(body), *ans = NULL;
    cr_assert_eq(tc_post(&c, "/v1/fs/commit", b, &ans, 10000), CM_E_EXPIRED);
    cJSON_Delete(b);
    cJSON_Delete(ans);

    /* The bound is replicated state: a new leader has it. */
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    uint64_t bound = orphan_below_at(&c, leader);
    tc_kill(&c, leader);
    int next = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(next, 0, "no new leader");
    cr_assert_geq(orphan_below_at(&c, next), bound);
    tc_destroy(&c);
}
