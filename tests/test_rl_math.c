/* RL formulas (runtime/rl_math.c): hand-computed cases for every formula and
 * mode, PyTorch references (tests/gen_rl_refs.py -> tests/ref/rl_*.safetensors,
 * rel err <= 1e-5) and finite-difference checks of the loss gradients. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "rl_math.h"
#include "testlib.h"

#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol))

/* ---- a minimal reader for the committed reference files (F32 only) ----
 * Kept local so this test depends on nothing but rl_math; it reads the same
 * layout the generator writes: u64 header length, JSON header, raw data. */
typedef struct ref_file {
    unsigned char *buf;
    size_t size, data_off;
    json_t *hdr;
} ref_file;

static int ref_open(ref_file *r, const char *rel) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(rl_test_path(rel), "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", rl_test_path(rel)); return -1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    r->buf = malloc((size_t)n);
    r->size = (size_t)n;
    if (!r->buf || fread(r->buf, 1, r->size, f) != r->size || r->size < 8) { fclose(f); return -1; }
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | r->buf[i];
    if (hl > r->size - 8) return -1;
    r->hdr = json_loadb((const char *)r->buf + 8, (size_t)hl, 0, NULL);
    r->data_off = 8 + (size_t)hl;
    return r->hdr ? 0 : -1;
}

static void ref_close(ref_file *r) {
    if (r->hdr) json_decref(r->hdr);
    free(r->buf);
}

/* Returns a malloc'd copy of tensor `name` (count in *n), or NULL. */
static float *ref_get(ref_file *r, const char *name, size_t *n) {
    json_t *t = json_object_get(r->hdr, name);
    if (!t || strcmp(json_string_value(json_object_get(t, "dtype")), "F32") != 0) {
        fprintf(stderr, "reference tensor '%s' missing or not F32\n", name);
        return NULL;
    }
    json_t *offs = json_object_get(t, "data_offsets");
    size_t a = (size_t)json_integer_value(json_array_get(offs, 0));
    size_t b = (size_t)json_integer_value(json_array_get(offs, 1));
    if (b < a || r->data_off + b > r->size) return NULL;
    float *x = malloc(b - a + 4);
    memcpy(x, r->buf + r->data_off + a, b - a);
    if (n) *n = (b - a) / 4;
    return x;
}

/* Compares out[0..n) with reference `name`; relative error with floor 1e-3
 * (differences below 1e-8 absolute are float rounding of values near 0). */
static void check_ref(ref_file *r, const char *name, const float *out, size_t n) {
    size_t m = 0;
    float *want = ref_get(r, name, &m);
    CHECK_MSG(want && m == n, "%s: reference missing or size %zu != %zu", name, m, n);
    if (!want || m != n) { free(want); return; }
    size_t worst = 0;
    double e = rl_test_max_rel_err(out, want, n, 1e-3f, &worst);
    CHECK_MSG(e <= 1e-5, "%s: rel err %.3g at %zu (got %.9g want %.9g)", name, e, worst, out[worst], want[worst]);
    free(want);
}

/* ---- KL estimators ---- */

static void test_kl(void) {
    /* l = 0.5: k1 = 0.5, k2 = 0.125, k3 = e^-0.5 - 1 + 0.5 = 0.1065306597;
     * d/dlogp: 1, 0.5, 1 - e^-0.5 = 0.3934693403. */
    CHECK(NEAR(rl_kl_value(RL_KL_K1, 0.5), 0.5, 1e-12));
    CHECK(NEAR(rl_kl_value(RL_KL_K2, 0.5), 0.125, 1e-12));
    CHECK(NEAR(rl_kl_value(RL_KL_K3, 0.5), 0.1065306597, 1e-9));
    CHECK(NEAR(rl_kl_grad(RL_KL_K1, 0.5), 1.0, 1e-12));
    CHECK(NEAR(rl_kl_grad(RL_KL_K2, 0.5), 0.5, 1e-12));
    CHECK(NEAR(rl_kl_grad(RL_KL_K3, 0.5), 0.3934693403, 1e-9));
    CHECK(rl_kl_value(RL_KL_K3, 0.0) == 0.0); /* k3 >= 0 with equality at l = 0 */
    rl_kl_estimator e;
    rl_error err = {0};
    CHECK(rl_kl_estimator_parse("k2", &e, &err) == 0 && e == RL_KL_K2);
    CHECK(rl_kl_estimator_parse("low_var_kl", &e, &err) == 0 && e == RL_KL_K3);
    CHECK(rl_kl_estimator_parse("k4", &e, &err) == -1 && strstr(err.msg, "'k4'"));
}

/* ---- flow reward ---- */

static void flow1(const float *score, const float *mask, int64_t T, rl_flow_reward_cfg *c, float *r,
                  rl_flow_reward_stats *st) {
    int32_t idx[16];
    rl_error err = {0};
    CHECK(rl_flow_reward(score, mask, NULL, 1, T, c, r, idx, st, &err) == 0);
}

