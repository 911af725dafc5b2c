/* Snapshot transfer, installation and log compaction (see snapshot.h). */
#include "raft/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "raft/convert.h"
#include "raft/election.h"
#include "raft/membership.h"
#include "raft/persist.h"
#include "raft/replication.h"
#include "raft/transfer.h"
#include "raft/update.h"

void raft__snapshot_start(struct raft *r, struct raft__progress *pr)
{
    raft__pr_become_snapshot(pr, r->snap_index, r->snap_term, r->snap_size, r->now);
    raft__snapshot_send(r, pr);
}

static void send_chunk(struct raft *r, struct raft__progress *pr, uint64_t offset, uint32_t len)
{
    struct raft_msg *m = raft__msg(r, RAFT_MSG_SNAPSHOT, pr->id);
    if (m == NULL) {
        return;
    }
    struct raft_msg_snapshot *s = &m->u.snapshot;
    s->last_index = pr->snap_index;
    s->last_term = pr->snap_term;
    s->conf = &r->snap_conf; /* a leader only sends its latest snapshot (see snapshot_taken) */
    s->size = pr->snap_size;
    s->offset = offset;
    s->len = len;
    s->data = NULL; /* the driver fills [offset, offset + len) of snapshot last_index */
    s->done = offset + len == pr->snap_size;
}

void raft__snapshot_send(struct raft *r, struct raft__progress *pr)
{
    uint64_t chunk = r->cfg.snapshot_chunk_bytes;
    while (!pr->snap_all_sent) {
        uint64_t out = pr->snap_sent - pr->snap_acked;
        if (out > 0 &&
            (out >= r->cfg.max_inflight_bytes || out / chunk >= r->cfg.max_inflight_msgs)) {
            return;
        }
        uint64_t left = pr->snap_size - pr->snap_sent;
        uint32_t len = (uint32_t)(left < chunk ? left : chunk);
        send_chunk(r, pr, pr->snap_sent, len);
        pr->snap_sent += len;
        pr->snap_all_sent = pr->snap_sent == pr->snap_size;
    }
}

void raft__snapshot_recover(struct raft *r, struct raft__progress *pr)
{
    if (pr->snap_acked == pr->snap_size) {
        /* Everything arrived; the install is being persisted. A zero-length last chunk asks
         * again for the answer in case it was lost. */
        send_chunk(r, pr, pr->snap_size, 0);
    } else if (r->now - pr->snap_progress_at >= r->cfg.election_timeout_max) {
        /* Nothing confirmed for long: resend from the last confirmed offset. */
        pr->snap_sent = pr->snap_acked;
        pr->snap_all_sent = false;
        pr->snap_progress_at = r->now;
        raft__snapshot_send(r, pr);
    }
}

void raft__snapshot_resp_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot_resp *s = &m->u.snapshot_resp;
    struct raft__progress *pr = raft__pr_find(r, m->from);
    if (r->role != RAFT_LEADER || pr == NULL) {
        return;
    }
    pr->contact = r->now;
    pr->heard = true;
    if (s->done) {
        /* The follower's log now matches ours up to the snapshot (thesis §5.3). */
        if (s->last_index > raft__log_last(&r->log) && s->last_index > r->snap_index) {
            return;
        }
        bool advanced = raft__pr_update_match(pr, s->last_index);
        if (pr->state == RAFT__PR_SNAPSHOT && pr->match >= pr->snap_index) {
            pr->next = pr->match + 1;
            raft__pr_become_probe(pr);
        }
        if (advanced) {
            raft__maybe_commit(r);
            if (r->role != RAFT_LEADER) {
                return;
            }
            raft__transfer_progress(r, pr);
        }
        raft__send_append(r, pr, false);
        return;
    }
    if (pr->state != RAFT__PR_SNAPSHOT || s->last_index != pr->snap_index) {
        return;
    }
    if (s->rejected) {
        pr->snap_sent = pr->snap_acked = 0;
        pr->snap_all_sent = false;
        pr->snap_rewound = false;
        pr->snap_progress_at = r->now;
    } else if (s->next_offset > pr->snap_acked && s->next_offset <= pr->snap_sent) {
        pr->snap_acked = s->next_offset;
        pr->snap_progress_at = r->now;
        pr->snap_rewound = false;
    } else if (s->next_offset == pr->snap_acked && s->next_offset < pr->snap_sent &&
               !pr->snap_rewound) {
        /* The follower reports a gap (a chunk was lost): go back once; the chunks still in
         * flight after the gap will report the same offset. */
        pr->snap_sent = pr->snap_acked;
        pr->snap_all_sent = false;
        pr->snap_rewound = true;
    }
    raft__snapshot_send(r, pr);
}

