/* Test harness: real dfs-master processes on 127.0.0.1 with free ports and temporary storage,
 * started, killed (-9), stopped and restarted by the tests, plus small helpers for their HTTP
 * APIs. For tests only. */
#ifndef DFS_TESTS_CLUSTER_H
#define DFS_TESTS_CLUSTER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/http_client.h"

#define TC_MAX_MASTERS      7
#define TC_MAX_CHUNKSERVERS 8

struct tc_master {
    int id;
    uint16_t client_port;
    uint16_t http_port;
    char dir[256];
    pid_t pid; /* 0 when not running */
    bool join;
    char host[32];  /* the address it listens on and is reached at (default 127.0.0.1) */
    char netns[32]; /* a network namespace to run it in ("": the test's own) */
};

struct tc_chunkserver {
    uint16_t port; /* 0 until first started */
    char dir[256];
    pid_t pid; /* 0 when not running */
};

struct tc_cluster {
    char root[128];
    int n;
    struct tc_master m[TC_MAX_MASTERS];
    struct cm_http_client *http;
    const char *extra_args; /* appended to every master's command line (space-separated) */
    uint64_t client_seq;
    struct tc_chunkserver cs[TC_MAX_CHUNKSERVERS];
};

/* Creates n masters' configuration (ports, dirs) without starting them. */
void tc_init(struct tc_cluster *c, int n, const char *extra_args);
/* Starts master i (0-based) with --peers naming all others among the first c->n. */
void tc_start(struct tc_cluster *c, int i);
void tc_start_all(struct tc_cluster *c);
/* SIGKILL / SIGTERM (waits for exit) master i. */
void tc_kill(struct tc_cluster *c, int i);
void tc_stop(struct tc_cluster *c, int i);
/* Sends sig to master i (if running) without waiting: SIGSTOP and SIGCONT freeze and resume it. */
void tc_signal(struct tc_cluster *c, int i, int sig);
/* Stops everything and removes the temporary directory. */
void tc_destroy(struct tc_cluster *c);

/* Starts dfs-chunkserver k (0-based; a free port and a storage directory on first start, kept
 * across restarts) with --master-addr naming every master's client port, --rack r<k % racks>
 * (racks 0: no rack) and extra_args (may be NULL) appended. */
void tc_cs_start(struct tc_cluster *c, int k, int racks, const char *extra_args);
/* SIGKILL / SIGTERM (waits for exit) chunkserver k. */
void tc_cs_kill(struct tc_cluster *c, int k);
void tc_cs_stop(struct tc_cluster *c, int k);

/* GET /status of master i; NULL when it does not answer. Caller frees with cJSON_Delete. */
cJSON *tc_status(struct tc_cluster *c, int i);
/* Waits up to timeout_ms for a leader all running masters agree on; returns its index or -1. */
int tc_wait_leader(struct tc_cluster *c, int timeout_ms);

/* A put through the client API of master i (following no hint). Returns the cm result code;
 * *hint_out (may be NULL) gets the leader hint port when NOT_LEADER. */
int tc_put_at(struct tc_cluster *c, int i, const char *client, uint64_t seq, const char *key,
              const char *value, uint64_t *revision);
/* A put that finds the leader (hints, then every master) and retries on UNAVAILABLE, until
 * timeout_ms. The same (client, seq) is reused across retries: exactly-once. */
int tc_put(struct tc_cluster *c, const char *client, uint64_t seq, const char *key,
           const char *value, int timeout_ms);
/* A linearizable get at master i; *value malloc'd. */
int tc_get_at(struct tc_cluster *c, int i, const char *key, bool follower_read, char **value);
int tc_get(struct tc_cluster *c, const char *key, char **value, int timeout_ms);

/* POST body to path on master i's client port. Returns the cm result code; *answer (may be
 * NULL) gets the parsed 2xx body (caller frees with cJSON_Delete; NULL on error), *status (may
 * be NULL) the HTTP status. */
int tc_post_at(struct tc_cluster *c, int i, const char *path, const cJSON *body, cJSON **answer,
               int *status);
