/* The state of one Raft node, shared by the concern files of the core (election, replication,
 * snapshot, membership, ...). Internal: drivers include raft/raft.h only. */
#ifndef DFS_RAFT_CORE_H
#define DFS_RAFT_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/log.h"
#include "raft/progress.h"
#include "raft/raft.h"

/* Indexes and terms from the network must stay below this, so "+ 1" never overflows. */
#define RAFT__INDEX_LIMIT ((uint64_t)1 << 62)
/* Most appends in flight per follower, whatever the configuration asks. */
#define RAFT__MAX_INFLIGHT_MSGS 65536u

/* A configuration and the index of the log entry that carried it (thesis §4.1: a server uses
 * the latest configuration in its log, committed or not). */
struct raft__conf_rec {
    raft_index index;
    struct raft_conf conf;
};

/* A persist batch handed to the driver and not yet reported durable. When it is, the log is
 * durable and matches memory up to min(last, cap); cap shrinks when a later step truncates. */
struct raft__batch {
    uint64_t seq;
    raft_index last;
    raft_index cap;
};

/* A message that may go out only once what it acknowledges is durable (paper §5.1 "before
 * responding to RPCs"): persist seq need_seq and the log up to need_index. Small (a message
 * points to what it carries), so holding and releasing copies little. */
struct raft__held {
    struct raft_msg msg;
    uint64_t need_seq;
    raft_index need_index;
};

/* A pending read. On the leader: from is the follower that asked (0: a local RAFT_EV_READ),
 * ctx the heartbeat round that must confirm it (0: waiting for the leader's first commit). On a
 * follower (forwarded): from is the leader asked, deadline when to give up. */
struct raft__read {
    uint64_t read_id;
    raft_id from;
    raft_index index;
    uint64_t ctx;
    raft_time deadline;
    bool forwarded;
};

/* A vote received in the current election: 1 granted, -1 refused. */
struct raft__vote {
    raft_id id;
    int8_t granted;
};

/* What the current step will hand to the driver (raft/update.c builds the raft_update). */
struct raft__step {
    uint64_t seq; /* the persist seq this step gets if it persists anything */
    bool hs_dirty;
    raft_index truncate_from;
    raft_index ent_first, ent_last; /* entries appended this step; empty when first > last */
    bool install;
    struct raft_entry *pents; /* descriptors of the appended entries, for update.persist */
    uint32_t cap_pents;

    struct raft_msg *msgs;
    uint32_t *msg_off; /* per message: offset of its entries in ents */
    uint32_t n_msgs, cap_msgs;

    struct raft_entry *ents; /* entry descriptors for msgs, persist and committed */
    uint32_t n_ents, cap_ents;

    struct raft_read *reads;
    uint32_t n_reads, cap_reads;

    struct raft_snapshot_chunk chunk;
    void *chunk_buf; /* a copy of the chunk: update pointers are the core's (raft.h) */
    uint64_t cap_chunk;
    raft_index proposed_index;
    raft_term proposed_term;

    uint8_t role0;
    raft_term term0;
    raft_id leader0;
};

#define RAFT__ROUNDS 32 /* heartbeat rounds remembered for the leader lease */

struct raft {
    struct raft_config cfg;
    raft_id id;
    uint64_t rng; /* splitmix64 state, from cfg.seed and id */
    raft_time now;

    /* Persistent state (paper Figure 2) as last handed to the driver. */
    raft_term term;
    raft_id vote;

    uint8_t role;
    raft_id leader;

    struct raft__log log;
    raft_index commit;
    raft_index applied;   /* last index handed out in update.committed */
    raft_index persisted; /* the log is durable and matches memory up to here */

    /* The last snapshot (taken locally or installed). */
    raft_index snap_index;
    raft_term snap_term;
    uint64_t snap_size;
    struct raft_conf snap_conf;
    raft_index snap_asked_at; /* applied when snapshot_wanted was last set; 0: not asked */

    /* Configurations in the log, oldest first; [0] is the base (boot or snapshot). */
    struct raft__conf_rec *confs;
    uint32_t n_confs, cap_confs;

    /* Election (paper §5.2, thesis §9.6). */
    raft_time election_deadline;
    raft_time leader_contact; /* follower: last time the leader was heard (thesis §4.2.3) */
    struct raft__vote votes[RAFT_MAX_NODES];
    uint32_t n_votes;
    bool campaign_transfer;

    /* Leader. */
    struct raft__progress prs[RAFT_MAX_NODES]; /* slot i owns infl_pool[i * infl_cap ...] */
    struct raft__inflight *infl_pool;
    uint32_t infl_cap;
    raft_index term_start; /* index of this term's NOOP (commit rule, paper §5.4.2) */
    raft_time hb_deadline;
    raft_id transfer_target; /* leadership transfer in progress (thesis §3.10) */
    raft_time transfer_deadline;

    /* Reads (thesis §6.4). */
    struct raft__read *reads;
    uint32_t n_reads, cap_reads;
    uint64_t read_ctx; /* last heartbeat round started (for reads and the lease) */
    /* When recent rounds started: round c in slot c % RAFT__ROUNDS (ctx_of says which round
     * a slot holds). A round acknowledged by a majority gives a lease from its start. */
    uint64_t ctx_of[RAFT__ROUNDS];
    raft_time ctx_time[RAFT__ROUNDS];
    bool lease_off;      /* leader: a transfer began in this term, no lease reads */
    raft_time boot_time; /* the driver's clock at raft_new */

    /* A snapshot being received (follower). */
    bool snap_in_active;
    raft_index snap_in_index;
    raft_term snap_in_term;
    uint64_t snap_in_size;
    uint64_t snap_in_next;

    /* Persistence. */
    uint64_t last_seq;      /* last persist seq handed out */
    uint64_t persisted_seq; /* last seq reported durable */
    uint64_t hs_seq;        /* seq of the batch carrying the latest term/vote */
    struct raft__batch *batches;
    uint32_t n_batches, cap_batches;
    struct raft__held *held;
    uint32_t n_held, cap_held;
    bool held_dirty; /* a persisted seq was reported since held messages were last checked */
    /* The latest snapshot install handed out (raft.h, raft_persist.install_snapshot): until
     * install_seq is reported persisted, no committed entry after install_index goes out. */
    uint64_t install_seq;
    raft_index install_index;

    struct raft__step st;
    struct raft__trash trash;
};

/* splitmix64: the core's only randomness, seeded from cfg.seed mixed with the node id. */
static inline uint64_t raft__rand(struct raft *r)
{
    uint64_t z = (r->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Grows *p (of *cap elements of size elem) to hold need elements. 0 or RAFT_E_NOMEM. */
int raft__grow(void **p, uint32_t *cap, uint32_t need, size_t elem);

/* Sorts v in decreasing order (n is at most RAFT_MAX_NODES + 1). */
void raft__sort_desc(uint64_t *v, uint32_t n);

/* The progress slot of id on the leader, or NULL. */
struct raft__progress *raft__pr_find(const struct raft *r, raft_id id);

#endif
