/* ce_loss through the graph: the loss against a direct double computation for
 * both means, a finite-difference check of the gradient that reaches the
 * log-probs' parameter set, run-time shapes smaller than the compiled ones, an
 * all-zero mask (loss 0, no gradient), no allocation in a steady step, the
 * errors that name the node, and loss and gradient against PyTorch
 * (tests/gen_ce_ref.py -> tests/ref/ce_loss.safetensors). */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "safetensors.h"
#include "testlib.h"

enum { BMAX = 4, TMAX = 7 };

static int64_t cur_b = BMAX, cur_t = TMAX;
static float mask_buf[BMAX * TMAX];
static float grabbed[BMAX * TMAX];

/* mfeed: the mask [cur_b, cur_t] (+ `wide` extra columns, for shape errors). */
static const rl_option_spec mfeed_opts[] = {{"wide", RL_VAL_INT, "0", "extra columns", NULL}};
static const rl_port_spec mfeed_out[] = {{"y", RL_F32, 2, 0, 0, "mask"}};
static int mfeed_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(BMAX, TMAX + rl_node_opt_int(n, "wide"));
    return 0;
}
static int mfeed_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    int64_t w = cur_t + rl_node_opt_int(n, "wide");
    n->out[0].shape = rl_shape2(cur_b, w);
    for (int64_t b = 0; b < cur_b; b++)
        for (int64_t t = 0; t < w; t++) rl_f32(&n->out[0])[b * w + t] = t < cur_t ? mask_buf[b * cur_t + t] : 1.0f;
    return 0;
}
static const rl_node_type t_mfeed = {.name = "t_mfeed", .doc = "mask feed", .outputs = mfeed_out, .n_outputs = 1,
                                     .options = mfeed_opts, .n_options = 1, .infer = mfeed_infer,
                                     .forward = mfeed_forward};

/* lpfeed: logprobs [cur_b, cur_t] = the first values of parameter "x"; backward adds dy to its gradient. */
static const rl_option_spec lp_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec lp_out[] = {{"y", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0, "logprobs"}};
static int lp_init(rl_node *n, rl_error *err) {
    return rl_node_use_params(n, rl_object_params(rl_node_opt_object(n, "params")), err);
}
static int lp_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(BMAX, TMAX);
    return 0;
}
static int lp_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    n->out[0].shape = rl_shape2(cur_b, cur_t);
    memcpy(n->out[0].data, n->params[0]->data, rl_tensor_nbytes(&n->out[0]));
    return 0;
}
static int lp_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy) return 0;
    for (int64_t i = 0; i < cur_b * cur_t; i++) n->params[0]->grad[i] += dy[i];
    return 0;
}
static const rl_node_type t_lp = {.name = "t_lp", .doc = "logprob feed", .outputs = lp_out, .n_outputs = 1,
                                  .options = lp_opts, .n_options = 1, .init = lp_init, .infer = lp_infer,
                                  .forward = lp_forward, .backward = lp_backward};

/* grab: an "optimizer" that copies the set's gradient out and zeroes it. */
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    memcpy(grabbed, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {.name = "t_grab", .doc = "grab gradient", .inputs = grab_in, .n_inputs = 1,
                                    .options = grab_opts, .n_options = 1, .flags = RL_NODE_OPTIMIZER,
                                    .forward = grab_forward};

typedef struct net {
    rl_graph *g;
    rl_params *p;
    rl_object *obj;
    rl_node *ce;
} net;

/* lp, mask -> ce_loss (mean) -> grab; NULL when a step fails (err filled). */
static int build(net *N, const char *mean, int wide, rl_error *e) {
    memset(N, 0, sizeof *N);
    N->g = rl_graph_new("ce");
    N->p = rl_params_new("pol", 1);
    rl_params_add(N->p, "x", rl_shape2(BMAX, TMAX), RL_INIT_ZEROS, 0, NULL, e);
    N->obj = rl_params_object(N->p);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", N->obj);
    rl_node *lp = rl_graph_add(N->g, &t_lp, "lp", NULL, NULL, &o, e);
    rl_node *grab = lp ? rl_graph_add(N->g, &t_grab, "grab", NULL, NULL, &o, e) : NULL;
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "wide", wide);
    rl_node *m = grab ? rl_graph_add(N->g, &t_mfeed, "mask", NULL, NULL, &o, e) : NULL;
    rl_opts_free(&o);
    rl_opts_init(&o);
    if (mean) rl_opts_set_string(&o, "mean", mean);
    N->ce = m ? rl_graph_add_named(N->g, "ce_loss", "ce", "sft.lua:9", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!N->ce) return -1;
    if (rl_graph_connect(N->g, N->ce, 0, lp, 0, e) || rl_graph_connect(N->g, N->ce, 1, m, 0, e) ||
        rl_graph_connect(N->g, grab, 0, N->ce, 0, e))
        return -1;
    rl_compile_opts co = {0};
    return rl_graph_compile(N->g, &co, e);
}

