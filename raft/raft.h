/* The Raft core: a pure, deterministic state machine driven by raft_step(). It does no I/O at
 * all (no sockets, files, threads, clocks, getenv, printf or rand()); time and randomness come in
 * through events and the seed, and everything the driver must do comes out in an update. The
 * same seed and the same events give the same updates, byte for byte.
 *
 * Paper references: "Raft" = Ongaro & Ousterhout, "In Search of an Understandable Consensus
 * Algorithm" (2014), "thesis" = Ongaro, "Consensus: Bridging Theory and Practice" (2014).
 *
 * The driver's loop (one thread owns a struct raft):
 *   1. raft_step(r, &event, &update)
 *   2. persist update.persist (term/vote, truncation, entries, snapshot) as ONE synced batch and,
 *      when done, deliver RAFT_EV_PERSISTED with update.persist.seq (this may happen later, in
 *      parallel with 3, from the driver's point of view: the core never puts in an update a
 *      message whose correctness depends on state that is not yet reported persisted, so the
 *      leader's own disk write overlaps with replication, thesis §10.2.1). Batches must become
 *      durable in seq order;
 *   3. send update.msgs (each to msg.to; losing, duplicating or reordering them is safe);
 *   4. apply update.committed in order, then serve update.reads whose index <= applied
 *      (a snapshot received from the leader replaces the state machine at a precise point:
 *      see raft_persist.install_snapshot);
 *   5. take a snapshot if update.snapshot_wanted, then deliver RAFT_EV_SNAPSHOT_TAKEN;
 *   6. call raft_step with a RAFT_EV_TICK no later than update.next_timeout.
 * Everything an update points to is owned by the core and stays valid only until the next call
 * of raft_step() or raft_free() on the same struct raft: copy or serialize what you keep.
 * Everything an event points to is owned by the caller; the core copies what it keeps. */
#ifndef DFS_RAFT_H
#define DFS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id;    /* a node's id; 0 means "none" */
typedef uint64_t raft_term;  /* 0 before any election */
typedef uint64_t raft_index; /* log positions start at 1; 0 means "before the log" */
typedef uint64_t raft_time;  /* milliseconds on the driver's monotonic clock */

/* Error codes returned by raft_step and raft_new (negative; the core does not depend on
 * common/, the driver maps them). Whatever raft_step returns, the update it filled is valid and
 * must be handled. */
enum raft_err {
    RAFT_OK = 0,
    /* Allocation failed. A refused proposal, conf change, transfer or read changed nothing; a
     * message that could not be processed counts as lost (its newer term may have been
     * adopted first, as paper §5.1 requires of any message). */
    RAFT_E_NOMEM = -1,
    RAFT_E_NOT_LEADER = -2, /* proposal, conf change or transfer on a non-leader */
    /* A conf change while one is uncommitted or while this leader has not yet committed an
     * entry of its own term (thesis §4.1), or a conf change / transfer during a transfer. */
    RAFT_E_BUSY = -3,
    /* A malformed event or message; nothing changed and nothing is answered, except that an
     * out-of-order snapshot chunk is answered with the offset expected. Malformed is: unknown
     * type; from 0, from this node, to another node; a term or index >= 2^62; a VOTE whose last
     * log term exceeds its term or is 0 with a nonzero index (or the reverse); an APPEND whose
     * entries are not consecutive from prev_index + 1, decrease in term, exceed the message's
     * term, have an unknown type, data NULL with len > 0, or a CONF entry that does not decode,
     * or prev_index 0 with a nonzero prev_term (or the reverse); a SNAPSHOT chunk that is out
     * of order, reaches past size, has done != (offset + len == size), data NULL with len > 0,
     * or a conf that is NULL, malformed or without voters; a VOTE_RESP, APPEND_RESP,
     * SNAPSHOT_RESP or READ_INDEX from a node that is neither in the configuration nor tracked
     * by this leader (requests from leaders and candidates are taken from anyone: they may
     * know a newer configuration). Events:
     * unknown type, time going backwards, a PERSISTED seq never handed out, a snapshot that is
     * not newer than the last or beyond the applied index or of the wrong term, an empty or
     * CONF proposal, a bad conf change (see raft_conf_op) or transfer target. */
    RAFT_E_INVAL = -4,
    RAFT_E_TOO_BIG = -5,      /* a proposal larger than config.max_entry_bytes */
    RAFT_E_TRANSFERRING = -6, /* proposals refused while leadership is being transferred */
    /* This node is not in its configuration (it was removed, or never added): proposals and
     * conf changes are refused and it never campaigns. */
    RAFT_E_SHUTDOWN = -7,
};

