/* rl_sgemm against a plain double-precision product: every (trans_a,
 * trans_b) pair, beta 0 (C prefilled with NaN, so reading it would show) and
 * 1, sizes crossing every micro-tile and cache-block edge, leading dimensions
 * longer than the rows (the padding must stay untouched), bit-identical
 * results for 1, 2 and 3 threads and inside an enclosing parallel region, no
 * allocation in the steady state, and no-ops on invalid sizes. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gemm.h"
#include "testlib.h"

/* Same selection as gemm.c: only our own kernels promise thread-count
 * independence; the portable path is plain cblas_sgemm. */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define DETERMINISTIC 1
#else
#define DETERMINISTIC 0
#endif

static const float SENTINEL = 12345.0f; /* fills the ld padding of C */

typedef struct mat {
    float *p;
    int64_t rows, cols, ld;
} mat;

static mat mat_new(int64_t rows, int64_t cols, int64_t pad, uint64_t seed) {
    mat m = {NULL, rows, cols, cols + pad};
    size_t n = (size_t)(rows * m.ld) + 1; /* +1: never zero bytes */
    m.p = rl_malloc(n * sizeof(float));
    if (m.p) rl_test_fill(m.p, n, seed);
    return m;
}

/* C as given (rows M, ld ldc) copied, so several runs start from the same C. */
static float *clone(const float *c, size_t n) {
    float *d = rl_malloc(n * sizeof(float) + 1);
    if (d) memcpy(d, c, n * sizeof(float));
    return d;
}

static double op_at(const mat *x, int trans, int64_t r, int64_t c) {
    return trans ? x->p[c * x->ld + r] : x->p[r * x->ld + c];
}

/* Runs one case and returns the number of failed checks it added. */
static void run_case(int ta, int tb, int64_t M, int64_t N, int64_t K, int beta1, int pad, uint64_t seed) {
    const int fails0 = rl_test_failures;
    /* Stored shapes: A is [M,K] or [K,M]; B is [K,N] or [N,K]. */
    mat a = ta ? mat_new(K, M, pad, seed) : mat_new(M, K, pad, seed);
    mat b = tb ? mat_new(N, K, pad + 1, seed + 1) : mat_new(K, N, pad + 1, seed + 1);
    const int64_t ldc = N + pad + 2;
    const size_t cn = (size_t)(M * ldc) + 1;
    float *c0 = rl_malloc(cn * sizeof(float));
    if (!a.p || !b.p || !c0) {
        CHECK(!"out of memory");
        rl_free(a.p); rl_free(b.p); rl_free(c0);
        return;
    }
    rl_test_fill(c0, cn, seed + 2);
    for (int64_t i = 0; i < M; i++)
        for (int64_t q = N; q < ldc; q++) c0[i * ldc + q] = SENTINEL;
    if (!beta1)
        for (int64_t i = 0; i < M; i++)
            for (int64_t q = 0; q < N; q++) c0[i * ldc + q] = NAN;
    const int lda = (int)a.ld, ldb = (int)b.ld;
    float *c[3];
    const int threads[3] = {1, 2, 3};
    for (int t = 0; t < 3; t++) {
        c[t] = clone(c0, cn);
        if (c[t]) rl_sgemm(ta, tb, M, N, K, a.p, lda, b.p, ldb, beta1 ? 1.0f : 0.0f, c[t], ldc, threads[t]);
    }
    if (c[0] && c[1] && c[2]) {
        double worst = 0.0;
        int pad_ok = 1;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t q = 0; q < N; q++) {
                double s = 0.0, mag = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    const double x = op_at(&a, ta, i, k), y = op_at(&b, tb, k, q);
                    s += x * y;
                    mag += fabs(x * y);
                }
                if (beta1) {
                    s += c0[i * ldc + q];
                    mag += fabs(c0[i * ldc + q]);
                }
                const double got = c[0][i * ldc + q];
                const double e = isfinite(got) ? fabs(got - s) / (mag > 1e-30 ? mag : 1.0) : INFINITY;
                if (e > worst) worst = e;
            }
            for (int64_t q = N; q < ldc; q++) pad_ok &= c[0][i * ldc + q] == SENTINEL;
        }
        CHECK_MSG(worst <= 1e-5, "ta=%d tb=%d M=%lld N=%lld K=%lld beta=%d: rel err %.3g", ta, tb, (long long)M,
                  (long long)N, (long long)K, beta1, worst);
        CHECK_MSG(pad_ok, "ta=%d tb=%d M=%lld N=%lld K=%lld: C padding written", ta, tb, (long long)M, (long long)N,
                  (long long)K);
        CHECK_MSG(!DETERMINISTIC ||
                      (memcmp(c[0], c[1], cn * sizeof(float)) == 0 && memcmp(c[0], c[2], cn * sizeof(float)) == 0),
                  "ta=%d tb=%d M=%lld N=%lld K=%lld beta=%d: results depend on the thread count", ta, tb,
                  (long long)M, (long long)N, (long long)K, beta1);
    } else {
        CHECK(!"out of memory");
    }
    if (rl_test_failures != fails0)
        fprintf(stderr, "  (failing case: ta=%d tb=%d M=%lld N=%lld K=%lld beta=%d pad=%d)\n", ta, tb, (long long)M,
                (long long)N, (long long)K, beta1, pad);
    for (int t = 0; t < 3; t++) rl_free(c[t]);
    rl_free(a.p);
    rl_free(b.p);
    rl_free(c0);
}

