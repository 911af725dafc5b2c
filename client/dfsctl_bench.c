/* dfsctl bench (client/dfsctl_bench.h): one thread per worker, each in a directory of its own,
 * all in the same phase at a time; the main thread starts each phase, shows its progress and is
 * the only one to take SIGINT, SIGTERM and SIGHUP. Every byte written follows a pattern that
 * names the file and the 4 KiB page it is in, so each read is checked in full. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/dfsctl_bench.h"
#include "common/json.h"

#define PROG        "dfsctl"
#define CMD         "bench"
#define PAGE        4096 /* the pattern's unit: a stamp, then the template's bytes */
#define STAMP       16   /* bytes at the start of each page naming the file and the page */
#define TICK_MS     200  /* progress refresh */
#define NAME_ROOM   32   /* room for a name after a directory of the run */
#define MAX_PHASES  6
#define MIB         (1024.0 * 1024.0)
#define DROP_CACHES "/proc/sys/vm/drop_caches"

struct bench;

struct worker {
    struct bench *b;
    unsigned k;
    char dir[PATH_MAX - NAME_ROOM];
    uint64_t first, count; /* its small files: s<first> .. s<first + count - 1> */
    uint8_t *buf;          /* cfg->block bytes */
    uint8_t page[PAGE];    /* the template with the stamp of the page at hand */
    pthread_t tid;
    _Atomic uint64_t done;                /* progress in the phase: bytes or files */
    uint64_t ops, bytes, busy_ns, end_ns; /* of the phase */
};

enum unit { BYTES, FILES };

struct phase {
    const char *name;
    enum unit unit;
    int (*fn)(struct worker *);
};

struct result {
    const struct phase *ph;
    double seconds, busy_s; /* wall time of the phase; the workers' time in it, summed */
    uint64_t ops, bytes;
};

struct bench {
    const struct dfsctl_bench_config *cfg;
    char root[PATH_MAX - 2 * NAME_ROOM]; /* PATH/.dfsctl-bench-<pid> */
    bool made_root;
    uint64_t nonce;     /* makes this run's bytes differ from any earlier run's */
    uint8_t tmpl[PAGE]; /* pseudo-random bytes */
    struct worker *w;   /* cfg->threads of them */
    pthread_t main_tid;
    sigset_t sigs; /* blocked during the run, taken by the main thread with sigtimedwait */
    int signo;     /* the signal that stopped the run; 0: none */
    const struct phase *phase;
    _Atomic unsigned running; /* workers still in the phase; the last one wakes main (SIGUSR1) */
    atomic_bool stop;         /* a failure or a signal: workers return at their next step */
    _Atomic int fadvise_err;  /* the last posix_fadvise failure */
    bool drop_caches;         /* "1" written to DROP_CACHES */
    char cache[260];          /* what was done to read the big files cold */
    pthread_mutex_t mu;
    bool failed;              /* guarded by mu */
    char err[PATH_MAX + 256]; /* the first failure, guarded by mu */
    struct result res[MAX_PHASES];
    int nres;
};

/* ---- helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64's finalizer: distinct inputs give unrelated outputs. */
static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static const char *errname(int e)
{
    const char *n = strerrorname_np(e);
    return n != NULL ? n : "?";
}

/* Records the first failure (later ones are their consequences) and stops the workers. */
__attribute__((format(printf, 2, 3))) static int bench_fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&b->mu);
    if (!b->failed) {
        va_start(ap, fmt);
        vsnprintf(b->err, sizeof(b->err), fmt, ap);
        va_end(ap);
        b->failed = true;
    }
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->stop, true);
    return -1;
}

/* "PATH: OP: MESSAGE (ENAME)" for errno e. */
static int bench_fail_sys(struct bench *b, const char *path, const char *op, int e)
{
    char buf[128];
    return bench_fail(b, "%s: %s: %s (%s)", path, op, strerror_r(e, buf, sizeof(buf)), errname(e));
}

