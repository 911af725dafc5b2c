/* Under-replicated and missing block counts: the registry's count of sound copies on live
 * chunkservers (healthy, short, missing, damaged-only, a dead holder, not ready yet, in batches)
 * and the block health judgement that counts a short block only once it stayed short for the
 * grace period. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "common/errors.h"
#include "master/block_health.h"
#include "master/cs_registry.h"

#define DEAD_MS 1000
#define N_CS    4

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

static void heartbeat(uint32_t id, uint64_t now)
{
    bool need;
    cr_assert_eq(cs_heartbeat(R, id, now, 100, 0, 100, 0, 0, false, &need), 0);
}

static void heartbeat_all(uint64_t now)
{
    for (uint32_t id = 1; id <= N_CS; id++)
        heartbeat(id, now);
}

static void report(uint32_t id, const uint64_t *blocks, size_t n, const uint64_t *corrupt,
                   size_t n_corrupt)
{
    cr_assert_eq(cs_report_part(R, id, 1, 0, true, blocks, n, corrupt, n_corrupt), 0);
}

static void setup(void)
{
    cr_assert_eq(cs_registry_new(DEAD_MS, &R), 0);
    reg("a");
    reg("b");
    reg("c");
    reg("d");
    cs_leader_term(R, 1, 10);
}

static void teardown(void)
{
    cs_registry_free(R);
    R = NULL;
}

TestSuite(cs_health, .init = setup, .fini = teardown);

/* Blocks 1 (a, b, c: healthy), 2 (a, b: short), 3 (nowhere: missing), 4 (damaged on a, b, c:
 * missing), 5 (a, b sound, c damaged: short), 6 (a, b, d: healthy while d lives). */
static const uint64_t IDS[] = {1, 2, 3, 4, 5, 6};
#define N_IDS (sizeof(IDS) / sizeof(IDS[0]))

static void report_all(void)
{
    const uint64_t a[] = {1, 2, 5, 6}, a_bad[] = {4};
    const uint64_t b[] = {1, 2, 5, 6}, b_bad[] = {4};
    const uint64_t c[] = {1}, c_bad[] = {4, 5};
    const uint64_t d[] = {6, 1000}; /* 1000: a copy no file references */
    report(1, a, 4, a_bad, 1);
    report(2, b, 4, b_bad, 1);
    report(3, c, 1, c_bad, 2);
    report(4, d, 2, NULL, 0);
}

Test(cs_health, not_ready_until_dead_timeout_and_every_live_report)
{
    struct cs_health h = {0};
    uint8_t copies[N_IDS];
    heartbeat_all(20);
    report_all();
    cr_assert_eq(cs_health_count(R, 500, IDS, N_IDS, &h, copies), CM_E_UNAVAILABLE,
                 "leadership younger than the dead timeout");
    cr_assert_eq(h.referenced + h.under_replicated + h.missing, 0, "nothing counted");

    /* A new leadership starts over: a chunkserver alive but not reported yet keeps it unknown. */
    cs_leader_term(R, 2, 600);
    heartbeat_all(700);
    const uint64_t a[] = {1, 2, 5, 6};
    report(1, a, 4, NULL, 0);
    heartbeat_all(1700);
    cr_assert_eq(cs_health_count(R, 1700, IDS, N_IDS, &h, copies), CM_E_UNAVAILABLE,
                 "b, c and d have not sent their full reports");
    cr_assert_eq(h.referenced + h.under_replicated + h.missing, 0, "nothing counted");
    report_all();
    cr_assert_eq(cs_health_count(R, 1700, IDS, N_IDS, &h, copies), 0);
    cr_assert_eq(h.referenced, N_IDS);
}

