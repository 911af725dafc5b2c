/* The chunkserver's data path with three chunkservers and a fake master in the test process:
 * pipelined writes of every edge size land byte-identical on all three, each hop forwards
 * while its body still arrives, ranges, checksum failures reach the master, a dead downstream
 * is reported, bad ids, /metrics and a full disk. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk/cs_proto.h"
#include "chunk/store.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"
#include "cs_harness.h"

#define BS (1024 * 1024) /* the tests' block size */

static struct fake_master fm;
static struct th_cs cs[3];
static char *root;

static bool all_reported(void *arg)
{
    (void)arg;
    return fm_count(&fm, &fm.reports) >= 3;
}

static void start_all(void)
{
    struct th_opts o = {0};
    char dir[300];

    fm_start(&fm);
    root = th_tmpdir();
    o.masters = fm.addr;
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof(dir), "%s/cs%d", root, i);
        th_cs_start(&cs[i], dir, &o);
    }
    /* A full report replaces what the master knows and so drops the changes noted before it;
     * tests that expect a change in a heartbeat start once every first report is in. */
    cr_assert(th_wait(all_reported, NULL), "the chunkservers never sent their first report");
}

static void stop_all(void)
{
    for (int i = 0; i < 3; i++)
        if (cs[i].cs != NULL)
            th_cs_stop(&cs[i]);
    fm_stop(&fm);
    th_rmrf(root);
    free(root);
}

TestSuite(pipeline, .init = start_all, .fini = stop_all, .timeout = 120);

static char *pipe_of(int from)
{
    static char buf[256];
    size_t len = 0;

    buf[0] = '\0';
    for (int i = from; i < 3; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", cs[i].addr);
    return buf;
}

static void expect_block_everywhere(uint64_t id, const char *data, size_t len)
{
    for (int i = 0; i < 3; i++) {
        char *got = NULL, path[512];
        size_t n = 0;
        struct stat st;
        int rc = th_get(cs[i].addr, id, NULL, &got, &n);
        cr_assert_eq(rc, 0, "GET from cs%d: %s", i, cm_errname(rc));
        cr_assert_eq(n, len, "cs%d holds %zu bytes, want %zu", i, n, len);
        cr_assert(len == 0 || memcmp(got, data, len) == 0, "cs%d bytes differ", i);
        free(got);
        th_block_path(cs[i].dir, id, path, sizeof(path));
        cr_assert_eq(stat(path, &st), 0, "no file %s", path);
        cr_assert_eq((uint64_t)st.st_size, len + CS_TRAILER_BYTES((len + 65535) / 65536));
        cr_assert_eq(th_count_temps(cs[i].dir), 0);
    }
}

Test(pipeline, edge_sizes_identical_on_all_three)
{
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, 3 * 65536 + 17, BS - 1, BS};
    char *data = malloc(BS + 1);
    char want[512];

    snprintf(want, sizeof(want), "%s,%s,%s", cs[0].addr, cs[1].addr, cs[2].addr);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        cJSON *ans = NULL;
        uint64_t len = 0;
        uint32_t crc = 0;
        th_random(data, sizes[k], (uint32_t)k + 1);
        int rc = th_put(cs[0].addr, 100 + k, data, sizes[k], pipe_of(1), NULL, false, &ans);
        cr_assert_eq(rc, 0, "size %zu: %s", sizes[k], cm_errname(rc));
        cr_assert_str_eq(th_replicas(ans), want);
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ans, CS_F_FAILED)), 0);
        cr_assert_eq(cm_json_get_u64(ans, CS_F_LEN, &len), 0);
        cr_assert_eq(cm_json_get_u32(ans, CS_F_CRC, &crc), 0);
        cr_assert_eq(len, sizes[k]);
        cr_assert_eq(crc, cm_crc32c(0, data, sizes[k]));
        cJSON_Delete(ans);
        expect_block_everywhere(100 + k, data, sizes[k]);
    }
    free(data);
}

Test(pipeline, chunked_upload_streams_through)
{
    size_t len = BS - 12345;
    char *data = malloc(len);
    cJSON *ans = NULL;

    th_random(data, len, 77);
    cr_assert_eq(th_put(cs[0].addr, 7, data, len, pipe_of(1), NULL, true, &ans), 0);
    cJSON_Delete(ans);
    expect_block_everywhere(7, data, len);
    free(data);
}

static bool no_temps(void *dir)
{
    return th_count_temps(dir) == 0;
}

Test(pipeline, larger_than_block_size_is_refused_everywhere)
{
    char *data = malloc(BS + 1);

    th_random(data, BS + 1, 5);
    cr_assert_eq(th_put(cs[0].addr, 9, data, BS + 1, pipe_of(1), NULL, false, NULL),
                 CM_E_TOO_LARGE);
    /* Without a length the limit is found while streaming. */
    cr_assert_eq(th_put(cs[0].addr, 9, data, BS + 1, pipe_of(1), NULL, true, NULL), CM_E_TOO_LARGE);
    for (int i = 0; i < 3; i++) {
        char *got;
        size_t n;
        cr_assert_eq(th_get(cs[i].addr, 9, NULL, &got, &n), CM_E_NOENT);
        /* Downstream, the cut-off transfer ends a moment after the answer upstream. */
        cr_assert(th_wait(no_temps, cs[i].dir), "cs%d kept a temporary", i);
    }
    free(data);
}

