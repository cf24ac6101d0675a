/* rl_sgemm: cache-blocked GEMM with a register-tiled micro-kernel.
 *
 * Loop nest per thread (BLIS order): jc over N in NC columns, pc over K in KC
 * steps, ic over M in MC rows, jr over NR-column panels, ir over MR-row
 * panels -> micro-kernel computing an MR x NR tile of C.
 *
 * What is packed: only what is not already unit-stride for the kernel. The
 * kernel wants, per k, NR consecutive B values and MR A values it can
 * address cheaply.
 * - B stored [N,K] (trans_b, the forward x W^T) is packed into NR-column
 *   micro-panels once per K block. B stored [K,N] is read in place: each k
 *   row already holds NR consecutive values.
 * - A stored [K,M] (trans_a, the weight gradient dy^T x) is packed per MC x KC
 *   block: a cheap contiguous copy, whereas reading it in place walks a
 *   power-of-two stride that thrashes L1 sets. A stored [M,K] is read in
 *   place: its MR rows are unit-stride in k, and packing it (a strided
 *   scatter) measured 15-30% of the time on the model's shapes, whose N is
 *   small (64-768), so each A element feeds only 2N flops.
 * Short edge panels are packed zero-padded and their tiles written through a
 * scratch tile, so the kernel always runs a full MR x NR tile.
 *
 * Determinism: every C element is the sum over the K blocks, in order, of one
 * FMA chain over that block's k in order; K blocks depend on K alone, and a
 * thread split only changes which thread computes a tile, never the order. */
#include "gemm.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "alloc.h"
#include "threads.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define RL_GEMM_SIMD 1
typedef __m512 vf;
enum { VL = 16, MR = 12, KC_MAX = 256, MC_MAX = 144, NC_MAX = 3072 };
static inline vf vzero(void) { return _mm512_setzero_ps(); }
static inline vf vload(const float *p) { return _mm512_load_ps(p); }
static inline vf vloadu(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstoreu(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vbcast(const float *p) { return _mm512_set1_ps(*p); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RL_GEMM_SIMD 1
typedef __m256 vf;
enum { VL = 8, MR = 6, KC_MAX = 256, MC_MAX = 72, NC_MAX = 2048 };
static inline vf vzero(void) { return _mm256_setzero_ps(); }
static inline vf vload(const float *p) { return _mm256_load_ps(p); }
static inline vf vloadu(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstoreu(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vbcast(const float *p) { return _mm256_broadcast_ss(p); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
#endif

/* cblas_sgemm on a sub-problem with the same conventions; used as the
 * portable path and when a packing buffer cannot be grown. BLAS takes int
 * sizes: beyond those, a plain loop (slow, but never wrong). */
static void blas_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, int beta1, float *C, int64_t ldc) {
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t q = 0; q < N; q++) {
                float s = 0.0f;
                for (int64_t k = 0; k < K; k++)
                    s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[q * ldb + k] : B[k * ldb + q]);
                C[i * ldc + q] = beta1 ? C[i * ldc + q] + s : s;
            }
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta1 ? 1.0f : 0.0f, C, (int)ldc);
}

#ifdef RL_GEMM_SIMD
enum { NR = 2 * VL };

/* C tile (MR x NR, row stride ldc) = [C +] op(A) panel * B panel over kc steps.
 * op(A)[i][k] is a[i*rs + k*ks]: rs = 1, ks = MR for a packed panel; rs = lda,
 * ks = 1 for row-major A read in place. b: kc rows of NR floats, 64-byte
 * aligned. Two B vectors and MR broadcasts of A feed 2*MR independent
 * accumulators, enough to hide FMA latency on both FMA pipes. Rows are
 * addressed from MR/3 base pointers plus 0, rs, 2*rs (x86 base +
 * index*{1,2}), so in-place A costs no extra registers per row. The FMA
 * order per element is the same in every variant: results do not depend on
 * which one computed a tile. */
static inline __attribute__((always_inline)) void kernel_body(int64_t kc, const float *a, int64_t rs, int64_t ks,
                                                              const float *restrict b, int64_t bs,
                                                              float *restrict c, int64_t ldc, int accumulate) {
    vf acc0[MR], acc1[MR];
    const float *base[MR / 3];
#pragma GCC unroll 16
    for (int g = 0; g < MR / 3; g++) base[g] = a + 3 * g * rs;
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = vzero();
    for (int64_t k = 0; k < kc; k++) {
        const vf b0 = vloadu(b), b1 = vloadu(b + VL);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            const vf ai = vbcast(base[i / 3] + (i % 3) * rs);
            acc0[i] = vfma(ai, b0, acc0[i]);
            acc1[i] = vfma(ai, b1, acc1[i]);
        }
#pragma GCC unroll 16
        for (int g = 0; g < MR / 3; g++) base[g] += ks;
        b += bs;
    }
    if (accumulate) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            float *ci = c + i * ldc;
            vstoreu(ci, vadd(vloadu(ci), acc0[i]));
            vstoreu(ci + VL, vadd(vloadu(ci + VL), acc1[i]));
        }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vstoreu(c + i * ldc, acc0[i]);
            vstoreu(c + i * ldc + VL, acc1[i]);
        }
    }
}

