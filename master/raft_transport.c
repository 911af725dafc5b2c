/* Raft messages over HTTP: per peer an ordered queue with one request in flight on the shared
 * async engine, so messages reach a peer in order and a dead peer only stalls its own queue.
 * A peer's request that wants a reply (an append, a vote) is answered with the reply itself
 * when it comes soon enough (RW_HDR_REPLIES): one HTTP exchange per round instead of two. */
#include "master/raft_transport.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/json.h"
#include "common/log.h"
#include "common/resolver.h"
#include "master/raft_wire.h"

#define MAX_PEERS             (2 * RAFT_MAX_NODES)
#define HDR_MAX               12
#define DEFAULT_REPLY_WAIT_MS 20
static const char replies_hdr[] = RW_HDR_REPLIES ": 1";

struct req {
    struct req *next;
    const char *path;
    char *body;
    size_t len;
    const char *content_type;
    bool reply;                       /* a reply (is_reply): a parked answer may overtake it */
    char *hdrbuf;                     /* storage of the header lines */
    const char *headers[HDR_MAX + 1]; /* "Name: value", NULL-terminated */
};

struct peer {
    raft_id id;
    char url[RAFT_ADDR_MAX];  /* as configured: http://host:port */
    char base[RAFT_ADDR_MAX]; /* what requests go to: the resolved address when known */
    bool need_resolve;
    struct req *qhead, *qtail;
    size_t qlen;
    bool inflight;
    char advertise[RAFT_ADDR_MAX];
    uint64_t sent, failed, dropped;
    int last_err;
    bool warned;
    /* The peer's request held for our reply (rt_park_reply), the messages for it so far (a
     * JSON array, NULL: none yet) and when it is answered anyway (monotonic ms). */
    struct cm_http_deferred *parked;
    cJSON *reply;
    uint64_t parked_until;
};

struct rt_transport {
    struct rt_config cfg;
    char advertise_hdr[RAFT_ADDR_MAX + 32];
    char *dns;
    struct cm_secret secret;
    struct cm_http_async *async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct peer peers[MAX_PEERS];
    size_t npeers;
    pthread_t resolver_thread;
    bool resolver_started, stopping;
    /* When the resolver thread wakes by itself: 0 while it runs, UINT64_MAX when it waits for a
     * signal only. Parking a request signals it only when it has to wake sooner. */
    uint64_t resolver_sleep_until;
    bool want_replies; /* cfg.deliver was given: requests ask for replies in answers */
    bool no_parking;   /* rt_stop_replies ran: peers' requests are answered at once */
    /* Guards cfg.deliver: rt_stop_replies clears it while no delivery runs. */
    pthread_mutex_t dmu;
};

struct inflight_ctx {
    struct rt_transport *t;
    raft_id id;
    size_t n;    /* queued requests this one carries */
    char *batch; /* the batch body, when n > 1 */
};

static void req_free(struct req *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->hdrbuf);
    free(r);
}

static struct peer *find_peer(struct rt_transport *t, raft_id id)
{
    for (size_t i = 0; i < t->npeers; i++)
        if (t->peers[i].id == id)
            return &t->peers[i];
    return NULL;
}

/* ---- resolution (its own thread: c-ares calls block) ---- */

