/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
 *
 * A draw is a pure function of (seed, stream, counter): the 64-bit seed is the
 * Philox key, the 128-bit Philox counter is (counter lo, counter hi, stream lo,
 * stream hi). Element i of a bulk fill depends only on (seed, stream, offset+i),
 * so fills are identical for any thread count and can be resumed from a
 * counter. Streams separate independent uses (step, sample, purpose): derive
 * them with rl_rng_stream*. */
#ifndef RL_RNG_H
#define RL_RNG_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out = philox(ctr, key). */
void rl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The block at 64-bit block index `block` of (seed, stream). */
void rl_philox(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]);

/* Stream ids: a strong 64-bit hash of a list of integers (order matters), e.g.
 * rl_rng_stream3(step, sample, RL_PURPOSE_X). Distinct lists give unrelated streams. */
uint64_t rl_rng_stream_hash(const uint64_t *v, int n);
uint64_t rl_rng_stream2(uint64_t a, uint64_t b);
uint64_t rl_rng_stream3(uint64_t a, uint64_t b, uint64_t c);

/* Bulk fills. Uniform element j (j = offset + i) is u32 number j of the stream
 * (block j/4, lane j%4) mapped to [0, 1) with 24 bits. Normal element j comes
 * from block j/4: its two Box-Muller pairs give lanes (cos, sin, cos, sin). */
void rl_rng_uniform_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
void rl_rng_normal_fill(float *x, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
/* x = lo + (hi - lo) * U[0,1) and x = mean + std * N(0,1), same element mapping. */
void rl_rng_uniform_range_fill(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream,
                               uint64_t offset);
void rl_rng_normal_scaled_fill(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream,
                               uint64_t offset);

/* Maps for single draws. */
static inline float rl_u32_to_unit(uint32_t u) { return (float)(u >> 8) * (1.0f / 16777216.0f); }

/* A small sequential generator for scalar draws. Its whole state is
 * (seed, stream, counter): saving those three resumes it exactly. `counter`
 * counts u32 words consumed. */
typedef struct rl_rng {
    uint64_t seed, stream, counter;
    uint64_t cached_block;   /* block held in buf, valid when have_block */
    uint32_t buf[4];
    int have_block;
} rl_rng;

void     rl_rng_init(rl_rng *r, uint64_t seed, uint64_t stream);
/* Continue from a saved counter. */
void     rl_rng_seek(rl_rng *r, uint64_t counter);
uint32_t rl_rng_u32(rl_rng *r);
uint64_t rl_rng_u64(rl_rng *r);
float    rl_rng_uniform(rl_rng *r);      /* [0, 1) */
double   rl_rng_uniform_double(rl_rng *r); /* [0, 1), 53 bits */
float    rl_rng_normal(rl_rng *r);       /* N(0, 1) */
/* Uniform integer in [0, n) without modulo bias; 0 when n == 0. */
uint64_t rl_rng_below(rl_rng *r, uint64_t n);

/* perm = a uniformly random permutation of 0..n-1 (Fisher-Yates on the
   identity), drawn from stream `stream` of `seed`: the epoch shuffles of the
   datasets, reproducible from (seed, epoch) alone. */
void rl_rng_permutation(uint32_t *perm, uint32_t n, uint64_t seed, uint64_t stream);

#endif
