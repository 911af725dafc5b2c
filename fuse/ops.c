/* The libfuse3 low-level operations of the dfs mount: each one translates to libdfs calls made
 * with the caller's credentials. Inode numbers are the masters' (the root is 1 on both sides);
 * the generation travels in the node table. Errors become errno in to_errno() only. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/errors.h"
#include "common/log.h"
#include "fuse/dfs_fuse.h"

#define GROUPS_MAX     FZ_GROUPS_MAX
#define HIDDEN_PREFIX  ".dfs_hidden_"
#define READDIR_MAXENT 4096

/* The one place where a dfs error becomes an errno. Errors that mean "the cluster could not be
 * reached in time" are EIO to programs (after the operation timeout), except a plain timeout. */
static int to_errno(int rc)
{
    switch (rc) {
    case CM_E_UNAVAILABLE:
    case CM_E_NOT_LEADER:
    case CM_E_CONNECT:
    case CM_E_RESOLVE:
    case CM_E_PROTO:
    case CM_E_CANCELED:
    case CM_E_BAD_JSON:
    case CM_E_BAD_FIELD:
    case CM_E_MISSING_FIELD:
    case CM_E_NO_ROUTE:
    case CM_E_METHOD:
    case CM_E_UNAUTHORIZED:
        return EIO;
    case CM_E_RANGE:
        return EINVAL;
    default:
        return cm_err_errno(rc);
    }
}

