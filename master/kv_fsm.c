/* The key-value state machine: a hash table of keys, a table of client sessions for
 * exactly-once mutations, and a compact snapshot of both. */
#include "master/kv_fsm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

#define SNAP_MAGIC "DFSKV001"

struct kv_item {
    char *key;
    char *value;
    uint64_t revision;
    UT_hash_handle hh;
};

struct kv_session {
    char client[KV_MAX_CLIENT + 1];
    uint64_t seq;
    int err;
    uint64_t revision;
    UT_hash_handle hh;
};

struct kv_fsm {
    struct kv_item *items;
    struct kv_session *sessions;
    uint64_t applied;
};

int kv_new(struct kv_fsm **out)
{
    *out = calloc(1, sizeof(struct kv_fsm));
    return *out ? 0 : CM_E_NOMEM;
}

static void clear(struct kv_fsm *kv)
{
    struct kv_item *it, *tmp;
    HASH_ITER(hh, kv->items, it, tmp)
    {
        HASH_DEL(kv->items, it);
        free(it->key);
        free(it->value);
        free(it);
    }
    struct kv_session *s, *st;
    HASH_ITER(hh, kv->sessions, s, st)
    {
        HASH_DEL(kv->sessions, s);
        free(s);
    }
    kv->applied = 0;
}

void kv_free(struct kv_fsm *kv)
{
    if (kv == NULL)
        return;
    clear(kv);
    free(kv);
}

int kv_command(const char *client, uint64_t seq, const char *key, const char *value, char **out,
               size_t *len)
{
    size_t kl = key ? strlen(key) : 0, cl = client ? strlen(client) : 0;
    if (kl == 0 || kl > KV_MAX_KEY || cl == 0 || cl > KV_MAX_CLIENT ||
        (value && strlen(value) > KV_MAX_VALUE))
        return CM_E_INVAL;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "op", value ? "put" : "delete") ||
        !cJSON_AddStringToObject(o, "key", key) ||
        (value && !cJSON_AddStringToObject(o, "value", value)) ||
        !cJSON_AddStringToObject(o, "client", client) || cm_json_add_u64(o, "seq", seq) != 0) {
        cJSON_Delete(o);
        return CM_E_NOMEM;
    }
    int rc = cm_json_print(o, out, len);
    cJSON_Delete(o);
    return rc;
}

static int result(int err, uint64_t revision, void **res, size_t *len)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64, revision);
    *res = malloc((size_t)n + 1);
    if (*res == NULL)
        return CM_E_NOMEM;
    memcpy(*res, buf, (size_t)n + 1);
    *len = (size_t)n;
    return err;
}

int kv_apply(struct kv_fsm *kv, raft_index index, const void *data, size_t len, void **res,
             size_t *res_len)
{
    cJSON *o = NULL;
    const char *op, *key, *value = NULL, *client;
    uint64_t seq;
    int err;
    kv->applied = index;
    /* Commands come from our own client API, but the log is input too: validate it. */
    if ((err = cm_json_parse_object(data, len, &o)) != 0)
        return err;
    if ((err = cm_json_get_str(o, "op", 16, &op, NULL)) != 0 ||
        (err = cm_json_get_str(o, "key", KV_MAX_KEY, &key, NULL)) != 0 ||
        (err = cm_json_get_str(o, "client", KV_MAX_CLIENT, &client, NULL)) != 0 ||
        (err = cm_json_get_u64(o, "seq", &seq)) != 0 ||
        (err = cm_json_opt_str(o, "value", KV_MAX_VALUE, &value, NULL)) != 0)
        goto out;

    struct kv_session *s = NULL;
    HASH_FIND_STR(kv->sessions, client, s);
    if (s != NULL && seq <= s->seq) {
        /* A retry of the last command gets its answer; anything older is refused. */
        err = seq == s->seq ? result(s->err, s->revision, res, res_len) : CM_E_INVAL;
        goto out;
    }
    if (strcmp(op, "put") == 0 && value != NULL) {
        struct kv_item *it = NULL;
        HASH_FIND_STR(kv->items, key, it);
        char *v = strdup(value);
        if (v == NULL) {
            err = CM_E_NOMEM;
            goto out;
        }
        if (it == NULL) {
            it = calloc(1, sizeof(*it));
            if (it == NULL || (it->key = strdup(key)) == NULL) {
                free(it);
                free(v);
                err = CM_E_NOMEM;
                goto out;
            }
            HASH_ADD_KEYPTR(hh, kv->items, it->key, strlen(it->key), it);
        }
        free(it->value);
        it->value = v;
        it->revision = index;
        err = 0;
    } else if (strcmp(op, "delete") == 0) {
        struct kv_item *it = NULL;
        HASH_FIND_STR(kv->items, key, it);
        if (it != NULL) {
            HASH_DEL(kv->items, it);
            free(it->key);
            free(it->value);
            free(it);
            err = 0;
        } else {
            err = CM_E_NOENT;
        }
    } else {
        err = CM_E_INVAL;
        goto out;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            err = CM_E_NOMEM;
            goto out;
        }
        snprintf(s->client, sizeof(s->client), "%s", client);
        HASH_ADD_STR(kv->sessions, client, s);
    }
    s->seq = seq;
    s->err = err;
    s->revision = index;
    err = result(err, index, res, res_len);
out:
    cJSON_Delete(o);
    return err;
}

/* Snapshot: magic, counts (applied index, items, sessions), then per item key, value (u32
 * length + bytes) and revision, then per session client, seq, err and revision. */
struct out {
    kv_write_fn fn;
    void *arg;
    int rc;
};

