/* Network partitions between real masters. Each master runs in a network namespace of its own
 * with its own address; the namespaces hang off a bridge that lives in a further namespace (never
 * the host's, whose forwarding policy a running dockerd sets to DROP), and the test reaches every
 * master through a veth of its own on that bridge. Cuts are nftables rules inside the masters'
 * namespaces, so no traffic ever leaves this machine:
 *   - the leader isolated from both followers: the majority elects a new leader (its time is
 *     printed; within 3 s here, the 1 s goal is tests/bench/failover.sh's to measure); the
 *     old leader acknowledges none of the writes sent to it, and after healing none of them
 *     exists anywhere while every write the majority acknowledged exists everywhere;
 *   - a one-way cut (the leader's own messages to the followers are lost, theirs reach it): a
 *     new leader takes over, the old one steps down and names it, and catches up once healed;
 *   - a one-way cut the other way (a follower hears nobody, everybody hears it): Pre-Vote keeps it
 *     from deposing the leader; the term does not move.
 * Needs root (ip netns, nft). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "common/errors.h"
#include "common/http_client.h"
#include "common/json.h"

#define T_LEADER_MS 15000
/* A new leader after the leader is cut off: ten times the longest election timeout. The issue's
 * bound, 1 s, is measured by tests/bench/failover.sh (50 kills, median and worst); a test would
 * only measure the machine's load (1,185 ms once in CI under ASan, beside other tests). */
#define NEW_LEADER_MS 3000
#define N             3

/* ---- the network ----
 * Test k uses namespaces dfsp<k>sw (the bridge) and dfsp<k>m1..3 (the masters), the host veth
 * dfsp<k>h and the addresses 198.51.100.<16k+1..3> (masters) and .<16k+14> (the test): a /28 of
 * TEST-NET-2 per test, so that tests running side by side never share a route. */

static int net_k;

static void ns_name(char *out, size_t cap, int i)
{
    if (i < 0)
        snprintf(out, cap, "dfsp%dsw", net_k);
    else
        snprintf(out, cap, "dfsp%dm%d", net_k, i + 1);
}

static void addr_of(char *out, size_t cap, int i)
{
    snprintf(out, cap, "198.51.100.%d", 16 * net_k + (i < 0 ? 14 : i + 1));
}

static void net_down(void)
{
    char ns[32];
    for (int i = -1; i < N; i++) {
        ns_name(ns, sizeof(ns), i);
        tc_sh("ip netns del %s 2>/dev/null || true", ns);
    }
    /* The host's veth goes with its peer in the bridge namespace; a run that died between the
     * two steps of net_up may have left it. */
    tc_sh("ip link del dfsp%dh 2>/dev/null || true", net_k);
}

static void net_up(struct tc_cluster *c, int k)
{
    char sw[32], ns[32], ip[32];
    net_k = k;
    net_down();
    ns_name(sw, sizeof(sw), -1);
    cr_assert_eq(tc_sh("ip netns add %s && ip -n %s link set lo up && "
                       "ip -n %s link add br0 type bridge && ip -n %s link set br0 up",
                       sw, sw, sw, sw),
                 0, "cannot make namespace %s (root and ip netns are needed)", sw);
    for (int i = 0; i < N; i++) {
        ns_name(ns, sizeof(ns), i);
        addr_of(ip, sizeof(ip), i);
        cr_assert_eq(tc_sh("ip netns add %s && ip -n %s link set lo up && "
                           "ip link add %sa type veth peer name %sb && "
                           "ip link set %sa netns %s && ip link set %sb netns %s && "
                           "ip -n %s link set %sb master br0 up && "
                           "ip -n %s addr add %s/28 dev %sa && ip -n %s link set %sa up",
                           ns, ns, ns, ns, ns, ns, ns, sw, sw, ns, ns, ip, ns, ns, ns),
                     0, "cannot set up %s", ns);
        /* Connection tracking from the first packet on, so that the one-way cuts' "ct
         * direction" knows which side opened each connection (a connection first seen in the
         * middle would count its first packet seen as the original direction). */
        cr_assert_eq(tc_sh("ip netns exec %s nft add table inet dfsct && "
                           "ip netns exec %s nft \"add chain inet dfsct in "
                           "{ type filter hook input priority -10; }\" && "
                           "ip netns exec %s nft \"add rule inet dfsct in ct state new accept\"",
                           ns, ns, ns),
                     0, "cannot track connections in %s", ns);
        snprintf(c->m[i].netns, sizeof(c->m[i].netns), "%s", ns);
        snprintf(c->m[i].host, sizeof(c->m[i].host), "%s", ip);
    }
    addr_of(ip, sizeof(ip), -1);
    cr_assert_eq(
        tc_sh("ip link add dfsp%dh type veth peer name dfsp%dhb && "
              "ip link set dfsp%dhb netns %s && ip -n %s link set dfsp%dhb master br0 up && "
              "ip addr add %s/28 dev dfsp%dh && ip link set dfsp%dh up",
              k, k, k, sw, sw, k, ip, k, k),
        0, "cannot connect the test to the bridge");
}

