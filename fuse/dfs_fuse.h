/* The mount daemon's state: the libdfs handle, mount options, and the table of inodes the kernel
 * knows (lookup counts, open files). Speaks to the cluster only through libdfs (client/dfs.h). */
#ifndef DFS_FUSE_DFS_FUSE_H
#define DFS_FUSE_DFS_FUSE_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "client/dfs.h"

/* An inode the kernel holds (nlookup > 0) or has open (nopen > 0). */
struct node {
    uint64_t ino, gen;
    uint64_t nlookup;
    unsigned nopen;
    struct dfs_file *file; /* while nopen > 0: shared by every open handle of this mount */
    /* Unlinked while open: the name it was hidden under until its last close. */
    char *hidden_name;
    struct dfs_fh hidden_parent;
    /* A directory's attributes as a change this mount made in it left them (ops.c,
     * fz_dir_attr), answered to GETATTR until dattr_until (monotonic ms): the kernel drops
     * its own copy after every such change and would ask the masters again. */
    struct dfs_attr dattr;
    uint64_t dattr_until;
    UT_hash_handle hh;
};

struct fz_options {
    const char *masters;
    const char *secret_file;
    const char *log_level;
    double attr_timeout, entry_timeout;
    double negative_timeout; /* how long a name found absent is cached (not given: entry_timeout) */
    unsigned block_size, replication, op_timeout_s;
    unsigned dir_cache;    /* lookups answered from listings (libdfs's dfs_lookup_cached) */
    unsigned commit_age_s; /* stored blocks of files kept open are committed once this old */
    unsigned readahead_mb; /* read buffers of all open files together (libdfs's budget) */
};

#define FZ_GROUPS_MAX  32   /* supplementary groups sent with a caller's credential */
#define FZ_CRED_SLOTS  64   /* callers whose groups are remembered */
#define FZ_CRED_TTL_MS 1000 /* for this long (reading /proc/PID/status on every call is slow) */

struct fz {
    struct dfs *fs;
    struct fz_options opt;
    pthread_mutex_t mu;     /* guards the table and every node */
    pthread_cond_t stop_cv; /* with mu: the aging thread's sleep, ended by stopping */
    bool stopping;
    struct node *nodes;  /* uthash by ino */
    unsigned open_nodes; /* nodes with nopen > 0 */
    /* Supplementary groups of recent callers (ops.c, cred_of), a slot per pid. */
    pthread_mutex_t cred_mu;
    struct fz_cred_slot {
        uint32_t pid, uid, gid;
        uint64_t ms; /* when read (monotonic); 0: empty */
        int n;
        uint32_t g[FZ_GROUPS_MAX];
    } creds[FZ_CRED_SLOTS];
};

/* libdfs's dir_attr hook (dfs_set_dir_attr_hook; ctx: the struct fz). */
void fz_dir_attr(void *ctx, const struct dfs_attr *a);

/* The lowlevel operations (ops.c). */
extern const struct fuse_lowlevel_ops fz_ops;
/* Commits what open files still buffer; called once the session loop has ended. */
void fz_flush_all(struct fz *z);
/* The aging thread (arg: the struct fz): every minute (or commit_age_s, when shorter), commits
 * the stored blocks of open files that have waited opt.commit_age_s (a program that wrote a
 * block and went quiet would otherwise have its commit refused once the blocks are an orphan
 * grace old). Ends when z->stopping is set (under mu, with stop_cv signalled). */
void *fz_aging_main(void *arg);

/* ---- the node table (nodes.c); callers hold fz->mu ---- */
struct node *fz_node_get(struct fz *z, uint64_t ino);
/* The node for (ino, gen), created when missing (a new generation replaces the old one's). NULL:
 * out of memory. */
struct node *fz_node_ref(struct fz *z, uint64_t ino, uint64_t gen);
/* Drops the node when nothing holds it any more. */
void fz_node_maybe_free(struct fz *z, struct node *n);
/* Frees every node (at unmount; open files are flushed first by the caller). */
void fz_nodes_free(struct fz *z);

#endif
