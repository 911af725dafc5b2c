/* Internal structures and helpers of the namespace, shared by master/namespace.c and
 * master/ns_*.c; nothing else may include this. Functions named ns__* are internal. */
#ifndef DFS_MASTER_NS_INTERNAL_H
#define DFS_MASTER_NS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "master/namespace.h"

/* A directory entry. Entries sit in ents[] ordered by pos (their readdir cookie); removed ones
 * are tombstones (ino 0) until the next compaction. The name lives in the directory's names[]
 * arena at name_off. */
struct ns_dent {
    uint64_t pos;
    uint32_t ino;
    uint32_t name_off;
    uint32_t hash;
    uint8_t name_len;
};

/* Small directories are scanned; from DIR_INDEX_MIN entries on, an open-addressing table
 * (linear probing, slots hold ents index + 1, 0 = empty) finds names in O(1). */
#define NS_DIR_INDEX_MIN 8
#define NS_FIRST_POS     3 /* cookies 1 and 2 are "." and ".." */

struct ns_dir {
    uint32_t parent;
    uint32_t n_live; /* entries that are not tombstones */
    uint32_t n_ent;  /* used slots of ents, tombstones included */
    uint32_t cap_ent;
    uint64_t next_pos;
    struct ns_dent *ents;
    char *names;
    uint32_t names_len, names_cap;
    uint32_t *slots;
    uint32_t n_slots; /* 0 or a power of two */
};

struct ns_extents {
    uint32_t n, cap;
    struct ns_extent e[];
};

/* An inode slot; mode 0 marks a free slot (aux is then the next free slot). A symlink's target
 * length is its size. */
struct ns_inode {
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint32_t gen;
    uint32_t aux;
    uint64_t size;
    int64_t atime;
    int64_t mtime;
    int64_t ctime;
    union {
        struct ns_dir *dir;
        struct ns_extents *ext;
        char *target;
    } u;
};

/* A client's session: its last sequence number and the encoded result of that command. Kept in
 * a list from least to most recently seen (in log order). */
struct ns_session {
    uint64_t client;
    uint64_t seq;
    int64_t last_seen;
    int err;
    void *result;
    size_t result_len;
    struct ns_session *prev, *next;
    UT_hash_handle hh;
};

/* An open-addressing hash table from nonzero u64 keys to u32 values (linear probing,
 * backward-shift deletion; at most 3/4 full). Keys and values in separate arrays: 12 bytes a
 * slot. */
struct ns_u64map {
    uint64_t *keys; /* 0: empty slot */
    uint32_t *vals;
    size_t n, cap; /* cap: 0 or a power of two */
};

/* Block ids waiting for deletion on the chunkservers, in the order they were freed: ids[] holds
 * them with removed ones as 0 (compacted when they are the majority); pos maps an id to its
 * index in ids. */
struct ns_gc {
    uint64_t *ids;
    size_t n, cap; /* used slots of ids (removed ones included) */
    size_t live;
    struct ns_u64map pos;
};

struct ns_u64vec {
    uint64_t *v;
    size_t n, cap;
};

struct ns {
    struct ns_config cfg;
    struct ns_inode *inodes; /* indexed by ino; slot 0 unused */
    uint32_t n_slots;        /* slots in use or free, slot 0 included */
    uint32_t cap_slots;
    uint32_t free_head; /* 0: none */
    uint32_t n_free;
    uint64_t n_files, n_dirs, n_symlinks;
    uint64_t next_block;
    uint64_t orphan_below; /* NS_OP_ORPHAN_BOUND: unreferenced ids below it are orphans */
    uint64_t applied;
    struct ns_session *sessions; /* uthash by client */
    struct ns_session *lru_head, *lru_tail;
    uint32_t n_sessions;
    struct ns_gc gc;
    struct ns_u64map refs; /* block id -> extents of live files that reference it */
};

/* ---- ns_inode.c ---- */
/* The live inode of a handle, or CM_E_STALE. */
int ns__inode_get(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_inode **out);
/* The live directory of a handle: CM_E_STALE, CM_E_NOTDIR. */
int ns__get_dir(struct ns *ns, uint64_t ino, uint64_t gen, struct ns_inode **out);
/* Makes sure ns__inode_alloc will not need memory. CM_E_NOSPC (limit), CM_E_NOMEM. */
int ns__inode_reserve(struct ns *ns);
/* Takes a free slot (after ns__inode_reserve: never fails) and initialises it. The payload
 * (dir, extents, target) is the caller's to set. Pointers into the inode table stay valid. */
uint32_t ns__inode_alloc(struct ns *ns, uint32_t mode, uint32_t uid, uint32_t gid, int64_t now);
/* Frees an inode whose last link went away: its payload, its blocks (appended to freed, which
 * the caller reserved room in: see ns__file_block_count) and the slot. */
void ns__inode_release(struct ns *ns, uint32_t ino, struct ns_u64vec *freed);
void ns__attr(const struct ns *ns, uint32_t ino, struct ns_attr *out);
/* Frees every inode's payload and the table. */
void ns__inodes_clear(struct ns *ns);

