/* LevelDB-backed Raft storage. Keys:
 *   "m/version"  -> u32 format version
 *   "m/hard"     -> u64 term, u64 vote
 *   "m/boot"     -> the initial configuration (raft_conf_encode)
 *   "m/snap"     -> u64 index, u64 term, u64 size, u32 crc32c, u32 conf length, conf bytes
 *   "l" + u64be  -> u64 term, u8 type, data            (one log entry)
 * All integers little-endian except the big-endian index in log keys (so keys sort by index). */
#include "master/raft_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"

#define KEY_VERSION "m/version"
#define KEY_HARD "m/hard"
#define KEY_SNAP "m/snap"
#define KEY_BOOT "m/boot"
#define LOG_KEY_LEN 9
#define SNAP_TMP "snapshot.tmp"
#define SNAP_PENDING "snapshot.pending"

struct raft_store {
    char *dir;
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wsync;
    leveldb_readoptions_t *ropts;
    raft_index first_index; /* first log entry on disk (snapshot index + 1 when none) */
    raft_index last_index;  /* last log entry on disk (snapshot index when none) */
    raft_index snap_index;
    raft_term snap_term;
    uint64_t snap_size;
    char *snap_path;
    int pending_fd; /* incoming snapshot, -1 when none */
    uint64_t pending_size;
    uint32_t pending_crc;
    struct rs_stats stats;
};

struct rs_snapshot_writer {
    int fd;
    uint64_t size;
    uint32_t crc;
    int err;
};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void log_key(unsigned char *k, raft_index index)
{
    k[0] = 'l';
    for (int i = 0; i < 8; i++)
        k[1 + i] = (unsigned char)(index >> (56 - 8 * i));
}

static raft_index log_key_index(const unsigned char *k)
{
    raft_index v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | k[1 + i];
    return v;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return CM_E_IO;
    int rc = fsync(fd) == 0 ? 0 : CM_E_IO;
    close(fd);
    return rc;
}

/* Writes batch with sync=1 and counts it. */
static int write_synced(struct raft_store *s, leveldb_writebatch_t *b, size_t bytes)
{
    char *err = NULL;
    uint64_t t0 = now_us();
    leveldb_write(s->db, s->wsync, b, &err);
    if (err != NULL) {
        LOG_ERROR("raft store: write failed: %s", err);
        leveldb_free(err);
        return CM_E_IO;
    }
    s->stats.syncs++;
    s->stats.sync_us_total += now_us() - t0;
    s->stats.bytes_written += bytes;
    return 0;
}

static int get_value(struct raft_store *s, const char *key, char **val, size_t *len)
{
    char *err = NULL;
    *val = leveldb_get(s->db, s->ropts, key, strlen(key), len, &err);
    if (err != NULL) {
        LOG_ERROR("raft store: read of %s failed: %s", key, err);
        leveldb_free(err);
        return CM_E_STORE;
    }
    return 0;
}

static char *snap_name(raft_index index, raft_term term)
{
    char name[64];
    snprintf(name, sizeof(name), "snapshot-%016" PRIx64 "-%016" PRIx64 ".snap", index, term);
    return strdup(name);
}

int rs_open(const char *dir, struct raft_store **out)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? CM_E_NOENT : CM_E_ACCES;
    if (!S_ISDIR(st.st_mode))
        return CM_E_NOTDIR;
    if (access(dir, W_OK | X_OK) != 0)
        return CM_E_ACCES;

    int rc = CM_E_NOMEM;
    char *err = NULL;
    char *dbpath = NULL;
    struct raft_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CM_E_NOMEM;
    s->pending_fd = -1;
    s->dir = strdup(dir);
    dbpath = path_join(dir, "raft.ldb");
    if (s->dir == NULL || dbpath == NULL)
        goto fail;
    s->opts = leveldb_options_create();
    s->wsync = leveldb_writeoptions_create();
    s->ropts = leveldb_readoptions_create();
    leveldb_options_set_create_if_missing(s->opts, 1);
    leveldb_options_set_paranoid_checks(s->opts, 1);
    leveldb_options_set_write_buffer_size(s->opts, 16 << 20);
    leveldb_writeoptions_set_sync(s->wsync, 1);
    leveldb_readoptions_set_verify_checksums(s->ropts, 1);

    s->db = leveldb_open(s->opts, dbpath, &err);
    if (err != NULL) {
        LOG_ERROR("raft store: cannot open %s: %s", dbpath, err);
        rc = strstr(err, "lock") != NULL ? CM_E_BUSY : CM_E_STORE;
        leveldb_free(err);
        goto fail;
    }

    char *val = NULL;
    size_t len = 0;
    if ((rc = get_value(s, KEY_VERSION, &val, &len)) != 0)
        goto fail;
    if (val == NULL) {
        unsigned char v[4];
        put_u32(v, RS_FORMAT_VERSION);
        leveldb_writebatch_t *b = leveldb_writebatch_create();
        leveldb_writebatch_put(b, KEY_VERSION, strlen(KEY_VERSION), (const char *)v, 4);
        rc = write_synced(s, b, 4);
        leveldb_writebatch_destroy(b);
        if (rc != 0)
            goto fail;
    } else {
        uint32_t ver = len == 4 ? get_u32((const unsigned char *)val) : 0;
        leveldb_free(val);
        if (ver != RS_FORMAT_VERSION) {
            LOG_ERROR("raft store: %s has format version %u, this program reads version %d", dir,
                      ver, RS_FORMAT_VERSION);
            rc = CM_E_STORE;
            goto fail;
        }
    }
    free(dbpath);
    *out = s;
    return 0;
