/* Bad input to a running master's peer and admin endpoints is refused with a clear 4xx and harms
 * nothing: malformed, truncated, mistyped and oversized messages, unknown paths, wrong secrets,
 * misdirected and old-term messages. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "common/auth.h"
#include "common/errors.h"
#include "common/json.h"

static int raw_post(struct cm_http_client *h, uint16_t port, const char *path, const char *body,
                    size_t len, const char *ctype, int *status)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct cm_http_call call = {
        .method = "POST", .url = url, .body = body, .body_len = len, .content_type = ctype};
    struct cm_http_response r = {0};
    int rc = cm_http_call(h, &call, &r);
    *status = r.status;
    cm_http_response_clear(&r);
    return rc;
}

static int post_str(struct tc_cluster *c, const char *path, const char *body, int *status)
{
    return raw_post(c->http, c->m[0].http_port, path, body, strlen(body), "application/json",
                    status);
}

Test(master_input, malformed_peer_messages_are_rejected, .timeout = 60)
{
    struct tc_cluster c;
    int st;
    tc_init(&c, 1, NULL);
    tc_start_all(&c);
    cr_assert_eq(tc_wait_leader(&c, 10000), 0);
    cJSON *s0 = tc_status(&c, 0);
    uint64_t term0 = 0;
    cm_json_get_u64(s0, "term", &term0);
    cJSON_Delete(s0);

    cr_assert_eq(post_str(&c, "/raft/append", "{", &st), CM_E_BAD_JSON);
    cr_assert_eq(st, 400);
    const char *full = "{\"from\":2,\"to\":1,\"term\":1,\"prev_index\":0,\"prev_term\":0,"
                       "\"commit\":0,\"entries\":[]}";
    for (size_t cut = 1; cut < strlen(full); cut += 7) {
        char trunc[256];
        memcpy(trunc, full, cut);
        trunc[cut] = 0;
        cr_assert_eq(post_str(&c, "/raft/append", trunc, &st), CM_E_BAD_JSON, "cut %zu", cut);
    }
    cr_assert_eq(post_str(&c, "/raft/append",
                          "{\"from\":\"two\",\"to\":1,\"term\":1,\"prev_index\":0,"
                          "\"prev_term\":0,\"commit\":0,\"entries\":[]}",
                          &st),
                 CM_E_BAD_FIELD);
    cr_assert_eq(post_str(&c, "/raft/append",
                          "{\"from\":2,\"to\":1,\"term\":-1,\"prev_index\":0,"
                          "\"prev_term\":0,\"commit\":0,\"entries\":[]}",
                          &st),
                 CM_E_RANGE);
    cr_assert_eq(post_str(&c, "/raft/append",
                          "{\"from\":2,\"to\":1,\"term\":9,\"prev_index\":0,\"prev_term\":0,"
                          "\"commit\":0,\"entries\":[{\"term\":9,\"type\":0,\"data\":\"!!\"}]}",
                          &st),
                 CM_E_BAD_FIELD, "bad base64");
    cr_assert_eq(post_str(&c, "/raft/vote", "{\"from\":2,\"term\":5}", &st), CM_E_MISSING_FIELD);
    cr_assert_eq(post_str(&c, "/raft/nonsense", "{}", &st), CM_E_NO_ROUTE);
    cr_assert_eq(st, 404);
    cr_assert_eq(post_str(&c, "/raft/snapshot", "data", &st), CM_E_MISSING_FIELD);
    /* Batches: wrong types, unknown or binary-only paths, one bad message among good ones. */
    cr_assert_eq(post_str(&c, "/raft/batch", "{\"messages\":\"x\"}", &st), CM_E_BAD_FIELD);
    cr_assert_eq(post_str(&c, "/raft/batch", "{\"messages\":[{\"path\":\"/raft/snapshot\"}]}", &st),
                 CM_E_BAD_FIELD);
    cr_assert_eq(post_str(&c, "/raft/batch", "{\"messages\":[{\"path\":\"/nope\"}]}", &st),
                 CM_E_BAD_FIELD);
    cr_assert_eq(post_str(&c, "/raft/batch",
                          "{\"messages\":[{\"path\":\"/raft/timeout-now\",\"from\":2,\"to\":1,"
                          "\"term\":0},{\"path\":\"/raft/vote\",\"from\":2}]}",
                          &st),
                 CM_E_MISSING_FIELD);
    cr_assert_eq(st, 400);
    /* Misdirected: addressed to another node id. */
    cr_assert_eq(post_str(&c, "/raft/append",
                          "{\"from\":2,\"to\":9,\"term\":1,\"prev_index\":0,\"prev_term\":0,"
                          "\"commit\":0,\"entries\":[]}",
                          &st),
                 CM_E_INVAL);
    /* Oversized: more than the peer body limit. */
    size_t big = (16u << 20) + 1024;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    cr_assert_eq(
        raw_post(c.http, c.m[0].http_port, "/raft/append", huge, big, "application/json", &st),
        CM_E_TOO_LARGE);
    cr_assert_eq(st, 413);
    free(huge);
    /* An old-term message from an unknown sender changes nothing. */
    post_str(&c, "/raft/append",
             "{\"from\":2,\"to\":1,\"term\":0,\"prev_index\":0,\"prev_term\":0,\"commit\":0,"
             "\"entries\":[]}",
             &st);
    /* Admin: wrong types. */
    cr_assert_eq(tc_admin(&c, 0, "/admin/add-master", "{\"id\":\"x\",\"url\":1}"), CM_E_BAD_FIELD);
    cr_assert_eq(tc_admin(&c, 0, "/admin/add-master", "{\"id\":5,\"url\":\"nope\"}"),
                 CM_E_BAD_FIELD);
    cr_assert_eq(tc_admin(&c, 0, "/admin/remove-master", "{\"id\":42}"), CM_E_NOENT);

    /* The master is unharmed: same term, still leader, still taking writes. */
    cJSON *s = tc_status(&c, 0);
    uint64_t term = 0;
    const char *role = "";
    cm_json_get_u64(s, "term", &term);
    cm_json_get_str(s, "role", 32, &role, NULL);
    cr_assert_eq(term, term0);
    cr_assert_str_eq(role, "LEADER");
    cJSON_Delete(s);
    cr_assert_eq(tc_put(&c, "x", 1, "alive", "yes", 5000), 0);
    tc_destroy(&c);
}

