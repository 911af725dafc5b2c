/* The public entry points: construction, raft_step's dispatch of events (term rules of paper
 * §5.1 for every message), status and names. The concerns live in their own files. */
#include "raft/raft.h"

#include <stdlib.h>
#include <string.h>

#include "raft/configuration.h"
#include "raft/convert.h"
#include "raft/core.h"
#include "raft/election.h"
#include "raft/membership.h"
#include "raft/persist.h"
#include "raft/read_index.h"
#include "raft/replication.h"
#include "raft/snapshot.h"
#include "raft/transfer.h"
#include "raft/update.h"
#include "raft/validate.h"

void raft__sort_desc(uint64_t *v, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] < x; j--) {
            v[j] = v[j - 1];
        }
        v[j] = x;
    }
}

void raft_config_default(struct raft_config *c)
{
    memset(c, 0, sizeof *c);
    c->election_timeout_min = 150;
    c->election_timeout_max = 300;
    c->heartbeat_interval = 50;
    c->max_inflight_msgs = 64;
    c->max_inflight_bytes = 8u << 20;
    c->max_entries_per_msg = 1024;
    c->max_bytes_per_msg = 1u << 20;
    c->max_entry_bytes = 4u << 20;
    c->snapshot_chunk_bytes = 1u << 20;
    c->snapshot_threshold = 10000;
    c->snapshot_trailing = 1000;
    c->pre_vote = true;
    c->check_quorum = true;
}

static int check_config(const struct raft_config *c)
{
    if (c->id == 0 || (c->lease_read && !c->check_quorum) || c->election_timeout_min == 0 ||
        c->election_timeout_max <= c->election_timeout_min || c->heartbeat_interval == 0 ||
        c->heartbeat_interval >= c->election_timeout_min || c->max_inflight_msgs == 0 ||
        c->max_inflight_msgs > RAFT__MAX_INFLIGHT_MSGS || c->max_inflight_bytes == 0 ||
        c->max_entries_per_msg == 0 || c->max_bytes_per_msg == 0 || c->snapshot_chunk_bytes == 0 ||
        c->snapshot_threshold == 0) {
        return RAFT_E_INVAL;
    }
    return 0;
}

/* The boot log after dropping entries the snapshot covers: consecutive from snapshot + 1,
 * terms between the snapshot's and the boot term, never decreasing, confs that decode. */
static int check_boot(const struct raft_boot *b, uint32_t *skip)
{
    uint32_t k = 0;
    if (raft__conf_check(&b->conf) != 0 || b->term >= RAFT__INDEX_LIMIT ||
        b->snapshot_index >= RAFT__INDEX_LIMIT || b->snapshot_term > b->term ||
        (b->snapshot_index == 0) != (b->snapshot_term == 0) || b->applied < b->snapshot_index ||
        (b->n_entries > 0 && b->entries == NULL)) {
        return RAFT_E_INVAL;
    }
    while (k < b->n_entries && b->entries[k].index <= b->snapshot_index) {
        k++;
    }
    raft_term term = b->snapshot_term;
    for (uint32_t i = k; i < b->n_entries; i++) {
        const struct raft_entry *e = &b->entries[i];
        struct raft_conf c;
        if (e->index != b->snapshot_index + 1 + (i - k) || e->term < term || e->term > b->term ||
            e->type > RAFT_ENTRY_CONF || (e->len > 0 && e->data == NULL) ||
            (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &c) != 0)) {
            return RAFT_E_INVAL;
        }
        term = e->term;
    }
    if (b->applied > b->snapshot_index + (b->n_entries - k)) {
        return RAFT_E_INVAL;
    }
    *skip = k;
    return 0;
}

static int load_log(struct raft *r, const struct raft_boot *b, uint32_t skip)
{
    uint32_t n = b->n_entries - skip;
    if (raft__log_reserve(&r->log, n) != 0) {
        return RAFT_E_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry e = b->entries[skip + i];
        void *data = NULL;
        if (e.len > 0) {
            if ((data = malloc(e.len)) == NULL) {
                return RAFT_E_NOMEM;
            }
            memcpy(data, e.data, e.len);
        }
        e.data = data;
        raft__log_push(&r->log, &e);
        if (e.type == RAFT_ENTRY_CONF) {
            struct raft_conf c;
            raft_conf_decode(e.data, e.len, &c);
            if (raft__conf_reserve(r, 1) != 0) {
                return RAFT_E_NOMEM;
            }
            r->confs[r->n_confs].index = e.index;
            r->confs[r->n_confs].conf = c;
            r->n_confs++;
        }
    }
    return 0;
}