static void kernel_packed(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int accumulate) {
    kernel_body(kc, a, 1, MR, b, NR, c, ldc, accumulate);
}

static void kernel_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c, int64_t ldc,
                        int accumulate) {
    kernel_body(kc, a, lda, 1, b, NR, c, ldc, accumulate);
}

static void kernel_packed_brows(int64_t kc, const float *a, const float *b, int64_t ldb, float *c, int64_t ldc,
                                int accumulate) {
    kernel_body(kc, a, 1, MR, b, ldb, c, ldc, accumulate);
}

static void kernel_rows_brows(int64_t kc, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                              int64_t ldc, int accumulate) {
    kernel_body(kc, a, lda, 1, b, ldb, c, ldc, accumulate);
}

/* Packs op(A)[i0:i0+mc, p0:p0+kc] into MR-row micro-panels: panel p holds,
 * for each k, the MR values of rows p*MR.. (zero past mc), so the kernel
 * reads A with unit stride whatever the storage. */
static void pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t p0, int64_t mc, int64_t kc,
                   float *restrict dst) {
    for (int64_t r0 = 0; r0 < mc; r0 += MR, dst += MR * kc) {
        const int64_t mr = mc - r0 < MR ? mc - r0 : MR;
        if (ta) { /* A stored [K,M]: each k row holds the panel's MR values contiguously. */
            const float *src = A + p0 * lda + i0 + r0;
            if (mr == MR) {
                for (int64_t k = 0; k < kc; k++, src += lda) memcpy(dst + k * MR, src, MR * sizeof(float));
            } else {
                for (int64_t k = 0; k < kc; k++, src += lda) {
                    float *d = dst + k * MR;
                    int64_t r = 0;
                    for (; r < mr; r++) d[r] = src[r];
                    for (; r < MR; r++) d[r] = 0.0f;
                }
            }
        } else { /* A stored [M,K]: read each row contiguously, scatter with stride MR. */
            for (int64_t r = 0; r < MR; r++) {
                float *d = dst + r;
                if (r < mr) {
                    const float *src = A + (i0 + r0 + r) * lda + p0;
                    for (int64_t k = 0; k < kc; k++) d[k * MR] = src[k];
                } else {
                    for (int64_t k = 0; k < kc; k++) d[k * MR] = 0.0f;
                }
            }
        }
    }
}

/* Packs op(B)[p0:p0+kc, j0:j0+nc] into NR-column micro-panels (kc rows of NR
 * floats each, zero past nc). */
