/* Fused LM head: logits of `chunk` rows at a time (one GEMM), then per row
 * the log-sum-exp, the target's log-probability and the full-vocabulary
 * entropy. Backward recomputes the chunk's logits instead of keeping
 * [rows, vocab] alive: only lse and entropy per row are saved. When one
 * chunk holds every row, a caller may keep that chunk from the forward to
 * the backward and skip the recomputation (logits_kept).
 *
 * With p = softmax(z), H = -sum p log p:
 *   d logp_t / dz_j = [j == t] - p_j
 *   d H / dz_j      = -p_j (log p_j + H)                                      */
#include "kernels_attn.h"

#include <math.h>
#include <string.h>

#include "threads.h"

static void chunk_logits(const float *x, const float *w, int64_t c, int64_t d, int64_t vocab, float *z,
                         int threads) {
    rl_gemm_rows(0, 1, c, vocab, d, x, d, w, d, 0.0f, z, vocab, threads);
}

void rl_lmhead_forward(const float *x, const float *w, int64_t rows, int64_t d, int64_t vocab,
                       const int32_t *target, int64_t chunk, float *scratch, float *logp, float *ent,
                       float *lse, int threads) {
    if (threads < 1) threads = 1;
    if (chunk < 1) chunk = 1;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t c = rows - r0 < chunk ? rows - r0 : chunk;
        chunk_logits(x + r0 * d, w, c, d, vocab, scratch, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < c; i++) {
            const int64_t r = r0 + i;
            const float *z = scratch + i * vocab;
            if (target[r] == -2) {
                logp[r] = 0;
                ent[r] = 0;
                lse[r] = 0;
                continue;
            }
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j < vocab; j++) mx = z[j] > mx ? z[j] : mx;
            /* Vector partial sums (fixed order for a given build, whatever the
               thread count); terms are in (0, 1], so f32 partials are ample. */
            float sumf = 0, szf = 0;
#pragma omp simd reduction(+ : sumf, szf)
            for (int64_t j = 0; j < vocab; j++) {
                float e = rl_expf(z[j] - mx);
                sumf += e;
                szf += e * (z[j] - mx);
            }
            double sum = sumf, sz = szf;
            double l = log(sum);
            lse[r] = (float)(mx + l);
            /* H = lse - E[z] = log(sum) - E[z - mx] */
            ent[r] = (float)(l - sz / sum);
            logp[r] = target[r] >= 0 ? (float)((z[target[r]] - mx) - l) : 0.0f;
        }
    }
}

void rl_lmhead_backward(const float *x, const float *w, int64_t rows, int64_t d, int64_t vocab,
                        const int32_t *target, int64_t chunk, float *scratch, int logits_kept,
                        const float *lse, const float *ent, const float *glogp, const float *gent, float *dx,
                        float *dw, int threads) {
    if (threads < 1) threads = 1;
    if (chunk < 1) chunk = 1;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t c = rows - r0 < chunk ? rows - r0 : chunk;
        if (!(logits_kept && rows <= chunk)) chunk_logits(x + r0 * d, w, c, d, vocab, scratch, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < c; i++) {
            const int64_t r = r0 + i;
            float *z = scratch + i * vocab;
            float gl = (glogp && target[r] >= 0) ? glogp[r] : 0.0f;
            float ge = (gent && target[r] != -2) ? gent[r] : 0.0f;
            if (gl == 0.0f && ge == 0.0f) {
                memset(z, 0, (size_t)vocab * sizeof(float));
                continue;
            }
            const float l = lse[r], H = ent[r];
#pragma omp simd
            for (int64_t j = 0; j < vocab; j++) {
                float lp = z[j] - l, p = rl_expf(lp);
                z[j] = -gl * p - ge * p * (lp + H);
            }
            if (target[r] >= 0) z[target[r]] += gl;
        }
        rl_gemm_rows(0, 0, c, d, vocab, scratch, vocab, w, d, 0.0f, dx + r0 * d, d, threads);
        rl_gemm_rows(1, 0, vocab, d, c, scratch, vocab, x + r0 * d, d, 1.0f, dw, d, threads);
    }
}
