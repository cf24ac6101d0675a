/* rl_gemm_rows (runtime/threads.h): OpenBLAS with the rows of C split over
 * our threads. For every (trans_a, trans_b), beta 0 and 1, leading
 * dimensions wider than the rows, and sizes below and above the split
 * threshold, on 1, 2 and 3 threads: within 1e-5 of a double-precision
 * reference (relative to the sum of |terms|), the same bits on a repeated
 * call, and the padding past each row untouched. (Bits may differ between
 * thread counts: OpenBLAS's edge-tile kernels sum in another order than its
 * full tiles, and the split moves the edges.) */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "testlib.h"
#include "threads.h"

static void check(int ta, int tb, int64_t M, int64_t N, int64_t K, float beta) {
    const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    const size_t an = (size_t)((ta ? K : M) * lda), bn = (size_t)((tb ? N : K) * ldb), cn = (size_t)(M * ldc);
    float *A = rl_malloc(an * 4), *B = rl_malloc(bn * 4), *C0 = rl_malloc(cn * 4), *C = rl_malloc(cn * 4),
          *ref = rl_malloc(cn * 4);
    rl_test_fill(A, an, 1 + (uint64_t)M);
    rl_test_fill(B, bn, 2 + (uint64_t)N);
    rl_test_fill(C0, cn, 3 + (uint64_t)K);
    for (int threads = 1; threads <= 3; threads++) {
        memcpy(C, C0, cn * 4);
        rl_gemm_rows(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, threads);
        double worst = 0;
        int pad_ok = 1;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                double s = beta != 0.0f ? C0[i * ldc + j] : 0.0, mag = fabs(s);
                for (int64_t k = 0; k < K; k++) {
                    const double p =
                        (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    s += p;
                    mag += fabs(p);
                }
                worst = fmax(worst, fabs(s - C[i * ldc + j]) / (mag + 1e-30));
            }
            for (int64_t j = N; j < ldc; j++) pad_ok &= C[i * ldc + j] == C0[i * ldc + j];
        }
        CHECK_MSG(worst < 1e-5, "trans %d%d %lldx%lldx%lld beta %g, %d threads: off the reference by %g", ta, tb,
                  (long long)M, (long long)N, (long long)K, beta, threads, worst);
        CHECK_MSG(pad_ok, "trans %d%d %lldx%lldx%lld: padding written", ta, tb, (long long)M, (long long)N,
                  (long long)K);
        memcpy(ref, C0, cn * 4);
        rl_gemm_rows(ta, tb, M, N, K, A, lda, B, ldb, beta, ref, ldc, threads);
        CHECK_MSG(memcmp(C, ref, cn * 4) == 0, "trans %d%d %lldx%lldx%lld, %d threads: a repeated call differs", ta,
                  tb, (long long)M, (long long)N, (long long)K, threads);
    }
    rl_free(A);
    rl_free(B);
    rl_free(C0);
    rl_free(C);
    rl_free(ref);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    const int64_t sizes[][3] = {{5, 7, 3}, {37, 19, 11}, {300, 130, 70}, {517, 64, 96}, {64, 200, 517}};
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                for (int b = 0; b <= 1; b++) check(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], (float)b);
    return rl_test_finish("test_gemm_rows");
}
