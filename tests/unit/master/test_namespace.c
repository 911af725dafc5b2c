/* The namespace state machine through its command path: every operation's POSIX semantics and
 * errors, link counts, generations, files as block lists, readdir paging while the directory
 * changes, exactly-once retries, sessions, permissions in the operations, statfs and limits. */
#include "ns_test_util.h"

static void setup(void)
{
    t_init(NULL);
}

static void teardown(void)
{
    t_fini();
}

TestSuite(ns, .init = setup, .fini = teardown);

static struct ns_attr mkdir_ok(const struct ns_attr *p, const char *name)
{
    struct ns_attr a;
    cr_assert_eq(t_mkdir(p, name, 0755, &a), 0, "mkdir %s", name);
    return a;
}

static struct ns_attr create_ok(const struct ns_attr *p, const char *name)
{
    struct ns_attr a;
    cr_assert_eq(t_create(p, name, 0644, NS_CREATE_EXCL, &a), 0, "create %s", name);
    return a;
}

/* ---- Root, mkdir, create, symlink, lookup ---- */

Test(ns, root)
{
    struct ns_attr r = t_root(), a;
    cr_assert_eq(r.ino, NS_ROOT_INO);
    cr_assert_eq(r.gen, 1);
    cr_assert_eq(r.mode, S_IFDIR | 0755);
    cr_assert_eq(r.nlink, 2);
    cr_assert_eq(t_lookup(&r, ".", &a), 0);
    cr_assert_eq(a.ino, 1);
    cr_assert_eq(t_lookup(&r, "..", &a), 0);
    cr_assert_eq(a.ino, 1);
    cr_assert_eq(ns_getattr(T.ns, 1, 2, &a), CM_E_STALE);
    cr_assert_eq(ns_getattr(T.ns, 0, 0, &a), CM_E_STALE);
    cr_assert_eq(ns_getattr(T.ns, 99, 1, &a), CM_E_STALE);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.inodes, 1);
    cr_assert_eq(st.dirs, 1);
    cr_assert_eq(st.files, 0);
}

Test(ns, mkdir)
{
    struct ns_attr r = t_root(), a, b;
    T.now = 5000;
    cr_assert_eq(t_mkdir(&r, "a", 0750 | S_ISVTX, &a), 0);
    cr_assert_eq(a.mode, S_IFDIR | 0750 | S_ISVTX);
    cr_assert_eq(a.nlink, 2);
    cr_assert_eq(a.size, 0);
    cr_assert_eq(a.atime_ns, 5000);
    cr_assert_eq(a.mtime_ns, 5000);
    cr_assert_eq(a.ctime_ns, 5000);
    r = t_root();
    cr_assert_eq(r.nlink, 3);
    cr_assert_eq(r.mtime_ns, 5000);
    cr_assert_eq(r.ctime_ns, 5000);
    cr_assert_eq(t_lookup(&r, "a", &b), 0);
    cr_assert_eq(b.ino, a.ino);
    cr_assert_eq(t_lookup(&a, "..", &b), 0);
    cr_assert_eq(b.ino, 1);
    cr_assert_eq(t_mkdir(&r, "a", 0755, NULL), CM_E_EXIST);
    struct ns_attr f = create_ok(&r, "f");
    cr_assert_eq(t_mkdir(&r, "f", 0755, NULL), CM_E_EXIST);
    cr_assert_eq(t_mkdir(&f, "x", 0755, NULL), CM_E_NOTDIR);
    mkdir_ok(&a, "sub");
    cr_assert_eq(t_get(&a).nlink, 3);
    cr_assert_eq(t_get(&r).nlink, 3);
    /* setuid/setgid bits of mkdir's mode are ignored (setgid comes from the parent only). */
    cr_assert_eq(t_mkdir(&r, "s", 06777, &b), 0);
    cr_assert_eq(b.mode, S_IFDIR | 0777);
}

/* A directory emptied by unlinks is compacted to nothing. Its arrays were once shrunk with
 * realloc(p, 0), which frees p and returns NULL: the directory kept the freed arrays, wrote into
 * them on the next create and freed them again at rmdir (seen as heap corruption on every
 * master). The counts are ones that left such capacity at the last compaction, with short names
 * and with 255-byte ones (the names array); the sanitizer build catches any use of freed memory. */
Test(ns, emptied_directories_are_reused_and_removed)
{
    static const uint32_t counts[] = {64, 65, 255, 260, 515, 1030};
    struct ns_attr root = t_root();
    char name[300];
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        for (int longnames = 0; longnames < 2; longnames++) {
            char dname[32];
            snprintf(dname, sizeof(dname), "d%zu-%d", c, longnames);
            struct ns_attr d = mkdir_ok(&root, dname);
            for (int round = 0; round < 2; round++) {
                for (uint32_t i = 0; i < counts[c]; i++) {
                    snprintf(name, sizeof(name), "%s%u", longnames ? "" : "f", i);
                    if (longnames)
                        snprintf(name, sizeof(name), "%0250u", i);
                    create_ok(&d, name);
                }
                for (uint32_t i = 0; i < counts[c]; i++) {
                    snprintf(name, sizeof(name), "%s%u", longnames ? "" : "f", i);
                    if (longnames)
                        snprintf(name, sizeof(name), "%0250u", i);
                    cr_assert_eq(t_unlink(&d, name, NULL), 0, "unlink %s", name);
                }
                t_check_invariants(T.ns);
            }
            /* Used again after being emptied twice, then removed. */
            create_ok(&d, "again");
            struct ns_attr got;
            cr_assert_eq(t_lookup(&d, "again", &got), 0);
            cr_assert_eq(t_unlink(&d, "again", NULL), 0);
            cr_assert_eq(t_rmdir(&root, dname), 0);
        }
    }
    t_check_invariants(T.ns);
}

Test(ns, names)
{
    struct ns_attr r = t_root();
    char long_name[NS_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name));
    long_name[NS_NAME_MAX + 1] = 0;
    cr_assert_eq(t_mkdir(&r, "", 0755, NULL), CM_E_INVAL);
    cr_assert_eq(t_mkdir(&r, ".", 0755, NULL), CM_E_INVAL);
    cr_assert_eq(t_mkdir(&r, "..", 0755, NULL), CM_E_INVAL);
    cr_assert_eq(t_mkdir(&r, "a/b", 0755, NULL), CM_E_INVAL);
    cr_assert_eq(t_create(&r, "/", 0644, 0, NULL), CM_E_INVAL);
    cr_assert_eq(t_mkdir(&r, long_name, 0755, NULL), CM_E_NAMETOOLONG);
    cr_assert_eq(t_lookup(&r, long_name, NULL), CM_E_NAMETOOLONG);
    cr_assert_eq(t_lookup(&r, "", NULL), CM_E_INVAL);
    cr_assert_eq(t_lookup(&r, "a/b", NULL), CM_E_INVAL);
    long_name[NS_NAME_MAX] = 0;
    cr_assert_eq(t_mkdir(&r, long_name, 0755, NULL), 0);
    cr_assert_eq(t_lookup(&r, long_name, NULL), 0);
    cr_assert_eq(t_create(&r, "...", 0644, 0, NULL), 0);
    cr_assert_eq(t_create(&r, "name with spaces\t\x01\xff", 0644, 0, NULL), 0);
    cr_assert_eq(t_lookup(&r, "name with spaces\t\x01\xff", NULL), 0);
    cr_assert_eq(t_lookup(&r, "name with spaces", NULL), CM_E_NOENT);
}

