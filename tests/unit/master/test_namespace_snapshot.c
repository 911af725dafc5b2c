/* Snapshots of the namespace: round trips of random namespaces give identical state (compared
 * through a dump made with the read API, and byte for byte), through memory and through the
 * Raft store with the rn_fsm callbacks; damaged or inconsistent snapshots are refused with
 * CM_E_STORE and leave the state as it was; and the property: random command sequences applied
 * to two replicas, one of them snapshotted and restored along the way, give identical results
 * and identical final states. */
#include <fcntl.h>

#include "common/log.h"
#include "master/raft_store.h"
#include "ns_test_util.h"

static void setup(void)
{
    cm_log_init("test", CM_LOG_OFF);
    t_init(NULL);
}

static void teardown(void)
{
    t_fini();
}

TestSuite(snapshot, .init = setup, .fini = teardown);

/* ---- A random workload ---- */

struct handle {
    uint64_t ino, gen;
    bool dir;
};

struct gen {
    uint64_t rnd;
    struct handle h[256];
    uint32_t n_h;
    uint64_t pool[512]; /* allocated block ids not committed yet */
    uint32_t n_pool;
    uint64_t seq[5];
    int64_t now;
    void *last;
    size_t last_len;
    uint64_t gc_ids[4]; /* the oldest pending garbage ids */
    uint32_t n_gc;
};

static uint32_t rnd(struct gen *g, uint32_t n)
{
    g->rnd ^= g->rnd << 13;
    g->rnd ^= g->rnd >> 7;
    g->rnd ^= g->rnd << 17;
    return (uint32_t)(g->rnd % n);
}

static void remember(struct gen *g, const struct ns_attr *a)
{
    struct handle h = {a->ino, a->gen, S_ISDIR(a->mode)};
    for (uint32_t i = 0; i < g->n_h; i++)
        if (g->h[i].ino == h.ino && g->h[i].gen == h.gen)
            return;
    if (g->n_h < 256)
        g->h[g->n_h++] = h;
    else
        g->h[rnd(g, 256)] = h;
}

static struct handle pick(struct gen *g, bool dir)
{
    for (int tries = 0; tries < 8; tries++) {
        struct handle h = g->h[rnd(g, g->n_h)];
        if (h.dir == dir)
            return h;
    }
    return g->h[rnd(g, g->n_h)];
}

static const char *NAMES[] = {"a", "b", "c", "d", "e", "f", "g", "h", "long-name-0123456789"};

static const char *name(struct gen *g)
{
    return NAMES[rnd(g, sizeof(NAMES) / sizeof(NAMES[0]))];
}

static const struct ns_cred CREDS[] = {
    {.uid = 0, .gid = 0},
    {.uid = 1000, .gid = 1000, .n_groups = 1, .groups = {50}},
    {.uid = 1001, .gid = 50},
};

