#include "params.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "rng.h"

rl_params *rl_params_new(const char *name, uint64_t seed) {
    rl_params *p = rl_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->name = rl_strdup(name ? name : "params");
    p->seed = seed;
    if (!p->name) { rl_free(p); return NULL; }
    return p;
}

void rl_params_free(rl_params *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) rl_free(p->entries[i].name);
    rl_free(p->entries);
    rl_free_aligned(p->data);
    rl_free_aligned(p->grad);
    rl_free(p->name);
    rl_free(p);
}

static void params_destroy(void *ptr) { rl_params_free(ptr); }

rl_object *rl_params_object(rl_params *p) {
    rl_object *o = rl_object_new("params", p, params_destroy);
    if (o) o->params = p;
    return o;
}

rl_params *rl_object_params(const rl_object *o) { return o ? (rl_params *)o->params : NULL; }

const rl_param_entry *rl_params_find(const rl_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->entries[i].name, name) == 0) return &p->entries[i];
    return NULL;
}

int rl_params_add(rl_params *p, const char *name, rl_shape shape, rl_init init, float scale,
                  size_t *offset, rl_error *err) {
    char a[96], b[96];
    const rl_param_entry *old = rl_params_find(p, name);
    if (old) {
        if (!rl_shape_equal(&old->shape, &shape))
            return rl_fail(err, "parameter set '%s': tensor '%s' declared as %s and as %s", p->name, name,
                           rl_shape_str(&old->shape, a, sizeof a), rl_shape_str(&shape, b, sizeof b));
        if (offset) *offset = old->offset;
        return 0;
    }
    if (p->finalized)
        return rl_fail(err, "parameter set '%s' is already allocated: cannot add tensor '%s'", p->name, name);
    int64_t numel = rl_shape_numel(&shape);
    if (numel < 0) return rl_fail(err, "parameter set '%s': tensor '%s' has an invalid shape", p->name, name);
    size_t total;
    if (rl_add_size(p->numel, (size_t)numel, &total))
        return rl_fail(err, "parameter set '%s': size overflows", p->name);
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        rl_param_entry *e = rl_realloc(p->entries, sizeof *e * (size_t)cap);
        if (!e) return rl_fail(err, "out of memory");
        p->entries = e;
        p->cap = cap;
    }
    rl_param_entry *e = &p->entries[p->n];
    memset(e, 0, sizeof *e);
    e->name = rl_strdup(name);
    if (!e->name) return rl_fail(err, "out of memory");
    e->shape = shape;
    e->offset = p->numel;
    e->init = init;
    e->scale = scale;
    p->numel = total;
    p->n++;
    if (offset) *offset = e->offset;
    return 0;
}

/* Fans of a tensor laid out [out, in, ...] as torch computes them. */
static void fans(const rl_shape *s, double *fan_in, double *fan_out) {
    double receptive = 1;
    for (int i = 2; i < s->ndim; i++) receptive *= (double)s->dim[i];
    *fan_in = s->ndim >= 2 ? (double)s->dim[1] * receptive : (s->ndim == 1 ? (double)s->dim[0] : 1);
    *fan_out = s->ndim >= 1 ? (double)s->dim[0] * receptive : 1;
}

static void init_entry(rl_params *p, int index) {
    const rl_param_entry *e = &p->entries[index];
    size_t n = (size_t)rl_shape_numel(&e->shape);
    float *x = p->data + e->offset;
    /* Each tensor draws from its own Philox stream keyed by (set seed, tensor
       index), so adding a tensor at the end never changes the others. */
    uint64_t stream = rl_rng_stream2(0x706172616d73ull /* "params" */, (uint64_t)index);
    double fin, fout, a;
    fans(&e->shape, &fin, &fout);
    switch (e->init) {
    case RL_INIT_ZEROS: memset(x, 0, n * sizeof(float)); return;
    case RL_INIT_ONES: for (size_t i = 0; i < n; i++) x[i] = 1.0f; return;
    case RL_INIT_NORMAL:
        rl_rng_normal_fill(x, n, p->seed, stream, 0);
        for (size_t i = 0; i < n; i++) x[i] *= e->scale;
        return;
    case RL_INIT_UNIFORM: a = e->scale; break;
    case RL_INIT_XAVIER_UNIFORM: a = sqrt(6.0 / (fin + fout)); break;
    case RL_INIT_KAIMING_UNIFORM: a = 1.0 / sqrt(fin > 0 ? fin : 1); break;
    default: a = 0; break;
    }
    rl_rng_uniform_fill(x, n, p->seed, stream, 0); /* [0, 1) */
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * x[i] - 1.0) * a);
}

static int finalize(rl_params *p, int init, rl_error *err) {
    if (p->finalized) return 0;
    size_t bytes;
    if (rl_mul_size(p->numel ? p->numel : 1, sizeof(float), &bytes))
        return rl_fail(err, "parameter set '%s' is too large", p->name);
    p->data = rl_malloc_aligned(bytes);
    p->grad = rl_malloc_aligned(bytes);
    if (!p->data || !p->grad)
        return rl_fail(err, "parameter set '%s': cannot allocate %zu bytes", p->name, 2 * bytes);
    memset(p->grad, 0, bytes);
    if (init)
        for (int i = 0; i < p->n; i++) init_entry(p, i);
    else
        memset(p->data, 0, bytes);
    p->finalized = 1;
    return 0;
}

int rl_params_finalize(rl_params *p, rl_error *err) { return finalize(p, 1, err); }

int rl_params_allocate(rl_params *p, rl_error *err) { return finalize(p, 0, err); }

rl_tensor rl_params_tensor(const rl_params *p, const rl_param_entry *e) {
    rl_tensor t = {RL_F32, e->shape, p->data ? p->data + e->offset : NULL};
    return t;
}

rl_tensor rl_params_grad_tensor(const rl_params *p, const rl_param_entry *e) {
    rl_tensor t = {RL_F32, e->shape, p->grad ? p->grad + e->offset : NULL};
    return t;
}

void rl_params_zero_grad(rl_params *p) {
    if (p->grad) memset(p->grad, 0, p->numel * sizeof(float));
}
