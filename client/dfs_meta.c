/* libdfs, metadata half: the namespace operations over the masters' /v1/fs/... endpoints.
 *
 * Exactly-once mutations: the masters remember, per client id, only the last sequence number and
 * its answer, and refuse a lower one. So one client id must never have two mutations in flight,
 * or a retry of the older one would be refused. We keep a small pool of sessions (client id
 * random from /dev/urandom, its own seq): a mutation takes a free session, posts with the next
 * seq and keeps that (client, seq) across every retry master_conn makes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/dfs.h"
#include "client/dfs_internal.h"
#include "client/dircache.h"
#include "client/fs_proto.h"
#include "client/master_conn.h"
#include "common/errors.h"
#include "common/json.h"

#define CRED_GROUPS_MAX 32
#define READDIR_DEFAULT 256
#define READDIR_MAX     4096
/* The directory cache's sizes (dircache.h): a listing of at most DC_MAX_DIR entries, about 200
 * bytes each, DC_MAX_TOTAL in all (some 25 MiB at most). */
#define DC_MAX_DIR   32768
#define DC_MAX_TOTAL 131072
#define DC_MAX_MS    60000

static int read_random(void *buf, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return CM_E_IO;
    while (got < len) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            return CM_E_IO;
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
}

int dfs_open(const char *masters, const struct dfs_options *opt, struct dfs **out)
{
    struct dfs_options defaults = {0};
    struct dfs_master_conn_config cfg = {0};
    struct cm_http_client_config hcfg = {0};
    uint64_t rnd[DFS_SESSIONS + 1];
    struct dfs *fs;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    *out = NULL;
    if (opt == NULL)
        opt = &defaults;
    if (masters == NULL || opt->op_timeout_ms < 0 || opt->call_timeout_ms < 0 ||
        opt->data_timeout_ms < 0 || opt->replication > DFS_MAX_REPLICAS || opt->dir_cache_ms < 0 ||
        opt->dir_cache_ms > DC_MAX_MS || (opt->block_size != 0 && opt->block_size < 4096))
        return CM_E_INVAL;
    if ((rc = read_random(rnd, sizeof(rnd))) != 0)
        return rc;
    if ((fs = calloc(1, sizeof(*fs))) == NULL)
        return CM_E_NOMEM;
    fs->follower_reads = opt->follower_reads;
    fs->block_size = opt->block_size ? opt->block_size : DFS_DEFAULT_BLOCK_SIZE;
    fs->replication = opt->replication ? opt->replication : DFS_DEFAULT_REPLICATION;
    fs->data_timeout_ms = opt->data_timeout_ms ? opt->data_timeout_ms : 120000;
    fs->ra_budget = opt->readahead_budget ? opt->readahead_budget : DFS_DEFAULT_READAHEAD_BUDGET;
    for (size_t i = 0; i < DFS_SESSIONS; i++)
        fs->sessions[i].client = rnd[i] != 0 ? rnd[i] : 1 + i; /* 0 means "no session" */
    cfg.masters = masters;
    cfg.secret = opt->secret;
    cfg.op_timeout_ms = opt->op_timeout_ms > 0 ? opt->op_timeout_ms : DFS_DEFAULT_OP_TIMEOUT_MS;
    cfg.call_timeout_ms = opt->call_timeout_ms;
    cfg.seed = rnd[DFS_SESSIONS] != 0 ? rnd[DFS_SESSIONS] : 1;
    if ((rc = dfs_master_conn_new(&cfg, &fs->mc)) != 0)
        goto fail_free;
    hcfg.secret = opt->secret;
    hcfg.timeout_ms = fs->data_timeout_ms;
    hcfg.max_idle = 64;
    if ((rc = cm_http_client_new(&hcfg, &fs->data)) != 0)
        goto fail_mc;
    if ((rc = cm_http_async_new(&hcfg, &fs->fan)) != 0)
        goto fail_mc;
    rc = CM_E_NOMEM;
    if (opt->dir_cache_ms > 0 &&
        (fs->dc = dc_new((uint64_t)opt->dir_cache_ms, DC_MAX_DIR, DC_MAX_TOTAL)) == NULL)
        goto fail_mc;
    if (pthread_mutex_init(&fs->mu, NULL) != 0)
        goto fail_mc;
    if (pthread_cond_init(&fs->cv, NULL) != 0)
        goto fail_mutex;
    if (pthread_mutex_init(&fs->dc_mu, NULL) != 0)
        goto fail_cond;
    *out = fs;
    return 0;

fail_cond:
    pthread_cond_destroy(&fs->cv);
fail_mutex:
    pthread_mutex_destroy(&fs->mu);
fail_mc:
    dc_free(fs->dc);
    cm_http_async_free(fs->fan);
    cm_http_client_free(fs->data);
    dfs_master_conn_free(fs->mc);
fail_free:
    free(fs);
    return rc;
}

