/* Vision encoder: configuration, parameter layout and initialisation, batch
 * checks and the patch layout (models/vit.h). Tensor names follow Qwen2-VL's
 * vision tower so a reader recognises them. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "vit.h"

void rl_vit_config_default(rl_vit_config *c) {
    if (!c->patch) c->patch = 14;
    if (!c->channels) c->channels = 3;
    if (!c->mlp) c->mlp = 4 * c->width;
    if (!c->merge) c->merge = 2;
    if (!(c->eps > 0)) c->eps = 1e-6f;
    if (!(c->rope_theta > 0)) c->rope_theta = 10000.0;
}

/* Bounds keep every BLAS dimension (up to m²·d and 3d) inside an int and
 * every per-row size far from overflow. */
int rl_vit_config_check(const rl_vit_config *c, rl_error *err) {
#define RANGE(f, lo, hi)                                                                                   \
    if (c->f < (lo) || c->f > (hi))                                                                        \
        return rl_fail(err, "vit config: " #f " %lld is out of range [%lld, %lld]", (long long)c->f,        \
                       (long long)(lo), (long long)(hi));
    RANGE(patch, 1, 1024)
    RANGE(channels, 1, 16)
    RANGE(width, 1, 1 << 14)
    RANGE(depth, 0, 256)
    RANGE(heads, 1, 1024)
    RANGE(mlp, 1, 1 << 16)
    RANGE(out_hidden, 1, 1 << 16)
    RANGE(merge, 1, 8)
#undef RANGE
    if (c->patch * c->patch * c->channels > (1 << 20))
        return rl_fail(err, "vit config: patch %lld x %lld x %lld channels is too large", (long long)c->patch,
                       (long long)c->patch, (long long)c->channels);
    if (c->width % c->heads != 0)
        return rl_fail(err, "vit config: width %lld is not divisible by heads %lld", (long long)c->width,
                       (long long)c->heads);
    if ((c->width / c->heads) % 4 != 0)
        return rl_fail(err, "vit config: head dim %lld (width / heads) must be a multiple of 4 for the 2-D rotary "
                       "embedding", (long long)(c->width / c->heads));
    if (!(c->eps > 0) || c->eps > 1) return rl_fail(err, "vit config: eps %g is out of range (0, 1]", (double)c->eps);
    if (!(c->rope_theta > 1) || c->rope_theta > 1e9)
        return rl_fail(err, "vit config: rope_theta %g is out of range (1, 1e9]", c->rope_theta);
    return 0;
}

void rl_vit_free(rl_vit *v) {
    if (!v) return;
    if (v->params_obj) rl_object_release(v->params_obj);
    else rl_params_free(v->params);
    rl_free(v->blocks);
    rl_free(v);
}

static int add(rl_vit *v, const char *name, rl_shape s, rl_init init, size_t *off, rl_error *err) {
    return rl_params_add(v->params, name, s, init, 0.0f, off, err);
}

static int declare(rl_vit *v, rl_error *err) {
    const rl_vit_config *c = &v->cfg;
    const int64_t d = c->width, P = c->channels * c->patch * c->patch, F = c->mlp, md = c->merge * c->merge * d;
    const rl_init KU = RL_INIT_KAIMING_UNIFORM, Z = RL_INIT_ZEROS, O = RL_INIT_ONES;
    char name[96];
    if (add(v, "patch_embed.proj.weight", rl_shape2(d, P), KU, &v->patch_w, err)) return -1;
    for (int64_t i = 0; i < c->depth; i++) {
        rl_vit_block *b = &v->blocks[i];
        struct { const char *suffix; rl_shape s; rl_init init; size_t *off; } e[] = {
            {"norm1.weight", rl_shape1(d), O, &b->ln1_w},      {"norm1.bias", rl_shape1(d), Z, &b->ln1_b},
            {"attn.qkv.weight", rl_shape2(3 * d, d), KU, &b->qkv_w}, {"attn.qkv.bias", rl_shape1(3 * d), Z, &b->qkv_b},
            {"attn.proj.weight", rl_shape2(d, d), KU, &b->proj_w}, {"attn.proj.bias", rl_shape1(d), Z, &b->proj_b},
            {"norm2.weight", rl_shape1(d), O, &b->ln2_w},      {"norm2.bias", rl_shape1(d), Z, &b->ln2_b},
            {"mlp.fc1.weight", rl_shape2(F, d), KU, &b->fc1_w}, {"mlp.fc1.bias", rl_shape1(F), Z, &b->fc1_b},
            {"mlp.fc2.weight", rl_shape2(d, F), KU, &b->fc2_w}, {"mlp.fc2.bias", rl_shape1(d), Z, &b->fc2_b},
        };
        for (size_t k = 0; k < sizeof e / sizeof e[0]; k++) {
            snprintf(name, sizeof name, "blocks.%lld.%s", (long long)i, e[k].suffix);
            if (add(v, name, e[k].s, e[k].init, e[k].off, err)) return -1;
        }
    }
    return add(v, "merger.ln_q.weight", rl_shape1(d), O, &v->mln_w, err) ||
                   add(v, "merger.ln_q.bias", rl_shape1(d), Z, &v->mln_b, err) ||
                   add(v, "merger.mlp.0.weight", rl_shape2(md, md), KU, &v->m1_w, err) ||
                   add(v, "merger.mlp.0.bias", rl_shape1(md), Z, &v->m1_b, err) ||
                   add(v, "merger.mlp.2.weight", rl_shape2(c->out_hidden, md), KU, &v->m2_w, err) ||
                   add(v, "merger.mlp.2.bias", rl_shape1(c->out_hidden), Z, &v->m2_b, err)
               ? -1
               : 0;
}

