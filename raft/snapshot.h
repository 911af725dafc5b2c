/* Snapshots (thesis §5): asking the driver for one, compacting the log after it, sending it in
 * chunks to a follower that needs compacted entries (InstallSnapshot, thesis Figure 5.3), and
 * receiving and installing one. The core never sees snapshot bytes except chunks in transit. */
#ifndef DFS_RAFT_SNAPSHOT_H
#define DFS_RAFT_SNAPSHOT_H

#include "raft/core.h"

/* Leader: pr needs entries that are compacted: send it the current snapshot from offset 0. */
void raft__snapshot_start(struct raft *r, struct raft__progress *pr);
/* Leader: sends the chunks the in-flight caps allow. */
void raft__snapshot_send(struct raft *r, struct raft__progress *pr);
/* Leader, every heartbeat: resends from the last confirmed offset when nothing moved. */
void raft__snapshot_recover(struct raft *r, struct raft__progress *pr);
void raft__snapshot_resp_recv(struct raft *r, const struct raft_msg *m);

/* Follower: one chunk. 0, or RAFT_E_INVAL for a chunk out of order (answered with the offset
 * expected, nothing changed). */
int raft__snapshot_recv(struct raft *r, const struct raft_msg *m);

/* RAFT_EV_SNAPSHOT_TAKEN. 0 or RAFT_E_INVAL. */
int raft__snapshot_taken(struct raft *r, raft_index index, raft_term term, uint64_t size);

#endif
