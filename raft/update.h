/* The update one step hands to the driver: outgoing messages, committed entries, reads, and the
 * assembly of struct raft_update at the end of raft_step (raft.h: pointers live until the next
 * step). */
#ifndef DFS_RAFT_UPDATE_H
#define DFS_RAFT_UPDATE_H

#include "raft/core.h"

/* Resets the step's buffers and frees what the previous update pointed to. 0 or NOMEM. */
int raft__step_begin(struct raft *r);
/* Fills *u from the step (persist batch, messages, committed entries, reads, timeout). */
void raft__step_end(struct raft *r, struct raft_update *u);

/* A zeroed message with type, from, to and term set, appended to this step's messages; valid
 * until the next message is added. NULL when out of memory (the message is lost, which Raft
 * tolerates). */
struct raft_msg *raft__msg(struct raft *r, uint8_t type, raft_id to);
/* The same, built in *m for raft__hold. */
void raft__msg_init(const struct raft *r, struct raft_msg *m, uint8_t type, raft_id to);
void raft__msg_push(struct raft *r, const struct raft_msg *m);
/* An APPEND to to carrying the log entries [first, first + n); entries are filled in when the
 * update is assembled. NULL when out of memory. */
struct raft_msg *raft__msg_append(struct raft *r, raft_id to, raft_index first, uint32_t n);

/* Adds {read_id, index, ok} to update.reads. */
void raft__emit_read(struct raft *r, uint64_t read_id, raft_index index, bool ok);

#endif
