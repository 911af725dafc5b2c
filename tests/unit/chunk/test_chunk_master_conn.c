/* client/master_conn against fake masters in the test process (cm_http_server instances that
 * play leader, follower with or without a hint, unavailable, or dead): it follows hints, caches
 * the leader, fails over, retries with backoff and gives up after its operation timeout. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/master_conn.h"
#include "common/errors.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "cs_harness.h"

enum mode { LEADER, HINT, NO_HINT, UNAVAILABLE, FAIL_INVAL, BAD_HINT };

struct fake {
    struct cm_http_server *srv;
    uint16_t port;
    char addr[32];
    atomic_int mode;
    atomic_int hits;
    atomic_int unavailable_left; /* answers UNAVAILABLE this many times first */
    char hint[64];
    pthread_mutex_t mu; /* hint */
    int idx;
    int hold; /* while dead: keeps the port (see th_hold_port); else -1 */
};

static struct fake fk[3];

static int handler(struct cm_http_req *req, void *data)
{
    struct fake *f = data;
    cJSON *o, *extra;

    atomic_fetch_add(&f->hits, 1);
    if (atomic_load(&f->unavailable_left) > 0) {
        atomic_fetch_sub(&f->unavailable_left, 1);
        return CM_E_UNAVAILABLE;
    }
    switch (atomic_load(&f->mode)) {
    case LEADER:
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "who", f->idx);
        cJSON_AddItemToObject(o, "echo", cJSON_Duplicate(cm_http_req_json(req), 1));
        return cm_http_answer_json(req, 200, o);
    case HINT:
        extra = cJSON_CreateObject();
        pthread_mutex_lock(&f->mu);
        cJSON_AddStringToObject(extra, "leader_hint", f->hint);
        pthread_mutex_unlock(&f->mu);
        return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, extra);
    case BAD_HINT:
        extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "leader_hint", "evil.example/x?y=1");
        return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, extra);
    case NO_HINT:
        return CM_E_NOT_LEADER;
    case UNAVAILABLE:
        return CM_E_UNAVAILABLE;
    default:
        extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "field", "name");
        return cm_http_answer_error(req, CM_E_INVAL, "bad name", extra);
    }
}

static void fake_start(struct fake *f, uint16_t port)
{
    struct cm_http_server_config cfg = {.bind_addr = "127.0.0.1", .port = port, .threads = 2};
    const struct cm_http_route r = {"POST", "/v1/test", CM_HTTP_JSON, NULL, NULL, handler, f};

    if (f->hold >= 0)
        close(f->hold);
    f->hold = -1;
    cr_assert_eq(cm_http_server_new(&cfg, &f->srv), 0);
    cr_assert_eq(cm_http_server_add_routes(f->srv, &r, 1), 0);
    cr_assert_eq(cm_http_server_start(f->srv), 0);
    f->port = cm_http_server_port(f->srv);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", f->port);
}

/* The master dies: connections are refused (its port is held, not reused). */
static void fake_kill(struct fake *f)
{
    cm_http_server_free(f->srv);
    f->srv = NULL;
    f->hold = th_hold_port(f->port);
}

static void set_hint(struct fake *f, const struct fake *to)
{
    pthread_mutex_lock(&f->mu);
    snprintf(f->hint, sizeof(f->hint), "%s", to->addr);
    pthread_mutex_unlock(&f->mu);
    atomic_store(&f->mode, HINT);
}

static char masters[128];

static void setup(void)
{
    cm_log_init("test", CM_LOG_ERROR);
    for (int i = 0; i < 3; i++) {
        memset(&fk[i], 0, sizeof(fk[i]));
        fk[i].idx = i;
        fk[i].hold = -1;
        pthread_mutex_init(&fk[i].mu, NULL);
        fake_start(&fk[i], 0);
    }
    snprintf(masters, sizeof(masters), "%s,%s,%s", fk[0].addr, fk[1].addr, fk[2].addr);
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++) {
        if (fk[i].srv != NULL)
            cm_http_server_free(fk[i].srv);
        if (fk[i].hold >= 0)
            close(fk[i].hold);
        pthread_mutex_destroy(&fk[i].mu);
    }
}

