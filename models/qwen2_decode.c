/* Qwen2 forward with a KV cache (prefill and incremental decoding).
 *
 * Each call processes, per sequence, n_q new tokens at positions
 * pos0 .. pos0+n_q-1: their keys/values are written into the cache at rows
 * k_row+pos0+i (every layer has its own [cache_rows, kv_dim] block) and the
 * queries attend to cache rows k_row .. k_row+pos0+i. Only the last new row
 * of each sequence goes through the final norm and the LM head. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "alloc.h"
#include "kernels.h"
#include "qwen2.h"
#include "qwen2_decode.h"
#include "qwen2_panels.h"
#include "simd.h"
#include "threads.h"

typedef struct dec_ws {
    float *x, *n, *q, *k, *v, *o, *g, *u, *attn, *last;
    int32_t *pos;
} dec_ws;

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

static int layout(const rl_qwen2_config *c, int64_t R, int64_t S, int64_t max_q, int64_t max_keys, int threads,
                  float *base, dec_ws *w, size_t *total) {
    const size_t d = (size_t)c->hidden, qd = (size_t)(c->n_heads * c->head_dim);
    const size_t kd = (size_t)(c->n_kv_heads * c->head_dim), Fi = (size_t)c->inter;
    const size_t r = (size_t)R;
    if (R < 1 || S < 1 || R > ((int64_t)1 << 32) / (int64_t)(d + qd + Fi + 8)) return -1;
    size_t sizes[11] = {r * d, r * d, r * qd, r * kd, r * kd, r * qd, r * Fi, r * Fi,
                        rl_attn_scratch_floats(max_q, max_keys, c->head_dim, threads), (size_t)S * d, r};
    float **ptrs[10] = {&w->x, &w->n, &w->q, &w->k, &w->v, &w->o, &w->g, &w->u, &w->attn, &w->last};
    size_t off = 0;
    for (int i = 0; i < 11; i++) {
        if (base) {
            if (i < 10)
                *ptrs[i] = base + off;
            else
                w->pos = (int32_t *)(base + off);
        }
        off += up16(sizes[i]);
    }
    *total = off;
    return 0;
}

size_t rl_qwen2_decode_floats(const rl_qwen2_config *c, int64_t max_rows, int64_t max_seqs, int64_t max_q,
                              int64_t max_keys, int threads) {
    dec_ws w;
    size_t total = 0;
    if (layout(c, max_rows, max_seqs, max_q, max_keys, threads, NULL, &w, &total)) return 0;
    return total;
}

/* Attention of one new token per sequence (a decoding step). The generic
 * kernel first transposes an item's keys, which for a single query costs as
 * much as the products themselves; here each query row dots the cached keys
 * directly, and the heads of a KV group share one pass over that group's
 * keys and values. */
typedef struct step_args {
    const float *q, *kc, *vc;
    float *o, *scratch;
    const rl_attn_seq *seqs;
    rl_attn_dims dims;
    int64_t max_keys;
} step_args;

/* Items [i0, i1) of (sequence, kv head). */
static void attn_step_items(void *ctx, int64_t i0, int64_t i1, int slot) {
    const step_args *a = ctx;
    const int64_t H = a->dims.n_heads, Hk = a->dims.n_kv_heads, hd = a->dims.head_dim;
    const int64_t group = H / Hk, qs = H * hd, ks = Hk * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *P = a->scratch + (size_t)slot * (size_t)(2 * a->max_keys);
    for (int64_t it = i0; it < i1; it++) {
        const rl_attn_seq *sq = &a->seqs[it / Hk];
        const int64_t g = it % Hk, nk = sq->pos0 + 1;
        const float *kg = a->kc + sq->k_row * ks + g * hd, *vg = a->vc + sq->k_row * ks + g * hd;
        for (int64_t h = g * group; h < (g + 1) * group; h++) {
            const float *qh = a->q + sq->q_row * qs + h * hd;
            float *oh = a->o + sq->q_row * qs + h * hd;
            float mx = -INFINITY;
            const int64_t hv = hd & ~(int64_t)(RL_VW - 1);
            for (int64_t j = 0; j < nk; j++) {
                const float *kj = kg + j * ks;
                /* head_dim is short (32-128): whole vectors, one horizontal sum */
                rl_vf av = {0};
                for (int64_t i = 0; i < hv; i += RL_VW) av += rl_vload(qh + i) * rl_vload(kj + i);
                float dot = rl_vsum(av);
                for (int64_t i = hv; i < hd; i++) dot += qh[i] * kj[i];
                P[j] = dot * scale;
                mx = P[j] > mx ? P[j] : mx;
            }
            float sum = 0;
            for (int64_t j = 0; j < nk; j++) {
                P[j] = rl_expf(P[j] - mx);
                sum += P[j];
            }
            const float inv = 1.0f / sum;
            memset(oh, 0, (size_t)hd * sizeof(float));
            for (int64_t j = 0; j < nk; j++) {
                const float pj = P[j] * inv, *vj = vg + j * ks;
#pragma omp simd
                for (int64_t i = 0; i < hd; i++) oh[i] += pj * vj[i];
            }
        }
    }
}