static void destroy(net *N) {
    rl_graph_free(N->g);
    if (N->obj) rl_object_release(N->obj);
}

static double metric(const rl_run_ctx *ctx, const char *name) {
    for (int i = 0; i < ctx->n_metrics; i++)
        if (!strcmp(ctx->metrics[i].node, "ce") && !strcmp(ctx->metrics[i].name, name)) return ctx->metrics[i].value;
    return NAN;
}

static double run_loss(net *N, rl_run_ctx *ctx) {
    rl_error e = {0};
    memset(ctx, 0, sizeof *ctx);
    if (rl_graph_run(N->g, NULL, ctx, &e)) {
        CHECK_MSG(0, "run: %s", e.msg);
        return NAN;
    }
    return metric(ctx, "loss");
}

static double fd_loss(void *p) {
    rl_run_ctx ctx;
    return run_loss(p, &ctx);
}

/* The reference in double, straight from the definition. */
static double ref_loss(const float *lp, int per_seq, double *tokens) {
    double tot = 0, cnt = 0, ssum = 0;
    int rows = 0;
    for (int64_t b = 0; b < cur_b; b++) {
        double rs = 0, rc = 0;
        for (int64_t t = 0; t < cur_t; t++) {
            rs += mask_buf[b * cur_t + t] * (double)lp[b * cur_t + t];
            rc += mask_buf[b * cur_t + t];
        }
        tot += rs;
        cnt += rc;
        if (rc > 0) ssum += rs / rc, rows++;
    }
    *tokens = cnt;
    if (per_seq) return rows ? -ssum / rows : 0.0;
    return cnt > 0 ? -tot / cnt : 0.0;
}

/* Row b supervises tokens [1 + b%2, t_end); row 2 has none (a row with no response). */
static void fill(net *N, uint64_t seed) {
    rl_test_fill(N->p->data, (size_t)(cur_b * cur_t), seed);
    for (int64_t i = 0; i < cur_b * cur_t; i++) N->p->data[i] = -1.5f + N->p->data[i];
    for (int64_t b = 0; b < cur_b; b++)
        for (int64_t t = 0; t < cur_t; t++)
            mask_buf[b * cur_t + t] = (b != 2 && t >= 1 + b % 2 && t < cur_t - (b % 3)) ? 1.0f : 0.0f;
}