fail:
    free(dbpath);
    rs_close(s);
    return rc;
}

void rs_close(struct raft_store *s)
{
    if (s == NULL)
        return;
    if (s->pending_fd >= 0)
        close(s->pending_fd);
    if (s->db != NULL)
        leveldb_close(s->db);
    if (s->opts != NULL)
        leveldb_options_destroy(s->opts);
    if (s->wsync != NULL)
        leveldb_writeoptions_destroy(s->wsync);
    if (s->ropts != NULL)
        leveldb_readoptions_destroy(s->ropts);
    free(s->snap_path);
    free(s->dir);
    free(s);
}

void rs_loaded_free(struct rs_loaded *l)
{
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < l->n_entries; i++)
        free((void *)l->entries[i].data);
    free(l->entries);
    free(l->snapshot_path);
    memset(l, 0, sizeof(*l));
}

/* Reads the whole file and checks its size and CRC32C. */
static int verify_snapshot_file(const char *path, uint64_t size, uint32_t crc)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        LOG_ERROR("raft store: snapshot %s: %s", path, strerror(errno));
        return CM_E_STORE;
    }
    static const size_t bufsz = 1 << 20;
    unsigned char *buf = malloc(bufsz);
    uint64_t total = 0;
    uint32_t c = 0;
    int rc = 0;
    if (buf == NULL) {
        close(fd);
        return CM_E_NOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, buf, bufsz);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = CM_E_IO;
            break;
        }
        if (n == 0)
            break;
        c = cm_crc32c(c, buf, (size_t)n);
        total += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (rc == 0 && (total != size || c != crc)) {
        LOG_ERROR("raft store: snapshot %s is damaged (size %" PRIu64 "/%" PRIu64
                  ", crc %08x/%08x)",
                  path, total, size, c, crc);
        rc = CM_E_STORE;
    }
    return rc;
}

static int load_snapshot_meta(struct raft_store *s, struct raft_boot *boot)
{
    char *val = NULL;
    size_t len = 0;
    int rc = get_value(s, KEY_SNAP, &val, &len);
    if (rc != 0 || val == NULL)
        return rc;
    const unsigned char *p = (const unsigned char *)val;
    if (len < 32 || get_u32(p + 28) != len - 32) {
        LOG_ERROR("raft store: snapshot metadata is malformed");
        leveldb_free(val);
        return CM_E_STORE;
    }
    s->snap_index = get_u64(p);
    s->snap_term = get_u64(p + 8);
    s->snap_size = get_u64(p + 16);
    uint32_t crc = get_u32(p + 24);
    struct raft_conf conf;
    if (raft_conf_decode(p + 32, len - 32, &conf) != 0) {
        LOG_ERROR("raft store: snapshot configuration is malformed");
        leveldb_free(val);
        return CM_E_STORE;
    }
    leveldb_free(val);
    char *name = snap_name(s->snap_index, s->snap_term);
    if (name == NULL)
        return CM_E_NOMEM;
    s->snap_path = path_join(s->dir, name);
    free(name);
    if (s->snap_path == NULL)
        return CM_E_NOMEM;
    if ((rc = verify_snapshot_file(s->snap_path, s->snap_size, crc)) != 0)
        return rc;
    boot->snapshot_index = s->snap_index;
    boot->snapshot_term = s->snap_term;
    boot->snapshot_size = s->snap_size;
    boot->conf = conf;
    boot->applied = s->snap_index;
    return 0;
}

