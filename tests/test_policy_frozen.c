/* A policy whose backward will not run (no optimizer owns its parameters:
 * a frozen reference, the scorer of a rollout phase) plans only what its
 * forward needs: its arena is a fraction of a trainable policy's, it
 * requests no saved or backward workspace, and its outputs (log-probs,
 * entropies, tapped hidden states) are bit-identical to the trainable one's. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "qwen2.h"
#include "testlib.h"

#define B 4
#define T 48

static int32_t g_tokens[B * T], g_lengths[B];

static const rl_port_spec tok_out[] = {{"tokens", RL_I32, 2, 0, 0, "ids"}, {"lengths", RL_I32, 1, 0, 0, "lens"}};
static int tok_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(B, T);
    n->out[1].shape = rl_shape1(B);
    return 0;
}
static int tok_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    memcpy(n->out[0].data, g_tokens, sizeof g_tokens);
    memcpy(n->out[1].data, g_lengths, sizeof g_lengths);
    return 0;
}
static const rl_node_type t_tok = {.name = "t_tok", .doc = "tokens", .outputs = tok_out, .n_outputs = 2,
                                   .infer = tok_infer, .forward = tok_forward};

/* loss = -sum(logprobs) */
static const rl_port_spec nll_in[] = {{"logprobs", RL_F32, 2, 0, 0, ""}};
static const rl_port_spec nll_out[] = {{"loss", RL_F32, 1, 0, 0, ""}};
static int nll_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape1(1);
    return 0;
}
static int nll_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    double s = 0;
    for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++) s -= rl_f32(&n->in[0])[i];
    rl_f32(&n->out[0])[0] = (float)s;
    return 0;
}
static int nll_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    if (n->need_grad_in[0] && n->grad_in[0].data)
        for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++) rl_f32(&n->grad_in[0])[i] -= rl_f32(&n->grad_out[0])[0];
    return 0;
}
static const rl_node_type t_nll = {.name = "t_nll", .doc = "nll", .inputs = nll_in, .n_inputs = 1,
                                   .outputs = nll_out, .n_outputs = 1, .infer = nll_infer, .forward = nll_forward,
                                   .backward = nll_backward};

/* An optimizer that only clears the gradient, so both graphs keep the same
   weights and their outputs can be compared. */
static const rl_option_spec clr_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec clr_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int clr_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    rl_params_zero_grad(rl_object_params(rl_node_opt_object(n, "params")));
    return 0;
}
static const rl_node_type t_clr = {.name = "t_clr", .doc = "zero grad", .inputs = clr_in, .n_inputs = 1,
                                   .options = clr_opts, .n_options = 1, .flags = RL_NODE_OPTIMIZER,
                                   .forward = clr_forward};