void dfs_close(struct dfs *fs)
{
    if (fs == NULL)
        return;
    dfs_master_conn_free(fs->mc);
    cm_http_async_free(fs->fan);
    cm_http_client_free(fs->data);
    pthread_cond_destroy(&fs->cv);
    pthread_mutex_destroy(&fs->mu);
    pthread_mutex_destroy(&fs->dc_mu);
    dc_free(fs->dc);
    free(fs);
}

void dfs_conn_stats(struct dfs *fs, struct dfs_master_conn_stats *out)
{
    dfs_master_conn_stats(fs->mc, out);
}

/* ---- request building: the first failure sticks in b->err ---- */

void dreq_init(struct dfs_req *b)
{
    b->j = cJSON_CreateObject();
    b->err = b->j != NULL ? 0 : CM_E_NOMEM;
}

void dreq_u64(struct dfs_req *b, const char *f, uint64_t v)
{
    if (b->err == 0)
        b->err = cm_json_add_u64(b->j, f, v);
}

void dreq_i64(struct dfs_req *b, const char *f, int64_t v)
{
    char s[24];

    if (b->err != 0)
        return;
    if (v >= -(int64_t)CM_JSON_MAX_SAFE_INT && v <= (int64_t)CM_JSON_MAX_SAFE_INT) {
        if (cJSON_AddNumberToObject(b->j, f, (double)v) == NULL)
            b->err = CM_E_NOMEM;
        return;
    }
    snprintf(s, sizeof(s), "%" PRId64, v);
    if (cJSON_AddStringToObject(b->j, f, s) == NULL)
        b->err = CM_E_NOMEM;
}

void dreq_str(struct dfs_req *b, const char *f, const char *s)
{
    if (b->err != 0)
        return;
    if (s == NULL)
        b->err = CM_E_INVAL;
    else if (cJSON_AddStringToObject(b->j, f, s) == NULL)
        b->err = CM_E_NOMEM;
}

void dreq_bool(struct dfs_req *b, const char *f, bool v)
{
    if (b->err == 0 && cJSON_AddBoolToObject(b->j, f, v) == NULL)
        b->err = CM_E_NOMEM;
}

void dreq_fh(struct dfs_req *b, const char *fino, const char *fgen, struct dfs_fh fh)
{
    dreq_u64(b, fino, fh.ino);
    dreq_u64(b, fgen, fh.gen);
}

void dreq_cred(struct dfs_req *b, const struct dfs_cred *cred)
{
    cJSON *c, *g;

    if (b->err != 0 || cred == NULL)
        return;
    if (cred->ngroups > CRED_GROUPS_MAX || (cred->ngroups > 0 && cred->groups == NULL)) {
        b->err = CM_E_INVAL;
        return;
    }
    if ((c = cJSON_AddObjectToObject(b->j, FSF_CRED)) == NULL ||
        cJSON_AddNumberToObject(c, FSF_UID, cred->uid) == NULL ||
        cJSON_AddNumberToObject(c, FSF_GID, cred->gid) == NULL ||
        (g = cJSON_AddArrayToObject(c, FSF_GROUPS)) == NULL) {
        b->err = CM_E_NOMEM;
        return;
    }
    for (size_t i = 0; i < cred->ngroups; i++) {
        cJSON *n = cJSON_CreateNumber(cred->groups[i]);
        if (n == NULL || !cJSON_AddItemToArray(g, n)) {
            cJSON_Delete(n);
            b->err = CM_E_NOMEM;
            return;
        }
    }
}

/* ---- answers ---- */