static void expect_range(uint64_t id, const char *data, const char *range, size_t off, size_t len)
{
    char *got = NULL;
    size_t n = 0;
    int rc = th_get(cs[1].addr, id, range, &got, &n);

    cr_assert_eq(rc, 0, "range %s: %s", range, cm_errname(rc));
    cr_assert_eq(n, len, "range %s gave %zu bytes", range, n);
    cr_assert(memcmp(got, data + off, len) == 0, "range %s bytes differ", range);
    free(got);
}

Test(pipeline, range_reads)
{
    size_t len = 300000;
    char *data = malloc(len), *got;
    size_t n;

    th_random(data, len, 3);
    cr_assert_eq(th_put(cs[0].addr, 11, data, len, pipe_of(1), NULL, false, NULL), 0);
    expect_range(11, data, "0-0", 0, 1);
    expect_range(11, data, "65535-65536", 65535, 2);
    expect_range(11, data, "100-", 100, len - 100);
    expect_range(11, data, "-500", len - 500, 500);
    expect_range(11, data, "299999-299999", 299999, 1);
    expect_range(11, data, "131072-262143", 131072, 131072);
    expect_range(11, data, "5-999999", 5, len - 5);
    cr_assert_eq(th_get(cs[1].addr, 11, "300000-", &got, &n), CM_E_RANGE);
    cr_assert_eq(th_get(cs[1].addr, 404, NULL, &got, &n), CM_E_NOENT);
    free(data);
}

struct seen {
    struct fake_master *m;
    cJSON *const *list;
    uint64_t id;
};

static bool seen_pred(void *arg)
{
    struct seen *s = arg;
    return fm_has(s->m, s->list, s->id);
}

static bool corrupt_count_is_one(void *arg)
{
    cJSON *st = th_json_get(arg, CS_PATH_STATUS);
    uint64_t n = 0;

    cm_json_get_u64(st, CS_F_CORRUPT, &n);
    cJSON_Delete(st);
    return n == 1;
}

Test(pipeline, flipped_byte_is_checksum_mismatch_and_reported)
{
    size_t len = 200000;
    char *data = malloc(len), *got = NULL, path[512];
    struct seen s = {&fm, &fm.corrupt, 12};
    size_t n;

    th_random(data, len, 4);
    cr_assert_eq(th_put(cs[0].addr, 12, data, len, pipe_of(1), NULL, false, NULL), 0);
    th_block_path(cs[1].dir, 12, path, sizeof(path));
    th_flip(path, 70000); /* chunk 1 */
    /* A range within chunk 0 does not touch the damage. */
    expect_range(12, data, "0-65535", 0, 65536);
    cr_assert_not(fm_has(&fm, &fm.corrupt, 12));
    cr_assert_eq(th_get(cs[1].addr, 12, "65536-65600", &got, &n), CM_E_CORRUPT);
    cr_assert_eq(th_get(cs[1].addr, 12, NULL, &got, &n), CM_E_CORRUPT);
    cr_assert(corrupt_count_is_one(cs[1].addr));
    cr_assert(th_wait(seen_pred, &s), "the master never heard of the corrupt block");
    /* The other replicas are untouched. */
    cr_assert_eq(th_get(cs[2].addr, 12, NULL, &got, &n), 0);
    cr_assert(n == len && memcmp(got, data, len) == 0);
    free(got);
    free(data);
}

Test(pipeline, dead_downstream_answers_the_replicas_that_succeeded)
{
    char data[100000];
    cJSON *ans = NULL, *f;
    char want[256], *got;
    const char *err = NULL;
    int hold[2];
    size_t n;

    th_random(data, sizeof(data), 6);
    th_cs_stop(&cs[2]);
    hold[0] = th_hold_port(cs[2].port);
    /* The last hop is dead: the first two hold it. */
    cr_assert_eq(th_put(cs[0].addr, 21, data, sizeof(data), pipe_of(1), NULL, false, &ans), 0);
    snprintf(want, sizeof(want), "%s,%s", cs[0].addr, cs[1].addr);
    cr_assert_str_eq(th_replicas(ans), want);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(ans, CS_F_FAILED), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(f, CS_F_ADDR)->valuestring, cs[2].addr);
    cr_assert_eq(cm_json_get_str(f, CS_F_ERROR, 64, &err, NULL), 0);
    cr_assert_str_eq(err, "CONNECT_FAILED");
    cJSON_Delete(ans);

    /* The middle hop is dead: only the first holds it; the last was never reached. */
    th_cs_stop(&cs[1]);
    hold[1] = th_hold_port(cs[1].port);
    cr_assert_eq(th_put(cs[0].addr, 22, data, sizeof(data), pipe_of(1), NULL, false, &ans), 0);
    cr_assert_str_eq(th_replicas(ans), cs[0].addr);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ans, CS_F_FAILED)), 2);
    cJSON_Delete(ans);
    cr_assert_eq(th_get(cs[0].addr, 22, NULL, &got, &n), 0);
    cr_assert(n == sizeof(data) && memcmp(got, data, n) == 0);
    free(got);
    close(hold[0]);
    close(hold[1]);
}

