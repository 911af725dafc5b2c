/* Log replication (paper §5.3, Figure 2; thesis §3.5, §10.2): the leader's appends, heartbeats
 * and commit rule (§5.4.2), the follower's consistency check, and client proposals. */
#ifndef DFS_RAFT_REPLICATION_H
#define DFS_RAFT_REPLICATION_H

#include "raft/core.h"

/* Leader: appends one entry of the current term; takes data (malloc'd) on success. 0 or
 * RAFT_E_NOMEM (nothing changed, data still the caller's). */
int raft__leader_append(struct raft *r, uint8_t type, uint32_t len, void *data);
/* RAFT_EV_PROPOSE. 0 or a raft_err. */
int raft__propose(struct raft *r, uint32_t n, const struct raft_entry *entries);

/* Leader: sends pr what it may (pipelined in REPLICATE, one probe in PROBE, snapshot chunks in
 * SNAPSHOT); if_empty sends an empty APPEND when there is nothing new. */
void raft__send_append(struct raft *r, struct raft__progress *pr, bool if_empty);
void raft__replicate_all(struct raft *r, bool if_empty);
/* Leader: one heartbeat to every follower (carries read_ctx, thesis §6.4). */
void raft__heartbeat(struct raft *r);
/* Leader timers: heartbeats and check-quorum (thesis §6.2). */
void raft__leader_tick(struct raft *r);
/* When the leader must step down unless it hears from a majority (check-quorum). */
raft_time raft__quorum_deadline(const struct raft *r);

/* Follower: AppendEntries (paper Figure 2). 0, or RAFT_E_NOMEM (treated as a lost message). */
int raft__append_recv(struct raft *r, const struct raft_msg *m);
void raft__append_resp_recv(struct raft *r, const struct raft_msg *m);

/* Leader: advances the commit index to what a majority stores, counting only entries of the
 * current term (paper §5.4.2; the leader's own log counts up to what is persisted). */
void raft__maybe_commit(struct raft *r);
/* Sets the commit index (it only grows) and runs what depends on it. */
void raft__commit_to(struct raft *r, raft_index index);

#endif
