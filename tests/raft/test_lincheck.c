/* Unit tests of the linearizability checker: hand-written histories that are and are not
 * linearizable, and generated ones (linearizable by construction, then corrupted). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/raft/lincheck.h"

#define P LIN_PENDING

static struct lin_op put(uint32_t key, const char *v, uint64_t inv, uint64_t resp)
{
    return (struct lin_op){LIN_PUT, key, v, (uint32_t)strlen(v), inv, resp};
}

static struct lin_op app(uint32_t key, const char *v, uint64_t inv, uint64_t resp)
{
    return (struct lin_op){LIN_APPEND, key, v, (uint32_t)strlen(v), inv, resp};
}

static struct lin_op get(uint32_t key, const char *v, uint64_t inv, uint64_t resp)
{
    return (struct lin_op){LIN_GET, key, v, (uint32_t)strlen(v), inv, resp};
}

static int check(const struct lin_op *ops, size_t n)
{
    return lin_check(ops, n, 0, NULL);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(lincheck, empty_history_is_linearizable)
{
    cr_assert_eq(lin_check(NULL, 0, 0, NULL), LIN_OK);
}

Test(lincheck, unwritten_key_reads_empty)
{
    struct lin_op ok[] = {get(1, "", 1, 2)};
    struct lin_op bad[] = {get(1, "x", 1, 2)};
    cr_assert_eq(check(ok, N(ok)), LIN_OK);
    cr_assert_eq(check(bad, N(bad)), LIN_VIOLATION);
}

Test(lincheck, sequential_put_then_get)
{
    struct lin_op h[] = {put(0, "a", 1, 2), get(0, "a", 3, 4), put(0, "b", 5, 6),
                         get(0, "b", 7, 8)};
    cr_assert_eq(check(h, N(h)), LIN_OK);
}

Test(lincheck, stale_read_after_completed_write_is_a_violation)
{
    struct lin_op h[] = {put(0, "a", 1, 2), put(0, "b", 3, 4), get(0, "a", 5, 6)};
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
}

Test(lincheck, read_concurrent_with_write_sees_either_value)
{
    struct lin_op old[] = {put(0, "a", 1, 2), put(0, "b", 3, 6), get(0, "a", 4, 5)};
    struct lin_op new[] = {put(0, "a", 1, 2), put(0, "b", 3, 6), get(0, "b", 4, 5)};
    cr_assert_eq(check(old, N(old)), LIN_OK);
    cr_assert_eq(check(new, N(new)), LIN_OK);
}

Test(lincheck, write_seen_by_another_client_after_it_completed)
{
    struct lin_op h[] = {put(0, "1", 1, 2), get(0, "", 3, 4)};
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
}

Test(lincheck, new_value_then_old_value_is_a_violation)
{
    /* Both reads overlap the write, but the second starts after the first returned the new
     * value: it may not go back to the old one. */
    struct lin_op h[] = {put(0, "old", 1, 2), put(0, "new", 3, 10), get(0, "new", 4, 5),
                         get(0, "old", 6, 7)};
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
    /* Overlapping reads may see them in either order. */
    struct lin_op ok[] = {put(0, "old", 1, 2), put(0, "new", 3, 10), get(0, "new", 4, 7),
                          get(0, "old", 5, 6)};
    cr_assert_eq(check(ok, N(ok)), LIN_OK);
}

Test(lincheck, concurrent_appends_in_either_order)
{
    struct lin_op ab[] = {app(0, "a", 1, 4), app(0, "b", 2, 3), get(0, "ab", 5, 6)};
    struct lin_op ba[] = {app(0, "a", 1, 4), app(0, "b", 2, 3), get(0, "ba", 5, 6)};
    struct lin_op lost[] = {app(0, "a", 1, 4), app(0, "b", 2, 3), get(0, "a", 5, 6)};
    struct lin_op twice[] = {app(0, "a", 1, 4), app(0, "b", 2, 3), get(0, "aba", 5, 6)};
    cr_assert_eq(check(ab, N(ab)), LIN_OK);
    cr_assert_eq(check(ba, N(ba)), LIN_OK);
    cr_assert_eq(check(lost, N(lost)), LIN_VIOLATION);
    cr_assert_eq(check(twice, N(twice)), LIN_VIOLATION);
}

