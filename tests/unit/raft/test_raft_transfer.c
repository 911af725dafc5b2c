/* Leadership transfer (thesis §3.10): proposals refused meanwhile, the target brought up to date
 * before TIMEOUT_NOW, the target campaigns at once (past the leader lease), abort after an
 * election timeout. */
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

Test(transfer, target_takes_over_quickly)
{
    struct h_cluster c;
    h_init(&c, 3, 71, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_term t = h_status(&c, l).term;
    raft_id target = follower(l, 1);
    raft_time start = c.now;
    cr_assert_eq(h_transfer(&c, l, target), 0);
    cr_assert_eq(h_queued(&c, RAFT_MSG_TIMEOUT_NOW), 1, "target is up to date: at once");
    cr_assert_eq(h_propose(&c, l, "x"), RAFT_E_TRANSFERRING);
    h_deliver(&c);
    cr_assert_eq(h_leader(&c), target);
    cr_assert_eq(h_status(&c, target).term, t + 1);
    cr_assert_eq(c.now, start, "no election timeout waited");
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, l).leader, target);
    cr_assert_eq(h_propose(&c, target, "y"), 0);
    h_run(&c, 100);
    cr_assert_eq(c.nodes[l].applied, h_status(&c, target).last_index);
    h_free(&c);
}

Test(transfer, lagging_target_is_caught_up_first)
{
    struct h_cluster c;
    h_init(&c, 3, 72, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id target = follower(l, 0);
    h_isolate(&c, target, true);
    for (int i = 0; i < 30; i++) {
        h_propose(&c, l, "x");
    }
    h_deliver(&c);
    h_isolate(&c, target, false);
    cr_assert_eq(h_transfer(&c, l, target), 0);
    cr_assert_eq(h_queued(&c, RAFT_MSG_TIMEOUT_NOW), 0, "not before it has everything");
    h_run(&c, 200);
    cr_assert_eq(h_leader(&c), target);
    cr_assert_geq(h_status(&c, target).last_index, 32);
    h_check_applied(&c);
    h_free(&c);
}

Test(transfer, aborts_after_an_election_timeout)
{
    struct h_cluster c;
    h_init(&c, 5, 73, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id target = follower(l, 0);
    h_isolate(&c, target, true);
    cr_assert_eq(h_transfer(&c, l, target), 0);
    cr_assert_eq(h_propose(&c, l, "x"), RAFT_E_TRANSFERRING);
    h_run(&c, 150);
    cr_assert_eq(h_propose(&c, l, "x"), RAFT_E_TRANSFERRING);
    h_run(&c, 200);
    cr_assert_eq(h_leader(&c), l);
    cr_assert_eq(h_propose(&c, l, "x"), 0, "transfer abandoned");
    h_free(&c);
}

Test(transfer, refused_when_not_leader_busy_or_bad_target)
{
    struct h_cluster c;
    bool voter[] = {true, true, true, false};
    h_init_conf(&c, 4, voter, 74, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 50);
    raft_id f = l == 1 ? 2 : 1;
    cr_assert_eq(h_transfer(&c, f, l), RAFT_E_NOT_LEADER);
    cr_assert_eq(h_transfer(&c, l, l), RAFT_E_INVAL);
    cr_assert_eq(h_transfer(&c, l, 9), RAFT_E_INVAL);
    h_isolate(&c, f, true);
    cr_assert_eq(h_transfer(&c, l, f), 0);
    cr_assert_eq(h_transfer(&c, l, f), RAFT_E_BUSY);
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_REMOVE, 4), RAFT_E_BUSY);
    h_free(&c);
}

Test(transfer, target_zero_picks_the_most_up_to_date_voter)
{
    struct h_cluster c;
    h_init(&c, 3, 75, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id lag = follower(l, 0), best = follower(l, 1);
    h_isolate(&c, lag, true);
    h_propose(&c, l, "x");
    h_deliver(&c);
    cr_assert_eq(h_transfer(&c, l, 0), 0);
    h_deliver(&c);
    cr_assert_eq(h_leader(&c), best);
    h_free(&c);
}