/* Rules in master i's namespace, table dfscut. */
static void cut_rules(int i, const char *in_rule, const char *out_rule)
{
    char ns[32];
    ns_name(ns, sizeof(ns), i);
    cr_assert_eq(tc_sh("ip netns exec %s nft add table inet dfscut && "
                       "ip netns exec %s nft \"add chain inet dfscut in "
                       "{ type filter hook input priority 0; }\" && "
                       "ip netns exec %s nft \"add chain inet dfscut out "
                       "{ type filter hook output priority 0; }\" && "
                       "ip netns exec %s nft \"add rule inet dfscut in %s\" && "
                       "ip netns exec %s nft \"add rule inet dfscut out %s\"",
                       ns, ns, ns, ns, in_rule, ns, out_rule),
                 0, "cannot cut master %d", i + 1);
}

/* "{ a, b }" of the other masters' addresses. */
static void others(int i, char *out, size_t cap)
{
    size_t l = (size_t)snprintf(out, cap, "{ ");
    for (int k = 0; k < N; k++) {
        if (k == i)
            continue;
        char ip[32];
        addr_of(ip, sizeof(ip), k);
        l += (size_t)snprintf(out + l, cap - l, "%s%s", l > 2 ? ", " : "", ip);
    }
    snprintf(out + l, cap - l, " }");
}

/* Master i and the other masters no longer reach each other (the test still reaches all). */
static void isolate(int i)
{
    char o[128], in[192], out[192];
    others(i, o, sizeof(o));
    snprintf(in, sizeof(in), "ip saddr %s drop", o);
    snprintf(out, sizeof(out), "ip daddr %s drop", o);
    cut_rules(i, in, out);
}

/* Connections master i opens to the others are lost (its requests: appends, votes), while
 * theirs to it work both ways. */
static void cut_outgoing(int i)
{
    char o[128], in[192], out[192];
    others(i, o, sizeof(o));
    snprintf(in, sizeof(in), "ip saddr %s ct direction reply drop", o);
    snprintf(out, sizeof(out), "ip daddr %s ct direction original drop", o);
    cut_rules(i, in, out);
}

/* Connections the others open to master i are lost, while its own to them work both ways. */
static void cut_incoming(int i)
{
    char o[128], in[192], out[192];
    others(i, o, sizeof(o));
    snprintf(in, sizeof(in), "ip saddr %s ct direction original drop", o);
    snprintf(out, sizeof(out), "ip daddr %s ct direction reply drop", o);
    cut_rules(i, in, out);
}

static void heal(int i)
{
    char ns[32];
    ns_name(ns, sizeof(ns), i);
    cr_assert_eq(tc_sh("ip netns exec %s nft delete table inet dfscut", ns), 0);
}

/* ---- the cluster ---- */

static struct tc_cluster *cl;

/* Test k's masters (master_args: extra flags, or NULL). */
static void start_with(int k, const char *master_args)
{
    cl = calloc(1, sizeof(*cl));
    cr_assert_not_null(cl);
    tc_init(cl, N, master_args);
    net_up(cl, k);
    tc_start_all(cl);
}

static void start(int k)
{
    start_with(k, NULL);
}