static struct fz *Z(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

struct credbuf {
    struct dfs_cred c;
    uint32_t g[GROUPS_MAX];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The caller's uid, gid and supplementary groups. The groups come from /proc/PID/status
 * (fuse_req_getgroups), read at most once per FZ_CRED_TTL_MS for the same pid, uid and gid: a
 * process that changes its groups is seen with the new ones within that time. */
static const struct dfs_cred *cred_of(fuse_req_t req, struct credbuf *b)
{
    struct fz *z = Z(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct fz_cred_slot *s = &z->creds[(uint32_t)ctx->pid % FZ_CRED_SLOTS];
    uint64_t now = mono_ms();
    gid_t g[GROUPS_MAX];
    int n = -1;

    b->c.uid = ctx->uid;
    b->c.gid = ctx->gid;
    b->c.groups = b->g;
    pthread_mutex_lock(&z->cred_mu);
    if (s->ms != 0 && now - s->ms < FZ_CRED_TTL_MS && s->pid == (uint32_t)ctx->pid &&
        s->uid == ctx->uid && s->gid == ctx->gid) {
        n = s->n;
        memcpy(b->g, s->g, (size_t)n * sizeof(b->g[0]));
    }
    pthread_mutex_unlock(&z->cred_mu);
    if (n >= 0) {
        b->c.ngroups = (size_t)n;
        return &b->c;
    }
    n = fuse_req_getgroups(req, GROUPS_MAX, g);
    if (n < 0)
        n = 0;
    if (n > GROUPS_MAX)
        n = GROUPS_MAX;
    for (int i = 0; i < n; i++)
        b->g[i] = g[i];
    b->c.ngroups = (size_t)n;
    pthread_mutex_lock(&z->cred_mu);
    *s = (struct fz_cred_slot){
        .pid = (uint32_t)ctx->pid, .uid = ctx->uid, .gid = ctx->gid, .ms = now, .n = n};
    memcpy(s->g, b->g, (size_t)n * sizeof(b->g[0]));
    pthread_mutex_unlock(&z->cred_mu);
    return &b->c;
}

static int fh_of(struct fz *z, fuse_ino_t ino, struct dfs_fh *out)
{
    struct node *n;

    if (ino == FUSE_ROOT_ID) {
        *out = (struct dfs_fh){DFS_ROOT_INO, DFS_ROOT_GEN};
        return 0;
    }
    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n != NULL)
        *out = (struct dfs_fh){n->ino, n->gen};
    pthread_mutex_unlock(&z->mu);
    return n != NULL ? 0 : CM_E_STALE;
}

/* ---- open files: a node's file lives while nopen > 0 (handles, plus short pins) ---- */

/* Pins ino's open file, if any: the caller then calls node_put. */
static struct node *pin_open(struct fz *z, uint64_t ino)
{
    struct node *n;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n != NULL && n->nopen > 0)
        n->nopen++;
    else
        n = NULL;
    pthread_mutex_unlock(&z->mu);
    return n;
}

/* Drops one hold of n's open file; the last closes it (it was flushed by release) and removes
 * the name it was hidden under when unlinked while open. */
static void node_put(struct fz *z, struct node *n)
{
    struct dfs_file *f = NULL;
    struct dfs_fh parent = {0};
    char *hidden = NULL;

    pthread_mutex_lock(&z->mu);
    if (--n->nopen == 0) {
        f = n->file;
        n->file = NULL;
        hidden = n->hidden_name;
        n->hidden_name = NULL;
        parent = n->hidden_parent;
        z->open_nodes--;
        fz_node_maybe_free(z, n);
    }
    pthread_mutex_unlock(&z->mu);
    dfs_file_close(f);
    if (hidden != NULL) {
        int rc = dfs_unlink(z->fs, NULL, parent, hidden);
        if (rc != 0 && rc != CM_E_NOENT)
            LOG_WARN("fuse: removing %s after its last close: %s", hidden, cm_errname(rc));
        free(hidden);
    }
}

/* The size a program should see: what this mount wrote but has not flushed counts. */
static void fix_size(struct fz *z, struct dfs_attr *a)
{
    struct node *n;
    uint64_t end;

    if (!S_ISREG(a->mode) || (n = pin_open(z, a->ino)) == NULL)
        return;
    if (n->file != NULL && dfs_file_dirty(n->file, &end) && end > a->size)
        a->size = end;
    node_put(z, n);
}

static void to_stat(const struct dfs_attr *a, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = (off_t)a->size;
    st->st_blksize = 1 << 20;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    st->st_atim.tv_sec = a->atime_ns / 1000000000;
    st->st_atim.tv_nsec = a->atime_ns % 1000000000;
    st->st_mtim.tv_sec = a->mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = a->mtime_ns % 1000000000;
    st->st_ctim.tv_sec = a->ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = a->ctime_ns % 1000000000;
}

/* Takes a lookup reference for a and fills e. */
static int entry_of(struct fz *z, struct dfs_attr *a, struct fuse_entry_param *e)
{
    struct node *n;

    fix_size(z, a);
    pthread_mutex_lock(&z->mu);
    n = fz_node_ref(z, a->ino, a->gen);
    if (n != NULL)
        n->nlookup++;
    pthread_mutex_unlock(&z->mu);
    if (n == NULL)
        return ENOMEM;
    memset(e, 0, sizeof(*e));
    e->ino = a->ino;
    e->generation = a->gen;
    to_stat(a, &e->attr);
    e->attr_timeout = z->opt.attr_timeout;
    e->entry_timeout = z->opt.entry_timeout;
    return 0;
}

/* The kernel did not take the reference entry_of gave. */
static void unref(struct fz *z, uint64_t ino, uint64_t count)
{
    struct node *n;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n != NULL) {
        n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
        fz_node_maybe_free(z, n);
    }
    pthread_mutex_unlock(&z->mu);
}

/* A timeout shortened by the age of the answer it is about. */
static double less_age(double timeout, uint64_t age_ms)
{
    double t = timeout - (double)age_ms / 1000.0;

    return t > 0 ? t : 0;
}

/* An entry answered age_ms ago (from a directory listing; 0: just now): the kernel keeps it
 * only for what is left of its timeouts. */
static void reply_entry_aged(fuse_req_t req, int rc, struct dfs_attr *a, uint64_t age_ms)
{
    struct fz *z = Z(req);
    struct fuse_entry_param e;
    int err;

    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    if ((err = entry_of(z, a, &e)) != 0) {
        fuse_reply_err(req, err);
        return;
    }
    e.entry_timeout = less_age(e.entry_timeout, age_ms);
    e.attr_timeout = less_age(e.attr_timeout, age_ms);
    if (fuse_reply_entry(req, &e) != 0)
        unref(z, a->ino, 1);
}

