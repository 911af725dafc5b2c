/* rename in the namespace: moves, replacement as POSIX says (file over file, directory over an
 * empty directory, the type mismatches), moving into its own subtree, hard links of the same
 * inode, RENAME_NOREPLACE, RENAME_EXCHANGE across types and directories, link counts, ".."
 * and times. */
#include "ns_test_util.h"

static void setup(void)
{
    t_init(NULL);
}

static void teardown(void)
{
    t_check_invariants(T.ns);
    t_fini();
}

TestSuite(rename, .init = setup, .fini = teardown);

static struct ns_attr md(const struct ns_attr *p, const char *name)
{
    struct ns_attr a;
    cr_assert_eq(t_mkdir(p, name, 0755, &a), 0, "mkdir %s", name);
    return a;
}

static struct ns_attr mf(const struct ns_attr *p, const char *name)
{
    struct ns_attr a;
    cr_assert_eq(t_create(p, name, 0644, NS_CREATE_EXCL, &a), 0, "create %s", name);
    return a;
}

static uint64_t ino_at(const struct ns_attr *p, const char *name)
{
    struct ns_attr a;
    cr_assert_eq(t_lookup(p, name, &a), 0, "lookup %s", name);
    return a.ino;
}

static void gone(const struct ns_attr *p, const char *name)
{
    cr_assert_eq(t_lookup(p, name, NULL), CM_E_NOENT, "%s still there", name);
}

Test(rename, file_same_dir)
{
    struct ns_attr r = t_root(), f = mf(&r, "a");
    struct ns_result res;
    T.now = 777;
    cr_assert_eq(t_rename(&r, "a", &r, "b", 0, &res), 0);
    cr_assert_eq(res.n_attr, 2);
    cr_assert_eq(res.attr[0].ino, f.ino);
    cr_assert_eq(res.attr[0].ctime_ns, 777);
    cr_assert_eq(res.attr[1].ino, 1);
    cr_assert_eq(res.attr[1].mtime_ns, 777);
    ns_result_clear(&res);
    gone(&r, "a");
    cr_assert_eq(ino_at(&r, "b"), f.ino);
    cr_assert_eq(t_get(&f).nlink, 1);
}

Test(rename, file_across_dirs)
{
    struct ns_attr r = t_root(), a = md(&r, "a"), b = md(&r, "b"), f = mf(&a, "f");
    struct ns_result res;
    T.now = 888;
    cr_assert_eq(t_rename(&a, "f", &b, "g", 0, &res), 0);
    cr_assert_eq(res.n_attr, 3);
    cr_assert_eq(res.attr[1].ino, a.ino);
    cr_assert_eq(res.attr[2].ino, b.ino);
    ns_result_clear(&res);
    gone(&a, "f");
    cr_assert_eq(ino_at(&b, "g"), f.ino);
    cr_assert_eq(t_get(&a).mtime_ns, 888);
    cr_assert_eq(t_get(&b).ctime_ns, 888);
    cr_assert_eq(t_get(&a).nlink, 2, "files do not count");
}

Test(rename, directory_across_dirs_fixes_nlink_and_dotdot)
{
    struct ns_attr r = t_root(), a = md(&r, "a"), b = md(&r, "b"), d = md(&a, "d");
    md(&d, "inner");
    cr_assert_eq(t_get(&a).nlink, 3);
    cr_assert_eq(t_rename(&a, "d", &b, "d2", 0, NULL), 0);
    cr_assert_eq(t_get(&a).nlink, 2);
    cr_assert_eq(t_get(&b).nlink, 3);
    cr_assert_eq(t_get(&d).nlink, 3, "its own count is unchanged");
    struct ns_attr up;
    cr_assert_eq(t_lookup(&d, "..", &up), 0);
    cr_assert_eq(up.ino, b.ino);
    cr_assert_eq(t_get(&r).nlink, 4);
}

Test(rename, file_over_file)
{
    struct ns_attr r = t_root(), a = mf(&r, "a"), b = mf(&r, "b");
    struct ns_result res;
    uint64_t id;
    cr_assert_eq(t_write(&b, 0, 100, &id, NULL), 0);
    cr_assert_eq(t_rename(&r, "a", &r, "b", 0, &res), 0);
    cr_assert_eq(res.n_freed, 1, "the replaced file's blocks");
    cr_assert_eq(res.freed[0], id);
    ns_result_clear(&res);
    gone(&r, "a");
    cr_assert_eq(ino_at(&r, "b"), a.ino);
    struct ns_attr x;
    cr_assert_eq(ns_getattr(T.ns, b.ino, b.gen, &x), CM_E_STALE);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.files, 1);
}

