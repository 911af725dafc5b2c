/* The namespace's block index (block id -> extents referencing it) stays exactly what a walk
 * over every file finds, through every operation and a snapshot restore; pending garbage and
 * GC_ACK; sorting a chunkserver's copies for deletes. */
#include "ns_test_util.h"

#include "master/ns_blockscan.h"

TestSuite(ns_index, .init = NULL, .fini = NULL);

/* ---- The index against a full scan ---- */

struct scan {
    uint64_t *ids;
    size_t n, cap;
};

static int collect(void *arg, const struct ns_block *b)
{
    struct scan *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->ids = realloc(s->ids, s->cap * sizeof(*s->ids));
        cr_assert_not_null(s->ids);
    }
    s->ids[s->n++] = b->id;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every allocated id: the index count equals the number of extents a full walk finds, and an
 * unreferenced id is never referenced by the index; pending garbage is never referenced. */
static void check_index(struct ns *ns)
{
    struct scan s = {0};
    cr_assert_eq(ns_scan_blocks(ns, collect, &s), 0);
    if (s.n > 0)
        qsort(s.ids, s.n, sizeof(*s.ids), cmp_u64);
    struct ns_statfs st;
    ns_statfs(ns, &st);
    size_t distinct = 0, i = 0;
    for (uint64_t id = 1; id <= st.blocks_allocated; id++) {
        uint32_t count = 0;
        while (i < s.n && s.ids[i] < id)
            i++;
        while (i < s.n && s.ids[i] == id) {
            count++;
            i++;
        }
        distinct += count > 0;
        cr_assert_eq(ns_block_refs(ns, id), count, "block %" PRIu64 ": index %u, scan %u", id,
                     ns_block_refs(ns, id), count);
        if (count > 0)
            cr_assert_not(ns_gc_is_pending(ns, id), "referenced block %" PRIu64 " pending", id);
    }
    cr_assert_eq(ns_blocks_referenced(ns), distinct);
    /* A walk in small steps finds each referenced id once. */
    uint64_t *w = malloc((distinct + 7) * sizeof(*w)), cursor = 0;
    size_t nw = 0, steps = 0;
    cr_assert_not_null(w);
    do {
        cr_assert_leq(nw, distinct, "walk found more ids than are referenced");
        nw += ns_refs_walk(ns, &cursor, w + nw, 7);
        cr_assert_lt(++steps, 1u << 20, "walk does not end");
    } while (cursor != 0);
    cr_assert_eq(nw, distinct);
    if (nw > 0)
        qsort(w, nw, sizeof(*w), cmp_u64);
    for (size_t k = 0, j = 0; k < nw; k++) {
        cr_assert(k == 0 || w[k] != w[k - 1], "walk saw %" PRIu64 " twice", w[k]);
        while (j < s.n && s.ids[j] < w[k])
            j++;
        cr_assert(j < s.n && s.ids[j] == w[k], "walk found %" PRIu64 ", no file has it", w[k]);
    }
    free(w);
    free(s.ids);
}

static bool freed_has(const struct ns_result *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_freed; i++)
        if (r->freed[i] == id)
            return true;
    return false;
}

