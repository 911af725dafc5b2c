/* The simulated cluster: the event loop on a virtual clock, the in-memory network and disks, and
 * the driver loop around raft_step (persist, send, apply, read, snapshot) for every node. */
#include "tests/raft/sim_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- Randomness and hashing ---- */

uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sim_range(struct sim *s, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + sim_rand(s) % (hi - lo + 1);
}

bool sim_chance(struct sim *s, uint32_t per_mille)
{
    if (per_mille == 0)
        return false;
    return sim_rand(s) % 1000 < per_mille;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 29);
}

uint64_t sim_hash(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return mix(h, len);
}

uint64_t sim_entry_hash(uint8_t type, const void *data, uint32_t len)
{
    return sim_hash(data, len, type);
}

bool sim_conf_has(const struct raft_conf *c, raft_id id, bool *voter)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nodes[i].id == id) {
            if (voter != NULL)
                *voter = c->nodes[i].voter;
            return true;
        }
    }
    return false;
}

/* ---- Trace and failures ---- */

static void trace_line(struct sim *s, bool live, const char *fmt, va_list ap)
{
    char *line = s->trace[s->n_trace % SIM_TRACE_LINES];
    int n = snprintf(line, SIM_TRACE_WIDTH, "[%7" PRIu64 "] ", s->now);
    vsnprintf(line + n, SIM_TRACE_WIDTH - (size_t)n, fmt, ap);
    s->n_trace++;
    if (live)
        fprintf(stderr, "%s\n", line);
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trace_line(s, s->o.trace >= 1, fmt, ap);
    va_end(ap);
}

void sim_fail(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    if (!s->failed) {
        s->failed = true;
        va_start(ap, fmt);
        vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
        va_end(ap);
    }
    va_start(ap, fmt);
    char buf[SIM_TRACE_WIDTH];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sim_trace(s, "FAILED: %s", buf);
}

void sim_dump(struct sim *s, FILE *f, size_t lines)
{
    uint64_t kept = s->n_trace < SIM_TRACE_LINES ? s->n_trace : SIM_TRACE_LINES;
    if (lines == 0 || lines > kept)
        lines = kept;
    fprintf(f, "---- trace (last %zu of %" PRIu64 " events, seed %" PRIu64 ") ----\n", lines,
            s->n_trace, s->o.seed);
    for (uint64_t i = s->n_trace - lines; i < s->n_trace; i++)
        fprintf(f, "%s\n", s->trace[i % SIM_TRACE_LINES]);
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        struct sim_node *n = &s->nodes[id];
        if (n->state == SIM_ABSENT)
            continue;
        static const char *states[] = {"absent", "up", "down", "gone"};
        fprintf(f,
                "n%" PRIu64 " %s %s term %" PRIu64 " leader %" PRIu64 " commit %" PRIu64
                " applied %" PRIu64 " last %" PRIu64 " snapshot %" PRIu64 " disk: term %" PRIu64
                " vote %" PRIu64 " log %zu entries after %" PRIu64 "\n",
                id, states[n->state], n->state == SIM_UP ? raft_role_name(n->st.role) : "-",
                n->st.term, n->st.leader, n->st.commit_index, n->applied, n->st.last_index,
                n->st.snapshot_index, n->disk.term, n->disk.vote, n->disk.n_log,
                n->disk.snap.index);
        if (n->state != SIM_UP || n->st.role != RAFT_LEADER)
            continue;
        for (uint32_t i = 0; i < n->st.n_peers; i++) {
            const struct raft_peer_status *p = &n->st.peers[i];
            fprintf(f,
                    "    n%" PRIu64 "'s view of n%" PRIu64 ": %s match %" PRIu64 " next %" PRIu64
                    "%s, last contact %" PRIu64 "\n",
                    id, p->id, p->voter ? "voter" : "non-voter", p->match_index, p->next_index,
                    p->snapshotting ? " (sending a snapshot)" : "", p->last_contact);
        }
    }
    if (s->failed)
        fprintf(f, "FAILED (seed %" PRIu64 "): %s\n", s->o.seed, s->failure);
}

/* ---- Event queue (a binary heap on (at, order)) ---- */

static bool ev_before(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->at != b->at ? a->at < b->at : a->order < b->order;
}

void sim_schedule(struct sim *s, struct sim_ev ev)
{
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
        struct sim_ev *h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL) {
            sim_fail(s, "out of memory (event queue)");
            free(ev.msg);
            return;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    ev.order = s->order++;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&ev, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}

