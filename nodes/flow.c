/* flow: the flow-matching node of RLFR (DESIGN.md section 2). Rows come from
 * latent_tap (target x1, condition c, layer fraction tau, index (b, k, group)).
 *
 * mode "train": each row repeated batch_mul times with independent
 *   t ~ logit-normal (sigmoid of N(0,1)) and eps ~ N(0, I);
 *   x_t = t·x1 + (1−t)·eps, u = x1 − eps, l = mean_dims (v_phi(x_t) − u)^2.
 * mode "score": each row once per reward timestep t in `t`, one eps per row
 *   shared across the timesteps.
 * Outputs (both modes):
 *   loss        mean over groups (layer × context mode) of the group's mean
 *               over tokens of mean over repeats/timesteps of l;
 *   token_loss  [B, T]: per token, mean over its groups and repeats of l
 *               (the online update trains on it with per-response weights);
 *   score       [B, T]: per token, mean over its groups of mean_t w(t)·l(t),
 *               w(t) = t/(1−t) for EACH timestep (not the last one for all);
 *   score_mask  [B, T]: 1 where a token received at least one row (a score
 *               from some layer/context group), else 0.
 * Tokens without rows get 0 in score and token_loss. That 0 is "no score",
 * not "lowest score": the shaper's min-max normalisation would take it as
 * the minimum, so score_mask tells it which tokens to normalise over (in
 * token_pre mode the last response token has no context partner).
 * Without the `mask` input (train mode only), token_loss, score and
 * score_mask are [1, 1] zeros.
 * Backward: from loss and from token_loss into the flow's parameters only;
 * every input is NO_GRAD, so nothing reaches the policy. Noise comes from the
 * counter RNG keyed by (run seed, node seed, step, repeat): reproducible, and
 * independent of thread count and chunking.
 * Optional input weight [B] (from flow_weights): rows of responses whose
 * weight is exactly 0 are not computed at all, forward or backward (their
 * tokens get token_loss = score = score_mask = 0, and `loss` averages over the
 * computed rows only). Under pure rejection sampling the online update gives
 * rejected rollouts weight 0, so their rows would be computed for nothing.
 * The noise of a row is drawn at its position in the full row set (counter
 * RNG offsets), so the computed rows see exactly the noise they would see
 * without skipping.
 * Rows run through the network in chunks of at most `chunk`; when all rows
 * fit in one chunk the activations are kept for backward, otherwise backward
 * recomputes each chunk's forward (bounded memory for long sequences). */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "node.h"
#include "rng.h"

enum { IN_TARGET, IN_COND, IN_TAU, IN_INDEX, IN_MASK, IN_WEIGHT, N_IN };
enum { OUT_LOSS, OUT_SCORE, OUT_TOKEN_LOSS, OUT_SCORE_MASK, N_OUT };

#define FW_MAX_GROUPS 256
#define FW_MAX_T 16

static const rl_port_spec fw_inputs[] = {
    {"target", RL_F32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "[M, d]: latents x1 (from latent_tap)"},
    {"cond", RL_F32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "[M, d]: context latents"},
    {"tau", RL_F32, 1, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "[M]: layer fractions"},
    {"index", RL_I32, 2, RL_PORT_NO_GRAD, 0, "[M, 3]: (b, k, group) of each row"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD | RL_PORT_OPTIONAL, 0,
     "[B, T]: shape of score / token_loss (required in score mode)"},
    {"weight", RL_F32, 1, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD | RL_PORT_OPTIONAL, 0,
     "[B]: response weights (flow_weights); rows of responses with weight exactly 0 are skipped (needs 'mask')"},
};
static const rl_port_spec fw_outputs[] = {
    {"loss", RL_F32, 1, 0, 0, "[1]: flow-matching loss (mean over layers/modes, tokens, repeats)"},
    {"score", RL_F32, 2, 0, 0, "[B, T]: mean_t w(t)·l_k(t), averaged over layers and modes (not differentiable)"},
    {"token_loss", RL_F32, 2, 0, 0, "[B, T]: unweighted per-token loss (differentiable w.r.t. the flow)"},
    {"score_mask", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0,
     "[B, T]: 1 on tokens that got a score from at least one layer/context group (the shaper's score_mask)"},
};
static const rl_option_spec fw_options[] = {
    {"net", RL_VAL_OBJECT, NULL, "the flow network", "flow"},
    {"mode", RL_VAL_STRING, "train", "train (random t, batch_mul repeats) or score (fixed timesteps t)", NULL},
    {"t", RL_VAL_NUMBERS, "0.8", "score mode: reward timesteps in (0, 1)", NULL},
    {"batch_mul", RL_VAL_INT, "4", "train mode: independent (t, eps) draws per token", NULL},
    {"seed", RL_VAL_INT, "0", "mixed into the noise streams (with the run seed and step)", NULL},
    {"chunk", RL_VAL_INT, "8192", "rows per network call; more rows are recomputed in backward", NULL},
    {"width", RL_VAL_INT, "0", "expected flow width (0: any); a mismatching checkpoint is an error", NULL},
    {"depth", RL_VAL_INT, "0", "expected flow depth (0: any); a mismatching checkpoint is an error", NULL},
};

