/* The filesystem namespace as a deterministic replicated state machine: inodes, directories,
 * symlinks, hard links, each file's list of immutable blocks and exactly-once client sessions.
 * Applying a command is a pure function of the state and the command (times come inside the
 * commands): no I/O, no clock, no threads, no randomness. Not thread-safe: the Raft loop thread
 * owns it, and the read functions below run on that thread too (after rn_read confirmed). */
#ifndef DFS_MASTER_NAMESPACE_H
#define DFS_MASTER_NAMESPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/raft_node.h"

#define NS_ROOT_INO          1
#define NS_NAME_MAX          255   /* bytes in one directory entry name */
#define NS_SYMLINK_MAX       4095  /* bytes in a symlink target */
#define NS_MAX_GROUPS        32    /* supplementary groups carried in a credential */
#define NS_MAX_REPLICAS      8     /* chunkservers holding one block */
#define NS_MAX_COMMIT_BLOCKS 4096  /* new blocks in one commit */
#define NS_MAX_ALLOC_BLOCKS  65536 /* block ids reserved by one alloc command */
#define NS_LINK_MAX          65000 /* hard links to one file */
#define NS_MAX_FILE_SIZE     ((uint64_t)INT64_MAX)
#define NS_MAX_EXTENTS       (1u << 24) /* extents in one file */
#define NS_MAX_GC_ACK        4096       /* block ids in one GC_ACK */

/* Credentials of the user a request acts for. Permission checks are made only when a request
 * carries one (NULL: a trusted internal caller; new inodes are then owned by 0:0). uid 0 passes
 * every check. */
struct ns_cred {
    uint32_t uid;
    uint32_t gid;
    uint32_t n_groups; /* at most NS_MAX_GROUPS */
    uint32_t groups[NS_MAX_GROUPS];
};

/* An inode's attributes; mode holds the type (S_IFDIR, S_IFREG, S_IFLNK) and the permission bits
 * including setuid, setgid and sticky. Times are nanoseconds since the epoch. A handle is
 * (ino, gen): an inode number is reused later with a larger gen. */
struct ns_attr {
    uint64_t ino;
    uint64_t gen;
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    int64_t atime_ns;
    int64_t mtime_ns;
    int64_t ctime_ns;
};

/* An immutable block on the chunkservers: id (from NS_OP_ALLOC_BLOCKS), its length and CRC32C,
 * and the chunkservers that hold it. */
struct ns_block {
    uint64_t id;
    uint32_t len;
    uint32_t crc32c;
    uint8_t n_replicas; /* 1 .. NS_MAX_REPLICAS */
    uint32_t replicas[NS_MAX_REPLICAS];
};

/* A file's bytes [off, off + len) are bytes [block_off, block_off + len) of block. A file's
 * extents are sorted by off and never overlap; the gaps read as zeros. */
struct ns_extent {
    uint64_t off;
    uint32_t block_off;
    uint32_t len;
    struct ns_block block;
};

/* Replicas must be configured the same on every replica: these values are part of the state
 * machine's definition. */
struct ns_config {
    int64_t session_ttl_ns; /* a client not seen for this long (command time) is forgotten */
    uint32_t max_sessions;  /* beyond this, the least recently seen client is forgotten */
    uint32_t max_inodes;    /* inodes in use, root included (CM_E_NOSPC beyond) */
};

/* 15 minutes, 65536 sessions, 2^32 - 2 inodes. */
void ns_config_default(struct ns_config *cfg);

struct ns;

/* A namespace holding only the root directory (ino 1, gen 1, mode 0755, owner 0:0, times 0).
 * cfg NULL: defaults. Errors: CM_E_NOMEM, CM_E_INVAL (max_inodes < 1, max_sessions < 1). Free
 * with ns_free (NULL is a no-op). */
int ns_new(const struct ns_config *cfg, struct ns **out);
void ns_free(struct ns *ns);

/* The rn_fsm callbacks of this namespace (ctx = ns). */
struct rn_fsm ns_fsm_ops(struct ns *ns);

