/* Three (and four) real dfs-master processes on 127.0.0.1: election (and its log lines), failover
 * (printed; within 3 s here, the 1 s goal is tests/bench/failover.sh's) without losing acknowledged
 * writes, full restart, catch-up by snapshot, live membership and leader transfer, and what /status
 * and /metrics report. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/json.h"

#define T_LEADER_MS 10000
#define T_OP_MS     10000
/* kill -9 of the leader -> a write committed: ten times the longest election timeout. The
 * issue's bound, 1 s, is measured by tests/bench/failover.sh (50 kills, median and worst). */
#define NEW_LEADER_MS 3000

static uint64_t status_u64(struct tc_cluster *c, int i, const char *field)
{
    cJSON *s = tc_status(c, i);
    uint64_t v = 0;
    if (s != NULL)
        cm_json_get_u64(s, field, &v);
    cJSON_Delete(s);
    return v;
}

static void put_keys(struct tc_cluster *c, const char *client, int from, int to)
{
    for (int k = from; k < to; k++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(val, sizeof(val), "v%d", k);
        cr_assert_eq(tc_put(c, client, (uint64_t)k + 1, key, val, T_OP_MS), 0, "put %s", key);
    }
}

static void check_keys(struct tc_cluster *c, int from, int to)
{
    for (int k = from; k < to; k++) {
        char key[32], val[32], *got = NULL;
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(val, sizeof(val), "v%d", k);
        cr_assert_eq(tc_get(c, key, &got, T_OP_MS), 0, "get %s", key);
        cr_assert_str_eq(got, val);
        free(got);
    }
}

Test(master_cluster, three_masters_elect_one_leader_and_agree, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0, "no leader elected");
    /* Every status names the same leader and term, and exactly one says LEADER. */
    uint64_t term = status_u64(&c, 0, "term");
    int leaders = 0;
    for (int i = 0; i < 3; i++) {
        cJSON *s = tc_status(&c, i);
        const char *role;
        cr_assert_not_null(s);
        cr_assert_eq(cm_json_get_str(s, "role", 32, &role, NULL), 0);
        leaders += strcmp(role, "LEADER") == 0;
        cr_assert_eq(status_u64(&c, i, "term"), term);
        cr_assert_eq(status_u64(&c, i, "leader_id"), (uint64_t)leader + 1);
        cJSON_Delete(s);
    }
    cr_assert_eq(leaders, 1);
    /* The leader logged its election in the design document's words. */
    char line[64];
    snprintf(line, sizeof(line), "Node %d starting election", leader + 1);
    cr_assert(tc_wait_log(&c, leader, line, NULL, 5000), "no \"%s\" in the leader's log", line);
    snprintf(line, sizeof(line), "Node %d becoming LEADER", leader + 1);
    cr_assert(tc_wait_log(&c, leader, line, NULL, 5000), "no \"%s\" in the leader's log", line);
    /* A follower answers NOT_LEADER with the leader's address. */
    int follower = (leader + 1) % 3;
    cr_assert_eq(tc_put_at(&c, follower, "t", 1, "a", "b", NULL), CM_E_NOT_LEADER);
    tc_destroy(&c);
}

/* Waits until the running masters agree on a leader and each has applied everything the leader
 * committed; returns the leader. */
static int wait_settled(struct tc_cluster *c)
{
    int leader = tc_wait_leader(c, T_LEADER_MS);
    cr_assert_geq(leader, 0, "no leader");
    uint64_t deadline = tc_now_ms() + T_OP_MS;
    for (;;) {
        uint64_t commit = status_u64(c, leader, "commit_index");
        bool all = commit > 0;
        for (int i = 0; i < TC_MAX_MASTERS; i++)
            if (c->m[i].pid != 0 && status_u64(c, i, "applied_index") < commit)
                all = false;
        if (all)
            return leader;
        cr_assert_lt(tc_now_ms(), deadline, "the masters did not apply commit index %llu",
                     (unsigned long long)commit);
        usleep(20 * 1000);
    }
}

/* Kills master `leader` with SIGKILL, then offers key=value (client, seq) to every surviving
 * master in turn, every 5 ms, until one commits it. Returns the milliseconds from the kill to
 * that answer; fails the test after T_LEADER_MS. */
