#include "kernels_flow.h"

#include <math.h>

/* Elementwise work below this many values stays on one thread: forking the
 * OpenMP pool costs more than it saves on small tensors. */
#define FLOW_PAR_MIN 32768

static float sinusoid_freq(int64_t i, int64_t half) {
    return (float)exp(-log(10000.0) * (double)i / (double)half);
}

/* Frequencies into a stack table when they fit (the flow uses dim 256), so
 * the exp is not recomputed for every row. */
#define FLOW_FREQ_MAX 512

void rl_flow_sinusoid(const float *v, int64_t n, int64_t dim, float *out) {
    int64_t half = dim / 2;
    float table[FLOW_FREQ_MAX];
    int tabled = half <= FLOW_FREQ_MAX;
    if (tabled)
        for (int64_t i = 0; i < half; i++) table[i] = sinusoid_freq(i, half);
#pragma omp parallel for schedule(static) if (n * dim > FLOW_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float *o = out + r * dim;
        for (int64_t i = 0; i < half; i++) {
            float arg = v[r] * (tabled ? table[i] : sinusoid_freq(i, half));
            o[i] = cosf(arg);
            o[half + i] = sinf(arg);
        }
        if (dim & 1) o[dim - 1] = 0.0f;
    }
}

void rl_flow_sinusoid_backward(const float *v, int64_t n, int64_t dim, const float *d_out, float *dv) {
    int64_t half = dim / 2;
#pragma omp parallel for schedule(static) if (n * dim > FLOW_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *g = d_out + r * dim;
        double acc = 0;
        for (int64_t i = 0; i < half; i++) {
            float f = sinusoid_freq(i, half);
            float arg = v[r] * f;
            acc += (double)f * (-(double)g[i] * sinf(arg) + (double)g[half + i] * cosf(arg));
        }
        dv[r] += (float)acc;
    }
}

void rl_flow_norm_modulate(const float *x, const float *g, const float *shift, const float *scale,
                           int64_t ld_mod, int64_t n, int64_t w, float eps, float *rstd, float *out) {
#pragma omp parallel for schedule(static) if (n * w > FLOW_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *restrict xr = x + r * w;
        const float *restrict sh = shift + r * ld_mod, *restrict sc = scale + r * ld_mod;
        float *restrict o = out + r * w;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < w; j++) ss += xr[j] * xr[j];
        float rs = 1.0f / sqrtf(ss / (float)w + eps);
        rstd[r] = rs;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) o[j] = xr[j] * rs * g[j] * (1.0f + sc[j]) + sh[j];
    }
}

void rl_flow_norm_modulate_backward(const float *x, const float *g, const float *scale, int64_t ld_mod,
                                    const float *rstd, const float *d_out, int64_t n, int64_t w,
                                    float *d_x, float *d_g, float *d_shift, float *d_scale) {
#pragma omp parallel for schedule(static) if (n * w > FLOW_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *restrict xr = x + r * w, *restrict dy = d_out + r * w, *restrict sc = scale + r * ld_mod;
        float rs = rstd[r];
        /* With xhat = x·rstd and dxhat = dy·(1+scale)·g:
           dx = rstd·(dxhat − xhat·mean(dxhat·xhat)). */
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < w; j++) dot += dy[j] * (1.0f + sc[j]) * g[j] * xr[j];
        float c = dot * rs * rs / (float)w;
        if (d_x) {
            float *restrict dx = d_x + r * w;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) dx[j] += rs * (dy[j] * (1.0f + sc[j]) * g[j] - xr[j] * c);
        }
        if (d_shift) {
            float *restrict ds = d_shift + r * ld_mod;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) ds[j] += dy[j];
        }
        if (d_scale) {
            float *restrict dc = d_scale + r * ld_mod;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) dc[j] += dy[j] * xr[j] * rs * g[j];
        }
    }
    if (!d_g) return;
    /* The weight gradient reduces over rows: split the columns among threads
       (16 floats = one cache line per row) so no two threads share a sum. */
    int64_t nblk = (w + 15) / 16;
#pragma omp parallel for schedule(static) if (n * w > FLOW_PAR_MIN)
    for (int64_t b = 0; b < nblk; b++) {
        int64_t j0 = b * 16, len = j0 + 16 < w ? 16 : w - j0;
        float acc[16] = {0};
        for (int64_t r = 0; r < n; r++) {
            const float *restrict xr = x + r * w + j0, *restrict dy = d_out + r * w + j0;
            const float *restrict sc = scale + r * ld_mod + j0;
            float rs = rstd[r];
#pragma omp simd
            for (int64_t j = 0; j < len; j++) acc[j] += dy[j] * (1.0f + sc[j]) * xr[j] * rs;
        }
        for (int64_t j = 0; j < len; j++) d_g[j0 + j] += acc[j];
    }
}

/* exp for the SiLU: Cody-Waite reduction x = n·ln2 + r and a degree-6
 * polynomial for e^r (Cephes coefficients, ~1 ulp), written with plain
 * arithmetic so the loops below vectorize; libm's expf does not. */
static inline float exp_vec(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    /* Round to nearest by the 1.5·2^23 trick (no SSE4.1 needed). */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } sc;
    sc.i = ((int32_t)n + 127) << 23;
    return y * sc.f;
}

void rl_flow_silu(const float *restrict a, float *restrict y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > FLOW_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] / (1.0f + exp_vec(-a[i]));
}

void rl_flow_silu_backward(const float *a, const float *d_y, float *d_a, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > FLOW_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + exp_vec(-a[i]));
        d_a[i] = d_y[i] * s * (1.0f + a[i] * (1.0f - s));
    }
}
