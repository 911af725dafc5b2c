/* The data API on /blocks/{id}: PUT streamed into the store and, at the same time, down the
 * pipeline; GET with ranges, every chunk checked before its bytes leave; DELETE; replicate. */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk/cs_internal.h"
#include "chunk/cs_proto.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "common/resolver.h"

#define URL_MAX (CS_ADDR_MAX * (CS_PIPELINE_MAX + 1) * 3 + 128)

/* ---- helpers ---- */

static int bad_request(struct cm_http_req *req, const char *msg)
{
    int rc = cm_http_answer_error(req, CM_E_INVAL, msg, NULL);
    return rc < 0 ? CM_E_INVAL : 0;
}

static int parse_id(struct cm_http_req *req, uint64_t *id)
{
    return cs_block_id_parse(cm_http_req_param(req, "id"), id);
}

/* A query argument, else the header of the same meaning; NULL when neither is there. */
static const char *arg(struct cm_http_req *req, const char *query, const char *header)
{
    const char *v = cm_http_req_query(req, query);

    return v != NULL ? v : cm_http_req_header(req, header);
}

static int parse_crc(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    if (strlen(s) != 8)
        return CM_E_INVAL;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return CM_E_INVAL;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int add_failed(cJSON *failed, const char *addr, int err, const char *msg)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddItemToArray(failed, o)) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    if (cJSON_AddStringToObject(o, CS_F_ADDR, addr) == NULL ||
        cJSON_AddStringToObject(o, CS_F_ERROR, cm_errname(err)) == NULL ||
        cJSON_AddStringToObject(o, CS_F_MESSAGE, msg ? msg : cm_strerror(err)) == NULL)
        return CM_E_NOMEM;
    return 0;
}

/* ---- PUT ---- */

struct put_op {
    atomic_int refs; /* the request and the forwarder thread */
    struct chunkserver *cs;
    uint64_t id;
    char hex[CS_BLOCK_ID_HEX + 1];
    struct cs_writer *w; /* request side only */
    struct cs_fwd *fwd;  /* request side only */
    bool fwd_broken;     /* request side only: stop feeding */
    char down[CS_PIPELINE_MAX][CS_ADDR_MAX];
    size_t ndown;
    bool has_crc;
    uint32_t crc;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool local_done;
    int local_rc;
    struct cs_block_info info;
    bool fwd_done;
    int fwd_rc;
    cJSON *fwd_json; /* the downstream's answer (or error body) */
    struct cm_http_deferred *deferred;
};

static void put_op_put(struct put_op *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    pthread_cond_destroy(&op->cv);
    pthread_mutex_destroy(&op->mu);
    cJSON_Delete(op->fwd_json);
    free(op);
}

/* The request is over (answered, failed or abandoned by the client). */
static void put_op_drop(void *p)
{
    struct put_op *op = p;

    cs_fwd_release(op->fwd);
    op->fwd = NULL;
    cs_writer_free(op->w);
    op->w = NULL;
    atomic_fetch_sub(&op->cs->inflight, 1);
    put_op_put(op);
}

static bool is_down(const struct put_op *op, const char *addr)
{
    for (size_t i = 0; i < op->ndown; i++)
        if (strcmp(op->down[i], addr) == 0)
            return true;
    return false;
}

static bool listed(const cJSON *replicas, const cJSON *failed, const char *addr)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, replicas)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, addr) == 0)
            return true;
    }
    cJSON_ArrayForEach(it, failed)
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, CS_F_ADDR);
        if (cJSON_IsString(a) && strcmp(a->valuestring, addr) == 0)
            return true;
    }
    return false;
}

/* Takes the downstream's "replicas" and "failed" (from its answer or its error object), keeping
 * only well-formed entries about our own downstream chunkservers. */
