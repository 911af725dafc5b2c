/* One thread: register -> full report -> heartbeat every heartbeat_ms (sooner when woken), with
 * a full report again when the master asks, periodically, or after a report failed. Changes
 * that a failed heartbeat could not deliver go back to the store for the next one. */
#include "chunk/master_link.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunk/cs_internal.h"
#include "chunk/cs_proto.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

struct cs_master_link {
    struct dfs_master_conn *mc;
    struct cs_store *store;
    char *addr;
    char *rack;
    uint32_t heartbeat_ms;
    uint32_t report_interval_ms;
    uint64_t (*load)(void *ctx);
    uint64_t (*repl_queued)(void *ctx);
    int (*replicate)(void *ctx, uint64_t id, const char *target);
    void *ctx;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool stopping;
    bool woken;
    uint64_t cs_id;
    bool last_ok;
    uint64_t last_ok_at; /* monotonic ms; 0: never */
    uint64_t heartbeats, failures, reports, commands;
    uint64_t report_seq;
    pthread_t thread;
};

static void note_result(struct cs_master_link *l, int rc)
{
    pthread_mutex_lock(&l->mu);
    l->last_ok = rc == 0;
    if (rc == 0)
        l->last_ok_at = cs_now_ms();
    else
        l->failures++;
    pthread_mutex_unlock(&l->mu);
}

static int add_id(cJSON *arr, uint64_t id)
{
    char hex[CS_BLOCK_ID_HEX + 1];

    cs_block_id_format(id, hex);
    return cJSON_AddItemToArray(arr, cJSON_CreateString(hex)) ? 0 : CM_E_NOMEM;
}

static int add_block(cJSON *arr, const struct cs_block_info *b)
{
    char hex[CS_BLOCK_ID_HEX + 1];
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    cs_block_id_format(b->id, hex);
    if (cJSON_AddStringToObject(o, CS_F_ID, hex) == NULL ||
        cm_json_add_u64(o, CS_F_LEN, b->len) < 0 ||
        cJSON_AddNumberToObject(o, CS_F_CRC, (double)b->crc) == NULL)
        return CM_E_NOMEM;
    return 0;
}

/* The fields every message carries. */
static int add_space(struct cs_master_link *l, cJSON *o)
{
    struct cs_store_stats st;
    uint64_t cap = 0, free_b = 0;
    uint64_t bs = cs_store_block_size(l->store);

    cs_store_stats(l->store, &st);
    cs_store_space(l->store, &cap, &free_b);
    if (cm_json_add_u64(o, CS_F_CAPACITY, cap) < 0 || cm_json_add_u64(o, CS_F_USED, st.used) < 0 ||
        cm_json_add_u64(o, CS_F_FREE, free_b) < 0 ||
        cm_json_add_u64(o, CS_F_BLOCKS, st.blocks) < 0 ||
        cJSON_AddBoolToObject(o, CS_F_NO_SPACE,
                              free_b < bs + CS_TRAILER_BYTES(bs / CS_CHUNK_SIZE)) == NULL)
        return CM_E_NOMEM;
    return 0;
}

static int add_ids(struct cs_master_link *l, cJSON *o)
{
    if (cm_json_add_u64(o, CS_F_CS_ID, l->cs_id) < 0 ||
        cJSON_AddStringToObject(o, CS_F_STORAGE_ID, cs_store_id(l->store)) == NULL ||
        cJSON_AddStringToObject(o, CS_F_ADDR, l->addr) == NULL)
        return CM_E_NOMEM;
    return 0;
}

