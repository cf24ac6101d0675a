/* pg_loss: the PPO clipped surrogate with clip-higher, optional dual clip,
 * three loss aggregations and an optional KL loss to a frozen reference
 * (runtime/rl_math.c). Differentiable w.r.t. `logprobs` only; the backward
 * recomputes the per-token derivative from the inputs, so the node needs no
 * saved buffer. */
#include <math.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

enum { IN_LOGP, IN_OLD, IN_ADV, IN_MASK, IN_REF, IN_ENT, N_IN };

static const rl_port_spec pg_inputs[] = {
    {"logprobs", RL_F32, 2, 0, 0, "current policy log-probs f32 [N, T] (differentiable)"},
    {"old_logprobs", RL_F32, 2, RL_PORT_NO_GRAD, 0, "rollout (behaviour) log-probs f32 [N, T]"},
    {"advantages", RL_F32, 2, RL_PORT_NO_GRAD, 0, "per-token advantages f32 [N, T]"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD, 0, "response mask f32 [N, T]"},
    {"ref_logprobs", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0, "frozen reference log-probs (KL loss)"},
    {"entropy", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "per-token entropy f32 [N, T], for logging only"},
};
static const rl_port_spec pg_outputs[] = {
    {"loss", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "scalar loss f32 [1]"},
};
static const rl_option_spec pg_options[] = {
    {"clip", RL_VAL_NUMBER, "0.2", "epsilon for both sides unless clip_low / clip_high are given", NULL},
    {"clip_low", RL_VAL_NUMBER, "-1", "ratio lower bound 1 - clip_low; < 0: the value of clip", NULL},
    {"clip_high", RL_VAL_NUMBER, "-1", "ratio upper bound 1 + clip_high (DAPO clip-higher: 0.28); < 0: clip", NULL},
    {"dual_clip", RL_VAL_NUMBER, "0", "dual-clip constant c > 1 for A < 0 (verl: 3); 0: off", NULL},
    {"agg", RL_VAL_STRING, "seq_mean_token_mean", "token_mean | seq_mean_token_mean | seq_mean_token_sum_norm", NULL},
    {"norm_len", RL_VAL_NUMBER, "0", "seq_mean_token_sum_norm: per-sequence divisor (e.g. max response length); 0: the compiled T", NULL},
    {"kl_coef", RL_VAL_NUMBER, "0", "KL-loss coefficient (needs ref_logprobs)", NULL},
    {"kl_estimator", RL_VAL_STRING, "k3", "k1 | k2 | k3 for the KL loss", NULL},
};

typedef struct pg_state { rl_pg_cfg cfg; } pg_state;

static int pg_init(rl_node *n, rl_error *err) {
    pg_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    rl_pg_cfg *c = &s->cfg;
    rl_pg_cfg_default(c);
    /* `clip` sets both sides; clip_low / clip_high override one side each
     * (a negative default means "not given"). */
    double clip = rl_node_opt_number(n, "clip");
    c->clip_low = rl_node_opt_number(n, "clip_low");
    c->clip_high = rl_node_opt_number(n, "clip_high");
    if (c->clip_low < 0) c->clip_low = clip;
    if (c->clip_high < 0) c->clip_high = clip;
    c->dual_clip = rl_node_opt_number(n, "dual_clip");
    c->norm_len = rl_node_opt_number(n, "norm_len");
    c->kl_coef = rl_node_opt_number(n, "kl_coef");
    if (rl_agg_mode_parse(rl_node_opt_string(n, "agg"), &c->agg, err) ||
        rl_kl_estimator_parse(rl_node_opt_string(n, "kl_estimator"), &c->kl_est, err))
        return rl_node_fail(n, err, "%s", err->msg);
    if (!(c->clip_low >= 0 && c->clip_low < 1)) return rl_node_fail(n, err, "clip_low must be in [0, 1)");
    if (!(c->clip_high >= 0) || !isfinite(c->clip_high)) return rl_node_fail(n, err, "clip_high must be >= 0");
    if (!isfinite(c->dual_clip) || (c->dual_clip != 0 && !(c->dual_clip > 1)))
        return rl_node_fail(n, err, "dual_clip must be 0 (off) or > 1 (got %g)", c->dual_clip);
    if (!(c->norm_len >= 0) || !isfinite(c->norm_len)) return rl_node_fail(n, err, "norm_len must be >= 0");
    if (!isfinite(c->kl_coef)) return rl_node_fail(n, err, "kl_coef must be finite");
    return 0;
}

