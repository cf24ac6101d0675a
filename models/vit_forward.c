/* Vision encoder forward and backward over packed patches (models/vit.h).
 *
 * Every activation lives in the caller's workspaces at offsets computed from
 * the batch size alone (layout()), so the node plans them once for the
 * largest batch and a smaller batch fits the same buffers. Backward reuses
 * the forward's saved activations and recomputes nothing but the attention
 * probabilities (from the saved log-sum-exp). */
#include <string.h>

#include "alloc.h"
#include "kernels.h"
#include "kernels_vit.h"
#include "vit.h"

/* Offsets in floats; each piece rounded up to 16 floats (64 bytes). */
typedef struct layer_off {
    size_t ln1, mu1, rs1, qkv, att, lse, xm, ln2, mu2, rs2, h1, g1;
} layer_off;

typedef struct vit_layout {
    /* saved */
    size_t seg, cosr, sinr, lnq, muq, rsq, m1, g2, saved;
    size_t xs0, x_stride;           /* xs[l] = xs0 + l*x_stride, l = 0..depth */
    size_t layer0, layer_stride;    /* per-block activations */
    layer_off lo;                   /* relative to the block's base */
    /* forward scratch */
    size_t hw, fattn, fwd;
    /* backward scratch */
    size_t dx, dtmp, dqkv, dg1, dh1, dg2, dm1, battn, bwd;
} vit_layout;

#define OVF ((size_t)-1)

static size_t piece(size_t *cur, size_t floats) {
    size_t at = *cur;
    if (at == OVF || floats > (OVF >> 2)) { *cur = OVF; return 0; }
    size_t r = (floats + 15) & ~(size_t)15;
    *cur = at + r < at ? OVF : at + r;
    return at;
}

/* a*b or OVF. */
static size_t mul(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? OVF : r;
}

static int layout(const rl_vit_config *c, int64_t n, int64_t n_images, int64_t max_len, int threads, vit_layout *L) {
    const size_t N = (size_t)n, d = (size_t)c->width, F = (size_t)c->mlp, H = (size_t)c->heads;
    const size_t hd2 = d / H / 2, nd = mul(N, d), nF = mul(N, F);
    memset(L, 0, sizeof *L);
    size_t cur = 0;
    L->seg = piece(&cur, mul((size_t)n_images + 1, 2)); /* int64 starts */
    L->cosr = piece(&cur, mul(N, hd2));
    L->sinr = piece(&cur, mul(N, hd2));
    L->xs0 = cur;
    piece(&cur, nd);
    L->x_stride = cur - L->xs0;
    for (int64_t l = 0; l < c->depth; l++) piece(&cur, nd);
    L->layer0 = cur;
    layer_off *o = &L->lo;
    o->ln1 = piece(&cur, nd) - L->layer0;
    o->mu1 = piece(&cur, N) - L->layer0;
    o->rs1 = piece(&cur, N) - L->layer0;
    o->qkv = piece(&cur, mul(nd, 3)) - L->layer0;
    o->att = piece(&cur, nd) - L->layer0;
    o->lse = piece(&cur, mul(N, H)) - L->layer0;
    o->xm = piece(&cur, nd) - L->layer0;
    o->ln2 = piece(&cur, nd) - L->layer0;
    o->mu2 = piece(&cur, N) - L->layer0;
    o->rs2 = piece(&cur, N) - L->layer0;
    o->h1 = piece(&cur, nF) - L->layer0;
    o->g1 = piece(&cur, nF) - L->layer0;
    if (cur == OVF) return -1;
    L->layer_stride = cur - L->layer0;
    for (int64_t l = 1; l < c->depth; l++) piece(&cur, L->layer_stride);
    if (c->depth == 0) cur = L->layer0;
    L->lnq = piece(&cur, nd);
    L->muq = piece(&cur, N);
    L->rsq = piece(&cur, N);
    L->m1 = piece(&cur, nd); /* [N/m², m²·d] */
    L->g2 = piece(&cur, nd);
    L->saved = cur;
    const size_t attn = rl_vit_attn_scratch_floats(max_len, threads);
    cur = 0;
    L->hw = piece(&cur, mul(N, 2));
    L->fattn = piece(&cur, attn);
    L->fwd = cur;
    size_t bc = 0;
    L->dx = piece(&bc, nd);
    L->dtmp = piece(&bc, nd);
    L->dqkv = piece(&bc, mul(nd, 3));
    L->dg1 = piece(&bc, nF);
    L->dh1 = piece(&bc, nF);
    L->dg2 = piece(&bc, nd);
    L->dm1 = piece(&bc, nd);
    L->battn = piece(&bc, attn);
    L->bwd = bc;
    return (L->saved == OVF || L->fwd == OVF || L->bwd == OVF || nd == OVF || nF == OVF) ? -1 : 0;
}

