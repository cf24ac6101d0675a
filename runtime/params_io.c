/* Saving and loading a whole parameter set as safetensors (tensor names are
 * the set's entry names, so a Qwen2 set written this way is a Hugging Face
 * model.safetensors). */
#include <stdio.h>

#include "alloc.h"
#include "params.h"
#include "safetensors.h"

int rl_params_save(const rl_params *p, const char *path, rl_dtype dtype, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, rl_error *err) {
    if (!p->finalized) return rl_fail(err, "%s: parameter set '%s' has no values yet", path, p->name);
    if (dtype != RL_F32 && dtype != RL_BF16) return rl_fail(err, "%s: parameters are saved as f32 or bf16", path);
    rl_st_entry *e = rl_calloc((size_t)p->n + 1, sizeof *e);
    if (!e) return rl_fail(err, "out of memory");
    for (int i = 0; i < p->n; i++) {
        e[i].name = p->entries[i].name;
        e[i].dtype = dtype;
        e[i].src_dtype = RL_F32;
        e[i].shape = p->entries[i].shape;
        e[i].data = p->data + p->entries[i].offset;
    }
    int rc = rl_st_write(path, e, p->n, meta_keys, meta_values, n_meta, err);
    rl_free(e);
    return rc;
}

int rl_params_load(rl_params *p, const char *path, rl_error *err) {
    if (rl_params_allocate(p, err)) return -1;
    rl_st_file *f;
    if (rl_st_open(path, &f, err)) return -1;
    int rc = 0;
    for (int i = 0; i < p->n && !rc; i++) {
        const rl_param_entry *e = &p->entries[i];
        if (!rl_st_find(f, e->name)) {
            rc = rl_fail(err, "%s: missing tensor '%s' of parameter set '%s'", path, e->name, p->name);
            break;
        }
        rc = rl_st_read_f32_shape(f, e->name, &e->shape, p->data + e->offset, err);
    }
    rl_st_close(f);
    return rc;
}
