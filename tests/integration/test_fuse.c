/* The FUSE mount `dfs` on a real cluster (3 masters, 3 chunkservers), used through ordinary
 * tools: POSIX behaviour (fuse/posix.sh, also run on a local directory that must give the same
 * answers), permissions as another user, close-to-open consistency between two mounts, cp -r of
 * /usr/include and rm -rf of it and of directories of many sizes, a cp -r of 2,000 files that
 * survives kill -9 of the leader, mount -t fuse.dfs as mount(8) and fstab run it, clear errors for
 * an unreachable cluster, clean unmounts, `make stop` of a `make run` from another build, and
 * the commit of stored blocks of a file kept open. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "test_ports.h"

#define T_LEADER_MS 10000
#define CS_ARGS     "--block-size 1M --heartbeat-ms 300"

static char masters[512];

static struct tc_cluster *start(void)
{
    struct tc_cluster *c = calloc(1, sizeof(*c));

    tc_init(c, 3, NULL);
    chmod(c->root, 0755); /* other users reach the mountpoints inside */
    tc_start_all(c);
    cr_assert_geq(tc_wait_leader(c, T_LEADER_MS), 0);
    for (int k = 0; k < 3; k++)
        tc_cs_start(c, k, 0, CS_ARGS);
    tc_masters(c, masters, sizeof(masters));
    return c;
}

static void finish(struct tc_cluster *c)
{
    tc_destroy(c);
    free(c);
}

TestSuite(fuse, .timeout = 300);

Test(fuse, posix_behaviour_through_ordinary_tools)
{
    struct tc_cluster *c = start();
    struct tc_mount m;

    /* The script's expectations hold on a local directory (so they are POSIX's, not ours). */
    cr_assert_eq(tc_sh("mkdir %s/local && MNT=%s/local SRC=%s %s/fuse/posix.sh", c->root, c->root,
                       DFS_SOURCE_DIR "/common", DFS_TEST_DIR),
                 0, "posix.sh fails on a local directory");
    tc_mount(c, &m, "mnt", NULL);
    cr_assert_eq(
        tc_sh("MNT=%s SRC=%s %s/fuse/posix.sh", m.dir, DFS_SOURCE_DIR "/common", DFS_TEST_DIR), 0,
        "posix.sh failed (log: %s)", m.log);
    /* What was written is there after a remount. */
    tc_umount(&m);
    tc_mount(c, &m, "mnt", NULL);
    cr_assert_eq(tc_sh("diff -r %s %s/tree", DFS_SOURCE_DIR "/common", m.dir), 0);
    tc_umount(&m);
    finish(c);
}

Test(fuse, permissions_are_enforced_for_other_users)
{
    struct tc_cluster *c = start();
    struct tc_mount m;

    tc_mount(c, &m, "mnt", NULL);
    cr_assert_eq(tc_sh("cd %s && mkdir pub priv && chmod 777 pub && chmod 700 priv && "
                       "echo secret > priv/f && echo open > pub/f && chmod 600 pub/f",
                       m.dir),
                 0);
#define AS_NOBODY "setpriv --reuid=65534 --regid=65534 --clear-groups "
    /* nobody cannot look into priv, read a 0600 file of root's, or create in the root dir. */
    cr_assert_neq(tc_sh(AS_NOBODY "ls %s/priv 2>/dev/null", m.dir), 0);
    cr_assert_neq(tc_sh(AS_NOBODY "cat %s/pub/f 2>/dev/null", m.dir), 0);
    cr_assert_neq(tc_sh(AS_NOBODY "touch %s/mine 2>/dev/null", m.dir), 0);
    cr_assert_neq(tc_sh(AS_NOBODY "chmod 777 %s/pub/f 2>/dev/null", m.dir), 0);
    /* ... but may create in the 0777 directory, and owns what it creates. */
    cr_assert_eq(tc_sh(AS_NOBODY "sh -c \"echo hi > %s/pub/n && mkdir %s/pub/d\"", m.dir, m.dir),
                 0);
    cr_assert_eq(tc_sh("test \"$(stat -c %%u:%%g %s/pub/n)\" = 65534:65534", m.dir), 0);
    cr_assert_eq(tc_sh("test \"$(stat -c %%u %s/pub/d)\" = 65534", m.dir), 0);
    /* A file created read-only is written through the descriptor that created it (git writes
     * its objects so), and ftruncate on that descriptor works. */
    cr_assert_eq(
        tc_sh(AS_NOBODY
              "/usr/bin/python3 -c \"import os; fd = os.open(\\\"%s/pub/ro\\\", "
              "os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o444); os.write(fd, b\\\"x\\\" * 100); "
              "os.ftruncate(fd, 50); os.close(fd)\"",
              m.dir),
        0);
    cr_assert_eq(tc_sh("test \"$(stat -c %%s:%%a %s/pub/ro)\" = 50:444", m.dir), 0);
    cr_assert_neq(tc_sh(AS_NOBODY "sh -c \"echo more >> %s/pub/ro\" 2>/dev/null", m.dir), 0);
    /* chown to another user is root's. */
    cr_assert_neq(tc_sh(AS_NOBODY "chown 0 %s/pub/n 2>/dev/null", m.dir), 0);
    cr_assert_eq(
        tc_sh("chown 4242 %s/pub/n && test \"$(stat -c %%u %s/pub/n)\" = 4242", m.dir, m.dir), 0);
    tc_umount(&m);
    finish(c);
}

