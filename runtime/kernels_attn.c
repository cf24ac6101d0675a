/* Causal grouped-query attention, forward and backward.
 *
 * Work is split over (sequence, KV head) items, in contiguous runs of about
 * equal cost per thread (so a thread reads the rows it wrote in the
 * row-split GEMMs around it); an item handles the heads of its KV group one
 * after the other in a per-thread scratch block, so each thread owns the
 * rows it writes and results do not depend on the thread count. Only the log-sum-exp per row and head is saved;
 * backward recomputes the probabilities.
 *
 * Every product is one register-tiled kernel (btile below): up to 4 output
 * rows x up to 4 vectors of columns, each step broadcasting one coefficient
 * per row against a few vector loads. The keys (and, in backward, the values)
 * of the item are first transposed into [head_dim, keys] so the scores
 * Q K^T take the same form. Causality is used, not just masked: a block of
 * query rows computes scores only up to its last visible key, P V and dS K
 * stop there, and dK / dV start at the first query that sees the key. This
 * replaced per-head cblas_sgemm calls, which on head_dim 32-128 spent much
 * of their time packing and computed the masked half too. */
#include "kernels_attn.h"

#include <math.h>
#include <string.h>

#include "simd.h"
#include "threads.h"

#define VW RL_VW
#if RL_VW >= 16
#define NV_MAX 4  /* 32 vector registers: up to 16 accumulators */
#define TR_WIDE 8 /* rows of a tile of at most 2 vectors */
#else
#define NV_MAX 2  /* 16 registers: 8 accumulators */
#define TR_WIDE 4
#endif
#define TR_4V 4 /* rows of a tile of 4 vectors */
#define MR 8    /* rows (queries, or keys) of a block in the drivers */

typedef rl_vf vf;

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

size_t rl_attn_scratch_floats(int64_t max_q, int64_t max_keys, int64_t head_dim, int threads) {
    if (threads < 1) threads = 1;
    if (max_q < 1) max_q = 1;
    if (max_keys < 1) max_keys = 1;
    if (head_dim < 1) head_dim = 1;
    /* per thread: scores/probabilities and their gradient [max_q, ld], and
       the item's keys and values transposed [head_dim, ld] */
    const size_t ld = (size_t)round_up(max_keys, VW);
    return (2 * (size_t)max_q + 2 * (size_t)head_dim) * ld * (size_t)threads;
}

static int clamp_threads(int threads) { return threads < 1 ? 1 : threads; }