/* The next command (malloc'd); retries and stale sequence numbers included. */
static void *next_command(struct gen *g, size_t *len)
{
    if (g->last != NULL && rnd(g, 20) == 0) {
        void *c = malloc(g->last_len);
        memcpy(c, g->last, g->last_len);
        *len = g->last_len;
        return c;
    }
    uint32_t client = rnd(g, 5); /* client 0: no session */
    struct ns_req rq = {.client = client, .seq = ++g->seq[client], .now_ns = g->now};
    if (rnd(g, 30) == 0)
        rq.seq -= 2; /* an old one */
    g->now += rnd(g, 3) == 0 ? -(int64_t)rnd(g, 1000) : (int64_t)rnd(g, 100000);
    if (rnd(g, 4) == 0)
        rq.cred = &CREDS[rnd(g, 3)];
    void *c = NULL;
    int rc = 0;
    struct handle d = pick(g, true), x = pick(g, rnd(g, 4) == 0);
    switch (rnd(g, 14)) {
    case 0:
    case 1:
        rc = ns_cmd_mkdir(&rq, d.ino, d.gen, name(g), rnd(g, 2) ? 0755 : 01777, &c, len);
        break;
    case 2:
    case 3:
        rc =
            ns_cmd_create(&rq, d.ino, d.gen, name(g), rnd(g, 3) ? 0644 : 06775, rnd(g, 4), &c, len);
        break;
    case 4:
        rc = ns_cmd_symlink(&rq, d.ino, d.gen, name(g), rnd(g, 2) ? "t" : "../x/y", &c, len);
        break;
    case 5:
        rc = ns_cmd_link(&rq, x.ino, x.gen, d.ino, d.gen, name(g), &c, len);
        break;
    case 6:
        rc = ns_cmd_unlink(&rq, d.ino, d.gen, name(g), &c, len);
        break;
    case 7:
        rc = ns_cmd_rmdir(&rq, d.ino, d.gen, name(g), &c, len);
        break;
    case 8:
    case 9: {
        struct handle d2 = pick(g, true);
        uint32_t flags = rnd(g, 6);
        flags = flags < 4 ? 0 : flags == 4 ? NS_RENAME_NOREPLACE : NS_RENAME_EXCHANGE;
        rc = ns_cmd_rename(&rq, d.ino, d.gen, name(g), d2.ino, d2.gen, name(g), flags, &c, len);
        break;
    }
    case 10: {
        struct ns_setattr sa = {0};
        uint32_t bits = rnd(g, 256);
        if (bits & NS_SET_ATIME)
            bits &= ~(uint32_t)NS_SET_ATIME_NOW;
        if (bits & NS_SET_MTIME)
            bits &= ~(uint32_t)NS_SET_MTIME_NOW;
        sa.valid = bits;
        sa.mode = rnd(g, 07777 + 1);
        sa.uid = 1000 + rnd(g, 2);
        sa.gid = 50 + rnd(g, 2);
        sa.size = rnd(g, 3) == 0 ? 0 : rnd(g, 5000);
        sa.atime_ns = (int64_t)rnd(g, 1000000) - 500000;
        sa.mtime_ns = (int64_t)rnd(g, 1000000);
        rc = ns_cmd_setattr(&rq, x.ino, x.gen, &sa, &c, len);
        break;
    }
    case 11:
        rc = ns_cmd_alloc_blocks(&rq, 1 + rnd(g, 8), &c, len);
        break;
    case 12: {
        struct ns_block b[3];
        uint32_t nb = g->n_pool < 3 ? g->n_pool : 1 + rnd(g, 3);
        uint64_t total = 0;
        for (uint32_t i = 0; i < nb; i++) {
            uint32_t k = rnd(g, g->n_pool);
            b[i] = t_block(g->pool[k], 1 + rnd(g, 1000));
            b[i].n_replicas = (uint8_t)(1 + rnd(g, NS_MAX_REPLICAS));
            g->pool[k] = g->pool[--g->n_pool];
            total += b[i].len;
        }
        uint64_t off = rnd(g, 4000);
        uint32_t flags = rnd(g, 4) == 0 ? NS_COMMIT_SET_SIZE : 0;
        rc = ns_cmd_commit(&rq, x.ino, x.gen, off, total, off + total + rnd(g, 100), flags, b, nb,
                           &c, len);
        break;
    }
    default: {
        uint64_t ids[5];
        uint32_t n = 0;
        for (uint32_t i = 0; i < g->n_gc; i++)
            if (rnd(g, 2) == 0)
                ids[n++] = g->gc_ids[i];
        ids[n++] = 1 + rnd(g, 1000); /* pending or not: unknown ids are ignored */
        rc = ns_cmd_gc_ack(&rq, ids, n, &c, len);
        break;
    }
    }
    cr_assert_eq(rc, 0);
    free(g->last);
    g->last = malloc(*len);
    memcpy(g->last, c, *len);
    g->last_len = *len;
    return c;
}

/* Learns handles and block ids from a result. */
static void observe(struct gen *g, struct ns *ns, const void *cmd, size_t cmd_len, const void *res,
                    size_t res_len)
{
    struct ns_result r;
    struct ns_cmd c;
    cr_assert_eq(ns_result_decode(res, res_len, &r), 0);
    for (uint32_t i = 0; i < r.n_attr; i++)
        remember(g, &r.attr[i]);
    if (r.err == 0 && ns_cmd_decode(cmd, cmd_len, &c) == 0) {
        if (c.op == NS_OP_ALLOC_BLOCKS)
            for (uint64_t k = 0; k < c.count && g->n_pool < 512; k++)
                g->pool[g->n_pool++] = r.value + k;
        ns_cmd_clear(&c);
    }
    ns_result_clear(&r);
    struct ns_statfs st;
    ns_statfs(ns, &st);
    uint64_t next;
    ns_gc_pending(ns, 0, 4, g->gc_ids, &g->n_gc, &next);
}

static void gen_init(struct gen *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->rnd = seed * 2654435761u + 1;
    g->h[g->n_h++] = (struct handle){NS_ROOT_INO, 1, true};
    g->now = 1000000000;
}

static void gen_free(struct gen *g)
{
    free(g->last);
}

/* Applies one command to ns at index; returns the result (malloc'd). */
static void *apply_raw(struct ns *ns, uint64_t index, const void *cmd, size_t len, size_t *res_len)
{
    void *res = NULL;
    ns_apply(ns, index, cmd, len, &res, res_len);
    cr_assert_not_null(res);
    return res;
}

/* Builds a random namespace in T.ns with n commands. */
static void build_random(uint64_t seed, int n)
{
    struct gen g;
    gen_init(&g, seed);
    for (int i = 0; i < n; i++) {
        size_t len, rlen;
        void *c = next_command(&g, &len);
        void *res = apply_raw(T.ns, ++T.index, c, len, &rlen);
        observe(&g, T.ns, c, len, res, rlen);
        free(c);
        free(res);
    }
    gen_free(&g);
}

static struct ns *fresh(void)
{
    struct ns *n;
    cr_assert_eq(ns_new(NULL, &n), 0);
    return n;
}

