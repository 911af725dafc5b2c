/* Membership changes (thesis §4.1, single-server): add as non-voter then automatic promotion,
 * one change at a time, a new leader's own-term commit first, configurations in effect on append
 * and reverted on truncation, removed nodes, a removed leader stepping down (§4.2.2), and nodes
 * joining a running cluster (booted as a non-voter, or outside their configuration). */
#include <criterion/criterion.h>
#include <stdio.h>
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

static int pos(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nodes[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

static bool is_voter(struct h_cluster *c, raft_id on, raft_id id)
{
    struct raft_status s = h_status(c, on);
    int p = pos(&s.conf, id);
    return p >= 0 && s.conf.nodes[p].voter;
}

static bool has(struct h_cluster *c, raft_id on, raft_id id)
{
    struct raft_status s = h_status(c, on);
    return pos(&s.conf, id) >= 0;
}

Test(membership, added_node_catches_up_and_is_promoted)
{
    struct h_cluster c;
    h_init_join(&c, 4, 3, 81, NULL);
    raft_id l = 0;
    for (int i = 0; i < 3000 && (l == 0 || l == 4); i++) {
        h_run(&c, 1);
        l = h_leader(&c);
    }
    cr_assert(l >= 1 && l <= 3);
    for (int i = 0; i < 20; i++) {
        h_propose(&c, l, "x");
    }
    h_run(&c, 100);
    cr_assert(h_status(&c, 4).removed, "not a member yet");
    cr_assert_eq(h_propose(&c, 4, "x"), RAFT_E_SHUTDOWN);
    h_isolate(&c, 4, true);
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_ADD, 4), 0);
    cr_assert(has(&c, l, 4), "in effect as soon as appended");
    cr_assert_not(is_voter(&c, l, 4));
    struct raft_status s = h_status(&c, l);
    cr_assert_eq(s.n_peers, 3);
    cr_assert_str_eq(s.conf.nodes[pos(&s.conf, 4)].addr, "node-4");
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_REMOVE, follower(l, 0)), RAFT_E_BUSY,
                 "one change at a time");
    h_run(&c, 100);
    cr_assert_not(is_voter(&c, l, 4), "not promoted while it has nothing");
    h_isolate(&c, 4, false);
    h_run(&c, 500);
    for (raft_id i = 1; i <= 4; i++) {
        cr_assert(is_voter(&c, i, 4), "node %lu sees 4 as voter", (unsigned long)i);
    }
    cr_assert_eq(c.nodes[4].applied, h_status(&c, l).commit_index);
    cr_assert_not(h_status(&c, 4).removed);
    /* Four voters now: two nodes down block commits. */
    h_crash(&c, follower(l, 0));
    h_crash(&c, follower(l, 1));
    raft_index before = h_status(&c, l).commit_index;
    h_propose(&c, l, "y");
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, l).commit_index, before);
    h_free(&c);
}

static bool drop_entries_from(void *arg, struct raft_msg *m)
{
    raft_id *from = arg;
    return !(m->type == RAFT_MSG_APPEND && m->from == *from && m->u.append.n_entries > 0);
}

Test(membership, new_leader_must_commit_its_own_entry_first)
{
    struct h_cluster c;
    h_init(&c, 3, 82, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    /* A new leader (by transfer) whose NOOP reaches nobody. */
    raft_id t = follower(l, 0);
    c.filter = drop_entries_from;
    c.filter_arg = &t;
    h_transfer(&c, l, t);
    h_deliver(&c);
    cr_assert_eq(h_leader(&c), t);
    cr_assert_eq(h_conf_change(&c, t, RAFT_CONF_REMOVE, l), RAFT_E_BUSY);
    c.filter = NULL;
    h_run(&c, 100);
    cr_assert_eq(h_conf_change(&c, t, RAFT_CONF_REMOVE, l), 0);
    h_free(&c);
}

Test(membership, invalid_changes_are_refused)
{
    struct h_cluster c;
    h_init(&c, 1, 83, NULL);
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_ADD, 3), RAFT_E_NOT_LEADER);
    cr_assert_eq(h_elect(&c, 2000), 1);
    h_run(&c, 20);
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_ADD, 1), RAFT_E_INVAL, "already a member");
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_ADD, 0), RAFT_E_INVAL);
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_PROMOTE, 1), RAFT_E_INVAL, "already a voter");
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_PROMOTE, 4), RAFT_E_INVAL);
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_REMOVE, 5), RAFT_E_INVAL);
    cr_assert_eq(h_conf_change(&c, 1, RAFT_CONF_REMOVE, 1), RAFT_E_INVAL, "the last voter");
    cr_assert_eq(h_conf_change(&c, 1, 9, 2), RAFT_E_INVAL);
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    char addr[RAFT_ADDR_MAX + 1];
    memset(addr, 'a', sizeof addr - 1);
    addr[RAFT_ADDR_MAX] = 0;
    ev.u.conf_change.op = RAFT_CONF_ADD;
    ev.u.conf_change.id = 3;
    ev.u.conf_change.addr = addr;
    cr_assert_eq(h_step(&c, 1, &ev), RAFT_E_INVAL, "address too long");
    cr_assert_eq(h_status(&c, 1).last_index, 1, "nothing appended");
    h_free(&c);
}

