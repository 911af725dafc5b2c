/* JSON on cJSON: a strict pre-scan before parsing, typed getters, and an exact printer. */
#include "common/json.h"
#include "common/errors.h"

#include <inttypes.h>
#include <math.h> /* isfinite only: cm_json does not link libm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number accepted. Unpatched cJSON 1.7.15 cuts numbers at 63 characters while
 * distribution patches lift that; one limit here keeps the behaviour the same on every build. */
#define MAX_NUMBER_CHARS 63

/* ---- parsing ---------------------------------------------------------------------------- */

static int is_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The characters cJSON gathers into one number before handing them to strtod. */
static int is_number_char(unsigned char c)
{
    return is_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E';
}

/* Checks that s[0..n) is exactly one RFC 8259 number. */
static int number_ok(const char *s, size_t n)
{
    size_t p = 0;

    if (p < n && s[p] == '-')
        p++;
    if (p >= n)
        return 0;
    if (s[p] == '0') {
        p++;
    } else if (is_digit((unsigned char)s[p])) {
        while (p < n && is_digit((unsigned char)s[p]))
            p++;
    } else {
        return 0;
    }
    if (p < n && s[p] == '.') {
        p++;
        if (p >= n || !is_digit((unsigned char)s[p]))
            return 0;
        while (p < n && is_digit((unsigned char)s[p]))
            p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        p++;
        if (p < n && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= n || !is_digit((unsigned char)s[p]))
            return 0;
        while (p < n && is_digit((unsigned char)s[p]))
            p++;
    }
    return p == n;
}

/* Skips the string whose opening quote is at *pos; leaves *pos after the closing quote. Rejects
 * raw control bytes, a truncated escape and the escape \u0000 (cJSON would cut the string
 * there). Which escapes are valid is left to cJSON. */
static int scan_string(const char *buf, size_t len, size_t *pos)
{
    size_t i = *pos + 1;

    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '"') {
            *pos = i + 1;
            return 0;
        }
        if (c < 0x20)
            return CM_E_BAD_JSON;
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= len)
            return CM_E_BAD_JSON;
        if (buf[i + 1] != 'u') {
            i += 2;
            continue;
        }
        if (len - i < 6)
            return CM_E_BAD_JSON;
        for (size_t k = 2; k < 6; k++) {
            if (!is_hex((unsigned char)buf[i + k]))
                return CM_E_BAD_JSON;
        }
        if (memcmp(buf + i + 2, "0000", 4) == 0)
            return CM_E_BAD_JSON;
        i += 6;
    }
    return CM_E_BAD_JSON;
}

/* Rejects what cJSON 1.7.15 would accept although RFC 8259 does not (control bytes taken as
 * whitespace, raw control bytes in strings, numbers such as 01, 1. or -01), strings holding
 * \u0000, numbers longer than MAX_NUMBER_CHARS, and nesting deeper than CM_JSON_MAX_DEPTH,
 * before cJSON recurses into it. Whatever
 * passes is then parsed by cJSON, which checks the structure. */
static int prescan(const char *buf, size_t len)
{
    size_t depth = 0;
    size_t i = 0;
    int rc;

    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '"') {
            rc = scan_string(buf, len, &i);
            if (rc != 0)
                return rc;
        } else if (c == '[' || c == '{') {
            if (++depth > CM_JSON_MAX_DEPTH)
                return CM_E_BAD_JSON;
            i++;
        } else if (c == ']' || c == '}') {
            if (depth == 0)
                return CM_E_BAD_JSON;
            depth--;
            i++;
        } else if (c == '-' || is_digit(c)) {
            size_t start = i;
            while (i < len && is_number_char((unsigned char)buf[i]))
                i++;
            if (i - start > MAX_NUMBER_CHARS || !number_ok(buf + start, i - start))
                return CM_E_BAD_JSON;
        } else if (c < 0x20 && !is_json_ws(c)) {
            return CM_E_BAD_JSON;
        } else {
            i++;
        }
    }
    return 0;
}

int cm_json_parse(const char *buf, size_t len, cJSON **out)
{
    char *copy = NULL;
    const char *end = NULL;
    cJSON *root = NULL;
    int rc;

    if (out == NULL || (buf == NULL && len > 0))
        return CM_E_INVAL;
    if (len == 0)
        return CM_E_BAD_JSON;
    rc = prescan(buf, len);
    if (rc != 0)
        return rc;
    if (len == SIZE_MAX)
        return CM_E_NOMEM;

    /* A NUL-terminated copy, so nothing in cJSON can read past the caller's bytes. */
    copy = malloc(len + 1);
    if (copy == NULL)
        return CM_E_NOMEM;
    memcpy(copy, buf, len);
    copy[len] = '\0';

    /* cJSON cannot tell a syntax error from a failed allocation; both count as BAD_JSON. */
    root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    if (root == NULL) {
        rc = CM_E_BAD_JSON;
        goto cleanup;
    }
    for (const char *p = end; p < copy + len; p++) {
        if (!is_json_ws((unsigned char)*p)) {
            rc = CM_E_BAD_JSON;
            goto cleanup;
        }
    }
    *out = root;
    root = NULL;
    rc = 0;

cleanup:
    cJSON_Delete(root);
    free(copy);
    return rc;
}

