/* The small-block journal (chunk/journal.h). One mutex guards the write position, the synced
 * position and the checkpoint state; records are written under it (small copies into the page
 * cache), the fdatasync is made outside it by one of the waiting writers for everything written
 * so far (group commit). A checkpoint stops new records, waits until every durable record's block
 * file is in place (settled), syncs the file system and starts a new generation. */
#include "chunk/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "chunk/cs_internal.h"
#include "chunk/fileio.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"

#define HDR_MAGIC   "DFSJRNL1"
#define REC_MAGIC   "DFSJREC1"
#define JOURNAL_TMP CS_JOURNAL_FILE ".tmp"
/* The background checkpoint: when half the journal is used, when no record came for IDLE_MS, or
 * when the oldest record is MAX_AGE_MS old; it looks every TICK_MS. */
#define IDLE_MS    1000
#define MAX_AGE_MS 30000
#define TICK_MS    200

struct cs_journal {
    int root_fd;
    int fd;
    uint64_t bytes;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* synced, settled, checkpoint done, stop */
    uint64_t gen;
    uint64_t tail;   /* where the next record goes */
    uint64_t synced; /* durable up to here */
    bool syncing;
    bool checkpointing;
    unsigned unsettled; /* durable block records whose files are not yet in place */
    int err;            /* CM_E_IO once a write or sync failed: the journal is not used again */
    uint64_t first_ms;  /* when the generation's first record came; 0: none yet */
    uint64_t last_ms;   /* when its last record came */
    struct cs_journal_stats st;
    pthread_t thread;
    bool thread_started;
    bool stop;
};

/* Reads exactly len bytes at off: CM_E_RANGE past the end of the file. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got;
    int rc = cs_pread_full(fd, buf, len, off, &got);

    return rc < 0 ? rc : got == len ? 0 : CM_E_RANGE;
}

/* Writes the header of generation gen and syncs it. */
static int write_header(int fd, uint64_t gen)
{
    unsigned char h[20];

    memcpy(h, HDR_MAGIC, 8);
    cs_put_le64(h + 8, gen);
    cs_put_le32(h + 16, cm_crc32c(0, h, 16));
    int rc = cs_pwrite_full(fd, h, sizeof(h), 0);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = cs_errno_code(errno);
    return rc;
}

static void record_header(unsigned char h[CS_JOURNAL_RECORD_HEADER], uint64_t gen, uint64_t id,
                          uint32_t kind, uint32_t plen)
{
    memset(h, 0, CS_JOURNAL_RECORD_HEADER);
    memcpy(h, REC_MAGIC, 8);
    cs_put_le64(h + 8, gen);
    cs_put_le64(h + 16, id);
    cs_put_le32(h + 24, kind);
    cs_put_le32(h + 28, plen);
}

