/* The HTTP client and the asynchronous engine: result codes for every kind of failure, decoded
 * dfs errors, limits, keep-alive, threads, and that a slow peer never holds up a fast one. Real
 * servers on 127.0.0.1; raw sockets play broken peers. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#define WAIT_S 20 /* upper bound for anything awaited; only reached when a test fails */

/* ---- shared state ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct cm_http_deferred *held[64];
static size_t nheld;

static bool wait_until(const size_t *counter, size_t want)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    pthread_mutex_lock(&mu);
    while (*counter < want)
        if (pthread_cond_timedwait(&cv, &mu, &ts) != 0)
            break;
    ok = *counter >= want;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* ---- server ---- */

static int h_ok(struct cm_http_req *req, void *data)
{
    cJSON *o = cJSON_CreateObject();
    (void)data;
    cJSON_AddBoolToObject(o, "ok", 1);
    return cm_http_answer_json(req, 200, o);
}

static int h_text(struct cm_http_req *req, void *data)
{
    (void)data;
    return cm_http_answer_bytes(req, 200, "text/plain", "hello", 5);
}

static int h_html_error(struct cm_http_req *req, void *data)
{
    (void)data;
    return cm_http_answer_bytes(req, 502, "text/html", "<html>bad gateway</html>", 24);
}

static int h_odd_error(struct cm_http_req *req, void *data)
{
    (void)data;
    return cm_http_answer_bytes(req, 500, "application/json",
                                "{\"error\":{\"code\":\"NO_SUCH_CODE\"}}", 33);
}

static int h_big(struct cm_http_req *req, void *data)
{
    const char *n = cm_http_req_query(req, "n");
    size_t len = n ? strtoul(n, NULL, 10) : 0;
    char *s = malloc(len + 1);
    cJSON *o = cJSON_CreateObject();

    (void)data;
    memset(s, 'x', len);
    s[len] = '\0';
    cJSON_AddStringToObject(o, "s", s);
    free(s);
    return cm_http_answer_json(req, 200, o);
}

static int lines_read(void *ctx, uint64_t pos, char *buf, size_t cap, size_t *n)
{
    (void)ctx;
    if (pos >= 100000 || cap < 10) {
        *n = 0;
        return 0;
    }
    memcpy(buf, "\"abcdefg\" ", 10);
    *n = 10;
    return 0;
}

static int h_lines(struct cm_http_req *req, void *data)
{
    (void)data;
    return cm_http_answer_stream(req, 200, "text/plain", -1, lines_read, NULL, NULL);
}

static int h_not_leader(struct cm_http_req *req, void *data)
{
    cJSON *extra = cJSON_CreateObject();
    (void)data;
    cJSON_AddStringToObject(extra, "leader_hint", "127.0.0.1:7001");
    return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, extra);
}

static int h_echo(struct cm_http_req *req, void *data)
{
    (void)data;
    return cm_http_answer_json(req, 200, cJSON_Duplicate(cm_http_req_json(req), 1));
}

static int h_slow(struct cm_http_req *req, void *data)
{
    struct cm_http_deferred *d;
    int rc = cm_http_defer(req, &d);

    (void)data;
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&mu);
    held[nheld++] = d;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

static const struct cm_http_route routes[] = {
    {.method = "GET", .pattern = "/ok", .handler = h_ok},
    {.method = "GET", .pattern = "/text", .handler = h_text},
    {.method = "GET", .pattern = "/html-error", .handler = h_html_error},
    {.method = "GET", .pattern = "/odd-error", .handler = h_odd_error},
    {.method = "GET", .pattern = "/big", .handler = h_big},
    {.method = "GET", .pattern = "/lines", .handler = h_lines},
    {.method = "GET", .pattern = "/notleader", .handler = h_not_leader},
    {.method = "POST", .pattern = "/echo", .flags = CM_HTTP_JSON, .handler = h_echo},
    {.method = "POST", .pattern = "/slow", .handler = h_slow},
};

static struct cm_http_server *start_server(void)
{
    struct cm_http_server_config cfg = {.bind_addr = "127.0.0.1"};
    struct cm_http_server *s;

