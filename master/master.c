/* dfs-master's lifecycle: listeners, the one-time bootstrap of a new cluster's configuration,
 * and the Raft node with its state machine. */
#include "master/master.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/log.h"
#include "common/resolver.h"
#include "master/raft_wire.h"

uint64_t master_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void master_config_default(struct master_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->addr_host, sizeof(cfg->addr_host), "0.0.0.0");
    cfg->addr_port = 50051;
    cfg->http_port = MASTER_DEFAULT_HTTP_PORT;
    snprintf(cfg->http_bind, sizeof(cfg->http_bind), "0.0.0.0");
    cfg->election_timeout_ms = 150;
    cfg->heartbeat_ms = 50;
    cfg->snapshot_entries = 10000;
    cfg->cs_dead_timeout_ms = CS_DEFAULT_DEAD_TIMEOUT_MS;
    cfg->orphan_grace_ms = CS_ORPHAN_GRACE_MS;
}

cJSON *master_leader_hint(struct master *m)
{
    raft_id leader = 0;
    bool self = false;
    char buf[RAFT_ADDR_MAX];
    if (m->node != NULL)
        rn_leader(m->node, &leader, &self);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cm_json_add_u64(o, "leader_id", leader);
    if (leader != 0 && rt_get_advertise(m->tr, leader, buf, sizeof(buf)) == 0)
        cJSON_AddStringToObject(o, "leader_hint", buf);
    if (leader != 0 && !self && rt_get_url(m->tr, leader, buf, sizeof(buf)) == 0)
        cJSON_AddStringToObject(o, "leader_url", buf);
    return o;
}

/* One peer item of --peers: "http://host:port" or "ID=http://host:port". */
struct peer_spec {
    raft_id id; /* 0 until learned */
    char url[RAFT_ADDR_MAX];
};

static int parse_peers(const char *s, struct peer_spec *out, size_t cap, size_t *n_out)
{
    size_t n = 0;
    if (s == NULL || *s == 0) {
        *n_out = 0;
        return 0;
    }
    char *copy = strdup(s), *save = NULL;
    if (copy == NULL)
        return CM_E_NOMEM;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (n == cap) {
            free(copy);
            return CM_E_INVAL;
        }
        struct peer_spec *p = &out[n];
        p->id = 0;
        char *eq = strchr(tok, '=');
        if (eq != NULL) {
            char *end;
            errno = 0;
            unsigned long long id = strtoull(tok, &end, 10);
            if (end != eq || id == 0 || errno != 0) {
                free(copy);
                return CM_E_INVAL;
            }
            p->id = id;
            tok = eq + 1;
        }
        if (strlen(tok) == 0 || strlen(tok) >= RAFT_ADDR_MAX) {
            free(copy);
            return CM_E_INVAL;
        }
        snprintf(p->url, sizeof(p->url), "%s", tok);
        struct cm_hostport *hp = NULL;
        size_t k = 0;
        if (cm_endpoints_parse(p->url, &hp, &k) != 0 || k != 1) {
            free(hp);
            free(copy);
            return CM_E_INVAL;
        }
        free(hp);
        n++;
    }
    free(copy);
    *n_out = n;
    return 0;
}

