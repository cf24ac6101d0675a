/* Causal grouped-query attention and rotary embeddings.
 *
 * Attention runs per (sequence, head) as small GEMMs (scores, then P V) in
 * a per-thread scratch block; only the log-sum-exp per row and head is saved
 * and backward recomputes the probabilities. OpenBLAS's OpenMP build runs
 * single-threaded inside our parallel loop. Work is split over
 * (sequence, head) in forward and (sequence, kv head) in backward, so each
 * thread owns the rows it writes: results do not depend on the thread count. */
#include "kernels_attn.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "threads.h"

static inline float dotf(const float *a, const float *b, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

size_t rl_attn_scratch_floats(int64_t max_q, int64_t max_keys, int threads) {
    if (threads < 1) threads = 1;
    if (max_q < 1) max_q = 1;
    if (max_keys < 1) max_keys = 1;
    /* scores/probabilities and their gradient: two [max_q, max_keys] blocks */
    return 2 * (size_t)max_q * (size_t)max_keys * (size_t)threads;
}

static int clamp_threads(int threads) { return threads < 1 ? 1 : threads; }

/* S[i, j] = scale * q_i . k_j for all n_q x nk pairs into S (row stride ld)
 * (one GEMM; the masked upper triangle is computed and ignored: cheaper than
 * many dot products). */
static void scores(const float *q, int64_t qs, const float *k, int64_t ks, int64_t n_q, int64_t nk, int64_t hd,
                   float scale, float *S, int64_t ld) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_q, (int)nk, (int)hd, scale, q, (int)qs, k, (int)ks,
                0.0f, S, (int)ld);
}

/* The keys of one sequence as (at most) two segments of rows: the shared
 * prefix (n_pre rows at pre_row, absent when n_pre = 0) and its own keys
 * (pos0 + n_q rows at k_row). Column j < n_pre of a score block is prefix
 * key j; column n_pre + j is own key j. */
typedef struct key_segs {
    int64_t row[2], n[2], col[2], total;
} key_segs;

static key_segs segs_of(const rl_attn_seq *sq) {
    const int64_t npre = sq->n_pre > 0 ? sq->n_pre : 0;
    return (key_segs){{sq->pre_row, sq->k_row}, {npre, sq->pos0 + sq->n_q}, {0, npre}, npre + sq->pos0 + sq->n_q};
}

typedef struct fwd_args {
    const float *q, *k, *v;
    float *o, *lse, *scratch;
    const rl_attn_seq *seqs;
    rl_attn_dims dims;
    size_t per_thread;
} fwd_args;

/* Items [i0, i1) of (sequence, head), in scratch block `slot`. */
static void forward_items(void *ctx, int64_t i0, int64_t i1, int slot) {
    const fwd_args *a = ctx;
    const float *q = a->q, *k = a->k, *v = a->v;
    float *o = a->o, *lse = a->lse;
    const int64_t H = a->dims.n_heads, Hk = a->dims.n_kv_heads, hd = a->dims.head_dim;
    const int64_t group = H / Hk, qs = H * hd, ks = Hk * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t it = i0; it < i1; it++) {
        const rl_attn_seq *sq = &a->seqs[it / H];
        const int64_t h = it % H, g = h / group, n_q = sq->n_q;
        if (n_q <= 0) continue;
        const key_segs ksg = segs_of(sq);
        const int64_t nk = ksg.total, seen_by_all = ksg.n[0] + sq->pos0; /* prefix + cached keys: seen by every query */
        float *S = a->scratch + (size_t)slot * a->per_thread;
        const float *qh = q + sq->q_row * qs + h * hd;
        for (int sg = 0; sg < 2; sg++)
            if (ksg.n[sg] > 0)
                scores(qh, qs, k + ksg.row[sg] * ks + g * hd, ks, n_q, ksg.n[sg], hd, scale, S + ksg.col[sg], nk);
        for (int64_t i = 0; i < n_q; i++) {
            float *srow = S + i * nk;
            const int64_t vis = seen_by_all + i + 1; /* causal: prefix, then own keys 0..pos0+i */
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j < vis; j++) mx = srow[j] > mx ? srow[j] : mx;
            float sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < vis; j++) {
                srow[j] = rl_expf(srow[j] - mx);
                sum += srow[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < vis; j++) srow[j] *= inv;
            for (int64_t j = vis; j < nk; j++) srow[j] = 0.0f;
            if (lse) lse[(sq->q_row + i) * H + h] = mx + logf(sum);
        }
        float beta = 0.0f;
        for (int sg = 0; sg < 2; sg++) {
            if (ksg.n[sg] <= 0) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_q, (int)hd, (int)ksg.n[sg], 1.0f,
                        S + ksg.col[sg], (int)nk, v + ksg.row[sg] * ks + g * hd, (int)ks, beta,
                        o + sq->q_row * qs + h * hd, (int)qs);
            beta = 1.0f;
        }
    }
}

