/* Base64: RFC 4648 vectors, round trips, and strict rejection of malformed input. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/errors.h"

static const char *vec[][2] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

Test(base64, rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char enc[32];
        size_t n = cm_b64_encode(vec[i][0], strlen(vec[i][0]), enc);
        cr_assert_str_eq(enc, vec[i][1]);
        cr_assert_eq(n, strlen(vec[i][1]));
        cr_assert_leq(n + 1, cm_b64_encoded_size(strlen(vec[i][0])));
        char dec[32];
        size_t dn = 0;
        cr_assert_eq(cm_b64_decode(enc, n, dec, &dn), 0);
        cr_assert_eq(dn, strlen(vec[i][0]));
        cr_assert_eq(memcmp(dec, vec[i][0], dn), 0);
    }
}

Test(base64, binary_round_trip)
{
    unsigned char in[300], out[300];
    char enc[512];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t n = cm_b64_encode(in, len, enc);
        size_t dn = 0;
        cr_assert_leq(len, cm_b64_decoded_max(n));
        cr_assert_eq(cm_b64_decode(enc, n, out, &dn), 0);
        cr_assert_eq(dn, len);
        cr_assert_eq(memcmp(in, out, len), 0);
    }
}

Test(base64, malformed_is_rejected)
{
    static const char *bad[] = {"Zg=",  "Zg",   "Z===", "Zm9v!", "Zm9vY===", "Zg==Zg==",
                                "Z=g=", "Zh==", "Zm9=", "Zm 9v", "====",     "Zm8=Zm8="};
    unsigned char out[16];
    size_t n;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(cm_b64_decode(bad[i], strlen(bad[i]), out, &n), CM_E_INVAL, "%s", bad[i]);
}
