/* Leader election (paper §5.2, §5.4.1): single node, three nodes, the up-to-date check, one
 * vote per term, and votes held back until term and vote are durable. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static void no_prevote(struct raft_config *c)
{
    c->pre_vote = false;
}

/* A VOTE to `to` from `from`, as a candidate of term with the given last log entry. */
static struct raft_msg vote_req(raft_id from, raft_id to, raft_term term, raft_index li,
                                raft_term lt)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_VOTE;
    m.from = from;
    m.to = to;
    m.term = term;
    m.u.vote.last_log_index = li;
    m.u.vote.last_log_term = lt;
    return m;
}

/* The first queued message of type from `from`, or NULL. */
static struct raft_msg *find(struct h_cluster *c, uint8_t type, raft_id from)
{
    for (uint32_t i = 0; i < c->q_n; i++) {
        struct h_qitem *it = h_queue_at(c, i);
        if (!it->persisted && it->m.type == type && it->m.from == from) {
            return &it->m;
        }
    }
    return NULL;
}

Test(election, single_node_elects_itself_and_commits_noop)
{
    struct h_cluster c;
    h_init(&c, 1, 1, NULL);
    cr_assert_eq(h_leader(&c), 0);
    raft_id l = h_elect(&c, 400);
    cr_assert_eq(l, 1);
    h_run(&c, 10);
    struct raft_status s = h_status(&c, 1);
    cr_assert_eq(s.term, 1);
    cr_assert_eq(s.last_index, 1);
    cr_assert_eq(s.commit_index, 1, "the NOOP of the new term commits");
    cr_assert_eq(c.nodes[1].applied, 1);
    cr_assert_eq(h_propose(&c, 1, "x"), 0);
    h_run(&c, 1);
    cr_assert_eq(c.nodes[1].applied, 2);
    h_free(&c);
}

Test(election, election_timeout_is_randomized_within_bounds)
{
    struct h_cluster c;
    h_init(&c, 1, 7, NULL);
    raft_time start = c.now;
    /* The first timeout falls in [150, 300). */
    cr_assert_geq(c.nodes[1].next_timeout, start);
    h_tick(&c, 1);
    cr_assert_geq(c.nodes[1].next_timeout, start + 150);
    cr_assert_lt(c.nodes[1].next_timeout, start + 300);
    h_free(&c);
}

Test(election, three_nodes_elect_exactly_one_leader)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct h_cluster c;
        h_init(&c, 3, seed, NULL);
        raft_id l = h_elect(&c, 2000);
        cr_assert_neq(l, 0, "seed %lu: no leader", (unsigned long)seed);
        h_run(&c, 200);
        int leaders = 0;
        for (raft_id i = 1; i <= 3; i++) {
            struct raft_status s = h_status(&c, i);
            leaders += s.role == RAFT_LEADER;
            cr_assert_eq(s.leader, l, "seed %lu: node %lu follows %lu", (unsigned long)seed,
                         (unsigned long)i, (unsigned long)s.leader);
            cr_assert_eq(s.commit_index, 1);
        }
        cr_assert_eq(leaders, 1);
        h_free(&c);
    }
}

Test(election, five_nodes_survive_leader_crash)
{
    struct h_cluster c;
    h_init(&c, 5, 3, NULL);
    raft_id l = h_elect(&c, 2000);
    cr_assert_neq(l, 0);
    struct raft_status s0 = h_status(&c, l);
    h_crash(&c, l);
    h_run(&c, 1000);
    raft_id l2 = h_leader(&c);
    cr_assert_neq(l2, 0);
    cr_assert_neq(l2, l);
    cr_assert_gt(h_status(&c, l2).term, s0.term);
    h_restart(&c, l);
    h_run(&c, 500);
    cr_assert_eq(h_status(&c, l).leader, l2);
    h_free(&c);
}

Test(election, vote_refused_to_a_less_up_to_date_log)
{
    struct h_cluster c;
    h_init(&c, 3, 5, no_prevote);
    raft_id l = h_elect(&c, 2000);
    cr_assert_neq(l, 0);
    h_propose(&c, l, "a");
    h_run(&c, 100);
    raft_id f = l == 1 ? 2 : 1;
    struct raft_status s = h_status(&c, f);
    cr_assert_eq(s.last_index, 2);
    h_run(&c, 1000); /* let the follower's lease lapse: isolate it from the leader */
    h_isolate(&c, f, true);
    h_run(&c, 200);
    h_drop_all(&c);
    raft_term t = h_status(&c, f).term;
    /* Same last term, shorter log: refused (paper §5.4.1). */
    raft_id cand = 6 - l - f; /* the third node id (1+2+3 = 6) */
    struct raft_msg m = vote_req(cand, f, t + 1, 1, s.term);
    h_receive(&c, f, &m);
    h_deliver(&c);
    struct raft_status after = h_status(&c, f);
    cr_assert_eq(after.term, t + 1, "a real vote of a newer term moves the term");
    cr_assert_eq(after.vote, 0, "but is not granted");
    /* Older last term, longer log: refused too. */
    m = vote_req(cand, f, t + 2, 10, s.term - 1 ? s.term - 1 : 0);
    if (m.u.vote.last_log_term == 0) {
        m.u.vote.last_log_index = 0;
    }
    h_receive(&c, f, &m);
    cr_assert_eq(h_status(&c, f).vote, 0);
    /* Same last term, same length: granted. */
    m = vote_req(cand, f, t + 3, 2, s.term);
    h_receive(&c, f, &m);
    cr_assert_eq(h_status(&c, f).vote, cand);
    h_free(&c);
}

