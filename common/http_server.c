/* HTTP server on libmicrohttpd: one access callback that routes, checks the secret, gathers or
 * streams the body, runs the handler and queues its answer; deferred answers via suspend/resume.
 */
#include "common/http_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"

#define JSON_TYPE     "application/json"
#define STREAM_BLOCK  (64 * 1024)
#define LISTEN_QUEUE  1024
#define BODY_MIN_CAP  1024
#define MAX_METHOD    16
#define ALLOW_BUF_LEN 128
#define DISCARD_MIN   CM_HTTP_EXPECT_ABOVE /* bodies discarded after an error, at least */
#define DRAIN_MS      1000                 /* how long stop waits for answers to waiting requests */

enum seg_kind { SEG_LIT, SEG_PARAM, SEG_REST };

struct seg {
    const char *s; /* into route.pattern copy; for SEG_PARAM the name */
    size_t len;
    enum seg_kind kind;
};

struct route {
    char method[MAX_METHOD];
    char *pattern; /* owned; segments point into it (braces and slashes kept) */
    unsigned flags;
    cm_http_handler_fn on_start;
    cm_http_body_fn on_body;
    cm_http_handler_fn handler;
    void *data;
    size_t nseg;
    struct seg *segs;
};

/* Deferred answers share this with every handle; it outlives the server while handles exist, so
 * completing after the server is freed is safe. mu orders suspend, resume and stop. */
struct hub {
    pthread_mutex_t mu;
    pthread_cond_t drained;
    atomic_int refs;
    bool stopped;
    unsigned in_handler;           /* deferred, but the handler has not returned yet */
    unsigned draining;             /* answered UNAVAILABLE by stop, answer not yet sent */
    struct cm_http_deferred *list; /* suspended, waiting for their answer */
};

struct cm_http_deferred {
    atomic_int refs; /* the request and the owner */
    struct hub *hub;
    struct MHD_Connection *conn;
    struct cm_http_deferred *prev, *next; /* in hub->list while suspended */
    bool completed;                       /* the owner gave its answer */
    bool suspended;                       /* the connection is suspended, waiting for the answer */
    bool dropped;                         /* the request no longer takes an answer */
    bool draining; /* answered by stop; counted in hub->draining until the request ends */
    struct MHD_Response *resp;
    unsigned status;
};

struct cm_http_server {
    char addr[INET6_ADDRSTRLEN];
    int family;
    uint16_t port_cfg;
    uint16_t port;
    unsigned threads;
    size_t max_body;
    unsigned max_connections;
    unsigned idle_timeout_s;
    size_t conn_memory;
    struct cm_secret secret;
    struct route *routes;
    size_t nroutes;
    struct MHD_Daemon *mhd;
    struct hub *hub;
    bool started;
    bool stopped;
    atomic_uint_fast64_t nconn;
    atomic_uint_fast64_t nreq;
};

enum req_state {
    ST_BODY,      /* headers seen, reading the body */
    ST_DISCARD,   /* failed while the body arrived: the rest is dropped, then body_err answered */
    ST_ANSWERED,  /* answered from the headers; libmicrohttpd drops the body and closes */
    ST_SUSPENDED, /* the handler deferred; waiting to be resumed */
    ST_DONE,      /* answer queued */
};

struct param {
    const struct seg *seg;
    const char *value;
};

struct cm_http_req {
    struct cm_http_server *srv;
    struct MHD_Connection *conn;
    const struct route *route;
    const char *method; /* borrowed from libmicrohttpd, valid for the request */
    const char *path;
    enum req_state state;
    bool has_length;
    uint64_t content_length;
    char *body; /* buffered body, NUL-terminated */
    size_t body_len;
    size_t body_cap;
    int body_err; /* an error found while the body arrived */
    uint64_t discarded;
    cJSON *json;
    size_t nparams;
    struct param params[CM_HTTP_MAX_PARAMS];
    struct MHD_Response *resp; /* the answer set by the handler */
    unsigned status;
    struct cm_http_deferred *deferred;
    bool in_handler; /* the final handler is running */
    void *ctx;
    void (*ctx_free)(void *);
    char peer[INET6_ADDRSTRLEN + 8];
    char pathbuf[]; /* copy of path; captures are NUL-terminated inside */
};

struct stream_ctx {
    cm_http_reader_fn read;
    void *ctx;
    void (*free_ctx)(void *);
};

/* ---- hub and deferred handles ---- */

static void hub_put(struct hub *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1) {
        pthread_cond_destroy(&h->drained);
        pthread_mutex_destroy(&h->mu);
        free(h);
    }
}

static void deferred_put(struct cm_http_deferred *d)
{
    if (atomic_fetch_sub(&d->refs, 1) == 1) {
        if (d->resp != NULL)
            MHD_destroy_response(d->resp);
        hub_put(d->hub);
        free(d);
    }
}

static void hub_unlink(struct hub *h, struct cm_http_deferred *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        h->list = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

/* ---- answers ---- */

static struct MHD_Response *bytes_response(const void *buf, size_t len,
                                           enum MHD_ResponseMemoryMode m, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)buf, m);
    if (r == NULL)
        return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* Takes body. */
