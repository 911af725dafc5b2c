/* libdfs's metadata half (client/dfs.h) against real dfs-master processes: every operation's
 * round trip and errors, readdir paging, path resolution, exactly-once mkdirs across a leader
 * kill -9, and a clear failure when no master can be reached. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/dfs.h"
#include "cluster.h"
#include "common/errors.h"

#define T_LEADER_MS 10000

static const struct dfs_fh root = {DFS_ROOT_INO, DFS_ROOT_GEN};

static struct dfs_fh fh_of(const struct dfs_attr *a)
{
    return (struct dfs_fh){a->ino, a->gen};
}

static struct dfs *open_cluster(struct tc_cluster *c, long op_timeout_ms)
{
    char masters[512] = "";
    size_t len = 0;
    for (int i = 0; i < c->n; i++)
        len += (size_t)snprintf(masters + len, sizeof(masters) - len, "%s127.0.0.1:%u",
                                i > 0 ? "," : "", c->m[i].client_port);
    struct dfs_options opt = {.op_timeout_ms = op_timeout_ms};
    struct dfs *fs = NULL;
    cr_assert_eq(dfs_open(masters, &opt, &fs), 0);
    return fs;
}

static struct tc_cluster *start(int n)
{
    struct tc_cluster *c = calloc(1, sizeof(*c));
    tc_init(c, n, NULL);
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0);
    return c;
}

static void finish(struct tc_cluster *c, struct dfs *fs)
{
    dfs_close(fs);
    tc_destroy(c);
    free(c);
}

Test(client_meta, round_trip_and_errors_of_every_operation, .timeout = 120)
{
    struct tc_cluster *c = start(1);
    struct dfs *fs = open_cluster(c, 20000);
    struct dfs_attr a, d, f, sub, g, s, t;
    bool created = false;

    /* mkdir, lookup, getattr */
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "a", 0755, &d), 0);
    cr_assert(S_ISDIR(d.mode));
    cr_assert_eq(d.mode & 07777, 0755);
    cr_assert_eq(d.nlink, 2);
    uint64_t t0 = tc_now_ms();
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "a", 0755, NULL), CM_E_EXIST);
    cr_assert_lt(tc_now_ms() - t0, 2000, "an answered error is not retried");
    cr_assert_eq(dfs_lookup(fs, NULL, root, "a", &a), 0);
    cr_assert_eq(a.ino, d.ino);
    cr_assert_eq(a.gen, d.gen);
    cr_assert_eq(dfs_lookup(fs, NULL, root, "nope", &a), CM_E_NOENT);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "..", &a), 0);
    cr_assert_eq(a.ino, DFS_ROOT_INO);
    cr_assert_eq(dfs_getattr(fs, NULL, fh_of(&d), &a), 0);
    cr_assert_eq(a.ino, d.ino);
    cr_assert_eq(dfs_getattr(fs, NULL, (struct dfs_fh){d.ino, d.gen + 7}, &a), CM_E_STALE);

    /* create: excl, open, trunc */
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&d), "f", 0644, DFS_CREATE_EXCL, &f, &created), 0);
    cr_assert(created);
    cr_assert(S_ISREG(f.mode));
    cr_assert_eq(f.mode & 07777, 0644);
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&d), "f", 0644, 0, &a, &created), 0);
    cr_assert_not(created);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&d), "f", 0644, DFS_CREATE_EXCL, &a, NULL), CM_E_EXIST);
    struct dfs_setattr sa = {.valid = DFS_SET_SIZE, .size = 100};
    cr_assert_eq(dfs_setattr(fs, NULL, fh_of(&f), &sa, &a), 0);
    cr_assert_eq(a.size, 100);
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&d), "f", 0644, DFS_CREATE_TRUNC, &a, &created), 0);
    cr_assert_not(created);
    cr_assert_eq(a.size, 0);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&f), "x", &a), CM_E_NOTDIR);
    cr_assert_eq(dfs_mkdir(fs, NULL, fh_of(&f), "x", 0755, &a), CM_E_NOTDIR);

    /* unlink, rmdir */
    cr_assert_eq(dfs_mkdir(fs, NULL, fh_of(&d), "sub", 0700, &sub), 0);
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&sub), "g", 0600, 0, &g, &created), 0);
    cr_assert(created);
    cr_assert_eq(dfs_rmdir(fs, NULL, fh_of(&d), "sub"), CM_E_NOTEMPTY);
    cr_assert_eq(dfs_rmdir(fs, NULL, fh_of(&d), "f"), CM_E_NOTDIR);
    cr_assert_eq(dfs_unlink(fs, NULL, fh_of(&d), "sub"), CM_E_ISDIR);
    cr_assert_eq(dfs_unlink(fs, NULL, fh_of(&d), "nope"), CM_E_NOENT);
    cr_assert_eq(dfs_rmdir(fs, NULL, fh_of(&d), "nope"), CM_E_NOENT);
    cr_assert_eq(dfs_unlink(fs, NULL, fh_of(&sub), "g"), 0);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&sub), "g", &a), CM_E_NOENT);
    cr_assert_eq(dfs_rmdir(fs, NULL, fh_of(&d), "sub"), 0);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "sub", &a), CM_E_NOENT);

    /* link */
    cr_assert_eq(dfs_link(fs, NULL, fh_of(&f), fh_of(&d), "f2", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(a.nlink, 2);
    cr_assert_eq(dfs_link(fs, NULL, fh_of(&f), fh_of(&d), "f2", &a), CM_E_EXIST);

    /* symlink, readlink */
    cr_assert_eq(dfs_symlink(fs, NULL, fh_of(&d), "s", "target/x", &s), 0);
    cr_assert(S_ISLNK(s.mode));
    char *target = NULL;
    cr_assert_eq(dfs_readlink(fs, NULL, fh_of(&s), &target), 0);
    cr_assert_str_eq(target, "target/x");
    free(target);
    cr_assert_eq(dfs_readlink(fs, NULL, fh_of(&f), &target), CM_E_INVAL);
    cr_assert_null(target);

    /* rename: plain, NOREPLACE, EXCHANGE */
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "f2", fh_of(&d), "f3", 0), 0);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "f2", &a), CM_E_NOENT);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "f3", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "f3", fh_of(&d), "s", DFS_RENAME_NOREPLACE),
                 CM_E_EXIST);
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "f3", fh_of(&d), "s", DFS_RENAME_EXCHANGE), 0);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "s", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&d), "f3", &a), 0);
    cr_assert_eq(a.ino, s.ino);
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "nope", root, "x", 0), CM_E_NOENT);
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "f3", root, "moved", 0), 0);
    cr_assert_eq(dfs_lookup(fs, NULL, root, "moved", &a), 0);
    cr_assert_eq(a.ino, s.ino);

    /* setattr, with a time beyond 2^53 ns */
    sa = (struct dfs_setattr){.valid = DFS_SET_MODE | DFS_SET_UID | DFS_SET_GID | DFS_SET_MTIME |
                                       DFS_SET_ATIME_NOW,
                              .mode = 0600,
                              .uid = 5,
                              .gid = 6,
                              .mtime_ns = 1700000000123456789LL};
    cr_assert_eq(dfs_setattr(fs, NULL, fh_of(&f), &sa, &a), 0);
    cr_assert_eq(a.mode, S_IFREG | 0600);
    cr_assert_eq(a.uid, 5);
    cr_assert_eq(a.gid, 6);
    cr_assert_eq(a.mtime_ns, 1700000000123456789LL);
    cr_assert_gt(a.atime_ns, 1600000000000000000LL);
    cr_assert_eq(dfs_getattr(fs, NULL, fh_of(&f), &t), 0);
    cr_assert_eq(t.mtime_ns, a.mtime_ns);
    cr_assert_eq(t.atime_ns, a.atime_ns);
    cr_assert_eq(t.uid, 5);

    /* statfs */
    struct dfs_statfs st;
    cr_assert_eq(dfs_statfs(fs, &st), 0);
    cr_assert_geq(st.dirs, 2);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.symlinks, 1);

    /* resolve_path */
    cr_assert_eq(dfs_resolve_path(fs, NULL, "/a/s", &a), 0);
    cr_assert_eq(a.ino, f.ino);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "/", &a), 0);
    cr_assert_eq(a.ino, DFS_ROOT_INO);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "//a//", &a), 0);
    cr_assert_eq(a.ino, d.ino);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "/a/nope", &a), CM_E_NOENT);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "/a/nope/x", &a), CM_E_NOENT);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "/a/s/x", &a), CM_E_NOTDIR);
    cr_assert_eq(dfs_resolve_path(fs, NULL, "a/s", &a), CM_E_INVAL);

    /* a credential: owner of what it creates, refused where it may not write or search */
    struct dfs_cred user = {.uid = 1000, .gid = 100};
    struct dfs_attr priv, mine;
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "priv", 0700, &priv), 0);
    cr_assert_eq(dfs_create(fs, &user, fh_of(&priv), "x", 0644, 0, &a, NULL), CM_E_ACCES);
    cr_assert_eq(dfs_lookup(fs, &user, fh_of(&priv), "x", &a), CM_E_ACCES);
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "pub", 0777, &a), 0);
    cr_assert_eq(dfs_mkdir(fs, &user, fh_of(&a), "mine", 0750, &mine), 0);
    cr_assert_eq(mine.uid, 1000);
    cr_assert_eq(mine.gid, 100);

    /* follower reads are served too */
    struct dfs *fr;
    char masters[64];
    snprintf(masters, sizeof(masters), "127.0.0.1:%u", c->m[0].client_port);
    cr_assert_eq(dfs_open(masters, &(struct dfs_options){.follower_reads = true}, &fr), 0);
    cr_assert_eq(dfs_resolve_path(fr, NULL, "/pub/mine", &a), 0);
    cr_assert_eq(a.ino, mine.ino);
    dfs_close(fr);

    /* bad input is refused before it is sent */
    char longname[DFS_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(dfs_mkdir(fs, NULL, root, longname, 0755, &a), CM_E_NAMETOOLONG);
    cr_assert_eq(dfs_mkdir(fs, NULL, root, NULL, 0755, &a), CM_E_INVAL);
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "..", 0755, &a), CM_E_INVAL);
    finish(c, fs);
}