static int fail_sys(struct worker *w, const char *path, const char *op, int e)
{
    return bench_fail_sys(w->b, path, op, e);
}

/* Prints "dfsctl: bench PATH: OP: MESSAGE (ENAME)" at once (the main thread, while no worker
 * runs). */
static void say_sys(const char *path, const char *op, int e)
{
    fprintf(stderr, "%s: %s %s: %s: %s (%s)\n", PROG, CMD, path, op, strerror(e), errname(e));
}

static bool stopped(const struct worker *w)
{
    return atomic_load_explicit(&w->b->stop, memory_order_relaxed);
}

static void file_path(const struct worker *w, char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", w->dir, name);
}

static void small_path(const struct worker *w, char *out, uint64_t i)
{
    snprintf(out, PATH_MAX, "%s/s%07" PRIu64, w->dir, i);
}

static uint64_t big_seed(const struct worker *w)
{
    return mix(w->b->nonce ^ (1ull << 63) ^ w->k);
}

static uint64_t small_seed(const struct worker *w, uint64_t i)
{
    return mix(w->b->nonce ^ i);
}

/* "1 GiB", "4 KiB", "1000 B": the largest binary unit that divides v. */
static const char *size_str(uint64_t v, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && v != 0 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%" PRIu64 " %s", v, units[u]);
    return buf;
}

/* ---- the pattern ---- */

static void stamp(struct worker *w, uint64_t seed, uint64_t pgno)
{
    uint64_t s[2] = {seed, mix(seed ^ pgno)};
    memcpy(w->page, s, STAMP);
}

/* The bytes [off, off + n) of the file with seed, into buf. */
static void pattern_fill(struct worker *w, uint8_t *buf, uint64_t off, size_t n, uint64_t seed)
{
    for (size_t d = 0; d < n;) {
        uint64_t x = off + d;
        size_t in = (size_t)(x % PAGE), len = PAGE - in < n - d ? PAGE - in : n - d;
        stamp(w, seed, x / PAGE);
        memcpy(buf + d, w->page + in, len);
        d += len;
    }
}

/* Whether buf holds the bytes [off, off + n) of the file with seed; if not, *bad is the file
 * offset of the first that differs. */
static bool pattern_same(struct worker *w, const uint8_t *buf, uint64_t off, size_t n,
                         uint64_t seed, uint64_t *bad)
{
    for (size_t d = 0; d < n;) {
        uint64_t x = off + d;
        size_t in = (size_t)(x % PAGE), len = PAGE - in < n - d ? PAGE - in : n - d;
        stamp(w, seed, x / PAGE);
        if (memcmp(buf + d, w->page + in, len) != 0) {
            size_t i = 0;
            while (buf[d + i] == w->page[in + i])
                i++;
            *bad = x + i;
            return false;
        }
        d += len;
    }
    return true;
}

/* Writes size bytes of the pattern seed in calls of at most cfg->block bytes; each is an op
 * and progress when big. */
static int write_pattern(struct worker *w, int fd, const char *path, uint64_t seed, uint64_t size,
                         bool big)
{
    for (uint64_t off = 0; off < size;) {
        if (stopped(w))
            return -1;
        size_t n = (size_t)(size - off < w->b->cfg->block ? size - off : w->b->cfg->block);
        pattern_fill(w, w->buf, off, n, seed);
        for (size_t put = 0; put < n;) {
            ssize_t r = write(fd, w->buf + put, n - put);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return fail_sys(w, path, "write", errno);
            if (r == 0)
                return bench_fail(w->b, "%s: write: wrote nothing at byte %" PRIu64, path,
                                  off + put);
            put += (size_t)r;
        }
        off += n;
        if (big) {
            w->ops++;
            atomic_fetch_add_explicit(&w->done, n, memory_order_relaxed);
        }
    }
    w->bytes += size;
    return 0;
}

/* Reads fd to its end in calls of cfg->block bytes and checks it holds exactly size bytes of
 * the pattern seed; each read is an op and progress when big. */