static uint64_t kill_and_write(struct tc_cluster *c, int leader, const char *client, uint64_t seq,
                               const char *key, const char *value)
{
    uint64_t t0 = tc_now_ms();
    tc_kill(c, leader);
    for (;;) {
        for (int i = 0; i < c->n; i++)
            if (c->m[i].pid != 0 && tc_put_at(c, i, client, seq, key, value, NULL) == 0)
                return tc_now_ms() - t0;
        cr_assert_lt(tc_now_ms() - t0, T_LEADER_MS, "no write committed %d ms after the kill",
                     T_LEADER_MS);
        usleep(5 * 1000);
    }
}

Test(master_cluster, leader_kill_new_leader_writes_and_loses_nothing, .timeout = 180)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    put_keys(&c, "w", 0, 50);
    for (int round = 0; round < 5; round++) {
        /* A healthy cluster: all three up to date, so that every kill starts from the same. */
        int leader = wait_settled(&c);
        char key[32];
        snprintf(key, sizeof(key), "kill%d", round);
        uint64_t ms = kill_and_write(&c, leader, "kill", (uint64_t)round + 1, key, "written");
        fprintf(stderr, "kill -9 of leader %d: a new leader committed a write after %llu ms\n",
                leader + 1, (unsigned long long)ms);
        cr_expect_leq(ms, NEW_LEADER_MS, "round %d: first write %llu ms after the kill", round,
                      (unsigned long long)ms);
        /* The surviving two keep taking writes. */
        put_keys(&c, "w", 50 + round * 10, 60 + round * 10);
        tc_start(&c, leader);
    }
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    /* Every acknowledged write survived the five kills. */
    check_keys(&c, 0, 100);
    for (int round = 0; round < 5; round++) {
        char key[32], *got = NULL;
        snprintf(key, sizeof(key), "kill%d", round);
        cr_assert_eq(tc_get(&c, key, &got, T_OP_MS), 0, "get %s", key);
        cr_assert_str_eq(got, "written");
        free(got);
    }
    tc_destroy(&c);
}

Test(master_cluster, retried_put_is_applied_once, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    uint64_t r1 = 0, r2 = 0, r3 = 0;
    cr_assert_eq(tc_put_at(&c, leader, "once", 1, "x", "1", &r1), 0);
    cr_assert_eq(tc_put_at(&c, leader, "once", 1, "x", "1", &r2), 0);
    cr_assert_eq(r1, r2, "a retry answers with the first result");
    cr_assert_eq(tc_put_at(&c, leader, "once", 2, "x", "2", &r3), 0);
    cr_assert_gt(r3, r1);
    cr_assert_eq(tc_put_at(&c, leader, "once", 1, "x", "1", NULL), CM_E_INVAL, "stale seq");
    tc_destroy(&c);
}

Test(master_cluster, full_restart_keeps_state_and_two_of_three_serve, .timeout = 120)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    put_keys(&c, "r", 0, 30);
    for (int i = 0; i < 3; i++)
        tc_stop(&c, i);
    tc_start(&c, 0);
    tc_start(&c, 2);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0, "two of three elect a leader");
    check_keys(&c, 0, 30);
    put_keys(&c, "r", 30, 40);
    tc_start(&c, 1);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    check_keys(&c, 0, 40);
    tc_destroy(&c);
}

Test(master_cluster, stopped_follower_catches_up_by_snapshot, .timeout = 300)
{
    struct tc_cluster c;
    tc_init(&c, 3, "--snapshot-entries 200");
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    int follower = (leader + 1) % 3;
    tc_stop(&c, follower);
    put_keys(&c, "s", 0, 5000);
    cr_assert_gt(status_u64(&c, leader, "snapshot_index"), 0, "the leader compacted its log");
    tc_start(&c, follower);
    uint64_t target = status_u64(&c, leader, "commit_index");
    uint64_t deadline = tc_now_ms() + 60000;
    while (status_u64(&c, follower, "applied_index") < target && tc_now_ms() < deadline)
        usleep(50 * 1000);
    cr_assert_geq(status_u64(&c, follower, "applied_index"), target);
    cr_assert_gt(status_u64(&c, follower, "snapshot_index"), 0, "caught up by a snapshot");
    char *v = NULL;
    cr_assert_eq(tc_get_at(&c, follower, "k4999", true, &v), 0);
    cr_assert_str_eq(v, "v4999");
    free(v);
    tc_destroy(&c);
}