Test(cs_health, counts_healthy_short_missing_and_damaged_only)
{
    struct cs_health h = {0};
    uint8_t copies[N_IDS];
    heartbeat_all(20);
    report_all();
    heartbeat_all(600);
    heartbeat_all(1100);
    cr_assert_eq(cs_health_count(R, 1100, IDS, N_IDS, &h, copies), 0);
    const uint8_t want[N_IDS] = {3, 2, 0, 0, 2, 3};
    for (size_t i = 0; i < N_IDS; i++)
        cr_assert_eq(copies[i], want[i], "block %zu: %u sound copies, want %u", (size_t)IDS[i],
                     copies[i], want[i]);
    cr_assert_eq(h.referenced, 6);
    cr_assert_eq(h.under_replicated, 4, "2, 3, 4 and 5 (missing ones included)");
    cr_assert_eq(h.missing, 2, "3 (no copy) and 4 (damaged copies only)");

    /* Counts add up over batches, and copies may be NULL. */
    struct cs_health hb = {0};
    cr_assert_eq(cs_health_count(R, 1100, IDS, 2, &hb, NULL), 0);
    cr_assert_eq(cs_health_count(R, 1100, IDS + 2, 3, &hb, NULL), 0);
    cr_assert_eq(cs_health_count(R, 1100, IDS + 5, 1, &hb, NULL), 0);
    cr_assert_eq(hb.referenced, h.referenced);
    cr_assert_eq(hb.under_replicated, h.under_replicated);
    cr_assert_eq(hb.missing, h.missing);

    /* The damaged copy of 5 is replaced on d, and 2 gets a copy on d: all but 3 and 4 healthy. */
    const uint64_t added[] = {5, 2};
    cr_assert_eq(cs_blocks_change(R, 4, added, 2, NULL, 0, NULL, 0), 0);
    h = (struct cs_health){0};
    cr_assert_eq(cs_health_count(R, 1100, IDS, N_IDS, &h, NULL), 0);
    cr_assert_eq(h.under_replicated, 2);
    cr_assert_eq(h.missing, 2);
}

Test(cs_health, copies_of_a_dead_chunkserver_do_not_count)
{
    struct cs_health h = {0};
    uint8_t copies[N_IDS];
    heartbeat_all(20);
    report_all();
    heartbeat_all(600);
    heartbeat_all(1100);
    cr_assert_eq(cs_health_count(R, 1100, IDS, N_IDS, &h, copies), 0);
    cr_assert_eq(copies[5], 3, "6 on a, b and d");
    /* d goes silent: past the dead timeout its copy of 6 is gone from the count. */
    for (uint32_t id = 1; id <= 3; id++)
        heartbeat(id, 2000);
    h = (struct cs_health){0};
    cr_assert_eq(cs_health_count(R, 2000, IDS, N_IDS, &h, copies), 0, "d is dead, not unready");
    cr_assert_eq(copies[5], 3, "still within the dead timeout at 2000");
    h = (struct cs_health){0};
    for (uint32_t id = 1; id <= 3; id++)
        heartbeat(id, 2200);
    cr_assert_eq(cs_health_count(R, 2200, IDS, N_IDS, &h, copies), 0);
    cr_assert_eq(copies[5], 2);
    cr_assert_eq(h.under_replicated, 5);
    cr_assert_eq(h.missing, 2);
    /* a, b and c dead too: every block is missing. */
    h = (struct cs_health){0};
    cr_assert_eq(cs_health_count(R, 3300, IDS, N_IDS, &h, copies), 0);
    cr_assert_eq(h.under_replicated, N_IDS);
    cr_assert_eq(h.missing, N_IDS);
}

Test(cs_health, batch_smaller_or_larger_than_a_holders_range)
{
    /* a, b and c hold 100 .. 1099; the batch looks up a few ids in that range (each of a's
     * copies in range would be more work than each id), then every one. */
    enum { N = 1000 };
    uint64_t *held = malloc(N * sizeof(*held)), few[] = {100, 500, 777, 1099, 2000};
    cr_assert_not_null(held);
    for (size_t i = 0; i < N; i++)
        held[i] = 100 + i;
    heartbeat_all(20);
    for (uint32_t id = 1; id <= 3; id++)
        report(id, held, N, NULL, 0);
    report(4, held, N / 2, NULL, 0);
    heartbeat_all(600);
    heartbeat_all(1100);
    struct cs_health h = {0};
    uint8_t copies[N];
    cr_assert_eq(cs_health_count(R, 1100, few, 5, &h, copies), 0);
    const uint8_t want[] = {4, 4, 3, 3, 0};
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(copies[i], want[i], "block %zu", (size_t)few[i]);
    cr_assert_eq(h.under_replicated, 1);
    cr_assert_eq(h.missing, 1);
    h = (struct cs_health){0};
    cr_assert_eq(cs_health_count(R, 1100, held, N, &h, copies), 0);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(copies[i], i < N / 2 ? 4 : 3, "block %zu", (size_t)held[i]);
    cr_assert_eq(h.under_replicated, 0);
    free(held);
}

/* ---- the judgement with a grace period ---- */

#define GRACE 1000

/* Starts the next walk: what the last one found short becomes prev; at and h start over. */
static void next_walk(struct bh_shortlist *prev, struct bh_shortlist *next, size_t *at,
                      struct cs_health *h)
{
    bh_shortlist_free(prev);
    *prev = *next;
    *next = (struct bh_shortlist){0};
    *at = 0;
    *h = (struct cs_health){0};
}

