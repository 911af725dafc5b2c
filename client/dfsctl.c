/* dfsctl, the dfs command line: the namespace and file data through libdfs (client/dfs.h), block
 * health through the masters' /v1/fs/blocks, cluster status and membership through the masters'
 * admin port (GET /status, POST /admin/...), and a benchmark of any local path
 * (client/dfsctl_bench.h). Exit codes: 0 success, 1 an operation failed, 2 a bad command line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/dfs.h"
#include "client/dfsctl_bench.h"
#include "client/fs_proto.h"
#include "client/master_conn.h"
#include "common/auth.h"
#include "common/errors.h"
#include "common/flags.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"

#define PROG           "dfsctl"
#define IO_CHUNK       (4u << 20)   /* bytes moved per read/write call of put, get and cat */
#define PROGRESS_MIN   (8ull << 20) /* files larger than this show a progress bar */
#define SYMLINK_HOPS   40           /* symlinks followed in one path, as Linux's ELOOP limit */
#define WANT_REPLICAS  DFS_DEFAULT_REPLICATION
#define DIR_PAGE       1024
#define BLOCKS_PAGE    1024
#define MAX_MASTERS    32
#define URL_MAX        300
#define MIN_BLOCK_SIZE (64ull << 10)
#define MAX_BLOCK_SIZE (1ull << 30)
#define MAX_LOPTS      16 /* long options of one subcommand */

/* Admin port paths and /status fields (docs/protocol.md, "Master peer port: admin"). */
#define ADMIN_STATUS   "/status"
#define ADMIN_TRANSFER "/admin/transfer-leader"
#define ADMIN_ADD      "/admin/add-master"
#define ADMIN_REMOVE   "/admin/remove-master"

struct ctl {
    const char *masters, *admin, *secret_file;
    struct cm_secret secret;
    bool has_secret, json, progress;
    long timeout_ms;
    uint32_t block_size;
    const char *cmd;      /* the subcommand, for error lines */
    bool opt[128];        /* the subcommand's flags given */
    const char *arg[128]; /* their values, for those that take one */
    struct dfs *fs;       /* opened on first use */
    struct cm_http_client *http;
    struct dfs_master_conn *mc;
};

/* ---- messages ---- */

static const char *errmsg(int err)
{
    switch (err) {
    case CM_E_UNAVAILABLE:
        return "no master could be reached";
    case CM_E_TIMEOUT:
        return "timed out waiting for the masters";
    default:
        return cm_strerror(err);
    }
}

/* "dfsctl: CMD WHAT: MESSAGE"; returns 1, the exit code of a failed operation. */
static int report(const struct ctl *c, const char *what, int err)
{
    if (err == CM_E_UNAVAILABLE && c->masters != NULL)
        fprintf(stderr, "%s: %s %s: %s (masters: %s)\n", PROG, c->cmd, what, errmsg(err),
                c->masters);
    else
        fprintf(stderr, "%s: %s %s: %s\n", PROG, c->cmd, what, errmsg(err));
    return 1;
}

/* The same for a local error in errno. */
static int report_sys(const struct ctl *c, const char *what)
{
    int e = errno;
    fprintf(stderr, "%s: %s %s: %s\n", PROG, c->cmd, what, strerror(e));
    return 1;
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", PROG);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '%s %s%s--help'.\n", PROG, cmd ? cmd : "", cmd ? " " : "");
    return 2;
}

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *human(uint64_t v, char *buf, size_t cap)
{
    static const char units[] = "BKMGTPE";
    double d = (double)v;
    int i = 0;
    while (d >= 1024 && i < 6) {
        d /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%" PRIu64 "B", v);
    else
        snprintf(buf, cap, "%.1f%c", d, units[i]);
    return buf;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static const char *type_name(uint32_t mode)
{
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "symlink";
    if (S_ISREG(mode))
        return "file";
    return "other";
}

static void mode_str(uint32_t m, char s[11])
{
    s[0] = S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : '-';
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        s[1 + i] = (m & (0400u >> i)) ? rwx[i] : '-';
    if (m & S_ISUID)
        s[3] = (m & 0100) ? 's' : 'S';
    if (m & S_ISGID)
        s[6] = (m & 0010) ? 's' : 'S';
    if (m & S_ISVTX)
        s[9] = (m & 0001) ? 't' : 'T';
    s[10] = 0;
}

static void time_str(int64_t ns, bool full, char *buf, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    if (!full) {
        strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
        return;
    }
    char a[32], z[8];
    strftime(a, sizeof(a), "%Y-%m-%d %H:%M:%S", &tm);
    strftime(z, sizeof(z), "%z", &tm);
    snprintf(buf, cap, "%s.%09ld %s", a, (long)(ns % 1000000000 + (ns < 0 ? 1000000000 : 0)), z);
}

static struct dfs_fh fh_of(const struct dfs_attr *a)
{
    return (struct dfs_fh){a->ino, a->gen};
}

static const struct dfs_fh root_fh = {DFS_ROOT_INO, DFS_ROOT_GEN};

/* ---- connections, opened on first use ---- */

static int need_fs(struct ctl *c)
{
    if (c->fs != NULL)
        return 0;
    if (c->masters == NULL || *c->masters == 0)
        return usage_error(c->cmd,
                           "%sno masters given: use --masters HOST:PORT,... or set "
                           "DFS_MASTERS",
                           "");
    struct dfs_options o = {
        .secret = c->has_secret ? &c->secret : NULL,
        .op_timeout_ms = c->timeout_ms,
        .call_timeout_ms = c->timeout_ms < DFS_MC_DEFAULT_CALL_TIMEOUT_MS ? c->timeout_ms : 0,
        .block_size = c->block_size,
    };
    int rc = dfs_open(c->masters, &o, &c->fs);
    if (rc == CM_E_INVAL)
        return usage_error(c->cmd, "--masters %s: not a list of HOST:PORT", c->masters);
    if (rc != 0)
        return report(c, "", rc);
    return 0;
}

static int need_http(struct ctl *c)
{
    if (c->http != NULL)
        return 0;
    struct cm_http_client_config cfg = {
        .connect_timeout_ms = c->timeout_ms < 2000 ? c->timeout_ms : 2000,
        .timeout_ms = c->timeout_ms,
        .secret = c->has_secret ? &c->secret : NULL,
    };
    int rc = cm_http_client_new(&cfg, &c->http);
    return rc != 0 ? report(c, "", rc) : 0;
}

static int need_mc(struct ctl *c)
{
    if (c->mc != NULL)
        return 0;
    struct dfs_master_conn_config cfg = {
        .masters = c->masters,
        .secret = c->has_secret ? &c->secret : NULL,
        .op_timeout_ms = c->timeout_ms,
        .call_timeout_ms = c->timeout_ms < DFS_MC_DEFAULT_CALL_TIMEOUT_MS ? c->timeout_ms : 0,
    };
    int rc = dfs_master_conn_new(&cfg, &c->mc);
    return rc != 0 ? report(c, "", rc) : 0;
}

/* ---- paths ---- */

/* Makes path absolute ("/" prepended to a relative one), single slashes, no trailing slash. */
static int norm_path(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 2)
        return CM_E_NAMETOOLONG;
    out[n++] = '/';
    for (const char *p = in; *p; p++) {
        if (*p == '/' && out[n - 1] == '/')
            continue;
        if (n + 1 >= cap)
            return CM_E_NAMETOOLONG;
        out[n++] = *p;
    }
    if (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = 0;
    return 0;
}

/* The last component of a normalized path ("" for "/"). */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

/* The local path's last component, ignoring trailing slashes, in buf. */
static const char *local_base(const char *path, char *buf, size_t cap)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/')
        s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), path + s);
    return buf;
}

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
    return n < 0 || (size_t)n >= cap ? CM_E_NAMETOOLONG : 0;
}

/* Walks path from the root: symlinks in the middle are followed, the last one when follow. */
static int walk(struct ctl *c, const char *path, bool follow, struct dfs_attr *out)
{
    struct dfs_attr cur, child;
    char *rest = strdup(path), *target = NULL;
    int hops = 0, rc;
    if (rest == NULL)
        return CM_E_NOMEM;
    if ((rc = dfs_getattr(c->fs, NULL, root_fh, &cur)) != 0)
        goto out;
    char *p = rest;
    for (;;) {
        while (*p == '/')
            p++;
        if (*p == 0)
            break;
        char *e = strchr(p, '/');
        char *after = e != NULL ? e + 1 : p + strlen(p);
        if (e != NULL)
            *e = 0;
        bool more = false;
        for (const char *q = after; *q; q++)
            if (*q != '/') {
                more = true;
                break;
            }
        if (!S_ISDIR(cur.mode)) {
            rc = CM_E_NOTDIR;
            goto out;
        }
        if (strlen(p) > DFS_NAME_MAX) {
            rc = CM_E_NAMETOOLONG;
            goto out;
        }
        if ((rc = dfs_lookup(c->fs, NULL, fh_of(&cur), p, &child)) != 0)
            goto out;
        if (S_ISLNK(child.mode) && (more || follow)) {
            if (++hops > SYMLINK_HOPS) {
                rc = CM_E_LOOP;
                goto out;
            }
            if ((rc = dfs_readlink(c->fs, NULL, fh_of(&child), &target)) != 0)
                goto out;
            size_t len = strlen(target) + strlen(after) + 2;
            char *next = malloc(len);
            if (next == NULL) {
                rc = CM_E_NOMEM;
                goto out;
            }
            snprintf(next, len, "%s/%s", target, after);
            if (target[0] == '/' && (rc = dfs_getattr(c->fs, NULL, root_fh, &cur)) != 0) {
                free(next);
                goto out;
            }
            free(target);
            target = NULL;
            free(rest);
            rest = p = next;
            continue;
        }
        cur = child;
        p = after;
    }
    *out = cur;
out:
    free(target);
    free(rest);
    return rc;
}

