/* The one error table of dfs: every component returns these codes (0 or a negative CM_E_*),
 * sends their names on the wire, and maps them to errno and HTTP status from here only. */
#ifndef DFS_COMMON_ERRORS_H
#define DFS_COMMON_ERRORS_H

/* X(symbol, number, wire name, message, errno, http status) */
#define CM_ERRORS(X)                                                                               \
    X(INVAL, 1, "INVALID_ARGUMENT", "invalid argument", EINVAL, 400)                               \
    X(NOMEM, 2, "OUT_OF_MEMORY", "out of memory", ENOMEM, 500)                                     \
    X(IO, 3, "IO_ERROR", "input/output error", EIO, 500)                                           \
    X(NOENT, 4, "NOT_FOUND", "no such file, directory or object", ENOENT, 404)                     \
    X(EXIST, 5, "ALREADY_EXISTS", "already exists", EEXIST, 409)                                   \
    X(NOTDIR, 6, "NOT_A_DIRECTORY", "not a directory", ENOTDIR, 409)                               \
    X(ISDIR, 7, "IS_A_DIRECTORY", "is a directory", EISDIR, 409)                                   \
    X(NOTEMPTY, 8, "DIRECTORY_NOT_EMPTY", "directory not empty", ENOTEMPTY, 409)                   \
    X(NAMETOOLONG, 9, "NAME_TOO_LONG", "file name or path too long", ENAMETOOLONG, 400)            \
    X(ACCES, 10, "PERMISSION_DENIED", "permission denied", EACCES, 403)                            \
    X(PERM, 11, "NOT_PERMITTED", "operation not permitted", EPERM, 403)                            \
    X(NOSPC, 12, "NO_SPACE", "no space left on device", ENOSPC, 507)                               \
    X(XDEV, 13, "CROSS_DEVICE", "cross-device link", EXDEV, 400)                                   \
    X(NOT_LEADER, 14, "NOT_LEADER", "this master is not the leader", EAGAIN, 421)                  \
    X(UNAVAILABLE, 15, "UNAVAILABLE", "service unavailable, try again", EAGAIN, 503)               \
    X(TIMEOUT, 16, "TIMEOUT", "operation timed out", ETIMEDOUT, 504)                               \
    X(BAD_JSON, 17, "MALFORMED_JSON", "request body is not valid JSON", EINVAL, 400)               \
    X(BAD_FIELD, 18, "INVALID_FIELD", "a field has the wrong type", EINVAL, 400)                   \
    X(MISSING_FIELD, 19, "MISSING_FIELD", "a required field is missing", EINVAL, 400)              \
    X(RANGE, 20, "OUT_OF_RANGE", "a value is out of range", ERANGE, 400)                           \
    X(TOO_LARGE, 21, "BODY_TOO_LARGE", "request body too large", EFBIG, 413)                       \
    X(UNAUTHORIZED, 22, "UNAUTHORIZED", "missing or wrong cluster secret", EACCES, 401)            \
    X(NO_ROUTE, 23, "UNKNOWN_ENDPOINT", "no such endpoint", ENOSYS, 404)                           \
    X(METHOD, 24, "METHOD_NOT_ALLOWED", "method not allowed on this endpoint", ENOSYS, 405)        \
    X(CONNECT, 25, "CONNECT_FAILED", "could not connect", EHOSTUNREACH, 502)                       \
    X(RESOLVE, 26, "RESOLVE_FAILED", "could not resolve host name", EHOSTUNREACH, 502)             \
    X(PROTO, 27, "PROTOCOL_ERROR", "unexpected answer from peer", EPROTO, 502)                     \
    X(CORRUPT, 28, "CHECKSUM_MISMATCH", "data failed its checksum", EIO, 500)                      \
    X(STALE, 29, "STALE_HANDLE", "stale file handle", ESTALE, 404)                                 \
    X(BUSY, 30, "BUSY", "resource busy", EBUSY, 503)                                               \
    X(CANCELED, 31, "CANCELED", "operation canceled", ECANCELED, 503)                              \
    X(NOTSUP, 32, "NOT_SUPPORTED", "operation not supported", EOPNOTSUPP, 501)                     \
    X(FBIG, 33, "FILE_TOO_LARGE", "file too large", EFBIG, 400)                                    \
    X(MLINK, 34, "TOO_MANY_LINKS", "too many links", EMLINK, 400)                                  \
    X(LOOP, 35, "TOO_MANY_SYMLINKS", "too many levels of symbolic links", ELOOP, 400)              \
    X(STORE, 36, "STORE_CORRUPT", "on-disk store is corrupt or incompatible", EIO, 500)            \
    X(INTERNAL, 37, "INTERNAL", "internal error", EIO, 500)                                        \
    X(EXPIRED, 38, "BLOCK_EXPIRED", "block stored too long ago to be committed", EIO, 409)

enum cm_err {
    CM_OK = 0,
#define CM_ERR_ENUM_(sym, num, name, msg, eno, http) CM_E_##sym = -(num),
    CM_ERRORS(CM_ERR_ENUM_)
#undef CM_ERR_ENUM_
};

/* Human message for an error code; never NULL (unknown codes give "unknown error"). */
const char *cm_strerror(int err);
/* Wire name ("NOT_LEADER"); "OK" for 0, "UNKNOWN" for an unknown code. Static storage. */
const char *cm_errname(int err);
/* The positive errno for an error code (0 for CM_OK, EIO for unknown codes). */
int cm_err_errno(int err);
/* The HTTP status an error is answered with (200 for CM_OK, 500 for unknown codes). */
int cm_err_http_status(int err);
/* The code for a wire name, or CM_E_PROTO when the name is not in the table. "OK" gives 0. */
int cm_err_from_name(const char *name);

#endif