static int do_register(struct cs_master_link *l)
{
    cJSON *body = cJSON_CreateObject(), *ans = NULL;
    uint64_t id = 0;
    int rc = CM_E_NOMEM;

    if (body == NULL ||
        cJSON_AddStringToObject(body, CS_F_STORAGE_ID, cs_store_id(l->store)) == NULL ||
        cJSON_AddStringToObject(body, CS_F_ADDR, l->addr) == NULL ||
        cJSON_AddStringToObject(body, CS_F_RACK, l->rack) == NULL ||
        cm_json_add_u64(body, CS_F_BLOCK_SIZE, cs_store_block_size(l->store)) < 0 ||
        add_space(l, body) < 0)
        goto out;
    rc = dfs_master_conn_post(l->mc, MASTER_PATH_CS_REGISTER, body, &ans);
    if (rc == 0) {
        rc = cm_json_get_u64(ans, CS_F_CS_ID, &id);
        if (rc == 0 && id == 0)
            rc = CM_E_RANGE;
        if (rc < 0)
            LOG_WARN("masters: register answer without a valid %s", CS_F_CS_ID);
    }
    if (rc == 0) {
        pthread_mutex_lock(&l->mu);
        l->cs_id = id;
        pthread_mutex_unlock(&l->mu);
        LOG_INFO("masters: registered as chunkserver %" PRIu64, id);
    } else {
        LOG_WARN("masters: register failed: %s", cm_errname(rc));
    }
out:
    cJSON_Delete(body);
    cJSON_Delete(ans);
    return rc;
}

/* A full report in parts of CS_REPORT_PART_MAX blocks; corrupt blocks go in "corrupt". */
static int do_report(struct cs_master_link *l)
{
    struct cs_block_info *blocks = NULL;
    size_t n = 0, i = 0, part = 0;
    uint64_t report_id;
    int rc;

    rc = cs_store_list(l->store, true, &blocks, &n);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    report_id = ++l->report_seq;
    pthread_mutex_unlock(&l->mu);
    do {
        cJSON *body = cJSON_CreateObject(), *arr = NULL, *bad = NULL;
        size_t end = i + CS_REPORT_PART_MAX < n ? i + CS_REPORT_PART_MAX : n;
        rc = CM_E_NOMEM;
        if (body == NULL || add_ids(l, body) < 0 ||
            cm_json_add_u64(body, CS_F_REPORT_ID, report_id) < 0 ||
            cm_json_add_u64(body, CS_F_PART, part) < 0 ||
            cJSON_AddBoolToObject(body, CS_F_LAST, end == n) == NULL ||
            (arr = cJSON_AddArrayToObject(body, CS_F_BLOCKS)) == NULL ||
            (bad = cJSON_AddArrayToObject(body, CS_F_CORRUPT)) == NULL) {
            cJSON_Delete(body);
            break;
        }
        rc = 0;
        for (; i < end && rc == 0; i++)
            rc = blocks[i].corrupt ? add_id(bad, blocks[i].id) : add_block(arr, &blocks[i]);
        if (rc == 0)
            rc = dfs_master_conn_post(l->mc, MASTER_PATH_CS_REPORT, body, NULL);
        cJSON_Delete(body);
        part++;
    } while (rc == 0 && i < n);
    free(blocks);
    if (rc == 0) {
        pthread_mutex_lock(&l->mu);
        l->reports++;
        pthread_mutex_unlock(&l->mu);
        LOG_INFO("masters: full report of %zu blocks sent", n);
    } else {
        LOG_WARN("masters: full report failed: %s", cm_errname(rc));
    }
    return rc;
}