Test(membership, explicit_promote_and_remove_of_a_follower)
{
    struct h_cluster c;
    bool voter[] = {true, true, true, false};
    h_init_conf(&c, 4, voter, 84, NULL);
    raft_id l = 0;
    for (int i = 0; i < 3000 && (l == 0 || l == 4); i++) {
        h_run(&c, 1);
        l = h_leader(&c);
    }
    h_run(&c, 300); /* caught up: promoted automatically */
    cr_assert(is_voter(&c, l, 4));
    raft_id r = follower(l, 0);
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_REMOVE, r), 0);
    h_run(&c, 300);
    cr_assert_not(has(&c, l, r));
    cr_assert(h_status(&c, r).removed);
    cr_assert_eq(h_propose(&c, r, "x"), RAFT_E_SHUTDOWN);
    raft_term t = h_status(&c, r).term;
    h_isolate(&c, r, true);
    h_run(&c, 3000);
    cr_assert_eq(h_status(&c, r).term, t, "a removed node does not campaign");
    cr_assert_eq(h_status(&c, r).role, RAFT_FOLLOWER);
    h_free(&c);
}

Test(membership, removed_leader_steps_down_after_commit)
{
    struct h_cluster c;
    h_init(&c, 3, 85, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l, 0);
    h_hold(&c, f, true);
    h_hold(&c, follower(l, 1), true);
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_REMOVE, l), 0);
    h_deliver(&c);
    struct raft_status s = h_status(&c, l);
    cr_assert_eq(s.role, RAFT_LEADER, "still leading until the removal commits");
    cr_assert(s.removed);
    cr_assert_eq(s.n_peers, 2);
    h_hold(&c, f, false);
    h_flush(&c, f);
    h_deliver(&c);
    cr_assert_eq(h_status(&c, l).role, RAFT_LEADER, "the new configuration needs both");
    h_hold(&c, follower(l, 1), false);
    h_flush(&c, follower(l, 1));
    h_deliver(&c);
    s = h_status(&c, l);
    cr_assert_eq(s.role, RAFT_FOLLOWER);
    cr_assert_eq(s.commit_index, s.last_index);
    h_run(&c, 1000);
    raft_id l2 = h_leader(&c);
    cr_assert_neq(l2, 0);
    cr_assert_neq(l2, l);
    cr_assert_eq(h_status(&c, l2).n_peers, 1);
    h_run(&c, 2000);
    cr_assert_eq(h_status(&c, l).role, RAFT_FOLLOWER, "and never campaigns again");
    h_free(&c);
}

Test(membership, configuration_reverts_when_its_entry_is_truncated)
{
    struct h_cluster c;
    h_init(&c, 5, 86, NULL);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    h_isolate(&c, l, true);
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_REMOVE, follower(l, 0)), 0);
    cr_assert_not(has(&c, l, follower(l, 0)));
    h_run(&c, 1500);
    raft_id l2 = h_leader(&c);
    cr_assert_neq(l2, l);
    h_propose(&c, l2, "x");
    h_isolate(&c, l, false);
    h_run(&c, 500);
    cr_assert(has(&c, l, follower(l, 0)), "the uncommitted change was truncated away");
    cr_assert_eq(h_status(&c, l).conf.n, 5);
    h_check_applied(&c);
    h_free(&c);
}

/* ---- Nodes that join a running cluster ----
 * Node 4 boots on its own (empty disk) with some configuration while 1..3 run; the leader
 * compacts its log, so node 4 first gets a snapshot, then appends. The filter cuts any
 * configuration that makes node 4 a voter out of the appends it receives while hold_promotion
 * is set, and counts the vote requests node 4 sends. */
struct join_watch {
    bool hold_promotion;
    uint32_t votes_from_joiner;
};

static bool watch_joiner(void *arg, struct raft_msg *m)
{
    struct join_watch *w = arg;
    if (m->from == 4 && m->type == RAFT_MSG_VOTE) {
        w->votes_from_joiner++;
    }
    if (w->hold_promotion && m->to == 4 && m->type == RAFT_MSG_APPEND) {
        for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
            const struct raft_entry *e = &m->u.append.entries[i];
            struct raft_conf conf;
            if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &conf) == 0 &&
                pos(&conf, 4) >= 0 && conf.nodes[pos(&conf, 4)].voter) {
                m->u.append.n_entries = i; /* what came before still arrives */
                break;
            }
        }
    }
    return true;
}

static void compact_often(struct raft_config *c)
{
    c->snapshot_threshold = 50;
    c->snapshot_trailing = 10;
}

/* Node 4 must stay a follower of term 0 without campaigning; runs ms milliseconds. */
static void joiner_stays_quiet(struct h_cluster *c, raft_time ms)
{
    raft_term t = h_status(c, 4).term;
    for (raft_time i = 0; i < ms; i++) {
        h_run(c, 1);
        struct raft_status s = h_status(c, 4);
        cr_assert_eq(s.role, RAFT_FOLLOWER, "the joining node campaigns");
        cr_assert_eq(s.term, t, "the joining node changed its own term");
    }
}

