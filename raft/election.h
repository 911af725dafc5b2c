/* Leader election (paper §5.2, §5.4.1), pre-vote (thesis §9.6) and the leader lease that makes
 * servers ignore disruptive candidates (thesis §4.2.3). */
#ifndef DFS_RAFT_ELECTION_H
#define DFS_RAFT_ELECTION_H

#include "raft/core.h"

/* A new randomized election timeout in [min, max) from now (paper §5.2). */
void raft__election_reset_timer(struct raft *r);
/* True while this node would refuse to help depose its leader (thesis §4.2.3). */
bool raft__in_lease(const struct raft *r);
/* Follower / candidates: campaigns when the election timeout elapsed. */
void raft__election_tick(struct raft *r);
/* Starts a (pre-)election and asks every voter; transfer marks it as sent for TIMEOUT_NOW. */
void raft__election_start(struct raft *r, bool pre, bool transfer);
/* Counts the votes; wins, loses or keeps waiting. */
void raft__election_tally(struct raft *r);

void raft__vote_recv(struct raft *r, const struct raft_msg *m);
/* Refuses m (a VOTE) with this node's term, changing nothing. */
void raft__vote_reject(struct raft *r, const struct raft_msg *m);
void raft__vote_resp_recv(struct raft *r, const struct raft_msg *m);

#endif
