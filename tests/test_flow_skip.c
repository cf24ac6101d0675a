/* Skipping rejected rollouts in the online flow update: the flow node with a
 * 'weight' input (from flow_weights) against the same node without it, both
 * feeding flow_loss, in score and train mode, in one chunk and in chunks of
 * 5 rows (backward recomputes). On responses with a non-zero weight the
 * outputs equal the unweighted node's and the flow's parameter gradients
 * through flow_loss equal too; responses with weight 0 get no row computed
 * (the flow_rows metric counts them) and all-zero outputs. Also: finite
 * differences through the skipping graph, flow_loss's 'weight' input equals
 * its own reward-derived weights (and rl_flow_loss_weighted equals
 * rl_flow_loss bit for bit), soft_flow > 0 skips nothing, all rejected, a
 * steady-state step allocates nothing, and bad wiring. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "graph.h"
#include "rl_math.h"
#include "testlib.h"

#define L 2
#define B 4
#define T 6
#define D 4

/* ---- test-local nodes ---- */

/* The "policy + verifier": hidden [L, B, T, D], tau [L], mask [B, T], reward [B]. */
static float g_hidden[L * B * T * D], g_tau[L] = {0.25f, 0.75f}, g_mask[B * T], g_reward[B];

static const rl_port_spec src_out[] = {{"hidden", RL_F32, 4, 0, 0, "h"}, {"tau", RL_F32, 1, 0, 0, "tau"},
                                       {"mask", RL_F32, 2, 0, 0, "mask"}, {"reward", RL_F32, 1, 0, 0, "reward"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape4(L, B, T, D);
    n->out[1].shape = rl_shape1(L);
    n->out[2].shape = rl_shape2(B, T);
    n->out[3].shape = rl_shape1(B);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memcpy(n->out[0].data, g_hidden, sizeof g_hidden);
    memcpy(n->out[1].data, g_tau, sizeof g_tau);
    memcpy(n->out[2].data, g_mask, sizeof g_mask);
    memcpy(n->out[3].data, g_reward, sizeof g_reward);
    return 0;
}
static const rl_node_type t_src = {.name = "t_src", .doc = "fake policy", .outputs = src_out, .n_outputs = 4,
                                   .infer = src_infer, .forward = src_forward};

/* ---- helpers ---- */

static rl_node *add(rl_graph *g, const rl_node_type *t, const char *label, rl_opts *o, rl_error *e) {
    rl_node *n = rl_graph_add(g, t, label, "test_flow_skip.lua:1", NULL, o, e);
    CHECK_MSG(n != NULL, "%s", e->msg);
    return n;
}

static void set_inputs(void) {
    rl_test_fill(g_hidden, sizeof g_hidden / sizeof(float), 77);
    /* Responses: row 0 at 2-4 (5 padding), row 1 at 1-5, row 2 at 2-5, row 3 at 1-3. */
    const float m[B * T] = {0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0};
    memcpy(g_mask, m, sizeof m);
    /* Correct, wrong, boxed-but-wrong, correct: weights 1, 0, 0, 1 at soft_flow 0. */
    const float r[B] = {1.0f, 0.0f, 0.5f, 1.0f};
    memcpy(g_reward, r, sizeof r);
}

static rl_object *flow_obj(void) {
    rl_error e = {0};
    rl_flow_config cfg = {.dim = D, .width = 8, .depth = 2};
    rl_flow *f = rl_flow_new(&cfg, 5, &e);
    if (!f) return NULL;
    /* Random weights everywhere, so the velocity depends on x, t, c and tau. */
    rl_test_fill(f->params->data, f->params->numel, 41);
    for (size_t i = 0; i < f->params->numel; i++) f->params->data[i] *= 0.4f;
    return rl_flow_object(f);
}

typedef struct sgraph {
    rl_graph *g;
    rl_node *tap, *fl, *loss;
} sgraph;

/* src -> latent_tap (token_pre + token_post) -> flow -> flow_loss -> sink.
 * skip: flow_weights(reward) feeds the flow's and flow_loss's 'weight';
 * else flow_loss weighs by 'reward' itself and the flow computes every row. */
static int build(sgraph *S, rl_object *fo, const char *mode, int64_t chunk, int skip, double soft, rl_error *e) {
    memset(S, 0, sizeof *S);
    S->g = rl_graph_new("skip");
    rl_node *src = add(S->g, &t_src, "src", NULL, e);
    rl_opts o;
    rl_opts_init(&o);
    const char *modes[] = {"token_pre", "token_post"};
    rl_opts_set_strings(&o, "context", modes, 2);
    S->tap = add(S->g, rl_node_type_find("latent_tap"), "tap", &o, e);
    rl_opts_free(&o);
    rl_test_connect(S->g, S->tap, "hidden", src, "hidden");
    rl_test_connect(S->g, S->tap, "tau", src, "tau");
    rl_test_connect(S->g, S->tap, "mask", src, "mask");
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", fo);
    rl_opts_set_string(&o, "mode", mode);
    rl_opts_set_int(&o, "seed", 9);
    rl_opts_set_int(&o, "batch_mul", 3);
    if (chunk) rl_opts_set_int(&o, "chunk", chunk);
    S->fl = add(S->g, rl_node_type_find("flow"), "flow_train", &o, e);
    rl_opts_free(&o);
    if (!S->fl) return -1;
    const char *ins[] = {"target", "cond", "tau", "index"};
    for (int k = 0; k < 4; k++) rl_test_connect(S->g, S->fl, ins[k], S->tap, ins[k]);
    rl_test_connect(S->g, S->fl, "mask", src, "mask");
    rl_opts_init(&o);
    rl_opts_set_number(&o, "soft_flow", soft);
    S->loss = add(S->g, rl_node_type_find("flow_loss"), "flow_loss", &o, e);
    rl_opts_free(&o);
    rl_test_connect(S->g, S->loss, "token_loss", S->fl, "token_loss");
    rl_test_connect(S->g, S->loss, "mask", src, "mask");
    if (skip) {
        rl_opts_init(&o);
        rl_opts_set_number(&o, "soft_flow", soft);
        rl_node *w = add(S->g, rl_node_type_find("flow_weights"), "flow_weights", &o, e);
        rl_opts_free(&o);
        rl_test_connect(S->g, w, "reward", src, "reward");
        rl_test_connect(S->g, S->fl, "weight", w, "weight");
        rl_test_connect(S->g, S->loss, "weight", w, "weight");
    } else {
        rl_test_connect(S->g, S->loss, "reward", src, "reward");
    }
    for (int k = 0; k < 4; k++) rl_graph_mark_output(S->g, S->fl, k, e);
    rl_graph_mark_output(S->g, S->loss, 0, e);
    rl_graph_mark_output(S->g, S->tap, rl_node_output_index(S->tap, "index"), e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", fo);
    rl_node *sink = add(S->g, &rl_test_grad_sink, "sink", &o, e);
    rl_opts_free(&o);
    rl_test_connect(S->g, sink, "loss", S->loss, "loss");
    return rl_graph_compile(S->g, NULL, e);
}

static rl_run_ctx g_ctx;

static double run(sgraph *S) {
    rl_error e = {0};
    memset(&g_ctx, 0, sizeof g_ctx);
    g_ctx.seed = 5;
    g_ctx.step = 2;
    CHECK_MSG(rl_graph_run(S->g, NULL, &g_ctx, &e) == 0, "%s", e.msg);
    return rl_f32(&S->loss->out[0])[0];
}

static double metric(const char *name) {
    for (int i = 0; i < g_ctx.n_metrics; i++)
        if (strcmp(g_ctx.metrics[i].name, name) == 0) return g_ctx.metrics[i].value;
    return -1;
}

/* Latent rows of the tap that belong to responses with a non-zero weight. */
static int64_t kept_rows(const sgraph *S, const float *w) {
    const rl_tensor *ix = &S->tap->out[rl_node_output_index(S->tap, "index")];
    int64_t n = 0;
    for (int64_t m = 0; m < ix->shape.dim[0]; m++) n += w[rl_i32(ix)[m * 3]] != 0.0f;
    return n;
}

/* ---- skip vs no skip ---- */

static void check_equal(const char *mode, int64_t chunk) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    rl_flow *f = rl_flow_from_object(fo);
    CHECK(f != NULL);
    if (!f) return;
    size_t np = f->params->numel;
    float *ga = rl_calloc(np, sizeof(float)), *gb = rl_calloc(np, sizeof(float));
    float outa[4][B * T];
    sgraph A, S;
    CHECK_MSG(build(&A, fo, mode, chunk, 0, 0.0, &e) == 0, "%s", e.msg);
    CHECK_MSG(build(&S, fo, mode, chunk, 1, 0.0, &e) == 0, "%s", e.msg);
    rl_test_grad_copy[0] = ga;
    double la = run(&A);
    for (int k = 1; k < 4; k++) memcpy(outa[k], rl_f32(&A.fl->out[k]), sizeof outa[k]);
    CHECK(metric("flow_rows") == -1); /* only logged with 'weight' */
    rl_test_grad_copy[0] = gb;
    double ls = run(&S);
    float w[B];
    rl_flow_weights(g_reward, B, 1.0, 0.0, w);
    int64_t rows = kept_rows(&S, w), all = S.tap->out[0].shape.dim[0];
    CHECK_MSG(metric("flow_rows") == (double)rows && rows > 0 && rows < all, "%s: flow_rows %g, want %lld of %lld",
              mode, metric("flow_rows"), (long long)rows, (long long)all);
    CHECK(metric("flow_rejected") == 2.0);
    CHECK_MSG(la > 0 && fabs(ls - la) <= 1e-6 * fabs(la), "%s chunk %lld: flow_loss %.9g skipping, %.9g not", mode,
              (long long)chunk, ls, la);

    /* Outputs: equal on kept responses, 0 on skipped ones. */
    double worst = 0;
    int nonzero = 0;
    for (int k = 1; k < 4; k++) {
        const float *o = rl_f32(&S.fl->out[k]);
        for (int i = 0; i < B * T; i++) {
            if (w[i / T] == 0.0f) {
                CHECK_MSG(o[i] == 0.0f, "%s output %d [%d] = %g on a skipped response", mode, k, i, (double)o[i]);
                continue;
            }
            nonzero += o[i] != 0.0f;
            worst = fmax(worst, fabs(o[i] - outa[k][i]) / fmax(fabs(outa[k][i]), 1e-6));
        }
    }
    CHECK_MSG(worst <= 1e-6 && nonzero > 10, "%s: outputs differ by %.3g (relative) on kept rows", mode, worst);
    /* The unskipped node does score the rejected responses. */
    CHECK(outa[1][T + 2] != 0.0f && outa[3][2 * T + 3] == 1.0f);

    /* Flow parameter gradients through flow_loss. */
    double gd = 0, gs = 0;
    for (size_t i = 0; i < np; i++) {
        gd = fmax(gd, fabs(ga[i] - gb[i]));
        gs = fmax(gs, fabs(ga[i]));
    }
    CHECK_MSG(gs > 0 && gd <= 1e-6 * gs, "%s chunk %lld: gradients differ by %.3g of %.3g", mode, (long long)chunk,
              gd, gs);
    printf("%s chunk %lld: %lld of %lld rows computed; outputs rel diff %.2g, grad diff %.2g of %.2g\n", mode,
           (long long)chunk, (long long)rows, (long long)all, worst, gd, gs);

    /* A steady-state step with skipping allocates nothing. */
    uint64_t before = rl_alloc_count();
    run(&S);
    CHECK(rl_alloc_count() == before);

    /* All responses rejected: nothing computed, zero loss and gradient. */
    float saved[B];
    memcpy(saved, g_reward, sizeof saved);
    for (int b = 0; b < B; b++) g_reward[b] = 0.0f;
    CHECK(run(&S) == 0.0 && metric("flow_rows") == 0.0);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < (k ? B * T : 1); i++) CHECK(rl_f32(&S.fl->out[k])[i] == 0.0f);
    for (size_t i = 0; i < np; i++) CHECK(gb[i] == 0.0f);
    memcpy(g_reward, saved, sizeof saved);

    rl_graph_free(A.g);
    rl_graph_free(S.g);
    rl_test_grad_copy[0] = NULL;
    rl_free(ga);
    rl_free(gb);
    rl_object_release(fo);
}

