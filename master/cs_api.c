/* The chunkserver endpoints of the client port (register, heartbeat, block report) and block
 * placement, served by the leader: registration is proposed through Raft (MFSM_TAG_CS) and
 * answered once applied; everything else is the leader's soft state (master/cs_registry.h),
 * which also decides the namespace GC_ACK commands the leader proposes while answering
 * heartbeats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "master/master.h"
#include "master/ns_blockscan.h"

#define BLOCKS_PER_MESSAGE 8192  /* the chunkserver sends at most 4096 */
#define GC_DEL_MAX         4096  /* garbage and orphan deletes per heartbeat answer */
#define GC_ACK_SCAN        16384 /* pending garbage ids looked at per GC_ACK attempt */
#define GC_ACK_INTERVAL_MS 1000  /* between GC_ACK attempts */

static int not_leader(struct master *m, struct cm_http_req *req)
{
    return cm_http_answer_error(req, CM_E_NOT_LEADER, NULL, master_leader_hint(m));
}

/* Whether this master leads; starts the soft state over on a new term (after a failover the
 * chunkservers rebuild it with heartbeats and full reports). */
static bool leading(struct master *m)
{
    if (!master_is_leader(m))
        return false;
    struct rn_status st;
    rn_get_status(m->node, &st);
    cs_leader_term(m->cs, st.raft.term, master_now_ms());
    return true;
}

