/* What the block store and its journal share for files: little-endian fields, whole reads and
 * writes at an offset (EINTR retried), and errno mapped to the error table. */
#ifndef DFS_CHUNK_FILEIO_H
#define DFS_CHUNK_FILEIO_H

#include <stddef.h>
#include <stdint.h>

void cs_put_le32(unsigned char *p, uint32_t v);
void cs_put_le64(unsigned char *p, uint64_t v);
uint32_t cs_get_le32(const unsigned char *p);
uint64_t cs_get_le64(const unsigned char *p);
/* CM_E_NOSPC (ENOSPC, EDQUOT), CM_E_ACCES (EACCES, EPERM, EROFS), CM_E_NOENT, CM_E_NOMEM, else
 * CM_E_IO. */
int cs_errno_code(int e);
/* Reads up to len bytes at off; *got is less than len only at the end of the file. */
int cs_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);
int cs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

#endif