TestSuite(master_conn, .init = setup, .fini = teardown, .timeout = 60);

static struct dfs_master_conn *conn(long op_timeout_ms)
{
    struct dfs_master_conn_config cfg = {0};
    struct dfs_master_conn *mc = NULL;

    cfg.masters = masters;
    cfg.op_timeout_ms = op_timeout_ms;
    cfg.call_timeout_ms = 1000;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 100;
    cfg.seed = 42;
    cr_assert_eq(dfs_master_conn_new(&cfg, &mc), 0);
    return mc;
}

/* POSTs and returns the answering master's index (or the negative code). */
static int post_who(struct dfs_master_conn *mc)
{
    cJSON *body = cJSON_CreateObject(), *ans = NULL;
    int64_t who = -1;
    int rc;

    cJSON_AddStringToObject(body, "k", "v");
    rc = dfs_master_conn_post(mc, "/v1/test", body, &ans);
    cJSON_Delete(body);
    if (rc == 0) {
        const char *k = NULL;
        cr_assert_eq(cm_json_get_i64(ans, "who", &who), 0);
        cr_assert_eq(cm_json_get_str(cJSON_GetObjectItem(ans, "echo"), "k", 8, &k, NULL), 0);
        cr_assert_str_eq(k, "v");
    }
    cJSON_Delete(ans);
    return rc == 0 ? (int)who : rc;
}

