/* The RL nodes (shaper, entropy_shaper, group_filter, pg_loss, flow_loss)
 * through the graph: wiring and options against direct rl_math calls (whose
 * numerics test_rl_math checks), backward into the differentiable inputs,
 * metrics, run-time shapes smaller than the compiled ones, no allocation in a
 * steady step, and the bad-input errors that name the node. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "rl_math.h"
#include "testlib.h"

enum { NMAX = 8, TMAX = 12, G = 4 };
#define NEAR_OK(a, b) (fabs((a) - (b)) <= 1e-12 + 1e-9 * fabs(b))

/* ---- test source nodes ---- */

/* Run-time shape of every feed: [cur_n] or [cur_n, cur_t] (<= the maxima). */
static int64_t cur_n = NMAX, cur_t = TMAX;
static const char *pg_agg = "token_mean"; /* pg_loss aggregation of the pipeline */
enum { F_REWARD, F_MASK, F_SCORE, F_ENT, F_OLD, F_REF, F_WIDE, N_FEEDS };
static float feed_buf[N_FEEDS][NMAX * (TMAX + 1)];

static const rl_option_spec feed_opts[] = {
    {"slot", RL_VAL_INT, NULL, "feed index", NULL},
    {"rank", RL_VAL_INT, "2", "1: [N], 2: [N, T]", NULL},
    {"wide", RL_VAL_INT, "0", "extra columns (for shape errors)", NULL},
};
static const rl_port_spec feed_out[] = {{"y", RL_F32, -1, 0, 0, "data"}};
static rl_shape feed_shape(const rl_node *n, int64_t N, int64_t T) {
    return rl_node_opt_int(n, "rank") == 1 ? rl_shape1(N) : rl_shape2(N, T + rl_node_opt_int(n, "wide"));
}
static int feed_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = feed_shape(n, NMAX, TMAX);
    return 0;
}
static int feed_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    n->out[0].shape = feed_shape(n, cur_n, cur_t);
    memcpy(n->out[0].data, feed_buf[rl_node_opt_int(n, "slot")], rl_tensor_nbytes(&n->out[0]));
    return 0;
}
static const rl_node_type t_feed = {.name = "t_feed", .doc = "test feed", .outputs = feed_out, .n_outputs = 1,
                                    .options = feed_opts, .n_options = 3, .infer = feed_infer,
                                    .forward = feed_forward};

/* pfeed: y [N, T] = the first N*T values of parameter "x"; backward adds dy into its gradient. */
static const rl_option_spec pfeed_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec pfeed_out[] = {{"y", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0, "data"}};
static int pfeed_init(rl_node *n, rl_error *err) {
    return rl_node_use_params(n, rl_object_params(rl_node_opt_object(n, "params")), err);
}
static int pfeed_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(NMAX, TMAX);
    return 0;
}
static int pfeed_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    n->out[0].shape = rl_shape2(cur_n, cur_t);
    memcpy(n->out[0].data, n->params[0]->data, rl_tensor_nbytes(&n->out[0]));
    return 0;
}
static int pfeed_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    const float *dy = rl_f32(&n->grad_out[0]);
    if (!dy) return 0;
    for (int64_t i = 0; i < cur_n * cur_t; i++) n->params[0]->grad[i] += dy[i];
    return 0;
}
static const rl_node_type t_pfeed = {.name = "t_pfeed", .doc = "param feed", .outputs = pfeed_out, .n_outputs = 1,
                                     .options = pfeed_opts, .n_options = 1, .init = pfeed_init,
                                     .infer = pfeed_infer, .forward = pfeed_forward, .backward = pfeed_backward};