static int make_json(cJSON *body, struct MHD_Response **out)
{
    static const char empty[] = "{}";
    char *txt = NULL;
    size_t len = 0;
    int rc;

    if (body == NULL) {
        *out = bytes_response(empty, 2, MHD_RESPMEM_PERSISTENT, JSON_TYPE);
        return *out ? 0 : CM_E_NOMEM;
    }
    rc = cm_json_print(body, &txt, &len);
    cJSON_Delete(body);
    if (rc < 0)
        return rc;
    *out = bytes_response(txt, len, MHD_RESPMEM_MUST_FREE, JSON_TYPE);
    if (*out == NULL) {
        free(txt);
        return CM_E_NOMEM;
    }
    return 0;
}

/* The error body for err; takes extra. Falls back to a static body when memory runs out so an
 * error can always be answered. */
static struct MHD_Response *make_error(int err, const char *message, cJSON *extra, unsigned *status)
{
    static const char nomem[] =
        "{\"error\":{\"code\":\"OUT_OF_MEMORY\",\"message\":\"out of memory\"}}";
    cJSON *root = NULL, *obj = NULL, *f;
    struct MHD_Response *r = NULL;

    if (err >= 0 || cm_err_from_name(cm_errname(err)) != err)
        err = CM_E_INTERNAL;
    *status = (unsigned)cm_err_http_status(err);
    root = cJSON_CreateObject();
    obj = cJSON_AddObjectToObject(root, "error");
    if (obj == NULL || cJSON_AddStringToObject(obj, "code", cm_errname(err)) == NULL ||
        cJSON_AddStringToObject(obj, "message", message ? message : cm_strerror(err)) == NULL)
        goto nomem;
    if (extra != NULL) {
        while ((f = extra->child) != NULL) {
            cJSON_DetachItemViaPointer(extra, f);
            if (f->string != NULL && !cJSON_HasObjectItem(obj, f->string))
                cJSON_AddItemToObject(obj, f->string, f);
            else
                cJSON_Delete(f);
        }
        cJSON_Delete(extra);
        extra = NULL;
    }
    if (make_json(root, &r) < 0)
        goto nomem_root_freed;
    return r;

nomem:
    cJSON_Delete(root);
nomem_root_freed:
    cJSON_Delete(extra);
    *status = 500;
    return bytes_response(nomem, sizeof(nomem) - 1, MHD_RESPMEM_PERSISTENT, JSON_TYPE);
}

static void set_answer(struct cm_http_req *req, unsigned status, struct MHD_Response *r)
{
    if (req->resp != NULL)
        MHD_destroy_response(req->resp);
    req->resp = r;
    req->status = status;
}

int cm_http_answer_json(struct cm_http_req *req, int status, cJSON *body)
{
    struct MHD_Response *r;
    int rc;

    if (status < 100 || status > 599 || req->deferred != NULL) {
        cJSON_Delete(body);
        return CM_E_INVAL;
    }
    rc = make_json(body, &r);
    if (rc < 0)
        return rc;
    set_answer(req, (unsigned)status, r);
    return 0;
}

int cm_http_answer_bytes(struct cm_http_req *req, int status, const char *content_type,
                         const void *buf, size_t len)
{
    struct MHD_Response *r;

    if (status < 100 || status > 599 || req->deferred != NULL || (buf == NULL && len > 0))
        return CM_E_INVAL;
    r = bytes_response(len ? buf : "", len, MHD_RESPMEM_MUST_COPY,
                       content_type ? content_type : "application/octet-stream");
    if (r == NULL)
        return CM_E_NOMEM;
    set_answer(req, (unsigned)status, r);
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *s = cls;
    size_t n = 0;

    if (s->read(s->ctx, pos, buf, max, &n) < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)(n > max ? max : n);
}

static void stream_free(void *cls)
{
    struct stream_ctx *s = cls;

    if (s->free_ctx != NULL)
        s->free_ctx(s->ctx);
    free(s);
}

int cm_http_answer_stream(struct cm_http_req *req, int status, const char *content_type,
                          int64_t length, cm_http_reader_fn read, void *ctx,
                          void (*free_ctx)(void *))
{
    struct stream_ctx *s = NULL;
    struct MHD_Response *r;
    int rc = CM_E_INVAL;

    if (status < 100 || status > 599 || req->deferred != NULL || read == NULL)
        goto fail;
    rc = CM_E_NOMEM;
    s = malloc(sizeof(*s));
    if (s == NULL)
        goto fail;
    s->read = read;
    s->ctx = ctx;
    s->free_ctx = free_ctx;
    r = MHD_create_response_from_callback(length < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)length,
                                          STREAM_BLOCK, stream_read, s, stream_free);
    if (r == NULL)
        goto fail;
    /* From here stream_free owns ctx. */
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type ? content_type : "application/octet-stream") !=
        MHD_YES) {
        MHD_destroy_response(r);
        return CM_E_NOMEM;
    }
    set_answer(req, (unsigned)status, r);
    return 0;

