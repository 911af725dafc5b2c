/* Determinism (STYLE: same seed + same events = same outputs): a scripted run with elections,
 * partitions, crashes, snapshots, reads, membership and transfers produces a byte-identical
 * sequence of updates twice, and a different one with another seed. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static void cfg(struct raft_config *c)
{
    c->snapshot_threshold = 200;
    c->snapshot_trailing = 20;
    c->snapshot_chunk_bytes = 300;
}

static uint64_t scenario(uint64_t seed, uint64_t *steps)
{
    struct h_cluster c;
    h_init_join(&c, 5, 4, seed, cfg);
    for (raft_id i = 1; i <= 5; i++) {
        c.nodes[i].auto_snapshot = true;
        c.nodes[i].snap_fill = 1000;
    }
    raft_id l = 0;
    for (int i = 0; i < 3000 && (l == 0 || l == 5); i++) {
        h_run(&c, 1);
        l = h_leader(&c);
    }
    cr_assert_neq(l, 0);
    for (int i = 0; i < 300; i++) {
        h_propose(&c, l, i % 3 ? "abc" : "defgh");
        if (i % 10 == 0) {
            h_run(&c, 7);
        }
    }
    h_conf_change(&c, l, RAFT_CONF_ADD, 5);
    h_run(&c, 300);
    raft_id f = l == 1 ? 2 : 1;
    h_read(&c, f, 1);
    h_read(&c, l, 2);
    h_isolate(&c, l, true);
    h_run(&c, 1000);
    h_isolate(&c, l, false);
    l = h_leader(&c);
    h_crash(&c, f);
    for (int i = 0; i < 300; i++) {
        h_propose(&c, l, "xyz");
    }
    h_run(&c, 200);
    h_restart(&c, f);
    h_run(&c, 500);
    h_transfer(&c, l, f);
    h_run(&c, 500);
    l = h_leader(&c);
    h_conf_change(&c, l, RAFT_CONF_REMOVE, l == 3 ? 4 : 3);
    h_run(&c, 500);
    h_check_applied(&c);
    uint64_t t = c.trace;
    *steps = c.steps;
    h_free(&c);
    return t;
}

Test(determinism, same_seed_same_updates)
{
    uint64_t s1, s2, s3;
    uint64_t a = scenario(1234, &s1);
    uint64_t b = scenario(1234, &s2);
    cr_assert_eq(s1, s2);
    cr_assert_eq(a, b, "same seed, same events: identical updates");
    uint64_t d = scenario(4321, &s3);
    cr_assert_neq(a, d, "the seed matters");
}

Test(determinism, nodes_sharing_a_seed_draw_different_timeouts)
{
    struct h_cluster c;
    h_init(&c, 3, 5, NULL);
    h_run(&c, 1);
    cr_assert(c.nodes[1].next_timeout != c.nodes[2].next_timeout ||
              c.nodes[2].next_timeout != c.nodes[3].next_timeout);
    h_free(&c);
}