static void merge(const struct put_op *op, cJSON *replicas, cJSON *failed, const cJSON *src)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(src, CS_F_REPLICAS))
    {
        if (cJSON_IsString(it) && is_down(op, it->valuestring) &&
            !listed(replicas, failed, it->valuestring))
            cJSON_AddItemToArray(replicas, cJSON_CreateString(it->valuestring));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(src, CS_F_FAILED))
    {
        const char *addr = NULL, *err = NULL, *msg = NULL;
        if (cm_json_get_str(it, CS_F_ADDR, CS_ADDR_MAX, &addr, NULL) < 0 ||
            cm_json_get_str(it, CS_F_ERROR, 64, &err, NULL) < 0 || !is_down(op, addr) ||
            listed(replicas, failed, addr))
            continue;
        cm_json_opt_str(it, CS_F_MESSAGE, 256, &msg, NULL);
        add_failed(failed, addr, cm_err_from_name(err), msg);
    }
}

/* The answer once the local copy and the downstream are both done: 0 and the success body, or
 * the local error and an extra object for the error body. Both list every pipeline member
 * under "replicas" (holds the block) or "failed". */
static int put_result(struct put_op *op, cJSON **out)
{
    struct chunkserver *cs = op->cs;
    cJSON *o = cJSON_CreateObject(), *rep, *fail;

    *out = NULL;
    rep = cJSON_AddArrayToObject(o, CS_F_REPLICAS);
    fail = cJSON_AddArrayToObject(o, CS_F_FAILED);
    if (rep == NULL || fail == NULL) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    if (op->local_rc == 0)
        cJSON_AddItemToArray(rep, cJSON_CreateString(cs->advertise));
    if (op->ndown > 0) {
        const cJSON *src = NULL;
        if (op->fwd_rc == 0) {
            uint64_t len = 0;
            uint32_t crc = 0;
            if (op->local_rc == 0 && (cm_json_get_u64(op->fwd_json, CS_F_LEN, &len) < 0 ||
                                      cm_json_get_u32(op->fwd_json, CS_F_CRC, &crc) < 0 ||
                                      len != op->info.len || crc != op->info.crc))
                add_failed(fail, op->down[0], CM_E_CORRUPT,
                           "the downstream copy's length or CRC differs");
            else
                src = op->fwd_json;
        } else {
            add_failed(fail, op->down[0], op->fwd_rc, NULL);
            src = cJSON_GetObjectItemCaseSensitive(op->fwd_json, "error");
        }
        if (src != NULL)
            merge(op, rep, fail, src);
        for (size_t i = 0; i < op->ndown; i++)
            if (!listed(rep, fail, op->down[i]))
                add_failed(fail, op->down[i], CM_E_UNAVAILABLE, "not reached");
        if (cJSON_GetArraySize(fail) > 0) {
            atomic_fetch_add(&cs->pipeline_errors, 1);
            LOG_WARN("put %s: pipeline incomplete, %d of %zu downstream failed (first: %s %s)",
                     op->hex, cJSON_GetArraySize(fail), op->ndown, op->down[0],
                     cm_errname(op->fwd_rc));
        }
    }
    if (op->local_rc < 0) {
        atomic_fetch_add(&cs->puts_failed, 1);
        *out = o;
        return op->local_rc;
    }
    atomic_fetch_add(&cs->puts, 1);
    if (cJSON_AddStringToObject(o, CS_F_ID, op->hex) == NULL ||
        cm_json_add_u64(o, CS_F_LEN, op->info.len) < 0 ||
        cJSON_AddNumberToObject(o, CS_F_CRC, (double)op->info.crc) == NULL) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    *out = o;
    return 0;
}

static void put_fwd_done(void *ctx, int rc, struct cm_http_response *resp)
{
    struct put_op *op = ctx;
    struct cm_http_deferred *d;

    pthread_mutex_lock(&op->mu);
    op->fwd_done = true;
    op->fwd_rc = rc;
    op->fwd_json = resp->json;
    resp->json = NULL;
    d = op->deferred;
    op->deferred = NULL;
    pthread_cond_broadcast(&op->cv);
    pthread_mutex_unlock(&op->mu);
    if (d != NULL) {
        cJSON *o = NULL;
        int err = put_result(op, &o);
        if (err == 0)
            cm_http_deferred_json(d, 200, o);
        else
            cm_http_deferred_error(d, err, NULL, o);
    }
    put_op_put(op);
}