static void snapshot_reply(struct raft *r, const struct raft_msg *m, uint64_t next, bool done,
                           bool rejected)
{
    struct raft_msg resp;
    raft__msg_init(r, &resp, RAFT_MSG_SNAPSHOT_RESP, m->from);
    resp.u.snapshot_resp.last_index = m->u.snapshot.last_index;
    resp.u.snapshot_resp.next_offset = next;
    resp.u.snapshot_resp.done = done;
    resp.u.snapshot_resp.rejected = rejected;
    if (done) {
        /* Done promises that last_index survives a crash: the log is durable up to it and no
         * install (this one or an earlier one) is still waiting for persistence. */
        raft__hold(r, &resp, r->install_seq, m->u.snapshot.last_index);
    } else {
        raft__msg_push(r, &resp);
    }
}

/* Makes the received snapshot the node's state (thesis §5.3: keep the log after it when the
 * entry at its last index matches, else discard the whole log). */
static void install(struct raft *r, const struct raft_msg_snapshot *s)
{
    raft_term t;
    bool keep = raft__log_term(&r->log, s->last_index, &t) && t == s->last_term &&
                s->last_index >= raft__log_first(&r->log);
    if (keep) {
        raft__log_compact(&r->log, s->last_index, &r->trash);
    } else {
        raft__log_reset(&r->log, s->last_index, s->last_term, &r->trash);
    }
    r->snap_index = s->last_index;
    r->snap_term = s->last_term;
    r->snap_size = s->size;
    r->snap_conf = *s->conf;
    r->snap_asked_at = 0;
    raft__persist_installed(r, s->last_index, keep);
    raft__conf_installed(r, s->last_index, &r->snap_conf, keep);
    if (r->commit < s->last_index) {
        r->commit = s->last_index;
    }
    if (r->applied < s->last_index) {
        r->applied = s->last_index; /* the driver restores the state machine from it */
    }
}

int raft__snapshot_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->u.snapshot;
    if (r->role == RAFT_LEADER) {
        return 0;
    }
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        raft__become_follower(r, m->term, m->from);
    } else {
        r->leader_contact = r->now;
        raft__election_reset_timer(r);
    }
    if (s->last_index <= r->commit) {
        /* Already have all of it: committed entries match every later leader's log. */
        r->snap_in_active = false;
        snapshot_reply(r, m, s->size, true, false);
        return 0;
    }
    bool same = r->snap_in_active && r->snap_in_index == s->last_index &&
                r->snap_in_term == s->last_term && r->snap_in_size == s->size;
    if (s->offset == 0 && !same) {
        /* A new snapshot (or the first chunk): start over. Offset 0 of the snapshot already
         * being received is a duplicate, so the resume point never goes back. */
        r->snap_in_active = true;
        r->snap_in_index = s->last_index;
        r->snap_in_term = s->last_term;
        r->snap_in_size = s->size;
        r->snap_in_next = 0;
    } else if (!same) {
        snapshot_reply(r, m, 0, false, true);
        return RAFT_E_INVAL;
    }
    if (s->offset != r->snap_in_next) {
        snapshot_reply(r, m, r->snap_in_next, false, false);
        return RAFT_E_INVAL;
    }
    if (s->len > r->st.cap_chunk) {
        void *buf = realloc(r->st.chunk_buf, s->len);
        if (buf == NULL) {
            return RAFT_E_NOMEM; /* as if the chunk were lost */
        }
        r->st.chunk_buf = buf;
        r->st.cap_chunk = s->len;
    }
    struct raft_snapshot_chunk *c = &r->st.chunk;
    c->present = true;
    c->last_index = s->last_index;
    c->offset = s->offset;
    c->len = s->len;
    c->data = s->len > 0 ? memcpy(r->st.chunk_buf, s->data, s->len) : NULL;
    r->snap_in_next += s->len;
    snapshot_reply(r, m, r->snap_in_next, false, false);
    if (s->done) {
        r->snap_in_active = false;
        install(r, s);
        snapshot_reply(r, m, r->snap_in_next, true, false);
    }
    return 0;
}

int raft__snapshot_taken(struct raft *r, raft_index index, raft_term term, uint64_t size)
{
    raft_term t;
    if (index <= r->snap_index || index > r->applied || !raft__log_term(&r->log, index, &t) ||
        t != term) {
        return RAFT_E_INVAL;
    }
    r->snap_conf = *raft__conf_at(r, index);
    r->snap_index = index;
    r->snap_term = term;
    r->snap_size = size;
    r->snap_asked_at = 0;
    /* Keep snapshot_trailing entries so that slightly slow followers still get appends. */
    if (index > r->cfg.snapshot_trailing) {
        raft__log_compact(&r->log, index - r->cfg.snapshot_trailing, &r->trash);
    }
    raft__conf_compacted(r, index);
    if (r->role == RAFT_LEADER) {
        /* Transfers of the previous snapshot restart: its file may be gone. */
        for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
            struct raft__progress *pr = &r->prs[i];
            if (pr->id != 0 && pr->state == RAFT__PR_SNAPSHOT && pr->snap_index != index) {
                raft__snapshot_start(r, pr);
            }
        }
    }
    return 0;
}
