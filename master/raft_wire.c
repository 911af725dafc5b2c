/* Raft messages to and from their HTTP/JSON form. */
#include "master/raft_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/errors.h"
#include "common/json.h"

/* A sanity bound on entries per append (the core sends at most max_entries_per_msg). */
#define MAX_WIRE_ENTRIES 65536

const char *rw_path(const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_VOTE:
        return m->u.vote.pre ? RW_PATH_PRE_VOTE : RW_PATH_VOTE;
    case RAFT_MSG_VOTE_RESP:
        return RW_PATH_VOTE_RESP;
    case RAFT_MSG_APPEND:
        return RW_PATH_APPEND;
    case RAFT_MSG_APPEND_RESP:
        return RW_PATH_APPEND_RESP;
    case RAFT_MSG_SNAPSHOT:
        return RW_PATH_SNAPSHOT;
    case RAFT_MSG_SNAPSHOT_RESP:
        return RW_PATH_SNAPSHOT_RESP;
    case RAFT_MSG_TIMEOUT_NOW:
        return RW_PATH_TIMEOUT_NOW;
    case RAFT_MSG_READ_INDEX:
        return RW_PATH_READ_INDEX;
    case RAFT_MSG_READ_INDEX_RESP:
        return RW_PATH_READ_INDEX_RESP;
    default:
        return NULL;
    }
}

static int path_type(const char *path, uint8_t *type, bool *pre)
{
    static const struct {
        const char *path;
        uint8_t type;
        bool pre;
    } map[] = {
        {RW_PATH_VOTE, RAFT_MSG_VOTE, false},
        {RW_PATH_PRE_VOTE, RAFT_MSG_VOTE, true},
        {RW_PATH_VOTE_RESP, RAFT_MSG_VOTE_RESP, false},
        {RW_PATH_APPEND, RAFT_MSG_APPEND, false},
        {RW_PATH_APPEND_RESP, RAFT_MSG_APPEND_RESP, false},
        {RW_PATH_SNAPSHOT_RESP, RAFT_MSG_SNAPSHOT_RESP, false},
        {RW_PATH_TIMEOUT_NOW, RAFT_MSG_TIMEOUT_NOW, false},
        {RW_PATH_READ_INDEX, RAFT_MSG_READ_INDEX, false},
        {RW_PATH_READ_INDEX_RESP, RAFT_MSG_READ_INDEX_RESP, false},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(path, map[i].path) == 0) {
            *type = map[i].type;
            *pre = map[i].pre;
            return 0;
        }
    }
    return CM_E_NO_ROUTE;
}

#define ADD_U64(o, k, v)                                                                           \
    do {                                                                                           \
        if (cm_json_add_u64((o), (k), (v)) != 0)                                                   \
            goto nomem;                                                                            \
    } while (0)
#define ADD_BOOL(o, k, v)                                                                          \
    do {                                                                                           \
        if (cJSON_AddBoolToObject((o), (k), (v)) == NULL)                                          \
            goto nomem;                                                                            \
    } while (0)

static int add_entries(cJSON *o, const struct raft_msg_append *a)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "entries");
    if (arr == NULL)
        return CM_E_NOMEM;
    char *buf = NULL;
    size_t cap = 0;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        cJSON *je = cJSON_CreateObject();
        if (je == NULL || !cJSON_AddItemToArray(arr, je))
            goto nomem;
        size_t need = cm_b64_encoded_size(e->len);
        if (need > cap) {
            char *nb = realloc(buf, need);
            if (nb == NULL)
                goto nomem;
            buf = nb;
            cap = need;
        }
        cm_b64_encode(e->data, e->len, buf);
        if (cm_json_add_u64(je, "term", e->term) != 0 ||
            cJSON_AddNumberToObject(je, "type", e->type) == NULL ||
            cJSON_AddStringToObject(je, "data", buf) == NULL)
            goto nomem;
    }
    free(buf);
    return 0;
nomem:
    free(buf);
    return CM_E_NOMEM;
}