Test(election, one_vote_per_term)
{
    struct h_cluster c;
    h_init(&c, 3, 9, no_prevote);
    struct raft_msg a = vote_req(2, 1, 5, 0, 0);
    struct raft_msg b = vote_req(3, 1, 5, 0, 0);
    h_receive(&c, 1, &a);
    h_deliver(&c); /* persisted: the grant goes out */
    struct raft_msg *r = find(&c, RAFT_MSG_VOTE_RESP, 1);
    (void)r;
    cr_assert_eq(h_status(&c, 1).vote, 2);
    h_receive(&c, 1, &b);
    cr_assert_eq(h_status(&c, 1).vote, 2, "a second candidate of the same term is refused");
    struct raft_msg *resp = find(&c, RAFT_MSG_VOTE_RESP, 1);
    cr_assert_not_null(resp);
    cr_assert_eq(resp->to, 3);
    cr_assert_not(resp->u.vote_resp.granted);
    /* The same candidate asking again gets the same answer. */
    h_drop_all(&c);
    h_receive(&c, 1, &a);
    h_deliver(&c);
    cr_assert_eq(h_status(&c, 1).vote, 2);
    h_free(&c);
}

static bool only_persisted(void *arg, struct raft_msg *m)
{
    (void)arg;
    (void)m;
    return false;
}

Test(election, vote_is_held_until_persisted)
{
    struct h_cluster c;
    h_init(&c, 3, 11, no_prevote);
    h_hold(&c, 1, true);
    struct raft_msg a = vote_req(2, 1, 4, 0, 0);
    h_receive(&c, 1, &a);
    cr_assert_eq(h_status(&c, 1).vote, 2);
    cr_assert_eq(c.nodes[1].n_held, 1, "term and vote go to disk");
    cr_assert_eq(c.nodes[1].held[0].p.term, 4);
    cr_assert_eq(c.nodes[1].held[0].p.vote, 2);
    cr_assert(c.nodes[1].held[0].p.has_hard_state);
    cr_assert_eq(h_queued(&c, RAFT_MSG_VOTE_RESP), 0, "no grant before the vote is durable");
    h_tick(&c, 1);
    cr_assert_eq(h_queued(&c, RAFT_MSG_VOTE_RESP), 0);
    c.filter = only_persisted;
    h_flush(&c, 1);
    struct raft_msg *resp = find(&c, RAFT_MSG_VOTE_RESP, 1);
    cr_assert_not_null(resp);
    cr_assert(resp->u.vote_resp.granted);
    cr_assert_eq(resp->term, 4);
    cr_assert_eq(c.nodes[1].vote, 2, "on disk before it was sent");
    h_free(&c);
}

Test(election, candidate_counts_itself_only_once_durable)
{
    struct h_cluster c;
    h_init(&c, 1, 13, no_prevote);
    h_hold(&c, 1, true);
    h_run(&c, 400);
    struct raft_status s = h_status(&c, 1);
    cr_assert_eq(s.role, RAFT_CANDIDATE);
    cr_assert_eq(s.vote, 1);
    h_flush(&c, 1);
    cr_assert_eq(h_status(&c, 1).role, RAFT_LEADER);
    cr_assert_eq(h_status(&c, 1).commit_index, 0, "the NOOP is not yet durable");
    h_flush(&c, 1);
    cr_assert_eq(h_status(&c, 1).commit_index, 1);
    h_free(&c);
}

Test(election, higher_term_response_makes_leader_step_down)
{
    struct h_cluster c;
    h_init(&c, 3, 17, NULL);
    raft_id l = h_elect(&c, 2000);
    cr_assert_neq(l, 0);
    raft_term t = h_status(&c, l).term;
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND_RESP;
    m.from = l == 1 ? 2 : 1;
    m.to = l;
    m.term = t + 1;
    cr_assert_eq(h_receive(&c, l, &m), 0);
    struct raft_status s = h_status(&c, l);
    cr_assert_eq(s.role, RAFT_FOLLOWER);
    cr_assert_eq(s.term, t + 1);
    h_free(&c);
}

Test(election, non_voter_never_campaigns)
{
    struct h_cluster c;
    bool voter[] = {true, true, false};
    h_init_conf(&c, 3, voter, 19, NULL);
    h_crash(&c, 1);
    h_crash(&c, 2);
    h_run(&c, 3000);
    struct raft_status s = h_status(&c, 3);
    cr_assert_eq(s.role, RAFT_FOLLOWER);
    cr_assert_eq(s.term, 0);
    h_free(&c);
}
