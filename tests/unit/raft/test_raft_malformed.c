/* Malformed input (STYLE: validated and answered with an error, never asserted): bad types,
 * unknown or zero senders, non-consecutive entries, out-of-range indexes, bad snapshot chunks
 * and undecodable configurations are refused with RAFT_E_INVAL and change nothing; random
 * garbage never crashes the core. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

struct snap {
    uint8_t role;
    raft_term term;
    raft_id vote, leader;
    raft_index commit, last, persisted;
    uint32_t conf_n;
};

static struct snap take(struct h_cluster *c, raft_id id)
{
    struct raft_status s = h_status(c, id);
    return (struct snap){
        s.role,  s.term, s.vote, s.leader, s.commit_index, s.last_index, s.persisted_index,
        s.conf.n};
}

static void same(struct snap a, struct snap b)
{
    cr_assert_eq(a.role, b.role);
    cr_assert_eq(a.term, b.term);
    cr_assert_eq(a.vote, b.vote);
    cr_assert_eq(a.leader, b.leader);
    cr_assert_eq(a.commit, b.commit);
    cr_assert_eq(a.last, b.last);
    cr_assert_eq(a.persisted, b.persisted);
    cr_assert_eq(a.conf_n, b.conf_n);
}

static struct h_cluster c;
static raft_id L, F;

static void setup(void)
{
    h_init(&c, 3, 101, NULL);
    L = h_elect(&c, 2000);
    h_propose(&c, L, "x");
    h_run(&c, 100);
    F = L == 1 ? 2 : 1;
    h_drop_all(&c);
}

static void teardown(void)
{
    h_free(&c);
}

static struct raft_msg append_from_leader(void)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND;
    m.from = L;
    m.to = F;
    m.term = h_status(&c, L).term;
    m.u.append.prev_index = 2;
    m.u.append.prev_term = m.term;
    m.u.append.commit = 2;
    return m;
}

static void refused(const struct raft_msg *m)
{
    struct snap before = take(&c, F);
    cr_assert_eq(h_receive(&c, F, m), RAFT_E_INVAL);
    same(before, take(&c, F));
    cr_assert_eq(h_queued(&c, 0), 0, "no answer to garbage");
}

Test(malformed, bad_type_and_addressing, .init = setup, .fini = teardown)
{
    struct raft_msg m = append_from_leader();
    uint8_t types[] = {0, 10, 200};
    for (size_t i = 0; i < sizeof types; i++) {
        m.type = types[i];
        refused(&m);
    }
    m = append_from_leader();
    m.from = 0;
    refused(&m);
    m.from = F;
    refused(&m);
    m.from = L;
    m.to = 9;
    refused(&m);
    cr_assert_eq(h_receive(&c, F, NULL), RAFT_E_INVAL);
}

Test(malformed, answers_from_unknown_nodes, .init = setup, .fini = teardown)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_APPEND_RESP;
    m.from = 9;
    m.to = L;
    m.term = h_status(&c, L).term + 7;
    m.u.append_resp.success = true;
    struct raft_status before = h_status(&c, L);
    cr_assert_eq(h_receive(&c, L, &m), RAFT_E_INVAL);
    cr_assert_eq(h_status(&c, L).term, before.term, "a stranger's term is not adopted");
    cr_assert_eq(h_status(&c, L).role, RAFT_LEADER);
    m.type = RAFT_MSG_VOTE_RESP;
    cr_assert_eq(h_receive(&c, L, &m), RAFT_E_INVAL);
    m.type = RAFT_MSG_READ_INDEX;
    cr_assert_eq(h_receive(&c, L, &m), RAFT_E_INVAL);
}

Test(malformed, bad_appends, .init = setup, .fini = teardown)
{
    struct raft_entry e[3];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 3; i++) {
        e[i].term = h_status(&c, L).term;
        e[i].index = 3 + (raft_index)i;
        e[i].type = RAFT_ENTRY_NORMAL;
    }
    struct raft_msg m = append_from_leader();
    m.u.append.n_entries = 3;
    m.u.append.entries = e;
    e[1].index = 9; /* not consecutive */
    refused(&m);
    e[1].index = 4;
    e[2].term = m.term + 1; /* newer than the leader */
    refused(&m);
    e[2].term = m.term;
    e[1].term = m.term - 1 ? m.term - 1 : 0; /* decreasing */
    if (e[1].term != 0) {
        refused(&m);
    }
    e[1].term = m.term;
    e[0].len = 4; /* data missing */
    refused(&m);
    e[0].len = 0;
    e[0].type = 7; /* unknown entry type */
    refused(&m);
    e[0].type = RAFT_ENTRY_CONF; /* a configuration that does not decode */
    e[0].len = 3;
    e[0].data = "\x01\x05z";
    refused(&m);
    e[0].type = RAFT_ENTRY_NORMAL;
    e[0].len = 0;
    e[0].data = NULL;
    m.u.append.entries = NULL; /* n_entries without entries */
    refused(&m);
    m = append_from_leader();
    m.u.append.prev_index = UINT64_MAX - 1; /* beyond any sane log */
    refused(&m);
    m.u.append.prev_index = (uint64_t)1 << 62;
    refused(&m);
    m = append_from_leader();
    m.u.append.prev_term = m.term + 1;
    refused(&m);
    m = append_from_leader();
    m.u.append.prev_index = 0; /* index 0 has term 0 */
    refused(&m);
    m = append_from_leader();
    m.term = 0;
    refused(&m);
    /* The well-formed version is accepted. */
    m = append_from_leader();
    m.u.append.n_entries = 3;
    m.u.append.entries = e;
    cr_assert_eq(h_receive(&c, F, &m), 0);
    cr_assert_eq(h_status(&c, F).last_index, 5);
}