/* Longest opaque address string a configuration carries per node (NUL included). */
#define RAFT_ADDR_MAX 128
/* Most nodes (voters and non-voters) in one configuration. */
#define RAFT_MAX_NODES 16

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRE_CANDIDATE = 1, /* running a pre-vote (thesis §9.6) */
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};

/* One member of a configuration. addr is opaque to the core (the driver stores what it needs
 * to reach the node, e.g. its peer URL); NUL-terminated. */
struct raft_node {
    raft_id id;
    bool voter; /* false: a non-voter (learner) that receives the log but does not vote */
    char addr[RAFT_ADDR_MAX];
};

/* A cluster configuration (thesis §4). Changes happen one server at a time (§4.1). A node uses
 * the latest configuration in its log, committed or not (§4.1); it reverts to the previous one
 * if that entry is truncated. Ids are nonzero and distinct. */
struct raft_conf {
    uint32_t n;
    struct raft_node nodes[RAFT_MAX_NODES];
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* a client command: data is the state machine's */
    RAFT_ENTRY_NOOP = 1,   /* appended by a new leader (paper §8); data empty; apply nothing */
    RAFT_ENTRY_CONF = 2,   /* data is raft_conf_encode() of the new configuration */
};

struct raft_entry {
    raft_term term;
    raft_index index;
    uint8_t type; /* enum raft_entry_type */
    uint32_t len;
    const void *data; /* len bytes; may be NULL when len is 0 */
};

/* ---- Messages (paper Figure 2; thesis Figures 3.1, 4.x, 6.x, 9.x) ----
 * Message terms follow paper §5.1: a newer term makes the receiver a follower of that term
 * (except a vote inside the leader lease, or a pre-vote); a message of an older term is
 * ignored, but an APPEND, SNAPSHOT, VOTE or READ_INDEX of an older term is answered with the
 * receiver's term so that the sender steps down or catches up. */

enum raft_msg_type {
    RAFT_MSG_VOTE = 1, /* RequestVote, or a pre-vote when .vote.pre (thesis §9.6) */
    RAFT_MSG_VOTE_RESP = 2,
    RAFT_MSG_APPEND = 3, /* AppendEntries; a heartbeat when n_entries == 0 */
    RAFT_MSG_APPEND_RESP = 4,
    RAFT_MSG_SNAPSHOT = 5, /* one chunk of InstallSnapshot (thesis §5.3, Figure 5.3) */
    RAFT_MSG_SNAPSHOT_RESP = 6,
    RAFT_MSG_TIMEOUT_NOW = 7, /* leadership transfer: start an election now (thesis §3.10) */
    RAFT_MSG_READ_INDEX = 8,  /* a follower asks the leader for a read index (thesis §6.4) */
    RAFT_MSG_READ_INDEX_RESP = 9,
};

/* A pre-vote carries the term the candidate would campaign in (its term + 1) without moving
 * to it. Votes (real or pre) are granted only to a log at least as up to date (paper §5.4.1),
 * at most one real vote per term, and not within election_timeout_min of hearing from a
 * leader (the leader lease, thesis §4.2.3) unless .transfer is set. A real grant is sent only
 * once the vote is durable. */
