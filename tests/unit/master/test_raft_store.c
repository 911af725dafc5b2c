/* The LevelDB Raft store: what is written comes back after reopening, truncation and snapshots
 * compact the log, and damaged or foreign stores are refused with CM_E_STORE. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "master/raft_store.h"

static char dir[64];

static void setup(void)
{
    cm_log_init("test", CM_LOG_OFF);
    strcpy(dir, "/tmp/dfs-rs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(raft_store, .init = setup, .fini = teardown);

static struct raft_entry ent(raft_index i, raft_term t, const char *s)
{
    struct raft_entry e = {.index = i, .term = t, .type = RAFT_ENTRY_NORMAL};
    e.len = (uint32_t)strlen(s);
    e.data = s;
    return e;
}

static struct raft_store *reopen(struct raft_store *s)
{
    rs_close(s);
    struct raft_store *n = NULL;
    cr_assert_eq(rs_open(dir, &n), 0);
    return n;
}

static void load(struct raft_store *s, struct raft_boot *b, struct rs_loaded *l)
{
    memset(b, 0, sizeof(*b));
    cr_assert_eq(rs_load(s, b, l), 0);
}

static struct raft_conf conf3(void)
{
    struct raft_conf c = {.n = 3};
    for (uint32_t i = 0; i < 3; i++) {
        c.nodes[i].id = i + 1;
        c.nodes[i].voter = true;
        snprintf(c.nodes[i].addr, RAFT_ADDR_MAX, "http://127.0.0.1:%u", 8080 + i);
    }
    return c;
}

Test(raft_store, new_store_is_empty)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    cr_assert_eq(b.term, 0);
    cr_assert_eq(b.vote, 0);
    cr_assert_eq(b.n_entries, 0);
    cr_assert_eq(b.snapshot_index, 0);
    cr_assert_null(l.snapshot_path);
    rs_loaded_free(&l);
    rs_close(s);
}

Test(raft_store, hard_state_and_entries_survive_reopen)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_entry e[3] = {ent(1, 1, "a"), ent(2, 1, "bb"), ent(3, 2, "")};
    struct raft_persist p[2] = {
        {.seq = 1, .has_hard_state = true, .term = 2, .vote = 3, .n_entries = 2, .entries = e},
        {.seq = 2, .n_entries = 1, .entries = e + 2},
    };
    cr_assert_eq(rs_write(s, p, 2), 0);
    struct rs_stats st;
    rs_get_stats(s, &st);
    cr_assert_eq(st.syncs, 2, "one sync for the version, one for the two records");
    s = reopen(s);
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    cr_assert_eq(b.term, 2);
    cr_assert_eq(b.vote, 3);
    cr_assert_eq(b.n_entries, 3);
    cr_assert_eq(b.entries[1].index, 2);
    cr_assert_eq(b.entries[1].len, 2);
    cr_assert_eq(memcmp(b.entries[1].data, "bb", 2), 0);
    cr_assert_eq(b.entries[2].term, 2);
    cr_assert_eq(b.entries[2].len, 0);
    rs_loaded_free(&l);
    rs_close(s);
}

Test(raft_store, truncation_replaces_the_tail)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_entry e[4] = {ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"), ent(4, 1, "d")};
    struct raft_persist p = {.seq = 1, .n_entries = 4, .entries = e};
    cr_assert_eq(rs_write(s, &p, 1), 0);
    struct raft_entry r = ent(3, 2, "x");
    struct raft_persist t = {.seq = 2, .truncate_from = 3, .n_entries = 1, .entries = &r};
    cr_assert_eq(rs_write(s, &t, 1), 0);
    s = reopen(s);
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    cr_assert_eq(b.n_entries, 3, "entry 4 was truncated");
    cr_assert_eq(b.entries[2].term, 2);
    cr_assert_eq(memcmp(b.entries[2].data, "x", 1), 0);
    rs_loaded_free(&l);
    rs_close(s);
}

static void write_snapshot(struct raft_store *s, raft_index idx, raft_term term, const char *body)
{
    struct rs_snapshot_writer *w = NULL;
    cr_assert_eq(rs_snapshot_create(s, &w), 0);
    cr_assert_eq(rs_snapshot_append(w, body, strlen(body)), 0);
    struct raft_conf c = conf3();
    uint64_t size = 0;
    cr_assert_eq(rs_snapshot_commit(s, w, idx, term, &c, &size), 0);
    cr_assert_eq(size, strlen(body));
}

Test(raft_store, snapshot_compacts_log_and_reloads)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_entry e[5] = {ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"), ent(4, 2, "d"),
                              ent(5, 2, "e")};
    struct raft_persist p = {.seq = 1, .n_entries = 5, .entries = e};
    cr_assert_eq(rs_write(s, &p, 1), 0);
    write_snapshot(s, 3, 1, "state-at-3");
    write_snapshot(s, 4, 2, "state-at-4");
    s = reopen(s);
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    cr_assert_eq(b.snapshot_index, 4);
    cr_assert_eq(b.snapshot_term, 2);
    cr_assert_eq(b.snapshot_size, 10);
    cr_assert_eq(b.applied, 4);
    cr_assert_eq(b.conf.n, 3);
    cr_assert_str_eq(b.conf.nodes[2].addr, "http://127.0.0.1:8082");
    cr_assert_eq(b.n_entries, 1);
    cr_assert_eq(b.entries[0].index, 5);
    cr_assert_not_null(l.snapshot_path);
    FILE *f = fopen(l.snapshot_path, "r");
    char buf[32] = {0};
    cr_assert_eq(fread(buf, 1, sizeof(buf), f), 10);
    fclose(f);
    cr_assert_str_eq(buf, "state-at-4");
    /* The older snapshot file is gone. */
    char old[256];
    snprintf(old, sizeof(old), "%s/snapshot-%016x-%016x.snap", dir, 3, 1);
    cr_assert_neq(access(old, F_OK), 0);
    rs_loaded_free(&l);
    rs_close(s);
}

