/* matmul and linear on top of OpenBLAS cblas_sgemm (row-major). The GEMM
 * itself is threaded by OpenBLAS, which (Debian's OpenMP build) shares
 * libgomp's pool with our own loops, so the two never oversubscribe. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "alloc.h"
#include "kernels.h"

int rl_kernel_dims_ok(const char *what, int64_t m, int64_t n, int64_t k, rl_error *err) {
    const int64_t d[3] = {m, n, k};
    for (int i = 0; i < 3; i++)
        if (d[i] < 0 || d[i] > INT_MAX)
            return rl_fail(err, "%s: dimension %lld is outside [0, %d] (BLAS takes int sizes)", what,
                           (long long)d[i], INT_MAX);
    size_t t;
    if (rl_mul_size((size_t)m, (size_t)k, &t) || rl_mul_size((size_t)k, (size_t)n, &t) ||
        rl_mul_size((size_t)m, (size_t)n, &t) || rl_mul_size(t, sizeof(float), &t))
        return rl_fail(err, "%s: matrix of %lld x %lld x %lld overflows size_t", what, (long long)m,
                       (long long)n, (long long)k);
    return 0;
}

/* A leading dimension of 0 is illegal for BLAS even when the matrix is empty. */
static int ld(int64_t cols) { return cols > 0 ? (int)cols : 1; }

void rl_matmul_forward(float *c, const float *a, const float *b, int64_t m, int64_t n, int64_t k,
                       int trans_a, int trans_b, int accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        /* Empty product: C = 0 (or unchanged when accumulating). */
        if (!accumulate) memset(c, 0, (size_t)m * (size_t)n * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, ld(trans_a ? m : k), b, ld(trans_b ? k : n),
                accumulate ? 1.0f : 0.0f, c, ld(n));
}

void rl_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                        int64_t m, int64_t n, int64_t k, int trans_a, int trans_b) {
    if (m == 0 || n == 0 || k == 0) return; /* every product is empty: nothing to add */
    const int lda = ld(trans_a ? m : k), ldb = ld(trans_b ? k : n), ldc = ld(n);
    if (da) {
        if (!trans_a) /* dA[m,k] += dC[m,n] op(B)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasNoTrans : CblasTrans, (int)m, (int)k,
                        (int)n, 1.0f, dc, ldc, b, ldb, 1.0f, da, lda);
        else /* A stored [k,m]: dA += op(B)[k,n] dC^T */
            cblas_sgemm(CblasRowMajor, trans_b ? CblasTrans : CblasNoTrans, CblasTrans, (int)k, (int)m,
                        (int)n, 1.0f, b, ldb, dc, ldc, 1.0f, da, lda);
    }
    if (db) {
        if (!trans_b) /* dB[k,n] += op(A)^T dC */
            cblas_sgemm(CblasRowMajor, trans_a ? CblasNoTrans : CblasTrans, CblasNoTrans, (int)k, (int)n,
                        (int)m, 1.0f, a, lda, dc, ldc, 1.0f, db, ldb);
        else /* B stored [n,k]: dB += dC^T op(A) */
            cblas_sgemm(CblasRowMajor, CblasTrans, trans_a ? CblasTrans : CblasNoTrans, (int)n, (int)k,
                        (int)m, 1.0f, dc, ldc, a, lda, 1.0f, db, ldb);
    }
}

void rl_linear_forward(float *out, const float *in, const float *w, const float *bias, int64_t n,
                       int64_t c, int64_t oc) {
    if (n == 0 || oc == 0) return;
    /* Seed the output with the bias and let the GEMM accumulate onto it: one
       pass over out instead of a GEMM pass plus a bias pass. Sequential on
       purpose: a memory-bound copy gains little from a second thread, and an
       extra fork/join next to the GEMM measured slower on a busy machine. */
    if (bias) {
        for (int64_t r = 0; r < n; r++) memcpy(out + r * oc, bias, (size_t)oc * sizeof(float));
    }
    rl_matmul_forward(out, in, w, n, oc, c, 0, 1, bias != NULL);
}

void rl_linear_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                        const float *w, int64_t n, int64_t c, int64_t oc) {
    /* out = in · w^T is matmul(a = in [n,c], b = w stored [oc,c], trans_b). */
    rl_matmul_backward(din, dw, dout, in, w, n, oc, c, 0, 1);
    /* Column sums of dout, rows in order (so no thread dependence), vectorised
       across columns. Sequential for the same reason as the forward's bias copy. */
    if (dbias)
        for (int64_t r = 0; r < n; r++) {
            const float *g = dout + r * oc;
            for (int64_t j = 0; j < oc; j++) dbias[j] += g[j];
        }
}
