/* Leadership transfer (see transfer.h). */
#include "raft/transfer.h"

#include "raft/configuration.h"
#include "raft/election.h"
#include "raft/membership.h"
#include "raft/replication.h"
#include "raft/update.h"

static void send_timeout_now(struct raft *r, raft_id to)
{
    raft__msg(r, RAFT_MSG_TIMEOUT_NOW, to);
}

/* The voter (not this node) with the highest match index; ties go to the earliest in the
 * configuration. */
static struct raft__progress *most_up_to_date(struct raft *r)
{
    const struct raft_conf *c = raft__conf(r);
    struct raft__progress *best = NULL;
    for (uint32_t k = 0; k < c->n; k++) {
        struct raft__progress *pr = c->nodes[k].voter ? raft__pr_find(r, c->nodes[k].id) : NULL;
        if (pr != NULL && (best == NULL || pr->match > best->match)) {
            best = pr;
        }
    }
    return best;
}

int raft__transfer(struct raft *r, raft_id target)
{
    if (r->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (r->transfer_target != 0) {
        return RAFT_E_BUSY;
    }
    struct raft__progress *pr;
    if (target == 0) {
        pr = most_up_to_date(r);
    } else {
        pr = raft__conf_is_voter(raft__conf(r), target) ? raft__pr_find(r, target) : NULL;
    }
    if (pr == NULL) {
        return RAFT_E_INVAL;
    }
    r->transfer_target = pr->id;
    r->lease_off = true; /* the target campaigns past the followers' lease */
    r->transfer_deadline = r->now + r->cfg.election_timeout_max;
    if (pr->match == raft__log_last(&r->log)) {
        send_timeout_now(r, pr->id);
    } else {
        raft__send_append(r, pr, false);
    }
    return 0;
}

void raft__transfer_progress(struct raft *r, const struct raft__progress *pr)
{
    if (r->transfer_target == pr->id && pr->match == raft__log_last(&r->log)) {
        send_timeout_now(r, pr->id);
    }
}

void raft__transfer_tick(struct raft *r)
{
    if (r->transfer_target != 0 && r->now >= r->transfer_deadline) {
        raft__transfer_clear(r);
    }
}

void raft__transfer_clear(struct raft *r)
{
    r->transfer_target = 0;
    r->transfer_deadline = 0;
}

void raft__transfer_handoff(struct raft *r)
{
    struct raft__progress *pr = most_up_to_date(r);
    if (pr != NULL && pr->match == raft__log_last(&r->log)) {
        send_timeout_now(r, pr->id);
    }
}

void raft__timeout_now_recv(struct raft *r, const struct raft_msg *m)
{
    /* Only the leader of this term may ask, and only a voter campaigns (thesis §3.10). */
    if (r->role != RAFT_FOLLOWER || r->leader != m->from || !raft__can_campaign(r)) {
        return;
    }
    raft__election_start(r, false, true);
}