static void test_flow_reward_hand(void) {
    rl_flow_reward_cfg c;
    rl_flow_reward_cfg_default(&c);
    CHECK(c.threshold == 0.6 && c.topk == 15 && c.coef == 0.01 && c.power == 1.0);
    /* Valid tokens 0..4, position 5 is padding (its score 100 must be ignored).
     * minmax: S = [1,3,2,5,4] -> s = [0, .5, .25, 1, .75]; s > .6 keeps positions
     * 3 and 4; r = -0.01*s = [0, 0, 0, -0.01, -0.0075, 0]. */
    float s1[6] = {1, 3, 2, 5, 4, 100}, m1[6] = {1, 1, 1, 1, 1, 0}, r[6];
    rl_flow_reward_stats st;
    flow1(s1, m1, 6, &c, r, &st);
    const float w1[6] = {0, 0, 0, -0.01f, -0.0075f, 0};
    for (int k = 0; k < 6; k++) CHECK_MSG(NEAR(r[k], w1[k], 1e-9), "minmax r[%d] = %g", k, r[k]);
    CHECK(st.n_rewarded == 2 && NEAR(st.reward_sum, -0.0175, 1e-8));
    /* top-1: only the largest (position 3). */
    c.topk = 1;
    flow1(s1, m1, 6, &c, r, &st);
    CHECK(NEAR(r[3], -0.01, 1e-9) && r[4] == 0 && st.n_rewarded == 1);
    /* Ties: S = [2,5,5,1,5] -> s = [.25,1,1,0,1]; top-2 takes the two earliest
     * of the tied maxima (positions 1, 2), never position 4. */
    float s2[5] = {2, 5, 5, 1, 5}, m2[5] = {1, 1, 1, 1, 1};
    c.topk = 2;
    flow1(s2, m2, 5, &c, r, &st);
    CHECK(r[1] != 0 && r[2] != 0 && r[4] == 0 && r[0] == 0 && st.n_rewarded == 2);
    /* Guard: all scores equal (max = min) -> s = 0 everywhere -> no reward. */
    float s3[4] = {7, 7, 7, 7}, m3[4] = {1, 1, 1, 1};
    c.topk = 15;
    flow1(s3, m3, 4, &c, r, &st);
    CHECK(r[0] == 0 && r[1] == 0 && r[2] == 0 && r[3] == 0 && st.n_rewarded == 0);
    /* power 2 (minmax): s^2 = [0, .25, .0625, 1, .5625]; threshold .5 keeps 3 and 4:
     * r = [0,0,0,-0.01,-0.005625]. */
    c.power = 2;
    c.threshold = 0.5;
    flow1(s1, m1, 6, &c, r, &st);
    CHECK(NEAR(r[3], -0.01, 1e-9) && NEAR(r[4], -0.005625, 1e-9) && r[1] == 0 && st.n_rewarded == 2);
    /* bilateral: s = 2*[0,.5,.25,1,.75]-1 = [-1, 0, -.5, 1, .5]; |s| > .6 keeps 0 and 3:
     * r = [+0.01, 0, 0, -0.01, 0] (low-deviation tokens get a bonus). */
    rl_flow_reward_cfg_default(&c);
    c.norm = RL_FLOW_NORM_MINMAX_BILATERAL;
    flow1(s1, m1, 6, &c, r, &st);
    const float w2[6] = {0.01f, 0, 0, -0.01f, 0, 0};
    for (int k = 0; k < 6; k++) CHECK_MSG(NEAR(r[k], w2[k], 1e-9), "bilateral r[%d] = %g", k, r[k]);
    /* top-1 by |s|: |-1| = |1| tie -> the earlier position 0. */
    c.topk = 1;
    flow1(s1, m1, 6, &c, r, &st);
    CHECK(NEAR(r[0], 0.01, 1e-9) && r[3] == 0);
    /* sign-preserving power 3: s = [-1, 0, -.125, 1, .125]; threshold .1 keeps
     * 0, 2, 3, 4: r = [.01, 0, .00125, -.01, -.00125]. */
    c.topk = 15;
    c.power = 3;
    c.threshold = 0.1;
    flow1(s1, m1, 6, &c, r, &st);
    const float w3[6] = {0.01f, 0, 0.00125f, -0.01f, -0.00125f, 0};
    for (int k = 0; k < 6; k++) CHECK_MSG(NEAR(r[k], w3[k], 1e-9), "bilateral^3 r[%d] = %g", k, r[k]);
    /* score_mask: dropping position 3 (the max) renormalises over [1,3,2,_,4]:
     * minmax s = [0, 2/3, 1/3, -, 1]; > .6 keeps 1 and 4. */
    rl_flow_reward_cfg_default(&c);
    float sm[6] = {1, 1, 1, 0, 1, 1};
    int32_t idx[6];
    rl_error err = {0};
    CHECK(rl_flow_reward(s1, m1, sm, 1, 6, &c, r, idx, &st, &err) == 0);
    CHECK(NEAR(r[1], -0.01 * 2.0 / 3.0, 1e-9) && NEAR(r[4], -0.01, 1e-9) && r[3] == 0 && r[0] == 0);
    /* A NaN score on a scored token is an error naming it; on padding it is ignored. */
    float s4[3] = {1, NAN, 2}, m4[3] = {1, 1, 1};
    CHECK(rl_flow_reward(s4, m4, NULL, 1, 3, &c, r, idx, &st, &err) == -1);
    CHECK(strstr(err.msg, "response 0, position 1") != NULL);
    m4[1] = 0;
    CHECK(rl_flow_reward(s4, m4, NULL, 1, 3, &c, r, idx, &st, &err) == 0);
    rl_flow_norm nm;
    CHECK(rl_flow_norm_parse("minmax_bilateral", &nm, &err) == 0 && nm == RL_FLOW_NORM_MINMAX_BILATERAL);
    CHECK(rl_flow_norm_parse("zscore", &nm, &err) == -1);
}