struct raft_msg_vote {
    bool pre;                  /* a pre-vote: the receiver changes no state */
    bool transfer;             /* sent because of TIMEOUT_NOW: ignore the leader lease */
    raft_index last_log_index; /* candidate's last log entry (paper §5.4.1) */
    raft_term last_log_term;
};

/* A granted pre-vote is answered in the candidate's future term; refusals carry the voter's
 * term. */
struct raft_msg_vote_resp {
    bool pre;
    bool granted;
};

/* A heartbeat has prev_index = the follower's known match (so it never fails the consistency
 * check) and lets the follower commit up to min(commit, prev_index) (paper Figure 2). */
struct raft_msg_append {
    raft_index prev_index;
    raft_term prev_term;
    raft_index commit; /* leader's commit index */
    uint64_t read_ctx; /* ReadIndex round this message confirms; 0 = none */
    uint32_t n_entries;
    const struct raft_entry *entries; /* n_entries, consecutive from prev_index + 1 */
};

/* A success is sent only once the follower's log is durable up to match_index (thesis
 * §10.2.1). On failure (fast backtracking, paper §5.3): conflict_term 0 means the log is too
 * short and conflict_index is its last index + 1; otherwise conflict_term is the follower's
 * term at prev_index and conflict_index the first index of that term above the follower's
 * commit index. The leader resumes after its own last entry of conflict_term, or at
 * conflict_index when it has none. */
struct raft_msg_append_resp {
    bool success;
    raft_index match_index;    /* on success: the last index now known to match the leader */
    raft_index conflict_index; /* on failure: where the leader should try next (§5.3 fast */
    raft_term conflict_term;   /*   backtracking: first index of conflict_term, or 0 term) */
    raft_index last_index;     /* the follower's last log index (a hint) */
    uint64_t read_ctx;         /* echoed from the append */
};

/* Chunks of one snapshot are sent in offset order, a window of them in flight (bounded by
 * max_inflight_bytes and max_inflight_msgs); a chunk at offset == size with len 0 and done
 * asks again for the final answer. The receiver accepts offset 0 (starting over) or exactly
 * the offset it expects. */
struct raft_msg_snapshot {
    raft_index last_index; /* the snapshot replaces the log up to and including this entry */
    raft_term last_term;
    /* The configuration as of last_index, on every chunk; never NULL. In an update it belongs
     * to the core like every pointer of an update (a driver that keeps the message copies it);
     * in a received message it belongs to the caller, and the core copies what it keeps. */
    const struct raft_conf *conf;
    uint64_t size;    /* total snapshot size in bytes */
    uint64_t offset;  /* this chunk's position in the snapshot */
    uint32_t len;     /* this chunk's length (at most config.snapshot_chunk_bytes) */
    const void *data; /* NULL in an update: the driver fills the chunk from its snapshot
                         whose last index is last_index, [offset, offset+len), before
                         sending, and drops the message if it no longer has that snapshot
                         (the leader then restarts with its current one); set on receive */
    bool done;        /* the last chunk (offset + len == size) */
};

/* Answers every chunk. next_offset acknowledges everything before it (a resume point after a
 * lost or out-of-order chunk). done tells the leader that the receiver holds everything up to
 * last_index durably, so that its match index may become last_index: it is sent once the
 * batch that installs the snapshot is reported persisted (RAFT_EV_PERSISTED), or, when the
 * receiver had already committed last_index, once its log is durable up to last_index and no
 * install of its is waiting for persistence. */
struct raft_msg_snapshot_resp {
    raft_index last_index; /* the snapshot this answers */
    uint64_t next_offset;  /* the offset the receiver expects next (resume point) */
    bool done;             /* the receiver holds last_index durably (see above) */
    bool rejected;         /* the receiver wants the snapshot from the start */
};

struct raft_msg_read_index {
    uint64_t read_id; /* the follower's id for this read, echoed back */
};

