// hmap.c - the hash map of hmap.h: linear probing, tombstones, grown
// to keep it at most three quarters full.
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "ra_error.h"

static uint64_t
hkey_hash(ra__hkey_t k)
{
    uint64_t h = k.a * 0x9e3779b97f4a7c15ULL ^ (k.b + 0x632be59bd9b4e019ULL);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static size_t
hmap_find(const ra__hmap_t *m, ra__hkey_t k, bool *found)
{
    size_t mask = m->cap - 1, i = hkey_hash(k) & mask, tomb = SIZE_MAX;
    for (;;) {
        const ra__hent_t *e = &m->v[i];
        if (e->val == NULL) {
            *found = false;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (e->val == RA__HTOMB) {
            if (tomb == SIZE_MAX) {
                tomb = i;
            }
        } else if (e->key.a == k.a && e->key.b == k.b) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

void *
ra__hmap_get(const ra__hmap_t *m, ra__hkey_t k)
{
    bool found;
    if (m->cap == 0) {
        return NULL;
    }
    size_t i = hmap_find(m, k, &found);
    return found ? m->v[i].val : NULL;
}

static int
hmap_grow(ra__hmap_t *m, size_t cap)
{
    ra__hent_t *nv = calloc(cap, sizeof(*nv));
    if (nv == NULL) {
        return RA_ENOMEM;
    }
    ra__hmap_t old = *m;
    m->v = nv;
    m->cap = cap;
    m->n = 0;
    m->tombs = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.v[i].val != NULL && old.v[i].val != RA__HTOMB) {
            bool found;
            size_t j = hmap_find(m, old.v[i].key, &found);
            m->v[j] = old.v[i];
            m->n++;
        }
    }
    free(old.v);
    return 0;
}

int
ra__hmap_put(ra__hmap_t *m, ra__hkey_t k, void *val)
{
    if ((m->n + m->tombs + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap == 0 ? 16 : m->n * 2 >= m->cap ? m->cap * 2
                                                            : m->cap;
        int rc = hmap_grow(m, cap);
        if (rc != 0) {
            return rc;
        }
    }
    bool found;
    size_t i = hmap_find(m, k, &found);
    if (!found) {
        if (m->v[i].val == RA__HTOMB) {
            m->tombs--;
        }
        m->n++;
    }
    m->v[i].key = k;
    m->v[i].val = val;
    return 0;
}

void *
ra__hmap_del(ra__hmap_t *m, ra__hkey_t k)
{
    bool found;
    if (m->cap == 0) {
        return NULL;
    }
    size_t i = hmap_find(m, k, &found);
    if (!found) {
        return NULL;
    }
    void *val = m->v[i].val;
    m->v[i].val = RA__HTOMB;
    m->n--;
    m->tombs++;
    return val;
}

void
ra__hmap_fini(ra__hmap_t *m)
{
    free(m->v);
    memset(m, 0, sizeof(*m));
}
