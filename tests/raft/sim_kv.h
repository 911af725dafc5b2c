/* The simulated cluster's state machine: a small key-value store (put, append, get) with
 * exactly-once writes (client id + op sequence), the encoding of its commands, and snapshots of
 * it. Pure data; no Raft, no I/O. */
#ifndef DFS_TESTS_RAFT_SIM_KV_H
#define DFS_TESTS_RAFT_SIM_KV_H

#include <stddef.h>
#include <stdint.h>

#define KV_MAX_KEYS    8
#define KV_MAX_CLIENTS 16

enum kv_op {
    KV_PUT = 1,
    KV_APPEND = 2,
    KV_BLOB = 3, /* an opaque payload (benchmarks): ignored by the store */
};

/* A command as a client builds it; value is borrowed. */
struct kv_cmd {
    uint8_t op; /* enum kv_op */
    uint8_t client;
    uint8_t key;
    uint32_t seq; /* the client's op id: a command with seq <= the last applied one is a retry */
    const char *value;
    uint32_t len;
};

/* Header bytes before the value in an encoded command. */
#define KV_CMD_HEADER 8

/* Encodes c into buf (cap bytes). Returns the length, or 0 when cap is too small. */
size_t kv_cmd_encode(const struct kv_cmd *c, void *buf, size_t cap);
/* Decodes; out->value points into buf. Returns 0, or -1 for malformed input. */
int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *out);
/* Writes a short human form of an encoded command ("put c1#7 k2=1.7;") into out. */
void kv_cmd_format(const void *buf, size_t len, char *out, size_t cap);

struct kv_value {
    char *bytes;
    uint32_t len, cap;
};

struct kv {
    struct kv_value keys[KV_MAX_KEYS];
    uint32_t last_seq[KV_MAX_CLIENTS]; /* per client: the last op applied (exactly-once) */
};

void kv_init(struct kv *kv);
void kv_close(struct kv *kv);

/* Applies an encoded command. Returns 1 when applied, 0 when skipped (a retry already applied,
 * or a blob), -1 when malformed. */
int kv_apply(struct kv *kv, const void *data, size_t len);

/* The value of key (len bytes, not NUL-terminated; valid until the next change). */
const char *kv_get(const struct kv *kv, uint8_t key, uint32_t *len);

/* Serializes the store with the (index, term) of the last entry it includes. *out is malloc'd
 * (caller frees). Returns 0 or -1 (no memory). The encoding is canonical: equal stores at the same
 * index give equal bytes. */
int kv_serialize(const struct kv *kv, uint64_t index, uint64_t term, uint8_t **out, size_t *len);
/* Replaces *kv with a serialized store; returns 0, or -1 for malformed input (kv unchanged). */
int kv_restore(struct kv *kv, const void *data, size_t len, uint64_t *index, uint64_t *term);

#endif