fail:
    free(s);
    if (free_ctx != NULL)
        free_ctx(ctx);
    return rc;
}

static int set_error(struct cm_http_req *req, int err, const char *message, cJSON *extra)
{
    unsigned status;
    struct MHD_Response *r = make_error(err, message, extra, &status);

    if (r == NULL)
        return CM_E_NOMEM;
    set_answer(req, status, r);
    return 0;
}

int cm_http_answer_error(struct cm_http_req *req, int err, const char *message, cJSON *extra)
{
    if (req->deferred != NULL) {
        cJSON_Delete(extra);
        return CM_E_INVAL;
    }
    return set_error(req, err, message, extra);
}

int cm_http_answer_header(struct cm_http_req *req, const char *name, const char *value)
{
    if (req->resp == NULL || name == NULL || value == NULL)
        return CM_E_INVAL;
    return MHD_add_response_header(req->resp, name, value) == MHD_YES ? 0 : CM_E_INVAL;
}

/* ---- deferred answers ---- */

int cm_http_defer(struct cm_http_req *req, struct cm_http_deferred **out)
{
    struct cm_http_deferred *d;

    if (req->deferred != NULL || !req->in_handler)
        return CM_E_INVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return CM_E_NOMEM;
    atomic_init(&d->refs, 2);
    d->hub = req->srv->hub;
    atomic_fetch_add(&d->hub->refs, 1);
    pthread_mutex_lock(&d->hub->mu);
    d->hub->in_handler++;
    pthread_mutex_unlock(&d->hub->mu);
    d->conn = req->conn;
    if (req->resp != NULL) {
        MHD_destroy_response(req->resp);
        req->resp = NULL;
    }
    req->deferred = d;
    *out = d;
    return 0;
}

/* Hands r to the waiting request, or drops it; releases the owner's reference. */
static void deferred_complete(struct cm_http_deferred *d, unsigned status, struct MHD_Response *r)
{
    struct hub *h = d->hub;

    pthread_mutex_lock(&h->mu);
    if (d->completed || d->dropped) {
        if (d->completed)
            LOG_ERROR("http: deferred answer completed twice");
        if (r != NULL)
            MHD_destroy_response(r);
    } else {
        d->completed = true;
        d->resp = r; /* NULL (out of memory) is answered as INTERNAL */
        d->status = status;
        if (d->suspended) {
            d->suspended = false;
            hub_unlink(h, d);
            MHD_resume_connection(d->conn);
        }
    }
    pthread_mutex_unlock(&h->mu);
    deferred_put(d);
}

void cm_http_deferred_json(struct cm_http_deferred *d, int status, cJSON *body)
{
    struct MHD_Response *r = NULL;
    unsigned st = (unsigned)status;

    if (status < 100 || status > 599) {
        cJSON_Delete(body);
        r = make_error(CM_E_INTERNAL, "handler gave an invalid status", NULL, &st);
    } else if (make_json(body, &r) < 0) {
        r = make_error(CM_E_NOMEM, NULL, NULL, &st);
    }
    deferred_complete(d, st, r);
}

void cm_http_deferred_error(struct cm_http_deferred *d, int err, const char *message, cJSON *extra)
{
    unsigned st;
    struct MHD_Response *r = make_error(err, message, extra, &st);

    deferred_complete(d, st, r);
}

/* ---- request access ---- */

const char *cm_http_req_method(const struct cm_http_req *req)
{
    return req->method;
}

const char *cm_http_req_path(const struct cm_http_req *req)
{
    return req->path;
}

const char *cm_http_req_param(const struct cm_http_req *req, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < req->nparams; i++) {
        const struct seg *s = req->params[i].seg;
        if (s->len == n && memcmp(s->s, name, n) == 0)
            return req->params[i].value;
    }
    return NULL;
}

static const char *lookup(const struct cm_http_req *req, enum MHD_ValueKind kind, const char *name)
{
    const char *v = NULL;
    size_t vlen = 0;

    if (MHD_lookup_connection_value_n(req->conn, kind, name, strlen(name), &v, &vlen) != MHD_YES)
        return NULL;
    return v ? v : "";
}

const char *cm_http_req_query(const struct cm_http_req *req, const char *name)
{
    return lookup(req, MHD_GET_ARGUMENT_KIND, name);
}

const char *cm_http_req_header(const struct cm_http_req *req, const char *name)
{
    return lookup(req, MHD_HEADER_KIND, name);
}

const cJSON *cm_http_req_json(const struct cm_http_req *req)
{
    return req->json;
}

const char *cm_http_req_body(const struct cm_http_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body ? req->body : "";
}

int cm_http_req_content_length(const struct cm_http_req *req, uint64_t *out)
{
    if (!req->has_length)
        return CM_E_NOENT;
    *out = req->content_length;
    return 0;
}

