/* The unit-test cluster (see harness.h). */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

static void *xdup(const void *p, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    void *d = xmalloc(n);
    memcpy(d, p, n);
    return d;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

#define FNV_U(h, v)                                                                                \
    do {                                                                                           \
        uint64_t v_ = (uint64_t)(v);                                                               \
        (h) = fnv((h), &v_, sizeof v_);                                                            \
    } while (0)

static uint64_t hash_conf(uint64_t h, const struct raft_conf *c)
{
    FNV_U(h, c->n);
    for (uint32_t i = 0; i < c->n && i < RAFT_MAX_NODES; i++) {
        FNV_U(h, c->nodes[i].id);
        FNV_U(h, c->nodes[i].voter);
        h = fnv(h, c->nodes[i].addr, strlen(c->nodes[i].addr));
    }
    return h;
}

static uint64_t hash_entries(uint64_t h, const struct raft_entry *e, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        FNV_U(h, e[i].term);
        FNV_U(h, e[i].index);
        FNV_U(h, e[i].type);
        FNV_U(h, e[i].len);
        h = fnv(h, e[i].data, e[i].len);
    }
    return h;
}

uint64_t h_hash_update(uint64_t h, int rv, const struct raft_update *u)
{
    FNV_U(h, (int64_t)rv);
    const struct raft_persist *p = &u->persist;
    FNV_U(h, p->seq);
    FNV_U(h, p->has_hard_state);
    FNV_U(h, p->term);
    FNV_U(h, p->vote);
    FNV_U(h, p->truncate_from);
    FNV_U(h, p->n_entries);
    h = hash_entries(h, p->entries, p->n_entries);
    FNV_U(h, p->install_snapshot);
    FNV_U(h, p->snapshot_index);
    FNV_U(h, p->snapshot_term);
    if (p->install_snapshot) {
        h = hash_conf(h, p->snapshot_conf);
    }
    FNV_U(h, u->snapshot_chunk.present);
    FNV_U(h, u->snapshot_chunk.last_index);
    FNV_U(h, u->snapshot_chunk.offset);
    FNV_U(h, u->snapshot_chunk.len);
    h = fnv(h, u->snapshot_chunk.data, u->snapshot_chunk.len);
    FNV_U(h, u->n_msgs);
    for (uint32_t i = 0; i < u->n_msgs; i++) {
        const struct raft_msg *m = &u->msgs[i];
        FNV_U(h, m->type);
        FNV_U(h, m->from);
        FNV_U(h, m->to);
        FNV_U(h, m->term);
        switch (m->type) {
        case RAFT_MSG_APPEND:
            FNV_U(h, m->u.append.prev_index);
            FNV_U(h, m->u.append.prev_term);
            FNV_U(h, m->u.append.commit);
            FNV_U(h, m->u.append.read_ctx);
            FNV_U(h, m->u.append.n_entries);
            h = hash_entries(h, m->u.append.entries, m->u.append.n_entries);
            break;
        case RAFT_MSG_SNAPSHOT:
            FNV_U(h, m->u.snapshot.last_index);
            FNV_U(h, m->u.snapshot.last_term);
            h = hash_conf(h, m->u.snapshot.conf);
            FNV_U(h, m->u.snapshot.size);
            FNV_U(h, m->u.snapshot.offset);
            FNV_U(h, m->u.snapshot.len);
            FNV_U(h, m->u.snapshot.done);
            break;
        case RAFT_MSG_APPEND_RESP:
            FNV_U(h, m->u.append_resp.success);
            FNV_U(h, m->u.append_resp.match_index);
            FNV_U(h, m->u.append_resp.conflict_index);
            FNV_U(h, m->u.append_resp.conflict_term);
            FNV_U(h, m->u.append_resp.last_index);
            FNV_U(h, m->u.append_resp.read_ctx);
            break;
        case RAFT_MSG_VOTE:
            FNV_U(h, m->u.vote.pre);
            FNV_U(h, m->u.vote.transfer);
            FNV_U(h, m->u.vote.last_log_index);
            FNV_U(h, m->u.vote.last_log_term);
            break;
        case RAFT_MSG_VOTE_RESP:
            FNV_U(h, m->u.vote_resp.pre);
            FNV_U(h, m->u.vote_resp.granted);
            break;
        case RAFT_MSG_SNAPSHOT_RESP:
            FNV_U(h, m->u.snapshot_resp.last_index);
            FNV_U(h, m->u.snapshot_resp.next_offset);
            FNV_U(h, m->u.snapshot_resp.done);
            FNV_U(h, m->u.snapshot_resp.rejected);
            break;
        case RAFT_MSG_READ_INDEX:
            FNV_U(h, m->u.read_index.read_id);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            FNV_U(h, m->u.read_index_resp.read_id);
            FNV_U(h, m->u.read_index_resp.index);
            FNV_U(h, m->u.read_index_resp.ok);
            break;
        default:
            break;
        }
    }
    FNV_U(h, u->n_committed);
    h = hash_entries(h, u->committed, u->n_committed);
    FNV_U(h, u->n_reads);
    for (uint32_t i = 0; i < u->n_reads; i++) {
        FNV_U(h, u->reads[i].read_id);
        FNV_U(h, u->reads[i].index);
        FNV_U(h, u->reads[i].ok);
    }
    FNV_U(h, u->proposed_index);
    FNV_U(h, u->proposed_term);
    FNV_U(h, u->snapshot_wanted);
    FNV_U(h, u->role_changed);
    FNV_U(h, u->next_timeout);
    return h;
}

