/* Embedding lookup and its scatter-add backward. The backward splits the work
 * by column blocks (each task sees every id, in order), so repeated ids are
 * summed in the same order for any thread count, without atomics. */
#include <string.h>

#include "kernels.h"

#define PAR_MIN (1 << 14)
#define COL_BLOCK 64

int64_t rl_ids_check(const int32_t *ids, int64_t n, int64_t limit) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || (int64_t)ids[i] >= limit) return i;
    return -1;
}

void rl_embedding_forward(float *out, const float *table, const int32_t *ids, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        memcpy(out + i * c, table + (int64_t)ids[i] * c, (size_t)c * sizeof(float));
}

void rl_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int64_t n, int64_t c) {
    int64_t nblocks = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
        for (int64_t i = 0; i < n; i++) {
            float *d = dtable + (int64_t)ids[i] * c;
            const float *g = dout + i * c;
            for (int64_t j = j0; j < j1; j++) d[j] += g[j];
        }
    }
}