Test(rename, file_over_file_with_other_links)
{
    /* The replaced name's inode has another link: it survives with one link less. */
    struct ns_attr r = t_root(), d = md(&r, "d"), a = mf(&r, "a"), b = mf(&r, "b");
    uint64_t id;
    cr_assert_eq(t_write(&b, 0, 100, &id, NULL), 0);
    cr_assert_eq(t_link(&b, &d, "b2", NULL), 0);
    struct ns_result res;
    T.now = 31337;
    cr_assert_eq(t_rename(&r, "a", &r, "b", 0, &res), 0);
    cr_assert_eq(res.n_freed, 0);
    ns_result_clear(&res);
    struct ns_attr x = t_get(&b);
    cr_assert_eq(x.nlink, 1);
    cr_assert_eq(x.ctime_ns, 31337);
    cr_assert_eq(ino_at(&d, "b2"), b.ino);
    cr_assert_eq(ino_at(&r, "b"), a.ino);
}

Test(rename, hard_links_of_one_inode_are_a_no_op)
{
    struct ns_attr r = t_root(), d = md(&r, "d"), f = mf(&r, "f");
    cr_assert_eq(t_link(&f, &d, "g", NULL), 0);
    cr_assert_eq(t_link(&f, &r, "h", NULL), 0);
    T.now = 5;
    cr_assert_eq(t_rename(&r, "f", &d, "g", 0, NULL), 0);
    cr_assert_eq(ino_at(&r, "f"), f.ino, "both names remain");
    cr_assert_eq(ino_at(&d, "g"), f.ino);
    cr_assert_eq(t_get(&f).nlink, 3);
    cr_assert_neq(t_get(&d).mtime_ns, 5, "nothing changed");
    cr_assert_eq(t_rename(&r, "f", &r, "h", NS_RENAME_EXCHANGE, NULL), 0);
    cr_assert_eq(t_get(&f).nlink, 3);
    cr_assert_eq(t_rename(&r, "f", &r, "f", 0, NULL), 0, "same name");
    cr_assert_eq(t_rename(&r, "f", &r, "h", NS_RENAME_NOREPLACE, NULL), CM_E_EXIST);
    cr_assert_eq(t_rename(&r, "f", &r, "f", NS_RENAME_NOREPLACE, NULL), CM_E_EXIST);
    struct ns_attr dd = md(&r, "dd");
    cr_assert_eq(t_rename(&r, "dd", &r, "dd", 0, NULL), 0, "a directory onto itself");
    cr_assert_eq(t_get(&dd).nlink, 2);
    /* Another inode with links replaced by a name of f: only that name goes. */
    struct ns_attr y = mf(&r, "y");
    cr_assert_eq(t_link(&y, &d, "y2", NULL), 0);
    cr_assert_eq(t_rename(&d, "g", &r, "y", 0, NULL), 0);
    cr_assert_eq(t_get(&y).nlink, 1);
    cr_assert_eq(t_get(&f).nlink, 3, "moved, not added");
    cr_assert_eq(ino_at(&r, "y"), f.ino);
    gone(&d, "g");
}

Test(rename, dir_over_empty_dir)
{
    struct ns_attr r = t_root(), a = md(&r, "a"), b = md(&r, "b"), s = md(&a, "s"), t = md(&b, "t");
    md(&s, "keep");
    cr_assert_eq(t_get(&a).nlink, 3);
    cr_assert_eq(t_get(&b).nlink, 3);
    /* Across directories: a loses one, b loses t and gains s. */
    cr_assert_eq(t_rename(&a, "s", &b, "t", 0, NULL), 0);
    cr_assert_eq(t_get(&a).nlink, 2);
    cr_assert_eq(t_get(&b).nlink, 3);
    struct ns_attr x;
    cr_assert_eq(ns_getattr(T.ns, t.ino, t.gen, &x), CM_E_STALE);
    cr_assert_eq(ino_at(&b, "t"), s.ino);
    cr_assert_eq(t_lookup(&s, "..", &x), 0);
    cr_assert_eq(x.ino, b.ino);
    /* In the same directory: one subdirectory less. */
    md(&r, "e");
    cr_assert_eq(t_get(&r).nlink, 5);
    cr_assert_eq(t_rename(&r, "a", &r, "e", 0, NULL), 0);
    cr_assert_eq(t_get(&r).nlink, 4);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.dirs, 5);
}