Test(master_input, secret_is_required_when_configured, .timeout = 60)
{
    struct tc_cluster c;
    int st;
    char args[256], path[200];
    tc_init(&c, 1, NULL);
    snprintf(path, sizeof(path), "%s/secret", c.root);
    FILE *f = fopen(path, "w");
    fputs("s3cret-value\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "--secret-file %s", path);
    c.extra_args = args;
    tc_start_all(&c);

    /* The harness client has no secret: admin and client calls are refused... */
    uint64_t deadline = tc_now_ms() + 10000;
    int rc;
    do {
        rc = tc_admin(&c, 0, "/admin/remove-master", "{\"id\":3}");
    } while (rc == CM_E_CONNECT && tc_now_ms() < deadline);
    cr_assert_eq(rc, CM_E_UNAUTHORIZED);
    cr_assert_eq(post_str(&c, "/raft/append", "{}", &st), CM_E_UNAUTHORIZED);
    cr_assert_eq(st, 401);
    deadline = tc_now_ms() + 10000;
    do { /* the client port opens once the Raft node runs */
        rc = tc_put_at(&c, 0, "a", 1, "k", "v", NULL);
    } while (rc == CM_E_CONNECT && tc_now_ms() < deadline);
    cr_assert_eq(rc, CM_E_UNAUTHORIZED);

    /* ...a wrong secret too, the right one passes; /status stays public. */
    struct cm_secret wrong, right;
    cm_secret_set(&wrong, "not-it", 6);
    cm_secret_set(&right, "s3cret-value", 12);
    struct cm_http_client *hw, *hr;
    struct cm_http_client_config cw = {.secret = &wrong}, cr = {.secret = &right};
    cr_assert_eq(cm_http_client_new(&cw, &hw), 0);
    cr_assert_eq(cm_http_client_new(&cr, &hr), 0);
    const char *body = "{\"key\":\"k\",\"value\":\"v\",\"client\":\"c\",\"seq\":1}";
    cr_assert_eq(
        raw_post(hw, c.m[0].client_port, "/v1/kv/put", body, strlen(body), "application/json", &st),
        CM_E_UNAUTHORIZED);
    deadline = tc_now_ms() + 10000;
    do {
        rc = raw_post(hr, c.m[0].client_port, "/v1/kv/put", body, strlen(body), "application/json",
                      &st);
    } while (rc == CM_E_NOT_LEADER && tc_now_ms() < deadline);
    cr_assert_eq(rc, 0);
    /* A wrong secret on the peer and admin endpoints: 401 before anything is looked at... */
    const char *peer_body = "{\"from\":2,\"to\":1,\"term\":1,\"prev_index\":0,"
                            "\"prev_term\":0,\"commit\":0,\"entries\":[]}";
    cr_assert_eq(raw_post(hw, c.m[0].http_port, "/raft/append", peer_body, strlen(peer_body),
                          "application/json", &st),
                 CM_E_UNAUTHORIZED);
    cr_assert_eq(st, 401);
    const char *admin[][2] = {{"/admin/add-master", "{\"id\":5,\"url\":\"http://127.0.0.1:1\"}"},
                              {"/admin/remove-master", "{\"id\":42}"},
                              {"/admin/transfer-leader", "{}"}};
    for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
        cr_assert_eq(raw_post(hw, c.m[0].http_port, admin[i][0], admin[i][1], strlen(admin[i][1]),
                              "application/json", &st),
                     CM_E_UNAUTHORIZED, "%s", admin[i][0]);
        cr_assert_eq(st, 401, "%s", admin[i][0]);
    }
    /* ...while the right one gets through to the handlers (which refuse these bodies). */
    cr_assert_eq(raw_post(hr, c.m[0].http_port, "/raft/append", "{", 1, "application/json", &st),
                 CM_E_BAD_JSON);
    cr_assert_eq(raw_post(hr, c.m[0].http_port, "/admin/remove-master", "{\"id\":42}", 9,
                          "application/json", &st),
                 CM_E_NOENT);
    /* Each refusal is logged, saying whether the secret was wrong or missing, and no secret
     * ever appears in the log. */
    const char *logged[][2] = {{"POST /raft/append from ", "wrong cluster secret"},
                               {"POST /admin/add-master from ", "wrong cluster secret"},
                               {"POST /admin/remove-master from ", "wrong cluster secret"},
                               {"POST /admin/transfer-leader from ", "wrong cluster secret"},
                               {"POST /v1/kv/put from ", "wrong cluster secret"},
                               {"POST /raft/append from ", "missing cluster secret"},
                               {"POST /admin/remove-master from ", "missing cluster secret"},
                               {"POST /v1/kv/put from ", "missing cluster secret"}};
    for (size_t i = 0; i < sizeof(logged) / sizeof(logged[0]); i++)
        cr_assert(tc_wait_log(&c, 0, logged[i][0], logged[i][1], 5000), "no \"%s... %s\" logged",
                  logged[i][0], logged[i][1]);
    cr_assert(!tc_log_has(&c, 0, "s3cret-value", NULL), "the secret is in the log");
    cr_assert(!tc_log_has(&c, 0, "not-it", NULL), "the wrong secret is in the log");
    cJSON *s = tc_status(&c, 0);
    cr_assert_not_null(s, "/status is public");
    cJSON_Delete(s);
    cm_http_client_free(hw);
    cm_http_client_free(hr);
    tc_destroy(&c);
}

