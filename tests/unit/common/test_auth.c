/* The cluster secret: loading from a file (trimming, validation, errors, the permission warning),
 * setting from a string, and the comparison. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/errors.h"
#include "common/log.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dfs-test-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    /* The loader logs why it refuses a file; the tests that look at the log turn it back on. */
    cm_log_set_level(CM_LOG_OFF);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(auth, .init = setup, .fini = teardown);

/* Writes len bytes to dir/name with the given mode; returns the path (static storage). */
static const char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

static const char *write_str(const char *name, const char *s)
{
    return write_file(name, s, strlen(s), 0600);
}

/* A secret struct filled with a marker, to prove errors leave it unchanged. */
static void mark(struct cm_secret *s)
{
    memset(s, 0, sizeof(*s));
    cr_assert_eq(cm_secret_set(s, "marker", 6), 0);
}

static void assert_marked(const struct cm_secret *s)
{
    cr_assert_eq(s->len, 6u, "secret changed on error");
    cr_assert_str_eq(s->value, "marker", "secret changed on error");
}

static void assert_load_fails(const char *path, int want)
{
    struct cm_secret s;
    mark(&s);
    int rc = cm_secret_load(path, &s);
    cr_assert_eq(rc, want, "%s: got %s want %s", path, cm_errname(rc), cm_errname(want));
    assert_marked(&s);
}

/* Runs cm_secret_load with fd 2 sent to a file; returns its return code and the log text. */
static int load_capturing_log(const char *path, struct cm_secret *s, char *log, size_t cap)
{
    char logpath[256];
    snprintf(logpath, sizeof(logpath), "%s/stderr.log", dir);
    int fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    int saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    int rc = cm_secret_load(path, s);
    cr_assert_geq(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    ssize_t n = pread(fd, log, cap - 1, 0);
    cr_assert_geq(n, 0);
    log[n] = '\0';
    close(fd);
    return rc;
}

Test(auth, load_plain_secret)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_load(write_str("s", "hunter2"), &s), 0);
    cr_assert_eq(s.len, 7u);
    cr_assert_str_eq(s.value, "hunter2");
}

Test(auth, load_trims_trailing_newline_and_whitespace)
{
    static const char *const files[] = {"hunter2\n", "hunter2\r\n", "hunter2 \t\n\n",
                                        "hunter2\n\n\n"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct cm_secret s;
        cr_assert_eq(cm_secret_load(write_str("s", files[i]), &s), 0, "file %zu", i);
        cr_assert_eq(s.len, 7u, "file %zu", i);
        cr_assert_str_eq(s.value, "hunter2", "file %zu", i);
    }
}

Test(auth, load_keeps_interior_spaces)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_load(write_str("s", "correct horse battery\n"), &s), 0);
    cr_assert_str_eq(s.value, "correct horse battery");
    cr_assert_eq(s.len, 21u);
}

Test(auth, load_missing_file)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/does-not-exist", dir);
    assert_load_fails(path, CM_E_NOENT);
}

Test(auth, load_path_through_a_file_is_missing)
{
    char path[256];
    write_str("plain", "x");
    snprintf(path, sizeof(path), "%s/plain/secret", dir);
    assert_load_fails(path, CM_E_NOENT);
}

Test(auth, load_empty_file)
{
    assert_load_fails(write_file("s", "", 0, 0600), CM_E_INVAL);
}

Test(auth, load_whitespace_only_file)
{
    assert_load_fails(write_str("s", "\n \t\r\n"), CM_E_INVAL);
}

Test(auth, load_max_length_accepted)
{
    char buf[CM_AUTH_MAX_SECRET + 2];
    memset(buf, 'a', CM_AUTH_MAX_SECRET);
    buf[CM_AUTH_MAX_SECRET] = '\n';
    struct cm_secret s;
    cr_assert_eq(cm_secret_load(write_file("s", buf, CM_AUTH_MAX_SECRET + 1, 0600), &s), 0);
    cr_assert_eq(s.len, (size_t)CM_AUTH_MAX_SECRET);
    cr_assert_eq(strlen(s.value), (size_t)CM_AUTH_MAX_SECRET);
}