Test(pipeline, malformed_ids_are_400)
{
    const char *paths[] = {
        "/blocks/..%2F..%2Fetc%2Fpasswd",
        "/blocks/%2e%2e",
        "/blocks/0123",
        "/blocks/0123456789abcdef0",
        "/blocks/0123456789ABCDEF",
        "/blocks/zzzzzzzzzzzzzzzz",
        "/blocks/0123456789abcde%00",
        "/blocks/",
        "/blocks/a/b/c",
    };
    const char *methods[] = {"GET", "PUT", "DELETE"};

    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
        for (size_t m = 0; m < 3; m++)
            cr_assert_eq(th_status_of(methods[m], cs[0].addr, paths[p]), 400, "%s %s", methods[m],
                         paths[p]);
    cr_assert_eq(th_status_of("POST", cs[0].addr, "/blocks/xyz/replicate"), 400);
    cr_assert_eq(th_status_of("PUT", cs[0].addr, "/blocks/0123456789abcdef?pipeline=bad"), 400);
    cr_assert_eq(th_status_of("PUT", cs[0].addr, "/blocks/0123456789abcdef?crc32c=xyz"), 400);
    /* A pipeline naming this chunkserver itself would loop. */
    char path[256];
    snprintf(path, sizeof(path), "/blocks/0123456789abcdef?pipeline=%s", cs[0].addr);
    cr_assert_eq(th_status_of("PUT", cs[0].addr, path), 400);
    cr_assert_eq(th_count_temps(cs[0].dir), 0);
}

Test(pipeline, expected_crc_mismatch_keeps_nothing)
{
    char data[70000], crc[16], *got;
    size_t n;

    th_random(data, sizeof(data), 8);
    snprintf(crc, sizeof(crc), "%08x", cm_crc32c(0, data, sizeof(data)) ^ 1);
    cr_assert_eq(th_put(cs[0].addr, 31, data, sizeof(data), pipe_of(1), crc, false, NULL),
                 CM_E_CORRUPT);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(th_get(cs[i].addr, 31, NULL, &got, &n), CM_E_NOENT, "cs%d kept it", i);
        cr_assert(th_wait(no_temps, cs[i].dir));
    }
    snprintf(crc, sizeof(crc), "%08X", cm_crc32c(0, data, sizeof(data)));
    cr_assert_eq(th_put(cs[0].addr, 31, data, sizeof(data), pipe_of(1), crc, false, NULL), 0);
    expect_block_everywhere(31, data, sizeof(data));
}

Test(pipeline, same_id_same_bytes_is_idempotent_other_bytes_conflict)
{
    char a[5000], b[5000], *got;
    size_t n;

    th_random(a, sizeof(a), 1);
    th_random(b, sizeof(b), 2);
    cr_assert_eq(th_put(cs[0].addr, 41, a, sizeof(a), pipe_of(1), NULL, false, NULL), 0);
    cr_assert_eq(th_put(cs[0].addr, 41, a, sizeof(a), pipe_of(1), NULL, false, NULL), 0);
    cr_assert_eq(th_put(cs[1].addr, 41, b, sizeof(b), NULL, NULL, false, NULL), CM_E_EXIST);
    cr_assert_eq(th_get(cs[1].addr, 41, NULL, &got, &n), 0);
    cr_assert(n == sizeof(a) && memcmp(got, a, n) == 0);
    free(got);
    cr_assert_eq(th_count_temps(cs[1].dir), 0);
}

Test(pipeline, delete_and_report_removed)
{
    char data[1000], *got;
    struct seen s = {&fm, &fm.removed, 51};
    size_t n;

    th_random(data, sizeof(data), 9);
    cr_assert_eq(th_put(cs[0].addr, 51, data, sizeof(data), NULL, NULL, false, NULL), 0);
    cr_assert_eq(th_status_of("DELETE", cs[0].addr, "/blocks/0000000000000033"), 200);
    cr_assert_eq(th_status_of("DELETE", cs[0].addr, "/blocks/0000000000000033"), 404);
    cr_assert_eq(th_get(cs[0].addr, 51, NULL, &got, &n), CM_E_NOENT);
    cr_assert(th_wait(seen_pred, &s));
}

Test(pipeline, replicate_endpoint_copies_to_target)
{
    struct cm_http_response resp = {0};
    char data[150000], url[256], body[128], *got;
    size_t n;

    th_random(data, sizeof(data), 10);
    cr_assert_eq(th_put(cs[0].addr, 61, data, sizeof(data), NULL, NULL, false, NULL), 0);
    snprintf(url, sizeof(url), "http://%s/blocks/000000000000003d/replicate", cs[0].addr);
    snprintf(body, sizeof(body), "{\"target\":\"%s\"}", cs[2].addr);
    cJSON *j = cJSON_Parse(body);
    cr_assert_eq(cm_http_post_json(th_http(), url, j, &resp), 0);
    cm_http_response_clear(&resp);
    cr_assert_eq(th_get(cs[2].addr, 61, NULL, &got, &n), 0);
    cr_assert(n == sizeof(data) && memcmp(got, data, n) == 0);
    free(got);
    /* Unknown block, bad target. */
    snprintf(url, sizeof(url), "http://%s/blocks/00000000000000ff/replicate", cs[0].addr);
    cr_assert_eq(cm_http_post_json(th_http(), url, j, &resp), CM_E_NOENT);
    cm_http_response_clear(&resp);
    cJSON_Delete(j);
    snprintf(url, sizeof(url), "http://%s/blocks/000000000000003d/replicate", cs[0].addr);
    j = cJSON_Parse("{\"target\":\"no port\"}");
    cr_assert_eq(cm_http_post_json(th_http(), url, j, &resp), CM_E_INVAL);
    cm_http_response_clear(&resp);
    cJSON_Delete(j);
}