/* ---- Round trips ---- */

static void assert_same(struct ns *a, struct ns *b)
{
    char *da = t_dump(a), *db = t_dump(b);
    cr_assert_str_eq(da, db);
    free(da);
    free(db);
    struct sbuf sa = t_snapshot(a), sb = t_snapshot(b);
    cr_assert_eq(sa.n, sb.n);
    cr_assert_eq(memcmp(sa.p, sb.p, sa.n), 0, "snapshots identical");
    free(sa.p);
    free(sb.p);
}

Test(snapshot, empty_round_trip)
{
    struct sbuf s = t_snapshot(T.ns);
    struct ns *b = fresh();
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    assert_same(T.ns, b);
    ns_free(b);
    free(s.p);
}

Test(snapshot, random_namespace_round_trip)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        t_fini();
        t_init(NULL);
        build_random(seed, 1500);
        t_check_invariants(T.ns);
        struct sbuf s = t_snapshot(T.ns);
        struct ns *b = fresh();
        /* Some state in b first: the restore replaces all of it. */
        struct ns_attr r = {.ino = 1, .gen = 1};
        struct ns *keep = T.ns;
        T.ns = b;
        cr_assert_eq(t_mkdir(&r, "junk", 0755, NULL), 0);
        T.ns = keep;
        cr_assert_eq(t_restore(b, s.p, s.n), 0);
        assert_same(T.ns, b);
        t_check_invariants(b);
        /* They go on identically: same inode numbers and generations next. */
        struct ns_req rq = {.client = 3, .seq = 1000000, .now_ns = 5};
        void *c;
        size_t len, la, lb;
        cr_assert_eq(ns_cmd_create(&rq, 1, 1, "zzz-new", 0644, 0, &c, &len), 0);
        void *ra = apply_raw(T.ns, 999999, c, len, &la);
        void *rb = apply_raw(b, 999999, c, len, &lb);
        cr_assert_eq(la, lb);
        cr_assert_eq(memcmp(ra, rb, la), 0);
        free(c);
        free(ra);
        free(rb);
        assert_same(T.ns, b);
        ns_free(b);
        free(s.p);
    }
}

Test(snapshot, sessions_survive)
{
    struct ns_attr r = t_root();
    cr_assert_eq(t_mkdir(&r, "x", 0755, NULL), 0);
    void *saved = malloc(T.last_len);
    size_t saved_len = T.last_len;
    memcpy(saved, T.last, saved_len);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *b = fresh();
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    /* The retry on the restored replica is answered from the session, not applied. */
    cr_assert_eq(t_apply_on(b, saved, saved_len, NULL), 0);
    ns_free(b);
    free(s.p);
}

Test(snapshot, through_the_raft_store_and_fsm_callbacks)
{
    char dir[] = "/tmp/dfs-ns-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    build_random(77, 800);
    struct raft_store *st;
    cr_assert_eq(rs_open(dir, &st), 0);
    struct rs_snapshot_writer *w;
    cr_assert_eq(rs_snapshot_create(st, &w), 0);
    struct rn_fsm fsm = ns_fsm_ops(T.ns);
    cr_assert_eq(fsm.ctx, T.ns);
    cr_assert_eq(fsm.snapshot(fsm.ctx, w), 0);
    struct raft_conf conf = {.n = 1};
    conf.nodes[0].id = 1;
    conf.nodes[0].voter = true;
    uint64_t size;
    cr_assert_eq(rs_snapshot_commit(st, w, T.index, 1, &conf, &size), 0);
    uint64_t size2;
    const char *path = rs_snapshot_path(st, &size2);
    cr_assert_not_null(path);
    cr_assert_eq(size, size2);
    struct ns *b = fresh();
    struct rn_fsm fb = ns_fsm_ops(b);
    cr_assert_eq(fb.restore(fb.ctx, path, size), 0);
    assert_same(T.ns, b);
    cr_assert_neq(fb.restore(fb.ctx, "/nonexistent/snapshot", 10), 0);
    cr_assert_eq(fb.restore(fb.ctx, path, size - 1), CM_E_STORE, "a short size");
    assert_same(T.ns, b);
    /* apply through the callback. */
    void *c, *res = NULL;
    size_t len, rlen;
    struct ns_req rq = {.client = 0, .seq = 0, .now_ns = 1};
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "via-fsm", 0755, &c, &len), 0);
    cr_assert_eq(fb.apply(fb.ctx, 1000000, c, len, &res, &rlen), 0);
    free(c);
    free(res);
    cr_assert_eq(ns_lookup(b, NULL, 1, 1, "via-fsm", &(struct ns_attr){0}), 0);
    ns_free(b);
    rs_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A writer that fails makes the snapshot fail with its error. */
static int failing_write(void *arg, const void *data, size_t len)
{
    (void)data;
    (void)len;
    int *calls = arg;
    return ++*calls >= 2 ? CM_E_IO : 0;
}