/* POST body to path at the leader: follows hints, tries every running master and retries on
 * NOT_LEADER, UNAVAILABLE and connection errors with the same body until timeout_ms. */
int tc_post(struct tc_cluster *c, const char *path, const cJSON *body, cJSON **answer,
            int timeout_ms);

/* POST a JSON body to a master's admin port; returns the cm result code. */
int tc_admin(struct tc_cluster *c, int i, const char *path, const char *json);

/* "127.0.0.1:P,127.0.0.1:Q,..." of the masters' client ports, for libdfs, dfsctl and mounts. */
void tc_masters(struct tc_cluster *c, char *out, size_t cap);

/* How many chunkservers the leader sees alive; ids[k] (may be NULL; zeroed first) gets the id of
 * chunkserver k (0 unless alive) and no_space[k] (may be NULL) its flag. */
int tc_cs_view(struct tc_cluster *c, int ncs, uint64_t *ids, bool *no_space);

/* Waits up to timeout_ms until the leader sees the first ncs chunkservers alive; ids (may be
 * NULL) as tc_cs_view gives them. Fails the test after that. */
void tc_wait_cs_alive(struct tc_cluster *c, int ncs, uint64_t *ids, int timeout_ms);

/* POSTs the JSON built from fmt to path at the leader (tc_post, 10 s); fails the test unless it
 * succeeds. Returns the answer (caller frees with cJSON_Delete). */
cJSON *tc_post_fmt(struct tc_cluster *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Creates the file name in the root directory, stores len bytes of data as one block through
 * the pipeline chunkserver 0 -> 1 -> 2, and commits it with replicas ids[0..2] (the chunkservers'
 * ids), as client with sequence numbers *seq + 1 .. *seq + 3 (*seq is advanced). Fails the test
 * on any error or an incomplete pipeline. Returns the block id. */
uint64_t tc_write_block_file(struct tc_cluster *c, uint64_t client, uint64_t *seq, const char *name,
                             const uint64_t ids[3], const void *data, size_t len);

/* The path of block's file in chunkserver k's storage directory: the one file named
 * <16 hex digits>.blk anywhere under its blocks/ folder, whatever the store's fan-out. Fails
 * the test unless there is exactly one. */
void tc_cs_block_path(struct tc_cluster *c, int k, uint64_t block, char *out, size_t cap);

/* The value of the sample name (a metric without labels) on chunkserver k's GET /metrics;
 * fails the test when it does not answer or has no such sample. */
uint64_t tc_cs_metric(struct tc_cluster *c, int k, const char *name);

/* Whether a line of master i's log (its stderr, <root>/m<id>.log, kept across restarts) contains
 * first and, after it on the same line, then (NULL: anything). */
bool tc_log_has(struct tc_cluster *c, int i, const char *first, const char *then);
/* Polls tc_log_has until it holds or timeout_ms passed; returns the last answer. */
bool tc_wait_log(struct tc_cluster *c, int i, const char *first, const char *then, int timeout_ms);

/* Runs a command line with bash (set -e -o pipefail; no single quotes in it); returns its exit
 * status (128 when killed). */
int tc_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A FUSE mount of the cluster by the `dfs` daemon in the foreground (tests only). */
struct tc_mount {
    char dir[300], log[300];
    pid_t pid;
};
/* Whether dir is a mountpoint (its device differs from its parent's). */
bool tc_mounted(const char *dir);
/* Mounts the cluster at <root>/<name> (made when missing) with `dfs -f`, 1 MiB blocks, 0.5 s
 * caches, allow_other and the -o options in extra (may be NULL); waits until it is mounted. The
 * log goes to <root>/<name>.<n>.log, n counting the mounts of this process. */
void tc_mount(struct tc_cluster *c, struct tc_mount *m, const char *name, const char *extra);
/* fusermount3 -u; the daemon must exit 0 and its log hold no sanitizer report. */
void tc_umount(struct tc_mount *m);

/* Milliseconds on the monotonic clock. */
uint64_t tc_now_ms(void);

#endif
