/* Block files: blocks/<id[10..11]>/<id[12..13]>/<id>.blk (formats 2 and 3; format 1 stores keep
 * blocks/<id[14..15]>/<id[12..13]>/) holding the data, one little-endian
 * CRC32C per 64 KiB chunk and a 32-byte footer; written as <id>.tmp.<n> beside it, synced,
 * renamed and the directory synced. Format 3 adds the small-block journal (chunk/journal.h): a
 * block of up to CS_JOURNAL_BLOCK_MAX bytes is made durable by its journal record instead, and
 * its file synced by the journal's next checkpoint. The table and the change log live behind one
 * mutex; a block's commits and deletes are serialized by a lock striped by block id, so that a
 * rename and its table update agree. */
#include "chunk/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "chunk/blkmap.h"
#include "chunk/crc_combine.h"
#include "chunk/fileio.h"
#include "chunk/journal.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"

#define FORMAT_FILE    "FORMAT"
#define FORMAT_TMP     "FORMAT.tmp"
#define LOCK_FILE      "LOCK"
#define BLOCKS_DIR     "blocks"
#define FORMAT_VERSION 3 /* what new stores get (2 with a journal); 1 and 2 are still read */
#define FOOTER_BYTES   32
#define FOOTER_MAGIC   "DFSBLK\0\1"
#define BLK_SUFFIX     ".blk"
#define TMP_INFIX      ".tmp."
#define DIR_PATH_MAX   32                /* "blocks/ab/cd" */
#define REL_PATH_MAX   96                /* "blocks/ab/cd/<16>.tmp.<20>" */
#define SYNC_EVERY     (8 * 1024 * 1024) /* start writeback of a block every so many bytes */

#define F_CORRUPT 1u
enum { CHG_ADD = 1, CHG_REMOVE, CHG_CORRUPT };

#define COMMIT_STRIPES 64

struct cs_store {
    int root_fd;
    int lock_fd;
    uint64_t block_size;
    char storage_id[CS_STORAGE_ID_HEX + 1];
    unsigned version;           /* the store's format: where block files live, whether a journal */
    struct cs_journal *journal; /* NULL: none (format 1 or 2, or the config asks for none) */
    void (*on_corrupt)(void *ctx, uint64_t id);
    void *ctx;
    pthread_mutex_t mu; /* table, changes, used, ncorrupt */
    struct blkmap table;
    struct blkmap changes;
    uint64_t used;
    uint64_t ncorrupt;
    /* Renames and unlinks of a block's file with its table update, striped by block id: one
     * block's commits and deletes are serialized, different blocks' (and their directory
     * fsyncs) run side by side. */
    pthread_mutex_t commit_mu[COMMIT_STRIPES];
    pthread_mutex_t dir_mu; /* creation of fan-out directories */
    atomic_uint_fast64_t tmp_seq;
    atomic_uint_fast64_t bytes_written, bytes_read, checksum_failures, no_space;
};

struct cs_writer {
    struct cs_store *s;
    uint64_t id;
    int fd;
    char dir[DIR_PATH_MAX];
    char tmp[REL_PATH_MAX];
    char final[REL_PATH_MAX];
    uint64_t len;
    uint64_t synced;
    uint32_t crc;
    uint32_t chunk_crc;
    size_t chunk_fill;
    uint32_t *chunks;
    size_t nchunks;
    size_t chunks_cap;
    /* A small block headed for the journal: its bytes are kept here and written to the
     * temporary file at commit; NULL once it grew past CS_JOURNAL_BLOCK_MAX (then written as
     * they come, like a large block). */
    char *jbuf;
    size_t jcap;
    int err;
    bool committed;
};

struct cs_reader {
    struct cs_store *s;
    uint64_t id;
    int fd;
    uint64_t len;
    uint32_t crc;
    uint32_t *chunks;
    size_t nchunks;
    uint64_t limit; /* reads look ahead (and check) up to here; 0: no look-ahead */
    char *win;
    uint64_t win_off;
    size_t win_len;
    bool win_valid;
};

/* ---- small helpers ---- */

static size_t chunks_of(uint64_t len)
{
    return (size_t)((len + CS_CHUNK_SIZE - 1) / CS_CHUNK_SIZE);
}

static int fsync_dir_at(int root_fd, const char *rel)
{
    int fd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return cs_errno_code(errno);
    if (fsync(fd) < 0)
        rc = cs_errno_code(errno);
    close(fd);
    return rc;
}

int cs_block_id_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL)
        return CM_E_INVAL;
    for (int i = 0; i < CS_BLOCK_ID_HEX; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return CM_E_INVAL;
        v = v << 4 | d;
    }
    if (s[CS_BLOCK_ID_HEX] != '\0')
        return CM_E_INVAL;
    *out = v;
    return 0;
}

void cs_block_id_format(uint64_t id, char out[CS_BLOCK_ID_HEX + 1])
{
    snprintf(out, CS_BLOCK_ID_HEX + 1, "%016" PRIx64, id);
}

/* The hex digits naming a block's first-level directory. Format 1 used the lowest byte, so
 * that every one of the first 65,536 blocks created a directory (and synced its parent).
 * Format 2 uses the third byte: consecutive ids share a directory, one is created per 256
 * ids, and a directory holds 256 blocks of every 2^24 ids. */
static int first_digits(const struct cs_store *s)
{
    return s->version == 1 ? 14 : 10;
}

static void block_dir(const struct cs_store *s, uint64_t id, char *out, size_t cap)
{
    char hex[CS_BLOCK_ID_HEX + 1];

    cs_block_id_format(id, hex);
    snprintf(out, cap, BLOCKS_DIR "/%.2s/%.2s", hex + first_digits(s), hex + 12);
}

static int ensure_dirs(struct cs_store *s, const char *dir);