static void pack_b(int tb, const float *B, int64_t ldb, int64_t p0, int64_t j0, int64_t kc, int64_t nc,
                   float *restrict dst) {
    for (int64_t c0 = 0; c0 < nc; c0 += NR, dst += NR * kc) {
        const int64_t nr = nc - c0 < NR ? nc - c0 : NR;
        if (!tb) { /* B stored [K,N]: each k row holds the panel's NR values contiguously. */
            const float *src = B + p0 * ldb + j0 + c0;
            for (int64_t k = 0; k < kc; k++, src += ldb) {
                float *d = dst + k * NR;
                if (nr == NR) {
                    memcpy(d, src, NR * sizeof(float));
                } else {
                    int64_t c = 0;
                    for (; c < nr; c++) d[c] = src[c];
                    for (; c < NR; c++) d[c] = 0.0f;
                }
            }
        } else { /* B stored [N,K]: read each stored row contiguously, scatter with stride NR. */
            for (int64_t c = 0; c < NR; c++) {
                float *d = dst + c;
                if (c < nr) {
                    const float *src = B + (j0 + c0 + c) * ldb + p0;
                    for (int64_t k = 0; k < kc; k++) d[k * NR] = src[k];
                } else {
                    for (int64_t k = 0; k < kc; k++) d[k * NR] = 0.0f;
                }
            }
        }
    }
}

/* One growable packing buffer per thread, kept across calls so the steady
 * state allocates nothing. */
static _Thread_local float *tl_buf;
static _Thread_local size_t tl_cap; /* floats */

static float *thread_buffer(size_t floats) {
    if (floats <= tl_cap) return tl_buf;
    size_t bytes;
    if (rl_mul_size(floats, sizeof(float), &bytes)) return NULL;
    float *p = rl_malloc_aligned(bytes);
    if (!p) return NULL;
    rl_free_aligned(tl_buf);
    tl_buf = p;
    tl_cap = floats;
    return p;
}

typedef struct gemm_job {
    int ta, tb, beta1, split_n;
    int64_t M, N, K, kcb; /* kcb: K block length, a function of K alone */
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
} gemm_job;

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Computes C[m0:m1, n0:n1] of the job. */
static void gemm_block(const gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    /* Pack space: a whole MC x KC block of A when A is transposed, else one
       edge panel; a whole KC x NC block of B when B is transposed, else one
       edge panel. */
    const int direct_b = !j->tb;
    const int64_t mcap = j->ta ? round_up(min64(m1 - m0, MC_MAX), MR) : MR;
    const int64_t ncap = direct_b ? NR : round_up(min64(n1 - n0, NC_MAX), NR);
    /* The B pack starts on a 64-byte boundary (whole cache lines per k row).
       Sizes are bounded by the block constants, so this cannot overflow. */
    const int64_t boff = round_up(mcap * j->kcb, 16);
    float *buf = thread_buffer((size_t)(boff + ncap * j->kcb));
    if (!buf) {
        const float *a = j->ta ? j->A + m0 : j->A + m0 * j->lda;
        const float *b = j->tb ? j->B + n0 * j->ldb : j->B + n0;
        blas_gemm(j->ta, j->tb, m1 - m0, n1 - n0, j->K, a, j->lda, b, j->ldb, j->beta1,
                  j->C + m0 * j->ldc + n0, j->ldc);
        return;
    }
    float *ap = buf, *bp = buf + boff;
    _Alignas(64) float tile[MR * NR];
    for (int64_t jc = n0; jc < n1; jc += NC_MAX) {
        const int64_t nc = min64(NC_MAX, n1 - jc);
        for (int64_t pc = 0; pc < j->K; pc += j->kcb) {
            const int64_t kc = min64(j->kcb, j->K - pc);
            const int accumulate = j->beta1 || pc > 0;
            /* Row-major B is read in place except for a short last panel. */
            const int64_t nfull = nc / NR * NR;
            if (!direct_b) pack_b(j->tb, j->B, j->ldb, pc, jc, kc, nc, bp);
            else if (nfull < nc) pack_b(0, j->B, j->ldb, pc, jc + nfull, kc, nc - nfull, bp);
            for (int64_t ic = m0; ic < m1; ic += MC_MAX) {
                const int64_t mc = min64(MC_MAX, m1 - ic);
                if (j->ta) pack_a(j->ta, j->A, j->lda, ic, pc, mc, kc, ap);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t nr = min64(NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t mr = min64(MR, mc - ir);
                        const int full = mr == MR && nr == NR;
                        float *c = j->C + (ic + ir) * j->ldc + jc + jr, *cc = full ? c : tile;
                        const int64_t ldcc = full ? j->ldc : NR;
                        const int acc = full ? accumulate : 0;
                        const float *aa = ap + ir * kc; /* packed A panel */
                        if (!j->ta && mr < MR) { /* short panel: pack it zero-padded */
                            if (jr == 0) pack_a(0, j->A, j->lda, ic + ir, pc, mr, kc, ap);
                            aa = ap;
                        }
                        const int a_direct = !j->ta && mr == MR;
                        const float *ar = j->A + (ic + ir) * j->lda + pc; /* A read in place */
                        if (direct_b && nr == NR) {
                            const float *br = j->B + pc * j->ldb + jc + jr;
                            if (a_direct) kernel_rows_brows(kc, ar, j->lda, br, j->ldb, cc, ldcc, acc);
                            else kernel_packed_brows(kc, aa, br, j->ldb, cc, ldcc, acc);
                        } else {
                            const float *bb = direct_b ? bp : bp + jr * kc;
                            if (a_direct) kernel_rows(kc, ar, j->lda, bb, cc, ldcc, acc);
                            else kernel_packed(kc, aa, bb, cc, ldcc, acc);
                        }
                        if (full) continue;
                        /* Edge tile: computed into the scratch tile; copy the valid
                           part (same adds as the kernel, so same bits). */
                        for (int64_t r = 0; r < mr; r++) {
                            float *cr = c + r * j->ldc;
                            const float *tr = tile + r * NR;
                            if (accumulate)
                                for (int64_t q = 0; q < nr; q++) cr[q] = cr[q] + tr[q];
                            else
                                memcpy(cr, tr, (size_t)nr * sizeof(float));
                        }
                    }
                }
            }
        }
    }
}

