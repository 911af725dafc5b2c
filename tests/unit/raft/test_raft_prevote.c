/* Pre-vote (thesis §9.6), leader lease (thesis §4.2.3) and check-quorum (thesis §6.2): a node
 * that was partitioned does not bump its term or depose a healthy leader; an isolated leader
 * steps down within an election timeout. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static raft_id follower(raft_id l, int k)
{
    raft_id id = 1;
    for (;; id++) {
        if (id != l && k-- == 0) {
            return id;
        }
    }
}

Test(prevote, rejoining_partitioned_node_does_not_bump_term_or_depose_leader)
{
    struct h_cluster c;
    h_init(&c, 3, 51, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_term t = h_status(&c, l).term;
    raft_id f = follower(l, 0);
    h_isolate(&c, f, true);
    h_run(&c, 5000); /* many election timeouts: pre-votes only */
    struct raft_status s = h_status(&c, f);
    cr_assert_eq(s.term, t, "pre-votes never move the term");
    cr_assert_neq(s.role, RAFT_LEADER);
    h_isolate(&c, f, false);
    h_run(&c, 2000);
    cr_assert_eq(h_leader(&c), l);
    cr_assert_eq(h_status(&c, l).term, t, "the leader was not deposed");
    cr_assert_eq(h_status(&c, f).leader, l);
    h_free(&c);
}

Test(prevote, follower_in_lease_refuses_votes_of_higher_terms)
{
    struct h_cluster c;
    h_init(&c, 3, 52, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l, 0), o = follower(l, 1);
    raft_term t = h_status(&c, f).term;
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_VOTE;
    m.from = o;
    m.to = f;
    m.term = t + 5;
    m.u.vote.last_log_index = 100;
    m.u.vote.last_log_term = t + 4;
    h_drop_all(&c);
    h_receive(&c, f, &m);
    struct raft_status s = h_status(&c, f);
    cr_assert_eq(s.term, t, "no term change inside the lease");
    cr_assert_eq(s.vote, h_status(&c, f).vote);
    cr_assert_eq(h_queued(&c, RAFT_MSG_VOTE_RESP), 1);
    cr_assert_not(h_queue_at(&c, 0)->m.u.vote_resp.granted);
    /* The same vote flagged as a transfer is honoured. */
    h_drop_all(&c);
    m.u.vote.transfer = true;
    h_receive(&c, f, &m);
    h_deliver(&c);
    s = h_status(&c, f);
    cr_assert_eq(s.term, t + 5);
    cr_assert_eq(s.vote, o);
    h_free(&c);
}

Test(prevote, pre_vote_is_granted_without_state_change)
{
    struct h_cluster c;
    h_init(&c, 3, 53, NULL);
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_VOTE;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.u.vote.pre = true;
    h_receive(&c, 1, &m);
    struct raft_status s = h_status(&c, 1);
    cr_assert_eq(s.term, 0);
    cr_assert_eq(s.vote, 0);
    cr_assert_eq(h_queued(&c, RAFT_MSG_VOTE_RESP), 1);
    struct raft_msg *r = &h_queue_at(&c, 0)->m;
    cr_assert(r->u.vote_resp.pre);
    cr_assert(r->u.vote_resp.granted);
    cr_assert_eq(r->term, 1, "answered in the candidate's future term");
    h_free(&c);
}

Test(prevote, isolated_leader_steps_down_within_an_election_timeout)
{
    struct h_cluster c;
    h_init(&c, 5, 54, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 200);
    h_isolate(&c, l, true);
    raft_time cut_at = c.now;
    while (h_status(&c, l).role == RAFT_LEADER && c.now < cut_at + 1000) {
        h_run(&c, 1);
    }
    cr_assert_neq(h_status(&c, l).role, RAFT_LEADER);
    /* Last heard at most one heartbeat interval before the cut. */
    cr_assert_leq(c.now - cut_at, 300, "stepped down after %lu ms",
                  (unsigned long)(c.now - cut_at));
    h_run(&c, 1000);
    raft_id l2 = h_leader(&c);
    cr_assert_neq(l2, 0);
    cr_assert_neq(l2, l);
    h_free(&c);
}

static void no_check_quorum(struct raft_config *c)
{
    c->check_quorum = false;
}

Test(prevote, without_check_quorum_an_isolated_leader_stays)
{
    struct h_cluster c;
    h_init(&c, 3, 55, no_check_quorum);
    raft_id l = h_elect(&c, 2000);
    h_isolate(&c, l, true);
    h_run(&c, 2000);
    cr_assert_eq(h_status(&c, l).role, RAFT_LEADER);
    h_free(&c);
}

Test(prevote, minority_side_elects_nobody_and_keeps_its_term)
{
    struct h_cluster c;
    h_init(&c, 5, 56, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_term t = h_status(&c, l).term;
    raft_id a = follower(l, 0), b = follower(l, 1);
    /* a and b together, cut from the other three. */
    for (raft_id i = 1; i <= 5; i++) {
        if (i != a && i != b) {
            h_cut(&c, a, i, true);
            h_cut(&c, b, i, true);
        }
    }
    h_run(&c, 3000);
    cr_assert_eq(h_status(&c, a).term, t);
    cr_assert_eq(h_status(&c, b).term, t);
    cr_assert_eq(h_leader(&c), l);
    h_free(&c);
}
