/* The inode table of the namespace: slots indexed by inode number, a LIFO list of free slots
 * (reused with the next generation), and the per-type counters. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_internal.h"

int ns__inode_get(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_inode **out)
{
    if (ino == 0 || ino >= ns->n_slots)
        return CM_E_STALE;
    struct ns_inode *in = &ns->inodes[ino];
    if (in->mode == 0 || in->gen != gen)
        return CM_E_STALE;
    *out = in;
    return 0;
}

int ns__get_dir(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_inode **out)
{
    int rc = ns__inode_get(ns, ino, gen, out);
    if (rc == 0 && !S_ISDIR((*out)->mode))
        rc = CM_E_NOTDIR;
    return rc;
}

int ns__inode_reserve(struct ns *ns)
{
    uint64_t used = (uint64_t)ns->n_slots - 1 - ns->n_free;
    if (used >= ns->cfg.max_inodes)
        return CM_E_NOSPC;
    if (ns->n_free > 0 || ns->n_slots < ns->cap_slots)
        return 0;
    if (ns->n_slots == UINT32_MAX)
        return CM_E_NOSPC;
    uint64_t cap = ns->cap_slots ? (uint64_t)ns->cap_slots * 2 : 64;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    struct ns_inode *t = realloc(ns->inodes, cap * sizeof(*t));
    if (t == NULL)
        return CM_E_NOMEM;
    ns->inodes = t;
    ns->cap_slots = (uint32_t)cap;
    return 0;
}

static void count(struct ns *ns, uint32_t mode, int delta)
{
    if (S_ISDIR(mode))
        ns->n_dirs += (uint64_t)(int64_t)delta;
    else if (S_ISLNK(mode))
        ns->n_symlinks += (uint64_t)(int64_t)delta;
    else
        ns->n_files += (uint64_t)(int64_t)delta;
}

uint32_t ns__inode_alloc(struct ns *ns, uint32_t mode, uint32_t uid, uint32_t gid, int64_t now)
{
    uint32_t ino, gen;
    if (ns->free_head != 0) {
        ino = ns->free_head;
        ns->free_head = ns->inodes[ino].aux;
        ns->n_free--;
        gen = ns->inodes[ino].gen + 1;
        if (gen == 0)
            gen = 1;
    } else {
        ino = ns->n_slots++;
        gen = 1;
    }
    struct ns_inode *in = &ns->inodes[ino];
    memset(in, 0, sizeof(*in));
    in->mode = mode;
    in->nlink = 1;
    in->uid = uid;
    in->gid = gid;
    in->gen = gen;
    in->atime = in->mtime = in->ctime = now;
    count(ns, mode, 1);
    return ino;
}

size_t ns__file_block_count(const struct ns_inode *in)
{
    return S_ISREG(in->mode) && in->u.ext != NULL ? in->u.ext->n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void ns__inode_release(struct ns *ns, uint32_t ino, struct ns_u64vec *freed)
{
    struct ns_inode *in = &ns->inodes[ino];
    if (S_ISDIR(in->mode)) {
        ns__dir_free(in->u.dir);
    } else if (S_ISLNK(in->mode)) {
        free(in->u.target);
    } else if (in->u.ext != NULL) {
        /* Extents of one block may be several (a split); list each block once. */
        size_t start = freed->n;
        for (uint32_t i = 0; i < in->u.ext->n; i++) {
            freed->v[freed->n++] = in->u.ext->e[i].block.id;
            ns__ref_dec(&ns->refs, in->u.ext->e[i].block.id);
        }
        qsort(freed->v + start, freed->n - start, sizeof(uint64_t), cmp_u64);
        size_t k = start;
        for (size_t i = start; i < freed->n; i++)
            if (k == start || freed->v[k - 1] != freed->v[i])
                freed->v[k++] = freed->v[i];
        freed->n = k;
        free(in->u.ext);
    }
    count(ns, in->mode, -1);
    uint32_t gen = in->gen;
    memset(in, 0, sizeof(*in));
    in->gen = gen;
    in->aux = ns->free_head;
    ns->free_head = ino;
    ns->n_free++;
}

void ns__attr(const struct ns *ns, uint32_t ino, struct ns_attr *out)
{
    const struct ns_inode *in = &ns->inodes[ino];
    out->ino = ino;
    out->gen = in->gen;
    out->mode = in->mode;
    out->nlink = in->nlink;
    out->uid = in->uid;
    out->gid = in->gid;
    out->size = in->size;
    out->atime_ns = in->atime;
    out->mtime_ns = in->mtime;
    out->ctime_ns = in->ctime;
}

void ns__inodes_clear(struct ns *ns)
{
    for (uint32_t i = 1; i < ns->n_slots; i++) {
        struct ns_inode *in = &ns->inodes[i];
        if (in->mode == 0)
            continue;
        if (S_ISDIR(in->mode))
            ns__dir_free(in->u.dir);
        else if (S_ISLNK(in->mode))
            free(in->u.target);
        else
            free(in->u.ext);
    }
    free(ns->inodes);
    ns->inodes = NULL;
    ns->n_slots = ns->cap_slots = 0;
    ns->free_head = ns->n_free = 0;
    ns->n_files = ns->n_dirs = ns->n_symlinks = 0;
}