struct creator {
    struct dfs *fs;
    struct dfs_fh dir;
    int from, to;
    int failures;
};

static void *create_range(void *arg)
{
    struct creator *cr = arg;
    char name[32];
    for (int i = cr->from; i < cr->to; i++) {
        snprintf(name, sizeof(name), "f%04d", i);
        if (dfs_create(cr->fs, NULL, cr->dir, name, 0644, DFS_CREATE_EXCL, NULL, NULL) != 0)
            cr->failures++;
    }
    return NULL;
}

Test(client_meta, readdir_pages_over_1000_entries, .timeout = 300)
{
    enum { N = 1000, THREADS = 4 };
    struct tc_cluster *c = start(1);
    struct dfs *fs = open_cluster(c, 20000);
    struct dfs_attr big;
    cr_assert_eq(dfs_mkdir(fs, NULL, root, "big", 0755, &big), 0);
    pthread_t th[THREADS];
    struct creator cr[THREADS];
    for (int i = 0; i < THREADS; i++) {
        cr[i] = (struct creator){fs, fh_of(&big), i * N / THREADS, (i + 1) * N / THREADS, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, create_range, &cr[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(cr[i].failures, 0);
    }

    static const size_t pages[] = {1, 97, 0, 4096};
    for (size_t p = 0; p < sizeof(pages) / sizeof(pages[0]); p++) {
        static char seen[N];
        memset(seen, 0, sizeof(seen));
        int dots = 0, total = 0, npages = 0;
        uint64_t cookie = 0;
        for (bool eof = false; !eof;) {
            struct dfs_dirpage pg;
            cr_assert_eq(dfs_readdir(fs, NULL, fh_of(&big), cookie, pages[p], &pg), 0);
            cr_assert_leq(pg.n, pages[p] == 0 ? 256 : pages[p]);
            cr_assert(pg.eof || pg.n > 0);
            for (size_t i = 0; i < pg.n; i++) {
                const struct dfs_dirent *e = &pg.entries[i];
                if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0) {
                    cr_assert(S_ISDIR(e->attr.mode));
                    dots++;
                    continue;
                }
                int k;
                cr_assert_eq(sscanf(e->name, "f%04d", &k), 1, "entry %s", e->name);
                cr_assert(k >= 0 && k < N);
                cr_assert_eq(seen[k], 0, "%s listed twice", e->name);
                seen[k] = 1;
                cr_assert(S_ISREG(e->attr.mode));
                total++;
            }
            if (pg.n > 0)
                cr_assert_eq(pg.cookie, pg.entries[pg.n - 1].cookie);
            cookie = pg.cookie;
            eof = pg.eof;
            dfs_dirpage_clear(&pg);
            npages++;
        }
        cr_assert_eq(dots, 2);
        cr_assert_eq(total, N, "page size %zu", pages[p]);
        if (pages[p] == 97)
            cr_assert_geq(npages, (N + 2) / 97);
    }
    struct dfs_dirpage pg;
    cr_assert_eq(dfs_readdir(fs, NULL, root, 0, 5000, &pg), CM_E_INVAL);
    dfs_dirpage_clear(&pg);
    struct dfs_attr f;
    cr_assert_eq(dfs_lookup(fs, NULL, fh_of(&big), "f0000", &f), 0);
    cr_assert_eq(dfs_readdir(fs, NULL, fh_of(&f), 0, 10, &pg), CM_E_NOTDIR);
    dfs_dirpage_clear(&pg);
    finish(c, fs);
}

struct mkdirs {
    struct dfs *fs;
    atomic_int done;
    int rc[200];
};

static void *mkdir_loop(void *arg)
{
    struct mkdirs *m = arg;
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "d%03d", i);
        m->rc[i] = dfs_mkdir(m->fs, NULL, root, name, 0755, NULL);
        atomic_fetch_add(&m->done, 1);
    }
    return NULL;
}