static void finish(void)
{
    if (cl != NULL) {
        tc_destroy(cl);
        free(cl);
        cl = NULL;
    }
    net_down();
}

static bool is_leader(int i, uint64_t *term)
{
    cJSON *s = tc_status(cl, i);
    const char *role = NULL;
    bool yes = s != NULL && cm_json_get_str(s, "role", 32, &role, NULL) == 0 &&
               strcmp(role, "LEADER") == 0;
    if (term != NULL && s != NULL)
        cm_json_get_u64(s, "term", term);
    cJSON_Delete(s);
    return yes;
}

static bool role_is(int i, const char *want)
{
    cJSON *s = tc_status(cl, i);
    const char *role = NULL;
    bool yes =
        s != NULL && cm_json_get_str(s, "role", 32, &role, NULL) == 0 && strcmp(role, want) == 0;
    cJSON_Delete(s);
    return yes;
}

static uint64_t term_of(int i)
{
    uint64_t t = 0;
    is_leader(i, &t);
    return t;
}

static uint64_t status_u64(int i, const char *field)
{
    cJSON *s = tc_status(cl, i);
    uint64_t v = UINT64_MAX;
    cm_json_get_u64(s, field, &v);
    cJSON_Delete(s);
    return v;
}

static uint64_t kv_keys(int i)
{
    cJSON *s = tc_status(cl, i);
    uint64_t n = UINT64_MAX;
    cm_json_get_u64(cJSON_GetObjectItemCaseSensitive(s, "kv"), "keys", &n);
    cJSON_Delete(s);
    return n;
}

/* Puts key=value at master i, retrying UNAVAILABLE (a leader settling in) until timeout_ms. */
static int put_at_until(int i, uint64_t seq, const char *key, const char *value, int timeout_ms)
{
    uint64_t deadline = tc_now_ms() + (uint64_t)timeout_ms;
    int rc;
    do {
        rc = tc_put_at(cl, i, "majority", seq, key, value, NULL);
    } while ((rc == CM_E_UNAVAILABLE || rc == CM_E_TIMEOUT) && tc_now_ms() < deadline);
    return rc;
}

/* Every master answers a linearizable read of key with value (NULL: the key does not exist). */
static void expect_everywhere(const char *key, const char *value)
{
    for (int i = 0; i < N; i++) {
        char *v = NULL;
        int rc = tc_get_at(cl, i, key, true, &v);
        if (value == NULL) {
            cr_expect_eq(rc, CM_E_NOENT, "master %d: %s exists (rc %d, %s)", i + 1, key, rc,
                         v ? v : "");
        } else {
            cr_expect_eq(rc, 0, "master %d: %s: rc %d", i + 1, key, rc);
            cr_expect(v != NULL && strcmp(v, value) == 0, "master %d: %s = %s, not %s", i + 1, key,
                      v ? v : "(none)", value);
        }
        free(v);
    }
}

/* Waits until all masters agree on a leader and hold the same number of keys. */
static int converge(void)
{
    int leader = tc_wait_leader(cl, T_LEADER_MS);
    cr_assert_geq(leader, 0, "no leader after healing");
    /* A put through the leader after healing: applied everywhere once the old leader's log has
     * been made the same as the others'. */
    cr_assert_eq(put_at_until(leader, 1000000, "healed", "yes", 10000), 0);
    uint64_t deadline = tc_now_ms() + 10000;
    for (;;) {
        uint64_t k0 = kv_keys(0), k1 = kv_keys(1), k2 = kv_keys(2);
        if (k0 == k1 && k1 == k2 && k0 != UINT64_MAX) {
            expect_everywhere("healed", "yes");
            return leader;
        }
        cr_assert_lt(tc_now_ms(), deadline, "key counts differ: %llu %llu %llu",
                     (unsigned long long)k0, (unsigned long long)k1, (unsigned long long)k2);
        usleep(20 * 1000);
    }
}

/* Writes sent to the old leader while it is cut off, from a thread of their own. */
struct minority {
    int at;
    atomic_bool stop;
    int sent, acked;
    char keys[64][32];
};

