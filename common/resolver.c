/* Endpoint resolution on c-ares: list parsing, SRV ordering, and a blocking poll loop per call.
 * Each resolve call opens its own ares channel, so calls on several threads share nothing but
 * the resolver's endpoint table, which its mutex guards. */
#include "common/resolver.h"
#include "common/errors.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_PREFIX "http://"
#define SRV_PREFIX  "srv:"
#define LABEL_MAX   63

struct cm_resolver {
    pthread_mutex_t mu;
    char *servers; /* NULL: system configuration */
    int timeout_ms;
    bool srv;
    char srv_name[CM_HOST_MAX + 1];
    struct cm_endpoint *eps; /* guarded by mu, as is n */
    size_t n;
};

/* One name being resolved within a call. */
struct name_query {
    struct cm_hostport hp;
    int done;
    int ares_status;
    int err;
    size_t naddrs;
    struct cm_addr addrs[CM_RESOLVER_MAX_ADDRS];
    size_t *pending;
};

struct srv_query {
    int done;
    int ares_status;
    struct ares_srv_reply *reply;
    size_t *pending;
};

struct srv_target {
    struct cm_hostport hp;
    unsigned priority;
    unsigned weight;
};

/* One blocking resolve call: a lazily opened channel and its deadline. */
struct call {
    const struct cm_resolver *r;
    ares_channel ch;
    struct timespec deadline;
};

/* ares_library_init is not thread-safe and must run once per process; this is its only state
 * (written once under pthread_once, read-only afterwards). ares_library_cleanup is never called:
 * the library lives as long as the process. */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_SUCCESS;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ---- parsing ---------------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* A DNS name or IPv4 literal (not IPv6) of len bytes; see cm_endpoints_parse. */
static bool host_name_ok(const char *s, size_t len)
{
    size_t lab = 0;
    bool numeric = true;
    char buf[CM_HOST_MAX + 1];
    struct in_addr a4;

    if (len == 0 || len > CM_HOST_MAX)
        return false;
    if (s[len - 1] == '.') {
        len--;
        if (len == 0)
            return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (lab == 0 || s[i - 1] == '-')
                return false;
            lab = 0;
            continue;
        }
        if (!is_label_char(c) || (lab == 0 && c == '-') || ++lab > LABEL_MAX)
            return false;
        if (c < '0' || c > '9')
            numeric = false;
    }
    if (lab == 0 || s[len - 1] == '-')
        return false;
    if (numeric) {
        /* All digits and dots: only a well-formed IPv4 literal is a sane host. */
        memcpy(buf, s, len);
        buf[len] = '\0';
        return inet_pton(AF_INET, buf, &a4) == 1;
    }
    return true;
}

static bool ipv6_literal_ok(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN];
    struct in6_addr a6;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a6) == 1;
}

static int parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return CM_E_INVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CM_E_INVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return CM_E_INVAL;
    *out = (uint16_t)v;
    return 0;
}

/* One trimmed list item "[http://]host:port[/]". */
static int parse_item(const char *s, size_t len, struct cm_hostport *hp)
{
    const char *host, *port;
    size_t hlen;

    if (len >= strlen(HTTP_PREFIX) && strncasecmp(s, HTTP_PREFIX, strlen(HTTP_PREFIX)) == 0) {
        s += strlen(HTTP_PREFIX);
        len -= strlen(HTTP_PREFIX);
    }
    if (len > 0 && s[len - 1] == '/')
        len--;
    if (len == 0)
        return CM_E_INVAL;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL || rb + 1 == s + len || rb[1] != ':')
            return CM_E_INVAL;
        host = s + 1;
        hlen = (size_t)(rb - host);
        if (!ipv6_literal_ok(host, hlen))
            return CM_E_INVAL;
        port = rb + 2;
    } else {
        const char *colon = memrchr(s, ':', len);
        if (colon == NULL)
            return CM_E_INVAL;
        host = s;
        hlen = (size_t)(colon - s);
        if (!host_name_ok(host, hlen))
            return CM_E_INVAL;
        port = colon + 1;
    }
    if (parse_port(port, (size_t)(s + len - port), &hp->port) != 0)
        return CM_E_INVAL;
    memcpy(hp->host, host, hlen);
    hp->host[hlen] = '\0';
    return 0;
}