static struct sim_ev heap_pop(struct sim *s)
{
    struct sim_ev top = s->heap[0];
    struct sim_ev last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct sim_ev *best = &last;
        if (l < s->n_heap && ev_before(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < s->n_heap && ev_before(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

/* ---- Owned copies ---- */

static void snap_clear(struct sim_snapshot *sn)
{
    free(sn->data);
    memset(sn, 0, sizeof(*sn));
}

static int snap_copy(struct sim_snapshot *dst, const struct sim_snapshot *src)
{
    struct sim_snapshot c = *src;
    c.data = NULL;
    if (src->size > 0) {
        c.data = malloc(src->size);
        if (c.data == NULL)
            return -1;
        memcpy(c.data, src->data, src->size);
    }
    snap_clear(dst);
    *dst = c;
    return 0;
}

static int entry_copy(struct sim_entry *dst, const struct raft_entry *e)
{
    *dst = (struct sim_entry){.term = e->term, .index = e->index, .type = e->type, .len = e->len};
    if (e->len > 0) {
        dst->data = malloc(e->len);
        if (dst->data == NULL)
            return -1;
        memcpy(dst->data, e->data, e->len);
    }
    return 0;
}

static void batch_free(struct sim_batch *b)
{
    for (uint32_t i = 0; i < b->n_entries; i++)
        free(b->entries[i].data);
    free(b->entries);
    if (b->snap != NULL) {
        snap_clear(b->snap);
        free(b->snap);
    }
    free(b);
}

/* ---- The core's log as seen by the driver (mlog) ---- */

static int mlog_push(struct sim_mlog *l, raft_term term, uint64_t hash)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct sim_mentry *e = realloc(l->e, cap * sizeof(*e));
        if (e == NULL)
            return -1;
        l->e = e;
        l->cap = cap;
    }
    l->e[l->n++] = (struct sim_mentry){.term = term, .hash = hash};
    return 0;
}

static void mlog_reset(struct sim_mlog *l, raft_index base, raft_term base_term)
{
    l->base = base;
    l->base_term = base_term;
    l->n = 0;
}

/* Installs a snapshot (index, term): entries after it are kept when the entry at index matches. */
static void mlog_install(struct sim_mlog *l, raft_index index, raft_term term)
{
    if (index > l->base && index <= mlog_last(l) && mlog_term(l, index) == term) {
        size_t drop = (size_t)(index - l->base);
        memmove(l->e, l->e + drop, (l->n - drop) * sizeof(*l->e));
        l->n -= drop;
        l->base = index;
        l->base_term = term;
        return;
    }
    mlog_reset(l, index, term);
}

/* ---- Disks ---- */

static raft_index disk_last(const struct sim_disk *d)
{
    return d->n_log > 0 ? d->log[d->n_log - 1].index : d->snap.index;
}

static void disk_truncate(struct sim_disk *d, raft_index from)
{
    while (d->n_log > 0 && d->log[d->n_log - 1].index >= from) {
        free(d->log[d->n_log - 1].data);
        d->n_log--;
    }
}

/* Drops entries <= index from the front of the disk log. */
static void disk_trim(struct sim_disk *d, raft_index index)
{
    size_t k = 0;
    while (k < d->n_log && d->log[k].index <= index)
        free(d->log[k++].data);
    memmove(d->log, d->log + k, (d->n_log - k) * sizeof(*d->log));
    d->n_log -= k;
}

static void disk_drop_pending(struct sim_disk *d)
{
    while (d->pending != NULL) {
        struct sim_batch *b = d->pending;
        d->pending = b->next;
        batch_free(b);
    }
    d->pending_tail = NULL;
    free(d->recv);
    d->recv = NULL;
    d->recv_len = d->recv_cap = 0;
    d->recv_index = 0;
}

static void disk_free(struct sim_disk *d)
{
    disk_drop_pending(d);
    disk_truncate(d, 0);
    free(d->log);
    snap_clear(&d->snap);
    memset(d, 0, sizeof(*d));
}

/* Makes the head write of n's disk durable. */
static void disk_complete(struct sim *s, struct sim_node *n, struct sim_batch *b)
{
    struct sim_disk *d = &n->disk;
    if (b->has_hard_state) {
        d->term = b->term;
        d->vote = b->vote;
    }
    if (b->snap != NULL) {
        if (b->snap->index > d->snap.index) {
            raft_index idx = b->snap->index;
            bool keep = false;
            for (size_t i = 0; i < d->n_log; i++) {
                if (d->log[i].index == idx)
                    keep = d->log[i].term == b->snap->term;
            }
            if (b->local_snap || keep)
                disk_trim(d, idx);
            else
                disk_truncate(d, 0);
            snap_clear(&d->snap);
            d->snap = *b->snap;
            memset(b->snap, 0, sizeof(*b->snap));
        }
    }
    if (b->truncate_from != 0) {
        if (b->truncate_from <= d->snap.index)
            sim_fail(s,
                     "n%" PRIu64 ": persist truncates from %" PRIu64
                     " at or below the snapshot %" PRIu64,
                     n->id, b->truncate_from, d->snap.index);
        disk_truncate(d, b->truncate_from);
    }
    if (b->n_entries > 0) {
        if (b->entries[0].index != disk_last(d) + 1) {
            sim_fail(s,
                     "n%" PRIu64 ": persist appends %" PRIu64 " to a disk log ending at %" PRIu64,
                     n->id, b->entries[0].index, disk_last(d));
            return;
        }
        if (d->n_log + b->n_entries > d->cap_log) {
            size_t cap = d->cap_log ? d->cap_log : 64;
            while (cap < d->n_log + b->n_entries)
                cap *= 2;
            struct sim_entry *log = realloc(d->log, cap * sizeof(*log));
            if (log == NULL) {
                sim_fail(s, "out of memory (disk)");
                return;
            }
            d->log = log;
            d->cap_log = cap;
        }
        memcpy(d->log + d->n_log, b->entries, b->n_entries * sizeof(*b->entries));
        d->n_log += b->n_entries;
        b->n_entries = 0; /* the data moved to the log */
    }
}

static void disk_queue(struct sim *s, struct sim_node *n, struct sim_batch *b)
{
    struct sim_disk *d = &n->disk;
    b->bid = ++d->next_bid;
    raft_time at = s->now + sim_range(s, s->o.disk_delay_min, s->o.disk_delay_max);
    if (at < d->last_done)
        at = d->last_done;
    d->last_done = at;
    if (d->pending_tail != NULL)
        d->pending_tail->next = b;
    else
        d->pending = b;
    d->pending_tail = b;
    sim_schedule(s, (struct sim_ev){.at = at,
                                    .kind = SIM_EV_DISK,
                                    .node = (uint8_t)n->id,
                                    .incarnation = n->incarnation,
                                    .a = b->bid});
}

/* ---- Nodes ---- */

struct sim_node *sim_node(struct sim *s, raft_id id)
{
    if (id == 0 || id > SIM_MAX_NODES)
        return NULL;
    return &s->nodes[id];
}

bool sim_is_up(struct sim *s, raft_id id)
{
    struct sim_node *n = sim_node(s, id);
    return n != NULL && n->state == SIM_UP;
}

/* Starts (or restarts) n from its disk. */
static void node_boot(struct sim *s, struct sim_node *n)
{
    struct sim_disk *d = &n->disk;
    struct raft_boot boot = {0};
    boot.term = d->term;
    boot.vote = d->vote;
    boot.snapshot_index = d->snap.index;
    boot.snapshot_term = d->snap.term;
    boot.snapshot_size = d->snap.size;
    boot.conf = d->snap.index > 0 ? d->snap.conf : n->boot_conf;
    struct raft_entry *entries = calloc(d->n_log + 1, sizeof(*entries));
    if (entries == NULL) {
        sim_fail(s, "out of memory (boot)");
        return;
    }
    for (size_t i = 0; i < d->n_log; i++) {
        const struct sim_entry *e = &d->log[i];
        entries[i] = (struct raft_entry){
            .term = e->term, .index = e->index, .type = e->type, .len = e->len, .data = e->data};
        if (e->index != d->snap.index + 1 + i)
            sim_fail(s, "n%" PRIu64 ": disk log not consecutive at %" PRIu64, n->id, e->index);
    }
    boot.n_entries = (uint32_t)d->n_log;
    boot.entries = entries;
    boot.applied = d->snap.index;

    kv_close(&n->kv);
    kv_init(&n->kv);
    n->applied = d->snap.index;
    n->applied_term = d->snap.term;
    n->conf = boot.conf;
    if (d->snap.index > 0) {
        uint64_t idx, term;
        if (kv_restore(&n->kv, d->snap.data, d->snap.size, &idx, &term) != 0 ||
            idx != d->snap.index || term != d->snap.term)
            sim_fail(s, "n%" PRIu64 ": snapshot on disk does not restore", n->id);
    }
    snap_copy(&n->snap, &d->snap);
    snap_clear(&n->snap_next);
    n->snap_busy = false;
    mlog_reset(&n->mlog, d->snap.index, d->snap.term);
    for (size_t i = 0; i < d->n_log; i++) {
        if (mlog_push(&n->mlog, d->log[i].term,
                      sim_entry_hash(d->log[i].type, d->log[i].data, d->log[i].len)) != 0)
            sim_fail(s, "out of memory (mlog)");
    }
    n->last_persist_seq = 0;
    n->install_seq = 0;
    n->install_index = 0;
    n->last_commit = 0;

    struct raft_config cfg = s->o.raft;
    cfg.id = n->id;
    cfg.seed = mix(mix(s->o.seed, n->id), n->incarnation);
    int rc = raft_new(&cfg, &boot, s->now, &n->r);
    free(entries);
    if (rc != 0) {
        sim_fail(s, "n%" PRIu64 ": raft_new failed: %d", n->id, rc);
        n->r = NULL;
        n->state = SIM_DOWN;
        return;
    }
    n->state = SIM_UP;
    n->next_tick = s->now;
    raft_get_status(n->r, &n->st);
    n->new_leader = false;
    sim_trace(s,
              "n%" PRIu64 " boots: term %" PRIu64 " vote %" PRIu64 " snapshot %" PRIu64 "/%" PRIu64
              " log %zu entries",
              n->id, d->term, d->vote, d->snap.index, d->snap.term, d->n_log);
}

static void node_start_fresh(struct sim *s, raft_id id, const struct raft_conf *conf)
{
    struct sim_node *n = &s->nodes[id];
    n->id = id;
    n->incarnation = 0;
    n->boot_conf = *conf;
    node_boot(s, n);
}

void sim_crash(struct sim *s, raft_id id)
{
    struct sim_node *n = sim_node(s, id);
    if (n == NULL || n->state != SIM_UP)
        return;
    size_t lost = 0;
    for (struct sim_batch *b = n->disk.pending; b != NULL; b = b->next)
        lost++;
    raft_free(n->r);
    n->r = NULL;
    n->state = SIM_DOWN;
    n->incarnation++;
    disk_drop_pending(&n->disk);
    if (s->o.lying_disk) {
        raft_index last = disk_last(&n->disk);
        disk_truncate(&n->disk, last > n->disk.snap.index + 3 ? last - 2 : n->disk.snap.index + 1);
        n->disk.vote = 0;
    }
    kv_close(&n->kv);
    snap_clear(&n->snap);
    snap_clear(&n->snap_next);
    s->n_crashes++;
    sim_trace(s, "n%" PRIu64 " CRASHES (%zu unpersisted writes lost)", id, lost);
    client_on_node_lost(s, n);
}

void sim_restart(struct sim *s, raft_id id)
{
    struct sim_node *n = sim_node(s, id);
    if (n == NULL || n->state != SIM_DOWN)
        return;
    node_boot(s, n);
}

/* Stops a node that left the configuration, for good. */
static void node_stop(struct sim *s, struct sim_node *n)
{
    sim_trace(s, "n%" PRIu64 " removed from the cluster: stopped", n->id);
    raft_free(n->r);
    n->r = NULL;
    n->state = SIM_GONE;
    n->incarnation++;
    disk_free(&n->disk);
    kv_close(&n->kv);
    snap_clear(&n->snap);
    snap_clear(&n->snap_next);
    client_on_node_lost(s, n);
}

/* ---- Network ---- */

static struct sim_snapshot *find_snapshot(struct sim_node *n, raft_index index)
{
    if (n->snap.index == index && n->snap.index != 0)
        return &n->snap;
    if (n->snap_next.index == index && n->snap_next.index != 0)
        return &n->snap_next;
    return NULL;
}

static struct sim_msg *msg_copy(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
    size_t size = sizeof(struct sim_msg);
    const struct sim_snapshot *sn = NULL;
    if (m->type == RAFT_MSG_APPEND) {
        size += m->u.append.n_entries * sizeof(struct raft_entry);
        for (uint32_t i = 0; i < m->u.append.n_entries; i++)
            size += m->u.append.entries[i].len;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *ms = &m->u.snapshot;
        sn = find_snapshot(n, ms->last_index);
        if (sn == NULL) {
            sim_fail(s, "n%" PRIu64 " sends snapshot %" PRIu64 " it does not have", n->id,
                     ms->last_index);
            return NULL;
        }
        if (ms->conf == NULL) {
            sim_fail(s, "n%" PRIu64 " sends snapshot %" PRIu64 " without its configuration", n->id,
                     ms->last_index);
            return NULL;
        }
        if (ms->size != sn->size || ms->offset > sn->size || ms->len > sn->size - ms->offset ||
            sn->term != ms->last_term) {
            sim_fail(s,
                     "n%" PRIu64 " sends snapshot %" PRIu64 "/%" PRIu64 " chunk [%" PRIu64
                     ", +%u) of size %" PRIu64 " but has %" PRIu64 "/%" PRIu64 " of size %" PRIu64,
                     n->id, ms->last_index, ms->last_term, ms->offset, ms->len, ms->size, sn->index,
                     sn->term, sn->size);
            return NULL;
        }
        size += ms->len;
    }
    struct sim_msg *c = malloc(size);
    if (c == NULL) {
        sim_fail(s, "out of memory (message)");
        return NULL;
    }
    c->m = *m;
    uint8_t *p = (uint8_t *)(c + 1);
    if (m->type == RAFT_MSG_APPEND) {
        struct raft_entry *es = (struct raft_entry *)p;
        p += m->u.append.n_entries * sizeof(struct raft_entry);
        for (uint32_t i = 0; i < m->u.append.n_entries; i++) {
            es[i] = m->u.append.entries[i];
            if (es[i].len > 0)
                memcpy(p, es[i].data, es[i].len);
            es[i].data = p;
            p += es[i].len;
        }
        c->m.u.append.entries = m->u.append.n_entries > 0 ? es : NULL;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        if (m->u.snapshot.len > 0)
            memcpy(p, sn->data + m->u.snapshot.offset, m->u.snapshot.len);
        c->m.u.snapshot.data = p;
        /* The core's conf lives until its next step: the message in flight keeps a copy. */
        c->conf = *m->u.snapshot.conf;
        c->m.u.snapshot.conf = &c->conf;
    }
    return c;
}

static const char *msg_name(uint8_t type)
{
    static const char *names[] = {"?",           "VOTE",           "VOTE_RESP",     "APPEND",
                                  "APPEND_RESP", "SNAPSHOT",       "SNAPSHOT_RESP", "TIMEOUT_NOW",
                                  "READ_INDEX",  "READ_INDEX_RESP"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

static void trace_msg(struct sim *s, const char *what, const struct raft_msg *m)
{
    if (s->o.trace < 2)
        return;
    char detail[120] = "";
    switch (m->type) {
    case RAFT_MSG_VOTE:
        snprintf(detail, sizeof(detail), "%slast %" PRIu64 "/%" PRIu64, m->u.vote.pre ? "pre " : "",
                 m->u.vote.last_log_index, m->u.vote.last_log_term);
        break;
    case RAFT_MSG_VOTE_RESP:
        snprintf(detail, sizeof(detail), "%s%s", m->u.vote_resp.pre ? "pre " : "",
                 m->u.vote_resp.granted ? "granted" : "denied");
        break;
    case RAFT_MSG_APPEND:
        snprintf(detail, sizeof(detail), "prev %" PRIu64 "/%" PRIu64 " n %u commit %" PRIu64,
                 m->u.append.prev_index, m->u.append.prev_term, m->u.append.n_entries,
                 m->u.append.commit);
        break;
    case RAFT_MSG_APPEND_RESP:
        snprintf(detail, sizeof(detail), "%s match %" PRIu64 " conflict %" PRIu64 "/%" PRIu64,
                 m->u.append_resp.success ? "ok" : "reject", m->u.append_resp.match_index,
                 m->u.append_resp.conflict_index, m->u.append_resp.conflict_term);
        break;
    case RAFT_MSG_SNAPSHOT:
        snprintf(detail, sizeof(detail), "%" PRIu64 " off %" PRIu64 " len %u%s",
                 m->u.snapshot.last_index, m->u.snapshot.offset, m->u.snapshot.len,
                 m->u.snapshot.done ? " done" : "");
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        snprintf(detail, sizeof(detail), "%" PRIu64 " next %" PRIu64 "%s%s",
                 m->u.snapshot_resp.last_index, m->u.snapshot_resp.next_offset,
                 m->u.snapshot_resp.done ? " done" : "",
                 m->u.snapshot_resp.rejected ? " rejected" : "");
        break;
    default:
        break;
    }
    sim_trace(s, "  %s n%" PRIu64 "->n%" PRIu64 " %s t%" PRIu64 " %s", what, m->from, m->to,
              msg_name(m->type), m->term, detail);
}

static void net_send(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
    s->n_msgs_sent++;
    if (m->to == 0 || m->to > SIM_MAX_NODES || m->to == n->id) {
        sim_fail(s, "n%" PRIu64 " sends %s to n%" PRIu64, n->id, msg_name(m->type), m->to);
        return;
    }
    if (s->filter != NULL && s->filter(s, m, s->filter_arg)) {
        s->n_dropped++;
        trace_msg(s, "filtered", m);
        return;
    }
    if (s->cut[m->from][m->to] || sim_chance(s, s->drop_pm)) {
        s->n_dropped++;
        trace_msg(s, "dropped", m);
        return;
    }
    int copies = sim_chance(s, s->dup_pm) ? 2 : 1;
    if (copies == 2)
        s->n_duplicated++;
    for (int i = 0; i < copies; i++) {
        struct sim_msg *c = msg_copy(s, n, m);
        if (c == NULL)
            return;
        trace_msg(s, "send", m);
        raft_time at = s->now + sim_range(s, s->delay_min, s->delay_max);
        if (s->hold != NULL)
            at += s->hold(s, m, s->hold_arg);
        sim_schedule(
            s, (struct sim_ev){.at = at, .kind = SIM_EV_DELIVER, .node = (uint8_t)m->to, .msg = c});
    }
}

void sim_cut(struct sim *s, raft_id from, raft_id to, bool cut)
{
    s->cut[from][to] = cut;
    sim_trace(s, "network: n%" PRIu64 " -> n%" PRIu64 " %s", from, to, cut ? "cut" : "restored");
}

void sim_isolate(struct sim *s, raft_id id)
{
    for (raft_id o = 1; o <= SIM_MAX_NODES; o++) {
        if (o != id) {
            s->cut[id][o] = true;
            s->cut[o][id] = true;
        }
    }
    sim_trace(s, "network: n%" PRIu64 " isolated", id);
}

void sim_partition(struct sim *s, uint32_t side_mask)
{
    char a[64] = "", b[64] = "";
    for (raft_id x = 1; x <= SIM_MAX_NODES; x++) {
        bool sx = side_mask & (1u << x);
        if (s->nodes[x].state != SIM_ABSENT && s->nodes[x].state != SIM_GONE) {
            char *side = sx ? a : b;
            size_t len = strlen(side);
            snprintf(side + len, sizeof(a) - len, " n%" PRIu64, x);
        }
        for (raft_id y = 1; y <= SIM_MAX_NODES; y++) {
            bool sy = side_mask & (1u << y);
            s->cut[x][y] = x != y && sx != sy;
        }
    }
    sim_trace(s, "network: partition {%s } | {%s }", a, b);
}

void sim_heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    sim_trace(s, "network: healed");
}

/* ---- The driver loop of one node (raft.h, steps 1-6) ---- */

static void write_chunk(struct sim *s, struct sim_node *n, const struct raft_snapshot_chunk *c)
{
    struct sim_disk *d = &n->disk;
    if (c->offset == 0) {
        d->recv_index = c->last_index;
        d->recv_len = 0;
    } else if (c->last_index != d->recv_index || c->offset > d->recv_len) {
        sim_fail(s,
                 "n%" PRIu64 ": snapshot chunk %" PRIu64 " at offset %" PRIu64
                 " does not follow the pending snapshot %" PRIu64 " of %" PRIu64 " bytes",
                 n->id, c->last_index, c->offset, d->recv_index, d->recv_len);
        return;
    }
    uint64_t end = c->offset + c->len;
    if (end > d->recv_cap) {
        uint64_t cap = d->recv_cap ? d->recv_cap : 256;
        while (cap < end)
            cap *= 2;
        uint8_t *p = realloc(d->recv, cap);
        if (p == NULL) {
            sim_fail(s, "out of memory (snapshot chunk)");
            return;
        }
        d->recv = p;
        d->recv_cap = cap;
    }
    if (c->len > 0)
        memcpy(d->recv + c->offset, c->data, c->len);
    if (end > d->recv_len)
        d->recv_len = end;
}

/* A batch installs the received snapshot: the chunks written so far become the snapshot this
 * batch makes durable. The state machine is restored only when the batch is reported persisted
 * (restore_installed), as a real driver must do (raft.h). */
static void install_snapshot(struct sim *s, struct sim_node *n, const struct raft_persist *p,
                             struct sim_batch *b)
{
    struct sim_disk *d = &n->disk;
    if (d->recv_index != p->snapshot_index || p->snapshot_conf == NULL) {
        sim_fail(s,
                 "n%" PRIu64 ": install of snapshot %" PRIu64
                 " but the chunks received are for %" PRIu64,
                 n->id, p->snapshot_index, d->recv_index);
        return;
    }
    if (p->snapshot_index < n->applied) {
        sim_fail(s, "n%" PRIu64 ": installs snapshot %" PRIu64 " behind its applied index %" PRIu64,
                 n->id, p->snapshot_index, n->applied);
        return;
    }
    b->snap = calloc(1, sizeof(*b->snap));
    if (b->snap == NULL) {
        sim_fail(s, "out of memory (install)");
        return;
    }
    b->snap->index = p->snapshot_index;
    b->snap->term = p->snapshot_term;
    b->snap->conf = *p->snapshot_conf;
    b->snap->size = d->recv_len;
    b->snap->data = malloc(d->recv_len + 1);
    if (b->snap->data == NULL) {
        sim_fail(s, "out of memory (install)");
        return;
    }
    memcpy(b->snap->data, d->recv, d->recv_len);
    if (s->o.checks)
        check_snapshot_bytes(s, b->snap->index, b->snap->data, b->snap->size);
    /* The core now holds this snapshot (and may send it on, should it lead). */
    snap_copy(&n->snap, b->snap);
    mlog_install(&n->mlog, p->snapshot_index, p->snapshot_term);
    n->install_seq = p->seq;
    n->install_index = p->snapshot_index;
    sim_trace(s,
              "n%" PRIu64 " installs snapshot %" PRIu64 "/%" PRIu64 " (%" PRIu64
              " bytes), persist seq %" PRIu64,
              n->id, p->snapshot_index, p->snapshot_term, b->snap->size, p->seq);
}

/* The batch installing a snapshot is durable: the state machine becomes the snapshot on disk,
 * before the RAFT_EV_PERSISTED that reports it is stepped. */
static void restore_installed(struct sim *s, struct sim_node *n)
{
    const struct sim_snapshot *sn = &n->disk.snap;
    uint64_t idx, term;
    if (sn->index != n->install_index) {
        sim_fail(s,
                 "n%" PRIu64 ": the install of snapshot %" PRIu64
                 " is durable but the disk holds %" PRIu64,
                 n->id, n->install_index, sn->index);
        return;
    }
    if (sn->index < n->applied) {
        sim_fail(s, "n%" PRIu64 ": installs snapshot %" PRIu64 " behind its applied index %" PRIu64,
                 n->id, sn->index, n->applied);
        return;
    }
    if (kv_restore(&n->kv, sn->data, sn->size, &idx, &term) != 0 || idx != sn->index ||
        term != sn->term) {
        sim_fail(s,
                 "n%" PRIu64 ": the received snapshot %" PRIu64 "/%" PRIu64 " (%" PRIu64
                 " bytes) does not restore to that index",
                 n->id, sn->index, sn->term, sn->size);
        return;
    }
    n->applied = sn->index;
    n->applied_term = sn->term;
    n->conf = sn->conf;
    n->install_seq = 0;
    n->install_index = 0;
    s->n_snapshots_installed++;
    sim_trace(s, "n%" PRIu64 " restores its state machine from snapshot %" PRIu64 "/%" PRIu64,
              n->id, sn->index, sn->term);
    client_on_install(s, n);
}

static void queue_persist(struct sim *s, struct sim_node *n, const struct raft_persist *p)
{
    if (p->seq == 0) {
        if (p->has_hard_state || p->truncate_from != 0 || p->n_entries != 0 || p->install_snapshot)
            sim_fail(s, "n%" PRIu64 ": an update with things to persist but seq 0", n->id);
        return;
    }
    if (p->seq <= n->last_persist_seq) {
        sim_fail(s, "n%" PRIu64 ": persist seq %" PRIu64 " after %" PRIu64, n->id, p->seq,
                 n->last_persist_seq);
        return;
    }
    n->last_persist_seq = p->seq;
    struct sim_batch *b = calloc(1, sizeof(*b));
    if (b == NULL ||
        (p->n_entries > 0 && (b->entries = calloc(p->n_entries, sizeof(*b->entries))) == NULL)) {
        free(b);
        sim_fail(s, "out of memory (persist)");
        return;
    }
    b->seq = p->seq;
    b->has_hard_state = p->has_hard_state;
    b->term = p->term;
    b->vote = p->vote;
    b->truncate_from = p->truncate_from;
    if (p->install_snapshot) {
        b->install = true;
        install_snapshot(s, n, p, b);
    }
    if (p->truncate_from != 0) {
        if (p->truncate_from <= n->mlog.base) {
            sim_fail(s, "n%" PRIu64 ": truncates from %" PRIu64 ", inside its snapshot %" PRIu64,
                     n->id, p->truncate_from, n->mlog.base);
        } else if (p->truncate_from <= mlog_last(&n->mlog)) {
            n->mlog.n = (size_t)(p->truncate_from - n->mlog.base - 1);
        }
        if (p->truncate_from <= n->applied)
            sim_fail(s, "n%" PRIu64 ": truncates from %" PRIu64 " but applied %" PRIu64, n->id,
                     p->truncate_from, n->applied);
    }
    for (uint32_t i = 0; i < p->n_entries; i++) {
        const struct raft_entry *e = &p->entries[i];
        if (entry_copy(&b->entries[i], e) != 0) {
            sim_fail(s, "out of memory (persist)");
            break;
        }
        b->n_entries++;
        if (e->index != mlog_last(&n->mlog) + 1) {
            sim_fail(s, "n%" PRIu64 ": persists entry %" PRIu64 " after its log ends at %" PRIu64,
                     n->id, e->index, mlog_last(&n->mlog));
            continue;
        }
        uint64_t h = 0;
        if (s->o.checks) {
            h = sim_entry_hash(e->type, e->data, e->len);
            check_log_entry(s, n, e->index, e->term, mlog_term(&n->mlog, e->index - 1), h);
        }
        if (mlog_push(&n->mlog, e->term, h) != 0)
            sim_fail(s, "out of memory (mlog)");
    }
    disk_queue(s, n, b);
}

static void apply_entry(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
    if (n->install_seq != 0 && s->o.contract_checks) {
        /* raft.h: nothing after a snapshot goes out before its install is reported durable. */
        sim_fail(s,
                 "n%" PRIu64 ": hands out committed entry %" PRIu64
                 " before the install of snapshot %" PRIu64 " (persist seq %" PRIu64
                 ") is reported persisted",
                 n->id, e->index, n->install_index, n->install_seq);
        return;
    }
    if (e->index != n->applied + 1) {
        sim_fail(s, "n%" PRIu64 ": hands out committed entry %" PRIu64 " after %" PRIu64, n->id,
                 e->index, n->applied);
        return;
    }
    if (s->o.checks)
        check_apply(s, n, e, sim_entry_hash(e->type, e->data, e->len));
    if (e->type == RAFT_ENTRY_NORMAL) {
        if (kv_apply(&n->kv, e->data, e->len) < 0)
            sim_fail(s, "n%" PRIu64 ": committed entry %" PRIu64 " is not a command", n->id,
                     e->index);
    } else if (e->type == RAFT_ENTRY_CONF) {
        struct raft_conf c;
        if (raft_conf_decode(e->data, e->len, &c) != 0)
            sim_fail(s, "n%" PRIu64 ": conf entry %" PRIu64 " does not decode", n->id, e->index);
        else
            n->conf = c;
    }
    n->applied = e->index;
    n->applied_term = e->term;
    s->n_applied_entries++;
    client_on_apply(s, n, e->index, e->term);
}

static void take_snapshot(struct sim *s, struct sim_node *n)
{
    if (n->snap_busy || n->applied == 0)
        return;
    struct sim_batch *b = calloc(1, sizeof(*b));
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (b == NULL || kv_serialize(&n->kv, n->applied, n->applied_term, &bytes, &len) != 0) {
        free(b);
        sim_fail(s, "out of memory (snapshot)");
        return;
    }
    if (s->o.checks)
        check_snapshot_bytes(s, n->applied, bytes, len);
    b->local_snap = true;
    b->snap = malloc(sizeof(*b->snap));
    if (b->snap == NULL) {
        free(bytes);
        batch_free(b);
        sim_fail(s, "out of memory (snapshot)");
        return;
    }
    *b->snap = (struct sim_snapshot){
        .index = n->applied, .term = n->applied_term, .conf = n->conf, .data = bytes, .size = len};
    if (snap_copy(&n->snap_next, b->snap) != 0) {
        batch_free(b);
        sim_fail(s, "out of memory (snapshot)");
        return;
    }
    n->snap_busy = true;
    s->n_snapshots_taken++;
    sim_trace(s, "n%" PRIu64 " takes snapshot %" PRIu64 "/%" PRIu64 " (%zu bytes)", n->id,
              n->applied, n->applied_term, len);
    disk_queue(s, n, b);
}

static void handle_update(struct sim *s, struct sim_node *n, const struct raft_update *u)
{
    struct sim_brief prev = {n->st.role, n->st.term, n->st.leader, n->st.commit_index};
    /* Without checks (the benchmark) the status is only refreshed when the role changed. */
    if (s->o.checks || u->role_changed)
        raft_get_status(n->r, &n->st);
    if (s->o.checks)
        check_status(s, n, &prev);
    else if (n->st.role != prev.role || n->st.term != prev.term)
        sim_trace(s, "n%" PRIu64 " %s term %" PRIu64, n->id, raft_role_name(n->st.role),
                  n->st.term);

    /* 2. persist (and install a received snapshot) */
    if (u->snapshot_chunk.present)
        write_chunk(s, n, &u->snapshot_chunk);
    queue_persist(s, n, &u->persist);
    if (n->new_leader && s->o.checks)
        check_leader_completeness(s, n);
    n->new_leader = false;

    /* 3. send */
    for (uint32_t i = 0; i < u->n_msgs; i++) {
        if (s->o.checks)
            check_msg_out(s, n, &u->msgs[i]);
        net_send(s, n, &u->msgs[i]);
    }

    /* 4. apply, then serve reads */
    for (uint32_t i = 0; i < u->n_committed && !s->failed; i++)
        apply_entry(s, n, &u->committed[i]);
    raft_index applied = n->install_seq != 0 ? n->install_index : n->applied;
    if (s->o.checks && n->st.applied_index != applied)
        sim_fail(s,
                 "n%" PRIu64 ": status says applied %" PRIu64 " but it handed out up to %" PRIu64,
                 n->id, n->st.applied_index, applied);
    for (uint32_t i = 0; i < u->n_reads; i++)
        client_on_read(s, n, &u->reads[i]);
    client_serve(s, n);

    /* 5. snapshot */
    if (u->snapshot_wanted)
        take_snapshot(s, n);

    /* 6. the next tick */
    n->next_tick = u->next_timeout > s->now ? u->next_timeout : s->now + 1;

    s->digest = mix(mix(mix(s->digest, s->now), n->id * 16 + n->st.role),
                    mix(mix(n->st.term, n->st.commit_index), mix(u->n_msgs, u->persist.seq)));
}

int sim_node_step(struct sim *s, struct sim_node *n, struct raft_event *ev,
                  struct raft_update *copy_out)
{
    struct raft_update u;
    memset(&u, 0, sizeof(u));
    ev->now = s->now;
    int rc = raft_step(n->r, ev, &u);
    s->n_steps++;
    n->steps++;
    if (rc != 0 && rc != RAFT_E_NOT_LEADER && rc != RAFT_E_BUSY && rc != RAFT_E_TRANSFERRING &&
        rc != RAFT_E_SHUTDOWN)
        sim_trace(s, "n%" PRIu64 ": raft_step(event %u) returned %d", n->id, ev->type, rc);
    s->digest = mix(s->digest, (uint64_t)(rc + 100) * 64 + ev->type);
    handle_update(s, n, &u);
    if (copy_out != NULL)
        *copy_out = u;
    /* A node the committed configuration left, and that knows it, is shut down. */
    if (n->st.removed && n->was_member && !sim_conf_has(&s->conf, n->id, NULL))
        node_stop(s, n);
    return rc;
}

/* ---- Events ---- */

static void on_disk(struct sim *s, struct sim_node *n, uint64_t bid)
{
    struct sim_batch *b = n->disk.pending;
    if (b == NULL || b->bid != bid) {
        sim_fail(s, "n%" PRIu64 ": disk write %" PRIu64 " completes out of order", n->id, bid);
        return;
    }
    n->disk.pending = b->next;
    if (n->disk.pending == NULL)
        n->disk.pending_tail = NULL;
    raft_index idx = b->snap != NULL ? b->snap->index : 0;
    raft_term term = b->snap != NULL ? b->snap->term : 0;
    uint64_t size = b->snap != NULL ? b->snap->size : 0;
    disk_complete(s, n, b);
    if (b->local_snap) {
        /* The snapshot is written: the core may now send it and compact its log. */
        if (n->snap_next.index > n->snap.index) {
            snap_clear(&n->snap);
            n->snap = n->snap_next;
            memset(&n->snap_next, 0, sizeof(n->snap_next));
        } else {
            snap_clear(&n->snap_next);
        }
        n->snap_busy = false;
        batch_free(b);
        struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_TAKEN};
        ev.u.snapshot_taken.index = idx;
        ev.u.snapshot_taken.term = term;
        ev.u.snapshot_taken.size = size;
        sim_node_step(s, n, &ev, NULL);
        return;
    }
    uint64_t seq = b->seq;
    batch_free(b);
    if (n->install_seq != 0 && seq >= n->install_seq)
        restore_installed(s, n);
    struct raft_event ev = {.type = RAFT_EV_PERSISTED};
    ev.u.persisted.seq = seq;
    sim_node_step(s, n, &ev, NULL);
}

static void process(struct sim *s, struct sim_ev *ev)
{
    struct sim_node *n = &s->nodes[ev->node];
    switch (ev->kind) {
    case SIM_EV_DELIVER:
        s->n_msgs_delivered++;
        if (n->state == SIM_UP && !s->cut[ev->msg->m.from][ev->msg->m.to]) {
            trace_msg(s, "recv", &ev->msg->m);
            struct raft_event e = {.type = RAFT_EV_RECEIVE};
            e.u.receive.msg = &ev->msg->m;
            sim_node_step(s, n, &e, NULL);
        }
        free(ev->msg);
        break;
    case SIM_EV_DISK:
        if (n->state == SIM_UP && n->incarnation == ev->incarnation)
            on_disk(s, n, ev->a);
        break;
    case SIM_EV_CLIENT:
        client_wake(s, &s->clients[ev->a], ev->b);
        break;
    default:
        break;
    }
}

/* The earliest thing to do: a queued event or a node's tick. Returns false when none. */
static bool step_once(struct sim *s, raft_time until)
{
    struct sim_node *tick = NULL;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        struct sim_node *n = &s->nodes[id];
        if (n->state == SIM_UP && (tick == NULL || n->next_tick < tick->next_tick))
            tick = n;
    }
    bool have_ev = s->n_heap > 0;
    if (tick != NULL && (!have_ev || tick->next_tick < s->heap[0].at)) {
        if (tick->next_tick > until)
            return false;
        if (tick->next_tick > s->now)
            s->now = tick->next_tick;
        struct raft_event e = {.type = RAFT_EV_TICK};
        sim_node_step(s, tick, &e, NULL);
        return true;
    }
    if (!have_ev || s->heap[0].at > until)
        return false;
    struct sim_ev ev = heap_pop(s);
    if (ev.at > s->now)
        s->now = ev.at;
    process(s, &ev);
    return true;
}

bool sim_run_until(struct sim *s, raft_time until)
{
    while (!s->failed && step_once(s, until)) {
    }
    if (!s->failed && s->now < until)
        s->now = until;
    return !s->failed;
}

bool sim_run_for(struct sim *s, raft_time ms)
{
    return sim_run_until(s, s->now + ms);
}

bool sim_run_until_pred(struct sim *s, bool (*pred)(struct sim *s, void *arg), void *arg,
                        raft_time deadline)
{
    while (!s->failed) {
        if (pred(s, arg))
            return true;
        if (!step_once(s, deadline)) {
            s->now = deadline;
            return !s->failed && pred(s, arg);
        }
    }
    return false;
}

raft_term sim_log_term(struct sim *s, raft_id id, raft_index index)
{
    const struct sim_node *n = sim_node(s, id);
    return n == NULL ? 0 : mlog_term(&n->mlog, index);
}

raft_id sim_leader(struct sim *s)
{
    raft_id best = 0;
    raft_term term = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        struct sim_node *n = &s->nodes[id];
        if (n->state == SIM_UP && n->st.role == RAFT_LEADER && n->st.term >= term) {
            best = id;
            term = n->st.term;
        }
    }
    return best;
}

