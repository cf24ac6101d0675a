/* latent_tap and flow nodes in a graph: partner rules, per-timestep debias
 * weights (hand-computed expectation), gradients of loss and token_loss into
 * the flow (finite differences through the whole node), none into the
 * policy, reproducible noise, and bad options. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "graph.h"
#include "qwen2.h"
#include "testlib.h"

#define L 2
#define B 2
#define T 6
#define D 4

/* ---- test-local nodes ---- */

/* The "policy": hidden [L, B, T, D], tau [L], mask [B, T], plus its own
 * scalar loss so that its parameters train and its backward runs; the
 * backward records whether any gradient arrived on 'hidden'. */
static float g_hidden[L * B * T * D], g_tau[L] = {0.25f, 0.75f}, g_mask[B * T];
static int g_hidden_grad_seen;

static const rl_port_spec src_out[] = {
    {"hidden", RL_F32, 4, 0, 0, "h"}, {"tau", RL_F32, 1, 0, 0, "tau"}, {"mask", RL_F32, 2, 0, 0, "mask"},
    {"ploss", RL_F32, 1, 0, 0, "policy loss"}};
static const rl_option_spec src_opts[] = {{"params", RL_VAL_OBJECT, NULL, "policy params", "params"}};
static int src_init(rl_node *n, rl_error *err) {
    return rl_node_use_params(n, rl_object_params(rl_node_opt_object(n, "params")), err);
}
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape4(L, B, T, D);
    n->out[1].shape = rl_shape1(L);
    n->out[2].shape = rl_shape2(B, T);
    n->out[3].shape = rl_shape1(1);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memcpy(n->out[0].data, g_hidden, sizeof g_hidden);
    memcpy(n->out[1].data, g_tau, sizeof g_tau);
    memcpy(n->out[2].data, g_mask, sizeof g_mask);
    rl_f32(&n->out[3])[0] = n->params[0]->data[0] * n->params[0]->data[0];
    return 0;
}
static int src_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    if (n->grad_out[0].data) {
        for (size_t i = 0; i < sizeof g_hidden / sizeof(float); i++)
            if (rl_f32(&n->grad_out[0])[i] != 0.0f) g_hidden_grad_seen = 1;
    }
    if (n->grad_out[3].data) n->params[0]->grad[0] += 2 * n->params[0]->data[0] * rl_f32(&n->grad_out[3])[0];
    return 0;
}
static const rl_node_type t_src = {.name = "t_policy", .doc = "fake policy", .outputs = src_out, .n_outputs = 4,
                                   .options = src_opts, .n_options = 1, .init = src_init, .infer = src_infer,
                                   .forward = src_forward, .backward = src_backward};

/* Weighted sum of a [B, T] tensor: a loss on token_loss with per-token weights. */
static float g_w[B * T];
static const rl_port_spec ws_in[] = {{"x", RL_F32, 2, 0, 0, "x"}};
static const rl_port_spec ws_out[] = {{"y", RL_F32, 1, 0, 0, "y"}};
static int ws_infer(rl_node *n, rl_error *err) { (void)err; n->out[0].shape = rl_shape1(1); return 0; }
static int ws_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    double s = 0;
    for (int i = 0; i < B * T; i++) s += (double)g_w[i] * rl_f32(&n->in[0])[i];
    rl_f32(&n->out[0])[0] = (float)s;
    return 0;
}
static int ws_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    if (!n->need_grad_in[0] || !n->grad_out[0].data) return 0;
    for (int i = 0; i < B * T; i++) rl_f32(&n->grad_in[0])[i] += g_w[i] * rl_f32(&n->grad_out[0])[0];
    return 0;
}
static const rl_node_type t_wsum = {.name = "t_wsum", .doc = "weighted sum", .inputs = ws_in, .n_inputs = 1,
                                    .outputs = ws_out, .n_outputs = 1, .infer = ws_infer, .forward = ws_forward,
                                    .backward = ws_backward};

/* ---- helpers ---- */

static rl_node *add(rl_graph *g, const rl_node_type *t, rl_opts *o, rl_error *e) {
    rl_node *n = rl_graph_add(g, t, NULL, "test_flow_nodes.lua:1", NULL, o, e);
    CHECK_MSG(n != NULL, "%s", e->msg);
    return n;
}

