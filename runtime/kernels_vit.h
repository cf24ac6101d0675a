/* Kernels of the vision encoder (models/vit.h), forward and backward, in the
 * conventions of kernels.h: plain float pointers with explicit sizes, no
 * allocation, no failure; forward overwrites, backward ACCUMULATES unless a
 * function says it WRITES; any gradient pointer may be NULL.
 *
 *  - LayerNorm over the last dim (torch.nn.LayerNorm, biased variance);
 *  - GELU, exact erf form (torch.nn.GELU() default, approximate='none');
 *  - 2-D rotary embedding of Qwen2-VL's vision tower: the first half of each
 *    rotated pair set turns with the patch's row, the second with its column;
 *  - bidirectional multi-head attention within segments (one segment per
 *    image), reading q, k, v with a row stride so they can live side by side
 *    in one fused qkv projection. */
#ifndef RL_KERNELS_VIT_H
#define RL_KERNELS_VIT_H

#include <stddef.h>
#include <stdint.h>

/* out[N,C] = (x - mean) * rstd * w + b, rstd = 1/sqrt(var + eps) (biased
 * variance); w, b may be NULL (1 and 0). mean[N], rstd[N] are saved for
 * backward. out must not alias x. */
void rl_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                          int64_t n, int64_t c, float eps);
/* dx += ..., dw += sum_rows dout * xhat, db += sum_rows dout. */
void rl_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                           const float *mean, const float *rstd, int64_t n, int64_t c);

/* GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); out may equal x.
 * Backward reads the input x. */
void rl_gelu_forward(float *out, const float *x, int64_t n);
void rl_gelu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* 2-D rotary tables: for patch r at grid position (hw[2r], hw[2r+1]),
 * cos/sin [n, head_dim/2] of the angles
 *   i <  head_dim/4: row    * theta^(-4i/head_dim)
 *   i >= head_dim/4: column * theta^(-4(i - head_dim/4)/head_dim)
 * (Qwen2-VL: VisionRotaryEmbedding(head_dim/2) indexed by (h, w) and
 * flattened). head_dim must be a multiple of 4. */
void rl_vit_rope_table(float *cos_t, float *sin_t, const int32_t *hw, int64_t n, int64_t head_dim, double theta);
/* Rotates in place, rotate-half convention, pairs (i, i + head_dim/2): n_heads
 * heads of head_dim floats starting at x + r*ld for each row r, with row r's
 * angles cos_t/sin_t[r]. inverse = 1 rotates back, which is the backward
 * (the rotation is orthogonal). */
void rl_vit_rope_apply(float *x, int64_t rows, int64_t ld, int64_t n_heads, int64_t head_dim, const float *cos_t,
                       const float *sin_t, int inverse, int threads);

/* Bidirectional attention. Segment s covers rows seg[s] .. seg[s+1]-1 and
 * attends only within itself. q, k, v: head h at columns h*head_dim of rows
 * with stride ld; o [rows, n_heads*head_dim] (contiguous); lse [rows, n_heads]
 * saved for backward. Scale 1/sqrt(head_dim). max_len: longest segment. */
size_t rl_vit_attn_scratch_floats(int64_t max_len, int threads);
void rl_vit_attn_forward(const float *q, const float *k, const float *v, int64_t ld, float *o, float *lse,
                         const int64_t *seg, int64_t n_seg, int64_t n_heads, int64_t head_dim, int64_t max_len,
                         float *scratch, int threads);
/* WRITES dq, dk, dv (stride ld, every row of every segment) from dout
 * [rows, n_heads*head_dim]; recomputes the probabilities from q, k and lse. */
void rl_vit_attn_backward(const float *q, const float *k, const float *v, int64_t ld, const float *o,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, const int64_t *seg,
                          int64_t n_seg, int64_t n_heads, int64_t head_dim, int64_t max_len, float *scratch,
                          int threads);

#endif