int cm_endpoints_parse(const char *list, struct cm_hostport **out, size_t *n_out)
{
    struct cm_hostport *hps = NULL;
    size_t n = 1, i = 0;
    const char *p;
    int rc;

    if (list == NULL || out == NULL || n_out == NULL)
        return CM_E_INVAL;
    for (p = list; *p != '\0'; p++)
        if (*p == ',')
            n++;
    if (n > CM_RESOLVER_MAX_ENDPOINTS)
        return CM_E_INVAL;
    hps = calloc(n, sizeof(*hps));
    if (hps == NULL)
        return CM_E_NOMEM;
    p = list;
    for (i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &len);
        rc = parse_item(item, len, &hps[i]);
        if (rc != 0)
            goto fail;
        p = comma ? comma + 1 : p + len;
    }
    *out = hps;
    *n_out = n;
    return 0;

fail:
    free(hps);
    return rc;
}

/* spec (trimmed) names an SRV record set: "srv:<name>" or "_service._proto.domain". On true,
 * name receives the record name. */
static bool parse_srv_spec(const char *s, size_t len, char name[CM_HOST_MAX + 1], int *rc)
{
    const char *dot;

    *rc = 0;
    if (len >= strlen(SRV_PREFIX) && strncasecmp(s, SRV_PREFIX, strlen(SRV_PREFIX)) == 0) {
        s += strlen(SRV_PREFIX);
        len -= strlen(SRV_PREFIX);
        trim(&s, &len);
    } else {
        if (len < 2 || s[0] != '_' || memchr(s, ':', len) || memchr(s, ',', len))
            return false;
        dot = memchr(s, '.', len);
        if (dot == NULL || dot + 1 == s + len || dot[1] != '_')
            return false;
    }
    if (!host_name_ok(s, len)) {
        *rc = CM_E_INVAL;
        return true;
    }
    memcpy(name, s, len);
    name[len] = '\0';
    return true;
}

/* ---- addresses -------------------------------------------------------------------------- */

/* Fills a from sa with port set; false for families other than IPv4/IPv6. */
static bool addr_fill(struct cm_addr *a, const struct sockaddr *sa, uint16_t port)
{
    char ip[INET6_ADDRSTRLEN];

    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
        memcpy(in, sa, sizeof(*in));
        in->sin_port = htons(port);
        a->len = sizeof(*in);
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(a->text, sizeof(a->text), "%s:%u", ip, (unsigned)port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->sa;
        memcpy(in6, sa, sizeof(*in6));
        in6->sin6_port = htons(port);
        a->len = sizeof(*in6);
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(a->text, sizeof(a->text), "[%s]:%u", ip, (unsigned)port);
        return true;
    }
    return false;
}

/* host as an IP literal (no brackets): true and *a filled, or false when host is a name. */
static bool literal_addr(const char *host, uint16_t port, struct cm_addr *a)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;

    memset(&in, 0, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        return addr_fill(a, (struct sockaddr *)&in, port);
    }
    if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        return addr_fill(a, (struct sockaddr *)&in6, port);
    }
    return false;
}

static void query_add(struct name_query *q, const struct sockaddr *sa)
{
    struct cm_addr a;

    if (q->naddrs == CM_RESOLVER_MAX_ADDRS || !addr_fill(&a, sa, q->hp.port))
        return;
    for (size_t i = 0; i < q->naddrs; i++)
        if (strcmp(q->addrs[i].text, a.text) == 0)
            return;
    q->addrs[q->naddrs++] = a;
}

/* ---- the c-ares call -------------------------------------------------------------------- */

static long ms_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(deadline->tv_sec - now.tv_sec) * 1000L +
           (deadline->tv_nsec - now.tv_nsec) / 1000000L;
}

/* The CM code for a final c-ares status. The loop cancels queries only at the deadline, so a
 * cancelled or destroyed query is a timeout. */
static int map_status(int st)
{
    switch (st) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return CM_E_TIMEOUT;
    case ARES_ENOMEM:
        return CM_E_NOMEM;
    default:
        return CM_E_RESOLVE;
    }
}

static void call_init(struct call *c, const struct cm_resolver *r)
{
    c->r = r;
    c->ch = NULL;
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += r->timeout_ms / 1000;
    c->deadline.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000L;
    if (c->deadline.tv_nsec >= 1000000000L) {
        c->deadline.tv_sec++;
        c->deadline.tv_nsec -= 1000000000L;
    }
}