/* ---- ns_dir.c ---- */
int ns__dir_new(uint32_t parent, struct ns_dir **out);
void ns__dir_free(struct ns_dir *d);
/* CM_E_INVAL for "", ".", "..", '/' or NUL inside; CM_E_NAMETOOLONG above NS_NAME_MAX. */
int ns__name_check(const char *name, size_t len);
uint32_t ns__name_hash(const char *name, size_t len);
/* The index in ents of the live entry name, or -1. */
int64_t ns__dir_find(const struct ns_dir *d, const char *name, size_t len);
/* Makes sure one ns__dir_add of a name of len bytes will not need memory (CM_E_NOMEM). */
int ns__dir_reserve(struct ns_dir *d, size_t len);
/* Appends an entry at the next position (after ns__dir_reserve: never fails). */
void ns__dir_add(struct ns_dir *d, const char *name, size_t len, uint32_t ino);
/* Removes the live entry at index i (may compact, which moves entries: indexes die). */
void ns__dir_remove(struct ns_dir *d, uint32_t i);
/* The first index of ents with pos > cookie (n_ent if none). */
uint32_t ns__dir_seek(const struct ns_dir *d, uint64_t cookie);
/* Restore: appends an entry as it is (pos increasing), then ns__dir_index builds the table.
 * CM_E_NOMEM; ns__dir_index gives CM_E_EXIST for a duplicate name. */
int ns__dir_append_raw(struct ns_dir *d, uint64_t pos, uint32_t ino, const char *name, size_t len);
int ns__dir_index(struct ns_dir *d);

/* ---- ns_file.c ---- */
int ns__vec_reserve(struct ns_u64vec *v, size_t more);
void ns__vec_free(struct ns_u64vec *v);
/* The number of distinct blocks the file's extents reference (an upper bound is enough for
 * reserving: this is the extent count). */
size_t ns__file_block_count(const struct ns_inode *in);
/* Drops the file's bytes at and beyond size (the size field is the caller's), keeping the
 * block index refs exact (as ns__file_replace does). Blocks the file no longer references are
 * appended to freed; reserve ns__file_block_count + 1 in freed first. Fails
 * only with CM_E_NOMEM, changing nothing. */
int ns__file_cut(struct ns_inode *in, uint64_t size, struct ns_u64map *refs,
                 struct ns_u64vec *freed);
/* Replaces [off, off + len) with the blocks laid end to end (validated by the caller). Fails
 * only with CM_E_NOMEM or CM_E_FBIG (too many extents), changing nothing. */
int ns__file_replace(struct ns_inode *in, uint64_t off, uint64_t len, const struct ns_block *blocks,
                     uint32_t n, struct ns_u64map *refs, struct ns_u64vec *freed);

/* ---- ns_ops.c ---- */
/* Runs a decoded command (session handling excluded) into r; r->freed is a malloc'd array. */
void ns__execute(struct ns *ns, const struct ns_cmd *c, struct ns_result *r);

/* ---- namespace.c ---- */
/* Empties the namespace's state (not its config) to nothing at all (no root). */
void ns__state_clear(struct ns *ns);
void ns__sessions_clear(struct ns *ns);
/* Links s at the most-recent end of the session list and into the table. */
void ns__session_link(struct ns *ns, struct ns_session *s);

/* ---- ns_index.c ---- */
/* Makes room for more new keys (CM_E_NOMEM); then as many ns__map_put of new keys cannot fail. */
int ns__map_reserve(struct ns_u64map *m, size_t more);
/* The value of key, or NULL (valid until the next put or del). */
uint32_t *ns__map_get(const struct ns_u64map *m, uint64_t key);
/* Sets key (nonzero) to val; a new key needs reserved room. */
void ns__map_put(struct ns_u64map *m, uint64_t key, uint32_t val);
void ns__map_del(struct ns_u64map *m, uint64_t key);
void ns__map_free(struct ns_u64map *m);
/* The block index (ns->refs): one more / one less extent referencing id. A new id needs room
 * reserved with ns__map_reserve(&ns->refs, ...); dropping never allocates. */
void ns__ref_inc(struct ns_u64map *refs, uint64_t id);
void ns__ref_dec(struct ns_u64map *refs, uint64_t id);
/* Rebuilds ns->refs from the files' extents (restore). CM_E_NOMEM. */
int ns__refs_rebuild(struct ns *ns);
/* Makes room for n more ids (CM_E_NOMEM); then ns__gc_push of up to n ids cannot fail. */
int ns__gc_reserve(struct ns_gc *g, size_t n);
/* Appends the ids not already pending, in order. */
int ns__gc_push(struct ns_gc *g, const uint64_t *ids, size_t n);
/* Forgets a pending id; false when it was not pending. Never allocates. */
bool ns__gc_drop(struct ns_gc *g, uint64_t id);
void ns__gc_free(struct ns_gc *g);

/* ---- ns_codec.c ---- */
/* The encoded result (malloc'd *out). CM_E_NOMEM. */
int ns__result_encode(const struct ns_result *r, void **out, size_t *len);

#endif
