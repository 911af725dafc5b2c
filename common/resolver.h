/* Turns endpoint specs ("host:port,..." lists or DNS SRV names) into socket addresses with c-ares,
 * under a deadline, and re-resolves them on demand. Blocking; never connects to the endpoints. */
#ifndef DFS_COMMON_RESOLVER_H
#define DFS_COMMON_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest host name accepted (RFC 1035 presentation form without the trailing dot). */
#define CM_HOST_MAX 253
/* Most endpoints a list or an SRV answer may give; longer lists are CM_E_INVAL, extra SRV
 * records are dropped after ordering. */
#define CM_RESOLVER_MAX_ENDPOINTS 64
/* Most addresses kept per endpoint; further addresses of a name are dropped. */
#define CM_RESOLVER_MAX_ADDRS 8
/* Room for "[<IPv6 text>]:65535" plus the NUL. */
#define CM_ADDR_TEXT_MAX 56
/* Deadline of one resolve call when cm_resolver_opts.timeout_ms is 0. */
#define CM_RESOLVER_DEFAULT_TIMEOUT_MS 5000

/* One item of an endpoint list. host is NUL-terminated, holds no brackets for IPv6 literals. */
struct cm_hostport {
    char host[CM_HOST_MAX + 1];
    uint16_t port;
};

/* One resolved socket address, with the endpoint's port already set. text is "1.2.3.4:80" or
 * "[::1]:80". */
struct cm_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char text[CM_ADDR_TEXT_MAX];
};

/* An endpoint and what is known of its addresses; a value the caller owns (see
 * cm_resolver_get). addrs are those of the last successful resolution, in the preferred
 * connection order (RFC 6724, as c-ares sorts them); a later failed attempt keeps them and only
 * sets last_err. last_err is 0 after a success, CM_E_UNAVAILABLE before the first attempt, and
 * otherwise the error of the last attempt (CM_E_RESOLVE, CM_E_TIMEOUT, CM_E_NOMEM). IP literals
 * are resolved from the start. */
struct cm_endpoint {
    struct cm_hostport hp;
    int last_err;
    size_t naddrs;
    struct cm_addr addrs[CM_RESOLVER_MAX_ADDRS];
};

struct cm_resolver_opts {
    /* DNS servers as "ip[:port],...", e.g. "127.0.0.1:5353" or "[::1]:53" (the form of c-ares'
     * ares_set_servers_ports_csv). NULL or "" uses the system configuration (/etc/resolv.conf).
     * /etc/hosts is consulted first either way, so "localhost" needs no DNS server. Copied. */
    const char *servers;
    /* Deadline in milliseconds of each resolve call as a whole (the SRV query and all address
     * queries of that call together); 0 means CM_RESOLVER_DEFAULT_TIMEOUT_MS. */
    int timeout_ms;
};

/* Parses an endpoint list "host:port,host:port,...". Items are separated by commas with optional
 * whitespace around them; each item may carry an "http://" prefix (any case) and one trailing
 * "/", both ignored. host is a name of at most CM_HOST_MAX bytes made of labels of 1-63 letters,
 * digits, '-' or '_' separated by dots (one trailing dot allowed; a label neither starts nor
 * ends with '-'), an IPv4 literal, or an IPv6 literal in brackets ("[::1]:7000"). port is
 * decimal 1-65535. Empty items, a missing port, more than CM_RESOLVER_MAX_ENDPOINTS items or
 * anything else are CM_E_INVAL, with nothing allocated and *out untouched.
 * On success *out is a malloc'd array of *n_out (>= 1) items; the caller frees it with free().
 * Returns 0, CM_E_INVAL or CM_E_NOMEM. Does no I/O. */
int cm_endpoints_parse(const char *list, struct cm_hostport **out, size_t *n_out);

/* A set of endpoints with their last resolved addresses. Opaque; every function below may be
 * called from several threads at once on the same resolver (except cm_resolver_free). */
struct cm_resolver;

/* Creates a resolver for spec, which is one of:
 *   - an SRV name: "srv:<name>", or a name of the form "_service._proto.domain" (its first two
 *     labels start with '_' and it has no port and no comma), e.g. "_dfs-master._tcp.example.org".
 *     The endpoint list is empty until cm_resolver_resolve_all has queried the SRV records;
 *   - otherwise an endpoint list in the form of cm_endpoints_parse.
 * Does no DNS I/O: IP literals get their address at once, names on the first resolve call.
 * opts may be NULL (system DNS, default timeout). On success *out is a new resolver the caller
 * frees with cm_resolver_free. Returns 0, CM_E_INVAL (bad spec, bad opts.servers, negative
 * timeout) or CM_E_NOMEM; nothing is allocated on error. */
int cm_resolver_new(const char *spec, const struct cm_resolver_opts *opts,
                    struct cm_resolver **out);

/* Frees r. NULL is a no-op. No other call on r may be running. */
void cm_resolver_free(struct cm_resolver *r);

/* true when r was created from an SRV name. */
bool cm_resolver_is_srv(const struct cm_resolver *r);

/* Resolves every endpoint, all queries in parallel under one deadline. For an SRV resolver it
 * first queries the SRV records and, when that succeeds, replaces the endpoint list with their
 * targets ordered by priority (ascending), then weight (descending), then target name and port
 * (targets "." and port 0 are skipped; no random weighting); endpoints that were already known
 * keep their addresses until re-resolved. A failed SRV query leaves the list as it was.
 * Returns 0 when every endpoint resolved. Otherwise the endpoints that resolved are updated, the
 * others keep their old addresses and record last_err, and the error of the first failing
 * endpoint (or of the SRV query) is returned: CM_E_RESOLVE (no such name or no address, logged
 * with LOG_WARN naming the host), CM_E_TIMEOUT (deadline passed), CM_E_NOMEM. *n_ok (may be
 * NULL) receives the number of endpoints resolved by this call in every case. */
int cm_resolver_resolve_all(struct cm_resolver *r, size_t *n_ok);

/* Re-resolves endpoint i alone, e.g. after connecting to it failed (a restarted container may
 * have a new address). Same results as for one endpoint of cm_resolver_resolve_all, plus
 * CM_E_RANGE when i >= cm_resolver_count(r). If a concurrent cm_resolver_resolve_all of an SRV
 * resolver replaced the list meanwhile, the result is stored in the endpoint with the same host
 * and port, if it is still there. */
int cm_resolver_resolve_one(struct cm_resolver *r, size_t i);

/* Number of endpoints now. Fixed for a list resolver; for an SRV resolver 0 before the first
 * successful cm_resolver_resolve_all and changed by each later one, so indexes are only
 * meaningful until the next cm_resolver_resolve_all. */
size_t cm_resolver_count(struct cm_resolver *r);

/* Copies endpoint i (host, port, last_err and addresses) into *out, consistently even while
 * other threads re-resolve. Returns 0 or CM_E_RANGE. */
int cm_resolver_get(struct cm_resolver *r, size_t i, struct cm_endpoint *out);

/* One-shot lookup of host (a name or an IP literal, no brackets) with r's DNS servers and
 * timeout; r's endpoints are neither used nor changed. Writes at most min(cap,
 * CM_RESOLVER_MAX_ADDRS) addresses with port set into addrs and their number into *n_out. Returns
 * 0, CM_E_INVAL (bad host, port 0, cap 0), CM_E_RESOLVE, CM_E_TIMEOUT or CM_E_NOMEM. */
int cm_resolver_lookup(struct cm_resolver *r, const char *host, uint16_t port,
                       struct cm_addr *addrs, size_t cap, size_t *n_out);

#endif
