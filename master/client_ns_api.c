/* The filesystem endpoints of the client port: JSON in, namespace commands proposed through Raft
 * (stamped with the leader's clock) and answered once applied; reads served after ReadIndex on
 * the loop thread. Names and handles are validated by the namespace itself. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "master/cs_registry.h"
#include "master/master.h"

#define PATH_FS_LOOKUP       "/v1/fs/lookup"
#define PATH_FS_GETATTR      "/v1/fs/getattr"
#define PATH_FS_MKDIR        "/v1/fs/mkdir"
#define PATH_FS_CREATE       "/v1/fs/create"
#define PATH_FS_UNLINK       "/v1/fs/unlink"
#define PATH_FS_RMDIR        "/v1/fs/rmdir"
#define PATH_FS_RENAME       "/v1/fs/rename"
#define PATH_FS_LINK         "/v1/fs/link"
#define PATH_FS_SYMLINK      "/v1/fs/symlink"
#define PATH_FS_READLINK     "/v1/fs/readlink"
#define PATH_FS_SETATTR      "/v1/fs/setattr"
#define PATH_FS_READDIR      "/v1/fs/readdir"
#define PATH_FS_STATFS       "/v1/fs/statfs"
#define PATH_FS_ALLOC_BLOCKS "/v1/fs/alloc-blocks"
#define PATH_FS_COMMIT       "/v1/fs/commit"
#define PATH_FS_BLOCKS       "/v1/fs/blocks"

/* Field names. */
#define F_CLIENT        "client"
#define F_SEQ           "seq"
#define F_CRED          "credential"
#define F_UID           "uid"
#define F_GID           "gid"
#define F_GROUPS        "groups"
#define F_INO           "ino"
#define F_GEN           "gen"
#define F_PARENT        "parent"
#define F_PGEN          "pgen"
#define F_NAME          "name"
#define F_MODE          "mode"
#define F_FOLLOWER_READ "follower_read"

/* Strings are taken up to this long and then judged by the namespace (NAME_TOO_LONG). */
#define STR_MAX                 65536
#define READDIR_MAX_ENTRIES     4096
#define READDIR_DEFAULT_ENTRIES 256
#define READDIR_MAX_BYTES       (512 * 1024)
#define BLOCKS_MAX              4096
#define BLOCKS_DEFAULT          1024
#define JSON_SAFE_INT           9007199254740991LL

/* ---- JSON helpers ---- */

static bool present(const cJSON *j, const char *field)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, field);
    return x != NULL && !cJSON_IsNull(x);
}

/* An i64 as a JSON number, or (beyond 2^53, as nanosecond times are) a decimal string. */
static int get_i64(const cJSON *j, const char *field, int64_t *out)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, field);
    if (x == NULL || cJSON_IsNull(x))
        return CM_E_MISSING_FIELD;
    if (!cJSON_IsString(x))
        return cm_json_get_i64(j, field, out);
    const char *s = x->valuestring, *p = s + (*s == '-');
    if (*p == 0 || strlen(p) > 19)
        return CM_E_BAD_FIELD;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return CM_E_BAD_FIELD;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != 0)
        return CM_E_RANGE;
    *out = v;
    return 0;
}

static int add_i64(cJSON *o, const char *field, int64_t v)
{
    if (v >= -JSON_SAFE_INT && v <= JSON_SAFE_INT)
        return cJSON_AddNumberToObject(o, field, (double)v) ? 0 : CM_E_NOMEM;
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return cJSON_AddStringToObject(o, field, buf) ? 0 : CM_E_NOMEM;
}

/* A u32 from an array element. */
static int elem_u32(const cJSON *x, uint32_t *out)
{
    if (!cJSON_IsNumber(x))
        return CM_E_BAD_FIELD;
    double d = x->valuedouble;
    if (d != d || d < 0 || d > 4294967295.0 || d != (double)(uint64_t)d)
        return CM_E_RANGE;
    *out = (uint32_t)d;
    return 0;
}