Test(snapshot, write_error_is_returned)
{
    build_random(5, 3000);
    int calls = 0;
    int rc = ns_snapshot_write(T.ns, failing_write, &calls);
    /* Small namespaces fit the 1 MiB buffer: one write, which succeeds. */
    cr_assert(rc == 0 || rc == CM_E_IO);
    calls = 1;
    cr_assert_eq(ns_snapshot_write(T.ns, failing_write, &calls), CM_E_IO);
}

/* ---- Damaged snapshots ---- */

static void assert_refused(struct ns *target, const void *data, size_t len, const char *what)
{
    char *before = t_dump(target);
    int rc = t_restore(target, data, len);
    cr_assert_eq(rc, CM_E_STORE, "%s: %d", what, rc);
    char *after = t_dump(target);
    cr_assert_str_eq(before, after, "%s: state changed", what);
    free(before);
    free(after);
}

Test(snapshot, truncated_everywhere)
{
    build_random(11, 300);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *b = fresh();
    build_random(12, 50);
    for (size_t k = 0; k < s.n; k += 1 + k / 64)
        assert_refused(b, s.p, k, "truncated");
    /* A trailing byte too. */
    s.p = realloc(s.p, s.n + 1);
    s.p[s.n] = 0;
    assert_refused(b, s.p, s.n + 1, "trailing byte");
    ns_free(b);
    free(s.p);
}

Test(snapshot, flipped_bytes_never_crash)
{
    build_random(21, 400);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *b = fresh();
    uint32_t r = 1;
    for (int i = 0; i < 2500; i++) {
        r = r * 1103515245 + 12345;
        size_t at = (r >> 8) % s.n;
        uint8_t saved = (uint8_t)s.p[at];
        s.p[at] ^= (char)(1 + (r >> 24) % 255);
        int rc = t_restore(b, s.p, s.n);
        cr_assert(rc == 0 || rc == CM_E_STORE, "rc %d", rc);
        if (rc == 0)
            t_check_invariants(b); /* e.g. a changed time or mode: still consistent */
        s.p[at] = (char)saved;
    }
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    assert_same(T.ns, b);
    ns_free(b);
    free(s.p);
}

/* A hand-made snapshot, to build inconsistent ones. */
static void put_var(struct sbuf *s, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    sb_write(s, b, n);
}

static void put_bytes(struct sbuf *s, const void *p, size_t n)
{
    sb_write(s, p, n);
}

static void put_header(struct sbuf *s, uint64_t next_block, uint64_t n_slots, uint64_t n_used,
                       uint64_t n_free)
{
    uint8_t v[4] = {1, 0, 0, 0};
    put_bytes(s, "DFSNSSNP", 8);
    put_bytes(s, v, 4);
    put_var(s, 42); /* applied */
    put_var(s, next_block);
    put_var(s, n_slots);
    put_var(s, n_used);
    put_var(s, n_free);
}

static void put_inode(struct sbuf *s, uint64_t delta, uint32_t mode, uint32_t nlink, uint64_t size)
{
    put_var(s, delta);
    put_var(s, 1); /* gen */
    put_var(s, mode);
    put_var(s, nlink);
    put_var(s, 0); /* uid */
    put_var(s, 0); /* gid */
    put_var(s, size);
    put_var(s, 0); /* ctime, mtime - ctime, atime - ctime */
    put_var(s, 0);
    put_var(s, 0);
}

/* A directory body: parent, next_pos, n entries of (pos delta 1, ino, name). */
static void put_dir(struct sbuf *s, uint32_t parent, uint32_t n, const uint32_t *inos,
                    const char *const *names)
{
    put_var(s, parent);
    put_var(s, 100);
    put_var(s, n);
    for (uint32_t i = 0; i < n; i++) {
        put_var(s, i == 0 ? 3 : 1);
        put_var(s, inos[i]);
        uint8_t l = (uint8_t)strlen(names[i]);
        put_bytes(s, &l, 1);
        put_bytes(s, names[i], l);
    }
}

static void put_tail(struct sbuf *s)
{
    put_var(s, 0); /* sessions */
    put_var(s, 0); /* gc first */
    put_var(s, 0); /* gc n */
    put_bytes(s, "DFSNSEND", 8);
}

/* root with one entry "x" -> inode 2 of the given mode and nlink (size, extents for files). */
static struct sbuf one_child(uint32_t mode, uint32_t nlink, uint32_t root_nlink)
{
    struct sbuf s = {0};
    put_header(&s, 10, 3, 2, 0);
    uint32_t ino = 2;
    const char *nm = "x";
    put_inode(&s, 1, S_IFDIR | 0755, root_nlink, 0);
    put_dir(&s, 1, 1, &ino, &nm);
    put_inode(&s, 1, mode, nlink, S_ISLNK(mode) ? 1 : 0);
    if (S_ISDIR(mode))
        put_dir(&s, 1, 0, NULL, NULL);
    else if (S_ISLNK(mode))
        put_bytes(&s, "t", 1);
    else
        put_var(&s, 0);
    put_tail(&s);
    return s;
}

