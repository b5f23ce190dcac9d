// hmap.h - a small open-addressing hash map with 128-bit keys, for the
// library's own tables (the link layer's peers and records, the core's
// actors by monitor and by lease).  Not thread-safe: each map belongs to
// one actor or is kept under its owner's lock.
//
// A zeroed ra__hmap_t is an empty map.  Values are pointers; NULL and
// RA__HTOMB cannot be stored.  ra__hmap_put replaces the value of a key
// already there and returns 0 or RA_ENOMEM; ra__hmap_get and ra__hmap_del
// return the value, or NULL when the key is absent; ra__hmap_fini frees
// the table (not the values) and leaves an empty map.
#ifndef RA_HMAP_H
#define RA_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ra__hkey {
    uint64_t a, b;
} ra__hkey_t;

typedef struct ra__hent {
    ra__hkey_t key;
    void *val;     // NULL: empty slot; RA__HTOMB: deleted
} ra__hent_t;

typedef struct ra__hmap {
    ra__hent_t *v;
    size_t cap, n, tombs;
} ra__hmap_t;

#define RA__HTOMB ((void *)1)

void *ra__hmap_get(const ra__hmap_t *m, ra__hkey_t k);
int ra__hmap_put(ra__hmap_t *m, ra__hkey_t k, void *val);
void *ra__hmap_del(ra__hmap_t *m, ra__hkey_t k);
void ra__hmap_fini(ra__hmap_t *m);
// Iterate: for (size_t i = 0; i < m->cap; i++) if ra__hmap_live(m, i) ...
static inline bool
ra__hmap_live(const ra__hmap_t *m, size_t i)
{
    return m->v[i].val != NULL && m->v[i].val != RA__HTOMB;
}

#endif
