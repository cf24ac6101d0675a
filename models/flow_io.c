/* Flow network files: flow.safetensors (tensors named as in the reference
 * implementation, config in the metadata) and flow_config.json. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "safetensors.h"

int rl_flow_config_json(const rl_flow_config *c, char *buf, size_t cap) {
    int k = snprintf(buf, cap, "{\"dim\": %lld, \"width\": %lld, \"depth\": %lld, \"eps\": %.9g}",
                     (long long)c->dim, (long long)c->width, (long long)c->depth, (double)c->eps);
    return (k < 0 || (size_t)k >= cap) ? -1 : 0;
}

static int get_int(json_t *root, const char *key, const char *what, int64_t *out, rl_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v) return rl_fail(err, "%s: flow config lacks \"%s\"", what, key);
    if (!json_is_integer(v)) return rl_fail(err, "%s: flow config \"%s\" is not an integer", what, key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int rl_flow_config_parse(const char *text, const char *what, rl_flow_config *cfg, rl_error *err) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return rl_fail(err, "%s: invalid flow config JSON at line %d: %s", what, je.line, je.text);
    memset(cfg, 0, sizeof *cfg);
    int rc = 0;
    if (!json_is_object(root)) rc = rl_fail(err, "%s: flow config is not a JSON object", what);
    if (!rc) rc = get_int(root, "dim", what, &cfg->dim, err);
    if (!rc) rc = get_int(root, "width", what, &cfg->width, err);
    if (!rc) rc = get_int(root, "depth", what, &cfg->depth, err);
    if (!rc) {
        json_t *e = json_object_get(root, "eps");
        if (e && !json_is_number(e)) rc = rl_fail(err, "%s: flow config \"eps\" is not a number", what);
        cfg->eps = e ? (float)json_number_value(e) : 1e-6f;
    }
    json_decref(root);
    if (!rc && rl_flow_config_check(cfg, err)) rc = rl_fail_prefix(err, "%s: ", what);
    return rc;
}

int rl_flow_save_file(const rl_flow *f, const char *path, rl_error *err) {
    const rl_params *p = f->params;
    rl_st_entry *e = rl_calloc((size_t)p->n, sizeof *e);
    if (!e) return rl_fail(err, "%s: out of memory", path);
    for (int i = 0; i < p->n; i++) {
        e[i].name = p->entries[i].name;
        e[i].dtype = RL_F32;
        e[i].src_dtype = RL_F32;
        e[i].shape = p->entries[i].shape;
        e[i].data = p->data + p->entries[i].offset;
    }
    char cfg[256];
    rl_flow_config_json(&f->cfg, cfg, sizeof cfg);
    const char *keys[] = {"format", "rlfr_flow_config"};
    const char *vals[] = {"pt", cfg};
    int rc = rl_st_write(path, e, p->n, keys, vals, 2, err);
    rl_free(e);
    return rc;
}

static int join(char *buf, size_t cap, const char *dir, const char *name, rl_error *err) {
    int k = snprintf(buf, cap, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= cap) return rl_fail(err, "%s: path too long", dir);
    return 0;
}

/* Written next to the tensors so a model bundle's reader (and a person) sees
 * the flow's shape without parsing safetensors; temporary name + rename. */
static int write_text_atomic(const char *path, const char *text, rl_error *err) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return rl_fail(err, "%s: path too long", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return rl_fail(err, "%s: cannot write: %s", tmp, strerror(errno));
    int bad = fputs(text, fp) < 0 || fputc('\n', fp) == EOF;
    bad |= fclose(fp) != 0;
    if (bad) { remove(tmp); return rl_fail(err, "%s: write failed", tmp); }
    if (rename(tmp, path) != 0) { remove(tmp); return rl_fail(err, "%s: cannot rename: %s", path, strerror(errno)); }
    return 0;
}

int rl_flow_save(const rl_flow *f, const char *dir, rl_error *err) {
    char path[4096], cfg[256];
    if (join(path, sizeof path, dir, "flow.safetensors", err) || rl_flow_save_file(f, path, err)) return -1;
    rl_flow_config_json(&f->cfg, cfg, sizeof cfg);
    if (join(path, sizeof path, dir, "flow_config.json", err)) return -1;
    return write_text_atomic(path, cfg, err);
}

static rl_flow *load_with(const char *path, const rl_flow_config *given, rl_error *err) {
    rl_st_file *st = NULL;
    if (rl_st_open(path, &st, err)) return NULL;
    rl_flow_config cfg;
    if (given) {
        cfg = *given;
    } else {
        const char *meta = rl_st_metadata(st, "rlfr_flow_config");
        if (!meta) {
            rl_fail(err, "%s: no flow config (neither flow_config.json nor \"rlfr_flow_config\" metadata)", path);
            rl_st_close(st);
            return NULL;
        }
        if (rl_flow_config_parse(meta, path, &cfg, err)) { rl_st_close(st); return NULL; }
    }
    rl_flow *f = rl_flow_new(&cfg, 0, err);
    if (!f) { rl_st_close(st); return NULL; }
    const rl_params *p = f->params;
    for (int i = 0; i < p->n; i++) {
        const rl_param_entry *e = &p->entries[i];
        if (!rl_st_find(st, e->name)) {
            rl_fail(err, "%s: missing tensor '%s' (a flow of dim %lld, width %lld, depth %lld)", path, e->name,
                    (long long)cfg.dim, (long long)cfg.width, (long long)cfg.depth);
            goto fail;
        }
        if (rl_st_read_f32_shape(st, e->name, &e->shape, p->data + e->offset, err)) goto fail;
    }
    /* A checkpoint with more blocks than its config says is corrupt, not a
       smaller network: refuse leftover tensors. */
    if (rl_st_count(st) != p->n) {
        for (int i = 0; i < rl_st_count(st); i++)
            if (!rl_params_find(p, rl_st_at(st, i)->name)) {
                rl_fail(err, "%s: unexpected tensor '%s' for a flow of depth %lld", path, rl_st_at(st, i)->name,
                        (long long)cfg.depth);
                goto fail;
            }
    }
    rl_st_close(st);
    return f;
fail:
    rl_st_close(st);
    rl_flow_free(f);
    return NULL;
}

rl_flow *rl_flow_load_file(const char *path, rl_error *err) { return load_with(path, NULL, err); }

rl_flow *rl_flow_load(const char *dir, rl_error *err) {
    char path[4096];
    if (join(path, sizeof path, dir, "flow_config.json", err)) return NULL;
    FILE *fp = fopen(path, "rb");
    rl_flow_config cfg;
    int have = 0;
    if (fp) {
        char text[4096];
        size_t k = fread(text, 1, sizeof text - 1, fp);
        fclose(fp);
        text[k] = 0;
        if (rl_flow_config_parse(text, path, &cfg, err)) return NULL;
        have = 1;
    }
    if (join(path, sizeof path, dir, "flow.safetensors", err)) return NULL;
    return load_with(path, have ? &cfg : NULL, err);
}