static inline float dotf(const float *a, const float *b, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- the product kernel ---------------------------------------------------
 * Y[a][0..w) = (acc ? Y[a][..] : 0) + alpha * sum_{t < nt} C[a*sa + t*st] * X[t*ldx + 0..w)
 * for a < nr (<= MR). One coefficient per (a, t) is broadcast against the
 * vectors of row t of X, so C may be read along rows (st = 1) or columns
 * (sa = 1) alike. */

static inline __attribute__((always_inline)) void tile_v(int nr, int nv, int colwise, const float *C, int64_t sa,
                                                         int64_t st, int64_t nt, const float *X, int64_t ldx,
                                                         float *Y, int64_t ldy, float alpha, int acc) {
    vf a[TR_WIDE][NV_MAX];
    for (int r = 0; r < TR_WIDE; r++)
        for (int v = 0; v < NV_MAX; v++) a[r][v] = (vf){0};
    for (int64_t t = 0; t < nt; t++) {
        vf x[NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) x[v] = rl_vload(X + t * ldx + v * VW);
        /* colwise (sa = 1): the tile's coefficients of step t are adjacent */
        const float *ct = colwise ? C + t * st : C + t;
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++) {
            const vf b = rl_vbcast(colwise ? ct[r] : ct[r * sa]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) a[r][v] += b * x[v];
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            float *y = Y + r * ldy + v * VW;
            vf out = a[r][v] * alpha;
            if (acc) out += rl_vload(y);
            rl_vstore(y, out);
        }
}

/* Dispatch to a tile with constant rows, vectors and coefficient layout, so
   the loops above unroll into registers. */
#define TILE_CALL(NR, NV)                                                                                  \
    (colwise ? tile_v(NR, NV, 1, C, sa, st, nt, X, ldx, Y, ldy, alpha, acc)                                \
             : tile_v(NR, NV, 0, C, sa, st, nt, X, ldx, Y, ldy, alpha, acc))
#define TILE_ROWS(NV)                                                                                      \
    switch (nr) {                                                                                          \
    case 1: TILE_CALL(1, NV); break;                                                                       \
    case 2: TILE_CALL(2, NV); break;                                                                       \
    case 3: TILE_CALL(3, NV); break;                                                                       \
    case 4: TILE_CALL(4, NV); break;                                                                       \
    case 5: TILE_CALL((TR_WIDE >= 5 ? 5 : 4), NV); break;                                                  \
    case 6: TILE_CALL((TR_WIDE >= 6 ? 6 : 4), NV); break;                                                  \
    case 7: TILE_CALL((TR_WIDE >= 7 ? 7 : 4), NV); break;                                                  \
    default: TILE_CALL((TR_WIDE >= 8 ? 8 : 4), NV); break;                                                 \
    }

/* One tile of nr <= max rows (TR_WIDE, or TR_4V for 4 vectors) x nv vectors. */
static void tile_at(int nr, int nv, int colwise, const float *C, int64_t sa, int64_t st, int64_t nt, const float *X,
                    int64_t ldx, float *Y, int64_t ldy, float alpha, int acc) {
#if NV_MAX >= 4
    if (nv == 4) {
        switch (nr) {
        case 1: TILE_CALL(1, 4); break;
        case 2: TILE_CALL(2, 4); break;
        case 3: TILE_CALL(3, 4); break;
        default: TILE_CALL(4, 4); break;
        }
        return;
    }
#endif
    if (nv == 2) {
        TILE_ROWS(2)
    } else {
        TILE_ROWS(1)
    }
}

/* Y[a][0..w) = (acc ? Y : 0) + alpha * sum_t C(a, t) X[t][0..w) for a < nr
   (<= MR), C(a, t) = C[a*sa + t*st]: tiles of as many rows as the vector
   count allows, then the columns past the last whole vector. */
static void btile(int nr, const float *C, int64_t sa, int64_t st, int64_t nt, const float *X, int64_t ldx,
                  int64_t w, float *Y, int64_t ldy, float alpha, int acc) {
    const int colwise = sa == 1;
    int64_t c = 0;
    for (; c + VW <= w;) {
        const int nv = w - c >= NV_MAX * VW ? NV_MAX : (w - c >= 2 * VW ? 2 : 1);
        const int rows = nv == 4 ? TR_4V : TR_WIDE;
        for (int r0 = 0; r0 < nr; r0 += rows) {
            const int n = nr - r0 < rows ? nr - r0 : rows;
            tile_at(n, nv, colwise, C + r0 * sa, sa, st, nt, X + c, ldx, Y + r0 * ldy + c, ldy, alpha, acc);
        }
        c += nv * VW;
    }
    for (; c < w; c++) /* columns past the last whole vector (head_dim not a multiple of VW) */
        for (int r = 0; r < nr; r++) {
            float s = 0;
            for (int64_t t = 0; t < nt; t++) s += C[r * sa + t * st] * X[t * ldx + c];
            Y[r * ldy + c] = (acc ? Y[r * ldy + c] : 0.0f) + alpha * s;
        }
}

/* ---- keys of a sequence ------------------------------------------------------
 * At most two segments of rows: the shared prefix (n_pre rows at pre_row,
 * absent when n_pre = 0) and the sequence's own keys (pos0 + n_q rows at
 * k_row). Column j < n_pre of a score row is prefix key j; column n_pre + j
 * is own key j. */
typedef struct key_segs {
    int64_t row[2], n[2], col[2], total;
} key_segs;

static key_segs segs_of(const rl_attn_seq *sq) {
    const int64_t npre = sq->n_pre > 0 ? sq->n_pre : 0;
    return (key_segs){{sq->pre_row, sq->k_row}, {npre, sq->pos0 + sq->n_q}, {0, npre}, npre + sq->pos0 + sq->n_q};
}

/* T[d][col] = src[row(col)][d] for the KV head at column offset g*hd of
   rows of stride ks; columns nk .. ld-1 zeroed (scores there are masked). */
static void transpose_keys(const float *src, int64_t ks, int64_t g, int64_t hd, const key_segs *ksg, float *T,
                           int64_t ld) {
    /* Blocks of 8 keys: each dimension's 8 values are one contiguous store
       (a key-by-key loop stores one float per row of T, a cache line each). */
    for (int s = 0; s < 2; s++)
        for (int64_t j0 = 0; j0 < ksg->n[s]; j0 += 8) {
            const int64_t nb = ksg->n[s] - j0 < 8 ? ksg->n[s] - j0 : 8, col = ksg->col[s] + j0;
            const float *r = src + (ksg->row[s] + j0) * ks + g * hd;
            if (nb == 8)
                for (int64_t d = 0; d < hd; d++) {
                    float *t = T + d * ld + col;
#pragma GCC unroll 8
                    for (int b = 0; b < 8; b++) t[b] = r[b * ks + d];
                }
            else
                for (int64_t d = 0; d < hd; d++)
                    for (int64_t b = 0; b < nb; b++) T[d * ld + col + b] = r[b * ks + d];
        }
    for (int64_t d = 0; d < hd; d++)
        for (int64_t col = ksg->total; col < ld; col++) T[d * ld + col] = 0.0f;
}

/* S[i][0..width) = scale * A_i . T[:, col] for query rows i of A (stride
   as), each block of MR rows up to its last visible key (rounded up to a
   whole vector; T's padding keeps the extra columns finite). */
static void scores(const float *A, int64_t as, int64_t n_q, int64_t seen_by_all, const float *T, int64_t ld,
                   int64_t hd, float scale, float *S) {
    for (int64_t r0 = 0; r0 < n_q; r0 += MR) {
        const int nr = n_q - r0 < MR ? (int)(n_q - r0) : MR;
        int64_t width = round_up(seen_by_all + r0 + nr, VW);
        if (width > ld) width = ld;
        btile(nr, A + r0 * as, as, 1, hd, T, ld, width, S + r0 * ld, ld, scale, 0);
    }
}

/* Y rows (stride ys) = P X over the visible keys: per block of MR query
   rows, keys up to the block's last visible one, segment by segment (X's
   rows for segment s start at row[s] with stride xs, head offset xo). acc 0
   writes Y. */
static void times_keys(const float *P, int64_t ld, int64_t n_q, int64_t seen_by_all, const key_segs *ksg,
                       const float *X, int64_t xs, int64_t xo, int64_t hd, float *Y, int64_t ys, int acc) {
    for (int64_t r0 = 0; r0 < n_q; r0 += MR) {
        const int nr = n_q - r0 < MR ? (int)(n_q - r0) : MR;
        const int64_t vis = seen_by_all + r0 + nr;
        int wrote = acc;
        for (int s = 0; s < 2; s++) {
            int64_t nt = vis - ksg->col[s];
            if (nt > ksg->n[s]) nt = ksg->n[s];
            if (nt <= 0) continue;
            btile(nr, P + r0 * ld + ksg->col[s], ld, 1, nt, X + ksg->row[s] * xs + xo, xs, hd, Y + r0 * ys, ys, 1.0f,
                  wrote);
            wrote = 1;
        }
    }
}

/* dX rows of the keys += G^T A: for each block of MR keys, the query rows
   that see its first key onward (earlier rows have G = 0 there). */
static void keys_times(const float *G, int64_t ld, int64_t n_q, int64_t seen_by_all, const key_segs *ksg,
                       const float *A, int64_t as, int64_t hd, float *dX, int64_t xs, int64_t xo) {
    for (int s = 0; s < 2; s++)
        for (int64_t j0 = 0; j0 < ksg->n[s]; j0 += MR) {
            const int nr = ksg->n[s] - j0 < MR ? (int)(ksg->n[s] - j0) : MR;
            const int64_t col = ksg->col[s] + j0;
            int64_t i0 = col - seen_by_all; /* first query row whose visible keys include col */
            if (i0 < 0) i0 = 0;
            if (i0 >= n_q) continue;
            btile(nr, G + i0 * ld + col, 1, ld, n_q - i0, A + i0 * as, as, hd, dX + (ksg->row[s] + j0) * xs + xo, xs,
                  1.0f, 1);
        }
}

/* Row i of P (and dS) is read past its last visible key, which must then
   hold zeros: by times_keys up to its block's last visible key, and by
   keys_times up to MR - 1 columns past a key the row sees; both stay below
   seen_by_all + i + MR. */
static int64_t zero_end(int64_t i, int64_t seen_by_all, int64_t ld) {
    const int64_t e = seen_by_all + i + MR;
    return e < ld ? e : ld;
}

/* ---- forward ----------------------------------------------------------------- */

typedef struct attn_args {
    const float *q, *k, *v, *o, *lse, *dout;
    float *out, *lse_out, *dq, *dk, *dv, *scratch;
    const rl_attn_seq *seqs;
    int64_t n_seqs;
    rl_attn_dims dims;
    int64_t max_q, ld;
} attn_args;

/* Scratch block of a thread: S, dP [max_q, ld], KT, VT [hd, ld]. */
static float *block_of(const attn_args *a, int slot) {
    const size_t per = (2 * (size_t)a->max_q + 2 * (size_t)a->dims.head_dim) * (size_t)a->ld;
    return a->scratch + (size_t)slot * per;
}

static void forward_item(const attn_args *a, const rl_attn_seq *sq, int64_t g, float *blk) {
    const int64_t H = a->dims.n_heads, Hk = a->dims.n_kv_heads, hd = a->dims.head_dim;
    const int64_t group = H / Hk, qs = H * hd, ks = Hk * hd, n_q = sq->n_q, ld = a->ld;
    if (n_q <= 0) return;
    const float scale = 1.0f / sqrtf((float)hd);
    const key_segs ksg = segs_of(sq);
    const int64_t seen_by_all = ksg.n[0] + sq->pos0; /* prefix + cached keys: seen by every query */
    /* S: scores, then exp(score - max); inv: 1 / (row sum), in the block's
       dP area, which forward does not otherwise use. */
    float *S = blk, *inv = blk + (size_t)a->max_q * (size_t)ld, *KT = blk + 2 * (size_t)a->max_q * (size_t)ld;
    transpose_keys(a->k, ks, g, hd, &ksg, KT, ld);
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
        scores(a->q + sq->q_row * qs + h * hd, qs, n_q, seen_by_all, KT, ld, hd, scale, S);
        for (int64_t i = 0; i < n_q; i++) {
            float *srow = S + i * ld;
            const int64_t vis = seen_by_all + i + 1; /* causal: prefix, then own keys 0..pos0+i */
            /* Whole vectors up to vis (scores() wrote them; ld is a multiple
               of VW), masked past it: a loop ending at vis leaves a scalar
               remainder per row, costly with an exp in it. */
            const int64_t vis_v = round_up(vis, VW);
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j < vis_v; j++) {
                const float x = j < vis ? srow[j] : -INFINITY;
                mx = x > mx ? x : mx;
            }
            float sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < vis_v; j++) {
                const float e = j < vis ? rl_expf(srow[j] - mx) : 0.0f;
                srow[j] = e;
                sum += e;
            }
            inv[i] = 1.0f / sum;
            for (int64_t j = vis_v; j < zero_end(i, seen_by_all, ld); j++) srow[j] = 0.0f;
            if (a->lse_out) a->lse_out[(sq->q_row + i) * H + h] = mx + logf(sum);
        }
        /* O = (exp rows) V, then each row scaled by its 1 / sum: head_dim
           multiplies per row instead of one per visible key. */
        float *oh = a->out + sq->q_row * qs + h * hd;
        times_keys(S, ld, n_q, seen_by_all, &ksg, a->v, ks, g * hd, hd, oh, qs, 0);
        for (int64_t i = 0; i < n_q; i++)