/* Creates the journal: a temporary name, its space reserved, the header, synced, renamed. */
static int create_file(int root_fd, uint64_t bytes)
{
    int fd = openat(root_fd, JOURNAL_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;

    if (fd < 0)
        return cs_errno_code(errno);
    if (ftruncate(fd, (off_t)bytes) < 0)
        rc = cs_errno_code(errno);
    /* Reserved, so that a full disk is found now and appends never extend the file. */
    if (rc == 0 && (rc = posix_fallocate(fd, 0, (off_t)bytes)) != 0)
        rc = rc == EOPNOTSUPP || rc == EINVAL ? 0 : cs_errno_code(rc);
    if (rc == 0)
        rc = write_header(fd, 1);
    if (rc == 0 && fsync(fd) < 0)
        rc = cs_errno_code(errno);
    close(fd);
    if (rc == 0 && renameat(root_fd, JOURNAL_TMP, root_fd, CS_JOURNAL_FILE) < 0)
        rc = cs_errno_code(errno);
    if (rc == 0 && fsync(root_fd) < 0)
        rc = cs_errno_code(errno);
    if (rc < 0)
        unlinkat(root_fd, JOURNAL_TMP, 0);
    return rc;
}

/* Hands every record of the generation to fn; sets *end to where they stop. */
static int replay(struct cs_journal *j, cs_journal_replay_fn fn, void *ctx, uint64_t *end,
                  size_t *count)
{
    unsigned char h[CS_JOURNAL_RECORD_HEADER];
    uint64_t off = CS_JOURNAL_HEADER;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;

    *count = 0;
    while (off + CS_JOURNAL_RECORD_HEADER <= j->bytes) {
        if (pread_all(j->fd, h, sizeof(h), off) < 0)
            break;
        uint32_t kind = cs_get_le32(h + 24), plen = cs_get_le32(h + 28);
        if (memcmp(h, REC_MAGIC, 8) != 0 || cs_get_le64(h + 8) != j->gen ||
            (kind != CS_JOURNAL_BLOCK && kind != CS_JOURNAL_DELETED) ||
            (kind == CS_JOURNAL_DELETED && plen != 0) ||
            plen > j->bytes - off - CS_JOURNAL_RECORD_HEADER)
            break;
        if (plen > cap) {
            char *nb = realloc(buf, plen);
            if (nb == NULL) {
                rc = CM_E_NOMEM;
                break;
            }
            buf = nb;
            cap = plen;
        }
        if (plen > 0 && pread_all(j->fd, buf, plen, off + sizeof(h)) < 0)
            break;
        uint32_t crc = cm_crc32c(cm_crc32c(0, h, 32), buf, plen);
        if (crc != cs_get_le32(h + 32))
            break; /* torn: the write the crash cut off, never acknowledged */
        rc = fn(ctx, (enum cs_journal_kind)kind, cs_get_le64(h + 16), plen ? buf : NULL, plen);
        if (rc < 0)
            break;
        (*count)++;
        off += sizeof(h) + plen;
    }
    free(buf);
    *end = off;
    return rc;
}

static void *checkpointer(void *arg);

int cs_journal_open(int root_fd, uint64_t bytes, bool background, cs_journal_replay_fn fn,
                    void *ctx, struct cs_journal **out)
{
    unsigned char h[20];
    struct cs_journal *j;
    pthread_condattr_t ca;
    struct stat stt;
    uint64_t end;
    size_t count;
    int rc;

    if (bytes < CS_JOURNAL_MIN_BYTES)
        return CM_E_INVAL;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return CM_E_NOMEM;
    j->root_fd = root_fd;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);

    j->fd = openat(root_fd, CS_JOURNAL_FILE, O_RDWR | O_CLOEXEC);
    if (j->fd < 0 && errno == ENOENT) {
        unlinkat(root_fd, JOURNAL_TMP, 0);
        rc = create_file(root_fd, bytes);
        if (rc < 0) {
            LOG_ERROR("store: cannot create the journal: %s", cm_strerror(rc));
            goto fail;
        }
        j->fd = openat(root_fd, CS_JOURNAL_FILE, O_RDWR | O_CLOEXEC);
    }
    if (j->fd < 0) {
        rc = cs_errno_code(errno);
        LOG_ERROR("store: cannot open the journal: %s", strerror(errno));
        goto fail;
    }
    rc = CM_E_IO;
    if (fstat(j->fd, &stt) < 0)
        goto fail;
    j->bytes = (uint64_t)stt.st_size;
    rc = CM_E_STORE;
    if (j->bytes < CS_JOURNAL_MIN_BYTES || pread_all(j->fd, h, sizeof(h), 0) < 0 ||
        memcmp(h, HDR_MAGIC, 8) != 0 || cs_get_le32(h + 16) != cm_crc32c(0, h, 16)) {
        LOG_ERROR("store: the journal (%s) is damaged: its header or size is not valid",
                  CS_JOURNAL_FILE);
        goto fail;
    }
    j->gen = cs_get_le64(h + 8);
    rc = replay(j, fn, ctx, &end, &count);
    if (rc < 0) {
        LOG_ERROR("store: replaying the journal failed: %s", cm_strerror(rc));
        goto fail;
    }
    /* The replayed files are durable before the records go. A new generation even when none
     * was replayed: records of this one that a crash left past a torn one (never acknowledged)
     * must not be read as part of the next life's records. */
    rc = count > 0 && syncfs(root_fd) < 0 ? cs_errno_code(errno) : write_header(j->fd, j->gen + 1);
    if (rc < 0)
        goto fail;
    j->gen++;
    if (count > 0)
        LOG_INFO("store: journal replayed: %zu records, %" PRIu64 " bytes", count,
                 end - CS_JOURNAL_HEADER);
    j->tail = j->synced = CS_JOURNAL_HEADER;
    j->st.bytes = j->bytes;
    if (background) {
        if (pthread_create(&j->thread, NULL, checkpointer, j) != 0) {
            rc = CM_E_NOMEM;
            goto fail;
        }
        j->thread_started = true;
    }
    *out = j;
    return 0;

fail:
    if (j->fd >= 0)
        close(j->fd);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return rc;
}

