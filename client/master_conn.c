/* The leader-following master connection: a cached leader address, hint following, rounds over
 * the resolved master list with exponential backoff and jitter under one operation deadline. */
#include "client/master_conn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/resolver.h"

#define PATH_MAX_LEN 512
#define URL_MAX      (DFS_MC_ADDR_MAX + PATH_MAX_LEN + 16)

struct dfs_master_conn {
    struct cm_resolver *res;
    struct cm_http_client *http;
    long op_timeout_ms;
    long call_timeout_ms;
    long backoff_min_ms;
    long backoff_max_ms;
    pthread_mutex_t mu; /* leader, rng, canceled */
    pthread_cond_t cv;  /* wakes backoff waits on cancel */
    bool canceled;
    char leader[DFS_MC_ADDR_MAX]; /* "" when unknown */
    size_t next;                  /* where the next round over the list starts */
    uint64_t rng;
    atomic_uint_fast64_t ops, attempts, hint_follows, backoffs, failures;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter only, never security. Called with mu held. */
static uint64_t next_rand(struct dfs_master_conn *mc)
{
    uint64_t x = mc->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    mc->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int dfs_master_conn_new(const struct dfs_master_conn_config *cfg, struct dfs_master_conn **out)
{
    struct cm_resolver_opts ropts = {0};
    struct cm_http_client_config hcfg = {0};
    struct dfs_master_conn *mc;
    int rc;

    if (cfg == NULL || out == NULL || cfg->masters == NULL || cfg->op_timeout_ms < 0 ||
        cfg->call_timeout_ms < 0 || cfg->connect_timeout_ms < 0 || cfg->backoff_min_ms < 0 ||
        cfg->backoff_max_ms < 0)
        return CM_E_INVAL;
    mc = calloc(1, sizeof(*mc));
    if (mc == NULL)
        return CM_E_NOMEM;
    mc->op_timeout_ms = cfg->op_timeout_ms ? cfg->op_timeout_ms : DFS_MC_DEFAULT_OP_TIMEOUT_MS;
    mc->call_timeout_ms =
        cfg->call_timeout_ms ? cfg->call_timeout_ms : DFS_MC_DEFAULT_CALL_TIMEOUT_MS;
    mc->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : DFS_MC_DEFAULT_BACKOFF_MIN_MS;
    mc->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DFS_MC_DEFAULT_BACKOFF_MAX_MS;
    if (mc->backoff_max_ms < mc->backoff_min_ms)
        mc->backoff_max_ms = mc->backoff_min_ms;
    mc->rng = cfg->seed ? cfg->seed : (now_ms() << 20) ^ (uint64_t)getpid() ^ (uintptr_t)mc;
    if (mc->rng == 0)
        mc->rng = 1;
    atomic_init(&mc->ops, 0);
    atomic_init(&mc->attempts, 0);
    atomic_init(&mc->hint_follows, 0);
    atomic_init(&mc->backoffs, 0);
    atomic_init(&mc->failures, 0);

    ropts.servers = cfg->dns_servers;
    rc = cm_resolver_new(cfg->masters, &ropts, &mc->res);
    if (rc < 0)
        goto fail_free;
    hcfg.connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DFS_MC_DEFAULT_CONNECT_TIMEOUT_MS;
    hcfg.timeout_ms = mc->call_timeout_ms;
    hcfg.secret = cfg->secret;
    rc = cm_http_client_new(&hcfg, &mc->http);
    if (rc < 0)
        goto fail_resolver;
    rc = CM_E_NOMEM;
    if (pthread_mutex_init(&mc->mu, NULL) != 0)
        goto fail_http;
    if (pthread_cond_init(&mc->cv, NULL) != 0)
        goto fail_mutex;
    *out = mc;
    return 0;

fail_mutex:
    pthread_mutex_destroy(&mc->mu);
fail_http:
    cm_http_client_free(mc->http);
fail_resolver:
    cm_resolver_free(mc->res);
fail_free:
    free(mc);
    return rc;
}

void dfs_master_conn_free(struct dfs_master_conn *mc)
{
    if (mc == NULL)
        return;
    pthread_cond_destroy(&mc->cv);
    pthread_mutex_destroy(&mc->mu);
    cm_http_client_free(mc->http);
    cm_resolver_free(mc->res);
    free(mc);
}

void dfs_master_conn_cancel(struct dfs_master_conn *mc)
{
    pthread_mutex_lock(&mc->mu);
    mc->canceled = true;
    pthread_cond_broadcast(&mc->cv);
    pthread_mutex_unlock(&mc->mu);
}

int dfs_master_conn_leader(struct dfs_master_conn *mc, char *buf, size_t cap)
{
    int rc = 0;

    pthread_mutex_lock(&mc->mu);
    if (mc->leader[0] == '\0')
        rc = CM_E_NOENT;
    else if (strlen(mc->leader) >= cap)
        rc = CM_E_RANGE;
    else
        memcpy(buf, mc->leader, strlen(mc->leader) + 1);
    pthread_mutex_unlock(&mc->mu);
    return rc;
}

void dfs_master_conn_stats(struct dfs_master_conn *mc, struct dfs_master_conn_stats *out)
{
    out->ops = atomic_load(&mc->ops);
    out->attempts = atomic_load(&mc->attempts);
    out->hint_follows = atomic_load(&mc->hint_follows);
    out->backoffs = atomic_load(&mc->backoffs);
    out->failures = atomic_load(&mc->failures);
}

static void set_leader(struct dfs_master_conn *mc, const char *addr)
{
    pthread_mutex_lock(&mc->mu);
    if (strcmp(mc->leader, addr) != 0) {
        LOG_INFO("masters: leader is %s", addr);
        snprintf(mc->leader, sizeof(mc->leader), "%s", addr);
    }
    pthread_mutex_unlock(&mc->mu);
}

/* Forgets the cached leader if it is still addr. */
static void drop_leader(struct dfs_master_conn *mc, const char *addr)
{
    pthread_mutex_lock(&mc->mu);
    if (strcmp(mc->leader, addr) == 0)
        mc->leader[0] = '\0';
    pthread_mutex_unlock(&mc->mu);
}

/* A peer-supplied "host:port" made safe for a URL: one well-formed endpoint, IPv6 bracketed. */
static int hint_addr(const char *hint, char *out, size_t cap)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    int len;

    if (cm_endpoints_parse(hint, &hp, &n) < 0)
        return CM_E_PROTO;
    if (n != 1) {
        free(hp);
        return CM_E_PROTO;
    }
    if (strchr(hp[0].host, ':') != NULL)
        len = snprintf(out, cap, "[%s]:%u", hp[0].host, hp[0].port);
    else
        len = snprintf(out, cap, "%s:%u", hp[0].host, hp[0].port);
    free(hp);
    return len > 0 && (size_t)len < cap ? 0 : CM_E_PROTO;
}

/* The address to reach endpoint i at: its first resolved address, resolving it if none is
 * known yet. CM_E_RESOLVE (or the resolver's error) when it has no address. */
static int endpoint_addr(struct dfs_master_conn *mc, size_t i, char *out, size_t cap)
{
    struct cm_endpoint ep;
    int rc;

    rc = cm_resolver_get(mc->res, i, &ep);
    if (rc < 0)
        return rc;
    if (ep.naddrs == 0) {
        cm_resolver_resolve_one(mc->res, i);
        rc = cm_resolver_get(mc->res, i, &ep);
        if (rc < 0)
            return rc;
        if (ep.naddrs == 0)
            return ep.last_err < 0 ? ep.last_err : CM_E_RESOLVE;
    }
    snprintf(out, cap, "%s", ep.addrs[0].text);
    return 0;
}

/* Errors after which another master may do better. */
static bool retryable(int rc)
{
    return rc == CM_E_NOT_LEADER || rc == CM_E_UNAVAILABLE || rc == CM_E_BUSY ||
           rc == CM_E_CANCELED || rc == CM_E_CONNECT || rc == CM_E_RESOLVE || rc == CM_E_TIMEOUT ||
           rc == CM_E_PROTO;
}

static bool unreachable(int rc)
{
    return rc == CM_E_CONNECT || rc == CM_E_RESOLVE;
}

/* One POST to addr. On NOT_LEADER with a usable hint, copies it to hint (else hint[0] = 0). */
static int attempt(struct dfs_master_conn *mc, const char *addr, const char *path,
                   const cJSON *body, long timeout_ms, cJSON **answer, char *hint, size_t hint_cap)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    cJSON *empty = NULL;
    char url[URL_MAX];
    int rc;

