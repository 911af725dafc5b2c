/* Raft scenarios on the simulated cluster (sim.h), each a story with the outcome it must have.
 * Every safety check runs after every step; a failing scenario prints the last 400 events of its
 * trace (role changes, faults, client results) and the nodes' states; RAFT_TRACE=1 prints the
 * trace live, RAFT_TRACE=2 adds every message. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <string.h>

#include "tests/raft/sim.h"
#include "tests/raft/sim_fuzz.h"

/* Fails the test, printing the simulation's trace first. */
#define EXPECT(s, cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            sim_dump((s), stderr, 400);                                                            \
            cr_assert_fail(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)

/* The scenario's simulation, freed by the suite's fini when an assertion ends a test early. */
static struct sim *current;

static void cleanup(void)
{
    sim_free(current);
    current = NULL;
}

TestSuite(raft_scenario, .fini = cleanup);

static struct sim *mk_opts(const struct sim_opts *o)
{
    sim_free(current);
    current = sim_new(o);
    cr_assert_not_null(current);
    return current;
}

static struct sim *mk(uint64_t seed, int n)
{
    struct sim_opts o;
    sim_opts_default(&o, seed, n);
    return mk_opts(&o);
}

static bool has_leader(struct sim *s, void *arg)
{
    (void)arg;
    return sim_leader(s) != 0;
}

static raft_id wait_leader(struct sim *s, raft_time within)
{
    sim_run_until_pred(s, has_leader, NULL, s->now + within);
    raft_id l = sim_leader(s);
    EXPECT(s, !s->failed, "check failed: %s", s->failure);
    EXPECT(s, l != 0, "no leader within %" PRIu64 " ms", within);
    return l;
}

static struct sim_node *node(struct sim *s, raft_id id)
{
    return sim_node(s, id);
}

/* A running node other than `not` and `not2`. */
static raft_id follower(struct sim *s, raft_id not, raft_id not2)
{
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        if (id != not &&id != not2 && sim_is_up(s, id))
            return id;
    }
    return 0;
}

/* Stops the clients, waits for the cluster to settle, checks convergence and linearizability. */
static void finish(struct sim *s)
{
    sim_clients_stop(s, true);
    bool settled = sim_run_until_pred(s, sim_settled, NULL, s->now + 20000);
    EXPECT(s, !s->failed, "check failed: %s", s->failure);
    EXPECT(s, settled, "the cluster did not settle");
    EXPECT(s, sim_check_converged(s), "%s", s->failure);
    EXPECT(s, sim_check_linearizable(s), "%s", s->failure);
    if (s->o.trace > 0)
        sim_dump(s, stderr, 1);
    cleanup();
}

/* One stable leader that every running node (but except) follows, all in its term. */
static void expect_leader_but(struct sim *s, raft_id l, raft_id except)
{
    EXPECT(s, sim_count_leaders(s) == 1, "%d leaders", sim_count_leaders(s));
    EXPECT(s, sim_leader(s) == l, "leader n%" PRIu64 ", expected n%" PRIu64, sim_leader(s), l);
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        if (!sim_is_up(s, id) || id == except)
            continue;
        EXPECT(s, node(s, id)->st.term == node(s, l)->st.term && node(s, id)->st.leader == l,
               "n%" PRIu64 " is in term %" PRIu64 " following n%" PRIu64 ", the leader n%" PRIu64
               " is in term %" PRIu64,
               id, node(s, id)->st.term, node(s, id)->st.leader, l, node(s, l)->st.term);
    }
}

static void expect_stable_leader(struct sim *s, raft_id l)
{
    expect_leader_but(s, l, 0);
}

static void elect_one_leader(int n_nodes)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct sim *s = mk(seed, n_nodes);
        raft_id l = wait_leader(s, 2000);
        raft_term t = node(s, l)->st.term;
        EXPECT(s, sim_run_for(s, 2000), "%s", s->failure);
        expect_stable_leader(s, l);
        EXPECT(s, node(s, l)->st.term == t, "the term moved from %" PRIu64, t);
        /* The new leader's no-op (paper §8) is committed everywhere. */
        for (raft_id id = 1; id <= (raft_id)n_nodes; id++)
            EXPECT(s, node(s, id)->applied >= 1, "n%" PRIu64 " applied nothing", id);
        /* An idle cluster exchanges heartbeats, not a storm of messages. */
        EXPECT(s, sim_check_idle_traffic(s), "%s", s->failure);
        finish(s);
    }
}

