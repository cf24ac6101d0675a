/* The `policy` node in a graph: outputs (log-probs, entropies, tapped hidden
 * states, tau) and the gradients the graph's backward delivers to every
 * parameter match the PyTorch reference (tests/ref/qwen2_tied); a
 * finite-difference check of the whole policy on a micro configuration; no
 * allocation in a steady-state step; bad inputs fail with one clear error. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "qwen2.h"
#include "safetensors.h"
#include "testlib.h"

/* ---- test node types ---- */
static int32_t g_tokens[64], g_lengths[8];
static int64_t g_B, g_T;
static float g_wl[64], g_we[64];

static const rl_port_spec tok_out[] = {{"tokens", RL_I32, 2, 0, 0, "ids"}, {"lengths", RL_I32, 1, 0, 0, "lens"}};
static int tok_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(g_B, g_T);
    n->out[1].shape = rl_shape1(g_B);
    return 0;
}
static int tok_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    memcpy(n->out[0].data, g_tokens, (size_t)(g_B * g_T) * 4);
    memcpy(n->out[1].data, g_lengths, (size_t)g_B * 4);
    return 0;
}
static const rl_node_type t_tok = {.name = "t_tok", .doc = "tokens", .outputs = tok_out, .n_outputs = 2,
                                   .infer = tok_infer, .forward = tok_forward};

/* loss = sum(wl * logprobs + we * entropy), reported as metric 0 (in double) */
static const rl_port_spec wsum_in[] = {{"logprobs", RL_F32, 2, 0, 0, ""}, {"entropy", RL_F32, 2, 0, 0, ""}};
static const rl_port_spec wsum_out[] = {{"loss", RL_F32, 1, 0, 0, ""}};
static int wsum_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape1(1);
    return 0;
}
static int wsum_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    double s = 0;
    for (int64_t i = 0; i < cnt; i++) s += (double)g_wl[i] * rl_f32(&n->in[0])[i] + (double)g_we[i] * rl_f32(&n->in[1])[i];
    rl_f32(&n->out[0])[0] = (float)s;
    rl_metric_set(ctx, n, "loss", s);
    return 0;
}
static int wsum_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    float d = rl_f32(&n->grad_out[0])[0];
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    for (int k = 0; k < 2; k++)
        if (n->need_grad_in[k] && n->grad_in[k].data)
            for (int64_t i = 0; i < cnt; i++) rl_f32(&n->grad_in[k])[i] += d * (k ? g_we[i] : g_wl[i]);
    return 0;
}
static const rl_node_type t_wsum = {.name = "t_wsum", .doc = "weighted sum", .inputs = wsum_in, .n_inputs = 2,
                                    .outputs = wsum_out, .n_outputs = 1, .infer = wsum_infer,
                                    .forward = wsum_forward, .backward = wsum_backward};

