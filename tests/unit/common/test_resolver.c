/* The resolver: endpoint-list parsing, IP literals, /etc/hosts, and DNS (SRV ordering, A/AAAA,
 * NXDOMAIN, timeouts, re-resolution) against a fake DNS server on 127.0.0.1 run by the test, so
 * no query ever leaves this machine. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/resolver.h"

/* ---- a tiny UDP DNS responder ----------------------------------------------------------- */

#define T_A    1
#define T_AAAA 28
#define T_SRV  33
#define MAX_RR 32

/* One record: A/AAAA data is the address text, SRV data is "priority weight port target". */
struct rr {
    char name[128];
    int type;
    char data[160];
};

struct fake_dns {
    int fd;
    int stop[2];
    uint16_t port;
    char servers[32]; /* "127.0.0.1:<port>" */
    pthread_t thread;
    pthread_mutex_t mu;
    struct rr rrs[MAX_RR];
    size_t nrr;
    unsigned queries;
};

static int udp_socket_on_loopback(uint16_t *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    cr_assert_geq(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* Appends name as DNS labels; returns bytes written. */
static size_t put_name(unsigned char *p, const char *name)
{
    size_t n = 0;

    while (*name != '\0') {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        p[n++] = (unsigned char)len;
        memcpy(p + n, name, len);
        n += len;
        name += len;
        if (*name == '.')
            name++;
    }
    p[n++] = 0;
    return n;
}

/* Builds the answer to query q (qlen bytes) into out; returns its length or 0 to drop. */
static size_t answer(struct fake_dns *d, const unsigned char *q, size_t qlen, unsigned char *out)
{
    char name[256];
    size_t pos = 12, nlen = 0, n, nans = 0;
    unsigned qtype;
    bool exists = false;

    if (qlen < 12 + 5 || (q[2] & 0x80) != 0)
        return 0;
    while (pos < qlen && q[pos] != 0) {
        size_t l = q[pos];
        if (l > 63 || pos + 1 + l >= qlen || nlen + l + 1 >= sizeof(name))
            return 0;
        if (nlen > 0)
            name[nlen++] = '.';
        memcpy(name + nlen, q + pos + 1, l);
        nlen += l;
        pos += 1 + l;
    }
    name[nlen] = '\0';
    if (pos + 5 > qlen)
        return 0;
    qtype = (unsigned)q[pos + 1] << 8 | q[pos + 2];
    pos += 5; /* root label, type, class */

    memcpy(out, q, pos); /* header and question */
    n = pos;
    pthread_mutex_lock(&d->mu);
    d->queries++;
    for (size_t i = 0; i < d->nrr; i++) {
        const struct rr *r = &d->rrs[i];
        unsigned char *rd;
        size_t rdlen = 0;
        if (strcasecmp(r->name, name) != 0)
            continue;
        exists = true;
        if ((unsigned)r->type != qtype)
            continue;
        out[n++] = 0xc0; /* pointer to the question's name */
        out[n++] = 12;
        put16(out + n, qtype);
        put16(out + n + 2, 1);     /* IN */
        memset(out + n + 4, 0, 4); /* TTL 0 */
        rd = out + n + 10;
        /* Records were checked by dns_add; no asserts on this thread. */
        if (r->type == T_A) {
            inet_pton(AF_INET, r->data, rd);
            rdlen = 4;
        } else if (r->type == T_AAAA) {
            inet_pton(AF_INET6, r->data, rd);
            rdlen = 16;
        } else {
            unsigned prio = 0, weight = 0, port = 0;
            char target[128] = ".";
            sscanf(r->data, "%u %u %u %127s", &prio, &weight, &port, target);
            put16(rd, prio);
            put16(rd + 2, weight);
            put16(rd + 4, port);
            rdlen = 6 + put_name(rd + 6, strcmp(target, ".") == 0 ? "" : target);
        }
        put16(out + n + 8, (unsigned)rdlen);
        n += 10 + rdlen;
        nans++;
    }
    pthread_mutex_unlock(&d->mu);
    out[2] = (unsigned char)(0x80 | (q[2] & 0x01));    /* QR, keep RD */
    out[3] = (unsigned char)(0x80 | (exists ? 0 : 3)); /* RA, NOERROR or NXDOMAIN */
    put16(out + 6, (unsigned)nans);
    put16(out + 8, 0);
    put16(out + 10, 0);
    return n;
}

static void *dns_main(void *arg)
{
    struct fake_dns *d = arg;
    unsigned char q[512], out[4096];

    for (;;) {
        struct pollfd p[2] = {{.fd = d->fd, .events = POLLIN},
                              {.fd = d->stop[0], .events = POLLIN}};
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t got;
        size_t n;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0)
            break;
        got = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
        if (got <= 0)
            continue;
        n = answer(d, q, (size_t)got, out);
        if (n > 0)
            sendto(d->fd, out, n, 0, (struct sockaddr *)&from, flen);
    }
    return NULL;
}

static struct fake_dns *dns_start(void)
{
    struct fake_dns *d = calloc(1, sizeof(*d));

    cr_assert_not_null(d);
    d->fd = udp_socket_on_loopback(&d->port);
    snprintf(d->servers, sizeof(d->servers), "127.0.0.1:%u", (unsigned)d->port);
    cr_assert_eq(pipe(d->stop), 0);
    pthread_mutex_init(&d->mu, NULL);
    cr_assert_eq(pthread_create(&d->thread, NULL, dns_main, d), 0);
    return d;
}

static void dns_stop(struct fake_dns *d)
{
    cr_assert_eq(write(d->stop[1], "x", 1), 1);
    pthread_join(d->thread, NULL);
    close(d->fd);
    close(d->stop[0]);
    close(d->stop[1]);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static void dns_add(struct fake_dns *d, const char *name, int type, const char *data)
{
    unsigned char buf[16];
    unsigned u;
    char target[128];

    if (type == T_A)
        cr_assert_eq(inet_pton(AF_INET, data, buf), 1, "bad A data %s", data);
    else if (type == T_AAAA)
        cr_assert_eq(inet_pton(AF_INET6, data, buf), 1, "bad AAAA data %s", data);
    else
        cr_assert_eq(sscanf(data, "%u %u %u %127s", &u, &u, &u, target), 4, "bad SRV %s", data);
    pthread_mutex_lock(&d->mu);
    cr_assert_lt(d->nrr, MAX_RR);
    snprintf(d->rrs[d->nrr].name, sizeof(d->rrs[0].name), "%s", name);
    d->rrs[d->nrr].type = type;
    snprintf(d->rrs[d->nrr].data, sizeof(d->rrs[0].data), "%s", data);
    d->nrr++;
    pthread_mutex_unlock(&d->mu);
}

static void dns_clear(struct fake_dns *d)
{
    pthread_mutex_lock(&d->mu);
    d->nrr = 0;
    pthread_mutex_unlock(&d->mu);
}

static unsigned dns_queries(struct fake_dns *d)
{
    unsigned n;

    pthread_mutex_lock(&d->mu);
    n = d->queries;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static struct cm_resolver *new_resolver(const char *spec, const char *servers, int timeout_ms)
{
    struct cm_resolver_opts o = {.servers = servers, .timeout_ms = timeout_ms};
    struct cm_resolver *r = NULL;
    int rc = cm_resolver_new(spec, &o, &r);

    cr_assert_eq(rc, 0, "cm_resolver_new(%s): %s", spec, cm_errname(rc));
    cr_assert_not_null(r);
    return r;
}

static bool has_addr(const struct cm_endpoint *ep, const char *text)
{
    for (size_t i = 0; i < ep->naddrs; i++)
        if (strcmp(ep->addrs[i].text, text) == 0)
            return true;
    return false;
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long)(t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void assert_parse_fails(const char *list)
{
    struct cm_hostport *hps = (struct cm_hostport *)(uintptr_t)0x1;
    size_t n = 77;
    struct cm_resolver *r = NULL;

    cr_assert_eq(cm_endpoints_parse(list, &hps, &n), CM_E_INVAL, "accepted \"%s\"", list);
    cr_assert_eq(hps, (struct cm_hostport *)(uintptr_t)0x1, "wrote *out for \"%s\"", list);
    cr_assert_eq(n, 77);
    cr_assert_eq(cm_resolver_new(list, NULL, &r), CM_E_INVAL, "resolver accepted \"%s\"", list);
    cr_assert_null(r);
}

static struct cm_hostport *parse_ok(const char *list, size_t want_n)
{
    struct cm_hostport *hps = NULL;
    size_t n = 0;
    int rc = cm_endpoints_parse(list, &hps, &n);

    cr_assert_eq(rc, 0, "rejected \"%s\": %s", list, cm_errname(rc));
    cr_assert_eq(n, want_n, "\"%s\": %zu items", list, n);
    return hps;
}

/* ---- list parsing ----------------------------------------------------------------------- */

Test(resolver_parse, good_list)
{
    struct cm_hostport *h = parse_ok("m1.example.org:7000,10.1.2.3:80,m_3-x:65535", 3);

    cr_assert_str_eq(h[0].host, "m1.example.org");
    cr_assert_eq(h[0].port, 7000);
    cr_assert_str_eq(h[1].host, "10.1.2.3");
    cr_assert_eq(h[1].port, 80);
    cr_assert_str_eq(h[2].host, "m_3-x");
    cr_assert_eq(h[2].port, 65535);
    free(h);
    h = parse_ok("a:1", 1);
    cr_assert_str_eq(h[0].host, "a");
    cr_assert_eq(h[0].port, 1);
    free(h);
    h = parse_ok("fqdn.example.:9", 1);
    cr_assert_str_eq(h[0].host, "fqdn.example.");
    free(h);
}

Test(resolver_parse, ipv6_literal)
{
    struct cm_hostport *h = parse_ok("[::1]:7000, [fd00::1:2]:8080", 2);

    cr_assert_str_eq(h[0].host, "::1");
    cr_assert_eq(h[0].port, 7000);
    cr_assert_str_eq(h[1].host, "fd00::1:2");
    cr_assert_eq(h[1].port, 8080);
    free(h);
    assert_parse_fails("::1:7000");   /* unbracketed */
    assert_parse_fails("[::1]");      /* no port */
    assert_parse_fails("[::1]7000");  /* no colon */
    assert_parse_fails("[::g]:7000"); /* not an address */
    assert_parse_fails("[]:7000");    /* empty */
    assert_parse_fails("[::1:7000");  /* unclosed */
    assert_parse_fails("[a.b]:7000"); /* a name in brackets */
}

Test(resolver_parse, whitespace_around_items)
{
    struct cm_hostport *h = parse_ok("  a:1 ,\tb:2\n,c:3  ", 3);

    cr_assert_str_eq(h[0].host, "a");
    cr_assert_str_eq(h[1].host, "b");
    cr_assert_str_eq(h[2].host, "c");
    cr_assert_eq(h[2].port, 3);
    free(h);
    assert_parse_fails("a :1");
    assert_parse_fails("a: 1");
    assert_parse_fails("a b:1");
}

Test(resolver_parse, http_scheme_stripped)
{
    struct cm_hostport *h = parse_ok("http://m1:7000, HTTP://m2:7001/,[::1]:7002", 3);

    cr_assert_str_eq(h[0].host, "m1");
    cr_assert_eq(h[0].port, 7000);
    cr_assert_str_eq(h[1].host, "m2");
    cr_assert_eq(h[1].port, 7001);
    free(h);
    h = parse_ok("http://[::1]:7000", 1);
    cr_assert_str_eq(h[0].host, "::1");
    free(h);
    assert_parse_fails("https://m1:7000");
    assert_parse_fails("ftp://m1:7000");
    assert_parse_fails("http://");
    assert_parse_fails("http://m1:7000/path");
    assert_parse_fails("http://http://m1:7000");
}

Test(resolver_parse, bad_ports)
{
    assert_parse_fails("a:0");
    assert_parse_fails("a:65536");
    assert_parse_fails("a:99999");
    assert_parse_fails("a:123456");
    assert_parse_fails("a:abc");
    assert_parse_fails("a:80x");
    assert_parse_fails("a:-1");
    assert_parse_fails("a:+80");
    assert_parse_fails("a:");
    assert_parse_fails("a:1,b:0");
}

Test(resolver_parse, empty_items)
{
    assert_parse_fails("");
    assert_parse_fails("   ");
    assert_parse_fails(",");
    assert_parse_fails("a:1,,b:2");
    assert_parse_fails("a:1, ,b:2");
    assert_parse_fails("a:1,");
    assert_parse_fails(",a:1");
    assert_parse_fails(":80");
}

Test(resolver_parse, missing_port)
{
    assert_parse_fails("a");
    assert_parse_fails("a.example.org");
    assert_parse_fails("http://a");
    assert_parse_fails("a:1,b");
    assert_parse_fails("10.0.0.1");
}

Test(resolver_parse, host_length_limits)
{
    char host[300], spec[320];
    struct cm_hostport *h;

    /* 253 bytes: labels of 63 + '.' + 63 + '.' + 63 + '.' + 61 */
    memset(host, 'a', 253);
    host[63] = host[127] = host[191] = '.';
    host[253] = '\0';
    snprintf(spec, sizeof(spec), "%s:1", host);
    h = parse_ok(spec, 1);
    cr_assert_eq(strlen(h[0].host), 253);
    free(h);
    /* 254 bytes */
    memset(host, 'a', 254);
    host[63] = host[127] = host[191] = '.';
    host[254] = '\0';
    snprintf(spec, sizeof(spec), "%s:1", host);
    assert_parse_fails(spec);
    /* one label of 64 */
    memset(host, 'b', 64);
    host[64] = '\0';
    snprintf(spec, sizeof(spec), "%s:1", host);
    assert_parse_fails(spec);
}

Test(resolver_parse, bad_host_characters)
{
    assert_parse_fails("a/b:1");
    assert_parse_fails("a@b:1");
    assert_parse_fails("-a:1");
    assert_parse_fails("a-:1");
    assert_parse_fails("a..b:1");
    assert_parse_fails(".a:1");
    assert_parse_fails("a.-b:1");
    assert_parse_fails("é.example:1");
    assert_parse_fails("1.2.3.256:1");
    assert_parse_fails("1.2.3:1");
}

Test(resolver_parse, item_count_limit)
{
    char spec[CM_RESOLVER_MAX_ENDPOINTS * 8 + 16];
    size_t n = 0;
    struct cm_hostport *h;

    for (int i = 0; i < CM_RESOLVER_MAX_ENDPOINTS; i++)
        n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%sh%d:1", i ? "," : "", i);
    h = parse_ok(spec, CM_RESOLVER_MAX_ENDPOINTS);
    cr_assert_str_eq(h[CM_RESOLVER_MAX_ENDPOINTS - 1].host, "h63");
    free(h);
    snprintf(spec + n, sizeof(spec) - n, ",x:1");
    assert_parse_fails(spec);
}

/* ---- resolver construction -------------------------------------------------------------- */

Test(resolver, new_rejects_bad_arguments)
{
    struct cm_resolver *r = NULL;
    struct cm_resolver_opts bad_servers = {.servers = "not-an-ip"};
    struct cm_resolver_opts bad_timeout = {.timeout_ms = -1};

    cr_assert_eq(cm_resolver_new("a:1", &bad_servers, &r), CM_E_INVAL);
    cr_assert_eq(cm_resolver_new("a:1", &bad_timeout, &r), CM_E_INVAL);
    cr_assert_eq(cm_resolver_new(NULL, NULL, &r), CM_E_INVAL);
    cr_assert_eq(cm_resolver_new("srv:", NULL, &r), CM_E_INVAL);
    cr_assert_eq(cm_resolver_new("srv:bad name", NULL, &r), CM_E_INVAL);
    cr_assert_eq(cm_resolver_new("srv:a:1", NULL, &r), CM_E_INVAL);
    cr_assert_null(r);
}

Test(resolver, spec_forms)
{
    struct cm_resolver *r;

    r = new_resolver("_dfs-master._tcp.example.org", NULL, 0);
    cr_assert(cm_resolver_is_srv(r));
    cr_assert_eq(cm_resolver_count(r), 0);
    cm_resolver_free(r);
    r = new_resolver(" srv:masters.example.org ", NULL, 0);
    cr_assert(cm_resolver_is_srv(r));
    cm_resolver_free(r);
    /* An underscore name with a port is a plain list item. */
    r = new_resolver("_x._tcp.example.org:7000", NULL, 0);
    cr_assert_not(cm_resolver_is_srv(r));
    cr_assert_eq(cm_resolver_count(r), 1);
    cm_resolver_free(r);
    cm_resolver_free(NULL);
}

/* ---- resolution without DNS ------------------------------------------------------------- */

Test(resolver, ip_literals_need_no_dns)
{
    uint16_t silent_port;
    int silent = udp_socket_on_loopback(&silent_port); /* never answers */
    char servers[32];
    struct cm_endpoint ep;
    struct cm_resolver *r;
    size_t ok = 99;

    snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)silent_port);
    r = new_resolver("127.0.0.1:7000, http://[::1]:7001", servers, 200);
    cr_assert_eq(cm_resolver_count(r), 2);
    /* Known before any resolve call. */
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, 0);
    cr_assert_eq(ep.naddrs, 1);
    cr_assert_str_eq(ep.addrs[0].text, "127.0.0.1:7000");
    cr_assert_eq(ep.addrs[0].sa.ss_family, AF_INET);
    cr_assert_eq(ep.addrs[0].len, sizeof(struct sockaddr_in));
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ep.addrs[0].sa)->sin_port), 7000);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_str_eq(ep.hp.host, "::1");
    cr_assert_str_eq(ep.addrs[0].text, "[::1]:7001");
    cr_assert_eq(ep.addrs[0].sa.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ep.addrs[0].sa)->sin6_port), 7001);

    cr_assert_eq(cm_resolver_resolve_all(r, &ok), 0);
    cr_assert_eq(ok, 2);
    cr_assert_eq(cm_resolver_resolve_one(r, 1), 0);
    cr_assert_eq(cm_resolver_resolve_one(r, 2), CM_E_RANGE);
    cr_assert_eq(cm_resolver_get(r, 2, &ep), CM_E_RANGE);
    cm_resolver_free(r);
    close(silent);
}