Test(raft_scenario, three_nodes_elect_one_leader)
{
    elect_one_leader(3);
}

Test(raft_scenario, five_nodes_elect_one_leader)
{
    elect_one_leader(5);
}

static bool other_leader(struct sim *s, void *arg)
{
    raft_id old = *(raft_id *)arg;
    raft_id l = sim_leader(s);
    return l != 0 && l != old;
}

Test(raft_scenario, leader_crash_new_leader_no_acked_write_lost)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, seed % 2 ? 3 : 5);
        raft_id l = wait_leader(s, 2000);
        sim_clients_start(s, 3, false);
        EXPECT(s, sim_run_for(s, 1500), "%s", s->failure);
        uint64_t acked = s->n_acked_writes;
        raft_term t = node(s, l)->st.term;
        EXPECT(s, acked >= 10, "only %" PRIu64 " writes acknowledged", acked);

        sim_crash(s, l);
        raft_time t0 = s->now;
        sim_run_until_pred(s, other_leader, &l, s->now + 3000);
        raft_id l2 = sim_leader(s);
        EXPECT(s, l2 != 0 && l2 != l, "no new leader 3 s after the leader crashed");
        EXPECT(s, node(s, l2)->st.term > t, "new leader in term %" PRIu64 " after %" PRIu64,
               node(s, l2)->st.term, t);
        cr_log_info("seed %" PRIu64 ": n%" PRIu64 " leads %" PRIu64 " ms after n%" PRIu64
                    " crashed",
                    seed, l2, s->now - t0, l);

        EXPECT(s, sim_run_for(s, 1000), "%s", s->failure);
        EXPECT(s, s->n_acked_writes > acked, "no write acknowledged after the failover");
        sim_restart(s, l);
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        /* finish(): acknowledged writes are all still committed, and linearizable. */
        finish(s);
    }
}

Test(raft_scenario, partitioned_node_rejoins_prevote_fails_leader_keeps_term)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, 3);
        raft_id l = wait_leader(s, 2000);
        raft_term t = node(s, l)->st.term;
        raft_id f = follower(s, l, 0);
        sim_clients_start(s, 2, false);
        sim_isolate(s, f);
        /* Many election timeouts: the isolated node's pre-votes fail, so its term stays. */
        EXPECT(s, sim_run_for(s, 3000), "%s", s->failure);
        EXPECT(s, node(s, f)->st.term == t,
               "the isolated n%" PRIu64 " moved to term %" PRIu64 " (pre-vote should keep %" PRIu64
               ")",
               f, node(s, f)->st.term, t);
        EXPECT(s, node(s, f)->st.role == RAFT_FOLLOWER || node(s, f)->st.role == RAFT_PRE_CANDIDATE,
               "the isolated node is %s", raft_role_name(node(s, f)->st.role));
        expect_leader_but(s, l, f);

        sim_heal(s);
        EXPECT(s, sim_run_for(s, 1000), "%s", s->failure);
        expect_stable_leader(s, l);
        EXPECT(s, node(s, l)->st.term == t, "the leader's term moved from %" PRIu64 " to %" PRIu64,
               t, node(s, l)->st.term);
        finish(s);
    }
}

static bool not_leader(struct sim *s, void *arg)
{
    raft_id id = *(raft_id *)arg;
    return !sim_is_up(s, id) || node(s, id)->st.role != RAFT_LEADER;
}

Test(raft_scenario, leader_isolated_steps_down_within_one_election_timeout)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, seed % 2 ? 3 : 5);
        raft_id l = wait_leader(s, 2000);
        sim_clients_start(s, 2, false);
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        raft_term t = node(s, l)->st.term;
        raft_time t0 = s->now;
        sim_isolate(s, l);
        sim_run_until_pred(s, not_leader, &l, t0 + 3 * s->o.raft.election_timeout_max);
        raft_time took = s->now - t0;
        EXPECT(s, node(s, l)->st.role != RAFT_LEADER, "the isolated leader never stepped down");
        /* Thesis §6.2: it steps down once an election timeout passes without a majority. */
        EXPECT(s, took <= s->o.raft.election_timeout_max,
               "the isolated leader stepped down after %" PRIu64 " ms (election timeout %u)", took,
               s->o.raft.election_timeout_max);
        /* The majority elected someone else meanwhile or soon. */
        sim_run_until_pred(s, other_leader, &l, s->now + 2000);
        raft_id l2 = sim_leader(s);
        EXPECT(s, l2 != 0 && l2 != l && node(s, l2)->st.term > t, "no new leader");
        sim_heal(s);
        EXPECT(s, sim_run_for(s, 1000), "%s", s->failure);
        expect_stable_leader(s, l2);
        finish(s);
    }
}

