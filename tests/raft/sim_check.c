/* The simulator's safety checks (Raft paper Figure 3 / thesis Figure 3.2): Election Safety, Log
 * Matching, Leader Completeness, State Machine Safety, acknowledged writes staying committed, and
 * the driver contract of raft.h (persist before send, apply only what is persisted; these last
 * only when sim_opts.contract_checks). */
#include "tests/raft/sim_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Grows *arr (elements of size sz, capacity *cap) to hold index `need`. */
static bool grow(struct sim *s, void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need < *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c <= need)
        c *= 2;
    void *p = realloc(*arr, c * sz);
    if (p == NULL) {
        sim_fail(s, "out of memory (checker)");
        return false;
    }
    memset((char *)p + *cap * sz, 0, (c - *cap) * sz);
    *arr = p;
    *cap = c;
    return true;
}

void check_status(struct sim *s, struct sim_node *n, const struct sim_brief *prev)
{
    const struct raft_status *st = &n->st;
    if (st->id != n->id)
        sim_fail(s, "n%" PRIu64 ": status reports id %" PRIu64, n->id, st->id);
    if (st->term < prev->term)
        sim_fail(s, "n%" PRIu64 ": term went back from %" PRIu64 " to %" PRIu64, n->id, prev->term,
                 st->term);
    if (st->commit_index < prev->commit_index)
        sim_fail(s, "n%" PRIu64 ": commit index went back from %" PRIu64 " to %" PRIu64, n->id,
                 prev->commit_index, st->commit_index);
    if (st->role != prev->role || st->term != prev->term || st->leader != prev->leader)
        sim_trace(s,
                  "n%" PRIu64 " %s -> %s term %" PRIu64 " leader n%" PRIu64 " (last %" PRIu64
                  " commit %" PRIu64 ")",
                  n->id, raft_role_name(prev->role), raft_role_name(st->role), st->term, st->leader,
                  st->last_index, st->commit_index);
    if (st->role != RAFT_LEADER)
        return;
    /* Election Safety: at most one leader per term, over the whole run (Raft §5.2). */
    if (!grow(s, (void **)&s->leader_of_term, &s->n_leader_of_term, st->term, sizeof(raft_id)))
        return;
    raft_id *l = &s->leader_of_term[st->term];
    if (*l == 0) {
        *l = n->id;
        s->n_elections++;
    } else if (*l != n->id) {
        sim_fail(s,
                 "Election Safety: n%" PRIu64 " and n%" PRIu64 " are both leaders of term %" PRIu64,
                 *l, n->id, st->term);
    }
    if (prev->role != RAFT_LEADER || prev->term != st->term)
        n->new_leader = true;
}

/* Leader Completeness (Raft §5.4): a leader holds every entry committed before its term. */
void check_leader_completeness(struct sim *s, struct sim_node *n)
{
    const struct sim_mlog *l = &n->mlog;
    for (raft_index i = 1; i <= s->max_committed; i++) {
        const struct sim_committed *c = &s->committed[i];
        /* Entries perhaps committed in this term or a later one (a leader elected late, with
         * votes delayed) need not be here yet. */
        if (c->term == 0 || c->commit_term_max >= n->st.term || i < l->base)
            continue;
        if (i == l->base) {
            if (l->base_term != c->term)
                sim_fail(s,
                         "Leader Completeness: n%" PRIu64 " (leader of term %" PRIu64
                         ") has snapshot %" PRIu64 "/%" PRIu64 " but %" PRIu64 "/%" PRIu64
                         " was committed",
                         n->id, n->st.term, l->base, l->base_term, i, c->term);
            continue;
        }
        if (i > mlog_last(l)) {
            sim_fail(s,
                     "Leader Completeness: n%" PRIu64 " (leader of term %" PRIu64
                     ") lacks committed entry %" PRIu64 "/%" PRIu64 " (its log ends at %" PRIu64
                     ")",
                     n->id, n->st.term, i, c->term, mlog_last(l));
            return;
        }
        const struct sim_mentry *e = &l->e[i - l->base - 1];
        if (e->term != c->term || e->hash != c->hash) {
            sim_fail(s,
                     "Leader Completeness: n%" PRIu64 " (leader of term %" PRIu64 ") has %" PRIu64
                     "/%" PRIu64 " where %" PRIu64 "/%" PRIu64 " was committed",
                     n->id, n->st.term, i, e->term, i, c->term);
            return;
        }
    }
}

