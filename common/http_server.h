/* The HTTP server of every dfs daemon, on libmicrohttpd: routes, the cluster-secret check, JSON,
 * buffered and streamed bodies, streamed and deferred answers. Knows no dfs endpoint itself. */
#ifndef DFS_COMMON_HTTP_SERVER_H
#define DFS_COMMON_HTTP_SERVER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"

/* Threading: the server runs `threads` worker threads, each a poll(2) loop over its share of the
 * connections (libmicrohttpd's internal thread pool). Handlers, body callbacks and stream readers
 * run on these threads and must not wait for long: a handler that has to wait (e.g. for a Raft
 * commit) defers its answer with cm_http_defer and returns; the connection is then suspended
 * (no thread is held) until another thread completes the answer. */

/* Answer bodies of every error: {"error":{"code":"NOT_LEADER","message":"...",<extra fields>}}
 * with the HTTP status of the code in common/errors.h. */

#define CM_HTTP_DEFAULT_MAX_BODY    (1024 * 1024)
#define CM_HTTP_DEFAULT_CONNECTIONS 1024
#define CM_HTTP_DEFAULT_IDLE_S      60
/* libmicrohttpd zeroes this whole buffer for every request on a kept-alive connection, so a
 * larger one costs on every small request (it bounds header size and the I/O piece size). */
#define CM_HTTP_DEFAULT_CONN_MEMORY (32 * 1024)
/* Most "{name}" captures in one route pattern. */
#define CM_HTTP_MAX_PARAMS 8

struct cm_http_server_config {
    const char *bind_addr;          /* numeric IPv4 or IPv6 address; NULL = "0.0.0.0" */
    uint16_t port;                  /* 0 = any free port, see cm_http_server_port */
    unsigned threads;               /* worker threads; 0 = 1 */
    size_t max_body;                /* limit of buffered and JSON bodies; 0 = default */
    const struct cm_secret *secret; /* copied; NULL or len 0 = every request accepted */
    unsigned max_connections;       /* 0 = default */
    unsigned idle_timeout_s;        /* idle keep-alive connections are closed; 0 = default */
    size_t conn_memory;             /* per-connection buffer (headers, I/O); 0 = default */
};

/* Route flags. Without CM_HTTP_JSON or CM_HTTP_STREAM a body is buffered raw (up to max_body). */
enum cm_http_route_flag {
    CM_HTTP_PUBLIC = 1 << 0, /* no cluster secret needed (health, metrics) */
    CM_HTTP_JSON = 1 << 1,   /* the body must be a JSON object; parsed before the handler */
    CM_HTTP_STREAM = 1 << 2, /* the body goes to on_body as it arrives, never buffered */
};

struct cm_http_server;
/* One request and its answer. Valid from the first callback until the handler returns; the
 * request then belongs to the server. Never shared between threads by the server. */
struct cm_http_req;
/* An answer promised by a handler and given later from any thread (cm_http_defer). */
struct cm_http_deferred;

/* Produces the answer: sets one with cm_http_answer_* (or defers) and returns 0, or returns a
 * negative cm error code, answered as an error body (an answer already set is discarded). A
 * handler that returns 0 without an answer gives 200 with "{}". */
typedef int (*cm_http_handler_fn)(struct cm_http_req *req, void *data);
/* Streamed request body (CM_HTTP_STREAM): called with each piece of the body in order as it
 * arrives, len > 0; buf is valid during the call only. Returning a negative code ends the
 * request with that error: the rest of the body is dropped as it arrives (libmicrohttpd 0.9.75
 * cannot answer in the middle of a body), then the error is answered and the handler is not
 * called. A chunked body is dropped for at most max(max_body, 1 MiB) more bytes before the
 * connection is closed instead. */
typedef int (*cm_http_body_fn)(struct cm_http_req *req, const char *buf, size_t len, void *data);
/* Streamed answer: writes up to cap bytes of the body from offset pos into buf, sets *n_out and
 * returns 0. *n_out == 0 ends the body (for a known length: only once it is all sent). A
 * negative code aborts the connection (the status line is already sent). */
