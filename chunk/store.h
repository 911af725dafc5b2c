/* The block store: one checksummed file per block (atomic writes) and the table of blocks held.
 * Does no networking; never hands out block bytes that failed their CRC. */
#ifndef DFS_CHUNK_STORE_H
#define DFS_CHUNK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_CHUNK_SIZE         (64 * 1024)
#define CS_DEFAULT_BLOCK_SIZE (64ULL * 1024 * 1024)
#define CS_MAX_BLOCK_SIZE     (1ULL << 30)
#define CS_MIN_BLOCK_SIZE     CS_CHUNK_SIZE
#define CS_BLOCK_ID_HEX       16 /* a block id in paths and JSON: 16 lowercase hex digits */
#define CS_STORAGE_ID_HEX     32
/* Bytes read and verified at once; a multiple of CS_CHUNK_SIZE. At least the client's largest
 * ranged GET (PIECE_MAX in client/dfs_data.c, 2 MiB): a GET checks its range before answering
 * and again as it streams it out, and a range that fits in one window is read and checked once. */
#define CS_READ_WINDOW (2 * 1024 * 1024)
/* Bytes after the data of a block file holding n chunk CRCs (docs/chunkserver.md). */
#define CS_TRAILER_BYTES(n) ((uint64_t)(n)*4 + 32)
/* The largest block (data bytes) written through the journal. */
#define CS_JOURNAL_BLOCK_MAX (256 * 1024)

struct cs_store;

struct cs_store_config {
    const char *dir;     /* the storage directory; must exist and be writable */
    uint64_t block_size; /* the largest block accepted; 0: CS_DEFAULT_BLOCK_SIZE */
    /* Size of the small-block journal (chunk/journal.h) made with a new store; 0: no journal
     * (every block's own file and directory are synced at commit). A store that has a journal
     * keeps and replays it whatever this says. */
    uint64_t journal_bytes;
    bool journal_manual; /* tests: the journal checkpoints only when full, asked, or at close */
    /* Called when a block is newly marked corrupt, on the thread that found it, with no store
     * lock held; may be NULL. */
    void (*on_corrupt)(void *ctx, uint64_t id);
    void *ctx;
};

struct cs_block_info {
    uint64_t id;
    uint64_t len;
    uint32_t crc; /* CRC32C of the whole block */
    bool corrupt; /* found damaged; still listed until deleted */
};

/* What cs_store_open found. */
struct cs_scan_result {
    size_t blocks;        /* block files, corrupt ones included */
    size_t corrupt;       /* block files whose structure (footer, CRC table) is damaged */
    size_t temps_removed; /* temporaries of unfinished writes, deleted */
    size_t unknown;       /* other files, left alone (logged) */
    uint64_t bytes;       /* data bytes of the sound blocks */
};

struct cs_store_stats {
    uint64_t blocks;
    uint64_t corrupt;
    uint64_t used;          /* bytes of block files on disk (data and trailers) */
    uint64_t bytes_written; /* block data accepted by writers since open */
    uint64_t bytes_read;    /* block data read and verified since open (scrubbing included) */
    uint64_t checksum_failures;
    uint64_t no_space; /* writes refused or failed for lack of space */
    bool journal;      /* the store has a small-block journal (the fields below) */
    uint64_t journal_records, journal_syncs, journal_checkpoints, journal_used, journal_bytes;
};

/* Changes to the table not yet told to the masters: the last event per block wins. */
struct cs_changes {
    struct cs_block_info *added;
    size_t nadded;
    uint64_t *removed;
    size_t nremoved;
    uint64_t *corrupt;
    size_t ncorrupt;
};

/* Parses exactly CS_BLOCK_ID_HEX lowercase hex digits. Returns 0 or CM_E_INVAL. */
int cs_block_id_parse(const char *s, uint64_t *out);
/* Writes the id's CS_BLOCK_ID_HEX digits and a NUL. */
void cs_block_id_format(uint64_t id, char out[CS_BLOCK_ID_HEX + 1]);

/* Opens the store in cfg->dir: creates its FORMAT file (with a new storage id) on first use,
 * locks the directory against a second chunkserver, deletes temporaries, checks every block's
 * footer and CRC table (not its data) and builds the table. *scan (may be NULL) tells what was
 * found. Errors: CM_E_BUSY (locked by another process), CM_E_STORE (not a dfs store, or another
 * version), CM_E_ACCES, CM_E_NOSPC, CM_E_IO, CM_E_INVAL, CM_E_NOMEM. Close with cs_store_close. */
int cs_store_open(const struct cs_store_config *cfg, struct cs_store **out,
                  struct cs_scan_result *scan);
/* No reader or writer may remain. NULL is a no-op. */
void cs_store_close(struct cs_store *s);
/* The storage id (CS_STORAGE_ID_HEX hex digits), fixed when the directory was first used. */
const char *cs_store_id(const struct cs_store *s);
uint64_t cs_store_block_size(const struct cs_store *s);

/* ---- writing a block ---- */

/* A block being written into a temporary file; it appears in the table at commit only. */
struct cs_writer;

