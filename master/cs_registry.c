/* The chunkserver table (replicated) and the leader's soft state about each chunkserver. */
#include "master/cs_registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

#define CMD_REGISTER 1

struct u64set {
    uint64_t *v;
    size_t n, cap;
};

struct cs_entry {
    /* replicated */
    uint32_t id; /* 0: unused slot */
    char storage_id[CS_STORAGE_ID_MAX + 1];
    char addr[CS_ADDR_MAX + 1];
    char rack[CS_RACK_MAX + 1];
    /* soft */
    uint64_t last_hb_ms; /* 0: not heard from */
    uint64_t capacity, used, free, load, hb_blocks;
    bool no_space;
    bool reported;         /* a full report was taken */
    struct u64set blocks;  /* sound copies */
    struct u64set corrupt; /* copies held but damaged */
    uint64_t report_id;
    uint64_t next_part;
    struct u64set pending;         /* parts of the report in progress */
    struct u64set pending_corrupt; /* their corrupt lists */
};

struct cs_registry {
    pthread_mutex_t mu;
    uint64_t dead_timeout_ms;
    uint64_t term; /* of the leadership the soft state belongs to */
    uint64_t leader_since_ms;
    /* Orphan watermark: next_block as seen at mark_ms, and the one seen a grace period
     * before that (ids below safe_block were allocated at least that long ago). */
    uint64_t mark_ms, mark_block, safe_block;
    struct inflight {
        uint64_t block;
        uint32_t target;
        uint64_t until_ms;
    } * inflight;
    size_t n_inflight, cap_inflight;
    struct inflight *deleting; /* delete commands given (target: the holder) */
    size_t n_deleting, cap_deleting;
    struct cs_entry *e; /* e[i].id == i + 1 */
    size_t n;
};

int cs_registry_new(uint64_t dead_timeout_ms, struct cs_registry **out)
{
    struct cs_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CM_E_NOMEM;
    pthread_mutex_init(&r->mu, NULL);
    r->dead_timeout_ms = dead_timeout_ms ? dead_timeout_ms : CS_DEFAULT_DEAD_TIMEOUT_MS;
    *out = r;
    return 0;
}

static void soft_clear(struct cs_entry *e)
{
    free(e->blocks.v);
    free(e->pending.v);
    free(e->corrupt.v);
    free(e->pending_corrupt.v);
    e->blocks = (struct u64set){0};
    e->pending = (struct u64set){0};
    e->corrupt = (struct u64set){0};
    e->pending_corrupt = (struct u64set){0};
    e->last_hb_ms = 0;
    e->capacity = e->used = e->free = e->load = e->hb_blocks = 0;
    e->no_space = false;
    e->reported = false;
    e->report_id = 0;
    e->next_part = 0;
}

void cs_registry_free(struct cs_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        soft_clear(&r->e[i]);
    free(r->e);
    free(r->inflight);
    free(r->deleting);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- encoding ---- */

static int put_str(uint8_t **p, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return CM_E_RANGE;
    (*p)[0] = (uint8_t)(n & 0xff);
    (*p)[1] = (uint8_t)(n >> 8);
    memcpy(*p + 2, s, n);
    *p += 2 + n;
    return 0;
}

/* Reads a string of at most max bytes (no NUL inside) into out. */
static int get_str(const uint8_t **p, const uint8_t *end, char *out, size_t max)
{
    if (end - *p < 2)
        return CM_E_INVAL;
    size_t n = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
    if (n > max || (size_t)(end - *p - 2) < n || memchr(*p + 2, 0, n) != NULL)
        return CM_E_INVAL;
    memcpy(out, *p + 2, n);
    out[n] = 0;
    *p += 2 + n;
    return 0;
}

int cs_cmd_register(const char *storage_id, const char *addr, const char *rack, void **out,
                    size_t *len)
{
    size_t cap = 1 + 6 + strlen(storage_id) + strlen(addr) + strlen(rack);
    uint8_t *b = malloc(cap), *p = b;
    int rc;
    if (b == NULL)
        return CM_E_NOMEM;
    *p++ = CMD_REGISTER;
    if (*storage_id == 0 || *addr == 0 || (rc = put_str(&p, storage_id, CS_STORAGE_ID_MAX)) != 0 ||
        (rc = put_str(&p, addr, CS_ADDR_MAX)) != 0 || (rc = put_str(&p, rack, CS_RACK_MAX)) != 0) {
        free(b);
        return CM_E_INVAL;
    }
    *out = b;
    *len = (size_t)(p - b);
    return 0;
}

static struct cs_entry *find_storage(struct cs_registry *r, const char *sid)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->e[i].storage_id, sid) == 0)
            return &r->e[i];
    return NULL;
}