Test(ns_index, overwrite_truncate_unlink)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    uint64_t a, b, c;
    cr_assert_eq(t_write(&f, 0, 100, &a, NULL), 0);
    cr_assert_eq(t_write(&f, 100, 100, &b, NULL), 0);
    cr_assert_eq(t_write(&f, 200, 100, &c, NULL), 0);
    check_index(T.ns);
    cr_assert_eq(ns_block_refs(T.ns, a), 1);
    /* Overwriting the middle of a splits it into two extents of the same block. */
    uint64_t d;
    struct ns_result res;
    cr_assert_eq(t_write(&f, 40, 20, &d, &res), 0);
    cr_assert_eq(res.n_freed, 0);
    ns_result_clear(&res);
    cr_assert_eq(ns_block_refs(T.ns, a), 2);
    check_index(T.ns);
    /* Overwriting the whole of b frees it. */
    uint64_t e;
    cr_assert_eq(t_write(&f, 100, 100, &e, &res), 0);
    cr_assert(freed_has(&res, b));
    ns_result_clear(&res);
    cr_assert_eq(ns_block_refs(T.ns, b), 0);
    cr_assert(ns_gc_is_pending(T.ns, b));
    check_index(T.ns);
    /* Truncating into a keeps it (one extent less), frees the rest. */
    struct ns_setattr sa = {.valid = NS_SET_SIZE, .size = 50};
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert(freed_has(&res, c) && freed_has(&res, e));
    cr_assert_not(freed_has(&res, a) || freed_has(&res, d), "still partly in the file");
    ns_result_clear(&res);
    cr_assert_eq(ns_block_refs(T.ns, a), 1);
    cr_assert_eq(ns_block_refs(T.ns, d), 1);
    check_index(T.ns);
    sa.size = 10;
    cr_assert_eq(t_setattr(&f, &sa, &res), 0);
    cr_assert(freed_has(&res, d));
    ns_result_clear(&res);
    cr_assert_eq(ns_block_refs(T.ns, a), 1);
    check_index(T.ns);
    cr_assert_eq(t_unlink(&r, "f", &res), 0);
    cr_assert(freed_has(&res, a));
    ns_result_clear(&res);
    cr_assert_eq(ns_blocks_referenced(T.ns), 0);
    check_index(T.ns);
    t_fini();
}

Test(ns_index, hard_links_rename_and_create_trunc)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f, g, h;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    uint64_t a, b, c;
    cr_assert_eq(t_write(&f, 0, 100, &a, NULL), 0);
    cr_assert_eq(t_link(&f, &r, "f2", NULL), 0);
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    cr_assert_eq(ns_block_refs(T.ns, a), 1, "still linked as f2");
    cr_assert_not(ns_gc_is_pending(T.ns, a));
    check_index(T.ns);
    cr_assert_eq(t_create(&r, "g", 0644, 0, &g), 0);
    cr_assert_eq(t_write(&g, 0, 100, &b, NULL), 0);
    struct ns_result res;
    cr_assert_eq(t_rename(&r, "g", &r, "f2", 0, &res), 0);
    cr_assert(freed_has(&res, a), "rename over the last link frees its blocks");
    ns_result_clear(&res);
    cr_assert_eq(ns_block_refs(T.ns, a), 0);
    cr_assert_eq(ns_block_refs(T.ns, b), 1);
    check_index(T.ns);
    cr_assert_eq(t_create(&r, "f2", 0644, NS_CREATE_TRUNC, &h), 0);
    cr_assert_eq(ns_block_refs(T.ns, b), 0);
    cr_assert(ns_gc_is_pending(T.ns, b));
    cr_assert_eq(t_write(&h, 0, 10, &c, NULL), 0);
    check_index(T.ns);
    t_fini();
}

Test(ns_index, block_shared_between_files)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f, g;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    cr_assert_eq(t_create(&r, "g", 0644, 0, &g), 0);
    uint64_t a;
    cr_assert_eq(t_write(&f, 0, 100, &a, NULL), 0);
    struct ns_block b = t_block(a, 100);
    cr_assert_eq(t_commit(&g, 0, 100, 100, 0, &b, 1, NULL), 0);
    cr_assert_eq(ns_block_refs(T.ns, a), 2);
    struct ns_result res;
    cr_assert_eq(t_unlink(&r, "f", &res), 0);
    cr_assert_eq(res.n_freed, 0, "g still references it");
    ns_result_clear(&res);
    cr_assert_not(ns_gc_is_pending(T.ns, a));
    cr_assert_eq(t_unlink(&r, "g", &res), 0);
    cr_assert(freed_has(&res, a));
    ns_result_clear(&res);
    cr_assert(ns_gc_is_pending(T.ns, a));
    check_index(T.ns);
    t_fini();
}

