/* Flag helpers: strict decimal parsing within a range, and the exit code of a flag error. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "common/errors.h"
#include "common/flags.h"

Test(flags, u64_accepts_only_plain_decimal_in_range)
{
    uint64_t v = 7;
    cr_assert_eq(cm_flag_u64("42", 1, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(cm_flag_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    static const char *bad[] = {
        "", "-1", "+1", " 1", "1 ", "1k", "0x10", "abc", "18446744073709551616", "101", "0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        cr_assert_eq(cm_flag_u64(bad[i], 1, 100, &v), CM_E_INVAL, "%s", bad[i]);
        cr_assert_eq(v, 7, "nothing written for %s", bad[i]);
    }
    cr_assert_eq(cm_flag_u64(NULL, 0, 1, &v), CM_E_INVAL);
}

Test(flags, error_says_flag_and_returns_2, .init = cr_redirect_stderr)
{
    cr_assert_eq(cm_flag_error("dfs-x", "--port", "99999", "must be 1-65535"), 2);
    fflush(stderr);
    cr_assert_stderr_eq_str("dfs-x: --port 99999: must be 1-65535\nTry 'dfs-x --help'.\n");
}

Test(flags, size_takes_k_m_g_suffixes_within_range)
{
    uint64_t v = 0;

    cr_assert_eq(cm_flag_size("4096", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(cm_flag_size("64K", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, 64u << 10);
    cr_assert_eq(cm_flag_size("1m", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, 1u << 20);
    cr_assert_eq(cm_flag_size("2G", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, 2ull << 30);
    v = 7;
    const char *bad[] = {"", "K", "-1", " 1", "1 ", "1KB", "1T", "1.5M", "0x10",
                         "18446744073709551615K", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cm_flag_size(bad[i], 0, UINT64_MAX, &v), CM_E_INVAL, "%s", bad[i]);
    cr_assert_eq(cm_flag_size(NULL, 0, UINT64_MAX, &v), CM_E_INVAL);
    cr_assert_eq(v, 7, "written on error");
    cr_assert_eq(cm_flag_size("63K", 64u << 10, 1u << 30, &v), CM_E_INVAL);
    cr_assert_eq(cm_flag_size("2G", 64u << 10, 1u << 30, &v), CM_E_INVAL);
    cr_assert_eq(cm_flag_size("1G", 64u << 10, 1u << 30, &v), 0);
}