    cr_assert_eq(cm_http_server_new(&cfg, &s), 0);
    cr_assert_eq(cm_http_server_add_routes(s, routes, sizeof(routes) / sizeof(routes[0])), 0);
    cr_assert_eq(cm_http_server_start(s), 0);
    return s;
}

static struct cm_http_server *srv;
static struct cm_http_client *cli;

static void setup(void)
{
    struct cm_http_client_config cfg = {.timeout_ms = WAIT_S * 1000};

    cm_log_init("test", getenv("DFS_TEST_DEBUG") ? CM_LOG_DEBUG : CM_LOG_WARN);
    srv = start_server();
    cr_assert_eq(cm_http_client_new(&cfg, &cli), 0);
}

static void teardown(void)
{
    /* Requests the test left waiting are answered, then the server goes. */
    pthread_mutex_lock(&mu);
    while (nheld > 0)
        cm_http_deferred_error(held[--nheld], CM_E_CANCELED, NULL, NULL);
    pthread_mutex_unlock(&mu);
    cm_http_client_free(cli);
    cm_http_server_free(srv);
}

static void url_of(char *buf, size_t cap, const struct cm_http_server *s, const char *path)
{
    snprintf(buf, cap, "http://127.0.0.1:%u%s", cm_http_server_port(s), path);
}

/* ---- broken peers ---- */

/* A socket bound to a loopback port but not listening: connecting to it is refused, and no one
 * else can take the port meanwhile. */
static int bound_port(int *fd_out, bool do_listen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (do_listen)
        cr_assert_eq(listen(fd, 16), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

struct raw_peer {
    int lfd;
    const char *answer; /* NULL: close right after reading the request */
    pthread_t t;
};

/* Reads one request's head from fd into buf (NUL-terminated); returns the bytes read. */
static size_t read_head(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    return got;
}

static void *raw_peer_run(void *arg)
{
    struct raw_peer *p = arg;
    char buf[4096];
    int fd = accept(p->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    read_head(fd, buf, sizeof(buf));
    if (p->answer != NULL)
        send(fd, p->answer, strlen(p->answer), MSG_NOSIGNAL);
    close(fd);
    return NULL;
}

static int raw_call(const char *answer, struct cm_http_response *r)
{
    struct raw_peer p = {.answer = answer};
    char u[64];
    int rc, port = bound_port(&p.lfd, true);

    pthread_create(&p.t, NULL, raw_peer_run, &p);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", port);
    rc = cm_http_get_json(cli, u, r);
    pthread_join(p.t, NULL);
    close(p.lfd);
    return rc;
}

TestSuite(http_client, .init = setup, .fini = teardown, .timeout = 60);

Test(http_client, connection_refused_is_connect_error)
{
    struct cm_http_response r;
    char u[64];
    int fd, port = bound_port(&fd, false);

    snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", port);
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_CONNECT);
    cr_assert_eq(r.status, 0);
    cr_assert_null(r.json);
    close(fd);
}

Test(http_client, silent_server_is_timeout)
{
    struct cm_http_client_config cfg = {.timeout_ms = 300};
    struct cm_http_client *c;
    struct cm_http_response r;
    struct timespec t0, t1;
    char u[64];
    int fd, port = bound_port(&fd, true); /* the kernel accepts; nobody answers */

    cr_assert_eq(cm_http_client_new(&cfg, &c), 0);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/ok", port);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(cm_http_get_json(c, u, &r), CM_E_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(r.status, 0);
    /* Bounded by the timeout (a generous margin: this only catches a missing timeout). */
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 10);

    /* A per-call timeout overrides the client's. */
    struct cm_http_call call = {.url = u, .timeout_ms = 100};
    cr_assert_eq(cm_http_call(cli, &call, &r), CM_E_TIMEOUT);
    cm_http_client_free(c);
    close(fd);
}

/* A proxy named in the environment (here one that does not exist) is not used: cluster traffic
 * goes straight to the peer (async calls take their handles from the same new_handle). */
Test(http_client, a_proxy_in_the_environment_is_ignored)
{
    struct cm_http_client_config cfg = {.timeout_ms = 3000};
    static const char *vars[] = {"http_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"};
    struct cm_http_client *c;
    struct cm_http_response r;
    char u[128];

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        setenv(vars[i], "http://127.0.0.1:1", 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    cr_assert_eq(cm_http_client_new(&cfg, &c), 0);
    url_of(u, sizeof(u), srv, "/ok");
    cr_assert_eq(cm_http_get_json(c, u, &r), 0);
    cr_assert_eq(r.status, 200);
    cm_http_response_clear(&r);
    cm_http_client_free(c);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

Test(http_client, peer_closing_without_answer_is_connect_error)
{
    struct cm_http_response r;

    cr_assert_eq(raw_call(NULL, &r), CM_E_CONNECT);
    cr_assert_eq(r.status, 0);
}

Test(http_client, garbage_answers_are_protocol_errors)
{
    struct cm_http_response r;

    int rc = raw_call("SSH-2.0-OpenSSH_9.2\r\n\r\n", &r);
    cr_assert_eq(rc, CM_E_PROTO, "%d", rc);
    cm_http_response_clear(&r);
    /* Valid HTTP, but the body is cut short: the peer went away mid-answer. */
    cr_assert_eq(raw_call("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":", &r),
                 CM_E_CONNECT);
    cm_http_response_clear(&r);
    cr_assert_eq(raw_call("HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n", &r),
                 CM_E_PROTO);
    cr_assert_eq(r.status, 302);
    cm_http_response_clear(&r);
}

Test(http_client, non_json_answer_is_protocol_error_unless_raw)
{
    struct cm_http_response r;
    char u[128];

    url_of(u, sizeof(u), srv, "/text");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_PROTO);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.json);
    cm_http_response_clear(&r);

    struct cm_http_call call = {.url = u, .flags = CM_HTTP_CALL_RAW};
    cr_assert_eq(cm_http_call(cli, &call, &r), 0);
    cr_assert_eq(r.body_len, 5);
    cr_assert_str_eq(r.body, "hello");
    cm_http_response_clear(&r);

    /* Error answers that are not dfs error bodies. */
    url_of(u, sizeof(u), srv, "/html-error");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_PROTO);
    cr_assert_eq(r.status, 502);
    cm_http_response_clear(&r);
    url_of(u, sizeof(u), srv, "/odd-error");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_PROTO);
    cr_assert_eq(r.status, 500);
    cm_http_response_clear(&r);
}

