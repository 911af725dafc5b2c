/* GET /status (JSON) and GET /metrics (Prometheus text) of a chunkserver. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk/cs_internal.h"
#include "chunk/cs_proto.h"
#include "common/text.h"
#include "common/errors.h"
#include "common/json.h"

struct figures {
    struct cs_store_stats st;
    uint64_t capacity, free_bytes;
    struct cs_master_link_status link;
    bool has_link;
    struct cs_scrub_stats scrub;
    bool has_scrub;
    struct cs_repl_stats repl;
};

static void gather(struct chunkserver *cs, struct figures *f)
{
    struct cs_master_link *link = atomic_load(&cs->link);

    memset(f, 0, sizeof(*f));
    cs_store_stats(cs->store, &f->st);
    cs_store_space(cs->store, &f->capacity, &f->free_bytes);
    if (link != NULL) {
        cs_master_link_status(link, &f->link);
        f->has_link = true;
    }
    if (cs->scrub != NULL) {
        cs_scrubber_stats(cs->scrub, &f->scrub);
        f->has_scrub = true;
    }
    cs_replicator_stats(cs->repl, &f->repl);
}

static int status_handler(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    uint64_t bs = cs_store_block_size(cs->store);
    cJSON *o = cJSON_CreateObject(), *s;
    struct figures f;

    gather(cs, &f);
    if (o == NULL)
        return CM_E_NOMEM;
    cm_json_add_u64(o, CS_F_ID, f.link.cs_id);
    cJSON_AddStringToObject(o, CS_F_STORAGE_ID, cs_store_id(cs->store));
    cJSON_AddStringToObject(o, CS_F_ADDR, cs->advertise);
    cJSON_AddStringToObject(o, CS_F_RACK, cs->cfg.rack);
    cm_json_add_u64(o, CS_F_CAPACITY, f.capacity);
    cm_json_add_u64(o, CS_F_USED, f.st.used);
    cm_json_add_u64(o, CS_F_FREE, f.free_bytes);
    cm_json_add_u64(o, CS_F_BLOCKS, f.st.blocks);
    cm_json_add_u64(o, CS_F_CORRUPT, f.st.corrupt);
    cm_json_add_u64(o, CS_F_BLOCK_SIZE, bs);
    cJSON_AddBoolToObject(o, CS_F_NO_SPACE,
                          f.free_bytes < bs + CS_TRAILER_BYTES(bs / CS_CHUNK_SIZE));
    cm_json_add_u64(o, CS_F_LOAD, atomic_load(&cs->inflight));
    cJSON_AddBoolToObject(o, CS_F_MASTER_LINK, f.has_link);
    cJSON_AddBoolToObject(o, CS_F_REGISTERED, f.link.registered);
    cJSON_AddBoolToObject(o, CS_F_LEADER_KNOWN, f.link.leader_known);
    if (f.link.leader_known)
        cJSON_AddStringToObject(o, CS_F_LEADER, f.link.leader);
    else
        cJSON_AddNullToObject(o, CS_F_LEADER);
    cJSON_AddBoolToObject(o, CS_F_HEARTBEAT_OK, f.link.last_ok);
    cJSON_AddNumberToObject(o, CS_F_HEARTBEAT_MS_AGO, (double)f.link.last_ok_ms);
    cm_json_add_u64(o, CS_F_UPTIME_MS, cs_now_ms() - cs->started_ms);
    s = cJSON_AddObjectToObject(o, CS_F_SCRUB);
    if (s != NULL) {
        cJSON_AddBoolToObject(s, CS_F_ENABLED, f.has_scrub);
        cm_json_add_u64(s, CS_F_PASSES, f.scrub.passes);
        cm_json_add_u64(s, CS_F_BLOCKS, f.scrub.blocks);
        cm_json_add_u64(s, CS_F_BYTES, f.scrub.bytes);
        cm_json_add_u64(s, CS_F_CORRUPT_FOUND, f.scrub.corrupt_found);
        cm_json_add_u64(s, CS_F_PASS_DONE, f.scrub.pass_done);
        cm_json_add_u64(s, CS_F_PASS_TOTAL, f.scrub.pass_total);
    }
    return cm_http_answer_json(req, 200, o);
}

static void metric(struct cm_text *t, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    cm_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                   v);
}

static int metrics_handler(struct cm_http_req *req, void *data)
{
    struct chunkserver *cs = data;
    struct cm_text t = {0};
    struct figures f;
    int rc;

    gather(cs, &f);
    metric(&t, "dfs_cs_bytes_written_total", "counter", "Block bytes accepted into the store.",
           f.st.bytes_written);
    metric(&t, "dfs_cs_bytes_read_total", "counter",
           "Block bytes read from disk and verified (reads and scrubbing).", f.st.bytes_read);
    metric(&t, "dfs_cs_bytes_received_total", "counter", "Block bytes received by PUT.",
           atomic_load(&cs->bytes_received));
    metric(&t, "dfs_cs_bytes_served_total", "counter", "Block bytes sent by GET.",
           atomic_load(&cs->bytes_served));
    metric(&t, "dfs_cs_blocks", "gauge", "Blocks held (corrupt ones included).", f.st.blocks);
    metric(&t, "dfs_cs_corrupt_blocks", "gauge", "Blocks marked corrupt.", f.st.corrupt);
    metric(&t, "dfs_cs_used_bytes", "gauge", "Bytes of block files.", f.st.used);
    metric(&t, "dfs_cs_capacity_bytes", "gauge", "Size of the storage file system.", f.capacity);
    metric(&t, "dfs_cs_free_bytes", "gauge", "Free bytes of the storage file system.",
           f.free_bytes);
    metric(&t, "dfs_cs_checksum_failures_total", "counter",
           "Chunks or block files that failed their CRC.", f.st.checksum_failures);
    metric(&t, "dfs_cs_no_space_total", "counter", "Writes refused or failed for lack of space.",
           f.st.no_space);
    if (f.st.journal) {
        metric(&t, "dfs_cs_journal_blocks_total", "counter",
               "Small blocks made durable by a journal record.", f.st.journal_records);
        metric(&t, "dfs_cs_journal_syncs_total", "counter",
               "Journal syncs (each covers the records written meanwhile).", f.st.journal_syncs);
        metric(&t, "dfs_cs_journal_checkpoints_total", "counter",
               "Journal generations ended (block files synced, journal emptied).",
               f.st.journal_checkpoints);
        metric(&t, "dfs_cs_journal_used_bytes", "gauge", "Bytes of records in the journal.",
               f.st.journal_used);
    }
    metric(&t, "dfs_cs_puts_total", "counter", "Blocks stored by PUT.", atomic_load(&cs->puts));
    metric(&t, "dfs_cs_put_errors_total", "counter", "PUTs that failed locally.",
           atomic_load(&cs->puts_failed));
    metric(&t, "dfs_cs_pipeline_errors_total", "counter",
           "PUTs whose downstream pipeline did not complete.", atomic_load(&cs->pipeline_errors));
    metric(&t, "dfs_cs_gets_total", "counter", "GETs answered with data.", atomic_load(&cs->gets));
    metric(&t, "dfs_cs_get_errors_total", "counter", "GETs that failed.",
           atomic_load(&cs->gets_failed));
    metric(&t, "dfs_cs_deletes_total", "counter", "Blocks deleted by DELETE.",
           atomic_load(&cs->deletes));
    metric(&t, "dfs_cs_replications_total", "counter", "Blocks copied to other chunkservers.",
           f.repl.ok);
    metric(&t, "dfs_cs_replication_errors_total", "counter", "Block copies that failed.",
           f.repl.failed);
    metric(&t, "dfs_cs_replication_queue", "gauge", "Block copies waiting.", f.repl.queued);
    metric(&t, "dfs_cs_inflight_requests", "gauge", "Data requests in progress.",
           atomic_load(&cs->inflight));
    metric(&t, "dfs_cs_scrub_bytes_total", "counter", "Bytes checked by the scrubber.",
           f.scrub.bytes);
    metric(&t, "dfs_cs_scrub_blocks_total", "counter", "Blocks checked by the scrubber.",
           f.scrub.blocks);
    metric(&t, "dfs_cs_scrub_corrupt_total", "counter", "Corrupt blocks found by the scrubber.",
           f.scrub.corrupt_found);
    metric(&t, "dfs_cs_scrub_passes_total", "counter", "Complete scrub passes.", f.scrub.passes);
    metric(&t, "dfs_cs_scrub_pass_blocks_done", "gauge", "Blocks checked in the current pass.",
           f.scrub.pass_done);
    metric(&t, "dfs_cs_scrub_pass_blocks", "gauge", "Blocks in the current pass.",
           f.scrub.pass_total);
    metric(&t, "dfs_cs_master_registered", "gauge", "1 once registered with the masters.",
           f.link.registered);
    metric(&t, "dfs_cs_master_heartbeat_ok", "gauge", "1 when the last heartbeat succeeded.",
           f.link.last_ok);
    metric(&t, "dfs_cs_heartbeats_total", "counter", "Heartbeats the masters answered.",
           f.link.heartbeats);
    metric(&t, "dfs_cs_master_failures_total", "counter",
           "Register, report or heartbeat operations that failed.", f.link.failures);
    metric(&t, "dfs_cs_block_reports_total", "counter", "Full block reports sent.", f.link.reports);
    rc = t.err != 0 ? t.err
                    : cm_http_answer_bytes(req, 200, "text/plain; version=0.0.4", t.buf, t.len);
    cm_text_free(&t);
    return rc;
}

int cs_status_api_add(struct chunkserver *cs)
{
    const struct cm_http_route routes[] = {
        {"GET", CS_PATH_STATUS, CM_HTTP_PUBLIC, NULL, NULL, status_handler, cs},
        {"GET", CS_PATH_METRICS, CM_HTTP_PUBLIC, NULL, NULL, metrics_handler, cs},
    };

    return cm_http_server_add_routes(cs->http, routes, sizeof(routes) / sizeof(routes[0]));
}