static int run_master(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", DFS_MASTER_BIN, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(master_input, help_lists_every_flag)
{
    char cmd[600], out[8192];
    snprintf(cmd, sizeof(cmd), "%s --help", DFS_MASTER_BIN);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, sizeof(out) - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help exit status %d", st);
    /* The design document's flags and the additions, each with its own line. */
    const char *flags[] = {"--id",
                           "--addr",
                           "--http-port",
                           "--peers",
                           "--advertise-addr",
                           "--storage-dir",
                           "--election-timeout-ms",
                           "--heartbeat-ms",
                           "--snapshot-entries",
                           "--secret-file",
                           "--log-level",
                           "--help"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n  %s ", flags[i]);
        cr_assert_not_null(strstr(out, line), "--help does not list %s:\n%s", flags[i], out);
    }
}

Test(master_input, bad_flags_and_unusable_storage_exit_2)
{
    cr_assert_eq(run_master("--help"), 0);
    cr_assert_eq(run_master("--id 1"), 2, "no --storage-dir");
    cr_assert_eq(run_master("--storage-dir /tmp/x"), 2, "no --id");
    cr_assert_eq(run_master("--id 0 --storage-dir /tmp/x"), 2);
    cr_assert_eq(run_master("--id one --storage-dir /tmp/x"), 2);
    cr_assert_eq(run_master("--id 1 --storage-dir /tmp/x --http-port 70000"), 2);
    cr_assert_eq(run_master("--id 1 --storage-dir /tmp/x --addr nohostport"), 2);
    cr_assert_eq(run_master("--id 1 --storage-dir /tmp/x --bogus"), 2);
    cr_assert_eq(run_master("--id 1 --storage-dir /tmp/x --log-level loud"), 2);
    cr_assert_eq(run_master("--id 1 --storage-dir /etc/passwd"), 2, "not a directory");
    cr_assert_eq(run_master("--id 1 --storage-dir /proc/nope/x"), 2, "cannot be created");
    cr_assert_eq(run_master("--id 1 --storage-dir /tmp/x --heartbeat-ms 500"), 2,
                 "heartbeat not below the election timeout");
}

Test(master_input, sigterm_while_waiting_for_peers_exits_cleanly, .timeout = 30)
{
    struct tc_cluster c;
    tc_init(&c, 1, NULL);
    /* One peer that never answers: the master waits at bootstrap to learn its id. */
    char args[256];
    snprintf(args, sizeof(args), "--peers http://127.0.0.1:%u", c.m[1].http_port);
    c.extra_args = args;
    tc_start(&c, 0);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", c.m[0].http_port);
    struct cm_http_response r = {0};
    int rc;
    uint64_t deadline = tc_now_ms() + 10000;
    do { /* the peer port answers "STARTING" (503) while it waits */
        cm_http_response_clear(&r);
        rc = cm_http_get_json(c.http, url, &r);
    } while (r.status != 503 && tc_now_ms() < deadline);
    cr_assert_eq(r.status, 503, "rc %d", rc);
    cm_http_response_clear(&r);
    kill(c.m[0].pid, SIGTERM);
    int st = 0;
    pid_t got = 0;
    deadline = tc_now_ms() + 5000;
    while ((got = waitpid(c.m[0].pid, &st, WNOHANG)) == 0 && tc_now_ms() < deadline)
        usleep(10 * 1000);
    cr_assert_eq(got, c.m[0].pid, "still waiting for peers after SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    c.m[0].pid = 0;
    tc_destroy(&c);
}

/* Master i's /status once every message queued before this call was handled: /status runs a
 * step on the node's loop (rn_run_sync) after reading its state, so the first call returns
 * after the earlier messages' batch, the second after a later batch, and the third reads the
 * state that batch left. */
static cJSON *status_after_queue(struct tc_cluster *c, int i)
{
    for (int k = 0; k < 2; k++)
        cJSON_Delete(tc_status(c, i));
    cJSON *s = tc_status(c, i);
    cr_assert_not_null(s, "master %d does not answer", i + 1);
    return s;
}

static uint64_t u64_of(const cJSON *s, const char *field)
{
    uint64_t v = 0;
    cr_assert_eq(cm_json_get_u64(s, field, &v), 0, "no %s", field);
    return v;
}

/* Waits until follower f applied everything leader committed; with term not 0, also fails the
 * test if either one's term is not term. */
static void wait_applied(struct tc_cluster *c, int f, int leader, uint64_t term)
{
    uint64_t deadline = tc_now_ms() + 10000;
    for (;;) {
        cJSON *sl = status_after_queue(c, leader), *sf = status_after_queue(c, f);
        uint64_t commit = u64_of(sl, "commit_index"), applied = u64_of(sf, "applied_index");
        uint64_t tl = u64_of(sl, "term"), tf = u64_of(sf, "term");
        cJSON_Delete(sl);
        cJSON_Delete(sf);
        cr_assert(term == 0 || (tl == term && tf == term), "the term moved: %llu, %llu",
                  (unsigned long long)tl, (unsigned long long)tf);
        if (applied >= commit)
            return;
        cr_assert_lt(tc_now_ms(), deadline, "master %d does not apply commit index %llu", f + 1,
                     (unsigned long long)commit);
        usleep(20 * 1000);
    }
}

/* POSTs body to path on master i's peer port; the message must be taken (200 {}, the Raft core
 * answers it with a message of its own). */
static void post_peer(struct tc_cluster *c, int i, const char *path, const char *body)
{
    int st = 0;
    cr_assert_eq(
        raw_post(c->http, c->m[i].http_port, path, body, strlen(body), "application/json", &st), 0,
        "%s: %s", path, body);
    cr_assert_eq(st, 200);
}

Test(master_input, old_term_messages_from_a_member_change_nothing, .timeout = 120)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int old = tc_wait_leader(&c, 10000);
    cr_assert_geq(old, 0);
    char key[16];
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        cr_assert_eq(tc_put(&c, "w", (uint64_t)k + 1, key, "before", 10000), 0);
    }
    /* Leadership moves on, so the first leader's term is an old one (and at least 1, a term the
     * core would otherwise accept). */
    int now = (old + 1) % 3, f = (old + 2) % 3;
    char body[8192];
    snprintf(body, sizeof(body), "{\"target\":%d}", now + 1);
    cr_assert_eq(tc_admin(&c, old, "/admin/transfer-leader", body), 0);
    cr_assert_eq(tc_wait_leader(&c, 10000), now);
    wait_applied(&c, f, now, 0);
    cJSON *s0 = status_after_queue(&c, f);
    uint64_t term = u64_of(s0, "term"), vote = u64_of(s0, "vote"), last = u64_of(s0, "last_index"),
             commit = u64_of(s0, "commit_index");
    cr_assert_eq(u64_of(s0, "leader_id"), (uint64_t)now + 1);
    cr_assert_geq(term, 2);
    cJSON_Delete(s0);

    /* The first leader's messages of its old term, as if delayed in the network, to follower
     * f. Each would do damage if taken: the append replaces f's whole log with no-ops of the
     * old term (last + 2 of them, committed), the timeout-now starts an election, the votes ask
     * for f's vote with a log that looks longer. */
    size_t len = (size_t)snprintf(body, sizeof(body),
                                  "{\"from\":%d,\"to\":%d,\"term\":%llu,\"prev_index\":0,"
                                  "\"prev_term\":0,\"commit\":%llu,\"entries\":[",
                                  old + 1, f + 1, (unsigned long long)term - 1,
                                  (unsigned long long)last + 2);
    for (uint64_t k = 0; k < last + 2; k++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"term\":%llu,\"type\":1,"
                                "\"data\":\"\"}",
                                k ? "," : "", (unsigned long long)term - 1);
    snprintf(body + len, sizeof(body) - len, "]}");
    cr_assert_lt(len + 2, sizeof(body));
    post_peer(&c, f, "/raft/append", body);
    snprintf(body, sizeof(body), "{\"from\":%d,\"to\":%d,\"term\":%llu}", now + 1, f + 1,
             (unsigned long long)term - 1);
    post_peer(&c, f, "/raft/timeout-now", body);
    const char *votes[] = {"/raft/vote", "/raft/pre-vote"};
    for (int k = 0; k < 2; k++) {
        snprintf(body, sizeof(body),
                 "{\"from\":%d,\"to\":%d,\"term\":%llu,\"last_log_index\":%llu,"
                 "\"last_log_term\":%llu}",
                 old + 1, f + 1, (unsigned long long)term - 1, (unsigned long long)last + 100,
                 (unsigned long long)term - 1);
        post_peer(&c, f, votes[k], body);
    }

    /* f took none of it: same term, vote, leader, log and commit index. */
    cJSON *s1 = status_after_queue(&c, f);
    const char *role = "";
    cm_json_get_str(s1, "role", 32, &role, NULL);
    cr_assert_str_eq(role, "FOLLOWER");
    cr_assert_eq(u64_of(s1, "term"), term);
    cr_assert_eq(u64_of(s1, "vote"), vote);
    cr_assert_eq(u64_of(s1, "leader_id"), (uint64_t)now + 1);
    cr_assert_eq(u64_of(s1, "last_index"), last, "entries of the old term were appended");
    cr_assert_eq(u64_of(s1, "commit_index"), commit);
    cJSON_Delete(s1);

    /* The cluster still commits, f included, in the same term, with the old data intact. */
    cr_assert_eq(tc_put(&c, "w", 100, "after", "yes", 10000), 0);
    wait_applied(&c, f, now, term);
    char *v = NULL;
    cr_assert_eq(tc_get_at(&c, f, "after", true, &v), 0);
    cr_assert_str_eq(v, "yes");
    free(v);
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        cr_assert_eq(tc_get_at(&c, f, key, true, &v), 0, "%s", key);
        cr_assert_str_eq(v, "before");
        free(v);
    }
    cr_assert_eq(tc_wait_leader(&c, 10000), now);
    tc_destroy(&c);
}

