/* The basic nodes (linear, silu, add, mul, scale, mse_loss, regression_data)
 * run through a real graph: the gradient the graph's backward leaves in the
 * parameter set matches finite differences of the loss (so every node's
 * backward on the path is right), parameter declaration and init, shape and
 * option errors, and the seeded data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "kernels.h"
#include "testlib.h"

/* An optimizer that only snapshots the gradient and zeroes it, so a run
 * leaves the parameters untouched. */
static float grabbed[256];
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    if (p->numel <= 256) memcpy(grabbed, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {
    .name = "t_grab", .doc = "grad snapshot", .inputs = grab_in, .n_inputs = 1, .options = grab_opts,
    .n_options = 1, .flags = RL_NODE_OPTIMIZER, .forward = grab_forward,
};

static rl_node *node(rl_graph *g, const char *type, const char *label, rl_opts *o, rl_error *e) {
    rl_node *n = rl_graph_add_named(g, type, label, "test_nodes_basic.c:1", NULL, o, e);
    CHECK_MSG(n != NULL, "adding %s: %s", type, e->msg);
    return n;
}

static void link(rl_graph *g, rl_node *dst, int dp, rl_node *src, int sp) {
    rl_error e = {0};
    CHECK_MSG(src && dst && rl_graph_connect(g, dst, dp, src, sp, &e) == 0, "%s", e.msg);
}

static rl_node *linear(rl_graph *g, rl_object *po, const char *prefix, int64_t in, int64_t out, int bias) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_opts_set_string(&o, "prefix", prefix);
    rl_opts_set_int(&o, "inputs", in);
    rl_opts_set_int(&o, "outputs", out);
    rl_opts_set_bool(&o, "bias", bias);
    rl_error e = {0};
    rl_node *n = node(g, "linear", prefix, &o, &e);
    rl_opts_free(&o);
    return n;
}

static rl_node *data_node(rl_graph *g, int64_t batch, int64_t in, int64_t out, int64_t seed) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "batch", batch);
    rl_opts_set_int(&o, "inputs", in);
    rl_opts_set_int(&o, "outputs", out);
    rl_opts_set_int(&o, "seed", seed);
    rl_opts_set_int(&o, "hidden", 6);
    rl_error e = {0};
    rl_node *n = node(g, "regression_data", "data", &o, &e);
    rl_opts_free(&o);
    return n;
}

/* data -> fc1 -> silu ┐
 *      -> fc1b ───────┴ mul -> scale(0.5) -> add(+fc1) -> fc2 -> mse(., data.y) -> grab */
