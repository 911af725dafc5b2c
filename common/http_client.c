/* HTTP client on libcurl: a pool of easy handles sharing one connection cache (synchronous calls)
 * and a multi handle driven by one thread (asynchronous calls); both decode answers the same way.
 */
#include "common/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

#define JSON_TYPE       "application/json"
#define OCTET_TYPE      "application/octet-stream"
#define KEEP_BUF_MAX    (256 * 1024) /* larger answer buffers are not kept in the pool */
#define POLL_MS         1000
#define HDR_LINE_MAX    (CM_AUTH_MAX_SECRET + 64)
#define CURL_BUFFERSIZE (128 * 1024)

/* curl_global_init must run once per process before any other thread uses curl. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT; /* written once, under global_once */

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int ensure_global(void)
{
    pthread_once(&global_once, global_init);
    return global_rc == CURLE_OK ? 0 : CM_E_INTERNAL;
}

/* ---- settings shared by the client and the engine ---- */

enum hdr_kind { HDR_NONE, HDR_JSON, HDR_OCTET, HDR_CUSTOM };

struct conf {
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_answer;
    unsigned max_idle;
    char secret_line[HDR_LINE_MAX]; /* "X-Dfs-Secret: ..." or "" */
    struct curl_slist *hdrs[3];     /* HDR_NONE, HDR_JSON, HDR_OCTET; may be NULL */
};

static void conf_close(struct conf *cf)
{
    for (int i = 0; i < 3; i++)
        curl_slist_free_all(cf->hdrs[i]);
    memset(cf->hdrs, 0, sizeof(cf->hdrs));
}

/* A header list: the Expect line, the secret line (if any), a Content-Type (if any) and the
 * extra header lines (if any: "Name: value" lines separated by '\n'). Without expect, "Expect:"
 * (none: libcurl would send "Expect: 100-continue" with every PUT upload and wait a round trip
 * for the answer before the body, at every hop of a chunkserver pipeline); with it, "Expect:
 * 100-continue", for uploads a server that refuses them would not read (CM_HTTP_EXPECT_ABOVE). */
static int make_hdrs(const struct conf *cf, const char *ctype, const char *extra, bool expect,
                     struct curl_slist **out)
{
    struct curl_slist *l = curl_slist_append(NULL, expect ? "Expect: 100-continue" : "Expect:");
    struct curl_slist *n;
    char line[HDR_LINE_MAX];

    if (l == NULL)
        return CM_E_NOMEM;
    if (cf->secret_line[0] != '\0') {
        n = curl_slist_append(l, cf->secret_line);
        if (n == NULL) {
            curl_slist_free_all(l);
            return CM_E_NOMEM;
        }
        l = n;
    }
    if (ctype != NULL) {
        if (snprintf(line, sizeof(line), "Content-Type: %s", ctype) >= (int)sizeof(line)) {
            curl_slist_free_all(l);
            return CM_E_INVAL;
        }
        n = curl_slist_append(l, line);
        if (n == NULL) {
            curl_slist_free_all(l);
            return CM_E_NOMEM;
        }
        l = n;
    }
    for (const char *p = extra; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= sizeof(line)) {
            curl_slist_free_all(l);
            return CM_E_INVAL;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        n = curl_slist_append(l, line);
        if (n == NULL) {
            curl_slist_free_all(l);
            return CM_E_NOMEM;
        }
        l = n;
        p = end ? end + 1 : p + len;
    }
    *out = l;
    return 0;
}

