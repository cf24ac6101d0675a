/* The repeat_each node: per-prompt data copied to its G rollout rows.
 * - rows of f32 / i32 without counts, and runs of rows with counts (images of
 *   different sizes, one with no rows), and a smaller batch at run time;
 * - backward sums the G copies: graph gradient vs finite differences;
 * - a steady-state run allocates nothing;
 * - errors: times < 1, counts that do not add up to the rows or are negative. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "testlib.h"

/* A source node with fixed outputs: x f32 [R, C] from a trainable parameter
 * set (so gradients flow into it) and counts i32 [B] from a static array
 * (its length shrinks with src_items at run time). */
enum { R_MAX = 6, C = 3, B_MAX = 4 };
static int32_t src_counts[B_MAX];
static int64_t src_rows = R_MAX, src_items = B_MAX;

static const rl_port_spec src_out[] = {
    {"x", RL_F32, 2, 0, 0, "values"},
    {"counts", RL_I32, 1, 0, 0, "rows per item"},
};
static const rl_option_spec src_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static int src_init(rl_node *n, rl_error *err) {
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    size_t off;
    if (rl_params_add(p, "x", rl_shape2(R_MAX, C), RL_INIT_UNIFORM, 1.0f, &off, err)) return -1;
    return rl_node_use_params(n, p, err);
}
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].dtype = RL_F32;
    n->out[0].shape = rl_shape2(R_MAX, C);
    n->out[1].dtype = RL_I32;
    n->out[1].shape = rl_shape1(B_MAX);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = n->params[0];
    n->out[0].shape = rl_shape2(src_rows, C);
    n->out[1].shape = rl_shape1(src_items);
    memcpy(n->out[0].data, p->data, (size_t)(src_rows * C) * sizeof(float));
    memcpy(n->out[1].data, src_counts, (size_t)src_items * sizeof(int32_t));
    return 0;
}
static int src_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    const float *g = rl_f32(&n->grad_out[0]);
    if (!g) return 0;
    for (int64_t i = 0; i < src_rows * C; i++) n->params[0]->grad[i] += g[i];
    return 0;
}
static const rl_node_type t_src = {
    .name = "t_src", .doc = "fixed source", .outputs = src_out, .n_outputs = 2, .options = src_opts,
    .n_options = 1, .init = src_init, .infer = src_infer, .forward = src_forward, .backward = src_backward,
};

/* loss = sum_i w_i * y_i with fixed w: d(loss)/dy = w, a generic direction. */
static const rl_port_spec loss_in[] = {{"y", RL_F32, 2, 0, 0, "values"}};
static const rl_port_spec loss_out[] = {{"loss", RL_F32, 1, 0, 0, "scalar"}};
static float weight(int64_t i) { return 0.3f + 0.17f * (float)((i * 5) % 7) - 0.1f * (float)(i % 3); }
static int loss_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].dtype = RL_F32;
    n->out[0].shape = rl_shape1(1);
    return 0;
}
static int loss_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    double s = 0;
    const float *y = rl_f32(&n->in[0]);
    for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++) s += (double)weight(i) * y[i];
    rl_f32(&n->out[0])[0] = (float)s;
    rl_metric_set(ctx, n, "loss", s);
    return 0;
}
static int loss_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    if (!n->need_grad_in[0]) return 0;
    float d = rl_f32(&n->grad_out[0])[0];
    float *g = rl_f32(&n->grad_in[0]);
    for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++) g[i] += d * weight(i);
    return 0;
}
static const rl_node_type t_loss = {
    .name = "t_loss", .doc = "weighted sum", .inputs = loss_in, .n_inputs = 1, .outputs = loss_out,
    .n_outputs = 1, .infer = loss_infer, .forward = loss_forward, .backward = loss_backward,
};