static void call_close(struct call *c)
{
    if (c->ch != NULL)
        ares_destroy(c->ch);
    c->ch = NULL;
}

/* A channel with servers (NULL: system configuration) and per-try timeouts that fit timeout_ms:
 * two tries of timeout/3 then 2*timeout/3 (c-ares doubles the second). */
static int channel_open(const char *servers, int timeout_ms, ares_channel *out)
{
    struct ares_options o;
    ares_channel ch = NULL;
    int st;

    memset(&o, 0, sizeof(o));
    o.timeout = timeout_ms / 3 > 0 ? timeout_ms / 3 : 1;
    o.tries = 2;
    st = ares_init_options(&ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (st != ARES_SUCCESS) {
        LOG_WARN("resolver: cannot set up c-ares: %s", ares_strerror(st));
        return st == ARES_ENOMEM ? CM_E_NOMEM : CM_E_RESOLVE;
    }
    if (servers != NULL) {
        st = ares_set_servers_ports_csv(ch, servers);
        if (st != ARES_SUCCESS) {
            ares_destroy(ch);
            return st == ARES_ENOMEM ? CM_E_NOMEM : CM_E_INVAL;
        }
    }
    *out = ch;
    return 0;
}

static int call_channel(struct call *c)
{
    if (c->ch != NULL)
        return 0;
    return channel_open(c->r->servers, c->r->timeout_ms, &c->ch);
}

/* Runs the channel until *pending is 0. At the deadline (or if poll fails) every outstanding
 * query is cancelled (its callback runs with ARES_ECANCELLED or ARES_EDESTRUCTION), so on
 * return *pending is 0. */
static void call_run(struct call *c, const size_t *pending)
{
    while (*pending > 0) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        struct timeval maxtv, tv, *tvp;
        nfds_t nfd = 0;
        long left = ms_left(&c->deadline);
        unsigned bits;
        int wait_ms, n;

        if (left <= 0)
            break;
        /* Bits tested as unsigned: ARES_GETSOCK_WRITABLE shifts a signed 1 into bit 31. */
        bits = (unsigned)ares_getsock(c->ch, socks, ARES_GETSOCK_MAXNUM);
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = 0;
            if (bits & (1u << i))
                ev |= POLLIN;
            if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
                ev |= POLLOUT;
            if (ev == 0)
                continue;
            pfd[nfd].fd = socks[i];
            pfd[nfd].events = ev;
            pfd[nfd].revents = 0;
            nfd++;
        }
        maxtv.tv_sec = left / 1000;
        maxtv.tv_usec = (left % 1000) * 1000;
        tvp = ares_timeout(c->ch, &maxtv, &tv);
        wait_ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
        n = poll(pfd, nfd, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            LOG_WARN("resolver: poll failed (errno %d); giving up as timed out", errno);
            break;
        }
        if (n == 0) {
            ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (nfds_t i = 0; i < nfd; i++) {
            short re = pfd[i].revents;
            ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
            if (re & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
                rfd = pfd[i].fd;
            if (re & POLLOUT)
                wfd = pfd[i].fd;
            if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
                ares_process_fd(c->ch, rfd, wfd);
        }
    }
    if (*pending > 0)
        ares_cancel(c->ch);
    if (*pending > 0)
        call_close(c); /* anything still queued ends with ARES_EDESTRUCTION */
}

static void addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct name_query *q = arg;

    (void)timeouts;
    if (q->done) { /* c-ares calls once per query; guard the counter anyway */
        ares_freeaddrinfo(res);
        return;
    }
    if (status == ARES_SUCCESS && res != NULL)
        for (struct ares_addrinfo_node *nd = res->nodes; nd != NULL; nd = nd->ai_next)
            query_add(q, nd->ai_addr);
    if (status == ARES_SUCCESS && q->naddrs == 0)
        status = ARES_ENODATA;
    q->ares_status = status;
    q->err = map_status(status);
    q->done = 1;
    (*q->pending)--;
    ares_freeaddrinfo(res);
}

