/* A running Raft replica: drives the pure core (raft/) with a LevelDB store, a transport and a
 * state machine. One loop thread owns the core; other threads reach it only through a queue.
 * Order per step (STYLE.md): persist -> send -> report persisted -> apply. */
#ifndef DFS_MASTER_RAFT_NODE_H
#define DFS_MASTER_RAFT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft_store.h"
#include "raft/raft.h"

/* The replicated state machine. Every callback runs on the loop thread, one at a time. */
struct rn_fsm {
    void *ctx;
    /* Applies a committed NORMAL entry. May set *result (malloc'd, len *result_len) to hand to
     * the proposer's callback; the node frees it afterwards. Returns 0 or a negative cm code
     * that is also handed to the proposer (the entry is applied either way: a command that
     * fails, fails the same way on every replica). */
    int (*apply)(void *ctx, raft_index index, const void *data, size_t len, void **result,
                 size_t *result_len);
    /* Writes the whole state to w (rs_snapshot_append). Returns 0 or a negative cm code. */
    int (*snapshot)(void *ctx, struct rs_snapshot_writer *w);
    /* Replaces the whole state with the snapshot in the file at path (size bytes). */
    int (*restore)(void *ctx, const char *path, uint64_t size);
};

/* How the node sends messages. send() is called on the loop thread and must not block: it
 * queues m (deep-copying what it needs; RAFT_MSG_SNAPSHOT chunks have data NULL and the
 * transport reads [offset, offset+len) of the snapshot file at snapshot_path itself). */
struct rn_transport {
    void *ctx;
    void (*send)(void *ctx, const struct raft_msg *m, const char *snapshot_path);
    /* Optional: the configuration changed (called on the loop thread, also once at start). */
    void (*conf_changed)(void *ctx, const struct raft_conf *conf);
    /* Optional: the messages of one update were all given to send() (on the loop thread). */
    void (*flush)(void *ctx);
};

struct rn_config {
    struct raft_config raft;  /* id, timeouts, snapshot threshold ... (seed set by the node) */
    struct raft_conf initial; /* used when the store holds no snapshot yet */
    struct raft_store *store; /* opened by the caller; owned by the node from rn_start on, also
                                 when rn_start fails */
};

struct rn_node;

/* Recovers from the store, restores the state machine from the snapshot and starts the loop
 * and persist threads. Errors: those of rs_open/rs_load (CM_E_STORE, CM_E_BUSY ...), a failed
 * restore, CM_E_NOMEM. */
int rn_start(const struct rn_config *cfg, const struct rn_fsm *fsm, const struct rn_transport *tr,
             struct rn_node **out);
/* Stops the threads (answering waiting proposals and reads with CM_E_UNAVAILABLE) and closes
 * the store. NULL is a no-op. */
void rn_stop(struct rn_node *n);

/* A message from a peer (deep-copied before return). Returns 0, or CM_E_BUSY when the queue is
 * full (the message is dropped; Raft retries). */
int rn_receive(struct rn_node *n, const struct raft_msg *m);
/* The k messages of one request, queued together (the same contract as rn_receive). */
int rn_receive_many(struct rn_node *n, const struct raft_msg *const *ms, size_t k);

/* Called on the loop thread when a proposal is applied (err 0 and the state machine's result,
 * borrowed for the call) or failed (NOT_LEADER, UNAVAILABLE when leadership was lost before
 * commit, TOO_LARGE ...; result NULL). */
typedef void (*rn_done_fn)(void *arg, int err, const void *result, size_t len);
/* Proposes a command; cb is always called exactly once. */
void rn_propose(struct rn_node *n, const void *data, size_t len, rn_done_fn cb, void *arg);

/* Called on the loop thread once a linearizable read may be served (err 0: the state machine is
 * at least at the read index; read it now, on this thread) or could not be confirmed. */
typedef void (*rn_read_fn)(void *arg, int err);
void rn_read(struct rn_node *n, rn_read_fn cb, void *arg);

/* A linearizable read on the calling thread, without the loop: while this node holds the leader
 * lease (raft_lease_until), runs fn(arg) under a lock that keeps the state machine as it is
 * (fn must only read it, and must not call into this node) and returns true; otherwise returns
 * false at once (use rn_read). Off with lease reads off. */
bool rn_read_fast(struct rn_node *n, void (*fn)(void *), void *arg);

/* Admin operations on the leader; cb(arg, err, NULL, 0) once the change is committed (conf
 * changes) or the transfer finished (target became leader) or failed. */
void rn_transfer(struct rn_node *n, raft_id target, rn_done_fn cb, void *arg);
void rn_conf_change(struct rn_node *n, int op, raft_id id, const char *addr, rn_done_fn cb,
                    void *arg);

/* Runs fn(arg) on the loop thread (for reading the state machine without a read index, e.g. by
 * /status) and waits for it. */
void rn_run_sync(struct rn_node *n, void (*fn)(void *arg), void *arg);

/* A leadership this node learned of: a new leader, or the same one in a new term (Raft §5.2:
 * at most one leader per term). A lost leader (0) is no change until the next one is known. */
struct rn_leader_change {
    uint64_t term;
    raft_id leader;
    uint64_t unix_ms; /* wall-clock time this node learned of it */
};
#define RN_LEADER_CHANGES_MAX 16

/* A consistent copy of the core's status plus driver counters, safe from any thread. */
struct rn_status {
    struct raft_status raft;
    uint64_t elections;      /* times this node started an election */
    uint64_t leader_changes; /* leader id changes seen */
    uint64_t proposals;      /* proposals accepted by this node as leader */
    uint64_t reads_fast;     /* reads served by rn_read_fast (under the leader lease) */
    uint64_t applied;        /* entries applied */
    uint64_t fsyncs;         /* synced store batches */
    uint64_t fsync_us_total;
    uint64_t fsync_hist[16]; /* fsync latency histogram, bucket i: < 2^i * 64 us */
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;
    /* The last n_recent_leaders leaderships seen, oldest first (at most RN_LEADER_CHANGES_MAX). */
    struct rn_leader_change recent_leaders[RN_LEADER_CHANGES_MAX];
    uint32_t n_recent_leaders;
};
void rn_get_status(struct rn_node *n, struct rn_status *out);
/* The known leader (0: none) and whether it is this node; cheap, any thread. */
void rn_leader(struct rn_node *n, raft_id *leader, bool *is_self);

#endif
