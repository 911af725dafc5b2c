/* Per-follower replication progress (see progress.h). */
#include "raft/progress.h"

#include <string.h>

void raft__pr_init(struct raft__progress *pr, raft_id id, bool voter, raft_index next,
                   raft_time now, struct raft__inflight *infl, uint32_t infl_cap)
{
    memset(pr, 0, sizeof *pr);
    pr->id = id;
    pr->voter = voter;
    pr->state = RAFT__PR_PROBE;
    pr->next = next;
    pr->contact = now;
    pr->infl = infl;
    pr->infl_cap = infl_cap;
}

void raft__pr_infl_reset(struct raft__progress *pr)
{
    pr->infl_head = 0;
    pr->infl_n = 0;
    pr->infl_bytes = 0;
}

void raft__pr_become_probe(struct raft__progress *pr)
{
    pr->state = RAFT__PR_PROBE;
    pr->probe_sent = false;
    raft__pr_infl_reset(pr);
    if (pr->next <= pr->match) {
        pr->next = pr->match + 1;
    }
}

void raft__pr_become_replicate(struct raft__progress *pr)
{
    pr->state = RAFT__PR_REPLICATE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    raft__pr_infl_reset(pr);
}

void raft__pr_become_snapshot(struct raft__progress *pr, raft_index index, raft_term term,
                              uint64_t size, raft_time now)
{
    pr->state = RAFT__PR_SNAPSHOT;
    pr->probe_sent = false;
    raft__pr_infl_reset(pr);
    pr->snap_index = index;
    pr->snap_term = term;
    pr->snap_size = size;
    pr->snap_sent = 0;
    pr->snap_acked = 0;
    pr->snap_progress_at = now;
    pr->snap_rewound = false;
    pr->snap_all_sent = false;
}

bool raft__pr_paused(const struct raft__progress *pr, uint64_t max_bytes)
{
    switch (pr->state) {
    case RAFT__PR_PROBE:
        return pr->probe_sent;
    case RAFT__PR_REPLICATE:
        return pr->infl_n >= pr->infl_cap || pr->infl_bytes >= max_bytes;
    default:
        return true;
    }
}

void raft__pr_infl_add(struct raft__progress *pr, raft_index last, uint64_t bytes)
{
    /* Callers check raft__pr_paused first, so there is a free slot. */
    uint32_t i = (pr->infl_head + pr->infl_n) % pr->infl_cap;
    pr->infl[i].last = last;
    pr->infl[i].bytes = bytes;
    pr->infl_n++;
    pr->infl_bytes += bytes;
}

void raft__pr_infl_free_to(struct raft__progress *pr, raft_index index)
{
    while (pr->infl_n > 0 && pr->infl[pr->infl_head].last <= index) {
        pr->infl_bytes -= pr->infl[pr->infl_head].bytes;
        pr->infl_head = (pr->infl_head + 1) % pr->infl_cap;
        pr->infl_n--;
    }
}

bool raft__pr_update_match(struct raft__progress *pr, raft_index match)
{
    bool advanced = false;
    if (match > pr->match) {
        pr->match = match;
        advanced = true;
    }
    if (pr->next <= match) {
        pr->next = match + 1;
    }
    return advanced;
}