static rl_graph *build(rl_object *po) {
    rl_graph *g = rl_graph_new("basic");
    rl_error e = {0};
    rl_node *d = data_node(g, 4, 3, 2, 5);
    rl_node *fc1 = linear(g, po, "fc1", 3, 5, 1);
    rl_node *fc1b = linear(g, po, "fc1b", 3, 5, 0);
    rl_node *act = node(g, "silu", "act", NULL, &e);
    rl_node *mul = node(g, "mul", "mul", NULL, &e);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_number(&o, "factor", 0.5);
    rl_node *sc = node(g, "scale", "half", &o, &e);
    rl_opts_free(&o);
    rl_node *add = node(g, "add", "res", NULL, &e);
    rl_node *fc2 = linear(g, po, "fc2", 5, 2, 1);
    rl_node *mse = node(g, "mse_loss", "mse", NULL, &e);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *opt = rl_graph_add(g, &t_grab, "grab", "test_nodes_basic.c:1", NULL, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(opt != NULL, "%s", e.msg);
    link(g, fc1, 0, d, 0);
    link(g, fc1b, 0, d, 0);
    link(g, act, 0, fc1, 0);
    link(g, mul, 0, act, 0);
    link(g, mul, 1, fc1b, 0);
    link(g, sc, 0, mul, 0);
    link(g, add, 0, sc, 0);
    link(g, add, 1, fc1, 0);
    link(g, fc2, 0, add, 0);
    link(g, mse, 0, fc2, 0);
    link(g, mse, 1, d, 1);
    link(g, opt, 0, mse, 0);
    return g;
}

static rl_graph *fd_graph;
static double fd_loss(void *unused) {
    (void)unused;
    rl_run_ctx rc = {0};
    rl_error e = {0};
    if (rl_graph_run(fd_graph, NULL, &rc, &e)) return NAN;
    for (int i = 0; i < rc.n_metrics; i++)
        if (strcmp(rc.metrics[i].name, "loss") == 0) return rc.metrics[i].value;
    return NAN;
}

static void test_graph_gradient(void) {
    rl_params *p = rl_params_new("mlp", 11);
    rl_object *po = rl_params_object(p);
    rl_graph *g = build(po);
    rl_error e = {0};
    int ok = rl_graph_compile(g, NULL, &e) == 0;
    CHECK_MSG(ok, "%s", e.msg);
    if (!ok) { rl_graph_free(g); rl_object_release(po); return; }

    /* Declared tensors: fc1 weight+bias, fc1b weight only, fc2 weight+bias. */
    const rl_param_entry *w1 = rl_params_find(p, "fc1.weight"), *b1 = rl_params_find(p, "fc1.bias");
    CHECK(w1 && w1->shape.ndim == 2 && w1->shape.dim[0] == 5 && w1->shape.dim[1] == 3);
    CHECK(b1 && b1->shape.ndim == 1 && b1->shape.dim[0] == 5);
    CHECK(rl_params_find(p, "fc1b.weight") != NULL && rl_params_find(p, "fc1b.bias") == NULL);
    CHECK(p->numel == 15 + 5 + 15 + 10 + 2);
    /* Kaiming-uniform weights within 1/sqrt(fan_in), zero biases. */
    if (w1 && b1) {
        int in_bound = 1, zero = 1;
        for (int i = 0; i < 15; i++) in_bound &= fabsf(p->data[w1->offset + i]) <= 1.0f / sqrtf(3.0f);
        for (int i = 0; i < 5; i++) zero &= p->data[b1->offset + i] == 0.0f;
        CHECK(in_bound && zero);
    }
    /* Move every parameter off its init (biases are exactly zero) so the
       check runs at a generic point. */
    for (size_t i = 0; i < p->numel; i++) p->data[i] += 0.05f * (float)((i * 7) % 5) - 0.1f;

    rl_run_ctx rc = {0};
    CHECK_MSG(rl_graph_run(g, NULL, &rc, &e) == 0, "%s", e.msg);
    float analytic[256];
    memcpy(analytic, grabbed, p->numel * sizeof(float));
    double gn = 0;
    for (size_t i = 0; i < p->numel; i++) gn += fabs(analytic[i]);
    CHECK_MSG(gn > 1e-3, "no gradient reached the parameters");
    fd_graph = g;
    double worst = rl_test_gradcheck(p->data, p->numel, analytic, fd_loss, NULL, 2e-3, 0);
    CHECK_MSG(worst < 1e-2, "graph gradient rel err %g", worst);

    rl_graph_free(g);
    rl_object_release(po);
}

/* Same seed and step give the same batch; another step gives another; x
 * looks standard normal. Checked through two separate graphs. */
static void test_regression_data(void) {
    float xs[2][64 * 4], ys[2][64 * 2];
    for (int k = 0; k < 2; k++) {
        rl_graph *g = rl_graph_new("data");
        rl_node *d = data_node(g, 64, 4, 2, 9);
        rl_error e = {0};
        CHECK_MSG(rl_graph_mark_output(g, d, 0, &e) == 0 && rl_graph_mark_output(g, d, 1, &e) == 0, "%s", e.msg);
        CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
        rl_run_ctx rc = {0};
        rc.step = 3;
        CHECK_MSG(rl_graph_run(g, NULL, &rc, &e) == 0, "%s", e.msg);
        memcpy(xs[k], rl_f32(&d->out[0]), sizeof xs[k]);
        memcpy(ys[k], rl_f32(&d->out[1]), sizeof ys[k]);
        CHECK(d->out[0].shape.ndim == 2 && d->out[0].shape.dim[0] == 64 && d->out[0].shape.dim[1] == 4);
        CHECK(d->out[1].shape.ndim == 2 && d->out[1].shape.dim[1] == 2);
        if (k == 1) {
            rc.step = 4;
            CHECK(rl_graph_run(g, NULL, &rc, &e) == 0);
            CHECK(memcmp(rl_f32(&d->out[0]), xs[0], sizeof xs[0]) != 0);
        }
        rl_graph_free(g);
    }
    CHECK(memcmp(xs[0], xs[1], sizeof xs[0]) == 0);
    CHECK(memcmp(ys[0], ys[1], sizeof ys[0]) == 0);
    double s = 0, s2 = 0, ys2 = 0;
    for (int i = 0; i < 256; i++) { s += xs[0][i]; s2 += (double)xs[0][i] * xs[0][i]; }
    for (int i = 0; i < 128; i++) ys2 += (double)ys[0][i] * ys[0][i];
    CHECK_MSG(fabs(s / 256) < 0.25 && fabs(s2 / 256 - 1) < 0.3, "x mean %.3f var %.3f", s / 256, s2 / 256);
    CHECK_MSG(ys2 / 128 > 1e-3 && ys2 / 128 < 100, "teacher outputs are degenerate (mean square %g)", ys2 / 128);
}

/* Errors name the node and are values, not crashes. */
static void test_errors(void) {
    rl_error e = {0};
    rl_object *po = rl_params_object(rl_params_new("mlp", 1));
    {
        rl_graph *g = rl_graph_new("bad");
        rl_node *d = data_node(g, 4, 3, 2, 0);
        rl_node *fc = linear(g, po, "fc", 7, 2, 1); /* expects 7 inputs, gets 3 */
        link(g, fc, 0, d, 0);
        CHECK(rl_graph_compile(g, NULL, &e) != 0);
        CHECK_MSG(strstr(e.msg, "fc") && strstr(e.msg, "inputs = 7"), "message: %s", e.msg);
        rl_graph_free(g);
    }
    {
        rl_graph *g = rl_graph_new("bad2");
        rl_node *d = data_node(g, 4, 3, 2, 0);
        rl_node *mse = node(g, "mse_loss", "mse", NULL, &e);
        link(g, mse, 0, d, 0);
        link(g, mse, 1, d, 1); /* [4,3] vs [4,2] */
        CHECK(rl_graph_compile(g, NULL, &e) != 0);
        CHECK_MSG(strstr(e.msg, "mse") && strstr(e.msg, "same shape"), "message: %s", e.msg);
        rl_graph_free(g);
    }
    {
        rl_graph *g = rl_graph_new("bad3");
        rl_opts o;
        rl_opts_init(&o);
        rl_opts_set_object(&o, "params", po);
        rl_opts_set_string(&o, "prefix", "fc");
        rl_opts_set_int(&o, "inputs", 0);
        rl_opts_set_int(&o, "outputs", 2);
        rl_node *n = rl_graph_add_named(g, "linear", NULL, "x.lua:3", NULL, &o, &e);
        rl_opts_free(&o);
        CHECK(n == NULL);
        CHECK_MSG(strstr(e.msg, "x.lua:3") && strstr(e.msg, "inputs"), "message: %s", e.msg);
        rl_graph_free(g);
    }
    /* Compiling finalises a set; the next case needs a fresh one. */
    rl_object_release(po);
    po = rl_params_object(rl_params_new("mlp2", 1));
    {
        /* Same prefix, another shape: the parameter set refuses it. */
        rl_graph *g = rl_graph_new("bad4");
        rl_node *a = linear(g, po, "shared", 3, 2, 1);
        rl_opts o;
        rl_opts_init(&o);
        rl_opts_set_object(&o, "params", po);
        rl_opts_set_string(&o, "prefix", "shared");
        rl_opts_set_int(&o, "inputs", 4);
        rl_opts_set_int(&o, "outputs", 2);
        rl_node *b = rl_graph_add_named(g, "linear", "second", "x.lua:9", NULL, &o, &e);
        rl_opts_free(&o);
        CHECK(a != NULL && b == NULL);
        CHECK_MSG(strstr(e.msg, "second") && strstr(e.msg, "shared.weight"), "message: %s", e.msg);
        rl_graph_free(g);
    }
    rl_object_release(po);
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    test_graph_gradient();
    test_regression_data();
    test_errors();
    return rl_test_finish("test_nodes_basic");
}
