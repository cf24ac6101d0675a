/* flow_weights: the per-response weights of the online flow update,
 * w_i = 1 if reward_i >= correct else soft_flow (rl_flow_weight in
 * runtime/rl_math.c, the one place the rule lives). Computed once per step
 * and shared: flow_loss weighs responses with them, and the flow node skips
 * the rows of responses whose weight is exactly 0 (rejected rollouts under
 * pure rejection sampling), which would otherwise be computed for nothing. */
#include <math.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

static const rl_port_spec fwt_inputs[] = {
    {"reward", RL_F32, 1, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "outcome rewards f32 [N]"},
};
static const rl_port_spec fwt_outputs[] = {
    {"weight", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "f32 [N]: 1 for correct responses, soft_flow for the others"},
};
static const rl_option_spec fwt_options[] = {
    {"soft_flow", RL_VAL_NUMBER, "0", "weight of responses that are not correct (0: pure rejection sampling)", NULL},
    {"correct", RL_VAL_NUMBER, "1", "a response is correct when its reward is >= this", NULL},
};

typedef struct fwt_state {
    double soft_flow, correct;
} fwt_state;

static int fwt_init(rl_node *n, rl_error *err) {
    fwt_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->soft_flow = rl_node_opt_number(n, "soft_flow");
    s->correct = rl_node_opt_number(n, "correct");
    /* Same ranges as flow_loss's options of the same names. */
    if (!(s->soft_flow >= 0 && s->soft_flow <= 1))
        return rl_node_fail(n, err, "soft_flow must be in [0, 1] (got %g)", s->soft_flow);
    if (!isfinite(s->correct)) return rl_node_fail(n, err, "correct must be finite");
    return 0;
}

static int fwt_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int fwt_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    const fwt_state *s = n->state;
    const int64_t N = n->in[0].shape.dim[0];
    n->out[0].shape = n->in[0].shape;
    int64_t zeros = rl_flow_weights(rl_f32(&n->in[0]), N, s->correct, s->soft_flow, rl_f32(&n->out[0]));
    rl_metric_set(ctx, n, "flow_rejected", (double)zeros);
    return 0;
}

static void fwt_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_flow_weights = {
    .name = "flow_weights",
    .doc = "per-response weights of the online flow update: 1 if reward >= correct, else soft_flow",
    .inputs = fwt_inputs,
    .n_inputs = 1,
    .outputs = fwt_outputs,
    .n_outputs = 1,
    .options = fwt_options,
    .n_options = (int)(sizeof fwt_options / sizeof fwt_options[0]),
    .init = fwt_init,
    .infer = fwt_infer,
    .forward = fwt_forward,
    .destroy = fwt_destroy,
};