const char *cm_http_req_peer(const struct cm_http_req *req)
{
    struct cm_http_req *r = (struct cm_http_req *)req; /* filled lazily, once */
    const union MHD_ConnectionInfo *ci;
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (r->peer[0] != '\0')
        return r->peer;
    ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
            inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
            port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(r->peer, sizeof(r->peer), "%s:%u", ip, port);
    return r->peer;
}

void cm_http_req_set_ctx(struct cm_http_req *req, void *ctx, void (*free_fn)(void *))
{
    if (req->ctx_free != NULL && req->ctx != ctx)
        req->ctx_free(req->ctx);
    req->ctx = ctx;
    req->ctx_free = free_fn;
}

void *cm_http_req_ctx(const struct cm_http_req *req)
{
    return req->ctx;
}

/* ---- routes ---- */

static int compile_route(struct route *r, const struct cm_http_route *in)
{
    size_t n = 0, mlen;
    char *p;

    if (in->method == NULL || in->pattern == NULL || in->pattern[0] != '/' || in->handler == NULL ||
        ((in->flags & CM_HTTP_STREAM) != 0) != (in->on_body != NULL) ||
        (in->flags & CM_HTTP_STREAM && in->flags & CM_HTTP_JSON) ||
        (in->on_start != NULL && !(in->flags & CM_HTTP_STREAM)))
        return CM_E_INVAL;
    mlen = strlen(in->method);
    if (mlen == 0 || mlen >= MAX_METHOD)
        return CM_E_INVAL;
    memcpy(r->method, in->method, mlen + 1);
    r->flags = in->flags;
    r->on_start = in->on_start;
    r->on_body = in->on_body;
    r->handler = in->handler;
    r->data = in->data;
    r->pattern = strdup(in->pattern);
    if (r->pattern == NULL)
        return CM_E_NOMEM;
    for (p = r->pattern; *p; p++)
        n += *p == '/';
    r->segs = calloc(n, sizeof(*r->segs));
    if (r->segs == NULL)
        return CM_E_NOMEM;
    p = r->pattern + 1;
    for (size_t i = 0; i < n; i++) {
        struct seg *s = &r->segs[i];
        const char *e = strchrnul(p, '/');
        s->s = p;
        s->len = (size_t)(e - p);
        s->kind = SEG_LIT;
        if (s->len == 1 && p[0] == '*') {
            if (i + 1 != n)
                return CM_E_INVAL;
            s->kind = SEG_REST;
        } else if (s->len >= 3 && p[0] == '{' && p[s->len - 1] == '}') {
            s->kind = SEG_PARAM;
            s->s = p + 1;
            s->len -= 2;
        }
        if (memchr(s->s, '{', s->len) || memchr(s->s, '}', s->len))
            return CM_E_INVAL;
        p = (char *)e + 1;
    }
    r->nseg = n;
    size_t nparam = 0;
    for (size_t i = 0; i < n; i++)
        nparam += r->segs[i].kind != SEG_LIT;
    return nparam <= CM_HTTP_MAX_PARAMS ? 0 : CM_E_INVAL;
}

static void route_close(struct route *r)
{
    free(r->pattern);
    free(r->segs);
}

/* Matches path against r's pattern; on success records captures into params (offsets into path
 * as pointers to path). */
static bool route_match(const struct route *r, const char *path, struct param *params,
                        size_t *nparams, size_t *lens)
{
    const char *p = path + 1;
    size_t np = 0;

    if (path[0] != '/')
        return false;
    for (size_t i = 0; i < r->nseg; i++) {
        const struct seg *s = &r->segs[i];
        const char *e;
        size_t len;

        if (s->kind == SEG_REST) {
            params[np].seg = s;
            params[np].value = p;
            lens[np++] = strlen(p);
            break;
        }
        e = strchrnul(p, '/');
        len = (size_t)(e - p);
        if (s->kind == SEG_LIT) {
            if (len != s->len || memcmp(p, s->s, len) != 0)
                return false;
        } else {
            if (len == 0)
                return false;
            params[np].seg = s;
            params[np].value = p;
            lens[np++] = len;
        }
        if (i + 1 == r->nseg) {
            if (*e != '\0')
                return false;
            break;
        }
        if (*e != '/')
            return false;
        p = e + 1;
    }
    *nparams = np;
    return true;
}