/* Master at's view, in its /status peers (its configuration but itself), of master id: -1 not a
 * member, 0 a non-voter, 1 a voter; -2 when it does not answer. */
static int member(struct tc_cluster *c, int at, uint64_t id)
{
    cJSON *s = tc_status(c, at);
    const cJSON *peers, *p;
    int state = -2;
    if (s != NULL && cm_json_get_array(s, "peers", &peers) == 0) {
        state = -1;
        cJSON_ArrayForEach(p, peers)
        {
            uint64_t pid = 0;
            bool v = false;
            cm_json_get_u64(p, "id", &pid);
            cr_assert_eq(cm_json_get_bool(p, "voter", &v), 0, "peer %llu has no voter flag",
                         (unsigned long long)pid);
            if (pid == id)
                state = v;
        }
    }
    cJSON_Delete(s);
    return state;
}

/* Voters in the configuration as master `at`, itself a voter (a leader), reports it. */
static int voters(struct tc_cluster *c, int at)
{
    cJSON *s = tc_status(c, at);
    const cJSON *peers, *p;
    int n = 1;
    cr_assert_not_null(s);
    cr_assert_eq(cm_json_get_array(s, "peers", &peers), 0);
    cJSON_ArrayForEach(p, peers)
    {
        bool v = false;
        cm_json_get_bool(p, "voter", &v);
        n += v;
    }
    cJSON_Delete(s);
    return n;
}

/* Polls until master at reports master id as want (see member) or timeout_ms passed. */
static int wait_member(struct tc_cluster *c, int at, uint64_t id, int want, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    int got;
    while ((got = member(c, at, id)) != want && tc_now_ms() < deadline)
        usleep(20 * 1000);
    return got;
}

/* Waits until master i's peer port answers at all (a master waiting to join says 503): the
 * process is dfs-master by then, no longer the harness's child about to exec it. */
static void wait_listening(struct tc_cluster *c, int i)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", c->m[i].http_port);
    uint64_t deadline = tc_now_ms() + T_OP_MS;
    for (;;) {
        struct cm_http_response r = {0};
        cm_http_get_json(c->http, url, &r);
        int st = r.status;
        cm_http_response_clear(&r);
        if (st != 0)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "master %d does not listen", i + 1);
        usleep(20 * 1000);
    }
}

Test(master_cluster, membership_add_promote_remove_and_transfer, .timeout = 180)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    put_keys(&c, "m", 0, 20);
    cr_assert_eq(voters(&c, leader), 3);
    cr_assert_eq(member(&c, leader, 4), -1);

    /* A fourth master joins as a non-voter. It is frozen (SIGSTOP) while it is added, so it
     * cannot catch up yet, and a non-voter is all it can be. */
    c.m[3].join = true;
    tc_start(&c, 3);
    wait_listening(&c, 3);
    tc_signal(&c, 3, SIGSTOP);
    char body[128];
    snprintf(body, sizeof(body), "{\"id\":4,\"url\":\"http://127.0.0.1:%u\"}", c.m[3].http_port);
    cr_assert_eq(tc_admin(&c, leader, "/admin/add-master", body), 0);
    cr_assert_eq(member(&c, leader, 4), 0, "master 4 is in the configuration as a non-voter");
    cr_assert_eq(voters(&c, leader), 3, "a non-voter does not count");
    put_keys(&c, "m", 20, 25);
    cr_assert_eq(member(&c, leader, 4), 0, "promoted without catching up");

    /* Thawed, it catches up and is promoted. */
    tc_signal(&c, 3, SIGCONT);
    cr_assert_eq(wait_member(&c, leader, 4, 1, 30000), 1, "master 4 was not promoted");
    cr_assert_eq(voters(&c, leader), 4);
    char *v = NULL;
    cr_assert_eq(tc_get_at(&c, 3, "k24", true, &v), 0);
    cr_assert_str_eq(v, "v24");
    free(v);

    /* Leadership moves on request, to the target, in a new term. */
    uint64_t term = status_u64(&c, leader, "term");
    int target = leader == 0 ? 1 : 0;
    snprintf(body, sizeof(body), "{\"target\":%d}", target + 1);
    cr_assert_eq(tc_admin(&c, leader, "/admin/transfer-leader", body), 0);
    cr_assert_eq(tc_wait_leader(&c, T_LEADER_MS), target);
    cr_assert_gt(status_u64(&c, target, "term"), term);

    /* The old leader is removed: gone from every remaining member's configuration, three
     * voters left; the rest keep serving. */
    snprintf(body, sizeof(body), "{\"id\":%d}", leader + 1);
    cr_assert_eq(tc_admin(&c, target, "/admin/remove-master", body), 0);
    for (int i = 0; i < 4; i++) {
        if (i == leader)
            continue;
        cr_assert_eq(wait_member(&c, i, (uint64_t)leader + 1, -1, T_OP_MS), -1,
                     "master %d still lists the removed master %d", i + 1, leader + 1);
    }
    cr_assert_eq(voters(&c, target), 3);
    for (int i = 0; i < 4; i++)
        if (i != leader && i != target)
            cr_assert_eq(member(&c, target, (uint64_t)i + 1), 1, "master %d lost its vote", i + 1);
    tc_stop(&c, leader);
    put_keys(&c, "m", 25, 35);
    check_keys(&c, 0, 35);
    tc_destroy(&c);
}

