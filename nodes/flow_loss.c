/* flow_loss: the online flow update by rejection sampling (RLFR section
 * "online update"): loss = sum_i w_i * mean_tokens(token_loss_i) / sum_i w_i,
 * w_i = 1 for correct responses (reward >= correct), soft_flow otherwise
 * (computed here from 'reward', or given as 'weight' by a flow_weights node,
 * so that the flow node can skip the rows of zero-weight responses),
 * optionally weighting tokens by an entropy quantile (runtime/rl_math.c).
 * Differentiable w.r.t. token_loss (which the flow node differentiates into
 * its parameters). The forward stores d(loss)/d(token_loss) in a saved
 * buffer, so backward needs none of the inputs. */
#include <math.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

enum { IN_TL, IN_REWARD, IN_MASK, IN_ENT, IN_WEIGHT, N_IN };

static const rl_port_spec fl_inputs[] = {
    {"token_loss", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0, "per-token flow-matching loss f32 [N, T] (differentiable)"},
    {"reward", RL_F32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "outcome rewards f32 [N] (connect this or 'weight')"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "f32 [N, T]: tokens that have a token loss (response tokens with a score)"},
    {"entropy", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "per-token entropy f32 [N, T] (needed by entropy_quantile)"},
    {"weight", RL_F32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "response weights f32 [N] from a flow_weights node, instead of 'reward' (option 'correct' then unused)"},
};
static const rl_port_spec fl_outputs[] = {
    {"loss", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "scalar loss f32 [1] (0 when no response is accepted)"},
};
static const rl_option_spec fl_options[] = {
    {"soft_flow", RL_VAL_NUMBER, "0", "weight of responses that are not correct (0: pure rejection sampling)", NULL},
    {"correct", RL_VAL_NUMBER, "1", "a response is correct when its reward is >= this", NULL},
    {"group", RL_VAL_INT, "0", "responses per prompt; > 0: N must be a multiple (shape check only)", NULL},
    {"entropy_quantile", RL_VAL_NUMBER, "0",
     "q in (0, 1): tokens with entropy >= the q-quantile of their response weigh 1, others soft_flow; 0: off", NULL},
};

typedef struct fl_state {
    rl_flow_loss_cfg cfg;
    int64_t group;
    int64_t N, T;          /* run-time shape of the last forward, for backward */
    int ws_grad, ws_sort;
} fl_state;

static int fl_init(rl_node *n, rl_error *err) {
    fl_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->cfg.soft_flow = rl_node_opt_number(n, "soft_flow");
    s->cfg.correct = rl_node_opt_number(n, "correct");
    s->cfg.entropy_quantile = rl_node_opt_number(n, "entropy_quantile");
    s->group = rl_node_opt_int(n, "group");
    if (!(s->cfg.soft_flow >= 0 && s->cfg.soft_flow <= 1))
        return rl_node_fail(n, err, "soft_flow must be in [0, 1] (got %g)", s->cfg.soft_flow);
    if (!isfinite(s->cfg.correct)) return rl_node_fail(n, err, "correct must be finite");
    if (!(s->cfg.entropy_quantile >= 0 && s->cfg.entropy_quantile < 1))
        return rl_node_fail(n, err, "entropy_quantile must be in [0, 1) (got %g)", s->cfg.entropy_quantile);
    if (s->group < 0) return rl_node_fail(n, err, "group must be >= 0");
    return 0;
}

static int fl_check(rl_node *n, rl_error *err) {
    const fl_state *s = n->state;
    char a[64], b[64];
    const rl_shape *sh = &n->in[IN_TL].shape;
    if (!rl_shape_equal(&n->in[IN_MASK].shape, sh) || (n->src[IN_ENT] && !rl_shape_equal(&n->in[IN_ENT].shape, sh)))
        return rl_node_fail(n, err, "inputs 'mask' / 'entropy' must have the shape of 'token_loss' %s (mask is %s)",
                            rl_shape_str(sh, a, sizeof a), rl_shape_str(&n->in[IN_MASK].shape, b, sizeof b));
    /* Exactly one source of response weights, so that no graph silently
       ignores one of them. */
    if (!n->src[IN_REWARD] == !n->src[IN_WEIGHT])
        return rl_node_fail(n, err, "connect exactly one of 'reward' and 'weight' (the response weights)");
    const int wi = n->src[IN_WEIGHT] ? IN_WEIGHT : IN_REWARD;
    if (n->in[wi].shape.dim[0] != sh->dim[0])
        return rl_node_fail(n, err, "input '%s' has shape %s but 'token_loss' has shape %s (N must match)",
                            wi == IN_WEIGHT ? "weight" : "reward", rl_shape_str(&n->in[wi].shape, a, sizeof a),
                            rl_shape_str(sh, b, sizeof b));
    if (s->group > 0 && sh->dim[0] % s->group != 0)
        return rl_node_fail(n, err, "%lld responses do not form groups of %lld", (long long)sh->dim[0],
                            (long long)s->group);
    return 0;
}