int sim_count_leaders(struct sim *s)
{
    int k = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        if (s->nodes[id].state == SIM_UP && s->nodes[id].st.role == RAFT_LEADER)
            k++;
    }
    return k;
}

bool sim_settled(struct sim *s, void *arg)
{
    (void)arg;
    if (!sim_clients_done(s))
        return false;
    raft_id l = sim_leader(s);
    if (l == 0)
        return false;
    const struct sim_node *ln = &s->nodes[l];
    if (ln->st.commit_index != ln->applied || ln->st.last_index != ln->applied)
        return false;
    for (uint32_t i = 0; i < s->conf.n; i++) {
        const struct sim_node *n = sim_node(s, s->conf.nodes[i].id);
        if (n == NULL || n->state != SIM_UP || n->applied != ln->applied)
            return false;
    }
    return true;
}

bool sim_check_idle_traffic(struct sim *s)
{
    int up = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
        up += s->nodes[id].state == SIM_UP;
    /* A leader's heartbeat to each other node and its answer, per heartbeat interval; three
     * times that leaves room for a change of leader or a lost answer. */
    uint64_t hb = s->o.raft.heartbeat_interval ? s->o.raft.heartbeat_interval : 50;
    uint64_t expected = 2 * (uint64_t)(up > 1 ? up - 1 : 1) * (1000 / hb + 1);
    uint64_t sent = s->n_msgs_sent;
    if (!sim_run_for(s, 1000))
        return false;
    sent = s->n_msgs_sent - sent;
    if (sent > 3 * expected)
        sim_fail(s,
                 "message storm: %" PRIu64
                 " messages in an idle second (heartbeats need about %" PRIu64 ")",
                 sent, expected);
    return !s->failed;
}