static void block_path(const struct cs_store *s, uint64_t id, char *out, size_t cap)
{
    char dir[DIR_PATH_MAX], hex[CS_BLOCK_ID_HEX + 1];

    block_dir(s, id, dir, sizeof(dir));
    cs_block_id_format(id, hex);
    snprintf(out, cap, "%s/%s" BLK_SUFFIX, dir, hex);
}

static uint64_t file_bytes(uint64_t len)
{
    return len + CS_TRAILER_BYTES(chunks_of(len));
}

/* ---- the table (callers hold s->mu) ---- */

static void note_change(struct cs_store *s, uint64_t id, unsigned op, uint64_t len, uint32_t crc)
{
    struct blkmap_val v = {.len = len, .crc = crc, .flags = op};

    if (blkmap_put(&s->changes, id, &v) < 0)
        LOG_ERROR("store: out of memory recording a change of %016" PRIx64
                  "; the next full report corrects it",
                  id);
}

static void table_remove(struct cs_store *s, uint64_t id)
{
    struct blkmap_val *v = blkmap_get(&s->table, id);

    if (v == NULL)
        return;
    s->used -= file_bytes(v->len);
    if (v->flags & F_CORRUPT)
        s->ncorrupt--;
    blkmap_del(&s->table, id);
}

static int table_insert(struct cs_store *s, uint64_t id, uint64_t len, uint32_t crc, bool corrupt)
{
    struct blkmap_val v = {.len = len, .crc = crc, .flags = corrupt ? F_CORRUPT : 0};
    int rc;

    table_remove(s, id);
    rc = blkmap_put(&s->table, id, &v);
    if (rc < 0)
        return rc;
    s->used += file_bytes(len);
    if (corrupt)
        s->ncorrupt++;
    return 0;
}

/* ---- trailer ---- */

/* Reads and checks the trailer of an open block file. *chunks_out (may be NULL) gets the
 * malloc'd CRC table. CM_E_CORRUPT when the structure is damaged. */
static int read_trailer(int fd, uint64_t *len_out, uint32_t *crc_out, uint32_t **chunks_out,
                        size_t *n_out)
{
    unsigned char foot[FOOTER_BYTES];
    unsigned char *tab = NULL;
    struct stat st;
    uint64_t len;
    size_t n, got;
    uint32_t crc;
    int rc;

    if (fstat(fd, &st) < 0)
        return cs_errno_code(errno);
    if (st.st_size < FOOTER_BYTES)
        return CM_E_CORRUPT;
    rc = cs_pread_full(fd, foot, FOOTER_BYTES, (uint64_t)st.st_size - FOOTER_BYTES, &got);
    if (rc < 0)
        return rc;
    if (got != FOOTER_BYTES || memcmp(foot, FOOTER_MAGIC, 8) != 0)
        return CM_E_CORRUPT;
    len = cs_get_le64(foot + 8);
    n = cs_get_le32(foot + 24);
    if (cs_get_le32(foot + 20) != CS_CHUNK_SIZE || len > CS_MAX_BLOCK_SIZE || n != chunks_of(len) ||
        file_bytes(len) != (uint64_t)st.st_size)
        return CM_E_CORRUPT;
    tab = malloc(n * 4 + 1);
    if (tab == NULL)
        return CM_E_NOMEM;
    rc = cs_pread_full(fd, tab, n * 4, len, &got);
    if (rc < 0)
        goto out;
    rc = CM_E_CORRUPT;
    if (got != n * 4)
        goto out;
    crc = cm_crc32c(0, tab, n * 4);
    crc = cm_crc32c(crc, foot, FOOTER_BYTES - 4);
    if (crc != cs_get_le32(foot + 28))
        goto out;
    /* The chunk CRCs must add up to the block's CRC. */
    crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = cs_crc32c_combine(crc, cs_get_le32(tab + 4 * i),
                                i + 1 < n ? CS_CHUNK_SIZE : len - (uint64_t)i * CS_CHUNK_SIZE);
    if (crc != cs_get_le32(foot + 16))
        goto out;
    *len_out = len;
    *crc_out = cs_get_le32(foot + 16);
    *n_out = n;
    if (chunks_out != NULL) {
        uint32_t *c = malloc(n * sizeof(*c) + 1);
        rc = CM_E_NOMEM;
        if (c == NULL)
            goto out;
        for (size_t i = 0; i < n; i++)
            c[i] = cs_get_le32(tab + 4 * i);
        *chunks_out = c;
    }
    rc = 0;
out:
    free(tab);
    return rc;
}

/* ---- open: format, lock, scan ---- */