static bool caught_up(struct sim *s, void *arg)
{
    raft_id f = *(raft_id *)arg;
    raft_id l = sim_leader(s);
    return l != 0 && node(s, f)->applied == node(s, l)->applied &&
           node(s, l)->applied == node(s, l)->st.last_index;
}

/* Proposes n puts (client 7) on the leader, letting the cluster run between batches. */
static void propose_many(struct sim *s, raft_id l, uint32_t first, uint32_t n)
{
    uint8_t buf[64];
    for (uint32_t i = first; i < first + n;) {
        for (int k = 0; k < 200 && i < first + n; k++, i++) {
            char v[24];
            int len = snprintf(v, sizeof(v), "v%u;", i);
            struct kv_cmd c = {.op = KV_PUT,
                               .client = 7,
                               .key = (uint8_t)(i % 8),
                               .seq = i,
                               .value = v,
                               .len = (uint32_t)len};
            size_t bl = kv_cmd_encode(&c, buf, sizeof(buf));
            int rc = sim_propose(s, l, buf, (uint32_t)bl, NULL, NULL);
            EXPECT(s, rc == 0, "proposal %u refused: %d", i, rc);
        }
        EXPECT(s, sim_run_for(s, 5), "%s", s->failure);
    }
}

/* A follower is cut off (right after the election, or while it replicates) and misses 10,500
 * entries; the leader compacts its log (threshold 10,000, 1,000 trailing entries), so the
 * follower can only catch up with the snapshot (thesis §5.3), sent in several chunks. */
static void behind_by_snapshot(bool replicating)
{
    struct sim_opts o;
    sim_opts_default(&o, 11, 3);
    o.n_keys = 8;
    o.raft.snapshot_chunk_bytes = 100; /* several chunks */
    struct sim *s = mk_opts(&o);
    raft_id l = wait_leader(s, 2000);
    raft_id f = follower(s, l, 0);
    if (replicating)
        propose_many(s, l, 1, 100);
    sim_isolate(s, f);
    propose_many(s, l, 101, 10500);
    raft_id other = follower(s, l, f);
    sim_run_until_pred(s, caught_up, &other, s->now + 5000);
    EXPECT(s, node(s, l)->applied >= 10500, "the leader applied only %" PRIu64,
           node(s, l)->applied);
    EXPECT(s, node(s, l)->st.snapshot_index >= 10000,
           "the leader has no snapshot past 10000 (snapshot %" PRIu64 ")",
           node(s, l)->st.snapshot_index);
    EXPECT(s, node(s, f)->applied + 10000 <= node(s, l)->applied, "n%" PRIu64 " is not behind", f);

    uint64_t installs = s->n_snapshots_installed;
    sim_heal(s);
    sim_run_until_pred(s, caught_up, &f, s->now + 10000);
    EXPECT(s, caught_up(s, &f), "n%" PRIu64 " did not catch up: applied %" PRIu64 " of %" PRIu64, f,
           node(s, f)->applied, node(s, l)->applied);
    EXPECT(s, s->n_snapshots_installed > installs, "no snapshot was installed");
    EXPECT(s, node(s, f)->st.snapshot_index >= 10000, "n%" PRIu64 " has snapshot %" PRIu64, f,
           node(s, f)->st.snapshot_index);
    finish(s);
}

Test(raft_scenario, follower_10000_entries_behind_catches_up_by_snapshot)
{
    behind_by_snapshot(false);
}

Test(raft_scenario, replicating_follower_10000_entries_behind_catches_up_by_snapshot)
{
    behind_by_snapshot(true);
}

/* A replicating follower is cut off while appends are in flight (a small window, so it fills);
 * the entries after its last acknowledgement are compacted away; after healing it catches up
 * with the snapshot. */