/* ---- disk ---- */

static void disk_truncate(struct h_node *nd, raft_index from)
{
    while (nd->n_log > 0 && nd->log[nd->n_log - 1].index >= from) {
        free((void *)nd->log[--nd->n_log].data);
    }
}

static void disk_drop_upto(struct h_node *nd, raft_index upto)
{
    uint32_t k = 0;
    while (k < nd->n_log && nd->log[k].index <= upto) {
        free((void *)nd->log[k].data);
        k++;
    }
    memmove(nd->log, nd->log + k, (nd->n_log - k) * sizeof *nd->log);
    nd->n_log -= k;
}

static void disk_append(struct h_node *nd, const struct raft_entry *e)
{
    if (nd->n_log > 0) {
        cr_assert_eq(e->index, nd->log[nd->n_log - 1].index + 1, "node %lu: gap in disk log",
                     (unsigned long)nd->id);
    }
    if (nd->n_log == nd->cap_log) {
        nd->cap_log = nd->cap_log ? nd->cap_log * 2 : 64;
        nd->log = realloc(nd->log, nd->cap_log * sizeof *nd->log);
        cr_assert_not_null(nd->log);
    }
    struct raft_entry c = *e;
    c.data = xdup(e->data, e->len);
    nd->log[nd->n_log++] = c;
}

static void sm_restore(struct h_node *nd)
{
    /* Snapshot bytes: hash, count, then filler. */
    if (nd->snap_size >= 16) {
        memcpy(&nd->sm_hash, nd->snap, 8);
        memcpy(&nd->sm_count, nd->snap + 8, 8);
    } else {
        nd->sm_hash = 0;
        nd->sm_count = 0;
    }
    nd->applied = nd->snap_index;
    nd->applied_term = nd->snap_term;
}

static void disk_write(struct h_node *nd, const struct raft_persist *p,
                       const struct raft_conf *conf)
{
    if (p->has_hard_state) {
        cr_assert_geq(p->term, nd->term, "node %lu: term went back", (unsigned long)nd->id);
        nd->term = p->term;
        nd->vote = p->vote;
    }
    if (p->install_snapshot) {
        cr_assert_eq(p->snapshot_index, nd->pending_index);
        free(nd->snap);
        nd->snap = nd->pending;
        nd->snap_size = nd->pending_size;
        nd->pending = NULL;
        nd->pending_size = 0;
        nd->pending_index = 0;
        bool keep = false;
        for (uint32_t i = 0; i < nd->n_log; i++) {
            if (nd->log[i].index == p->snapshot_index && nd->log[i].term == p->snapshot_term) {
                keep = true;
            }
        }
        if (keep) {
            disk_drop_upto(nd, p->snapshot_index);
        } else {
            disk_truncate(nd, 0);
        }
        nd->snap_index = p->snapshot_index;
        nd->snap_term = p->snapshot_term;
        nd->snap_conf = *conf;
        nd->installs++;
        nd->install_seq = p->seq;
    }
    if (p->truncate_from != 0) {
        disk_truncate(nd, p->truncate_from);
    }
    for (uint32_t i = 0; i < p->n_entries; i++) {
        disk_append(nd, &p->entries[i]);
    }
}