typedef int (*cm_http_reader_fn)(void *ctx, uint64_t pos, char *buf, size_t cap, size_t *n_out);

/* A route. pattern: segments separated by '/'; a segment "{name}" captures one non-empty
 * segment (cm_http_req_param); a last segment "*" matches the rest of the path after the prefix,
 * maybe empty or holding several segments, captured as param "*" (the pattern "/files/"
 * followed by "*" matches "/files/" and "/files/a/b", not "/files"). The first route that
 * matches path and method wins; HEAD is served by GET routes. An unknown path is answered 404
 * UNKNOWN_ENDPOINT, a known path with another method 405 METHOD_NOT_ALLOWED with Allow. */
struct cm_http_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE", ... */
    const char *pattern; /* "/status", "/block/{id}", ... */
    unsigned flags;      /* enum cm_http_route_flag */
    /* CM_HTTP_STREAM only, optional: called once the headers are in (and the secret checked),
     * before any body. Returning an error refuses the request: answered at once when the client
     * waits for "100 Continue" or announced more than max(max_body, 1 MiB), else once the body
     * has been dropped (which keeps the connection). An answer it sets is sent at once and the
     * connection closed. */
    cm_http_handler_fn on_start;
    cm_http_body_fn on_body;    /* CM_HTTP_STREAM only, required */
    cm_http_handler_fn handler; /* called once the whole body is in */
    void *data;                 /* passed to the callbacks */
};

struct cm_http_server_stats {
    uint64_t connections; /* TCP connections accepted since start */
    uint64_t requests;    /* requests dispatched to a route or answered with an error */
};

/* Creates a stopped server. Errors: CM_E_INVAL (bad config or address), CM_E_NOMEM. Free with
 * cm_http_server_free. */
int cm_http_server_new(const struct cm_http_server_config *cfg, struct cm_http_server **out);
/* Adds routes (copied, strings too; data is stored as given) before cm_http_server_start.
 * Errors: CM_E_INVAL (bad pattern or missing callback, or the server was started), CM_E_NOMEM. */
int cm_http_server_add_routes(struct cm_http_server *srv, const struct cm_http_route *routes,
                              size_t n);
/* Binds and starts serving. Errors: CM_E_IO (bind or listen failed, logged), CM_E_INVAL (already
 * started), CM_E_NOMEM. */
int cm_http_server_start(struct cm_http_server *srv);
/* The bound port once started (useful with port 0); 0 before. */
uint16_t cm_http_server_port(const struct cm_http_server *srv);
/* Stops serving: answers every still-deferred request with UNAVAILABLE (waiting up to a second
 * for those answers to go out), closes all connections and joins the worker threads. Deferred
 * handles stay valid, also after cm_http_server_free, until they are completed (which then does
 * nothing). Idempotent; the server cannot be started again. NULL is a no-op. */
void cm_http_server_stop(struct cm_http_server *srv);
/* Stops if needed and frees. NULL is a no-op. */
void cm_http_server_free(struct cm_http_server *srv);
void cm_http_server_stats(const struct cm_http_server *srv, struct cm_http_server_stats *out);

/* Request access. Strings are borrowed from the request and valid until the handler (or
 * on_start/on_body) returns. A handler that defers copies what it needs before returning and
 * never touches req afterwards. */
const char *cm_http_req_method(const struct cm_http_req *req);
/* The decoded path, without the query string. */
const char *cm_http_req_path(const struct cm_http_req *req);
/* A "{name}" capture of the route, or "*" for the rest of a prefix route; NULL if none. */
const char *cm_http_req_param(const struct cm_http_req *req, const char *name);
/* A decoded query argument ("?a=1&b=x"); NULL if absent, "" when given without value. */
const char *cm_http_req_query(const struct cm_http_req *req, const char *name);
/* A request header (name case-insensitive); NULL if absent. */
const char *cm_http_req_header(const struct cm_http_req *req, const char *name);
/* The parsed body of a CM_HTTP_JSON route (never NULL there); NULL on other routes. */
const cJSON *cm_http_req_json(const struct cm_http_req *req);
/* The buffered body of a route without CM_HTTP_JSON or CM_HTTP_STREAM; sets *len (may be NULL)
 * and returns a pointer (NUL-terminated for convenience, "" for no body). */