Test(http_client, not_leader_is_decoded_with_its_hint)
{
    struct cm_http_response r;
    const char *hint;
    char u[128];

    url_of(u, sizeof(u), srv, "/notleader");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_NOT_LEADER);
    cr_assert_eq(r.status, 421);
    cr_assert_not_null(r.error);
    cr_assert_eq(cm_json_get_str(r.error, "leader_hint", 64, &hint, NULL), 0);
    cr_assert_str_eq(hint, "127.0.0.1:7001");
    cm_http_response_clear(&r);
    cr_assert_null(r.json);

    /* Without an out parameter the code still comes back. */
    cr_assert_eq(cm_http_get_json(cli, u, NULL), CM_E_NOT_LEADER);
}

Test(http_client, answer_over_the_limit_is_too_large)
{
    struct cm_http_client_config cfg = {.max_answer = 4096};
    struct cm_http_client *c;
    struct cm_http_response r;
    char u[128];

    cr_assert_eq(cm_http_client_new(&cfg, &c), 0);
    url_of(u, sizeof(u), srv, "/big?n=3000");
    cr_assert_eq(cm_http_get_json(c, u, &r), 0);
    cm_http_response_clear(&r);
    /* Known length: refused from the header. */
    url_of(u, sizeof(u), srv, "/big?n=5000");
    cr_assert_eq(cm_http_get_json(c, u, &r), CM_E_TOO_LARGE);
    cm_http_response_clear(&r);
    /* Chunked: refused once the limit is passed. */
    url_of(u, sizeof(u), srv, "/lines");
    cr_assert_eq(cm_http_get_json(c, u, &r), CM_E_TOO_LARGE);
    cm_http_response_clear(&r);
    /* And the client still works. */
    url_of(u, sizeof(u), srv, "/ok");
    cr_assert_eq(cm_http_get_json(c, u, &r), 0);
    cm_http_response_clear(&r);
    cm_http_client_free(c);
}