Test(ns_index, snapshot_restore_rebuilds)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f;
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        cr_assert_eq(t_create(&r, name, 0644, 0, &f), 0);
        for (int k = 0; k < i % 4 + 1; k++)
            cr_assert_eq(t_write(&f, (uint64_t)k * 50, 100, NULL, NULL), 0);
    }
    cr_assert_eq(t_unlink(&r, "f3", NULL), 0);
    check_index(T.ns);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *o;
    cr_assert_eq(ns_new(NULL, &o), 0);
    cr_assert_eq(t_restore(o, s.p, s.n), 0);
    check_index(o);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    for (uint64_t id = 1; id <= st.blocks_allocated; id++) {
        cr_assert_eq(ns_block_refs(o, id), ns_block_refs(T.ns, id));
        cr_assert_eq(ns_gc_is_pending(o, id), ns_gc_is_pending(T.ns, id));
    }
    /* Restoring over a namespace with other content replaces its index. */
    cr_assert_eq(t_restore(T.ns, s.p, s.n), 0);
    check_index(T.ns);
    ns_free(o);
    free(s.p);
    t_fini();
}

/* ---- Property: random operations keep the index exact ---- */

static uint64_t rnd_state;

static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

Test(ns_index, random_operations_match_scan)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        t_init(NULL);
        rnd_state = seed * 0x9e3779b97f4a7c15ULL;
        struct ns_attr r = t_root();
        for (int step = 0; step < 300; step++) {
            char name[16], name2[16];
            snprintf(name, sizeof(name), "f%u", rnd(8));
            snprintf(name2, sizeof(name2), "f%u", rnd(8));
            struct ns_attr f;
            int have = t_lookup(&r, name, &f) == 0;
            switch (rnd(9)) {
            case 0:
                t_create(&r, name, 0644, rnd(4) == 0 ? NS_CREATE_TRUNC : 0, NULL);
                break;
            case 1:
            case 2:
            case 3:
                if (have) {
                    uint32_t nb = 1 + rnd(3), len = 0;
                    struct ns_block b[3];
                    uint64_t first;
                    cr_assert_eq(t_alloc(nb, &first), 0);
                    for (uint32_t i = 0; i < nb; i++) {
                        b[i] = t_block(first + i, 1 + rnd(200));
                        len += b[i].len;
                    }
                    if (rnd(10) == 0) /* a client reusing a block id (maybe freed: refused) */
                        b[0].id = 1 + rnd((uint32_t)first);
                    uint64_t off = rnd(600);
                    t_commit(&f, off, len, off + len + rnd(50),
                             rnd(5) == 0 ? NS_COMMIT_SET_SIZE : 0, b, nb, NULL);
                }
                break;
            case 4:
                if (have) {
                    struct ns_setattr sa = {.valid = NS_SET_SIZE, .size = rnd(800)};
                    t_setattr(&f, &sa, NULL);
                }
                break;
            case 5:
                t_unlink(&r, name, NULL);
                break;
            case 6:
                if (have)
                    t_link(&f, &r, name2, NULL);
                break;
            case 7:
                t_rename(&r, name, &r, name2, 0, NULL);
                break;
            default: {
                uint64_t ids[4], next;
                uint32_t n;
                ns_gc_pending(T.ns, 0, 4, ids, &n, &next);
                if (n > 0) {
                    void *c;
                    size_t len;
                    struct ns_req rq = t_req();
                    cr_assert_eq(ns_cmd_gc_ack(&rq, ids, n, &c, &len), 0);
                    cr_assert_eq(t_apply(c, len, NULL), 0);
                }
                break;
            }
            }
            check_index(T.ns);
        }
        struct sbuf s = t_snapshot(T.ns);
        struct ns *o;
        cr_assert_eq(ns_new(NULL, &o), 0);
        cr_assert_eq(t_restore(o, s.p, s.n), 0);
        check_index(o);
        struct sbuf s2 = t_snapshot(o);
        cr_assert_eq(s.n, s2.n);
        cr_assert_eq(memcmp(s.p, s2.p, s.n), 0, "seed %" PRIu64 ": restored state differs", seed);
        ns_free(o);
        free(s.p);
        free(s2.p);
        t_fini();
    }
}

/* ---- GC_ACK ---- */

