/* The block store without HTTP: file layout and atomic commits, verified reads, corruption found
 * by reads, at open and by the scrubber, restart (temporaries dropped, blocks found again), the
 * change log, the directory lock, and the block table map. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk/blkmap.h"
#include "chunk/crc_combine.h"
#include "chunk/scrubber.h"
#include "chunk/store.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/log.h"
#include "cs_harness.h"

#define BS (1024 * 1024)

static char *dir;
static atomic_int corrupt_calls;
static _Atomic uint64_t corrupt_last;

static void on_corrupt(void *ctx, uint64_t id)
{
    (void)ctx;
    atomic_fetch_add(&corrupt_calls, 1);
    atomic_store(&corrupt_last, id);
}

static struct cs_store *open_store(struct cs_scan_result *scan)
{
    struct cs_store_config cfg = {.dir = dir, .block_size = BS, .on_corrupt = on_corrupt};
    struct cs_store *s = NULL;
    int rc = cs_store_open(&cfg, &s, scan);

    cr_assert_eq(rc, 0, "open: %s", cm_errname(rc));
    return s;
}

static void setup(void)
{
    cm_log_init("test", CM_LOG_ERROR);
    dir = th_tmpdir();
    atomic_store(&corrupt_calls, 0);
}

static void teardown(void)
{
    th_rmrf(dir);
    free(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

Test(store, block_ids)
{
    uint64_t id;
    char hex[CS_BLOCK_ID_HEX + 1];

    cr_assert_eq(cs_block_id_parse("00000000000000ff", &id), 0);
    cr_assert_eq(id, 255);
    cr_assert_eq(cs_block_id_parse("ffffffffffffffff", &id), 0);
    cr_assert_eq(id, UINT64_MAX);
    cs_block_id_format(0xabcdef, hex);
    cr_assert_str_eq(hex, "0000000000abcdef");
    const char *bad[] = {"",
                         "ff",
                         "00000000000000FF",
                         "000000000000000g",
                         "0000000000000000a",
                         "../../etc/passw",
                         "00000000/0000000",
                         " 000000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cs_block_id_parse(bad[i], &id), CM_E_INVAL, "%s", bad[i]);
    cr_assert_eq(cs_block_id_parse(NULL, &id), CM_E_INVAL);
}

Test(store, layout_and_roundtrip)
{
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, BS - 1, BS};
    struct cs_store *s = open_store(NULL);
    char *data = malloc(BS), path[512];
    struct stat st;

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        th_random(data, sizes[k], (uint32_t)k);
        th_store_put(s, 0x1234500 + k, data, sizes[k]);
        th_store_expect(s, 0x1234500 + k, data, sizes[k]);
        th_block_path(dir, 0x1234500 + k, path, sizeof(path));
        cr_assert_eq(stat(path, &st), 0, "%s", path);
        cr_assert_eq((uint64_t)st.st_size, sizes[k] + CS_TRAILER_BYTES((sizes[k] + 65535) / 65536));
    }
    cr_assert_eq(th_count_temps(dir), 0);
    cs_store_close(s);
    free(data);
}

Test(store, reads_check_only_the_chunks_they_touch)
{
    struct cs_store *s = open_store(NULL);
    char *data = malloc(BS), path[512], buf[100];
    struct cs_reader *r = NULL;
    struct cs_block_info info;

    th_random(data, BS, 1);
    th_store_put(s, 5, data, BS);
    th_block_path(dir, 5, path, sizeof(path));
    th_flip(path, 3 * 65536 + 10);
    cr_assert_eq(cs_reader_open(s, 5, &r), 0);
    cr_assert_eq(cs_reader_read(r, 100, buf, 100), 0);
    cr_assert(memcmp(buf, data + 100, 100) == 0);
    cr_assert_eq(cs_reader_read(r, 4 * 65536, buf, 100), 0);
    cr_assert_eq(atomic_load(&corrupt_calls), 0);
    cr_assert_eq(cs_reader_read(r, 3 * 65536 + 5, buf, 10), CM_E_CORRUPT);
    cr_assert_eq(cs_reader_verify(r, 0, BS), CM_E_CORRUPT);
    cs_reader_free(r);
    cr_assert_eq(atomic_load(&corrupt_calls), 1, "on_corrupt is called once per block");
    cr_assert_eq(atomic_load(&corrupt_last), 5);
    cr_assert_eq(cs_store_get(s, 5, &info), 0);
    cr_assert(info.corrupt);
    cs_store_close(s);
    free(data);
}

Test(store, expected_crc_and_abandoned_writes_leave_nothing)
{
    struct cs_store *s = open_store(NULL);
    struct cs_writer *w = NULL;
    struct cs_block_info info;
    char data[100000];
    uint32_t crc;

    th_random(data, sizeof(data), 2);
    crc = cm_crc32c(0, data, sizeof(data)) + 1;
    cr_assert_eq(cs_writer_open(s, 1, -1, &w), 0);
    cr_assert_eq(cs_writer_append(w, data, sizeof(data)), 0);
    cr_assert_eq(th_count_temps(dir), 1);
    cr_assert_eq(cs_writer_commit(w, &crc, NULL), CM_E_CORRUPT);
    cs_writer_free(w);
    cr_assert_eq(cs_store_get(s, 1, &info), CM_E_NOENT);
    cr_assert_eq(th_count_temps(dir), 0);

    cr_assert_eq(cs_writer_open(s, 2, sizeof(data), &w), 0);
    cr_assert_eq(cs_writer_append(w, data, 5000), 0);
    cs_writer_free(w); /* the client went away */
    cr_assert_eq(cs_store_get(s, 2, &info), CM_E_NOENT);
    cr_assert_eq(th_count_temps(dir), 0);

    cr_assert_eq(cs_writer_open(s, 3, BS + 1, &w), CM_E_TOO_LARGE);
    cr_assert_eq(cs_writer_open(s, 3, -1, &w), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(cs_writer_append(w, data, sizeof(data)), 0);
    cr_assert_eq(cs_writer_append(w, data, sizeof(data)), CM_E_TOO_LARGE);
    cs_writer_free(w);
    cr_assert_eq(th_count_temps(dir), 0);
    cs_store_close(s);
}