Test(raft_store, damaged_snapshot_is_refused)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    write_snapshot(s, 7, 3, "some state bytes");
    uint64_t size;
    char path[256];
    snprintf(path, sizeof(path), "%s", rs_snapshot_path(s, &size));
    rs_close(s);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "X", 1, 3), 1);
    close(fd);
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_boot b = {0};
    struct rs_loaded l;
    cr_assert_eq(rs_load(s, &b, &l), CM_E_STORE);
    rs_close(s);
}

Test(raft_store, installed_snapshot_keeps_matching_log_only)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_entry e[4] = {ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c"), ent(4, 1, "d")};
    struct raft_persist p = {.seq = 1, .n_entries = 4, .entries = e};
    cr_assert_eq(rs_write(s, &p, 1), 0);
    struct raft_conf c = conf3();

    /* Matching (2, term 1): entries 3 and 4 stay. */
    cr_assert_eq(rs_snapshot_write_chunk(s, 0, "abc", 3), 0);
    cr_assert_eq(rs_snapshot_write_chunk(s, 3, "def", 3), 0);
    cr_assert_eq(rs_snapshot_write_chunk(s, 9, "ghi", 3), CM_E_INVAL, "out-of-order chunk");
    uint64_t size = 0;
    cr_assert_eq(rs_snapshot_install(s, 2, 1, &c, &size), 0);
    cr_assert_eq(size, 6);
    s = reopen(s);
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    cr_assert_eq(b.snapshot_index, 2);
    cr_assert_eq(b.n_entries, 2);
    cr_assert_eq(b.entries[0].index, 3);
    rs_loaded_free(&l);

    /* Not matching (3, term 5): the whole log goes. */
    cr_assert_eq(rs_snapshot_write_chunk(s, 0, "xyz", 3), 0);
    cr_assert_eq(rs_snapshot_install(s, 3, 5, &c, NULL), 0);
    s = reopen(s);
    load(s, &b, &l);
    cr_assert_eq(b.snapshot_index, 3);
    cr_assert_eq(b.snapshot_term, 5);
    cr_assert_eq(b.n_entries, 0);
    rs_loaded_free(&l);
    cr_assert_eq(rs_snapshot_install(s, 9, 9, &c, NULL), CM_E_INVAL, "nothing pending");
    rs_close(s);
}

