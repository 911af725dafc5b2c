/* Admin endpoints on the peer port: GET / (the status page, master/status_page.html), GET /status
 * (JSON), GET /metrics (Prometheus text), and POST /admin/transfer-leader, /admin/add-master,
 * /admin/remove-master on the leader. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "common/text.h"
#include "common/resolver.h"
#include "master/master.h"
#include "master/status_page_html.h" /* generated from master/status_page.html */

#define PAGE_PATH      "/"
#define STATUS_PATH    "/status"
#define METRICS_PATH   "/metrics"
#define ADMIN_TRANSFER "/admin/transfer-leader"
#define ADMIN_ADD      "/admin/add-master"
#define ADMIN_REMOVE   "/admin/remove-master"

/* /status "blocks" (docs/protocol.md) */
#define STATUS_BLOCKS            "blocks"
#define STATUS_BLOCKS_REFERENCED "referenced"
#define STATUS_BLOCKS_UNDER      "under_replicated"
#define STATUS_BLOCKS_MISSING    "missing"
#define STATUS_BLOCKS_READY      "ready"
#define STATUS_BLOCKS_AGO        "computed_ms_ago"

static const char *role_lower(int role)
{
    static const char *names[] = {"follower", "pre_candidate", "candidate", "leader"};
    return role >= 0 && role <= 3 ? names[role] : "unknown";
}

struct kv_counts {
    struct master *m;
    uint64_t keys, applied;
    struct ns_statfs fs;
    uint64_t blocks_referenced;
};

static void read_kv_counts(void *arg)
{
    struct kv_counts *c = arg;
    kv_stats(c->m->kv, &c->keys, &c->applied);
    ns_statfs(c->m->ns, &c->fs);
    c->blocks_referenced = ns_blocks_referenced(c->m->ns);
}

/* The leader's block copy counts (master/block_health.h): null until known. */
static void add_blocks(struct master *m, cJSON *o, uint64_t referenced, uint64_t now)
{
    struct bh_counts bc;
    bh_get(m->health, &bc);
    cJSON *b = cJSON_AddObjectToObject(o, STATUS_BLOCKS);
    if (b == NULL)
        return;
    cm_json_add_u64(b, STATUS_BLOCKS_REFERENCED, referenced);
    if (bc.known) {
        cm_json_add_u64(b, STATUS_BLOCKS_UNDER, bc.h.under_replicated);
        cm_json_add_u64(b, STATUS_BLOCKS_MISSING, bc.h.missing);
        cm_json_add_u64(b, STATUS_BLOCKS_AGO, now > bc.computed_ms ? now - bc.computed_ms : 0);
    } else {
        cJSON_AddNullToObject(b, STATUS_BLOCKS_UNDER);
        cJSON_AddNullToObject(b, STATUS_BLOCKS_MISSING);
        cJSON_AddNullToObject(b, STATUS_BLOCKS_AGO);
    }
    cJSON_AddBoolToObject(b, STATUS_BLOCKS_READY, bc.known);
}

/* The chunkservers as this master sees them (only the leader hears heartbeats). */
static void add_chunkservers(struct master *m, cJSON *o, uint64_t now)
{
    struct cs_info *v = NULL;
    size_t n = 0;
    cJSON *a = cJSON_AddArrayToObject(o, "chunkservers");
    if (a == NULL || cs_list(m->cs, now, &v, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        if (c == NULL || !cJSON_AddItemToArray(a, c)) {
            cJSON_Delete(c);
            break;
        }
        cm_json_add_u64(c, "id", v[i].id);
        cJSON_AddStringToObject(c, "storage_id", v[i].storage_id);
        cJSON_AddStringToObject(c, "addr", v[i].addr);
        cJSON_AddStringToObject(c, "rack", v[i].rack);
        cJSON_AddBoolToObject(c, "alive", v[i].alive);
        cJSON_AddBoolToObject(c, "no_space", v[i].no_space);
        cm_json_add_u64(c, "capacity", v[i].capacity);
        cm_json_add_u64(c, "used", v[i].used);
        cm_json_add_u64(c, "free", v[i].free);
        cm_json_add_u64(c, "load", v[i].load);
        cm_json_add_u64(c, "blocks", v[i].blocks);
        cJSON_AddNumberToObject(c, "last_heartbeat_ms_ago", (double)v[i].last_heartbeat_ms_ago);
    }
    free(v);
}

static const struct raft_node *conf_find(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].id == id)
            return &c->nodes[i];
    return NULL;
}

