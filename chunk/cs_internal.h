/* The chunkserver's server struct, shared by the files that serve its HTTP API. Internal to
 * chunk/: nothing outside the daemon includes it. */
#ifndef DFS_CHUNK_CS_INTERNAL_H
#define DFS_CHUNK_CS_INTERNAL_H

#include <stdatomic.h>

#include "chunk/chunkserver.h"
#include "chunk/master_link.h"
#include "chunk/pipeline.h"
#include "chunk/replicator.h"
#include "chunk/scrubber.h"
#include "chunk/store.h"
#include "common/http_client.h"
#include "common/http_server.h"

/* Most downstream chunkservers a PUT may name. */
#define CS_PIPELINE_MAX 8

struct chunkserver {
    struct cs_config cfg;
    char advertise[CS_ADDR_MAX];
    struct cs_store *store;
    struct cm_http_server *http;
    struct cm_http_client *peers;        /* to other chunkservers: pipelines and replication */
    struct cs_master_link *_Atomic link; /* NULL without masters and while starting */
    struct cs_replicator *repl;
    struct cs_scrubber *scrub; /* NULL when scrubbing is off */
    struct cs_waitgroup fwds;  /* running pipeline forwarders */
    uint64_t started_ms;
    atomic_uint_fast64_t inflight; /* data requests in progress: the heartbeat's load */
    atomic_uint_fast64_t puts, puts_failed, gets, gets_failed, deletes, replicas_made;
    atomic_uint_fast64_t pipeline_errors, bytes_received, bytes_served;
};

/* Adds the data API routes (/blocks/...). Returns 0 or a cm_http_server_add_routes error. */
int cs_data_api_add(struct chunkserver *cs);
/* Adds GET /status and GET /metrics. */
int cs_status_api_add(struct chunkserver *cs);
/* Normalizes a peer "host:port" (IPv6 in brackets) into out. Returns 0 or CM_E_INVAL. */
int cs_peer_addr(const char *in, char *out, size_t cap);
uint64_t cs_now_ms(void);

#endif