Test(auth, load_too_long)
{
    char buf[CM_AUTH_MAX_SECRET + 1];
    memset(buf, 'a', sizeof(buf));
    assert_load_fails(write_file("s", buf, sizeof(buf), 0600), CM_E_INVAL);
}

Test(auth, load_huge_file)
{
    size_t n = 1 << 20;
    char *buf = malloc(n);
    cr_assert_not_null(buf);
    memset(buf, 'a', n);
    assert_load_fails(write_file("s", buf, n, 0600), CM_E_INVAL);
    /* Short secret followed by a lot of whitespace is still too big a file to be a secret. */
    memset(buf, '\n', n);
    memcpy(buf, "abc", 3);
    assert_load_fails(write_file("s", buf, n, 0600), CM_E_INVAL);
    free(buf);
}

Test(auth, load_non_printable_bytes)
{
    static const char *const bad[] = {
        "sec\x01ret", "sec\x7fret", "s\303\251cret", /* UTF-8 */
        "sec\nret",   "sec\tret",   "\tsecret",      " secret", "sec\rret\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_load_fails(write_str("s", bad[i]), CM_E_INVAL);
    assert_load_fails(write_file("s", "sec\0ret", 7, 0600), CM_E_INVAL);
}

Test(auth, load_directory_refused)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/sub", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    assert_load_fails(path, CM_E_INVAL);
}

Test(auth, load_fifo_refused_without_blocking, .timeout = 10)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/fifo", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    assert_load_fails(path, CM_E_INVAL);
}

Test(auth, load_unreadable_file)
{
    const char *path = write_file("s", "secret", 6, 0000);
    if (geteuid() != 0) {
        assert_load_fails(path, CM_E_ACCES);
        return;
    }
    /* Root reads any file, so try as an unprivileged user in a child. */
    cr_assert_eq(chmod(dir, 0711), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct cm_secret s;
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(100);
        _exit(cm_secret_load(path, &s) == CM_E_ACCES ? 0 : 1);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 100)
        cr_skip_test("cannot drop privileges to check a mode 000 file");
    cr_assert_eq(WEXITSTATUS(st), 0, "a mode 000 file gives CM_E_ACCES");
}

Test(auth, load_null_arguments)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_load(NULL, &s), CM_E_INVAL);
    cr_assert_eq(cm_secret_load(write_str("s", "x"), NULL), CM_E_INVAL);
}

Test(auth, load_warns_when_group_or_others_can_read)
{
    struct cm_secret s;
    char log[4096];
    cm_log_set_level(CM_LOG_INFO);
    int rc = load_capturing_log(write_file("s", "hunter2\n", 8, 0644), &s, log, sizeof(log));
    cr_assert_eq(rc, 0, "a readable-by-others file is still accepted");
    cr_assert_str_eq(s.value, "hunter2");
    cr_assert_not_null(strstr(log, " W "), "expected a warning line, log: %s", log);
    cr_assert_not_null(strstr(log, "group or others"), "log: %s", log);

    rc = load_capturing_log(write_file("s", "hunter2\n", 8, 0640), &s, log, sizeof(log));
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(log, "group or others"), "mode 0640, log: %s", log);
}

Test(auth, load_no_warning_for_private_file)
{
    struct cm_secret s;
    char log[4096];
    cm_log_set_level(CM_LOG_DEBUG);
    int rc = load_capturing_log(write_file("s", "hunter2\n", 8, 0600), &s, log, sizeof(log));
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(log, "", "nothing logged for a mode 0600 file, got: %s", log);
    rc = load_capturing_log(write_file("s", "hunter2\n", 8, 0400), &s, log, sizeof(log));
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(log, "", "nothing logged for a mode 0400 file, got: %s", log);
}

