/* Standard base64 (RFC 4648, with padding) for binary payloads inside JSON. Pure functions:
 * no allocation unless stated, no I/O. */
#ifndef DFS_COMMON_BASE64_H
#define DFS_COMMON_BASE64_H

#include <stddef.h>

/* Bytes needed to encode len bytes, NUL included. */
size_t cm_b64_encoded_size(size_t len);
/* Encodes len bytes of in into out (capacity cm_b64_encoded_size(len)), NUL-terminated.
 * Returns the encoded length without the NUL. */
size_t cm_b64_encode(const void *in, size_t len, char *out);
/* Upper bound of the decoded size of an encoded string of len characters. */
size_t cm_b64_decoded_max(size_t len);
/* Decodes len characters (a multiple of 4, padded, no whitespace) into out (capacity cm_b64_decoded_max(len)).
 * Sets *out_len. Returns 0 or CM_E_INVAL for a bad length, a bad character or bad padding. */
int cm_b64_decode(const char *in, size_t len, void *out, size_t *out_len);

#endif
