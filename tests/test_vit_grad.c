/* The vision encoder's numerics: finite-difference checks of the new kernels
 * (LayerNorm, erf GELU, 2-D RoPE on strided rows, segmented bidirectional
 * attention), of the merger alone (depth 0) and of the whole encoder on a
 * micro config; the 2-D rotary table against hand values; the patch layout
 * and forward / parameter gradients against PyTorch (tests/gen_vit_ref.py,
 * max |c - torch| / max |torch| <= 1e-4 per tensor); and the same results
 * with 1 and 2 threads. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "image.h"
#include "kernels_vit.h"
#include "safetensors.h"
#include "testlib.h"
#include "vit.h"

#define TOL 2e-2
#define EPS 1e-2

/* ---- LayerNorm ---- */
enum { LN_N = 5, LN_C = 7 };
static float ln_x[LN_N * LN_C], ln_w[LN_C], ln_b[LN_C], ln_r[LN_N * LN_C], ln_y[LN_N * LN_C], ln_mu[LN_N],
    ln_rs[LN_N];

static double ln_f(void *ctx) {
    (void)ctx;
    rl_layernorm_forward(ln_y, ln_mu, ln_rs, ln_x, ln_w, ln_b, LN_N, LN_C, 1e-6f);
    double s = 0;
    for (int i = 0; i < LN_N * LN_C; i++) s += (double)ln_r[i] * ln_y[i];
    return s;
}

static void test_layernorm(void) {
    rl_test_fill(ln_x, LN_N * LN_C, 11);
    rl_test_fill(ln_w, LN_C, 12);
    rl_test_fill(ln_b, LN_C, 13);
    rl_test_fill(ln_r, LN_N * LN_C, 14);
    for (int i = 0; i < LN_N * LN_C; i++) ln_x[i] = 3.0f * ln_x[i] + 1.0f; /* non-zero mean */
    static float dx[LN_N * LN_C], dw[LN_C], db[LN_C];
    ln_f(NULL);
    rl_layernorm_backward(dx, dw, db, ln_r, ln_x, ln_w, ln_mu, ln_rs, LN_N, LN_C);
    double ex = rl_test_gradcheck(ln_x, LN_N * LN_C, dx, ln_f, NULL, EPS, 0);
    double ew = rl_test_gradcheck(ln_w, LN_C, dw, ln_f, NULL, EPS, 0);
    double eb = rl_test_gradcheck(ln_b, LN_C, db, ln_f, NULL, EPS, 0);
    CHECK_MSG(ex < TOL && ew < TOL && eb < TOL, "layernorm rel err dx %g dw %g db %g", ex, ew, eb);
    /* Normalised rows: mean 0, variance 1 before the affine part. */
    rl_layernorm_forward(ln_y, ln_mu, ln_rs, ln_x, NULL, NULL, LN_N, LN_C, 1e-6f);
    double m = 0, v = 0;
    for (int j = 0; j < LN_C; j++) m += ln_y[j];
    for (int j = 0; j < LN_C; j++) v += (ln_y[j] - m / LN_C) * (ln_y[j] - m / LN_C);
    CHECK_MSG(fabs(m) < 1e-5 && fabs(v / LN_C - 1) < 1e-4, "mean %g var %g", m, v / LN_C);
    /* Backward accumulates. */
    static float dx2[LN_N * LN_C];
    for (int i = 0; i < LN_N * LN_C; i++) dx2[i] = 1.0f;
    ln_f(NULL);
    static float dxa[LN_N * LN_C];
    memset(dxa, 0, sizeof dxa);
    rl_layernorm_backward(dxa, NULL, NULL, ln_r, ln_x, ln_w, ln_mu, ln_rs, LN_N, LN_C);
    rl_layernorm_backward(dx2, NULL, NULL, ln_r, ln_x, ln_w, ln_mu, ln_rs, LN_N, LN_C);
    CHECK(fabsf(dx2[3] - 1.0f - dxa[3]) < 1e-6f);
}

/* ---- GELU ---- */
enum { GN = 40 };
static float gx[GN], gr[GN], gy[GN];
static double gelu_f(void *ctx) {
    (void)ctx;
    rl_gelu_forward(gy, gx, GN);
    double s = 0;
    for (int i = 0; i < GN; i++) s += (double)gr[i] * gy[i];
    return s;
}

