/* A tiny hand-driven cluster for the Raft core's unit tests: N raft instances, an in-memory
 * FIFO network with cuts, an in-memory disk per node and a hashing state machine. Time is an
 * input (no sleep); persistence is immediate unless a node holds it for the test to release. */
#ifndef DFS_TESTS_UNIT_RAFT_HARNESS_H
#define DFS_TESTS_UNIT_RAFT_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

#define H_MAX 7 /* node ids 1..H_MAX-1 */

/* A copied persist batch (for nodes that hold persistence). */
struct h_batch {
    struct raft_persist p;
    struct raft_entry *ents;
    struct raft_conf conf;
};

/* What a node "stored on disk" and applied. */
struct h_node {
    raft_id id;
    bool up;
    struct raft *r;
    struct raft_config cfg;
    raft_time next_timeout;
    int last_rv;

    /* disk */
    raft_term term;
    raft_id vote;
    struct raft_entry *log; /* data owned; log[0].index == first */
    uint32_t n_log, cap_log;
    raft_index snap_index;
    raft_term snap_term;
    struct raft_conf snap_conf;
    uint8_t *snap;
    uint64_t snap_size;
    uint8_t *pending;
    uint64_t pending_size;
    raft_index pending_index;
    struct raft_conf boot_conf;
    /* The seq of the last persist batch that installed a snapshot, until it is reported: the
     * state machine is restored from the snapshot on disk just before that RAFT_EV_PERSISTED
     * is stepped (raft.h), and applying a committed entry meanwhile fails the test. */
    uint64_t install_seq;

    /* held persistence */
    bool hold_persist;
    struct h_batch *held;
    uint32_t n_held;

    /* state machine */
    raft_index applied;
    raft_term applied_term;
    uint64_t sm_hash;
    uint64_t sm_count;
    raft_term *applied_terms; /* by index, 0: not applied through an entry */
    uint64_t cap_applied;
    uint32_t n_committed_updates;

    /* reads released to this node's driver */
    struct raft_read reads[256];
    uint32_t n_reads;

    bool auto_snapshot;
    uint64_t snap_fill; /* bytes of a snapshot this node takes */
    uint32_t snapshots_wanted;
    uint32_t chunks_written;
    uint32_t installs;
};

struct h_qitem {
    bool persisted; /* else a message */
    raft_id node;   /* destination */
    uint64_t seq;
    struct raft_msg m;
    struct raft_entry *ents;
    uint8_t *data;
    struct raft_conf *conf; /* a SNAPSHOT's configuration (m points to it) */
};

/* Returns false to drop the message; may also edit the harness's copy (e.g. cut entries off the
 * end of an APPEND, which leaves a valid message). */
typedef bool (*h_filter)(void *arg, struct raft_msg *m);

struct h_cluster {
    int n; /* nodes 1..n */
    struct h_node nodes[H_MAX];
    raft_time now;
    bool cut[H_MAX][H_MAX];
    struct h_qitem *q;
    uint32_t q_head, q_n, q_cap;
    h_filter filter;
    void *filter_arg;
    uint64_t trace; /* FNV-1a of every step's result */
    uint64_t steps;
    uint64_t msgs_by_type[16];
};

typedef void (*h_config_fn)(struct raft_config *c);

/* n voters with ids 1..n, all up; cfg may adjust the defaults (after id and seed are set). */
void h_init(struct h_cluster *c, int n, uint64_t seed, h_config_fn cfg);
/* Like h_init with some of the nodes non-voters (voter[i] for id i + 1). */
void h_init_conf(struct h_cluster *c, int n, const bool *voter, uint64_t seed, h_config_fn cfg);
/* n nodes of which ids 1..members form the boot configuration (all voters); the others boot
 * with that same configuration, as nodes about to be added. */
void h_init_join(struct h_cluster *c, int n, int members, uint64_t seed, h_config_fn cfg);
void h_free(struct h_cluster *c);

/* One event to node id (now is set to c->now); handles the update. Returns raft_step's rv. */
int h_step(struct h_cluster *c, raft_id id, struct raft_event *ev);
int h_tick(struct h_cluster *c, raft_id id);
int h_propose(struct h_cluster *c, raft_id id, const char *data);
int h_read(struct h_cluster *c, raft_id id, uint64_t read_id);
int h_conf_change(struct h_cluster *c, raft_id id, uint8_t op, raft_id target);
int h_transfer(struct h_cluster *c, raft_id id, raft_id target);
int h_receive(struct h_cluster *c, raft_id id, const struct raft_msg *m);
/* Reports persist batches up to seq durable (restoring an installed snapshot first). */
int h_persisted(struct h_cluster *c, raft_id id, uint64_t seq);

/* Delivers queued messages and persist notifications until none are left (or max). */
void h_deliver(struct h_cluster *c);
/* Runs for ms milliseconds: ticks nodes at their next_timeout, delivering everything. */
void h_run(struct h_cluster *c, raft_time ms);
/* Runs until some node is leader (at most ms); returns its id or 0. */
raft_id h_elect(struct h_cluster *c, raft_time ms);
/* The leader with the highest term, or 0. */
raft_id h_leader(const struct h_cluster *c);
/* Drops queued messages. */
void h_drop_all(struct h_cluster *c);

/* Cuts the link both ways between a and b. */
void h_cut(struct h_cluster *c, raft_id a, raft_id b, bool cut);
/* Cuts id off from everyone. */
void h_isolate(struct h_cluster *c, raft_id id, bool cut);

/* Holds persistence of node id: batches wait for h_flush. */
void h_hold(struct h_cluster *c, raft_id id, bool hold);
/* Writes every held batch of id and reports it persisted. */
void h_flush(struct h_cluster *c, raft_id id);

/* Crash: the node loses its unpersisted batches and everything in memory. */
void h_crash(struct h_cluster *c, raft_id id);
void h_restart(struct h_cluster *c, raft_id id);
/* Wipes node id's disk and state machine and boots it anew with boot configuration conf (a
 * node that joins a running cluster). */
void h_boot_fresh(struct h_cluster *c, raft_id id, const struct raft_conf *conf);

/* Takes a snapshot of node id's applied state now. */
int h_snapshot(struct h_cluster *c, raft_id id);

struct raft_status h_status(const struct h_cluster *c, raft_id id);
/* Fails the calling test unless every pair of nodes applied the same term at each index. */
void h_check_applied(const struct h_cluster *c);
/* Counts queued messages of type (0: all). */
uint32_t h_queued(const struct h_cluster *c, uint8_t type);
/* The i-th queued item (for tests that inspect or deliver by hand). */
struct h_qitem *h_queue_at(struct h_cluster *c, uint32_t i);
/* Removes the i-th queued item. */
void h_queue_remove(struct h_cluster *c, uint32_t i);
/* Delivers only the i-th queued item. */
void h_deliver_one(struct h_cluster *c, uint32_t i);

/* An update's fields folded into a 64-bit FNV-1a hash (for determinism checks). */
uint64_t h_hash_update(uint64_t h, int rv, const struct raft_update *u);

#endif
