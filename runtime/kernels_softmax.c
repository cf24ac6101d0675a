/* Softmax and log-softmax-with-gather over the last dimension, one row per
 * task (row sums in double), so results do not depend on the thread count. */
#include <math.h>

#include "kernels.h"

#define PAR_MIN (1 << 14)

void rl_softmax_forward(float *out, const float *x, int64_t n, int64_t c) {
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        float *o = out + r * c;
        float mx = -INFINITY;
        for (int64_t j = 0; j < c; j++) mx = xr[j] > mx ? xr[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < c; j++) {
            float e = expf(xr[j] - mx);
            o[j] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < c; j++) o[j] *= inv;
    }
}

void rl_softmax_backward(float *dx, const float *dout, const float *y, int64_t n, int64_t c) {
    /* dx_j = y_j (g_j - sum_k g_k y_k). */
#pragma omp parallel for schedule(static) if (n * c >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *g = dout + r * c, *yr = y + r * c;
        float *d = dx + r * c;
        double dot = 0;
        for (int64_t j = 0; j < c; j++) dot += (double)g[j] * yr[j];
        float fd = (float)dot;
        for (int64_t j = 0; j < c; j++) d[j] += yr[j] * (g[j] - fd);
    }
}

void rl_logsoftmax_gather_forward(float *out, float *lse, const float *logits, const int32_t *target,
                                  int64_t n, int64_t v) {
#pragma omp parallel for schedule(static) if (n * v >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *x = logits + r * v;
        float mx = -INFINITY;
        for (int64_t j = 0; j < v; j++) mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < v; j++) sum += expf(x[j] - mx);
        float l = (float)((double)mx + log(sum));
        lse[r] = l;
        int64_t t = target[r];
        out[r] = (t >= 0 && t < v) ? x[t] - l : 0.0f;
    }
}

void rl_logsoftmax_gather_backward(float *dlogits, const float *dout, const float *logits,
                                   const float *lse, const int32_t *target, int64_t n, int64_t v) {
#pragma omp parallel for schedule(static) if (n * v >= PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        int64_t t = target[r];
        if (t < 0 || t >= v) continue; /* ignored position: no gradient */
        const float *x = logits + r * v;
        float *d = dlogits + r * v;
        float g = dout[r], l = lse[r];
        for (int64_t j = 0; j < v; j++) d[j] -= g * expf(x[j] - l);
        d[t] += g;
    }
}
