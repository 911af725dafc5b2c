/* Helpers shared by the namespace tests: run commands through the real apply path (encode,
 * ns_apply, decode the result), a canonical dump of a namespace built only from the read API,
 * an invariant check, and snapshots to and from memory. Header-only (static inline). */
#ifndef DFS_TESTS_NS_TEST_UTIL_H
#define DFS_TESTS_NS_TEST_UTIL_H

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "master/namespace.h"

/* The namespace under test and the client the helpers act as. */
struct tctx {
    struct ns *ns;
    uint64_t index;
    uint64_t client;
    uint64_t seq;
    int64_t now;
    const struct ns_cred *cred;
    /* The last command, to replay it. */
    void *last;
    size_t last_len;
};

static struct tctx T;

static inline void t_init(const struct ns_config *cfg)
{
    memset(&T, 0, sizeof(T));
    cr_assert_eq(ns_new(cfg, &T.ns), 0);
    T.client = 7;
    T.now = 1000000000LL;
}

static inline void t_fini(void)
{
    ns_free(T.ns);
    free(T.last);
    memset(&T, 0, sizeof(T));
}

static inline struct ns_req t_req(void)
{
    struct ns_req rq = {.client = T.client, .seq = ++T.seq, .now_ns = T.now, .cred = T.cred};
    return rq;
}

/* Applies an encoded command (taking ownership of it) and decodes its result into r (may be
 * NULL). Returns the command's error. */
static inline int t_apply_on(struct ns *ns, void *cmd, size_t len, struct ns_result *r)
{
    void *res = NULL;
    size_t rlen = 0;
    int err = ns_apply(ns, ++T.index, cmd, len, &res, &rlen);
    free(cmd);
    cr_assert_not_null(res);
    struct ns_result tmp;
    cr_assert_eq(ns_result_decode(res, rlen, &tmp), 0);
    cr_assert_eq(tmp.err, err);
    free(res);
    if (r != NULL)
        *r = tmp;
    else
        ns_result_clear(&tmp);
    return err;
}

static inline int t_apply(void *cmd, size_t len, struct ns_result *r)
{
    free(T.last);
    T.last = malloc(len);
    cr_assert_not_null(T.last);
    memcpy(T.last, cmd, len);
    T.last_len = len;
    return t_apply_on(T.ns, cmd, len, r);
}

/* Applies the last command again (a client retry). */
static inline int t_retry(struct ns_result *r)
{
    void *c = malloc(T.last_len);
    memcpy(c, T.last, T.last_len);
    return t_apply_on(T.ns, c, T.last_len, r);
}

#define T_ENC(call)                                                                                \
    do {                                                                                           \
        int enc_rc_ = (call);                                                                      \
        if (enc_rc_ != 0)                                                                          \
            return enc_rc_;                                                                        \
    } while (0)

static inline int t_out(int err, struct ns_result *r, struct ns_attr *out, uint32_t i)
{
    if (err == 0 && out != NULL) {
        cr_assert_gt(r->n_attr, i);
        *out = r->attr[i];
    }
    ns_result_clear(r);
    return err;
}

static inline int t_mkdir(const struct ns_attr *p, const char *name, uint32_t mode,
                          struct ns_attr *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    struct ns_result r;
    T_ENC(ns_cmd_mkdir(&rq, p->ino, p->gen, name, mode, &c, &n));
    return t_out(t_apply(c, n, &r), &r, out, 0);
}

static inline int t_create(const struct ns_attr *p, const char *name, uint32_t mode, uint32_t flags,
                           struct ns_attr *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    struct ns_result r;
    T_ENC(ns_cmd_create(&rq, p->ino, p->gen, name, mode, flags, &c, &n));
    return t_out(t_apply(c, n, &r), &r, out, 0);
}

static inline int t_symlink(const struct ns_attr *p, const char *name, const char *target,
                            struct ns_attr *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    struct ns_result r;
    T_ENC(ns_cmd_symlink(&rq, p->ino, p->gen, name, target, &c, &n));
    return t_out(t_apply(c, n, &r), &r, out, 0);
}

static inline int t_link(const struct ns_attr *in, const struct ns_attr *p, const char *name,
                         struct ns_attr *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    struct ns_result r;
    T_ENC(ns_cmd_link(&rq, in->ino, in->gen, p->ino, p->gen, name, &c, &n));
    return t_out(t_apply(c, n, &r), &r, out, 0);
}