static void run_command(struct cs_master_link *l, const cJSON *cmd)
{
    const char *op = NULL, *target = NULL, *hex = NULL;
    const cJSON *ids, *it;
    uint64_t id;
    int rc;

    if (cm_json_get_str(cmd, CS_F_OP, 32, &op, NULL) < 0) {
        LOG_WARN("masters: command without op ignored");
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->commands++;
    pthread_mutex_unlock(&l->mu);
    if (strcmp(op, CS_OP_DELETE) == 0 && cm_json_get_array(cmd, CS_F_BLOCKS, &ids) == 0) {
        cJSON_ArrayForEach(it, ids)
        {
            if (!cJSON_IsString(it) || cs_block_id_parse(it->valuestring, &id) < 0) {
                LOG_WARN("masters: delete of a malformed block id ignored");
                continue;
            }
            rc = cs_store_delete(l->store, id);
            if (rc == 0)
                LOG_INFO("masters: deleted block %s", it->valuestring);
            else if (rc != CM_E_NOENT)
                LOG_WARN("masters: delete of block %s failed: %s", it->valuestring, cm_errname(rc));
        }
    } else if (strcmp(op, CS_OP_REPLICATE) == 0 &&
               cm_json_get_str(cmd, CS_F_BLOCK, CS_BLOCK_ID_HEX, &hex, NULL) == 0 &&
               cs_block_id_parse(hex, &id) == 0 &&
               cm_json_get_str(cmd, CS_F_TARGET, 300, &target, NULL) == 0) {
        rc = l->replicate(l->ctx, id, target);
        if (rc < 0)
            LOG_WARN("masters: replicate %s to %s refused: %s", hex, target, cm_errname(rc));
    } else {
        LOG_WARN("masters: unknown or malformed command \"%s\" ignored", op);
    }
}

/* One heartbeat. *report_asked is set when the master wants a full report. */
static int do_heartbeat(struct cs_master_link *l, bool *report_asked)
{
    struct cs_changes ch = {0};
    cJSON *body = cJSON_CreateObject(), *ans = NULL, *a = NULL, *r = NULL, *c = NULL;
    const cJSON *cmds, *it;
    bool need = false;
    int rc = CM_E_NOMEM;

    if (body == NULL || cs_store_take_changes(l->store, CS_HEARTBEAT_CHANGES_MAX, &ch) < 0) {
        cJSON_Delete(body);
        return CM_E_NOMEM;
    }
    if (add_ids(l, body) < 0 || add_space(l, body) < 0 ||
        cm_json_add_u64(body, CS_F_LOAD, l->load ? l->load(l->ctx) : 0) < 0 ||
        (l->repl_queued != NULL &&
         cm_json_add_u64(body, CS_F_REPL_QUEUED, l->repl_queued(l->ctx)) < 0) ||
        (a = cJSON_AddArrayToObject(body, CS_F_ADDED)) == NULL ||
        (r = cJSON_AddArrayToObject(body, CS_F_REMOVED)) == NULL ||
        (c = cJSON_AddArrayToObject(body, CS_F_CORRUPT)) == NULL)
        goto out;
    for (size_t i = 0; i < ch.nadded; i++)
        if (add_block(a, &ch.added[i]) < 0)
            goto out;
    for (size_t i = 0; i < ch.nremoved; i++)
        if (add_id(r, ch.removed[i]) < 0)
            goto out;
    for (size_t i = 0; i < ch.ncorrupt; i++)
        if (add_id(c, ch.corrupt[i]) < 0)
            goto out;
    rc = dfs_master_conn_post(l->mc, MASTER_PATH_CS_HEARTBEAT, body, &ans);
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&l->mu);
    l->heartbeats++;
    pthread_mutex_unlock(&l->mu);
    if (ch.ncorrupt > 0)
        LOG_INFO("masters: reported %zu corrupt block(s)", ch.ncorrupt);
    if (cm_json_opt_bool(ans, CS_F_NEED_REPORT, &need) == 0 && need)
        *report_asked = true;
    if (cm_json_get_array(ans, CS_F_COMMANDS, &cmds) == 0) {
        cJSON_ArrayForEach(it, cmds)
        {
            run_command(l, it);
        }
    }
out:
    if (rc < 0)
        cs_store_return_changes(l->store, &ch);
    cs_changes_clear(&ch);
    cJSON_Delete(body);
    cJSON_Delete(ans);
    return rc;
}

/* Waits up to ms or until woken; returns false when stopping. */
static bool wait_next(struct cs_master_link *l, uint64_t ms)
{
    struct timespec ts;
    bool go;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->stopping && !l->woken)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) != 0)
            break;
    l->woken = false;
    go = !l->stopping;
    pthread_mutex_unlock(&l->mu);
    return go;
}