/* A block id: exactly 16 lowercase hex digits. */
static int parse_block_id(const cJSON *x, uint64_t *out)
{
    if (!cJSON_IsString(x) || strlen(x->valuestring) != 16)
        return CM_E_BAD_FIELD;
    uint64_t v = 0;
    for (const char *p = x->valuestring; *p; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return CM_E_BAD_FIELD;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* An optional array of block ids (strings) or of {"id": ...} objects; *ids malloc'd. */
static int parse_ids(const cJSON *j, const char *field, bool objects, uint64_t **ids, size_t *n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, field), *x;
    *ids = NULL;
    *n = 0;
    if (a == NULL || cJSON_IsNull(a))
        return 0;
    if (!cJSON_IsArray(a))
        return CM_E_BAD_FIELD;
    int cnt = cJSON_GetArraySize(a);
    if (cnt > BLOCKS_PER_MESSAGE)
        return CM_E_RANGE;
    if (cnt == 0)
        return 0;
    uint64_t *v = malloc((size_t)cnt * sizeof(*v));
    if (v == NULL)
        return CM_E_NOMEM;
    size_t k = 0;
    cJSON_ArrayForEach(x, a)
    {
        const cJSON *idv =
            objects ? (cJSON_IsObject(x) ? cJSON_GetObjectItemCaseSensitive(x, "id") : NULL) : x;
        if (parse_block_id(idv, &v[k]) != 0) {
            free(v);
            return CM_E_BAD_FIELD;
        }
        k++;
    }
    *ids = v;
    *n = k;
    return 0;
}

/* cs_id and storage_id of a heartbeat or report, checked against the table. */
static int get_cs(const cJSON *j, uint32_t *id, const char **sid)
{
    int rc;
    if ((rc = cm_json_get_u32(j, MCS_F_CS_ID, id)) != 0 ||
        (rc = cm_json_get_str(j, MCS_F_STORAGE_ID, CS_STORAGE_ID_MAX, sid, NULL)) != 0)
        return rc;
    return *id == 0 ? CM_E_RANGE : 0;
}

struct space {
    uint64_t capacity, used, free, blocks, load;
    bool no_space;
};

static int get_space(const cJSON *j, struct space *s)
{
    int rc;
    if ((rc = cm_json_opt_u64(j, MCS_F_CAPACITY, &s->capacity)) != 0 ||
        (rc = cm_json_opt_u64(j, MCS_F_USED, &s->used)) != 0 ||
        (rc = cm_json_opt_u64(j, MCS_F_FREE, &s->free)) != 0 ||
        (rc = cm_json_opt_u64(j, MCS_F_BLOCKS, &s->blocks)) != 0 ||
        (rc = cm_json_opt_u64(j, MCS_F_LOAD, &s->load)) != 0 ||
        (rc = cm_json_opt_bool(j, MCS_F_NO_SPACE, &s->no_space)) != 0)
        return rc;
    return 0;
}

/* ---- POST /v1/cs/register ---- */

struct reg_ctx {
    struct master *m;
    struct cm_http_deferred *d;
    struct space sp;
};

static void register_done(void *arg, int err, const void *res, size_t len)
{
    struct reg_ctx *g = arg;
    char buf[16];
    if (err != 0 || res == NULL || len == 0 || len >= sizeof(buf)) {
        cm_http_deferred_error(g->d, err ? err : CM_E_INTERNAL, NULL, NULL);
        free(g);
        return;
    }
    memcpy(buf, res, len);
    buf[len] = 0;
    uint32_t id = (uint32_t)strtoul(buf, NULL, 10);
    bool need_report;
    cs_heartbeat(g->m->cs, id, master_now_ms(), g->sp.capacity, g->sp.used, g->sp.free,
                 g->sp.blocks, g->sp.load, g->sp.no_space, &need_report);
    cJSON *o = cJSON_CreateObject();
    if (o != NULL)
        cm_json_add_u64(o, MCS_F_CS_ID, id);
    cm_http_deferred_json(g->d, 200, o);
    free(g);
}

static int h_register(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    const char *sid, *addr, *rack = "";
    struct space sp = {0};
    int rc;
    if ((rc = cm_json_get_str(j, MCS_F_STORAGE_ID, CS_STORAGE_ID_MAX, &sid, NULL)) != 0 ||
        (rc = cm_json_get_str(j, MCS_F_ADDR, CS_ADDR_MAX, &addr, NULL)) != 0 ||
        (rc = cm_json_opt_str(j, MCS_F_RACK, CS_RACK_MAX, &rack, NULL)) != 0 ||
        (rc = get_space(j, &sp)) != 0)
        return rc;
    const char *colon = strrchr(addr, ':');
    if (*sid == 0 || colon == NULL || colon == addr || colon[1] == 0)
        return cm_http_answer_error(req, CM_E_BAD_FIELD, "storage_id empty or addr not host:port",
                                    NULL);
    if (!leading(m))
        return not_leader(m, req);
    void *cs_cmd, *cmd;
    size_t cs_len, len;
    if ((rc = cs_cmd_register(sid, addr, rack, &cs_cmd, &cs_len)) != 0)
        return rc;
    rc = master_fsm_wrap(MFSM_TAG_CS, cs_cmd, cs_len, &cmd, &len);
    free(cs_cmd);
    if (rc != 0)
        return rc;
    struct reg_ctx *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        free(cmd);
        return CM_E_NOMEM;
    }
    g->m = m;
    g->sp = sp;
    if ((rc = cm_http_defer(req, &g->d)) != 0) {
        free(g);
        free(cmd);
        return rc;
    }
    rn_propose(m->node, cmd, len, register_done, g);
    free(cmd);
    return 0;
}

/* ---- POST /v1/cs/heartbeat ---- */

/* A chunkserver's copies sorted by the block index (on the loop thread): referenced ones, and
 * deletes (pending garbage and orphans). */
struct held_scan {
    struct master *m;
    const uint64_t *held;
    size_t n;
    uint64_t now_ms;
    uint64_t *refs, *del;
    size_t n_refs, n_del;
    uint64_t next_block, orphan_below; /* the namespace's, as of the scan */
};