/* A time: a JSON number or a decimal string (values beyond 2^53). */
static int get_time(const cJSON *o, const char *f, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, f);
    char *end;
    long long v;

    if (!cJSON_IsString(it))
        return cm_json_get_i64(o, f, out);
    errno = 0;
    v = strtoll(it->valuestring, &end, 10);
    if (errno != 0 || end == it->valuestring || *end != '\0')
        return CM_E_BAD_FIELD;
    *out = v;
    return 0;
}

int dfs__parse_attr(const cJSON *a, struct dfs_attr *out)
{
    struct dfs_attr t = {0};

    if (cm_json_get_u64(a, FSF_INO, &t.ino) != 0 || cm_json_get_u64(a, FSF_GEN, &t.gen) != 0 ||
        cm_json_get_u32(a, FSF_MODE, &t.mode) != 0 ||
        cm_json_get_u32(a, FSF_NLINK, &t.nlink) != 0 || cm_json_get_u32(a, FSF_UID, &t.uid) != 0 ||
        cm_json_get_u32(a, FSF_GID, &t.gid) != 0 || cm_json_get_u64(a, FSF_SIZE, &t.size) != 0 ||
        get_time(a, FSF_ATIME_NS, &t.atime_ns) != 0 ||
        get_time(a, FSF_MTIME_NS, &t.mtime_ns) != 0 || get_time(a, FSF_CTIME_NS, &t.ctime_ns) != 0)
        return CM_E_PROTO;
    if (out != NULL)
        *out = t;
    return 0;
}

/* The answer's "attr" into out (nothing when out is NULL). */
int dfs__answer_attr(const cJSON *ans, struct dfs_attr *out)
{
    const cJSON *a;

    if (out == NULL)
        return 0;
    if (cm_json_get_object(ans, FSF_ATTR, &a) != 0)
        return CM_E_PROTO;
    return dfs__parse_attr(a, out);
}

/* ---- calls ---- */

/* A read: adds the credential and follower_read, posts, frees the body. */
int dfs__read(struct dfs *fs, const char *path, struct dfs_req *b, const struct dfs_cred *cred,
              cJSON **ans)
{
    int rc;

    *ans = NULL;
    dreq_cred(b, cred);
    if (fs->follower_reads)
        dreq_bool(b, FSF_FOLLOWER_READ, true);
    rc = b->err;
    if (rc == 0)
        rc = dfs_master_conn_post(fs->mc, path, b->j, ans);
    cJSON_Delete(b->j);
    b->j = NULL;
    if (rc != 0) {
        cJSON_Delete(*ans);
        *ans = NULL;
    }
    return rc;
}

static struct session *session_take(struct dfs *fs)
{
    struct session *s = NULL;

    pthread_mutex_lock(&fs->mu);
    for (;;) {
        for (size_t i = 0; i < DFS_SESSIONS && s == NULL; i++)
            if (!fs->sessions[i].busy)
                s = &fs->sessions[i];
        if (s != NULL)
            break;
        pthread_cond_wait(&fs->cv, &fs->mu);
    }
    s->busy = true;
    pthread_mutex_unlock(&fs->mu);
    return s;
}

static void session_give(struct dfs *fs, struct session *s)
{
    pthread_mutex_lock(&fs->mu);
    s->busy = false;
    pthread_cond_signal(&fs->cv);
    pthread_mutex_unlock(&fs->mu);
}

void dfs_set_dir_attr_hook(struct dfs *fs, dfs_dir_attr_fn fn, void *ctx)
{
    fs->dir_attr_hook = fn;
    fs->dir_attr_ctx = ctx;
}

/* Hands the directories among a change's answer's "attrs" to the hook. */
static void report_dirs(struct dfs *fs, const cJSON *ans)
{
    const cJSON *it;
    struct dfs_attr a;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(ans, "attrs"))
    {
        if (dfs__parse_attr(it, &a) == 0 && S_ISDIR(a.mode) && a.nlink > 0)
            fs->dir_attr_hook(fs->dir_attr_ctx, &a);
    }
}

/* A mutation: takes a session, adds (client, next seq) and the credential, posts; master_conn
 * resends this very body on every retry, so the masters apply it at most once. */