Test(store, same_id_same_content_idempotent_else_exists)
{
    struct cs_store *s = open_store(NULL);
    struct cs_writer *w = NULL;
    char a[70000], b[70000];

    th_random(a, sizeof(a), 3);
    memcpy(b, a, sizeof(b));
    b[69999] ^= 1;
    th_store_put(s, 9, a, sizeof(a));
    th_store_put(s, 9, a, sizeof(a));
    cr_assert_eq(cs_writer_open(s, 9, sizeof(b), &w), 0);
    cr_assert_eq(cs_writer_append(w, b, sizeof(b)), 0);
    cr_assert_eq(cs_writer_commit(w, NULL, NULL), CM_E_EXIST);
    cs_writer_free(w);
    th_store_expect(s, 9, a, sizeof(a));
    cr_assert_eq(th_count_temps(dir), 0);
    cs_store_close(s);
}

Test(store, corrupt_block_is_replaced_by_a_new_write)
{
    struct cs_store *s = open_store(NULL);
    struct cs_block_info info;
    char a[10000], path[512];

    th_random(a, sizeof(a), 4);
    th_store_put(s, 10, a, sizeof(a));
    th_block_path(dir, 10, path, sizeof(path));
    th_flip(path, 10);
    cs_store_mark_corrupt(s, 10);
    th_store_put(s, 10, a, sizeof(a));
    cr_assert_eq(cs_store_get(s, 10, &info), 0);
    cr_assert_not(info.corrupt);
    th_store_expect(s, 10, a, sizeof(a));
    cs_store_close(s);
}