static void raw_put(const char *key, size_t klen, const char *val, size_t vlen, int del)
{
    char dbp[128], *err = NULL;
    snprintf(dbp, sizeof(dbp), "%s/raft.ldb", dir);
    leveldb_options_t *o = leveldb_options_create();
    leveldb_t *db = leveldb_open(o, dbp, &err);
    cr_assert_null(err);
    leveldb_writeoptions_t *w = leveldb_writeoptions_create();
    if (del)
        leveldb_delete(db, w, key, klen, &err);
    else
        leveldb_put(db, w, key, klen, val, vlen, &err);
    cr_assert_null(err);
    leveldb_writeoptions_destroy(w);
    leveldb_close(db);
    leveldb_options_destroy(o);
}

Test(raft_store, other_format_version_is_refused)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    rs_close(s);
    raw_put("m/version", 9, "\x63\0\0\0", 4, 0);
    cr_assert_eq(rs_open(dir, &s), CM_E_STORE);
}

Test(raft_store, log_gap_is_refused)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_entry e[3] = {ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c")};
    struct raft_persist p = {.seq = 1, .n_entries = 3, .entries = e};
    cr_assert_eq(rs_write(s, &p, 1), 0);
    rs_close(s);
    raw_put("l\0\0\0\0\0\0\0\x02", 9, NULL, 0, 1);
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_boot b = {0};
    struct rs_loaded l;
    cr_assert_eq(rs_load(s, &b, &l), CM_E_STORE);
    rs_close(s);
}

Test(raft_store, malformed_hard_state_is_refused)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    rs_close(s);
    raw_put("m/hard", 6, "short", 5, 0);
    cr_assert_eq(rs_open(dir, &s), 0);
    struct raft_boot b = {0};
    struct rs_loaded l;
    cr_assert_eq(rs_load(s, &b, &l), CM_E_STORE);
    rs_close(s);
}

Test(raft_store, damaged_leveldb_is_refused)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    rs_close(s);
    char p[128];
    snprintf(p, sizeof(p), "%s/raft.ldb/CURRENT", dir);
    FILE *f = fopen(p, "w");
    fputs("MANIFEST-999999\n", f);
    fclose(f);
    cr_assert_eq(rs_open(dir, &s), CM_E_STORE);
}

Test(raft_store, second_open_is_busy)
{
    struct raft_store *s = NULL, *t = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    cr_assert_eq(rs_open(dir, &t), CM_E_BUSY);
    rs_close(s);
}

Test(raft_store, unusable_directories)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open("/nonexistent/dfs", &s), CM_E_NOENT);
    char f[128];
    snprintf(f, sizeof(f), "%s/file", dir);
    close(open(f, O_CREAT | O_WRONLY, 0600));
    cr_assert_eq(rs_open(f, &s), CM_E_NOTDIR);
}

Test(raft_store, stray_temporaries_are_removed_at_load)
{
    struct raft_store *s = NULL;
    cr_assert_eq(rs_open(dir, &s), 0);
    char p[128];
    snprintf(p, sizeof(p), "%s/snapshot.tmp", dir);
    close(open(p, O_CREAT | O_WRONLY, 0600));
    struct raft_boot b;
    struct rs_loaded l;
    load(s, &b, &l);
    rs_loaded_free(&l);
    cr_assert_neq(access(p, F_OK), 0);
    rs_close(s);
}