int rw_encode_json(const struct raft_msg *m, cJSON **out)
{
    if (m->type == RAFT_MSG_SNAPSHOT || rw_path(m) == NULL)
        return CM_E_INVAL;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return CM_E_NOMEM;
    if (cJSON_AddStringToObject(o, "path", rw_path(m)) == NULL)
        goto nomem;
    ADD_U64(o, "from", m->from);
    ADD_U64(o, "to", m->to);
    ADD_U64(o, "term", m->term);
    switch (m->type) {
    case RAFT_MSG_VOTE:
        ADD_U64(o, "last_log_index", m->u.vote.last_log_index);
        ADD_U64(o, "last_log_term", m->u.vote.last_log_term);
        ADD_BOOL(o, "transfer", m->u.vote.transfer);
        break;
    case RAFT_MSG_VOTE_RESP:
        ADD_BOOL(o, "pre", m->u.vote_resp.pre);
        ADD_BOOL(o, "granted", m->u.vote_resp.granted);
        break;
    case RAFT_MSG_APPEND:
        ADD_U64(o, "prev_index", m->u.append.prev_index);
        ADD_U64(o, "prev_term", m->u.append.prev_term);
        ADD_U64(o, "commit", m->u.append.commit);
        ADD_U64(o, "read_ctx", m->u.append.read_ctx);
        if (add_entries(o, &m->u.append) != 0)
            goto nomem;
        break;
    case RAFT_MSG_APPEND_RESP:
        ADD_BOOL(o, "success", m->u.append_resp.success);
        ADD_U64(o, "match_index", m->u.append_resp.match_index);
        ADD_U64(o, "conflict_index", m->u.append_resp.conflict_index);
        ADD_U64(o, "conflict_term", m->u.append_resp.conflict_term);
        ADD_U64(o, "last_index", m->u.append_resp.last_index);
        ADD_U64(o, "read_ctx", m->u.append_resp.read_ctx);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        ADD_U64(o, "last_index", m->u.snapshot_resp.last_index);
        ADD_U64(o, "next_offset", m->u.snapshot_resp.next_offset);
        ADD_BOOL(o, "done", m->u.snapshot_resp.done);
        ADD_BOOL(o, "rejected", m->u.snapshot_resp.rejected);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    case RAFT_MSG_READ_INDEX:
        ADD_U64(o, "read_id", m->u.read_index.read_id);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        ADD_U64(o, "read_id", m->u.read_index_resp.read_id);
        ADD_U64(o, "index", m->u.read_index_resp.index);
        ADD_BOOL(o, "ok", m->u.read_index_resp.ok);
        break;
    }
    *out = o;
    return 0;
nomem:
    cJSON_Delete(o);
    return CM_E_NOMEM;
}

void rw_msg_free(struct rw_msg *m)
{
    free(m->mem);
    m->mem = NULL;
}

static int get_entries(const cJSON *body, struct rw_msg *out)
{
    const cJSON *arr;
    int rc = cm_json_get_array(body, "entries", &arr);
    if (rc != 0)
        return rc;
    int n = cJSON_GetArraySize(arr);
    if (n > MAX_WIRE_ENTRIES)
        return CM_E_RANGE;
    size_t data = 0;
    const cJSON *je;
    cJSON_ArrayForEach(je, arr)
    {
        const char *s;
        size_t len;
        if ((rc = cm_json_get_str(je, "data", RW_MAX_APPEND_BODY, &s, &len)) != 0)
            return rc;
        data += cm_b64_decoded_max(len);
    }
    struct raft_msg_append *a = &out->msg.u.append;
    if (n == 0) {
        a->n_entries = 0;
        a->entries = NULL;
        return 0;
    }
    size_t head = (size_t)n * sizeof(struct raft_entry);
    unsigned char *mem = malloc(head + data + 1);
    if (mem == NULL)
        return CM_E_NOMEM;
    struct raft_entry *es = (struct raft_entry *)mem;
    unsigned char *p = mem + head;
    int i = 0;
    cJSON_ArrayForEach(je, arr)
    {
        const char *s;
        size_t len, dlen = 0;
        uint64_t term;
        uint32_t type;
        if ((rc = cm_json_get_u64(je, "term", &term)) != 0 ||
            (rc = cm_json_get_u32(je, "type", &type)) != 0)
            goto fail;
        if (type > RAFT_ENTRY_CONF) {
            rc = CM_E_RANGE;
            goto fail;
        }
        cm_json_get_str(je, "data", RW_MAX_APPEND_BODY, &s, &len);
        if (cm_b64_decode(s, len, p, &dlen) != 0) {
            rc = CM_E_BAD_FIELD;
            goto fail;
        }
        es[i] = (struct raft_entry){.term = term,
                                    .index = a->prev_index + 1 + (raft_index)i,
                                    .type = (uint8_t)type,
                                    .len = (uint32_t)dlen,
                                    .data = p};
        p += dlen;
        i++;
    }
    a->n_entries = (uint32_t)n;
    a->entries = es;
    out->mem = mem;
    return 0;
fail:
    free(mem);
    return rc;
}

