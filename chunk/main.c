/* dfs-chunkserver's command line: flags, checks that exit with code 2 and a clear message, then
 * run until SIGINT/SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk/chunkserver.h"
#include "chunk/store.h"
#include "common/flags.h"
#include "common/auth.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/resolver.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dfs-chunkserver --master-addr H:P,... --storage-dir DIR [options]\n"
            "\n"
            "A dfs block store: keeps blocks as checksummed files, serves them over HTTP,\n"
            "forwards writes down a replication pipeline and heartbeats to the masters.\n"
            "\n"
            "  --addr HOST:PORT          listen address (default %s)\n"
            "  --advertise-addr H:P      address other nodes reach this one at (default: --addr,\n"
            "                            or the host name when --addr binds every interface)\n"
            "  --master-addr H:P,...     every master (or an SRV name); required\n"
            "  --storage-dir DIR         block files (created if missing); required\n"
            "  --rack NAME               failure domain reported to the masters (default none)\n"
            "  --secret-file FILE        cluster secret carried by and required on requests\n"
            "  --block-size BYTES        largest block accepted (default 64M; K, M, G suffixes)\n"
            "  --journal-size BYTES      small-block journal of a new storage directory\n"
            "                            (default 64M; 0: none, every block synced alone)\n"
            "  --threads N               HTTP worker threads (default %d)\n"
            "  --heartbeat-ms MS         heartbeat period (default %d)\n"
            "  --report-interval-s S     full block report period (default %d; 0: on demand)\n"
            "  --scrub-rate BYTES        scrubber read rate per second (default 8M; 0: off)\n"
            "  --scrub-pause-s S         pause between two scrub passes (default %d)\n"
            "  --pipeline-timeout-ms MS  one transfer to another chunkserver (default %d)\n"
            "  --log-level LEVEL         debug, info, warn or error (default info)\n"
            "  --help                    this text\n",
            CS_DEFAULT_ADDR, CS_DEFAULT_THREADS, CS_DEFAULT_HEARTBEAT_MS, CS_DEFAULT_REPORT_S,
            CS_DEFAULT_SCRUB_PAUSE_S, CS_DEFAULT_PIPELINE_MS);
}

static int bad(const char *flag, const char *value, const char *why)
{
    return cm_flag_error("dfs-chunkserver", flag, value, why);
}

static bool one_endpoint(const char *s)
{
    struct cm_hostport *hp = NULL;
    size_t n = 0;
    bool ok = cm_endpoints_parse(s, &hp, &n) == 0 && n == 1;

    free(hp);
    return ok;
}

/* --addr: a numeric address to bind (names such as localhost are resolved). */
static int parse_listen(const char *addr, struct cs_config *cfg)
{
    struct cm_resolver *r = NULL;
    struct cm_endpoint ep;
    char ip[INET6_ADDRSTRLEN];
    int rc;

    if (cm_resolver_new(addr, NULL, &r) < 0 || cm_resolver_is_srv(r) || cm_resolver_count(r) != 1) {
        cm_resolver_free(r);
        return -1;
    }
    cm_resolver_resolve_all(r, NULL);
    rc = cm_resolver_get(r, 0, &ep);
    cm_resolver_free(r);
    if (rc < 0 || ep.naddrs == 0)
        return -1;
    if (ep.addrs[0].sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ep.addrs[0].sa)->sin_addr, ip, sizeof(ip));
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ep.addrs[0].sa)->sin6_addr, ip, sizeof(ip));
    snprintf(cfg->bind_host, sizeof(cfg->bind_host), "%s", ip);
    cfg->port = ep.hp.port;
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
        O_ADDR = 1,
        O_ADVERTISE,
        O_MASTERS,
        O_STORAGE,
        O_RACK,
        O_SECRET,
        O_BLOCK,
        O_JOURNAL,
        O_THREADS,
        O_HEARTBEAT,
        O_REPORT,
        O_SCRUB_RATE,
        O_SCRUB_PAUSE,
        O_PIPELINE,
        O_LOG,
        O_HELP,
    };
    static const struct option opts[] = {
        {"addr", required_argument, NULL, O_ADDR},
        {"advertise-addr", required_argument, NULL, O_ADVERTISE},
        {"master-addr", required_argument, NULL, O_MASTERS},
        {"storage-dir", required_argument, NULL, O_STORAGE},
        {"rack", required_argument, NULL, O_RACK},
        {"secret-file", required_argument, NULL, O_SECRET},
        {"block-size", required_argument, NULL, O_BLOCK},
        {"journal-size", required_argument, NULL, O_JOURNAL},
        {"threads", required_argument, NULL, O_THREADS},
        {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
        {"report-interval-s", required_argument, NULL, O_REPORT},
        {"scrub-rate", required_argument, NULL, O_SCRUB_RATE},
        {"scrub-pause-s", required_argument, NULL, O_SCRUB_PAUSE},
        {"pipeline-timeout-ms", required_argument, NULL, O_PIPELINE},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct cs_config cfg;
    enum cm_log_level level = CM_LOG_INFO;
    const char *addr = CS_DEFAULT_ADDR, *secret_file = NULL;
    struct cm_resolver *check = NULL;
    struct chunkserver *cs = NULL;
    struct stat st;
    uint64_t v;
    int c, rc;

    cs_config_default(&cfg);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ADDR:
            addr = optarg;
            break;
        case O_ADVERTISE:
            if (!one_endpoint(optarg) || strlen(optarg) >= sizeof(cfg.advertise))
                return bad("--advertise-addr", optarg, "must be HOST:PORT");
            snprintf(cfg.advertise, sizeof(cfg.advertise), "%s", optarg);
            break;
        case O_MASTERS:
            cfg.masters = optarg;
            break;
        case O_STORAGE:
            cfg.storage_dir = optarg;
            break;
        case O_RACK:
            if (strlen(optarg) >= sizeof(cfg.rack))
                return bad("--rack", optarg, "is longer than 63 bytes");
            snprintf(cfg.rack, sizeof(cfg.rack), "%s", optarg);
            break;
        case O_SECRET:
            secret_file = optarg;
            break;
        case O_BLOCK:
            if (cm_flag_size(optarg, CS_MIN_BLOCK_SIZE, CS_MAX_BLOCK_SIZE, &v) != 0)
                return bad("--block-size", optarg, "must be 64K to 1G");
            cfg.block_size = v;
            break;
        case O_JOURNAL:
            if (strcmp(optarg, "0") == 0)
                v = 0;
            else if (cm_flag_size(optarg, 1024 * 1024, 1ULL << 32, &v) != 0)
                return bad("--journal-size", optarg, "must be 0 or 1M to 4G");
            cfg.journal_bytes = v;
            break;
        case O_THREADS:
            if (cm_flag_u64(optarg, 1, 256, &v) != 0)
                return bad("--threads", optarg, "must be 1-256");
            cfg.threads = (unsigned)v;
            break;
        case O_HEARTBEAT:
            if (cm_flag_u64(optarg, 10, 600000, &v) != 0)
                return bad("--heartbeat-ms", optarg, "must be 10-600000");
            cfg.heartbeat_ms = (uint32_t)v;
            break;
        case O_REPORT:
            if (cm_flag_u64(optarg, 0, 7 * 86400, &v) != 0)
                return bad("--report-interval-s", optarg, "must be 0-604800");
            cfg.report_interval_s = (uint32_t)v;
            break;
        case O_SCRUB_RATE:
            if (cm_flag_size(optarg, 0, UINT64_MAX / 1000, &v) != 0)
                return bad("--scrub-rate", optarg, "must be a byte count");
            cfg.scrub_rate = v;
            break;
        case O_SCRUB_PAUSE:
            if (cm_flag_u64(optarg, 0, 30 * 86400, &v) != 0)
                return bad("--scrub-pause-s", optarg, "must be 0-2592000");
            cfg.scrub_pause_ms = (uint32_t)(v * 1000);
            break;
        case O_PIPELINE:
            if (cm_flag_u64(optarg, 100, 3600000, &v) != 0)
                return bad("--pipeline-timeout-ms", optarg, "must be 100-3600000");
            cfg.pipeline_timeout_ms = (long)v;
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
    if (cfg.masters == NULL)
        return bad("--master-addr", NULL, "is required");
    if (cm_resolver_new(cfg.masters, NULL, &check) < 0)
        return bad("--master-addr", cfg.masters, "must be HOST:PORT,... or an SRV name");
    cm_resolver_free(check);
    if (cfg.storage_dir == NULL)
        return bad("--storage-dir", NULL, "is required");
    if (parse_listen(addr, &cfg) != 0)
        return bad("--addr", addr, "must be HOST:PORT with a resolvable host");
    if (secret_file != NULL) {
        rc = cm_secret_load(secret_file, &cfg.secret);
        if (rc < 0)
            return bad("--secret-file", secret_file, cm_strerror(rc));
    }
    if (stat(cfg.storage_dir, &st) != 0 && mkdir(cfg.storage_dir, 0755) != 0)
        return bad("--storage-dir", cfg.storage_dir, strerror(errno));
    if (stat(cfg.storage_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bad("--storage-dir", cfg.storage_dir, "is not a directory");
    if (access(cfg.storage_dir, R_OK | W_OK | X_OK) != 0)
        return bad("--storage-dir", cfg.storage_dir, "is not writable");

    cm_log_init("cs", level);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = cs_start(&cfg, &cs);
    if (rc < 0) {
        /* The store's directory, its format or lock, or the listen address: all configuration. */
        fprintf(stderr, "dfs-chunkserver: cannot start: %s (see the log above)\n", cm_strerror(rc));
        return 2;
    }
    while (stop_signal == 0)
        pause();
    LOG_INFO("signal %d: stopping", (int)stop_signal);
    cs_stop(cs);
    return 0;
}