int rl_vit_ws_size(const rl_vit_config *c, int64_t n, int64_t n_images, int64_t max_len, int threads,
                   rl_vit_ws_bytes *out, rl_error *err) {
    vit_layout L;
    if (n < 0 || n_images < 0 || max_len < 0 || n > ((int64_t)1 << 31) || n_images > ((int64_t)1 << 31) ||
        max_len > n || layout(c, n, n_images, max_len, threads, &L))
        return rl_fail(err, "vit: a batch of %lld patches in %lld images is too large", (long long)n,
                       (long long)n_images);
    if (rl_mul_size(L.saved, sizeof(float), &out->saved) || rl_mul_size(L.fwd, sizeof(float), &out->fwd) ||
        rl_mul_size(L.bwd, sizeof(float), &out->bwd))
        return rl_fail(err, "vit: a batch of %lld patches is too large", (long long)n);
    return 0;
}

static float *F(void *base, size_t off) { return (float *)base + off; }

void rl_vit_forward(const rl_vit *v, const rl_vit_run *r, const float *pixels, const int32_t *grid, float *out) {
    const rl_vit_config *c = &v->cfg;
    const int64_t N = r->n, d = c->width, H = c->heads, hd = d / H, Fm = c->mlp, m = c->merge;
    const int64_t P = c->channels * c->patch * c->patch, md = m * m * d, Nm = N / (m * m);
    const float *w = v->params->data;
    vit_layout L;
    layout(c, N, r->n_images, r->max_len, r->threads, &L);

    /* Segments and per-patch (row, column) in the merge order of models/vit.h. */
    int64_t *seg = (int64_t *)F(r->saved, L.seg);
    int32_t *hw = (int32_t *)F(r->fwd, L.hw);
    seg[0] = 0;
    int64_t row = 0;
    for (int64_t b = 0; b < r->n_images; b++) {
        const int64_t gh = grid[2 * b], gw = grid[2 * b + 1];
        for (int64_t bh = 0; bh < gh / m; bh++)
            for (int64_t bw = 0; bw < gw / m; bw++)
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < m; j++, row++) {
                        hw[2 * row] = (int32_t)(bh * m + i);
                        hw[2 * row + 1] = (int32_t)(bw * m + j);
                    }
        seg[b + 1] = row;
    }
    float *cosr = F(r->saved, L.cosr), *sinr = F(r->saved, L.sinr);
    rl_vit_rope_table(cosr, sinr, hw, N, hd, c->rope_theta);

    rl_linear_forward(F(r->saved, L.xs0), pixels, w + v->patch_w, NULL, N, P, d);
    for (int64_t l = 0; l < c->depth; l++) {
        const rl_vit_block *bk = &v->blocks[l];
        float *base = F(r->saved, L.layer0 + (size_t)l * L.layer_stride);
        const layer_off *o = &L.lo;
        float *x = F(r->saved, L.xs0 + (size_t)l * L.x_stride), *xn = x + L.x_stride;
        float *ln1 = base + o->ln1, *qkv = base + o->qkv, *att = base + o->att, *xm = base + o->xm;
        float *ln2 = base + o->ln2, *h1 = base + o->h1, *g1 = base + o->g1;
        rl_layernorm_forward(ln1, base + o->mu1, base + o->rs1, x, w + bk->ln1_w, w + bk->ln1_b, N, d, c->eps);
        rl_linear_forward(qkv, ln1, w + bk->qkv_w, w + bk->qkv_b, N, d, 3 * d);
        /* q and k are adjacent column blocks of each qkv row: rotate 2H heads at once. */
        rl_vit_rope_apply(qkv, N, 3 * d, 2 * H, hd, cosr, sinr, 0, r->threads);
        rl_vit_attn_forward(qkv, qkv + d, qkv + 2 * d, 3 * d, att, base + o->lse, seg, r->n_images, H, hd,
                            r->max_len, F(r->fwd, L.fattn), r->threads);
        rl_linear_forward(xm, att, w + bk->proj_w, w + bk->proj_b, N, d, d);
        rl_add_forward(xm, xm, x, N * d);
        rl_layernorm_forward(ln2, base + o->mu2, base + o->rs2, xm, w + bk->ln2_w, w + bk->ln2_b, N, d, c->eps);
        rl_linear_forward(h1, ln2, w + bk->fc1_w, w + bk->fc1_b, N, d, Fm);
        rl_gelu_forward(g1, h1, N * Fm);
        rl_linear_forward(xn, g1, w + bk->fc2_w, w + bk->fc2_b, N, Fm, d);
        rl_add_forward(xn, xn, xm, N * d);
    }
    const float *xl = F(r->saved, L.xs0 + (size_t)c->depth * L.x_stride);
    float *lnq = F(r->saved, L.lnq), *m1 = F(r->saved, L.m1), *g2 = F(r->saved, L.g2);
    /* LN per patch, then m² consecutive rows ARE one merged row [m²·d]. */
    rl_layernorm_forward(lnq, F(r->saved, L.muq), F(r->saved, L.rsq), xl, w + v->mln_w, w + v->mln_b, N, d, c->eps);
    rl_linear_forward(m1, lnq, w + v->m1_w, w + v->m1_b, Nm, md, md);
    rl_gelu_forward(g2, m1, Nm * md);
    rl_linear_forward(out, g2, w + v->m2_w, w + v->m2_b, Nm, md, c->out_hidden);
}