static int conf_init(struct conf *cf, const struct cm_http_client_config *cfg)
{
    static const char *types[3] = {NULL, JSON_TYPE, OCTET_TYPE};
    int rc;

    memset(cf, 0, sizeof(*cf));
    if (cfg == NULL || cfg->connect_timeout_ms < 0 || cfg->timeout_ms < 0)
        return CM_E_INVAL;
    cf->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : CM_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    cf->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : CM_HTTP_DEFAULT_TIMEOUT_MS;
    cf->max_answer = cfg->max_answer ? cfg->max_answer : CM_HTTP_DEFAULT_MAX_ANSWER;
    cf->max_idle = cfg->max_idle ? cfg->max_idle : CM_HTTP_DEFAULT_MAX_IDLE;
    if (cfg->secret != NULL && cfg->secret->len > 0) {
        if (cfg->secret->len > CM_AUTH_MAX_SECRET)
            return CM_E_INVAL;
        snprintf(cf->secret_line, sizeof(cf->secret_line), "%s: %.*s", CM_AUTH_HEADER,
                 (int)cfg->secret->len, cfg->secret->value);
    }
    for (int i = 0; i < 3; i++) {
        rc = make_hdrs(cf, types[i], NULL, false, &cf->hdrs[i]);
        if (rc < 0) {
            conf_close(cf);
            return rc;
        }
    }
    return 0;
}

/* ---- one transfer ---- */

/* An easy handle with its reusable answer buffer. */
struct handle {
    CURL *easy;
    struct handle *next;
    char *buf;
    size_t cap;
};

/* A call with its body in final form (JSON printed). Strings are borrowed. */
struct spec {
    const char *method;
    const char *url;
    const char *body; /* NULL: no body (unless upload) */
    size_t body_len;
    enum hdr_kind hdr;
    const char *ctype; /* HDR_CUSTOM */
    const char *extra; /* HDR_CUSTOM: extra header lines joined by '\n', or NULL */
    cm_http_upload_fn upload;
    void *upload_ctx;
    int64_t upload_len;
    cm_http_rewind_fn rewind;
    cm_http_download_fn download;
    void *download_ctx;
    const char *range;
    unsigned flags;
    long timeout_ms;
};

struct xfer {
    struct handle *h;
    const struct conf *cf;
    struct curl_slist *own_hdrs;
    cm_http_upload_fn upload;
    void *upload_ctx;
    cm_http_rewind_fn rewind;
    cm_http_download_fn download;
    void *download_ctx;
    unsigned flags;
    size_t len; /* answer bytes in h->buf */
    long status;
    int cb_err;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    struct handle *h = x->h;
    size_t n = size * nmemb;

    if (n == 0)
        return 0;
    if (x->download != NULL) {
        if (x->status == 0)
            curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status >= 200 && x->status < 300) {
            int rc = x->download(x->download_ctx, p, n);
            if (rc < 0) {
                x->cb_err = rc;
                return 0;
            }
            return n;
        }
    }
    if (n > x->cf->max_answer - x->len) {
        x->cb_err = CM_E_TOO_LARGE;
        return 0;
    }
    if (x->len + n + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        while (cap < x->len + n + 1)
            cap *= 2;
        char *nb = realloc(h->buf, cap);
        if (nb == NULL) {
            x->cb_err = CM_E_NOMEM;
            return 0;
        }
        h->buf = nb;
        h->cap = cap;
    }
    memcpy(h->buf + x->len, p, n);
    x->len += n;
    h->buf[x->len] = '\0';
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t cap = size * nmemb, got = 0;
    int rc = x->upload(x->upload_ctx, buf, cap, &got);

    if (rc < 0) {
        x->cb_err = rc;
        return CURL_READFUNC_ABORT;
    }
    return got > cap ? cap : got;
}

/* curl rewinds a body to send a request again on a new connection (a kept-alive one found
 * closed): a streamed body only when its caller can. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct xfer *x = ud;

    if (offset != 0 || origin != SEEK_SET || x->rewind == NULL || x->rewind(x->upload_ctx) < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    return CURL_SEEKFUNC_OK;
}

static int new_handle(struct handle **out)
{
    struct handle *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return CM_E_NOMEM;
    h->easy = curl_easy_init();
    if (h->easy == NULL) {
        free(h);
        return CM_E_NOMEM;
    }
    curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h->easy, CURLOPT_PROTOCOLS_STR, "http");
    /* Straight to the peer: an http_proxy in the environment of whoever started a daemon or a
     * mount must not reroute cluster traffic (nor be looked up on every request). */
    curl_easy_setopt(h->easy, CURLOPT_PROXY, "");
    curl_easy_setopt(h->easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h->easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h->easy, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h->easy, CURLOPT_BUFFERSIZE, (long)CURL_BUFFERSIZE);
    *out = h;
    return 0;
}