static void join_running_cluster(const struct raft_conf *boot, uint64_t seed, bool removed)
{
    struct h_cluster c;
    h_init_join(&c, 4, 3, seed, compact_often);
    h_boot_fresh(&c, 4, boot);
    for (raft_id i = 1; i <= 3; i++) {
        c.nodes[i].auto_snapshot = true;
    }
    struct join_watch w = {.hold_promotion = true};
    c.filter = watch_joiner;
    c.filter_arg = &w;
    struct raft_status s = h_status(&c, 4);
    cr_assert_eq(s.removed, removed);
    cr_assert_eq(s.conf.n, boot->n, "boots with the configuration it was given");

    /* Not yet added: the cluster runs without it, and it waits, whatever its timeouts say. */
    raft_id l = h_elect(&c, 3000);
    cr_assert(l >= 1 && l <= 3);
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(h_propose(&c, l, "x"), 0);
        h_deliver(&c);
    }
    joiner_stays_quiet(&c, 2000);
    cr_assert_eq(h_status(&c, 4).term, 0);
    cr_assert_eq(c.nodes[4].applied, 0);
    cr_assert_eq(h_propose(&c, 4, "x"), removed ? RAFT_E_SHUTDOWN : RAFT_E_NOT_LEADER);
    cr_assert_eq(h_conf_change(&c, 4, RAFT_CONF_ADD, 5),
                 removed ? RAFT_E_SHUTDOWN : RAFT_E_NOT_LEADER);
    cr_assert_gt(h_status(&c, l).snapshot_index, 100, "the leader compacted its log");

    /* Added: it gets a snapshot, then appends, up to the promotion the filter holds back. */
    cr_assert_eq(h_conf_change(&c, l, RAFT_CONF_ADD, 4), 0);
    h_run(&c, 1000);
    cr_assert_eq(c.nodes[4].installs, 1);
    s = h_status(&c, l);
    cr_assert(is_voter(&c, l, 4), "the leader promoted it once caught up");
    cr_assert_eq(s.commit_index, s.last_index, "and committed the promotion without it");
    cr_assert_eq(c.nodes[4].applied, s.commit_index - 1, "everything before the promotion");
    s = h_status(&c, 4);
    cr_assert_not(s.removed);
    cr_assert(has(&c, 4, 4));
    cr_assert_not(is_voter(&c, 4, 4), "a voter only once its log says so");
    cr_assert_eq(s.term, h_status(&c, l).term);
    cr_assert_eq(s.leader, l);
    /* Cut off from the leader, it still waits: it is not a voter yet. */
    h_isolate(&c, 4, true);
    joiner_stays_quiet(&c, 1000);
    cr_assert_eq(w.votes_from_joiner, 0);

    /* The promotion reaches it: a voter now, on every node, and it counts. */
    h_isolate(&c, 4, false);
    w.hold_promotion = false;
    h_run(&c, 500);
    for (raft_id i = 1; i <= 4; i++) {
        cr_assert(is_voter(&c, i, 4), "node %lu sees 4 as a voter", (unsigned long)i);
    }
    cr_assert_eq(c.nodes[4].applied, h_status(&c, l).commit_index);
    cr_assert_eq(c.nodes[4].sm_hash, c.nodes[l].sm_hash);
    h_crash(&c, follower(l, 0) == 4 ? follower(l, 1) : follower(l, 0));
    raft_index before = h_status(&c, l).commit_index;
    cr_assert_eq(h_propose(&c, l, "y"), 0);
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, l).commit_index, before + 1, "3 of 4 voters, node 4 among them");
    cr_assert_eq(c.nodes[4].applied, before + 1);
    h_check_applied(&c);
    h_free(&c);
}

Test(membership, joining_node_boots_as_non_voter_and_waits_for_the_leader)
{
    /* What master/master.c's bootstrap_conf gives a master started with --join: the current
     * members as voters, itself as a non-voter without an address. */
    struct raft_conf boot;
    memset(&boot, 0, sizeof boot);
    boot.n = 4;
    boot.nodes[0].id = 4;
    boot.nodes[0].voter = false;
    for (uint32_t i = 1; i < 4; i++) {
        boot.nodes[i].id = i;
        boot.nodes[i].voter = true;
        snprintf(boot.nodes[i].addr, RAFT_ADDR_MAX, "node-%u", i);
    }
    join_running_cluster(&boot, 87, false);
}

Test(membership, node_booted_outside_its_configuration_only_follows)
{
    struct raft_conf empty;
    memset(&empty, 0, sizeof empty);
    join_running_cluster(&empty, 88, false);

    struct raft_conf others;
    memset(&others, 0, sizeof others);
    others.n = 3;
    for (uint32_t i = 0; i < 3; i++) {
        others.nodes[i].id = i + 1;
        others.nodes[i].voter = true;
        snprintf(others.nodes[i].addr, RAFT_ADDR_MAX, "node-%u", i + 1);
    }
    join_running_cluster(&others, 89, true);
}
