/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the SSE4.2 crc32 instruction when the
 * CPU has it, slicing-by-8 tables otherwise. Both are chosen and built once, on first use.
 *
 * The instruction takes three cycles and can start every cycle, so long buffers go as three
 * independent streams, joined by shifting a stream's CRC over the bytes of the next ones with
 * tables of the "multiply by x^(8 n)" operator (the method of Mark Adler's crc32c.c): about
 * three times the speed of one stream. */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define CRC32C_HAVE_X86 1
#else
#define CRC32C_HAVE_X86 0
#endif

#define POLY 0x82F63B78u

#define LONG_RUN  8192 /* bytes per stream of a long triple */
#define SHORT_RUN 256  /* bytes per stream of a short triple */

/* Written once under pthread_once, read-only afterwards. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static uint32_t table[8][256];
static uint32_t shift_long[4][256], shift_short[4][256]; /* over LONG_RUN, SHORT_RUN zero bytes */
static int hw_ok;

/* GF(2) 32x32 matrix (one column per bit) times a vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;

    for (; vec != 0; vec >>= 1, mat++)
        if (vec & 1u)
            sum ^= *mat;
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = gf2_times(mat, mat[n]);
}

/* Tables that move a (raw) CRC over len zero bytes (len a power of two). */
static void build_shift(uint32_t t[4][256], size_t len)
{
    uint32_t odd[32], even[32], *op = NULL;

    odd[0] = POLY; /* one zero bit */
    for (int n = 1; n < 32; n++)
        odd[n] = 1u << (n - 1);
    gf2_square(even, odd); /* two bits */
    gf2_square(odd, even); /* four bits */
    for (;;) {             /* one byte, two, four, ... until len */
        gf2_square(even, odd);
        len >>= 1;
        if (len == 0) {
            op = even;
            break;
        }
        gf2_square(odd, even);
        len >>= 1;
        if (len == 0) {
            op = odd;
            break;
        }
    }
    for (uint32_t n = 0; n < 256; n++) {
        t[0][n] = gf2_times(op, n);
        t[1][n] = gf2_times(op, n << 8);
        t[2][n] = gf2_times(op, n << 16);
        t[3][n] = gf2_times(op, n << 24);
    }
}

static uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
}

static void crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 8; t++)
            table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xFF];
    }
    build_shift(shift_long, LONG_RUN);
    build_shift(shift_short, SHORT_RUN);
#if CRC32C_HAVE_X86
    __builtin_cpu_init();
    hw_ok = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

static void ensure_init(void)
{
    pthread_once(&init_once, crc32c_init);
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t sw_update(uint32_t c, const unsigned char *p, size_t len)
{
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
        len--;
    }
    while (len >= 8) {
        uint32_t lo = load_le32(p) ^ c;
        uint32_t hi = load_le32(p + 4);
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
            table[4][lo >> 24] ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
            table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
        len--;
    }
    return c;
}

#if CRC32C_HAVE_X86
__attribute__((target("sse4.2"))) static uint32_t hw_update(uint32_t c, const unsigned char *p,
                                                            size_t len)
{
    uint64_t c64;

    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = _mm_crc32_u8(c, *p++);
        len--;
    }
    c64 = c;
    /* Three streams of run bytes at a time, for long runs then short ones. */
    for (int pass = 0; pass < 2; pass++) {
        size_t run = pass == 0 ? LONG_RUN : SHORT_RUN;
        const uint32_t(*t)[256] = pass == 0 ? shift_long : shift_short;
        while (len >= 3 * run) {
            uint64_t c1 = 0, c2 = 0, v0, v1, v2;
            const unsigned char *end = p + run;
            do {
                memcpy(&v0, p, 8);
                memcpy(&v1, p + run, 8);
                memcpy(&v2, p + 2 * run, 8);
                c64 = _mm_crc32_u64(c64, v0);
                c1 = _mm_crc32_u64(c1, v1);
                c2 = _mm_crc32_u64(c2, v2);
                p += 8;
            } while (p < end);
            c64 = shift(t, (uint32_t)c64) ^ (uint32_t)c1;
            c64 = shift(t, (uint32_t)c64) ^ (uint32_t)c2;
            p += 2 * run;
            len -= 3 * run;
        }
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        len -= 8;
    }
    c = (uint32_t)c64;
    while (len > 0) {
        c = _mm_crc32_u8(c, *p++);
        len--;
    }
    return c;
}
#endif

uint32_t cm_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    if (len == 0)
        return crc;
    ensure_init();
    return ~sw_update(~crc, buf, len);
}

uint32_t cm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    if (len == 0)
        return crc;
    ensure_init();
#if CRC32C_HAVE_X86
    if (hw_ok)
        return ~hw_update(~crc, buf, len);
#endif
    return ~sw_update(~crc, buf, len);
}

int cm_crc32c_hw_available(void)
{
    ensure_init();
    return hw_ok;
}
