/* The graph core: validation errors, schedule, planner figures, in-place
 * reuse, phases, planned == unplanned, and no allocation in a steady step.
 * Uses small node types defined here so it depends on no node in nodes/. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "testlib.h"

/* ---- test node types ---- */

/* source: f32 [rows, cols] filled with a step-dependent pattern. */
static const rl_option_spec src_opts[] = {
    {"rows", RL_VAL_INT, "4", "rows", NULL},
    {"cols", RL_VAL_INT, "8", "columns", NULL},
};
static const rl_port_spec src_out[] = {{"y", RL_F32, 2, 0, 0, "data"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(rl_node_opt_int(n, "rows"), rl_node_opt_int(n, "cols"));
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    int64_t cnt = rl_tensor_numel(&n->out[0]);
    for (int64_t i = 0; i < cnt; i++) rl_f32(&n->out[0])[i] = (float)sin(0.37 * (double)i + 0.1 * (double)ctx->step);
    return 0;
}
static const rl_node_type t_src = {"t_src", "test source", NULL, 0, src_out, 1, src_opts, 2, 0,
                                   NULL, src_infer, src_forward, NULL, NULL};

/* scale by a trainable scalar weight per column: y = x * w[col] (w in params). */
static const rl_option_spec colw_opts[] = {{"params", RL_VAL_OBJECT, NULL, "weights", "params"},
                                           {"tag", RL_VAL_STRING, "w", "tensor name", NULL}};
static const rl_port_spec colw_in[] = {{"x", RL_F32, 2, 0, 0, "input"}};
static const rl_port_spec colw_out[] = {{"y", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0, "output"}};
typedef struct { rl_params *p; size_t off; int64_t cols; } colw_state;
static int colw_init(rl_node *n, rl_error *err) {
    colw_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_fail(err, "oom");
    n->state = s;
    s->p = rl_object_params(rl_node_opt_object(n, "params"));
    return rl_node_use_params(n, s->p, err);
}
static int colw_infer(rl_node *n, rl_error *err) {
    colw_state *s = n->state;
    s->cols = n->in[0].shape.dim[1];
    n->out[0].shape = n->in[0].shape;
    const rl_param_entry *e = rl_params_find(s->p, rl_node_opt_string(n, "tag"));
    if (!e || e->shape.dim[0] != s->cols) return rl_node_fail(n, err, "weight missing");
    s->off = e->offset;
    return 0;
}
static int colw_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    colw_state *s = n->state;
    const float *w = s->p->data + s->off;
    int64_t rows = n->in[0].shape.dim[0];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < s->cols; c++) rl_f32(&n->out[0])[r * s->cols + c] = rl_f32(&n->in[0])[r * s->cols + c] * w[c];
    return 0;
}
static int colw_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    colw_state *s = n->state;
    const float *w = s->p->data + s->off;
    float *gw = s->p->grad + s->off;
    int64_t rows = n->in[0].shape.dim[0];
    const float *dy = rl_f32(&n->grad_out[0]), *x = rl_f32(&n->in[0]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < s->cols; c++) {
            gw[c] += dy[r * s->cols + c] * x[r * s->cols + c];
            if (n->grad_in[0].data) rl_f32(&n->grad_in[0])[r * s->cols + c] += dy[r * s->cols + c] * w[c];
        }
    return 0;
}
static void colw_destroy(rl_node *n) { rl_free(n->state); }
static const rl_node_type t_colw = {"t_colw", "column weights", colw_in, 1, colw_out, 1, colw_opts, 2, 0,
                                    colw_init, colw_infer, colw_forward, colw_backward, colw_destroy};

/* tanh, in place allowed (backward reads the output only). */
static const rl_port_spec tanh_in[] = {{"x", RL_F32, -1, RL_PORT_NOT_IN_BACKWARD, 0, "input"}};
static const rl_port_spec tanh_out[] = {{"y", RL_F32, -1, 0, 1, "output"}};
static int same_infer(rl_node *n, rl_error *err) { (void)err; n->out[0].shape = n->in[0].shape; return 0; }
static int tanh_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    for (int64_t i = 0; i < cnt; i++) rl_f32(&n->out[0])[i] = tanhf(rl_f32(&n->in[0])[i]);
    return 0;
}
static int tanh_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    int64_t cnt = rl_tensor_numel(&n->out[0]);
    if (!n->grad_in[0].data) return 0;
    for (int64_t i = 0; i < cnt; i++) {
        float y = rl_f32(&n->out[0])[i];
        rl_f32(&n->grad_in[0])[i] += rl_f32(&n->grad_out[0])[i] * (1 - y * y);
    }
    return 0;
}
static const rl_node_type t_tanh = {"t_tanh", "tanh", tanh_in, 1, tanh_out, 1, NULL, 0, 0,
                                    NULL, same_infer, tanh_forward, tanh_backward, NULL};

