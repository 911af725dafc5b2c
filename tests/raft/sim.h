/* A deterministic in-process Raft cluster for tests: nodes running the real core on a virtual
 * clock, an in-memory network that drops, duplicates, delays, reorders and partitions messages,
 * in-memory disks that persist batches asynchronously and lose unreported ones on a crash, a
 * key-value state machine with snapshots, clients, and the Raft safety checks run after every
 * step. Everything random comes from one seed; the simulator never sleeps nor reads the clock. */
#ifndef DFS_TESTS_RAFT_SIM_H
#define DFS_TESTS_RAFT_SIM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "raft/raft.h"
#include "tests/raft/lincheck.h"
#include "tests/raft/sim_kv.h"

/* Node ids are 1..SIM_MAX_NODES. */
#define SIM_MAX_NODES   8
#define SIM_MAX_CLIENTS 8

/* ---- Owned copies of what the core hands out ---- */

struct sim_entry {
    raft_term term;
    raft_index index;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
};

struct sim_snapshot {
    raft_index index; /* 0: none */
    raft_term term;
    struct raft_conf conf;
    uint8_t *data;
    uint64_t size;
};

/* One write queued on a disk until it is durable: a persist batch, or a snapshot the node took
 * (local_snap: reported with RAFT_EV_SNAPSHOT_TAKEN once written). Writes complete in order. */
struct sim_batch {
    struct sim_batch *next;
    uint64_t bid;
    bool local_snap;
    uint64_t seq;
    bool has_hard_state;
    raft_term term;
    raft_id vote;
    raft_index truncate_from;
    uint32_t n_entries;
    struct sim_entry *entries;
    bool install;
    struct sim_snapshot *snap; /* install or local_snap only */
};

/* A node's disk: what survives a crash, plus the batches not yet durable. */
struct sim_disk {
    raft_term term;
    raft_id vote;
    struct sim_snapshot snap;
    struct sim_entry *log; /* consecutive, starting at snap.index + 1 */
    size_t n_log, cap_log;
    struct sim_batch *pending, *pending_tail;
    uint64_t next_bid;
    raft_time last_done; /* batches complete in order */
    /* The incoming snapshot being received (RAFT_MSG_SNAPSHOT chunks); not durable. */
    raft_index recv_index;
    uint8_t *recv;
    uint64_t recv_len, recv_cap;
};

/* The core's log as the driver knows it from the persist batches it was handed (durable or
 * not): what the core itself holds. Used by the Log Matching and Leader Completeness checks. */
struct sim_mentry {
    raft_term term;
    uint64_t hash; /* of type and data */
};

struct sim_mlog {
    raft_index base; /* entries e[k] is index base + 1 + k */
    raft_term base_term;
    struct sim_mentry *e;
    size_t n, cap;
};

enum sim_node_state {
    SIM_ABSENT = 0, /* never started */
    SIM_UP = 1,
    SIM_DOWN = 2, /* crashed; its disk survives */
    SIM_GONE = 3, /* removed from the cluster and stopped */
};

struct sim_node {
    raft_id id;
    uint8_t state;              /* enum sim_node_state */
    uint32_t incarnation;       /* bumped by each crash: events of older ones are void */
    struct raft_conf boot_conf; /* what it boots with while its disk holds no snapshot */
    struct raft *r;
    raft_time next_tick;
    struct sim_disk disk;
    struct sim_mlog mlog;
    struct sim_snapshot snap;      /* the latest snapshot the core knows of (sent to followers) */
    struct sim_snapshot snap_next; /* taken, not yet reported with RAFT_EV_SNAPSHOT_TAKEN */
    struct kv kv;
    raft_index applied; /* the state machine's: the last index handed out, or restored */
    raft_term applied_term;
    struct raft_conf conf; /* the configuration as of applied */
    bool snap_busy;        /* a snapshot is being written (snap_next) */
    bool was_member;       /* seen in a committed configuration */
    bool new_leader;       /* became leader in this step: check Leader Completeness */
    uint64_t last_persist_seq;
    /* The latest persist batch that installs a snapshot, until it is reported persisted: then,
     * before that RAFT_EV_PERSISTED is stepped, the state machine is restored from the
     * snapshot on disk (raft.h). 0: none pending. */
    uint64_t install_seq;
    raft_index install_index;
    raft_index last_commit;
    struct raft_status st; /* after the last step */
    bool removed_traced;
    uint64_t steps;
};