/* Parses the downstream list into op->down: well-formed, not this chunkserver, no repeats. */
static int parse_pipeline(struct put_op *op, const char *list)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    int rc = 0;

    if (cm_endpoints_parse(list, &hp, &n) < 0)
        return CM_E_INVAL;
    if (n > CS_PIPELINE_MAX)
        rc = CM_E_INVAL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *a = op->down[i];
        if (strchr(hp[i].host, ':') != NULL)
            snprintf(a, CS_ADDR_MAX, "[%s]:%u", hp[i].host, hp[i].port);
        else
            snprintf(a, CS_ADDR_MAX, "%s:%u", hp[i].host, hp[i].port);
        if (strcmp(a, op->cs->advertise) == 0)
            rc = CM_E_INVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(op->down[k], a) == 0)
                rc = CM_E_INVAL;
    }
    free(hp);
    if (rc == 0)
        op->ndown = n;
    return rc;
}

/* Appends s to the URL with '[' and ']' percent-encoded (IPv6 in a query). */
static void url_append(char *url, size_t cap, const char *s)
{
    size_t len = strlen(url);

    for (; *s != '\0' && len + 4 < cap; s++) {
        if (*s == '[' || *s == ']')
            len += (size_t)snprintf(url + len, cap - len, "%%%02X", (unsigned char)*s);
        else
            url[len++] = *s;
    }
    url[len] = '\0';
}

static void start_forward(struct put_op *op, int64_t len)
{
    struct chunkserver *cs = op->cs;
    struct cs_fwd_config fc = {0};
    char url[URL_MAX];
    int rc;

    snprintf(url, sizeof(url), "http://%s" CS_PATH_BLOCKS_PREFIX "%s?", op->down[0], op->hex);
    if (op->has_crc)
        snprintf(url + strlen(url), sizeof(url) - strlen(url), CS_QUERY_CRC "=%08" PRIx32 "&",
                 op->crc);
    if (op->ndown > 1) {
        url_append(url, sizeof(url), CS_QUERY_PIPELINE "=");
        for (size_t i = 1; i < op->ndown; i++) {
            if (i > 1)
                url_append(url, sizeof(url), ",");
            url_append(url, sizeof(url), op->down[i]);
        }
    }
    fc.http = cs->peers;
    fc.url = url;
    fc.len = len;
    fc.timeout_ms = cs->cfg.pipeline_timeout_ms;
    fc.done = put_fwd_done;
    fc.ctx = op;
    fc.wg = &cs->fwds;
    atomic_fetch_add(&op->refs, 1);
    rc = cs_fwd_start(&fc, &op->fwd);
    if (rc < 0) {
        atomic_fetch_sub(&op->refs, 1);
        op->fwd = NULL;
        pthread_mutex_lock(&op->mu);
        op->fwd_done = true;
        op->fwd_rc = rc;
        pthread_mutex_unlock(&op->mu);
        LOG_WARN("put %s: cannot start forwarding to %s: %s", op->hex, op->down[0], cm_errname(rc));
    }
}