static void apply(struct h_node *nd, const struct raft_entry *e)
{
    cr_assert_eq(nd->install_seq, 0,
                 "node %lu hands out entry %lu before its snapshot install (seq %lu) is reported",
                 (unsigned long)nd->id, (unsigned long)e->index, (unsigned long)nd->install_seq);
    cr_assert_eq(e->index, nd->applied + 1, "node %lu applies %lu after %lu", (unsigned long)nd->id,
                 (unsigned long)e->index, (unsigned long)nd->applied);
    if (e->type == RAFT_ENTRY_NORMAL) {
        nd->sm_hash = fnv(nd->sm_hash ^ e->index, e->data, e->len);
        nd->sm_count++;
    }
    nd->applied = e->index;
    nd->applied_term = e->term;
    if (e->index >= nd->cap_applied) {
        uint64_t cap = nd->cap_applied ? nd->cap_applied : 64;
        while (cap <= e->index) {
            cap *= 2;
        }
        nd->applied_terms = realloc(nd->applied_terms, cap * sizeof *nd->applied_terms);
        cr_assert_not_null(nd->applied_terms);
        memset(nd->applied_terms + nd->cap_applied, 0,
               (cap - nd->cap_applied) * sizeof *nd->applied_terms);
        nd->cap_applied = cap;
    }
    nd->applied_terms[e->index] = e->term;
}

/* ---- queue ---- */

static void q_push(struct h_cluster *c, const struct h_qitem *it)
{
    if (c->q_n == c->q_cap) {
        uint32_t cap = c->q_cap ? c->q_cap * 2 : 256;
        struct h_qitem *q = xmalloc(cap * sizeof *q);
        for (uint32_t i = 0; i < c->q_n; i++) {
            q[i] = c->q[(c->q_head + i) % c->q_cap];
        }
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_n) % c->q_cap] = *it;
    c->q_n++;
}

struct h_qitem *h_queue_at(struct h_cluster *c, uint32_t i)
{
    cr_assert_lt(i, c->q_n);
    return &c->q[(c->q_head + i) % c->q_cap];
}

static void item_free(struct h_qitem *it)
{
    free(it->ents);
    free(it->data);
    free(it->conf);
}

static struct h_qitem q_take(struct h_cluster *c, uint32_t i)
{
    struct h_qitem it = *h_queue_at(c, i);
    for (uint32_t k = i; k + 1 < c->q_n; k++) {
        *h_queue_at(c, k) = *h_queue_at(c, k + 1);
    }
    c->q_n--;
    if (c->q_n == 0) {
        c->q_head = 0;
    }
    return it;
}

void h_queue_remove(struct h_cluster *c, uint32_t i)
{
    struct h_qitem it = q_take(c, i);
    item_free(&it);
}

uint32_t h_queued(const struct h_cluster *c, uint8_t type)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->q_n; i++) {
        const struct h_qitem *it = &c->q[(c->q_head + i) % c->q_cap];
        n += !it->persisted && (type == 0 || it->m.type == type);
    }
    return n;
}

void h_drop_all(struct h_cluster *c)
{
    while (c->q_n > 0) {
        h_queue_remove(c, 0);
    }
}