static void ack(const uint64_t *ids, uint32_t n, uint64_t *dropped)
{
    void *c;
    size_t len;
    struct ns_req rq = {.now_ns = T.now}; /* client 0: the leader's internal command */
    struct ns_result res;
    cr_assert_eq(ns_cmd_gc_ack(&rq, ids, n, &c, &len), 0);
    cr_assert_eq(t_apply_on(T.ns, c, len, &res), 0);
    *dropped = res.value;
    ns_result_clear(&res);
}

Test(ns_index, gc_ack_survives_snapshot)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f;
    uint64_t id[6];
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(t_write(&f, (uint64_t)i * 10, 10, &id[i], NULL), 0);
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.gc_pending, 6);
    uint64_t dropped, some[3] = {id[1], id[3], 999999};
    ack(some, 3, &dropped);
    cr_assert_eq(dropped, 2);
    ack(some, 3, &dropped);
    cr_assert_eq(dropped, 0, "replaying the same ack changes nothing");
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.gc_pending, 4);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *o;
    cr_assert_eq(ns_new(NULL, &o), 0);
    cr_assert_eq(t_restore(o, s.p, s.n), 0);
    uint64_t got[8], next;
    uint32_t n;
    ns_gc_pending(o, 0, 8, got, &n, &next);
    cr_assert_eq(n, 4);
    cr_assert_eq(got[0], id[0]);
    cr_assert_eq(got[1], id[2]);
    cr_assert_eq(got[2], id[4]);
    cr_assert_eq(got[3], id[5]);
    struct sbuf s2 = t_snapshot(o);
    cr_assert(s.n == s2.n && memcmp(s.p, s2.p, s.n) == 0, "equal states, equal bytes");
    ns_free(o);
    free(s.p);
    free(s2.p);
    uint64_t rest[4] = {id[0], id[2], id[4], id[5]};
    ack(rest, 4, &dropped);
    cr_assert_eq(dropped, 4);
    ns_statfs(T.ns, &st);
    cr_assert_eq(st.gc_pending, 0);
    t_fini();
}

Test(ns_index, gc_many_ids_compact_in_order)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    uint64_t first;
    enum { N = 300 };
    cr_assert_eq(t_alloc(N, &first), 0);
    struct ns_block b[N];
    for (int i = 0; i < N; i++)
        b[i] = t_block(first + (uint64_t)i, 10);
    cr_assert_eq(t_commit(&f, 0, 10 * N, 10 * N, 0, b, N, NULL), 0);
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    uint64_t drop[N], dropped;
    uint32_t k = 0;
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            drop[k++] = first + (uint64_t)i;
    ack(drop, k, &dropped);
    cr_assert_eq(dropped, k);
    uint64_t got[N], next;
    uint32_t n;
    ns_gc_pending(T.ns, 0, N, got, &n, &next);
    cr_assert_eq(n, N / 3);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(got[i], first + 3 * (uint64_t)i, "the order they were freed in");
    for (int i = 0; i < N; i++)
        cr_assert_eq(ns_gc_is_pending(T.ns, first + (uint64_t)i), i % 3 == 0);
    t_fini();
}

Test(ns_index, gc_ack_rejects_bad_commands)
{
    struct ns_req rq = {0};
    void *c;
    size_t len;
    uint64_t zero = 0;
    cr_assert_eq(ns_cmd_gc_ack(&rq, &zero, 1, &c, &len), CM_E_INVAL);
    uint64_t one = 1;
    cr_assert_eq(ns_cmd_gc_ack(&rq, &one, 1, &c, &len), 0);
    struct ns_cmd d;
    cr_assert_eq(ns_cmd_decode(c, len - 1, &d), CM_E_INVAL, "truncated");
    cr_assert_eq(ns_cmd_decode(c, len, &d), 0);
    ns_cmd_clear(&d);
    free(c);
}

/* ---- ORPHAN_BOUND ---- */

static int bound(uint64_t below, uint64_t *now_below)
{
    void *c;
    size_t len;
    struct ns_req rq = {.now_ns = T.now}; /* client 0: the leader's internal command */
    struct ns_result res;
    cr_assert_eq(ns_cmd_orphan_bound(&rq, below, &c, &len), 0);
    int err = t_apply_on(T.ns, c, len, &res);
    if (now_below != NULL)
        *now_below = res.value;
    ns_result_clear(&res);
    return err;
}

