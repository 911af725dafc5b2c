/* Snapshots (thesis §5): snapshot_wanted, compaction keeping trailing entries, InstallSnapshot
 * in chunks with offset checks, done only once durable, no committed entry past an install until
 * it is durable, resuming after lost chunks, and a follower 10,000 entries behind catching up. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static void small_snapshots(struct raft_config *c)
{
    c->snapshot_threshold = 1000;
    c->snapshot_trailing = 100;
    c->snapshot_chunk_bytes = 1000;
    c->max_inflight_bytes = 3000;
}

static raft_id follower(raft_id l, int k)
{
    raft_id id = 1;
    for (;; id++) {
        if (id != l && k-- == 0) {
            return id;
        }
    }
}

static void propose_many(struct h_cluster *c, raft_id l, int n)
{
    for (int i = 0; i < n; i++) {
        char buf[24];
        int len = 0;
        for (int v = i; len == 0 || v > 0; v /= 10) {
            buf[len++] = (char)('0' + v % 10);
        }
        buf[len] = 0;
        cr_assert_eq(h_propose(c, l, buf), 0);
        if (i % 64 == 63) {
            h_deliver(c);
        }
    }
    h_deliver(c);
}

Test(snapshot, wanted_once_per_threshold)
{
    struct h_cluster c;
    h_init(&c, 1, 61, small_snapshots);
    raft_id l = h_elect(&c, 1000);
    propose_many(&c, l, 1500);
    cr_assert_eq(c.nodes[l].snapshots_wanted, 1);
    cr_assert_eq(h_snapshot(&c, l), 0);
    cr_assert_eq(h_status(&c, l).snapshot_index, 1501);
    propose_many(&c, l, 999);
    cr_assert_eq(c.nodes[l].snapshots_wanted, 1);
    propose_many(&c, l, 1);
    cr_assert_eq(c.nodes[l].snapshots_wanted, 2);
    h_free(&c);
}

Test(snapshot, taken_snapshot_must_be_applied_and_match)
{
    struct h_cluster c;
    h_init(&c, 1, 62, small_snapshots);
    raft_id l = h_elect(&c, 1000);
    propose_many(&c, l, 10);
    struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_TAKEN};
    ev.u.snapshot_taken.index = 20; /* beyond applied */
    ev.u.snapshot_taken.term = 1;
    cr_assert_eq(h_step(&c, l, &ev), RAFT_E_INVAL);
    ev.u.snapshot_taken.index = 5;
    ev.u.snapshot_taken.term = 7; /* wrong term */
    cr_assert_eq(h_step(&c, l, &ev), RAFT_E_INVAL);
    ev.u.snapshot_taken.term = h_status(&c, l).term;
    cr_assert_eq(h_step(&c, l, &ev), 0);
    cr_assert_eq(h_step(&c, l, &ev), RAFT_E_INVAL, "not newer than the last one");
    cr_assert_eq(h_status(&c, l).snapshot_index, 5);
    h_free(&c);
}

/* Follower f sees `before` entries, then misses n while the others snapshot; then it comes
 * back. */
static void catch_up(uint64_t seed, int before, int n, bool expect_snapshot)
{
    struct h_cluster c;
    h_init(&c, 3, seed, small_snapshots);
    for (raft_id i = 1; i <= 3; i++) {
        c.nodes[i].auto_snapshot = true;
        c.nodes[i].snap_fill = 5000;
    }
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l, 0);
    propose_many(&c, l, before);
    h_run(&c, 100);
    h_crash(&c, f);
    propose_many(&c, l, n);
    h_run(&c, 100);
    n += before;
    cr_assert_eq(c.nodes[l].applied, (raft_index)n + 1);
    h_restart(&c, f);
    h_run(&c, 2000);
    cr_assert_eq(c.nodes[f].applied, (raft_index)n + 1);
    cr_assert_eq(c.nodes[f].sm_hash, c.nodes[l].sm_hash, "same state as the leader");
    cr_assert_eq(c.nodes[f].sm_count, (uint64_t)n);
    if (expect_snapshot) {
        cr_assert_eq(c.nodes[f].installs, 1);
        cr_assert_eq(c.nodes[f].chunks_written, 6, "5016 bytes in chunks of 1000");
        cr_assert_geq(h_status(&c, f).snapshot_index, 1000);
    } else {
        cr_assert_eq(c.nodes[f].installs, 0);
    }
    /* It keeps replicating from the log after the snapshot. */
    propose_many(&c, l, 5);
    h_run(&c, 200);
    cr_assert_eq(c.nodes[f].applied, (raft_index)n + 6);
    cr_assert_eq(c.nodes[f].sm_hash, c.nodes[l].sm_hash);
    h_free(&c);
}

