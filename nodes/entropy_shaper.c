/* entropy_shaper: the logit-space baseline of the RLFR paper (Cheng et al.
 * 2025, "Reasoning with Exploration: An Entropy Perspective"):
 * A_t <- A_t + min(alpha * H_t, |A_t| / kappa), H detached. The bonus never
 * flips the sign of A and vanishes where A = 0. Not differentiable. */
#include <math.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

static const rl_port_spec es_inputs[] = {
    {"advantages", RL_F32, 2, RL_PORT_NO_GRAD, 0, "per-token advantages f32 [N, T]"},
    {"entropy", RL_F32, 2, RL_PORT_NO_GRAD, 0, "per-token full-vocabulary entropy f32 [N, T] (detached)"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD, 0, "response mask f32 [N, T]"},
};
static const rl_port_spec es_outputs[] = {
    /* Elementwise, so it may overwrite the dying advantages input. */
    {"advantages", RL_F32, 2, 0, 1, "shaped advantages f32 [N, T]"},
};
static const rl_option_spec es_options[] = {
    {"alpha", RL_VAL_NUMBER, "0.4", "entropy scale (0.4 for GRPO, 0.1 for PPO in Cheng et al.)", NULL},
    {"kappa", RL_VAL_NUMBER, "2", "cap: the bonus is at most |A| / kappa (kappa > 1 in the paper)", NULL},
};

typedef struct es_state { double alpha, kappa; } es_state;

static int es_init(rl_node *n, rl_error *err) {
    es_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->alpha = rl_node_opt_number(n, "alpha");
    s->kappa = rl_node_opt_number(n, "kappa");
    if (!isfinite(s->alpha) || s->alpha < 0) return rl_node_fail(n, err, "option 'alpha' must be >= 0");
    if (!isfinite(s->kappa) || !(s->kappa > 0)) return rl_node_fail(n, err, "option 'kappa' must be > 0");
    return 0;
}

static int es_check(rl_node *n, rl_error *err) {
    char a[64], b[64];
    for (int p = 1; p < 3; p++)
        if (!rl_shape_equal(&n->in[p].shape, &n->in[0].shape))
            return rl_node_fail(n, err, "input '%s' has shape %s but 'advantages' has shape %s", es_inputs[p].name,
                                rl_shape_str(&n->in[p].shape, a, sizeof a), rl_shape_str(&n->in[0].shape, b, sizeof b));
    return 0;
}

static int es_infer(rl_node *n, rl_error *err) {
    if (es_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int es_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    const es_state *s = n->state;
    if (es_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    const float *A = rl_f32(&n->in[0]), *H = rl_f32(&n->in[1]), *m = rl_f32(&n->in[2]);
    float *out = rl_f32(&n->out[0]);
    /* Mean bonus over valid tokens, computed before a possible in-place overwrite. */
    double before = 0, cnt_valid = 0;
    for (int64_t i = 0; i < cnt; i++) if (m[i] > 0) { before += A[i]; cnt_valid += 1; }
    rl_entropy_shape(A, H, m, cnt, s->alpha, s->kappa, out);
    double after = 0;
    for (int64_t i = 0; i < cnt; i++) if (m[i] > 0) after += out[i];
    rl_metric_set(ctx, n, "entropy_bonus", cnt_valid > 0 ? (after - before) / cnt_valid : 0);
    return 0;
}

static void es_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_entropy_shaper = {
    .name = "entropy_shaper",
    .doc = "A + min(alpha*H, |A|/kappa): entropy advantage shaping (Cheng et al. 2025)",
    .inputs = es_inputs,
    .n_inputs = 3,
    .outputs = es_outputs,
    .n_outputs = 1,
    .options = es_options,
    .n_options = 2,
    .init = es_init,
    .infer = es_infer,
    .forward = es_forward,
    .destroy = es_destroy,
};
