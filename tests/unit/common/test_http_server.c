/* The HTTP server: routing, error answers, body limits, the secret, deferred answers, streamed
 * bodies both ways and keep-alive, against a real server on 127.0.0.1 (port 0). Raw sockets play
 * the misbehaving clients. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"

#define MAX_BODY  (64 * 1024)
#define DATA_SIZE (3 * 1024 * 1024 + 17)
#define WAIT_S    20 /* upper bound for anything awaited; only reached when a test fails */

/* ---- test state shared with handlers ---- */

struct pending {
    struct cm_http_deferred *d;
    int n;
};

struct state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pending q[64];
    size_t nq;
    int freed; /* request contexts freed (requests that ended) */
    uint64_t up_bytes;
    uint64_t up_hash;
    int up_done;
};

static struct state st = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

static void deadline(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += seconds;
}

/* Waits until *counter >= want (under st.mu); false on timeout. */
static bool wait_count(const int *counter, int want)
{
    struct timespec ts;
    bool ok = true;

    deadline(&ts, WAIT_S);
    pthread_mutex_lock(&st.mu);
    while (*counter < want && ok)
        ok = pthread_cond_timedwait(&st.cv, &st.mu, &ts) == 0 || *counter >= want;
    ok = *counter >= want;
    pthread_mutex_unlock(&st.mu);
    return ok;
}

static bool wait_deferred(size_t want)
{
    struct timespec ts;

    deadline(&ts, WAIT_S);
    pthread_mutex_lock(&st.mu);
    while (st.nq < want)
        if (pthread_cond_timedwait(&st.cv, &st.mu, &ts) != 0)
            break;
    bool ok = st.nq >= want;
    pthread_mutex_unlock(&st.mu);
    return ok;
}

static struct pending pop_deferred(void)
{
    struct pending p;

    pthread_mutex_lock(&st.mu);
    cr_assert_gt(st.nq, 0);
    p = st.q[--st.nq];
    pthread_mutex_unlock(&st.mu);
    return p;
}

static void ctx_freed(void *p)
{
    (void)p;
    pthread_mutex_lock(&st.mu);
    st.freed++;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV_INIT 14695981039346656037ULL

static char pattern_byte(uint64_t i)
{
    return (char)((i * 31 + 7) & 0xff);
}

/* ---- handlers ---- */

static int h_hello(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(o, "hello", "world");
    cJSON_AddStringToObject(o, "method", cm_http_req_method(req));
    return cm_http_answer_json(req, 200, o);
}

static int h_block_get(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(o, "id", cm_http_req_param(req, "id"));
    cJSON_AddStringToObject(o, "path", cm_http_req_path(req));
    return cm_http_answer_json(req, 200, o);
}

static int h_two(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(o, "vol", cm_http_req_param(req, "vol"));
    cJSON_AddStringToObject(o, "id", cm_http_req_param(req, "id"));
    cr_assert_null(cm_http_req_param(req, "nope"));
    return cm_http_answer_json(req, 201, o);
}

static int h_rest(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(o, "rest", cm_http_req_param(req, "*"));
    return cm_http_answer_json(req, 200, o);
}

static int h_echo(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cr_assert_not_null(cm_http_req_json(req));
    cJSON_AddItemToObject(o, "echo", cJSON_Duplicate(cm_http_req_json(req), 1));
    return cm_http_answer_json(req, 200, o);
}

static int h_raw(struct cm_http_req *req, void *data)
{
    size_t len;
    const char *b = cm_http_req_body(req, &len);
    uint64_t cl = 0;
    cJSON *o = cJSON_CreateObject();

    (void)data;
    cr_assert_null(cm_http_req_json(req));
    cJSON_AddNumberToObject(o, "len", (double)len);
    cJSON_AddNumberToObject(o, "hash", (double)(fnv(FNV_INIT, b, len) & 0xffffffffu));
    cJSON_AddBoolToObject(o, "has_length", cm_http_req_content_length(req, &cl) == 0);
    return cm_http_answer_json(req, 200, o);
}

static int h_query(struct cm_http_req *req, void *data)
{
    const char *a = cm_http_req_query(req, "a");
    const char *flag = cm_http_req_query(req, "flag");
    const char *x = cm_http_req_header(req, "x-test");
    cJSON *o = cJSON_CreateObject();

    (void)data;
    cJSON_AddStringToObject(o, "a", a ? a : "(null)");
    cJSON_AddStringToObject(o, "flag", flag ? flag : "(null)");
    cJSON_AddStringToObject(o, "missing", cm_http_req_query(req, "zz") ? "yes" : "no");
    cJSON_AddStringToObject(o, "x", x ? x : "(null)");
    cJSON_AddStringToObject(o, "peer", cm_http_req_peer(req));
    return cm_http_answer_json(req, 200, o);
}

static int h_not_leader(struct cm_http_req *req, void *data)
{
    cJSON *extra = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(extra, "leader_hint", "10.0.0.2:7000");
    return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, extra);
}

static int h_fail(struct cm_http_req *req, void *data)
{
    (void)data;
    cm_http_answer_json(req, 200, NULL); /* discarded: the error wins */
    return CM_E_NOSPC;
}