Test(client_meta, mkdirs_across_a_leader_kill_are_applied_exactly_once, .timeout = 300)
{
    struct tc_cluster *c = start(3);
    struct dfs *fs = open_cluster(c, 60000);
    struct mkdirs *m = calloc(1, sizeof(*m));
    m->fs = fs;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, mkdir_loop, m), 0);
    while (atomic_load(&m->done) < 50) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    int leader = tc_wait_leader(c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    struct dfs_master_conn_stats before, ms;
    dfs_conn_stats(fs, &before);
    tc_kill(c, leader);
    int killed_at = atomic_load(&m->done);
    pthread_join(th, NULL);
    cr_assert_lt(killed_at, 200, "the kill came too late to test anything");
    cr_assert_neq(tc_wait_leader(c, T_LEADER_MS), leader);
    dfs_conn_stats(fs, &ms);
    cr_assert_gt(ms.attempts - ms.ops, before.attempts - before.ops,
                 "a mkdir was retried at another master after the kill");
    for (int i = 0; i < 200; i++)
        cr_assert_eq(m->rc[i], 0, "mkdir d%03d: %s", i, cm_errname(m->rc[i]));

    int count[200] = {0}, others = 0;
    uint64_t cookie = 0;
    for (bool eof = false; !eof;) {
        struct dfs_dirpage pg;
        cr_assert_eq(dfs_readdir(fs, NULL, root, cookie, 64, &pg), 0);
        for (size_t i = 0; i < pg.n; i++) {
            int k;
            if (sscanf(pg.entries[i].name, "d%03d", &k) == 1 && k >= 0 && k < 200)
                count[k]++;
            else if (strcmp(pg.entries[i].name, ".") != 0 && strcmp(pg.entries[i].name, "..") != 0)
                others++;
        }
        cookie = pg.cookie;
        eof = pg.eof;
        dfs_dirpage_clear(&pg);
    }
    for (int i = 0; i < 200; i++)
        cr_assert_eq(count[i], 1, "d%03d listed %d times", i, count[i]);
    cr_assert_eq(others, 0);
    struct dfs_statfs st;
    cr_assert_eq(dfs_statfs(fs, &st), 0);
    cr_assert_eq(st.dirs, 201, "root and the 200 directories, nothing twice");
    free(m);
    finish(c, fs);
}

