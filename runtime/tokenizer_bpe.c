/* The BPE merge engine: vocabulary and merge hash tables, the bounded cache of
 * pre-token results, and merging by rank with a binary heap over a linked list
 * of symbols (O(n log n) per word instead of rescanning the string per merge). */
#include <string.h>

#include "alloc.h"
#include "tokenizer_impl.h"

uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Slots hold (32-bit hash fingerprint << 32) | (id + 1), so most probes that
 * miss are rejected without touching the string pool (loading does ~450k
 * lookups, which are cache-miss bound). */
int tok_strmap_build(rl_tokenizer *t, rl_error *err) {
    size_t cap = pow2_at_least((size_t)t->n_ids * 2 + 1);
    t->vocab.slots = rl_calloc(cap, sizeof(uint64_t));
    if (!t->vocab.slots) return rl_fail(err, "%s: out of memory for the vocabulary table", t->name);
    t->vocab.mask = cap - 1;
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->kind[id] != 1) continue;
        const char *s = t->pool + t->tok_off[id];
        size_t n = t->tok_len[id];
        uint64_t h = tok_hash(s, n);
        uint64_t fp = h >> 32;
        size_t i = (size_t)h & t->vocab.mask;
        while (t->vocab.slots[i]) {
            uint64_t e = t->vocab.slots[i];
            uint32_t o = (uint32_t)e - 1;
            if ((e >> 32) == fp && t->tok_len[o] == n && memcmp(t->pool + t->tok_off[o], s, n) == 0)
                return rl_fail(err, "%s: token '%s' appears twice in the vocabulary (ids %u and %d)", t->name, s,
                               o, id);
            i = (i + 1) & t->vocab.mask;
        }
        t->vocab.slots[i] = (fp << 32) | ((uint64_t)id + 1);
    }
    return 0;
}

int32_t tok_strmap_get(const rl_tokenizer *t, const char *s, size_t n) {
    if (!t->vocab.slots) return -1;
    uint64_t h = tok_hash(s, n);
    uint64_t fp = h >> 32;
    size_t i = (size_t)h & t->vocab.mask;
    while (t->vocab.slots[i]) {
        uint64_t e = t->vocab.slots[i];
        if ((e >> 32) == fp) {
            uint32_t o = (uint32_t)e - 1;
            if (t->tok_len[o] == n && memcmp(t->pool + t->tok_off[o], s, n) == 0) return (int32_t)o;
        }
        i = (i + 1) & t->vocab.mask;
    }
    return -1;
}

static inline uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
}
static inline size_t merge_slot0(uint64_t k, size_t mask) {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    return (size_t)k & mask;
}

int tok_merges_alloc(rl_tokenizer *t, size_t n, rl_error *err) {
    size_t cap = pow2_at_least(n * 2 + 1);
    t->merges = rl_calloc(cap, sizeof(tok_merge_slot));
    if (!t->merges) return rl_fail(err, "%s: out of memory for %zu merges", t->name, n);
    t->merge_mask = cap - 1;
    return 0;
}

/* A pair listed twice keeps its last rank, as in Hugging Face (a map built in order). */
void tok_merges_put(rl_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t k = merge_key(a, b);
    size_t i = merge_slot0(k, t->merge_mask);
    while (t->merges[i].key && t->merges[i].key != k) i = (i + 1) & t->merge_mask;
    if (!t->merges[i].key) t->n_merges++;
    t->merges[i].key = k;
    t->merges[i].rank = rank;
    t->merges[i].id = id;
}

static inline const tok_merge_slot *merge_find(const rl_tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = merge_key(a, b);
    size_t i = merge_slot0(k, t->merge_mask);
    while (t->merges[i].key) {
        if (t->merges[i].key == k) return &t->merges[i];
        i = (i + 1) & t->merge_mask;
    }
    return NULL;
}

/* ---- cache ---- */

#define CACHE_SLOTS (1u << 17)
#define CACHE_MAX_WORD 256 /* longer pre-tokens are rare and not cached */

