/* ce_loss: masked cross-entropy for supervised fine-tuning. The policy node
 * already gives log p(token_t | tokens_<t) per position, so the loss is the
 * negative mean of those log-probs over the positions the mask selects (the
 * response tokens, end token included):
 *   mean = "token": loss = -sum(mask * logp) / sum(mask)
 *   mean = "seq":   loss = -(1/B') sum_b [sum_t mask*logp / sum_t mask] over
 *                   the B' rows with at least one masked token
 * "token" weights every supervised token equally (long solutions count more);
 * "seq" weights every example equally. A batch with no masked token gives a
 * loss of 0 and no gradient rather than 0/0. Metrics: "loss" and "tokens"
 * (the masked token count). */
#include <string.h>

#include "alloc.h"
#include "node.h"

static const rl_port_spec ce_inputs[] = {
    {"logprobs", RL_F32, 2, 0, 0, "per-token log-probs [B, T] (the policy's logprobs)"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD, 0, "1 on the tokens to learn (the response), 0 elsewhere [B, T]"},
};
static const rl_port_spec ce_outputs[] = {
    {"loss", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "mean negative log-likelihood, shape [1]"},
};
static const rl_option_spec ce_options[] = {
    {"mean", RL_VAL_STRING, "token", "\"token\": mean over masked tokens; \"seq\": mean over rows of each row's token mean", NULL},
};

typedef struct ce_state {
    int per_seq;
} ce_state;

static int ce_init(rl_node *n, rl_error *err) {
    const char *mode = rl_node_opt_string(n, "mean");
    int per_seq;
    if (strcmp(mode, "token") == 0) per_seq = 0;
    else if (strcmp(mode, "seq") == 0) per_seq = 1;
    else return rl_node_fail(n, err, "option 'mean' must be \"token\" or \"seq\", got \"%s\"", mode);
    ce_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    s->per_seq = per_seq;
    n->state = s;
    return 0;
}

static void ce_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

/* Run-time shapes may shrink (fewer tokens); both inputs must shrink alike. */
static int ce_check(rl_node *n, rl_error *err) {
    if (rl_shape_equal(&n->in[0].shape, &n->in[1].shape)) return 0;
    char sa[64], sb[64];
    return rl_node_fail(n, err, "inputs 'logprobs' %s and 'mask' %s must have the same shape",
                        rl_shape_str(&n->in[0].shape, sa, sizeof sa), rl_shape_str(&n->in[1].shape, sb, sizeof sb));
}

static int ce_infer(rl_node *n, rl_error *err) {
    if (ce_check(n, err)) return -1;
    n->out[0].shape = rl_shape1(1);
    return 0;
}

/* Sums in double: a batch may hold tens of thousands of tokens. */
static int ce_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    if (ce_check(n, err)) return -1;
    const ce_state *s = n->state;
    const float *lp = rl_f32(&n->in[0]), *m = rl_f32(&n->in[1]);
    int64_t B = n->in[0].shape.dim[0], T = n->in[0].shape.dim[1];
    double total = 0.0, count = 0.0, seq_sum = 0.0;
    int64_t rows = 0;
    for (int64_t b = 0; b < B; b++) {
        double rs = 0.0, rc = 0.0;
        for (int64_t t = 0; t < T; t++) {
            double w = m[b * T + t];
            rs += w * lp[b * T + t];
            rc += w;
        }
        total += rs;
        count += rc;
        if (rc > 0.0) {
            seq_sum += rs / rc;
            rows++;
        }
    }
    double loss;
    if (s->per_seq) loss = rows > 0 ? -seq_sum / (double)rows : 0.0;
    else loss = count > 0.0 ? -total / count : 0.0;
    n->out[0].shape = rl_shape1(1);
    rl_f32(&n->out[0])[0] = (float)loss;
    rl_metric_set(ctx, n, "loss", loss);
    rl_metric_set(ctx, n, "tokens", count);
    return 0;
}

static int ce_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const float *dl = rl_f32(&n->grad_out[0]);
    if (!dl || !n->need_grad_in[0]) return 0;
    if (ce_check(n, err)) return -1;
    const ce_state *s = n->state;
    const float *m = rl_f32(&n->in[1]);
    float *g = rl_f32(&n->grad_in[0]);
    int64_t B = n->in[0].shape.dim[0], T = n->in[0].shape.dim[1];
    if (s->per_seq) {
        int64_t rows = 0;
        for (int64_t b = 0; b < B; b++) {
            double rc = 0.0;
            for (int64_t t = 0; t < T; t++) rc += m[b * T + t];
            if (rc > 0.0) rows++;
        }
        if (rows == 0) return 0;
        for (int64_t b = 0; b < B; b++) {
            double rc = 0.0;
            for (int64_t t = 0; t < T; t++) rc += m[b * T + t];
            if (rc <= 0.0) continue;
            double scale = -(double)dl[0] / (rc * (double)rows);
            for (int64_t t = 0; t < T; t++) g[b * T + t] += (float)(scale * m[b * T + t]);
        }
    } else {
        double count = 0.0;
        for (int64_t i = 0; i < B * T; i++) count += m[i];
        if (count <= 0.0) return 0;
        double scale = -(double)dl[0] / count;
        for (int64_t i = 0; i < B * T; i++) g[i] += (float)(scale * m[i]);
    }
    return 0;
}

const rl_node_type rl_node_ce_loss = {
    .name = "ce_loss",
    .doc = "masked cross-entropy for SFT: -sum(mask*logp)/sum(mask) (or per-sequence mean); metrics 'loss', 'tokens'",
    .inputs = ce_inputs,
    .n_inputs = 2,
    .outputs = ce_outputs,
    .n_outputs = 1,
    .options = ce_options,
    .n_options = 1,
    .init = ce_init,
    .infer = ce_infer,
    .forward = ce_forward,
    .backward = ce_backward,
    .destroy = ce_destroy,
};
