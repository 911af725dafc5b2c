/* dfs-master's command line: the Master HA design's flags, then run until SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/flags.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/resolver.h"
#include "master/master.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dfs-master --id N --storage-dir DIR [options]\n"
            "\n"
            "A dfs metadata server. Three or five masters form a Raft cluster; clients and\n"
            "chunkservers talk to the leader and follow its hint when they reach a follower.\n"
            "\n"
            "  --id N                    this master's id (a positive integer, unique)\n"
            "  --addr HOST:PORT          client API listener (default %s)\n"
            "  --http-port P             Raft peers and admin (/status, /metrics); default %d\n"
            "  --http-bind HOST          address the --http-port listener binds (default "
            "0.0.0.0)\n"
            "  --peers URL,...           the other masters' Raft URLs, http://host:port; the\n"
            "                            form ID=http://host:port skips asking them their id\n"
            "  --advertise-addr H:P      client address other masters hand out as leader hint\n"
            "                            (default: --addr)\n"
            "  --storage-dir DIR         Raft log, snapshots and state (created if missing)\n"
            "  --election-timeout-ms MS  minimum election timeout; randomized in [MS, 2*MS)\n"
            "                            (default 150)\n"
            "  --heartbeat-ms MS         leader heartbeat interval (default 50)\n"
            "  --snapshot-entries N      snapshot after N log entries (default 10000)\n"
            "  --cs-dead-timeout-s S     a chunkserver silent this long is dead (default 30)\n"
            "  --orphan-grace-s S        a stored block no file references, allocated this long\n"
            "                            ago, is an orphan: deleted, and its commit refused\n"
            "                            (default 3600; clients commit within 20 minutes)\n"
            "  --secret-file FILE        cluster secret every peer, admin and client call carries\n"
            "  --join                    join a running cluster as a non-voter (then add it with\n"
            "                            POST /admin/add-master on the leader)\n"
            "  --no-lease-read           confirm leadership with a heartbeat round for every\n"
            "                            read; by default the leader answers reads at once\n"
            "                            while a majority heard it within 0.9 election timeouts\n"
            "                            (safe unless clock rates differ by 10%%)\n"
            "  --log-level LEVEL         debug, info, warn or error (default info)\n"
            "  --help                    this text\n",
            MASTER_DEFAULT_ADDR, MASTER_DEFAULT_HTTP_PORT);
}

static int bad(const char *flag, const char *value, const char *why)
{
    return cm_flag_error("dfs-master", flag, value, why);
}

static int split_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    if (cm_endpoints_parse(s, &hp, &n) != 0 || n != 1) {
        free(hp);
        return -1;
    }
    snprintf(host, cap, "%s", hp[0].host);
    *port = hp[0].port;
    free(hp);
    return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

int main(int argc, char **argv)
{
    enum {
        O_ID = 1,
        O_ADDR,
        O_HTTP_PORT,
        O_HTTP_BIND,
        O_PEERS,
        O_ADVERTISE,
        O_STORAGE,
        O_ELECTION,
        O_HEARTBEAT,
        O_SNAPSHOT,
        O_CS_DEAD,
        O_ORPHAN_GRACE,
        O_SECRET,
        O_JOIN,
        O_NO_LEASE,
        O_LOG,
        O_HELP,
    };
    static const struct option opts[] = {
        {"id", required_argument, NULL, O_ID},
        {"addr", required_argument, NULL, O_ADDR},
        {"http-port", required_argument, NULL, O_HTTP_PORT},
        {"http-bind", required_argument, NULL, O_HTTP_BIND},
        {"peers", required_argument, NULL, O_PEERS},
        {"advertise-addr", required_argument, NULL, O_ADVERTISE},
        {"storage-dir", required_argument, NULL, O_STORAGE},
        {"election-timeout-ms", required_argument, NULL, O_ELECTION},
        {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
        {"snapshot-entries", required_argument, NULL, O_SNAPSHOT},
        {"cs-dead-timeout-s", required_argument, NULL, O_CS_DEAD},
        {"orphan-grace-s", required_argument, NULL, O_ORPHAN_GRACE},
        {"secret-file", required_argument, NULL, O_SECRET},
        {"join", no_argument, NULL, O_JOIN},
        {"no-lease-read", no_argument, NULL, O_NO_LEASE},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct master_config cfg;
    master_config_default(&cfg);
    enum cm_log_level level = CM_LOG_INFO;
    const char *addr = MASTER_DEFAULT_ADDR, *advertise = NULL;
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ID:
            if (cm_flag_u64(optarg, 1, UINT32_MAX, &v) != 0)
                return bad("--id", optarg, "must be a positive integer");
            cfg.id = v;
            break;
        case O_ADDR:
            addr = optarg;
            break;
        case O_HTTP_PORT:
            if (cm_flag_u64(optarg, 1, 65535, &v) != 0)
                return bad("--http-port", optarg, "must be a port number (1-65535)");
            cfg.http_port = (uint16_t)v;
            break;
        case O_HTTP_BIND:
            snprintf(cfg.http_bind, sizeof(cfg.http_bind), "%s", optarg);
            break;
        case O_PEERS:
            cfg.peers = optarg;
            break;
        case O_ADVERTISE:
            advertise = optarg;
            break;
        case O_STORAGE:
            cfg.storage_dir = optarg;
            break;
        case O_ELECTION:
            if (cm_flag_u64(optarg, 10, 60000, &v) != 0)
                return bad("--election-timeout-ms", optarg, "must be 10-60000");
            cfg.election_timeout_ms = (uint32_t)v;
            break;
        case O_HEARTBEAT:
            if (cm_flag_u64(optarg, 1, 10000, &v) != 0)
                return bad("--heartbeat-ms", optarg, "must be 1-10000");
            cfg.heartbeat_ms = (uint32_t)v;
            break;
        case O_SNAPSHOT:
            if (cm_flag_u64(optarg, 10, UINT32_MAX, &v) != 0)
                return bad("--snapshot-entries", optarg, "must be at least 10");
            cfg.snapshot_entries = v;
            break;
        case O_CS_DEAD:
            if (cm_flag_u64(optarg, 1, 86400, &v) != 0)
                return bad("--cs-dead-timeout-s", optarg, "must be 1-86400");
            cfg.cs_dead_timeout_ms = v * 1000;
            break;
        case O_ORPHAN_GRACE:
            if (cm_flag_u64(optarg, 1, 30 * 86400, &v) != 0)
                return bad("--orphan-grace-s", optarg, "must be 1-2592000");
            if (v < 1200)
                LOG_WARN("--orphan-grace-s %" PRIu64 ": under 1200, a client's commit of blocks "
                         "it stored in time may be refused (BLOCK_EXPIRED)",
                         v);
            cfg.orphan_grace_ms = v * 1000;
            break;
        case O_SECRET:
            cfg.secret_file = optarg;
            break;
        case O_NO_LEASE:
            cfg.no_lease_read = true;
            break;
        case O_JOIN:
            cfg.join = true;
            break;
        case O_LOG:
            if (cm_log_parse_level(optarg, &level) != 0)
                return bad("--log-level", optarg, "must be debug, info, warn or error");
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            return bad(argv[optind - 1], NULL, "unknown option or missing value");
        }
    }
    if (optind < argc)
        return bad(argv[optind], NULL, "unexpected argument");
    if (cfg.id == 0)
        return bad("--id", NULL, "is required");
    if (cfg.storage_dir == NULL)
        return bad("--storage-dir", NULL, "is required");
    if (split_hostport(addr, cfg.addr_host, sizeof(cfg.addr_host), &cfg.addr_port) != 0)
        return bad("--addr", addr, "must be HOST:PORT");
    if (cfg.heartbeat_ms >= cfg.election_timeout_ms)
        return bad("--heartbeat-ms", NULL, "must be below --election-timeout-ms");
    if (advertise != NULL) {
        char h[256];
        uint16_t p;
        if (split_hostport(advertise, h, sizeof(h), &p) != 0)
            return bad("--advertise-addr", advertise, "must be HOST:PORT");
    } else {
        advertise = addr;
    }
    snprintf(cfg.advertise, sizeof(cfg.advertise), "%s", advertise);

    struct stat st;
    if (stat(cfg.storage_dir, &st) != 0 && mkdir(cfg.storage_dir, 0700) != 0)
        return bad("--storage-dir", cfg.storage_dir, strerror(errno));
    if (stat(cfg.storage_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bad("--storage-dir", cfg.storage_dir, "is not a directory");
    if (access(cfg.storage_dir, R_OK | W_OK | X_OK) != 0)
        return bad("--storage-dir", cfg.storage_dir, "is not writable");

    char name[32];
    snprintf(name, sizeof(name), "m%" PRIu64, cfg.id);
    cm_log_init(name, level);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    cfg.stop = &stop_signal;
    struct master *m = NULL;
    int rc = master_start(&cfg, &m);
    if (rc != 0) {
        if (rc == CM_E_CANCELED)
            return 0; /* stopped by a signal while waiting for the peers */
        fprintf(stderr, "dfs-master: cannot start: %s\n", cm_strerror(rc));
        return rc == CM_E_STORE || rc == CM_E_BUSY || rc == CM_E_INVAL ? 2 : 1;
    }
    while (stop_signal == 0)
        pause();
    LOG_INFO("signal %d: stopping", (int)stop_signal);
    master_stop(m);
    return 0;
}