Test(ns, create)
{
    struct ns_attr r = t_root(), f, g, d, l;
    struct ns_result res;
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    cr_assert_eq(ns_cmd_create(&rq, 1, 1, "f", 04755, NS_CREATE_EXCL, &c, &n), 0);
    cr_assert_eq(t_apply(c, n, &res), 0);
    cr_assert_eq(res.value, 1, "created");
    cr_assert_eq(res.n_attr, 2);
    f = res.attr[0];
    cr_assert_eq(res.attr[1].ino, 1);
    ns_result_clear(&res);
    cr_assert_eq(f.mode, S_IFREG | 04755);
    cr_assert_eq(f.nlink, 1);
    cr_assert_eq(f.size, 0);
    cr_assert_eq(t_create(&r, "f", 0644, NS_CREATE_EXCL, NULL), CM_E_EXIST);
    /* Non-exclusive create of an existing file opens it. */
    rq = t_req();
    cr_assert_eq(ns_cmd_create(&rq, 1, 1, "f", 0600, 0, &c, &n), 0);
    cr_assert_eq(t_apply(c, n, &res), 0);
    cr_assert_eq(res.value, 0, "opened");
    cr_assert_eq(res.attr[0].ino, f.ino);
    cr_assert_eq(res.attr[0].mode, S_IFREG | 04755, "mode unchanged");
    ns_result_clear(&res);
    d = mkdir_ok(&r, "d");
    cr_assert_eq(t_create(&r, "d", 0644, 0, NULL), CM_E_ISDIR);
    cr_assert_eq(t_create(&r, "d", 0644, NS_CREATE_EXCL, NULL), CM_E_EXIST);
    cr_assert_eq(t_symlink(&r, "l", "f", &l), 0);
    cr_assert_eq(t_create(&r, "l", 0644, 0, NULL), CM_E_EXIST);
    cr_assert_eq(t_create(&f, "x", 0644, 0, NULL), CM_E_NOTDIR);
    /* O_TRUNC on an existing file: size 0, its blocks freed. */
    uint64_t id;
    cr_assert_eq(t_write(&f, 0, 100, &id, NULL), 0);
    cr_assert_eq(t_get(&f).size, 100);
    T.now += 10;
    rq = t_req();
    cr_assert_eq(ns_cmd_create(&rq, 1, 1, "f", 0644, NS_CREATE_TRUNC, &c, &n), 0);
    cr_assert_eq(t_apply(c, n, &res), 0);
    cr_assert_eq(res.value, 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], id);
    ns_result_clear(&res);
    g = t_get(&f);
    cr_assert_eq(g.size, 0);
    cr_assert_eq(g.mtime_ns, T.now);
    cr_assert_eq(g.ctime_ns, T.now);
    cr_assert_eq(t_create(&d, "new", 0644, NS_CREATE_TRUNC, &g), 0, "trunc of a new file");
    cr_assert_eq(g.size, 0);
}

Test(ns, symlink)
{
    struct ns_attr r = t_root(), l, f;
    char buf[NS_SYMLINK_MAX + 1], big[NS_SYMLINK_MAX + 2];
    size_t len;
    T.now = 77;
    cr_assert_eq(t_symlink(&r, "l", "../some/where", &l), 0);
    cr_assert_eq(l.mode, S_IFLNK | 0777);
    cr_assert_eq(l.size, 13);
    cr_assert_eq(l.nlink, 1);
    cr_assert_eq(l.mtime_ns, 77);
    cr_assert_eq(ns_readlink(T.ns, l.ino, l.gen, buf, &len), 0);
    cr_assert_str_eq(buf, "../some/where");
    cr_assert_eq(len, 13);
    cr_assert_eq(t_symlink(&r, "l", "x", NULL), CM_E_EXIST);
    cr_assert_eq(t_symlink(&r, "e", "", NULL), CM_E_NOENT);
    memset(big, 'y', sizeof(big));
    big[NS_SYMLINK_MAX + 1] = 0;
    cr_assert_eq(t_symlink(&r, "big", big, NULL), CM_E_NAMETOOLONG);
    big[NS_SYMLINK_MAX] = 0;
    cr_assert_eq(t_symlink(&r, "big", big, &l), 0);
    cr_assert_eq(ns_readlink(T.ns, l.ino, l.gen, buf, &len), 0);
    cr_assert_eq(len, NS_SYMLINK_MAX);
    cr_assert_eq(memcmp(buf, big, NS_SYMLINK_MAX + 1), 0);
    f = create_ok(&r, "f");
    cr_assert_eq(ns_readlink(T.ns, f.ino, f.gen, buf, &len), CM_E_INVAL);
    cr_assert_eq(ns_readlink(T.ns, l.ino, l.gen + 1, buf, &len), CM_E_STALE);
    cr_assert_eq(t_unlink(&r, "big", NULL), 0);
    cr_assert_eq(ns_readlink(T.ns, l.ino, l.gen, buf, &len), CM_E_STALE);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.symlinks, 1);
}

/* ---- unlink, rmdir, link ---- */

Test(ns, unlink)
{
    struct ns_attr r = t_root(), f, d;
    struct ns_result res;
    f = create_ok(&r, "f");
    uint64_t id1, id2;
    cr_assert_eq(t_write(&f, 0, 10, &id1, NULL), 0);
    cr_assert_eq(t_write(&f, 10, 10, &id2, NULL), 0);
    d = mkdir_ok(&r, "d");
    T.now = 999;
    cr_assert_eq(t_unlink(&r, "d", NULL), CM_E_ISDIR);
    cr_assert_eq(t_unlink(&r, "nope", NULL), CM_E_NOENT);
    cr_assert_eq(t_unlink(&f, "x", NULL), CM_E_NOTDIR);
    cr_assert_eq(t_unlink(&r, "f", &res), 0);
    cr_assert_eq(res.n_freed, 2);
    cr_assert_eq(res.freed[0], id1);
    cr_assert_eq(res.freed[1], id2);
    cr_assert_eq(res.n_attr, 1, "only the parent: the file is gone");
    cr_assert_eq(res.attr[0].ino, 1);
    cr_assert_eq(res.attr[0].mtime_ns, 999);
    ns_result_clear(&res);
    cr_assert_eq(t_lookup(&r, "f", NULL), CM_E_NOENT);
    struct ns_attr a;
    cr_assert_eq(ns_getattr(T.ns, f.ino, f.gen, &a), CM_E_STALE);
    cr_assert_eq(t_get(&d).nlink, 2);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.files, 0);
    cr_assert_eq(st.gc_pending, 2);
}

Test(ns, rmdir)
{
    struct ns_attr r = t_root(), d, e;
    d = mkdir_ok(&r, "d");
    e = mkdir_ok(&d, "e");
    create_ok(&e, "f");
    cr_assert_eq(t_get(&r).nlink, 3);
    cr_assert_eq(t_rmdir(&r, "d"), CM_E_NOTEMPTY);
    cr_assert_eq(t_rmdir(&d, "e"), CM_E_NOTEMPTY);
    cr_assert_eq(t_rmdir(&e, "f"), CM_E_NOTDIR);
    cr_assert_eq(t_rmdir(&e, "g"), CM_E_NOENT);
    cr_assert_eq(t_rmdir(&r, "."), CM_E_INVAL);
    cr_assert_eq(t_rmdir(&r, ".."), CM_E_INVAL);
    cr_assert_eq(t_unlink(&e, "f", NULL), 0);
    T.now = 4242;
    cr_assert_eq(t_rmdir(&d, "e"), 0);
    struct ns_attr a = t_get(&d);
    cr_assert_eq(a.nlink, 2);
    cr_assert_eq(a.mtime_ns, 4242);
    cr_assert_eq(ns_getattr(T.ns, e.ino, e.gen, &a), CM_E_STALE);
    cr_assert_eq(t_rmdir(&r, "d"), 0);
    cr_assert_eq(t_get(&r).nlink, 2);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.dirs, 1);
    cr_assert_eq(st.inodes, 1);
}