/* The directory that holds a normalized path's last component, and that component. */
static int walk_parent(struct ctl *c, const char *path, struct dfs_attr *parent, const char **name)
{
    char dir[PATH_MAX];
    const char *b = base_name(path);
    if (*b == 0 || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
        return CM_E_INVAL;
    size_t dl = (size_t)(b - path);
    snprintf(dir, sizeof(dir), "%.*s", (int)(dl > 1 ? dl - 1 : 1), path);
    int rc = walk(c, dir, true, parent);
    if (rc == 0 && !S_ISDIR(parent->mode))
        rc = CM_E_NOTDIR;
    *name = b;
    return rc;
}

/* ---- directory listing ---- */

struct ent {
    char *name;
    struct dfs_attr a;
};

static void ents_free(struct ent *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

static int ent_cmp(const void *x, const void *y)
{
    return strcmp(((const struct ent *)x)->name, ((const struct ent *)y)->name);
}

/* Every entry of directory fh but "." and "..", sorted by name. Free with ents_free. */
static int read_dir(struct ctl *c, struct dfs_fh fh, struct ent **out, size_t *nout)
{
    struct dfs_dirpage page = {0};
    struct ent *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t cookie = 0;
    int rc;
    for (;;) {
        if ((rc = dfs_readdir(c->fs, NULL, fh, cookie, DIR_PAGE, &page)) != 0)
            goto fail;
        for (size_t i = 0; i < page.n; i++) {
            const struct dfs_dirent *d = &page.entries[i];
            if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct ent *nv = realloc(v, nc * sizeof(*nv));
                if (nv == NULL) {
                    rc = CM_E_NOMEM;
                    goto fail;
                }
                v = nv;
                cap = nc;
            }
            if ((v[n].name = strdup(d->name)) == NULL) {
                rc = CM_E_NOMEM;
                goto fail;
            }
            v[n++].a = d->attr;
        }
        bool eof = page.eof || page.n == 0;
        cookie = page.cookie;
        dfs_dirpage_clear(&page);
        if (eof)
            break;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), ent_cmp);
    *out = v;
    *nout = n;
    return 0;
fail:
    dfs_dirpage_clear(&page);
    ents_free(v, n);
    return rc;
}

/* ---- progress bar (stderr, a terminal only) ---- */

struct progress {
    bool on;
    const char *label;
    uint64_t total, t0, last;
};

static void prog_start(const struct ctl *c, struct progress *p, const char *label, uint64_t total)
{
    p->on = c->progress && total > PROGRESS_MIN;
    p->label = label;
    p->total = total;
    p->t0 = p->last = now_ms();
}

static void prog_update(struct progress *p, uint64_t done, bool final)
{
    if (!p->on)
        return;
    uint64_t t = now_ms();
    if (!final && t - p->last < 200)
        return;
    p->last = t;
    double secs = (double)(t - p->t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char a[32], b[32], r[32], eta[32] = "--:--";
    if (rate > 0 && done < p->total) {
        uint64_t left = (uint64_t)((double)(p->total - done) / rate);
        snprintf(eta, sizeof(eta), "%" PRIu64 ":%02" PRIu64, left / 60, left % 60);
    } else if (done >= p->total) {
        snprintf(eta, sizeof(eta), "0:00");
    }
    unsigned pct = p->total ? (unsigned)(done * 100 / p->total) : 100;
    fprintf(stderr, "\r%s %3u%% %s/%s %s/s ETA %s\033[K", p->label, pct, human(done, a, sizeof(a)),
            human(p->total, b, sizeof(b)), human((uint64_t)rate, r, sizeof(r)), eta);
    if (final)
        fputc('\n', stderr);
}

/* ---- JSON output ---- */

static void add_i64_str(cJSON *o, const char *field, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    cJSON_AddStringToObject(o, field, buf);
}

static cJSON *attr_json(const char *path, const struct dfs_attr *a, const char *target)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "name", *base_name(path) ? base_name(path) : "/");
    cJSON_AddStringToObject(o, "type", type_name(a->mode));
    cm_json_add_u64(o, "mode", a->mode & 07777);
    cm_json_add_u64(o, "ino", a->ino);
    cm_json_add_u64(o, "gen", a->gen);
    cm_json_add_u64(o, "nlink", a->nlink);
    cm_json_add_u64(o, "uid", a->uid);
    cm_json_add_u64(o, "gid", a->gid);
    cm_json_add_u64(o, "size", a->size);
    add_i64_str(o, "atime_ns", a->atime_ns);
    add_i64_str(o, "mtime_ns", a->mtime_ns);
    add_i64_str(o, "ctime_ns", a->ctime_ns);
    if (target != NULL)
        cJSON_AddStringToObject(o, "target", target);
    return o;
}

static int print_json(const struct ctl *c, cJSON *v)
{
    char *s = NULL;
    int rc = v == NULL ? CM_E_NOMEM : cm_json_print(v, &s, NULL);
    cJSON_Delete(v);
    if (rc != 0)
        return report(c, "", rc);
    printf("%s\n", s);
    free(s);
    return 0;
}

/* ---- ls ---- */

struct ls_state {
    bool lng, rec;
    cJSON *arr; /* --json */
    bool first;
};

static void ls_line(struct ctl *c, struct ls_state *s, const char *path, const char *shown,
                    const struct dfs_attr *a)
{
    char *target = NULL;
    if (S_ISLNK(a->mode) && (s->lng || s->arr != NULL))
        dfs_readlink(c->fs, NULL, fh_of(a), &target);
    if (s->arr != NULL) {
        cJSON *o = attr_json(path, a, target);
        if (o != NULL)
            cJSON_AddItemToArray(s->arr, o);
    } else if (s->lng) {
        char m[11], t[32];
        mode_str(a->mode, m);
        time_str(a->mtime_ns, false, t, sizeof(t));
        printf("%s %3" PRIu32 " %5" PRIu32 " %5" PRIu32 " %12" PRIu64 " %s %s%s%s\n", m, a->nlink,
               a->uid, a->gid, a->size, t, shown, target ? " -> " : "", target ? target : "");
    } else {
        printf("%s\n", shown);
    }
    free(target);
}

static int ls_dir(struct ctl *c, struct ls_state *s, const char *path, const struct dfs_attr *d,
                  bool header)
{
    struct ent *v = NULL;
    size_t n = 0;
    int rc = read_dir(c, fh_of(d), &v, &n), bad = 0;
    char sub[PATH_MAX];
    if (rc != 0)
        return report(c, path, rc);
    if (header && s->arr == NULL) {
        printf("%s%s:\n", s->first ? "" : "\n", path);
        s->first = false;
    }
    for (size_t i = 0; i < n; i++) {
        if (join(sub, sizeof(sub), path, v[i].name) != 0) {
            bad |= report(c, v[i].name, CM_E_NAMETOOLONG);
            continue;
        }
        ls_line(c, s, sub, v[i].name, &v[i].a);
    }
    if (s->rec)
        for (size_t i = 0; i < n; i++)
            if (S_ISDIR(v[i].a.mode) && join(sub, sizeof(sub), path, v[i].name) == 0)
                bad |= ls_dir(c, s, sub, &v[i].a, true);
    ents_free(v, n);
    return bad;
}

static int cmd_ls(struct ctl *c, int argc, char **argv)
{
    struct ls_state s = {.lng = c->opt['l'], .rec = c->opt['R'], .first = true};
    char path[PATH_MAX];
    char *dflt[] = {"/"};
    int rc, bad = 0;
    if (argc == 0) {
        argc = 1;
        argv = dflt;
    }
    if (c->json && (s.arr = cJSON_CreateArray()) == NULL)
        return report(c, "", CM_E_NOMEM);
    for (int i = 0; i < argc; i++) {
        struct dfs_attr a;
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk(c, path, false, &a)) != 0 ||
            (S_ISLNK(a.mode) && !s.lng && (rc = walk(c, path, true, &a)) != 0)) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        if (S_ISDIR(a.mode))
            bad |= ls_dir(c, &s, path, &a, s.rec || argc > 1);
        else
            ls_line(c, &s, path, path, &a);
    }
    if (s.arr != NULL)
        bad |= print_json(c, s.arr);
    return bad;
}

/* ---- stat ---- */

static int cmd_stat(struct ctl *c, int argc, char **argv)
{
    char path[PATH_MAX];
    int rc, bad = 0;
    cJSON *arr = NULL;
    if (c->json && argc > 1 && (arr = cJSON_CreateArray()) == NULL)
        return report(c, "", CM_E_NOMEM);
    for (int i = 0; i < argc; i++) {
        struct dfs_attr a;
        char *target = NULL;
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk(c, path, false, &a)) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        if (S_ISLNK(a.mode) && (rc = dfs_readlink(c->fs, NULL, fh_of(&a), &target)) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        if (c->json) {
            cJSON *o = attr_json(path, &a, target);
            if (arr != NULL)
                cJSON_AddItemToArray(arr, o);
            else
                bad |= print_json(c, o);
        } else {
            char m[11], at[64], mt[64], ct[64];
            mode_str(a.mode, m);
            time_str(a.atime_ns, true, at, sizeof(at));
            time_str(a.mtime_ns, true, mt, sizeof(mt));
            time_str(a.ctime_ns, true, ct, sizeof(ct));
            printf("  File: %s%s%s\n", path, target ? " -> " : "", target ? target : "");
            printf("  Type: %s\n", type_name(a.mode));
            printf("  Size: %-12" PRIu64 " Inode: %-10" PRIu64 " Gen: %-6" PRIu64 " Links: %" PRIu32
                   "\n",
                   a.size, a.ino, a.gen, a.nlink);
            printf("Access: (%04" PRIo32 "/%s)  Uid: %" PRIu32 "  Gid: %" PRIu32 "\n",
                   a.mode & 07777, m, a.uid, a.gid);
            printf("Access: %s\nModify: %s\nChange: %s\n", at, mt, ct);
        }
        free(target);
    }
    if (arr != NULL)
        bad |= print_json(c, arr);
    return bad;
}

/* ---- mkdir ---- */

