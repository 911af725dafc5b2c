/* Leader election, pre-vote and leader lease (see election.h). */
#include "raft/election.h"

#include "raft/configuration.h"
#include "raft/convert.h"
#include "raft/membership.h"
#include "raft/persist.h"
#include "raft/update.h"

void raft__election_reset_timer(struct raft *r)
{
    uint32_t span = r->cfg.election_timeout_max - r->cfg.election_timeout_min;
    r->election_deadline = r->now + r->cfg.election_timeout_min + raft__rand(r) % span;
}

bool raft__in_lease(const struct raft *r)
{
    if (r->role == RAFT_LEADER) {
        /* With check-quorum a leader steps down by itself once it loses its majority. */
        return r->cfg.check_quorum;
    }
    if (r->cfg.lease_read && r->now - r->boot_time < r->cfg.election_timeout_min) {
        /* A restarted node may have acknowledged a leader's heartbeat just before it crashed:
         * that leader may still read under its lease (raft.h, lease_read). */
        return true;
    }
    return r->role == RAFT_FOLLOWER && r->leader != 0 &&
           r->now - r->leader_contact < r->cfg.election_timeout_min;
}

void raft__election_tick(struct raft *r)
{
    if (r->role == RAFT_LEADER || r->now < r->election_deadline) {
        return;
    }
    if (!raft__can_campaign(r)) {
        /* Non-voters and removed nodes never campaign; they only forget the silent leader. */
        raft__become_follower(r, r->term, 0);
        return;
    }
    raft__election_start(r, r->cfg.pre_vote, false);
}

void raft__election_start(struct raft *r, bool pre, bool transfer)
{
    const struct raft_conf *c = raft__conf(r);
    if (pre) {
        raft__become_pre_candidate(r);
    } else {
        raft__become_candidate(r, transfer);
    }
    for (uint32_t i = 0; i < c->n; i++) {
        const struct raft_node *nd = &c->nodes[i];
        if (!nd->voter || nd->id == r->id) {
            continue;
        }
        struct raft_msg *m = raft__msg(r, RAFT_MSG_VOTE, nd->id);
        if (m == NULL) {
            continue;
        }
        /* A pre-vote asks for the term it would campaign in without moving to it. */
        m->term = pre ? r->term + 1 : r->term;
        m->u.vote.pre = pre;
        m->u.vote.transfer = transfer;
        m->u.vote.last_log_index = raft__log_last(&r->log);
        m->u.vote.last_log_term = raft__log_last_term(&r->log);
    }
    raft__election_tally(r);
}

static struct raft__vote *vote_slot(struct raft *r, raft_id id)
{
    for (uint32_t i = 0; i < r->n_votes; i++) {
        if (r->votes[i].id == id) {
            return &r->votes[i];
        }
    }
    if (r->n_votes == RAFT_MAX_NODES) {
        return NULL;
    }
    struct raft__vote *v = &r->votes[r->n_votes++];
    v->id = id;
    v->granted = 0;
    return v;
}

void raft__election_tally(struct raft *r)
{
    if (r->role != RAFT_PRE_CANDIDATE && r->role != RAFT_CANDIDATE) {
        return;
    }
    const struct raft_conf *c = raft__conf(r);
    uint32_t voters = 0, yes = 0, no = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        const struct raft_node *nd = &c->nodes[i];
        if (!nd->voter) {
            continue;
        }
        voters++;
        if (nd->id == r->id) {
            /* A candidate's own vote counts once it is durable: a vote lost in a crash could
             * otherwise be given again to another candidate of the same term (paper §5.1). */
            if (r->role == RAFT_PRE_CANDIDATE || raft__hard_state_durable(r)) {
                yes++;
            }
            continue;
        }
        for (uint32_t j = 0; j < r->n_votes; j++) {
            if (r->votes[j].id == nd->id) {
                yes += r->votes[j].granted > 0;
                no += r->votes[j].granted < 0;
            }
        }
    }
    uint32_t quorum = voters / 2 + 1;
    if (voters == 0) {
        return;
    }
    if (yes >= quorum) {
        if (r->role == RAFT_PRE_CANDIDATE) {
            raft__election_start(r, false, false);
        } else {
            raft__become_leader(r);
        }
    } else if (voters - no < quorum) {
        raft__become_follower(r, r->term, 0);
    }
}

void raft__vote_reject(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *resp = raft__msg(r, RAFT_MSG_VOTE_RESP, m->from);
    if (resp != NULL) {
        resp->u.vote_resp.pre = m->u.vote.pre;
        resp->u.vote_resp.granted = false;
    }
}

void raft__vote_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_vote *v = &m->u.vote;
    /* m->term >= r->term here: a real vote of a newer term already moved us to it. */
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->leader == 0) || (v->pre && m->term > r->term);
    raft_term last_term = raft__log_last_term(&r->log);
    /* Paper §5.4.1: grant only to a log at least as up to date (last term, then length). */
    bool up_to_date =
        v->last_log_term > last_term ||
        (v->last_log_term == last_term && v->last_log_index >= raft__log_last(&r->log));
    if (!can_vote || !up_to_date) {
        raft__vote_reject(r, m);
        return;
    }
    struct raft_msg resp;
    raft__msg_init(r, &resp, RAFT_MSG_VOTE_RESP, m->from);
    resp.u.vote_resp.pre = v->pre;
    resp.u.vote_resp.granted = true;
    if (v->pre) {
        /* A pre-vote changes nothing here and answers in the candidate's future term. */
        resp.term = m->term;
        raft__msg_push(r, &resp);
        return;
    }
    raft__set_vote(r, m->from);
    raft__election_reset_timer(r);
    /* At most one vote per term survives a crash only if it is durable before it is sent. */
    raft__hold(r, &resp, r->hs_seq, 0);
}

void raft__vote_resp_recv(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_vote_resp *v = &m->u.vote_resp;
    bool counts = (r->role == RAFT_PRE_CANDIDATE && v->pre && m->term == r->term + 1) ||
                  (r->role == RAFT_PRE_CANDIDATE && v->pre && !v->granted && m->term == r->term) ||
                  (r->role == RAFT_CANDIDATE && !v->pre && m->term == r->term);
    if (!counts || !raft__conf_is_voter(raft__conf(r), m->from)) {
        return;
    }
    struct raft__vote *slot = vote_slot(r, m->from);
    if (slot != NULL) {
        slot->granted = v->granted ? 1 : -1;
    }
    raft__election_tally(r);
}