static bool cs1_has_72(void *arg)
{
    char *got = NULL;
    size_t n;
    int rc = th_get(cs[1].addr, 72, NULL, &got, &n);

    (void)arg;
    free(got);
    return rc == 0;
}

Test(pipeline, heartbeat_commands_delete_and_replicate)
{
    char data[90000], *got;
    struct seen s = {&fm, &fm.removed, 71};
    size_t n;
    cJSON *c;

    th_random(data, sizeof(data), 11);
    cr_assert_eq(th_put(cs[0].addr, 71, data, sizeof(data), NULL, NULL, false, NULL), 0);
    cr_assert_eq(th_put(cs[0].addr, 72, data, sizeof(data), NULL, NULL, false, NULL), 0);
    c = cJSON_Parse("{\"op\":\"delete\",\"blocks\":[\"0000000000000047\",\"zz\"]}");
    fm_command(&fm, cs[0].addr, c);
    c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "op", "replicate");
    cJSON_AddStringToObject(c, "block", "0000000000000048");
    cJSON_AddStringToObject(c, "target", cs[1].addr);
    fm_command(&fm, cs[0].addr, c);
    fm_command(&fm, cs[0].addr, cJSON_Parse("{\"op\":\"no-such-op\"}"));
    cr_assert(th_wait(seen_pred, &s), "the delete command was not carried out");
    cr_assert_eq(th_get(cs[0].addr, 71, NULL, &got, &n), CM_E_NOENT);
    cr_assert(th_wait(cs1_has_72, NULL), "the replicate command was not carried out");
    cr_assert_eq(th_get(cs[1].addr, 72, NULL, &got, &n), 0);
    cr_assert(n == sizeof(data) && memcmp(got, data, n) == 0);
    free(got);
}

static bool registered(void *arg)
{
    (void)arg;
    return fm_count(&fm, &fm.reports) >= 3 && fm_count(&fm, &fm.heartbeats) >= 3;
}

Test(pipeline, registers_reports_and_heartbeats)
{
    cJSON *hb, *reg;
    const char *s = NULL;
    bool b = true;

    cr_assert(th_wait(registered, NULL));
    pthread_mutex_lock(&fm.mu);
    reg = cJSON_Duplicate(fm.last_register, 1);
    pthread_mutex_unlock(&fm.mu);
    cr_assert_eq(cm_json_get_str(reg, CS_F_RACK, 64, &s, NULL), 0);
    cr_assert_str_eq(s, "r1");
    cr_assert_eq(cm_json_get_str(reg, CS_F_STORAGE_ID, 64, &s, NULL), 0);
    cr_assert_eq(strlen(s), CS_STORAGE_ID_HEX);
    cJSON_Delete(reg);
    hb = fm_last_heartbeat(&fm);
    cr_assert_not_null(cJSON_GetObjectItem(hb, CS_F_CAPACITY));
    cr_assert_not_null(cJSON_GetObjectItem(hb, CS_F_LOAD));
    cr_assert_eq(cm_json_get_bool(hb, CS_F_NO_SPACE, &b), 0);
    cr_assert_not(b);
    cJSON_Delete(hb);
    cJSON *st = th_json_get(cs[0].addr, CS_PATH_STATUS);
    cr_assert_eq(cm_json_get_bool(st, CS_F_HEARTBEAT_OK, &b), 0);
    cr_assert(b);
    cr_assert_eq(cm_json_get_bool(st, CS_F_LEADER_KNOWN, &b), 0);
    cr_assert(b);
    cr_assert_eq(cm_json_get_str(st, CS_F_LEADER, 64, &s, NULL), 0);
    cr_assert_str_eq(s, fm.addr);
    cJSON_Delete(st);
}

static bool reregistered(void *arg)
{
    (void)arg;
    return fm_count(&fm, &fm.registers) >= 4;
}

Test(pipeline, unknown_cs_id_registers_again)
{
    cr_assert(th_wait(registered, NULL));
    pthread_mutex_lock(&fm.mu);
    fm.heartbeat_error = CM_E_NOENT;
    fm.heartbeat_error_n = 1;
    pthread_mutex_unlock(&fm.mu);
    cr_assert(th_wait(reregistered, NULL));
}

