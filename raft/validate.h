/* Checks a received message before anything changes: malformed input from the network is
 * refused with RAFT_E_INVAL and leaves the node untouched (never asserted). */
#ifndef DFS_RAFT_VALIDATE_H
#define DFS_RAFT_VALIDATE_H

#include "raft/core.h"

/* 0 when m is well formed and addressed to r from a plausible sender; RAFT_E_INVAL otherwise. */
int raft__validate_msg(const struct raft *r, const struct raft_msg *m);

#endif