Test(ns, hard_links)
{
    struct ns_attr r = t_root(), d, f, a;
    struct ns_result res;
    d = mkdir_ok(&r, "d");
    f = create_ok(&r, "f");
    uint64_t id;
    cr_assert_eq(t_write(&f, 0, 4096, &id, NULL), 0);
    T.now = 5555;
    cr_assert_eq(t_link(&f, &d, "g", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(a.nlink, 2);
    cr_assert_eq(a.ctime_ns, 5555);
    cr_assert_eq(t_get(&d).mtime_ns, 5555);
    cr_assert_eq(t_link(&f, &r, "h", &a), 0);
    cr_assert_eq(a.nlink, 3);
    cr_assert_eq(t_link(&f, &r, "h", NULL), CM_E_EXIST);
    cr_assert_eq(t_link(&d, &r, "dd", NULL), CM_E_PERM);
    cr_assert_eq(t_link(&f, &f, "x", NULL), CM_E_NOTDIR);
    cr_assert_eq(t_link(&f, &r, "a/b", NULL), CM_E_INVAL);
    struct ns_attr stale = f;
    stale.gen++;
    cr_assert_eq(t_link(&stale, &r, "s", NULL), CM_E_STALE);
    /* Every name sees the same inode and the same blocks. */
    cr_assert_eq(t_lookup(&d, "g", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(a.size, 4096);
    cr_assert_eq(t_unlink(&r, "f", &res), 0);
    cr_assert_eq(res.n_freed, 0, "still linked");
    cr_assert_eq(res.n_attr, 2);
    cr_assert_eq(res.attr[1].nlink, 2);
    ns_result_clear(&res);
    cr_assert_eq(t_unlink(&d, "g", &res), 0);
    cr_assert_eq(res.n_freed, 0);
    ns_result_clear(&res);
    cr_assert_eq(t_get(&f).nlink, 1);
    cr_assert_eq(t_unlink(&r, "h", &res), 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], id);
    ns_result_clear(&res);
    cr_assert_eq(ns_getattr(T.ns, f.ino, f.gen, &a), CM_E_STALE);
    /* Symlinks can be hard-linked too. */
    struct ns_attr l;
    cr_assert_eq(t_symlink(&r, "l", "t", &l), 0);
    cr_assert_eq(t_link(&l, &d, "l2", &a), 0);
    cr_assert_eq(a.nlink, 2);
}

Test(ns, link_max)
{
    struct ns_attr r = t_root(), f = create_ok(&r, "f");
    char name[32];
    for (uint32_t i = 1; i < NS_LINK_MAX; i++) {
        snprintf(name, sizeof(name), "l%u", i);
        cr_assert_eq(t_link(&f, &r, name, NULL), 0);
    }
    cr_assert_eq(t_get(&f).nlink, NS_LINK_MAX);
    cr_assert_eq(t_link(&f, &r, "one-more", NULL), CM_E_MLINK);
}

Test(ns, generation)
{
    struct ns_attr r = t_root(), f, g, a;
    f = create_ok(&r, "f");
    cr_assert_eq(f.gen, 1);
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    g = create_ok(&r, "g");
    cr_assert_eq(g.ino, f.ino, "the number is reused");
    cr_assert_eq(g.gen, f.gen + 1, "with a new generation");
    cr_assert_eq(ns_getattr(T.ns, f.ino, f.gen, &a), CM_E_STALE);
    struct ns_setattr sa = {.valid = NS_SET_MODE, .mode = 0600};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_STALE);
    cr_assert_eq(t_commit(&f, 0, 0, 10, 0, NULL, 0, NULL), CM_E_STALE);
    cr_assert_eq(t_link(&f, &r, "x", NULL), CM_E_STALE);
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 0, 10, 10, &bl), CM_E_STALE);
    /* A directory handle of a removed directory is stale for everything. */
    struct ns_attr d = mkdir_ok(&r, "d");
    cr_assert_eq(t_rmdir(&r, "d"), 0);
    cr_assert_eq(t_mkdir(&d, "x", 0755, NULL), CM_E_STALE);
    cr_assert_eq(t_create(&d, "x", 0644, 0, NULL), CM_E_STALE);
    cr_assert_eq(t_unlink(&d, "x", NULL), CM_E_STALE);
    cr_assert_eq(t_rename(&d, "x", &r, "y", 0, NULL), CM_E_STALE);
    cr_assert_eq(t_lookup(&d, "x", NULL), CM_E_STALE);
    struct ns_dirpage pg;
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 0, 10, 4096, &pg), CM_E_STALE);
    ns_dirpage_free(&pg);
    struct ns_attr d2 = mkdir_ok(&r, "d2");
    cr_assert_eq(d2.ino, d.ino);
    cr_assert_eq(d2.gen, d.gen + 1);
}

/* ---- setattr ---- */

Test(ns, chmod_chown_utimens)
{
    struct ns_attr r = t_root(), f, a, d;
    struct ns_result res;
    f = create_ok(&r, "f");
    T.now = 100;
    struct ns_setattr sa = {.valid = NS_SET_MODE, .mode = 06755};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.attr[0].mode, S_IFREG | 06755);
    cr_assert_eq(res.attr[0].ctime_ns, 100);
    cr_assert_eq(res.attr[0].mtime_ns, f.mtime_ns, "chmod leaves mtime");
    ns_result_clear(&res);
    /* chown clears setuid, and setgid because group-exec is set. */
    T.now = 200;
    sa = (struct ns_setattr){.valid = NS_SET_UID | NS_SET_GID, .uid = 10, .gid = 20};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    a = res.attr[0];
    ns_result_clear(&res);
    cr_assert_eq(a.uid, 10);
    cr_assert_eq(a.gid, 20);
    cr_assert_eq(a.mode, S_IFREG | 0755);
    cr_assert_eq(a.ctime_ns, 200);
    /* Without group-exec, setgid (mandatory locking) stays. */
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 06745};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    sa = (struct ns_setattr){.valid = NS_SET_GID, .gid = 21};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    cr_assert_eq(t_get(&f).mode, S_IFREG | 02745);
    /* Directories keep their setgid bit over chown. */
    d = mkdir_ok(&r, "d");
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 02775};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    sa = (struct ns_setattr){.valid = NS_SET_UID, .uid = 3};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    cr_assert_eq(t_get(&d).mode, S_IFDIR | 02775);
    /* utimens: explicit values, and "now" = the command's time. */
    T.now = 300;
    sa = (struct ns_setattr){.valid = NS_SET_ATIME | NS_SET_MTIME, .atime_ns = 11, .mtime_ns = 22};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    a = t_get(&f);
    cr_assert_eq(a.atime_ns, 11);
    cr_assert_eq(a.mtime_ns, 22);
    cr_assert_eq(a.ctime_ns, 300);
    T.now = 400;
    sa = (struct ns_setattr){.valid = NS_SET_ATIME_NOW};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    a = t_get(&f);
    cr_assert_eq(a.atime_ns, 400);
    cr_assert_eq(a.mtime_ns, 22);
    T.now = 500;
    sa = (struct ns_setattr){.valid = NS_SET_MTIME_NOW | NS_SET_ATIME, .atime_ns = -5};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    a = t_get(&f);
    cr_assert_eq(a.atime_ns, -5);
    cr_assert_eq(a.mtime_ns, 500);
    cr_assert_eq(a.ctime_ns, 500);
    /* Conflicting or unknown bits. */
    sa = (struct ns_setattr){.valid = NS_SET_ATIME | NS_SET_ATIME_NOW};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_INVAL);
    sa = (struct ns_setattr){.valid = 0x100};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_INVAL);
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 010000};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_INVAL);
    /* Nothing to set: nothing changes, not even ctime. */
    T.now = 600;
    sa = (struct ns_setattr){0};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    cr_assert_eq(t_get(&f).ctime_ns, 500);
}

static uint32_t n_extents(const struct ns_attr *f, struct ns_extent *out, uint32_t max)
{
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f->ino, f->gen, 0, UINT64_MAX, 1u << 20, &bl), 0);
    uint32_t n = bl.n;
    if (out)
        memcpy(out, bl.ext, (n < max ? n : max) * sizeof(*out));
    ns_blocklist_free(&bl);
    return n;
}