Test(http_client, bad_calls_are_rejected)
{
    struct cm_http_response r;
    cJSON *j = cJSON_CreateObject();
    char u[128];

    url_of(u, sizeof(u), srv, "/echo");
    struct cm_http_call no_url = {0};
    cr_assert_eq(cm_http_call(cli, &no_url, &r), CM_E_INVAL);
    struct cm_http_call two = {.url = u, .json = j, .body = "x", .body_len = 1};
    cr_assert_eq(cm_http_call(cli, &two, &r), CM_E_INVAL);
    struct cm_http_call nobuf = {.url = u, .body_len = 3};
    cr_assert_eq(cm_http_call(cli, &nobuf, &r), CM_E_INVAL);
    cr_assert_eq(cm_http_get_json(cli, "ftp://127.0.0.1/x", &r), CM_E_INVAL);
    cr_assert_eq(cm_http_get_json(cli, "http://no-such-host.invalid/x", &r), CM_E_RESOLVE);
    struct cm_http_client_config neg = {.timeout_ms = -1};
    struct cm_http_client *c;
    cr_assert_eq(cm_http_client_new(&neg, &c), CM_E_INVAL);
    cJSON_Delete(j);
}

Test(http_client, json_round_trip_and_methods)
{
    struct cm_http_response r;
    cJSON *j = cJSON_CreateObject();
    uint64_t v;
    char u[128];

    cm_json_add_u64(j, "big", 18446744073709551615ULL);
    url_of(u, sizeof(u), srv, "/echo");
    cr_assert_eq(cm_http_post_json(cli, u, j, &r), 0);
    cr_assert_eq(cm_json_get_u64(r.json, "big", &v), 0);
    cr_assert_eq(v, 18446744073709551615ULL);
    cm_http_response_clear(&r);

    /* A GET after a POST on the same pooled handle is a plain GET again. */
    url_of(u, sizeof(u), srv, "/echo");
    cr_assert_eq(cm_http_get_json(cli, u, &r), CM_E_METHOD);
    cm_http_response_clear(&r);
    struct cm_http_call del = {.method = "DELETE", .url = u};
    cr_assert_eq(cm_http_call(cli, &del, &r), CM_E_METHOD);
    cm_http_response_clear(&r);
    url_of(u, sizeof(u), srv, "/ok");
    struct cm_http_call head = {.method = "HEAD", .url = u};
    cr_assert_eq(cm_http_call(cli, &head, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.json);
    cm_http_response_clear(&r);
    cJSON_Delete(j);
}

struct worker {
    pthread_t t;
    int failures;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    char u[128];

    url_of(u, sizeof(u), srv, "/echo");
    for (int i = 0; i < 100; i++) {
        struct cm_http_response r;
        cJSON *j = cJSON_CreateObject();
        uint64_t v = 0;
        cm_json_add_u64(j, "i", (uint64_t)i);
        if (cm_http_post_json(cli, u, j, &r) != 0 || cm_json_get_u64(r.json, "i", &v) != 0 ||
            v != (uint64_t)i)
            w->failures++;
        cm_http_response_clear(&r);
        cJSON_Delete(j);
    }
    return NULL;
}

Test(http_client, one_client_many_threads_share_connections)
{
    enum { N = 4 };
    struct worker w[N] = {0};
    struct cm_http_server_stats st;

    for (int i = 0; i < N; i++)
        pthread_create(&w[i].t, NULL, hammer, &w[i]);
    for (int i = 0; i < N; i++) {
        pthread_join(w[i].t, NULL);
        cr_assert_eq(w[i].failures, 0);
    }
    /* At most one connection per thread running at once, all kept alive. */
    cm_http_server_stats(srv, &st);
    cr_assert_leq(st.connections, N);
    cr_assert_leq(cm_http_client_connections(cli), N);
    cr_assert_eq(st.requests, N * 100);
}

/* ---- the asynchronous engine ---- */

struct done_rec {
    size_t n; /* completions so far */
    int err[128];
    int status[128];
    int tag[128];
    char hint[64];
};

static struct done_rec rec;

struct tagged {
    int tag;
};

static struct tagged tags[128];

static void on_done(void *ctx, int err, struct cm_http_response *resp)
{
    struct tagged *t = ctx;
    const char *hint;

    pthread_mutex_lock(&mu);
    rec.err[rec.n] = err;
    rec.status[rec.n] = resp->status;
    rec.tag[rec.n] = t->tag;
    if (resp->error && cm_json_get_str(resp->error, "leader_hint", 63, &hint, NULL) == 0)
        snprintf(rec.hint, sizeof(rec.hint), "%s", hint);
    rec.n++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static bool completed(int tag)
{
    bool found = false;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < rec.n; i++)
        found |= rec.tag[i] == tag;
    pthread_mutex_unlock(&mu);
    return found;
}

static int result_of(int tag)
{
    for (size_t i = 0; i < rec.n; i++)
        if (rec.tag[i] == tag)
            return rec.err[i];
    return 1;
}

static void submit(struct cm_http_async *a, const char *method, const char *u, int tag)
{
    struct cm_http_call call = {.method = method, .url = u};
    tags[tag].tag = tag;
    cr_assert_eq(cm_http_async_submit(a, &call, on_done, &tags[tag]), 0);
}

Test(http_client, async_slow_peer_does_not_delay_fast_peer)
{
    struct cm_http_client_config cfg = {.timeout_ms = WAIT_S * 1000};
    struct cm_http_server *slow = start_server();
    struct cm_http_async *a;
    char us[128], uf[128];

    cr_assert_eq(cm_http_async_new(&cfg, &a), 0);
    url_of(us, sizeof(us), slow, "/slow");
    url_of(uf, sizeof(uf), srv, "/ok");
    /* The slow peer is asked first; its answer waits until this test gives it. */
    submit(a, "POST", us, 0);
    cr_assert(wait_until(&nheld, 1));
    for (int i = 1; i <= 20; i++)
        submit(a, "GET", uf, i);
    cr_assert(wait_until(&rec.n, 20));
    for (int i = 1; i <= 20; i++)
        cr_assert_eq(result_of(i), 0);
    cr_assert(!completed(0), "the slow request cannot be done: its answer is not given yet");

    pthread_mutex_lock(&mu);
    struct cm_http_deferred *d = held[--nheld];
    pthread_mutex_unlock(&mu);
    cm_http_deferred_json(d, 200, NULL);
    cr_assert(wait_until(&rec.n, 21));
    cr_assert_eq(result_of(0), 0);
    cm_http_async_free(a);
    cm_http_server_free(slow);
}

Test(http_client, async_dead_peer_does_not_delay_others_and_free_cancels)
{
    struct cm_http_client_config cfg = {.timeout_ms = WAIT_S * 1000};
    struct cm_http_async *a;
    char dead[64], uf[128];
    int fd, port = bound_port(&fd, true); /* accepts, never answers */

    cr_assert_eq(cm_http_async_new(&cfg, &a), 0);
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d/x", port);
    url_of(uf, sizeof(uf), srv, "/ok");
    submit(a, "GET", dead, 0);
    for (int i = 1; i <= 10; i++)
        submit(a, "GET", uf, i);
    cr_assert(wait_until(&rec.n, 10));
    cr_assert(!completed(0));
    /* Freeing the engine ends the stuck request before it returns. */
    cm_http_async_free(a);
    cr_assert_eq(rec.n, 11);
    cr_assert_eq(result_of(0), CM_E_CANCELED);
    close(fd);
}

static int no_upload(void *ctx, char *buf, size_t cap, size_t *n)
{
    (void)ctx;
    (void)buf;
    (void)cap;
    *n = 0;
    return 0;
}

Test(http_client, async_results_and_errors)
{
    struct cm_http_client_config cfg = {.timeout_ms = 300};
    struct cm_http_async *a;
    char u[128], refused[64], silent[64];
    int fd1, fd2;
    int p1 = bound_port(&fd1, false), p2 = bound_port(&fd2, true);

    cr_assert_eq(cm_http_async_new(&cfg, &a), 0);
    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/x", p1);
    snprintf(silent, sizeof(silent), "http://127.0.0.1:%d/x", p2);
    url_of(u, sizeof(u), srv, "/notleader");
    submit(a, "GET", u, 0);
    submit(a, "GET", refused, 1);
    submit(a, "GET", silent, 2);
    url_of(u, sizeof(u), srv, "/text");
    submit(a, "GET", u, 3);
    cr_assert(wait_until(&rec.n, 4));
    cr_assert_eq(result_of(0), CM_E_NOT_LEADER);
    cr_assert_str_eq(rec.hint, "127.0.0.1:7001");
    cr_assert_eq(result_of(1), CM_E_CONNECT);
    cr_assert_eq(result_of(2), CM_E_TIMEOUT);
    cr_assert_eq(result_of(3), CM_E_PROTO);

    /* Bodies are copied at submit. */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "k", "v");
    url_of(u, sizeof(u), srv, "/echo");
    struct cm_http_call call = {.url = u, .json = j};
    tags[4].tag = 4;
    cr_assert_eq(cm_http_async_submit(a, &call, on_done, &tags[4]), 0);
    cJSON_Delete(j);
    memset(u, 0, sizeof(u));
    cr_assert(wait_until(&rec.n, 5));
    cr_assert_eq(result_of(4), 0);

    struct cm_http_call stream = {.url = u, .upload = no_upload};
    cr_assert_eq(cm_http_async_submit(a, &stream, on_done, NULL), CM_E_NOTSUP);
    cr_assert_eq(cm_http_async_submit(a, &call, NULL, NULL), CM_E_INVAL);
    cm_http_async_free(a);
    close(fd1);
    close(fd2);
}