static void put(struct out *o, const void *data, size_t len)
{
    if (o->rc == 0)
        o->rc = o->fn(o->arg, data, len);
}

static void put_str(struct out *o, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    put(o, &n, sizeof(n));
    put(o, s, n);
}

int kv_snapshot_write(struct kv_fsm *kv, kv_write_fn fn, void *arg)
{
    struct out o = {.fn = fn, .arg = arg, .rc = 0};
    uint64_t counts[3] = {kv->applied, HASH_COUNT(kv->items), HASH_COUNT(kv->sessions)};
    put(&o, SNAP_MAGIC, 8);
    put(&o, counts, sizeof(counts));
    struct kv_item *it, *tmp;
    HASH_ITER(hh, kv->items, it, tmp)
    {
        put_str(&o, it->key);
        put_str(&o, it->value);
        put(&o, &it->revision, 8);
    }
    struct kv_session *s, *st;
    HASH_ITER(hh, kv->sessions, s, st)
    {
        int64_t err = s->err;
        put_str(&o, s->client);
        put(&o, &s->seq, 8);
        put(&o, &err, 8);
        put(&o, &s->revision, 8);
    }
    return o.rc;
}

static int writer_append(void *arg, const void *data, size_t len)
{
    return rs_snapshot_append(arg, data, len);
}

static int snapshot(void *ctx, struct rs_snapshot_writer *w)
{
    return kv_snapshot_write(ctx, writer_append, w);
}

static int get_str(FILE *f, size_t max, char **out)
{
    uint32_t n;
    if (fread(&n, sizeof(n), 1, f) != 1 || n > max)
        return CM_E_STORE;
    char *s = malloc(n + 1);
    if (s == NULL)
        return CM_E_NOMEM;
    if (n > 0 && fread(s, 1, n, f) != n) {
        free(s);
        return CM_E_STORE;
    }
    s[n] = 0;
    *out = s;
    return 0;
}

static int restore_file(struct kv_fsm *kv, FILE *f)
{
    char magic[8];
    uint64_t counts[3];
    int rc = 0;
    clear(kv);
    if (fread(magic, 8, 1, f) != 1 || memcmp(magic, SNAP_MAGIC, 8) != 0 ||
        fread(counts, sizeof(counts), 1, f) != 1)
        return CM_E_STORE;
    kv->applied = counts[0];
    for (uint64_t i = 0; i < counts[1] && rc == 0; i++) {
        struct kv_item *it = calloc(1, sizeof(*it));
        if (it == NULL) {
            rc = CM_E_NOMEM;
            break;
        }
        if ((rc = get_str(f, KV_MAX_KEY, &it->key)) == 0 &&
            (rc = get_str(f, KV_MAX_VALUE, &it->value)) == 0 &&
            fread(&it->revision, 8, 1, f) != 1)
            rc = CM_E_STORE;
        if (rc != 0) {
            free(it->key);
            free(it->value);
            free(it);
            break;
        }
        HASH_ADD_KEYPTR(hh, kv->items, it->key, strlen(it->key), it);
    }
    for (uint64_t i = 0; i < counts[2] && rc == 0; i++) {
        char *client = NULL;
        int64_t err;
        struct kv_session *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            rc = CM_E_NOMEM;
            break;
        }
        if ((rc = get_str(f, KV_MAX_CLIENT, &client)) == 0 &&
            (fread(&s->seq, 8, 1, f) != 1 || fread(&err, 8, 1, f) != 1 ||
             fread(&s->revision, 8, 1, f) != 1))
            rc = CM_E_STORE;
        if (rc != 0) {
            free(client);
            free(s);
            break;
        }
        snprintf(s->client, sizeof(s->client), "%s", client);
        free(client);
        s->err = (int)err;
        HASH_ADD_STR(kv->sessions, client, s);
    }
    return rc;
}

int kv_restore_buf(struct kv_fsm *kv, const void *buf, size_t len)
{
    if (len == 0) {
        clear(kv);
        return CM_E_STORE;
    }
    FILE *f = fmemopen((void *)buf, len, "rb");
    if (f == NULL)
        return CM_E_NOMEM;
    int rc = restore_file(kv, f);
    fclose(f);
    if (rc != 0)
        clear(kv);
    return rc;
}

static int restore(void *ctx, const char *path, uint64_t size)
{
    struct kv_fsm *kv = ctx;
    (void)size;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return CM_E_IO;
    int rc = restore_file(kv, f);
    fclose(f);
    if (rc != 0) {
        LOG_ERROR("kv: snapshot %s is not readable: %s", path, cm_strerror(rc));
        clear(kv);
    }
    return rc;
}

static int fsm_apply(void *ctx, raft_index index, const void *data, size_t len, void **res,
                     size_t *res_len)
{
    return kv_apply(ctx, index, data, len, res, res_len);
}

struct rn_fsm kv_fsm_ops(struct kv_fsm *kv)
{
    return (struct rn_fsm){.ctx = kv, .apply = fsm_apply, .snapshot = snapshot, .restore = restore};
}

int kv_get(struct kv_fsm *kv, const char *key, char **value, uint64_t *revision)
{
    struct kv_item *it = NULL;
    HASH_FIND_STR(kv->items, key, it);
    if (it == NULL)
        return CM_E_NOENT;
    *value = strdup(it->value);
    if (*value == NULL)
        return CM_E_NOMEM;
    *revision = it->revision;
    return 0;
}

void kv_stats(struct kv_fsm *kv, uint64_t *keys, uint64_t *applied)
{
    *keys = HASH_COUNT(kv->items);
    *applied = kv->applied;
}
