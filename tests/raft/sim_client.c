/* The simulator's clients: sequential clients issuing puts and appends as proposals (retried
 * with the same op id until acknowledged, so exactly once) and gets as ReadIndex reads (thesis
 * §6.4), and the history of their operations for the linearizability checker. */
#include "tests/raft/sim_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void wake_in(struct sim *s, struct sim_client *c, raft_time delay)
{
    c->gen++;
    sim_schedule(
        s, (struct sim_ev){.at = s->now + delay, .kind = SIM_EV_CLIENT, .a = c->id, .b = c->gen});
}

static const char *kind_name(uint8_t kind)
{
    return kind == LIN_PUT ? "put" : kind == LIN_APPEND ? "append" : "get";
}

static void hist_invoke(struct sim *s, struct sim_client *c)
{
    if (s->n_hist == s->cap_hist) {
        size_t cap = s->cap_hist ? s->cap_hist * 2 : 256;
        struct sim_hop *h = realloc(s->hist, cap * sizeof(*h));
        if (h == NULL) {
            sim_fail(s, "out of memory (history)");
            return;
        }
        s->hist = h;
        s->cap_hist = cap;
    }
    c->hist = s->n_hist++;
    struct sim_hop *op = &s->hist[c->hist];
    *op = (struct sim_hop){.kind = c->kind,
                           .client = c->id,
                           .key = c->key,
                           .seq = c->seq,
                           .invoke = ++s->lclock,
                           .response = LIN_PENDING,
                           .t_invoke = s->now};
    if (c->kind != LIN_GET) {
        op->value = malloc(c->len);
        if (op->value == NULL) {
            sim_fail(s, "out of memory (history)");
            return;
        }
        memcpy(op->value, c->value, c->len);
        op->len = c->len;
    }
}

static void hist_respond(struct sim *s, struct sim_client *c, struct sim_node *n, const char *value,
                         uint32_t len)
{
    struct sim_hop *op = &s->hist[c->hist];
    op->response = ++s->lclock;
    op->t_response = s->now;
    op->node = n->id;
    op->index = c->index;
    if (c->kind == LIN_GET) {
        op->value = malloc(len + 1);
        if (op->value == NULL) {
            sim_fail(s, "out of memory (history)");
            return;
        }
        memcpy(op->value, value, len);
        op->len = len;
    }
    sim_trace(s, "client %u: %s k%u%s%.*s ok on n%" PRIu64 " at %" PRIu64 " (%" PRIu64 " ms)",
              c->id, kind_name(c->kind), c->key, c->kind == LIN_GET ? " -> " : " ",
              (int)(op->len > 40 ? 40 : op->len), op->value, n->id, c->index,
              s->now - op->t_invoke);
}

/* Where to send the next attempt: the presumed leader, or any running node for follower reads. */
static raft_id pick_target(struct sim *s, struct sim_client *c, bool any)
{
    if (c->fixed_target != 0)
        return sim_is_up(s, c->fixed_target) ? c->fixed_target : 0;
    if (!any && c->hint != 0 && sim_is_up(s, c->hint))
        return c->hint;
    raft_id up[SIM_MAX_NODES];
    int k = 0;
    for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
        if (sim_is_up(s, id))
            up[k++] = id;
    }
    return k == 0 ? 0 : up[sim_rand(s) % (uint64_t)k];
}

static void retry_later(struct sim *s, struct sim_client *c, struct sim_node *n)
{
    c->hint = 0;
    if (n != NULL && n->state == SIM_UP && n->st.leader != 0 && n->st.leader != n->id)
        c->hint = n->st.leader;
    c->phase = SIM_CL_SUBMIT;
    wake_in(s, c, sim_range(s, 5, 30));
}

static void submit(struct sim *s, struct sim_client *c)
{
    c->attempts++;
    bool read = c->kind == LIN_GET;
    raft_id t = pick_target(s, c, read && c->follower_reads && sim_chance(s, 700));
    if (t == 0) {
        c->phase = SIM_CL_SUBMIT;
        wake_in(s, c, sim_range(s, 10, 50));
        return;
    }
    struct sim_node *n = sim_node(s, t);
    c->target = t;
    c->target_inc = n->incarnation;
    c->deadline = s->now + s->o.client_timeout;
    if (!read) {
        uint8_t buf[KV_CMD_HEADER + sizeof(c->value)];
        struct kv_cmd cmd = {.op = c->kind == LIN_PUT ? KV_PUT : KV_APPEND,
                             .client = c->id,
                             .key = c->key,
                             .seq = c->seq,
                             .value = c->value,
                             .len = c->len};
        size_t len = kv_cmd_encode(&cmd, buf, sizeof(buf));
        raft_index index = 0;
        raft_term term = 0;
        int rc = sim_propose(s, t, buf, (uint32_t)len, &index, &term);
        if (rc != 0) {
            retry_later(s, c, n);
            return;
        }
        c->phase = SIM_CL_WAIT_APPLY;
        c->index = index;
        c->term = term;
        wake_in(s, c, s->o.client_timeout);
        return;
    }
    c->read_id = ++s->next_read_id;
    c->phase = SIM_CL_WAIT_READ;
    wake_in(s, c, s->o.client_timeout);
    struct raft_event ev = {.type = RAFT_EV_READ};
    ev.u.read.read_id = c->read_id;
    int rc = sim_node_step(s, n, &ev, NULL);
    if (rc != 0 && c->phase == SIM_CL_WAIT_READ && c->read_id == ev.u.read.read_id)
        retry_later(s, c, n);
}