/* ---- outcome advantages, returns, whitening, entropy shaping ---- */

static void test_advantages_hand(void) {
    rl_error err = {0};
    /* One group R = [1, 0, 0, 1]: mean .5, unbiased std sqrt(4*.25/3) = 0.5773502692.
     * group_norm (eps 0): +-.5/.57735 = +-0.8660254038; rloo: 1 - 1/3 = 2/3,
     * 0 - 2/3 = -2/3; dr_grpo and reinforce_baseline: +-0.5. */
    float R[4] = {1, 0, 0, 1}, a[4];
    CHECK(rl_outcome_advantage(R, NULL, 4, 4, RL_ADV_GROUP_NORM, 0, a, &err) == 0);
    CHECK(NEAR(a[0], 0.8660254038, 1e-6) && NEAR(a[1], -0.8660254038, 1e-6));
    CHECK(rl_outcome_advantage(R, NULL, 4, 4, RL_ADV_RLOO, 0, a, &err) == 0);
    CHECK(NEAR(a[0], 2.0 / 3.0, 1e-6) && NEAR(a[2], -2.0 / 3.0, 1e-6));
    CHECK(rl_outcome_advantage(R, NULL, 4, 4, RL_ADV_DR_GRPO, 0, a, &err) == 0);
    CHECK(NEAR(a[0], 0.5, 1e-7) && NEAR(a[1], -0.5, 1e-7));
    CHECK(rl_outcome_advantage(R, NULL, 4, 4, RL_ADV_REINFORCE_BASELINE, 0, a, &err) == 0);
    CHECK(NEAR(a[3], 0.5, 1e-7) && NEAR(a[2], -0.5, 1e-7));
    /* Two groups of 2: [1, 0] and [.5, .5]; the zero-variance group gets 0
     * (0/(0+eps)); the other: std = .7071 -> +-.5/.7071 = +-.7071. */
    float R2[4] = {1, 0, 0.5f, 0.5f};
    CHECK(rl_outcome_advantage(R2, NULL, 4, 2, RL_ADV_GROUP_NORM, 1e-6, a, &err) == 0);
    CHECK(NEAR(a[0], 0.7071057, 1e-5) && a[2] == 0 && a[3] == 0);
    /* keep: response 3 of group [1, 0, 0, 1] dropped -> stats over [1, 0, 0]:
     * mean 1/3, dr_grpo: [2/3, -1/3, -1/3, 0]. */
    float keep[4] = {1, 1, 1, 0};
    CHECK(rl_outcome_advantage(R, keep, 4, 4, RL_ADV_DR_GRPO, 0, a, &err) == 0);
    CHECK(NEAR(a[0], 2.0 / 3.0, 1e-6) && NEAR(a[1], -1.0 / 3.0, 1e-6) && a[3] == 0);
    /* Group size 1: baseline 0, scale 1 -> A = R; rloo refuses. */
    CHECK(rl_outcome_advantage(R2, NULL, 4, 1, RL_ADV_GROUP_NORM, 1e-6, a, &err) == 0 && a[0] == 1 && a[2] == 0.5f);
    CHECK(rl_outcome_advantage(R2, NULL, 4, 1, RL_ADV_RLOO, 1e-6, a, &err) == -1 && strstr(err.msg, "rloo"));
    /* Shape and value errors. */
    CHECK(rl_outcome_advantage(R2, NULL, 4, 3, RL_ADV_GROUP_NORM, 1e-6, a, &err) == -1 && strstr(err.msg, "groups of 3"));
    R2[1] = INFINITY;
    CHECK(rl_outcome_advantage(R2, NULL, 4, 2, RL_ADV_GROUP_NORM, 1e-6, a, &err) == -1 && strstr(err.msg, "response 1"));
    rl_adv_estimator est;
    CHECK(rl_adv_estimator_parse("reinforce_baseline", &est, &err) == 0 && est == RL_ADV_REINFORCE_BASELINE);
    CHECK(rl_adv_estimator_parse("gae", &est, &err) == -1);

    /* Returns, gamma 1, no KL: mask [0,1,1,1], A-hat 2, flow [0,-.01,0,-.02]:
     * rho = [-, -.01, 0, 2-.02]; A = [0, 1.97, 1.98, 1.98]. */
    float m[4] = {0, 1, 1, 1}, adv = 2, fl[4] = {0, -0.01f, 0, -0.02f}, A[4];
    rl_returns(&adv, m, fl, NULL, 0, NULL, 1, 4, 1.0, A);
    CHECK(A[0] == 0 && NEAR(A[1], 1.97, 1e-6) && NEAR(A[2], 1.98, 1e-6) && NEAR(A[3], 1.98, 1e-6));
    /* gamma .5, KL [0,.1,.2,.3] with coef 1, A-hat 1, no flow: rho = [-, -.1, -.2, .7];
     * A3 = .7, A2 = -.2 + .35 = .15, A1 = -.1 + .075 = -.025. */
    float kl[4] = {0, 0.1f, 0.2f, 0.3f};
    adv = 1;
    rl_returns(&adv, m, NULL, kl, 1.0, NULL, 1, 4, 0.5, A);
    CHECK(NEAR(A[3], 0.7, 1e-6) && NEAR(A[2], 0.15, 1e-6) && NEAR(A[1], -0.025, 1e-6) && A[0] == 0);
    float k0 = 0;
    rl_returns(&adv, m, fl, kl, 1.0, &k0, 1, 4, 0.5, A);
    CHECK(A[0] == 0 && A[1] == 0 && A[2] == 0 && A[3] == 0);

    /* Whitening over valid tokens [1, 2, 3] (padding excluded): mean 2, std 1 -> [-1, 0, 1]. */
    float W[4] = {9, 1, 2, 3};
    rl_whiten_tokens(W, m, NULL, 1, 4, 0);
    CHECK(W[0] == 0 && NEAR(W[1], -1, 1e-6) && NEAR(W[2], 0, 1e-6) && NEAR(W[3], 1, 1e-6));

    /* Entropy shaping, alpha .4, kappa 2: (A=1, H=.5) -> 1 + min(.2, .5) = 1.2;
     * (1, 5) -> 1 + min(2, .5) = 1.5; (-1, 5) -> -1 + .5 = -.5 (sign kept);
     * (0, 3) -> 0; padding keeps A. */
    float EA[5] = {1, 1, -1, 0, 4}, EH[5] = {0.5f, 5, 5, 3, 1}, EM[5] = {1, 1, 1, 1, 0}, EO[5];
    rl_entropy_shape(EA, EH, EM, 5, 0.4, 2, EO);
    CHECK(NEAR(EO[0], 1.2, 1e-6) && NEAR(EO[1], 1.5, 1e-6) && NEAR(EO[2], -0.5, 1e-6) && EO[3] == 0 && EO[4] == 4);
}

