/* Three masters and four real dfs-chunkservers: a copy found damaged (by a read, or by the
 * scrubber when nobody reads it) is replaced from a sound one and then deleted; the blocks of a
 * chunkserver killed with -9 are copied elsewhere within the window its dead timeout promises,
 * and once it is back its surplus copy is deleted, keeping three; a block just committed with
 * three copies is not copied again because some holder's heartbeat came before the others'. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/json.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

#define T_LEADER_MS  10000
#define T_REPAIR_MS  30000 /* for what no configured window bounds */
#define DEAD_S       2     /* the masters' --cs-dead-timeout-s */
#define HEARTBEAT_MS 200   /* the chunkservers' --heartbeat-ms */
#define MASTER_ARGS  "--cs-dead-timeout-s " STR(DEAD_S)
#define CS_ARGS      "--heartbeat-ms " STR(HEARTBEAT_MS)
/* Scrubbing at 16 MB/s with a pass every second (the default is a pass an hour). */
#define SCRUB_ARGS CS_ARGS " --scrub-rate 16M --scrub-pause-s 1"
#define N_CS       4
#define BLOCK_LEN  (64 * 1024)

/* The window in which a kill -9'd chunkserver's blocks are back at three live copies, counted
 * from the kill, as master/cs_registry.c and master/cs_api.c promise it:
 *  - DEAD_S: the leader counts a chunkserver alive while its last heartbeat is at most the dead
 *    timeout old (alive()); that heartbeat came before the kill, so by DEAD_S after the kill
 *    its copies no longer count.
 *  - HEARTBEAT_MS: there is no repair timer; replicate commands ride on the answer to a
 *    heartbeat of a chunkserver holding the block (h_heartbeat -> add_replicate ->
 *    cs_replicate), and a surviving holder heartbeats every HEARTBEAT_MS. cs_replicate's other
 *    condition (a leadership one dead timeout old, every live chunkserver reported) holds by
 *    then: the leader was elected, and every chunkserver reported, before the kill.
 *  - 3000 ms margin: that heartbeat's own round trip (the leader sorts the holder's copies on
 *    its loop thread), the 64 KiB copy to the target with its file and directory fsyncs, and
 *    this test's 100 ms polling, on a shared 2-core machine under ASan. Measured: the copy
 *    is there 1.95-2.0 s after the kill (the last heartbeat came up to a period before it),
 *    idle or with three of these tests running side by side; a margin of 1500 ms was missed
 *    once with the sanitizer test suite running beside it.
 * A repair that waited for anything else (the 30 s command retry, a later health walk, a full
 * report) misses it. */
#define KILL_REPAIR_MS (DEAD_S * 1000 + HEARTBEAT_MS + 3000)

static void start_cluster(struct tc_cluster *c, uint64_t ids[N_CS], const char *cs_args)
{
    tc_init(c, 3, MASTER_ARGS);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < N_CS; k++)
        tc_cs_start(c, k, 0, cs_args);
    tc_wait_cs_alive(c, N_CS, ids, T_REPAIR_MS);
}

static uint64_t u64(const cJSON *o, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "field %s", field);
    return v;
}

static void fill(uint8_t *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 31 + seed);
}

/* PUT of data to chunkserver k with the given pipeline (may be ""); returns the cm code and
 * the CRC. */
static int put_block(struct tc_cluster *c, int k, uint64_t block, const char *pipeline,
                     const uint8_t *data, size_t len, uint64_t *crc)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blocks/%016llx?pipeline=%s", c->cs[k].port,
             (unsigned long long)block, pipeline);
    struct cm_http_call call = {.method = "PUT", .url = url, .body = data, .body_len = len};
    struct cm_http_response r = {0};
    int rc = cm_http_call(c->http, &call, &r);
    if (rc == 0 && crc != NULL)
        *crc = u64(r.json, "crc32c");
    if (rc == 0)
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "failed")), 0,
                     "pipeline incomplete");
    cm_http_response_clear(&r);
    return rc;
}