static int put_start(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    const char *pipe, *crc;
    struct put_op *op;
    uint64_t id, cl;
    int64_t len = -1;
    int rc;

    if (parse_id(req, &id) < 0)
        return bad_request(req, "malformed block id: 16 lowercase hex digits expected");
    if (cm_http_req_content_length(req, &cl) == 0) {
        if (cl > cs_store_block_size(cs->store))
            return CM_E_TOO_LARGE;
        len = (int64_t)cl;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return CM_E_NOMEM;
    op->cs = cs;
    op->id = id;
    cs_block_id_format(id, op->hex);
    pipe = arg(req, CS_QUERY_PIPELINE, CS_HDR_PIPELINE);
    if (pipe != NULL && pipe[0] != '\0' && parse_pipeline(op, pipe) < 0) {
        free(op);
        return bad_request(req, "malformed pipeline: up to 8 distinct host:port, not this one");
    }
    crc = arg(req, CS_QUERY_CRC, CS_HDR_CRC);
    if (crc != NULL) {
        if (parse_crc(crc, &op->crc) < 0) {
            free(op);
            return bad_request(req, "malformed CRC32C: 8 hex digits expected");
        }
        op->has_crc = true;
    }
    if (pthread_mutex_init(&op->mu, NULL) != 0) {
        free(op);
        return CM_E_NOMEM;
    }
    if (pthread_cond_init(&op->cv, NULL) != 0) {
        pthread_mutex_destroy(&op->mu);
        free(op);
        return CM_E_NOMEM;
    }
    atomic_init(&op->refs, 1);
    atomic_fetch_add(&cs->inflight, 1);
    cm_http_req_set_ctx(req, op, put_op_drop);
    /* The downstream first: its directory and file syncs then run beside ours instead of
     * after them (a small block arrives whole with its headers). If our copy cannot be
     * opened, dropping op aborts the forward and the downstream keeps nothing. */
    if (op->ndown > 0)
        start_forward(op, len);
    rc = cs_writer_open(cs->store, id, len, &op->w);
    if (rc < 0) {
        atomic_fetch_add(&cs->puts_failed, 1);
        LOG_WARN("put %s: %s", op->hex, cm_strerror(rc));
        return rc;
    }
    return 0;
}

static int put_body(struct cm_http_req *req, const char *buf, size_t len, void *data)
{
    struct put_op *op = cm_http_req_ctx(req);
    int rc;

    (void)data;
    rc = cs_writer_append(op->w, buf, len);
    if (rc < 0) {
        LOG_WARN("put %s: %s after %" PRIu64 " bytes", op->hex, cm_strerror(rc),
                 cs_writer_len(op->w));
        atomic_fetch_add(&op->cs->puts_failed, 1);
        if (op->fwd != NULL)
            cs_fwd_abort(op->fwd);
        return rc;
    }
    atomic_fetch_add(&op->cs->bytes_received, len);
    if (op->fwd != NULL && !op->fwd_broken && cs_fwd_push(op->fwd, buf, len) < 0)
        op->fwd_broken = true; /* the forwarder reports why when it ends */
    return 0;
}

static int put_handler(struct cm_http_req *req, void *data)
{
    struct put_op *op = cm_http_req_ctx(req);
    struct cs_block_info info = {0};
    cJSON *o = NULL;
    int rc, err;

    (void)data;
    if (op->fwd != NULL)
        cs_fwd_end(op->fwd); /* the downstream finishes while we sync */
    rc = cs_writer_commit(op->w, op->has_crc ? &op->crc : NULL, &info);
    if (rc < 0)
        LOG_WARN("put %s: %s", op->hex, cm_strerror(rc));
    pthread_mutex_lock(&op->mu);
    op->local_done = true;
    op->local_rc = rc;
    op->info = info;
    if (op->ndown > 0 && !op->fwd_done) {
        struct cm_http_deferred *d;
        if (cm_http_defer(req, &d) == 0) {
            op->deferred = d; /* put_fwd_done answers */
            pthread_mutex_unlock(&op->mu);
            return 0;
        }
        while (!op->fwd_done)
            pthread_cond_wait(&op->cv, &op->mu);
    }
    pthread_mutex_unlock(&op->mu);
    err = put_result(op, &o);
    if (err == 0)
        return cm_http_answer_json(req, 200, o);
    if (cm_http_answer_error(req, err, NULL, o) < 0)
        return err;
    return 0;
}

/* ---- GET ---- */

struct get_ctx {
    struct chunkserver *cs;
    struct cs_reader *r;
    uint64_t off, len;
};

static void get_free(void *p)
{
    struct get_ctx *g = p;

    cs_reader_free(g->r);
    atomic_fetch_sub(&g->cs->inflight, 1);
    free(g);
}

static int get_read(void *ctx, uint64_t pos, char *buf, size_t cap, size_t *n_out)
{
    struct get_ctx *g = ctx;
    size_t n;
    int rc;

    if (pos >= g->len) {
        *n_out = 0;
        return 0;
    }
    n = g->len - pos < cap ? (size_t)(g->len - pos) : cap;
    /* Checked again as it goes out: the file may have changed since the handler checked it. */
    rc = cs_reader_read(g->r, g->off + pos, buf, n);
    if (rc < 0) {
        atomic_fetch_add(&g->cs->gets_failed, 1);
        return rc;
    }
    atomic_fetch_add(&g->cs->bytes_served, n);
    *n_out = n;
    return 0;
}

static int get_handler(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    struct cs_block_info info;
    struct cs_reader *r = NULL;
    struct get_ctx *g;
    char hex[CS_BLOCK_ID_HEX + 1], num[64];
    uint64_t id, off = 0, len = 0;
    int status = 200, rc;

    if (parse_id(req, &id) < 0)
        return bad_request(req, "malformed block id: 16 lowercase hex digits expected");
    cs_block_id_format(id, hex);
    rc = cs_reader_open(cs->store, id, &r);
    if (rc < 0)
        goto fail;
    cs_reader_info(r, &info);
    rc = cm_http_parse_range(cm_http_req_header(req, "Range"), info.len, &off, &len);
    if (rc == CM_E_NOENT) {
        off = 0;
        len = info.len;
    } else if (rc == CM_E_INVAL) {
        cs_reader_free(r);
        return bad_request(req, "malformed Range header");
    } else if (rc < 0) {
        cs_reader_free(r);
        atomic_fetch_add(&cs->gets_failed, 1);
        cm_http_answer_error(req, CM_E_RANGE, "range not satisfiable", NULL);
        snprintf(num, sizeof(num), "bytes */%" PRIu64, info.len);
        cm_http_answer_header(req, "Content-Range", num);
        return 0;
    } else {
        status = 206;
    }
    if (strcmp(cm_http_req_method(req), "HEAD") != 0 && len > 0) {
        rc = cs_reader_verify(r, off, len);
        if (rc < 0)
            goto fail;
    }
    cs_reader_limit(r, off + len);
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    g->cs = cs;
    g->r = r;
    g->off = off;
    g->len = len;
    atomic_fetch_add(&cs->inflight, 1);
    atomic_fetch_add(&cs->gets, 1);
    rc = cm_http_answer_stream(req, status, NULL, (int64_t)len, get_read, g, get_free);
    if (rc < 0)
        return rc;
    snprintf(num, sizeof(num), "%" PRIu64, info.len);
    cm_http_answer_header(req, CS_HDR_BLOCK_LEN, num);
    snprintf(num, sizeof(num), "%08" PRIx32, info.crc);
    cm_http_answer_header(req, CS_HDR_CRC, num);
    cm_http_answer_header(req, "Accept-Ranges", "bytes");
    if (status == 206) {
        snprintf(num, sizeof(num), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1,
                 info.len);
        cm_http_answer_header(req, "Content-Range", num);
    }
    return 0;

fail:
    cs_reader_free(r);
    atomic_fetch_add(&cs->gets_failed, 1);
    if (rc == CM_E_CORRUPT) {
        LOG_WARN("get %s: checksum mismatch; block marked corrupt", hex);
        return cm_http_answer_error(req, rc, "block failed its checksum; marked corrupt", NULL);
    }
    if (rc == CM_E_NOENT)
        return cm_http_answer_error(req, rc, "no such block", NULL);
    return rc;
}

/* ---- DELETE ---- */

static int delete_handler(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    uint64_t id;
    int rc;

    if (parse_id(req, &id) < 0)
        return bad_request(req, "malformed block id: 16 lowercase hex digits expected");
    rc = cs_store_delete(cs->store, id);
    if (rc == CM_E_NOENT)
        return cm_http_answer_error(req, rc, "no such block", NULL);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&cs->deletes, 1);
    return cm_http_answer_json(req, 200, NULL);
}