static bool method_fits(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

/* Finds the route for req. Returns CM_E_NO_ROUTE, CM_E_METHOD (allow, if not NULL, filled with
 * the path's methods) or 0. */
static int find_route(struct cm_http_req *req, char *allow, size_t allow_cap)
{
    const struct cm_http_server *srv = req->srv;
    struct param params[CM_HTTP_MAX_PARAMS];
    size_t lens[CM_HTTP_MAX_PARAMS];
    size_t np = 0, alen = 0;
    bool path_known = false;

    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *r = &srv->routes[i];
        if (!route_match(r, req->path, params, &np, lens))
            continue;
        if (method_fits(r->method, req->method)) {
            req->route = r;
            req->nparams = np;
            for (size_t k = 0; k < np; k++) {
                size_t off = (size_t)(params[k].value - req->path);
                req->params[k].seg = params[k].seg;
                req->params[k].value = req->pathbuf + off;
                req->pathbuf[off + lens[k]] = '\0';
            }
            return 0;
        }
        path_known = true;
        if (allow == NULL)
            continue;
        /* Allow: each method once, GET implying HEAD. */
        const char *ms[2] = {r->method, strcmp(r->method, "GET") == 0 ? "HEAD" : NULL};
        for (int k = 0; k < 2 && ms[k] != NULL; k++) {
            size_t ml = strlen(ms[k]);
            bool seen = false;
            for (const char *a = allow; a < allow + alen;) {
                const char *e = strchrnul(a, ',');
                if ((size_t)(e - a) == ml && memcmp(a, ms[k], ml) == 0)
                    seen = true;
                a = *e ? e + 2 : e;
            }
            if (!seen && alen + ml + 3 < allow_cap) {
                alen += (size_t)snprintf(allow + alen, allow_cap - alen, "%s%s", alen ? ", " : "",
                                         ms[k]);
            }
        }
    }
    return path_known ? CM_E_METHOD : CM_E_NO_ROUTE;
}

/* ---- the access callback ---- */

/* Queues an error answer at once (before or in the middle of the body). */
static enum MHD_Result answer_now(struct cm_http_req *req, int err, const char *msg,
                                  const char *hdr, const char *hdr_value)
{
    unsigned status;
    struct MHD_Response *r = make_error(err, msg, NULL, &status);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    if (hdr != NULL)
        MHD_add_response_header(r, hdr, hdr_value);
    ret = MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
    req->state = ST_ANSWERED;
    return ret;
}

/* 405 with the methods the path has in Allow. */
static enum MHD_Result answer_method(struct cm_http_req *req)
{
    char allow[ALLOW_BUF_LEN] = "";

    find_route(req, allow, sizeof(allow));
    return answer_now(req, CM_E_METHOD, NULL, MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result queue_answer(struct cm_http_req *req)
{
    enum MHD_Result ret;

    if (req->resp == NULL)
        cm_http_answer_json(req, 200, NULL);
    if (req->resp == NULL)
        return MHD_NO;
    ret = MHD_queue_response(req->conn, req->status, req->resp);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
    req->state = ST_DONE;
    return ret;
}

static bool auth_ok(struct cm_http_req *req)
{
    const char *v = NULL;
    size_t vlen = 0;

    if (req->srv->secret.len == 0 || (req->route->flags & CM_HTTP_PUBLIC))
        return true;
    if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND, CM_AUTH_HEADER,
                                      sizeof(CM_AUTH_HEADER) - 1, &v, &vlen) == MHD_YES &&
        v != NULL && cm_secret_check(&req->srv->secret, v, vlen))
        return true;
    LOG_WARN("http: %s %s from %s: %s cluster secret", req->method, req->path,
             cm_http_req_peer(req), v ? "wrong" : "missing");
    return false;
}

static size_t discard_max(const struct cm_http_server *srv)
{
    return srv->max_body > DISCARD_MIN ? srv->max_body : DISCARD_MIN;
}

/* The body cannot be taken (too large, or on_body failed): err is answered once it has ended. */
static void fail_body(struct cm_http_req *req, int err)
{
    req->state = ST_DISCARD;
    req->body_err = err;
    cJSON_Delete(req->json);
    req->json = NULL;
    free(req->body);
    req->body = NULL;
    req->body_len = req->body_cap = 0;
}

/* Refuses the request with err before its body. Answering at once makes libmicrohttpd close the
 * connection with the body unread, and the reset that follows may reach a client still sending
 * before it reads the answer. So answer at once only when no body is on the way (the client waits
 * for "100 Continue") or the announced body is too large to drop; else drop the body as it comes
 * and answer at its end, which also keeps the connection. */
static enum MHD_Result reject(struct cm_http_req *req, int err)
{
    const char *expect = cm_http_req_header(req, MHD_HTTP_HEADER_EXPECT);

    if ((expect != NULL && strcasecmp(expect, "100-continue") == 0) ||
        (req->has_length && req->content_length > discard_max(req->srv))) {
        if (err == CM_E_METHOD)
            return answer_method(req);
        return answer_now(req, err, NULL, NULL, NULL);
    }
    fail_body(req, err);
    return MHD_YES;
}

