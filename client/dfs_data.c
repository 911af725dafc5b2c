/* libdfs, data half: files' bytes on chunkservers (see "file data" in dfs.h).
 *
 * Writing: bytes go into one buffer of at most a block; a full buffer (or a write elsewhere in the
 * file) becomes a block: a fresh id from a batch reserved with alloc-blocks, chunkservers from
 * /v1/fs/place, one PUT to the first with the rest named as its pipeline. The answer says which
 * members hold the block durably; when some failed, the block is sent again from memory to other
 * chunkservers until it has its copies or no other chunkserver is left (pipeline recovery). Stored
 * blocks wait in a list and are committed, runs of adjacent ones in one commit each, at flush.
 *
 * Reading: the extents of a window of the file come from /v1/fs/blocks (cached until invalidated
 * or a commit), their bytes from the replicas in the order the master gives (live ones first),
 * the next replica after any error, in ranges of at most 2 MiB fetched by up to 4 threads at
 * once. A read-ahead buffer serves sequential reads, and a thread of its own fetches the window
 * after it meanwhile. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/dfs.h"
#include "client/dfs_internal.h"
#include "client/fs_proto.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

#define IDS_BATCH 64 /* block ids reserved per alloc-blocks */
/* The masters delete, as orphans, blocks on chunkservers that no file references and whose ids
 * were reserved more than an hour ago (CS_ORPHAN_GRACE_MS). So reserved ids are not used after
 * IDS_MAX_AGE_MS, and stored blocks wait at most PEND_MAX_AGE_MS for their commit. */
#define IDS_MAX_AGE_MS  (10 * 60 * 1000)
#define PEND_MAX_AGE_MS DFS_PEND_MAX_AGE_MS
#define COMMIT_MAX      4096  /* blocks per commit (the masters' limit) */
#define PUT_ATTEMPTS    6     /* stores of one block before giving up */
#define LOG_EVERY_MS    10000 /* a failing chunkserver is named at most this often per site */
#define READAHEAD       (8u * 1024 * 1024) /* bytes fetched past a read that misses */
/* Bytes per ranged GET of a large read: at most a chunkserver's CS_READ_WINDOW, so that the
 * chunkserver reads and checks the range once (chunk/store.h). */
#define PIECE_MAX       (2u * 1024 * 1024)
#define FETCH_THREADS   4              /* ranged GETs of one read at a time */
#define EXT_WINDOW      (256ull << 20) /* file bytes whose extents one listing asks for */
#define EXT_MAX         1024           /* extents per listing */
#define CRED_GROUPS_MAX 32
#define ADDR_MAX        272
/* A block up to this size is sent by the client to each of its chunkservers at once rather than
 * down a pipeline: the copies are stored side by side, so a small file's close waits for one
 * chunkserver's write (its journal's sync, docs/chunkserver.md) instead of three in a row. The
 * same as the chunkservers' CS_JOURNAL_BLOCK_MAX; larger blocks keep the pipeline, which sends
 * the bytes over the client's link once. */
#define FANOUT_MAX (256u * 1024)

struct pend_block { /* stored on chunkservers, not committed yet */
    uint64_t off, id;
    uint32_t len, crc;
    unsigned nrep;
    uint32_t reps[DFS_MAX_REPLICAS];
};

struct ext { /* an extent of the cached listing */
    uint64_t off, len, block_off, id;
    unsigned naddr;
    char addrs[DFS_MAX_REPLICAS][ADDR_MAX];
};

struct dfs_file {
    struct dfs *fs;
    struct dfs_fh fh;
    bool has_cred;
    struct dfs_cred cred;
    uint32_t groups[CRED_GROUPS_MAX];
    pthread_mutex_t mu;
    /* writing */
    char *wbuf;
    size_t wcap, wlen;
    uint64_t woff;
    struct pend_block *pend;
    size_t npend, cappend;
    uint64_t pend_ms; /* when pend[0] was stored */
    uint64_t dirty_end;
    /* dirty_end while writes wait (0: none), published at every unlock of mu so that
     * dfs_file_dirty never waits behind a store or a commit in progress. */
    _Atomic uint64_t pub_end;
    int werr; /* a failed store, reported by the next flush */
    /* reading */
    bool size_known;
    uint64_t size;
    bool ext_valid;
    uint64_t ext_from, ext_to; /* the file range the cached listing covers */
    struct ext *ext;
    size_t next, capext;
    char *ra; /* the read buffer: file bytes [raoff, raoff + ralen) */
    size_t racap, ralen;
    uint64_t raoff;
    uint64_t seq_end; /* where the last read ended */
    /* read-ahead: the window after ra, [pfoff, pfoff + pflen), fetched into pf by a thread of
     * its own (which owns pf while pf_busy). Every invalidation bumps gen, so a window fetched
     * from before it (pf_gen) is never read. */
    uint64_t gen, pf_gen;
    char *pf;
    size_t pfcap, pflen;
    uint64_t pfoff;
    bool pf_busy, pf_ready, pf_joinable;
    pthread_t pf_thread;
    pthread_cond_t pf_cv;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const struct dfs_cred *cred_of(const struct dfs_file *f)
{
    return f->has_cred ? &f->cred : NULL;
}

static void stat_add(struct dfs *fs, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&fs->mu);
    *field += n;
    pthread_mutex_unlock(&fs->mu);
}

void dfs_data_stats(struct dfs *fs, struct dfs_data_stats *out)
{
    pthread_mutex_lock(&fs->mu);
    *out = fs->stats;
    pthread_mutex_unlock(&fs->mu);
    out->readahead_bytes = atomic_load(&fs->ra_bytes);
}

/* Takes n more bytes of read buffers from the mount-wide budget; false when it is spent (the
 * caller then reads without a window). */
static bool ra_reserve(struct dfs *fs, size_t n)
{
    size_t cur = atomic_load(&fs->ra_bytes);
    do {
        if (n > fs->ra_budget || cur > fs->ra_budget - n) {
            stat_add(fs, &fs->stats.readahead_over_budget, 1);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&fs->ra_bytes, &cur, cur + n));
    return true;
}

