/* Transformer kernels of the Qwen2 policy, forward and backward:
 * causal grouped-query attention over packed sequences, rotary position
 * embedding, SwiGLU, and the fused chunked LM head (logits -> log-softmax ->
 * gather of the target -> entropy) that never materialises [rows, vocab]
 * beyond one chunk. No kernel allocates: callers pass scratch. */
#ifndef RL_KERNELS_ATTN_H
#define RL_KERNELS_ATTN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for float, branch-free and without float->int conversions so loops
 * using it vectorise under -O2 (libm's expf is a call per element):
 * x = n ln2 + r with n rounded by the 1.5*2^23 trick, a Cephes degree-6
 * polynomial for e^r, 2^n built in the exponent bits. Relative error < 1e-7;
 * inputs are clamped to [-87.3, 88] (no infinities or denormals). */
static inline float rl_expf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    uint32_t ti; /* unsigned: a NaN input must not make the exponent arithmetic overflow (UB) */
    memcpy(&ti, &t, sizeof ti);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = (ti - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* One sequence of attention work. Query i (0 <= i < n_q) sits at row q_row+i
 * of q/o and at absolute position pos0+i; it attends to the keys at rows
 * k_row .. k_row+pos0+i of k/v (causal). Teacher forcing: q_row = k_row,
 * pos0 = 0. Decoding with a cache: k_row = the sequence's cache start,
 * pos0 = tokens already cached.
 *
 * Shared prefix (optional; zero = none): with n_pre > 0 every query first
 * attends to the n_pre keys at rows pre_row .. pre_row+n_pre-1 (a prompt
 * computed once for several responses), then to its own keys as above, so
 * it sees n_pre + pos0 + i + 1 keys (max_keys must cover that). Positions
 * (RoPE) are the caller's: a response row after a prompt of p tokens sits at
 * position p + i. Backward contract: the rows of a prefix belong to an
 * OWNER sequence without a prefix (usually the prompt itself) whose keys
 * cover them, and the sequences using that prefix follow it directly in
 * seqs[]; the owner's work item then accumulates the prefix's dK/dV from
 * its own queries and from every follower, in order (exact, deterministic
 * and race-free). Forward has no ordering requirement. */
typedef struct rl_attn_seq {
    int64_t q_row, n_q, k_row, pos0;
    int64_t pre_row, n_pre;
} rl_attn_seq;

typedef struct rl_attn_dims {
    int64_t n_heads, n_kv_heads, head_dim;
} rl_attn_dims;

/* Scratch floats the attention kernels need per call: per thread, two
 * [max_q, max_keys] blocks (scores, their gradient) and two [head_dim,
 * max_keys] blocks (keys and values transposed), max_keys rounded up to a
 * vector (max_q: most queries of one sequence in a call; max_keys: most keys
 * one sequence attends to). */
size_t rl_attn_scratch_floats(int64_t max_q, int64_t max_keys, int64_t head_dim, int threads);

/* q, o: [rows, n_heads*head_dim]; k, v: [rows, n_kv_heads*head_dim];
 * lse: [rows, n_heads] (log-sum-exp of the scaled scores, saved for backward;
 * may be NULL). Scale 1/sqrt(head_dim). Head h reads kv head h / (n_heads/n_kv_heads). */
void rl_attn_forward(const float *q, const float *k, const float *v, float *o, float *lse,
                     const rl_attn_seq *seqs, int64_t n_seqs, rl_attn_dims dims, int64_t max_q,
                     int64_t max_keys, float *scratch, int threads);
/* Backward: dq, dk, dv are WRITTEN for every row the sequences cover (dk/dv
 * rows are zeroed first; a shared prefix's rows receive the sum over its
 * owner and all followers). Recomputes probabilities from q, k and lse. */
void rl_attn_backward(const float *q, const float *k, const float *v, const float *o, const float *lse,
                      const float *dout, float *dq, float *dk, float *dv, const rl_attn_seq *seqs,
                      int64_t n_seqs, rl_attn_dims dims, int64_t max_q, int64_t max_keys, float *scratch,
                      int threads);

/* RoPE tables (HF rotate_half convention): cos/sin [n_pos, head_dim/2] with
 * angle pos * theta^(-2i/head_dim). */
void rl_rope_table(float *cos_t, float *sin_t, int64_t n_pos, int64_t head_dim, double theta);
/* Rotates x [rows, n_heads*head_dim] in place; row r at position pos[r].
 * inverse = 1 rotates back (the backward of the forward rotation). */
void rl_rope_apply(float *x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t *pos,
                   const float *cos_t, const float *sin_t, int inverse, int threads);

/* SwiGLU: m = silu(g) * u over n elements; backward writes dg, du and, when
 * m is not NULL, the forward's m as well (a model that recomputes m for its
 * weight gradient gets it from the same sigmoid). dm may be the same array
 * as dg (read before written, element by element). */
void rl_swiglu_forward(const float *g, const float *u, float *m, int64_t n, int threads);
void rl_swiglu_backward(const float *g, const float *u, const float *dm, float *dg, float *du, float *m, int64_t n,
                        int threads);

/* Fused LM head. x [rows, d], w [vocab, d]; target[r] in [0, vocab) or -1
 * (no target: logp 0, entropy still computed unless target == -2, which
 * skips the row entirely). Writes logp, ent, lse [rows]. Logits are built
 * chunk rows at a time in scratch [chunk, vocab]. */
void rl_lmhead_forward(const float *x, const float *w, int64_t rows, int64_t d, int64_t vocab,
                       const int32_t *target, int64_t chunk, float *scratch, float *logp, float *ent,
                       float *lse, int threads);
/* Backward from glogp / gent [rows] (either NULL = no gradient): dx [rows, d]
 * is WRITTEN, dw [vocab, d] ACCUMULATED. Recomputes logits per chunk, except
 * with logits_kept when rows <= chunk: scratch then still holds the logits
 * the forward left there (same x, w, rows). scratch is overwritten either
 * way, so the kept logits serve one backward. */
void rl_lmhead_backward(const float *x, const float *w, int64_t rows, int64_t d, int64_t vocab,
                        const int32_t *target, int64_t chunk, float *scratch, int logits_kept,
                        const float *lse, const float *ent, const float *glogp, const float *gent, float *dx,
                        float *dw, int threads);

#endif