static void free_handle(struct handle *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->easy);
    free(h->buf);
    free(h);
}

/* Readies h->easy for s; x must stay in place until xfer_finish. */
static int xfer_setup(struct xfer *x, struct handle *h, const struct conf *cf, const struct spec *s)
{
    CURL *e = h->easy;
    struct curl_slist *hdrs;
    bool expect;
    int rc;

    memset(x, 0, sizeof(*x));
    x->h = h;
    x->cf = cf;
    x->upload = s->upload;
    x->upload_ctx = s->upload_ctx;
    x->rewind = s->rewind;
    x->download = s->download;
    x->download_ctx = s->download_ctx;
    x->flags = s->flags;
    /* A large or chunked body first asks for "100 Continue": a server refusing it at the start
     * answers at once without reading it, and the connection it then closes with the body
     * unread would be reset under a client still sending, losing the answer (a full disk would
     * look like a network error). Small bodies go at once; such a server reads and drops them. */
    expect = s->upload != NULL ? s->upload_len < 0 || s->upload_len > CM_HTTP_EXPECT_ABOVE
                               : s->body != NULL && s->body_len > CM_HTTP_EXPECT_ABOVE;
    if (s->hdr == HDR_CUSTOM || expect) {
        const char *ctype = s->hdr == HDR_CUSTOM  ? s->ctype
                            : s->hdr == HDR_JSON  ? JSON_TYPE
                            : s->hdr == HDR_OCTET ? OCTET_TYPE
                                                  : NULL;
        rc = make_hdrs(cf, ctype, s->extra, expect, &x->own_hdrs);
        if (rc < 0)
            return rc;
        hdrs = x->own_hdrs;
    } else {
        hdrs = cf->hdrs[s->hdr];
    }
    /* Every option a call may change is set on every call (no curl_easy_reset: it would drop
     * the handle's buffers). HTTPGET first returns the method to a plain GET. */
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_RANGE, s->range);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, cf->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms > 0 ? s->timeout_ms : cf->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_READDATA, x);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(s->download ? 0 : cf->max_answer));
    if (s->upload != NULL) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->upload_len);
        if (strcmp(s->method, "PUT") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
    } else if (s->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
        if (strcmp(s->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
    } else if (strcmp(s->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(s->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
    }
    return 0;
}

static int map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CM_E_RESOLVE;
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return CM_E_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return CM_E_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return CM_E_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        return CM_E_NOMEM;
    case CURLE_URL_MALFORMAT:
        return CM_E_INVAL;
    default:
        return CM_E_PROTO;
    }
}

/* Decodes the outcome of the transfer into out (already zeroed) and the result code. */
static int xfer_finish(struct xfer *x, CURLcode crc, struct cm_http_response *out)
{
    struct handle *h = x->h;
    const cJSON *e, *code;
    long status = 0;
    int err;

    curl_slist_free_all(x->own_hdrs);
    x->own_hdrs = NULL;
    if (x->cb_err < 0)
        return x->cb_err;
    if (crc != CURLE_OK)
        return map_curl(crc);
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    out->status = (int)status;
    if (status >= 200 && status < 300) {
        if (x->download != NULL || x->len == 0)
            return 0;
        if (x->flags & CM_HTTP_CALL_RAW) {
            /* Hand the buffer over instead of copying it. */
            out->body = h->buf;
            out->body_len = x->len;
            h->buf = NULL;
            h->cap = 0;
            return 0;
        }
        return cm_json_parse(h->buf, x->len, &out->json) < 0 ? CM_E_PROTO : 0;
    }
    if (x->len == 0 || cm_json_parse_object(h->buf, x->len, &out->json) < 0)
        return CM_E_PROTO;
    e = cJSON_GetObjectItemCaseSensitive(out->json, "error");
    code = cJSON_GetObjectItemCaseSensitive(e, "code");
    if (!cJSON_IsObject(e) || !cJSON_IsString(code))
        return CM_E_PROTO;
    err = cm_err_from_name(code->valuestring);
    if (err == 0)
        return CM_E_PROTO;
    out->error = e;
    return err;
}

/* Joins call->headers into one string of lines; checks each is "Name: value" without CR/LF. */
static int join_headers(const char *const *headers, char **out)
{
    size_t need = 1;
    *out = NULL;
    if (headers == NULL || headers[0] == NULL)
        return 0;
    for (size_t i = 0; headers[i] != NULL; i++) {
        const char *h = headers[i], *colon = strchr(h, ':');
        if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL)
            return CM_E_INVAL;
        need += strlen(h) + 1;
    }
    char *b = malloc(need), *p = b;
    if (b == NULL)
        return CM_E_NOMEM;
    for (size_t i = 0; headers[i] != NULL; i++)
        p += sprintf(p, "%s%s", i ? "\n" : "", headers[i]);
    *out = b;
    return 0;
}