static rl_graph *build(rl_object *net, int trainable, rl_node **pol, rl_error *e) {
    rl_graph *g = rl_graph_new(trainable ? "trainable" : "frozen");
    rl_opts o;
    rl_opts_init(&o);
    rl_node *tok = rl_graph_add(g, &t_tok, NULL, "f.lua:1", NULL, &o, e);
    rl_opts_set_object(&o, "net", net);
    rl_opts_set_numbers(&o, "tap_layers", (const double[]){0.25, 0.75}, 2);
    rl_node *p = tok ? rl_graph_add_named(g, "policy", NULL, "f.lua:2", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    int rc = !p || rl_graph_connect(g, p, 0, tok, 0, e) || rl_graph_connect(g, p, 1, tok, 1, e);
    for (int k = 0; k < 3 && !rc; k++) rc = rl_graph_mark_output(g, p, k, e);
    if (!rc && trainable) {
        rl_opts_init(&o);
        rl_node *loss = rl_graph_add(g, &t_nll, NULL, "f.lua:3", NULL, &o, e);
        rl_opts_set_object(&o, "params", net);
        rl_node *opt = loss ? rl_graph_add(g, &t_clr, NULL, "f.lua:4", NULL, &o, e) : NULL;
        rl_opts_free(&o);
        rc = !opt || rl_graph_connect(g, loss, 0, p, 0, e) || rl_graph_connect(g, opt, 0, loss, 0, e);
    }
    if (!rc) rc = rl_graph_compile(g, NULL, e);
    if (rc) {
        rl_graph_free(g);
        return NULL;
    }
    *pol = p;
    return g;
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    /* Two models with the same weights: a set stays trainable once an
       optimizer owned it, so the frozen graph gets its own. */
    rl_qwen2_config c = {.vocab = 96, .hidden = 32, .n_layers = 6, .n_heads = 4, .n_kv_heads = 2, .inter = 96,
                         .max_pos = 64, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = 1};
    rl_error e = {0};
    rl_qwen2 *mt = NULL, *mf = NULL;
    CHECK_MSG(rl_qwen2_new(&c, "trained", 5, &mt, &e) == 0 && rl_qwen2_new(&c, "frozen", 5, &mf, &e) == 0, "%s",
              e.msg);
    if (!mt || !mf) return rl_test_finish("test_policy_frozen");
    rl_object *nt = rl_qwen2_object(mt), *nf = rl_qwen2_object(mf);
    for (int i = 0; i < B * T; i++) g_tokens[i] = (i * 37 + 11) % 96;
    const int32_t lens[B] = {48, 17, 33, 5};
    memcpy(g_lengths, lens, sizeof lens);

    rl_node *pt = NULL, *pf = NULL;
    rl_graph *gt = build(nt, 1, &pt, &e);
    CHECK_MSG(gt != NULL, "%s", e.msg);
    rl_graph *gf = build(nf, 0, &pf, &e);
    CHECK_MSG(gf != NULL, "%s", e.msg);
    if (!gt || !gf) return rl_test_finish("test_policy_frozen");
    CHECK(pt->needs_backward == 1 && pf->needs_backward == 0);
    CHECK(memcmp(mt->params->data, mf->params->data, mt->params->numel * sizeof(float)) == 0);

    /* The frozen node asks for forward scratch only. */
    size_t ws_t = 0, ws_f = 0;
    for (int k = 0; k < pf->n_ws; k++) {
        CHECK_MSG(pf->ws[k].kind == RL_WS_SCRATCH_FWD, "frozen policy workspace %d has kind %d", k, pf->ws[k].kind);
        ws_f += pf->ws[k].bytes;
    }
    for (int k = 0; k < pt->n_ws; k++) ws_t += pt->ws[k].bytes;
    const size_t at = rl_graph_plan_stats(gt)->arena_bytes, af = rl_graph_plan_stats(gf)->arena_bytes;
    printf("policy workspaces: trainable %zu bytes, frozen %zu bytes; arena: trainable %zu, frozen %zu (%.1fx)\n",
           ws_t, ws_f, at, af, (double)at / (double)af);
    /* Six layers of saved activations plus backward scratch against one
       layer slot: the frozen arena must be several times smaller. */
    CHECK_MSG(af * 3 < at, "frozen arena %zu is not much smaller than the trainable %zu", af, at);

    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(gt, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_graph_run(gf, NULL, &ctx, &e) == 0, "%s", e.msg);
    for (int k = 0; k < 3; k++)
        CHECK_MSG(memcmp(pt->out[k].data, pf->out[k].data, rl_tensor_nbytes(&pt->out[k])) == 0,
                  "output %d differs between the trainable and the frozen policy", k);
    /* A steady frozen step allocates nothing either. */
    uint64_t before = rl_alloc_count();
    CHECK_MSG(rl_graph_run(gf, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK(rl_alloc_count() == before);
    rl_graph_free(gt);
    rl_graph_free(gf);
    rl_object_release(nt);
    rl_object_release(nf);
    return rl_test_finish("test_policy_frozen");
}
