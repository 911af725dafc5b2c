/* Log replication and commitment (paper §5.3, §5.4.2, Figure 8; thesis §10.2.1): commit by
 * majority, acknowledgements only of durable entries, the leader's own log counted only once
 * durable, batching, and entries committed exactly once in order. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static raft_id other(raft_id l, int k)
{
    /* The k-th node (0-based) that is not l, in a cluster of ids 1..n. */
    raft_id id = 1;
    for (;; id++) {
        if (id == l) {
            continue;
        }
        if (k-- == 0) {
            return id;
        }
    }
}

Test(replication, three_nodes_commit_and_apply_in_order)
{
    struct h_cluster c;
    h_init(&c, 3, 21, NULL);
    raft_id l = h_elect(&c, 2000);
    cr_assert_neq(l, 0);
    for (int i = 0; i < 50; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "cmd-%d", i);
        cr_assert_eq(h_propose(&c, l, buf), 0);
        h_deliver(&c);
    }
    h_run(&c, 200); /* heartbeats carry the final commit index */
    for (raft_id i = 1; i <= 3; i++) {
        cr_assert_eq(h_status(&c, i).commit_index, 51);
        cr_assert_eq(c.nodes[i].applied, 51);
        cr_assert_eq(c.nodes[i].sm_count, 50);
        cr_assert_eq(c.nodes[i].sm_hash, c.nodes[l].sm_hash);
    }
    h_check_applied(&c);
    h_free(&c);
}

Test(replication, proposals_on_followers_are_refused)
{
    struct h_cluster c;
    h_init(&c, 3, 22, NULL);
    raft_id l = h_elect(&c, 2000);
    cr_assert_eq(h_propose(&c, other(l, 0), "x"), RAFT_E_NOT_LEADER);
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    char big[64];
    struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = sizeof big, .data = big};
    ev.u.propose.n = 1;
    ev.u.propose.entries = &e;
    c.nodes[l].r = c.nodes[l].r; /* keep */
    cr_assert_eq(h_step(&c, l, &ev), 0);
    struct raft_status s = h_status(&c, l);
    cr_assert_eq(s.last_index, 2);
    h_free(&c);
}

static void small_entries(struct raft_config *c)
{
    c->max_entry_bytes = 8;
}

Test(replication, oversized_proposal_is_too_big)
{
    struct h_cluster c;
    h_init(&c, 1, 23, small_entries);
    raft_id l = h_elect(&c, 1000);
    cr_assert_eq(h_propose(&c, l, "123456789"), RAFT_E_TOO_BIG);
    cr_assert_eq(h_status(&c, l).last_index, 1);
    h_free(&c);
}

Test(replication, proposed_index_and_term_are_reported)
{
    struct h_cluster c;
    h_init(&c, 1, 24, NULL);
    raft_id l = h_elect(&c, 1000);
    struct raft_entry e[3] = {{.type = RAFT_ENTRY_NORMAL, .len = 1, .data = "a"},
                              {.type = RAFT_ENTRY_NORMAL, .len = 1, .data = "b"},
                              {.type = RAFT_ENTRY_NORMAL, .len = 1, .data = "c"}};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE, .now = c.now};
    ev.u.propose.n = 3;
    ev.u.propose.entries = e;
    struct raft_update u;
    cr_assert_eq(raft_step(c.nodes[l].r, &ev, &u), 0);
    cr_assert_eq(u.proposed_index, 2);
    cr_assert_eq(u.proposed_term, h_status(&c, l).term);
    cr_assert_eq(u.persist.n_entries, 3);
    cr_assert_eq(u.persist.entries[0].index, 2);
    cr_assert_eq(u.n_committed, 0, "nothing is committed before it is durable");
    h_free(&c);
}

Test(replication, follower_acknowledges_only_durable_entries)
{
    struct h_cluster c;
    h_init(&c, 3, 25, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f1 = other(l, 0), f2 = other(l, 1);
    h_hold(&c, f1, true);
    h_hold(&c, f2, true);
    h_propose(&c, l, "x");
    h_deliver(&c);
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, f1).last_index, 2, "appended in memory");
    cr_assert_eq(h_status(&c, l).commit_index, 1, "but not acknowledged: nothing commits");
    h_flush(&c, f1);
    h_deliver(&c);
    cr_assert_eq(h_status(&c, l).commit_index, 2);
    h_free(&c);
}

Test(replication, leader_counts_its_own_log_only_once_durable)
{
    struct h_cluster c;
    h_init(&c, 3, 26, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f1 = other(l, 0), f2 = other(l, 1);
    h_hold(&c, l, true);
    h_hold(&c, f2, true);
    h_propose(&c, l, "x");
    h_deliver(&c);
    struct raft_status s = h_status(&c, l);
    cr_assert_eq(s.last_index, 2);
    cr_assert_eq(s.persisted_index, 1);
    cr_assert_eq(h_status(&c, f1).last_index, 2, "sent before the leader's own write");
    cr_assert_eq(s.commit_index, 1, "one follower plus an unpersisted leader is no majority");
    h_flush(&c, l);
    h_deliver(&c);
    cr_assert_eq(h_status(&c, l).commit_index, 2);
    cr_assert_eq(c.nodes[l].applied, 2);
    h_free(&c);
}

Test(replication, commit_with_a_majority_while_a_follower_is_down)
{
    struct h_cluster c;
    h_init(&c, 3, 27, NULL);
    raft_id l = h_elect(&c, 2000);
    raft_id f = other(l, 1);
    h_crash(&c, f);
    for (int i = 0; i < 20; i++) {
        h_propose(&c, l, "v");
    }
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, l).commit_index, 21);
    h_restart(&c, f);
    h_run(&c, 500);
    cr_assert_eq(c.nodes[f].applied, 21);
    h_check_applied(&c);
    h_free(&c);
}

