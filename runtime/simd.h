/* Vectors for the hand-tiled kernels (decode panels, attention): GCC vector
 * extensions as wide as the target's registers — 16 floats with AVX-512, 8
 * with AVX, 4 otherwise — so the same source builds for any -march and no
 * function passes a vector wider than the ABI's registers (the kernels are
 * inlined anyway). Loads and stores go through memcpy: no alignment is
 * assumed. */
#ifndef RL_SIMD_H
#define RL_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define RL_VW 16
#elif defined(__AVX__)
#define RL_VW 8
#else
#define RL_VW 4
#endif

typedef float rl_vf __attribute__((vector_size(RL_VW * 4)));
typedef uint16_t rl_vh __attribute__((vector_size(RL_VW * 2)));
typedef uint32_t rl_vu __attribute__((vector_size(RL_VW * 4)));

static inline rl_vf rl_vload(const float *p) {
    rl_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void rl_vstore(float *p, rl_vf v) { memcpy(p, &v, sizeof v); }

/* c in every lane: one vbroadcastss (writing `(rl_vf){0} + c` costs a scalar
   add first, since adding +0 is not an identity for -0). */
static inline rl_vf rl_vbcast(float c) {
    rl_vf v;
    for (int l = 0; l < RL_VW; l++) v[l] = c;
    return v;
}

/* RL_VW bf16 values widened to f32 (bf16 is the high half of an f32). */
static inline rl_vf rl_vload_bf16(const uint16_t *p) {
    rl_vh h;
    memcpy(&h, p, sizeof h);
    rl_vu u = __builtin_convertvector(h, rl_vu) << 16;
    rl_vf f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Sum of the lanes, in lane order. */
static inline float rl_vsum(rl_vf v) {
    float s = 0;
    for (int i = 0; i < RL_VW; i++) s += v[i];
    return s;
}

#endif
