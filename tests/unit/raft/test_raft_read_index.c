/* ReadIndex (thesis §6.4): on the leader after a heartbeat round confirms it, immediately on a
 * single voter, only after the leader committed an entry of its term; forwarded by followers;
 * refused without a leader or when leadership is lost. */
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

Test(read_index, single_voter_leader_answers_at_once)
{
    struct h_cluster c;
    h_init(&c, 1, 91, NULL);
    h_elect(&c, 1000);
    h_run(&c, 10);
    cr_assert_eq(h_read(&c, 1, 42), 0);
    cr_assert_eq(c.nodes[1].n_reads, 1);
    cr_assert_eq(c.nodes[1].reads[0].read_id, 42);
    cr_assert_eq(c.nodes[1].reads[0].index, 1);
    cr_assert(c.nodes[1].reads[0].ok);
    h_free(&c);
}

Test(read_index, leader_confirms_with_a_heartbeat_round)
{
    struct h_cluster c;
    h_init(&c, 3, 92, NULL);
    raft_id l = h_elect(&c, 2000);
    h_propose(&c, l, "x");
    h_run(&c, 100);
    h_drop_all(&c);
    cr_assert_eq(h_read(&c, l, 7), 0);
    cr_assert_eq(c.nodes[l].n_reads, 0, "not before a majority confirmed leadership");
    cr_assert_eq(h_queued(&c, RAFT_MSG_APPEND), 2, "a heartbeat to each follower");
    cr_assert_eq(h_queue_at(&c, 0)->m.u.append.read_ctx, h_queue_at(&c, 1)->m.u.append.read_ctx);
    h_deliver(&c);
    cr_assert_eq(c.nodes[l].n_reads, 1);
    cr_assert_eq(c.nodes[l].reads[0].read_id, 7);
    cr_assert_eq(c.nodes[l].reads[0].index, 2);
    cr_assert(c.nodes[l].reads[0].ok);
    h_free(&c);
}

static bool drop_entries_from(void *arg, struct raft_msg *m)
{
    raft_id *from = arg;
    return !(m->type == RAFT_MSG_APPEND && m->from == *from && m->u.append.n_entries > 0);
}