#pragma omp simd
            for (int64_t e = 0; e < hd; e++) oh[i * qs + e] *= inv[i];
    }
}

/* Work of one sequence for one KV head, in score entries: each query sees
   the prefix, the cached keys and the own keys up to itself; the key
   transposition adds one pass over the keys. */
static double seq_cost(const rl_attn_seq *sq) {
    const key_segs ksg = segs_of(sq);
    const double seen = (double)(ksg.n[0] + sq->pos0), nq = (double)(sq->n_q > 0 ? sq->n_q : 0);
    return nq * (seen + 0.5 * (nq + 1)) + (double)ksg.total;
}

static double forward_cost(const void *ctx, int64_t it) {
    const attn_args *a = ctx;
    return seq_cost(&a->seqs[it / a->dims.n_kv_heads]);
}

static void forward_items(void *ctx, int64_t i0, int64_t i1, int slot) {
    const attn_args *a = ctx;
    for (int64_t it = i0; it < i1; it++)
        forward_item(a, &a->seqs[it / a->dims.n_kv_heads], it % a->dims.n_kv_heads, block_of(a, slot));
}

void rl_attn_forward(const float *q, const float *k, const float *v, float *o, float *lse,
                     const rl_attn_seq *seqs, int64_t n_seqs, rl_attn_dims dims, int64_t max_q, int64_t max_keys,
                     float *scratch, int threads) {
    attn_args a = {.q = q, .k = k, .v = v, .out = o, .lse_out = lse, .scratch = scratch, .seqs = seqs,
                   .n_seqs = n_seqs, .dims = dims, .max_q = max_q < 1 ? 1 : max_q,
                   .ld = round_up(max_keys < 1 ? 1 : max_keys, VW)};
    rl_parallel_for_balanced(n_seqs * dims.n_kv_heads, clamp_threads(threads), forward_cost, forward_items, &a);
}