/* GET of the block from chunkserver k: the cm code; on success the bytes must be want. */
static int get_block(struct tc_cluster *c, int k, uint64_t block, const uint8_t *want, size_t len)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/blocks/%016llx", c->cs[k].port,
             (unsigned long long)block);
    struct cm_http_call get = {.method = "GET", .url = url, .flags = CM_HTTP_CALL_RAW};
    struct cm_http_response r = {0};
    int rc = cm_http_call(c->http, &get, &r);
    if (rc == 0) {
        cr_assert_eq(r.body_len, len, "chunkserver %d: block length", k);
        cr_assert_eq(memcmp(r.body, want, len), 0, "chunkserver %d: block bytes", k);
    }
    cm_http_response_clear(&r);
    return rc;
}

/* Waits until the block reads back sound from exactly the chunkservers in `has` (the others
 * answer NOT_FOUND); chunkservers with skip set are not asked. Fails the test once deadline
 * (tc_now_ms) has passed; returns the time it saw them. */
static uint64_t wait_copies(struct tc_cluster *c, uint64_t block, const uint8_t *data,
                            const bool has[N_CS], const bool skip[N_CS], const char *what,
                            uint64_t deadline)
{
    for (;;) {
        bool ok = true;
        int rc[N_CS] = {0};
        for (int k = 0; k < N_CS; k++) {
            if (skip != NULL && skip[k])
                continue;
            rc[k] = get_block(c, k, block, data, BLOCK_LEN);
            ok &= has[k] ? rc[k] == 0 : rc[k] == CM_E_NOENT;
        }
        uint64_t now = tc_now_ms();
        if (ok)
            return now;
        cr_assert_lt(now, deadline, "%s: GET results %s %s %s %s", what, cm_strerror(rc[0]),
                     cm_strerror(rc[1]), cm_strerror(rc[2]), cm_strerror(rc[3]));
        usleep(100 * 1000);
    }
}

/* Flips one byte of the data in chunkserver k's file of block. */
static void flip_byte(struct tc_cluster *c, int k, uint64_t block, long off)
{
    char path[512];
    tc_cs_block_path(c, k, block, path, sizeof(path));
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "no block file %s", path);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    int ch = fgetc(f);
    cr_assert_neq(ch, EOF);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    fputc(ch ^ 0x01, f);
    cr_assert_eq(fclose(f), 0);
}

Test(cs_repair, corrupt_copy_is_replaced_then_deleted, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN];
    fill(data, sizeof(data), 1);
    start_cluster(&c, ids, CS_ARGS);
    uint64_t block = tc_write_block_file(&c, 7, &seq, "f", ids, data, BLOCK_LEN);
    wait_copies(&c, block, data, (bool[N_CS]){true, true, true, false}, NULL, "written",
                tc_now_ms() + T_REPAIR_MS);

    /* One byte flipped in chunkserver 1's block file, and read. */
    flip_byte(&c, 1, block, 1000);
    cr_assert_eq(get_block(&c, 1, block, data, BLOCK_LEN), CM_E_CORRUPT);

    /* Copied from a sound replica to chunkserver 3, and the damaged copy deleted. */
    wait_copies(&c, block, data, (bool[N_CS]){true, false, true, true}, NULL, "repaired",
                tc_now_ms() + T_REPAIR_MS);
    tc_destroy(&c);
}

Test(cs_repair, scrubber_finds_unread_damage_and_the_copy_is_replaced, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN];
    fill(data, sizeof(data), 4);
    start_cluster(&c, ids, SCRUB_ARGS);
    /* Stored on chunkservers 0, 1, 2 (the pipeline answered with all three) and never read. */
    uint64_t block = tc_write_block_file(&c, 7, &seq, "f", ids, data, BLOCK_LEN);
    uint64_t gets = tc_cs_metric(&c, 1, "dfs_cs_gets_total");
    uint64_t get_errors = tc_cs_metric(&c, 1, "dfs_cs_get_errors_total");
    cr_assert_eq(tc_cs_metric(&c, 1, "dfs_cs_blocks"), 1);
    flip_byte(&c, 1, block, 1000);

    /* Nobody reads chunkserver 1's copy (only its metrics are looked at): its scrubber finds
     * the damage, the masters hear of it, a sound replica is copied to chunkserver 3 and the
     * damaged copy is deleted. */
    uint64_t deadline = tc_now_ms() + T_REPAIR_MS;
    for (;;) {
        bool copied = get_block(&c, 3, block, data, BLOCK_LEN) == 0;
        uint64_t held = tc_cs_metric(&c, 1, "dfs_cs_blocks");
        if (copied && held == 0)
            break;
        cr_assert_lt(tc_now_ms(), deadline,
                     "not repaired: chunkserver 3 %s a copy, chunkserver 1 holds %llu blocks "
                     "(scrubber: %llu corrupt found in %llu passes)",
                     copied ? "has" : "lacks", (unsigned long long)held,
                     (unsigned long long)tc_cs_metric(&c, 1, "dfs_cs_scrub_corrupt_total"),
                     (unsigned long long)tc_cs_metric(&c, 1, "dfs_cs_scrub_passes_total"));
        usleep(100 * 1000);
    }
    cr_assert_eq(tc_cs_metric(&c, 1, "dfs_cs_scrub_corrupt_total"), 1,
                 "the scrubber found the damage");
    cr_assert_eq(tc_cs_metric(&c, 1, "dfs_cs_gets_total"), gets, "chunkserver 1 served a read");
    cr_assert_eq(tc_cs_metric(&c, 1, "dfs_cs_get_errors_total"), get_errors,
                 "a read found the damage");
    for (int k = 0; k < N_CS; k++)
        if (k != 1)
            cr_assert_eq(tc_cs_metric(&c, k, "dfs_cs_scrub_corrupt_total"), 0);
    /* Three sound copies, read back. */
    wait_copies(&c, block, data, (bool[N_CS]){true, false, true, true}, NULL, "repaired",
                tc_now_ms() + T_REPAIR_MS);
    tc_destroy(&c);
}

