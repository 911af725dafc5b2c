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
