#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Blocks from 4 MiB up (weights, gradients, arenas, KV caches, the decode
   copy) are 2 MiB aligned and asked to be backed by transparent huge pages:
   each 4 KiB page of fresh memory otherwise costs a page fault on first
   touch (expensive in a VM: allocating and clearing the 4 GiB of a 0.5B
   model's weights and gradients took ~10 s) and streaming a large weight
   matrix walks one TLB entry per 4 KiB. The kernel may decline (THP off):
   then nothing changes but the alignment. */
enum { HUGE_MIN = 4u << 20, HUGE_ALIGN = 2u << 20 };

void *rl_malloc_aligned(size_t n) {
    if (n == 0) return NULL;
    const size_t align = n >= HUGE_MIN ? HUGE_ALIGN : 64;
    size_t rounded = (n + align - 1) & ~(align - 1);
    if (rounded < n) return NULL;
    void *p = aligned_alloc(align, rounded);
#ifdef MADV_HUGEPAGE
    if (p && align == HUGE_ALIGN) (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return counted(p);
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
