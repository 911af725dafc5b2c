/* Random runs: a seed picks the cluster, the fault mix (perhaps with leader churn) and the fault
 * schedule; a nemesis applies faults while clients run, then everything heals and the run must
 * settle, converge and be linearizable. Every check of the simulator runs after every step
 * meanwhile. */
#include "tests/raft/sim_fuzz.h"

#include <inttypes.h>
#include <string.h>

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One seed in CHURN_ONE_IN adds leader churn to its fault mix. */
#define CHURN_ONE_IN 4

void fuzz_plan_for_seed(uint64_t seed, struct fuzz_plan *p)
{
    uint64_t st = seed ^ 0x6a09e667f3bcc909ULL;
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->n_nodes = splitmix(&st) % 3 == 0 ? 5 : 3;
    /* One seed in eight has every fault; the others a random half of them. */
    p->faults = seed % 8 == 0 ? FUZZ_ALL : (uint32_t)(splitmix(&st) & FUZZ_ALL);
    p->follower_reads = splitmix(&st) % 2 == 0;
    p->small_msgs = splitmix(&st) % 4 == 0;
    p->active_ms = 2000 + splitmix(&st) % 3000;
    p->churn = splitmix(&st) % CHURN_ONE_IN == 0;
    p->lease_read = splitmix(&st) % 2 == 0;
}

const char *fuzz_faults_name(uint32_t faults, char *buf, size_t cap)
{
    static const char *names[] = {"drop",  "dup",      "reorder",    "partition",
                                  "crash", "snapshot", "membership", "transfer"};
    buf[0] = '\0';
    for (int i = 0; i < 8; i++) {
        if (faults & (1u << i)) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s%s", len ? "+" : "", names[i]);
        }
    }
    if (buf[0] == '\0')
        snprintf(buf, cap, "none");
    return buf;
}

/* ---- The nemesis ---- */

enum action {
    A_DROP,
    A_DUP,
    A_REORDER,
    A_PARTITION,
    A_HEAL,
    A_CRASH,
    A_RESTART,
    A_ADD,
    A_REMOVE,
    A_PROMOTE,
    A_TRANSFER,
};

static raft_id random_node(struct sim *s, uint8_t state)
{
    raft_id ids[SIM_MAX_NODES];
    int k = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        if (s->nodes[id].state == state)
            ids[k++] = id;
    }
    return k == 0 ? 0 : ids[sim_rand(s) % (uint64_t)k];
}

static int count_state(struct sim *s, uint8_t state)
{
    int k = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
        k += s->nodes[id].state == state;
    return k;
}

static void partition(struct sim *s)
{
    raft_id leader = sim_leader(s);
    switch (sim_rand(s) % 4) {
    case 0: { /* two random sides */
        uint32_t mask = 0;
        for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
            if (sim_chance(s, 500))
                mask |= 1u << id;
        }
        sim_partition(s, mask);
        break;
    }
    case 1: { /* one node alone, often the leader */
        raft_id x = leader != 0 && sim_chance(s, 600) ? leader : random_node(s, SIM_UP);
        if (x != 0)
            sim_isolate(s, x);
        break;
    }
    case 2: { /* a few one-way cuts */
        int k = 1 + (int)(sim_rand(s) % 3);
        for (int i = 0; i < k; i++) {
            raft_id a = random_node(s, SIM_UP), b = random_node(s, SIM_UP);
            if (a != 0 && b != 0 && a != b)
                sim_cut(s, a, b, true);
        }
        break;
    }
    default: { /* a node that hears but is not heard */
        raft_id x = leader != 0 && sim_chance(s, 500) ? leader : random_node(s, SIM_UP);
        if (x == 0)
            break;
        for (raft_id o = 1; o <= SIM_MAX_NODES; o++) {
            if (o != x)
                s->cut[x][o] = true;
        }
        sim_trace(s, "network: n%" PRIu64 " hears but is not heard", x);
        break;
    }
    }
}

