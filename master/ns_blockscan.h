/* A walk over every block the namespace's files reference, for the chunkserver manager
 * (re-replication). Reads the namespace only; call it on the thread that applies commands. */
#ifndef DFS_MASTER_NS_BLOCKSCAN_H
#define DFS_MASTER_NS_BLOCKSCAN_H

#include "master/namespace.h"

/* Calls fn for each extent's block of each regular file (a block shared by several extents is
 * seen once per extent); stops early when fn returns non-zero and returns that value. */
int ns_scan_blocks(struct ns *ns, int (*fn)(void *arg, const struct ns_block *b), void *arg);

#endif
