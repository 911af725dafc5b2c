/* The master's durable Raft state in LevelDB (term, vote, log, snapshot metadata) plus snapshot
 * files beside it. Every write that Raft needs durable is one synced LevelDB batch (one fsync);
 * snapshot files are written to a temporary name, fsynced, renamed and the directory fsynced.
 * Not thread-safe: one writer thread at a time (reads at open). */
#ifndef DFS_MASTER_RAFT_STORE_H
#define DFS_MASTER_RAFT_STORE_H

#include <stdint.h>
#include <stddef.h>

#include "raft/raft.h"

/* Format version written at creation; a store with another version is refused. */
#define RS_FORMAT_VERSION 1

struct raft_store;

/* Opens (creating when empty) the store in dir, which must exist and be writable. Errors:
 * CM_E_ACCES / CM_E_NOENT (dir), CM_E_BUSY (another process holds the LevelDB lock),
 * CM_E_STORE (corrupt, or another format version: never silently reset), CM_E_IO. */
int rs_open(const char *dir, struct raft_store **out);
void rs_close(struct raft_store *s);

/* What rs_load recovered. boot->entries points into loaded; free both with rs_loaded_free. */
struct rs_loaded {
    struct raft_entry *entries;
    uint32_t n_entries;
    char *snapshot_path; /* NULL when there is no snapshot */
};

/* Fills boot from disk. A new store gives term 0, vote 0, no snapshot and no entries, and
 * leaves boot->conf untouched (the caller's initial configuration); with a snapshot, boot->conf
 * is the snapshot's configuration. boot->applied is set to the snapshot index (the state machine
 * is restored from the snapshot and replays the log after it). Errors: CM_E_STORE for a gap in
 * the log, undecodable records, a snapshot file that is missing or fails its checksum. */
int rs_load(struct raft_store *s, struct raft_boot *boot, struct rs_loaded *loaded);
void rs_loaded_free(struct rs_loaded *loaded);

/* Writes n persist records (term/vote, truncation, entries; in order) atomically and durably in
 * one synced batch: group commit, one fsync for all. Snapshot installation is handled by
 * rs_snapshot_install, not here. Returns 0, CM_E_IO or CM_E_NOMEM. */
int rs_write(struct raft_store *s, const struct raft_persist *p, size_t n);

/* Writing a snapshot of the local state machine: rs_snapshot_create opens a temporary file;
 * the caller appends the state with rs_snapshot_append (it may be large) and calls
 * rs_snapshot_commit, which fsyncs, renames, fsyncs the directory, records the metadata (with
 * the CRC32C of the contents) and drops the log up to index in one synced batch, then deletes
 * the previous snapshot file. rs_snapshot_abort discards it. The writer is freed by commit and
 * abort, whatever they return. */
struct rs_snapshot_writer;
int rs_snapshot_create(struct raft_store *s, struct rs_snapshot_writer **out);
int rs_snapshot_append(struct rs_snapshot_writer *w, const void *data, size_t len);
int rs_snapshot_commit(struct raft_store *s, struct rs_snapshot_writer *w, raft_index index,
                       raft_term term, const struct raft_conf *conf, uint64_t *size_out);
void rs_snapshot_abort(struct raft_store *s, struct rs_snapshot_writer *w);

/* Receiving a snapshot from the leader: chunks go into a pending file (offset 0 starts a new
 * one); rs_snapshot_install makes it the current snapshot like rs_snapshot_commit, and removes
 * log entries up to index unless they match (index, term) (thesis §5.3: a follower keeps the
 * log after a snapshot it already has). Errors: CM_E_INVAL for a chunk that does not continue
 * the pending file, CM_E_IO. */
int rs_snapshot_write_chunk(struct raft_store *s, uint64_t offset, const void *data,
                            uint32_t len);
int rs_snapshot_install(struct raft_store *s, raft_index index, raft_term term,
                        const struct raft_conf *conf, uint64_t *size_out);

/* The current snapshot: its path (borrowed, valid until the next snapshot change) and size, or
 * NULL when there is none. Read chunks with pread on your own descriptor. */
const char *rs_snapshot_path(const struct raft_store *s, uint64_t *size_out);

/* The cluster's initial configuration, recorded once when a new cluster forms (the peers'
 * ids learned from --peers) so a restart never needs the peers to answer again. get returns 0
 * or CM_E_NOENT (never recorded), CM_E_STORE; set writes it synced. */
int rs_get_bootstrap(struct raft_store *s, struct raft_conf *out);
int rs_set_bootstrap(struct raft_store *s, const struct raft_conf *conf);

/* Statistics for /metrics: number of synced batches and the total time they took. */
struct rs_stats {
    uint64_t syncs;
    uint64_t sync_us_total;
    uint64_t bytes_written;
};
void rs_get_stats(const struct raft_store *s, struct rs_stats *out);

#endif