/* Asks each peer without a known id for it (GET /raft/hello), until all have answered. */
static int learn_peer_ids(struct master *m, struct peer_spec *peers, size_t n)
{
    struct cm_http_client_config cc = {
        .connect_timeout_ms = 500, .timeout_ms = 1000, .secret = &m->secret};
    struct cm_http_client *c = NULL;
    int rc = cm_http_client_new(&cc, &c);
    if (rc != 0)
        return rc;
    uint64_t last_log = 0;
    for (;;) {
        size_t missing = 0;
        for (size_t i = 0; i < n; i++) {
            if (peers[i].id != 0)
                continue;
            char url[RAFT_ADDR_MAX + 32];
            const char *u = peers[i].url;
            snprintf(url, sizeof(url), "%s%s%s", strncmp(u, "http://", 7) ? "http://" : "", u,
                     RW_PATH_HELLO);
            struct cm_http_response r = {0};
            uint64_t id = 0;
            if (cm_http_get_json(c, url, &r) == 0 && cm_json_get_u64(r.json, "id", &id) == 0 &&
                id != 0) {
                if (id == m->cfg.id) {
                    LOG_ERROR("peer %s answers with our own id %" PRIu64
                              "; every master needs its own --id",
                              u, id);
                    cm_http_response_clear(&r);
                    cm_http_client_free(c);
                    return CM_E_INVAL;
                }
                peers[i].id = id;
                LOG_INFO("peer %s is node %" PRIu64, u, id);
            } else {
                missing++;
            }
            cm_http_response_clear(&r);
        }
        if (missing == 0)
            break;
        if (master_now_ms() - last_log > 5000) {
            LOG_INFO("waiting for %zu peer(s) to answer at %s (needed once, when a cluster "
                     "forms)",
                     missing, RW_PATH_HELLO);
            last_log = master_now_ms();
        }
        if (m->cfg.stop != NULL && *m->cfg.stop != 0) {
            cm_http_client_free(c);
            return CM_E_CANCELED;
        }
        usleep(200 * 1000);
    }
    cm_http_client_free(c);
    return 0;
}

/* The configuration a new cluster starts with: this node and its peers, all voters; or, when
 * joining, the peers as voters and this node as a non-voter the leader will add. */
static int bootstrap_conf(struct master *m, struct raft_conf *conf)
{
    int rc = rs_get_bootstrap(m->store, conf);
    if (rc != CM_E_NOENT)
        return rc;
    struct peer_spec peers[RAFT_MAX_NODES];
    size_t n = 0;
    if ((rc = parse_peers(m->cfg.peers, peers, RAFT_MAX_NODES - 1, &n)) != 0) {
        LOG_ERROR("--peers: expected http://host:port[,...] or ID=http://host:port[,...]");
        return rc;
    }
    if ((rc = learn_peer_ids(m, peers, n)) != 0)
        return rc;
    memset(conf, 0, sizeof(*conf));
    conf->nodes[0].id = m->cfg.id;
    conf->nodes[0].voter = !m->cfg.join;
    conf->n = 1;
    for (size_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < conf->n; k++) {
            if (conf->nodes[k].id == peers[i].id) {
                LOG_ERROR("--peers: node id %" PRIu64 " appears twice", peers[i].id);
                return CM_E_INVAL;
            }
        }
        struct raft_node *rn = &conf->nodes[conf->n++];
        rn->id = peers[i].id;
        rn->voter = true;
        snprintf(rn->addr, sizeof(rn->addr), "%s", peers[i].url);
    }
    if ((rc = rs_set_bootstrap(m->store, conf)) != 0)
        return rc;
    LOG_INFO("cluster configuration recorded: %u master(s)%s", conf->n,
             m->cfg.join ? ", joining as non-voter" : "");
    return 0;
}

static int start_server(struct master *m, const char *bind, uint16_t port, size_t max_body,
                        int (*add)(struct master *, struct cm_http_server *),
                        int (*add2)(struct master *, struct cm_http_server *),
                        struct cm_http_server **out)
{
    struct cm_http_server_config sc = {
        .bind_addr = bind,
        .port = port,
        .threads = 2,
        .max_body = max_body,
        .secret = &m->secret,
    };
    int rc = cm_http_server_new(&sc, out);
    if (rc == 0)
        rc = add(m, *out);
    if (rc == 0 && add2 != NULL)
        rc = add2(m, *out);
    if (rc == 0)
        rc = cm_http_server_start(*out);
    if (rc != 0)
        LOG_ERROR("cannot listen on %s:%u: %s", bind, port, cm_strerror(rc));
    return rc;
}

/* A peer's reply that came back in the answer to our request (raft_transport.c). */
static void deliver_reply(void *ctx, const struct raft_msg *const *ms, size_t n)
{
    struct master *m = ctx;
    if (atomic_load(&m->ready)) /* the node runs (set after rn_start, cleared before rn_stop) */
        rn_receive_many(m->node, ms, n);
}

