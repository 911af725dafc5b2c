/* The error table: names, messages, errno and HTTP status round-trip and unknowns are safe. */
#include <criterion/criterion.h>
#include <errno.h>

#include "common/errors.h"

Test(errors, codes_are_negative_and_dense)
{
    cr_assert_eq(CM_E_INVAL, -1);
    cr_assert_eq(CM_E_NOMEM, -2);
    cr_assert_lt(CM_E_INTERNAL, CM_E_STORE);
}

Test(errors, name_round_trip_for_every_code)
{
#define CHECK_(sym, num, name, msg, eno, http)                                                     \
    cr_assert_eq(cm_err_from_name(cm_errname(CM_E_##sym)), CM_E_##sym, "%s", name);               \
    cr_assert_str_eq(cm_strerror(CM_E_##sym), msg);                                                \
    cr_assert_eq(cm_err_errno(CM_E_##sym), eno);                                                   \
    cr_assert_eq(cm_err_http_status(CM_E_##sym), http);
    CM_ERRORS(CHECK_)
#undef CHECK_
}

Test(errors, ok_and_unknown)
{
    cr_assert_str_eq(cm_errname(0), "OK");
    cr_assert_eq(cm_err_from_name("OK"), 0);
    cr_assert_eq(cm_err_http_status(0), 200);
    cr_assert_eq(cm_err_errno(0), 0);
    cr_assert_str_eq(cm_errname(-9999), "UNKNOWN");
    cr_assert_str_eq(cm_errname(17), "UNKNOWN");
    cr_assert_str_eq(cm_strerror(-9999), "unknown error");
    cr_assert_eq(cm_err_errno(-9999), EIO);
    cr_assert_eq(cm_err_http_status(-9999), 500);
    cr_assert_eq(cm_err_from_name("NO_SUCH_NAME"), CM_E_PROTO);
    cr_assert_eq(cm_err_from_name(NULL), CM_E_PROTO);
}

Test(errors, well_known_mappings)
{
    cr_assert_eq(cm_err_errno(CM_E_NOTEMPTY), ENOTEMPTY);
    cr_assert_eq(cm_err_http_status(CM_E_NOT_LEADER), 421);
    cr_assert_eq(cm_err_http_status(CM_E_TOO_LARGE), 413);
    cr_assert_eq(cm_err_http_status(CM_E_UNAUTHORIZED), 401);
    cr_assert_str_eq(cm_errname(CM_E_NOT_LEADER), "NOT_LEADER");
}