Test(client_meta, unreachable_masters_fail_clearly_within_the_timeout, .timeout = 60)
{
    struct dfs_options opt = {.op_timeout_ms = 1500, .call_timeout_ms = 300};
    struct dfs *fs = NULL;
    cr_assert_eq(dfs_open("127.0.0.1:1,127.0.0.1:2", &opt, &fs), 0);
    uint64_t t0 = tc_now_ms();
    int rc = dfs_mkdir(fs, NULL, root, "x", 0755, NULL);
    uint64_t took = tc_now_ms() - t0;
    cr_assert(rc == CM_E_UNAVAILABLE || rc == CM_E_TIMEOUT, "got %s", cm_errname(rc));
    cr_assert_geq(took, 1000);
    cr_assert_lt(took, 5000);
    struct dfs_attr a;
    rc = dfs_lookup(fs, NULL, root, "x", &a);
    cr_assert(rc == CM_E_UNAVAILABLE || rc == CM_E_TIMEOUT, "got %s", cm_errname(rc));
    dfs_close(fs);

    cr_assert_eq(dfs_open(NULL, NULL, &fs), CM_E_INVAL);
    cr_assert_eq(dfs_open("", NULL, &fs), CM_E_INVAL);
}

/* Polls dfs_lookup_cached of name until want (0 or CM_E_NOENT) comes back; every other answer
 * must be younger than the cache's time. Returns how long it took (ms). */
