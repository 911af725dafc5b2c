/* The namespace's command and result encodings: every op round-trips, the encoders refuse what
 * is invalid, and malformed commands (truncated, flipped, random) decode to CM_E_INVAL and apply
 * as an error result without changing the state or crashing. */
#include "ns_test_util.h"

static void setup(void)
{
    t_init(NULL);
}

static void teardown(void)
{
    t_fini();
}

TestSuite(codec, .init = setup, .fini = teardown);

static const struct ns_cred CRED = {.uid = 5, .gid = 6, .n_groups = 3, .groups = {7, 8, 9}};

/* One valid command of each op (malloc'd in cmds[i], lengths in lens[i]); returns the count. */
static int all_commands(void *cmds[], size_t lens[])
{
    struct ns_req rq = {
        .client = 0x1122334455667788ull, .seq = 99, .now_ns = -12345, .cred = &CRED};
    struct ns_setattr sa = {.valid = NS_SET_MODE | NS_SET_SIZE | NS_SET_ATIME,
                            .mode = 0640,
                            .size = 1ull << 40,
                            .atime_ns = INT64_MIN};
    struct ns_block b[2] = {t_block(3, 100), t_block(4, 28)};
    b[1].n_replicas = NS_MAX_REPLICAS;
    int n = 0;
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "dir", 0755, &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_create(&rq, 2, 3, "file", 0644, NS_CREATE_EXCL, &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_symlink(&rq, 4, 5, "ln", "target/path", &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_link(&rq, 6, 7, 8, 9, "hard", &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_unlink(&rq, 10, 11, "u", &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_rmdir(&rq, 12, 13, "rd", &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(
        ns_cmd_rename(&rq, 14, 15, "from", 16, 17, "to", NS_RENAME_EXCHANGE, &cmds[n], &lens[n]),
        0);
    n++;
    cr_assert_eq(ns_cmd_setattr(&rq, 18, 19, &sa, &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_alloc_blocks(&rq, 17, &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(
        ns_cmd_commit(&rq, 20, 21, 1000, 128, 2000, NS_COMMIT_SET_SIZE, b, 2, &cmds[n], &lens[n]),
        0);
    n++;
    rq.cred = NULL;
    static const uint64_t gc_ids[] = {1ull << 50, 7};
    cr_assert_eq(ns_cmd_gc_ack(&rq, gc_ids, 2, &cmds[n], &lens[n]), 0);
    n++;
    cr_assert_eq(ns_cmd_orphan_bound(&rq, 1ull << 40, &cmds[n], &lens[n]), 0);
    n++;
    return n;
}

Test(codec, round_trip_every_op)
{
    void *cmds[16];
    size_t lens[16];
    int n = all_commands(cmds, lens);
    cr_assert_eq(n, NS_OP_COUNT_ - 1);
    for (int i = 0; i < n; i++) {
        struct ns_cmd c;
        cr_assert_eq(ns_cmd_decode(cmds[i], lens[i], &c), 0, "op %d", i + 1);
        cr_assert_eq(c.op, i + 1);
        cr_assert_eq(c.client, 0x1122334455667788ull);
        cr_assert_eq(c.seq, 99);
        cr_assert_eq(c.now_ns, -12345);
        if (c.op != NS_OP_GC_ACK && c.op != NS_OP_ORPHAN_BOUND) {
            cr_assert(c.has_cred);
            cr_assert_eq(c.cred.uid, 5);
            cr_assert_eq(c.cred.gid, 6);
            cr_assert_eq(c.cred.n_groups, 3);
            cr_assert_eq(c.cred.groups[2], 9);
        } else {
            cr_assert(!c.has_cred);
        }
        /* Encoding the decoded command gives the same bytes. */
        void *again;
        size_t alen;
        cr_assert_eq(ns_cmd_encode(&c, &again, &alen), 0);
        cr_assert_eq(alen, lens[i]);
        cr_assert_eq(memcmp(again, cmds[i], alen), 0);
        free(again);
        switch (c.op) {
        case NS_OP_MKDIR:
            cr_assert_eq(c.name_len, 3);
            cr_assert_eq(memcmp(c.name, "dir", 3), 0);
            cr_assert_eq(c.mode, 0755);
            break;
        case NS_OP_CREATE:
            cr_assert_eq(c.ino, 2);
            cr_assert_eq(c.gen, 3);
            cr_assert_eq(c.flags, NS_CREATE_EXCL);
            break;
        case NS_OP_SYMLINK:
            cr_assert_eq(c.target_len, 11);
            cr_assert_eq(memcmp(c.target, "target/path", 11), 0);
            break;
        case NS_OP_LINK:
            cr_assert_eq(c.ino2, 8);
            cr_assert_eq(c.gen2, 9);
            cr_assert_eq(c.name2_len, 4);
            break;
        case NS_OP_RENAME:
            cr_assert_eq(c.ino, 14);
            cr_assert_eq(c.ino2, 16);
            cr_assert_eq(c.gen2, 17);
            cr_assert_eq(memcmp(c.name2, "to", 2), 0);
            cr_assert_eq(c.flags, NS_RENAME_EXCHANGE);
            break;
        case NS_OP_SETATTR:
            cr_assert_eq(c.sa.valid, NS_SET_MODE | NS_SET_SIZE | NS_SET_ATIME);
            cr_assert_eq(c.sa.size, 1ull << 40);
            cr_assert_eq(c.sa.atime_ns, INT64_MIN);
            break;
        case NS_OP_ALLOC_BLOCKS:
            cr_assert_eq(c.count, 17);
            break;
        case NS_OP_COMMIT:
            cr_assert_eq(c.off, 1000);
            cr_assert_eq(c.len, 128);
            cr_assert_eq(c.size, 2000);
            cr_assert_eq(c.flags, NS_COMMIT_SET_SIZE);
            cr_assert_eq(c.n_blocks, 2);
            cr_assert_eq(c.blocks[1].id, 4);
            cr_assert_eq(c.blocks[1].n_replicas, NS_MAX_REPLICAS);
            cr_assert_eq(c.blocks[0].crc32c, t_block(3, 100).crc32c);
            break;
        case NS_OP_ORPHAN_BOUND:
            cr_assert_eq(c.count, 1ull << 40);
            break;
        case NS_OP_GC_ACK:
            cr_assert_eq(c.n_ids, 2);
            cr_assert_eq(c.ids[0], 1ull << 50);
            cr_assert_eq(c.ids[1], 7);
            break;
        }
        ns_cmd_clear(&c);
        free(cmds[i]);
    }
}

Test(codec, set_time)
{
    void *c;
    size_t n;
    struct ns_req rq = {.client = 1, .seq = 1, .now_ns = 0};
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "x", 0755, &c, &n), 0);
    cr_assert_eq(ns_cmd_set_time(c, n, 1700000000123456789LL), 0);
    struct ns_cmd d;
    cr_assert_eq(ns_cmd_decode(c, n, &d), 0);
    cr_assert_eq(d.now_ns, 1700000000123456789LL);
    ns_cmd_clear(&d);
    cr_assert_eq(ns_cmd_set_time(c, 10, 1), CM_E_INVAL);
    cr_assert_eq(ns_cmd_set_time(NULL, 100, 1), CM_E_INVAL);
    /* The stamped time is what apply uses. */
    cr_assert_eq(t_apply(c, n, NULL), 0);
    cr_assert_eq(t_get(&(struct ns_attr){.ino = 1, .gen = 1}).mtime_ns, 1700000000123456789LL);
}

Test(codec, encoders_validate)
{
    void *c = NULL;
    size_t n;
    struct ns_req rq = {.client = 1, .seq = 1};
    char long_name[300];
    memset(long_name, 'n', sizeof(long_name));
    long_name[299] = 0;
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, NULL, 0755, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, long_name, 0755, &c, &n), CM_E_NAMETOOLONG);
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "x", 017777, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_create(&rq, 1, 1, "x", 0644, 4, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_link(&rq, 2, 1, 1, 1, "..", &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_rename(&rq, 1, 1, "a", 1, 1, "", 0, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_alloc_blocks(&rq, 0, &c, &n), CM_E_INVAL);
    struct ns_setattr sa = {.valid = NS_SET_MTIME | NS_SET_MTIME_NOW};
    cr_assert_eq(ns_cmd_setattr(&rq, 1, 1, &sa, &c, &n), CM_E_INVAL);
    struct ns_block b = t_block(1, 10);
    cr_assert_eq(ns_cmd_commit(&rq, 1, 1, 0, 10, 10, 0, NULL, 1, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_commit(&rq, 1, 1, 0, 11, 11, 0, &b, 1, &c, &n), CM_E_INVAL);
    cr_assert_eq(ns_cmd_commit(&rq, 1, 1, 0, 10, 10, 0, &b, NS_MAX_COMMIT_BLOCKS + 1, &c, &n),
                 CM_E_INVAL);
    struct ns_cred many = {.n_groups = NS_MAX_GROUPS + 1};
    rq.cred = &many;
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "x", 0755, &c, &n), CM_E_INVAL);
    cr_assert_null(c);
    struct ns_cmd bad = {.op = 0};
    cr_assert_eq(ns_cmd_encode(&bad, &c, &n), CM_E_INVAL);
    bad.op = NS_OP_COUNT_;
    cr_assert_eq(ns_cmd_encode(&bad, &c, &n), CM_E_INVAL);
}

/* Applies garbage; returns its error and checks the state did not change. */
static int apply_garbage(const void *data, size_t len)
{
    char *before = t_dump(T.ns);
    void *c = malloc(len ? len : 1);
    memcpy(c, data, len);
    int err = t_apply_on(T.ns, c, len, NULL);
    char *after = t_dump(T.ns);
    if (err != 0)
        cr_assert_str_eq(strchr(before, '\n'), strchr(after, '\n'));
    free(before);
    free(after);
    return err;
}

Test(codec, truncated_and_extended_commands)
{
    void *cmds[16];
    size_t lens[16];
    int n = all_commands(cmds, lens);
    for (int i = 0; i < n; i++) {
        struct ns_cmd c;
        for (size_t k = 0; k < lens[i]; k++) {
            cr_assert_eq(ns_cmd_decode(cmds[i], k, &c), CM_E_INVAL, "op %d cut at %zu", i + 1, k);
            cr_assert_eq(apply_garbage(cmds[i], k), CM_E_INVAL);
        }
        uint8_t *longer = malloc(lens[i] + 1);
        memcpy(longer, cmds[i], lens[i]);
        longer[lens[i]] = 0;
        cr_assert_eq(ns_cmd_decode(longer, lens[i] + 1, &c), CM_E_INVAL, "trailing byte");
        free(longer);
        free(cmds[i]);
    }
    struct ns_cmd c;
    cr_assert_eq(ns_cmd_decode(NULL, 0, &c), CM_E_INVAL);
    cr_assert_eq(ns_cmd_decode(NULL, 100, &c), CM_E_INVAL);
}

Test(codec, header_fields_checked)
{
    void *c;
    size_t n;
    struct ns_req rq = {.client = 1, .seq = 1, .cred = &CRED};
    cr_assert_eq(ns_cmd_mkdir(&rq, 1, 1, "x", 0755, &c, &n), 0);
    uint8_t *p = c;
    struct ns_cmd d;
    static const struct {
        size_t off;
        uint8_t val;
    } bad[] = {
        {0, 2},  /* version */
        {1, 0},  /* op */
        {1, 99}, /* op */
        {2, 2},  /* has_cred */
        {3, 33}, /* groups */
        {4, 1},  /* reserved */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t saved = p[bad[i].off];
        p[bad[i].off] = bad[i].val;
        cr_assert_eq(ns_cmd_decode(p, n, &d), CM_E_INVAL, "byte %zu = %u", bad[i].off, bad[i].val);
        p[bad[i].off] = saved;
    }
    cr_assert_eq(ns_cmd_decode(p, n, &d), 0);
    free(c);
}

Test(codec, flipped_bytes_never_crash)
{
    void *cmds[16];
    size_t lens[16];
    int n = all_commands(cmds, lens);
    struct ns_attr r = t_root();
    cr_assert_eq(t_mkdir(&r, "dir", 0755, NULL), 0);
    uint32_t rnd = 99;
    for (int i = 0; i < n; i++) {
        uint8_t *p = cmds[i];
        for (size_t k = 0; k < lens[i]; k++) {
            for (int bit = 0; bit < 8; bit++) {
                p[k] ^= (uint8_t)(1u << bit);
                struct ns_cmd c;
                int rc = ns_cmd_decode(p, lens[i], &c);
                if (rc == 0)
                    ns_cmd_clear(&c);
                else
                    cr_assert(rc == CM_E_INVAL || rc == CM_E_NAMETOOLONG || rc == CM_E_FBIG,
                              "rc %d", rc);
                p[k] ^= (uint8_t)(1u << bit);
            }
            /* Some of them applied, too (random bytes, so most fail). */
            rnd = rnd * 1103515245 + 12345;
            if ((rnd >> 16) % 8 == 0) {
                uint8_t saved = p[k];
                p[k] = (uint8_t)(rnd >> 24);
                void *copy = malloc(lens[i]);
                memcpy(copy, p, lens[i]);
                t_apply_on(T.ns, copy, lens[i], NULL);
                p[k] = saved;
            }
        }
        free(cmds[i]);
    }
    t_check_invariants(T.ns);
}

Test(codec, random_garbage)
{
    uint32_t rnd = 4242;
    uint8_t buf[512];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(i % 200);
        for (size_t k = 0; k < len; k++) {
            rnd = rnd * 1103515245 + 12345;
            buf[k] = (uint8_t)(rnd >> 16);
        }
        /* A valid-looking header half the time, so the bodies get exercised. */
        if (len >= 32 && i % 2 == 0) {
            buf[0] = NS_CMD_VERSION;
            buf[1] = (uint8_t)(1 + i % (NS_OP_COUNT_ - 1));
            buf[2] = 0;
            buf[3] = 0;
            memset(buf + 4, 0, 4);
        }
        struct ns_cmd c;
        if (ns_cmd_decode(buf, len, &c) == 0)
            ns_cmd_clear(&c);
        void *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        t_apply_on(T.ns, copy, len, NULL);
    }
    t_check_invariants(T.ns);
}

Test(codec, huge_block_count_refused_cheaply)
{
    void *c;
    size_t n;
    struct ns_req rq = {.client = 1, .seq = 1};
    struct ns_block b = t_block(1, 10);
    cr_assert_eq(ns_cmd_commit(&rq, 1, 1, 0, 10, 10, 0, &b, 1, &c, &n), 0);
    uint8_t *p = c;
    /* n_blocks sits right before the first block: 32 + 5*8 + 4. */
    size_t at = 32 + 5 * 8 + 4;
    p[at] = 0xff;
    p[at + 1] = 0xff;
    p[at + 2] = 0xff;
    p[at + 3] = 0x7f;
    struct ns_cmd d;
    cr_assert_eq(ns_cmd_decode(p, n, &d), CM_E_INVAL);
    p[at] = 2;
    p[at + 1] = p[at + 2] = p[at + 3] = 0;
    cr_assert_eq(ns_cmd_decode(p, n, &d), CM_E_INVAL, "second block missing");
    free(c);
}

Test(codec, results)
{
    struct ns_result d;
    /* Build a result through apply: unlink of a file with blocks. */
    struct ns_attr root = t_root(), f;
    cr_assert_eq(t_create(&root, "f", 0644, 0, &f), 0);
    uint64_t id;
    cr_assert_eq(t_write(&f, 0, 10, &id, NULL), 0);
    struct ns_result u;
    cr_assert_eq(t_unlink(&root, "f", &u), 0);
    cr_assert_eq(u.n_freed, 1);
    cr_assert_eq(u.freed[0], id);
    ns_result_clear(&u);
    /* Malformed results are CM_E_PROTO. */
    cr_assert_eq(ns_result_decode(NULL, 0, &d), CM_E_PROTO);
    uint8_t junk[24] = {2};
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), CM_E_PROTO);
    junk[0] = NS_RESULT_VERSION;
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), 0);
    cr_assert_eq(d.err, 0);
    cr_assert_eq(ns_result_decode(junk, 23, &d), CM_E_PROTO);
    junk[1] = 4; /* n_attr */
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), CM_E_PROTO);
    junk[1] = 1;
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), CM_E_PROTO, "attr missing");
    junk[1] = 0;
    junk[16] = 1; /* n_freed */
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), CM_E_PROTO, "id missing");
    junk[16] = 0;
    junk[20] = 1; /* reserved */
    cr_assert_eq(ns_result_decode(junk, sizeof(junk), &d), CM_E_PROTO);
}
