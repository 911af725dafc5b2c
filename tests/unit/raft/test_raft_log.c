/* The core's in-memory log ring (raft/log.h, internal): wrap-around, truncation, compaction,
 * reset, and the term searches used by fast backtracking. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "raft/log.h"

static void push(struct raft__log *l, raft_term term)
{
    cr_assert_eq(raft__log_reserve(l, 1), 0);
    struct raft_entry e = {.term = term, .index = raft__log_last(l) + 1, .len = 1};
    e.data = malloc(1);
    raft__log_push(l, &e);
}

Test(log, ring_wraps_and_keeps_order)
{
    struct raft__log l;
    struct raft__trash t = {0};
    raft__log_init(&l, 0, 0);
    for (int i = 1; i <= 50; i++) {
        push(&l, 1);
    }
    raft__log_compact(&l, 40, &t);
    cr_assert_eq(raft__log_first(&l), 41);
    for (int i = 51; i <= 300; i++) {
        push(&l, (raft_term)(i / 100 + 1));
    }
    cr_assert_eq(raft__log_last(&l), 300);
    for (raft_index i = 41; i <= 300; i++) {
        cr_assert_eq(raft__log_get(&l, i)->index, i);
    }
    raft_term term;
    cr_assert(raft__log_term(&l, 40, &term), "the entry before the first is known");
    cr_assert_eq(term, 1);
    cr_assert_not(raft__log_term(&l, 39, &term));
    cr_assert(raft__log_term(&l, 0, &term));
    cr_assert_eq(term, 0);
    cr_assert_null(raft__log_get(&l, 301));
    raft__log_truncate(&l, 250, &t);
    cr_assert_eq(raft__log_last(&l), 249);
    cr_assert_eq(raft__log_last_term(&l), 3);
    raft__log_reset(&l, 1000, 9, &t);
    cr_assert_eq(raft__log_first(&l), 1001);
    cr_assert_eq(raft__log_last(&l), 1000);
    cr_assert_eq(raft__log_last_term(&l), 9);
    push(&l, 9);
    cr_assert_eq(raft__log_get(&l, 1001)->index, 1001);
    raft__trash_close(&t);
    raft__log_close(&l);
}

Test(log, term_searches)
{
    struct raft__log l;
    raft__log_init(&l, 0, 0);
    /* terms: 1..10 -> 1, 11..20 -> 3, 21..30 -> 4 */
    for (int i = 1; i <= 30; i++) {
        push(&l, i <= 10 ? 1 : i <= 20 ? 3 : 4);
    }
    cr_assert_eq(raft__log_first_at_least(&l, 3, 1, 30), 11);
    cr_assert_eq(raft__log_first_at_least(&l, 3, 15, 30), 15);
    cr_assert_eq(raft__log_first_at_least(&l, 2, 1, 30), 11);
    cr_assert_eq(raft__log_first_at_least(&l, 5, 1, 30), 31);
    raft_index j;
    cr_assert(raft__log_last_of_term(&l, 3, 30, &j));
    cr_assert_eq(j, 20);
    cr_assert(raft__log_last_of_term(&l, 3, 15, &j));
    cr_assert_eq(j, 15);
    cr_assert_not(raft__log_last_of_term(&l, 2, 30, &j), "no entry of term 2");
    cr_assert(raft__log_last_of_term(&l, 4, 100, &j));
    cr_assert_eq(j, 30);
    raft__log_close(&l);
}
