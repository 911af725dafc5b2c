/* dfsctl bench: times big-file and small-file workloads on any directory through plain POSIX
 * calls (a dfs or MooseFS mount, a local disk). Uses neither libdfs nor the masters. */
#ifndef DFS_CLIENT_DFSCTL_BENCH_H
#define DFS_CLIENT_DFSCTL_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#define DFSCTL_BENCH_BIG_SIZE    (1ull << 30) /* bytes of the big file, per worker */
#define DFSCTL_BENCH_BLOCK       (1ull << 20) /* bytes per read or write call */
#define DFSCTL_BENCH_SMALL_FILES 5000         /* small files, all workers together */
#define DFSCTL_BENCH_SMALL_SIZE  4096         /* bytes of each small file */

struct dfsctl_bench_config {
    const char *path;     /* an existing directory; borrowed for the run */
    uint64_t big_size;    /* 0: no big-file phases */
    uint64_t block;       /* > 0 */
    uint64_t small_files; /* 0: no small-file phases */
    uint64_t small_size;
    unsigned threads; /* >= 1 */
    bool keep;        /* leave PATH/.dfsctl-bench-<pid> behind */
    bool json;        /* one JSON object on stdout instead of the table */
    bool progress;    /* the current phase on stderr (meant for a terminal) */
};

/* Runs the phases in PATH/.dfsctl-bench-<pid>/w<k> (k < threads), prints the results on stdout
 * and removes that directory unless keep. Returns 0, or 1 after printing "dfsctl: bench ..." with
 * the file and errno that failed. On SIGINT, SIGTERM or SIGHUP it stops the workers, removes the
 * directory (unless keep) and dies of that signal. */
int dfsctl_bench_run(const struct dfsctl_bench_config *cfg);

#endif