static void attn_step(const float *q, const float *kc, const float *vc, float *o, const rl_attn_seq *seqs,
                      int64_t n_seqs, rl_attn_dims dims, int64_t max_keys, float *scratch, int threads) {
    step_args a = {q, kc, vc, o, scratch, seqs, dims, max_keys};
    const int64_t items = n_seqs * dims.n_kv_heads, group = dims.n_heads / dims.n_kv_heads;
    const int par = threads > 1 && items * max_keys * dims.head_dim * group >= ((int64_t)1 << 17) * threads;
    rl_parallel_for(items, par ? threads : 1, attn_step_items, &a);
}

/* y[M, out] = beta*y + x W^T (+ b) for matrix `which` of layer l (or the LM
 * head when l < 0). A few rows (decoding) stream the panels of the decode
 * weights; many rows of f32 weights (a prefill) are one GEMM, where packing
 * the weights pays off. */
static void linear(const rl_qwen2 *m, int bf16, const float *x, int64_t l, int which, size_t w_off, const float *b,
                   float *y, int64_t M, int64_t out, int64_t in, float beta, int threads) {
    if (M <= 16 || bf16) {
        const void *pn = l < 0 ? rl_qwen2_panel_head(m) : rl_qwen2_panel_mat(m, l, which);
        rl_panel_linear(x, pn, bf16, b, y, M, out, in, beta, threads);
        return;
    }
    rl_linear_rows(y, x, m->params->data + w_off, b, NULL, M, in, out, beta != 0.0f, threads);
}

int rl_qwen2_decode(const rl_qwen2 *m, float *kcache, float *vcache, int64_t cache_rows, const int32_t *tokens,
                    const rl_attn_seq *seqs, int64_t n_seqs, int64_t max_rows, int64_t max_q, int64_t max_keys,
                    const float *rope_cos, const float *rope_sin, int bf16, int threads, float *ws,
                    float *logits, rl_error *err) {
    return rl_qwen2_decode_img(m, kcache, vcache, cache_rows, tokens, seqs, n_seqs, max_rows, max_q, max_keys,
                               rope_cos, rope_sin, bf16, threads, ws, -1, NULL, 0, NULL, logits, err);
}

