/* One thread; the rate is kept by sleeping whenever the bytes read in this pass run ahead of
 * rate x elapsed time. Sleeps are waits on a condition variable so stopping is immediate. */
#include "chunk/scrubber.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "chunk/cs_internal.h"
#include "common/errors.h"
#include "common/log.h"

struct cs_scrubber {
    struct cs_store *store;
    uint64_t rate;
    uint32_t pause_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    struct cs_scrub_stats st;
    pthread_t thread;
};

/* Waits ms (unless stopping); returns false when stopping. */
static bool nap(struct cs_scrubber *sc, uint64_t ms)
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
    pthread_mutex_lock(&sc->mu);
    while (!sc->stopping && ms > 0)
        if (pthread_cond_timedwait(&sc->cv, &sc->mu, &ts) != 0)
            break;
    go = !sc->stopping;
    pthread_mutex_unlock(&sc->mu);
    return go;
}

/* Checks one block window by window, keeping the pass under the rate. Every data byte is
 * under a chunk CRC, and cs_reader_open checks that the chunk CRCs add up to the block's CRC,
 * so the chunk checks cover the whole block. */
static bool scrub_block(struct cs_scrubber *sc, const struct cs_block_info *b, uint64_t t0,
                        uint64_t *pass_bytes)
{
    struct cs_reader *r = NULL;
    bool bad = false;
    int rc;

    rc = cs_reader_open(sc->store, b->id, &r);
    if (rc == CM_E_NOENT)
        return true; /* deleted since the snapshot */
    for (uint64_t off = 0; rc == 0 && off < b->len; off += CS_READ_WINDOW) {
        uint64_t n = b->len - off < CS_READ_WINDOW ? b->len - off : CS_READ_WINDOW;
        uint64_t due, t;

        rc = cs_reader_verify(r, off, n);
        *pass_bytes += n;
        pthread_mutex_lock(&sc->mu);
        sc->st.bytes += n;
        pthread_mutex_unlock(&sc->mu);
        due = t0 + *pass_bytes * 1000 / sc->rate;
        t = cs_now_ms();
        if (due > t && !nap(sc, due - t)) {
            cs_reader_free(r);
            return false;
        }
    }
    if (rc == CM_E_CORRUPT)
        bad = true;
    cs_reader_free(r);
    pthread_mutex_lock(&sc->mu);
    sc->st.blocks++;
    sc->st.pass_done++;
    if (bad)
        sc->st.corrupt_found++;
    pthread_mutex_unlock(&sc->mu);
    return true;
}

static void *scrub_thread(void *arg)
{
    struct cs_scrubber *sc = arg;

    pthread_setname_np(pthread_self(), "cs-scrubber");

    for (;;) {
        struct cs_block_info *blocks = NULL;
        uint64_t t0 = cs_now_ms(), pass_bytes = 0;
        size_t n = 0;
        bool go = true;

        if (cs_store_list(sc->store, false, &blocks, &n) < 0)
            n = 0;
        pthread_mutex_lock(&sc->mu);
        sc->st.pass_done = 0;
        sc->st.pass_total = n;
        pthread_mutex_unlock(&sc->mu);
        for (size_t i = 0; i < n && go; i++)
            if (!blocks[i].corrupt)
                go = scrub_block(sc, &blocks[i], t0, &pass_bytes);
        free(blocks);
        if (!go)
            break;
        pthread_mutex_lock(&sc->mu);
        sc->st.passes++;
        pthread_mutex_unlock(&sc->mu);
        LOG_DEBUG("scrub: pass over %zu blocks done", n);
        if (!nap(sc, sc->pause_ms > 0 ? sc->pause_ms : 1))
            break;
    }
    return NULL;
}

int cs_scrubber_start(struct cs_store *store, uint64_t rate, uint32_t pause_ms,
                      struct cs_scrubber **out)
{
    pthread_condattr_t ca;
    struct cs_scrubber *sc;

    if (store == NULL || rate == 0 || out == NULL)
        return CM_E_INVAL;
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return CM_E_NOMEM;
    sc->store = store;
    sc->rate = rate;
    sc->pause_ms = pause_ms;
    if (pthread_mutex_init(&sc->mu, NULL) != 0)
        goto fail_free;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_mutex;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&sc->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_mutex;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_create(&sc->thread, NULL, scrub_thread, sc) != 0)
        goto fail_cond;
    *out = sc;
    return 0;

fail_cond:
    pthread_cond_destroy(&sc->cv);
fail_mutex:
    pthread_mutex_destroy(&sc->mu);
fail_free:
    free(sc);
    return CM_E_IO;
}

void cs_scrubber_stats(struct cs_scrubber *sc, struct cs_scrub_stats *out)
{
    pthread_mutex_lock(&sc->mu);
    *out = sc->st;
    pthread_mutex_unlock(&sc->mu);
}

void cs_scrubber_stop(struct cs_scrubber *sc)
{
    if (sc == NULL)
        return;
    pthread_mutex_lock(&sc->mu);
    sc->stopping = true;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    pthread_join(sc->thread, NULL);
    pthread_cond_destroy(&sc->cv);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}