Test(lincheck, put_resets_appends)
{
    struct lin_op h[] = {app(0, "a", 1, 2), put(0, "x", 3, 4), app(0, "b", 5, 6),
                         get(0, "xb", 7, 8)};
    cr_assert_eq(check(h, N(h)), LIN_OK);
    h[3] = get(0, "ab", 7, 8);
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
}

Test(lincheck, pending_write_may_or_may_not_take_effect)
{
    struct lin_op seen[] = {put(0, "a", 1, 2), put(0, "b", 3, P), get(0, "b", 10, 11)};
    struct lin_op unseen[] = {put(0, "a", 1, 2), put(0, "b", 3, P), get(0, "a", 10, 11)};
    struct lin_op flip[] = {put(0, "a", 1, 2), put(0, "b", 3, P), get(0, "b", 10, 11),
                            get(0, "a", 12, 13)};
    cr_assert_eq(check(seen, N(seen)), LIN_OK);
    cr_assert_eq(check(unseen, N(unseen)), LIN_OK);
    cr_assert_eq(check(flip, N(flip)), LIN_VIOLATION);
}

Test(lincheck, pending_write_cannot_act_before_its_invocation)
{
    struct lin_op h[] = {get(0, "b", 1, 2), put(0, "b", 3, P)};
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
}

Test(lincheck, pending_get_is_ignored)
{
    struct lin_op h[] = {put(0, "a", 1, 2), get(0, "zzz", 3, P)};
    cr_assert_eq(check(h, N(h)), LIN_OK);
}

Test(lincheck, keys_are_checked_independently)
{
    struct lin_op h[] = {put(1, "a", 1, 2), put(2, "b", 3, 4), get(1, "a", 5, 6),
                         get(2, "a", 7, 8)};
    struct lin_report rep;
    cr_assert_eq(lin_check(h, N(h), 0, &rep), LIN_VIOLATION);
    cr_assert_eq(rep.key, 2);
    h[3] = get(2, "b", 7, 8);
    cr_assert_eq(lin_check(h, N(h), 0, &rep), LIN_OK);
    cr_assert_eq(rep.max_key_ops, 2);
}

/* ---- Generated histories ---- */

struct gen {
    struct lin_op *ops;
    size_t n;
    char (*vals)[64];
    uint64_t rng;
};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A history of `clients` sequential clients on `keys` keys, each operation taking effect at a
 * random instant inside its interval: linearizable by construction. Writes cut off before their
 * response stay pending. */
static void generate(struct gen *g, uint64_t seed, int clients, int keys, size_t n_ops)
{
    enum { IDLE, CALLED, DONE_EFFECT };
    g->rng = seed;
    g->ops = calloc(n_ops, sizeof(*g->ops));
    g->vals = calloc(n_ops, sizeof(*g->vals));
    static char regs[8][4096];
    memset(regs, 0, sizeof(regs));
    int phase[16] = {0};
    size_t cur[16] = {0};
    g->n = 0;
    uint64_t now = 1;
    size_t started = 0;
    for (;;) {
        int c = (int)(rnd(&g->rng) % (uint64_t)clients);
        if (phase[c] == IDLE) {
            if (started == n_ops)
                break;
            size_t i = started++;
            struct lin_op *op = &g->ops[i];
            int k = (int)(rnd(&g->rng) % (uint64_t)keys);
            uint64_t r = rnd(&g->rng) % 10;
            op->kind = r < 3 ? LIN_PUT : r < 6 ? LIN_APPEND : LIN_GET;
            op->key = (uint32_t)k;
            op->invoke = now++;
            op->response = P;
            if (op->kind != LIN_GET) {
                snprintf(g->vals[i], sizeof(g->vals[i]), "%d.%zu;", c, i);
                op->value = g->vals[i];
                op->len = (uint32_t)strlen(g->vals[i]);
            }
            cur[c] = i;
            phase[c] = CALLED;
        } else if (phase[c] == CALLED) {
            struct lin_op *op = &g->ops[cur[c]];
            char *reg = regs[op->key];
            if (op->kind == LIN_PUT) {
                strcpy(reg, op->value);
            } else if (op->kind == LIN_APPEND) {
                if (strlen(reg) + op->len + 1 > sizeof(regs[0])) {
                    op->kind = LIN_PUT; /* keep the register bounded */
                    strcpy(reg, op->value);
                } else {
                    strcat(reg, op->value);
                }
            } else {
                size_t len = strlen(reg);
                char *copy = malloc(len + 1);
                memcpy(copy, reg, len + 1);
                op->value = copy;
                op->len = (uint32_t)len;
            }
            phase[c] = DONE_EFFECT;
        } else {
            g->ops[cur[c]].response = now++;
            phase[c] = IDLE;
        }
    }
    /* Reads that never returned are dropped by the checker; keep their buffers owned. */
    for (int c = 0; c < clients; c++) {
        if (phase[c] == CALLED && g->ops[cur[c]].kind == LIN_GET)
            g->ops[cur[c]].value = NULL;
    }
    g->n = started;
}

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->ops[i].kind == LIN_GET && g->ops[i].value != NULL)
            free((void *)g->ops[i].value);
    }
    free(g->ops);
    free(g->vals);
}

