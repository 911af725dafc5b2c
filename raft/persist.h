/* What is durable: the persist batches handed to the driver, the persisted index they imply,
 * and the messages held back until what they acknowledge is on disk (paper §5.1 "updated on
 * stable storage before responding to RPCs", thesis §10.2.1). Never does I/O itself. */
#ifndef DFS_RAFT_PERSIST_H
#define DFS_RAFT_PERSIST_H

#include "raft/core.h"

/* Reserves what the end of a step needs so that it cannot fail. 0 or RAFT_E_NOMEM. */
int raft__persist_begin(struct raft *r);
/* Fills out with this step's batch (seq 0 when there is nothing to persist). */
void raft__persist_end(struct raft *r, struct raft_persist *out);

/* Changing term clears the vote (paper Figure 2); both go into this step's batch. */
void raft__set_term(struct raft *r, raft_term term);
void raft__set_vote(struct raft *r, raft_id vote);
/* True when the latest term and vote are reported durable. */
bool raft__hard_state_durable(const struct raft *r);

/* Makes room to announce more appended entries in this step's batch. 0 or RAFT_E_NOMEM. */
int raft__persist_reserve(struct raft *r, uint64_t more);
/* The entry at index (last + 1 of the log before) was appended in this step. */
void raft__persist_appended(struct raft *r, raft_index index);
/* The log was truncated from index from in this step. */
void raft__persist_truncated(struct raft *r, raft_index from);
/* A snapshot ending at index was installed in this step; keep_log: the log after it stays.
 * Until this step's batch is reported persisted no committed entry is handed out. */
void raft__persist_installed(struct raft *r, raft_index index, bool keep_log);

/* RAFT_EV_PERSISTED: every batch up to seq is durable. 0 or RAFT_E_INVAL. */
int raft__persisted(struct raft *r, uint64_t seq);

/* Sends m once batch need_seq is durable and the log is durable up to need_index (now, if it
 * already is). A held message is dropped when the term changes. */
void raft__hold(struct raft *r, const struct raft_msg *m, uint64_t need_seq, raft_index need_index);
/* Moves the held messages whose conditions hold into this step's messages (a no-op unless a
 * persisted seq was reported since the last call). */
void raft__held_release(struct raft *r);
/* Drops held messages of older terms (after a term change). */
void raft__held_drop_stale(struct raft *r);

#endif
