/* Starting and stopping a chunkserver: the order matters. Start: store, peer client, replicator,
 * HTTP (the port fixes the advertised address), master link, scrubber. Stop: HTTP first (no new
 * work), then the background threads, then the forwarders still finishing, then the store. */
#include "chunk/chunkserver.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunk/cs_internal.h"
#include "common/errors.h"
#include "common/log.h"

/* Large enough that a block arrives in big pieces (the body is read into this buffer). */
#define CONN_MEMORY (256 * 1024)

uint64_t cs_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cs_config_default(struct cs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->bind_host, sizeof(cfg->bind_host), "0.0.0.0");
    cfg->port = 7200;
    cfg->block_size = CS_DEFAULT_BLOCK_SIZE;
    cfg->journal_bytes = CS_DEFAULT_JOURNAL_BYTES;
    cfg->threads = CS_DEFAULT_THREADS;
    cfg->heartbeat_ms = CS_DEFAULT_HEARTBEAT_MS;
    cfg->report_interval_s = CS_DEFAULT_REPORT_S;
    cfg->scrub_rate = CS_DEFAULT_SCRUB_RATE;
    cfg->scrub_pause_ms = CS_DEFAULT_SCRUB_PAUSE_S * 1000;
    cfg->pipeline_timeout_ms = CS_DEFAULT_PIPELINE_MS;
    cfg->master_timeout_ms = CS_DEFAULT_MASTER_TIMEOUT;
}

int cs_peer_addr(const char *in, char *out, size_t cap)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    int len;

    if (in == NULL || cm_endpoints_parse(in, &hp, &n) < 0)
        return CM_E_INVAL;
    if (n != 1) {
        free(hp);
        return CM_E_INVAL;
    }
    if (strchr(hp[0].host, ':') != NULL)
        len = snprintf(out, cap, "[%s]:%u", hp[0].host, hp[0].port);
    else
        len = snprintf(out, cap, "%s:%u", hp[0].host, hp[0].port);
    free(hp);
    return len > 0 && (size_t)len < cap ? 0 : CM_E_INVAL;
}

static void on_corrupt(void *ctx, uint64_t id)
{
    struct chunkserver *cs = ctx;
    struct cs_master_link *link = atomic_load(&cs->link);

    (void)id;
    if (link != NULL)
        cs_master_link_wake(link);
}

static uint64_t load_of(void *ctx)
{
    struct chunkserver *cs = ctx;

    return atomic_load(&cs->inflight);
}

static uint64_t repl_queued_of(void *ctx)
{
    struct chunkserver *cs = ctx;
    struct cs_repl_stats st;

    cs_replicator_stats(cs->repl, &st);
    return st.queued;
}

static int replicate_cmd(void *ctx, uint64_t id, const char *target)
{
    struct chunkserver *cs = ctx;
    char addr[CS_ADDR_MAX];

    if (cs_peer_addr(target, addr, sizeof(addr)) < 0 || strcmp(addr, cs->advertise) == 0)
        return CM_E_INVAL;
    return cs_replicator_submit(cs->repl, id, addr, NULL, NULL);
}

/* The advertised address: as configured, else the bind address (or the host name when binding
 * every interface) with the bound port. */
static int set_advertise(struct chunkserver *cs)
{
    const char *host = cs->cfg.bind_host;
    char name[256], tmp[CS_ADDR_MAX + 8];

    if (cs->cfg.advertise[0] != '\0')
        return cs_peer_addr(cs->cfg.advertise, cs->advertise, sizeof(cs->advertise));
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        if (gethostname(name, sizeof(name)) < 0)
            return CM_E_IO;
        name[sizeof(name) - 1] = '\0';
        host = name;
    }
    if (strchr(host, ':') != NULL)
        snprintf(tmp, sizeof(tmp), "[%s]:%u", host, cm_http_server_port(cs->http));
    else
        snprintf(tmp, sizeof(tmp), "%s:%u", host, cm_http_server_port(cs->http));
    return cs_peer_addr(tmp, cs->advertise, sizeof(cs->advertise));
}

