/* Kernels that only the flow network needs: the sinusoidal scalar embedding
 * and the adaLN modulation of an RMSNorm, with their backward passes.
 * Row-major, f32, n rows; all backward functions ACCUMULATE into their
 * gradient outputs (a node's backward adds to what is already there). */
#ifndef RL_KERNELS_FLOW_H
#define RL_KERNELS_FLOW_H

#include <stddef.h>
#include <stdint.h>

/* out[r, 0:half] = cos(v[r]·f_i), out[r, half:dim] = sin(v[r]·f_i) with
 * f_i = exp(-ln(10000)·i/half), half = dim/2 (dim even). The argument is v
 * itself (not scaled by 1000): flow time and layer fraction live in [0, 1]. */
void rl_flow_sinusoid(const float *v, int64_t n, int64_t dim, float *out);
/* dv[r] += sum_i d_out[r, i] · d(out[r, i])/dv[r]. */
void rl_flow_sinusoid_backward(const float *v, int64_t n, int64_t dim, const float *d_out, float *dv);

/* adaLN-modulated RMSNorm, per row r:
 *   rstd[r] = 1/sqrt(mean_j x[r,j]^2 + eps)
 *   out[r,j] = x[r,j]·rstd[r]·g[j]·(1 + scale[r,j]) + shift[r,j]
 * shift and scale rows have stride ld_mod (they are slices of one wide
 * modulation matrix); x and out have stride w. */
void rl_flow_norm_modulate(const float *x, const float *g, const float *shift, const float *scale,
                           int64_t ld_mod, int64_t n, int64_t w, float eps, float *rstd, float *out);
/* Backward of rl_flow_norm_modulate given d_out and the rstd saved by the
 * forward. Accumulates d_x, d_g (may be NULL), d_shift and d_scale (stride
 * ld_mod; may be NULL). */
void rl_flow_norm_modulate_backward(const float *x, const float *g, const float *scale, int64_t ld_mod,
                                    const float *rstd, const float *d_out, int64_t n, int64_t w,
                                    float *d_x, float *d_g, float *d_shift, float *d_scale);

/* y = silu(a) = a·sigmoid(a), elementwise over n values. */
void rl_flow_silu(const float *a, float *y, int64_t n);
/* d_a = d_y · silu'(a) (overwrites d_a; d_a may alias d_y). */
void rl_flow_silu_backward(const float *a, const float *d_y, float *d_a, int64_t n);

#endif
