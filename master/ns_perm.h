/* The namespace's permission checks, one function per rule, as pure functions of a credential
 * and an inode's mode and owner. A NULL credential (a trusted internal caller) passes every
 * check, and so does uid 0. They decide; they do not change anything. */
#ifndef DFS_MASTER_NS_PERM_H
#define DFS_MASTER_NS_PERM_H

#include <stdbool.h>
#include <stdint.h>

#include "master/namespace.h"

#define NS_MAY_EXEC  01
#define NS_MAY_WRITE 02
#define NS_MAY_READ  04

/* Whether the credential's gid or one of its groups is gid. */
bool ns_cred_in_group(const struct ns_cred *c, uint32_t gid);

/* The owner, group or other class of mode that applies to c must grant every bit of want
 * (NS_MAY_*), else CM_E_ACCES. Search permission on a directory is NS_MAY_EXEC. */
int ns_perm_access(const struct ns_cred *c, uint32_t mode, uint32_t uid, uint32_t gid, int want);

/* Removing or renaming away an entry whose inode is owned by victim_uid from a directory with
 * the sticky bit: only the directory's owner, the victim's owner or root. Else CM_E_PERM. */
int ns_perm_sticky(const struct ns_cred *c, uint32_t dir_mode, uint32_t dir_uid,
                   uint32_t victim_uid);

/* chmod: only the owner or root (CM_E_PERM). *new_mode (permission bits) loses S_ISGID when a
 * non-root caller is not in the file's group, as Linux does. */
int ns_perm_chmod(const struct ns_cred *c, uint32_t uid, uint32_t gid, uint32_t *new_mode);

/* chown (new_uid / new_gid NULL: not being set): as Linux, only the owner may set the owner,
 * and only to itself; only the owner may set the group, to its current one or one the caller
 * belongs to; root may do anything. Else CM_E_PERM. */
int ns_perm_chown(const struct ns_cred *c, uint32_t uid, uint32_t gid, const uint32_t *new_uid,
                  const uint32_t *new_gid);

/* utimens: setting a time to an arbitrary value needs the owner or root (CM_E_PERM); setting
 * it to now also allows anyone with write permission (CM_E_ACCES). */
int ns_perm_utimes(const struct ns_cred *c, uint32_t mode, uint32_t uid, uint32_t gid,
                   bool arbitrary);

/* The mode after a write or truncate by c: a non-root caller clears S_ISUID, and S_ISGID
 * when group-execute is set (Linux's file_remove_privs). NULL c changes nothing. */
uint32_t ns_perm_kill_priv(const struct ns_cred *c, uint32_t mode);

#endif