static int read_pattern(struct worker *w, int fd, const char *path, uint64_t seed, uint64_t size,
                        bool big)
{
    uint64_t off = 0, bad;
    for (;;) {
        if (stopped(w))
            return -1;
        ssize_t r = read(fd, w->buf, w->b->cfg->block);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return fail_sys(w, path, "read", errno);
        if (r == 0)
            break;
        if ((uint64_t)r > size - off)
            return bench_fail(w->b, "%s: read: longer than the %" PRIu64 " bytes written", path,
                              size);
        if (!pattern_same(w, w->buf, off, (size_t)r, seed, &bad))
            return bench_fail(w->b, "%s: read: byte %" PRIu64 " differs from what was written",
                              path, bad);
        off += (uint64_t)r;
        if (big) {
            w->ops++;
            atomic_fetch_add_explicit(&w->done, (uint64_t)r, memory_order_relaxed);
        }
    }
    if (off != size)
        return bench_fail(w->b, "%s: read: %" PRIu64 " bytes, %" PRIu64 " were written", path, off,
                          size);
    w->bytes += size;
    return 0;
}

/* ---- the phases: each returns 0 or -1 (recorded, or stopped) ---- */

static int big_write(struct worker *w)
{
    char path[PATH_MAX];
    file_path(w, path, "big");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail_sys(w, path, "open", errno);
    int rc = write_pattern(w, fd, path, big_seed(w), w->b->cfg->big_size, true);
    if (rc == 0 && fsync(fd) != 0)
        rc = fail_sys(w, path, "fsync", errno);
    if (rc == 0) {
        /* clean pages now: this drops them from the page cache */
        int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (e != 0)
            atomic_store(&w->b->fadvise_err, e);
    }
    if (close(fd) != 0 && rc == 0)
        rc = fail_sys(w, path, "close", errno);
    return rc;
}

static int big_read(struct worker *w)
{
    char path[PATH_MAX];
    file_path(w, path, "big");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_sys(w, path, "open", errno);
    int rc = read_pattern(w, fd, path, big_seed(w), w->b->cfg->big_size, true);
    close(fd);
    return rc;
}

