/* Pipelining limits (thesis §10.2, etcd's progress): at most max_inflight_msgs appends and
 * about max_inflight_bytes of entries in flight per follower; probing sends one at a time. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static void msgs_cap(struct raft_config *c)
{
    c->max_inflight_msgs = 4;
    c->max_entries_per_msg = 1;
}

static void bytes_cap(struct raft_config *c)
{
    c->max_inflight_msgs = 1000;
    c->max_inflight_bytes = 100;
    c->max_entries_per_msg = 1;
}

static uint32_t appends_to(struct h_cluster *c, raft_id to)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->q_n; i++) {
        struct h_qitem *it = h_queue_at(c, i);
        n += !it->persisted && it->m.type == RAFT_MSG_APPEND && it->m.to == to &&
             it->m.u.append.n_entries > 0;
    }
    return n;
}

static raft_id follower(raft_id l)
{
    return l == 1 ? 2 : 1;
}

static void propose_n(struct h_cluster *c, raft_id l, int n, uint32_t len)
{
    static char data[64];
    memset(data, 'd', sizeof data);
    for (int i = 0; i < n; i++) {
        struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = len, .data = data};
        struct raft_event ev = {.type = RAFT_EV_PROPOSE};
        ev.u.propose.n = 1;
        ev.u.propose.entries = &e;
        cr_assert_eq(h_step(c, l, &ev), 0);
    }
}

Test(inflight, message_cap_limits_pipelined_appends)
{
    struct h_cluster c;
    h_init(&c, 3, 41, msgs_cap);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100); /* followers are in REPLICATE now */
    h_drop_all(&c);
    propose_n(&c, l, 20, 5);
    raft_id f = follower(l);
    cr_assert_eq(appends_to(&c, f), 4, "the window holds 4 appends");
    /* Delivering everything (acks free the window) replicates the rest. */
    h_run(&c, 100);
    cr_assert_eq(h_status(&c, f).last_index, 21);
    cr_assert_eq(c.nodes[f].applied, 21);
    h_free(&c);
}

Test(inflight, byte_cap_limits_pipelined_appends)
{
    struct h_cluster c;
    h_init(&c, 3, 42, bytes_cap);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    h_drop_all(&c);
    propose_n(&c, l, 20, 30);
    raft_id f = follower(l);
    /* 30, 60, 90 bytes are under 100; the fourth append reaches 120 and closes the window. */
    cr_assert_eq(appends_to(&c, f), 4);
    h_run(&c, 100);
    cr_assert_eq(c.nodes[f].applied, 21);
    h_free(&c);
}

Test(inflight, probe_sends_one_append_at_a_time)
{
    struct h_cluster c;
    h_init(&c, 3, 43, msgs_cap);
    raft_id l = h_elect(&c, 2000);
    raft_id f = follower(l);
    h_crash(&c, f);
    h_run(&c, 100);
    h_restart(&c, f);
    /* Make the leader probe f: a stale refusal puts it in PROBE. */
    h_run(&c, 100);
    h_isolate(&c, f, true);
    propose_n(&c, l, 10, 5);
    h_drop_all(&c);
    h_isolate(&c, f, false);
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND_RESP;
    m.from = f;
    m.to = l;
    m.term = h_status(&c, l).term;
    m.u.append_resp.conflict_index = 2;
    m.u.append_resp.last_index = 1;
    h_receive(&c, l, &m);
    cr_assert_eq(appends_to(&c, f), 1, "PROBE: one append");
    propose_n(&c, l, 3, 5);
    cr_assert_eq(appends_to(&c, f), 1, "still one until it answers");
    h_run(&c, 200);
    cr_assert_eq(c.nodes[f].applied, 14);
    h_free(&c);
}

static bool drop_appends_to(void *arg, struct raft_msg *m)
{
    raft_id *to = arg;
    return !(m->type == RAFT_MSG_APPEND && m->to == *to && m->u.append.n_entries > 0);
}

Test(inflight, lost_appends_are_recovered_at_heartbeat)
{
    struct h_cluster c;
    h_init(&c, 3, 44, msgs_cap);
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l);
    c.filter = drop_appends_to;
    c.filter_arg = &f;
    propose_n(&c, l, 10, 5);
    h_deliver(&c);
    cr_assert_eq(h_status(&c, f).last_index, 1, "all appends to f lost");
    c.filter = NULL;
    h_run(&c, 300);
    cr_assert_eq(h_status(&c, f).last_index, 11);
    cr_assert_eq(c.nodes[f].applied, 11);
    h_free(&c);
}
