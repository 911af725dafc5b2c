/* The leader's soft state as garbage acknowledgement reads it: which pending ids no live
 * chunkserver holds (and only once the soft state is complete), a chunkserver back from the
 * dead reporting again, its copies merged, and the orphan bound. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "common/errors.h"
#include "master/cs_registry.h"

#define DEAD_MS 1000

static struct cs_registry *R;

static void reg(const char *sid)
{
    void *cmd, *res;
    size_t len, res_len;
    cr_assert_eq(cs_cmd_register(sid, "127.0.0.1:1", "", &cmd, &len), 0);
    cr_assert_eq(cs_apply(R, cmd, len, &res, &res_len), 0);
    free(cmd);
    free(res);
}

static void heartbeat(uint32_t id, uint64_t now, bool *need)
{
    bool tmp;
    cr_assert_eq(cs_heartbeat(R, id, now, 100, 0, 100, 0, 0, false, need ? need : &tmp), 0);
}

static void report(uint32_t id, uint64_t rid, const uint64_t *blocks, size_t n,
                   const uint64_t *corrupt, size_t n_corrupt)
{
    cr_assert_eq(cs_report_part(R, id, rid, 0, true, blocks, n, corrupt, n_corrupt), 0);
}

static void setup(void)
{
    cr_assert_eq(cs_registry_new(DEAD_MS, &R), 0);
    reg("a");
    reg("b");
    cs_leader_term(R, 1, 10);
}

static void teardown(void)
{
    cs_registry_free(R);
    R = NULL;
}

TestSuite(cs_gc, .init = setup, .fini = teardown);

Test(cs_gc, unheld_waits_for_readiness_then_ignores_dead)
{
    const uint64_t a_blocks[] = {1, 2}, b_blocks[] = {3}, b_corrupt[] = {4};
    heartbeat(1, 20, NULL);
    heartbeat(2, 20, NULL);
    report(1, 1, a_blocks, 2, NULL, 0);
    uint64_t ids[5] = {1, 2, 3, 4, 5}, out[5];
    heartbeat(1, 500, NULL);
    heartbeat(2, 500, NULL);
    cr_assert_eq(cs_gc_unheld(R, 500, ids, 5, out, 5), 0, "leadership younger than dead timeout");
    heartbeat(1, 1100, NULL);
    heartbeat(2, 1100, NULL);
    cr_assert_eq(cs_gc_unheld(R, 1100, ids, 5, out, 5), 0, "b has not sent its full report");
    report(2, 1, b_blocks, 1, b_corrupt, 1);
    size_t n = cs_gc_unheld(R, 1100, ids, 5, out, 5);
    cr_assert_eq(n, 1, "a corrupt copy counts as held");
    cr_assert_eq(out[0], 5);
    /* a deletes 1 (heartbeat "removed"). */
    const uint64_t removed[] = {1};
    cr_assert_eq(cs_blocks_change(R, 1, NULL, 0, removed, 1, NULL, 0), 0);
    n = cs_gc_unheld(R, 1100, ids, 5, out, 5);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0], 1);
    cr_assert_eq(out[1], 5);
    /* b goes silent: once dead its copies (3, 4) no longer hold the ids up. */
    heartbeat(1, 1700, NULL);
    heartbeat(1, 2200, NULL);
    n = cs_gc_unheld(R, 2200, ids, 5, ids, 5);
    cr_assert_eq(n, 4, "in place");
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(ids[2], 4);
    cr_assert_eq(ids[3], 5);
}

Test(cs_gc, back_from_dead_must_report_again)
{
    bool need;
    heartbeat(1, 20, &need);
    cr_assert(need);
    report(1, 1, NULL, 0, NULL, 0);
    heartbeat(1, 500, &need);
    cr_assert_not(need);
    heartbeat(1, 500 + DEAD_MS + 1, &need);
    cr_assert(need, "dead meanwhile: its copies may have changed");
}

Test(cs_gc, held_merges_sound_and_corrupt)
{
    const uint64_t blocks[] = {2, 5, 9}, corrupt[] = {1, 5, 10};
    heartbeat(1, 20, NULL);
    report(1, 1, blocks, 3, corrupt, 3);
    uint64_t *v;
    size_t n;
    cr_assert_eq(cs_held(R, 1, &v, &n), 0);
    cr_assert_eq(n, 5);
    const uint64_t want[] = {1, 2, 5, 9, 10};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(v[i], want[i]);
    free(v);
    cr_assert_eq(cs_held(R, 2, &v, &n), 0);
    cr_assert_eq(n, 0);
    free(v);
}

Test(cs_gc, orphan_bound_lags_one_grace_period)
{
    cr_assert_eq(cs_orphan_below(R, 100, CS_ORPHAN_GRACE_MS, 50), 0,
                 "nothing is old enough at first");
    cr_assert_eq(cs_orphan_below(R, 100 + CS_ORPHAN_GRACE_MS - 1, CS_ORPHAN_GRACE_MS, 80), 0);
    cr_assert_eq(cs_orphan_below(R, 100 + CS_ORPHAN_GRACE_MS, CS_ORPHAN_GRACE_MS, 90), 50);
    cr_assert_eq(cs_orphan_below(R, 100 + 2 * CS_ORPHAN_GRACE_MS, CS_ORPHAN_GRACE_MS, 120), 90);
    cs_leader_term(R, 2, 5);
    cr_assert_eq(cs_orphan_below(R, 10, CS_ORPHAN_GRACE_MS, 200), 0,
                 "a new leadership starts over");
    /* Two heartbeats handled at once: the one that read the time first comes second. Its time
     * is before the mark: no grace has passed (it wrapped to one before). */
    cr_assert_eq(cs_orphan_below(R, 9, CS_ORPHAN_GRACE_MS, 210), 0, "an earlier time moved it");
    cr_assert_eq(cs_orphan_below(R, 10 + CS_ORPHAN_GRACE_MS, CS_ORPHAN_GRACE_MS, 220), 200);
}