static int mkdir_p(struct ctl *c, const char *path)
{
    struct dfs_attr cur, child;
    char prefix[PATH_MAX] = "";
    size_t plen = 0;
    int rc = dfs_getattr(c->fs, NULL, root_fh, &cur);
    const char *p = path;
    while (rc == 0) {
        while (*p == '/')
            p++;
        if (*p == 0)
            break;
        size_t l = strcspn(p, "/");
        char name[DFS_NAME_MAX + 1];
        if (l > DFS_NAME_MAX)
            return CM_E_NAMETOOLONG;
        memcpy(name, p, l);
        name[l] = 0;
        plen += (size_t)snprintf(prefix + plen, sizeof(prefix) - plen, "/%s", name);
        p += l;
        rc = dfs_lookup(c->fs, NULL, fh_of(&cur), name, &child);
        if (rc == CM_E_NOENT) {
            rc = dfs_mkdir(c->fs, NULL, fh_of(&cur), name, 0755, &child);
            if (rc == CM_E_EXIST) /* made by someone else meanwhile */
                rc = dfs_lookup(c->fs, NULL, fh_of(&cur), name, &child);
        }
        if (rc == 0 && S_ISLNK(child.mode))
            rc = walk(c, prefix, true, &child);
        if (rc == 0 && !S_ISDIR(child.mode))
            rc = *p ? CM_E_NOTDIR : CM_E_EXIST;
        cur = child;
    }
    return rc;
}

static int cmd_mkdir(struct ctl *c, int argc, char **argv)
{
    char path[PATH_MAX];
    int rc, bad = 0;
    for (int i = 0; i < argc; i++) {
        struct dfs_attr parent;
        const char *name;
        if ((rc = norm_path(argv[i], path, sizeof(path))) == 0) {
            if (c->opt['p'])
                rc = mkdir_p(c, path);
            else if ((rc = walk_parent(c, path, &parent, &name)) == 0)
                rc = dfs_mkdir(c->fs, NULL, fh_of(&parent), name, 0755, NULL);
        }
        if (rc != 0)
            bad |= report(c, argv[i], rc);
    }
    return bad;
}

/* ---- put ---- */

/* Copies the local file (or stdin for "-") into name in parent, replacing what is there. The
 * bytes go to a temporary name in the same directory that is renamed over name once they are
 * committed, so others see the old file or the whole new one, never a part, and a failed upload
 * leaves the old file as it was (libdfs retries across failovers and pipeline failures). */
static int put_file(struct ctl *c, const char *local, struct dfs_fh parent, const char *name,
                    const char *shown)
{
    struct dfs_file *f = NULL;
    struct dfs_attr a;
    struct stat st;
    struct progress pr;
    char *buf = NULL, tmp[DFS_NAME_MAX + 1];
    bool made_tmp = false;
    uint64_t off = 0;
    int rc = 0, err = 0, fd = strcmp(local, "-") == 0 ? 0 : open(local, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = report_sys(c, local);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = report(c, local, CM_E_ISDIR);
        goto out;
    }
    if ((buf = malloc(IO_CHUNK)) == NULL) {
        rc = report(c, local, CM_E_NOMEM);
        goto out;
    }
    uint32_t mode = fd == 0 && !S_ISREG(st.st_mode) ? 0644 : (uint32_t)(st.st_mode & 07777);
    struct dfs_attr old;
    err = dfs_lookup(c->fs, NULL, parent, name, &old);
    if (err == 0 && !S_ISREG(old.mode))
        err = S_ISDIR(old.mode) ? CM_E_ISDIR : CM_E_EXIST;
    else if (err == CM_E_NOENT)
        err = 0;
    snprintf(tmp, sizeof(tmp), ".%.200s.dfsctl-%ld", name, (long)getpid());
    if (err == 0 &&
        (err = dfs_create(c->fs, NULL, parent, tmp, mode, DFS_CREATE_TRUNC, &a, NULL)) == 0) {
        made_tmp = true;
        err = dfs_file_open(c->fs, NULL, fh_of(&a), &f);
    }
    if (err != 0) {
        rc = report(c, shown, err);
        goto out;
    }
    prog_start(c, &pr, shown, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
    for (;;) {
        ssize_t n = read(fd, buf, IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = report_sys(c, local);
            goto out;
        }
        if (n == 0)
            break;
        if ((err = dfs_file_write(f, off, buf, (size_t)n)) != 0)
            break;
        off += (uint64_t)n;
        prog_update(&pr, off, false);
    }
    if (err == 0)
        err = dfs_file_flush(f, NULL);
    if (err == 0 && (err = dfs_rename(c->fs, NULL, parent, tmp, parent, name, 0)) == 0)
        made_tmp = false;
    if (err != 0) {
        rc = report(c, shown, err);
        goto out;
    }
    prog_update(&pr, off, true);
out:
    if (made_tmp)
        dfs_unlink(c->fs, NULL, parent, tmp);
    dfs_file_close(f);
    free(buf);
    if (fd > 0)
        close(fd);
    return rc;
}

static int put_symlink(struct ctl *c, const char *local, struct dfs_fh parent, const char *name,
                       const char *shown)
{
    char target[DFS_SYMLINK_MAX + 2];
    ssize_t n = readlink(local, target, sizeof(target) - 1);
    if (n < 0)
        return report_sys(c, local);
    target[n] = 0;
    int rc = dfs_symlink(c->fs, NULL, parent, name, target, NULL);
    if (rc == CM_E_EXIST) {
        struct dfs_attr old;
        if (dfs_lookup(c->fs, NULL, parent, name, &old) == 0 && S_ISLNK(old.mode) &&
            dfs_unlink(c->fs, NULL, parent, name) == 0)
            rc = dfs_symlink(c->fs, NULL, parent, name, target, NULL);
    }
    return rc != 0 ? report(c, shown, rc) : 0;
}

/* Copies the local directory tree into a directory name in parent (made when missing). */
static int put_tree(struct ctl *c, const char *local, struct dfs_fh parent, const char *name,
                    const char *shown)
{
    struct dfs_attr d;
    int rc = dfs_mkdir(c->fs, NULL, parent, name, 0755, &d), bad = 0;
    if (rc == CM_E_EXIST && (rc = dfs_lookup(c->fs, NULL, parent, name, &d)) == 0 &&
        !S_ISDIR(d.mode))
        rc = CM_E_NOTDIR;
    if (rc != 0)
        return report(c, shown, rc);
    DIR *dir = opendir(local);
    if (dir == NULL)
        return report_sys(c, local);
    struct dirent *e;
    char lp[PATH_MAX], dp[PATH_MAX];
    while ((errno = 0, e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (snprintf(lp, sizeof(lp), "%s/%s", local, e->d_name) >= (int)sizeof(lp) ||
            join(dp, sizeof(dp), shown, e->d_name) != 0) {
            bad |= report(c, e->d_name, CM_E_NAMETOOLONG);
            continue;
        }
        if (lstat(lp, &st) != 0) {
            bad |= report_sys(c, lp);
            continue;
        }
        if (S_ISDIR(st.st_mode))
            bad |= put_tree(c, lp, fh_of(&d), e->d_name, dp);
        else if (S_ISREG(st.st_mode))
            bad |= put_file(c, lp, fh_of(&d), e->d_name, dp);
        else if (S_ISLNK(st.st_mode))
            bad |= put_symlink(c, lp, fh_of(&d), e->d_name, dp);
        else
            fprintf(stderr, "%s: put %s: skipped (not a file, directory or symlink)\n", PROG, lp);
    }
    if (errno != 0)
        bad |= report_sys(c, local);
    closedir(dir);
    return bad;
}

static int cmd_put(struct ctl *c, int argc, char **argv)
{
    char dst[PATH_MAX], path[PATH_MAX], bn[NAME_MAX + 1];
    struct dfs_attr d, parent;
    const char *name;
    int rc, bad = 0;
    if ((rc = norm_path(argv[argc - 1], dst, sizeof(dst))) != 0)
        return report(c, argv[argc - 1], rc);
    rc = walk(c, dst, true, &d);
    bool into = rc == 0 && S_ISDIR(d.mode);
    if (rc != 0 && rc != CM_E_NOENT)
        return report(c, dst, rc);
    if (argc > 2 && !into)
        return report(c, dst, rc == 0 ? CM_E_NOTDIR : rc);
    for (int i = 0; i < argc - 1; i++) {
        const char *src = argv[i];
        struct stat st;
        if (strcmp(src, "-") != 0 && stat(src, &st) != 0) {
            bad |= report_sys(c, src);
            continue;
        }
        bool is_dir = strcmp(src, "-") != 0 && S_ISDIR(st.st_mode);
        if (is_dir && !c->opt['r']) {
            fprintf(stderr, "%s: put %s: is a directory (use put -r)\n", PROG, src);
            bad = 1;
            continue;
        }
        if (into) {
            local_base(src, bn, sizeof(bn));
            if (strcmp(src, "-") == 0 || strcmp(bn, ".") == 0 || strcmp(bn, "..") == 0 ||
                *bn == 0) {
                bad |= report(c, src, CM_E_INVAL);
                continue;
            }
            if ((rc = join(path, sizeof(path), dst, bn)) != 0) {
                bad |= report(c, src, rc);
                continue;
            }
            parent = d;
            name = base_name(path);
        } else {
            snprintf(path, sizeof(path), "%s", dst);
            if ((rc = walk_parent(c, path, &parent, &name)) != 0) {
                bad |= report(c, path, rc);
                continue;
            }
        }
        if (is_dir)
            bad |= put_tree(c, src, fh_of(&parent), name, path);
        else
            bad |= put_file(c, src, fh_of(&parent), name, path);
    }
    return bad;
}

/* ---- get and cat ---- */

/* Copies the bytes of file a to fd. */
static int copy_out(struct ctl *c, const struct dfs_attr *a, int fd, const char *shown,
                    const char *local)
{
    struct dfs_file *f = NULL;
    struct progress pr;
    uint64_t off = 0;
    size_t got;
    char *buf = malloc(IO_CHUNK);
    int rc = 0, err;
    if (buf == NULL)
        return report(c, shown, CM_E_NOMEM);
    if ((err = dfs_file_open(c->fs, NULL, fh_of(a), &f)) != 0) {
        rc = report(c, shown, err);
        goto out;
    }
    prog_start(c, &pr, shown, a->size);
    for (;;) {
        if ((err = dfs_file_read(f, off, IO_CHUNK, buf, &got)) != 0) {
            rc = report(c, shown, err);
            goto out;
        }
        if (got > 0 && write_all(fd, buf, got) != 0) {
            rc = report_sys(c, local);
            goto out;
        }
        off += got;
        prog_update(&pr, off, false);
        if (got < IO_CHUNK)
            break;
    }
    prog_update(&pr, off, true);
out:
    dfs_file_close(f);
    free(buf);
    return rc;
}

static int get_file(struct ctl *c, const struct dfs_attr *a, const char *shown, const char *local)
{
    if (strcmp(local, "-") == 0)
        return copy_out(c, a, 1, shown, "stdout");
    int fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)(a->mode & 0777));
    if (fd < 0)
        return report_sys(c, local);
    int rc = copy_out(c, a, fd, shown, local);
    if (close(fd) != 0 && rc == 0)
        rc = report_sys(c, local);
    if (rc != 0)
        unlink(local);
    return rc;
}