Test(snapshot, hand_made_valid)
{
    struct sbuf s = {0};
    put_header(&s, 1, 2, 1, 0);
    put_inode(&s, 1, S_IFDIR | 0700, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_tail(&s);
    struct ns *b = fresh();
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    struct ns_attr a;
    cr_assert_eq(ns_getattr(b, 1, 1, &a), 0);
    cr_assert_eq(a.mode, S_IFDIR | 0700);
    struct ns_statfs st;
    ns_statfs(b, &st);
    cr_assert_eq(st.applied, 42);
    free(s.p);
    s = one_child(S_IFREG | 0644, 1, 2);
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    free(s.p);
    s = one_child(S_IFDIR | 0755, 2, 3);
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    free(s.p);
    s = one_child(S_IFLNK | 0777, 1, 2);
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    t_check_invariants(b);
    free(s.p);
    ns_free(b);
}

Test(snapshot, inconsistent_link_counts)
{
    struct ns *b = fresh();
    struct sbuf s = one_child(S_IFREG | 0644, 2, 2);
    assert_refused(b, s.p, s.n, "file nlink 2, one entry");
    free(s.p);
    s = one_child(S_IFDIR | 0755, 2, 2);
    assert_refused(b, s.p, s.n, "root nlink without its subdirectory");
    free(s.p);
    s = one_child(S_IFDIR | 0755, 3, 3);
    assert_refused(b, s.p, s.n, "empty dir with nlink 3");
    free(s.p);
    s = one_child(S_IFIFO | 0644, 1, 2);
    assert_refused(b, s.p, s.n, "a fifo");
    free(s.p);
    ns_free(b);
}

Test(snapshot, entries_to_missing_or_bad_inodes)
{
    struct ns *b = fresh();
    struct sbuf s = {0};
    uint32_t ino = 2;
    const char *nm = "x";
    /* Slot 2 is free but named by an entry. */
    put_header(&s, 1, 3, 1, 1);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 1, &ino, &nm);
    put_var(&s, 2);
    put_var(&s, 1);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "entry to a free slot");
    free(s.p);
    /* An entry beyond the table. */
    s = (struct sbuf){0};
    ino = 7;
    put_header(&s, 1, 2, 1, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 1, &ino, &nm);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "entry beyond the table");
    free(s.p);
    /* An entry to the root. */
    s = (struct sbuf){0};
    ino = 1;
    put_header(&s, 1, 2, 1, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 1, &ino, &nm);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "entry to the root");
    free(s.p);
    ns_free(b);
}

Test(snapshot, directory_structure)
{
    struct ns *b = fresh();
    /* Two directories naming each other, unreachable from the root (a cycle). */
    struct sbuf s = {0};
    uint32_t i3 = 3, i2 = 2;
    const char *nm = "c";
    put_header(&s, 1, 4, 3, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_inode(&s, 1, S_IFDIR | 0755, 3, 0);
    put_dir(&s, 3, 1, &i3, &nm);
    put_inode(&s, 1, S_IFDIR | 0755, 3, 0);
    put_dir(&s, 2, 1, &i2, &nm);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "cycle");
    free(s.p);
    /* A directory in two entries. */
    s = (struct sbuf){0};
    uint32_t two[2] = {2, 2};
    const char *names[2] = {"a", "b"};
    put_header(&s, 1, 3, 2, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 4, 0);
    put_dir(&s, 1, 2, two, names);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "directory linked twice");
    free(s.p);
    /* Parent field disagreeing with the entry. */
    s = (struct sbuf){0};
    uint32_t i = 2;
    put_header(&s, 1, 4, 3, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 4, 0);
    uint32_t both[2] = {2, 3};
    put_dir(&s, 1, 2, both, names);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 3, 0, NULL, NULL);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "wrong parent");
    free(s.p);
    /* Duplicate names. */
    s = (struct sbuf){0};
    const char *dup[2] = {"a", "a"};
    uint32_t files[2] = {2, 2};
    put_header(&s, 1, 3, 2, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 2, files, dup);
    put_inode(&s, 1, S_IFREG | 0644, 2, 0);
    put_var(&s, 0);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "duplicate names");
    free(s.p);
    /* Invalid names. */
    const char *bad[] = {"a/b", ".", ".."};
    for (int k = 0; k < 3; k++) {
        s = (struct sbuf){0};
        put_header(&s, 1, 3, 2, 0);
        put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
        put_dir(&s, 1, 1, &i, &bad[k]);
        put_inode(&s, 1, S_IFREG | 0644, 1, 0);
        put_var(&s, 0);
        put_tail(&s);
        assert_refused(b, s.p, s.n, bad[k]);
        free(s.p);
    }
    /* Root must be a directory, and its own parent. */
    s = (struct sbuf){0};
    put_header(&s, 1, 2, 1, 0);
    put_inode(&s, 1, S_IFREG | 0755, 1, 0);
    put_var(&s, 0);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "root a file");
    free(s.p);
    s = (struct sbuf){0};
    put_header(&s, 1, 3, 2, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 2, 0, NULL, NULL);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "root's parent");
    free(s.p);
    ns_free(b);
}

