/* libdfs, the client library of dfs (used by the FUSE daemon and dfsctl): the namespace through
 * the masters' /v1/fs/... endpoints with C types. Speaks to masters only; never maps to errno. */
#ifndef DFS_CLIENT_DFS_H
#define DFS_CLIENT_DFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/master_conn.h"
#include "common/auth.h"

#define DFS_DEFAULT_OP_TIMEOUT_MS 60000
/* Longest name of one directory entry, and of a symlink's target (docs/protocol.md). */
#define DFS_NAME_MAX    255
#define DFS_SYMLINK_MAX 4095
/* The root directory's handle. */
#define DFS_ROOT_INO 1
#define DFS_ROOT_GEN 1

/* An open file system: thread-safe, any number of threads may call at once. */
struct dfs;

#define DFS_DEFAULT_BLOCK_SIZE       (64u * 1024 * 1024)
#define DFS_DEFAULT_REPLICATION      3
#define DFS_MAX_REPLICAS             8
#define DFS_DEFAULT_READAHEAD_BUDGET (256u << 20)

struct dfs_options {
    const struct cm_secret *secret; /* copied; NULL: none */
    long op_timeout_ms;             /* one operation with all its retries; 0: 60 s */
    long call_timeout_ms;           /* one attempt at one master; 0: master_conn's default */
    bool follower_reads;            /* reads may be served by followers (still linearizable) */
    uint32_t block_size;  /* largest block written (at most the chunkservers'); 0: 64 MiB */
    unsigned replication; /* copies of each block written; 0: 3; at most DFS_MAX_REPLICAS */
    long data_timeout_ms; /* one block transfer with a chunkserver; 0: 120 s */
    /* dfs_lookup_cached's listings are used this long (0: it is dfs_lookup). At most 60 s. */
    long dir_cache_ms;
    /* Bytes the read buffers of all open files may hold together: a sequential reader's window
     * and the one fetched ahead of it, 8 MiB each. Past it, reads fetch only what they ask for.
     * 0: DFS_DEFAULT_READAHEAD_BUDGET. */
    size_t readahead_budget;
};

/* A file's handle: inode number and generation (a reused number gets a new generation). */
struct dfs_fh {
    uint64_t ino, gen;
};

struct dfs_attr {
    uint64_t ino, gen;
    uint32_t mode; /* type bits (S_IFDIR, S_IFREG, S_IFLNK) and permission bits */
    uint32_t nlink, uid, gid;
    uint64_t size;
    int64_t atime_ns, mtime_ns, ctime_ns; /* since the epoch */
};

/* The caller's identity; permissions are checked with it. NULL everywhere: none checked and new
 * inodes are owned by 0:0. At most 32 groups. */
struct dfs_cred {
    uint32_t uid, gid;
    size_t ngroups;
    const uint32_t *groups;
};

/* Opens the masters: "host:port,host:port" or an SRV name. opt NULL: defaults. Does no I/O.
 * Errors: CM_E_INVAL (bad list or options), CM_E_IO (/dev/urandom), CM_E_NOMEM.
 * Free with dfs_close. */
int dfs_open(const char *masters, const struct dfs_options *opt, struct dfs **out);
/* No call may be running. NULL is a no-op. */
void dfs_close(struct dfs *fs);

/* The master connection's counters (ops, attempts, retries), for status pages and tests. */
void dfs_conn_stats(struct dfs *fs, struct dfs_master_conn_stats *out);

/* Every function returns 0 or a negative CM_E_* code: an error the masters answered (CM_E_NOENT,
 * CM_E_EXIST, CM_E_NOTDIR, CM_E_NOTEMPTY, CM_E_STALE, CM_E_ACCES...), or CM_E_UNAVAILABLE (no
 * master reached) / CM_E_TIMEOUT (no leader served it) after the operation timeout, CM_E_PROTO
 * (an answer without the expected fields), CM_E_INVAL, CM_E_NOMEM. Mutations are retried across
 * failovers, timeouts and connection errors with the same (client, seq), so each is applied at
 * most once and a retry gets the first answer. out pointers may be NULL unless said otherwise. */

/* Called with each directory's attributes that a namespace change made by this client returned
 * (the parents of what it created, removed or renamed), as of just after the change; from the
 * thread that made the change. Set once, before any call. */
typedef void (*dfs_dir_attr_fn)(void *ctx, const struct dfs_attr *a);
void dfs_set_dir_attr_hook(struct dfs *fs, dfs_dir_attr_fn fn, void *ctx);

/* The entry name in parent ("." and ".." allowed). */
int dfs_lookup(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
               struct dfs_attr *out);