static int get_tree(struct ctl *c, const struct dfs_attr *d, const char *shown, const char *local)
{
    struct ent *v = NULL;
    size_t n = 0;
    char lp[PATH_MAX], dp[PATH_MAX];
    int rc, bad = 0;
    if (mkdir(local, (mode_t)(d->mode & 0777) | 0700) != 0) {
        struct stat st;
        if (errno != EEXIST || stat(local, &st) != 0 || !S_ISDIR(st.st_mode))
            return report_sys(c, local);
    }
    if ((rc = read_dir(c, fh_of(d), &v, &n)) != 0)
        return report(c, shown, rc);
    for (size_t i = 0; i < n; i++) {
        const struct dfs_attr *a = &v[i].a;
        if (snprintf(lp, sizeof(lp), "%s/%s", local, v[i].name) >= (int)sizeof(lp) ||
            join(dp, sizeof(dp), shown, v[i].name) != 0) {
            bad |= report(c, v[i].name, CM_E_NAMETOOLONG);
            continue;
        }
        if (S_ISDIR(a->mode)) {
            bad |= get_tree(c, a, dp, lp);
        } else if (S_ISREG(a->mode)) {
            bad |= get_file(c, a, dp, lp);
        } else if (S_ISLNK(a->mode)) {
            char *target = NULL;
            if ((rc = dfs_readlink(c->fs, NULL, fh_of(a), &target)) != 0) {
                bad |= report(c, dp, rc);
                continue;
            }
            unlink(lp);
            if (symlink(target, lp) != 0)
                bad |= report_sys(c, lp);
            free(target);
        }
    }
    ents_free(v, n);
    return bad;
}

static int cmd_get(struct ctl *c, int argc, char **argv)
{
    const char *local = argv[argc - 1];
    char src[PATH_MAX], lp[PATH_MAX], bn[NAME_MAX + 1];
    struct stat st;
    bool into = strcmp(local, "-") != 0 && stat(local, &st) == 0 && S_ISDIR(st.st_mode);
    int rc, bad = 0;
    if (argc > 2 && !into) {
        fprintf(stderr, "%s: get %s: not a local directory\n", PROG, local);
        return 1;
    }
    for (int i = 0; i < argc - 1; i++) {
        struct dfs_attr a;
        if ((rc = norm_path(argv[i], src, sizeof(src))) != 0 ||
            (rc = walk(c, src, true, &a)) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        if (into) {
            local_base(src, bn, sizeof(bn));
            snprintf(lp, sizeof(lp), "%s/%s", local, *bn ? bn : ".");
        } else {
            snprintf(lp, sizeof(lp), "%s", local);
        }
        if (S_ISDIR(a.mode)) {
            if (strcmp(local, "-") == 0)
                bad |= report(c, src, CM_E_ISDIR);
            else
                bad |= get_tree(c, &a, src, lp);
        } else {
            bad |= get_file(c, &a, src, lp);
        }
    }
    return bad;
}

static int cmd_cat(struct ctl *c, int argc, char **argv)
{
    char path[PATH_MAX];
    int rc, bad = 0;
    for (int i = 0; i < argc; i++) {
        struct dfs_attr a;
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk(c, path, true, &a)) != 0 || (rc = S_ISDIR(a.mode) ? CM_E_ISDIR : 0) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        bool saved = c->progress;
        c->progress = false;
        bad |= copy_out(c, &a, 1, path, "stdout");
        c->progress = saved;
    }
    return bad;
}

/* ---- rm, mv, ln ---- */

/* Removes everything inside directory d. */
static int rm_tree(struct ctl *c, const struct dfs_attr *d, const char *shown)
{
    struct dfs_dirpage page = {0};
    char sub[PATH_MAX];
    int rc;
    for (;;) {
        /* Removed entries vanish, so every page is read from the start. */
        if ((rc = dfs_readdir(c->fs, NULL, fh_of(d), 0, DIR_PAGE, &page)) != 0)
            return report(c, shown, rc);
        for (size_t i = 0; i < page.n; i++) {
            const struct dfs_dirent *e = &page.entries[i];
            if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0)
                continue;
            if (join(sub, sizeof(sub), shown, e->name) != 0)
                snprintf(sub, sizeof(sub), "%s", e->name);
            if (S_ISDIR(e->attr.mode)) {
                if (rm_tree(c, &e->attr, sub) != 0) {
                    dfs_dirpage_clear(&page);
                    return 1;
                }
                rc = dfs_rmdir(c->fs, NULL, fh_of(d), e->name);
            } else {
                rc = dfs_unlink(c->fs, NULL, fh_of(d), e->name);
            }
            if (rc != 0 && rc != CM_E_NOENT) {
                dfs_dirpage_clear(&page);
                return report(c, sub, rc);
            }
        }
        bool eof = page.eof;
        dfs_dirpage_clear(&page);
        if (eof)
            return 0;
    }
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
    char path[PATH_MAX];
    int rc, bad = 0;
    for (int i = 0; i < argc; i++) {
        struct dfs_attr parent, a;
        const char *name;
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk_parent(c, path, &parent, &name)) != 0 ||
            (rc = dfs_lookup(c->fs, NULL, fh_of(&parent), name, &a)) != 0) {
            if (!(rc == CM_E_NOENT && c->opt['f']))
                bad |= report(c, argv[i], rc);
            continue;
        }
        if (S_ISDIR(a.mode)) {
            if (!c->opt['r']) {
                fprintf(stderr, "%s: rm %s: is a directory (use rm -r)\n", PROG, argv[i]);
                bad = 1;
                continue;
            }
            if (rm_tree(c, &a, path) != 0) {
                bad = 1;
                continue;
            }
            rc = dfs_rmdir(c->fs, NULL, fh_of(&parent), name);
        } else {
            rc = dfs_unlink(c->fs, NULL, fh_of(&parent), name);
        }
        if (rc != 0)
            bad |= report(c, argv[i], rc);
    }
    return bad;
}

/* Where a new name goes for mv and ln: into dst when it is a directory (under the name given),
 * else dst itself. */
static int dest_of(struct ctl *c, const char *dst, const char *name, struct dfs_attr *parent,
                   const char **dname)
{
    struct dfs_attr d;
    int rc = walk(c, dst, true, &d);
    if (rc == 0 && S_ISDIR(d.mode)) {
        *parent = d;
        *dname = name;
        return 0;
    }
    if (rc != 0 && rc != CM_E_NOENT)
        return rc;
    return walk_parent(c, dst, parent, dname);
}

static int cmd_mv(struct ctl *c, int argc, char **argv)
{
    char src[PATH_MAX], dst[PATH_MAX];
    struct dfs_attr sp, dp;
    const char *sname, *dname;
    int rc;
    (void)argc;
    if ((rc = norm_path(argv[0], src, sizeof(src))) != 0 ||
        (rc = walk_parent(c, src, &sp, &sname)) != 0)
        return report(c, argv[0], rc);
    if ((rc = norm_path(argv[1], dst, sizeof(dst))) != 0 ||
        (rc = dest_of(c, dst, sname, &dp, &dname)) != 0)
        return report(c, argv[1], rc);
    if ((rc = dfs_rename(c->fs, NULL, fh_of(&sp), sname, fh_of(&dp), dname, 0)) != 0) {
        char what[2 * PATH_MAX + 8];
        snprintf(what, sizeof(what), "%s -> %s", src, dst);
        return report(c, what, rc);
    }
    return 0;
}

static int cmd_ln(struct ctl *c, int argc, char **argv)
{
    char target[PATH_MAX], link[PATH_MAX], bn[NAME_MAX + 1];
    struct dfs_attr parent, a;
    const char *name;
    int rc;
    (void)argc;
    if ((rc = norm_path(argv[1], link, sizeof(link))) != 0 ||
        (rc = dest_of(c, link, local_base(argv[0], bn, sizeof(bn)), &parent, &name)) != 0)
        return report(c, argv[1], rc);
    if (c->opt['s']) {
        if (strlen(argv[0]) > DFS_SYMLINK_MAX)
            return report(c, argv[0], CM_E_NAMETOOLONG);
        rc = dfs_symlink(c->fs, NULL, fh_of(&parent), name, argv[0], NULL);
    } else {
        if ((rc = norm_path(argv[0], target, sizeof(target))) != 0 ||
            (rc = walk(c, target, false, &a)) != 0)
            return report(c, argv[0], rc);
        rc = dfs_link(c->fs, NULL, fh_of(&a), fh_of(&parent), name, NULL);
    }
    return rc != 0 ? report(c, argv[1], rc) : 0;
}

/* ---- du, df ---- */

struct du_sum {
    uint64_t bytes, files, dirs;
};