int cs_apply(struct cs_registry *r, const void *data, size_t len, void **res, size_t *res_len)
{
    const uint8_t *p = data, *end = p + len;
    struct cs_entry in = {0};
    if (len < 1 || p[0] != CMD_REGISTER)
        return CM_E_INVAL;
    p++;
    if (get_str(&p, end, in.storage_id, CS_STORAGE_ID_MAX) != 0 ||
        get_str(&p, end, in.addr, CS_ADDR_MAX) != 0 ||
        get_str(&p, end, in.rack, CS_RACK_MAX) != 0 || p != end || in.storage_id[0] == 0 ||
        in.addr[0] == 0)
        return CM_E_INVAL;
    int rc = 0;
    uint32_t id;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = find_storage(r, in.storage_id);
    if (e == NULL) {
        if (r->n >= CS_MAX) {
            rc = CM_E_NOSPC;
            goto out;
        }
        struct cs_entry *ne = realloc(r->e, (r->n + 1) * sizeof(*ne));
        if (ne == NULL) {
            rc = CM_E_NOMEM;
            goto out;
        }
        r->e = ne;
        e = &r->e[r->n];
        memset(e, 0, sizeof(*e));
        e->id = (uint32_t)++r->n;
        memcpy(e->storage_id, in.storage_id, sizeof(e->storage_id));
    }
    memcpy(e->addr, in.addr, sizeof(e->addr));
    memcpy(e->rack, in.rack, sizeof(e->rack));
    id = e->id;
out:
    pthread_mutex_unlock(&r->mu);
    if (rc != 0)
        return rc;
    if (res != NULL) {
        char *s = malloc(16);
        if (s == NULL)
            return CM_E_NOMEM;
        int k = snprintf(s, 16, "%u", id);
        *res = s;
        *res_len = (size_t)k;
    }
    return 0;
}

int cs_snapshot_write(struct cs_registry *r, void **out, size_t *len)
{
    pthread_mutex_lock(&r->mu);
    size_t cap = 4;
    for (size_t i = 0; i < r->n; i++)
        cap += 4 + 6 + strlen(r->e[i].storage_id) + strlen(r->e[i].addr) + strlen(r->e[i].rack);
    uint8_t *b = malloc(cap), *p = b;
    if (b == NULL) {
        pthread_mutex_unlock(&r->mu);
        return CM_E_NOMEM;
    }
    uint32_t n = (uint32_t)r->n;
    memcpy(p, &n, 4);
    p += 4;
    for (size_t i = 0; i < r->n; i++) {
        memcpy(p, &r->e[i].id, 4);
        p += 4;
        put_str(&p, r->e[i].storage_id, CS_STORAGE_ID_MAX);
        put_str(&p, r->e[i].addr, CS_ADDR_MAX);
        put_str(&p, r->e[i].rack, CS_RACK_MAX);
    }
    pthread_mutex_unlock(&r->mu);
    *out = b;
    *len = (size_t)(p - b);
    return 0;
}

