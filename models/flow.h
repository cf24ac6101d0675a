/* The flow network v_phi(x, t, c, tau) of RLFR ("SimpleMLPAdaLN", DESIGN.md
 * section 2): input projection, sinusoidal embedders of the flow time t and
 * the layer fraction tau, a condition projection, `depth` residual blocks
 * with adaLN (shift, scale, gate) modulation of an RMSNorm, and a final
 * adaLN layer. Parameters live in one rl_params set (flat buffer + flat
 * gradient) with the reference implementation's tensor names.
 *
 * Forward and backward never allocate: the caller hands in an activation
 * buffer (saved from forward to backward) and a scratch buffer, sized by
 * rl_flow_acts_floats / rl_flow_scratch_floats for a given row count. */
#ifndef RL_FLOW_H
#define RL_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "params.h"
#include "value.h"

#define RL_FLOW_FREQ_DIM 256

typedef struct rl_flow_config {
    int64_t dim;     /* d: size of the latents (the policy's hidden size) */
    int64_t width;   /* w: the network's width (default d) */
    int64_t depth;   /* K: number of residual blocks (default 4) */
    float eps;       /* RMSNorm epsilon (the policy's rms_norm_eps; default 1e-6) */
} rl_flow_config;

/* Per-block parameter offsets (in floats into params->data / params->grad). */
typedef struct rl_flow_block {
    size_t norm_w, fc1_w, fc1_b, fc2_w, fc2_b;
} rl_flow_block;

typedef struct rl_flow {
    rl_flow_config cfg;
    rl_params *params;        /* owned by params_obj */
    rl_object *params_obj;    /* type "params": what an optimizer node is given */
    size_t in_w, in_b, cond_w, cond_b;
    size_t temb_w0, temb_b0, temb_w2, temb_b2;
    size_t lemb_w0, lemb_b0, lemb_w2, lemb_b2;
    /* All adaLN weights form one contiguous [(3K+2)w, w] matrix (and their
       biases one [(3K+2)w] vector), so the K+1 modulations that share the
       input SiLU(y) run as a single GEMM. */
    size_t mod_w, mod_b;
    rl_flow_block *blocks;    /* depth entries */
    size_t final_norm_w, out_w, out_b;
} rl_flow;

/* Fills defaults (width = dim when 0, depth 4 when 0, eps 1e-6 when 0). */
void rl_flow_config_default(rl_flow_config *cfg, int64_t dim);
/* One clear line if a size is out of range. */
int rl_flow_config_check(const rl_flow_config *cfg, rl_error *err);

/* Declares the parameters and initialises them (Xavier-uniform weights from
 * `seed`, zero biases, RMSNorm weights 1, adaLN outputs and the final linear
 * zeroed, so v_phi starts at 0). */
rl_flow *rl_flow_new(const rl_flow_config *cfg, uint64_t seed, rl_error *err);
void rl_flow_free(rl_flow *f);
/* Wraps f in an rl_object of type "flow" (takes ownership). */
rl_object *rl_flow_object(rl_flow *f);
/* The flow inside an object of type "flow", or NULL. */
rl_flow *rl_flow_from_object(const rl_object *o);
size_t rl_flow_param_count(const rl_flow *f);
/* Checks that the flow fits latents of size `dim` (e.g. the policy's hidden
 * size): "flow network has dim 64 but the policy's hidden size is 96". */
int rl_flow_check_dim(const rl_flow *f, int64_t dim, rl_error *err);

/* Floats needed for n rows (0 if the sizes overflow). */
size_t rl_flow_acts_floats(const rl_flow_config *cfg, int64_t n);
size_t rl_flow_scratch_floats(const rl_flow_config *cfg, int64_t n);

/* out[n, d] = v_phi(x, t, c, tau) for n rows (x, c: [n, d]; t, tau: [n]).
 * acts (rl_flow_acts_floats(n)) receives what backward needs. */
void rl_flow_forward(const rl_flow *f, int64_t n, const float *x, const float *t, const float *c,
                     const float *tau, float *acts, float *out);
/* Given d_out [n, d], ACCUMULATES parameter gradients into grad (laid out
 * like params->data) and, where non-NULL, into d_x and d_c [n, d]. x, t, c,
 * tau, acts are as passed to / left by the forward. Gradients for t and tau
 * are not computed (the flow time and layer fraction are never learned). */
void rl_flow_backward(const rl_flow *f, int64_t n, const float *x, const float *t, const float *c,
                      const float *tau, const float *acts, const float *d_out, float *scratch,
                      float *grad, float *d_x, float *d_c);

/* Flow matching with linear interpolation, per row r:
 *   x_t = t·x1 + (1−t)·eps, u = x1 − eps, loss[r] = mean_j (v_phi(x_t) − u)^2.
 * xt [n, d] and v [n, d] are outputs the backward reuses. */
void rl_flow_fm_forward(const rl_flow *f, int64_t n, const float *x1, const float *eps, const float *t,
                        const float *c, const float *tau, float *xt, float *acts, float *v, float *loss);
/* d_v[r, j] = coef[r] · 2·(v − u)[r, j] / d: the gradient of sum_r coef[r]·loss[r]. */
void rl_flow_fm_dv(int64_t n, int64_t d, const float *x1, const float *eps, const float *v,
                   const float *coef, float *d_v);

/* Files. Saving writes `dir/flow.safetensors` (config also in its metadata)
 * and `dir/flow_config.json`, each atomically. Loading reads the config from
 * flow_config.json (or, without it, the safetensors metadata) and checks every
 * tensor's shape; errors name the file and the tensor. */
int rl_flow_save(const rl_flow *f, const char *dir, rl_error *err);
rl_flow *rl_flow_load(const char *dir, rl_error *err);
/* The same for an explicit safetensors path (config from its metadata). */
int rl_flow_save_file(const rl_flow *f, const char *path, rl_error *err);
rl_flow *rl_flow_load_file(const char *path, rl_error *err);
/* {"dim": .., "width": .., "depth": .., "eps": ..} into buf (0, or -1 if too small). */
int rl_flow_config_json(const rl_flow_config *cfg, char *buf, size_t cap);
int rl_flow_config_parse(const char *json, const char *what, rl_flow_config *cfg, rl_error *err);

#endif
