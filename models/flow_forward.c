/* Flow network forward and backward, on caller-provided buffers. */
#include <cblas.h>
#include <string.h>

#include "flow.h"
#include "kernels.h"
#include "kernels_flow.h"
#include "threads.h"

#define PAR_MIN 32768

/* Each activation gets a 16-float (64-byte) aligned slot so GEMM operands
 * start on cache lines. */
static size_t slot(int64_t n, int64_t cols) { return ((size_t)n * (size_t)cols + 15) & ~(size_t)15; }

/* One scalar embedder's activations. When the scalar takes few distinct
 * values over the batch (tau always: one per tapped layer; t when scoring)
 * the embedding MLP runs once per distinct value and its output e[U, w] is
 * gathered per row: ids[r] is the row's value index and ids[n] holds U
 * (0: one embedding per row, the training case where t is random). */
typedef struct emb_acts { float *emb, *a, *s, *e, *ids; } emb_acts;

typedef struct acts {
    emb_acts et, el;
    float *y, *sy, *mod;
    float *xp_final, *rstd_final, *hf;
} acts;

#define FLOW_MAX_UNIQUE 64

typedef struct block_acts { float *xp, *rstd, *hmod, *a1, *s1, *h2; } block_acts;

static int64_t mod_cols(const rl_flow_config *c) { return (3 * c->depth + 2) * c->width; }

static size_t block_floats(const rl_flow_config *c, int64_t n) {
    int64_t w = c->width;
    return slot(n, w) * 5 + slot(n, 1);
}

static size_t head_floats(const rl_flow_config *c, int64_t n) {
    int64_t w = c->width, F = RL_FLOW_FREQ_DIM;
    return 2 * (slot(n, F) + 3 * slot(n, w) + slot(n + 1, 1)) + 2 * slot(n, w) + slot(n, mod_cols(c));
}

size_t rl_flow_acts_floats(const rl_flow_config *c, int64_t n) {
    if (n < 0 || n > (int64_t)1 << 31) return 0;
    /* (3K+2)·w ≤ 770·65536 and n ≤ 2^31 keep every product below 2^63. */
    return head_floats(c, n) + (size_t)c->depth * block_floats(c, n) + 2 * slot(n, c->width) + slot(n, 1);
}

size_t rl_flow_scratch_floats(const rl_flow_config *c, int64_t n) {
    if (n < 0 || n > (int64_t)1 << 31) return 0;
    return slot(n, mod_cols(c)) + 3 * slot(n, c->width) + slot(n, 1);
}

static float *take(float **p, int64_t n, int64_t cols) {
    float *r = *p;
    *p += slot(n, cols);
    return r;
}

static void carve(const rl_flow_config *c, int64_t n, float *base, acts *a) {
    int64_t w = c->width, F = RL_FLOW_FREQ_DIM;
    float *p = base;
    emb_acts *e[2] = {&a->et, &a->el};
    for (int k = 0; k < 2; k++) {
        e[k]->emb = take(&p, n, F); e[k]->a = take(&p, n, w); e[k]->s = take(&p, n, w);
        e[k]->e = take(&p, n, w); e[k]->ids = take(&p, n + 1, 1);
    }
    a->y = take(&p, n, w); a->sy = take(&p, n, w); a->mod = take(&p, n, mod_cols(c));
    float *blocks_end = p + (size_t)c->depth * block_floats(c, n);
    a->xp_final = take(&blocks_end, n, w);
    a->rstd_final = take(&blocks_end, n, 1);
    a->hf = take(&blocks_end, n, w);
}

static void carve_block(const rl_flow_config *c, int64_t n, float *base, int64_t i, const acts *a,
                        block_acts *b) {
    int64_t w = c->width;
    float *p = base + head_floats(c, n) + (size_t)i * block_floats(c, n);
    b->xp = take(&p, n, w); b->rstd = take(&p, n, 1); b->hmod = take(&p, n, w);
    b->a1 = take(&p, n, w); b->s1 = take(&p, n, w); b->h2 = take(&p, n, w);
    (void)a;
}

/* dW += dY^T·X, db += column sums of dY, dX (+)= dY·W (beta 0 overwrites). */
static void linear_backward(const float *X, int64_t n, int64_t in, const float *W, int64_t out,
                            const float *dY, const float *ones, float *dW, float *db, float *dX, float beta_x) {
    rl_gemm_rows(1, 0, out, in, n, dY, out, X, in, 1.0f, dW, in, rl_get_threads());
    if (db) cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)out, 1.0f, dY, (int)out, ones, 1, 1.0f, db, 1);
    if (dX)
        rl_gemm_rows(0, 0, n, in, out, dY, out, W, in, beta_x, dX, in, rl_get_threads());
}

