/* optimizer: AdamW on one parameter set, run by the scheduler after the
 * backward pass of a step. Each call records the loss; every `accumulate`-th
 * call divides the accumulated gradients by `accumulate`, clips their global
 * norm, applies the AdamW update with the scheduled learning rate, and zeroes
 * the gradients. The schedule counts updates, not calls or steps, so
 * accumulation and multi-phase steps do not distort it. */
#include <math.h>
#include <string.h>

#include "adamw.h"
#include "alloc.h"
#include "node.h"
#include "optimizer.h"
#include "state.h"

typedef struct opt_state {
    rl_params *params;
    rl_adamw adam;
    int ready;              /* the state matches the finalised set */
    rl_adamw_hparams hp;
    rl_lr_schedule sched;
    double clip;
    int64_t accumulate;
    int64_t pending;        /* calls since the last update */
} opt_state;

static const rl_port_spec opt_inputs[] = {
    {"loss", RL_F32, -1, 0, 0, "scalar loss whose gradients (already in the set) are applied"},
};

static const rl_option_spec opt_options[] = {
    {"params", RL_VAL_OBJECT, NULL, "parameter set (or model) to update", "params"},
    {"lr", RL_VAL_NUMBER, "1e-3", "peak learning rate", NULL},
    {"betas", RL_VAL_NUMBERS, "0.9,0.999", "Adam beta1, beta2", NULL},
    {"eps", RL_VAL_NUMBER, "1e-8", "added to sqrt(v_hat)", NULL},
    {"weight_decay", RL_VAL_NUMBER, "0", "decoupled weight decay (AdamW)", NULL},
    {"schedule", RL_VAL_STRING, "constant", "learning-rate schedule: constant or cosine", NULL},
    {"warmup", RL_VAL_INT, "0", "linear warmup over this many updates", NULL},
    {"decay_steps", RL_VAL_INT, "0", "cosine: updates from the peak to min_lr (0 = no decay)", NULL},
    {"min_lr", RL_VAL_NUMBER, "0", "cosine: final learning rate", NULL},
    {"clip", RL_VAL_NUMBER, "0", "clip the global gradient norm to this (0 = off)", NULL},
    {"accumulate", RL_VAL_INT, "1", "update every k-th call with gradients divided by k", NULL},
};

static int opt_init(rl_node *n, rl_error *err) {
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    if (!p) return rl_node_fail(n, err, "option 'params' must be a parameter set or a model");
    double lr = rl_node_opt_number(n, "lr"), eps = rl_node_opt_number(n, "eps");
    double wd = rl_node_opt_number(n, "weight_decay"), min_lr = rl_node_opt_number(n, "min_lr");
    double clip = rl_node_opt_number(n, "clip");
    int64_t warmup = rl_node_opt_int(n, "warmup"), decay = rl_node_opt_int(n, "decay_steps");
    int64_t acc = rl_node_opt_int(n, "accumulate");
    int nb = 0;
    const double *betas = rl_node_opt_numbers(n, "betas", &nb);
    const char *sched = rl_node_opt_string(n, "schedule");
    rl_lr_kind kind;

    if (!(lr >= 0) || !isfinite(lr)) return rl_node_fail(n, err, "option 'lr' must be >= 0 (got %g)", lr);
    if (nb != 2 || !(betas[0] >= 0 && betas[0] < 1) || !(betas[1] >= 0 && betas[1] < 1))
        return rl_node_fail(n, err, "option 'betas' must be two numbers in [0, 1), e.g. \"0.9,0.999\"");
    if (!(eps > 0) || !isfinite(eps)) return rl_node_fail(n, err, "option 'eps' must be > 0 (got %g)", eps);
    if (!(wd >= 0) || !isfinite(wd)) return rl_node_fail(n, err, "option 'weight_decay' must be >= 0 (got %g)", wd);
    if (rl_lr_kind_parse(sched, &kind))
        return rl_node_fail(n, err, "option 'schedule' must be \"constant\" or \"cosine\" (got \"%s\")", sched);
    if (warmup < 0) return rl_node_fail(n, err, "option 'warmup' must be >= 0 (got %lld)", (long long)warmup);
    if (decay < 0) return rl_node_fail(n, err, "option 'decay_steps' must be >= 0 (got %lld)", (long long)decay);
    if (!(min_lr >= 0) || min_lr > lr)
        return rl_node_fail(n, err, "option 'min_lr' must be in [0, lr] (got %g with lr %g)", min_lr, lr);
    if (!(clip >= 0) || !isfinite(clip)) return rl_node_fail(n, err, "option 'clip' must be >= 0 (got %g)", clip);
    if (acc < 1) return rl_node_fail(n, err, "option 'accumulate' must be >= 1 (got %lld)", (long long)acc);

    opt_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    s->params = p;
    s->hp = (rl_adamw_hparams){betas[0], betas[1], eps, wd};
    s->sched = (rl_lr_schedule){kind, lr, min_lr, warmup, decay};
    s->clip = clip;
    s->accumulate = acc;
    n->state = s;
    return 0;
}

/* The set is finalised before infer (its size is only known then), so the
 * moments are allocated here, once; forward never allocates. */
static int opt_infer(rl_node *n, rl_error *err) {
    opt_state *s = n->state;
    rl_params *p = s->params;
    if (!p->finalized) return rl_node_fail(n, err, "parameter set '%s' is not finalised", p->name ? p->name : "?");
    if (s->ready && s->adam.n == p->numel) return 0;
    rl_adamw_free(&s->adam);
    rl_error e = {0};
    if (rl_adamw_init(&s->adam, p->numel, &e)) return rl_node_fail(n, err, "%s", e.msg);
    s->ready = 1;
    s->pending = 0;
    return 0;
}