/* ---- PPO surrogate: hand cases ---- */

static void test_pg_hand(void) {
    rl_pg_cfg c;
    rl_pg_cfg_default(&c);
    CHECK(c.clip_low == 0.2 && c.clip_high == 0.2 && c.dual_clip == 0 && c.agg == RL_AGG_SEQ_MEAN_TOKEN_MEAN);
    c.agg = RL_AGG_TOKEN_MEAN;
    float m1 = 1, g;
    rl_pg_stats st;
    /* A = 1, ratio 1.5 > 1.2: u1 = -1.5, u2 = -1.2 -> L = -1.2 (clipped), dL = 0. */
    float lp = (float)log(1.5), old = 0, A = 1;
    g = 0;
    double L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, &g, 1.0f, &st);
    CHECK(NEAR(L, -1.2, 1e-6) && g == 0 && st.clip_frac == 1);
    /* A = 1, ratio 1.1 inside: L = -1.1, dL/dlogp = -A*ratio = -1.1. */
    lp = (float)log(1.1);
    g = 0;
    L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, &g, 1.0f, &st);
    CHECK(NEAR(L, -1.1, 1e-6) && NEAR(g, -1.1, 1e-6) && st.clip_frac == 0);
    /* A = -1, ratio .5 < .8: u1 = .5, u2 = .8 -> L = .8 (clipped, dL 0). */
    A = -1;
    lp = (float)log(0.5);
    g = 0;
    L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, &g, 1.0f, &st);
    CHECK(NEAR(L, 0.8, 1e-6) && g == 0);
    /* A = -1, ratio 5: u1 = 5, u2 = 1.2 -> L = 5, dL = -A*ratio = 5; clip-higher
     * 0.28 does not matter here. Dual clip c = 3: min(5, 3) = 3, dL = 0. */
    lp = (float)log(5.0);
    g = 0;
    L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, &g, 1.0f, &st);
    CHECK(NEAR(L, 5, 1e-5) && NEAR(g, 5, 1e-5));
    c.dual_clip = 3;
    g = 0;
    L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, &g, 1.0f, &st);
    CHECK(NEAR(L, 3, 1e-6) && g == 0 && st.dual_clip_frac == 1);
    /* Dual clip never touches A > 0: A = 1, ratio .5: u1 = -.5, u2 = -.8 -> -.5. */
    A = 1;
    lp = (float)log(0.5);
    L = rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, NULL, 1.0f, &st);
    CHECK(NEAR(L, -0.5, 1e-6));
    /* clip-higher: A = 1, ratio 1.25: with high .28 inside -> -1.25; with .2 -> -1.2. */
    c.dual_clip = 0;
    lp = (float)log(1.25);
    c.clip_high = 0.28;
    CHECK(NEAR(rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, NULL, 1.0f, NULL), -1.25, 1e-6));
    c.clip_high = 0.2;
    CHECK(NEAR(rl_pg_loss(&lp, &old, &A, &m1, NULL, NULL, 1, 1, &c, NULL, 1.0f, NULL), -1.2, 1e-6));

    /* Aggregation: ratio 1 (logp = old = 0), so L_t = -A_t. N = 3 rows of T = 3:
     * row 0 A = [1, 5, pad], row 1 A = [2, pad, pad], row 2 empty.
     * token_mean: -(1+5+2)/3 = -8/3; seq_mean_token_mean over the 2 non-empty
     * rows: -((1+5)/2 + 2)/2 = -2.5; seq_mean_token_sum_norm: -8/(N*T) = -8/9,
     * or with norm_len 4: -8/(3*4) = -2/3. */
    float zl[9] = {0}, zo[9] = {0}, za[9] = {1, 5, 0, 2, 0, 0, 0, 0, 0}, zm[9] = {1, 1, 0, 1, 0, 0, 0, 0, 0};
    rl_pg_cfg_default(&c);
    c.agg = RL_AGG_TOKEN_MEAN;
    CHECK(NEAR(rl_pg_loss(zl, zo, za, zm, NULL, NULL, 3, 3, &c, NULL, 1, NULL), -8.0 / 3.0, 1e-6));
    c.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    CHECK(NEAR(rl_pg_loss(zl, zo, za, zm, NULL, NULL, 3, 3, &c, NULL, 1, NULL), -2.5, 1e-6));
    c.agg = RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM;
    CHECK(NEAR(rl_pg_loss(zl, zo, za, zm, NULL, NULL, 3, 3, &c, NULL, 1, NULL), -8.0 / 9.0, 1e-6));
    c.norm_len = 4;
    CHECK(NEAR(rl_pg_loss(zl, zo, za, zm, NULL, NULL, 3, 3, &c, NULL, 1, NULL), -2.0 / 3.0, 1e-6));
    /* KL loss k3, coef .5, logp - ref = .5 on every token, A = 0: each token adds
     * .5*0.1065306597; token_mean -> 0.05326532985. Metrics: ref_kl = k3 mean,
     * approx_kl = mean(old - logp) = -(0.1) here. */
    float kl_lp[2] = {0.1f, 0.1f}, kl_old[2] = {0, 0}, kl_a[2] = {0, 0}, kl_m[2] = {1, 1}, kl_ref[2] = {-0.4f, -0.4f};
    float ent[2] = {1, 3};
    rl_pg_cfg_default(&c);
    c.agg = RL_AGG_TOKEN_MEAN;
    c.kl_coef = 0.5;
    L = rl_pg_loss(kl_lp, kl_old, kl_a, kl_m, kl_ref, ent, 1, 2, &c, NULL, 1, &st);
    CHECK(NEAR(L, 0.5 * 0.1065306597, 1e-6) && NEAR(st.ref_kl, 0.1065306597, 1e-6));
    CHECK(NEAR(st.approx_kl, -0.1, 1e-6) && NEAR(st.entropy, 2, 1e-6) && st.n_tokens == 2 && st.pg_loss == 0);
    rl_agg_mode am;
    rl_error err = {0};
    CHECK(rl_agg_mode_parse("seq_mean_token_sum_norm", &am, &err) == 0 && am == RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM);
    CHECK(rl_agg_mode_parse("sum", &am, &err) == -1 && strstr(err.msg, "'sum'"));
}