Test(resolver, localhost_from_etc_hosts)
{
    uint16_t silent_port;
    int silent = udp_socket_on_loopback(&silent_port);
    char servers[32];
    struct cm_endpoint ep;
    struct cm_resolver *r;

    /* With a DNS server that never answers: only /etc/hosts can give the answer in time. */
    snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)silent_port);
    r = new_resolver("localhost:7000", servers, 2000);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, CM_E_UNAVAILABLE);
    cr_assert_eq(ep.naddrs, 0);
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), 0);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, 0);
    cr_assert(has_addr(&ep, "127.0.0.1:7000") || has_addr(&ep, "[::1]:7000"),
              "got %zu addrs, first %s", ep.naddrs, ep.naddrs ? ep.addrs[0].text : "-");
    cm_resolver_free(r);
    close(silent);

    /* And with the system configuration. */
    r = new_resolver("localhost:7001", NULL, 2000);
    cr_assert_eq(cm_resolver_resolve_one(r, 0), 0);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert(has_addr(&ep, "127.0.0.1:7001") || has_addr(&ep, "[::1]:7001"));
    cm_resolver_free(r);
}

/* ---- DNS through the fake server -------------------------------------------------------- */

Test(resolver, unresolvable_name_is_resolve_error_and_logged)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("nosuch-host.invalid:7000", d->servers, 3000);
    struct cm_endpoint ep;
    size_t ok = 99;
    int saved = dup(STDERR_FILENO);
    FILE *cap = tmpfile();
    char log[8192];
    size_t nlog;
    int rc;

    cr_assert_not_null(cap);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(cap), STDERR_FILENO), 0);
    rc = cm_resolver_resolve_all(r, &ok);
    dup2(saved, STDERR_FILENO);
    close(saved);

    cr_assert_eq(rc, CM_E_RESOLVE, "got %s", cm_errname(rc));
    cr_assert_eq(ok, 0);
    cr_assert_gt(dns_queries(d), 0, "the fake server was not asked");
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, CM_E_RESOLVE);
    cr_assert_eq(ep.naddrs, 0);
    rewind(cap);
    nlog = fread(log, 1, sizeof(log) - 1, cap);
    log[nlog] = '\0';
    fclose(cap);
    cr_assert(strstr(log, " W ") != NULL, "no warning in: %s", log);
    cr_assert(strstr(log, "nosuch-host.invalid") != NULL, "host not named in: %s", log);

    cr_assert_eq(cm_resolver_resolve_one(r, 0), CM_E_RESOLVE);
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, a_and_aaaa_records)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("db.test:9000,v6only.test:9001", d->servers, 3000);
    struct cm_endpoint ep;
    size_t ok = 0;

    dns_add(d, "db.test", T_A, "10.0.0.1");
    dns_add(d, "db.test", T_A, "10.0.0.2");
    dns_add(d, "db.test", T_AAAA, "fd00::1");
    dns_add(d, "v6only.test", T_AAAA, "fd00::2");
    cr_assert_eq(cm_resolver_resolve_all(r, &ok), 0);
    cr_assert_eq(ok, 2);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.naddrs, 3);
    cr_assert(has_addr(&ep, "10.0.0.1:9000"));
    cr_assert(has_addr(&ep, "10.0.0.2:9000"));
    cr_assert(has_addr(&ep, "[fd00::1]:9000"));
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.naddrs, 1);
    cr_assert_str_eq(ep.addrs[0].text, "[fd00::2]:9001");
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, partial_failure_reports_first_error_and_keeps_the_rest)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r =
        new_resolver("good.test:1,gone.invalid:2,127.0.0.1:3", d->servers, 3000);
    struct cm_endpoint ep;
    size_t ok = 0;

    dns_add(d, "good.test", T_A, "10.9.9.9");
    cr_assert_eq(cm_resolver_resolve_all(r, &ok), CM_E_RESOLVE);
    cr_assert_eq(ok, 2);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.9.9.9:1");
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.last_err, CM_E_RESOLVE);
    cr_assert_eq(cm_resolver_get(r, 2, &ep), 0);
    cr_assert_eq(ep.last_err, 0);
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, srv_ordered_by_priority_then_weight)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("_dfs-master._tcp.test", d->servers, 3000);
    struct cm_endpoint ep;
    size_t ok = 0;

    dns_add(d, "_dfs-master._tcp.test", T_SRV, "20 0 7003 m3.test");
    dns_add(d, "_dfs-master._tcp.test", T_SRV, "10 5 7001 m1.test");
    dns_add(d, "_dfs-master._tcp.test", T_SRV, "30 0 7009 .");
    dns_add(d, "_dfs-master._tcp.test", T_SRV, "10 50 7002 m2.test");
    dns_add(d, "_dfs-master._tcp.test", T_SRV, "5 0 7004 10.0.0.4");
    dns_add(d, "m1.test", T_A, "10.0.0.1");
    dns_add(d, "m2.test", T_A, "10.0.0.2");
    dns_add(d, "m3.test", T_A, "10.0.0.3");

    cr_assert(cm_resolver_is_srv(r));
    cr_assert_eq(cm_resolver_resolve_all(r, &ok), 0);
    cr_assert_eq(ok, 4);
    cr_assert_eq(cm_resolver_count(r), 4); /* "." is not a target */
    const char *hosts[] = {"10.0.0.4", "m2.test", "m1.test", "m3.test"};
    const char *addrs[] = {"10.0.0.4:7004", "10.0.0.2:7002", "10.0.0.1:7001", "10.0.0.3:7003"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(cm_resolver_get(r, i, &ep), 0);
        cr_assert_str_eq(ep.hp.host, hosts[i], "endpoint %zu", i);
        cr_assert_eq(ep.last_err, 0);
        cr_assert_eq(ep.naddrs, 1);
        cr_assert_str_eq(ep.addrs[0].text, addrs[i]);
    }
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, srv_explicit_prefix_and_unresolvable_target)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("srv:masters.test", d->servers, 3000);
    struct cm_endpoint ep;
    size_t ok = 0;

    dns_add(d, "masters.test", T_SRV, "1 0 7001 up.test");
    dns_add(d, "masters.test", T_SRV, "2 0 7002 down.test");
    dns_add(d, "up.test", T_A, "10.0.1.1");
    cr_assert_eq(cm_resolver_resolve_all(r, &ok), CM_E_RESOLVE);
    cr_assert_eq(ok, 1);
    cr_assert_eq(cm_resolver_count(r), 2);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.1.1:7001");
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_str_eq(ep.hp.host, "down.test");
    cr_assert_eq(ep.last_err, CM_E_RESOLVE);
    cr_assert_eq(ep.naddrs, 0);

    /* The target comes up: re-resolving it alone fixes it. */
    dns_add(d, "down.test", T_A, "10.0.1.2");
    cr_assert_eq(cm_resolver_resolve_one(r, 1), 0);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.last_err, 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.1.2:7002");
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, srv_nxdomain_is_resolve_error)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("_dfs-master._tcp.nosuch.invalid", d->servers, 3000);
    size_t ok = 99;

    cr_assert_eq(cm_resolver_resolve_all(r, &ok), CM_E_RESOLVE);
    cr_assert_eq(ok, 0);
    cr_assert_eq(cm_resolver_count(r), 0);
    cr_assert_gt(dns_queries(d), 0);
    /* A name that exists without SRV records is no better. */
    dns_add(d, "_dfs-master._tcp.nosuch.invalid", T_A, "10.0.0.1");
    cr_assert_eq(cm_resolver_resolve_all(r, &ok), CM_E_RESOLVE);
    cr_assert_eq(cm_resolver_count(r), 0);
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, srv_re_resolution_replaces_the_list)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("_m._tcp.test", d->servers, 3000);
    struct cm_endpoint ep;

    dns_add(d, "_m._tcp.test", T_SRV, "1 0 7001 a.test");
    dns_add(d, "_m._tcp.test", T_SRV, "2 0 7002 b.test");
    dns_add(d, "a.test", T_A, "10.0.2.1");
    dns_add(d, "b.test", T_A, "10.0.2.2");
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), 0);
    cr_assert_eq(cm_resolver_count(r), 2);

    dns_clear(d);
    dns_add(d, "_m._tcp.test", T_SRV, "1 0 7002 b.test");
    dns_add(d, "_m._tcp.test", T_SRV, "1 0 7003 c.test");
    dns_add(d, "b.test", T_A, "10.0.2.22");
    dns_add(d, "c.test", T_A, "10.0.2.3");
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), 0);
    cr_assert_eq(cm_resolver_count(r), 2);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.2.22:7002");
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.2.3:7003");

    /* The SRV name vanishes: the list stays as it was. */
    dns_clear(d);
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), CM_E_RESOLVE);
    cr_assert_eq(cm_resolver_count(r), 2);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.2.3:7003");
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, re_resolve_picks_up_a_changed_address)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("10.0.0.9:1,chunk1.test:9000", d->servers, 3000);
    struct cm_endpoint ep;

    dns_add(d, "chunk1.test", T_A, "10.0.3.1");
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), 0);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.naddrs, 1);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.3.1:9000");

    /* The container comes back elsewhere; nothing changes until asked. */
    dns_clear(d);
    dns_add(d, "chunk1.test", T_A, "10.0.3.2");
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.3.1:9000");
    cr_assert_eq(cm_resolver_resolve_one(r, 1), 0);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.naddrs, 1);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.3.2:9000");
    cr_assert_eq(ntohl(((struct sockaddr_in *)&ep.addrs[0].sa)->sin_addr.s_addr), 0x0a000302);

    /* The name disappears: the failure is recorded, the last addresses stay usable. */
    dns_clear(d);
    cr_assert_eq(cm_resolver_resolve_one(r, 1), CM_E_RESOLVE);
    cr_assert_eq(cm_resolver_get(r, 1, &ep), 0);
    cr_assert_eq(ep.last_err, CM_E_RESOLVE);
    cr_assert_eq(ep.naddrs, 1);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.3.2:9000");
    /* The literal endpoint is untouched throughout. */
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_str_eq(ep.addrs[0].text, "10.0.0.9:1");
    cm_resolver_free(r);
    dns_stop(d);
}

