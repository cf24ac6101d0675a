/* Flow network: configuration, parameter layout and initialisation. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"

void rl_flow_config_default(rl_flow_config *cfg, int64_t dim) {
    if (!cfg->dim) cfg->dim = dim;
    if (!cfg->width) cfg->width = cfg->dim;
    if (!cfg->depth) cfg->depth = 4;
    if (!(cfg->eps > 0)) cfg->eps = 1e-6f;
}

/* Bounds keep every BLAS dimension (up to (3K+2)·w) inside an int. */
int rl_flow_config_check(const rl_flow_config *cfg, rl_error *err) {
    if (cfg->dim < 1 || cfg->dim > (1 << 16))
        return rl_fail(err, "flow config: dim %lld is out of range [1, 65536]", (long long)cfg->dim);
    if (cfg->width < 1 || cfg->width > (1 << 16))
        return rl_fail(err, "flow config: width %lld is out of range [1, 65536]", (long long)cfg->width);
    if (cfg->depth < 1 || cfg->depth > 256)
        return rl_fail(err, "flow config: depth %lld is out of range [1, 256]", (long long)cfg->depth);
    if (!(cfg->eps > 0) || cfg->eps > 1)
        return rl_fail(err, "flow config: eps %g is out of range (0, 1]", (double)cfg->eps);
    return 0;
}

static void params_release(rl_flow *f) {
    if (f->params_obj) rl_object_release(f->params_obj);
    else rl_params_free(f->params);
    f->params_obj = NULL;
    f->params = NULL;
}

void rl_flow_free(rl_flow *f) {
    if (!f) return;
    params_release(f);
    rl_free(f->blocks);
    rl_free(f);
}

static int add(rl_flow *f, const char *name, rl_shape s, rl_init init, size_t *off, rl_error *err) {
    return rl_params_add(f->params, name, s, init, 0.0f, off, err);
}

static int declare(rl_flow *f, rl_error *err) {
    int64_t d = f->cfg.dim, w = f->cfg.width, K = f->cfg.depth, F = RL_FLOW_FREQ_DIM;
    char name[96];
    if (add(f, "input_proj.weight", rl_shape2(w, d), RL_INIT_XAVIER_UNIFORM, &f->in_w, err) ||
        add(f, "input_proj.bias", rl_shape1(w), RL_INIT_ZEROS, &f->in_b, err) ||
        add(f, "cond_embed.weight", rl_shape2(w, d), RL_INIT_XAVIER_UNIFORM, &f->cond_w, err) ||
        add(f, "cond_embed.bias", rl_shape1(w), RL_INIT_ZEROS, &f->cond_b, err) ||
        add(f, "time_embed.mlp.0.weight", rl_shape2(w, F), RL_INIT_XAVIER_UNIFORM, &f->temb_w0, err) ||
        add(f, "time_embed.mlp.0.bias", rl_shape1(w), RL_INIT_ZEROS, &f->temb_b0, err) ||
        add(f, "time_embed.mlp.2.weight", rl_shape2(w, w), RL_INIT_XAVIER_UNIFORM, &f->temb_w2, err) ||
        add(f, "time_embed.mlp.2.bias", rl_shape1(w), RL_INIT_ZEROS, &f->temb_b2, err) ||
        add(f, "layer_embed.mlp.0.weight", rl_shape2(w, F), RL_INIT_XAVIER_UNIFORM, &f->lemb_w0, err) ||
        add(f, "layer_embed.mlp.0.bias", rl_shape1(w), RL_INIT_ZEROS, &f->lemb_b0, err) ||
        add(f, "layer_embed.mlp.2.weight", rl_shape2(w, w), RL_INIT_XAVIER_UNIFORM, &f->lemb_w2, err) ||
        add(f, "layer_embed.mlp.2.bias", rl_shape1(w), RL_INIT_ZEROS, &f->lemb_b2, err))
        return -1;
    /* adaLN weights of all blocks and of the final layer back to back, then
       their biases: see rl_flow.mod_w. Zero-initialised (adaLN-Zero). */
    size_t off, expect = 0;
    for (int64_t i = 0; i <= K; i++) {
        int64_t rows = i < K ? 3 * w : 2 * w;
        if (i < K) snprintf(name, sizeof name, "res_blocks.%lld.adaLN_modulation.1.weight", (long long)i);
        else snprintf(name, sizeof name, "final_layer.adaLN_modulation.1.weight");
        if (add(f, name, rl_shape2(rows, w), RL_INIT_ZEROS, &off, err)) return -1;
        if (i == 0) f->mod_w = expect = off;
        if (off != expect) return rl_fail(err, "flow: parameter set '%s' is not fresh", f->params->name);
        expect += (size_t)(rows * w);
    }
    for (int64_t i = 0; i <= K; i++) {
        int64_t rows = i < K ? 3 * w : 2 * w;
        if (i < K) snprintf(name, sizeof name, "res_blocks.%lld.adaLN_modulation.1.bias", (long long)i);
        else snprintf(name, sizeof name, "final_layer.adaLN_modulation.1.bias");
        if (add(f, name, rl_shape1(rows), RL_INIT_ZEROS, &off, err)) return -1;
        if (i == 0) f->mod_b = expect = off;
        if (off != expect) return rl_fail(err, "flow: parameter set '%s' is not fresh", f->params->name);
        expect += (size_t)rows;
    }
    for (int64_t i = 0; i < K; i++) {
        rl_flow_block *b = &f->blocks[i];
        struct { const char *suffix; rl_shape s; rl_init init; size_t *off; } e[] = {
            {"in_ln.weight", rl_shape1(w), RL_INIT_ONES, &b->norm_w},
            {"mlp.0.weight", rl_shape2(w, w), RL_INIT_XAVIER_UNIFORM, &b->fc1_w},
            {"mlp.0.bias", rl_shape1(w), RL_INIT_ZEROS, &b->fc1_b},
            {"mlp.2.weight", rl_shape2(w, w), RL_INIT_XAVIER_UNIFORM, &b->fc2_w},
            {"mlp.2.bias", rl_shape1(w), RL_INIT_ZEROS, &b->fc2_b},
        };
        for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
            snprintf(name, sizeof name, "res_blocks.%lld.%s", (long long)i, e[k].suffix);
            if (add(f, name, e[k].s, e[k].init, e[k].off, err)) return -1;
        }
    }
    /* The final linear starts at zero so v_phi(.) = 0 before training. */
    if (add(f, "final_layer.norm_final.weight", rl_shape1(w), RL_INIT_ONES, &f->final_norm_w, err) ||
        add(f, "final_layer.linear.weight", rl_shape2(d, w), RL_INIT_ZEROS, &f->out_w, err) ||
        add(f, "final_layer.linear.bias", rl_shape1(d), RL_INIT_ZEROS, &f->out_b, err))
        return -1;
    return 0;
}