/* grab: an "optimizer" that copies its set's gradient out and zeroes it. */
static float grabbed[2][NMAX * TMAX];
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"},
                                           {"slot", RL_VAL_INT, "0", "where to copy", NULL}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    memcpy(grabbed[rl_node_opt_int(n, "slot")], p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {.name = "t_grab", .doc = "grab gradient", .inputs = grab_in, .n_inputs = 1,
                                    .options = grab_opts, .n_options = 2, .flags = RL_NODE_OPTIMIZER,
                                    .forward = grab_forward};

/* ---- helpers ---- */

static rl_node *feed(rl_graph *g, int slot, int rank, int wide) {
    rl_error e = {0};
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "slot", slot);
    rl_opts_set_int(&o, "rank", rank);
    rl_opts_set_int(&o, "wide", wide);
    rl_node *n = rl_graph_add(g, &t_feed, NULL, "rl.lua:1", NULL, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(n, "%s", e.msg);
    return n;
}

static rl_node *add(rl_graph *g, const char *type, const char *label, rl_opts *o, rl_error *e) {
    return rl_graph_add_named(g, type, label, "rl.lua:7", NULL, o, e);
}

static void conn(rl_graph *g, rl_node *dst, const char *port, rl_node *src, int sport) {
    rl_error e = {0};
    int p = rl_node_input_index(dst, port);
    CHECK_MSG(p >= 0 && rl_graph_connect(g, dst, p, src, sport, &e) == 0, "connect %s: %s", port, e.msg);
}

static double metric(const rl_run_ctx *ctx, const char *node, const char *name) {
    for (int i = 0; i < ctx->n_metrics; i++)
        if (!strcmp(ctx->metrics[i].node, node) && !strcmp(ctx->metrics[i].name, name)) return ctx->metrics[i].value;
    return NAN;
}

/* Deterministic inputs for the current run-time shape. */
static void fill_feeds(rl_params *pol, rl_params *flow, uint64_t seed) {
    int64_t N = cur_n, T = cur_t;
    static const float rw[NMAX] = {1, 0, 0.5f, 1, 0, 0, 0, 0};
    for (int64_t i = 0; i < N; i++) feed_buf[F_REWARD][i] = rw[i];
    rl_test_fill(feed_buf[F_SCORE], (size_t)(N * T), seed + 1);
    rl_test_fill(feed_buf[F_ENT], (size_t)(N * T), seed + 2);
    rl_test_fill(pol->data, (size_t)(N * T), seed + 3);
    rl_test_fill(feed_buf[F_OLD], (size_t)(N * T), seed + 4);
    rl_test_fill(feed_buf[F_REF], (size_t)(N * T), seed + 5);
    rl_test_fill(flow->data, (size_t)(N * T), seed + 6);
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < T; k++) {
            int64_t j = i * T + k;
            feed_buf[F_MASK][j] = (k >= 1 + i % 3 && k < T - i % 4) ? 1.0f : 0.0f;
            feed_buf[F_SCORE][j] = 2.0f + feed_buf[F_SCORE][j];
            feed_buf[F_ENT][j] = 1.0f + feed_buf[F_ENT][j];
            pol->data[j] = -1.0f + 0.5f * pol->data[j];
            feed_buf[F_OLD][j] = pol->data[j] + 0.3f * feed_buf[F_OLD][j];
            feed_buf[F_REF][j] = pol->data[j] + 0.2f * feed_buf[F_REF][j];
            flow->data[j] = 1.5f + flow->data[j];
        }
}

typedef struct pipeline {
    rl_graph *g;
    rl_params *pol, *flow;
    rl_object *pol_obj, *flow_obj;
    rl_node *keep, *shaper, *es, *pg, *fl;
} pipeline;

/* group_filter -> shaper (flow score, KL-in-reward) -> entropy_shaper -> pg_loss;
 * flow_loss on a second parameter set. */
