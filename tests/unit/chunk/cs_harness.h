/* Test harness for chunk/: chunkservers inside the test process on 127.0.0.1 with free ports and
 * temporary directories, a fake master that records what chunkservers tell it and hands out
 * commands, and HTTP helpers. For tests only. */
#ifndef DFS_TESTS_CS_HARNESS_H
#define DFS_TESTS_CS_HARNESS_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk/chunkserver.h"
#include "common/http_client.h"
#include "common/http_server.h"

#define TH_WAIT_MS      20000 /* upper bound for anything awaited; only reached when a test fails */
#define FM_REPORT_TIMES 64    /* completed reports whose arrival time the fake master keeps */

/* ---- fake master ---- */

struct fake_master {
    struct cm_http_server *srv;
    uint16_t port;
    char addr[32];
    pthread_mutex_t mu; /* everything below */
    unsigned registers, heartbeats, report_parts, reports;
    uint64_t report_ms[FM_REPORT_TIMES]; /* th_now_ms() when report i's last part arrived */
    unsigned heartbeats_at_report[FM_REPORT_TIMES]; /* heartbeats answered by then */
    uint64_t next_cs_id;
    int heartbeat_error;   /* answer heartbeats with this error (0: normal) */
    int heartbeat_error_n; /* ... this many times */
    bool ask_report;       /* need_full_report in the next heartbeat answer */
    cJSON *commands;       /* [{"to": addr, "cmd": {...}}]: handed to addr's next heartbeat */
    cJSON *last_register;  /* the last bodies received */
    cJSON *last_heartbeat;
    cJSON *report;  /* blocks of the last complete report (array of {id,len,crc32c}) */
    cJSON *partial; /* blocks of the report being received */
    cJSON *corrupt; /* every id reported corrupt (heartbeats and reports) */
    cJSON *added;   /* every id reported added */
    cJSON *removed; /* every id reported removed */
};

void fm_start(struct fake_master *m);
void fm_stop(struct fake_master *m);
/* Queues a command (taken) for the next heartbeat answer to the chunkserver at addr to. */
void fm_command(struct fake_master *m, const char *to, cJSON *cmd);
/* true when the id (16 hex digits) is in list (m->corrupt, m->added, m->removed, or the ids of
 * m->report); takes m->mu. */
bool fm_has(struct fake_master *m, cJSON *const *list, uint64_t id);
unsigned fm_count(struct fake_master *m, const unsigned *counter);
/* A copy of a field of the last heartbeat (NULL if none); caller frees. */
cJSON *fm_last_heartbeat(struct fake_master *m);

/* ---- chunkservers ---- */

struct th_cs {
    struct chunkserver *cs;
    char dir[256];
    char addr[64];
    uint16_t port;
};

/* Options for th_cs_start; zero means a test default. */
struct th_opts {
    const char *masters;        /* NULL: no master link */
    uint64_t block_size;        /* 0: 1 MiB */
    uint64_t scrub_rate;        /* 0: scrubbing off */
    uint32_t scrub_pause_ms;    /* */
    uint32_t heartbeat_ms;      /* 0: 100 */
    uint32_t report_interval_s; /* full report period; 0: the daemon's default (an hour) */
    uint16_t port;              /* 0: any (a restart passes the old one) */
    const char *secret;         /* cluster secret; NULL: none */
};

/* A new temporary directory (caller frees the string; th_rmrf removes the tree). */
char *th_tmpdir(void);
void th_rmrf(const char *path);
/* Starts a chunkserver storing in dir (created if needed). */
void th_cs_start(struct th_cs *c, const char *dir, const struct th_opts *o);
void th_cs_stop(struct th_cs *c);

/* ---- HTTP ---- */

struct cm_http_client *th_http(void);
/* PUT bytes to addr's block id, with an optional downstream pipeline ("a,b") and expected CRC
 * ("%08x" or any text). chunked: no Content-Length. *answer (may be NULL) gets the JSON
 * answer or error body. Returns the cm result. */
int th_put(const char *addr, uint64_t id, const void *data, size_t len, const char *pipeline,
           const char *crc, bool chunked, cJSON **answer);
/* GET with an optional range ("a-b", "a-", "-n"); *data malloc'd. Returns the cm result. */
int th_get(const char *addr, uint64_t id, const char *range, char **data, size_t *len);
/* Any request to a raw path ("/blocks/xyz"); returns the HTTP status. */
int th_status_of(const char *method, const char *addr, const char *path);
cJSON *th_json_get(const char *addr, const char *path);
/* GET /metrics of addr: the Prometheus text (caller frees); fails the test on an error. */
char *th_metrics(const char *addr);
/* The value of the sample name (no labels) in a /metrics text; fails the test when the text has
 * no such line or its value is not an unsigned integer. */
uint64_t th_metric_of(const char *text, const char *name);
/* th_metric_of on a fresh th_metrics(addr). */
uint64_t th_metric(const char *addr, const char *name);

/* ---- misc ---- */

/* Stores block id in store s through a writer, in uneven pieces as a network delivers them, and
 * checks the committed length and CRC. */
struct cs_store;
void th_store_put(struct cs_store *s, uint64_t id, const char *data, size_t len);
/* Checks that block id of store s verifies and reads back as data. */
void th_store_expect(struct cs_store *s, uint64_t id, const char *data, size_t len);
void th_random(void *buf, size_t len, uint32_t seed);
/* The path of block id's file: the one file named <16 hex digits>.blk anywhere under
 * dir/blocks, whatever the store's fan-out (fails the test unless there is exactly one). */
void th_block_path(const char *dir, uint64_t id, char *out, size_t cap);
bool th_exists(const char *path);
/* Number of files whose name contains ".tmp." under dir. */
int th_count_temps(const char *dir);
/* Binds (without listening) a socket to 127.0.0.1:port so connections to a stopped server are
 * refused and no other server of a parallel test takes its port. Returns the fd to close. */
int th_hold_port(uint16_t port);
/* XORs one byte of a file with 0x01. */
void th_flip(const char *path, long off);
uint64_t th_now_ms(void);
void th_sleep_ms(unsigned ms);
/* Polls pred every 10 ms until true or TH_WAIT_MS passed. */
bool th_wait(bool (*pred)(void *), void *arg);
/* The replicas array of a PUT answer as a "a,b,c" string (static buffer). */
const char *th_replicas(const cJSON *answer);

#endif