Test(snapshot, follower_10000_entries_behind_catches_up)
{
    catch_up(63, 0, 10000, true);
}

Test(snapshot, follower_within_trailing_entries_gets_appends)
{
    catch_up(64, 990, 60, false);
}

/* The configuration hand-made chunks carry (messages point to it). */
static struct raft_conf three_voters = {
    .n = 3,
    .nodes = {{.id = 1, .voter = true}, {.id = 2, .voter = true}, {.id = 3, .voter = true}}};

static struct raft_msg chunk_msg(raft_id from, raft_id to, raft_term term, uint64_t offset,
                                 uint32_t len, uint64_t size, const void *data)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = from;
    m.to = to;
    m.term = term;
    m.u.snapshot.last_index = 50;
    m.u.snapshot.last_term = term;
    m.u.snapshot.conf = &three_voters;
    m.u.snapshot.size = size;
    m.u.snapshot.offset = offset;
    m.u.snapshot.len = len;
    m.u.snapshot.data = data;
    m.u.snapshot.done = offset + len == size;
    return m;
}

static struct raft_msg *last_resp(struct h_cluster *c)
{
    for (uint32_t i = c->q_n; i-- > 0;) {
        struct h_qitem *it = h_queue_at(c, i);
        if (!it->persisted && it->m.type == RAFT_MSG_SNAPSHOT_RESP) {
            return &it->m;
        }
    }
    return NULL;
}

Test(snapshot, chunks_are_checked_and_install_answers_after_persist)
{
    struct h_cluster c;
    h_init(&c, 3, 65, NULL);
    static uint8_t data[300];
    for (int i = 0; i < 300; i++) {
        data[i] = (uint8_t)i;
    }
    memcpy(data, "\x07\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0", 16);
    /* A chunk in the middle without a start: the receiver wants it from the start. */
    struct raft_msg m = chunk_msg(2, 1, 3, 100, 100, 300, data + 100);
    cr_assert_eq(h_receive(&c, 1, &m), RAFT_E_INVAL);
    struct raft_msg *r = last_resp(&c);
    cr_assert_not_null(r);
    cr_assert(r->u.snapshot_resp.rejected);
    cr_assert_eq(h_status(&c, 1).leader, 2, "the leader is still recognized");
    /* In order: accepted, each written by the driver. */
    m = chunk_msg(2, 1, 3, 0, 100, 300, data);
    cr_assert_eq(h_receive(&c, 1, &m), 0);
    cr_assert_eq(c.nodes[1].chunks_written, 1);
    r = last_resp(&c);
    cr_assert_eq(r->u.snapshot_resp.next_offset, 100);
    cr_assert_not(r->u.snapshot_resp.done);
    /* A gap: refused, answered with the offset expected, nothing written. */
    m = chunk_msg(2, 1, 3, 200, 100, 300, data + 200);
    cr_assert_eq(h_receive(&c, 1, &m), RAFT_E_INVAL);
    cr_assert_eq(c.nodes[1].chunks_written, 1);
    r = last_resp(&c);
    cr_assert_eq(r->u.snapshot_resp.next_offset, 100);
    cr_assert_not(r->u.snapshot_resp.rejected);
    m = chunk_msg(2, 1, 3, 100, 100, 300, data + 100);
    cr_assert_eq(h_receive(&c, 1, &m), 0);
    /* The last chunk: install goes to disk; "done" waits for it. */
    h_hold(&c, 1, true);
    h_drop_all(&c);
    m = chunk_msg(2, 1, 3, 200, 100, 300, data + 200);
    cr_assert_eq(h_receive(&c, 1, &m), 0);
    cr_assert_eq(c.nodes[1].n_held, 1);
    cr_assert(c.nodes[1].held[0].p.install_snapshot);
    cr_assert_eq(c.nodes[1].held[0].p.snapshot_index, 50);
    for (uint32_t i = 0; i < c.q_n; i++) {
        struct h_qitem *it = h_queue_at(&c, i);
        cr_assert(it->m.type != RAFT_MSG_SNAPSHOT_RESP || !it->m.u.snapshot_resp.done,
                  "done before the install is durable");
    }
    h_flush(&c, 1);
    r = last_resp(&c);
    cr_assert(r->u.snapshot_resp.done);
    struct raft_status s = h_status(&c, 1);
    cr_assert_eq(s.snapshot_index, 50);
    cr_assert_eq(s.commit_index, 50);
    cr_assert_eq(s.applied_index, 50);
    cr_assert_eq(s.last_index, 50);
    cr_assert_eq(c.nodes[1].applied, 50);
    cr_assert_eq(c.nodes[1].sm_hash, 7, "state machine restored from the chunks");
    h_free(&c);
}

