/* Raft endpoints on the peer port: one POST per message (or a batch), queued to the node. A
 * message wanting a reply (an append, a vote) from a sender that takes replies in answers
 * (RW_HDR_REPLIES) is answered with the reply once the node has it, or with none after a short
 * wait (raft_transport.c); anything else is answered at once and the reply travels as a request
 * of its own. Plus /raft/hello for bootstrapping. */
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "master/master.h"
#include "master/raft_wire.h"

static void note_sender(struct master *m, struct cm_http_req *req, raft_id from)
{
    const char *adv = cm_http_req_header(req, RW_HDR_ADVERTISE);
    if (adv != NULL && adv[0] != 0)
        rt_note_advertise(m->tr, from, adv);
}

/* Whether msg is for this node and wants a reply, which the answer to its request may then
 * carry (rt_park_reply; parked before the message reaches the node, which may reply at once). */
static bool wants_reply(const struct master *m, const struct raft_msg *msg)
{
    return msg->to == m->cfg.id &&
           (msg->type == RAFT_MSG_VOTE || msg->type == RAFT_MSG_APPEND ||
            msg->type == RAFT_MSG_SNAPSHOT || msg->type == RAFT_MSG_READ_INDEX);
}

static int deliver(struct master *m, struct cm_http_req *req, const struct raft_msg *msg)
{
    if (msg->to != m->cfg.id) {
        LOG_WARN("raft: message for node %lu arrived at node %lu (from %s); check --peers",
                 (unsigned long)msg->to, (unsigned long)m->cfg.id, cm_http_req_peer(req));
        return CM_E_INVAL;
    }
    note_sender(m, req, msg->from);
    return rn_receive(m->node, msg);
}

static int h_raft_json(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    struct rw_msg w;
    int rc = rw_decode_json(cm_http_req_path(req), cm_http_req_json(req), &w);
    if (rc != 0) {
        LOG_WARN("raft: rejected malformed %s from %s: %s", cm_http_req_path(req),
                 cm_http_req_peer(req), cm_strerror(rc));
        return rc;
    }
    bool parked = wants_reply(m, &w.msg) && rt_park_reply(m->tr, w.msg.from, req);
    rc = deliver(m, req, &w.msg);
    if (rc != 0 && parked)
        rt_unpark_reply(m->tr, w.msg.from);
    rw_msg_free(&w);
    return rc;
}

static int h_raft_batch(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    const cJSON *arr, *item;
    int rc = cm_json_get_array(cm_http_req_json(req), "messages", &arr);
    if (rc != 0)
        return rc;
    int n = cJSON_GetArraySize(arr);
    if (n > RW_MAX_BATCH)
        return CM_E_RANGE;
    struct rw_msg *ms = calloc(n > 0 ? (size_t)n : 1, sizeof(*ms));
    if (ms == NULL)
        return CM_E_NOMEM;
    int k = 0;
    /* All or nothing: a batch with one malformed message is refused whole. */
    cJSON_ArrayForEach(item, arr)
    {
        if ((rc = rw_decode_batch_item(item, &ms[k])) != 0)
            break;
        k++;
    }
    if (rc != 0)
        LOG_WARN("raft: rejected malformed batch from %s: message %d: %s", cm_http_req_peer(req), k,
                 cm_strerror(rc));
    /* The answer carries replies only to a batch from one sender, all of it for this node. */
    raft_id from = k > 0 ? ms[0].msg.from : 0;
    bool wanted = false, one_sender = true;
    for (int i = 0; i < k; i++) {
        one_sender &= ms[i].msg.from == from && ms[i].msg.to == m->cfg.id;
        wanted |= wants_reply(m, &ms[i].msg);
    }
    bool parked = rc == 0 && one_sender && wanted && rt_park_reply(m->tr, from, req);
    const struct raft_msg **pm = rc == 0 ? calloc(k > 0 ? (size_t)k : 1, sizeof(*pm)) : NULL;
    if (rc == 0 && pm == NULL)
        rc = CM_E_NOMEM;
    for (int i = 0; i < k && rc == 0; i++) {
        if (ms[i].msg.to != m->cfg.id)
            rc = deliver(m, req, &ms[i].msg); /* refused, with its log line */
        else
            note_sender(m, req, ms[i].msg.from);
        pm[i] = &ms[i].msg;
    }
    if (rc == 0)
        rc = rn_receive_many(m->node, pm, (size_t)k);
    if (rc != 0 && parked)
        rt_unpark_reply(m->tr, from);
    for (int i = 0; i < k; i++)
        rw_msg_free(&ms[i]);
    free(pm);
    free(ms);
    return rc;
}

static const char *req_header(void *ctx, const char *name)
{
    return cm_http_req_header(ctx, name);
}

static int h_raft_snapshot(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    size_t len = 0;
    const char *body = cm_http_req_body(req, &len);
    struct raft_msg msg;
    struct raft_conf conf; /* msg points to it; rn_receive copies both */
    int rc = rw_decode_snapshot(req_header, req, body, len, &msg, &conf);
    if (rc != 0) {
        LOG_WARN("raft: rejected malformed snapshot chunk from %s: %s", cm_http_req_peer(req),
                 cm_strerror(rc));
        return rc;
    }
    bool parked = wants_reply(m, &msg) && rt_park_reply(m->tr, msg.from, req);
    if ((rc = deliver(m, req, &msg)) != 0 && parked)
        rt_unpark_reply(m->tr, msg.from);
    return rc;
}

static int h_hello(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cm_json_add_u64(o, "id", m->cfg.id) != 0 ||
        !cJSON_AddStringToObject(o, "advertise", m->cfg.advertise)) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    return cm_http_answer_json(req, 200, o);
}

int master_add_peer_routes(struct master *m, struct cm_http_server *srv)
{
    const struct cm_http_route routes[] = {
        {"POST", RW_PATH_VOTE, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_PRE_VOTE, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_VOTE_RESP, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_APPEND, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_APPEND_RESP, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_SNAPSHOT, 0, NULL, NULL, h_raft_snapshot, m},
        {"POST", RW_PATH_SNAPSHOT_RESP, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_TIMEOUT_NOW, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_READ_INDEX, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_READ_INDEX_RESP, CM_HTTP_JSON, NULL, NULL, h_raft_json, m},
        {"POST", RW_PATH_BATCH, CM_HTTP_JSON, NULL, NULL, h_raft_batch, m},
        {"GET", RW_PATH_HELLO, 0, NULL, NULL, h_hello, m},
    };
    return cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0]));
}
