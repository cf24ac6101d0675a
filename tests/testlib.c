#include "testlib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "node.h"
#include "params.h"

int rl_test_failures;
int rl_test_checks;

int rl_test_finish(const char *name) {
    int passed = rl_test_checks - rl_test_failures;
    printf("%s: %d passed, %d failed\n", name, passed, rl_test_failures);
    return rl_test_failures ? 1 : 0;
}

double rl_test_max_rel_err(const float *a, const float *b, size_t n, float floor, size_t *worst) {
    double m = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        if (s < floor) s = floor;
        double r = d / s;
        if (r > m || isnan(r)) { m = isnan(r) ? INFINITY : r; w = i; }
    }
    if (worst) *worst = w;
    return m;
}

double rl_test_gradcheck(float *x, size_t n, const float *analytic, rl_test_scalar_fn f, void *ctx,
                         double eps, size_t max_checks) {
    size_t stride = 1;
    if (max_checks && n > max_checks) stride = (n + max_checks - 1) / max_checks;
    double worst = 0;
    for (size_t i = 0; i < n; i += stride) {
        float saved = x[i];
        x[i] = (float)(saved + eps);
        double fp = f(ctx);
        x[i] = (float)(saved - eps);
        double fm = f(ctx);
        x[i] = saved;
        double num = (fp - fm) / (2 * eps);
        double ana = analytic[i];
        double denom = fabs(num) + fabs(ana);
        if (denom < 1e-3) denom = 1e-3;
        double r = fabs(num - ana) / denom;
        if (r > worst || isnan(r)) worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

static char source_dir[4096];

void rl_test_set_source_dir(const char *dir) { snprintf(source_dir, sizeof source_dir, "%s", dir); }

const char *rl_test_path(const char *rel) {
    static char buf[8192];
    const char *dir = source_dir[0] ? source_dir : getenv("RLFR_SOURCE_DIR");
    if (!dir) dir = ".";
    snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    return buf;
}

void rl_test_fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        uint64_t r = s * 0x2545F4914F6CDD1Dull;
        x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

float *rl_test_grad_copy[2];
static const rl_option_spec grad_sink_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"},
                                                {"slot", RL_VAL_INT, "0", "where to copy the gradient", NULL}};
static const rl_port_spec grad_sink_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grad_sink_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    float *dst = rl_test_grad_copy[rl_node_opt_int(n, "slot")];
    if (dst) memcpy(dst, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
const rl_node_type rl_test_grad_sink = {.name = "t_sink", .doc = "grad sink", .inputs = grad_sink_in,
                                        .n_inputs = 1, .options = grad_sink_opts, .n_options = 2,
                                        .flags = RL_NODE_OPTIMIZER, .forward = grad_sink_forward};

void rl_test_connect(rl_graph *g, rl_node *dst, const char *in, rl_node *src, const char *out) {
    rl_error e = {0};
    const int ip = rl_node_input_index(dst, in), op = rl_node_output_index(src, out);
    CHECK_MSG(ip >= 0 && op >= 0 && rl_graph_connect(g, dst, ip, src, op, &e) == 0, "%s.%s <- %s.%s: %s",
              dst->label ? dst->label : dst->type->name, in, src->label ? src->label : src->type->name, out, e.msg);
}