static void resolve_peer(struct rt_transport *t, struct peer *p)
{
    char url[RAFT_ADDR_MAX];
    snprintf(url, sizeof(url), "%s", p->url);
    pthread_mutex_unlock(&t->mu);

    struct cm_resolver_opts o = {.servers = t->dns, .timeout_ms = 2000};
    struct cm_resolver *r = NULL;
    struct cm_endpoint ep;
    char base[RAFT_ADDR_MAX] = "";
    int rc = cm_resolver_new(url, &o, &r);
    if (rc == 0)
        rc = cm_resolver_resolve_all(r, NULL);
    if (rc == 0 && cm_resolver_get(r, 0, &ep) == 0 && ep.naddrs > 0)
        snprintf(base, sizeof(base), "http://%s", ep.addrs[0].text);
    cm_resolver_free(r);

    pthread_mutex_lock(&t->mu);
    if (strcmp(p->url, url) != 0)
        return; /* changed meanwhile; its own resolution is pending */
    if (base[0] != 0) {
        if (strcmp(base, p->base) != 0)
            LOG_INFO("raft transport: peer %" PRIu64 " (%s) is at %s", p->id, url, base + 7);
        snprintf(p->base, sizeof(p->base), "%s", base);
    } else {
        LOG_WARN("raft transport: cannot resolve peer %" PRIu64 " (%s): %s", p->id, url,
                 cm_strerror(rc));
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void answer_ready(struct rt_transport *t, uint64_t now, bool all);

/* Resolves peers' names, and answers parked requests whose wait is over. */
static void *resolver_main(void *arg)
{
    struct rt_transport *t = arg;

    pthread_setname_np(pthread_self(), "raft-resolver");
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        struct peer *todo = NULL;
        uint64_t until = 0, now = mono_ms();
        for (size_t i = 0; i < t->npeers; i++) {
            if (t->peers[i].need_resolve && todo == NULL)
                todo = &t->peers[i];
            if (t->peers[i].parked != NULL && (until == 0 || t->peers[i].parked_until < until))
                until = t->peers[i].parked_until;
        }
        if (until != 0 && now >= until) {
            pthread_mutex_unlock(&t->mu);
            answer_ready(t, now, false);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        if (todo == NULL && until != 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (until - now) * 1000000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            t->resolver_sleep_until = until;
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            t->resolver_sleep_until = 0;
            continue;
        }
        if (todo == NULL) {
            t->resolver_sleep_until = UINT64_MAX;
            pthread_cond_wait(&t->cv, &t->mu);
            t->resolver_sleep_until = 0;
            continue;
        }
        todo->need_resolve = false;
        resolve_peer(t, todo);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---- sending ---- */

static void submit_head(struct rt_transport *t, struct peer *p);

/* The messages peer `from` sent back in an answer, to the node. */
static void deliver_replies(struct rt_transport *t, raft_id from, const cJSON *ans)
{
    const cJSON *arr, *item;
    if (ans == NULL || cm_json_get_array(ans, "messages", &arr) != 0)
        return;
    int cap = cJSON_GetArraySize(arr);
    cap = cap < RW_MAX_BATCH ? cap : RW_MAX_BATCH;
    if (cap <= 0)
        return;
    struct rw_msg *w = calloc((size_t)cap, sizeof(*w));
    const struct raft_msg **ms = calloc((size_t)cap, sizeof(*ms));
    size_t n = 0;
    if (w == NULL || ms == NULL)
        cap = 0; /* lost, as if the answer were: Raft sends again */
    /* Decoded up to the first malformed one, then handed over together (one pass of the
     * node's loop takes them all). */
    cJSON_ArrayForEach(item, arr)
    {
        if (n == (size_t)cap)
            break;
        int rc = rw_decode_batch_item(item, &w[n]);
        if (rc == 0 && (w[n].msg.from != from || w[n].msg.to != t->cfg.self)) {
            rw_msg_free(&w[n]);
            rc = CM_E_INVAL;
        }
        if (rc != 0) {
            LOG_WARN("raft transport: rejected a malformed reply from peer %" PRIu64 ": %s", from,
                     cm_strerror(rc));
            break;
        }
        ms[n] = &w[n].msg;
        n++;
    }
    pthread_mutex_lock(&t->dmu);
    if (n > 0 && t->cfg.deliver != NULL)
        t->cfg.deliver(t->cfg.deliver_ctx, ms, n);
    pthread_mutex_unlock(&t->dmu);
    for (size_t i = 0; i < n; i++)
        rw_msg_free(&w[i]);
    free(w);
    free(ms);
}

static void on_done(void *ctx, int err, struct cm_http_response *resp)
{
    struct inflight_ctx *c = ctx;
    struct rt_transport *t = c->t;
    if (err == 0)
        deliver_replies(t, c->id, resp->json);
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, c->id);
    size_t carried = c->n;
    free(c->batch);
    free(c);
    if (p == NULL) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    /* The request carried the first `carried` queued messages. */
    struct req *r = NULL;
    for (size_t i = 0; i < carried && p->qhead != NULL; i++) {
        struct req *h = p->qhead;
        p->qhead = h->next;
        if (p->qhead == NULL)
            p->qtail = NULL;
        p->qlen--;
        if (i + 1 < carried)
            req_free(h);
        else
            r = h;
    }
    p->inflight = false;
    p->last_err = err;
    if (err == 0) {
        p->sent++;
        p->warned = false;
    } else {
        p->failed++;
        if (!p->warned && err != CM_E_CANCELED)
            LOG_WARN("raft transport: sending to peer %" PRIu64 " (%s) failed: %s", p->id, p->url,
                     cm_strerror(err));
        p->warned = true;
        if (err == CM_E_CONNECT || err == CM_E_RESOLVE || err == CM_E_TIMEOUT) {
            /* What is queued is stale by now (Raft resends), and the peer may have moved. */
            while (p->qhead != NULL) {
                struct req *n = p->qhead->next;
                req_free(p->qhead);
                p->qhead = n;
                p->dropped++;
            }
            p->qtail = NULL;
            p->qlen = 0;
            p->need_resolve = true;
            pthread_cond_signal(&t->cv);
        }
    }
    req_free(r);
    if (!t->stopping && p->qhead != NULL)
        submit_head(t, p);
    pthread_mutex_unlock(&t->mu);
}

/* Joins the JSON messages queued from r on into one batch body (at least two, else NULL).
 * Sets *n to the number of messages it carries. */
static char *join_batch(const struct req *r, size_t *n, size_t *len)
{
    size_t k = 0, total = 16;
    const struct req *q;
    for (q = r; q != NULL && q->hdrbuf == NULL && k < RW_MAX_BATCH &&
                total + q->len < RW_MAX_APPEND_BODY / 2;
         q = q->next, k++)
        total += q->len + 1;
    if (k < 2)
        return NULL;
    char *b = malloc(total), *p = b;
    if (b == NULL)
        return NULL;
    p += sprintf(p, "{\"messages\":[");
    q = r;
    for (size_t i = 0; i < k; i++, q = q->next) {
        if (i > 0)
            *p++ = ',';
        memcpy(p, q->body, q->len);
        p += q->len;
    }
    p += sprintf(p, "]}");
    *n = k;
    *len = (size_t)(p - b);
    return b;
}

/* With t->mu held. */
static void submit_head(struct rt_transport *t, struct peer *p)
{
    struct req *r = p->qhead;
    char url[RAFT_ADDR_MAX + 64];
    struct inflight_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->t = t;
    c->id = p->id;
    c->n = 1;
    size_t blen = 0;
    /* Messages that piled up while the last request was in flight travel together. */
    c->batch = r->hdrbuf == NULL ? join_batch(r, &c->n, &blen) : NULL;
    snprintf(url, sizeof(url), "%s%s", p->base, c->batch ? RW_PATH_BATCH : r->path);
    struct cm_http_call call = {
        .method = "POST",
        .url = url,
        .body = c->batch ? c->batch : r->body,
        .body_len = c->batch ? blen : r->len,
        .content_type = r->content_type,
        .headers = r->headers,
        .timeout_ms = t->cfg.timeout_ms,
    };
    if (cm_http_async_submit(t->async, &call, on_done, c) != 0) {
        free(c->batch);
        free(c);
        goto fail;
    }
    p->inflight = true;
    return;
fail:
    p->qhead = r->next;
    if (p->qhead == NULL)
        p->qtail = NULL;
    p->qlen--;
    p->dropped++;
    req_free(r);
}

static struct req *build(struct rt_transport *t, const struct raft_msg *m, const char *snap)
{
    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->path = rw_path(m);
    int nh = 0;
    r->headers[nh++] = t->advertise_hdr;
    if (t->want_replies)
        r->headers[nh++] = replies_hdr;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_msg_snapshot *s = &m->u.snapshot;
        if (snap == NULL)
            goto fail;
        r->body = malloc(s->len ? s->len : 1);
        int fd = open(snap, O_RDONLY | O_CLOEXEC);
        if (r->body == NULL || fd < 0) {
            if (fd >= 0)
                close(fd);
            goto fail;
        }
        ssize_t got = pread(fd, r->body, s->len, (off_t)s->offset);
        close(fd);
        if (got != (ssize_t)s->len)
            goto fail; /* the snapshot changed under us; Raft will start over */
        r->len = s->len;
        r->content_type = "application/octet-stream";
        struct rw_header h[RW_SNAPSHOT_HEADERS];
        char vals[8192];
        if (rw_encode_snapshot_headers(m, h, vals, sizeof(vals)) != 0)
            goto fail;
        size_t need = 0;
        for (int i = 0; i < RW_SNAPSHOT_HEADERS; i++)
            need += strlen(h[i].name) + strlen(h[i].value) + 3;
        char *b = r->hdrbuf = malloc(need);
        if (b == NULL)
            goto fail;
        for (int i = 0; i < RW_SNAPSHOT_HEADERS; i++) {
            r->headers[nh++] = b;
            b += sprintf(b, "%s: %s", h[i].name, h[i].value) + 1;
        }
    } else {
        cJSON *j = NULL;
        if (rw_encode_json(m, &j) != 0)
            goto fail;
        int rc = cm_json_print(j, &r->body, &r->len);
        cJSON_Delete(j);
        if (rc != 0)
            goto fail;
        r->content_type = "application/json";
    }
    r->headers[nh] = NULL;
    return r;
fail:
    req_free(r);
    return NULL;
}

/* Replies are small; requests (appends may carry megabytes of entries) go as requests. */
static bool is_reply(const struct raft_msg *m)
{
    return m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_APPEND_RESP ||
           m->type == RAFT_MSG_SNAPSHOT_RESP || m->type == RAFT_MSG_READ_INDEX_RESP;
}

/* With t->mu held: reply m goes into the answer parked for its peer. False: it has to be sent. */
static bool add_to_reply(struct peer *p, const struct raft_msg *m)
{
    cJSON *j = NULL;
    if (p == NULL || p->parked == NULL)
        return false;
    if (p->reply == NULL && (p->reply = cJSON_CreateArray()) == NULL)
        return false;
    if (cJSON_GetArraySize(p->reply) >= RW_MAX_BATCH || rw_encode_json(m, &j) != 0)
        return false;
    if (!cJSON_AddItemToArray(p->reply, j)) {
        cJSON_Delete(j);
        return false;
    }
    return true;
}

/* Gives a parked answer: {"messages": reply} or "{}" when reply is NULL (both taken). */
static void answer_parked(struct cm_http_deferred *d, cJSON *reply)
{
    cJSON *o = NULL;
    if (reply != NULL) {
        o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToObject(o, "messages", reply)) {
            cJSON_Delete(reply);
            cJSON_Delete(o);
            o = NULL; /* the messages are lost; Raft sends again */
        }
    }
    cm_http_deferred_json(d, 200, o);
}

void rt_send(void *transport, const struct raft_msg *m, const char *snapshot_path)
{
    struct rt_transport *t = transport;
    if (is_reply(m)) {
        pthread_mutex_lock(&t->mu);
        bool taken = add_to_reply(find_peer(t, m->to), m);
        pthread_mutex_unlock(&t->mu);
        if (taken)
            return;
    }
    struct req *r = build(t, m, snapshot_path);
    if (r != NULL)
        r->reply = is_reply(m);
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, m->to);
    if (p == NULL || r == NULL || p->qlen >= t->cfg.max_queue) {
        if (p != NULL)
            p->dropped++;
        else
            LOG_DEBUG("raft transport: no address for node %" PRIu64 "; message dropped", m->to);
        pthread_mutex_unlock(&t->mu);
        req_free(r);
        return;
    }
    if (p->qtail)
        p->qtail->next = r;
    else
        p->qhead = r;
    p->qtail = r;
    p->qlen++;
    if (!p->inflight)
        submit_head(t, p);
    pthread_mutex_unlock(&t->mu);
}