static void read_held(void *arg)
{
    struct held_scan *s = arg;
    struct ns_statfs st;
    ns_statfs(s->m->ns, &st);
    s->next_block = st.blocks_allocated + 1;
    s->orphan_below = st.orphan_below;
    /* The replicated bound, not this leader's soft one: every commit applied after it that
     * names an unreferenced id below it is refused (CM_E_EXPIRED), so deleting such copies
     * cannot lose a block a later commit references. */
    ns_blocks_classify(s->m->ns, s->held, s->n, st.orphan_below, s->refs, &s->n_refs, s->del,
                       &s->n_del, GC_DEL_MAX);
}

/* Sorts chunkserver id's copies: s->refs (the referenced ids it holds, sorted and distinct) and
 * s->del (room for GC_DEL_MAX + CS_DEL_PER_HEARTBEAT), both malloc'd (caller frees). */
static int scan_held(struct master *m, uint32_t id, struct held_scan *s)
{
    uint64_t *held;
    size_t n;
    *s = (struct held_scan){.m = m, .now_ms = master_now_ms()};
    int rc = cs_held(m->cs, id, &held, &n);
    if (rc != 0)
        return rc;
    s->held = held;
    s->n = n;
    s->refs = malloc((n ? n : 1) * sizeof(uint64_t));
    s->del = malloc((GC_DEL_MAX + CS_DEL_PER_HEARTBEAT) * sizeof(uint64_t));
    if (s->refs == NULL || s->del == NULL)
        rc = CM_E_NOMEM;
    else
        rn_run_sync(m->node, read_held, s);
    free(held);
    s->held = NULL;
    return rc;
}

/* ---- Garbage acknowledgement (docs/protocol.md, "Garbage") ---- */

struct gc_ack {
    struct master *m;
    uint64_t cursor, next;
    uint64_t ids[GC_ACK_SCAN];
    uint32_t n;
};

static void read_pending(void *arg)
{
    struct gc_ack *g = arg;
    ns_gc_pending(g->m->ns, g->cursor, GC_ACK_SCAN, g->ids, &g->n, &g->next);
}

static void gc_ack_done(void *arg, int err, const void *result, size_t len)
{
    struct master *m = arg;
    struct ns_result r;
    if (err == 0 && ns_result_decode(result, len, &r) == 0) {
        if (r.value > 0)
            LOG_INFO("garbage: %llu block ids acknowledged", (unsigned long long)r.value);
        ns_result_clear(&r);
    }
    atomic_store(&m->gc_busy, false);
}

/* The leader's own namespace commands (client 0): stamped with the command time, as client
 * mutations are (client_ns_api.c). */
static struct ns_req internal_req(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (struct ns_req){.now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec};
}

/* Proposes an encoded namespace command (encode_rc: its encoder's result) with done(m) as the
 * callback, which clears *busy; clears *busy here when there is nothing to propose. Frees cmd. */
static void propose_internal(struct master *m, int encode_rc, void *cmd, size_t len,
                             rn_done_fn done, atomic_bool *busy)
{
    void *wrapped = NULL;
    size_t wlen;
    if (encode_rc == 0 && master_fsm_wrap(MFSM_TAG_NS, cmd, len, &wrapped, &wlen) == 0)
        rn_propose(m->node, wrapped, wlen, done, m);
    else
        atomic_store(busy, false);
    free(wrapped);
    free(cmd);
}

/* Proposes a GC_ACK for pending garbage no live chunkserver holds any more, unless one is in
 * flight or the last attempt was less than GC_ACK_INTERVAL_MS ago. */