struct raft_msg_read_index_resp {
    uint64_t read_id;
    raft_index index; /* the read may be served once applied >= index */
    bool ok;          /* false: the receiver is no longer leader; retry elsewhere */
};

struct raft_msg {
    uint8_t type; /* enum raft_msg_type */
    raft_id from;
    raft_id to;
    raft_term term; /* sender's current term (paper §5.1); see raft_msg_vote for pre-votes */
    union {
        struct raft_msg_vote vote;
        struct raft_msg_vote_resp vote_resp;
        struct raft_msg_append append;
        struct raft_msg_append_resp append_resp;
        struct raft_msg_snapshot snapshot;
        struct raft_msg_snapshot_resp snapshot_resp;
        struct raft_msg_read_index read_index;
        struct raft_msg_read_index_resp read_index_resp;
    } u;
};

/* ---- Events: everything that happens to a node ---- */

enum raft_event_type {
    RAFT_EV_TICK = 1,    /* only time passed */
    RAFT_EV_RECEIVE = 2, /* a message arrived (.receive) */
    /* Append commands to the log (.propose), leader only. Entries are NORMAL (or NOOP); a
     * CONF entry is refused (use RAFT_EV_CONF_CHANGE). Refused on a removed node (SHUTDOWN),
     * a non-leader (NOT_LEADER) and during a transfer (TRANSFERRING). */
    RAFT_EV_PROPOSE = 3,
    /* Every persist batch with seq <= .persisted.seq is durable. Stale seqs are ignored. */
    RAFT_EV_PERSISTED = 4,
    /* The driver saved a snapshot of its applied state up to .index. The core forgets the log
     * up to index - snapshot_trailing (the driver may delete the same on disk) and sends this
     * snapshot to followers that need older entries. */
    RAFT_EV_SNAPSHOT_TAKEN = 5,
    /* Leader: hand leadership to .transfer.target (thesis §3.10): proposals are refused until
     * the target wins or an election timeout (election_timeout_max) passes; the target gets
     * TIMEOUT_NOW once its log matches the leader's last index. */
    RAFT_EV_TRANSFER = 6,
    RAFT_EV_CONF_CHANGE = 7, /* leader: change membership (.conf_change, thesis §4.1) */
    /* Ask for a linearizable read index (.read, thesis §6.4). The answer comes in
     * update.reads, in this step or a later one: on the leader once this term has a committed
     * entry and a heartbeat round confirmed leadership (at once with a single voter); on a
     * follower via its leader (RAFT_MSG_READ_INDEX), or ok = false without a known leader,
     * when the leader changes, or after election_timeout_max without an answer. */
    RAFT_EV_READ = 8,
};

/* Single-server changes (thesis §4.1). A configuration takes effect when its entry is
 * appended, on the leader as on followers. The leader refuses a change while another is
 * uncommitted or before it committed an entry of its own term (RAFT_E_BUSY). */
enum raft_conf_op {
    /* Add .id (nonzero, not a member) as a non-voter with .addr (shorter than RAFT_ADDR_MAX;
     * NULL is ""). The leader promotes every non-voter automatically (a PROMOTE entry) once
     * its match index reaches the commit index at a check (each acknowledgement and each
     * heartbeat interval), one at a time. */
    RAFT_CONF_ADD = 1,
    RAFT_CONF_PROMOTE = 2, /* make non-voter .id a voter now */
    /* Remove .id (voter or not; not the last voter). A removed node still receives the log
     * until its removal commits, so that it learns of it; a removed leader keeps leading
     * without counting itself and steps down once the entry commits (thesis §4.2.2). */
    RAFT_CONF_REMOVE = 3,
};