/* unlink/rmdir/setattr/commit return the result (freed blocks) through r when not NULL. */
static inline int t_unlink(const struct ns_attr *p, const char *name, struct ns_result *r)
{
    if (r != NULL)
        memset(r, 0, sizeof(*r));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    T_ENC(ns_cmd_unlink(&rq, p->ino, p->gen, name, &c, &n));
    return t_apply(c, n, r);
}

static inline int t_rmdir(const struct ns_attr *p, const char *name)
{
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    T_ENC(ns_cmd_rmdir(&rq, p->ino, p->gen, name, &c, &n));
    return t_apply(c, n, NULL);
}

static inline int t_rename(const struct ns_attr *sp, const char *sname, const struct ns_attr *dp,
                           const char *dname, uint32_t flags, struct ns_result *r)
{
    if (r != NULL)
        memset(r, 0, sizeof(*r));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    T_ENC(ns_cmd_rename(&rq, sp->ino, sp->gen, sname, dp->ino, dp->gen, dname, flags, &c, &n));
    return t_apply(c, n, r);
}

static inline int t_setattr(const struct ns_attr *in, const struct ns_setattr *sa,
                            struct ns_result *r)
{
    if (r != NULL)
        memset(r, 0, sizeof(*r));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    T_ENC(ns_cmd_setattr(&rq, in->ino, in->gen, sa, &c, &n));
    return t_apply(c, n, r);
}

static inline int t_alloc(uint32_t count, uint64_t *first)
{
    if (first != NULL)
        *first = 0;
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    struct ns_result r;
    T_ENC(ns_cmd_alloc_blocks(&rq, count, &c, &n));
    int err = t_apply(c, n, &r);
    if (first != NULL)
        *first = r.value;
    ns_result_clear(&r);
    return err;
}

static inline struct ns_block t_block(uint64_t id, uint32_t len)
{
    struct ns_block b = {
        .id = id, .len = len, .crc32c = (uint32_t)(id * 2654435761u), .n_replicas = 3};
    for (uint32_t i = 0; i < 3; i++)
        b.replicas[i] = (uint32_t)(id % 5 + i + 1);
    return b;
}

static inline int t_commit(const struct ns_attr *in, uint64_t off, uint64_t len, uint64_t size,
                           uint32_t flags, const struct ns_block *b, uint32_t nb,
                           struct ns_result *r)
{
    if (r != NULL)
        memset(r, 0, sizeof(*r));
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    T_ENC(ns_cmd_commit(&rq, in->ino, in->gen, off, len, size, flags, b, nb, &c, &n));
    return t_apply(c, n, r);
}

/* Writes one new block of len bytes at off (allocating its id); *id_out gets the id. */
static inline int t_write(const struct ns_attr *in, uint64_t off, uint32_t len, uint64_t *id_out,
                          struct ns_result *r)
{
    uint64_t id = 0;
    cr_assert_eq(t_alloc(1, &id), 0);
    struct ns_block b = t_block(id, len);
    if (id_out)
        *id_out = id;
    uint64_t size = off + len;
    return t_commit(in, off, len, size, 0, &b, 1, r);
}

static inline struct ns_attr t_root(void)
{
    struct ns_attr a;
    cr_assert_eq(ns_getattr(T.ns, NS_ROOT_INO, 1, &a), 0);
    return a;
}

static inline struct ns_attr t_get(const struct ns_attr *h)
{
    struct ns_attr a;
    cr_assert_eq(ns_getattr(T.ns, h->ino, h->gen, &a), 0, "getattr %" PRIu64, h->ino);
    return a;
}

static inline int t_lookup(const struct ns_attr *p, const char *name, struct ns_attr *out)
{
    struct ns_attr tmp;
    return ns_lookup(T.ns, T.cred, p->ino, p->gen, name, out ? out : &tmp);
}

/* ---- Canonical dump through the read API ---- */

struct sbuf {
    char *p;
    size_t n, cap;
};

static inline void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        cr_assert_geq(k, 0);
        if (s->p != NULL && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        s->cap = s->cap ? s->cap * 2 + (size_t)k : 4096 + (size_t)k;
        s->p = realloc(s->p, s->cap);
        cr_assert_not_null(s->p);
    }
}

static inline void dump_attr(struct sbuf *s, const struct ns_attr *a)
{
    sb_printf(s,
              "ino=%" PRIu64 " gen=%" PRIu64 " mode=%o nlink=%u uid=%u gid=%u size=%" PRIu64
              " a=%" PRId64 " m=%" PRId64 " c=%" PRId64,
              a->ino, a->gen, a->mode, a->nlink, a->uid, a->gid, a->size, a->atime_ns, a->mtime_ns,
              a->ctime_ns);
}

