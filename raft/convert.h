/* Role changes (paper §5.2, Figure 4; thesis §9.6 for the pre-candidate): each resets the state
 * the new role starts from. */
#ifndef DFS_RAFT_CONVERT_H
#define DFS_RAFT_CONVERT_H

#include "raft/core.h"

/* Follows leader (0: unknown) in term (>= the current term; a new term clears the vote). */
void raft__become_follower(struct raft *r, raft_term term, raft_id leader);
/* Starts a pre-vote: no term change (thesis §9.6). */
void raft__become_pre_candidate(struct raft *r);
/* Starts an election: term + 1, votes for itself (paper §5.2). */
void raft__become_candidate(struct raft *r, bool transfer);
/* Won the election: fresh progress, a NOOP of the new term (paper §8). */
void raft__become_leader(struct raft *r);

#endif