Test(store, restart_drops_temporaries_and_finds_blocks)
{
    struct cs_store *s = open_store(NULL);
    struct cs_scan_result scan;
    struct cs_block_info *list = NULL, info;
    char data[200000], path[600], fandir[512];
    size_t n = 0;
    int fd;

    th_random(data, sizeof(data), 5);
    for (uint64_t id = 1; id <= 20; id++)
        th_store_put(s, id * 0x10001, data, sizeof(data) - id);
    /* Unfinished writes, as a crash leaves them: beside a block's file, wherever it is. */
    th_block_path(dir, 0x10001, fandir, sizeof(fandir));
    *strrchr(fandir, '/') = '\0';
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/0000000000010001.tmp.%d", fandir, i);
        fd = open(path, O_WRONLY | O_CREAT, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, data, 1000), 1000);
        close(fd);
    }
    cr_assert_eq(th_count_temps(dir), 2);
    /* A block whose footer was damaged on disk. */
    th_store_put(s, 888, data, 1000);
    th_block_path(dir, 888, path, sizeof(path));
    th_flip(path, 1000 + 4 + 10);
    cs_store_close(s);

    s = open_store(&scan);
    cr_assert_eq(scan.temps_removed, 2);
    cr_assert_eq(scan.blocks, 21);
    cr_assert_eq(scan.corrupt, 1);
    cr_assert_eq(th_count_temps(dir), 0);
    cr_assert_eq(cs_store_list(s, true, &list, &n), 0);
    cr_assert_eq(n, 21);
    free(list);
    for (uint64_t id = 1; id <= 20; id++) {
        cr_assert_eq(cs_store_get(s, id * 0x10001, &info), 0);
        cr_assert_eq(info.len, sizeof(data) - id);
        cr_assert_eq(info.crc, cm_crc32c(0, data, sizeof(data) - id));
        th_store_expect(s, id * 0x10001, data, sizeof(data) - id);
    }
    cr_assert_eq(cs_store_get(s, 888, &info), 0);
    cr_assert(info.corrupt);
    struct cs_reader *r = NULL;
    cr_assert_eq(cs_reader_open(s, 888, &r), CM_E_CORRUPT);
    cs_store_close(s);
}

Test(store, second_open_is_busy_and_foreign_format_refused)
{
    struct cs_store *s = open_store(NULL), *s2 = NULL;
    struct cs_store_config cfg = {.dir = dir, .block_size = BS};
    char path[512];
    FILE *f;

    cr_assert_eq(cs_store_open(&cfg, &s2, NULL), CM_E_BUSY);
    cs_store_close(s);
    snprintf(path, sizeof(path), "%s/FORMAT", dir);
    f = fopen(path, "w");
    fputs("dfs-chunkserver-store 99\nstorage_id 00000000000000000000000000000000\n", f);
    fclose(f);
    cr_assert_eq(cs_store_open(&cfg, &s2, NULL), CM_E_STORE);
}

static void expect_file(const char *rel, size_t len)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_assert_eq((uint64_t)st.st_size, len + CS_TRAILER_BYTES((len + 65535) / 65536));
}

/* New stores are format 2: blocks/<id[10..11]>/<id[12..13]>/, so consecutive ids share a
 * directory. A format 1 store (blocks/<id[14..15]>/<id[12..13]>/) keeps its layout. */
Test(store, format_2_layout_and_format_1_still_read)
{
    struct cs_store *s = open_store(NULL);
    struct cs_scan_result scan;
    char data[3000], path[512], text[256], line[64];
    FILE *f;

    th_random(data, sizeof(data), 9);
    th_store_put(s, 0x1234501, data, 1000);
    th_store_put(s, 0x1234502, data, 2000);
    expect_file("blocks/23/45/0000000001234501.blk", 1000);
    expect_file("blocks/23/45/0000000001234502.blk", 2000);
    snprintf(text, sizeof(text), "dfs-chunkserver-store 1\nstorage_id %s\n", cs_store_id(s));
    cs_store_close(s);
    snprintf(path, sizeof(path), "%s/FORMAT", dir);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_str_eq(line, "dfs-chunkserver-store 2\n");

    /* The same directory as a format 1 store: its (format 2) files are not where format 1
     * looks, so the scan leaves them alone; blocks written now go to format 1 places. */
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    s = open_store(&scan);
    cr_assert_eq(scan.blocks, 0);
    cr_assert_eq(scan.unknown, 2);
    th_store_put(s, 0x1234503, data, 3000);
    expect_file("blocks/03/45/0000000001234503.blk", 3000);
    cs_store_close(s);
    s = open_store(&scan);
    cr_assert_eq(scan.blocks, 1);
    th_store_expect(s, 0x1234503, data, 3000);
    cs_store_close(s);
}

Test(store, storage_id_survives_restart)
{
    struct cs_store *s = open_store(NULL);
    char id[CS_STORAGE_ID_HEX + 1];

    snprintf(id, sizeof(id), "%s", cs_store_id(s));
    cr_assert_eq(strlen(id), CS_STORAGE_ID_HEX);
    cs_store_close(s);
    s = open_store(NULL);
    cr_assert_str_eq(cs_store_id(s), id);
    cs_store_close(s);
}