static cJSON *attr_json(const struct ns_attr *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cm_json_add_u64(o, "ino", a->ino) || cm_json_add_u64(o, "gen", a->gen) ||
        cm_json_add_u64(o, "mode", a->mode) || cm_json_add_u64(o, "nlink", a->nlink) ||
        cm_json_add_u64(o, "uid", a->uid) || cm_json_add_u64(o, "gid", a->gid) ||
        cm_json_add_u64(o, "size", a->size) || add_i64(o, "atime_ns", a->atime_ns) ||
        add_i64(o, "mtime_ns", a->mtime_ns) || add_i64(o, "ctime_ns", a->ctime_ns)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The optional credential {"uid","gid","groups":[...]}. *has false when absent. */
static int get_cred(const cJSON *j, struct ns_cred *cred, bool *has)
{
    const cJSON *c, *groups;
    int rc = cm_json_get_object(j, F_CRED, &c);
    *has = false;
    memset(cred, 0, sizeof(*cred));
    if (rc == CM_E_MISSING_FIELD)
        return 0;
    if (rc != 0 || (rc = cm_json_get_u32(c, F_UID, &cred->uid)) != 0 ||
        (rc = cm_json_get_u32(c, F_GID, &cred->gid)) != 0)
        return rc;
    rc = cm_json_get_array(c, F_GROUPS, &groups);
    if (rc == 0) {
        int n = cJSON_GetArraySize(groups);
        if (n > NS_MAX_GROUPS)
            return CM_E_RANGE;
        const cJSON *g;
        cJSON_ArrayForEach(g, groups)
        {
            if ((rc = elem_u32(g, &cred->groups[cred->n_groups])) != 0)
                return rc;
            cred->n_groups++;
        }
    } else if (rc != CM_E_MISSING_FIELD) {
        return rc;
    }
    *has = true;
    return 0;
}

/* client (nonzero), seq and the optional credential of a mutation; now_ns is the leader's. */
static int get_req(const cJSON *j, struct ns_req *rq, struct ns_cred *cred)
{
    bool has;
    int rc;
    memset(rq, 0, sizeof(*rq));
    if ((rc = cm_json_get_u64(j, F_CLIENT, &rq->client)) != 0 ||
        (rc = cm_json_get_u64(j, F_SEQ, &rq->seq)) != 0 || (rc = get_cred(j, cred, &has)) != 0)
        return rc;
    if (rq->client == 0)
        return CM_E_RANGE; /* client 0 has no session: retries would not be exactly-once */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rq->now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    rq->cred = has ? cred : NULL;
    return 0;
}

/* ---- Mutations ---- */

static cJSON *result_json(const struct ns_result *r)
{
    cJSON *o = cJSON_CreateObject(), *attrs, *freed;
    if (o == NULL || (attrs = cJSON_AddArrayToObject(o, "attrs")) == NULL ||
        (freed = cJSON_AddArrayToObject(o, "freed")) == NULL ||
        cm_json_add_u64(o, "value", r->value) != 0)
        goto fail;
    for (uint32_t i = 0; i < r->n_attr; i++) {
        cJSON *a = attr_json(&r->attr[i]);
        if (a == NULL)
            goto fail;
        cJSON_AddItemToArray(attrs, a);
        if (i == 0) {
            cJSON *a0 = attr_json(&r->attr[0]);
            if (a0 == NULL)
                goto fail;
            cJSON_AddItemToObject(o, "attr", a0);
        }
    }
    for (uint32_t i = 0; i < r->n_freed; i++) {
        char buf[24];
        cJSON *x;
        if (r->freed[i] <= (uint64_t)JSON_SAFE_INT) {
            x = cJSON_CreateNumber((double)r->freed[i]);
        } else {
            snprintf(buf, sizeof(buf), "%" PRIu64, r->freed[i]);
            x = cJSON_CreateString(buf);
        }
        if (x == NULL)
            goto fail;
        cJSON_AddItemToArray(freed, x);
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* On the loop thread: the command was applied (res: its encoded ns_result) or failed. */
static void mutation_done(void *arg, int err, const void *res, size_t len)
{
    struct cm_http_deferred *d = arg;
    struct ns_result r;
    if (res == NULL) {
        cm_http_deferred_error(d, err != 0 ? err : CM_E_INTERNAL, NULL, NULL);
        return;
    }
    int rc = ns_result_decode(res, len, &r);
    if (rc != 0) {
        cm_http_deferred_error(d, rc == CM_E_NOMEM ? rc : CM_E_INTERNAL, NULL, NULL);
        return;
    }
    if (r.err != 0) {
        cm_http_deferred_error(d, r.err, NULL, NULL);
    } else {
        cJSON *o = result_json(&r);
        if (o == NULL)
            cm_http_deferred_error(d, CM_E_NOMEM, NULL, NULL);
        else
            cm_http_deferred_json(d, 200, o);
    }
    ns_result_clear(&r);
}

/* Proposes an encoded namespace command (taken: freed here) and answers once applied. */
static int propose(struct master *m, struct cm_http_req *req, void *cmd, size_t len)
{
    void *wrapped;
    size_t wlen;
    struct cm_http_deferred *d;
    int rc;
    if (!master_is_leader(m)) {
        free(cmd);
        return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, master_leader_hint(m));
    }
    rc = master_fsm_wrap(MFSM_TAG_NS, cmd, len, &wrapped, &wlen);
    free(cmd);
    if (rc != 0)
        return rc;
    if ((rc = cm_http_defer(req, &d)) != 0) {
        free(wrapped);
        return rc;
    }
    rn_propose(m->node, wrapped, wlen, mutation_done, d);
    free(wrapped);
    return 0;
}

/* The common head of a mutation handler. */
#define MUTATION_VARS                                                                              \
    struct master *m = data;                                                                       \
    const cJSON *j = cm_http_req_json(req);                                                        \
    struct ns_req rq;                                                                              \
    struct ns_cred cred;                                                                           \
    void *cmd;                                                                                     \
    size_t len;                                                                                    \
    int rc

static int get_entry(const cJSON *j, uint64_t *parent, uint64_t *pgen, const char **name)
{
    int rc;
    if ((rc = cm_json_get_u64(j, F_PARENT, parent)) != 0 ||
        (rc = cm_json_get_u64(j, F_PGEN, pgen)) != 0 ||
        (rc = cm_json_get_str(j, F_NAME, STR_MAX, name, NULL)) != 0)
        return rc;
    return 0;
}

static int h_mkdir(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t parent, pgen;
    const char *name;
    uint32_t mode;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = get_entry(j, &parent, &pgen, &name)) != 0 ||
        (rc = cm_json_get_u32(j, F_MODE, &mode)) != 0 ||
        (rc = ns_cmd_mkdir(&rq, parent, pgen, name, mode, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_create(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t parent, pgen;
    const char *name;
    uint32_t mode;
    bool excl = false, trunc = false;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = get_entry(j, &parent, &pgen, &name)) != 0 ||
        (rc = cm_json_get_u32(j, F_MODE, &mode)) != 0 ||
        (rc = cm_json_opt_bool(j, "excl", &excl)) != 0 ||
        (rc = cm_json_opt_bool(j, "trunc", &trunc)) != 0)
        return rc;
    uint32_t flags = (excl ? NS_CREATE_EXCL : 0) | (trunc ? NS_CREATE_TRUNC : 0);
    if ((rc = ns_cmd_create(&rq, parent, pgen, name, mode, flags, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_unlink_rmdir(struct cm_http_req *req, void *data, bool dir)
{
    MUTATION_VARS;
    uint64_t parent, pgen;
    const char *name;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = get_entry(j, &parent, &pgen, &name)) != 0)
        return rc;
    rc = dir ? ns_cmd_rmdir(&rq, parent, pgen, name, &cmd, &len)
             : ns_cmd_unlink(&rq, parent, pgen, name, &cmd, &len);
    if (rc != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_unlink(struct cm_http_req *req, void *data)
{
    return h_unlink_rmdir(req, data, false);
}

static int h_rmdir(struct cm_http_req *req, void *data)
{
    return h_unlink_rmdir(req, data, true);
}

static int h_rename(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t sp, spg, dp, dpg;
    const char *sn, *dn;
    bool noreplace = false, exchange = false;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = cm_json_get_u64(j, "src_parent", &sp)) != 0 ||
        (rc = cm_json_get_u64(j, "src_pgen", &spg)) != 0 ||
        (rc = cm_json_get_str(j, "src_name", STR_MAX, &sn, NULL)) != 0 ||
        (rc = cm_json_get_u64(j, "dst_parent", &dp)) != 0 ||
        (rc = cm_json_get_u64(j, "dst_pgen", &dpg)) != 0 ||
        (rc = cm_json_get_str(j, "dst_name", STR_MAX, &dn, NULL)) != 0 ||
        (rc = cm_json_opt_bool(j, "noreplace", &noreplace)) != 0 ||
        (rc = cm_json_opt_bool(j, "exchange", &exchange)) != 0)
        return rc;
    uint32_t flags = (noreplace ? NS_RENAME_NOREPLACE : 0) | (exchange ? NS_RENAME_EXCHANGE : 0);
    if ((rc = ns_cmd_rename(&rq, sp, spg, sn, dp, dpg, dn, flags, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_link(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t ino, gen, parent, pgen;
    const char *name;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = cm_json_get_u64(j, F_INO, &ino)) != 0 ||
        (rc = cm_json_get_u64(j, F_GEN, &gen)) != 0 ||
        (rc = get_entry(j, &parent, &pgen, &name)) != 0 ||
        (rc = ns_cmd_link(&rq, ino, gen, parent, pgen, name, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_symlink(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t parent, pgen;
    const char *name, *target;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = get_entry(j, &parent, &pgen, &name)) != 0 ||
        (rc = cm_json_get_str(j, "target", STR_MAX, &target, NULL)) != 0 ||
        (rc = ns_cmd_symlink(&rq, parent, pgen, name, target, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_setattr(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t ino, gen;
    struct ns_setattr sa = {0};
    bool anow = false, mnow = false;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = cm_json_get_u64(j, F_INO, &ino)) != 0 ||
        (rc = cm_json_get_u64(j, F_GEN, &gen)) != 0)
        return rc;
    if (present(j, "mode") && (rc = cm_json_get_u32(j, "mode", &sa.mode)) == 0)
        sa.valid |= NS_SET_MODE;
    if (rc == 0 && present(j, "uid") && (rc = cm_json_get_u32(j, "uid", &sa.uid)) == 0)
        sa.valid |= NS_SET_UID;
    if (rc == 0 && present(j, "gid") && (rc = cm_json_get_u32(j, "gid", &sa.gid)) == 0)
        sa.valid |= NS_SET_GID;
    if (rc == 0 && present(j, "size") && (rc = cm_json_get_u64(j, "size", &sa.size)) == 0)
        sa.valid |= NS_SET_SIZE;
    if (rc == 0 && present(j, "atime_ns") && (rc = get_i64(j, "atime_ns", &sa.atime_ns)) == 0)
        sa.valid |= NS_SET_ATIME;
    if (rc == 0 && present(j, "mtime_ns") && (rc = get_i64(j, "mtime_ns", &sa.mtime_ns)) == 0)
        sa.valid |= NS_SET_MTIME;
    if (rc == 0 && (rc = cm_json_opt_bool(j, "atime_now", &anow)) == 0 && anow)
        sa.valid |= NS_SET_ATIME_NOW;
    if (rc == 0 && (rc = cm_json_opt_bool(j, "mtime_now", &mnow)) == 0 && mnow)
        sa.valid |= NS_SET_MTIME_NOW;
    if (rc != 0 || (rc = ns_cmd_setattr(&rq, ino, gen, &sa, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int h_alloc_blocks(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint32_t count;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = cm_json_get_u32(j, "count", &count)) != 0 ||
        (rc = ns_cmd_alloc_blocks(&rq, count, &cmd, &len)) != 0)
        return rc;
    return propose(m, req, cmd, len);
}

static int get_block(const cJSON *o, struct ns_block *b)
{
    const cJSON *reps, *r;
    int rc;
    if (!cJSON_IsObject(o))
        return CM_E_BAD_FIELD;
    if ((rc = cm_json_get_u64(o, "id", &b->id)) != 0 ||
        (rc = cm_json_get_u32(o, "len", &b->len)) != 0 ||
        (rc = cm_json_get_u32(o, "crc32c", &b->crc32c)) != 0 ||
        (rc = cm_json_get_array(o, "replicas", &reps)) != 0)
        return rc;
    int n = cJSON_GetArraySize(reps);
    if (n < 1 || n > NS_MAX_REPLICAS)
        return CM_E_RANGE;
    b->n_replicas = 0;
    cJSON_ArrayForEach(r, reps)
    {
        if ((rc = elem_u32(r, &b->replicas[b->n_replicas])) != 0)
            return rc;
        b->n_replicas++;
    }
    return 0;
}

static int h_commit(struct cm_http_req *req, void *data)
{
    MUTATION_VARS;
    uint64_t ino, gen, off, clen, size;
    bool set_size = false;
    const cJSON *arr, *b;
    struct ns_block *blocks = NULL;
    uint32_t n = 0;
    if ((rc = get_req(j, &rq, &cred)) != 0 || (rc = cm_json_get_u64(j, F_INO, &ino)) != 0 ||
        (rc = cm_json_get_u64(j, F_GEN, &gen)) != 0 ||
        (rc = cm_json_get_u64(j, "off", &off)) != 0 ||
        (rc = cm_json_get_u64(j, "len", &clen)) != 0 ||
        (rc = cm_json_get_u64(j, "size", &size)) != 0 ||
        (rc = cm_json_opt_bool(j, "set_size", &set_size)) != 0 ||
        (rc = cm_json_get_array(j, "blocks", &arr)) != 0)
        return rc;
    int count = cJSON_GetArraySize(arr);
    if (count > NS_MAX_COMMIT_BLOCKS)
        return CM_E_RANGE;
    if (count > 0 && (blocks = calloc((size_t)count, sizeof(*blocks))) == NULL)
        return CM_E_NOMEM;
    cJSON_ArrayForEach(b, arr)
    {
        if ((rc = get_block(b, &blocks[n])) != 0)
            goto out;
        n++;
    }
    rc = ns_cmd_commit(&rq, ino, gen, off, clen, size, set_size ? NS_COMMIT_SET_SIZE : 0, blocks, n,
                       &cmd, &len);
    /* The replicas answered the client that they hold the block durably: the copy counts now,
     * not only from their next heartbeat. Else a holder heartbeating first would have the block
     * copied to chunkservers that hold it already (cs_replicate). */
    bool leader = rc == 0 && master_is_leader(m);
    for (uint32_t i = 0; leader && i < n; i++)
        for (uint8_t k = 0; k < blocks[i].n_replicas; k++)
            cs_blocks_change(m->cs, blocks[i].replicas[k], &blocks[i].id, 1, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = propose(m, req, cmd, len);
out:
    free(blocks);
    return rc;
}

/* ---- Reads ---- */

enum read_op { R_LOOKUP, R_GETATTR, R_READLINK, R_READDIR, R_STATFS, R_BLOCKS };

struct read_ctx {
    struct master *m;
    struct cm_http_deferred *d;
    enum read_op op;
    bool has_cred;
    struct ns_cred cred;
    uint64_t ino, gen, cookie, off, len;
    uint32_t max;
    char *name;
};

static cJSON *read_lookup_getattr(struct read_ctx *r, int *err)
{
    struct ns_attr a;
    const struct ns_cred *cred = r->has_cred ? &r->cred : NULL;
    *err = r->op == R_LOOKUP ? ns_lookup(r->m->ns, cred, r->ino, r->gen, r->name, &a)
                             : ns_getattr(r->m->ns, r->ino, r->gen, &a);
    if (*err != 0)
        return NULL;
    cJSON *o = cJSON_CreateObject(), *x = attr_json(&a);
    if (o == NULL || x == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(x);
        return NULL;
    }
    cJSON_AddItemToObject(o, "attr", x);
    return o;
}

static cJSON *read_readlink(struct read_ctx *r, int *err)
{
    char buf[NS_SYMLINK_MAX + 1];
    size_t len = sizeof(buf);
    if ((*err = ns_readlink(r->m->ns, r->ino, r->gen, buf, &len)) != 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && cJSON_AddStringToObject(o, "target", buf) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *read_readdir(struct read_ctx *r, int *err)
{
    struct ns_dirpage p = {0};
    cJSON *o = NULL, *ents;
    *err = ns_readdir(r->m->ns, r->has_cred ? &r->cred : NULL, r->ino, r->gen, r->cookie, r->max,
                      READDIR_MAX_BYTES, &p);
    if (*err != 0)
        goto out;
    if ((o = cJSON_CreateObject()) == NULL ||
        (ents = cJSON_AddArrayToObject(o, "entries")) == NULL ||
        cJSON_AddBoolToObject(o, "eof", p.eof) == NULL)
        goto fail;
    uint64_t last = r->cookie;
    for (uint32_t i = 0; i < p.n; i++) {
        cJSON *e = cJSON_CreateObject(), *a = attr_json(&p.ents[i].attr);
        if (e == NULL || a == NULL) {
            cJSON_Delete(e);
            cJSON_Delete(a);
            goto fail;
        }
        cJSON_AddItemToArray(ents, e);
        cJSON_AddItemToObject(e, "attr", a);
        if (cJSON_AddStringToObject(e, "name", p.names + p.ents[i].name_off) == NULL ||
            cm_json_add_u64(e, "cookie", p.ents[i].cookie) != 0)
            goto fail;
        last = p.ents[i].cookie;
    }
    if (cm_json_add_u64(o, "cookie", last) != 0)
        goto fail;
    goto out;
fail:
    cJSON_Delete(o);
    o = NULL;
    *err = CM_E_NOMEM;
out:
    ns_dirpage_free(&p);
    return o;
}

static cJSON *read_statfs(struct read_ctx *r, int *err)
{
    struct ns_statfs s;
    ns_statfs(r->m->ns, &s);
    *err = 0;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cm_json_add_u64(o, "inodes", s.inodes) ||
        cm_json_add_u64(o, "files", s.files) || cm_json_add_u64(o, "dirs", s.dirs) ||
        cm_json_add_u64(o, "symlinks", s.symlinks) ||
        cm_json_add_u64(o, "max_inodes", s.max_inodes) ||
        cm_json_add_u64(o, "blocks_allocated", s.blocks_allocated) ||
        cm_json_add_u64(o, "applied", s.applied) || cm_json_add_u64(o, "sessions", s.sessions) ||
        cm_json_add_u64(o, "gc_pending", s.gc_pending)) {
        cJSON_Delete(o);
        return NULL;
    }
    /* Space comes from the live chunkservers' heartbeats, which only the leader hears. */
    struct cs_info *cs = NULL;
    size_t n = 0;
    uint64_t capacity = 0, used = 0, avail = 0, live = 0;
    if (cs_list(r->m->cs, master_now_ms(), &cs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!cs[i].alive)
                continue;
            live++;
            capacity += cs[i].capacity;
            used += cs[i].used;
            avail += cs[i].no_space ? 0 : cs[i].free;
        }
        free(cs);
    }
    if (cm_json_add_u64(o, "capacity_bytes", capacity) || cm_json_add_u64(o, "used_bytes", used) ||
        cm_json_add_u64(o, "free_bytes", avail) || cm_json_add_u64(o, "chunkservers_live", live)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The chunkservers an extent's replicas name, for their addresses and liveness. */
struct cs_table {
    struct cs_info *v;
    size_t n;
};

static const struct cs_info *cs_find(const struct cs_table *t, uint32_t id)
{
    /* cs_list gives them by id, ids 1, 2, ... */
    if (id >= 1 && id <= t->n && t->v[id - 1].id == id)
        return &t->v[id - 1];
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].id == id)
            return &t->v[i];
    return NULL;
}

/* An extent; the block's "replicas" (chunkserver ids) go with "addrs", their addresses in the
 * same order, live ones (as this master sees them) first, so a reader tries those first. */
static cJSON *extent_json(const struct ns_extent *e, const struct cs_table *t)
{
    cJSON *o = cJSON_CreateObject(), *b = cJSON_CreateObject(), *reps, *addrs;
    if (o == NULL || b == NULL) {
        cJSON_Delete(b);
        goto fail;
    }
    cJSON_AddItemToObject(o, "block", b);
    if (cm_json_add_u64(o, "off", e->off) || cm_json_add_u64(o, "block_off", e->block_off) ||
        cm_json_add_u64(o, "len", e->len) || cm_json_add_u64(b, "id", e->block.id) ||
        cm_json_add_u64(b, "len", e->block.len) || cm_json_add_u64(b, "crc32c", e->block.crc32c) ||
        (reps = cJSON_AddArrayToObject(b, "replicas")) == NULL ||
        (addrs = cJSON_AddArrayToObject(b, "addrs")) == NULL)
        goto fail;
    for (int pass = 0; pass < 2; pass++) {
        for (uint8_t i = 0; i < e->block.n_replicas; i++) {
            const struct cs_info *c = cs_find(t, e->block.replicas[i]);
            bool alive = c != NULL && c->alive;
            if (alive != (pass == 0))
                continue;
            cJSON *x = cJSON_CreateNumber(e->block.replicas[i]);
            cJSON *a = cJSON_CreateString(c != NULL ? c->addr : "");
            if (x == NULL || a == NULL) {
                cJSON_Delete(x);
                cJSON_Delete(a);
                goto fail;
            }
            cJSON_AddItemToArray(reps, x);
            cJSON_AddItemToArray(addrs, a);
        }
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static cJSON *read_blocks(struct read_ctx *r, int *err)
{
    struct ns_blocklist bl = {0};
    struct cs_table t = {0};
    cJSON *o = NULL, *exts;
    *err = ns_get_blocks(r->m->ns, r->has_cred ? &r->cred : NULL, r->ino, r->gen, r->off, r->len,
                         r->max, &bl);
    if (*err != 0)
        goto out;
    if (bl.n > 0 && (*err = cs_list(r->m->cs, master_now_ms(), &t.v, &t.n)) != 0)
        goto out;
    if ((o = cJSON_CreateObject()) == NULL || cm_json_add_u64(o, "size", bl.size) != 0 ||
        cJSON_AddBoolToObject(o, "more", bl.more) == NULL ||
        (exts = cJSON_AddArrayToObject(o, "extents")) == NULL)
        goto fail;
    for (uint32_t i = 0; i < bl.n; i++) {
        cJSON *e = extent_json(&bl.ext[i], &t);
        if (e == NULL)
            goto fail;
        cJSON_AddItemToArray(exts, e);
    }
    goto out;
fail:
    cJSON_Delete(o);
    o = NULL;
    *err = CM_E_NOMEM;
out:
    free(t.v);
    ns_blocklist_free(&bl);
    return o;
}

/* On the loop thread, once the read index is applied. */
/* The read itself: the answer, or NULL with *err set. */
static cJSON *read_run(struct read_ctx *r, int *err)
{
    cJSON *o = NULL;
    switch (r->op) {
    case R_LOOKUP:
    case R_GETATTR:
        o = read_lookup_getattr(r, err);
        break;
    case R_READLINK:
        o = read_readlink(r, err);
        break;
    case R_READDIR:
        o = read_readdir(r, err);
        break;
    case R_STATFS:
        o = read_statfs(r, err);
        break;
    case R_BLOCKS:
        o = read_blocks(r, err);
        break;
    }
    if (o == NULL && *err == 0)
        *err = CM_E_NOMEM;
    return o;
}

static void read_ready(void *arg, int err)
{
    struct read_ctx *r = arg;
    cJSON *o = NULL;
    if (err == 0)
        o = read_run(r, &err);
    if (err != 0)
        cm_http_deferred_error(r->d, err, NULL, NULL);
    else
        cm_http_deferred_json(r->d, 200, o);
    free(r->name);
    free(r);
}

/* rn_read_fast's part: the read on the HTTP thread, under the leader lease. */
struct fast_read {
    struct read_ctx *r;
    cJSON *o;
    int err;
};

static void fast_read(void *arg)
{
    struct fast_read *f = arg;
    f->o = read_run(f->r, &f->err);
}

static int h_read(struct cm_http_req *req, struct master *m, enum read_op op)
{
    const cJSON *j = cm_http_req_json(req);
    bool follower_read = false;
    const char *name = NULL;
    int64_t v;
    struct read_ctx *r = calloc(1, sizeof(*r));
    int rc;
    if (r == NULL)
        return CM_E_NOMEM;
    r->m = m;
    r->op = op;
    if ((rc = cm_json_opt_bool(j, F_FOLLOWER_READ, &follower_read)) != 0 ||
        (rc = get_cred(j, &r->cred, &r->has_cred)) != 0)
        goto fail;
    switch (op) {
    case R_LOOKUP:
        if ((rc = get_entry(j, &r->ino, &r->gen, &name)) != 0)
            goto fail;
        if ((r->name = strdup(name)) == NULL) {
            rc = CM_E_NOMEM;
            goto fail;
        }
        break;
    case R_GETATTR:
    case R_READLINK:
    case R_READDIR:
    case R_BLOCKS:
        if ((rc = cm_json_get_u64(j, F_INO, &r->ino)) != 0 ||
            (rc = cm_json_get_u64(j, F_GEN, &r->gen)) != 0)
            goto fail;
        break;
    case R_STATFS:
        break;
    }
    if (op == R_READDIR) {
        r->max = READDIR_DEFAULT_ENTRIES;
        if ((rc = cm_json_opt_u64(j, "cookie", &r->cookie)) != 0)
            goto fail;
        if (present(j, "max_entries")) {
            if ((rc = cm_json_get_int_range(j, "max_entries", 1, READDIR_MAX_ENTRIES, &v)) != 0)
                goto fail;
            r->max = (uint32_t)v;
        }
    } else if (op == R_BLOCKS) {
        r->max = BLOCKS_DEFAULT;
        if ((rc = cm_json_get_u64(j, "off", &r->off)) != 0 ||
            (rc = cm_json_get_u64(j, "len", &r->len)) != 0)
            goto fail;
        if (present(j, "max")) {
            if ((rc = cm_json_get_int_range(j, "max", 1, BLOCKS_MAX, &v)) != 0)
                goto fail;
            r->max = (uint32_t)v;
        }
    }
    if (!follower_read && !master_is_leader(m)) {
        free(r->name);
        free(r);
        return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, master_leader_hint(m));
    }
    if (!follower_read) {
        /* Most reads: the leader lease makes a heartbeat round needless, and the loop too. */
        struct fast_read f = {.r = r};
        if (rn_read_fast(m->node, fast_read, &f)) {
            free(r->name);
            free(r);
            if (f.err != 0)
                return f.err;
            return cm_http_answer_json(req, 200, f.o);
        }
    }
    if ((rc = cm_http_defer(req, &r->d)) != 0)
        goto fail;
    rn_read(m->node, read_ready, r);
    return 0;
fail:
    free(r->name);
    free(r);
    return rc;
}

static int h_lookup(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_LOOKUP);
}

static int h_getattr(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_GETATTR);
}

static int h_readlink(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_READLINK);
}

static int h_readdir(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_READDIR);
}

static int h_statfs(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_STATFS);
}

static int h_blocks(struct cm_http_req *req, void *data)
{
    return h_read(req, data, R_BLOCKS);
}

int master_add_ns_routes(struct master *m, struct cm_http_server *srv)
{
    const struct cm_http_route routes[] = {
        {"POST", PATH_FS_LOOKUP, CM_HTTP_JSON, NULL, NULL, h_lookup, m},
        {"POST", PATH_FS_GETATTR, CM_HTTP_JSON, NULL, NULL, h_getattr, m},
        {"POST", PATH_FS_MKDIR, CM_HTTP_JSON, NULL, NULL, h_mkdir, m},
        {"POST", PATH_FS_CREATE, CM_HTTP_JSON, NULL, NULL, h_create, m},
        {"POST", PATH_FS_UNLINK, CM_HTTP_JSON, NULL, NULL, h_unlink, m},
        {"POST", PATH_FS_RMDIR, CM_HTTP_JSON, NULL, NULL, h_rmdir, m},
        {"POST", PATH_FS_RENAME, CM_HTTP_JSON, NULL, NULL, h_rename, m},
        {"POST", PATH_FS_LINK, CM_HTTP_JSON, NULL, NULL, h_link, m},
        {"POST", PATH_FS_SYMLINK, CM_HTTP_JSON, NULL, NULL, h_symlink, m},
        {"POST", PATH_FS_READLINK, CM_HTTP_JSON, NULL, NULL, h_readlink, m},
        {"POST", PATH_FS_SETATTR, CM_HTTP_JSON, NULL, NULL, h_setattr, m},
        {"POST", PATH_FS_READDIR, CM_HTTP_JSON, NULL, NULL, h_readdir, m},
        {"POST", PATH_FS_STATFS, CM_HTTP_JSON, NULL, NULL, h_statfs, m},
        {"POST", PATH_FS_ALLOC_BLOCKS, CM_HTTP_JSON, NULL, NULL, h_alloc_blocks, m},
        {"POST", PATH_FS_COMMIT, CM_HTTP_JSON, NULL, NULL, h_commit, m},
        {"POST", PATH_FS_BLOCKS, CM_HTTP_JSON, NULL, NULL, h_blocks, m},
    };
    return cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0]));
}