int cs_restore(struct cs_registry *r, const void *buf, size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    uint32_t n;
    if (len < 4)
        return CM_E_STORE;
    memcpy(&n, p, 4);
    p += 4;
    if (n > CS_MAX)
        return CM_E_STORE;
    struct cs_entry *ne = calloc(n ? n : 1, sizeof(*ne));
    if (ne == NULL)
        return CM_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 4) {
            free(ne);
            return CM_E_STORE;
        }
        memcpy(&ne[i].id, p, 4);
        p += 4;
        if (ne[i].id != i + 1 || get_str(&p, end, ne[i].storage_id, CS_STORAGE_ID_MAX) != 0 ||
            get_str(&p, end, ne[i].addr, CS_ADDR_MAX) != 0 ||
            get_str(&p, end, ne[i].rack, CS_RACK_MAX) != 0) {
            free(ne);
            return CM_E_STORE;
        }
    }
    if (p != end) {
        free(ne);
        return CM_E_STORE;
    }
    pthread_mutex_lock(&r->mu);
    /* Soft state stays with ids that keep their storage id. */
    for (size_t i = 0; i < r->n; i++) {
        struct cs_entry *o = &r->e[i];
        if (i < n && strcmp(o->storage_id, ne[i].storage_id) == 0) {
            struct cs_entry *t = &ne[i];
            t->last_hb_ms = o->last_hb_ms;
            t->capacity = o->capacity;
            t->used = o->used;
            t->free = o->free;
            t->load = o->load;
            t->hb_blocks = o->hb_blocks;
            t->no_space = o->no_space;
            t->reported = o->reported;
            t->blocks = o->blocks;
            t->pending = o->pending;
            t->corrupt = o->corrupt;
            t->pending_corrupt = o->pending_corrupt;
            t->report_id = o->report_id;
            t->next_part = o->next_part;
            o->blocks = (struct u64set){0};
            o->pending = (struct u64set){0};
            o->corrupt = (struct u64set){0};
            o->pending_corrupt = (struct u64set){0};
        }
        soft_clear(o);
    }
    free(r->e);
    r->e = ne;
    r->n = n;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* ---- soft state ---- */

static struct cs_entry *get(struct cs_registry *r, uint32_t id)
{
    return id >= 1 && id <= r->n ? &r->e[id - 1] : NULL;
}

/* now is the caller's, often read before the lock: a heartbeat that came in meanwhile is newer
 * than now, and counts as heard, not as an unsigned wrap to "long silent" (which showed live
 * chunkservers dead in /status and fsck, and to placement and block health). */
static bool alive(const struct cs_registry *r, const struct cs_entry *e, uint64_t now)
{
    return e->last_hb_ms != 0 &&
           (e->last_hb_ms >= now || now - e->last_hb_ms <= r->dead_timeout_ms);
}