Test(resolver, silent_server_times_out_within_the_deadline)
{
    uint16_t port;
    int silent = udp_socket_on_loopback(&port); /* bound, never read: no answer, no ICMP */
    char servers[32];
    struct cm_resolver *r;
    struct cm_endpoint ep;
    struct timespec t0;
    long ms;
    size_t ok = 99;
    int rc;

    snprintf(servers, sizeof(servers), "127.0.0.1:%u", (unsigned)port);
    r = new_resolver("slow.test:1,10.0.0.1:2", servers, 300);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = cm_resolver_resolve_all(r, &ok);
    ms = elapsed_ms(&t0);
    cr_assert_eq(rc, CM_E_TIMEOUT, "got %s", cm_errname(rc));
    cr_assert_eq(ok, 1);
    cr_assert_geq(ms, 250, "gave up early: %ld ms", ms);
    cr_assert_lt(ms, 300 + 700, "took %ld ms", ms);
    cr_assert_eq(cm_resolver_get(r, 0, &ep), 0);
    cr_assert_eq(ep.last_err, CM_E_TIMEOUT);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(cm_resolver_resolve_one(r, 0), CM_E_TIMEOUT);
    cr_assert_lt(elapsed_ms(&t0), 300 + 700);
    cm_resolver_free(r);

    r = new_resolver("_dfs-master._tcp.test", servers, 300);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), CM_E_TIMEOUT);
    cr_assert_lt(elapsed_ms(&t0), 300 + 700);
    cr_assert_eq(cm_resolver_count(r), 0);
    cm_resolver_free(r);
    close(silent);
}