/* /status is public; any origin may read it, so the status page of one master can show what
 * the others say about themselves. */
static int answer_status(struct cm_http_req *req, int code, cJSON *o)
{
    int rc = cm_http_answer_json(req, code, o);
    if (rc == 0)
        rc = cm_http_answer_header(req, "Access-Control-Allow-Origin", "*");
    return rc;
}

/* Before the node runs (a new cluster waiting for its peers), status says so. */
static int starting(struct master *m, struct cm_http_req *req)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return CM_E_NOMEM;
    cm_json_add_u64(o, "id", m->cfg.id);
    cJSON_AddStringToObject(o, "role", "STARTING");
    return answer_status(req, 503, o);
}

/* The ring of recent leader changes, oldest first. */
static void add_leader_changes(const struct rn_status *st, cJSON *o)
{
    cJSON *a = cJSON_AddArrayToObject(o, "leader_changes_recent");
    for (uint32_t i = 0; a != NULL && i < st->n_recent_leaders; i++) {
        const struct rn_leader_change *lc = &st->recent_leaders[i];
        cJSON *c = cJSON_CreateObject();
        if (c == NULL || !cJSON_AddItemToArray(a, c)) {
            cJSON_Delete(c);
            break;
        }
        cm_json_add_u64(c, "term", lc->term);
        cm_json_add_u64(c, "leader_id", lc->leader);
        cm_json_add_u64(c, "unix_ms", lc->unix_ms);
    }
}

static int h_status(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    if (!atomic_load(&m->ready))
        return starting(m, req);
    struct rn_status st;
    rn_get_status(m->node, &st);
    const struct raft_status *r = &st.raft;
    uint64_t now = master_now_ms();
    char buf[RAFT_ADDR_MAX];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return CM_E_NOMEM;
    cm_json_add_u64(o, "id", r->id);
    cJSON_AddStringToObject(o, "role", raft_role_name(r->role));
    cm_json_add_u64(o, "term", r->term);
    cm_json_add_u64(o, "vote", r->vote);
    cm_json_add_u64(o, "leader_id", r->leader);
    if (r->leader != 0 && rt_get_advertise(m->tr, r->leader, buf, sizeof(buf)) == 0)
        cJSON_AddStringToObject(o, "leader_addr", buf);
    else
        cJSON_AddNullToObject(o, "leader_addr");
    cJSON_AddStringToObject(o, "advertise_addr", m->cfg.advertise);
    cm_json_add_u64(o, "commit_index", r->commit_index);
    cm_json_add_u64(o, "applied_index", r->applied_index);
    cm_json_add_u64(o, "last_index", r->last_index);
    cm_json_add_u64(o, "snapshot_index", r->snapshot_index);
    cm_json_add_u64(o, "persisted_index", r->persisted_index);
    cJSON_AddBoolToObject(o, "removed", r->removed);
    cm_json_add_u64(o, "uptime_ms", now - m->started_ms);
    cm_json_add_u64(o, "elections", st.elections);
    cm_json_add_u64(o, "reads_fast", st.reads_fast);
    cm_json_add_u64(o, "leader_changes", st.leader_changes);
    add_leader_changes(&st, o);

    struct rt_peer_stats ps[2 * RAFT_MAX_NODES];
    size_t nps = rt_get_stats(m->tr, ps, 2 * RAFT_MAX_NODES);
    cJSON *peers = cJSON_AddArrayToObject(o, "peers");
    for (uint32_t i = 0; peers != NULL && i < r->conf.n; i++) {
        const struct raft_node *cn = &r->conf.nodes[i];
        if (cn->id == r->id)
            continue;
        cJSON *p = cJSON_CreateObject();
        if (p == NULL || !cJSON_AddItemToArray(peers, p))
            break;
        cm_json_add_u64(p, "id", cn->id);
        cJSON_AddBoolToObject(p, "voter", cn->voter);
        if (rt_get_url(m->tr, cn->id, buf, sizeof(buf)) == 0)
            cJSON_AddStringToObject(p, "url", buf);
        if (rt_get_advertise(m->tr, cn->id, buf, sizeof(buf)) == 0)
            cJSON_AddStringToObject(p, "advertise_addr", buf);
        for (uint32_t k = 0; k < r->n_peers; k++) {
            const struct raft_peer_status *q = &r->peers[k];
            if (q->id != cn->id)
                continue;
            cm_json_add_u64(p, "match_index", q->match_index);
            cm_json_add_u64(p, "next_index", q->next_index);
            cm_json_add_u64(p, "lag",
                            r->last_index > q->match_index ? r->last_index - q->match_index : 0);
            if (q->last_contact != 0)
                cm_json_add_u64(p, "last_contact_ms_ago",
                                now > q->last_contact ? now - q->last_contact : 0);
            cJSON_AddBoolToObject(p, "snapshotting", q->snapshotting);
        }
        for (size_t k = 0; k < nps; k++) {
            if (ps[k].id != cn->id)
                continue;
            cm_json_add_u64(p, "messages_sent", ps[k].sent);
            cm_json_add_u64(p, "messages_failed", ps[k].failed);
            cm_json_add_u64(p, "messages_dropped", ps[k].dropped);
        }
    }
    struct kv_counts kc = {.m = m};
    rn_run_sync(m->node, read_kv_counts, &kc);
    cJSON *kv = cJSON_AddObjectToObject(o, "kv");
    if (kv != NULL)
        cm_json_add_u64(kv, "keys", kc.keys);
    cJSON *fs = cJSON_AddObjectToObject(o, "namespace");
    if (fs != NULL) {
        cm_json_add_u64(fs, "inodes", kc.fs.inodes);
        cm_json_add_u64(fs, "files", kc.fs.files);
        cm_json_add_u64(fs, "dirs", kc.fs.dirs);
        cm_json_add_u64(fs, "symlinks", kc.fs.symlinks);
        cm_json_add_u64(fs, "blocks_allocated", kc.fs.blocks_allocated);
        cm_json_add_u64(fs, "orphan_below", kc.fs.orphan_below);
        cm_json_add_u64(fs, "gc_pending", kc.fs.gc_pending);
    }
    add_chunkservers(m, o, now);
    add_blocks(m, o, kc.blocks_referenced, master_now_ms());
    return answer_status(req, 200, o);
}