int dfs_file_open(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh,
                  struct dfs_file **out)
{
    struct dfs_file *f;

    if (fs == NULL || out == NULL)
        return CM_E_INVAL;
    if (cred != NULL && (cred->ngroups > CRED_GROUPS_MAX || (cred->ngroups && !cred->groups)))
        return CM_E_INVAL;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return CM_E_NOMEM;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return CM_E_NOMEM;
    }
    if (pthread_cond_init(&f->pf_cv, NULL) != 0) {
        pthread_mutex_destroy(&f->mu);
        free(f);
        return CM_E_NOMEM;
    }
    f->fs = fs;
    f->fh = fh;
    if (cred != NULL) {
        f->has_cred = true;
        f->cred = *cred;
        if (cred->ngroups > 0)
            memcpy(f->groups, cred->groups, cred->ngroups * sizeof(*f->groups));
        f->cred.groups = f->groups;
    }
    *out = f;
    return 0;
}

void dfs_file_close(struct dfs_file *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    bool joinable = f->pf_joinable;
    pthread_mutex_unlock(&f->mu);
    if (joinable)
        pthread_join(f->pf_thread, NULL); /* a read-ahead still fetching: it needs f */
    pthread_cond_destroy(&f->pf_cv);
    pthread_mutex_destroy(&f->mu);
    atomic_fetch_sub(&f->fs->ra_bytes, f->racap + f->pfcap);
    free(f->pf);
    free(f->wbuf);
    free(f->pend);
    free(f->ext);
    free(f->ra);
    free(f);
}

/* What was read (and is being read ahead) is not used again. */
static void drop_reads_locked(struct dfs_file *f)
{
    f->ralen = 0;
    f->pf_ready = false;
    f->gen++;
}

static void invalidate_locked(struct dfs_file *f)
{
    f->size_known = false;
    f->ext_valid = false;
    drop_reads_locked(f);
}

void dfs_file_invalidate(struct dfs_file *f)
{
    pthread_mutex_lock(&f->mu);
    invalidate_locked(f);
    pthread_mutex_unlock(&f->mu);
}

/* Publishes the dirty state; callers hold f->mu and are about to release it. */
static void publish(struct dfs_file *f)
{
    atomic_store(&f->pub_end, f->wlen > 0 || f->npend > 0 ? f->dirty_end : 0);
}

bool dfs_file_dirty(struct dfs_file *f, uint64_t *end)
{
    uint64_t e = atomic_load(&f->pub_end);

    if (e != 0 && end != NULL)
        *end = e;
    return e != 0;
}

/* ---- storing blocks ---- */

static int take_block_id(struct dfs *fs, uint64_t *id)
{
    struct dfs_req b;
    cJSON *ans;
    uint64_t first;
    int rc;

    pthread_mutex_lock(&fs->mu);
    if (fs->ids_next < fs->ids_end && now_ms() - fs->ids_ms < IDS_MAX_AGE_MS) {
        *id = fs->ids_next++;
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    pthread_mutex_unlock(&fs->mu);
    dreq_init(&b);
    dreq_u64(&b, FSF_COUNT, IDS_BATCH);
    if ((rc = dfs__mutate(fs, FSP_ALLOC, &b, NULL, &ans)) != 0)
        return rc;
    rc = cm_json_get_u64(ans, FSF_VALUE, &first) == 0 && first != 0 ? 0 : CM_E_PROTO;
    cJSON_Delete(ans);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&fs->mu);
    fs->ids_next = first + 1;
    fs->ids_end = first + IDS_BATCH;
    fs->ids_ms = now_ms();
    pthread_mutex_unlock(&fs->mu);
    *id = first;
    return 0;
}

struct target {
    uint32_t id;
    char addr[ADDR_MAX];
};

/* Live chunkservers with space, most suitable first (at most 16). */
static int place(struct dfs *fs, unsigned count, struct target *out, unsigned *n)
{
    struct dfs_req b;
    const cJSON *arr, *it;
    const char *addr;
    cJSON *ans;
    int rc;

    *n = 0;
    dreq_init(&b);
    dreq_u64(&b, FSF_COUNT, count);
    if ((rc = b.err) != 0) {
        cJSON_Delete(b.j);
        return rc;
    }
    rc = dfs_master_conn_post(fs->mc, FSP_PLACE, b.j, &ans);
    cJSON_Delete(b.j);
    if (rc != 0) {
        cJSON_Delete(ans);
        return rc;
    }
    if (cm_json_get_array(ans, FSF_CHUNKSERVERS, &arr) != 0) {
        cJSON_Delete(ans);
        return CM_E_PROTO;
    }
    cJSON_ArrayForEach(it, arr)
    {
        if (*n >= count)
            break;
        if (cm_json_get_u32(it, FSF_ID, &out[*n].id) != 0 ||
            cm_json_get_str(it, FSF_ADDR, ADDR_MAX - 1, &addr, NULL) != 0) {
            rc = CM_E_PROTO;
            break;
        }
        snprintf(out[*n].addr, ADDR_MAX, "%s", addr);
        (*n)++;
    }
    cJSON_Delete(ans);
    return rc;
}

struct putres {
    struct target holders[DFS_MAX_REPLICAS];
    unsigned nholders;
    char failed[16][ADDR_MAX];
    unsigned nfailed;
};

static bool is_holder(const struct putres *p, uint32_t id)
{
    for (unsigned i = 0; i < p->nholders; i++)
        if (p->holders[i].id == id)
            return true;
    return false;
}

static bool has_failed(const struct putres *p, const char *addr)
{
    for (unsigned i = 0; i < p->nfailed; i++)
        if (strcmp(p->failed[i], addr) == 0)
            return true;
    return false;
}

static void add_failed(struct putres *p, const char *addr)
{
    if (!has_failed(p, addr) && p->nfailed < 16)
        snprintf(p->failed[p->nfailed++], ADDR_MAX, "%s", addr);
}

