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
