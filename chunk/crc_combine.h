/* CRC32C of a concatenation from its parts' CRCs (zlib's crc32_combine for Castagnoli), so a
 * block's CRC follows from its chunk CRCs. Pure arithmetic: no I/O, no state. */
#ifndef DFS_CHUNK_CRC_COMBINE_H
#define DFS_CHUNK_CRC_COMBINE_H

#include <stdint.h>

/* The CRC32C (as cm_crc32c computes it) of A||B from crc1 = CRC32C(A), crc2 = CRC32C(B) and
 * len2 = |B|. */
uint32_t cs_crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

#endif