rl_flow *rl_flow_new(const rl_flow_config *cfg_in, uint64_t seed, rl_error *err) {
    rl_flow_config cfg = *cfg_in;
    rl_flow_config_default(&cfg, cfg.dim);
    if (rl_flow_config_check(&cfg, err)) return NULL;
    rl_flow *f = rl_calloc(1, sizeof *f);
    if (!f) { rl_fail(err, "flow: out of memory"); return NULL; }
    f->cfg = cfg;
    f->blocks = rl_calloc((size_t)cfg.depth, sizeof *f->blocks);
    f->params = rl_params_new("flow", seed);
    if (!f->blocks || !f->params) { rl_fail(err, "flow: out of memory"); rl_flow_free(f); return NULL; }
    f->params_obj = rl_params_object(f->params);
    if (!f->params_obj) { rl_fail(err, "flow: out of memory"); rl_flow_free(f); return NULL; }
    if (declare(f, err) || rl_params_finalize(f->params, err)) {
        rl_fail_prefix(err, "flow: ");
        rl_flow_free(f);
        return NULL;
    }
    return f;
}

static void flow_destroy(void *p) { rl_flow_free(p); }

rl_object *rl_flow_object(rl_flow *f) {
    rl_object *o = rl_object_new("flow", f, flow_destroy);
    if (!o) rl_flow_free(f);
    else o->params = f->params; /* so optimizer{params = flow} reaches the weights */
    return o;
}

rl_flow *rl_flow_from_object(const rl_object *o) {
    if (!o || !o->type || strcmp(o->type, "flow") != 0) return NULL;
    return o->ptr;
}

size_t rl_flow_param_count(const rl_flow *f) { return f->params->numel; }

int rl_flow_check_dim(const rl_flow *f, int64_t dim, rl_error *err) {
    if (f->cfg.dim != dim)
        return rl_fail(err, "flow network expects latents of size %lld (width %lld, depth %lld) but the policy's "
                       "hidden size is %lld", (long long)f->cfg.dim, (long long)f->cfg.width,
                       (long long)f->cfg.depth, (long long)dim);
    return 0;
}