static enum MHD_Result begin(struct cm_http_server *srv, struct MHD_Connection *conn,
                             const char *url, const char *method, void **con_cls)
{
    size_t plen = strlen(url);
    struct cm_http_req *req = calloc(1, sizeof(*req) + plen + 1);
    const char *cl;
    int rc;

    if (req == NULL)
        return MHD_NO;
    *con_cls = req;
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = url;
    memcpy(req->pathbuf, url, plen + 1);
    req->state = ST_BODY;
    atomic_fetch_add_explicit(&srv->nreq, 1, memory_order_relaxed);

    cl = cm_http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0') {
            req->has_length = true;
            req->content_length = v;
        }
    }
    rc = find_route(req, NULL, 0);
    if (rc < 0)
        return reject(req, rc);
    if (!auth_ok(req))
        return reject(req, CM_E_UNAUTHORIZED);
    if (req->route->flags & CM_HTTP_STREAM) {
        if (req->route->on_start != NULL) {
            rc = req->route->on_start(req, req->route->data);
            if (rc < 0) {
                set_answer(req, 0, NULL);
                return reject(req, rc);
            }
            if (req->resp != NULL) {
                /* An answer from on_start: sent at once, the body is not read. */
                queue_answer(req);
                req->state = ST_ANSWERED;
            }
        }
    } else if (req->has_length && req->content_length > srv->max_body) {
        return reject(req, CM_E_TOO_LARGE);
    }
    return MHD_YES;
}

