/* All heap traffic of the runtime goes through these wrappers, so a test can
 * prove that a steady-state step allocates nothing (rl_alloc_count stays put)
 * and so sizes are overflow-checked in one place. */
#ifndef RL_ALLOC_H
#define RL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *rl_malloc(size_t n);             /* NULL on failure or n == 0 */
void *rl_calloc(size_t count, size_t size); /* overflow-checked */
void *rl_realloc(void *p, size_t n);
void  rl_free(void *p);
char *rl_strdup(const char *s);

/* Aligned allocation (64 bytes; 2 MiB and transparent huge pages from 4 MiB up) for
   arenas and tensors; free with rl_free_aligned. */
void *rl_malloc_aligned(size_t n);
void  rl_free_aligned(void *p);

/* Number of successful allocations (malloc/calloc/realloc/strdup/aligned) so far. */
uint64_t rl_alloc_count(void);

/* a*b with overflow check: returns 0 and sets *out, or -1 on overflow. */
int rl_mul_size(size_t a, size_t b, size_t *out);
int rl_add_size(size_t a, size_t b, size_t *out);

#endif
