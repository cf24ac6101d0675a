/* Vision-encoder kernels: LayerNorm, erf GELU, 2-D rotary embedding and
 * bidirectional attention within segments (see kernels_vit.h).
 *
 * Reductions run per row (LayerNorm statistics, softmax) or per block of 64
 * columns with the rows in order (LayerNorm weight/bias gradients), and the
 * attention splits its work over (segment, head) with each task owning the
 * rows and columns it writes: results do not depend on the thread count
 * (up to OpenBLAS inside a GEMM). The causal kernels of kernels_attn.h cannot
 * serve here: their key range is tied to the query's position. */
#include "kernels_vit.h"

#include <math.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "kernels_attn.h" /* rl_expf */

#define PAR_MIN 32768

void rl_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                          int64_t n, int64_t c, float eps) {
#pragma omp parallel for schedule(static) if (n * c > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * c;
        float *yr = out + r * c;
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < c; j++) s += xr[j];
        const double mu = s / (double)c;
        for (int64_t j = 0; j < c; j++) {
            double d = xr[j] - mu;
            s2 += d * d;
        }
        const float m = (float)mu, rs = (float)(1.0 / sqrt(s2 / (double)c + (double)eps));
        for (int64_t j = 0; j < c; j++) {
            float h = (xr[j] - m) * rs;
            yr[j] = h * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
        }
        mean[r] = m;
        rstd[r] = rs;
    }
}

void rl_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                           const float *mean, const float *rstd, int64_t n, int64_t c) {
    if (dx) {
#pragma omp parallel for schedule(static) if (n * c > PAR_MIN)
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x + r * c, *gr = dout + r * c;
            const float m = mean[r], rs = rstd[r];
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < c; j++) {
                double g = (double)gr[j] * (w ? w[j] : 1.0f);
                sg += g;
                sgx += g * (double)((xr[j] - m) * rs);
            }
            const float mg = (float)(sg / (double)c), mgx = (float)(sgx / (double)c);
            float *dr = dx + r * c;
            for (int64_t j = 0; j < c; j++) {
                float g = gr[j] * (w ? w[j] : 1.0f), h = (xr[j] - m) * rs;
                dr[j] += rs * (g - mg - h * mgx);
            }
        }
    }
    if (!dw && !db) return;
    const int64_t nblk = (c + 63) / 64;
#pragma omp parallel for schedule(static) if (n * c > PAR_MIN)
    for (int64_t bk = 0; bk < nblk; bk++) {
        const int64_t j0 = bk * 64, j1 = j0 + 64 < c ? j0 + 64 : c;
        double aw[64] = {0}, ab[64] = {0};
        for (int64_t r = 0; r < n; r++) {
            const float *xr = x + r * c, *gr = dout + r * c;
            const float m = mean[r], rs = rstd[r];
            for (int64_t j = j0; j < j1; j++) {
                aw[j - j0] += (double)gr[j] * (double)((xr[j] - m) * rs);
                ab[j - j0] += gr[j];
            }
        }
        for (int64_t j = j0; j < j1; j++) {
            if (dw) dw[j] += (float)aw[j - j0];
            if (db) db[j] += (float)ab[j - j0];
        }
    }
}

void rl_gelu_forward(float *out, const float *x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void rl_gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        const float cdf = 0.5f * (1.0f + erff(xi * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * expf(-0.5f * xi * xi);
        dx[i] += dout[i] * (cdf + xi * pdf);
    }
}

void rl_vit_rope_table(float *cos_t, float *sin_t, const int32_t *hw, int64_t n, int64_t head_dim, double theta) {
    const int64_t half = head_dim / 2, quarter = head_dim / 4;
    for (int64_t i = 0; i < quarter; i++) {
        /* Qwen2-VL builds inv_freq in f32 over dim = head_dim/2 (arange(0, dim, 2)/dim)
           and multiplies by the f32 position: same rounding here. */
        const float inv = (float)(1.0 / pow(theta, (double)(2 * i) / (double)half));
        for (int64_t r = 0; r < n; r++) {
            const float ah = (float)hw[2 * r] * inv, aw = (float)hw[2 * r + 1] * inv;
            cos_t[r * half + i] = cosf(ah);
            sin_t[r * half + i] = sinf(ah);
            cos_t[r * half + quarter + i] = cosf(aw);
            sin_t[r * half + quarter + i] = sinf(aw);
        }
    }
}

void rl_vit_rope_apply(float *x, int64_t rows, int64_t ld, int64_t n_heads, int64_t head_dim, const float *cos_t,
                       const float *sin_t, int inverse, int threads) {
    const int64_t half = head_dim / 2;
    const float sgn = inverse ? -1.0f : 1.0f;
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * n_heads * head_dim > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *c = cos_t + r * half, *s = sin_t + r * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *xh = x + r * ld + h * head_dim;
            for (int64_t i = 0; i < half; i++) {
                const float a = xh[i], b = xh[i + half], si = sgn * s[i];
                xh[i] = a * c[i] - b * si;
                xh[i + half] = b * c[i] + a * si;
            }
        }
    }
}