static int h_empty(struct cm_http_req *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static int h_defer(struct cm_http_req *req, void *data)
{
    struct cm_http_deferred *d;
    uint32_t n = 0;
    int rc;

    (void)data;
    rc = cm_json_get_u32(cm_http_req_json(req), "n", &n);
    if (rc < 0)
        return rc;
    cm_http_req_set_ctx(req, NULL, ctx_freed);
    rc = cm_http_defer(req, &d);
    if (rc < 0)
        return rc;
    cr_assert_eq(cm_http_answer_json(req, 200, NULL), CM_E_INVAL);
    pthread_mutex_lock(&st.mu);
    cr_assert_lt(st.nq, 64);
    st.q[st.nq].d = d;
    st.q[st.nq].n = (int)n;
    st.nq++;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    return 0;
}

/* Defers and completes at once from the handler's own thread: the answer is taken before the
 * connection would be suspended. */
static int h_defer_now(struct cm_http_req *req, void *data)
{
    struct cm_http_deferred *d;
    cJSON *o = cJSON_CreateObject();

    (void)data;
    cr_assert_eq(cm_http_defer(req, &d), 0);
    cJSON_AddBoolToObject(o, "now", 1);
    cm_http_deferred_json(d, 202, o);
    return 0;
}

/* Defers, then fails: the error is answered and the later completion dropped. */
static int h_defer_fail(struct cm_http_req *req, void *data)
{
    struct cm_http_deferred *d;

    (void)data;
    cr_assert_eq(cm_http_defer(req, &d), 0);
    pthread_mutex_lock(&st.mu);
    st.q[st.nq].d = d;
    st.q[st.nq].n = -1;
    st.nq++;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    return CM_E_BUSY;
}

struct upload {
    uint64_t bytes;
    uint64_t hash;
    int calls;
};

static void upload_free(void *p)
{
    free(p);
    ctx_freed(NULL);
}

/* The Expect header of the last upload that started (empty: none). */
static char last_expect[64];

static int up_start(struct cm_http_req *req, void *data)
{
    struct upload *u = calloc(1, sizeof(*u));
    const char *expect = cm_http_req_header(req, "Expect");
    (void)data;
    snprintf(last_expect, sizeof(last_expect), "%s", expect != NULL ? expect : "");
    if (cm_http_req_query(req, "reject") != NULL) {
        free(u);
        return CM_E_NOSPC;
    }
    u->hash = FNV_INIT;
    cm_http_req_set_ctx(req, u, upload_free);
    return 0;
}

static int up_body(struct cm_http_req *req, const char *buf, size_t len, void *data)
{
    struct upload *u = cm_http_req_ctx(req);
    (void)data;
    cr_assert_gt(len, 0);
    u->bytes += len;
    u->hash = fnv(u->hash, buf, len);
    u->calls++;
    if (cm_http_req_query(req, "failat") != NULL && u->bytes > 100000)
        return CM_E_CORRUPT;
    return 0;
}

static int up_done(struct cm_http_req *req, void *data)
{
    struct upload *u = cm_http_req_ctx(req);
    cJSON *o = cJSON_CreateObject();
    char hex[32];

    (void)data;
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)u->hash);
    cJSON_AddNumberToObject(o, "bytes", (double)u->bytes);
    cJSON_AddStringToObject(o, "hash", hex);
    cJSON_AddNumberToObject(o, "calls", u->calls);
    return cm_http_answer_json(req, 200, o);
}

struct dl {
    uint64_t off;
    uint64_t len;
};

static int dl_read(void *ctx, uint64_t pos, char *buf, size_t cap, size_t *n)
{
    struct dl *d = ctx;
    uint64_t left = d->len - pos;
    size_t k = left < cap ? (size_t)left : cap;

    for (size_t i = 0; i < k; i++)
        buf[i] = pattern_byte(d->off + pos + i);
    *n = k;
    return 0;
}

static int h_data(struct cm_http_req *req, void *data)
{
    struct dl *d = malloc(sizeof(*d));
    char cr[96];
    int rc;

    (void)data;
    rc = cm_http_parse_range(cm_http_req_header(req, "Range"), DATA_SIZE, &d->off, &d->len);
    if (rc == CM_E_NOENT) {
        d->off = 0;
        d->len = DATA_SIZE;
        return cm_http_answer_stream(req, 200, NULL, DATA_SIZE, dl_read, d, free);
    }
    if (rc < 0) {
        free(d);
        return rc;
    }
    snprintf(cr, sizeof(cr), "bytes %llu-%llu/%d", (unsigned long long)d->off,
             (unsigned long long)(d->off + d->len - 1), DATA_SIZE);
    rc = cm_http_answer_stream(req, 206, NULL, (int64_t)d->len, dl_read, d, free);
    if (rc == 0)
        rc = cm_http_answer_header(req, "Content-Range", cr);
    return rc;
}

/* A body of unknown length (chunked): "n" lines. */
static int lines_read(void *ctx, uint64_t pos, char *buf, size_t cap, size_t *n)
{
    int *left = ctx;
    (void)pos;
    if (*left == 0 || cap < 16) {
        *n = 0;
        return 0;
    }
    (*left)--;
    *n = (size_t)snprintf(buf, cap, "line %04d\n", *left);
    return 0;
}

static int h_lines(struct cm_http_req *req, void *data)
{
    int *left = malloc(sizeof(*left));
    (void)data;
    *left = 100;
    return cm_http_answer_stream(req, 200, "text/plain", -1, lines_read, left, free);
}

static const struct cm_http_route routes[] = {
    {.method = "GET", .pattern = "/hello", .handler = h_hello},
    {.method = "GET", .pattern = "/block/{id}", .handler = h_block_get},
    {.method = "POST", .pattern = "/block/{id}", .flags = CM_HTTP_JSON, .handler = h_echo},
    {.method = "PUT", .pattern = "/vol/{vol}/blk/{id}", .handler = h_two},
    {.method = "GET", .pattern = "/files/*", .handler = h_rest},
    {.method = "GET", .pattern = "/health", .flags = CM_HTTP_PUBLIC, .handler = h_hello},
    {.method = "POST", .pattern = "/echo", .flags = CM_HTTP_JSON, .handler = h_echo},
    {.method = "POST", .pattern = "/raw", .handler = h_raw},
    {.method = "GET", .pattern = "/query", .handler = h_query},
    {.method = "GET", .pattern = "/notleader", .handler = h_not_leader},
    {.method = "POST", .pattern = "/fail", .handler = h_fail},
    {.method = "POST", .pattern = "/empty", .handler = h_empty},
    {.method = "POST", .pattern = "/defer", .flags = CM_HTTP_JSON, .handler = h_defer},
    {.method = "POST", .pattern = "/defer-now", .handler = h_defer_now},
    {.method = "POST", .pattern = "/defer-fail", .handler = h_defer_fail},
    {.method = "PUT",
     .pattern = "/upload",
     .flags = CM_HTTP_STREAM,
     .on_start = up_start,
     .on_body = up_body,
     .handler = up_done},
    {.method = "GET", .pattern = "/data", .handler = h_data},
    {.method = "GET", .pattern = "/lines", .handler = h_lines},
};

