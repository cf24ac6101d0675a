/* Matmul throughput of the kernel layer against raw cblas_sgemm, on GEMM
 * shapes typical of the models (rows x in x out of a linear layer: the tiny
 * policy's attention projections, and a Qwen2-0.5B MLP). Both sides run on 2
 * threads; rlfr and reference repetitions are interleaved so machine noise
 * hits both alike; medians are reported. The rlfr side includes the bias
 * (forward: bias rows seeded before the GEMM; backward: the bias gradient),
 * which the raw GEMM reference does not do.
 *   build/bench/bench_matmul [reps] [threads]   (defaults 9 and 2)
 * Ends with one line per workload:
 *   bench WORKLOAD rlfr=X reference=Y unit=GFLOP/s ratio=R   (R > 1: rlfr faster) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "kernels.h"
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

typedef struct shape { int64_t m, k, n; } shape; /* rows, in features, out features */

typedef struct bufs { float *x, *w, *b, *y, *dy, *dx, *dw, *db; } bufs;

/* mode 0: forward (linear with bias vs sgemm(N, T)); mode 1: backward to x, W
 * and b (rl_linear_backward vs the two sgemms it needs, beta = 1, plus no bias). */
static void run_rlfr(int mode, const shape *s, bufs *B) {
    if (mode == 0) rl_linear_forward(B->y, B->x, B->w, B->b, s->m, s->k, s->n);
    else rl_linear_backward(B->dx, B->dw, B->db, B->dy, B->x, B->w, s->m, s->k, s->n);
}

static void run_ref(int mode, const shape *s, bufs *B) {
    int m = (int)s->m, k = (int)s->k, n = (int)s->n;
    if (mode == 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, B->x, k, B->w, k, 0.0f, B->y, n);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, B->dy, n, B->w, k, 1.0f, B->dx, k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, B->dy, n, B->x, k, 1.0f, B->dw, k);
    }
}

static float *alloc_fill(size_t n, uint64_t stream) {
    float *p = rl_malloc_aligned(n * sizeof(float));
    if (p) rl_rng_uniform_range_fill(p, n, -1.0f, 1.0f, 7, stream, 0);
    return p;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 9;
    if (reps < 1) reps = 1;
    if (reps > 101) reps = 101;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    rl_set_threads(threads > 0 ? threads : 2);
    const shape shapes[] = {{2048, 128, 384}, {2048, 256, 768}, {512, 896, 4864}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    char lines[16][256];
    int nlines = 0;
    printf("threads=%d reps=%d (median GFLOP/s)\n", rl_get_threads(), reps);
    for (int si = 0; si < nshapes; si++) {
        const shape *s = &shapes[si];
        rl_error err = {0};
        if (rl_kernel_dims_ok("bench", s->m, s->n, s->k, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        size_t mk = (size_t)(s->m * s->k), nk = (size_t)(s->n * s->k), mn = (size_t)(s->m * s->n);
        bufs B = {alloc_fill(mk, 1), alloc_fill(nk, 2), alloc_fill((size_t)s->n, 3), alloc_fill(mn, 4),
                  alloc_fill(mn, 5), alloc_fill(mk, 6), alloc_fill(nk, 7), alloc_fill((size_t)s->n, 8)};
        if (!B.x || !B.w || !B.b || !B.y || !B.dy || !B.dx || !B.dw || !B.db) { fprintf(stderr, "out of memory\n"); return 1; }
        for (int mode = 0; mode < 2; mode++) {
            double flop = (mode == 0 ? 2.0 : 4.0) * (double)s->m * (double)s->k * (double)s->n;
            double tr[101], tf[101];
            run_rlfr(mode, s, &B); /* warm-up: pages, OpenBLAS buffers, thread pool */
            run_ref(mode, s, &B);
            for (int r = 0; r < reps; r++) {
                /* Alternate which side goes first, so neither always inherits
                   the other's cache state or a noisy moment. */
                int ref_first = r & 1;
                double t0 = now();
                if (ref_first) run_ref(mode, s, &B); else run_rlfr(mode, s, &B);
                double t1 = now();
                if (ref_first) run_rlfr(mode, s, &B); else run_ref(mode, s, &B);
                double t2 = now();
                tr[r] = ref_first ? t2 - t1 : t1 - t0;
                tf[r] = ref_first ? t1 - t0 : t2 - t1;
            }
            double gr = flop / median(tr, reps) * 1e-9, gf = flop / median(tf, reps) * 1e-9;
            char name[64];
            snprintf(name, sizeof name, "linear_%s_%lldx%lldx%lld", mode ? "bwd" : "fwd", (long long)s->m,
                     (long long)s->k, (long long)s->n);
            printf("%-28s rlfr %8.2f  cblas_sgemm %8.2f GFLOP/s\n", name, gr, gf);
            snprintf(lines[nlines++], sizeof lines[0], "bench %s rlfr=%.2f reference=%.2f unit=GFLOP/s ratio=%.3f",
                     name, gr, gf, gr / gf);
        }
        rl_free_aligned(B.x); rl_free_aligned(B.w); rl_free_aligned(B.b); rl_free_aligned(B.y);
        rl_free_aligned(B.dy); rl_free_aligned(B.dx); rl_free_aligned(B.dw); rl_free_aligned(B.db);
    }
    for (int i = 0; i < nlines; i++) puts(lines[i]);
    return 0;
}