uint64_t cs_journal_max_payload(const struct cs_journal *j)
{
    uint64_t room = j->bytes - CS_JOURNAL_HEADER - CS_JOURNAL_RECORD_HEADER;
    return room < UINT32_MAX ? room : UINT32_MAX;
}

/* Ends the generation (called and returning with j->mu held). */
static int checkpoint_locked(struct cs_journal *j)
{
    int rc = 0;

    while (j->checkpointing)
        pthread_cond_wait(&j->cv, &j->mu);
    if (j->err < 0)
        return j->err;
    if (j->tail == CS_JOURNAL_HEADER)
        return 0;
    j->checkpointing = true;
    while (j->unsettled > 0 || j->syncing)
        pthread_cond_wait(&j->cv, &j->mu);
    uint64_t gen = j->gen + 1;
    pthread_mutex_unlock(&j->mu);
    /* Every journaled block's file (and every rename and unlink before) reaches the disk. */
    if (syncfs(j->root_fd) < 0)
        rc = cs_errno_code(errno);
    if (rc == 0)
        rc = write_header(j->fd, gen);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        j->gen = gen;
        j->tail = j->synced = CS_JOURNAL_HEADER;
        j->first_ms = 0;
        j->st.checkpoints++;
        j->st.used = 0;
    } else {
        LOG_ERROR("store: journal checkpoint failed: %s; small blocks are synced one by one now",
                  cm_strerror(rc));
        j->err = CM_E_IO;
    }
    j->checkpointing = false;
    pthread_cond_broadcast(&j->cv);
    return rc < 0 ? CM_E_IO : 0;
}

/* Waits with j->mu held for room for len bytes in a generation no checkpoint is ending. */
static int make_room(struct cs_journal *j, uint64_t len)
{
    for (;;) {
        if (j->err < 0)
            return j->err;
        if (j->checkpointing) {
            pthread_cond_wait(&j->cv, &j->mu);
            continue;
        }
        if (j->tail + len <= j->bytes)
            return 0;
        int rc = checkpoint_locked(j);
        if (rc < 0)
            return rc;
    }
}

/* Syncs (or waits for a sync of) everything up to end, with j->mu held. */
static int sync_to(struct cs_journal *j, uint64_t end)
{
    while (j->synced < end && j->err == 0) {
        if (j->syncing) {
            pthread_cond_wait(&j->cv, &j->mu);
            continue;
        }
        uint64_t target = j->tail;
        j->syncing = true;
        pthread_mutex_unlock(&j->mu);
        int r = fdatasync(j->fd), e = errno;
        pthread_mutex_lock(&j->mu);
        j->syncing = false;
        if (r < 0) {
            LOG_ERROR("store: journal sync failed: %s; small blocks are synced one by one now",
                      strerror(e));
            j->err = CM_E_IO;
        } else if (target > j->synced) {
            j->synced = target;
            j->st.syncs++;
        }
        pthread_cond_broadcast(&j->cv);
    }
    return j->synced >= end ? 0 : j->err;
}