static void set_inputs(void) {
    rl_test_fill(g_hidden, sizeof g_hidden / sizeof(float), 99);
    /* Row 0: prompt 0-1, response 2-4, padding 5. Row 1: prompt 0, response 1-5. */
    const float m[B * T] = {0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
    memcpy(g_mask, m, sizeof m);
    for (int i = 0; i < B * T; i++) g_w[i] = 0.5f + 0.1f * (float)i;
}

static rl_object *flow_obj(void) {
    rl_error e = {0};
    rl_flow_config cfg = {.dim = D, .width = 8, .depth = 2};
    rl_flow *f = rl_flow_new(&cfg, 5, &e);
    if (!f) return NULL;
    /* Random weights everywhere, so the velocity depends on x, t, c and tau. */
    rl_test_fill(f->params->data, f->params->numel, 31);
    for (size_t i = 0; i < f->params->numel; i++) f->params->data[i] *= 0.4f;
    return rl_flow_object(f);
}

/* ---- latent_tap ---- */

static void check_latent_tap(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("tap");
    rl_params *pp = rl_params_new("policy", 1);
    rl_params_add(pp, "w", rl_shape1(1), RL_INIT_ONES, 0, NULL, &e);
    rl_object *po = rl_params_object(pp);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *src = add(g, &t_src, &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    const char *modes[] = {"token_pre", "token_post", "identity"};
    rl_opts_set_strings(&o, "context", modes, 3);
    rl_node *tap = add(g, rl_node_type_find("latent_tap"), &o, &e);
    rl_opts_free(&o);
    rl_test_connect(g, tap, "hidden", src, "hidden");
    rl_test_connect(g, tap, "tau", src, "tau");
    rl_test_connect(g, tap, "mask", src, "mask");
    for (int k = 0; k < 4; k++) rl_graph_mark_output(g, tap, k, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    /* Row 0 has valid positions 0-4 (one past its last response token):
       token_pre partners k+1 ≤ 4 → k = 2, 3; token_post k−1 → 2, 3, 4;
       identity → 2, 3, 4. Row 1 (length 6): pre → 1..4, post → 1..5,
       identity → 1..5. Per layer 2+3+3 + 4+5+5 = 22, two layers: 44. */
    int64_t M = tap->out[0].shape.dim[0];
    CHECK_MSG(M == 44, "M = %lld", (long long)M);
    const int32_t *ix = rl_i32(&tap->out[3]);
    const float *tg = rl_f32(&tap->out[0]), *cd = rl_f32(&tap->out[1]), *tau = rl_f32(&tap->out[2]);
    int ok = 1;
    for (int64_t m = 0; m < M; m++) {
        int b = ix[m * 3], k = ix[m * 3 + 1], grp = ix[m * 3 + 2], layer = grp / 3, mode = grp % 3;
        int p = mode == 0 ? k + 1 : mode == 1 ? k - 1 : k;
        ok &= g_mask[b * T + k] == 1.0f;
        ok &= memcmp(tg + m * D, g_hidden + ((layer * B + b) * T + k) * D, D * sizeof(float)) == 0;
        ok &= memcmp(cd + m * D, g_hidden + ((layer * B + b) * T + p) * D, D * sizeof(float)) == 0;
        ok &= tau[m] == g_tau[layer];
        ok &= !(b == 0 && p > 4); /* padding is never context */
    }
    CHECK(ok);
    /* First response token of row 1 (k = 1) takes the prompt latent (k = 0)
       as its token_post context. */
    int found = 0;
    for (int64_t m = 0; m < M; m++) found |= ix[m * 3] == 1 && ix[m * 3 + 1] == 1 && ix[m * 3 + 2] == 1;
    CHECK(found);
    rl_graph_free(g);
    rl_object_release(po);

    /* Bad options: one clear error each. */
    g = rl_graph_new("bad");
    rl_opts_init(&o);
    const char *bad[] = {"token_pre", "layer_post"};
    rl_opts_set_strings(&o, "context", bad, 2);
    CHECK(rl_graph_add(g, rl_node_type_find("latent_tap"), NULL, "x.lua:3", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "unknown context mode 'layer_post'") && strstr(e.msg, "x.lua:3"), "%s", e.msg);
    rl_opts_free(&o);
    rl_opts_init(&o);
    double sh[] = {1, 2, 3};
    rl_opts_set_numbers(&o, "shift", sh, 3);
    CHECK(rl_graph_add(g, rl_node_type_find("latent_tap"), NULL, "x.lua:4", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "shift"), "%s", e.msg);
    rl_opts_free(&o);
    rl_graph_free(g);
}

/* ---- flow: per-timestep weights, gradients, no gradient to the policy ---- */

typedef struct fgraph {
    rl_graph *g;
    rl_node *src, *tap, *fl[3], *wsum;
} fgraph;

/* Three score nodes on the same rows and seed: t = {0.3}, {0.8}, {0.3, 0.8}.
 * The third's token_loss feeds a weighted sum whose gradient goes to the flow. */
static int build(fgraph *G, rl_object *fo, rl_object *po, const char *mode3, int64_t chunk, rl_error *e) {
    memset(G, 0, sizeof *G);
    G->g = rl_graph_new("flow");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    G->src = add(G->g, &t_src, &o, e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    const char *modes[] = {"token_pre", "token_post"};
    rl_opts_set_strings(&o, "context", modes, 2);
    G->tap = add(G->g, rl_node_type_find("latent_tap"), &o, e);
    rl_opts_free(&o);
    rl_test_connect(G->g, G->tap, "hidden", G->src, "hidden");
    rl_test_connect(G->g, G->tap, "tau", G->src, "tau");
    rl_test_connect(G->g, G->tap, "mask", G->src, "mask");
    double tsets[3][2] = {{0.3, 0}, {0.8, 0}, {0.3, 0.8}};
    int counts[3] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        rl_opts_init(&o);
        rl_opts_set_object(&o, "net", fo);
        rl_opts_set_string(&o, "mode", i == 2 ? mode3 : "score");
        rl_opts_set_numbers(&o, "t", tsets[i], counts[i]);
        rl_opts_set_int(&o, "seed", 17);
        if (chunk) rl_opts_set_int(&o, "chunk", chunk);
        G->fl[i] = add(G->g, rl_node_type_find("flow"), &o, e);
        rl_opts_free(&o);
        if (!G->fl[i]) return -1;
        const char *ins[] = {"target", "cond", "tau", "index"};
        for (int k = 0; k < 4; k++) rl_test_connect(G->g, G->fl[i], ins[k], G->tap, ins[k]);
        rl_test_connect(G->g, G->fl[i], "mask", G->src, "mask");
        for (int k = 0; k < 4; k++) rl_graph_mark_output(G->g, G->fl[i], k, e);
    }
    G->wsum = add(G->g, &t_wsum, NULL, e);
    rl_test_connect(G->g, G->wsum, "x", G->fl[2], "token_loss");
    rl_graph_mark_output(G->g, G->wsum, 0, e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", fo);
    rl_opts_set_int(&o, "slot", 0);
    rl_node *opt = add(G->g, &rl_test_grad_sink, &o, e);
    rl_opts_free(&o);
    rl_test_connect(G->g, opt, "loss", G->wsum, "y");
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_opts_set_int(&o, "slot", 1);
    opt = add(G->g, &rl_test_grad_sink, &o, e);
    rl_opts_free(&o);
    rl_test_connect(G->g, opt, "loss", G->src, "ploss");
    return rl_graph_compile(G->g, NULL, e);
}

static double run_loss(fgraph *G, int64_t step) {
    rl_error e = {0};
    rl_run_ctx ctx = {0};
    ctx.seed = 3;
    ctx.step = step;
    CHECK_MSG(rl_graph_run(G->g, NULL, &ctx, &e) == 0, "%s", e.msg);
    return rl_f32(&G->wsum->out[0])[0];
}

static void check_flow_nodes(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    rl_params *pp = rl_params_new("policy", 1);
    rl_params_add(pp, "w", rl_shape1(1), RL_INIT_ONES, 0, NULL, &e);
    rl_object *po = rl_params_object(pp);
    rl_flow *f = rl_flow_from_object(fo);
    CHECK(f != NULL);
    if (!f) return;
    fgraph G;
    CHECK_MSG(build(&G, fo, po, "score", 0, &e) == 0, "%s", e.msg);
    float *grad = rl_calloc(f->params->numel, sizeof(float)), *pgrad = rl_calloc(1, sizeof(float));
    rl_test_grad_copy[0] = grad;
    rl_test_grad_copy[1] = pgrad;
    g_hidden_grad_seen = 0;
    double L0 = run_loss(&G, 4);

    /* Debias weight per timestep: score = mean_t w(t)·l(t), w(t) = t/(1−t). */
    const float *tl3 = rl_f32(&G.fl[0]->out[2]), *tl8 = rl_f32(&G.fl[1]->out[2]);
    const float *sc = rl_f32(&G.fl[2]->out[1]), *tlb = rl_f32(&G.fl[2]->out[2]);
    const float *sc8 = rl_f32(&G.fl[1]->out[1]);
    double w3 = 0.3 / 0.7, w8 = 0.8 / 0.2, worst = 0, worst_tl = 0, worst8 = 0;
    int scored = 0;
    for (int i = 0; i < B * T; i++) {
        double want = 0.5 * (w3 * tl3[i] + w8 * tl8[i]);
        worst = fmax(worst, fabs(sc[i] - want) / fmax(fabs(want), 1e-6));
        worst_tl = fmax(worst_tl, fabs(tlb[i] - 0.5 * (tl3[i] + tl8[i])) / fmax(fabs(tlb[i]), 1e-6));
        worst8 = fmax(worst8, fabs(sc8[i] - w8 * tl8[i]) / fmax(fabs(sc8[i]), 1e-6));
        scored += sc[i] != 0.0f;
        /* The reference code's bug (last timestep's weight for all) would give w8·mean l. */
        if (tl3[i] > 0) CHECK(fabs(sc[i] - w8 * tlb[i]) > 1e-3 * fabs(sc[i]));
        CHECK((g_mask[i] == 0.0f) <= (sc[i] == 0.0f)); /* no score off the response */
    }
    CHECK_MSG(worst < 1e-5 && worst_tl < 1e-5 && worst8 < 1e-5, "score %.3g token_loss %.3g single %.3g", worst,
              worst_tl, worst8);
    CHECK(scored == 8); /* every response token has a partner in at least one mode */
    /* ... so score_mask is the response mask. */
    const float *smk = rl_f32(&G.fl[2]->out[3]);
    for (int i = 0; i < B * T; i++) CHECK(smk[i] == g_mask[i]);

    /* Same step, same noise: identical scores; another step, other noise. */
    float keep = sc[3];
    run_loss(&G, 4);
    CHECK(rl_f32(&G.fl[2]->out[1])[3] == keep);
    run_loss(&G, 5);
    CHECK(rl_f32(&G.fl[2]->out[1])[3] != keep);
    run_loss(&G, 4);

    /* No gradient reaches the policy: latent_tap never runs a backward, no
       flow input asks for one, and the policy's 'hidden' gets none. */
    CHECK(G.tap->needs_backward == 0);
    for (int k = 0; k < 5; k++) CHECK(G.fl[2]->need_grad_in[k] == 0);
    CHECK(G.src->needs_backward == 1 && g_hidden_grad_seen == 0);
    CHECK(pgrad[0] == 2.0f); /* the policy's own loss still trains it */

    /* token_loss is differentiable w.r.t. phi: finite differences through
       the graph (same step, same noise) against the accumulated gradient. */
    float *snap = rl_calloc(f->params->numel, sizeof(float));
    memcpy(snap, grad, f->params->numel * sizeof(float));
    double nz = 0;
    for (size_t i = 0; i < f->params->numel; i++) nz = fmax(nz, fabs(snap[i]));
    CHECK(nz > 0);
    double worst_fd = 0;
    for (int i = 0; i < f->params->n; i++) {
        const rl_param_entry *pe = &f->params->entries[i];
        size_t j = pe->offset + (size_t)rl_shape_numel(&pe->shape) / 2;
        float saved = f->params->data[j];
        double h = 3e-2;
        f->params->data[j] = (float)(saved + h);
        double lp = run_loss(&G, 4);
        f->params->data[j] = (float)(saved - h);
        double lm = run_loss(&G, 4);
        f->params->data[j] = saved;
        double num = (lp - lm) / (2 * h), ana = snap[j];
        double r = fabs(num - ana) / fmax(fabs(num) + fabs(ana), 1e-3);
        if (r > worst_fd) worst_fd = r;
        CHECK_MSG(r < 5e-2, "d token_loss / d %s: numeric %.6g analytic %.6g", pe->name, num, ana);
    }
    printf("token_loss -> phi finite-difference worst rel err %.3g (loss %.5g)\n", worst_fd, L0);
    /* Chunked rows (5 per network call; backward recomputes each chunk):
       same scores and gradients as one call. */
    float sc_full[B * T];
    run_loss(&G, 4); /* the last finite-difference run had a perturbed weight */
    memcpy(sc_full, rl_f32(&G.fl[2]->out[1]), sizeof sc_full);
    rl_graph_free(G.g);
    fgraph H;
    CHECK_MSG(build(&H, fo, po, "score", 5, &e) == 0, "%s", e.msg);
    double Lc = run_loss(&H, 4);
    CHECK_MSG(fabs(Lc - L0) <= 1e-5 * fabs(L0), "chunked loss %.9g vs %.9g", Lc, L0);
    double ds = 0, dg = 0, gs = 0;
    for (int i = 0; i < B * T; i++) ds = fmax(ds, fabs(rl_f32(&H.fl[2]->out[1])[i] - sc_full[i]));
    for (size_t i = 0; i < f->params->numel; i++) {
        dg = fmax(dg, fabs(grad[i] - snap[i]));
        gs = fmax(gs, fabs(snap[i]));
    }
    CHECK_MSG(ds < 1e-5 && dg <= 1e-5 * gs, "chunked: score diff %.3g, grad diff %.3g of %.3g", ds, dg, gs);
    rl_graph_free(H.g);
    rl_free(snap);

    /* Train mode runs on the same rows. */
    CHECK_MSG(build(&G, fo, po, "train", 0, &e) == 0, "%s", e.msg);
    run_loss(&G, 1);
    CHECK(rl_f32(&G.fl[2]->out[0])[0] > 0);
    /* No response token at all: zero rows, zero loss and scores, no error. */
    float saved_mask[B * T];
    memcpy(saved_mask, g_mask, sizeof g_mask);
    memset(g_mask, 0, sizeof g_mask);
    CHECK(run_loss(&G, 2) == 0.0);
    CHECK(G.tap->out[0].shape.dim[0] == 0 && rl_f32(&G.fl[2]->out[0])[0] == 0.0f);
    memcpy(g_mask, saved_mask, sizeof g_mask);
    rl_graph_free(G.g);

    rl_free(grad);
    rl_free(pgrad);
    rl_object_release(fo);
    rl_object_release(po);
}

static void check_bad_flow(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    rl_opts_set_int(&o, "width", 16);
    CHECK(rl_graph_add(g, rl_node_type_find("flow"), NULL, "x.lua:7", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "width 8") && strstr(e.msg, "width 16"), "%s", e.msg);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    rl_opts_set_int(&o, "depth", 4);
    CHECK(rl_graph_add(g, rl_node_type_find("flow"), NULL, "x.lua:8", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "depth 2") && strstr(e.msg, "depth 4"), "%s", e.msg);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    double t1 = 1.0;
    rl_opts_set_numbers(&o, "t", &t1, 1);
    rl_opts_set_string(&o, "mode", "score");
    CHECK(rl_graph_add(g, rl_node_type_find("flow"), NULL, "x.lua:9", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "outside (0, 1)"), "%s", e.msg);
    rl_opts_free(&o);
    rl_graph_free(g);

    /* Policy hidden size 5 vs a flow of dim 4: error at compile (infer). */
    g = rl_graph_new("dim");
    rl_params *pp = rl_params_new("policy", 1);
    rl_params_add(pp, "w", rl_shape1(1), RL_INIT_ONES, 0, NULL, &e);
    rl_object *po = rl_params_object(pp);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *src = add(g, &t_src, &o, &e);
    rl_opts_free(&o);
    rl_flow_config cfg = {.dim = D + 1, .width = 8, .depth = 2};
    rl_object *fo5 = rl_flow_object(rl_flow_new(&cfg, 1, &e));
    rl_node *tap = add(g, rl_node_type_find("latent_tap"), NULL, &e);
    rl_test_connect(g, tap, "hidden", src, "hidden");
    rl_test_connect(g, tap, "tau", src, "tau");
    rl_test_connect(g, tap, "mask", src, "mask");
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo5);
    rl_node *fl = add(g, rl_node_type_find("flow"), &o, &e);
    rl_opts_free(&o);
    const char *ins[] = {"target", "cond", "tau", "index"};
    for (int k = 0; k < 4; k++) rl_test_connect(g, fl, ins[k], tap, ins[k]);
    rl_graph_mark_output(g, fl, 0, &e);
    CHECK(rl_graph_compile(g, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "hidden size is 4") && strstr(e.msg, "size 5"), "%s", e.msg);
    rl_graph_free(g);
    rl_object_release(fo5);
    rl_object_release(po);
    rl_object_release(fo);
}

/* score_mask with token_pre only: the last response token of each row has
 * no partner (k+1 is padding or past the end), so no score and mask 0;
 * every other response token has mask 1, and off the response 0. */
static void check_score_mask(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    rl_params *pp = rl_params_new("policy", 1);
    rl_params_add(pp, "w", rl_shape1(1), RL_INIT_ONES, 0, NULL, &e);
    rl_object *po = rl_params_object(pp);
    rl_graph *g = rl_graph_new("score_mask");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *src = add(g, &t_src, &o, &e);
    rl_opts_free(&o);
    rl_node *tap = add(g, rl_node_type_find("latent_tap"), NULL, &e); /* default context: token_pre */
    rl_test_connect(g, tap, "hidden", src, "hidden");
    rl_test_connect(g, tap, "tau", src, "tau");
    rl_test_connect(g, tap, "mask", src, "mask");
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    rl_opts_set_string(&o, "mode", "score");
    rl_node *fl = add(g, rl_node_type_find("flow"), &o, &e);
    rl_opts_free(&o);
    const char *ins[] = {"target", "cond", "tau", "index"};
    for (int k = 0; k < 4; k++) rl_test_connect(g, fl, ins[k], tap, ins[k]);
    rl_test_connect(g, fl, "mask", src, "mask");
    rl_graph_mark_output(g, fl, rl_node_output_index(fl, "score"), &e);
    rl_graph_mark_output(g, fl, rl_node_output_index(fl, "score_mask"), &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    ctx.seed = 3;
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    const rl_tensor *sm = &fl->out[rl_node_output_index(fl, "score_mask")];
    const float *sc = rl_f32(&fl->out[rl_node_output_index(fl, "score")]), *m = rl_f32(sm);
    CHECK(sm->dtype == RL_F32 && sm->shape.ndim == 2 && sm->shape.dim[0] == B && sm->shape.dim[1] == T);
    /* Row 0: response 2-4, valid up to 4 -> scored 2, 3. Row 1: response 1-5 -> scored 1-4. */
    const float want[B * T] = {0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0};
    for (int i = 0; i < B * T; i++) {
        CHECK_MSG(m[i] == want[i], "score_mask[%d] = %g, want %g", i, (double)m[i], (double)want[i]);
        CHECK((sc[i] > 0.0f) == (want[i] == 1.0f)); /* scores are positive exactly where masked in */
    }
    rl_graph_free(g);
    rl_object_release(po);
    rl_object_release(fo);
}

/* Layer choice for the taps (the policy node's helper; the latent tap relies
 * on it): j = round(p·N) with halves to even, j = N -> N-1, p in (0, 1]. */
static void check_tap_layers(void) {
    rl_error e = {0};
    int64_t j[3];
    double p[3] = {0.25, 0.5, 0.75};
    CHECK(rl_tap_layers(p, 3, 28, j, &e) == 0 && j[0] == 7 && j[1] == 14 && j[2] == 21);
    CHECK(rl_tap_layers(p, 3, 6, j, &e) == 0 && j[0] == 2 && j[1] == 3 && j[2] == 4); /* 1.5 -> 2, 4.5 -> 4 */
    double one = 1.0;
    CHECK(rl_tap_layers(&one, 1, 4, j, &e) == 0 && j[0] == 3);
    double bad[] = {0.0, 1.5, -0.25};
    for (int i = 0; i < 3; i++) {
        CHECK(rl_tap_layers(&bad[i], 1, 4, j, &e) == -1);
        CHECK_MSG(strstr(e.msg, "(0, 1]") != NULL, "%s", e.msg);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    set_inputs();
    check_latent_tap();
    check_flow_nodes();
    check_score_mask();
    check_bad_flow();
    check_tap_layers();
    return rl_test_finish("test_flow_nodes");
}