/* ---- Requests ---- */

int sim_propose(struct sim *s, raft_id id, const void *data, uint32_t len, raft_index *index,
                raft_term *term)
{
    struct sim_node *n = sim_node(s, id);
    if (n == NULL || n->state != SIM_UP)
        return RAFT_E_NOT_LEADER;
    struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = len, .data = data};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.u.propose.n = 1;
    ev.u.propose.entries = &e;
    struct raft_update u;
    int rc = sim_node_step(s, n, &ev, &u);
    if (rc == 0) {
        if (index != NULL)
            *index = u.proposed_index;
        if (term != NULL)
            *term = u.proposed_term;
    }
    return rc;
}

int sim_transfer(struct sim *s, raft_id leader, raft_id target)
{
    struct sim_node *n = sim_node(s, leader);
    if (n == NULL || n->state != SIM_UP)
        return RAFT_E_NOT_LEADER;
    struct raft_event ev = {.type = RAFT_EV_TRANSFER};
    ev.u.transfer.target = target;
    int rc = sim_node_step(s, n, &ev, NULL);
    sim_trace(s, "transfer of leadership n%" PRIu64 " -> n%" PRIu64 ": %d", leader, target, rc);
    return rc;
}

int sim_conf_change(struct sim *s, raft_id leader, uint8_t op, raft_id id)
{
    struct sim_node *n = sim_node(s, leader);
    if (n == NULL || n->state != SIM_UP || id == 0 || id > SIM_MAX_NODES)
        return RAFT_E_NOT_LEADER;
    char addr[16];
    snprintf(addr, sizeof(addr), "n%" PRIu64, id);
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    ev.u.conf_change.op = op;
    ev.u.conf_change.id = id;
    ev.u.conf_change.addr = op == RAFT_CONF_ADD ? addr : NULL;
    int rc = sim_node_step(s, n, &ev, NULL);
    static const char *ops[] = {"?", "add", "promote", "remove"};
    sim_trace(s, "conf change on n%" PRIu64 ": %s n%" PRIu64 ": %d", leader, ops[op & 3], id, rc);
    if (rc == 0 && op == RAFT_CONF_ADD && s->nodes[id].state == SIM_ABSENT) {
        /* A node added to a running cluster boots with the cluster's first configuration
         * (without itself), or as master/master.c boots a master started with --join: the
         * committed members as voters and itself as a non-voter without an address. */
        struct raft_conf boot = s->initial_conf;
        if (sim_chance(s, 500) && s->conf.n < RAFT_MAX_NODES) {
            boot = s->conf;
            for (uint32_t i = 0; i < boot.n; i++)
                boot.nodes[i].voter = true;
            memset(&boot.nodes[boot.n], 0, sizeof(boot.nodes[0]));
            boot.nodes[boot.n++].id = id;
            sim_trace(s, "n%" PRIu64 " joins as a non-voter of the %u members", id, s->conf.n);
        }
        node_start_fresh(s, id, &boot);
    }
    return rc;
}