static int du_walk(struct ctl *c, const struct dfs_attr *d, const char *path, bool print,
                   struct du_sum *sum)
{
    struct ent *v = NULL;
    size_t n = 0;
    char sub[PATH_MAX], h[32];
    int rc = read_dir(c, fh_of(d), &v, &n), bad = 0;
    struct du_sum mine = {0, 0, 1};
    if (rc != 0)
        return report(c, path, rc);
    for (size_t i = 0; i < n; i++) {
        if (S_ISDIR(v[i].a.mode)) {
            if (join(sub, sizeof(sub), path, v[i].name) != 0) {
                bad |= report(c, v[i].name, CM_E_NAMETOOLONG);
                continue;
            }
            bad |= du_walk(c, &v[i].a, sub, print, &mine);
        } else if (S_ISREG(v[i].a.mode)) {
            mine.bytes += v[i].a.size;
            mine.files++;
        }
    }
    ents_free(v, n);
    if (print) {
        if (c->opt['h'])
            printf("%s\t%s\n", human(mine.bytes, h, sizeof(h)), path);
        else
            printf("%" PRIu64 "\t%s\n", mine.bytes, path);
    }
    sum->bytes += mine.bytes;
    sum->files += mine.files;
    sum->dirs += mine.dirs;
    return bad;
}

static int cmd_du(struct ctl *c, int argc, char **argv)
{
    char path[PATH_MAX], h[32];
    int rc, bad = 0;
    for (int i = 0; i < argc; i++) {
        struct dfs_attr a;
        struct du_sum sum = {0};
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk(c, path, true, &a)) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        if (S_ISDIR(a.mode)) {
            bad |= du_walk(c, &a, path, !c->opt['s'], &sum);
            if (c->opt['s']) {
                if (c->opt['h'])
                    printf("%s\t%s\n", human(sum.bytes, h, sizeof(h)), path);
                else
                    printf("%" PRIu64 "\t%s\n", sum.bytes, path);
            }
        } else if (c->opt['h']) {
            printf("%s\t%s\n", human(S_ISREG(a.mode) ? a.size : 0, h, sizeof(h)), path);
        } else {
            printf("%" PRIu64 "\t%s\n", S_ISREG(a.mode) ? a.size : 0, path);
        }
    }
    return bad;
}

static int cmd_df(struct ctl *c, int argc, char **argv)
{
    struct dfs_statfs s;
    (void)argc;
    (void)argv;
    int rc = dfs_statfs(c->fs, &s);
    if (rc != 0)
        return report(c, "", rc);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        if (o != NULL) {
            cm_json_add_u64(o, "capacity_bytes", s.capacity_bytes);
            cm_json_add_u64(o, "used_bytes", s.used_bytes);
            cm_json_add_u64(o, "free_bytes", s.free_bytes);
            cm_json_add_u64(o, "chunkservers_live", s.chunkservers_live);
            cm_json_add_u64(o, "inodes", s.inodes);
            cm_json_add_u64(o, "files", s.files);
            cm_json_add_u64(o, "dirs", s.dirs);
            cm_json_add_u64(o, "symlinks", s.symlinks);
            cm_json_add_u64(o, "max_inodes", s.max_inodes);
            cm_json_add_u64(o, "blocks_allocated", s.blocks_allocated);
        }
        return print_json(c, o);
    }
    char a[32], b[32], f[32];
    unsigned pct = s.capacity_bytes
                       ? (unsigned)((s.used_bytes * 100 + s.capacity_bytes - 1) / s.capacity_bytes)
                       : 0;
    printf("%-12s %-12s %-12s %-5s %s\n", "Size", "Used", "Avail", "Use%", "Chunkservers");
    if (c->opt['h'])
        printf("%-12s %-12s %-12s %3u%%  %" PRIu64 "\n", human(s.capacity_bytes, a, sizeof(a)),
               human(s.used_bytes, b, sizeof(b)), human(s.free_bytes, f, sizeof(f)), pct,
               s.chunkservers_live);
    else
        printf("%-12" PRIu64 " %-12" PRIu64 " %-12" PRIu64 " %3u%%  %" PRIu64 "\n",
               s.capacity_bytes, s.used_bytes, s.free_bytes, pct, s.chunkservers_live);
    printf("Inodes: %" PRIu64 " of %" PRIu64 " (files %" PRIu64 ", directories %" PRIu64
           ", symlinks %" PRIu64 "); blocks allocated: %" PRIu64 "\n",
           s.inodes, s.max_inodes, s.files, s.dirs, s.symlinks, s.blocks_allocated);
    return 0;
}

/* ---- the masters' admin port ---- */

struct mnode {
    uint64_t id;       /* 0 until its status answered */
    char url[URL_MAX]; /* http://host:port */
    cJSON *st;         /* its /status, or NULL */
    int err;           /* why not */
};

struct cview {
    struct mnode m[MAX_MASTERS];
    size_t n;
    int leader; /* index into m, or -1 */
};

static void cview_free(struct cview *v)
{
    for (size_t i = 0; i < v->n; i++)
        cJSON_Delete(v->m[i].st);
    v->n = 0;
}

static uint64_t jget_u64(const cJSON *o, const char *f)
{
    uint64_t v = 0;
    cm_json_get_u64(o, f, &v);
    return v;
}

static const char *jget_str(const cJSON *o, const char *f)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, f);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static void fetch_status(struct ctl *c, struct mnode *m)
{
    char url[URL_MAX + 16];
    struct cm_http_response r = {0};
    snprintf(url, sizeof(url), "%s" ADMIN_STATUS, m->url);
    struct cm_http_call call = {
        .method = "GET", .url = url, .timeout_ms = c->timeout_ms < 5000 ? c->timeout_ms : 5000};
    m->err = cm_http_call(c->http, &call, &r);
    if (m->err == 0 && !cJSON_IsObject(r.json))
        m->err = CM_E_PROTO;
    if (m->err == 0) {
        m->st = r.json;
        r.json = NULL;
        m->id = jget_u64(m->st, "id");
    }
    cm_http_response_clear(&r);
}

/* url as "http://host:port" without trailing slashes, into out. */
static void url_norm(const char *url, char *out, size_t cap)
{
    size_t l = strlen(url);
    while (l > 0 && url[l - 1] == '/')
        l--;
    snprintf(out, cap, "%s%.*s", strncmp(url, "http://", 7) == 0 ? "" : "http://", (int)l, url);
}

/* Adds the master at url (id 0: not known yet) unless it is there; a known id is noted on an
 * entry of the same URL, so that an unreachable master given by URL shows its id. */
static struct mnode *cview_add(struct cview *v, uint64_t id, const char *url)
{
    char norm[URL_MAX];
    url_norm(url, norm, sizeof(norm));
    for (size_t i = 0; i < v->n; i++) {
        if (id != 0 && v->m[i].id == id)
            return NULL;
        if (strcmp(v->m[i].url, norm) == 0) {
            if (v->m[i].id == 0 && v->m[i].st == NULL)
                v->m[i].id = id;
            return NULL;
        }
    }
    if (v->n == MAX_MASTERS)
        return NULL;
    struct mnode *m = &v->m[v->n++];
    memset(m, 0, sizeof(*m));
    m->id = id;
    memcpy(m->url, norm, sizeof(m->url));
    return m;
}

/* Every master the admin URLs lead to (the given ones and their peers), each's /status. */
static int cview_collect(struct ctl *c, struct cview *v)
{
    int rc;
    v->n = 0;
    v->leader = -1;
    if (c->admin == NULL || *c->admin == 0)
        return usage_error(c->cmd,
                           "%sno admin URL given: use --admin http://HOST:PORT,... (a "
                           "master's --http-port) or set DFS_ADMIN",
                           "");
    if ((rc = need_http(c)) != 0)
        return rc;
    char *list = strdup(c->admin), *save = NULL;
    if (list == NULL)
        return report(c, "", CM_E_NOMEM);
    for (char *u = strtok_r(list, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save))
        if (*u)
            cview_add(v, 0, u);
    free(list);
    for (size_t i = 0; i < v->n; i++) {
        struct mnode *m = &v->m[i];
        if (m->st == NULL && m->err == 0)
            fetch_status(c, m);
        if (m->st == NULL)
            continue;
        /* a given URL naming a master already seen under its peer URL */
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            if (v->m[k].id == m->id && v->m[k].st != NULL)
                dup = true;
        if (dup) {
            cJSON_Delete(m->st);
            memmove(m, m + 1, (v->n - i - 1) * sizeof(*m));
            v->n--;
            i--;
            continue;
        }
        const cJSON *peers = cJSON_GetObjectItemCaseSensitive(m->st, "peers"), *p;
        cJSON_ArrayForEach(p, peers)
        {
            const char *url = jget_str(p, "url");
            uint64_t id = jget_u64(p, "id");
            if (url != NULL && id != 0)
                cview_add(v, id, url);
        }
    }
    uint64_t best = 0;
    for (size_t i = 0; i < v->n; i++) {
        const char *role = v->m[i].st ? jget_str(v->m[i].st, "role") : NULL;
        uint64_t term = v->m[i].st ? jget_u64(v->m[i].st, "term") : 0;
        if (role != NULL && strcmp(role, "LEADER") == 0 && (v->leader < 0 || term > best)) {
            v->leader = (int)i;
            best = term;
        }
    }
    for (size_t i = 0; i < v->n; i++)
        if (v->m[i].st != NULL)
            return 0;
    return report(c, c->admin, v->m[0].err ? v->m[0].err : CM_E_UNAVAILABLE);
}

/* A follower's lag as the leader reports it. */
static bool lag_of(const struct cview *v, uint64_t id, uint64_t *lag)
{
    if (v->leader < 0)
        return false;
    const struct mnode *l = &v->m[v->leader];
    if (l->id == id) {
        *lag = 0;
        return true;
    }
    const cJSON *peers = cJSON_GetObjectItemCaseSensitive(l->st, "peers"), *p;
    cJSON_ArrayForEach(p, peers)
    {
        if (jget_u64(p, "id") == id && cJSON_GetObjectItemCaseSensitive(p, "lag") != NULL) {
            *lag = jget_u64(p, "lag");
            return true;
        }
    }
    return false;
}