/* An optimizer that only snapshots the gradient and zeroes it. */
static float grabbed[R_MAX * C];
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    memcpy(grabbed, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {
    .name = "t_grab", .doc = "grad snapshot", .inputs = grab_in, .n_inputs = 1, .options = grab_opts,
    .n_options = 1, .flags = RL_NODE_OPTIMIZER, .forward = grab_forward,
};

typedef struct net {
    rl_graph *g;
    rl_object *po;
    rl_node *src, *rep, *rep_i, *loss;
} net;

static rl_node *add(rl_graph *g, const rl_node_type *t, const char *label, rl_opts *o) {
    rl_error e = {0};
    rl_node *n = rl_graph_add(g, t, label, "test_repeat_each.c:1", NULL, o, &e);
    CHECK_MSG(n != NULL, "adding %s: %s", label, e.msg);
    return n;
}

static void link(rl_graph *g, rl_node *dst, int dp, rl_node *src, int sp) {
    rl_error e = {0};
    CHECK_MSG(src && dst && rl_graph_connect(g, dst, dp, src, sp, &e) == 0, "%s", e.msg);
}

static rl_node *repeat(rl_graph *g, const char *label, int64_t times) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "times", times);
    rl_node *n = add(g, rl_node_type_find("repeat_each"), label, &o);
    rl_opts_free(&o);
    return n;
}

/* src -> repeat(x, counts?) -> loss -> grab; plus repeat of the counts (i32). */
static int build(net *t, int64_t times, int with_counts) {
    memset(t, 0, sizeof *t);
    t->g = rl_graph_new("repeat");
    t->po = rl_params_object(rl_params_new("src", 3));
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", t->po);
    t->src = add(t->g, &t_src, "src", &o);
    rl_node *grab = add(t->g, &t_grab, "grab", &o);
    rl_opts_free(&o);
    t->rep = repeat(t->g, "rep", times);
    t->rep_i = repeat(t->g, "rep_counts", times);
    t->loss = add(t->g, &t_loss, "loss", NULL);
    link(t->g, t->rep, 0, t->src, 0);
    if (with_counts) link(t->g, t->rep, 1, t->src, 1);
    link(t->g, t->rep_i, 0, t->src, 1);
    link(t->g, t->loss, 0, t->rep, 0);
    link(t->g, grab, 0, t->loss, 0);
    rl_error e = {0};
    /* Outputs, so their buffers still hold the values after a run. */
    CHECK_MSG(rl_graph_mark_output(t->g, t->rep_i, 0, &e) == 0 && rl_graph_mark_output(t->g, t->rep, 0, &e) == 0,
              "%s", e.msg);
    int ok = rl_graph_compile(t->g, NULL, &e) == 0;
    CHECK_MSG(ok, "%s", e.msg);
    return ok ? 0 : -1;
}

static void destroy(net *t) {
    rl_graph_free(t->g);
    rl_object_release(t->po);
}

static double run_loss(void *ctx) {
    net *t = ctx;
    rl_run_ctx rc = {0};
    rl_error e = {0};
    if (rl_graph_run(t->g, NULL, &rc, &e)) return NAN;
    for (int i = 0; i < rc.n_metrics; i++)
        if (strcmp(rc.metrics[i].name, "loss") == 0) return rc.metrics[i].value;
    return NAN;
}

/* Expected layout: item b's rows, times copies, then item b+1's. */
static void check_forward(net *t, int64_t times, int with_counts) {
    const float *x = rl_object_params(t->po)->data;
    const rl_tensor *y = &t->rep->out[0];
    int64_t items = with_counts ? src_items : src_rows;
    CHECK(y->dtype == RL_F32 && y->shape.ndim == 2 && y->shape.dim[0] == src_rows * times && y->shape.dim[1] == C);
    const float *yp = rl_f32(y);
    int64_t row = 0, out = 0, bad = 0;
    for (int64_t b = 0; b < items; b++) {
        int64_t len = with_counts ? src_counts[b] : 1;
        for (int64_t g = 0; g < times; g++)
            for (int64_t r = 0; r < len; r++, out++) bad += memcmp(yp + out * C, x + (row + r) * C, C * sizeof(float)) != 0;
        row += len;
    }
    CHECK_MSG(bad == 0 && out == src_rows * times, "%lld rows misplaced", (long long)bad);
    /* The i32 counts repeated as rows: count b at rows b*times .. b*times+times-1. */
    const rl_tensor *ci = &t->rep_i->out[0];
    CHECK(ci->dtype == RL_I32 && ci->shape.ndim == 1 && ci->shape.dim[0] == src_items * times);
    int ok = 1;
    for (int64_t i = 0; i < src_items * times; i++) ok &= rl_i32(ci)[i] == src_counts[i / times];
    CHECK(ok);
}

