/* The namespace's operations: each command checked completely, in the order Linux checks, before
 * anything changes, then applied (memory is reserved first, so a failure leaves the state as it
 * was). Session handling is namespace.c's. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_internal.h"
#include "master/ns_perm.h"

/* ---- Helpers of the operations ---- */

/* What one command's execution collects. */
struct op {
    struct ns *ns;
    const struct ns_cmd *c;
    const struct ns_cred *cred;
    struct ns_result *r;
    struct ns_u64vec freed;
};

static uint32_t ino_of(const struct ns *ns, const struct ns_inode *in)
{
    return (uint32_t)(in - ns->inodes);
}

static int access_ok(const struct op *o, const struct ns_inode *in, int want)
{
    return ns_perm_access(o->cred, in->mode, in->uid, in->gid, want);
}

/* Room for n freed block ids, both in the result and in the garbage queue. */
static int reserve_freed(struct op *o, size_t n)
{
    int rc = ns__vec_reserve(&o->freed, n);
    return rc ? rc : ns__gc_reserve(&o->ns->gc, o->freed.n + n);
}

static void add_attr(struct op *o, uint32_t ino)
{
    if (o->r->n_attr < NS_RESULT_MAX_ATTR)
        ns__attr(o->ns, ino, &o->r->attr[o->r->n_attr++]);
}

static void touch_dir(struct ns_inode *d, int64_t now)
{
    d->mtime = d->ctime = now;
}

/* Owner and group of a new inode in directory p (BSD group semantics under a setgid
 * directory, which new subdirectories inherit), and the mode Linux gives it. */
