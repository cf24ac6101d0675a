/* Elementwise nodes: add (with optional broadcast of b over rows), mul, scale.
 * add and scale never read their inputs or output in backward, so their
 * output may overwrite the first input in place; mul needs both inputs. */
#include "kernels.h"
#include "node.h"

/* ---- add: y = a + b; b has a's shape, or is a vector of a's last dim ---- */

static const rl_port_spec add_inputs[] = {
    {"a", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "first operand"},
    {"b", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "same shape as a, or [C] added to every row of a [..., C]"},
};
static const rl_port_spec add_outputs[] = {
    {"y", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 1, "a + b, shape of a"},
};

/* 0: same shape; 1: b broadcast over rows (cols = last dim); -1 on mismatch. */
static int add_mode(rl_node *n, int64_t *rows, int64_t *cols, rl_error *err) {
    const rl_tensor *a = &n->in[0], *b = &n->in[1];
    int64_t na = rl_tensor_numel(a);
    if (rl_shape_equal(&a->shape, &b->shape)) {
        *rows = 1;
        *cols = na;
        return 0;
    }
    if (b->shape.ndim == 1 && a->shape.ndim >= 1 && b->shape.dim[0] == a->shape.dim[a->shape.ndim - 1] &&
        b->shape.dim[0] > 0) {
        *cols = b->shape.dim[0];
        *rows = na / *cols;
        return 1;
    }
    char sa[64], sb[64];
    return rl_node_fail(n, err, "inputs 'a' %s and 'b' %s must have the same shape (or b = [last dim of a])",
                        rl_shape_str(&a->shape, sa, sizeof sa), rl_shape_str(&b->shape, sb, sizeof sb));
}

static int add_infer(rl_node *n, rl_error *err) {
    int64_t r, c;
    if (add_mode(n, &r, &c, err) < 0) return -1;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int add_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    int64_t r, c;
    int mode = add_mode(n, &r, &c, err);
    if (mode < 0) return -1;
    n->out[0].shape = n->in[0].shape;
    float *y = rl_f32(&n->out[0]);
    if (mode == 0) rl_add_forward(y, rl_f32(&n->in[0]), rl_f32(&n->in[1]), c);
    else rl_bias_add_forward(y, rl_f32(&n->in[0]), rl_f32(&n->in[1]), r, c);
    return 0;
}

static int add_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy) return 0;
    int64_t r, c;
    int mode = add_mode(n, &r, &c, err);
    if (mode < 0) return -1;
    float *da = n->need_grad_in[0] ? rl_f32(&n->grad_in[0]) : NULL;
    float *db = n->need_grad_in[1] ? rl_f32(&n->grad_in[1]) : NULL;
    if (mode == 0) rl_add_backward(da, db, dy, c);
    else rl_bias_add_backward(da, db, dy, r, c);
    return 0;
}

const rl_node_type rl_node_add = {
    .name = "add",
    .doc = "y = a + b (b same shape, or a row vector broadcast over rows)",
    .inputs = add_inputs,
    .n_inputs = 2,
    .outputs = add_outputs,
    .n_outputs = 1,
    .infer = add_infer,
    .forward = add_forward,
    .backward = add_backward,
};

/* ---- mul: y = a * b, same shapes ---- */

static const rl_port_spec mul_inputs[] = {
    {"a", RL_F32, -1, 0, 0, "first operand"},
    {"b", RL_F32, -1, 0, 0, "second operand, same shape as a"},
};
static const rl_port_spec mul_outputs[] = {
    {"y", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "a * b elementwise"},
};

static int mul_check(rl_node *n, rl_error *err) {
    if (rl_shape_equal(&n->in[0].shape, &n->in[1].shape)) return 0;
    char sa[64], sb[64];
    return rl_node_fail(n, err, "inputs 'a' %s and 'b' %s must have the same shape",
                        rl_shape_str(&n->in[0].shape, sa, sizeof sa), rl_shape_str(&n->in[1].shape, sb, sizeof sb));
}

static int mul_infer(rl_node *n, rl_error *err) {
    if (mul_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int mul_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    if (mul_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    rl_mul_forward(rl_f32(&n->out[0]), rl_f32(&n->in[0]), rl_f32(&n->in[1]), rl_tensor_numel(&n->in[0]));
    return 0;
}

static int mul_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy) return 0;
    if (mul_check(n, err)) return -1;
    float *da = n->need_grad_in[0] ? rl_f32(&n->grad_in[0]) : NULL;
    float *db = n->need_grad_in[1] ? rl_f32(&n->grad_in[1]) : NULL;
    rl_mul_backward(da, db, dy, rl_f32(&n->in[0]), rl_f32(&n->in[1]), rl_tensor_numel(&n->in[0]));
    return 0;
}

const rl_node_type rl_node_mul = {
    .name = "mul",
    .doc = "y = a * b elementwise (same shapes)",
    .inputs = mul_inputs,
    .n_inputs = 2,
    .outputs = mul_outputs,
    .n_outputs = 1,
    .infer = mul_infer,
    .forward = mul_forward,
    .backward = mul_backward,
};

/* ---- scale: y = factor * x ---- */

static const rl_port_spec scale_inputs[] = {
    {"x", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "input"},
};
static const rl_port_spec scale_outputs[] = {
    {"y", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 1, "factor * x"},
};
static const rl_option_spec scale_options[] = {
    {"factor", RL_VAL_NUMBER, NULL, "multiplier", NULL},
};

static int scale_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int scale_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    n->out[0].shape = n->in[0].shape;
    rl_scale_forward(rl_f32(&n->out[0]), rl_f32(&n->in[0]), (float)rl_node_opt_number(n, "factor"),
                     rl_tensor_numel(&n->in[0]));
    return 0;
}

static int scale_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    if (!n->grad_out[0].data || !n->need_grad_in[0]) return 0;
    rl_scale_backward(rl_f32(&n->grad_in[0]), rl_f32(&n->grad_out[0]), (float)rl_node_opt_number(n, "factor"),
                      rl_tensor_numel(&n->in[0]));
    return 0;
}

const rl_node_type rl_node_scale = {
    .name = "scale",
    .doc = "y = factor * x",
    .inputs = scale_inputs,
    .n_inputs = 1,
    .outputs = scale_outputs,
    .n_outputs = 1,
    .options = scale_options,
    .n_options = 1,
    .infer = scale_infer,
    .forward = scale_forward,
    .backward = scale_backward,
};
