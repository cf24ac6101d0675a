/* Finite-difference checks of the policy's kernels: causal GQA attention,
 * RoPE, SwiGLU, the fused LM head (log-prob + entropy) and the Qwen2
 * RMSNorm; plus attention with a cache offset (the decode layout) equal to
 * full recomputation, and LM-head results independent of the chunk size. */
#include <math.h>
#include <string.h>

#include "kernels_attn.h"
#include "qwen2.h"
#include "testlib.h"

#define TOL 2e-2
#define EPS 1e-2

/* ---- attention -------------------------------------------------------- */
enum { H = 4, HK = 2, HD = 4, ROWS = 8, QS = H * HD, KS = HK * HD };
static float aq[ROWS * QS], ak[ROWS * KS], av[ROWS * KS], ao[ROWS * QS], alse[ROWS * H], aw[ROWS * QS];
static float ascratch[4096]; /* >= rl_attn_scratch_floats(8, 8, HD, 2), checked in test_attention */
static const rl_attn_seq aseqs[2] = {{0, 3, 0, 0}, {3, 5, 3, 0}};
static const rl_attn_dims adims = {H, HK, HD};

static double attn_f(void *ctx) {
    (void)ctx;
    rl_attn_forward(aq, ak, av, ao, alse, aseqs, 2, adims, 8, 8, ascratch, 2);
    double s = 0;
    for (int i = 0; i < ROWS * QS; i++) s += (double)aw[i] * ao[i];
    return s;
}

static void test_attention(void) {
    CHECK(rl_attn_scratch_floats(8, 8, HD, 2) <= sizeof ascratch / sizeof ascratch[0]);
    rl_test_fill(aq, ROWS * QS, 1);
    rl_test_fill(ak, ROWS * KS, 2);
    rl_test_fill(av, ROWS * KS, 3);
    rl_test_fill(aw, ROWS * QS, 4);
    for (int i = 0; i < ROWS * QS; i++) aq[i] *= 2.0f; /* sharper attention */
    static float dq[ROWS * QS], dk[ROWS * KS], dv[ROWS * KS];
    attn_f(NULL);
    rl_attn_backward(aq, ak, av, ao, alse, aw, dq, dk, dv, aseqs, 2, adims, 8, 8, ascratch, 2);
    double eq = rl_test_gradcheck(aq, ROWS * QS, dq, attn_f, NULL, EPS, 0);
    double ek = rl_test_gradcheck(ak, ROWS * KS, dk, attn_f, NULL, EPS, 0);
    double ev = rl_test_gradcheck(av, ROWS * KS, dv, attn_f, NULL, EPS, 0);
    CHECK_MSG(eq < TOL, "attention dq rel err %g", eq);
    CHECK_MSG(ek < TOL, "attention dk rel err %g", ek);
    CHECK_MSG(ev < TOL, "attention dv rel err %g", ev);

    /* Query 0 of sequence 0 sees only key 0: output equals v row 0 of its kv head. */
    attn_f(NULL);
    CHECK(fabsf(ao[0] - av[0]) < 1e-6f && fabsf(ao[3 * HD] - av[HD]) < 1e-6f);

    /* Decode layout: the last 2 queries of sequence 1 against its cached keys
       (k_row 3, pos0 3) give the same rows as the full computation. */
    static float o2[ROWS * QS];
    memset(o2, 0, sizeof o2);
    rl_attn_seq tail = {6, 2, 3, 3};
    rl_attn_forward(aq, ak, av, o2, NULL, &tail, 1, adims, 2, 8, ascratch, 1);
    double worst = 0;
    for (int i = 6 * QS; i < 8 * QS; i++) worst = fmax(worst, fabs(o2[i] - ao[i]));
    CHECK_MSG(worst < 1e-6, "cached-key attention differs by %g", worst);
}

/* ---- RoPE -------------------------------------------------------------- */
enum { RROWS = 5, RH = 2, RHD = 6 };
static float rx[RROWS * RH * RHD], ry[RROWS * RH * RHD], rw[RROWS * RH * RHD];
static float rcos[8 * 3], rsin[8 * 3];
static const int32_t rpos[RROWS] = {0, 1, 2, 7, 4};

static double rope_f(void *ctx) {
    (void)ctx;
    memcpy(ry, rx, sizeof rx);
    rl_rope_apply(ry, RROWS, RH, RHD, rpos, rcos, rsin, 0, 2);
    double s = 0;
    for (int i = 0; i < RROWS * RH * RHD; i++) s += (double)rw[i] * ry[i];
    return s;
}