static void *minority_writes(void *arg)
{
    struct minority *w = arg;
    struct cm_http_client_config cc = {.connect_timeout_ms = 300, .timeout_ms = 1500};
    struct cm_http_client *h;
    cr_assert_eq(cm_http_client_new(&cc, &h), 0);
    char url[128];
    snprintf(url, sizeof(url), "http://%s:%u/v1/kv/put", cl->m[w->at].host,
             cl->m[w->at].client_port);
    while (!atomic_load(&w->stop) && w->sent < 64) {
        char *key = w->keys[w->sent];
        snprintf(key, sizeof(w->keys[0]), "minority-%d", w->sent);
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "key", key);
        cJSON_AddStringToObject(b, "value", "lost");
        cJSON_AddStringToObject(b, "client", "minority");
        cm_json_add_u64(b, "seq", (uint64_t)w->sent + 1);
        struct cm_http_response r = {0};
        int rc = cm_http_post_json(h, url, b, &r);
        cJSON_Delete(b);
        cm_http_response_clear(&r);
        w->sent++;
        if (rc == 0)
            w->acked++;
        usleep(20 * 1000);
    }
    cm_http_client_free(h);
    return NULL;
}

/* Polls the masters other than old until one of them leads in a later term; returns its index
 * and the time it took in *ms. */
static int wait_new_leader(int old, uint64_t old_term, uint64_t since, uint64_t *ms)
{
    uint64_t deadline = since + T_LEADER_MS;
    while (tc_now_ms() < deadline) {
        for (int i = 0; i < N; i++) {
            uint64_t t = 0;
            if (i != old && is_leader(i, &t) && t > old_term) {
                *ms = tc_now_ms() - since;
                return i;
            }
        }
        usleep(5 * 1000);
    }
    return -1;
}

/* ---- tests ---- */

TestSuite(partition, .timeout = 180, .fini = finish);

Test(partition, isolated_leader_is_replaced_and_acknowledges_nothing)
{
    start(1);
    int old = tc_wait_leader(cl, T_LEADER_MS);
    cr_assert_geq(old, 0, "no leader");
    cr_assert_eq(put_at_until(old, 1, "before", "1", 5000), 0);
    uint64_t old_term = term_of(old);

    /* Cut the leader off and keep writing to it. */
    uint64_t t0 = tc_now_ms();
    isolate(old);
    struct minority w = {.at = old};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, minority_writes, &w), 0);

    uint64_t ms = 0;
    int now = wait_new_leader(old, old_term, t0, &ms);
    cr_assert_geq(now, 0, "the majority elected no leader");
    fprintf(stderr, "partition: new leader %d after %llu ms\n", now + 1, (unsigned long long)ms);
    cr_expect_leq(ms, NEW_LEADER_MS, "new leader after %llu ms", (unsigned long long)ms);

    /* The majority takes writes; the old leader steps down (check-quorum) while cut off. */
    char key[32], val[32];
    for (int n = 0; n < 20; n++) {
        snprintf(key, sizeof(key), "majority-%d", n);
        snprintf(val, sizeof(val), "v%d", n);
        cr_assert_eq(put_at_until(now, 2 + (uint64_t)n, key, val, 5000), 0, "put %s", key);
    }
    /* No stale read either: the old leader's lease ended before the new leader was elected. */
    char *stale = NULL;
    int grc = tc_get_at(cl, old, "majority-0", false, &stale);
    cr_expect(grc != 0 && grc != CM_E_NOENT, "the cut-off leader answered a read (rc %d, %s)", grc,
              stale ? stale : "no value");
    free(stale);
    uint64_t deadline = tc_now_ms() + 5000;
    while (is_leader(old, NULL))
        cr_assert_lt(tc_now_ms(), deadline, "the cut-off leader still leads");
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    cr_assert_gt(w.sent, 0);
    cr_expect_eq(w.acked, 0, "the cut-off leader acknowledged %d of %d writes", w.acked, w.sent);

    /* Heal: one history. */
    heal(old);
    converge();
    expect_everywhere("before", "1");
    for (int n = 0; n < 20; n++) {
        snprintf(key, sizeof(key), "majority-%d", n);
        snprintf(val, sizeof(val), "v%d", n);
        expect_everywhere(key, val);
    }
    for (int n = 0; n < w.sent; n++)
        expect_everywhere(w.keys[n], NULL);
}