static void log_failure(const struct call *c, const char *what, const char *name, int st)
{
    if (map_status(st) == CM_E_TIMEOUT)
        LOG_WARN("resolver: resolving %s '%s' timed out after %d ms", what, name, c->r->timeout_ms);
    else
        LOG_WARN("resolver: cannot resolve %s '%s': %s", what, name, ares_strerror(st));
}

/* Resolves the n queries in parallel; each ends with err set (IP literals need no DNS).
 * Returns 0, or CM_E_NOMEM/CM_E_RESOLVE when no channel could be opened (all queries then carry
 * that error). */
static int resolve_names(struct call *c, struct name_query *qs, size_t n)
{
    size_t pending = 0;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        struct name_query *q = &qs[i];
        q->done = 0;
        q->naddrs = 0;
        q->pending = &pending;
        if (literal_addr(q->hp.host, q->hp.port, &q->addrs[0])) {
            q->naddrs = 1;
            q->ares_status = ARES_SUCCESS;
            q->err = 0;
            q->done = 1;
            continue;
        }
        if (rc == 0)
            rc = call_channel(c);
        if (rc != 0) {
            q->ares_status = rc == CM_E_NOMEM ? ARES_ENOMEM : ARES_ESERVFAIL;
            q->err = rc;
            q->done = 1;
            continue;
        }
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        pending++;
        /* May call addrinfo_cb before returning (/etc/hosts hits). */
        ares_getaddrinfo(c->ch, q->hp.host, NULL, &hints, addrinfo_cb, q);
    }
    if (pending > 0)
        call_run(c, &pending);
    for (size_t i = 0; i < n; i++)
        if (qs[i].err != 0 && qs[i].err != CM_E_NOMEM)
            log_failure(c, "host", qs[i].hp.host, qs[i].ares_status);
    return rc;
}

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct srv_query *q = arg;

    (void)timeouts;
    if (q->done)
        return;
    if (status == ARES_SUCCESS) {
        status = ares_parse_srv_reply(abuf, alen, &q->reply);
        if (status == ARES_SUCCESS && q->reply == NULL)
            status = ARES_ENODATA;
    }
    q->ares_status = status;
    q->done = 1;
    (*q->pending)--;
}

static int srv_cmp(const void *a, const void *b)
{
    const struct srv_target *x = a, *y = b;
    int c;

    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    c = strcmp(x->hp.host, y->hp.host);
    if (c != 0)
        return c;
    return (int)x->hp.port - (int)y->hp.port;
}

/* Queries the SRV records of r->srv_name and returns their usable targets, ordered and without
 * duplicates, in a malloc'd *out of *n_out (>= 1) entries. */
static int query_srv(struct call *c, struct cm_hostport **out, size_t *n_out)
{
    struct srv_query q = {0};
    struct srv_target *t = NULL;
    struct cm_hostport *hps = NULL;
    size_t pending = 0, nt = 0, n = 0;
    int rc;

    rc = call_channel(c);
    if (rc != 0)
        goto done;
    q.pending = &pending;
    pending = 1;
    ares_search(c->ch, c->r->srv_name, ns_c_in, ns_t_srv, srv_cb, &q);
    call_run(c, &pending);
    if (q.ares_status != ARES_SUCCESS) {
        log_failure(c, "SRV name", c->r->srv_name, q.ares_status);
        rc = map_status(q.ares_status);
        goto done;
    }
    for (struct ares_srv_reply *s = q.reply; s != NULL; s = s->next)
        nt++;
    t = calloc(nt, sizeof(*t));
    if (t == NULL) {
        rc = CM_E_NOMEM;
        goto done;
    }
    nt = 0;
    for (struct ares_srv_reply *s = q.reply; s != NULL; s = s->next) {
        size_t len = s->host ? strlen(s->host) : 0;
        if (len > 0 && s->host[len - 1] == '.')
            len--;
        /* Target "." means "no service here" (RFC 2782); other bad targets come from the
         * network and are skipped. */
        if (len == 0 || s->port == 0 || !host_name_ok(s->host, len)) {
            if (len > 0)
                LOG_WARN("resolver: SRV '%s': ignoring bad target '%s' port %u", c->r->srv_name,
                         s->host, (unsigned)s->port);
            continue;
        }
        memcpy(t[nt].hp.host, s->host, len);
        t[nt].hp.host[len] = '\0';
        t[nt].hp.port = s->port;
        t[nt].priority = s->priority;
        t[nt].weight = s->weight;
        nt++;
    }
    if (nt == 0) {
        LOG_WARN("resolver: SRV name '%s' has no usable target", c->r->srv_name);
        rc = CM_E_RESOLVE;
        goto done;
    }
    qsort(t, nt, sizeof(*t), srv_cmp);
    hps = calloc(nt, sizeof(*hps));
    if (hps == NULL) {
        rc = CM_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < nt && n < CM_RESOLVER_MAX_ENDPOINTS; i++) {
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = hps[j].port == t[i].hp.port && strcmp(hps[j].host, t[i].hp.host) == 0;
        if (!dup)
            hps[n++] = t[i].hp;
    }
    *out = hps;
    *n_out = n;
    hps = NULL;

done:
    free(hps);
    free(t);
    if (q.reply != NULL)
        ares_free_data(q.reply);
    return rc;
}