/* Log Matching (Raft §5.3): an (index, term) names one entry, which always follows the same
 * term; by induction two logs with an equal entry are equal up to it. */
void check_log_entry(struct sim *s, struct sim_node *n, raft_index index, raft_term term,
                     raft_term prev_term, uint64_t hash)
{
    if (prev_term > term)
        sim_fail(s, "n%" PRIu64 ": entry %" PRIu64 " has term %" PRIu64 " after term %" PRIu64,
                 n->id, index, term, prev_term);
    if (!grow(s, (void **)&s->seen, &s->cap_seen, index, sizeof(*s->seen)))
        return;
    struct sim_seen_list *list = &s->seen[index];
    for (uint32_t k = 0; k < list->n; k++) {
        struct sim_seen *r = &list->recs[k];
        if (r->term != term)
            continue;
        if (r->hash != hash)
            sim_fail(s,
                     "Log Matching: n%" PRIu64 " holds a different entry %" PRIu64 "/%" PRIu64
                     " than another log",
                     n->id, index, term);
        else if (prev_term != 0 && r->prev_term != 0 && prev_term != r->prev_term)
            sim_fail(s,
                     "Log Matching: n%" PRIu64 "'s entry %" PRIu64 "/%" PRIu64
                     " follows term %" PRIu64 ", another log's follows term %" PRIu64,
                     n->id, index, term, prev_term, r->prev_term);
        if (r->prev_term == 0)
            r->prev_term = prev_term;
        return;
    }
    struct sim_seen *recs = realloc(list->recs, (list->n + 1) * sizeof(*recs));
    if (recs == NULL) {
        sim_fail(s, "out of memory (checker)");
        return;
    }
    recs[list->n++] = (struct sim_seen){.term = term, .prev_term = prev_term, .hash = hash};
    list->recs = recs;
}

static bool disk_has(const struct sim_disk *d, raft_index index, raft_term term)
{
    if (index <= d->snap.index)
        return true;
    if (d->n_log == 0 || index < d->log[0].index)
        return false;
    size_t k = (size_t)(index - d->log[0].index);
    return k < d->n_log && d->log[k].term == term;
}

static void new_commit(struct sim *s, const struct raft_entry *e, uint64_t hash,
                       raft_term commit_term_max)
{
    if (e->type == RAFT_ENTRY_CONF && e->index > s->conf_index) {
        struct raft_conf c;
        if (raft_conf_decode(e->data, e->len, &c) == 0) {
            s->conf = c;
            s->conf_index = e->index;
            char members[128] = "";
            for (uint32_t i = 0; i < c.n; i++) {
                size_t len = strlen(members);
                snprintf(members + len, sizeof(members) - len, " n%" PRIu64 "%s", c.nodes[i].id,
                         c.nodes[i].voter ? "" : "(non-voter)");
                if (c.nodes[i].id <= SIM_MAX_NODES)
                    s->nodes[c.nodes[i].id].was_member = true;
            }
            sim_trace(s, "configuration %" PRIu64 " committed:%s", e->index, members);
        }
    }
    /* Leader Completeness for the leaders elected before anyone applied this entry. */
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        struct sim_node *l = &s->nodes[id];
        if (l->state != SIM_UP || l->st.role != RAFT_LEADER || l->st.term <= commit_term_max ||
            e->index <= l->mlog.base)
            continue;
        if (e->index > mlog_last(&l->mlog) ||
            l->mlog.e[e->index - l->mlog.base - 1].term != e->term ||
            l->mlog.e[e->index - l->mlog.base - 1].hash != hash)
            sim_fail(s,
                     "Leader Completeness: n%" PRIu64 " (leader of term %" PRIu64
                     ") does not hold committed entry %" PRIu64 "/%" PRIu64,
                     id, l->st.term, e->index, e->term);
    }
}