static void *link_thread(void *arg)
{
    struct cs_master_link *l = arg;

    bool registered = false, need_report = true;
    uint64_t next_report = 0;

    pthread_setname_np(pthread_self(), "cs-master-link");

    do {
        int rc = 0;
        if (!registered) {
            rc = do_register(l);
            registered = rc == 0;
            need_report = need_report || registered;
        }
        if (registered &&
            (need_report || (l->report_interval_ms > 0 && cs_now_ms() >= next_report))) {
            rc = do_report(l);
            need_report = rc < 0;
            next_report = cs_now_ms() + l->report_interval_ms;
        }
        if (registered && rc == 0) {
            rc = do_heartbeat(l, &need_report);
            if (rc == CM_E_NOENT) {
                /* The masters do not know this cs_id (any more): start over. */
                LOG_WARN("masters: unknown chunkserver id; registering again");
                registered = false;
                need_report = true;
            }
        }
        note_result(l, rc);
    } while (wait_next(l, l->heartbeat_ms));
    return NULL;
}

int cs_master_link_start(const struct cs_master_link_config *cfg, struct cs_master_link **out)
{
    struct dfs_master_conn_config mcfg = {0};
    pthread_condattr_t ca;
    struct cs_master_link *l;
    int rc;

    if (cfg == NULL || cfg->masters == NULL || cfg->store == NULL || cfg->addr == NULL ||
        cfg->replicate == NULL || cfg->heartbeat_ms == 0 || out == NULL)
        return CM_E_INVAL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return CM_E_NOMEM;
    l->store = cfg->store;
    l->heartbeat_ms = cfg->heartbeat_ms;
    l->report_interval_ms = cfg->report_interval_ms;
    l->load = cfg->load;
    l->repl_queued = cfg->repl_queued;
    l->replicate = cfg->replicate;
    l->ctx = cfg->ctx;
    l->addr = strdup(cfg->addr);
    l->rack = strdup(cfg->rack ? cfg->rack : "");
    rc = CM_E_NOMEM;
    if (l->addr == NULL || l->rack == NULL)
        goto fail_free;
    mcfg.masters = cfg->masters;
    mcfg.secret = cfg->secret;
    mcfg.op_timeout_ms = cfg->op_timeout_ms;
    rc = dfs_master_conn_new(&mcfg, &l->mc);
    if (rc < 0)
        goto fail_free;
    rc = CM_E_NOMEM;
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        goto fail_mc;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_mutex;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&l->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_mutex;
    }
    pthread_condattr_destroy(&ca);
    rc = CM_E_IO;
    if (pthread_create(&l->thread, NULL, link_thread, l) != 0)
        goto fail_cond;
    *out = l;
    return 0;

fail_cond:
    pthread_cond_destroy(&l->cv);
fail_mutex:
    pthread_mutex_destroy(&l->mu);
fail_mc:
    dfs_master_conn_free(l->mc);
fail_free:
    free(l->addr);
    free(l->rack);
    free(l);
    return rc;
}

void cs_master_link_wake(struct cs_master_link *l)
{
    pthread_mutex_lock(&l->mu);
    l->woken = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void cs_master_link_status(struct cs_master_link *l, struct cs_master_link_status *out)
{
    memset(out, 0, sizeof(*out));
    out->leader_known = dfs_master_conn_leader(l->mc, out->leader, sizeof(out->leader)) == 0;
    pthread_mutex_lock(&l->mu);
    out->cs_id = l->cs_id;
    out->registered = l->cs_id != 0;
    out->last_ok = l->last_ok;
    out->last_ok_ms = l->last_ok_at ? (int64_t)(cs_now_ms() - l->last_ok_at) : -1;
    out->heartbeats = l->heartbeats;
    out->failures = l->failures;
    out->reports = l->reports;
    out->commands = l->commands;
    pthread_mutex_unlock(&l->mu);
}

void cs_master_link_stop(struct cs_master_link *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    dfs_master_conn_cancel(l->mc);
    pthread_join(l->thread, NULL);
    dfs_master_conn_free(l->mc);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l->addr);
    free(l->rack);
    free(l);
}