static void note_record(struct cs_journal *j, uint64_t len)
{
    uint64_t now = cs_now_ms();

    j->tail += len;
    j->st.used = j->tail - CS_JOURNAL_HEADER;
    if (j->first_ms == 0)
        j->first_ms = now;
    j->last_ms = now;
}

int cs_journal_put(struct cs_journal *j, uint64_t id, const void *a, size_t alen, const void *b,
                   size_t blen)
{
    unsigned char h[CS_JOURNAL_RECORD_HEADER];
    uint64_t plen = (uint64_t)alen + blen, len = sizeof(h) + plen;
    struct iovec iov[3];
    ssize_t n;
    int rc;

    if (plen > cs_journal_max_payload(j))
        return CM_E_TOO_LARGE;
    pthread_mutex_lock(&j->mu);
    rc = make_room(j, len);
    if (rc < 0) {
        pthread_mutex_unlock(&j->mu);
        return CM_E_IO;
    }
    record_header(h, j->gen, id, CS_JOURNAL_BLOCK, (uint32_t)plen);
    cs_put_le32(h + 32, cm_crc32c(cm_crc32c(cm_crc32c(0, h, 32), a, alen), b, blen));
    iov[0] = (struct iovec){h, sizeof(h)};
    iov[1] = (struct iovec){(void *)a, alen};
    iov[2] = (struct iovec){(void *)b, blen};
    do
        n = pwritev(j->fd, iov, 3, (off_t)j->tail);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len) {
        /* A short write into reserved space is not expected: a failure too. */
        LOG_ERROR("store: journal write failed: %s; small blocks are synced one by one now",
                  n < 0 ? strerror(errno) : "short write");
        j->err = CM_E_IO;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        return CM_E_IO;
    }
    note_record(j, len);
    j->st.records++;
    j->unsettled++;
    rc = sync_to(j, j->tail);
    if (rc < 0) {
        j->unsettled--;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return rc < 0 ? CM_E_IO : 0;
}

void cs_journal_settle(struct cs_journal *j)
{
    pthread_mutex_lock(&j->mu);
    if (--j->unsettled == 0)
        pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int cs_journal_deleted(struct cs_journal *j, uint64_t id)
{
    unsigned char h[CS_JOURNAL_RECORD_HEADER];
    int rc;

    pthread_mutex_lock(&j->mu);
    rc = make_room(j, sizeof(h));
    if (rc == 0 && j->tail == CS_JOURNAL_HEADER)
        goto out; /* no record of this generation can name it */
    if (rc == 0) {
        record_header(h, j->gen, id, CS_JOURNAL_DELETED, 0);
        cs_put_le32(h + 32, cm_crc32c(0, h, 32));
        rc = cs_pwrite_full(j->fd, h, sizeof(h), j->tail);
        if (rc == 0)
            note_record(j, sizeof(h));
        else
            j->err = CM_E_IO;
    }
out:
    pthread_mutex_unlock(&j->mu);
    return rc < 0 ? CM_E_IO : 0;
}

int cs_journal_checkpoint(struct cs_journal *j)
{
    pthread_mutex_lock(&j->mu);
    int rc = checkpoint_locked(j);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void cs_journal_stats(struct cs_journal *j, struct cs_journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    pthread_mutex_unlock(&j->mu);
}

static void *checkpointer(void *arg)
{
    struct cs_journal *j = arg;

    pthread_setname_np(pthread_self(), "cs-journal");

    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        uint64_t now = cs_now_ms();
        if (j->err == 0 && !j->checkpointing && j->tail > CS_JOURNAL_HEADER &&
            (j->tail - CS_JOURNAL_HEADER > (j->bytes - CS_JOURNAL_HEADER) / 2 ||
             now - j->last_ms >= IDLE_MS || now - j->first_ms >= MAX_AGE_MS)) {
            checkpoint_locked(j);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

void cs_journal_close(struct cs_journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->thread_started)
        pthread_join(j->thread, NULL);
    /* A clean stop leaves an empty journal. */
    cs_journal_checkpoint(j);
    close(j->fd);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}
