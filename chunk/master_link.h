/* The chunkserver side of chunkserver-to-master: register, heartbeats with changes, full reports,
 * commands handed back, all via client/master_conn. Never talks to other chunkservers. */
#ifndef DFS_CHUNK_MASTER_LINK_H
#define DFS_CHUNK_MASTER_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "chunk/store.h"
#include "client/master_conn.h"

#define CS_REPORT_PART_MAX       4096 /* blocks per POST /v1/cs/report */
#define CS_HEARTBEAT_CHANGES_MAX 4096 /* changes per heartbeat; the rest go in the next */

struct cs_master_link_config {
    const char *masters; /* endpoint list; copied by master_conn */
    const struct cm_secret *secret;
    long op_timeout_ms;          /* one operation; 0: the master_conn default */
    uint32_t heartbeat_ms;       /* > 0 */
    uint32_t report_interval_ms; /* full report period; 0: only when asked or after errors */
    struct cs_store *store;      /* borrowed */
    const char *addr;            /* advertised "host:port"; copied */
    const char *rack;            /* copied */
    /* The load figure sent with each heartbeat (requests in progress); may be NULL. */
    uint64_t (*load)(void *ctx);
    /* Copies waiting in the replicator, sent with each heartbeat so that the leader sends no
     * more replicate commands than it can run soon; may be NULL. */
    uint64_t (*repl_queued)(void *ctx);
    /* A "replicate" command: queue a copy of block id to target (unvalidated text from the
     * master). Returns 0 or a negative code (logged). Required. */
    int (*replicate)(void *ctx, uint64_t id, const char *target);
    void *ctx;
};

struct cs_master_link_status {
    uint64_t cs_id; /* 0 until registered */
    bool registered;
    bool leader_known;
    char leader[DFS_MC_ADDR_MAX];
    bool last_ok;        /* the last heartbeat (or registration) succeeded */
    int64_t last_ok_ms;  /* milliseconds since the last success; -1: never */
    uint64_t heartbeats; /* sent successfully */
    uint64_t failures;   /* operations that failed */
    uint64_t reports;    /* full reports completed */
    uint64_t commands;   /* commands received */
};

struct cs_master_link;

/* Starts the thread: registers, reports in full, then heartbeats. Errors: CM_E_INVAL,
 * CM_E_NOMEM, CM_E_IO. Stop with cs_master_link_stop. */
int cs_master_link_start(const struct cs_master_link_config *cfg, struct cs_master_link **out);
/* Sends a heartbeat now (e.g. a block was found corrupt). Any thread. */
void cs_master_link_wake(struct cs_master_link *l);
void cs_master_link_status(struct cs_master_link *l, struct cs_master_link_status *out);
/* Stops (a call in flight ends within its call timeout), joins and frees. NULL is a no-op. */
void cs_master_link_stop(struct cs_master_link *l);

#endif
