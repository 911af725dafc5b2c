/* bench_namespace: the namespace state machine at scale. Creates N files (default 1,000,000)
 * with ~16-byte names in a few directories through the command path (encode, apply, decode the
 * result), gives each one block with a commit, then measures lookups, getattrs and readdir, the
 * resident memory per file, and a snapshot to a file and its restore.
 *   bench_namespace [-n files] [-d dirs] [-o snapshot-path] [-k]
 *   bench_namespace -R snapshot-path   (restore only, in a fresh process: time and RSS) */
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "master/namespace.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_namespace: %s: %s\n", what, cm_strerror(rc));
    exit(1);
}

static uint64_t g_index;

/* Applies an encoded command (freed here); returns the decoded result. */
static int apply(struct ns *ns, void *cmd, size_t len, struct ns_result *r)
{
    void *res = NULL;
    size_t rlen = 0;
    int err = ns_apply(ns, ++g_index, cmd, len, &res, &rlen);
    free(cmd);
    if (res == NULL)
        die("apply", CM_E_NOMEM);
    int rc = ns_result_decode(res, rlen, r);
    free(res);
    if (rc != 0)
        die("result", rc);
    return err;
}

static int fd_write(void *arg, const void *data, size_t len)
{
    int fd = *(int *)arg;
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k <= 0)
            return CM_E_IO;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Restores a snapshot in this (fresh) process and reports time and memory. */
