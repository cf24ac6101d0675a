#include "tensor.h"

#include <stdio.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtype_info[RL_DTYPE_COUNT] = {
    [RL_F32] = {"f32", 4}, [RL_BF16] = {"bf16", 2}, [RL_I32] = {"i32", 4}, [RL_U8] = {"u8", 1},
};

size_t rl_dtype_size(rl_dtype t) { return (unsigned)t < RL_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *rl_dtype_name(rl_dtype t) { return (unsigned)t < RL_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int rl_dtype_parse(const char *name, rl_dtype *out) {
    for (int i = 0; i < RL_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) { *out = (rl_dtype)i; return 0; }
    return -1;
}

rl_shape rl_shape_make(int ndim, const int64_t *dims) {
    rl_shape s = {0};
    s.ndim = ndim < 0 ? 0 : (ndim > RL_MAX_DIMS ? RL_MAX_DIMS : ndim);
    for (int i = 0; i < s.ndim; i++) s.dim[i] = dims[i];
    return s;
}
rl_shape rl_shape1(int64_t a) { return (rl_shape){1, {a}}; }
rl_shape rl_shape2(int64_t a, int64_t b) { return (rl_shape){2, {a, b}}; }
rl_shape rl_shape3(int64_t a, int64_t b, int64_t c) { return (rl_shape){3, {a, b, c}}; }
rl_shape rl_shape4(int64_t a, int64_t b, int64_t c, int64_t d) { return (rl_shape){4, {a, b, c, d}}; }

int rl_shape_equal(const rl_shape *a, const rl_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++) if (a->dim[i] != b->dim[i]) return 0;
    return 1;
}

int64_t rl_shape_numel(const rl_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->dim[i] < 0) return -1;
        if (s->dim[i] && n > INT64_MAX / s->dim[i]) return -1;
        n *= s->dim[i];
    }
    return n;
}

const char *rl_shape_str(const rl_shape *s, char *buf, size_t cap) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "[");
    for (int i = 0; i < s->ndim; i++)
        off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    snprintf(buf + off, off < cap ? cap - off : 0, "]");
    return buf;
}

int64_t rl_tensor_numel(const rl_tensor *t) { return rl_shape_numel(&t->shape); }

size_t rl_tensor_nbytes(const rl_tensor *t) {
    int64_t n = rl_tensor_numel(t);
    return n < 0 ? 0 : (size_t)n * rl_dtype_size(t->dtype);
}

int rl_tensor_view_rows(const rl_tensor *t, int64_t start, int64_t count, rl_tensor *out, rl_error *err) {
    if (t->shape.ndim < 1) return rl_fail(err, "cannot slice a scalar");
    if (start < 0 || count < 0 || start + count > t->shape.dim[0])
        return rl_fail(err, "row slice [%lld, %lld) outside a first axis of %lld", (long long)start,
                       (long long)(start + count), (long long)t->shape.dim[0]);
    int64_t row = 1;
    for (int i = 1; i < t->shape.ndim; i++) row *= t->shape.dim[i];
    *out = *t;
    out->shape.dim[0] = count;
    out->data = (char *)t->data + (size_t)(start * row) * rl_dtype_size(t->dtype);
    return 0;
}

int rl_tensor_reshape(const rl_tensor *t, rl_shape shape, rl_tensor *out, rl_error *err) {
    if (rl_shape_numel(&shape) != rl_tensor_numel(t)) {
        char a[96], b[96];
        return rl_fail(err, "cannot reshape %s to %s", rl_shape_str(&t->shape, a, sizeof a), rl_shape_str(&shape, b, sizeof b));
    }
    *out = *t;
    out->shape = shape;
    return 0;
}

uint16_t rl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float rl_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void rl_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = rl_f32_to_bf16(src[i]);
}

void rl_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = rl_bf16_to_f32(src[i]);
}