/* Removes stray temporaries and snapshot files other than the current one. */
static void remove_strays(struct raft_store *s)
{
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return;
    const char *cur = s->snap_path ? strrchr(s->snap_path, '/') + 1 : "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        bool snap = strncmp(e->d_name, "snapshot", 8) == 0;
        if (snap && strcmp(e->d_name, cur) != 0) {
            char *p = path_join(s->dir, e->d_name);
            if (p != NULL && unlink(p) == 0)
                LOG_INFO("raft store: removed stale %s", e->d_name);
            free(p);
        }
    }
    closedir(d);
}

int rs_load(struct raft_store *s, struct raft_boot *boot, struct rs_loaded *l)
{
    int rc;
    char *val = NULL;
    size_t len = 0;
    memset(l, 0, sizeof(*l));
    boot->term = 0;
    boot->vote = 0;
    boot->snapshot_index = 0;
    boot->snapshot_term = 0;
    boot->snapshot_size = 0;
    boot->applied = 0;
    boot->n_entries = 0;
    boot->entries = NULL;

    if ((rc = get_value(s, KEY_HARD, &val, &len)) != 0)
        return rc;
    if (val != NULL) {
        if (len != 16) {
            leveldb_free(val);
            LOG_ERROR("raft store: hard state is malformed");
            return CM_E_STORE;
        }
        boot->term = get_u64((const unsigned char *)val);
        boot->vote = get_u64((const unsigned char *)val + 8);
        leveldb_free(val);
    }
    if ((rc = load_snapshot_meta(s, boot)) != 0)
        return rc;
    remove_strays(s);

    uint32_t cap = 0;
    raft_index expect = s->snap_index + 1;
    leveldb_iterator_t *it = leveldb_create_iterator(s->db, s->ropts);
    leveldb_iter_seek(it, "l", 1);
    for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)leveldb_iter_key(it, &klen);
        if (klen < 1 || k[0] != 'l')
            break;
        const unsigned char *v = (const unsigned char *)leveldb_iter_value(it, &vlen);
        if (klen != LOG_KEY_LEN || vlen < 9 || vlen - 9 > UINT32_MAX) {
            LOG_ERROR("raft store: malformed log record");
            rc = CM_E_STORE;
            break;
        }
        raft_index idx = log_key_index(k);
        if (idx <= s->snap_index)
            continue; /* compacted but not yet deleted: covered by the snapshot */
        if (idx != expect) {
            LOG_ERROR("raft store: log gap: expected entry %" PRIu64 ", found %" PRIu64, expect,
                      idx);
            rc = CM_E_STORE;
            break;
        }
        if (l->n_entries == cap) {
            cap = cap ? cap * 2 : 1024;
            struct raft_entry *ne = realloc(l->entries, cap * sizeof(*ne));
            if (ne == NULL) {
                rc = CM_E_NOMEM;
                break;
            }
            l->entries = ne;
        }
        struct raft_entry *e = &l->entries[l->n_entries];
        e->index = idx;
        e->term = get_u64(v);
        e->type = v[8];
        e->len = (uint32_t)(vlen - 9);
        void *data = NULL;
        if (e->len > 0) {
            data = malloc(e->len);
            if (data == NULL) {
                rc = CM_E_NOMEM;
                break;
            }
            memcpy(data, v + 9, e->len);
        }
        e->data = data;
        l->n_entries++;
        expect++;
    }
    if (rc == 0) {
        char *err = NULL;
        leveldb_iter_get_error(it, &err);
        if (err != NULL) {
            LOG_ERROR("raft store: reading the log failed: %s", err);
            leveldb_free(err);
            rc = CM_E_STORE;
        }
    }
    leveldb_iter_destroy(it);
    if (rc != 0) {
        rs_loaded_free(l);
        return rc;
    }
    s->first_index = s->snap_index + 1;
    s->last_index = expect - 1;
    if (s->snap_path != NULL && (l->snapshot_path = strdup(s->snap_path)) == NULL) {
        rs_loaded_free(l);
        return CM_E_NOMEM;
    }
    boot->entries = l->entries;
    boot->n_entries = l->n_entries;
    return 0;
}

static void batch_delete_range(leveldb_writebatch_t *b, raft_index from, raft_index to)
{
    unsigned char k[LOG_KEY_LEN];
    for (raft_index i = from; i <= to && i != 0; i++) {
        log_key(k, i);
        leveldb_writebatch_delete(b, (const char *)k, LOG_KEY_LEN);
    }
}

