/* Flow network: initialisation, parameter layout, save/load, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "flow.h"
#include "testlib.h"
#include "threads.h"

static void check_init(void) {
    rl_error err = {0};
    rl_flow_config cfg = {.dim = 10};
    rl_flow *f = rl_flow_new(&cfg, 42, &err);
    CHECK(f != NULL);
    if (!f) return;
    /* Defaults: width = dim, depth 4. */
    CHECK(f->cfg.width == 10 && f->cfg.depth == 4 && f->cfg.eps > 0);
    int64_t d = 10, w = 10, K = 4;
    /* (7 + 5K)·w² + 512·w + biases, with d = w (DESIGN.md / the paper notes). */
    size_t expect = (size_t)((7 + 5 * K) * w * w + 512 * w) + (size_t)(w * 6 + K * (3 * w + 3 * w) + 2 * w + w + d);
    CHECK_MSG(rl_flow_param_count(f) == expect, "params %zu expected %zu", rl_flow_param_count(f), expect);
    const rl_param_entry *e = rl_params_find(f->params, "res_blocks.3.adaLN_modulation.1.weight");
    CHECK(e && e->shape.dim[0] == 3 * w && e->shape.dim[1] == w);
    CHECK(rl_params_find(f->params, "layer_embed.mlp.2.bias") != NULL);
    CHECK(rl_params_find(f->params, "final_layer.linear.weight") != NULL);
    /* Xavier weights are non-zero and inside the bound; the adaLN outputs and
       the final linear start at zero, so v = 0 everywhere. */
    e = rl_params_find(f->params, "res_blocks.0.mlp.0.weight");
    float bound = sqrtf(6.0f / (float)(w + w)), mx = 0;
    for (int64_t i = 0; i < w * w; i++) mx = fmaxf(mx, fabsf(f->params->data[e->offset + (size_t)i]));
    CHECK(mx > 0.5f * bound && mx <= bound);
    int64_t n = 3;
    float x[30], c[30], t[3] = {0.2f, 0.5f, 0.9f}, tau[3] = {0.25f, 0.5f, 0.75f}, out[30];
    rl_test_fill(x, 30, 1);
    rl_test_fill(c, 30, 2);
    float *acts = rl_calloc(rl_flow_acts_floats(&f->cfg, n), sizeof(float));
    rl_flow_forward(f, n, x, t, c, tau, acts, out);
    float m = 0;
    for (int i = 0; i < 30; i++) m = fmaxf(m, fabsf(out[i]));
    CHECK(m == 0.0f);
    /* Same seed, same weights; another seed, other weights. */
    rl_flow *g = rl_flow_new(&cfg, 42, &err), *h = rl_flow_new(&cfg, 43, &err);
    CHECK(g && h);
    if (g && h) {
        CHECK(memcmp(f->params->data, g->params->data, f->params->numel * sizeof(float)) == 0);
        CHECK(memcmp(f->params->data, h->params->data, f->params->numel * sizeof(float)) != 0);
    }
    rl_flow_free(g);
    rl_flow_free(h);
    rl_free(acts);
    rl_flow_free(f);
}

static void check_files(void) {
    rl_error err = {0};
    char dir[] = "/tmp/rlfr_flow_test_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    rl_flow_config cfg = {.dim = 6, .width = 8, .depth = 3, .eps = 1e-5f};
    rl_flow *f = rl_flow_new(&cfg, 9, &err);
    CHECK(f != NULL);
    if (!f) return;
    rl_test_fill(f->params->data, f->params->numel, 77);
    CHECK_MSG(rl_flow_save(f, dir, &err) == 0, "%s", err.msg);
    rl_flow *g = rl_flow_load(dir, &err);
    CHECK_MSG(g != NULL, "%s", err.msg);
    if (g) {
        CHECK(g->cfg.dim == 6 && g->cfg.width == 8 && g->cfg.depth == 3 && g->cfg.eps == 1e-5f);
        CHECK(g->params->numel == f->params->numel &&
              memcmp(f->params->data, g->params->data, f->params->numel * sizeof(float)) == 0);
    }
    rl_flow_free(g);
    /* Without flow_config.json the safetensors metadata carries the config. */
    char path[512];
    snprintf(path, sizeof path, "%s/flow_config.json", dir);
    CHECK(remove(path) == 0);
    g = rl_flow_load(dir, &err);
    CHECK_MSG(g != NULL && g->cfg.depth == 3, "%s", err.msg);
    rl_flow_free(g);
    /* A config that disagrees with the tensors: one clear error naming the tensor. */
    FILE *fp = fopen(path, "w");
    if (fp) { fputs("{\"dim\": 6, \"width\": 16, \"depth\": 3}", fp); fclose(fp); }
    g = rl_flow_load(dir, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, "flow.safetensors") && strstr(err.msg, "input_proj.weight"), "%s", err.msg);
    fp = fopen(path, "w");
    if (fp) { fputs("{\"dim\": 6, \"width\": 8, \"depth\": 2}", fp); fclose(fp); }
    g = rl_flow_load(dir, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, "unexpected tensor 'res_blocks.2."), "%s", err.msg);
    fp = fopen(path, "w");
    if (fp) { fputs("{\"dim\": 6, \"width\": 8, \"depth\": 4}", fp); fclose(fp); }
    g = rl_flow_load(dir, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, "missing tensor 'res_blocks.3."), "%s", err.msg);
    fp = fopen(path, "w");
    if (fp) { fputs("{\"dim\": 6, \"width\": 8", fp); fclose(fp); }
    g = rl_flow_load(dir, &err);
    CHECK(g == NULL);
    CHECK_MSG(strstr(err.msg, "flow_config.json") && strstr(err.msg, "invalid"), "%s", err.msg);
    remove(path);
    snprintf(path, sizeof path, "%s/flow.safetensors", dir);
    remove(path);
    g = rl_flow_load(dir, &err);
    CHECK(g == NULL && strstr(err.msg, "flow.safetensors"));
    rmdir(dir);
    rl_flow_free(f);
}