/* "optimizer" that snapshots the gradient */
static float *grabbed;
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    if (grabbed) memcpy(grabbed, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {.name = "t_grab", .doc = "grad snapshot", .inputs = grab_in, .n_inputs = 1,
                                    .options = grab_opts, .n_options = 1, .flags = RL_NODE_OPTIMIZER,
                                    .forward = grab_forward};

static rl_graph *build(rl_object *net, const double *taps, int n_taps, int64_t chunk, rl_node **pol, rl_error *e) {
    rl_graph *g = rl_graph_new("policy-test");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", net);
    if (n_taps) rl_opts_set_numbers(&o, "tap_layers", taps, n_taps);
    rl_opts_set_int(&o, "chunk", chunk);
    rl_node *src = rl_graph_add(g, &t_tok, NULL, "test.lua:1", NULL, NULL, e);
    rl_node *p = src ? rl_graph_add_named(g, "policy", NULL, "test.lua:2", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    rl_node *loss = p ? rl_graph_add(g, &t_wsum, NULL, "test.lua:3", NULL, NULL, e) : NULL;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", net);
    rl_node *opt = loss ? rl_graph_add(g, &t_grab, NULL, "test.lua:4", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!opt || rl_graph_connect(g, p, 0, src, 0, e) || rl_graph_connect(g, p, 1, src, 1, e) ||
        rl_graph_connect(g, loss, 0, p, 0, e) || rl_graph_connect(g, loss, 1, p, 1, e) ||
        rl_graph_connect(g, opt, 0, loss, 0, e) || rl_graph_mark_output(g, p, 0, e) ||
        rl_graph_mark_output(g, p, 1, e) || rl_graph_mark_output(g, p, 2, e) || rl_graph_mark_output(g, p, 3, e)) {
        rl_graph_free(g);
        return NULL;
    }
    *pol = p;
    return g;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static float *ref_f32(rl_st_file *f, const char *name, size_t n) {
    float *x = rl_malloc(n * sizeof(float));
    rl_error e = {0};
    if (x && rl_st_read_f32(f, name, x, n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        rl_free(x);
        return NULL;
    }
    return x;
}

static void test_against_reference(void) {
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", rl_test_path("tests/ref/qwen2_tied"));
    CHECK_MSG(rl_qwen2_load(dir, "policy", &m, &e) == 0, "%s", e.msg);
    if (!m) return;
    rl_object *net = rl_qwen2_object(m);
    char refp[600];
    snprintf(refp, sizeof refp, "%s/ref.safetensors", dir);
    rl_st_file *ref = NULL;
    CHECK_MSG(rl_st_open(refp, &ref, &e) == 0, "%s", e.msg);
    if (!ref) return;
    const rl_st_info *ti = rl_st_find(ref, "tokens"), *li = rl_st_find(ref, "lengths");
    g_B = ti->shape.dim[0];
    g_T = ti->shape.dim[1];
    memcpy(g_tokens, ti->data, ti->nbytes);
    memcpy(g_lengths, li->data, li->nbytes);
    const int64_t B = g_B, T = g_T, d = m->cfg.hidden, N = m->cfg.n_layers;
    rl_st_read_f32(ref, "w_logp", g_wl, (size_t)(B * T), &e);
    rl_st_read_f32(ref, "w_ent", g_we, (size_t)(B * T), &e);

    const double taps[] = {1.0 / 3.0, 2.0 / 3.0, 1.0};
    rl_node *pol = NULL;
    rl_graph *g = build(net, taps, 3, 2, &pol, &e);
    CHECK_MSG(g && rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    grabbed = rl_calloc(m->params->numel, sizeof(float));
    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    /* Steady state: the second step allocates nothing. */
    uint64_t before = rl_alloc_count();
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_alloc_count() == before, "step allocated %llu times", (unsigned long long)(rl_alloc_count() - before));

    float *lp = ref_f32(ref, "logprobs", (size_t)(B * T)), *en = ref_f32(ref, "entropy", (size_t)(B * T));
    float *hid = ref_f32(ref, "hidden", (size_t)(N * B * T * d));
    CHECK(lp && en && hid);
    if (lp && en && hid) {
        CHECK(pol->out[0].shape.dim[0] == B && pol->out[0].shape.dim[1] == T);
        double e1 = max_rel(rl_f32(&pol->out[0]), lp, (size_t)(B * T));
        double e2 = max_rel(rl_f32(&pol->out[1]), en, (size_t)(B * T));
        CHECK_MSG(e1 <= 1e-4 && e2 <= 1e-4, "policy logprobs %g entropy %g", e1, e2);
        CHECK(pol->out[2].shape.dim[0] == 3 && pol->out[2].shape.dim[3] == d);
        const int64_t want[3] = {1, 2, 2}; /* round(1), round(2), round(3) -> N-1 */
        for (int i = 0; i < 3; i++) {
            double eh = max_rel(rl_f32(&pol->out[2]) + i * B * T * d, hid + want[i] * B * T * d, (size_t)(B * T * d));
            CHECK_MSG(eh <= 1e-4, "tap %d hidden rel err %g", i, eh);
            CHECK(fabsf(rl_f32(&pol->out[3])[i] - (float)want[i] / (float)N) < 1e-7f);
        }
        /* Padding and position 0 hold 0. */
        CHECK(rl_f32(&pol->out[0])[0] == 0.0f && rl_f32(&pol->out[1])[T * 1 + 3] == 0.0f);
    }
    double worst = 0;
    for (int i = 0; i < m->params->n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        char gname[256];
        snprintf(gname, sizeof gname, "grad.%s", pe->name);
        size_t cnt = (size_t)rl_shape_numel(&pe->shape);
        float *gr = ref_f32(ref, gname, cnt);
        if (!gr) {
            CHECK(0);
            continue;
        }
        worst = fmax(worst, max_rel(grabbed + pe->offset, gr, cnt));
        rl_free(gr);
    }
    CHECK_MSG(worst <= 1e-4, "graph gradients rel err %g", worst);

    rl_free(lp);
    rl_free(en);
    rl_free(hid);
    rl_free(grabbed);
    grabbed = NULL;
    rl_graph_free(g);
    rl_st_close(ref);
    rl_object_release(net);
}

/* ---- finite differences of the whole policy on a micro model ---- */
static rl_graph *fd_g;
static double fd_loss(void *ctx) {
    (void)ctx;
    rl_run_ctx rc = {0};
    rl_error e = {0};
    if (rl_graph_run(fd_g, NULL, &rc, &e)) return NAN;
    return rc.metrics[0].value;
}

static void test_finite_differences(void) {
    rl_qwen2_config c = {.vocab = 13, .hidden = 8, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .inter = 12,
                         .max_pos = 16, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = 0};
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    CHECK_MSG(rl_qwen2_new(&c, "micro", 7, &m, &e) == 0, "%s", e.msg);
    if (!m) return;
    rl_object *net = rl_qwen2_object(m);
    CHECK(rl_params_finalize(m->params, &e) == 0);
    /* Weights of order 0.5 so every path carries a visible gradient. */
    rl_test_fill(m->params->data, m->params->numel, 3);
    for (size_t i = 0; i < m->params->numel; i++) m->params->data[i] *= 0.5f;
    g_B = 2;
    g_T = 5;
    const int32_t toks[10] = {1, 5, 12, 3, 7, 0, 9, 4, 0, 0};
    memcpy(g_tokens, toks, sizeof toks);
    g_lengths[0] = 5;
    g_lengths[1] = 3;
    rl_test_fill(g_wl, 10, 21);
    rl_test_fill(g_we, 10, 22);
    rl_node *pol = NULL;
    fd_g = build(net, NULL, 0, 3, &pol, &e);
    CHECK_MSG(fd_g && rl_graph_compile(fd_g, NULL, &e) == 0, "%s", e.msg);
    grabbed = rl_calloc(m->params->numel, sizeof(float));
    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(fd_g, NULL, &ctx, &e) == 0, "%s", e.msg);
    float *ana = rl_malloc(m->params->numel * sizeof(float));
    memcpy(ana, grabbed, m->params->numel * sizeof(float));
    double worst = rl_test_gradcheck(m->params->data, m->params->numel, ana, fd_loss, NULL, 2e-2, 120);
    /* f32 forward: central differences carry ~1e-2 noise on small gradients;
       the exact comparison is against PyTorch in test_qwen2_parity. */
    CHECK_MSG(worst < 5e-2, "whole-policy finite-difference rel err %g", worst);
    printf("policy finite differences at 120 of %zu parameters: worst rel err %.2e\n", m->params->numel, worst);
    rl_free(ana);
    rl_free(grabbed);
    grabbed = NULL;
    rl_graph_free(fd_g);
    rl_object_release(net);
}

/* ---- bad input ---- */
static void expect_run_error(rl_object *net, const char *needle) {
    rl_error e = {0};
    rl_node *pol = NULL;
    rl_graph *g = build(net, NULL, 0, 0, &pol, &e);
    int rc = g ? rl_graph_compile(g, NULL, &e) : -1;
    if (rc == 0) {
        rl_run_ctx ctx = {0};
        rc = rl_graph_run(g, NULL, &ctx, &e);
    }
    CHECK_MSG(rc != 0 && strstr(e.msg, needle), "expected error with '%s', got '%s'", needle, e.msg);
    rl_graph_free(g);
}

static void test_bad_input(void) {
    rl_qwen2_config c = {.vocab = 13, .hidden = 8, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .inter = 12,
                         .max_pos = 6, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = 1};
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    CHECK(rl_qwen2_new(&c, "bad", 1, &m, &e) == 0);
    rl_object *net = rl_qwen2_object(m);
    g_B = 2;
    g_T = 4;
    const int32_t toks[8] = {1, 2, 3, 4, 5, 13, 0, 0};
    memcpy(g_tokens, toks, sizeof toks);
    g_lengths[0] = 4;
    g_lengths[1] = 2;
    expect_run_error(net, "row 1, position 1: token id 13 outside the vocabulary [0, 13)");
    expect_run_error(net, "node 'policy'");
    g_tokens[5] = -1;
    expect_run_error(net, "token id -1");
    g_tokens[5] = 1;
    g_lengths[1] = 5;
    expect_run_error(net, "row 1: length 5 outside [0, 4]");
    g_lengths[1] = 2;
    g_T = 7; /* more positions than max_position_embeddings (6) */
    g_B = 1;
    expect_run_error(net, "more than max_position_embeddings (6)");
    /* tap fractions outside (0, 1] */
    g_T = 4;
    g_B = 2;
    double bad[] = {0.5, 1.5};
    rl_graph *g = rl_graph_new("t");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", net);
    rl_opts_set_numbers(&o, "tap_layers", bad, 2);
    CHECK(rl_graph_add_named(g, "policy", NULL, "x.lua:9", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "tap layer fraction 1.5 is outside (0, 1]") != NULL, "%s", e.msg);
    rl_opts_free(&o);
    rl_graph_free(g);
    rl_object_release(net);
}

static void test_tap_rule(void) {
    double f[] = {0.25, 0.5, 0.75, 1.0, 0.125};
    int64_t j[5];
    rl_error e = {0};
    CHECK(rl_tap_layers(f, 5, 28, j, &e) == 0);
    CHECK(j[0] == 7 && j[1] == 14 && j[2] == 21 && j[3] == 27 && j[4] == 4); /* 3.5 -> 4 (even) */
    CHECK(rl_tap_layers(f, 5, 4, j, &e) == 0);
    CHECK(j[0] == 1 && j[1] == 2 && j[2] == 3 && j[3] == 3 && j[4] == 0); /* 0.5 -> 0 (even) */
    CHECK(rl_tap_layers(f, 2, 6, j, &e) == 0 && j[0] == 2 && j[1] == 3); /* 1.5 -> 2 */
    double z = 0.0;
    CHECK(rl_tap_layers(&z, 1, 4, j, &e) != 0);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_tap_rule();
    test_against_reference();
    test_finite_differences();
    test_bad_input();
    return rl_test_finish("test_qwen2_policy");
}