struct raft_event {
    uint8_t type;  /* enum raft_event_type */
    raft_time now; /* the driver's clock at delivery; must never go backwards */
    union {
        struct {
            const struct raft_msg *msg;
        } receive;
        struct {
            uint32_t n;                       /* at least 1 */
            const struct raft_entry *entries; /* only type, len and data are read */
        } propose;
        struct {
            uint64_t seq;
        } persisted;
        struct {
            raft_index index; /* last entry the snapshot includes (<= applied index) */
            raft_term term;   /* that entry's term */
            uint64_t size;    /* snapshot size in bytes */
        } snapshot_taken;
        struct {
            raft_id target; /* 0: pick the most up-to-date voter */
        } transfer;
        struct {
            uint8_t op; /* enum raft_conf_op */
            raft_id id;
            const char *addr; /* for RAFT_CONF_ADD: copied into the conf; NULL otherwise */
        } conf_change;
        struct {
            uint64_t read_id; /* the caller's id, echoed in update.reads */
        } read;
    } u;
};

/* ---- The update: what the driver must do after a step ---- */

/* One batch, applied in this order: hard state, install_snapshot, truncate_from, entries. A
 * batch with install_snapshot carries no truncation and no entries. */
struct raft_persist {
    uint64_t seq; /* 0: nothing to persist; else deliver RAFT_EV_PERSISTED{seq} when durable */
    bool has_hard_state; /* term and vote changed: store both */
    raft_term term;
    raft_id vote;
    raft_index truncate_from; /* 0: none; else delete log entries with index >= this first */
    uint32_t n_entries;       /* then append these (consecutive) */
    const struct raft_entry *entries;
    /* A snapshot received from the leader is complete: make the chunks written so far (see
     * snapshot_chunk) the current snapshot and drop the log up to snapshot_index (entries after
     * it are kept when the log has an entry at snapshot_index with snapshot_term, else the
     * whole log is dropped), all in this batch.
     * The state machine: when this batch is durable, and BEFORE calling raft_step with the
     * RAFT_EV_PERSISTED event whose seq covers this batch's seq, restore the state machine from
     * the snapshot now on disk (the latest one installed, when several installs are covered);
     * its applied index becomes snapshot_index. From this update until that event is stepped,
     * update.committed stays empty whatever the commit index; the entries handed out after it
     * start at snapshot_index + 1. So a driver that restores on that report and applies
     * update.committed as usual never applies an entry to the state the snapshot replaces, nor
     * one the snapshot already contains. A crash before the report leaves the previous snapshot
     * and log in effect on restart. */
    bool install_snapshot;
    raft_index snapshot_index;
    raft_term snapshot_term;
    const struct raft_conf *snapshot_conf;
};

/* A chunk of an incoming snapshot to write into the pending snapshot file at offset (offset 0
 * starts a new pending file, discarding any previous one). Not durable until install. At most
 * one per update; data is a copy owned by the core. */
struct raft_snapshot_chunk {
    bool present;
    raft_index last_index;
    uint64_t offset;
    uint32_t len;
    const void *data;
};

struct raft_read {
    uint64_t read_id;
    raft_index index; /* serve the read once the applied index >= index; 0 when !ok */
    bool ok;          /* false: no leader could confirm it; the caller should retry */
};

struct raft_update {
    struct raft_persist persist;
    struct raft_snapshot_chunk snapshot_chunk;

    uint32_t n_msgs;
    const struct raft_msg *msgs;

    /* Entries now committed and locally persisted, to apply in order (NOOP and CONF entries
     * included; the state machine ignores them). Consecutive; the first follows the previous
     * update's last (or boot.applied, or an installed snapshot's last index). Each entry exactly
     * once. Empty while a snapshot install waits for persistence (raft_persist). */
    uint32_t n_committed;
    const struct raft_entry *committed;

    uint32_t n_reads;
    const struct raft_read *reads;

    /* For RAFT_EV_PROPOSE: where the first proposed entry went (the rest follow). A client
     * waiting on (index, term) succeeded when an entry with that index AND term is applied, and
     * lost when a different term shows up at that index. */
    raft_index proposed_index;
    raft_term proposed_term;