Test(partition, leader_whose_messages_are_lost_is_replaced)
{
    start(2);
    int old = tc_wait_leader(cl, T_LEADER_MS);
    cr_assert_geq(old, 0, "no leader");
    cr_assert_eq(put_at_until(old, 1, "before", "1", 5000), 0);
    uint64_t old_term = term_of(old);

    /* The followers hear nothing from the leader, but it still hears them: they elect a new
     * leader, whose messages reach the old one, which then follows it. */
    uint64_t t0 = tc_now_ms();
    cut_outgoing(old);
    uint64_t ms = 0;
    int now = wait_new_leader(old, old_term, t0, &ms);
    cr_assert_geq(now, 0, "no new leader");
    fprintf(stderr, "one-way cut: new leader %d after %llu ms\n", now + 1, (unsigned long long)ms);
    cr_assert_eq(put_at_until(now, 2, "during", "2", 5000), 0);
    /* The new leader's messages reach the old one, which steps down and names it as leader in
     * its term. (Its own messages, the answers among them, are still lost: it cannot report
     * what it stored, so it catches up only once healed.) */
    uint64_t term = term_of(now);
    uint64_t deadline = tc_now_ms() + 5000;
    for (;;) {
        uint64_t leader_id = status_u64(old, "leader_id"), t = term_of(old);
        if (role_is(old, "FOLLOWER") && leader_id == (uint64_t)now + 1 && t == term)
            break;
        cr_assert_lt(tc_now_ms(), deadline,
                     "the old leader does not follow: leader %llu term %llu (new: %d, %llu)",
                     (unsigned long long)leader_id, (unsigned long long)t, now + 1,
                     (unsigned long long)term);
        usleep(20 * 1000);
    }
    cr_assert_eq(term_of(now), term, "the term moved");
    heal(old);
    converge();
    expect_everywhere("before", "1");
    expect_everywhere("during", "2");
}

Test(partition, follower_that_hears_nobody_does_not_depose_the_leader)
{
    /* The other follower refuses the pre-votes because it hears the leader: within the minimum
     * election timeout, 150 ms by default. In CI (ASan, beside disk-heavy tests) the leader's
     * messages to it once came later than that, it granted a pre-vote, and the cut-off follower
     * raised its term: the test then measured the machine's load. 1 s of silence is its
     * subject's margin here; the cut-off follower still asks every 1-2 s. */
    start_with(3, "--election-timeout-ms 1000");
    int leader = tc_wait_leader(cl, T_LEADER_MS);
    cr_assert_geq(leader, 0, "no leader");
    int f = (leader + 1) % N;
    cr_assert_eq(put_at_until(leader, 1, "before", "1", 5000), 0);
    uint64_t term = term_of(leader);

    /* The follower misses every heartbeat and, election timeout after election timeout, asks the
     * others for pre-votes, which reach them: they refuse while they hear the leader. Watch for
     * 6 s, three times the longest election timeout. */
    cut_incoming(f);
    uint64_t end = tc_now_ms() + 6000;
    uint64_t seq = 2;
    int pre = 0; /* times the follower was seen asking for pre-votes: the cut works */
    while (tc_now_ms() < end) {
        pre += role_is(f, "PRE_CANDIDATE");
        cr_assert(is_leader(leader, NULL), "the leader was deposed");
        cr_assert_eq(term_of(leader), term, "the term moved");
        char key[32];
        snprintf(key, sizeof(key), "during-%llu", (unsigned long long)seq);
        cr_assert_eq(tc_put_at(cl, leader, "c", seq, key, "x", NULL), 0, "put %s", key);
        seq++;
        usleep(50 * 1000);
    }
    cr_assert_eq(term_of(f), term, "the cut-off follower raised its term");
    cr_assert_gt(pre, 0, "the follower was never seen asking for pre-votes");
    heal(f);
    cr_assert_eq(converge(), leader);
    cr_expect_eq(term_of(leader), term);
    expect_everywhere("during-2", "x");
}
