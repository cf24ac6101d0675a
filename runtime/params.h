/* A parameter set: named tensors in one flat f32 buffer with a parallel flat
 * gradient buffer (llm.c style). Never planned: it outlives every step.
 * Nodes declare their tensors at init (rl_params_add); the graph finalises the
 * set at compile time (allocation + seeded initialisation) unless it was
 * already finalised (e.g. loaded from a checkpoint). */
#ifndef RL_PARAMS_H
#define RL_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"
#include "value.h"

typedef enum rl_init {
    RL_INIT_ZEROS = 0,
    RL_INIT_ONES,
    RL_INIT_NORMAL,          /* N(0, scale^2) */
    RL_INIT_UNIFORM,         /* U(-scale, scale) */
    RL_INIT_XAVIER_UNIFORM,  /* U(-a, a), a = sqrt(6/(fan_in+fan_out)) for a [out, in] matrix */
    RL_INIT_KAIMING_UNIFORM, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (torch nn.Linear default) */
} rl_init;

typedef struct rl_param_entry {
    char *name;
    rl_shape shape;
    size_t offset;           /* in floats, into data/grad */
    rl_init init;
    float scale;
} rl_param_entry;

typedef struct rl_params {
    char *name;
    uint64_t seed;
    int n, cap;
    rl_param_entry *entries;
    size_t numel;
    float *data;             /* NULL until finalised */
    float *grad;             /* zeroed at finalise; optimizers zero after each update */
    int finalized;
    int trainable;           /* set by the graph when an optimizer owns the set */
} rl_params;

rl_params *rl_params_new(const char *name, uint64_t seed);
void rl_params_free(rl_params *p);
/* The object wrapper ("params") that scripts pass around as an option value. */
rl_object *rl_params_object(rl_params *p);
/* The parameter set behind an object: a "params" object itself, or any object
   that exposes one (a model); NULL otherwise. */
rl_params *rl_object_params(const rl_object *o);

/* Declares a tensor. Declaring an existing name with the same shape returns the
 * existing entry (weight sharing); another shape is an error. Fails after finalise
 * unless the name already exists with that shape. */
int rl_params_add(rl_params *p, const char *name, rl_shape shape, rl_init init, float scale,
                  size_t *offset, rl_error *err);
int rl_params_finalize(rl_params *p, rl_error *err);
/* Finalises with zeros instead of the seeded initialisation, for a set that
   is about to be read from a file (initialising a 0.5B-parameter set costs
   longer than reading it). No-op when already finalised. */
int rl_params_allocate(rl_params *p, rl_error *err);
const rl_param_entry *rl_params_find(const rl_params *p, const char *name);
/* Tensor views of an entry's values / gradient (valid after finalise). */
rl_tensor rl_params_tensor(const rl_params *p, const rl_param_entry *e);
rl_tensor rl_params_grad_tensor(const rl_params *p, const rl_param_entry *e);
void rl_params_zero_grad(rl_params *p);

/* The whole set as safetensors (entry names as tensor names), written
   atomically as f32 or bf16, with optional string metadata. */
int rl_params_save(const rl_params *p, const char *path, rl_dtype dtype, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, rl_error *err);
/* Finalises the set if needed, then reads every entry (bf16 or f32 on disk,
   shapes checked; extra tensors in the file are ignored). */
int rl_params_load(rl_params *p, const char *path, rl_error *err);
/* A node whose backward runs may skip accumulating into a set that no
   optimizer owns (p->trainable == 0): nobody reads or zeroes those gradients. */

#endif