int cm_json_parse_object(const char *buf, size_t len, cJSON **out)
{
    cJSON *root = NULL;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = cm_json_parse(buf, len, &root);
    if (rc != 0)
        return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return CM_E_BAD_JSON;
    }
    *out = root;
    return 0;
}

/* ---- getters ---------------------------------------------------------------------------- */

/* The member named field (case-sensitive) that is neither absent nor null. */
static int member(const cJSON *obj, const char *field, const cJSON **item)
{
    const cJSON *it;

    if (field == NULL)
        return CM_E_INVAL;
    if (!cJSON_IsObject(obj))
        return CM_E_BAD_FIELD;
    it = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (it == NULL || cJSON_IsNull(it))
        return CM_E_MISSING_FIELD;
    *item = it;
    return 0;
}

/* An integral number in [-2^53, 2^53], where a double still counts as exact. */
static int number_to_i64(const cJSON *it, int64_t *out)
{
    const double limit = (double)CM_JSON_MAX_SAFE_INT;
    double d;

    if (!cJSON_IsNumber(it))
        return CM_E_BAD_FIELD;
    d = it->valuedouble;
    if (!isfinite(d) || d > limit || d < -limit || d != (double)(int64_t)d)
        return CM_E_RANGE;
    *out = (int64_t)d;
    return 0;
}

/* A string of decimal digits only; CM_E_RANGE when it does not fit in 64 bits. */
static int digits_to_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return CM_E_BAD_FIELD;
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_digit((unsigned char)*p))
            return CM_E_BAD_FIELD;
    }
    for (const char *p = s; *p != '\0'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return CM_E_RANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cm_json_get_u64(const cJSON *obj, const char *field, uint64_t *out)
{
    const cJSON *it = NULL;
    int64_t v;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    if (cJSON_IsString(it))
        return digits_to_u64(it->valuestring, out);
    rc = number_to_i64(it, &v);
    if (rc != 0)
        return rc;
    if (v < 0)
        return CM_E_RANGE;
    *out = (uint64_t)v;
    return 0;
}

int cm_json_get_i64(const cJSON *obj, const char *field, int64_t *out)
{
    return cm_json_get_int_range(obj, field, INT64_MIN, INT64_MAX, out);
}

int cm_json_get_int_range(const cJSON *obj, const char *field, int64_t min, int64_t max,
                          int64_t *out)
{
    const cJSON *it = NULL;
    int64_t v;
    int rc;

    if (out == NULL || min > max)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    rc = number_to_i64(it, &v);
    if (rc != 0)
        return rc;
    if (v < min || v > max)
        return CM_E_RANGE;
    *out = v;
    return 0;
}

int cm_json_get_u32(const cJSON *obj, const char *field, uint32_t *out)
{
    int64_t v;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = cm_json_get_int_range(obj, field, 0, UINT32_MAX, &v);
    if (rc != 0)
        return rc;
    *out = (uint32_t)v;
    return 0;
}

int cm_json_get_bool(const cJSON *obj, const char *field, bool *out)
{
    const cJSON *it = NULL;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    if (!cJSON_IsBool(it))
        return CM_E_BAD_FIELD;
    *out = cJSON_IsTrue(it);
    return 0;
}

int cm_json_get_double(const cJSON *obj, const char *field, double *out)
{
    const cJSON *it = NULL;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    if (!cJSON_IsNumber(it))
        return CM_E_BAD_FIELD;
    if (!isfinite(it->valuedouble))
        return CM_E_RANGE;
    *out = it->valuedouble;
    return 0;
}

int cm_json_get_str(const cJSON *obj, const char *field, size_t max_len, const char **out,
                    size_t *len_out)
{
    const cJSON *it = NULL;
    size_t n;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return CM_E_BAD_FIELD;
    n = strlen(it->valuestring);
    if (n > max_len)
        return CM_E_RANGE;
    *out = it->valuestring;
    if (len_out != NULL)
        *len_out = n;
    return 0;
}

static int get_typed(const cJSON *obj, const char *field, int type, const cJSON **out)
{
    const cJSON *it = NULL;
    int rc;

    if (out == NULL)
        return CM_E_INVAL;
    rc = member(obj, field, &it);
    if (rc != 0)
        return rc;
    if ((it->type & 0xFF) != type)
        return CM_E_BAD_FIELD;
    *out = it;
    return 0;
}

int cm_json_get_array(const cJSON *obj, const char *field, const cJSON **out)
{
    return get_typed(obj, field, cJSON_Array, out);
}

int cm_json_get_object(const cJSON *obj, const char *field, const cJSON **out)
{
    return get_typed(obj, field, cJSON_Object, out);
}

/* 1 when the optional field is absent or null (the caller then returns 0), else 0 to read it;
 * errors from the lookup itself (bad obj or field) are returned as they are. */
static int opt_absent(const cJSON *obj, const char *field)
{
    const cJSON *it = NULL;
    int rc = member(obj, field, &it);
    return rc == CM_E_MISSING_FIELD ? 1 : 0;
}

int cm_json_opt_u64(const cJSON *obj, const char *field, uint64_t *out)
{
    if (out != NULL && opt_absent(obj, field))
        return 0;
    return cm_json_get_u64(obj, field, out);
}

int cm_json_opt_bool(const cJSON *obj, const char *field, bool *out)
{
    if (out != NULL && opt_absent(obj, field))
        return 0;
    return cm_json_get_bool(obj, field, out);
}

int cm_json_opt_str(const cJSON *obj, const char *field, size_t max_len, const char **out,
                    size_t *len_out)
{
    if (out != NULL && opt_absent(obj, field))
        return 0;
    return cm_json_get_str(obj, field, max_len, out, len_out);
}

/* ---- building and printing -------------------------------------------------------------- */

int cm_json_add_u64(cJSON *obj, const char *field, uint64_t v)
{
    char digits[24];
    cJSON *it;

    if (!cJSON_IsObject(obj) || field == NULL)
        return CM_E_INVAL;
    if (v <= CM_JSON_MAX_SAFE_INT) {
        it = cJSON_AddNumberToObject(obj, field, (double)v);
    } else {
        snprintf(digits, sizeof(digits), "%" PRIu64, v);
        it = cJSON_AddStringToObject(obj, field, digits);
    }
    return it != NULL ? 0 : CM_E_NOMEM;
}

struct outbuf {
    char *p;
    size_t len;
    size_t cap;
};

static int out_put(struct outbuf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return CM_E_NOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return CM_E_NOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int out_str(struct outbuf *b, const char *s)
{
    return out_put(b, s, strlen(s));
}

static int print_string(struct outbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    int rc;

    if (s == NULL)
        return out_put(b, "\"\"", 2);
    if ((rc = out_put(b, "\"", 1)) != 0)
        return rc;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;

        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20)
            continue;
        if ((rc = out_put(b, run, (size_t)(p - run))) != 0)
            return rc;
        if (c == '\0')
            break;
        run = p + 1;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            n = 6;
        }
        if ((rc = out_put(b, esc, n)) != 0)
            return rc;
    }
    return out_put(b, "\"", 1);
}

