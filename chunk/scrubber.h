/* Re-reads every block in the background at a bounded rate and marks those failing their CRCs
 * corrupt (which tells the masters). Never changes block data. */
#ifndef DFS_CHUNK_SCRUBBER_H
#define DFS_CHUNK_SCRUBBER_H

#include <stdint.h>

#include "chunk/store.h"

struct cs_scrub_stats {
    uint64_t bytes;         /* read since start */
    uint64_t blocks;        /* checked since start */
    uint64_t corrupt_found; /* blocks found damaged since start */
    uint64_t passes;        /* complete passes over the store */
    uint64_t pass_done;     /* blocks checked in the current pass */
    uint64_t pass_total;    /* blocks in the current pass */
};

struct cs_scrubber;

/* Starts the thread: passes over a snapshot of the table, reading at most rate bytes per second
 * (rate > 0), waiting pause_ms between passes. store is borrowed and must outlive the scrubber.
 * Errors: CM_E_INVAL, CM_E_NOMEM, CM_E_IO. Stop with cs_scrubber_stop. */
int cs_scrubber_start(struct cs_store *store, uint64_t rate, uint32_t pause_ms,
                      struct cs_scrubber **out);
void cs_scrubber_stats(struct cs_scrubber *sc, struct cs_scrub_stats *out);
/* Stops at the next window read, joins and frees. NULL is a no-op. */
void cs_scrubber_stop(struct cs_scrubber *sc);

#endif