static void reply_entry(fuse_req_t req, int rc, struct dfs_attr *a)
{
    reply_entry_aged(req, rc, a, 0);
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

void fz_flush_all(struct fz *z)
{
    struct node *n, *t;

    /* Unmounting: commit whatever is still buffered (the loop has ended: nothing else runs). */
    pthread_mutex_lock(&z->mu);
    HASH_ITER(hh, z->nodes, n, t)
    {
        if (n->file != NULL) {
            int rc = dfs_file_flush(n->file, NULL);
            if (rc != 0)
                LOG_ERROR("fuse: inode %" PRIu64 ": writes lost at unmount: %s", n->ino,
                          cm_strerror(rc));
        }
    }
    pthread_mutex_unlock(&z->mu);
}

#define AGING_INTERVAL_S 60

void *fz_aging_main(void *arg)
{
    struct fz *z = arg;
    struct node **pinned = NULL, *n, *t;
    size_t cap = 0;
    unsigned age_s = z->opt.commit_age_s ? z->opt.commit_age_s : DFS_PEND_MAX_AGE_MS / 1000;
    unsigned every_s = age_s < AGING_INTERVAL_S ? age_s : AGING_INTERVAL_S;

    pthread_mutex_lock(&z->mu);
    while (!z->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += every_s;
        pthread_cond_timedwait(&z->stop_cv, &z->mu, &ts);
        if (z->stopping)
            break;
        if (z->open_nodes == 0)
            continue;
        /* Pinned (as an open handle holds them), so that a close meanwhile cannot free them. */
        size_t k = 0;
        HASH_ITER(hh, z->nodes, n, t)
        {
            if (n->nopen == 0 || n->file == NULL || !dfs_file_dirty(n->file, NULL))
                continue;
            if (k == cap) {
                size_t nc = cap ? 2 * cap : 16;
                struct node **np = realloc(pinned, nc * sizeof(*np));
                if (np == NULL)
                    break; /* the others next time */
                pinned = np;
                cap = nc;
            }
            n->nopen++;
            pinned[k++] = n;
        }
        pthread_mutex_unlock(&z->mu);
        for (size_t i = 0; i < k; i++) {
            int rc = dfs_file_commit_aged(pinned[i]->file, (uint64_t)age_s * 1000);
            if (rc != 0)
                LOG_ERROR("fuse: inode %" PRIu64 ": writes of a file left open not committed: %s",
                          pinned[i]->ino, cm_strerror(rc));
            node_put(z, pinned[i]);
        }
        pthread_mutex_lock(&z->mu);
    }
    pthread_mutex_unlock(&z->mu);
    free(pinned);
    return NULL;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fz *z = Z(req);
    struct fuse_entry_param e;
    struct credbuf cb;
    struct dfs_fh p;
    struct dfs_attr a;
    uint64_t age = 0;
    int rc = fh_of(z, parent, &p);

    /* Answered from the directory's listing when names in it are being looked up one after
     * another (libdfs's directory cache; the kernel checked the search permission: it enforces
     * modes itself, default_permissions), else by the masters. */
    if (rc == 0)
        rc = dfs_lookup_cached(z->fs, cred_of(req, &cb), p, name, &a, &age);
    if (rc == CM_E_NOENT && z->opt.negative_timeout > 0) {
        /* Absent: the kernel remembers that for negative_timeout (inode 0), so the lookup a
         * create, cp or a compiler's include search makes right after another is answered
         * without the masters. Changes through this mount replace the entry at once. */
        e = (struct fuse_entry_param){.ino = 0,
                                      .entry_timeout = less_age(z->opt.negative_timeout, age)};
        fuse_reply_entry(req, &e);
        return;
    }
    reply_entry_aged(req, rc, &a, age);
}

static void forget_one(struct fz *z, fuse_ino_t ino, uint64_t nlookup)
{
    struct node *n = fz_node_get(z, ino);

    if (n == NULL)
        return;
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    fz_node_maybe_free(z, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct fz *z = Z(req);

    pthread_mutex_lock(&z->mu);
    forget_one(z, ino, nlookup);
    pthread_mutex_unlock(&z->mu);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fz *z = Z(req);

    pthread_mutex_lock(&z->mu);
    for (size_t i = 0; i < count; i++)
        forget_one(z, forgets[i].ino, forgets[i].nlookup);
    pthread_mutex_unlock(&z->mu);
    fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, int rc, struct dfs_attr *a)
{
    struct stat st;

    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    fix_size(Z(req), a);
    to_stat(a, &st);
    fuse_reply_attr(req, &st, Z(req)->opt.attr_timeout);
}

void fz_dir_attr(void *ctx, const struct dfs_attr *a)
{
    struct fz *z = ctx;
    struct node *n;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, a->ino);
    /* Of two changes answered out of order, the later one's (ctime) stays. */
    if (n != NULL && n->gen == a->gen &&
        (n->dattr_until == 0 || a->ctime_ns >= n->dattr.ctime_ns)) {
        n->dattr = *a;
        n->dattr_until = mono_ms() + (uint64_t)(z->opt.attr_timeout * 1000);
    }
    pthread_mutex_unlock(&z->mu);
}

/* A directory's attributes as this mount's last change in it left them, for as long as the
 * kernel would have kept them itself (attr_timeout). */
static bool dir_attr_cached(struct fz *z, fuse_ino_t ino, struct dfs_attr *out)
{
    struct node *n;
    bool hit = false;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n != NULL && n->dattr_until != 0 && n->dattr.gen == n->gen && mono_ms() < n->dattr_until) {
        *out = n->dattr;
        hit = true;
    }
    pthread_mutex_unlock(&z->mu);
    return hit;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fz *z = Z(req);
    struct dfs_fh fh;
    struct dfs_attr a;
    int rc;

    (void)fi;
    if (dir_attr_cached(z, ino, &a)) {
        reply_attr(req, 0, &a);
        return;
    }
    rc = fh_of(z, ino, &fh);
    if (rc == 0)
        rc = dfs_getattr(z->fs, NULL, fh, &a);
    reply_attr(req, rc, &a);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct fz *z = Z(req);
    struct dfs_setattr sa = {0};
    struct credbuf cb;
    struct node *n = NULL;
    struct dfs_fh fh;
    struct dfs_attr a;
    int rc = fh_of(z, ino, &fh);

    if (to_set & FUSE_SET_ATTR_MODE) {
        sa.valid |= DFS_SET_MODE;
        sa.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        sa.valid |= DFS_SET_UID;
        sa.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        sa.valid |= DFS_SET_GID;
        sa.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        sa.valid |= DFS_SET_SIZE;
        sa.size = (uint64_t)attr->st_size;
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        sa.valid |= DFS_SET_ATIME_NOW;
    else if (to_set & FUSE_SET_ATTR_ATIME) {
        sa.valid |= DFS_SET_ATIME;
        sa.atime_ns = (int64_t)attr->st_atim.tv_sec * 1000000000 + attr->st_atim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        sa.valid |= DFS_SET_MTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_MTIME) {
        sa.valid |= DFS_SET_MTIME;
        sa.mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
    }
    if (rc == 0 && (sa.valid & DFS_SET_SIZE) && (n = pin_open(z, fh.ino)) != NULL)
        rc = dfs_file_flush(n->file, NULL); /* buffered writes come before the truncation */
    /* ftruncate(2) (a handle, only the size): permission was checked when it was opened. */
    if (rc == 0)
        rc = dfs_setattr(z->fs, fi != NULL && sa.valid == DFS_SET_SIZE ? NULL : cred_of(req, &cb),
                         fh, &sa, &a);
    if (n != NULL) {
        dfs_file_invalidate(n->file);
        node_put(z, n);
    }
    reply_attr(req, rc, &a);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh fh;
    char *target = NULL;
    int rc = fh_of(z, ino, &fh);

    if (rc == 0)
        rc = dfs_readlink(z->fs, cred_of(req, &cb), fh, &target);
    if (rc != 0)
        fuse_reply_err(req, to_errno(rc));
    else
        fuse_reply_readlink(req, target);
    free(target);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh p;
    struct dfs_attr a;
    int rc = fh_of(z, parent, &p);

    (void)rdev;
    if (!S_ISREG(mode)) {
        fuse_reply_err(req, EPERM); /* devices, fifos and sockets are not kept */
        return;
    }
    if (rc == 0)
        rc = dfs_create(z->fs, cred_of(req, &cb), p, name, mode, DFS_CREATE_EXCL, &a, NULL);
    reply_entry(req, rc, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh p;
    struct dfs_attr a;
    int rc = fh_of(z, parent, &p);

    if (rc == 0)
        rc = dfs_mkdir(z->fs, cred_of(req, &cb), p, name, mode, &a);
    reply_entry(req, rc, &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh p;
    struct dfs_attr a;
    int rc = fh_of(z, parent, &p);

    if (rc == 0)
        rc = dfs_symlink(z->fs, cred_of(req, &cb), p, name, link, &a);
    reply_entry(req, rc, &a);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh fh, p;
    struct dfs_attr a;
    int rc = fh_of(z, ino, &fh);

    if (rc == 0)
        rc = fh_of(z, newparent, &p);
    if (rc == 0)
        rc = dfs_link(z->fs, cred_of(req, &cb), fh, p, newname, &a);
    reply_entry(req, rc, &a);
}

/* A file unlinked while this mount has it open keeps its data until the last close: it is
 * renamed to a hidden name in the same directory and removed at that close (as NFS clients do).
 * Returns 0 when hidden, CM_E_NOENT when the plain unlink should go ahead. */
static int hide_if_open(struct fz *z, const struct dfs_cred *cred, struct dfs_fh p,
                        const char *name)
{
    char hidden[64];
    struct dfs_attr a;
    struct node *n;
    int rc;

    if (__atomic_load_n(&z->open_nodes, __ATOMIC_RELAXED) == 0)
        return CM_E_NOENT;
    if (dfs_lookup(z->fs, cred, p, name, &a) != 0 || !S_ISREG(a.mode) || a.nlink != 1)
        return CM_E_NOENT;
    if ((n = pin_open(z, a.ino)) == NULL)
        return CM_E_NOENT;
    snprintf(hidden, sizeof(hidden), HIDDEN_PREFIX "%016" PRIx64, a.ino);
    pthread_mutex_lock(&z->mu);
    rc = n->hidden_name != NULL ? CM_E_NOENT : 0;
    pthread_mutex_unlock(&z->mu);
    if (rc == 0)
        rc = dfs_rename(z->fs, cred, p, name, p, hidden, DFS_RENAME_NOREPLACE);
    if (rc == 0) {
        pthread_mutex_lock(&z->mu);
        n->hidden_name = strdup(hidden);
        n->hidden_parent = p;
        pthread_mutex_unlock(&z->mu);
        if (n->hidden_name == NULL)
            LOG_WARN("fuse: out of memory: %s stays until removed by hand", hidden);
    } else if (rc != CM_E_NOENT) {
        LOG_WARN("fuse: keeping open %s after unlink: %s; unlinking it", name, cm_errname(rc));
        rc = CM_E_NOENT;
    }
    node_put(z, n);
    return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    const struct dfs_cred *cred = cred_of(req, &cb);
    struct dfs_fh p;
    int rc = fh_of(z, parent, &p);

    if (rc == 0 && hide_if_open(z, cred, p, name) != 0)
        rc = dfs_unlink(z->fs, cred, p, name);
    fuse_reply_err(req, rc == 0 ? 0 : to_errno(rc));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh p;
    int rc = fh_of(z, parent, &p);

    if (rc == 0)
        rc = dfs_rmdir(z->fs, cred_of(req, &cb), p, name);
    fuse_reply_err(req, rc == 0 ? 0 : to_errno(rc));
}

/* rename(2) over a file this mount has open (an editor saving, rsync, git): the new file takes
 * the name atomically by an exchange, and the old one, now under the source name, is hidden like
 * an unlinked open file. Returns 0 when done, CM_E_NOENT when a plain rename should go ahead. */
static int rename_over_open(struct fz *z, const struct dfs_cred *cred, struct dfs_fh p,
                            const char *name, struct dfs_fh np, const char *newname)
{
    char hidden[64];
    struct dfs_attr dst, src;
    struct node *n;
    int rc;

    if (__atomic_load_n(&z->open_nodes, __ATOMIC_RELAXED) == 0)
        return CM_E_NOENT;
    if (dfs_lookup(z->fs, cred, np, newname, &dst) != 0 || !S_ISREG(dst.mode) || dst.nlink != 1)
        return CM_E_NOENT;
    if (dfs_lookup(z->fs, cred, p, name, &src) != 0 || S_ISDIR(src.mode) || src.ino == dst.ino)
        return CM_E_NOENT;
    if ((n = pin_open(z, dst.ino)) == NULL)
        return CM_E_NOENT;
    pthread_mutex_lock(&z->mu);
    rc = n->hidden_name != NULL ? CM_E_NOENT : 0;
    pthread_mutex_unlock(&z->mu);
    if (rc == 0 && (rc = dfs_rename(z->fs, cred, p, name, np, newname, DFS_RENAME_EXCHANGE)) != 0)
        rc = CM_E_NOENT;
    if (rc == 0) {
        snprintf(hidden, sizeof(hidden), HIDDEN_PREFIX "%016" PRIx64, dst.ino);
        int hr = dfs_rename(z->fs, cred, p, name, p, hidden, DFS_RENAME_NOREPLACE);
        if (hr == 0) {
            pthread_mutex_lock(&z->mu);
            n->hidden_name = strdup(hidden);
            n->hidden_parent = p;
            pthread_mutex_unlock(&z->mu);
        } else {
            /* The source name must go, as rename(2) says, even if the open file cannot stay. */
            LOG_WARN("fuse: hiding %s after a rename over it: %s; removing it", newname,
                     cm_errname(hr));
            if ((hr = dfs_unlink(z->fs, cred, p, name)) != 0)
                LOG_ERROR("fuse: %s left under the source name %s: %s", newname, name,
                          cm_errname(hr));
        }
    }
    node_put(z, n);
    return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    struct dfs_fh p, np;
    unsigned f = 0;
    int rc;

    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (flags & RENAME_NOREPLACE)
        f |= DFS_RENAME_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        f |= DFS_RENAME_EXCHANGE;
    rc = fh_of(z, parent, &p);
    if (rc == 0)
        rc = fh_of(z, newparent, &np);
    if (rc == 0) {
        const struct dfs_cred *cred = cred_of(req, &cb);
        if (f != 0 || rename_over_open(z, cred, p, name, np, newname) != 0)
            rc = dfs_rename(z->fs, cred, p, name, np, newname, f);
    }
    fuse_reply_err(req, rc == 0 ? 0 : to_errno(rc));
}

/* Opens (or shares) ino's file; fi->fh stays 0, the node is found by ino. */
static int open_node(struct fz *z, uint64_t ino, uint64_t gen)
{
    struct node *n;
    bool shared = false;
    int rc = 0;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n == NULL || n->gen != gen) {
        rc = CM_E_STALE;
    } else if (n->nopen == 0) {
        /* The kernel checked the opener's permission (default_permissions); the file is shared
         * by every handle of this mount, so its reads and commits carry no credential (the
         * masters would otherwise check the first opener's, and a file created 0444 could not
         * be written through the descriptor that created it). */
        rc = dfs_file_open(z->fs, NULL, (struct dfs_fh){ino, gen}, &n->file);
        if (rc == 0) {
            n->nopen = 1;
            z->open_nodes++;
        }
    } else {
        n->nopen++;
        shared = true;
    }
    pthread_mutex_unlock(&z->mu);
    /* Close-to-open: an open sees what others committed before it (unless this mount holds
     * unflushed writes of its own, which the next read flushes first). */
    if (shared && !dfs_file_dirty(n->file, NULL))
        dfs_file_invalidate(n->file);
    return rc;
}

static struct dfs_file *file_of(struct fz *z, fuse_ino_t ino)
{
    struct node *n;
    struct dfs_file *f = NULL;

    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    if (n != NULL)
        f = n->file;
    pthread_mutex_unlock(&z->mu);
    return f;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    struct fz *z = Z(req);
    struct credbuf cb;
    const struct dfs_cred *cred = cred_of(req, &cb);
    struct fuse_entry_param e;
    struct dfs_fh p;
    struct dfs_attr a;
    unsigned flags = 0;
    int rc = fh_of(z, parent, &p), err;

    if (fi->flags & O_EXCL)
        flags |= DFS_CREATE_EXCL;
    if (fi->flags & O_TRUNC)
        flags |= DFS_CREATE_TRUNC;
    if (rc == 0)
        rc = dfs_create(z->fs, cred, p, name, mode, flags, &a, NULL);
    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    if ((err = entry_of(z, &a, &e)) != 0) {
        fuse_reply_err(req, err);
        return;
    }
    if ((rc = open_node(z, a.ino, a.gen)) != 0) {
        unref(z, a.ino, 1);
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    fi->fh = 0;
    fi->keep_cache = 0;
    if (fuse_reply_create(req, &e, fi) != 0) {
        struct node *n;
        pthread_mutex_lock(&z->mu);
        n = fz_node_get(z, a.ino);
        pthread_mutex_unlock(&z->mu);
        if (n != NULL)
            node_put(z, n);
        unref(z, a.ino, 1);
    }
}

/* open(O_TRUNC) (the kernel leaves the truncation to open: FUSE_CAP_ATOMIC_O_TRUNC): what this
 * mount buffered goes first, then the size becomes 0. */
static int truncate_open(struct fz *z, struct dfs_fh fh)
{
    struct dfs_setattr sa = {.valid = DFS_SET_SIZE, .size = 0};
    struct node *n = pin_open(z, fh.ino);
    int rc = 0;

    if (n != NULL)
        rc = dfs_file_flush(n->file, NULL);
    if (rc == 0)
        rc = dfs_setattr(z->fs, NULL, fh, &sa, NULL); /* the open was checked */
    if (n != NULL) {
        dfs_file_invalidate(n->file);
        node_put(z, n);
    }
    return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fz *z = Z(req);
    struct dfs_fh fh;
    int rc = fh_of(z, ino, &fh);

    if (rc == 0)
        rc = open_node(z, fh.ino, fh.gen);
    if (rc == 0 && (fi->flags & O_TRUNC) && (rc = truncate_open(z, fh)) != 0) {
        struct node *n;
        pthread_mutex_lock(&z->mu);
        n = fz_node_get(z, ino);
        pthread_mutex_unlock(&z->mu);
        if (n != NULL)
            node_put(z, n);
    }
    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    fi->fh = 0;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0) {
        struct node *n;
        pthread_mutex_lock(&z->mu);
        n = fz_node_get(z, ino);
        pthread_mutex_unlock(&z->mu);
        if (n != NULL)
            node_put(z, n);
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct dfs_file *f = file_of(Z(req), ino);
    size_t got = 0;
    char *buf;
    int rc;

    (void)fi;
    if (f == NULL) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if ((buf = malloc(size ? size : 1)) == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    rc = dfs_file_read(f, (uint64_t)off, size, buf, &got);
    if (rc != 0)
        fuse_reply_err(req, to_errno(rc));
    else
        fuse_reply_buf(req, buf, got);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct dfs_file *f = file_of(Z(req), ino);
    int rc;

    (void)fi;
    if (f == NULL) {
        fuse_reply_err(req, EBADF);
        return;
    }
    rc = dfs_file_write(f, (uint64_t)off, buf, size);
    if (rc != 0)
        fuse_reply_err(req, to_errno(rc));
    else
        fuse_reply_write(req, size);
}

/* close(2) and fsync(2): success means every byte written is on its chunkservers' disks and
 * committed on a majority of masters. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dfs_file *f = file_of(Z(req), ino);
    int rc = f != NULL ? dfs_file_flush(f, NULL) : 0;

    (void)fi;
    fuse_reply_err(req, rc == 0 ? 0 : to_errno(rc));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    op_flush(req, ino, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fz *z = Z(req);
    struct node *n;
    int rc = 0;

    (void)fi;
    pthread_mutex_lock(&z->mu);
    n = fz_node_get(z, ino);
    pthread_mutex_unlock(&z->mu);
    if (n == NULL) {
        fuse_reply_err(req, 0);
        return;
    }
    if (n->file != NULL && (rc = dfs_file_flush(n->file, NULL)) != 0)
        LOG_ERROR("fuse: inode %" PRIu64 ": writes lost at close: %s", n->ino, cm_strerror(rc));
    node_put(z, n);
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dfs_fh fh;
    int rc = fh_of(Z(req), ino, &fh);

    fi->fh = 0;
    if (rc != 0)
        fuse_reply_err(req, to_errno(rc));
    else
        fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
    struct fz *z = Z(req);
    struct dfs_dirpage page = {0};
    struct credbuf cb;
    struct dfs_fh fh;
    size_t pos = 0, want;
    char *buf;
    int rc = fh_of(z, ino, &fh);

    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    if ((buf = malloc(size)) == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    want = size / 48 + 1;
    if (want > READDIR_MAXENT)
        want = READDIR_MAXENT;
    rc = dfs_readdir(z->fs, cred_of(req, &cb), fh, (uint64_t)off, want, &page);
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        struct dfs_dirent *d = &page.entries[i];
        bool dot = strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0;
        size_t need;
        if (!plus) {
            struct stat st;
            to_stat(&d->attr, &st);
            need = fuse_add_direntry(req, buf + pos, size - pos, d->name, &st, (off_t)d->cookie);
        } else {
            struct fuse_entry_param e = {0};
            if (dot) {
                to_stat(&d->attr, &e.attr);
            } else if ((rc = entry_of(z, &d->attr, &e)) != 0) {
                rc = CM_E_NOMEM;
                break;
            }
            need =
                fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, (off_t)d->cookie);
            if (need > size - pos && !dot)
                unref(z, d->attr.ino, 1); /* did not fit: the kernel never sees it */
        }
        if (need > size - pos)
            break;
        pos += need;
    }
    if (rc != 0 && pos == 0)
        fuse_reply_err(req, to_errno(rc));
    else
        fuse_reply_buf(req, buf, pos);
    dfs_dirpage_clear(&page);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fz *z = Z(req);
    struct dfs_statfs s;
    struct statvfs st = {0};
    const uint64_t frsize = 4096;
    int rc = dfs_statfs(z->fs, &s);

    (void)ino;
    if (rc != 0) {
        fuse_reply_err(req, to_errno(rc));
        return;
    }
    st.f_bsize = 1 << 20;
    st.f_frsize = frsize;
    st.f_blocks = s.capacity_bytes / frsize;
    st.f_bfree = s.free_bytes / frsize;
    st.f_bavail = s.free_bytes / frsize;
    st.f_files = s.max_inodes;
    st.f_ffree = s.max_inodes > s.inodes ? s.max_inodes - s.inodes : 0;
    st.f_favail = st.f_ffree;
    st.f_namemax = DFS_NAME_MAX;
    fuse_reply_statfs(req, &st);
}

const struct fuse_lowlevel_ops fz_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .symlink = op_symlink,
    .link = op_link,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
};