static int small_create(struct worker *w)
{
    char path[PATH_MAX];
    for (uint64_t i = w->first; i < w->first + w->count; i++) {
        if (stopped(w))
            return -1;
        small_path(w, path, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail_sys(w, path, "open", errno);
        int rc = write_pattern(w, fd, path, small_seed(w, i), w->b->cfg->small_size, false);
        if (close(fd) != 0 && rc == 0)
            rc = fail_sys(w, path, "close", errno);
        if (rc != 0)
            return rc;
        w->ops++;
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    return 0;
}

static int small_stat(struct worker *w)
{
    char path[PATH_MAX];
    struct stat st;
    for (uint64_t i = w->first; i < w->first + w->count; i++) {
        if (stopped(w))
            return -1;
        small_path(w, path, i);
        if (stat(path, &st) != 0)
            return fail_sys(w, path, "stat", errno);
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != w->b->cfg->small_size)
            return bench_fail(w->b, "%s: stat: %s of %lld bytes, %" PRIu64 " were written", path,
                              S_ISREG(st.st_mode) ? "a file" : "not a file", (long long)st.st_size,
                              w->b->cfg->small_size);
        w->ops++;
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    return 0;
}

static int small_read(struct worker *w)
{
    char path[PATH_MAX];
    for (uint64_t i = w->first; i < w->first + w->count; i++) {
        if (stopped(w))
            return -1;
        small_path(w, path, i);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fail_sys(w, path, "open", errno);
        int rc = read_pattern(w, fd, path, small_seed(w, i), w->b->cfg->small_size, false);
        close(fd);
        if (rc != 0)
            return rc;
        w->ops++;
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    return 0;
}

static int small_unlink(struct worker *w)
{
    char path[PATH_MAX];
    for (uint64_t i = w->first; i < w->first + w->count; i++) {
        if (stopped(w))
            return -1;
        small_path(w, path, i);
        if (unlink(path) != 0)
            return fail_sys(w, path, "unlink", errno);
        w->ops++;
        atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
    }
    return 0;
}

static const struct phase big_phases[] = {
    {"big_write", BYTES, big_write},
    {"big_read", BYTES, big_read},
};

static const struct phase small_phases[] = {
    {"small_create", FILES, small_create},
    {"small_stat", FILES, small_stat},
    {"small_read", FILES, small_read},
    {"small_unlink", FILES, small_unlink},
};

/* ---- running a phase ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    uint64_t t0 = now_ns();
    b->phase->fn(w);
    w->end_ns = now_ns();
    w->busy_ns = w->end_ns - t0;
    if (atomic_fetch_sub(&b->running, 1) == 1)
        pthread_kill(b->main_tid, SIGUSR1);
    return NULL;
}

/* Waits up to ms for one of b->sigs. The first SIGINT, SIGTERM or SIGHUP stops the run; a
 * second one ends the process at once. */
static void take_signal(struct bench *b, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    int sig = sigtimedwait(&b->sigs, NULL, &ts);
    if (sig <= 0 || sig == SIGUSR1)
        return;
    if (b->signo != 0) {
        fprintf(stderr, "\n%s: %s: SIG%s again: exiting, %s left behind\n", PROG, CMD,
                sigabbrev_np(sig), b->root);
        _exit(128 + sig);
    }
    b->signo = sig;
    atomic_store(&b->stop, true);
}

static uint64_t phase_done(const struct bench *b)
{
    uint64_t d = 0;
    for (unsigned k = 0; k < b->cfg->threads; k++)
        d += atomic_load_explicit(&b->w[k].done, memory_order_relaxed);
    return d;
}

/* "big_write     [#########-----------]  312.0/1024.0 MiB  4.1 s" on stderr. */
static void show_progress(const struct bench *b, const struct phase *ph, uint64_t total,
                          uint64_t t0, bool final)
{
    char bar[21];
    uint64_t done = phase_done(b);
    unsigned fill = total ? (unsigned)(done * 20 / total) : 20;
    for (unsigned i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[20] = 0;
    double secs = (double)(now_ns() - t0) / 1e9;
    if (ph->unit == BYTES)
        fprintf(stderr, "\r%-13s [%s] %.1f/%.1f MiB  %.1f s%s\033[K", ph->name, bar,
                (double)done / MIB, (double)total / MIB, secs,
                !final && ph->fn == big_write && done >= total ? "  (fsync)" : "");
    else
        fprintf(stderr, "\r%-13s [%s] %" PRIu64 "/%" PRIu64 " files  %.1f s\033[K", ph->name, bar,
                done, total, secs);
    if (final)
        fputc('\n', stderr);
}

/* Runs ph on every worker at once and records its result; 0, or -1 when it failed or a signal
 * stopped it. */
static int run_phase(struct bench *b, const struct phase *ph)
{
    const struct dfsctl_bench_config *cfg = b->cfg;
    unsigned n = cfg->threads, started;
    uint64_t total = ph->unit == BYTES ? cfg->big_size * n : cfg->small_files;
    take_signal(b, 0);
    if (b->signo != 0 || b->failed)
        return -1;
    b->phase = ph;
    for (unsigned k = 0; k < n; k++) {
        struct worker *w = &b->w[k];
        w->ops = w->bytes = w->busy_ns = w->end_ns = 0;
        atomic_store(&w->done, 0);
    }
    atomic_store(&b->running, n);
    uint64_t t0 = now_ns();
    for (started = 0; started < n; started++) {
        int e = pthread_create(&b->w[started].tid, NULL, worker_main, &b->w[started]);
        if (e != 0) {
            bench_fail_sys(b, ph->name, "pthread_create", e);
            atomic_fetch_sub(&b->running, n - started);
            break;
        }
    }
    while (atomic_load(&b->running) > 0) {
        if (cfg->progress)
            show_progress(b, ph, total, t0, false);
        take_signal(b, TICK_MS);
    }
    for (unsigned k = 0; k < started; k++)
        pthread_join(b->w[k].tid, NULL);
    if (cfg->progress)
        show_progress(b, ph, total, t0, true);
    if (b->signo != 0 || b->failed)
        return -1;

    struct result *r = &b->res[b->nres++];
    uint64_t end = t0;
    *r = (struct result){.ph = ph};
    for (unsigned k = 0; k < n; k++) {
        const struct worker *w = &b->w[k];
        r->ops += w->ops;
        r->bytes += w->bytes;
        r->busy_s += (double)w->busy_ns / 1e9;
        if (w->end_ns > end)
            end = w->end_ns;
    }
    r->seconds = (double)(end - t0) / 1e9;
    return 0;
}

/* Between writing and reading the big files: they were dropped from the page cache one by one
 * after their fsync; as root, the whole page cache is dropped too. */
static void drop_cache(struct bench *b)
{
    char fa[128], dc[128], eb[64];
    int fe = atomic_load(&b->fadvise_err), fd;
    if (fe == 0)
        snprintf(fa, sizeof(fa), "posix_fadvise(POSIX_FADV_DONTNEED) after fsync");
    else
        snprintf(fa, sizeof(fa), "posix_fadvise(POSIX_FADV_DONTNEED) failed (%s)", errname(fe));
    if (geteuid() != 0) {
        snprintf(dc, sizeof(dc), "%s not written (not root)", DROP_CACHES);
    } else if ((fd = open(DROP_CACHES, O_WRONLY | O_CLOEXEC)) < 0 || write(fd, "1", 1) != 1) {
        int e = errno;
        snprintf(dc, sizeof(dc), "%s not written: %s (%s)", DROP_CACHES,
                 strerror_r(e, eb, sizeof(eb)), errname(e));
        if (fd >= 0)
            close(fd);
    } else {
        snprintf(dc, sizeof(dc), "wrote 1 to %s", DROP_CACHES);
        b->drop_caches = true;
        close(fd);
    }
    snprintf(b->cache, sizeof(b->cache), "%s; %s", fa, dc);
}

/* ---- the directory ---- */

static int setup(struct bench *b)
{
    const struct dfsctl_bench_config *cfg = b->cfg;
    struct stat st;
    if (stat(cfg->path, &st) != 0)
        return bench_fail_sys(b, cfg->path, "stat", errno);
    if (!S_ISDIR(st.st_mode))
        return bench_fail_sys(b, cfg->path, "stat", ENOTDIR);
    int n = snprintf(b->root, sizeof(b->root), "%s%s.dfsctl-bench-%ld", cfg->path,
                     cfg->path[strlen(cfg->path) - 1] == '/' ? "" : "/", (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(b->root))
        return bench_fail_sys(b, cfg->path, "mkdir", ENAMETOOLONG);
    if (mkdir(b->root, 0755) != 0)
        return bench_fail_sys(b, b->root, "mkdir", errno);
    b->made_root = true;

    b->nonce = mix(now_ns() ^ ((uint64_t)getpid() << 32));
    uint64_t x = b->nonce | 1;
    for (size_t i = 0; i < PAGE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(b->tmpl + i, &x, 8);
    }
    if ((b->w = calloc(cfg->threads, sizeof(*b->w))) == NULL)
        return bench_fail_sys(b, b->root, "calloc", ENOMEM);
    for (unsigned k = 0; k < cfg->threads; k++) {
        struct worker *w = &b->w[k];
        w->b = b;
        w->k = k;
        w->first = cfg->small_files * k / cfg->threads;
        w->count = cfg->small_files * (k + 1) / cfg->threads - w->first;
        memcpy(w->page, b->tmpl, PAGE);
        snprintf(w->dir, sizeof(w->dir), "%s/w%u", b->root, k);
        if ((w->buf = malloc(cfg->block)) == NULL)
            return bench_fail_sys(b, w->dir, "malloc", ENOMEM);
        if (mkdir(w->dir, 0755) != 0)
            return bench_fail_sys(b, w->dir, "mkdir", errno);
    }
    return 0;
}

/* Removes path and everything under it, following no symlink; 0, or -1 after a message per
 * entry that stayed. Passes over a directory until it is empty, as removing entries while
 * reading it may make some filesystems skip others. */
static int rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        say_sys(path, "lstat", errno);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT) {
            say_sys(path, "unlink", errno);
            return -1;
        }
        return 0;
    }
    for (;;) {
        DIR *d = opendir(path);
        if (d == NULL) {
            say_sys(path, "opendir", errno);
            return -1;
        }
        size_t seen = 0, removed = 0;
        struct dirent *e;
        char sub[PATH_MAX];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            seen++;
            int n = snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            if (n > 0 && (size_t)n < sizeof(sub) && rm_tree(sub) == 0)
                removed++;
        }
        closedir(d);
        if (seen == 0 || removed == 0)
            break;
    }
    if (rmdir(path) != 0 && errno != ENOENT) {
        say_sys(path, "rmdir", errno);
        return -1;
    }
    return 0;
}

/* ---- output ---- */

static double per_sec(double v, double secs)
{
    return secs > 0 ? v / secs : 0;
}

static double avg_ms(const struct result *r)
{
    return r->ops > 0 ? r->busy_s * 1000.0 / (double)r->ops : 0;
}

/* v rounded to `scale` (1000: three decimals), as JSON carries it. */
static double rounded(double v, double scale)
{
    return (double)(uint64_t)(v * scale + 0.5) / scale;
}

static int print_json(const struct bench *b)
{
    const struct dfsctl_bench_config *cfg = b->cfg;
    cJSON *o = cJSON_CreateObject(), *ps;
    char *s = NULL;
    if (o == NULL)
        goto nomem;
    cJSON_AddStringToObject(o, "path", cfg->path);
    cm_json_add_u64(o, "threads", cfg->threads);
    cm_json_add_u64(o, "big_size", cfg->big_size);
    cm_json_add_u64(o, "block", cfg->block);
    cm_json_add_u64(o, "small_files", cfg->small_files);
    cm_json_add_u64(o, "small_size", cfg->small_size);
    if (cfg->big_size > 0) {
        cJSON_AddBoolToObject(o, "fadvise_dontneed", atomic_load(&b->fadvise_err) == 0);
        cJSON_AddBoolToObject(o, "drop_caches", b->drop_caches);
    }
    if ((ps = cJSON_AddArrayToObject(o, "phases")) == NULL)
        goto nomem;
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        cJSON *p = cJSON_CreateObject();
        if (p == NULL || !cJSON_AddItemToArray(ps, p))
            goto nomem;
        cJSON_AddStringToObject(p, "name", r->ph->name);
        cJSON_AddNumberToObject(p, "seconds", rounded(r->seconds, 1e6));
        cm_json_add_u64(p, "ops", r->ops);
        cm_json_add_u64(p, "bytes", r->bytes);
        cJSON_AddNumberToObject(p, "per_sec", rounded(per_sec((double)r->ops, r->seconds), 1e3));
        cJSON_AddNumberToObject(p, "mib_per_sec",
                                rounded(per_sec((double)r->bytes / MIB, r->seconds), 1e3));
        cJSON_AddNumberToObject(p, "avg_ms", rounded(avg_ms(r), 1e4));
    }
    if (cm_json_print(o, &s, NULL) != 0)
        goto nomem;
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
nomem:
    cJSON_Delete(o);
    fprintf(stderr, "%s: %s: out of memory\n", PROG, CMD);
    return -1;
}

