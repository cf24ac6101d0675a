/* Philox4x32-10 against the Random123 known-answer vectors, statistics of the
 * fills, independence from the thread count, resumability from a counter, and
 * the sequential generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "testlib.h"
#include "threads.h"

static void test_kat(void) {
    /* Random123 kat_vectors, "philox4x32 10": counter[4], key[2] -> output[4]. */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        rl_philox4x32_10(kat[i], kat[i] + 4, out);
        CHECK_MSG(memcmp(out, kat[i] + 6, sizeof out) == 0, "KAT %d: %08x %08x %08x %08x", i, out[0], out[1],
                  out[2], out[3]);
    }
    /* The (seed, stream, block) packing: key = seed, counter = (block, stream). */
    uint32_t a[4];
    rl_philox(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, a);
    CHECK(memcmp(a, kat[2] + 6, sizeof a) == 0);
}

static void test_stats(void) {
    const size_t n = 200000;
    float *x = malloc(n * sizeof(float));
    rl_rng_uniform_fill(x, n, 42, 7, 0);
    double s = 0, s2 = 0, mn = 1, mx = 0;
    for (size_t i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; mn = fmin(mn, x[i]); mx = fmax(mx, x[i]); }
    double mean = s / n, var = s2 / n - mean * mean;
    /* Standard errors: mean 0.00065, var ~0.0002; allow ~5 sigma. */
    CHECK_MSG(fabs(mean - 0.5) < 0.004, "uniform mean %.5f", mean);
    CHECK_MSG(fabs(var - 1.0 / 12) < 0.001, "uniform var %.5f", var);
    CHECK(mn >= 0.0 && mx < 1.0);

    rl_rng_normal_fill(x, n, 42, 8, 0);
    s = s2 = 0;
    double s3 = 0, s4 = 0;
    size_t beyond2 = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        s += v; s2 += v * v; s3 += v * v * v; s4 += v * v * v * v;
        beyond2 += fabs(v) > 2.0;
        finite &= isfinite(x[i]) != 0;
    }
    CHECK(finite);
    mean = s / n; var = s2 / n - mean * mean;
    CHECK_MSG(fabs(mean) < 0.012, "normal mean %.5f", mean);
    CHECK_MSG(fabs(var - 1.0) < 0.016, "normal var %.5f", var);
    CHECK_MSG(fabs(s3 / n) < 0.03, "normal skew %.5f", s3 / n);
    CHECK_MSG(fabs(s4 / n - 3.0) < 0.08, "normal kurtosis %.5f", s4 / n);
    /* P(|z| > 2) = 0.0455. */
    CHECK_MSG(fabs((double)beyond2 / n - 0.0455) < 0.003, "normal tail %.5f", (double)beyond2 / n);

    rl_rng_uniform_range_fill(x, 1000, -3.0f, 5.0f, 1, 2, 0);
    int in_range = 1;
    for (int i = 0; i < 1000; i++) in_range &= x[i] >= -3.0f && x[i] < 5.0f;
    CHECK(in_range);
    rl_rng_normal_scaled_fill(x, n, 2.0f, 0.5f, 1, 3, 0);
    s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    CHECK(fabs(s / n - 2.0) < 0.01);
    free(x);
}

static void test_threads_and_resume(void) {
    const size_t n = 100003; /* odd: tasks and blocks do not line up */
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    int saved = rl_get_threads();
    for (int kind = 0; kind < 2; kind++) {
        void (*fill)(float *, size_t, uint64_t, uint64_t, uint64_t) = kind ? rl_rng_normal_fill : rl_rng_uniform_fill;
        rl_set_threads(1);
        fill(a, n, 99, 5, 3);
        rl_set_threads(2);
        fill(b, n, 99, 5, 3);
        CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "fill %d differs between 1 and 2 threads", kind);
        /* Resume: the same stream in two pieces split at an unaligned point. */
        fill(b, 12345, 99, 5, 3);
        fill(b + 12345, n - 12345, 99, 5, 3 + 12345);
        CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "fill %d not resumable from a counter", kind);
        /* Another seed or stream changes the values. */
        fill(b, 64, 99, 6, 3);
        CHECK(memcmp(a, b, 64 * sizeof(float)) != 0);
        fill(b, 64, 98, 5, 3);
        CHECK(memcmp(a, b, 64 * sizeof(float)) != 0);
    }
    rl_set_threads(saved);
    free(a);
    free(b);
}

static void test_sequential(void) {
    rl_rng r;
    rl_rng_init(&r, 5, 11);
    float fill[10];
    rl_rng_uniform_fill(fill, 10, 5, 11, 0);
    int same = 1;
    for (int i = 0; i < 10; i++) same &= rl_rng_uniform(&r) == fill[i];
    CHECK_MSG(same, "sequential uniform draws differ from the fill");
    CHECK(r.counter == 10);

    /* Saving (seed, stream, counter) and seeking resumes the sequence exactly. */
    rl_rng_init(&r, 5, 11);
    for (int i = 0; i < 7; i++) rl_rng_u32(&r);
    uint64_t saved = r.counter;
    uint32_t next[5];
    for (int i = 0; i < 5; i++) next[i] = rl_rng_u32(&r);
    rl_rng q;
    rl_rng_init(&q, 5, 11);
    rl_rng_seek(&q, saved);
    same = 1;
    for (int i = 0; i < 5; i++) same &= rl_rng_u32(&q) == next[i];
    CHECK(same);

    /* Bounded integers: in range, and every value of a small range is hit
       about equally (chi-square with 9 dof, generous bound). */
    int counts[10] = {0}, bounded = 1;
    for (int i = 0; i < 20000; i++) {
        uint64_t v = rl_rng_below(&r, 10);
        bounded &= v < 10;
        counts[v < 10 ? v : 0]++;
    }
    CHECK(bounded);
    double chi = 0;
    for (int i = 0; i < 10; i++) chi += (counts[i] - 2000.0) * (counts[i] - 2000.0) / 2000.0;
    CHECK_MSG(chi < 40, "rl_rng_below chi-square %.1f", chi);
    CHECK(rl_rng_below(&r, 0) == 0);
    CHECK(rl_rng_below(&r, 1) == 0);

    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double v = rl_rng_normal(&r);
        s += v; s2 += v * v;
    }
    CHECK(fabs(s / 20000) < 0.04 && fabs(s2 / 20000 - 1) < 0.06);
    double d = rl_rng_uniform_double(&r);
    CHECK(d >= 0 && d < 1);
}

static void test_streams(void) {
    CHECK(rl_rng_stream3(1, 2, 3) != rl_rng_stream3(3, 2, 1));
    CHECK(rl_rng_stream3(1, 2, 3) != rl_rng_stream3(1, 2, 4));
    CHECK(rl_rng_stream2(0, 0) != rl_rng_stream3(0, 0, 0));
    CHECK(rl_rng_stream3(7, 8, 9) == rl_rng_stream3(7, 8, 9));
    uint64_t v[2] = {7, 8};
    CHECK(rl_rng_stream_hash(v, 2) == rl_rng_stream2(7, 8));
    /* Neighbouring steps differ in about half their bits. */
    uint64_t x = rl_rng_stream2(100, 1) ^ rl_rng_stream2(101, 1);
    int bits = __builtin_popcountll(x);
    CHECK_MSG(bits > 16 && bits < 48, "stream hash avalanche: %d bits", bits);
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    test_kat();
    test_stats();
    test_threads_and_resume();
    test_sequential();
    test_streams();
    return rl_test_finish("test_rng");
}
