/* RMSNorm as in HF Qwen2RMSNorm: y = w * x / sqrt(mean(x^2) + eps).
 * Backward with r = rstd: dx = r * (w*dy) - r^3/d * x * sum(w*dy*x). */
#include <math.h>
#include <string.h>

#include "qwen2.h"
#include "threads.h"

typedef struct norm_args {
    const float *x, *w;
    float *y, *rstd;
    int64_t d;
    float eps;
} norm_args;

static void rmsnorm_rows(void *ctx, int64_t r0, int64_t r1, int slot) {
    (void)slot;
    const norm_args *a = ctx;
    const int64_t d = a->d;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = a->x + r * d;
        float *yr = a->y + r * d;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t i = 0; i < d; i++) ss += xr[i] * xr[i];
        float rs = 1.0f / sqrtf(ss / (float)d + a->eps);
        for (int64_t i = 0; i < d; i++) yr[i] = a->w[i] * (xr[i] * rs);
        if (a->rstd) a->rstd[r] = rs;
    }
}

void rl_qwen2_rmsnorm(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t d,
                      float eps) {
    norm_args a = {x, w, y, rstd, d, eps};
    rl_parallel_for(rows, rows * d > 65536 ? rl_get_threads() : 1, rmsnorm_rows, &a);
}

void rl_qwen2_rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                               float *dw, int64_t rows, int64_t d, int accumulate) {
#pragma omp parallel for schedule(static) if (rows * d > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d, *dyr = dy + r * d;
        float *dxr = dx + r * d;
        const float rs = rstd[r];
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < d; i++) dot += w[i] * dyr[i] * xr[i];
        const float c = rs * rs * rs * dot / (float)d;
        if (accumulate)
            for (int64_t i = 0; i < d; i++) dxr[i] += rs * w[i] * dyr[i] - c * xr[i];
        else
            for (int64_t i = 0; i < d; i++) dxr[i] = rs * w[i] * dyr[i] - c * xr[i];
    }
    /* dw: each column summed over rows in row order by one thread (no races,
       fixed order), a block of columns at a time so the row walk reads
       contiguous memory and the block's sums form vectors. */
    enum { CB = 64 };
#pragma omp parallel for schedule(static) if (rows * d > 65536)
    for (int64_t i0 = 0; i0 < d; i0 += CB) {
        const int64_t n = d - i0 < CB ? d - i0 : CB;
        float s[CB] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *dyr = dy + r * d + i0, *xr = x + r * d + i0;
            const float rs = rstd[r];
            for (int64_t i = 0; i < n; i++) s[i] += dyr[i] * xr[i] * rs;
        }
        for (int64_t i = 0; i < n; i++) dw[i0 + i] += s[i];
    }
}
