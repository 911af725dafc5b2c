/* Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the target up
 * to date and sends it TIMEOUT_NOW; the target campaigns at once; abort after an election
 * timeout. */
#ifndef DFS_RAFT_TRANSFER_H
#define DFS_RAFT_TRANSFER_H

#include "raft/core.h"

/* RAFT_EV_TRANSFER (target 0: the most up-to-date voter). 0 or a raft_err. */
int raft__transfer(struct raft *r, raft_id target);
/* Leader: pr's match moved; sends TIMEOUT_NOW when pr is the caught-up target. */
void raft__transfer_progress(struct raft *r, const struct raft__progress *pr);
/* Leader: aborts a transfer that did not finish within an election timeout. */
void raft__transfer_tick(struct raft *r);
void raft__transfer_clear(struct raft *r);
/* Leader stepping down after its removal: TIMEOUT_NOW to the most up-to-date voter. */
void raft__transfer_handoff(struct raft *r);
void raft__timeout_now_recv(struct raft *r, const struct raft_msg *m);

#endif