int dfs__mutate(struct dfs *fs, const char *path, struct dfs_req *b, const struct dfs_cred *cred,
                cJSON **ans)
{
    struct session *s;
    int rc;

    *ans = NULL;
    dreq_cred(b, cred);
    if ((rc = b->err) != 0)
        goto out;
    s = session_take(fs);
    dreq_u64(b, FSF_CLIENT, s->client);
    dreq_u64(b, FSF_SEQ, s->seq + 1);
    if ((rc = b->err) == 0) {
        s->seq++; /* used, whatever the outcome: a later retry of it would be refused anyway */
        rc = dfs_master_conn_post(fs->mc, path, b->j, ans);
    }
    session_give(fs, s);
    if (rc == 0 && fs->dir_attr_hook != NULL)
        report_dirs(fs, *ans);
out:
    cJSON_Delete(b->j);
    b->j = NULL;
    if (rc != 0) {
        cJSON_Delete(*ans);
        *ans = NULL;
    }
    return rc;
}

static int check_name(const char *name)
{
    if (name == NULL)
        return CM_E_INVAL;
    return strlen(name) > DFS_NAME_MAX ? CM_E_NAMETOOLONG : 0;
}

/* ---- the directory cache (dircache.h): what changes this handle made ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Takes the directory cache's lock, false when the cache is off. *now is read under it, so that
 * times and stamps go up together. */
static bool dc_enter(struct dfs *fs, uint64_t *now)
{
    if (fs->dc == NULL)
        return false;
    pthread_mutex_lock(&fs->dc_mu);
    *now = mono_ms();
    return true;
}

void dfs__dc_changed(struct dfs *fs, uint64_t ino)
{
    uint64_t now;

    if (!dc_enter(fs, &now))
        return;
    dc_changed(fs->dc, ino, now);
    pthread_mutex_unlock(&fs->dc_mu);
}

/* name was created in dir, or linked there (linked: the inode); a (the answer) is its inode, whose
 * other names, if any, have old attributes now. A failure may mean the listing was wrong
 * (EEXIST): it goes. */
static void dc_report_added(struct dfs *fs, int rc, struct dfs_fh dir, const char *name,
                            const struct dfs_attr *a, const struct dfs_fh *linked)
{
    uint64_t now;

    if (!dc_enter(fs, &now))
        return;
    if (rc == 0) {
        /* A truncated existing file or a new link: its other names' attributes are old. */
        dc_changed(fs->dc, a->ino, now);
        dc_added(fs->dc, dir, name, a, now);
    } else {
        if (linked != NULL)
            dc_changed(fs->dc, linked->ino, now);
        dc_drop(fs->dc, dir, now);
    }
    dc_changed(fs->dc, dir.ino, now); /* its mtime, ctime, links */
    pthread_mutex_unlock(&fs->dc_mu);
}

static void dc_report_removed(struct dfs *fs, int rc, struct dfs_fh dir, const char *name)
{
    uint64_t now;

    if (!dc_enter(fs, &now))
        return;
    if (rc == 0)
        dc_removed(fs->dc, dir, name, now);
    else
        dc_drop(fs->dc, dir, now);
    dc_changed(fs->dc, dir.ino, now);
    pthread_mutex_unlock(&fs->dc_mu);
}

static void dc_report_renamed(struct dfs *fs, int rc, struct dfs_fh sdir, const char *sname,
                              struct dfs_fh ddir, const char *dname, unsigned flags)
{
    uint64_t now;

    if (!dc_enter(fs, &now))
        return;
    if (rc == 0) {
        dc_renamed(fs->dc, sdir, sname, ddir, dname, (flags & DFS_RENAME_EXCHANGE) != 0, now);
    } else {
        dc_drop(fs->dc, sdir, now);
        dc_drop(fs->dc, ddir, now);
    }
    dc_changed(fs->dc, sdir.ino, now);
    dc_changed(fs->dc, ddir.ino, now);
    pthread_mutex_unlock(&fs->dc_mu);
}

