/* mse_loss: loss = mean((prediction - target)^2) as f32 [1]; records the
 * metric "loss". Gradients flow to both inputs where the graph wants them. */
#include "kernels.h"
#include "node.h"

static const rl_port_spec mse_inputs[] = {
    {"prediction", RL_F32, -1, 0, 0, "prediction (any shape)"},
    {"target", RL_F32, -1, 0, 0, "target, same shape as prediction"},
};
static const rl_port_spec mse_outputs[] = {
    {"loss", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "mean squared error, shape [1]"},
};

static int mse_check(rl_node *n, rl_error *err) {
    if (rl_shape_equal(&n->in[0].shape, &n->in[1].shape)) return 0;
    char sa[64], sb[64];
    return rl_node_fail(n, err, "inputs 'prediction' %s and 'target' %s must have the same shape",
                        rl_shape_str(&n->in[0].shape, sa, sizeof sa), rl_shape_str(&n->in[1].shape, sb, sizeof sb));
}

static int mse_infer(rl_node *n, rl_error *err) {
    if (mse_check(n, err)) return -1;
    n->out[0].shape = rl_shape1(1);
    return 0;
}

static int mse_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    if (mse_check(n, err)) return -1;
    float loss = rl_mse_forward(rl_f32(&n->in[0]), rl_f32(&n->in[1]), rl_tensor_numel(&n->in[0]));
    n->out[0].shape = rl_shape1(1);
    rl_f32(&n->out[0])[0] = loss;
    rl_metric_set(ctx, n, "loss", loss);
    return 0;
}

static int mse_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const float *dl = rl_f32(&n->grad_out[0]);
    if (!dl) return 0;
    if (mse_check(n, err)) return -1;
    float *dp = n->need_grad_in[0] ? rl_f32(&n->grad_in[0]) : NULL;
    float *dt = n->need_grad_in[1] ? rl_f32(&n->grad_in[1]) : NULL;
    rl_mse_backward(dp, dt, dl[0], rl_f32(&n->in[0]), rl_f32(&n->in[1]), rl_tensor_numel(&n->in[0]));
    return 0;
}

const rl_node_type rl_node_mse_loss = {
    .name = "mse_loss",
    .doc = "mean squared error between prediction and target (scalar [1], metric 'loss')",
    .inputs = mse_inputs,
    .n_inputs = 2,
    .outputs = mse_outputs,
    .n_outputs = 1,
    .infer = mse_infer,
    .forward = mse_forward,
    .backward = mse_backward,
};