/* GET path on master i's peer port as text; fails the test unless it answers 200. Caller frees. */
static char *get_text(struct tc_cluster *c, int i, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->m[i].http_port, path);
    struct cm_http_call call = {.method = "GET", .url = url, .flags = CM_HTTP_CALL_RAW};
    struct cm_http_response r = {0};
    cr_assert_eq(cm_http_call(c->http, &call, &r), 0, "GET %s of master %d", path, i + 1);
    cr_assert_eq(r.status, 200);
    char *text = r.body;
    r.body = NULL;
    cm_http_response_clear(&r);
    return text;
}

/* The value of one Prometheus series (`name` or `name{labels}`, exactly as printed); fails the
 * test when it is missing. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, series, n) == 0 && l[n] == ' ') {
            char *end;
            double v = strtod(l + n + 1, &end);
            cr_assert(end != l + n + 1 && (*end == '\n' || *end == '\0'), "bad value: %s", series);
            return v;
        }
    }
    cr_assert(0, "no series %s in /metrics", series);
    return 0;
}

/* A metric's "# TYPE name kind" line is there. */
static void has_type(const char *text, const char *name, const char *kind)
{
    char line[128];
    snprintf(line, sizeof(line), "# TYPE %s %s\n", name, kind);
    cr_assert_not_null(strstr(text, line), "no \"%s\" in /metrics", line);
}

static uint64_t json_u64(const cJSON *o, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(o, field, &v), 0, "no %s", field);
    return v;
}

/* The leader's /status entry for peer id, once its match_index reached the leader's commit
 * index (polled; fails the test after T_OP_MS). *s gets the leader's status (caller frees it). */
static const cJSON *caught_up_peer(struct tc_cluster *c, int leader, uint64_t id, cJSON **s)
{
    uint64_t deadline = tc_now_ms() + T_OP_MS;
    for (;;) {
        const cJSON *peers, *p, *found = NULL;
        *s = tc_status(c, leader);
        cr_assert_not_null(*s);
        cr_assert_eq(cm_json_get_array(*s, "peers", &peers), 0);
        cJSON_ArrayForEach(p, peers)
        {
            if (json_u64(p, "id") == id)
                found = p;
        }
        cr_assert_not_null(found, "peer %llu missing from the leader's status",
                           (unsigned long long)id);
        uint64_t match = 0;
        if (cm_json_get_u64(found, "match_index", &match) == 0 &&
            match == json_u64(*s, "commit_index"))
            return found;
        cr_assert_lt(tc_now_ms(), deadline,
                     "peer %llu's match_index %llu never reached the "
                     "commit index",
                     (unsigned long long)id, (unsigned long long)match);
        cJSON_Delete(*s);
        usleep(20 * 1000);
    }
}

