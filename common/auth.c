/* The cluster secret: loading and validating it, and comparing in constant time. */
#include "common/auth.h"
#include "common/errors.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most bytes read from a secret file: the secret and generous trailing whitespace. A larger
 * file cannot hold a valid secret. */
#define SECRET_FILE_MAX 4096

static int is_trailing_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int cm_secret_set(struct cm_secret *s, const char *value, size_t len)
{
    if (s == NULL || value == NULL || len == 0 || len > CM_AUTH_MAX_SECRET)
        return CM_E_INVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c > 0x7E)
            return CM_E_INVAL;
    }
    /* HTTP strips spaces around a header value, so such a secret could never match. */
    if (value[0] == ' ' || value[len - 1] == ' ')
        return CM_E_INVAL;
    memset(s->value, 0, sizeof(s->value));
    memcpy(s->value, value, len);
    s->len = len;
    return 0;
}

static int errno_to_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return CM_E_NOENT;
    case EACCES:
    case EPERM:
        return CM_E_ACCES;
    case ENOMEM:
        return CM_E_NOMEM;
    default:
        return CM_E_IO;
    }
}

int cm_secret_load(const char *path, struct cm_secret *out)
{
    char buf[SECRET_FILE_MAX + 1];
    size_t n = 0;
    struct stat st;
    int fd = -1;
    int rc;

    if (path == NULL || out == NULL)
        return CM_E_INVAL;
    /* O_NONBLOCK: a FIFO at path must not hang the caller; it is refused below. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = errno_to_err(errno);
        LOG_ERROR("cannot open secret file %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fstat(fd, &st) != 0) {
        rc = errno_to_err(errno);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        LOG_ERROR("secret file %s is not a regular file", path);
        rc = CM_E_INVAL;
        goto cleanup;
    }
    if (st.st_mode & 077)
        LOG_WARN("secret file %s is accessible by group or others (mode %03o); use chmod 600", path,
                 (unsigned)(st.st_mode & 0777));

    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = errno_to_err(errno);
            LOG_ERROR("cannot read secret file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == sizeof(buf)) {
            LOG_ERROR("secret file %s is too long", path);
            rc = CM_E_INVAL;
            goto cleanup;
        }
    }
    while (n > 0 && is_trailing_space((unsigned char)buf[n - 1]))
        n--;
    rc = cm_secret_set(out, buf, n);
    if (rc != 0)
        LOG_ERROR("secret file %s: the secret must be 1 to %d printable ASCII characters, not "
                  "starting or ending with a space",
                  path, CM_AUTH_MAX_SECRET);

cleanup:
    explicit_bzero(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

int cm_secret_check(const struct cm_secret *s, const char *presented, size_t len)
{
    volatile unsigned char diff = 0;

    if (s == NULL || s->len > CM_AUTH_MAX_SECRET)
        return 0;
    if (s->len == 0)
        return 1;
    if (presented == NULL)
        return 0;
    /* Always s->len rounds, whatever the presented bytes; a length mismatch only adds to diff.
     * The branch on i < len depends on the presented length, which the caller knows. */
    for (size_t i = 0; i < s->len; i++) {
        unsigned char p = i < len ? (unsigned char)presented[i] : 0;
        diff |= (unsigned char)(p ^ (unsigned char)s->value[i]);
    }
    diff |= (unsigned char)(len != s->len);
    return diff == 0;
}