/* The whole of directory dir, for dc_lookup's DC_FETCH (stamp, started at started_ms). */
static void dc_fetch(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh dir, uint64_t stamp,
                     uint64_t started_ms)
{
    struct dfs_dirent *all = NULL;
    struct dfs_dirpage page;
    size_t n = 0, cap = 0;
    uint64_t cookie = 0;
    bool eof = false;
    int rc = 0;

    while (rc == 0 && !eof) {
        if ((rc = dfs_readdir(fs, cred, dir, cookie, READDIR_MAX, &page)) != 0)
            break;
        if (page.n == 0 && !page.eof)
            rc = CM_E_PROTO; /* no progress */
        for (size_t i = 0; rc == 0 && i < page.n; i++) {
            struct dfs_dirent *d = &page.entries[i];
            if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
                continue;
            if (n == DC_MAX_DIR) {
                rc = CM_E_RANGE; /* too big to list: name by name */
                break;
            }
            if (n == cap) {
                size_t c = cap ? cap * 2 : 256;
                struct dfs_dirent *t = realloc(all, c * sizeof(*all));
                if (t == NULL) {
                    rc = CM_E_NOMEM;
                    break;
                }
                all = t;
                cap = c;
            }
            all[n++] = *d;
            d->name = NULL; /* now all's */
        }
        eof = page.eof;
        cookie = page.cookie;
        dfs_dirpage_clear(&page);
    }
    pthread_mutex_lock(&fs->dc_mu);
    if (rc == 0)
        dc_install(fs->dc, dir, stamp, started_ms, all, n, mono_ms());
    else
        dc_fetch_failed(fs->dc, dir, mono_ms());
    pthread_mutex_unlock(&fs->dc_mu);
    for (size_t i = 0; i < n; i++)
        free(all[i].name);
    free(all);
}

int dfs_lookup_cached(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent,
                      const char *name, struct dfs_attr *out, uint64_t *age_ms)
{
    enum dc_answer how = DC_ASK;
    struct dfs_attr a;
    uint64_t stamp = 0, age = 0, t0 = 0;
    int rc;

    if (age_ms != NULL)
        *age_ms = 0;
    if (fs->dc == NULL || check_name(name) != 0 || name[0] == '\0' || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return dfs_lookup(fs, cred, parent, name, out);
    for (int pass = 0; pass < 2; pass++) {
        pthread_mutex_lock(&fs->dc_mu);
        t0 = mono_ms();
        how = dc_lookup(fs->dc, parent, name, t0, pass == 0, &a, &age, &stamp);
        pthread_mutex_unlock(&fs->dc_mu);
        if (how != DC_FETCH)
            break;
        dc_fetch(fs, cred, parent, stamp, t0);
    }
    if (how == DC_HIT || how == DC_ABSENT) {
        if (age_ms != NULL)
            *age_ms = age;
        if (how == DC_HIT && out != NULL)
            *out = a;
        return how == DC_HIT ? 0 : CM_E_NOENT;
    }
    rc = dfs_lookup(fs, cred, parent, name, &a);
    if (rc == 0 || rc == CM_E_NOENT) {
        pthread_mutex_lock(&fs->dc_mu);
        dc_learn(fs->dc, parent, name, rc == 0 ? &a : NULL, stamp, t0);
        pthread_mutex_unlock(&fs->dc_mu);
    }
    if (rc == 0 && out != NULL)
        *out = a;
    return rc;
}

void dfs_dir_cache_stats(struct dfs *fs, struct dfs_dir_cache_stats *out)
{
    struct dc_stats st = {0};

    if (fs->dc != NULL) {
        pthread_mutex_lock(&fs->dc_mu);
        dc_get_stats(fs->dc, &st);
        pthread_mutex_unlock(&fs->dc_mu);
    }
    *out = (struct dfs_dir_cache_stats){st.hits,    st.absent,    st.asked,
                                        st.fetches, st.discarded, st.entries};
}

/* ---- operations ---- */

int dfs_lookup(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
               struct dfs_attr *out)
{
    struct dfs_req b;
    cJSON *ans;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    dreq_init(&b);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    if ((rc = dfs__read(fs, FSP_LOOKUP, &b, cred, &ans)) != 0)
        return rc;
    rc = dfs__answer_attr(ans, out);
    cJSON_Delete(ans);
    return rc;
}

int dfs_getattr(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, struct dfs_attr *out)
{
    struct dfs_req b;
    cJSON *ans;
    int rc;

    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, fh);
    if ((rc = dfs__read(fs, FSP_GETATTR, &b, cred, &ans)) != 0)
        return rc;
    rc = dfs__answer_attr(ans, out);
    cJSON_Delete(ans);
    return rc;
}

