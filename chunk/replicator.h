/* Copies local blocks to other chunkservers, one at a time on its own thread (masters' commands,
 * POST .../replicate). Never changes the store, except to mark a block that fails its CRC. */
#ifndef DFS_CHUNK_REPLICATOR_H
#define DFS_CHUNK_REPLICATOR_H

#include <stdint.h>

#include "chunk/store.h"
#include "common/http_client.h"

#define CS_REPL_QUEUE_MAX 4096

/* The end of one job, on the replicator's thread (or in cs_replicator_stop, with
 * CM_E_CANCELED): rc 0 when the target holds the block; info is the block (NULL unless 0). */
typedef void (*cs_repl_done_fn)(void *ctx, int rc, const struct cs_block_info *info);

struct cs_repl_stats {
    uint64_t ok;
    uint64_t failed;
    uint64_t queued; /* now */
};

struct cs_replicator;

/* store and http are borrowed and must outlive the replicator. Errors: CM_E_NOMEM, CM_E_IO.
 * Stop with cs_replicator_stop. */
int cs_replicator_start(struct cs_store *store, struct cm_http_client *http, long timeout_ms,
                        struct cs_replicator **out);
/* Queues a copy of block id to target ("host:port", copied). done (may be NULL) is called
 * exactly once when 0 is returned, never from within this call. Errors: CM_E_BUSY (queue full),
 * CM_E_CANCELED (stopping), CM_E_INVAL (target too long), CM_E_NOMEM. */
int cs_replicator_submit(struct cs_replicator *r, uint64_t id, const char *target,
                         cs_repl_done_fn done, void *ctx);
void cs_replicator_stats(struct cs_replicator *r, struct cs_repl_stats *out);
/* Finishes the running job, ends the queued ones with CM_E_CANCELED, joins and frees. NULL is
 * a no-op. */
void cs_replicator_stop(struct cs_replicator *r);

#endif
