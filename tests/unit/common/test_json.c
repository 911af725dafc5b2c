/* JSON: strict parsing (malformed, truncated, trailing bytes, depth, \u0000), the typed getters
 * on good and bad fields, cm_json_add_u64, and an exact printer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "common/json.h"

#define SENT_U64 0xA5A5A5A5A5A5A5A5ULL
#define SENT_I64 ((int64_t)-0x5A5A5A5A5A5A5A5ALL)
#define SENT_U32 0xA5A5A5A5u

/* cm_json_parse on an exact-size heap copy (no NUL after it), so ASan sees any over-read. */
static int parse_exact(const char *s, size_t len, cJSON **out)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, s, len);
    int rc = cm_json_parse(copy, len, out);
    free(copy);
    return rc;
}

static void assert_parses(const char *s, size_t len)
{
    cJSON *v = NULL;
    int rc = parse_exact(s, len, &v);
    cr_assert_eq(rc, 0, "should parse: [%.*s] got %s", (int)len, s, cm_errname(rc));
    cr_assert_not_null(v);
    cJSON_Delete(v);
}

static void assert_bad(const char *s, size_t len)
{
    cJSON *v = (cJSON *)&v; /* a sentinel: must not be overwritten */
    cJSON *sentinel = v;
    int rc = parse_exact(s, len, &v);
    if (rc == 0)
        cJSON_Delete(v);
    cr_assert_eq(rc, CM_E_BAD_JSON, "should be rejected: [%.*s] (len %zu) got %s", (int)len, s, len,
                 cm_errname(rc));
    cr_assert_eq(v, sentinel, "out written on error: [%.*s]", (int)len, s);
}

#define ASSERT_PARSES(lit) assert_parses((lit), sizeof(lit) - 1)
#define ASSERT_BAD(lit)    assert_bad((lit), sizeof(lit) - 1)

static cJSON *parse_obj(const char *s)
{
    cJSON *v = NULL;
    int rc = cm_json_parse_object(s, strlen(s), &v);
    cr_assert_eq(rc, 0, "fixture does not parse: %s (%s)", s, cm_errname(rc));
    return v;
}

/* ---- parsing ------------------------------------------------------------------------------ */

Test(json, parse_valid_documents)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5",
        "-1.25e-3",
        "1E+5",
        "1e5",
        "0.0",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\u20AC\"",
        " \t\r\n{ \"a\" : [ 1 , 2 , { \"b\" : null } ] }\n\t ",
        "{\"a\":{\"b\":{\"c\":[true,false,null,\"x\",-1,2.5]}}}",
        "[\"[[[[{{{{\", \"}}]]\"]",
        "\"caf\xc3\xa9\"",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_parses(docs[i], strlen(docs[i]));
}

Test(json, parse_reads_exactly_len_bytes)
{
    const char *s = "{\"a\":7}garbage";
    cJSON *v = NULL;
    uint64_t a = 0;
    cr_assert_eq(parse_exact(s, 7, &v), 0);
    cr_assert_eq(cm_json_get_u64(v, "a", &a), 0);
    cr_assert_eq(a, 7);
    cJSON_Delete(v);
    assert_bad(s, strlen(s));
    /* A number cut by len: "12" of "123". */
    cr_assert_eq(parse_exact("123", 2, &v), 0);
    cr_assert_eq(v->valuedouble, 12.0);
    cJSON_Delete(v);
}