static inline void dump_dir(struct ns *ns, struct sbuf *s, const struct ns_attr *dir,
                            const char *path, int depth)
{
    cr_assert_lt(depth, 1000);
    uint64_t cookie = 0;
    for (;;) {
        struct ns_dirpage pg;
        cr_assert_eq(ns_readdir(ns, NULL, dir->ino, dir->gen, cookie, 7, 4096, &pg), 0);
        for (uint32_t i = 0; i < pg.n; i++) {
            const struct ns_dirent *e = &pg.ents[i];
            const char *name = pg.names + e->name_off;
            cookie = e->cookie;
            sb_printf(s, "%s/%s [%" PRIu64 "] ", path, name, e->cookie);
            dump_attr(s, &e->attr);
            sb_printf(s, "\n");
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            if (S_ISLNK(e->attr.mode)) {
                char t[NS_SYMLINK_MAX + 1];
                size_t tl;
                cr_assert_eq(ns_readlink(ns, e->attr.ino, e->attr.gen, t, &tl), 0);
                sb_printf(s, "  -> %s\n", t);
            } else if (S_ISREG(e->attr.mode)) {
                struct ns_blocklist bl;
                uint64_t off = 0;
                do {
                    cr_assert_eq(ns_get_blocks(ns, NULL, e->attr.ino, e->attr.gen, off,
                                               UINT64_MAX - off, 3, &bl),
                                 0);
                    for (uint32_t k = 0; k < bl.n; k++) {
                        const struct ns_extent *x = &bl.ext[k];
                        sb_printf(s,
                                  "  ext off=%" PRIu64 " boff=%u len=%u id=%" PRIu64
                                  " blen=%u crc=%u reps=%u:",
                                  x->off, x->block_off, x->len, x->block.id, x->block.len,
                                  x->block.crc32c, x->block.n_replicas);
                        for (uint32_t r = 0; r < x->block.n_replicas; r++)
                            sb_printf(s, "%u,", x->block.replicas[r]);
                        sb_printf(s, "\n");
                        off = x->off + x->len;
                    }
                    bool more = bl.more;
                    ns_blocklist_free(&bl);
                    if (!more)
                        break;
                } while (1);
            } else if (S_ISDIR(e->attr.mode)) {
                char sub[4096];
                int k = snprintf(sub, sizeof(sub), "%s/%s", path, name);
                cr_assert_lt(k, (int)sizeof(sub));
                dump_dir(ns, s, &e->attr, sub, depth + 1);
            }
        }
        bool eof = pg.eof;
        ns_dirpage_free(&pg);
        if (eof)
            break;
    }
}

/* The whole visible state as text (malloc'd). */
static inline char *t_dump(struct ns *ns)
{
    struct sbuf s = {0};
    struct ns_attr root;
    cr_assert_eq(ns_getattr(ns, NS_ROOT_INO, 1, &root), 0);
    struct ns_statfs st;
    ns_statfs(ns, &st);
    sb_printf(&s,
              "statfs inodes=%" PRIu64 " files=%" PRIu64 " dirs=%" PRIu64 " symlinks=%" PRIu64
              " blocks=%" PRIu64 " applied=%" PRIu64 " sessions=%" PRIu64 " gc=%" PRIu64 "\n",
              st.inodes, st.files, st.dirs, st.symlinks, st.blocks_allocated, st.applied,
              st.sessions, st.gc_pending);
    uint64_t next, ids[64];
    uint32_t n;
    ns_gc_pending(ns, 0, 64, ids, &n, &next);
    sb_printf(&s, "gc:");
    for (uint32_t i = 0; i < n; i++)
        sb_printf(&s, " %" PRIu64, ids[i]);
    sb_printf(&s, "\n/ ");
    dump_attr(&s, &root);
    sb_printf(&s, "\n");
    dump_dir(ns, &s, &root, "", 0);
    return s.p;
}

/* ---- Snapshots in memory ---- */

static inline int sb_write(void *arg, const void *data, size_t len)
{
    struct sbuf *s = arg;
    if (s->n + len > s->cap) {
        s->cap = (s->n + len) * 2;
        s->p = realloc(s->p, s->cap);
        cr_assert_not_null(s->p);
    }
    memcpy(s->p + s->n, data, len);
    s->n += len;
    return 0;
}

static inline struct sbuf t_snapshot(struct ns *ns)
{
    struct sbuf s = {0};
    cr_assert_eq(ns_snapshot_write(ns, sb_write, &s), 0);
    return s;
}