Test(rename, type_and_emptiness_errors)
{
    struct ns_attr r = t_root(), a = md(&r, "a"), b = md(&r, "b");
    mf(&r, "f");
    mf(&b, "inside");
    cr_assert_eq(t_rename(&r, "a", &r, "b", 0, NULL), CM_E_NOTEMPTY);
    cr_assert_eq(t_rename(&r, "f", &r, "a", 0, NULL), CM_E_ISDIR);
    cr_assert_eq(t_rename(&r, "a", &r, "f", 0, NULL), CM_E_NOTDIR);
    cr_assert_eq(t_rename(&r, "missing", &r, "x", 0, NULL), CM_E_NOENT);
    cr_assert_eq(t_rename(&r, "f", &a, "x/y", 0, NULL), CM_E_INVAL);
    cr_assert_eq(t_rename(&r, ".", &a, "x", 0, NULL), CM_E_INVAL);
    cr_assert_eq(t_rename(&r, "f", &a, "..", 0, NULL), CM_E_INVAL);
    struct ns_attr f;
    cr_assert_eq(t_lookup(&r, "f", &f), 0);
    cr_assert_eq(t_rename(&f, "x", &a, "x", 0, NULL), CM_E_NOTDIR);
    cr_assert_eq(t_rename(&a, "x", &f, "x", 0, NULL), CM_E_NOTDIR);
    struct ns_attr stale = a;
    stale.gen++;
    cr_assert_eq(t_rename(&stale, "x", &r, "y", 0, NULL), CM_E_STALE);
    cr_assert_eq(t_rename(&r, "f", &stale, "y", 0, NULL), CM_E_STALE);
    cr_assert_eq(t_rename(&r, "f", &r, "g", NS_RENAME_NOREPLACE | NS_RENAME_EXCHANGE, NULL),
                 CM_E_INVAL);
    cr_assert_eq(t_rename(&r, "f", &r, "g", 4, NULL), CM_E_INVAL);
    /* Nothing moved. */
    cr_assert_eq(ino_at(&r, "a"), a.ino);
    cr_assert_eq(ino_at(&r, "b"), b.ino);
    cr_assert_eq(t_get(&r).nlink, 4);
}

Test(rename, into_own_subtree)
{
    struct ns_attr r = t_root(), a = md(&r, "a"), b = md(&a, "b"), c = md(&b, "c");
    cr_assert_eq(t_rename(&r, "a", &a, "x", 0, NULL), CM_E_INVAL, "into itself");
    cr_assert_eq(t_rename(&r, "a", &c, "x", 0, NULL), CM_E_INVAL, "into a descendant");
    cr_assert_eq(t_rename(&a, "b", &c, "x", NS_RENAME_NOREPLACE, NULL), CM_E_INVAL);
    md(&c, "y");
    cr_assert_eq(t_rename(&r, "a", &c, "y", 0, NULL), CM_E_INVAL, "over a descendant");
    /* The target is an ancestor of the source: not empty. */
    cr_assert_eq(t_rename(&b, "c", &r, "a", 0, NULL), CM_E_NOTEMPTY);
    cr_assert_eq(t_rename(&b, "c", &r, "a", NS_RENAME_EXCHANGE, NULL), CM_E_INVAL);
    cr_assert_eq(t_rename(&r, "a", &c, "y", NS_RENAME_EXCHANGE, NULL), CM_E_INVAL);
    /* Moving up is fine. */
    cr_assert_eq(t_rename(&b, "c", &r, "c", 0, NULL), 0);
    cr_assert_eq(t_get(&b).nlink, 2);
    cr_assert_eq(t_get(&r).nlink, 4);
    /* A file may go anywhere below. */
    mf(&r, "f");
    cr_assert_eq(t_rename(&r, "f", &b, "f", 0, NULL), 0);
}

Test(rename, noreplace)
{
    struct ns_attr r = t_root(), d = md(&r, "d"), f = mf(&r, "f");
    mf(&d, "g");
    cr_assert_eq(t_rename(&r, "f", &d, "g", NS_RENAME_NOREPLACE, NULL), CM_E_EXIST);
    cr_assert_eq(t_rename(&r, "f", &r, "d", NS_RENAME_NOREPLACE, NULL), CM_E_EXIST);
    cr_assert_eq(ino_at(&r, "f"), f.ino);
    cr_assert_eq(t_rename(&r, "f", &d, "h", NS_RENAME_NOREPLACE, NULL), 0);
    cr_assert_eq(ino_at(&d, "h"), f.ino);
    gone(&r, "f");
}

Test(rename, exchange_files)
{
    struct ns_attr r = t_root(), d = md(&r, "d"), a = mf(&r, "a"), b = mf(&d, "b");
    struct ns_result res;
    T.now = 4321;
    cr_assert_eq(t_rename(&r, "a", &d, "b", NS_RENAME_EXCHANGE, &res), 0);
    cr_assert_eq(res.n_freed, 0);
    ns_result_clear(&res);
    cr_assert_eq(ino_at(&r, "a"), b.ino);
    cr_assert_eq(ino_at(&d, "b"), a.ino);
    cr_assert_eq(t_get(&a).nlink, 1);
    cr_assert_eq(t_get(&b).nlink, 1);
    cr_assert_eq(t_get(&a).ctime_ns, 4321);
    cr_assert_eq(t_get(&b).ctime_ns, 4321);
    cr_assert_eq(t_rename(&r, "a", &d, "nope", NS_RENAME_EXCHANGE, NULL), CM_E_NOENT);
    cr_assert_eq(t_rename(&r, "nope", &d, "b", NS_RENAME_EXCHANGE, NULL), CM_E_NOENT);
}