/* Fills s from call; *json_text (free with free) holds a printed JSON body, *extra_text (free
 * with free) the joined extra headers. */
static int spec_from_call(const struct cm_http_call *call, struct spec *s, char **json_text,
                          char **extra_text)
{
    int nbodies;
    size_t len;
    int rc;

    *json_text = NULL;
    *extra_text = NULL;
    memset(s, 0, sizeof(*s));
    /* Only plain http: curl would also say "unsupported protocol" for an HTTP/0.9 answer, so
     * a bad scheme is caught here to keep the two apart. */
    if (call == NULL || call->url == NULL || strncasecmp(call->url, "http://", 7) != 0)
        return CM_E_INVAL;
    nbodies =
        (call->json != NULL) + (call->body != NULL || call->body_len > 0) + (call->upload != NULL);
    if (nbodies > 1 || (call->body == NULL && call->body_len > 0))
        return CM_E_INVAL;
    s->url = call->url;
    s->method = call->method ? call->method : nbodies ? "POST" : "GET";
    s->hdr = HDR_NONE;
    if (call->json != NULL) {
        rc = cm_json_print(call->json, json_text, &len);
        if (rc < 0)
            return rc;
        s->body = *json_text;
        s->body_len = len;
        s->hdr = HDR_JSON;
    } else if (call->body != NULL || call->upload != NULL) {
        s->body = call->body;
        s->body_len = call->body_len;
        s->hdr = call->content_type == NULL                   ? HDR_OCTET
                 : strcmp(call->content_type, JSON_TYPE) == 0 ? HDR_JSON
                                                              : HDR_CUSTOM;
        s->ctype = call->content_type;
    } else if (strcmp(s->method, "POST") == 0 || strcmp(s->method, "PUT") == 0) {
        s->body = ""; /* an empty body, sent with Content-Length: 0 */
    }
    s->upload = call->upload;
    s->upload_ctx = call->upload_ctx;
    s->upload_len = call->upload_len;
    s->rewind = call->upload_rewind;
    s->download = call->download;
    s->download_ctx = call->download_ctx;
    s->range = call->range;
    s->flags = call->flags;
    s->timeout_ms = call->timeout_ms;
    if (s->upload == NULL && s->upload_len != 0 && s->upload_len != -1)
        return CM_E_INVAL;
    rc = join_headers(call->headers, extra_text);
    if (rc < 0)
        return rc;
    if (*extra_text != NULL) {
        s->extra = *extra_text;
        if (s->hdr != HDR_CUSTOM) {
            /* Keep the content type the shared list would have carried. */
            s->ctype = s->hdr == HDR_JSON ? JSON_TYPE : s->hdr == HDR_OCTET ? OCTET_TYPE : NULL;
            s->hdr = HDR_CUSTOM;
        }
    }
    return 0;
}

void cm_http_response_clear(struct cm_http_response *r)
{
    if (r == NULL)
        return;
    cJSON_Delete(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* ---- synchronous client ---- */

struct cm_http_client {
    struct conf cf;
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    pthread_mutex_t mu; /* the idle handles */
    struct handle *idle;
    unsigned nidle;
    atomic_uint_fast64_t connects;
};

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct cm_http_client *c = ud;

    (void)e;
    (void)access;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *ud)
{
    struct cm_http_client *c = ud;

    (void)e;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&c->share_mu[data]);
}

