/* AdamW, schedules and clipping against torch.optim.AdamW +
 * clip_grad_norm_ (tests/gen_adamw_ref.py -> tests/ref/adamw.safetensors),
 * plus the edge cases of each piece. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adamw.h"
#include "alloc.h"
#include "graph.h"
#include "optimizer.h"
#include "state.h"
#include "safetensors.h"
#include "testlib.h"

static double meta_num(const rl_st_file *f, const char *cs, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "%s.%s", cs, key);
    const char *v = rl_st_metadata(f, k);
    CHECK_MSG(v != NULL, "metadata %s missing", k);
    return v ? strtod(v, NULL) : NAN;
}

static float *read_tensor(const rl_st_file *f, const char *cs, const char *name, size_t n) {
    char k[64];
    snprintf(k, sizeof k, "%s.%s", cs, name);
    float *x = rl_malloc(n * sizeof(float));
    rl_error err = {0};
    int rc = x ? rl_st_read_f32(f, k, x, n, &err) : -1;
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) {
        rl_free(x);
        return NULL;
    }
    return x;
}

static void run_reference_case(const rl_st_file *f, const char *cs) {
    const rl_st_info *ini = NULL;
    char k[64];
    snprintf(k, sizeof k, "%s.init", cs);
    ini = rl_st_find(f, k);
    CHECK(ini != NULL);
    if (!ini) return;
    size_t P = (size_t)ini->shape.dim[0];
    size_t N = (size_t)meta_num(f, cs, "steps");
    rl_adamw_hparams h = {meta_num(f, cs, "beta1"), meta_num(f, cs, "beta2"), meta_num(f, cs, "eps"),
                          meta_num(f, cs, "weight_decay")};
    rl_lr_schedule sch = {RL_LR_CONSTANT, meta_num(f, cs, "lr"), meta_num(f, cs, "min_lr"),
                          (int64_t)meta_num(f, cs, "warmup"), (int64_t)meta_num(f, cs, "decay_steps")};
    snprintf(k, sizeof k, "%s.schedule", cs);
    CHECK(rl_lr_kind_parse(rl_st_metadata(f, k), &sch.kind) == 0);
    double clip = meta_num(f, cs, "clip");

    float *p = read_tensor(f, cs, "init", P), *grads = read_tensor(f, cs, "grads", N * P);
    float *want = read_tensor(f, cs, "params", N * P), *norms = read_tensor(f, cs, "norms", N);
    float *lrs = read_tensor(f, cs, "lrs", N);
    float *g = rl_malloc(P * sizeof(float));
    rl_adamw st;
    rl_error err = {0};
    CHECK(rl_adamw_init(&st, P, &err) == 0);
    if (p && grads && want && norms && lrs && g) {
        double worst = 0;
        for (size_t s = 0; s < N; s++) {
            memcpy(g, grads + s * P, P * sizeof(float));
            double lr = rl_lr_at(&sch, st.t);
            double norm = rl_clip_grad_norm(g, P, clip);
            if (clip <= 0) norm = rl_grad_norm(g, P);
            CHECK_MSG(fabs(lr - lrs[s]) <= 1e-6 * lrs[s], "case %s step %zu: lr %.9g vs %.9g", cs, s, lr, lrs[s]);
            CHECK_MSG(fabs(norm - norms[s]) <= 1e-5 * norms[s], "case %s step %zu: norm %.9g vs %.9g", cs, s, norm,
                      norms[s]);
            rl_adamw_step(&st, &h, lr, p, g);
            size_t wi;
            double e = rl_test_max_rel_err(p, want + s * P, P, 1e-2f, &wi);
            if (e > worst) worst = e;
            CHECK_MSG(e <= 1e-5, "case %s step %zu: rel err %.3g at %zu (%.9g vs %.9g)", cs, s, e, wi, p[wi],
                      want[s * P + wi]);
        }
        CHECK(st.t == (int64_t)N);
        printf("adamw case %s: %zu steps, %zu params, max rel err %.3g\n", cs, N, P, worst);
    }
    rl_adamw_free(&st);
    rl_free(p);
    rl_free(grads);
    rl_free(want);
    rl_free(norms);
    rl_free(lrs);
    rl_free(g);
}

static void test_reference(void) {
    rl_st_file *f = NULL;
    rl_error err = {0};
    CHECK_MSG(rl_st_open(rl_test_path("tests/ref/adamw.safetensors"), &f, &err) == 0, "%s", err.msg);
    if (!f) return;
    run_reference_case(f, "a");
    run_reference_case(f, "b");
    rl_st_close(f);
}

static void test_schedule(void) {
    rl_lr_schedule s = {RL_LR_COSINE, 1.0, 0.1, 4, 10};
    CHECK(fabs(rl_lr_at(&s, 0) - 0.25) < 1e-12);
    CHECK(fabs(rl_lr_at(&s, 3) - 1.0) < 1e-12);
    CHECK(fabs(rl_lr_at(&s, 4) - 1.0) < 1e-12);            /* cosine starts at the peak */
    CHECK(fabs(rl_lr_at(&s, 9) - 0.55) < 1e-12);           /* halfway: (1 + 0.1) / 2 */
    CHECK(fabs(rl_lr_at(&s, 14) - 0.1) < 1e-12);           /* end of decay */
    CHECK(fabs(rl_lr_at(&s, 1000) - 0.1) < 1e-12);         /* constant after the end */
    for (int64_t i = 4; i < 14; i++) CHECK(rl_lr_at(&s, i + 1) < rl_lr_at(&s, i));
    s.decay_steps = 0;
    CHECK(rl_lr_at(&s, 100) == 1.0);                        /* no decay */
    rl_lr_schedule c = {RL_LR_CONSTANT, 0.5, 0.0, 0, 10};
    CHECK(rl_lr_at(&c, 0) == 0.5 && rl_lr_at(&c, 50) == 0.5);
    c.warmup = 2;
    CHECK(rl_lr_at(&c, 0) == 0.25 && rl_lr_at(&c, 1) == 0.5 && rl_lr_at(&c, 2) == 0.5);
    rl_lr_kind k;
    CHECK(rl_lr_kind_parse("cosine", &k) == 0 && k == RL_LR_COSINE);
    CHECK(rl_lr_kind_parse("linear", &k) == -1);
}

