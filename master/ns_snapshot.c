/* Snapshots of the namespace: a compact stream (LEB128 varints) written through a 1 MiB buffer
 * and read back through one, with every structural invariant checked on the way in. Layout:
 *   "DFSNSSNP", u32 version,
 *   varints applied, next_block, orphan_below (version 2 on; 0 in version 1), n_slots, n_used,
 *     n_free,
 *   n_used inodes in inode order: ino delta, gen, mode, nlink, uid, gid, size, ctime (zigzag),
 *     mtime - ctime, atime - ctime (zigzag), then by type
 *       file: n_ext, each: gap from the previous end, block_off, len, id, block len, u32 crc,
 *             u8 n_replicas, replicas
 *       symlink: size bytes of target
 *       dir: parent, next_pos, n entries, each: pos delta, ino, u8 name length, name,
 *   n_free free slots in free-list order: ino, gen,
 *   sessions from least to most recently seen: n, each: client, seq, last_seen (zigzag),
 *     err (zigzag), result length, result,
 *   garbage: first sequence, n, ids,
 *   "DFSNSEND". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "master/ns_internal.h"

#define SNAP_MAGIC   "DFSNSSNP"
#define SNAP_END     "DFSNSEND"
#define SNAP_VERSION 2 /* what is written; 1 is still read */
#define SNAP_BUF     (1u << 20)
#define MAX_RESULT   (1u << 29) /* above the largest result (every block of a file freed) */

/* ---- Writing ---- */

struct swriter {
    uint8_t *buf;
    size_t n;
    ns_write_fn fn;
    void *arg;
    int err;
};

static void sw_flush(struct swriter *w)
{
    if (w->err == 0 && w->n > 0)
        w->err = w->fn(w->arg, w->buf, w->n);
    w->n = 0;
}

static void sw_bytes(struct swriter *w, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0 && w->err == 0) {
        if (w->n == SNAP_BUF)
            sw_flush(w);
        size_t k = SNAP_BUF - w->n < len ? SNAP_BUF - w->n : len;
        memcpy(w->buf + w->n, b, k);
        w->n += k;
        b += k;
        len -= k;
    }
}

