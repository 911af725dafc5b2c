/* dfs-master: the one server struct of the daemon and its lifecycle. The peer port carries Raft
 * and the admin endpoints (/status, /metrics, /admin/...); the client port (--addr) the client
 * API. Endpoints are listed in docs/protocol.md. */
#ifndef DFS_MASTER_MASTER_H
#define DFS_MASTER_MASTER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/http_server.h"
#include "master/block_health.h"
#include "master/cs_registry.h"
#include "master/kv_fsm.h"
#include "master/master_fsm.h"
#include "master/namespace.h"
#include "master/raft_node.h"
#include "master/raft_transport.h"

#define MASTER_DEFAULT_ADDR      "0.0.0.0:50051"
#define MASTER_DEFAULT_HTTP_PORT 8080

struct master_config {
    raft_id id;
    char addr_host[64]; /* --addr, split */
    uint16_t addr_port;
    uint16_t http_port;
    char http_bind[64]; /* address of the peer/admin listener; default 0.0.0.0 */
    const char *peers;  /* --peers as given */
    char advertise[RAFT_ADDR_MAX];
    const char *storage_dir;
    uint32_t election_timeout_ms; /* the minimum; the maximum is twice it (150-300 by default) */
    uint32_t heartbeat_ms;
    uint64_t snapshot_entries;
    const char *secret_file;
    bool join;          /* this master joins an existing cluster as a non-voter */
    bool no_lease_read; /* reads always confirm leadership with a heartbeat round */
    /* Set (non-zero) by a signal handler: stop waiting for peers at bootstrap. May be NULL. */
    const volatile sig_atomic_t *stop;
    uint64_t cs_dead_timeout_ms; /* a chunkserver silent this long is dead */
    uint64_t orphan_grace_ms;    /* unreferenced blocks allocated this long ago are orphans */
};

struct master {
    struct master_config cfg;
    struct cm_secret secret;
    struct raft_store *store; /* until handed to the node */
    struct rn_node *node;
    struct rt_transport *tr;
    struct kv_fsm *kv;
    struct ns *ns;
    struct cs_registry *cs;      /* the chunkserver table and the leader's soft state */
    struct master_fsm fsm;       /* kv and ns, as the Raft node applies them */
    struct block_health *health; /* the leader's under-replicated and missing block counts */
    struct cm_http_server *peer_srv;
    struct cm_http_server *client_srv;
    atomic_bool ready; /* the node runs: Raft messages are taken */
    uint64_t started_ms;
    /* Garbage acknowledgement (cs_api.c): one GC_ACK proposal at a time, at most one a
     * GC_ACK_INTERVAL_MS, resuming the pending list at gc_cursor. */
    atomic_bool gc_busy;
    atomic_uint_fast64_t gc_last_ms;
    atomic_uint_fast64_t gc_cursor;
    atomic_bool orphan_busy; /* an ORPHAN_BOUND proposal is out */
};

/* Fills cfg with defaults. */
void master_config_default(struct master_config *cfg);

/* Starts everything: peer listener, bootstrap (learning the peers' ids once), the Raft node and
 * the client listener. Errors are logged; returns 0 or a negative cm code. */
int master_start(const struct master_config *cfg, struct master **out);
/* Stops listeners and the node, answering what waits with UNAVAILABLE. NULL is a no-op. */
void master_stop(struct master *m);

/* Route tables (peer_api.c, admin_api.c, client_api.c). */
int master_add_peer_routes(struct master *m, struct cm_http_server *srv);
int master_add_admin_routes(struct master *m, struct cm_http_server *srv);
int master_add_client_routes(struct master *m, struct cm_http_server *srv);
/* The filesystem endpoints of the client port (client_ns_api.c); called by
 * master_add_client_routes. */
int master_add_ns_routes(struct master *m, struct cm_http_server *srv);
/* The chunkserver endpoints and block placement of the client port (cs_api.c); called by
 * master_add_client_routes. */
int master_add_cs_routes(struct master *m, struct cm_http_server *srv);

/* Whether this master is the leader now (cheap, any thread). */
bool master_is_leader(struct master *m);

/* Answers err with NOT_LEADER's leader hint when err is CM_E_NOT_LEADER: builds the "extra"
 * object ({"leader_id":N,"leader_hint":"host:port","leader_url":"http://..."}) or NULL. */
cJSON *master_leader_hint(struct master *m);

/* Milliseconds on the monotonic clock. */
uint64_t master_now_ms(void);

#endif