/* ---- fixture ---- */

static struct cm_http_server *srv;
static struct cm_http_client *cli;
static uint16_t port;

static void url(char *buf, size_t cap, const char *path)
{
    snprintf(buf, cap, "http://127.0.0.1:%u%s", port, path);
}

static void start_server(const char *secret, unsigned threads)
{
    struct cm_secret sec = {0};
    struct cm_http_server_config cfg = {
        .bind_addr = "127.0.0.1",
        .threads = threads,
        .max_body = MAX_BODY,
        .secret = secret ? &sec : NULL,
    };
    struct cm_http_client_config ccfg = {.timeout_ms = WAIT_S * 1000,
                                         .secret = secret ? &sec : NULL};

    cm_log_init("test", getenv("DFS_TEST_DEBUG") ? CM_LOG_DEBUG : CM_LOG_WARN);
    if (secret != NULL)
        cr_assert_eq(cm_secret_set(&sec, secret, strlen(secret)), 0);
    cr_assert_eq(cm_http_server_new(&cfg, &srv), 0);
    cr_assert_eq(cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0])), 0);
    cr_assert_eq(cm_http_server_port(srv), 0);
    cr_assert_eq(cm_http_server_start(srv), 0);
    port = cm_http_server_port(srv);
    cr_assert_gt(port, 0);
    cr_assert_eq(cm_http_client_new(&ccfg, &cli), 0);
}

static void setup(void)
{
    start_server(NULL, 1);
}

static void teardown(void)
{
    cm_http_client_free(cli);
    cm_http_server_free(srv);
    cli = NULL;
    srv = NULL;
}

/* ---- raw socket client ---- */

static int raw_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = WAIT_S};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads until the peer closes (or the buffer is full); returns bytes read. */
static size_t raw_read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Sends req on a new connection and returns the whole answer (the server closes after it). */
static void raw_exchange(const char *req, char *out, size_t cap)
{
    int fd = raw_connect();
    raw_send(fd, req, strlen(req));
    raw_read_all(fd, out, cap);
    close(fd);
}

static int status_of(const char *resp)
{
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
        return 0;
    return code;
}

/* The JSON body of a raw answer (after the blank line), parsed. */
static cJSON *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    cJSON *j = NULL;
    cr_assert_not_null(b, "no body in: %s", resp);
    b += 4;
    cr_assert_eq(cm_json_parse_object(b, strlen(b), &j), 0, "body: %s", b);
    return j;
}

static void assert_error_body(const char *resp, const char *code)
{
    cJSON *j = body_of(resp);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    cr_assert(cJSON_IsString(c), "%s", resp);
    cr_assert_str_eq(c->valuestring, code);
    cr_assert(cJSON_IsString(m) && m->valuestring[0] != '\0');
    cJSON_Delete(j);
}

/* The server still answers normally. */
static void assert_alive(void)
{
    struct cm_http_response r;
    char u[128];
    url(u, sizeof(u), "/hello");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(r.status, 200);
    cm_http_response_clear(&r);
}

/* ---- routing ---- */

TestSuite(http_server, .init = setup, .fini = teardown, .timeout = 60);
/* Tests that start their own server. */
TestSuite(http_server_own, .fini = teardown, .timeout = 60);

Test(http_server, exact_route_and_captures)
{
    struct cm_http_response r;
    const char *s;
    char u[128];

    url(u, sizeof(u), "/hello");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cm_json_get_str(r.json, "hello", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "world");
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/block/abc123");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(cm_json_get_str(r.json, "id", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "abc123");
    cr_assert_eq(cm_json_get_str(r.json, "path", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "/block/abc123");
    cm_http_response_clear(&r);

    struct cm_http_call put = {.method = "PUT", .url = u};
    url(u, sizeof(u), "/vol/v7/blk/42");
    cr_assert_eq(cm_http_call(cli, &put, &r), 0);
    cr_assert_eq(r.status, 201);
    cr_assert_eq(cm_json_get_str(r.json, "vol", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "v7");
    cr_assert_eq(cm_json_get_str(r.json, "id", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "42");
    cm_http_response_clear(&r);
}

Test(http_server, prefix_route_captures_the_rest)
{
    struct cm_http_response r;
    const char *s;
    char u[128];

    url(u, sizeof(u), "/files/a/b/c.txt?x=1");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(cm_json_get_str(r.json, "rest", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "a/b/c.txt");
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/files/");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(cm_json_get_str(r.json, "rest", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "");
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/files");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NO_ROUTE);
    cm_http_response_clear(&r);
}

Test(http_server, unknown_path_is_404_with_error_body)
{
    struct cm_http_response r;
    char u[128], resp[4096];

    url(u, sizeof(u), "/nope");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NO_ROUTE);
    cr_assert_eq(r.status, 404);
    cr_assert_not_null(r.error);
    cm_http_response_clear(&r);

    /* A capture never matches an empty segment, nor a longer path. */
    url(u, sizeof(u), "/block/");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NO_ROUTE);
    cm_http_response_clear(&r);
    url(u, sizeof(u), "/block/a/b");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NO_ROUTE);
    cm_http_response_clear(&r);

    raw_exchange("GET /hello/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", resp,
                 sizeof(resp));
    cr_assert_eq(status_of(resp), 404);
    cr_assert_not_null(strcasestr(resp, "Content-Type: application/json"));
    assert_error_body(resp, "UNKNOWN_ENDPOINT");
}

Test(http_server, wrong_method_is_405_with_allow)
{
    struct cm_http_response r;
    char u[128], resp[4096];

    raw_exchange("DELETE /block/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", resp,
                 sizeof(resp));
    cr_assert_eq(status_of(resp), 405, "%s", resp);
    cr_assert_not_null(strcasestr(resp, "\r\nAllow: GET, HEAD, POST\r\n"), "%s", resp);
    assert_error_body(resp, "METHOD_NOT_ALLOWED");

    struct cm_http_call call = {.method = "DELETE", .url = u};
    url(u, sizeof(u), "/hello");
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_METHOD);
    cr_assert_eq(r.status, 405);
    cm_http_response_clear(&r);
}