#define GET(call)                                                                                  \
    do {                                                                                           \
        if ((rc = (call)) != 0)                                                                    \
            return rc;                                                                             \
    } while (0)

int rw_decode_json(const char *path, const cJSON *body, struct rw_msg *out)
{
    int rc;
    bool pre = false;
    memset(out, 0, sizeof(*out));
    struct raft_msg *m = &out->msg;
    GET(path_type(path, &m->type, &pre));
    GET(cm_json_get_u64(body, "from", &m->from));
    GET(cm_json_get_u64(body, "to", &m->to));
    GET(cm_json_get_u64(body, "term", &m->term));
    if (m->from == 0 || m->to == 0)
        return CM_E_RANGE;
    switch (m->type) {
    case RAFT_MSG_VOTE:
        m->u.vote.pre = pre;
        GET(cm_json_get_u64(body, "last_log_index", &m->u.vote.last_log_index));
        GET(cm_json_get_u64(body, "last_log_term", &m->u.vote.last_log_term));
        GET(cm_json_opt_bool(body, "transfer", &m->u.vote.transfer));
        break;
    case RAFT_MSG_VOTE_RESP:
        GET(cm_json_get_bool(body, "pre", &m->u.vote_resp.pre));
        GET(cm_json_get_bool(body, "granted", &m->u.vote_resp.granted));
        break;
    case RAFT_MSG_APPEND:
        GET(cm_json_get_u64(body, "prev_index", &m->u.append.prev_index));
        GET(cm_json_get_u64(body, "prev_term", &m->u.append.prev_term));
        GET(cm_json_get_u64(body, "commit", &m->u.append.commit));
        GET(cm_json_opt_u64(body, "read_ctx", &m->u.append.read_ctx));
        GET(get_entries(body, out));
        break;
    case RAFT_MSG_APPEND_RESP:
        GET(cm_json_get_bool(body, "success", &m->u.append_resp.success));
        GET(cm_json_get_u64(body, "match_index", &m->u.append_resp.match_index));
        GET(cm_json_get_u64(body, "conflict_index", &m->u.append_resp.conflict_index));
        GET(cm_json_get_u64(body, "conflict_term", &m->u.append_resp.conflict_term));
        GET(cm_json_get_u64(body, "last_index", &m->u.append_resp.last_index));
        GET(cm_json_opt_u64(body, "read_ctx", &m->u.append_resp.read_ctx));
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        GET(cm_json_get_u64(body, "last_index", &m->u.snapshot_resp.last_index));
        GET(cm_json_get_u64(body, "next_offset", &m->u.snapshot_resp.next_offset));
        GET(cm_json_get_bool(body, "done", &m->u.snapshot_resp.done));
        GET(cm_json_get_bool(body, "rejected", &m->u.snapshot_resp.rejected));
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    case RAFT_MSG_READ_INDEX:
        GET(cm_json_get_u64(body, "read_id", &m->u.read_index.read_id));
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        GET(cm_json_get_u64(body, "read_id", &m->u.read_index_resp.read_id));
        GET(cm_json_get_u64(body, "index", &m->u.read_index_resp.index));
        GET(cm_json_get_bool(body, "ok", &m->u.read_index_resp.ok));
        break;
    }
    return 0;
}

