/* The periodic walk that counts under-replicated and missing blocks on the leader. */
#include "master/block_health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/log.h"
#include "master/master.h"
#include "master/ns_blockscan.h"

struct block_health {
    struct master *m;
    uint64_t grace_ms;
    pthread_t thread;
    atomic_bool stopping; /* also ends a walk under way */
    pthread_mutex_t mu;   /* for cv, and last */
    pthread_cond_t cv;
    struct bh_counts last;
    /* The walk's own state, touched by the thread only. */
    struct bh_shortlist shorts; /* of the last walk */
    uint64_t ready_since_ms;    /* first walk of the current run of judgeable ones (0: none) */
};

/* ---- the judgement ---- */

static int short_add(struct bh_shortlist *s, uint64_t id, uint64_t since)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        struct bh_short *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return CM_E_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct bh_short){id, since};
    return 0;
}

void bh_shortlist_free(struct bh_shortlist *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

int bh_judge(const struct bh_shortlist *prev, size_t *at, struct bh_shortlist *next,
             const uint64_t *ids, const uint8_t *copies, size_t n, uint64_t now_ms,
             uint64_t grace_ms, struct cs_health *h)
{
    for (size_t i = 0; i < n; i++) {
        while (*at < prev->n && prev->v[*at].id < ids[i])
            (*at)++;
        if (copies[i] >= CS_DEFAULT_REPLICATION)
            continue;
        uint64_t since =
            *at < prev->n && prev->v[*at].id == ids[i] ? prev->v[*at].since_ms : now_ms;
        int rc = short_add(next, ids[i], since);
        if (rc != 0)
            return rc;
        if (now_ms - since >= grace_ms) {
            h->under_replicated++;
            h->missing += copies[i] == 0;
        }
    }
    h->referenced += n;
    return 0;
}

/* ---- the walk ---- */

struct refs {
    struct ns *ns;
    uint64_t cursor;
    uint64_t *ids;
    size_t n, cap;
    int rc;
};

/* One step of the walk over the block index, on the loop thread. */
static void refs_step(void *arg)
{
    struct refs *w = arg;
    if (w->cap - w->n < BH_WALK_STEP) {
        size_t cap = w->cap ? 2 * w->cap : 4 * BH_WALK_STEP;
        while (cap - w->n < BH_WALK_STEP)
            cap *= 2;
        uint64_t *v = realloc(w->ids, cap * sizeof(*v));
        if (v == NULL) {
            w->rc = CM_E_NOMEM;
            return;
        }
        w->ids = v;
        w->cap = cap;
    }
    w->n += ns_refs_walk(w->ns, &w->cursor, w->ids + w->n, BH_WALK_STEP);
    w->rc = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every referenced block id, sorted and distinct: w->ids (malloc'd). */
static int collect_refs(struct block_health *b, struct refs *w)
{
    *w = (struct refs){.ns = b->m->ns};
    do {
        if (atomic_load(&b->stopping))
            return CM_E_CANCELED;
        w->rc = CM_E_NOMEM; /* stays when the node could not queue the step */
        rn_run_sync(b->m->node, refs_step, w);
    } while (w->rc == 0 && w->cursor != 0);
    if (w->rc != 0)
        return w->rc;
    if (w->n > 0)
        qsort(w->ids, w->n, sizeof(*w->ids), cmp_u64);
    size_t k = 0; /* a rehash between steps may have shown an id twice */
    for (size_t i = 0; i < w->n; i++)
        if (k == 0 || w->ids[k - 1] != w->ids[i])
            w->ids[k++] = w->ids[i];
    w->n = k;
    return 0;
}

/* Judges every referenced block. CM_E_UNAVAILABLE: the registry cannot judge copies yet. */
static int judge_all(struct block_health *b, const struct refs *w, uint64_t now,
                     struct bh_shortlist *next, struct cs_health *h)
{
    uint8_t copies[BH_BATCH];
    size_t at = 0;
    for (size_t i = 0; i < w->n; i += BH_BATCH) {
        size_t k = w->n - i < BH_BATCH ? w->n - i : BH_BATCH;
        struct cs_health raw = {0};
        if (atomic_load(&b->stopping))
            return CM_E_CANCELED;
        int rc = cs_health_count(b->m->cs, now, w->ids + i, k, &raw, copies);
        if (rc == 0)
            rc = bh_judge(&b->shorts, &at, next, w->ids + i, copies, k, now, b->grace_ms, h);
        if (rc != 0)
            return rc;
    }
    /* With no block at all, still only judgeable once the registry is. */
    return w->n == 0 ? cs_health_count(b->m->cs, now, NULL, 0, h, NULL) : 0;
}

/* One walk, when this master leads. */
static void walk(struct block_health *b)
{
    struct master *m = b->m;
    struct bh_counts c = {0};
    struct refs w = {0};
    struct bh_shortlist next = {0};
    int rc = CM_E_NOT_LEADER;
    if (master_is_leader(m)) {
        /* As the chunkserver endpoints do: a new term starts the soft state over. */
        struct rn_status st;
        rn_get_status(m->node, &st);
        cs_leader_term(m->cs, st.raft.term, master_now_ms());
        rc = collect_refs(b, &w);
    }
    uint64_t now = master_now_ms();
    if (rc == 0)
        rc = judge_all(b, &w, now, &next, &c.h);
    if (rc == 0) {
        bh_shortlist_free(&b->shorts);
        b->shorts = next;
        next = (struct bh_shortlist){0};
        if (b->ready_since_ms == 0)
            b->ready_since_ms = now;
        /* For one grace period the walks would leave out blocks short since before they began
         * (not counted until short for that long): the counts are not known yet. */
        c.known = now - b->ready_since_ms >= b->grace_ms;
        c.computed_ms = now;
    } else {
        if (rc != CM_E_NOT_LEADER && rc != CM_E_UNAVAILABLE && rc != CM_E_CANCELED)
            LOG_WARN("block health: walk failed: %s", cm_strerror(rc));
        bh_shortlist_free(&b->shorts);
        b->ready_since_ms = 0;
    }
    if (!c.known)
        c.h = (struct cs_health){0};
    bh_shortlist_free(&next);
    free(w.ids);
    pthread_mutex_lock(&b->mu);
    b->last = c;
    pthread_mutex_unlock(&b->mu);
}

static void *run(void *arg)
{
    struct block_health *b = arg;
    uint64_t wait_ms = BH_INTERVAL_MS;

    pthread_setname_np(pthread_self(), "block-health");
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&b->mu);
        while (!atomic_load(&b->stopping) && pthread_cond_timedwait(&b->cv, &b->mu, &ts) == 0)
            ;
        pthread_mutex_unlock(&b->mu);
        if (atomic_load(&b->stopping))
            break;
        uint64_t t0 = master_now_ms();
        walk(b);
        /* A walk over a big namespace takes a share of one core at most. */
        uint64_t took = master_now_ms() - t0;
        wait_ms = 4 * took > BH_INTERVAL_MS ? 4 * took : BH_INTERVAL_MS;
    }
    return NULL;
}

int bh_start(struct master *m, uint64_t grace_ms, struct block_health **out)
{
    struct block_health *b = calloc(1, sizeof(*b));
    pthread_condattr_t ca;
    if (b == NULL)
        return CM_E_NOMEM;
    b->m = m;
    b->grace_ms = grace_ms;
    atomic_init(&b->stopping, false);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return CM_E_NOMEM;
    }
    *out = b;
    return 0;
}

void bh_stop(struct block_health *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->stopping, true);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    bh_shortlist_free(&b->shorts);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void bh_get(struct block_health *b, struct bh_counts *out)
{
    *out = (struct bh_counts){0};
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    *out = b->last;
    pthread_mutex_unlock(&b->mu);
    if (!master_is_leader(b->m))
        *out = (struct bh_counts){0};
}
