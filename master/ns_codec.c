/* Binary encoding of the namespace's commands and results (layouts in namespace.h). Decoding
 * checks every length and field: the Raft log is input too. */
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "master/ns_internal.h"

#define CMD_HEADER    32
#define RESULT_HEADER 24
#define ATTR_SIZE     64

/* ---- Byte buffers ---- */

struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int err;
};

static void w_need(struct wbuf *w, size_t k)
{
    if (w->err != 0 || w->n + k <= w->cap)
        return;
    size_t cap = w->cap ? w->cap * 2 : 256;
    while (cap < w->n + k)
        cap *= 2;
    uint8_t *p = realloc(w->p, cap);
    if (p == NULL) {
        w->err = CM_E_NOMEM;
        return;
    }
    w->p = p;
    w->cap = cap;
}

static void w_le(struct wbuf *w, uint64_t v, int bytes)
{
    w_need(w, (size_t)bytes);
    if (w->err != 0)
        return;
    for (int i = 0; i < bytes; i++)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

static void w_u8(struct wbuf *w, uint8_t v)
{
    w_le(w, v, 1);
}
static void w_u16(struct wbuf *w, uint16_t v)
{
    w_le(w, v, 2);
}
static void w_u32(struct wbuf *w, uint32_t v)
{
    w_le(w, v, 4);
}
static void w_u64(struct wbuf *w, uint64_t v)
{
    w_le(w, v, 8);
}

static void w_bytes(struct wbuf *w, const void *b, size_t n)
{
    w_need(w, n);
    if (w->err == 0 && n > 0) {
        memcpy(w->p + w->n, b, n);
        w->n += n;
    }
}

static void w_str(struct wbuf *w, const char *s, size_t n)
{
    w_u16(w, (uint16_t)n);
    w_bytes(w, s, n);
}

struct rbuf {
    const uint8_t *p;
    size_t n, off;
    bool bad;
};

static uint64_t r_le(struct rbuf *r, int bytes)
{
    if (r->bad || r->n - r->off < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

static uint8_t r_u8(struct rbuf *r)
{
    return (uint8_t)r_le(r, 1);
}
static uint16_t r_u16(struct rbuf *r)
{
    return (uint16_t)r_le(r, 2);
}
static uint32_t r_u32(struct rbuf *r)
{
    return (uint32_t)r_le(r, 4);
}
static uint64_t r_u64(struct rbuf *r)
{
    return r_le(r, 8);
}

static const char *r_str(struct rbuf *r, size_t *len)
{
    *len = r_u16(r);
    if (r->bad || r->n - r->off < *len) {
        r->bad = true;
        *len = 0;
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    r->off += *len;
    return s;
}

/* ---- Commands ---- */

/* Which string fields an op has. */
static bool has_name(uint8_t op)
{
    return op == NS_OP_MKDIR || op == NS_OP_CREATE || op == NS_OP_SYMLINK || op == NS_OP_UNLINK ||
           op == NS_OP_RMDIR || op == NS_OP_RENAME;
}

static bool has_name2(uint8_t op)
{
    return op == NS_OP_LINK || op == NS_OP_RENAME;
}

static int validate(const struct ns_cmd *c)
{
    int rc;
    if (c->op == 0 || c->op >= NS_OP_COUNT_)
        return CM_E_INVAL;
    if (c->has_cred && c->cred.n_groups > NS_MAX_GROUPS)
        return CM_E_INVAL;
    if (has_name(c->op) && (rc = ns__name_check(c->name, c->name_len)) != 0)
        return rc;
    if (has_name2(c->op) && (rc = ns__name_check(c->name2, c->name2_len)) != 0)
        return rc;
    switch (c->op) {
    case NS_OP_MKDIR:
        return c->mode & ~07777u ? CM_E_INVAL : 0;
    case NS_OP_CREATE:
        return (c->mode & ~07777u) || (c->flags & ~(uint32_t)(NS_CREATE_EXCL | NS_CREATE_TRUNC))
                   ? CM_E_INVAL
                   : 0;
    case NS_OP_SYMLINK:
        if (c->target_len > NS_SYMLINK_MAX)
            return CM_E_NAMETOOLONG;
        return c->target_len > 0 && memchr(c->target, 0, c->target_len) ? CM_E_INVAL : 0;
    case NS_OP_RENAME:
        return c->flags > NS_RENAME_EXCHANGE ? CM_E_INVAL : 0;
    case NS_OP_SETATTR: {
        uint32_t v = c->sa.valid;
        if ((v & ~0xffu) || ((v & NS_SET_ATIME) && (v & NS_SET_ATIME_NOW)) ||
            ((v & NS_SET_MTIME) && (v & NS_SET_MTIME_NOW)) || (c->sa.mode & ~07777u))
            return CM_E_INVAL;
        return (v & NS_SET_SIZE) && c->sa.size > NS_MAX_FILE_SIZE ? CM_E_FBIG : 0;
    }
    case NS_OP_ALLOC_BLOCKS:
        return c->count == 0 || c->count > NS_MAX_ALLOC_BLOCKS ? CM_E_INVAL : 0;
    case NS_OP_COMMIT: {
        if (c->flags & ~(uint32_t)NS_COMMIT_SET_SIZE || c->n_blocks > NS_MAX_COMMIT_BLOCKS ||
            (c->n_blocks > 0 && c->blocks == NULL))
            return CM_E_INVAL;
        if (c->off > NS_MAX_FILE_SIZE || c->len > NS_MAX_FILE_SIZE - c->off ||
            c->size > NS_MAX_FILE_SIZE)
            return CM_E_FBIG;
        if (c->off + c->len > c->size)
            return CM_E_INVAL;
        uint64_t sum = 0;
        for (uint32_t i = 0; i < c->n_blocks; i++) {
            const struct ns_block *b = &c->blocks[i];
            if (b->id == 0 || b->len == 0 || b->n_replicas == 0 || b->n_replicas > NS_MAX_REPLICAS)
                return CM_E_INVAL;
            sum += b->len;
        }
        return sum == c->len ? 0 : CM_E_INVAL;
    }
    case NS_OP_ORPHAN_BOUND:
        return c->count == 0 ? CM_E_INVAL : 0;
    case NS_OP_GC_ACK:
        if (c->n_ids == 0 || c->n_ids > NS_MAX_GC_ACK || c->ids == NULL)
            return CM_E_INVAL;
        for (uint32_t i = 0; i < c->n_ids; i++)
            if (c->ids[i] == 0)
                return CM_E_INVAL;
        return 0;
    default:
        return 0;
    }
}

int ns_cmd_encode(const struct ns_cmd *c, void **out, size_t *len)
{
    int rc = validate(c);
    if (rc != 0)
        return rc;
    struct wbuf w = {0};
    w_u8(&w, NS_CMD_VERSION);
    w_u8(&w, c->op);
    w_u8(&w, c->has_cred);
    w_u8(&w, c->has_cred ? (uint8_t)c->cred.n_groups : 0);
    w_u32(&w, 0);
    w_u64(&w, c->client);
    w_u64(&w, c->seq);
    w_u64(&w, (uint64_t)c->now_ns);
    if (c->has_cred) {
        w_u32(&w, c->cred.uid);
        w_u32(&w, c->cred.gid);
        for (uint32_t i = 0; i < c->cred.n_groups; i++)
            w_u32(&w, c->cred.groups[i]);
    }
    switch (c->op) {
    case NS_OP_MKDIR:
    case NS_OP_CREATE:
    case NS_OP_SYMLINK:
    case NS_OP_UNLINK:
    case NS_OP_RMDIR:
        w_u64(&w, c->ino);
        w_u64(&w, c->gen);
        w_str(&w, c->name, c->name_len);
        if (c->op == NS_OP_MKDIR || c->op == NS_OP_CREATE)
            w_u32(&w, c->mode);
        if (c->op == NS_OP_CREATE)
            w_u32(&w, c->flags);
        if (c->op == NS_OP_SYMLINK)
            w_str(&w, c->target, c->target_len);
        break;
    case NS_OP_LINK:
        w_u64(&w, c->ino);
        w_u64(&w, c->gen);
        w_u64(&w, c->ino2);
        w_u64(&w, c->gen2);
        w_str(&w, c->name2, c->name2_len);
        break;
    case NS_OP_RENAME:
        w_u64(&w, c->ino);
        w_u64(&w, c->gen);
        w_str(&w, c->name, c->name_len);
        w_u64(&w, c->ino2);
        w_u64(&w, c->gen2);
        w_str(&w, c->name2, c->name2_len);
        w_u32(&w, c->flags);
        break;
    case NS_OP_SETATTR:
        w_u64(&w, c->ino);
        w_u64(&w, c->gen);
        w_u32(&w, c->sa.valid);
        w_u32(&w, c->sa.mode);
        w_u32(&w, c->sa.uid);
        w_u32(&w, c->sa.gid);
        w_u64(&w, c->sa.size);
        w_u64(&w, (uint64_t)c->sa.atime_ns);
        w_u64(&w, (uint64_t)c->sa.mtime_ns);
        break;
    case NS_OP_ALLOC_BLOCKS:
        w_u32(&w, (uint32_t)c->count);
        break;
    case NS_OP_COMMIT:
        w_u64(&w, c->ino);
        w_u64(&w, c->gen);
        w_u64(&w, c->off);
        w_u64(&w, c->len);
        w_u64(&w, c->size);
        w_u32(&w, c->flags);
        w_u32(&w, c->n_blocks);
        for (uint32_t i = 0; i < c->n_blocks; i++) {
            const struct ns_block *b = &c->blocks[i];
            w_u64(&w, b->id);
            w_u32(&w, b->len);
            w_u32(&w, b->crc32c);
            w_u8(&w, b->n_replicas);
            for (uint32_t k = 0; k < b->n_replicas; k++)
                w_u32(&w, b->replicas[k]);
        }
        break;
    case NS_OP_GC_ACK:
        w_u32(&w, c->n_ids);
        for (uint32_t i = 0; i < c->n_ids; i++)
            w_u64(&w, c->ids[i]);
        break;
    case NS_OP_ORPHAN_BOUND:
        w_u64(&w, c->count);
        break;
    }
    if (w.err != 0) {
        free(w.p);
        return w.err;
    }
    *out = w.p;
    *len = w.n;
    return 0;
}

void ns_cmd_clear(struct ns_cmd *c)
{
    if (c == NULL)
        return;
    free((void *)c->blocks);
    c->blocks = NULL;
    c->n_blocks = 0;
    free((void *)c->ids);
    c->ids = NULL;
    c->n_ids = 0;
}

int ns_cmd_decode(const void *buf, size_t len, struct ns_cmd *c)
{
    struct rbuf r = {.p = buf, .n = buf ? len : 0};
    struct ns_block *blocks = NULL;
    memset(c, 0, sizeof(*c));
    if (r_u8(&r) != NS_CMD_VERSION)
        return CM_E_INVAL;
    c->op = r_u8(&r);
    uint8_t has_cred = r_u8(&r), ng = r_u8(&r);
    if (r_u32(&r) != 0 || has_cred > 1 || (!has_cred && ng != 0) || ng > NS_MAX_GROUPS)
        return CM_E_INVAL;
    c->client = r_u64(&r);
    c->seq = r_u64(&r);
    c->now_ns = (int64_t)r_u64(&r);
    c->has_cred = has_cred;
    if (has_cred) {
        c->cred.uid = r_u32(&r);
        c->cred.gid = r_u32(&r);
        c->cred.n_groups = ng;
        for (uint32_t i = 0; i < ng; i++)
            c->cred.groups[i] = r_u32(&r);
    }
    switch (c->op) {
    case NS_OP_MKDIR:
    case NS_OP_CREATE:
    case NS_OP_SYMLINK:
    case NS_OP_UNLINK:
    case NS_OP_RMDIR:
        c->ino = r_u64(&r);
        c->gen = r_u64(&r);
        c->name = r_str(&r, &c->name_len);
        if (c->op == NS_OP_MKDIR || c->op == NS_OP_CREATE)
            c->mode = r_u32(&r);
        if (c->op == NS_OP_CREATE)
            c->flags = r_u32(&r);
        if (c->op == NS_OP_SYMLINK)
            c->target = r_str(&r, &c->target_len);
        break;
    case NS_OP_LINK:
        c->ino = r_u64(&r);
        c->gen = r_u64(&r);
        c->ino2 = r_u64(&r);
        c->gen2 = r_u64(&r);
        c->name2 = r_str(&r, &c->name2_len);
        break;
    case NS_OP_RENAME:
        c->ino = r_u64(&r);
        c->gen = r_u64(&r);
        c->name = r_str(&r, &c->name_len);
        c->ino2 = r_u64(&r);
        c->gen2 = r_u64(&r);
        c->name2 = r_str(&r, &c->name2_len);
        c->flags = r_u32(&r);
        break;
    case NS_OP_SETATTR:
        c->ino = r_u64(&r);
        c->gen = r_u64(&r);
        c->sa.valid = r_u32(&r);
        c->sa.mode = r_u32(&r);
        c->sa.uid = r_u32(&r);
        c->sa.gid = r_u32(&r);
        c->sa.size = r_u64(&r);
        c->sa.atime_ns = (int64_t)r_u64(&r);
        c->sa.mtime_ns = (int64_t)r_u64(&r);
        break;
    case NS_OP_ALLOC_BLOCKS:
        c->count = r_u32(&r);
        break;
    case NS_OP_COMMIT:
        c->ino = r_u64(&r);
        c->gen = r_u64(&r);
        c->off = r_u64(&r);
        c->len = r_u64(&r);
        c->size = r_u64(&r);
        c->flags = r_u32(&r);
        c->n_blocks = r_u32(&r);
        /* Each block takes at least 21 bytes: refuse counts the buffer cannot hold. */
        if (r.bad || c->n_blocks > NS_MAX_COMMIT_BLOCKS || c->n_blocks > (r.n - r.off) / 21)
            return CM_E_INVAL;
        if (c->n_blocks > 0 && (blocks = calloc(c->n_blocks, sizeof(*blocks))) == NULL)
            return CM_E_NOMEM;
        for (uint32_t i = 0; i < c->n_blocks && !r.bad; i++) {
            struct ns_block *b = &blocks[i];
            b->id = r_u64(&r);
            b->len = r_u32(&r);
            b->crc32c = r_u32(&r);
            b->n_replicas = r_u8(&r);
            if (b->n_replicas > NS_MAX_REPLICAS)
                r.bad = true;
            for (uint32_t k = 0; k < b->n_replicas && !r.bad; k++)
                b->replicas[k] = r_u32(&r);
        }
        c->blocks = blocks;
        break;
    case NS_OP_GC_ACK: {
        uint64_t *ids = NULL;
        c->n_ids = r_u32(&r);
        if (r.bad || c->n_ids == 0 || c->n_ids > NS_MAX_GC_ACK || c->n_ids != (r.n - r.off) / 8)
            return CM_E_INVAL;
        if ((ids = malloc(c->n_ids * sizeof(*ids))) == NULL)
            return CM_E_NOMEM;
        for (uint32_t i = 0; i < c->n_ids; i++)
            ids[i] = r_u64(&r);
        c->ids = ids;
        break;
    }
    case NS_OP_ORPHAN_BOUND:
        c->count = r_u64(&r);
        break;
    default:
        return CM_E_INVAL;
    }
    int rc = r.bad || r.off != r.n ? CM_E_INVAL : validate(c);
    if (rc != 0)
        ns_cmd_clear(c);
    return rc;
}

int ns_cmd_set_time(void *buf, size_t len, int64_t now_ns)
{
    if (buf == NULL || len < CMD_HEADER)
        return CM_E_INVAL;
    uint8_t *p = (uint8_t *)buf + NS_CMD_TIME_OFFSET;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)now_ns >> (8 * i));
    return 0;
}

/* ---- Per-op encoders ---- */

static struct ns_cmd base(const struct ns_req *rq, uint8_t op)
{
    struct ns_cmd c = {.op = op, .client = rq->client, .seq = rq->seq, .now_ns = rq->now_ns};
    if (rq->cred != NULL) {
        c.has_cred = true;
        c.cred = *rq->cred;
    }
    return c;
}

static size_t slen(const char *s, size_t max)
{
    return s ? strnlen(s, max + 1) : 0;
}

static int named(const struct ns_req *rq, uint8_t op, uint64_t parent, uint64_t pgen,
                 const char *name, struct ns_cmd *c)
{
    *c = base(rq, op);
    c->ino = parent;
    c->gen = pgen;
    c->name = name;
    c->name_len = slen(name, NS_NAME_MAX);
    return 0;
}

int ns_cmd_mkdir(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                 uint32_t mode, void **out, size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_MKDIR, parent, pgen, name, &c);
    c.mode = mode;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_create(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                  uint32_t mode, uint32_t flags, void **out, size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_CREATE, parent, pgen, name, &c);
    c.mode = mode;
    c.flags = flags;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_symlink(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                   const char *target, void **out, size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_SYMLINK, parent, pgen, name, &c);
    c.target = target;
    c.target_len = slen(target, NS_SYMLINK_MAX);
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_link(const struct ns_req *rq, uint64_t ino, uint64_t gen, uint64_t newparent,
                uint64_t npgen, const char *newname, void **out, size_t *len)
{
    struct ns_cmd c = base(rq, NS_OP_LINK);
    c.ino = ino;
    c.gen = gen;
    c.ino2 = newparent;
    c.gen2 = npgen;
    c.name2 = newname;
    c.name2_len = slen(newname, NS_NAME_MAX);
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_unlink(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                  void **out, size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_UNLINK, parent, pgen, name, &c);
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_rmdir(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                 void **out, size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_RMDIR, parent, pgen, name, &c);
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_rename(const struct ns_req *rq, uint64_t sparent, uint64_t spgen, const char *sname,
                  uint64_t dparent, uint64_t dpgen, const char *dname, uint32_t flags, void **out,
                  size_t *len)
{
    struct ns_cmd c;
    named(rq, NS_OP_RENAME, sparent, spgen, sname, &c);
    c.ino2 = dparent;
    c.gen2 = dpgen;
    c.name2 = dname;
    c.name2_len = slen(dname, NS_NAME_MAX);
    c.flags = flags;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_setattr(const struct ns_req *rq, uint64_t ino, uint64_t gen, const struct ns_setattr *sa,
                   void **out, size_t *len)
{
    struct ns_cmd c = base(rq, NS_OP_SETATTR);
    c.ino = ino;
    c.gen = gen;
    c.sa = *sa;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_alloc_blocks(const struct ns_req *rq, uint32_t count, void **out, size_t *len)
{
    struct ns_cmd c = base(rq, NS_OP_ALLOC_BLOCKS);
    c.count = count;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_commit(const struct ns_req *rq, uint64_t ino, uint64_t gen, uint64_t off, uint64_t len,
                  uint64_t size, uint32_t flags, const struct ns_block *blocks, uint32_t n_blocks,
                  void **out, size_t *len_out)
{
    struct ns_cmd c = base(rq, NS_OP_COMMIT);
    c.ino = ino;
    c.gen = gen;
    c.off = off;
    c.len = len;
    c.size = size;
    c.flags = flags;
    c.blocks = blocks;
    c.n_blocks = n_blocks;
    return ns_cmd_encode(&c, out, len_out);
}

int ns_cmd_gc_ack(const struct ns_req *rq, const uint64_t *ids, uint32_t n_ids, void **out,
                  size_t *len)
{
    struct ns_cmd c = base(rq, NS_OP_GC_ACK);
    c.ids = ids;
    c.n_ids = n_ids;
    return ns_cmd_encode(&c, out, len);
}

int ns_cmd_orphan_bound(const struct ns_req *rq, uint64_t below, void **out, size_t *len)
{
    struct ns_cmd c = base(rq, NS_OP_ORPHAN_BOUND);
    c.count = below;
    return ns_cmd_encode(&c, out, len);
}

/* ---- Results ---- */

int ns__result_encode(const struct ns_result *res, void **out, size_t *len)
{
    struct wbuf w = {0};
    w_need(&w, RESULT_HEADER + ATTR_SIZE * res->n_attr + 8 * (size_t)res->n_freed);
    w_u8(&w, NS_RESULT_VERSION);
    w_u8(&w, (uint8_t)res->n_attr);
    w_u16(&w, 0);
    w_u32(&w, (uint32_t)res->err);
    w_u64(&w, res->value);
    w_u32(&w, res->n_freed);
    w_u32(&w, 0);
    for (uint32_t i = 0; i < res->n_attr; i++) {
        const struct ns_attr *a = &res->attr[i];
        w_u64(&w, a->ino);
        w_u64(&w, a->gen);
        w_u32(&w, a->mode);
        w_u32(&w, a->nlink);
        w_u32(&w, a->uid);
        w_u32(&w, a->gid);
        w_u64(&w, a->size);
        w_u64(&w, (uint64_t)a->atime_ns);
        w_u64(&w, (uint64_t)a->mtime_ns);
        w_u64(&w, (uint64_t)a->ctime_ns);
    }
    for (uint32_t i = 0; i < res->n_freed; i++)
        w_u64(&w, res->freed[i]);
    if (w.err != 0) {
        free(w.p);
        *out = NULL;
        *len = 0;
        return w.err;
    }
    *out = w.p;
    *len = w.n;
    return 0;
}

int ns_result_decode(const void *buf, size_t len, struct ns_result *out)
{
    struct rbuf r = {.p = buf, .n = buf ? len : 0};
    memset(out, 0, sizeof(*out));
    uint8_t version = r_u8(&r), n_attr = r_u8(&r);
    uint16_t z16 = r_u16(&r);
    out->err = (int32_t)r_u32(&r);
    out->value = r_u64(&r);
    uint32_t n_freed = r_u32(&r), z32 = r_u32(&r);
    if (r.bad || version != NS_RESULT_VERSION || n_attr > NS_RESULT_MAX_ATTR || z16 || z32 ||
        (r.n - r.off) != (size_t)n_attr * ATTR_SIZE + (size_t)n_freed * 8) {
        memset(out, 0, sizeof(*out));
        return CM_E_PROTO;
    }
    out->n_attr = n_attr;
    for (uint32_t i = 0; i < n_attr; i++) {
        struct ns_attr *a = &out->attr[i];
        a->ino = r_u64(&r);
        a->gen = r_u64(&r);
        a->mode = r_u32(&r);
        a->nlink = r_u32(&r);
        a->uid = r_u32(&r);
        a->gid = r_u32(&r);
        a->size = r_u64(&r);
        a->atime_ns = (int64_t)r_u64(&r);
        a->mtime_ns = (int64_t)r_u64(&r);
        a->ctime_ns = (int64_t)r_u64(&r);
    }
    if (n_freed > 0) {
        out->freed = malloc((size_t)n_freed * sizeof(uint64_t));
        if (out->freed == NULL) {
            memset(out, 0, sizeof(*out));
            return CM_E_NOMEM;
        }
        for (uint32_t i = 0; i < n_freed; i++)
            out->freed[i] = r_u64(&r);
        out->n_freed = n_freed;
    }
    return 0;
}

void ns_result_clear(struct ns_result *r)
{
    if (r == NULL)
        return;
    free(r->freed);
    r->freed = NULL;
    r->n_freed = 0;
}