static void test_clip(void) {
    float g[5] = {3, 4, 0, 0, 0};
    CHECK(fabs(rl_clip_grad_norm(g, 5, 10.0) - 5.0) < 1e-12);
    CHECK(g[0] == 3 && g[1] == 4); /* under the threshold: untouched */
    CHECK(fabs(rl_clip_grad_norm(g, 5, 1.0) - 5.0) < 1e-12);
    CHECK(fabs(g[0] - 3.0 / (5.0 + 1e-6)) < 1e-7 && fabs(rl_grad_norm(g, 5) - 1.0) < 1e-6);
    float h[2] = {3, 4};
    CHECK(rl_clip_grad_norm(h, 2, 0.0) == 5.0 && h[0] == 3); /* clip off */
    float bad[3] = {1, NAN, 2};
    CHECK(isnan(rl_clip_grad_norm(bad, 3, 1.0)) && bad[0] == 1);
    CHECK(rl_grad_norm(NULL, 0) == 0.0);
}

static void test_state(void) {
    rl_adamw a, b;
    rl_error err = {0};
    CHECK(rl_adamw_init(&a, 6, &err) == 0 && rl_adamw_init(&b, 6, &err) == 0);
    rl_adamw_hparams h = {0.9, 0.999, 1e-8, 0.01};
    float pa[6], pb[6], g[6];
    rl_test_fill(pa, 6, 1);
    memcpy(pb, pa, sizeof pa);
    for (int s = 0; s < 3; s++) {
        rl_test_fill(g, 6, 10 + s);
        rl_adamw_step(&a, &h, 1e-2, pa, g);
    }
    /* Resume b from a's state: the next steps must be bit-identical. */
    int64_t t;
    const float *m, *v;
    size_t n;
    rl_adamw_get_state(&a, &t, &m, &v, &n);
    CHECK(t == 3 && n == 6);
    CHECK(rl_adamw_set_state(&b, t, m, v, n, &err) == 0);
    memcpy(pb, pa, sizeof pa);
    for (int s = 0; s < 2; s++) {
        rl_test_fill(g, 6, 20 + s);
        rl_adamw_step(&a, &h, 1e-2, pa, g);
        rl_adamw_step(&b, &h, 1e-2, pb, g);
    }
    CHECK(memcmp(pa, pb, sizeof pa) == 0 && a.t == 5 && b.t == 5);
    CHECK(rl_adamw_set_state(&b, 1, m, v, 5, &err) == -1 && strstr(err.msg, "5 values, expected 6"));
    rl_adamw_reset(&b);
    CHECK(b.t == 0 && b.m[0] == 0 && b.v[5] == 0);

    /* The first step of Adam moves every coordinate by about lr (sign of g). */
    float p[2] = {0, 0}, gg[2] = {0.3f, -20.0f};
    rl_adamw_hparams h0 = {0.9, 0.999, 1e-8, 0.0};
    rl_adamw c;
    CHECK(rl_adamw_init(&c, 2, &err) == 0);
    rl_adamw_step(&c, &h0, 0.1, p, gg);
    CHECK(fabs(p[0] + 0.1) < 1e-6 && fabs(p[1] - 0.1) < 1e-6);
    rl_adamw_free(&c);

    /* Steady state: a step allocates nothing. */
    uint64_t before = rl_alloc_count();
    rl_adamw_step(&a, &h, 1e-2, pa, g);
    rl_clip_grad_norm(g, 6, 0.1);
    CHECK(rl_alloc_count() == before);
    rl_adamw_free(&a);
    rl_adamw_free(&b);

    rl_adamw z;
    CHECK(rl_adamw_init(&z, 0, &err) == 0 && z.m == NULL);
    rl_adamw_step(&z, &h, 1.0, NULL, NULL);
    CHECK(z.t == 1);
    rl_adamw_free(&z);
}