static int build(pipeline *P, int unplanned) {
    rl_error e = {0};
    memset(P, 0, sizeof *P);
    P->g = rl_graph_new("rl");
    P->pol = rl_params_new("pol", 1);
    P->flow = rl_params_new("flow", 2);
    rl_params_add(P->pol, "x", rl_shape2(NMAX, TMAX), RL_INIT_ZEROS, 0, NULL, &e);
    rl_params_add(P->flow, "x", rl_shape2(NMAX, TMAX), RL_INIT_ZEROS, 0, NULL, &e);
    P->pol_obj = rl_params_object(P->pol);
    P->flow_obj = rl_params_object(P->flow);
    rl_graph *g = P->g;
    rl_node *reward = feed(g, F_REWARD, 1, 0), *mask = feed(g, F_MASK, 2, 0), *score = feed(g, F_SCORE, 2, 0);
    rl_node *ent = feed(g, F_ENT, 2, 0), *old = feed(g, F_OLD, 2, 0), *ref = feed(g, F_REF, 2, 0);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", P->pol_obj);
    rl_node *lp = rl_graph_add(g, &t_pfeed, "lp", NULL, NULL, &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", P->flow_obj);
    rl_node *tl = rl_graph_add(g, &t_pfeed, "tl", NULL, NULL, &o, &e);
    rl_opts_free(&o);

    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", G);
    P->keep = add(g, "group_filter", "filter", &o, &e);
    rl_opts_set_number(&o, "kl_coef", 0.1);
    rl_opts_set_number(&o, "gamma", 0.9);
    rl_opts_set_int(&o, "topk", 3);
    P->shaper = add(g, "shaper", "shaper", &o, &e);
    rl_opts_free(&o);
    P->es = add(g, "entropy_shaper", "eshape", NULL, &e);
    rl_opts_init(&o);
    rl_opts_set_number(&o, "clip", 0.15);
    rl_opts_set_number(&o, "clip_high", 0.28);
    rl_opts_set_number(&o, "dual_clip", 3);
    rl_opts_set_string(&o, "agg", pg_agg);
    rl_opts_set_number(&o, "kl_coef", 0.05);
    P->pg = add(g, "pg_loss", "pg", &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_number(&o, "soft_flow", 0.25);
    rl_opts_set_number(&o, "entropy_quantile", 0.5);
    rl_opts_set_int(&o, "group", G);
    P->fl = add(g, "flow_loss", "fl", &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(lp && tl && P->keep && P->shaper && P->es && P->pg && P->fl, "%s", e.msg);
    if (!(lp && tl && P->keep && P->shaper && P->es && P->pg && P->fl)) return -1;

    conn(g, P->keep, "reward", reward, 0);
    conn(g, P->shaper, "reward", reward, 0);
    conn(g, P->shaper, "mask", mask, 0);
    conn(g, P->shaper, "score", score, 0);
    conn(g, P->shaper, "logprobs", old, 0);
    conn(g, P->shaper, "ref_logprobs", ref, 0);
    conn(g, P->shaper, "keep", P->keep, 0);
    conn(g, P->es, "advantages", P->shaper, 0);
    conn(g, P->es, "entropy", ent, 0);
    conn(g, P->es, "mask", mask, 0);
    conn(g, P->pg, "logprobs", lp, 0);
    conn(g, P->pg, "old_logprobs", old, 0);
    conn(g, P->pg, "advantages", P->es, 0);
    conn(g, P->pg, "mask", mask, 0);
    conn(g, P->pg, "ref_logprobs", ref, 0);
    conn(g, P->pg, "entropy", ent, 0);
    conn(g, P->fl, "token_loss", tl, 0);
    conn(g, P->fl, "reward", reward, 0);
    conn(g, P->fl, "mask", mask, 0);
    conn(g, P->fl, "entropy", ent, 0);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", P->pol_obj);
    rl_node *o1 = rl_graph_add(g, &t_grab, NULL, NULL, NULL, &o, &e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", P->flow_obj);
    rl_opts_set_int(&o, "slot", 1);
    rl_node *o2 = rl_graph_add(g, &t_grab, NULL, NULL, NULL, &o, &e);
    rl_opts_free(&o);
    conn(g, o1, "loss", P->pg, 0);
    conn(g, o2, "loss", P->fl, 0);
    rl_graph_mark_output(g, P->keep, 0, &e);
    rl_graph_mark_output(g, P->shaper, 1, &e);
    rl_graph_mark_output(g, P->es, 0, &e);
    rl_graph_mark_output(g, P->pg, 0, &e);
    rl_graph_mark_output(g, P->fl, 0, &e);
    rl_compile_opts co = {unplanned};
    int rc = rl_graph_compile(g, &co, &e);
    CHECK_MSG(rc == 0, "compile: %s", e.msg);
    return rc;
}

static void destroy(pipeline *P) {
    rl_graph_free(P->g);
    rl_object_release(P->pol_obj);
    rl_object_release(P->flow_obj);
}

/* Runs the pipeline at the current run-time shape and checks every output
 * against the formulas called directly. */
static void check_pipeline(int unplanned, uint64_t seed) {
    pipeline P;
    if (build(&P, unplanned)) { destroy(&P); return; }
    fill_feeds(P.pol, P.flow, seed);
    rl_run_ctx ctx = {0};
    rl_error e = {0};
    CHECK_MSG(rl_graph_run(P.g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
    const int64_t N = cur_n, T = cur_t;
    const float *reward = feed_buf[F_REWARD], *mask = feed_buf[F_MASK];

    /* Expected values from rl_math with the nodes' options. */
    float keep[NMAX], adv[NMAX], flow[NMAX * TMAX], kl[NMAX * TMAX], A[NMAX * TMAX], g_pol[NMAX * TMAX] = {0};
    float g_flow[NMAX * TMAX], sort[TMAX];
    int32_t idx[TMAX];
    int64_t kept = rl_group_filter(reward, N, G, RL_FILTER_CORRECT, 1.0, keep);
    rl_flow_reward_cfg fc;
    rl_flow_reward_cfg_default(&fc);
    fc.topk = 3;
    rl_flow_reward_stats fs;
    CHECK(rl_flow_reward(feed_buf[F_SCORE], mask, NULL, N, T, &fc, flow, idx, &fs, &e) == 0);
    CHECK(rl_outcome_advantage(reward, keep, N, G, RL_ADV_GROUP_NORM, 1e-6, adv, &e) == 0);
    for (int64_t i = 0; i < N * T; i++)
        kl[i] = mask[i] > 0 ? (float)rl_kl_value(RL_KL_K1, (double)feed_buf[F_OLD][i] - feed_buf[F_REF][i]) : 0;
    rl_returns(adv, mask, flow, kl, 0.1, keep, N, T, 0.9, A);
    rl_entropy_shape(A, feed_buf[F_ENT], mask, N * T, 0.4, 2.0, A);
    rl_pg_cfg pc;
    rl_pg_cfg_default(&pc);
    pc.clip_low = 0.15;
    pc.clip_high = 0.28;
    pc.dual_clip = 3;
    CHECK(rl_agg_mode_parse(pg_agg, &pc.agg, &e) == 0);
    pc.norm_len = TMAX; /* the compiled T, even when the run-time T is smaller */
    pc.kl_coef = 0.05;
    rl_pg_stats ps;
    double pl = rl_pg_loss(P.pol->data, feed_buf[F_OLD], A, mask, feed_buf[F_REF], feed_buf[F_ENT], N, T, &pc, g_pol,
                           1.0f, &ps);
    rl_flow_loss_cfg lc = {0.25, 1.0, 0.5};
    double fl = rl_flow_loss(P.flow->data, reward, mask, feed_buf[F_ENT], N, T, &lc, g_flow, sort, NULL);

    rl_node *k = P.keep, *sh = P.shaper, *es = P.es, *pg = P.pg, *fn = P.fl;
    CHECK(k->out[0].shape.dim[0] == N && es->out[0].shape.dim[0] == N && es->out[0].shape.dim[1] == T);
    CHECK(memcmp(rl_f32(&k->out[0]), keep, (size_t)N * sizeof(float)) == 0);
    CHECK(memcmp(rl_f32(&sh->out[1]), flow, (size_t)(N * T) * sizeof(float)) == 0);
    CHECK_MSG(memcmp(rl_f32(&es->out[0]), A, (size_t)(N * T) * sizeof(float)) == 0, "advantages differ");
    CHECK_MSG(rl_f32(&pg->out[0])[0] == (float)pl, "pg loss %g vs %g", rl_f32(&pg->out[0])[0], pl);
    CHECK_MSG(rl_f32(&fn->out[0])[0] == (float)fl, "flow loss %g vs %g", rl_f32(&fn->out[0])[0], fl);
    CHECK_MSG(memcmp(grabbed[0], g_pol, (size_t)(N * T) * sizeof(float)) == 0, "policy gradient differs");
    CHECK_MSG(memcmp(grabbed[1], g_flow, (size_t)(N * T) * sizeof(float)) == 0, "flow gradient differs");
    /* Something must actually happen in this configuration. */
    double gn = 0;
    for (int64_t i = 0; i < N * T; i++) gn += fabs(grabbed[0][i]) + fabs(grabbed[1][i]);
    CHECK(gn > 0 && kept >= 1 && fs.n_rewarded > 0);

    CHECK(metric(&ctx, "filter", "kept_groups") == (double)kept);
    CHECK(metric(&ctx, "shaper", "flow_tokens") == (double)fs.n_rewarded);
    {
        double mc, mw;
        int64_t pairs;
        double sep = rl_flow_separation(feed_buf[F_SCORE], mask, reward, N, T, G, &mc, &mw, &pairs);
        if (pairs > 0) CHECK(NEAR_OK(metric(&ctx, "shaper", "flow_sep"), sep));
        CHECK(NEAR_OK(metric(&ctx, "shaper", "flow_score_correct"), mc));
        CHECK(NEAR_OK(metric(&ctx, "shaper", "flow_score_wrong"), mw));
    }
    CHECK(NEAR_OK(metric(&ctx, "pg", "clip_frac"), ps.clip_frac));
    CHECK(NEAR_OK(metric(&ctx, "pg", "approx_kl"), ps.approx_kl));
    CHECK(NEAR_OK(metric(&ctx, "pg", "entropy"), ps.entropy));
    CHECK(NEAR_OK(metric(&ctx, "fl", "flow_loss"), fl));
    CHECK(!isnan(metric(&ctx, "shaper", "kl_reward")) && !isnan(metric(&ctx, "eshape", "entropy_bonus")));

    /* A steady-state step allocates nothing and reproduces the first. */
    uint64_t before = rl_alloc_count();
    CHECK_MSG(rl_graph_run(P.g, NULL, &ctx, &e) == 0, "rerun: %s", e.msg);
    CHECK(rl_alloc_count() == before);
    CHECK(memcmp(grabbed[0], g_pol, (size_t)(N * T) * sizeof(float)) == 0);
    destroy(&P);
}

/* ---- bad input ---- */

/* Builds feed(s) -> node and compiles; returns the error message (static). */
static const char *compile_error(const char *type, rl_opts *o, const char *const *ports, const int *ranks,
                                 const int *wide, int n_ports) {
    static char msg[RL_ERROR_MSG];
    rl_error e = {0};
    rl_graph *g = rl_graph_new("bad");
    rl_node *n = add(g, type, "bad_node", o, &e);
    if (n) {
        for (int p = 0; p < n_ports; p++) conn(g, n, ports[p], feed(g, p, ranks[p], wide[p]), 0);
        for (int p = 0; p < n->type->n_outputs; p++) rl_graph_mark_output(g, n, p, &e);
        if (rl_graph_compile(g, NULL, &e) == 0) e.msg[0] = '\0';
    }
    snprintf(msg, sizeof msg, "%s", e.msg);
    rl_graph_free(g);
    return msg;
}

static void test_bad_input(void) {
    const char *sp[] = {"reward", "mask", "score"};
    int r3[] = {1, 2, 2}, w0[] = {0, 0, 0}, w1[] = {0, 0, 1};
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", G);
    /* The shaper wired to a score of another shape. */
    const char *m = compile_error("shaper", &o, sp, r3, w1, 3);
    CHECK_MSG(strstr(m, "bad_node") && strstr(m, "rl.lua:7") && strstr(m, "'score'") && strstr(m, "[8, 13]"), "%s", m);
    /* N not a multiple of the group. */
    rl_opts_set_int(&o, "group", 3);
    m = compile_error("shaper", &o, sp, r3, w0, 3);
    CHECK_MSG(strstr(m, "groups of 3") && strstr(m, "bad_node"), "%s", m);
    /* KL in the reward without log-probs. */
    rl_opts_set_int(&o, "group", G);
    rl_opts_set_number(&o, "kl_coef", 0.1);
    m = compile_error("shaper", &o, sp, r3, w0, 3);
    CHECK_MSG(strstr(m, "ref_logprobs"), "%s", m);
    rl_opts_free(&o);
    /* Unknown option values fail at add time, naming the node. */
    rl_error e = {0};
    rl_graph *g = rl_graph_new("bad2");
    rl_opts_init(&o);
    rl_opts_set_string(&o, "estimator", "gae");
    CHECK(add(g, "shaper", "s1", &o, &e) == NULL && strstr(e.msg, "'gae'") && strstr(e.msg, "s1"));
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_string(&o, "agg", "mean");
    CHECK(add(g, "pg_loss", "p1", &o, &e) == NULL && strstr(e.msg, "'mean'") && strstr(e.msg, "p1"));
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_number(&o, "dual_clip", 0.5);
    CHECK(add(g, "pg_loss", "p2", &o, &e) == NULL && strstr(e.msg, "dual_clip"));
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_string(&o, "by", "acc");
    CHECK(add(g, "group_filter", "f1", &o, &e) == NULL && strstr(e.msg, "acc"));
    rl_opts_free(&o);
    rl_graph_free(g);
    /* flow_loss: entropy quantile without an entropy input; pg_loss: mismatched advantages. */
    const char *fp[] = {"token_loss", "reward", "mask"};
    int fr[] = {2, 1, 2};
    rl_opts_init(&o);
    rl_opts_set_number(&o, "entropy_quantile", 0.5);
    m = compile_error("flow_loss", &o, fp, fr, w0, 3);
    CHECK_MSG(strstr(m, "entropy") && strstr(m, "bad_node"), "%s", m);
    rl_opts_free(&o);
    const char *pp[] = {"logprobs", "old_logprobs", "advantages", "mask"};
    int pr[] = {2, 2, 2, 2}, pw[] = {0, 0, 1, 0};
    m = compile_error("pg_loss", NULL, pp, pr, pw, 4);
    CHECK_MSG(strstr(m, "'advantages'") && strstr(m, "bad_node"), "%s", m);
    /* A NaN advantage reaching the loss stops the run, naming the node and the step. */
    pipeline P;
    cur_n = NMAX;
    cur_t = TMAX;
    if (build(&P, 0) == 0) {
        fill_feeds(P.pol, P.flow, 5);
        feed_buf[F_REF][3] = NAN;
        feed_buf[F_MASK][3] = 1;
        rl_run_ctx ctx = {.step = 17 /* shown as step 18: messages count from 1 */};
        CHECK(rl_graph_run(P.g, NULL, &ctx, &e) == -1);
        CHECK_MSG(strstr(e.msg, "step 18") && strstr(e.msg, "shaper"), "%s", e.msg);
    }
    destroy(&P);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    cur_n = NMAX, cur_t = TMAX;
    check_pipeline(0, 100);
    check_pipeline(1, 100);
    /* Run time smaller than compile time: one group of 4, 10 positions. */
    cur_n = 4, cur_t = 10;
    check_pipeline(0, 200);
    pg_agg = "seq_mean_token_sum_norm";
    check_pipeline(0, 300);
    pg_agg = "seq_mean_token_mean";
    check_pipeline(1, 400);
    test_bad_input();
    return rl_test_finish("test_rl_nodes");
}