static void membership(struct sim *s, int action)
{
    raft_id leader = sim_leader(s);
    if (leader == 0)
        return;
    const struct raft_conf *c = &s->nodes[leader].st.conf;
    int voters = 0;
    for (uint32_t i = 0; i < c->n; i++)
        voters += c->nodes[i].voter;
    if (action == A_ADD) {
        raft_id id = random_node(s, SIM_ABSENT);
        if (id != 0 && c->n < 7)
            sim_conf_change(s, leader, RAFT_CONF_ADD, id);
    } else if (action == A_REMOVE && c->n > 0) {
        const struct raft_node *victim = &c->nodes[sim_rand(s) % c->n];
        /* Keep at least three voters, so that one crash leaves a quorum. */
        if (!victim->voter || voters > 3)
            sim_conf_change(s, leader, RAFT_CONF_REMOVE, victim->id);
    } else if (action == A_PROMOTE) {
        for (uint32_t i = 0; i < c->n; i++) {
            if (!c->nodes[i].voter) {
                sim_conf_change(s, leader, RAFT_CONF_PROMOTE, c->nodes[i].id);
                break;
            }
        }
    }
}

static void nemesis(struct sim *s, const struct fuzz_plan *p)
{
    int choices[32];
    int k = 0;
    uint32_t f = p->faults;
    if (f & FUZZ_DROP)
        choices[k++] = A_DROP;
    if (f & FUZZ_DUP)
        choices[k++] = A_DUP;
    if (f & FUZZ_REORDER)
        choices[k++] = A_REORDER;
    if (f & FUZZ_PARTITION) {
        choices[k++] = A_PARTITION;
        choices[k++] = A_PARTITION;
        choices[k++] = A_HEAL;
    }
    if (f & FUZZ_CRASH) {
        choices[k++] = A_CRASH;
        choices[k++] = A_CRASH;
        choices[k++] = A_RESTART;
        choices[k++] = A_RESTART;
    }
    if (f & FUZZ_MEMBERSHIP) {
        choices[k++] = A_ADD;
        choices[k++] = A_REMOVE;
        choices[k++] = A_PROMOTE;
    }
    if (f & FUZZ_TRANSFER) {
        choices[k++] = A_TRANSFER;
        choices[k++] = A_TRANSFER;
    }
    if (k == 0)
        return;
    int a = choices[sim_rand(s) % (uint64_t)k];
    switch (a) {
    case A_DROP:
        s->drop_pm = sim_chance(s, 300) ? 0 : (uint32_t)sim_range(s, 20, 300);
        sim_trace(s, "network: drop %u per mille", s->drop_pm);
        break;
    case A_DUP:
        s->dup_pm = sim_chance(s, 300) ? 0 : (uint32_t)sim_range(s, 20, 300);
        sim_trace(s, "network: duplicate %u per mille", s->dup_pm);
        break;
    case A_REORDER:
        s->delay_max = (uint32_t)sim_range(s, s->o.net_delay_max, 120);
        sim_trace(s, "network: delays %u-%u ms", s->delay_min, s->delay_max);
        break;
    case A_PARTITION:
        partition(s);
        break;
    case A_HEAL:
        sim_heal(s);
        break;
    case A_CRASH: {
        raft_id leader = sim_leader(s);
        raft_id x = leader != 0 && sim_chance(s, 500) ? leader : random_node(s, SIM_UP);
        if (x != 0)
            sim_crash(s, x);
        break;
    }
    case A_RESTART: {
        raft_id x = random_node(s, SIM_DOWN);
        if (x != 0)
            sim_restart(s, x);
        break;
    }
    case A_ADD:
    case A_REMOVE:
    case A_PROMOTE:
        membership(s, a);
        break;
    case A_TRANSFER: {
        raft_id leader = sim_leader(s);
        if (leader == 0)
            break;
        raft_id target = sim_chance(s, 200) ? 0 : random_node(s, SIM_UP);
        if (target != leader)
            sim_transfer(s, leader, target);
        break;
    }
    default:
        break;
    }
    /* Do not leave the cluster down for long: restart when a majority is down. */
    if (count_state(s, SIM_DOWN) * 2 >= p->n_nodes && sim_chance(s, 500))
        sim_restart(s, random_node(s, SIM_DOWN));
}