/* Adds one persist record to the batch; *last tracks the log's end as the batch will leave it. */
static int batch_add(leveldb_writebatch_t *b, const struct raft_persist *p, raft_index *last,
                     unsigned char **buf, size_t *bufcap, size_t *bytes)
{
    unsigned char hdr[16];
    if (p->has_hard_state) {
        put_u64(hdr, p->term);
        put_u64(hdr + 8, p->vote);
        leveldb_writebatch_put(b, KEY_HARD, strlen(KEY_HARD), (const char *)hdr, 16);
        *bytes += 16;
    }
    if (p->truncate_from != 0 && p->truncate_from <= *last) {
        batch_delete_range(b, p->truncate_from, *last);
        *last = p->truncate_from - 1;
    }
    for (uint32_t i = 0; i < p->n_entries; i++) {
        const struct raft_entry *e = &p->entries[i];
        size_t need = 9 + (size_t)e->len;
        if (need > *bufcap) {
            unsigned char *nb = realloc(*buf, need);
            if (nb == NULL)
                return CM_E_NOMEM;
            *buf = nb;
            *bufcap = need;
        }
        put_u64(*buf, e->term);
        (*buf)[8] = e->type;
        if (e->len > 0)
            memcpy(*buf + 9, e->data, e->len);
        unsigned char k[LOG_KEY_LEN];
        log_key(k, e->index);
        leveldb_writebatch_put(b, (const char *)k, LOG_KEY_LEN, (const char *)*buf, need);
        *bytes += need;
        if (e->index > *last)
            *last = e->index;
    }
    return 0;
}

int rs_write(struct raft_store *s, const struct raft_persist *p, size_t n)
{
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    unsigned char *buf = NULL;
    size_t bufcap = 0, bytes = 0;
    raft_index last = s->last_index;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = batch_add(b, &p[i], &last, &buf, &bufcap, &bytes);
    free(buf);
    if (rc == 0)
        rc = write_synced(s, b, bytes);
    leveldb_writebatch_destroy(b);
    if (rc == 0)
        s->last_index = last;
    return rc;
}

/* ---- snapshots ---- */

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ENOSPC ? CM_E_NOSPC : CM_E_IO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int rs_snapshot_create(struct raft_store *s, struct rs_snapshot_writer **out)
{
    char *tmp = path_join(s->dir, SNAP_TMP);
    struct rs_snapshot_writer *w = calloc(1, sizeof(*w));
    if (tmp == NULL || w == NULL) {
        free(tmp);
        free(w);
        return CM_E_NOMEM;
    }
    w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(tmp);
    if (w->fd < 0) {
        free(w);
        return CM_E_IO;
    }
    *out = w;
    return 0;
}

int rs_snapshot_append(struct rs_snapshot_writer *w, const void *data, size_t len)
{
    if (w->err != 0)
        return w->err;
    w->err = write_all(w->fd, data, len);
    if (w->err == 0) {
        w->crc = cm_crc32c(w->crc, data, len);
        w->size += len;
    }
    return w->err;
}

/* Makes file `from` (in the store's directory, already written) the snapshot (index, term):
 * fsync, rename, fsync dir, metadata + log compaction in one synced batch, old file removed.
 * When keep_after is set, log entries after index are kept; otherwise the whole log goes. */