enum { WS_XT, WS_U, WS_C, WS_T, WS_TAU, WS_LROW, WS_V, WS_ACTS, WS_TOKCNT, WS_DV, WS_SCR, WS_COEF, WS_ROWS, N_WS };

typedef struct fw_state {
    rl_flow *net;
    int train;
    int n_t;
    float ts[FW_MAX_T];
    int64_t rep, chunk_max, seed;
    int ws[N_WS];
    /* Run-time values from forward, for backward. M counts the computed
       latent rows (all of them without 'weight'); WS_ROWS maps each to its
       input row. */
    int64_t M, R, B, T, G, chunk;
    int kept;
    int64_t gcnt[FW_MAX_GROUPS];
} fw_state;

static int fw_init(rl_node *n, rl_error *err) {
    fw_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->net = rl_flow_from_object(rl_node_opt_object(n, "net"));
    if (!s->net) return rl_node_fail(n, err, "option 'net' is not a flow network");
    const char *mode = rl_node_opt_string(n, "mode");
    if (strcmp(mode, "train") == 0) s->train = 1;
    else if (strcmp(mode, "score") != 0)
        return rl_node_fail(n, err, "unknown mode '%s' (expected train or score)", mode);
    int nt = 0;
    const double *ts = rl_node_opt_numbers(n, "t", &nt);
    if (nt < 1 || nt > FW_MAX_T) return rl_node_fail(n, err, "option 't' needs 1 to %d timesteps (got %d)", FW_MAX_T, nt);
    for (int i = 0; i < nt; i++) {
        /* w(t) = t/(1−t) is infinite at t = 1 and the interpolation is pure noise at 0. */
        if (!(ts[i] > 0 && ts[i] < 1)) return rl_node_fail(n, err, "timestep t = %g is outside (0, 1)", ts[i]);
        s->ts[i] = (float)ts[i];
    }
    s->n_t = nt;
    int64_t bm = rl_node_opt_int(n, "batch_mul");
    if (bm < 1 || bm > 1024) return rl_node_fail(n, err, "batch_mul %lld is outside [1, 1024]", (long long)bm);
    s->rep = s->train ? bm : nt;
    s->chunk_max = rl_node_opt_int(n, "chunk");
    if (s->chunk_max < 1 || s->chunk_max > ((int64_t)1 << 24))
        return rl_node_fail(n, err, "chunk %lld is outside [1, 2^24]", (long long)s->chunk_max);
    s->seed = rl_node_opt_int(n, "seed");
    const rl_flow_config *c = &s->net->cfg;
    int64_t w = rl_node_opt_int(n, "width"), dp = rl_node_opt_int(n, "depth");
    if ((w && w != c->width) || (dp && dp != c->depth))
        return rl_node_fail(n, err, "the flow network has width %lld and depth %lld but the graph asks for width %lld "
                            "and depth %lld", (long long)c->width, (long long)c->depth, (long long)(w ? w : c->width),
                            (long long)(dp ? dp : c->depth));
    return rl_node_use_params(n, s->net->params, err);
}

static int req(rl_node *n, fw_state *s, int slot, rl_ws_kind kind, size_t floats, rl_error *err) {
    size_t bytes;
    if (rl_mul_size(floats ? floats : 1, sizeof(float), &bytes)) return rl_node_fail(n, err, "workspace too large");
    s->ws[slot] = rl_node_request(n, kind, bytes, err);
    return s->ws[slot] < 0 ? -1 : 0;
}

