/* Open addressing with linear probing and backward-shift deletion (no tombstones). */
#include "chunk/blkmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

#define MIN_CAP 64

static size_t slot_of(uint64_t id, size_t cap)
{
    /* splitmix64 finalizer: sequential ids spread over the table. */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id & (cap - 1);
}

void blkmap_close(struct blkmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static int grow(struct blkmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : MIN_CAP;
    struct blkmap_slot *s = calloc(cap, sizeof(*s));

    if (s == NULL)
        return CM_E_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].used)
            continue;
        size_t j = slot_of(m->slots[i].id, cap);
        while (s[j].used)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

static struct blkmap_slot *find(const struct blkmap *m, uint64_t id)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].used)
            return NULL;
        if (m->slots[i].id == id)
            return &m->slots[i];
    }
}

int blkmap_put(struct blkmap *m, uint64_t id, const struct blkmap_val *v)
{
    struct blkmap_slot *s = find(m, id);
    size_t i;

    if (s != NULL) {
        s->v = *v;
        return 0;
    }
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) < 0) /* load factor at most 3/4 */
        return CM_E_NOMEM;
    for (i = slot_of(id, m->cap); m->slots[i].used; i = (i + 1) & (m->cap - 1))
        ;
    m->slots[i].id = id;
    m->slots[i].v = *v;
    m->slots[i].used = 1;
    m->n++;
    return 0;
}

struct blkmap_val *blkmap_get(const struct blkmap *m, uint64_t id)
{
    struct blkmap_slot *s = find(m, id);

    return s ? &s->v : NULL;
}

int blkmap_del(struct blkmap *m, uint64_t id)
{
    struct blkmap_slot *s = find(m, id);
    size_t mask = m->cap - 1, i, j;

    if (s == NULL)
        return CM_E_NOENT;
    i = (size_t)(s - m->slots);
    /* Shift later members of the probe run back into the hole when their home allows it. */
    for (j = (i + 1) & mask; m->slots[j].used; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].id, m->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    memset(&m->slots[i], 0, sizeof(m->slots[i]));
    m->n--;
    return 0;
}

int blkmap_next(const struct blkmap *m, size_t *pos, uint64_t *id, struct blkmap_val *v)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->slots[i].used) {
            *id = m->slots[i].id;
            *v = m->slots[i].v;
            *pos = i + 1;
            return 1;
        }
    }
    *pos = m->cap;
    return 0;
}