static void enqueue_msg(struct h_cluster *c, struct h_node *from, const struct raft_msg *m)
{
    struct h_qitem it;
    memset(&it, 0, sizeof it);
    it.node = m->to;
    it.m = *m;
    c->msgs_by_type[m->type & 15]++;
    if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries > 0) {
        uint32_t n = m->u.append.n_entries;
        size_t bytes = 0;
        for (uint32_t i = 0; i < n; i++) {
            bytes += m->u.append.entries[i].len;
        }
        it.ents = xmalloc(n * sizeof *it.ents);
        it.data = xmalloc(bytes);
        size_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            it.ents[i] = m->u.append.entries[i];
            if (it.ents[i].len > 0) {
                memcpy(it.data + off, it.ents[i].data, it.ents[i].len);
            }
            it.ents[i].data = it.ents[i].len ? it.data + off : NULL;
            off += it.ents[i].len;
        }
        it.m.u.append.entries = it.ents;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *s = &m->u.snapshot;
        cr_assert_null(s->data, "the core leaves snapshot data to the driver");
        if (s->last_index != from->snap_index || s->offset + s->len > from->snap_size) {
            return; /* the driver no longer has that snapshot: drop */
        }
        it.data = xdup(from->snap + s->offset, s->len);
        it.m.u.snapshot.data = it.data;
        cr_assert_not_null(s->conf);
        it.conf = xdup(s->conf, sizeof *s->conf);
        it.m.u.snapshot.conf = it.conf;
    }
    if (m->to == 0 || m->to >= H_MAX) {
        item_free(&it);
        return;
    }
    q_push(c, &it);
}

/* ---- stepping ---- */

static struct h_node *node(struct h_cluster *c, raft_id id)
{
    cr_assert(id >= 1 && (int)id <= c->n, "bad node id %lu", (unsigned long)id);
    return &c->nodes[id];
}

static void batch_copy(struct h_batch *b, const struct raft_persist *p)
{
    memset(b, 0, sizeof *b);
    b->p = *p;
    if (p->n_entries > 0) {
        b->ents = xmalloc(p->n_entries * sizeof *b->ents);
        for (uint32_t i = 0; i < p->n_entries; i++) {
            b->ents[i] = p->entries[i];
            b->ents[i].data = xdup(p->entries[i].data, p->entries[i].len);
        }
    }
    b->p.entries = b->ents;
    if (p->install_snapshot) {
        b->conf = *p->snapshot_conf;
    }
    b->p.snapshot_conf = &b->conf;
}

static void batch_free(struct h_batch *b)
{
    for (uint32_t i = 0; i < b->p.n_entries; i++) {
        free((void *)b->ents[i].data);
    }
    free(b->ents);
}

static void handle_update(struct h_cluster *c, struct h_node *nd, const struct raft_update *u)
{
    if (u->snapshot_chunk.present) {
        const struct raft_snapshot_chunk *ch = &u->snapshot_chunk;
        if (ch->offset == 0) {
            free(nd->pending);
            nd->pending = NULL;
            nd->pending_size = 0;
            nd->pending_index = ch->last_index;
        }
        cr_assert_eq(ch->last_index, nd->pending_index);
        cr_assert_eq(ch->offset, nd->pending_size, "chunk out of order");
        nd->pending = realloc(nd->pending, nd->pending_size + ch->len + 1);
        cr_assert_not_null(nd->pending);
        if (ch->len > 0) {
            memcpy(nd->pending + nd->pending_size, ch->data, ch->len);
        }
        nd->pending_size += ch->len;
        nd->chunks_written++;
    }
    if (u->persist.seq != 0) {
        if (nd->hold_persist) {
            nd->held = realloc(nd->held, (nd->n_held + 1) * sizeof *nd->held);
            cr_assert_not_null(nd->held);
            batch_copy(&nd->held[nd->n_held++], &u->persist);
        } else {
            disk_write(nd, &u->persist, u->persist.snapshot_conf);
            struct h_qitem it;
            memset(&it, 0, sizeof it);
            it.persisted = true;
            it.node = nd->id;
            it.seq = u->persist.seq;
            q_push(c, &it);
        }
    }
    for (uint32_t i = 0; i < u->n_msgs; i++) {
        cr_assert_eq(u->msgs[i].from, nd->id);
        enqueue_msg(c, nd, &u->msgs[i]);
    }
    if (u->n_committed > 0) {
        nd->n_committed_updates++;
    }
    for (uint32_t i = 0; i < u->n_committed; i++) {
        apply(nd, &u->committed[i]);
    }
    for (uint32_t i = 0; i < u->n_reads && nd->n_reads < 256; i++) {
        nd->reads[nd->n_reads++] = u->reads[i];
    }
    if (u->snapshot_wanted) {
        nd->snapshots_wanted++;
    }
    nd->next_timeout = u->next_timeout;
}

