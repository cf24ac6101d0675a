/* AdamW, schedules and clipping over flat float arrays. The per-element
 * arithmetic follows torch's single-tensor AdamW in float32 (scalars such as
 * the bias corrections are computed in double, as Python does, then rounded),
 * so a reference run in PyTorch matches to float rounding. */
#include "adamw.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Below this many elements threads cost more than they save. */
#define RL_ADAMW_PAR_MIN 32768

int rl_adamw_init(rl_adamw *s, size_t n, rl_error *err) {
    memset(s, 0, sizeof *s);
    if (n == 0) return 0;
    size_t bytes;
    if (rl_mul_size(n, sizeof(float), &bytes)) return rl_fail(err, "AdamW state for %zu parameters overflows", n);
    s->m = rl_malloc_aligned(bytes);
    s->v = rl_malloc_aligned(bytes);
    if (!s->m || !s->v) {
        rl_adamw_free(s);
        return rl_fail(err, "out of memory allocating AdamW state for %zu parameters", n);
    }
    memset(s->m, 0, bytes);
    memset(s->v, 0, bytes);
    s->n = n;
    return 0;
}

void rl_adamw_free(rl_adamw *s) {
    if (!s) return;
    rl_free_aligned(s->m);
    rl_free_aligned(s->v);
    memset(s, 0, sizeof *s);
}

void rl_adamw_reset(rl_adamw *s) {
    if (s->n) {
        memset(s->m, 0, s->n * sizeof(float));
        memset(s->v, 0, s->n * sizeof(float));
    }
    s->t = 0;
}

void rl_adamw_step(rl_adamw *s, const rl_adamw_hparams *h, double lr, float *param, const float *grad) {
    s->t += 1;
    const double t = (double)s->t;
    const float decay = (float)(1.0 - lr * h->weight_decay);
    const float b1 = (float)h->beta1, b2 = (float)h->beta2;
    const float one_b1 = (float)(1.0 - h->beta1), one_b2 = (float)(1.0 - h->beta2);
    const double bc1 = 1.0 - pow(h->beta1, t);
    const double bc2 = 1.0 - pow(h->beta2, t);
    const float step_size = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)h->eps;
    float *m = s->m, *v = s->v;
    const ptrdiff_t n = (ptrdiff_t)s->n;
#pragma omp parallel for schedule(static) if (n >= RL_ADAMW_PAR_MIN)
    for (ptrdiff_t i = 0; i < n; i++) {
        float g = grad[i];
        float p = param[i] * decay;
        float mi = m[i] * b1 + one_b1 * g;
        float vi = v[i] * b2 + one_b2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
    }
}

void rl_adamw_get_state(const rl_adamw *s, int64_t *t, const float **m, const float **v, size_t *n) {
    if (t) *t = s->t;
    if (m) *m = s->m;
    if (v) *v = s->v;
    if (n) *n = s->n;
}

int rl_adamw_set_state(rl_adamw *s, int64_t t, const float *m, const float *v, size_t n, rl_error *err) {
    if (n != s->n) return rl_fail(err, "AdamW state has %zu values, expected %zu", n, s->n);
    if (t < 0) return rl_fail(err, "AdamW step count %lld is negative", (long long)t);
    if (n && (!m || !v)) return rl_fail(err, "AdamW state: missing m or v");
    if (n) {
        memcpy(s->m, m, n * sizeof(float));
        memcpy(s->v, v, n * sizeof(float));
    }
    s->t = t;
    return 0;
}

double rl_lr_at(const rl_lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (s->warmup > 0 && step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == RL_LR_CONSTANT || s->decay_steps <= 0) return s->lr;
    int64_t k = step - (s->warmup > 0 ? s->warmup : 0);
    if (k >= s->decay_steps) return s->min_lr;
    double progress = (double)k / (double)s->decay_steps;
    return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * progress));
}

int rl_lr_kind_parse(const char *name, rl_lr_kind *out) {
    if (!name) return -1;
    if (strcmp(name, "constant") == 0) *out = RL_LR_CONSTANT;
    else if (strcmp(name, "cosine") == 0) *out = RL_LR_COSINE;
    else return -1;
    return 0;
}

double rl_grad_norm(const float *g, size_t n) {
    /* Four partial sums break the dependency chain yet keep a fixed order. */
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += (double)g[i] * g[i];
        a1 += (double)g[i + 1] * g[i + 1];
        a2 += (double)g[i + 2] * g[i + 2];
        a3 += (double)g[i + 3] * g[i + 3];
    }
    for (; i < n; i++) a0 += (double)g[i] * g[i];
    return sqrt((a0 + a1) + (a2 + a3));
}

void rl_scale_f32(float *g, size_t n, float s) {
    const ptrdiff_t m = (ptrdiff_t)n;
#pragma omp parallel for schedule(static) if (m >= RL_ADAMW_PAR_MIN)
    for (ptrdiff_t i = 0; i < m; i++) g[i] *= s;
}

double rl_clip_grad_norm(float *g, size_t n, double max_norm) {
    double norm = rl_grad_norm(g, n);
    if (!(max_norm > 0) || !isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) rl_scale_f32(g, n, (float)coef);
    return norm;
}
