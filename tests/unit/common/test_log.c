/* Logging: level parsing, the threshold skips formatting, and lines carry level and node. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

#include "common/errors.h"
#include "common/log.h"

Test(log, parse_level)
{
    enum cm_log_level l;
    cr_assert_eq(cm_log_parse_level("debug", &l), 0);
    cr_assert_eq(l, CM_LOG_DEBUG);
    cr_assert_eq(cm_log_parse_level("WARN", &l), 0);
    cr_assert_eq(l, CM_LOG_WARN);
    cr_assert_eq(cm_log_parse_level("off", &l), 0);
    cr_assert_eq(l, CM_LOG_OFF);
    cr_assert_eq(cm_log_parse_level("loud", &l), CM_E_INVAL);
    cr_assert_eq(cm_log_parse_level(NULL, &l), CM_E_INVAL);
}

static int formatted;
static const char *count_format(void)
{
    formatted++;
    return "x";
}

Test(log, below_threshold_does_not_format)
{
    cm_log_init("n1", CM_LOG_WARN);
    formatted = 0;
    LOG_DEBUG("%s", count_format());
    LOG_INFO("%s", count_format());
    cr_assert_eq(formatted, 0);
}

Test(log, line_has_level_node_and_message, .init = cr_redirect_stderr)
{
    cm_log_init("m7", CM_LOG_INFO);
    LOG_INFO("Node %d becoming LEADER", 7);
    LOG_DEBUG("hidden");
    fflush(stderr);
    char buf[512] = {0};
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    cr_assert_gt(n, 0);
    cr_assert_not_null(strstr(buf, " I [m7] "), "%s", buf);
    cr_assert_not_null(strstr(buf, "Node 7 becoming LEADER\n"), "%s", buf);
    cr_assert_null(strstr(buf, "hidden"));
}

Test(log, long_line_is_truncated_with_newline, .init = cr_redirect_stderr)
{
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cm_log_init("n", CM_LOG_DEBUG);
    LOG_ERROR("%s", big);
    char buf[4096] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, cr_get_redirected_stderr());
    cr_assert_leq(n, 2048);
    cr_assert_eq(buf[n - 1], '\n');
}

/* A limited call site writes its first line, then one per interval, and says how many it held
 * back; time is the caller's. */
Test(log, limit_passes_one_line_per_interval)
{
    struct cm_log_limit l = {0};
    uint64_t held = 99;

    cr_assert(cm_log_limit_pass(&l, 5000, 10000, &held), "the first line is written");
    cr_assert_eq(held, 0);
    for (uint64_t t = 5000; t < 15000; t += 1000)
        cr_assert_not(cm_log_limit_pass(&l, t, 10000, &held), "a line at %llu ms",
                      (unsigned long long)t);
    cr_assert(cm_log_limit_pass(&l, 15000, 10000, &held), "an interval later");
    cr_assert_eq(held, 10, "the ten held back are counted");
    cr_assert_not(cm_log_limit_pass(&l, 24999, 10000, &held));
    cr_assert(cm_log_limit_pass(&l, 90000, 10000, &held), "long after");
    cr_assert_eq(held, 1);
}

/* Through the macro: three lines from one site in a row write one; the threshold still rules. */
Test(log, limited_macro_writes_the_first_line_only, .init = cr_redirect_stderr)
{
    cm_log_init("n1", CM_LOG_INFO);
    for (int i = 0; i < 3; i++)
        LOG_WARN_LIMITED(60000, "chunkserver %d failed", i);
    fflush(stderr);
    char buf[4096] = {0};
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "chunkserver 0 failed"), "%s", buf);
    cr_assert_null(strstr(buf, "chunkserver 1 failed"), "%s", buf);
    cr_assert_null(strstr(buf, "chunkserver 2 failed"), "%s", buf);
}