Test(master_cluster, status_reports_leader_and_peer_progress, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    put_keys(&c, "st", 0, 10);
    int leader = wait_settled(&c);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", c.m[leader].client_port);

    /* Every master names the leader and the address clients should use. */
    for (int i = 0; i < 3; i++) {
        cJSON *s = tc_status(&c, i);
        const char *la = NULL;
        cr_assert_not_null(s);
        cr_assert_eq(cm_json_get_str(s, "leader_addr", 64, &la, NULL), 0, "master %d", i + 1);
        cr_assert_str_eq(la, addr, "master %d", i + 1);
        cr_assert_eq(json_u64(s, "leader_id"), (uint64_t)leader + 1);
        cJSON_Delete(s);
    }

    /* The leader's view of each follower once writes settled: its URL, the follower's log
     * matching up to the commit index, the next entry to send right after it, recent contact. */
    for (int i = 0; i < 3; i++) {
        if (i == leader)
            continue;
        cJSON *s;
        const cJSON *p = caught_up_peer(&c, leader, (uint64_t)i + 1, &s);
        uint64_t commit = json_u64(s, "commit_index");
        cr_assert_geq(commit, 11, "10 writes and the leader's no-op");
        cr_assert_eq(json_u64(s, "last_index"), commit);
        cr_assert_eq(json_u64(s, "applied_index"), commit);
        char url[64];
        const char *got = NULL;
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", c.m[i].http_port);
        cr_assert_eq(cm_json_get_str(p, "url", 64, &got, NULL), 0);
        cr_assert_str_eq(got, url);
        bool voter = false;
        cr_assert_eq(cm_json_get_bool(p, "voter", &voter), 0);
        cr_assert(voter);
        cr_assert_eq(json_u64(p, "match_index"), commit);
        cr_assert_eq(json_u64(p, "next_index"), commit + 1);
        cr_assert_eq(json_u64(p, "lag"), 0);
        /* Heartbeats go every 50 ms; allow for a loaded machine. */
        cr_assert_lt(json_u64(p, "last_contact_ms_ago"), 3000);
        cJSON_Delete(s);
    }
    tc_destroy(&c);
}

Test(master_cluster, metrics_report_raft_state, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    cr_assert_geq(tc_wait_leader(&c, T_LEADER_MS), 0);
    put_keys(&c, "mt", 0, 10);
    int leader = wait_settled(&c);
    /* The leader knows both followers hold everything: their lag is 0 below. */
    for (int i = 0; i < 3; i++) {
        cJSON *s;
        if (i != leader) {
            caught_up_peer(&c, leader, (uint64_t)i + 1, &s);
            cJSON_Delete(s);
        }
    }
    cJSON *s = tc_status(&c, leader);
    cr_assert_not_null(s);
    uint64_t term = json_u64(s, "term"), commit = json_u64(s, "commit_index");
    cJSON_Delete(s);

    char *t = get_text(&c, leader, "/metrics");
    has_type(t, "dfs_raft_role", "gauge");
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"leader\"}"), 1);
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"follower\"}"), 0);
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"pre_candidate\"}"), 0);
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"candidate\"}"), 0);
    has_type(t, "dfs_raft_term", "gauge");
    cr_assert_eq(metric(t, "dfs_raft_term"), (double)term);
    cr_assert_eq(metric(t, "dfs_raft_leader_id"), leader + 1);
    has_type(t, "dfs_raft_commit_index", "gauge");
    cr_assert_eq(metric(t, "dfs_raft_commit_index"), (double)commit);
    cr_assert_geq(commit, 11);
    has_type(t, "dfs_raft_elections_total", "counter");
    cr_assert_geq(metric(t, "dfs_raft_elections_total"), 1, "the leader won an election");
    has_type(t, "dfs_raft_proposals_total", "counter");
    cr_assert_geq(metric(t, "dfs_raft_proposals_total"), 10, "10 writes were proposed");
    /* The fsync histogram: cumulative buckets ending in +Inf = count > 0, and a sum. */
    has_type(t, "dfs_raft_fsync_seconds", "histogram");
    double count = metric(t, "dfs_raft_fsync_seconds_count"), prev = 0;
    cr_assert_gt(count, 0, "the writes were synced");
    for (int i = 0; i < 15; i++) {
        char series[96];
        snprintf(series, sizeof(series), "dfs_raft_fsync_seconds_bucket{le=\"%.6f\"}",
                 (double)(64ull << i) / 1e6);
        double b = metric(t, series);
        cr_assert_geq(b, prev, "%s is not cumulative", series);
        prev = b;
    }
    cr_assert_eq(metric(t, "dfs_raft_fsync_seconds_bucket{le=\"+Inf\"}"), count);
    cr_assert_geq(count, prev);
    cr_assert_gt(metric(t, "dfs_raft_fsync_seconds_sum"), 0);
    /* One lag series per follower, 0 now that they hold everything. */
    has_type(t, "dfs_raft_peer_lag", "gauge");
    for (int i = 0; i < 3; i++) {
        char series[64];
        snprintf(series, sizeof(series), "dfs_raft_peer_lag{peer=\"%d\"}", i + 1);
        if (i == leader)
            cr_assert_null(strstr(t, series), "the leader reports a lag of its own");
        else
            cr_assert_eq(metric(t, series), 0, "%s", series);
    }
    free(t);

    /* A follower says so, in the same term, and syncs the log too. */
    int f = (leader + 1) % 3;
    t = get_text(&c, f, "/metrics");
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"follower\"}"), 1);
    cr_assert_eq(metric(t, "dfs_raft_role{role=\"leader\"}"), 0);
    cr_assert_eq(metric(t, "dfs_raft_term"), (double)term);
    cr_assert_eq(metric(t, "dfs_raft_leader_id"), leader + 1);
    cr_assert_eq(metric(t, "dfs_raft_commit_index"), (double)commit);
    cr_assert_gt(metric(t, "dfs_raft_fsync_seconds_count"), 0);
    free(t);
    tc_destroy(&c);
}

