/* CRC32C: published vectors, chaining, and hardware == software == a bitwise reference over many
 * lengths and alignments. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

/* Bit-at-a-time CRC32C, written from the definition; independent of the code under test. */
static uint32_t ref_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

/* Deterministic generator (xorshift64*), so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next(&s) >> 56);
}

/* Checks cm_crc32c, cm_crc32c_sw and the reference on one input. */
static void check_vector(const void *buf, size_t len, uint32_t want, const char *name)
{
    cr_assert_eq(ref_crc32c(0, buf, len), want, "reference, %s", name);
    cr_assert_eq(cm_crc32c(0, buf, len), want, "cm_crc32c, %s: got 0x%08X want 0x%08X", name,
                 cm_crc32c(0, buf, len), want);
    cr_assert_eq(cm_crc32c_sw(0, buf, len), want, "cm_crc32c_sw, %s: got 0x%08X want 0x%08X", name,
                 cm_crc32c_sw(0, buf, len), want);
}

/* RFC 3720 appendix B.4. */
Test(crc32c, rfc3720_zeros)
{
    unsigned char b[32];
    memset(b, 0x00, sizeof(b));
    check_vector(b, sizeof(b), 0x8A9136AAu, "32 x 0x00");
}

Test(crc32c, rfc3720_ones)
{
    unsigned char b[32];
    memset(b, 0xFF, sizeof(b));
    check_vector(b, sizeof(b), 0x62A8AB43u, "32 x 0xFF");
}

Test(crc32c, rfc3720_ascending)
{
    unsigned char b[32];
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    check_vector(b, sizeof(b), 0x46DD794Eu, "0..31");
}

Test(crc32c, rfc3720_descending)
{
    unsigned char b[32];
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    check_vector(b, sizeof(b), 0x113FDB5Cu, "31..0");
}

Test(crc32c, rfc3720_iscsi_read_pdu)
{
    static const unsigned char pdu[48] = {
        0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    check_vector(pdu, sizeof(pdu), 0xD9963A56u, "iSCSI read PDU");
}

Test(crc32c, check_string_123456789)
{
    check_vector("123456789", 9, 0xE3069283u, "\"123456789\"");
}

Test(crc32c, empty_input_returns_crc_unchanged)
{
    unsigned char b[1] = {0x55};
    cr_assert_eq(cm_crc32c(0, NULL, 0), 0u);
    cr_assert_eq(cm_crc32c_sw(0, NULL, 0), 0u);
    cr_assert_eq(cm_crc32c(0xE3069283u, b, 0), 0xE3069283u);
    cr_assert_eq(cm_crc32c_sw(0xDEADBEEFu, b, 0), 0xDEADBEEFu);
}

Test(crc32c, single_bytes_all_values)
{
    for (int v = 0; v < 256; v++) {
        unsigned char b = (unsigned char)v;
        uint32_t want = ref_crc32c(0, &b, 1);
        cr_assert_eq(cm_crc32c(0, &b, 1), want, "byte 0x%02X", v);
        cr_assert_eq(cm_crc32c_sw(0, &b, 1), want, "byte 0x%02X", v);
    }
}

Test(crc32c, chaining_equals_one_shot_over_random_splits)
{
    enum { N = 70000 };
    unsigned char *data = malloc(N);
    uint64_t s = 42;
    cr_assert_not_null(data);
    fill_random(data, N, 7);
    uint32_t whole = ref_crc32c(0, data, N);
    cr_assert_eq(cm_crc32c(0, data, N), whole);
    cr_assert_eq(cm_crc32c_sw(0, data, N), whole);

    for (int round = 0; round < 200; round++) {
        uint32_t hw = 0, sw = 0;
        size_t off = 0;
        int pieces = 0;
        while (off < N) {
            /* Mostly short pieces, some long, some empty. */
            size_t max = (round % 4 == 0) ? N : 100;
            size_t n = (size_t)(rng_next(&s) % (max + 1));
            if (n > N - off)
                n = N - off;
            hw = cm_crc32c(hw, data + off, n);
            sw = cm_crc32c_sw(sw, data + off, n);
            off += n;
            pieces++;
        }
        cr_assert_eq(hw, whole, "round %d (%d pieces): cm_crc32c chained", round, pieces);
        cr_assert_eq(sw, whole, "round %d (%d pieces): cm_crc32c_sw chained", round, pieces);
    }
    free(data);
}

Test(crc32c, chaining_two_halves_of_vector)
{
    const char *s = "123456789";
    for (size_t cut = 0; cut <= 9; cut++) {
        uint32_t c = cm_crc32c(cm_crc32c(0, s, cut), s + cut, 9 - cut);
        cr_assert_eq(c, 0xE3069283u, "cut at %zu", cut);
        c = cm_crc32c_sw(cm_crc32c_sw(0, s, cut), s + cut, 9 - cut);
        cr_assert_eq(c, 0xE3069283u, "sw, cut at %zu", cut);
    }
}

Test(crc32c, hw_equals_sw_for_many_lengths_and_alignments)
{
    enum { MAXLEN = 600, MAXOFF = 16 };
    unsigned char *data = malloc(MAXLEN + MAXOFF);
    cr_assert_not_null(data);
    fill_random(data, MAXLEN + MAXOFF, 99);
    for (size_t off = 0; off < MAXOFF; off++) {
        for (size_t len = 0; len <= MAXLEN; len++) {
            /* A copy into an exact-size allocation lets ASan catch any over-read. */
            unsigned char *buf = malloc(off + len + (off + len == 0));
            cr_assert_not_null(buf);
            memcpy(buf + off, data + off, len);
            uint32_t want = ref_crc32c(0x12345678u, buf + off, len);
            cr_assert_eq(cm_crc32c(0x12345678u, buf + off, len), want, "off %zu len %zu", off, len);
            cr_assert_eq(cm_crc32c_sw(0x12345678u, buf + off, len), want, "off %zu len %zu", off,
                         len);
            free(buf);
        }
    }
    free(data);
}

Test(crc32c, hw_equals_sw_on_large_buffers)
{
    static const size_t lens[] = {65536, 65536 + 1, 65536 - 7, 1 << 20, (1 << 20) + 13};
    size_t max = (1 << 20) + 13 + 8;
    unsigned char *data = malloc(max);
    cr_assert_not_null(data);
    fill_random(data, max, 12345);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (size_t off = 0; off < 8; off += 3) {
            uint32_t want = ref_crc32c(0, data + off, lens[i]);
            cr_assert_eq(cm_crc32c(0, data + off, lens[i]), want, "len %zu off %zu", lens[i], off);
            cr_assert_eq(cm_crc32c_sw(0, data + off, lens[i]), want, "len %zu off %zu", lens[i],
                         off);
        }
    }
    free(data);
}