static void check_bad_config(void) {
    rl_error err = {0};
    rl_flow_config cfg = {.dim = 8, .width = 8, .depth = -1};
    CHECK(rl_flow_new(&cfg, 1, &err) == NULL && strstr(err.msg, "depth"));
    cfg = (rl_flow_config){.dim = 8, .width = 1 << 20, .depth = 2};
    CHECK(rl_flow_new(&cfg, 1, &err) == NULL && strstr(err.msg, "width"));
    cfg = (rl_flow_config){.dim = 8, .width = 4, .depth = 2};
    rl_flow *f = rl_flow_new(&cfg, 1, &err);
    CHECK(f != NULL);
    if (!f) return;
    CHECK(rl_flow_check_dim(f, 8, &err) == 0);
    CHECK(rl_flow_check_dim(f, 16, &err) == -1 && strstr(err.msg, "hidden size is 16"));
    rl_object *o = rl_flow_object(f);
    CHECK(o && rl_flow_from_object(o) == f);
    rl_object_release(o);
}

/* max |a - b| / max |b|: sums over 1100 rows reassociate differently in
 * BLAS on 2 threads, which shows on entries that cancel to ~0. */
static double scaled_err(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return scale > 0 ? diff / scale : diff;
}

/* A batch large enough for the parallel branches of the kernels gives the
 * same forward and gradients on 1 and 2 threads (up to BLAS reassociation). */
static void check_threads(void) {
    rl_error err = {0};
    rl_flow_config cfg = {.dim = 48, .width = 64, .depth = 2};
    rl_flow *f = rl_flow_new(&cfg, 4, &err);
    CHECK(f != NULL);
    if (!f) return;
    rl_test_fill(f->params->data, f->params->numel, 8);
    for (size_t i = 0; i < f->params->numel; i++) f->params->data[i] *= 0.2f;
    int64_t n = 1100, d = cfg.dim;
    size_t nd = (size_t)(n * d), np = f->params->numel;
    float *x = rl_calloc(nd, 4), *c = rl_calloc(nd, 4), *t = rl_calloc((size_t)n, 4), *tau = rl_calloc((size_t)n, 4);
    float *dout = rl_calloc(nd, 4), *out[2], *grad[2], *dx[2];
    float *acts = rl_calloc(rl_flow_acts_floats(&cfg, n), 4), *scr = rl_calloc(rl_flow_scratch_floats(&cfg, n), 4);
    rl_test_fill(x, nd, 1);
    rl_test_fill(c, nd, 2);
    rl_test_fill(dout, nd, 3);
    rl_test_fill(t, (size_t)n, 4);
    for (int64_t r = 0; r < n; r++) { t[r] = 0.5f + 0.45f * t[r]; tau[r] = 0.25f * (float)(1 + r % 3); }
    for (int k = 0; k < 2; k++) {
        rl_set_threads(k + 1);
        out[k] = rl_calloc(nd, 4);
        grad[k] = rl_calloc(np, 4);
        dx[k] = rl_calloc(nd, 4);
        rl_flow_forward(f, n, x, t, c, tau, acts, out[k]);
        rl_flow_backward(f, n, x, t, c, tau, acts, dout, scr, grad[k], dx[k], NULL);
    }
    rl_set_threads(0);
    double eo = scaled_err(out[1], out[0], nd), eg = scaled_err(grad[1], grad[0], np), ex = scaled_err(dx[1], dx[0], nd);
    CHECK_MSG(eo < 1e-5 && eg < 1e-5 && ex < 1e-5, "1 vs 2 threads: out %.3g grad %.3g dx %.3g", eo, eg, ex);
    for (int k = 0; k < 2; k++) { rl_free(out[k]); rl_free(grad[k]); rl_free(dx[k]); }
    rl_free(x); rl_free(c); rl_free(t); rl_free(tau); rl_free(dout); rl_free(acts); rl_free(scr);
    rl_flow_free(f);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    check_init();
    check_files();
    check_bad_config();
    check_threads();
    return rl_test_finish("test_flow_model");
}