static int cmd_cluster(struct ctl *c, int argc, char **argv)
{
    struct cview v;
    if (argc != 1 || strcmp(argv[0], "status") != 0)
        return usage_error("cluster", "unknown cluster command '%s'", argc ? argv[0] : "");
    int rc = cview_collect(c, &v);
    if (rc != 0)
        return rc;
    const cJSON *css =
        v.leader >= 0 ? cJSON_GetObjectItemCaseSensitive(v.m[v.leader].st, "chunkservers") : NULL;
    const cJSON *x;
    if (c->json) {
        cJSON *o = cJSON_CreateObject(), *ms = cJSON_AddArrayToObject(o, "masters");
        cm_json_add_u64(o, "leader", v.leader >= 0 ? v.m[v.leader].id : 0);
        for (size_t i = 0; ms != NULL && i < v.n; i++) {
            const struct mnode *m = &v.m[i];
            cJSON *e = cJSON_CreateObject();
            uint64_t lag;
            if (e == NULL || !cJSON_AddItemToArray(ms, e))
                break;
            cm_json_add_u64(e, "id", m->id);
            cJSON_AddStringToObject(e, "url", m->url);
            cJSON_AddBoolToObject(e, "reachable", m->st != NULL);
            if (m->st != NULL) {
                const char *role = jget_str(m->st, "role");
                cJSON_AddStringToObject(e, "role", role ? role : "UNKNOWN");
                cm_json_add_u64(e, "term", jget_u64(m->st, "term"));
                cm_json_add_u64(e, "commit", jget_u64(m->st, "commit_index"));
                const char *adv = jget_str(m->st, "advertise_addr");
                if (adv != NULL)
                    cJSON_AddStringToObject(e, "advertise_addr", adv);
            } else {
                cJSON_AddStringToObject(e, "role", "UNREACHABLE");
                cJSON_AddStringToObject(e, "error", cm_errname(m->err));
            }
            if (lag_of(&v, m->id, &lag))
                cm_json_add_u64(e, "lag", lag);
        }
        cJSON *cs = css != NULL ? cJSON_Duplicate(css, 1) : cJSON_CreateArray();
        if (o != NULL && cs != NULL)
            cJSON_AddItemToObject(o, "chunkservers", cs);
        else
            cJSON_Delete(cs);
        rc = print_json(c, o);
    } else {
        printf("MASTERS\n%-4s %-28s %-13s %8s %10s %8s\n", "ID", "URL", "ROLE", "TERM", "COMMIT",
               "LAG");
        for (size_t i = 0; i < v.n; i++) {
            const struct mnode *m = &v.m[i];
            char id[24] = "?", lag_s[24] = "-";
            uint64_t lag;
            if (m->id != 0)
                snprintf(id, sizeof(id), "%" PRIu64, m->id);
            if (lag_of(&v, m->id, &lag))
                snprintf(lag_s, sizeof(lag_s), "%" PRIu64, lag);
            if (m->st != NULL) {
                const char *role = jget_str(m->st, "role");
                printf("%-4s %-28s %-13s %8" PRIu64 " %10" PRIu64 " %8s\n", id, m->url,
                       role ? role : "UNKNOWN", jget_u64(m->st, "term"),
                       jget_u64(m->st, "commit_index"), lag_s);
            } else {
                printf("%-4s %-28s %-13s %8s %10s %8s  (%s)\n", id, m->url, "UNREACHABLE", "-", "-",
                       lag_s, errmsg(m->err));
            }
        }
        printf("\nCHUNKSERVERS\n%-4s %-24s %-6s %10s %10s %10s\n", "ID", "ADDR", "ALIVE",
               "CAPACITY", "USED", "BLOCKS");
        cJSON_ArrayForEach(x, css)
        {
            char cap[32], used[32];
            const char *addr = jget_str(x, "addr");
            printf("%-4" PRIu64 " %-24s %-6s %10s %10s %10" PRIu64 "\n", jget_u64(x, "id"),
                   addr ? addr : "?",
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive")) ? "yes" : "no",
                   human(jget_u64(x, "capacity"), cap, sizeof(cap)),
                   human(jget_u64(x, "used"), used, sizeof(used)), jget_u64(x, "blocks"));
        }
        if (v.leader < 0)
            printf("\n(no leader: chunkservers are known to the leader only)\n");
    }
    if (v.leader < 0 && rc == 0) {
        fprintf(stderr, "%s: cluster status: no master is the leader\n", PROG);
        rc = 1;
    }
    cview_free(&v);
    return rc;
}

/* POSTs body to path at the leading master, following NOT_LEADER to the leader's URL. */
static int admin_post(struct ctl *c, const char *what, const char *path, const cJSON *body)
{
    struct cview v;
    struct cm_http_response r = {0};
    char url[URL_MAX + 32], lead[URL_MAX] = "";
    uint64_t deadline = now_ms() + (uint64_t)c->timeout_ms;
    int rc = cview_collect(c, &v);
    if (rc != 0)
        return rc;
    if (v.leader >= 0)
        snprintf(lead, sizeof(lead), "%s", v.m[v.leader].url);
    cview_free(&v);
    if (*lead == 0) {
        fprintf(stderr, "%s: admin %s: no master is the leader\n", PROG, what);
        return 1;
    }
    for (int tries = 0;; tries++) {
        snprintf(url, sizeof(url), "%s%s", lead, path);
        long left = (long)(deadline > now_ms() ? deadline - now_ms() : 1);
        struct cm_http_call call = {.method = "POST", .url = url, .json = body, .timeout_ms = left};
        rc = cm_http_call(c->http, &call, &r);
        const char *hint = rc == CM_E_NOT_LEADER ? jget_str(r.error, "leader_url") : NULL;
        if (hint != NULL && tries < 5 && now_ms() < deadline) {
            snprintf(lead, sizeof(lead), "%s", hint);
            cm_http_response_clear(&r);
            continue;
        }
        const char *msg = r.error != NULL ? jget_str(r.error, "message") : NULL;
        if (rc != 0 && msg != NULL && strcmp(msg, cm_strerror(rc)) != 0)
            fprintf(stderr, "%s: admin %s: %s (%s)\n", PROG, what, cm_strerror(rc), msg);
        else if (rc != 0)
            report(c, what, rc);
        cm_http_response_clear(&r);
        return rc != 0 ? 1 : 0;
    }
}

static int cmd_admin(struct ctl *c, int argc, char **argv)
{
    uint64_t id = 0;
    cJSON *body = cJSON_CreateObject();
    int rc;
    if (body == NULL)
        return report(c, "", CM_E_NOMEM);
    if (argc < 1)
        rc = usage_error("admin", "%smissing admin command", "");
    else if (strcmp(argv[0], "transfer-leader") == 0 && argc <= 2) {
        if (argc == 2 && (cm_flag_u64(argv[1], 0, UINT64_MAX, &id) != 0 || id == 0))
            rc = usage_error("admin", "bad master id '%s'", argv[1]);
        else {
            if (id != 0)
                cm_json_add_u64(body, "target", id);
            rc = admin_post(c, argv[0], ADMIN_TRANSFER, body);
            if (rc == 0) {
                struct cview v;
                if (cview_collect(c, &v) == 0 && v.leader >= 0)
                    printf("leader is now master %" PRIu64 " (%s)\n", v.m[v.leader].id,
                           v.m[v.leader].url);
                cview_free(&v);
            }
        }
    } else if (strcmp(argv[0], "add-master") == 0 && argc == 3) {
        if (cm_flag_u64(argv[1], 0, UINT64_MAX, &id) != 0 || id == 0)
            rc = usage_error("admin", "bad master id '%s'", argv[1]);
        else {
            cm_json_add_u64(body, "id", id);
            cJSON_AddStringToObject(body, "url", argv[2]);
            if ((rc = admin_post(c, argv[0], ADMIN_ADD, body)) == 0)
                printf("master %" PRIu64 " added as a non-voter; the leader promotes it once it "
                       "has caught up\n",
                       id);
        }
    } else if (strcmp(argv[0], "remove-master") == 0 && argc == 2) {
        if (cm_flag_u64(argv[1], 0, UINT64_MAX, &id) != 0 || id == 0)
            rc = usage_error("admin", "bad master id '%s'", argv[1]);
        else {
            cm_json_add_u64(body, "id", id);
            if ((rc = admin_post(c, argv[0], ADMIN_REMOVE, body)) == 0)
                printf("master %" PRIu64 " removed\n", id);
        }
    } else {
        rc = usage_error("admin", "bad admin command '%s'", argv[0]);
    }
    cJSON_Delete(body);
    return rc;
}

/* ---- fsck ---- */

struct fsck {
    bool *alive; /* by chunkserver id, from the leader's /status; NULL: unknown */
    size_t nalive;
    uint64_t files, dirs, blocks, under, missing, bytes;
};