/* An in-flight message: the core's message, deep-copied. */
struct sim_msg {
    struct raft_msg m;
    struct raft_conf conf; /* a SNAPSHOT's configuration (m.u.snapshot.conf points here) */
    /* entries and data live in the same allocation, after this struct */
};

enum sim_ev_kind {
    SIM_EV_DELIVER = 1,
    SIM_EV_DISK = 2,   /* the head write of a disk is durable */
    SIM_EV_CLIENT = 3, /* a client wakes up */
};

struct sim_ev {
    raft_time at;
    uint64_t order; /* ties broken by scheduling order */
    uint8_t kind;
    uint8_t node;
    uint32_t incarnation;
    uint64_t a, b, c;
    struct sim_msg *msg;
};

/* ---- Clients and their history ---- */

enum sim_client_phase {
    SIM_CL_IDLE = 0,
    SIM_CL_SUBMIT,     /* needs to (re)send its write or read */
    SIM_CL_WAIT_APPLY, /* write accepted at (index, term) by target */
    SIM_CL_WAIT_READ,  /* read index asked of target */
    SIM_CL_WAIT_SERVE, /* read index known: waiting for target's applied >= index */
    SIM_CL_DONE,
};

struct sim_client {
    uint8_t id;
    uint8_t phase;
    bool active;          /* starts new operations */
    bool final_read;      /* after stopping, reads its key once more */
    bool follower_reads;  /* send reads to any node, not only the presumed leader */
    raft_id fixed_target; /* send every attempt there (0: none) */
    uint32_t seq;
    uint8_t kind; /* enum lin_kind */
    uint8_t key;
    char value[24];
    uint32_t len;
    size_t hist; /* index of the current operation in the history */
    raft_id target;
    uint32_t target_inc;
    raft_index index;
    raft_term term;
    uint64_t read_id;
    raft_time deadline;
    raft_id hint;
    uint64_t gen; /* only the latest wake-up counts */
    uint32_t attempts;
};

struct sim_hop {
    uint8_t kind; /* enum lin_kind */
    uint8_t client;
    uint8_t key;
    uint32_t seq;
    char *value; /* owned */
    uint32_t len;
    uint64_t invoke, response; /* logical times (LIN_PENDING: no answer) */
    raft_time t_invoke, t_response;
    raft_id node;
    raft_index index; /* writes: where it was acknowledged; reads: the read index */
};

/* ---- Global records for the safety checks ---- */

struct sim_seen {
    raft_term term;
    raft_term prev_term; /* 0 when unknown */
    uint64_t hash;
};

struct sim_seen_list {
    struct sim_seen *recs;
    uint32_t n;
};

struct sim_committed {
    raft_term term; /* 0: not known committed */
    uint8_t type;
    uint64_t hash;
    raft_id first_node;
    /* An upper bound of the term in which it was committed: the lowest current term of a node
     * applying it. Leaders of later terms must hold it (Leader Completeness, Raft §5.4). */
    raft_term commit_term_max;
};

struct sim_ack {
    raft_index index;
    raft_term term;
    uint64_t hash;
    uint8_t client;
    uint32_t seq;
};

/* ---- Options ---- */

