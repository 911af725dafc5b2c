/* Metadata operations through the masters' client API: N client threads each create files in
 * their own directory (committed through Raft), then stat them (linearizable reads), reporting
 * creates/s and stats/s. A benchmark, not a test.
 *   bench_fs --url http://127.0.0.1:PORT[,...] [--clients N] [--files-per-client F] */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/json.h"

struct opts {
    char urls[8][128];
    int n_urls;
    int clients;
    int files;
};

struct worker {
    const struct opts *o;
    struct cm_http_client *http;
    int idx;
    int leader;
    uint64_t client, seq;
    uint64_t dir_ino, dir_gen;
    uint64_t *inos, *gens;
    uint64_t errors;
    pthread_t th;
};

static pthread_barrier_t barrier;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* POSTs body to path at the leader (following hints); *out gets the answer JSON. */
static int call(struct worker *w, const char *path, cJSON *body, cJSON **out)
{
    int rc = CM_E_UNAVAILABLE;
    for (int attempt = 0; attempt < 4 * w->o->n_urls + 4; attempt++) {
        char url[256];
        snprintf(url, sizeof(url), "%s%s", w->o->urls[w->leader], path);
        struct cm_http_response r = {0};
        rc = cm_http_post_json(w->http, url, body, &r);
        const char *hint = NULL;
        if (rc == 0 && out != NULL) {
            *out = r.json;
            r.json = NULL;
        } else if (rc == CM_E_NOT_LEADER && r.error != NULL &&
                   cm_json_get_str(r.error, "leader_hint", 128, &hint, NULL) == 0) {
            for (int i = 0; i < w->o->n_urls; i++)
                if (strstr(w->o->urls[i], hint) != NULL)
                    w->leader = i;
        } else if (rc != 0) {
            w->leader = (w->leader + 1) % w->o->n_urls;
        }
        cm_http_response_clear(&r);
        if (rc != CM_E_NOT_LEADER && rc != CM_E_UNAVAILABLE && rc != CM_E_CONNECT)
            break;
    }
    return rc;
}

static int attr_of(const cJSON *ans, uint64_t *ino, uint64_t *gen)
{
    const cJSON *a;
    if (cm_json_get_object(ans, "attr", &a) != 0 || cm_json_get_u64(a, "ino", ino) != 0 ||
        cm_json_get_u64(a, "gen", gen) != 0)
        return CM_E_PROTO;
    return 0;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char name[64];
    cJSON *b = cJSON_CreateObject(), *ans = NULL;
    snprintf(name, sizeof(name), "bench-%d-%d", (int)getpid(), w->idx);
    cm_json_add_u64(b, "client", w->client);
    cm_json_add_u64(b, "seq", ++w->seq);
    cm_json_add_u64(b, "parent", 1);
    cm_json_add_u64(b, "pgen", 1);
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddNumberToObject(b, "mode", 0755);
    if (call(w, "/v1/fs/mkdir", b, &ans) != 0 || attr_of(ans, &w->dir_ino, &w->dir_gen) != 0) {
        fprintf(stderr, "bench_fs: mkdir %s failed\n", name);
        exit(1);
    }
    cJSON_Delete(ans);
    cJSON_Delete(b);
    pthread_barrier_wait(&barrier); /* creates start together */
    for (int i = 0; i < w->o->files; i++) {
        snprintf(name, sizeof(name), "f%06d", i);
        b = cJSON_CreateObject();
        cm_json_add_u64(b, "client", w->client);
        cm_json_add_u64(b, "seq", ++w->seq);
        cm_json_add_u64(b, "parent", w->dir_ino);
        cm_json_add_u64(b, "pgen", w->dir_gen);
        cJSON_AddStringToObject(b, "name", name);
        cJSON_AddNumberToObject(b, "mode", 0644);
        ans = NULL;
        int rc = call(w, "/v1/fs/create", b, &ans);
        if (rc == 0)
            rc = attr_of(ans, &w->inos[i], &w->gens[i]);
        if (rc != 0 && w->errors++ == 0)
            fprintf(stderr, "bench_fs: create failed: %s\n", cm_errname(rc));
        cJSON_Delete(ans);
        cJSON_Delete(b);
    }
    pthread_barrier_wait(&barrier); /* stats start together */
    for (int i = 0; i < w->o->files; i++) {
        b = cJSON_CreateObject();
        cm_json_add_u64(b, "ino", w->inos[i]);
        cm_json_add_u64(b, "gen", w->gens[i]);
        ans = NULL;
        int rc = call(w, "/v1/fs/getattr", b, &ans);
        if (rc != 0 && w->errors++ == 0)
            fprintf(stderr, "bench_fs: getattr failed: %s\n", cm_errname(rc));
        cJSON_Delete(ans);
        cJSON_Delete(b);
    }
    pthread_barrier_wait(&barrier);
    return NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {.clients = 1, .files = 2000};
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},
        {"clients", required_argument, NULL, 'c'},
        {"files-per-client", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'u') {
            char *copy = strdup(optarg), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && o.n_urls < 8;
                 t = strtok_r(NULL, ",", &save))
                snprintf(o.urls[o.n_urls++], sizeof(o.urls[0]), "%s", t);
            free(copy);
        } else if (ch == 'c') {
            o.clients = atoi(optarg);
        } else if (ch == 'f') {
            o.files = atoi(optarg);
        } else {
            fprintf(stderr, "usage: bench_fs --url URL[,URL...] [--clients N] "
                            "[--files-per-client F]\n");
            return 2;
        }
    }
    if (o.n_urls == 0 || o.clients < 1 || o.clients > 256 || o.files < 1) {
        fprintf(stderr, "bench_fs: --url is required; 1-256 clients; files >= 1\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)o.clients, sizeof(*ws));
    struct cm_http_client_config cc = {.timeout_ms = 10000};
    uint64_t base = ((uint64_t)getpid() << 20) ^ now_us();
    pthread_barrier_init(&barrier, NULL, (unsigned)o.clients + 1);
    for (int i = 0; i < o.clients; i++) {
        ws[i].o = &o;
        ws[i].idx = i;
        ws[i].client = base + (uint64_t)i + 1; /* distinct, never 0 */
        ws[i].inos = calloc((size_t)o.files, sizeof(uint64_t));
        ws[i].gens = calloc((size_t)o.files, sizeof(uint64_t));
        if (cm_http_client_new(&cc, &ws[i].http) != 0)
            return 1;
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    pthread_barrier_wait(&barrier);
    uint64_t t0 = now_us();
    pthread_barrier_wait(&barrier);
    uint64_t t1 = now_us();
    pthread_barrier_wait(&barrier);
    uint64_t t2 = now_us();
    uint64_t errors = 0, n = (uint64_t)o.clients * (uint64_t)o.files;
    for (int i = 0; i < o.clients; i++) {
        pthread_join(ws[i].th, NULL);
        errors += ws[i].errors;
        cm_http_client_free(ws[i].http);
        free(ws[i].inos);
        free(ws[i].gens);
    }
    printf("clients=%-3d files=%-7" PRIu64 " creates/s=%9.1f  stats/s=%9.1f  errors=%" PRIu64 "\n",
           o.clients, n, (double)n * 1e6 / (double)(t1 - t0), (double)n * 1e6 / (double)(t2 - t1),
           errors);
    free(ws);
    return errors != 0;
}
