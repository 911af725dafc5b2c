/* The namespace's permission rules, one function each: access by class, sticky directories,
 * chmod, chown, utimens and the privilege bits a write removes. */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "common/errors.h"
#include "master/ns_perm.h"

static const struct ns_cred ROOT = {.uid = 0, .gid = 0};
static const struct ns_cred OWNER = {.uid = 10, .gid = 100};
static const struct ns_cred MEMBER = {.uid = 11, .gid = 101, .n_groups = 2, .groups = {5, 20}};
static const struct ns_cred OTHER = {.uid = 12, .gid = 102};

Test(ns_perm, in_group)
{
    cr_assert(ns_cred_in_group(&MEMBER, 101));
    cr_assert(ns_cred_in_group(&MEMBER, 20));
    cr_assert(!ns_cred_in_group(&MEMBER, 21));
    struct ns_cred bogus = {.uid = 1, .gid = 1, .n_groups = 1000};
    cr_assert(!ns_cred_in_group(&bogus, 2), "n_groups is clamped");
}

Test(ns_perm, access_by_class)
{
    /* owner rwx, group r-x, other --x; file owned by 10:20 */
    uint32_t mode = S_IFDIR | 0751;
    cr_assert_eq(ns_perm_access(&OWNER, mode, 10, 20, NS_MAY_READ | NS_MAY_WRITE | NS_MAY_EXEC), 0);
    cr_assert_eq(ns_perm_access(&MEMBER, mode, 10, 20, NS_MAY_READ | NS_MAY_EXEC), 0);
    cr_assert_eq(ns_perm_access(&MEMBER, mode, 10, 20, NS_MAY_WRITE), CM_E_ACCES);
    cr_assert_eq(ns_perm_access(&OTHER, mode, 10, 20, NS_MAY_EXEC), 0);
    cr_assert_eq(ns_perm_access(&OTHER, mode, 10, 20, NS_MAY_READ), CM_E_ACCES);
    cr_assert_eq(ns_perm_access(&ROOT, S_IFDIR | 0, 10, 20, 7), 0, "root bypasses");
    cr_assert_eq(ns_perm_access(NULL, S_IFDIR | 0, 10, 20, 7), 0, "no credential: trusted");
    /* The owner class applies even when it grants less than the others. */
    cr_assert_eq(ns_perm_access(&OWNER, S_IFREG | 0077, 10, 20, NS_MAY_READ), CM_E_ACCES);
    cr_assert_eq(ns_perm_access(&MEMBER, S_IFREG | 0707, 10, 20, NS_MAY_READ), CM_E_ACCES);
    cr_assert_eq(ns_perm_access(&OWNER, S_IFREG | 0600, 10, 20, 0), 0, "nothing wanted");
}

Test(ns_perm, sticky)
{
    uint32_t tmp = S_IFDIR | 01777;
    cr_assert_eq(ns_perm_sticky(&OTHER, tmp, 1, 10), CM_E_PERM);
    cr_assert_eq(ns_perm_sticky(&OWNER, tmp, 1, 10), 0, "victim's owner");
    cr_assert_eq(ns_perm_sticky(&OTHER, tmp, 12, 10), 0, "directory's owner");
    cr_assert_eq(ns_perm_sticky(&ROOT, tmp, 1, 10), 0);
    cr_assert_eq(ns_perm_sticky(NULL, tmp, 1, 10), 0);
    cr_assert_eq(ns_perm_sticky(&OTHER, S_IFDIR | 0777, 1, 10), 0, "not sticky");
}

Test(ns_perm, chmod)
{
    uint32_t m = 02755;
    cr_assert_eq(ns_perm_chmod(&OTHER, 10, 100, &m), CM_E_PERM);
    cr_assert_eq(ns_perm_chmod(&OWNER, 10, 100, &m), 0);
    cr_assert_eq(m, 02755, "owner in the file's group keeps setgid");
    cr_assert_eq(ns_perm_chmod(&OWNER, 10, 55, &m), 0);
    cr_assert_eq(m, 0755, "not in the group: setgid dropped");
    m = 06755;
    cr_assert_eq(ns_perm_chmod(&ROOT, 10, 55, &m), 0);
    cr_assert_eq(m, 06755);
    struct ns_cred owner_member = {.uid = 10, .gid = 1, .n_groups = 1, .groups = {55}};
    m = 02700;
    cr_assert_eq(ns_perm_chmod(&owner_member, 10, 55, &m), 0);
    cr_assert_eq(m, 02700, "member through a supplementary group");
}

Test(ns_perm, chown)
{
    uint32_t u10 = 10, u11 = 11, g100 = 100, g5 = 5, g20 = 20, g7 = 7;
    cr_assert_eq(ns_perm_chown(&ROOT, 10, 100, &u11, &g7), 0);
    cr_assert_eq(ns_perm_chown(NULL, 10, 100, &u11, &g7), 0);
    cr_assert_eq(ns_perm_chown(&OWNER, 10, 100, &u11, NULL), CM_E_PERM, "giving away");
    cr_assert_eq(ns_perm_chown(&OWNER, 10, 100, &u10, NULL), 0, "to itself");
    cr_assert_eq(ns_perm_chown(&OWNER, 10, 100, NULL, &g100), 0, "its current group");
    cr_assert_eq(ns_perm_chown(&OWNER, 10, 100, NULL, &g7), CM_E_PERM, "not a member");
    cr_assert_eq(ns_perm_chown(&OTHER, 10, 100, &u10, NULL), CM_E_PERM, "not the owner");
    cr_assert_eq(ns_perm_chown(&OTHER, 10, 100, NULL, &g100), CM_E_PERM);
    struct ns_cred member_owner = MEMBER;
    member_owner.uid = 10;
    cr_assert_eq(ns_perm_chown(&member_owner, 10, 100, NULL, &g5), 0);
    cr_assert_eq(ns_perm_chown(&member_owner, 10, 100, NULL, &g20), 0);
    cr_assert_eq(ns_perm_chown(&member_owner, 10, 100, &u10, &g20), 0);
    cr_assert_eq(ns_perm_chown(&OWNER, 10, 100, NULL, NULL), 0);
}

Test(ns_perm, utimes)
{
    cr_assert_eq(ns_perm_utimes(&OWNER, S_IFREG | 0400, 10, 100, true), 0);
    cr_assert_eq(ns_perm_utimes(&OTHER, S_IFREG | 0666, 10, 100, true), CM_E_PERM);
    cr_assert_eq(ns_perm_utimes(&OTHER, S_IFREG | 0666, 10, 100, false), 0);
    cr_assert_eq(ns_perm_utimes(&OTHER, S_IFREG | 0664, 10, 100, false), CM_E_ACCES);
    cr_assert_eq(ns_perm_utimes(&ROOT, S_IFREG | 0, 10, 100, true), 0);
    cr_assert_eq(ns_perm_utimes(NULL, S_IFREG | 0, 10, 100, true), 0);
}

Test(ns_perm, kill_priv)
{
    cr_assert_eq(ns_perm_kill_priv(&OTHER, S_IFREG | 06755), S_IFREG | 0755);
    cr_assert_eq(ns_perm_kill_priv(&OTHER, S_IFREG | 06745), S_IFREG | 02745,
                 "setgid without group-exec stays");
    cr_assert_eq(ns_perm_kill_priv(&ROOT, S_IFREG | 06755), S_IFREG | 06755);
    cr_assert_eq(ns_perm_kill_priv(NULL, S_IFREG | 06755), S_IFREG | 06755);
}