int dfs_resolve_path(struct dfs *fs, const struct dfs_cred *cred, const char *path,
                     struct dfs_attr *out)
{
    struct dfs_fh root = {DFS_ROOT_INO, DFS_ROOT_GEN};
    char name[DFS_NAME_MAX + 1];
    struct dfs_attr cur;
    const char *p, *e;
    int rc;

    if (path == NULL || path[0] != '/')
        return CM_E_INVAL;
    if ((rc = dfs_getattr(fs, cred, root, &cur)) != 0)
        return rc;
    for (p = path;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        for (e = p; *e != '\0' && *e != '/'; e++)
            ;
        if ((size_t)(e - p) > DFS_NAME_MAX)
            return CM_E_NAMETOOLONG;
        if (!S_ISDIR(cur.mode))
            return CM_E_NOTDIR;
        memcpy(name, p, (size_t)(e - p));
        name[e - p] = '\0';
        rc = dfs_lookup(fs, cred, (struct dfs_fh){cur.ino, cur.gen}, name, &cur);
        if (rc != 0)
            return rc;
        p = e;
    }
    if (out != NULL)
        *out = cur;
    return 0;
}

/* A mutation whose answer's attr (the new or changed inode) goes to out. */
static int mutate_attr(struct dfs *fs, const char *path, struct dfs_req *b,
                       const struct dfs_cred *cred, struct dfs_attr *out, cJSON **keep)
{
    cJSON *ans;
    int rc = dfs__mutate(fs, path, b, cred, &ans);

    if (rc == 0)
        rc = dfs__answer_attr(ans, out);
    if (rc == 0 && keep != NULL) {
        *keep = ans;
        return 0;
    }
    cJSON_Delete(ans);
    return rc;
}

int dfs_mkdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
              uint32_t mode, struct dfs_attr *out)
{
    struct dfs_attr a;
    struct dfs_req b;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    dreq_init(&b);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    dreq_u64(&b, FSF_MODE, mode & 07777);
    rc = mutate_attr(fs, FSP_MKDIR, &b, cred, &a, NULL);
    dc_report_added(fs, rc, parent, name, &a, NULL);
    if (rc == 0 && out != NULL)
        *out = a;
    return rc;
}

int dfs_create(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
               uint32_t mode, unsigned flags, struct dfs_attr *out, bool *created)
{
    struct dfs_attr a;
    struct dfs_req b;
    cJSON *ans = NULL;
    uint64_t value = 0;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    if ((flags & ~(DFS_CREATE_EXCL | DFS_CREATE_TRUNC)) != 0)
        return CM_E_INVAL;
    dreq_init(&b);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    dreq_u64(&b, FSF_MODE, mode & 07777);
    dreq_bool(&b, FSF_EXCL, (flags & DFS_CREATE_EXCL) != 0);
    dreq_bool(&b, FSF_TRUNC, (flags & DFS_CREATE_TRUNC) != 0);
    rc = mutate_attr(fs, FSP_CREATE, &b, cred, &a, &ans);
    dc_report_added(fs, rc, parent, name, &a, NULL);
    if (rc != 0)
        return rc;
    if (out != NULL)
        *out = a;
    if (cm_json_opt_u64(ans, FSF_VALUE, &value) != 0)
        rc = CM_E_PROTO;
    else if (created != NULL)
        *created = value != 0;
    cJSON_Delete(ans);
    return rc;
}

static int remove_name(struct dfs *fs, const char *path, const struct dfs_cred *cred,
                       struct dfs_fh parent, const char *name)
{
    struct dfs_req b;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    dreq_init(&b);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    rc = mutate_attr(fs, path, &b, cred, NULL, NULL);
    dc_report_removed(fs, rc, parent, name);
    return rc;
}

int dfs_unlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name)
{
    return remove_name(fs, FSP_UNLINK, cred, parent, name);
}

int dfs_rmdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name)
{
    return remove_name(fs, FSP_RMDIR, cred, parent, name);
}

