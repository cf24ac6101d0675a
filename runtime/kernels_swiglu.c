/* SwiGLU gate of the Qwen2 MLP: m = silu(g) * u, elementwise. */
#include "kernels_attn.h"

#include <math.h>

#include "threads.h"

typedef struct swiglu_args {
    const float *g, *u;
    float *m;
} swiglu_args;

static void swiglu_range(void *ctx, int64_t lo, int64_t hi, int slot) {
    (void)slot;
    const swiglu_args *a = ctx;
    const float *g = a->g, *u = a->u;
    float *m = a->m;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
        float sg = 1.0f / (1.0f + rl_expf(-g[i]));
        m[i] = g[i] * sg * u[i];
    }
}

void rl_swiglu_forward(const float *g, const float *u, float *m, int64_t n, int threads) {
    swiglu_args a = {g, u, m};
    rl_parallel_for(n, n > 16384 ? threads : 1, swiglu_range, &a);
}

typedef struct swiglu_grad_args {
    const float *g, *u, *dm;
    float *dg, *du, *m;
} swiglu_grad_args;

/* Gradients of m = silu(g) u at one element; returns silu(g).
   d silu / dg = sg * (1 + g * (1 - sg)) with sg = sigmoid(g). */
static inline float swiglu_grad_at(float g, float u, float d, float *dg, float *du) {
    const float sg = 1.0f / (1.0f + rl_expf(-g)), silu = g * sg;
    *dg = d * u * (sg * (1.0f + g * (1.0f - sg)));
    *du = d * silu;
    return silu;
}

static void swiglu_grad_range(void *ctx, int64_t lo, int64_t hi, int slot) {
    (void)slot;
    const swiglu_grad_args *a = ctx;
    const float *g = a->g, *u = a->u, *dm = a->dm;
    float *dg = a->dg, *du = a->du, *m = a->m;
    if (m) { /* two loops, so neither carries a branch per element */
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) m[i] = swiglu_grad_at(g[i], u[i], dm[i], dg + i, du + i) * u[i];
    } else {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) swiglu_grad_at(g[i], u[i], dm[i], dg + i, du + i);
    }
}

void rl_swiglu_backward(const float *g, const float *u, const float *dm, float *dg, float *du, float *m, int64_t n,
                        int threads) {
    swiglu_grad_args a = {g, u, dm, dg, du, m};
    rl_parallel_for(n, n > 16384 ? threads : 1, swiglu_grad_range, &a);
}
