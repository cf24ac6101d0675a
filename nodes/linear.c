/* linear: y = x · W^T + b over the last dimension (torch nn.Linear / HF layout,
 * W [outputs, inputs]). Weights live in a parameter set as "<prefix>.weight"
 * and "<prefix>.bias"; their pointers only exist once the graph finalises the
 * set, so the node keeps offsets and resolves them at every call. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "kernels.h"
#include "node.h"

typedef struct linear_state {
    rl_params *params;
    size_t w_off, b_off;
    int64_t in, out;
    int bias;
} linear_state;

static const rl_port_spec linear_inputs[] = {
    {"x", RL_F32, -1, 0, 0, "input [..., inputs] (leading dims are flattened into rows)"},
};
static const rl_port_spec linear_outputs[] = {
    /* Backward needs x and W, never y. */
    {"y", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "output [..., outputs]"},
};
static const rl_option_spec linear_options[] = {
    {"params", RL_VAL_OBJECT, NULL, "parameter set holding the weights", "params"},
    {"prefix", RL_VAL_STRING, NULL, "parameter names are <prefix>.weight and <prefix>.bias", NULL},
    {"inputs", RL_VAL_INT, NULL, "input features", NULL},
    {"outputs", RL_VAL_INT, NULL, "output features", NULL},
    {"bias", RL_VAL_BOOL, "true", "add a bias (initialised to zero)", NULL},
};

static int linear_init(rl_node *n, rl_error *err) {
    rl_object *o = rl_node_opt_object(n, "params");
    /* A model object carries its parameter set in o->params; a bare set is o->ptr. */
    rl_params *ps = o ? (o->params ? o->params : (strcmp(o->type, "params") == 0 ? o->ptr : NULL)) : NULL;
    if (!ps) return rl_node_fail(n, err, "option 'params' must be a parameter set");
    int64_t in = rl_node_opt_int(n, "inputs"), out = rl_node_opt_int(n, "outputs");
    if (in <= 0 || out <= 0 || in > INT32_MAX || out > INT32_MAX)
        return rl_node_fail(n, err, "inputs (%lld) and outputs (%lld) must be in [1, %d]", (long long)in,
                            (long long)out, INT32_MAX);
    const char *prefix = rl_node_opt_string(n, "prefix");
    if (!prefix[0]) return rl_node_fail(n, err, "option 'prefix' must not be empty");
    linear_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->params = ps;
    s->in = in;
    s->out = out;
    s->bias = rl_node_opt_bool(n, "bias");
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    rl_error e = {0};
    if (rl_params_add(s->params, name, rl_shape2(out, in), RL_INIT_KAIMING_UNIFORM, 1.0f, &s->w_off, &e))
        return rl_node_fail(n, err, "%s", e.msg);
    if (s->bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        if (rl_params_add(s->params, name, rl_shape1(out), RL_INIT_ZEROS, 0.0f, &s->b_off, &e))
            return rl_node_fail(n, err, "%s", e.msg);
    }
    return rl_node_use_params(n, s->params, err);
}

/* Rows = product of the leading dims; the last dim must be `inputs`. */
static int linear_rows(rl_node *n, const rl_tensor *x, int64_t *rows, rl_error *err) {
    const linear_state *s = n->state;
    char buf[64];
    if (x->shape.ndim < 1 || x->shape.dim[x->shape.ndim - 1] != s->in)
        return rl_node_fail(n, err, "input 'x' has shape %s, but the last dim must be inputs = %lld",
                            rl_shape_str(&x->shape, buf, sizeof buf), (long long)s->in);
    int64_t r = rl_shape_numel(&x->shape);
    if (r < 0) return rl_node_fail(n, err, "input 'x' has an invalid shape");
    *rows = r / s->in;
    rl_error e = {0};
    if (rl_kernel_dims_ok("input 'x'", *rows, s->out, s->in, &e)) return rl_node_fail(n, err, "%s", e.msg);
    return 0;
}

static int linear_infer(rl_node *n, rl_error *err) {
    const linear_state *s = n->state;
    int64_t rows;
    if (linear_rows(n, &n->in[0], &rows, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    n->out[0].shape.dim[n->out[0].shape.ndim - 1] = s->out;
    return 0;
}

static int linear_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const linear_state *s = n->state;
    if (!s->params->data) return rl_node_fail(n, err, "parameter set '%s' is not finalised", s->params->name);
    int64_t rows;
    if (linear_rows(n, &n->in[0], &rows, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    n->out[0].shape.dim[n->out[0].shape.ndim - 1] = s->out;
    const float *w = s->params->data + s->w_off;
    const float *b = s->bias ? s->params->data + s->b_off : NULL;
    rl_linear_forward(rl_f32(&n->out[0]), rl_f32(&n->in[0]), w, b, rows, s->in, s->out);
    return 0;
}

static int linear_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const linear_state *s = n->state;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy) return 0; /* no gradient reaches y */
    int64_t rows;
    if (linear_rows(n, &n->in[0], &rows, err)) return -1;
    float *dx = n->need_grad_in[0] ? rl_f32(&n->grad_in[0]) : NULL;
    /* Parameter gradients only for sets an optimizer trains (the graph sets
       `trainable`); a frozen set's gradient would never be read or zeroed. */
    float *dw = NULL, *db = NULL;
    if (s->params->trainable && s->params->grad) {
        dw = s->params->grad + s->w_off;
        db = s->bias ? s->params->grad + s->b_off : NULL;
    }
    rl_linear_backward(dx, dw, db, dy, rl_f32(&n->in[0]), s->params->data + s->w_off, rows, s->in, s->out);
    return 0;
}

static void linear_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_linear = {
    .name = "linear",
    .doc = "y = x W^T + b (torch nn.Linear layout, Kaiming-uniform weights, zero bias)",
    .inputs = linear_inputs,
    .n_inputs = 1,
    .outputs = linear_outputs,
    .n_outputs = 1,
    .options = linear_options,
    .n_options = 5,
    .init = linear_init,
    .infer = linear_infer,
    .forward = linear_forward,
    .backward = linear_backward,
    .destroy = linear_destroy,
};