/* ---- the optimizer node in a graph ----
 * t_quad: loss = 0.5 * sum((w - c)^2) over a parameter tensor "w" with fixed
 * targets c, so d(loss)/dw = w - c and the node's updates can be replayed
 * with the pure functions above. */
#define QN 10
static float quad_target(size_t i) { return 0.1f * (float)i - 0.3f; }
static const rl_option_spec quad_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"}};
static const rl_port_spec quad_out[] = {{"loss", RL_F32, 0, 0, 0, "loss"}};
static int quad_init(rl_node *n, rl_error *err) {
    return rl_node_use_params(n, rl_object_params(rl_node_opt_object(n, "params")), err);
}
static int quad_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape_make(0, NULL);
    return 0;
}
static int quad_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = n->params[0];
    double l = 0;
    for (size_t i = 0; i < QN; i++) l += 0.5 * (p->data[i] - quad_target(i)) * (p->data[i] - quad_target(i));
    rl_f32(&n->out[0])[0] = (float)l;
    return 0;
}
static int quad_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    rl_params *p = n->params[0];
    float d = rl_f32(&n->grad_out[0])[0];
    for (size_t i = 0; i < QN; i++) p->grad[i] += d * (p->data[i] - quad_target(i));
    return 0;
}
static const rl_node_type t_quad = {.name = "t_quad", .doc = "quadratic", .outputs = quad_out, .n_outputs = 1,
                                    .options = quad_opts, .n_options = 1, .init = quad_init,
                                    .infer = quad_infer, .forward = quad_forward, .backward = quad_backward};

static rl_object *quad_params(void) {
    rl_params *p = rl_params_new("quad", 3);
    rl_error e = {0};
    rl_params_add(p, "w", rl_shape1(QN), RL_INIT_UNIFORM, 1.0f, NULL, &e);
    return rl_params_object(p);
}