Test(http_server, head_is_served_by_get_routes)
{
    char resp[4096];

    raw_exchange("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", resp,
                 sizeof(resp));
    cr_assert_eq(status_of(resp), 200, "%s", resp);
    cr_assert_null(strstr(resp, "world"), "HEAD answer carries no body: %s", resp);
}

Test(http_server, query_headers_and_peer)
{
    struct cm_http_response r;
    const char *s;
    char u[128];

    url(u, sizeof(u), "/query?a=x%20y&flag");
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(cm_json_get_str(r.json, "a", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "x y");
    cr_assert_eq(cm_json_get_str(r.json, "flag", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "");
    cr_assert_eq(cm_json_get_str(r.json, "missing", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "no");
    cr_assert_eq(cm_json_get_str(r.json, "x", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "(null)");
    cr_assert_eq(cm_json_get_str(r.json, "peer", 64, &s, NULL), 0);
    cr_assert_eq(strncmp(s, "127.0.0.1:", 10), 0, "%s", s);
    cm_http_response_clear(&r);

    char resp[4096];
    raw_exchange("GET /query HTTP/1.1\r\nHost: x\r\nX-TEST: hi\r\nConnection: close\r\n\r\n", resp,
                 sizeof(resp));
    cJSON *j = body_of(resp);
    cr_assert_eq(cm_json_get_str(j, "x", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "hi");
    cJSON_Delete(j);
}

Test(http_server, handler_error_and_extra_fields)
{
    struct cm_http_response r;
    const char *s;
    char u[128];

    url(u, sizeof(u), "/notleader");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NOT_LEADER);
    cr_assert_eq(r.status, 421);
    cr_assert_eq(cm_json_get_str(r.error, "leader_hint", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "10.0.0.2:7000");
    cr_assert_eq(cm_json_get_str(r.error, "code", 64, &s, NULL), 0);
    cr_assert_str_eq(s, "NOT_LEADER");
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/fail");
    cr_assert_eq(cm_http_post_json(cli, u, NULL, &r), CM_E_NOSPC);
    cr_assert_eq(r.status, 507);
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/empty");
    cr_assert_eq(cm_http_post_json(cli, u, NULL, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(cJSON_IsObject(r.json));
    cm_http_response_clear(&r);
}

Test(http_server, routes_are_validated)
{
    static const struct cm_http_route bad[] = {
        {.method = "GET", .pattern = "nope", .handler = h_hello},
        {.method = "GET", .pattern = "/a/*/b", .handler = h_hello},
        {.method = "GET", .pattern = "/a", .handler = NULL},
        {.method = "PUT", .pattern = "/s", .flags = CM_HTTP_STREAM, .handler = h_hello},
        {.method = "GET", .pattern = "/x{y}", .handler = h_hello},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cm_http_server_add_routes(srv, &bad[i], 1), CM_E_INVAL, "route %zu", i);
    /* Too late once started. */
    cr_assert_eq(cm_http_server_add_routes(srv, routes, 1), CM_E_INVAL);
    assert_alive();
}

/* ---- bodies and limits ---- */

Test(http_server, json_body_is_parsed)
{
    struct cm_http_response r;
    cJSON *b = cJSON_CreateObject();
    const cJSON *echo;
    uint64_t v;
    char u[128];

    cm_json_add_u64(b, "k", 12345);
    url(u, sizeof(u), "/echo");
    cr_assert_eq(cm_http_post_json(cli, u, b, &r), 0);
    cr_assert_eq(cm_json_get_object(r.json, "echo", &echo), 0);
    cr_assert_eq(cm_json_get_u64(echo, "k", &v), 0);
    cr_assert_eq(v, 12345);
    cm_http_response_clear(&r);
    cJSON_Delete(b);
}

Test(http_server, chunked_json_body_is_parsed)
{
    char resp[4096];
    const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"
                       "4\r\n{\"a\"\r\n5\r\n:true\r\n1\r\n}\r\n0\r\n\r\n";
    raw_exchange(req, resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 200, "%s", resp);
    cr_assert_not_null(strstr(resp, "{\"echo\":{\"a\":true}}"), "%s", resp);
}

Test(http_server, malformed_and_truncated_json_is_400)
{
    static const char *bad[] = {"{\"a\":", "[1,2]", "not json", "{\"a\":1}}", ""};
    struct cm_http_response r;
    char u[128];

    url(u, sizeof(u), "/echo");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cm_http_call call = {.url = u,
                                    .method = "POST",
                                    .body = bad[i],
                                    .body_len = strlen(bad[i]),
                                    .content_type = "application/json"};
        cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_BAD_JSON, "%s", bad[i]);
        cr_assert_eq(r.status, 400);
        cr_assert_not_null(r.error);
        cm_http_response_clear(&r);
    }
    /* Spread over several pieces (chunked), still malformed. */
    char resp[4096];
    raw_exchange("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\":\r\n0\r\n\r\n",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 400, "%s", resp);
    assert_error_body(resp, "MALFORMED_JSON");
    assert_alive();
}

Test(http_server, raw_body_is_buffered)
{
    struct cm_http_response r;
    char u[128];
    static char buf[50000];
    uint64_t v;

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = pattern_byte(i);
    struct cm_http_call call = {.url = u, .body = buf, .body_len = sizeof(buf)};
    url(u, sizeof(u), "/raw");
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(cm_json_get_u64(r.json, "len", &v), 0);
    cr_assert_eq(v, sizeof(buf));
    cr_assert_eq(cm_json_get_u64(r.json, "hash", &v), 0);
    cr_assert_eq(v, fnv(FNV_INIT, buf, sizeof(buf)) & 0xffffffffu);
    cm_http_response_clear(&r);
}

Test(http_server, content_length_over_limit_is_413_before_the_body)
{
    char resp[4096];

    /* The body is never sent: the answer must come from the headers alone. */
    raw_exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 100000000\r\n\r\n",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 413, "%s", resp);
    assert_error_body(resp, "BODY_TOO_LARGE");

    /* A client that waits for "100 Continue" is answered from the headers too. */
    raw_exchange("POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n"
                 "Expect: 100-continue\r\n\r\n",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 413, "%s", resp);
    cr_assert_null(strstr(resp, "100 Continue"), "%s", resp);

    /* Through the client, the body over the limit by one byte. */
    struct cm_http_response r;
    char u[128];
    static char big[MAX_BODY + 1];
    memset(big, ' ', sizeof(big));
    struct cm_http_call call = {.url = u, .body = big, .body_len = sizeof(big)};
    url(u, sizeof(u), "/raw");
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_TOO_LARGE);
    cr_assert_eq(r.status, 413);
    cm_http_response_clear(&r);
    call.body_len = MAX_BODY;
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cm_http_response_clear(&r);
    assert_alive();
}

/* Sends two requests on one connection and returns both answers (the second closes it). */
static void raw_two(const char *first, size_t first_len, char *out, size_t cap)
{
    const char next[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int fd = raw_connect();

    cr_assert(raw_send(fd, first, first_len));
    cr_assert(raw_send(fd, next, strlen(next)));
    raw_read_all(fd, out, cap);
    close(fd);
}

static void assert_then_hello(char *resp, int status, const char *code)
{
    char *second = strstr(resp + 1, "HTTP/1.1 ");
    cr_assert_eq(status_of(resp), status, "%s", resp);
    cr_assert_not_null(second, "connection not kept: %s", resp);
    cr_assert_eq(status_of(second), 200, "%s", second);
    *second = '\0';
    assert_error_body(resp, code);
}

Test(http_server, refused_requests_with_bodies_keep_the_connection)
{
    static char req[MAX_BODY + 200];
    char resp[8192];
    int n;

    /* Over the limit by one byte, sent in full: the body is dropped, not kept. */
    n = snprintf(req, sizeof(req), "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
                 MAX_BODY + 1);
    memset(req + n, 'b', MAX_BODY + 1);
    raw_two(req, (size_t)n + MAX_BODY + 1, resp, sizeof(resp));
    assert_then_hello(resp, 413, "BODY_TOO_LARGE");

    /* Unknown path and wrong method, with bodies. */
    const char r404[] = "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    raw_two(r404, strlen(r404), resp, sizeof(resp));
    assert_then_hello(resp, 404, "UNKNOWN_ENDPOINT");
    const char r405[] = "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    raw_two(r405, strlen(r405), resp, sizeof(resp));
    cr_assert_not_null(strcasestr(resp, "\r\nAllow: POST\r\n"), "%s", resp);
    assert_then_hello(resp, 405, "METHOD_NOT_ALLOWED");
}

static size_t make_chunk(char *buf, size_t payload)
{
    int n = snprintf(buf, 16, "%zx\r\n", payload);
    memset(buf + n, 'a', payload);
    memcpy(buf + (size_t)n + payload, "\r\n", 2);
    return (size_t)n + payload + 2;
}

Test(http_server, chunked_body_over_limit_is_413_and_keeps_the_connection)
{
    static char chunk[8192 + 16];
    size_t clen = make_chunk(chunk, 8192);
    char resp[8192];
    int fd = raw_connect();
    const char hdr[] = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char next[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    /* 25 x 8 KiB = 200 KiB against a 64 KiB limit, then a second request on the same
     * connection: the excess is dropped, not stored, and the connection stays usable. */
    cr_assert(raw_send(fd, hdr, strlen(hdr)));
    for (int i = 0; i < 25; i++)
        cr_assert(raw_send(fd, chunk, clen));
    cr_assert(raw_send(fd, "0\r\n\r\n", 5));
    cr_assert(raw_send(fd, next, strlen(next)));
    raw_read_all(fd, resp, sizeof(resp));
    close(fd);
    cr_assert_eq(status_of(resp), 413, "%s", resp);
    const char *second = strstr(resp + 1, "HTTP/1.1 ");
    cr_assert_not_null(second, "no second answer: %s", resp);
    cr_assert_eq(status_of(second), 200, "%s", second);
    char *cut = strstr(resp, "HTTP/1.1 200");
    *cut = '\0';
    assert_error_body(resp, "BODY_TOO_LARGE");
}

Test(http_server, endless_chunked_body_is_cut_off)
{
    static char chunk[65536 + 16];
    size_t clen = make_chunk(chunk, 65536);
    uint64_t sent = 0;
    int fd = raw_connect();
    const char hdr[] = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

    /* The server drops the connection after the limit plus a bounded discard; the sender
     * fails long before 256 MiB. */
    cr_assert(raw_send(fd, hdr, strlen(hdr)));
    while (sent < 256u * 1024 * 1024 && raw_send(fd, chunk, clen))
        sent += 65536;
    close(fd);
    cr_assert_lt(sent, 256u * 1024 * 1024);
    assert_alive();
}

Test(http_server, broken_clients_do_not_hurt_the_server)
{
    char resp[4096];
    int fd;

    /* Garbage instead of HTTP. */
    raw_exchange("GARBAGE\r\n\r\n", resp, sizeof(resp));
    cr_assert(status_of(resp) == 0 || status_of(resp) >= 400, "%s", resp);

    /* A truncated JSON body: the client closes before sending all it announced. */
    fd = raw_connect();
    const char part[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"a\":";
    cr_assert(raw_send(fd, part, strlen(part)));
    close(fd);

    /* Gone in the middle of a streamed upload: the request context must still be freed. */
    int freed0 = st.freed;
    fd = raw_connect();
    const char up[] = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    cr_assert(raw_send(fd, up, strlen(up)));
    static char junk[200000];
    cr_assert(raw_send(fd, junk, sizeof(junk)));
    close(fd);
    cr_assert(wait_count(&st.freed, freed0 + 1));

    /* Headers cut off, and a bare connect that sends nothing. */
    fd = raw_connect();
    cr_assert(raw_send(fd, "GET /hel", 8));
    close(fd);
    fd = raw_connect();
    close(fd);

    /* An absurd Content-Length. */
    raw_exchange(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", resp,
        sizeof(resp));
    cr_assert_geq(status_of(resp), 400, "%s", resp);

    assert_alive();
}

/* ---- the secret ---- */

Test(http_server_own, secret_is_checked_except_on_public_routes)
{
    struct cm_http_client_config none = {0};
    struct cm_secret wrong_s = {0};
    struct cm_http_client_config wrong = {.secret = &wrong_s};
    struct cm_http_client *c_none, *c_wrong;
    struct cm_http_response r;
    char u[128], resp[4096];

    start_server("s3cret-value", 1);
    cr_assert_eq(cm_secret_set(&wrong_s, "s3cret-valuX", 12), 0);
    cr_assert_eq(cm_http_client_new(&none, &c_none), 0);
    cr_assert_eq(cm_http_client_new(&wrong, &c_wrong), 0);

    url(u, sizeof(u), "/hello");
    cr_assert_eq(cm_http_get_json(c_none, u, &r), CM_E_UNAUTHORIZED);
    cr_assert_eq(r.status, 401);
    cm_http_response_clear(&r);
    cr_assert_eq(cm_http_get_json(c_wrong, u, &r), CM_E_UNAUTHORIZED);
    cm_http_response_clear(&r);
    cr_assert_eq(cm_http_get_json(cli, u, &r), 0);
    cr_assert_eq(r.status, 200);
    cm_http_response_clear(&r);

    url(u, sizeof(u), "/health");
    cr_assert_eq(cm_http_get_json(c_none, u, &r), 0);
    cm_http_response_clear(&r);

    /* A JSON route rejects before reading the body; an empty header value is wrong too. */
    raw_exchange("POST /echo HTTP/1.1\r\nHost: x\r\nX-Dfs-Secret: \r\nContent-Length: 9\r\n"
                 "Connection: close\r\n\r\n{\"a\":123}",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 401, "%s", resp);
    assert_error_body(resp, "UNAUTHORIZED");
    raw_exchange("GET /hello HTTP/1.1\r\nHost: x\r\nx-dfs-secret: s3cret-value\r\n"
                 "Connection: close\r\n\r\n",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 200, "%s", resp);

    cm_http_client_free(c_none);
    cm_http_client_free(c_wrong);
}

/* ---- deferred answers ---- */

struct caller {
    pthread_t t;
    int n;
    int rc;
    int got;
    int status;
};

static void *call_defer(void *arg)
{
    struct caller *c = arg;
    struct cm_http_response r;
    cJSON *b = cJSON_CreateObject();
    char u[128];
    uint32_t got = 0;

    cJSON_AddNumberToObject(b, "n", c->n);
    url(u, sizeof(u), "/defer");
    c->rc = cm_http_post_json(cli, u, b, &r);
    c->status = r.status;
    if (c->rc == 0 && cm_json_get_u32(r.json, "n", &got) == 0)
        c->got = (int)got;
    cm_http_response_clear(&r);
    cJSON_Delete(b);
    return NULL;
}

static void complete_with_n(struct pending p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", p.n);
    cm_http_deferred_json(p.d, 200, o);
}

Test(http_server, deferred_answer_from_another_thread)
{
    struct caller c = {.n = 7};

    pthread_create(&c.t, NULL, call_defer, &c);
    cr_assert(wait_deferred(1));
    /* The handler has returned and the request waits; its answer comes from this thread. */
    complete_with_n(pop_deferred());
    pthread_join(c.t, NULL);
    cr_assert_eq(c.rc, 0);
    cr_assert_eq(c.got, 7);
    assert_alive();
}

Test(http_server, deferred_error_with_extra_fields)
{
    struct caller c = {.n = 1};
    cJSON *extra = cJSON_CreateObject();

    cJSON_AddStringToObject(extra, "leader_hint", "m2:9000");
    pthread_create(&c.t, NULL, call_defer, &c);
    cr_assert(wait_deferred(1));
    cm_http_deferred_error(pop_deferred().d, CM_E_NOT_LEADER, "ask m2", extra);
    pthread_join(c.t, NULL);
    cr_assert_eq(c.rc, CM_E_NOT_LEADER);
    cr_assert_eq(c.status, 421);
}

/* 32 requests wait at once on a server with one worker thread; answers go out in reverse order
 * and each caller gets its own. */
Test(http_server, many_concurrent_deferred_requests)
{
    enum { N = 32 };
    struct caller c[N];

    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.n = 1000 + i};
        pthread_create(&c[i].t, NULL, call_defer, &c[i]);
    }
    cr_assert(wait_deferred(N), "only %zu of %d requests deferred", st.nq, N);
    for (int i = 0; i < N; i++)
        complete_with_n(pop_deferred());
    for (int i = 0; i < N; i++) {
        pthread_join(c[i].t, NULL);
        cr_assert_eq(c[i].rc, 0, "caller %d: %d", i, c[i].rc);
        cr_assert_eq(c[i].got, 1000 + i);
    }
    assert_alive();
}

Test(http_server, deferred_completed_inside_the_handler)
{
    struct cm_http_response r;
    bool now = false;
    char u[128];

    url(u, sizeof(u), "/defer-now");
    cr_assert_eq(cm_http_post_json(cli, u, NULL, &r), 0);
    cr_assert_eq(r.status, 202);
    cr_assert_eq(cm_json_get_bool(r.json, "now", &now), 0);
    cr_assert(now);
    cm_http_response_clear(&r);
}

Test(http_server, handler_error_after_defer_drops_the_completion)
{
    struct cm_http_response r;
    char u[128];

    url(u, sizeof(u), "/defer-fail");
    cr_assert_eq(cm_http_post_json(cli, u, NULL, &r), CM_E_BUSY);
    cm_http_response_clear(&r);
    cr_assert(wait_deferred(1));
    complete_with_n(pop_deferred()); /* goes nowhere, frees the handle */
    assert_alive();
}

Test(http_server, client_gone_while_deferred)
{
    const char req[] = "POST /defer HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"n\":5}";
    int freed0 = st.freed;
    int fd = raw_connect();

    cr_assert(raw_send(fd, req, strlen(req)));
    cr_assert(wait_deferred(1));
    close(fd);
    /* The answer for a client that left: sent into a closed socket, then the request ends. */
    complete_with_n(pop_deferred());
    cr_assert(wait_count(&st.freed, freed0 + 1));
    assert_alive();
}

Test(http_server, stop_answers_waiting_requests_and_handles_stay_safe)
{
    struct caller c = {.n = 3};
    struct pending p;

    pthread_create(&c.t, NULL, call_defer, &c);
    cr_assert(wait_deferred(1));
    p = pop_deferred();
    cm_http_server_stop(srv);
    pthread_join(c.t, NULL);
    cr_assert_eq(c.rc, CM_E_UNAVAILABLE, "%d", c.rc);
    cr_assert_eq(c.status, 503);
    /* Completing after stop, even after free, is a no-op. */
    cm_http_server_free(srv);
    srv = NULL;
    complete_with_n(p);
}

/* ---- streams ---- */

struct src {
    uint64_t size;
    uint64_t pos;
    uint64_t hash;
};

static int src_read(void *ctx, char *buf, size_t cap, size_t *n)
{
    struct src *s = ctx;
    uint64_t left = s->size - s->pos;
    size_t k = left < cap ? (size_t)left : cap;

    /* Odd piece sizes, so the server sees pieces that are not aligned. */
    if (k > 1000 && (s->pos & 1) == 0)
        k -= 333;
    for (size_t i = 0; i < k; i++)
        buf[i] = pattern_byte(s->pos + i);
    s->hash = fnv(s->hash, buf, k);
    s->pos += k;
    *n = k;
    return 0;
}

static void upload_and_check(int64_t announced, uint64_t size)
{
    struct src s = {.size = size, .hash = FNV_INIT};
    struct cm_http_response r;
    char u[128], hex[32];
    const char *h;
    uint64_t bytes;
    struct cm_http_call call = {
        .method = "PUT", .url = u, .upload = src_read, .upload_ctx = &s, .upload_len = announced};

    url(u, sizeof(u), "/upload");
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cm_json_get_u64(r.json, "bytes", &bytes), 0);
    cr_assert_eq(bytes, size);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)s.hash);
    cr_assert_eq(cm_json_get_str(r.json, "hash", 32, &h, NULL), 0);
    cr_assert_str_eq(h, hex);
    cm_http_response_clear(&r);
}

Test(http_server, streamed_upload_known_length)
{
    /* 8 MiB through a server whose buffered-body limit is 64 KiB. */
    upload_and_check(8 * 1024 * 1024 + 5, 8 * 1024 * 1024 + 5);
}

Test(http_server, streamed_upload_chunked)
{
    upload_and_check(-1, 5 * 1024 * 1024 + 3);
}

Test(http_server, streamed_upload_rejected_at_start_and_in_the_middle)
{
    struct src s = {.size = 4 * 1024 * 1024, .hash = FNV_INIT};
    struct cm_http_response r;
    char u[128];
    struct cm_http_call call = {.method = "PUT",
                                .url = u,
                                .upload = src_read,
                                .upload_ctx = &s,
                                .upload_len = (int64_t)s.size};

    /* A body this large first asks for "100 Continue": the refusal comes before any of it is
     * sent (sent and then cut off, a reset could lose the answer under load). */
    url(u, sizeof(u), "/upload?reject=1");
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_NOSPC);
    cr_assert_eq(r.status, 507);
    cr_assert_eq(s.pos, 0);
    cm_http_response_clear(&r);

    /* The failure in the middle is answered once the client has sent the rest. */
    s.pos = 0;
    url(u, sizeof(u), "/upload?failat=1");
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_CORRUPT);
    cr_assert_eq(r.status, 500);
    cr_assert_eq(s.pos, s.size);
    cm_http_response_clear(&r);
    assert_alive();
}