/* ---- finite differences ---- */

typedef struct pg_ctx {
    float *logp, *old, *adv, *mask, *ref;
    int64_t N, T;
    rl_pg_cfg cfg;
} pg_ctx;

static double pg_fn(void *p) {
    pg_ctx *c = p;
    return rl_pg_loss(c->logp, c->old, c->adv, c->mask, c->ref, NULL, c->N, c->T, &c->cfg, NULL, 1, NULL);
}

static void test_pg_gradcheck(void) {
    enum { N = 6, T = 7 };
    float logp[N * T], old[N * T], adv[N * T], mask[N * T], ref[N * T], grad[N * T];
    rl_test_fill(logp, N * T, 11);
    rl_test_fill(old, N * T, 12);
    rl_test_fill(adv, N * T, 13);
    rl_test_fill(ref, N * T, 14);
    for (int k = 0; k < N * T; k++) {
        logp[k] = -1.0f + 0.8f * logp[k];
        old[k] = logp[k] + 0.3f * old[k];   /* ratios spread over both sides of the clip range */
        ref[k] = logp[k] + 0.4f * ref[k];
        adv[k] *= 2.0f;
    }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < T; k++) mask[i * T + k] = (k >= i % 3 && k < T - i % 2) ? 1.0f : 0.0f;
    for (int k = 0; k < T; k++) mask[4 * T + k] = 0; /* an empty row */
    pg_ctx c = {.logp = logp, .old = old, .adv = adv, .mask = mask, .ref = ref, .N = N, .T = T};
    for (int agg = 0; agg < 3; agg++)
        for (int kl = -1; kl < 3; kl++) {
            rl_pg_cfg_default(&c.cfg);
            c.cfg.agg = (rl_agg_mode)agg;
            c.cfg.clip_high = 0.28;
            c.cfg.dual_clip = kl == 2 ? 3.0 : 0.0;
            if (kl >= 0) { c.cfg.kl_coef = 0.3; c.cfg.kl_est = (rl_kl_estimator)kl; }
            memset(grad, 0, sizeof grad);
            /* gscale 1 into zeros; then check accumulation with a second call. */
            rl_pg_loss(logp, old, adv, mask, ref, NULL, N, T, &c.cfg, grad, 1.0f, NULL);
            double e = rl_test_gradcheck(logp, N * T, grad, pg_fn, &c, 1e-3, 0);
            CHECK_MSG(e < 2e-3, "pg_loss gradcheck agg %d kl %d: %.3g", agg, kl, e);
            float g2[N * T];
            memcpy(g2, grad, sizeof g2);
            rl_pg_loss(logp, old, adv, mask, ref, NULL, N, T, &c.cfg, grad, 0.5f, NULL);
            int acc_ok = 1;
            for (int k = 0; k < N * T; k++) acc_ok &= NEAR(grad[k], 1.5f * g2[k], 1e-6);
            CHECK_MSG(acc_ok, "pg_loss gradient does not accumulate with gscale");
        }
}

typedef struct fl_ctx {
    float *tl, *reward, *mask, *ent, *scratch;
    int64_t N, T;
    rl_flow_loss_cfg cfg;
} fl_ctx;

