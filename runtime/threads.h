/* One thread count for everything: our OpenMP loops and OpenBLAS's GEMM.
 * Debian's libopenblas-openmp runs on libgomp's pool, so setting both to the
 * same n keeps the two from spinning against each other. */
#ifndef RL_THREADS_H
#define RL_THREADS_H

#include <stdint.h>

/* n <= 0 means the number of available processors. */
void rl_set_threads(int n);
int  rl_get_threads(void);

/* fn(ctx, lo, hi, slot) over [lo, hi) ranges that together cover [0, n)
 * once; slot in [0, threads) names the caller's per-thread scratch (0 on the
 * serial path: use it, not omp_get_thread_num(), which is the enclosing
 * team's number when called from inside a parallel region). */
typedef void (*rl_range_fn)(void *ctx, int64_t lo, int64_t hi, int slot);

/* Runs fn over [0, n) split into `threads` contiguous ranges, one per
 * thread, or calls fn(ctx, 0, n, 0) directly when threads <= 1 or the caller is
 * already inside a parallel region. Why not `omp parallel if (...)`: libgomp
 * builds a team even for a region whose `if` is false (~1.4 us, ~3 us when
 * nested), and a decoding step calls ~15 kernels per layer, one sequence
 * partition per thread. Callers pass threads = 1 for work too small to pay
 * for a fork/join. */
void rl_parallel_for(int64_t n, int threads, rl_range_fn fn, void *ctx);

/* The same with items handed out one at a time (schedule(dynamic, 1)), for
 * items of uneven cost; fn is called with hi = lo + 1. */
void rl_parallel_for_dynamic(int64_t n, int threads, rl_range_fn fn, void *ctx);

#endif
