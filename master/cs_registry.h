/* The master's view of its chunkservers: the replicated table (cs_id <-> storage id, address,
 * rack; changed only by applying MFSM_TAG_CS commands) and the leader's soft state (liveness,
 * space, load, block reports; in memory only, rebuilt from heartbeats after a failover). It does
 * no I/O and reads no clock: callers pass the time in. Every function is thread-safe. */
#ifndef DFS_MASTER_CS_REGISTRY_H
#define DFS_MASTER_CS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire names of the chunkserver endpoints (docs/protocol.md, "Master client port:
 * chunkservers"); the same strings as the chunkserver's own chunk/cs_proto.h. */
#define MCS_PATH_REGISTER  "/v1/cs/register"
#define MCS_PATH_HEARTBEAT "/v1/cs/heartbeat"
#define MCS_PATH_REPORT    "/v1/cs/report"
#define MCS_PATH_PLACE     "/v1/fs/place"

#define MCS_F_CS_ID        "cs_id"
#define MCS_F_STORAGE_ID   "storage_id"
#define MCS_F_ADDR         "addr"
#define MCS_F_RACK         "rack"
#define MCS_F_CAPACITY     "capacity"
#define MCS_F_USED         "used"
#define MCS_F_FREE         "free"
#define MCS_F_BLOCKS       "blocks"
#define MCS_F_LOAD         "load"
#define MCS_F_REPL_QUEUED  "repl_queued"
#define MCS_F_NO_SPACE     "no_space"
#define MCS_F_ADDED        "added"
#define MCS_F_REMOVED      "removed"
#define MCS_F_CORRUPT      "corrupt"
#define MCS_F_ID           "id"
#define MCS_F_BLOCK        "block"
#define MCS_F_TARGET       "target"
#define MCS_F_COMMANDS     "commands"
#define MCS_F_OP           "op"
#define MCS_F_NEED_REPORT  "need_full_report"
#define MCS_F_REPORT_ID    "report_id"
#define MCS_F_PART         "part"
#define MCS_F_LAST         "last"
#define MCS_F_COUNT        "count"
#define MCS_F_CHUNKSERVERS "chunkservers"
#define MCS_OP_DELETE      "delete"
#define MCS_OP_REPLICATE   "replicate"

#define CS_STORAGE_ID_MAX          64   /* bytes */
#define CS_ADDR_MAX                255  /* bytes, "host:port" */
#define CS_RACK_MAX                63   /* bytes */
#define CS_MAX                     4096 /* registered chunkservers */
#define CS_PLACE_MAX               16   /* chunkservers per placement */
#define CS_DEFAULT_DEAD_TIMEOUT_MS 30000

struct cs_registry;

/* A chunkserver as /status shows it (a copy). */
struct cs_info {
    uint32_t id;
    char storage_id[CS_STORAGE_ID_MAX + 1];
    char addr[CS_ADDR_MAX + 1];
    char rack[CS_RACK_MAX + 1];
    bool alive; /* heard from within the dead timeout, by this master as leader */
    bool no_space;
    uint64_t capacity, used, free, load;
    uint64_t blocks; /* in the last full report plus later changes, else as the heartbeat says */
    int64_t last_heartbeat_ms_ago; /* -1: not heard from since this master became leader */
};

/* Free with cs_registry_free (NULL is a no-op). */
int cs_registry_new(uint64_t dead_timeout_ms, struct cs_registry **out);
void cs_registry_free(struct cs_registry *r);

/* ---- replicated table ----
 * Command (after the MFSM_TAG_CS tag): u8 op (1 = register), then storage id, address and rack,
 * each u16 length (little-endian) and bytes. Nothing may follow. */
int cs_cmd_register(const char *storage_id, const char *addr, const char *rack, void **out,
                    size_t *len);
/* Applies a command: a known storage id keeps its cs_id (its address and rack are updated), a
 * new one gets the next id (1, 2, ...). *res (malloc'd, caller frees) is the cs_id in decimal.
 * Errors: CM_E_INVAL (malformed, the same on every replica), CM_E_NOSPC (CS_MAX reached). */