static void test_gelu(void) {
    rl_test_fill(gx, GN, 21);
    rl_test_fill(gr, GN, 22);
    for (int i = 0; i < GN; i++) gx[i] *= 4.0f;
    static float dx[GN];
    rl_gelu_backward(dx, gr, gx, GN);
    double e = rl_test_gradcheck(gx, GN, dx, gelu_f, NULL, 1e-3, 0);
    CHECK_MSG(e < TOL, "gelu rel err %g", e);
    /* Exact (erf) form, not the tanh approximation: GELU(1) = 0.841344746. */
    float one = 1.0f, y;
    rl_gelu_forward(&y, &one, 1);
    CHECK_MSG(fabsf(y - 0.8413447461f) < 1e-6f, "gelu(1) = %.9f", y);
}

/* ---- 2-D RoPE ---- */
enum { RR = 6, RH = 2, RHD = 8, RLD = 3 * RH * RHD };
static float rx[RR * RLD], rr[RR * RLD], rcos[RR * RHD / 2], rsin[RR * RHD / 2];
static int32_t rhw[RR * 2] = {0, 0, 0, 1, 1, 0, 1, 1, 2, 3, 5, 4};

static double rope_f(void *ctx) {
    (void)ctx;
    static float y[RR * RLD];
    memcpy(y, rx, sizeof y);
    rl_vit_rope_apply(y, RR, RLD, RH, RHD, rcos, rsin, 0, 2);
    double s = 0;
    for (int i = 0; i < RR * RLD; i++) s += (double)rr[i] * y[i];
    return s;
}

static void test_rope(void) {
    rl_vit_rope_table(rcos, rsin, rhw, RR, RHD, 10000.0);
    /* Patch (1, 0): first quarter turns by 1 * theta^(-4i/hd), second quarter not at all. */
    const int half = RHD / 2;
    CHECK(fabsf(rcos[2 * half + 0] - cosf(1.0f)) < 1e-7f && fabsf(rsin[2 * half + 1] - sinf(0.01f)) < 1e-7f);
    CHECK(rcos[2 * half + 2] == 1.0f && rsin[2 * half + 3] == 0.0f);
    CHECK(fabsf(rsin[5 * half + 2] - sinf(4.0f)) < 1e-7f && fabsf(rsin[5 * half + 0] - sinf(5.0f)) < 1e-7f);
    rl_test_fill(rx, RR * RLD, 31);
    rl_test_fill(rr, RR * RLD, 32);
    /* Only the first RH heads of each strided row turn: the gradient is the
       inverse rotation of rr there and rr itself elsewhere. */
    static float g[RR * RLD];
    memcpy(g, rr, sizeof g);
    rl_vit_rope_apply(g, RR, RLD, RH, RHD, rcos, rsin, 1, 1);
    double e = rl_test_gradcheck(rx, RR * RLD, g, rope_f, NULL, EPS, 0);
    CHECK_MSG(e < TOL, "rope2d rel err %g", e);
    static float y[RR * RLD];
    memcpy(y, rx, sizeof y);
    rl_vit_rope_apply(y, RR, RLD, RH, RHD, rcos, rsin, 0, 1);
    rl_vit_rope_apply(y, RR, RLD, RH, RHD, rcos, rsin, 1, 1);
    double worst = 0;
    for (int i = 0; i < RR * RLD; i++) worst = fmax(worst, fabs(y[i] - rx[i]));
    CHECK_MSG(worst < 1e-6, "rope inverse differs by %g", worst);
}

/* ---- segmented bidirectional attention ---- */
enum { AH = 2, AHD = 4, AD = AH * AHD, AROWS = 9, ALD = 3 * AD };
static float aqkv[AROWS * ALD], ao[AROWS * AD], alse[AROWS * AH], aw[AROWS * AD];
static float ascr[2 * 5 * 5 * 2];
static const int64_t aseg[4] = {0, 3, 8, 9};

static double attn_f(void *ctx) {
    (void)ctx;
    rl_vit_attn_forward(aqkv, aqkv + AD, aqkv + 2 * AD, ALD, ao, alse, aseg, 3, AH, AHD, 5, ascr, 2);
    double s = 0;
    for (int i = 0; i < AROWS * AD; i++) s += (double)aw[i] * ao[i];
    return s;
}