/* ---- Commands ----
 *
 * Binary, little-endian. Header (32 bytes): u8 version (NS_CMD_VERSION), u8 op, u8 has_cred,
 * u8 n_groups, u32 zero, u64 client, u64 seq, i64 now_ns (at NS_CMD_TIME_OFFSET); then, with a
 * credential, u32 uid, u32 gid, u32 groups[n_groups]; then the op's fields. A string is u16
 * length + bytes (no NUL):
 *   MKDIR    u64 parent, u64 pgen, str name, u32 mode
 *   CREATE   u64 parent, u64 pgen, str name, u32 mode, u32 flags
 *   SYMLINK  u64 parent, u64 pgen, str name, str target
 *   LINK     u64 ino, u64 gen, u64 newparent, u64 npgen, str newname
 *   UNLINK, RMDIR  u64 parent, u64 pgen, str name
 *   RENAME   u64 sparent, u64 spgen, str sname, u64 dparent, u64 dpgen, str dname, u32 flags
 *   SETATTR  u64 ino, u64 gen, u32 valid, u32 mode, u32 uid, u32 gid, u64 size, i64 atime,
 *            i64 mtime
 *   ALLOC_BLOCKS  u32 count
 *   COMMIT   u64 ino, u64 gen, u64 off, u64 len, u64 size, u32 flags, u32 n_blocks, then per
 *            block u64 id, u32 len, u32 crc32c, u8 n_replicas, u32 replicas[n_replicas]
 *   GC_ACK   u32 n_ids (1 .. NS_MAX_GC_ACK), then n_ids u64 block ids (nonzero)
 *   ORPHAN_BOUND  u64 below (nonzero)
 * Nothing may follow. The leader stamps its clock into now_ns before proposing (every replica
 * uses that time; no replica reads a clock).
 *
 * Exactly once: a command with client != 0 is recorded in the client's session. The same
 * (client, seq) again gets the stored result without being applied again; a smaller seq gets
 * CM_E_INVAL. client 0 has no session (internal commands). A session not seen for
 * session_ttl_ns of command time, or the least recently seen one beyond max_sessions, is
 * forgotten; a retry after that is applied again. */
#define NS_CMD_VERSION     1
#define NS_CMD_TIME_OFFSET 24

enum ns_op {
    NS_OP_MKDIR = 1,    /* ino/gen: parent; name; mode */
    NS_OP_CREATE,       /* ino/gen: parent; name; mode; flags NS_CREATE_* */
    NS_OP_SYMLINK,      /* ino/gen: parent; name; target */
    NS_OP_LINK,         /* ino/gen: the file; ino2/gen2: new parent; name2: new name */
    NS_OP_UNLINK,       /* ino/gen: parent; name */
    NS_OP_RMDIR,        /* ino/gen: parent; name */
    NS_OP_RENAME,       /* ino/gen, name: source; ino2/gen2, name2: target; flags NS_RENAME_* */
    NS_OP_SETATTR,      /* ino/gen; sa */
    NS_OP_ALLOC_BLOCKS, /* count: 1 .. NS_MAX_ALLOC_BLOCKS */
    NS_OP_COMMIT,       /* ino/gen; off, len, size, flags NS_COMMIT_*; blocks */
    NS_OP_GC_ACK,       /* ids: forget these pending garbage ids (others are ignored) */
    NS_OP_ORPHAN_BOUND, /* count: the orphan bound rises to it (never falls) */
    NS_OP_COUNT_
};

#define NS_CREATE_EXCL  0x1 /* an existing name is CM_E_EXIST */
#define NS_CREATE_TRUNC 0x2 /* an existing regular file is truncated to 0 */

#define NS_RENAME_NOREPLACE 0x1 /* Linux values */
#define NS_RENAME_EXCHANGE  0x2

/* NS_COMMIT_SET_SIZE: the file's size becomes exactly size (extents beyond it are dropped);
 * without it the size becomes max(current size, size). */
#define NS_COMMIT_SET_SIZE 0x1

/* setattr valid bits. *_NOW set the time to the command's time (UTIME_NOW). */
#define NS_SET_MODE      0x01
#define NS_SET_UID       0x02
#define NS_SET_GID       0x04
#define NS_SET_SIZE      0x08
#define NS_SET_ATIME     0x10
#define NS_SET_MTIME     0x20
#define NS_SET_ATIME_NOW 0x40
#define NS_SET_MTIME_NOW 0x80