Test(raft_scenario, follower_cut_off_with_a_full_window_catches_up_by_snapshot)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim_opts o;
        sim_opts_default(&o, seed, 3);
        o.raft.max_inflight_msgs = 4;
        o.raft.snapshot_threshold = 50;
        o.raft.snapshot_trailing = 0;
        struct sim *s = mk_opts(&o);
        raft_id l = wait_leader(s, 2000);
        raft_id f = follower(s, l, 0);
        propose_many(s, l, 1, 20);
        EXPECT(s, sim_run_for(s, 100), "%s", s->failure);
        sim_isolate(s, f);
        propose_many(s, l, 21, 300);
        raft_id other = follower(s, l, f);
        sim_run_until_pred(s, caught_up, &other, s->now + 2000);
        EXPECT(s, sim_run_for(s, 200), "%s", s->failure);
        EXPECT(s, node(s, l)->st.snapshot_index > node(s, f)->st.last_index,
               "the leader did not compact past the follower's log");
        sim_heal(s);
        sim_run_until_pred(s, caught_up, &f, s->now + 5000);
        EXPECT(s, caught_up(s, &f),
               "seed %" PRIu64 ": n%" PRIu64 " did not catch up: applied %" PRIu64 " of %" PRIu64,
               seed, f, node(s, f)->applied, node(s, l)->applied);
        finish(s);
    }
}

/* Snapshot chunks duplicated and reordered on the way: the transfer still completes. */
Test(raft_scenario, snapshot_transfer_survives_duplicated_and_reordered_chunks)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        struct sim_opts o;
        sim_opts_default(&o, seed, 3);
        o.raft.snapshot_threshold = 50;
        o.raft.snapshot_trailing = 0;
        o.raft.snapshot_chunk_bytes = 16;
        o.n_keys = 8;
        struct sim *s = mk_opts(&o);
        raft_id l = wait_leader(s, 2000);
        raft_id f = follower(s, l, 0);
        sim_isolate(s, f);
        propose_many(s, l, 1, 300);
        raft_id other = follower(s, l, f);
        sim_run_until_pred(s, caught_up, &other, s->now + 2000);
        EXPECT(s, sim_run_for(s, 200), "%s", s->failure);
        EXPECT(s, node(s, l)->st.snapshot_index > 1, "the leader took no snapshot");
        s->dup_pm = 300;
        s->delay_max = 40;
        sim_heal(s);
        sim_run_until_pred(s, caught_up, &f, s->now + 10000);
        EXPECT(s, caught_up(s, &f),
               "seed %" PRIu64 ": n%" PRIu64 " did not catch up: applied %" PRIu64 " of %" PRIu64,
               seed, f, node(s, f)->applied, node(s, l)->applied);
        EXPECT(s, s->n_snapshots_installed > 0, "no snapshot was installed");
        s->dup_pm = 0;
        s->delay_max = o.net_delay_max;
        finish(s);
    }
}

static bool is_leader(struct sim *s, void *arg)
{
    return sim_leader(s) == *(raft_id *)arg;
}

Test(raft_scenario, leadership_transfer_to_a_chosen_node)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        struct sim *s = mk(seed, seed % 2 ? 3 : 5);
        raft_id l = wait_leader(s, 2000);
        sim_clients_start(s, 3, false);
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        raft_term t = node(s, l)->st.term;
        raft_id target = 0;
        for (raft_id id = (raft_id)s->o.n_nodes; id >= 1 && target == 0; id--) {
            if (id != l)
                target = id;
        }
        raft_time t0 = s->now;
        int rc = sim_transfer(s, l, target);
        EXPECT(s, rc == 0, "transfer refused: %d", rc);
        sim_run_until_pred(s, is_leader, &target, t0 + s->o.raft.election_timeout_max);
        EXPECT(s, sim_leader(s) == target,
               "n%" PRIu64 " is not leader %u ms after the transfer (leader n%" PRIu64 ")", target,
               s->o.raft.election_timeout_max, sim_leader(s));
        EXPECT(s, node(s, target)->st.term == t + 1, "the new term is %" PRIu64 ", not %" PRIu64,
               node(s, target)->st.term, t + 1);
        cr_log_info("seed %" PRIu64 ": leadership moved n%" PRIu64 " -> n%" PRIu64 " in %" PRIu64
                    " ms",
                    seed, l, target, s->now - t0);
        uint64_t acked = s->n_acked_writes;
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        expect_stable_leader(s, target);
        EXPECT(s, s->n_acked_writes > acked, "no write acknowledged after the transfer");
        finish(s);
    }
}

