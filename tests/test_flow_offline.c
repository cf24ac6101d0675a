/* Offline flow training end to end in a graph (what graphs/flow_offline.lua
 * will script): teacher-forced batches through a frozen random Qwen2 policy
 * with three taps -> latent_tap (token_pre) -> flow (train) -> AdamW on the
 * flow only. The loss falls, the policy is untouched, and a flow whose size
 * does not match the policy's hidden size fails at compile time. */
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "graph.h"
#include "qwen2.h"
#include "testlib.h"
#include "threads.h"

#define B 4
#define T 12

static int32_t g_tokens[B * T], g_lengths[B];
static float g_mask[B * T];

/* Fixed "expert solutions": prompt of 3 tokens, then a response that follows
 * a simple pattern, right-padded. */
static const rl_port_spec src_out[] = {{"tokens", RL_I32, 2, 0, 0, "tokens"},
                                       {"lengths", RL_I32, 1, 0, 0, "lengths"},
                                       {"mask", RL_F32, 2, 0, 0, "response mask"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(B, T);
    n->out[1].shape = rl_shape1(B);
    n->out[2].shape = rl_shape2(B, T);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memcpy(n->out[0].data, g_tokens, sizeof g_tokens);
    memcpy(n->out[1].data, g_lengths, sizeof g_lengths);
    memcpy(n->out[2].data, g_mask, sizeof g_mask);
    return 0;
}
static const rl_node_type t_src = {.name = "t_batch", .doc = "fixed batch", .outputs = src_out, .n_outputs = 3,
                                   .infer = src_infer, .forward = src_forward};

static rl_graph *build(rl_object *pol, rl_object *fo, rl_node **flow_node, rl_node **pol_node, rl_error *e) {
    rl_graph *g = rl_graph_new("flow-offline");
    rl_node *src = rl_graph_add(g, &t_src, NULL, "offline.lua:1", NULL, NULL, e);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", pol);
    double taps[] = {0.25, 0.5, 0.75};
    rl_opts_set_numbers(&o, "tap_layers", taps, 3);
    rl_node *p = rl_graph_add_named(g, "policy", NULL, "offline.lua:2", NULL, &o, e);
    rl_opts_free(&o);
    rl_node *tap = rl_graph_add_named(g, "latent_tap", NULL, "offline.lua:3", NULL, NULL, e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    rl_opts_set_string(&o, "mode", "train");
    rl_node *fl = rl_graph_add_named(g, "flow", NULL, "offline.lua:4", NULL, &o, e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", fo);
    rl_opts_set_number(&o, "lr", 3e-3);
    double betas[] = {0.9, 0.95};
    rl_opts_set_numbers(&o, "betas", betas, 2);
    rl_node *opt = rl_graph_add_named(g, "optimizer", NULL, "offline.lua:5", NULL, &o, e);
    rl_opts_free(&o);
    CHECK_MSG(src && p && tap && fl && opt, "%s", e->msg);
    if (!(src && p && tap && fl && opt)) { rl_graph_free(g); return NULL; }
    rl_test_connect(g, p, "tokens", src, "tokens");
    rl_test_connect(g, p, "lengths", src, "lengths");
    rl_test_connect(g, tap, "hidden", p, "hidden");
    rl_test_connect(g, tap, "tau", p, "tau");
    rl_test_connect(g, tap, "mask", src, "mask");
    rl_test_connect(g, tap, "lengths", src, "lengths");
    const char *ins[] = {"target", "cond", "tau", "index"};
    for (int k = 0; k < 4; k++) rl_test_connect(g, fl, ins[k], tap, ins[k]);
    rl_test_connect(g, opt, "loss", fl, "loss");
    rl_graph_mark_output(g, fl, 0, e);
    *flow_node = fl;
    *pol_node = p;
    return g;
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    for (int b = 0; b < B; b++) {
        g_lengths[b] = T - b;
        for (int k = 0; k < T; k++) {
            g_tokens[b * T + k] = k < g_lengths[b] ? (k < 3 ? 1 + b : 4 + (k * 3 + b) % 9) : 0;
            g_mask[b * T + k] = k >= 3 && k < g_lengths[b];
        }
    }
    /* One thread: tiny batches, where a second thread only waits (badly so
       under the sanitizer on a shared machine); test_flow_model covers 2. */
    rl_set_threads(1);
    rl_error e = {0};
    rl_qwen2_config c = {.vocab = 16, .hidden = 16, .n_layers = 4, .n_heads = 2, .n_kv_heads = 1, .inter = 24,
                         .max_pos = 32, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = 1};
    rl_qwen2 *m = NULL;
    CHECK_MSG(rl_qwen2_new(&c, "policy", 3, &m, &e) == 0, "%s", e.msg);
    if (!m) return rl_test_finish("test_flow_offline");
    rl_object *pol = rl_qwen2_object(m);
    rl_flow_config fc = {.dim = 16, .width = 32, .depth = 2};
    rl_object *fo = rl_flow_object(rl_flow_new(&fc, 9, &e));
    rl_node *fl = NULL, *pn = NULL;
    rl_graph *g = build(pol, fo, &fl, &pn, &e);
    CHECK_MSG(g && rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    if (!g || !rl_graph_compiled(g)) return rl_test_finish("test_flow_offline");
    CHECK(pn->needs_backward == 0); /* the policy is frozen: the flow's gradient stops at the taps */
    float *before = rl_malloc(m->params->numel * sizeof(float));
    memcpy(before, m->params->data, m->params->numel * sizeof(float));
    double first = 0, last = 0;
    int steps = 60;
    rl_run_ctx ctx = {0};
    ctx.seed = 1;
    for (int s = 0; s < steps; s++) {
        ctx.step = s;
        CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
        double l = rl_f32(&fl->out[0])[0];
        if (s < 5) first += l / 5;
        if (s >= steps - 5) last += l / 5;
    }
    /* Steady state: a step allocates nothing. */
    uint64_t allocs = rl_alloc_count();
    ctx.step = steps;
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_alloc_count() == allocs, "%llu allocations in a steady-state step",
              (unsigned long long)(rl_alloc_count() - allocs));
    printf("flow loss: first 5 steps %.4f, last 5 steps %.4f\n", first, last);
    CHECK(last < 0.7 * first);
    CHECK(memcmp(before, m->params->data, m->params->numel * sizeof(float)) == 0);
    rl_free(before);
    rl_graph_free(g);

    /* Mismatch: a flow of dim 8 on a policy of hidden size 16. */
    rl_flow_config bad = {.dim = 8, .width = 8, .depth = 2};
    rl_object *fb = rl_flow_object(rl_flow_new(&bad, 1, &e));
    g = build(pol, fb, &fl, &pn, &e);
    CHECK(g && rl_graph_compile(g, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "offline.lua:4") && strstr(e.msg, "hidden size is 16"), "%s", e.msg);
    rl_graph_free(g);
    rl_object_release(fb);
    rl_object_release(fo);
    rl_object_release(pol);
    return rl_test_finish("test_flow_offline");
}
