/* Files for the block store and its journal (chunk/fileio.h). */
#include "chunk/fileio.h"

#include <errno.h>
#include <unistd.h>

#include "common/errors.h"

void cs_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void cs_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t cs_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t cs_get_le64(const unsigned char *p)
{
    return (uint64_t)cs_get_le32(p) | (uint64_t)cs_get_le32(p + 4) << 32;
}

int cs_errno_code(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return CM_E_NOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
        return CM_E_ACCES;
    case ENOENT:
        return CM_E_NOENT;
    case ENOMEM:
        return CM_E_NOMEM;
    default:
        return CM_E_IO;
    }
}

int cs_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cs_errno_code(errno);
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

int cs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return cs_errno_code(errno);
        }
        done += (size_t)n;
    }
    return 0;
}