Test(ns, truncate)
{
    struct ns_attr r = t_root(), f, a;
    struct ns_result res;
    struct ns_extent e[8];
    f = create_ok(&r, "f");
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t_write(&f, (uint64_t)i * 1000, 1000, &id[i], NULL), 0);
    cr_assert_eq(t_get(&f).size, 3000);
    cr_assert_eq(n_extents(&f, NULL, 0), 3);
    /* Grow: only the size, the new range is a hole. */
    T.now = 10;
    struct ns_setattr sa = {.valid = NS_SET_SIZE, .size = 10000};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, 0);
    a = res.attr[0];
    ns_result_clear(&res);
    cr_assert_eq(a.size, 10000);
    cr_assert_eq(a.mtime_ns, 10);
    cr_assert_eq(a.ctime_ns, 10);
    cr_assert_eq(n_extents(&f, NULL, 0), 3);
    /* Shrink inside the second block: it is shortened, the third is freed. */
    sa.size = 1500;
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], id[2]);
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, e, 8), 2);
    cr_assert_eq(e[1].block.id, id[1]);
    cr_assert_eq(e[1].len, 500);
    cr_assert_eq(e[1].block.len, 1000, "the block itself is unchanged");
    /* Shrink to a block boundary and to zero. */
    sa.size = 1000;
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], id[1]);
    ns_result_clear(&res);
    sa.size = 0;
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], id[0]);
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, NULL, 0), 0);
    cr_assert_eq(t_get(&f).size, 0);
    struct ns_attr d = mkdir_ok(&r, "d"), l;
    cr_assert_eq(t_symlink(&r, "l", "x", &l), 0);
    sa.size = 5;
    cr_assert_eq(t_setattr(&d, &sa, NULL), CM_E_ISDIR);
    cr_assert_eq(t_setattr(&l, &sa, NULL), CM_E_INVAL);
    sa.size = NS_MAX_FILE_SIZE + 1;
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_FBIG);
    sa.size = NS_MAX_FILE_SIZE;
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
}

/* ---- Files as block lists ---- */

Test(ns, commit_and_get_blocks)
{
    struct ns_attr r = t_root(), f, a;
    struct ns_result res;
    struct ns_extent e[8];
    f = create_ok(&r, "f");
    uint64_t first;
    cr_assert_eq(t_alloc(3, &first), 0);
    struct ns_block b[3] = {t_block(first, 100), t_block(first + 1, 200), t_block(first + 2, 50)};
    T.now = 31;
    cr_assert_eq(t_commit(&f, 0, 350, 350, 0, b, 3, &res), 0);
    a = res.attr[0];
    ns_result_clear(&res);
    cr_assert_eq(a.size, 350);
    cr_assert_eq(a.mtime_ns, 31);
    cr_assert_eq(n_extents(&f, e, 8), 3);
    cr_assert_eq(e[0].off, 0);
    cr_assert_eq(e[1].off, 100);
    cr_assert_eq(e[2].off, 300);
    cr_assert_eq(e[1].block.id, first + 1);
    cr_assert_eq(e[1].block.crc32c, b[1].crc32c);
    cr_assert_eq(e[1].block.n_replicas, 3);
    cr_assert_eq(e[1].block.replicas[2], b[1].replicas[2]);
    cr_assert_eq(e[1].block.replicas[3], 0);
    /* Overwrite the middle of the second block: it is split, nothing freed. */
    uint64_t mid;
    cr_assert_eq(t_alloc(1, &mid), 0);
    struct ns_block m = t_block(mid, 20);
    cr_assert_eq(t_commit(&f, 150, 20, 170, 0, &m, 1, &res), 0);
    cr_assert_eq(res.n_freed, 0);
    cr_assert_eq(res.attr[0].size, 350, "size never shrinks without SET_SIZE");
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, e, 8), 5);
    cr_assert_eq(e[1].block.id, first + 1);
    cr_assert_eq(e[1].off, 100);
    cr_assert_eq(e[1].len, 50);
    cr_assert_eq(e[2].block.id, mid);
    cr_assert_eq(e[2].off, 150);
    cr_assert_eq(e[3].block.id, first + 1);
    cr_assert_eq(e[3].off, 170);
    cr_assert_eq(e[3].block_off, 70);
    cr_assert_eq(e[3].len, 130);
    /* get_blocks of a range gives only the overlapping extents, paged by max. */
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 160, 20, 10, &bl), 0);
    cr_assert_eq(bl.n, 2);
    cr_assert_eq(bl.ext[0].block.id, mid);
    cr_assert_eq(bl.ext[1].off, 170);
    cr_assert_eq(bl.size, 350);
    cr_assert(!bl.more);
    ns_blocklist_free(&bl);
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 0, 1000, 2, &bl), 0);
    cr_assert_eq(bl.n, 2);
    cr_assert(bl.more);
    ns_blocklist_free(&bl);
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 350, 1000, 2, &bl), 0);
    cr_assert_eq(bl.n, 0);
    ns_blocklist_free(&bl);
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 0, 0, 2, &bl), 0);
    cr_assert_eq(bl.n, 0);
    ns_blocklist_free(&bl);
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 0, 1, 0, &bl), CM_E_INVAL);
    /* Overwrite [50, 320): the whole second block's pieces and the middle block go away. */
    uint64_t big;
    cr_assert_eq(t_alloc(1, &big), 0);
    struct ns_block bb = t_block(big, 270);
    cr_assert_eq(t_commit(&f, 50, 270, 320, 0, &bb, 1, &res), 0);
    cr_assert_eq(res.n_freed, 2);
    cr_assert_eq(res.freed[0], first + 1);
    cr_assert_eq(res.freed[1], mid);
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, e, 8), 3);
    cr_assert_eq(e[0].len, 50);
    cr_assert_eq(e[1].block.id, big);
    cr_assert_eq(e[2].off, 320);
    cr_assert_eq(e[2].block_off, 20);
    cr_assert_eq(e[2].len, 30);
    /* SET_SIZE makes the size exact, cutting what lies beyond. */
    cr_assert_eq(t_commit(&f, 0, 0, 60, NS_COMMIT_SET_SIZE, NULL, 0, &res), 0);
    cr_assert_eq(res.n_freed, 1);
    cr_assert_eq(res.freed[0], first + 2);
    cr_assert_eq(res.attr[0].size, 60);
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, e, 8), 2);
    cr_assert_eq(e[1].len, 10);
    /* A sparse write far beyond the end leaves a hole. */
    uint64_t far;
    cr_assert_eq(t_write(&f, 1 << 20, 10, &far, NULL), 0);
    cr_assert_eq(t_get(&f).size, (1 << 20) + 10);
    cr_assert_eq(n_extents(&f, e, 8), 3);
    cr_assert_eq(e[2].off, 1 << 20);
}

Test(ns, commit_errors)
{
    struct ns_attr r = t_root(), f = create_ok(&r, "f"), d = mkdir_ok(&r, "d"), l;
    cr_assert_eq(t_symlink(&r, "l", "x", &l), 0);
    uint64_t id;
    cr_assert_eq(t_alloc(1, &id), 0);
    struct ns_block b = t_block(id, 100);
    cr_assert_eq(t_commit(&f, 0, 100, 50, 0, &b, 1, NULL), CM_E_INVAL, "beyond size");
    cr_assert_eq(t_commit(&f, 0, 99, 100, 0, &b, 1, NULL), CM_E_INVAL, "lengths differ");
    cr_assert_eq(t_commit(&d, 0, 100, 100, 0, &b, 1, NULL), CM_E_ISDIR);
    cr_assert_eq(t_commit(&l, 0, 100, 100, 0, &b, 1, NULL), CM_E_INVAL);
    cr_assert_eq(t_commit(&f, 0, 100, 100, 2, &b, 1, NULL), CM_E_INVAL, "flags");
    cr_assert_eq(t_commit(&f, UINT64_MAX - 10, 100, UINT64_MAX, 0, &b, 1, NULL), CM_E_FBIG);
    struct ns_block never = t_block(id + 1000, 100);
    cr_assert_eq(t_commit(&f, 0, 100, 100, 0, &never, 1, NULL), CM_E_INVAL, "unallocated");
    struct ns_block bad = b;
    bad.n_replicas = 0;
    cr_assert_eq(t_commit(&f, 0, 100, 100, 0, &bad, 1, NULL), CM_E_INVAL);
    bad = b;
    bad.n_replicas = NS_MAX_REPLICAS + 1;
    cr_assert_eq(t_commit(&f, 0, 100, 100, 0, &bad, 1, NULL), CM_E_INVAL);
    bad = b;
    bad.len = 0;
    cr_assert_eq(t_commit(&f, 0, 0, 100, 0, &bad, 1, NULL), CM_E_INVAL);
    bad = b;
    bad.id = 0;
    cr_assert_eq(t_commit(&f, 0, 100, 100, 0, &bad, 1, NULL), CM_E_INVAL);
    cr_assert_eq(n_extents(&f, NULL, 0), 0, "nothing changed");
    cr_assert_eq(t_get(&f).size, 0);
    b.n_replicas = NS_MAX_REPLICAS;
    cr_assert_eq(t_commit(&f, 0, 100, 100, 0, &b, 1, NULL), 0);
}

