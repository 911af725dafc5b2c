/* The directory cache behind dfs_lookup_cached: the whole listing of a directory in which names
 * are being looked up one after another (a stat of every file, a rename or unlink of many, git
 * status, cp -r), so that those lookups are answered here instead of by a round trip each to the
 * masters. The idea is MooseFS's directory entry cache and Lustre's statahead.
 *
 * What it promises: an answer is never older than ttl_ms (the age it reports lets the caller
 * shorten the kernel's own caching by as much), which is what the kernel's entry and attribute
 * caches already allow; and changes made through this client are seen at once:
 *   - every change a caller reports (dc_added, dc_removed, dc_renamed, dc_drop) stamps its
 *     directory, and a listing fetched while one happened is thrown away;
 *   - every inode whose attributes a change touched (dc_changed: a write committed, a setattr, a
 *     link, a rename) is answered by the masters again until a newer answer is learned.
 *
 * Stamps (dc_stamp) order requests and changes: one counter, taken under the caller's lock.
 * Pure: no I/O, no clock (times are monotonic ms passed in), no lock of its own. */
#ifndef DFS_CLIENT_DIRCACHE_H
#define DFS_CLIENT_DIRCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "client/dfs.h"

/* Lookups without a listing in one directory within ttl_ms before its listing is fetched. */
#define DC_SCAN_LOOKUPS 4

struct dircache;

/* ttl_ms: how long a listing is used; max_dir: entries of the largest directory listed (larger
 * ones are looked up name by name); max_total: entries kept in all. NULL: out of memory. */
struct dircache *dc_new(uint64_t ttl_ms, size_t max_dir, size_t max_total);
void dc_free(struct dircache *dc);

enum dc_answer {
    DC_HIT,    /* *out is the entry, *age_ms how old */
    DC_ABSENT, /* no such name, as of *age_ms ago */
    DC_ASK,    /* ask the masters, then dc_learn with *stamp */
    DC_FETCH,  /* fetch the listing, then dc_install or dc_fetch_failed with *stamp */
};

/* name in directory (dir, gen) at time now. DC_FETCH is answered to one caller at a time per
 * directory (the others are told DC_ASK meanwhile), and only when fetch is true. */
enum dc_answer dc_lookup(struct dircache *dc, struct dfs_fh dir, const char *name, uint64_t now,
                         int fetch, struct dfs_attr *out, uint64_t *age_ms, uint64_t *stamp);

/* The listing fetched for DC_FETCH (stamp), started at started_ms: n entries without "." and
 * "..". Kept unless a change in the directory was reported since the stamp or it is too big.
 * Returns 1 when kept. */
int dc_install(struct dircache *dc, struct dfs_fh dir, uint64_t stamp, uint64_t started_ms,
               const struct dfs_dirent *e, size_t n, uint64_t now);
/* The fetch failed (no read permission, too big, masters unreachable): the directory is looked
 * up name by name for a while. */
void dc_fetch_failed(struct dircache *dc, struct dfs_fh dir, uint64_t now);

/* The masters' answer to a DC_ASK (stamp), asked at asked_ms: a (NULL: the name is absent). */
void dc_learn(struct dircache *dc, struct dfs_fh dir, const char *name, const struct dfs_attr *a,
              uint64_t stamp, uint64_t asked_ms);

/* Changes made through this client, reported once answered. */
void dc_added(struct dircache *dc, struct dfs_fh dir, const char *name, const struct dfs_attr *a,
              uint64_t now); /* created, or linked: a is the answer */
void dc_removed(struct dircache *dc, struct dfs_fh dir, const char *name, uint64_t now);
void dc_renamed(struct dircache *dc, struct dfs_fh sdir, const char *sname, struct dfs_fh ddir,
                const char *dname, int exchange, uint64_t now);
void dc_drop(struct dircache *dc, struct dfs_fh dir, uint64_t now); /* outcome unknown */
void dc_changed(struct dircache *dc, uint64_t ino, uint64_t now);

struct dc_stats {
    uint64_t hits;      /* names answered from a listing */
    uint64_t absent;    /* of which: absent */
    uint64_t asked;     /* lookups sent to the masters (no listing, or a changed inode) */
    uint64_t fetches;   /* listings fetched */
    uint64_t discarded; /* listings thrown away: changed while fetched, or too big */
    uint64_t entries;   /* entries cached now */
    uint64_t dirs;      /* directories remembered (listed or being looked up in) */
    uint64_t changed;   /* inodes whose recent change is remembered */
};
void dc_get_stats(const struct dircache *dc, struct dc_stats *out);

#endif
