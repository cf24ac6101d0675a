/* Elementwise kernels. Every output element depends only on the inputs at the
 * same index, so the OpenMP split cannot change results; the one reduction
 * (bias gradient = column sums) runs over rows in order within a column block. */
#include <math.h>

#include "kernels.h"

/* Below this many elements the fork/join costs more than the loop. */
#define PAR_MIN (1 << 15)
/* Columns per block in column reductions: one block per task, rows in order. */
#define COL_BLOCK 64

void rl_bias_add_forward(float *out, const float *in, const float *bias, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float *o = out + r * c;
        const float *x = in + r * c;
#pragma omp simd
        for (int64_t j = 0; j < c; j++) o[j] = x[j] + bias[j];
    }
}

void rl_bias_add_backward(float *din, float *dbias, const float *dout, int64_t n, int64_t c) {
    if (din) rl_add_backward(din, NULL, dout, n * c);
    if (!dbias) return;
    int64_t nblocks = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
        float acc[COL_BLOCK] = {0};
        for (int64_t r = 0; r < n; r++) {
            const float *g = dout + r * c;
            for (int64_t j = j0; j < j1; j++) acc[j - j0] += g[j];
        }
        for (int64_t j = j0; j < j1; j++) dbias[j] += acc[j - j0];
    }
}

void rl_add_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void rl_add_backward(float *da, float *db, const float *dout, int64_t n) {
    if (da) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) da[i] += dout[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) db[i] += dout[i];
    }
}

void rl_mul_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void rl_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, int64_t n) {
    if (da) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) da[i] += dout[i] * b[i];
    }
    if (db) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) db[i] += dout[i] * a[i];
    }
}

void rl_scale_forward(float *out, const float *x, float s, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = s * x[i];
}

void rl_scale_backward(float *dx, const float *dout, float s, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += s * dout[i];
}

void rl_silu_forward(float *out, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = v / (1.0f + expf(-v));
    }
}

void rl_silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    /* d/dx x·s(x) = s + x·s·(1-s) = s·(1 + x·(1-s)). */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float s = 1.0f / (1.0f + expf(-v));
        dx[i] += dout[i] * s * (1.0f + v * (1.0f - s));
    }
}