Test(resolver, one_shot_lookup)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("127.0.0.1:1", d->servers, 3000);
    struct cm_addr a[4];
    size_t n = 0;

    dns_add(d, "x.test", T_A, "10.0.4.1");
    dns_add(d, "x.test", T_A, "10.0.4.2");
    cr_assert_eq(cm_resolver_lookup(r, "x.test", 80, a, 4, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(cm_resolver_lookup(r, "x.test", 80, a, 1, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(cm_resolver_lookup(r, "fd00::7", 81, a, 4, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(a[0].text, "[fd00::7]:81");
    cr_assert_eq(cm_resolver_lookup(r, "y.invalid", 80, a, 4, &n), CM_E_RESOLVE);
    cr_assert_eq(cm_resolver_lookup(r, "bad host", 80, a, 4, &n), CM_E_INVAL);
    cr_assert_eq(cm_resolver_lookup(r, "x.test", 0, a, 4, &n), CM_E_INVAL);
    cr_assert_eq(cm_resolver_lookup(r, "x.test", 80, a, 0, &n), CM_E_INVAL);
    cm_resolver_free(r);
    dns_stop(d);
}

/* ---- threads ---------------------------------------------------------------------------- */

#define NTHREADS 4
#define ROUNDS   25

struct worker {
    struct cm_resolver *r;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct cm_endpoint ep;

    for (int i = 0; i < ROUNDS; i++) {
        size_t k = (size_t)i % 3;
        if (cm_resolver_resolve_one(w->r, k) != 0)
            w->failures++;
        if (i % 5 == 0 && cm_resolver_resolve_all(w->r, NULL) != 0)
            w->failures++;
        if (cm_resolver_get(w->r, k, &ep) != 0 || ep.naddrs != 1 ||
            strncmp(ep.addrs[0].text, "10.0.5.", 7) != 0)
            w->failures++;
    }
    return NULL;
}

Test(resolver, concurrent_calls_on_one_resolver)
{
    struct fake_dns *d = dns_start();
    struct cm_resolver *r = new_resolver("a.test:1,b.test:2,c.test:3", d->servers, 3000);
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];

    dns_add(d, "a.test", T_A, "10.0.5.1");
    dns_add(d, "b.test", T_A, "10.0.5.2");
    dns_add(d, "c.test", T_A, "10.0.5.3");
    cr_assert_eq(cm_resolver_resolve_all(r, NULL), 0);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].r = r;
        w[i].failures = 0;
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].failures, 0, "worker %d failed %d times", i, w[i].failures);
    }
    cm_resolver_free(r);
    dns_stop(d);
}
