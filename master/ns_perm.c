/* Permission checks of the namespace (see ns_perm.h). */
#include "master/ns_perm.h"

#include <sys/stat.h>

#include "common/errors.h"

bool ns_cred_in_group(const struct ns_cred *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    uint32_t n = c->n_groups < NS_MAX_GROUPS ? c->n_groups : NS_MAX_GROUPS;
    for (uint32_t i = 0; i < n; i++)
        if (c->groups[i] == gid)
            return true;
    return false;
}

int ns_perm_access(const struct ns_cred *c, uint32_t mode, uint32_t uid, uint32_t gid, int want)
{
    if (c == NULL || c->uid == 0)
        return 0;
    uint32_t bits;
    if (c->uid == uid)
        bits = (mode >> 6) & 7;
    else if (ns_cred_in_group(c, gid))
        bits = (mode >> 3) & 7;
    else
        bits = mode & 7;
    return ((uint32_t)want & ~bits) == 0 ? 0 : CM_E_ACCES;
}

int ns_perm_sticky(const struct ns_cred *c, uint32_t dir_mode, uint32_t dir_uid,
                   uint32_t victim_uid)
{
    if (c == NULL || c->uid == 0 || !(dir_mode & S_ISVTX))
        return 0;
    return c->uid == dir_uid || c->uid == victim_uid ? 0 : CM_E_PERM;
}

int ns_perm_chmod(const struct ns_cred *c, uint32_t uid, uint32_t gid, uint32_t *new_mode)
{
    if (c == NULL || c->uid == 0)
        return 0;
    if (c->uid != uid)
        return CM_E_PERM;
    if (!ns_cred_in_group(c, gid))
        *new_mode &= ~(uint32_t)S_ISGID;
    return 0;
}

int ns_perm_chown(const struct ns_cred *c, uint32_t uid, uint32_t gid, const uint32_t *new_uid,
                  const uint32_t *new_gid)
{
    if (c == NULL || c->uid == 0)
        return 0;
    if (new_uid != NULL && (c->uid != uid || *new_uid != uid))
        return CM_E_PERM;
    if (new_gid != NULL && (c->uid != uid || (*new_gid != gid && !ns_cred_in_group(c, *new_gid))))
        return CM_E_PERM;
    return 0;
}

int ns_perm_utimes(const struct ns_cred *c, uint32_t mode, uint32_t uid, uint32_t gid,
                   bool arbitrary)
{
    if (c == NULL || c->uid == 0 || c->uid == uid)
        return 0;
    if (arbitrary)
        return CM_E_PERM;
    return ns_perm_access(c, mode, uid, gid, NS_MAY_WRITE);
}

uint32_t ns_perm_kill_priv(const struct ns_cred *c, uint32_t mode)
{
    if (c == NULL || c->uid == 0)
        return mode;
    mode &= ~(uint32_t)S_ISUID;
    if (mode & S_IXGRP)
        mode &= ~(uint32_t)S_ISGID;
    return mode;
}
