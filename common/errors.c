/* The error table's lookups. */
#include "common/errors.h"

#include <errno.h>
#include <string.h>

struct err_row {
    int code;
    const char *name;
    const char *msg;
    int eno;
    int http;
};

static const struct err_row rows[] = {
#define CM_ERR_ROW_(sym, num, name, msg, eno, http) {-(num), name, msg, eno, http},
    CM_ERRORS(CM_ERR_ROW_)
#undef CM_ERR_ROW_
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

static const struct err_row *find(int err)
{
    /* Codes are dense from -1, so index directly. */
    if (err < 0 && (size_t)(-err) <= NROWS && rows[-err - 1].code == err)
        return &rows[-err - 1];
    return NULL;
}

const char *cm_strerror(int err)
{
    const struct err_row *r = find(err);
    if (err == 0)
        return "ok";
    return r ? r->msg : "unknown error";
}

const char *cm_errname(int err)
{
    const struct err_row *r = find(err);
    if (err == 0)
        return "OK";
    return r ? r->name : "UNKNOWN";
}

int cm_err_errno(int err)
{
    const struct err_row *r = find(err);
    if (err == 0)
        return 0;
    return r ? r->eno : EIO;
}

int cm_err_http_status(int err)
{
    const struct err_row *r = find(err);
    if (err == 0)
        return 200;
    return r ? r->http : 500;
}

int cm_err_from_name(const char *name)
{
    if (name == NULL)
        return CM_E_PROTO;
    if (strcmp(name, "OK") == 0)
        return 0;
    for (size_t i = 0; i < NROWS; i++)
        if (strcmp(rows[i].name, name) == 0)
            return rows[i].code;
    return CM_E_PROTO;
}
