/* rl_parallel_for_balanced (runtime/threads.h): on 1-4 threads, for cost
 * lists that are even, uneven, partly zero, all zero, or shorter than the
 * thread count, every item is run exactly once, each thread gets one
 * contiguous range (in thread order), and no thread's range costs more than
 * its share of the total plus one item (the cut can only miss by the item
 * that straddles it). */
#include <omp.h>
#include <string.h>

#include "testlib.h"
#include "threads.h"

#define MAX_ITEMS 64
#define MAX_THREADS 4

typedef struct job {
    const double *cost;
    int runs[MAX_ITEMS];     /* how often item i was run */
    int slot_of[MAX_ITEMS];  /* the slot that ran it */
    int64_t lo[MAX_THREADS], hi[MAX_THREADS];
    int calls[MAX_THREADS];
} job;

static double cost_of(const void *ctx, int64_t i) { return ((const job *)ctx)->cost[i]; }

static void run_range(void *ctx, int64_t lo, int64_t hi, int slot) {
    job *j = ctx; /* each slot writes only its own entries and its own items */
    j->lo[slot] = lo, j->hi[slot] = hi;
    j->calls[slot]++;
    for (int64_t i = lo; i < hi; i++) j->runs[i]++, j->slot_of[i] = slot;
}

static void check(const char *name, const double *cost, int64_t n, int threads) {
    job j;
    memset(&j, 0, sizeof j);
    j.cost = cost;
    rl_parallel_for_balanced(n, threads, cost_of, run_range, &j);
    double total = 0, biggest = 0;
    for (int64_t i = 0; i < n; i++) {
        total += cost[i];
        biggest = cost[i] > biggest ? cost[i] : biggest;
        CHECK_MSG(j.runs[i] == 1, "%s, %d threads: item %lld run %d times", name, threads, (long long)i, j.runs[i]);
    }
    for (int64_t i = 1; i < n; i++)
        CHECK_MSG(j.slot_of[i] >= j.slot_of[i - 1], "%s, %d threads: item %lld on slot %d after slot %d", name, threads,
                  (long long)i, j.slot_of[i], j.slot_of[i - 1]);
    const int used = threads < n ? threads : (int)n;
    for (int t = 0; t < MAX_THREADS; t++) {
        CHECK_MSG(j.calls[t] <= 1, "%s, %d threads: slot %d called %d times", name, threads, t, j.calls[t]);
        if (!j.calls[t]) continue;
        double share = 0;
        for (int64_t i = j.lo[t]; i < j.hi[t]; i++) share += cost[i];
        const double limit = threads > 1 ? total / used + biggest : total;
        CHECK_MSG(share <= limit + 1e-9, "%s, %d threads: slot %d holds cost %g of %g", name, threads, t, share, total);
    }
    if (threads > 1 && n >= threads && total > 0 && omp_get_max_threads() >= threads) {
        /* with even costs every thread gets work */
        int even = 1;
        for (int64_t i = 1; i < n; i++) even &= cost[i] == cost[0];
        if (even)
            for (int t = 0; t < threads; t++)
                CHECK_MSG(j.calls[t] == 1, "%s, %d threads: slot %d got nothing", name, threads, t);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    omp_set_dynamic(0);
    double even[32], ramp[40], zeros[20], spiky[17], some_zero[24], pair[2];
    for (int i = 0; i < 32; i++) even[i] = 3.0;
    for (int i = 0; i < 40; i++) ramp[i] = (double)(i + 1) * (i + 1); /* causal-attention-like growth */
    for (int i = 0; i < 20; i++) zeros[i] = 0.0;
    for (int i = 0; i < 17; i++) spiky[i] = i == 5 ? 100.0 : 1.0;
    for (int i = 0; i < 24; i++) some_zero[i] = i % 3 ? 0.0 : 2.0 + i;
    pair[0] = 1.0, pair[1] = 7.0;
    for (int threads = 1; threads <= MAX_THREADS; threads++) {
        check("even", even, 32, threads);
        check("ramp", ramp, 40, threads);
        check("all zero", zeros, 20, threads);
        check("one spike", spiky, 17, threads);
        check("every third item", some_zero, 24, threads);
        check("two items", pair, 2, threads);
        check("one item", pair + 1, 1, threads);
        /* rl_parallel_for: no cost function, the even split */
        job j;
        memset(&j, 0, sizeof j);
        rl_parallel_for(31, threads, run_range, &j);
        for (int64_t i = 0; i < 31; i++)
            CHECK_MSG(j.runs[i] == 1 && (i == 0 || j.slot_of[i] >= j.slot_of[i - 1]),
                      "rl_parallel_for, %d threads: item %lld", threads, (long long)i);
        for (int t = 0; t < threads && omp_get_max_threads() >= threads; t++)
            CHECK_MSG(j.calls[t] == 1 && j.hi[t] - j.lo[t] >= 31 / threads && j.hi[t] - j.lo[t] <= 31 / threads + 1,
                      "rl_parallel_for, %d threads: slot %d holds [%lld, %lld)", threads, t, (long long)j.lo[t],
                      (long long)j.hi[t]);
    }
    return rl_test_finish("test_parallel_balanced");
}