Test(http_server, large_body_in_memory_asks_first_and_its_refusal_arrives)
{
    const size_t big = 4 * 1024 * 1024, small = 100 * 1000;
    char *body = calloc(1, big), u[128];
    struct cm_http_response r;
    struct cm_http_call call = {.method = "PUT", .url = u, .body = body};
    cr_assert_not_null(body);

    /* Refused at the start: a body this large was held back until the server said go on, so
     * the refusal is what comes back (a reset would have lost it, as for streamed uploads). */
    url(u, sizeof(u), "/upload?reject=1");
    call.body_len = big;
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_NOSPC);
    cr_assert_eq(r.status, 507);
    cr_assert_str_eq(last_expect, "100-continue");
    cm_http_response_clear(&r);

    /* Taken whole; a small body goes at once. */
    url(u, sizeof(u), "/upload");
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(last_expect, "100-continue");
    cm_http_response_clear(&r);
    call.body_len = small;
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_str_eq(last_expect, "");
    cm_http_response_clear(&r);
    free(body);
    assert_alive();
}

struct sink {
    uint64_t off;
    uint64_t got;
    bool bad;
};

static int sink_write(void *ctx, const char *buf, size_t len)
{
    struct sink *k = ctx;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern_byte(k->off + k->got + i))
            k->bad = true;
    k->got += len;
    return 0;
}

