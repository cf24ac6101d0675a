/* Philox4x32-10 and the fills built on it. Constants and round structure are
 * those published with Random123 (multipliers 0xD2511F53/0xCD9E8D57, Weyl key
 * increments 0x9E3779B9/0xBB67AE85, 10 rounds). */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* Fills below this size run on one thread (the split never changes values). */
#define PAR_MIN 8192

void rl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void rl_philox(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                             (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    rl_philox4x32_10(ctr, key, out);
}

/* splitmix64's finaliser: a bijective mixer with full avalanche. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rl_rng_stream_hash(const uint64_t *v, int n) {
    /* Folding the length in first keeps (a) and (a, 0) apart. */
    uint64_t h = mix64(0x6A09E667F3BCC909ull + (uint64_t)n);
    for (int i = 0; i < n; i++) h = mix64(h + 0x9E3779B97F4A7C15ull + mix64(v[i]));
    return h;
}

uint64_t rl_rng_stream2(uint64_t a, uint64_t b) {
    const uint64_t v[2] = {a, b};
    return rl_rng_stream_hash(v, 2);
}

uint64_t rl_rng_stream3(uint64_t a, uint64_t b, uint64_t c) {
    const uint64_t v[3] = {a, b, c};
    return rl_rng_stream_hash(v, 3);
}

/* Box-Muller on one block: u1 in (0, 1] from lane 0/2 (never log(0)), u2 in
 * [0, 1) from lane 1/3; double precision so the tails are right. */
static void box_muller4(const uint32_t u[4], float z[4]) {
    for (int p = 0; p < 2; p++) {
        double u1 = ((double)u[2 * p] + 1.0) * (1.0 / 4294967296.0);
        double u2 = (double)u[2 * p + 1] * (1.0 / 4294967296.0);
        double rad = sqrt(-2.0 * log(u1));
        double th = 6.283185307179586 * u2;
        z[2 * p] = (float)(rad * cos(th));
        z[2 * p + 1] = (float)(rad * sin(th));
    }
}

/* Element j of the stream maps to lane j%4 of block j/4. Tasks are ranges of
 * whole output elements; each range recomputes the block it starts inside. */
void rl_rng_uniform_range_fill(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream,
                               uint64_t offset) {
    const float span = hi - lo;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i0 = 0; i0 < n; i0 += 1024) {
        size_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        uint32_t u[4];
        uint64_t have = UINT64_MAX;
        for (size_t i = i0; i < i1; i++) {
            uint64_t j = offset + i;
            if (j >> 2 != have) { have = j >> 2; rl_philox(seed, stream, have, u); }
            x[i] = lo + span * rl_u32_to_unit(u[j & 3]);
        }
    }
}

void rl_rng_uniform_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    rl_rng_uniform_range_fill(x, n, 0.0f, 1.0f, seed, stream, offset);
}

void rl_rng_normal_scaled_fill(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream,
                               uint64_t offset) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i0 = 0; i0 < n; i0 += 1024) {
        size_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
        uint32_t u[4];
        float z[4];
        uint64_t have = UINT64_MAX;
        for (size_t i = i0; i < i1; i++) {
            uint64_t j = offset + i;
            if (j >> 2 != have) { have = j >> 2; rl_philox(seed, stream, have, u); box_muller4(u, z); }
            x[i] = mean + std * z[j & 3];
        }
    }
}

void rl_rng_normal_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    rl_rng_normal_scaled_fill(x, n, 0.0f, 1.0f, seed, stream, offset);
}

void rl_rng_init(rl_rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->counter = 0;
    r->cached_block = 0;
    r->have_block = 0;
}

void rl_rng_seek(rl_rng *r, uint64_t counter) {
    r->counter = counter;
    r->have_block = 0;
}

uint32_t rl_rng_u32(rl_rng *r) {
    uint64_t b = r->counter >> 2;
    if (!r->have_block || r->cached_block != b) {
        rl_philox(r->seed, r->stream, b, r->buf);
        r->cached_block = b;
        r->have_block = 1;
    }
    return r->buf[r->counter++ & 3];
}

uint64_t rl_rng_u64(rl_rng *r) {
    uint64_t lo = rl_rng_u32(r);
    return lo | ((uint64_t)rl_rng_u32(r) << 32);
}

float rl_rng_uniform(rl_rng *r) { return rl_u32_to_unit(rl_rng_u32(r)); }

double rl_rng_uniform_double(rl_rng *r) { return (double)(rl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float rl_rng_normal(rl_rng *r) {
    /* One Box-Muller pair per draw (the sine half is dropped): simpler state,
       and scalar draws are never hot. */
    double u1 = ((double)rl_rng_u32(r) + 1.0) * (1.0 / 4294967296.0);
    double u2 = (double)rl_rng_u32(r) * (1.0 / 4294967296.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t rl_rng_below(rl_rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* Rejection of the top partial range removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = rl_rng_u64(r);
    while (v >= limit);
    return v % n;
}

void rl_rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t stream) {
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    if (n < 2) return;
    rl_rng r;
    rl_rng_init(&r, seed, stream);
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t k = (uint32_t)rl_rng_below(&r, (uint64_t)i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[k];
        perm[k] = t;
    }
}
