/* The flow network against PyTorch (tests/gen_flow_ref.py): same weights and
 * inputs give the same outputs, parameter/input gradients and flow-matching
 * losses, to relative error 1e-4. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "kernels_flow.h"
#include "safetensors.h"
#include "testlib.h"

static rl_st_file *ref;

static float *read_ref(const char *name, size_t n) {
    float *x = rl_calloc(n ? n : 1, sizeof(float));
    rl_error err = {0};
    if (rl_st_read_f32(ref, name, x, n, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        memset(x, 0, n * sizeof(float));
    }
    return x;
}

/* Relative error of a tensor: max |got - want| / max |want|. Element-wise
 * relative error is meaningless for entries that cancel to ~0 (f32 against a
 * float64 reference), so the tensor's own scale is the yardstick. */
static double worst_err;

static void compare(const char *what, const float *got, const float *want, size_t n) {
    double scale = 0, diff = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (e > diff || isnan(e)) { diff = isnan(e) ? INFINITY : e; worst = i; }
    }
    double e = scale > 0 ? diff / scale : diff;
    if (e > worst_err) worst_err = e;
    CHECK_MSG(scale > 0, "%s: reference is all zeros", what);
    CHECK_MSG(e <= 1e-4, "%s: rel err %.3g at %zu (got %g want %g)", what, e, worst, got[worst], want[worst]);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_error err = {0};
    if (rl_st_open(rl_test_path("tests/ref/flow_ref.safetensors"), &ref, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    rl_flow_config cfg;
    CHECK(rl_flow_config_parse(rl_st_metadata(ref, "config"), "ref", &cfg, &err) == 0);
    int64_t n = atoll(rl_st_metadata(ref, "rows"));
    int64_t d = cfg.dim;
    rl_flow *f = rl_flow_new(&cfg, 1, &err);
    CHECK(f != NULL);
    if (!f) return rl_test_finish("test_flow_parity");
    rl_params *p = f->params;
    char name[160];
    for (int i = 0; i < p->n; i++) {
        snprintf(name, sizeof name, "param.%s", p->entries[i].name);
        CHECK_MSG(rl_st_read_f32_shape(ref, name, &p->entries[i].shape, p->data + p->entries[i].offset, &err) == 0,
                  "%s", err.msg);
    }
    size_t nd = (size_t)(n * d);
    float *x = read_ref("in.x", nd), *c = read_ref("in.c", nd), *t = read_ref("in.t", (size_t)n);
    float *tau = read_ref("in.tau", (size_t)n), *dout = read_ref("in.dout", nd), *want = read_ref("out.v", nd);
    float *acts = rl_calloc(rl_flow_acts_floats(&cfg, n), sizeof(float));
    float *scratch = rl_calloc(rl_flow_scratch_floats(&cfg, n), sizeof(float));
    float *out = rl_calloc(nd, sizeof(float)), *dx = rl_calloc(nd, sizeof(float)), *dc = rl_calloc(nd, sizeof(float));

    /* The embedding alone. */
    float *emb = rl_calloc((size_t)n * RL_FLOW_FREQ_DIM, sizeof(float));
    float *emb_want = read_ref("sinusoid", (size_t)n * RL_FLOW_FREQ_DIM);
    rl_flow_sinusoid(t, n, RL_FLOW_FREQ_DIM, emb);
    compare("sinusoid", emb, emb_want, (size_t)n * RL_FLOW_FREQ_DIM);

    rl_flow_forward(f, n, x, t, c, tau, acts, out);
    compare("forward", out, want, nd);
    rl_params_zero_grad(p);
    rl_flow_backward(f, n, x, t, c, tau, acts, dout, scratch, p->grad, dx, dc);
    for (int i = 0; i < p->n; i++) {
        const rl_param_entry *e = &p->entries[i];
        size_t k = (size_t)rl_shape_numel(&e->shape);
        snprintf(name, sizeof name, "grad.%s", e->name);
        float *g = read_ref(name, k);
        compare(name, p->grad + e->offset, g, k);
        rl_free(g);
    }
    float *gx = read_ref("grad.x", nd), *gc = read_ref("grad.c", nd);
    compare("grad.x", dx, gx, nd);
    compare("grad.c", dc, gc, nd);

    /* Flow-matching loss and its parameter gradient. */
    float *x1 = read_ref("fm.x1", nd), *eps = read_ref("fm.eps", nd), *coef = read_ref("fm.coef", (size_t)n);
    float *loss_want = read_ref("fm.loss", (size_t)n);
    float *xt = rl_calloc(nd, sizeof(float)), *v = rl_calloc(nd, sizeof(float)), *dv = rl_calloc(nd, sizeof(float));
    float *loss = rl_calloc((size_t)n, sizeof(float));
    rl_flow_fm_forward(f, n, x1, eps, t, c, tau, xt, acts, v, loss);
    compare("fm.loss", loss, loss_want, (size_t)n);
    rl_flow_fm_dv(n, d, x1, eps, v, coef, dv);
    rl_params_zero_grad(p);
    rl_flow_backward(f, n, xt, t, c, tau, acts, dv, scratch, p->grad, NULL, NULL);
    for (int i = 0; i < p->n; i++) {
        const rl_param_entry *e = &p->entries[i];
        size_t k = (size_t)rl_shape_numel(&e->shape);
        snprintf(name, sizeof name, "fmgrad.%s", e->name);
        float *g = read_ref(name, k);
        compare(name, p->grad + e->offset, g, k);
        rl_free(g);
    }

    rl_free(x); rl_free(c); rl_free(t); rl_free(tau); rl_free(dout); rl_free(want); rl_free(acts);
    rl_free(scratch); rl_free(out); rl_free(dx); rl_free(dc); rl_free(emb); rl_free(emb_want); rl_free(gx);
    rl_free(gc); rl_free(x1); rl_free(eps); rl_free(coef); rl_free(loss_want); rl_free(xt); rl_free(v);
    rl_free(dv); rl_free(loss);
    printf("worst relative error (max |diff| / max |ref| per tensor): %.3g\n", worst_err);
    rl_flow_free(f);
    rl_st_close(ref);
    return rl_test_finish("test_flow_parity");
}