int master_start(const struct master_config *cfg, struct master **out)
{
    int rc;
    struct master *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return CM_E_NOMEM;
    m->cfg = *cfg;
    m->started_ms = master_now_ms();
    atomic_init(&m->ready, false);

    if (cfg->secret_file != NULL && (rc = cm_secret_load(cfg->secret_file, &m->secret)) != 0) {
        LOG_ERROR("--secret-file %s: %s", cfg->secret_file, cm_strerror(rc));
        goto fail;
    }
    if ((rc = rs_open(cfg->storage_dir, &m->store)) != 0) {
        LOG_ERROR("--storage-dir %s: %s", cfg->storage_dir, cm_strerror(rc));
        goto fail;
    }
    if ((rc = kv_new(&m->kv)) != 0 || (rc = ns_new(NULL, &m->ns)) != 0 ||
        (rc = cs_registry_new(cfg->cs_dead_timeout_ms, &m->cs)) != 0)
        goto fail;
    m->fsm = (struct master_fsm){.kv = m->kv, .ns = m->ns, .cs = m->cs};
    struct rt_config tc = {.self = cfg->id,
                           .advertise = cfg->advertise,
                           .secret = &m->secret,
                           .deliver = deliver_reply,
                           .deliver_ctx = m};
    if ((rc = rt_new(&tc, &m->tr)) != 0)
        goto fail;
    /* The peer listener first: other masters may be waiting for our /raft/hello. */
    if ((rc = start_server(m, cfg->http_bind, cfg->http_port, RW_MAX_APPEND_BODY,
                           master_add_peer_routes, master_add_admin_routes, &m->peer_srv)) != 0)
        goto fail;

    struct rn_config nc = {0};
    raft_config_default(&nc.raft);
    nc.raft.id = cfg->id;
    nc.raft.election_timeout_min = cfg->election_timeout_ms;
    nc.raft.election_timeout_max = 2 * cfg->election_timeout_ms;
    nc.raft.heartbeat_interval = cfg->heartbeat_ms;
    nc.raft.snapshot_threshold = cfg->snapshot_entries;
    nc.raft.lease_read = !cfg->no_lease_read;
    if (nc.raft.snapshot_trailing > cfg->snapshot_entries)
        nc.raft.snapshot_trailing = cfg->snapshot_entries / 2;
    if ((rc = bootstrap_conf(m, &nc.initial)) != 0)
        goto fail;
    nc.store = m->store;
    m->store = NULL; /* the node owns it now */
    struct rn_fsm fsm = master_fsm_ops(&m->fsm);
    struct rn_transport tr = {
        .ctx = m->tr, .send = rt_send, .conf_changed = rt_conf_changed, .flush = rt_flush};
    rt_set_conf(m->tr, &nc.initial);
    if ((rc = rn_start(&nc, &fsm, &tr, &m->node)) != 0) {
        LOG_ERROR("cannot start the Raft node: %s", cm_strerror(rc));
        goto fail;
    }
    if ((rc = bh_start(
             m, cfg->cs_dead_timeout_ms ? cfg->cs_dead_timeout_ms : CS_DEFAULT_DEAD_TIMEOUT_MS,
             &m->health)) != 0)
        goto fail;
    atomic_store(&m->ready, true);

    if ((rc = start_server(m, cfg->addr_host, cfg->addr_port, 1 << 20, master_add_client_routes,
                           NULL, &m->client_srv)) != 0)
        goto fail;
    LOG_INFO("master %" PRIu64 " serving clients on %s:%u, peers and admin on port %u", cfg->id,
             cfg->addr_host, cfg->addr_port, cfg->http_port);
    *out = m;
    return 0;
fail:
    master_stop(m);
    return rc;
}

void master_stop(struct master *m)
{
    if (m == NULL)
        return;
    atomic_store(&m->ready, false);
    cm_http_server_stop(m->client_srv);
    cm_http_server_stop(m->peer_srv);
    bh_stop(m->health); /* it reads the node, the namespace and the registry */
    if (m->tr != NULL)
        rt_stop_replies(m->tr); /* it gives the node peers' replies */
    rn_stop(m->node);
    rt_free(m->tr);
    cm_http_server_free(m->client_srv);
    cm_http_server_free(m->peer_srv);
    rs_close(m->store);
    kv_free(m->kv);
    ns_free(m->ns);
    cs_registry_free(m->cs);
    free(m);
}