/* root -> "f" (ino 2), a file of the given size with the given extents. */
static struct sbuf file_with(uint64_t size, uint64_t next_block, int n, const uint64_t (*ext)[6])
{
    struct sbuf s = {0};
    uint32_t i = 2;
    const char *nm = "f";
    put_header(&s, next_block, 3, 2, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 1, &i, &nm);
    put_inode(&s, 1, S_IFREG | 0644, 1, size);
    put_var(&s, (uint64_t)n);
    for (int k = 0; k < n; k++) {
        put_var(&s, ext[k][0]); /* gap */
        put_var(&s, ext[k][1]); /* block_off */
        put_var(&s, ext[k][2]); /* len */
        put_var(&s, ext[k][3]); /* id */
        put_var(&s, ext[k][4]); /* block len */
        put_bytes(&s, "\1\2\3\4", 4);
        uint8_t nrep = (uint8_t)ext[k][5];
        put_bytes(&s, &nrep, 1);
        for (uint8_t r = 0; r < nrep; r++)
            put_var(&s, 9);
    }
    put_tail(&s);
    return s;
}

Test(snapshot, file_extents)
{
    struct ns *b = fresh();
    const uint64_t good[2][6] = {{0, 0, 10, 1, 10, 3}, {5, 2, 5, 2, 10, 1}};
    struct sbuf s = file_with(20, 3, 2, good);
    cr_assert_eq(t_restore(b, s.p, s.n), 0);
    struct ns_blocklist bl;
    cr_assert_eq(ns_get_blocks(b, NULL, 2, 1, 0, 100, 10, &bl), 0);
    cr_assert_eq(bl.n, 2);
    cr_assert_eq(bl.ext[1].off, 15);
    cr_assert_eq(bl.ext[1].block_off, 2);
    cr_assert_eq(bl.ext[0].block.n_replicas, 3);
    ns_blocklist_free(&bl);
    free(s.p);
    s = file_with(19, 3, 2, good);
    assert_refused(b, s.p, s.n, "beyond size");
    free(s.p);
    s = file_with(20, 2, 2, good);
    assert_refused(b, s.p, s.n, "block id never allocated");
    free(s.p);
    const uint64_t over[1][6] = {{0, 6, 5, 1, 10, 3}};
    s = file_with(20, 3, 1, over);
    assert_refused(b, s.p, s.n, "beyond the block");
    free(s.p);
    const uint64_t empty[1][6] = {{0, 0, 0, 1, 10, 3}};
    s = file_with(20, 3, 1, empty);
    assert_refused(b, s.p, s.n, "zero length");
    free(s.p);
    const uint64_t noreps[1][6] = {{0, 0, 5, 1, 10, 0}};
    s = file_with(20, 3, 1, noreps);
    assert_refused(b, s.p, s.n, "no replicas");
    free(s.p);
    const uint64_t manyreps[1][6] = {{0, 0, 5, 1, 10, 9}};
    s = file_with(20, 3, 1, manyreps);
    assert_refused(b, s.p, s.n, "nine replicas");
    free(s.p);
    const uint64_t zero_id[1][6] = {{0, 0, 5, 0, 10, 1}};
    s = file_with(20, 3, 1, zero_id);
    assert_refused(b, s.p, s.n, "block id 0");
    free(s.p);
    ns_free(b);
}