Test(fuse, close_to_open_between_two_mounts)
{
    struct tc_cluster *c = start();
    struct tc_mount a, b;

    tc_mount(c, &a, "a", NULL);
    tc_mount(c, &b, "b", NULL);
    cr_assert_eq(tc_sh("head -c 3000000 /dev/urandom > %s/x && cmp %s/x %s/x", a.dir, a.dir, b.dir),
                 0);
    /* Rewritten in a, read in b after the close: the new bytes. */
    cr_assert_eq(tc_sh("head -c 2500000 /dev/urandom > %s/x && cmp %s/x %s/x", a.dir, a.dir, b.dir),
                 0);
    cr_assert_eq(tc_sh("test \"$(stat -c %%s %s/x)\" = 2500000", b.dir), 0);
    /* Names made in one appear in the other (after the entry timeout of 0.5 s at most). */
    cr_assert_eq(tc_sh("mkdir %s/d && for i in $(seq 50); do [ -d %s/d ] && exit 0; sleep 0.1; "
                       "done; exit 1",
                       a.dir, b.dir),
                 0);
    /* A name found absent is remembered for negative_timeout: through n (30 s) a name made
     * elsewhere stays absent for now, through z (0) it is there at once; a name n found absent
     * and then made itself is there at once. */
    struct tc_mount n, z;
    tc_mount(c, &n, "n", "negative_timeout=30");
    tc_mount(c, &z, "z", "negative_timeout=0");
    cr_assert_eq(tc_sh("test ! -e %s/late && test ! -e %s/late && touch %s/late && "
                       "test -e %s/late && test ! -e %s/late && "
                       "test ! -e %s/own && touch %s/own && test -e %s/own",
                       n.dir, z.dir, a.dir, z.dir, n.dir, n.dir, n.dir, n.dir),
                 0);
    tc_umount(&n);
    tc_umount(&z);
    tc_umount(&a);
    tc_umount(&b);
    finish(c);
}

/* A program that writes blocks and keeps its file open without writing more: the mount commits
 * the stored blocks once they are commit_age old (1 s here), so another mount sees them before
 * the close (and the masters never get them too late to commit). */
