/* The small-block journal: one preallocated file, JOURNAL, in the storage directory. A small
 * block is made durable by appending it (its whole block file: data, CRC table, footer) as one
 * checksummed record and syncing the journal once for every record appended meanwhile (group
 * commit), instead of fsyncing its own file and directory; its file is then renamed into place
 * unsynced. A checkpoint (syncfs of the storage directory's file system, then a new generation
 * in the journal's header) makes those files durable and empties the journal; one runs in the
 * background when the journal is half full or has been idle a while, and at close. On open, the
 * records of the current generation are handed back in order, to be written out again.
 *
 * On disk (little-endian): a 4 KiB header "DFSJRNL1", generation u64, CRC32C of those 16 bytes;
 * then records: "DFSJREC1", generation u64, block id u64, kind u32 (1 block, 2 deleted), payload
 * length u32, CRC32C of these 32 bytes and the payload u32, 4 zero bytes, payload. Replay stops at
 * the first record that is torn, of another generation or fails its CRC. Thread-safe. */
#ifndef DFS_CHUNK_JOURNAL_H
#define DFS_CHUNK_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_JOURNAL_FILE          "JOURNAL"
#define CS_JOURNAL_HEADER        4096
#define CS_JOURNAL_RECORD_HEADER 40
#define CS_JOURNAL_DEFAULT_BYTES (64ULL * 1024 * 1024)
#define CS_JOURNAL_MIN_BYTES     (1024 * 1024)

enum cs_journal_kind { CS_JOURNAL_BLOCK = 1, CS_JOURNAL_DELETED = 2 };

struct cs_journal;

struct cs_journal_stats {
    uint64_t records;     /* block records appended since open */
    uint64_t syncs;       /* fdatasyncs of the journal (each covers one or more records) */
    uint64_t checkpoints; /* generations ended */
    uint64_t used;        /* bytes of records in the current generation */
    uint64_t bytes;       /* the file's size */
};

/* Called for each record of the current generation, in order; payload is NULL and plen 0 for
 * CS_JOURNAL_DELETED. A negative return stops the replay and fails cs_journal_open with it. */
typedef int (*cs_journal_replay_fn)(void *ctx, enum cs_journal_kind kind, uint64_t id,
                                    const void *payload, size_t plen);

/* Opens (or creates, its space reserved, of bytes bytes) the journal in the directory root_fd,
 * replays it through fn, then checkpoints (the replayed files are synced with the file system).
 * The file keeps the size it was created with. With background, a thread checkpoints when the
 * journal is half full, idle for a second or its oldest record 30 s old; without (tests), only
 * when full, asked, or at close. Errors: CM_E_STORE (a damaged header), CM_E_IO, CM_E_NOSPC,
 * CM_E_NOMEM, or fn's. */
int cs_journal_open(int root_fd, uint64_t bytes, bool background, cs_journal_replay_fn fn,
                    void *ctx, struct cs_journal **out);
/* Checkpoints (when it can) and frees j. NULL is a no-op. */
void cs_journal_close(struct cs_journal *j);

/* The largest payload a record can carry. */
uint64_t cs_journal_max_payload(const struct cs_journal *j);

/* Appends block id's record (payload a then b) and waits until it is durable. On success the
 * caller must call cs_journal_settle once the block's file is renamed into place (or the record
 * cancelled): a checkpoint waits for that. Errors: CM_E_TOO_LARGE (over the max payload),
 * CM_E_IO (the journal failed: nothing more is appended; the caller uses another way). */
int cs_journal_put(struct cs_journal *j, uint64_t id, const void *a, size_t alen, const void *b,
                   size_t blen);
void cs_journal_settle(struct cs_journal *j);
/* Records that block id was deleted (or a put of it cancelled), so that a replay does not bring
 * back an earlier record of it; not synced by itself (the next put's sync or checkpoint carries
 * it). Returns 0 or CM_E_IO. */
int cs_journal_deleted(struct cs_journal *j, uint64_t id);

/* Ends the generation now: waits for settled puts, syncs the file system, empties the journal.
 * Returns 0 or CM_E_IO. */
int cs_journal_checkpoint(struct cs_journal *j);

void cs_journal_stats(struct cs_journal *j, struct cs_journal_stats *out);

#endif
