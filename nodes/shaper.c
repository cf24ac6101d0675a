/* shaper: outcome rewards (+ flow score, + KL-in-reward) -> per-token
 * advantages. The formulas are runtime/rl_math.c; this node checks shapes,
 * parses options once at init and records the step's shaping metrics.
 * Not differentiable: every input is a stop-gradient. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

enum { IN_REWARD, IN_MASK, IN_SCORE, IN_SCORE_MASK, IN_LOGP, IN_REF, IN_KEEP, N_IN };

static const rl_port_spec shaper_inputs[] = {
    {"reward", RL_F32, 1, RL_PORT_NO_GRAD, 0, "outcome rewards f32 [N] (N = prompts x group, group-major)"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD, 0, "response mask f32 [N, T] (1 on valid response tokens)"},
    {"score", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0,
     "flow score f32 [N, T]; absent: plain RLVR (no flow reward)"},
    {"score_mask", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0,
     "f32 [N, T]: 1 where a flow score exists (tokens without a context partner have none); absent: the mask"},
    {"logprobs", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0, "rollout log-probs [N, T] for KL-in-reward"},
    {"ref_logprobs", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0, "reference log-probs [N, T] for KL-in-reward"},
    {"keep", RL_F32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0, "f32 [N] from group_filter: 0 drops a response"},
};
static const rl_port_spec shaper_outputs[] = {
    {"advantages", RL_F32, 2, 0, 0, "per-token advantages f32 [N, T] (0 off the mask)"},
    {"flow_reward", RL_F32, 2, 0, 0, "per-token flow reward f32 [N, T] (for logging; 0 without a score)"},
};
static const rl_option_spec shaper_options[] = {
    {"estimator", RL_VAL_STRING, "group_norm", "group_norm | rloo | reinforce_baseline | dr_grpo", NULL},
    {"group", RL_VAL_INT, "8", "responses per prompt (G)", NULL},
    {"eps", RL_VAL_NUMBER, "1e-6", "added to the std in group_norm and reinforce_baseline whitening", NULL},
    {"flow_coef", RL_VAL_NUMBER, "0.01", "beta: flow reward r = -beta * normalised score", NULL},
    {"norm", RL_VAL_STRING, "minmax", "flow score normalisation: minmax ([0,1]) | minmax_bilateral ([-1,1])", NULL},
    {"power", RL_VAL_NUMBER, "1", "power applied to the normalised score (sign-preserving)", NULL},
    {"threshold", RL_VAL_NUMBER, "0.6", "keep normalised scores > threshold (|s| when bilateral)", NULL},
    {"topk", RL_VAL_INT, "15", "keep at most k flow-rewarded tokens per response (0: no limit)", NULL},
    {"gamma", RL_VAL_NUMBER, "1", "discount of the per-token returns", NULL},
    {"kl_coef", RL_VAL_NUMBER, "0", "KL penalty in the reward (needs logprobs and ref_logprobs)", NULL},
    {"kl_estimator", RL_VAL_STRING, "k1", "k1 | k2 | k3 for the KL in the reward", NULL},
};

typedef struct shaper_state {
    rl_adv_estimator est;
    rl_flow_reward_cfg flow;
    rl_kl_estimator kl_est;
    int64_t group;
    double eps, gamma, kl_coef;
    int ws_adv, ws_idx, ws_kl;
} shaper_state;

static int shaper_init(rl_node *n, rl_error *err) {
    shaper_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    if (rl_adv_estimator_parse(rl_node_opt_string(n, "estimator"), &s->est, err) ||
        rl_flow_norm_parse(rl_node_opt_string(n, "norm"), &s->flow.norm, err) ||
        rl_kl_estimator_parse(rl_node_opt_string(n, "kl_estimator"), &s->kl_est, err))
        return rl_node_fail(n, err, "%s", err->msg);
    s->group = rl_node_opt_int(n, "group");
    s->eps = rl_node_opt_number(n, "eps");
    s->flow.coef = rl_node_opt_number(n, "flow_coef");
    s->flow.power = rl_node_opt_number(n, "power");
    s->flow.threshold = rl_node_opt_number(n, "threshold");
    s->flow.topk = rl_node_opt_int(n, "topk");
    s->gamma = rl_node_opt_number(n, "gamma");
    s->kl_coef = rl_node_opt_number(n, "kl_coef");
    if (s->group < 1) return rl_node_fail(n, err, "option 'group' must be >= 1 (got %lld)", (long long)s->group);
    if (s->est == RL_ADV_RLOO && s->group < 2) return rl_node_fail(n, err, "estimator 'rloo' needs group >= 2");
    if (!(s->eps >= 0)) return rl_node_fail(n, err, "option 'eps' must be >= 0");
    if (!(s->flow.power > 0) || !isfinite(s->flow.power))
        return rl_node_fail(n, err, "option 'power' must be a positive number");
    if (!isfinite(s->flow.coef) || !isfinite(s->flow.threshold) || !isfinite(s->kl_coef))
        return rl_node_fail(n, err, "options flow_coef, threshold and kl_coef must be finite");
    if (!(s->gamma >= 0 && s->gamma <= 1)) return rl_node_fail(n, err, "option 'gamma' must be in [0, 1]");
    return 0;
}

/* All [N, T] inputs must match the mask; reward and keep must be [N] with N a
 * multiple of the group. Used at compile time (maximum shapes) and per run. */