static double fl_fn(void *p) {
    fl_ctx *c = p;
    return rl_flow_loss(c->tl, c->reward, c->mask, c->ent, c->N, c->T, &c->cfg, NULL, c->scratch, NULL);
}

static void test_flow_loss(void) {
    rl_flow_loss_cfg c = {0, 1, 0};
    rl_flow_loss_stats st;
    float sc[4];
    /* Two responses, R = [1, 0]; token losses [1, 3] and [5, 5]: hard weights ->
     * loss = mean(1,3) = 2, gradient .5 on row 0, 0 on row 1.
     * soft_flow .5 -> (2 + .5*5)/1.5 = 3. */
    float tl[4] = {1, 3, 5, 5}, R[2] = {1, 0}, m[4] = {1, 1, 1, 1}, d[4];
    double L = rl_flow_loss(tl, R, m, NULL, 2, 2, &c, d, sc, &st);
    CHECK(NEAR(L, 2, 1e-9) && NEAR(d[0], 0.5, 1e-7) && d[2] == 0 && st.n_accepted == 1 && st.weight_sum == 1);
    c.soft_flow = 0.5;
    L = rl_flow_loss(tl, R, m, NULL, 2, 2, &c, d, sc, &st);
    CHECK(NEAR(L, 3, 1e-9) && NEAR(d[2], 0.5 * 0.5 / 1.5, 1e-7));
    /* No correct response and soft_flow 0: loss 0 and no gradient. */
    c.soft_flow = 0;
    R[0] = 0.5f;
    L = rl_flow_loss(tl, R, m, NULL, 2, 2, &c, d, sc, &st);
    CHECK(L == 0 && d[0] == 0 && d[1] == 0 && st.weight_sum == 0);
    /* Entropy quantile q = .5 on a row with H = [3, 1, 2, 4]: torch-style linear
     * quantile of sorted [1,2,3,4] at pos 1.5 = 2.5; tokens with H >= 2.5 (0, 3)
     * weigh 1, the others soft_flow = 0 -> loss = mean(tl[0], tl[3]) = (2+8)/2 = 5. */
    float tq[4] = {2, 4, 6, 8}, Rq[1] = {1}, mq[4] = {1, 1, 1, 1}, Hq[4] = {3, 1, 2, 4}, dq[4];
    c.entropy_quantile = 0.5;
    L = rl_flow_loss(tq, Rq, mq, Hq, 1, 4, &c, dq, sc, &st);
    CHECK(NEAR(L, 5, 1e-9) && NEAR(dq[0], 0.5, 1e-7) && dq[1] == 0 && NEAR(dq[3], 0.5, 1e-7));
    float qx[4] = {3, 1, 2, 4};
    CHECK(NEAR(rl_quantile_inplace(qx, 4, 0.5), 2.5, 1e-12) && qx[0] == 1 && qx[3] == 4);
    float qy[1] = {7};
    CHECK(rl_quantile_inplace(qy, 1, 0.3) == 7);

    /* Finite differences on random data (with soft weights and the quantile). */
    enum { N = 6, T = 9 };
    float x[N * T], rw[N] = {1, 0, 1.5f, 0.5f, 1, 0}, mm[N * T], H[N * T], g[N * T], s[T];
    rl_test_fill(x, N * T, 21);
    rl_test_fill(H, N * T, 22);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < T; k++) mm[i * T + k] = (k >= i % 2 && k < T - i) ? 1.0f : 0.0f;
    fl_ctx fc = {x, rw, mm, H, s, N, T, {0.2, 1, 0.4}};
    rl_flow_loss(x, rw, mm, H, N, T, &fc.cfg, g, s, NULL);
    double e = rl_test_gradcheck(x, N * T, g, fl_fn, &fc, 1e-3, 0);
    CHECK_MSG(e < 1e-3, "flow_loss gradcheck: %.3g", e);
    fc.cfg.entropy_quantile = 0;
    rl_flow_loss(x, rw, mm, H, N, T, &fc.cfg, g, s, NULL);
    e = rl_test_gradcheck(x, N * T, g, fl_fn, &fc, 1e-3, 0);
    CHECK_MSG(e < 1e-3, "flow_loss gradcheck (no quantile): %.3g", e);
}

static void test_group_filter(void) {
    /* Groups of 3: [1,0,1] mixed -> keep; [0,0,.5] all wrong by correctness
     * (dropped) but not all equal (kept by reward); [1,1,1] all correct -> drop. */
    float R[9] = {1, 0, 1, 0, 0, 0.5f, 1, 1, 1}, keep[9];
    CHECK(rl_group_filter(R, 9, 3, RL_FILTER_CORRECT, 1.0, keep) == 1);
    CHECK(keep[0] == 1 && keep[2] == 1 && keep[3] == 0 && keep[5] == 0 && keep[8] == 0);
    CHECK(rl_group_filter(R, 9, 3, RL_FILTER_REWARD, 1.0, keep) == 2);
    CHECK(keep[3] == 1 && keep[5] == 1 && keep[6] == 0);
}

/* ---- PyTorch references ---- */