static void batch3(struct raft_config *c)
{
    c->max_entries_per_msg = 3;
    c->max_bytes_per_msg = 10;
}

static uint32_t max_entries_seen, max_bytes_seen;

static bool record_batches(void *arg, struct raft_msg *m)
{
    (void)arg;
    if (m->type == RAFT_MSG_APPEND) {
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
            bytes += m->u.append.entries[i].len;
        }
        if (m->u.append.n_entries > max_entries_seen) {
            max_entries_seen = m->u.append.n_entries;
        }
        if (bytes > max_bytes_seen) {
            max_bytes_seen = (uint32_t)bytes;
        }
    }
    return true;
}

Test(replication, appends_are_batched_within_limits)
{
    struct h_cluster c;
    h_init(&c, 3, 28, batch3);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    c.filter = record_batches;
    struct raft_entry e[20];
    for (int i = 0; i < 20; i++) {
        e[i] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL,
                                   .len = i == 7 ? 25 : 3,
                                   .data = "0123456789012345678901234567890"};
    }
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.u.propose.n = 20;
    ev.u.propose.entries = e;
    cr_assert_eq(h_step(&c, l, &ev), 0);
    h_run(&c, 200);
    cr_assert_eq(max_entries_seen, 3);
    cr_assert_eq(max_bytes_seen, 25, "one entry larger than the limit still goes, alone");
    for (raft_id i = 1; i <= 3; i++) {
        cr_assert_eq(c.nodes[i].applied, 21);
    }
    h_free(&c);
}

static void one_per_msg(struct raft_config *c)
{
    c->max_entries_per_msg = 1;
}

/* Cuts the entries of term >= *arg (the newest leader's) off the end of appends. */
static bool drop_new_term_entries(void *arg, struct raft_msg *m)
{
    raft_term t = *(raft_term *)arg;
    if (m->type == RAFT_MSG_APPEND) {
        for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
            if (m->u.append.entries[i].term >= t) {
                m->u.append.n_entries = i;
                break;
            }
        }
    }
    return true;
}

/* Paper Figure 8: an entry of an older term stored on a majority is not committed by counting
 * replicas; only once an entry of the leader's own term is. */
Test(replication, figure8_old_term_entries_are_not_committed_by_counting)
{
    struct h_cluster c;
    h_init(&c, 5, 29, one_per_msg);
    raft_id l1 = h_elect(&c, 2000);
    cr_assert_neq(l1, 0);
    h_run(&c, 100);
    raft_id a = other(l1, 0);
    /* l1 replicates index 2 (its term) to a only, then crashes. */
    h_isolate(&c, l1, true);
    h_cut(&c, l1, a, false);
    h_propose(&c, l1, "old");
    h_deliver(&c);
    cr_assert_eq(h_status(&c, a).last_index, 2);
    raft_term t1 = h_status(&c, l1).term;
    h_crash(&c, l1);
    h_isolate(&c, l1, false);
    /* The others elect a leader without a; its entries reach nobody; then it crashes. */
    h_isolate(&c, a, true);
    raft_term t2_min = t1 + 1;
    c.filter = drop_new_term_entries;
    c.filter_arg = &t2_min;
    raft_id l2 = h_elect(&c, 3000);
    cr_assert_neq(l2, 0);
    cr_assert_neq(l2, a);
    raft_term t2 = h_status(&c, l2).term;
    cr_assert_eq(h_status(&c, l2).last_index, 2);
    h_crash(&c, l2);
    h_isolate(&c, a, false);
    /* l1 comes back; l1 or a (the logs with index 2) wins a later term. Its entry at index 2
     * (term t1) reaches a majority, its own NOOP does not. */
    h_restart(&c, l1);
    raft_term t3_min = t2 + 1;
    c.filter_arg = &t3_min;
    raft_id l3 = 0;
    for (int i = 0; i < 5000 && (l3 == 0 || h_status(&c, l3).term <= t2); i++) {
        h_run(&c, 1);
        l3 = h_leader(&c);
    }
    cr_assert(l3 == l1 || l3 == a, "leader %lu", (unsigned long)l3);
    h_run(&c, 300);
    int have = 0;
    for (raft_id i = 1; i <= 5; i++) {
        if (c.nodes[i].up && h_status(&c, i).last_index >= 2) {
            have++;
        }
    }
    cr_assert_geq(have, 3, "index 2 of term %lu is on a majority", (unsigned long)t1);
    cr_assert_lt(h_status(&c, l3).commit_index, 2, "but not committed by counting");
    /* Once the leader's own entry replicates, both commit. */
    c.filter = NULL;
    h_run(&c, 300);
    cr_assert_geq(h_status(&c, l3).commit_index, 3);
    h_restart(&c, l2);
    h_run(&c, 500);
    for (raft_id i = 1; i <= 5; i++) {
        cr_assert_geq(c.nodes[i].applied, 3);
    }
    h_check_applied(&c);
    h_free(&c);
}