static void test_case(int64_t times, int with_counts) {
    net t;
    src_rows = R_MAX;
    src_items = B_MAX;
    const int32_t counts[B_MAX] = {2, 0, 1, 3};
    memcpy(src_counts, counts, sizeof counts);
    if (build(&t, times, with_counts)) { destroy(&t); return; }
    rl_params *p = rl_object_params(t.po);
    double l = run_loss(&t);
    CHECK(isfinite(l));
    check_forward(&t, times, with_counts);

    float analytic[R_MAX * C];
    memcpy(analytic, grabbed, sizeof analytic);
    /* Each element's gradient is the sum of the weights of its copies. */
    double worst = rl_test_gradcheck(p->data, p->numel, analytic, run_loss, &t, 1e-2, 0);
    CHECK_MSG(worst < 1e-3, "times %lld counts %d: gradient rel err %g", (long long)times, with_counts, worst);

    /* Smaller batch in the same plan: 2 items, 2 rows (counts {2, 0}). */
    src_rows = 2;
    src_items = 2;
    CHECK(isfinite(run_loss(&t)));
    check_forward(&t, times, with_counts);

    /* Steady state allocates nothing. */
    uint64_t before = rl_alloc_count();
    run_loss(&t);
    CHECK(rl_alloc_count() == before);

    /* counts that do not add up to the rows: one error naming the node. */
    if (with_counts) {
        src_counts[1] = 1;
        rl_run_ctx rc = {0};
        rl_error e = {0};
        CHECK(rl_graph_run(t.g, NULL, &rc, &e) != 0);
        CHECK_MSG(strstr(e.msg, "rep") && strstr(e.msg, "counts add up to 3 rows but 'x' has 2"), "message: %s", e.msg);
        src_counts[1] = -1;
        src_counts[0] = 3;
        CHECK(rl_graph_run(t.g, NULL, &rc, &e) != 0);
        CHECK_MSG(strstr(e.msg, "negative"), "message: %s", e.msg);
    }
    destroy(&t);
}

static void test_errors(void) {
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "times", 0);
    rl_error e = {0};
    CHECK(rl_graph_add(g, rl_node_type_find("repeat_each"), "r0", "x.lua:4", NULL, &o, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "x.lua:4") && strstr(e.msg, "times"), "message: %s", e.msg);
    rl_opts_free(&o);
    rl_graph_free(g);

    /* A [1] input (a loss) is one row. */
    g = rl_graph_new("bad2");
    rl_object *po = rl_params_object(rl_params_new("src", 3));
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *src = add(g, &t_src, "src", &o);
    rl_node *grab = add(g, &t_grab, "grab", &o);
    rl_opts_free(&o);
    rl_node *loss = add(g, &t_loss, "loss", NULL);
    rl_node *r = repeat(g, "rep_scalar", 2);
    link(g, loss, 0, src, 0);
    link(g, grab, 0, loss, 0);
    link(g, r, 0, loss, 0); /* loss is [1]: fine, one row */
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    CHECK(r->out[0].shape.ndim == 1 && r->out[0].shape.dim[0] == 2);
    rl_graph_free(g);
    rl_object_release(po);
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    test_case(3, 1);
    test_case(2, 0);
    test_case(1, 1);
    test_errors();
    return rl_test_finish("test_repeat_each");
}
