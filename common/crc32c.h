/* CRC32C (Castagnoli), used for every block and its 64 KiB chunks. Uses the SSE4.2 crc32
 * instruction when the CPU has it, a table-driven software version otherwise. */
#ifndef DFS_COMMON_CRC32C_H
#define DFS_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (start with 0) over len bytes of buf and returns the new value. Chaining gives
 * the CRC of the concatenation: cm_crc32c(cm_crc32c(0, a, n), b, m) == crc of a||b. Standard
 * CRC32C (initial value and final xor ~0): cm_crc32c(0, "123456789", 9) == 0xE3069283.
 * buf may be NULL when len is 0 (crc is returned unchanged). Thread-safe; any alignment. */
uint32_t cm_crc32c(uint32_t crc, const void *buf, size_t len);

/* The software version, always available; exposed for tests and benchmarks. */
uint32_t cm_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* 1 when cm_crc32c uses the hardware instruction. */
int cm_crc32c_hw_available(void);

#endif