int cs_check(struct cs_registry *r, uint32_t id, const char *storage_id)
{
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    int rc = e != NULL && strcmp(e->storage_id, storage_id) == 0 ? 0 : CM_E_NOENT;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int cs_heartbeat(struct cs_registry *r, uint32_t id, uint64_t now_ms, uint64_t capacity,
                 uint64_t used, uint64_t free_b, uint64_t blocks, uint64_t load, bool no_space,
                 bool *need_report)
{
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    if (e == NULL) {
        pthread_mutex_unlock(&r->mu);
        return CM_E_NOENT;
    }
    if (e->last_hb_ms != 0 && !alive(r, e, now_ms))
        e->reported = false; /* back after being dead: its copies may have changed meanwhile */
    e->last_hb_ms = now_ms ? now_ms : 1;
    e->capacity = capacity;
    e->used = used;
    e->free = free_b;
    e->hb_blocks = blocks;
    e->load = load;
    e->no_space = no_space;
    *need_report = !e->reported;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t lower_bound(const struct u64set *s, uint64_t v)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int set_reserve(struct u64set *s, size_t more)
{
    if (s->n + more <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + more)
        cap *= 2;
    uint64_t *v = realloc(s->v, cap * sizeof(*v));
    if (v == NULL)
        return CM_E_NOMEM;
    s->v = v;
    s->cap = cap;
    return 0;
}

static int set_add(struct u64set *s, uint64_t v)
{
    size_t i = lower_bound(s, v);
    if (i < s->n && s->v[i] == v)
        return 0;
    if (set_reserve(s, 1) != 0)
        return CM_E_NOMEM;
    if (s->n > i)
        memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
    s->v[i] = v;
    s->n++;
    return 0;
}

static void set_del(struct u64set *s, uint64_t v)
{
    size_t i = lower_bound(s, v);
    if (i < s->n && s->v[i] == v) {
        memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
        s->n--;
    }
}

int cs_blocks_change(struct cs_registry *r, uint32_t id, const uint64_t *added, size_t n_added,
                     const uint64_t *removed, size_t n_removed, const uint64_t *corrupt,
                     size_t n_corrupt)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    if (e == NULL)
        rc = CM_E_NOENT;
    for (size_t i = 0; rc == 0 && i < n_removed; i++) {
        set_del(&e->blocks, removed[i]);
        set_del(&e->corrupt, removed[i]);
    }
    for (size_t i = 0; rc == 0 && i < n_added; i++) {
        set_del(&e->corrupt, added[i]);
        rc = set_add(&e->blocks, added[i]);
    }
    for (size_t i = 0; rc == 0 && i < n_corrupt; i++) {
        set_del(&e->blocks, corrupt[i]);
        rc = set_add(&e->corrupt, corrupt[i]);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Sorts s and drops repeated values. */
static void set_normalize(struct u64set *s)
{
    if (s->n > 0)
        qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (k == 0 || s->v[k - 1] != s->v[i])
            s->v[k++] = s->v[i];
    s->n = k;
}

int cs_report_part(struct cs_registry *r, uint32_t id, uint64_t report_id, uint64_t part, bool last,
                   const uint64_t *blocks, size_t n, const uint64_t *corrupt, size_t n_corrupt)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    if (e == NULL) {
        rc = CM_E_NOENT;
        goto out;
    }
    if (part == 0 || e->report_id != report_id) {
        e->report_id = report_id;
        e->pending.n = 0;
        e->pending_corrupt.n = 0;
        e->next_part = 0;
    }
    if (part != e->next_part) {
        rc = part < e->next_part ? 0 : CM_E_INVAL; /* a resent part is taken once */
        goto out;
    }
    if ((rc = set_reserve(&e->pending, n)) != 0 ||
        (rc = set_reserve(&e->pending_corrupt, n_corrupt)) != 0)
        goto out;
    if (n > 0)
        memcpy(e->pending.v + e->pending.n, blocks, n * sizeof(*blocks));
    e->pending.n += n;
    if (n_corrupt > 0)
        memcpy(e->pending_corrupt.v + e->pending_corrupt.n, corrupt, n_corrupt * sizeof(*corrupt));
    e->pending_corrupt.n += n_corrupt;
    e->next_part++;
    if (last) {
        set_normalize(&e->pending);
        set_normalize(&e->pending_corrupt);
        /* A block listed both ways counts as damaged. */
        for (size_t i = 0; i < e->pending_corrupt.n; i++)
            set_del(&e->pending, e->pending_corrupt.v[i]);
        struct u64set t = e->blocks;
        e->blocks = e->pending;
        e->pending = t;
        e->pending.n = 0;
        t = e->corrupt;
        e->corrupt = e->pending_corrupt;
        e->pending_corrupt = t;
        e->pending_corrupt.n = 0;
        e->reported = true;
    }
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t cs_blocks_held(struct cs_registry *r, uint32_t id, const uint64_t *garbage, size_t n,
                      uint64_t *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    for (size_t i = 0; e != NULL && i < n && k < max; i++) {
        size_t j = lower_bound(&e->blocks, garbage[i]);
        size_t c = lower_bound(&e->corrupt, garbage[i]);
        if ((j < e->blocks.n && e->blocks.v[j] == garbage[i]) ||
            (c < e->corrupt.n && e->corrupt.v[c] == garbage[i]))
            out[k++] = garbage[i];
    }
    pthread_mutex_unlock(&r->mu);
    return k;
}

void cs_soft_reset(struct cs_registry *r)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        soft_clear(&r->e[i]);
    pthread_mutex_unlock(&r->mu);
}

void cs_leader_term(struct cs_registry *r, uint64_t term, uint64_t now_ms)
{
    pthread_mutex_lock(&r->mu);
    if (term != r->term) {
        for (size_t i = 0; i < r->n; i++)
            soft_clear(&r->e[i]);
        r->term = term;
        r->leader_since_ms = now_ms;
        r->mark_ms = r->mark_block = r->safe_block = 0;
        r->n_inflight = 0;
        r->n_deleting = 0;
    }
    pthread_mutex_unlock(&r->mu);
}

static void fill_info(const struct cs_registry *r, const struct cs_entry *e, uint64_t now,
                      struct cs_info *o)
{
    o->id = e->id;
    memcpy(o->storage_id, e->storage_id, sizeof(o->storage_id));
    memcpy(o->addr, e->addr, sizeof(o->addr));
    memcpy(o->rack, e->rack, sizeof(o->rack));
    o->alive = alive(r, e, now);
    o->no_space = e->no_space;
    o->capacity = e->capacity;
    o->used = e->used;
    o->free = e->free;
    o->load = e->load;
    o->blocks = e->reported ? e->blocks.n : e->hb_blocks;
    o->last_heartbeat_ms_ago = e->last_hb_ms == 0     ? -1
                               : e->last_hb_ms >= now ? 0
                                                      : (int64_t)(now - e->last_hb_ms);
}

size_t cs_place(struct cs_registry *r, uint64_t now_ms, size_t count, struct cs_info *out)
{
    size_t k = 0;
    if (count > CS_PLACE_MAX)
        count = CS_PLACE_MAX;
    pthread_mutex_lock(&r->mu);
    bool *taken = calloc(r->n ? r->n : 1, sizeof(bool));
    /* Pass 0 takes only racks not used yet; pass 1 fills up with the rest. */
    for (int pass = 0; taken != NULL && pass < 2 && k < count; pass++) {
        while (k < count) {
            struct cs_entry *best = NULL;
            for (size_t i = 0; i < r->n; i++) {
                struct cs_entry *e = &r->e[i];
                if (taken[i] || !alive(r, e, now_ms) || e->no_space)
                    continue;
                bool rack_used = false;
                for (size_t j = 0; pass == 0 && e->rack[0] && j < k; j++)
                    rack_used |= strcmp(out[j].rack, e->rack) == 0;
                if (rack_used)
                    continue;
                if (best == NULL || e->free > best->free)
                    best = e;
            }
            if (best == NULL)
                break;
            taken[best - r->e] = true;
            fill_info(r, best, now_ms, &out[k++]);
        }
    }
    free(taken);
    pthread_mutex_unlock(&r->mu);
    return k;
}

size_t cs_unheard(struct cs_registry *r, uint64_t now_ms)
{
    size_t n = 0;

    pthread_mutex_lock(&r->mu);
    uint64_t grace =
        r->dead_timeout_ms < CS_PLACE_GRACE_MS ? r->dead_timeout_ms : CS_PLACE_GRACE_MS;
    if (now_ms < r->leader_since_ms || now_ms - r->leader_since_ms < grace)
        for (size_t i = 0; i < r->n; i++)
            n += r->e[i].id != 0 && r->e[i].last_hb_ms == 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int cs_list(struct cs_registry *r, uint64_t now_ms, struct cs_info **out, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    struct cs_info *v = calloc(r->n ? r->n : 1, sizeof(*v));
    if (v == NULL) {
        pthread_mutex_unlock(&r->mu);
        return CM_E_NOMEM;
    }
    for (size_t i = 0; i < r->n; i++)
        fill_info(r, &r->e[i], now_ms, &v[i]);
    *n = r->n;
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return 0;
}

static bool holds(const struct cs_entry *e, uint64_t block)
{
    size_t j = lower_bound(&e->blocks, block);
    return j < e->blocks.n && e->blocks.v[j] == block;
}

/* Whether a copy of block to target was commanded and may still be under way. */
static bool commanded(const struct cs_registry *r, uint64_t block, uint32_t target, uint64_t now)
{
    for (size_t i = 0; i < r->n_inflight; i++)
        if (r->inflight[i].block == block && r->inflight[i].until_ms > now &&
            (target == 0 || r->inflight[i].target == target))
            return true;
    return false;
}

/* Whether holder was told to delete its copy of block and may not have done it yet. */
static bool deleting(const struct cs_registry *r, uint64_t block, uint32_t holder, uint64_t now)
{
    for (size_t i = 0; i < r->n_deleting; i++)
        if (r->deleting[i].block == block && r->deleting[i].until_ms > now &&
            r->deleting[i].target == holder)
            return true;
    return false;
}

static void remember_in(struct inflight **vp, size_t *np, size_t *capp, uint64_t block,
                        uint32_t target, uint64_t until)
{
    /* Expired entries make room first. */
    size_t k = 0;
    for (size_t i = 0; i < *np; i++)
        if ((*vp)[i].until_ms > until - CS_REPL_RETRY_MS)
            (*vp)[k++] = (*vp)[i];
    *np = k;
    if (*np == *capp) {
        size_t cap = *capp ? 2 * *capp : 64;
        struct inflight *v = realloc(*vp, cap * sizeof(*v));
        if (v == NULL)
            return;
        *vp = v;
        *capp = cap;
    }
    (*vp)[(*np)++] = (struct inflight){block, target, until};
}

static void remember(struct cs_registry *r, uint64_t block, uint32_t target, uint64_t until)
{
    remember_in(&r->inflight, &r->n_inflight, &r->cap_inflight, block, target, until);
}

static bool holds_corrupt(const struct cs_entry *e, uint64_t block)
{
    size_t j = lower_bound(&e->corrupt, block);
    return j < e->corrupt.n && e->corrupt.v[j] == block;
}

/* Whether the soft state is complete enough to judge copy counts: the leadership is one dead
 * timeout old and every live chunkserver has sent a full report. */
static bool counts_known(const struct cs_registry *r, uint64_t now)
{
    if (now < r->leader_since_ms || now - r->leader_since_ms < r->dead_timeout_ms)
        return false;
    for (size_t i = 0; i < r->n; i++)
        if (alive(r, &r->e[i], now) && !r->e[i].reported)
            return false;
    return true;
}

/* A sound copy of block on e that counts: e alive, holding it and not told to delete it. */
static bool good_copy(const struct cs_registry *r, const struct cs_entry *e, uint64_t block,
                      uint64_t now)
{
    return alive(r, e, now) && holds(e, block) && !deleting(r, block, e->id, now);
}

size_t cs_repl_budget(bool reported, uint64_t queued)
{
    if (!reported)
        return CS_REPL_PER_HEARTBEAT;
    return queued >= CS_REPL_QUEUE_TARGET ? 0 : (size_t)(CS_REPL_QUEUE_TARGET - queued);
}

size_t cs_replicate(struct cs_registry *r, uint32_t src, uint64_t now_ms, const uint64_t *ids,
                    size_t n, struct cs_repl *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *s = get(r, src);
    if (s == NULL || !alive(r, s, now_ms) || !counts_known(r, now_ms))
        goto out;
    for (size_t b = 0; b < n && k < max; b++) {
        if (!good_copy(r, s, ids[b], now_ms))
            continue;
        size_t live = 0;
        for (size_t i = 0; i < r->n; i++) {
            const struct cs_entry *e = &r->e[i];
            if (good_copy(r, e, ids[b], now_ms) ||
                (alive(r, e, now_ms) && commanded(r, ids[b], e->id, now_ms)))
                live++;
        }
        while (live < CS_DEFAULT_REPLICATION && k < max) {
            struct cs_entry *best = NULL;
            bool best_new_rack = false;
            for (size_t i = 0; i < r->n; i++) {
                struct cs_entry *e = &r->e[i];
                if (!alive(r, e, now_ms) || e->no_space || holds(e, ids[b]) ||
                    holds_corrupt(e, ids[b]) || commanded(r, ids[b], e->id, now_ms))
                    continue;
                bool new_rack = true;
                for (size_t j = 0; e->rack[0] && j < r->n; j++)
                    if (alive(r, &r->e[j], now_ms) && holds(&r->e[j], ids[b]) &&
                        strcmp(r->e[j].rack, e->rack) == 0)
                        new_rack = false;
                if (best == NULL || (new_rack && !best_new_rack) ||
                    (new_rack == best_new_rack && e->free > best->free)) {
                    best = e;
                    best_new_rack = new_rack;
                }
            }
            if (best == NULL)
                break;
            out[k].block = ids[b];
            memcpy(out[k].target, best->addr, sizeof(out[k].target));
            k++;
            remember(r, ids[b], best->id, now_ms + CS_REPL_RETRY_MS);
            live++;
        }
    }
out:
    pthread_mutex_unlock(&r->mu);
    return k;
}

/* Whether e is among the CS_DEFAULT_REPLICATION copies of block to keep out of the n good ones:
 * chosen one by one, a rack none of the chosen has first (no rack counts as distinct), then
 * less used space, then the lower id, so that every heartbeat picks the same ones. */
static bool keeper(struct cs_entry **good, size_t n, const struct cs_entry *e)
{
    size_t idx[CS_DEFAULT_REPLICATION];
    for (size_t k = 0; k < CS_DEFAULT_REPLICATION && k < n; k++) {
        size_t best = n;
        bool best_new = false;
        for (size_t i = 0; i < n; i++) {
            bool taken = false, new_rack = true;
            for (size_t j = 0; j < k; j++) {
                taken |= idx[j] == i;
                if (good[i]->rack[0] && strcmp(good[idx[j]]->rack, good[i]->rack) == 0)
                    new_rack = false;
            }
            if (taken)
                continue;
            if (best == n || (new_rack && !best_new) ||
                (new_rack == best_new &&
                 (good[i]->used < good[best]->used ||
                  (good[i]->used == good[best]->used && good[i]->id < good[best]->id)))) {
                best = i;
                best_new = new_rack;
            }
        }
        idx[k] = best;
        if (good[best] == e)
            return true;
    }
    return false;
}

size_t cs_deletes(struct cs_registry *r, uint32_t id, uint64_t now_ms, const uint64_t *ids,
                  size_t n, uint64_t *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *s = get(r, id);
    struct cs_entry **good = calloc(r->n ? r->n : 1, sizeof(*good));
    if (good == NULL || s == NULL || !alive(r, s, now_ms) || !counts_known(r, now_ms))
        goto out;
    for (size_t b = 0; b < n && k < max; b++) {
        bool bad = holds_corrupt(s, ids[b]);
        if (!bad && !good_copy(r, s, ids[b], now_ms))
            continue;
        size_t n_good = 0;
        for (size_t i = 0; i < r->n; i++)
            if (good_copy(r, &r->e[i], ids[b], now_ms))
                good[n_good++] = &r->e[i];
        if (bad) {
            if (n_good >= CS_DEFAULT_REPLICATION)
                out[k++] = ids[b];
        } else if (n_good > CS_DEFAULT_REPLICATION && !keeper(good, n_good, s)) {
            out[k++] = ids[b];
            remember_in(&r->deleting, &r->n_deleting, &r->cap_deleting, ids[b], id,
                        now_ms + CS_REPL_RETRY_MS);
        }
    }
out:
    free(good);
    pthread_mutex_unlock(&r->mu);
    return k;
}

/* ---- copy counts ---- */

/* Index of v in the sorted ids, or n. */
static size_t find_id(const uint64_t *ids, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == v ? lo : n;
}

int cs_health_count(struct cs_registry *r, uint64_t now_ms, const uint64_t *ids, size_t n,
                    struct cs_health *h, uint8_t *copies)
{
    uint8_t *c = copies != NULL ? copies : malloc(n ? n : 1);
    if (c == NULL)
        return CM_E_NOMEM;
    if (n > 0)
        memset(c, 0, n);
    pthread_mutex_lock(&r->mu);
    int rc = counts_known(r, now_ms) ? 0 : CM_E_UNAVAILABLE;
    for (size_t i = 0; rc == 0 && n > 0 && i < r->n; i++) {
        const struct cs_entry *e = &r->e[i];
        if (!alive(r, e, now_ms))
            continue;
        /* Look up whichever side is smaller: its copies within the batch's id range in ids, or
         * the ids in its copies. */
        size_t lo = lower_bound(&e->blocks, ids[0]), hi = lower_bound(&e->blocks, ids[n - 1]);
        if (hi < e->blocks.n && e->blocks.v[hi] == ids[n - 1])
            hi++;
        if (hi - lo <= n) {
            for (size_t j = lo; j < hi; j++) {
                size_t k = find_id(ids, n, e->blocks.v[j]);
                if (k < n && c[k] < UINT8_MAX)
                    c[k]++;
            }
        } else {
            for (size_t k = 0; k < n; k++)
                if (c[k] < UINT8_MAX && holds(e, ids[k]))
                    c[k]++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        h->under_replicated += c[k] < CS_DEFAULT_REPLICATION;
        h->missing += c[k] == 0;
    }
    if (rc == 0)
        h->referenced += n;
    if (c != copies)
        free(c);
    return rc;
}

/* ---- garbage ---- */

int cs_held(struct cs_registry *r, uint32_t id, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    struct cs_entry *e = get(r, id);
    size_t a = e ? e->blocks.n : 0, b = e ? e->corrupt.n : 0, i = 0, j = 0, k = 0;
    uint64_t *v = a + b > 0 ? malloc((a + b) * sizeof(*v)) : NULL;
    if (a + b > 0 && v == NULL) {
        pthread_mutex_unlock(&r->mu);
        return CM_E_NOMEM;
    }
    while (i < a || j < b) { /* merge of two sorted sets */
        uint64_t x = j >= b || (i < a && e->blocks.v[i] <= e->corrupt.v[j]) ? e->blocks.v[i++]
                                                                            : e->corrupt.v[j++];
        if (k == 0 || v[k - 1] != x)
            v[k++] = x;
    }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    *n = k;
    return 0;
}

size_t cs_gc_unheld(struct cs_registry *r, uint64_t now_ms, const uint64_t *ids, size_t n,
                    uint64_t *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    if (counts_known(r, now_ms)) {
        for (size_t i = 0; i < n && k < max; i++) {
            bool held = false;
            for (size_t c = 0; c < r->n && !held; c++) {
                const struct cs_entry *e = &r->e[c];
                held = e->id != 0 && alive(r, e, now_ms) &&
                       (holds(e, ids[i]) || holds_corrupt(e, ids[i]));
            }
            if (!held)
                out[k++] = ids[i];
        }
    }
    pthread_mutex_unlock(&r->mu);
    return k;
}

uint64_t cs_orphan_below(struct cs_registry *r, uint64_t now_ms, uint64_t grace_ms,
                         uint64_t next_block)
{
    pthread_mutex_lock(&r->mu);
    if (r->mark_ms == 0) {
        r->mark_ms = now_ms ? now_ms : 1;
        r->mark_block = next_block;
    } else if (now_ms >= r->mark_ms && now_ms - r->mark_ms >= grace_ms) {
        /* (now_ms is read before the lock: a heartbeat handled at the same time may have set a
         * later mark, which must not wrap to "a grace ago" and move the bound early.) */
        r->safe_block = r->mark_block;
        r->mark_ms = now_ms ? now_ms : 1;
        r->mark_block = next_block;
    }
    uint64_t v = r->safe_block;
    pthread_mutex_unlock(&r->mu);
    return v;
}
