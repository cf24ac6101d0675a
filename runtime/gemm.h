/* Our own single-precision GEMM for the training matmuls.
 *
 * Why not only cblas_sgemm: the environment pins OpenBLAS to its Haswell
 * (AVX2) kernels, and OpenBLAS zeroes C in a separate pass when beta = 0.
 * This GEMM uses 512-bit FMAs where the compiler targets AVX-512, writes C
 * directly for beta = 0, and is deterministic in the thread count.
 *
 * Structure (Goto/BLIS): op(A) and op(B) blocks are packed into micro-panels
 * (transposition handled in packing), and a register-tiled micro-kernel
 * computes MR x NR tiles of C. */
#ifndef RL_GEMM_H
#define RL_GEMM_H

#include <stdint.h>

/* C[M,N] = beta*C + op(A)[M,K] op(B)[K,N]; row-major; op(X) = X or X^T
 * (trans_a: A is stored [K,M] with row stride lda; else [M,K]; likewise
 * trans_b: B is stored [N,K] with row stride ldb; else [K,N]).
 * beta is 0 or 1 (beta 0: C is written without being read, so it may hold
 * garbage/NaN; any beta other than 0 is treated as 1).
 * threads: at most this many OpenMP threads (1: runs on the caller; inside an
 * enclosing parallel region it runs serially). Deterministic: results do not
 * depend on the thread count (each C element is summed in a fixed order).
 * That holds for the AVX-512 and AVX2+FMA kernels; a build for a CPU with
 * neither calls cblas_sgemm, whose results may depend on its thread count.
 * M, N or K = 0 are fine (K = 0: C = beta*C). Negative sizes, or leading
 * dimensions shorter than a stored row, make the call do nothing (callers
 * validate shapes first, e.g. with rl_kernel_dims_ok).
 * No allocation per call in the steady state: packing buffers are per thread,
 * grown on demand and kept; if growing one fails, that thread's share of the
 * product is computed by cblas_sgemm instead. */
void rl_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int threads);

/* Frees the calling thread's packing buffer (the next call grows it again).
 * For tools that check for leaks at exit; never needed for correctness. */
void rl_sgemm_release_thread_buffer(void);

#endif
