/* rl_sgemm against cblas_sgemm on the GEMMs of a policy training step, for
 * the tiny and small policy shapes (in/out features of each linear layer,
 * 2048 rows = batch x tokens). Three forms per shape:
 *   fwd: y = x W^T      NoTrans/Trans,   M=2048, N=out, K=in,   beta 0
 *   dx:  dx = dy W      NoTrans/NoTrans, M=2048, N=in,  K=out,  beta 0
 *   dw:  dW += dy^T x   Trans/NoTrans,   M=out,  N=in,  K=2048, beta 1
 * Both sides use the same thread count (default 2); repetitions are
 * interleaved, alternating which side runs first, so machine noise hits both
 * alike; medians are reported.
 *   OMP_NUM_THREADS=2 build/bench/bench_gemm [reps] [threads]   (defaults 15, 2)
 * Ends with one line per workload:
 *   bench gemm_FORM_MxNxK rlfr=X reference=Y unit=GFLOP/s ratio=R  (R > 1: rlfr faster) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "gemm.h"
#include "rng.h"
#include "threads.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct problem {
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    float beta;
    const float *a, *b;
    float *c;
} problem;

static void run(const problem *p, int ours, int threads) {
    if (ours)
        rl_sgemm(p->ta, p->tb, p->m, p->n, p->k, p->a, p->lda, p->b, p->ldb, p->beta, p->c, p->ldc, threads);
    else
        cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans, p->tb ? CblasTrans : CblasNoTrans, (int)p->m,
                    (int)p->n, (int)p->k, 1.0f, p->a, (int)p->lda, p->b, (int)p->ldb, p->beta, p->c, (int)p->ldc);
}

static float *alloc_fill(size_t n, uint64_t stream) {
    float *p = rl_malloc_aligned(n * sizeof(float));
    if (p) rl_rng_uniform_range_fill(p, n, -1.0f, 1.0f, 11, stream, 0);
    return p;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    if (reps < 1) reps = 1;
    if (reps > 101) reps = 101;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (threads < 1) threads = 2;
    rl_set_threads(threads);
    const int64_t rows = 2048;
    /* in, out features: tiny policy (hidden 128, intermediate 384, 2 of 4
       heads' worth of KV = 64) and small (256, 768, KV 64). */
    const int64_t shapes[][2] = {{128, 128}, {128, 64}, {128, 384}, {384, 128},
                                 {256, 256}, {256, 64}, {256, 768}, {768, 256}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    static const char *forms[3] = {"fwd", "dx", "dw"};
    static char lines[3 * 8][160];
    int nlines = 0;
    printf("threads=%d reps=%d (median GFLOP/s)\n", threads, reps);
    for (int si = 0; si < nshapes; si++) {
        const int64_t in = shapes[si][0], out = shapes[si][1];
        float *x = alloc_fill((size_t)(rows * in), 1), *w = alloc_fill((size_t)(out * in), 2);
        float *dy = alloc_fill((size_t)(rows * out), 3), *y = alloc_fill((size_t)(rows * out), 4);
        float *dx = alloc_fill((size_t)(rows * in), 5), *dw = alloc_fill((size_t)(out * in), 6);
        if (!x || !w || !dy || !y || !dx || !dw) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        for (int f = 0; f < 3; f++) {
            problem p;
            if (f == 0) p = (problem){0, 1, rows, out, in, in, in, out, 0.0f, x, w, y};
            else if (f == 1) p = (problem){0, 0, rows, in, out, out, in, in, 0.0f, dy, w, dx};
            else p = (problem){1, 0, out, in, rows, out, in, in, 1.0f, dy, x, dw};
            const double flop = 2.0 * (double)p.m * (double)p.n * (double)p.k;
            double to[101], tr[101];
            run(&p, 1, threads); /* warm-up: pages, packing buffers, thread pool */
            run(&p, 0, threads);
            for (int r = 0; r < reps; r++) {
                const int ref_first = r & 1;
                const double t0 = now();
                run(&p, !ref_first, threads);
                const double t1 = now();
                run(&p, ref_first, threads);
                const double t2 = now();
                to[r] = ref_first ? t2 - t1 : t1 - t0;
                tr[r] = ref_first ? t1 - t0 : t2 - t1;
            }
            const double go = flop / median(to, reps) * 1e-9, gr = flop / median(tr, reps) * 1e-9;
            char name[64];
            snprintf(name, sizeof name, "gemm_%s_%lldx%lldx%lld", forms[f], (long long)p.m, (long long)p.n,
                     (long long)p.k);
            printf("%-26s rlfr %8.2f  cblas_sgemm %8.2f GFLOP/s\n", name, go, gr);
            snprintf(lines[nlines++], sizeof lines[0], "bench %s rlfr=%.2f reference=%.2f unit=GFLOP/s ratio=%.3f",
                     name, go, gr, go / gr);
        }
        rl_free_aligned(x); rl_free_aligned(w); rl_free_aligned(dy);
        rl_free_aligned(y); rl_free_aligned(dx); rl_free_aligned(dw);
    }
    for (int i = 0; i < nlines; i++) puts(lines[i]);
    return 0;
}
