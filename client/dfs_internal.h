/* libdfs internals shared by its two halves, dfs_meta.c (namespace) and dfs_data.c (file data):
 * the struct behind `struct dfs`, request building and the two ways of calling the masters. Not
 * for users of the library. */
#ifndef DFS_CLIENT_DFS_INTERNAL_H
#define DFS_CLIENT_DFS_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/dfs.h"
#include "common/http_client.h"

/* Mutations one process may have in flight at once (one per session). */
#define DFS_SESSIONS 16

struct session {
    uint64_t client;
    uint64_t seq; /* last used */
    bool busy;
};

struct dfs {
    struct dfs_master_conn *mc;
    struct cm_http_client *data; /* to chunkservers */
    struct cm_http_async *fan;   /* to chunkservers: a small block's copies side by side */
    bool follower_reads;
    uint32_t block_size;
    unsigned replication;
    long data_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct session sessions[DFS_SESSIONS];
    uint64_t ids_next, ids_end; /* block ids reserved by alloc-blocks, not used yet */
    uint64_t ids_ms;            /* when they were reserved (monotonic ms) */
    /* The last placement the master gave (dfs_data.c, place): reused for new blocks for
     * PLACE_CACHE_MS while their first pipeline attempt succeeds. */
    struct dfs_place_cache {
        unsigned n;
        uint64_t ms;
        uint32_t id[16];
        char addr[16][272]; /* ADDR_MAX of dfs_data.c */
    } place_cache;
    struct dfs_data_stats stats;
    size_t ra_budget;       /* dfs_options.readahead_budget */
    atomic_size_t ra_bytes; /* read buffers of open files, together (dfs_data.c) */
    /* dfs_lookup_cached's listings (NULL: off), under dc_mu; every change this handle makes is
     * reported to it (dfs__dc_* below). */
    struct dircache *dc;
    pthread_mutex_t dc_mu;
    dfs_dir_attr_fn dir_attr_hook; /* dfs_set_dir_attr_hook */
    void *dir_attr_ctx;
};

/* A request body being built: the first failure sticks in err and later adds do nothing. */
struct dfs_req {
    cJSON *j;
    int err;
};

void dreq_init(struct dfs_req *b);
void dreq_u64(struct dfs_req *b, const char *f, uint64_t v);
void dreq_i64(struct dfs_req *b, const char *f, int64_t v);
void dreq_str(struct dfs_req *b, const char *f, const char *s);
void dreq_bool(struct dfs_req *b, const char *f, bool v);
void dreq_fh(struct dfs_req *b, const char *fino, const char *fgen, struct dfs_fh fh);
void dreq_cred(struct dfs_req *b, const struct dfs_cred *cred);

int dfs__parse_attr(const cJSON *a, struct dfs_attr *out);
/* The answer's "attr" into out (nothing when out is NULL). */
int dfs__answer_attr(const cJSON *ans, struct dfs_attr *out);

/* Both consume b (its body is freed) and on success leave the answer in *ans (caller frees). */
/* A read: adds the credential and follower_read. */
int dfs__read(struct dfs *fs, const char *path, struct dfs_req *b, const struct dfs_cred *cred,
              cJSON **ans);
/* A mutation: a free session's (client, next seq) and the credential; retried exactly once. */
int dfs__mutate(struct dfs *fs, const char *path, struct dfs_req *b, const struct dfs_cred *cred,
                cJSON **ans);

/* The inode ino's attributes changed (or may have: the outcome is unknown), for the directory
 * cache. No-op when it is off. */
void dfs__dc_changed(struct dfs *fs, uint64_t ino);

#endif