static int restore_only(const char *path)
{
    uint64_t rss0 = rss_bytes();
    struct ns *ns;
    int rc = ns_new(NULL, &ns);
    if (rc != 0)
        die("ns_new", rc);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(path, CM_E_IO);
    double t0 = now_s();
    if ((rc = ns_restore_fd(ns, fd, (uint64_t)st.st_size)) != 0)
        die("restore", rc);
    double t = now_s() - t0;
    close(fd);
    struct ns_statfs s;
    ns_statfs(ns, &s);
    uint64_t rss1 = rss_bytes();
    printf("restore               %.2f s, %" PRIu64 " inodes, RSS per inode %.0f bytes\n", t,
           s.inodes, (double)(rss1 - rss0) / (double)s.inodes);
    ns_free(ns);
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t n = 1000000, n_dirs = 4;
    const char *path = "/tmp/bench_namespace.snap";
    bool keep = false;
    int opt;
    while ((opt = getopt(argc, argv, "n:d:o:kR:")) != -1) {
        if (opt == 'n')
            n = (uint32_t)strtoul(optarg, NULL, 10);
        else if (opt == 'd')
            n_dirs = (uint32_t)strtoul(optarg, NULL, 10);
        else if (opt == 'o')
            path = optarg;
        else if (opt == 'k')
            keep = true;
        else if (opt == 'R')
            return restore_only(optarg);
        else {
            fprintf(stderr, "usage: %s [-n files] [-d dirs] [-o snapshot-path] [-k] | -R path\n",
                    argv[0]);
            return 2;
        }
    }
    if (n == 0 || n_dirs == 0 || n_dirs > 1000) {
        fprintf(stderr, "bench_namespace: bad -n or -d\n");
        return 2;
    }
    uint64_t rss0 = rss_bytes();
    struct ns *ns;
    int rc = ns_new(NULL, &ns);
    if (rc != 0)
        die("ns_new", rc);
    struct ns_cred cred = {.uid = 1000, .gid = 1000};
    struct ns_req rq = {.client = 1, .seq = 0, .now_ns = 1700000000000000000LL, .cred = &cred};
    struct ns_result r;
    void *cmd;
    size_t len;
    struct ns_setattr open_root = {.valid = NS_SET_MODE, .mode = 0777};
    rq.seq++;
    rq.cred = NULL;
    if ((rc = ns_cmd_setattr(&rq, NS_ROOT_INO, 1, &open_root, &cmd, &len)) != 0 ||
        (rc = apply(ns, cmd, len, &r)) != 0)
        die("chmod /", rc);
    rq.cred = &cred;
    uint64_t dir_ino[1000], dir_gen[1000];
    char name[64];
    for (uint32_t d = 0; d < n_dirs; d++) {
        snprintf(name, sizeof(name), "dir%u", d);
        rq.seq++;
        if ((rc = ns_cmd_mkdir(&rq, NS_ROOT_INO, 1, name, 0755, &cmd, &len)) != 0 ||
            (rc = apply(ns, cmd, len, &r)) != 0)
            die("mkdir", rc);
        dir_ino[d] = r.attr[0].ino;
        dir_gen[d] = r.attr[0].gen;
    }
    uint32_t *ino = malloc((size_t)n * sizeof(uint32_t));
    uint32_t *gen = malloc((size_t)n * sizeof(uint32_t));
    if (ino == NULL || gen == NULL)
        die("malloc", CM_E_NOMEM);

    /* Creates. Names like "file-00000012345" (16 bytes). */
    double t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        uint32_t d = i % n_dirs;
        snprintf(name, sizeof(name), "file-%011u", i);
        rq.seq++;
        rq.now_ns += 1000;
        if ((rc = ns_cmd_create(&rq, dir_ino[d], dir_gen[d], name, 0644, NS_CREATE_EXCL, &cmd,
                                &len)) != 0 ||
            (rc = apply(ns, cmd, len, &r)) != 0)
            die("create", rc);
        ino[i] = (uint32_t)r.attr[0].ino;
        gen[i] = (uint32_t)r.attr[0].gen;
    }
    double t_create = now_s() - t0;

    /* One block each: ids reserved 1024 at a time, then one commit per file. */
    t0 = now_s();
    uint64_t next_id = 0, last_id = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (next_id == last_id) {
            rq.seq++;
            if ((rc = ns_cmd_alloc_blocks(&rq, 1024, &cmd, &len)) != 0 ||
                (rc = apply(ns, cmd, len, &r)) != 0)
                die("alloc", rc);
            next_id = r.value;
            last_id = r.value + 1024;
        }
        struct ns_block b = {.id = next_id++,
                             .len = 65536 + i % 1000,
                             .crc32c = i,
                             .n_replicas = 3,
                             .replicas = {i % 7 + 1, i % 11 + 1, i % 13 + 1}};
        rq.seq++;
        rq.now_ns += 1000;
        if ((rc = ns_cmd_commit(&rq, ino[i], gen[i], 0, b.len, b.len, 0, &b, 1, &cmd, &len)) != 0 ||
            (rc = apply(ns, cmd, len, &r)) != 0)
            die("commit", rc);
    }
    double t_commit = now_s() - t0;

    /* Lookups by name, then getattr by handle. */
    struct ns_attr a;
    t0 = now_s();
    for (uint32_t i = 0; i < n; i++) {
        uint32_t d = i % n_dirs;
        snprintf(name, sizeof(name), "file-%011u", i);
        if ((rc = ns_lookup(ns, &cred, dir_ino[d], dir_gen[d], name, &a)) != 0 || a.ino != ino[i])
            die("lookup", rc ? rc : CM_E_INTERNAL);
    }
    double t_lookup = now_s() - t0;
    t0 = now_s();
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if ((rc = ns_getattr(ns, ino[(i * 2654435761u) % n], gen[(i * 2654435761u) % n], &a)) != 0)
            die("getattr", rc);
        total += a.size;
    }
    double t_getattr = now_s() - t0;
    free(ino);
    free(gen);

    /* A full listing, 1000 entries a page. */
    t0 = now_s();
    uint64_t listed = 0;
    for (uint32_t d = 0; d < n_dirs; d++) {
        uint64_t cookie = 0;
        for (;;) {
            struct ns_dirpage pg;
            if ((rc = ns_readdir(ns, &cred, dir_ino[d], dir_gen[d], cookie, 1000, 1 << 20, &pg)) !=
                0)
                die("readdir", rc);
            listed += pg.n;
            if (pg.n > 0)
                cookie = pg.ents[pg.n - 1].cookie;
            bool eof = pg.eof;
            ns_dirpage_free(&pg);
            if (eof)
                break;
        }
    }
    double t_readdir = now_s() - t0;
    uint64_t rss1 = rss_bytes();

    /* Snapshot to a file, and restore into a fresh namespace. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path, CM_E_IO);
    t0 = now_s();
    if ((rc = ns_snapshot_write(ns, fd_write, &fd)) != 0)
        die("snapshot", rc);
    double t_snap = now_s() - t0;
    struct stat st;
    fstat(fd, &st);
    close(fd);
    struct ns_statfs s1, s2;
    ns_statfs(ns, &s1);
    ns_free(ns);
    uint64_t rss2 = rss_bytes();
    struct ns *ns2;
    if ((rc = ns_new(NULL, &ns2)) != 0)
        die("ns_new", rc);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path, CM_E_IO);
    t0 = now_s();
    if ((rc = ns_restore_fd(ns2, fd, (uint64_t)st.st_size)) != 0)
        die("restore", rc);
    double t_restore = now_s() - t0;
    close(fd);
    uint64_t rss3 = rss_bytes();
    ns_statfs(ns2, &s2);
    if (s1.inodes != s2.inodes || s1.files != n)
        die("restored counts differ", CM_E_INTERNAL);
    ns_free(ns2);
    if (!keep)
        unlink(path);

    printf("files                 %u in %u directories (one block each)\n", n, n_dirs);
    printf("creates               %.0f /s (%.2f s)\n", n / t_create, t_create);
    printf("commits               %.0f /s (%.2f s)\n", n / t_commit, t_commit);
    printf("lookups               %.0f /s\n", n / t_lookup);
    printf("getattrs (random)     %.0f /s\n", n / t_getattr);
    printf("readdir               %.0f entries/s (%" PRIu64 " entries)\n", listed / t_readdir,
           listed);
    printf("RSS                   %.1f MiB before, %.1f MiB with the namespace\n", rss0 / 1048576.0,
           rss1 / 1048576.0);
    printf("RSS per file          %.0f bytes\n", (double)(rss1 - rss0) / n);
    printf("snapshot              %.2f s, %.1f MiB (%.0f bytes/file)\n", t_snap,
           st.st_size / 1048576.0, (double)st.st_size / n);
    printf("restore               %.2f s (RSS growth %.0f bytes/file, heap reused: see -R)\n",
           t_restore, (double)(rss3 > rss2 ? rss3 - rss2 : 0) / n);
    (void)total;
    return 0;
}
