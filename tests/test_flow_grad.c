/* Finite-difference gradient checks: the sinusoidal embedding, the adaLN
 * modulation of an RMSNorm, SiLU, and the whole flow network (every
 * parameter tensor, the noised input and the condition). */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "kernels_flow.h"
#include "testlib.h"

#define TOL 2e-2
/* The whole network runs in f32 through ~20 layers: central differences of
 * its output carry ~1e-5 absolute rounding noise at step 1e-2 (and smaller
 * steps are noisier), so the network check is looser. Exactness is the job
 * of test_flow_parity (float64 PyTorch, 1e-4); this check catches wrong
 * wiring, which gives O(1) errors. */
#define TOL_NET 5e-2

/* ---- sinusoid w.r.t. its argument ---- */
typedef struct { float *v, *r, *out; int64_t n, dim; } sin_ctx;

static double sin_fn(void *p) {
    sin_ctx *c = p;
    rl_flow_sinusoid(c->v, c->n, c->dim, c->out);
    double s = 0;
    for (int64_t i = 0; i < c->n * c->dim; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void check_sinusoid(void) {
    int64_t n = 5, dim = 16;
    float v[5] = {0.0f, 0.13f, 0.5f, 0.8f, 1.0f};
    float *r = rl_calloc((size_t)(n * dim), sizeof(float)), *out = rl_calloc((size_t)(n * dim), sizeof(float));
    float dv[5] = {0};
    rl_test_fill(r, (size_t)(n * dim), 7);
    rl_flow_sinusoid_backward(v, n, dim, r, dv);
    sin_ctx c = {v, r, out, n, dim};
    double e = rl_test_gradcheck(v, (size_t)n, dv, sin_fn, &c, 1e-3, 0);
    CHECK_MSG(e < TOL, "sinusoid gradcheck %.3g", e);
    /* Layout: cos half first; frequency 1 at i = 0, argument not scaled. */
    rl_flow_sinusoid(v, n, dim, out);
    CHECK(fabsf(out[3 * dim + 0] - cosf(0.8f)) < 1e-6f);
    CHECK(fabsf(out[3 * dim + dim / 2] - sinf(0.8f)) < 1e-6f);
    CHECK(fabsf(out[3 * dim + 1] - cosf(0.8f * expf(-logf(10000.0f) / (float)(dim / 2)))) < 1e-6f);
    rl_free(r);
    rl_free(out);
}

/* ---- adaLN-modulated RMSNorm ---- */
typedef struct { float *x, *g, *mod, *r, *rstd, *out; int64_t n, w, ld; } nm_ctx;

static double nm_fn(void *p) {
    nm_ctx *c = p;
    rl_flow_norm_modulate(c->x, c->g, c->mod, c->mod + c->w, c->ld, c->n, c->w, 1e-5f, c->rstd, c->out);
    double s = 0;
    for (int64_t i = 0; i < c->n * c->w; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void check_norm_modulate(void) {
    int64_t n = 4, w = 8, ld = 3 * w; /* shift, scale and an unused slot per row */
    float *x = rl_calloc((size_t)(n * w), sizeof(float)), *g = rl_calloc((size_t)w, sizeof(float));
    float *mod = rl_calloc((size_t)(n * ld), sizeof(float)), *r = rl_calloc((size_t)(n * w), sizeof(float));
    float *rstd = rl_calloc((size_t)n, sizeof(float)), *out = rl_calloc((size_t)(n * w), sizeof(float));
    float *dx = rl_calloc((size_t)(n * w), sizeof(float)), *dg = rl_calloc((size_t)w, sizeof(float));
    float *dmod = rl_calloc((size_t)(n * ld), sizeof(float));
    rl_test_fill(x, (size_t)(n * w), 1);
    rl_test_fill(g, (size_t)w, 2);
    rl_test_fill(mod, (size_t)(n * ld), 3);
    rl_test_fill(r, (size_t)(n * w), 4);
    for (int64_t j = 0; j < w; j++) g[j] += 1.0f;
    nm_ctx c = {x, g, mod, r, rstd, out, n, w, ld};
    nm_fn(&c);
    rl_flow_norm_modulate_backward(x, g, mod + w, ld, rstd, r, n, w, dx, dg, dmod, dmod + w);
    double e;
    e = rl_test_gradcheck(x, (size_t)(n * w), dx, nm_fn, &c, 1e-3, 0);
    CHECK_MSG(e < TOL, "norm_modulate d_x gradcheck %.3g", e);
    e = rl_test_gradcheck(g, (size_t)w, dg, nm_fn, &c, 1e-3, 0);
    CHECK_MSG(e < TOL, "norm_modulate d_g gradcheck %.3g", e);
    e = rl_test_gradcheck(mod, (size_t)(n * ld), dmod, nm_fn, &c, 1e-3, 0);
    CHECK_MSG(e < TOL, "norm_modulate d_shift/d_scale gradcheck %.3g", e);
    /* The unused third slot of each row must not receive a gradient. */
    int clean = 1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 2 * w; j < 3 * w; j++) clean &= dmod[i * ld + j] == 0.0f;
    CHECK(clean);
    rl_free(x); rl_free(g); rl_free(mod); rl_free(r); rl_free(rstd); rl_free(out);
    rl_free(dx); rl_free(dg); rl_free(dmod);
}

/* ---- SiLU ---- */
typedef struct { float *a, *r, *y; int64_t n; } silu_ctx;

static double silu_fn(void *p) {
    silu_ctx *c = p;
    rl_flow_silu(c->a, c->y, c->n);
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) s += (double)c->y[i] * c->r[i];
    return s;
}

static void check_silu(void) {
    float a[9], r[9], y[9], da[9];
    rl_test_fill(a, 9, 11);
    rl_test_fill(r, 9, 12);
    for (int i = 0; i < 9; i++) a[i] *= 4.0f;
    rl_flow_silu_backward(a, r, da, 9);
    silu_ctx c = {a, r, y, 9};
    double e = rl_test_gradcheck(a, 9, da, silu_fn, &c, 1e-3, 0);
    CHECK_MSG(e < TOL, "silu gradcheck %.3g", e);
}

/* ---- the whole network ---- */
typedef struct {
    rl_flow *f;
    float *x, *t, *c, *tau, *r, *acts, *out;
    int64_t n;
} net_ctx;

static double net_fn(void *p) {
    net_ctx *c = p;
    rl_flow_forward(c->f, c->n, c->x, c->t, c->c, c->tau, c->acts, c->out);
    double s = 0;
    for (int64_t i = 0; i < c->n * c->f->cfg.dim; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void check_network(void) {
    rl_error err = {0};
    rl_flow_config cfg = {.dim = 6, .width = 8, .depth = 2, .eps = 1e-5f};
    rl_flow *f = rl_flow_new(&cfg, 3, &err);
    CHECK(f != NULL);
    if (!f) return;
    rl_params *p = f->params;
    /* Random everywhere: the real init zeroes the adaLN outputs and the final
       layer, which would hide most of the backward. */
    rl_test_fill(p->data, p->numel, 5);
    for (size_t i = 0; i < p->numel; i++) p->data[i] *= 0.5f;
    int64_t n = 4, d = cfg.dim;
    float x[24], c[24], t[4] = {0.1f, 0.5f, 0.8f, 0.95f}, tau[4] = {0.25f, 0.5f, 0.75f, 0.5f}, r[24];
    rl_test_fill(x, 24, 21);
    rl_test_fill(c, 24, 22);
    rl_test_fill(r, 24, 23);
    float *acts = rl_calloc(rl_flow_acts_floats(&cfg, n), sizeof(float));
    float *scratch = rl_calloc(rl_flow_scratch_floats(&cfg, n), sizeof(float));
    float out[24], dx[24] = {0}, dc[24] = {0};
    net_ctx ctx = {f, x, t, c, tau, r, acts, out, n};
    net_fn(&ctx);
    rl_params_zero_grad(p);
    rl_flow_backward(f, n, x, t, c, tau, acts, r, scratch, p->grad, dx, dc);
    for (int i = 0; i < p->n; i++) {
        const rl_param_entry *e = &p->entries[i];
        size_t k = (size_t)rl_shape_numel(&e->shape);
        double er = rl_test_gradcheck(p->data + e->offset, k, p->grad + e->offset, net_fn, &ctx, 1e-2, 24);
        CHECK_MSG(er < TOL_NET, "network gradcheck %s: %.3g", e->name, er);
    }
    double er = rl_test_gradcheck(x, 24, dx, net_fn, &ctx, 1e-2, 0);
    CHECK_MSG(er < TOL_NET, "network gradcheck d_x: %.3g", er);
    er = rl_test_gradcheck(c, 24, dc, net_fn, &ctx, 1e-2, 0);
    CHECK_MSG(er < TOL_NET, "network gradcheck d_c: %.3g", er);
    (void)d;
    rl_free(acts);
    rl_free(scratch);
    rl_flow_free(f);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    check_sinusoid();
    check_norm_modulate();
    check_silu();
    check_network();
    return rl_test_finish("test_flow_grad");
}