static int take_body(struct cm_http_req *req, const char *data, size_t n)
{
    size_t max = req->srv->max_body;

    if (req->route->flags & CM_HTTP_STREAM)
        return req->route->on_body(req, data, n, req->route->data);
    if (n > max - req->body_len)
        return CM_E_TOO_LARGE;
    /* The common case: a JSON body arrives in one piece; parse it without copying. */
    if ((req->route->flags & CM_HTTP_JSON) && req->body_len == 0 && req->json == NULL &&
        req->body_err == 0 && req->has_length && req->content_length == n) {
        req->body_err = cm_json_parse_object(data, n, &req->json);
        req->body_len = n;
        return 0;
    }
    if (req->json != NULL || req->body_err != 0) /* more than announced: cannot happen */
        return CM_E_PROTO;
    if (req->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : BODY_MIN_CAP;
        if (req->has_length && req->content_length + 1 > cap)
            cap = (size_t)req->content_length + 1;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(req->body, cap);
        if (nb == NULL)
            return CM_E_NOMEM;
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return 0;
}

static enum MHD_Result finish(struct cm_http_req *req)
{
    const struct route *rt = req->route;
    struct cm_http_deferred *d;
    struct hub *h;
    int rc;

    if (rt->flags & CM_HTTP_JSON) {
        if (req->json == NULL && req->body_err == 0) {
            if (req->body_len == 0)
                return answer_now(req, CM_E_BAD_JSON, "request body is empty", NULL, NULL);
            req->body_err = cm_json_parse_object(req->body, req->body_len, &req->json);
        }
        if (req->body_err < 0)
            return answer_now(req, req->body_err, NULL, NULL, NULL);
    }
    req->in_handler = true;
    rc = rt->handler(req, rt->data);
    req->in_handler = false;
    d = req->deferred;
    if (d == NULL) {
        if (rc < 0)
            set_error(req, rc, NULL, NULL);
        return queue_answer(req);
    }
    h = d->hub;
    pthread_mutex_lock(&h->mu);
    if (--h->in_handler == 0 && h->stopped)
        pthread_cond_broadcast(&h->drained);
    if (h->stopped) {
        /* The server is stopping: answer now (UNAVAILABLE unless the answer is already here);
         * stop waits until it is out. */
        d->draining = true;
        h->draining++;
        if (!d->completed && rc >= 0)
            rc = CM_E_UNAVAILABLE;
    }
    if (rc < 0) {
        /* The handler failed after deferring (or see above): its error is the answer. */
        d->dropped = true;
        pthread_mutex_unlock(&h->mu);
        set_error(req, rc, NULL, NULL);
        return queue_answer(req);
    }
    if (d->completed) {
        /* Completed before the handler returned. */
        req->resp = d->resp;
        req->status = d->status;
        d->resp = NULL;
        pthread_mutex_unlock(&h->mu);
        if (req->resp == NULL)
            return answer_now(req, CM_E_NOMEM, NULL, NULL, NULL);
        return queue_answer(req);
    }
    d->suspended = true;
    d->next = h->list;
    if (h->list != NULL)
        h->list->prev = d;
    h->list = d;
    req->state = ST_SUSPENDED;
    MHD_suspend_connection(req->conn);
    pthread_mutex_unlock(&h->mu);
    return MHD_YES;
}

/* Called when a suspended request is resumed: its answer is in the deferred handle. */
static enum MHD_Result resumed(struct cm_http_req *req)
{
    struct cm_http_deferred *d = req->deferred;

    pthread_mutex_lock(&d->hub->mu);
    req->resp = d->resp;
    req->status = d->status;
    d->resp = NULL;
    pthread_mutex_unlock(&d->hub->mu);
    if (req->resp == NULL)
        return answer_now(req, CM_E_INTERNAL, NULL, NULL, NULL);
    return queue_answer(req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    struct cm_http_req *req = *con_cls;
    int rc;

    (void)version;
    if (req == NULL)
        return begin(cls, conn, url, method, con_cls);
    switch (req->state) {
    case ST_BODY:
        if (*upload_size == 0)
            return finish(req);
        rc = take_body(req, upload_data, *upload_size);
        *upload_size = 0;
        if (rc < 0)
            fail_body(req, rc);
        return MHD_YES;
    case ST_DISCARD:
        /* libmicrohttpd (0.9.75) cannot answer in the middle of a body: drop the rest, answer
         * at its end. A chunked body has no announced end; cut it off after a while. */
        if (*upload_size == 0)
            return req->body_err == CM_E_METHOD ? answer_method(req)
                                                : answer_now(req, req->body_err, NULL, NULL, NULL);
        req->discarded += *upload_size;
        *upload_size = 0;
        if (!req->has_length && req->discarded > discard_max(req->srv)) {
            LOG_DEBUG("http: %s %s from %s: closing after %" PRIu64 " discarded bytes", req->method,
                      req->path, cm_http_req_peer(req), req->discarded);
            return MHD_NO;
        }
        return MHD_YES;
    case ST_SUSPENDED:
        if (*upload_size != 0) {
            *upload_size = 0;
            return MHD_YES;
        }
        return resumed(req);
    case ST_ANSWERED:
    case ST_DONE:
        break;
    }
    *upload_size = 0; /* discard the rest of a body we already answered */
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct cm_http_req *req = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (req->resp != NULL)
        MHD_destroy_response(req->resp);
    if (req->deferred != NULL) {
        struct cm_http_deferred *d = req->deferred;
        if (d->draining) { /* set before the resume that led here; only stop reads it then */
            pthread_mutex_lock(&d->hub->mu);
            if (--d->hub->draining == 0)
                pthread_cond_broadcast(&d->hub->drained);
            pthread_mutex_unlock(&d->hub->mu);
        }
        deferred_put(d);
    }
    if (req->ctx_free != NULL)
        req->ctx_free(req->ctx);
    cJSON_Delete(req->json);
    free(req->body);
    free(req);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct cm_http_server *srv = cls;

    (void)conn;
    (void)socket_ctx;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add_explicit(&srv->nconn, 1, memory_order_relaxed);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;

    (void)cls;
    if (CM_LOG_DEBUG < cm_log_threshold)
        return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    LOG_DEBUG("http: libmicrohttpd: %s", buf);
}

/* ---- server ---- */

static int parse_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return CM_E_INVAL;
}

int cm_http_server_new(const struct cm_http_server_config *cfg, struct cm_http_server **out)
{
    struct cm_http_server *srv = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    const char *addr;
    int rc = CM_E_INVAL;

    if (cfg == NULL || out == NULL)
        return CM_E_INVAL;
    addr = cfg->bind_addr ? cfg->bind_addr : "0.0.0.0";
    if (strlen(addr) >= INET6_ADDRSTRLEN || parse_addr(addr, cfg->port, &ss, &sl) < 0)
        goto fail;
    rc = CM_E_NOMEM;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        goto fail;
    snprintf(srv->addr, sizeof(srv->addr), "%s", addr);
    srv->family = ss.ss_family;
    srv->port_cfg = cfg->port;
    srv->threads = cfg->threads ? cfg->threads : 1;
    srv->max_body = cfg->max_body ? cfg->max_body : CM_HTTP_DEFAULT_MAX_BODY;
    srv->max_connections =
        cfg->max_connections ? cfg->max_connections : CM_HTTP_DEFAULT_CONNECTIONS;
    srv->idle_timeout_s = cfg->idle_timeout_s ? cfg->idle_timeout_s : CM_HTTP_DEFAULT_IDLE_S;
    srv->conn_memory = cfg->conn_memory ? cfg->conn_memory : CM_HTTP_DEFAULT_CONN_MEMORY;
    if (cfg->secret != NULL)
        srv->secret = *cfg->secret;
    atomic_init(&srv->nconn, 0);
    atomic_init(&srv->nreq, 0);
    srv->hub = calloc(1, sizeof(*srv->hub));
    if (srv->hub == NULL)
        goto fail;
    if (pthread_mutex_init(&srv->hub->mu, NULL) != 0) {
        free(srv->hub);
        srv->hub = NULL;
        goto fail;
    }
    if (pthread_cond_init(&srv->hub->drained, NULL) != 0) {
        pthread_mutex_destroy(&srv->hub->mu);
        free(srv->hub);
        srv->hub = NULL;
        goto fail;
    }
    atomic_init(&srv->hub->refs, 1);
    *out = srv;
    return 0;

fail:
    free(srv);
    return rc;
}

int cm_http_server_add_routes(struct cm_http_server *srv, const struct cm_http_route *routes,
                              size_t n)
{
    struct route *nr;
    int rc;

    if (srv->started || (routes == NULL && n > 0))
        return CM_E_INVAL;
    nr = realloc(srv->routes, (srv->nroutes + n) * sizeof(*nr));
    if (nr == NULL && srv->nroutes + n > 0)
        return CM_E_NOMEM;
    srv->routes = nr;
    for (size_t i = 0; i < n; i++) {
        struct route *r = &srv->routes[srv->nroutes];
        memset(r, 0, sizeof(*r));
        rc = compile_route(r, &routes[i]);
        if (rc < 0) {
            route_close(r);
            return rc;
        }
        srv->nroutes++;
    }
    return 0;
}

static int make_listener(struct cm_http_server *srv, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, one = 1;

    if (parse_addr(srv->addr, srv->port_cfg, &ss, &sl) < 0)
        return CM_E_INVAL;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        LOG_ERROR("http: socket: %s", strerror(errno));
        return CM_E_IO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, LISTEN_QUEUE) < 0) {
        LOG_ERROR("http: cannot listen on %s port %u: %s", srv->addr, srv->port_cfg,
                  strerror(errno));
        close(fd);
        return CM_E_IO;
    }
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        close(fd);
        return CM_E_IO;
    }
    srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *fd_out = fd;
    return 0;
}