Test(rename, exchange_dir_and_file_across_dirs)
{
    struct ns_attr r = t_root(), p = md(&r, "p"), q = md(&r, "q");
    struct ns_attr dir = md(&p, "x"), file = mf(&q, "y");
    cr_assert_eq(t_get(&p).nlink, 3);
    cr_assert_eq(t_get(&q).nlink, 2);
    cr_assert_eq(t_rename(&p, "x", &q, "y", NS_RENAME_EXCHANGE, NULL), 0);
    cr_assert_eq(ino_at(&p, "x"), file.ino);
    cr_assert_eq(ino_at(&q, "y"), dir.ino);
    cr_assert_eq(t_get(&p).nlink, 2, "the directory left p");
    cr_assert_eq(t_get(&q).nlink, 3, "and arrived in q");
    struct ns_attr up;
    cr_assert_eq(t_lookup(&dir, "..", &up), 0);
    cr_assert_eq(up.ino, q.ino);
    /* And back, the other way round. */
    cr_assert_eq(t_rename(&q, "y", &p, "x", NS_RENAME_EXCHANGE, NULL), 0);
    cr_assert_eq(t_get(&p).nlink, 3);
    cr_assert_eq(t_get(&q).nlink, 2);
    cr_assert_eq(t_lookup(&dir, "..", &up), 0);
    cr_assert_eq(up.ino, p.ino);
}

Test(rename, exchange_two_dirs)
{
    struct ns_attr r = t_root(), p = md(&r, "p"), q = md(&r, "q");
    struct ns_attr x = md(&p, "x"), y = md(&q, "y");
    md(&x, "full");
    cr_assert_eq(t_rename(&p, "x", &q, "y", NS_RENAME_EXCHANGE, NULL), 0,
                 "no emptiness needed for an exchange");
    cr_assert_eq(ino_at(&p, "x"), y.ino);
    cr_assert_eq(ino_at(&q, "y"), x.ino);
    cr_assert_eq(t_get(&p).nlink, 3);
    cr_assert_eq(t_get(&q).nlink, 3);
    struct ns_attr up;
    cr_assert_eq(t_lookup(&x, "..", &up), 0);
    cr_assert_eq(up.ino, q.ino);
    cr_assert_eq(t_lookup(&y, "..", &up), 0);
    cr_assert_eq(up.ino, p.ino);
    /* Same directory. */
    struct ns_attr z = md(&p, "z");
    cr_assert_eq(t_rename(&p, "x", &p, "z", NS_RENAME_EXCHANGE, NULL), 0);
    cr_assert_eq(ino_at(&p, "x"), z.ino);
    cr_assert_eq(t_get(&p).nlink, 4);
}

Test(rename, listing_position)
{
    /* A moved name lists as a new entry (at the end); a replaced name keeps its place. */
    struct ns_attr r = t_root();
    mf(&r, "a");
    mf(&r, "b");
    mf(&r, "c");
    cr_assert_eq(t_rename(&r, "a", &r, "z", 0, NULL), 0);
    cr_assert_eq(t_rename(&r, "c", &r, "b", 0, NULL), 0);
    struct ns_dirpage pg;
    cr_assert_eq(ns_readdir(T.ns, NULL, 1, 1, 2, 10, 4096, &pg), 0);
    cr_assert_eq(pg.n, 2);
    cr_assert_str_eq(pg.names + pg.ents[0].name_off, "b");
    cr_assert_str_eq(pg.names + pg.ents[1].name_off, "z");
    ns_dirpage_free(&pg);
}

Test(rename, exactly_once)
{
    struct ns_attr r = t_root(), d = md(&r, "d");
    mf(&r, "f");
    cr_assert_eq(t_rename(&r, "f", &d, "g", 0, NULL), 0);
    cr_assert_eq(t_retry(NULL), 0, "a retried rename does not fail with ENOENT");
    cr_assert_eq(t_rename(&r, "d", &r, "e", 0, NULL), 0);
    cr_assert_eq(t_retry(NULL), 0);
    mf(&r, "x");
    mf(&r, "y");
    cr_assert_eq(t_rename(&r, "x", &r, "y", NS_RENAME_EXCHANGE, NULL), 0);
    struct ns_attr before;
    cr_assert_eq(t_lookup(&r, "x", &before), 0);
    cr_assert_eq(t_retry(NULL), 0);
    cr_assert_eq(ino_at(&r, "x"), before.ino, "not swapped back");
}