Test(auth, set_validates_like_the_file)
{
    struct cm_secret s;
    char big[CM_AUTH_MAX_SECRET + 1];
    memset(big, 'z', sizeof(big));

    cr_assert_eq(cm_secret_set(&s, "abc", 3), 0);
    cr_assert_eq(s.len, 3u);
    cr_assert_str_eq(s.value, "abc");
    cr_assert_eq(cm_secret_set(&s, big, CM_AUTH_MAX_SECRET), 0);
    cr_assert_eq(s.len, (size_t)CM_AUTH_MAX_SECRET);
    cr_assert_eq(s.value[CM_AUTH_MAX_SECRET], '\0');

    mark(&s);
    cr_assert_eq(cm_secret_set(&s, big, CM_AUTH_MAX_SECRET + 1), CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s, "", 0), CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s, NULL, 3), CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s,
                               "a\x01"
                               "b",
                               3),
                 CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s, "ab\n", 3), CM_E_INVAL, "set does not trim");
    cr_assert_eq(cm_secret_set(&s, "ab ", 3), CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s, " ab", 3), CM_E_INVAL);
    cr_assert_eq(cm_secret_set(&s, "a\0b", 3), CM_E_INVAL);
    assert_marked(&s);
    cr_assert_eq(cm_secret_set(NULL, "abc", 3), CM_E_INVAL);
}

Test(auth, set_shorter_secret_replaces_longer)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_set(&s, "longsecret", 10), 0);
    cr_assert_eq(cm_secret_set(&s, "ab", 2), 0);
    cr_assert_str_eq(s.value, "ab");
    cr_assert(cm_secret_check(&s, "ab", 2));
    cr_assert_not(cm_secret_check(&s, "longsecret", 10));
}

Test(auth, check_no_secret_configured_accepts_anything)
{
    struct cm_secret s = {0};
    cr_assert(cm_secret_check(&s, NULL, 0), "absent header");
    cr_assert(cm_secret_check(&s, "", 0));
    cr_assert(cm_secret_check(&s, "anything", 8));
}

Test(auth, check_right_secret)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_set(&s, "hunter2", 7), 0);
    cr_assert_eq(cm_secret_check(&s, "hunter2", 7), 1);
    /* The presented bytes need not be NUL-terminated. */
    cr_assert_eq(cm_secret_check(&s, "hunter2XYZ", 7), 1);
}

Test(auth, check_wrong_secrets)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_set(&s, "hunter2", 7), 0);
    cr_assert_eq(cm_secret_check(&s, NULL, 0), 0, "absent header rejected");
    cr_assert_eq(cm_secret_check(&s, NULL, 7), 0, "absent header rejected");
    cr_assert_eq(cm_secret_check(&s, "", 0), 0, "empty header rejected");
    cr_assert_eq(cm_secret_check(&s, "hunter3", 7), 0, "last byte differs");
    cr_assert_eq(cm_secret_check(&s, "Hunter2", 7), 0, "first byte differs");
    cr_assert_eq(cm_secret_check(&s, "HUNTER2", 7), 0, "case differs");
    cr_assert_eq(cm_secret_check(&s, "hunter", 6), 0, "prefix");
    cr_assert_eq(cm_secret_check(&s, "hunter22", 8), 0, "longer");
    cr_assert_eq(cm_secret_check(&s, "hunter2\0", 8), 0, "trailing NUL");
    cr_assert_eq(cm_secret_check(&s, "xxxxxxx", 7), 0, "all differ");
}

Test(auth, check_null_secret_rejects)
{
    cr_assert_eq(cm_secret_check(NULL, "x", 1), 0);
}

Test(auth, load_then_check_round_trip)
{
    struct cm_secret s;
    cr_assert_eq(cm_secret_load(write_str("s", "c1uster-S3cret!\n"), &s), 0);
    cr_assert(cm_secret_check(&s, "c1uster-S3cret!", 15));
    cr_assert_not(cm_secret_check(&s, "c1uster-S3cret!\n", 16), "trimmed newline is not part");
}