/* no backward at all */
static const rl_node_type t_nograd = {"t_nograd", "tanh without backward", tanh_in, 1, tanh_out, 1, NULL, 0, 0,
                                      NULL, same_infer, tanh_forward, NULL, NULL};

/* mean of squares -> scalar; with a scratch buffer to exercise workspace. */
static const rl_port_spec msq_in[] = {{"x", RL_F32, -1, 0, 0, "input"}};
static const rl_port_spec msq_out[] = {{"loss", RL_F32, 1, 0, 0, "loss"}};
static int msq_infer(rl_node *n, rl_error *err) {
    n->out[0].shape = rl_shape1(1);
    return rl_node_request(n, RL_WS_SCRATCH_FWD, (size_t)rl_tensor_numel(&n->in[0]) * 4, err) < 0 ? -1 : 0;
}
static int msq_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    float *sq = n->ws[0].data;
    double acc = 0;
    for (int64_t i = 0; i < cnt; i++) { sq[i] = rl_f32(&n->in[0])[i] * rl_f32(&n->in[0])[i]; acc += sq[i]; }
    rl_f32(&n->out[0])[0] = (float)(acc / (double)cnt);
    rl_metric_set(ctx, n, "loss", acc / (double)cnt);
    return 0;
}
static int msq_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    float d = rl_f32(&n->grad_out[0])[0];
    if (n->grad_in[0].data)
        for (int64_t i = 0; i < cnt; i++) rl_f32(&n->grad_in[0])[i] += d * 2 * rl_f32(&n->in[0])[i] / (float)cnt;
    return 0;
}
static const rl_node_type t_msq = {"t_msq", "mean square", msq_in, 1, msq_out, 1, NULL, 0, 0,
                                   NULL, msq_infer, msq_forward, msq_backward, NULL};

/* plain SGD optimizer */
static const rl_option_spec sgd_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"},
                                          {"lr", RL_VAL_NUMBER, "0.1", "learning rate", NULL}};
static const rl_port_spec sgd_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int sgd_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    float lr = (float)rl_node_opt_number(n, "lr");
    for (size_t i = 0; i < p->numel; i++) p->data[i] -= lr * p->grad[i];
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_sgd = {"t_sgd", "sgd", sgd_in, 1, NULL, 0, sgd_opts, 2, RL_NODE_OPTIMIZER,
                                   NULL, NULL, sgd_forward, NULL, NULL};

/* i32 source for dtype errors */
static const rl_port_spec isrc_out[] = {{"y", RL_I32, 2, 0, 0, "ids"}};
static int isrc_infer(rl_node *n, rl_error *err) { (void)err; n->out[0].shape = rl_shape2(2, 2); return 0; }
static const rl_node_type t_isrc = {"t_isrc", "ints", NULL, 0, isrc_out, 1, NULL, 0, 0,
                                    NULL, isrc_infer, NULL, NULL, NULL};

/* ---- helpers ---- */

static rl_params *make_params(int64_t cols, const char *tag) {
    rl_params *p = rl_params_new("w", 7);
    rl_error e = {0};
    rl_params_add(p, tag, rl_shape1(cols), RL_INIT_UNIFORM, 1.0f, NULL, &e);
    return p;
}

static rl_node *add(rl_graph *g, const rl_node_type *t, const char *phase, rl_opts *o, rl_error *e) {
    return rl_graph_add(g, t, NULL, "test.lua:1", phase, o, e);
}