/* quad -> optimizer with the given extra options; returns the graph (compiled). */
static rl_graph *quad_graph(rl_object *po, rl_opts *o, rl_node **opt_out, rl_error *e) {
    rl_graph *g = rl_graph_new("quad");
    rl_opts q;
    rl_opts_init(&q);
    rl_opts_set_object(&q, "params", po);
    rl_node *qn = rl_graph_add(g, &t_quad, NULL, "quad.lua:1", NULL, &q, e);
    rl_opts_free(&q);
    rl_opts_set_object(o, "params", po);
    rl_node *opt = qn ? rl_graph_add_named(g, "optimizer", "opt", "quad.lua:2", NULL, o, e) : NULL;
    if (!opt || rl_graph_connect(g, opt, 0, qn, 0, e) || rl_graph_compile(g, NULL, e)) {
        rl_graph_free(g);
        return NULL;
    }
    *opt_out = opt;
    return g;
}

static double metric(const rl_run_ctx *ctx, const char *name) {
    for (int i = 0; i < ctx->n_metrics; i++)
        if (strcmp(ctx->metrics[i].name, name) == 0 && strcmp(ctx->metrics[i].node, "opt") == 0)
            return ctx->metrics[i].value;
    return NAN;
}

static void test_node(void) {
    rl_object *po = quad_params();
    rl_params *p = rl_object_params(po);
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_number(&o, "lr", 0.2);
    double betas[2] = {0.8, 0.9};
    rl_opts_set_numbers(&o, "betas", betas, 2);
    rl_opts_set_number(&o, "weight_decay", 0.05);
    rl_opts_set_string(&o, "schedule", "cosine");
    rl_opts_set_int(&o, "warmup", 2);
    rl_opts_set_int(&o, "decay_steps", 5);
    rl_opts_set_number(&o, "min_lr", 0.01);
    rl_opts_set_number(&o, "clip", 0.5);
    rl_opts_set_int(&o, "accumulate", 2);
    rl_error e = {0};
    rl_node *opt = NULL;
    rl_graph *g = quad_graph(po, &o, &opt, &e);
    rl_opts_free(&o);
    CHECK_MSG(g != NULL, "%s", e.msg);
    if (!g) {
        rl_object_release(po);
        return;
    }
    CHECK(rl_optimizer_params(opt) == p);
    rl_adamw *st = rl_optimizer_adamw(opt);
    CHECK(st && st->n == QN && st->t == 0);

    /* Replay: the same updates by hand from a copy of the initial weights. */
    float w[QN], g0[QN];
    memcpy(w, p->data, sizeof w);
    rl_adamw ref;
    CHECK(rl_adamw_init(&ref, QN, &e) == 0);
    rl_adamw_hparams h = {0.8, 0.9, 1e-8, 0.05};
    rl_lr_schedule sch = {RL_LR_COSINE, 0.2, 0.01, 2, 5};

    rl_run_ctx ctx = {0};
    const int calls = 20;
    uint64_t allocs = 0;
    for (int c = 0; c < calls; c++) {
        ctx.step = c;
        ctx.n_metrics = 0;
        if (c == 2) allocs = rl_alloc_count();
        CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
        double loss = 0;
        for (size_t i = 0; i < QN; i++) loss += 0.5 * (w[i] - quad_target(i)) * (w[i] - quad_target(i));
        CHECK(fabs(metric(&ctx, "loss") - loss) <= 1e-6 * (loss + 1e-3));
        if (c % 2 == 0) {
            /* accumulating: no update yet, gradients kept */
            CHECK(rl_optimizer_pending(opt) == 1 && st->t == c / 2);
            CHECK(memcmp(p->data, w, sizeof w) == 0);
            CHECK(fabs(p->grad[1] - (w[1] - quad_target(1))) < 1e-6);
            continue;
        }
        /* two identical calls, summed then divided by 2: one gradient */
        for (size_t i = 0; i < QN; i++) g0[i] = (w[i] - quad_target(i)) * 2.0f;
        rl_scale_f32(g0, QN, 0.5f);
        double lr = rl_lr_at(&sch, ref.t);
        double norm = rl_clip_grad_norm(g0, QN, 0.5);
        rl_adamw_step(&ref, &h, lr, w, g0);
        CHECK(rl_optimizer_pending(opt) == 0 && st->t == ref.t);
        CHECK_MSG(fabs(metric(&ctx, "lr") - lr) < 1e-12, "lr %g vs %g", metric(&ctx, "lr"), lr);
        CHECK(fabs(metric(&ctx, "grad_norm") - norm) < 1e-6 * norm);
        CHECK_MSG(memcmp(p->data, w, sizeof w) == 0, "update %lld differs", (long long)ref.t);
        for (size_t i = 0; i < QN; i++) CHECK(p->grad[i] == 0.0f);
    }
    CHECK_MSG(rl_alloc_count() == allocs, "steady state allocated %llu times",
              (unsigned long long)(rl_alloc_count() - allocs));
    CHECK(memcmp(st->m, ref.m, sizeof w) == 0 && memcmp(st->v, ref.v, sizeof w) == 0);
    CHECK(rl_optimizer_set_pending(opt, 2, &e) == -1 && rl_optimizer_set_pending(opt, 1, &e) == 0);
    rl_adamw_free(&ref);
    rl_graph_free(g);
    rl_object_release(po);
}

