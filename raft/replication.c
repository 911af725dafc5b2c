/* Log replication and commitment (see replication.h). */
#include "raft/replication.h"

#include <stdlib.h>
#include <string.h>

#include "raft/configuration.h"
#include "raft/convert.h"
#include "raft/election.h"
#include "raft/membership.h"
#include "raft/persist.h"
#include "raft/read_index.h"
#include "raft/snapshot.h"
#include "raft/transfer.h"
#include "raft/update.h"

int raft__leader_append(struct raft *r, uint8_t type, uint32_t len, void *data)
{
    struct raft_conf c;
    if (raft__log_reserve(&r->log, 1) != 0 || raft__persist_reserve(r, 1) != 0) {
        return RAFT_E_NOMEM;
    }
    if (type == RAFT_ENTRY_CONF &&
        (raft__conf_reserve(r, 1) != 0 || raft_conf_decode(data, len, &c) != 0)) {
        return RAFT_E_NOMEM;
    }
    struct raft_entry e = {.term = r->term,
                           .index = raft__log_last(&r->log) + 1,
                           .type = type,
                           .len = len,
                           .data = data};
    raft__log_push(&r->log, &e);
    raft__persist_appended(r, e.index);
    if (type == RAFT_ENTRY_CONF) {
        raft__conf_appended(r, e.index, &c);
    }
    return 0;
}

int raft__propose(struct raft *r, uint32_t n, const struct raft_entry *entries)
{
    if (raft__removed(r)) {
        return RAFT_E_SHUTDOWN;
    }
    if (r->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (r->transfer_target != 0) {
        return RAFT_E_TRANSFERRING;
    }
    if (n == 0 || entries == NULL) {
        return RAFT_E_INVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct raft_entry *e = &entries[i];
        if ((e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_NOOP) ||
            (e->len > 0 && e->data == NULL)) {
            return RAFT_E_INVAL;
        }
        if (e->len > r->cfg.max_entry_bytes) {
            return RAFT_E_TOO_BIG;
        }
    }
    void **copies = calloc(n, sizeof *copies);
    if (copies == NULL || raft__log_reserve(&r->log, n) != 0 || raft__persist_reserve(r, n) != 0) {
        free(copies);
        return RAFT_E_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].len == 0) {
            continue;
        }
        copies[i] = malloc(entries[i].len);
        if (copies[i] == NULL) {
            for (uint32_t j = 0; j < i; j++) {
                free(copies[j]);
            }
            free(copies);
            return RAFT_E_NOMEM;
        }
        memcpy(copies[i], entries[i].data, entries[i].len);
    }
    r->st.proposed_index = raft__log_last(&r->log) + 1;
    r->st.proposed_term = r->term;
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry e = {.term = r->term,
                               .index = raft__log_last(&r->log) + 1,
                               .type = entries[i].type,
                               .len = entries[i].len,
                               .data = copies[i]};
        raft__log_push(&r->log, &e);
        raft__persist_appended(r, e.index);
    }
    free(copies);
    raft__replicate_all(r, false);
    return 0;
}

/* Sends pr one APPEND; true when it carried entries and more may follow. */
static bool send_one(struct raft *r, struct raft__progress *pr, bool if_empty)
{
    if (raft__pr_paused(pr, r->cfg.max_inflight_bytes)) {
        return false;
    }
    raft_index prev = pr->next - 1, last = raft__log_last(&r->log);
    raft_term prev_term;
    if (pr->next < raft__log_first(&r->log) || !raft__log_term(&r->log, prev, &prev_term)) {
        /* The entries it needs are compacted (thesis §5.3). */
        raft__snapshot_start(r, pr);
        return false;
    }
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (raft_index i = pr->next; i <= last && n < r->cfg.max_entries_per_msg; i++) {
        uint32_t len = raft__log_get(&r->log, i)->len;
        if (n > 0 && bytes + len > r->cfg.max_bytes_per_msg) {
            break;
        }
        bytes += len;
        n++;
    }
    if (n == 0 && !if_empty && pr->state != RAFT__PR_PROBE) {
        return false; /* a probe goes out even empty: it checks the log at next - 1 */
    }
    struct raft_msg *m = raft__msg_append(r, pr->id, pr->next, n);
    if (m == NULL) {
        return false;
    }
    m->u.append.prev_index = prev;
    m->u.append.prev_term = prev_term;
    m->u.append.commit = r->commit;
    m->u.append.read_ctx = r->read_ctx;
    if (pr->state == RAFT__PR_PROBE) {
        pr->probe_sent = true;
        return false;
    }
    if (n == 0) {
        return false;
    }
    pr->next += n;
    raft__pr_infl_add(pr, pr->next - 1, bytes);
    return true;
}