Test(http_client, async_keeps_connections_alive)
{
    struct cm_http_client_config cfg = {.timeout_ms = WAIT_S * 1000};
    struct cm_http_server_stats st;
    struct cm_http_async *a;
    char u[128];

    cr_assert_eq(cm_http_async_new(&cfg, &a), 0);
    url_of(u, sizeof(u), srv, "/ok");
    for (int i = 0; i < 20; i++) {
        submit(a, "GET", u, i);
        cr_assert(wait_until(&rec.n, (size_t)i + 1));
        cr_assert_eq(result_of(i), 0);
    }
    cm_http_server_stats(srv, &st);
    cr_assert_eq(st.connections, 1);
    cr_assert_eq(st.requests, 20);
    cm_http_async_free(a);
}

struct chain {
    struct cm_http_async *a;
    char url[128];
    int left;
    int tag;
};

static struct chain chain_ctx;

/* Each completion submits the next request from the engine thread. */
static void on_chain(void *ctx, int err, struct cm_http_response *resp)
{
    struct chain *c = ctx;
    struct cm_http_call call = {.url = c->url};

    (void)resp;
    tags[c->tag].tag = c->tag;
    on_done(&tags[c->tag], err, resp);
    c->tag++;
    if (--c->left > 0)
        cr_assert_eq(cm_http_async_submit(c->a, &call, on_chain, c), 0);
}