static int fl_infer(rl_node *n, rl_error *err) {
    fl_state *s = n->state;
    if (fl_check(n, err)) return -1;
    if (s->cfg.entropy_quantile > 0 && !n->src[IN_ENT])
        return rl_node_fail(n, err, "entropy_quantile = %g needs input 'entropy'", s->cfg.entropy_quantile);
    n->out[0].shape = rl_shape1(1);
    size_t gb, sb;
    if (rl_mul_size((size_t)rl_shape_numel(&n->in[IN_TL].shape), sizeof(float), &gb) ||
        rl_mul_size((size_t)n->in[IN_TL].shape.dim[1], sizeof(float), &sb))
        return rl_node_fail(n, err, "token_loss is too large");
    s->ws_grad = rl_node_request(n, RL_WS_SAVED, gb ? gb : 4, err);
    s->ws_sort = rl_node_request(n, RL_WS_SCRATCH_FWD, sb ? sb : 4, err);
    return s->ws_grad < 0 || s->ws_sort < 0 ? -1 : 0;
}

static int fl_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    fl_state *s = n->state;
    if (fl_check(n, err)) return -1;
    s->N = n->in[IN_TL].shape.dim[0];
    s->T = n->in[IN_TL].shape.dim[1];
    rl_flow_loss_stats st;
    const float *ent = n->src[IN_ENT] ? rl_f32(&n->in[IN_ENT]) : NULL;
    double loss;
    if (n->src[IN_WEIGHT])
        loss = rl_flow_loss_weighted(rl_f32(&n->in[IN_TL]), rl_f32(&n->in[IN_WEIGHT]), rl_f32(&n->in[IN_MASK]), ent,
                                     s->N, s->T, &s->cfg, n->ws[s->ws_grad].data, n->ws[s->ws_sort].data, &st);
    else
        loss = rl_flow_loss(rl_f32(&n->in[IN_TL]), rl_f32(&n->in[IN_REWARD]), rl_f32(&n->in[IN_MASK]), ent, s->N,
                            s->T, &s->cfg, n->ws[s->ws_grad].data, n->ws[s->ws_sort].data, &st);
    if (!isfinite(loss))
        return rl_node_fail(n, err, "flow loss is %s at step %lld", isnan(loss) ? "NaN" : "infinite",
                            (long long)ctx->step + 1);
    n->out[0].shape = rl_shape1(1);
    rl_f32(&n->out[0])[0] = (float)loss;
    rl_metric_set(ctx, n, "flow_loss", loss);
    rl_metric_set(ctx, n, "flow_accepted", (double)st.n_accepted);
    return 0;
}

static int fl_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    const fl_state *s = n->state;
    const float *dy = rl_f32(&n->grad_out[0]);
    float *gx = n->need_grad_in[IN_TL] ? rl_f32(&n->grad_in[IN_TL]) : NULL;
    if (!dy || !gx) return 0;
    const float *d = n->ws[s->ws_grad].data;
    const float g = dy[0];
    for (int64_t i = 0; i < s->N * s->T; i++) gx[i] += g * d[i];
    return 0;
}

static void fl_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_flow_loss = {
    .name = "flow_loss",
    .doc = "online flow update by rejection sampling: sum_i w_i mean(token_loss_i) / sum_i w_i",
    .inputs = fl_inputs,
    .n_inputs = N_IN,
    .outputs = fl_outputs,
    .n_outputs = 1,
    .options = fl_options,
    .n_options = (int)(sizeof fl_options / sizeof fl_options[0]),
    .init = fl_init,
    .infer = fl_infer,
    .forward = fl_forward,
    .backward = fl_backward,
    .destroy = fl_destroy,
};
