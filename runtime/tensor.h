/* Tensors: a dtype, up to 4 dims, contiguous row-major data that the tensor
 * does not own (it points into an arena, a parameter buffer, a mapped file or
 * a separately allocated block). Views slice along the first axis. */
#ifndef RL_TENSOR_H
#define RL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RL_MAX_DIMS 4

typedef enum rl_dtype { RL_F32 = 0, RL_BF16, RL_I32, RL_U8, RL_DTYPE_COUNT } rl_dtype;

typedef struct rl_shape {
    int ndim;                    /* 0 = scalar (one element) */
    int64_t dim[RL_MAX_DIMS];
} rl_shape;

typedef struct rl_tensor {
    rl_dtype dtype;
    rl_shape shape;
    void *data;
} rl_tensor;

size_t      rl_dtype_size(rl_dtype t);
const char *rl_dtype_name(rl_dtype t);
int         rl_dtype_parse(const char *name, rl_dtype *out); /* "f32", "bf16", "i32", "u8" */

rl_shape rl_shape_make(int ndim, const int64_t *dims);
rl_shape rl_shape1(int64_t a);
rl_shape rl_shape2(int64_t a, int64_t b);
rl_shape rl_shape3(int64_t a, int64_t b, int64_t c);
rl_shape rl_shape4(int64_t a, int64_t b, int64_t c, int64_t d);
int      rl_shape_equal(const rl_shape *a, const rl_shape *b);
/* Element count; -1 if a dim is negative or the product overflows. */
int64_t  rl_shape_numel(const rl_shape *s);
/* Writes "[2, 3, 4]" into buf. */
const char *rl_shape_str(const rl_shape *s, char *buf, size_t cap);

int64_t rl_tensor_numel(const rl_tensor *t);
size_t  rl_tensor_nbytes(const rl_tensor *t);
/* Rows [start, start+count) of the first axis, sharing data. */
int rl_tensor_view_rows(const rl_tensor *t, int64_t start, int64_t count, rl_tensor *out, rl_error *err);
/* Same data, another shape with the same element count. */
int rl_tensor_reshape(const rl_tensor *t, rl_shape shape, rl_tensor *out, rl_error *err);

static inline float   *rl_f32(const rl_tensor *t) { return (float *)t->data; }
static inline int32_t *rl_i32(const rl_tensor *t) { return (int32_t *)t->data; }
static inline uint16_t *rl_bf16p(const rl_tensor *t) { return (uint16_t *)t->data; }
static inline uint8_t *rl_u8(const rl_tensor *t) { return (uint8_t *)t->data; }

/* bf16 <-> f32: round to nearest even; NaN stays NaN. */
uint16_t rl_f32_to_bf16(float f);
float    rl_bf16_to_f32(uint16_t b);
void     rl_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);
void     rl_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);

#endif
