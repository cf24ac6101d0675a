/* RMSNorm over the last dimension (Qwen2 / the flow network's adaLN blocks).
 * Row sums are taken in double, one row per task, so results are the same for
 * any thread count. */
#include <math.h>

#include "kernels.h"

#define PAR_MIN (1 << 14)
#define COL_BLOCK 64

void rl_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t n, int64_t c,
                        float eps) {
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        float *o = out + r * c;
        double ss = 0;
        for (int64_t j = 0; j < c; j++) ss += (double)xr[j] * xr[j];
        float s = (float)(1.0 / sqrt(ss / (double)(c > 0 ? c : 1) + (double)eps));
        rstd[r] = s;
        if (w) {
            for (int64_t j = 0; j < c; j++) o[j] = xr[j] * s * w[j];
        } else {
            for (int64_t j = 0; j < c; j++) o[j] = xr[j] * s;
        }
    }
}

void rl_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int64_t n, int64_t c) {
    if (dx) {
        /* y_j = x_j r w_j with r = (mean x^2 + eps)^-1/2, dr/dx_j = -r^3 x_j / C, so
           dx_j = r (g_j w_j) - x_j r^3 / C * sum_k g_k w_k x_k. */
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x + r * c, *g = dout + r * c;
            float *d = dx + r * c;
            float s = rstd[r];
            double dot = 0;
            for (int64_t j = 0; j < c; j++) dot += (double)g[j] * (w ? w[j] : 1.0f) * xr[j];
            float k = (float)(dot * (double)s * s * s / (double)(c > 0 ? c : 1));
            if (w) {
                for (int64_t j = 0; j < c; j++) d[j] += s * g[j] * w[j] - k * xr[j];
            } else {
                for (int64_t j = 0; j < c; j++) d[j] += s * g[j] - k * xr[j];
            }
        }
    }
    if (dw) {
        /* Column sums of g·x·r: one column block per task, rows in order. */
        int64_t nblocks = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            int64_t j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
            float acc[COL_BLOCK] = {0};
            for (int64_t r = 0; r < n; r++) {
                const float *xr = x + r * c, *g = dout + r * c;
                float s = rstd[r];
                for (int64_t j = j0; j < j1; j++) acc[j - j0] += g[j] * xr[j] * s;
            }
            for (int64_t j = j0; j < j1; j++) dw[j] += acc[j - j0];
        }
    }
}