Test(http_server, streamed_download_whole_and_ranges)
{
    struct cm_http_response r;
    struct sink k = {0};
    char u[128];
    struct cm_http_call call = {.url = u, .download = sink_write, .download_ctx = &k};

    url(u, sizeof(u), "/data");
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(k.got, DATA_SIZE);
    cr_assert(!k.bad);
    cm_http_response_clear(&r);

    k = (struct sink){.off = 1000000};
    call.range = "1000000-2999999";
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.status, 206);
    cr_assert_eq(k.got, 2000000);
    cr_assert(!k.bad);
    cm_http_response_clear(&r);

    k = (struct sink){.off = DATA_SIZE - 10};
    call.range = "3145735-";
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(k.got, 10);
    cr_assert(!k.bad);
    cm_http_response_clear(&r);

    /* Unsatisfiable: an error answer, not given to the download callback. */
    k = (struct sink){0};
    call.range = "99999999-";
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_RANGE);
    cr_assert_eq(k.got, 0);
    cr_assert_not_null(r.error);
    cm_http_response_clear(&r);

    char resp[4096];
    raw_exchange("GET /data HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n",
                 resp, sizeof(resp));
    cr_assert_eq(status_of(resp), 206, "%s", resp);
    cr_assert_not_null(strcasestr(resp, "Content-Range: bytes 10-19/3145745"), "%s", resp);
    cr_assert_not_null(strcasestr(resp, "Content-Length: 10\r\n"), "%s", resp);
}