/* The "replicas" and "failed" of a PUT's answer (or error object) into p. A member "not
 * reached" (UNAVAILABLE: a hop before it broke) is not known to be bad, so it stays a candidate
 * for the next attempt (docs/chunkserver.md, PUT /blocks/{id}). */
static void take_members(uint64_t id, const cJSON *o, const struct target *t, unsigned n,
                         struct putres *p)
{
    const cJSON *arr, *it;

    if (cm_json_get_array(o, FSF_REPLICAS, &arr) == 0) {
        cJSON_ArrayForEach(it, arr)
        {
            if (!cJSON_IsString(it))
                continue;
            for (unsigned i = 0; i < n; i++)
                if (strcmp(t[i].addr, it->valuestring) == 0 && !is_holder(p, t[i].id) &&
                    p->nholders < DFS_MAX_REPLICAS)
                    p->holders[p->nholders++] = t[i];
        }
    }
    if (cm_json_get_array(o, FSF_FAILED, &arr) == 0) {
        cJSON_ArrayForEach(it, arr)
        {
            const char *a = NULL, *e = "?", *msg = "";
            cm_json_get_str(it, FSF_ADDR, ADDR_MAX - 1, &a, NULL);
            cm_json_opt_str(it, "error", 64, &e, NULL);
            cm_json_opt_str(it, "message", 256, &msg, NULL);
            if (a == NULL ||
                (strcmp(e, cm_errname(CM_E_UNAVAILABLE)) == 0 && strcmp(msg, "not reached") == 0))
                continue;
            LOG_WARN_LIMITED(LOG_EVERY_MS,
                             "data: block %016" PRIx64 ": pipeline member %s failed (%s)", id, a,
                             e);
            add_failed(p, a);
        }
    }
}

/* One PUT of the block to t[0] with t[1..n) as its pipeline; adds what holds it to p. */
static int put_once(struct dfs *fs, uint64_t id, const void *data, uint32_t len, uint32_t crc,
                    const struct target *t, unsigned n, struct putres *p)
{
    char url[ADDR_MAX + 64], pipe_h[16 + DFS_MAX_REPLICAS * ADDR_MAX], crc_h[40];
    /* A block above 1 MiB waits for "100 Continue" (common/http_client.c): a chunkserver
     * refusing it at the start (a full disk) is then heard, not reset. */
    const char *headers[3] = {crc_h, NULL, NULL};
    struct cm_http_call call = {0};
    struct cm_http_response resp = {0};
    const cJSON *arr;
    size_t used;
    int rc;

    snprintf(url, sizeof(url), "http://%s" CSP_BLOCKS "%016" PRIx64, t[0].addr, id);
    snprintf(crc_h, sizeof(crc_h), "X-Dfs-Crc32c: %08" PRIx32, crc);
    if (n > 1) {
        used = (size_t)snprintf(pipe_h, sizeof(pipe_h), "X-Dfs-Pipeline: ");
        for (unsigned i = 1; i < n; i++)
            used += (size_t)snprintf(pipe_h + used, sizeof(pipe_h) - used, "%s%s", i > 1 ? "," : "",
                                     t[i].addr);
        headers[1] = pipe_h;
    }
    call.method = "PUT";
    call.url = url;
    call.body = len > 0 ? data : "";
    call.body_len = len;
    call.headers = headers;
    call.timeout_ms = fs->data_timeout_ms;
    rc = cm_http_call(fs->data, &call, &resp);
    if (rc != 0) {
        LOG_WARN_LIMITED(LOG_EVERY_MS, "data: block %016" PRIx64 " to %s (pipeline of %u): %s", id,
                         t[0].addr, n, cm_errname(rc));
        add_failed(p, t[0].addr);
        /* An error found after the whole body came in lists what the pipeline stored. */
        if (resp.error != NULL)
            take_members(id, resp.error, t, n, p);
        cm_http_response_clear(&resp);
        return rc;
    }
    if (cm_json_get_array(resp.json, FSF_REPLICAS, &arr) != 0) {
        cm_http_response_clear(&resp);
        add_failed(p, t[0].addr);
        return CM_E_PROTO;
    }
    take_members(id, resp.json, t, n, p);
    cm_http_response_clear(&resp);
    return 0;
}

/* The fan-out of a small block: one PUT to each target at once on the async engine. */
struct fan {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned pending;
    int err[DFS_MAX_REPLICAS];
    cJSON *ans[DFS_MAX_REPLICAS]; /* a 200's answer */
};

struct fan_slot {
    struct fan *fan;
    unsigned i;
};

static void fan_done(void *ctx, int err, struct cm_http_response *resp)
{
    struct fan_slot *s = ctx;
    struct fan *f = s->fan;
    cJSON *keep = NULL;

    if (err == 0) {
        keep = resp->json;
        resp->json = NULL;
    }
    pthread_mutex_lock(&f->mu);
    f->err[s->i] = err;
    f->ans[s->i] = keep;
    if (--f->pending == 0)
        pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    free(s);
}

/* The block to each of t[0..n) at once, no pipeline; adds what holds it to p. Returns 0 when at
 * least one stored it, else the first error. */
