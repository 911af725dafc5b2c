/* dfs: mounts a dfs cluster with FUSE.
 *   dfs MASTERS MOUNTPOINT [-f] [-d] [-s] [-o opt,...]
 * also run by mount(8) as `mount -t fuse.dfs MASTERS MOUNTPOINT -o opts` and from /etc/fstab. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/auth.h"
#include "common/errors.h"
#include "common/log.h"
#include "fuse/dfs_fuse.h"

enum { KEY_HELP, KEY_VERSION, KEY_DISCARD };

#define OPT(t, f)                                                                                  \
    {                                                                                              \
        t, offsetof(struct fz_options, f), 0                                                       \
    }
static const struct fuse_opt opt_spec[] = {
    OPT("masters=%s", masters),
    OPT("secret_file=%s", secret_file),
    OPT("log_level=%s", log_level),
    OPT("attr_timeout=%lf", attr_timeout),
    OPT("entry_timeout=%lf", entry_timeout),
    OPT("negative_timeout=%lf", negative_timeout),
    OPT("block_size=%u", block_size),
    OPT("replication=%u", replication),
    OPT("op_timeout=%u", op_timeout_s),
    OPT("dir_cache=%u", dir_cache),
    OPT("commit_age=%u", commit_age_s),
    OPT("readahead_mb=%u", readahead_mb),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    /* What mount(8) and fstab pass that means nothing to FUSE itself. */
    FUSE_OPT_KEY("_netdev", KEY_DISCARD),
    FUSE_OPT_KEY("nofail", KEY_DISCARD),
    FUSE_OPT_KEY("noauto", KEY_DISCARD),
    FUSE_OPT_KEY("auto", KEY_DISCARD),
    FUSE_OPT_KEY("user", KEY_DISCARD),
    FUSE_OPT_KEY("users", KEY_DISCARD),
    FUSE_OPT_KEY("nouser", KEY_DISCARD),
    FUSE_OPT_KEY("defaults", KEY_DISCARD),
    FUSE_OPT_KEY("comment=", KEY_DISCARD),
    FUSE_OPT_KEY("x-systemd.", KEY_DISCARD),
    FUSE_OPT_END,
};

/* What fuse_opt_parse fills: the options first, so that the offsets above apply. */
struct parse_state {
    struct fz_options o;
    bool help, version;
    char *masters_arg;
};

static int parse_key(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct parse_state *p = data;

    (void)outargs;
    switch (key) {
    case KEY_HELP:
        p->help = true;
        return 0;
    case KEY_VERSION:
        p->version = true;
        return 0;
    case KEY_DISCARD:
        return 0;
    case FUSE_OPT_KEY_NONOPT:
        if (p->masters_arg == NULL && p->o.masters == NULL) {
            p->masters_arg = strdup(arg);
            return 0;
        }
        return 1; /* the mountpoint, for fuse_parse_cmdline */
    default:
        return 1;
    }
}

static void usage(const char *prog)
{
    printf("usage: %s MASTERS MOUNTPOINT [options]\n"
           "Mounts the dfs cluster whose masters are MASTERS (host:port,host:port,... or a DNS\n"
           "SRV name such as _dfs-master._tcp.example.org) at MOUNTPOINT.\n"
           "\n"
           "dfs options (-o name=value):\n"
           "    -o masters=LIST          the masters, instead of the first argument\n"
           "    -o secret_file=FILE      the cluster secret\n"
           "    -o attr_timeout=SECONDS  how long the kernel caches attributes (default 1)\n"
           "    -o entry_timeout=SECONDS how long the kernel caches names (default 1)\n"
           "    -o negative_timeout=SECONDS  how long it remembers a name is absent\n"
           "                             (default: entry_timeout)\n"
           "    -o block_size=BYTES      block size of new data (default 64 MiB)\n"
           "    -o replication=N         copies of each new block (default 3)\n"
           "    -o op_timeout=SECONDS    an operation fails after this long without a\n"
           "                             leader (default 60)\n"
           "    -o dir_cache=0|1         lookups of many names in one directory are answered\n"
           "                             from its listing, fetched at most the smallest of\n"
           "                             the three timeouts ago (default 1)\n"
           "    -o commit_age=SECONDS    blocks a file kept open has stored are committed\n"
           "                             once this old, without a write or close (default\n"
           "                             600, at most 1200: the masters refuse commits of\n"
           "                             blocks an orphan grace old)\n"
           "    -o readahead_mb=MIB      read buffers all open files may hold together\n"
           "                             (16 MiB per sequential reader; default 256)\n"
           "    -o log_level=LEVEL       debug, info, warn, error (default warn)\n"
           "Generic mount options (allow_other, ro, noatime, _netdev, ...) are accepted;\n"
           "default_permissions is always on: modes and owners are enforced.\n"
           "\n",
           prog);
}