int h_step(struct h_cluster *c, raft_id id, struct raft_event *ev)
{
    struct h_node *nd = node(c, id);
    cr_assert(nd->up, "node %lu is down", (unsigned long)id);
    struct raft_update u;
    ev->now = c->now;
    int rv = raft_step(nd->r, ev, &u);
    nd->last_rv = rv;
    c->trace = h_hash_update(fnv(c->trace, &id, sizeof id), rv, &u);
    c->steps++;
    handle_update(c, nd, &u);
    if (u.snapshot_wanted && nd->auto_snapshot) {
        h_snapshot(c, id);
    }
    return rv;
}

int h_tick(struct h_cluster *c, raft_id id)
{
    struct raft_event ev = {.type = RAFT_EV_TICK};
    return h_step(c, id, &ev);
}

int h_propose(struct h_cluster *c, raft_id id, const char *data)
{
    struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = (uint32_t)strlen(data), .data = data};
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.u.propose.n = 1;
    ev.u.propose.entries = &e;
    return h_step(c, id, &ev);
}

int h_read(struct h_cluster *c, raft_id id, uint64_t read_id)
{
    struct raft_event ev = {.type = RAFT_EV_READ};
    ev.u.read.read_id = read_id;
    return h_step(c, id, &ev);
}

int h_conf_change(struct h_cluster *c, raft_id id, uint8_t op, raft_id target)
{
    char addr[32];
    snprintf(addr, sizeof addr, "node-%lu", (unsigned long)target);
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    ev.u.conf_change.op = op;
    ev.u.conf_change.id = target;
    ev.u.conf_change.addr = op == RAFT_CONF_ADD ? addr : NULL;
    return h_step(c, id, &ev);
}

int h_transfer(struct h_cluster *c, raft_id id, raft_id target)
{
    struct raft_event ev = {.type = RAFT_EV_TRANSFER};
    ev.u.transfer.target = target;
    return h_step(c, id, &ev);
}

int h_receive(struct h_cluster *c, raft_id id, const struct raft_msg *m)
{
    struct raft_event ev = {.type = RAFT_EV_RECEIVE};
    ev.u.receive.msg = m;
    return h_step(c, id, &ev);
}

int h_persisted(struct h_cluster *c, raft_id id, uint64_t seq)
{
    struct h_node *nd = node(c, id);
    if (nd->install_seq != 0 && seq >= nd->install_seq) {
        /* The driver contract (raft.h): restore from the installed snapshot, then step. */
        sm_restore(nd);
        nd->install_seq = 0;
    }
    struct raft_event ev = {.type = RAFT_EV_PERSISTED};
    ev.u.persisted.seq = seq;
    return h_step(c, id, &ev);
}

static void deliver_item(struct h_cluster *c, struct h_qitem *it)
{
    struct h_node *nd = &c->nodes[it->node];
    if (it->node == 0 || (int)it->node > c->n || !nd->up) {
        return;
    }
    if (it->persisted) {
        h_persisted(c, it->node, it->seq);
        return;
    }
    if (c->cut[it->m.from < H_MAX ? it->m.from : 0][it->node]) {
        return;
    }
    if (c->filter != NULL && !c->filter(c->filter_arg, &it->m)) {
        return;
    }
    h_receive(c, it->node, &it->m);
}

void h_deliver_one(struct h_cluster *c, uint32_t i)
{
    struct h_qitem it = q_take(c, i);
    deliver_item(c, &it);
    item_free(&it);
}

void h_deliver(struct h_cluster *c)
{
    for (uint64_t guard = 0; c->q_n > 0; guard++) {
        cr_assert_lt(guard, 50000000, "message storm");
        h_deliver_one(c, 0);
    }
}

void h_run(struct h_cluster *c, raft_time ms)
{
    raft_time end = c->now + ms;
    h_deliver(c);
    for (;;) {
        raft_time t = UINT64_MAX;
        for (int i = 1; i <= c->n; i++) {
            if (c->nodes[i].up && c->nodes[i].next_timeout < t) {
                t = c->nodes[i].next_timeout;
            }
        }
        if (t > end) {
            break;
        }
        if (t > c->now) {
            c->now = t;
        }
        for (int i = 1; i <= c->n; i++) {
            if (c->nodes[i].up && c->nodes[i].next_timeout <= c->now) {
                h_tick(c, (raft_id)i);
            }
        }
        h_deliver(c);
    }
    c->now = end;
}

