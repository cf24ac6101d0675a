/* regression_data: synthetic supervised data for the first example graph.
 * x ~ N(0, 1) from the counter RNG keyed by (seed, step), so every step sees a
 * fresh batch and a resumed run sees the same batches; y = teacher(x) with a
 * fixed teacher MLP (linear -> SiLU -> linear) drawn from the seed alone, so a
 * student of the same form can fit it to near zero loss. */
#include <math.h>

#include "alloc.h"
#include "kernels.h"
#include "node.h"
#include "rng.h"

/* Stream purposes (arbitrary distinct tags). */
#define PURPOSE_X 0x78ull         /* 'x' */
#define PURPOSE_TEACHER 0x7465ull /* 'te' */

typedef struct regdata_state {
    int64_t batch, in, out, hidden;
    uint64_t seed;
    float *w1, *b1, *w2, *b2; /* one block: [hidden,in] [hidden] [out,hidden] [out] */
    int ws_h;                 /* scratch index for the hidden activations */
} regdata_state;

static const rl_port_spec regdata_outputs[] = {
    {"x", RL_F32, 2, 0, 0, "inputs [batch, inputs] ~ N(0, 1)"},
    {"y", RL_F32, 2, 0, 0, "targets [batch, outputs] = teacher(x)"},
};
static const rl_option_spec regdata_options[] = {
    {"batch", RL_VAL_INT, NULL, "rows per step", NULL},
    {"inputs", RL_VAL_INT, NULL, "input features", NULL},
    {"outputs", RL_VAL_INT, NULL, "output features", NULL},
    {"seed", RL_VAL_INT, "0", "seed of the data and of the teacher", NULL},
    {"hidden", RL_VAL_INT, "32", "teacher hidden width", NULL},
};

static int regdata_init(rl_node *n, rl_error *err) {
    int64_t batch = rl_node_opt_int(n, "batch"), in = rl_node_opt_int(n, "inputs");
    int64_t out = rl_node_opt_int(n, "outputs"), hidden = rl_node_opt_int(n, "hidden");
    const int64_t v[4] = {batch, in, out, hidden};
    const char *names[4] = {"batch", "inputs", "outputs", "hidden"};
    for (int i = 0; i < 4; i++)
        if (v[i] <= 0 || v[i] > INT32_MAX)
            return rl_node_fail(n, err, "option '%s' = %lld must be in [1, %d]", names[i], (long long)v[i], INT32_MAX);
    rl_error e = {0};
    if (rl_kernel_dims_ok("teacher layer 1", batch, hidden, in, &e) ||
        rl_kernel_dims_ok("teacher layer 2", batch, out, hidden, &e))
        return rl_node_fail(n, err, "%s", e.msg);
    size_t total, t1, t2;
    if (rl_mul_size((size_t)hidden, (size_t)in + 1, &t1) || rl_mul_size((size_t)out, (size_t)hidden + 1, &t2) ||
        rl_add_size(t1, t2, &total) || rl_mul_size(total, sizeof(float), &total))
        return rl_node_fail(n, err, "teacher of %lld x %lld x %lld is too large", (long long)in, (long long)hidden,
                            (long long)out);
    regdata_state *s = rl_calloc(1, sizeof *s);
    float *w = s ? rl_malloc(total) : NULL;
    if (!w) { rl_free(s); return rl_node_fail(n, err, "out of memory for the teacher (%zu bytes)", total); }
    n->state = s;
    s->batch = batch; s->in = in; s->out = out; s->hidden = hidden;
    s->seed = (uint64_t)rl_node_opt_int(n, "seed");
    s->w1 = w;
    s->b1 = s->w1 + hidden * in;
    s->w2 = s->b1 + hidden;
    s->b2 = s->w2 + out * hidden;
    /* Scales keep every layer's output O(1): fan-in scaled weights, small biases. */
    rl_rng_normal_scaled_fill(s->w1, (size_t)(hidden * in), 0.0f, (float)(1.0 / sqrt((double)in)), s->seed,
                              rl_rng_stream2(PURPOSE_TEACHER, 1), 0);
    rl_rng_normal_scaled_fill(s->b1, (size_t)hidden, 0.0f, 0.5f, s->seed, rl_rng_stream2(PURPOSE_TEACHER, 2), 0);
    rl_rng_normal_scaled_fill(s->w2, (size_t)(out * hidden), 0.0f, (float)(1.0 / sqrt((double)hidden)), s->seed,
                              rl_rng_stream2(PURPOSE_TEACHER, 3), 0);
    rl_rng_normal_scaled_fill(s->b2, (size_t)out, 0.0f, 0.1f, s->seed, rl_rng_stream2(PURPOSE_TEACHER, 4), 0);
    return 0;
}

static int regdata_infer(rl_node *n, rl_error *err) {
    regdata_state *s = n->state;
    n->out[0].shape = rl_shape2(s->batch, s->in);
    n->out[1].shape = rl_shape2(s->batch, s->out);
    size_t bytes;
    if (rl_mul_size((size_t)s->batch, (size_t)s->hidden, &bytes) || rl_mul_size(bytes, sizeof(float), &bytes))
        return rl_node_fail(n, err, "hidden activations of %lld x %lld overflow", (long long)s->batch,
                            (long long)s->hidden);
    s->ws_h = rl_node_request(n, RL_WS_SCRATCH_FWD, bytes, err);
    return s->ws_h < 0 ? -1 : 0;
}

static int regdata_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    regdata_state *s = n->state;
    float *x = rl_f32(&n->out[0]), *y = rl_f32(&n->out[1]);
    float *h = n->ws[s->ws_h].data;
    if (!x || !y || !h) return rl_node_fail(n, err, "buffers are not bound");
    uint64_t step = ctx ? (uint64_t)ctx->step : 0;
    rl_rng_normal_fill(x, (size_t)(s->batch * s->in), s->seed, rl_rng_stream2(PURPOSE_X, step), 0);
    rl_linear_forward(h, x, s->w1, s->b1, s->batch, s->in, s->hidden);
    rl_silu_forward(h, h, s->batch * s->hidden);
    rl_linear_forward(y, h, s->w2, s->b2, s->batch, s->hidden, s->out);
    return 0;
}

static void regdata_destroy(rl_node *n) {
    regdata_state *s = n->state;
    if (s) rl_free(s->w1);
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_regression_data = {
    .name = "regression_data",
    .doc = "seeded synthetic regression batches: x ~ N(0,1), y = fixed teacher MLP(x)",
    .outputs = regdata_outputs,
    .n_outputs = 2,
    .options = regdata_options,
    .n_options = 5,
    .init = regdata_init,
    .infer = regdata_infer,
    .forward = regdata_forward,
    .destroy = regdata_destroy,
};
