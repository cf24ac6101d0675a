/* Flow network throughput (vectors/s): a training step (flow-matching
 * forward, loss gradient, backward into all parameters) and scoring
 * (forward + per-row loss at a fixed t), on N latent vectors of size
 * d = width, as the flow node runs them. bench/flow.sh runs this next to
 * bench/flow_torch.py (the same network in PyTorch) and prints the ratios.
 *   bench_flow [width=128] [depth=4] [n=4096] [reps=10] [threads=2] [wall|cpu]
 * Prints: flow width=W depth=K n=N threads=P train=X score=Y (vectors/s, medians). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "flow.h"
#include "rng.h"
#include "threads.h"

/* Wall clock by default; with "cpu" as the 6th argument, process CPU time
 * (for comparing single-threaded work on a loaded machine, where wall time
 * mostly measures the other tenants). */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec t;
    clock_gettime(clock_id, &t);
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

static float *buf(size_t n) {
    float *p = rl_malloc_aligned((n ? n : 1) * sizeof(float));
    if (!p) { fprintf(stderr, "bench_flow: out of memory\n"); exit(1); }
    memset(p, 0, n * sizeof(float));
    return p;
}

int main(int argc, char **argv) {
    int64_t w = argc > 1 ? atoll(argv[1]) : 128, K = argc > 2 ? atoll(argv[2]) : 4;
    int64_t n = argc > 3 ? atoll(argv[3]) : 4096;
    int reps = argc > 4 ? atoi(argv[4]) : 10, threads = argc > 5 ? atoi(argv[5]) : 2;
    if (w < 1 || K < 1 || n < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bench_flow [width] [depth] [n] [reps] [threads]\n");
        return 2;
    }
    if (argc > 6 && strcmp(argv[6], "cpu") == 0) clock_id = CLOCK_PROCESS_CPUTIME_ID;
    rl_set_threads(threads);
    rl_error err = {0};
    rl_flow_config cfg = {.dim = w, .width = w, .depth = K};
    rl_flow *f = rl_flow_new(&cfg, 1, &err);
    if (!f) { fprintf(stderr, "bench_flow: %s\n", err.msg); return 1; }
    /* Trained-looking weights: zero-initialised layers would make parts of
       the work trivially sparse for nobody, but keep the numbers sane. */
    rl_rng_uniform_range_fill(f->params->data, f->params->numel, -0.05f, 0.05f, 3, 1, 0);
    size_t nd = (size_t)(n * w);
    float *x1 = buf(nd), *eps = buf(nd), *c = buf(nd), *xt = buf(nd), *v = buf(nd), *dv = buf(nd);
    float *t = buf((size_t)n), *tau = buf((size_t)n), *loss = buf((size_t)n), *coef = buf((size_t)n);
    float *acts = buf(rl_flow_acts_floats(&cfg, n)), *scratch = buf(rl_flow_scratch_floats(&cfg, n));
    rl_rng_normal_fill(x1, nd, 5, 1, 0);
    rl_rng_normal_fill(eps, nd, 5, 2, 0);
    rl_rng_normal_fill(c, nd, 5, 3, 0);
    rl_rng_normal_fill(t, (size_t)n, 5, 4, 0);
    for (int64_t i = 0; i < n; i++) {
        t[i] = 1.0f / (1.0f + expf(-t[i]));
        tau[i] = 0.25f * (float)(1 + i % 3);
        coef[i] = 1.0f / (float)n;
    }
    double *tt = calloc((size_t)reps, sizeof(double)), *ts = calloc((size_t)reps, sizeof(double));
    float *t08 = buf((size_t)n);
    for (int64_t i = 0; i < n; i++) t08[i] = 0.8f;
    for (int r = -2; r < reps; r++) { /* two warm-up rounds */
        double a = now();
        rl_flow_fm_forward(f, n, x1, eps, t, c, tau, xt, acts, v, loss);
        rl_flow_fm_dv(n, w, x1, eps, v, coef, dv);
        rl_params_zero_grad(f->params);
        rl_flow_backward(f, n, xt, t, c, tau, acts, dv, scratch, f->params->grad, NULL, NULL);
        double b = now();
        rl_flow_fm_forward(f, n, x1, eps, t08, c, tau, xt, acts, v, loss);
        double e = now();
        if (r >= 0) { tt[r] = b - a; ts[r] = e - b; }
    }
    double train = (double)n / median(tt, reps), score = (double)n / median(ts, reps);
    printf("flow width=%lld depth=%lld n=%lld threads=%d train=%.0f score=%.0f\n", (long long)w, (long long)K,
           (long long)n, threads, train, score);
    free(tt); free(ts);
    rl_free_aligned(x1); rl_free_aligned(eps); rl_free_aligned(c); rl_free_aligned(xt); rl_free_aligned(v);
    rl_free_aligned(dv); rl_free_aligned(t); rl_free_aligned(tau); rl_free_aligned(loss); rl_free_aligned(coef);
    rl_free_aligned(acts); rl_free_aligned(scratch); rl_free_aligned(t08);
    rl_flow_free(f);
    return 0;
}
