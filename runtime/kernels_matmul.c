/* matmul and linear on top of OpenBLAS cblas_sgemm (row-major), through
 * rl_gemm_rows (runtime/threads.h): the rows of C are split over our threads,
 * one single-threaded OpenBLAS call each (Debian's OpenMP build shares
 * libgomp's pool with our loops, so nothing oversubscribes). */
#include <limits.h>
#include <string.h>

#include "alloc.h"
#include "kernels.h"
#include "threads.h"

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
    rl_gemm_rows(trans_a, trans_b, m, n, k, a, ld(trans_a ? m : k), b, ld(trans_b ? k : n), accumulate ? 1.0f : 0.0f,
                 c, ld(n), rl_get_threads());
}

void rl_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                        int64_t m, int64_t n, int64_t k, int trans_a, int trans_b) {
    if (m == 0 || n == 0 || k == 0) return; /* every product is empty: nothing to add */
    const int lda = ld(trans_a ? m : k), ldb = ld(trans_b ? k : n), ldc = ld(n);
    if (da) {
        if (!trans_a) /* dA[m,k] += dC[m,n] op(B)^T */
            rl_gemm_rows(0, !trans_b, m, k, n, dc, ldc, b, ldb, 1.0f, da, lda, rl_get_threads());
        else /* A stored [k,m]: dA += op(B)[k,n] dC^T */
            rl_gemm_rows(trans_b, 1, k, m, n, b, ldb, dc, ldc, 1.0f, da, lda, rl_get_threads());
    }
    if (db) {
        if (!trans_b) /* dB[k,n] += op(A)^T dC */
            rl_gemm_rows(!trans_a, 0, k, n, m, a, lda, dc, ldc, 1.0f, db, ldb, rl_get_threads());
        else /* B stored [n,k]: dB += dC^T op(A) */
            rl_gemm_rows(1, trans_a, n, k, m, dc, ldc, a, lda, 1.0f, db, ldb, rl_get_threads());
    }
}

typedef struct seed_rows {
    float *out;
    const float *bias, *residual;
    int64_t oc;
    int accumulate;
} seed_rows;

/* Rows m0..m1 of out before the product: the residual and the bias copied
   or added. On the thread that multiplies those rows next (the prologue of
   rl_gemm_rows_prep): one pass over them instead of a GEMM pass plus a
   bias pass, and no serial pass that moves every row through one core. */
static void seed_range(void *ctx, int64_t m0, int64_t m1) {
    const seed_rows *s = ctx;
    const int64_t oc = s->oc;
    for (int64_t r = m0; r < m1; r++) {
        float *o = s->out + r * oc;
        const float *res = s->residual ? s->residual + r * oc : NULL, *b = s->bias;
        if (!s->accumulate) {
            if (res && b)
                for (int64_t j = 0; j < oc; j++) o[j] = res[j] + b[j];
            else if (res || b)
                memcpy(o, res ? res : b, (size_t)oc * sizeof(float));
            else
                memset(o, 0, (size_t)oc * sizeof(float));
        } else {
            if (res)
                for (int64_t j = 0; j < oc; j++) o[j] += res[j];
            if (b)
                for (int64_t j = 0; j < oc; j++) o[j] += b[j];
        }
    }
}

void rl_linear_rows(float *out, const float *in, const float *w, const float *bias, const float *residual, int64_t n,
                    int64_t c, int64_t oc, int accumulate, int threads) {
    if (n == 0 || oc == 0) return;
    seed_rows s = {out, bias, residual, oc, accumulate};
    if (c == 0) { /* no product: only the seeding */
        seed_range(&s, 0, n);
        return;
    }
    /* beta 1 onto seeded (or accumulated) rows; a plain product overwrites */
    rl_gemm_rows_prep(0, 1, n, oc, c, in, ld(c), w, ld(c), accumulate || bias || residual ? 1.0f : 0.0f, out,
                      ld(oc), threads, bias || residual ? seed_range : NULL, &s);
}

void rl_linear_forward(float *out, const float *in, const float *w, const float *bias, int64_t n,
                       int64_t c, int64_t oc) {
    rl_linear_rows(out, in, w, bias, NULL, n, c, oc, 0, rl_get_threads());
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
