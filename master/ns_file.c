/* Regular files of the namespace: each an ordered array of extents, byte ranges of immutable
 * blocks. Replacing a range and cutting the tail keep the array sorted and non-overlapping, and
 * report the blocks that no extent references any more (a block is only ever shared between
 * extents of one inode, so checking that inode's extents suffices). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_internal.h"
#include "master/ns_perm.h"

int ns__vec_reserve(struct ns_u64vec *v, size_t more)
{
    if (v->n + more <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap * 2 : 16;
    while (cap < v->n + more)
        cap *= 2;
    uint64_t *p = realloc(v->v, cap * sizeof(uint64_t));
    if (p == NULL)
        return CM_E_NOMEM;
    v->v = p;
    v->cap = cap;
    return 0;
}

void ns__vec_free(struct ns_u64vec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* freed->v[start..] holds candidate block ids: keeps, once each, those no extent references. */
static void keep_unreferenced(const struct ns_extents *x, struct ns_u64vec *freed, size_t start)
{
    size_t m = freed->n - start;
    if (m == 0)
        return;
    uint64_t *c = freed->v + start;
    qsort(c, m, sizeof(uint64_t), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (k == 0 || c[k - 1] != c[i])
            c[k++] = c[i];
    m = k;
    for (uint32_t i = 0; x != NULL && i < x->n; i++) {
        uint64_t *hit = bsearch(&x->e[i].block.id, c, m, sizeof(uint64_t), cmp_u64);
        if (hit != NULL)
            *hit = 0; /* still referenced (block id 0 is never allocated) */
    }
    k = 0;
    for (size_t i = 0; i < m; i++)
        if (c[i] != 0)
            c[k++] = c[i];
    freed->n = start + k;
}

/* The first extent that ends after off. */
static uint32_t first_ending_after(const struct ns_extents *x, uint64_t off)
{
    uint32_t lo = 0, hi = x->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (x->e[mid].off + x->e[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ns__file_cut(struct ns_inode *in, uint64_t size, struct ns_u64map *refs,
                 struct ns_u64vec *freed)
{
    struct ns_extents *x = in->u.ext;
    if (x == NULL)
        return 0;
    uint32_t i = first_ending_after(x, size);
    size_t start = freed->n;
    if (i < x->n && x->e[i].off < size) {
        x->e[i].len = (uint32_t)(size - x->e[i].off); /* the same block stays referenced */
        i++;
    }
    for (uint32_t k = i; k < x->n; k++) {
        freed->v[freed->n++] = x->e[k].block.id;
        ns__ref_dec(refs, x->e[k].block.id);
    }
    x->n = i;
    keep_unreferenced(x, freed, start);
    if (x->n == 0) {
        free(x);
        in->u.ext = NULL;
    }
    return 0;
}

int ns__file_replace(struct ns_inode *in, uint64_t off, uint64_t len, const struct ns_block *blocks,
                     uint32_t n, struct ns_u64map *refs, struct ns_u64vec *freed)
{
    if (len == 0)
        return 0;
    int rc = ns__map_reserve(refs, (size_t)n + 2);
    if (rc != 0)
        return rc;
    struct ns_extents *x = in->u.ext;
    uint64_t end = off + len;
    uint32_t have = x ? x->n : 0, i0 = 0, i1 = 0;
    struct ns_extent left, right;
    bool has_left = false, has_right = false;
    if (x != NULL) {
        i0 = first_ending_after(x, off);
        i1 = i0;
        while (i1 < x->n && x->e[i1].off < end)
            i1++;
        if (i0 < i1 && x->e[i0].off < off) {
            left = x->e[i0];
            left.len = (uint32_t)(off - left.off);
            has_left = true;
        }
        if (i0 < i1 && x->e[i1 - 1].off + x->e[i1 - 1].len > end) {
            right = x->e[i1 - 1];
            uint64_t skip = end - right.off;
            right.off = end;
            right.block_off += (uint32_t)skip;
            right.len -= (uint32_t)skip;
            has_right = true;
        }
    }
    uint32_t seg = (uint32_t)has_left + n + (uint32_t)has_right;
    uint64_t total = (uint64_t)have - (i1 - i0) + seg;
    if (total > NS_MAX_EXTENTS)
        return CM_E_FBIG;
    if (x == NULL || total > x->cap) {
        uint64_t cap = x == NULL ? total : x->cap + x->cap / 2;
        if (cap < total)
            cap = total;
        struct ns_extents *nx = realloc(x, sizeof(*nx) + cap * sizeof(struct ns_extent));
        if (nx == NULL)
            return CM_E_NOMEM;
        if (x == NULL)
            nx->n = 0;
        nx->cap = (uint32_t)cap;
        x = in->u.ext = nx;
    }
    size_t start = freed->n;
    for (uint32_t k = i0; k < i1; k++) {
        freed->v[freed->n++] = x->e[k].block.id;
        ns__ref_dec(refs, x->e[k].block.id);
    }
    memmove(&x->e[i0 + seg], &x->e[i1], (size_t)(have - i1) * sizeof(struct ns_extent));
    uint32_t w = i0;
    if (has_left) {
        x->e[w++] = left;
        ns__ref_inc(refs, left.block.id);
    }
    uint64_t cur = off;
    for (uint32_t k = 0; k < n; k++) {
        struct ns_extent *e = &x->e[w++];
        memset(e, 0, sizeof(*e));
        e->off = cur;
        e->len = blocks[k].len;
        e->block.id = blocks[k].id;
        e->block.len = blocks[k].len;
        e->block.crc32c = blocks[k].crc32c;
        e->block.n_replicas = blocks[k].n_replicas;
        memcpy(e->block.replicas, blocks[k].replicas,
               blocks[k].n_replicas * sizeof(blocks[k].replicas[0]));
        cur += blocks[k].len;
        ns__ref_inc(refs, e->block.id);
    }
    if (has_right) {
        x->e[w++] = right;
        ns__ref_inc(refs, right.block.id);
    }
    x->n = (uint32_t)total;
    keep_unreferenced(x, freed, start);
    return 0;
}

int ns_get_blocks(struct ns *ns, const struct ns_cred *cred, uint64_t ino, uint64_t gen,
                  uint64_t off, uint64_t len, uint32_t max, struct ns_blocklist *out)
{
    struct ns_inode *in;
    memset(out, 0, sizeof(*out));
    int rc = ns__inode_get(ns, ino, gen, &in);
    if (rc != 0)
        return rc;
    if (S_ISDIR(in->mode))
        return CM_E_ISDIR;
    if (!S_ISREG(in->mode) || max == 0)
        return CM_E_INVAL;
    if ((rc = ns_perm_access(cred, in->mode, in->uid, in->gid, NS_MAY_READ)) != 0)
        return rc;
    out->size = in->size;
    const struct ns_extents *x = in->u.ext;
    uint64_t end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    if (x == NULL || len == 0)
        return 0;
    uint32_t i = first_ending_after(x, off), j = i;
    while (j < x->n && x->e[j].off < end && j - i < max)
        j++;
    out->more = j < x->n && x->e[j].off < end;
    if (j == i)
        return 0;
    out->ext = malloc((size_t)(j - i) * sizeof(struct ns_extent));
    if (out->ext == NULL)
        return CM_E_NOMEM;
    memcpy(out->ext, &x->e[i], (size_t)(j - i) * sizeof(struct ns_extent));
    out->n = j - i;
    return 0;
}

void ns_blocklist_free(struct ns_blocklist *b)
{
    if (b == NULL)
        return;
    free(b->ext);
    memset(b, 0, sizeof(*b));
}