/* dfs_lookup, or the answer from a listing of parent fetched at most dir_cache_ms ago (see
 * client/dircache.h): where this process looks up many names in one directory, one request
 * lists it instead of a request per name. Changes made through this handle are seen at once.
 * *age_ms: how old the answer is (0: asked just now), also with CM_E_NOENT. */
int dfs_lookup_cached(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent,
                      const char *name, struct dfs_attr *out, uint64_t *age_ms);
struct dfs_dir_cache_stats {
    uint64_t hits, absent, asked, fetches, discarded, entries; /* struct dc_stats */
};
void dfs_dir_cache_stats(struct dfs *fs, struct dfs_dir_cache_stats *out);
int dfs_getattr(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh,
                struct dfs_attr *out);
/* Walks an absolute path ("/a/b/c"; repeated slashes ignored; "/" is the root) from the root with
 * one lookup per component. CM_E_NOENT, CM_E_NOTDIR (a middle component not a directory),
 * CM_E_INVAL (not absolute), CM_E_NAMETOOLONG. Symlinks are not followed. */
int dfs_resolve_path(struct dfs *fs, const struct dfs_cred *cred, const char *path,
                     struct dfs_attr *out);

/* Creates a directory; out gets its attributes. mode: permission bits. */
int dfs_mkdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
              uint32_t mode, struct dfs_attr *out);

#define DFS_CREATE_EXCL  0x1u /* CM_E_EXIST when the name exists */
#define DFS_CREATE_TRUNC 0x2u /* an existing file is truncated to 0 */
/* Creates a regular file, or opens an existing one (then *created = false). */
int dfs_create(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
               uint32_t mode, unsigned flags, struct dfs_attr *out, bool *created);
/* Removes a non-directory name (CM_E_ISDIR) / an empty directory (CM_E_NOTEMPTY). */
int dfs_unlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name);
int dfs_rmdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name);

#define DFS_RENAME_NOREPLACE 0x1u /* CM_E_EXIST when the target exists */
#define DFS_RENAME_EXCHANGE  0x2u /* swap the two names (both must exist) */
/* Linux renameat2 semantics. */
int dfs_rename(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh src_parent,
               const char *src_name, struct dfs_fh dst_parent, const char *dst_name,
               unsigned flags);
/* Gives file fh the new name name in parent; out gets fh's attributes. */
int dfs_link(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, struct dfs_fh parent,
             const char *name, struct dfs_attr *out);
int dfs_symlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
                const char *target, struct dfs_attr *out);
/* *target (required) is malloc'd and NUL-terminated; the caller frees it with free().
 * CM_E_INVAL when fh is not a symlink. */
int dfs_readlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, char **target);

#define DFS_SET_MODE      0x01u
#define DFS_SET_UID       0x02u
#define DFS_SET_GID       0x04u
#define DFS_SET_SIZE      0x08u
#define DFS_SET_ATIME     0x10u
#define DFS_SET_MTIME     0x20u
#define DFS_SET_ATIME_NOW 0x40u /* the leader's clock */
#define DFS_SET_MTIME_NOW 0x80u
struct dfs_setattr {
    unsigned valid; /* DFS_SET_* of the fields below to change */
    uint32_t mode;  /* permission bits */
    uint32_t uid, gid;
    uint64_t size;
    int64_t atime_ns, mtime_ns;
};
int dfs_setattr(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh,
                const struct dfs_setattr *sa, struct dfs_attr *out);

struct dfs_dirent {
    char *name; /* owned by the page */
    uint64_t cookie;
    struct dfs_attr attr;
};
struct dfs_dirpage {
    struct dfs_dirent *entries;
    size_t n;
    bool eof;
    uint64_t cookie; /* pass to the next dfs_readdir to continue */
};
/* One page of directory fh from cookie (0: the start; "." and ".." come first), at most
 * max_entries (0: 256; at most 4096). page (required) is overwritten; release it with
 * dfs_dirpage_clear, also after an error. */
int dfs_readdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, uint64_t cookie,
                size_t max_entries, struct dfs_dirpage *page);
void dfs_dirpage_clear(struct dfs_dirpage *page);

struct dfs_statfs {
    uint64_t inodes, files, dirs, symlinks, max_inodes, blocks_allocated;
    /* Sums over the live chunkservers as the leader sees them (0 from a follower read). */
    uint64_t capacity_bytes, used_bytes, free_bytes, chunkservers_live;
};
int dfs_statfs(struct dfs *fs, struct dfs_statfs *out);

