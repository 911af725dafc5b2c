/* A hash map from 64-bit block ids to small fixed values (length, CRC, flags), for the block
 * table and its change log. Not thread-safe: the owner locks. Does no I/O. */
#ifndef DFS_CHUNK_BLKMAP_H
#define DFS_CHUNK_BLKMAP_H

#include <stddef.h>
#include <stdint.h>

struct blkmap_val {
    uint64_t len;
    uint32_t crc;
    uint32_t flags; /* the owner's */
};

struct blkmap_slot {
    uint64_t id;
    struct blkmap_val v;
    uint8_t used;
};

/* Zero-initialized is an empty map; blkmap_close frees it. */
struct blkmap {
    struct blkmap_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t n;
};

void blkmap_close(struct blkmap *m);
/* Inserts or replaces. Returns 0 or CM_E_NOMEM (the map is unchanged). */
int blkmap_put(struct blkmap *m, uint64_t id, const struct blkmap_val *v);
/* The value of id, or NULL. Valid until the next put or del. */
struct blkmap_val *blkmap_get(const struct blkmap *m, uint64_t id);
/* Returns 0 or CM_E_NOENT. */
int blkmap_del(struct blkmap *m, uint64_t id);
/* Iteration: start with *pos = 0; returns 1 with the next entry, 0 at the end. The map must not
 * change during an iteration. */
int blkmap_next(const struct blkmap *m, size_t *pos, uint64_t *id, struct blkmap_val *v);

#endif
