/* The connection to "the masters": POSTs JSON to the current Raft leader of a master list,
 * following NOT_LEADER hints and retrying others with backoff. Knows no endpoint's meaning. */
#ifndef DFS_CLIENT_MASTER_CONN_H
#define DFS_CLIENT_MASTER_CONN_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"

#define DFS_MC_DEFAULT_OP_TIMEOUT_MS      10000
#define DFS_MC_DEFAULT_CALL_TIMEOUT_MS    3000
#define DFS_MC_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DFS_MC_DEFAULT_BACKOFF_MIN_MS     20
#define DFS_MC_DEFAULT_BACKOFF_MAX_MS     1000
/* Longest "host:port" (or "[v6]:port") of a master remembered as leader. */
#define DFS_MC_ADDR_MAX 272

struct dfs_master_conn_config {
    /* The masters: "host:port,host:port,..." or an SRV name, as common/resolver.h takes it.
     * Copied. Required. */
    const char *masters;
    const struct cm_secret *secret; /* copied; NULL: no secret header */
    long op_timeout_ms;             /* one operation, all attempts and waits; 0: default */
    long call_timeout_ms;           /* one attempt at one master; 0: default */
    long connect_timeout_ms;        /* 0: default */
    long backoff_min_ms;            /* first wait after a round of failures; 0: default */
    long backoff_max_ms;            /* waits double up to this; 0: default */
    const char *dns_servers;        /* as cm_resolver_opts.servers; NULL: the system's */
    uint64_t seed;                  /* of the backoff jitter; 0: from the clock and pid */
};

/* Counters since creation, for status pages and tests. */
struct dfs_master_conn_stats {
    uint64_t ops;          /* dfs_master_conn_post calls */
    uint64_t attempts;     /* HTTP requests sent */
    uint64_t hint_follows; /* NOT_LEADER answers whose hint was followed at once */
    uint64_t backoffs;     /* waits after a round of failed attempts */
    uint64_t failures;     /* operations that ended in CM_E_TIMEOUT or CM_E_UNAVAILABLE */
};

/* Thread-safe: any number of threads may post at once; they share the cached leader and the
 * keep-alive connections. */
struct dfs_master_conn;

/* Creates a connection; does no I/O (names are resolved on first use). Errors: CM_E_INVAL (no
 * or bad master list, negative timeouts), CM_E_NOMEM. Free with dfs_master_conn_free. */
int dfs_master_conn_new(const struct dfs_master_conn_config *cfg, struct dfs_master_conn **out);
/* No call may be running. NULL is a no-op. */
void dfs_master_conn_free(struct dfs_master_conn *mc);

/* POSTs body (NULL: {}) to path ("/v1/...") at the leader and returns its answer. Tries the
 * cached leader first, else the masters in turn. A NOT_LEADER answer with a leader_hint sends
 * the request straight to the hinted master; NOT_LEADER without hint, UNAVAILABLE, BUSY, a
 * failed connection (the name is re-resolved) or an attempt's timeout moves on to the next
 * master, waiting with exponential backoff and jitter after each round through all of them,
 * until the operation timeout. The request may thus reach the leader more than once: only post
 * what the masters apply at most once (e.g. with a client id and sequence number).
 * On success *answer (may be NULL) receives the answer's JSON (NULL for an empty body; the
 * caller frees it with cJSON_Delete). Returns 0, or:
 *   - an error the leader answered (e.g. CM_E_NOT_FOUND, CM_E_INVAL): *answer then holds the
 *     whole error body {"error":{"code",...}} so the caller can read extra fields;
 *   - CM_E_UNAVAILABLE: no master could be reached at all before the operation timeout;
 *   - CM_E_TIMEOUT: masters were reached but none served the request as leader in time;
 *   - CM_E_CANCELED after dfs_master_conn_cancel; CM_E_INVAL (bad path), CM_E_NOMEM.
 * timeout_ms overrides the operation timeout when > 0 (dfs_master_conn_post_timeout). */
int dfs_master_conn_post(struct dfs_master_conn *mc, const char *path, const cJSON *body,
                         cJSON **answer);
int dfs_master_conn_post_timeout(struct dfs_master_conn *mc, const char *path, const cJSON *body,
                                 long timeout_ms, cJSON **answer);

/* Copies the cached leader's "host:port" into buf. Returns 0, CM_E_NOENT (no leader known) or
 * CM_E_RANGE (cap too small). */
int dfs_master_conn_leader(struct dfs_master_conn *mc, char *buf, size_t cap);

/* Makes running and later operations end soon with CM_E_CANCELED (an attempt in flight still
 * runs to its call timeout). Used when the owner shuts down. */
void dfs_master_conn_cancel(struct dfs_master_conn *mc);

void dfs_master_conn_stats(struct dfs_master_conn *mc, struct dfs_master_conn_stats *out);

#endif
