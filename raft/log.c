/* The in-memory Raft log (see log.h). */
#include "raft/log.h"

#include <stdlib.h>
#include <string.h>

void raft__trash_put(struct raft__trash *t, void *p)
{
    if (p == NULL) {
        return;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        void **np = realloc(t->p, cap * sizeof *np);
        if (np == NULL) {
            /* Nothing handed out in this step points at log data that is being dropped (the
             * leader never truncates; entries are dropped before messages are built), so
             * freeing now is still correct, only less defensive. */
            free(p);
            return;
        }
        t->p = np;
        t->cap = cap;
    }
    t->p[t->n++] = p;
}

void raft__trash_empty(struct raft__trash *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->p[i]);
    }
    t->n = 0;
}

void raft__trash_close(struct raft__trash *t)
{
    raft__trash_empty(t);
    free(t->p);
    t->p = NULL;
    t->cap = 0;
}

static struct raft_entry *slot(const struct raft__log *l, uint64_t pos)
{
    return &l->ring[(l->head + pos) & (l->cap - 1)];
}

void raft__log_init(struct raft__log *l, raft_index prev_index, raft_term prev_term)
{
    memset(l, 0, sizeof *l);
    l->prev_index = prev_index;
    l->prev_term = prev_term;
}

void raft__log_close(struct raft__log *l)
{
    for (uint64_t i = 0; i < l->n; i++) {
        free((void *)slot(l, i)->data);
    }
    free(l->ring);
    memset(l, 0, sizeof *l);
}

const struct raft_entry *raft__log_get(const struct raft__log *l, raft_index index)
{
    if (index <= l->prev_index || index > l->prev_index + l->n) {
        return NULL;
    }
    return slot(l, index - l->prev_index - 1);
}

bool raft__log_term(const struct raft__log *l, raft_index index, raft_term *term)
{
    if (index == 0) {
        *term = 0;
        return true;
    }
    if (index == l->prev_index) {
        *term = l->prev_term;
        return true;
    }
    const struct raft_entry *e = raft__log_get(l, index);
    if (e == NULL) {
        return false;
    }
    *term = e->term;
    return true;
}

raft_term raft__log_last_term(const struct raft__log *l)
{
    return l->n ? slot(l, l->n - 1)->term : l->prev_term;
}

int raft__log_reserve(struct raft__log *l, uint64_t more)
{
    if (l->n + more <= l->cap) {
        return 0;
    }
    uint64_t cap = l->cap ? l->cap : 64;
    while (cap < l->n + more) {
        cap *= 2;
    }
    struct raft_entry *ring = malloc(cap * sizeof *ring);
    if (ring == NULL) {
        return RAFT_E_NOMEM;
    }
    for (uint64_t i = 0; i < l->n; i++) {
        ring[i] = *slot(l, i);
    }
    free(l->ring);
    l->ring = ring;
    l->cap = cap;
    l->head = 0;
    return 0;
}

void raft__log_push(struct raft__log *l, const struct raft_entry *e)
{
    l->n++;
    *slot(l, l->n - 1) = *e;
}

void raft__log_truncate(struct raft__log *l, raft_index from, struct raft__trash *t)
{
    while (l->n > 0 && l->prev_index + l->n >= from) {
        raft__trash_put(t, (void *)slot(l, l->n - 1)->data);
        l->n--;
    }
}

void raft__log_compact(struct raft__log *l, raft_index upto, struct raft__trash *t)
{
    while (l->n > 0 && l->prev_index < upto) {
        struct raft_entry *e = slot(l, 0);
        l->prev_term = e->term;
        raft__trash_put(t, (void *)e->data);
        l->head = (l->head + 1) & (l->cap - 1);
        l->n--;
        l->prev_index++;
    }
}

void raft__log_reset(struct raft__log *l, raft_index index, raft_term term, struct raft__trash *t)
{
    raft__log_truncate(l, 0, t);
    l->head = 0;
    l->prev_index = index;
    l->prev_term = term;
}

raft_index raft__log_first_at_least(const struct raft__log *l, raft_term term, raft_index lo,
                                    raft_index hi)
{
    raft_index a = lo, b = hi + 1; /* the answer is in [a, b] */
    while (a < b) {
        raft_index mid = a + (b - a) / 2;
        if (raft__log_get(l, mid)->term >= term) {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    return a;
}

bool raft__log_last_of_term(const struct raft__log *l, raft_term term, raft_index hi,
                            raft_index *out)
{
    raft_index first = raft__log_first(l);
    if (hi > raft__log_last(l)) {
        hi = raft__log_last(l);
    }
    if (hi < first) {
        return false;
    }
    /* The first index whose term exceeds term; the one before it is the candidate. */
    raft_index i = raft__log_first_at_least(l, term + 1, first, hi);
    if (i == first) {
        return false;
    }
    if (raft__log_get(l, i - 1)->term != term) {
        return false;
    }
    *out = i - 1;
    return true;
}