static void gc_ack_maybe(struct master *m)
{
    uint64_t now = master_now_ms();
    bool idle = false;
    if (now - atomic_load(&m->gc_last_ms) < GC_ACK_INTERVAL_MS ||
        !atomic_compare_exchange_strong(&m->gc_busy, &idle, true))
        return;
    atomic_store(&m->gc_last_ms, now);
    struct gc_ack *g = calloc(1, sizeof(*g));
    void *cmd = NULL;
    size_t len = 0, n = 0;
    if (g != NULL) {
        g->m = m;
        g->cursor = atomic_load(&m->gc_cursor);
        rn_run_sync(m->node, read_pending, g);
        atomic_store(&m->gc_cursor, g->next);
        n = cs_gc_unheld(m->cs, now, g->ids, g->n, g->ids, NS_MAX_GC_ACK);
    }
    struct ns_req rq = internal_req();
    int rc = n > 0 ? ns_cmd_gc_ack(&rq, g->ids, (uint32_t)n, &cmd, &len) : CM_E_NOENT;
    propose_internal(m, rc, cmd, len, gc_ack_done, &m->gc_busy);
    free(g);
}

static void orphan_bound_done(void *arg, int err, const void *result, size_t len)
{
    struct master *m = arg;
    struct ns_result r;
    if (err == 0 && ns_result_decode(result, len, &r) == 0) {
        LOG_INFO("garbage: block ids below %llu that no file references are orphans now",
                 (unsigned long long)r.value);
        ns_result_clear(&r);
    } else if (err != 0 && err != CM_E_NOT_LEADER) {
        LOG_WARN("garbage: orphan bound not replicated: %s", cm_errname(err));
    }
    atomic_store(&m->orphan_busy, false);
}

/* Proposes an ORPHAN_BOUND when this leader knows of older ids than the replicated bound covers
 * (one proposal at a time; the bound moves once per grace period of a leadership). next_block and
 * replicated are the namespace's as a heartbeat's scan saw them. */
static void orphan_bound_maybe(struct master *m, uint64_t next_block, uint64_t replicated)
{
    bool idle = false;
    uint64_t grace = m->cfg.orphan_grace_ms ? m->cfg.orphan_grace_ms : CS_ORPHAN_GRACE_MS;
    uint64_t below = cs_orphan_below(m->cs, master_now_ms(), grace, next_block);
    if (below <= replicated || !atomic_compare_exchange_strong(&m->orphan_busy, &idle, true))
        return;
    struct ns_req rq = internal_req();
    void *cmd = NULL;
    size_t len = 0;
    int rc = ns_cmd_orphan_bound(&rq, below, &cmd, &len);
    propose_internal(m, rc, cmd, len, orphan_bound_done, &m->orphan_busy);
}

/* Adds the replicate commands for chunkserver id to cmds: at most max. */
static int add_replicate(struct master *m, uint32_t id, const uint64_t *refs, size_t n_refs,
                         size_t max, cJSON *cmds)
{
    _Static_assert(CS_REPL_QUEUE_TARGET >= CS_REPL_PER_HEARTBEAT, "the most one answer carries");
    struct cs_repl repl[CS_REPL_QUEUE_TARGET];
    size_t n = cs_replicate(m->cs, id, master_now_ms(), refs, n_refs, repl,
                            max < CS_REPL_QUEUE_TARGET ? max : CS_REPL_QUEUE_TARGET);
    for (size_t i = 0; i < n; i++) {
        char hex[17];
        cJSON *c = cJSON_CreateObject();
        if (c == NULL || !cJSON_AddItemToArray(cmds, c))
            return CM_E_NOMEM;
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)repl[i].block);
        cJSON_AddStringToObject(c, MCS_F_OP, MCS_OP_REPLICATE);
        cJSON_AddStringToObject(c, MCS_F_BLOCK, hex);
        cJSON_AddStringToObject(c, MCS_F_TARGET, repl[i].target);
        LOG_INFO("chunkserver %u: replicate block %s to %s", id, hex, repl[i].target);
    }
    return 0;
}