Test(http_client, async_submit_from_a_callback_and_many_at_once)
{
    struct cm_http_client_config cfg = {.timeout_ms = WAIT_S * 1000};
    struct cm_http_async *a;
    struct cm_http_call call = {0};

    cr_assert_eq(cm_http_async_new(&cfg, &a), 0);
    chain_ctx.a = a;
    chain_ctx.left = 5;
    url_of(chain_ctx.url, sizeof(chain_ctx.url), srv, "/ok");
    call.url = chain_ctx.url;
    cr_assert_eq(cm_http_async_submit(a, &call, on_chain, &chain_ctx), 0);
    cr_assert(wait_until(&rec.n, 5));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(result_of(i), 0);

    for (int i = 5; i < 69; i++)
        submit(a, "GET", chain_ctx.url, i);
    cr_assert(wait_until(&rec.n, 69));
    for (int i = 5; i < 69; i++)
        cr_assert_eq(result_of(i), 0, "request %d", i);
    cm_http_async_free(a);
    cm_http_async_free(NULL);
}

/* ---- a streamed body sent again on a new connection ---- */

#define REWIND_BODY 20000

struct body_src {
    char data[REWIND_BODY];
    size_t pos;
    int rewinds;
};

static int body_read(void *ctx, char *buf, size_t cap, size_t *n)
{
    struct body_src *b = ctx;
    size_t k = REWIND_BODY - b->pos < cap ? REWIND_BODY - b->pos : cap;
    if (k > 1000)
        k = 1000; /* several callbacks, as a pipeline hop feeds it */
    memcpy(buf, b->data + b->pos, k);
    b->pos += k;
    *n = k;
    return 0;
}