static void test_attention(void) {
    rl_test_fill(aqkv, AROWS * ALD, 41);
    rl_test_fill(aw, AROWS * AD, 42);
    for (int i = 0; i < AROWS * ALD; i++) aqkv[i] *= 2.0f;
    static float dqkv[AROWS * ALD];
    attn_f(NULL);
    rl_vit_attn_backward(aqkv, aqkv + AD, aqkv + 2 * AD, ALD, ao, alse, aw, dqkv, dqkv + AD, dqkv + 2 * AD, aseg, 3,
                         AH, AHD, 5, ascr, 2);
    double e = rl_test_gradcheck(aqkv, AROWS * ALD, dqkv, attn_f, NULL, EPS, 0);
    CHECK_MSG(e < TOL, "attention rel err %g", e);
    /* Bidirectional: the first query of segment 1 depends on its last key. */
    CHECK(fabsf(dqkv[7 * ALD + AD]) > 1e-5f || fabsf(dqkv[7 * ALD + AD + 1]) > 1e-5f);
    /* A one-row segment returns its own value row. */
    CHECK(fabsf(ao[8 * AD] - aqkv[8 * ALD + 2 * AD]) < 1e-6f && fabsf(ao[8 * AD + AHD] - aqkv[8 * ALD + 2 * AD + AHD]) < 1e-6f);
    /* Segments are independent: keys of segment 0 get no gradient from queries elsewhere. */
    static float w2[AROWS * AD];
    memcpy(w2, aw, sizeof w2);
    memset(aw, 0, 3 * AD * sizeof(float));
    attn_f(NULL);
    rl_vit_attn_backward(aqkv, aqkv + AD, aqkv + 2 * AD, ALD, ao, alse, aw, dqkv, dqkv + AD, dqkv + 2 * AD, aseg, 3,
                         AH, AHD, 5, ascr, 1);
    double leak = 0;
    for (int i = 0; i < 3 * ALD; i++) leak = fmax(leak, fabs(dqkv[i]));
    CHECK_MSG(leak == 0, "gradient leaked across images: %g", leak);
    memcpy(aw, w2, sizeof w2);
}

/* ---- whole encoder ---- */
typedef struct enc {
    rl_vit *v;
    rl_vit_run run;
    float *pixels, *out, *r;
    int32_t grid[8];
    int64_t n_out;
} enc;

static int enc_setup(enc *e, const rl_vit_config *cfg, const int32_t *grid, int64_t B, int threads) {
    rl_error err = {0};
    memset(e, 0, sizeof *e);
    e->v = rl_vit_new(cfg, 7, &err);
    CHECK_MSG(e->v != NULL, "%s", err.msg);
    if (!e->v) return -1;
    const rl_vit_config *c = &e->v->cfg;
    int64_t N = 0;
    for (int64_t b = 0; b < B; b++) N += (int64_t)grid[2 * b] * grid[2 * b + 1];
    memcpy(e->grid, grid, (size_t)B * 2 * sizeof(int32_t));
    int64_t len = 0, nm = 0;
    CHECK_MSG(rl_vit_check_grid(c, grid, B, N, &len, &nm, &err) == 0, "%s", err.msg);
    rl_vit_ws_bytes wb;
    CHECK_MSG(rl_vit_ws_size(c, N, B, len, threads, &wb, &err) == 0, "%s", err.msg);
    e->run = (rl_vit_run){N, B, len, threads, rl_malloc_aligned(wb.saved), rl_malloc_aligned(wb.fwd),
                          rl_malloc_aligned(wb.bwd)};
    const int64_t P = c->channels * c->patch * c->patch;
    e->n_out = nm * c->out_hidden;
    e->pixels = rl_malloc((size_t)(N * P) * sizeof(float));
    e->out = rl_malloc((size_t)e->n_out * sizeof(float));
    e->r = rl_malloc((size_t)e->n_out * sizeof(float));
    rl_test_fill(e->pixels, (size_t)(N * P), 51);
    rl_test_fill(e->r, (size_t)e->n_out, 52);
    return 0;
}

static void enc_free(enc *e) {
    rl_free_aligned(e->run.saved);
    rl_free_aligned(e->run.fwd);
    rl_free_aligned(e->run.bwd);
    rl_free(e->pixels);
    rl_free(e->out);
    rl_free(e->r);
    rl_vit_free(e->v);
}

static double enc_f(void *ctx) {
    enc *e = ctx;
    rl_vit_forward(e->v, &e->run, e->pixels, e->grid, e->out);
    double s = 0;
    for (int64_t i = 0; i < e->n_out; i++) s += (double)e->r[i] * e->out[i];
    return s;
}