int tok_cache_init(tok_cache *c, rl_error *err) {
    memset(c, 0, sizeof *c);
    c->slots = rl_calloc(CACHE_SLOTS, sizeof(tok_cache_slot));
    c->keys_cap = (size_t)1 << 21;
    c->ids_cap = (size_t)1 << 19;
    c->keys = rl_malloc(c->keys_cap);
    c->ids = rl_malloc(c->ids_cap * sizeof(int32_t));
    if (!c->slots || !c->keys || !c->ids) return rl_fail(err, "out of memory for the tokenizer cache");
    c->mask = CACHE_SLOTS - 1;
    c->max_used = CACHE_SLOTS / 2;
    return 0;
}

void tok_cache_free(tok_cache *c) {
    rl_free(c->slots);
    rl_free(c->keys);
    rl_free(c->ids);
    memset(c, 0, sizeof *c);
}

static const tok_cache_slot *cache_get(const tok_cache *c, uint64_t h, const uint8_t *s, size_t n) {
    size_t i = (size_t)h & c->mask;
    while (c->slots[i].key_len) {
        const tok_cache_slot *e = &c->slots[i];
        if (e->hash == h && e->key_len == n && memcmp(c->keys + e->key_off, s, n) == 0) return e;
        i = (i + 1) & c->mask;
    }
    return NULL;
}

/* Bounded: when any part is full the whole cache is cleared (no allocation). */
static void cache_put(tok_cache *c, uint64_t h, const uint8_t *s, size_t n, const int32_t *ids, size_t k) {
    if (c->used + 1 > c->max_used || c->keys_len + n > c->keys_cap || c->ids_len + k > c->ids_cap) {
        memset(c->slots, 0, (c->mask + 1) * sizeof(tok_cache_slot));
        c->used = c->keys_len = c->ids_len = 0;
    }
    size_t i = (size_t)h & c->mask;
    while (c->slots[i].key_len) i = (i + 1) & c->mask;
    tok_cache_slot *e = &c->slots[i];
    e->hash = h;
    e->key_off = (uint32_t)c->keys_len;
    e->key_len = (uint32_t)n;
    e->ids_off = (uint32_t)c->ids_len;
    e->ids_len = (uint32_t)k;
    memcpy(c->keys + c->keys_len, s, n);
    memcpy(c->ids + c->ids_len, ids, k * sizeof(int32_t));
    c->keys_len += n;
    c->ids_len += k;
    c->used++;
}

/* ---- merging ---- */

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static int ensure_sym(rl_tokenizer *t, size_t n, rl_error *err) {
    if (n <= t->sym_cap) return 0;
    size_t cap = t->sym_cap ? t->sym_cap : 256;
    while (cap < n) cap *= 2;
    size_t hc;
    if (rl_mul_size(cap, 3, &hc)) return rl_fail(err, "word too long");
    int32_t *a = rl_realloc(t->sym_id, cap * sizeof(int32_t));
    if (a) t->sym_id = a;
    int32_t *b = rl_realloc(t->sym_prev, cap * sizeof(int32_t));
    if (b) t->sym_prev = b;
    int32_t *c = rl_realloc(t->sym_next, cap * sizeof(int32_t));
    if (c) t->sym_next = c;
    uint64_t *h = rl_realloc(t->heap, hc * sizeof(uint64_t));
    if (h) t->heap = h;
    if (!a || !b || !c || !h) return rl_fail(err, "out of memory for a word of %zu bytes", n);
    t->sym_cap = cap;
    t->heap_cap = hc;
    return 0;
}

/* Appends the initial symbols of one character (or byte) to the symbol list,
 * following HF's BPE: vocab hit, else byte fallback, else unk (fused if asked),
 * else dropped. */
static void push_symbol(rl_tokenizer *t, int32_t id, size_t *m, int *last_unk) {
    if (id < 0) {
        if (t->unk_id < 0) return;
        if (t->fuse_unk && *last_unk) return;
        id = t->unk_id;
        *last_unk = 1;
    } else {
        *last_unk = 0;
    }
    t->sym_id[*m] = id;
    (*m)++;
}