void raft__send_append(struct raft *r, struct raft__progress *pr, bool if_empty)
{
    if (pr->state == RAFT__PR_SNAPSHOT) {
        raft__snapshot_send(r, pr);
        return;
    }
    while (send_one(r, pr, if_empty)) {
        if_empty = false;
    }
}

void raft__replicate_all(struct raft *r, bool if_empty)
{
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id != 0) {
            raft__send_append(r, &r->prs[i], if_empty);
        }
    }
}

static void send_heartbeat(struct raft *r, struct raft__progress *pr)
{
    /* prev = match: the follower is known to hold it, so a heartbeat never fails the
     * consistency check, and the follower may commit up to it (paper Figure 2). */
    raft_index prev = pr->match;
    raft_term prev_term;
    if (!raft__log_term(&r->log, prev, &prev_term)) {
        prev = 0;
        prev_term = 0;
    }
    struct raft_msg *m = raft__msg_append(r, pr->id, 0, 0);
    if (m != NULL) {
        m->u.append.prev_index = prev;
        m->u.append.prev_term = prev_term;
        m->u.append.commit = r->commit;
        m->u.append.read_ctx = r->read_ctx;
    }
}

void raft__heartbeat(struct raft *r)
{
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id != 0) {
            send_heartbeat(r, pr);
        }
    }
}

/* Heartbeat-time recovery of lost messages: re-probe, resend stalled snapshot chunks, and
 * poke a pipeline whose match did not move (an empty append at next - 1 makes a follower that
 * lost an append refuse, which moves it back to PROBE). */
static void recover(struct raft *r, struct raft__progress *pr)
{
    switch (pr->state) {
    case RAFT__PR_PROBE:
        pr->probe_sent = false;
        break;
    case RAFT__PR_REPLICATE:
        if (pr->match == pr->hb_match && pr->match + 1 < pr->next) {
            raft_term t;
            struct raft_msg *m;
            if (!raft__log_term(&r->log, pr->next - 1, &t)) {
                /* Compacted meanwhile: probe from what is known (it leads to a snapshot). */
                pr->next = pr->match + 1;
                raft__pr_become_probe(pr);
                raft__send_append(r, pr, true);
            } else if ((m = raft__msg_append(r, pr->id, 0, 0)) != NULL) {
                m->u.append.prev_index = pr->next - 1;
                m->u.append.prev_term = t;
                m->u.append.commit = r->commit;
                m->u.append.read_ctx = r->read_ctx;
            }
        }
        break;
    case RAFT__PR_SNAPSHOT:
        raft__snapshot_recover(r, pr);
        break;
    }
    pr->hb_match = pr->match;
}

void raft__leader_tick(struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    if (r->cfg.check_quorum && r->now >= raft__quorum_deadline(r)) {
        /* Thesis §6.2: no majority heard within an election timeout. */
        raft__become_follower(r, r->term, 0);
        return;
    }
    raft__transfer_tick(r);
    if (r->now >= r->hb_deadline) {
        r->hb_deadline = r->now + r->cfg.heartbeat_interval;
        raft__read_round(r); /* every heartbeat renews the lease */
        raft__heartbeat(r);
        for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
            if (r->prs[i].id != 0) {
                recover(r, &r->prs[i]);
            }
        }
        raft__maybe_promote(r);
    }
}

raft_time raft__quorum_deadline(const struct raft *r)
{
    uint64_t t[RAFT_MAX_NODES + 1];
    uint32_t n = 0;
    if (raft__conf_is_voter(raft__conf(r), r->id)) {
        t[n++] = r->now;
    }
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id != 0 && r->prs[i].voter) {
            t[n++] = r->prs[i].contact;
        }
    }
    if (n == 0) {
        return UINT64_MAX;
    }
    raft__sort_desc(t, n);
    return t[n / 2] + r->cfg.election_timeout_max;
}