Test(cs_repair, surplus_copy_of_returning_chunkserver_is_deleted, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN], extra[4 * BLOCK_LEN];
    fill(data, sizeof(data), 2);
    fill(extra, sizeof(extra), 3);
    start_cluster(&c, ids, CS_ARGS);
    /* Chunkserver 0 uses the most space (a block no file references and none was allocated),
     * so of four sound copies its copy is the one not kept. */
    cr_assert_eq(put_block(&c, 0, UINT64_C(0x7fffffffffff0001), "", extra, sizeof(extra), NULL), 0);
    uint64_t block = tc_write_block_file(&c, 7, &seq, "f", ids, data, BLOCK_LEN);
    wait_copies(&c, block, data, (bool[N_CS]){true, true, true, false}, NULL, "written",
                tc_now_ms() + T_REPAIR_MS);

    /* kill -9 chunkserver 0: the block gets a third live copy on chunkserver 3 within
     * KILL_REPAIR_MS, and not while chunkserver 0 still counts as alive: its last heartbeat
     * reached the leader at most a heartbeat period and a round trip before the kill, so not
     * before half the dead timeout (which leaves 800 ms for that round trip). */
    uint64_t killed = tc_now_ms();
    tc_cs_kill(&c, 0);
    uint64_t seen = wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true},
                                (bool[N_CS]){true, false, false, false}, "re-replicated",
                                killed + KILL_REPAIR_MS);
    cr_assert_geq(seen - killed, DEAD_S * 1000 / 2, "copied %llu ms after the kill",
                  (unsigned long long)(seen - killed));

    /* Back with its old copy: four sound copies, the surplus one on chunkserver 0 goes. */
    tc_cs_start(&c, 0, 0, CS_ARGS);
    wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true}, NULL, "surplus deleted",
                tc_now_ms() + T_REPAIR_MS);
    /* And stays gone while the other three remain. */
    uint64_t until = tc_now_ms() + 1500;
    while (tc_now_ms() < until) {
        wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true}, NULL, "steady",
                    tc_now_ms() + T_REPAIR_MS);
        usleep(200 * 1000);
    }
    tc_destroy(&c);
}

/* Waits until every chunkserver sent `more` heartbeats after this call (each one reports the
 * blocks it stored since the last). */
static void wait_heartbeats(struct tc_cluster *c, uint64_t more)
{
    uint64_t base[N_CS], deadline = tc_now_ms() + T_REPAIR_MS;
    for (int k = 0; k < N_CS; k++)
        base[k] = tc_cs_metric(c, k, "dfs_cs_heartbeats_total");
    for (int k = 0; k < N_CS; k++) {
        while (tc_cs_metric(c, k, "dfs_cs_heartbeats_total") < base[k] + more) {
            cr_assert_lt(tc_now_ms(), deadline, "chunkserver %d does not heartbeat", k);
            usleep(50 * 1000);
        }
    }
}

/* The leader judges copies (and so orders copies) once it led for a dead timeout and every
 * chunkserver reported; /status says so one dead timeout later. */