static void test_refs(void) {
    enum { N = 8, G = 4, T = 12 };
    ref_file r;
    float *score, *mask, *score_mask, out[N * T];
    int32_t idx[T];
    rl_error err = {0};

    CHECK(ref_open(&r, "tests/ref/rl_flow_reward.safetensors") == 0);
    score = ref_get(&r, "score", NULL);
    mask = ref_get(&r, "mask", NULL);
    score_mask = ref_get(&r, "score_mask", NULL);
    if (score && mask && score_mask) {
        struct { const char *name; rl_flow_norm norm; double power, thr; int64_t topk; double coef; int sm; } cases[] = {
            {"r_a", RL_FLOW_NORM_MINMAX, 1.0, 0.6, 3, 0.01, 1},
            {"r_b", RL_FLOW_NORM_MINMAX, 2.0, 0.3, 0, 0.01, 0},
            {"r_c", RL_FLOW_NORM_MINMAX_BILATERAL, 0.5, 0.5, 2, 0.05, 1},
            {"r_d", RL_FLOW_NORM_MINMAX_BILATERAL, 1.0, 0.6, 15, 0.01, 0},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            rl_flow_reward_cfg cfg = {cases[c].norm, cases[c].power, cases[c].thr, cases[c].topk, cases[c].coef};
            CHECK(rl_flow_reward(score, mask, cases[c].sm ? score_mask : NULL, N, T, &cfg, out, idx, NULL, &err) == 0);
            check_ref(&r, cases[c].name, out, N * T);
        }
    }
    free(score); free(mask); free(score_mask);
    ref_close(&r);

    CHECK(ref_open(&r, "tests/ref/rl_adv.safetensors") == 0);
    float *reward = ref_get(&r, "reward", NULL), *flow_r = ref_get(&r, "flow_r", NULL);
    float *logp = ref_get(&r, "logp", NULL), *ref_logp = ref_get(&r, "ref_logp", NULL);
    float *keep = ref_get(&r, "keep", NULL), *ent = ref_get(&r, "entropy", NULL), *at = ref_get(&r, "adv_tok", NULL);
    mask = ref_get(&r, "mask", NULL);
    if (reward && flow_r && logp && ref_logp && keep && mask && ent && at) {
        const char *ests[] = {"group_norm", "rloo", "reinforce_baseline", "dr_grpo"};
        float adv[N], kl[N * T];
        for (int k = 0; k < N * T; k++) kl[k] = (float)rl_kl_value(RL_KL_K1, (double)logp[k] - ref_logp[k]);
        for (int e = 0; e < 4; e++) {
            char name[64];
            CHECK(rl_outcome_advantage(reward, NULL, N, G, (rl_adv_estimator)e, 1e-6, adv, &err) == 0);
            snprintf(name, sizeof name, "adv_%s", ests[e]);
            check_ref(&r, name, adv, N);
            rl_returns(adv, mask, flow_r, kl, 0.1, NULL, N, T, 0.9, out);
            if (e == RL_ADV_REINFORCE_BASELINE) rl_whiten_tokens(out, mask, NULL, N, T, 1e-6);
            snprintf(name, sizeof name, "ret_%s", ests[e]);
            check_ref(&r, name, out, N * T);
        }
        CHECK(rl_outcome_advantage(reward, NULL, N, G, RL_ADV_GROUP_NORM, 1e-6, adv, &err) == 0);
        rl_returns(adv, mask, flow_r, NULL, 0, NULL, N, T, 1.0, out);
        check_ref(&r, "ret_plain", out, N * T);
        CHECK(rl_outcome_advantage(reward, keep, N, G, RL_ADV_GROUP_NORM, 1e-6, adv, &err) == 0);
        check_ref(&r, "adv_keep", adv, N);
        rl_entropy_shape(at, ent, mask, N * T, 0.4, 2.0, out);
        check_ref(&r, "shaped", out, N * T);
    }
    free(reward); free(flow_r); free(logp); free(ref_logp); free(keep); free(mask); free(ent); free(at);
    ref_close(&r);

    CHECK(ref_open(&r, "tests/ref/rl_pg.safetensors") == 0);
    logp = ref_get(&r, "logp", NULL);
    float *old = ref_get(&r, "old_logp", NULL), *adv = ref_get(&r, "adv", NULL);
    ref_logp = ref_get(&r, "ref_logp", NULL);
    mask = ref_get(&r, "mask", NULL);
    if (logp && old && adv && ref_logp && mask) {
        struct { const char *name; rl_agg_mode agg; double cl, ch, dual, klc; rl_kl_estimator est; double nl; } cases[] = {
            {"tm", RL_AGG_TOKEN_MEAN, 0.2, 0.2, 0, 0, RL_KL_K1, 0},
            {"smtm", RL_AGG_SEQ_MEAN_TOKEN_MEAN, 0.2, 0.28, 0, 0, RL_KL_K1, 0},
            {"smtsn", RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0.2, 0.2, 0, 0, RL_KL_K1, 0},
            {"smtsn_l", RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0.2, 0.2, 0, 0, RL_KL_K1, 20},
            {"dual_k3", RL_AGG_SEQ_MEAN_TOKEN_MEAN, 0.2, 0.2, 1.5, 0.05, RL_KL_K3, 0},
            {"k1", RL_AGG_TOKEN_MEAN, 0.2, 0.28, 0, 0.1, RL_KL_K1, 0},
            {"k2", RL_AGG_TOKEN_MEAN, 0.2, 0.28, 0, 0.1, RL_KL_K2, 0},
            {"k3", RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM, 0.2, 0.28, 3.0, 0.1, RL_KL_K3, 0},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            rl_pg_cfg cfg = {cases[c].cl, cases[c].ch, cases[c].dual, cases[c].agg, cases[c].nl, cases[c].klc,
                             cases[c].est};
            rl_pg_stats st;
            memset(out, 0, sizeof out);
            float loss = (float)rl_pg_loss(logp, old, adv, mask, ref_logp, NULL, N, T, &cfg, out, 1.0f, &st);
            float cf = (float)st.clip_frac;
            char name[64];
            snprintf(name, sizeof name, "loss_%s", cases[c].name);
            check_ref(&r, name, &loss, 1);
            snprintf(name, sizeof name, "grad_%s", cases[c].name);
            check_ref(&r, name, out, N * T);
            snprintf(name, sizeof name, "clipfrac_%s", cases[c].name);
            check_ref(&r, name, &cf, 1);
        }
    }
    free(logp); free(old); free(adv); free(ref_logp); free(mask);
    ref_close(&r);

    CHECK(ref_open(&r, "tests/ref/rl_flow_loss.safetensors") == 0);
    float *tl = ref_get(&r, "token_loss", NULL);
    reward = ref_get(&r, "reward", NULL);
    mask = ref_get(&r, "mask", NULL);
    ent = ref_get(&r, "entropy", NULL);
    if (tl && reward && mask && ent) {
        struct { const char *name; double soft, q; } cases[] = {
            {"hard", 0, 0}, {"soft", 0.3, 0}, {"quant", 0, 0.6}, {"soft_quant", 0.25, 0.35}};
        float scratch[T];
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            rl_flow_loss_cfg cfg = {cases[c].soft, 1.0, cases[c].q};
            float loss = (float)rl_flow_loss(tl, reward, mask, ent, N, T, &cfg, out, scratch, NULL);
            char name[64];
            snprintf(name, sizeof name, "loss_%s", cases[c].name);
            check_ref(&r, name, &loss, 1);
            snprintf(name, sizeof name, "grad_%s", cases[c].name);
            check_ref(&r, name, out, N * T);
        }
    }
    free(tl); free(reward); free(mask); free(ent);
    ref_close(&r);
}