/* A PUT sent on a raw socket: the pipeline and CRC as headers. */
Test(pipeline, pipeline_and_crc_as_headers)
{
    struct sockaddr_in sa = {0};
    char data[3000], req[1024], ans[4096] = "";
    size_t got = 0;
    int fd, len;
    ssize_t n;

    th_random(data, sizeof(data), 12);
    len = snprintf(req, sizeof(req),
                   "PUT /blocks/0000000000000051 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Content-Length: %zu\r\n" CS_HDR_PIPELINE ": %s\r\n" CS_HDR_CRC ": %08x\r\n\r\n",
                   sizeof(data), pipe_of(1), cm_crc32c(0, data, sizeof(data)));
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cs[0].port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(write(fd, req, (size_t)len), len);
    cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    while ((n = read(fd, ans + got, sizeof(ans) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    ans[got] = '\0';
    cr_assert(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%s", ans);
    expect_block_everywhere(81, data, sizeof(data));
}

Test(pipeline, head_and_status)
{
    char data[777];
    cJSON *st;
    uint64_t v = 0;

    th_random(data, sizeof(data), 13);
    cr_assert_eq(th_put(cs[0].addr, 91, data, sizeof(data), NULL, NULL, false, NULL), 0);
    cr_assert_eq(th_status_of("HEAD", cs[0].addr, "/blocks/000000000000005b"), 200);
    cr_assert_eq(th_status_of("HEAD", cs[0].addr, "/blocks/000000000000005c"), 404);
    st = th_json_get(cs[0].addr, CS_PATH_STATUS);
    cr_assert_eq(cm_json_get_u64(st, CS_F_BLOCKS, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(cm_json_get_u64(st, CS_F_USED, &v), 0);
    cr_assert_eq(v, sizeof(data) + CS_TRAILER_BYTES(1));
    cr_assert_not_null(cJSON_GetObjectItem(st, CS_F_CAPACITY));
    cr_assert_not_null(cJSON_GetObjectItem(st, CS_F_FREE));
    cJSON_Delete(st);
}

/* Every figure GET /metrics exports, with its Prometheus type. */
static const struct {
    const char *name, *type;
} cs_metrics[] = {
    {"dfs_cs_bytes_written_total", "counter"},
    {"dfs_cs_bytes_read_total", "counter"},
    {"dfs_cs_bytes_received_total", "counter"},
    {"dfs_cs_bytes_served_total", "counter"},
    {"dfs_cs_blocks", "gauge"},
    {"dfs_cs_corrupt_blocks", "gauge"},
    {"dfs_cs_used_bytes", "gauge"},
    {"dfs_cs_capacity_bytes", "gauge"},
    {"dfs_cs_free_bytes", "gauge"},
    {"dfs_cs_checksum_failures_total", "counter"},
    {"dfs_cs_no_space_total", "counter"},
    {"dfs_cs_puts_total", "counter"},
    {"dfs_cs_put_errors_total", "counter"},
    {"dfs_cs_pipeline_errors_total", "counter"},
    {"dfs_cs_gets_total", "counter"},
    {"dfs_cs_get_errors_total", "counter"},
    {"dfs_cs_deletes_total", "counter"},
    {"dfs_cs_replications_total", "counter"},
    {"dfs_cs_replication_errors_total", "counter"},
    {"dfs_cs_replication_queue", "gauge"},
    {"dfs_cs_inflight_requests", "gauge"},
    {"dfs_cs_scrub_bytes_total", "counter"},
    {"dfs_cs_scrub_blocks_total", "counter"},
    {"dfs_cs_scrub_corrupt_total", "counter"},
    {"dfs_cs_scrub_passes_total", "counter"},
    {"dfs_cs_scrub_pass_blocks_done", "gauge"},
    {"dfs_cs_scrub_pass_blocks", "gauge"},
    {"dfs_cs_master_registered", "gauge"},
    {"dfs_cs_master_heartbeat_ok", "gauge"},
    {"dfs_cs_heartbeats_total", "counter"},
    {"dfs_cs_master_failures_total", "counter"},
    {"dfs_cs_block_reports_total", "counter"},
};
#define N_METRICS (sizeof(cs_metrics) / sizeof(cs_metrics[0]))

/* Every metric of cs i, in cs_metrics' order; fails unless each has its HELP and TYPE lines and
 * one sample. */
static void metrics_of(int i, uint64_t *v)
{
    char *text = th_metrics(cs[i].addr), line[128];

    for (size_t k = 0; k < N_METRICS; k++) {
        snprintf(line, sizeof(line), "# HELP %s ", cs_metrics[k].name);
        cr_assert_not_null(strstr(text, line), "cs%d: no %s", i, line);
        snprintf(line, sizeof(line), "# TYPE %s %s\n", cs_metrics[k].name, cs_metrics[k].type);
        cr_assert_not_null(strstr(text, line), "cs%d: no %s", i, line);
        v[k] = th_metric_of(text, cs_metrics[k].name);
    }
    free(text);
}

/* The value of metric name in a metrics_of array. */
static uint64_t mv(const uint64_t *v, const char *name)
{
    for (size_t k = 0; k < N_METRICS; k++)
        if (strcmp(cs_metrics[k].name, name) == 0)
            return v[k];
    cr_assert_fail("%s is not in cs_metrics", name);
    return 0;
}

/* Metric name of cs i moved by want from before to after. */
#define expect_moved(i, before, after, name, want)                                                 \
    cr_assert_eq(mv(after, name) - mv(before, name), (uint64_t)(want),                             \
                 "cs%d: %s went from %llu to %llu, want +%llu", i, name,                           \
                 (unsigned long long)mv(before, name), (unsigned long long)mv(after, name),        \
                 (unsigned long long)(want))

struct hb_count {
    int i;
    uint64_t n;
};

static bool heartbeats_above(void *arg)
{
    struct hb_count *h = arg;
    return th_metric(cs[h->i].addr, "dfs_cs_heartbeats_total") > h->n;
}

Test(pipeline, metrics_name_every_figure_and_follow_puts_gets_and_deletes)
{
    const size_t len = 200000; /* 4 chunks */
    const uint64_t file = len + CS_TRAILER_BYTES(4);
    uint64_t v0[3][N_METRICS], v1[3][N_METRICS], v2[3][N_METRICS], v3[3][N_METRICS];
    char *data = malloc(len), *got = NULL, path[512];
    size_t n;

    for (int i = 0; i < 3; i++) {
        metrics_of(i, v0[i]);
        /* start_all waited for every first report: the master link's figures are in. */
        cr_assert_eq(mv(v0[i], "dfs_cs_master_registered"), 1);
        cr_assert_eq(mv(v0[i], "dfs_cs_master_heartbeat_ok"), 1);
        cr_assert_geq(mv(v0[i], "dfs_cs_block_reports_total"), 1);
        cr_assert_gt(mv(v0[i], "dfs_cs_capacity_bytes"), 0);
        cr_assert_gt(mv(v0[i], "dfs_cs_free_bytes"), 0);
        cr_assert_leq(mv(v0[i], "dfs_cs_free_bytes"), mv(v0[i], "dfs_cs_capacity_bytes"));
        /* Scrubbing is off in these tests. */
        cr_assert_eq(mv(v0[i], "dfs_cs_scrub_bytes_total"), 0);
        cr_assert_eq(mv(v0[i], "dfs_cs_scrub_passes_total"), 0);
    }

    /* A PUT through the pipeline counts once on every hop. */
    th_random(data, len, 17);
    cr_assert_eq(th_put(cs[0].addr, 95, data, len, pipe_of(1), NULL, false, NULL), 0);
    for (int i = 0; i < 3; i++) {
        metrics_of(i, v1[i]);
        expect_moved(i, v0[i], v1[i], "dfs_cs_puts_total", 1);
        expect_moved(i, v0[i], v1[i], "dfs_cs_bytes_received_total", len);
        expect_moved(i, v0[i], v1[i], "dfs_cs_bytes_written_total", len);
        expect_moved(i, v0[i], v1[i], "dfs_cs_blocks", 1);
        expect_moved(i, v0[i], v1[i], "dfs_cs_used_bytes", file);
        expect_moved(i, v0[i], v1[i], "dfs_cs_put_errors_total", 0);
        expect_moved(i, v0[i], v1[i], "dfs_cs_pipeline_errors_total", 0);
        expect_moved(i, v0[i], v1[i], "dfs_cs_gets_total", 0);
        expect_moved(i, v0[i], v1[i], "dfs_cs_bytes_served_total", 0);
    }

    /* GETs count where they are served: a whole block, a range, a missing block. */
    cr_assert_eq(th_get(cs[1].addr, 95, NULL, &got, &n), 0);
    cr_assert(n == len && memcmp(got, data, len) == 0);
    free(got);
    cr_assert_eq(th_get(cs[2].addr, 95, "1000-1099", &got, &n), 0);
    cr_assert(n == 100 && memcmp(got, data + 1000, 100) == 0);
    free(got);
    cr_assert_eq(th_get(cs[2].addr, 96, NULL, &got, &n), CM_E_NOENT);
    for (int i = 0; i < 3; i++)
        metrics_of(i, v2[i]);
    expect_moved(0, v1[0], v2[0], "dfs_cs_gets_total", 0);
    expect_moved(0, v1[0], v2[0], "dfs_cs_bytes_served_total", 0);
    expect_moved(0, v1[0], v2[0], "dfs_cs_bytes_read_total", 0);
    expect_moved(1, v1[1], v2[1], "dfs_cs_gets_total", 1);
    expect_moved(1, v1[1], v2[1], "dfs_cs_bytes_served_total", len);
    expect_moved(1, v1[1], v2[1], "dfs_cs_get_errors_total", 0);
    cr_assert_geq(mv(v2[1], "dfs_cs_bytes_read_total") - mv(v1[1], "dfs_cs_bytes_read_total"), len,
                  "every byte served was read and checked");
    expect_moved(2, v1[2], v2[2], "dfs_cs_gets_total", 1);
    expect_moved(2, v1[2], v2[2], "dfs_cs_bytes_served_total", 100);
    expect_moved(2, v1[2], v2[2], "dfs_cs_get_errors_total", 1);
    /* The range was read and checked (with at least its chunk), not the whole block. */
    cr_assert_geq(mv(v2[2], "dfs_cs_bytes_read_total") - mv(v1[2], "dfs_cs_bytes_read_total"), 100);
    cr_assert_lt(mv(v2[2], "dfs_cs_bytes_read_total") - mv(v1[2], "dfs_cs_bytes_read_total"), len);

    /* A damaged copy: a checksum failure, a failed GET, a corrupt block. */
    th_block_path(cs[1].dir, 95, path, sizeof(path));
    th_flip(path, 70000);
    cr_assert_eq(th_get(cs[1].addr, 95, NULL, &got, &n), CM_E_CORRUPT);
    /* And a delete. */
    cr_assert_eq(th_status_of("DELETE", cs[2].addr, "/blocks/000000000000005f"), 200);
    for (int i = 0; i < 3; i++)
        metrics_of(i, v3[i]);
    expect_moved(1, v2[1], v3[1], "dfs_cs_checksum_failures_total", 1);
    expect_moved(1, v2[1], v3[1], "dfs_cs_get_errors_total", 1);
    expect_moved(1, v2[1], v3[1], "dfs_cs_gets_total", 0);
    expect_moved(1, v0[1], v3[1], "dfs_cs_corrupt_blocks", 1);
    expect_moved(1, v0[1], v3[1], "dfs_cs_blocks", 1);
    expect_moved(2, v2[2], v3[2], "dfs_cs_deletes_total", 1);
    expect_moved(2, v0[2], v3[2], "dfs_cs_blocks", 0);
    expect_moved(2, v0[2], v3[2], "dfs_cs_used_bytes", 0);
    expect_moved(0, v2[0], v3[0], "dfs_cs_checksum_failures_total", 0);
    expect_moved(0, v0[0], v3[0], "dfs_cs_corrupt_blocks", 0);
    /* Heartbeats go on (every 100 ms) and are counted. */
    for (int i = 0; i < 3; i++) {
        struct hb_count h = {i, mv(v3[i], "dfs_cs_heartbeats_total")};
        cr_assert(th_wait(heartbeats_above, &h), "cs%d: heartbeats_total stays at %llu", i,
                  (unsigned long long)h.n);
    }
    free(data);
}

/* ---- streaming: each hop forwards while its own body is still arriving ---- */

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        cr_assert_gt(n, 0, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Sends part of a body as-is, or as one chunk of a chunked body. */
static void send_part(int fd, const char *data, size_t len, bool chunked)
{
    char head[32];

    if (chunked) {
        int n = snprintf(head, sizeof(head), "%zx\r\n", len);
        write_all(fd, head, (size_t)n);
    }
    write_all(fd, data, len);
    if (chunked)
        write_all(fd, "\r\n", 2);
}

#define STREAM_WAIT_MS 10000 /* for the first part's bytes to reach the last hop */

/* A PUT of len bytes to cs0 with pipeline cs1, cs2 on a raw socket: the headers and the first
 * part of the body, then, once cs1 and cs2 have received bytes of it (the rest of the body not
 * sent yet, so neither can have all of it), the rest. A store-then-forward hop would leave its
 * downstream at 0 bytes received until the whole body arrived. */
static void put_in_two_parts(uint64_t id, const char *data, size_t len, size_t first, bool chunked)
{
    struct sockaddr_in sa = {0};
    char req[1024], ans[4096] = "", hex[CS_BLOCK_ID_HEX + 1], want[256];
    uint64_t r0[3], r[3] = {0}, deadline;
    size_t got = 0;
    ssize_t n;
    cJSON *j;
    int fd, hlen;

    for (int i = 0; i < 3; i++)
        r0[i] = th_metric(cs[i].addr, "dfs_cs_bytes_received_total");
    cs_block_id_format(id, hex);
    if (chunked)
        hlen = snprintf(req, sizeof(req),
                        "PUT /blocks/%s?" CS_QUERY_PIPELINE "=%s HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
                        hex, pipe_of(1));
    else
        hlen = snprintf(req, sizeof(req),
                        "PUT /blocks/%s?" CS_QUERY_PIPELINE "=%s HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                        hex, pipe_of(1), len);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cs[0].port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    write_all(fd, req, (size_t)hlen);
    send_part(fd, data, first, chunked);

    deadline = th_now_ms() + STREAM_WAIT_MS;
    for (;;) {
        for (int i = 1; i < 3; i++)
            r[i] = th_metric(cs[i].addr, "dfs_cs_bytes_received_total") - r0[i];
        if (r[1] > 0 && r[2] > 0)
            break;
        cr_assert_lt(th_now_ms(), deadline,
                     "%s PUT: %zu of %zu bytes sent to cs0, and after %d ms cs1 received %llu, "
                     "cs2 %llu: a hop waits for its whole body before forwarding",
                     chunked ? "chunked" : "sized", first, len, STREAM_WAIT_MS,
                     (unsigned long long)r[1], (unsigned long long)r[2]);
        th_sleep_ms(10);
    }
    for (int i = 0; i < 3; i++) {
        uint64_t had = th_metric(cs[i].addr, "dfs_cs_bytes_received_total") - r0[i];
        cr_assert_leq(had, first, "cs%d received %llu bytes of the %zu sent", i,
                      (unsigned long long)had, first);
    }

    send_part(fd, data + first, len - first, chunked);
    if (chunked)
        write_all(fd, "0\r\n\r\n", 5);
    while ((n = read(fd, ans + got, sizeof(ans) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    ans[got] = '\0';
    cr_assert(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%s", ans);
    cr_assert_not_null(strstr(ans, "\r\n\r\n"));
    j = cJSON_Parse(strstr(ans, "\r\n\r\n") + 4);
    snprintf(want, sizeof(want), "%s,%s,%s", cs[0].addr, cs[1].addr, cs[2].addr);
    cr_assert_str_eq(th_replicas(j), want);
    cJSON_Delete(j);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(th_metric(cs[i].addr, "dfs_cs_bytes_received_total") - r0[i], len);
    expect_block_everywhere(id, data, len);
}

Test(pipeline, each_hop_forwards_while_its_body_arrives)
{
    const size_t len = BS - 1000, first = 384 * 1024;
    char *data = malloc(len);

    th_random(data, len, 18);
    put_in_two_parts(0x5100, data, len, first, false);
    th_random(data, len, 19);
    put_in_two_parts(0x5101, data, len, first, true);
    free(data);
}

Test(pipeline, the_cluster_secret_is_required_and_forwarded)
{
    struct th_opts o = {.secret = "s3cret-value"};
    struct cm_http_client_config cc = {.secret = NULL};
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    struct cm_http_client *with = NULL;
    struct th_cs a, b;
    struct cm_secret sec;
    char *d1 = th_tmpdir(), *d2 = th_tmpdir(), url[256], data[1000];

    th_cs_start(&a, d1, &o);
    th_cs_start(&b, d2, &o);
    th_random(data, sizeof(data), 16);
    cr_assert_eq(th_put(a.addr, 1, data, sizeof(data), NULL, NULL, false, NULL), CM_E_UNAUTHORIZED);
    cr_assert_eq(th_status_of("GET", a.addr, CS_PATH_STATUS), 200, "status is public");
    cr_assert_eq(cm_secret_set(&sec, o.secret, strlen(o.secret)), 0);
    cc.secret = &sec;
    cr_assert_eq(cm_http_client_new(&cc, &with), 0);
    snprintf(url, sizeof(url), "http://%s/blocks/0000000000000001?pipeline=%s", a.addr, b.addr);
    call.method = "PUT";
    call.url = url;
    call.body = data;
    call.body_len = sizeof(data);
    cr_assert_eq(cm_http_call(with, &call, &resp), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(resp.json, CS_F_REPLICAS)), 2,
                 "the downstream accepted the forwarded secret");
    cm_http_response_clear(&resp);
    cm_http_client_free(with);
    th_cs_stop(&a);
    th_cs_stop(&b);
    th_rmrf(d1);
    th_rmrf(d2);
    free(d1);
    free(d2);
}

/* ---- a small file system of our own: a full disk ---- */

static char *mnt;

static void mount_small(void)
{
    mnt = th_tmpdir();
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
        int e = errno;
        rmdir(mnt);
        free(mnt);
        mnt = NULL;
        cr_skip_test("cannot mount a tmpfs (%s): run as root", strerror(e));
    }
}

static void unmount_small(void)
{
    if (mnt != NULL) {
        umount2(mnt, MNT_DETACH);
        rmdir(mnt);
        free(mnt);
    }
}

TestSuite(full, .init = mount_small, .fini = unmount_small, .timeout = 60);

static bool no_space_reported(void *arg)
{
    struct fake_master *m = arg;
    cJSON *hb = fm_last_heartbeat(m);
    bool b = false;

    cm_json_get_bool(hb, CS_F_NO_SPACE, &b);
    cJSON_Delete(hb);
    return b;
}

Test(full, no_space_leaves_no_partial_block)
{
    struct th_opts o = {0};
    struct fake_master m;
    struct th_cs c;
    char *data = malloc(BS), dir[300], *got;
    cJSON *ans = NULL;
    uint64_t id = 1;
    size_t n;
    int rc = 0;

    fm_start(&m);
    o.masters = m.addr;
    snprintf(dir, sizeof(dir), "%s/cs", mnt);
    th_cs_start(&c, dir, &o);
    th_random(data, BS, 14);
    /* Announced lengths: refused up front once they no longer fit. */
    while ((rc = th_put(c.addr, id, data, 700 * 1024, NULL, NULL, false, &ans)) == 0) {
        cJSON_Delete(ans);
        cr_assert_lt(id++, 10);
    }
    cr_assert_eq(rc, CM_E_NOSPC, "%s", cm_errname(rc));
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "error"), "code")->valuestring,
                     "NO_SPACE");
    cJSON_Delete(ans);
    cr_assert_eq(th_get(c.addr, id, NULL, &got, &n), CM_E_NOENT);
    cr_assert_eq(th_count_temps(c.dir), 0);
    /* Unknown length: the disk fills in the middle of the write. */
    cr_assert_eq(th_put(c.addr, 99, data, BS, NULL, NULL, true, NULL), CM_E_NOSPC);
    cr_assert_eq(th_get(c.addr, 99, NULL, &got, &n), CM_E_NOENT);
    cr_assert_eq(th_count_temps(c.dir), 0);
    cr_assert(th_wait(no_space_reported, &m), "the master was not told the disk is full");
    /* The blocks written before are intact, and space comes back after a delete. */
    for (uint64_t k = 1; k < id; k++) {
        cr_assert_eq(th_get(c.addr, k, NULL, &got, &n), 0);
        cr_assert(n == 700 * 1024 && memcmp(got, data, n) == 0);
        free(got);
    }
    cr_assert_eq(th_status_of("DELETE", c.addr, "/blocks/0000000000000001"), 200);
    cr_assert_eq(th_put(c.addr, 100, data, 500 * 1024, NULL, NULL, true, NULL), 0);
    th_cs_stop(&c);
    fm_stop(&m);
    free(data);
}

Test(full, a_full_downstream_is_named_in_the_answer)
{
    struct th_cs a, b;
    char *data = malloc(BS), dir[300], *other = th_tmpdir();
    const char *err = NULL;
    cJSON *ans = NULL, *f;

    snprintf(dir, sizeof(dir), "%s/cs", mnt);
    th_cs_start(&b, dir, NULL);
    th_cs_start(&a, other, NULL);
    th_random(data, BS, 15);
    cr_assert_eq(th_put(b.addr, 1, data, BS, NULL, NULL, false, NULL), 0);
    cr_assert_eq(th_put(a.addr, 2, data, BS, b.addr, NULL, false, &ans), 0);
    cr_assert_str_eq(th_replicas(ans), a.addr);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(ans, CS_F_FAILED), 0);
    cr_assert_eq(cm_json_get_str(f, CS_F_ERROR, 64, &err, NULL), 0);
    cr_assert_str_eq(err, "NO_SPACE");
    cJSON_Delete(ans);
    cr_assert(th_wait(no_temps, b.dir));
    th_cs_stop(&a);
    th_cs_stop(&b);
    th_rmrf(other);
    free(other);
    free(data);
}