static int put_fanout(struct dfs *fs, uint64_t id, const void *data, uint32_t len, uint32_t crc,
                      const struct target *t, unsigned n, struct putres *p)
{
    char url[ADDR_MAX + 64], crc_h[40];
    const char *headers[2] = {crc_h, NULL};
    struct fan f = {.pending = 0};
    int rc = CM_E_UNAVAILABLE;
    bool stored = false;

    snprintf(crc_h, sizeof(crc_h), "X-Dfs-Crc32c: %08" PRIx32, crc);
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    for (unsigned i = 0; i < n; i++) {
        struct fan_slot *s = malloc(sizeof(*s));
        struct cm_http_call call = {
            .method = "PUT",
            .url = url,
            .body = len > 0 ? data : "",
            .body_len = len,
            .headers = headers,
            .timeout_ms = fs->data_timeout_ms,
        };
        snprintf(url, sizeof(url), "http://%s" CSP_BLOCKS "%016" PRIx64, t[i].addr, id);
        f.err[i] = CM_E_NOMEM;
        f.ans[i] = NULL;
        if (s == NULL)
            continue;
        *s = (struct fan_slot){&f, i};
        pthread_mutex_lock(&f.mu);
        f.pending++;
        pthread_mutex_unlock(&f.mu);
        /* fan_done may have run (and set f.err[i]) before this returns: a refused connection
         * completes at once. Only a failed submit, which never calls it, sets f.err[i] here. */
        int sub = cm_http_async_submit(fs->fan, &call, fan_done, s);
        if (sub != 0) {
            pthread_mutex_lock(&f.mu);
            f.err[i] = sub;
            f.pending--;
            pthread_mutex_unlock(&f.mu);
            free(s);
        }
    }
    pthread_mutex_lock(&f.mu);
    while (f.pending > 0)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    for (unsigned i = 0; i < n; i++) {
        const cJSON *arr;
        if (f.err[i] == 0 && cm_json_get_array(f.ans[i], FSF_REPLICAS, &arr) != 0)
            f.err[i] = CM_E_PROTO;
        if (f.err[i] == 0) {
            take_members(id, f.ans[i], &t[i], 1, p);
            stored = true;
        } else {
            LOG_WARN_LIMITED(LOG_EVERY_MS,
                             "data: block %016" PRIx64 " to %s (one of %u side by side): %s", id,
                             t[i].addr, n, cm_errname(f.err[i]));
            add_failed(p, t[i].addr);
            if (rc == CM_E_UNAVAILABLE)
                rc = f.err[i];
        }
        cJSON_Delete(f.ans[i]);
    }
    pthread_cond_destroy(&f.cv);
    pthread_mutex_destroy(&f.mu);
    return stored ? 0 : rc;
}

/* A placement is reused for this long: the master's choice (most free space first, racks
 * apart) moves slowly, and asking for each small file's block would add a round trip to every
 * close. Any failed pipeline asks again. */
#define PLACE_CACHE_MS 1000