int dfs_rename(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh src_parent,
               const char *src_name, struct dfs_fh dst_parent, const char *dst_name, unsigned flags)
{
    struct dfs_req b;
    int rc;

    if ((rc = check_name(src_name)) != 0 || (rc = check_name(dst_name)) != 0)
        return rc;
    if ((flags & ~(DFS_RENAME_NOREPLACE | DFS_RENAME_EXCHANGE)) != 0)
        return CM_E_INVAL;
    dreq_init(&b);
    dreq_fh(&b, FSF_SRC_PARENT, FSF_SRC_PGEN, src_parent);
    dreq_str(&b, FSF_SRC_NAME, src_name);
    dreq_fh(&b, FSF_DST_PARENT, FSF_DST_PGEN, dst_parent);
    dreq_str(&b, FSF_DST_NAME, dst_name);
    dreq_bool(&b, FSF_NOREPLACE, (flags & DFS_RENAME_NOREPLACE) != 0);
    dreq_bool(&b, FSF_EXCHANGE, (flags & DFS_RENAME_EXCHANGE) != 0);
    rc = mutate_attr(fs, FSP_RENAME, &b, cred, NULL, NULL);
    dc_report_renamed(fs, rc, src_parent, src_name, dst_parent, dst_name, flags);
    return rc;
}

int dfs_link(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, struct dfs_fh parent,
             const char *name, struct dfs_attr *out)
{
    struct dfs_attr a;
    struct dfs_req b;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, fh);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    rc = mutate_attr(fs, FSP_LINK, &b, cred, &a, NULL);
    dc_report_added(fs, rc, parent, name, &a, &fh);
    if (rc == 0 && out != NULL)
        *out = a;
    return rc;
}

int dfs_symlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh parent, const char *name,
                const char *target, struct dfs_attr *out)
{
    struct dfs_attr a;
    struct dfs_req b;
    int rc;

    if ((rc = check_name(name)) != 0)
        return rc;
    if (target == NULL)
        return CM_E_INVAL;
    if (strlen(target) > DFS_SYMLINK_MAX)
        return CM_E_NAMETOOLONG;
    dreq_init(&b);
    dreq_fh(&b, FSF_PARENT, FSF_PGEN, parent);
    dreq_str(&b, FSF_NAME, name);
    dreq_str(&b, FSF_TARGET, target);
    rc = mutate_attr(fs, FSP_SYMLINK, &b, cred, &a, NULL);
    dc_report_added(fs, rc, parent, name, &a, NULL);
    if (rc == 0 && out != NULL)
        *out = a;
    return rc;
}

int dfs_readlink(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, char **target)
{
    struct dfs_req b;
    const char *t;
    cJSON *ans;
    int rc;

    if (target == NULL)
        return CM_E_INVAL;
    *target = NULL;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, fh);
    if ((rc = dfs__read(fs, FSP_READLINK, &b, cred, &ans)) != 0)
        return rc;
    if (cm_json_get_str(ans, FSF_TARGET, DFS_SYMLINK_MAX, &t, NULL) != 0)
        rc = CM_E_PROTO;
    else if ((*target = strdup(t)) == NULL)
        rc = CM_E_NOMEM;
    cJSON_Delete(ans);
    return rc;
}

int dfs_setattr(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh,
                const struct dfs_setattr *sa, struct dfs_attr *out)
{
    struct dfs_req b;
    int rc;

    if (sa == NULL || (sa->valid & ~0xffu) != 0)
        return CM_E_INVAL;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, fh);
    if (sa->valid & DFS_SET_MODE)
        dreq_u64(&b, FSF_MODE, sa->mode & 07777);
    if (sa->valid & DFS_SET_UID)
        dreq_u64(&b, FSF_UID, sa->uid);
    if (sa->valid & DFS_SET_GID)
        dreq_u64(&b, FSF_GID, sa->gid);
    if (sa->valid & DFS_SET_SIZE)
        dreq_u64(&b, FSF_SIZE, sa->size);
    if (sa->valid & DFS_SET_ATIME_NOW)
        dreq_bool(&b, FSF_ATIME_NOW, true);
    else if (sa->valid & DFS_SET_ATIME)
        dreq_i64(&b, FSF_ATIME_NS, sa->atime_ns);
    if (sa->valid & DFS_SET_MTIME_NOW)
        dreq_bool(&b, FSF_MTIME_NOW, true);
    else if (sa->valid & DFS_SET_MTIME)
        dreq_i64(&b, FSF_MTIME_NS, sa->mtime_ns);
    rc = mutate_attr(fs, FSP_SETATTR, &b, cred, out, NULL);
    dfs__dc_changed(fs, fh.ino);
    return rc;
}

