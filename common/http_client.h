/* The HTTP client of every dfs process, on libcurl: keep-alive connections per peer, the cluster
 * secret header, dfs error bodies decoded to cm error codes, streamed bodies, and an
 * asynchronous engine for many peers at once. Knows no dfs endpoint; never retries by itself. */
#ifndef DFS_COMMON_HTTP_CLIENT_H
#define DFS_COMMON_HTTP_CLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"

#define CM_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define CM_HTTP_DEFAULT_TIMEOUT_MS         10000
#define CM_HTTP_DEFAULT_MAX_ANSWER         (16 * 1024 * 1024)
#define CM_HTTP_DEFAULT_MAX_IDLE           32
/* A body longer than this (streamed, chunked or in memory) is sent with "Expect: 100-continue",
 * so that a server refusing it answers before the body; servers read and drop refused bodies up
 * to this size (common/http_server.c) and answer after them. */
#define CM_HTTP_EXPECT_ABOVE (1024 * 1024)

struct cm_http_client_config {
    long connect_timeout_ms;        /* 0 = default */
    long timeout_ms;                /* whole request, per call unless the call says; 0 = default */
    size_t max_answer;              /* largest answer body taken into memory; 0 = default */
    const struct cm_secret *secret; /* copied; NULL or len 0 = no secret header */
    unsigned max_idle;              /* idle connections (and handles) kept; 0 = default */
};

/* Streamed request body: writes up to cap bytes into buf, sets *n_out (0 = end of body) and
 * returns 0, or returns a negative cm code to abort the request with that code. */
typedef int (*cm_http_upload_fn)(void *ctx, char *buf, size_t cap, size_t *n_out);
/* Puts a streamed request body back at its start (curl sends a request again on a new
 * connection when a kept-alive one turns out closed): returns 0, or a negative cm code when the
 * bytes already taken cannot be had again (the request then fails). */
typedef int (*cm_http_rewind_fn)(void *ctx);
/* Streamed 2xx answer body: takes len > 0 bytes (valid during the call) and returns 0, or a
 * negative cm code to abort the request with that code. */
typedef int (*cm_http_download_fn)(void *ctx, const char *buf, size_t len);

enum cm_http_call_flag {
    CM_HTTP_CALL_RAW = 1 << 0, /* keep a 2xx answer body as bytes (body), do not parse it */
};

/* One request. Only url is required. The body is one of: json, (body, body_len) or upload. */
struct cm_http_call {
    const char *method;              /* NULL: "POST" when there is a body, else "GET" */
    const char *url;                 /* "http://host:port/path?query" */
    const cJSON *json;               /* sent as application/json */
    const void *body;                /* raw bytes, sent with content_type */
    size_t body_len;                 /* */
    const char *content_type;        /* for body and upload; NULL: application/octet-stream */
    cm_http_upload_fn upload;        /* streamed body (synchronous calls only) */
    void *upload_ctx;                /* */
    int64_t upload_len;              /* the streamed body's length, or -1: chunked */
    cm_http_rewind_fn upload_rewind; /* NULL: the streamed body cannot be sent again */
    cm_http_download_fn download;    /* streamed 2xx answer (synchronous calls only); an error
                                      * answer is not given to it but decoded as usual */
    void *download_ctx;              /* */
    const char *range;               /* "first-last" or "first-" sent as Range: bytes=...; NULL */
    unsigned flags;                  /* enum cm_http_call_flag */
    long timeout_ms;                 /* 0: the client's */
    /* Extra request headers: "Name: value" strings, NULL-terminated array (NULL: none). A line
     * without a colon or with CR/LF makes the call CM_E_INVAL. Copied by async submits. */
    const char *const *headers;
};

/* What came back. Filled whenever an answer arrived (status != 0), also for error answers. */
struct cm_http_response {
    int status;         /* HTTP status; 0: no answer */
    cJSON *json;        /* the parsed body (owned) or NULL: empty, raw, streamed or not JSON */
    const cJSON *error; /* for a dfs error answer, its "error" object (borrowed from json): extra
                         * fields such as "leader_hint" are read from here; else NULL */
    char *body;         /* CM_HTTP_CALL_RAW: the 2xx body (owned, NUL-terminated); else NULL */
    size_t body_len;
};

/* Frees what r holds and zeroes it; a zeroed response is a no-op. */
void cm_http_response_clear(struct cm_http_response *r);

/* Result codes of the calls below (also given to async completions):
 *   0                a 2xx answer (JSON parsed unless raw or streamed)
 *   the answer's code a dfs error answer {"error":{"code":...}} (e.g. CM_E_NOT_LEADER)
 *   CM_E_CONNECT     connection refused, reset or closed before a full answer
 *   CM_E_RESOLVE     host name not resolved
 *   CM_E_TIMEOUT     connect or whole-request timeout
 *   CM_E_PROTO       not HTTP, a non-dfs error answer, or a non-JSON body where JSON is expected
 *   CM_E_TOO_LARGE   the answer body is longer than max_answer
 *   CM_E_INVAL       bad call (no url or not "http://", two bodies, ...)
 *   a callback's code when upload or download aborted */

/* A thread-safe client: any number of threads may call at once; connections are shared and kept
 * alive per peer. */
struct cm_http_client;

/* Errors: CM_E_INVAL, CM_E_NOMEM. Free with cm_http_client_free. */
int cm_http_client_new(const struct cm_http_client_config *cfg, struct cm_http_client **out);
/* No call may be running. NULL is a no-op. */
void cm_http_client_free(struct cm_http_client *c);

/* Performs call and blocks until done. out (may be NULL) is always reset first and must be
 * cleared with cm_http_response_clear. */
int cm_http_call(struct cm_http_client *c, const struct cm_http_call *call,
                 struct cm_http_response *out);
/* POST body (NULL: "{}") as JSON to url. */
int cm_http_post_json(struct cm_http_client *c, const char *url, const cJSON *body,
                      struct cm_http_response *out);
int cm_http_get_json(struct cm_http_client *c, const char *url, struct cm_http_response *out);

/* Connections the client opened so far (keep-alive shows as few connections). */
uint64_t cm_http_client_connections(struct cm_http_client *c);

/* The asynchronous engine: one thread drives all requests with curl's multi interface, so a slow
 * or dead peer never delays answers from the others. Requests to a peer reuse its keep-alive
 * connections; parallel requests to one peer open more. */
struct cm_http_async;

/* Called on the engine thread when a request ends, exactly once per accepted submit: err as for
 * cm_http_call; resp holds the answer (it may steal resp->json by setting it NULL) and is cleared
 * after the call. Must not block; may submit. */
typedef void (*cm_http_done_fn)(void *ctx, int err, struct cm_http_response *resp);

/* Starts the engine thread. Errors: CM_E_INVAL, CM_E_NOMEM, CM_E_IO (thread). */
int cm_http_async_new(const struct cm_http_client_config *cfg, struct cm_http_async **out);
/* Stops the engine: requests still running or queued complete with CM_E_CANCELED (on the engine
 * thread, before this returns). No submit may run concurrently, except from callbacks (they get
 * CM_E_CANCELED). NULL is a no-op. */
void cm_http_async_free(struct cm_http_async *a);
/* Queues call (its url and body are copied; upload and download are not supported) from any
 * thread. done is called later, never from within this function. Errors (done is then never
 * called): CM_E_INVAL, CM_E_NOTSUP, CM_E_NOMEM, CM_E_CANCELED (engine stopping). */
int cm_http_async_submit(struct cm_http_async *a, const struct cm_http_call *call,
                         cm_http_done_fn done, void *ctx);

#endif