static void check_mean(const char *mean, int per_seq) {
    net N;
    rl_error e = {0};
    CHECK_MSG(build(&N, mean, 0, &e) == 0, "%s", e.msg);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 1: shapes smaller than the compiled maxima */
        cur_b = pass ? 3 : BMAX;
        cur_t = pass ? 5 : TMAX;
        fill(&N, 11 + (uint64_t)pass);
        rl_run_ctx ctx;
        double loss = run_loss(&N, &ctx), tokens;
        double want = ref_loss(N.p->data, per_seq, &tokens);
        CHECK_MSG(fabs(loss - want) <= 1e-6 * fabs(want) + 1e-7, "%s: loss %.9g want %.9g", mean, loss, want);
        CHECK(metric(&ctx, "tokens") == tokens);
        float ana[BMAX * TMAX];
        memcpy(ana, grabbed, sizeof ana);
        /* Masked-out positions get exactly no gradient. */
        for (int64_t i = 0; i < cur_b * cur_t; i++)
            if (mask_buf[i] == 0.0f) CHECK(ana[i] == 0.0f);
        double rel = rl_test_gradcheck(N.p->data, (size_t)(cur_b * cur_t), ana, fd_loss, &N, 1e-2, 0);
        CHECK_MSG(rel < 1e-3, "%s pass %d: gradcheck rel err %g", mean, pass, rel);
        /* A steady step allocates nothing. */
        uint64_t before = rl_alloc_count();
        run_loss(&N, &ctx);
        CHECK(rl_alloc_count() == before);
    }
    /* No supervised token: loss 0 and a zero gradient, not 0/0. */
    cur_b = BMAX, cur_t = TMAX;
    fill(&N, 5);
    memset(mask_buf, 0, sizeof mask_buf);
    rl_run_ctx ctx;
    CHECK(run_loss(&N, &ctx) == 0.0);
    CHECK(metric(&ctx, "tokens") == 0.0);
    for (int i = 0; i < BMAX * TMAX; i++) CHECK(grabbed[i] == 0.0f);
    destroy(&N);
}

/* PyTorch reference: real log-probs, a mask with an empty row, both means. */
static void check_torch(void) {
    rl_error e = {0};
    rl_st_file *f = NULL;
    if (rl_st_open(rl_test_path("tests/ref/ce_loss.safetensors"), &f, &e)) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    const char *means[2] = {"token", "seq"};
    for (int k = 0; k < 2; k++) {
        net N;
        CHECK_MSG(build(&N, means[k], 0, &e) == 0, "%s", e.msg);
        cur_b = BMAX, cur_t = TMAX;
        float want_loss[1], want_grad[BMAX * TMAX];
        char lname[32], gname[32];
        snprintf(lname, sizeof lname, "loss_%s", means[k]);
        snprintf(gname, sizeof gname, "grad_%s", means[k]);
        CHECK_MSG(rl_st_read_f32(f, "logprobs", N.p->data, BMAX * TMAX, &e) == 0 &&
                      rl_st_read_f32(f, "mask", mask_buf, BMAX * TMAX, &e) == 0 &&
                      rl_st_read_f32(f, lname, want_loss, 1, &e) == 0 &&
                      rl_st_read_f32(f, gname, want_grad, BMAX * TMAX, &e) == 0,
                  "%s", e.msg);
        rl_run_ctx ctx;
        double loss = run_loss(&N, &ctx);
        CHECK_MSG(fabs(loss - want_loss[0]) <= 1e-6 * fabs(want_loss[0]), "%s: loss %.9g torch %.9g", means[k], loss,
                  (double)want_loss[0]);
        size_t worst = 0;
        double rel = rl_test_max_rel_err(grabbed, want_grad, BMAX * TMAX, 1e-6f, &worst);
        CHECK_MSG(rel < 1e-5, "%s: gradient rel err %g at %zu", means[k], rel, worst);
        destroy(&N);
    }
    rl_st_close(f);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    check_mean(NULL, 0); /* default: token mean */
    check_mean("seq", 1);
    check_torch();

    /* A bad option names the node and its location. */
    net N;
    rl_error e = {0};
    CHECK(build(&N, "tokens", 0, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'ce'") && strstr(e.msg, "sft.lua:9") && strstr(e.msg, "mean"), "%s", e.msg);
    destroy(&N);

    /* Mismatched shapes are a compile error naming both inputs. */
    e.msg[0] = 0;
    CHECK(build(&N, "token", 2, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'ce'") && strstr(e.msg, "logprobs") && strstr(e.msg, "mask"), "%s", e.msg);
    destroy(&N);
    return rl_test_finish("ce_loss");
}