static uint64_t orphan_below(struct ns *ns)
{
    struct ns_statfs st;
    ns_statfs(ns, &st);
    return st.orphan_below;
}

Test(ns_index, orphan_bound_refuses_late_commits_of_unreferenced_ids)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f, g;
    uint64_t first, below;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    cr_assert_eq(t_create(&r, "g", 0644, 0, &g), 0);
    cr_assert_eq(t_alloc(4, &first), 0); /* ids first .. first + 3 */
    struct ns_block b0 = t_block(first, 10), b1 = t_block(first + 1, 10),
                    b3 = t_block(first + 3, 10);
    cr_assert_eq(t_commit(&f, 0, 10, 10, 0, &b0, 1, NULL), 0); /* referenced before the bound */
    cr_assert_eq(orphan_below(T.ns), 0);

    cr_assert_eq(bound(first + 3, &below), 0);
    cr_assert_eq(below, first + 3);
    cr_assert_eq(orphan_below(T.ns), first + 3);
    /* Unreferenced and below the bound: its copies may be deleted, so it cannot be committed. */
    cr_assert_eq(t_commit(&g, 0, 10, 10, 0, &b1, 1, NULL), CM_E_EXPIRED);
    /* A referenced id below the bound may be committed again (a second file, an overwrite). */
    cr_assert_eq(t_commit(&g, 0, 10, 10, 0, &b0, 1, NULL), 0);
    /* At and above the bound: still a client's to commit. */
    cr_assert_eq(t_commit(&g, 10, 10, 20, 0, &b3, 1, NULL), 0);

    /* Never lowered, never past the ids allocated. */
    cr_assert_eq(bound(first, &below), 0);
    cr_assert_eq(below, first + 3, "a lower bound changes nothing");
    struct ns_statfs st;
    ns_statfs(T.ns, &st);
    cr_assert_eq(bound(st.blocks_allocated + 2, NULL), CM_E_INVAL);
    cr_assert_eq(bound(st.blocks_allocated + 1, &below), 0);
    cr_assert_eq(below, st.blocks_allocated + 1);

    /* Once freed and acknowledged, an id under the bound stays uncommittable. */
    cr_assert_eq(t_unlink(&r, "f", NULL), 0);
    cr_assert_eq(t_unlink(&r, "g", NULL), 0);
    uint64_t ids[2] = {first, first + 3}, dropped;
    ack(ids, 2, &dropped);
    cr_assert_eq(dropped, 2);
    struct ns_attr h;
    cr_assert_eq(t_create(&r, "h", 0644, 0, &h), 0);
    cr_assert_eq(t_commit(&h, 0, 10, 10, 0, &b0, 1, NULL), CM_E_EXPIRED);
    t_check_invariants(T.ns);
    t_fini();
}

/* Where the orphan bound's varint sits in a version 2 snapshot: after the magic, the version and
 * the varints applied and next_block. */
static size_t varint_len(const uint8_t *p)
{
    size_t n = 1;
    while (*p++ & 0x80)
        n++;
    return n;
}

