/* repeat_each: each item of a batch, G times in a row.
 *
 * The sampler turns B prompts into B·G rollouts (sample g of prompt b is row
 * b·G+g); whatever else belongs to a prompt must follow it to its G rows: the
 * prompt's length (where each rollout's response starts, for detokenize) and,
 * for a multimodal prompt, its image's embeddings (for the policy's splice,
 * which takes one row per <|image_pad|> of the batch). An item is one row of
 * `x`, or, with `counts`, a run of counts[b] consecutive rows (the packed
 * image tokens of image b, vision_encoder's `counts`), so images of different
 * sizes repeat correctly.
 *
 * Backward (f32): each item's gradient is the sum of its G copies', so a
 * trainable vision encoder receives what all rollouts of its image send. */
#include <string.h>

#include "alloc.h"
#include "node.h"

enum { IN_X, IN_COUNTS };

static const rl_port_spec rep_inputs[] = {
    {"x", RL_F32, -1, RL_PORT_ANY_DTYPE | RL_PORT_NOT_IN_BACKWARD, 0,
     "[R, ...] any dtype: the items (rows, or runs of rows with 'counts')"},
    {"counts", RL_I32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD, 0,
     "[B]: rows of x per item (sum = R), e.g. vision_encoder.counts; absent = one row per item"},
};
static const rl_port_spec rep_outputs[] = {
    {"y", RL_F32, -1, RL_PORT_ANY_DTYPE | RL_PORT_NOT_IN_BACKWARD, 0,
     "[R*times, ...]: item 0 times times, then item 1, ...; dtype of x"},
};
static const rl_option_spec rep_options[] = {
    {"times", RL_VAL_INT, NULL, "copies of each item (the sampler's group G)", NULL},
};

/* Bytes of one row of x (0 for a rank-0 x, which has no rows). */
static int row_bytes(rl_node *n, size_t *out, rl_error *err) {
    const rl_tensor *x = &n->in[IN_X];
    char buf[64];
    if (x->shape.ndim < 1)
        return rl_node_fail(n, err, "input 'x' has shape %s: it needs a first (row) dimension",
                            rl_shape_str(&x->shape, buf, sizeof buf));
    size_t per = rl_dtype_size(x->dtype);
    for (int d = 1; d < x->shape.ndim; d++)
        if (rl_mul_size(per, (size_t)x->shape.dim[d], &per))
            return rl_node_fail(n, err, "input 'x' shape %s is too large", rl_shape_str(&x->shape, buf, sizeof buf));
    *out = per;
    return 0;
}

static int rep_out_shape(rl_node *n, rl_error *err) {
    const rl_tensor *x = &n->in[IN_X];
    int64_t G = rl_node_opt_int(n, "times");
    size_t rows;
    if (rl_mul_size((size_t)x->shape.dim[0], (size_t)G, &rows) || rows > (size_t)INT64_MAX / 2)
        return rl_node_fail(n, err, "%lld rows x %lld copies overflow", (long long)x->shape.dim[0], (long long)G);
    n->out[0].dtype = x->dtype;
    n->out[0].shape = x->shape;
    n->out[0].shape.dim[0] = (int64_t)rows;
    return 0;
}

static int rep_init(rl_node *n, rl_error *err) {
    if (rl_node_opt_int(n, "times") < 1) return rl_node_fail(n, err, "option 'times' must be >= 1");
    return 0;
}

static int rep_infer(rl_node *n, rl_error *err) {
    size_t rb;
    if (row_bytes(n, &rb, err)) return -1;
    return rep_out_shape(n, err);
}

/* Checks counts against the rows of x; returns the number of items. */
static int64_t items(rl_node *n, rl_error *err) {
    const int64_t R = n->in[IN_X].shape.dim[0];
    if (!n->in[IN_COUNTS].data) return R;
    const int32_t *c = rl_i32(&n->in[IN_COUNTS]);
    const int64_t B = n->in[IN_COUNTS].shape.dim[0];
    int64_t sum = 0;
    for (int64_t b = 0; b < B; b++) {
        if (c[b] < 0) return rl_node_fail(n, err, "counts[%lld] = %d is negative", (long long)b, c[b]);
        sum += c[b];
    }
    if (sum != R)
        return rl_node_fail(n, err, "counts add up to %lld rows but 'x' has %lld", (long long)sum, (long long)R);
    return B;
}

static int rep_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    size_t rb;
    if (row_bytes(n, &rb, err) || rep_out_shape(n, err)) return -1;
    int64_t B = items(n, err);
    if (B < 0) return -1;
    const int64_t G = rl_node_opt_int(n, "times");
    const int32_t *c = n->in[IN_COUNTS].data ? rl_i32(&n->in[IN_COUNTS]) : NULL;
    const uint8_t *x = n->in[IN_X].data;
    uint8_t *y = n->out[0].data;
    for (int64_t b = 0; b < B; b++) {
        size_t bytes = (size_t)(c ? c[b] : 1) * rb;
        for (int64_t g = 0; g < G; g++, y += bytes) memcpy(y, x, bytes);
        x += bytes;
    }
    return 0;
}

static int rep_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    if (!n->grad_out[0].data || !n->need_grad_in[IN_X]) return 0;
    if (n->in[IN_X].dtype != RL_F32) return rl_node_fail(n, err, "a gradient reaches 'x' of dtype %s (f32 only)",
                                                         rl_dtype_name(n->in[IN_X].dtype));
    size_t rb;
    if (row_bytes(n, &rb, err)) return -1;
    int64_t B = items(n, err);
    if (B < 0) return -1;
    const int64_t G = rl_node_opt_int(n, "times");
    const int32_t *c = n->in[IN_COUNTS].data ? rl_i32(&n->in[IN_COUNTS]) : NULL;
    const size_t row = rb / sizeof(float);
    const float *dy = rl_f32(&n->grad_out[0]);
    float *dx = rl_f32(&n->grad_in[IN_X]);
    for (int64_t b = 0; b < B; b++) {
        size_t len = (size_t)(c ? c[b] : 1) * row;
        for (int64_t g = 0; g < G; g++, dy += len)
            for (size_t i = 0; i < len; i++) dx[i] += dy[i];
        dx += len;
    }
    return 0;
}

const rl_node_type rl_node_repeat_each = {
    .name = "repeat_each",
    .doc = "each item (a row, or a run of rows given by counts) G times in a row: per-prompt data for its G rollouts",
    .inputs = rep_inputs,
    .n_inputs = 2,
    .outputs = rep_outputs,
    .n_outputs = 1,
    .options = rep_options,
    .n_options = 1,
    .init = rep_init,
    .infer = rep_infer,
    .forward = rep_forward,
    .backward = rep_backward,
};
