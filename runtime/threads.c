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