/* FD over every parameter (or an even spread of max_checks of them). */
static void check_encoder_fd(const rl_vit_config *cfg, const char *what, size_t max_checks) {
    enc e;
    const int32_t grid[6] = {2, 4, 4, 2, 2, 2};
    if (enc_setup(&e, cfg, grid, 3, 2)) return;
    rl_params *p = e.v->params;
    /* Random LayerNorm gains and biases too, so their gradients are generic. */
    rl_test_fill(p->data, p->numel, 61);
    for (size_t i = 0; i < p->numel; i++) p->data[i] *= 0.5f;
    memset(p->grad, 0, p->numel * sizeof(float));
    enc_f(&e);
    rl_vit_backward(e.v, &e.run, e.pixels, e.r, p->grad);
    /* A deeper float32 network: a wider step keeps round-off out of the
       differences (the PyTorch parity below is the tight check). */
    double err = rl_test_gradcheck(p->data, p->numel, p->grad, enc_f, &e, 3e-2, max_checks);
    CHECK_MSG(err < 3e-2, "%s: parameter gradient rel err %g", what, err);
    /* The check can fail: a gradient with one tensor's sign flipped does. */
    const rl_param_entry *pe = &p->entries[p->n - 4]; /* merger.mlp.0.weight */
    size_t k = (size_t)rl_shape_numel(&pe->shape);
    for (size_t i = 0; i < k; i++) p->grad[pe->offset + i] = -p->grad[pe->offset + i];
    double bad = rl_test_gradcheck(p->data + pe->offset, k, p->grad + pe->offset, enc_f, &e, 3e-2, 64);
    CHECK_MSG(bad > 0.5, "%s: a sign-flipped gradient passed (rel err %g)", what, bad);
    enc_free(&e);
}