/* Prints a number so that it parses back to the same double. cJSON 1.7.15's own printer does
 * not: it compares with a tolerance and prints 2^53 as 9.00719925474099e+15. Integers are
 * printed in full, other values in the fewest of 15, 16 or 17 significant digits that give the
 * same double back. Assumes the "C" LC_NUMERIC locale. */
static int print_number(struct outbuf *b, double d)
{
    char s[40];

    if (!isfinite(d))
        return CM_E_RANGE;
    if (d > -9.0e18 && d < 9.0e18 && d == (double)(int64_t)d) {
        snprintf(s, sizeof(s), "%" PRId64, (int64_t)d);
        return out_str(b, s);
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    return out_str(b, s);
}

static int print_value(struct outbuf *b, const cJSON *v, int depth)
{
    const cJSON *c;
    int rc;

    switch (v->type & 0xFF) {
    case cJSON_NULL:
        return out_str(b, "null");
    case cJSON_False:
        return out_str(b, "false");
    case cJSON_True:
        return out_str(b, "true");
    case cJSON_Number:
        return print_number(b, v->valuedouble);
    case cJSON_String:
        return print_string(b, v->valuestring);
    case cJSON_Raw:
        return v->valuestring ? out_str(b, v->valuestring) : CM_E_INVAL;
    case cJSON_Array:
    case cJSON_Object:
        break;
    default:
        return CM_E_INVAL;
    }
    if (depth >= CM_JSON_MAX_DEPTH)
        return CM_E_RANGE;
    int is_obj = cJSON_IsObject(v);
    if ((rc = out_put(b, is_obj ? "{" : "[", 1)) != 0)
        return rc;
    for (c = v->child; c != NULL; c = c->next) {
        if (c != v->child && (rc = out_put(b, ",", 1)) != 0)
            return rc;
        if (is_obj) {
            if ((rc = print_string(b, c->string)) != 0 || (rc = out_put(b, ":", 1)) != 0)
                return rc;
        }
        if ((rc = print_value(b, c, depth + 1)) != 0)
            return rc;
    }
    return out_put(b, is_obj ? "}" : "]", 1);
}

int cm_json_print(const cJSON *v, char **out, size_t *len_out)
{
    struct outbuf b = {0};
    int rc;

    if (v == NULL || out == NULL)
        return CM_E_INVAL;
    rc = print_value(&b, v, 0);
    if (rc != 0)
        goto cleanup;
    *out = b.p;
    if (len_out != NULL)
        *len_out = b.len;
    b.p = NULL;

cleanup:
    free(b.p);
    return rc;
}