/* ---- replies in answers ---- */

/* With t->mu held: whether a request of p may wait for our reply: no request of ours for p is
 * queued or in flight, so the reply cannot overtake one. Replies of ours may be: Raft takes
 * replies in any order (a later append success supersedes an earlier one). Without that, a
 * follower whose reply went out as a request of its own (a batch answered before all its
 * replies, or a wait that ran out) had it in flight when the next append came, could not park
 * that one either, and went on sending its replies as requests: two HTTP exchanges per round
 * instead of one (0.18-0.27 requests per commit from each follower with 8 writers). */
static bool can_park(const struct rt_transport *t, const struct peer *p)
{
    if (p == NULL || t->stopping || t->no_parking)
        return false;
    size_t k = 0;
    for (const struct req *r = p->qhead; r != NULL; r = r->next)
        if (!r->reply || ++k > RW_MAX_BATCH)
            return false;
    return true;
}

bool rt_park_reply(struct rt_transport *t, raft_id from, struct cm_http_req *req)
{
    struct cm_http_deferred *d = NULL, *old = NULL;
    cJSON *old_reply = NULL;
    const char *h = cm_http_req_header(req, RW_HDR_REPLIES);
    if (h == NULL || strcmp(h, "1") != 0)
        return false;
    pthread_mutex_lock(&t->mu);
    bool ok = can_park(t, find_peer(t, from));
    pthread_mutex_unlock(&t->mu);
    if (!ok || cm_http_defer(req, &d) != 0)
        return false;
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, from);
    if ((ok = can_park(t, p))) {
        /* One request of a peer is in flight at a time; an earlier one held here is stale. */
        old = p->parked;
        old_reply = p->reply;
        p->parked = d;
        p->reply = NULL;
        p->parked_until = mono_ms() + t->cfg.reply_wait_ms;
        /* A follower parks one request per append: waking the resolver for each cost it a
         * thread switch per commit, when it usually sleeps until an earlier deadline anyway. */
        if (t->resolver_sleep_until != 0 && p->parked_until < t->resolver_sleep_until)
            pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    if (old != NULL)
        answer_parked(old, old_reply);
    if (!ok)
        answer_parked(d, NULL);
    return true;
}