static int fw_infer(rl_node *n, rl_error *err) {
    fw_state *s = n->state;
    char a[64], b[64], c3[64];
    const rl_shape *tg = &n->in[IN_TARGET].shape;
    const rl_flow_config *c = &s->net->cfg;
    rl_error e = {0};
    if (rl_flow_check_dim(s->net, tg->dim[1], &e)) return rl_node_fail(n, err, "%s", e.msg);
    if (!rl_shape_equal(&n->in[IN_COND].shape, tg) || n->in[IN_TAU].shape.dim[0] != tg->dim[0] ||
        n->in[IN_INDEX].shape.dim[0] != tg->dim[0] || n->in[IN_INDEX].shape.dim[1] != 3)
        return rl_node_fail(n, err, "inputs do not line up: target %s, cond %s, tau [%lld], index %s", rl_shape_str(tg, a, sizeof a),
                            rl_shape_str(&n->in[IN_COND].shape, b, sizeof b), (long long)n->in[IN_TAU].shape.dim[0],
                            rl_shape_str(&n->in[IN_INDEX].shape, c3, sizeof c3));
    if (!s->train && !n->src[IN_MASK]) return rl_node_fail(n, err, "score mode needs the 'mask' input ([B, T])");
    if (n->src[IN_WEIGHT] && (!n->src[IN_MASK] || n->in[IN_WEIGHT].shape.dim[0] != n->in[IN_MASK].shape.dim[0]))
        return rl_node_fail(n, err, "input 'weight' %s needs the 'mask' input and one weight per mask row (mask %s)",
                            rl_shape_str(&n->in[IN_WEIGHT].shape, a, sizeof a),
                            n->src[IN_MASK] ? rl_shape_str(&n->in[IN_MASK].shape, b, sizeof b) : "not connected");
    int64_t M = tg->dim[0], d = c->dim;
    if (M < 0 || M > ((int64_t)1 << 30) || M * s->rep > ((int64_t)1 << 31))
        return rl_node_fail(n, err, "too many rows (%lld latents x %lld)", (long long)M, (long long)s->rep);
    int64_t R = M * s->rep, chunk = R < s->chunk_max ? R : s->chunk_max;
    size_t bt = 1;
    if (n->src[IN_MASK]) {
        n->out[OUT_SCORE].shape = n->in[IN_MASK].shape;
        bt = (size_t)rl_shape_numel(&n->in[IN_MASK].shape);
    } else {
        n->out[OUT_SCORE].shape = rl_shape2(1, 1);
    }
    n->out[OUT_TOKEN_LOSS].shape = n->out[OUT_SCORE].shape;
    n->out[OUT_SCORE_MASK].shape = n->out[OUT_SCORE].shape;
    n->out[OUT_LOSS].shape = rl_shape1(1);
    /* R ≤ 2^31 and d ≤ 2^16 keep these products far below SIZE_MAX. */
    size_t rd = (size_t)R * (size_t)d, cd = (size_t)chunk * (size_t)d;
    size_t acts = rl_flow_acts_floats(c, chunk), scr = rl_flow_scratch_floats(c, chunk);
    if (req(n, s, WS_XT, RL_WS_SAVED, rd, err) || req(n, s, WS_U, RL_WS_SAVED, rd, err) ||
        req(n, s, WS_C, RL_WS_SAVED, rd, err) || req(n, s, WS_T, RL_WS_SAVED, (size_t)R, err) ||
        req(n, s, WS_TAU, RL_WS_SAVED, (size_t)R, err) || req(n, s, WS_LROW, RL_WS_SCRATCH_FWD, (size_t)R, err) ||
        req(n, s, WS_V, RL_WS_SAVED, cd, err) || req(n, s, WS_ACTS, RL_WS_SAVED, acts, err) ||
        req(n, s, WS_TOKCNT, RL_WS_SAVED, bt, err) || req(n, s, WS_DV, RL_WS_SCRATCH_BWD, cd, err) ||
        req(n, s, WS_SCR, RL_WS_SCRATCH_BWD, scr, err) || req(n, s, WS_COEF, RL_WS_SCRATCH_BWD, (size_t)R, err) ||
        req(n, s, WS_ROWS, RL_WS_SAVED, (size_t)M, err)) /* int32 per row: float-sized */
        return -1;
    return 0;
}