/* ---- replicate ---- */

struct repl_wait {
    struct chunkserver *cs;
    struct cm_http_deferred *d;
    char target[CS_ADDR_MAX];
};

static void repl_done(void *ctx, int rc, const struct cs_block_info *info)
{
    struct repl_wait *w = ctx;
    char hex[CS_BLOCK_ID_HEX + 1];
    cJSON *o = cJSON_CreateObject();

    if (rc == 0) {
        atomic_fetch_add(&w->cs->replicas_made, 1);
        cs_block_id_format(info->id, hex);
        cJSON_AddStringToObject(o, CS_F_ID, hex);
        cJSON_AddStringToObject(o, CS_F_TARGET, w->target);
        cm_json_add_u64(o, CS_F_LEN, info->len);
        cJSON_AddNumberToObject(o, CS_F_CRC, (double)info->crc);
        cm_http_deferred_json(w->d, 200, o);
    } else {
        cJSON_AddStringToObject(o, CS_F_TARGET, w->target);
        cm_http_deferred_error(w->d, rc, NULL, o);
    }
    free(w);
}

static int replicate_handler(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    struct cs_block_info info;
    struct repl_wait *w;
    const char *target;
    uint64_t id;
    int rc;

    if (parse_id(req, &id) < 0)
        return bad_request(req, "malformed block id: 16 lowercase hex digits expected");
    rc = cm_json_get_str(cm_http_req_json(req), CS_F_TARGET, CS_ADDR_MAX, &target, NULL);
    if (rc < 0)
        return rc;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_E_NOMEM;
    w->cs = cs;
    if (cs_peer_addr(target, w->target, sizeof(w->target)) < 0 ||
        strcmp(w->target, cs->advertise) == 0) {
        free(w);
        return bad_request(req, "target must be another chunkserver's host:port");
    }
    rc = cs_store_get(cs->store, id, &info);
    if (rc < 0) {
        free(w);
        return cm_http_answer_error(req, rc, "no such block", NULL);
    }
    rc = cm_http_defer(req, &w->d);
    if (rc < 0) {
        free(w);
        return rc;
    }
    rc = cs_replicator_submit(cs->repl, id, w->target, repl_done, w);
    if (rc < 0) {
        cm_http_deferred_error(w->d, rc, NULL, NULL);
        free(w);
    }
    return 0;
}