void rt_unpark_reply(struct rt_transport *t, raft_id from)
{
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, from);
    struct cm_http_deferred *d = p != NULL ? p->parked : NULL;
    cJSON *reply = d != NULL ? p->reply : NULL;
    if (d != NULL) {
        p->parked = NULL;
        p->reply = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    if (d != NULL)
        answer_parked(d, reply);
}

/* Answers the parked requests that have replies or waited until now (every one with all). */
static void answer_ready(struct rt_transport *t, uint64_t now, bool all)
{
    struct cm_http_deferred *d[MAX_PEERS];
    cJSON *reply[MAX_PEERS];
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->npeers; i++) {
        struct peer *p = &t->peers[i];
        if (p->parked == NULL)
            continue;
        if (all || p->reply != NULL || now >= p->parked_until) {
            d[n] = p->parked;
            reply[n++] = p->reply;
            p->parked = NULL;
            p->reply = NULL;
        }
    }
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < n; i++)
        answer_parked(d[i], reply[i]);
}

void rt_flush(void *transport)
{
    answer_ready(transport, mono_ms(), false);
}

void rt_stop_replies(struct rt_transport *t)
{
    pthread_mutex_lock(&t->dmu);
    t->cfg.deliver = NULL;
    pthread_mutex_unlock(&t->dmu);
    pthread_mutex_lock(&t->mu);
    t->no_parking = true;
    pthread_mutex_unlock(&t->mu);
    answer_ready(t, mono_ms(), true);
}

