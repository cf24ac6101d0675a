/* safetensors files: a memory-mapped reader that validates the header
 * (offsets inside the file, no overlaps or gaps, dtype/shape consistent with
 * byte sizes) and a writer that writes to a temporary name and renames, so an
 * interrupted save never destroys the previous file. */
#ifndef RL_SAFETENSORS_H
#define RL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

typedef struct rl_st_info {
    char *name;
    rl_dtype dtype;          /* F32, BF16, I32, U8 (other safetensors dtypes are an error) */
    rl_shape shape;
    const void *data;        /* into the mapping */
    size_t nbytes;
} rl_st_info;

typedef struct rl_st_file rl_st_file;

/* Errors name the file: "model.safetensors: tensor 'x' ends past the end of the file". */
int  rl_st_open(const char *path, rl_st_file **out, rl_error *err);
void rl_st_close(rl_st_file *f);
int  rl_st_count(const rl_st_file *f);
const rl_st_info *rl_st_at(const rl_st_file *f, int i);
const rl_st_info *rl_st_find(const rl_st_file *f, const char *name);
const char *rl_st_path(const rl_st_file *f);
/* The "__metadata__" object's value for key, or NULL. */
const char *rl_st_metadata(const rl_st_file *f, const char *key);

/* Copies tensor `name` into dst as f32 (converting bf16), checking that the
 * element count equals n. Fails with the file and tensor named. */
int rl_st_read_f32(const rl_st_file *f, const char *name, float *dst, size_t n, rl_error *err);
/* Same, and checks the shape exactly. */
int rl_st_read_f32_shape(const rl_st_file *f, const char *name, const rl_shape *shape, float *dst, rl_error *err);

typedef struct rl_st_entry {
    const char *name;
    rl_dtype dtype;          /* stored dtype */
    rl_shape shape;
    const void *data;        /* source data, in `src_dtype` */
    rl_dtype src_dtype;      /* F32 data may be written as BF16 (converted on the fly) */
} rl_st_entry;

/* Writes entries (in the given order, names must be unique) plus optional
 * string metadata (key/value pairs, n_meta of them) to path atomically. */
int rl_st_write(const char *path, const rl_st_entry *entries, int n, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, rl_error *err);

#endif