Test(ns_index, orphan_bound_survives_snapshots_and_version_1_loads)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f;
    uint64_t id;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    cr_assert_eq(t_write(&f, 0, 10, &id, NULL), 0);
    cr_assert_eq(bound(id + 1, NULL), 0);
    struct sbuf s = t_snapshot(T.ns);
    struct ns *o;
    cr_assert_eq(ns_new(NULL, &o), 0);
    cr_assert_eq(t_restore(o, s.p, s.n), 0);
    cr_assert_eq(orphan_below(o), id + 1);
    ns_free(o);
    free(s.p);

    /* A namespace without a bound, written as version 1 (no bound varint): loads with 0. */
    t_fini();
    t_init(NULL);
    r = t_root();
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    cr_assert_eq(t_write(&f, 0, 10, &id, NULL), 0);
    s = t_snapshot(T.ns);
    const uint8_t *p = (const uint8_t *)s.p;
    cr_assert_eq(p[8], 2, "snapshots are written as version 2");
    size_t at = 12;
    at += varint_len(p + at); /* applied */
    at += varint_len(p + at); /* next_block */
    cr_assert_eq(p[at], 0, "the bound, 0");
    uint8_t *v1 = malloc(s.n - 1);
    cr_assert_not_null(v1);
    memcpy(v1, s.p, at);
    memcpy(v1 + at, p + at + 1, s.n - at - 1);
    v1[8] = 1;
    cr_assert_eq(ns_new(NULL, &o), 0);
    cr_assert_eq(t_restore(o, v1, s.n - 1), 0);
    cr_assert_eq(orphan_below(o), 0);
    char *a = t_dump(T.ns), *b = t_dump(o);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    v1[8] = 3;
    struct ns *o3;
    cr_assert_eq(ns_new(NULL, &o3), 0);
    cr_assert_eq(t_restore(o3, v1, s.n - 1), CM_E_STORE, "a version from the future");
    ns_free(o3);
    ns_free(o);
    free(v1);
    free(s.p);
    t_fini();
}

Test(ns_index, orphan_bound_rejects_bad_commands)
{
    struct ns_req rq = {0};
    void *c;
    size_t len;
    cr_assert_eq(ns_cmd_orphan_bound(&rq, 0, &c, &len), CM_E_INVAL);
    cr_assert_eq(ns_cmd_orphan_bound(&rq, 77, &c, &len), 0);
    struct ns_cmd d;
    cr_assert_eq(ns_cmd_decode(c, len - 1, &d), CM_E_INVAL, "truncated");
    cr_assert_eq(ns_cmd_decode(c, len, &d), 0);
    cr_assert_eq(d.op, NS_OP_ORPHAN_BOUND);
    cr_assert_eq(d.count, 77);
    ns_cmd_clear(&d);
    free(c);
}

/* ---- A chunkserver's copies sorted for deletes ---- */

Test(ns_index, classify_held_copies)
{
    t_init(NULL);
    struct ns_attr r = t_root(), f, g;
    uint64_t live, gone;
    cr_assert_eq(t_create(&r, "f", 0644, 0, &f), 0);
    cr_assert_eq(t_create(&r, "g", 0644, 0, &g), 0);
    cr_assert_eq(t_write(&f, 0, 10, &live, NULL), 0);
    cr_assert_eq(t_write(&g, 0, 10, &gone, NULL), 0);
    cr_assert_eq(t_unlink(&r, "g", NULL), 0);
    uint64_t acked = gone, dropped;
    ack(&acked, 1, &dropped);
    cr_assert_eq(dropped, 1);
    uint64_t pend;
    cr_assert_eq(t_create(&r, "h", 0644, 0, &g), 0);
    cr_assert_eq(t_write(&g, 0, 10, &pend, NULL), 0);
    cr_assert_eq(t_unlink(&r, "h", NULL), 0);
    uint64_t young;
    cr_assert_eq(t_alloc(1, &young), 0); /* allocated, not committed yet */
    uint64_t held[4] = {live, gone, pend, young};
    uint64_t refs[4], del[4];
    size_t nr, nd;
    /* Before the orphan bound covers them, only pending garbage is deleted. */
    ns_blocks_classify(T.ns, held, 4, 0, refs, &nr, del, &nd, 4);
    cr_assert_eq(nr, 1);
    cr_assert_eq(refs[0], live);
    cr_assert_eq(nd, 1);
    cr_assert_eq(del[0], pend);
    /* The acknowledged id is an orphan once below the bound; the young one is not yet. */
    ns_blocks_classify(T.ns, held, 4, young, refs, &nr, del, &nd, 4);
    cr_assert_eq(nd, 2);
    cr_assert_eq(del[0], gone);
    cr_assert_eq(del[1], pend);
    ns_blocks_classify(T.ns, held, 4, young, refs, &nr, del, &nd, 1);
    cr_assert_eq(nd, 1, "at most max_del");
    t_fini();
}
