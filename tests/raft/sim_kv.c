/* The simulated cluster's key-value state machine and its command and snapshot encodings. */
#include "tests/raft/sim_kv.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const uint8_t *p)
{
    return get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

size_t kv_cmd_encode(const struct kv_cmd *c, void *buf, size_t cap)
{
    size_t n = KV_CMD_HEADER + c->len;
    if (cap < n)
        return 0;
    uint8_t *p = buf;
    p[0] = c->op;
    p[1] = c->client;
    p[2] = c->key;
    p[3] = 0;
    put_u32(p + 4, c->seq);
    if (c->len > 0)
        memcpy(p + KV_CMD_HEADER, c->value, c->len);
    return n;
}

int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *out)
{
    const uint8_t *p = buf;
    if (len < KV_CMD_HEADER || p[0] < KV_PUT || p[0] > KV_BLOB)
        return -1;
    if (p[0] != KV_BLOB && (p[1] >= KV_MAX_CLIENTS || p[2] >= KV_MAX_KEYS))
        return -1;
    out->op = p[0];
    out->client = p[1];
    out->key = p[2];
    out->seq = get_u32(p + 4);
    out->value = (const char *)p + KV_CMD_HEADER;
    out->len = (uint32_t)(len - KV_CMD_HEADER);
    return 0;
}

void kv_cmd_format(const void *buf, size_t len, char *out, size_t cap)
{
    struct kv_cmd c;
    if (kv_cmd_decode(buf, len, &c) != 0) {
        snprintf(out, cap, "?(%zu bytes)", len);
        return;
    }
    if (c.op == KV_BLOB) {
        snprintf(out, cap, "blob(%u)", c.len);
        return;
    }
    snprintf(out, cap, "%s c%u#%u k%u=%.*s", c.op == KV_PUT ? "put" : "append", c.client, c.seq,
             c.key, (int)(c.len > 24 ? 24 : c.len), c.value);
}

void kv_init(struct kv *kv)
{
    memset(kv, 0, sizeof(*kv));
}

void kv_close(struct kv *kv)
{
    for (int i = 0; i < KV_MAX_KEYS; i++)
        free(kv->keys[i].bytes);
    memset(kv, 0, sizeof(*kv));
}

static int value_set(struct kv_value *v, const char *a, uint32_t la, const char *b, uint32_t lb)
{
    uint32_t n = la + lb;
    bool in_place = a == v->bytes; /* appending to the value itself: its bytes stay put */
    if (n > v->cap) {
        uint32_t cap = v->cap ? v->cap : 32;
        while (cap < n)
            cap *= 2;
        char *p = realloc(v->bytes, cap);
        if (p == NULL)
            return -1;
        v->bytes = p;
        v->cap = cap;
    }
    if (la > 0 && !in_place)
        memmove(v->bytes, a, la);
    if (lb > 0)
        memcpy(v->bytes + la, b, lb);
    v->len = n;
    return 0;
}

int kv_apply(struct kv *kv, const void *data, size_t len)
{
    struct kv_cmd c;
    if (kv_cmd_decode(data, len, &c) != 0)
        return -1;
    if (c.op == KV_BLOB)
        return 0;
    if (c.seq <= kv->last_seq[c.client])
        return 0;
    struct kv_value *v = &kv->keys[c.key];
    int rc = c.op == KV_PUT ? value_set(v, NULL, 0, c.value, c.len)
                            : value_set(v, v->bytes, v->len, c.value, c.len);
    if (rc != 0)
        return -1;
    kv->last_seq[c.client] = c.seq;
    return 1;
}

const char *kv_get(const struct kv *kv, uint8_t key, uint32_t *len)
{
    *len = kv->keys[key].len;
    return kv->keys[key].bytes != NULL ? kv->keys[key].bytes : "";
}

#define KV_MAGIC 0x3153564bU /* "KVS1" */

int kv_serialize(const struct kv *kv, uint64_t index, uint64_t term, uint8_t **out, size_t *len)
{
    size_t n = 4 + 16 + 4 * KV_MAX_CLIENTS;
    for (int i = 0; i < KV_MAX_KEYS; i++)
        n += 4 + kv->keys[i].len;
    uint8_t *p = malloc(n);
    if (p == NULL)
        return -1;
    size_t off = 0;
    put_u32(p, KV_MAGIC);
    put_u64(p + 4, index);
    put_u64(p + 12, term);
    off = 20;
    for (int i = 0; i < KV_MAX_CLIENTS; i++, off += 4)
        put_u32(p + off, kv->last_seq[i]);
    for (int i = 0; i < KV_MAX_KEYS; i++) {
        put_u32(p + off, kv->keys[i].len);
        off += 4;
        if (kv->keys[i].len > 0)
            memcpy(p + off, kv->keys[i].bytes, kv->keys[i].len);
        off += kv->keys[i].len;
    }
    *out = p;
    *len = n;
    return 0;
}

int kv_restore(struct kv *kv, const void *data, size_t len, uint64_t *index, uint64_t *term)
{
    const uint8_t *p = data;
    if (len < 20 + 4 * KV_MAX_CLIENTS || get_u32(p) != KV_MAGIC)
        return -1;
    struct kv fresh;
    kv_init(&fresh);
    size_t off = 20;
    for (int i = 0; i < KV_MAX_CLIENTS; i++, off += 4)
        fresh.last_seq[i] = get_u32(p + off);
    for (int i = 0; i < KV_MAX_KEYS; i++) {
        if (len - off < 4)
            goto bad;
        uint32_t n = get_u32(p + off);
        off += 4;
        if (len - off < n)
            goto bad;
        if (n > 0 && value_set(&fresh.keys[i], NULL, 0, (const char *)p + off, n) != 0)
            goto bad;
        off += n;
    }
    if (off != len)
        goto bad;
    *index = get_u64(p + 4);
    *term = get_u64(p + 12);
    kv_close(kv);
    *kv = fresh;
    return 0;
bad:
    kv_close(&fresh);
    return -1;
}