/* Restores ns from the bytes (through a temporary file); returns the error. */
static inline int t_restore(struct ns *ns, const void *data, size_t len)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    if (len > 0)
        cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fflush(f), 0);
    cr_assert_eq(lseek(fileno(f), 0, SEEK_SET), 0);
    int rc = ns_restore_fd(ns, fileno(f), len);
    fclose(f);
    return rc;
}

/* ---- Invariants, checked through the read API ---- */

struct inv_seen {
    uint64_t ino;
    uint32_t nlink;
    uint32_t refs;
};

static inline void inv_walk(struct ns *ns, const struct ns_attr *dir, struct inv_seen *seen,
                            size_t cap, uint64_t *dirs, uint64_t *others, int depth)
{
    cr_assert_lt(depth, 1000);
    uint64_t cookie = 0;
    uint32_t subdirs = 0;
    (*dirs)++;
    for (;;) {
        struct ns_dirpage pg;
        cr_assert_eq(ns_readdir(ns, NULL, dir->ino, dir->gen, cookie, 50, 1 << 20, &pg), 0);
        for (uint32_t i = 0; i < pg.n; i++) {
            const struct ns_dirent *e = &pg.ents[i];
            const char *name = pg.names + e->name_off;
            cr_assert_gt(e->cookie, cookie, "cookies increase");
            cookie = e->cookie;
            if (strcmp(name, ".") == 0) {
                cr_assert_eq(e->attr.ino, dir->ino);
                continue;
            }
            if (strcmp(name, "..") == 0)
                continue;
            struct ns_attr a;
            cr_assert_eq(ns_lookup(ns, NULL, dir->ino, dir->gen, name, &a), 0, "lookup %s", name);
            cr_assert_eq(a.ino, e->attr.ino);
            if (S_ISDIR(e->attr.mode)) {
                struct ns_attr up;
                cr_assert_eq(ns_lookup(ns, NULL, e->attr.ino, e->attr.gen, "..", &up), 0);
                cr_assert_eq(up.ino, dir->ino, "parent of %s", name);
                subdirs++;
                inv_walk(ns, &e->attr, seen, cap, dirs, others, depth + 1);
            } else {
                cr_assert_lt(e->attr.ino, cap);
                struct inv_seen *s = &seen[e->attr.ino];
                if (s->refs == 0)
                    (*others)++;
                s->ino = e->attr.ino;
                s->nlink = e->attr.nlink;
                s->refs++;
                if (S_ISREG(e->attr.mode)) {
                    struct ns_blocklist bl;
                    cr_assert_eq(ns_get_blocks(ns, NULL, e->attr.ino, e->attr.gen, 0, UINT64_MAX,
                                               1u << 20, &bl),
                                 0);
                    uint64_t end = 0;
                    for (uint32_t k = 0; k < bl.n; k++) {
                        cr_assert_geq(bl.ext[k].off, end, "extents sorted, not overlapping");
                        cr_assert_gt(bl.ext[k].len, 0);
                        cr_assert_leq(bl.ext[k].block_off + (uint64_t)bl.ext[k].len,
                                      bl.ext[k].block.len);
                        end = bl.ext[k].off + bl.ext[k].len;
                    }
                    cr_assert_leq(end, e->attr.size, "extents within size");
                    ns_blocklist_free(&bl);
                }
            }
        }
        bool eof = pg.eof;
        ns_dirpage_free(&pg);
        if (eof)
            break;
    }
    struct ns_attr self;
    cr_assert_eq(ns_getattr(ns, dir->ino, dir->gen, &self), 0);
    cr_assert_eq(self.nlink, 2 + subdirs, "dir %" PRIu64 " nlink", dir->ino);
}

/* Every directory reachable with nlink 2 + subdirectories, every other inode's nlink equal to
 * its entries, ".." right, lookups agreeing with readdir, statfs counts matching the tree. */
static inline void t_check_invariants(struct ns *ns)
{
    struct ns_statfs st;
    ns_statfs(ns, &st);
    size_t cap = (size_t)st.inodes * 4 + 4096;
    struct inv_seen *seen = calloc(cap, sizeof(*seen));
    uint64_t dirs = 0, others = 0;
    struct ns_attr root;
    cr_assert_eq(ns_getattr(ns, NS_ROOT_INO, 1, &root), 0);
    inv_walk(ns, &root, seen, cap, &dirs, &others, 0);
    for (size_t i = 0; i < cap; i++)
        if (seen[i].refs)
            cr_assert_eq(seen[i].refs, seen[i].nlink, "nlink of %zu", i);
    cr_assert_eq(dirs, st.dirs);
    cr_assert_eq(others, st.files + st.symlinks);
    free(seen);
}

#endif