/* ---- the resolver ----------------------------------------------------------------------- */

static bool hp_eq(const struct cm_hostport *a, const struct cm_hostport *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static void endpoint_init(struct cm_endpoint *ep, const struct cm_hostport *hp)
{
    memset(ep, 0, sizeof(*ep));
    ep->hp = *hp;
    ep->last_err = CM_E_UNAVAILABLE;
    if (literal_addr(hp->host, hp->port, &ep->addrs[0])) {
        ep->naddrs = 1;
        ep->last_err = 0;
    }
}

static void endpoint_apply(struct cm_endpoint *ep, const struct name_query *q)
{
    ep->last_err = q->err;
    if (q->err != 0)
        return;
    ep->naddrs = q->naddrs;
    memcpy(ep->addrs, q->addrs, q->naddrs * sizeof(q->addrs[0]));
}

/* Index of the endpoint equal to hp, preferring hint; r->n when absent. Caller holds r->mu. */
static size_t find_locked(const struct cm_resolver *r, const struct cm_hostport *hp, size_t hint)
{
    if (hint < r->n && hp_eq(&r->eps[hint].hp, hp))
        return hint;
    for (size_t i = 0; i < r->n; i++)
        if (hp_eq(&r->eps[i].hp, hp))
            return i;
    return r->n;
}

int cm_resolver_new(const char *spec, const struct cm_resolver_opts *opts, struct cm_resolver **out)
{
    struct cm_resolver *r = NULL;
    struct cm_hostport *hps = NULL;
    size_t n = 0, len;
    const char *s = spec;
    ares_channel probe = NULL;
    int rc;

    if (spec == NULL || out == NULL || (opts != NULL && opts->timeout_ms < 0))
        return CM_E_INVAL;
    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS)
        return lib_status == ARES_ENOMEM ? CM_E_NOMEM : CM_E_INTERNAL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CM_E_NOMEM;
    r->timeout_ms =
        opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : CM_RESOLVER_DEFAULT_TIMEOUT_MS;
    if (opts != NULL && opts->servers != NULL && opts->servers[0] != '\0') {
        r->servers = strdup(opts->servers);
        if (r->servers == NULL) {
            rc = CM_E_NOMEM;
            goto fail;
        }
        /* Reject a bad server list now rather than on every resolve. */
        rc = channel_open(r->servers, r->timeout_ms, &probe);
        if (rc != 0)
            goto fail;
        ares_destroy(probe);
    }
    len = strlen(s);
    trim(&s, &len);
    if (parse_srv_spec(s, len, r->srv_name, &rc)) {
        if (rc != 0)
            goto fail;
        r->srv = true;
    } else {
        rc = cm_endpoints_parse(spec, &hps, &n);
        if (rc != 0)
            goto fail;
        r->eps = calloc(n, sizeof(*r->eps));
        if (r->eps == NULL) {
            rc = CM_E_NOMEM;
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            endpoint_init(&r->eps[i], &hps[i]);
        r->n = n;
    }
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    free(hps);
    *out = r;
    return 0;

fail:
    free(hps);
    free(r->eps);
    free(r->servers);
    free(r);
    return rc;
}

void cm_resolver_free(struct cm_resolver *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->eps);
    free(r->servers);
    free(r);
}

bool cm_resolver_is_srv(const struct cm_resolver *r)
{
    return r->srv;
}

