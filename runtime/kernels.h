/* Numeric kernels, llm.c style: plain functions over float pointers with
 * explicit sizes. Conventions (see docs/kernels.md):
 *
 *  - Tensors are contiguous row-major. "[N, C]" means N rows of C floats.
 *  - Forward functions OVERWRITE their outputs (except where an `accumulate`
 *    flag says otherwise). Unless a kernel says so, outputs must not alias inputs.
 *  - Backward functions ACCUMULATE (+=) into gradient buffers, so a tensor read
 *    by several consumers gets the sum of their contributions; the caller zeroes
 *    gradients once per step. Every gradient pointer may be NULL: that gradient
 *    is then not computed at all.
 *  - Kernels never allocate and never fail: the caller validates sizes and ids
 *    (see rl_kernel_dims_ok, rl_ids_check). Element loops are parallelised with
 *    OpenMP when large enough; reductions are done per row or per column in a
 *    fixed order, so results do not depend on the thread count (GEMM inside
 *    OpenBLAS is the only exception, up to float reassociation).
 */
#ifndef RL_KERNELS_H
#define RL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- checks the caller makes before calling kernels ---- */

/* OpenBLAS takes int sizes: fails unless every dimension is in [0, INT_MAX]
 * and the product of each pair fits in size_t. `what` names the caller. */
int rl_kernel_dims_ok(const char *what, int64_t m, int64_t n, int64_t k, rl_error *err);
/* Index of the first id outside [0, limit), or -1 if all are valid. */
int64_t rl_ids_check(const int32_t *ids, int64_t n, int64_t limit);

/* ---- matmul (kernels_matmul.c) ----
 * C[M,N] = op(A)[M,K] · op(B)[K,N], where op(A) = A ([M,K] stored) or, with
 * trans_a, A^T (A stored [K,M]); likewise op(B) = B ([K,N]) or B^T ([N,K]).
 * With accumulate, C += op(A)·op(B) instead of C = ... */
void rl_matmul_forward(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                       int trans_a, int trans_b, int accumulate);
/* da (shaped like A as stored) += dC·op(B)^T (transposed back if trans_a);
 * db (shaped like B as stored) += op(A)^T·dC (transposed back if trans_b). */
void rl_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                        int64_t m, int64_t n, int64_t k, int trans_a, int trans_b);

/* linear (torch/HF layout): out[N,OC] = in[N,C] · w[OC,C]^T + bias[OC]; bias may be NULL. */
void rl_linear_forward(float *out, const float *in, const float *w, const float *bias, int64_t n,
                       int64_t c, int64_t oc);
/* The same on `threads` threads (rows split, runtime/threads.h), plus a
 * residual [N,OC] when not NULL (out = residual + in·w^T + bias: the
 * residual connection without a copy of its own); accumulate adds onto out
 * instead of writing it. out must not overlap residual. */
void rl_linear_rows(float *out, const float *in, const float *w, const float *bias, const float *residual,
                    int64_t n, int64_t c, int64_t oc, int accumulate, int threads);
/* din[N,C] += dout·w (din may be NULL); dw[OC,C] += dout^T·in; dbias[OC] += column sums of dout. */
void rl_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int64_t n, int64_t c, int64_t oc);

/* ---- elementwise (kernels_elementwise.c); out may equal an input ---- */

/* out[N,C] = in[N,C] + bias[C] (broadcast over rows). */
void rl_bias_add_forward(float *out, const float *in, const float *bias, int64_t n, int64_t c);
void rl_bias_add_backward(float *din, float *dbias, const float *dout, int64_t n, int64_t c);
/* out = a + b over n elements. */
void rl_add_forward(float *out, const float *a, const float *b, int64_t n);
void rl_add_backward(float *da, float *db, const float *dout, int64_t n);
/* out = a * b elementwise; backward needs both inputs. */
void rl_mul_forward(float *out, const float *a, const float *b, int64_t n);
void rl_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, int64_t n);
/* out = s * x. */
void rl_scale_forward(float *out, const float *x, float s, int64_t n);
void rl_scale_backward(float *dx, const float *dout, float s, int64_t n);
/* SiLU: out = x * sigmoid(x); backward reads the input x (not the output). */
void rl_silu_forward(float *out, const float *x, int64_t n);
void rl_silu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* ---- normalisation (kernels_norm.c) ----
 * RMSNorm over the last dim: out = x / sqrt(mean(x^2) + eps) * w; w may be NULL
 * (no gain). rstd[N] receives 1/sqrt(mean(x^2)+eps) per row for backward.
 * out must not alias x (backward reads x). */
void rl_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t n, int64_t c,
                        float eps);
void rl_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int64_t n, int64_t c);

/* ---- softmax (kernels_softmax.c) ---- */

/* Softmax over the last dim of [N,C]; out may equal x. Backward reads the output y. */
void rl_softmax_forward(float *out, const float *x, int64_t n, int64_t c);
void rl_softmax_backward(float *dx, const float *dout, const float *y, int64_t n, int64_t c);
/* out[N] = log_softmax(logits[N,V])[target], lse[N] = logsumexp of each row (saved
 * for backward). A target outside [0, V) (e.g. -1 for padding) gives out = 0 and
 * no gradient. Backward: dlogits[n,:] += dout[n] * (onehot(target) - softmax),
 * recomputing the softmax from logits and lse, so nothing larger than the
 * logits is ever materialised. */
void rl_logsoftmax_gather_forward(float *out, float *lse, const float *logits, const int32_t *target,
                                  int64_t n, int64_t v);
void rl_logsoftmax_gather_backward(float *dlogits, const float *dout, const float *logits,
                                   const float *lse, const int32_t *target, int64_t n, int64_t v);

/* ---- embedding (kernels_embedding.c) ----
 * out[N,C] = table[ids[i], :]. The CALLER checks every id is in [0, rows)
 * (rl_ids_check): the kernel does not. Backward scatter-adds dout rows into
 * dtable (repeated ids accumulate, in row order). */
void rl_embedding_forward(float *out, const float *table, const int32_t *ids, int64_t n, int64_t c);
void rl_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int64_t n, int64_t c);

/* ---- losses (kernels_loss.c) ---- */

/* mean((pred - target)^2) over n elements (0 when n == 0), summed in double in
 * a fixed blocking so the value does not depend on the thread count. */
float rl_mse_forward(const float *pred, const float *target, int64_t n);
/* dpred += dloss * 2 (pred - target) / n; dtarget -= the same. */
void rl_mse_backward(float *dpred, float *dtarget, float dloss, const float *pred, const float *target,
                     int64_t n);

#endif