raft_id h_leader(const struct h_cluster *c)
{
    raft_id best = 0;
    raft_term term = 0;
    for (int i = 1; i <= c->n; i++) {
        const struct h_node *nd = &c->nodes[i];
        if (!nd->up) {
            continue;
        }
        struct raft_status s;
        raft_get_status(nd->r, &s);
        if (s.role == RAFT_LEADER && s.term >= term) {
            best = (raft_id)i;
            term = s.term;
        }
    }
    return best;
}

raft_id h_elect(struct h_cluster *c, raft_time ms)
{
    raft_time end = c->now + ms;
    while (c->now < end) {
        raft_id l = h_leader(c);
        if (l != 0) {
            return l;
        }
        h_run(c, 1);
    }
    return h_leader(c);
}

void h_cut(struct h_cluster *c, raft_id a, raft_id b, bool cut)
{
    c->cut[a][b] = cut;
    c->cut[b][a] = cut;
}

void h_isolate(struct h_cluster *c, raft_id id, bool cut)
{
    for (int i = 1; i <= c->n; i++) {
        if ((raft_id)i != id) {
            h_cut(c, id, (raft_id)i, cut);
        }
    }
}

void h_hold(struct h_cluster *c, raft_id id, bool hold)
{
    node(c, id)->hold_persist = hold;
}

void h_flush(struct h_cluster *c, raft_id id)
{
    struct h_node *nd = node(c, id);
    if (nd->n_held == 0) {
        return;
    }
    uint64_t seq = 0;
    for (uint32_t i = 0; i < nd->n_held; i++) {
        disk_write(nd, &nd->held[i].p, &nd->held[i].conf);
        seq = nd->held[i].p.seq;
        batch_free(&nd->held[i]);
    }
    nd->n_held = 0;
    h_persisted(c, id, seq);
}

int h_snapshot(struct h_cluster *c, raft_id id)
{
    struct h_node *nd = node(c, id);
    if (nd->applied <= nd->snap_index) {
        return RAFT_E_INVAL;
    }
    uint64_t size = 16 + nd->snap_fill;
    uint8_t *s = xmalloc(size);
    memcpy(s, &nd->sm_hash, 8);
    memcpy(s + 8, &nd->sm_count, 8);
    for (uint64_t i = 16; i < size; i++) {
        s[i] = (uint8_t)(i * 31 + nd->applied);
    }
    struct raft_status st = h_status(c, id);
    free(nd->snap);
    nd->snap = s;
    nd->snap_size = size;
    nd->snap_index = nd->applied;
    nd->snap_term = nd->applied_term;
    nd->snap_conf = st.conf; /* only used when booting; applied conf is close enough here */
    struct raft_event ev = {.type = RAFT_EV_SNAPSHOT_TAKEN};
    ev.u.snapshot_taken.index = nd->applied;
    ev.u.snapshot_taken.term = nd->applied_term;
    ev.u.snapshot_taken.size = size;
    return h_step(c, id, &ev);
}

static void boot(struct h_cluster *c, struct h_node *nd)
{
    struct raft_boot b;
    memset(&b, 0, sizeof b);
    b.term = nd->term;
    b.vote = nd->vote;
    b.snapshot_index = nd->snap_index;
    b.snapshot_term = nd->snap_term;
    b.snapshot_size = nd->snap_size;
    b.conf = nd->snap_index ? nd->snap_conf : nd->boot_conf;
    b.n_entries = nd->n_log;
    b.entries = nd->log;
    b.applied = nd->snap_index;
    sm_restore(nd);
    nd->install_seq = 0;
    int rv = raft_new(&nd->cfg, &b, c->now, &nd->r);
    cr_assert_eq(rv, 0, "raft_new: %d", rv);
    nd->up = true;
    nd->next_timeout = c->now;
}