static void append_reply(struct raft *r, const struct raft_msg *m, bool ok, raft_index match,
                         raft_index ci, raft_term ct)
{
    struct raft_msg resp;
    raft__msg_init(r, &resp, RAFT_MSG_APPEND_RESP, m->from);
    resp.u.append_resp.success = ok;
    resp.u.append_resp.match_index = match;
    resp.u.append_resp.conflict_index = ci;
    resp.u.append_resp.conflict_term = ct;
    resp.u.append_resp.last_index = raft__log_last(&r->log);
    resp.u.append_resp.read_ctx = m->u.append.read_ctx;
    if (ok) {
        /* "Success" promises the entries survive a crash (paper §5.3, thesis §10.2.1). */
        raft__hold(r, &resp, 0, match);
    } else {
        raft__msg_push(r, &resp);
    }
}

/* Appends ents (consecutive, the first at most last + 1), truncating a conflicting suffix. */
static int append_entries(struct raft *r, const struct raft_entry *ents, uint32_t n)
{
    raft_index from = ents[0].index;
    uint32_t n_conf = 0;
    for (uint32_t i = 0; i < n; i++) {
        n_conf += ents[i].type == RAFT_ENTRY_CONF;
    }
    void **copies = calloc(n, sizeof *copies);
    if (copies == NULL || raft__log_reserve(&r->log, n) != 0 || raft__persist_reserve(r, n) != 0 ||
        raft__conf_reserve(r, n_conf) != 0) {
        free(copies);
        return RAFT_E_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].len > 0 && (copies[i] = malloc(ents[i].len)) == NULL) {
            for (uint32_t j = 0; j < i; j++) {
                free(copies[j]);
            }
            free(copies);
            return RAFT_E_NOMEM;
        }
        if (ents[i].len > 0) {
            memcpy(copies[i], ents[i].data, ents[i].len);
        }
    }
    if (from <= raft__log_last(&r->log)) {
        /* Paper Figure 2, AppendEntries 3: delete the conflicting entry and all that follow. */
        raft__log_truncate(&r->log, from, &r->trash);
        raft__persist_truncated(r, from);
        raft__conf_truncated(r, from);
    }
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry e = ents[i];
        e.data = copies[i];
        raft__log_push(&r->log, &e);
        raft__persist_appended(r, e.index);
        if (e.type == RAFT_ENTRY_CONF) {
            struct raft_conf c;
            if (raft_conf_decode(ents[i].data, ents[i].len, &c) == 0) { /* checked on receipt */
                raft__conf_appended(r, e.index, &c);
            }
        }
    }
    free(copies);
    return 0;
}

int raft__append_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->u.append;
    if (r->role == RAFT_LEADER) {
        return 0; /* two leaders in one term cannot happen (paper §5.2); ignore */
    }
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        raft__become_follower(r, m->term, m->from);
    } else {
        r->leader_contact = r->now;
        raft__election_reset_timer(r);
    }
    raft_index prev = a->prev_index, end = a->prev_index + a->n_entries;
    raft_term prev_term = a->prev_term;
    const struct raft_entry *ents = a->entries;
    uint32_t n = a->n_entries;

    /* Committed entries are in every later leader's log (Leader Completeness, paper §5.4.1):
     * skip them; this also covers entries compacted into a snapshot. */
    if (prev < r->commit && n > 0) {
        uint64_t skip = r->commit - prev < n ? r->commit - prev : n;
        prev_term = ents[skip - 1].term;
        prev += skip;
        ents += skip;
        n -= (uint32_t)skip;
    }
    if (prev > r->commit) {
        raft_index last = raft__log_last(&r->log);
        raft_term t = 0;
        if (prev > last) {
            append_reply(r, m, false, 0, last + 1, 0);
            return 0;
        }
        raft__log_term(&r->log, prev, &t); /* prev > commit >= snapshot: in the log */
        if (t != prev_term) {
            /* Fast backtracking (paper §5.3): the first index of the conflicting term, not
             * below what is committed. */
            raft_index ci = raft__log_first_at_least(&r->log, t, r->commit + 1, prev);
            append_reply(r, m, false, 0, ci, t);
            return 0;
        }
    }
    /* The log now matches the leader's up to prev: find the first entry that is new. */
    raft_index last = raft__log_last(&r->log);
    uint32_t i = 0;
    for (; i < n && ents[i].index <= last; i++) {
        if (raft__log_get(&r->log, ents[i].index)->term != ents[i].term) {
            break;
        }
    }
    if (i < n && append_entries(r, ents + i, n - i) != 0) {
        return RAFT_E_NOMEM; /* as if the message were lost */
    }
    raft_index commit = a->commit < end ? a->commit : end;
    if (commit > r->commit) {
        raft__commit_to(r, commit);
    }
    append_reply(r, m, true, end, 0, 0);
    return 0;
}

