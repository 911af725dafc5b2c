/* Three masters and real dfs-chunkserver processes: registration (ids replicated and stable
 * across a leader failover), liveness with a short dead timeout, placement, and the rejection
 * of malformed chunkserver messages. */
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
#define T_CS_MS     30000
#define MASTER_ARGS "--cs-dead-timeout-s 2"
#define CS_ARGS     "--heartbeat-ms 200"

/* The chunkservers in master i's /status: count, alive count, and the id of each chunkserver
 * k (by its port; 0 when not listed). */
struct cs_view {
    int n, alive;
    uint64_t id[TC_MAX_CHUNKSERVERS];
    bool is_alive[TC_MAX_CHUNKSERVERS];
};

static bool view(struct tc_cluster *c, int i, int n_cs, struct cs_view *v)
{
    memset(v, 0, sizeof(*v));
    cJSON *s = tc_status(c, i);
    if (s == NULL)
        return false;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "chunkservers"), *x;
    cJSON_ArrayForEach(x, a)
    {
        const char *addr = NULL;
        uint64_t id = 0;
        cm_json_get_str(x, "addr", 256, &addr, NULL);
        cm_json_get_u64(x, "id", &id);
        const cJSON *al = cJSON_GetObjectItemCaseSensitive(x, "alive");
        v->n++;
        v->alive += cJSON_IsTrue(al);
        for (int k = 0; addr != NULL && k < n_cs; k++) {
            char want[32];
            snprintf(want, sizeof(want), "127.0.0.1:%u", c->cs[k].port);
            if (strcmp(addr, want) == 0) {
                v->id[k] = id;
                v->is_alive[k] = cJSON_IsTrue(al);
            }
        }
    }
    cJSON_Delete(s);
    return true;
}

/* Waits until the leader sees n_cs registered chunkservers of which `alive` are alive; returns
 * the leader's index. */
static int wait_view(struct tc_cluster *c, int n_cs, int alive, struct cs_view *v)
{
    uint64_t deadline = tc_now_ms() + T_CS_MS;
    while (tc_now_ms() < deadline) {
        int leader = tc_wait_leader(c, T_LEADER_MS);
        if (leader >= 0 && view(c, leader, n_cs, v) && v->n == n_cs && v->alive == alive)
            return leader;
        usleep(100 * 1000);
    }
    cr_assert_fail("leader does not see %d chunkservers with %d alive (sees %d, %d)", n_cs, alive,
                   v->n, v->alive);
    return -1;
}

static void start_cluster(struct tc_cluster *c, int n_cs)
{
    tc_init(c, 3, MASTER_ARGS);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < n_cs; k++)
        tc_cs_start(c, k, 3, CS_ARGS);
}

static cJSON *place(struct tc_cluster *c, int count)
{
    cJSON *b = cJSON_CreateObject(), *ans = NULL;
    cJSON_AddNumberToObject(b, "count", count);
    int rc = tc_post(c, "/v1/fs/place", b, &ans, 10000);
    cJSON_Delete(b);
    cr_assert_eq(rc, 0, "place: %s", cm_strerror(rc));
    return ans;
}