/* Requests follower i sent to the leader (its /status, the peer entry of leader_id). */
static uint64_t sent_to(struct tc_cluster *c, int i, uint64_t leader_id)
{
    cJSON *s = tc_status(c, i);
    const cJSON *p;
    uint64_t v = 0;
    cr_assert_not_null(s);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(s, "peers"))
    {
        if (json_u64(p, "id") == leader_id)
            v = json_u64(p, "messages_sent");
    }
    cJSON_Delete(s);
    return v;
}

struct writer {
    struct tc_cluster *c;
    int id, n, failed;
    pthread_t th;
};

static void *write_keys(void *arg)
{
    struct writer *w = arg;
    char client[16], key[32];
    snprintf(client, sizeof(client), "w%d", w->id);
    for (int k = 0; k < w->n; k++) {
        snprintf(key, sizeof(key), "w%d-%d", w->id, k);
        w->failed += tc_put(w->c, client, (uint64_t)k + 1, key, "v", T_OP_MS) != 0;
    }
    return NULL;
}

/* A follower answers the leader's append request with its reply (X-Dfs-Raft-Replies), so a
 * round is one HTTP exchange. Under concurrent writes the appends come in batches, and each of
 * these went wrong before: the batch's messages were queued one by one, so the first reply
 * answered the request and the others went as requests of their own; one of those in flight
 * kept the next append from waiting for its reply, and the follower then sent every reply as a
 * request (about 1,300 for 6,700 commits with 8 writers, against about 60 now). */
Test(master_cluster, followers_reply_in_the_answers_to_concurrent_appends, .timeout = 120)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    put_keys(&c, "warm", 0, 5);
    int leader = wait_settled(&c);
    uint64_t lid = (uint64_t)leader + 1, before[3] = {0};
    for (int i = 0; i < 3; i++)
        if (i != leader)
            before[i] = sent_to(&c, i, lid);
    uint64_t c0 = status_u64(&c, leader, "commit_index");
    struct writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct writer){.c = &c, .id = i, .n = 150};
        cr_assert_eq(pthread_create(&w[i].th, NULL, write_keys, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(w[i].th, NULL);
        cr_assert_eq(w[i].failed, 0, "writer %d: %d puts failed", i, w[i].failed);
    }
    cr_assert_eq(wait_settled(&c), leader, "the leader changed during the test");
    uint64_t commits = status_u64(&c, leader, "commit_index") - c0;
    cr_assert_geq(commits, 8 * 150);
    for (int i = 0; i < 3; i++) {
        if (i == leader)
            continue;
        uint64_t sent = sent_to(&c, i, lid) - before[i];
        /* A reply whose append waited past the transport's 20 ms (a slow fsync) still goes as a
         * request; on a loaded machine that happens now and then, not for one append in ten. */
        cr_assert_lt(sent * 10, commits, "follower %d sent %llu requests for %llu commits", i + 1,
                     (unsigned long long)sent, (unsigned long long)commits);
    }
    tc_destroy(&c);
}
