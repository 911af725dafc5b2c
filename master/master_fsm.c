/* The master's state machine: dispatches tagged commands to the KV store or the namespace and
 * writes both into one snapshot. */
#include "master/master_fsm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"

#define SNAP_MAGIC   "DFSMFSM1"
#define SNAP_VERSION 2
#define SNAP_HEADER  24 /* magic, version, zero, KV section length */

int master_fsm_wrap(uint8_t tag, const void *cmd, size_t len, void **out, size_t *out_len)
{
    if (tag != MFSM_TAG_KV && tag != MFSM_TAG_NS && tag != MFSM_TAG_CS)
        return CM_E_INVAL;
    uint8_t *b = malloc(len + 1);
    if (b == NULL)
        return CM_E_NOMEM;
    b[0] = tag;
    if (len > 0)
        memcpy(b + 1, cmd, len);
    *out = b;
    *out_len = len + 1;
    return 0;
}

static int fsm_apply(void *ctx, raft_index index, const void *data, size_t len, void **res,
                     size_t *res_len)
{
    struct master_fsm *f = ctx;
    const uint8_t *p = data;
    if (len < 1)
        return CM_E_INVAL;
    switch (p[0]) {
    case MFSM_TAG_KV:
        return kv_apply(f->kv, index, p + 1, len - 1, res, res_len);
    case MFSM_TAG_NS:
        return ns_apply(f->ns, index, p + 1, len - 1, res, res_len);
    case MFSM_TAG_CS:
        return cs_apply(f->cs, p + 1, len - 1, res, res_len);
    default:
        /* The log is input too: an unknown tag fails the same way on every replica. */
        return CM_E_INVAL;
    }
}

/* A growable buffer for the KV section, whose length precedes it. */
struct buf {
    uint8_t *p;
    size_t len, cap;
};

static int buf_append(void *arg, const void *data, size_t len)
{
    struct buf *b = arg;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL)
            return CM_E_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static int writer_append(void *arg, const void *data, size_t len)
{
    return rs_snapshot_append(arg, data, len);
}

static int fsm_snapshot(void *ctx, struct rs_snapshot_writer *w)
{
    struct master_fsm *f = ctx;
    struct buf kv = {0};
    uint8_t hdr[SNAP_HEADER] = {0};
    void *cs = NULL;
    size_t cs_len = 0;
    int rc = kv_snapshot_write(f->kv, buf_append, &kv);
    if (rc != 0 || (rc = cs_snapshot_write(f->cs, &cs, &cs_len)) != 0)
        goto out;
    uint64_t cs_len64 = cs_len;
    uint32_t version = SNAP_VERSION;
    uint64_t kv_len = kv.len;
    memcpy(hdr, SNAP_MAGIC, 8);
    memcpy(hdr + 8, &version, 4);
    memcpy(hdr + 16, &kv_len, 8);
    if ((rc = rs_snapshot_append(w, hdr, sizeof(hdr))) != 0 ||
        (rc = rs_snapshot_append(w, kv.p, kv.len)) != 0 ||
        (rc = rs_snapshot_append(w, &cs_len64, 8)) != 0 ||
        (rc = rs_snapshot_append(w, cs, cs_len)) != 0)
        goto out;
    rc = ns_snapshot_write(f->ns, writer_append, w);
out:
    free(cs);
    free(kv.p);
    return rc;
}

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return CM_E_IO;
        if (n == 0)
            return CM_E_STORE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsm_restore(void *ctx, const char *path, uint64_t size)
{
    struct master_fsm *f = ctx;
    uint8_t hdr[SNAP_HEADER];
    uint8_t *kv = NULL, *cs = NULL;
    uint32_t version;
    uint64_t kv_len, cs_len = 0, rest;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CM_E_IO;
    if (size < SNAP_HEADER || (rc = read_full(fd, hdr, sizeof(hdr))) != 0) {
        rc = CM_E_STORE;
        goto out;
    }
    memcpy(&version, hdr + 8, 4);
    memcpy(&kv_len, hdr + 16, 8);
    if (memcmp(hdr, SNAP_MAGIC, 8) != 0 || (version != 1 && version != SNAP_VERSION) ||
        kv_len > size - SNAP_HEADER) {
        rc = CM_E_STORE;
        goto out;
    }
    if ((kv = malloc(kv_len ? kv_len : 1)) == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    if ((rc = read_full(fd, kv, kv_len)) != 0)
        goto out;
    rest = size - SNAP_HEADER - kv_len;
    if (version >= 2) {
        if (rest < 8 || (rc = read_full(fd, &cs_len, 8)) != 0 || cs_len > rest - 8) {
            rc = CM_E_STORE;
            goto out;
        }
        rest -= 8 + cs_len;
        if ((cs = malloc(cs_len ? cs_len : 1)) == NULL) {
            rc = CM_E_NOMEM;
            goto out;
        }
        if ((rc = read_full(fd, cs, cs_len)) != 0)
            goto out;
    }
    /* The chunkserver section is checked before anything changes (into a scratch table). */
    if (version >= 2) {
        struct cs_registry *scratch = NULL;
        if ((rc = cs_registry_new(0, &scratch)) != 0)
            goto out;
        rc = cs_restore(scratch, cs, cs_len);
        cs_registry_free(scratch);
        if (rc != 0)
            goto out;
    }
    /* The namespace first: it is left unchanged when its section is bad. */
    if ((rc = ns_restore_fd(f->ns, fd, rest)) != 0)
        goto out;
    if ((rc = kv_restore_buf(f->kv, kv, kv_len)) != 0)
        goto out;
    if (version >= 2)
        rc = cs_restore(f->cs, cs, cs_len);
    else
        rc = cs_restore(f->cs, "\0\0\0\0", 4);
out:
    free(cs);
    if (rc != 0)
        LOG_ERROR("master: snapshot %s is not readable: %s", path, cm_strerror(rc));
    free(kv);
    close(fd);
    return rc;
}

struct rn_fsm master_fsm_ops(struct master_fsm *f)
{
    return (struct rn_fsm){
        .ctx = f, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
}
