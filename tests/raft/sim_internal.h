/* Shared between the simulator's files (sim.c: cluster, network and disks; sim_check.c: the
 * safety checks; sim_client.c: clients and their history). Not for tests. */
#ifndef DFS_TESTS_RAFT_SIM_INTERNAL_H
#define DFS_TESTS_RAFT_SIM_INTERNAL_H

#include "tests/raft/sim.h"

static inline raft_index mlog_last(const struct sim_mlog *l)
{
    return l->base + l->n;
}

/* The term at index in the core's log (0 when unknown: before the base or past the end). */
static inline raft_term mlog_term(const struct sim_mlog *l, raft_index index)
{
    if (index == l->base)
        return l->base_term;
    if (index < l->base || index > mlog_last(l))
        return 0;
    return l->e[index - l->base - 1].term;
}

uint64_t sim_hash(const void *data, size_t len, uint64_t seed);
uint64_t sim_entry_hash(uint8_t type, const void *data, uint32_t len);
void sim_schedule(struct sim *s, struct sim_ev ev);
/* Runs one raft_step on a running node and handles its update. */
int sim_node_step(struct sim *s, struct sim_node *n, struct raft_event *ev,
                  struct raft_update *copy_out);

/* What check_status compares across a step. */
struct sim_brief {
    uint8_t role;
    raft_term term;
    raft_id leader;
    raft_index commit_index;
};

/* sim_check.c */
void check_status(struct sim *s, struct sim_node *n, const struct sim_brief *prev);
void check_leader_completeness(struct sim *s, struct sim_node *n);
/* An entry (index, term) enters n's log after prev_term. */
void check_log_entry(struct sim *s, struct sim_node *n, raft_index index, raft_term term,
                     raft_term prev_term, uint64_t hash);
void check_apply(struct sim *s, struct sim_node *n, const struct raft_entry *e, uint64_t hash);
void check_msg_out(struct sim *s, struct sim_node *n, const struct raft_msg *m);
void check_snapshot_bytes(struct sim *s, raft_index index, const uint8_t *data, size_t len);
void check_ack(struct sim *s, struct sim_node *n, raft_index index, raft_term term, uint8_t client,
               uint32_t seq);
void check_free(struct sim *s);

/* sim_client.c */
void client_wake(struct sim *s, struct sim_client *c, uint64_t gen);
void client_on_apply(struct sim *s, struct sim_node *n, raft_index index, raft_term term);
void client_on_install(struct sim *s, struct sim_node *n);
void client_on_read(struct sim *s, struct sim_node *n, const struct raft_read *rd);
void client_serve(struct sim *s, struct sim_node *n);
void client_on_node_lost(struct sim *s, struct sim_node *n);
void client_free(struct sim *s);

#endif