Test(snapshot, header_free_list_sessions)
{
    struct ns *b = fresh();
    struct sbuf s = t_snapshot(T.ns);
    s.p[0] = 'X';
    assert_refused(b, s.p, s.n, "magic");
    s.p[0] = 'D';
    s.p[8] = 3;
    assert_refused(b, s.p, s.n, "version");
    s.p[8] = 0;
    assert_refused(b, s.p, s.n, "version 0");
    free(s.p);
    /* Version 2: an orphan bound above the ids allocated. */
    for (uint64_t below = 1; below <= 2; below++) {
        uint8_t v2[4] = {2, 0, 0, 0};
        s = (struct sbuf){0};
        put_bytes(&s, "DFSNSSNP", 8);
        put_bytes(&s, v2, 4);
        put_var(&s, 42); /* applied */
        put_var(&s, 1);  /* next_block */
        put_var(&s, below);
        put_var(&s, 2); /* n_slots */
        put_var(&s, 1); /* n_used */
        put_var(&s, 0); /* n_free */
        put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
        put_dir(&s, 1, 0, NULL, NULL);
        put_tail(&s);
        if (below == 1) {
            struct ns *ok = fresh();
            cr_assert_eq(t_restore(ok, s.p, s.n), 0, "a bound at next_block loads");
            ns_free(ok);
        } else {
            assert_refused(b, s.p, s.n, "orphan bound above next_block");
        }
        free(s.p);
    }
    /* Counts that do not add up. */
    s = (struct sbuf){0};
    put_header(&s, 1, 3, 1, 0);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "slot neither used nor free");
    free(s.p);
    /* A free slot listed twice. */
    s = (struct sbuf){0};
    put_header(&s, 1, 4, 1, 2);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_var(&s, 2);
    put_var(&s, 1);
    put_var(&s, 2);
    put_var(&s, 1);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "free slot twice");
    free(s.p);
    /* A used slot in the free list. */
    s = (struct sbuf){0};
    put_header(&s, 1, 3, 1, 1);
    put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
    put_dir(&s, 1, 0, NULL, NULL);
    put_var(&s, 1);
    put_var(&s, 1);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "root in the free list");
    free(s.p);
    /* Sessions: client 0, duplicates. */
    for (int k = 0; k < 2; k++) {
        s = (struct sbuf){0};
        put_header(&s, 1, 2, 1, 0);
        put_inode(&s, 1, S_IFDIR | 0755, 2, 0);
        put_dir(&s, 1, 0, NULL, NULL);
        put_var(&s, 2);
        for (int j = 0; j < 2; j++) {
            put_var(&s, k == 0 && j == 1 ? 0 : 5); /* client */
            put_var(&s, 1);                        /* seq */
            put_var(&s, 0);                        /* last seen */
            put_var(&s, 0);                        /* err */
            put_var(&s, 1);                        /* result length */
            put_bytes(&s, "r", 1);
        }
        put_var(&s, 0);
        put_var(&s, 0);
        put_bytes(&s, "DFSNSEND", 8);
        assert_refused(b, s.p, s.n, k == 0 ? "client 0" : "client twice");
        free(s.p);
    }
    /* A huge slot count in a tiny file is refused before allocating. */
    s = (struct sbuf){0};
    put_header(&s, 1, 4000000000u, 1, 3999999998u);
    put_tail(&s);
    assert_refused(b, s.p, s.n, "huge table");
    free(s.p);
    ns_free(b);
}

/* ---- The property ---- */

/* Replicas A and B apply the same random commands at the same indexes; B is replaced by a
 * fresh replica restored from its snapshot every so often. Every result is identical, and so
 * are the final states. */
static void replicas_agree(uint64_t seed, int steps, int restore_every, const struct ns_config *cfg)
{
    struct ns *a, *b;
    cr_assert_eq(ns_new(cfg, &a), 0);
    cr_assert_eq(ns_new(cfg, &b), 0);
    struct gen g;
    gen_init(&g, seed);
    for (int i = 1; i <= steps; i++) {
        size_t len, la, lb;
        void *c = next_command(&g, &len);
        void *ra = apply_raw(a, (uint64_t)i, c, len, &la);
        void *rb = apply_raw(b, (uint64_t)i, c, len, &lb);
        cr_assert_eq(la, lb, "step %d", i);
        cr_assert_eq(memcmp(ra, rb, la), 0, "step %d: results differ", i);
        observe(&g, a, c, len, ra, la);
        free(c);
        free(ra);
        free(rb);
        if (i % restore_every == 0) {
            struct sbuf s = t_snapshot(b);
            struct ns *nb;
            cr_assert_eq(ns_new(cfg, &nb), 0);
            cr_assert_eq(t_restore(nb, s.p, s.n), 0, "step %d", i);
            free(s.p);
            ns_free(b);
            b = nb;
        }
    }
    t_check_invariants(a);
    t_check_invariants(b);
    assert_same(a, b);
    struct ns_statfs st;
    ns_statfs(a, &st);
    cr_assert_gt(st.inodes, 5, "the workload did something");
    gen_free(&g);
    ns_free(a);
    ns_free(b);
}

Test(snapshot, property_replicas_agree)
{
    for (uint64_t seed = 100; seed < 108; seed++)
        replicas_agree(seed, 2500, 317 + (int)seed, NULL);
}

Test(snapshot, property_replicas_agree_small_sessions)
{
    struct ns_config cfg;
    ns_config_default(&cfg);
    cfg.max_sessions = 2;
    cfg.session_ttl_ns = 300000;
    cfg.max_inodes = 60;
    for (uint64_t seed = 200; seed < 206; seed++)
        replicas_agree(seed, 2500, 101, &cfg);
}

/* ---- A large namespace ---- */

static int fd_write(void *arg, const void *data, size_t len)
{
    int fd = *(int *)arg;
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k <= 0)
            return CM_E_IO;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* 100,000+ inodes built through the command path, in four levels: 10 top directories, 100
 * below them, 1000 leaf directories each holding 75 files (most with one to three blocks, some
 * with holes or truncated), 25 symlinks and 10 hard links to files of the previous leaf; a
 * few files unlinked (free inode numbers, pending garbage). Snapshotted to a temporary file,
 * restored into a fresh namespace: the canonical dumps are equal and a snapshot of the restored
 * namespace is byte-identical to the first. */
