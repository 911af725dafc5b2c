/* The client API on --addr. A non-leader answers NOT_LEADER with the leader's advertised address
 * (the design's leader hint). Mutations are answered once committed and applied; reads are
 * linearizable through ReadIndex (also on a follower when the client asks for follower_read). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "master/master.h"

#define PATH_KV_PUT "/v1/kv/put"
#define PATH_KV_DELETE "/v1/kv/delete"
#define PATH_KV_GET "/v1/kv/get"
#define PATH_LEADER "/v1/leader"

static int not_leader(struct master *m, struct cm_http_req *req)
{
    return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, master_leader_hint(m));
}

bool master_is_leader(struct master *m)
{
    raft_id leader;
    bool self;
    rn_leader(m->node, &leader, &self);
    return self;
}

static void mutation_done(void *arg, int err, const void *res, size_t len)
{
    struct cm_http_deferred *d = arg;
    if (err == 0 || (res != NULL && err != CM_E_UNAVAILABLE && err != CM_E_NOT_LEADER)) {
        /* Applied: the state machine's answer (its result carries the revision). */
        uint64_t rev = 0;
        char buf[32];
        if (res != NULL && len < sizeof(buf)) {
            memcpy(buf, res, len);
            buf[len] = 0;
            rev = strtoull(buf, NULL, 10);
        }
        if (err != 0) {
            cJSON *x = cJSON_CreateObject();
            if (x != NULL)
                cm_json_add_u64(x, "revision", rev);
            cm_http_deferred_error(d, err, NULL, x);
            return;
        }
        cJSON *o = cJSON_CreateObject();
        if (o != NULL)
            cm_json_add_u64(o, "revision", rev);
        cm_http_deferred_json(d, 200, o);
        return;
    }
    cm_http_deferred_error(d, err, NULL, NULL);
}

static int h_kv_mutation(struct cm_http_req *req, void *data, bool put)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    const char *key, *value = NULL, *client;
    uint64_t seq;
    int rc;
    if ((rc = cm_json_get_str(j, "key", KV_MAX_KEY, &key, NULL)) != 0 ||
        (rc = cm_json_get_str(j, "client", KV_MAX_CLIENT, &client, NULL)) != 0 ||
        (rc = cm_json_get_u64(j, "seq", &seq)) != 0 ||
        (put && (rc = cm_json_get_str(j, "value", KV_MAX_VALUE, &value, NULL)) != 0))
        return rc;
    if (!master_is_leader(m))
        return not_leader(m, req);
    char *kv_cmd;
    void *cmd;
    size_t kv_len, len;
    if ((rc = kv_command(client, seq, key, value, &kv_cmd, &kv_len)) != 0)
        return rc;
    rc = master_fsm_wrap(MFSM_TAG_KV, kv_cmd, kv_len, &cmd, &len);
    free(kv_cmd);
    if (rc != 0)
        return rc;
    struct cm_http_deferred *d;
    if ((rc = cm_http_defer(req, &d)) != 0) {
        free(cmd);
        return rc;
    }
    rn_propose(m->node, cmd, len, mutation_done, d);
    free(cmd);
    return 0;
}

static int h_kv_put(struct cm_http_req *req, void *data)
{
    return h_kv_mutation(req, data, true);
}

static int h_kv_delete(struct cm_http_req *req, void *data)
{
    return h_kv_mutation(req, data, false);
}

struct get_ctx {
    struct master *m;
    struct cm_http_deferred *d;
    char key[KV_MAX_KEY + 1];
};

/* On the loop thread, once the read index is applied. */
static void get_ready(void *arg, int err)
{
    struct get_ctx *g = arg;
    char *value = NULL;
    uint64_t rev = 0;
    if (err == 0)
        err = kv_get(g->m->kv, g->key, &value, &rev);
    if (err != 0) {
        cm_http_deferred_error(g->d, err, NULL, NULL);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (o != NULL) {
            cJSON_AddStringToObject(o, "value", value);
            cm_json_add_u64(o, "revision", rev);
        }
        cm_http_deferred_json(g->d, 200, o);
    }
    free(value);
    free(g);
}

static int h_kv_get(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    const char *key;
    bool follower_read = false;
    int rc;
    if ((rc = cm_json_get_str(j, "key", KV_MAX_KEY, &key, NULL)) != 0 ||
        (rc = cm_json_opt_bool(j, "follower_read", &follower_read)) != 0)
        return rc;
    if (!follower_read && !master_is_leader(m))
        return not_leader(m, req);
    struct get_ctx *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return CM_E_NOMEM;
    g->m = m;
    snprintf(g->key, sizeof(g->key), "%s", key);
    if ((rc = cm_http_defer(req, &g->d)) != 0) {
        free(g);
        return rc;
    }
    rn_read(m->node, get_ready, g);
    return 0;
}

static int h_leader(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    cJSON *o = master_leader_hint(m);
    if (o == NULL)
        return CM_E_NOMEM;
    return cm_http_answer_json(req, 200, o);
}

int master_add_client_routes(struct master *m, struct cm_http_server *srv)
{
    const struct cm_http_route routes[] = {
        {"POST", PATH_KV_PUT, CM_HTTP_JSON, NULL, NULL, h_kv_put, m},
        {"POST", PATH_KV_DELETE, CM_HTTP_JSON, NULL, NULL, h_kv_delete, m},
        {"POST", PATH_KV_GET, CM_HTTP_JSON, NULL, NULL, h_kv_get, m},
        {"GET", PATH_LEADER, 0, NULL, NULL, h_leader, m},
    };
    int rc = cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0]));
    if (rc == 0)
        rc = master_add_ns_routes(m, srv);
    return rc ? rc : master_add_cs_routes(m, srv);
}