/* ---- file data ----
 * A file's bytes live in immutable blocks on chunkservers. Writing stores whole blocks through
 * the chunkserver pipeline (client -> cs1 -> cs2 -> cs3; a failed member is left out and the
 * block topped up on others, like HDFS pipeline recovery) and then commits them to the masters,
 * which make the new bytes and size visible atomically. Reading asks the masters where the
 * blocks are and fetches byte ranges from a live replica, falling back to the next on an error
 * or a checksum mismatch (chunkservers verify every byte they serve).
 *
 * An open file buffers what is written into at most one block of memory, stores a block when it
 * fills or when a write goes elsewhere, and commits at dfs_file_flush (or, at a write, when 4096
 * stored blocks wait or the oldest has waited DFS_PEND_MAX_AGE_MS; or when dfs_file_commit_aged
 * finds them that old: the masters delete unreferenced blocks an orphan grace (an hour) after
 * their ids were reserved and refuse to commit them later, so a writer must not sit on stored
 * blocks that long). Only
 * a successful flush makes writes durable and visible to others: close-to-open consistency. Reads
 * through the same dfs_file see its own writes at once. */
struct dfs_file;

/* Opens the regular file fh for reading and writing (no permission is checked here: the
 * masters check cred when blocks are listed and committed). cred is copied (NULL: none). Does
 * no I/O. Errors: CM_E_INVAL, CM_E_NOMEM. */
int dfs_file_open(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh,
                  struct dfs_file **out);
/* Frees f without flushing (what was not flushed is lost). NULL is a no-op. */
void dfs_file_close(struct dfs_file *f);
/* Reads up to len bytes at off into buf; *got (required) is less than len only at the end of
 * the file. Holes read as zeros. A read-ahead window serves sequential reads. */
int dfs_file_read(struct dfs_file *f, uint64_t off, size_t len, void *buf, size_t *got);
/* Writes len bytes at off (beyond the end grows the file, the gap reading as zeros). Errors of
 * storing earlier blocks may surface here; after a failed write, what was buffered is dropped and
 * every later write and flush of this dfs_file fails with the same error (reads go on, of the
 * committed data): a lost write is never reported as durable. */
int dfs_file_write(struct dfs_file *f, uint64_t off, const void *buf, size_t len);
/* Stores what is buffered and commits every stored block: on success every byte written so far
 * is on its chunkservers' disks and in the masters' namespace. out (may be NULL) gets the file's
 * attributes after the commit (or as fetched when there was nothing to commit). After an error
 * the unflushed writes are dropped and the error sticks: later writes and flushes of this
 * dfs_file report it too (open the file again to write anew). */
int dfs_file_flush(struct dfs_file *f, struct dfs_attr *out);
/* Commits the stored blocks of f when the oldest has waited max_age_ms or more (what a writer
 * that went quiet left; what is still buffered stays buffered). For a program that keeps files
 * open: call it now and then with DFS_PEND_MAX_AGE_MS. Errors as dfs_file_flush, and they stick
 * the same way. */
#define DFS_PEND_MAX_AGE_MS (10 * 60 * 1000)
int dfs_file_commit_aged(struct dfs_file *f, uint64_t max_age_ms);
/* Forgets cached block locations, size and read-ahead data (to see others' writes: at open, after
 * a truncate). Unflushed writes stay. */
void dfs_file_invalidate(struct dfs_file *f);
/* Whether f holds writes not yet committed; *end (may be NULL) then gets the end of the
 * furthest of them, the size the file will have at least after the flush. */
bool dfs_file_dirty(struct dfs_file *f, uint64_t *end);

/* Counters of the data path, for status pages and tests. */
struct dfs_data_stats {
    uint64_t blocks_written;        /* blocks stored on at least one chunkserver */
    uint64_t pipeline_retries;      /* block stores sent again after a pipeline member failed */
    uint64_t side_by_side;          /* stores of a small block sent to each chunkserver at once */
    uint64_t commits;               /* commit calls that succeeded */
    uint64_t reads;                 /* ranges fetched from chunkservers */
    uint64_t read_fallbacks;        /* ranges fetched from another replica after an error */
    uint64_t readaheads;            /* windows fetched ahead of a sequential reader */
    uint64_t readahead_hits;        /* of those, the ones its reads went on into */
    uint64_t readahead_over_budget; /* windows not buffered: readahead_budget was spent */
    uint64_t readahead_bytes;       /* read buffers held now, all open files */
    uint64_t bytes_written, bytes_read;
};
void dfs_data_stats(struct dfs *fs, struct dfs_data_stats *out);

#endif