static int body_rewind(void *ctx)
{
    struct body_src *b = ctx;
    b->pos = 0;
    b->rewinds++;
    return 0;
}

struct closing_peer {
    int lfd;
    const char *want; /* the body the second connection must bring */
    bool body_ok;
    pthread_t t;
};

/* Reads a PUT of REWIND_BODY bytes into buf (2 * REWIND_BODY): *body is where its body starts;
 * returns the body bytes that came. */
static size_t read_put(int fd, char *buf, char **body)
{
    size_t got = read_head(fd, buf, 2 * REWIND_BODY), have;
    char *end = strstr(buf, "\r\n\r\n");

    if (end == NULL)
        return 0;
    *body = end + 4;
    have = got - (size_t)(*body - buf);
    while (have < REWIND_BODY) {
        ssize_t n = recv(fd, *body + have, REWIND_BODY - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    return have;
}

/* Answers a first request with keep-alive, then closes that connection when the next request
 * arrives on it, without an answer (as a peer restarting or timing the connection out does);
 * answers the request when it comes again on a new connection, checking its whole body. */
static void *closing_peer_run(void *arg)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\n\r\n{}";
    struct closing_peer *p = arg;
    char *buf = malloc(2 * REWIND_BODY), *body;
    int fd = accept(p->lfd, NULL, NULL);

    read_head(fd, buf, 2 * REWIND_BODY);
    send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
    /* The whole PUT (so that the close is a clean end, not a reset), then gone. */
    read_put(fd, buf, &body);
    close(fd);
    fd = accept(p->lfd, NULL, NULL);
    size_t have = read_put(fd, buf, &body);
    p->body_ok = have == REWIND_BODY && memcmp(body, p->want, REWIND_BODY) == 0;
    send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
    close(fd);
    free(buf);
    return NULL;
}

static int put_across_a_closed_connection(struct body_src *b, bool rewindable, bool *body_ok)
{
    struct closing_peer p = {.want = b->data};
    struct cm_http_client_config cfg = {0};
    struct cm_http_client *c;
    struct cm_http_response r = {0};
    char u[64];
    int port = bound_port(&p.lfd, true), rc;

    cr_assert_eq(cm_http_client_new(&cfg, &c), 0);
    pthread_create(&p.t, NULL, closing_peer_run, &p);
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", port);
    cr_assert_eq(cm_http_get_json(c, u, &r), 0);
    cm_http_response_clear(&r);
    struct cm_http_call put = {.method = "PUT",
                               .url = u,
                               .upload = body_read,
                               .upload_ctx = b,
                               .upload_len = REWIND_BODY,
                               .upload_rewind = rewindable ? body_rewind : NULL};
    rc = cm_http_call(c, &put, &r);
    cm_http_response_clear(&r);
    if (rc != 0) {
        /* the peer waits for a second connection */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
    }
    pthread_join(p.t, NULL);
    close(p.lfd);
    cm_http_client_free(c);
    *body_ok = p.body_ok;
    return rc;
}

Test(http_client, streamed_body_is_sent_again_when_a_kept_connection_closed)
{
    struct body_src *b = calloc(1, sizeof(*b));
    bool body_ok = false;

    for (size_t i = 0; i < REWIND_BODY; i++)
        b->data[i] = (char)('a' + i % 26);
    int rc = put_across_a_closed_connection(b, true, &body_ok);
    cr_assert_eq(rc, 0, "%s after %d rewinds", cm_errname(rc), b->rewinds);
    cr_assert(body_ok, "the new connection got the whole body, from its start");
    cr_assert_geq(b->rewinds, 1);

    /* Without a way back to the start, the request fails rather than send a partial body. */
    b->pos = 0;
    b->rewinds = 0;
    cr_assert_neq(put_across_a_closed_connection(b, false, &body_ok), 0);
    free(b);
}
