/* The leader's counts of under-replicated and missing blocks, for /status and /metrics: a
 * thread walks the block index every few seconds and judges every referenced block's copies
 * against the chunkservers' reports (cs_health_count). It only reads: it changes neither the
 * namespace nor the chunkserver registry, and it never holds the loop thread or the registry
 * for more than a bounded step. */
#ifndef DFS_MASTER_BLOCK_HEALTH_H
#define DFS_MASTER_BLOCK_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/cs_registry.h"

#define BH_INTERVAL_MS 3000  /* between walks (longer when a walk itself takes long) */
#define BH_BATCH       4096  /* blocks judged per registry lock */
#define BH_WALK_STEP   65536 /* block index slots looked at per turn on the loop thread */

struct master;
struct block_health;

/* The counts of the last walk. */
struct bh_counts {
    bool known;           /* this master leads and the counts below hold */
    struct cs_health h;   /* under_replicated and missing as judged with the grace below */
    uint64_t computed_ms; /* monotonic ms the last walk counted at (0: none) */
};

/* Starts the thread, which walks only while m leads. A block counts as under-replicated or
 * missing once it has been so for grace_ms (the chunkservers' dead timeout: a block just
 * committed is only reported by its chunkservers' next heartbeats), and the counts are known
 * once the registry can judge copies (cs_health_count) and has done so for grace_ms. Free with
 * bh_stop. */
int bh_start(struct master *m, uint64_t grace_ms, struct block_health **out);
/* Stops and joins the thread (before the Raft node stops). NULL is a no-op. */
void bh_stop(struct block_health *b);
/* A copy of the last counts; known is false on a master that does not lead now (and when b is
 * NULL). */
void bh_get(struct block_health *b, struct bh_counts *out);

/* ---- the judgement, for tests ---- */

/* Blocks found short (fewer than CS_DEFAULT_REPLICATION sound copies), sorted by id, with the
 * time each was first found so. */
struct bh_short {
    uint64_t id;
    uint64_t since_ms;
};
struct bh_shortlist {
    struct bh_short *v;
    size_t n, cap;
};

/* One batch of a walk: ids (ascending, after those of earlier batches) with copies[i] sound
 * copies each. Short ones are appended to next with the time they were first found short (as
 * prev says, read on from *at, which the call moves on; else now_ms); into *h go the ids
 * (referenced), and those short for at least grace_ms (under_replicated, and missing when they
 * have no copy). CM_E_NOMEM. */
int bh_judge(const struct bh_shortlist *prev, size_t *at, struct bh_shortlist *next,
             const uint64_t *ids, const uint8_t *copies, size_t n, uint64_t now_ms,
             uint64_t grace_ms, struct cs_health *h);
void bh_shortlist_free(struct bh_shortlist *s);

#endif