static void gemm_range(void *ctx, int64_t lo, int64_t hi, int slot) {
    (void)slot;
    const gemm_job *j = ctx;
    if (j->split_n) gemm_block(j, 0, j->M, lo * NR, min64(hi * NR, j->N));
    else gemm_block(j, lo * MR, min64(hi * MR, j->M), 0, j->N);
}
#endif /* RL_GEMM_SIMD */

void rl_sgemm_release_thread_buffer(void) {
#ifdef RL_GEMM_SIMD
    rl_free_aligned(tl_buf);
    tl_buf = NULL;
    tl_cap = 0;
#endif
}

void rl_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads) {
    if (M < 0 || N < 0 || K < 0) return;
    if (M == 0 || N == 0) return;
    if (ldc < N || lda < (trans_a ? M : K) || ldb < (trans_b ? K : N)) return;
    const int beta1 = beta != 0.0f;
    if (K == 0) { /* empty product: C = beta*C */
        if (!beta1)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#ifdef RL_GEMM_SIMD
    gemm_job j = {trans_a ? 1 : 0, trans_b ? 1 : 0, beta1, 0, M, N, K, 0, A, B, lda, ldb, ldc, C};
    /* Equal K blocks of at most KC_MAX (no short last block to waste a pass). */
    const int64_t nkb = (K + KC_MAX - 1) / KC_MAX;
    j.kcb = (K + nkb - 1) / nkb;
    /* Small products stay on one thread, where a fork/join (a few us) would
       cost more than it saves. Otherwise split M or N in whole micro-tiles,
       whichever gives the busiest thread the least tile area (counting the
       zero-padded edge tiles), the larger dimension on a tie. */
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    if (flops < 2e6 || threads < 1) threads = 1;
    const int64_t mt = (M + MR - 1) / MR, nt = (N + NR - 1) / NR, t = threads;
    const int64_t area_m = (mt + t - 1) / t * MR * (nt * NR), area_n = mt * MR * ((nt + t - 1) / t * NR);
    j.split_n = area_n < area_m || (area_n == area_m && N > M);
    rl_parallel_for(j.split_n ? nt : mt, threads, gemm_range, &j);
#else
    (void)threads;
    blas_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta1, C, ldc);
#endif
}
