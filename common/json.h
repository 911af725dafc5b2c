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

/* Deepest nesting of arrays and objects cm_json_parse accepts ("[[1]]" has depth 2). */
#define CM_JSON_MAX_DEPTH 64

/* Parses exactly len bytes (no NUL needed). The whole input must be one JSON value (RFC 8259,
 * strictly: no leading zeros, no raw control bytes in strings) with only whitespace after it.
 * On success *out is a new tree the caller frees with cJSON_Delete.
 * Errors: CM_E_BAD_JSON (malformed, empty, truncated, trailing bytes, nesting deeper than
 * CM_JSON_MAX_DEPTH, a string or key containing \u0000, which cJSON's NUL-terminated strings
 * cannot hold, or a failed allocation inside cJSON), CM_E_NOMEM, CM_E_INVAL (out NULL, or buf
 * NULL with len > 0). Numbers longer than 63 characters are rejected. */
int cm_json_parse(const char *buf, size_t len, cJSON **out);

/* Like cm_json_parse, and the value must be an object (else CM_E_BAD_JSON). */
int cm_json_parse_object(const char *buf, size_t len, cJSON **out);

/* Typed getters on a field of an object (names are case-sensitive; with duplicate names the
 * first wins). Return 0, CM_E_MISSING_FIELD (absent or JSON null), CM_E_BAD_FIELD (wrong type;
 * obj not an object), CM_E_RANGE (out of the stated range), or CM_E_INVAL (field or out NULL).
 * Nothing is written to *out on error.
 * Integer getters take a JSON number that is integral and at most CM_JSON_MAX_SAFE_INT in
 * magnitude (a fraction, 1e300 or a non-finite value is CM_E_RANGE). A literal beyond 2^53 that
 * rounds to 2^53 as a double (9007199254740993) cannot be told apart from 2^53.
 * cm_json_get_u64 also takes a string of decimal digits only (no sign, no spaces; else
 * CM_E_BAD_FIELD; above UINT64_MAX CM_E_RANGE). Other integer getters take numbers only. */
int cm_json_get_u64(const cJSON *obj, const char *field, uint64_t *out);
int cm_json_get_i64(const cJSON *obj, const char *field, int64_t *out);
/* An integer in [min, max] (CM_E_INVAL when min > max). */
int cm_json_get_int_range(const cJSON *obj, const char *field, int64_t min, int64_t max,
                          int64_t *out);
int cm_json_get_u32(const cJSON *obj, const char *field, uint32_t *out);
int cm_json_get_bool(const cJSON *obj, const char *field, bool *out);
/* Any finite number (NaN and infinities, e.g. from 1e400, are CM_E_RANGE). */
int cm_json_get_double(const cJSON *obj, const char *field, double *out);
/* A string of at most max_len bytes (longer: CM_E_RANGE). *out is borrowed from obj, valid
 * while obj lives, NUL-terminated, and never silently truncated: parsed trees hold no \u0000.
 * *len_out (may be NULL) receives its length. The bytes are not checked to be UTF-8. */
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
 * Returns 0, CM_E_NOMEM, or CM_E_INVAL (obj not an object, field NULL). */
int cm_json_add_u64(cJSON *obj, const char *field, uint64_t v);

/* Serializes compactly. On success *out is malloc'd (caller frees with free()), NUL-terminated,
 * and *len_out (may be NULL) its length without the NUL. Numbers are printed exactly (every
 * double parses back to itself; cJSON_Print does not promise that), so use this, not cJSON_Print.
 * Returns 0, CM_E_NOMEM, CM_E_RANGE (a NaN or infinite number, or nesting deeper than
 * CM_JSON_MAX_DEPTH, so the output always parses with cm_json_parse), or CM_E_INVAL (v or out
 * NULL, an invalid item). cJSON_Raw items are copied as they are. */
int cm_json_print(const cJSON *v, char **out, size_t *len_out);

#endif