int raft_new(const struct raft_config *config, const struct raft_boot *boot, raft_time now,
             struct raft **out)
{
    uint32_t skip = 0;
    if (config == NULL || boot == NULL || out == NULL || check_config(config) != 0 ||
        check_boot(boot, &skip) != 0) {
        return RAFT_E_INVAL;
    }
    struct raft *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RAFT_E_NOMEM;
    }
    r->cfg = *config;
    r->id = config->id;
    r->rng = config->seed ^ (config->id * UINT64_C(0xD1B54A32D192ED03));
    r->now = now;
    r->boot_time = now;
    r->term = boot->term;
    r->vote = boot->vote;
    r->role = RAFT_FOLLOWER;
    r->infl_cap = config->max_inflight_msgs;
    r->infl_pool = calloc((size_t)RAFT_MAX_NODES * r->infl_cap, sizeof *r->infl_pool);
    raft__log_init(&r->log, boot->snapshot_index, boot->snapshot_term);
    if (r->infl_pool == NULL || raft__conf_init(r, boot->snapshot_index, &boot->conf) != 0 ||
        load_log(r, boot, skip) != 0) {
        raft_free(r);
        return RAFT_E_NOMEM;
    }
    r->snap_index = boot->snapshot_index;
    r->snap_term = boot->snapshot_term;
    r->snap_size = boot->snapshot_size;
    r->snap_conf = boot->conf;
    /* What the state machine applied was committed; the rest the leader will tell. */
    r->commit = boot->applied;
    r->applied = boot->applied;
    r->persisted = raft__log_last(&r->log);
    raft__election_reset_timer(r);
    *out = r;
    return 0;
}

void raft_free(struct raft *r)
{
    if (r == NULL) {
        return;
    }
    raft__log_close(&r->log);
    raft__trash_close(&r->trash);
    free(r->confs);
    free(r->infl_pool);
    free(r->reads);
    free(r->batches);
    free(r->held);
    free(r->st.pents);
    free(r->st.msgs);
    free(r->st.msg_off);
    free(r->st.ents);
    free(r->st.reads);
    free(r->st.chunk_buf);
    free(r);
}

/* A message of an older term: answered where that makes the sender step down (paper §5.1),
 * otherwise ignored. */
static void stale(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *resp;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        if ((resp = raft__msg(r, RAFT_MSG_APPEND_RESP, m->from)) != NULL) {
            resp->u.append_resp.last_index = raft__log_last(&r->log);
            resp->u.append_resp.read_ctx = m->u.append.read_ctx;
        }
        break;
    case RAFT_MSG_SNAPSHOT:
        if ((resp = raft__msg(r, RAFT_MSG_SNAPSHOT_RESP, m->from)) != NULL) {
            resp->u.snapshot_resp.last_index = m->u.snapshot.last_index;
        }
        break;
    case RAFT_MSG_VOTE:
        /* Also tells a pre-candidate stuck in an old term about the newer one. */
        raft__vote_reject(r, m);
        break;
    case RAFT_MSG_READ_INDEX:
        if ((resp = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, m->from)) != NULL) {
            resp->u.read_index_resp.read_id = m->u.read_index.read_id;
        }
        break;
    default:
        break;
    }
}