/* ---- PyTorch parity ---- */
static double rel_max(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static float *read_ref(rl_st_file *st, const char *name, size_t *n) {
    rl_error err = {0};
    const rl_st_info *in = rl_st_find(st, name);
    CHECK_MSG(in != NULL, "reference lacks '%s'", name);
    if (!in) return NULL;
    size_t k = (size_t)rl_shape_numel(&in->shape);
    float *x = rl_malloc((k ? k : 1) * sizeof(float));
    CHECK_MSG(rl_st_read_f32(st, name, x, k, &err) == 0, "%s", err.msg);
    if (n) *n = k;
    return x;
}

static void test_parity(int threads, float *keep_out) {
    const char *path = rl_test_path("tests/ref/vit_ref.safetensors");
    rl_error err = {0};
    rl_st_file *st = NULL;
    CHECK_MSG(rl_st_open(path, &st, &err) == 0, "%s", err.msg);
    if (!st) return;
    const rl_vit_config cfg = {.patch = 2, .channels = 3, .width = 16, .depth = 2, .heads = 2, .mlp = 32,
                               .out_hidden = 12, .merge = 2};
    float *g = read_ref(st, "input.grid", NULL);
    const int32_t grid[6] = {(int32_t)g[0], (int32_t)g[1], (int32_t)g[2], (int32_t)g[3], (int32_t)g[4], (int32_t)g[5]};
    rl_free(g);
    enc e;
    if (enc_setup(&e, &cfg, grid, 3, threads)) { rl_st_close(st); return; }
    rl_params *p = e.v->params;
    CHECK_MSG(rl_params_load(p, path, &err) == 0, "%s", err.msg);
    size_t n_px;
    float *px = read_ref(st, "input.pixels", &n_px);
    /* Our patchify gives torch's layout exactly. */
    int64_t row = 0;
    for (int b = 0; b < 3 && px; b++) {
        char name[32];
        snprintf(name, sizeof name, "image%d", b);
        float *img = read_ref(st, name, NULL);
        const int64_t H = grid[2 * b] * 2, W = grid[2 * b + 1] * 2;
        CHECK_MSG(rl_vit_patchify(&cfg, img, H, W, e.pixels + row * 12, &err) == 0, "%s", err.msg);
        /* The image loader (runtime/image.h) packs the same way. */
        static float alt[16 * 12];
        CHECK(rl_image_to_patches(img, 3, H, W, 2, 2, alt, &err) == 0 &&
              memcmp(alt, e.pixels + row * 12, (size_t)(H * W * 3) * sizeof(float)) == 0);
        row += grid[2 * b] * grid[2 * b + 1];
        rl_free(img);
    }
    CHECK(px && n_px == (size_t)(row * 12) && memcmp(px, e.pixels, n_px * sizeof(float)) == 0);
    rl_free(px);
    float *dout = read_ref(st, "input.dout", NULL), *want = read_ref(st, "out.embeds", NULL);
    if (dout && want) {
        memset(p->grad, 0, p->numel * sizeof(float));
        rl_vit_forward(e.v, &e.run, e.pixels, e.grid, e.out);
        double eo = rel_max(e.out, want, (size_t)e.n_out);
        CHECK_MSG(eo <= 1e-4, "embeds differ from torch: rel err %g", eo);
        if (keep_out) memcpy(keep_out, e.out, (size_t)e.n_out * sizeof(float));
        rl_vit_backward(e.v, &e.run, e.pixels, dout, p->grad);
        double worst = 0;
        const char *wname = "";
        for (int i = 0; i < p->n; i++) {
            char name[160];
            snprintf(name, sizeof name, "grad.%s", p->entries[i].name);
            float *gr = read_ref(st, name, NULL);
            if (!gr) continue;
            double r = rel_max(p->grad + p->entries[i].offset, gr, (size_t)rl_shape_numel(&p->entries[i].shape));
            if (r > worst) { worst = r; wname = p->entries[i].name; }
            rl_free(gr);
        }
        CHECK_MSG(worst <= 1e-4, "gradient of '%s' differs from torch: rel err %g", wname, worst);
        if (threads == 1) printf("torch parity: embeds rel err %.2e, worst gradient rel err %.2e (%s)\n", eo, worst, wname);
    }
    rl_free(dout);
    rl_free(want);
    enc_free(&e);
    rl_st_close(st);
}

static void test_bad(void) {
    rl_error err = {0};
    rl_vit_config c = {.width = 18, .depth = 1, .heads = 3, .out_hidden = 8};
    CHECK(rl_vit_new(&c, 1, &err) == NULL);
    CHECK_MSG(strstr(err.msg, "multiple of 4"), "%s", err.msg);
    c = (rl_vit_config){.width = 16, .depth = 1, .heads = 5, .out_hidden = 8};
    CHECK(rl_vit_new(&c, 1, &err) == NULL && strstr(err.msg, "not divisible"));
    c = (rl_vit_config){.width = 16, .depth = 1, .heads = 2, .out_hidden = 8};
    rl_vit *v = rl_vit_new(&c, 1, &err);
    CHECK(v && v->cfg.patch == 14 && v->cfg.merge == 2 && v->cfg.mlp == 64);
    const int32_t odd[4] = {2, 2, 3, 4};
    CHECK(rl_vit_check_grid(&v->cfg, odd, 2, 16, NULL, NULL, &err) != 0);
    CHECK_MSG(strstr(err.msg, "image 1") && strstr(err.msg, "28 pixels"), "%s", err.msg);
    const int32_t ok[4] = {2, 2, 4, 2};
    CHECK(rl_vit_check_grid(&v->cfg, ok, 2, 13, NULL, NULL, &err) != 0 && strstr(err.msg, "13"));
    int64_t len = 0, nm = 0;
    CHECK(rl_vit_check_grid(&v->cfg, ok, 2, 12, &len, &nm, &err) == 0 && len == 8 && nm == 3);
    static float img[3 * 28 * 42], out[6 * 3 * 14 * 14];
    CHECK(rl_vit_patchify(&v->cfg, img, 28, 42, out, &err) != 0 && strstr(err.msg, "28 x 42"));
    rl_vit_free(v);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_layernorm();
    test_gelu();
    test_rope();
    test_attention();
    const rl_vit_config merger_only = {.patch = 2, .channels = 3, .width = 8, .depth = 0, .heads = 2, .mlp = 8,
                                       .out_hidden = 5, .merge = 2};
    check_encoder_fd(&merger_only, "merger (depth 0)", 250);
    const rl_vit_config micro = {.patch = 2, .channels = 3, .width = 8, .depth = 2, .heads = 2, .mlp = 12,
                                 .out_hidden = 5, .merge = 2};
    check_encoder_fd(&micro, "encoder", 200);
    static float o1[7 * 12], o2[7 * 12];
    test_parity(1, o1);
    test_parity(2, o2);
    CHECK_MSG(memcmp(o1, o2, sizeof o1) == 0, "1 and 2 threads differ");
    test_bad();
    return rl_test_finish("test_vit_grad");
}
