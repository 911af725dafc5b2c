/* Throughput and latency of the HTTP stack: small JSON POSTs echoed by cm_http_server, sent by
 * N threads through one cm_http_client over keep-alive loopback connections. With --serve the
 * program only runs the echo server (for wrk or another client) until SIGINT or SIGTERM.
 *
 *   bench_http [--threads N] [--seconds S | --requests R] [--server-threads K]
 *   bench_http --serve PORT [--server-threads K]
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"

struct opts {
    unsigned threads;
    double seconds;
    uint64_t requests; /* total; 0: run for seconds */
    unsigned server_threads;
    int serve_port; /* > 0: server only */
};

/* The echo route: answers {"seq":n,"ok":true} for {"seq":n,...}. */
static int h_echo(struct cm_http_req *req, void *data)
{
    uint64_t seq = 0;
    cJSON *o;
    int rc;

    (void)data;
    rc = cm_json_get_u64(cm_http_req_json(req), "seq", &seq);
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    if (o == NULL || cm_json_add_u64(o, "seq", seq) < 0 || !cJSON_AddTrueToObject(o, "ok")) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    return cm_http_answer_json(req, 200, o);
}

static const struct cm_http_route routes[] = {
    {.method = "POST", .pattern = "/echo", .flags = CM_HTTP_JSON, .handler = h_echo},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct worker {
    pthread_t t;
    struct cm_http_client *cli;
    const char *url;
    const struct opts *o;
    double stop_at;
    uint64_t quota; /* requests for this thread; 0: until stop_at */
    uint64_t done;
    uint64_t errors;
    uint32_t *lat_us; /* one entry per request */
    size_t lat_cap;
};

static int record(struct worker *w, uint32_t us)
{
    if (w->done == w->lat_cap) {
        size_t cap = w->lat_cap ? w->lat_cap * 2 : 65536;
        uint32_t *n = realloc(w->lat_us, cap * sizeof(*n));
        if (n == NULL)
            return CM_E_NOMEM;
        w->lat_us = n;
        w->lat_cap = cap;
    }
    w->lat_us[w->done++] = us;
    return 0;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    cJSON *body = cJSON_CreateObject();
    cJSON *seq = cJSON_AddNumberToObject(body, "seq", 0);

    cJSON_AddStringToObject(body, "op", "ping");
    cJSON_AddStringToObject(body, "path", "/some/dir/file.txt");
    for (uint64_t i = 0;; i++) {
        struct cm_http_response r;
        uint64_t got = UINT64_MAX;
        double t0, t1;

        if (w->quota ? w->done + w->errors >= w->quota : (i % 64 == 0 && now_s() >= w->stop_at))
            break;
        cJSON_SetNumberValue(seq, (double)i);
        t0 = now_s();
        int rc = cm_http_post_json(w->cli, w->url, body, &r);
        t1 = now_s();
        if (rc != 0 || cm_json_get_u64(r.json, "seq", &got) != 0 || got != i)
            w->errors++;
        else if (record(w, (uint32_t)((t1 - t0) * 1e6)) < 0)
            w->errors++;
        cm_http_response_clear(&r);
    }
    cJSON_Delete(body);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int start_server(const struct opts *o, uint16_t port, struct cm_http_server **out)
{
    struct cm_http_server_config cfg = {
        .bind_addr = "127.0.0.1",
        .port = port,
        .threads = o->server_threads,
    };
    struct cm_http_server *srv;
    int rc = cm_http_server_new(&cfg, &srv);

    if (rc < 0)
        return rc;
    rc = cm_http_server_add_routes(srv, routes, 1);
    if (rc == 0)
        rc = cm_http_server_start(srv);
    if (rc < 0) {
        cm_http_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

static int serve(const struct opts *o)
{
    struct cm_http_server *srv;
    sigset_t set;
    int sig = 0, rc;

    /* A shell starts background jobs with SIGINT ignored; an ignored signal never becomes
     * pending, so restore the default before waiting for it. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before the server threads inherit the mask */
    rc = start_server(o, (uint16_t)o->serve_port, &srv);
    if (rc < 0) {
        fprintf(stderr, "bench_http: cannot serve: %s\n", cm_strerror(rc));
        return 1;
    }
    printf("serving POST http://127.0.0.1:%u/echo with %u thread(s); Ctrl-C stops\n",
           cm_http_server_port(srv), o->server_threads ? o->server_threads : 1);
    fflush(stdout);
    sigwait(&set, &sig);
    cm_http_server_free(srv);
    return 0;
}

static int bench(const struct opts *o)
{
    struct cm_http_client_config ccfg = {.max_idle = o->threads + 4};
    struct cm_http_server_stats st;
    struct cm_http_server *srv = NULL;
    struct cm_http_client *cli = NULL;
    struct worker *w = NULL;
    uint32_t *all = NULL;
    uint64_t total = 0, errors = 0;
    char url[64];
    double t0, t1;
    int rc, ret = 1;

    rc = start_server(o, 0, &srv);
    if (rc == 0)
        rc = cm_http_client_new(&ccfg, &cli);
    if (rc < 0) {
        fprintf(stderr, "bench_http: %s\n", cm_strerror(rc));
        goto done;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/echo", cm_http_server_port(srv));
    w = calloc(o->threads, sizeof(*w));
    if (w == NULL)
        goto done;
    t0 = now_s();
    for (unsigned i = 0; i < o->threads; i++) {
        w[i].cli = cli;
        w[i].url = url;
        w[i].o = o;
        w[i].stop_at = t0 + o->seconds;
        w[i].quota = o->requests ? o->requests / o->threads + (i < o->requests % o->threads) : 0;
        pthread_create(&w[i].t, NULL, run_worker, &w[i]);
    }
    for (unsigned i = 0; i < o->threads; i++) {
        pthread_join(w[i].t, NULL);
        total += w[i].done;
        errors += w[i].errors;
    }
    t1 = now_s();
    all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL)
        goto done;
    for (unsigned i = 0, k = 0; i < o->threads; i++)
        for (uint64_t j = 0; j < w[i].done; j++)
            all[k++] = w[i].lat_us[j];
    qsort(all, total, sizeof(*all), cmp_u32);
    cm_http_server_stats(srv, &st);
    printf("threads %u, server threads %u, %.2f s: %llu requests, %llu errors\n", o->threads,
           o->server_threads ? o->server_threads : 1, t1 - t0, (unsigned long long)total,
           (unsigned long long)errors);
    if (total > 0)
        printf("%.0f requests/s  latency p50 %u us  p99 %u us  p99.9 %u us  max %u us\n",
               (double)total / (t1 - t0), all[total / 2], all[total * 99 / 100],
               all[total * 999 / 1000], all[total - 1]);
    printf("client connections %llu, server connections %llu\n",
           (unsigned long long)cm_http_client_connections(cli), (unsigned long long)st.connections);
    ret = errors ? 1 : 0;

done:
    if (w != NULL)
        for (unsigned i = 0; i < o->threads; i++)
            free(w[i].lat_us);
    free(w);
    free(all);
    cm_http_client_free(cli);
    cm_http_server_free(srv);
    return ret;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_http [--threads N] [--seconds S | --requests R] "
                    "[--server-threads K]\n"
                    "       bench_http --serve PORT [--server-threads K]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct opts o = {.threads = 4, .seconds = 5, .server_threads = 1};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        if (strcmp(a, "--threads") == 0)
            o.threads = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            o.seconds = strtod(v, NULL);
        else if (strcmp(a, "--requests") == 0)
            o.requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--server-threads") == 0)
            o.server_threads = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--serve") == 0)
            o.serve_port = atoi(v);
        else
            return usage();
        i++;
    }
    if (o.threads == 0 || (o.requests == 0 && o.seconds <= 0) || o.serve_port < 0 ||
        o.serve_port > 65535)
        return usage();
    cm_log_init("bench", CM_LOG_WARN);
    return o.serve_port > 0 ? serve(&o) : bench(&o);
}
