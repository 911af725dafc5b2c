/* Cluster configurations as values (thesis §4): lookup, quorum size, validation and the
 * versioned binary encoding of RAFT_ENTRY_CONF data. No node state here. */
#ifndef DFS_RAFT_CONFIGURATION_H
#define DFS_RAFT_CONFIGURATION_H

#include <stdbool.h>

#include "raft/raft.h"

/* Position of id in c, or -1. */
int raft__conf_pos(const struct raft_conf *c, raft_id id);
bool raft__conf_has(const struct raft_conf *c, raft_id id);
bool raft__conf_is_voter(const struct raft_conf *c, raft_id id);
uint32_t raft__conf_voters(const struct raft_conf *c);
/* A majority of the voters (paper §5.2); 0 with no voters. */
uint32_t raft__conf_quorum(const struct raft_conf *c);
/* 0 when c is well formed: n <= RAFT_MAX_NODES, ids nonzero and distinct, addrs
 * NUL-terminated; RAFT_E_INVAL otherwise. */
int raft__conf_check(const struct raft_conf *c);

#endif