static int pg_check(rl_node *n, rl_error *err) {
    char a[64], b[64];
    for (int p = 1; p < N_IN; p++)
        if (n->src[p] && !rl_shape_equal(&n->in[p].shape, &n->in[IN_LOGP].shape))
            return rl_node_fail(n, err, "input '%s' has shape %s but 'logprobs' has shape %s", pg_inputs[p].name,
                                rl_shape_str(&n->in[p].shape, a, sizeof a),
                                rl_shape_str(&n->in[IN_LOGP].shape, b, sizeof b));
    return 0;
}

static int pg_infer(rl_node *n, rl_error *err) {
    pg_state *s = n->state;
    if (pg_check(n, err)) return -1;
    if (s->cfg.kl_coef != 0 && !n->src[IN_REF])
        return rl_node_fail(n, err, "kl_coef = %g needs input 'ref_logprobs'", s->cfg.kl_coef);
    /* Dr. GRPO wants a constant divisor: default to the compiled (maximum) T,
     * not the run-time T, which may change from step to step. */
    if (s->cfg.norm_len == 0) s->cfg.norm_len = (double)n->in[IN_LOGP].shape.dim[1];
    n->out[0].shape = rl_shape1(1);
    return 0;
}

static double pg_run(rl_node *n, float *grad, float gscale, rl_pg_stats *st) {
    const pg_state *s = n->state;
    const rl_shape *sh = &n->in[IN_LOGP].shape;
    return rl_pg_loss(rl_f32(&n->in[IN_LOGP]), rl_f32(&n->in[IN_OLD]), rl_f32(&n->in[IN_ADV]),
                      rl_f32(&n->in[IN_MASK]), n->src[IN_REF] ? rl_f32(&n->in[IN_REF]) : NULL,
                      n->src[IN_ENT] ? rl_f32(&n->in[IN_ENT]) : NULL, sh->dim[0], sh->dim[1], &s->cfg, grad, gscale, st);
}

static int pg_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    const pg_state *s = n->state;
    if (pg_check(n, err)) return -1;
    rl_pg_stats st;
    double loss = pg_run(n, NULL, 0, &st);
    if (!isfinite(loss))
        return rl_node_fail(n, err, "loss is %s at step %lld (check log-probs and advantages)",
                            isnan(loss) ? "NaN" : "infinite", (long long)ctx->step + 1);
    n->out[0].shape = rl_shape1(1);
    rl_f32(&n->out[0])[0] = (float)loss;
    rl_metric_set(ctx, n, "loss", st.loss);
    rl_metric_set(ctx, n, "clip_frac", st.clip_frac);
    if (s->cfg.dual_clip > 0) rl_metric_set(ctx, n, "dual_clip_frac", st.dual_clip_frac);
    rl_metric_set(ctx, n, "approx_kl", st.approx_kl);
    if (n->src[IN_REF]) rl_metric_set(ctx, n, "ref_kl", st.ref_kl);
    if (n->src[IN_ENT]) rl_metric_set(ctx, n, "entropy", st.entropy);
    return 0;
}

static int pg_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy || !n->need_grad_in[IN_LOGP] || !n->grad_in[IN_LOGP].data) return 0;
    if (pg_check(n, err)) return -1;
    pg_run(n, rl_f32(&n->grad_in[IN_LOGP]), dy[0], NULL);
    return 0;
}

static void pg_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_pg_loss = {
    .name = "pg_loss",
    .doc = "PPO clipped surrogate (clip-higher, dual clip, token/seq aggregation, KL loss k1/k2/k3)",
    .inputs = pg_inputs,
    .n_inputs = N_IN,
    .outputs = pg_outputs,
    .n_outputs = 1,
    .options = pg_options,
    .n_options = (int)(sizeof pg_options / sizeof pg_options[0]),
    .init = pg_init,
    .infer = pg_infer,
    .forward = pg_forward,
    .backward = pg_backward,
    .destroy = pg_destroy,
};