Test(malformed, bad_votes_and_snapshots, .init = setup, .fini = teardown)
{
    struct raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_VOTE;
    m.from = L;
    m.to = F;
    m.term = 50;
    m.u.vote.last_log_index = 3;
    m.u.vote.last_log_term = 51; /* newer than the candidate */
    refused(&m);
    m.u.vote.last_log_term = 0; /* index without term */
    refused(&m);

    uint8_t data[10] = {0};
    struct raft_conf conf;
    memset(&conf, 0, sizeof conf);
    memset(&m, 0, sizeof m);
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = L;
    m.to = F;
    m.term = h_status(&c, L).term;
    m.u.snapshot.last_index = 40;
    m.u.snapshot.last_term = m.term;
    conf.n = 1;
    conf.nodes[0].id = L;
    conf.nodes[0].voter = true;
    m.u.snapshot.conf = &conf;
    m.u.snapshot.size = 10;
    m.u.snapshot.len = 11; /* past the end */
    m.u.snapshot.data = data;
    refused(&m);
    m.u.snapshot.len = 10;
    m.u.snapshot.done = false; /* the last chunk must say so */
    refused(&m);
    m.u.snapshot.done = true;
    m.u.snapshot.data = NULL;
    refused(&m);
    m.u.snapshot.data = data;
    m.u.snapshot.conf = NULL; /* every chunk carries the configuration */
    refused(&m);
    m.u.snapshot.conf = &conf;
    conf.nodes[0].voter = false; /* nobody could ever lead it */
    refused(&m);
    conf.nodes[0].voter = true;
    conf.n = 2; /* duplicate ids */
    conf.nodes[1] = conf.nodes[0];
    refused(&m);
    conf.n = 17;
    refused(&m);
    conf.n = 1;
    memset(conf.nodes[0].addr, 'a', RAFT_ADDR_MAX); /* no NUL */
    refused(&m);
}