/* Distinct values of v (at most FLOW_MAX_UNIQUE, else 0) into uv, and each
 * row's index into ids. */
static int64_t unique_values(const float *v, int64_t n, float *uv, float *ids) {
    int64_t U = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t k = 0;
        while (k < U && memcmp(&uv[k], &v[r], sizeof(float)) != 0) k++;
        if (k == U) {
            if (U == FLOW_MAX_UNIQUE) return 0;
            uv[U++] = v[r];
        }
        ids[r] = (float)k;
    }
    return U;
}

/* Embeds v: with U distinct values, e[U, w] = MLP(sinusoid(uv)) including
 * the last bias; without, e is unused and the caller adds s·W2^T and b2. */
static void embed_forward(const float *v, int64_t n, int64_t w, const float *W0, const float *b0,
                          const float *W2, const float *b2, emb_acts *e) {
    float uv[FLOW_MAX_UNIQUE];
    int64_t U = unique_values(v, n, uv, e->ids);
    e->ids[n] = (float)U;
    int64_t rows = U ? U : n;
    rl_flow_sinusoid(U ? uv : v, rows, RL_FLOW_FREQ_DIM, e->emb);
    rl_linear_forward(e->a, e->emb, W0, b0, rows, RL_FLOW_FREQ_DIM, w);
    rl_flow_silu(e->a, e->s, rows * w);
    if (U) rl_linear_forward(e->e, e->s, W2, b2, U, w, w);
}

/* y += this embedder's output (the per-row case adds s·W2^T; its bias is in
 * the caller's y initialisation). */
static void embed_add(const emb_acts *e, int64_t n, int64_t w, const float *W2, float *y) {
    int64_t U = (int64_t)e->ids[n];
    if (!U) {
        rl_gemm_rows(0, 1, n, w, w, e->s, w, W2, w, 1.0f, y, w, rl_get_threads());
        return;
    }
#pragma omp parallel for schedule(static) if (n * w > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *restrict er = e->e + (int64_t)e->ids[r] * w;
        float *restrict yr = y + r * w;
#pragma omp simd
        for (int64_t j = 0; j < w; j++) yr[j] += er[j];
    }
}

/* Backward of one embedder given dy = d(loss)/d(y) [n, w]. tmp and tmp2 are
 * [n, w] scratch. */
static void embed_backward(const emb_acts *e, int64_t n, int64_t w, const float *W0, const float *W2,
                           const float *dy, const float *ones, float *G0, float *Gb0, float *G2, float *Gb2,
                           float *tmp, float *tmp2) {
    int64_t U = (int64_t)e->ids[n];
    const float *de = dy;
    int64_t rows = n;
    if (U) {
        /* Sum the rows that share a value: d e[u] = sum over rows with ids == u. */
        memset(tmp2, 0, (size_t)(U * w) * sizeof(float));
        for (int64_t r = 0; r < n; r++) {
            float *restrict d = tmp2 + (int64_t)e->ids[r] * w;
            const float *restrict g = dy + r * w;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) d[j] += g[j];
        }
        de = tmp2;
        rows = U;
    }
    linear_backward(e->s, rows, w, W2, w, de, ones, G2, Gb2, tmp, 0.0f);
    rl_flow_silu_backward(e->a, tmp, tmp, rows * w);
    linear_backward(e->emb, rows, RL_FLOW_FREQ_DIM, W0, w, tmp, ones, G0, Gb0, NULL, 0.0f);
}

