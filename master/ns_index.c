/* The namespace's block-id tables: a u64 -> u32 hash table, the block index built on it (block
 * id -> extents of live files referencing it) and the pending garbage set. Part of the state
 * machine: no I/O, and every result depends only on the sequence of calls. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_blockscan.h"
#include "master/ns_internal.h"

/* ---- Hash table ---- */

static size_t home(uint64_t k, size_t mask)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k & mask;
}

static void raw_put(struct ns_u64map *m, uint64_t key, uint32_t val)
{
    size_t mask = m->cap - 1, i = home(key, mask);
    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & mask;
    if (m->keys[i] == 0) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
}

int ns__map_reserve(struct ns_u64map *m, size_t more)
{
    size_t need = m->n + more;
    if (need * 4 <= m->cap * 3)
        return 0;
    size_t cap = m->cap ? m->cap * 2 : 64;
    while (need * 4 > cap * 3)
        cap *= 2;
    struct ns_u64map t = {
        .keys = calloc(cap, sizeof(uint64_t)), .vals = malloc(cap * sizeof(uint32_t)), .cap = cap};
    if (t.keys == NULL || t.vals == NULL) {
        free(t.keys);
        free(t.vals);
        return CM_E_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0)
            raw_put(&t, m->keys[i], m->vals[i]);
    ns__map_free(m);
    *m = t;
    return 0;
}

uint32_t *ns__map_get(const struct ns_u64map *m, uint64_t key)
{
    if (m->cap == 0 || key == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = home(key, mask); m->keys[i] != 0; i = (i + 1) & mask)
        if (m->keys[i] == key)
            return &m->vals[i];
    return NULL;
}

void ns__map_put(struct ns_u64map *m, uint64_t key, uint32_t val)
{
    raw_put(m, key, val);
}

void ns__map_del(struct ns_u64map *m, uint64_t key)
{
    uint32_t *v = ns__map_get(m, key);
    if (v == NULL)
        return;
    size_t mask = m->cap - 1, i = (size_t)(v - m->vals);
    m->keys[i] = 0;
    m->n--;
    /* Backward shift: move up every later key of the run whose home is not between i and it. */
    for (size_t j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
        size_t h = home(m->keys[j], mask);
        if (((i - h) & mask) < ((j - h) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = 0;
            i = j;
        }
    }
}

void ns__map_free(struct ns_u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- Block index ---- */

void ns__ref_inc(struct ns_u64map *refs, uint64_t id)
{
    uint32_t *v = ns__map_get(refs, id);
    if (v != NULL)
        (*v)++;
    else
        ns__map_put(refs, id, 1);
}

void ns__ref_dec(struct ns_u64map *refs, uint64_t id)
{
    uint32_t *v = ns__map_get(refs, id);
    if (v != NULL && --*v == 0)
        ns__map_del(refs, id);
}

int ns__refs_rebuild(struct ns *ns)
{
    ns__map_free(&ns->refs);
    size_t total = 0;
    for (uint32_t i = 1; i < ns->n_slots; i++)
        total += ns__file_block_count(&ns->inodes[i]);
    int rc = ns__map_reserve(&ns->refs, total);
    if (rc != 0)
        return rc;
    for (uint32_t i = 1; i < ns->n_slots; i++) {
        const struct ns_inode *in = &ns->inodes[i];
        for (size_t k = 0; k < ns__file_block_count(in); k++)
            ns__ref_inc(&ns->refs, in->u.ext->e[k].block.id);
    }
    return 0;
}

uint32_t ns_block_refs(struct ns *ns, uint64_t id)
{
    const uint32_t *v = ns__map_get(&ns->refs, id);
    return v ? *v : 0;
}

uint64_t ns_blocks_referenced(struct ns *ns)
{
    return ns->refs.n;
}

/* ---- Pending garbage ---- */

static void gc_compact(struct ns_gc *g)
{
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (g->ids[i] == 0)
            continue;
        g->ids[k] = g->ids[i];
        *ns__map_get(&g->pos, g->ids[k]) = (uint32_t)k;
        k++;
    }
    g->n = k;
}

int ns__gc_reserve(struct ns_gc *g, size_t n)
{
    if (g->n + n > g->cap && g->n > g->live)
        gc_compact(g);
    if (g->n + n > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        while (cap < g->n + n)
            cap *= 2;
        uint64_t *p = realloc(g->ids, cap * sizeof(uint64_t));
        if (p == NULL)
            return CM_E_NOMEM;
        g->ids = p;
        g->cap = cap;
    }
    return ns__map_reserve(&g->pos, n);
}

int ns__gc_push(struct ns_gc *g, const uint64_t *ids, size_t n)
{
    int rc = ns__gc_reserve(g, n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ns__map_get(&g->pos, ids[i]) != NULL)
            continue;
        ns__map_put(&g->pos, ids[i], (uint32_t)g->n);
        g->ids[g->n++] = ids[i];
        g->live++;
    }
    return 0;
}

bool ns__gc_drop(struct ns_gc *g, uint64_t id)
{
    uint32_t *at = ns__map_get(&g->pos, id);
    if (at == NULL)
        return false;
    g->ids[*at] = 0;
    ns__map_del(&g->pos, id);
    g->live--;
    if (g->live == 0)
        g->n = 0;
    else if (g->n > 64 && g->n - g->live > g->live)
        gc_compact(g);
    return true;
}

void ns__gc_free(struct ns_gc *g)
{
    free(g->ids);
    ns__map_free(&g->pos);
    memset(g, 0, sizeof(*g));
}

bool ns_gc_is_pending(struct ns *ns, uint64_t id)
{
    return ns__map_get(&ns->gc.pos, id) != NULL;
}

void ns_gc_pending(struct ns *ns, uint64_t cursor, uint32_t max, uint64_t *ids, uint32_t *n,
                   uint64_t *next)
{
    const struct ns_gc *g = &ns->gc;
    size_t i = cursor < g->n ? (size_t)cursor : 0;
    uint32_t k = 0;
    for (; i < g->n && k < max; i++)
        if (g->ids[i] != 0)
            ids[k++] = g->ids[i];
    *n = k;
    *next = i < g->n ? i : 0;
}

/* ---- For the chunkserver manager ---- */

size_t ns_refs_walk(struct ns *ns, uint64_t *cursor, uint64_t *out, size_t max)
{
    const struct ns_u64map *m = &ns->refs;
    size_t i = *cursor < m->cap ? (size_t)*cursor : m->cap, end = i + max, k = 0;
    if (end > m->cap)
        end = m->cap;
    for (; i < end; i++)
        if (m->keys[i] != 0)
            out[k++] = m->keys[i];
    *cursor = i < m->cap ? i : 0;
    return k;
}

void ns_blocks_classify(struct ns *ns, const uint64_t *held, size_t n, uint64_t orphan_below,
                        uint64_t *refd, size_t *n_refd, uint64_t *del, size_t *n_del,
                        size_t max_del)
{
    size_t r = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = held[i];
        if (ns__map_get(&ns->refs, id) != NULL)
            refd[r++] = id;
        else if (d < max_del && (ns__map_get(&ns->gc.pos, id) != NULL || id < orphan_below))
            del[d++] = id;
    }
    *n_refd = r;
    *n_del = d;
}