    /* The applied index is snapshot_threshold past the last snapshot: set once per threshold
     * (again after another threshold if no snapshot came). */
    bool snapshot_wanted;
    bool role_changed;      /* role, term or leader changed in this step (for logging) */
    raft_time next_timeout; /* call raft_step (RAFT_EV_TICK) no later than this */
};

/* ---- Configuration and construction ---- */

/* Timeouts: an election starts after a random timeout in [election_timeout_min,
 * election_timeout_max) without hearing from a leader (paper §5.2); votes are refused within
 * election_timeout_min of hearing from one (lease, thesis §4.2.3); with check_quorum a leader
 * steps down when a majority of voters was silent for election_timeout_max (thesis §6.2); a
 * transfer is abandoned, and a forwarded read fails, after election_timeout_max. */
struct raft_config {
    raft_id id;
    uint64_t seed;                 /* the only source of randomness (mixed with id, so nodes
                                      sharing a seed still draw different timeouts) */
    uint32_t election_timeout_min; /* ms; default 150 (paper §9.3) */
    uint32_t election_timeout_max; /* ms; default 300; must exceed the min */
    uint32_t heartbeat_interval;   /* ms; default 50; must be below the min */
    uint32_t max_inflight_msgs;    /* appends in flight per follower; default 64; <= 65536 */
    uint64_t max_inflight_bytes;   /* bytes in flight per follower; default 8 MiB */
    uint32_t max_entries_per_msg;  /* default 1024 */
    uint64_t max_bytes_per_msg;    /* default 1 MiB (a larger single entry goes alone) */
    uint32_t max_entry_bytes;      /* largest proposal accepted; default 4 MiB */
    uint32_t snapshot_chunk_bytes; /* default 1 MiB */
    uint64_t snapshot_threshold;   /* entries since the last snapshot; default 10000 */
    uint64_t snapshot_trailing;    /* entries kept after a snapshot for slow followers;
                                      default 1000 */
    bool pre_vote;                 /* default true (thesis §9.6) */
    bool check_quorum;             /* default true (thesis §6.2, leader steps down) */
    /* Leader lease reads (thesis §6.4.1); default false. Needs check_quorum. A leader answers a
     * read at once, without a heartbeat round, while a majority of voters acknowledged a
     * heartbeat it sent less than 9/10 of election_timeout_min ago: those voters refuse to vote
     * for anyone else until election_timeout_min after receiving it, so no other leader can
     * exist yet (the 1/10 covers clocks running at different rates). To keep that true across
     * restarts, a node with this on also refuses votes for election_timeout_min after it
     * starts; a leader that begins a transfer (whose target campaigns past the lease) stops
     * using the lease for the rest of its term. Safe while clocks' rates differ by less than
     * 10%; ReadIndex alone assumes nothing about clocks. */
    bool lease_read;
};

/* Fills every field with its default; the caller then sets id and seed. */
void raft_config_default(struct raft_config *c);

/* What the node recovered from its disk. A new node passes term 0, vote 0, no snapshot, no
 * entries and the initial configuration of the cluster in .conf. A node joining a running
 * cluster passes the current members as voters and itself as a non-voter (or a configuration
 * without itself, or an empty one): it never campaigns, follows the leader that replicates to
 * it (appends or a snapshot) and, like every node, uses the latest configuration in its log
 * (thesis §4.1), so it campaigns and counts itself only once a configuration in its log
 * makes it a voter (the leader's PROMOTE entry reaching it).
 * While a non-empty configuration leaves it out it is "removed" (RAFT_E_SHUTDOWN). */
struct raft_boot {
    raft_term term;
    raft_id vote;
    raft_index snapshot_index; /* 0: no snapshot */
    raft_term snapshot_term;
    uint64_t snapshot_size;
    struct raft_conf conf; /* the snapshot's conf, or the initial one without snapshot */
    uint32_t n_entries;    /* the persisted log (copied); entries up to snapshot_index are
                              skipped, the rest must start at snapshot_index + 1 */
    const struct raft_entry *entries;
    raft_index applied; /* what the state machine already applied (>= snapshot_index);
                           entries up to it are not handed out again; the commit index
                           starts here */
};

