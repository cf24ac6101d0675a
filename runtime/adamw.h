/* AdamW over flat float arrays (no graph): the update of torch.optim.AdamW
 * (decoupled weight decay, bias-corrected moments), learning-rate schedules,
 * and global-norm gradient clipping with torch's clip_grad_norm_ semantics.
 * The optimizer node (nodes/optimizer.c) composes these. */
#ifndef RL_ADAMW_H
#define RL_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct rl_adamw_hparams {
    double beta1, beta2;   /* torch defaults 0.9, 0.999 */
    double eps;            /* added to sqrt(v_hat); torch default 1e-8 */
    double weight_decay;   /* decoupled: p *= 1 - lr * weight_decay before the Adam step */
} rl_adamw_hparams;

/* Optimizer state: first and second moments and the number of updates done. */
typedef struct rl_adamw {
    size_t n;
    float *m, *v;
    int64_t t;
} rl_adamw;

/* Allocates zeroed m and v for n parameters (n may be 0) and sets t = 0. */
int  rl_adamw_init(rl_adamw *s, size_t n, rl_error *err);
void rl_adamw_free(rl_adamw *s);
void rl_adamw_reset(rl_adamw *s);

/* One update of param[0..n) from grad with learning rate lr: t += 1, then
 *   p <- p * (1 - lr*wd);  m <- b1*m + (1-b1)*g;  v <- b2*v + (1-b2)*g^2
 *   p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * exactly as torch.optim.AdamW (float32 arithmetic per element). Does not allocate. */
void rl_adamw_step(rl_adamw *s, const rl_adamw_hparams *h, double lr, float *param, const float *grad);

/* Checkpointing: the state is (t, m[n], v[n]). set copies in and fails if n differs. */
void rl_adamw_get_state(const rl_adamw *s, int64_t *t, const float **m, const float **v, size_t *n);
int  rl_adamw_set_state(rl_adamw *s, int64_t t, const float *m, const float *v, size_t n, rl_error *err);

/* Learning-rate schedules. `step` is the number of updates already done
 * (0 for the first update). Both kinds start with a linear warmup when
 * warmup > 0: lr * (step+1)/warmup for step < warmup (so the first update is
 * not wasted at lr 0). Then:
 *   constant: lr.
 *   cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * k/decay_steps)) / 2 with
 *             k = step - warmup, for k < decay_steps; min_lr afterwards.
 *             decay_steps = 0 means no decay (lr after warmup). */
typedef enum rl_lr_kind { RL_LR_CONSTANT = 0, RL_LR_COSINE } rl_lr_kind;

typedef struct rl_lr_schedule {
    rl_lr_kind kind;
    double lr, min_lr;
    int64_t warmup, decay_steps;
} rl_lr_schedule;

double rl_lr_at(const rl_lr_schedule *s, int64_t step);
int    rl_lr_kind_parse(const char *name, rl_lr_kind *out);   /* "constant", "cosine" */

/* L2 norm of g[0..n), accumulated in double in a fixed order (independent of
 * the thread count). */
double rl_grad_norm(const float *g, size_t n);
/* torch.nn.utils.clip_grad_norm_: norm = ||g||; if max_norm > 0, scales g by
 * min(1, max_norm / (norm + 1e-6)). Returns the pre-clip norm (NaN/Inf passes
 * through, with g left unscaled, so the caller can refuse the update). */
double rl_clip_grad_norm(float *g, size_t n, double max_norm);
void   rl_scale_f32(float *g, size_t n, float s);

#endif