int cm_http_client_new(const struct cm_http_client_config *cfg, struct cm_http_client **out)
{
    struct cm_http_client *c;
    int rc, nmu = 0;

    rc = ensure_global();
    if (rc < 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CM_E_NOMEM;
    rc = conf_init(&c->cf, cfg);
    if (rc < 0)
        goto fail_free;
    rc = CM_E_NOMEM;
    for (; nmu < CURL_LOCK_DATA_LAST; nmu++)
        if (pthread_mutex_init(&c->share_mu[nmu], NULL) != 0)
            goto fail_mutex;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        goto fail_mutex;
    c->share = curl_share_init();
    if (c->share == NULL)
        goto fail_share;
    if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)
        goto fail_setopt;
    atomic_init(&c->connects, 0);
    *out = c;
    return 0;

fail_setopt:
    curl_share_cleanup(c->share);
fail_share:
    pthread_mutex_destroy(&c->mu);
fail_mutex:
    while (nmu-- > 0)
        pthread_mutex_destroy(&c->share_mu[nmu]);
    conf_close(&c->cf);
fail_free:
    free(c);
    return rc;
}

void cm_http_client_free(struct cm_http_client *c)
{
    struct handle *h;

    if (c == NULL)
        return;
    while ((h = c->idle) != NULL) {
        c->idle = h->next;
        free_handle(h);
    }
    curl_share_cleanup(c->share);
    pthread_mutex_destroy(&c->mu);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_mu[i]);
    conf_close(&c->cf);
    free(c);
}

static int client_get(struct cm_http_client *c, struct handle **out)
{
    struct handle *h;
    int rc;

    pthread_mutex_lock(&c->mu);
    h = c->idle;
    if (h != NULL) {
        c->idle = h->next;
        c->nidle--;
    }
    pthread_mutex_unlock(&c->mu);
    if (h == NULL) {
        rc = new_handle(&h);
        if (rc < 0)
            return rc;
        curl_easy_setopt(h->easy, CURLOPT_SHARE, c->share);
        curl_easy_setopt(h->easy, CURLOPT_MAXCONNECTS, (long)c->cf.max_idle);
    }
    *out = h;
    return 0;
}

static void client_put(struct cm_http_client *c, struct handle *h)
{
    if (h->cap > KEEP_BUF_MAX) {
        free(h->buf);
        h->buf = NULL;
        h->cap = 0;
    }
    pthread_mutex_lock(&c->mu);
    if (c->nidle < c->cf.max_idle) {
        h->next = c->idle;
        c->idle = h;
        c->nidle++;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free_handle(h);
}

int cm_http_call(struct cm_http_client *c, const struct cm_http_call *call,
                 struct cm_http_response *out)
{
    struct cm_http_response local = {0};
    struct handle *h = NULL;
    struct xfer x;
    struct spec s;
    char *json_text = NULL, *extra_text = NULL;
    long nconn = 0;
    CURLcode crc;
    int rc;

    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof(*out));
    rc = spec_from_call(call, &s, &json_text, &extra_text);
    if (rc < 0)
        goto done;
    rc = client_get(c, &h);
    if (rc < 0)
        goto done;
    rc = xfer_setup(&x, h, &c->cf, &s);
    if (rc < 0)
        goto done;
    crc = curl_easy_perform(h->easy);
    if (curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
        atomic_fetch_add_explicit(&c->connects, (uint64_t)nconn, memory_order_relaxed);
    rc = xfer_finish(&x, crc, out);
    /* The pointers given to curl die with this call. */
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);

done:
    if (h != NULL)
        client_put(c, h);
    free(json_text);
    free(extra_text);
    cm_http_response_clear(&local);
    return rc;
}

int cm_http_post_json(struct cm_http_client *c, const char *url, const cJSON *body,
                      struct cm_http_response *out)
{
    static const char empty[] = "{}";
    struct cm_http_call call = {.method = "POST", .url = url, .json = body};

    if (body == NULL) {
        call.body = empty;
        call.body_len = 2;
        call.content_type = JSON_TYPE;
    }
    return cm_http_call(c, &call, out);
}

