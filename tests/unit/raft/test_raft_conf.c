/* Configuration encoding (the data of RAFT_ENTRY_CONF entries): round trip, and a decoder that
 * refuses malformed input without reading past it; role names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

static struct raft_conf sample(uint32_t n)
{
    struct raft_conf c;
    memset(&c, 0, sizeof c);
    c.n = n;
    for (uint32_t i = 0; i < n; i++) {
        c.nodes[i].id = 1000 + i * 77;
        c.nodes[i].voter = i % 3 != 2;
        snprintf(c.nodes[i].addr, RAFT_ADDR_MAX, "http://10.0.0.%u:7000", i);
    }
    return c;
}

static void same_conf(const struct raft_conf *a, const struct raft_conf *b)
{
    cr_assert_eq(a->n, b->n);
    for (uint32_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->nodes[i].id, b->nodes[i].id);
        cr_assert_eq(a->nodes[i].voter, b->nodes[i].voter);
        cr_assert_str_eq(a->nodes[i].addr, b->nodes[i].addr);
    }
}

Test(conf, round_trip)
{
    uint8_t buf[4096];
    for (uint32_t n = 0; n <= RAFT_MAX_NODES; n++) {
        struct raft_conf c = sample(n), d;
        size_t len = raft_conf_encode(&c, buf, sizeof buf);
        cr_assert_gt(len, 0);
        cr_assert_leq(len, raft_conf_encoded_max());
        memset(&d, 0xff, sizeof d);
        cr_assert_eq(raft_conf_decode(buf, len, &d), 0);
        same_conf(&c, &d);
    }
}

Test(conf, largest_conf_fits_encoded_max)
{
    struct raft_conf c = sample(RAFT_MAX_NODES);
    for (uint32_t i = 0; i < c.n; i++) {
        memset(c.nodes[i].addr, 'x', RAFT_ADDR_MAX - 1);
        c.nodes[i].addr[RAFT_ADDR_MAX - 1] = 0;
    }
    size_t max = raft_conf_encoded_max();
    uint8_t *buf = malloc(max);
    size_t len = raft_conf_encode(&c, buf, max);
    cr_assert_eq(len, max);
    cr_assert_eq(raft_conf_encode(&c, buf, max - 1), 0, "too small a buffer: 0");
    struct raft_conf d;
    cr_assert_eq(raft_conf_decode(buf, len, &d), 0);
    same_conf(&c, &d);
    free(buf);
}

Test(conf, malformed_input_is_refused)
{
    uint8_t buf[4096];
    struct raft_conf c = sample(3), d;
    size_t len = raft_conf_encode(&c, buf, sizeof buf);
    /* Every truncation and an extra byte are refused. */
    for (size_t k = 0; k < len; k++) {
        cr_assert_eq(raft_conf_decode(buf, k, &d), RAFT_E_INVAL, "truncated to %zu", k);
    }
    buf[len] = 0;
    cr_assert_eq(raft_conf_decode(buf, len + 1, &d), RAFT_E_INVAL);
    cr_assert_eq(raft_conf_decode(NULL, 0, &d), RAFT_E_INVAL);
    uint8_t bad[sizeof buf];
    memcpy(bad, buf, len);
    bad[0] = 2; /* unknown version */
    cr_assert_eq(raft_conf_decode(bad, len, &d), RAFT_E_INVAL);
    memcpy(bad, buf, len);
    bad[1] = 17; /* too many nodes */
    cr_assert_eq(raft_conf_decode(bad, len, &d), RAFT_E_INVAL);
    memcpy(bad, buf, len);
    bad[2 + 8] = 0x80; /* unknown flag */
    cr_assert_eq(raft_conf_decode(bad, len, &d), RAFT_E_INVAL);
    memcpy(bad, buf, len);
    memset(bad + 2, 0, 8); /* id 0 */
    cr_assert_eq(raft_conf_decode(bad, len, &d), RAFT_E_INVAL);
    memcpy(bad, buf, len);
    bad[2 + 10] = 0; /* NUL inside an address */
    cr_assert_eq(raft_conf_decode(bad, len, &d), RAFT_E_INVAL);
    /* A repeated id. */
    struct raft_conf dup = sample(2);
    dup.nodes[1].id = dup.nodes[0].id;
    cr_assert_eq(raft_conf_encode(&dup, buf, sizeof buf), 0);
    /* Random bytes never decode past their length (ASan watches). */
    uint64_t x = 99;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(x % 300);
        uint8_t *p = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            p[i] = (uint8_t)(x >> 56);
        }
        if (n > 0) {
            p[0] = 1;
        }
        if (n > 1) {
            p[1] %= 4;
        }
        raft_conf_decode(p, n, &d);
        free(p);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
}

Test(conf, role_names)
{
    cr_assert_str_eq(raft_role_name(RAFT_FOLLOWER), "FOLLOWER");
    cr_assert_str_eq(raft_role_name(RAFT_PRE_CANDIDATE), "PRE_CANDIDATE");
    cr_assert_str_eq(raft_role_name(RAFT_CANDIDATE), "CANDIDATE");
    cr_assert_str_eq(raft_role_name(RAFT_LEADER), "LEADER");
    cr_assert_str_eq(raft_role_name(42), "UNKNOWN");
}

Test(conf, raft_new_refuses_bad_config_and_boot)
{
    struct raft_config cfg;
    raft_config_default(&cfg);
    struct raft_boot b;
    memset(&b, 0, sizeof b);
    b.conf = sample(3);
    struct raft *r = NULL;
    cr_assert_eq(raft_new(&cfg, &b, 0, &r), RAFT_E_INVAL, "id 0");
    cfg.id = 1000;
    cfg.election_timeout_max = cfg.election_timeout_min;
    cr_assert_eq(raft_new(&cfg, &b, 0, &r), RAFT_E_INVAL, "empty timeout range");
    raft_config_default(&cfg);
    cfg.id = 1000;
    struct raft_entry e[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
    b.term = 1;
    b.n_entries = 2;
    b.entries = e;
    cr_assert_eq(raft_new(&cfg, &b, 0, &r), RAFT_E_INVAL, "gap in the log");
    e[1].index = 2;
    b.applied = 5;
    cr_assert_eq(raft_new(&cfg, &b, 0, &r), RAFT_E_INVAL, "applied beyond the log");
    b.applied = 2;
    cr_assert_eq(raft_new(&cfg, &b, 0, &r), 0);
    struct raft_status s;
    raft_get_status(r, &s);
    cr_assert_eq(s.last_index, 2);
    cr_assert_eq(s.commit_index, 2);
    cr_assert_eq(s.applied_index, 2);
    cr_assert_eq(s.persisted_index, 2);
    raft_free(r);
}
