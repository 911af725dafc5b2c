/* A small replicated key-value store, the first state machine the masters carry: cluster-wide
 * settings and the Raft tests' workload. Commands are JSON; every mutation carries a client id
 * and sequence number and is applied at most once (a retried command gets the first answer). */
#ifndef DFS_MASTER_KV_FSM_H
#define DFS_MASTER_KV_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "master/raft_node.h"

#define KV_MAX_KEY 1024
#define KV_MAX_VALUE (64 * 1024)
#define KV_MAX_CLIENT 64

struct kv_fsm;

int kv_new(struct kv_fsm **out);
void kv_free(struct kv_fsm *kv);
/* The rn_fsm callbacks of this store (ctx = kv). */
struct rn_fsm kv_fsm_ops(struct kv_fsm *kv);

/* Applies one command (the rn_fsm apply): see struct rn_fsm. */
int kv_apply(struct kv_fsm *kv, raft_index index, const void *data, size_t len, void **res,
             size_t *res_len);

/* The snapshot, streamed through fn (returns 0 or a negative code, which is returned). */
typedef int (*kv_write_fn)(void *arg, const void *data, size_t len);
int kv_snapshot_write(struct kv_fsm *kv, kv_write_fn fn, void *arg);
/* Replaces the state with the snapshot in buf (borrowed for the call). On error (CM_E_STORE
 * when malformed, CM_E_NOMEM) the store is left empty. */
int kv_restore_buf(struct kv_fsm *kv, const void *buf, size_t len);

/* Builds the command for a put (value != NULL) or delete (value == NULL). *out is malloc'd.
 * Errors: CM_E_INVAL (empty or too long key, value or client id), CM_E_NOMEM. */
int kv_command(const char *client, uint64_t seq, const char *key, const char *value, char **out,
               size_t *len);

/* Reads key on the loop thread (after rn_read confirmed it). *value is malloc'd; *revision is
 * the index of the entry that last wrote it. Returns 0 or CM_E_NOENT. */
int kv_get(struct kv_fsm *kv, const char *key, char **value, uint64_t *revision);

/* Number of keys and the index last applied. */
void kv_stats(struct kv_fsm *kv, uint64_t *keys, uint64_t *applied);

#endif