static int shaper_check(rl_node *n, rl_error *err) {
    const shaper_state *s = n->state;
    char a[64], b[64];
    const rl_shape *m = &n->in[IN_MASK].shape;
    int64_t N = m->dim[0];
    if (n->in[IN_REWARD].shape.dim[0] != N)
        return rl_node_fail(n, err, "input 'reward' has shape %s but 'mask' has shape %s (N must match)",
                            rl_shape_str(&n->in[IN_REWARD].shape, a, sizeof a), rl_shape_str(m, b, sizeof b));
    for (int p = IN_SCORE; p <= IN_REF; p++)
        if (n->src[p] && !rl_shape_equal(&n->in[p].shape, m))
            return rl_node_fail(n, err, "input '%s' has shape %s but 'mask' has shape %s", shaper_inputs[p].name,
                                rl_shape_str(&n->in[p].shape, a, sizeof a), rl_shape_str(m, b, sizeof b));
    if (n->src[IN_KEEP] && n->in[IN_KEEP].shape.dim[0] != N)
        return rl_node_fail(n, err, "input 'keep' has shape %s but there are %lld responses",
                            rl_shape_str(&n->in[IN_KEEP].shape, a, sizeof a), (long long)N);
    if (N % s->group != 0)
        return rl_node_fail(n, err, "%lld responses do not form groups of %lld (option 'group')", (long long)N,
                            (long long)s->group);
    return 0;
}

static int shaper_infer(rl_node *n, rl_error *err) {
    shaper_state *s = n->state;
    if (shaper_check(n, err)) return -1;
    if (s->kl_coef != 0 && (!n->src[IN_LOGP] || !n->src[IN_REF]))
        return rl_node_fail(n, err, "kl_coef = %g needs inputs 'logprobs' and 'ref_logprobs'", s->kl_coef);
    if (n->src[IN_SCORE_MASK] && !n->src[IN_SCORE])
        return rl_node_fail(n, err, "input 'score_mask' is connected but 'score' is not");
    const rl_shape *m = &n->in[IN_MASK].shape;
    int64_t N = m->dim[0], T = m->dim[1];
    n->out[0].shape = *m;
    n->out[1].shape = *m;
    size_t nb, tb, ntb;
    if (rl_mul_size((size_t)N, sizeof(float), &nb) || rl_mul_size((size_t)T, sizeof(int32_t), &tb) ||
        rl_mul_size((size_t)rl_shape_numel(m), sizeof(float), &ntb))
        return rl_node_fail(n, err, "shape %lld x %lld is too large", (long long)N, (long long)T);
    s->ws_adv = rl_node_request(n, RL_WS_SCRATCH_FWD, nb ? nb : 4, err);
    s->ws_idx = rl_node_request(n, RL_WS_SCRATCH_FWD, tb ? tb : 4, err);
    s->ws_kl = s->kl_coef != 0 ? rl_node_request(n, RL_WS_SCRATCH_FWD, ntb ? ntb : 4, err) : -1;
    return s->ws_adv < 0 || s->ws_idx < 0 || (s->kl_coef != 0 && s->ws_kl < 0) ? -1 : 0;
}

