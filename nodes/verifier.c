/* verifier: outcome rewards for a batch of responses against gold answers,
 * with the rules of runtime/verify.h (docs/verifier.md). Responses i of a
 * group of G share gold row i / G, so a batch of B prompts sampled G times
 * checks against the B gold answers directly. */
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "verify.h"

enum { IN_TEXT = 0, IN_ANSWER, IN_FINISHED };

static const rl_port_spec vf_inputs[] = {
    {"text", RL_U8, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "responses u8 [N, L], NUL-padded rows"},
    {"answer", RL_U8, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "gold answers u8 [B, L2] with N = B * group (alternatives joined by byte 0x1f)"},
    {"finished", RL_I32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "[N]: 0 where the response was truncated (no end token); absent = all finished"},
};
static const rl_port_spec vf_outputs[] = {
    {"reward", RL_F32, 1, 0, 0, "outcome reward [N]"},
    {"correct", RL_F32, 1, 0, 0, "1 where the answer equals the gold answer, else 0 [N]"},
};
static const rl_option_spec vf_options[] = {
    {"kind", RL_VAL_STRING, "boxed", "\"boxed\" (last \\boxed{}) or \"vision\" (<think>..</think><answer>..</answer>)",
     NULL},
    {"partial", RL_VAL_NUMBER, "0.5", "boxed: reward of a boxed but wrong answer (0 = binary rewards)", NULL},
    {"format_bonus", RL_VAL_NUMBER, "0.5", "vision: reward added when the format rule holds", NULL},
    {"accuracy", RL_VAL_NUMBER, "1", "vision: reward added when the answer is correct", NULL},
    {"group", RL_VAL_INT, "0", "responses per gold answer (0 = N / B)", NULL},
};

typedef struct vf_state {
    rl_verify_opts opts;
    int64_t group;
} vf_state;

static int vf_init(rl_node *n, rl_error *err) {
    vf_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    rl_verify_opts_default(&s->opts);
    const char *kind = rl_node_opt_string(n, "kind");
    if (rl_verify_kind_parse(kind, &s->opts.kind) < 0)
        return rl_node_fail(n, err, "option 'kind' = '%s': expected \"boxed\" or \"vision\"", kind);
    s->opts.partial = rl_node_opt_number(n, "partial");
    s->opts.format_bonus = rl_node_opt_number(n, "format_bonus");
    s->opts.accuracy = rl_node_opt_number(n, "accuracy");
    s->group = rl_node_opt_int(n, "group");
    if (s->group < 0) return rl_node_fail(n, err, "option 'group' = %lld must be >= 0", (long long)s->group);
    return 0;
}

/* The group size for N responses and B gold rows. */
static int vf_group(const rl_node *n, int64_t N, int64_t B, int64_t *g, rl_error *err) {
    const vf_state *s = n->state;
    if (B < 1) return rl_node_fail(n, err, "input 'answer' has no rows");
    if (s->group > 0) {
        if (N != B * s->group)
            return rl_node_fail(n, err, "%lld responses for %lld gold answers do not make groups of %lld",
                                (long long)N, (long long)B, (long long)s->group);
        *g = s->group;
        return 0;
    }
    if (N % B != 0)
        return rl_node_fail(n, err, "%lld responses are not a multiple of %lld gold answers (set 'group')",
                            (long long)N, (long long)B);
    *g = N / B;
    return 0;
}

static int vf_infer(rl_node *n, rl_error *err) {
    int64_t N = n->in[IN_TEXT].shape.dim[0], B = n->in[IN_ANSWER].shape.dim[0], g;
    if (vf_group(n, N, B, &g, err) < 0) return -1;
    if (n->src[IN_FINISHED]) {
        const rl_shape *f = &n->in[IN_FINISHED].shape;
        if (f->dim[0] != N)
            return rl_node_fail(n, err, "input 'finished' has %lld rows, 'text' has %lld", (long long)f->dim[0],
                                (long long)N);
    }
    for (int k = 0; k < 2; k++) {
        n->out[k].dtype = RL_F32;
        n->out[k].shape = rl_shape1(N);
    }
    return 0;
}

static int vf_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    const vf_state *s = n->state;
    const rl_tensor *text = &n->in[IN_TEXT], *gold = &n->in[IN_ANSWER], *fin = &n->in[IN_FINISHED];
    int64_t N = text->shape.dim[0], L = text->shape.dim[1], B = gold->shape.dim[0], L2 = gold->shape.dim[1], g;
    if (vf_group(n, N, B, &g, err) < 0) return -1;
    const int32_t *finished = fin->data ? rl_i32(fin) : NULL;
    if (finished && fin->shape.dim[0] < N)
        return rl_node_fail(n, err, "input 'finished' has %lld rows, 'text' has %lld", (long long)fin->shape.dim[0],
                            (long long)N);
    float *reward = rl_f32(&n->out[0]), *correct = rl_f32(&n->out[1]);
    n->out[0].shape = rl_shape1(N);
    n->out[1].shape = rl_shape1(N);
    int64_t counts[RL_VR_COUNT] = {0}, formats = 0;
    double total = 0;
    for (int64_t i = 0; i < N; i++) {
        const char *r = (const char *)rl_u8(text) + (size_t)(i * L);
        const char *a = (const char *)rl_u8(gold) + (size_t)((i / g) * L2);
        rl_verify_result res;
        rl_verify(r, (size_t)L, a, (size_t)L2, finished ? finished[i] != 0 : 1, &s->opts, &res);
        reward[i] = (float)res.reward;
        correct[i] = res.correct ? 1.0f : 0.0f;
        counts[res.reason]++;
        formats += res.format_ok;
        total += res.reward;
    }
    if (ctx && N > 0) {
        double inv = 1.0 / (double)N;
        rl_metric_set(ctx, n, "accuracy", (double)counts[RL_VR_CORRECT] * inv);
        rl_metric_set(ctx, n, "reward_mean", total * inv);
        rl_metric_set(ctx, n, "truncated", (double)counts[RL_VR_TRUNCATED] * inv);
        if (s->opts.kind == RL_VERIFY_BOXED) {
            rl_metric_set(ctx, n, "no_box", (double)counts[RL_VR_NO_BOX] * inv);
            rl_metric_set(ctx, n, "too_many_boxes", (double)counts[RL_VR_TOO_MANY_BOXES] * inv);
        } else {
            rl_metric_set(ctx, n, "format", (double)formats * inv);
            rl_metric_set(ctx, n, "no_answer", (double)counts[RL_VR_NO_ANSWER] * inv);
        }
    }
    return 0;
}

static void vf_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_verifier = {
    .name = "verifier",
    .doc = "outcome rewards: last \\boxed{} (or <answer>) against gold answers; 1 correct, partial if wrong, 0 else",
    .inputs = vf_inputs,
    .n_inputs = 3,
    .outputs = vf_outputs,
    .n_outputs = 2,
    .options = vf_options,
    .n_options = 5,
    .init = vf_init,
    .infer = vf_infer,
    .forward = vf_forward,
    .destroy = vf_destroy,
};