static void test_rope(void) {
    rl_rope_table(rcos, rsin, 8, RHD, 10000.0);
    rl_test_fill(rx, RROWS * RH * RHD, 5);
    rl_test_fill(rw, RROWS * RH * RHD, 6);
    static float g[RROWS * RH * RHD];
    memcpy(g, rw, sizeof g);
    rl_rope_apply(g, RROWS, RH, RHD, rpos, rcos, rsin, 1, 2);
    double e = rl_test_gradcheck(rx, RROWS * RH * RHD, g, rope_f, NULL, EPS, 0);
    CHECK_MSG(e < TOL, "rope rel err %g", e);
    /* Position 0 is the identity; rotation preserves each pair's norm. */
    rope_f(NULL);
    CHECK(memcmp(ry, rx, RH * RHD * sizeof(float)) == 0);
    float a = rx[3 * RH * RHD], b = rx[3 * RH * RHD + 3], a2 = ry[3 * RH * RHD], b2 = ry[3 * RH * RHD + 3];
    CHECK(fabsf(a * a + b * b - a2 * a2 - b2 * b2) < 1e-5f);
}

/* ---- SwiGLU ------------------------------------------------------------ */
enum { SN = 37 };
static float sg[SN], su[SN], sm[SN], sw[SN];

static double swiglu_f(void *ctx) {
    (void)ctx;
    rl_swiglu_forward(sg, su, sm, SN, 2);
    double s = 0;
    for (int i = 0; i < SN; i++) s += (double)sw[i] * sm[i];
    return s;
}

static void test_swiglu(void) {
    rl_test_fill(sg, SN, 7);
    rl_test_fill(su, SN, 8);
    rl_test_fill(sw, SN, 9);
    for (int i = 0; i < SN; i++) sg[i] *= 4.0f;
    static float dg[SN], du[SN], m[SN], dg2[SN], du2[SN];
    rl_swiglu_backward(sg, su, sw, dg, du, NULL, SN, 2);
    double eg = rl_test_gradcheck(sg, SN, dg, swiglu_f, NULL, EPS, 0);
    double eu = rl_test_gradcheck(su, SN, du, swiglu_f, NULL, EPS, 0);
    CHECK_MSG(eg < TOL && eu < TOL, "swiglu rel err %g %g", eg, eu);
    /* With m asked for: the forward's m, and the same gradients with dm
       passed in the dg array (in place, as the policy calls it). */
    memcpy(dg2, sw, sizeof dg2);
    rl_swiglu_backward(sg, su, dg2, dg2, du2, m, SN, 2);
    rl_swiglu_forward(sg, su, sm, SN, 1);
    CHECK_MSG(memcmp(m, sm, sizeof m) == 0, "swiglu backward's m differs from the forward's");
    CHECK_MSG(memcmp(dg, dg2, sizeof dg) == 0 && memcmp(du, du2, sizeof du) == 0,
              "swiglu backward with m and dm in place differs");
}

/* ---- fused LM head ----------------------------------------------------- */
enum { LR = 7, LD = 5, LV = 11 };
static float lx[LR * LD], lw[LV * LD], lcoef[2 * LR], llogp[LR], lent[LR], llse[LR], lscr[LR * LV];
static const int32_t ltgt[LR] = {3, 0, 10, -1, 5, -2, 7};
static int64_t lchunk = 3;

static double lm_f(void *ctx) {
    (void)ctx;
    rl_lmhead_forward(lx, lw, LR, LD, LV, ltgt, lchunk, lscr, llogp, lent, llse, 2);
    double s = 0;
    for (int r = 0; r < LR; r++) s += (double)lcoef[r] * llogp[r] + (double)lcoef[LR + r] * lent[r];
    return s;
}