int cm_http_get_json(struct cm_http_client *c, const char *url, struct cm_http_response *out)
{
    struct cm_http_call call = {.method = "GET", .url = url};

    return cm_http_call(c, &call, out);
}

uint64_t cm_http_client_connections(struct cm_http_client *c)
{
    return atomic_load(&c->connects);
}

/* ---- asynchronous engine ---- */

struct areq {
    struct areq *next, *prev; /* in the queue, then among the running */
    struct handle *h;
    struct xfer x;
    struct spec s;
    cm_http_done_fn done;
    void *ctx;
    char mem[]; /* url, method, body, content type, range */
};

struct cm_http_async {
    struct conf cf;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu; /* queue and stop */
    struct areq *qhead, *qtail;
    bool stop;
    /* engine thread only: */
    struct areq *running;
    struct handle *idle;
    unsigned nidle;
};

static char *stash(char **p, const char *s, size_t len)
{
    char *d = *p;

    if (s == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    *p += len + 1;
    return d;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

int cm_http_async_submit(struct cm_http_async *a, const struct cm_http_call *call,
                         cm_http_done_fn done, void *ctx)
{
    struct areq *r = NULL;
    struct spec s;
    char *json_text = NULL, *extra_text = NULL, *p;
    size_t need;
    int rc;

    if (done == NULL)
        return CM_E_INVAL;
    if (call != NULL && (call->upload != NULL || call->download != NULL))
        return CM_E_NOTSUP;
    rc = spec_from_call(call, &s, &json_text, &extra_text);
    if (rc < 0)
        goto done;
    rc = CM_E_NOMEM;
    need = slen(s.url) + slen(s.method) + slen(s.ctype) + slen(s.range) + slen(s.extra) +
           s.body_len + 6;
    r = calloc(1, sizeof(*r) + need);
    if (r == NULL)
        goto done;
    p = r->mem;
    r->s = s;
    r->s.url = stash(&p, s.url, slen(s.url));
    r->s.method = stash(&p, s.method, slen(s.method));
    r->s.ctype = stash(&p, s.ctype, slen(s.ctype));
    r->s.range = stash(&p, s.range, slen(s.range));
    r->s.extra = s.extra ? stash(&p, s.extra, slen(s.extra)) : NULL;
    r->s.body = stash(&p, s.body, s.body_len);
    r->done = done;
    r->ctx = ctx;
    pthread_mutex_lock(&a->mu);
    if (a->stop) {
        pthread_mutex_unlock(&a->mu);
        rc = CM_E_CANCELED;
        goto done;
    }
    /* Only the first request into an empty queue wakes the engine: it takes the whole queue
     * after every wake-up, so the requests behind the first ride on its wake-up (a Raft leader
     * sends one append per follower at once: one write and one read of curl's wake-up socket
     * instead of two). */
    bool wake = a->qhead == NULL;
    if (a->qtail != NULL)
        a->qtail->next = r;
    else
        a->qhead = r;
    a->qtail = r;
    pthread_mutex_unlock(&a->mu);
    r = NULL;
    if (wake)
        curl_multi_wakeup(a->multi);
    rc = 0;

done:
    free(r);
    free(json_text);
    free(extra_text);
    return rc;
}

/* Calls r's completion and recycles its handle. forced: an error that overrides the outcome of
 * the transfer (it never ran, or was canceled), else 0 and crc is the transfer's result. */
static void areq_complete(struct cm_http_async *a, struct areq *r, CURLcode crc, int forced)
{
    struct cm_http_response resp = {0};
    struct handle *h = r->h;
    int err = forced;

    if (h != NULL) {
        int rc = xfer_finish(&r->x, crc, &resp);
        if (forced == 0)
            err = rc;
        else
            cm_http_response_clear(&resp);
    }
    r->done(r->ctx, err, &resp);
    cm_http_response_clear(&resp);
    if (h != NULL) {
        curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
        if (h->cap > KEEP_BUF_MAX) {
            free(h->buf);
            h->buf = NULL;
            h->cap = 0;
        }
        if (a->nidle < a->cf.max_idle) {
            h->next = a->idle;
            a->idle = h;
            a->nidle++;
        } else {
            free_handle(h);
        }
    }
    free(r);
}

static void running_unlink(struct cm_http_async *a, struct areq *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        a->running = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void areq_start(struct cm_http_async *a, struct areq *r)
{
    struct handle *h = a->idle;
    int rc;

    r->next = NULL;
    if (h != NULL) {
        a->idle = h->next;
        a->nidle--;
    } else {
        rc = new_handle(&h);
        if (rc < 0) {
            areq_complete(a, r, CURLE_OK, rc);
            return;
        }
    }
    rc = xfer_setup(&r->x, h, &a->cf, &r->s);
    r->h = h;
    curl_easy_setopt(h->easy, CURLOPT_PRIVATE, r);
    if (rc == 0 && curl_multi_add_handle(a->multi, h->easy) != CURLM_OK)
        rc = CM_E_NOMEM;
    if (rc < 0) {
        areq_complete(a, r, CURLE_OK, rc);
        return;
    }
    r->next = a->running;
    if (a->running != NULL)
        a->running->prev = r;
    a->running = r;
}

/* Completes the transfers curl reports as done. */
static void reap(struct cm_http_async *a)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(a->multi, &left)) != NULL) {
        CURL *e = m->easy_handle;
        CURLcode crc = m->data.result;
        char *priv = NULL;
        struct areq *r;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        r = (struct areq *)(void *)priv;
        curl_multi_remove_handle(a->multi, e); /* m is invalid from here */
        running_unlink(a, r);
        areq_complete(a, r, crc, 0);
    }
}