int cs_apply(struct cs_registry *r, const void *data, size_t len, void **res, size_t *res_len);
/* The table as bytes: u32 count, then per entry u32 id and the three strings as in a command.
 * *out malloc'd (caller frees). */
int cs_snapshot_write(struct cs_registry *r, void **out, size_t *len);
/* Replaces the table (and drops soft state of ids no longer present). CM_E_STORE when malformed;
 * the table is then unchanged. */
int cs_restore(struct cs_registry *r, const void *buf, size_t len);

/* ---- soft state (leader only) ---- */

/* Whether id is registered with this storage id (CM_E_NOENT if not). */
int cs_check(struct cs_registry *r, uint32_t id, const char *storage_id);
/* A heartbeat's numbers: marks id alive at now_ms. *need_report is set when no full report has
 * been taken since this master last became leader, or since id came back after being dead. */
int cs_heartbeat(struct cs_registry *r, uint32_t id, uint64_t now_ms, uint64_t capacity,
                 uint64_t used, uint64_t free, uint64_t blocks, uint64_t load, bool no_space,
                 bool *need_report);
/* Block changes: added become sound copies of id, removed are dropped, corrupt become damaged
 * copies (held, but never counted as a copy nor used as a source). */
int cs_blocks_change(struct cs_registry *r, uint32_t id, const uint64_t *added, size_t n_added,
                     const uint64_t *removed, size_t n_removed, const uint64_t *corrupt,
                     size_t n_corrupt);
/* One part of a full report. Parts accumulate under report_id; the last one replaces the sets
 * of sound (blocks) and damaged (corrupt) copies. */
int cs_report_part(struct cs_registry *r, uint32_t id, uint64_t report_id, uint64_t part, bool last,
                   const uint64_t *blocks, size_t n, const uint64_t *corrupt, size_t n_corrupt);
/* Starts soft state over when term differs from the one last seen (a new leadership that
 * began at now_ms). */
void cs_leader_term(struct cs_registry *r, uint64_t term, uint64_t now_ms);

#define CS_DEFAULT_REPLICATION 3     /* live copies wanted of every block a file references */
#define CS_REPL_PER_HEARTBEAT  4     /* replicate commands per answer, queue length unknown */
#define CS_REPL_QUEUE_TARGET   16    /* copies kept waiting on a chunkserver that says its queue */
#define CS_REPL_RETRY_MS       30000 /* a command not seen carried out by then is sent again */
#define CS_DEL_PER_HEARTBEAT   256   /* repair and surplus deletes per heartbeat answer */

struct cs_repl {
    uint64_t block;
    char target[CS_ADDR_MAX + 1];
};

/* Replication work for chunkserver src, alive and holding them: of the referenced block ids
 * (sorted ascending, distinct), those with fewer live holders (and copies already commanded)
 * than CS_DEFAULT_REPLICATION, each with a target (live, with space, not holding it, not even a
 * damaged copy, most free
 * first, a rack none of the holders has first). At most max, and none until the leadership is
 * one dead timeout old and every live chunkserver has sent a full report (so that missing
 * reports do not look like missing copies). Commands given are remembered for
 * CS_REPL_RETRY_MS. Returns how many were put into out. */
size_t cs_replicate(struct cs_registry *r, uint32_t src, uint64_t now_ms, const uint64_t *ids,
                    size_t n, struct cs_repl *out, size_t max);
/* How many replicate commands one heartbeat answer may carry: enough to bring the copies
 * waiting on the chunkserver (queued, as its heartbeat said) up to CS_REPL_QUEUE_TARGET, so that
 * many small blocks go per heartbeat and big ones do not pile up past the command retry;
 * CS_REPL_PER_HEARTBEAT when the heartbeat did not say (reported false). */
size_t cs_repl_budget(bool reported, uint64_t queued);
/* Copies chunkserver id is to delete, of the referenced block ids (sorted, distinct): a damaged
 * copy once the block has CS_DEFAULT_REPLICATION sound copies elsewhere, and a sound copy in
 * surplus (more sound live copies than CS_DEFAULT_REPLICATION, and id is not among those kept:
 * distinct racks first, then less used space, then lower id). Never leaves fewer than
 * CS_DEFAULT_REPLICATION sound copies: a copy told to be deleted no longer counts (for
 * CS_REPL_RETRY_MS or until reported gone). Same readiness condition as cs_replicate. At most
 * max into out; returns how many. */