Test(master_cs, register_alive_place_and_dead, .timeout = 120)
{
    struct tc_cluster c;
    struct cs_view v;
    start_cluster(&c, 3);
    wait_view(&c, 3, 3, &v);
    for (int k = 0; k < 3; k++) {
        cr_assert_gt(v.id[k], 0, "chunkserver %d not listed by its address", k);
        for (int j = 0; j < k; j++)
            cr_assert_neq(v.id[k], v.id[j], "two chunkservers share id %lu",
                          (unsigned long)v.id[k]);
    }

    /* Placement: three distinct live chunkservers. */
    cJSON *ans = place(&c, 3);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ans, "chunkservers"), *x;
    cr_assert_eq(cJSON_GetArraySize(a), 3);
    uint64_t seen[3];
    int n = 0;
    cJSON_ArrayForEach(x, a)
    {
        uint64_t id = 0;
        cr_assert_eq(cm_json_get_u64(x, "id", &id), 0);
        for (int j = 0; j < n; j++)
            cr_assert_neq(seen[j], id, "placement repeats chunkserver %lu", (unsigned long)id);
        seen[n++] = id;
    }
    cJSON_Delete(ans);

    /* statfs reports the live chunkservers' space. */
    cJSON *b = cJSON_CreateObject();
    cr_assert_eq(tc_post(&c, "/v1/fs/statfs", b, &ans, 10000), 0);
    cJSON_Delete(b);
    uint64_t live = 0, capacity = 0, avail = 0;
    cr_assert_eq(cm_json_get_u64(ans, "chunkservers_live", &live), 0);
    cr_assert_eq(cm_json_get_u64(ans, "capacity_bytes", &capacity), 0);
    cr_assert_eq(cm_json_get_u64(ans, "free_bytes", &avail), 0);
    cr_assert_eq(live, 3);
    cr_assert_gt(capacity, 0);
    cr_assert_leq(avail, capacity);
    cJSON_Delete(ans);

    /* kill -9 one: dead after the 2 s timeout, and no longer placed. */
    uint64_t dead_id = v.id[0];
    tc_cs_kill(&c, 0);
    uint64_t t0 = tc_now_ms();
    /* Waits for exactly that view: under load (a sanitizer build beside other tests) a live
     * chunkserver can miss its heartbeats for a moment and be counted dead until its next one,
     * so "two alive" alone could be the wrong two. */
    for (;;) {
        wait_view(&c, 3, 2, &v);
        if (!v.is_alive[0] && v.is_alive[1] && v.is_alive[2])
            break;
        cr_assert_lt(tc_now_ms() - t0, T_CS_MS, "chunkserver 0 not the one dead");
        usleep(100 * 1000);
    }
    cr_assert_geq(tc_now_ms() - t0, 1000, "declared dead too early");
    ans = place(&c, 3);
    a = cJSON_GetObjectItemCaseSensitive(ans, "chunkservers");
    cr_assert_eq(cJSON_GetArraySize(a), 2, "only the two live chunkservers are placed");
    cJSON_ArrayForEach(x, a)
    {
        uint64_t id = 0;
        cm_json_get_u64(x, "id", &id);
        cr_assert_neq(id, dead_id);
    }
    cJSON_Delete(ans);

    /* It comes back with the same id (same storage directory). */
    tc_cs_start(&c, 0, 3, CS_ARGS);
    wait_view(&c, 3, 3, &v);
    cr_assert_eq(v.id[0], dead_id);
    tc_destroy(&c);
}

Test(master_cs, registrations_survive_leader_kill, .timeout = 120)
{
    struct tc_cluster c;
    struct cs_view before, after;
    tc_init(&c, 3, MASTER_ARGS " --snapshot-entries 10");
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < 3; k++)
        tc_cs_start(&c, k, 3, CS_ARGS);
    int leader = wait_view(&c, 3, 3, &before);
    /* Enough entries that every master snapshots the table (and restores it on restart). */
    for (int k = 0; k < 30; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        cr_assert_eq(tc_put(&c, "t", (uint64_t)k + 1, key, "v", 10000), 0);
    }
    leader = tc_wait_leader(&c, T_LEADER_MS);
    tc_kill(&c, leader);
    int nl = wait_view(&c, 3, 3, &after);
    cr_assert_neq(nl, leader);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(after.id[k], before.id[k], "chunkserver %d changed id across failover", k);
    /* The killed master comes back and learns the table from the log. */
    tc_start(&c, leader);
    uint64_t deadline = tc_now_ms() + T_CS_MS;
    struct cs_view back;
    while (tc_now_ms() < deadline && (!view(&c, leader, 3, &back) || back.n != 3))
        usleep(100 * 1000);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(back.id[k], before.id[k]);
    cJSON *s = tc_status(&c, leader);
    uint64_t snap = 0;
    cr_assert_not_null(s);
    cm_json_get_u64(s, "snapshot_index", &snap);
    cJSON_Delete(s);
    cr_assert_gt(snap, 0, "the restarted master restored a snapshot");
    tc_destroy(&c);
}

static uint64_t u64(const cJSON *o, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "field %s", field);
    return v;
}

/* Waits until the leader counts `want` blocks on each of the first n_cs chunkservers. */
static void wait_blocks(struct tc_cluster *c, int n_cs, uint64_t want)
{
    uint64_t deadline = tc_now_ms() + T_CS_MS;
    int ok = 0;
    while (tc_now_ms() < deadline && ok != n_cs) {
        int leader = tc_wait_leader(c, T_LEADER_MS);
        cJSON *s = leader >= 0 ? tc_status(c, leader) : NULL;
        const cJSON *x;
        ok = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "chunkservers"))
        {
            uint64_t b = 99;
            cm_json_get_u64(x, "blocks", &b);
            ok += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive")) && b == want;
        }
        cJSON_Delete(s);
        if (ok != n_cs)
            usleep(100 * 1000);
    }
    cr_assert_eq(ok, n_cs, "not every chunkserver holds %lu block(s)", (unsigned long)want);
}