Test(ns, many_blocks)
{
    /* A file of many blocks written by appends, then cut in the middle and overwritten. */
    struct ns_attr r = t_root(), f = create_ok(&r, "f");
    struct ns_result res;
    uint64_t first;
    enum { N = 3000 };
    cr_assert_eq(t_alloc(N, &first), 0);
    for (uint32_t i = 0; i < N; i += 100) {
        struct ns_block b[100];
        for (uint32_t k = 0; k < 100; k++)
            b[k] = t_block(first + i + k, 10);
        cr_assert_eq(
            t_commit(&f, (uint64_t)i * 10, 1000, (uint64_t)(i + 100) * 10, 0, b, 100, NULL), 0);
    }
    cr_assert_eq(n_extents(&f, NULL, 0), N);
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(T.ns, NULL, f.ino, f.gen, 12345, 100, 100, &bl), 0);
    cr_assert_eq(bl.n, 11);
    cr_assert_eq(bl.ext[0].block.id, first + 1234);
    ns_blocklist_free(&bl);
    uint64_t nb;
    cr_assert_eq(t_alloc(1, &nb), 0);
    struct ns_block big = t_block(nb, 10000);
    cr_assert_eq(t_commit(&f, 5, 10000, 10005, 0, &big, 1, &res), 0);
    cr_assert_eq(res.n_freed, 999, "blocks 1..999 fully covered");
    ns_result_clear(&res);
    cr_assert_eq(n_extents(&f, NULL, 0), N - 1001 + 3, "0 and 1000 cut, the new one");
    struct ns_setattr sa = {.valid = NS_SET_SIZE, .size = 7};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, N - 1000, "all but block 0 and the new one");
    ns_result_clear(&res);
}

Test(ns, alloc_and_gc)
{
    struct ns_attr r = t_root(), f;
    uint64_t a, b;
    cr_assert_eq(t_alloc(10, &a), 0);
    cr_assert_eq(a, 1);
    cr_assert_eq(t_alloc(1, &b), 0);
    cr_assert_eq(b, 11);
    cr_assert_eq(t_alloc(0, NULL), CM_E_INVAL);
    cr_assert_eq(t_alloc(NS_MAX_ALLOC_BLOCKS + 1, NULL), CM_E_INVAL);
    f = create_ok(&r, "f");
    uint64_t id1, id2;
    cr_assert_eq(t_write(&f, 0, 10, &id1, NULL), 0);
    cr_assert_eq(t_write(&f, 10, 10, &id2, NULL), 0);
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    uint64_t next, ids[8];
    uint32_t n;
    ns_gc_pending(T.ns, 0, 8, ids, &n, &next);
    cr_assert_eq(next, 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], id1);
    cr_assert_eq(ids[1], id2);
    ns_gc_pending(T.ns, 0, 1, ids, &n, &next);
    cr_assert_eq(n, 1);
    cr_assert_eq(next, 1);
    ns_gc_pending(T.ns, next, 1, ids, &n, &next);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], id2);
    cr_assert_eq(next, 0);
    cr_assert(ns_gc_is_pending(T.ns, id1));
    void *c;
    size_t len;
    struct ns_req rq = t_req();
    uint64_t ack[2] = {id1, 12345};
    cr_assert_eq(ns_cmd_gc_ack(&rq, ack, 2, &c, &len), 0);
    struct ns_result res;
    cr_assert_eq(t_apply(c, len, &res), 0, "an unknown id is ignored");
    cr_assert_eq(res.value, 1);
    ns_result_clear(&res);
    cr_assert_not(ns_gc_is_pending(T.ns, id1));
    ns_gc_pending(T.ns, 0, 8, ids, &n, &next);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], id2);
    rq = t_req();
    cr_assert_eq(ns_cmd_gc_ack(&rq, ack, 1, &c, &len), 0);
    cr_assert_eq(t_apply(c, len, &res), 0, "a repeated ack is harmless");
    cr_assert_eq(res.value, 0);
    ns_result_clear(&res);
    rq = t_req();
    ack[0] = id2;
    cr_assert_eq(ns_cmd_gc_ack(&rq, ack, 1, &c, &len), 0);
    cr_assert_eq(t_apply(c, len, NULL), 0);
    ns_gc_pending(T.ns, 0, 8, ids, &n, &next);
    cr_assert_eq(n, 0);
    rq = t_req();
    cr_assert_eq(ns_cmd_gc_ack(&rq, ack, 0, &c, &len), CM_E_INVAL, "an empty ack");
    cr_assert_eq(ns_cmd_gc_ack(&rq, ack, NS_MAX_GC_ACK + 1, &c, &len), CM_E_INVAL);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.blocks_allocated, 13);
    cr_assert_eq(st.gc_pending, 0);
}

/* ---- readdir ---- */

static uint32_t list_all(const struct ns_attr *d, uint32_t page, size_t bytes, char names[][32],
                         uint32_t max)
{
    uint64_t cookie = 0;
    uint32_t n = 0;
    for (;;) {
        struct ns_dirpage pg;
        cr_assert_eq(ns_readdir(T.ns, NULL, d->ino, d->gen, cookie, page, bytes, &pg), 0);
        cr_assert(pg.n > 0 || pg.eof);
        for (uint32_t i = 0; i < pg.n; i++) {
            cr_assert_lt(n, max);
            snprintf(names[n++], 32, "%s", pg.names + pg.ents[i].name_off);
            cookie = pg.ents[i].cookie;
        }
        bool eof = pg.eof;
        ns_dirpage_free(&pg);
        if (eof)
            return n;
    }
}

Test(ns, readdir_basic)
{
    struct ns_attr r = t_root(), d = mkdir_ok(&r, "d"), f;
    char names[64][32];
    cr_assert_eq(list_all(&d, 10, 4096, names, 64), 2);
    cr_assert_str_eq(names[0], ".");
    cr_assert_str_eq(names[1], "..");
    create_ok(&d, "b");
    mkdir_ok(&d, "a");
    f = create_ok(&d, "c");
    for (uint32_t page = 1; page <= 6; page++) {
        cr_assert_eq(list_all(&d, page, 4096, names, 64), 5);
        cr_assert_str_eq(names[2], "b", "creation order");
        cr_assert_str_eq(names[3], "a");
        cr_assert_str_eq(names[4], "c");
    }
    /* Attributes come with the entries ("." is d, ".." is the root). */
    struct ns_dirpage pg;
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 0, 100, 1 << 20, &pg), 0);
    cr_assert_eq(pg.n, 5);
    cr_assert(pg.eof);
    cr_assert_eq(pg.ents[0].attr.ino, d.ino);
    cr_assert_eq(pg.ents[0].cookie, 1);
    cr_assert_eq(pg.ents[1].attr.ino, 1);
    cr_assert_eq(pg.ents[1].cookie, 2);
    cr_assert_eq(pg.ents[4].attr.ino, f.ino);
    cr_assert_eq(pg.ents[4].attr.mode, S_IFREG | 0644);
    cr_assert_eq(pg.ents[3].attr.mode & S_IFMT, S_IFDIR);
    cr_assert_eq(pg.ents[4].name_len, 1);
    ns_dirpage_free(&pg);
    /* max_bytes: every entry costs NS_DIRENT_COST + name length; at least one always. */
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 0, 100, 2 * NS_DIRENT_COST + 3, &pg), 0);
    cr_assert_eq(pg.n, 2);
    cr_assert(!pg.eof);
    ns_dirpage_free(&pg);
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 2, 100, 1, &pg), 0);
    cr_assert_eq(pg.n, 1);
    ns_dirpage_free(&pg);
    cr_assert_eq(list_all(&d, 100, 1, names, 64), 5);
    /* Past the end. */
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 1000, 100, 4096, &pg), 0);
    cr_assert_eq(pg.n, 0);
    cr_assert(pg.eof);
    ns_dirpage_free(&pg);
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 0, 0, 4096, &pg), CM_E_INVAL);
    cr_assert_eq(ns_readdir(T.ns, NULL, f.ino, f.gen, 0, 10, 4096, &pg), CM_E_NOTDIR);
}

