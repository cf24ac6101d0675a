/* Qwen2 weights from/to safetensors: a single model.safetensors or the
 * shards named by model.safetensors.index.json ("weight_map": tensor ->
 * file), f32 or bf16 on disk, f32 in memory. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "qwen2.h"
#include "safetensors.h"

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int join(char *buf, size_t cap, const char *dir, const char *name, rl_error *err) {
    if (snprintf(buf, cap, "%s/%s", dir, name) >= (int)cap) return rl_fail(err, "%s/%s: path too long", dir, name);
    return 0;
}

/* Reads one declared tensor from f, with the tensor and file named on error. */
static int read_entry(rl_params *p, const rl_param_entry *e, const rl_st_file *f, rl_error *err) {
    const rl_st_info *info = rl_st_find(f, e->name);
    if (!info) return rl_fail(err, "%s: missing tensor '%s'", rl_st_path(f), e->name);
    if (!rl_shape_equal(&info->shape, &e->shape)) {
        char a[96], b[96];
        return rl_fail(err, "%s: tensor '%s' has shape %s, expected %s", rl_st_path(f), e->name,
                       rl_shape_str(&info->shape, a, sizeof a), rl_shape_str(&e->shape, b, sizeof b));
    }
    if (info->dtype != RL_F32 && info->dtype != RL_BF16)
        return rl_fail(err, "%s: tensor '%s' is %s, expected F32 or BF16", rl_st_path(f), e->name,
                       rl_dtype_name(info->dtype));
    return rl_st_read_f32_shape(f, e->name, &e->shape, p->data + e->offset, err);
}

static int load_single(rl_qwen2 *m, const char *path, rl_error *err) {
    rl_st_file *f = NULL;
    if (rl_st_open(path, &f, err)) return -1;
    int rc = 0;
    for (int i = 0; i < m->params->n && rc == 0; i++) rc = read_entry(m->params, &m->params->entries[i], f, err);
    rl_st_close(f);
    return rc;
}

static int load_sharded(rl_qwen2 *m, const char *dir, const char *index_path, rl_error *err) {
    json_error_t je;
    json_t *root = json_load_file(index_path, 0, &je);
    if (!root) return rl_fail(err, "%s: cannot read JSON (line %d: %s)", index_path, je.line, je.text);
    int rc = -1;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        rl_fail(err, "%s: missing object 'weight_map'", index_path);
        goto done;
    }
    /* Shard by shard: each file is mapped once and closed before the next. */
    int n = m->params->n;
    char *done_flags = rl_calloc((size_t)(n > 0 ? n : 1), 1);
    if (!done_flags) {
        rl_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const rl_param_entry *e = &m->params->entries[i];
        json_t *fn = json_object_get(map, e->name);
        if (!json_is_string(fn)) {
            rl_fail(err, "%s: missing tensor '%s' in weight_map", index_path, e->name);
            goto free_flags;
        }
        if (strchr(json_string_value(fn), '/')) {
            rl_fail(err, "%s: shard name '%s' for tensor '%s' must be a plain file name", index_path,
                    json_string_value(fn), e->name);
            goto free_flags;
        }
    }
    for (int i = 0; i < n; i++) {
        if (done_flags[i]) continue;
        const char *shard = json_string_value(json_object_get(map, m->params->entries[i].name));
        char path[4096];
        if (join(path, sizeof path, dir, shard, err)) goto free_flags;
        rl_st_file *f = NULL;
        if (rl_st_open(path, &f, err)) goto free_flags;
        for (int j = i; j < n; j++) {
            if (done_flags[j]) continue;
            const rl_param_entry *e = &m->params->entries[j];
            if (strcmp(json_string_value(json_object_get(map, e->name)), shard) != 0) continue;
            if (read_entry(m->params, e, f, err)) {
                rl_st_close(f);
                goto free_flags;
            }
            done_flags[j] = 1;
        }
        rl_st_close(f);
    }
    rc = 0;
free_flags:
    rl_free(done_flags);
done:
    json_decref(root);
    return rc;
}

int rl_qwen2_load_weights(rl_qwen2 *m, const char *dir, rl_error *err) {
    if (rl_params_allocate(m->params, err)) return -1;
    char path[4096];
    if (join(path, sizeof path, dir, "model.safetensors", err)) return -1;
    if (file_exists(path)) return load_single(m, path, err);
    char index[4096];
    if (join(index, sizeof index, dir, "model.safetensors.index.json", err)) return -1;
    if (file_exists(index)) return load_sharded(m, dir, index, err);
    return rl_fail(err, "%s: neither model.safetensors nor model.safetensors.index.json found", dir);
}

int rl_qwen2_load(const char *dir, const char *params_name, rl_qwen2 **out, rl_error *err) {
    *out = NULL;
    char path[4096];
    rl_qwen2_config cfg;
    if (join(path, sizeof path, dir, "config.json", err) || rl_qwen2_config_load(path, &cfg, err)) return -1;
    rl_qwen2 *m = NULL;
    if (rl_qwen2_new(&cfg, params_name, 0, &m, err)) return -1;
    if (rl_qwen2_load_weights(m, dir, err)) {
        rl_qwen2_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int rl_qwen2_save(const rl_qwen2 *m, const char *dir, rl_dtype dtype, rl_error *err) {
    if (dtype != RL_F32 && dtype != RL_BF16) return rl_fail(err, "%s: weights are saved as f32 or bf16", dir);
    if (!m->params->finalized) return rl_fail(err, "%s: model parameters are not allocated", dir);
    int n = m->params->n;
    rl_st_entry *ent = rl_calloc((size_t)n, sizeof *ent);
    if (!ent) return rl_fail(err, "out of memory");
    for (int i = 0; i < n; i++) {
        const rl_param_entry *e = &m->params->entries[i];
        ent[i].name = e->name;
        ent[i].dtype = dtype;
        ent[i].shape = e->shape;
        ent[i].data = m->params->data + e->offset;
        ent[i].src_dtype = RL_F32;
    }
    const char *keys[] = {"format"}, *vals[] = {"pt"};
    char path[4096];
    int rc = join(path, sizeof path, dir, "model.safetensors", err);
    if (rc == 0) rc = rl_st_write(path, ent, n, keys, vals, 1, err);
    rl_free(ent);
    if (rc) return -1;
    if (join(path, sizeof path, dir, "config.json", err)) return -1;
    return rl_qwen2_config_save(path, &m->cfg, err);
}