/* Where to probe next after a refusal (paper §5.3 fast backtracking): past the leader's last
 * entry of the conflicting term, else the follower's hint. */
static raft_index next_after_reject(const struct raft *r, const struct raft__progress *pr,
                                    const struct raft_msg_append_resp *a)
{
    raft_index next = a->conflict_index, j;
    if (a->conflict_term != 0 &&
        raft__log_last_of_term(&r->log, a->conflict_term, raft__log_last(&r->log), &j)) {
        next = j + 1;
    }
    if (next > a->last_index + 1) {
        next = a->last_index + 1;
    }
    if (next <= pr->match) {
        next = pr->match + 1;
    }
    if (next > raft__log_last(&r->log) + 1) {
        next = raft__log_last(&r->log) + 1;
    }
    return next;
}

void raft__append_resp_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append_resp *a = &m->u.append_resp;
    struct raft__progress *pr = raft__pr_find(r, m->from);
    if (r->role != RAFT_LEADER || pr == NULL) {
        return;
    }
    pr->contact = r->now;
    pr->heard = true;
    if (a->read_ctx > pr->read_acked && a->read_ctx <= r->read_ctx) {
        pr->read_acked = a->read_ctx;
        raft__read_acked(r);
    }
    if (!a->success) {
        if (pr->state == RAFT__PR_SNAPSHOT) {
            return;
        }
        raft_index next = next_after_reject(r, pr, a);
        if (pr->state == RAFT__PR_PROBE && next >= pr->next) {
            return; /* stale: a refusal of the current probe always moves next back */
        }
        pr->next = next;
        raft__pr_become_probe(pr);
        raft__send_append(r, pr, true);
        return;
    }
    if (a->match_index > raft__log_last(&r->log)) {
        return; /* cannot match entries this leader never had */
    }
    bool advanced = raft__pr_update_match(pr, a->match_index);
    if (pr->state == RAFT__PR_PROBE && pr->match + 1 >= pr->next) {
        raft__pr_become_replicate(pr); /* the log matches at next - 1: pipeline from here */
    } else if (pr->state == RAFT__PR_REPLICATE) {
        raft__pr_infl_free_to(pr, a->match_index);
    } else if (pr->state == RAFT__PR_SNAPSHOT && pr->match >= pr->snap_index) {
        raft__pr_become_probe(pr);
    }
    if (advanced) {
        raft__maybe_commit(r);
        if (r->role != RAFT_LEADER) {
            return;
        }
        raft__transfer_progress(r, pr);
        raft__maybe_promote(r);
    }
    /* A success that moves nothing (a heartbeat's, or a duplicate) does not re-arm a probe:
     * only the heartbeat timer does (recover), so lossy links cannot cause storms. */
    raft__send_append(r, pr, false);
}

void raft__maybe_commit(struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    uint64_t v[RAFT_MAX_NODES + 1];
    uint32_t n = 0;
    if (raft__conf_is_voter(raft__conf(r), r->id)) {
        v[n++] = r->persisted;
    }
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id != 0 && r->prs[i].voter) {
            v[n++] = r->prs[i].match;
        }
    }
    if (n == 0) {
        return;
    }
    raft__sort_desc(v, n);
    raft_index index = v[n / 2]; /* stored by n / 2 + 1 voters, a majority */
    /* Paper §5.4.2: only entries of the current term are committed by counting replicas;
     * terms never decrease along the log, so that is any index from the term's NOOP on. */
    if (index > r->commit && index >= r->term_start) {
        raft__commit_to(r, index);
    }
}

void raft__commit_to(struct raft *r, raft_index index)
{
    if (index <= r->commit) {
        return;
    }
    raft_index old = r->commit;
    r->commit = index;
    raft__read_on_commit(r, old);
    raft__membership_on_commit(r, old);
}