static float *wsf(rl_node *n, const fw_state *s, int slot) { return n->ws[s->ws[slot]].data; }

static uint64_t stream(const fw_state *s, const rl_run_ctx *ctx, uint64_t purpose) {
    uint64_t v[5] = {0x666c6f77ull /* "flow" */, (uint64_t)s->seed, (uint64_t)ctx->step, (uint64_t)ctx->repeat, purpose};
    return rl_rng_stream_hash(v, 5);
}

static void run_chunk(rl_node *n, const fw_state *s, int64_t a, int64_t rows) {
    int64_t d = s->net->cfg.dim;
    rl_flow_forward(s->net, rows, wsf(n, s, WS_XT) + a * d, wsf(n, s, WS_T) + a, wsf(n, s, WS_C) + a * d,
                    wsf(n, s, WS_TAU) + a, wsf(n, s, WS_ACTS), wsf(n, s, WS_V));
}

static int fw_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    fw_state *s = n->state;
    const int64_t d = s->net->cfg.dim, Min = n->in[IN_TARGET].shape.dim[0], rep = s->rep;
    const float *x1 = rl_f32(&n->in[IN_TARGET]), *cin = rl_f32(&n->in[IN_COND]), *tin = rl_f32(&n->in[IN_TAU]);
    const int32_t *ix = rl_i32(&n->in[IN_INDEX]);
    if (n->in[IN_COND].shape.dim[0] != Min || n->in[IN_TAU].shape.dim[0] != Min ||
        n->in[IN_INDEX].shape.dim[0] != Min)
        return rl_node_fail(n, err, "inputs have different row counts at run time");
    s->B = n->src[IN_MASK] ? n->in[IN_MASK].shape.dim[0] : 1;
    s->T = n->src[IN_MASK] ? n->in[IN_MASK].shape.dim[1] : 1;
    const float *wt = n->src[IN_WEIGHT] ? rl_f32(&n->in[IN_WEIGHT]) : NULL;
    if (wt && n->in[IN_WEIGHT].shape.dim[0] != s->B)
        return rl_node_fail(n, err, "input 'weight' has %lld entries at run time but the mask has %lld rows",
                            (long long)n->in[IN_WEIGHT].shape.dim[0], (long long)s->B);
    n->out[OUT_SCORE].shape = rl_shape2(s->B, s->T);
    n->out[OUT_TOKEN_LOSS].shape = rl_shape2(s->B, s->T);
    n->out[OUT_SCORE_MASK].shape = rl_shape2(s->B, s->T);
    n->out[OUT_LOSS].shape = rl_shape1(1);
    float *score = rl_f32(&n->out[OUT_SCORE]), *tl = rl_f32(&n->out[OUT_TOKEN_LOSS]);
    float *tokcnt = wsf(n, s, WS_TOKCNT);
    int32_t *rows = (int32_t *)wsf(n, s, WS_ROWS);
    int64_t BT = s->B * s->T;
    memset(score, 0, (size_t)BT * sizeof(float));
    memset(tl, 0, (size_t)BT * sizeof(float));
    memset(tokcnt, 0, (size_t)BT * sizeof(float));
    memset(s->gcnt, 0, sizeof s->gcnt);
    /* Every input row is validated; only rows of responses with a non-zero
       weight are computed, and only they count in the group / token means. */
    int64_t M = 0;
    for (int64_t m = 0; m < Min; m++) {
        int32_t b = ix[m * 3], k = ix[m * 3 + 1], g = ix[m * 3 + 2];
        if (g < 0 || g >= FW_MAX_GROUPS)
            return rl_node_fail(n, err, "index row %lld: group %d is outside [0, %d)", (long long)m, g, FW_MAX_GROUPS);
        if (n->src[IN_MASK] && (b < 0 || b >= s->B || k < 0 || k >= s->T))
            return rl_node_fail(n, err, "index row %lld: position (%d, %d) is outside the mask [%lld, %lld]",
                                (long long)m, b, k, (long long)s->B, (long long)s->T);
        if (!(tin[m] > 0.0f && tin[m] <= 1.0f))
            return rl_node_fail(n, err, "input 'tau'[%lld] = %g is outside (0, 1]", (long long)m, (double)tin[m]);
        if (wt && wt[b] == 0.0f) continue;
        rows[M++] = (int32_t)m;
        s->gcnt[g]++;
        if (n->src[IN_MASK]) tokcnt[(int64_t)b * s->T + k] += 1.0f;
    }
    const int64_t R = M * rep;
    s->M = M;
    s->R = R;
    float *smask = rl_f32(&n->out[OUT_SCORE_MASK]);
    for (int64_t p = 0; p < BT; p++) smask[p] = tokcnt[p] > 0.0f ? 1.0f : 0.0f;
    s->G = 0;
    for (int g = 0; g < FW_MAX_GROUPS; g++) s->G += s->gcnt[g] > 0;

    /* Noise: element (input row, j) of the eps stream, so a computed row
       draws the same noise whether or not other rows are skipped. Train mode
       takes each run of consecutive computed rows in one fill (one fill in
       all when nothing is skipped); score mode reuses a token's eps for all
       its timesteps (offset m·d instead of row·d). */
    float *xt = wsf(n, s, WS_XT), *u = wsf(n, s, WS_U), *c = wsf(n, s, WS_C), *t = wsf(n, s, WS_T);
    float *tau = wsf(n, s, WS_TAU), *lrow = wsf(n, s, WS_LROW);
    uint64_t st_eps = stream(s, ctx, 1), st_t = stream(s, ctx, 2);
    if (s->train) {
        for (int64_t i = 0; i < M;) {
            int64_t e = i + 1;
            while (e < M && rows[e] == rows[e - 1] + 1) e++;
            uint64_t r0 = (uint64_t)rows[i] * (uint64_t)rep;
            size_t nr = (size_t)((e - i) * rep);
            rl_rng_normal_fill(u + i * rep * d, nr * (size_t)d, ctx->seed, st_eps, r0 * (uint64_t)d);
            rl_rng_normal_fill(t + i * rep, nr, ctx->seed, st_t, r0);
            i = e;
        }
        for (int64_t r = 0; r < R; r++) t[r] = 1.0f / (1.0f + expf(-t[r]));
    } else {
        for (int64_t i = 0; i < M; i++) {
            rl_rng_normal_fill(u + i * rep * d, (size_t)d, ctx->seed, st_eps, (uint64_t)rows[i] * (uint64_t)d);
            for (int64_t j = 0; j < rep; j++) {
                if (j) memcpy(u + (i * rep + j) * d, u + i * rep * d, (size_t)d * sizeof(float));
                t[i * rep + j] = s->ts[j];
            }
        }
    }