Test(store, changes_last_event_wins_and_return_keeps_newer)
{
    struct cs_store *s = open_store(NULL);
    struct cs_changes c = {0}, c2 = {0};
    char a[100];

    th_random(a, sizeof(a), 6);
    th_store_put(s, 1, a, sizeof(a));
    th_store_put(s, 2, a, sizeof(a));
    cr_assert_eq(cs_store_delete(s, 2), 0);
    cr_assert_eq(cs_store_delete(s, 2), CM_E_NOENT);
    cr_assert_eq(cs_store_take_changes(s, 100, &c), 0);
    cr_assert_eq(c.nadded, 1);
    cr_assert_eq(c.added[0].id, 1);
    cr_assert_eq(c.nremoved, 1);
    cr_assert_eq(c.removed[0], 2);
    /* Delivery failed; meanwhile block 1 was deleted: the newer event wins. */
    cr_assert_eq(cs_store_delete(s, 1), 0);
    cs_store_return_changes(s, &c);
    cs_changes_clear(&c);
    cr_assert_eq(cs_store_take_changes(s, 100, &c2), 0);
    cr_assert_eq(c2.nadded, 0);
    cr_assert_eq(c2.nremoved, 2);
    cs_changes_clear(&c2);
    cr_assert_eq(cs_store_take_changes(s, 100, &c2), 0);
    cr_assert_eq(c2.nadded + c2.nremoved + c2.ncorrupt, 0);
    cs_changes_clear(&c2);
    cs_store_close(s);
}

Test(store, changes_are_taken_in_bounded_batches)
{
    struct cs_store *s = open_store(NULL);
    struct cs_changes c = {0};
    size_t total = 0;
    char a[10];

    th_random(a, sizeof(a), 7);
    for (uint64_t id = 1; id <= 25; id++)
        th_store_put(s, id, a, sizeof(a));
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(cs_store_take_changes(s, 10, &c), 0);
        cr_assert_eq(c.nadded, round < 2 ? 10 : 5);
        total += c.nadded;
        cs_changes_clear(&c);
    }
    cr_assert_eq(total, 25);
    cr_assert_eq(cs_store_take_changes(s, 10, &c), 0);
    cr_assert_eq(c.nadded, 0);
    cs_store_close(s);
}

Test(store, a_listed_block_whose_file_vanished_is_corrupt)
{
    struct cs_store *s = open_store(NULL);
    struct cs_reader *r = NULL;
    struct cs_block_info info;
    char a[10], path[512];

    th_random(a, sizeof(a), 8);
    th_store_put(s, 3, a, sizeof(a));
    th_block_path(dir, 3, path, sizeof(path));
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(cs_reader_open(s, 3, &r), CM_E_CORRUPT);
    cr_assert_eq(cs_store_get(s, 3, &info), 0);
    cr_assert(info.corrupt);
    cr_assert_eq(cs_reader_open(s, 4, &r), CM_E_NOENT);
    cs_store_close(s);
}

static bool scrub_found(void *arg)
{
    struct cs_scrubber *sc = arg;
    struct cs_scrub_stats st;

    cs_scrubber_stats(sc, &st);
    return st.corrupt_found >= 1 && st.passes >= 2;
}

Test(store, scrubber_finds_a_flipped_byte)
{
    struct cs_store *s = open_store(NULL);
    struct cs_scrubber *sc = NULL;
    struct cs_scrub_stats st;
    struct cs_block_info info;
    char *data = malloc(BS), path[512];

    th_random(data, BS, 7);
    for (uint64_t id = 1; id <= 5; id++)
        th_store_put(s, id, data, BS - id);
    th_block_path(dir, 4, path, sizeof(path));
    th_flip(path, BS / 2);
    cr_assert_eq(cs_scrubber_start(s, 1ULL << 30, 10, &sc), 0);
    cr_assert(th_wait(scrub_found, sc));
    cs_scrubber_stats(sc, &st);
    cr_assert_eq(st.corrupt_found, 1);
    cr_assert_geq(st.bytes, 5 * (uint64_t)BS - 15);
    cs_scrubber_stop(sc);
    cr_assert_eq(cs_store_get(s, 4, &info), 0);
    cr_assert(info.corrupt);
    cr_assert_eq(atomic_load(&corrupt_calls), 1);
    for (uint64_t id = 1; id <= 5; id++) {
        cr_assert_eq(cs_store_get(s, id, &info), 0);
        cr_assert_eq(info.corrupt, id == 4);
    }
    cs_store_close(s);
    free(data);
}