int cs_start(const struct cs_config *cfg, struct chunkserver **out)
{
    struct cm_http_server_config scfg = {0};
    struct cm_http_client_config ccfg = {0};
    struct cs_store_config stcfg = {0};
    struct cs_scan_result scan;
    struct chunkserver *cs;
    int rc;

    if (cfg == NULL || out == NULL || cfg->storage_dir == NULL || cfg->heartbeat_ms == 0)
        return CM_E_INVAL;
    cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return CM_E_NOMEM;
    cs->cfg = *cfg;
    cs->started_ms = cs_now_ms();
    atomic_init(&cs->link, NULL);
    rc = cs_waitgroup_init(&cs->fwds);
    if (rc < 0)
        goto fail_free;

    stcfg.dir = cfg->storage_dir;
    stcfg.block_size = cfg->block_size;
    stcfg.journal_bytes = cfg->journal_bytes;
    stcfg.on_corrupt = on_corrupt;
    stcfg.ctx = cs;
    rc = cs_store_open(&stcfg, &cs->store, &scan);
    if (rc < 0)
        goto fail_wg;
    LOG_INFO("store %s: %zu blocks (%" PRIu64 " bytes), %zu corrupt, %zu unfinished writes "
             "removed",
             cfg->storage_dir, scan.blocks, scan.bytes, scan.corrupt, scan.temps_removed);

    ccfg.timeout_ms = cfg->pipeline_timeout_ms;
    ccfg.secret = &cfg->secret;
    rc = cm_http_client_new(&ccfg, &cs->peers);
    if (rc < 0)
        goto fail_store;
    rc = cs_replicator_start(cs->store, cs->peers, cfg->pipeline_timeout_ms, &cs->repl);
    if (rc < 0)
        goto fail_peers;

    scfg.bind_addr = cfg->bind_host[0] ? cfg->bind_host : NULL;
    scfg.port = cfg->port;
    scfg.threads = cfg->threads ? cfg->threads : CS_DEFAULT_THREADS;
    scfg.secret = &cfg->secret;
    scfg.conn_memory = CONN_MEMORY;
    rc = cm_http_server_new(&scfg, &cs->http);
    if (rc < 0)
        goto fail_repl;
    rc = cs_data_api_add(cs);
    if (rc == 0)
        rc = cs_status_api_add(cs);
    if (rc == 0)
        rc = cm_http_server_start(cs->http);
    if (rc == 0)
        rc = set_advertise(cs);
    if (rc < 0)
        goto fail_http;
    LOG_INFO("chunkserver %s serving on port %u, storage id %s", cs->advertise,
             cm_http_server_port(cs->http), cs_store_id(cs->store));

    if (cfg->masters != NULL) {
        struct cs_master_link_config lcfg = {0};
        struct cs_master_link *link = NULL;
        lcfg.masters = cfg->masters;
        lcfg.secret = &cfg->secret;
        lcfg.op_timeout_ms = cfg->master_timeout_ms;
        lcfg.heartbeat_ms = cfg->heartbeat_ms;
        lcfg.report_interval_ms = cfg->report_interval_s * 1000;
        lcfg.store = cs->store;
        lcfg.addr = cs->advertise;
        lcfg.rack = cfg->rack;
        lcfg.load = load_of;
        lcfg.repl_queued = repl_queued_of;
        lcfg.replicate = replicate_cmd;
        lcfg.ctx = cs;
        rc = cs_master_link_start(&lcfg, &link);
        if (rc < 0)
            goto fail_http;
        atomic_store(&cs->link, link);
    }
    if (cfg->scrub_rate > 0) {
        rc = cs_scrubber_start(cs->store, cfg->scrub_rate, cfg->scrub_pause_ms, &cs->scrub);
        if (rc < 0)
            goto fail_link;
    }
    *out = cs;
    return 0;

fail_link:
    cs_master_link_stop(atomic_exchange(&cs->link, NULL));
fail_http:
    cm_http_server_free(cs->http);
    cs_waitgroup_wait(&cs->fwds);
fail_repl:
    cs_replicator_stop(cs->repl);
fail_peers:
    cm_http_client_free(cs->peers);
fail_store:
    cs_store_close(cs->store);
fail_wg:
    cs_waitgroup_destroy(&cs->fwds);
fail_free:
    free(cs);
    return rc;
}

uint16_t cs_port(const struct chunkserver *cs)
{
    return cm_http_server_port(cs->http);
}

const char *cs_advertise(const struct chunkserver *cs)
{
    return cs->advertise;
}

void cs_stop(struct chunkserver *cs)
{
    if (cs == NULL)
        return;
    cm_http_server_stop(cs->http);
    cs_scrubber_stop(cs->scrub);
    cs_master_link_stop(atomic_exchange(&cs->link, NULL));
    cs_replicator_stop(cs->repl);
    cs_waitgroup_wait(&cs->fwds);
    cm_http_server_free(cs->http);
    cm_http_client_free(cs->peers);
    cs_store_close(cs->store);
    cs_waitgroup_destroy(&cs->fwds);
    LOG_INFO("chunkserver %s stopped", cs->advertise);
    free(cs);
}