int rl_qwen2_decode_img(const rl_qwen2 *m, float *kcache, float *vcache, int64_t cache_rows, const int32_t *tokens,
                        const rl_attn_seq *seqs, int64_t n_seqs, int64_t max_rows, int64_t max_q, int64_t max_keys,
                        const float *rope_cos, const float *rope_sin, int bf16, int threads, float *ws,
                        int32_t image_pad_id, const float *image_embeds, int64_t n_image_rows, int64_t *image_next,
                        float *logits, rl_error *err) {
    const rl_qwen2_config *c = &m->cfg;
    const int64_t d = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const int64_t Fi = c->inter, V = c->vocab;
    const float *P = m->params->data, eps = (float)c->rms_eps;
    if (!P) return rl_fail(err, "qwen2: parameters are not allocated");
    if (!m->panels || m->panels->bf16 != (bf16 != 0))
        return rl_fail(err, "qwen2 decode: no %s decode weights (rl_qwen2_decode_weights)", bf16 ? "bf16" : "f32");
    dec_ws w;
    size_t total;
    if (layout(c, max_rows, n_seqs, max_q, max_keys, threads, ws, &w, &total))
        return rl_fail(err, "qwen2 decode: bad sizes");
    int nt = omp_get_max_threads();
    if (nt > threads) nt = threads;
    if (nt < 1) nt = 1;
    /* Rows of the call, their positions, and the checks a bad caller could trip. */
    int64_t R = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const rl_attn_seq *sq = &seqs[s];
        if (sq->q_row != R || sq->n_q < 1 || sq->n_q > max_q || sq->pos0 < 0 || sq->pos0 + sq->n_q > max_keys ||
            sq->pos0 + sq->n_q > c->max_pos || sq->k_row < 0 || sq->k_row + sq->pos0 + sq->n_q > cache_rows)
            return rl_fail(err, "qwen2 decode: sequence %lld (%lld new tokens at position %lld) exceeds the context",
                           (long long)s, (long long)sq->n_q, (long long)sq->pos0);
        for (int64_t i = 0; i < sq->n_q; i++) {
            int32_t id = tokens[R + i];
            if (id < 0 || id >= V)
                return rl_fail(err, "qwen2 decode: token id %d outside the vocabulary [0, %lld)", id, (long long)V);
            w.pos[R + i] = (int32_t)(sq->pos0 + i);
        }
        R += sq->n_q;
        if (R > max_rows) return rl_fail(err, "qwen2 decode: more than %lld rows", (long long)max_rows);
    }
    int64_t no_image = 0;
    if (rl_qwen2_embed_rows(m, tokens, R, image_pad_id, image_embeds, n_image_rows, image_next ? image_next : &no_image,
                            bf16, w.x, err))
        return -1;
    const rl_attn_dims dims = {c->n_heads, c->n_kv_heads, c->head_dim};
    for (int64_t l = 0; l < c->n_layers; l++) {
        const rl_qwen2_layer_off *o = &m->layer[l];
        float *kc = kcache + l * cache_rows * kd, *vc = vcache + l * cache_rows * kd;
        rl_qwen2_rmsnorm(w.x, P + o->ln1, w.n, NULL, R, d, eps);
        linear(m, bf16, w.n, l, RL_PM_Q, o->wq, P + o->bq, w.q, R, qd, d, 0.0f, nt);
        linear(m, bf16, w.n, l, RL_PM_K, o->wk, P + o->bk, w.k, R, kd, d, 0.0f, nt);
        linear(m, bf16, w.n, l, RL_PM_V, o->wv, P + o->bv, w.v, R, kd, d, 0.0f, nt);
        rl_rope_apply(w.q, R, c->n_heads, c->head_dim, w.pos, rope_cos, rope_sin, 0, nt);
        rl_rope_apply(w.k, R, c->n_kv_heads, c->head_dim, w.pos, rope_cos, rope_sin, 0, nt);
        for (int64_t s = 0; s < n_seqs; s++) {
            const rl_attn_seq *sq = &seqs[s];
            size_t bytes = (size_t)(sq->n_q * kd) * sizeof(float);
            memcpy(kc + (sq->k_row + sq->pos0) * kd, w.k + sq->q_row * kd, bytes);
            memcpy(vc + (sq->k_row + sq->pos0) * kd, w.v + sq->q_row * kd, bytes);
        }
        if (R == n_seqs) /* one new token per sequence: a decoding step */
            attn_step(w.q, kc, vc, w.o, seqs, n_seqs, dims, max_keys, w.attn, nt);
        else
            rl_attn_forward(w.q, kc, vc, w.o, NULL, seqs, n_seqs, dims, max_q, max_keys, w.attn, nt);
        linear(m, bf16, w.o, l, RL_PM_O, o->wo, NULL, w.x, R, d, qd, 1.0f, nt);
        rl_qwen2_rmsnorm(w.x, P + o->ln2, w.n, NULL, R, d, eps);
        linear(m, bf16, w.n, l, RL_PM_G, o->wg, NULL, w.g, R, Fi, d, 0.0f, nt);
        linear(m, bf16, w.n, l, RL_PM_U, o->wu, NULL, w.u, R, Fi, d, 0.0f, nt);
        rl_swiglu_forward(w.g, w.u, w.g, R * Fi, nt);
        linear(m, bf16, w.g, l, RL_PM_D, o->wd, NULL, w.x, R, d, Fi, 1.0f, nt);
    }
    for (int64_t s = 0; s < n_seqs; s++)
        memcpy(w.last + s * d, w.x + (seqs[s].q_row + seqs[s].n_q - 1) * d, (size_t)d * sizeof(float));
    rl_qwen2_rmsnorm(w.last, P + m->off_norm, w.n, NULL, n_seqs, d, eps);
    linear(m, bf16, w.n, -1, 0, m->off_head, NULL, logits, n_seqs, V, d, 0.0f, nt);
    return 0;
}