static int fsck_file(struct ctl *c, struct fsck *k, const struct dfs_attr *a, const char *path)
{
    uint64_t off = 0, size = a->size, nblocks = 0, under = 0, missing = 0;
    int rc = 0;
    k->files++;
    k->bytes += a->size;
    while (off < size) {
        cJSON *req = cJSON_CreateObject(), *ans = NULL;
        if (req == NULL)
            return report(c, path, CM_E_NOMEM);
        cm_json_add_u64(req, FSF_INO, a->ino);
        cm_json_add_u64(req, FSF_GEN, a->gen);
        cm_json_add_u64(req, FSF_OFF, off);
        cm_json_add_u64(req, FSF_LEN, size - off);
        cm_json_add_u64(req, FSF_MAX, BLOCKS_PAGE);
        rc = dfs_master_conn_post(c->mc, FSP_BLOCKS, req, &ans);
        cJSON_Delete(req);
        const cJSON *exts, *e;
        if (rc == 0 && cm_json_get_array(ans, FSF_EXTENTS, &exts) != 0)
            rc = CM_E_PROTO;
        if (rc != 0) {
            cJSON_Delete(ans);
            return report(c, path, rc);
        }
        bool more = false;
        cm_json_opt_bool(ans, FSF_MORE, &more);
        uint64_t end = off;
        cJSON_ArrayForEach(e, exts)
        {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, FSF_BLOCK);
            const cJSON *reps = cJSON_GetObjectItemCaseSensitive(b, FSF_REPLICAS);
            const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(b, FSF_ADDRS);
            uint64_t eoff = jget_u64(e, FSF_OFF), elen = jget_u64(e, FSF_LEN);
            uint64_t bid = jget_u64(b, FSF_ID);
            int nrep = cJSON_GetArraySize(reps), live = 0;
            char list[512] = "";
            size_t ll = 0;
            for (int i = 0; i < nrep; i++) {
                uint64_t rid = (uint64_t)cJSON_GetNumberValue(cJSON_GetArrayItem(reps, i));
                const cJSON *ad = cJSON_GetArrayItem(addrs, i);
                bool ok = k->alive == NULL || (rid < k->nalive && k->alive[rid]);
                live += ok;
                if (ll < sizeof(list))
                    ll += (size_t)snprintf(
                        list + ll, sizeof(list) - ll, "%s%" PRIu64 "@%s%s", i ? " " : "", rid,
                        cJSON_IsString(ad) && *ad->valuestring ? ad->valuestring : "?",
                        ok ? "" : "(dead)");
            }
            nblocks++;
            const char *state = live == 0 ? "MISSING" : live < WANT_REPLICAS ? "UNDER" : "OK";
            if (live == 0)
                missing++;
            else if (live < WANT_REPLICAS)
                under++;
            if (c->opt['b'] || live < WANT_REPLICAS)
                printf("  block %016" PRIx64 " at %" PRIu64 " len %" PRIu64
                       ": %d/%d replicas [%s] %s\n",
                       bid, eoff, elen, live, WANT_REPLICAS, list, state);
            if (eoff + elen > end)
                end = eoff + elen;
        }
        cJSON_Delete(ans);
        if (!more || end <= off)
            break;
        off = end;
    }
    k->blocks += nblocks;
    k->under += under;
    k->missing += missing;
    printf("%s: %" PRIu64 " bytes, %" PRIu64 " blocks: %s\n", path, a->size, nblocks,
           missing ? "MISSING BLOCKS"
           : under ? "UNDER-REPLICATED"
                   : "OK");
    return 0;
}

static int fsck_walk(struct ctl *c, struct fsck *k, const struct dfs_attr *a, const char *path)
{
    if (S_ISREG(a->mode))
        return fsck_file(c, k, a, path);
    if (!S_ISDIR(a->mode))
        return 0;
    struct ent *v = NULL;
    size_t n = 0;
    char sub[PATH_MAX];
    int rc = read_dir(c, fh_of(a), &v, &n), bad = 0;
    if (rc != 0)
        return report(c, path, rc);
    k->dirs++;
    for (size_t i = 0; i < n; i++)
        if (join(sub, sizeof(sub), path, v[i].name) == 0)
            bad |= fsck_walk(c, k, &v[i].a, sub);
    ents_free(v, n);
    return bad;
}

/* Which chunkservers the leader sees alive, when an admin URL is known. */
static void fsck_liveness(struct ctl *c, struct fsck *k)
{
    struct cview v;
    if (c->admin == NULL || *c->admin == 0)
        return;
    if (need_http(c) != 0 || cview_collect(c, &v) != 0)
        return;
    if (v.leader >= 0) {
        const cJSON *css = cJSON_GetObjectItemCaseSensitive(v.m[v.leader].st, "chunkservers"), *x;
        size_t max = 0;
        cJSON_ArrayForEach(x, css) if (jget_u64(x, "id") + 1 > max) max = jget_u64(x, "id") + 1;
        if ((k->alive = calloc(max + 1, sizeof(bool))) != NULL) {
            k->nalive = max + 1;
            cJSON_ArrayForEach(x, css)
            {
                uint64_t id = jget_u64(x, "id");
                k->alive[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "alive"));
            }
        }
    }
    cview_free(&v);
}

static int cmd_fsck(struct ctl *c, int argc, char **argv)
{
    struct fsck k = {0};
    char path[PATH_MAX];
    int rc, bad = 0;
    if ((rc = need_mc(c)) != 0)
        return rc;
    fsck_liveness(c, &k);
    for (int i = 0; i < argc; i++) {
        struct dfs_attr a;
        if ((rc = norm_path(argv[i], path, sizeof(path))) != 0 ||
            (rc = walk(c, path, true, &a)) != 0) {
            bad |= report(c, argv[i], rc);
            continue;
        }
        bad |= fsck_walk(c, &k, &a, path);
    }
    printf("\nStatus: %s\n", k.missing ? "CORRUPT" : k.under ? "UNDER-REPLICATED" : "HEALTHY");
    printf(" Files: %" PRIu64 "  Directories: %" PRIu64 "  Bytes: %" PRIu64 "  Blocks: %" PRIu64
           "\n Under-replicated blocks: %" PRIu64 "  Missing blocks: %" PRIu64 "\n",
           k.files, k.dirs, k.bytes, k.blocks, k.under, k.missing);
    printf(" Replicas counted: %s\n",
           k.alive ? "live ones (per the leader's /status)" : "as listed by the masters");
    free(k.alive);
    return bad || k.missing ? 1 : 0;
}

/* ---- bench: any local path, no masters ---- */

#define BENCH_MAX_BIG     (1ull << 40)
#define BENCH_MAX_BLOCK   (64ull << 20)
#define BENCH_MAX_SMALL   (64ull << 20)
#define BENCH_MAX_FILES   100000000ull
#define BENCH_MAX_THREADS 256

/* Long options of bench; those without a short form use a letter bench has no short flag for. */
static const struct option bench_opts[] = {
    {"big-size", required_argument, NULL, 'b'},
    {"block", required_argument, NULL, 'B'},
    {"small-files", required_argument, NULL, 's'},
    {"small-size", required_argument, NULL, 'S'},
    {"threads", required_argument, NULL, 'p'},
    {"keep", no_argument, NULL, 'K'},
    {NULL, 0, NULL, 0},
};

/* Parses the value of flag f (a size when size, else a plain count) into *v when given; 0, or 2
 * after a usage error. */
static int bench_arg(const struct ctl *c, int f, const char *name, bool size, uint64_t min,
                     uint64_t max, uint64_t *v)
{
    const char *s = c->arg[f];
    char why[160];
    if (s == NULL)
        return 0;
    if ((size ? cm_flag_size(s, min, max, v) : cm_flag_u64(s, min, max, v)) == 0)
        return 0;
    snprintf(why, sizeof(why), "%s %.32s: must be %s%" PRIu64 " to %" PRIu64 "%s", name, s,
             size ? "" : "a number from ", min, max, size ? " bytes (K, M, G suffixes)" : "");
    return usage_error(c->cmd, "%s", why);
}

static int cmd_bench(struct ctl *c, int argc, char **argv)
{
    struct dfsctl_bench_config b = {
        .path = argv[0],
        .big_size = DFSCTL_BENCH_BIG_SIZE,
        .block = DFSCTL_BENCH_BLOCK,
        .small_files = DFSCTL_BENCH_SMALL_FILES,
        .small_size = DFSCTL_BENCH_SMALL_SIZE,
        .keep = c->opt['K'],
        .json = c->json,
        .progress = c->progress,
    };
    uint64_t threads = 1;
    int rc;
    (void)argc;
    if ((rc = bench_arg(c, 'b', "-b/--big-size", true, 0, BENCH_MAX_BIG, &b.big_size)) != 0 ||
        (rc = bench_arg(c, 'B', "--block", true, 1, BENCH_MAX_BLOCK, &b.block)) != 0 ||
        (rc = bench_arg(c, 's', "-s/--small-files", false, 0, BENCH_MAX_FILES, &b.small_files)) !=
            0 ||
        (rc = bench_arg(c, 'S', "--small-size", true, 0, BENCH_MAX_SMALL, &b.small_size)) != 0 ||
        (rc = bench_arg(c, 'p', "-p/--threads", false, 1, BENCH_MAX_THREADS, &threads)) != 0)
        return rc;
    if (b.big_size == 0 && b.small_files == 0)
        return usage_error(c->cmd, "%snothing to measure: -b 0 and -s 0", "");
    b.threads = (unsigned)threads;
    return dfsctl_bench_run(&b);
}

/* ---- command table and flags ---- */

struct cmd {
    const char *name, *args, *flags; /* flags: getopt short options */
    int min, max;                    /* positional arguments; max -1: any */
    bool fs;                         /* needs the masters' client port */
    int (*fn)(struct ctl *, int, char **);
    const char *help;
    const struct option *lopts; /* its long options; val: a flag character, as a short flag's */
};

