/* Rotary position embeddings (HF rotate_half convention). */
#include "kernels_attn.h"

#include <math.h>

#include "threads.h"

static int clamp_threads(int threads) { return threads < 1 ? 1 : threads; }

void rl_rope_table(float *cos_t, float *sin_t, int64_t n_pos, int64_t head_dim, double theta) {
    const int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        /* HF computes inv_freq in f32; the product with the position too. */
        float inv = (float)(1.0 / pow(theta, (double)(2 * i) / (double)head_dim));
        for (int64_t p = 0; p < n_pos; p++) {
            float a = (float)p * inv;
            cos_t[p * half + i] = cosf(a);
            sin_t[p * half + i] = sinf(a);
        }
    }
}

typedef struct rope_args {
    float *x;
    int64_t n_heads, head_dim;
    const int32_t *pos;
    const float *cos_t, *sin_t;
    float sgn;
} rope_args;

static void rope_rows(void *ctx, int64_t r0, int64_t r1, int slot) {
    (void)slot;
    const rope_args *a = ctx;
    const int64_t half = a->head_dim / 2, stride = a->n_heads * a->head_dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *c = a->cos_t + (int64_t)a->pos[r] * half, *s = a->sin_t + (int64_t)a->pos[r] * half;
        for (int64_t h = 0; h < a->n_heads; h++) {
            float *xh = a->x + r * stride + h * a->head_dim;
            for (int64_t i = 0; i < half; i++) {
                float x0 = xh[i], x1 = xh[i + half], si = a->sgn * s[i];
                xh[i] = x0 * c[i] - x1 * si;
                xh[i + half] = x1 * c[i] + x0 * si;
            }
        }
    }
}

void rl_rope_apply(float *x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t *pos,
                   const float *cos_t, const float *sin_t, int inverse, int threads) {
    rope_args a = {x, n_heads, head_dim, pos, cos_t, sin_t, inverse ? -1.0f : 1.0f};
    rl_parallel_for(rows, rows > 64 ? clamp_threads(threads) : 1, rope_rows, &a);
}
