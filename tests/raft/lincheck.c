/* Linearizability checking of key-value histories: Wing & Gong's backtracking search over the
 * history as a list of call/return entries, pruned with Lowe's cache of (linearized set, state)
 * pairs already explored, one key at a time. */
#include "tests/raft/lincheck.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- A bump allocator: everything of one key's search is freed at once ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    unsigned char mem[];
};

struct arena {
    struct arena_chunk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->head == NULL || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        struct arena_chunk *c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = a->head->mem + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(struct arena *a)
{
    while (a->head != NULL) {
        struct arena_chunk *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ---- Interned register values: equal values share one pointer ---- */

struct state {
    uint64_t hash;
    uint32_t len;
    char bytes[];
};

struct state_set {
    const struct state **slots;
    size_t cap, n;
};

static int set_grow(struct state_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 256;
    const struct state **slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        const struct state *st = s->slots[i];
        if (st == NULL)
            continue;
        size_t j = st->hash & (cap - 1);
        while (slots[j] != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = st;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

/* The interned state of a . b (b may be empty); NULL when out of memory. */
static const struct state *intern(struct state_set *s, struct arena *a, const char *pa, size_t la,
                                  const char *pb, size_t lb)
{
    if ((s->n + 1) * 2 > s->cap && set_grow(s) != 0)
        return NULL;
    /* Hash the concatenation without building it first. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < la; i++) {
        h ^= (unsigned char)pa[i];
        h *= 0x100000001b3ULL;
    }
    for (size_t i = 0; i < lb; i++) {
        h ^= (unsigned char)pb[i];
        h *= 0x100000001b3ULL;
    }
    h = mix64(h ^ (la + lb));
    size_t j = h & (s->cap - 1);
    for (; s->slots[j] != NULL; j = (j + 1) & (s->cap - 1)) {
        const struct state *st = s->slots[j];
        if (st->hash == h && st->len == la + lb && memcmp(st->bytes, pa, la) == 0 &&
            memcmp(st->bytes + la, pb, lb) == 0)
            return st;
    }
    struct state *st = arena_alloc(a, sizeof(*st) + la + lb);
    if (st == NULL)
        return NULL;
    st->hash = h;
    st->len = (uint32_t)(la + lb);
    if (la > 0)
        memcpy(st->bytes, pa, la);
    if (lb > 0)
        memcpy(st->bytes + la, pb, lb);
    s->slots[j] = st;
    s->n++;
    return st;
}

/* ---- Lowe's cache: (set of linearized operations, state) pairs already explored ---- */

struct cache_entry {
    uint64_t hash;
    const struct state *st;
    uint64_t *bits;
};

struct cache {
    struct cache_entry *slots;
    size_t cap, n, words;
};

static int cache_grow(struct cache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 1024;
    struct cache_entry *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i].bits == NULL)
            continue;
        size_t j = c->slots[i].hash & (cap - 1);
        while (slots[j].bits != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return 0;
}

/* Adds (bits, st) unless present. Returns 1 when added, 0 when already there, -1 on NOMEM. */
static int cache_add(struct cache *c, struct arena *a, const uint64_t *bits, const struct state *st)
{
    if ((c->n + 1) * 2 > c->cap && cache_grow(c) != 0)
        return -1;
    uint64_t h = st->hash;
    for (size_t w = 0; w < c->words; w++)
        h = mix64(h ^ bits[w]);
    size_t j = h & (c->cap - 1);
    for (; c->slots[j].bits != NULL; j = (j + 1) & (c->cap - 1)) {
        struct cache_entry *e = &c->slots[j];
        if (e->hash == h && e->st == st && memcmp(e->bits, bits, c->words * 8) == 0)
            return 0;
    }
    uint64_t *copy = arena_alloc(a, c->words * 8);
    if (copy == NULL)
        return -1;
    memcpy(copy, bits, c->words * 8);
    c->slots[j] = (struct cache_entry){.hash = h, .st = st, .bits = copy};
    c->n++;
    return 1;
}

/* ---- The search ---- */

struct entry {
    uint64_t time;
    bool ret;
    uint32_t op;         /* index into the key's operations */
    struct entry *match; /* call <-> return */
    struct entry *prev, *next;
};

static int entry_cmp(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if (a->ret != b->ret)
        return a->ret ? 1 : -1; /* a call at the same instant comes first: more permissive */
    return a->op < b->op ? -1 : a->op > b->op;
}

static void lift(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    struct entry *m = e->match;
    m->prev->next = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
}

static void unlift(struct entry *e)
{
    struct entry *m = e->match;
    m->prev->next = m;
    if (m->next != NULL)
        m->next->prev = m;
    e->prev->next = e;
    e->next->prev = e;
}

struct frame {
    struct entry *call;
    const struct state *st; /* the state before the call was linearized */
};

/* Applies op to st: returns the new state, or NULL with *ok false when a get disagrees (and NULL
 * with *ok true when out of memory). */
static const struct state *apply(struct state_set *set, struct arena *a, const struct state *st,
                                 const struct lin_op *op, bool *ok)
{
    *ok = true;
    switch (op->kind) {
    case LIN_PUT:
        return intern(set, a, op->value, op->len, "", 0);
    case LIN_APPEND:
        return intern(set, a, st->bytes, st->len, op->value, op->len);
    default:
        if (st->len == op->len && memcmp(st->bytes, op->value, op->len) == 0)
            return st;
        *ok = false;
        return NULL;
    }
}

/* Checks one key's operations (pending gets already left out). */
static int check_key(const struct lin_op *const *ops, size_t n, uint64_t max_states,
                     uint64_t *states)
{
    int rc = LIN_NOMEM;
    struct arena a = {0};
    struct state_set set = {0};
    struct cache cache = {.words = (n + 63) / 64};
    struct entry *ents = calloc(2 * n + 1, sizeof(*ents));
    struct frame *stack = calloc(n + 1, sizeof(*stack));
    uint64_t *bits = calloc(cache.words + 1, sizeof(*bits));
    uint32_t *pos = calloc(n + 1, sizeof(*pos));
    if (ents == NULL || stack == NULL || bits == NULL || pos == NULL)
        goto out;

    for (size_t i = 0; i < n; i++) {
        ents[2 * i] = (struct entry){.time = ops[i]->invoke, .ret = false, .op = (uint32_t)i};
        ents[2 * i + 1] = (struct entry){.time = ops[i]->response, .ret = true, .op = (uint32_t)i};
    }
    qsort(ents, 2 * n, sizeof(*ents), entry_cmp);
    /* Pair calls and returns, and link the sorted entries behind a head sentinel. */
    struct entry *head = &ents[2 * n];
    *head = (struct entry){0};
    for (size_t i = 0; i < 2 * n; i++) {
        if (!ents[i].ret)
            pos[ents[i].op] = (uint32_t)i;
    }
    for (size_t i = 0; i < 2 * n; i++) {
        if (ents[i].ret) {
            ents[i].match = &ents[pos[ents[i].op]];
            ents[pos[ents[i].op]].match = &ents[i];
        }
        ents[i].prev = i == 0 ? head : &ents[i - 1];
        ents[i].next = i + 1 == 2 * n ? NULL : &ents[i + 1];
    }
    head->next = n > 0 ? &ents[0] : NULL;

    const struct state *st = intern(&set, &a, "", 0, "", 0);
    if (st == NULL)
        goto out;
    size_t depth = 0;
    struct entry *e = head->next;
    while (head->next != NULL) {
        if (max_states != 0 && *states > max_states) {
            rc = LIN_GAVE_UP;
            goto out;
        }
        if (!e->ret) {
            bool ok;
            const struct lin_op *op = ops[e->op];
            const struct state *next = apply(&set, &a, st, op, &ok);
            if (next == NULL && ok)
                goto out;
            if (ok) {
                bits[e->op / 64] |= 1ULL << (e->op % 64);
                int added = cache_add(&cache, &a, bits, next);
                if (added < 0)
                    goto out;
                if (added) {
                    (*states)++;
                    stack[depth++] = (struct frame){.call = e, .st = st};
                    st = next;
                    lift(e);
                    e = head->next;
                    continue;
                }
                bits[e->op / 64] &= ~(1ULL << (e->op % 64));
            }
            e = e->next;
        } else {
            /* An operation returned before it could be linearized: undo the latest choice. */
            if (depth == 0) {
                rc = LIN_VIOLATION;
                goto out;
            }
            struct frame f = stack[--depth];
            bits[f.call->op / 64] &= ~(1ULL << (f.call->op % 64));
            st = f.st;
            unlift(f.call);
            e = f.call->next;
        }
    }
    rc = LIN_OK;
out:
    free(ents);
    free(stack);
    free(bits);
    free(pos);
    free(set.slots);
    free(cache.slots);
    arena_free(&a);
    return rc;
}

static int op_key_cmp(const void *pa, const void *pb)
{
    const struct lin_op *a = *(const struct lin_op *const *)pa;
    const struct lin_op *b = *(const struct lin_op *const *)pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    if (a->invoke != b->invoke)
        return a->invoke < b->invoke ? -1 : 1;
    return 0;
}

int lin_check(const struct lin_op *ops, size_t n, uint64_t max_states, struct lin_report *report)
{
    struct lin_report dummy;
    if (report == NULL)
        report = &dummy;
    *report = (struct lin_report){0};
    const struct lin_op **by_key = calloc(n + 1, sizeof(*by_key));
    if (by_key == NULL)
        return LIN_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == LIN_GET && ops[i].response == LIN_PENDING)
            continue;
        by_key[m++] = &ops[i];
    }
    qsort(by_key, m, sizeof(*by_key), op_key_cmp);
    int rc = LIN_OK;
    for (size_t lo = 0; lo < m && rc == LIN_OK;) {
        size_t hi = lo;
        while (hi < m && by_key[hi]->key == by_key[lo]->key)
            hi++;
        if (hi - lo > report->max_key_ops)
            report->max_key_ops = hi - lo;
        report->key = by_key[lo]->key;
        uint64_t states = 0;
        rc = check_key(by_key + lo, hi - lo, max_states, &states);
        report->states += states;
        lo = hi;
    }
    free(by_key);
    return rc;
}