int cm_http_server_start(struct cm_http_server *srv)
{
    /* poll(2), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll loses a FIN that arrives
     * with the last data (it takes a short read as "drained"), so a client that sends and
     * closes leaves its connection open until the idle timeout. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    int fd, rc;

    if (srv->started)
        return CM_E_INVAL;
    rc = make_listener(srv, &fd);
    if (rc < 0)
        return rc;
    if (srv->family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv},
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, srv->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, srv->idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)srv->conn_memory, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        {srv->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, srv->threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (srv->mhd == NULL) {
        LOG_ERROR("http: cannot start the server on %s port %u", srv->addr, srv->port);
        close(fd);
        srv->port = 0;
        return CM_E_IO;
    }
    srv->started = true;
    LOG_DEBUG("http: serving on %s port %u with %u thread(s)", srv->addr, srv->port, srv->threads);
    return 0;
}

uint16_t cm_http_server_port(const struct cm_http_server *srv)
{
    return srv->port;
}

void cm_http_server_stop(struct cm_http_server *srv)
{
    struct hub *h;
    struct cm_http_deferred *d;

    if (srv == NULL || !srv->started || srv->stopped)
        return;
    h = srv->hub;
    srv->stopped = true;
    /* Resume every suspended request with UNAVAILABLE (libmicrohttpd must not be stopped with
     * suspended connections) and give those answers a moment to go out. From now on
     * completions go nowhere and new deferrals are answered UNAVAILABLE at once. */
    pthread_mutex_lock(&h->mu);
    h->stopped = true;
    while ((d = h->list) != NULL) {
        unsigned st;
        hub_unlink(h, d);
        d->suspended = false;
        d->dropped = true;
        d->draining = true;
        h->draining++;
        d->resp = make_error(CM_E_UNAVAILABLE, "server is stopping", NULL, &st);
        d->status = st;
        MHD_resume_connection(d->conn);
    }
    if (h->draining > 0 || h->in_handler > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (DRAIN_MS % 1000) * 1000000L;
        ts.tv_sec += DRAIN_MS / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        while (h->draining > 0 || h->in_handler > 0)
            if (pthread_cond_timedwait(&h->drained, &h->mu, &ts) != 0)
                break;
    }
    pthread_mutex_unlock(&h->mu);
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
}

void cm_http_server_free(struct cm_http_server *srv)
{
    if (srv == NULL)
        return;
    cm_http_server_stop(srv);
    for (size_t i = 0; i < srv->nroutes; i++)
        route_close(&srv->routes[i]);
    free(srv->routes);
    hub_put(srv->hub);
    free(srv);
}

void cm_http_server_stats(const struct cm_http_server *srv, struct cm_http_server_stats *out)
{
    out->connections = atomic_load(&((struct cm_http_server *)srv)->nconn);
    out->requests = atomic_load(&((struct cm_http_server *)srv)->nreq);
}

/* ---- Range ---- */

static int parse_u64(const char **p, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;

    if (!isdigit((unsigned char)*s))
        return CM_E_INVAL;
    while (isdigit((unsigned char)*s)) {
        unsigned dgt = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return CM_E_INVAL;
        v = v * 10 + dgt;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int cm_http_parse_range(const char *hdr, uint64_t size, uint64_t *off, uint64_t *len)
{
    const char *p = hdr;
    uint64_t a = 0, b = 0;
    bool has_a, has_b;

    if (hdr == NULL)
        return CM_E_NOENT;
    if (strncmp(p, "bytes=", 6) != 0)
        return CM_E_INVAL;
    p += 6;
    has_a = isdigit((unsigned char)*p);
    if (has_a && parse_u64(&p, &a) < 0)
        return CM_E_INVAL;
    if (*p++ != '-')
        return CM_E_INVAL;
    has_b = isdigit((unsigned char)*p);
    if (has_b && parse_u64(&p, &b) < 0)
        return CM_E_INVAL;
    if (*p != '\0' || (!has_a && !has_b) || (has_a && has_b && b < a))
        return CM_E_INVAL;
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return CM_E_RANGE;
        *off = b >= size ? 0 : size - b;
        *len = size - *off;
        return 0;
    }
    if (a >= size)
        return CM_E_RANGE;
    if (!has_b || b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return 0;
}