struct member_want {
    raft_id id;
    int want; /* 0 absent, 1 non-voter, 2 voter */
};

static bool committed_member(struct sim *s, void *arg)
{
    const struct member_want *w = arg;
    bool voter = false;
    bool has = sim_conf_has(&s->conf, w->id, &voter);
    int got = !has ? 0 : voter ? 2 : 1;
    return got == w->want;
}

Test(raft_scenario, add_fifth_node_as_nonvoter_promote_then_remove_old_leader)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct sim *s = mk(seed, 4);
        raft_id l = wait_leader(s, 2000);
        sim_clients_start(s, 3, false);
        EXPECT(s, sim_run_for(s, 800), "%s", s->failure);

        int rc = sim_conf_change(s, l, RAFT_CONF_ADD, 5);
        EXPECT(s, rc == 0, "add refused: %d", rc);
        bool voter = true;
        EXPECT(s, sim_conf_has(&node(s, l)->st.conf, 5, &voter) && !voter,
               "n5 is not a non-voter in the leader's configuration");
        struct member_want w = {5, 1};
        sim_run_until_pred(s, committed_member, &w, s->now + 2000);
        EXPECT(s, committed_member(s, &w) || (w.want = 2, committed_member(s, &w)),
               "adding n5 did not commit");
        /* It catches up, then the leader promotes it (raft.h: RAFT_CONF_ADD). */
        w.want = 2;
        sim_run_until_pred(s, committed_member, &w, s->now + 5000);
        EXPECT(s, committed_member(s, &w), "n5 was not promoted to voter within 5 s");
        raft_id n5 = 5;
        sim_run_until_pred(s, caught_up, &n5, s->now + 1000);
        EXPECT(s, caught_up(s, &n5), "n5 applied only %" PRIu64, node(s, 5)->applied);

        raft_id old = sim_leader(s);
        rc = sim_conf_change(s, old, RAFT_CONF_REMOVE, old);
        EXPECT(s, rc == 0, "remove refused: %d", rc);
        struct member_want gone = {old, 0};
        sim_run_until_pred(s, committed_member, &gone, s->now + 3000);
        EXPECT(s, committed_member(s, &gone), "the removal of n%" PRIu64 " did not commit", old);
        sim_run_until_pred(s, other_leader, &old, s->now + 3000);
        raft_id l2 = sim_leader(s);
        EXPECT(s, l2 != 0 && l2 != old, "no leader after removing the old one");
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        EXPECT(s, node(s, old)->state == SIM_GONE, "the removed n%" PRIu64 " is still running",
               old);
        expect_stable_leader(s, l2);
        EXPECT(s, s->conf.n == 4, "the configuration has %u members", s->conf.n);
        finish(s);
    }
}

Test(raft_scenario, node_added_to_an_idle_cluster_catches_up)
{
    /* No client load: the new node must get the log from heartbeats and probes alone. */
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct sim *s = mk(seed, 3);
        raft_id l = wait_leader(s, 2000);
        propose_many(s, l, 1, 50);
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        int rc = sim_conf_change(s, l, RAFT_CONF_ADD, 4);
        EXPECT(s, rc == 0, "add refused: %d", rc);
        raft_id n4 = 4;
        sim_run_until_pred(s, caught_up, &n4, s->now + 3000);
        EXPECT(s, caught_up(s, &n4), "n4 applied %" PRIu64 " of %" PRIu64 " after 3 s",
               node(s, 4)->applied, node(s, l)->applied);
        struct member_want w = {4, 2};
        sim_run_until_pred(s, committed_member, &w, s->now + 3000);
        EXPECT(s, committed_member(s, &w), "n4 was not promoted");
        finish(s);
    }
}

static bool op_done(struct sim *s, void *arg)
{
    return s->hist[*(size_t *)arg].response != LIN_PENDING;
}

/* Drops appends from the leader to one follower, so it lags behind. */
static bool starve(struct sim *s, const struct raft_msg *m, void *arg)
{
    (void)s;
    raft_id f = *(raft_id *)arg;
    return m->type == RAFT_MSG_APPEND && m->to == f;
}

