/* Linearizable reads without log entries (thesis §6.4, ReadIndex): the leader records its
 * commit index, confirms it is still leader with a heartbeat round (read_ctx), then releases
 * the read; followers forward reads to their leader. */
#ifndef DFS_RAFT_READ_INDEX_H
#define DFS_RAFT_READ_INDEX_H

#include "raft/core.h"

/* RAFT_EV_READ. 0 or RAFT_E_NOMEM. */
int raft__read(struct raft *r, uint64_t read_id);
void raft__read_index_recv(struct raft *r, const struct raft_msg *m);
void raft__read_index_resp_recv(struct raft *r, const struct raft_msg *m);
/* Leader: starts a heartbeat round (read_ctx + 1) at the current time; the caller sends it. */
void raft__read_round(struct raft *r);
/* Leader: a follower echoed a newer read_ctx; release the reads a majority confirmed. */
void raft__read_acked(struct raft *r);
/* Leader: the commit index moved; reads waiting for this term's first commit can start. */
void raft__read_on_commit(struct raft *r, raft_index old_commit);
/* Fails every pending read (leadership or leader changed). */
void raft__reads_fail(struct raft *r);
/* Follower: fails forwarded reads the leader did not answer in time. */
void raft__read_tick(struct raft *r);

#endif