/* ---- peers ---- */

int rt_set_peer(struct rt_transport *t, raft_id id, const char *url)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    if (id == 0 || id == t->cfg.self || url == NULL || strlen(url) >= RAFT_ADDR_MAX ||
        cm_endpoints_parse(url, &hp, &n) != 0 || n != 1) {
        free(hp);
        return CM_E_INVAL;
    }
    free(hp);
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, id);
    if (p == NULL) {
        if (t->npeers == MAX_PEERS) {
            pthread_mutex_unlock(&t->mu);
            return CM_E_NOSPC;
        }
        p = &t->peers[t->npeers++];
        memset(p, 0, sizeof(*p));
        p->id = id;
    }
    if (strcmp(p->url, url) != 0) {
        snprintf(p->url, sizeof(p->url), "%s", url);
        /* Until c-ares answers, curl resolves the name itself. */
        snprintf(p->base, sizeof(p->base), "%s%s", strncmp(url, "http://", 7) ? "http://" : "",
                 url);
        size_t bl = strlen(p->base);
        if (bl > 0 && p->base[bl - 1] == '/')
            p->base[bl - 1] = 0;
        p->need_resolve = true;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return 0;
}

void rt_set_conf(struct rt_transport *t, const struct raft_conf *conf)
{
    for (uint32_t i = 0; i < conf->n; i++)
        if (conf->nodes[i].addr[0] != 0 && conf->nodes[i].id != t->cfg.self)
            rt_set_peer(t, conf->nodes[i].id, conf->nodes[i].addr);
}