/* Entries present for the whole listing come exactly once; entries removed before being
 * reached do not come; new entries come at most once; no name twice. */
Test(ns, readdir_concurrent_changes)
{
    struct ns_attr r = t_root(), d = mkdir_ok(&r, "d");
    enum { N = 600, MAXN = 4000 };
    static bool exists[MAXN], original[MAXN], removed[MAXN], seen[MAXN];
    char name[32];
    memset(exists, 0, sizeof(exists));
    memset(seen, 0, sizeof(seen));
    memset(removed, 0, sizeof(removed));
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "e%d", i);
        create_ok(&d, name);
        exists[i] = original[i] = true;
    }
    int next = N;
    uint32_t rnd = 12345;
    uint64_t cookie = 0;
    for (int round = 0;; round++) {
        struct ns_dirpage pg;
        cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, cookie, 1 + round % 13, 1 << 20, &pg), 0);
        for (uint32_t i = 0; i < pg.n; i++) {
            const char *nm = pg.names + pg.ents[i].name_off;
            cookie = pg.ents[i].cookie;
            if (nm[0] == '.')
                continue;
            int k = atoi(nm + 1);
            cr_assert(!seen[k], "%s returned twice", nm);
            cr_assert(exists[k], "%s returned after removal", nm);
            seen[k] = true;
        }
        bool eof = pg.eof;
        ns_dirpage_free(&pg);
        if (eof)
            break;
        /* Between pages: remove a few random entries and add a few. */
        for (int j = 0; j < 5; j++) {
            rnd = rnd * 1103515245 + 12345;
            int k = (int)((rnd >> 8) % (uint32_t)next);
            if (exists[k]) {
                snprintf(name, sizeof(name), "e%d", k);
                cr_assert_eq(t_unlink(&d, name, NULL), 0);
                exists[k] = false;
                removed[k] = true;
            }
        }
        for (int j = 0; j < 3 && next < MAXN; j++) {
            snprintf(name, sizeof(name), "e%d", next);
            create_ok(&d, name);
            exists[next++] = true;
        }
    }
    for (int k = 0; k < next; k++)
        if (original[k] && !removed[k])
            cr_assert(seen[k], "e%d present throughout but skipped", k);
    t_check_invariants(T.ns);
}

Test(ns, readdir_large_and_compaction)
{
    struct ns_attr r = t_root(), d = mkdir_ok(&r, "d");
    enum { N = 20000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%08d", i);
        create_ok(&d, name);
    }
    /* Remove 90% (forcing compactions); lookups and listing stay right. */
    for (int i = 0; i < N; i++) {
        if (i % 10 == 3)
            continue;
        snprintf(name, sizeof(name), "file-%08d", i);
        cr_assert_eq(t_unlink(&d, name, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "file-%08d", i);
        cr_assert_eq(t_lookup(&d, name, NULL), i % 10 == 3 ? 0 : CM_E_NOENT);
    }
    static char names[N / 10 + 2][32];
    cr_assert_eq(list_all(&d, 97, 1 << 20, names, N / 10 + 2), N / 10 + 2);
    for (int i = 0; i < N / 10; i++) {
        snprintf(name, sizeof(name), "file-%08d", i * 10 + 3);
        cr_assert_str_eq(names[i + 2], name);
    }
    /* Empty it; cookies keep growing, new entries list after. */
    for (int i = 3; i < N; i += 10) {
        snprintf(name, sizeof(name), "file-%08d", i);
        cr_assert_eq(t_unlink(&d, name, NULL), 0);
    }
    create_ok(&d, "again");
    struct ns_dirpage pg;
    cr_assert_eq(ns_readdir(T.ns, NULL, d.ino, d.gen, 2, 10, 4096, &pg), 0);
    cr_assert_eq(pg.n, 1);
    cr_assert_gt(pg.ents[0].cookie, N);
    ns_dirpage_free(&pg);
}

/* ---- Exactly once ---- */

/* Retrying the last command gives the same answer, and the state is as after one apply. */
static void same_result_on_retry(int err)
{
    struct ns_result a, b;
    void *c = malloc(T.last_len);
    memcpy(c, T.last, T.last_len);
    char *before = t_dump(T.ns);
    int e1 = t_retry(&a);
    int e2 = t_apply_on(T.ns, c, T.last_len, &b);
    char *after = t_dump(T.ns);
    cr_assert_eq(e1, err);
    cr_assert_eq(e2, err);
    cr_assert_eq(a.n_attr, b.n_attr);
    cr_assert_eq(memcmp(a.attr, b.attr, sizeof(a.attr)), 0);
    cr_assert_eq(a.value, b.value);
    cr_assert_eq(a.n_freed, b.n_freed);
    /* Only the applied index moved. */
    cr_assert_str_eq(strchr(before, '\n'), strchr(after, '\n'));
    ns_result_clear(&a);
    ns_result_clear(&b);
    free(before);
    free(after);
}

Test(ns, exactly_once_every_mutation)
{
    struct ns_attr r = t_root(), d, f, g, l;
    struct ns_result res;
    cr_assert_eq(t_mkdir(&r, "d", 0755, &d), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_create(&d, "f", 0644, NS_CREATE_EXCL, &f), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_symlink(&d, "l", "f", &l), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_link(&f, &r, "g", &g), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_get(&f).nlink, 2, "linked once");
    uint64_t id;
    cr_assert_eq(t_alloc(5, &id), 0);
    same_result_on_retry(0);
    uint64_t id2;
    cr_assert_eq(t_alloc(1, &id2), 0);
    cr_assert_eq(id2, id + 5, "the retry reserved nothing");
    struct ns_block b = t_block(id, 10);
    cr_assert_eq(t_commit(&f, 0, 10, 10, 0, &b, 1, NULL), 0);
    same_result_on_retry(0);
    struct ns_setattr sa = {.valid = NS_SET_SIZE | NS_SET_MTIME_NOW, .size = 0};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert_eq(res.n_freed, 1);
    ns_result_clear(&res);
    same_result_on_retry(0);
    cr_assert_eq(t_rename(&d, "f", &r, "moved", 0, NULL), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_rename(&d, "l", &r, "absent", NS_RENAME_EXCHANGE, NULL), CM_E_NOENT);
    same_result_on_retry(CM_E_NOENT);
    cr_assert_eq(t_unlink(&r, "g", NULL), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_unlink(&d, "l", NULL), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_rmdir(&r, "d"), 0);
    same_result_on_retry(0);
    void *c;
    size_t n;
    struct ns_req rq = t_req();
    uint64_t ack = 1;
    cr_assert_eq(ns_cmd_gc_ack(&rq, &ack, 1, &c, &n), 0);
    cr_assert_eq(t_apply(c, n, NULL), 0);
    same_result_on_retry(0);
    cr_assert_eq(t_mkdir(&r, "moved", 0755, NULL), CM_E_EXIST);
    same_result_on_retry(CM_E_EXIST);
}

Test(ns, exactly_once_answer_is_stored)
{
    struct ns_attr r = t_root(), a;
    /* A retried mkdir does not fail with EEXIST, even after other clients acted. */
    cr_assert_eq(t_mkdir(&r, "x", 0755, &a), 0);
    void *saved = malloc(T.last_len);
    size_t saved_len = T.last_len;
    memcpy(saved, T.last, saved_len);
    uint64_t me = T.client;
    T.client = 99;
    T.seq = 0;
    cr_assert_eq(t_mkdir(&r, "y", 0755, NULL), 0);
    T.client = me;
    struct ns_result res;
    cr_assert_eq(t_apply_on(T.ns, saved, saved_len, &res), 0);
    cr_assert_eq(res.attr[0].ino, a.ino);
    ns_result_clear(&res);
    /* A failed command retried after the state changed still gets its first answer. */
    cr_assert_eq(t_unlink(&r, "nope", NULL), CM_E_NOENT);
    saved = malloc(T.last_len);
    saved_len = T.last_len;
    memcpy(saved, T.last, saved_len);
    T.client = 99;
    cr_assert_eq(t_create(&r, "nope", 0644, 0, NULL), 0);
    T.client = me;
    cr_assert_eq(t_apply_on(T.ns, saved, saved_len, NULL), CM_E_NOENT);
    cr_assert_eq(t_lookup(&r, "nope", NULL), 0, "not applied again");
    /* An older sequence number is refused. */
    uint64_t last = T.seq;
    T.seq = 0; /* client 7 is at 2 */
    cr_assert_eq(t_mkdir(&r, "old", 0755, NULL), CM_E_INVAL);
    cr_assert_eq(t_lookup(&r, "old", NULL), CM_E_NOENT);
    T.seq = last;
    cr_assert_eq(t_mkdir(&r, "new", 0755, NULL), 0);
    /* Client 0 has no session: a retry is applied again. */
    T.client = 0;
    cr_assert_eq(t_mkdir(&r, "z", 0755, NULL), 0);
    cr_assert_eq(t_retry(NULL), CM_E_EXIST);
}

Test(ns, sessions_expire_and_are_bounded)
{
    t_fini();
    struct ns_config cfg;
    ns_config_default(&cfg);
    cfg.session_ttl_ns = 1000;
    cfg.max_sessions = 3;
    t_init(&cfg);
    struct ns_attr r = t_root();
    T.now = 10000;
    cr_assert_eq(t_mkdir(&r, "a", 0755, NULL), 0);
    void *saved = malloc(T.last_len);
    size_t saved_len = T.last_len;
    memcpy(saved, T.last, saved_len);
    /* Within the TTL the retry is answered from the session. */
    T.now = 10900;
    cr_assert_eq(t_retry(NULL), 0);
    /* Another client's command moves time past the TTL: the session is gone, the retry is
     * applied again. */
    T.client = 8;
    T.now = 12001;
    cr_assert_eq(t_mkdir(&r, "b", 0755, NULL), 0);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.sessions, 1);
    cr_assert_eq(t_apply_on(T.ns, saved, saved_len, NULL), CM_E_EXIST);
    /* At most 3 sessions; the least recently seen goes first. */
    uint64_t ids[10], id;
    for (uint64_t c = 100; c < 110; c++) {
        T.client = c;
        T.seq = 0;
        cr_assert_eq(t_alloc(1, &ids[c - 100]), 0);
        ns_statfs(T.ns, &st);
        cr_assert_leq(st.sessions, 3);
    }
    T.client = 109;
    T.seq = 0;
    cr_assert_eq(t_alloc(1, &id), 0);
    cr_assert_eq(id, ids[9], "109 is still known: its answer again");
    T.client = 100;
    T.seq = 0;
    cr_assert_eq(t_alloc(1, &id), 0);
    cr_assert_neq(id, ids[0], "100 was forgotten: applied again");
}