size_t cm_resolver_count(struct cm_resolver *r)
{
    size_t n;

    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int cm_resolver_get(struct cm_resolver *r, size_t i, struct cm_endpoint *out)
{
    int rc = CM_E_RANGE;

    pthread_mutex_lock(&r->mu);
    if (i < r->n) {
        *out = r->eps[i];
        rc = 0;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int cm_resolver_resolve_all(struct cm_resolver *r, size_t *n_ok)
{
    struct call c;
    struct cm_hostport *hps = NULL;
    struct name_query *qs = NULL;
    struct cm_endpoint *fresh = NULL, *old = NULL;
    size_t n = 0, ok = 0;
    int rc = 0;

    if (n_ok != NULL)
        *n_ok = 0;
    call_init(&c, r);
    if (r->srv) {
        rc = query_srv(&c, &hps, &n);
        if (rc != 0)
            goto done;
        fresh = calloc(n, sizeof(*fresh));
        if (fresh == NULL) {
            rc = CM_E_NOMEM;
            goto done;
        }
    } else {
        pthread_mutex_lock(&r->mu);
        n = r->n;
        hps = calloc(n, sizeof(*hps));
        for (size_t i = 0; hps != NULL && i < n; i++)
            hps[i] = r->eps[i].hp;
        pthread_mutex_unlock(&r->mu);
        if (hps == NULL) {
            rc = CM_E_NOMEM;
            goto done;
        }
    }
    qs = calloc(n, sizeof(*qs));
    if (qs == NULL) {
        rc = CM_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        qs[i].hp = hps[i];
    resolve_names(&c, qs, n);

    pthread_mutex_lock(&r->mu);
    if (fresh != NULL) {
        for (size_t i = 0; i < n; i++) {
            size_t j = find_locked(r, &hps[i], i);
            if (j < r->n)
                fresh[i] = r->eps[j];
            else
                endpoint_init(&fresh[i], &hps[i]);
            endpoint_apply(&fresh[i], &qs[i]);
        }
        old = r->eps;
        r->eps = fresh;
        r->n = n;
        fresh = NULL;
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t j = find_locked(r, &hps[i], i);
            if (j < r->n)
                endpoint_apply(&r->eps[j], &qs[i]);
        }
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        if (qs[i].err == 0)
            ok++;
        else if (rc == 0)
            rc = qs[i].err;
    }
    if (n_ok != NULL)
        *n_ok = ok;

done:
    call_close(&c);
    free(old);
    free(fresh);
    free(qs);
    free(hps);
    return rc;
}

int cm_resolver_resolve_one(struct cm_resolver *r, size_t i)
{
    struct call c;
    struct name_query *q = NULL;
    size_t j;

    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return CM_E_NOMEM;
    pthread_mutex_lock(&r->mu);
    if (i < r->n)
        q->hp = r->eps[i].hp;
    j = r->n;
    pthread_mutex_unlock(&r->mu);
    if (i >= j) {
        free(q);
        return CM_E_RANGE;
    }
    call_init(&c, r);
    resolve_names(&c, q, 1);
    call_close(&c);
    pthread_mutex_lock(&r->mu);
    j = find_locked(r, &q->hp, i);
    if (j < r->n)
        endpoint_apply(&r->eps[j], q);
    pthread_mutex_unlock(&r->mu);
    int rc = q->err;
    free(q);
    return rc;
}

int cm_resolver_lookup(struct cm_resolver *r, const char *host, uint16_t port,
                       struct cm_addr *addrs, size_t cap, size_t *n_out)
{
    struct call c;
    struct name_query *q;
    size_t len, n;
    int rc;

    if (host == NULL || addrs == NULL || n_out == NULL || cap == 0 || port == 0)
        return CM_E_INVAL;
    len = strlen(host);
    if (!host_name_ok(host, len) && !ipv6_literal_ok(host, len))
        return CM_E_INVAL;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return CM_E_NOMEM;
    memcpy(q->hp.host, host, len + 1);
    q->hp.port = port;
    call_init(&c, r);
    resolve_names(&c, q, 1);
    call_close(&c);
    rc = q->err;
    if (rc == 0) {
        n = q->naddrs < cap ? q->naddrs : cap;
        memcpy(addrs, q->addrs, n * sizeof(*addrs));
        *n_out = n;
    }
    free(q);
    return rc;
}