/* ---- Construction ---- */

void sim_opts_default(struct sim_opts *o, uint64_t seed, int n_nodes)
{
    memset(o, 0, sizeof(*o));
    o->seed = seed;
    o->n_nodes = n_nodes;
    raft_config_default(&o->raft);
    o->net_delay_min = 1;
    o->net_delay_max = 5;
    o->disk_delay_min = 1;
    o->disk_delay_max = 10;
    o->n_clients = 3;
    o->n_keys = 3;
    o->client_timeout = 1000;
    o->think_max = 20;
    o->checks = true;
    const char *nc = getenv("RAFT_NO_CONTRACT_CHECKS");
    o->contract_checks = nc == NULL || nc[0] == '\0' || strcmp(nc, "0") == 0;
    const char *t = getenv("RAFT_TRACE");
    o->trace = t != NULL ? atoi(t) : 0;
}

struct sim *sim_new(const struct sim_opts *o)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->o = *o;
    s->rng = mix(o->seed, 0x5eed);
    s->trace = calloc(SIM_TRACE_LINES, sizeof(*s->trace));
    if (s->trace == NULL) {
        free(s);
        return NULL;
    }
    s->now = 0;
    s->delay_min = o->net_delay_min;
    s->delay_max = o->net_delay_max;
    s->initial_conf.n = (uint32_t)o->n_nodes;
    for (int i = 0; i < o->n_nodes; i++) {
        struct raft_node *rn = &s->initial_conf.nodes[i];
        rn->id = (raft_id)i + 1;
        rn->voter = true;
        snprintf(rn->addr, sizeof(rn->addr), "n%d", i + 1);
    }
    s->conf = s->initial_conf;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
        s->nodes[id].id = id;
    for (int i = 0; i < SIM_MAX_CLIENTS; i++)
        s->clients[i].id = (uint8_t)i;
    sim_trace(s, "cluster of %d nodes, seed %" PRIu64, o->n_nodes, o->seed);
    for (int i = 0; i < o->n_nodes; i++) {
        s->nodes[i + 1].was_member = true;
        node_start_fresh(s, (raft_id)i + 1, &s->initial_conf);
    }
    return s;
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        struct sim_node *n = &s->nodes[id];
        if (n->r != NULL)
            raft_free(n->r);
        disk_free(&n->disk);
        free(n->mlog.e);
        kv_close(&n->kv);
        snap_clear(&n->snap);
        snap_clear(&n->snap_next);
    }
    for (size_t i = 0; i < s->n_heap; i++)
        free(s->heap[i].msg);
    free(s->heap);
    client_free(s);
    check_free(s);
    free(s->trace);
    free(s);
}
