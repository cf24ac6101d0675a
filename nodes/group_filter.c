/* group_filter: DAPO dynamic sampling. A group whose rollouts are all correct
 * or all wrong has zero advantage under every group baseline, so it only
 * dilutes the batch; this node outputs a per-response keep weight (1 or 0,
 * constant within a group) for the shaper. Refilling the batch with fresh
 * prompts is the driver's job. */
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "rl_math.h"

static const rl_port_spec gf_inputs[] = {
    {"reward", RL_F32, 1, RL_PORT_NO_GRAD, 0, "outcome rewards f32 [N] (group-major)"},
};
static const rl_port_spec gf_outputs[] = {
    {"keep", RL_F32, 1, 0, 0, "f32 [N]: 1 for responses of mixed groups, 0 otherwise"},
};
static const rl_option_spec gf_options[] = {
    {"group", RL_VAL_INT, "8", "responses per prompt (G)", NULL},
    {"by", RL_VAL_STRING, "correct",
     "correct: drop groups with all or none correct (verl metric=acc); reward: drop groups whose rewards are all equal",
     NULL},
    {"correct", RL_VAL_NUMBER, "1", "a response is correct when its reward is >= this", NULL},
};

typedef struct gf_state {
    int64_t group;
    rl_filter_by by;
    double correct;
} gf_state;

static int gf_init(rl_node *n, rl_error *err) {
    gf_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->group = rl_node_opt_int(n, "group");
    s->correct = rl_node_opt_number(n, "correct");
    const char *by = rl_node_opt_string(n, "by");
    if (!strcmp(by, "correct")) s->by = RL_FILTER_CORRECT;
    else if (!strcmp(by, "reward")) s->by = RL_FILTER_REWARD;
    else return rl_node_fail(n, err, "unknown filter 'by = %s' (expected correct or reward)", by);
    if (s->group < 1) return rl_node_fail(n, err, "option 'group' must be >= 1 (got %lld)", (long long)s->group);
    return 0;
}

static int gf_check(rl_node *n, rl_error *err) {
    const gf_state *s = n->state;
    int64_t N = n->in[0].shape.dim[0];
    if (N % s->group != 0)
        return rl_node_fail(n, err, "%lld responses do not form groups of %lld (option 'group')", (long long)N,
                            (long long)s->group);
    return 0;
}

static int gf_infer(rl_node *n, rl_error *err) {
    if (gf_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    return 0;
}

static int gf_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    const gf_state *s = n->state;
    if (gf_check(n, err)) return -1;
    n->out[0].shape = n->in[0].shape;
    int64_t N = n->in[0].shape.dim[0];
    int64_t kept = rl_group_filter(rl_f32(&n->in[0]), N, s->group, s->by, s->correct, rl_f32(&n->out[0]));
    int64_t groups = N / s->group;
    rl_metric_set(ctx, n, "kept_groups", (double)kept);
    rl_metric_set(ctx, n, "kept_frac", groups ? (double)kept / (double)groups : 0);
    return 0;
}

static void gf_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_group_filter = {
    .name = "group_filter",
    .doc = "dynamic sampling: keep weights for groups that are neither all correct nor all wrong",
    .inputs = gf_inputs,
    .n_inputs = 1,
    .outputs = gf_outputs,
    .n_outputs = 1,
    .options = gf_options,
    .n_options = 3,
    .init = gf_init,
    .infer = gf_infer,
    .forward = gf_forward,
    .destroy = gf_destroy,
};