/* Starts block id. len_hint >= 0 is the announced length: longer than the block size is
 * CM_E_TOO_LARGE, and its space is reserved now (CM_E_NOSPC when it does not fit); -1: unknown.
 * Errors also CM_E_IO, CM_E_NOMEM. Free with cs_writer_free. */
int cs_writer_open(struct cs_store *s, uint64_t id, int64_t len_hint, struct cs_writer **out);
/* Appends bytes. Errors: CM_E_TOO_LARGE (past the block size), CM_E_NOSPC, CM_E_IO; after an
 * error the writer only accepts cs_writer_free. */
int cs_writer_append(struct cs_writer *w, const void *buf, size_t len);
uint64_t cs_writer_len(const struct cs_writer *w);
/* Makes the block durable and visible: writes the CRC table and footer, fsyncs, renames the
 * temporary to the block's name and fsyncs the directory; a block of at most
 * CS_JOURNAL_BLOCK_MAX bytes in a store with a journal is made durable by its journal record
 * instead (group-committed with other writers') and renamed without syncs. expected_crc (may be
 * NULL) must equal the CRC32C of the data (else CM_E_CORRUPT). A block of the same id already
 * held with the same length and CRCs is success (nothing changes); with different content it is
 * CM_E_EXIST, unless the held one is marked corrupt, which is replaced. *out (may be NULL)
 * receives the block. Errors also CM_E_NOSPC, CM_E_IO; on every error nothing of this write
 * remains on disk. */
int cs_writer_commit(struct cs_writer *w, const uint32_t *expected_crc, struct cs_block_info *out);
/* Frees w and deletes its temporary unless committed. NULL is a no-op. */
void cs_writer_free(struct cs_writer *w);

/* ---- reading a block ---- */

/* An open block; reads stay valid after the block is deleted. Not thread-safe. */
struct cs_reader;

/* Errors: CM_E_NOENT (not held), CM_E_CORRUPT (file missing, footer or CRC table damaged, or
 * the chunk CRCs not adding up to the block's: the block is marked corrupt), CM_E_IO,
 * CM_E_NOMEM. Free with cs_reader_free. */
int cs_reader_open(struct cs_store *s, uint64_t id, struct cs_reader **out);
void cs_reader_info(const struct cs_reader *r, struct cs_block_info *out);
/* Reads len bytes at off into buf after checking the CRC of every chunk they touch; off + len
 * must lie within the block (else CM_E_RANGE). A mismatch or a short file is CM_E_CORRUPT and
 * marks the block corrupt. Also CM_E_IO. Reads from disk the whole chunks asked for, and with a
 * limit (below) looks ahead up to CS_READ_WINDOW bytes, never past the limit. */
int cs_reader_read(struct cs_reader *r, uint64_t off, void *buf, size_t len);
/* Where sequential reads will stop (default 0: no look-ahead), for callers reading a range in
 * pieces. */
void cs_reader_limit(struct cs_reader *r, uint64_t end);
/* Checks the chunks touching [off, off + len) like cs_reader_read without copying. When the
 * range fits in CS_READ_WINDOW, later reads within it come from memory. (The whole-block CRC
 * needs no pass over the data: cs_reader_open checks that the chunk CRCs add up to it.) */
int cs_reader_verify(struct cs_reader *r, uint64_t off, uint64_t len);
void cs_reader_free(struct cs_reader *r);

/* ---- the table ---- */

/* Syncs the files of the blocks made durable by the journal and empties it (the journal does
 * so by itself when half full, idle or old, and at close). Returns 0 or CM_E_IO. */
int cs_store_checkpoint(struct cs_store *s);
/* Returns 0 or CM_E_NOENT. */
int cs_store_get(struct cs_store *s, uint64_t id, struct cs_block_info *out);
/* Deletes a block (not waiting for the directory to be synced: a deleted block that returns
 * after a crash is reported and deleted again). Returns 0, CM_E_NOENT or CM_E_IO. */
int cs_store_delete(struct cs_store *s, uint64_t id);
/* Marks a held block corrupt (once; see cs_store_config.on_corrupt). */
void cs_store_mark_corrupt(struct cs_store *s, uint64_t id);
/* A snapshot of every block: *out is malloc'd (caller frees, NULL when n is 0). With
 * reset_changes the pending changes are dropped in the same instant (they are in the
 * snapshot). Returns 0 or CM_E_NOMEM. */
int cs_store_list(struct cs_store *s, bool reset_changes, struct cs_block_info **out, size_t *n);
/* Takes up to max pending changes (the store forgets those). Free with cs_changes_clear.
 * Returns 0 or CM_E_NOMEM (nothing taken). */
int cs_store_take_changes(struct cs_store *s, size_t max, struct cs_changes *out);
/* Gives back changes that could not be delivered; newer changes of the same block win. */
void cs_store_return_changes(struct cs_store *s, const struct cs_changes *c);
void cs_changes_clear(struct cs_changes *c);

void cs_store_stats(struct cs_store *s, struct cs_store_stats *out);
/* Capacity and free bytes of the file system holding the store (free: for unprivileged use).
 * Returns 0 or CM_E_IO. */
int cs_store_space(struct cs_store *s, uint64_t *capacity, uint64_t *free_bytes);

#endif