/* ---- finite differences through the skipping graph ---- */

typedef struct fd_ctx {
    sgraph *S;
} fd_ctx;

static double fd_loss(void *p) { return run(((fd_ctx *)p)->S); }

static void check_gradcheck(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    rl_flow *f = rl_flow_from_object(fo);
    if (!f) return;
    sgraph S;
    CHECK_MSG(build(&S, fo, "score", 0, 1, 0.0, &e) == 0, "%s", e.msg);
    float *g = rl_calloc(f->params->numel, sizeof(float));
    rl_test_grad_copy[0] = g;
    run(&S);
    rl_test_grad_copy[0] = NULL;
    fd_ctx c = {&S};
    double r = rl_test_gradcheck(f->params->data, f->params->numel, g, fd_loss, &c, 1e-2, 60);
    CHECK_MSG(r < 3e-2, "flow_loss -> phi through the skipping flow: finite differences off by %.3g", r);
    printf("finite differences through the skipping flow: worst rel err %.3g\n", r);
    rl_graph_free(S.g);
    rl_free(g);
    rl_object_release(fo);
}

/* ---- soft_flow > 0: no weight is 0, nothing is skipped ---- */

static void check_soft(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    sgraph A, S;
    CHECK_MSG(build(&A, fo, "score", 0, 0, 0.3, &e) == 0, "%s", e.msg);
    CHECK_MSG(build(&S, fo, "score", 0, 1, 0.3, &e) == 0, "%s", e.msg);
    double la = run(&A), ls = run(&S);
    CHECK(metric("flow_rows") == (double)S.tap->out[0].shape.dim[0] && metric("flow_rejected") == 0.0);
    /* flow_weights rounds soft_flow to f32 and flow_loss does the same: equal bit for bit. */
    CHECK_MSG(ls == la, "soft_flow 0.3: %.9g with weights, %.9g from rewards", ls, la);
    CHECK(memcmp(rl_f32(&A.fl->out[1]), rl_f32(&S.fl->out[1]), B * T * sizeof(float)) == 0);
    rl_graph_free(A.g);
    rl_graph_free(S.g);
    rl_object_release(fo);
}