/* ---- Leader churn ---- */

struct churn {
    raft_term term; /* of the latest leader seen */
    raft_time hold_min, hold_max;
    uint32_t strike_pm;      /* chance that a new leader is struck */
    uint32_t crash_pm;       /* that a struck leader crashes (else it is cut off) */
    uint32_t on_commit_pm;   /* that it is struck on its first commit (else soon) */
    raft_time strike_within; /* how soon after its election */
    raft_time away_min, away_max;
    uint32_t voter_pm; /* chance that another node crashes right after an election */
    raft_time voter_within, voter_away_max;
    /* The strike pending on a leader (leader 0: none): at at, or once its commit index passes
     * commit0 (on_commit). */
    raft_id leader;
    raft_term leader_term;
    bool crash, on_commit;
    raft_index commit0;
    raft_time elected_at, at;
    /* The crash pending of another node (voter_at 0: none). */
    raft_id voter_not;
    raft_time voter_at;
    raft_time back_at[SIM_MAX_NODES + 1]; /* when a struck node comes back (0: not struck) */
    uint64_t struck, struck_on_commit;
};

/* The adversarial scheduler: an APPEND carrying entries of its sender's term is held back while
 * the sender has committed none of them. Followers then store the older entries a new leader
 * replicates first (one per message) well before its own NOOP: the window in which committing
 * an older term's entries by counting replicas goes wrong (paper §5.4.2, Figure 8). */
static raft_time churn_hold(struct sim *s, const struct raft_msg *m, void *arg)
{
    const struct churn *c = arg;
    const struct raft_msg_append *a = &m->u.append;
    if (m->type != RAFT_MSG_APPEND || a->n_entries == 0 ||
        a->entries[a->n_entries - 1].term != m->term ||
        sim_log_term(s, m->from, a->commit) == m->term)
        return 0;
    return sim_range(s, c->hold_min, c->hold_max);
}

static bool churn_committed(struct sim *s, const struct churn *c)
{
    return c->leader != 0 && c->on_commit && s->nodes[c->leader].st.commit_index > c->commit0;
}

/* Stops the run at a new leader, or at the first commit of a leader to strike then. */
static bool churn_event(struct sim *s, void *arg)
{
    const struct churn *c = arg;
    if (churn_committed(s, c))
        return true;
    raft_id l = sim_leader(s);
    return l != 0 && s->nodes[l].st.term > c->term;
}

static void churn_strike(struct sim *s, struct churn *c)
{
    raft_id l = c->leader;
    c->leader = 0;
    const struct sim_node *n = &s->nodes[l];
    if (n->state != SIM_UP || n->st.role != RAFT_LEADER || n->st.term != c->leader_term)
        return;
    sim_trace(s,
              "churn: leader n%" PRIu64 " of term %" PRIu64 " %s %" PRIu64
              " ms after its election (commit %" PRIu64 ")",
              l, c->leader_term, c->crash ? "crashes" : "is cut off", s->now - c->elected_at,
              n->st.commit_index);
    c->struck++;
    c->struck_on_commit += n->st.commit_index > c->commit0;
    if (c->crash)
        sim_crash(s, l);
    else
        sim_isolate(s, l);
    c->back_at[l] = s->now + sim_range(s, c->away_min, c->away_max);
}

static void churn_crash_voter(struct sim *s, struct churn *c)
{
    c->voter_at = 0;
    raft_id x = random_node(s, SIM_UP);
    if (x == 0 || x == c->voter_not)
        return;
    sim_trace(s, "churn: n%" PRIu64 " crashes after the election of n%" PRIu64, x, c->voter_not);
    sim_crash(s, x);
    c->back_at[x] = s->now + sim_range(s, 1, c->voter_away_max);
}

