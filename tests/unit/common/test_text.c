/* The text buffer: appends in order, grows past its first allocation, and starts empty. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/text.h"

Test(text, appends_and_grows)
{
    struct cm_text t = {0};
    cm_text_printf(&t, "a=%d ", 1);
    cm_text_printf(&t, "%s", "b");
    cr_assert_str_eq(t.buf, "a=1 b");
    cr_assert_eq(t.len, 5);
    for (int i = 0; i < 2000; i++)
        cm_text_printf(&t, "%04d\n", i);
    cr_assert_eq(t.err, 0);
    cr_assert_eq(t.len, 5 + 2000 * 5);
    cr_assert_eq(strncmp(t.buf + 5 + 1999 * 5, "1999\n", 5), 0);
    cr_assert_eq(t.buf[t.len], '\0');
    cm_text_free(&t);
    cr_assert_null(t.buf);
    cr_assert_eq(t.len, 0);
}

Test(text, one_long_line)
{
    struct cm_text t = {0};
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cm_text_printf(&t, "%s|", big);
    cr_assert_eq(t.len, sizeof(big));
    cr_assert_eq(t.buf[t.len - 1], '|');
    cm_text_free(&t);
}