struct ns_setattr {
    uint32_t valid;
    uint32_t mode; /* permission bits (07777); the type cannot change */
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    int64_t atime_ns;
    int64_t mtime_ns;
};

/* A command, decoded or about to be encoded. Strings are (pointer, length), not NUL-terminated;
 * a decoded command borrows them from the buffer it was decoded from. */
struct ns_cmd {
    uint8_t op;
    uint64_t client;
    uint64_t seq;
    int64_t now_ns;
    bool has_cred;
    struct ns_cred cred;
    uint64_t ino, gen;
    uint64_t ino2, gen2;
    const char *name;
    size_t name_len;
    const char *name2;
    size_t name2_len;
    const char *target;
    size_t target_len;
    uint32_t mode;
    uint32_t flags;
    struct ns_setattr sa;
    uint64_t off, len, size;
    uint64_t count;
    uint32_t n_blocks;
    const struct ns_block *blocks; /* decoded: malloc'd, freed by ns_cmd_clear */
    uint32_t n_ids;
    const uint64_t *ids; /* GC_ACK; decoded: malloc'd, freed by ns_cmd_clear */
};

/* Encodes c; *out is malloc'd (caller frees). Validates what can be checked without the state:
 * op, names (CM_E_INVAL for "", ".", "..", '/' or NUL inside; CM_E_NAMETOOLONG over
 * NS_NAME_MAX), target length (CM_E_NAMETOOLONG over NS_SYMLINK_MAX), counts and block fields
 * (CM_E_INVAL). Errors also CM_E_NOMEM. */
int ns_cmd_encode(const struct ns_cmd *c, void **out, size_t *len);
/* Decodes and validates like ns_cmd_encode; anything malformed is CM_E_INVAL. On success the
 * caller calls ns_cmd_clear(out) when done (the buffer must outlive out). */
int ns_cmd_decode(const void *buf, size_t len, struct ns_cmd *out);
void ns_cmd_clear(struct ns_cmd *c);
/* Stamps the leader's time into an encoded command. CM_E_INVAL when buf is too short. */
int ns_cmd_set_time(void *buf, size_t len, int64_t now_ns);

/* Who asks, and when: the common part of every command. cred may be NULL. */
struct ns_req {
    uint64_t client;
    uint64_t seq;
    int64_t now_ns;
    const struct ns_cred *cred;
};

/* One encoder per operation (names are NUL-terminated C strings here). *out is malloc'd. */
int ns_cmd_mkdir(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                 uint32_t mode, void **out, size_t *len);
int ns_cmd_create(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                  uint32_t mode, uint32_t flags, void **out, size_t *len);
int ns_cmd_symlink(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                   const char *target, void **out, size_t *len);
int ns_cmd_link(const struct ns_req *rq, uint64_t ino, uint64_t gen, uint64_t newparent,
                uint64_t npgen, const char *newname, void **out, size_t *len);
int ns_cmd_unlink(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                  void **out, size_t *len);
int ns_cmd_rmdir(const struct ns_req *rq, uint64_t parent, uint64_t pgen, const char *name,
                 void **out, size_t *len);
int ns_cmd_rename(const struct ns_req *rq, uint64_t sparent, uint64_t spgen, const char *sname,
                  uint64_t dparent, uint64_t dpgen, const char *dname, uint32_t flags, void **out,
                  size_t *len);
int ns_cmd_setattr(const struct ns_req *rq, uint64_t ino, uint64_t gen, const struct ns_setattr *sa,
                   void **out, size_t *len);
int ns_cmd_alloc_blocks(const struct ns_req *rq, uint32_t count, void **out, size_t *len);
/* The new blocks are laid end to end from off; their lengths must add up to len, and
 * off + len <= size. Block ids must come from NS_OP_ALLOC_BLOCKS and be new (CM_E_INVAL for one
 * never allocated or pending garbage; CM_E_EXPIRED for one below the orphan bound that no file
 * references: its copies may be deleted as orphans). A block a client puts in two files stays
 * referenced until no extent of any file names it (the block index counts references). */
int ns_cmd_commit(const struct ns_req *rq, uint64_t ino, uint64_t gen, uint64_t off, uint64_t len,
                  uint64_t size, uint32_t flags, const struct ns_block *blocks, uint32_t n_blocks,
                  void **out, size_t *len_out);
