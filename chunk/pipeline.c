/* A ring buffer between the thread receiving a block and a pool thread doing a streamed PUT
 * with cm_http_call; a mutex and one condition variable for both directions. */
#include "chunk/pipeline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/log.h"

struct cs_fwd {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ring;
    size_t cap, head, count;
    /* Bytes the upload took so far, kept in the ring before head while at most cap / 2 (and
     * the writer waits for them) so that curl can send the request again from the start. */
    size_t sent;
    bool rewindable;
    bool ended;    /* no more pushes: the body is complete */
    bool aborted;  /* the body will not be complete */
    bool finished; /* the transfer returned */
    int rc;        /* its result, once finished */
    int refs;      /* the feeding side and the thread */
    struct cm_http_client *http;
    char *url;
    int64_t len;
    long timeout_ms;
    cs_fwd_done_fn done;
    void *ctx;
    struct cs_waitgroup *wg;
    struct cs_fwd *next; /* in the pool's queue */
};

int cs_waitgroup_init(struct cs_waitgroup *wg)
{
    wg->n = 0;
    if (pthread_mutex_init(&wg->mu, NULL) != 0)
        return CM_E_NOMEM;
    if (pthread_cond_init(&wg->cv, NULL) != 0) {
        pthread_mutex_destroy(&wg->mu);
        return CM_E_NOMEM;
    }
    return 0;
}

void cs_waitgroup_destroy(struct cs_waitgroup *wg)
{
    pthread_cond_destroy(&wg->cv);
    pthread_mutex_destroy(&wg->mu);
}

void cs_waitgroup_wait(struct cs_waitgroup *wg)
{
    pthread_mutex_lock(&wg->mu);
    while (wg->n > 0)
        pthread_cond_wait(&wg->cv, &wg->mu);
    pthread_mutex_unlock(&wg->mu);
}

static void wg_add(struct cs_waitgroup *wg, int d)
{
    pthread_mutex_lock(&wg->mu);
    wg->n += (unsigned)d;
    if (wg->n == 0)
        pthread_cond_broadcast(&wg->cv);
    pthread_mutex_unlock(&wg->mu);
}

static void fwd_free(struct cs_fwd *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f->ring);
    free(f->url);
    free(f);
}

/* Drops one reference; the last frees. Called without f->mu. */
static void fwd_put(struct cs_fwd *f)
{
    bool last;

    pthread_mutex_lock(&f->mu);
    last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last)
        fwd_free(f);
}

static int upload(void *ctx, char *buf, size_t cap, size_t *n_out)
{
    struct cs_fwd *f = ctx;
    size_t n, first;

    pthread_mutex_lock(&f->mu);
    while (f->count == 0 && !f->ended && !f->aborted)
        pthread_cond_wait(&f->cv, &f->mu);
    if (f->aborted) {
        pthread_mutex_unlock(&f->mu);
        return CM_E_CANCELED;
    }
    n = f->count < cap ? f->count : cap;
    first = f->cap - f->head < n ? f->cap - f->head : n;
    memcpy(buf, f->ring + f->head, first);
    memcpy(buf + first, f->ring, n - first);
    f->head = (f->head + n) % f->cap;
    f->count -= n;
    f->sent += n;
    if (f->sent > f->cap / 2)
        f->rewindable = false; /* the writer may have those bytes' room now */
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    *n_out = n;
    return 0;
}

/* The room the writer may not fill: what is unread, and what was sent while it may be
 * needed again. */
static size_t held(const struct cs_fwd *f)
{
    return f->count + (f->rewindable ? f->sent : 0);
}

/* curl found the kept-alive connection closed and sends the request again on a new one. */
static int rewind_upload(void *ctx)
{
    struct cs_fwd *f = ctx;
    int rc = 0;

    pthread_mutex_lock(&f->mu);
    if (f->rewindable) {
        f->head = (f->head + f->cap - f->sent) % f->cap;
        f->count += f->sent;
        f->sent = 0;
    } else {
        rc = CM_E_IO;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* One forward, on a pool thread: the streamed PUT, then the answer to the feeding side. */
static void fwd_run(struct cs_fwd *f)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    struct cs_waitgroup *wg = f->wg;
    int rc;

    call.method = "PUT";
    call.url = f->url;
    call.upload = upload;
    call.upload_ctx = f;
    call.upload_len = f->len;
    call.upload_rewind = rewind_upload;
    call.timeout_ms = f->timeout_ms;
    rc = cm_http_call(f->http, &call, &resp);
    if (rc < 0)
        LOG_DEBUG("pipeline: PUT %s: %s", f->url, cm_errname(rc));
    pthread_mutex_lock(&f->mu);
    f->finished = true;
    f->rc = rc < 0 ? rc : 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    f->done(f->ctx, rc, &resp);
    cm_http_response_clear(&resp);
    fwd_put(f);
    wg_add(wg, -1);
}

/* Forwards run on pooled threads: a thread created for every hop of every block cost more
 * than a small block's network time. The pool grows when no thread is idle (every forward
 * has a thread at once: a forward waits on its own upstream only) and shrinks by threads
 * idle for POOL_IDLE_S. */
#define POOL_IDLE_S 30

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cs_fwd *head, *tail; /* forwards waiting for a thread */
    unsigned queued, idle;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *pool_thread(void *arg)
{
    (void)arg;

    pthread_setname_np(pthread_self(), "cs-pipeline");
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.head == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += POOL_IDLE_S;
            pool.idle++;
            int rc = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
            pool.idle--;
            if (rc == ETIMEDOUT && pool.head == NULL) {
                pthread_mutex_unlock(&pool.mu);
                return NULL;
            }
        }
        struct cs_fwd *f = pool.head;
        pool.head = f->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
        pthread_mutex_unlock(&pool.mu);
        fwd_run(f);
        pthread_mutex_lock(&pool.mu);
    }
}