static bool drop_third_chunk(void *arg, struct raft_msg *m)
{
    int *seen = arg;
    if (m->type == RAFT_MSG_SNAPSHOT && m->u.snapshot.offset == 2000 && (*seen)++ == 0) {
        return false;
    }
    return true;
}

Test(snapshot, transfer_resumes_after_a_lost_chunk)
{
    struct h_cluster c;
    h_init(&c, 3, 66, small_snapshots);
    for (raft_id i = 1; i <= 3; i++) {
        c.nodes[i].auto_snapshot = true;
        c.nodes[i].snap_fill = 5000;
    }
    raft_id l = h_elect(&c, 2000);
    h_run(&c, 100);
    raft_id f = follower(l, 1);
    h_crash(&c, f);
    propose_many(&c, l, 2500);
    h_restart(&c, f);
    int seen = 0;
    c.filter = drop_third_chunk;
    c.filter_arg = &seen;
    h_run(&c, 2000);
    cr_assert_eq(seen, 2, "the lost chunk was sent again");
    cr_assert_eq(c.nodes[f].installs, 1);
    cr_assert_eq(c.nodes[f].applied, 2501);
    cr_assert_eq(c.nodes[f].sm_hash, c.nodes[l].sm_hash);
    h_free(&c);
}

Test(snapshot, snapshot_older_than_commit_is_acknowledged_at_once)
{
    struct h_cluster c;
    h_init(&c, 3, 67, NULL);
    raft_id l = h_elect(&c, 2000);
    for (int i = 0; i < 60; i++) {
        h_propose(&c, l, "x");
    }
    h_run(&c, 200);
    raft_id f = follower(l, 0);
    cr_assert_geq(h_status(&c, f).commit_index, 50);
    h_drop_all(&c);
    static uint8_t data[10];
    struct raft_msg m = chunk_msg(l, f, h_status(&c, l).term, 0, 10, 10, data);
    cr_assert_eq(h_receive(&c, f, &m), 0);
    struct raft_msg *r = last_resp(&c);
    cr_assert(r->u.snapshot_resp.done);
    cr_assert_eq(c.nodes[f].chunks_written, 0, "nothing to write");
    cr_assert_eq(h_status(&c, f).last_index, 61, "the log is untouched");
    h_free(&c);
}

/* Delivers the persist reports queued for nodes and drops every message. */
static void persist_only(struct h_cluster *c)
{
    while (c->q_n > 0) {
        if (h_queue_at(c, 0)->persisted) {
            h_deliver_one(c, 0);
        } else {
            h_queue_remove(c, 0);
        }
    }
}

