/* Directories of the namespace: entries in an array ordered by position (the readdir cookie),
 * names in one arena per directory, and for larger directories an open-addressing table
 * (linear probing, backward-shift deletion) from name to entry. Removed entries become
 * tombstones, compacted away once they outnumber the live ones. */
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "master/ns_internal.h"

int ns__dir_new(uint32_t parent, struct ns_dir **out)
{
    struct ns_dir *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return CM_E_NOMEM;
    d->parent = parent;
    d->next_pos = NS_FIRST_POS;
    *out = d;
    return 0;
}

void ns__dir_free(struct ns_dir *d)
{
    if (d == NULL)
        return;
    free(d->ents);
    free(d->names);
    free(d->slots);
    free(d);
}

int ns__name_check(const char *name, size_t len)
{
    if (len == 0 || (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return CM_E_INVAL;
    if (len > NS_NAME_MAX)
        return CM_E_NAMETOOLONG;
    if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
        return CM_E_INVAL;
    return 0;
}

uint32_t ns__name_hash(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        h = (h ^ k) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, s, n);
    h = (h ^ k) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static bool dent_is(const struct ns_dir *d, const struct ns_dent *e, const char *name, size_t len,
                    uint32_t h)
{
    return e->ino != 0 && e->hash == h && e->name_len == len &&
           memcmp(d->names + e->name_off, name, len) == 0;
}

int64_t ns__dir_find(const struct ns_dir *d, const char *name, size_t len)
{
    uint32_t h = ns__name_hash(name, len);
    if (d->n_slots == 0) {
        for (uint32_t i = 0; i < d->n_ent; i++)
            if (dent_is(d, &d->ents[i], name, len, h))
                return i;
        return -1;
    }
    uint32_t mask = d->n_slots - 1;
    for (uint32_t i = h & mask; d->slots[i] != 0; i = (i + 1) & mask) {
        uint32_t e = d->slots[i] - 1;
        if (dent_is(d, &d->ents[e], name, len, h))
            return e;
    }
    return -1;
}

static void slot_insert(uint32_t *slots, uint32_t n_slots, uint32_t hash, uint32_t idx)
{
    uint32_t mask = n_slots - 1, i = hash & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = idx + 1;
}

static void slot_delete(struct ns_dir *d, uint32_t idx)
{
    uint32_t mask = d->n_slots - 1, p = d->ents[idx].hash & mask;
    while (d->slots[p] != idx + 1)
        p = (p + 1) & mask;
    d->slots[p] = 0;
    for (uint32_t j = (p + 1) & mask; d->slots[j] != 0; j = (j + 1) & mask) {
        uint32_t k = d->ents[d->slots[j] - 1].hash & mask;
        /* Move slot j back to the hole at p unless its home k lies cyclically in (p, j]. */
        bool stays = p <= j ? (p < k && k <= j) : (p < k || k <= j);
        if (!stays) {
            d->slots[p] = d->slots[j];
            d->slots[j] = 0;
            p = j;
        }
    }
}

static void reindex(struct ns_dir *d)
{
    memset(d->slots, 0, (size_t)d->n_slots * sizeof(uint32_t));
    for (uint32_t i = 0; i < d->n_ent; i++)
        if (d->ents[i].ino != 0)
            slot_insert(d->slots, d->n_slots, d->ents[i].hash, i);
}

/* The table size for n live entries: a power of two with load at most 3/4. */
static uint64_t slots_for(uint64_t n)
{
    uint64_t s = 16;
    while (s * 3 < n * 4)
        s *= 2;
    return s;
}

static int resize_index(struct ns_dir *d, uint64_t n_slots)
{
    if (n_slots > (1ull << 31))
        return CM_E_NOSPC;
    uint32_t *s = calloc(n_slots, sizeof(uint32_t));
    if (s == NULL)
        return CM_E_NOMEM;
    free(d->slots);
    d->slots = s;
    d->n_slots = (uint32_t)n_slots;
    reindex(d);
    return 0;
}

static int reserve_storage(struct ns_dir *d, size_t len)
{
    if (d->n_ent == d->cap_ent) {
        uint64_t cap = d->cap_ent < 4 ? 4 : (uint64_t)d->cap_ent + d->cap_ent / 2;
        if (cap >= UINT32_MAX - 1)
            return CM_E_NOSPC;
        struct ns_dent *e = realloc(d->ents, cap * sizeof(*e));
        if (e == NULL)
            return CM_E_NOMEM;
        d->ents = e;
        d->cap_ent = (uint32_t)cap;
    }
    if (d->names_len + len > d->names_cap) {
        uint64_t cap = d->names_cap < 64 ? 64 : (uint64_t)d->names_cap + d->names_cap / 2;
        while (cap < d->names_len + len)
            cap *= 2;
        if (cap > UINT32_MAX)
            return CM_E_NOSPC;
        char *n = realloc(d->names, cap);
        if (n == NULL)
            return CM_E_NOMEM;
        d->names = n;
        d->names_cap = (uint32_t)cap;
    }
    return 0;
}

int ns__dir_reserve(struct ns_dir *d, size_t len)
{
    int rc = reserve_storage(d, len);
    if (rc != 0)
        return rc;
    uint64_t live = (uint64_t)d->n_live + 1;
    if (live > NS_DIR_INDEX_MIN && (d->n_slots == 0 || live * 4 > (uint64_t)d->n_slots * 3))
        return resize_index(d, slots_for(live));
    return 0;
}

void ns__dir_add(struct ns_dir *d, const char *name, size_t len, uint32_t ino)
{
    struct ns_dent *e = &d->ents[d->n_ent];
    e->pos = d->next_pos++;
    e->ino = ino;
    e->name_off = d->names_len;
    e->name_len = (uint8_t)len;
    e->hash = ns__name_hash(name, len);
    memcpy(d->names + d->names_len, name, len);
    d->names_len += (uint32_t)len;
    if (d->n_slots != 0)
        slot_insert(d->slots, d->n_slots, e->hash, d->n_ent);
    d->n_ent++;
    d->n_live++;
}

/* Drops tombstones and their names, keeping the order (and so every cookie). */
static void compact(struct ns_dir *d)
{
    uint32_t k = 0, off = 0;
    for (uint32_t i = 0; i < d->n_ent; i++) {
        struct ns_dent e = d->ents[i];
        if (e.ino == 0)
            continue;
        memmove(d->names + off, d->names + e.name_off, e.name_len);
        e.name_off = off;
        off += e.name_len;
        d->ents[k++] = e;
    }
    d->n_ent = k;
    d->names_len = off;
    /* Shrink, but never to 0 bytes: realloc(p, 0) frees p and returns NULL, which would leave
     * the freed array in place (used again by the next add, freed again by ns__dir_free). */
    if (d->cap_ent > 64 && d->cap_ent / 4 > k) {
        uint32_t cap = k * 2 > 32 ? k * 2 : 32;
        struct ns_dent *e = realloc(d->ents, (size_t)cap * sizeof(*e));
        if (e != NULL) {
            d->ents = e;
            d->cap_ent = cap;
        }
    }
    if (d->names_cap > 4096 && d->names_cap / 4 > off) {
        uint32_t cap = off * 2 > 256 ? off * 2 : 256;
        char *n = realloc(d->names, cap);
        if (n != NULL) {
            d->names = n;
            d->names_cap = cap;
        }
    }
    if (d->n_slots != 0) {
        uint64_t want = slots_for(k);
        if (want * 4 > d->n_slots || resize_index(d, want) != 0)
            reindex(d);
    }
}

void ns__dir_remove(struct ns_dir *d, uint32_t i)
{
    if (d->n_slots != 0)
        slot_delete(d, i);
    d->ents[i].ino = 0;
    d->n_live--;
    uint32_t dead = d->n_ent - d->n_live;
    if (d->n_live == 0 || (dead >= 32 && dead > d->n_live))
        compact(d);
}

uint32_t ns__dir_seek(const struct ns_dir *d, uint64_t cookie)
{
    uint32_t lo = 0, hi = d->n_ent;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (d->ents[mid].pos <= cookie)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ns__dir_append_raw(struct ns_dir *d, uint64_t pos, uint32_t ino, const char *name, size_t len)
{
    /* Without the index: ns__dir_index builds it once at the end. */
    int rc = reserve_storage(d, len);
    if (rc != 0)
        return rc;
    struct ns_dent *e = &d->ents[d->n_ent++];
    e->pos = pos;
    e->ino = ino;
    e->name_off = d->names_len;
    e->name_len = (uint8_t)len;
    e->hash = ns__name_hash(name, len);
    memcpy(d->names + d->names_len, name, len);
    d->names_len += (uint32_t)len;
    d->n_live++;
    return 0;
}

int ns__dir_index(struct ns_dir *d)
{
    if (d->n_live > NS_DIR_INDEX_MIN) {
        free(d->slots);
        d->slots = calloc(slots_for(d->n_live), sizeof(uint32_t));
        if (d->slots == NULL) {
            d->n_slots = 0;
            return CM_E_NOMEM;
        }
        d->n_slots = (uint32_t)slots_for(d->n_live);
    }
    for (uint32_t i = 0; i < d->n_ent; i++) {
        const struct ns_dent *e = &d->ents[i];
        /* The entry itself is not in the table yet: finding the name means a duplicate. */
        if (d->n_slots != 0) {
            if (ns__dir_find(d, d->names + e->name_off, e->name_len) >= 0)
                return CM_E_EXIST;
            slot_insert(d->slots, d->n_slots, e->hash, i);
        } else {
            for (uint32_t j = 0; j < i; j++)
                if (dent_is(d, &d->ents[j], d->names + e->name_off, e->name_len, e->hash))
                    return CM_E_EXIST;
        }
    }
    return 0;
}
