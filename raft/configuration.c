/* Cluster configurations and their encoding (see configuration.h and raft.h).
 *
 * Encoding, version 1 (all integers little-endian):
 *   u8 version (1) | u8 n | n * ( u64 id | u8 flags (bit 0: voter) | u8 len | len bytes addr )
 * The length must match exactly; unknown flag bits, zero or repeated ids, n > RAFT_MAX_NODES,
 * len >= RAFT_ADDR_MAX and NUL bytes in an address are rejected. */
#include "raft/configuration.h"

#include <string.h>

#define CONF_VERSION    1
#define CONF_FLAG_VOTER 0x01

int raft__conf_pos(const struct raft_conf *c, raft_id id)
{
    for (uint32_t i = 0; i < c->n && i < RAFT_MAX_NODES; i++) {
        if (c->nodes[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

bool raft__conf_has(const struct raft_conf *c, raft_id id)
{
    return id != 0 && raft__conf_pos(c, id) >= 0;
}

bool raft__conf_is_voter(const struct raft_conf *c, raft_id id)
{
    int i = id != 0 ? raft__conf_pos(c, id) : -1;
    return i >= 0 && c->nodes[i].voter;
}

uint32_t raft__conf_voters(const struct raft_conf *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        n += c->nodes[i].voter;
    }
    return n;
}

uint32_t raft__conf_quorum(const struct raft_conf *c)
{
    uint32_t v = raft__conf_voters(c);
    return v ? v / 2 + 1 : 0;
}

int raft__conf_check(const struct raft_conf *c)
{
    if (c->n > RAFT_MAX_NODES) {
        return RAFT_E_INVAL;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        const struct raft_node *a = &c->nodes[i];
        if (a->id == 0 || memchr(a->addr, '\0', RAFT_ADDR_MAX) == NULL) {
            return RAFT_E_INVAL;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (c->nodes[j].id == a->id) {
                return RAFT_E_INVAL;
            }
        }
    }
    return 0;
}

size_t raft_conf_encoded_max(void)
{
    return 2 + (size_t)RAFT_MAX_NODES * (8 + 1 + 1 + (RAFT_ADDR_MAX - 1));
}

size_t raft_conf_encode(const struct raft_conf *conf, void *buf, size_t cap)
{
    if (raft__conf_check(conf) != 0) {
        return 0;
    }
    size_t need = 2;
    for (uint32_t i = 0; i < conf->n; i++) {
        need += 10 + strlen(conf->nodes[i].addr);
    }
    if (cap < need) {
        return 0;
    }
    uint8_t *p = buf;
    *p++ = CONF_VERSION;
    *p++ = (uint8_t)conf->n;
    for (uint32_t i = 0; i < conf->n; i++) {
        const struct raft_node *nd = &conf->nodes[i];
        for (int b = 0; b < 8; b++) {
            *p++ = (uint8_t)(nd->id >> (8 * b));
        }
        *p++ = nd->voter ? CONF_FLAG_VOTER : 0;
        size_t len = strlen(nd->addr);
        *p++ = (uint8_t)len;
        memcpy(p, nd->addr, len);
        p += len;
    }
    return need;
}

int raft_conf_decode(const void *buf, size_t len, struct raft_conf *out)
{
    const uint8_t *p = buf, *end = p + len;
    struct raft_conf c;
    if (buf == NULL || len < 2 || p[0] != CONF_VERSION || p[1] > RAFT_MAX_NODES) {
        return RAFT_E_INVAL;
    }
    memset(&c, 0, sizeof c);
    c.n = p[1];
    p += 2;
    for (uint32_t i = 0; i < c.n; i++) {
        struct raft_node *nd = &c.nodes[i];
        if ((size_t)(end - p) < 10) {
            return RAFT_E_INVAL;
        }
        for (int b = 0; b < 8; b++) {
            nd->id |= (raft_id)p[b] << (8 * b);
        }
        uint8_t flags = p[8], alen = p[9];
        p += 10;
        if ((flags & ~CONF_FLAG_VOTER) != 0 || alen >= RAFT_ADDR_MAX || (size_t)(end - p) < alen ||
            memchr(p, '\0', alen) != NULL) {
            return RAFT_E_INVAL;
        }
        nd->voter = flags & CONF_FLAG_VOTER;
        memcpy(nd->addr, p, alen);
        p += alen;
    }
    if (p != end || raft__conf_check(&c) != 0) {
        return RAFT_E_INVAL;
    }
    *out = c;
    return 0;
}
