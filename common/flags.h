/* Command-line helpers shared by the dfs daemons: strict number parsing and the one format of
 * a flag error. Writes only to stderr; never exits by itself. */
#ifndef DFS_COMMON_FLAGS_H
#define DFS_COMMON_FLAGS_H

#include <stdint.h>

/* Parses a decimal integer in [min, max]: digits only, no sign, no spaces, no suffix. Returns 0
 * or CM_E_INVAL (nothing written to *out). */
int cm_flag_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses a byte count in [min, max]: decimal digits with an optional K, M or G suffix (powers of
 * 1024, either case). Returns 0 or CM_E_INVAL (nothing written to *out). */
int cm_flag_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Prints "PROG: FLAG VALUE: WHY" and "Try 'PROG --help'." to stderr and returns 2, the exit code
 * of a bad command line. value may be NULL. */
int cm_flag_error(const char *prog, const char *flag, const char *value, const char *why);

#endif