void rl_vit_backward(const rl_vit *v, const rl_vit_run *r, const float *pixels, const float *dout, float *grad) {
    const rl_vit_config *c = &v->cfg;
    const int64_t N = r->n, d = c->width, H = c->heads, hd = d / H, Fm = c->mlp, m = c->merge;
    const int64_t P = c->channels * c->patch * c->patch, md = m * m * d, Nm = N / (m * m);
    const float *w = v->params->data;
    float *g = grad;
    vit_layout L;
    layout(c, N, r->n_images, r->max_len, r->threads, &L);
    const int64_t *seg = (const int64_t *)F(r->saved, L.seg);
    const float *cosr = F(r->saved, L.cosr), *sinr = F(r->saved, L.sinr);
    float *dx = F(r->bwd, L.dx), *dtmp = F(r->bwd, L.dtmp), *dqkv = F(r->bwd, L.dqkv);
    float *dg1 = F(r->bwd, L.dg1), *dh1 = F(r->bwd, L.dh1), *dg2 = F(r->bwd, L.dg2), *dm1 = F(r->bwd, L.dm1);
    const size_t ndb = (size_t)(N * d) * sizeof(float), nfb = (size_t)(N * Fm) * sizeof(float);

    /* merger */
    const float *lnq = F(r->saved, L.lnq), *m1 = F(r->saved, L.m1), *g2 = F(r->saved, L.g2);
    const float *xl = F(r->saved, L.xs0 + (size_t)c->depth * L.x_stride);
    memset(dg2, 0, ndb);
    rl_linear_backward(dg2, g + v->m2_w, g + v->m2_b, dout, g2, w + v->m2_w, Nm, md, c->out_hidden);
    memset(dm1, 0, ndb);
    rl_gelu_backward(dm1, dg2, m1, Nm * md);
    memset(dtmp, 0, ndb);
    rl_linear_backward(dtmp, g + v->m1_w, g + v->m1_b, dm1, lnq, w + v->m1_w, Nm, md, md);
    memset(dx, 0, ndb);
    rl_layernorm_backward(dx, g + v->mln_w, g + v->mln_b, dtmp, xl, w + v->mln_w, F(r->saved, L.muq),
                          F(r->saved, L.rsq), N, d);

    for (int64_t l = c->depth - 1; l >= 0; l--) {
        const rl_vit_block *bk = &v->blocks[l];
        const float *base = F(r->saved, L.layer0 + (size_t)l * L.layer_stride);
        const layer_off *o = &L.lo;
        const float *x = F(r->saved, L.xs0 + (size_t)l * L.x_stride);
        const float *ln1 = base + o->ln1, *qkv = base + o->qkv, *att = base + o->att, *xm = base + o->xm;
        const float *ln2 = base + o->ln2, *h1 = base + o->h1, *g1 = base + o->g1;
        /* MLP half: dx holds d(x_{l+1}); the residual passes it to xm unchanged. */
        memset(dg1, 0, nfb);
        rl_linear_backward(dg1, g + bk->fc2_w, g + bk->fc2_b, dx, g1, w + bk->fc2_w, N, Fm, d);
        memset(dh1, 0, nfb);
        rl_gelu_backward(dh1, dg1, h1, N * Fm);
        memset(dtmp, 0, ndb);
        rl_linear_backward(dtmp, g + bk->fc1_w, g + bk->fc1_b, dh1, ln2, w + bk->fc1_w, N, d, Fm);
        rl_layernorm_backward(dx, g + bk->ln2_w, g + bk->ln2_b, dtmp, xm, w + bk->ln2_w, base + o->mu2, base + o->rs2,
                              N, d);
        /* attention half: dx holds d(xm) */
        memset(dtmp, 0, ndb);
        rl_linear_backward(dtmp, g + bk->proj_w, g + bk->proj_b, dx, att, w + bk->proj_w, N, d, d);
        rl_vit_attn_backward(qkv, qkv + d, qkv + 2 * d, 3 * d, att, base + o->lse, dtmp, dqkv, dqkv + d, dqkv + 2 * d,
                             seg, r->n_images, H, hd, r->max_len, F(r->bwd, L.battn), r->threads);
        rl_vit_rope_apply(dqkv, N, 3 * d, 2 * H, hd, cosr, sinr, 1, r->threads);
        memset(dtmp, 0, ndb);
        rl_linear_backward(dtmp, g + bk->qkv_w, g + bk->qkv_b, dqkv, ln1, w + bk->qkv_w, N, d, 3 * d);
        rl_layernorm_backward(dx, g + bk->ln1_w, g + bk->ln1_b, dtmp, x, w + bk->ln1_w, base + o->mu1, base + o->rs1,
                              N, d);
    }
    /* patch embedding: no gradient for the pixels */
    rl_linear_backward(NULL, g + v->patch_w, NULL, dx, pixels, w + v->patch_w, N, P, d);
}
