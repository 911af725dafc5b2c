/* ReadIndex (see read_index.h). */
#include "raft/read_index.h"

#include <string.h>

#include "raft/configuration.h"
#include "raft/membership.h"
#include "raft/replication.h"
#include "raft/update.h"

static void finish(struct raft *r, const struct raft__read *rd, raft_index index, bool ok)
{
    if (rd->from == 0 || rd->forwarded) {
        raft__emit_read(r, rd->read_id, index, ok);
        return;
    }
    struct raft_msg *m = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, rd->from);
    if (m != NULL) {
        m->u.read_index_resp.read_id = rd->read_id;
        m->u.read_index_resp.index = index;
        m->u.read_index_resp.ok = ok;
    }
}

static int push(struct raft *r, const struct raft__read *rd)
{
    if (raft__grow((void **)&r->reads, &r->cap_reads, r->n_reads + 1, sizeof *r->reads) != 0) {
        return RAFT_E_NOMEM;
    }
    r->reads[r->n_reads++] = *rd;
    return 0;
}

/* The highest read_ctx a majority of voters echoed (this leader counts as echoing all). */
static uint64_t quorum_ctx(const struct raft *r)
{
    uint64_t v[RAFT_MAX_NODES + 1];
    uint32_t n = 0;
    if (raft__conf_is_voter(raft__conf(r), r->id)) {
        v[n++] = r->read_ctx;
    }
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id != 0 && r->prs[i].voter) {
            v[n++] = r->prs[i].read_acked;
        }
    }
    if (n == 0) {
        return 0;
    }
    raft__sort_desc(v, n);
    return v[n / 2];
}

void raft__read_acked(struct raft *r)
{
    if (r->n_reads == 0) {
        return;
    }
    /* On the leader reads are queued in round order, so the confirmed ones are a prefix. */
    uint64_t q = quorum_ctx(r);
    uint32_t k = 0;
    while (k < r->n_reads && r->reads[k].ctx != 0 && r->reads[k].ctx <= q) {
        finish(r, &r->reads[k], r->reads[k].index, true);
        k++;
    }
    memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof *r->reads);
    r->n_reads -= k;
}

void raft__read_round(struct raft *r)
{
    r->read_ctx++;
    r->ctx_of[r->read_ctx % RAFT__ROUNDS] = r->read_ctx;
    r->ctx_time[r->read_ctx % RAFT__ROUNDS] = r->now;
}

/* Until when the leader holds a lease (raft.h, lease_read): the latest round a majority
 * acknowledged started less than 9/10 of election_timeout_min before it; this term's NOOP is
 * committed. 0: no lease. */
static raft_time lease_end(const struct raft *r)
{
    if (r->role != RAFT_LEADER || !r->cfg.lease_read || r->lease_off || r->transfer_target != 0 ||
        r->commit < r->term_start) {
        return 0;
    }
    uint64_t q = quorum_ctx(r);
    uint32_t slot = (uint32_t)(q % RAFT__ROUNDS);
    if (q == 0 || r->ctx_of[slot] != q) {
        return 0; /* never acknowledged, or too long ago to be remembered */
    }
    return r->ctx_time[slot] + (raft_time)r->cfg.election_timeout_min * 9 / 10;
}

static bool in_lease(const struct raft *r)
{
    return r->now < lease_end(r);
}

raft_time raft_lease_until(const struct raft *r)
{
    /* Also: every entry up to this term's NOOP handed out to be applied, so that the applied
     * state holds every write an earlier leader acknowledged. */
    return r->applied >= r->term_start ? lease_end(r) : 0;
}

/* Starts one heartbeat round confirming every read that has none yet. */
static void start_round(struct raft *r)
{
    bool any = false;
    for (uint32_t i = 0; i < r->n_reads; i++) {
        if (r->reads[i].ctx == 0) {
            if (!any) {
                raft__read_round(r);
                any = true;
            }
            r->reads[i].ctx = r->read_ctx;
            r->reads[i].index = r->commit;
        }
    }
    if (any) {
        raft__heartbeat(r);
        raft__read_acked(r); /* a single voter confirms alone */
    }
}

static int leader_read(struct raft *r, raft_id from, uint64_t read_id)
{
    struct raft__read rd;
    memset(&rd, 0, sizeof rd);
    rd.read_id = read_id;
    rd.from = from;
    if (in_lease(r)) {
        /* No other leader can exist yet: what is committed now is the read index. */
        finish(r, &rd, r->commit, true);
        return 0;
    }
    int rv = push(r, &rd);
    if (rv == 0 && r->commit >= r->term_start) {
        /* Thesis §6.4 step 1 needs an entry of this term committed first; until then the read
         * waits (raft__read_on_commit). */
        start_round(r);
    }
    return rv;
}

int raft__read(struct raft *r, uint64_t read_id)
{
    if (r->role == RAFT_LEADER) {
        return leader_read(r, 0, read_id);
    }
    if (r->leader == 0) {
        raft__emit_read(r, read_id, 0, false);
        return 0;
    }
    struct raft__read rd;
    memset(&rd, 0, sizeof rd);
    rd.read_id = read_id;
    rd.from = r->leader;
    rd.forwarded = true;
    rd.deadline = r->now + r->cfg.election_timeout_max;
    int rv = push(r, &rd);
    if (rv != 0) {
        return rv;
    }
    struct raft_msg *m = raft__msg(r, RAFT_MSG_READ_INDEX, r->leader);
    if (m != NULL) {
        m->u.read_index.read_id = read_id;
    }
    return 0;
}

void raft__read_index_recv(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER || leader_read(r, m->from, m->u.read_index.read_id) != 0) {
        struct raft_msg *resp = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, m->from);
        if (resp != NULL) {
            resp->u.read_index_resp.read_id = m->u.read_index.read_id;
            resp->u.read_index_resp.ok = false;
        }
    }
}

void raft__read_index_resp_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_read_index_resp *a = &m->u.read_index_resp;
    for (uint32_t i = 0; i < r->n_reads; i++) {
        struct raft__read *rd = &r->reads[i];
        if (rd->forwarded && rd->read_id == a->read_id && rd->from == m->from) {
            raft__emit_read(r, rd->read_id, a->ok ? a->index : 0, a->ok);
            memmove(rd, rd + 1, (r->n_reads - i - 1) * sizeof *rd);
            r->n_reads--;
            return;
        }
    }
}

void raft__read_on_commit(struct raft *r, raft_index old_commit)
{
    if (r->role == RAFT_LEADER && old_commit < r->term_start && r->commit >= r->term_start) {
        start_round(r);
    }
}

void raft__reads_fail(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_reads; i++) {
        finish(r, &r->reads[i], 0, false);
    }
    r->n_reads = 0;
}

void raft__read_tick(struct raft *r)
{
    /* Forwarded reads are queued in deadline order (same timeout, clock never goes back). */
    uint32_t k = 0;
    while (k < r->n_reads && r->reads[k].forwarded && r->now >= r->reads[k].deadline) {
        raft__emit_read(r, r->reads[k].read_id, 0, false);
        k++;
    }
    if (k > 0) {
        memmove(r->reads, r->reads + k, (r->n_reads - k) * sizeof *r->reads);
        r->n_reads -= k;
    }
}