static int opt_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    opt_state *s = n->state;
    rl_params *p = s->params;
    if (!s->ready || s->adam.n != p->numel)
        return rl_node_fail(n, err, "optimizer state does not match parameter set '%s' (graph not compiled?)",
                            p->name ? p->name : "?");
    if (ctx && n->in[0].data && rl_tensor_numel(&n->in[0]) >= 1)
        rl_metric_set(ctx, n, "loss", rl_f32(&n->in[0])[0]);
    if (++s->pending < s->accumulate) return 0;
    s->pending = 0;

    if (s->accumulate > 1) rl_scale_f32(p->grad, p->numel, (float)(1.0 / (double)s->accumulate));
    double lr = rl_lr_at(&s->sched, s->adam.t);
    double norm = rl_clip_grad_norm(p->grad, p->numel, s->clip);
    if (!isfinite(norm)) {
        /* A NaN/Inf gradient would poison every weight and both moments. */
        rl_params_zero_grad(p);
        return rl_node_fail(n, err, "gradient norm of parameter set '%s' is %s: update skipped, the run stops here",
                            p->name ? p->name : "?", isnan(norm) ? "NaN" : "infinite");
    }
    rl_adamw_step(&s->adam, &s->hp, lr, p->data, p->grad);
    rl_params_zero_grad(p);
    if (ctx) {
        rl_metric_set(ctx, n, "lr", lr);
        rl_metric_set(ctx, n, "grad_norm", norm);
    }
    return 0;
}

static void opt_destroy(rl_node *n) {
    opt_state *s = n->state;
    if (!s) return;
    rl_adamw_free(&s->adam);
    rl_free(s);
    n->state = NULL;
}

/* Checkpoint: update count t, pending accumulation calls, moments m and v.
 * Restoring them (with the parameters) makes a resumed run continue exactly
 * as the uninterrupted one. */
static int opt_save_state(rl_node *n, rl_state *st, rl_error *err) {
    opt_state *s = n->state;
    if (!s->ready) return rl_node_fail(n, err, "optimizer state does not exist yet (graph not compiled)");
    static const float none = 0; /* a valid pointer for empty sets */
    size_t bytes = s->adam.n * sizeof(float);
    if (rl_state_put(st, "t", &s->adam.t, sizeof s->adam.t, err) ||
        rl_state_put(st, "pending", &s->pending, sizeof s->pending, err) ||
        rl_state_put(st, "m", bytes ? (const void *)s->adam.m : &none, bytes, err) ||
        rl_state_put(st, "v", bytes ? (const void *)s->adam.v : &none, bytes, err))
        return -1;
    return 0;
}

static int opt_load_state(rl_node *n, const rl_state *st, rl_error *err) {
    opt_state *s = n->state;
    if (!s->ready) return rl_node_fail(n, err, "optimizer state does not exist yet (graph not compiled)");
    int64_t t, pending;
    float none;
    size_t bytes = s->adam.n * sizeof(float);
    if (rl_state_get(st, "t", &t, sizeof t, err) || rl_state_get(st, "pending", &pending, sizeof pending, err))
        return -1;
    if (t < 0 || pending < 0 || pending >= s->accumulate)
        return rl_fail(err, "invalid optimizer counters (t = %lld, pending = %lld, accumulate = %lld)", (long long)t,
                       (long long)pending, (long long)s->accumulate);
    if (rl_state_get(st, "m", bytes ? (void *)s->adam.m : &none, bytes, err) ||
        rl_state_get(st, "v", bytes ? (void *)s->adam.v : &none, bytes, err))
        return -1;
    s->adam.t = t;
    s->pending = pending;
    return 0;
}

const rl_node_type rl_node_optimizer = {
    .name = "optimizer",
    .doc = "AdamW on a parameter set: lr schedule (constant, warmup + cosine), grad clipping, accumulation",
    .inputs = opt_inputs,
    .n_inputs = 1,
    .outputs = NULL,
    .n_outputs = 0,
    .options = opt_options,
    .n_options = (int)(sizeof opt_options / sizeof opt_options[0]),
    .flags = RL_NODE_OPTIMIZER,
    .init = opt_init,
    .infer = opt_infer,
    .forward = opt_forward,
    .backward = NULL,
    .destroy = opt_destroy,
    .save_state = opt_save_state,
    .load_state = opt_load_state,
};

static opt_state *state_of(const rl_node *n) {
    return (n && n->type == &rl_node_optimizer) ? n->state : NULL;
}

rl_adamw *rl_optimizer_adamw(rl_node *n) {
    opt_state *s = state_of(n);
    return (s && s->ready) ? &s->adam : NULL;
}

rl_params *rl_optimizer_params(const rl_node *n) {
    opt_state *s = state_of(n);
    return s ? s->params : NULL;
}

int64_t rl_optimizer_pending(const rl_node *n) {
    opt_state *s = state_of(n);
    return s ? s->pending : -1;
}

int rl_optimizer_set_pending(rl_node *n, int64_t pending, rl_error *err) {
    opt_state *s = state_of(n);
    if (!s) return rl_fail(err, "not an optimizer node");
    if (pending < 0 || pending >= s->accumulate)
        return rl_node_fail(n, err, "pending accumulation count %lld outside [0, %lld)", (long long)pending,
                            (long long)s->accumulate);
    s->pending = pending;
    return 0;
}
