/* The master's one replicated state machine: the key-value store and the filesystem namespace
 * side by side. A command is a one-byte tag naming its part, then that part's command; it does
 * no I/O of its own beyond the snapshot it is handed. */
#ifndef DFS_MASTER_MASTER_FSM_H
#define DFS_MASTER_MASTER_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "master/cs_registry.h"
#include "master/kv_fsm.h"
#include "master/namespace.h"
#include "master/raft_node.h"

#define MFSM_TAG_KV 1 /* then a kv_command */
#define MFSM_TAG_NS 2 /* then an ns_cmd_* command */
#define MFSM_TAG_CS 3 /* then a cs_cmd_* command (master/cs_registry.h) */

/* Both parts, borrowed: the caller creates and frees them and keeps them alive while the node
 * runs. */
struct master_fsm {
    struct kv_fsm *kv;
    struct ns *ns;
    struct cs_registry *cs; /* the chunkserver table */
};

/* The rn_fsm callbacks (ctx = f). The snapshot is "DFSMFSM1", u32 version (2), u32 zero, u64
 * length of the KV section, the KV section (kv_snapshot_write), u64 length of the chunkserver
 * section, that section (cs_snapshot_write), then the namespace section (ns_snapshot_write) to
 * the end. Version 1 (no chunkserver section: an empty table) is still read. */
struct rn_fsm master_fsm_ops(struct master_fsm *f);

/* Prefixes cmd with tag; *out is malloc'd (caller frees). Errors: CM_E_INVAL (unknown tag),
 * CM_E_NOMEM. */
int master_fsm_wrap(uint8_t tag, const void *cmd, size_t len, void **out, size_t *out_len);

#endif