/* ---- backward ------------------------------------------------------------------ */

/* Backward of one sequence for KV head g: zeroes its own dK/dV rows, then
 * ACCUMULATES into its own rows and its prefix's rows; writes dQ. */
static void backward_item(const attn_args *a, const rl_attn_seq *sq, int64_t g, float *blk) {
    const int64_t H = a->dims.n_heads, Hk = a->dims.n_kv_heads, hd = a->dims.head_dim;
    const int64_t group = H / Hk, qs = H * hd, ks = Hk * hd, n_q = sq->n_q, ld = a->ld;
    const float scale = 1.0f / sqrtf((float)hd);
    const key_segs ksg = segs_of(sq);
    const int64_t seen_by_all = ksg.n[0] + sq->pos0;
    for (int64_t j = 0; j < ksg.n[1]; j++) {
        memset(a->dk + (sq->k_row + j) * ks + g * hd, 0, (size_t)hd * sizeof(float));
        memset(a->dv + (sq->k_row + j) * ks + g * hd, 0, (size_t)hd * sizeof(float));
    }
    if (n_q <= 0) return;
    float *P = blk, *dP = blk + (size_t)a->max_q * (size_t)ld;
    float *KT = dP + (size_t)a->max_q * (size_t)ld, *VT = KT + (size_t)hd * (size_t)ld;
    transpose_keys(a->k, ks, g, hd, &ksg, KT, ld);
    transpose_keys(a->v, ks, g, hd, &ksg, VT, ld);
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
        const float *qh = a->q + sq->q_row * qs + h * hd, *doh = a->dout + sq->q_row * qs + h * hd;
        const float *oh = a->o + sq->q_row * qs + h * hd;
        /* P from the saved log-sum-exp; dP = dO V^T */
        scores(qh, qs, n_q, seen_by_all, KT, ld, hd, scale, P);
        scores(doh, qs, n_q, seen_by_all, VT, ld, hd, 1.0f, dP);
        for (int64_t i = 0; i < n_q; i++) {
            float *pr = P + i * ld, *dpr = dP + i * ld;
            const int64_t vis = seen_by_all + i + 1, vis_v = round_up(vis, VW); /* masked as in forward */
            const float l = a->lse[(sq->q_row + i) * H + h];
            const float D = dotf(doh + i * qs, oh + i * qs, hd);
#pragma omp simd
            for (int64_t j = 0; j < vis_v; j++) {
                const int seen = j < vis;
                const float p = seen ? rl_expf(pr[j] - l) : 0.0f;
                pr[j] = p;
                dpr[j] = seen ? p * (dpr[j] - D) * scale : 0.0f; /* dS, with the score scale folded in */
            }
            for (int64_t j = vis_v; j < zero_end(i, seen_by_all, ld); j++) pr[j] = dpr[j] = 0.0f;
        }
        /* dQ = dS K; dK += dS^T Q; dV += P^T dO */
        times_keys(dP, ld, n_q, seen_by_all, &ksg, a->k, ks, g * hd, hd, a->dq + sq->q_row * qs + h * hd, qs, 0);
        keys_times(dP, ld, n_q, seen_by_all, &ksg, qh, qs, hd, a->dk, ks, g * hd);
        keys_times(P, ld, n_q, seen_by_all, &ksg, doh, qs, hd, a->dv, ks, g * hd);
    }
}

