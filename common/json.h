/* JSON on cJSON: parse with a size limit and typed getters that validate. A wrong type, a
 * missing field or an out-of-range number is an error code, never a crash. Does no I/O. */
#ifndef DFS_COMMON_JSON_H
#define DFS_COMMON_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest integer carried as a JSON number (2^53). Larger u64 values travel as decimal strings
 * and cm_json_get_u64 accepts both forms. */
#define CM_JSON_MAX_SAFE_INT 9007199254740992ULL

/* Parses exactly len bytes (no NUL needed). The whole input must be one JSON value with only
 * whitespace after it. On success *out is a new tree the caller frees with cJSON_Delete.
 * Errors: CM_E_BAD_JSON (malformed, truncated, trailing bytes, nesting deeper than 64),
 * CM_E_NOMEM. */
int cm_json_parse(const char *buf, size_t len, cJSON **out);

/* Like cm_json_parse, and the value must be an object (else CM_E_BAD_JSON). */
int cm_json_parse_object(const char *buf, size_t len, cJSON **out);

/* Typed getters on a field of an object. Return 0, CM_E_MISSING_FIELD (absent or JSON null),
 * CM_E_BAD_FIELD (wrong type; obj not an object), or CM_E_RANGE (out of the stated range).
 * Nothing is written to *out on error. */
int cm_json_get_u64(const cJSON *obj, const char *field, uint64_t *out);
int cm_json_get_i64(const cJSON *obj, const char *field, int64_t *out);
/* An integer in [min, max]. */
int cm_json_get_int_range(const cJSON *obj, const char *field, int64_t min, int64_t max,
                          int64_t *out);
int cm_json_get_u32(const cJSON *obj, const char *field, uint32_t *out);
int cm_json_get_bool(const cJSON *obj, const char *field, bool *out);
int cm_json_get_double(const cJSON *obj, const char *field, double *out);
/* A string of at most max_len bytes. *out is borrowed from obj and valid while obj lives;
 * *len_out (may be NULL) receives its length. */
int cm_json_get_str(const cJSON *obj, const char *field, size_t max_len, const char **out,
                    size_t *len_out);
/* An array or object member; borrowed from obj. */
int cm_json_get_array(const cJSON *obj, const char *field, const cJSON **out);
int cm_json_get_object(const cJSON *obj, const char *field, const cJSON **out);

/* Optional variants: an absent or null field leaves *out unchanged and returns 0; a present
 * field of the wrong type or range is still an error. */
int cm_json_opt_u64(const cJSON *obj, const char *field, uint64_t *out);
int cm_json_opt_bool(const cJSON *obj, const char *field, bool *out);
int cm_json_opt_str(const cJSON *obj, const char *field, size_t max_len, const char **out,
                    size_t *len_out);

/* Adds a u64 to obj: as a number when <= CM_JSON_MAX_SAFE_INT, else as a decimal string.
 * Returns 0 or CM_E_NOMEM. */
int cm_json_add_u64(cJSON *obj, const char *field, uint64_t v);

/* Serializes compactly. On success *out is malloc'd (caller frees with free()), NUL-terminated,
 * and *len_out (may be NULL) its length without the NUL. Returns 0 or CM_E_NOMEM. */
int cm_json_print(const cJSON *v, char **out, size_t *len_out);

#endif