Test(fuse, stored_blocks_of_a_file_kept_open_are_committed_by_age)
{
    struct tc_cluster *c = start();
    struct tc_mount a, b;

    tc_mount(c, &a, "a", "commit_age=1");
    tc_mount(c, &b, "b", NULL);
    /* 2.5 blocks of 1 MiB: two stored, half a block buffered; closed when "go" appears. */
    char script[400];
    snprintf(script, sizeof(script), "%s/writer.py", c->root);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("import os, sys, time\n"
          "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
          "os.write(fd, b\"k\" * 2621440)\n"
          "while not os.path.exists(sys.argv[2]):\n"
          "    time.sleep(0.05)\n"
          "os.close(fd)\n",
          f);
    fclose(f);
    cr_assert_eq(
        tc_sh("python3 %s %s/kept %s/go > %s/writer.log 2>&1 &", script, a.dir, c->root, c->root),
        0);
    cr_assert_eq(tc_sh("for i in $(seq 200); do s=$(stat -c %%s %s/kept 2>/dev/null || echo 0); "
                       "[ \"$s\" = 2097152 ] && exit 0; sleep 0.05; done; exit 1",
                       b.dir),
                 0, "the two stored blocks were not committed while the file stayed open");
    cr_assert_eq(
        tc_sh("touch %s/go && for i in $(seq 200); do "
              "[ \"$(stat -c %%s %s/kept)\" = 2621440 ] && exit 0; sleep 0.05; done; exit 1",
              c->root, b.dir),
        0, "the close did not commit the rest");
    cr_assert_eq(tc_sh("cmp %s/kept %s/kept && test ! -s %s/writer.log", a.dir, b.dir, c->root), 0);
    tc_umount(&a);
    tc_umount(&b);
    finish(c);
}

/* A directory's attributes right after changes made through this mount (the mount answers them
 * from the changes' own results for attr_timeout, 0.5 s here), and after a change made through
 * another mount once attr_timeout has passed. */
Test(fuse, directory_attributes_follow_changes_here_and_elsewhere)
{
    struct tc_cluster *c = start();
    struct tc_mount a, b;

    tc_mount(c, &a, "a", NULL);
    tc_mount(c, &b, "b", NULL);
    cr_assert_eq(tc_sh("cd %s && mkdir d && test $(stat -c %%h d) = 2 && "
                       "mkdir d/x && test $(stat -c %%h d) = 3 && "
                       "mkdir d/y && test $(stat -c %%h d) = 4 && rmdir d/x && "
                       "test $(stat -c %%h d) = 3 && t1=$(stat -c %%Z d) && sleep 1.1 && "
                       "touch d/f && test $(stat -c %%Z d) -gt $t1 && t2=$(stat -c %%Z d) && "
                       "sleep 1.1 && mv d/f d/g && test $(stat -c %%Z d) -gt $t2 && "
                       "chmod 700 d && test $(stat -c %%a d) = 700 && "
                       "test $(stat -c %%h .) -ge 3",
                       a.dir),
                 0);
    /* Changed through b: a sees it once its copy is older than attr_timeout. */
    cr_assert_eq(tc_sh("stat %s/d >/dev/null && mkdir %s/d/z && sleep 0.7 && "
                       "test $(stat -c %%h %s/d) = 4 && chmod 750 %s/d && sleep 0.7 && "
                       "test $(stat -c %%a %s/d) = 750",
                       a.dir, b.dir, a.dir, b.dir, a.dir),
                 0);
    tc_umount(&a);
    tc_umount(&b);
    finish(c);
}

/* Names looked up one after another in a directory are answered from its listing (the mount's
 * directory cache), and what a mount changes is seen at once through it, also after the kernel
 * forgot every name; another mount's changes arrive within the timeouts (fuse/dir_cache.sh). */
Test(fuse, lookups_from_listings_see_own_changes_at_once)
{
    struct tc_cluster *c = start();
    struct tc_mount a, b, m;
    char ports[64];

    snprintf(ports, sizeof(ports), "%u %u %u", c->m[0].http_port, c->m[1].http_port,
             c->m[2].http_port);
    tc_mount(c, &a, "a", NULL);
    tc_mount(c, &b, "b", "entry_timeout=60,negative_timeout=60,attr_timeout=60");
    tc_mount(c, &m, "c", "entry_timeout=5,negative_timeout=5,attr_timeout=5");
    cr_assert_eq(tc_sh("A=%s B=%s C=%s PORTS=\"%s\" %s/fuse/dir_cache.sh", a.dir, b.dir, m.dir,
                       ports, DFS_TEST_DIR),
                 0, "dir_cache.sh failed (logs: %s, %s, %s)", a.log, b.log, m.log);
    tc_umount(&a);
    tc_umount(&b);
    tc_umount(&m);
    finish(c);
}

