/* A FIFO of jobs and one worker thread; each job streams the verified block with cm_http_call. */
#include "chunk/replicator.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk/cs_proto.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

#define TARGET_MAX 280

struct job {
    struct job *next;
    uint64_t id;
    char target[TARGET_MAX];
    cs_repl_done_fn done;
    void *ctx;
};

struct cs_replicator {
    struct cs_store *store;
    struct cm_http_client *http;
    long timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t queued;
    bool stopping;
    uint64_t ok, failed;
    pthread_t thread;
};

struct upload_ctx {
    struct cs_reader *r;
    uint64_t pos, len;
};

static int upload(void *ctx, char *buf, size_t cap, size_t *n_out)
{
    struct upload_ctx *u = ctx;
    size_t n = u->len - u->pos < cap ? (size_t)(u->len - u->pos) : cap;
    int rc;

    if (n > 0) {
        rc = cs_reader_read(u->r, u->pos, buf, n);
        if (rc < 0)
            return rc;
        u->pos += n;
    }
    *n_out = n;
    return 0;
}

/* Copies one block; returns 0 when the target answered it holds the same block. */
static int copy_block(struct cs_replicator *r, const struct job *j, struct cs_block_info *info)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    struct upload_ctx u = {0};
    char url[TARGET_MAX + 96], hex[CS_BLOCK_ID_HEX + 1];
    uint64_t len;
    uint32_t crc;
    int rc;

    rc = cs_reader_open(r->store, j->id, &u.r);
    if (rc < 0)
        return rc;
    cs_reader_info(u.r, info);
    cs_reader_limit(u.r, info->len);
    u.len = info->len;
    cs_block_id_format(j->id, hex);
    snprintf(url, sizeof(url), "http://%s" CS_PATH_BLOCKS_PREFIX "%s?" CS_QUERY_CRC "=%08" PRIx32,
             j->target, hex, info->crc);
    call.method = "PUT";
    call.url = url;
    call.upload = upload;
    call.upload_ctx = &u;
    call.upload_len = (int64_t)info->len;
    call.timeout_ms = r->timeout_ms;
    rc = cm_http_call(r->http, &call, &resp);
    if (rc == 0 &&
        (cm_json_get_u64(resp.json, CS_F_LEN, &len) < 0 ||
         cm_json_get_u32(resp.json, CS_F_CRC, &crc) < 0 || len != info->len || crc != info->crc))
        rc = CM_E_PROTO;
    cm_http_response_clear(&resp);
    cs_reader_free(u.r);
    return rc;
}

static void *worker(void *arg)
{
    struct cs_replicator *r = arg;

    pthread_setname_np(pthread_self(), "cs-replicator");

    pthread_mutex_lock(&r->mu);
    for (;;) {
        struct cs_block_info info = {0};
        char hex[CS_BLOCK_ID_HEX + 1];
        struct job *j;
        int rc;

        while (r->head == NULL && !r->stopping)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stopping)
            break;
        j = r->head;
        r->head = j->next;
        if (r->head == NULL)
            r->tail = NULL;
        r->queued--;
        pthread_mutex_unlock(&r->mu);

        rc = copy_block(r, j, &info);
        cs_block_id_format(j->id, hex);
        if (rc == 0)
            LOG_INFO("replicate: block %s copied to %s", hex, j->target);
        else
            LOG_WARN("replicate: block %s to %s failed: %s", hex, j->target, cm_errname(rc));
        if (j->done != NULL)
            j->done(j->ctx, rc, rc == 0 ? &info : NULL);
        free(j);

        pthread_mutex_lock(&r->mu);
        if (rc == 0)
            r->ok++;
        else
            r->failed++;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int cs_replicator_start(struct cs_store *store, struct cm_http_client *http, long timeout_ms,
                        struct cs_replicator **out)
{
    struct cs_replicator *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return CM_E_NOMEM;
    r->store = store;
    r->http = http;
    r->timeout_ms = timeout_ms;
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        goto fail_free;
    if (pthread_cond_init(&r->cv, NULL) != 0)
        goto fail_mutex;
    if (pthread_create(&r->thread, NULL, worker, r) != 0)
        goto fail_cond;
    *out = r;
    return 0;

fail_cond:
    pthread_cond_destroy(&r->cv);
fail_mutex:
    pthread_mutex_destroy(&r->mu);
fail_free:
    free(r);
    return CM_E_IO;
}

int cs_replicator_submit(struct cs_replicator *r, uint64_t id, const char *target,
                         cs_repl_done_fn done, void *ctx)
{
    struct job *j;
    int rc = 0;

    if (strlen(target) >= TARGET_MAX)
        return CM_E_INVAL;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return CM_E_NOMEM;
    j->id = id;
    snprintf(j->target, sizeof(j->target), "%s", target);
    j->done = done;
    j->ctx = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->stopping)
        rc = CM_E_CANCELED;
    else if (r->queued >= CS_REPL_QUEUE_MAX)
        rc = CM_E_BUSY;
    if (rc == 0) {
        if (r->tail != NULL)
            r->tail->next = j;
        else
            r->head = j;
        r->tail = j;
        r->queued++;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        free(j);
    return rc;
}

void cs_replicator_stats(struct cs_replicator *r, struct cs_repl_stats *out)
{
    pthread_mutex_lock(&r->mu);
    out->ok = r->ok;
    out->failed = r->failed;
    out->queued = r->queued;
    pthread_mutex_unlock(&r->mu);
}

void cs_replicator_stop(struct cs_replicator *r)
{
    struct job *j;

    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    while ((j = r->head) != NULL) {
        r->head = j->next;
        if (j->done != NULL)
            j->done(j->ctx, CM_E_CANCELED, NULL);
        free(j);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