static int h_heartbeat(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    const char *sid;
    uint32_t id;
    struct space sp = {0};
    uint64_t *added = NULL, *removed = NULL, *corrupt = NULL;
    size_t n_added = 0, n_removed = 0, n_corrupt = 0;
    struct held_scan held = {0};
    cJSON *o = NULL;
    uint64_t repl_queued = UINT64_MAX; /* stays: not said (chunkservers before it) */
    int rc;
    if ((rc = get_cs(j, &id, &sid)) != 0 || (rc = get_space(j, &sp)) != 0 ||
        (rc = cm_json_opt_u64(j, MCS_F_REPL_QUEUED, &repl_queued)) != 0 ||
        (rc = parse_ids(j, MCS_F_ADDED, true, &added, &n_added)) != 0 ||
        (rc = parse_ids(j, MCS_F_REMOVED, false, &removed, &n_removed)) != 0 ||
        (rc = parse_ids(j, MCS_F_CORRUPT, false, &corrupt, &n_corrupt)) != 0)
        goto out;
    if (!leading(m)) {
        rc = not_leader(m, req);
        goto out;
    }
    bool need_report = false;
    if ((rc = cs_check(m->cs, id, sid)) != 0 ||
        (rc = cs_heartbeat(m->cs, id, master_now_ms(), sp.capacity, sp.used, sp.free, sp.blocks,
                           sp.load, sp.no_space, &need_report)) != 0 ||
        (rc = cs_blocks_change(m->cs, id, added, n_added, removed, n_removed, corrupt,
                               n_corrupt)) != 0)
        goto out;
    /* Blocks this chunkserver holds that no file references any more (pending garbage and
     * orphans); damaged copies that have been repaired elsewhere, and surplus copies. */
    if ((rc = scan_held(m, id, &held)) != 0)
        goto out;
    size_t n_del = held.n_del;
    size_t n_fix = cs_deletes(m->cs, id, master_now_ms(), held.refs, held.n_refs, held.del + n_del,
                              CS_DEL_PER_HEARTBEAT);
    for (size_t i = 0; i < n_fix; i++) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)held.del[n_del + i]);
        LOG_INFO("chunkserver %u: delete damaged or surplus copy of block %s", id, hex);
    }
    n_del += n_fix;
    cJSON *cmds;
    if ((o = cJSON_CreateObject()) == NULL ||
        (cmds = cJSON_AddArrayToObject(o, MCS_F_COMMANDS)) == NULL ||
        cJSON_AddBoolToObject(o, MCS_F_NEED_REPORT, need_report) == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    if (n_del > 0) {
        cJSON *c = cJSON_CreateObject(), *ids;
        if (c == NULL || !cJSON_AddItemToArray(cmds, c) ||
            cJSON_AddStringToObject(c, MCS_F_OP, MCS_OP_DELETE) == NULL ||
            (ids = cJSON_AddArrayToObject(c, MCS_F_BLOCKS)) == NULL) {
            rc = CM_E_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < n_del; i++) {
            char hex[17];
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)held.del[i]);
            cJSON_AddItemToArray(ids, cJSON_CreateString(hex));
        }
    }
    if ((rc = add_replicate(m, id, held.refs, held.n_refs,
                            cs_repl_budget(repl_queued != UINT64_MAX, repl_queued), cmds)) != 0)
        goto out;
    rc = cm_http_answer_json(req, 200, o);
    o = NULL;
    gc_ack_maybe(m);
    orphan_bound_maybe(m, held.next_block, held.orphan_below);
out:
    cJSON_Delete(o);
    free(held.refs);
    free(held.del);
    free(added);
    free(removed);
    free(corrupt);
    return rc;
}

/* ---- POST /v1/cs/report ---- */