static void init(struct h_cluster *c, int n, int members, const bool *voter, uint64_t seed,
                 h_config_fn cfg)
{
    memset(c, 0, sizeof *c);
    cr_assert(n >= 1 && n < H_MAX);
    c->n = n;
    c->now = 1000;
    c->trace = UINT64_C(0xcbf29ce484222325);
    struct raft_conf conf;
    memset(&conf, 0, sizeof conf);
    conf.n = (uint32_t)members;
    for (int i = 0; i < members; i++) {
        conf.nodes[i].id = (raft_id)(i + 1);
        conf.nodes[i].voter = voter[i];
        snprintf(conf.nodes[i].addr, RAFT_ADDR_MAX, "node-%d", i + 1);
    }
    for (int i = 1; i <= n; i++) {
        struct h_node *nd = &c->nodes[i];
        nd->id = (raft_id)i;
        raft_config_default(&nd->cfg);
        nd->cfg.id = (raft_id)i;
        nd->cfg.seed = seed;
        if (cfg != NULL) {
            cfg(&nd->cfg);
        }
        nd->boot_conf = conf;
        nd->snap_fill = 100;
        boot(c, nd);
    }
}

void h_init_conf(struct h_cluster *c, int n, const bool *voter, uint64_t seed, h_config_fn cfg)
{
    init(c, n, n, voter, seed, cfg);
}

void h_init_join(struct h_cluster *c, int n, int members, uint64_t seed, h_config_fn cfg)
{
    bool voter[H_MAX];
    for (int i = 0; i < H_MAX; i++) {
        voter[i] = true;
    }
    init(c, n, members, voter, seed, cfg);
}

void h_init(struct h_cluster *c, int n, uint64_t seed, h_config_fn cfg)
{
    h_init_join(c, n, n, seed, cfg);
}

static void node_free(struct h_node *nd)
{
    raft_free(nd->r);
    nd->r = NULL;
    for (uint32_t i = 0; i < nd->n_held; i++) {
        batch_free(&nd->held[i]);
    }
    free(nd->held);
    nd->held = NULL;
    nd->n_held = 0;
}

void h_crash(struct h_cluster *c, raft_id id)
{
    struct h_node *nd = node(c, id);
    node_free(nd);
    nd->up = false;
    free(nd->pending);
    nd->pending = NULL;
    nd->pending_size = 0;
}

void h_restart(struct h_cluster *c, raft_id id)
{
    struct h_node *nd = node(c, id);
    cr_assert(!nd->up);
    /* The state machine is rebuilt from the snapshot; the log is replayed as committed. */
    free(nd->applied_terms);
    nd->applied_terms = NULL;
    nd->cap_applied = 0;
    boot(c, nd);
}

void h_boot_fresh(struct h_cluster *c, raft_id id, const struct raft_conf *conf)
{
    struct h_node *nd = node(c, id);
    if (nd->up) {
        h_crash(c, id);
    }
    disk_truncate(nd, 0);
    free(nd->snap);
    nd->snap = NULL;
    nd->snap_size = 0;
    nd->snap_index = 0;
    nd->snap_term = 0;
    memset(&nd->snap_conf, 0, sizeof nd->snap_conf);
    nd->term = 0;
    nd->vote = 0;
    nd->installs = 0;
    nd->chunks_written = 0;
    nd->boot_conf = *conf;
    h_restart(c, id);
}

void h_free(struct h_cluster *c)
{
    h_drop_all(c);
    free(c->q);
    for (int i = 1; i <= c->n; i++) {
        struct h_node *nd = &c->nodes[i];
        node_free(nd);
        disk_truncate(nd, 0);
        free(nd->log);
        free(nd->snap);
        free(nd->pending);
        free(nd->applied_terms);
    }
}

struct raft_status h_status(const struct h_cluster *c, raft_id id)
{
    struct raft_status s;
    raft_get_status(c->nodes[id].r, &s);
    return s;
}

void h_check_applied(const struct h_cluster *c)
{
    for (int a = 1; a <= c->n; a++) {
        for (int b = a + 1; b <= c->n; b++) {
            const struct h_node *x = &c->nodes[a], *y = &c->nodes[b];
            uint64_t n = x->cap_applied < y->cap_applied ? x->cap_applied : y->cap_applied;
            for (uint64_t i = 1; i < n; i++) {
                if (x->applied_terms[i] && y->applied_terms[i]) {
                    cr_assert_eq(x->applied_terms[i], y->applied_terms[i],
                                 "nodes %d and %d applied different terms at %lu", a, b,
                                 (unsigned long)i);
                }
            }
        }
    }
}