static int read_format(struct cs_store *s)
{
    char buf[256], *p;
    unsigned version;
    size_t got;
    int fd, rc;

    fd = openat(s->root_fd, FORMAT_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_errno_code(errno);
    rc = cs_pread_full(fd, buf, sizeof(buf) - 1, 0, &got);
    close(fd);
    if (rc < 0)
        return rc;
    buf[got] = '\0';
    if (sscanf(buf, "dfs-chunkserver-store %u\n", &version) != 1) {
        LOG_ERROR("store: %s is not a dfs chunkserver format file", FORMAT_FILE);
        return CM_E_STORE;
    }
    if (version < 1 || version > FORMAT_VERSION) {
        LOG_ERROR("store: format version %u, this chunkserver reads 1 to %d", version,
                  FORMAT_VERSION);
        return CM_E_STORE;
    }
    s->version = version;
    p = strstr(buf, "\nstorage_id ");
    if (p == NULL || strspn(p + 12, "0123456789abcdef") != CS_STORAGE_ID_HEX) {
        LOG_ERROR("store: %s has no valid storage_id", FORMAT_FILE);
        return CM_E_STORE;
    }
    memcpy(s->storage_id, p + 12, CS_STORAGE_ID_HEX);
    s->storage_id[CS_STORAGE_ID_HEX] = '\0';
    return 0;
}

/* Writes FORMAT (s->version, s->storage_id) atomically: a temporary, synced, renamed. */
static int write_format(struct cs_store *s)
{
    char text[128];
    int fd, len, rc;

    len = snprintf(text, sizeof(text), "dfs-chunkserver-store %u\nstorage_id %s\n", s->version,
                   s->storage_id);
    fd = openat(s->root_fd, FORMAT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cs_errno_code(errno);
    rc = cs_pwrite_full(fd, text, (size_t)len, 0);
    if (rc == 0 && fsync(fd) < 0)
        rc = cs_errno_code(errno);
    close(fd);
    if (rc == 0 && renameat(s->root_fd, FORMAT_TMP, s->root_fd, FORMAT_FILE) < 0)
        rc = cs_errno_code(errno);
    if (rc == 0 && fsync(s->root_fd) < 0)
        rc = cs_errno_code(errno);
    if (rc < 0)
        unlinkat(s->root_fd, FORMAT_TMP, 0);
    return rc;
}

/* A new directory: a storage id, FORMAT written atomically, blocks/ created. Format 3 (a
 * journal) when one is asked for, else 2. */
static int create_format(struct cs_store *s, bool journal)
{
    unsigned char rnd[CS_STORAGE_ID_HEX / 2];
    int rc;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return CM_E_IO;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(s->storage_id + 2 * i, 3, "%02x", rnd[i]);
    s->version = journal ? FORMAT_VERSION : 2;
    if (mkdirat(s->root_fd, BLOCKS_DIR, 0755) < 0 && errno != EEXIST)
        return cs_errno_code(errno);
    rc = write_format(s);
    if (rc == 0)
        LOG_INFO("store: new storage directory, storage id %s", s->storage_id);
    return rc;
}

/* A journal record being replayed at open: the block file it holds is written again (synced by
 * the journal's checkpoint that follows), or a deleted block's file removed. */
static int replay_record(void *ctx, enum cs_journal_kind kind, uint64_t id, const void *payload,
                         size_t plen)
{
    struct cs_store *s = ctx;
    char dir[DIR_PATH_MAX], tmp[REL_PATH_MAX], final[REL_PATH_MAX], hex[CS_BLOCK_ID_HEX + 1];
    int fd, rc;

    block_dir(s, id, dir, sizeof(dir));
    block_path(s, id, final, sizeof(final));
    if (kind == CS_JOURNAL_DELETED) {
        if (unlinkat(s->root_fd, final, 0) < 0 && errno != ENOENT)
            return cs_errno_code(errno);
        return 0;
    }
    rc = ensure_dirs(s, dir);
    if (rc < 0)
        return rc;
    cs_block_id_format(id, hex);
    snprintf(tmp, sizeof(tmp), "%s/%s" TMP_INFIX "replay", dir, hex);
    fd = openat(s->root_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cs_errno_code(errno);
    rc = cs_pwrite_full(fd, payload, plen, 0);
    close(fd);
    if (rc == 0 && renameat(s->root_fd, tmp, s->root_fd, final) < 0)
        rc = cs_errno_code(errno);
    if (rc < 0)
        unlinkat(s->root_fd, tmp, 0);
    return rc;
}

/* The size of a new journal: as asked, but at most a sixteenth of the file system, rounded to
 * whole MiB; 0 (none) when that is under CS_JOURNAL_MIN_BYTES. */
static uint64_t journal_size(const struct cs_store *s, uint64_t asked)
{
    struct statvfs v;
    uint64_t cap;

    if (asked == 0 || fstatvfs(s->root_fd, &v) < 0)
        return 0;
    cap = (uint64_t)v.f_blocks * v.f_frsize / 16;
    if (asked > cap)
        asked = cap;
    asked &= ~(uint64_t)(1024 * 1024 - 1);
    return asked >= CS_JOURNAL_MIN_BYTES ? asked : 0;
}

/* Opens the journal of a format 3 store, or makes a format 2 store one of format 3 with a new
 * journal when asked for one (bytes from journal_size). */
static int open_journal(struct cs_store *s, uint64_t bytes, bool manual)
{
    int rc;

    if (s->version == 1)
        return 0; /* its layout predates the journal; blocks are synced one by one */
    if (s->version == 2) {
        if (bytes == 0)
            return 0;
        s->version = 3;
        rc = write_format(s);
        if (rc < 0) {
            s->version = 2;
            return rc;
        }
        LOG_INFO("store: format 2 upgraded to 3 (a small-block journal)");
    }
    /* A format 3 store without its file (a crash right after FORMAT was written) gets one. */
    return cs_journal_open(s->root_fd, bytes ? bytes : CS_JOURNAL_MIN_BYTES, !manual, replay_record,
                           s, &s->journal);
}

static bool is_hex2(const char *name)
{
    return strlen(name) == 2 && strspn(name, "0123456789abcdef") == 2;
}

/* One file of a fan-out directory rel. */
static int scan_file(struct cs_store *s, const char *rel, const char *d1, const char *d2,
                     const char *name, struct cs_scan_result *r)
{
    char path[REL_PATH_MAX * 2 + 256], hex[CS_BLOCK_ID_HEX + 1];
    uint64_t id, len = 0;
    uint32_t crc = 0;
    size_t n;
    int fd, rc;
    bool corrupt = false;

    snprintf(path, sizeof(path), "%s/%s", rel, name);
    if (strstr(name, TMP_INFIX) != NULL) {
        if (unlinkat(s->root_fd, path, 0) == 0) {
            r->temps_removed++;
            LOG_INFO("store: removed unfinished write %s", path);
        }
        return 0;
    }
    memcpy(hex, name, CS_BLOCK_ID_HEX);
    hex[CS_BLOCK_ID_HEX] = '\0';
    if (strlen(name) != CS_BLOCK_ID_HEX + strlen(BLK_SUFFIX) ||
        strcmp(name + CS_BLOCK_ID_HEX, BLK_SUFFIX) != 0 || cs_block_id_parse(hex, &id) < 0 ||
        memcmp(hex + first_digits(s), d1, 2) != 0 || memcmp(hex + 12, d2, 2) != 0) {
        r->unknown++;
        LOG_WARN("store: unknown file %s left alone", path);
        return 0;
    }
    fd = openat(s->root_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_errno_code(errno);
    rc = read_trailer(fd, &len, &crc, NULL, &n);
    close(fd);
    if (rc == CM_E_CORRUPT) {
        LOG_WARN("store: block %s is damaged (footer or CRC table); reported corrupt", hex);
        corrupt = true;
        len = 0;
        crc = 0;
    } else if (rc < 0) {
        LOG_ERROR("store: cannot read block %s: %s", hex, cm_strerror(rc));
        return rc;
    }
    rc = table_insert(s, id, len, crc, corrupt);
    if (rc < 0)
        return rc;
    r->blocks++;
    if (corrupt) {
        r->corrupt++;
        atomic_fetch_add(&s->checksum_failures, 1);
    } else {
        r->bytes += len;
    }
    return 0;
}

static int scan_dir(struct cs_store *s, const char *rel, const char *d1, const char *d2,
                    struct cs_scan_result *r)
{
    int fd = openat(s->root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (fd < 0)
        return cs_errno_code(errno);
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return CM_E_NOMEM;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char sub[REL_PATH_MAX + 256];
        if (e->d_name[0] == '.')
            continue;
        if (d1 == NULL || d2 == NULL) {
            if (!is_hex2(e->d_name)) {
                r->unknown++;
                LOG_WARN("store: unknown entry %s/%s left alone", rel, e->d_name);
                continue;
            }
            snprintf(sub, sizeof(sub), "%s/%s", rel, e->d_name);
            rc = d1 == NULL ? scan_dir(s, sub, e->d_name, NULL, r)
                            : scan_dir(s, sub, d1, e->d_name, r);
        } else {
            rc = scan_file(s, rel, d1, d2, e->d_name, r);
        }
    }
    closedir(d);
    return rc;
}

int cs_store_open(const struct cs_store_config *cfg, struct cs_store **out,
                  struct cs_scan_result *scan)
{
    struct cs_scan_result r = {0};
    struct cs_store *s;
    uint64_t jbytes;
    int rc;

    if (cfg == NULL || cfg->dir == NULL || out == NULL ||
        (cfg->block_size != 0 &&
         (cfg->block_size < CS_MIN_BLOCK_SIZE || cfg->block_size > CS_MAX_BLOCK_SIZE)))
        return CM_E_INVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CM_E_NOMEM;
    s->block_size = cfg->block_size ? cfg->block_size : CS_DEFAULT_BLOCK_SIZE;
    s->on_corrupt = cfg->on_corrupt;
    s->ctx = cfg->ctx;
    s->lock_fd = -1;
    atomic_init(&s->tmp_seq, 0);
    atomic_init(&s->bytes_written, 0);
    atomic_init(&s->bytes_read, 0);
    atomic_init(&s->checksum_failures, 0);
    atomic_init(&s->no_space, 0);
    rc = CM_E_NOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto fail_free;
    int stripes = 0;
    while (stripes < COMMIT_STRIPES && pthread_mutex_init(&s->commit_mu[stripes], NULL) == 0)
        stripes++;
    if (stripes < COMMIT_STRIPES)
        goto fail_commit_mu;
    if (pthread_mutex_init(&s->dir_mu, NULL) != 0)
        goto fail_commit_mu;

    s->root_fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        rc = cs_errno_code(errno);
        LOG_ERROR("store: cannot open %s: %s", cfg->dir, strerror(errno));
        goto fail_dir_mu;
    }
    s->lock_fd = openat(s->root_fd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        rc = cs_errno_code(errno);
        LOG_ERROR("store: cannot create %s/%s: %s", cfg->dir, LOCK_FILE, strerror(errno));
        goto fail_root;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? CM_E_BUSY : cs_errno_code(errno);
        LOG_ERROR("store: %s is in use by another chunkserver", cfg->dir);
        goto fail_lock;
    }
    jbytes = journal_size(s, cfg->journal_bytes);
    rc = read_format(s);
    if (rc == CM_E_NOENT)
        rc = create_format(s, jbytes > 0);
    if (rc < 0)
        goto fail_lock;
    if (mkdirat(s->root_fd, BLOCKS_DIR, 0755) < 0 && errno != EEXIST) {
        rc = cs_errno_code(errno);
        goto fail_lock;
    }
    rc = open_journal(s, jbytes, cfg->journal_manual);
    if (rc < 0)
        goto fail_lock;
    rc = scan_dir(s, BLOCKS_DIR, NULL, NULL, &r);
    if (rc < 0) {
        LOG_ERROR("store: scanning %s failed: %s", cfg->dir, cm_strerror(rc));
        goto fail_table;
    }
    if (scan != NULL)
        *scan = r;
    *out = s;
    return 0;

fail_table:
    blkmap_close(&s->table);
    cs_journal_close(s->journal);
fail_lock:
    close(s->lock_fd);
fail_root:
    close(s->root_fd);
fail_dir_mu:
    pthread_mutex_destroy(&s->dir_mu);
fail_commit_mu:
    while (stripes > 0)
        pthread_mutex_destroy(&s->commit_mu[--stripes]);
    pthread_mutex_destroy(&s->mu);
fail_free:
    free(s);
    return rc;
}

void cs_store_close(struct cs_store *s)
{
    if (s == NULL)
        return;
    cs_journal_close(s->journal);
    blkmap_close(&s->table);
    blkmap_close(&s->changes);
    close(s->lock_fd);
    close(s->root_fd);
    pthread_mutex_destroy(&s->dir_mu);
    for (int i = 0; i < COMMIT_STRIPES; i++)
        pthread_mutex_destroy(&s->commit_mu[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *cs_store_id(const struct cs_store *s)
{
    return s->storage_id;
}

uint64_t cs_store_block_size(const struct cs_store *s)
{
    return s->block_size;
}

static pthread_mutex_t *commit_mu_of(struct cs_store *s, uint64_t id)
{
    return &s->commit_mu[(id * UINT64_C(0x9E3779B97F4A7C15)) >> 58]; /* top 6 bits: 64 */
}

/* ---- writer ---- */

/* Creates the block's fan-out directories, syncing the parent of each one created, before
 * any file goes into them (dir_mu makes other writers wait for that sync). */
static int ensure_dirs(struct cs_store *s, const char *dir)
{
    char first[DIR_PATH_MAX];
    int rc = 0;

    snprintf(first, sizeof(first), "%.*s", (int)(strrchr(dir, '/') - dir), dir);
    pthread_mutex_lock(&s->dir_mu);
    if (mkdirat(s->root_fd, first, 0755) == 0)
        rc = fsync_dir_at(s->root_fd, BLOCKS_DIR);
    else if (errno != EEXIST)
        rc = cs_errno_code(errno);
    if (rc == 0) {
        if (mkdirat(s->root_fd, dir, 0755) == 0)
            rc = fsync_dir_at(s->root_fd, first);
        else if (errno != EEXIST)
            rc = cs_errno_code(errno);
    }
    pthread_mutex_unlock(&s->dir_mu);
    return rc;
}

static void count_nospc(struct cs_store *s, int rc)
{
    if (rc == CM_E_NOSPC)
        atomic_fetch_add(&s->no_space, 1);
}

int cs_writer_open(struct cs_store *s, uint64_t id, int64_t len_hint, struct cs_writer **out)
{
    char hex[CS_BLOCK_ID_HEX + 1];
    struct cs_writer *w;
    int rc;

    if (len_hint > (int64_t)s->block_size)
        return CM_E_TOO_LARGE;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_E_NOMEM;
    w->s = s;
    w->id = id;
    w->fd = -1;
    w->chunks_cap = chunks_of(s->block_size);
    w->chunks = malloc(w->chunks_cap * sizeof(*w->chunks));
    rc = CM_E_NOMEM;
    if (w->chunks == NULL)
        goto fail;
    block_dir(s, id, w->dir, sizeof(w->dir));
    block_path(s, id, w->final, sizeof(w->final));
    cs_block_id_format(id, hex);
    rc = ensure_dirs(s, w->dir);
    if (rc < 0)
        goto fail;
    for (int tries = 0; tries < 100 && w->fd < 0; tries++) {
        snprintf(w->tmp, sizeof(w->tmp), "%s/%s" TMP_INFIX "%" PRIu64, w->dir, hex,
                 (uint64_t)atomic_fetch_add(&s->tmp_seq, 1));
        w->fd = openat(s->root_fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != EEXIST) {
            rc = cs_errno_code(errno);
            goto fail;
        }
    }
    rc = CM_E_IO;
    if (w->fd < 0)
        goto fail;
    if (s->journal != NULL && len_hint <= CS_JOURNAL_BLOCK_MAX) {
        w->jcap = len_hint >= 0 ? (size_t)len_hint : CS_CHUNK_SIZE;
        w->jbuf = malloc(w->jcap ? w->jcap : 1);
        rc = CM_E_NOMEM;
        if (w->jbuf == NULL)
            goto fail;
    }
    if (len_hint >= 0) {
        /* Reserve the whole file now, so a full disk is found before any byte is taken. */
        off_t total = (off_t)file_bytes((uint64_t)len_hint);
        if (total > 0 && fallocate(w->fd, FALLOC_FL_KEEP_SIZE, 0, total) < 0 &&
            errno != EOPNOTSUPP && errno != ENOSYS) {
            rc = cs_errno_code(errno);
            goto fail;
        }
    }
    *out = w;
    return 0;

fail:
    count_nospc(s, rc);
    cs_writer_free(w);
    return rc;
}

/* Keeps the bytes of a small block in memory, or writes them to the temporary file (all kept
 * so far first, once the block grows past what the journal takes). */
static int keep_small(struct cs_writer *w, const void *buf, size_t len)
{
    if (w->jbuf != NULL && w->len + len <= CS_JOURNAL_BLOCK_MAX) {
        if (w->len + len > w->jcap) {
            size_t cap = w->jcap * 2 > w->len + len ? w->jcap * 2 : w->len + len;
            char *nb = realloc(w->jbuf, cap);
            if (nb == NULL)
                return CM_E_NOMEM;
            w->jbuf = nb;
            w->jcap = cap;
        }
        memcpy(w->jbuf + w->len, buf, len);
        return 0;
    }
    if (w->jbuf != NULL) {
        int rc = cs_pwrite_full(w->fd, w->jbuf, (size_t)w->len, 0);
        if (rc < 0)
            return rc;
        free(w->jbuf);
        w->jbuf = NULL;
    }
    return cs_pwrite_full(w->fd, buf, len, w->len);
}

int cs_writer_append(struct cs_writer *w, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t left = len;
    int rc;

    if (w->err < 0)
        return w->err;
    if (w->committed)
        return CM_E_INVAL;
    if (len > w->s->block_size - w->len) {
        w->err = CM_E_TOO_LARGE;
        return w->err;
    }
    rc = keep_small(w, buf, len);
    if (rc < 0) {
        count_nospc(w->s, rc);
        w->err = rc;
        return rc;
    }
    while (left > 0) {
        size_t n = CS_CHUNK_SIZE - w->chunk_fill;
        if (n > left)
            n = left;
        w->chunk_crc = cm_crc32c(w->chunk_crc, p, n);
        w->chunk_fill += n;
        p += n;
        left -= n;
        if (w->chunk_fill == CS_CHUNK_SIZE) {
            /* The block's CRC follows from its chunks' (one pass over the bytes). */
            w->crc = cs_crc32c_combine(w->crc, w->chunk_crc, CS_CHUNK_SIZE);
            w->chunks[w->nchunks++] = w->chunk_crc;
            w->chunk_crc = 0;
            w->chunk_fill = 0;
        }
    }
    w->len += len;
    atomic_fetch_add(&w->s->bytes_written, len);
    if (w->jbuf == NULL && w->len - w->synced >= SYNC_EVERY) {
        /* Start writeback early so the fsync at commit has less to wait for. */
        sync_file_range(w->fd, (off_t)w->synced, (off_t)(w->len - w->synced),
                        SYNC_FILE_RANGE_WRITE);
        w->synced = w->len;
    }
    return 0;
}

uint64_t cs_writer_len(const struct cs_writer *w)
{
    return w->len;
}

/* Compares the held block id with the one just written (its CRC table). */
static int same_block(struct cs_store *s, uint64_t id, const struct cs_writer *w, bool *same)
{
    char path[REL_PATH_MAX];
    uint32_t *chunks = NULL, crc;
    uint64_t len;
    size_t n;
    int fd, rc;

    block_path(s, id, path, sizeof(path));
    fd = openat(s->root_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_errno_code(errno);
    rc = read_trailer(fd, &len, &crc, &chunks, &n);
    close(fd);
    if (rc < 0)
        return rc;
    *same = len == w->len && crc == w->crc && n == w->nchunks &&
            memcmp(chunks, w->chunks, n * sizeof(*chunks)) == 0;
    free(chunks);
    return 0;
}

int cs_writer_commit(struct cs_writer *w, const uint32_t *expected_crc, struct cs_block_info *out)
{
    struct cs_store *s = w->s;
    unsigned char *trailer = NULL, *foot;
    struct blkmap_val *held;
    bool journaled = false;
    size_t tlen;
    uint32_t fcrc;
    int rc = 0;

    if (w->err < 0 || w->committed)
        return w->err < 0 ? w->err : CM_E_INVAL;
    if (w->chunk_fill > 0) {
        w->crc = cs_crc32c_combine(w->crc, w->chunk_crc, w->chunk_fill);
        w->chunks[w->nchunks++] = w->chunk_crc;
        w->chunk_fill = 0;
    }
    if (expected_crc != NULL && *expected_crc != w->crc) {
        rc = CM_E_CORRUPT;
        goto fail;
    }
    tlen = (size_t)CS_TRAILER_BYTES(w->nchunks);
    trailer = malloc(tlen);
    rc = CM_E_NOMEM;
    if (trailer == NULL)
        goto fail;
    for (size_t i = 0; i < w->nchunks; i++)
        cs_put_le32(trailer + 4 * i, w->chunks[i]);
    foot = trailer + 4 * w->nchunks;
    memcpy(foot, FOOTER_MAGIC, 8);
    cs_put_le64(foot + 8, w->len);
    cs_put_le32(foot + 16, w->crc);
    cs_put_le32(foot + 20, CS_CHUNK_SIZE);
    cs_put_le32(foot + 24, (uint32_t)w->nchunks);
    fcrc = cm_crc32c(0, trailer, tlen - 4);
    cs_put_le32(foot + 28, fcrc);
    rc = w->jbuf != NULL ? cs_pwrite_full(w->fd, w->jbuf, (size_t)w->len, 0) : 0;
    if (rc == 0)
        rc = cs_pwrite_full(w->fd, trailer, tlen, w->len);
    if (rc < 0)
        goto fail;
    if (w->jbuf == NULL && fsync(w->fd) < 0) {
        rc = cs_errno_code(errno);
        goto fail;
    }

    pthread_mutex_lock(commit_mu_of(s, w->id));
    pthread_mutex_lock(&s->mu);
    held = blkmap_get(&s->table, w->id);
    bool exists = held != NULL && !(held->flags & F_CORRUPT);
    pthread_mutex_unlock(&s->mu);
    if (exists) {
        bool same = false;
        rc = same_block(s, w->id, w, &same);
        pthread_mutex_unlock(commit_mu_of(s, w->id));
        if (rc == 0 && !same)
            rc = CM_E_EXIST;
        if (rc < 0)
            goto fail;
        /* Idempotent: the same block is already durable. */
        unlinkat(s->root_fd, w->tmp, 0);
        w->committed = true;
        goto done;
    }
    if (w->jbuf != NULL) {
        /* Durable once its record is; the file follows at the next checkpoint. If the journal
         * cannot take it, the block's own file is synced instead. */
        journaled = cs_journal_put(s->journal, w->id, w->jbuf, (size_t)w->len, trailer, tlen) == 0;
        if (!journaled && fsync(w->fd) < 0) {
            rc = cs_errno_code(errno);
            pthread_mutex_unlock(commit_mu_of(s, w->id));
            goto fail;
        }
    }
    if (renameat(s->root_fd, w->tmp, s->root_fd, w->final) < 0) {
        rc = cs_errno_code(errno);
        if (journaled) {
            cs_journal_deleted(s->journal, w->id);
            cs_journal_settle(s->journal);
        }
        pthread_mutex_unlock(commit_mu_of(s, w->id));
        goto fail;
    }
    w->committed = true;
    if (journaled) {
        cs_journal_settle(s->journal);
        rc = 0;
    } else {
        rc = fsync_dir_at(s->root_fd, w->dir);
    }
    if (rc < 0) {
        /* Not durable: take it back out rather than answer success (a corrupt block it
         * replaced is gone too). */
        unlinkat(s->root_fd, w->final, 0);
        pthread_mutex_lock(&s->mu);
        if (blkmap_get(&s->table, w->id) != NULL) {
            table_remove(s, w->id);
            note_change(s, w->id, CHG_REMOVE, 0, 0);
        }
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_unlock(commit_mu_of(s, w->id));
        count_nospc(s, rc);
        free(trailer);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    rc = table_insert(s, w->id, w->len, w->crc, false);
    if (rc == 0)
        note_change(s, w->id, CHG_ADD, w->len, w->crc);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(commit_mu_of(s, w->id));
    if (rc < 0) {
        free(trailer);
        return rc;
    }
done:
    free(trailer);
    close(w->fd);
    w->fd = -1;
    if (out != NULL) {
        out->id = w->id;
        out->len = w->len;
        out->crc = w->crc;
        out->corrupt = false;
    }
    return 0;

fail:
    free(trailer);
    count_nospc(s, rc);
    w->err = rc;
    return rc;
}

void cs_writer_free(struct cs_writer *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (!w->committed && w->tmp[0] != '\0')
        unlinkat(w->s->root_fd, w->tmp, 0);
    free(w->jbuf);
    free(w->chunks);
    free(w);
}

/* ---- reader ---- */

int cs_reader_open(struct cs_store *s, uint64_t id, struct cs_reader **out)
{
    char path[REL_PATH_MAX];
    struct cs_block_info info;
    struct cs_reader *r;
    int rc;

    rc = cs_store_get(s, id, &info);
    if (rc < 0)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CM_E_NOMEM;
    r->s = s;
    r->id = id;
    block_path(s, id, path, sizeof(path));
    r->fd = openat(s->root_fd, path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = cs_errno_code(errno);
        free(r);
        /* Listed but gone: damage, unless a delete just took it out of the table. */
        if (rc == CM_E_NOENT && cs_store_get(s, id, &info) == 0) {
            LOG_WARN("store: block %016" PRIx64 " is listed but its file is missing", id);
            atomic_fetch_add(&s->checksum_failures, 1);
            cs_store_mark_corrupt(s, id);
            rc = CM_E_CORRUPT;
        }
        return rc;
    }
    rc = read_trailer(r->fd, &r->len, &r->crc, &r->chunks, &r->nchunks);
    if (rc == 0 && !info.corrupt && (r->len != info.len || r->crc != info.crc))
        rc = CM_E_CORRUPT;
    if (rc < 0) {
        if (rc == CM_E_CORRUPT) {
            atomic_fetch_add(&s->checksum_failures, 1);
            cs_store_mark_corrupt(s, id);
        }
        cs_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void cs_reader_info(const struct cs_reader *r, struct cs_block_info *out)
{
    out->id = r->id;
    out->len = r->len;
    out->crc = r->crc;
    out->corrupt = false;
}

static int corrupt(struct cs_reader *r, uint64_t off)
{
    char hex[CS_BLOCK_ID_HEX + 1];

    cs_block_id_format(r->id, hex);
    LOG_WARN("store: block %s fails its checksum at chunk %" PRIu64, hex, off / CS_CHUNK_SIZE);
    atomic_fetch_add(&r->s->checksum_failures, 1);
    r->win_valid = false;
    cs_store_mark_corrupt(r->s, r->id);
    return CM_E_CORRUPT;
}

static uint64_t chunk_floor(uint64_t off)
{
    return off - off % CS_CHUNK_SIZE;
}

/* Loads and checks the chunks from off (a chunk boundary) up to end (rounded up to a chunk,
 * capped at the block's end and at CS_READ_WINDOW bytes). */
static int load_window(struct cs_reader *r, uint64_t off, uint64_t end)
{
    size_t want, got;
    int rc;

    end = end + CS_CHUNK_SIZE - 1 - (end + CS_CHUNK_SIZE - 1) % CS_CHUNK_SIZE;
    if (end > r->len)
        end = r->len;
    if (end - off > CS_READ_WINDOW)
        end = off + CS_READ_WINDOW;
    want = (size_t)(end - off);
    if (r->win_valid && r->win_off == off && r->win_len >= want)
        return 0;
    if (r->win == NULL) {
        r->win = malloc(CS_READ_WINDOW);
        if (r->win == NULL)
            return CM_E_NOMEM;
    }
    r->win_valid = false;
    rc = cs_pread_full(r->fd, r->win, want, off, &got);
    if (rc < 0)
        return rc;
    if (got != want)
        return corrupt(r, off + got);
    for (size_t c = 0; c < want; c += CS_CHUNK_SIZE) {
        size_t n = want - c < CS_CHUNK_SIZE ? want - c : CS_CHUNK_SIZE;
        if (cm_crc32c(0, r->win + c, n) != r->chunks[(off + c) / CS_CHUNK_SIZE])
            return corrupt(r, off + c);
    }
    atomic_fetch_add(&r->s->bytes_read, want);
    r->win_off = off;
    r->win_len = want;
    r->win_valid = true;
    return 0;
}

void cs_reader_limit(struct cs_reader *r, uint64_t end)
{
    r->limit = end;
}

int cs_reader_read(struct cs_reader *r, uint64_t off, void *buf, size_t len)
{
    char *p = buf;

    if (off > r->len || len > r->len - off)
        return CM_E_RANGE;
    while (len > 0) {
        size_t n;
        if (!r->win_valid || off < r->win_off || off >= r->win_off + r->win_len) {
            uint64_t end = off + len > r->limit ? off + len : r->limit;
            int rc = load_window(r, chunk_floor(off), end);
            if (rc < 0)
                return rc;
        }
        n = (size_t)(r->win_off + r->win_len - off);
        if (n > len)
            n = len;
        memcpy(p, r->win + (off - r->win_off), n);
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int cs_reader_verify(struct cs_reader *r, uint64_t off, uint64_t len)
{
    uint64_t end = off + len;

    if (off > r->len || len > r->len - off)
        return CM_E_RANGE;
    for (uint64_t w = chunk_floor(off); w < end; w += r->win_len) {
        int rc = load_window(r, w, end);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void cs_reader_free(struct cs_reader *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->chunks);
    free(r->win);
    free(r);
}

/* ---- table operations ---- */

int cs_store_checkpoint(struct cs_store *s)
{
    return s->journal != NULL ? cs_journal_checkpoint(s->journal) : 0;
}

int cs_store_get(struct cs_store *s, uint64_t id, struct cs_block_info *out)
{
    struct blkmap_val *v;
    int rc = CM_E_NOENT;

    pthread_mutex_lock(&s->mu);
    v = blkmap_get(&s->table, id);
    if (v != NULL) {
        out->id = id;
        out->len = v->len;
        out->crc = v->crc;
        out->corrupt = (v->flags & F_CORRUPT) != 0;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int cs_store_delete(struct cs_store *s, uint64_t id)
{
    char path[REL_PATH_MAX];
    int rc = 0;

    block_path(s, id, path, sizeof(path));
    pthread_mutex_lock(commit_mu_of(s, id));
    pthread_mutex_lock(&s->mu);
    if (blkmap_get(&s->table, id) == NULL)
        rc = CM_E_NOENT;
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && unlinkat(s->root_fd, path, 0) < 0 && errno != ENOENT)
        rc = cs_errno_code(errno);
    if (rc == 0 && s->journal != NULL)
        cs_journal_deleted(s->journal, id); /* a replay must not bring it back */
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        table_remove(s, id);
        note_change(s, id, CHG_REMOVE, 0, 0);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(commit_mu_of(s, id));
    return rc;
}

void cs_store_mark_corrupt(struct cs_store *s, uint64_t id)
{
    struct blkmap_val *v;
    bool newly = false;

    pthread_mutex_lock(&s->mu);
    v = blkmap_get(&s->table, id);
    if (v != NULL && !(v->flags & F_CORRUPT)) {
        v->flags |= F_CORRUPT;
        s->ncorrupt++;
        note_change(s, id, CHG_CORRUPT, v->len, v->crc);
        newly = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (newly && s->on_corrupt != NULL)
        s->on_corrupt(s->ctx, id);
}

int cs_store_list(struct cs_store *s, bool reset_changes, struct cs_block_info **out, size_t *n)
{
    struct cs_block_info *a = NULL;
    struct blkmap_val v;
    size_t pos = 0, i = 0;
    uint64_t id;

    pthread_mutex_lock(&s->mu);
    if (s->table.n > 0) {
        a = malloc(s->table.n * sizeof(*a));
        if (a == NULL) {
            pthread_mutex_unlock(&s->mu);
            return CM_E_NOMEM;
        }
    }
    while (blkmap_next(&s->table, &pos, &id, &v)) {
        a[i].id = id;
        a[i].len = v.len;
        a[i].crc = v.crc;
        a[i].corrupt = (v.flags & F_CORRUPT) != 0;
        i++;
    }
    if (reset_changes)
        blkmap_close(&s->changes);
    pthread_mutex_unlock(&s->mu);
    *out = a;
    *n = i;
    return 0;
}

void cs_changes_clear(struct cs_changes *c)
{
    free(c->added);
    free(c->removed);
    free(c->corrupt);
    memset(c, 0, sizeof(*c));
}

int cs_store_take_changes(struct cs_store *s, size_t max, struct cs_changes *out)
{
    struct cs_changes c = {0};
    struct blkmap_val v;
    size_t pos = 0, n, i = 0;
    uint64_t id, *taken = NULL;

    pthread_mutex_lock(&s->mu);
    n = s->changes.n < max ? s->changes.n : max;
    if (n > 0) {
        c.added = malloc(n * sizeof(*c.added));
        c.removed = malloc(n * sizeof(*c.removed));
        c.corrupt = malloc(n * sizeof(*c.corrupt));
        taken = malloc(n * sizeof(*taken));
        if (c.added == NULL || c.removed == NULL || c.corrupt == NULL || taken == NULL) {
            pthread_mutex_unlock(&s->mu);
            cs_changes_clear(&c);
            free(taken);
            return CM_E_NOMEM;
        }
    }
    while (i < n && blkmap_next(&s->changes, &pos, &id, &v)) {
        if (v.flags == CHG_ADD)
            c.added[c.nadded++] = (struct cs_block_info){id, v.len, v.crc, false};
        else if (v.flags == CHG_REMOVE)
            c.removed[c.nremoved++] = id;
        else
            c.corrupt[c.ncorrupt++] = id;
        taken[i++] = id;
    }
    if (n == s->changes.n) {
        blkmap_close(&s->changes);
    } else {
        for (size_t k = 0; k < i; k++)
            blkmap_del(&s->changes, taken[k]);
    }
    pthread_mutex_unlock(&s->mu);
    free(taken);
    *out = c;
    return 0;
}

static void give_back(struct cs_store *s, uint64_t id, unsigned op, uint64_t len, uint32_t crc)
{
    if (blkmap_get(&s->changes, id) == NULL)
        note_change(s, id, op, len, crc);
}

void cs_store_return_changes(struct cs_store *s, const struct cs_changes *c)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < c->nadded; i++)
        give_back(s, c->added[i].id, CHG_ADD, c->added[i].len, c->added[i].crc);
    for (size_t i = 0; i < c->nremoved; i++)
        give_back(s, c->removed[i], CHG_REMOVE, 0, 0);
    for (size_t i = 0; i < c->ncorrupt; i++)
        give_back(s, c->corrupt[i], CHG_CORRUPT, 0, 0);
    pthread_mutex_unlock(&s->mu);
}

void cs_store_stats(struct cs_store *s, struct cs_store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->blocks = s->table.n;
    out->corrupt = s->ncorrupt;
    out->used = s->used;
    pthread_mutex_unlock(&s->mu);
    out->bytes_written = atomic_load(&s->bytes_written);
    out->bytes_read = atomic_load(&s->bytes_read);
    out->checksum_failures = atomic_load(&s->checksum_failures);
    out->no_space = atomic_load(&s->no_space);
    out->journal = s->journal != NULL;
    if (s->journal != NULL) {
        struct cs_journal_stats js;
        cs_journal_stats(s->journal, &js);
        out->journal_records = js.records;
        out->journal_syncs = js.syncs;
        out->journal_checkpoints = js.checkpoints;
        out->journal_used = js.used;
        out->journal_bytes = js.bytes;
    }
}

int cs_store_space(struct cs_store *s, uint64_t *capacity, uint64_t *free_bytes)
{
    struct statvfs st;

    if (fstatvfs(s->root_fd, &st) < 0)
        return CM_E_IO;
    *capacity = (uint64_t)st.f_blocks * st.f_frsize;
    *free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
    return 0;
}