static int h_report(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    const char *sid;
    uint32_t id;
    uint64_t report_id, part, *blocks = NULL, *corrupt = NULL;
    size_t n_blocks = 0, n_corrupt = 0;
    bool last;
    int rc;
    if ((rc = get_cs(j, &id, &sid)) != 0 ||
        (rc = cm_json_get_u64(j, MCS_F_REPORT_ID, &report_id)) != 0 ||
        (rc = cm_json_get_u64(j, MCS_F_PART, &part)) != 0 ||
        (rc = cm_json_get_bool(j, MCS_F_LAST, &last)) != 0 ||
        (rc = parse_ids(j, MCS_F_BLOCKS, true, &blocks, &n_blocks)) != 0 ||
        (rc = parse_ids(j, MCS_F_CORRUPT, false, &corrupt, &n_corrupt)) != 0)
        goto out;
    if (!leading(m)) {
        rc = not_leader(m, req);
        goto out;
    }
    if ((rc = cs_check(m->cs, id, sid)) != 0 ||
        (rc = cs_report_part(m->cs, id, report_id, part, last, blocks, n_blocks, corrupt,
                             n_corrupt)) != 0)
        goto out;
    cJSON *o = cJSON_CreateObject();
    rc = o == NULL ? CM_E_NOMEM : cm_http_answer_json(req, 200, o);
out:
    free(blocks);
    free(corrupt);
    return rc;
}

/* ---- POST /v1/fs/place ---- */

static int h_place(struct cm_http_req *req, void *data)
{
    struct master *m = data;
    const cJSON *j = cm_http_req_json(req);
    int64_t count;
    int rc;
    if ((rc = cm_json_get_int_range(j, MCS_F_COUNT, 1, CS_PLACE_MAX, &count)) != 0)
        return rc;
    if (!leading(m))
        return not_leader(m, req);
    struct cs_info pick[CS_PLACE_MAX];
    uint64_t now = master_now_ms();
    size_t n = cs_place(m->cs, now, (size_t)count, pick);
    if (n < (size_t)count && cs_unheard(m->cs, now) > 0)
        return cm_http_answer_error(req, CM_E_UNAVAILABLE,
                                    "chunkservers not heard from since this master became "
                                    "leader; retry",
                                    NULL);
    if (n == 0) {
        /* Full only when a live chunkserver says so; none live (none registered yet, or all
         * silent) is a wait the client retries through, not ENOSPC for the user. */
        struct cs_info *all = NULL;
        size_t nall = 0;
        bool full = false;
        if (cs_list(m->cs, now, &all, &nall) == 0)
            for (size_t i = 0; i < nall; i++)
                full |= all[i].alive && all[i].no_space;
        free(all);
        if (full)
            return cm_http_answer_error(req, CM_E_NOSPC, "no live chunkserver with free space",
                                        NULL);
        return cm_http_answer_error(req, CM_E_UNAVAILABLE, "no live chunkserver; retry", NULL);
    }
    cJSON *o = cJSON_CreateObject(), *a;
    if (o == NULL || (a = cJSON_AddArrayToObject(o, MCS_F_CHUNKSERVERS)) == NULL) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        if (c == NULL || !cJSON_AddItemToArray(a, c)) {
            cJSON_Delete(c);
            cJSON_Delete(o);
            return CM_E_NOMEM;
        }
        cm_json_add_u64(c, MCS_F_ID, pick[i].id);
        cJSON_AddStringToObject(c, MCS_F_ADDR, pick[i].addr);
        cJSON_AddStringToObject(c, MCS_F_RACK, pick[i].rack);
    }
    return cm_http_answer_json(req, 200, o);
}

int master_add_cs_routes(struct master *m, struct cm_http_server *srv)
{
    const struct cm_http_route routes[] = {
        {"POST", MCS_PATH_REGISTER, CM_HTTP_JSON, NULL, NULL, h_register, m},
        {"POST", MCS_PATH_HEARTBEAT, CM_HTTP_JSON, NULL, NULL, h_heartbeat, m},
        {"POST", MCS_PATH_REPORT, CM_HTTP_JSON, NULL, NULL, h_report, m},
        {"POST", MCS_PATH_PLACE, CM_HTTP_JSON, NULL, NULL, h_place, m},
    };
    return cm_http_server_add_routes(srv, routes, sizeof(routes) / sizeof(routes[0]));
}