/* The leader proposes it (client 0) for pending garbage ids that no chunkserver holds any more
 * (docs/protocol.md, "Garbage"). Applying it removes those of the ids that are pending and
 * ignores the others, so applying it again changes nothing; value is how many it removed. */
int ns_cmd_gc_ack(const struct ns_req *rq, const uint64_t *ids, uint32_t n_ids, void **out,
                  size_t *len);
/* The leader proposes it (client 0) when the block ids below `below` were all allocated an
 * orphan grace ago (docs/protocol.md, "Garbage"). Applying it raises the orphan bound to below
 * (CM_E_INVAL above the ids allocated so far; a lower one changes nothing); from then on a
 * commit naming an unreferenced id under the bound fails, so the leader may delete the copies
 * chunkservers hold of such ids. value is the bound after it. */
int ns_cmd_orphan_bound(const struct ns_req *rq, uint64_t below, void **out, size_t *len);

/* ---- Results ----
 *
 * What apply hands to the proposer, for every command (also failed ones). Binary: u8 version,
 * u8 n_attr, u16 zero, i32 err, u64 value, u32 n_freed, u32 zero, then n_attr attributes
 * (64 bytes each: u64 ino, u64 gen, u32 mode, nlink, uid, gid, u64 size, i64 atime, mtime,
 * ctime), then n_freed u64 block ids.
 *
 * attr per op: mkdir, create, symlink: [new (or opened) inode, parent]; link: [inode, new
 * parent]; unlink, rmdir: [parent] and the victim when it still has links; rename: [moved
 * inode, source parent] and the target parent when different; setattr, commit: [inode].
 * value: create 1 when it created the file, 0 when it opened an existing one; alloc_blocks the
 * first id of the reserved range [value, value + count); gc_ack the number of ids removed.
 * freed: block ids no file references any more (unlink of a last link, rename over a last link,
 * truncate, commit). They are also queued in the state as pending garbage until an
 * NS_OP_GC_ACK names them. */
#define NS_RESULT_VERSION  1
#define NS_RESULT_MAX_ATTR 3

struct ns_result {
    int err;
    uint32_t n_attr;
    struct ns_attr attr[NS_RESULT_MAX_ATTR];
    uint64_t value;
    uint32_t n_freed;
    uint64_t *freed; /* malloc'd; ns_result_clear frees it */
};

/* Decodes a result. Errors: CM_E_PROTO (malformed), CM_E_NOMEM. On success call
 * ns_result_clear. */
int ns_result_decode(const void *buf, size_t len, struct ns_result *out);
void ns_result_clear(struct ns_result *r);

/* Applies one command at log index `index` (the rn_fsm apply). *res (malloc'd, freed by the
 * caller) is the encoded result, also for errors; returns the command's error. Only when even
 * the result cannot be built (CM_E_NOMEM) is *res NULL. */
int ns_apply(struct ns *ns, uint64_t index, const void *data, size_t len, void **res,
             size_t *res_len);

/* ---- Reads (on the loop thread, after rn_read) ----
 * A handle whose inode is gone or has another generation is CM_E_STALE. */

/* The entry name in directory parent ("." and ".." are the directory and its parent). Errors:
 * CM_E_STALE, CM_E_NOTDIR, CM_E_INVAL / CM_E_NAMETOOLONG (name), CM_E_ACCES (no search
 * permission), CM_E_NOENT. */
int ns_lookup(struct ns *ns, const struct ns_cred *cred, uint64_t parent, uint64_t pgen,
              const char *name, struct ns_attr *out);
int ns_getattr(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_attr *out);
/* Copies the target (NUL-terminated) into buf, which has room for NS_SYMLINK_MAX + 1 bytes.
 * Errors: CM_E_STALE, CM_E_INVAL (not a symlink). */
int ns_readlink(struct ns *ns, uint64_t ino, uint64_t gen, char *buf, size_t *len);

/* A page of a directory listing. Entries come in the order they were added to the directory
 * ("." is cookie 1, ".." cookie 2, then the entries); each one's cookie continues the listing
 * after it, and stays valid while the directory changes: an entry present during the whole
 * listing is returned exactly once, entries added meanwhile come at the end. */