struct sim_opts {
    uint64_t seed;
    int n_nodes;             /* initial voters, ids 1..n_nodes */
    struct raft_config raft; /* template for every node (id and seed are set per node) */
    uint32_t net_delay_min, net_delay_max;   /* ms */
    uint32_t disk_delay_min, disk_delay_max; /* ms per write (persist batch or snapshot) */
    int n_clients;
    int n_keys;
    uint32_t client_timeout; /* ms a client waits before retrying elsewhere */
    uint32_t think_max;      /* ms between a client's operations */
    bool checks;             /* the safety checks (the benchmark turns them off) */
    /* With checks: also check the driver contract of raft.h (a vote, an append's ack or a
     * snapshot's "done" goes out only once durable; only durable entries are applied, none
     * before a snapshot's install is reported durable). On by default; RAFT_NO_CONTRACT_CHECKS=1
     * turns it off, to show that the safety checks alone catch a core that breaks the contract,
     * through the crashes that expose it. */
    bool contract_checks;
    bool lying_disk; /* for testing the checks: a crash also loses the last synced entries and
                        the vote, as a disk that acknowledges fsync too early would */
    int trace;       /* 0: keep a ring of notable events; 1: also print them live;
                        2: also messages (default from RAFT_TRACE) */
};

/* Defaults: raft_config_default(), 1-5 ms network, 1-10 ms disks, 3 clients on 3 keys. */
void sim_opts_default(struct sim_opts *o, uint64_t seed, int n_nodes);

#define SIM_TRACE_LINES 4096
#define SIM_TRACE_WIDTH 200

struct sim {
    struct sim_opts o;
    uint64_t rng;
    raft_time now;
    uint64_t lclock; /* logical clock for the client history */
    uint64_t order;
    struct raft_conf initial_conf;

    struct sim_node nodes[SIM_MAX_NODES + 1]; /* [0] unused */

    struct sim_ev *heap;
    size_t n_heap, cap_heap;