/* ---- rl_math: weights once, loss from weights == loss from rewards ---- */

static void check_math(void) {
    const float rw[5] = {1.0f, 0.5f, 2.0f, -1.0f, 0.999f};
    float w[5];
    CHECK(rl_flow_weights(rw, 5, 1.0, 0.0, w) == 3);
    CHECK(w[0] == 1 && w[1] == 0 && w[2] == 1 && w[3] == 0 && w[4] == 0);
    CHECK(rl_flow_weights(rw, 5, 0.5, 0.25, w) == 0);
    CHECK(w[1] == 1 && w[3] == 0.25f && w[4] == 1);
    enum { N = 5, TT = 7 };
    float tl[N * TT], ent[N * TT], mask[N * TT], d1[N * TT], d2[N * TT], sc[TT];
    rl_test_fill(tl, N * TT, 3);
    rl_test_fill(ent, N * TT, 4);
    for (int i = 0; i < N * TT; i++) {
        tl[i] = fabsf(tl[i]);
        mask[i] = (i % TT) >= (i / TT) % 3 ? 1.0f : 0.0f;
    }
    double qs[2] = {0, 0.4};
    double softs[3] = {0, 0.3, 1};
    for (int q = 0; q < 2; q++)
        for (int s = 0; s < 3; s++) {
            rl_flow_loss_cfg cfg = {softs[s], 1.0, qs[q]};
            rl_flow_loss_stats s1, s2;
            rl_flow_weights(rw, N, cfg.correct, cfg.soft_flow, w);
            double a = rl_flow_loss(tl, rw, mask, ent, N, TT, &cfg, d1, sc, &s1);
            double b = rl_flow_loss_weighted(tl, w, mask, ent, N, TT, &cfg, d2, sc, &s2);
            CHECK_MSG(a == b && memcmp(d1, d2, sizeof d1) == 0 && s1.n_accepted == s2.n_accepted,
                      "q %g soft %g: %.9g from rewards, %.9g from weights", qs[q], softs[s], a, b);
        }
}