Test(read_index, leader_waits_for_its_first_commit)
{
    struct h_cluster c;
    h_init(&c, 3, 93, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id t = follower(l, 0);
    c.filter = drop_entries_from;
    c.filter_arg = &t;
    h_transfer(&c, l, t);
    h_deliver(&c);
    cr_assert_eq(h_leader(&c), t);
    h_read(&c, t, 5);
    h_run(&c, 100);
    cr_assert_eq(c.nodes[t].n_reads, 0, "the NOOP of its term is not committed");
    c.filter = NULL;
    h_run(&c, 100);
    cr_assert_eq(c.nodes[t].n_reads, 1);
    cr_assert(c.nodes[t].reads[0].ok);
    cr_assert_eq(c.nodes[t].reads[0].index, h_status(&c, t).last_index);
    h_free(&c);
}

Test(read_index, follower_forwards_to_the_leader)
{
    struct h_cluster c;
    h_init(&c, 3, 94, NULL);
    raft_id l = h_elect(&c, 2000);
    h_propose(&c, l, "x");
    h_run(&c, 100);
    raft_id f = follower(l, 0);
    h_drop_all(&c);
    cr_assert_eq(h_read(&c, f, 11), 0);
    cr_assert_eq(h_queued(&c, RAFT_MSG_READ_INDEX), 1);
    h_deliver(&c);
    cr_assert_eq(c.nodes[f].n_reads, 1);
    cr_assert_eq(c.nodes[f].reads[0].read_id, 11);
    cr_assert_eq(c.nodes[f].reads[0].index, 2);
    cr_assert(c.nodes[f].reads[0].ok);
    cr_assert_eq(c.nodes[l].n_reads, 0, "the leader's driver sees nothing");
    h_free(&c);
}

Test(read_index, no_leader_means_not_ok)
{
    struct h_cluster c;
    h_init(&c, 3, 95, NULL);
    cr_assert_eq(h_read(&c, 1, 3), 0);
    cr_assert_eq(c.nodes[1].n_reads, 1);
    cr_assert_not(c.nodes[1].reads[0].ok);
    h_free(&c);
}

Test(read_index, isolated_leader_fails_its_reads_when_stepping_down)
{
    struct h_cluster c;
    h_init(&c, 3, 96, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    h_isolate(&c, l, true);
    h_read(&c, l, 8);
    h_run(&c, 100);
    cr_assert_eq(c.nodes[l].n_reads, 0);
    h_run(&c, 400);
    cr_assert_eq(c.nodes[l].n_reads, 1);
    cr_assert_not(c.nodes[l].reads[0].ok);
    h_free(&c);
}

Test(read_index, forwarded_read_fails_when_the_leader_is_silent)
{
    struct h_cluster c;
    h_init(&c, 3, 97, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l, 0);
    h_cut(&c, f, l, true);
    h_read(&c, f, 9);
    h_run(&c, 1000);
    cr_assert_eq(c.nodes[f].n_reads, 1);
    cr_assert_not(c.nodes[f].reads[0].ok);
    h_free(&c);
}

/* ---- Leader lease reads (raft.h, lease_read) ---- */

static void lease_on(struct raft_config *cfg)
{
    cfg->lease_read = true;
}

static raft_id lease_cluster(struct h_cluster *c, uint64_t seed)
{
    h_init(c, 3, seed, lease_on);
    raft_id l = h_elect(c, 2000);
    cr_assert_neq(l, 0);
    h_propose(c, l, "x");
    h_run(c, 100); /* heartbeats acknowledged */
    return l;
}

Test(read_index, lease_answers_at_once_without_a_round)
{
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 94);
    h_drop_all(&c);
    cr_assert_eq(h_read(&c, l, 8), 0);
    cr_assert_eq(c.nodes[l].n_reads, 1, "answered in the same step");
    cr_assert(c.nodes[l].reads[0].ok);
    cr_assert_eq(c.nodes[l].reads[0].index, h_status(&c, l).commit_index);
    cr_assert_eq(h_queued(&c, 0), 0, "no heartbeat round");
    h_free(&c);
}

Test(read_index, lease_ends_before_the_followers_would_vote)
{
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 95);
    h_isolate(&c, l, true);
    /* The last round the followers acknowledged started at most one heartbeat ago; after
     * 9/10 of election_timeout_min more, reads need a round again (which cannot complete). */
    raft_time min = c.nodes[l].cfg.election_timeout_min;
    h_run(&c, min * 9 / 10 + 1);
    cr_assert_eq(h_leader(&c), l, "check-quorum has not stepped it down yet");
    cr_assert_eq(h_read(&c, l, 9), 0);
    h_deliver(&c);
    cr_assert_eq(c.nodes[l].n_reads, 0, "no read answered from an expired lease");
    h_free(&c);
}

Test(read_index, isolated_leader_never_reads_past_a_new_leader)
{
    /* Reads every millisecond at an isolated leader until it steps down: none may be answered
     * at or after the moment another leader exists. */
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 96);
    h_isolate(&c, l, true);
    uint64_t id = 100;
    raft_time new_leader_at = 0;
    while (h_status(&c, l).role == RAFT_LEADER) {
        uint32_t before = c.nodes[l].n_reads;
        h_read(&c, l, id++);
        if (c.nodes[l].n_reads > before && c.nodes[l].reads[before].ok)
            cr_assert_eq(new_leader_at, 0, "a lease read at %llu after a new leader at %llu",
                         (unsigned long long)c.now, (unsigned long long)new_leader_at);
        h_run(&c, 1);
        for (raft_id k = 1; k <= 3; k++)
            if (k != l && new_leader_at == 0 && h_status(&c, k).role == RAFT_LEADER)
                new_leader_at = c.now;
    }
    h_free(&c);
}

