/* Vision encoder files: vision.safetensors (tensors under the names of
 * vit_net.c, config also in the metadata) and vision_config.json with
 * Qwen2-VL's vision_config key names where one exists. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "checkpoint.h"
#include "safetensors.h"
#include "vit.h"

int rl_vit_config_json(const rl_vit_config *c, char *buf, size_t cap) {
    int k = snprintf(buf, cap,
                     "{\"patch_size\": %lld, \"in_channels\": %lld, \"embed_dim\": %lld, \"depth\": %lld, "
                     "\"num_heads\": %lld, \"mlp_dim\": %lld, \"hidden_size\": %lld, \"spatial_merge_size\": %lld, "
                     "\"layer_norm_eps\": %.9g, \"rope_theta\": %.17g}",
                     (long long)c->patch, (long long)c->channels, (long long)c->width, (long long)c->depth,
                     (long long)c->heads, (long long)c->mlp, (long long)c->out_hidden, (long long)c->merge,
                     (double)c->eps, c->rope_theta);
    return (k < 0 || (size_t)k >= cap) ? -1 : 0;
}

static int get_int(json_t *root, const char *key, const char *what, int64_t *out, rl_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v) return rl_fail(err, "%s: vision config lacks \"%s\"", what, key);
    if (!json_is_integer(v)) return rl_fail(err, "%s: vision config \"%s\" is not an integer", what, key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int get_num(json_t *root, const char *key, const char *what, double *out, rl_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v) return 0; /* optional: the default applies */
    if (!json_is_number(v)) return rl_fail(err, "%s: vision config \"%s\" is not a number", what, key);
    *out = json_number_value(v);
    return 0;
}

int rl_vit_config_parse(const char *text, const char *what, rl_vit_config *cfg, rl_error *err) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return rl_fail(err, "%s: invalid vision config JSON at line %d: %s", what, je.line, je.text);
    memset(cfg, 0, sizeof *cfg);
    double eps = 0, theta = 0;
    int rc = 0;
    if (!json_is_object(root)) rc = rl_fail(err, "%s: vision config is not a JSON object", what);
    if (!rc) rc = get_int(root, "patch_size", what, &cfg->patch, err);
    if (!rc) rc = get_int(root, "in_channels", what, &cfg->channels, err);
    if (!rc) rc = get_int(root, "embed_dim", what, &cfg->width, err);
    if (!rc) rc = get_int(root, "depth", what, &cfg->depth, err);
    if (!rc) rc = get_int(root, "num_heads", what, &cfg->heads, err);
    if (!rc) rc = get_int(root, "mlp_dim", what, &cfg->mlp, err);
    if (!rc) rc = get_int(root, "hidden_size", what, &cfg->out_hidden, err);
    if (!rc) rc = get_int(root, "spatial_merge_size", what, &cfg->merge, err);
    if (!rc) rc = get_num(root, "layer_norm_eps", what, &eps, err);
    if (!rc) rc = get_num(root, "rope_theta", what, &theta, err);
    json_decref(root);
    if (rc) return rc;
    cfg->eps = (float)eps;
    cfg->rope_theta = theta;
    rl_vit_config_default(cfg);
    if (rl_vit_config_check(cfg, err)) return rl_fail_prefix(err, "%s: ", what);
    return 0;
}

static int join(char *buf, size_t cap, const char *dir, const char *name, rl_error *err) {
    int k = snprintf(buf, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) return rl_fail(err, "%s: path too long", dir);
    return 0;
}

int rl_vit_save(const rl_vit *v, const char *dir, rl_error *err) {
    char path[4096], cfg[512];
    if (rl_vit_config_json(&v->cfg, cfg, sizeof cfg)) return rl_fail(err, "%s: vision config too long", dir);
    const char *keys[] = {"format", "rlfr_vision_config"};
    const char *vals[] = {"pt", cfg};
    if (join(path, sizeof path, dir, "vision.safetensors", err) ||
        rl_params_save(v->params, path, RL_F32, keys, vals, 2, err))
        return -1;
    if (join(path, sizeof path, dir, "vision_config.json", err)) return -1;
    size_t k = strlen(cfg);
    cfg[k] = '\n';
    return rl_write_file_atomic(path, cfg, k + 1, err);
}

static int read_text(const char *path, char *buf, size_t cap, int *found, rl_error *err) {
    FILE *fp = fopen(path, "rb");
    *found = fp != NULL;
    if (!fp) return 0;
    size_t k = fread(buf, 1, cap - 1, fp);
    int big = !feof(fp) && fgetc(fp) != EOF;
    fclose(fp);
    if (big) return rl_fail(err, "%s: vision config is larger than %zu bytes", path, cap - 1);
    buf[k] = 0;
    return 0;
}

rl_vit *rl_vit_load(const char *dir, rl_error *err) {
    char path[4096], text[4096];
    rl_vit_config cfg;
    int have = 0;
    if (join(path, sizeof path, dir, "vision_config.json", err) || read_text(path, text, sizeof text, &have, err))
        return NULL;
    if (have && rl_vit_config_parse(text, path, &cfg, err)) return NULL;
    if (join(path, sizeof path, dir, "vision.safetensors", err)) return NULL;
    rl_st_file *st = NULL;
    if (rl_st_open(path, &st, err)) return NULL;
    if (!have) {
        const char *meta = rl_st_metadata(st, "rlfr_vision_config");
        if (!meta) {
            rl_fail(err, "%s: no vision config (neither vision_config.json nor \"rlfr_vision_config\" metadata)", path);
            rl_st_close(st);
            return NULL;
        }
        if (rl_vit_config_parse(meta, path, &cfg, err)) { rl_st_close(st); return NULL; }
    }
    rl_vit *v = rl_vit_new(&cfg, 0, err);
    if (!v) { rl_st_close(st); return NULL; }
    const rl_params *p = v->params;
    for (int i = 0; i < p->n; i++) {
        const rl_param_entry *e = &p->entries[i];
        if (!rl_st_find(st, e->name)) {
            rl_fail(err, "%s: missing tensor '%s' (a vision encoder of width %lld, depth %lld)", path, e->name,
                    (long long)cfg.width, (long long)cfg.depth);
            goto fail;
        }
        if (rl_st_read_f32_shape(st, e->name, &e->shape, p->data + e->offset, err)) goto fail;
    }
    /* More blocks on disk than the config says is a corrupt bundle, not a
       smaller encoder. */
    for (int i = 0; i < rl_st_count(st); i++)
        if (!rl_params_find(p, rl_st_at(st, i)->name)) {
            rl_fail(err, "%s: unexpected tensor '%s' for a vision encoder of depth %lld", path, rl_st_at(st, i)->name,
                    (long long)cfg.depth);
            goto fail;
        }
    rl_st_close(st);
    return v;
fail:
    rl_st_close(st);
    rl_vit_free(v);
    return NULL;
}