/* An owner's item also runs the sequences that follow it with its prefix;
   a follower's own item does nothing. */
static double backward_cost(const void *ctx, int64_t it) {
    const attn_args *a = ctx;
    const int64_t s0 = it / a->dims.n_kv_heads;
    if (a->seqs[s0].n_pre > 0 && s0 > 0) return 0;
    double c = 0;
    int64_t s = s0;
    do {
        c += seq_cost(&a->seqs[s]);
        s++;
    } while (s < a->n_seqs && a->seqs[s].n_pre > 0);
    return c;
}

static void backward_items(void *ctx, int64_t i0, int64_t i1, int slot) {
    const attn_args *a = ctx;
    const int64_t Hk = a->dims.n_kv_heads;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t s0 = it / Hk, g = it % Hk;
        if (a->seqs[s0].n_pre > 0 && s0 > 0) continue; /* run by its owner's item */
        int64_t s = s0;
        do {
            backward_item(a, &a->seqs[s], g, block_of(a, slot));
            s++;
        } while (s < a->n_seqs && a->seqs[s].n_pre > 0);
    }
}

void rl_attn_backward(const float *q, const float *k, const float *v, const float *o, const float *lse,
                      const float *dout, float *dq, float *dk, float *dv, const rl_attn_seq *seqs,
                      int64_t n_seqs, rl_attn_dims dims, int64_t max_q, int64_t max_keys, float *scratch,
                      int threads) {
    /* One item per (sequence without a prefix, KV head): it also runs the
       sequences that follow it with a prefix (which write into its key
       rows), so no two threads write the same rows and the prefix sums its
       contributions in a fixed order. */
    attn_args a = {.q = q, .k = k, .v = v, .o = o, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv,
                   .scratch = scratch, .seqs = seqs, .n_seqs = n_seqs, .dims = dims,
                   .max_q = max_q < 1 ? 1 : max_q, .ld = round_up(max_keys < 1 ? 1 : max_keys, VW)};
    rl_parallel_for_balanced(n_seqs * dims.n_kv_heads, clamp_threads(threads), backward_cost, backward_items, &a);
}
