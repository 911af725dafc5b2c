/* Role changes (see convert.h). */
#include "raft/convert.h"

#include "raft/election.h"
#include "raft/membership.h"
#include "raft/persist.h"
#include "raft/read_index.h"
#include "raft/replication.h"
#include "raft/transfer.h"

void raft__become_follower(struct raft *r, raft_term term, raft_id leader)
{
    bool changed = term != r->term || r->role != RAFT_FOLLOWER || r->leader != leader;
    if (r->role == RAFT_LEADER) {
        raft__transfer_clear(r);
    }
    if (changed) {
        raft__reads_fail(r);
    }
    if (leader != r->leader) {
        r->snap_in_active = false; /* another leader's snapshot file may differ */
    }
    raft__set_term(r, term);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    if (leader != 0) {
        r->leader_contact = r->now;
    }
    r->n_votes = 0;
    raft__election_reset_timer(r);
}

void raft__become_pre_candidate(struct raft *r)
{
    if (r->leader != 0 || r->role == RAFT_LEADER) {
        raft__reads_fail(r);
    }
    r->role = RAFT_PRE_CANDIDATE;
    r->leader = 0;
    r->n_votes = 0;
    r->campaign_transfer = false;
    raft__election_reset_timer(r);
}

void raft__become_candidate(struct raft *r, bool transfer)
{
    raft__reads_fail(r);
    raft__set_term(r, r->term + 1);
    raft__set_vote(r, r->id);
    r->role = RAFT_CANDIDATE;
    r->leader = 0;
    r->n_votes = 0;
    r->campaign_transfer = transfer;
    raft__election_reset_timer(r);
}

void raft__become_leader(struct raft *r)
{
    r->role = RAFT_LEADER;
    r->leader = r->id;
    r->n_votes = 0;
    r->transfer_target = 0;
    r->lease_off = false;
    r->hb_deadline = r->now + r->cfg.heartbeat_interval;
    raft__progress_sync(r, true);
    r->term_start = raft__log_last(&r->log) + 1;
    if (raft__leader_append(r, RAFT_ENTRY_NOOP, 0, NULL) != 0) {
        /* Without this term's NOOP nothing could be committed soon: retry the election. */
        raft__become_follower(r, r->term, 0);
        return;
    }
    raft__read_round(r); /* the first appends start the lease */
    raft__replicate_all(r, true);
}