struct raft; /* opaque */

/* Creates a node; starts as a follower (paper §5.2). Returns 0 or RAFT_E_NOMEM / RAFT_E_INVAL.
 * *out is freed with raft_free. */
int raft_new(const struct raft_config *config, const struct raft_boot *boot, raft_time now,
             struct raft **out);
void raft_free(struct raft *r);

/* Processes one event. Fills *update (which the caller owns but whose pointers belong to r and
 * live until the next raft_step/raft_free). Returns 0, or a negative raft_err for a refused
 * event (the update is still valid and must still be handled). */
int raft_step(struct raft *r, const struct raft_event *event, struct raft_update *update);

/* ---- Inspection (for /status; no effect on state) ---- */

struct raft_peer_status {
    raft_id id;
    bool voter; /* counts for commit (false also for a node whose removal is uncommitted) */
    raft_index match_index;
    raft_index next_index;
    raft_time last_contact; /* when the leader last heard from it; 0: never */
    bool snapshotting;
};

struct raft_status {
    raft_id id;
    uint8_t role; /* enum raft_role */
    raft_term term;
    raft_id vote;
    raft_id leader; /* 0: unknown */
    raft_index commit_index;
    raft_index applied_index; /* highest index handed out in update.committed, or the last
                                 index of the latest snapshot installed (even before the
                                 install is reported persisted) */
    raft_index last_index;
    raft_index snapshot_index;
    raft_index persisted_index; /* the log is durable (and matches memory) up to here */
    bool removed;               /* this node is not in its (non-empty) configuration */
    struct raft_conf conf;      /* the configuration in effect (the latest in the log) */
    uint32_t n_peers;           /* valid only on the leader */
    struct raft_peer_status peers[RAFT_MAX_NODES];
};

void raft_get_status(const struct raft *r, struct raft_status *out);

/* Leader lease reads outside the core (thesis §6.4.1; cfg.lease_read): the time, on the clock of
 * the events' .now, before which this node is the only leader, holds every entry committed so
 * far and has handed out (update.committed) every entry up to its term's first; 0 when it has no
 * lease (not leader, lease_read off, a transfer began in its term, no majority heartbeat round
 * recent enough). Until then a driver may answer a read from its state machine as applied up to
 * update.committed, without a RAFT_EV_READ: any write acknowledged after being applied on this
 * leader or committed by an earlier one is in it. The value can only be trusted until the driver
 * sends the messages of the next update (a transfer's TIMEOUT_NOW ends the lease early): take it
 * again after every raft_step, before sending. */
raft_time raft_lease_until(const struct raft *r);

/* ---- Configuration encoding (the data of RAFT_ENTRY_CONF entries) ---- */

/* Encodes conf into buf (capacity cap), version 1: u8 version, u8 n, then per node u64 id
 * (little-endian), u8 flags (bit 0: voter), u8 address length, the address bytes. Returns the
 * encoded length, or 0 when cap is too small or conf is malformed (raft_conf_encoded_max() is
 * always enough). */
size_t raft_conf_encode(const struct raft_conf *conf, void *buf, size_t cap);
size_t raft_conf_encoded_max(void);
/* Decodes; returns 0 or RAFT_E_INVAL for malformed input (never reads past len): unknown
 * version or flags, more than RAFT_MAX_NODES, id 0 or repeated, an address too long or with
 * a NUL, or a length that does not match exactly. */
int raft_conf_decode(const void *buf, size_t len, struct raft_conf *out);

/* Human name of a role ("FOLLOWER", "PRE_CANDIDATE", "CANDIDATE", "LEADER"). */
const char *raft_role_name(int role);

#endif