#pragma omp parallel for schedule(static) if (R * d > 65536)
    for (int64_t r = 0; r < R; r++) {
        int64_t m = rows[r / rep];
        const float *xr = x1 + m * d;
        float *ur = u + r * d, *xtr = xt + r * d, tr = t[r];
        for (int64_t j = 0; j < d; j++) {
            float e = ur[j];
            xtr[j] = tr * xr[j] + (1.0f - tr) * e;
            ur[j] = xr[j] - e;
        }
        memcpy(c + r * d, cin + m * d, (size_t)d * sizeof(float));
        tau[r] = tin[m];
    }

    s->chunk = R < s->chunk_max ? R : s->chunk_max;
    s->kept = R <= s->chunk_max;
    const float *v = wsf(n, s, WS_V);
    for (int64_t a = 0; a < R; a += s->chunk) {
        int64_t nrow = R - a < s->chunk ? R - a : s->chunk;
        run_chunk(n, s, a, nrow);
#pragma omp parallel for schedule(static) if (nrow * d > 65536)
        for (int64_t r = 0; r < nrow; r++) {
            const float *vr = v + r * d, *ur = u + (a + r) * d;
            double acc = 0;
            for (int64_t j = 0; j < d; j++) acc += (double)(vr[j] - ur[j]) * (vr[j] - ur[j]);
            lrow[a + r] = (float)(acc / (double)d);
        }
    }
    double loss = 0;
    for (int64_t i = 0; i < M; i++) {
        int64_t m = rows[i];
        int32_t b = ix[m * 3], k = ix[m * 3 + 1], g = ix[m * 3 + 2];
        double lm = 0, sm = 0;
        for (int64_t j = 0; j < rep; j++) {
            float l = lrow[i * rep + j], tj = t[i * rep + j];
            lm += l;
            sm += (double)tj / (1.0 - (double)tj) * l;
        }
        lm /= (double)rep;
        sm /= (double)rep;
        loss += lm / (double)(s->G * s->gcnt[g]);
        if (n->src[IN_MASK]) {
            int64_t p = (int64_t)b * s->T + k;
            tl[p] += (float)(lm / tokcnt[p]);
            score[p] += (float)(sm / tokcnt[p]);
        }
    }
    if (!isfinite(loss))
        return rl_node_fail(n, err, "flow-matching loss is not finite at step %lld", (long long)ctx->step + 1);
    rl_f32(&n->out[OUT_LOSS])[0] = (float)loss;
    rl_metric_set(ctx, n, s->train ? "flow_train_loss" : "flow_score_loss", loss);
    /* Only with 'weight', so graphs without it log what they always did. */
    if (wt) rl_metric_set(ctx, n, "flow_rows", (double)M);
    return 0;
}