void rl_attn_forward(const float *q, const float *k, const float *v, float *o, float *lse,
                     const rl_attn_seq *seqs, int64_t n_seqs, rl_attn_dims dims, int64_t max_q, int64_t max_keys,
                     float *scratch, int threads) {
    fwd_args a = {q, k, v, o, lse, scratch, seqs, dims, 2 * (size_t)max_q * (size_t)max_keys};
    rl_parallel_for_dynamic(n_seqs * dims.n_heads, clamp_threads(threads), forward_items, &a);
}

/* Backward of one sequence for KV head g: zeroes its own dK/dV rows, then
 * ACCUMULATES into its own rows and its prefix's rows. */
static void backward_seq(const float *q, const float *k, const float *v, const float *o, const float *lse,
                         const float *dout, float *dq, float *dk, float *dv, const rl_attn_seq *sq, int64_t g,
                         int64_t H, int64_t group, int64_t hd, float scale, float *P, float *dP) {
    const int64_t qs = H * hd, ks = (H / group) * hd, n_q = sq->n_q;
    const key_segs ksg = segs_of(sq);
    const int64_t nk = ksg.total, seen_by_all = ksg.n[0] + sq->pos0;
    float *dkg = dk + sq->k_row * ks + g * hd, *dvg = dv + sq->k_row * ks + g * hd;
    for (int64_t j = 0; j < ksg.n[1]; j++) {
        memset(dkg + j * ks, 0, (size_t)hd * sizeof(float));
        memset(dvg + j * ks, 0, (size_t)hd * sizeof(float));
    }
    if (n_q <= 0) return;
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
        const float *qh = q + sq->q_row * qs + h * hd, *doh = dout + sq->q_row * qs + h * hd;
        const float *oh = o + sq->q_row * qs + h * hd;
        /* P from the saved log-sum-exp; dP = dO V^T */
        for (int sg = 0; sg < 2; sg++) {
            if (ksg.n[sg] <= 0) continue;
            scores(qh, qs, k + ksg.row[sg] * ks + g * hd, ks, n_q, ksg.n[sg], hd, scale, P + ksg.col[sg], nk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_q, (int)ksg.n[sg], (int)hd, 1.0f, doh,
                        (int)qs, v + ksg.row[sg] * ks + g * hd, (int)ks, 0.0f, dP + ksg.col[sg], (int)nk);
        }
        for (int64_t i = 0; i < n_q; i++) {
            float *pr = P + i * nk, *dpr = dP + i * nk;
            const int64_t vis = seen_by_all + i + 1;
            const float l = lse[(sq->q_row + i) * H + h];
            const float D = dotf(doh + i * qs, oh + i * qs, hd);
#pragma omp simd
            for (int64_t j = 0; j < vis; j++) {
                float p = rl_expf(pr[j] - l);
                pr[j] = p;
                dpr[j] = p * (dpr[j] - D) * scale; /* dS, with the score scale folded in */
            }
            for (int64_t j = vis; j < nk; j++) pr[j] = dpr[j] = 0.0f;
        }
        /* Per key segment: dQ (+)= dS K; dK += dS^T Q; dV += P^T dO */
        float beta = 0.0f;
        for (int sg = 0; sg < 2; sg++) {
            if (ksg.n[sg] <= 0) continue;
            const int64_t nseg = ksg.n[sg], c0 = ksg.col[sg], kr = ksg.row[sg] * ks + g * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n_q, (int)hd, (int)nseg, 1.0f, dP + c0,
                        (int)nk, k + kr, (int)ks, beta, dq + sq->q_row * qs + h * hd, (int)qs);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nseg, (int)hd, (int)n_q, 1.0f, dP + c0,
                        (int)nk, qh, (int)qs, 1.0f, dk + kr, (int)ks);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nseg, (int)hd, (int)n_q, 1.0f, P + c0, (int)nk,
                        doh, (int)qs, 1.0f, dv + kr, (int)ks);
            beta = 1.0f;
        }
    }
}

void rl_attn_backward(const float *q, const float *k, const float *v, const float *o, const float *lse,
                      const float *dout, float *dq, float *dk, float *dv, const rl_attn_seq *seqs,
                      int64_t n_seqs, rl_attn_dims dims, int64_t max_q, int64_t max_keys, float *scratch,
                      int threads) {
    const int64_t H = dims.n_heads, Hk = dims.n_kv_heads, hd = dims.head_dim;
    const int64_t group = H / Hk;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t items = n_seqs * Hk;
    const size_t per_thread = 2 * (size_t)max_q * (size_t)max_keys;
    threads = clamp_threads(threads);
    /* One item per (sequence without a prefix, KV head): it also runs the
       sequences that follow it with a prefix (which write into its key
       rows), so no two threads write the same rows and the prefix sums its
       contributions in a fixed order. */
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t s0 = it / Hk, g = it % Hk;
        if (seqs[s0].n_pre > 0 && s0 > 0) continue; /* run by its owner's item */
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *dP = P + (size_t)max_q * (size_t)max_keys;
        int64_t s = s0;
        do {
            backward_seq(q, k, v, o, lse, dout, dq, dk, dv, &seqs[s], g, H, group, hd, scale, P, dP);
            s++;
        } while (s < n_seqs && seqs[s].n_pre > 0);
    }
}

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