Test(http_server, streamed_answer_of_unknown_length)
{
    struct cm_http_response r;
    char u[128];
    struct cm_http_call call = {.url = u, .flags = CM_HTTP_CALL_RAW};

    url(u, sizeof(u), "/lines");
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.body_len, 100 * 10);
    cr_assert_eq(strncmp(r.body, "line 0099\n", 10), 0);
    cr_assert_eq(strcmp(r.body + 990, "line 0000\n"), 0);
    cm_http_response_clear(&r);
}

Test(http_server, range_parser)
{
    uint64_t off, len;

    cr_assert_eq(cm_http_parse_range(NULL, 100, &off, &len), CM_E_NOENT);
    cr_assert_eq(cm_http_parse_range("bytes=0-9", 100, &off, &len), 0);
    cr_assert(off == 0 && len == 10);
    cr_assert_eq(cm_http_parse_range("bytes=90-", 100, &off, &len), 0);
    cr_assert(off == 90 && len == 10);
    cr_assert_eq(cm_http_parse_range("bytes=90-1000", 100, &off, &len), 0);
    cr_assert(off == 90 && len == 10);
    cr_assert_eq(cm_http_parse_range("bytes=-30", 100, &off, &len), 0);
    cr_assert(off == 70 && len == 30);
    cr_assert_eq(cm_http_parse_range("bytes=-300", 100, &off, &len), 0);
    cr_assert(off == 0 && len == 100);
    cr_assert_eq(cm_http_parse_range("bytes=100-", 100, &off, &len), CM_E_RANGE);
    cr_assert_eq(cm_http_parse_range("bytes=-0", 100, &off, &len), CM_E_RANGE);
    cr_assert_eq(cm_http_parse_range("bytes=0-", 0, &off, &len), CM_E_RANGE);
    cr_assert_eq(cm_http_parse_range("bytes=5-4", 100, &off, &len), CM_E_INVAL);
    cr_assert_eq(cm_http_parse_range("bytes=0-1,5-6", 100, &off, &len), CM_E_INVAL);
    cr_assert_eq(cm_http_parse_range("items=0-1", 100, &off, &len), CM_E_INVAL);
    cr_assert_eq(cm_http_parse_range("bytes=-", 100, &off, &len), CM_E_INVAL);
    cr_assert_eq(cm_http_parse_range("bytes=99999999999999999999-", 100, &off, &len), CM_E_INVAL);
}