static int place_cached(struct dfs *fs, unsigned count, struct target *out, unsigned *n)
{
    struct dfs_place_cache *pc = &fs->place_cache;
    pthread_mutex_lock(&fs->mu);
    if (pc->n >= count && now_ms() - pc->ms < PLACE_CACHE_MS) {
        for (unsigned i = 0; i < count; i++) {
            out[i].id = pc->id[i];
            snprintf(out[i].addr, ADDR_MAX, "%s", pc->addr[i]);
        }
        *n = count;
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    pthread_mutex_unlock(&fs->mu);
    int rc = place(fs, count, out, n);
    if (rc == 0) {
        pthread_mutex_lock(&fs->mu);
        pc->n = *n;
        pc->ms = now_ms();
        for (unsigned i = 0; i < *n; i++) {
            pc->id[i] = out[i].id;
            snprintf(pc->addr[i], sizeof(pc->addr[i]), "%s", out[i].addr);
        }
        pthread_mutex_unlock(&fs->mu);
    }
    return rc;
}

static void place_forget(struct dfs *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->place_cache.n = 0;
    pthread_mutex_unlock(&fs->mu);
}

/* Stores data as a new block on up to fs->replication chunkservers. */
static int put_block(struct dfs *fs, const void *data, uint32_t len, struct pend_block *out)
{
    struct target placed[16], t[DFS_MAX_REPLICAS];
    struct putres p;
    unsigned nplaced, nt;
    uint32_t crc = cm_crc32c(0, data, len);
    int rc, last = CM_E_UNAVAILABLE;
    uint64_t id;

    memset(&p, 0, sizeof(p));
    if ((rc = take_block_id(fs, &id)) != 0)
        return rc;
    for (int attempt = 0; attempt < PUT_ATTEMPTS && p.nholders < fs->replication; attempt++) {
        unsigned want = fs->replication + p.nholders + p.nfailed;
        if (attempt > 0)
            place_forget(fs); /* something in the last placement failed */
        rc = attempt == 0 ? place_cached(fs, want < 16 ? want : 16, placed, &nplaced)
                          : place(fs, want < 16 ? want : 16, placed, &nplaced);
        if (rc != 0) {
            last = rc;
            break;
        }
        nt = 0;
        for (unsigned i = 0; i < nplaced && nt < fs->replication - p.nholders; i++)
            if (!is_holder(&p, placed[i].id) && !has_failed(&p, placed[i].addr))
                t[nt++] = placed[i];
        if (nt == 0)
            break; /* no other chunkserver to try */
        if (attempt > 0)
            stat_add(fs, &fs->stats.pipeline_retries, 1);
        if (nt > 1 && len <= FANOUT_MAX) {
            stat_add(fs, &fs->stats.side_by_side, 1);
            rc = put_fanout(fs, id, data, len, crc, t, nt, &p);
        } else {
            rc = put_once(fs, id, data, len, crc, t, nt, &p);
        }
        if (rc != 0)
            last = rc;
    }
    if (p.nholders == 0)
        return last == CM_E_CONNECT || last == CM_E_TIMEOUT ? CM_E_UNAVAILABLE : last;
    if (p.nholders < fs->replication)
        LOG_WARN_LIMITED(LOG_EVERY_MS,
                         "data: block %016" PRIx64 " stored on %u of %u chunkservers; the "
                         "masters will copy it",
                         id, p.nholders, fs->replication);
    out->id = id;
    out->len = len;
    out->crc = crc;
    out->nrep = p.nholders;
    for (unsigned i = 0; i < p.nholders; i++)
        out->reps[i] = p.holders[i].id;
    pthread_mutex_lock(&fs->mu);
    fs->stats.blocks_written++;
    fs->stats.bytes_written += len;
    pthread_mutex_unlock(&fs->mu);
    return 0;
}

static void drop_writes(struct dfs_file *f)
{
    f->wlen = 0;
    f->npend = 0;
    f->dirty_end = 0;
}

/* The buffer becomes a stored block waiting for its commit. */
static int seal_locked(struct dfs_file *f)
{
    struct pend_block pb = {0};
    int rc;

    if (f->wlen == 0)
        return 0;
    if (f->npend == f->cappend) {
        size_t cap = f->cappend ? f->cappend * 2 : 16;
        struct pend_block *v = realloc(f->pend, cap * sizeof(*v));
        if (v == NULL)
            return CM_E_NOMEM;
        f->pend = v;
        f->cappend = cap;
    }
    if ((rc = put_block(f->fs, f->wbuf, (uint32_t)f->wlen, &pb)) != 0)
        return rc;
    pb.off = f->woff;
    if (f->npend == 0)
        f->pend_ms = now_ms();
    f->pend[f->npend++] = pb;
    f->wlen = 0;
    return 0;
}

/* Commits pend[from, to): adjacent blocks laid end to end from pend[from].off. */
static int commit_run(struct dfs_file *f, size_t from, size_t to, struct dfs_attr *attr)
{
    struct dfs_req b;
    cJSON *ans, *arr = NULL, *o, *reps;
    uint64_t len = 0;
    int rc;

    for (size_t i = from; i < to; i++)
        len += f->pend[i].len;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, f->fh);
    dreq_u64(&b, FSF_OFF, f->pend[from].off);
    dreq_u64(&b, FSF_LEN, len);
    dreq_u64(&b, FSF_SIZE, f->pend[from].off + len);
    if (b.err == 0 && (arr = cJSON_AddArrayToObject(b.j, FSF_BLOCKS)) == NULL)
        b.err = CM_E_NOMEM;
    for (size_t i = from; i < to && b.err == 0; i++) {
        const struct pend_block *p = &f->pend[i];
        if ((o = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(arr, o) ||
            cm_json_add_u64(o, FSF_ID, p->id) != 0 || cm_json_add_u64(o, FSF_LEN, p->len) != 0 ||
            cm_json_add_u64(o, FSF_CRC32C, p->crc) != 0 ||
            (reps = cJSON_AddArrayToObject(o, FSF_REPLICAS)) == NULL) {
            b.err = CM_E_NOMEM;
            break;
        }
        for (unsigned k = 0; k < p->nrep; k++)
            if (!cJSON_AddItemToArray(reps, cJSON_CreateNumber(p->reps[k])))
                b.err = CM_E_NOMEM;
    }
    rc = dfs__mutate(f->fs, FSP_COMMIT, &b, cred_of(f), &ans);
    dfs__dc_changed(f->fs, f->fh.ino); /* its size and times, for the directory cache */
    if (rc != 0)
        return rc;
    rc = dfs__answer_attr(ans, attr);
    cJSON_Delete(ans);
    return rc;
}

static int commit_locked(struct dfs_file *f, struct dfs_attr *attr, bool *committed)
{
    size_t from = 0;
    int rc;

    *committed = false;
    while (from < f->npend) {
        size_t to = from + 1;
        while (to < f->npend && to - from < COMMIT_MAX &&
               f->pend[to].off == f->pend[to - 1].off + f->pend[to - 1].len)
            to++;
        if ((rc = commit_run(f, from, to, attr)) != 0) {
            LOG_WARN("data: commit of %zu block(s) to inode %" PRIu64 ": %s", to - from, f->fh.ino,
                     cm_errname(rc));
            return rc;
        }
        stat_add(f->fs, &f->fs->stats.commits, 1);
        *committed = true;
        from = to;
    }
    f->npend = 0;
    invalidate_locked(f);
    if (*committed) {
        f->size = attr->size;
        f->size_known = true;
    }
    return 0;
}

/* A lost write stays reported: every later flush (every handle's close or fsync that shares
 * this file) fails with it, so none of them can claim the lost bytes are durable. */
static int fail_locked(struct dfs_file *f, int rc)
{
    drop_writes(f);
    invalidate_locked(f);
    f->werr = rc;
    return rc;
}

static int flush_locked(struct dfs_file *f, struct dfs_attr *out)
{
    struct dfs_attr a;
    bool committed = false;
    int rc = f->werr;

    if (rc == 0)
        rc = seal_locked(f);
    if (rc == 0)
        rc = commit_locked(f, &a, &committed);
    if (rc != 0)
        return fail_locked(f, rc);
    if (f->wlen == 0 && f->npend == 0)
        f->dirty_end = 0;
    if (out != NULL) {
        if (!committed && (rc = dfs_getattr(f->fs, cred_of(f), f->fh, &a)) != 0)
            return rc;
        *out = a;
    }
    return 0;
}

int dfs_file_flush(struct dfs_file *f, struct dfs_attr *out)
{
    int rc;

    pthread_mutex_lock(&f->mu);
    rc = flush_locked(f, out);
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int dfs_file_commit_aged(struct dfs_file *f, uint64_t max_age_ms)
{
    bool committed;
    int rc;

    pthread_mutex_lock(&f->mu);
    rc = f->werr;
    if (rc == 0 && f->npend > 0 && now_ms() - f->pend_ms >= max_age_ms) {
        struct dfs_attr a;
        if ((rc = commit_locked(f, &a, &committed)) != 0)
            fail_locked(f, rc);
        else if (f->wlen == 0)
            f->dirty_end = 0;
    }
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int dfs_file_write(struct dfs_file *f, uint64_t off, const void *buf, size_t len)
{
    const char *src = buf;
    size_t bs = f->fs->block_size;
    bool ignored;
    int rc = 0;

    if (len > 0 && off + len < off)
        return CM_E_FBIG;
    pthread_mutex_lock(&f->mu);
    if (f->werr != 0) {
        rc = f->werr;
        goto out;
    }
    drop_reads_locked(f);
    while (len > 0) {
        if (f->wlen > 0 && (off < f->woff || off > f->woff + f->wlen)) {
            if ((rc = seal_locked(f)) != 0)
                break;
        }
        if (f->wlen == 0)
            f->woff = off;
        size_t at = (size_t)(off - f->woff), k = bs - at < len ? bs - at : len;
        if (at + k > f->wcap) {
            size_t cap = f->wcap ? f->wcap : 65536;
            while (cap < at + k)
                cap *= 2;
            if (cap > bs)
                cap = bs;
            char *nb = realloc(f->wbuf, cap);
            if (nb == NULL) {
                rc = CM_E_NOMEM;
                break;
            }
            f->wbuf = nb;
            f->wcap = cap;
        }
        memcpy(f->wbuf + at, src, k);
        if (at + k > f->wlen)
            f->wlen = at + k;
        src += k;
        off += k;
        len -= k;
        if (off > f->dirty_end)
            f->dirty_end = off;
        if (f->wlen == bs && (rc = seal_locked(f)) != 0)
            break;
        if (f->npend >= COMMIT_MAX || (f->npend > 0 && now_ms() - f->pend_ms >= PEND_MAX_AGE_MS)) {
            struct dfs_attr a;
            if ((rc = commit_locked(f, &a, &ignored)) != 0)
                break;
        }
    }
    if (rc != 0) {
        /* What was written cannot be stored: the flush and close report it. */
        drop_writes(f);
        f->werr = rc;
    }
out:
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* ---- reading ---- */

static int parse_extent(const cJSON *e, struct ext *x)
{
    const cJSON *b, *addrs, *a;

    memset(x, 0, sizeof(*x));
    if (cm_json_get_u64(e, FSF_OFF, &x->off) != 0 || cm_json_get_u64(e, FSF_LEN, &x->len) != 0 ||
        cm_json_get_u64(e, FSF_BLOCK_OFF, &x->block_off) != 0 ||
        cm_json_get_object(e, FSF_BLOCK, &b) != 0 || cm_json_get_u64(b, FSF_ID, &x->id) != 0 ||
        cm_json_get_array(b, FSF_ADDRS, &addrs) != 0)
        return CM_E_PROTO;
    cJSON_ArrayForEach(a, addrs)
    {
        if (cJSON_IsString(a) && a->valuestring[0] != '\0' && x->naddr < DFS_MAX_REPLICAS &&
            strlen(a->valuestring) < ADDR_MAX)
            snprintf(x->addrs[x->naddr++], ADDR_MAX, "%s", a->valuestring);
    }
    return 0;
}

/* Lists the extents of [off, off + len) (at least), and the file's size. */
static int list_extents(struct dfs_file *f, uint64_t off, uint64_t len)
{
    struct dfs_req b;
    const cJSON *arr, *e;
    bool more = false;
    cJSON *ans;
    size_t n = 0;
    int rc;

    if (len < EXT_WINDOW)
        len = EXT_WINDOW;
    if (off + len < off)
        len = UINT64_MAX - off;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, f->fh);
    dreq_u64(&b, FSF_OFF, off);
    dreq_u64(&b, FSF_LEN, len);
    dreq_u64(&b, FSF_MAX, EXT_MAX);
    if ((rc = dfs__read(f->fs, FSP_BLOCKS, &b, cred_of(f), &ans)) != 0)
        return rc;
    if (cm_json_get_u64(ans, FSF_SIZE, &f->size) != 0 ||
        cm_json_get_array(ans, FSF_EXTENTS, &arr) != 0 ||
        cm_json_opt_bool(ans, FSF_MORE, &more) != 0) {
        rc = CM_E_PROTO;
        goto out;
    }
    f->size_known = true;
    size_t count = (size_t)cJSON_GetArraySize(arr);
    if (count > f->capext) {
        struct ext *v = realloc(f->ext, count * sizeof(*v));
        if (v == NULL) {
            rc = CM_E_NOMEM;
            goto out;
        }
        f->ext = v;
        f->capext = count;
    }
    cJSON_ArrayForEach(e, arr)
    {
        if (n >= count || (rc = parse_extent(e, &f->ext[n])) != 0) {
            rc = rc ? rc : CM_E_PROTO;
            goto out;
        }
        n++;
    }
    f->next = n;
    f->ext_from = off;
    f->ext_to = more && n > 0 ? f->ext[n - 1].off + f->ext[n - 1].len : off + len;
    if (f->ext_to <= off) { /* "more" without progress: never loop */
        rc = CM_E_PROTO;
        goto out;
    }
    f->ext_valid = true;
out:
    if (rc != 0)
        f->ext_valid = false;
    cJSON_Delete(ans);
    return rc;
}

struct sink {
    char *dst;
    size_t cap, got;
};

static int sink_write(void *ctx, const char *buf, size_t len)
{
    struct sink *s = ctx;

    if (len > s->cap - s->got)
        return CM_E_PROTO;
    memcpy(s->dst + s->got, buf, len);
    s->got += len;
    return 0;
}

/* Bytes [boff, boff + len) of an extent's block into dst, from the first replica that serves
 * them whole. */
static int read_block_range(struct dfs *fs, const struct ext *x, uint64_t boff, size_t len,
                            char *dst)
{
    char url[ADDR_MAX + 64], range[48];
    int rc = CM_E_UNAVAILABLE;

    snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, boff, boff + len - 1);
    for (unsigned i = 0; i < x->naddr; i++) {
        struct sink s = {dst, len, 0};
        struct cm_http_call call = {0};
        snprintf(url, sizeof(url), "http://%s" CSP_BLOCKS "%016" PRIx64, x->addrs[i], x->id);
        call.method = "GET";
        call.url = url;
        call.range = range;
        call.download = sink_write;
        call.download_ctx = &s;
        call.timeout_ms = fs->data_timeout_ms;
        rc = cm_http_call(fs->data, &call, NULL);
        if (rc == 0 && s.got != len)
            rc = CM_E_PROTO;
        if (rc == 0) {
            pthread_mutex_lock(&fs->mu);
            fs->stats.reads++;
            fs->stats.bytes_read += len;
            if (i > 0)
                fs->stats.read_fallbacks++;
            pthread_mutex_unlock(&fs->mu);
            return 0;
        }
        LOG_WARN_LIMITED(LOG_EVERY_MS, "data: block %016" PRIx64 " range %s from %s: %s%s", x->id,
                         range, x->addrs[i], cm_errname(rc),
                         i + 1 < x->naddr ? "; trying the next replica" : "");
    }
    if (x->naddr == 0)
        LOG_WARN("data: block %016" PRIx64 " has no known replica", x->id);
    return rc == CM_E_NOMEM ? rc : CM_E_IO;
}

/* One range of one block to fetch, and how it went. */
struct piece {
    size_t x; /* the extent, in the plan's copies */
    uint64_t boff;
    size_t len;
    size_t at; /* where it goes in the destination */
    int rc;
};

/* What one fetch reads: its pieces, with copies of the extents they come from (a read-ahead
 * fetches without the file's lock, while reads may replace the file's listing). */
struct plan {
    struct ext *xs;
    size_t nx, capx;
    struct piece *p;
    size_t n, cap;
    bool gaps; /* some bytes of the range lie in no extent: they read as zeros */
};

static void plan_free(struct plan *pl)
{
    free(pl->xs);
    free(pl->p);
}

static int plan_piece(struct plan *pl, struct piece pc)
{
    if (pl->n == pl->cap) {
        size_t nc = pl->cap ? pl->cap * 2 : 8;
        struct piece *np = realloc(pl->p, nc * sizeof(*np));
        if (np == NULL)
            return CM_E_NOMEM;
        pl->p = np;
        pl->cap = nc;
    }
    pl->p[pl->n++] = pc;
    return 0;
}

static int plan_ext(struct plan *pl, const struct ext *x)
{
    if (pl->nx == pl->capx) {
        size_t nc = pl->capx ? pl->capx * 2 : 4;
        struct ext *nx = realloc(pl->xs, nc * sizeof(*nx));
        if (nx == NULL)
            return CM_E_NOMEM;
        pl->xs = nx;
        pl->capx = nc;
    }
    pl->xs[pl->nx++] = *x;
    return 0;
}

/* Plans file bytes [off, off + len): ranges of at most PIECE_MAX bytes that do not cross a
 * PIECE_MAX boundary of their block, so each is one read window on its chunkserver. Lists the
 * extents as needed; the caller holds f->mu. */
static int plan_range(struct dfs_file *f, uint64_t off, size_t len, struct plan *pl)
{
    uint64_t pos = off, end = off + len, covered = off;
    int rc = 0;

    memset(pl, 0, sizeof(*pl));
    while (rc == 0 && pos < end) {
        if (!f->ext_valid || pos < f->ext_from || pos >= f->ext_to)
            if ((rc = list_extents(f, pos, end - pos)) != 0)
                break;
        uint64_t upto = end < f->ext_to ? end : f->ext_to;
        for (size_t i = 0; i < f->next && rc == 0; i++) {
            const struct ext *x = &f->ext[i];
            uint64_t a = x->off > pos ? x->off : pos, b = x->off + x->len;
            if (b > upto)
                b = upto;
            if (a >= b)
                continue;
            if ((rc = plan_ext(pl, x)) != 0)
                break;
            while (a < b && rc == 0) {
                uint64_t boff = x->block_off + (a - x->off);
                uint64_t k = PIECE_MAX - boff % PIECE_MAX;
                if (k > b - a)
                    k = b - a;
                if (a != covered)
                    pl->gaps = true; /* extents come in file order: a jump is a hole */
                covered = a + k;
                rc = plan_piece(pl, (struct piece){pl->nx - 1, boff, (size_t)k, a - off, 0});
                a += k;
            }
        }
        pos = upto;
    }
    if (covered != end)
        pl->gaps = true;
    if (rc != 0)
        plan_free(pl);
    return rc;
}

struct fetch_job {
    struct dfs *fs;
    const struct plan *pl;
    char *dst;
    size_t next;
    pthread_mutex_t mu;
};

static void *fetch_worker(void *arg)
{
    struct fetch_job *j = arg;

    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->pl->n)
            return NULL;
        struct piece *p = &j->pl->p[i];
        p->rc = read_block_range(j->fs, &j->pl->xs[p->x], p->boff, p->len, j->dst + p->at);
    }
}