Test(json, parse_rejects_malformed)
{
    static const char *const docs[] = {
        " ",         "{",           "}",           "[",           "]",        "[1,]",
        "[,1]",      "[1 2]",       "{\"a\":}",    "{\"a\" 1}",   "{a:1}",    "{\"a\":1,}",
        "{,}",       "{\"a\"}",     "{1:2}",       "[\"a\":1]",   "'a'",      "tru",
        "nul",       "True",        "NULL",        "undefined",   "\"abc",    "\"\\x\"",
        "\"\\u12\"", "\"\\u12G4\"", "\"\\uD800\"", "\"\\uDC00\"", "\"\\\"",   "{\"a\":1 \"b\":2}",
        "[1]]",      "[[1]",        "{\"a\":[}]",  "\\",          "/* c */1", "1 // c",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_bad(docs[i], strlen(docs[i]));
}

Test(json, parse_rejects_non_rfc_numbers)
{
    static const char *const docs[] = {
        "01",    "-01",      "00",   "1.",        ".5",   "+1",    "1e",         "1e+",
        "1E-",   "-",        "--1",  "1.e5",      "0x10", "1_000", "NaN",        "nan",
        "-nan",  "Infinity", "inf",  "-Infinity", "[01]", "[1.]",  "{\"a\":01}", "[-]",
        "1e5.5", "1.5.5",    "1ee5", "[1e5e]",    "- 1",  "[.1]",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_bad(docs[i], strlen(docs[i]));
}

Test(json, parse_rejects_control_bytes)
{
    ASSERT_BAD("\"a\tb\"");
    ASSERT_BAD("\"a\nb\"");
    ASSERT_BAD("\"a\x01"
               "b\"");
    ASSERT_BAD("\"a\x1f"
               "b\"");
    ASSERT_BAD("\"a\0b\"");
    ASSERT_BAD("\x01 1");
    ASSERT_BAD("1 \x01");
    ASSERT_BAD("[1,\x0b 2]");
    ASSERT_BAD("{}\0");
    ASSERT_BAD("\0");
    ASSERT_BAD("[\0]");
    /* DEL and bytes >= 0x80 are ordinary string content. */
    ASSERT_PARSES("\"a\x7f"
                  "b\"");
}

Test(json, parse_rejects_trailing_garbage)
{
    static const char *const docs[] = {
        "{} x", "{}{}",  "[1]]",  "1 2",   "\"a\"b", "null null",
        "{},",  "[] []", "true1", "{}\n}", "0 0",    "\"a\"\"b\"",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        assert_bad(docs[i], strlen(docs[i]));
    ASSERT_PARSES("{} \n\t\r ");
    ASSERT_PARSES("  1  ");
}

static void check_every_prefix_fails(const char *doc)
{
    size_t len = strlen(doc);
    assert_parses(doc, len);
    for (size_t n = 0; n < len; n++)
        assert_bad(doc, n);
}

Test(json, every_prefix_of_a_document_fails)
{
    check_every_prefix_fails("{\"name\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\"size\":-12.5e+3,"
                             "\"list\":[1,true,false,null,{\"x\":[]},\"\"],\"o\":{},"
                             "\"big\":\"18446744073709551615\",\"n\":0}");
    check_every_prefix_fails("[ {\"a\" : 1 } , [ 2 , 3 ] , \"s\" , null , 10 ]");
    check_every_prefix_fails("\"string with \\\\ and \\n\"");
}

static char *nested(int depth, char open, char close)
{
    /* open*depth + close*depth, objects as {"a":{"a":...{}}} */
    size_t cap = (size_t)depth * 8 + 8;
    char *s = malloc(cap);
    size_t n = 0;
    cr_assert_not_null(s);
    for (int i = 0; i < depth; i++) {
        s[n++] = open;
        if (open == '{' && i + 1 < depth) {
            memcpy(s + n, "\"a\":", 4);
            n += 4;
        }
    }
    for (int i = 0; i < depth; i++)
        s[n++] = close;
    s[n] = '\0';
    return s;
}

Test(json, nesting_limit_arrays)
{
    char *ok = nested(CM_JSON_MAX_DEPTH, '[', ']');
    char *deep = nested(CM_JSON_MAX_DEPTH + 1, '[', ']');
    cr_assert_eq(CM_JSON_MAX_DEPTH, 64);
    assert_parses(ok, strlen(ok));
    assert_bad(deep, strlen(deep));
    free(ok);
    free(deep);
}

Test(json, nesting_limit_objects)
{
    char *ok = nested(CM_JSON_MAX_DEPTH, '{', '}');
    char *deep = nested(CM_JSON_MAX_DEPTH + 1, '{', '}');
    assert_parses(ok, strlen(ok));
    assert_bad(deep, strlen(deep));
    free(ok);
    free(deep);
}

Test(json, nesting_very_deep_fails_cleanly)
{
    size_t n = 1000000;
    char *s = malloc(n);
    cr_assert_not_null(s);
    memset(s, '[', n);
    assert_bad(s, n);
    /* Balanced, far beyond cJSON's own limit of 1000. */
    char *b = nested(5000, '[', ']');
    assert_bad(b, strlen(b));
    free(b);
    free(s);
}

Test(json, nesting_counts_depth_not_total)
{
    /* Two siblings each 63 deep inside one array: depth 64, many brackets in total. */
    char *inner = nested(CM_JSON_MAX_DEPTH - 1, '[', ']');
    size_t n = strlen(inner);
    char *doc = malloc(2 * n + 4);
    cr_assert_not_null(doc);
    sprintf(doc, "[%s,%s]", inner, inner);
    assert_parses(doc, strlen(doc));
    free(inner);
    free(doc);
    /* Brackets inside strings are not nesting. */
    char str[300];
    memset(str, '[', sizeof(str));
    str[0] = '"';
    str[sizeof(str) - 2] = '"';
    str[sizeof(str) - 1] = '\0';
    assert_parses(str, strlen(str));
}

/* {"a":[{"a":[ ... alternating objects and arrays, depth levels deep, around a 1. */
static size_t alternating(char *buf, int depth)
{
    size_t n = 0;
    for (int i = 0; i < depth; i++)
        n += (size_t)sprintf(buf + n, "%s", i % 2 ? "[" : "{\"a\":");
    n += (size_t)sprintf(buf + n, "1");
    for (int i = depth - 1; i >= 0; i--)
        n += (size_t)sprintf(buf + n, "%s", i % 2 ? "]" : "}");
    return n;
}

Test(json, nesting_limit_mixed)
{
    char buf[1024];
    size_t n = alternating(buf, CM_JSON_MAX_DEPTH);
    assert_parses(buf, n);
    n = alternating(buf, CM_JSON_MAX_DEPTH + 1);
    assert_bad(buf, n);
}

Test(json, nul_escape_rejected)
{
    ASSERT_BAD("\"a\\u0000b\"");
    ASSERT_BAD("\"\\u0000\"");
    ASSERT_BAD("{\"a\\u0000b\":1}");
    ASSERT_BAD("{\"s\":\"x\\u0000\"}");
    ASSERT_BAD("\"\\ud800\\u0000\"");
}

Test(json, escaped_backslash_before_u0000_is_text)
{
    cJSON *v = NULL;
    const char *s;
    size_t len;
    cr_assert_eq(cm_json_parse_object("{\"s\":\"\\\\u0000\"}", 15, &v), 0);
    cr_assert_eq(cm_json_get_str(v, "s", 100, &s, &len), 0);
    cr_assert_str_eq(s, "\\u0000");
    cr_assert_eq(len, 6);
    cJSON_Delete(v);
}

Test(json, unicode_escapes_decode_to_utf8)
{
    cJSON *v = parse_obj("{\"e\":\"\\u00e9\",\"smile\":\"\\ud83d\\ude00\",\"one\":\"\\u0001\"}");
    const char *s;
    size_t len;
    cr_assert_eq(cm_json_get_str(v, "e", 10, &s, &len), 0);
    cr_assert_eq(len, 2);
    cr_assert_str_eq(s, "\xc3\xa9");
    cr_assert_eq(cm_json_get_str(v, "smile", 10, &s, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_str_eq(s, "\xf0\x9f\x98\x80");
    cr_assert_eq(cm_json_get_str(v, "one", 10, &s, &len), 0);
    cr_assert_eq(len, 1);
    cr_assert_eq(s[0], 1);
    cJSON_Delete(v);
}

Test(json, numbers_longer_than_63_chars_rejected)
{
    char num[80];
    memset(num, '1', 63);
    num[63] = '\0';
    assert_parses(num, 63);
    memset(num, '1', 64);
    num[64] = '\0';
    assert_bad(num, 64);
    const char *frac = "[-0.000000000000000000000000000000000000000000000000000000000000001]";
    cr_assert_eq(strlen(frac), 68);
    assert_bad(frac, strlen(frac));
}

Test(json, parse_object_requires_object)
{
    static const char *const docs[] = {"[]", "1", "\"s\"", "null", "true", "[{}]"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        cJSON *v = NULL;
        cr_assert_eq(cm_json_parse_object(docs[i], strlen(docs[i]), &v), CM_E_BAD_JSON, "%s",
                     docs[i]);
        cr_assert_null(v);
    }
    cJSON *v = NULL;
    cr_assert_eq(cm_json_parse_object("{}", 2, &v), 0);
    cr_assert(cJSON_IsObject(v));
    cJSON_Delete(v);
    cr_assert_eq(cm_json_parse_object("{", 1, &v), CM_E_BAD_JSON);
}

Test(json, parse_invalid_arguments)
{
    cJSON *v = NULL;
    cr_assert_eq(cm_json_parse("{}", 2, NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_parse(NULL, 5, &v), CM_E_INVAL);
    cr_assert_eq(cm_json_parse(NULL, 0, &v), CM_E_BAD_JSON);
    cr_assert_eq(cm_json_parse("", 0, &v), CM_E_BAD_JSON);
    cr_assert_eq(cm_json_parse_object("{}", 2, NULL), CM_E_INVAL);
    cr_assert_null(v);
}

/* ---- getters ------------------------------------------------------------------------------ */

static const char fixture_doc[] =
    "{\"zero\":0,\"small\":42,\"neg\":-5,\"negzero\":-0,"
    "\"max_safe\":9007199254740992,\"over_safe\":9007199254740994,"
    "\"neg_safe\":-9007199254740992,\"neg_over\":-9007199254740994,"
    "\"u32max\":4294967295,\"u32over\":4294967296,"
    "\"frac\":1.5,\"tiny\":1e-300,\"huge\":1e300,\"inf\":1e400,\"ninf\":-1e400,"
    "\"fracexp\":1.5e1,\"expint\":1e3,"
    "\"t\":true,\"f\":false,\"nul\":null,"
    "\"s\":\"abc\",\"empty\":\"\",\"s_true\":\"true\",\"arr\":[1,2],\"obj\":{\"x\":1},"
    "\"u64max_str\":\"18446744073709551615\",\"u64over_str\":\"18446744073709551616\","
    "\"u64big_str\":\"99999999999999999999999\",\"str_num\":\"42\",\"str_lead0\":\"007\","
    "\"str_neg\":\"-1\",\"str_plus\":\"+1\",\"str_space\":\" 1\",\"str_trail\":\"1 \","
    "\"str_frac\":\"1.0\",\"str_hex\":\"0x10\",\"str_alpha\":\"12a\",\"str_exp\":\"1e3\","
    "\"Case\":1}";

static cJSON *fixture(void)
{
    return parse_obj(fixture_doc);
}

static void u64_ok(const cJSON *o, const char *f, uint64_t want)
{
    uint64_t v = SENT_U64;
    int rc = cm_json_get_u64(o, f, &v);
    cr_assert_eq(rc, 0, "get_u64 %s: %s", f, cm_errname(rc));
    cr_assert_eq(v, want, "get_u64 %s: got %llu", f, (unsigned long long)v);
}

static void u64_err(const cJSON *o, const char *f, int want)
{
    uint64_t v = SENT_U64;
    int rc = cm_json_get_u64(o, f, &v);
    cr_assert_eq(rc, want, "get_u64 %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, SENT_U64, "get_u64 %s wrote *out on error", f);
}

static void i64_ok(const cJSON *o, const char *f, int64_t want)
{
    int64_t v = SENT_I64;
    int rc = cm_json_get_i64(o, f, &v);
    cr_assert_eq(rc, 0, "get_i64 %s: %s", f, cm_errname(rc));
    cr_assert_eq(v, want, "get_i64 %s: got %lld", f, (long long)v);
}

static void i64_err(const cJSON *o, const char *f, int want)
{
    int64_t v = SENT_I64;
    int rc = cm_json_get_i64(o, f, &v);
    cr_assert_eq(rc, want, "get_i64 %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, SENT_I64, "get_i64 %s wrote *out on error", f);
}

static void u32_ok(const cJSON *o, const char *f, uint32_t want)
{
    uint32_t v = SENT_U32;
    int rc = cm_json_get_u32(o, f, &v);
    cr_assert_eq(rc, 0, "get_u32 %s: %s", f, cm_errname(rc));
    cr_assert_eq(v, want, "get_u32 %s: got %u", f, v);
}

static void u32_err(const cJSON *o, const char *f, int want)
{
    uint32_t v = SENT_U32;
    int rc = cm_json_get_u32(o, f, &v);
    cr_assert_eq(rc, want, "get_u32 %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, SENT_U32, "get_u32 %s wrote *out on error", f);
}

static void range_err(const cJSON *o, const char *f, int64_t min, int64_t max, int want)
{
    int64_t v = SENT_I64;
    int rc = cm_json_get_int_range(o, f, min, max, &v);
    cr_assert_eq(rc, want, "get_int_range %s [%lld,%lld]: got %s want %s", f, (long long)min,
                 (long long)max, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, SENT_I64, "get_int_range %s wrote *out on error", f);
}

static void bool_err(const cJSON *o, const char *f, int want)
{
    bool v = true;
    int rc = cm_json_get_bool(o, f, &v);
    cr_assert_eq(rc, want, "get_bool %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, true, "get_bool %s wrote *out on error", f);
}

static void double_err(const cJSON *o, const char *f, int want)
{
    double v = 123.25;
    int rc = cm_json_get_double(o, f, &v);
    cr_assert_eq(rc, want, "get_double %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, 123.25, "get_double %s wrote *out on error", f);
}

static void str_err(const cJSON *o, const char *f, size_t max, int want)
{
    const char *s = "sentinel";
    size_t len = 999;
    int rc = cm_json_get_str(o, f, max, &s, &len);
    cr_assert_eq(rc, want, "get_str %s: got %s want %s", f, cm_errname(rc), cm_errname(want));
    cr_assert_str_eq(s, "sentinel", "get_str %s wrote *out on error", f);
    cr_assert_eq(len, 999, "get_str %s wrote *len_out on error", f);
}

static void node_err(const cJSON *o, const char *f, int is_array, int want)
{
    const cJSON *sent = (const cJSON *)&sent;
    const cJSON *v = sent;
    int rc = is_array ? cm_json_get_array(o, f, &v) : cm_json_get_object(o, f, &v);
    cr_assert_eq(rc, want, "get_%s %s: got %s want %s", is_array ? "array" : "object", f,
                 cm_errname(rc), cm_errname(want));
    cr_assert_eq(v, sent, "wrote *out on error");
}

Test(json, u64_valid)
{
    cJSON *o = fixture();
    u64_ok(o, "zero", 0);
    u64_ok(o, "small", 42);
    u64_ok(o, "negzero", 0);
    u64_ok(o, "max_safe", CM_JSON_MAX_SAFE_INT);
    u64_ok(o, "fracexp", 15);
    u64_ok(o, "expint", 1000);
    u64_ok(o, "u32over", 4294967296ULL);
    u64_ok(o, "u64max_str", UINT64_MAX);
    u64_ok(o, "str_num", 42);
    u64_ok(o, "str_lead0", 7);
    cJSON_Delete(o);
}

Test(json, u64_out_of_range)
{
    cJSON *o = fixture();
    static const char *const f[] = {"neg",  "over_safe", "neg_over", "frac",        "tiny",
                                    "huge", "inf",       "ninf",     "u64over_str", "u64big_str"};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        u64_err(o, f[i], CM_E_RANGE);
    cJSON_Delete(o);
}

Test(json, u64_wrong_type)
{
    cJSON *o = fixture();
    static const char *const f[] = {"t",        "f",       "arr",       "obj",       "empty",
                                    "s",        "str_neg", "str_plus",  "str_space", "str_trail",
                                    "str_frac", "str_hex", "str_alpha", "str_exp",   "s_true"};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        u64_err(o, f[i], CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, missing_and_null_fields)
{
    cJSON *o = fixture();
    u64_err(o, "absent", CM_E_MISSING_FIELD);
    u64_err(o, "nul", CM_E_MISSING_FIELD);
    i64_err(o, "absent", CM_E_MISSING_FIELD);
    i64_err(o, "nul", CM_E_MISSING_FIELD);
    u32_err(o, "absent", CM_E_MISSING_FIELD);
    u32_err(o, "nul", CM_E_MISSING_FIELD);
    range_err(o, "absent", 0, 10, CM_E_MISSING_FIELD);
    range_err(o, "nul", 0, 10, CM_E_MISSING_FIELD);
    bool_err(o, "absent", CM_E_MISSING_FIELD);
    bool_err(o, "nul", CM_E_MISSING_FIELD);
    double_err(o, "absent", CM_E_MISSING_FIELD);
    double_err(o, "nul", CM_E_MISSING_FIELD);
    str_err(o, "absent", 100, CM_E_MISSING_FIELD);
    str_err(o, "nul", 100, CM_E_MISSING_FIELD);
    node_err(o, "absent", 1, CM_E_MISSING_FIELD);
    node_err(o, "nul", 1, CM_E_MISSING_FIELD);
    node_err(o, "absent", 0, CM_E_MISSING_FIELD);
    node_err(o, "nul", 0, CM_E_MISSING_FIELD);
    cJSON_Delete(o);
}

Test(json, field_names_are_case_sensitive)
{
    cJSON *o = fixture();
    u64_ok(o, "Case", 1);
    u64_err(o, "case", CM_E_MISSING_FIELD);
    u64_err(o, "SMALL", CM_E_MISSING_FIELD);
    cJSON_Delete(o);
}

Test(json, i64_values)
{
    cJSON *o = fixture();
    i64_ok(o, "zero", 0);
    i64_ok(o, "neg", -5);
    i64_ok(o, "small", 42);
    i64_ok(o, "max_safe", 9007199254740992LL);
    i64_ok(o, "neg_safe", -9007199254740992LL);
    i64_ok(o, "fracexp", 15);
    i64_err(o, "over_safe", CM_E_RANGE);
    i64_err(o, "neg_over", CM_E_RANGE);
    i64_err(o, "frac", CM_E_RANGE);
    i64_err(o, "tiny", CM_E_RANGE);
    i64_err(o, "huge", CM_E_RANGE);
    i64_err(o, "inf", CM_E_RANGE);
    i64_err(o, "ninf", CM_E_RANGE);
    i64_err(o, "str_num", CM_E_BAD_FIELD);
    i64_err(o, "s", CM_E_BAD_FIELD);
    i64_err(o, "t", CM_E_BAD_FIELD);
    i64_err(o, "arr", CM_E_BAD_FIELD);
    i64_err(o, "obj", CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, u32_values)
{
    cJSON *o = fixture();
    u32_ok(o, "zero", 0);
    u32_ok(o, "small", 42);
    u32_ok(o, "u32max", UINT32_MAX);
    u32_err(o, "u32over", CM_E_RANGE);
    u32_err(o, "neg", CM_E_RANGE);
    u32_err(o, "frac", CM_E_RANGE);
    u32_err(o, "huge", CM_E_RANGE);
    u32_err(o, "max_safe", CM_E_RANGE);
    u32_err(o, "inf", CM_E_RANGE);
    u32_err(o, "str_num", CM_E_BAD_FIELD);
    u32_err(o, "t", CM_E_BAD_FIELD);
    u32_err(o, "arr", CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, int_range_bounds)
{
    cJSON *o = fixture();
    int64_t v = 0;
    cr_assert_eq(cm_json_get_int_range(o, "small", 42, 42, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(cm_json_get_int_range(o, "small", 0, 100, &v), 0);
    cr_assert_eq(cm_json_get_int_range(o, "neg", -5, -5, &v), 0);
    cr_assert_eq(v, -5);
    cr_assert_eq(cm_json_get_int_range(o, "neg", INT64_MIN, INT64_MAX, &v), 0);
    range_err(o, "small", 0, 41, CM_E_RANGE);
    range_err(o, "small", 43, 100, CM_E_RANGE);
    range_err(o, "neg", -4, 10, CM_E_RANGE);
    range_err(o, "frac", 0, 10, CM_E_RANGE);
    range_err(o, "over_safe", INT64_MIN, INT64_MAX, CM_E_RANGE);
    range_err(o, "s", 0, 10, CM_E_BAD_FIELD);
    range_err(o, "small", 10, 0, CM_E_INVAL);
    cJSON_Delete(o);
}

Test(json, bool_values)
{
    cJSON *o = fixture();
    bool v = false;
    cr_assert_eq(cm_json_get_bool(o, "t", &v), 0);
    cr_assert_eq(v, true);
    cr_assert_eq(cm_json_get_bool(o, "f", &v), 0);
    cr_assert_eq(v, false);
    bool_err(o, "zero", CM_E_BAD_FIELD);
    bool_err(o, "small", CM_E_BAD_FIELD);
    bool_err(o, "s_true", CM_E_BAD_FIELD);
    bool_err(o, "arr", CM_E_BAD_FIELD);
    bool_err(o, "obj", CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, double_values)
{
    cJSON *o = fixture();
    double v = 0;
    cr_assert_eq(cm_json_get_double(o, "frac", &v), 0);
    cr_assert_eq(v, 1.5);
    cr_assert_eq(cm_json_get_double(o, "huge", &v), 0);
    cr_assert_eq(v, 1e300);
    cr_assert_eq(cm_json_get_double(o, "tiny", &v), 0);
    cr_assert_eq(v, 1e-300);
    cr_assert_eq(cm_json_get_double(o, "neg", &v), 0);
    cr_assert_eq(v, -5.0);
    cr_assert_eq(cm_json_get_double(o, "over_safe", &v), 0);
    cr_assert_eq(v, 9007199254740994.0);
    double_err(o, "inf", CM_E_RANGE);
    double_err(o, "ninf", CM_E_RANGE);
    double_err(o, "s", CM_E_BAD_FIELD);
    double_err(o, "str_num", CM_E_BAD_FIELD);
    double_err(o, "t", CM_E_BAD_FIELD);
    double_err(o, "arr", CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, double_rejects_nan_in_built_tree)
{
    cJSON *o = cJSON_CreateObject();
    cr_assert_not_null(cJSON_AddNumberToObject(o, "nan", NAN));
    double_err(o, "nan", CM_E_RANGE);
    u64_err(o, "nan", CM_E_RANGE);
    i64_err(o, "nan", CM_E_RANGE);
    cJSON_Delete(o);
}

Test(json, str_values)
{
    cJSON *o = fixture();
    const char *s = NULL;
    size_t len = 0;
    cr_assert_eq(cm_json_get_str(o, "s", 3, &s, &len), 0);
    cr_assert_str_eq(s, "abc");
    cr_assert_eq(len, 3);
    cr_assert_eq(s, cJSON_GetObjectItemCaseSensitive(o, "s")->valuestring, "borrowed, not copied");
    s = NULL;
    cr_assert_eq(cm_json_get_str(o, "s", SIZE_MAX, &s, NULL), 0, "len_out may be NULL");
    cr_assert_str_eq(s, "abc");
    cr_assert_eq(cm_json_get_str(o, "empty", 0, &s, &len), 0);
    cr_assert_str_eq(s, "");
    cr_assert_eq(len, 0);
    str_err(o, "s", 2, CM_E_RANGE);
    str_err(o, "s", 0, CM_E_RANGE);
    str_err(o, "small", 100, CM_E_BAD_FIELD);
    str_err(o, "t", 100, CM_E_BAD_FIELD);
    str_err(o, "arr", 100, CM_E_BAD_FIELD);
    str_err(o, "obj", 100, CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, long_string_against_max_len)
{
    enum { N = 10000 };
    char *doc = malloc(N + 16);
    cr_assert_not_null(doc);
    memcpy(doc, "{\"s\":\"", 6);
    memset(doc + 6, 'x', N);
    memcpy(doc + 6 + N, "\"}", 3);
    cJSON *o = parse_obj(doc);
    const char *s = NULL;
    size_t len = 0;
    str_err(o, "s", N - 1, CM_E_RANGE);
    cr_assert_eq(cm_json_get_str(o, "s", N, &s, &len), 0);
    cr_assert_eq(len, N);
    cr_assert_eq(strlen(s), N);
    cJSON_Delete(o);
    free(doc);
}

Test(json, str_max_len_counts_bytes_not_characters)
{
    cJSON *o = parse_obj("{\"s\":\"\\u00e9\\u00e9\"}");
    const char *s;
    size_t len;
    str_err(o, "s", 3, CM_E_RANGE);
    cr_assert_eq(cm_json_get_str(o, "s", 4, &s, &len), 0);
    cr_assert_eq(len, 4);
    cJSON_Delete(o);
}

Test(json, array_and_object_members)
{
    cJSON *o = fixture();
    const cJSON *v = NULL;
    cr_assert_eq(cm_json_get_array(o, "arr", &v), 0);
    cr_assert(cJSON_IsArray(v));
    cr_assert_eq(cJSON_GetArraySize(v), 2);
    cr_assert_eq(cm_json_get_object(o, "obj", &v), 0);
    cr_assert(cJSON_IsObject(v));
    u64_ok(v, "x", 1);
    node_err(o, "obj", 1, CM_E_BAD_FIELD);
    node_err(o, "arr", 0, CM_E_BAD_FIELD);
    node_err(o, "s", 1, CM_E_BAD_FIELD);
    node_err(o, "s", 0, CM_E_BAD_FIELD);
    node_err(o, "small", 1, CM_E_BAD_FIELD);
    node_err(o, "t", 0, CM_E_BAD_FIELD);
    cJSON_Delete(o);
}

Test(json, getters_on_a_non_object)
{
    cJSON *a = NULL;
    cr_assert_eq(cm_json_parse("[1,2]", 5, &a), 0);
    u64_err(a, "x", CM_E_BAD_FIELD);
    i64_err(a, "x", CM_E_BAD_FIELD);
    u32_err(a, "x", CM_E_BAD_FIELD);
    range_err(a, "x", 0, 1, CM_E_BAD_FIELD);
    bool_err(a, "x", CM_E_BAD_FIELD);
    double_err(a, "x", CM_E_BAD_FIELD);
    str_err(a, "x", 10, CM_E_BAD_FIELD);
    node_err(a, "x", 1, CM_E_BAD_FIELD);
    node_err(a, "x", 0, CM_E_BAD_FIELD);
    u64_err(NULL, "x", CM_E_BAD_FIELD);
    str_err(NULL, "x", 10, CM_E_BAD_FIELD);
    cJSON_Delete(a);
}

Test(json, getters_null_arguments)
{
    cJSON *o = fixture();
    u64_err(o, NULL, CM_E_INVAL);
    str_err(o, NULL, 10, CM_E_INVAL);
    cr_assert_eq(cm_json_get_u64(o, "small", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_i64(o, "small", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_u32(o, "small", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_bool(o, "t", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_double(o, "frac", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_str(o, "s", 10, NULL, NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_get_array(o, "arr", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_opt_u64(o, "absent", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_opt_bool(o, "absent", NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_opt_str(o, "absent", 10, NULL, NULL), CM_E_INVAL);
    cJSON_Delete(o);
}

Test(json, optional_getters)
{
    cJSON *o = fixture();
    uint64_t u = SENT_U64;
    bool b = true;
    const char *s = "sentinel";
    size_t len = 999;

    /* Absent or null: 0 and nothing written. */
    cr_assert_eq(cm_json_opt_u64(o, "absent", &u), 0);
    cr_assert_eq(cm_json_opt_u64(o, "nul", &u), 0);
    cr_assert_eq(u, SENT_U64);
    cr_assert_eq(cm_json_opt_bool(o, "absent", &b), 0);
    cr_assert_eq(cm_json_opt_bool(o, "nul", &b), 0);
    cr_assert_eq(b, true);
    cr_assert_eq(cm_json_opt_str(o, "absent", 10, &s, &len), 0);
    cr_assert_eq(cm_json_opt_str(o, "nul", 10, &s, &len), 0);
    cr_assert_str_eq(s, "sentinel");
    cr_assert_eq(len, 999);

    /* Present and valid: read. */
    cr_assert_eq(cm_json_opt_u64(o, "small", &u), 0);
    cr_assert_eq(u, 42);
    cr_assert_eq(cm_json_opt_u64(o, "u64max_str", &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(cm_json_opt_bool(o, "f", &b), 0);
    cr_assert_eq(b, false);
    cr_assert_eq(cm_json_opt_str(o, "s", 10, &s, &len), 0);
    cr_assert_str_eq(s, "abc");
    cr_assert_eq(len, 3);

    /* Present and wrong: still an error, nothing written. */
    u = 7;
    cr_assert_eq(cm_json_opt_u64(o, "s", &u), CM_E_BAD_FIELD);
    cr_assert_eq(cm_json_opt_u64(o, "neg", &u), CM_E_RANGE);
    cr_assert_eq(cm_json_opt_u64(o, "u64over_str", &u), CM_E_RANGE);
    cr_assert_eq(u, 7);
    b = true;
    cr_assert_eq(cm_json_opt_bool(o, "zero", &b), CM_E_BAD_FIELD);
    cr_assert_eq(b, true);
    s = "sentinel";
    cr_assert_eq(cm_json_opt_str(o, "small", 10, &s, &len), CM_E_BAD_FIELD);
    cr_assert_eq(cm_json_opt_str(o, "s", 2, &s, &len), CM_E_RANGE);
    cr_assert_str_eq(s, "sentinel");
    cJSON_Delete(o);

    /* On a non-object an optional field is still an error. */
    cJSON *a = NULL;
    cr_assert_eq(cm_json_parse("[]", 2, &a), 0);
    cr_assert_eq(cm_json_opt_u64(a, "x", &u), CM_E_BAD_FIELD);
    cr_assert_eq(cm_json_opt_bool(a, "x", &b), CM_E_BAD_FIELD);
    cr_assert_eq(cm_json_opt_str(a, "x", 10, &s, &len), CM_E_BAD_FIELD);
    cJSON_Delete(a);
}

/* ---- building and printing ---------------------------------------------------------------- */

Test(json, add_u64_number_or_string)
{
    static const uint64_t vals[] = {0,
                                    1,
                                    4294967296ULL,
                                    CM_JSON_MAX_SAFE_INT - 1,
                                    CM_JSON_MAX_SAFE_INT,
                                    CM_JSON_MAX_SAFE_INT + 1,
                                    CM_JSON_MAX_SAFE_INT + 2,
                                    8000000000000001ULL,
                                    UINT64_MAX - 1,
                                    UINT64_MAX};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        cJSON *o = cJSON_CreateObject();
        cr_assert_eq(cm_json_add_u64(o, "v", vals[i]), 0);
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "v");
        if (vals[i] <= CM_JSON_MAX_SAFE_INT) {
            cr_assert(cJSON_IsNumber(it), "%llu as a number", (unsigned long long)vals[i]);
        } else {
            char want[32];
            snprintf(want, sizeof(want), "%llu", (unsigned long long)vals[i]);
            cr_assert(cJSON_IsString(it), "%llu as a string", (unsigned long long)vals[i]);
            cr_assert_str_eq(it->valuestring, want);
        }
        u64_ok(o, "v", vals[i]);

        /* And across the wire: print, parse, read. */
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(cm_json_print(o, &text, &len), 0);
        cJSON *back = NULL;
        cr_assert_eq(cm_json_parse_object(text, len, &back), 0, "%s", text);
        u64_ok(back, "v", vals[i]);
        cJSON_Delete(back);
        free(text);
        cJSON_Delete(o);
    }
}

Test(json, add_u64_invalid_arguments)
{
    cJSON *a = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    cr_assert_eq(cm_json_add_u64(a, "v", 1), CM_E_INVAL);
    cr_assert_eq(cm_json_add_u64(NULL, "v", 1), CM_E_INVAL);
    cr_assert_eq(cm_json_add_u64(o, NULL, 1), CM_E_INVAL);
    cr_assert_null(o->child);
    cJSON_Delete(a);
    cJSON_Delete(o);
}

Test(json, print_is_compact)
{
    const char *in = " { \"a\" : 1 , \"b\" : [ true , false , null ] , \"c\" : \"x y\" ,"
                     " \"d\" : { } , \"e\" : [ ] , \"f\" : -2.5 } ";
    cJSON *v = NULL;
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(cm_json_parse(in, strlen(in), &v), 0);
    cr_assert_eq(cm_json_print(v, &out, &len), 0);
    cr_assert_str_eq(out, "{\"a\":1,\"b\":[true,false,null],\"c\":\"x y\",\"d\":{},\"e\":[],"
                          "\"f\":-2.5}");
    cr_assert_eq(len, strlen(out));
    free(out);
    out = NULL;
    cr_assert_eq(cm_json_print(v, &out, NULL), 0, "len_out may be NULL");
    cr_assert_not_null(out);
    free(out);
    cJSON_Delete(v);
}

Test(json, print_escapes_strings)
{
    cJSON *o = cJSON_CreateObject();
    cr_assert_not_null(
        cJSON_AddStringToObject(o, "k\"\\", "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9"));
    char *out = NULL;
    cr_assert_eq(cm_json_print(o, &out, NULL), 0);
    cr_assert_str_eq(out,
                     "{\"k\\\"\\\\\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\"}");
    cJSON *back = NULL;
    const char *s;
    cr_assert_eq(cm_json_parse_object(out, strlen(out), &back), 0);
    cr_assert_eq(cm_json_get_str(back, "k\"\\", 100, &s, NULL), 0);
    cr_assert_str_eq(s, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9");
    cJSON_Delete(back);
    free(out);
    cJSON_Delete(o);
}

static void check_number_round_trip(double d)
{
    cJSON *n = cJSON_CreateNumber(d);
    char *out = NULL;
    cJSON *back = NULL;
    cr_assert_eq(cm_json_print(n, &out, NULL), 0);
    cr_assert_eq(cm_json_parse(out, strlen(out), &back), 0, "%s", out);
    cr_assert(cJSON_IsNumber(back));
    cr_assert_eq(back->valuedouble, d, "%.17g printed as %s", d, out);
    cJSON_Delete(back);
    free(out);
    cJSON_Delete(n);
}

Test(json, print_numbers_exactly)
{
    /* cJSON_Print itself prints 2^53 as 9.00719925474099e+15 and 0.1 + 0.2 as 0.3. */
    static const double vals[] = {0.0,
                                  1.0,
                                  -5.0,
                                  1.5,
                                  0.1,
                                  0.1 + 0.2,
                                  1.0 / 3.0,
                                  123456.789,
                                  9007199254740992.0,
                                  9007199254740990.0,
                                  8000000000000001.0,
                                  -9007199254740992.0,
                                  1e300,
                                  -1e-300,
                                  5e-324,
                                  1.7976931348623157e308,
                                  1e19,
                                  9.2e18,
                                  -9.2e18};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        check_number_round_trip(vals[i]);

    char *out = NULL;
    cJSON *n = cJSON_CreateNumber(9007199254740992.0);
    cr_assert_eq(cm_json_print(n, &out, NULL), 0);
    cr_assert_str_eq(out, "9007199254740992");
    free(out);
    cJSON_Delete(n);
}

Test(json, print_random_doubles_round_trip)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double d;
        memcpy(&d, &s, sizeof(d));
        if (!isfinite(d))
            continue;
        check_number_round_trip(d);
        check_number_round_trip((double)(int64_t)(s >> 11)); /* integers up to 2^53 */
    }
}

Test(json, print_rejects_non_finite)
{
    static const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cr_assert_not_null(cJSON_AddNumberToObject(o, "x", bad[i]));
        char *out = (char *)&out;
        char *sentinel = out;
        cr_assert_eq(cm_json_print(o, &out, NULL), CM_E_RANGE);
        cr_assert_eq(out, sentinel);
        cJSON_Delete(o);
    }
}

Test(json, print_depth_matches_parse_limit)
{
    cJSON *root = cJSON_CreateArray();
    cJSON *cur = root;
    for (int d = 1; d < CM_JSON_MAX_DEPTH; d++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToArray(cur, next);
        cur = next;
    }
    char *out = NULL;
    size_t len;
    cJSON *back = NULL;
    cr_assert_eq(cm_json_print(root, &out, &len), 0, "64 levels print");
    cr_assert_eq(cm_json_parse(out, len, &back), 0, "and parse back");
    cJSON_Delete(back);
    free(out);
    cJSON_AddItemToArray(cur, cJSON_CreateArray());
    cr_assert_eq(cm_json_print(root, &out, &len), CM_E_RANGE, "65 levels do not");
    cJSON_Delete(root);
}

Test(json, print_invalid_arguments)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;
    cr_assert_eq(cm_json_print(NULL, &out, NULL), CM_E_INVAL);
    cr_assert_eq(cm_json_print(o, NULL, NULL), CM_E_INVAL);
    cJSON_Delete(o);
}

Test(json, print_parse_round_trip_of_document)
{
    cJSON *v = fixture();
    char *a = NULL, *b = NULL;
    size_t alen, blen;
    cJSON *back = NULL;
    /* The fixture holds 1e400, which cannot be printed; drop it and -1e400. */
    cJSON_DeleteItemFromObjectCaseSensitive(v, "inf");
    cJSON_DeleteItemFromObjectCaseSensitive(v, "ninf");
    cr_assert_eq(cm_json_print(v, &a, &alen), 0);
    cr_assert_eq(cm_json_parse_object(a, alen, &back), 0, "%s", a);
    cr_assert_eq(cm_json_print(back, &b, &blen), 0);
    cr_assert_str_eq(a, b);
    cr_assert(cJSON_Compare(v, back, 1));
    free(a);
    free(b);
    cJSON_Delete(back);
    cJSON_Delete(v);
}