    /* The network. cut[a][b]: messages from a never reach b. */
    bool cut[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
    uint32_t drop_pm, dup_pm; /* per mille */
    uint32_t delay_min, delay_max;
    /* Optional: return true to drop m (scenarios use it to starve one link of one type). */
    bool (*filter)(struct sim *s, const struct raft_msg *m, void *arg);
    void *filter_arg;
    /* Optional: ms to hold m back on top of its random delay (an adversarial scheduler). */
    raft_time (*hold)(struct sim *s, const struct raft_msg *m, void *arg);
    void *hold_arg;

    struct sim_client clients[SIM_MAX_CLIENTS];
    int n_clients;
    uint64_t next_read_id;
    struct sim_hop *hist;
    size_t n_hist, cap_hist;

    /* Safety records. */
    raft_id *leader_of_term; /* Election Safety */
    size_t n_leader_of_term;
    struct sim_committed *committed; /* index -> the entry applied there */
    size_t cap_committed;
    raft_index max_committed;
    struct sim_seen_list *seen; /* index -> entries seen there in any log (Log Matching) */
    size_t cap_seen;
    raft_id *votes[SIM_MAX_NODES + 1]; /* [voter][term] -> candidate granted (not pre-votes) */
    size_t n_votes[SIM_MAX_NODES + 1];
    struct sim_ack *acks;
    size_t n_acks, cap_acks;
    uint64_t *snap_digest; /* index -> hash of snapshot bytes taken at it (0: none) */
    size_t cap_snap_digest;
    raft_index conf_index; /* the latest committed configuration */
    struct raft_conf conf;

    /* The first failed check. */
    bool failed;
    char failure[512];

    /* Trace ring. */
    char (*trace)[SIM_TRACE_WIDTH];
    uint64_t n_trace;
    uint64_t digest; /* of every step's outcome: the determinism test compares it */

    /* Counters. */
    uint64_t n_steps, n_msgs_sent, n_msgs_delivered, n_dropped, n_duplicated;
    uint64_t n_snapshots_taken, n_snapshots_installed, n_crashes, n_elections, n_acked_writes;
    uint64_t n_reads_served, n_applied_entries;
};

/* Creates the cluster (nodes 1..o->n_nodes started with empty disks). Returns NULL on NOMEM. */
struct sim *sim_new(const struct sim_opts *o);
void sim_free(struct sim *s);

/* Processes events until virtual time `until` (or the first failed check). Returns !s->failed. */
bool sim_run_until(struct sim *s, raft_time until);
bool sim_run_for(struct sim *s, raft_time ms);
/* Processes events until pred(s, arg) holds (checked after each event), the first failed check or
 * virtual time `deadline`. Returns true when pred holds. */
bool sim_run_until_pred(struct sim *s, bool (*pred)(struct sim *s, void *arg), void *arg,
                        raft_time deadline);

/* The term of the entry at index in id's log, as its core holds it (0: unknown, compacted or
 * past the end). */
raft_term sim_log_term(struct sim *s, raft_id id, raft_index index);

/* The running leader with the highest term (0: none). */
raft_id sim_leader(struct sim *s);
/* Running leaders, whatever their term. */
int sim_count_leaders(struct sim *s);
struct sim_node *sim_node(struct sim *s, raft_id id);
/* Whether c has id (and, when voter is not NULL, whether as a voter). */
bool sim_conf_has(const struct raft_conf *c, raft_id id, bool *voter);
bool sim_is_up(struct sim *s, raft_id id);

/* Faults. */
void sim_crash(struct sim *s, raft_id id);
void sim_restart(struct sim *s, raft_id id);
/* Cuts (or restores) the one-way link from -> to. */
void sim_cut(struct sim *s, raft_id from, raft_id to, bool cut);
/* Cuts every link between id and the others, both ways. */
void sim_isolate(struct sim *s, raft_id id);
/* Splits into two sides: nodes whose bit (1 << id) is set in side_mask and the rest. */
void sim_partition(struct sim *s, uint32_t side_mask);
/* Restores every link. */
void sim_heal(struct sim *s);

/* Requests. The return value is raft_step's. */
int sim_propose(struct sim *s, raft_id id, const void *data, uint32_t len, raft_index *index,
                raft_term *term);
int sim_transfer(struct sim *s, raft_id leader, raft_id target);
/* For RAFT_CONF_ADD, starts the new node (empty disk) when the leader accepts. */
int sim_conf_change(struct sim *s, raft_id leader, uint8_t op, raft_id id);

/* Clients: n clients start a workload of puts, appends and gets on the keys. */
void sim_clients_start(struct sim *s, int n, bool follower_reads);
/* Clients finish their current operation, read their key once more (final_read), and stop. */
void sim_clients_stop(struct sim *s, bool final_read);
bool sim_clients_done(struct sim *s);
/* Client cid (which must be stopped or never started) performs one operation on node target
 * (0: wherever it finds the leader; a fixed target is retried there). Returns the history index
 * of the operation (s->hist[i].response is LIN_PENDING until it completes). */
size_t sim_client_op(struct sim *s, int cid, uint8_t kind, uint8_t key, raft_id target);
/* True when the clients are done and every member of the committed configuration is running
 * and applied what the leader committed (a predicate for sim_run_until_pred; arg unused). */
bool sim_settled(struct sim *s, void *arg);
/* Checks the client history for linearizability; on violation fails s. Returns !s->failed. */
bool sim_check_linearizable(struct sim *s);
/* End-of-run checks: every running member applied the same entries and holds the same store;
 * every acknowledged write is still committed. Returns !s->failed. */
bool sim_check_converged(struct sim *s);

/* Runs an idle second (no clients, no faults) and fails s when the nodes send much more than
 * heartbeats and their answers: a message storm. Returns !s->failed. */
bool sim_check_idle_traffic(struct sim *s);

/* Records a failed check (the first one is kept) and traces it. */
void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a line to the trace. */
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the last `lines` trace lines (0: all kept) and the failure, if any. */
void sim_dump(struct sim *s, FILE *f, size_t lines);

/* Random numbers from the simulation's seed. */
uint64_t sim_rand(struct sim *s);
/* Uniform in [lo, hi]. */
uint64_t sim_range(struct sim *s, uint64_t lo, uint64_t hi);
bool sim_chance(struct sim *s, uint32_t per_mille);

#endif