/* Hands f to an idle thread or a new one. Returns 0 or CM_E_IO (no thread could be made). */
static int pool_submit(struct cs_fwd *f)
{
    pthread_mutex_lock(&pool.mu);
    if (pool.idle <= pool.queued) {
        pthread_attr_t attr;
        pthread_t th;
        int rc = pthread_attr_init(&attr);
        if (rc == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            rc = pthread_create(&th, &attr, pool_thread, NULL);
            pthread_attr_destroy(&attr);
        }
        if (rc != 0) {
            pthread_mutex_unlock(&pool.mu);
            return CM_E_IO;
        }
    }
    f->next = NULL;
    if (pool.tail != NULL)
        pool.tail->next = f;
    else
        pool.head = f;
    pool.tail = f;
    pool.queued++;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

int cs_fwd_start(const struct cs_fwd_config *cfg, struct cs_fwd **out)
{
    struct cs_fwd *f;
    int rc = CM_E_NOMEM;

    if (cfg == NULL || cfg->http == NULL || cfg->url == NULL || cfg->done == NULL ||
        cfg->wg == NULL || out == NULL)
        return CM_E_INVAL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return CM_E_NOMEM;
    f->cap = cfg->buffer ? cfg->buffer : CS_FWD_DEFAULT_BUFFER;
    f->ring = malloc(f->cap);
    f->url = strdup(cfg->url);
    if (f->ring == NULL || f->url == NULL)
        goto fail_free;
    if (pthread_mutex_init(&f->mu, NULL) != 0)
        goto fail_free;
    if (pthread_cond_init(&f->cv, NULL) != 0)
        goto fail_mutex;
    f->refs = 2;
    f->rewindable = true;
    f->http = cfg->http;
    f->len = cfg->len;
    f->timeout_ms = cfg->timeout_ms;
    f->done = cfg->done;
    f->ctx = cfg->ctx;
    f->wg = cfg->wg;
    wg_add(f->wg, 1);
    rc = pool_submit(f);
    if (rc != 0) {
        wg_add(f->wg, -1);
        goto fail_cond;
    }
    *out = f;
    return 0;

fail_cond:
    pthread_cond_destroy(&f->cv);
fail_mutex:
    pthread_mutex_destroy(&f->mu);
fail_free:
    free(f->ring);
    free(f->url);
    free(f);
    return rc;
}

int cs_fwd_push(struct cs_fwd *f, const void *buf, size_t len)
{
    const char *p = buf;
    int rc = 0;

    pthread_mutex_lock(&f->mu);
    while (len > 0) {
        size_t tail, n, first;
        while (held(f) == f->cap && !f->finished && !f->aborted)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->finished || f->aborted) {
            /* Ended before taking the whole body: an answer that early is an error too. */
            rc = f->aborted ? CM_E_CANCELED : f->rc < 0 ? f->rc : CM_E_PROTO;
            break;
        }
        n = f->cap - held(f) < len ? f->cap - held(f) : len;
        tail = (f->head + f->count) % f->cap;
        first = f->cap - tail < n ? f->cap - tail : n;
        memcpy(f->ring + tail, p, first);
        memcpy(f->ring, p + first, n - first);
        f->count += n;
        p += n;
        len -= n;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void cs_fwd_end(struct cs_fwd *f)
{
    pthread_mutex_lock(&f->mu);
    f->ended = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void cs_fwd_abort(struct cs_fwd *f)
{
    pthread_mutex_lock(&f->mu);
    if (!f->ended)
        f->aborted = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void cs_fwd_release(struct cs_fwd *f)
{
    if (f == NULL)
        return;
    cs_fwd_abort(f);
    fwd_put(f);
}