static int shaper_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    const shaper_state *s = n->state;
    if (shaper_check(n, err)) return -1;
    const rl_shape *m = &n->in[IN_MASK].shape;
    const int64_t N = m->dim[0], T = m->dim[1];
    n->out[0].shape = *m;
    n->out[1].shape = *m;
    const float *reward = rl_f32(&n->in[IN_REWARD]), *mask = rl_f32(&n->in[IN_MASK]);
    const float *keep = n->src[IN_KEEP] ? rl_f32(&n->in[IN_KEEP]) : NULL;
    float *A = rl_f32(&n->out[0]), *flow = rl_f32(&n->out[1]);
    float *adv = n->ws[s->ws_adv].data;

    rl_flow_reward_stats fs = {0, 0};
    if (n->src[IN_SCORE]) {
        const float *sm = n->src[IN_SCORE_MASK] ? rl_f32(&n->in[IN_SCORE_MASK]) : NULL;
        if (rl_flow_reward(rl_f32(&n->in[IN_SCORE]), mask, sm, N, T, &s->flow, flow, n->ws[s->ws_idx].data, &fs, err))
            return rl_node_fail(n, err, "%s (step %lld)", err->msg, (long long)ctx->step + 1);
    } else {
        memset(flow, 0, (size_t)(N * T) * sizeof *flow);
    }
    if (rl_outcome_advantage(reward, keep, N, s->group, s->est, s->eps, adv, err))
        return rl_node_fail(n, err, "%s (step %lld)", err->msg, (long long)ctx->step + 1);

    const float *kl = NULL;
    double kl_sum = 0, n_valid = 0;
    if (s->kl_coef != 0) {
        float *k = n->ws[s->ws_kl].data;
        const float *lp = rl_f32(&n->in[IN_LOGP]), *ref = rl_f32(&n->in[IN_REF]);
        for (int64_t i = 0; i < N * T; i++) {
            k[i] = mask[i] > 0 ? (float)rl_kl_value(s->kl_est, (double)lp[i] - ref[i]) : 0.0f;
            kl_sum += k[i];
        }
        kl = k;
    }
    rl_returns(adv, mask, n->src[IN_SCORE] ? flow : NULL, kl, s->kl_coef, keep, N, T, s->gamma, A);
    if (s->est == RL_ADV_REINFORCE_BASELINE) rl_whiten_tokens(A, mask, keep, N, T, s->eps);

    for (int64_t i = 0; i < N * T; i++) {
        if (!isfinite(A[i]))
            return rl_node_fail(n, err, "advantage is not finite at response %lld, position %lld (step %lld)",
                                (long long)(i / T), (long long)(i % T), (long long)ctx->step + 1);
        n_valid += mask[i] > 0;
    }
    double rsum = 0, zero_std = 0;
    for (int64_t i = 0; i < N; i++) rsum += reward[i];
    for (int64_t g0 = 0; g0 < N; g0 += s->group) {
        int same = 1;
        for (int64_t j = g0 + 1; j < g0 + s->group; j++) same &= reward[j] == reward[g0];
        zero_std += same;
    }
    rl_metric_set(ctx, n, "reward_mean", N ? rsum / (double)N : 0);
    rl_metric_set(ctx, n, "frac_zero_std", N ? zero_std * (double)s->group / (double)N : 0);
    if (n->src[IN_SCORE]) {
        rl_metric_set(ctx, n, "flow_tokens", (double)fs.n_rewarded);
        rl_metric_set(ctx, n, "flow_reward_mean", fs.n_rewarded ? fs.reward_sum / (double)fs.n_rewarded : 0);
        /* Does the raw flow score tell correct from wrong rollouts? (paper's premise) */
        const float *valid = n->src[IN_SCORE_MASK] ? rl_f32(&n->in[IN_SCORE_MASK]) : mask;
        double mc, mw;
        int64_t pairs;
        double sep = rl_flow_separation(rl_f32(&n->in[IN_SCORE]), valid, reward, N, T, s->group, &mc, &mw, &pairs);
        if (pairs > 0) rl_metric_set(ctx, n, "flow_sep", sep);
        rl_metric_set(ctx, n, "flow_score_correct", mc);
        rl_metric_set(ctx, n, "flow_score_wrong", mw);
    }
    if (kl) rl_metric_set(ctx, n, "kl_reward", n_valid > 0 ? kl_sum / n_valid : 0);
    return 0;
}

static void shaper_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_shaper = {
    .name = "shaper",
    .doc = "outcome rewards + flow score (+ KL) -> per-token advantages (GRPO, RLOO, REINFORCE++-baseline, Dr. GRPO)",
    .inputs = shaper_inputs,
    .n_inputs = N_IN,
    .outputs = shaper_outputs,
    .n_outputs = 2,
    .options = shaper_options,
    .n_options = (int)(sizeof shaper_options / sizeof shaper_options[0]),
    .init = shaper_init,
    .infer = shaper_infer,
    .forward = shaper_forward,
    .destroy = shaper_destroy,
};