static void churn_back(struct sim *s, raft_id id)
{
    struct sim_node *n = &s->nodes[id];
    if (n->state == SIM_DOWN) {
        sim_restart(s, id);
    } else if (n->state == SIM_UP) {
        for (raft_id o = 1; o <= SIM_MAX_NODES; o++)
            s->cut[id][o] = s->cut[o][id] = false;
        sim_trace(s, "churn: n%" PRIu64 " reconnected", id);
    }
}

static void churn_on_leader(struct sim *s, struct churn *c, raft_id l)
{
    c->term = s->nodes[l].st.term;
    c->leader = 0; /* a strike still pending is for a leader of an older term */
    if (sim_chance(s, c->strike_pm)) {
        c->leader = l;
        c->leader_term = c->term;
        c->crash = sim_chance(s, c->crash_pm);
        c->on_commit = sim_chance(s, c->on_commit_pm);
        c->commit0 = s->nodes[l].st.commit_index;
        c->elected_at = s->now;
        c->at = s->now + sim_range(s, 0, c->strike_within);
    }
    if (c->voter_at == 0 && sim_chance(s, c->voter_pm)) {
        c->voter_not = l;
        c->voter_at = s->now + sim_range(s, 0, c->voter_within);
    }
}

/* The faulty part of a churn run: the nemesis as usual, and new leaders struck (crashed or cut
 * off) soon after their election or on their first commit, or another node crashed right after
 * an election, each to come back a little later. */
static void churn_run(struct sim *s, const struct fuzz_plan *p, struct churn *c)
{
    raft_time next_fault = s->now + sim_range(s, 20, 300);
    while (!s->failed && s->now < p->active_ms) {
        raft_time until = next_fault;
        if (c->leader != 0 && !c->on_commit && c->at < until)
            until = c->at;
        if (c->voter_at != 0 && c->voter_at < until)
            until = c->voter_at;
        for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
            if (c->back_at[id] != 0 && c->back_at[id] < until)
                until = c->back_at[id];
        }
        if (sim_run_until_pred(s, churn_event, c, until)) {
            if (churn_committed(s, c)) {
                c->on_commit = false;
                c->at = s->now + sim_range(s, 0, 2);
            } else {
                churn_on_leader(s, c, sim_leader(s));
            }
            continue;
        }
        if (s->failed)
            break;
        if (c->leader != 0 && !c->on_commit && c->at <= s->now)
            churn_strike(s, c);
        if (c->voter_at != 0 && c->voter_at <= s->now)
            churn_crash_voter(s, c);
        for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
            if (c->back_at[id] != 0 && c->back_at[id] <= s->now) {
                c->back_at[id] = 0;
                churn_back(s, id);
            }
        }
        if (next_fault <= s->now) {
            nemesis(s, p);
            next_fault = s->now + sim_range(s, 20, 300);
        }
    }
}