Test(raft_scenario, readindex_on_a_lagging_follower_waits_for_the_write)
{
    struct sim *s = mk(5, 3);
    raft_id l = wait_leader(s, 2000);
    raft_id f = follower(s, l, 0);
    EXPECT(s, sim_run_for(s, 200), "%s", s->failure);
    s->filter = starve;
    s->filter_arg = &f;
    size_t w = sim_client_op(s, 0, LIN_PUT, 1, l);
    sim_run_until_pred(s, op_done, &w, s->now + 1000);
    EXPECT(s, s->hist[w].response != LIN_PENDING, "the write was not acknowledged");
    raft_index applied_f = node(s, f)->applied;
    EXPECT(s, applied_f < s->hist[w].index, "the starved follower has the write already");

    size_t r = sim_client_op(s, 1, LIN_GET, 1, f);
    EXPECT(s, sim_run_for(s, 300), "%s", s->failure);
    EXPECT(s, s->hist[r].response == LIN_PENDING,
           "the follower answered a read while it lacked the write: \"%.*s\"", (int)s->hist[r].len,
           s->hist[r].value);
    s->filter = NULL;
    sim_run_until_pred(s, op_done, &r, s->now + 1000);
    EXPECT(s, s->hist[r].response != LIN_PENDING, "the read never completed");
    EXPECT(s,
           s->hist[r].len == s->hist[w].len &&
               memcmp(s->hist[r].value, s->hist[w].value, s->hist[w].len) == 0,
           "the follower read \"%.*s\", not the acknowledged \"%.*s\"", (int)s->hist[r].len,
           s->hist[r].value, (int)s->hist[w].len, s->hist[w].value);
    EXPECT(s, s->hist[r].node == f && s->hist[r].index >= s->hist[w].index,
           "read served by n%" PRIu64 " at index %" PRIu64, s->hist[r].node, s->hist[r].index);
    finish(s);
}

Test(raft_scenario, readindex_on_followers_is_linearizable)
{
    /* Reads go to any node while messages are dropped, reordered and partitioned. */
    for (uint64_t seed = 1; seed <= 30; seed++) {
        struct fuzz_plan p;
        fuzz_plan_for_seed(seed, &p);
        p.faults = FUZZ_DROP | FUZZ_REORDER | FUZZ_PARTITION | (seed % 2 ? FUZZ_CRASH : 0);
        p.follower_reads = true;
        struct fuzz_result r;
        fuzz_run(&p, &r, stderr);
        cr_assert(r.ok, "seed %" PRIu64 ": %s (replay the same run with RAFT_TRACE=1)", seed,
                  r.failure);
        cr_assert_gt(r.reads, 0);
    }
}

Test(raft_scenario, leader_that_hears_but_is_not_heard_is_replaced)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, 3);
        raft_id l = wait_leader(s, 2000);
        sim_clients_start(s, 3, false);
        EXPECT(s, sim_run_for(s, 300), "%s", s->failure);
        raft_term t = node(s, l)->st.term;
        for (raft_id o = 1; o <= 3; o++)
            sim_cut(s, l, o, o != l);
        sim_run_until_pred(s, other_leader, &l, s->now + 3000);
        raft_id l2 = sim_leader(s);
        EXPECT(s, l2 != 0 && l2 != l && node(s, l2)->st.term > t,
               "the unheard leader was not replaced");
        /* It hears the new leader and follows it. */
        EXPECT(s, sim_run_for(s, 1000), "%s", s->failure);
        EXPECT(s, node(s, l)->st.role == RAFT_FOLLOWER && node(s, l)->st.leader == l2,
               "the old leader is %s following n%" PRIu64, raft_role_name(node(s, l)->st.role),
               node(s, l)->st.leader);
        uint64_t acked = s->n_acked_writes;
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        EXPECT(s, s->n_acked_writes > acked, "no progress with the old leader unheard");
        sim_heal(s);
        finish(s);
    }
}

Test(raft_scenario, follower_that_hears_but_is_not_heard_does_not_disrupt)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, 3);
        raft_id l = wait_leader(s, 2000);
        raft_id f = follower(s, l, 0);
        raft_term t = node(s, l)->st.term;
        sim_clients_start(s, 3, false);
        for (raft_id o = 1; o <= 3; o++)
            sim_cut(s, f, o, o != f);
        EXPECT(s, sim_run_for(s, 3000), "%s", s->failure);
        expect_stable_leader(s, l);
        EXPECT(s, node(s, l)->st.term == t, "the term moved");
        sim_heal(s);
        finish(s);
    }
}

