/* The namespace's read functions (lookup, getattr, readlink, readdir pages, statfs, pending
 * garbage), served on the loop thread for linearizable reads. They change nothing. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_internal.h"
#include "master/ns_perm.h"

int ns_getattr(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_attr *out)
{
    struct ns_inode *in;
    int rc = ns__inode_get(ns, ino, gen, &in);
    if (rc == 0)
        ns__attr(ns, (uint32_t)ino, out);
    return rc;
}

int ns_lookup(struct ns *ns, const struct ns_cred *cred, uint64_t parent, uint64_t pgen,
              const char *name, struct ns_attr *out)
{
    struct ns_inode *p;
    int rc;
    if (name == NULL)
        return CM_E_INVAL;
    if ((rc = ns__get_dir(ns, parent, pgen, &p)) != 0 ||
        (rc = ns_perm_access(cred, p->mode, p->uid, p->gid, NS_MAY_EXEC)) != 0)
        return rc;
    size_t len = strnlen(name, NS_NAME_MAX + 1);
    uint32_t ino;
    if (strcmp(name, ".") == 0) {
        ino = (uint32_t)parent;
    } else if (strcmp(name, "..") == 0) {
        ino = p->u.dir->parent;
    } else {
        if ((rc = ns__name_check(name, len)) != 0)
            return rc;
        int64_t i = ns__dir_find(p->u.dir, name, len);
        if (i < 0)
            return CM_E_NOENT;
        ino = p->u.dir->ents[i].ino;
    }
    ns__attr(ns, ino, out);
    return 0;
}

int ns_readlink(struct ns *ns, uint64_t ino, uint64_t gen, char *buf, size_t *len)
{
    struct ns_inode *in;
    int rc = ns__inode_get(ns, ino, gen, &in);
    if (rc != 0)
        return rc;
    if (!S_ISLNK(in->mode))
        return CM_E_INVAL;
    memcpy(buf, in->u.target, in->size + 1);
    *len = in->size;
    return 0;
}

int ns_readdir(struct ns *ns, const struct ns_cred *cred, uint64_t ino, uint64_t gen,
               uint64_t cookie, uint32_t max_entries, size_t max_bytes, struct ns_dirpage *out)
{
    struct ns_inode *p;
    int rc;
    memset(out, 0, sizeof(*out));
    if (max_entries == 0)
        return CM_E_INVAL;
    if ((rc = ns__get_dir(ns, ino, gen, &p)) != 0 ||
        (rc = ns_perm_access(cred, p->mode, p->uid, p->gid, NS_MAY_READ)) != 0)
        return rc;
    const struct ns_dir *d = p->u.dir;
    /* Pass 1: which entries fit. "." and ".." are the virtual positions 1 and 2. */
    uint32_t n = 0, start = ns__dir_seek(d, cookie), i = start;
    size_t bytes = 0, name_bytes = 0;
    bool dots[2] = {false, false}, full = false;
    for (uint32_t k = 0; k < 2; k++) {
        if (cookie > k)
            continue;
        if (n == max_entries || (n > 0 && bytes + NS_DIRENT_COST + k + 1 > max_bytes)) {
            full = true;
            break;
        }
        dots[k] = true;
        n++;
        bytes += NS_DIRENT_COST + k + 1;
        name_bytes += k + 2;
    }
    for (; !full && i < d->n_ent; i++) {
        const struct ns_dent *e = &d->ents[i];
        if (e->ino == 0)
            continue;
        if (n == max_entries || (n > 0 && bytes + NS_DIRENT_COST + e->name_len > max_bytes))
            break;
        n++;
        bytes += NS_DIRENT_COST + e->name_len;
        name_bytes += (size_t)e->name_len + 1;
    }
    uint32_t end = i;
    while (i < d->n_ent && d->ents[i].ino == 0)
        i++;
    out->eof = !full && i == d->n_ent;
    if (n == 0)
        return 0;
    out->ents = malloc((size_t)n * sizeof(*out->ents));
    out->names = malloc(name_bytes);
    if (out->ents == NULL || out->names == NULL) {
        ns_dirpage_free(out);
        return CM_E_NOMEM;
    }
    /* Pass 2: fill. */
    size_t off = 0;
    for (int k = 0; k < 2; k++) {
        if (!dots[k])
            continue;
        struct ns_dirent *o = &out->ents[out->n++];
        ns__attr(ns, k == 0 ? (uint32_t)ino : d->parent, &o->attr);
        o->cookie = (uint64_t)k + 1;
        o->name_off = (uint32_t)off;
        o->name_len = (uint32_t)k + 1;
        memcpy(out->names + off, "..", (size_t)k + 1);
        out->names[off + (size_t)k + 1] = 0;
        off += (size_t)k + 2;
    }
    for (uint32_t j = start; j < end; j++) {
        const struct ns_dent *e = &d->ents[j];
        if (e->ino == 0)
            continue;
        struct ns_dirent *o = &out->ents[out->n++];
        ns__attr(ns, e->ino, &o->attr);
        o->cookie = e->pos;
        o->name_off = (uint32_t)off;
        o->name_len = e->name_len;
        memcpy(out->names + off, d->names + e->name_off, e->name_len);
        out->names[off + e->name_len] = 0;
        off += (size_t)e->name_len + 1;
    }
    return 0;
}

void ns_dirpage_free(struct ns_dirpage *p)
{
    if (p == NULL)
        return;
    free(p->ents);
    free(p->names);
    memset(p, 0, sizeof(*p));
}

void ns_statfs(struct ns *ns, struct ns_statfs *out)
{
    memset(out, 0, sizeof(*out));
    out->inodes = ns->n_files + ns->n_dirs + ns->n_symlinks;
    out->files = ns->n_files;
    out->dirs = ns->n_dirs;
    out->symlinks = ns->n_symlinks;
    out->max_inodes = ns->cfg.max_inodes;
    out->blocks_allocated = ns->next_block - 1;
    out->orphan_below = ns->orphan_below;
    out->applied = ns->applied;
    out->sessions = ns->n_sessions;
    out->gc_pending = ns->gc.live;
}
