/* rl_gemm_rows (runtime/threads.h): OpenBLAS with the rows of C split over
 * our threads. For every (trans_a, trans_b), beta 0 and 1, leading
 * dimensions wider than the rows, and sizes below and above the split
 * threshold, on 1, 2 and 3 threads: within 1e-5 of a double-precision
 * reference (relative to the sum of |terms|), the same bits on a repeated
 * call, and the padding past each row untouched. (Bits may differ between
 * thread counts: OpenBLAS's edge-tile kernels sum in another order than its
 * full tiles, and the split moves the edges.) Also rl_gemm_wgrad, the
 * token-split weight gradient, likewise plus its bias sums, and
 * rl_linear_rows's per-slice seeding (bias, residual, accumulate). */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kernels.h"
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

/* rl_gemm_wgrad: dW += dy^T x and db += column sums of dy, with the tokens
   split over threads; against a double reference, the same bits on a
   repeated call, and db the same bits on any thread count. */
static void check_wgrad(int64_t out, int64_t in, int64_t K, int with_partial) {
    const size_t yn = (size_t)(K * out), xn = (size_t)(K * in), wn = (size_t)(out * in);
    float *dy = rl_malloc(yn * 4), *x = rl_malloc(xn * 4), *w0 = rl_malloc(wn * 4), *w = rl_malloc(wn * 4),
          *w2 = rl_malloc(wn * 4), *b0 = rl_malloc((size_t)out * 4), *b = rl_malloc((size_t)out * 4),
          *b1 = rl_malloc((size_t)out * 4), *b2 = rl_malloc((size_t)out * 4);
    float *partial = rl_malloc((rl_gemm_wgrad_scratch_floats(out, in, 3) + 1) * 4);
    rl_test_fill(dy, yn, 11 + (uint64_t)K);
    rl_test_fill(x, xn, 12 + (uint64_t)in);
    rl_test_fill(w0, wn, 13 + (uint64_t)out);
    rl_test_fill(b0, (size_t)out, 14);
    for (int threads = 1; threads <= 3; threads++) {
        float *scr = with_partial ? partial : NULL;
        memcpy(w, w0, wn * 4);
        memcpy(b, b0, (size_t)out * 4);
        rl_gemm_wgrad(out, in, K, dy, x, w, b, scr, threads);
        double worst = 0, worst_b = 0;
        for (int64_t o = 0; o < out; o++) {
            for (int64_t i = 0; i < in; i++) {
                double s = w0[o * in + i], mag = fabs(s);
                for (int64_t k = 0; k < K; k++) {
                    const double p = (double)dy[k * out + o] * x[k * in + i];
                    s += p;
                    mag += fabs(p);
                }
                worst = fmax(worst, fabs(s - w[o * in + i]) / (mag + 1e-30));
            }
            double s = b0[o], mag = fabs(s);
            for (int64_t k = 0; k < K; k++) s += dy[k * out + o], mag += fabs(dy[k * out + o]);
            worst_b = fmax(worst_b, fabs(s - b[o]) / (mag + 1e-30));
        }
        CHECK_MSG(worst < 1e-5 && worst_b < 1e-6, "wgrad %lldx%lld over %lld rows, %d threads%s: off by %g / %g",
                  (long long)out, (long long)in, (long long)K, threads, with_partial ? "" : " (no scratch)", worst,
                  worst_b);
        memcpy(w2, w0, wn * 4);
        memcpy(b2, b0, (size_t)out * 4);
        rl_gemm_wgrad(out, in, K, dy, x, w2, b2, scr, threads);
        CHECK_MSG(memcmp(w, w2, wn * 4) == 0, "wgrad %lldx%lld, %d threads: a repeated call differs", (long long)out,
                  (long long)in, threads);
        if (threads == 1) memcpy(b1, b, (size_t)out * 4);
        CHECK_MSG(memcmp(b, b1, (size_t)out * 4) == 0, "wgrad bias sums on %d threads differ from 1 thread", threads);
    }
    rl_free(dy);
    rl_free(x);
    rl_free(w0);
    rl_free(w);
    rl_free(w2);
    rl_free(b0);
    rl_free(b);
    rl_free(b1);
    rl_free(b2);
    rl_free(partial);
}

/* rl_linear_rows: out = [out if accumulate] + residual + in w^T + bias, for
   every combination of bias, residual and accumulate (the seeding runs per
   slice, on the thread that multiplies it), 1-3 threads, against a double
   reference; also with no inner dimension (seeding only). */
static void check_linear(int64_t n, int64_t c, int64_t oc) {
    const size_t on = (size_t)(n * oc);
    float *in = rl_malloc((size_t)(n * c + 1) * 4), *w = rl_malloc((size_t)(oc * c + 1) * 4),
          *bias = rl_malloc((size_t)oc * 4), *res = rl_malloc(on * 4), *o0 = rl_malloc(on * 4),
          *out = rl_malloc(on * 4);
    rl_test_fill(in, (size_t)(n * c + 1), 21);
    rl_test_fill(w, (size_t)(oc * c + 1), 22);
    rl_test_fill(bias, (size_t)oc, 23);
    rl_test_fill(res, on, 24);
    rl_test_fill(o0, on, 25);
    for (int combo = 0; combo < 8; combo++) {
        const int with_bias = combo & 1, with_res = (combo >> 1) & 1, acc = (combo >> 2) & 1;
        for (int threads = 1; threads <= 3; threads++) {
            memcpy(out, o0, on * 4);
            rl_linear_rows(out, in, w, with_bias ? bias : NULL, with_res ? res : NULL, n, c, oc, acc, threads);
            double worst = 0;
            for (int64_t r = 0; r < n; r++)
                for (int64_t j = 0; j < oc; j++) {
                    const double t0 = acc ? o0[r * oc + j] : 0.0, t1 = with_res ? res[r * oc + j] : 0.0,
                                 t2 = with_bias ? bias[j] : 0.0;
                    double s = t0 + t1 + t2, mag = fabs(t0) + fabs(t1) + fabs(t2);
                    for (int64_t k = 0; k < c; k++) {
                        const double p = (double)in[r * c + k] * w[j * c + k];
                        s += p;
                        mag += fabs(p);
                    }
                    worst = fmax(worst, fabs(s - out[r * oc + j]) / (mag + 1e-30));
                }
            CHECK_MSG(worst < 1e-5, "linear %lldx%lld->%lld bias %d residual %d accumulate %d, %d threads: off by %g",
                      (long long)n, (long long)c, (long long)oc, with_bias, with_res, acc, threads, worst);
        }
    }
    rl_free(in);
    rl_free(w);
    rl_free(bias);
    rl_free(res);
    rl_free(o0);
    rl_free(out);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    const int64_t sizes[][3] = {{5, 7, 3}, {37, 19, 11}, {300, 130, 70}, {517, 64, 96}, {64, 200, 517}};
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
                for (int b = 0; b <= 1; b++) check(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], (float)b);
    /* below the split threshold, above it, uneven slices, more threads than
       a slice's worth of rows */
    const int64_t wsizes[][3] = {{5, 7, 9}, {64, 128, 700}, {37, 130, 1001}, {128, 96, 2048}, {3, 500, 4000}};
    for (size_t s = 0; s < sizeof wsizes / sizeof wsizes[0]; s++)
        for (int p = 0; p <= 1; p++) check_wgrad(wsizes[s][0], wsizes[s][1], wsizes[s][2], p);
    check_linear(7, 5, 3);
    check_linear(300, 64, 96); /* split over threads */
    check_linear(129, 0, 17);  /* no inner dimension */
    return rl_test_finish("test_gemm_rows");
}
