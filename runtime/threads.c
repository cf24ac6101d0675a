#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

void rl_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int rl_get_threads(void) { return omp_get_max_threads(); }

static int serial(int64_t n, int threads) { return threads <= 1 || n <= 1 || omp_in_parallel(); }

/* The share of [lo, hi) of thread t: items whose cost midpoint lies in
   [t, t + 1) * total / nt. Every thread computes its own cut from the same
   sums, so the ranges meet exactly and no item is dropped or repeated. */
static void balanced_range(int64_t n, int t, int nt, rl_cost_fn cost, const void *ctx, int64_t *lo,
                           int64_t *hi) {
    double total = 0;
    for (int64_t i = 0; cost && i < n; i++) total += cost(ctx, i);
    if (!(total > 0)) { /* no costs (rl_parallel_for), or all zero: split by count */
        *lo = n * t / nt, *hi = n * (t + 1) / nt;
        return;
    }
    double run = 0;
    *lo = *hi = n;
    int found_lo = 0;
    for (int64_t i = 0; i < n; i++) {
        const double c = cost(ctx, i);
        int owner = (int)((run + 0.5 * c) * nt / total);
        owner = owner >= nt ? nt - 1 : owner;
        run += c;
        if (owner >= t && !found_lo) *lo = i, found_lo = 1;
        if (owner > t) {
            *hi = i;
            return;
        }
    }
}

void rl_parallel_for_balanced(int64_t n, int threads, rl_cost_fn cost, rl_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (serial(n, threads)) {
        fn(ctx, 0, n, 0);
        return;
    }
    if (threads > n) threads = (int)n;
#pragma omp parallel num_threads(threads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t lo, hi;
        balanced_range(n, t, nt, cost, ctx, &lo, &hi);
        if (lo < hi) fn(ctx, lo, hi, t);
    }
}

void rl_parallel_for(int64_t n, int threads, rl_range_fn fn, void *ctx) {
    rl_parallel_for_balanced(n, threads, NULL, fn, ctx);
}

typedef struct gemm_job {
    int ta, tb;
    int64_t N, K, lda, ldb, ldc;
    const float *A, *B;
    float beta, *C;
    rl_rows_fn prologue;
    void *ctx;
} gemm_job;

static void gemm_slice(const gemm_job *j, int64_t m0, int64_t m1) {
    if (j->prologue) j->prologue(j->ctx, m0, m1);
    const float *A = j->ta ? j->A + m0 : j->A + m0 * j->lda;
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, (int)(m1 - m0),
                (int)j->N, (int)j->K, 1.0f, A, (int)j->lda, j->B, (int)j->ldb, j->beta, j->C + m0 * j->ldc,
                (int)j->ldc);
}

static void gemm_rows_range(void *ctx, int64_t lo, int64_t hi, int slot) {
    (void)slot;
    gemm_slice(ctx, lo, hi);
}

void rl_gemm_rows(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads) {
    rl_gemm_rows_prep(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc, threads, NULL, NULL);
}

void rl_gemm_rows_prep(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads,
                       rl_rows_fn prologue, void *ctx) {
    if (M <= 0 || N <= 0) return;
    gemm_job j = {trans_a, trans_b, N, K, lda, ldb, ldc, A, B, beta, C, prologue, ctx};
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    if (threads > 1 && flops >= 4e6 * threads && M >= 8 * threads && !omp_in_parallel())
        rl_parallel_for(M, threads, gemm_rows_range, &j);
    else
        gemm_slice(&j, 0, M);
}

size_t rl_gemm_wgrad_scratch_floats(int64_t out, int64_t in, int threads) {
    return threads > 1 && out > 0 && in > 0 ? (size_t)(threads - 1) * (size_t)out * (size_t)in : 0;
}

static void bias_sums(const float *dy, int64_t K, int64_t out, float *db, int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < K; r++) {
        const float *g = dy + r * out;
        for (int64_t j = c0; j < c1; j++) db[j] += g[j];
    }
}

void rl_gemm_wgrad(int64_t out, int64_t in, int64_t K, const float *dy, const float *x, float *dw, float *db,
                   float *partial, int threads) {
    if (out <= 0 || in <= 0 || K <= 0) return;
    const double flops = 2.0 * (double)out * (double)in * (double)K;
    if (!partial || threads <= 1 || flops < 4e6 * threads || K < 64 * threads || omp_in_parallel()) {
        rl_gemm_rows(1, 0, out, in, K, dy, out, x, in, 1.0f, dw, in, threads);
        if (db) bias_sums(dy, K, out, db, 0, out);
        return;
    }
    const size_t size = (size_t)out * (size_t)in;
#pragma omp parallel num_threads(threads)
    {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t k0 = K * t / nt, k1 = K * (t + 1) / nt;
        float *dst = t == 0 ? dw : partial + (size_t)(t - 1) * size;
        if (k1 > k0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)(k1 - k0), 1.0f,
                        dy + k0 * out, (int)out, x + k0 * in, (int)in, t == 0 ? 1.0f : 0.0f, dst, (int)in);
        else if (t > 0)
            memset(dst, 0, size * sizeof(float));
        if (db) bias_sums(dy, K, out, db, out * t / nt, out * (t + 1) / nt);
#pragma omp barrier
        const size_t e0 = size * (size_t)t / (size_t)nt, e1 = size * (size_t)(t + 1) / (size_t)nt;
        for (int u = 1; u < nt; u++) {
            const float *p = partial + (size_t)(u - 1) * size;
#pragma omp simd
            for (size_t e = e0; e < e1; e++) dw[e] += p[e];
        }
    }
}