size_t rl_vit_attn_scratch_floats(int64_t max_len, int threads) {
    if (threads < 1) threads = 1;
    if (max_len < 1) max_len = 1;
    /* probabilities and their gradient: two [max_len, max_len] blocks per thread */
    return 2 * (size_t)max_len * (size_t)max_len * (size_t)threads;
}

static inline float dotf(const float *a, const float *b, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void rl_vit_attn_forward(const float *q, const float *k, const float *v, int64_t ld, float *o, float *lse,
                         const int64_t *seg, int64_t n_seg, int64_t n_heads, int64_t head_dim, int64_t max_len,
                         float *scratch, int threads) {
    const int64_t H = n_heads, hd = head_dim, os = H * hd, items = n_seg * H;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t per_thread = 2 * (size_t)(max_len < 1 ? 1 : max_len) * (size_t)(max_len < 1 ? 1 : max_len);
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t s0 = seg[it / H], len = seg[it / H + 1] - s0, h = it % H;
        if (len <= 0) continue;
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread;
        const float *qh = q + s0 * ld + h * hd, *kh = k + s0 * ld + h * hd, *vh = v + s0 * ld + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)hd, scale, qh, (int)ld, kh,
                    (int)ld, 0.0f, S, (int)len);
        for (int64_t i = 0; i < len; i++) {
            float *sr = S + i * len, mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < len; j++) mx = sr[j] > mx ? sr[j] : mx;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < len; j++) {
                sr[j] = rl_expf(sr[j] - mx);
                sum += sr[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < len; j++) sr[j] *= inv;
            lse[(s0 + i) * H + h] = mx + logf(sum);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)hd, (int)len, 1.0f, S, (int)len, vh,
                    (int)ld, 0.0f, o + s0 * os + h * hd, (int)os);
    }
}

void rl_vit_attn_backward(const float *q, const float *k, const float *v, int64_t ld, const float *o,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, const int64_t *seg,
                          int64_t n_seg, int64_t n_heads, int64_t head_dim, int64_t max_len, float *scratch,
                          int threads) {
    const int64_t H = n_heads, hd = head_dim, os = H * hd, items = n_seg * H;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t ml = max_len < 1 ? 1 : max_len;
    const size_t per_thread = 2 * (size_t)ml * (size_t)ml;
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        const int64_t s0 = seg[it / H], len = seg[it / H + 1] - s0, h = it % H;
        if (len <= 0) continue;
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread, *dP = P + (size_t)ml * (size_t)ml;
        const float *qh = q + s0 * ld + h * hd, *kh = k + s0 * ld + h * hd, *vh = v + s0 * ld + h * hd;
        const float *oh = o + s0 * os + h * hd, *doh = dout + s0 * os + h * hd;
        /* P from the saved log-sum-exp; dP = dO V^T; dS = P (dP - rowsum(dO o O)) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)hd, scale, qh, (int)ld, kh,
                    (int)ld, 0.0f, P, (int)len);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)len, (int)len, (int)hd, 1.0f, doh, (int)os, vh,
                    (int)ld, 0.0f, dP, (int)len);
        for (int64_t i = 0; i < len; i++) {
            float *pr = P + i * len, *dpr = dP + i * len;
            const float l = lse[(s0 + i) * H + h], D = dotf(doh + i * os, oh + i * os, hd);
#pragma omp simd
            for (int64_t j = 0; j < len; j++) {
                const float p = rl_expf(pr[j] - l);
                pr[j] = p;
                dpr[j] = p * (dpr[j] - D) * scale; /* the score scale folded in */
            }
        }
        /* dQ = dS K; dK = dS^T Q; dV = P^T dO (written: each task owns its rows and head) */
        if (dq)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)len, (int)hd, (int)len, 1.0f, dP, (int)len,
                        kh, (int)ld, 0.0f, dq + s0 * ld + h * hd, (int)ld);
        if (dk)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)len, (int)hd, (int)len, 1.0f, dP, (int)len, qh,
                        (int)ld, 0.0f, dk + s0 * ld + h * hd, (int)ld);
        if (dv)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)len, (int)hd, (int)len, 1.0f, P, (int)len, doh,
                        (int)os, 0.0f, dv + s0 * ld + h * hd, (int)ld);
    }
}