size_t cs_deletes(struct cs_registry *r, uint32_t id, uint64_t now_ms, const uint64_t *ids,
                  size_t n, uint64_t *out, size_t max);
/* Of the ids in garbage (any order), those chunkserver id holds (sound or damaged), up to max,
 * into out. */
size_t cs_blocks_held(struct cs_registry *r, uint32_t id, const uint64_t *garbage, size_t n,
                      uint64_t *out, size_t max);
/* Every copy chunkserver id holds (sound or damaged), sorted and distinct: *out malloc'd
 * (caller frees; NULL when none). CM_E_NOMEM. */
int cs_held(struct cs_registry *r, uint32_t id, uint64_t **out, size_t *n);
/* Copy counts of referenced blocks, as /status shows them. */
struct cs_health {
    uint64_t referenced;       /* block ids counted */
    uint64_t under_replicated; /* fewer than CS_DEFAULT_REPLICATION sound copies on live
                                  chunkservers (missing ones included) */
    uint64_t missing;          /* no sound copy on a live chunkserver: none at all, only damaged
                                  ones, or only copies on dead chunkservers */
};
/* Counts one batch of a walk over the referenced blocks: ids (sorted ascending, distinct) are
 * added to *h, and copies (may be NULL; room for n) gets each one's number of sound copies on
 * live chunkservers (at most 255; a copy told to be deleted as surplus still counts). The lock
 * is held for this batch only, so callers walk many blocks in batches of a few thousand.
 * CM_E_UNAVAILABLE (nothing counted) until the same readiness condition as cs_replicate holds:
 * before that, copies not reported yet would look missing. CM_E_NOMEM. */
int cs_health_count(struct cs_registry *r, uint64_t now_ms, const uint64_t *ids, size_t n,
                    struct cs_health *h, uint8_t *copies);
/* Of the garbage ids (any order), those no live chunkserver holds (sound or damaged), up to max
 * into out (which may be ids itself): they may be dropped from the pending garbage. None until
 * the same readiness condition as cs_replicate holds (a live chunkserver that has not sent its
 * full report might hold anything). A dead chunkserver does not count: when it comes back it
 * must send a full report again, and copies of dropped ids in it are orphans (cs_orphan_below).
 * Returns how many were put into out. */
size_t cs_gc_unheld(struct cs_registry *r, uint64_t now_ms, const uint64_t *ids, size_t n,
                    uint64_t *out, size_t max);
/* A block id bound: blocks below it were allocated at least grace_ms ago (next_block is the
 * namespace's next block id now; the bound is 0 during this leadership's first grace period).
 * The leader replicates it (NS_OP_ORPHAN_BOUND); from then on a copy of such a block that no
 * file references and that is not pending garbage is an orphan: a client that allocated it has
 * had the grace period to commit it, and a later commit is refused. */
#define CS_ORPHAN_GRACE_MS (60 * 60 * 1000) /* the default of --orphan-grace-s */
uint64_t cs_orphan_below(struct cs_registry *r, uint64_t now_ms, uint64_t grace_ms,
                         uint64_t next_block);
/* Forgets all soft state (on losing or gaining leadership). */
void cs_soft_reset(struct cs_registry *r);

/* Up to count distinct live chunkservers with space, most free first, different racks first
 * (chunkservers without a rack count as distinct). Returns how many were put into out. */
size_t cs_place(struct cs_registry *r, uint64_t now_ms, size_t count, struct cs_info *out);
/* Registered chunkservers not heard from since this leadership began, while it is younger than
 * CS_PLACE_GRACE_MS and the dead timeout (after that they count as dead): placement waits for
 * them after a failover rather than writing fewer copies. */
#define CS_PLACE_GRACE_MS 10000
size_t cs_unheard(struct cs_registry *r, uint64_t now_ms);
/* A copy of every registered chunkserver, by id: *out malloc'd (caller frees). */
int cs_list(struct cs_registry *r, uint64_t now_ms, struct cs_info **out, size_t *n);

#endif
