/* Random runs of the simulated cluster: one seed picks a cluster size, a fault mix (drop,
 * duplicate, reorder, partition, crash, snapshot, membership, transfer), perhaps leader churn,
 * and a schedule of faults; the run then heals, checks liveness, convergence and
 * linearizability. A run depends on its seed alone: no clock, no I/O but the trace it prints on
 * failure. */
#ifndef DFS_TESTS_RAFT_SIM_FUZZ_H
#define DFS_TESTS_RAFT_SIM_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tests/raft/sim.h"

enum fuzz_fault {
    FUZZ_DROP = 1 << 0,
    FUZZ_DUP = 1 << 1,
    FUZZ_REORDER = 1 << 2,
    FUZZ_PARTITION = 1 << 3,
    FUZZ_CRASH = 1 << 4,
    FUZZ_SNAPSHOT = 1 << 5,
    FUZZ_MEMBERSHIP = 1 << 6,
    FUZZ_TRANSFER = 1 << 7,
    FUZZ_ALL = (1 << 8) - 1,
};

struct fuzz_plan {
    uint64_t seed;
    int n_nodes;
    uint32_t faults;     /* enum fuzz_fault bits */
    bool follower_reads; /* clients read from any node */
    bool small_msgs;     /* few entries per message and few in flight */
    raft_time active_ms; /* the faulty part of the run */
    /* Leader churn, on top of the fault mix: entries travel one per message, a new leader's
     * entries of its own term are held back until it commits one, and new leaders (or one of
     * their voters) are crashed or cut off right after their election, then come back: the
     * histories of the Raft paper's Figure 8 and of votes lost in a crash. */
    bool churn;
    bool lease_read; /* leader lease reads (raft.h) in every node */
    bool lying_disk; /* sim_opts.lying_disk: only to show that the checks catch it */
};

/* The plan a seed stands for. */
void fuzz_plan_for_seed(uint64_t seed, struct fuzz_plan *p);
/* "drop+dup+crash" (or "none") into buf. */
const char *fuzz_faults_name(uint32_t faults, char *buf, size_t cap);

struct fuzz_result {
    bool ok;
    char failure[512];
    uint64_t digest; /* of the whole run: equal for equal seeds */
    uint64_t steps, elections, crashes, snapshots_installed, acked_writes, reads, ops;
    /* Leader churn: new leaders struck, and those of them struck on their first commit. */
    uint64_t struck, struck_on_commit;
    raft_time end;
};

/* Runs one plan. When trace_out is set and the run fails, prints the trace tail there. */
void fuzz_run(const struct fuzz_plan *p, struct fuzz_result *res, FILE *trace_out);

#endif