void rl_flow_forward(const rl_flow *f, int64_t n, const float *x, const float *t, const float *c,
                     const float *tau, float *actbuf, float *out) {
    const rl_flow_config *cfg = &f->cfg;
    const float *P = f->params->data;
    int64_t d = cfg->dim, w = cfg->width, K = cfg->depth, M = mod_cols(cfg);
    if (n <= 0) return;
    acts a;
    carve(cfg, n, actbuf, &a);

    embed_forward(t, n, w, P + f->temb_w0, P + f->temb_b0, P + f->temb_w2, P + f->temb_b2, &a.et);
    embed_forward(tau, n, w, P + f->lemb_w0, P + f->lemb_b0, P + f->lemb_w2, P + f->lemb_b2, &a.el);
    /* y = cond_embed(c) + time_embed(t) + layer_embed(tau): biases first
       (those not already inside a per-value embedding), then the condition
       GEMM and the embeddings accumulate into y. */
    const float *bc = P + f->cond_b;
    const float *bt = a.et.ids[n] == 0.0f ? P + f->temb_b2 : NULL, *bl = a.el.ids[n] == 0.0f ? P + f->lemb_b2 : NULL;
    for (int64_t r = 0; r < n; r++) {
        float *yr = a.y + r * w;
        for (int64_t j = 0; j < w; j++) yr[j] = bc[j] + (bt ? bt[j] : 0.0f) + (bl ? bl[j] : 0.0f);
    }
    rl_gemm_rows(0, 1, n, w, d, c, d, P + f->cond_w, d, 1.0f, a.y, w, rl_get_threads());
    embed_add(&a.et, n, w, P + f->temb_w2, a.y);
    embed_add(&a.el, n, w, P + f->lemb_w2, a.y);
    rl_flow_silu(a.y, a.sy, n * w);
    rl_linear_forward(a.mod, a.sy, P + f->mod_w, P + f->mod_b, n, w, M);

    block_acts b0;
    carve_block(cfg, n, actbuf, 0, &a, &b0);
    rl_linear_forward(b0.xp, x, P + f->in_w, P + f->in_b, n, d, w);
    for (int64_t i = 0; i < K; i++) {
        const rl_flow_block *pb = &f->blocks[i];
        block_acts b;
        carve_block(cfg, n, actbuf, i, &a, &b);
        float *shift = a.mod + 3 * w * i, *scale = shift + w, *gate = shift + 2 * w;
        rl_flow_norm_modulate(b.xp, P + pb->norm_w, shift, scale, M, n, w, cfg->eps, b.rstd, b.hmod);
        rl_linear_forward(b.a1, b.hmod, P + pb->fc1_w, P + pb->fc1_b, n, w, w);
        rl_flow_silu(b.a1, b.s1, n * w);
        rl_linear_forward(b.h2, b.s1, P + pb->fc2_w, P + pb->fc2_b, n, w, w);
        float *next = a.xp_final;
        if (i + 1 < K) {
            block_acts nb;
            carve_block(cfg, n, actbuf, i + 1, &a, &nb);
            next = nb.xp;
        }
#pragma omp parallel for schedule(static) if (n * w > PAR_MIN)
        for (int64_t r = 0; r < n; r++) {
            const float *restrict xr = b.xp + r * w, *restrict hr = b.h2 + r * w, *restrict gr = gate + r * M;
            float *restrict o = next + r * w;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) o[j] = xr[j] + gr[j] * hr[j];
        }
    }
    float *shift = a.mod + 3 * w * K, *scale = shift + w;
    rl_flow_norm_modulate(a.xp_final, P + f->final_norm_w, shift, scale, M, n, w, cfg->eps, a.rstd_final, a.hf);
    rl_linear_forward(out, a.hf, P + f->out_w, P + f->out_b, n, w, d);
}