/* POSTs body to master i's peer port with the replies header (or without) and returns the
 * answer's JSON. */
static cJSON *post_peer_answer(struct tc_cluster *c, int i, const char *path, const char *body,
                               bool replies)
{
    char url[128];
    const char *headers[] = {"X-Dfs-Raft-Replies: 1", NULL};
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->m[i].http_port, path);
    struct cm_http_call call = {.method = "POST",
                                .url = url,
                                .body = body,
                                .body_len = strlen(body),
                                .content_type = "application/json",
                                .headers = replies ? headers : NULL};
    struct cm_http_response r = {0};
    cr_assert_eq(cm_http_call(c->http, &call, &r), 0, "%s: %s", path, body);
    cr_assert_eq(r.status, 200);
    cJSON *j = r.json;
    r.json = NULL;
    cm_http_response_clear(&r);
    cr_assert_not_null(j);
    return j;
}

Test(master_input, a_peer_that_asks_gets_its_reply_in_the_answer, .timeout = 60)
{
    struct tc_cluster c;
    tc_init(&c, 3, NULL);
    tc_start_all(&c);
    int leader = tc_wait_leader(&c, 10000);
    cr_assert_geq(leader, 0);
    int f = (leader + 1) % 3, s = (leader + 2) % 3;
    cJSON *st = status_after_queue(&c, f);
    uint64_t term = u64_of(st, "term");
    cJSON_Delete(st);

    /* A pre-vote "from" the other follower with an empty log: f refuses it (a pre-vote changes
     * nothing), and the refusal comes back in the answer to the request that asked. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"from\":%d,\"to\":%d,\"term\":%llu,\"last_log_index\":0,\"last_log_term\":0}",
             s + 1, f + 1, (unsigned long long)term + 1);
    cJSON *a = post_peer_answer(&c, f, "/raft/pre-vote", body, true);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(a, "messages");
    cr_assert(cJSON_IsArray(msgs), "no messages in the answer");
    cr_assert_eq(cJSON_GetArraySize(msgs), 1);
    const cJSON *m = cJSON_GetArrayItem(msgs, 0);
    const char *path = "";
    bool pre = false, granted = true;
    cr_assert_eq(cm_json_get_str(m, "path", 64, &path, NULL), 0);
    cr_assert_str_eq(path, "/raft/vote-response");
    cr_assert_eq(u64_of(m, "from"), (uint64_t)f + 1);
    cr_assert_eq(u64_of(m, "to"), (uint64_t)s + 1);
    cr_assert_eq(cm_json_get_bool(m, "pre", &pre), 0);
    cr_assert_eq(cm_json_get_bool(m, "granted", &granted), 0);
    cr_assert(pre && !granted);
    cJSON_Delete(a);

    /* A sender that does not ask gets "{}" at once; the reply goes out as a request. */
    a = post_peer_answer(&c, f, "/raft/pre-vote", body, false);
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(a, "messages"));
    cJSON_Delete(a);

    /* Nothing changed, and the cluster commits. */
    st = status_after_queue(&c, f);
    cr_assert_eq(u64_of(st, "term"), term);
    cr_assert_eq(u64_of(st, "leader_id"), (uint64_t)leader + 1);
    cJSON_Delete(st);
    cr_assert_eq(tc_put(&c, "w", 1, "k", "v", 10000), 0);
    tc_destroy(&c);
}