Test(master_cs, under_replicated_block_is_copied_and_freed_block_deleted, .timeout = 120)
{
    struct tc_cluster c;
    struct cs_view v;
    start_cluster(&c, 3);
    wait_view(&c, 3, 3, &v);
    cJSON *a = tc_post_fmt(&c, "/v1/fs/create",
                           "{\"client\":7,\"seq\":1,\"parent\":1,\"pgen\":1,\"name\":\"f\","
                           "\"mode\":420,\"excl\":true}");
    const cJSON *attr = cJSON_GetObjectItemCaseSensitive(a, "attr");
    uint64_t ino = u64(attr, "ino"), gen = u64(attr, "gen");
    cJSON_Delete(a);
    a = tc_post_fmt(&c, "/v1/fs/alloc-blocks", "{\"client\":7,\"seq\":2,\"count\":1}");
    uint64_t block = u64(a, "value");
    cJSON_Delete(a);

    /* The block on chunkserver 0 only, then committed with that one replica. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blocks/%016lx", c.cs[0].port,
             (unsigned long)block);
    struct cm_http_call call = {.method = "PUT", .url = url, .body = "hello", .body_len = 5};
    struct cm_http_response r = {0};
    cr_assert_eq(cm_http_call(c.http, &call, &r), 0);
    cr_assert_eq(r.status, 200);
    uint64_t crc = u64(r.json, "crc32c");
    cm_http_response_clear(&r);
    a = tc_post_fmt(
        &c, "/v1/fs/commit",
        "{\"client\":7,\"seq\":3,\"ino\":%lu,\"gen\":%lu,\"off\":0,\"len\":5,"
        "\"size\":5,\"blocks\":[{\"id\":%lu,\"len\":5,\"crc32c\":%lu,\"replicas\":[%lu]}]}",
        ino, gen, block, crc, v.id[0]);
    cJSON_Delete(a);

    /* The masters have it copied to the two others. */
    wait_blocks(&c, 3, 1);
    for (int k = 1; k < 3; k++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/blocks/%016lx", c.cs[k].port,
                 (unsigned long)block);
        struct cm_http_call get = {.method = "GET", .url = url, .flags = CM_HTTP_CALL_RAW};
        cr_assert_eq(cm_http_call(c.http, &get, &r), 0, "chunkserver %d lacks the copy", k);
        cr_assert_eq(r.body_len, 5);
        cr_assert_eq(memcmp(r.body, "hello", 5), 0);
        cm_http_response_clear(&r);
    }

    /* Unlinked: the block is garbage, and every holder is told to delete it. */
    a = tc_post_fmt(&c, "/v1/fs/unlink",
                    "{\"client\":7,\"seq\":4,\"parent\":1,\"pgen\":1,\"name\":\"f\"}");
    cJSON_Delete(a);
    wait_blocks(&c, 3, 0);
    tc_destroy(&c);
}

/* POSTs body (JSON text) to the leader's client port; returns the HTTP status. */
static int post_status(struct tc_cluster *c, int leader, const char *path, const char *json)
{
    cJSON *b = cJSON_Parse(json), *ans = NULL;
    cr_assert_not_null(b, "test body %s", json);
    int status = 0;
    tc_post_at(c, leader, path, b, &ans, &status);
    cJSON_Delete(b);
    cJSON_Delete(ans);
    return status;
}

