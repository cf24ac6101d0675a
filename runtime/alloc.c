#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t g_alloc_count;

static void *counted(void *p) {
    if (p) atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed);
    return p;
}

void *rl_malloc(size_t n) { return n ? counted(malloc(n)) : NULL; }

void *rl_calloc(size_t count, size_t size) {
    size_t total;
    if (rl_mul_size(count, size, &total) || total == 0) return NULL;
    return counted(calloc(count, size));
}

void *rl_realloc(void *p, size_t n) {
    if (n == 0) { free(p); return NULL; }
    return counted(realloc(p, n));
}

void rl_free(void *p) { free(p); }

char *rl_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = rl_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *rl_malloc_aligned(size_t n) {
    if (n == 0) return NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) return NULL;
    return counted(aligned_alloc(64, rounded));
}

void rl_free_aligned(void *p) { free(p); }

uint64_t rl_alloc_count(void) { return atomic_load_explicit(&g_alloc_count, memory_order_relaxed); }

int rl_mul_size(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int rl_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}