Test(snapshot, large_namespace_round_trip, .timeout = 120)
{
    struct ns_attr root = t_root();
    struct ns_attr prev_files[10];
    bool have_prev = false;
    char nm[64];
    for (int t = 0; t < 10; t++) {
        struct ns_attr top;
        snprintf(nm, sizeof(nm), "top%d", t);
        cr_assert_eq(t_mkdir(&root, nm, 0755, &top), 0);
        for (int m = 0; m < 10; m++) {
            struct ns_attr mid;
            snprintf(nm, sizeof(nm), "mid%d", m);
            cr_assert_eq(t_mkdir(&top, nm, m % 3 ? 0755 : 01777, &mid), 0);
            for (int l = 0; l < 10; l++) {
                struct ns_attr leaf;
                snprintf(nm, sizeof(nm), "leaf-%d-%d-%d", t, m, l);
                cr_assert_eq(t_mkdir(&mid, nm, 0750, &leaf), 0);
                uint64_t first = 0;
                cr_assert_eq(t_alloc(200, &first), 0);
                uint64_t next = first;
                struct ns_attr files[10];
                for (int f = 0; f < 75; f++) {
                    struct ns_attr fa;
                    snprintf(nm, sizeof(nm), "file%02d", f);
                    cr_assert_eq(t_create(&leaf, nm, f % 7 ? 0644 : 06755, NS_CREATE_EXCL, &fa), 0);
                    if (f < 10)
                        files[f] = fa;
                    if (f % 5 == 4)
                        continue; /* empty */
                    uint32_t nb = 1 + (uint32_t)(f % 3);
                    struct ns_block b[3];
                    uint64_t total = 0;
                    for (uint32_t k = 0; k < nb; k++) {
                        b[k] = t_block(next++, 100 + (uint32_t)((f * 37 + k * 11) % 4000));
                        b[k].n_replicas = (uint8_t)(1 + (f + k) % NS_MAX_REPLICAS);
                        total += b[k].len;
                    }
                    uint64_t off = f % 4 == 0 ? 1000 : 0; /* a hole first */
                    cr_assert_eq(t_commit(&fa, off, total, off + total + (uint64_t)(f % 2) * 50, 0,
                                          b, nb, NULL),
                                 0);
                    if (f % 11 == 0) { /* truncated into its blocks */
                        struct ns_setattr sa = {.valid = NS_SET_SIZE | NS_SET_MODE,
                                                .size = off + total / 2,
                                                .mode = 0600};
                        cr_assert_eq(t_setattr(&fa, &sa, NULL), 0);
                    }
                }
                for (int s = 0; s < 25; s++) {
                    snprintf(nm, sizeof(nm), "sym%02d", s);
                    char target[64];
                    snprintf(target, sizeof(target), "../leaf-%d-%d-%d/file%02d", t, m,
                             (l + 1) % 10, s);
                    cr_assert_eq(t_symlink(&leaf, nm, target, NULL), 0);
                }
                if (have_prev)
                    for (int h = 0; h < 10; h++) {
                        snprintf(nm, sizeof(nm), "hard%02d", h);
                        cr_assert_eq(t_link(&prev_files[h], &leaf, nm, NULL), 0);
                    }
                memcpy(prev_files, files, sizeof(files));
                have_prev = true;
                if (l == 9) { /* a file gone: a free inode number and pending garbage */
                    cr_assert_eq(t_unlink(&leaf, "file73", NULL), 0);
                    cr_assert_eq(t_unlink(&leaf, "file72", NULL), 0);
                }
            }
        }
    }
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_geq(st.inodes, 100000, "inodes %" PRIu64, st.inodes);
    cr_assert_gt(st.gc_pending, 0);

    char path[] = "/tmp/dfs-ns-large-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(ns_snapshot_write(T.ns, fd_write, &fd), 0);
    off_t size = lseek(fd, 0, SEEK_CUR);
    cr_assert_gt(size, 0);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    struct ns *b = fresh();
    cr_assert_eq(ns_restore_fd(b, fd, (uint64_t)size), 0);

    /* Every inode's attributes, every listing in order, every block list. */
    char *da = t_dump(T.ns), *db = t_dump(b);
    cr_assert_str_eq(da, db);
    free(da);
    free(db);
    struct ns_statfs sb;
    ns_statfs(b, &sb);
    cr_assert_eq(memcmp(&st, &sb, sizeof(st)), 0, "statfs equal");
    t_check_invariants(b);

    /* A snapshot of the restored one is byte-identical to the first. */
    char *first = malloc((size_t)size);
    cr_assert_not_null(first);
    cr_assert_eq(pread(fd, first, (size_t)size, 0), size);
    close(fd);
    struct sbuf s2 = t_snapshot(b);
    cr_assert_eq(s2.n, (size_t)size);
    cr_assert_eq(memcmp(s2.p, first, s2.n), 0, "snapshots identical");
    free(s2.p);
    free(first);
    ns_free(b);
}
