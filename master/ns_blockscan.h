/* Reads of the blocks the namespace's files reference, for the chunkserver manager
 * (re-replication, garbage). Reads the namespace only; call it on the thread that applies
 * commands. */
#ifndef DFS_MASTER_NS_BLOCKSCAN_H
#define DFS_MASTER_NS_BLOCKSCAN_H

#include "master/namespace.h"

/* Calls fn for each extent's block of each regular file (a block shared by several extents is
 * seen once per extent); stops early when fn returns non-zero and returns that value. */
int ns_scan_blocks(struct ns *ns, int (*fn)(void *arg, const struct ns_block *b), void *arg);

/* One step of a walk over the distinct block ids files reference (the block index), in no
 * particular order: looks at up to max slots of the index from *cursor on, puts the ids found
 * there into out (room for max) and moves *cursor on, to 0 once the walk is complete (start
 * with 0). Returns how many ids were put into out. Each step is short, so a walk over millions
 * of blocks can take turns with other work on the applying thread; ids added or dropped between
 * steps (and, when the index is rehashed meanwhile, ids near the cursor) may be missed or seen
 * twice. */
size_t ns_refs_walk(struct ns *ns, uint64_t *cursor, uint64_t *out, size_t max);

/* Sorts a chunkserver's copies (held, n ids) by the block index, without walking the files:
 * those some file references go to refd (room for n, same order), and up to max_del of the
 * others to del: the pending garbage, and orphans, ids neither referenced nor pending that are
 * below orphan_below (blocks old enough that no client can still be about to commit them). */
void ns_blocks_classify(struct ns *ns, const uint64_t *held, size_t n, uint64_t orphan_below,
                        uint64_t *refd, size_t *n_refd, uint64_t *del, size_t *n_del,
                        size_t max_del);

#endif
