/* silu: y = x · sigmoid(x), elementwise. Backward needs the input x (the
 * derivative is not a function of y alone), so y cannot overwrite x. */
#include "kernels.h"
#include "node.h"

static const rl_port_spec silu_inputs[] = {
    {"x", RL_F32, -1, 0, 0, "input (any shape)"},
};
static const rl_port_spec silu_outputs[] = {
    {"y", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "x * sigmoid(x), same shape"},
};

static int silu_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int silu_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    n->out[0].shape = n->in[0].shape;
    rl_silu_forward(rl_f32(&n->out[0]), rl_f32(&n->in[0]), rl_tensor_numel(&n->in[0]));
    return 0;
}

static int silu_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    if (!n->grad_out[0].data || !n->need_grad_in[0]) return 0;
    rl_silu_backward(rl_f32(&n->grad_in[0]), rl_f32(&n->grad_out[0]), rl_f32(&n->in[0]),
                     rl_tensor_numel(&n->in[0]));
    return 0;
}

const rl_node_type rl_node_silu = {
    .name = "silu",
    .doc = "SiLU activation y = x * sigmoid(x)",
    .inputs = silu_inputs,
    .n_inputs = 1,
    .outputs = silu_outputs,
    .n_outputs = 1,
    .infer = silu_infer,
    .forward = silu_forward,
    .backward = silu_backward,
};
