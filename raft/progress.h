/* The leader's view of each follower (thesis §3.5, etcd's tracker): match and next index, the
 * probe / replicate / snapshot state machine and the window of appends in flight. */
#ifndef DFS_RAFT_PROGRESS_H
#define DFS_RAFT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

enum raft__pr_state {
    RAFT__PR_PROBE = 0,     /* next is a guess: one append at a time until one succeeds */
    RAFT__PR_REPLICATE = 1, /* next is known: pipeline appends up to the in-flight caps */
    RAFT__PR_SNAPSHOT = 2,  /* the entries it needs are compacted: send the snapshot */
};

/* One append in flight: its last index and the bytes of entry data it carries. */
struct raft__inflight {
    raft_index last;
    uint64_t bytes;
};

struct raft__progress {
    raft_id id;    /* 0: an unused slot */
    bool voter;    /* counts for commit, check-quorum and reads */
    bool leaving;  /* removed by a configuration not yet committed: still gets the log */
    uint8_t state; /* enum raft__pr_state */
    raft_index match;
    raft_index next;
    bool probe_sent;     /* PROBE: an append is out; wait for an answer or a heartbeat */
    raft_index hb_match; /* match at the previous heartbeat, to notice lost appends */
    raft_time contact;   /* last message from it this term, or when we became leader */
    bool heard;          /* contact is a real message (for raft_get_status) */
    uint64_t read_acked; /* highest read_ctx it echoed this term (thesis §6.4) */

    /* REPLICATE: appends in flight, oldest first (a ring of cap slots). */
    struct raft__inflight *infl;
    uint32_t infl_cap, infl_head, infl_n;
    uint64_t infl_bytes;

    /* SNAPSHOT: the snapshot being sent and how far. */
    raft_index snap_index;
    raft_term snap_term;
    uint64_t snap_size;
    uint64_t snap_sent;         /* offset of the next chunk to send */
    uint64_t snap_acked;        /* offset the follower confirmed */
    raft_time snap_progress_at; /* when snap_acked last moved (or the transfer started) */
    bool snap_rewound;          /* already went back to snap_acked for a reported gap */
    bool snap_all_sent;
};

/* A fresh progress in PROBE (next = last + 1, match 0, paper Figure 2 "reinitialized after
 * election"); infl must have room for infl_cap entries. */
void raft__pr_init(struct raft__progress *pr, raft_id id, bool voter, raft_index next,
                   raft_time now, struct raft__inflight *infl, uint32_t infl_cap);
void raft__pr_become_probe(struct raft__progress *pr);
void raft__pr_become_replicate(struct raft__progress *pr);
void raft__pr_become_snapshot(struct raft__progress *pr, raft_index index, raft_term term,
                              uint64_t size, raft_time now);

/* True when no more appends may be sent now (a probe is out, or the window is full). */
bool raft__pr_paused(const struct raft__progress *pr, uint64_t max_bytes);
void raft__pr_infl_add(struct raft__progress *pr, raft_index last, uint64_t bytes);
/* Frees the appends up to and including index (they were acknowledged). */
void raft__pr_infl_free_to(struct raft__progress *pr, raft_index index);
void raft__pr_infl_reset(struct raft__progress *pr);

/* Records a successful append response; true when match advanced. */
bool raft__pr_update_match(struct raft__progress *pr, raft_index match);

#endif