Test(raft_scenario, follower_that_does_not_hear_the_leader_does_not_disrupt)
{
    /* One-way: leader -> follower is cut. The follower's pre-votes are refused (the others
     * hear the leader: thesis §4.2.3 and §9.6), so the leader keeps its term. */
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct sim *s = mk(seed, seed % 2 ? 3 : 5);
        raft_id l = wait_leader(s, 2000);
        raft_id f = follower(s, l, 0);
        raft_term t = node(s, l)->st.term;
        sim_clients_start(s, 3, false);
        sim_cut(s, l, f, true);
        EXPECT(s, sim_run_for(s, 3000), "%s", s->failure);
        EXPECT(s, sim_leader(s) == l && node(s, l)->st.term == t,
               "leader n%" PRIu64 " term %" PRIu64 ", was n%" PRIu64 " term %" PRIu64,
               sim_leader(s), node(s, sim_leader(s))->st.term, l, t);
        EXPECT(s, node(s, f)->st.term == t, "the cut-off follower moved to term %" PRIu64,
               node(s, f)->st.term);
        sim_heal(s);
        EXPECT(s, sim_run_for(s, 500), "%s", s->failure);
        expect_stable_leader(s, l);
        finish(s);
    }
}

Test(raft_scenario, same_seed_same_run)
{
    for (uint64_t seed = 100; seed < 104; seed++) {
        struct fuzz_plan p;
        fuzz_plan_for_seed(seed, &p);
        p.faults = FUZZ_ALL;
        p.churn = seed % 2 == 0;
        struct fuzz_result a, b, c;
        fuzz_run(&p, &a, stderr);
        fuzz_run(&p, &b, stderr);
        cr_assert_eq(a.digest, b.digest, "seed %" PRIu64 " ran differently twice", seed);
        cr_assert_eq(a.steps, b.steps);
        cr_assert_eq(a.end, b.end);
        p.seed = seed + 1000;
        fuzz_run(&p, &c, stderr);
        cr_assert_neq(a.digest, c.digest);
    }
}

/* Leader churn does what the sweep relies on to find Figure 8 histories (paper §5.4.2) and votes
 * lost in a crash: new leaders are struck, some right on their first commit, and a correct core
 * stays safe and live through it. */
Test(raft_scenario, leader_churn_strikes_new_leaders)
{
    uint64_t struck = 0, on_commit = 0, elections = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct fuzz_plan p;
        fuzz_plan_for_seed(seed, &p);
        p.churn = true;
        struct fuzz_result r;
        fuzz_run(&p, &r, stderr);
        cr_assert(r.ok, "seed %" PRIu64 " with leader churn: %s", seed, r.failure);
        struck += r.struck;
        on_commit += r.struck_on_commit;
        elections += r.elections;
    }
    cr_log_info("%" PRIu64 " elections, %" PRIu64 " leaders struck, %" PRIu64
                " on their first commit",
                elections, struck, on_commit);
    cr_assert_geq(struck * 2, elections, "only %" PRIu64 " of %" PRIu64 " new leaders struck",
                  struck, elections);
    cr_assert_geq(on_commit * 8, struck,
                  "only %" PRIu64 " of %" PRIu64 " strikes on a first commit", on_commit, struck);
}

/* The checks are not vacuous: a disk that loses synced entries and votes on a crash breaks
 * Raft's safety, and the random runs notice it (and not as a mere liveness failure). */
Test(raft_scenario, checks_catch_a_disk_that_lies_about_fsync)
{
    int caught = 0, runs = 0;
    for (uint64_t seed = 1; seed <= 300 && caught < 3; seed++) {
        struct fuzz_plan p;
        fuzz_plan_for_seed(seed, &p);
        p.faults = FUZZ_CRASH | FUZZ_PARTITION | FUZZ_DROP;
        p.lying_disk = true;
        struct fuzz_result r;
        fuzz_run(&p, &r, NULL);
        runs++;
        if (!r.ok && strstr(r.failure, "liveness") == NULL) {
            caught++;
            cr_log_info("seed %" PRIu64 ": %s", seed, r.failure);
        }
    }
    cr_assert_geq(caught, 3, "only %d of %d runs with a lying disk failed a safety check", caught,
                  runs);
}