void check_apply(struct sim *s, struct sim_node *n, const struct raft_entry *e, uint64_t hash)
{
    const struct sim_mlog *l = &n->mlog;
    if (e->index > l->base &&
        (e->index > mlog_last(l) || l->e[e->index - l->base - 1].term != e->term ||
         l->e[e->index - l->base - 1].hash != hash))
        sim_fail(s, "n%" PRIu64 " applies %" PRIu64 "/%" PRIu64 ", not the entry its log holds",
                 n->id, e->index, e->term);
    if (s->o.contract_checks && !disk_has(&n->disk, e->index, e->term))
        sim_fail(s, "n%" PRIu64 " applies %" PRIu64 "/%" PRIu64 " before it is persisted locally",
                 n->id, e->index, e->term);
    /* State Machine Safety (Raft §5.4.3): one entry per index, on every node. */
    if (!grow(s, (void **)&s->committed, &s->cap_committed, e->index, sizeof(*s->committed)))
        return;
    struct sim_committed *c = &s->committed[e->index];
    if (c->term == 0) {
        *c = (struct sim_committed){.term = e->term,
                                    .type = e->type,
                                    .hash = hash,
                                    .first_node = n->id,
                                    .commit_term_max = n->st.term};
        if (e->index > s->max_committed)
            s->max_committed = e->index;
        new_commit(s, e, hash, n->st.term);
    } else if (c->term == e->term && c->hash == hash && c->type == e->type) {
        if (n->st.term < c->commit_term_max)
            c->commit_term_max = n->st.term;
    } else {
        sim_fail(s,
                 "State Machine Safety: n%" PRIu64 " applies %" PRIu64 "/%" PRIu64
                 " where n%" PRIu64 " applied %" PRIu64 "/%" PRIu64,
                 n->id, e->index, e->term, c->first_node, e->index, c->term);
    }
}

void check_msg_out(struct sim *s, struct sim_node *n, const struct raft_msg *m)
{
    const struct sim_disk *d = &n->disk;
    if (m->from != n->id) {
        sim_fail(s, "n%" PRIu64 " sends a message from n%" PRIu64, n->id, m->from);
        return;
    }
    switch (m->type) {
    case RAFT_MSG_VOTE_RESP:
        if (!m->u.vote_resp.granted || m->u.vote_resp.pre)
            break;
        /* Persist before you send (Raft Figure 2, "Persistent state"). */
        if (s->o.contract_checks && (d->term != m->term || d->vote != m->to))
            sim_fail(s,
                     "n%" PRIu64 " grants its vote of term %" PRIu64 " to n%" PRIu64
                     " before persisting it (disk: term %" PRIu64 " vote %" PRIu64 ")",
                     n->id, m->term, m->to, d->term, d->vote);
        if (!grow(s, (void **)&s->votes[n->id], &s->n_votes[n->id], m->term, sizeof(raft_id)))
            break;
        if (s->votes[n->id][m->term] == 0)
            s->votes[n->id][m->term] = m->to;
        else if (s->votes[n->id][m->term] != m->to)
            sim_fail(s,
                     "n%" PRIu64 " votes twice in term %" PRIu64 ": for n%" PRIu64 " and n%" PRIu64,
                     n->id, m->term, s->votes[n->id][m->term], m->to);
        break;
    case RAFT_MSG_APPEND_RESP: {
        raft_index mi = m->u.append_resp.match_index;
        if (!m->u.append_resp.success || mi == 0)
            break;
        if (mi > mlog_last(&n->mlog)) {
            sim_fail(s,
                     "n%" PRIu64 " acknowledges entries up to %" PRIu64
                     " but its log ends at %" PRIu64,
                     n->id, mi, mlog_last(&n->mlog));
            break;
        }
        raft_term t = mlog_term(&n->mlog, mi);
        if (s->o.contract_checks && mi > n->mlog.base && !disk_has(d, mi, t))
            sim_fail(s,
                     "n%" PRIu64 " acknowledges entries up to %" PRIu64 "/%" PRIu64
                     " before persisting them",
                     n->id, mi, t);
        break;
    }
    case RAFT_MSG_SNAPSHOT_RESP:
        if (!s->o.contract_checks)
            break;
        /* raft.h: done only once the batch installing that snapshot is reported persisted. */
        for (const struct sim_batch *b = d->pending; b != NULL && m->u.snapshot_resp.done;
             b = b->next) {
            if (b->install && b->snap != NULL && b->snap->index == m->u.snapshot_resp.last_index)
                sim_fail(s,
                         "n%" PRIu64 " reports snapshot %" PRIu64
                         " done before the batch installing it (seq %" PRIu64
                         ") is reported persisted",
                         n->id, m->u.snapshot_resp.last_index, b->seq);
        }
        /* "done: the receiver holds last_index durably": as a snapshot, or as log entries the
         * snapshot kept (its last entry matched). */
        if (m->u.snapshot_resp.done && d->snap.index < m->u.snapshot_resp.last_index &&
            !disk_has(d, m->u.snapshot_resp.last_index,
                      mlog_term(&n->mlog, m->u.snapshot_resp.last_index)))
            sim_fail(s, "n%" PRIu64 " reports snapshot %" PRIu64 " installed before persisting it",
                     n->id, m->u.snapshot_resp.last_index);
        break;
    default:
        break;
    }
}