static void test_shapes(void) {
    /* Sizes around the micro-tile (12 x 32 with AVX-512, 6 x 16 with AVX2),
       the K block (256), the M block (144) and the N block (3072). */
    static const int64_t cases[][3] = {
        {0, 5, 5},     {5, 0, 5},     {5, 5, 0},    {1, 1, 1},     {1, 33, 13},   {13, 1, 31},
        {5, 13, 64},   {31, 33, 5},   {33, 31, 100}, {64, 64, 64}, {100, 13, 257}, {13, 100, 300},
        {257, 33, 31}, {300, 64, 13}, {33, 257, 64}, {100, 300, 33}, {257, 100, 300}, {13, 40, 600},
        {2, 3100, 3},  {24, 64, 256}, {145, 96, 1},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    uint64_t seed = 1;
    for (int ci = 0; ci < ncases; ci++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta1 = 0; beta1 < 2; beta1++, seed += 3)
                    run_case(ta, tb, cases[ci][0], cases[ci][1], cases[ci][2], beta1, (int)(ci % 3) * 3, seed);
}

/* Inside a parallel region every thread runs its own GEMM serially (with its
 * own packing buffer): each result must equal the single-threaded one. */
static void test_nested(void) {
    const int64_t M = 100, N = 70, K = 90;
    float *a = rl_malloc((size_t)(M * K) * sizeof(float)), *b = rl_malloc((size_t)(K * N) * sizeof(float));
    float *ref = rl_malloc((size_t)(M * N) * sizeof(float)), *out = rl_malloc(4 * (size_t)(M * N) * sizeof(float));
    if (!a || !b || !ref || !out) {
        CHECK(!"out of memory");
    } else {
        rl_test_fill(a, (size_t)(M * K), 41);
        rl_test_fill(b, (size_t)(K * N), 42);
        rl_sgemm(0, 0, M, N, K, a, K, b, N, 0.0f, ref, N, 1);
#pragma omp parallel for num_threads(2)
        for (int t = 0; t < 4; t++) rl_sgemm(0, 0, M, N, K, a, K, b, N, 0.0f, out + t * M * N, N, 2);
        for (int t = 0; t < 4; t++)
            CHECK_MSG(!DETERMINISTIC || memcmp(ref, out + t * M * N, (size_t)(M * N) * sizeof(float)) == 0,
                      "nested call %d differs", t);
    }
    rl_free(a); rl_free(b); rl_free(ref); rl_free(out);
}

/* Once the packing buffers have grown, a repeated call allocates nothing. */
static void test_no_alloc(void) {
    const int64_t M = 300, N = 200, K = 300;
    float *a = rl_malloc((size_t)(M * K) * sizeof(float)), *b = rl_malloc((size_t)(K * N) * sizeof(float));
    float *c = rl_malloc((size_t)(M * N) * sizeof(float));
    if (!a || !b || !c) {
        CHECK(!"out of memory");
    } else {
        rl_test_fill(a, (size_t)(M * K), 5);
        rl_test_fill(b, (size_t)(K * N), 6);
        for (int ta = 0; ta < 2; ta++) /* warm up every thread's buffer for both paths */
            rl_sgemm(ta, 1, M, N, K, a, ta ? M : K, b, K, 0.0f, c, N, 2);
        const uint64_t before = rl_alloc_count();
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) rl_sgemm(ta, tb, M, N, K, a, ta ? M : K, b, tb ? K : N, 1.0f, c, N, 2);
        CHECK_MSG(rl_alloc_count() == before, "steady-state rl_sgemm allocated %llu times",
                  (unsigned long long)(rl_alloc_count() - before));
    }
    rl_free(a); rl_free(b); rl_free(c);
}

/* K = 0 is an empty product (C = beta*C); invalid sizes leave C alone. */
static void test_degenerate(void) {
    float a[12], b[12], c[12];
    rl_test_fill(a, 12, 7);
    rl_test_fill(b, 12, 8);
    for (int i = 0; i < 12; i++) c[i] = NAN;
    rl_sgemm(0, 0, 3, 4, 0, a, 1, b, 4, 0.0f, c, 4, 2);
    int zero = 1;
    for (int i = 0; i < 12; i++) zero &= c[i] == 0.0f;
    CHECK_MSG(zero, "K = 0, beta 0 must zero C");
    for (int i = 0; i < 12; i++) c[i] = (float)i;
    rl_sgemm(0, 0, 3, 4, 0, a, 1, b, 4, 1.0f, c, 4, 2);
    int same = 1;
    for (int i = 0; i < 12; i++) same &= c[i] == (float)i;
    CHECK_MSG(same, "K = 0, beta 1 must leave C unchanged");
    /* Negative sizes and short leading dimensions: nothing is written. */
    rl_sgemm(0, 0, -1, 4, 3, a, 3, b, 4, 0.0f, c, 4, 1);
    rl_sgemm(0, 0, 3, 4, 3, a, 2, b, 4, 0.0f, c, 4, 1);  /* lda < K */
    rl_sgemm(1, 0, 3, 4, 3, a, 2, b, 4, 0.0f, c, 4, 1);  /* trans: lda < M */
    rl_sgemm(0, 1, 3, 4, 3, a, 3, b, 2, 0.0f, c, 4, 1);  /* trans: ldb < K */
    rl_sgemm(0, 0, 3, 4, 3, a, 3, b, 4, 0.0f, c, 3, 1);  /* ldc < N */
    same = 1;
    for (int i = 0; i < 12; i++) same &= c[i] == (float)i;
    CHECK_MSG(same, "invalid sizes must leave C unchanged");
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_degenerate();
    test_shapes();
    test_nested();
    test_no_alloc();
    rl_sgemm_release_thread_buffer();
    return rl_test_finish("test_gemm");
}
