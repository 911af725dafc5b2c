/* The small-block journal under the store: which blocks go through it, checkpoints, and what a
 * crash leaves. A crash is a copy of the storage directory taken while the store is open (what
 * the disk would hold if the unsynced block files were lost), edited to lose or damage what the
 * journal must bring back, then opened. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunk/journal.h"
#include "chunk/store.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"
#include "cs_harness.h"

#define BS  (1024 * 1024)
#define JNL (4 * 1024 * 1024)

static char *dir;
static char copy[600];

static struct cs_store *open_at(const char *d, uint64_t journal, struct cs_scan_result *scan)
{
    struct cs_store_config cfg = {
        .dir = d, .block_size = BS, .journal_bytes = journal, .journal_manual = true};
    struct cs_store *s = NULL;
    int rc = cs_store_open(&cfg, &s, scan);

    cr_assert_eq(rc, 0, "open %s: %s", d, cm_errname(rc));
    return s;
}

static void setup(void)
{
    cm_log_init("test", CM_LOG_ERROR);
    dir = th_tmpdir();
    snprintf(copy, sizeof(copy), "%s.crash", dir);
}

static void teardown(void)
{
    th_rmrf(copy);
    th_rmrf(dir);
    free(dir);
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 120);

static struct cs_store_stats stats(struct cs_store *s)
{
    struct cs_store_stats st;
    cs_store_stats(s, &st);
    return st;
}

static void expect_format(const char *d, const char *line)
{
    char path[700], got[64] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/FORMAT", d);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(got, sizeof(got), f));
    fclose(f);
    cr_assert_str_eq(got, line);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The disk as a crash would leave it: everything written so far, synced or not. */
static void crash_copy(void)
{
    cr_assert_eq(sh("rm -rf %s && cp -a %s %s", copy, dir, copy), 0);
}

/* Where format 3 keeps block id's file in the copy (present or not). */
static void copy_block_path(uint64_t id, char *out, size_t cap)
{
    char hex[CS_BLOCK_ID_HEX + 1];

    cs_block_id_format(id, hex);
    snprintf(out, cap, "%s/blocks/%.2s/%.2s/%s.blk", copy, hex + 10, hex + 12, hex);
}

Test(journal, small_blocks_go_through_it_and_a_checkpoint_empties_it)
{
    struct cs_store *s = open_at(dir, JNL, NULL);
    static char data[300 * 1024];

    th_random(data, sizeof(data), 1);
    expect_format(dir, "dfs-chunkserver-store 3\n");
    cr_assert(stats(s).journal);
    cr_assert_eq(stats(s).journal_bytes, JNL);
    th_store_put(s, 1, data, 1000);
    th_store_put(s, 2, data, 64 * 1024);
    th_store_put(s, 3, data, CS_JOURNAL_BLOCK_MAX);
    th_store_put(s, 4, data, CS_JOURNAL_BLOCK_MAX + 1); /* a large block: its own file synced */
    struct cs_store_stats st = stats(s);
    cr_assert_eq(st.journal_records, 3);
    cr_assert_geq(st.journal_syncs, 1);
    cr_assert_leq(st.journal_syncs, 3);
    cr_assert_gt(st.journal_used, 1000 + 64 * 1024 + CS_JOURNAL_BLOCK_MAX);
    th_store_expect(s, 1, data, 1000);
    th_store_expect(s, 2, data, 64 * 1024);
    th_store_expect(s, 3, data, CS_JOURNAL_BLOCK_MAX);
    th_store_expect(s, 4, data, CS_JOURNAL_BLOCK_MAX + 1);

    cr_assert_eq(cs_store_checkpoint(s), 0);
    st = stats(s);
    cr_assert_eq(st.journal_used, 0);
    cr_assert_eq(st.journal_checkpoints, 1);
    th_store_expect(s, 1, data, 1000);
    cs_store_close(s);
}

/* Block files lost or damaged by the crash come back from the journal; a block deleted before
 * the crash stays deleted even if its unlink was lost; a large block is not in the journal. */