static void start_op(struct sim *s, struct sim_client *c)
{
    if (c->active) {
        uint64_t r = sim_rand(s) % 10;
        c->kind = r < 3 ? LIN_PUT : r < 6 ? LIN_APPEND : LIN_GET;
        c->key = (uint8_t)(sim_rand(s) % (uint64_t)s->o.n_keys);
    } else if (c->final_read) {
        c->final_read = false;
        c->kind = LIN_GET;
        c->key = (uint8_t)(c->id % s->o.n_keys);
    } else {
        c->phase = SIM_CL_DONE;
        return;
    }
    c->seq++;
    c->len = 0;
    if (c->kind != LIN_GET)
        c->len = (uint32_t)snprintf(c->value, sizeof(c->value), "%u.%u;", c->id, c->seq);
    c->attempts = 0;
    hist_invoke(s, c);
    submit(s, c);
}

void client_wake(struct sim *s, struct sim_client *c, uint64_t gen)
{
    if (gen != c->gen)
        return;
    switch (c->phase) {
    case SIM_CL_IDLE:
        start_op(s, c);
        break;
    case SIM_CL_SUBMIT:
        submit(s, c);
        break;
    case SIM_CL_WAIT_APPLY:
    case SIM_CL_WAIT_READ:
    case SIM_CL_WAIT_SERVE:
        if (s->now >= c->deadline) {
            sim_trace(s, "client %u: %s k%u timed out on n%" PRIu64 ", retrying", c->id,
                      kind_name(c->kind), c->key, c->target);
            c->hint = 0;
            submit(s, c);
        }
        break;
    default:
        break;
    }
}

static bool waits_on(const struct sim_client *c, const struct sim_node *n, uint8_t phase)
{
    return c->phase == phase && c->target == n->id && c->target_inc == n->incarnation;
}

static void done(struct sim *s, struct sim_client *c)
{
    c->phase = SIM_CL_IDLE;
    wake_in(s, c, sim_range(s, 0, s->o.think_max));
}

void client_on_apply(struct sim *s, struct sim_node *n, raft_index index, raft_term term)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        if (!waits_on(c, n, SIM_CL_WAIT_APPLY) || c->index != index)
            continue;
        if (term == c->term) {
            /* Acknowledged: applied on the node that accepted it, with its index and term. */
            if (s->o.checks)
                check_ack(s, n, index, term, c->id, c->seq);
            s->n_acked_writes++;
            c->hint = n->id;
            hist_respond(s, c, n, NULL, 0);
            done(s, c);
        } else {
            sim_trace(s,
                      "client %u: write at %" PRIu64 "/%" PRIu64 " lost (term %" PRIu64
                      " applied there), retrying",
                      c->id, index, c->term, term);
            retry_later(s, c, n);
        }
    }
}

void client_on_install(struct sim *s, struct sim_node *n)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        if (waits_on(c, n, SIM_CL_WAIT_APPLY) && c->index <= n->applied) {
            /* The outcome is unknown: retry (the op id makes it exactly once). */
            c->phase = SIM_CL_SUBMIT;
            wake_in(s, c, sim_range(s, 1, 10));
        }
    }
}

void client_on_read(struct sim *s, struct sim_node *n, const struct raft_read *rd)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        if (!waits_on(c, n, SIM_CL_WAIT_READ) || c->read_id != rd->read_id)
            continue;
        if (rd->ok) {
            c->phase = SIM_CL_WAIT_SERVE;
            c->index = rd->index;
        } else {
            retry_later(s, c, n);
        }
    }
}

void client_serve(struct sim *s, struct sim_node *n)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        if (!waits_on(c, n, SIM_CL_WAIT_SERVE) || n->applied < c->index)
            continue;
        uint32_t len;
        const char *v = kv_get(&n->kv, c->key, &len);
        s->n_reads_served++;
        hist_respond(s, c, n, v, len);
        done(s, c);
    }
}

