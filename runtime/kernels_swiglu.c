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

void rl_swiglu_backward(const float *g, const float *u, const float *dm, float *dg, float *du, int64_t n,
                        int threads) {
    if (threads < 1) threads = 1;
#pragma omp parallel for simd num_threads(threads) schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + rl_expf(-g[i]));
        float silu = g[i] * sg;
        /* d silu / dg = sg * (1 + g * (1 - sg)) */
        float dsilu = sg * (1.0f + g[i] * (1.0f - sg));
        float d = dm[i];
        dg[i] = d * u[i] * dsilu;
        du[i] = d * silu;
    }
}
