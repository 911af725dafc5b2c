/* The optional cluster secret: read from a file, carried in one HTTP header, compared in
 * constant time. Used by every server and client of dfs; does no network I/O. */
#ifndef DFS_COMMON_AUTH_H
#define DFS_COMMON_AUTH_H

#include <stddef.h>

/* The header that carries the secret on every request between dfs processes. */
#define CM_AUTH_HEADER "X-Dfs-Secret"
/* Longest secret accepted (bytes, after trimming). */
#define CM_AUTH_MAX_SECRET 256

struct cm_secret {
    size_t len; /* 0: no secret configured, every request is accepted */
    char value[CM_AUTH_MAX_SECRET + 1];
};

/* Loads the secret from path: the file's contents with trailing whitespace (newlines) removed.
 * Errors: CM_E_NOENT (missing), CM_E_ACCES (unreadable), CM_E_INVAL (empty, longer than
 * CM_AUTH_MAX_SECRET, containing bytes not printable ASCII, starting with a space, or not a
 * regular file), CM_E_IO. A file readable by group or others is accepted with a warning in the
 * log. On error *out is unchanged. Does not block on a FIFO. */
int cm_secret_load(const char *path, struct cm_secret *out);

/* Sets the secret from a string (same validation as the file contents, without trimming:
 * 1..CM_AUTH_MAX_SECRET bytes of printable ASCII 0x20..0x7E, no space first or last, since
 * HTTP strips those from a header value). Returns 0 or CM_E_INVAL, leaving *s unchanged. */
int cm_secret_set(struct cm_secret *s, const char *value, size_t len);

/* True when s has no secret configured or presented (len bytes, may be NULL when absent) equals
 * it. Runs in time independent of where the strings differ (it depends only on the configured
 * secret's length). A NULL s rejects everything. */
int cm_secret_check(const struct cm_secret *s, const char *presented, size_t len);

#endif