static void wait_ready(struct tc_cluster *c)
{
    uint64_t deadline = tc_now_ms() + T_REPAIR_MS;
    for (;;) {
        int leader = tc_wait_leader(c, T_LEADER_MS);
        cJSON *st = leader >= 0 ? tc_status(c, leader) : NULL;
        bool ready = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(st, "blocks"), "ready"));
        cJSON_Delete(st);
        if (ready)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "the leader never judges copies");
        usleep(100 * 1000);
    }
}

Test(cs_repair, fresh_blocks_with_three_copies_are_not_copied_again, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN];
    fill(data, sizeof(data), 4);
    start_cluster(&c, ids, CS_ARGS);
    wait_ready(&c);

    /* Files of one small block each on chunkservers 0, 1 and 2, while all four heartbeat every
     * HEARTBEAT_MS at their own phases: whichever holder reports a block first, the others
     * hold it too, as the commit said. */
    uint64_t blocks[40];
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "fresh%d", i);
        blocks[i] = tc_write_block_file(&c, 9, &seq, name, ids, data, sizeof(data));
    }
    wait_heartbeats(&c, 3);
    for (int k = 0; k < N_CS; k++)
        cr_assert_eq(tc_cs_metric(&c, k, "dfs_cs_replications_total"), 0,
                     "chunkserver %d copied blocks that had their three copies", k);
    for (int i = 0; i < 40; i++)
        wait_copies(&c, blocks[i], data, (bool[N_CS]){true, true, true, false}, NULL, "fresh",
                    tc_now_ms() + T_REPAIR_MS);
    tc_destroy(&c);
}

static uint64_t copies_made(struct tc_cluster *c)
{
    return tc_cs_metric(c, 1, "dfs_cs_replications_total") +
           tc_cs_metric(c, 2, "dfs_cs_replications_total");
}

/* A chunkserver's heartbeat says how many copies wait in its queue, and the leader gives it
 * enough to keep CS_REPL_QUEUE_TARGET (16) waiting instead of 4 per answer: after a kill, many
 * small blocks get their third copy back within a few heartbeats of their holders (at 4 per
 * answer, 128 blocks from two holders take at least 16 heartbeat periods). Heartbeats, not time,
 * are the clock. */
Test(cs_repair, copies_are_paced_by_the_holders_queues, .timeout = 180)
{
    enum { FILES = 128, MAX_HEARTBEATS = 8 };
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0, blocks[FILES];
    static uint8_t data[BLOCK_LEN];
    char name[16];
    fill(data, sizeof(data), 5);
    start_cluster(&c, ids, CS_ARGS);
    wait_ready(&c);
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "paced%d", i);
        blocks[i] = tc_write_block_file(&c, 11, &seq, name, ids, data, sizeof(data));
    }
    wait_heartbeats(&c, 3); /* every holder reported them */

    /* kill -9 chunkserver 0: chunkservers 1 and 2 are told to copy every block to 3. */
    tc_cs_kill(&c, 0);
    uint64_t deadline = tc_now_ms() + KILL_REPAIR_MS + T_REPAIR_MS;
    while (copies_made(&c) == 0) {
        cr_assert_lt(tc_now_ms(), deadline, "no copy began");
        usleep(20 * 1000);
    }
    uint64_t hb0 = tc_cs_metric(&c, 1, "dfs_cs_heartbeats_total");
    while (copies_made(&c) < FILES) {
        cr_assert_lt(tc_now_ms(), deadline, "%llu of %d copies made",
                     (unsigned long long)copies_made(&c), FILES);
        usleep(20 * 1000);
    }
    uint64_t hb = tc_cs_metric(&c, 1, "dfs_cs_heartbeats_total") - hb0;
    fprintf(stderr, "paced: %llu heartbeats\n", (unsigned long long)hb);
    cr_assert_leq(hb, MAX_HEARTBEATS, "the copies took %llu heartbeats of a holder",
                  (unsigned long long)hb);
    cr_assert_eq(copies_made(&c), FILES, "a block was copied twice");
    for (int i = 0; i < FILES; i += 17)
        wait_copies(&c, blocks[i], data, (bool[N_CS]){false, true, true, true},
                    (bool[N_CS]){true, false, false, false}, "copied", tc_now_ms() + T_REPAIR_MS);
    tc_destroy(&c);
}