const char *cm_http_req_body(const struct cm_http_req *req, size_t *len);
/* The Content-Length the client announced. CM_E_NOENT when there is none (chunked body or no
 * body). */
int cm_http_req_content_length(const struct cm_http_req *req, uint64_t *out);
/* The peer address as "ip:port". */
const char *cm_http_req_peer(const struct cm_http_req *req);
/* Per-request state for streaming routes: ctx is kept until the request ends, then free_fn (may be
 * NULL) is called on it, on a worker thread. Replaces (and frees) an earlier ctx. */
void cm_http_req_set_ctx(struct cm_http_req *req, void *ctx, void (*free_fn)(void *));
void *cm_http_req_ctx(const struct cm_http_req *req);

/* Answers. Each replaces an answer set earlier in the same handler. Errors: CM_E_NOMEM, CM_E_INVAL
 * (status outside 100..599, or the handler deferred). */
/* Answers body (taken: freed by the server in every case) as JSON. NULL body gives "{}". */
int cm_http_answer_json(struct cm_http_req *req, int status, cJSON *body);
/* Answers len bytes of buf (copied) with the given Content-Type (NULL: application/octet-stream).
 */
int cm_http_answer_bytes(struct cm_http_req *req, int status, const char *content_type,
                         const void *buf, size_t len);
/* Answers a body produced by read(ctx, ...) on a worker thread as the client takes it; length
 * bytes, or chunked when length < 0. free_ctx (may be NULL) is called on ctx once the answer is
 * done or abandoned, also when this function fails. */
int cm_http_answer_stream(struct cm_http_req *req, int status, const char *content_type,
                          int64_t length, cm_http_reader_fn read, void *ctx,
                          void (*free_ctx)(void *));
/* Answers err (a negative cm code; anything else gives INTERNAL) with its HTTP status and the
 * error body. message: NULL for the table's message. extra: an object whose fields are added to
 * the "error" object (e.g. "leader_hint"); taken, may be NULL. */
int cm_http_answer_error(struct cm_http_req *req, int err, const char *message, cJSON *extra);
/* Adds a header (copied) to the answer set before. Errors: CM_E_INVAL (no answer yet). */
int cm_http_answer_header(struct cm_http_req *req, const char *name, const char *value);

/* Promises the answer for later: the handler returns 0 and any thread completes *out exactly once
 * with cm_http_deferred_json or cm_http_deferred_error. Until then the connection is suspended
 * and holds no thread. Completing is always safe: if the client went away, the handler returned
 * an error after deferring (that error is answered), or the server stopped, the answer is
 * dropped. Only from the final handler. Errors: CM_E_NOMEM, CM_E_INVAL (already deferred, or
 * called from on_start or on_body). */
int cm_http_defer(struct cm_http_req *req, struct cm_http_deferred **out);
/* Complete and release d (never use it again). body is taken as in cm_http_answer_json. */
void cm_http_deferred_json(struct cm_http_deferred *d, int status, cJSON *body);
/* Complete and release d with an error as in cm_http_answer_error. */
void cm_http_deferred_error(struct cm_http_deferred *d, int err, const char *message, cJSON *extra);

/* Parses a Range header for a body of size bytes: "bytes=a-b", "bytes=a-" or "bytes=-n" (one
 * range only). Sets *off and *len. Errors: CM_E_NOENT (hdr NULL: whole body), CM_E_RANGE
 * (unsatisfiable), CM_E_INVAL (malformed or several ranges). */
int cm_http_parse_range(const char *hdr, uint64_t size, uint64_t *off, uint64_t *len);

#endif