/* ---- bad wiring ---- */

static void check_bad(void) {
    rl_error e = {0};
    rl_object *fo = flow_obj();
    /* flow_loss with both 'reward' and 'weight', or neither. */
    for (int both = 0; both < 2; both++) {
        rl_graph *g = rl_graph_new("bad");
        rl_node *src = add(g, &t_src, "src", NULL, &e);
        rl_node *w = add(g, rl_node_type_find("flow_weights"), "fw", NULL, &e);
        rl_test_connect(g, w, "reward", src, "reward");
        rl_node *fl = add(g, rl_node_type_find("flow_loss"), "fl", NULL, &e);
        rl_test_connect(g, fl, "token_loss", src, "mask");
        rl_test_connect(g, fl, "mask", src, "mask");
        if (both) {
            rl_test_connect(g, fl, "reward", src, "reward");
            rl_test_connect(g, fl, "weight", w, "weight");
        }
        rl_graph_mark_output(g, fl, 0, &e);
        CHECK(rl_graph_compile(g, NULL, &e) == -1);
        CHECK_MSG(strstr(e.msg, "exactly one of 'reward' and 'weight'") && strstr(e.msg, "fl"), "%s", e.msg);
        rl_graph_free(g);
    }
    /* flow with a weight per latent row instead of per response; and without 'mask'. */
    for (int nomask = 0; nomask < 2; nomask++) {
        rl_graph *g = rl_graph_new("bad");
        rl_node *src = add(g, &t_src, "src", NULL, &e);
        rl_node *tap = add(g, rl_node_type_find("latent_tap"), "tap", NULL, &e);
        rl_test_connect(g, tap, "hidden", src, "hidden");
        rl_test_connect(g, tap, "tau", src, "tau");
        rl_test_connect(g, tap, "mask", src, "mask");
        rl_opts o;
        rl_opts_init(&o);
        rl_opts_set_object(&o, "net", fo);
        rl_node *fl = add(g, rl_node_type_find("flow"), "fl", &o, &e);
        rl_opts_free(&o);
        const char *ins[] = {"target", "cond", "tau", "index"};
        for (int k = 0; k < 4; k++) rl_test_connect(g, fl, ins[k], tap, ins[k]);
        if (!nomask) rl_test_connect(g, fl, "mask", src, "mask");
        rl_test_connect(g, fl, "weight", tap, "tau"); /* [M], not [B] */
        rl_graph_mark_output(g, fl, 0, &e);
        CHECK(rl_graph_compile(g, NULL, &e) == -1);
        CHECK_MSG(strstr(e.msg, "input 'weight'") && strstr(e.msg, "one weight per mask row"), "%s", e.msg);
        if (nomask) CHECK_MSG(strstr(e.msg, "not connected") != NULL, "%s", e.msg);
        rl_graph_free(g);
    }
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_number(&o, "soft_flow", 1.5);
    rl_graph *g = rl_graph_new("bad");
    CHECK(rl_graph_add(g, rl_node_type_find("flow_weights"), "fw", "x.lua:3", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "soft_flow must be in [0, 1]") != NULL, "%s", e.msg);
    rl_graph_free(g);
    rl_opts_free(&o);
    rl_object_release(fo);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    set_inputs();
    check_math();
    check_equal("score", 0);
    check_equal("score", 5);
    check_equal("train", 0);
    check_equal("train", 5);
    check_gradcheck();
    check_soft();
    check_bad();
    return rl_test_finish("test_flow_skip");
}