void client_on_node_lost(struct sim *s, struct sim_node *n)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        if (c->target == n->id && (c->phase == SIM_CL_WAIT_APPLY || c->phase == SIM_CL_WAIT_READ ||
                                   c->phase == SIM_CL_WAIT_SERVE)) {
            c->phase = SIM_CL_SUBMIT;
            c->hint = 0;
            wake_in(s, c, sim_range(s, 1, 20));
        }
    }
}

void sim_clients_start(struct sim *s, int n, bool follower_reads)
{
    if (n > SIM_MAX_CLIENTS)
        n = SIM_MAX_CLIENTS;
    if (n > s->n_clients)
        s->n_clients = n;
    for (int i = 0; i < n; i++) {
        struct sim_client *c = &s->clients[i];
        c->active = true;
        c->follower_reads = follower_reads;
        if (c->phase == SIM_CL_IDLE || c->phase == SIM_CL_DONE) {
            c->phase = SIM_CL_IDLE;
            wake_in(s, c, sim_range(s, 0, s->o.think_max));
        }
    }
}

void sim_clients_stop(struct sim *s, bool final_read)
{
    for (int i = 0; i < s->n_clients; i++) {
        struct sim_client *c = &s->clients[i];
        c->active = false;
        c->final_read = final_read;
        if (c->phase == SIM_CL_DONE) {
            c->phase = SIM_CL_IDLE;
            wake_in(s, c, 0);
        }
    }
}

size_t sim_client_op(struct sim *s, int cid, uint8_t kind, uint8_t key, raft_id target)
{
    struct sim_client *c = &s->clients[cid];
    if (cid >= s->n_clients)
        s->n_clients = cid + 1;
    c->active = false;
    c->final_read = false;
    c->fixed_target = target;
    c->kind = kind;
    c->key = key;
    c->seq++;
    c->len = 0;
    if (kind != LIN_GET)
        c->len = (uint32_t)snprintf(c->value, sizeof(c->value), "%u.%u;", c->id, c->seq);
    c->attempts = 0;
    hist_invoke(s, c);
    size_t h = c->hist;
    submit(s, c);
    return h;
}

bool sim_clients_done(struct sim *s)
{
    for (int i = 0; i < s->n_clients; i++) {
        const struct sim_client *c = &s->clients[i];
        if (c->active || c->final_read || (c->phase != SIM_CL_DONE && c->phase != SIM_CL_IDLE))
            return false;
    }
    return true;
}

bool sim_check_linearizable(struct sim *s)
{
    struct lin_op *ops = calloc(s->n_hist + 1, sizeof(*ops));
    if (ops == NULL) {
        sim_fail(s, "out of memory (linearizability)");
        return false;
    }
    for (size_t i = 0; i < s->n_hist; i++) {
        const struct sim_hop *h = &s->hist[i];
        ops[i] = (struct lin_op){.kind = h->kind,
                                 .key = h->key,
                                 .value = h->value != NULL ? h->value : "",
                                 .len = h->len,
                                 .invoke = h->invoke,
                                 .response = h->response};
    }
    struct lin_report rep;
    int rc = lin_check(ops, s->n_hist, 20000000, &rep);
    free(ops);
    if (rc == LIN_OK)
        return true;
    /* Show the key's history. */
    for (size_t i = 0; i < s->n_hist; i++) {
        const struct sim_hop *h = &s->hist[i];
        if (h->key != rep.key)
            continue;
        char resp[32] = "pending";
        if (h->response != LIN_PENDING)
            snprintf(resp, sizeof(resp), "%" PRIu64, h->t_response);
        sim_trace(
            s, "  history k%u: client %u %s %.*s [%" PRIu64 " .. %s] n%" PRIu64 " index %" PRIu64,
            h->key, h->client, kind_name(h->kind), (int)(h->len > 60 ? 60 : h->len),
            h->value != NULL ? h->value : "", h->t_invoke, resp, h->node, h->index);
    }
    if (rc == LIN_VIOLATION)
        sim_fail(s, "the client history of key k%u is not linearizable", rep.key);
    else if (rc == LIN_GAVE_UP)
        sim_fail(s, "the linearizability search of key k%u gave up (%" PRIu64 " ops)", rep.key,
                 rep.max_key_ops);
    else
        sim_fail(s, "out of memory (linearizability)");
    return false;
}

void client_free(struct sim *s)
{
    for (size_t i = 0; i < s->n_hist; i++)
        free(s->hist[i].value);
    free(s->hist);
}