Test(master_cs, malformed_messages_are_rejected, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, MASTER_ARGS);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    /* No chunkserver yet: a placement is "retry" (503), not "no space" (507). Asked of the
     * leader of the moment (421 or no answer: leadership moved; ask the new one). */
    int place_status = 0;
    for (int tries = 0; tries < 50 && (place_status == 0 || place_status == 421); tries++) {
        int now_leader = tc_wait_leader(&c, T_LEADER_MS);
        cr_assert_geq(now_leader, 0, "no leader");
        place_status = post_status(&c, now_leader, "/v1/fs/place", "{\"count\":3}");
    }
    cr_assert_eq(place_status, 503);
    static const char *reg_bad[] = {
        "{}",
        "{\"addr\":\"127.0.0.1:1\"}",
        "{\"storage_id\":\"s1\"}",
        "{\"storage_id\":7,\"addr\":\"127.0.0.1:1\"}",
        "{\"storage_id\":\"\",\"addr\":\"127.0.0.1:1\"}",
        "{\"storage_id\":\"s1\",\"addr\":\"nohostport\"}",
        "{\"storage_id\":\"s1\",\"addr\":\"127.0.0.1:1\",\"capacity\":-5}",
        "{\"storage_id\":\"s1\",\"addr\":\"127.0.0.1:1\",\"rack\":[1]}",
    };
    for (size_t i = 0; i < sizeof(reg_bad) / sizeof(reg_bad[0]); i++)
        cr_assert_eq(post_status(&c, leader, "/v1/cs/register", reg_bad[i]), 400, "register %s",
                     reg_bad[i]);

    /* A good registration, twice: the same id. */
    const char *good = "{\"storage_id\":\"s1\",\"addr\":\"127.0.0.1:1\",\"rack\":\"r\"}";
    cJSON *b = cJSON_Parse(good), *ans = NULL;
    uint64_t id1 = 0, id2 = 0;
    cr_assert_eq(tc_post(&c, "/v1/cs/register", b, &ans, 10000), 0);
    cr_assert_eq(cm_json_get_u64(ans, "cs_id", &id1), 0);
    cJSON_Delete(ans);
    cr_assert_eq(tc_post(&c, "/v1/cs/register", b, &ans, 10000), 0);
    cr_assert_eq(cm_json_get_u64(ans, "cs_id", &id2), 0);
    cJSON_Delete(ans);
    cJSON_Delete(b);
    cr_assert_gt(id1, 0);
    cr_assert_eq(id1, id2, "a storage id keeps its cs_id");
    leader = tc_wait_leader(&c, T_LEADER_MS);

    static const char *hb_bad[] = {
        "{}",
        "{\"cs_id\":\"x\",\"storage_id\":\"s1\"}",
        "{\"cs_id\":0,\"storage_id\":\"s1\"}",
        "{\"cs_id\":1}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"added\":[{\"id\":\"00000000000004D2\"}]}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"added\":[\"00000000000004d2\"]}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"removed\":\"00000000000004d2\"}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"corrupt\":[\"12\"]}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"load\":true}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"repl_queued\":[3]}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"repl_queued\":-1}",
    };
    for (size_t i = 0; i < sizeof(hb_bad) / sizeof(hb_bad[0]); i++)
        cr_assert_eq(post_status(&c, leader, "/v1/cs/heartbeat", hb_bad[i]), 400, "heartbeat %s",
                     hb_bad[i]);
    static const char *rep_bad[] = {
        "{\"cs_id\":1,\"storage_id\":\"s1\"}",
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"report_id\":1,\"part\":0,\"last\":true,"
        "\"blocks\":[{\"id\":\"zz\"}]}",
    };
    for (size_t i = 0; i < sizeof(rep_bad) / sizeof(rep_bad[0]); i++)
        cr_assert_eq(post_status(&c, leader, "/v1/cs/report", rep_bad[i]), 400, "report %s",
                     rep_bad[i]);
    cr_assert_eq(post_status(&c, leader, "/v1/fs/place", "{\"count\":0}"), 400);
    cr_assert_eq(post_status(&c, leader, "/v1/fs/place", "{\"count\":\"3\"}"), 400);

    /* Unknown ids: NOT_FOUND, which makes a chunkserver register again. */
    cr_assert_eq(
        post_status(&c, leader, "/v1/cs/heartbeat", "{\"cs_id\":99,\"storage_id\":\"s1\"}"), 404);
    cr_assert_eq(
        post_status(&c, leader, "/v1/cs/heartbeat", "{\"cs_id\":1,\"storage_id\":\"other\"}"), 404);
    /* A well-formed heartbeat of the registered one is taken and asks for a full report. */
    b = cJSON_Parse(
        "{\"cs_id\":1,\"storage_id\":\"s1\",\"capacity\":100,\"free\":50,"
        "\"repl_queued\":0,\"added\":[{\"id\":\"00000000000004d2\",\"len\":1,\"crc32c\":0}]}");
    int status = 0;
    cr_assert_eq(tc_post_at(&c, leader, "/v1/cs/heartbeat", b, &ans, &status), 0);
    cJSON_Delete(b);
    cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ans, "commands")));
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "need_full_report")));
    cJSON_Delete(ans);
    tc_destroy(&c);
}