void dfs_dirpage_clear(struct dfs_dirpage *page)
{
    if (page == NULL)
        return;
    for (size_t i = 0; i < page->n; i++)
        free(page->entries[i].name);
    free(page->entries);
    memset(page, 0, sizeof(*page));
}

static int parse_page(const cJSON *ans, struct dfs_dirpage *page)
{
    const cJSON *arr, *e, *a;
    const char *name;
    int n;

    if (cm_json_get_array(ans, FSF_ENTRIES, &arr) != 0 ||
        cm_json_get_bool(ans, FSF_EOF, &page->eof) != 0 ||
        cm_json_get_u64(ans, FSF_COOKIE, &page->cookie) != 0)
        return CM_E_PROTO;
    n = cJSON_GetArraySize(arr);
    if (n == 0)
        return 0;
    if ((page->entries = calloc((size_t)n, sizeof(*page->entries))) == NULL)
        return CM_E_NOMEM;
    cJSON_ArrayForEach(e, arr)
    {
        struct dfs_dirent *d = &page->entries[page->n];
        if (cm_json_get_str(e, FSF_NAME, DFS_NAME_MAX, &name, NULL) != 0 ||
            cm_json_get_u64(e, FSF_COOKIE, &d->cookie) != 0 ||
            cm_json_get_object(e, FSF_ATTR, &a) != 0 || dfs__parse_attr(a, &d->attr) != 0)
            return CM_E_PROTO;
        if ((d->name = strdup(name)) == NULL)
            return CM_E_NOMEM;
        page->n++;
    }
    return 0;
}

int dfs_readdir(struct dfs *fs, const struct dfs_cred *cred, struct dfs_fh fh, uint64_t cookie,
                size_t max_entries, struct dfs_dirpage *page)
{
    struct dfs_req b;
    cJSON *ans;
    int rc;

    if (page == NULL)
        return CM_E_INVAL;
    memset(page, 0, sizeof(*page));
    if (max_entries == 0)
        max_entries = READDIR_DEFAULT;
    if (max_entries > READDIR_MAX)
        return CM_E_INVAL;
    dreq_init(&b);
    dreq_fh(&b, FSF_INO, FSF_GEN, fh);
    dreq_u64(&b, FSF_COOKIE, cookie);
    dreq_u64(&b, FSF_MAX_ENTRIES, max_entries);
    if ((rc = dfs__read(fs, FSP_READDIR, &b, cred, &ans)) != 0)
        return rc;
    rc = parse_page(ans, page);
    cJSON_Delete(ans);
    if (rc != 0)
        dfs_dirpage_clear(page);
    return rc;
}

int dfs_statfs(struct dfs *fs, struct dfs_statfs *out)
{
    struct dfs_statfs t = {0};
    struct dfs_req b;
    cJSON *ans;
    int rc;

    dreq_init(&b);
    if ((rc = dfs__read(fs, FSP_STATFS, &b, NULL, &ans)) != 0)
        return rc;
    if (cm_json_get_u64(ans, FSF_INODES, &t.inodes) != 0 ||
        cm_json_get_u64(ans, FSF_FILES, &t.files) != 0 ||
        cm_json_get_u64(ans, FSF_DIRS, &t.dirs) != 0 ||
        cm_json_get_u64(ans, FSF_SYMLINKS, &t.symlinks) != 0 ||
        cm_json_get_u64(ans, FSF_MAX_INODES, &t.max_inodes) != 0 ||
        cm_json_get_u64(ans, FSF_BLOCKS_ALLOC, &t.blocks_allocated) != 0 ||
        cm_json_opt_u64(ans, FSF_CAPACITY, &t.capacity_bytes) != 0 ||
        cm_json_opt_u64(ans, FSF_USED, &t.used_bytes) != 0 ||
        cm_json_opt_u64(ans, FSF_FREE, &t.free_bytes) != 0 ||
        cm_json_opt_u64(ans, FSF_CS_LIVE, &t.chunkservers_live) != 0)
        rc = CM_E_PROTO;
    else if (out != NULL)
        *out = t;
    cJSON_Delete(ans);
    return rc;
}
