/* Building the update of a step (see update.h). */
#include "raft/update.h"

#include <stdlib.h>
#include <string.h>

#include "raft/persist.h"
#include "raft/replication.h"

#define NO_ENTRIES UINT32_MAX

int raft__grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    uint32_t c = *cap ? *cap : 8;
    while (c < need) {
        if (c > UINT32_MAX / 2) {
            return RAFT_E_NOMEM;
        }
        c *= 2;
    }
    void *np = realloc(*p, (size_t)c * elem);
    if (np == NULL) {
        return RAFT_E_NOMEM;
    }
    *p = np;
    *cap = c;
    return 0;
}

int raft__step_begin(struct raft *r)
{
    struct raft__step *st = &r->st;
    raft__trash_empty(&r->trash);
    st->seq = r->last_seq + 1;
    st->hs_dirty = false;
    st->truncate_from = 0;
    st->ent_first = 1;
    st->ent_last = 0;
    st->install = false;
    st->n_msgs = 0;
    st->n_ents = 0;
    st->n_reads = 0;
    memset(&st->chunk, 0, sizeof st->chunk);
    st->proposed_index = 0;
    st->proposed_term = 0;
    st->role0 = r->role;
    st->term0 = r->term;
    st->leader0 = r->leader;
    return raft__persist_begin(r);
}

void raft__msg_init(const struct raft *r, struct raft_msg *m, uint8_t type, raft_id to)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
}

static struct raft_msg *msg_slot(struct raft *r)
{
    struct raft__step *st = &r->st;
    uint32_t cap = st->cap_msgs;
    if (raft__grow((void **)&st->msgs, &cap, st->n_msgs + 1, sizeof *st->msgs) != 0) {
        return NULL;
    }
    uint32_t cap2 = st->cap_msgs;
    if (raft__grow((void **)&st->msg_off, &cap2, cap, sizeof *st->msg_off) != 0) {
        return NULL;
    }
    st->cap_msgs = cap;
    st->msg_off[st->n_msgs] = NO_ENTRIES;
    return &st->msgs[st->n_msgs++];
}

struct raft_msg *raft__msg(struct raft *r, uint8_t type, raft_id to)
{
    struct raft_msg *m = msg_slot(r);
    if (m != NULL) {
        raft__msg_init(r, m, type, to);
    }
    return m;
}

void raft__msg_push(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *slot = msg_slot(r);
    if (slot != NULL) {
        *slot = *m;
    }
}

struct raft_msg *raft__msg_append(struct raft *r, raft_id to, raft_index first, uint32_t n)
{
    struct raft__step *st = &r->st;
    if (raft__grow((void **)&st->ents, &st->cap_ents, st->n_ents + n, sizeof *st->ents) != 0) {
        return NULL;
    }
    struct raft_msg *m = raft__msg(r, RAFT_MSG_APPEND, to);
    if (m == NULL) {
        return NULL;
    }
    if (n > 0) {
        st->msg_off[st->n_msgs - 1] = st->n_ents;
        for (uint32_t i = 0; i < n; i++) {
            st->ents[st->n_ents++] = *raft__log_get(&r->log, first + i);
        }
    }
    m->u.append.n_entries = n;
    return m;
}

void raft__emit_read(struct raft *r, uint64_t read_id, raft_index index, bool ok)
{
    struct raft__step *st = &r->st;
    if (raft__grow((void **)&st->reads, &st->cap_reads, st->n_reads + 1, sizeof *st->reads) != 0) {
        return;
    }
    struct raft_read *rd = &st->reads[st->n_reads++];
    memset(rd, 0, sizeof *rd);
    rd->read_id = read_id;
    rd->index = index;
    rd->ok = ok;
}

static raft_time next_timeout(const struct raft *r)
{
    raft_time t;
    if (r->role == RAFT_LEADER) {
        t = r->hb_deadline;
        if (r->cfg.check_quorum) {
            raft_time q = raft__quorum_deadline(r);
            t = q < t ? q : t;
        }
        if (r->transfer_target != 0 && r->transfer_deadline < t) {
            t = r->transfer_deadline;
        }
    } else {
        t = r->election_deadline;
    }
    if (r->n_reads > 0 && r->reads[0].forwarded && r->reads[0].deadline < t) {
        t = r->reads[0].deadline; /* the oldest forwarded read expires first */
    }
    return t;
}

void raft__step_end(struct raft *r, struct raft_update *u)
{
    struct raft__step *st = &r->st;
    raft__held_release(r);
    memset(u, 0, sizeof *u);
    raft__persist_end(r, &u->persist);

    /* Committed and locally persisted entries, each handed out once, in order; none after a
     * snapshot whose install is not yet reported persisted (the driver restores its state
     * machine from the snapshot on that report, raft.h). */
    raft_index hi = r->commit < r->persisted ? r->commit : r->persisted;
    if (r->install_seq > r->persisted_seq && hi > r->install_index) {
        hi = r->install_index;
    }
    uint32_t committed_off = st->n_ents;
    if (hi > r->applied && hi - r->applied <= UINT32_MAX - st->n_ents &&
        raft__grow((void **)&st->ents, &st->cap_ents, st->n_ents + (uint32_t)(hi - r->applied),
                   sizeof *st->ents) == 0) {
        for (raft_index i = r->applied + 1; i <= hi; i++) {
            st->ents[st->n_ents++] = *raft__log_get(&r->log, i);
        }
        u->n_committed = (uint32_t)(hi - r->applied);
        u->committed = st->ents + committed_off;
        r->applied = hi;
    }

    /* Ask for a snapshot once per snapshot_threshold applied entries. */
    if (r->applied - r->snap_index >= r->cfg.snapshot_threshold &&
        (r->snap_asked_at == 0 || r->applied - r->snap_asked_at >= r->cfg.snapshot_threshold)) {
        u->snapshot_wanted = true;
        r->snap_asked_at = r->applied;
    }

    for (uint32_t i = 0; i < st->n_msgs; i++) {
        if (st->msg_off[i] != NO_ENTRIES) {
            st->msgs[i].u.append.entries = st->ents + st->msg_off[i];
        }
    }
    u->n_msgs = st->n_msgs;
    u->msgs = st->n_msgs ? st->msgs : NULL;
    u->n_reads = st->n_reads;
    u->reads = st->n_reads ? st->reads : NULL;
    u->snapshot_chunk = st->chunk;
    u->proposed_index = st->proposed_index;
    u->proposed_term = st->proposed_term;
    u->role_changed = st->role0 != r->role || st->term0 != r->term || st->leader0 != r->leader;
    u->next_timeout = next_timeout(r);
}