static void new_owner(const struct op *o, const struct ns_inode *p, uint32_t *mode, uint32_t *uid,
                      uint32_t *gid)
{
    *uid = o->cred ? o->cred->uid : 0;
    *gid = o->cred ? o->cred->gid : 0;
    if (p->mode & S_ISGID) {
        *gid = p->gid;
        if (S_ISDIR(*mode))
            *mode |= S_ISGID;
        else if ((*mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && o->cred != NULL &&
                 o->cred->uid != 0 && !ns_cred_in_group(o->cred, p->gid))
            *mode &= ~(uint32_t)S_ISGID;
    }
}

/* Is directory a the directory b or one of its ancestors? */
static bool is_ancestor(const struct ns *ns, uint32_t a, uint32_t b)
{
    for (uint64_t steps = 0; steps <= ns->n_dirs; steps++) {
        if (b == a)
            return true;
        if (b == NS_ROOT_INO)
            return false;
        b = ns->inodes[b].u.dir->parent;
    }
    return false;
}

/* Drops one link of inode ino (its entry is removed by the caller); frees it at zero. */
static void drop_link(struct op *o, uint32_t ino)
{
    struct ns_inode *in = &o->ns->inodes[ino];
    if (S_ISDIR(in->mode) || --in->nlink == 0)
        ns__inode_release(o->ns, ino, &o->freed);
    else
        in->ctime = o->c->now_ns;
}

/* The common start of mkdir, create and symlink: parent p searchable, name absent (or *found
 * set when found_ok), parent writable. */
static int prepare_new(struct op *o, struct ns_inode **p, int64_t *found, bool found_ok)
{
    const struct ns_cmd *c = o->c;
    int rc;
    if ((rc = ns__get_dir(o->ns, c->ino, c->gen, p)) != 0 ||
        (rc = access_ok(o, *p, NS_MAY_EXEC)) != 0)
        return rc;
    *found = ns__dir_find((*p)->u.dir, c->name, c->name_len);
    if (*found >= 0)
        return found_ok ? 0 : CM_E_EXIST;
    return access_ok(o, *p, NS_MAY_WRITE | NS_MAY_EXEC);
}

/* Reserves the entry and the inode slot; *p is fetched again (the table may move). */
static int reserve_new(struct op *o, struct ns_inode **p)
{
    uint32_t pino = ino_of(o->ns, *p);
    int rc = ns__dir_reserve((*p)->u.dir, o->c->name_len);
    if (rc == 0)
        rc = ns__inode_reserve(o->ns);
    *p = &o->ns->inodes[pino];
    return rc;
}

static void finish_new(struct op *o, struct ns_inode *p, uint32_t ino)
{
    ns__dir_add(p->u.dir, o->c->name, o->c->name_len, ino);
    touch_dir(p, o->c->now_ns);
    add_attr(o, ino);
    add_attr(o, ino_of(o->ns, p));
}

/* ---- Operations ---- */

static int op_mkdir(struct op *o)
{
    struct ns_inode *p;
    int64_t found;
    struct ns_dir *d = NULL;
    int rc = prepare_new(o, &p, &found, false);
    if (rc != 0)
        return rc;
    if (p->nlink == UINT32_MAX)
        return CM_E_MLINK;
    uint32_t pino = ino_of(o->ns, p);
    if ((rc = reserve_new(o, &p)) != 0 || (rc = ns__dir_new(pino, &d)) != 0)
        return rc;
    uint32_t mode = S_IFDIR | (o->c->mode & 01777), uid, gid;
    new_owner(o, p, &mode, &uid, &gid);
    uint32_t ino = ns__inode_alloc(o->ns, mode, uid, gid, o->c->now_ns);
    p = &o->ns->inodes[pino];
    o->ns->inodes[ino].nlink = 2;
    o->ns->inodes[ino].u.dir = d;
    p->nlink++;
    finish_new(o, p, ino);
    return 0;
}

static int truncate_to(struct op *o, struct ns_inode *in, uint64_t size)
{
    if (size < in->size) {
        int rc = reserve_freed(o, ns__file_block_count(in) + 1);
        if (rc != 0)
            return rc;
        ns__file_cut(in, size, &o->ns->refs, &o->freed);
    }
    in->size = size;
    in->mtime = in->ctime = o->c->now_ns;
    in->mode = ns_perm_kill_priv(o->cred, in->mode);
    return 0;
}

static int op_create(struct op *o)
{
    const struct ns_cmd *c = o->c;
    struct ns_inode *p;
    int64_t found;
    int rc = prepare_new(o, &p, &found, true);
    if (rc != 0)
        return rc;
    if (found >= 0) {
        if (c->flags & NS_CREATE_EXCL)
            return CM_E_EXIST;
        uint32_t ino = p->u.dir->ents[found].ino;
        struct ns_inode *in = &o->ns->inodes[ino];
        if (S_ISDIR(in->mode))
            return CM_E_ISDIR;
        if (!S_ISREG(in->mode))
            return CM_E_EXIST;
        if (c->flags & NS_CREATE_TRUNC) {
            if ((rc = access_ok(o, in, NS_MAY_WRITE)) != 0 || (rc = truncate_to(o, in, 0)) != 0)
                return rc;
        }
        add_attr(o, ino);
        add_attr(o, ino_of(o->ns, p));
        o->r->value = 0;
        return 0;
    }
    if ((rc = reserve_new(o, &p)) != 0)
        return rc;
    uint32_t mode = S_IFREG | (c->mode & 07777), uid, gid, pino = ino_of(o->ns, p);
    new_owner(o, p, &mode, &uid, &gid);
    uint32_t ino = ns__inode_alloc(o->ns, mode, uid, gid, c->now_ns);
    finish_new(o, &o->ns->inodes[pino], ino);
    o->r->value = 1;
    return 0;
}

static int op_symlink(struct op *o)
{
    const struct ns_cmd *c = o->c;
    struct ns_inode *p;
    int64_t found;
    if (c->target_len == 0)
        return CM_E_NOENT;
    int rc = prepare_new(o, &p, &found, false);
    if (rc != 0 || (rc = reserve_new(o, &p)) != 0)
        return rc;
    char *t = malloc(c->target_len + 1);
    if (t == NULL)
        return CM_E_NOMEM;
    memcpy(t, c->target, c->target_len);
    t[c->target_len] = 0;
    uint32_t mode = S_IFLNK | 0777, uid, gid, pino = ino_of(o->ns, p);
    new_owner(o, p, &mode, &uid, &gid);
    uint32_t ino = ns__inode_alloc(o->ns, mode, uid, gid, c->now_ns);
    o->ns->inodes[ino].u.target = t;
    o->ns->inodes[ino].size = c->target_len;
    finish_new(o, &o->ns->inodes[pino], ino);
    return 0;
}

static int op_link(struct op *o)
{
    const struct ns_cmd *c = o->c;
    struct ns_inode *in, *p;
    int rc;
    if ((rc = ns__inode_get(o->ns, c->ino, c->gen, &in)) != 0 ||
        (rc = ns__get_dir(o->ns, c->ino2, c->gen2, &p)) != 0 ||
        (rc = access_ok(o, p, NS_MAY_EXEC)) != 0)
        return rc;
    if (ns__dir_find(p->u.dir, c->name2, c->name2_len) >= 0)
        return CM_E_EXIST;
    if ((rc = access_ok(o, p, NS_MAY_WRITE | NS_MAY_EXEC)) != 0)
        return rc;
    if (S_ISDIR(in->mode))
        return CM_E_PERM;
    if (in->nlink >= NS_LINK_MAX)
        return CM_E_MLINK;
    if ((rc = ns__dir_reserve(p->u.dir, c->name2_len)) != 0)
        return rc;
    in->nlink++;
    in->ctime = c->now_ns;
    ns__dir_add(p->u.dir, c->name2, c->name2_len, ino_of(o->ns, in));
    touch_dir(p, c->now_ns);
    add_attr(o, ino_of(o->ns, in));
    add_attr(o, ino_of(o->ns, p));
    return 0;
}

/* The common part of unlink and rmdir: the entry, its inode and the permission to remove it. */
static int prepare_remove(struct op *o, struct ns_inode **p, int64_t *idx, uint32_t *victim)
{
    const struct ns_cmd *c = o->c;
    int rc;
    if ((rc = ns__get_dir(o->ns, c->ino, c->gen, p)) != 0 ||
        (rc = access_ok(o, *p, NS_MAY_EXEC)) != 0)
        return rc;
    if ((*idx = ns__dir_find((*p)->u.dir, c->name, c->name_len)) < 0)
        return CM_E_NOENT;
    *victim = (*p)->u.dir->ents[*idx].ino;
    const struct ns_inode *v = &o->ns->inodes[*victim];
    if ((rc = access_ok(o, *p, NS_MAY_WRITE | NS_MAY_EXEC)) != 0)
        return rc;
    return ns_perm_sticky(o->cred, (*p)->mode, (*p)->uid, v->uid);
}

static int op_unlink(struct op *o)
{
    struct ns_inode *p;
    int64_t idx;
    uint32_t victim;
    int rc = prepare_remove(o, &p, &idx, &victim);
    if (rc != 0)
        return rc;
    struct ns_inode *v = &o->ns->inodes[victim];
    if (S_ISDIR(v->mode))
        return CM_E_ISDIR;
    if (v->nlink == 1 && (rc = reserve_freed(o, ns__file_block_count(v) + 1)) != 0)
        return rc;
    ns__dir_remove(p->u.dir, (uint32_t)idx);
    drop_link(o, victim);
    touch_dir(p, o->c->now_ns);
    add_attr(o, ino_of(o->ns, p));
    if (o->ns->inodes[victim].mode != 0)
        add_attr(o, victim);
    return 0;
}

static int op_rmdir(struct op *o)
{
    struct ns_inode *p;
    int64_t idx;
    uint32_t victim;
    int rc = prepare_remove(o, &p, &idx, &victim);
    if (rc != 0)
        return rc;
    struct ns_inode *v = &o->ns->inodes[victim];
    if (!S_ISDIR(v->mode))
        return CM_E_NOTDIR;
    if (victim == NS_ROOT_INO)
        return CM_E_BUSY;
    if (v->u.dir->n_live > 0)
        return CM_E_NOTEMPTY;
    ns__dir_remove(p->u.dir, (uint32_t)idx);
    drop_link(o, victim);
    p->nlink--;
    touch_dir(p, o->c->now_ns);
    add_attr(o, ino_of(o->ns, p));
    return 0;
}

/* rename(2) and renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE, checks in the order
 * Linux makes them (do_renameat2, vfs_rename, may_delete). */
static int op_rename(struct op *o)
{
    const struct ns_cmd *c = o->c;
    struct ns *ns = o->ns;
    struct ns_inode *sp, *dp;
    bool exchange = c->flags & NS_RENAME_EXCHANGE;
    int rc;
    if ((rc = ns__get_dir(ns, c->ino, c->gen, &sp)) != 0 ||
        (rc = ns__get_dir(ns, c->ino2, c->gen2, &dp)) != 0 ||
        (rc = access_ok(o, sp, NS_MAY_EXEC)) != 0 || (rc = access_ok(o, dp, NS_MAY_EXEC)) != 0)
        return rc;
    uint32_t spi = ino_of(ns, sp), dpi = ino_of(ns, dp);
    int64_t si = ns__dir_find(sp->u.dir, c->name, c->name_len);
    if (si < 0)
        return CM_E_NOENT;
    int64_t di = ns__dir_find(dp->u.dir, c->name2, c->name2_len);
    uint32_t src = sp->u.dir->ents[si].ino, dst = di >= 0 ? dp->u.dir->ents[di].ino : 0;
    if ((c->flags & NS_RENAME_NOREPLACE) && dst != 0)
        return CM_E_EXIST;
    if (exchange && dst == 0)
        return CM_E_NOENT;
    struct ns_inode *s = &ns->inodes[src], *d = dst ? &ns->inodes[dst] : NULL;
    bool sdir = S_ISDIR(s->mode), ddir = d != NULL && S_ISDIR(d->mode);
    if (sdir && is_ancestor(ns, src, dpi))
        return CM_E_INVAL; /* into its own subtree */
    if (ddir && is_ancestor(ns, dst, spi))
        return exchange ? CM_E_INVAL : CM_E_NOTEMPTY; /* the target contains the source */
    if (src == dst) {
        add_attr(o, src);
        add_attr(o, spi);
        if (dpi != spi)
            add_attr(o, dpi);
        return 0;
    }
    if ((rc = access_ok(o, sp, NS_MAY_WRITE | NS_MAY_EXEC)) != 0 ||
        (rc = ns_perm_sticky(o->cred, sp->mode, sp->uid, s->uid)) != 0 ||
        (rc = access_ok(o, dp, NS_MAY_WRITE | NS_MAY_EXEC)) != 0 ||
        (d != NULL && (rc = ns_perm_sticky(o->cred, dp->mode, dp->uid, d->uid)) != 0))
        return rc;
    if (!exchange && d != NULL) {
        if (sdir && !ddir)
            return CM_E_NOTDIR;
        if (!sdir && ddir)
            return CM_E_ISDIR;
    }
    if (spi != dpi && ((sdir && (rc = access_ok(o, s, NS_MAY_WRITE)) != 0) ||
                       (exchange && ddir && (rc = access_ok(o, d, NS_MAY_WRITE)) != 0)))
        return rc;
    if (!exchange && ddir && d->u.dir->n_live > 0)
        return CM_E_NOTEMPTY;
    if (spi != dpi && ((sdir && !ddir && dp->nlink == UINT32_MAX) ||
                       (exchange && ddir && !sdir && sp->nlink == UINT32_MAX)))
        return CM_E_MLINK;
    if (d == NULL)
        rc = ns__dir_reserve(dp->u.dir, c->name2_len);
    else if (!exchange && d->nlink == 1)
        rc = reserve_freed(o, ns__file_block_count(d) + 1);
    if (rc != 0)
        return rc;

    int64_t now = c->now_ns;
    if (exchange) {
        sp->u.dir->ents[si].ino = dst;
        dp->u.dir->ents[di].ino = src;
        if (spi != dpi && sdir) {
            s->u.dir->parent = dpi;
            sp->nlink--;
            dp->nlink++;
        }
        if (spi != dpi && ddir) {
            d->u.dir->parent = spi;
            dp->nlink--;
            sp->nlink++;
        }
        d->ctime = now;
    } else {
        if (d != NULL) {
            dp->u.dir->ents[di].ino = src; /* the name stays where it is in the listing */
            if (ddir)
                dp->nlink--;
            drop_link(o, dst);
        } else {
            ns__dir_add(dp->u.dir, c->name2, c->name2_len, src);
        }
        ns__dir_remove(sp->u.dir, (uint32_t)si);
        if (sdir && spi != dpi) {
            s->u.dir->parent = dpi;
            sp->nlink--;
            dp->nlink++;
        }
    }
    s->ctime = now;
    touch_dir(sp, now);
    touch_dir(dp, now);
    add_attr(o, src);
    add_attr(o, spi);
    if (dpi != spi)
        add_attr(o, dpi);
    return 0;
}

static int op_setattr(struct op *o)
{
    const struct ns_cmd *c = o->c;
    const struct ns_setattr *sa = &c->sa;
    struct ns_inode *in;
    int rc;
    if ((rc = ns__inode_get(o->ns, c->ino, c->gen, &in)) != 0)
        return rc;
    uint32_t v = sa->valid, mode = sa->mode & 07777;
    if (v & NS_SET_SIZE) {
        if (S_ISDIR(in->mode))
            return CM_E_ISDIR;
        if (!S_ISREG(in->mode))
            return CM_E_INVAL;
        if (sa->size > NS_MAX_FILE_SIZE)
            return CM_E_FBIG;
        if ((rc = access_ok(o, in, NS_MAY_WRITE)) != 0)
            return rc;
    }
    if ((v & (NS_SET_UID | NS_SET_GID)) &&
        (rc = ns_perm_chown(o->cred, in->uid, in->gid, (v & NS_SET_UID) ? &sa->uid : NULL,
                            (v & NS_SET_GID) ? &sa->gid : NULL)) != 0)
        return rc;
    if ((v & NS_SET_MODE) && (rc = ns_perm_chmod(o->cred, in->uid, in->gid, &mode)) != 0)
        return rc;
    if ((v & (NS_SET_ATIME | NS_SET_MTIME | NS_SET_ATIME_NOW | NS_SET_MTIME_NOW)) &&
        (rc = ns_perm_utimes(o->cred, in->mode, in->uid, in->gid,
                             (v & (NS_SET_ATIME | NS_SET_MTIME)) != 0)) != 0)
        return rc;
    int64_t now = c->now_ns;
    if ((v & NS_SET_SIZE) && (rc = truncate_to(o, in, sa->size)) != 0)
        return rc;
    if (v & NS_SET_MODE)
        in->mode = (in->mode & (uint32_t)S_IFMT) | mode;
    if (v & (NS_SET_UID | NS_SET_GID)) {
        if (v & NS_SET_UID)
            in->uid = sa->uid;
        if (v & NS_SET_GID)
            in->gid = sa->gid;
        if (!S_ISDIR(in->mode)) {
            in->mode &= ~(uint32_t)S_ISUID;
            if (in->mode & S_IXGRP)
                in->mode &= ~(uint32_t)S_ISGID;
        }
    }
    if (v & NS_SET_ATIME)
        in->atime = sa->atime_ns;
    if (v & NS_SET_ATIME_NOW)
        in->atime = now;
    if (v & NS_SET_MTIME)
        in->mtime = sa->mtime_ns;
    if (v & NS_SET_MTIME_NOW)
        in->mtime = now;
    if (v != 0)
        in->ctime = now;
    add_attr(o, ino_of(o->ns, in));
    return 0;
}

static int op_alloc_blocks(struct op *o)
{
    if (o->ns->next_block > UINT64_MAX - o->c->count)
        return CM_E_NOSPC;
    o->r->value = o->ns->next_block;
    o->ns->next_block += o->c->count;
    return 0;
}

static int op_commit(struct op *o)
{
    const struct ns_cmd *c = o->c;
    struct ns_inode *in;
    int rc;
    if ((rc = ns__inode_get(o->ns, c->ino, c->gen, &in)) != 0)
        return rc;
    if (S_ISDIR(in->mode))
        return CM_E_ISDIR;
    if (!S_ISREG(in->mode))
        return CM_E_INVAL;
    if ((rc = access_ok(o, in, NS_MAY_WRITE)) != 0)
        return rc;
    for (uint32_t i = 0; i < c->n_blocks; i++) {
        uint64_t id = c->blocks[i].id;
        if (id >= o->ns->next_block || ns_gc_is_pending(o->ns, id))
            return CM_E_INVAL; /* never allocated, or freed and being deleted */
        if (id < o->ns->orphan_below && ns_block_refs(o->ns, id) == 0)
            return CM_E_EXPIRED; /* its copies may have been deleted as orphans */
    }
    uint64_t size = (c->flags & NS_COMMIT_SET_SIZE) || c->size > in->size ? c->size : in->size;
    size_t n = ns__file_block_count(in);
    if ((rc = reserve_freed(o, 2 * n + c->n_blocks + 2)) != 0 ||
        (rc = ns__file_replace(in, c->off, c->len, c->blocks, c->n_blocks, &o->ns->refs,
                               &o->freed)) != 0)
        return rc;
    ns__file_cut(in, size, &o->ns->refs, &o->freed);
    in->size = size;
    in->mtime = in->ctime = c->now_ns;
    in->mode = ns_perm_kill_priv(o->cred, in->mode);
    add_attr(o, ino_of(o->ns, in));
    return 0;
}

static int op_orphan_bound(struct op *o)
{
    if (o->c->count > o->ns->next_block)
        return CM_E_INVAL; /* ids never allocated cannot be old enough */
    if (o->c->count > o->ns->orphan_below)
        o->ns->orphan_below = o->c->count;
    o->r->value = o->ns->orphan_below;
    return 0;
}

static int op_gc_ack(struct op *o)
{
    for (uint32_t i = 0; i < o->c->n_ids; i++)
        if (ns__gc_drop(&o->ns->gc, o->c->ids[i]))
            o->r->value++;
    return 0;
}

/* Keeps of freed the ids no extent of any file references any more (a block shared between
 * files, which a client may commit, stays until its last reference goes). */
static void keep_unreferenced(struct ns *ns, struct ns_u64vec *freed)
{
    size_t k = 0;
    for (size_t i = 0; i < freed->n; i++)
        if (ns_block_refs(ns, freed->v[i]) == 0)
            freed->v[k++] = freed->v[i];
    freed->n = k;
}

void ns__execute(struct ns *ns, const struct ns_cmd *c, struct ns_result *r)
{
    struct op o = {.ns = ns, .c = c, .cred = c->has_cred ? &c->cred : NULL, .r = r};
    static int (*const ops[NS_OP_COUNT_])(struct op *) = {
        [NS_OP_MKDIR] = op_mkdir,
        [NS_OP_CREATE] = op_create,
        [NS_OP_SYMLINK] = op_symlink,
        [NS_OP_LINK] = op_link,
        [NS_OP_UNLINK] = op_unlink,
        [NS_OP_RMDIR] = op_rmdir,
        [NS_OP_RENAME] = op_rename,
        [NS_OP_SETATTR] = op_setattr,
        [NS_OP_ALLOC_BLOCKS] = op_alloc_blocks,
        [NS_OP_COMMIT] = op_commit,
        [NS_OP_GC_ACK] = op_gc_ack,
        [NS_OP_ORPHAN_BOUND] = op_orphan_bound,
    };
    memset(r, 0, sizeof(*r));
    r->err = c->op < NS_OP_COUNT_ && ops[c->op] ? ops[c->op](&o) : CM_E_INVAL;
    if (r->err != 0) {
        r->n_attr = 0;
        r->value = 0;
        ns__vec_free(&o.freed);
        return;
    }
    keep_unreferenced(ns, &o.freed);
    if (o.freed.n > 0)
        ns__gc_push(&ns->gc, o.freed.v, o.freed.n); /* room was reserved */
    r->freed = o.freed.v;
    r->n_freed = (uint32_t)o.freed.n;
}