static uint64_t cached_until(struct dfs *fs, struct dfs_fh dir, const char *name, int want,
                             uint64_t ttl_ms)
{
    uint64_t t0 = tc_now_ms(), age;
    struct dfs_attr a;
    int rc;
    while ((rc = dfs_lookup_cached(fs, NULL, dir, name, &a, &age)) != want) {
        cr_assert(rc == 0 || rc == CM_E_NOENT, "%s: %s", name, cm_errname(rc));
        cr_assert_leq(age, ttl_ms, "%s: an answer %llu ms old", name, (unsigned long long)age);
        cr_assert_lt(tc_now_ms() - t0, 10 * ttl_ms, "%s: never seen", name);
    }
    return tc_now_ms() - t0;
}

Test(client_meta, cached_lookups_see_own_changes_at_once_and_others_within_their_time,
     .timeout = 120)
{
    struct tc_cluster *c = start(1);
    struct dfs *other = open_cluster(c, 20000), *fs;
    char masters[64], name[32];
    struct dfs_attr d, a, f[40];
    struct dfs_dir_cache_stats st;
    uint64_t age;
    const uint64_t ttl = 1000;

    snprintf(masters, sizeof(masters), "127.0.0.1:%u", c->m[0].client_port);
    struct dfs_options opt = {.op_timeout_ms = 20000, .dir_cache_ms = (long)ttl};
    cr_assert_eq(dfs_open(masters, &opt, &fs), 0);
    cr_assert_eq(dfs_mkdir(other, NULL, root, "d", 0755, &d), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        cr_assert_eq(dfs_create(other, NULL, fh_of(&d), name, 0644, 0, &f[i], NULL), 0);
    }

    /* A scan: after a few lookups one listing answers the rest. */
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), name, &a, &age), 0);
        cr_assert_eq(a.ino, f[i].ino);
        cr_assert_eq(a.gen, f[i].gen);
        cr_assert_leq(age, ttl);
    }
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "absent", &a, &age), CM_E_NOENT);
    dfs_dir_cache_stats(fs, &st);
    cr_assert_eq(st.fetches, 1);
    cr_assert_geq(st.hits, 40 - 4 + 1, "hits %llu", (unsigned long long)st.hits);
    cr_assert_geq(st.absent, 1);

    /* Changes made through this handle are seen at once, whatever the listing says. */
    cr_assert_eq(dfs_create(fs, NULL, fh_of(&d), "new", 0600, DFS_CREATE_EXCL, &f[0], NULL), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "new", &a, &age), 0);
    cr_assert_eq(a.ino, f[0].ino);
    cr_assert_eq(dfs_unlink(fs, NULL, fh_of(&d), "f1"), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "f1", &a, &age), CM_E_NOENT);
    cr_assert_eq(dfs_rename(fs, NULL, fh_of(&d), "f2", fh_of(&d), "g2", 0), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "f2", &a, &age), CM_E_NOENT);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "g2", &a, &age), 0);
    cr_assert_eq(a.ino, f[2].ino);
    struct dfs_setattr sa = {.valid = DFS_SET_MODE | DFS_SET_SIZE, .mode = 0600, .size = 4096};
    cr_assert_eq(dfs_setattr(fs, NULL, fh_of(&f[3]), &sa, NULL), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "f3", &a, &age), 0);
    cr_assert_eq(a.mode & 07777, 0600);
    cr_assert_eq(a.size, 4096);
    cr_assert_eq(dfs_link(fs, NULL, fh_of(&f[4]), fh_of(&d), "h4", NULL), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "h4", &a, &age), 0);
    cr_assert_eq(a.nlink, 2);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "f4", &a, &age), 0);
    cr_assert_eq(a.nlink, 2, "the other name's link count is asked for again");
    cr_assert_eq(dfs_unlink(fs, NULL, fh_of(&d), "h4"), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "f4", &a, &age), 0);
    cr_assert_eq(a.nlink, 1);
    cr_assert_eq(dfs_mkdir(fs, NULL, fh_of(&d), "sub", 0700, NULL), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "sub", &a, &age), 0);
    cr_assert(S_ISDIR(a.mode));
    cr_assert_eq(dfs_rmdir(fs, NULL, fh_of(&d), "sub"), 0);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "sub", &a, &age), CM_E_NOENT);
    /* A failed change (the listing may have been wrong) is not trusted either. */
    cr_assert_eq(dfs_create(other, NULL, fh_of(&d), "race", 0644, 0, NULL, NULL), 0);
    cr_assert_eq(dfs_mkdir(fs, NULL, fh_of(&d), "race", 0700, NULL), CM_E_EXIST);
    cr_assert_eq(dfs_lookup_cached(fs, NULL, fh_of(&d), "race", &a, &age), 0);

    /* Another client's changes: seen within the cache's time, and never an answer older. */
    cr_assert_eq(dfs_create(other, NULL, fh_of(&d), "theirs", 0644, 0, NULL, NULL), 0);
    cr_assert_leq(cached_until(fs, fh_of(&d), "theirs", 0, ttl), ttl + 500);
    cr_assert_eq(dfs_unlink(other, NULL, fh_of(&d), "f5"), 0);
    cr_assert_leq(cached_until(fs, fh_of(&d), "f5", CM_E_NOENT, ttl), ttl + 500);

    /* Off (dir_cache_ms 0), it is dfs_lookup. */
    cr_assert_eq(dfs_lookup_cached(other, NULL, fh_of(&d), "f6", &a, &age), 0);
    cr_assert_eq(age, 0);
    dfs_dir_cache_stats(other, &st);
    cr_assert_eq(st.fetches + st.hits + st.asked, 0);
    dfs_close(fs);
    finish(c, other);
}