Test(fuse, cp_r_of_usr_include, .timeout = 1500)
{
    struct tc_cluster *c = start();
    struct tc_mount m;

    tc_mount(c, &m, "mnt", NULL);
    cr_assert_eq(tc_sh("cp -r /usr/include %s/inc && diff -r --no-dereference /usr/include %s/inc",
                       m.dir, m.dir),
                 0);
    /* rm -rf of the copy, and of directories of sizes whose emptying once left every master
     * with freed arrays (heap corruption at the rmdir, master/ns_dir.c): all three stay up and
     * the mount goes on working. */
    cr_assert_eq(tc_sh("cd %s && for n in 64 255 515; do mkdir d$n && (cd d$n && seq $n | xargs "
                       "touch) || exit 1; done && rm -rf inc d64 d255 d515 && mkdir after && "
                       "[ \"$(ls)\" = after ]",
                       m.dir),
                 0);
    for (int i = 0; i < 3; i++) {
        cJSON *st = tc_status(c, i);
        cr_assert_not_null(st, "master %d is down after rm -rf", i + 1);
        cJSON_Delete(st);
    }
    tc_umount(&m);
    finish(c);
}

Test(fuse, cp_r_of_2000_files_survives_kill_9_of_the_leader, .timeout = 1500)
{
    struct tc_cluster *c = start();
    struct tc_mount m;
    char src[400];
    int leader, st;

    tc_mount(c, &m, "mnt", NULL);
    snprintf(src, sizeof(src), "%s/src", c->root);
    /* 2,000 small files in 40 directories and two multi-block files. */
    cr_assert_eq(tc_sh("mkdir %s && cd %s && for d in $(seq 40); do mkdir d$d; for f in $(seq 50); "
                       "do head -c $((RANDOM / 4)) /dev/urandom > d$d/f$f; done; done && "
                       "head -c 3500000 /dev/urandom > big1 && head -c 2100000 /dev/urandom > big2",
                       src, src),
                 0);
    pid_t cp = fork();
    cr_assert_geq(cp, 0);
    if (cp == 0) {
        execlp("cp", "cp", "-r", src, m.dir, (char *)NULL);
        _exit(127);
    }
    /* Kill the leader once the copy is well under way. */
    leader = tc_wait_leader(c, T_LEADER_MS);
    cr_assert_geq(leader, 0);
    for (uint64_t end = tc_now_ms() + 120000; tc_sh("test -d %s/src/d5", m.dir) != 0;) {
        cr_assert_lt(tc_now_ms(), end, "the copy did not get going");
        usleep(20000);
    }
    tc_kill(c, leader);
    cr_assert_eq(waitpid(cp, &st, 0), cp);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cp -r failed across the failover");
    cr_assert_eq(tc_sh("diff -r %s %s/src", src, m.dir), 0);
    cr_assert_eq(tc_sh("test $(find %s/src -type f | wc -l) = 2002", m.dir), 0);
    tc_start(c, leader);
    tc_umount(&m);
    finish(c);
}

/* As mount(8) and an fstab line run it: mount.fuse3 starts `dfs` with mount(8)'s generic options
 * and the daemon detaches. mount(8) runs helpers with a fixed PATH, so the test names the binary
 * with the "PROGRAM#SOURCE" form of type fuse (an installed dfs is found as `-t fuse.dfs`). */
Test(fuse, mount_t_fuse_and_umount)
{
    struct tc_cluster *c = start();
    char dir[300];

    snprintf(dir, sizeof(dir), "%s/m", c->root);
    cr_assert_eq(mkdir(dir, 0755), 0);
    cr_assert_eq(tc_sh("mount -t fuse \"%s#%s\" %s -o rw,noatime,nodev,nosuid,_netdev,"
                       "block_size=1048576",
                       DFS_FUSE_BIN, masters, dir),
                 0);
    cr_assert(tc_mounted(dir));
    cr_assert_eq(tc_sh("grep -q \" %s fuse.dfs \" /proc/mounts", dir), 0);
    cr_assert_eq(tc_sh("echo hello > %s/f && test \"$(cat %s/f)\" = hello", dir, dir), 0);
    cr_assert_eq(tc_sh("umount %s", dir), 0);
    cr_assert_not(tc_mounted(dir));
    /* The detached daemon exits after the unmount. */
    for (uint64_t end = tc_now_ms() + 10000;
         tc_sh("pgrep -f \"^%s .*%s\" >/dev/null", DFS_FUSE_BIN, dir) == 0;) {
        cr_assert_lt(tc_now_ms(), end, "dfs still runs after umount");
        usleep(20000);
    }
    finish(c);
}

