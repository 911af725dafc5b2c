/* The random seed sweep: runs seeds [first, first + count) of the simulator (sim_fuzz.h) and
 * reports every failing seed with its fault mix and the command that replays it.
 *   raft_random [--first N] [--count N]
 *   RAFT_SEED=N [RAFT_TRACE=1] raft_random     replays seed N alone (with a trace)
 *   RAFT_NO_CONTRACT_CHECKS=1 raft_random ...   without the driver-contract checks (sim.h) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/raft/sim_fuzz.h"

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t first = 0, count = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            first = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--first N] [--count N]   (RAFT_SEED=N replays one seed)\n",
                    argv[0]);
            return 2;
        }
    }
    const char *replay = getenv("RAFT_SEED");
    if (replay != NULL) {
        first = strtoull(replay, NULL, 10);
        count = 1;
    }

    /* A replay runs with the checks the sweep ran with. */
    struct sim_opts defaults;
    sim_opts_default(&defaults, 0, 3);
    const char *env = defaults.contract_checks ? "" : "RAFT_NO_CONTRACT_CHECKS=1 ";

    double t0 = wall_seconds();
    uint64_t failed = 0, elections = 0, crashes = 0, installs = 0, acked = 0, reads = 0;
    uint64_t steps = 0, per_faults[8] = {0}, churn = 0;
    for (uint64_t seed = first; seed < first + count; seed++) {
        struct fuzz_plan p;
        struct fuzz_result r;
        char faults[128];
        fuzz_plan_for_seed(seed, &p);
        fuzz_run(&p, &r, stderr);
        fuzz_faults_name(p.faults, faults, sizeof(faults));
        steps += r.steps;
        elections += r.elections;
        crashes += r.crashes;
        installs += r.snapshots_installed;
        acked += r.acked_writes;
        reads += r.reads;
        for (int b = 0; b < 8; b++)
            per_faults[b] += (p.faults >> b) & 1;
        churn += p.churn;
        if (replay != NULL)
            printf("seed %" PRIu64 ": %d nodes, faults %s%s%s%s: %" PRIu64 " steps, %" PRIu64
                   " ms, %" PRIu64 " elections, %" PRIu64 " crashes, %" PRIu64
                   " snapshots installed, %" PRIu64 " ops (%" PRIu64 " writes acked, %" PRIu64
                   " reads)\n",
                   seed, p.n_nodes, faults, p.churn ? ", leader churn" : "",
                   p.follower_reads ? ", follower reads" : "",
                   p.small_msgs ? ", small messages" : "", r.steps, r.end, r.elections, r.crashes,
                   r.snapshots_installed, r.ops, r.acked_writes, r.reads);
        if (!r.ok) {
            failed++;
            printf("FAIL seed=%" PRIu64 " nodes=%d faults=%s%s: %s\n"
                   "  replay: %sRAFT_SEED=%" PRIu64 " RAFT_TRACE=1 %s\n",
                   seed, p.n_nodes, faults, p.churn ? "+churn" : "", r.failure, env, seed, argv[0]);
            fflush(stdout);
        }
    }
    printf("raft_random: %" PRIu64 " seeds run (%" PRIu64 "..%" PRIu64 "), %" PRIu64
           " failed, %.1f s; %" PRIu64 " steps, %" PRIu64 " elections, %" PRIu64
           " crashes, %" PRIu64 " snapshots installed, %" PRIu64 " writes acked, %" PRIu64
           " reads\n",
           count, first, first + count - 1, failed, wall_seconds() - t0, steps, elections, crashes,
           installs, acked, reads);
    printf("  seeds per fault: drop %" PRIu64 ", dup %" PRIu64 ", reorder %" PRIu64
           ", partition %" PRIu64 ", crash %" PRIu64 ", snapshot %" PRIu64 ", membership %" PRIu64
           ", transfer %" PRIu64 "; leader churn %" PRIu64 "\n",
           per_faults[0], per_faults[1], per_faults[2], per_faults[3], per_faults[4], per_faults[5],
           per_faults[6], per_faults[7], churn);
    return failed == 0 ? 0 : 1;
}