Test(journal, a_crash_before_the_checkpoint_is_replayed)
{
    struct cs_store *s = open_at(dir, JNL, NULL);
    struct cs_scan_result scan;
    struct cs_block_info info;
    char path[700], pb[700], cmd_b[700];
    static char data[100 * 1024];

    th_random(data, sizeof(data), 2);
    th_store_put(s, 0xa, data, 5000);
    th_store_put(s, 0xb, data + 1, 6000);
    th_store_put(s, 0xc, data + 2, 70000);
    th_block_path(dir, 0xb, pb, sizeof(pb));
    snprintf(cmd_b, sizeof(cmd_b), "%s.saved", copy);
    cr_assert_eq(sh("cp %s %s", pb, cmd_b), 0);
    cr_assert_eq(cs_store_delete(s, 0xb), 0);
    crash_copy();
    cs_store_close(s);

    copy_block_path(0xa, path, sizeof(path));
    cr_assert_eq(unlink(path), 0); /* never written back */
    copy_block_path(0xc, path, sizeof(path));
    th_flip(path, 100); /* written back in part */
    copy_block_path(0xb, path, sizeof(path));
    cr_assert_eq(sh("mv %s %s", cmd_b, path), 0); /* the unlink did not reach the disk */

    s = open_at(copy, JNL, &scan);
    cr_assert_eq(scan.blocks, 2);
    cr_assert_eq(scan.corrupt, 0);
    th_store_expect(s, 0xa, data, 5000);
    th_store_expect(s, 0xc, data + 2, 70000);
    cr_assert_eq(cs_store_get(s, 0xb, &info), CM_E_NOENT);
    cr_assert(!th_exists(path));
    /* Replayed and checkpointed: the journal starts empty. */
    cr_assert_eq(stats(s).journal_used, 0);
    cs_store_close(s);
}

/* A record the crash cut off (here: damaged) ends the replay; the ones before it count. */
Test(journal, a_torn_record_ends_the_replay)
{
    struct cs_store *s = open_at(dir, JNL, NULL);
    struct cs_scan_result scan;
    struct cs_block_info info;
    char path[700];
    static char data[10000];
    uint64_t file_a;

    th_random(data, sizeof(data), 3);
    th_store_put(s, 0x1, data, 3000);
    th_store_put(s, 0x2, data, 4000);
    th_store_put(s, 0x3, data, 5000);
    th_block_path(dir, 0x1, path, sizeof(path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    file_a = (uint64_t)st.st_size;
    crash_copy();
    cs_store_close(s);

    for (uint64_t id = 1; id <= 3; id++) {
        copy_block_path(id, path, sizeof(path));
        cr_assert_eq(unlink(path), 0);
    }
    /* One byte of the second record's data. */
    snprintf(path, sizeof(path), "%s/" CS_JOURNAL_FILE, copy);
    th_flip(path, (long)(CS_JOURNAL_HEADER + CS_JOURNAL_RECORD_HEADER + file_a +
                         CS_JOURNAL_RECORD_HEADER + 10));

    s = open_at(copy, JNL, &scan);
    cr_assert_eq(scan.blocks, 1);
    th_store_expect(s, 0x1, data, 3000);
    cr_assert_eq(cs_store_get(s, 0x2, &info), CM_E_NOENT);
    cr_assert_eq(cs_store_get(s, 0x3, &info), CM_E_NOENT);
    cs_store_close(s);
}

/* More than the journal holds: it checkpoints as it fills, and every block stays. */
Test(journal, a_full_journal_checkpoints_and_keeps_every_block)
{
    struct cs_store *s = open_at(dir, CS_JOURNAL_MIN_BYTES, NULL);
    struct cs_scan_result scan;
    static char data[100 * 1024 + 40];

    th_random(data, sizeof(data), 4);
    cr_assert_eq(stats(s).journal_bytes, CS_JOURNAL_MIN_BYTES);
    for (uint64_t id = 1; id <= 40; id++)
        th_store_put(s, id, data + id, 100 * 1024);
    struct cs_store_stats st = stats(s);
    cr_assert_eq(st.journal_records, 40);
    cr_assert_geq(st.journal_checkpoints, 3);
    crash_copy();
    for (uint64_t id = 1; id <= 40; id++)
        th_store_expect(s, id, data + id, 100 * 1024);
    cs_store_close(s);

    s = open_at(copy, CS_JOURNAL_MIN_BYTES, &scan);
    cr_assert_eq(scan.blocks, 40);
    for (uint64_t id = 1; id <= 40; id++)
        th_store_expect(s, id, data + id, 100 * 1024);
    cs_store_close(s);
}

struct writer_arg {
    struct cs_store *s;
    int t;
    const char *data;
};

#define THREADS     8
#define PER_THREAD  25
#define THREAD_SIZE 4096

static void *writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t id = (uint64_t)(a->t * 1000 + i + 1);
        struct cs_writer *w = NULL;
        if (cs_writer_open(a->s, id, THREAD_SIZE, &w) != 0 ||
            cs_writer_append(w, a->data + id, THREAD_SIZE) != 0 ||
            cs_writer_commit(w, NULL, NULL) != 0) {
            cs_writer_free(w);
            return (void *)1;
        }
        cs_writer_free(w);
    }
    return NULL;
}