void rt_conf_changed(void *transport, const struct raft_conf *conf)
{
    rt_set_conf(transport, conf);
}

void rt_note_advertise(struct rt_transport *t, raft_id id, const char *advertise)
{
    if (advertise == NULL || strlen(advertise) >= RAFT_ADDR_MAX)
        return;
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, id);
    if (p != NULL)
        snprintf(p->advertise, sizeof(p->advertise), "%s", advertise);
    pthread_mutex_unlock(&t->mu);
}

static int copy_field(struct rt_transport *t, raft_id id, char *buf, size_t cap, bool url)
{
    int rc = CM_E_NOENT;
    pthread_mutex_lock(&t->mu);
    struct peer *p = find_peer(t, id);
    const char *v = p == NULL ? NULL : url ? p->url : p->advertise;
    if (v != NULL && v[0] != 0) {
        snprintf(buf, cap, "%s", v);
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int rt_get_advertise(struct rt_transport *t, raft_id id, char *buf, size_t cap)
{
    if (id == t->cfg.self) {
        snprintf(buf, cap, "%s", t->cfg.advertise);
        return 0;
    }
    return copy_field(t, id, buf, cap, false);
}

int rt_get_url(struct rt_transport *t, raft_id id, char *buf, size_t cap)
{
    return copy_field(t, id, buf, cap, true);
}

size_t rt_get_stats(struct rt_transport *t, struct rt_peer_stats *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->npeers && n < cap; i++, n++) {
        out[n].id = t->peers[i].id;
        out[n].sent = t->peers[i].sent;
        out[n].failed = t->peers[i].failed;
        out[n].dropped = t->peers[i].dropped;
        out[n].last_err = t->peers[i].last_err;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* ---- lifecycle ---- */

int rt_new(const struct rt_config *cfg, struct rt_transport **out)
{
    int rc = CM_E_NOMEM;
    struct rt_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return CM_E_NOMEM;
    t->cfg = *cfg;
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->dmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (t->cfg.timeout_ms <= 0)
        t->cfg.timeout_ms = 2000;
    if (t->cfg.max_queue == 0)
        t->cfg.max_queue = 4096;
    if (cfg->secret != NULL)
        t->secret = *cfg->secret;
    t->cfg.secret = &t->secret;
    snprintf(t->advertise_hdr, sizeof(t->advertise_hdr), "%s: %s", RW_HDR_ADVERTISE,
             cfg->advertise ? cfg->advertise : "");
    t->cfg.advertise = t->advertise_hdr + strlen(RW_HDR_ADVERTISE) + 2;
    if (cfg->dns_servers != NULL && (t->dns = strdup(cfg->dns_servers)) == NULL)
        goto fail;
    if (t->cfg.reply_wait_ms == 0)
        t->cfg.reply_wait_ms = DEFAULT_REPLY_WAIT_MS;
    t->want_replies = cfg->deliver != NULL;
    struct cm_http_client_config cc = {
        .connect_timeout_ms = 1000,
        .timeout_ms = t->cfg.timeout_ms,
        .secret = &t->secret,
        .max_idle = 64,
    };
    if ((rc = cm_http_async_new(&cc, &t->async)) != 0)
        goto fail;
    if (pthread_create(&t->resolver_thread, NULL, resolver_main, t) != 0) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    t->resolver_started = true;
    *out = t;
    return 0;
fail:
    rt_free(t);
    return rc;
}

void rt_free(struct rt_transport *t)
{
    if (t == NULL)
        return;
    rt_stop_replies(t);
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->resolver_started)
        pthread_join(t->resolver_thread, NULL);
    cm_http_async_free(t->async); /* completes in-flight requests with CM_E_CANCELED */
    for (size_t i = 0; i < t->npeers; i++) {
        struct peer *p = &t->peers[i];
        while (p->qhead != NULL) {
            struct req *n = p->qhead->next;
            req_free(p->qhead);
            p->qhead = n;
        }
    }
    free(t->dns);
    pthread_mutex_destroy(&t->dmu);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}