Test(read_index, no_lease_once_a_transfer_began)
{
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 97);
    raft_id t = follower(l, 0);
    h_cut(&c, l, t, true); /* the transfer cannot complete */
    cr_assert_eq(h_transfer(&c, l, t), 0);
    h_drop_all(&c);
    cr_assert_eq(h_read(&c, l, 10), 0);
    cr_assert_eq(c.nodes[l].n_reads, 0, "the target may campaign past the lease");
    cr_assert_gt(h_queued(&c, RAFT_MSG_APPEND), 0, "a heartbeat round instead");
    /* Abandoned after election_timeout_max, the transfer still ends the lease for the term: the
     * target may have campaigned meanwhile. */
    h_run(&c, c.nodes[l].cfg.election_timeout_max + 1);
    cr_assert_eq(h_leader(&c), l);
    cr_assert_eq(h_status(&c, l).term, h_status(&c, follower(l, 1)).term);
    uint32_t before = c.nodes[l].n_reads;
    h_drop_all(&c);
    cr_assert_eq(h_read(&c, l, 11), 0);
    cr_assert_eq(c.nodes[l].n_reads, before, "no lease for the rest of the term");
    h_free(&c);
}

/* raft_lease_until: what a driver answering reads outside the core relies on. */
Test(read_index, lease_until_is_the_lease_the_core_reads_with)
{
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 99);
    raft_id f = follower(l, 0), t = follower(l, 1);
    raft_time min = c.nodes[l].cfg.election_timeout_min;
    raft_time until = raft_lease_until(c.nodes[l].r);

    cr_assert_gt(until, c.now, "a leader with acknowledged heartbeats holds a lease");
    cr_assert_leq(until, c.now + min * 9 / 10, "never longer than 9/10 of the vote refusal");
    cr_assert_eq(raft_lease_until(c.nodes[f].r), 0, "a follower has none");
    /* Isolated: the lease runs out where the core stops answering reads at once. */
    h_isolate(&c, l, true);
    h_run(&c, until - c.now - 1);
    cr_assert_eq(raft_lease_until(c.nodes[l].r), until, "no acknowledgement extended it");
    uint32_t before = c.nodes[l].n_reads;
    cr_assert_eq(h_read(&c, l, 12), 0);
    cr_assert_eq(c.nodes[l].n_reads, before + 1, "still inside the lease: answered at once");
    h_run(&c, 1);
    before = c.nodes[l].n_reads;
    cr_assert_eq(h_read(&c, l, 13), 0);
    h_deliver(&c);
    cr_assert_eq(c.nodes[l].n_reads, before, "at until: no longer");
    h_free(&c);

    /* A transfer ends it at once, in the step that sends TIMEOUT_NOW's way. */
    l = lease_cluster(&c, 100);
    t = follower(l, 1);
    cr_assert_gt(raft_lease_until(c.nodes[l].r), c.now);
    cr_assert_eq(h_transfer(&c, l, t), 0);
    cr_assert_eq(raft_lease_until(c.nodes[l].r), 0);
    h_free(&c);

    /* Without lease_read there is never one. */
    h_init(&c, 3, 101, NULL);
    l = h_elect(&c, 2000);
    h_propose(&c, l, "x");
    h_run(&c, 100);
    cr_assert_eq(raft_lease_until(c.nodes[l].r), 0);
    h_free(&c);
}

Test(read_index, restarted_node_votes_for_nobody_at_first)
{
    /* A follower that acknowledged the leader and restarted at once must still refuse to vote
     * within election_timeout_min, as if it remembered the leader. */
    struct h_cluster c;
    raft_id l = lease_cluster(&c, 98);
    raft_id a = follower(l, 0), b = follower(l, 1);
    h_isolate(&c, l, true);
    h_crash(&c, a);
    h_restart(&c, a);
    struct raft_status sb = h_status(&c, b);
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_VOTE;
    m.from = b;
    m.to = a;
    m.term = sb.term + 1;
    m.u.vote.last_log_index = sb.last_index;
    m.u.vote.last_log_term = sb.term;
    h_receive(&c, a, &m);
    cr_assert_eq(h_status(&c, a).term, sb.term, "the vote request moved the restarted node");
    h_free(&c);
}