int rw_encode_snapshot_headers(const struct raft_msg *m, struct rw_header *h, char *buf,
                               size_t cap)
{
    if (m->type != RAFT_MSG_SNAPSHOT)
        return CM_E_INVAL;
    const struct raft_msg_snapshot *s = &m->u.snapshot;
    unsigned char conf[4096];
    size_t clen = s->conf != NULL ? raft_conf_encode(s->conf, conf, sizeof(conf)) : 0;
    if (clen == 0 || cm_b64_encoded_size(clen) + 9 * 24 > cap)
        return CM_E_NOMEM;
    const char *names[RW_SNAPSHOT_HEADERS] = {RW_HDR_FROM,   RW_HDR_TO,   RW_HDR_TERM,
                                              RW_HDR_LAST_INDEX, RW_HDR_LAST_TERM,
                                              RW_HDR_SIZE, RW_HDR_OFFSET, RW_HDR_DONE,
                                              RW_HDR_CONF};
    uint64_t vals[8] = {m->from,         m->to,   m->term,     s->last_index,
                        s->last_term,    s->size, s->offset,   s->done ? 1u : 0u};
    char *p = buf;
    for (int i = 0; i < 8; i++) {
        h[i].name = names[i];
        h[i].value = p;
        p += sprintf(p, "%" PRIu64, vals[i]) + 1;
    }
    h[8].name = names[8];
    h[8].value = p;
    cm_b64_encode(conf, clen, p);
    return 0;
}

static int hdr_u64(rw_header_fn get, void *ctx, const char *name, uint64_t *out)
{
    const char *v = get(ctx, name);
    if (v == NULL)
        return CM_E_MISSING_FIELD;
    if (*v < '0' || *v > '9' || strlen(v) > 20)
        return CM_E_BAD_FIELD;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != 0 || errno != 0)
        return CM_E_RANGE;
    *out = x;
    return 0;
}

int rw_decode_snapshot(rw_header_fn get, void *ctx, const void *data, size_t len,
                       struct raft_msg *m, struct raft_conf *conf_storage)
{
    int rc;
    uint64_t done = 0;
    memset(m, 0, sizeof(*m));
    m->type = RAFT_MSG_SNAPSHOT;
    struct raft_msg_snapshot *s = &m->u.snapshot;
    GET(hdr_u64(get, ctx, RW_HDR_FROM, &m->from));
    GET(hdr_u64(get, ctx, RW_HDR_TO, &m->to));
    GET(hdr_u64(get, ctx, RW_HDR_TERM, &m->term));
    GET(hdr_u64(get, ctx, RW_HDR_LAST_INDEX, &s->last_index));
    GET(hdr_u64(get, ctx, RW_HDR_LAST_TERM, &s->last_term));
    GET(hdr_u64(get, ctx, RW_HDR_SIZE, &s->size));
    GET(hdr_u64(get, ctx, RW_HDR_OFFSET, &s->offset));
    GET(hdr_u64(get, ctx, RW_HDR_DONE, &done));
    if (m->from == 0 || m->to == 0 || done > 1 || len > UINT32_MAX)
        return CM_E_RANGE;
    const char *c = get(ctx, RW_HDR_CONF);
    if (c == NULL)
        return CM_E_MISSING_FIELD;
    size_t clen = strlen(c), dlen = 0;
    unsigned char conf[4096];
    if (clen > 4096 || cm_b64_decode(c, clen, conf, &dlen) != 0 ||
        raft_conf_decode(conf, dlen, conf_storage) != 0)
        return CM_E_BAD_FIELD;
    s->conf = conf_storage;
    s->done = done == 1;
    s->len = (uint32_t)len;
    s->data = data;
    return 0;
}

int rw_decode_batch_item(const cJSON *item, struct rw_msg *out)
{
    const char *path;
    int rc = cm_json_get_str(item, "path", 64, &path, NULL);
    if (rc != 0)
        return rc;
    if (strcmp(path, RW_PATH_SNAPSHOT) == 0 || strcmp(path, RW_PATH_BATCH) == 0)
        return CM_E_BAD_FIELD;
    rc = rw_decode_json(path, item, out);
    return rc == CM_E_NO_ROUTE ? CM_E_BAD_FIELD : rc;
}
