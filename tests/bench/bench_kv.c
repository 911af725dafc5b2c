/* Load generator for committed writes: N client threads doing sequential puts over keep-alive
 * against dfs-master's /v1/kv/put or etcd's /v3/kv/put gateway, reporting puts/s and latency
 * percentiles. A benchmark, not a test.
 *
 *   bench_kv --target dfs|etcd --url http://127.0.0.1:PORT --clients N --seconds S
 *            [--value-size B] [--json]
 * For dfs, --url may list several masters (comma-separated): the leader is found by its hint. */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/errors.h"
#include "common/http_client.h"
#include "common/json.h"

struct opts {
    bool etcd;
    char urls[8][128];
    int n_urls;
    int clients;
    int seconds;
    int value_size;
    bool json;
};

struct worker {
    const struct opts *o;
    struct cm_http_client *http;
    int idx;
    pthread_t th;
    uint64_t ops, errors;
    uint32_t *lat_us; /* one per op, up to cap */
    size_t n_lat, cap_lat;
    int leader; /* index into o->urls */
};

static volatile bool stop;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int put_dfs(struct worker *w, uint64_t seq, const char *key, const char *value)
{
    char client[32], url[256];
    snprintf(client, sizeof(client), "bench-%d-%d", (int)getpid(), w->idx);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "key", key);
    cJSON_AddStringToObject(b, "value", value);
    cJSON_AddStringToObject(b, "client", client);
    cm_json_add_u64(b, "seq", seq);
    int rc = CM_E_UNAVAILABLE;
    for (int attempt = 0; attempt < 2 * w->o->n_urls + 2 && !stop; attempt++) {
        snprintf(url, sizeof(url), "%s/v1/kv/put", w->o->urls[w->leader]);
        struct cm_http_response r = {0};
        rc = cm_http_post_json(w->http, url, b, &r);
        const char *hint = NULL;
        if (rc == CM_E_NOT_LEADER && r.error != NULL &&
            cm_json_get_str(r.error, "leader_hint", 128, &hint, NULL) == 0) {
            for (int i = 0; i < w->o->n_urls; i++)
                if (strstr(w->o->urls[i], hint) != NULL)
                    w->leader = i;
        } else if (rc != 0) {
            w->leader = (w->leader + 1) % w->o->n_urls;
        }
        cm_http_response_clear(&r);
        if (rc == 0)
            break;
    }
    cJSON_Delete(b);
    return rc;
}

static int put_etcd(struct worker *w, const char *key, const char *value)
{
    char url[256];
    char k64[256], v64[8192];
    cm_b64_encode(key, strlen(key), k64);
    cm_b64_encode(value, strlen(value), v64);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "key", k64);
    cJSON_AddStringToObject(b, "value", v64);
    snprintf(url, sizeof(url), "%s/v3/kv/put", w->o->urls[w->leader]);
    struct cm_http_response r = {0};
    int rc = cm_http_post_json(w->http, url, b, &r);
    cm_http_response_clear(&r);
    cJSON_Delete(b);
    return rc;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char key[64];
    char *value = malloc((size_t)w->o->value_size + 1);
    memset(value, 'v', (size_t)w->o->value_size);
    value[w->o->value_size] = 0;
    for (uint64_t seq = 1; !stop; seq++) {
        snprintf(key, sizeof(key), "bench/%d/%llu", w->idx, (unsigned long long)(seq % 1000));
        uint64_t t0 = now_us();
        int rc = w->o->etcd ? put_etcd(w, key, value) : put_dfs(w, seq, key, value);
        uint64_t dt = now_us() - t0;
        if (stop)
            break;
        if (rc != 0) {
            w->errors++;
            continue;
        }
        w->ops++;
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 4096;
            w->lat_us = realloc(w->lat_us, w->cap_lat * sizeof(*w->lat_us));
        }
        w->lat_us[w->n_lat++] = (uint32_t)(dt > UINT32_MAX ? UINT32_MAX : dt);
    }
    free(value);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct opts o = {.clients = 1, .seconds = 5, .value_size = 64};
    static const struct option lo[] = {
        {"target", required_argument, NULL, 't'}, {"url", required_argument, NULL, 'u'},
        {"clients", required_argument, NULL, 'c'}, {"seconds", required_argument, NULL, 's'},
        {"value-size", required_argument, NULL, 'v'}, {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 't':
            o.etcd = strcmp(optarg, "etcd") == 0;
            break;
        case 'u': {
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && o.n_urls < 8;
                 t = strtok_r(NULL, ",", &save))
                snprintf(o.urls[o.n_urls++], sizeof(o.urls[0]), "%s", t);
            free(copy);
            break;
        }
        case 'c':
            o.clients = atoi(optarg);
            break;
        case 's':
            o.seconds = atoi(optarg);
            break;
        case 'v':
            o.value_size = atoi(optarg);
            break;
        case 'j':
            o.json = true;
            break;
        default:
            fprintf(stderr, "usage: bench_kv --target dfs|etcd --url URL[,URL...] "
                            "[--clients N] [--seconds S] [--value-size B] [--json]\n");
            return 2;
        }
    }
    if (o.n_urls == 0 || o.clients < 1 || o.seconds < 1 || o.value_size < 1 ||
        o.value_size > 4096) {
        fprintf(stderr, "bench_kv: --url is required; clients, seconds >= 1; value 1-4096\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)o.clients, sizeof(*ws));
    struct cm_http_client_config cc = {.timeout_ms = 10000};
    for (int i = 0; i < o.clients; i++) {
        ws[i].o = &o;
        ws[i].idx = i;
        if (cm_http_client_new(&cc, &ws[i].http) != 0)
            return 1;
    }
    uint64_t t0 = now_us();
    for (int i = 0; i < o.clients; i++)
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    struct timespec d = {.tv_sec = o.seconds};
    nanosleep(&d, NULL);
    stop = true;
    for (int i = 0; i < o.clients; i++)
        pthread_join(ws[i].th, NULL);
    double secs = (double)(now_us() - t0) / 1e6;
    uint64_t ops = 0, errs = 0;
    size_t n = 0;
    for (int i = 0; i < o.clients; i++) {
        ops += ws[i].ops;
        errs += ws[i].errors;
        n += ws[i].n_lat;
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < o.clients; i++) {
        memcpy(all + k, ws[i].lat_us, ws[i].n_lat * sizeof(*all));
        k += ws[i].n_lat;
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    double p50 = n ? all[n / 2] / 1000.0 : 0, p99 = n ? all[(size_t)(n * 0.99)] / 1000.0 : 0;
    if (o.json)
        printf("{\"target\":\"%s\",\"clients\":%d,\"puts_per_s\":%.1f,\"p50_ms\":%.3f,"
               "\"p99_ms\":%.3f,\"errors\":%llu}\n",
               o.etcd ? "etcd" : "dfs", o.clients, (double)ops / secs, p50, p99,
               (unsigned long long)errs);
    else
        printf("%-5s clients=%-3d puts/s=%9.1f  p50=%7.3f ms  p99=%7.3f ms  errors=%llu\n",
               o.etcd ? "etcd" : "dfs", o.clients, (double)ops / secs, p50, p99,
               (unsigned long long)errs);
    for (int i = 0; i < o.clients; i++) {
        cm_http_client_free(ws[i].http);
        free(ws[i].lat_us);
    }
    free(ws);
    free(all);
    return 0;
}
