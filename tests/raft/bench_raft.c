/* Benchmark (not a test): a fault-free 3-node simulated cluster committing small proposals as
 * fast as the core allows, reporting proposals committed per wall-clock second and the entries
 * committed. The safety checks are off; run under `valgrind --tool=callgrind` and divide the
 * instructions (of raft_step alone with --toggle-collect=raft_step) by the entries committed.
 *   bench_raft [ENTRIES] [PAYLOAD_BYTES] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/raft/sim.h"

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t entries = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    uint32_t payload = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 64;
    if (entries == 0 || payload < KV_CMD_HEADER || payload > 65536) {
        fprintf(stderr, "usage: %s [ENTRIES] [PAYLOAD_BYTES >= %d]\n", argv[0], KV_CMD_HEADER);
        return 2;
    }
    struct sim_opts o;
    sim_opts_default(&o, 1, 3);
    o.checks = false;
    o.trace = 0;
    o.net_delay_min = o.net_delay_max = 1;
    o.disk_delay_min = o.disk_delay_max = 1;
    struct sim *s = sim_new(&o);
    if (s == NULL)
        return 1;
    raft_id leader = 0;
    while (leader == 0 && s->now < 10000) {
        sim_run_for(s, 10);
        leader = sim_leader(s);
    }
    if (leader == 0) {
        fprintf(stderr, "no leader elected\n");
        return 1;
    }
    uint8_t *buf = calloc(1, payload);
    struct kv_cmd cmd = {.op = KV_BLOB, .value = (const char *)buf, .len = payload - KV_CMD_HEADER};
    uint8_t *data = malloc(payload);
    kv_cmd_encode(&cmd, data, payload);

    struct sim_node *ln = sim_node(s, leader);
    raft_get_status(ln->r, &ln->st);
    raft_index start = ln->st.commit_index, target = start + entries;
    uint64_t proposed = 0, refused = 0, steps0 = s->n_steps, msgs0 = s->n_msgs_sent;
    raft_time t_virtual0 = s->now;
    double t0 = wall_seconds();
    for (;;) {
        /* The simulator refreshes statuses only on role changes when checks are off. */
        raft_get_status(ln->r, &ln->st);
        if (ln->state != SIM_UP || ln->st.role != RAFT_LEADER || ln->st.commit_index >= target)
            break;
        /* Keep a bounded window of proposals in flight. */
        raft_index last = ln->st.last_index;
        for (int i = 0; i < 256 && proposed < entries && last - ln->st.commit_index < 8192; i++) {
            if (sim_propose(s, leader, data, payload, NULL, NULL) != 0) {
                refused++;
                break;
            }
            proposed++;
            last++;
        }
        sim_run_for(s, 1);
        if (s->now - t_virtual0 > 3600 * 1000)
            break;
    }
    double secs = wall_seconds() - t0;
    uint64_t committed = ln->st.commit_index - start;
    printf("bench_raft: 3 nodes, %" PRIu64 " entries of %u bytes committed (%" PRIu64
           " proposed, %" PRIu64 " refused) in %.3f s wall, %" PRIu64 " ms virtual\n",
           committed, payload, proposed, refused, secs, s->now - t_virtual0);
    printf("bench_raft: %.0f proposals committed per second; %" PRIu64 " raft_step calls (%.2f "
           "per entry), %" PRIu64 " messages (%.2f per entry)\n",
           secs > 0 ? (double)committed / secs : 0.0, s->n_steps - steps0,
           committed ? (double)(s->n_steps - steps0) / (double)committed : 0.0,
           s->n_msgs_sent - msgs0,
           committed ? (double)(s->n_msgs_sent - msgs0) / (double)committed : 0.0);
    free(buf);
    free(data);
    sim_free(s);
    return committed >= entries ? 0 : 1;
}