Test(malformed, bad_events, .init = setup, .fini = teardown)
{
    struct raft_update u;
    struct raft_event ev = {.type = 99, .now = c.now};
    cr_assert_eq(raft_step(c.nodes[L].r, &ev, &u), RAFT_E_INVAL);
    ev.type = RAFT_EV_TICK;
    ev.now = c.now - 1; /* time goes back */
    cr_assert_eq(raft_step(c.nodes[L].r, &ev, &u), RAFT_E_INVAL);
    ev.now = c.now;
    ev.type = RAFT_EV_PERSISTED;
    ev.u.persisted.seq = 1000000; /* never handed out */
    cr_assert_eq(raft_step(c.nodes[L].r, &ev, &u), RAFT_E_INVAL);
    cr_assert_eq(raft_step(c.nodes[L].r, NULL, &u), RAFT_E_INVAL);
    struct raft_entry e = {.type = RAFT_ENTRY_CONF, .len = 1, .data = "x"};
    ev.type = RAFT_EV_PROPOSE;
    ev.u.propose.n = 1;
    ev.u.propose.entries = &e;
    cr_assert_eq(raft_step(c.nodes[L].r, &ev, &u), RAFT_E_INVAL, "conf entries: CONF_CHANGE");
    ev.u.propose.n = 0;
    cr_assert_eq(raft_step(c.nodes[L].r, &ev, &u), RAFT_E_INVAL);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t small(uint64_t n)
{
    return next() % n;
}

Test(malformed, random_messages_never_crash, .init = setup, .fini = teardown)
{
    struct raft_entry ents[8];
    struct raft_conf conf;
    uint8_t bytes[64];
    for (int i = 0; i < 64; i++) {
        bytes[i] = (uint8_t)next();
    }
    for (int round = 0; round < 20000; round++) {
        struct raft_msg m;
        uint8_t *raw = (uint8_t *)&m;
        for (size_t i = 0; i < sizeof m; i++) {
            raw[i] = (uint8_t)next();
        }
        m.type = (uint8_t)small(11);
        /* A driver decodes bools as 0 or 1; anything else would be undefined behaviour in
         * the driver already. */
        switch (m.type) {
        case RAFT_MSG_VOTE:
            m.u.vote.pre = small(2);
            m.u.vote.transfer = small(2);
            break;
        case RAFT_MSG_VOTE_RESP:
            m.u.vote_resp.pre = small(2);
            m.u.vote_resp.granted = small(2);
            break;
        case RAFT_MSG_APPEND_RESP:
            m.u.append_resp.success = small(2);
            break;
        case RAFT_MSG_SNAPSHOT:
            m.u.snapshot.done = small(2);
            raw = (uint8_t *)&conf;
            for (size_t i = 0; i < sizeof conf; i++) {
                raw[i] = (uint8_t)next();
            }
            for (int i = 0; i < RAFT_MAX_NODES; i++) {
                conf.nodes[i].voter = small(2);
            }
            break;
        case RAFT_MSG_SNAPSHOT_RESP:
            m.u.snapshot_resp.done = small(2);
            m.u.snapshot_resp.rejected = small(2);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            m.u.read_index_resp.ok = small(2);
            break;
        default:
            break;
        }
        m.from = small(5);
        m.to = small(5);
        m.term = small(4) == 0 ? next() : small(8);
        switch (m.type) {
        case RAFT_MSG_APPEND: {
            uint32_t n = (uint32_t)small(9);
            raft_index prev = small(6) == 0 ? next() : small(12);
            raft_term t = small(8);
            for (uint32_t i = 0; i < n; i++) {
                ents[i].index = small(10) == 0 ? small(20) : prev + 1 + i;
                ents[i].term = small(10) == 0 ? small(9) : (t += small(2));
                ents[i].type = (uint8_t)small(4);
                ents[i].len = (uint32_t)small(5) * (uint32_t)small(16);
                ents[i].data = small(20) == 0 ? NULL : bytes;
            }
            m.u.append.prev_index = prev;
            m.u.append.prev_term = small(8);
            m.u.append.commit = small(3) == 0 ? next() : small(14);
            m.u.append.n_entries = n;
            m.u.append.entries = small(20) == 0 ? NULL : ents;
            break;
        }
        case RAFT_MSG_SNAPSHOT:
            m.u.snapshot.data = small(10) == 0 ? NULL : bytes;
            m.u.snapshot.size = small(5) == 0 ? next() : small(64);
            m.u.snapshot.offset = small(64);
            m.u.snapshot.len = (uint32_t)small(64);
            m.u.snapshot.last_index = small(30);
            m.u.snapshot.last_term = small(8);
            conf.n = (uint32_t)small(4);
            for (uint32_t i = 0; i < 4; i++) {
                conf.nodes[i].addr[small(RAFT_ADDR_MAX)] = 0;
                conf.nodes[i].id = small(5);
            }
            m.u.snapshot.conf = small(10) == 0 ? NULL : &conf;
            break;
        default:
            break;
        }
        raft_id to = m.to >= 1 && m.to <= 3 ? m.to : (raft_id)(1 + small(3));
        if (!c.nodes[to].up) {
            continue;
        }
        h_receive(&c, to, &m);
        if (small(4) == 0) {
            h_deliver(&c);
        }
        if (small(50) == 0) {
            h_run(&c, small(300));
        }
    }
    /* The cluster still works afterwards. */
    h_drop_all(&c);
    h_run(&c, 3000);
    raft_id l = h_leader(&c);
    cr_assert_neq(l, 0);
    cr_assert_eq(h_propose(&c, l, "after"), 0);
    h_run(&c, 300);
    raft_index li = h_status(&c, l).last_index;
    cr_assert_eq(h_status(&c, l).commit_index, li);
}