    hint[0] = '\0';
    if (body == NULL) {
        empty = cJSON_CreateObject();
        if (empty == NULL)
            return CM_E_NOMEM;
        body = empty;
    }
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    call.method = "POST";
    call.url = url;
    call.json = body;
    call.timeout_ms = timeout_ms;
    atomic_fetch_add(&mc->attempts, 1);
    rc = cm_http_call(mc->http, &call, &resp);
    if (rc == CM_E_NOT_LEADER && resp.error != NULL) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(resp.error, "leader_hint");
        if (cJSON_IsString(h) && hint_addr(h->valuestring, hint, hint_cap) < 0)
            hint[0] = '\0';
    }
    LOG_DEBUG("masters: POST %s: %s", url, cm_errname(rc));
    if (answer != NULL && (rc == 0 || !retryable(rc))) {
        *answer = resp.json;
        resp.json = NULL;
    }
    cm_http_response_clear(&resp);
    cJSON_Delete(empty);
    return rc;
}

/* Waits ms unless canceled; returns CM_E_CANCELED when canceled. */
static int wait_ms(struct dfs_master_conn *mc, long ms)
{
    struct timespec ts;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mc->mu);
    while (!mc->canceled)
        if (pthread_cond_timedwait(&mc->cv, &mc->mu, &ts) != 0)
            break;
    rc = mc->canceled ? CM_E_CANCELED : 0;
    pthread_mutex_unlock(&mc->mu);
    return rc;
}