Test(store, scrubber_keeps_its_rate)
{
    struct cs_store *s = open_store(NULL);
    struct cs_scrubber *sc = NULL;
    struct cs_scrub_stats st;
    char *data = malloc(BS);
    uint64_t t0;

    th_random(data, BS, 8);
    for (uint64_t id = 1; id <= 4; id++)
        th_store_put(s, id, data, BS);
    t0 = th_now_ms();
    cr_assert_eq(cs_scrubber_start(s, 2 * BS, 100000, &sc), 0); /* 2 MiB/s over 4 MiB */
    th_sleep_ms(1000);
    cs_scrubber_stats(sc, &st);
    cs_scrubber_stop(sc);
    /* About 2 MiB in one second; never the whole 4 MiB. */
    cr_assert_leq(st.bytes, 3 * (uint64_t)BS, "read %llu bytes in %llu ms",
                  (unsigned long long)st.bytes, (unsigned long long)(th_now_ms() - t0));
    cr_assert_geq(st.bytes, 1 * (uint64_t)BS);
    cs_store_close(s);
    free(data);
}

Test(store, crc_combine_equals_the_crc_of_the_concatenation)
{
    static char buf[300000];
    const size_t cuts[] = {0, 1, 7, 65536, 65537, 131072, 299999, 300000};

    th_random(buf, sizeof(buf), 9);
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t c = cuts[i];
        uint32_t a = cm_crc32c(0, buf, c), b = cm_crc32c(0, buf + c, sizeof(buf) - c);
        cr_assert_eq(cs_crc32c_combine(a, b, sizeof(buf) - c), cm_crc32c(0, buf, sizeof(buf)),
                     "cut at %zu", c);
    }
}

Test(store, chunk_crcs_that_do_not_add_up_are_corrupt)
{
    struct cs_store *s = open_store(NULL);
    struct cs_scan_result scan;
    struct cs_reader *r = NULL;
    char a[70000], path[512];
    unsigned char foot[32];
    int fd;

    th_random(a, sizeof(a), 10);
    th_store_put(s, 6, a, sizeof(a));
    /* Change the block CRC in the footer and fix up the footer's own CRC. */
    th_block_path(dir, 6, path, sizeof(path));
    fd = open(path, O_RDWR);
    off_t end = lseek(fd, 0, SEEK_END);
    unsigned char tab[8];
    cr_assert_eq(pread(fd, tab, 8, end - 40), 8);
    cr_assert_eq(pread(fd, foot, 32, end - 32), 32);
    foot[16] ^= 1;
    uint32_t c = cm_crc32c(cm_crc32c(0, tab, 8), foot, 28);
    for (int i = 0; i < 4; i++)
        foot[28 + i] = (unsigned char)(c >> (8 * i));
    cr_assert_eq(pwrite(fd, foot, 32, end - 32), 32);
    close(fd);
    cs_store_close(s);
    /* The footer is intact in itself: only adding up the chunk CRCs finds it. */
    s = open_store(&scan);
    cr_assert_eq(scan.corrupt, 1);
    cr_assert_eq(cs_reader_open(s, 6, &r), CM_E_CORRUPT);
    cs_store_close(s);
}

Test(store, blkmap_matches_a_reference)
{
    static uint8_t present[20000];
    struct blkmap m = {0};
    struct blkmap_val v = {0};
    uint64_t x = 1;
    size_t n = 0, pos = 0, seen = 0;
    uint64_t id;

    for (int step = 0; step < 200000; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t k = x % 20000;
        if (x & (1ULL << 40)) {
            v.len = k;
            cr_assert_eq(blkmap_put(&m, k, &v), 0);
            n += !present[k];
            present[k] = 1;
        } else {
            int rc = blkmap_del(&m, k);
            cr_assert_eq(rc, present[k] ? 0 : CM_E_NOENT);
            n -= present[k];
            present[k] = 0;
        }
    }
    cr_assert_eq(m.n, n);
    for (uint64_t k = 0; k < 20000; k++) {
        struct blkmap_val *g = blkmap_get(&m, k);
        cr_assert_eq(g != NULL, present[k] != 0);
        if (g != NULL)
            cr_assert_eq(g->len, k);
    }
    while (blkmap_next(&m, &pos, &id, &v))
        seen++;
    cr_assert_eq(seen, n);
    blkmap_close(&m);
}