static void print_table(const struct bench *b)
{
    const struct dfsctl_bench_config *cfg = b->cfg;
    char s1[32], s2[32];
    printf("%s %s %s: %u worker%s", PROG, CMD, cfg->path, cfg->threads,
           cfg->threads == 1 ? "" : "s");
    if (cfg->big_size > 0)
        printf(", a big file of %s each (%s per call)", size_str(cfg->big_size, s1, sizeof(s1)),
               size_str(cfg->block, s2, sizeof(s2)));
    if (cfg->small_files > 0)
        printf(", %" PRIu64 " small files of %s", cfg->small_files,
               size_str(cfg->small_size, s1, sizeof(s1)));
    printf("\n");
    if (cfg->big_size > 0)
        printf("Before big_read: %s\n", b->cache);
    printf("\n%-13s %10s %10s %18s %14s\n", "PHASE", "OPS", "SECONDS", "THROUGHPUT", "AVG LATENCY");
    for (int i = 0; i < b->nres; i++) {
        const struct result *r = &b->res[i];
        char tp[32];
        if (r->ph->unit == BYTES)
            snprintf(tp, sizeof(tp), "%.1f MiB/s", per_sec((double)r->bytes / MIB, r->seconds));
        else
            snprintf(tp, sizeof(tp), "%.1f files/s", per_sec((double)r->ops, r->seconds));
        printf("%-13s %10" PRIu64 " %10.3f %18s %11.3f ms\n", r->ph->name, r->ops, r->seconds, tp,
               avg_ms(r));
    }
    printf(
        "\nOPS: read or write calls on the big files, files in the small_* phases. AVG LATENCY:\n"
        "the workers' time in the phase per op (a big_write includes its share of fsync).\n");
}