/* Around the edges of the three-stream runs (3 x 256 and 3 x 8192 bytes), at every alignment. */
Test(crc32c, hw_equals_sw_around_the_three_stream_runs)
{
    static const size_t base[] = {768, 1536, 24576, 24576 + 768, 49152, 65536};
    size_t max = 65536 + 16 + 8;
    unsigned char *data = malloc(max);
    cr_assert_not_null(data);
    fill_random(data, max, 777);
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        for (size_t d = 0; d < 17; d++) {
            size_t len = base[i] + d - 8;
            for (size_t off = 0; off < 8; off++) {
                uint32_t want = ref_crc32c(0xCAFEu, data + off, len);
                cr_assert_eq(cm_crc32c(0xCAFEu, data + off, len), want, "len %zu off %zu", len,
                             off);
            }
        }
    }
    free(data);
}

Test(crc32c, detects_cpu_feature)
{
    int hw = cm_crc32c_hw_available();
    cr_assert(hw == 0 || hw == 1);
#if defined(__x86_64__)
    __builtin_cpu_init();
    cr_assert_eq(hw, __builtin_cpu_supports("sse4.2") ? 1 : 0);
#else
    cr_assert_eq(hw, 0);
#endif
    cr_assert_eq(cm_crc32c_hw_available(), hw, "detection is stable");
}

/* First use from several threads at once: the one-time setup must be race-free. */
struct thread_arg {
    const unsigned char *data;
    size_t len;
    uint32_t got_hw;
    uint32_t got_sw;
};

static void *crc_thread(void *p)
{
    struct thread_arg *a = p;
    a->got_sw = cm_crc32c_sw(0, a->data, a->len);
    a->got_hw = cm_crc32c(0, a->data, a->len);
    return NULL;
}

Test(crc32c, concurrent_first_use)
{
    enum { T = 8, N = 4096 };
    unsigned char *data = malloc(N);
    pthread_t th[T];
    struct thread_arg args[T];
    cr_assert_not_null(data);
    fill_random(data, N, 5);
    uint32_t want = ref_crc32c(0, data, N);
    /* Every started thread is joined before any assertion: a failed assertion must not exit
     * the process under running threads. */
    int started = 0, join_failed = 0;
    while (started < T) {
        args[started] = (struct thread_arg){.data = data, .len = N};
        if (pthread_create(&th[started], NULL, crc_thread, &args[started]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        join_failed |= pthread_join(th[i], NULL) != 0;
    cr_assert_eq(started, T, "pthread_create failed");
    cr_assert_not(join_failed);
    for (int i = 0; i < T; i++) {
        cr_assert_eq(args[i].got_hw, want, "thread %d cm_crc32c", i);
        cr_assert_eq(args[i].got_sw, want, "thread %d cm_crc32c_sw", i);
    }
    free(data);
}