static bool is_canceled(struct dfs_master_conn *mc)
{
    bool c;

    pthread_mutex_lock(&mc->mu);
    c = mc->canceled;
    pthread_mutex_unlock(&mc->mu);
    return c;
}

int dfs_master_conn_post_timeout(struct dfs_master_conn *mc, const char *path, const cJSON *body,
                                 long timeout_ms, cJSON **answer)
{
    char target[DFS_MC_ADDR_MAX], hint[DFS_MC_ADDR_MAX];
    uint64_t deadline, t;
    long backoff = mc->backoff_min_ms;
    size_t n, tried = 0, hops = 0, idx = 0;
    bool reached = false, from_list = false;
    int rc = CM_E_UNAVAILABLE, last = CM_E_UNAVAILABLE;

    if (answer != NULL)
        *answer = NULL;
    if (path == NULL || path[0] != '/' || strlen(path) >= PATH_MAX_LEN)
        return CM_E_INVAL;
    atomic_fetch_add(&mc->ops, 1);
    deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : mc->op_timeout_ms);
    if (cm_resolver_is_srv(mc->res) && cm_resolver_count(mc->res) == 0)
        cm_resolver_resolve_all(mc->res, NULL);

    pthread_mutex_lock(&mc->mu);
    snprintf(target, sizeof(target), "%s", mc->leader);
    pthread_mutex_unlock(&mc->mu);

    for (;;) {
        if (is_canceled(mc))
            return CM_E_CANCELED;
        n = cm_resolver_count(mc->res);
        if (target[0] == '\0') {
            if (n == 0) {
                cm_resolver_resolve_all(mc->res, NULL);
                n = cm_resolver_count(mc->res);
            }
            if (n > 0) {
                pthread_mutex_lock(&mc->mu);
                idx = mc->next++ % n;
                pthread_mutex_unlock(&mc->mu);
                rc = endpoint_addr(mc, idx, target, sizeof(target));
                from_list = true;
                tried++;
            } else {
                rc = CM_E_RESOLVE;
            }
        }
        t = now_ms();
        if (t >= deadline)
            break;
        if (target[0] != '\0') {
            long call_ms = (long)(deadline - t);
            if (call_ms > mc->call_timeout_ms)
                call_ms = mc->call_timeout_ms;
            rc = attempt(mc, target, path, body, call_ms, answer, hint, sizeof(hint));
            if (rc == 0) {
                set_leader(mc, target);
                return 0;
            }
            if (!retryable(rc))
                return rc;
            if (!unreachable(rc))
                reached = true;
            drop_leader(mc, target);
            if (unreachable(rc) && from_list)
                cm_resolver_resolve_one(mc->res, idx);
            if (rc == CM_E_NOT_LEADER && hint[0] != '\0' && strcmp(hint, target) != 0 &&
                hops <= n) {
                /* Straight to the hinted leader; hops bounds a loop of stale hints. */
                hops++;
                atomic_fetch_add(&mc->hint_follows, 1);
                snprintf(target, sizeof(target), "%s", hint);
                from_list = false;
                continue;
            }
        }
        last = rc;
        target[0] = '\0';
        if (tried >= n) {
            /* A whole round failed: back off with jitter (half fixed, half random). */
            long half = backoff / 2, ms;
            pthread_mutex_lock(&mc->mu);
            ms = half + (long)(next_rand(mc) % (uint64_t)(backoff - half + 1));
            pthread_mutex_unlock(&mc->mu);
            t = now_ms();
            if (t >= deadline)
                break;
            if ((uint64_t)ms > deadline - t)
                ms = (long)(deadline - t);
            atomic_fetch_add(&mc->backoffs, 1);
            if (wait_ms(mc, ms) < 0)
                return CM_E_CANCELED;
            backoff = backoff * 2 > mc->backoff_max_ms ? mc->backoff_max_ms : backoff * 2;
            tried = 0;
            hops = 0;
        }
    }
    atomic_fetch_add(&mc->failures, 1);
    rc = reached ? CM_E_TIMEOUT : CM_E_UNAVAILABLE;
    LOG_WARN("masters: POST %s gave up: %s (last: %s)", path, cm_errname(rc), cm_errname(last));
    return rc;
}

int dfs_master_conn_post(struct dfs_master_conn *mc, const char *path, const cJSON *body,
                         cJSON **answer)
{
    return dfs_master_conn_post_timeout(mc, path, body, 0, answer);
}