rl_vit *rl_vit_new(const rl_vit_config *cfg_in, uint64_t seed, rl_error *err) {
    rl_vit_config cfg = *cfg_in;
    rl_vit_config_default(&cfg);
    if (rl_vit_config_check(&cfg, err)) return NULL;
    rl_vit *v = rl_calloc(1, sizeof *v);
    if (!v) { rl_fail(err, "vit: out of memory"); return NULL; }
    v->cfg = cfg;
    v->blocks = rl_calloc(cfg.depth ? (size_t)cfg.depth : 1, sizeof *v->blocks);
    v->params = rl_params_new("vit", seed);
    if (!v->blocks || !v->params) { rl_fail(err, "vit: out of memory"); rl_vit_free(v); return NULL; }
    v->params_obj = rl_params_object(v->params);
    if (!v->params_obj) { rl_fail(err, "vit: out of memory"); rl_vit_free(v); return NULL; }
    if (declare(v, err) || rl_params_finalize(v->params, err)) {
        rl_fail_prefix(err, "vit: ");
        rl_vit_free(v);
        return NULL;
    }
    return v;
}

static void vit_destroy(void *p) { rl_vit_free(p); }

rl_object *rl_vit_object(rl_vit *v) {
    rl_object *o = rl_object_new("vit", v, vit_destroy);
    if (!o) rl_vit_free(v);
    else o->params = v->params;
    return o;
}

rl_vit *rl_vit_from_object(const rl_object *o) {
    if (!o || !o->type || strcmp(o->type, "vit") != 0) return NULL;
    return o->ptr;
}

int rl_vit_check_grid(const rl_vit_config *c, const int32_t *grid, int64_t n_images, int64_t n_patches,
                      int64_t *max_len, int64_t *n_merged, rl_error *err) {
    const int64_t m = c->merge;
    int64_t total = 0, mx = 0;
    for (int64_t b = 0; b < n_images; b++) {
        const int64_t h = grid[2 * b], w = grid[2 * b + 1];
        if (h < 1 || w < 1 || h % m != 0 || w % m != 0)
            return rl_fail(err, "image %lld: grid %lld x %lld patches is not a positive multiple of the merge size %lld "
                           "(image sides must be multiples of patch x merge = %lld pixels)", (long long)b, (long long)h,
                           (long long)w, (long long)m, (long long)(c->patch * m));
        const int64_t k = h * w; /* each side < 2^31: no overflow */
        total += k;
        if (total > n_patches)
            return rl_fail(err, "grid describes more patches (at least %lld by image %lld) than the %lld pixel rows given",
                           (long long)total, (long long)b, (long long)n_patches);
        if (k > mx) mx = k;
    }
    if (total != n_patches)
        return rl_fail(err, "grid describes %lld patches but %lld pixel rows were given", (long long)total,
                       (long long)n_patches);
    if (max_len) *max_len = mx;
    if (n_merged) *n_merged = total / (m * m);
    return 0;
}

int rl_vit_patchify(const rl_vit_config *c, const float *img, int64_t H, int64_t W, float *out, rl_error *err) {
    const int64_t p = c->patch, m = c->merge, C = c->channels;
    if (H < p * m || W < p * m || H % (p * m) != 0 || W % (p * m) != 0)
        return rl_fail(err, "image %lld x %lld pixels: sides must be positive multiples of patch x merge = %lld",
                       (long long)H, (long long)W, (long long)(p * m));
    const int64_t h = H / p, w = W / p, P = C * p * p;
    int64_t r = 0;
    for (int64_t bh = 0; bh < h / m; bh++)
        for (int64_t bw = 0; bw < w / m; bw++)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < m; j++, r++) {
                    const int64_t py = (bh * m + i) * p, px = (bw * m + j) * p;
                    float *o = out + r * P;
                    for (int64_t ch = 0; ch < C; ch++)
                        for (int64_t y = 0; y < p; y++)
                            memcpy(o + (ch * p + y) * p, img + (ch * H + py + y) * W + px, (size_t)p * sizeof(float));
                }
    return 0;
}