static bool done_queued(struct h_cluster *c)
{
    for (uint32_t i = 0; i < c->q_n; i++) {
        struct h_qitem *it = h_queue_at(c, i);
        if (!it->persisted && it->m.type == RAFT_MSG_SNAPSHOT_RESP && it->m.u.snapshot_resp.done) {
            return true;
        }
    }
    return false;
}

Test(snapshot, entries_after_a_pending_install_wait_until_it_is_persisted)
{
    /* Node 1 holds entries 1..10 (durable, not yet known committed) when node 2, leading term
     * 3, sends snapshot 5: the install keeps 6..10. Then the leader says 10 is committed. Node
     * 1's driver restores its state machine only when the install is reported persisted, so
     * entries 6..10 must not be handed out before that report (raft.h). */
    struct h_cluster c;
    h_init(&c, 3, 68, NULL);
    struct raft_entry ents[10];
    char text[10][4];
    for (int i = 0; i < 10; i++) {
        snprintf(text[i], sizeof text[i], "e%d", i + 1);
        ents[i] = (struct raft_entry){.term = 3,
                                      .index = (raft_index)i + 1,
                                      .type = RAFT_ENTRY_NORMAL,
                                      .len = (uint32_t)strlen(text[i]),
                                      .data = text[i]};
    }
    struct raft_msg app;
    memset(&app, 0, sizeof app);
    app.type = RAFT_MSG_APPEND;
    app.from = 2;
    app.to = 1;
    app.term = 3;
    app.u.append.n_entries = 10;
    app.u.append.entries = ents;
    cr_assert_eq(h_receive(&c, 1, &app), 0);
    persist_only(&c);
    cr_assert_eq(h_status(&c, 1).persisted_index, 10);
    cr_assert_eq(c.nodes[1].applied, 0);

    /* The snapshot: hash 7 and 2 commands, the state as of entry 5. */
    static uint8_t data[16] = {7, 0, 0, 0, 0, 0, 0, 0, 2};
    struct raft_msg snap = chunk_msg(2, 1, 3, 0, 16, 16, data);
    snap.u.snapshot.last_index = 5;
    h_hold(&c, 1, true);
    cr_assert_eq(h_receive(&c, 1, &snap), 0);
    cr_assert_eq(c.nodes[1].n_held, 1);
    cr_assert(c.nodes[1].held[0].p.install_snapshot);
    struct raft_status s = h_status(&c, 1);
    cr_assert_eq(s.last_index, 10, "the entries after the snapshot are kept");
    cr_assert_eq(s.applied_index, 5);
    cr_assert_not(done_queued(&c), "done before the install is durable");

    /* Entries up to 10 are committed; none may go out yet. */
    struct raft_msg hb = app;
    hb.u.append.prev_index = 10;
    hb.u.append.prev_term = 3;
    hb.u.append.commit = 10;
    hb.u.append.n_entries = 0;
    hb.u.append.entries = NULL;
    cr_assert_eq(h_receive(&c, 1, &hb), 0);
    cr_assert_eq(h_status(&c, 1).commit_index, 10);
    cr_assert_eq(c.nodes[1].n_committed_updates, 0, "entries after a pending install");
    /* The final chunk again: the snapshot is already covered, yet still not durable. */
    cr_assert_eq(h_receive(&c, 1, &snap), 0);
    cr_assert_not(done_queued(&c), "done before the install is durable");
    cr_assert_eq(c.nodes[1].n_committed_updates, 0);

    /* The install is durable: the driver restores, then steps the report; 6..10 follow. */
    h_flush(&c, 1);
    cr_assert_eq(c.nodes[1].installs, 1);
    cr_assert_eq(c.nodes[1].n_committed_updates, 1);
    cr_assert_eq(c.nodes[1].applied, 10);
    cr_assert_eq(c.nodes[1].sm_count, 7, "two commands in the snapshot, then 6..10");
    cr_assert(done_queued(&c));
    h_free(&c);
}