/* A non-finite gradient stops the run with a message and leaves the weights alone. */
static int nan_grad;
static int nanq_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    quad_backward(n, ctx, err);
    if (nan_grad) n->params[0]->grad[3] = NAN;
    return 0;
}
static void test_node_nonfinite(void) {
    rl_node_type tq = t_quad;
    tq.backward = nanq_backward;
    rl_object *po = quad_params();
    rl_params *p = rl_object_params(po);
    rl_graph *g = rl_graph_new("nan");
    rl_error e = {0};
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", po);
    rl_node *qn = rl_graph_add(g, &tq, NULL, "nan.lua:1", NULL, &o, &e);
    rl_node *opt = rl_graph_add_named(g, "optimizer", "opt", "nan.lua:2", NULL, &o, &e);
    rl_opts_free(&o);
    CHECK(qn && opt && rl_graph_connect(g, opt, 0, qn, 0, &e) == 0 && rl_graph_compile(g, NULL, &e) == 0);
    rl_run_ctx ctx = {0};
    nan_grad = 0;
    CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
    float before[QN];
    memcpy(before, p->data, sizeof before);
    nan_grad = 1;
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == -1);
    CHECK_MSG(strstr(e.msg, "nan.lua:2") && strstr(e.msg, "'opt'") && strstr(e.msg, "gradient norm") &&
                  strstr(e.msg, "NaN"), "%s", e.msg);
    CHECK(memcmp(before, p->data, sizeof before) == 0);
    CHECK(rl_optimizer_adamw(opt)->t == 1);
    rl_graph_free(g);
    rl_object_release(po);
}

/* Checkpoint: save params + optimizer state mid-run (through a file), load
 * them into a fresh graph, and continue: bit-identical to the uninterrupted run. */
static rl_graph *resume_graph(rl_object *po, rl_node **opt, rl_error *e) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_number(&o, "lr", 0.1);
    rl_opts_set_number(&o, "weight_decay", 0.01);
    rl_opts_set_string(&o, "schedule", "cosine");
    rl_opts_set_int(&o, "warmup", 1);
    rl_opts_set_int(&o, "decay_steps", 4);
    rl_opts_set_number(&o, "clip", 1.0);
    rl_opts_set_int(&o, "accumulate", 2);
    rl_graph *g = quad_graph(po, &o, opt, e);
    rl_opts_free(&o);
    return g;
}