/* ---- Permissions inside the operations ---- */

static const struct ns_cred ROOT = {.uid = 0, .gid = 0};
static const struct ns_cred ALICE = {.uid = 1000, .gid = 1000, .n_groups = 1, .groups = {50}};
static const struct ns_cred BOB = {.uid = 1001, .gid = 1001};

Test(ns, owner_from_credentials)
{
    struct ns_attr r = t_root(), f, d, s;
    struct ns_setattr sa = {.valid = NS_SET_MODE, .mode = 0777};
    cr_assert_eq(t_setattr(&r, &sa, NULL), 0);
    T.cred = &ALICE;
    cr_assert_eq(t_create(&r, "f", 0640, 0, &f), 0);
    cr_assert_eq(f.uid, 1000);
    cr_assert_eq(f.gid, 1000);
    /* A setgid directory gives its group, and its setgid bit to subdirectories. */
    T.cred = NULL;
    cr_assert_eq(t_mkdir(&r, "sg", 0777, &d), 0);
    sa = (struct ns_setattr){.valid = NS_SET_MODE | NS_SET_GID, .mode = 02777, .gid = 77};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    T.cred = &ALICE;
    cr_assert_eq(t_mkdir(&d, "sub", 0755, &s), 0);
    cr_assert_eq(s.gid, 77);
    cr_assert_eq(s.mode, S_IFDIR | 02755);
    cr_assert_eq(t_create(&d, "x", 02755, 0, &f), 0);
    cr_assert_eq(f.gid, 77);
    cr_assert_eq(f.mode, S_IFREG | 0755, "not in group 77: setgid dropped");
    cr_assert_eq(t_create(&d, "y", 02745, 0, &f), 0);
    cr_assert_eq(f.mode, S_IFREG | 02745, "no group-exec: kept");
    T.cred = &ROOT;
    cr_assert_eq(t_create(&d, "z", 02755, 0, &f), 0);
    cr_assert_eq(f.mode, S_IFREG | 02755, "root keeps it");
}

Test(ns, permission_search_and_write)
{
    struct ns_attr r = t_root(), d, f;
    /* d: owned by alice, 0750; group 50. */
    cr_assert_eq(t_mkdir(&r, "d", 0750, &d), 0);
    struct ns_setattr sa = {.valid = NS_SET_UID | NS_SET_GID, .uid = 1000, .gid = 50};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    cr_assert_eq(t_create(&d, "f", 0644, 0, &f), 0);
    T.cred = &BOB;
    cr_assert_eq(t_lookup(&d, "f", NULL), CM_E_ACCES, "no search permission");
    cr_assert_eq(t_lookup(&d, "..", NULL), CM_E_ACCES);
    cr_assert_eq(t_create(&d, "g", 0644, 0, NULL), CM_E_ACCES);
    cr_assert_eq(t_mkdir(&d, "g", 0755, NULL), CM_E_ACCES);
    cr_assert_eq(t_unlink(&d, "f", NULL), CM_E_ACCES);
    struct ns_dirpage pg;
    cr_assert_eq(ns_readdir(T.ns, T.cred, d.ino, d.gen, 0, 10, 4096, &pg), CM_E_ACCES);
    /* A member of group 50 may search and read, not write. */
    struct ns_cred carol = {.uid = 2000, .gid = 2000, .n_groups = 2, .groups = {7, 50}};
    T.cred = &carol;
    cr_assert_eq(t_lookup(&d, "f", NULL), 0);
    cr_assert_eq(ns_readdir(T.ns, T.cred, d.ino, d.gen, 0, 10, 4096, &pg), 0);
    ns_dirpage_free(&pg);
    cr_assert_eq(t_create(&d, "g", 0644, 0, NULL), CM_E_ACCES);
    cr_assert_eq(t_mkdir(&d, "f", 0755, NULL), CM_E_EXIST, "EEXIST before EACCES, as Linux");
    cr_assert_eq(t_symlink(&d, "s", "t", NULL), CM_E_ACCES);
    cr_assert_eq(t_link(&f, &d, "h", NULL), CM_E_ACCES);
    cr_assert_eq(t_rmdir(&d, "f"), CM_E_ACCES);
    /* The owner may; root may anything. */
    T.cred = &ALICE;
    cr_assert_eq(t_create(&d, "g", 0600, 0, NULL), 0);
    T.cred = &ROOT;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    cr_assert_eq(t_create(&d, "h", 0600, 0, NULL), 0);
    cr_assert_eq(t_unlink(&d, "h", NULL), 0);
    /* File data: read needs r, write (commit, truncate) needs w. */
    T.cred = NULL;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0755};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0600};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    T.cred = &BOB;
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(T.ns, T.cred, f.ino, f.gen, 0, 10, 10, &bl), CM_E_ACCES);
    sa = (struct ns_setattr){.valid = NS_SET_SIZE, .size = 10};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_ACCES);
    uint64_t id;
    cr_assert_eq(t_alloc(1, &id), 0);
    struct ns_block b = t_block(id, 10);
    cr_assert_eq(t_commit(&f, 0, 10, 10, 0, &b, 1, NULL), CM_E_ACCES);
    cr_assert_eq(t_create(&d, "f", 0644, NS_CREATE_TRUNC, NULL), CM_E_ACCES);
    cr_assert_eq(t_create(&d, "f", 0644, 0, NULL), 0, "opening without truncation");
}

