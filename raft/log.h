/* The in-memory Raft log: a ring of entries addressed by index - first index, plus the index and
 * term of the entry just before the first one (dropped by a snapshot or compaction). No I/O. */
#ifndef DFS_RAFT_LOG_H
#define DFS_RAFT_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

/* Entry data the core no longer references but an update handed out in the current step still
 * may: freed at the start of the next step (raft.h: update pointers live until then). */
struct raft__trash {
    void **p;
    uint32_t n, cap;
};

void raft__trash_put(struct raft__trash *t, void *p);
void raft__trash_empty(struct raft__trash *t);
void raft__trash_close(struct raft__trash *t);

/* Entries are stored with data owned by the log (malloc'd, NULL when len is 0). Terms never
 * decrease along the log (paper §5.3), which the term searches below rely on. */
struct raft__log {
    struct raft_entry *ring;
    uint64_t cap;  /* a power of two, or 0 */
    uint64_t head; /* ring slot of the first entry */
    uint64_t n;
    raft_index prev_index; /* the entry before the first; 0 for an empty log from the start */
    raft_term prev_term;
};

void raft__log_init(struct raft__log *l, raft_index prev_index, raft_term prev_term);
void raft__log_close(struct raft__log *l);

static inline raft_index raft__log_first(const struct raft__log *l)
{
    return l->prev_index + 1;
}

static inline raft_index raft__log_last(const struct raft__log *l)
{
    return l->prev_index + l->n;
}

/* The entry at index, or NULL outside [first, last]. Valid until the log changes. */
const struct raft_entry *raft__log_get(const struct raft__log *l, raft_index index);
/* The term at index when known: in the log, the entry before the first, or 0 for index 0. */
bool raft__log_term(const struct raft__log *l, raft_index index, raft_term *term);
raft_term raft__log_last_term(const struct raft__log *l);

/* Makes room for more entries so that raft__log_push cannot fail. 0 or RAFT_E_NOMEM. */
int raft__log_reserve(struct raft__log *l, uint64_t more);
/* Appends e (index must be last + 1) after a successful reserve; takes ownership of e->data. */
void raft__log_push(struct raft__log *l, const struct raft_entry *e);
/* Drops the entries with index >= from (their data goes to trash). */
void raft__log_truncate(struct raft__log *l, raft_index from, struct raft__trash *t);
/* Drops the entries with index <= upto (which must be in the log or before it). */
void raft__log_compact(struct raft__log *l, raft_index upto, struct raft__trash *t);
/* Drops every entry; the log restarts after (index, term). */
void raft__log_reset(struct raft__log *l, raft_index index, raft_term term, struct raft__trash *t);

/* Smallest index in [lo, hi] (both in the log, lo <= hi) whose term is >= term, or hi + 1. */
raft_index raft__log_first_at_least(const struct raft__log *l, raft_term term, raft_index lo,
                                    raft_index hi);
/* Largest index <= hi in the log whose term is exactly term; false when there is none. */
bool raft__log_last_of_term(const struct raft__log *l, raft_term term, raft_index hi,
                            raft_index *out);

#endif