int tok_bpe_word(rl_tokenizer *t, const uint8_t *s, size_t n, rl_tok_ids *out, rl_error *err) {
    if (n == 0) return 0;
    uint64_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = tok_hash(s, n);
        const tok_cache_slot *e = cache_get(&t->cache, h, s, n);
        if (e) {
            if (out->n + e->ids_len > out->cap &&
                tok_grow((void **)&out->ids, &out->cap, out->n + e->ids_len, sizeof(int32_t)))
                return rl_fail(err, "out of memory for token ids");
            memcpy(out->ids + out->n, t->cache.ids + e->ids_off, e->ids_len * sizeof(int32_t));
            out->n += e->ids_len;
            return 0;
        }
    }
    if (ensure_sym(t, n, err)) return -1;
    size_t start = out->n;
    size_t m = 0;
    int last_unk = 0;
    if (t->ignore_merges) {
        /* The whole word as one vocabulary entry wins over merging. */
        int32_t id = -1;
        if (t->byte_level) {
            if (n <= 1024) {
                uint8_t buf[2048];
                size_t k = 0;
                for (size_t i = 0; i < n; i++) k += (size_t)tok_utf8_put(tok_byte_to_cp[s[i]], buf + k);
                id = tok_strmap_get(t, (const char *)buf, k);
            }
        } else {
            id = tok_strmap_get(t, (const char *)s, n);
        }
        if (id >= 0) {
            if (tok_ids_push(out, id)) return rl_fail(err, "out of memory for token ids");
            goto cache;
        }
    }
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) push_symbol(t, t->byte_id[s[i]], &m, &last_unk);
    } else {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            int k = tok_utf8_next(s + i, n - i, &cp);
            int32_t id = tok_strmap_get(t, (const char *)s + i, (size_t)k);
            if (id < 0 && t->byte_fallback) {
                int ok = 1;
                for (int j = 0; j < k; j++) ok &= t->byte_fb_id[s[i + (size_t)j]] >= 0;
                if (ok) {
                    for (int j = 0; j < k; j++) push_symbol(t, t->byte_fb_id[s[i + (size_t)j]], &m, &last_unk);
                    i += (size_t)k;
                    continue;
                }
            }
            push_symbol(t, id, &m, &last_unk);
            i += (size_t)k;
        }
    }
    for (size_t i = 0; i < m; i++) {
        t->sym_prev[i] = (int32_t)i - 1;
        t->sym_next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        const tok_merge_slot *ms = merge_find(t, t->sym_id[i], t->sym_id[i + 1]);
        if (ms) heap_push(t->heap, &hn, ((uint64_t)(uint32_t)ms->rank << 32) | i);
    }
    while (hn) {
        uint64_t top = heap_pop(t->heap, &hn);
        int32_t pos = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32);
        if (t->sym_id[pos] < 0) continue;
        int32_t nx = t->sym_next[pos];
        if (nx < 0) continue;
        const tok_merge_slot *ms = merge_find(t, t->sym_id[pos], t->sym_id[nx]);
        if (!ms || ms->rank != rank) continue; /* stale: a neighbour changed since the push */
        t->sym_id[pos] = ms->id;
        t->sym_id[nx] = -1;
        int32_t nn = t->sym_next[nx];
        t->sym_next[pos] = nn;
        if (nn >= 0) t->sym_prev[nn] = pos;
        int32_t pv = t->sym_prev[pos];
        if (pv >= 0 && (ms = merge_find(t, t->sym_id[pv], t->sym_id[pos])))
            heap_push(t->heap, &hn, ((uint64_t)(uint32_t)ms->rank << 32) | (uint32_t)pv);
        if (nn >= 0 && (ms = merge_find(t, t->sym_id[pos], t->sym_id[nn])))
            heap_push(t->heap, &hn, ((uint64_t)(uint32_t)ms->rank << 32) | (uint32_t)pos);
    }
    if (m) {
        for (int32_t i = 0; i >= 0; i = t->sym_next[i])
            if (tok_ids_push(out, t->sym_id[i])) return rl_fail(err, "out of memory for token ids");
    }
cache:
    if (n <= CACHE_MAX_WORD) cache_put(&t->cache, h, s, n, out->ids + start, out->n - start);
    return 0;
}

int tok_bpe_reserve(rl_tokenizer *t, size_t n, rl_error *err) { return ensure_sym(t, n, err); }