/* source -> colw -> tanh -> colw2 -> tanh -> msq -> sgd, optionally in two phases. */
static rl_graph *build_chain(rl_object *pobj, int two_phases, int64_t rows) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("chain");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "rows", rows);
    rl_opts_set_int(&o, "cols", 16);
    rl_node *s = add(g, &t_src, two_phases ? "rollout" : NULL, &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", pobj);
    rl_opts_set_string(&o, "tag", "a");
    rl_node *c1 = add(g, &t_colw, two_phases ? "update" : NULL, &o, &e);
    rl_opts_set_string(&o, "tag", "b");
    rl_node *t1 = add(g, &t_tanh, two_phases ? "update" : NULL, NULL, &e);
    rl_node *c2 = add(g, &t_colw, two_phases ? "update" : NULL, &o, &e);
    rl_node *t2 = add(g, &t_tanh, two_phases ? "update" : NULL, NULL, &e);
    rl_node *m = add(g, &t_msq, two_phases ? "update" : NULL, NULL, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", pobj);
    rl_opts_set_number(&o, "lr", 0.5);
    rl_node *opt = add(g, &t_sgd, two_phases ? "update" : NULL, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(s && c1 && t1 && c2 && t2 && m && opt, "%s", e.msg);
    rl_graph_connect(g, c1, 0, s, 0, &e);
    rl_graph_connect(g, t1, 0, c1, 0, &e);
    rl_graph_connect(g, c2, 0, t1, 0, &e);
    rl_graph_connect(g, t2, 0, c2, 0, &e);
    rl_graph_connect(g, m, 0, t2, 0, &e);
    rl_graph_connect(g, opt, 0, m, 0, &e);
    CHECK_MSG(!e.failed, "%s", e.msg);
    return g;
}

static rl_object *chain_params(void) {
    rl_params *p = make_params(16, "a");
    rl_error e = {0};
    rl_params_add(p, "b", rl_shape1(16), RL_INIT_UNIFORM, 1.0f, NULL, &e);
    return rl_params_object(p);
}

static void train(rl_graph *g, int steps, int two_phases, double *losses) {
    rl_run_ctx ctx = {0};
    rl_error e = {0};
    for (int s = 0; s < steps; s++) {
        ctx.step = s;
        ctx.n_metrics = 0;
        int rc = two_phases ? (rl_graph_run(g, "rollout", &ctx, &e) || rl_graph_run(g, "update", &ctx, &e) ||
                               rl_graph_run(g, "update", &ctx, &e))
                            : rl_graph_run(g, NULL, &ctx, &e);
        CHECK_MSG(rc == 0, "%s", e.msg);
        losses[s] = ctx.n_metrics ? ctx.metrics[0].value : NAN;
    }
}

static void test_train_planned_equals_unplanned(void) {
    double a[20], b[20];
    rl_object *pa = chain_params(), *pb = chain_params();
    rl_graph *ga = build_chain(pa, 0, 32), *gb = build_chain(pb, 0, 32);
    rl_error e = {0};
    rl_compile_opts planned = {0}, unplanned = {1};
    CHECK_MSG(rl_graph_compile(ga, &planned, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_graph_compile(gb, &unplanned, &e) == 0, "%s", e.msg);
    train(ga, 20, 0, a);
    train(gb, 20, 0, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    rl_params *p1 = rl_object_params(pa), *p2 = rl_object_params(pb);
    CHECK(memcmp(p1->data, p2->data, p1->numel * sizeof(float)) == 0);
    CHECK_MSG(a[19] < a[0] * 0.9, "loss %g -> %g", a[0], a[19]);
    const rl_plan_stats *st = rl_graph_plan_stats(ga);
    CHECK(st->arena_bytes < st->naive_bytes);
    CHECK(st->arena_bytes >= st->lower_bound_bytes);
    CHECK_MSG(st->arena_bytes <= st->lower_bound_bytes * 11 / 10, "arena %zu lb %zu", st->arena_bytes, st->lower_bound_bytes);
    CHECK(st->n_inplace >= 1);
    rl_graph_free(ga);
    rl_graph_free(gb);
    rl_object_release(pa);
    rl_object_release(pb);
}

/* Gradient through the whole graph equals a finite difference of the loss.
 * The "optimizer" here only snapshots the gradient, so the graph's backward
 * is what is checked. */
static float grabbed[64];
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    memcpy(grabbed, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {"t_grab", "grad snapshot", sgd_in, 1, NULL, 0, sgd_opts, 2, RL_NODE_OPTIMIZER,
                                    NULL, NULL, grab_forward, NULL, NULL};

static rl_graph *fd_graph;
static double fd_loss(void *ctx) {
    (void)ctx;
    rl_run_ctx rc = {0};
    rl_error e = {0};
    rl_graph_run(fd_graph, NULL, &rc, &e);
    return rc.metrics[0].value;
}

static void test_graph_gradient(void) {
    rl_object *po = chain_params();
    rl_params *p = rl_object_params(po);
    rl_graph *g = build_chain(po, 0, 8);
    rl_error e = {0};
    /* swap the sgd for the snapshot optimizer */
    rl_node *opt = rl_graph_find(g, "t_sgd");
    opt->type = &t_grab;
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    rl_run_ctx rc = {0};
    CHECK_MSG(rl_graph_run(g, NULL, &rc, &e) == 0, "%s", e.msg);
    float analytic[32];
    memcpy(analytic, grabbed, sizeof analytic);
    fd_graph = g;
    double worst = rl_test_gradcheck(p->data, p->numel, analytic, fd_loss, NULL, 1e-3, 0);
    CHECK_MSG(worst < 1e-2, "graph gradient rel err %g", worst);
    rl_graph_free(g);
    rl_object_release(po);
}

static void test_phases(void) {
    double a[6], b[6];
    rl_object *pa = chain_params(), *pb = chain_params();
    rl_graph *ga = build_chain(pa, 1, 16), *gb = build_chain(pb, 1, 16);
    rl_error e = {0};
    rl_compile_opts unplanned = {1};
    CHECK_MSG(rl_graph_compile(ga, NULL, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_graph_compile(gb, &unplanned, &e) == 0, "%s", e.msg);
    CHECK(rl_graph_phase_count(ga) == 2);
    train(ga, 6, 1, a);
    train(gb, 6, 1, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(a[5] < a[0]);
    rl_graph_free(ga);
    rl_graph_free(gb);
    rl_object_release(pa);
    rl_object_release(pb);
}

static void test_no_steady_state_allocation(void) {
    double l[3];
    rl_object *po = chain_params();
    rl_graph *g = build_chain(po, 1, 16);
    train(g, 1, 1, l); /* compiles */
    uint64_t before = rl_alloc_count();
    train(g, 3, 1, l);
    CHECK_MSG(rl_alloc_count() == before, "%llu allocations in steady state",
              (unsigned long long)(rl_alloc_count() - before));
    rl_graph_free(g);
    rl_object_release(po);
}

static void expect_error(rl_graph *g, const char *fragment) {
    rl_error e = {0};
    int rc = rl_graph_compile(g, NULL, &e);
    CHECK_MSG(rc != 0 && strstr(e.msg, fragment), "expected '%s', got rc=%d '%s'", fragment, rc, e.msg);
    CHECK_MSG(rc != 0 && strstr(e.msg, "test.lua:"), "no location in '%s'", e.msg);
}

static void test_errors(void) {
    rl_error e = {0};
    rl_opts o;
    /* unknown option with a suggestion */
    rl_graph *g = rl_graph_new("bad");
    rl_opts_init(&o);
    rl_opts_set_int(&o, "rowz", 3);
    CHECK(add(g, &t_src, NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "did you mean 'rows'") && strstr(e.msg, "test.lua:1"), "%s", e.msg);
    rl_opts_free(&o);
    /* wrong option kind */
    rl_opts_init(&o);
    rl_opts_set_string(&o, "rows", "three");
    CHECK(add(g, &t_src, NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "must be a integer") || strstr(e.msg, "must be an integer"), "%s", e.msg);
    rl_opts_free(&o);
    /* missing required option */
    CHECK(add(g, &t_colw, NULL, NULL, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "missing required option 'params'"), "%s", e.msg);
    /* unknown type */
    CHECK(rl_graph_add_named(g, "no_such_node_type", NULL, "x.lua:3", NULL, NULL, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "unknown node type 'no_such_node_type'") && strstr(e.msg, "x.lua:3"), "%s", e.msg);
    /* missing input */
    add(g, &t_tanh, NULL, NULL, &e);
    expect_error(g, "input 'x' is not connected");
    rl_graph_free(g);

    /* doubly connected input */
    g = rl_graph_new("bad");
    rl_node *s = add(g, &t_src, NULL, NULL, &e), *t = add(g, &t_tanh, NULL, NULL, &e);
    CHECK(rl_graph_connect(g, t, 0, s, 0, &e) == 0);
    CHECK(rl_graph_connect(g, t, 0, s, 0, &e) != 0);
    CHECK_MSG(strstr(e.msg, "connected twice"), "%s", e.msg);
    rl_graph_free(g);

    /* dtype and rank mismatch */
    g = rl_graph_new("bad");
    rl_node *is = add(g, &t_isrc, NULL, NULL, &e);
    t = add(g, &t_tanh, NULL, NULL, &e);
    rl_graph_connect(g, t, 0, is, 0, &e);
    expect_error(g, "must be f32, but 't_isrc.y' is i32");
    rl_graph_free(g);
    g = rl_graph_new("bad");
    s = add(g, &t_src, NULL, NULL, &e);
    rl_node *m = add(g, &t_msq, NULL, NULL, &e), *c = NULL;
    rl_object *po = chain_params();
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_opts_set_string(&o, "tag", "a");
    c = add(g, &t_colw, NULL, &o, &e);
    rl_opts_free(&o);
    rl_graph_connect(g, m, 0, s, 0, &e);
    rl_graph_connect(g, c, 0, m, 0, &e);
    expect_error(g, "must have rank 2");
    rl_graph_free(g);

    /* cycle */
    g = rl_graph_new("bad");
    rl_node *t1 = add(g, &t_tanh, NULL, NULL, &e), *t2 = add(g, &t_tanh, NULL, NULL, &e);
    rl_graph_connect(g, t1, 0, t2, 0, &e);
    rl_graph_connect(g, t2, 0, t1, 0, &e);
    expect_error(g, "cycle");
    rl_graph_free(g);

    /* phase order: an earlier phase reading a later one */
    g = rl_graph_new("bad");
    t1 = add(g, &t_tanh, "a", NULL, &e);
    s = add(g, &t_src, "b", NULL, &e);
    rl_graph_connect(g, t1, 0, s, 0, &e);
    expect_error(g, "later phase 'b'");
    rl_graph_free(g);

    /* gradient must flow through a node without backward */
    g = rl_graph_new("bad");
    s = add(g, &t_src, NULL, NULL, &e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_opts_set_string(&o, "tag", "a");
    c = add(g, &t_colw, NULL, &o, &e);
    rl_opts_free(&o);
    rl_node *ng = add(g, &t_nograd, NULL, NULL, &e);
    m = add(g, &t_msq, NULL, NULL, &e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *opt = add(g, &t_sgd, NULL, &o, &e);
    rl_opts_free(&o);
    rl_graph_connect(g, c, 0, s, 0, &e);
    rl_graph_connect(g, ng, 0, c, 0, &e);
    rl_graph_connect(g, m, 0, ng, 0, &e);
    rl_graph_connect(g, opt, 0, m, 0, &e);
    expect_error(g, "has no backward");
    rl_graph_free(g);
    rl_object_release(po);
}

/* A NaN loss stops the run naming the node and the step, before any update. */
static const rl_port_spec nan_out[] = {{"y", RL_F32, 2, 0, 0, "nan at (0-based) step 2"}};
static int nan_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    src_forward(n, ctx, err);
    if (ctx->step == 2) rl_f32(&n->out[0])[3] = NAN;
    return 0;
}
static const rl_node_type t_nansrc = {"t_nansrc", "nan source", NULL, 0, nan_out, 1, src_opts, 2, 0,
                                      NULL, src_infer, nan_forward, NULL, NULL};

static void test_nan_loss(void) {
    rl_error e = {0};
    rl_object *po = chain_params();
    rl_params *p = rl_object_params(po);
    rl_graph *g = rl_graph_new("nan");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "cols", 16);
    rl_node *s = add(g, &t_nansrc, NULL, &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_opts_set_string(&o, "tag", "a");
    rl_node *c = add(g, &t_colw, NULL, &o, &e);
    rl_node *m = rl_graph_add(g, &t_msq, "my_loss", "test.lua:9", NULL, NULL, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *opt = add(g, &t_sgd, NULL, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(s && c && m && opt, "%s", e.msg);
    rl_graph_connect(g, c, 0, s, 0, &e);
    rl_graph_connect(g, m, 0, c, 0, &e);
    rl_graph_connect(g, opt, 0, m, 0, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    float before[16];
    int rc = 0;
    for (int st = 0; st < 4 && !rc; st++) {
        ctx.step = st;
        memcpy(before, p->data, sizeof before);
        rc = rl_graph_run(g, NULL, &ctx, &e);
    }
    CHECK(rc != 0);
    CHECK_MSG(strstr(e.msg, "my_loss") && strstr(e.msg, "NaN at step 3") && strstr(e.msg, "test.lua:9"), "%s", e.msg);
    CHECK(memcmp(before, p->data, sizeof before) == 0);
    rl_graph_free(g);
    rl_object_release(po);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_train_planned_equals_unplanned();
    test_graph_gradient();
    test_phases();
    test_no_steady_state_allocation();
    test_errors();
    test_nan_loss();
    return rl_test_finish("test_graph");
}