/* ---- connections ---- */

Test(http_server, keep_alive_reuses_one_connection)
{
    struct cm_http_server_stats s0, s1;
    char u[128];

    cm_http_server_stats(srv, &s0);
    url(u, sizeof(u), "/echo");
    for (int i = 0; i < 50; i++) {
        struct cm_http_response r;
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "i", i);
        cr_assert_eq(cm_http_post_json(cli, u, b, &r), 0);
        cm_http_response_clear(&r);
        cJSON_Delete(b);
    }
    cm_http_server_stats(srv, &s1);
    cr_assert_eq(s1.connections - s0.connections, 1);
    cr_assert_eq(s1.requests - s0.requests, 50);
    cr_assert_eq(cm_http_client_connections(cli), 1);
}

Test(http_server_own, thread_pool_serves_parallel_callers)
{
    enum { N = 8 };
    struct caller c[N];

    start_server(NULL, 2);
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.n = i};
        pthread_create(&c[i].t, NULL, call_defer, &c[i]);
    }
    cr_assert(wait_deferred(N));
    for (int i = 0; i < N; i++)
        complete_with_n(pop_deferred());
    for (int i = 0; i < N; i++) {
        pthread_join(c[i].t, NULL);
        cr_assert_eq(c[i].rc, 0);
        cr_assert_eq(c[i].got, i);
    }
}

Test(http_server_own, bad_config_and_busy_port)
{
    struct cm_http_server_config bad = {.bind_addr = "not-an-ip"};
    struct cm_http_server_config cfg = {.bind_addr = "127.0.0.1"};
    struct cm_http_server *a, *b;

    cm_log_init("test", CM_LOG_OFF);
    cr_assert_eq(cm_http_server_new(&bad, &a), CM_E_INVAL);
    cr_assert_eq(cm_http_server_new(&cfg, &a), 0);
    cr_assert_eq(cm_http_server_add_routes(a, routes, 1), 0);
    cr_assert_eq(cm_http_server_start(a), 0);
    cr_assert_eq(cm_http_server_start(a), CM_E_INVAL);
    cfg.port = cm_http_server_port(a);
    cr_assert_eq(cm_http_server_new(&cfg, &b), 0);
    cr_assert_eq(cm_http_server_start(b), CM_E_IO);
    cm_http_server_free(b);
    cm_http_server_stop(a);
    cm_http_server_stop(a);
    cm_http_server_free(a);
    cm_http_server_free(NULL);
}

Test(http_server_own, ipv6_loopback)
{
    struct cm_http_server_config cfg = {.bind_addr = "::1"};
    struct cm_http_client_config ccfg = {0};
    struct cm_http_server *s6;
    struct cm_http_client *c;
    struct cm_http_response r;
    char u[128];

    cm_log_init("test", CM_LOG_WARN);
    cr_assert_eq(cm_http_server_new(&cfg, &s6), 0);
    cr_assert_eq(cm_http_server_add_routes(s6, routes, 1), 0);
    if (cm_http_server_start(s6) < 0) { /* no IPv6 in this sandbox */
        cm_http_server_free(s6);
        cr_skip_test("no IPv6 loopback");
    }
    cr_assert_eq(cm_http_client_new(&ccfg, &c), 0);
    snprintf(u, sizeof(u), "http://[::1]:%u/hello", cm_http_server_port(s6));
    cr_assert_eq(cm_http_get_json(c, u, &r), 0);
    cm_http_response_clear(&r);
    cm_http_client_free(c);
    cm_http_server_free(s6);
}
