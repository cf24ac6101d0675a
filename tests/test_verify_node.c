/* The verifier node in a real graph: per-response rewards and correctness
 * for every rule, groups (N = B * G responses per B gold answers), the
 * `finished` input, metrics, option and shape errors, and a steady-state run
 * that allocates nothing. Also dataset -> verifier: every expert solution of
 * the arithmetic task earns reward 1. */
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "testlib.h"
#include "verify.h"

#define N 8
#define L 64
#define B 4
#define L2 16

/* A test source: fixed responses, gold answers and finished flags. */
static const char *const responses[N] = {
    "2+3=5. \\boxed{5}",             /* gold 0: correct */
    "\\boxed{6}",                    /* gold 0: wrong -> partial */
    "the answer is 7",               /* gold 1: no box */
    "\\boxed{7}",                    /* gold 1: correct but truncated (finished = 0) */
    "\\boxed{1}\\boxed{1}\\boxed{1}\\boxed{1}\\boxed{0.5}", /* gold 2: too many boxes */
    "so \\boxed{\\frac{1}{2}}",      /* gold 2: correct */
    "\\boxed{(1, 2)}",               /* gold 3: correct (alternative list) */
    "\\boxed{",                      /* gold 3: bad box */
};
static const char *const golds[B] = {"5", "7", "0.5", "(2,1)\x1f(1,2)"};
static const int32_t fin[N] = {1, 1, 1, 0, 1, 1, 1, 1};
static const float want_reward[N] = {1, 0.5f, 0, 0, 0, 1, 1, 0};
static const float want_correct[N] = {1, 0, 0, 0, 0, 1, 1, 0};

static const rl_port_spec src_out[] = {
    {"text", RL_U8, 2, 0, 0, "responses"},
    {"answer", RL_U8, 2, 0, 0, "golds"},
    {"finished", RL_I32, 1, 0, 0, "flags"},
};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(N, L);
    n->out[1].dtype = RL_U8;
    n->out[1].shape = rl_shape2(B, L2);
    n->out[2].dtype = RL_I32;
    n->out[2].shape = rl_shape1(N);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memset(n->out[0].data, 0, N * L);
    memset(n->out[1].data, 0, B * L2);
    for (int i = 0; i < N; i++) memcpy(rl_u8(&n->out[0]) + i * L, responses[i], strlen(responses[i]));
    for (int i = 0; i < B; i++) memcpy(rl_u8(&n->out[1]) + i * L2, golds[i], strlen(golds[i]));
    memcpy(n->out[2].data, fin, sizeof fin);
    return 0;
}
static const rl_node_type t_src = {
    .name = "t_src", .doc = "fixed texts", .outputs = src_out, .n_outputs = 3, .infer = src_infer,
    .forward = src_forward,
};

static double metric(const rl_run_ctx *ctx, const char *name) {
    for (int i = 0; i < ctx->n_metrics; i++)
        if (strcmp(ctx->metrics[i].name, name) == 0) return ctx->metrics[i].value;
    return -1;
}

static rl_node *verifier(rl_graph *g, rl_opts *o, rl_error *e) {
    return rl_graph_add_named(g, "verifier", "vf", "test.lua:3", NULL, o, e);
}

