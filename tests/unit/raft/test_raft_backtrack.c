/* Fast backtracking (paper §5.3): a follower with a long conflicting suffix is repaired in a
 * few round trips, not one per entry. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

struct count {
    raft_id from;
    uint32_t rejects;
};

static bool count_rejects(void *arg, struct raft_msg *m)
{
    struct count *k = arg;
    if (m->type == RAFT_MSG_APPEND_RESP && m->from == k->from && !m->u.append_resp.success) {
        k->rejects++;
    }
    return true;
}

static raft_id pick(struct h_cluster *c, raft_id not1, raft_id not2)
{
    for (raft_id i = 1; i <= (raft_id)c->n; i++) {
        if (i != not1 && i != not2) {
            return i;
        }
    }
    return 0;
}

static void run_divergence(uint64_t seed, int stale, int fresh)
{
    struct h_cluster c;
    h_init(&c, 5, seed, NULL);
    raft_id l = h_elect(&c, 2000);
    cr_assert_neq(l, 0);
    h_run(&c, 100);
    raft_id f = pick(&c, l, 0);
    /* l and f are cut off together; l keeps appending entries that never commit. */
    for (raft_id i = 1; i <= 5; i++) {
        if (i != l && i != f) {
            h_cut(&c, l, i, true);
            h_cut(&c, f, i, true);
        }
    }
    for (int i = 0; i < stale; i++) {
        h_propose(&c, l, "stale");
    }
    h_deliver(&c);
    cr_assert_eq(h_status(&c, f).last_index, (raft_index)stale + 1);
    /* The majority side elects a new leader and commits other entries. */
    raft_id l2 = 0;
    for (int i = 0; i < 3000 && (l2 == 0 || l2 == l); i++) {
        h_run(&c, 1);
        l2 = 0;
        for (raft_id k = 1; k <= 5; k++) {
            if (k != l && k != f && h_status(&c, k).role == RAFT_LEADER) {
                l2 = k;
            }
        }
    }
    cr_assert_neq(l2, 0);
    for (int i = 0; i < fresh; i++) {
        h_propose(&c, l2, "fresh");
    }
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, l2).commit_index, (raft_index)fresh + 2);
    /* Heal: f's stale suffix must be replaced quickly. */
    struct count k = {.from = f};
    c.filter = count_rejects;
    c.filter_arg = &k;
    for (raft_id i = 1; i <= 5; i++) {
        h_cut(&c, l, i, false);
        h_cut(&c, f, i, false);
    }
    h_run(&c, 1000);
    cr_assert_eq(h_leader(&c), l2);
    cr_assert_eq(c.nodes[f].applied, (raft_index)fresh + 2);
    cr_assert_eq(c.nodes[l].applied, (raft_index)fresh + 2);
    cr_assert_leq(k.rejects, 3, "%u refusals to repair %d stale entries", k.rejects, stale);
    h_check_applied(&c);
    h_free(&c);
}

Test(backtrack, long_stale_suffix_repaired_in_few_round_trips)
{
    run_divergence(31, 500, 20);
}

Test(backtrack, stale_suffix_longer_than_the_new_log)
{
    run_divergence(32, 50, 200);
}

Test(backtrack, follower_far_behind_is_probed_with_its_last_index)
{
    struct h_cluster c;
    h_init(&c, 3, 33, NULL);
    raft_id l = h_elect(&c, 2000);
    raft_id f = pick(&c, l, 0);
    h_crash(&c, f);
    for (int i = 0; i < 300; i++) {
        h_propose(&c, l, "x");
    }
    h_run(&c, 50);
    struct count k = {.from = f};
    c.filter = count_rejects;
    c.filter_arg = &k;
    h_restart(&c, f);
    h_run(&c, 500);
    cr_assert_eq(c.nodes[f].applied, 301);
    cr_assert_leq(k.rejects, 1, "one refusal carries the follower's last index");
    h_free(&c);
}

Test(backtrack, conflict_hint_names_first_index_of_the_conflicting_term)
{
    struct h_cluster c;
    h_init(&c, 3, 34, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 50);
    raft_id f = pick(&c, l, 0);
    raft_term t = h_status(&c, f).term;
    /* An append that claims a different term at f's last entry. */
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND;
    m.from = l;
    m.to = f;
    m.term = t;
    m.u.append.prev_index = 1;
    m.u.append.prev_term = t + 0; /* matches: sanity */
    h_drop_all(&c);
    cr_assert_eq(h_receive(&c, f, &m), 0);
    h_deliver(&c);
    h_drop_all(&c);
    m.u.append.prev_index = 5;
    h_receive(&c, f, &m);
    struct h_qitem *it = h_queue_at(&c, 0);
    cr_assert_eq(it->m.type, RAFT_MSG_APPEND_RESP);
    cr_assert_not(it->m.u.append_resp.success);
    cr_assert_eq(it->m.u.append_resp.conflict_index, 2, "log too short: its last + 1");
    cr_assert_eq(it->m.u.append_resp.conflict_term, 0);
    cr_assert_eq(it->m.u.append_resp.last_index, 1);
    h_free(&c);
}