void fuzz_run(const struct fuzz_plan *p, struct fuzz_result *res, FILE *trace_out)
{
    memset(res, 0, sizeof(*res));
    struct sim_opts o;
    sim_opts_default(&o, p->seed, p->n_nodes);
    uint64_t st = p->seed ^ 0xbb67ae8584caa73bULL;
    if (p->faults & FUZZ_SNAPSHOT) {
        o.raft.snapshot_threshold = 16 + splitmix(&st) % 48;
        o.raft.snapshot_trailing = splitmix(&st) % 9;
        o.raft.snapshot_chunk_bytes = (uint32_t)(32 + splitmix(&st) % 224);
    }
    if (p->small_msgs) {
        o.raft.max_entries_per_msg = (uint32_t)(1 + splitmix(&st) % 4);
        o.raft.max_inflight_msgs = (uint32_t)(1 + splitmix(&st) % 4);
    }
    if (p->faults & FUZZ_REORDER)
        o.net_delay_max = (uint32_t)(20 + splitmix(&st) % 60);
    /* Slow disks leave more batches unpersisted when a node crashes. */
    o.disk_delay_max = (uint32_t)(2 + splitmix(&st) % 40);
    o.client_timeout = 800;
    o.raft.lease_read = p->lease_read;
    o.lying_disk = p->lying_disk;
    struct churn churn = {0};
    if (p->churn) {
        /* Entries travel one per message (by count, or by size: a larger entry goes alone),
         * few in flight; elections come fast, so that a run sees many of them. */
        if (splitmix(&st) % 2 == 0)
            o.raft.max_entries_per_msg = 1;
        else
            o.raft.max_bytes_per_msg = 1;
        o.raft.max_inflight_msgs = (uint32_t)(1 + splitmix(&st) % 4);
        o.raft.election_timeout_min = (uint32_t)(40 + splitmix(&st) % 40);
        o.raft.election_timeout_max = 2 * o.raft.election_timeout_min;
        o.raft.heartbeat_interval = o.raft.election_timeout_min / 4;
        churn.hold_min = 20 + splitmix(&st) % 21;
        churn.hold_max = churn.hold_min + 10 + splitmix(&st) % 60;
        churn.strike_pm = (uint32_t)(800 + splitmix(&st) % 200);
        churn.crash_pm = splitmix(&st) % 4 == 0 ? 300 : 0;
        churn.on_commit_pm = 400;
        churn.strike_within = churn.hold_min - 1; /* before its NOOP can reach anyone */
        churn.away_min = 50;
        churn.away_max = 300 + splitmix(&st) % 1200;
        churn.voter_pm = 400;
        churn.voter_within = 5;
        churn.voter_away_max = 40;
    }
    struct sim *s = sim_new(&o);
    if (s == NULL) {
        snprintf(res->failure, sizeof(res->failure), "out of memory");
        return;
    }
    if (p->faults & FUZZ_DROP)
        s->drop_pm = (uint32_t)sim_range(s, 20, 150);
    if (p->faults & FUZZ_DUP)
        s->dup_pm = (uint32_t)sim_range(s, 20, 150);
    sim_clients_start(s, o.n_clients, p->follower_reads);

    if (p->churn) {
        s->hold = churn_hold;
        s->hold_arg = &churn;
        churn_run(s, p, &churn);
    }
    while (!s->failed && s->now < p->active_ms) {
        sim_run_until(s, s->now + sim_range(s, 20, 300));
        if (!s->failed)
            nemesis(s, p);
    }

    /* Heal, restart everyone, let the clients finish and read once more. */
    if (!s->failed) {
        sim_trace(s, "---- healing: faults off, crashed nodes restart, clients finish ----");
        s->hold = NULL;
        sim_heal(s);
        s->drop_pm = s->dup_pm = 0;
        s->delay_min = o.net_delay_min;
        s->delay_max = o.net_delay_max;
        for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
            sim_restart(s, id);
        sim_clients_stop(s, true);
        if (!sim_run_until_pred(s, sim_settled, NULL, s->now + 30000) && !s->failed)
            sim_fail(s, "liveness: the cluster did not settle within 30 s of healing");
    }
    if (!s->failed)
        sim_check_converged(s);
    if (!s->failed)
        sim_check_linearizable(s);
    if (!s->failed)
        sim_check_idle_traffic(s);

    res->ok = !s->failed;
    snprintf(res->failure, sizeof(res->failure), "%s", s->failure);
    res->digest = s->digest;
    res->steps = s->n_steps;
    res->elections = s->n_elections;
    res->crashes = s->n_crashes;
    res->snapshots_installed = s->n_snapshots_installed;
    res->acked_writes = s->n_acked_writes;
    res->reads = s->n_reads_served;
    res->ops = s->n_hist;
    res->end = s->now;
    res->struck = churn.struck;
    res->struck_on_commit = churn.struck_on_commit;
    if (s->failed && trace_out != NULL)
        sim_dump(s, trace_out, o.trace > 0 ? 1 : 120);
    sim_free(s);
}