/* ---- anything else under /blocks/ ---- */

static int bad_id(struct cm_http_req *req, void *data)
{
    (void)data;
    return bad_request(req, "malformed block id: 16 lowercase hex digits expected");
}

static int bad_id_body(struct cm_http_req *req, const char *buf, size_t len, void *data)
{
    (void)req;
    (void)buf;
    (void)len;
    (void)data;
    return CM_E_INVAL;
}

int cs_data_api_add(struct chunkserver *cs)
{
    const struct cm_http_route routes[] = {
        {"PUT", CS_PATH_BLOCK, CM_HTTP_STREAM, put_start, put_body, put_handler, cs},
        {"GET", CS_PATH_BLOCK, 0, NULL, NULL, get_handler, cs},
        {"DELETE", CS_PATH_BLOCK, 0, NULL, NULL, delete_handler, cs},
        {"POST", CS_PATH_BLOCK_REPLICATE, CM_HTTP_JSON, NULL, NULL, replicate_handler, cs},
        {"PUT", CS_PATH_BLOCKS_PREFIX "*", CM_HTTP_STREAM, bad_id, bad_id_body, bad_id, cs},
        {"GET", CS_PATH_BLOCKS_PREFIX "*", 0, NULL, NULL, bad_id, cs},
        {"DELETE", CS_PATH_BLOCKS_PREFIX "*", 0, NULL, NULL, bad_id, cs},
        {"POST", CS_PATH_BLOCKS_PREFIX "*", 0, NULL, NULL, bad_id, cs},
    };

    return cm_http_server_add_routes(cs->http, routes, sizeof(routes) / sizeof(routes[0]));
}