static void sw_var(struct swriter *w, uint64_t v)
{
    if (SNAP_BUF - w->n < 10)
        sw_flush(w);
    while (v >= 0x80) {
        w->buf[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->buf[w->n++] = (uint8_t)v;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void sw_u8(struct swriter *w, uint8_t v)
{
    sw_bytes(w, &v, 1);
}

static void sw_u32(struct swriter *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sw_bytes(w, b, 4);
}

static void write_inode(struct swriter *w, const struct ns_inode *in)
{
    sw_var(w, in->gen);
    sw_var(w, in->mode);
    sw_var(w, in->nlink);
    sw_var(w, in->uid);
    sw_var(w, in->gid);
    sw_var(w, in->size);
    sw_var(w, zigzag(in->ctime));
    sw_var(w, zigzag((int64_t)((uint64_t)in->mtime - (uint64_t)in->ctime)));
    sw_var(w, zigzag((int64_t)((uint64_t)in->atime - (uint64_t)in->ctime)));
    if (S_ISREG(in->mode)) {
        const struct ns_extents *x = in->u.ext;
        uint32_t n = x ? x->n : 0;
        uint64_t prev_end = 0;
        sw_var(w, n);
        for (uint32_t i = 0; i < n && w->err == 0; i++) {
            const struct ns_extent *e = &x->e[i];
            sw_var(w, e->off - prev_end);
            sw_var(w, e->block_off);
            sw_var(w, e->len);
            sw_var(w, e->block.id);
            sw_var(w, e->block.len);
            sw_u32(w, e->block.crc32c);
            sw_u8(w, e->block.n_replicas);
            for (uint32_t k = 0; k < e->block.n_replicas; k++)
                sw_var(w, e->block.replicas[k]);
            prev_end = e->off + e->len;
        }
    } else if (S_ISLNK(in->mode)) {
        sw_bytes(w, in->u.target, in->size);
    } else {
        const struct ns_dir *d = in->u.dir;
        uint64_t prev = 0;
        sw_var(w, d->parent);
        sw_var(w, d->next_pos);
        sw_var(w, d->n_live);
        for (uint32_t i = 0; i < d->n_ent && w->err == 0; i++) {
            const struct ns_dent *e = &d->ents[i];
            if (e->ino == 0)
                continue;
            sw_var(w, e->pos - prev);
            sw_var(w, e->ino);
            sw_u8(w, e->name_len);
            sw_bytes(w, d->names + e->name_off, e->name_len);
            prev = e->pos;
        }
    }
}

int ns_snapshot_write(struct ns *ns, ns_write_fn fn, void *arg)
{
    struct swriter w = {.fn = fn, .arg = arg};
    if ((w.buf = malloc(SNAP_BUF)) == NULL)
        return CM_E_NOMEM;
    uint32_t n_used = ns->n_slots - 1 - ns->n_free;
    sw_bytes(&w, SNAP_MAGIC, 8);
    sw_u32(&w, SNAP_VERSION);
    sw_var(&w, ns->applied);
    sw_var(&w, ns->next_block);
    sw_var(&w, ns->orphan_below);
    sw_var(&w, ns->n_slots);
    sw_var(&w, n_used);
    sw_var(&w, ns->n_free);
    uint32_t prev = 0;
    for (uint32_t i = 1; i < ns->n_slots && w.err == 0; i++) {
        if (ns->inodes[i].mode == 0)
            continue;
        sw_var(&w, i - prev);
        write_inode(&w, &ns->inodes[i]);
        prev = i;
    }
    for (uint32_t i = ns->free_head; i != 0 && w.err == 0; i = ns->inodes[i].aux) {
        sw_var(&w, i);
        sw_var(&w, ns->inodes[i].gen);
    }
    sw_var(&w, ns->n_sessions);
    for (const struct ns_session *s = ns->lru_head; s != NULL && w.err == 0; s = s->next) {
        sw_var(&w, s->client);
        sw_var(&w, s->seq);
        sw_var(&w, zigzag(s->last_seen));
        sw_var(&w, zigzag(s->err));
        sw_var(&w, s->result_len);
        sw_bytes(&w, s->result, s->result_len);
    }
    sw_var(&w, 0); /* was the sequence number of the oldest pending id */
    sw_var(&w, ns->gc.live);
    for (size_t i = 0; i < ns->gc.n && w.err == 0; i++)
        if (ns->gc.ids[i] != 0)
            sw_var(&w, ns->gc.ids[i]);
    sw_bytes(&w, SNAP_END, 8);
    sw_flush(&w);
    free(w.buf);
    return w.err;
}

/* ---- Reading ---- */

struct sreader {
    int fd;
    uint8_t *buf;
    size_t pos, len;
    uint64_t left; /* bytes of the snapshot not yet read into buf */
    int err;
};

static uint64_t sr_remaining(const struct sreader *r)
{
    return r->left + (r->len - r->pos);
}

static bool sr_fill(struct sreader *r)
{
    if (r->err != 0)
        return false;
    if (r->left == 0) {
        r->err = CM_E_STORE; /* truncated */
        return false;
    }
    size_t want = r->left < SNAP_BUF ? (size_t)r->left : SNAP_BUF;
    ssize_t got;
    do
        got = read(r->fd, r->buf, want);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        r->err = got < 0 ? CM_E_IO : CM_E_STORE;
        return false;
    }
    r->pos = 0;
    r->len = (size_t)got;
    r->left -= (uint64_t)got;
    return true;
}

static uint8_t sr_u8(struct sreader *r)
{
    if (r->pos == r->len && !sr_fill(r))
        return 0;
    return r->buf[r->pos++];
}

static void sr_bytes(struct sreader *r, void *out, size_t n)
{
    uint8_t *o = out;
    while (n > 0) {
        if (r->pos == r->len && !sr_fill(r)) {
            memset(o, 0, n);
            return;
        }
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(o, r->buf + r->pos, k);
        r->pos += k;
        o += k;
        n -= k;
    }
}

static uint64_t sr_var(struct sreader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = sr_u8(r);
        if (r->err != 0)
            return 0;
        if (shift == 63 && b > 1)
            break;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->err = CM_E_STORE;
    return 0;
}

/* A varint at most max, else CM_E_STORE. */
static uint64_t sr_max(struct sreader *r, uint64_t max)
{
    uint64_t v = sr_var(r);
    if (v > max && r->err == 0)
        r->err = CM_E_STORE;
    return r->err ? 0 : v;
}

static uint32_t sr_u32(struct sreader *r)
{
    uint8_t b[4];
    sr_bytes(r, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void corrupt(struct sreader *r)
{
    if (r->err == 0)
        r->err = CM_E_STORE;
}

static int read_file(struct sreader *r, struct ns *ns, struct ns_inode *in)
{
    uint64_t n = sr_max(r, NS_MAX_EXTENTS);
    if (r->err || n == 0)
        return r->err;
    if (n > sr_remaining(r) / 8) /* an extent takes at least 10 bytes */
        return CM_E_STORE;
    struct ns_extents *x = malloc(sizeof(*x) + n * sizeof(struct ns_extent));
    if (x == NULL)
        return CM_E_NOMEM;
    x->n = x->cap = (uint32_t)n;
    in->u.ext = x;
    uint64_t end = 0;
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        struct ns_extent *e = &x->e[i];
        memset(e, 0, sizeof(*e));
        uint64_t gap = sr_var(r);
        e->block_off = (uint32_t)sr_max(r, UINT32_MAX);
        e->len = (uint32_t)sr_max(r, UINT32_MAX);
        e->block.id = sr_var(r);
        e->block.len = (uint32_t)sr_max(r, UINT32_MAX);
        e->block.crc32c = sr_u32(r);
        e->block.n_replicas = sr_u8(r);
        if (e->block.n_replicas == 0 || e->block.n_replicas > NS_MAX_REPLICAS)
            corrupt(r);
        for (uint32_t k = 0; k < e->block.n_replicas && r->err == 0; k++)
            e->block.replicas[k] = (uint32_t)sr_max(r, UINT32_MAX);
        if (r->err)
            break;
        if (gap > NS_MAX_FILE_SIZE - end || e->len == 0 ||
            (uint64_t)e->block_off + e->len > e->block.len || e->block.id == 0 ||
            e->block.id >= ns->next_block)
            return CM_E_STORE;
        e->off = end + gap;
        end = e->off + e->len;
        if (end > in->size)
            return CM_E_STORE;
    }
    return r->err;
}

static int read_symlink(struct sreader *r, struct ns_inode *in)
{
    if (in->size == 0 || in->size > NS_SYMLINK_MAX)
        return CM_E_STORE;
    char *t = malloc(in->size + 1);
    if (t == NULL)
        return CM_E_NOMEM;
    in->u.target = t;
    sr_bytes(r, t, in->size);
    t[in->size] = 0;
    if (r->err == 0 && strlen(t) != in->size)
        return CM_E_STORE;
    return r->err;
}

static int read_dir(struct sreader *r, struct ns *ns, struct ns_inode *in)
{
    uint32_t parent = (uint32_t)sr_max(r, UINT32_MAX);
    uint64_t next_pos = sr_var(r);
    uint64_t n = sr_max(r, UINT32_MAX - 2);
    if (r->err)
        return r->err;
    if (next_pos < NS_FIRST_POS || parent == 0 || parent >= ns->n_slots || n > sr_remaining(r) / 4)
        return CM_E_STORE;
    int rc = ns__dir_new(parent, &in->u.dir);
    if (rc != 0)
        return rc;
    struct ns_dir *d = in->u.dir;
    d->next_pos = next_pos;
    uint64_t pos = 0;
    char name[NS_NAME_MAX];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t delta = sr_var(r);
        uint64_t ino = sr_var(r);
        uint8_t len = sr_u8(r);
        sr_bytes(r, name, len);
        if (r->err)
            return r->err;
        if (delta == 0 || delta > UINT64_MAX - pos || ino <= NS_ROOT_INO || ino >= ns->n_slots ||
            ns__name_check(name, len) != 0)
            return CM_E_STORE;
        pos += delta;
        if (pos < NS_FIRST_POS || pos >= next_pos)
            return CM_E_STORE;
        if ((rc = ns__dir_append_raw(d, pos, (uint32_t)ino, name, len)) != 0)
            return rc;
    }
    rc = ns__dir_index(d);
    return rc == CM_E_EXIST ? CM_E_STORE : rc;
}

static int read_inodes(struct sreader *r, struct ns *ns, uint32_t n_used)
{
    uint64_t ino = 0;
    for (uint32_t k = 0; k < n_used; k++) {
        uint64_t delta = sr_var(r);
        if (r->err)
            return r->err;
        if (delta == 0 || ino + delta >= ns->n_slots)
            return CM_E_STORE;
        ino += delta;
        struct ns_inode *in = &ns->inodes[ino];
        uint64_t gen = sr_max(r, UINT32_MAX);
        uint64_t mode = sr_max(r, UINT32_MAX);
        in->nlink = (uint32_t)sr_max(r, UINT32_MAX);
        in->uid = (uint32_t)sr_max(r, UINT32_MAX);
        in->gid = (uint32_t)sr_max(r, UINT32_MAX);
        in->size = sr_max(r, NS_MAX_FILE_SIZE);
        in->ctime = unzigzag(sr_var(r));
        in->mtime = (int64_t)((uint64_t)in->ctime + (uint64_t)unzigzag(sr_var(r)));
        in->atime = (int64_t)((uint64_t)in->ctime + (uint64_t)unzigzag(sr_var(r)));
        if (r->err)
            return r->err;
        uint32_t type = (uint32_t)mode & S_IFMT;
        if (gen == 0 || in->nlink == 0 || (mode & ~(uint64_t)(S_IFMT | 07777)) ||
            (type != S_IFDIR && type != S_IFREG && type != S_IFLNK) ||
            (ino == NS_ROOT_INO && type != S_IFDIR))
            return CM_E_STORE;
        in->gen = (uint32_t)gen;
        in->mode = (uint32_t)mode;
        int rc;
        if (type == S_IFREG) {
            ns->n_files++;
            rc = read_file(r, ns, in);
        } else if (type == S_IFLNK) {
            ns->n_symlinks++;
            rc = read_symlink(r, in);
        } else {
            ns->n_dirs++;
            rc = read_dir(r, ns, in);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int read_free(struct sreader *r, struct ns *ns)
{
    uint32_t *link = &ns->free_head;
    for (uint32_t k = 0; k < ns->n_free; k++) {
        uint64_t ino = sr_var(r);
        uint64_t gen = sr_max(r, UINT32_MAX);
        if (r->err)
            return r->err;
        if (ino == 0 || ino >= ns->n_slots)
            return CM_E_STORE;
        struct ns_inode *in = &ns->inodes[ino];
        if (in->mode != 0 || in->nlink != 0)
            return CM_E_STORE; /* in use, or listed twice */
        in->nlink = 1;
        in->gen = (uint32_t)gen;
        *link = (uint32_t)ino;
        link = &in->aux;
    }
    *link = 0;
    for (uint32_t i = ns->free_head; i != 0; i = ns->inodes[i].aux)
        ns->inodes[i].nlink = 0;
    return 0;
}

static int read_sessions(struct sreader *r, struct ns *ns)
{
    uint64_t n = sr_var(r);
    if (r->err)
        return r->err;
    if (n > sr_remaining(r) / 5)
        return CM_E_STORE;
    for (uint64_t i = 0; i < n; i++) {
        struct ns_session *s = calloc(1, sizeof(*s)), *old = NULL;
        if (s == NULL)
            return CM_E_NOMEM;
        s->client = sr_var(r);
        s->seq = sr_var(r);
        s->last_seen = unzigzag(sr_var(r));
        int64_t err = unzigzag(sr_var(r));
        s->result_len = (size_t)sr_max(r, MAX_RESULT);
        if (r->err == 0 && (s->client == 0 || err > 0 || err < -1000 ||
                            s->result_len > sr_remaining(r) || s->result_len == 0))
            corrupt(r);
        if (r->err == 0 && (s->result = malloc(s->result_len)) == NULL)
            r->err = CM_E_NOMEM;
        if (r->err == 0)
            sr_bytes(r, s->result, s->result_len);
        if (r->err == 0) {
            HASH_FIND(hh, ns->sessions, &s->client, sizeof(uint64_t), old);
            if (old != NULL)
                corrupt(r);
        }
        if (r->err != 0) {
            free(s->result);
            free(s);
            return r->err;
        }
        s->err = (int)err;
        ns__session_link(ns, s);
    }
    return 0;
}

static int read_gc(struct sreader *r, struct ns *ns)
{
    (void)sr_var(r); /* a sequence number in older snapshots, 0 now */
    uint64_t n = sr_var(r);
    if (r->err)
        return r->err;
    if (n > sr_remaining(r))
        return CM_E_STORE;
    int rc = ns__gc_reserve(&ns->gc, n);
    for (uint64_t i = 0; i < n && rc == 0 && r->err == 0; i++) {
        uint64_t id = sr_var(r);
        if (r->err == 0 && id == 0)
            return CM_E_STORE;
        /* Snapshots of older versions may name an id twice: it is pending once. */
        if (r->err == 0 && !ns_gc_is_pending(ns, id))
            ns__gc_push(&ns->gc, &id, 1); /* room was reserved */
    }
    return rc ? rc : r->err;
}

/* Every entry names a live inode; link counts match the entries; every directory has one
 * entry (in the directory its parent field names) and is reachable from the root. */
static int check_tree(struct ns *ns)
{
    int rc = CM_E_STORE;
    uint32_t *refs = calloc(ns->n_slots, sizeof(uint32_t));
    uint32_t *queue = calloc(ns->n_dirs + 1, sizeof(uint32_t));
    if (refs == NULL || queue == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    for (uint32_t i = 1; i < ns->n_slots; i++) {
        const struct ns_inode *in = &ns->inodes[i];
        if (!S_ISDIR(in->mode))
            continue;
        const struct ns_dir *d = in->u.dir;
        uint64_t subdirs = 0;
        for (uint32_t k = 0; k < d->n_ent; k++) {
            uint32_t c = d->ents[k].ino;
            const struct ns_inode *ci = &ns->inodes[c];
            if (ci->mode == 0)
                goto out;
            refs[c]++;
            if (S_ISDIR(ci->mode)) {
                if (ci->u.dir->parent != i || refs[c] > 1)
                    goto out;
                subdirs++;
            }
        }
        if (in->nlink != 2 + subdirs)
            goto out;
    }
    if (ns->inodes[NS_ROOT_INO].u.dir->parent != NS_ROOT_INO)
        goto out;
    for (uint32_t i = 1; i < ns->n_slots; i++) {
        const struct ns_inode *in = &ns->inodes[i];
        if (in->mode == 0)
            continue;
        if (S_ISDIR(in->mode) ? refs[i] != (i == NS_ROOT_INO ? 0u : 1u) : refs[i] != in->nlink)
            goto out;
    }
    size_t head = 0, tail = 0;
    queue[tail++] = NS_ROOT_INO;
    while (head < tail) {
        const struct ns_dir *d = ns->inodes[queue[head++]].u.dir;
        for (uint32_t k = 0; k < d->n_ent; k++) {
            uint32_t c = d->ents[k].ino;
            if (S_ISDIR(ns->inodes[c].mode)) {
                if (tail > ns->n_dirs)
                    goto out;
                queue[tail++] = c;
            }
        }
    }
    rc = tail == ns->n_dirs ? 0 : CM_E_STORE;
out:
    free(refs);
    free(queue);
    return rc;
}

static int read_all(struct sreader *r, struct ns *t)
{
    char magic[8];
    sr_bytes(r, magic, 8);
    uint32_t version = sr_u32(r);
    if (r->err || memcmp(magic, SNAP_MAGIC, 8) != 0 || version < 1 || version > SNAP_VERSION)
        return CM_E_STORE;
    t->applied = sr_var(r);
    t->next_block = sr_var(r);
    t->orphan_below = version >= 2 ? sr_var(r) : 0;
    uint64_t n_slots = sr_max(r, UINT32_MAX);
    uint64_t n_used = sr_var(r);
    uint64_t n_free = sr_var(r);
    if (r->err)
        return r->err;
    /* A used slot takes at least 10 bytes, a free one 2: bound the table by the file size. */
    if (t->next_block == 0 || t->orphan_below > t->next_block || n_used == 0 || n_slots < 2 ||
        n_used + n_free + 1 != n_slots || n_slots > sr_remaining(r) / 2 + 2)
        return CM_E_STORE;
    t->inodes = calloc(n_slots, sizeof(struct ns_inode));
    if (t->inodes == NULL)
        return CM_E_NOMEM;
    t->n_slots = t->cap_slots = (uint32_t)n_slots;
    t->n_free = (uint32_t)n_free;
    int rc;
    if ((rc = read_inodes(r, t, (uint32_t)n_used)) != 0 || (rc = read_free(r, t)) != 0 ||
        (rc = read_sessions(r, t)) != 0 || (rc = read_gc(r, t)) != 0)
        return rc;
    sr_bytes(r, magic, 8);
    if (r->err)
        return r->err;
    if (memcmp(magic, SNAP_END, 8) != 0 || sr_remaining(r) != 0 || t->inodes[1].mode == 0 ||
        t->inodes[NS_ROOT_INO].gen != 1) /* the root is never freed: always generation 1 */
        return CM_E_STORE;
    if ((rc = check_tree(t)) != 0)
        return rc;
    return ns__refs_rebuild(t);
}

int ns_restore_fd(struct ns *ns, int fd, uint64_t size)
{
    struct sreader r = {.fd = fd, .left = size};
    struct ns *t = calloc(1, sizeof(*t));
    int rc;
    if (t == NULL || (r.buf = malloc(SNAP_BUF)) == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    t->cfg = ns->cfg;
    if ((rc = read_all(&r, t)) != 0)
        goto out;
    ns__state_clear(ns);
    *ns = *t;
    memset(t, 0, sizeof(*t));
out:
    if (t != NULL)
        ns__state_clear(t);
    free(t);
    free(r.buf);
    return rc;
}