Test(ns, permission_sticky)
{
    struct ns_attr r = t_root(), tmp, af, bf, bd;
    cr_assert_eq(t_mkdir(&r, "tmp", 01777, &tmp), 0);
    T.cred = &ALICE;
    cr_assert_eq(t_create(&tmp, "a", 0666, 0, &af), 0);
    T.cred = &BOB;
    cr_assert_eq(t_create(&tmp, "b", 0666, 0, &bf), 0);
    cr_assert_eq(t_mkdir(&tmp, "bd", 0777, &bd), 0);
    cr_assert_eq(t_unlink(&tmp, "a", NULL), CM_E_PERM, "not bob's");
    cr_assert_eq(t_rename(&tmp, "a", &tmp, "c", 0, NULL), CM_E_PERM);
    cr_assert_eq(t_rename(&tmp, "b", &tmp, "a", 0, NULL), CM_E_PERM, "replacing alice's");
    cr_assert_eq(t_rename(&tmp, "a", &tmp, "b", NS_RENAME_EXCHANGE, NULL), CM_E_PERM);
    T.cred = &ALICE;
    cr_assert_eq(t_rmdir(&tmp, "bd"), CM_E_PERM);
    cr_assert_eq(t_rename(&tmp, "a", &tmp, "a2", 0, NULL), 0, "her own");
    T.cred = &BOB;
    cr_assert_eq(t_rename(&tmp, "b", &tmp, "b2", 0, NULL), 0);
    cr_assert_eq(t_unlink(&tmp, "b2", NULL), 0);
    cr_assert_eq(t_rmdir(&tmp, "bd"), 0);
    /* The directory's owner may remove anything in it. */
    T.cred = NULL;
    struct ns_setattr sa = {.valid = NS_SET_UID, .uid = 1001};
    cr_assert_eq(t_setattr(&tmp, &sa, NULL), 0);
    T.cred = &BOB;
    cr_assert_eq(t_unlink(&tmp, "a2", NULL), 0);
}

Test(ns, permission_setattr)
{
    struct ns_attr r = t_root(), f;
    T.cred = NULL;
    struct ns_setattr sa = {.valid = NS_SET_MODE, .mode = 0777};
    cr_assert_eq(t_setattr(&r, &sa, NULL), 0);
    T.cred = &ALICE;
    cr_assert_eq(t_create(&r, "f", 0664, 0, &f), 0);
    /* chmod: owner only; not in the file's group: setgid dropped. */
    T.cred = &BOB;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0777};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_PERM);
    T.cred = &ALICE;
    sa = (struct ns_setattr){.valid = NS_SET_GID, .gid = 50};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0, "chgrp to a group she is in");
    sa = (struct ns_setattr){.valid = NS_SET_GID, .gid = 51};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_PERM);
    sa = (struct ns_setattr){.valid = NS_SET_UID, .uid = 1001};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_PERM, "giving away");
    sa = (struct ns_setattr){.valid = NS_SET_UID, .uid = 1000};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0, "to herself");
    T.cred = &BOB;
    sa = (struct ns_setattr){.valid = NS_SET_GID, .gid = 50};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_PERM, "not the owner");
    T.cred = &ROOT;
    sa = (struct ns_setattr){.valid = NS_SET_GID, .gid = 9};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    T.cred = &ALICE;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 02775};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    cr_assert_eq(t_get(&f).mode, S_IFREG | 0775, "setgid dropped: not in group 9");
    /* utimens: arbitrary times owner-only; "now" for anyone who may write. */
    T.cred = &BOB;
    sa = (struct ns_setattr){.valid = NS_SET_MTIME, .mtime_ns = 5};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_PERM);
    sa = (struct ns_setattr){.valid = NS_SET_MTIME_NOW | NS_SET_ATIME_NOW};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_ACCES, "0775: no o+w");
    T.cred = &ALICE;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0666};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    T.cred = &BOB;
    sa = (struct ns_setattr){.valid = NS_SET_MTIME_NOW | NS_SET_ATIME_NOW};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0, "o+w");
    T.cred = &ALICE;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0644};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    T.cred = &BOB;
    sa = (struct ns_setattr){.valid = NS_SET_MTIME_NOW};
    cr_assert_eq(t_setattr(&f, &sa, NULL), CM_E_ACCES);
    T.cred = &ALICE;
    sa = (struct ns_setattr){.valid = NS_SET_MTIME, .mtime_ns = 5};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    /* A write by a non-root user clears setuid (and setgid with group-exec). */
    T.cred = &ROOT;
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 06777};
    cr_assert_eq(t_setattr(&f, &sa, NULL), 0);
    cr_assert_eq(t_write(&f, 0, 10, NULL, NULL), 0);
    cr_assert_eq(t_get(&f).mode, S_IFREG | 06777, "root keeps them");
    T.cred = &BOB;
    cr_assert_eq(t_write(&f, 0, 10, NULL, NULL), 0);
    cr_assert_eq(t_get(&f).mode, S_IFREG | 0777);
}

Test(ns, permission_rename_directory_needs_write_on_it)
{
    struct ns_attr r = t_root(), a, b, d;
    cr_assert_eq(t_mkdir(&r, "a", 0777, &a), 0);
    cr_assert_eq(t_mkdir(&r, "b", 0777, &b), 0);
    cr_assert_eq(t_mkdir(&a, "d", 0555, &d), 0);
    struct ns_setattr sa = {.valid = NS_SET_UID, .uid = 1000};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    T.cred = &ALICE;
    cr_assert_eq(t_rename(&a, "d", &b, "d", 0, NULL), CM_E_ACCES, "'..' must change");
    cr_assert_eq(t_rename(&a, "d", &a, "e", 0, NULL), 0, "same parent: no need");
    sa = (struct ns_setattr){.valid = NS_SET_MODE, .mode = 0755};
    cr_assert_eq(t_setattr(&d, &sa, NULL), 0);
    cr_assert_eq(t_rename(&a, "e", &b, "d", 0, NULL), 0);
}

/* ---- Limits and statfs ---- */

Test(ns, inode_limit)
{
    t_fini();
    struct ns_config cfg;
    ns_config_default(&cfg);
    cfg.max_inodes = 3;
    t_init(&cfg);
    struct ns_attr r = t_root();
    cr_assert_eq(t_create(&r, "a", 0644, 0, NULL), 0);
    cr_assert_eq(t_mkdir(&r, "b", 0755, NULL), 0);
    cr_assert_eq(t_create(&r, "c", 0644, 0, NULL), CM_E_NOSPC);
    cr_assert_eq(t_symlink(&r, "c", "x", NULL), CM_E_NOSPC);
    cr_assert_eq(t_mkdir(&r, "c", 0755, NULL), CM_E_NOSPC);
    cr_assert_eq(t_create(&r, "a", 0644, 0, NULL), 0, "opening needs no inode");
    cr_assert_eq(t_unlink(&r, "a", NULL), 0);
    cr_assert_eq(t_create(&r, "c", 0644, 0, NULL), 0);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.inodes, 3);
    cr_assert_eq(st.max_inodes, 3);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.dirs, 2);
}

Test(ns, config_invalid)
{
    struct ns_config cfg;
    struct ns *x;
    ns_config_default(&cfg);
    cfg.max_inodes = 0;
    cr_assert_eq(ns_new(&cfg, &x), CM_E_INVAL);
    ns_config_default(&cfg);
    cfg.max_sessions = 0;
    cr_assert_eq(ns_new(&cfg, &x), CM_E_INVAL);
    ns_free(NULL);
}

Test(ns, invariants_after_mixed_work)
{
    struct ns_attr r = t_root(), d[4];
    char name[32];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        d[i] = mkdir_ok(&r, name);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        struct ns_attr f = create_ok(&d[i % 4], name);
        if (i % 3 == 0)
            cr_assert_eq(t_link(&f, &d[(i + 1) % 4], name, NULL), 0);
        if (i % 5 == 0)
            cr_assert_eq(t_unlink(&d[i % 4], name, NULL), 0);
        if (i % 7 == 0)
            mkdir_ok(&d[i % 4], name[0] == 'f' ? name + 1 : name);
    }
    t_check_invariants(T.ns);
}