/* ---- the run ---- */

int dfsctl_bench_run(const struct dfsctl_bench_config *cfg)
{
    struct bench b = {.cfg = cfg, .main_tid = pthread_self()};
    sigset_t old, usr1;
    const struct timespec zero = {0, 0};
    int rc = 1;

    sigemptyset(&b.sigs);
    sigaddset(&b.sigs, SIGINT);
    sigaddset(&b.sigs, SIGTERM);
    sigaddset(&b.sigs, SIGHUP);
    sigaddset(&b.sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &b.sigs, &old); /* the workers inherit it */
    pthread_mutex_init(&b.mu, NULL);

    if (setup(&b) != 0)
        goto out;
    if (cfg->big_size > 0) {
        if (run_phase(&b, &big_phases[0]) != 0)
            goto out;
        drop_cache(&b);
        if (run_phase(&b, &big_phases[1]) != 0)
            goto out;
    }
    for (size_t i = 0; cfg->small_files > 0 && i < sizeof(small_phases) / sizeof(*small_phases);
         i++)
        if (run_phase(&b, &small_phases[i]) != 0)
            goto out;
    take_signal(&b, 0);
    if (b.signo != 0)
        goto out;
    if (cfg->json)
        rc = print_json(&b) == 0 ? 0 : 1;
    else {
        print_table(&b);
        rc = 0;
    }

out:
    if (b.failed)
        fprintf(stderr, "%s: %s %s\n", PROG, CMD, b.err);
    if (b.signo != 0)
        fprintf(stderr, "%s: %s: stopped by SIG%s\n", PROG, CMD, sigabbrev_np(b.signo));
    if (b.made_root) {
        if (cfg->keep)
            fprintf(stderr, "%s: %s: kept %s\n", PROG, CMD, b.root);
        else if (rm_tree(b.root) != 0)
            rc = 1;
    }
    for (unsigned k = 0; b.w != NULL && k < cfg->threads; k++)
        free(b.w[k].buf);
    free(b.w);
    pthread_mutex_destroy(&b.mu);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    while (sigtimedwait(&usr1, NULL, &zero) == SIGUSR1)
        ; /* a worker's wake-up main did not wait for: its default action would kill */
    if (b.signo != 0) {
        fflush(stdout);
        signal(b.signo, SIG_DFL);
        sigdelset(&old, b.signo);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        raise(b.signo);
        return 128 + b.signo;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