struct ns_dirent {
    struct ns_attr attr;
    uint64_t cookie;
    uint32_t name_off; /* into ns_dirpage.names, NUL-terminated */
    uint32_t name_len;
};

struct ns_dirpage {
    uint32_t n;
    bool eof; /* nothing after the last entry */
    struct ns_dirent *ents;
    char *names;
};

/* Entries after cookie (0: from the start): at most max_entries, and at most max_bytes counted
 * as NS_DIRENT_COST + name length each, but always at least one when any remain. Needs read
 * permission. Errors: CM_E_STALE, CM_E_NOTDIR, CM_E_ACCES, CM_E_INVAL (max_entries 0),
 * CM_E_NOMEM. Free the page with ns_dirpage_free (also after an error; zeroed then). */
#define NS_DIRENT_COST 32
int ns_readdir(struct ns *ns, const struct ns_cred *cred, uint64_t ino, uint64_t gen,
               uint64_t cookie, uint32_t max_entries, size_t max_bytes, struct ns_dirpage *out);
void ns_dirpage_free(struct ns_dirpage *p);

/* The extents of a regular file overlapping [off, off + len), at most max of them (more is set
 * when the range has more: continue from the end of the last one), and the file's size.
 * Needs read permission. Errors: CM_E_STALE, CM_E_ISDIR, CM_E_INVAL (not a regular file,
 * max 0), CM_E_ACCES, CM_E_NOMEM. Free with ns_blocklist_free (also after an error). */
struct ns_blocklist {
    uint64_t size;
    uint32_t n;
    bool more;
    struct ns_extent *ext;
};
int ns_get_blocks(struct ns *ns, const struct ns_cred *cred, uint64_t ino, uint64_t gen,
                  uint64_t off, uint64_t len, uint32_t max, struct ns_blocklist *out);
void ns_blocklist_free(struct ns_blocklist *b);

/* Counts for statfs (capacity and usage come from the chunkservers, not from here). */
struct ns_statfs {
    uint64_t inodes; /* in use, root included */
    uint64_t files;
    uint64_t dirs;
    uint64_t symlinks;
    uint64_t max_inodes;
    uint64_t blocks_allocated; /* block ids handed out so far */
    uint64_t orphan_below;     /* unreferenced ids below it are orphans (NS_OP_ORPHAN_BOUND) */
    uint64_t applied;          /* last log index applied */
    uint64_t sessions;
    uint64_t gc_pending;
};
void ns_statfs(struct ns *ns, struct ns_statfs *out);

/* Block ids waiting for garbage collection, in the order they were freed: up to max of them
 * from cursor (0: the oldest) into ids; *next continues the listing (0 when it reached the end;
 * a cursor is a hint: after changes a listing may skip or repeat ids). */
void ns_gc_pending(struct ns *ns, uint64_t cursor, uint32_t max, uint64_t *ids, uint32_t *n,
                   uint64_t *next);
/* Whether id is pending garbage. */
bool ns_gc_is_pending(struct ns *ns, uint64_t id);

/* The block index, kept by every apply and rebuilt by a restore: how many extents of live
 * files reference block id (0: none), and how many distinct ids are referenced. O(1). */
uint32_t ns_block_refs(struct ns *ns, uint64_t id);
uint64_t ns_blocks_referenced(struct ns *ns);

/* ---- Snapshots ----
 * The whole state, streamed (never built in memory): magic, version, then inodes in inode
 * order, each directory's entries in listing order, the free inode list, sessions, pending
 * garbage (in the order it was freed), and an end marker. The block index is not written: a
 * restore rebuilds it. Equal states give equal bytes. */
typedef int (*ns_write_fn)(void *arg, const void *data, size_t len);
/* Writes through fn (which returns 0 or a negative code, which is returned). */
int ns_snapshot_write(struct ns *ns, ns_write_fn fn, void *arg);
/* Replaces the state with the snapshot read from fd (size bytes from its current position).
 * The new state is built beside the old one (memory peaks at both) and swapped in only when
 * complete and checked, so on error the state is unchanged. Errors: CM_E_STORE (bad magic or
 * version, truncated, inconsistent: an entry pointing to a missing inode, wrong link counts, a
 * directory not reachable from the root...), CM_E_IO, CM_E_NOMEM. */
int ns_restore_fd(struct ns *ns, int fd, uint64_t size);

#endif