static const struct cmd cmds[] = {
    {"ls", "[-l] [-R] [PATH...]", "lR", 0, -1, true, cmd_ls,
     "List a directory (PATH default /). -l long format, -R recursive. --json: an array of\n"
     "entries with path, type, mode, size, times (ns)."},
    {"stat", "PATH...", "", 1, -1, true, cmd_stat,
     "Show an entry's attributes (a symlink itself, not its target). --json: an object."},
    {"mkdir", "[-p] PATH...", "p", 1, -1, true, cmd_mkdir,
     "Create directories. -p: parents too, no error when it exists."},
    {"put", "[-r] LOCAL... DFSPATH", "r", 2, -1, true, cmd_put,
     "Copy local files (\"-\": stdin) to dfs; into DFSPATH when it is a directory. -r copies\n"
     "directory trees (symlinks as symlinks). An existing file is replaced."},
    {"get", "DFSPATH... LOCAL", "", 2, -1, true, cmd_get,
     "Copy dfs files or directory trees to LOCAL (\"-\": stdout); into LOCAL when it is a\n"
     "local directory."},
    {"cat", "PATH...", "", 1, -1, true, cmd_cat, "Write files to stdout."},
    {"rm", "[-r] [-f] PATH...", "rf", 1, -1, true, cmd_rm,
     "Remove files, symlinks and (-r) directory trees. -f: no error when missing."},
    {"mv", "SRC DST", "", 2, 2, true, cmd_mv,
     "Rename SRC to DST, or move it into DST when DST is a directory."},
    {"ln", "[-s] TARGET LINK", "s", 2, 2, true, cmd_ln,
     "Make a hard link (or -s a symbolic link holding TARGET as given) named LINK."},
    {"du", "[-s] [-h] PATH...", "sh", 1, -1, true, cmd_du,
     "Bytes of the regular files under each directory (-s: only the total; -h: human units)."},
    {"df", "[-h]", "h", 0, 0, true, cmd_df,
     "Space of the live chunkservers and inode counts. --json: an object."},
    {"fsck", "[-b] PATH...", "b", 1, -1, true, cmd_fsck,
     "Check every file's blocks: replicas below 3 are under-replicated, none is missing.\n"
     "With --admin, only chunkservers the leader sees alive count. -b lists every block.\n"
     "Exit status 1 when a block is missing."},
    {"cluster", "status", "", 1, 1, false, cmd_cluster,
     "Masters (id, url, role, term, commit index, lag) and chunkservers (from the leader)\n"
     "through the admin port (--admin). --json: an object."},
    {"admin", "transfer-leader [ID] | add-master ID URL | remove-master ID", "", 1, 3, false,
     cmd_admin,
     "Membership through the leader's admin port (--admin): move the leadership (to ID or\n"
     "the most up-to-date voter), add a started master (--join) as a non-voter, remove one."},
    {"bench", "[-b SIZE] [-s N] [-p N] [--block SIZE] [--small-size SIZE] [--keep] PATH",
     "b:s:p:", 1, 1, false, cmd_bench,
     "Benchmark the directory PATH (a dfs or MooseFS mount, a local disk) with plain POSIX\n"
     "calls; no masters needed. Each worker, in PATH/.dfsctl-bench-<pid>/w<k>:\n"
     "  big_write     writes a big file sequentially, fsyncs and closes it, then drops it\n"
     "                from the page cache (posix_fadvise DONTNEED; as root also writes 1\n"
     "                to /proc/sys/vm/drop_caches; the output says which was done)\n"
     "  big_read      reads it back sequentially, checking every byte\n"
     "  small_create  its share of the small files: create, write, close each\n"
     "  small_stat    stat each\n"
     "  small_read    read each fully, checking every byte\n"
     "  small_unlink  unlink each\n"
     "Each phase is timed on its own, all workers running it at once. Output: a table of\n"
     "the phases with their throughput (MiB/s for the big file, files/s for the small ones)\n"
     "and the average latency of one op (a read or write call of --block bytes, or a small\n"
     "file) in ms; on a terminal, the phase and its progress (done/total) on stderr.\n"
     "--json: an object with path, threads, big_size, block, small_files, small_size,\n"
     "fadvise_dontneed, drop_caches and phases, an array of {name, seconds, ops, bytes,\n"
     "per_sec, mib_per_sec, avg_ms}.\n"
     "  -b, --big-size SIZE      the big file, per worker (default 1G; K, M, G; 0: skip)\n"
     "      --block SIZE         bytes per read and write call (default 1M, at most 64M)\n"
     "  -s, --small-files N      small files, split across the workers (default 5000; 0: skip)\n"
     "      --small-size SIZE    bytes of each small file (default 4K)\n"
     "  -p, --threads N          parallel workers (threads), 1-256 (default 1)\n"
     "      --keep               leave the directory (with the big files) behind\n"
     "The directory is removed at the end, after an error and on SIGINT or SIGTERM (then\n"
     "dfsctl dies of that signal). Errors name the file, the call and the errno; exit 1.",
     bench_opts},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const char global_help[] =
    "Global options (also after the subcommand):\n"
    "  --masters H:P,...     the masters' client addresses (env DFS_MASTERS)\n"
    "  --admin URL,...       masters' admin URLs http://HOST:PORT (--http-port; env DFS_ADMIN)\n"
    "  --secret-file FILE    the cluster secret\n"
    "  --json                machine-readable output (ls, stat, df, cluster status, bench)\n"
    "  --timeout SECONDS     one operation with its retries (default 60)\n"
    "  --block-size BYTES    block size of files written (default 64M; K, M, G suffixes)\n"
    "  --help                this text; SUBCOMMAND --help: that command's\n";

static void usage(FILE *f)
{
    fprintf(f, "Usage: %s [options] SUBCOMMAND [args]\n\nThe dfs command line.\n\nSubcommands:\n",
            PROG);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %s %s\n", cmds[i].name, cmds[i].args);
    fprintf(f, "\n%s\nExit status: 0 success, 1 an operation failed, 2 bad usage.\n", global_help);
}

static void cmd_usage(const struct cmd *cm, FILE *f)
{
    fprintf(f, "Usage: %s [options] %s %s\n\n%s\n\n%s", PROG, cm->name, cm->args, cm->help,
            global_help);
}

enum { G_MASTERS = 256, G_ADMIN, G_SECRET, G_JSON, G_TIMEOUT, G_BLOCK, G_HELP };

static const struct option gopts[] = {
    {"masters", required_argument, NULL, G_MASTERS},
    {"admin", required_argument, NULL, G_ADMIN},
    {"secret-file", required_argument, NULL, G_SECRET},
    {"json", no_argument, NULL, G_JSON},
    {"timeout", required_argument, NULL, G_TIMEOUT},
    {"block-size", required_argument, NULL, G_BLOCK},
    {"help", no_argument, NULL, G_HELP},
    {NULL, 0, NULL, 0},
};

/* Applies a global option; 0, or 2 for a bad value. */
static int global_opt(struct ctl *c, int o, const char *arg)
{
    uint64_t v;
    switch (o) {
    case G_MASTERS:
        c->masters = arg;
        return 0;
    case G_ADMIN:
        c->admin = arg;
        return 0;
    case G_SECRET:
        c->secret_file = arg;
        return 0;
    case G_JSON:
        c->json = true;
        return 0;
    case G_TIMEOUT:
        if (cm_flag_u64(arg, 1, 86400, &v) != 0)
            return usage_error(NULL, "--timeout %s: must be 1-86400 seconds", arg);
        c->timeout_ms = (long)v * 1000;
        return 0;
    case G_BLOCK:
        if (cm_flag_size(arg, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE, &v) != 0)
            return usage_error(NULL, "--block-size %s: must be 64K to 1G", arg);
        c->block_size = (uint32_t)v;
        return 0;
    default:
        return usage_error(NULL, "unknown option%s", "");
    }
}

static void ctl_close(struct ctl *c)
{
    dfs_close(c->fs);
    cm_http_client_free(c->http);
    dfs_master_conn_free(c->mc);
}

int main(int argc, char **argv)
{
    struct ctl c = {
        .masters = getenv("DFS_MASTERS"),
        .admin = getenv("DFS_ADMIN"),
        .timeout_ms = DFS_DEFAULT_OP_TIMEOUT_MS,
        .block_size = DFS_DEFAULT_BLOCK_SIZE,
        .progress = isatty(2) == 1,
    };
    int o, rc;
    cm_log_init(PROG, CM_LOG_ERROR);
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+", gopts, NULL)) != -1) {
        if (o == G_HELP) {
            usage(stdout);
            return 0;
        }
        if (o == '?' || o == ':')
            return usage_error(NULL, "unknown option or missing value: %s", argv[optind - 1]);
        if ((rc = global_opt(&c, o, optarg)) != 0)
            return rc;
    }
    if (optind >= argc)
        return usage_error(NULL, "missing subcommand%s", "");
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        for (size_t i = 0; optind + 1 < argc && i < NCMDS; i++)
            if (strcmp(cmds[i].name, argv[optind + 1]) == 0) {
                cmd_usage(&cmds[i], stdout);
                return 0;
            }
        usage(stdout);
        return 0;
    }
    const struct cmd *cm = NULL;
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            cm = &cmds[i];
    if (cm == NULL)
        return usage_error(NULL, "unknown subcommand '%s'", name);
    c.cmd = cm->name;

    /* the subcommand's long options, then the global ones */
    struct option opts[MAX_LOPTS + sizeof(gopts) / sizeof(gopts[0])];
    size_t nopts = 0;
    for (const struct option *p = cm->lopts; p != NULL && p->name != NULL && nopts < MAX_LOPTS; p++)
        opts[nopts++] = *p;
    memcpy(opts + nopts, gopts, sizeof(gopts));

    int sargc = argc - optind;
    char **sargv = argv + optind;
    optind = 0; /* glibc: start over on the new vector */
    while ((o = getopt_long(sargc, sargv, cm->flags, opts, NULL)) != -1) {
        if (o == G_HELP) {
            cmd_usage(cm, stdout);
            return 0;
        }
        if (o == '?') {
            const char *bad = sargv[optind - 1];
            bool lng = false; /* one of cm's long options without its value */
            for (const struct option *p = cm->lopts; p != NULL && p->name != NULL; p++)
                lng |= p->val == optopt && strncmp(bad, "--", 2) == 0;
            if (!lng && optopt > 0 && optopt < 128)
                return usage_error(cm->name,
                                   strchr(cm->flags, optopt) ? "flag -%s needs a value"
                                                             : "unknown flag -%s",
                                   (const char[]){(char)optopt, 0});
            return usage_error(cm->name, "unknown option or missing value: %s", bad);
        }
        if (o >= G_MASTERS) {
            if ((rc = global_opt(&c, o, optarg)) != 0)
                return rc;
            continue;
        }
        if (o > 0 && o < 128) {
            c.opt[o] = true;
            c.arg[o] = optarg;
        }
    }
    int npos = sargc - optind;
    if (npos < cm->min || (cm->max >= 0 && npos > cm->max))
        return usage_error(cm->name, "%s",
                           npos < cm->min ? "missing arguments" : "too many arguments");

    if (c.secret_file != NULL) {
        if ((rc = cm_secret_load(c.secret_file, &c.secret)) != 0) {
            fprintf(stderr, "%s: --secret-file %s: %s\n", PROG, c.secret_file, cm_strerror(rc));
            return 1;
        }
        c.has_secret = true;
    }
    if (cm->fs && (rc = need_fs(&c)) != 0) {
        ctl_close(&c);
        return rc;
    }
    rc = cm->fn(&c, npos, sargv + optind);
    ctl_close(&c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: %s: write error on stdout: %s\n", PROG, c.cmd, strerror(errno));
        return 1;
    }
    return rc;
}