void rl_flow_backward(const rl_flow *f, int64_t n, const float *x, const float *t, const float *c,
                      const float *tau, const float *actbuf, const float *d_out, float *scratch,
                      float *G, float *d_x, float *d_c) {
    const rl_flow_config *cfg = &f->cfg;
    const float *P = f->params->data;
    int64_t d = cfg->dim, w = cfg->width, K = cfg->depth, M = mod_cols(cfg);
    (void)t; (void)tau;
    if (n <= 0) return;
    acts a;
    carve(cfg, n, (float *)actbuf, &a);
    float *p = scratch;
    float *d_mod = take(&p, n, M), *ta = take(&p, n, w), *tb = take(&p, n, w), *d_xp = take(&p, n, w);
    float *ones = take(&p, n, 1);
    for (int64_t r = 0; r < n; r++) ones[r] = 1.0f;
    memset(d_mod, 0, (size_t)n * (size_t)M * sizeof(float));
    memset(d_xp, 0, (size_t)n * (size_t)w * sizeof(float));

    /* Final layer. */
    linear_backward(a.hf, n, w, P + f->out_w, d, d_out, ones, G + f->out_w, G + f->out_b, ta, 0.0f);
    {
        const float *scale = a.mod + 3 * w * K + w;
        float *dshift = d_mod + 3 * w * K, *dscale = dshift + w;
        rl_flow_norm_modulate_backward(a.xp_final, P + f->final_norm_w, scale, M, a.rstd_final, ta, n, w, d_xp,
                                       G + f->final_norm_w, dshift, dscale);
    }
    for (int64_t i = K - 1; i >= 0; i--) {
        const rl_flow_block *pb = &f->blocks[i];
        block_acts b;
        carve_block(cfg, n, (float *)actbuf, i, &a, &b);
        const float *gate = a.mod + 3 * w * i + 2 * w, *scale = a.mod + 3 * w * i + w;
        float *dshift = d_mod + 3 * w * i, *dscale = dshift + w, *dgate = dshift + 2 * w;
        /* x_{i+1} = x_i + gate·h2: d_gate = dx·h2, d_h2 = dx·gate; dx
           itself flows on unchanged through the residual. */
#pragma omp parallel for schedule(static) if (n * w > PAR_MIN)
        for (int64_t r = 0; r < n; r++) {
            const float *restrict dx = d_xp + r * w, *restrict h = b.h2 + r * w, *restrict g = gate + r * M;
            float *restrict dg = dgate + r * M, *restrict dh = ta + r * w;
#pragma omp simd
            for (int64_t j = 0; j < w; j++) { dg[j] = dx[j] * h[j]; dh[j] = dx[j] * g[j]; }
        }
        linear_backward(b.s1, n, w, P + pb->fc2_w, w, ta, ones, G + pb->fc2_w, G + pb->fc2_b, tb, 0.0f);
        rl_flow_silu_backward(b.a1, tb, tb, n * w);
        linear_backward(b.hmod, n, w, P + pb->fc1_w, w, tb, ones, G + pb->fc1_w, G + pb->fc1_b, ta, 0.0f);
        rl_flow_norm_modulate_backward(b.xp, P + pb->norm_w, scale, M, b.rstd, ta, n, w, d_xp, G + pb->norm_w,
                                       dshift, dscale);
    }
    /* d_xp is now d(loss)/d(input_proj output). */
    linear_backward(x, n, d, P + f->in_w, w, d_xp, ones, G + f->in_w, G + f->in_b, d_x, 1.0f);

    /* All modulations at once: one GEMM for the weights, one back to SiLU(y). */
    linear_backward(a.sy, n, w, P + f->mod_w, M, d_mod, ones, G + f->mod_w, G + f->mod_b, ta, 0.0f);
    rl_flow_silu_backward(a.y, ta, ta, n * w);
    linear_backward(c, n, d, P + f->cond_w, w, ta, ones, G + f->cond_w, G + f->cond_b, d_c, 1.0f);
    embed_backward(&a.et, n, w, P + f->temb_w0, P + f->temb_w2, ta, ones, G + f->temb_w0, G + f->temb_b0,
                   G + f->temb_w2, G + f->temb_b2, tb, d_xp);
    embed_backward(&a.el, n, w, P + f->lemb_w0, P + f->lemb_w2, ta, ones, G + f->lemb_w0, G + f->lemb_b0,
                   G + f->lemb_w2, G + f->lemb_b2, tb, d_xp);
}

void rl_flow_fm_forward(const rl_flow *f, int64_t n, const float *x1, const float *eps, const float *t,
                        const float *c, const float *tau, float *xt, float *actbuf, float *v, float *loss) {
    int64_t d = f->cfg.dim;
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        float tr = t[r];
        const float *a = x1 + r * d, *e = eps + r * d;
        float *o = xt + r * d;
        for (int64_t j = 0; j < d; j++) o[j] = tr * a[j] + (1.0f - tr) * e[j];
    }
    rl_flow_forward(f, n, xt, t, c, tau, actbuf, v);
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *a = x1 + r * d, *e = eps + r * d, *vr = v + r * d;
        float s = 0;
        for (int64_t j = 0; j < d; j++) {
            float diff = vr[j] - (a[j] - e[j]);
            s += diff * diff;
        }
        loss[r] = s / (float)d;
    }
}

void rl_flow_fm_dv(int64_t n, int64_t d, const float *x1, const float *eps, const float *v, const float *coef,
                   float *d_v) {
#pragma omp parallel for schedule(static) if (n * d > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *a = x1 + r * d, *e = eps + r * d, *vr = v + r * d;
        float *g = d_v + r * d;
        float k = 2.0f * coef[r] / (float)d;
        for (int64_t j = 0; j < d; j++) g[j] = k * (vr[j] - (a[j] - e[j]));
    }
}
