/* One thread count for everything: our OpenMP loops and OpenBLAS's GEMM.
 * Debian's libopenblas-openmp runs on libgomp's pool, so setting both to the
 * same n keeps the two from spinning against each other. */
#ifndef RL_THREADS_H
#define RL_THREADS_H

/* n <= 0 means the number of available processors. */
void rl_set_threads(int n);
int  rl_get_threads(void);

#endif
