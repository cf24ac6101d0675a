/* Losses. The mean-squared error sums in double over a fixed number of
 * contiguous chunks (chosen from n alone), then adds the chunk sums in order:
 * the value is the same whatever the thread count. */
#include "kernels.h"

#define PAR_MIN (1 << 15)
#define MSE_CHUNKS 64

float rl_mse_forward(const float *pred, const float *target, int64_t n) {
    if (n <= 0) return 0.0f;
    double part[MSE_CHUNKS];
    int64_t chunk = (n + MSE_CHUNKS - 1) / MSE_CHUNKS;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int b = 0; b < MSE_CHUNKS; b++) {
        int64_t i0 = (int64_t)b * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        double s = 0;
        for (int64_t i = i0; i < i1; i++) {
            double d = (double)pred[i] - (double)target[i];
            s += d * d;
        }
        part[b] = s;
    }
    double total = 0;
    for (int b = 0; b < MSE_CHUNKS; b++) total += part[b];
    return (float)(total / (double)n);
}

void rl_mse_backward(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                     int64_t n) {
    if (n <= 0) return;
    float k = 2.0f * dloss / (float)n;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = k * (pred[i] - target[i]);
        if (dpred) dpred[i] += g;
        if (dtarget) dtarget[i] -= g;
    }
}
