/* Durability tracking and held messages (see persist.h). */
#include "raft/persist.h"

#include <stdlib.h>
#include <string.h>

#include "raft/update.h"

int raft__persist_begin(struct raft *r)
{
    return raft__grow((void **)&r->batches, &r->cap_batches, r->n_batches + 1, sizeof *r->batches);
}

void raft__persist_end(struct raft *r, struct raft_persist *out)
{
    struct raft__step *st = &r->st;
    bool ents = st->ent_first <= st->ent_last;
    memset(out, 0, sizeof *out);
    if (!st->hs_dirty && st->truncate_from == 0 && !ents && !st->install) {
        return;
    }
    out->seq = st->seq;
    r->last_seq = st->seq;
    out->has_hard_state = st->hs_dirty;
    out->term = r->term;
    out->vote = r->vote;
    out->truncate_from = st->truncate_from;
    if (ents) {
        /* raft__persist_reserve made room when the entries were appended. */
        uint32_t n = (uint32_t)(st->ent_last - st->ent_first + 1);
        for (uint32_t i = 0; i < n; i++) {
            st->pents[i] = *raft__log_get(&r->log, st->ent_first + i);
        }
        out->n_entries = n;
        out->entries = st->pents;
    }
    if (st->install) {
        out->install_snapshot = true;
        out->snapshot_index = r->snap_index;
        out->snapshot_term = r->snap_term;
        out->snapshot_conf = &r->snap_conf;
    }
    struct raft__batch *b = &r->batches[r->n_batches++];
    b->seq = st->seq;
    b->last = raft__log_last(&r->log);
    b->cap = UINT64_MAX;
}

int raft__persist_reserve(struct raft *r, uint64_t more)
{
    struct raft__step *st = &r->st;
    uint64_t have = st->ent_first <= st->ent_last ? st->ent_last - st->ent_first + 1 : 0;
    if (have + more > UINT32_MAX) {
        return RAFT_E_NOMEM;
    }
    return raft__grow((void **)&st->pents, &st->cap_pents, (uint32_t)(have + more),
                      sizeof *st->pents);
}

void raft__set_term(struct raft *r, raft_term term)
{
    if (term == r->term) {
        return;
    }
    r->term = term;
    r->vote = 0;
    r->st.hs_dirty = true;
    r->hs_seq = r->st.seq;
    raft__held_drop_stale(r);
}

void raft__set_vote(struct raft *r, raft_id vote)
{
    if (vote == r->vote) {
        return;
    }
    r->vote = vote;
    r->st.hs_dirty = true;
    r->hs_seq = r->st.seq;
}

bool raft__hard_state_durable(const struct raft *r)
{
    return r->persisted_seq >= r->hs_seq;
}

void raft__persist_appended(struct raft *r, raft_index index)
{
    struct raft__step *st = &r->st;
    if (st->ent_first > st->ent_last) {
        st->ent_first = index;
    }
    st->ent_last = index;
}

/* Nothing from index on matches memory any more: cap what older batches will report, and drop
 * held acknowledgements that covered it. */
static void invalidate_from(struct raft *r, raft_index from)
{
    raft_index cap = from - 1;
    for (uint32_t i = 0; i < r->n_batches; i++) {
        if (r->batches[i].cap > cap) {
            r->batches[i].cap = cap;
        }
    }
    if (r->persisted > cap) {
        r->persisted = cap;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n_held; i++) {
        if (r->held[i].need_index < from) {
            r->held[k++] = r->held[i];
        }
    }
    r->n_held = k;
}

void raft__persist_truncated(struct raft *r, raft_index from)
{
    struct raft__step *st = &r->st;
    if (st->ent_first <= st->ent_last && from <= st->ent_last) {
        if (from > st->ent_first) {
            st->ent_last = from - 1;
        } else {
            st->ent_first = 1;
            st->ent_last = 0;
        }
    }
    if (st->ent_first > st->ent_last && (st->truncate_from == 0 || from < st->truncate_from)) {
        /* The disk may hold entries from older batches at from or later. */
        st->truncate_from = from;
    }
    invalidate_from(r, from);
}

void raft__persist_installed(struct raft *r, raft_index index, bool keep_log)
{
    r->st.install = true;
    r->install_seq = r->st.seq;
    r->install_index = index;
    if (!keep_log) {
        invalidate_from(r, index);
    }
}

int raft__persisted(struct raft *r, uint64_t seq)
{
    if (seq > r->last_seq) {
        return RAFT_E_INVAL;
    }
    if (seq <= r->persisted_seq) {
        return 0;
    }
    r->persisted_seq = seq;
    r->held_dirty = true;
    uint32_t k = 0;
    while (k < r->n_batches && r->batches[k].seq <= seq) {
        const struct raft__batch *b = &r->batches[k];
        raft_index upto = b->last < b->cap ? b->last : b->cap;
        if (upto > r->persisted) {
            r->persisted = upto;
        }
        k++;
    }
    memmove(r->batches, r->batches + k, (r->n_batches - k) * sizeof *r->batches);
    r->n_batches -= k;
    return 0;
}

static bool ready(const struct raft *r, uint64_t need_seq, raft_index need_index)
{
    return r->persisted_seq >= need_seq && r->persisted >= need_index;
}

void raft__hold(struct raft *r, const struct raft_msg *m, uint64_t need_seq, raft_index need_index)
{
    if (ready(r, need_seq, need_index)) {
        raft__msg_push(r, m);
        return;
    }
    if (raft__grow((void **)&r->held, &r->cap_held, r->n_held + 1, sizeof *r->held) != 0) {
        return; /* as if the message were lost */
    }
    struct raft__held *h = &r->held[r->n_held++];
    h->msg = *m;
    h->need_seq = need_seq;
    h->need_index = need_index;
}

void raft__held_release(struct raft *r)
{
    /* A message held back was not ready when it was held, and only a persisted seq reported
     * since can make it ready (the durable index grows only with one). */
    if (!r->held_dirty) {
        return;
    }
    r->held_dirty = false;
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n_held; i++) {
        const struct raft__held *h = &r->held[i];
        if (ready(r, h->need_seq, h->need_index)) {
            raft__msg_push(r, &h->msg);
        } else if (k++ != i) {
            r->held[k - 1] = *h;
        }
    }
    r->n_held = k;
}

void raft__held_drop_stale(struct raft *r)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n_held; i++) {
        if (r->held[i].msg.term == r->term) {
            r->held[k++] = r->held[i];
        }
    }
    r->n_held = k;
}
