/* dfs-chunkserver as a library: one server struct owning store, data API, master link,
 * replicator and scrubber, started and stopped as a unit. Parses no command line. */
#ifndef DFS_CHUNK_CHUNKSERVER_H
#define DFS_CHUNK_CHUNKSERVER_H

#include <stdint.h>

#include "common/auth.h"
#include "common/resolver.h"

#define CS_DEFAULT_ADDR           "0.0.0.0:7200"
#define CS_DEFAULT_THREADS        8
#define CS_DEFAULT_JOURNAL_BYTES  (64ULL * 1024 * 1024)
#define CS_DEFAULT_HEARTBEAT_MS   3000
#define CS_DEFAULT_REPORT_S       3600
#define CS_DEFAULT_SCRUB_RATE     (8ULL * 1024 * 1024) /* bytes per second */
#define CS_DEFAULT_SCRUB_PAUSE_S  3600
#define CS_DEFAULT_PIPELINE_MS    120000
#define CS_DEFAULT_MASTER_TIMEOUT 10000
#define CS_RACK_MAX               64
#define CS_ADDR_MAX               (CM_HOST_MAX + 10)

struct cs_config {
    char bind_host[CM_ADDR_TEXT_MAX]; /* numeric address to listen on; "" = 0.0.0.0 */
    uint16_t port;                    /* 0: any free port (tests) */
    /* host:port other processes reach this chunkserver at; "": bind_host (or the host name
     * when binding every interface) with the bound port */
    char advertise[CS_ADDR_MAX];
    const char *masters;     /* master endpoint list; NULL: no master link (tests) */
    const char *storage_dir; /* required */
    char rack[CS_RACK_MAX];  /* "" allowed */
    struct cm_secret secret; /* len 0: none */
    uint64_t block_size;     /* largest block; 0: 64 MiB */
    uint64_t journal_bytes;  /* small-block journal of a new store; 0: none */
    unsigned threads;        /* HTTP worker threads; 0: default */
    uint32_t heartbeat_ms;
    uint32_t report_interval_s; /* full block report period */
    uint64_t scrub_rate;        /* bytes per second; 0: no scrubbing */
    uint32_t scrub_pause_ms;    /* between two scrub passes */
    long pipeline_timeout_ms;   /* one PUT to a downstream or a replication target */
    long master_timeout_ms;     /* one operation towards the masters */
};

/* Fills the defaults (no storage_dir, no masters). */
void cs_config_default(struct cs_config *cfg);

struct chunkserver;

/* Opens the store, starts serving and (with masters) registering and heartbeating. cfg is
 * copied except masters and storage_dir, which must stay valid until cs_stop. Errors: those of
 * cs_store_open (CM_E_BUSY, CM_E_STORE, CM_E_ACCES, CM_E_IO, ...), CM_E_IO (cannot listen),
 * CM_E_INVAL, CM_E_NOMEM. Stop with cs_stop. */
int cs_start(const struct cs_config *cfg, struct chunkserver **out);
/* The bound port. */
uint16_t cs_port(const struct chunkserver *cs);
/* The advertised "host:port"; valid until cs_stop. */
const char *cs_advertise(const struct chunkserver *cs);
/* Stops everything, waits for running transfers and frees cs. NULL is a no-op. */
void cs_stop(struct chunkserver *cs);

#endif