static int fw_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    fw_state *s = n->state;
    const float *gl = rl_f32(&n->grad_out[OUT_LOSS]), *gtl = rl_f32(&n->grad_out[OUT_TOKEN_LOSS]);
    /* No optimizer owns the set: nobody would read these gradients. */
    if ((!gl && !gtl) || s->R == 0 || !s->net->params->trainable) return 0;
    const int64_t d = s->net->cfg.dim, rep = s->rep;
    const int32_t *ix = rl_i32(&n->in[IN_INDEX]), *rows = (const int32_t *)wsf(n, s, WS_ROWS);
    const float *tokcnt = wsf(n, s, WS_TOKCNT), *u = wsf(n, s, WS_U), *v = wsf(n, s, WS_V);
    float *coef = wsf(n, s, WS_COEF), *dv = wsf(n, s, WS_DV);
    for (int64_t i = 0; i < s->M; i++) {
        int64_t m = rows[i];
        int32_t b = ix[m * 3], k = ix[m * 3 + 1], g = ix[m * 3 + 2];
        double cm = 0;
        if (gl) cm += (double)gl[0] / (double)(s->G * s->gcnt[g]);
        if (gtl && n->src[IN_MASK]) {
            int64_t p = (int64_t)b * s->T + k;
            cm += (double)gtl[p] / (double)tokcnt[p];
        }
        for (int64_t j = 0; j < rep; j++) coef[i * rep + j] = (float)(cm / (double)rep);
    }
    for (int64_t a = 0; a < s->R; a += s->chunk) {
        int64_t nrow = s->R - a < s->chunk ? s->R - a : s->chunk;
        if (!s->kept) run_chunk(n, s, a, nrow);
#pragma omp parallel for schedule(static) if (nrow * d > 65536)
        for (int64_t r = 0; r < nrow; r++) {
            const float *vr = v + r * d, *ur = u + (a + r) * d;
            float *g = dv + r * d, kf = 2.0f * coef[a + r] / (float)d;
            for (int64_t j = 0; j < d; j++) g[j] = kf * (vr[j] - ur[j]);
        }
        rl_flow_backward(s->net, nrow, wsf(n, s, WS_XT) + a * d, wsf(n, s, WS_T) + a, wsf(n, s, WS_C) + a * d,
                         wsf(n, s, WS_TAU) + a, wsf(n, s, WS_ACTS), dv, wsf(n, s, WS_SCR), s->net->params->grad,
                         NULL, NULL);
    }
    return 0;
}

static void fw_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_flow = {
    .name = "flow",
    .doc = "flow matching on latents: train (random t, repeats) or score (w(t)-weighted velocity error per token)",
    .inputs = fw_inputs,
    .n_inputs = N_IN,
    .outputs = fw_outputs,
    .n_outputs = N_OUT,
    .options = fw_options,
    .n_options = (int)(sizeof fw_options / sizeof fw_options[0]),
    .init = fw_init,
    .infer = fw_infer,
    .forward = fw_forward,
    .backward = fw_backward,
    .destroy = fw_destroy,
};