void check_snapshot_bytes(struct sim *s, raft_index index, const uint8_t *data, size_t len)
{
    if (!grow(s, (void **)&s->snap_digest, &s->cap_snap_digest, index, sizeof(uint64_t)))
        return;
    uint64_t h = sim_hash(data, len, 7) | 1;
    if (s->snap_digest[index] == 0)
        s->snap_digest[index] = h;
    else if (s->snap_digest[index] != h)
        sim_fail(s, "two snapshots of the state machine at index %" PRIu64 " differ", index);
}

void check_ack(struct sim *s, struct sim_node *n, raft_index index, raft_term term, uint8_t client,
               uint32_t seq)
{
    if (index > s->max_committed || s->committed[index].term != term) {
        sim_fail(s,
                 "client %u's write acknowledged by n%" PRIu64 " at %" PRIu64 "/%" PRIu64
                 " is not committed",
                 client, n->id, index, term);
        return;
    }
    if (s->n_acks == s->cap_acks) {
        size_t cap = s->cap_acks ? s->cap_acks * 2 : 64;
        struct sim_ack *a = realloc(s->acks, cap * sizeof(*a));
        if (a == NULL) {
            sim_fail(s, "out of memory (checker)");
            return;
        }
        s->acks = a;
        s->cap_acks = cap;
    }
    s->acks[s->n_acks++] = (struct sim_ack){.index = index,
                                            .term = term,
                                            .hash = s->committed[index].hash,
                                            .client = client,
                                            .seq = seq};
}

bool sim_check_converged(struct sim *s)
{
    /* Acknowledged writes stay committed: the entry at their index is still theirs. */
    for (size_t i = 0; i < s->n_acks; i++) {
        const struct sim_ack *a = &s->acks[i];
        const struct sim_committed *c = &s->committed[a->index];
        if (c->term != a->term || c->hash != a->hash)
            sim_fail(s, "acknowledged write of client %u (#%u) at %" PRIu64 " was lost", a->client,
                     a->seq, a->index);
    }
    /* Every running member applied the same entries and holds the same store. */
    uint8_t *ref = NULL;
    size_t ref_len = 0;
    raft_id ref_id = 0;
    for (uint32_t i = 0; i < s->conf.n && !s->failed; i++) {
        raft_id id = s->conf.nodes[i].id;
        struct sim_node *n = sim_node(s, id);
        if (n == NULL || n->state != SIM_UP)
            continue;
        uint8_t *bytes;
        size_t len;
        if (kv_serialize(&n->kv, n->applied, n->applied_term, &bytes, &len) != 0) {
            sim_fail(s, "out of memory (converge)");
            break;
        }
        if (ref == NULL) {
            ref = bytes;
            ref_len = len;
            ref_id = id;
            continue;
        }
        if (len != ref_len || memcmp(bytes, ref, len) != 0)
            sim_fail(s,
                     "n%" PRIu64 " and n%" PRIu64 " did not converge (applied %" PRIu64
                     " and %" PRIu64 ")",
                     ref_id, id, s->nodes[ref_id].applied, n->applied);
        free(bytes);
    }
    free(ref);
    return !s->failed;
}

void check_free(struct sim *s)
{
    free(s->leader_of_term);
    free(s->committed);
    for (size_t i = 0; i < s->cap_seen; i++)
        free(s->seen[i].recs);
    free(s->seen);
    for (raft_id id = 0; id <= SIM_MAX_NODES; id++)
        free(s->votes[id]);
    free(s->acks);
    free(s->snap_digest);
}