/* `make run` and `make stop` in two terminals (scripts/run.sh, fuse/run_stop.sh): `stop` with
 * another DFS_BIN stops the cluster of the state directory, unmounts it, and the foreground run
 * ends by itself. */
Test(fuse, make_stop_stops_a_run_from_another_build, .timeout = 600)
{
    char tmpl[] = "/tmp/dfs-run-stop-XXXXXX", bin[256], ports[128];
    char *t = mkdtemp(tmpl), *cut;
    size_t n = 0;

    cr_assert_not_null(t);
    /* The build the tests run in: DFS_MASTER_BIN is <build>/master/dfs-master. */
    snprintf(bin, sizeof(bin), "%s", DFS_MASTER_BIN);
    for (int k = 0; k < 2 && (cut = strrchr(bin, '/')) != NULL; k++)
        *cut = '\0';
    for (int k = 0; k < 9; k++)
        n += (size_t)snprintf(ports + n, sizeof(ports) - n, "%s%u", k ? " " : "", free_port());
    int rc = tc_sh("SRC=%s BIN=%s T=%s PORTS=\"%s\" %s/fuse/run_stop.sh", DFS_SOURCE_DIR, bin, t,
                   ports, DFS_TEST_DIR);
    /* Left-overs of a failed run; "[/]" keeps pkill from matching this shell's own command. */
    tc_sh("DFS_STATE=%s/state DFS_MNT=%s/mnt %s/scripts/run.sh stop >/dev/null 2>&1; "
          "pkill -KILL -f -- \"--storage-dir [/]%s/state/\"; fusermount3 -uz %s/mnt 2>/dev/null; "
          "rm -rf %s; true",
          t, t, DFS_SOURCE_DIR, t + 1, t, t);
    cr_assert_eq(rc, 0, "run_stop.sh failed");
}

Test(fuse, unreachable_cluster_and_bad_mountpoint_are_clear_errors)
{
    char out[256];
    FILE *p;
    uint64_t t0 = tc_now_ms();

    p = popen(DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o op_timeout=2 2>&1", "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit %d: %s", st, out);
    cr_assert(strstr(out, "cannot reach the cluster at 127.0.0.1:1") != NULL, "%s", out);
    cr_assert_lt(tc_now_ms() - t0, 10000);
    cr_assert_neq(tc_sh(DFS_FUSE_BIN " 127.0.0.1:1 /nonexistent/dir 2>/dev/null"), 0);
    cr_assert_eq(tc_sh(DFS_FUSE_BIN " --help | grep -q MOUNTPOINT"), 0);
    /* Bad options are named, and nothing is mounted. */
    cr_assert_eq(tc_sh("{ " DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o block_size=100 2>&1 || true; } | "
                       "grep -q \"block_size at least\""),
                 0);
    cr_assert_eq(tc_sh("{ " DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o replication=9 2>&1 || true; } | "
                       "grep -q \"replication must be\""),
                 0);
    cr_assert_eq(tc_sh("{ " DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o negative_timeout=-1 2>&1 || "
                       "true; } | grep -q \"negative_timeout cannot be negative\""),
                 0);
    cr_assert_eq(tc_sh("{ " DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o commit_age=3600 2>&1 || true; } | "
                       "grep -q \"bad commit_age 3600: 1 to 1200 seconds\""),
                 0);
    cr_assert_eq(tc_sh("{ " DFS_FUSE_BIN " 127.0.0.1:1 /tmp -o readahead_mb=4 2>&1 || true; } | "
                       "grep -q \"bad readahead_mb 4: 8 to 1048576 MiB\""),
                 0);
}