static int make_current(struct raft_store *s, int fd, const char *from, raft_index index,
                        raft_term term, const struct raft_conf *conf, uint64_t size,
                        uint32_t crc, bool keep_after)
{
    int rc = 0;
    char *name = snap_name(index, term);
    char *src = path_join(s->dir, from);
    char *dst = name ? path_join(s->dir, name) : NULL;
    free(name);
    if (src == NULL || dst == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    if (fsync(fd) != 0 || rename(src, dst) != 0 || fsync_dir(s->dir) != 0) {
        LOG_ERROR("raft store: saving snapshot %s failed: %s", dst, strerror(errno));
        rc = CM_E_IO;
        goto out;
    }

    size_t conf_cap = raft_conf_encoded_max();
    unsigned char *meta = malloc(32 + conf_cap);
    if (meta == NULL) {
        rc = CM_E_NOMEM;
        goto out;
    }
    size_t clen = raft_conf_encode(conf, meta + 32, conf_cap);
    put_u64(meta, index);
    put_u64(meta + 8, term);
    put_u64(meta + 16, size);
    put_u32(meta + 24, crc);
    put_u32(meta + 28, (uint32_t)clen);
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    leveldb_writebatch_put(b, KEY_SNAP, strlen(KEY_SNAP), (const char *)meta, 32 + clen);
    free(meta);
    raft_index drop_to = keep_after ? index : (s->last_index > index ? s->last_index : index);
    if (s->first_index <= drop_to)
        batch_delete_range(b, s->first_index, drop_to < s->last_index ? drop_to : s->last_index);
    rc = write_synced(s, b, 32 + clen);
    leveldb_writebatch_destroy(b);
    if (rc != 0)
        goto out;

    if (s->snap_path != NULL && strcmp(s->snap_path, dst) != 0)
        unlink(s->snap_path);
    free(s->snap_path);
    s->snap_path = dst;
    dst = NULL;
    s->snap_index = index;
    s->snap_term = term;
    s->snap_size = size;
    s->first_index = index + 1;
    if (!keep_after || s->last_index < index)
        s->last_index = index;
out:
    free(src);
    free(dst);
    return rc;
}

int rs_snapshot_commit(struct raft_store *s, struct rs_snapshot_writer *w, raft_index index,
                       raft_term term, const struct raft_conf *conf, uint64_t *size_out)
{
    int rc = w->err;
    if (rc == 0)
        rc = make_current(s, w->fd, SNAP_TMP, index, term, conf, w->size, w->crc, true);
    if (rc == 0 && size_out != NULL)
        *size_out = w->size;
    close(w->fd);
    free(w);
    return rc;
}

void rs_snapshot_abort(struct raft_store *s, struct rs_snapshot_writer *w)
{
    char *tmp = path_join(s->dir, SNAP_TMP);
    close(w->fd);
    if (tmp != NULL)
        unlink(tmp);
    free(tmp);
    free(w);
}

int rs_snapshot_write_chunk(struct raft_store *s, uint64_t offset, const void *data, uint32_t len)
{
    if (offset == 0) {
        if (s->pending_fd >= 0)
            close(s->pending_fd);
        char *p = path_join(s->dir, SNAP_PENDING);
        if (p == NULL)
            return CM_E_NOMEM;
        s->pending_fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        free(p);
        if (s->pending_fd < 0)
            return CM_E_IO;
        s->pending_size = 0;
        s->pending_crc = 0;
    }
    if (s->pending_fd < 0 || offset != s->pending_size)
        return CM_E_INVAL;
    int rc = write_all(s->pending_fd, data, len);
    if (rc != 0)
        return rc;
    s->pending_crc = cm_crc32c(s->pending_crc, data, len);
    s->pending_size += len;
    return 0;
}

int rs_snapshot_install(struct raft_store *s, raft_index index, raft_term term,
                        const struct raft_conf *conf, uint64_t *size_out)
{
    if (s->pending_fd < 0)
        return CM_E_INVAL;
    /* Keep the log after the snapshot only when it holds the snapshot's last entry. */
    bool keep = false;
    if (index >= s->first_index && index <= s->last_index) {
        unsigned char k[LOG_KEY_LEN];
        char *err = NULL;
        size_t vlen = 0;
        log_key(k, index);
        char *v = leveldb_get(s->db, s->ropts, (const char *)k, LOG_KEY_LEN, &vlen, &err);
        if (err != NULL) {
            leveldb_free(err);
            return CM_E_IO;
        }
        keep = v != NULL && vlen >= 9 && get_u64((const unsigned char *)v) == term;
        leveldb_free(v);
    }
    int rc = make_current(s, s->pending_fd, SNAP_PENDING, index, term, conf, s->pending_size,
                          s->pending_crc, keep);
    if (rc == 0 && size_out != NULL)
        *size_out = s->pending_size;
    close(s->pending_fd);
    s->pending_fd = -1;
    return rc;
}

const char *rs_snapshot_path(const struct raft_store *s, uint64_t *size_out)
{
    if (size_out != NULL)
        *size_out = s->snap_size;
    return s->snap_path;
}

void rs_get_stats(const struct raft_store *s, struct rs_stats *out)
{
    *out = s->stats;
}

int rs_get_bootstrap(struct raft_store *s, struct raft_conf *out)
{
    char *val = NULL;
    size_t len = 0;
    int rc = get_value(s, KEY_BOOT, &val, &len);
    if (rc != 0)
        return rc;
    if (val == NULL)
        return CM_E_NOENT;
    rc = raft_conf_decode(val, len, out) == 0 ? 0 : CM_E_STORE;
    leveldb_free(val);
    if (rc != 0)
        LOG_ERROR("raft store: the recorded initial configuration is malformed");
    return rc;
}

int rs_set_bootstrap(struct raft_store *s, const struct raft_conf *conf)
{
    size_t cap = raft_conf_encoded_max();
    char *buf = malloc(cap);
    if (buf == NULL)
        return CM_E_NOMEM;
    size_t n = raft_conf_encode(conf, buf, cap);
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    leveldb_writebatch_put(b, KEY_BOOT, strlen(KEY_BOOT), buf, n);
    int rc = write_synced(s, b, n);
    leveldb_writebatch_destroy(b);
    free(buf);
    return rc;
}