static void test_node_resume(void) {
    rl_object *pa = quad_params(), *pb = quad_params();
    rl_params *a = rl_object_params(pa), *b = rl_object_params(pb);
    rl_error e = {0};
    rl_node *oa = NULL, *ob = NULL;
    rl_graph *ga = resume_graph(pa, &oa, &e), *gb = resume_graph(pb, &ob, &e);
    CHECK_MSG(ga && gb, "%s", e.msg);
    if (!ga || !gb) goto out;
    rl_run_ctx ctx = {0};
    for (int c = 0; c < 6; c++) CHECK(rl_graph_run(ga, NULL, &ctx, &e) == 0);
    char path[] = "/tmp/rlfr_optstate_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    rl_state *st = rl_state_new();
    CHECK_MSG(rl_graph_save_state(ga, st, &e) == 0 && rl_state_save(st, path, &e) == 0, "%s", e.msg);
    rl_state_free(st);
    memcpy(b->data, a->data, a->numel * sizeof(float));
    st = rl_state_new();
    CHECK_MSG(rl_state_load(st, path, &e) == 0 && rl_graph_load_state(gb, st, &e) == 0, "%s", e.msg);
    rl_state_free(st);
    unlink(path);
    CHECK(rl_optimizer_adamw(ob)->t == 3 && rl_optimizer_pending(ob) == 0);
    for (int c = 0; c < 6; c++) {
        CHECK(rl_graph_run(ga, NULL, &ctx, &e) == 0);
        CHECK(rl_graph_run(gb, NULL, &ctx, &e) == 0);
    }
    CHECK(memcmp(a->data, b->data, a->numel * sizeof(float)) == 0);
    CHECK(memcmp(rl_optimizer_adamw(oa)->v, rl_optimizer_adamw(ob)->v, a->numel * sizeof(float)) == 0);

    /* A state for another parameter count is refused. */
    st = rl_state_new();
    int64_t t = 1, pend = 0;
    float m[3] = {0};
    rl_state_set_prefix(st, "opt");
    rl_state_put(st, "t", &t, sizeof t, &e);
    rl_state_put(st, "pending", &pend, sizeof pend, &e);
    rl_state_put(st, "m", m, sizeof m, &e);
    rl_state_put(st, "v", m, sizeof m, &e);
    rl_state_set_prefix(st, NULL);
    rl_error_clear(&e);
    CHECK(rl_graph_load_state(gb, st, &e) == -1);
    CHECK_MSG(strstr(e.msg, "opt.m") && strstr(e.msg, "12 bytes"), "%s", e.msg);
    rl_state_free(st);
out:
    rl_graph_free(ga);
    rl_graph_free(gb);
    rl_object_release(pa);
    rl_object_release(pb);
}

static void test_node_options(void) {
    static const struct {
        const char *key;
        const char *sval;
        double nval;
        const char *want;
    } bad[] = {
        {"schedule", "linear", 0, "option 'schedule' must be \"constant\" or \"cosine\""},
        {"lr", NULL, -1.0, "option 'lr' must be >= 0"},
        {"eps", NULL, 0.0, "option 'eps' must be > 0"},
        {"clip", NULL, -1.0, "option 'clip' must be >= 0"},
        {"accumulate", NULL, 0, "option 'accumulate' must be >= 1"},
        {"min_lr", NULL, 1.0, "option 'min_lr' must be in [0, lr]"},
        {"betas", NULL, 1.0, "option 'betas' must be two numbers"},
    };
    rl_object *po = quad_params();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_graph *g = rl_graph_new("opts");
        rl_opts o;
        rl_opts_init(&o);
        rl_opts_set_object(&o, "params", po);
        if (bad[i].sval) rl_opts_set_string(&o, bad[i].key, bad[i].sval);
        else if (strcmp(bad[i].key, "accumulate") == 0) rl_opts_set_int(&o, bad[i].key, (int64_t)bad[i].nval);
        else if (strcmp(bad[i].key, "betas") == 0) rl_opts_set_numbers(&o, bad[i].key, &bad[i].nval, 1);
        else rl_opts_set_number(&o, bad[i].key, bad[i].nval);
        rl_error e = {0};
        rl_node *n = rl_graph_add_named(g, "optimizer", NULL, "opts.lua:7", NULL, &o, &e);
        CHECK_MSG(n == NULL && strstr(e.msg, bad[i].want) && strstr(e.msg, "opts.lua:7"), "%s: %s", bad[i].key,
                  e.msg);
        rl_opts_free(&o);
        rl_graph_free(g);
    }
    rl_object_release(po);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_reference();
    test_schedule();
    test_clip();
    test_state();
    test_node();
    test_node_nonfinite();
    test_node_resume();
    test_node_options();
    return rl_test_finish("test_adamw");
}