Test(lincheck, generated_histories_are_linearizable)
{
    for (uint64_t seed = 1; seed <= 200; seed++) {
        struct gen g;
        generate(&g, seed, 1 + (int)(seed % 5), 1 + (int)(seed % 3), 150);
        struct lin_report rep;
        int rc = lin_check(g.ops, g.n, 0, &rep);
        cr_assert_eq(rc, LIN_OK, "seed %llu: %d (key %u)", (unsigned long long)seed, rc, rep.key);
        gen_free(&g);
    }
}

/* Changing a completed read to a value that was overwritten by a write completed before the
 * read began (values are unique) makes any history non-linearizable. */
Test(lincheck, corrupted_generated_histories_are_violations)
{
    int corrupted = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        struct gen g;
        generate(&g, seed, 2 + (int)(seed % 4), 1 + (int)(seed % 2), 120);
        for (size_t i = 0; i < g.n; i++) {
            struct lin_op *rd = &g.ops[i];
            if (rd->kind != LIN_GET || rd->response == P)
                continue;
            /* Find a put on the same key whose value is not what the read saw, completed
             * before the read began and followed by another completed write before the read. */
            const struct lin_op *stale = NULL;
            for (size_t j = 0; j < g.n; j++) {
                const struct lin_op *w = &g.ops[j];
                if (w->key != rd->key || w->kind != LIN_PUT || w->response >= rd->invoke)
                    continue;
                for (size_t k = 0; k < g.n; k++) {
                    const struct lin_op *w2 = &g.ops[k];
                    if (w2->key == rd->key && w2->kind == LIN_PUT && w2->invoke > w->response &&
                        w2->response < rd->invoke)
                        stale = w;
                }
            }
            if (stale == NULL)
                continue;
            const char *saved = rd->value;
            uint32_t saved_len = rd->len;
            rd->value = stale->value;
            rd->len = stale->len;
            cr_assert_eq(lin_check(g.ops, g.n, 0, NULL), LIN_VIOLATION, "seed %llu op %zu",
                         (unsigned long long)seed, i);
            rd->value = saved;
            rd->len = saved_len;
            corrupted++;
            break;
        }
        gen_free(&g);
    }
    cr_assert_gt(corrupted, 50);
}

Test(lincheck, long_single_key_history_is_fast)
{
    struct gen g;
    generate(&g, 42, 6, 1, 3000);
    struct lin_report rep;
    cr_assert_eq(lin_check(g.ops, g.n, 2000000, &rep), LIN_OK);
    cr_assert_geq(rep.max_key_ops, 2990); /* less the reads cut off */
    gen_free(&g);
}

Test(lincheck, search_budget_is_reported)
{
    /* Many concurrent pending writes and a read that no order explains. */
    static char vals[6][4];
    struct lin_op h[7];
    for (int i = 0; i < 6; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%c", 'a' + i);
        h[i] = app(0, vals[i], (uint64_t)i + 1, P);
    }
    h[6] = get(0, "zz", 20, 21);
    cr_assert_eq(lin_check(h, N(h), 100, NULL), LIN_GAVE_UP);
    cr_assert_eq(lin_check(h, N(h), 0, NULL), LIN_VIOLATION);
}