/* The formulas never touch the heap: callers may use them in a node's forward. */
static void test_no_alloc(void) {
    enum { N = 4, T = 5 };
    float a[N * T], b[N * T], m[N * T], o[N * T], s[T], R[N] = {1, 0, 1, 0}, adv[N];
    int32_t idx[T];
    rl_test_fill(a, N * T, 1);
    rl_test_fill(b, N * T, 2);
    for (int k = 0; k < N * T; k++) m[k] = 1;
    rl_flow_reward_cfg fc;
    rl_flow_reward_cfg_default(&fc);
    rl_pg_cfg pc;
    rl_pg_cfg_default(&pc);
    rl_flow_loss_cfg lc = {0, 1, 0.5};
    rl_error err = {0};
    uint64_t before = rl_alloc_count();
    rl_flow_reward(a, m, NULL, N, T, &fc, o, idx, NULL, &err);
    rl_outcome_advantage(R, NULL, N, 2, RL_ADV_GROUP_NORM, 1e-6, adv, &err);
    rl_returns(adv, m, o, NULL, 0, NULL, N, T, 1.0, o);
    rl_whiten_tokens(o, m, NULL, N, T, 1e-6);
    rl_pg_loss(a, b, o, m, b, b, N, T, &pc, o, 1, NULL);
    rl_flow_loss(a, R, m, b, N, T, &lc, o, s, NULL);
    CHECK(rl_alloc_count() == before);
}

/* Flow-score separation, by hand. One group of 4 (T = 2):
 *   r0 correct, scores {1, 3} -> mean 2
 *   r1 wrong,   scores {5, _} -> mean 5 (second token not valid)
 *   r2 correct, scores {6, 6} -> mean 6
 *   r3 wrong,   no valid token -> left out
 * pairs (correct, wrong): (r0, r1) 2 < 5 yes; (r2, r1) 6 < 5 no -> 1/2.
 * mean correct = (2 + 6) / 2 = 4, mean wrong = 5. A second group whose
 * rollouts are all correct adds no pair. */
static void test_flow_separation(void) {
    const float score[] = {1, 3, 5, 9, 6, 6, 7, 7, 1, 1, 2, 2};
    const float valid[] = {1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1};
    const float reward[] = {1, 0.5f, 1, 0, 1, 1};
    double mc, mw;
    int64_t pairs;
    double sep = rl_flow_separation(score, valid, reward, 4, 2, 4, &mc, &mw, &pairs);
    CHECK(pairs == 2 && sep == 0.5 && mc == 4.0 && mw == 5.0);
    /* groups of 2: (r0,r1) pair only in group 0; group 1 has r2 correct, r3 no tokens. */
    sep = rl_flow_separation(score, valid, reward, 4, 2, 2, &mc, &mw, &pairs);
    CHECK(pairs == 1 && sep == 1.0);
    /* all correct: no pair */
    sep = rl_flow_separation(score + 8, valid + 8, reward + 4, 2, 2, 2, &mc, &mw, &pairs);
    CHECK(pairs == 0 && sep == -1);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_kl();
    test_flow_reward_hand();
    test_advantages_hand();
    test_pg_hand();
    test_pg_gradcheck();
    test_flow_loss();
    test_group_filter();
    test_refs();
    test_flow_separation();
    test_no_alloc();
    return rl_test_finish("test_rl_math");
}
