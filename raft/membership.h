/* Membership (thesis §4.1, one server at a time): the configurations in the log, each in
 * effect from when its entry is appended and reverted if that entry is truncated; the leader's
 * conf changes and automatic promotion of caught-up non-voters; what a removed node may do. */
#ifndef DFS_RAFT_MEMBERSHIP_H
#define DFS_RAFT_MEMBERSHIP_H

#include "raft/core.h"

/* The configuration in effect: the latest in the log, committed or not. */
static inline const struct raft_conf *raft__conf(const struct raft *r)
{
    return &r->confs[r->n_confs - 1].conf;
}

/* Index of the entry that carried it (0 or the snapshot index for the base). */
static inline raft_index raft__conf_index(const struct raft *r)
{
    return r->confs[r->n_confs - 1].index;
}

/* No longer in the configuration (a node booted with an empty one is not removed). */
bool raft__removed(const struct raft *r);
/* A voter of the configuration in effect may campaign; others never do. */
bool raft__can_campaign(const struct raft *r);

/* Sets up the history with the boot or snapshot configuration. 0 or RAFT_E_NOMEM. */
int raft__conf_init(struct raft *r, raft_index index, const struct raft_conf *c);
/* Makes room for more configurations so that raft__conf_appended cannot fail. */
int raft__conf_reserve(struct raft *r, uint32_t more);
/* A CONF entry at index was appended: its configuration is now in effect. */
void raft__conf_appended(struct raft *r, raft_index index, const struct raft_conf *c);
/* Entries from index from were truncated: configurations they carried are reverted. */
void raft__conf_truncated(struct raft *r, raft_index from);
/* A snapshot at index was taken: older configurations are no longer needed. */
void raft__conf_compacted(struct raft *r, raft_index index);
/* A snapshot at index with configuration c was installed; keep_log: later entries stay. */
void raft__conf_installed(struct raft *r, raft_index index, const struct raft_conf *c,
                          bool keep_log);
/* The configuration in effect at index (>= the base's index). */
const struct raft_conf *raft__conf_at(const struct raft *r, raft_index index);

/* Leader: makes the progress slots match the configuration; reset: all fresh (election). */
void raft__progress_sync(struct raft *r, bool reset);

/* RAFT_EV_CONF_CHANGE on the leader. 0 or a raft_err. */
int raft__conf_change(struct raft *r, uint8_t op, raft_id id, const char *addr);
/* Leader: proposes PROMOTE for a non-voter whose match reached the commit index. */
void raft__maybe_promote(struct raft *r);
/* The commit index advanced: a leader whose removal committed steps down (thesis §4.2.2). */
void raft__membership_on_commit(struct raft *r, raft_index old_commit);

#endif