static int receive(struct raft *r, const struct raft_msg *m)
{
    int rv = raft__validate_msg(r, m);
    if (rv != 0) {
        return rv;
    }
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE) {
            /* Thesis §4.2.3: within the minimum election timeout of hearing from a leader,
             * neither update the term nor grant the vote, unless the leader itself asked for
             * this election (transfer, thesis §3.10). */
            if (!m->u.vote.transfer && raft__in_lease(r)) {
                raft__vote_reject(r, m);
                return 0;
            }
            if (!m->u.vote.pre) {
                raft__become_follower(r, m->term, 0);
            }
        } else if (m->type == RAFT_MSG_VOTE_RESP && m->u.vote_resp.pre && m->u.vote_resp.granted) {
            /* A pre-vote granted in our future term: no term change (thesis §9.6). */
        } else {
            bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT ||
                               m->type == RAFT_MSG_TIMEOUT_NOW;
            raft__become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        stale(r, m);
        return 0;
    }
    switch (m->type) {
    case RAFT_MSG_VOTE:
        raft__vote_recv(r, m);
        return 0;
    case RAFT_MSG_VOTE_RESP:
        raft__vote_resp_recv(r, m);
        return 0;
    case RAFT_MSG_APPEND:
        return raft__append_recv(r, m);
    case RAFT_MSG_APPEND_RESP:
        raft__append_resp_recv(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        return raft__snapshot_recv(r, m);
    case RAFT_MSG_SNAPSHOT_RESP:
        raft__snapshot_resp_recv(r, m);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        raft__timeout_now_recv(r, m);
        return 0;
    case RAFT_MSG_READ_INDEX:
        raft__read_index_recv(r, m);
        return 0;
    case RAFT_MSG_READ_INDEX_RESP:
        raft__read_index_resp_recv(r, m);
        return 0;
    default:
        return RAFT_E_INVAL;
    }
}

static int dispatch(struct raft *r, const struct raft_event *ev)
{
    int rv;
    switch (ev->type) {
    case RAFT_EV_TICK:
        return 0;
    case RAFT_EV_RECEIVE:
        return receive(r, ev->u.receive.msg);
    case RAFT_EV_PROPOSE:
        return raft__propose(r, ev->u.propose.n, ev->u.propose.entries);
    case RAFT_EV_PERSISTED:
        if ((rv = raft__persisted(r, ev->u.persisted.seq)) == 0) {
            raft__election_tally(r);
            raft__maybe_commit(r);
        }
        return rv;
    case RAFT_EV_SNAPSHOT_TAKEN:
        return raft__snapshot_taken(r, ev->u.snapshot_taken.index, ev->u.snapshot_taken.term,
                                    ev->u.snapshot_taken.size);
    case RAFT_EV_TRANSFER:
        return raft__transfer(r, ev->u.transfer.target);
    case RAFT_EV_CONF_CHANGE:
        return raft__conf_change(r, ev->u.conf_change.op, ev->u.conf_change.id,
                                 ev->u.conf_change.addr);
    case RAFT_EV_READ:
        return raft__read(r, ev->u.read.read_id);
    default:
        return RAFT_E_INVAL;
    }
}

int raft_step(struct raft *r, const struct raft_event *ev, struct raft_update *u)
{
    if (r == NULL || u == NULL) {
        return RAFT_E_INVAL;
    }
    int rv = raft__step_begin(r);
    if (rv == 0) {
        if (ev == NULL || ev->now < r->now) {
            rv = RAFT_E_INVAL;
        } else {
            r->now = ev->now;
            rv = dispatch(r, ev);
            raft__election_tick(r);
            raft__leader_tick(r);
            raft__read_tick(r);
        }
    }
    raft__step_end(r, u);
    return rv;
}

void raft_get_status(const struct raft *r, struct raft_status *out)
{
    memset(out, 0, sizeof *out);
    out->id = r->id;
    out->role = r->role;
    out->term = r->term;
    out->vote = r->vote;
    out->leader = r->leader;
    out->commit_index = r->commit;
    out->applied_index = r->applied;
    out->last_index = raft__log_last(&r->log);
    out->snapshot_index = r->snap_index;
    out->persisted_index = r->persisted;
    out->removed = raft__removed(r);
    out->conf = *raft__conf(r);
    if (r->role != RAFT_LEADER) {
        return;
    }
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        const struct raft__progress *pr = &r->prs[i];
        if (pr->id == 0) {
            continue;
        }
        struct raft_peer_status *p = &out->peers[out->n_peers++];
        p->id = pr->id;
        p->voter = pr->voter;
        p->match_index = pr->match;
        p->next_index = pr->next;
        p->last_contact = pr->heard ? pr->contact : 0;
        p->snapshotting = pr->state == RAFT__PR_SNAPSHOT;
    }
}

const char *raft_role_name(int role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "FOLLOWER";
    case RAFT_PRE_CANDIDATE:
        return "PRE_CANDIDATE";
    case RAFT_CANDIDATE:
        return "CANDIDATE";
    case RAFT_LEADER:
        return "LEADER";
    default:
        return "UNKNOWN";
    }
}