Test(cs_health, judged_short_only_after_the_grace_period)
{
    struct bh_shortlist prev = {0}, next = {0};
    const uint64_t ids[] = {1, 2, 3, 4};
    struct cs_health h = {0};
    size_t at = 0;

    /* Walk at 0: 2 short, 3 missing (just committed, maybe): not counted yet. */
    const uint8_t c0[] = {3, 2, 0, 3};
    cr_assert_eq(bh_judge(&prev, &at, &next, ids, c0, 4, 0, GRACE, &h), 0);
    cr_assert_eq(h.referenced, 4);
    cr_assert_eq(h.under_replicated, 0);
    cr_assert_eq(h.missing, 0);
    cr_assert_eq(next.n, 2);

    /* Walk at 600, in two batches: 3 was reported meanwhile, 4 lost a copy. */
    next_walk(&prev, &next, &at, &h);
    const uint8_t c1[] = {3, 2, 3, 1};
    cr_assert_eq(bh_judge(&prev, &at, &next, ids, c1, 2, 600, GRACE, &h), 0);
    cr_assert_eq(bh_judge(&prev, &at, &next, ids + 2, c1 + 2, 2, 600, GRACE, &h), 0);
    cr_assert_eq(h.referenced, 4);
    cr_assert_eq(h.under_replicated, 0);
    cr_assert_eq(next.n, 2);
    cr_assert_eq(next.v[0].id, 2);
    cr_assert_eq(next.v[0].since_ms, 0, "short since the first walk");
    cr_assert_eq(next.v[1].id, 4);
    cr_assert_eq(next.v[1].since_ms, 600);

    /* Walk at 1000: 2 has been short for the grace period; 4 has no copy left, but only for
     * 400 ms. */
    next_walk(&prev, &next, &at, &h);
    const uint8_t c2[] = {3, 2, 3, 0};
    cr_assert_eq(bh_judge(&prev, &at, &next, ids, c2, 4, 1000, GRACE, &h), 0);
    cr_assert_eq(h.under_replicated, 1);
    cr_assert_eq(h.missing, 0);

    /* Walk at 1600: 4 is missing for good; 2 is healthy again and forgotten. */
    next_walk(&prev, &next, &at, &h);
    const uint8_t c3[] = {3, 3, 3, 0};
    cr_assert_eq(bh_judge(&prev, &at, &next, ids, c3, 4, 1600, GRACE, &h), 0);
    cr_assert_eq(h.under_replicated, 1);
    cr_assert_eq(h.missing, 1);
    cr_assert_eq(next.n, 1);
    cr_assert_eq(next.v[0].id, 4);
    bh_shortlist_free(&prev);
    bh_shortlist_free(&next);
}

/* A caller reads the time, then a heartbeat comes in, then the caller lists: the chunkserver was
 * just heard from, not silent for 2^64 ms (seen as live chunkservers marked dead by fsck). */
Test(cs_health, a_heartbeat_newer_than_the_callers_time_is_alive)
{
    heartbeat_all(5000);
    heartbeat(2, 5200); /* after the caller's now = 5100 */
    struct cs_info *v = NULL;
    size_t n = 0;
    cr_assert_eq(cs_list(R, 5100, &v, &n), 0);
    cr_assert_eq(n, N_CS);
    for (size_t i = 0; i < n; i++)
        cr_assert(v[i].alive, "chunkserver %u counted dead", v[i].id);
    cr_assert_eq(v[1].last_heartbeat_ms_ago, 0);
    cr_assert_eq(v[0].last_heartbeat_ms_ago, 100);
    free(v);
    /* And silence past the dead timeout is still death. */
    cr_assert_eq(cs_list(R, 5000 + DEAD_MS + 1, &v, &n), 0);
    cr_assert(!v[0].alive);
    cr_assert(v[1].alive);
    free(v);
}

/* Replicate commands per heartbeat answer: enough to keep CS_REPL_QUEUE_TARGET copies waiting on
 * a chunkserver that says its queue, none while it has that many, 4 for one that does not say. */
Test(cs_repl, budget_tops_the_queue_up_to_its_target)
{
    cr_assert_eq(cs_repl_budget(true, 0), CS_REPL_QUEUE_TARGET);
    cr_assert_eq(cs_repl_budget(true, CS_REPL_QUEUE_TARGET - 2), 2);
    cr_assert_eq(cs_repl_budget(true, CS_REPL_QUEUE_TARGET), 0);
    cr_assert_eq(cs_repl_budget(true, 4096), 0);
    cr_assert_eq(cs_repl_budget(false, 0), CS_REPL_PER_HEARTBEAT);
    cr_assert_eq(cs_repl_budget(false, 4096), CS_REPL_PER_HEARTBEAT);
}
