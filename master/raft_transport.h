/* Sends Raft messages to the other masters over HTTP (the async curl engine: one slow or dead
 * peer never delays the others) and keeps, per peer, its URL, its resolved address (c-ares,
 * re-resolved after a failed connection) and the client address it advertises. */
#ifndef DFS_MASTER_RAFT_TRANSPORT_H
#define DFS_MASTER_RAFT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"
#include "raft/raft.h"

struct rt_config {
    raft_id self;
    const char *advertise;          /* this master's client address, sent with every message */
    const struct cm_secret *secret; /* may be NULL */
    long timeout_ms;                /* per request; default 2000 */
    const char *dns_servers;        /* for tests; NULL = system resolver */
    size_t max_queue;               /* messages queued per peer before dropping; default 4096 */
    /* The messages a peer sent back in the answer to a request (RW_HDR_REPLIES), all of them at
     * once, for the node; called on the engine thread. NULL: none are asked for. */
    void (*deliver)(void *ctx, const struct raft_msg *const *ms, size_t n);
    void *deliver_ctx;
    uint32_t reply_wait_ms; /* how long a peer's request is held for our reply; default 20 */
};

struct rt_transport;

int rt_new(const struct rt_config *cfg, struct rt_transport **out);
void rt_free(struct rt_transport *t);

/* Sets (or changes) the peer URL of id: "http://host:port". Returns 0 or CM_E_INVAL. */
int rt_set_peer(struct rt_transport *t, raft_id id, const char *url);
/* Takes the URLs of a configuration's members (non-empty addr fields). */
void rt_set_conf(struct rt_transport *t, const struct raft_conf *conf);
/* rt_set_conf in the form of rn_transport.conf_changed. */
void rt_conf_changed(void *transport, const struct raft_conf *conf);

/* Queues m for its destination (the rn_transport.send contract: never blocks on the network). */
void rt_send(void *transport, const struct raft_msg *m, const char *snapshot_path);

/* Replies in answers (RW_HDR_REPLIES). A request from peer `from` that asked for them and
 * carries a message wanting a reply: rt_park_reply, before the message goes to the node, defers
 * req's answer and returns true when this transport will answer it (the handler then returns 0
 * and never touches req again): with the messages for `from` sent until the node's update ends
 * (rt_flush), or with none after reply_wait_ms. It returns false (answer as usual) when messages
 * for `from` are queued or in flight (order is kept) or on any failure. */
struct cm_http_req;
bool rt_park_reply(struct rt_transport *t, raft_id from, struct cm_http_req *req);
/* The message could not go to the node after all: a parked answer for `from` is given now. */
void rt_unpark_reply(struct rt_transport *t, raft_id from);
/* rn_transport.flush: the node's update is sent; parked answers with messages go out. */
void rt_flush(void *transport);
/* Before the node stops: no more deliveries, and parked answers go out empty. */
void rt_stop_replies(struct rt_transport *t);

/* Records the client address a peer advertised (from the X-Dfs-Advertise header). */
void rt_note_advertise(struct rt_transport *t, raft_id id, const char *advertise);
/* Copies the advertised client address of id into buf; returns 0 or CM_E_NOENT. */
int rt_get_advertise(struct rt_transport *t, raft_id id, char *buf, size_t cap);
/* Copies the URL of id into buf; returns 0 or CM_E_NOENT. */
int rt_get_url(struct rt_transport *t, raft_id id, char *buf, size_t cap);

/* Per-peer counters for /metrics and /status. */
struct rt_peer_stats {
    raft_id id;
    uint64_t sent, failed, dropped;
    int last_err;
};
size_t rt_get_stats(struct rt_transport *t, struct rt_peer_stats *out, size_t cap);

#endif
