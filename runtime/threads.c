#include "threads.h"

#include <cblas.h>
#include <omp.h>

void rl_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int rl_get_threads(void) { return omp_get_max_threads(); }

static int serial(int64_t n, int threads) { return threads <= 1 || n <= 1 || omp_in_parallel(); }

void rl_parallel_for(int64_t n, int threads, rl_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (serial(n, threads)) {
        fn(ctx, 0, n, 0);
        return;
    }
    if (threads > n) threads = (int)n;
#pragma omp parallel num_threads(threads)
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (lo < hi) fn(ctx, lo, hi, (int)t);
    }
}

void rl_parallel_for_dynamic(int64_t n, int threads, rl_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (serial(n, threads)) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i, i + 1, 0);
        return;
    }
    if (threads > n) threads = (int)n;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; i++) fn(ctx, i, i + 1, omp_get_thread_num());
}

typedef struct gemm_job {
    int ta, tb;
    int64_t N, K, lda, ldb, ldc;
    const float *A, *B;
    float beta, *C;
} gemm_job;

static void gemm_slice(const gemm_job *j, int64_t m0, int64_t m1) {
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
    if (M <= 0 || N <= 0) return;
    gemm_job j = {trans_a, trans_b, N, K, lda, ldb, ldc, A, B, beta, C};
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    if (threads > 1 && flops >= 4e6 * threads && M >= 8 * threads && !omp_in_parallel())
        rl_parallel_for(M, threads, gemm_rows_range, &j);
    else
        gemm_slice(&j, 0, M);
}