static void test_rules_in_graph(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("vf");
    rl_node *src = rl_graph_add(g, &t_src, "src", "test.lua:1", NULL, NULL, &e);
    rl_node *vf = verifier(g, NULL, &e);
    CHECK_MSG(src && vf, "%s", e.msg);
    if (!src || !vf) { rl_graph_free(g); return; }
    for (int p = 0; p < 3; p++) CHECK_MSG(rl_graph_connect(g, vf, p, src, p, &e) == 0, "%s", e.msg);
    rl_graph_mark_output(g, vf, 0, &e);
    rl_graph_mark_output(g, vf, 1, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "compile: %s", e.msg);
    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
    const float *rw = rl_f32(&vf->out[0]), *cr = rl_f32(&vf->out[1]);
    for (int i = 0; i < N && rw && cr; i++) {
        CHECK_MSG(rw[i] == want_reward[i], "response %d: reward %g, want %g", i, rw[i], want_reward[i]);
        CHECK_MSG(cr[i] == want_correct[i], "response %d: correct %g, want %g", i, cr[i], want_correct[i]);
    }
    CHECK(metric(&ctx, "accuracy") == 3.0 / N);
    CHECK(metric(&ctx, "reward_mean") == 3.5 / N);
    CHECK(metric(&ctx, "no_box") == 1.0 / N);
    CHECK(metric(&ctx, "truncated") == 1.0 / N);
    CHECK(metric(&ctx, "too_many_boxes") == 1.0 / N);
    /* the steady state allocates nothing */
    uint64_t before = rl_alloc_count();
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    CHECK(rl_alloc_count() == before);
    rl_graph_free(g);

    /* partial = 0 and no finished input: binary rewards, the truncated one counts */
    g = rl_graph_new("vf2");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_number(&o, "partial", 0);
    rl_opts_set_int(&o, "group", 2);
    src = rl_graph_add(g, &t_src, "src", "test.lua:1", NULL, NULL, &e);
    vf = verifier(g, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(src && vf, "%s", e.msg);
    if (!src || !vf) { rl_graph_free(g); return; }
    for (int p = 0; p < 2; p++) rl_graph_connect(g, vf, p, src, p, &e);
    rl_graph_mark_output(g, vf, 0, &e);
    rl_graph_mark_output(g, src, 2, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "compile: %s", e.msg);
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
    rw = rl_f32(&vf->out[0]);
    for (int i = 0; i < N && rw; i++) {
        float want = i == 3 ? 1.0f : want_correct[i];
        CHECK_MSG(rw[i] == want, "binary: response %d: reward %g, want %g", i, rw[i], want);
    }
    rl_graph_free(g);
}

static void test_errors(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_string(&o, "kind", "boxd");
    CHECK(verifier(g, &o, &e) == NULL && strstr(e.msg, "boxd") && strstr(e.msg, "test.lua:3"));
    rl_opts_free(&o);
    /* 8 responses in groups of 3 for 4 golds */
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 3);
    rl_node *src = rl_graph_add(g, &t_src, "src", "test.lua:1", NULL, NULL, &e);
    rl_node *vf = verifier(g, &o, &e);
    rl_opts_free(&o);
    if (src && vf) {
        rl_graph_connect(g, vf, 0, src, 0, &e);
        rl_graph_connect(g, vf, 1, src, 1, &e);
        rl_graph_mark_output(g, vf, 0, &e);
        e.msg[0] = '\0';
        CHECK(rl_graph_compile(g, NULL, &e) < 0 && strstr(e.msg, "groups of 3"));
    }
    rl_graph_free(g);
}

/* dataset (arith) -> verifier(solution, answer): the expert solutions are right. */
static void test_dataset_solutions(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("ds");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "batch", 32);
    rl_opts_set_string(&o, "split", "test");
    rl_node *ds = rl_graph_add_named(g, "dataset", "data", "t.lua:1", NULL, &o, &e);
    rl_opts_free(&o);
    rl_node *vf = verifier(g, NULL, &e);
    rl_node *vp = rl_graph_add_named(g, "verifier", "vp", "t.lua:4", NULL, NULL, &e);
    CHECK_MSG(ds && vf && vp, "%s", e.msg);
    if (!ds || !vf || !vp) { rl_graph_free(g); return; }
    rl_graph_connect(g, vf, 0, ds, 2, &e); /* solution */
    rl_graph_connect(g, vf, 1, ds, 1, &e); /* answer */
    rl_graph_connect(g, vp, 0, ds, 0, &e); /* prompt: no box */
    rl_graph_connect(g, vp, 1, ds, 1, &e);
    rl_graph_mark_output(g, vf, 0, &e);
    rl_graph_mark_output(g, vp, 0, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "compile: %s", e.msg);
    rl_run_ctx ctx = {0};
    for (int step = 0; step < 3; step++) {
        CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
        for (int i = 0; i < 32; i++) {
            CHECK(rl_f32(&vf->out[0])[i] == 1.0f);
            CHECK(rl_f32(&vp->out[0])[i] == 0.0f);
        }
    }
    rl_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_rules_in_graph();
    test_errors();
    test_dataset_solutions();
    return rl_test_finish("test_verify_node");
}
