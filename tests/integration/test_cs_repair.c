/* Three masters and four real dfs-chunkservers: a copy found damaged is replaced from a sound
 * one and then deleted, and a surplus copy (a chunkserver back after its blocks were copied
 * elsewhere) is deleted, keeping three. */
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
#define T_REPAIR_MS 30000
#define MASTER_ARGS "--cs-dead-timeout-s 2"
#define CS_ARGS     "--heartbeat-ms 200"
#define N_CS        4
#define BLOCK_LEN   (64 * 1024)

static void start_cluster(struct tc_cluster *c, uint64_t ids[N_CS])
{
    tc_init(c, 3, MASTER_ARGS);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0, "no leader");
    for (int k = 0; k < N_CS; k++)
        tc_cs_start(c, k, 0, CS_ARGS);
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
 * answer NOT_FOUND); chunkservers with skip set are not asked. */
static void wait_copies(struct tc_cluster *c, uint64_t block, const uint8_t *data,
                        const bool has[N_CS], const bool skip[N_CS], const char *what)
{
    uint64_t deadline = tc_now_ms() + T_REPAIR_MS;
    for (;;) {
        bool ok = true;
        int rc[N_CS] = {0};
        for (int k = 0; k < N_CS; k++) {
            if (skip != NULL && skip[k])
                continue;
            rc[k] = get_block(c, k, block, data, BLOCK_LEN);
            ok &= has[k] ? rc[k] == 0 : rc[k] == CM_E_NOENT;
        }
        if (ok)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "%s: GET results %s %s %s %s", what, cm_strerror(rc[0]),
                     cm_strerror(rc[1]), cm_strerror(rc[2]), cm_strerror(rc[3]));
        usleep(100 * 1000);
    }
}

Test(cs_repair, corrupt_copy_is_replaced_then_deleted, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN];
    fill(data, sizeof(data), 1);
    start_cluster(&c, ids);
    uint64_t block = tc_write_block_file(&c, 7, &seq, "f", ids, data, BLOCK_LEN);
    wait_copies(&c, block, data, (bool[N_CS]){true, true, true, false}, NULL, "written");

    /* One byte flipped in chunkserver 1's block file. */
    char path[512];
    tc_cs_block_path(&c, 1, block, path, sizeof(path));
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "no block file %s", path);
    cr_assert_eq(fseek(f, 1000, SEEK_SET), 0);
    int ch = fgetc(f);
    cr_assert_neq(ch, EOF);
    cr_assert_eq(fseek(f, 1000, SEEK_SET), 0);
    fputc(ch ^ 0x01, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(get_block(&c, 1, block, data, BLOCK_LEN), CM_E_CORRUPT);

    /* Copied from a sound replica to chunkserver 3, and the damaged copy deleted. */
    wait_copies(&c, block, data, (bool[N_CS]){true, false, true, true}, NULL, "repaired");
    tc_destroy(&c);
}

Test(cs_repair, surplus_copy_of_returning_chunkserver_is_deleted, .timeout = 120)
{
    struct tc_cluster c;
    uint64_t ids[N_CS], seq = 0;
    static uint8_t data[BLOCK_LEN], extra[4 * BLOCK_LEN];
    fill(data, sizeof(data), 2);
    fill(extra, sizeof(extra), 3);
    start_cluster(&c, ids);
    /* Chunkserver 0 uses the most space (a block no file references and none was allocated),
     * so of four sound copies its copy is the one not kept. */
    cr_assert_eq(put_block(&c, 0, UINT64_C(0x7fffffffffff0001), "", extra, sizeof(extra), NULL), 0);
    uint64_t block = tc_write_block_file(&c, 7, &seq, "f", ids, data, BLOCK_LEN);
    wait_copies(&c, block, data, (bool[N_CS]){true, true, true, false}, NULL, "written");

    /* kill -9 chunkserver 0: the block gets a third live copy on chunkserver 3. */
    tc_cs_kill(&c, 0);
    wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true},
                (bool[N_CS]){true, false, false, false}, "re-replicated");

    /* Back with its old copy: four sound copies, the surplus one on chunkserver 0 goes. */
    tc_cs_start(&c, 0, 0, CS_ARGS);
    wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true}, NULL, "surplus deleted");
    /* And stays gone while the other three remain. */
    uint64_t until = tc_now_ms() + 1500;
    while (tc_now_ms() < until) {
        wait_copies(&c, block, data, (bool[N_CS]){false, true, true, true}, NULL, "steady");
        usleep(200 * 1000);
    }
    tc_destroy(&c);
}