static void test_lmhead(void) {
    rl_test_fill(lx, LR * LD, 10);
    rl_test_fill(lw, LV * LD, 11);
    rl_test_fill(lcoef, 2 * LR, 12);
    for (int i = 0; i < LV * LD; i++) lw[i] *= 3.0f;
    lm_f(NULL);
    /* Direct check of one row against a plain softmax. */
    {
        double z[LV], mx = -1e30, sum = 0, H = 0;
        for (int j = 0; j < LV; j++) {
            z[j] = 0;
            for (int i = 0; i < LD; i++) z[j] += (double)lx[2 * LD + i] * lw[j * LD + i];
            mx = fmax(mx, z[j]);
        }
        for (int j = 0; j < LV; j++) sum += exp(z[j] - mx);
        for (int j = 0; j < LV; j++) {
            double lp = z[j] - mx - log(sum);
            H -= exp(lp) * lp;
        }
        CHECK(fabs(llogp[2] - (z[10] - mx - log(sum))) < 1e-5);
        CHECK(fabs(lent[2] - H) < 1e-5);
        CHECK(llogp[3] == 0.0f && lent[3] > 0.0f); /* -1: entropy only */
        CHECK(llogp[5] == 0.0f && lent[5] == 0.0f); /* -2: skipped */
    }
    static float dx[LR * LD], dw[LV * LD];
    memset(dw, 0, sizeof dw);
    rl_lmhead_backward(lx, lw, LR, LD, LV, ltgt, lchunk, lscr, 0, llse, lent, lcoef, lcoef + LR, dx, dw, 2);
    double ex = rl_test_gradcheck(lx, LR * LD, dx, lm_f, NULL, EPS, 0);
    double ew = rl_test_gradcheck(lw, LV * LD, dw, lm_f, NULL, EPS, 0);
    CHECK_MSG(ex < TOL, "lm head dx rel err %g", ex);
    CHECK_MSG(ew < TOL, "lm head dw rel err %g", ew);

    /* Only the entropy gradient (logp grad absent). */
    memset(dw, 0, sizeof dw);
    lm_f(NULL);
    rl_lmhead_backward(lx, lw, LR, LD, LV, ltgt, lchunk, lscr, 0, llse, lent, NULL, lcoef + LR, dx, dw, 2);
    float saved[LR];
    memcpy(saved, lcoef, sizeof saved);
    memset(lcoef, 0, sizeof saved);
    double ee = rl_test_gradcheck(lx, LR * LD, dx, lm_f, NULL, EPS, 0);
    memcpy(lcoef, saved, sizeof saved);
    CHECK_MSG(ee < TOL, "lm head entropy-only dx rel err %g", ee);

    /* Chunk size changes nothing but the summation grouping. */
    float lp1[LR], en1[LR];
    lchunk = 1;
    lm_f(NULL);
    memcpy(lp1, llogp, sizeof lp1);
    memcpy(en1, lent, sizeof en1);
    lchunk = LR;
    lm_f(NULL);
    double d = 0;
    for (int r = 0; r < LR; r++) d = fmax(d, fmax(fabs(lp1[r] - llogp[r]), fabs(en1[r] - lent[r])));
    CHECK_MSG(d < 1e-5, "chunked LM head differs by %g", d);

    /* One chunk for all rows: a backward from the logits the forward left in
       scratch gives the same bits as one that recomputes them. */
    static float dx2[LR * LD], dw2[LV * LD];
    memset(dw, 0, sizeof dw);
    memset(dw2, 0, sizeof dw2);
    lm_f(NULL); /* lchunk = LR: the scratch now holds every row's logits */
    rl_lmhead_backward(lx, lw, LR, LD, LV, ltgt, lchunk, lscr, 1, llse, lent, lcoef, lcoef + LR, dx2, dw2, 2);
    rl_lmhead_backward(lx, lw, LR, LD, LV, ltgt, lchunk, lscr, 0, llse, lent, lcoef, lcoef + LR, dx, dw, 2);
    CHECK_MSG(memcmp(dx, dx2, sizeof dx) == 0 && memcmp(dw, dw2, sizeof dw) == 0,
              "LM head backward from kept logits differs from the recomputing one");
    lchunk = 3;
}

/* ---- RMSNorm ----------------------------------------------------------- */
enum { NR = 4, ND = 9 };
static float nx[NR * ND], nw[ND], ny[NR * ND], nc[NR * ND], nrstd[NR];

static double norm_f(void *ctx) {
    (void)ctx;
    rl_qwen2_rmsnorm(nx, nw, ny, nrstd, NR, ND, 1e-6f);
    double s = 0;
    for (int i = 0; i < NR * ND; i++) s += (double)nc[i] * ny[i];
    return s;
}

static void test_rmsnorm(void) {
    rl_test_fill(nx, NR * ND, 13);
    rl_test_fill(nw, ND, 14);
    rl_test_fill(nc, NR * ND, 15);
    norm_f(NULL);
    static float dx[NR * ND], dw[ND];
    memset(dw, 0, sizeof dw);
    rl_qwen2_rmsnorm_backward(nx, nw, nrstd, nc, dx, dw, NR, ND, 0);
    double ex = rl_test_gradcheck(nx, NR * ND, dx, norm_f, NULL, EPS, 0);
    double ew = rl_test_gradcheck(nw, ND, dw, norm_f, NULL, EPS, 0);
    CHECK_MSG(ex < TOL && ew < TOL, "rmsnorm rel err %g %g", ex, ew);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    test_attention();
    test_rope();
    test_swiglu();
    test_lmhead();
    test_rmsnorm();
    return rl_test_finish("test_attn_grad");
}