/* Fetches a plan of len bytes into dst, up to FETCH_THREADS pieces at a time (this thread is
 * one of them), so a large read keeps several chunkservers (and disks) busy. */
static int fetch_plan(struct dfs *fs, const struct plan *pl, char *dst, size_t len)
{
    struct fetch_job j = {fs, pl, dst, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[FETCH_THREADS - 1];
    size_t started = 0;

    if (pl->gaps)
        memset(dst, 0, len);
    for (; started < FETCH_THREADS - 1 && started + 1 < pl->n; started++)
        if (pthread_create(&th[started], NULL, fetch_worker, &j) != 0)
            break; /* fewer helpers; this thread still does the rest */
    fetch_worker(&j);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    for (size_t i = 0; i < pl->n; i++)
        if (pl->p[i].rc != 0)
            return pl->p[i].rc;
    return 0;
}

/* File bytes [off, off + len) into dst (zeros where no extent is); the caller holds f->mu. */
static int fetch(struct dfs_file *f, uint64_t off, size_t len, char *dst)
{
    struct plan pl;
    int rc;

    if ((rc = plan_range(f, off, len, &pl)) != 0)
        return rc;
    rc = fetch_plan(f->fs, &pl, dst, len);
    plan_free(&pl);
    return rc;
}

/* ---- read-ahead ---- */

/* The read-ahead thread: fetches [pfoff, pfoff + pflen) into f->pf without the file's lock,
 * which it takes only to plan and to hand the result over. */
static void *readahead_main(void *arg)
{
    struct dfs_file *f = arg;
    struct plan pl;
    int rc;

    pthread_mutex_lock(&f->mu);
    uint64_t gen = f->pf_gen, off = f->pfoff;
    size_t len = f->pflen;
    char *buf = f->pf; /* this thread's while pf_busy: nothing else moves or frees it */
    rc = gen == f->gen ? plan_range(f, off, len, &pl) : CM_E_CANCELED;
    pthread_mutex_unlock(&f->mu);
    if (rc == 0) {
        rc = fetch_plan(f->fs, &pl, buf, len);
        plan_free(&pl);
    }
    pthread_mutex_lock(&f->mu);
    f->pf_busy = false;
    f->pf_ready = rc == 0 && gen == f->gen;
    if (f->pf_ready)
        stat_add(f->fs, &f->fs->stats.readaheads, 1);
    pthread_cond_broadcast(&f->pf_cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* After a sequential read from the read-ahead buffer, starts fetching the window after it, so
 * that the chunkservers work while the reader uses this one. The caller holds f->mu. */
static void readahead_start(struct dfs_file *f)
{
    uint64_t next = f->raoff + f->ralen;
    size_t win = READAHEAD;

    if (f->ralen > 0 && f->size_known && next >= f->size && !f->pf_busy && f->pf != NULL) {
        /* The window reaches the end: nothing to read ahead, and the spare buffer goes back to
         * the mount's budget (a file read to its end and kept open holds one window). */
        atomic_fetch_sub(&f->fs->ra_bytes, f->pfcap);
        free(f->pf);
        f->pf = NULL;
        f->pfcap = 0;
        f->pf_ready = false;
        return;
    }
    if (f->ralen == 0 || !f->size_known || next >= f->size || f->pf_busy)
        return;
    if (f->pf_ready && f->pfoff == next)
        return; /* already fetched */
    /* The last one has finished (it is not busy): collect it. */
    if (f->pf_joinable) {
        pthread_join(f->pf_thread, NULL);
        f->pf_joinable = false;
    }
    if (win > f->size - next)
        win = (size_t)(f->size - next);
    if (win > f->pfcap) {
        if (!ra_reserve(f->fs, win - f->pfcap))
            return;
        char *nb = realloc(f->pf, win);
        if (nb == NULL) {
            atomic_fetch_sub(&f->fs->ra_bytes, win - f->pfcap);
            return;
        }
        f->pf = nb;
        f->pfcap = win;
    }
    f->pf_ready = false;
    f->pfoff = next;
    f->pflen = win;
    f->pf_gen = f->gen;
    f->pf_busy = true;
    if (pthread_create(&f->pf_thread, NULL, readahead_main, f) != 0) {
        f->pf_busy = false;
        return; /* reads fetch for themselves */
    }
    f->pf_joinable = true;
}

/* Makes the read-ahead window the read buffer when it holds off. True when the caller should
 * look again: the buffer changed, or it waited for the window (the lock was let go meanwhile,
 * and another read may have moved on). The caller holds f->mu. */
static bool readahead_take(struct dfs_file *f, uint64_t off)
{
    if (!(f->pf_busy || f->pf_ready) || f->pf_gen != f->gen || off < f->pfoff ||
        off >= f->pfoff + f->pflen)
        return false;
    if (f->pf_busy) {
        pthread_cond_wait(&f->pf_cv, &f->mu);
        return true;
    }
    char *b = f->ra;
    size_t cap = f->racap;
    f->ra = f->pf;
    f->racap = f->pfcap;
    f->raoff = f->pfoff;
    f->ralen = f->pflen;
    f->pf = b;
    f->pfcap = cap;
    f->pf_ready = false;
    stat_add(f->fs, &f->fs->stats.readahead_hits, 1);
    return true;
}

int dfs_file_read(struct dfs_file *f, uint64_t off, size_t len, void *buf, size_t *got)
{
    char *dst = buf;
    bool sequential;
    int rc = 0;

    *got = 0;
    pthread_mutex_lock(&f->mu);
    /* Own writes first: what this file buffered is committed, then read like any other data.
     * After a lost write (f->werr) there is nothing buffered: the committed data is read. */
    if (f->werr == 0 && (f->wlen > 0 || f->npend > 0))
        if ((rc = flush_locked(f, NULL)) != 0)
            goto out;
    if (!f->size_known && (rc = list_extents(f, off, len)) != 0)
        goto out;
    if (off >= f->size || len == 0)
        goto out;
    if (len > f->size - off)
        len = (size_t)(f->size - off);
    /* Reads that follow one another, give or take what the kernel sends out of order: FUSE
     * hands its read-ahead to several threads, so a read may come after later ones. */
    sequential = off <= f->seq_end + PIECE_MAX && off + READAHEAD >= f->seq_end;
    if (!sequential || off + len > f->seq_end)
        f->seq_end = off + len;
    while (len > 0) {
        if (f->ralen > 0 && off < f->raoff && off + READAHEAD >= f->raoff) {
            /* Behind the window, a read that came late: fetched alone, the window stays. */
            size_t n = (size_t)(f->raoff - off);
            if (n > len)
                n = len;
            if ((rc = fetch(f, off, n, dst)) != 0)
                goto out;
            dst += n;
            off += n;
            len -= n;
            *got += n;
            continue;
        }
        if (f->ralen > 0 && off >= f->raoff && off < f->raoff + f->ralen) {
            size_t n = (size_t)(f->raoff + f->ralen - off);
            if (n > len)
                n = len;
            memcpy(dst, f->ra + (off - f->raoff), n);
            dst += n;
            off += n;
            len -= n;
            *got += n;
            continue;
        }
        if (sequential && readahead_take(f, off))
            continue;
        size_t win = len > READAHEAD ? len : READAHEAD;
        if (win > f->size - off)
            win = (size_t)(f->size - off);
        if (win > f->racap && !ra_reserve(f->fs, win - f->racap)) {
            /* The mount's read buffers are spent: this read alone, straight into dst. */
            if ((rc = fetch(f, off, len, dst)) != 0)
                goto out;
            *got += len;
            break;
        }
        if (win > f->racap) {
            char *nb = realloc(f->ra, win);
            if (nb == NULL) {
                atomic_fetch_sub(&f->fs->ra_bytes, win - f->racap);
                rc = CM_E_NOMEM;
                goto out;
            }
            f->ra = nb;
            f->racap = win;
        }
        f->ralen = 0;
        if ((rc = fetch(f, off, win, f->ra)) != 0)
            goto out;
        f->raoff = off;
        f->ralen = win;
    }
    if (sequential)
        readahead_start(f);
out:
    if (rc != 0)
        *got = 0;
    publish(f);
    pthread_mutex_unlock(&f->mu);
    return rc;
}