static void expect_leader(struct dfs_master_conn *mc, int i)
{
    char buf[DFS_MC_ADDR_MAX];

    cr_assert_eq(dfs_master_conn_leader(mc, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, fk[i].addr);
}

Test(master_conn, follows_the_hint_and_caches_the_leader)
{
    struct dfs_master_conn *mc = conn(5000);
    struct dfs_master_conn_stats st;
    char buf[DFS_MC_ADDR_MAX];

    set_hint(&fk[0], &fk[2]);
    set_hint(&fk[1], &fk[2]);
    cr_assert_eq(dfs_master_conn_leader(mc, buf, sizeof(buf)), CM_E_NOENT);
    cr_assert_eq(post_who(mc), 2);
    cr_assert_eq(atomic_load(&fk[0].hits), 1);
    cr_assert_eq(atomic_load(&fk[1].hits), 0, "a hint goes straight to the leader");
    cr_assert_eq(atomic_load(&fk[2].hits), 1);
    expect_leader(mc, 2);
    cr_assert_eq(post_who(mc), 2);
    cr_assert_eq(post_who(mc), 2);
    cr_assert_eq(atomic_load(&fk[0].hits), 1, "the cached leader is asked first");
    cr_assert_eq(atomic_load(&fk[2].hits), 3);
    dfs_master_conn_stats(mc, &st);
    cr_assert_eq(st.hint_follows, 1);
    cr_assert_eq(st.ops, 3);
    cr_assert_eq(st.attempts, 4);
    dfs_master_conn_free(mc);
}

Test(master_conn, leader_moves_and_the_old_one_hints)
{
    struct dfs_master_conn *mc = conn(5000);

    set_hint(&fk[0], &fk[2]);
    set_hint(&fk[1], &fk[2]);
    cr_assert_eq(post_who(mc), 2);
    /* Leadership moves to 1; the old leader knows. */
    atomic_store(&fk[1].mode, LEADER);
    set_hint(&fk[2], &fk[1]);
    set_hint(&fk[0], &fk[1]);
    cr_assert_eq(post_who(mc), 1);
    expect_leader(mc, 1);
    cr_assert_eq(atomic_load(&fk[0].hits), 1);
    dfs_master_conn_free(mc);
}

Test(master_conn, dead_leader_fails_over)
{
    struct dfs_master_conn *mc = conn(5000);

    set_hint(&fk[0], &fk[2]);
    set_hint(&fk[1], &fk[2]);
    cr_assert_eq(post_who(mc), 2);
    fake_kill(&fk[2]);
    /* An election later, 0 leads; 1 knows. */
    atomic_store(&fk[0].mode, LEADER);
    set_hint(&fk[1], &fk[0]);
    cr_assert_eq(post_who(mc), 0);
    expect_leader(mc, 0);
    dfs_master_conn_free(mc);
}

Test(master_conn, without_hints_tries_every_master)
{
    struct dfs_master_conn *mc = conn(5000);

    atomic_store(&fk[0].mode, NO_HINT);
    atomic_store(&fk[1].mode, BAD_HINT); /* a hint that is no host:port is ignored */
    cr_assert_eq(post_who(mc), 2);
    expect_leader(mc, 2);
    dfs_master_conn_free(mc);
}

Test(master_conn, unavailable_answers_are_retried)
{
    struct dfs_master_conn *mc = conn(5000);
    struct dfs_master_conn_stats st;

    for (int i = 0; i < 3; i++) {
        atomic_store(&fk[i].mode, i == 1 ? LEADER : NO_HINT);
        atomic_store(&fk[i].unavailable_left, 3);
    }
    cr_assert_eq(post_who(mc), 1);
    cr_assert_eq(atomic_load(&fk[1].hits), 4);
    dfs_master_conn_stats(mc, &st);
    cr_assert_geq(st.backoffs, 3, "rounds of failures are followed by waits");
    dfs_master_conn_free(mc);
}

Test(master_conn, gives_up_after_the_operation_timeout)
{
    struct dfs_master_conn *mc = conn(600);
    struct dfs_master_conn_stats st;
    uint64_t t0 = th_now_ms(), dt;

    for (int i = 0; i < 3; i++)
        atomic_store(&fk[i].mode, NO_HINT);
    cr_assert_eq(post_who(mc), CM_E_TIMEOUT);
    dt = th_now_ms() - t0;
    cr_assert_geq(dt, 550, "gave up after %llu ms", (unsigned long long)dt);
    cr_assert_leq(dt, 1500, "gave up after %llu ms", (unsigned long long)dt);
    dfs_master_conn_stats(mc, &st);
    cr_assert_eq(st.failures, 1);
    /* Backoff (10 ms doubling to 100 ms): a few rounds, not a busy loop. */
    cr_assert_leq(st.attempts, 60, "%llu attempts", (unsigned long long)st.attempts);
    cr_assert_geq(st.attempts, 6);
    dfs_master_conn_free(mc);
}

Test(master_conn, all_dead_is_unavailable)
{
    struct dfs_master_conn *mc;
    uint64_t t0, dt;

    for (int i = 0; i < 3; i++)
        fake_kill(&fk[i]);
    mc = conn(400);
    t0 = th_now_ms();
    cr_assert_eq(post_who(mc), CM_E_UNAVAILABLE);
    dt = th_now_ms() - t0;
    cr_assert_geq(dt, 350);
    cr_assert_leq(dt, 1500);
    dfs_master_conn_free(mc);
}

Test(master_conn, a_restarted_master_is_found_again)
{
    struct dfs_master_conn *mc = conn(5000);
    uint16_t port = fk[2].port;

    atomic_store(&fk[0].mode, NO_HINT);
    atomic_store(&fk[1].mode, NO_HINT);
    cr_assert_eq(post_who(mc), 2);
    fake_kill(&fk[2]);
    cr_assert_eq(dfs_master_conn_post_timeout(mc, "/v1/test", NULL, 300, NULL), CM_E_TIMEOUT);
    fake_start(&fk[2], port);
    cr_assert_eq(post_who(mc), 2);
    dfs_master_conn_free(mc);
}

Test(master_conn, stale_hints_pointing_at_each_other_are_bounded)
{
    struct dfs_master_conn *mc = conn(500);
    struct dfs_master_conn_stats st;

    set_hint(&fk[0], &fk[1]);
    set_hint(&fk[1], &fk[0]);
    atomic_store(&fk[2].mode, NO_HINT);
    cr_assert_eq(post_who(mc), CM_E_TIMEOUT);
    dfs_master_conn_stats(mc, &st);
    cr_assert_leq(st.attempts, 120, "%llu attempts", (unsigned long long)st.attempts);
    dfs_master_conn_free(mc);
}

Test(master_conn, the_leaders_error_is_returned_at_once_with_its_body)
{
    struct dfs_master_conn *mc = conn(5000);
    struct dfs_master_conn_stats st;
    cJSON *ans = NULL;
    const char *field = NULL;

    set_hint(&fk[0], &fk[1]);
    atomic_store(&fk[1].mode, FAIL_INVAL);
    cr_assert_eq(dfs_master_conn_post(mc, "/v1/test", NULL, &ans), CM_E_INVAL);
    cr_assert_eq(cm_json_get_str(cJSON_GetObjectItem(ans, "error"), "field", 16, &field, NULL), 0);
    cr_assert_str_eq(field, "name");
    cJSON_Delete(ans);
    dfs_master_conn_stats(mc, &st);
    cr_assert_eq(st.attempts, 2);
    cr_assert_eq(dfs_master_conn_post(mc, "no-slash", NULL, NULL), CM_E_INVAL);
    dfs_master_conn_free(mc);
}

struct canceler {
    struct dfs_master_conn *mc;
};

static void *cancel_later(void *arg)
{
    struct canceler *c = arg;

    th_sleep_ms(200);
    dfs_master_conn_cancel(c->mc);
    return NULL;
}

Test(master_conn, cancel_ends_a_waiting_operation)
{
    struct dfs_master_conn *mc = conn(20000);
    struct canceler c = {mc};
    pthread_t th;
    uint64_t t0 = th_now_ms();

    for (int i = 0; i < 3; i++)
        atomic_store(&fk[i].mode, UNAVAILABLE);
    pthread_create(&th, NULL, cancel_later, &c);
    cr_assert_eq(post_who(mc), CM_E_CANCELED);
    cr_assert_leq(th_now_ms() - t0, 2000);
    pthread_join(th, NULL);
    dfs_master_conn_free(mc);
}

struct worker {
    struct dfs_master_conn *mc;
    int ok;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 40; i++)
        w->ok += post_who(w->mc) == 2;
    return NULL;
}

Test(master_conn, many_threads_share_one_connection)
{
    struct dfs_master_conn *mc = conn(5000);
    struct worker w[8];
    pthread_t th[8];

    set_hint(&fk[0], &fk[2]);
    set_hint(&fk[1], &fk[2]);
    for (int i = 0; i < 8; i++) {
        w[i].mc = mc;
        w[i].ok = 0;
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].ok, 40);
    }
    cr_assert_eq(atomic_load(&fk[2].hits), 320);
    cr_assert_leq(atomic_load(&fk[0].hits) + atomic_load(&fk[1].hits), 8);
    dfs_master_conn_free(mc);
}

Test(master_conn, bad_configuration)
{
    struct dfs_master_conn_config cfg = {0};
    struct dfs_master_conn *mc = NULL;

    cr_assert_eq(dfs_master_conn_new(&cfg, &mc), CM_E_INVAL);
    cfg.masters = "not a list";
    cr_assert_eq(dfs_master_conn_new(&cfg, &mc), CM_E_INVAL);
    cfg.masters = "127.0.0.1:1";
    cfg.op_timeout_ms = -1;
    cr_assert_eq(dfs_master_conn_new(&cfg, &mc), CM_E_INVAL);
}