static int mount_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "dfs: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 1;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts copts = {0};
    struct fuse_loop_config *lcfg = NULL;
    struct fuse_session *se = NULL;
    struct cm_secret secret = {0};
    struct dfs_options dopt = {0};
    struct parse_state ps = {0};
    struct fz z = {0};
    pthread_t aging_thread;
    bool aging = false;
    enum cm_log_level level = CM_LOG_WARN;
    struct stat st;
    struct dfs *probe = NULL;
    int rc, ret = 1;

    ps.o.attr_timeout = 1.0;
    ps.o.entry_timeout = 1.0;
    ps.o.negative_timeout = NAN; /* not given */
    ps.o.dir_cache = 1;
    ps.o.commit_age_s = DFS_PEND_MAX_AGE_MS / 1000;
    ps.o.readahead_mb = DFS_DEFAULT_READAHEAD_BUDGET >> 20;
    if (fuse_opt_parse(&args, &ps, opt_spec, parse_key) != 0)
        return 2;
    if (isnan(ps.o.negative_timeout))
        ps.o.negative_timeout = ps.o.entry_timeout;
    z.opt = ps.o;
    if (ps.help) {
        usage(argv[0]);
        fuse_cmdline_help();
        fuse_lowlevel_help();
        ret = 0;
        goto out_args;
    }
    if (ps.version) {
        printf("dfs version 0.1, FUSE library version %s\n", fuse_pkgversion());
        ret = 0;
        goto out_args;
    }
    if (z.opt.masters == NULL)
        z.opt.masters = ps.masters_arg;
    if (fuse_parse_cmdline(&args, &copts) != 0) {
        ret = 2;
        goto out_args;
    }
    if (z.opt.masters == NULL || copts.mountpoint == NULL) {
        fprintf(stderr, "usage: %s MASTERS MOUNTPOINT [options]; try '%s --help'\n", argv[0],
                argv[0]);
        ret = 2;
        goto out_args;
    }
    if (stat(copts.mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ret = mount_error("bad mountpoint %s: %s", copts.mountpoint,
                          errno ? strerror(errno) : "not a directory");
        goto out_args;
    }
    if (z.opt.log_level != NULL && cm_log_parse_level(z.opt.log_level, &level) != 0) {
        ret = mount_error("bad log_level %s%s", z.opt.log_level, "");
        goto out_args;
    }
    if (z.opt.attr_timeout < 0 || z.opt.entry_timeout < 0 || z.opt.negative_timeout < 0) {
        ret = mount_error("attr_timeout, entry_timeout and negative_timeout cannot be "
                          "negative%s%s",
                          "", "");
        goto out_args;
    }
    if (z.opt.commit_age_s < 1 || z.opt.commit_age_s > 1200) {
        char v[16];
        snprintf(v, sizeof(v), "%u", z.opt.commit_age_s);
        ret = mount_error("bad commit_age %s: 1 to 1200 seconds%s", v, "");
        goto out_args;
    }
    if (z.opt.readahead_mb < 8 || z.opt.readahead_mb > 1048576) {
        char v[16];
        snprintf(v, sizeof(v), "%u", z.opt.readahead_mb);
        ret = mount_error("bad readahead_mb %s: 8 to 1048576 MiB%s", v, "");
        goto out_args;
    }
    cm_log_init("dfs", copts.debug ? CM_LOG_DEBUG : level);
    if (z.opt.secret_file != NULL && (rc = cm_secret_load(z.opt.secret_file, &secret)) != 0) {
        ret = mount_error("secret_file %s: %s", z.opt.secret_file, cm_strerror(rc));
        goto out_args;
    }
    dopt.secret = &secret;
    dopt.block_size = z.opt.block_size;
    dopt.replication = z.opt.replication;
    dopt.op_timeout_ms = (long)z.opt.op_timeout_s * 1000;
    dopt.readahead_budget = (size_t)z.opt.readahead_mb << 20;
    if (z.opt.dir_cache) {
        /* A listing is as old as the kernel may keep what it tells: the shortest timeout. */
        double t = z.opt.entry_timeout;
        if (z.opt.negative_timeout < t)
            t = z.opt.negative_timeout;
        if (z.opt.attr_timeout < t)
            t = z.opt.attr_timeout;
        dopt.dir_cache_ms = (long)((t < 60.0 ? t : 60.0) * 1000);
    }

    /* Say so now, not at the first ls, when the cluster cannot be reached. */
    struct dfs_options popt = dopt;
    struct dfs_attr root;
    popt.op_timeout_ms =
        dopt.op_timeout_ms > 0 && dopt.op_timeout_ms < 15000 ? dopt.op_timeout_ms : 15000;
    if (z.opt.replication > DFS_MAX_REPLICAS ||
        (z.opt.block_size != 0 && z.opt.block_size < 65536)) {
        ret = mount_error("replication must be 1-8 and block_size at least 65536%s%s", "", "");
        goto out_args;
    }
    if ((rc = dfs_open(z.opt.masters, &popt, &probe)) != 0) {
        ret = mount_error("bad master list %s: %s", z.opt.masters, cm_strerror(rc));
        goto out_args;
    }
    rc = dfs_getattr(probe, NULL, (struct dfs_fh){DFS_ROOT_INO, DFS_ROOT_GEN}, &root);
    dfs_close(probe);
    if (rc != 0) {
        ret = mount_error("cannot reach the cluster at %s: %s", z.opt.masters, cm_strerror(rc));
        goto out_args;
    }

    if (fuse_opt_add_arg(&args, "-odefault_permissions,fsname=dfs,subtype=dfs") != 0)
        goto out_args;
    if (pthread_mutex_init(&z.mu, NULL) != 0)
        goto out_args;
    if (pthread_mutex_init(&z.cred_mu, NULL) != 0) {
        pthread_mutex_destroy(&z.mu);
        goto out_args;
    }
    if (pthread_cond_init(&z.stop_cv, NULL) != 0) {
        pthread_mutex_destroy(&z.cred_mu);
        pthread_mutex_destroy(&z.mu);
        goto out_args;
    }
    se = fuse_session_new(&args, &fz_ops, sizeof(fz_ops), &z);
    if (se == NULL)
        goto out_mutex;
    if (fuse_set_signal_handlers(se) != 0)
        goto out_session;
    if (fuse_session_mount(se, copts.mountpoint) != 0)
        goto out_signals;
    if (fuse_daemonize(copts.foreground) != 0)
        goto out_unmount;
    /* After the fork of fuse_daemonize: libdfs's connections belong to this process. */
    if ((rc = dfs_open(z.opt.masters, &dopt, &z.fs)) != 0) {
        LOG_ERROR("fuse: opening %s: %s", z.opt.masters, cm_strerror(rc));
        goto out_unmount;
    }
    if (z.opt.attr_timeout > 0)
        dfs_set_dir_attr_hook(z.fs, fz_dir_attr, &z);
    LOG_INFO("fuse: %s mounted at %s", z.opt.masters, copts.mountpoint);
    aging = pthread_create(&aging_thread, NULL, fz_aging_main, &z) == 0;
    if (!aging)
        LOG_WARN("fuse: no aging thread: blocks of files kept open are committed at close only");
    if (copts.singlethread) {
        ret = fuse_session_loop(se);
    } else {
        if ((lcfg = fuse_loop_cfg_create()) == NULL)
            goto out_fs;
        fuse_loop_cfg_set_clone_fd(lcfg, copts.clone_fd);
        fuse_loop_cfg_set_max_threads(lcfg, 64);
        fuse_loop_cfg_set_idle_threads(lcfg, copts.max_idle_threads ? copts.max_idle_threads : 10);
        ret = fuse_session_loop_mt(se, lcfg);
        fuse_loop_cfg_destroy(lcfg);
    }
    ret = ret != 0 ? 1 : 0;
out_fs:
    if (aging) {
        pthread_mutex_lock(&z.mu);
        z.stopping = true;
        pthread_cond_signal(&z.stop_cv);
        pthread_mutex_unlock(&z.mu);
        pthread_join(aging_thread, NULL);
    }
    fz_flush_all(&z);
    fuse_session_unmount(se);
    fz_nodes_free(&z);
    dfs_close(z.fs);
    z.fs = NULL;
    goto out_signals;
out_unmount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out_session:
    fuse_session_destroy(se);
out_mutex:
    pthread_cond_destroy(&z.stop_cv);
    pthread_mutex_destroy(&z.cred_mu);
    pthread_mutex_destroy(&z.mu);
out_args:
    free(copts.mountpoint);
    free(ps.masters_arg);
    /* fuse_opt_parse strdup'ed the string options. */
    free((char *)ps.o.masters);
    free((char *)ps.o.secret_file);
    free((char *)ps.o.log_level);
    fuse_opt_free_args(&args);
    return ret;
}