static void *engine(void *arg)
{
    struct cm_http_async *a = arg;
    struct areq *q, *next, *r;
    bool stop = false;
    int running;

    pthread_setname_np(pthread_self(), "http-async");

    while (!stop) {
        pthread_mutex_lock(&a->mu);
        q = a->qhead;
        a->qhead = a->qtail = NULL;
        stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        for (; q != NULL; q = next) {
            next = q->next;
            if (stop)
                areq_complete(a, q, CURLE_OK, CM_E_CANCELED);
            else
                areq_start(a, q);
        }
        if (stop)
            break;
        curl_multi_perform(a->multi, &running);
        reap(a);
        curl_multi_poll(a->multi, NULL, 0, POLL_MS, NULL);
    }
    while ((r = a->running) != NULL) {
        running_unlink(a, r);
        curl_multi_remove_handle(a->multi, r->h->easy);
        areq_complete(a, r, CURLE_OK, CM_E_CANCELED);
    }
    return NULL;
}

int cm_http_async_new(const struct cm_http_client_config *cfg, struct cm_http_async **out)
{
    struct cm_http_async *a;
    int rc;

    rc = ensure_global();
    if (rc < 0)
        return rc;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return CM_E_NOMEM;
    rc = conf_init(&a->cf, cfg);
    if (rc < 0)
        goto fail_free;
    rc = CM_E_NOMEM;
    if (pthread_mutex_init(&a->mu, NULL) != 0)
        goto fail_conf;
    a->multi = curl_multi_init();
    if (a->multi == NULL)
        goto fail_mutex;
    curl_multi_setopt(a->multi, CURLMOPT_MAXCONNECTS, (long)a->cf.max_idle);
    rc = CM_E_IO;
    if (pthread_create(&a->thread, NULL, engine, a) != 0)
        goto fail_multi;
    *out = a;
    return 0;

fail_multi:
    curl_multi_cleanup(a->multi);
fail_mutex:
    pthread_mutex_destroy(&a->mu);
fail_conf:
    conf_close(&a->cf);
fail_free:
    free(a);
    return rc;
}

void cm_http_async_free(struct cm_http_async *a)
{
    struct handle *h;

    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_mutex_unlock(&a->mu);
    curl_multi_wakeup(a->multi);
    pthread_join(a->thread, NULL);
    while ((h = a->idle) != NULL) {
        a->idle = h->next;
        free_handle(h);
    }
    curl_multi_cleanup(a->multi);
    pthread_mutex_destroy(&a->mu);
    conf_close(&a->cf);
    free(a);
}
