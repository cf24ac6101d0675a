/* One thread count for everything: our OpenMP loops and OpenBLAS's GEMM.
 * Debian's libopenblas-openmp runs on libgomp's pool, so setting both to the
 * same n keeps the two from spinning against each other. */
#ifndef RL_THREADS_H
#define RL_THREADS_H

#include <stddef.h>
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

/* Cost of item i (any non-negative unit) for rl_parallel_for_balanced;
 * NULL cost: every item the same (rl_parallel_for). */
typedef double (*rl_cost_fn)(const void *ctx, int64_t i);

/* The same for items of uneven cost: still one contiguous range per thread,
 * cut where the running cost crosses t/threads of the total (an item goes to
 * the thread whose share holds the middle of its cost). Contiguous rather
 * than handed out one at a time (schedule(dynamic)): on this machine's two
 * cores a row written by one core and read by the other costs a cache-line
 * transfer, and the row-split kernels before and after (GEMMs, norms) leave
 * thread t the rows of the first t/threads of the batch. Attention's
 * backward ran 1.4x faster cut this way than handed out dynamically. */
void rl_parallel_for_balanced(int64_t n, int threads, rl_cost_fn cost, rl_range_fn fn, void *ctx);

/* cblas_sgemm (row-major, alpha 1) with the rows of C split into one
 * contiguous slice per thread, each slice a single-threaded OpenBLAS call
 * (OpenBLAS runs single-threaded inside a parallel region). Why: OpenBLAS's
 * own level-3 threading synchronises its threads by spinning on
 * sched_yield(), ~7000 system calls per training step of the tiny policy,
 * expensive in a VM; a row split needs one fork/join. The same thread count
 * gives the same bits; another count may round differently (OpenBLAS's edge
 * tiles sum in another order, as with its own threading). trans_a: A is stored [K, M] (lda its row stride), else [M, K];
 * likewise trans_b for B [N, K] / [K, N]. Products under ~4 MFLOP per
 * thread stay one call. */
void rl_gemm_rows(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads);

/* The same with a prologue: prologue(ctx, m0, m1) runs on the thread that
 * then multiplies rows [m0, m1) of C, just before its product, to prepare
 * those rows (seed a bias, copy a residual). Done as a serial pass instead,
 * the rows would be pulled into one core's cache and back out by the other
 * for its product. */
typedef void (*rl_rows_fn)(void *ctx, int64_t m0, int64_t m1);
void rl_gemm_rows_prep(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads,
                       rl_rows_fn prologue, void *ctx);

/* Weight gradient of a linear layer y = x W^T + b over K rows (tokens):
 * dW[out, in] += dy[K, out]^T x[K, in], and db[out] += the column sums of dy
 * when db is not NULL. The K rows are split over the threads rather than
 * the rows of dW: thread t multiplies its own slice of tokens, the rows the
 * row-split kernels before it left in its core's cache (a dW-row split
 * makes every thread read every token, half of them from the other core),
 * into a partial (thread 0's straight into dW), and the partials are then
 * added into dW in thread order, the elements split over the threads. The
 * bias sums split the columns, each summed over the rows in order (the same
 * bits on any thread count). partial holds rl_gemm_wgrad_scratch_floats()
 * floats; with NULL, or work too small to split, it is one rl_gemm_rows
 * call. The same thread count gives the same bits. */
size_t rl_gemm_wgrad_scratch_floats(int64_t out, int64_t in, int threads);
void rl_gemm_wgrad(int64_t out, int64_t in, int64_t K, const float *dy, const float *x, float *dw, float *db,
                   float *partial, int threads);

#endif