/* The status page: self-contained HTML that polls /status (and the peers' /status). */
static int h_page(struct cm_http_req *req, void *data)
{
    (void)data;
    int rc = cm_http_answer_bytes(req, 200, "text/html; charset=utf-8", status_page_html,
                                  sizeof(status_page_html) - 1);
    if (rc == 0)
        rc = cm_http_answer_header(req, "Cache-Control", "no-store");
    return rc;
}

static int h_metrics(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    struct rn_status st;
    rn_get_status(m->node, &st);
    const struct raft_status *r = &st.raft;
    struct cm_text t = {0};
    cm_text_printf(&t, "# HELP dfs_raft_role 1 for the role this master has now.\n"
                       "# TYPE dfs_raft_role gauge\n");
    for (int i = 0; i <= RAFT_LEADER; i++)
        cm_text_printf(&t, "dfs_raft_role{role=\"%s\"} %d\n", role_lower(i), r->role == i);
    cm_text_printf(&t, "# TYPE dfs_raft_term gauge\ndfs_raft_term %" PRIu64 "\n", r->term);
    cm_text_printf(&t, "# TYPE dfs_raft_leader_id gauge\ndfs_raft_leader_id %" PRIu64 "\n",
                   r->leader);
    cm_text_printf(&t, "# TYPE dfs_raft_commit_index gauge\ndfs_raft_commit_index %" PRIu64 "\n",
                   r->commit_index);
    cm_text_printf(&t, "# TYPE dfs_raft_applied_index gauge\ndfs_raft_applied_index %" PRIu64 "\n",
                   r->applied_index);
    cm_text_printf(&t, "# TYPE dfs_raft_last_index gauge\ndfs_raft_last_index %" PRIu64 "\n",
                   r->last_index);
    cm_text_printf(&t,
                   "# TYPE dfs_raft_snapshot_index gauge\ndfs_raft_snapshot_index %" PRIu64 "\n",
                   r->snapshot_index);
    cm_text_printf(
        &t, "# TYPE dfs_raft_elections_total counter\ndfs_raft_elections_total %" PRIu64 "\n",
        st.elections);
    cm_text_printf(
        &t,
        "# TYPE dfs_raft_leader_changes_total counter\ndfs_raft_leader_changes_total %" PRIu64 "\n",
        st.leader_changes);
    cm_text_printf(
        &t, "# TYPE dfs_raft_proposals_total counter\ndfs_raft_proposals_total %" PRIu64 "\n",
        st.proposals);
    cm_text_printf(
        &t, "# TYPE dfs_raft_reads_fast_total counter\ndfs_raft_reads_fast_total %" PRIu64 "\n",
        st.reads_fast);
    cm_text_printf(&t,
                   "# TYPE dfs_raft_applied_total counter\ndfs_raft_applied_total %" PRIu64 "\n",
                   st.applied);
    cm_text_printf(
        &t,
        "# TYPE dfs_raft_snapshots_total counter\ndfs_raft_snapshots_total{kind=\"taken\"} "
        "%" PRIu64 "\ndfs_raft_snapshots_total{kind=\"installed\"} %" PRIu64 "\n",
        st.snapshots_taken, st.snapshots_installed);
    cm_text_printf(&t, "# HELP dfs_raft_fsync_seconds Latency of synced log batches.\n"
                       "# TYPE dfs_raft_fsync_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 16; i++) {
        cum += st.fsync_hist[i];
        if (i < 15)
            cm_text_printf(&t, "dfs_raft_fsync_seconds_bucket{le=\"%.6f\"} %" PRIu64 "\n",
                           (double)(64ull << i) / 1e6, cum);
    }
    cm_text_printf(&t, "dfs_raft_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    cm_text_printf(&t, "dfs_raft_fsync_seconds_sum %.6f\n", (double)st.fsync_us_total / 1e6);
    cm_text_printf(&t, "dfs_raft_fsync_seconds_count %" PRIu64 "\n", st.fsyncs);
    cm_text_printf(&t, "# HELP dfs_raft_peer_lag Entries the peer's log is behind the leader's.\n"
                       "# TYPE dfs_raft_peer_lag gauge\n");
    for (uint32_t k = 0; k < r->n_peers; k++) {
        const struct raft_peer_status *q = &r->peers[k];
        if (q->id == r->id)
            continue;
        cm_text_printf(&t, "dfs_raft_peer_lag{peer=\"%" PRIu64 "\"} %" PRIu64 "\n", q->id,
                       r->last_index > q->match_index ? r->last_index - q->match_index : 0);
    }
    /* Only the leader hears the chunkservers' heartbeats: a follower would count every one
     * dead, and an alert on the dead count would fire on each follower. */
    struct cs_info *cv = NULL;
    size_t cn = 0, live = 0;
    if (master_is_leader(m) && cs_list(m->cs, master_now_ms(), &cv, &cn) == 0) {
        for (size_t i = 0; i < cn; i++)
            live += cv[i].alive;
        cm_text_printf(&t,
                       "# HELP dfs_master_chunkservers Registered chunkservers by the leader's "
                       "heartbeats (reported by the leader only).\n"
                       "# TYPE dfs_master_chunkservers gauge\n"
                       "dfs_master_chunkservers{state=\"live\"} %zu\n"
                       "dfs_master_chunkservers{state=\"dead\"} %zu\n",
                       live, cn - live);
    }
    free(cv);
    struct kv_counts kc = {.m = m};
    struct bh_counts bc;
    rn_run_sync(m->node, read_kv_counts, &kc);
    bh_get(m->health, &bc);
    cm_text_printf(&t,
                   "# HELP dfs_blocks_referenced Distinct blocks the files reference.\n"
                   "# TYPE dfs_blocks_referenced gauge\n"
                   "dfs_blocks_referenced %" PRIu64 "\n",
                   kc.blocks_referenced);
    if (bc.known)
        cm_text_printf(&t,
                       "# HELP dfs_blocks_under_replicated Referenced blocks with fewer than %d "
                       "sound copies on live chunkservers, missing ones included (leader "
                       "only).\n"
                       "# TYPE dfs_blocks_under_replicated gauge\n"
                       "dfs_blocks_under_replicated %" PRIu64 "\n"
                       "# HELP dfs_blocks_missing Referenced blocks with no sound copy on a live "
                       "chunkserver (leader only).\n"
                       "# TYPE dfs_blocks_missing gauge\n"
                       "dfs_blocks_missing %" PRIu64 "\n",
                       CS_DEFAULT_REPLICATION, bc.h.under_replicated, bc.h.missing);
    int rc = t.err != 0 ? t.err
                        : cm_http_answer_bytes(req, 200, "text/plain; version=0.0.4", t.buf, t.len);
    cm_text_free(&t);
    return rc;
}

/* ---- admin operations, answered when done ---- */

static void admin_done(void *arg, int err, const void *res, size_t len)
{
    struct cm_http_deferred *d = arg;
    (void)res;
    (void)len;
    if (err != 0) {
        cm_http_deferred_error(d, err, NULL, NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o != NULL)
        cJSON_AddBoolToObject(o, "ok", 1);
    cm_http_deferred_json(d, 200, o);
}

static int not_leader(struct master *m, struct cm_http_req *req)
{
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, master_leader_hint(m));
}

static int h_transfer(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    raft_id leader;
    bool self;
    uint64_t target = 0;
    int rc = cm_json_opt_u64(cm_http_req_json(req), "target", &target);
    if (rc != 0)
        return rc;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    rn_leader(m->node, &leader, &self);
    if (!self)
        return not_leader(m, req);
    struct rn_status st;
    rn_get_status(m->node, &st);
    if (target != 0 && (conf_find(&st.raft.conf, target) == NULL || target == m->cfg.id))
        return cm_http_answer_error(req, CM_E_INVAL, "target is not another member", NULL);
    struct cm_http_deferred *d;
    if ((rc = cm_http_defer(req, &d)) != 0)
        return rc;
    LOG_INFO("admin: leadership transfer to %" PRIu64 " requested by %s", target,
             cm_http_req_peer(req));
    rn_transfer(m->node, target, admin_done, d);
    return 0;
}

static int h_add(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    uint64_t id;
    const char *url;
    raft_id leader;
    bool self;
    int rc;
    if ((rc = cm_json_get_u64(j, "id", &id)) != 0 ||
        (rc = cm_json_get_str(j, "url", RAFT_ADDR_MAX - 1, &url, NULL)) != 0)
        return rc;
    if (id == 0)
        return cm_http_answer_error(req, CM_E_RANGE, "id must be positive", NULL);
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    rc = cm_endpoints_parse(url, &hp, &n);
    free(hp);
    if (rc != 0 || n != 1)
        return cm_http_answer_error(req, CM_E_BAD_FIELD, "url must be http://host:port", NULL);
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    rn_leader(m->node, &leader, &self);
    if (!self)
        return not_leader(m, req);
    struct cm_http_deferred *d;
    if ((rc = cm_http_defer(req, &d)) != 0)
        return rc;
    LOG_INFO("admin: adding master %" PRIu64 " at %s", id, url);
    rt_set_peer(m->tr, id, url);
    rn_conf_change(m->node, RAFT_CONF_ADD, id, url, admin_done, d);
    return 0;
}

static int h_remove(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    uint64_t id;
    raft_id leader;
    bool self;
    int rc = cm_json_get_u64(cm_http_req_json(req), "id", &id);
    if (rc != 0)
        return rc;
    if (!atomic_load(&m->ready))
        return CM_E_UNAVAILABLE;
    rn_leader(m->node, &leader, &self);
    if (!self)
        return not_leader(m, req);
    struct rn_status st;
    rn_get_status(m->node, &st);
    if (conf_find(&st.raft.conf, id) == NULL)
        return cm_http_answer_error(req, CM_E_NOENT, "no such master", NULL);
    struct cm_http_deferred *d;
    if ((rc = cm_http_defer(req, &d)) != 0)
        return rc;
    LOG_INFO("admin: removing master %" PRIu64, id);
    rn_conf_change(m->node, RAFT_CONF_REMOVE, id, NULL, admin_done, d);
    return 0;
}

int master_add_admin_routes(struct master *m, struct cm_http_server *srv)
{
    const struct cm_http_route routes[] = {
        {"GET", PAGE_PATH, CM_HTTP_PUBLIC, NULL, NULL, h_page, m},
        {"GET", STATUS_PATH, CM_HTTP_PUBLIC, NULL, NULL, h_status, m},
        {"GET", METRICS_PATH, CM_HTTP_PUBLIC, NULL, NULL, h_metrics, m},
        {"POST", ADMIN_TRANSFER, CM_HTTP_JSON, NULL, NULL, h_transfer, m},
        {"POST", ADMIN_ADD, CM_HTTP_JSON, NULL, NULL, h_add, m},
        {"POST", ADMIN_REMOVE, CM_HTTP_JSON, NULL, NULL, h_remove, m},
    };
    return cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0]));
}
