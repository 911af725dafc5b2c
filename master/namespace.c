/* The namespace state machine's life cycle and apply path: creation, the client sessions that
 * make mutations exactly-once, the garbage queue, and the rn_fsm callbacks. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "master/ns_internal.h"
#include "master/raft_store.h"

void ns_config_default(struct ns_config *cfg)
{
    cfg->session_ttl_ns = 15LL * 60 * 1000000000;
    cfg->max_sessions = 65536;
    cfg->max_inodes = UINT32_MAX - 1;
}

int ns_new(const struct ns_config *cfg, struct ns **out)
{
    struct ns_config def;
    int rc = 0;
    if (cfg == NULL) {
        ns_config_default(&def);
        cfg = &def;
    }
    if (cfg->max_inodes < 1 || cfg->max_sessions < 1 || cfg->session_ttl_ns < 0)
        return CM_E_INVAL;
    struct ns *ns = calloc(1, sizeof(*ns));
    if (ns == NULL)
        return CM_E_NOMEM;
    ns->cfg = *cfg;
    ns->next_block = 1;
    ns->inodes = calloc(64, sizeof(struct ns_inode));
    if (ns->inodes == NULL) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    ns->cap_slots = 64;
    ns->n_slots = 1;
    struct ns_dir *d;
    if ((rc = ns__dir_new(NS_ROOT_INO, &d)) != 0)
        goto fail;
    uint32_t root = ns__inode_alloc(ns, S_IFDIR | 0755, 0, 0, 0);
    ns->inodes[root].nlink = 2;
    ns->inodes[root].u.dir = d;
    *out = ns;
    return 0;
fail:
    ns_free(ns);
    return rc;
}

void ns__sessions_clear(struct ns *ns)
{
    struct ns_session *s, *tmp;
    HASH_ITER(hh, ns->sessions, s, tmp)
    {
        HASH_DEL(ns->sessions, s);
        free(s->result);
        free(s);
    }
    ns->lru_head = ns->lru_tail = NULL;
    ns->n_sessions = 0;
}

void ns__state_clear(struct ns *ns)
{
    ns__inodes_clear(ns);
    ns__sessions_clear(ns);
    ns__gc_free(&ns->gc);
    ns__map_free(&ns->refs);
    ns->next_block = 1;
    ns->orphan_below = 0;
    ns->applied = 0;
}

void ns_free(struct ns *ns)
{
    if (ns == NULL)
        return;
    ns__state_clear(ns);
    free(ns);
}

/* ---- Sessions ---- */

static void lru_unlink(struct ns *ns, struct ns_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        ns->lru_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        ns->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_append(struct ns *ns, struct ns_session *s)
{
    s->prev = ns->lru_tail;
    s->next = NULL;
    if (ns->lru_tail)
        ns->lru_tail->next = s;
    else
        ns->lru_head = s;
    ns->lru_tail = s;
}

void ns__session_link(struct ns *ns, struct ns_session *s)
{
    HASH_ADD(hh, ns->sessions, client, sizeof(uint64_t), s);
    lru_append(ns, s);
    ns->n_sessions++;
}

static void session_drop(struct ns *ns, struct ns_session *s)
{
    lru_unlink(ns, s);
    HASH_DEL(ns->sessions, s);
    free(s->result);
    free(s);
    ns->n_sessions--;
}

/* Forgets clients not seen for the TTL, from the least recently seen on. */
static void sessions_expire(struct ns *ns, int64_t now)
{
    uint64_t ttl = (uint64_t)ns->cfg.session_ttl_ns;
    while (ns->lru_head != NULL) {
        int64_t seen = ns->lru_head->last_seen;
        if (!(now > seen && (uint64_t)now - (uint64_t)seen > ttl))
            break;
        session_drop(ns, ns->lru_head);
    }
}

static int copy_result(const void *src, size_t len, void **out, size_t *out_len)
{
    *out = malloc(len);
    if (*out == NULL)
        return CM_E_NOMEM;
    memcpy(*out, src, len);
    *out_len = len;
    return 0;
}

static int error_result(int err, void **res, size_t *res_len)
{
    struct ns_result r = {.err = err};
    ns__result_encode(&r, res, res_len);
    return err;
}

int ns_apply(struct ns *ns, uint64_t index, const void *data, size_t len, void **res,
             size_t *res_len)
{
    struct ns_cmd c;
    struct ns_result r;
    struct ns_session *s = NULL;
    *res = NULL;
    *res_len = 0;
    ns->applied = index;
    int rc = ns_cmd_decode(data, len, &c);
    if (rc != 0)
        return error_result(rc, res, res_len);
    sessions_expire(ns, c.now_ns);
    if (c.client != 0) {
        HASH_FIND(hh, ns->sessions, &c.client, sizeof(uint64_t), s);
        if (s != NULL && c.seq <= s->seq) {
            /* A retry of the last command gets its answer again; anything older is refused. */
            if (c.seq < s->seq) {
                rc = error_result(CM_E_INVAL, res, res_len);
            } else if ((rc = copy_result(s->result, s->result_len, res, res_len)) == 0) {
                rc = s->err;
                lru_unlink(ns, s); /* a retry is a sign of life too */
                lru_append(ns, s);
                s->last_seen = c.now_ns;
            }
            ns_cmd_clear(&c);
            return rc;
        }
    }
    ns__execute(ns, &c, &r);
    rc = ns__result_encode(&r, res, res_len);
    free(r.freed);
    if (rc != 0)
        goto out;
    rc = r.err;
    if (c.client == 0)
        goto out;
    if (s == NULL) {
        if (ns->n_sessions >= ns->cfg.max_sessions)
            session_drop(ns, ns->lru_head);
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            LOG_ERROR("namespace: no memory for the session of client %llu",
                      (unsigned long long)c.client);
            goto out;
        }
        s->client = c.client;
        ns__session_link(ns, s);
    } else {
        lru_unlink(ns, s);
        lru_append(ns, s);
    }
    void *copy;
    size_t copy_len;
    if (copy_result(*res, *res_len, &copy, &copy_len) != 0) {
        session_drop(ns, s);
        goto out;
    }
    free(s->result);
    s->result = copy;
    s->result_len = copy_len;
    s->seq = c.seq;
    s->err = r.err;
    s->last_seen = c.now_ns;
out:
    ns_cmd_clear(&c);
    return rc;
}

/* ---- rn_fsm glue ---- */

static int fsm_apply(void *ctx, raft_index index, const void *data, size_t len, void **result,
                     size_t *result_len)
{
    return ns_apply(ctx, index, data, len, result, result_len);
}

static int fsm_write(void *arg, const void *data, size_t len)
{
    return rs_snapshot_append(arg, data, len);
}

static int fsm_snapshot(void *ctx, struct rs_snapshot_writer *w)
{
    return ns_snapshot_write(ctx, fsm_write, w);
}

static int fsm_restore(void *ctx, const char *path, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CM_E_IO;
    int rc = ns_restore_fd(ctx, fd, size);
    close(fd);
    if (rc != 0)
        LOG_ERROR("namespace: snapshot %s is not readable: %s", path, cm_strerror(rc));
    return rc;
}

struct rn_fsm ns_fsm_ops(struct ns *ns)
{
    return (struct rn_fsm){
        .ctx = ns, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
}