/* Writers committing side by side (whether they share a sync depends on timing, so that is not
 * asserted): every commit is a record, and after a crash that lost every block file each of
 * their blocks comes back. */
Test(journal, concurrent_writers_all_come_back_after_a_crash)
{
    struct cs_store *s = open_at(dir, JNL, NULL);
    struct cs_scan_result scan;
    struct writer_arg args[THREADS];
    pthread_t th[THREADS];
    static char data[THREADS * 1000 + PER_THREAD + THREAD_SIZE + 1];
    char path[700];

    th_random(data, sizeof(data), 5);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct writer_arg){s, t, data};
        cr_assert_eq(pthread_create(&th[t], NULL, writer, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        cr_assert_null(ret, "writer %d failed", t);
    }
    struct cs_store_stats st = stats(s);
    cr_assert_eq(st.journal_records, THREADS * PER_THREAD);
    cr_assert_leq(st.journal_syncs, THREADS * PER_THREAD);
    crash_copy();
    cs_store_close(s);

    cr_assert_eq(sh("find %s/blocks -name '*.blk' -delete", copy), 0);
    s = open_at(copy, JNL, &scan);
    cr_assert_eq(scan.blocks, THREADS * PER_THREAD);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t id = (uint64_t)(t * 1000 + i + 1);
            th_store_expect(s, id, data + id, THREAD_SIZE);
            copy_block_path(id, path, sizeof(path));
            cr_assert(th_exists(path));
        }
    cs_store_close(s);
}

/* A format 2 store asked for a journal becomes format 3 and keeps its blocks; one asked for none
 * stays format 2; a journal whose header is damaged is refused, not reset. */
Test(journal, format_2_is_upgraded_and_a_damaged_header_refused)
{
    struct cs_store_config cfg = {.dir = dir, .block_size = BS, .journal_bytes = JNL};
    struct cs_store *s = open_at(dir, 0, NULL);
    char path[700];
    static char data[5000];

    th_random(data, sizeof(data), 6);
    expect_format(dir, "dfs-chunkserver-store 2\n");
    cr_assert(!stats(s).journal);
    th_store_put(s, 7, data, 5000);
    cs_store_close(s);
    snprintf(path, sizeof(path), "%s/" CS_JOURNAL_FILE, dir);
    cr_assert(!th_exists(path));

    s = open_at(dir, JNL, NULL);
    expect_format(dir, "dfs-chunkserver-store 3\n");
    cr_assert(th_exists(path));
    th_store_expect(s, 7, data, 5000);
    th_store_put(s, 8, data, 4000);
    cr_assert_eq(stats(s).journal_records, 1);
    cs_store_close(s);

    /* Asked for none now: a store that has a journal keeps it. */
    s = open_at(dir, 0, NULL);
    cr_assert(stats(s).journal);
    th_store_expect(s, 8, data, 4000);
    cs_store_close(s);

    th_flip(path, 3);
    s = NULL;
    cr_assert_eq(cs_store_open(&cfg, &s, NULL), CM_E_STORE);
    cr_assert_null(s);
}
