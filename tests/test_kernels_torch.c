/* Compares every kernel's forward and backward with PyTorch reference
 * tensors (tests/ref/kernels.safetensors, written by tests/gen_kernel_refs.py
 * in float64 autograd): relative error at most 1e-4. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "safetensors.h"
#include "testlib.h"

#define TOL 1e-4

static rl_st_file *refs;

/* The reference tensor `prefix.name` (f32), checking its element count. */
static const float *ref_f32(const char *prefix, const char *name, size_t n) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    const rl_st_info *t = rl_st_find(refs, full);
    CHECK_MSG(t != NULL, "missing reference tensor %s", full);
    if (!t) return NULL;
    CHECK_MSG(t->dtype == RL_F32 && t->nbytes == n * sizeof(float), "%s: %zu bytes, expected %zu f32", full,
              t->nbytes, n);
    return t->dtype == RL_F32 && t->nbytes == n * sizeof(float) ? t->data : NULL;
}

static const int32_t *ref_i32(const char *prefix, const char *name, size_t n) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    const rl_st_info *t = rl_st_find(refs, full);
    CHECK_MSG(t && t->dtype == RL_I32 && t->nbytes == n * sizeof(int32_t), "bad reference tensor %s", full);
    return t && t->dtype == RL_I32 && t->nbytes == n * sizeof(int32_t) ? t->data : NULL;
}

/* Relative error with a floor of 1e-3 of the reference's largest magnitude,
 * so entries that are zero up to cancellation do not dominate. */
static void compare(const char *what, const float *got, const float *want, size_t n) {
    if (!want) return;
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(want[i]));
    size_t w;
    double e = rl_test_max_rel_err(got, want, n, fmaxf(mx * 1e-3f, 1e-6f), &w);
    CHECK_MSG(e <= TOL, "%s: rel err %.3g at %zu (got %.8g, want %.8g)", what, e, w, got[w], want[w]);
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static void test_matmul(void) {
    const int64_t M = 7, N = 5, K = 6;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            char p[32];
            snprintf(p, sizeof p, "matmul%d%d", ta, tb);
            const float *a = ref_f32(p, "a", M * K), *b = ref_f32(p, "b", K * N), *dc = ref_f32(p, "dout", M * N);
            if (!a || !b || !dc) continue;
            float *c = zeros(M * N), *da = zeros(M * K), *db = zeros(K * N);
            rl_matmul_forward(c, a, b, M, N, K, ta, tb, 0);
            rl_matmul_backward(da, db, dc, a, b, M, N, K, ta, tb);
            char w[64];
            snprintf(w, sizeof w, "%s out", p); compare(w, c, ref_f32(p, "out", M * N), M * N);
            snprintf(w, sizeof w, "%s da", p); compare(w, da, ref_f32(p, "da", M * K), M * K);
            snprintf(w, sizeof w, "%s db", p); compare(w, db, ref_f32(p, "db", K * N), K * N);
            free(c); free(da); free(db);
        }
}

static void test_linear(void) {
    const int64_t n = 9, c = 6, oc = 4;
    const float *x = ref_f32("linear", "x", n * c), *w = ref_f32("linear", "w", oc * c);
    const float *b = ref_f32("linear", "b", oc), *g = ref_f32("linear", "dout", n * oc);
    if (!x || !w || !b || !g) return;
    float *out = zeros(n * oc), *dx = zeros(n * c), *dw = zeros(oc * c), *db = zeros(oc);
    rl_linear_forward(out, x, w, b, n, c, oc);
    rl_linear_backward(dx, dw, db, g, x, w, n, c, oc);
    compare("linear out", out, ref_f32("linear", "out", n * oc), n * oc);
    compare("linear dx", dx, ref_f32("linear", "dx", n * c), n * c);
    compare("linear dw", dw, ref_f32("linear", "dw", oc * c), oc * c);
    compare("linear db", db, ref_f32("linear", "db", oc), oc);
    free(out); free(dx); free(dw); free(db);
}

static void test_elementwise(void) {
    {
        const int64_t n = 5, c = 70;
        const float *x = ref_f32("bias_add", "x", n * c), *b = ref_f32("bias_add", "b", c);
        const float *g = ref_f32("bias_add", "dout", n * c);
        if (x && b && g) {
            float *out = zeros(n * c), *dx = zeros(n * c), *db = zeros(c);
            rl_bias_add_forward(out, x, b, n, c);
            rl_bias_add_backward(dx, db, g, n, c);
            compare("bias_add out", out, ref_f32("bias_add", "out", n * c), n * c);
            compare("bias_add dx", dx, ref_f32("bias_add", "dx", n * c), n * c);
            compare("bias_add db", db, ref_f32("bias_add", "db", c), c);
            free(out); free(dx); free(db);
        }
    }
    const int64_t n = 31;
    const char *ops[3] = {"add", "mul", "scale"};
    for (int k = 0; k < 3; k++) {
        const char *p = ops[k];
        const float *a = ref_f32(p, "a", n), *g = ref_f32(p, "dout", n);
        const float *b = k < 2 ? ref_f32(p, "b", n) : NULL;
        if (!a || !g || (k < 2 && !b)) continue;
        float *out = zeros(n), *da = zeros(n), *db = zeros(n);
        if (k == 0) { rl_add_forward(out, a, b, n); rl_add_backward(da, db, g, n); }
        if (k == 1) { rl_mul_forward(out, a, b, n); rl_mul_backward(da, db, g, a, b, n); }
        if (k == 2) { rl_scale_forward(out, a, 0.37f, n); rl_scale_backward(da, g, 0.37f, n); }
        char w[64];
        snprintf(w, sizeof w, "%s out", p); compare(w, out, ref_f32(p, "out", n), n);
        snprintf(w, sizeof w, "%s da", p); compare(w, da, ref_f32(p, "da", n), n);
        if (k < 2) { snprintf(w, sizeof w, "%s db", p); compare(w, db, ref_f32(p, "db", n), n); }
        free(out); free(da); free(db);
    }
    {
        const int64_t m = 40;
        const float *x = ref_f32("silu", "x", m), *g = ref_f32("silu", "dout", m);
        if (x && g) {
            float *out = zeros(m), *dx = zeros(m);
            rl_silu_forward(out, x, m);
            rl_silu_backward(dx, g, x, m);
            compare("silu out", out, ref_f32("silu", "out", m), m);
            compare("silu dx", dx, ref_f32("silu", "dx", m), m);
            free(out); free(dx);
        }
    }
}

static void test_norm_softmax(void) {
    {
        const int64_t n = 6, c = 16;
        const float *x = ref_f32("rmsnorm", "x", n * c), *w = ref_f32("rmsnorm", "w", c);
        const float *g = ref_f32("rmsnorm", "dout", n * c);
        if (x && w && g) {
            float *out = zeros(n * c), *rstd = zeros(n), *dx = zeros(n * c), *dw = zeros(c);
            rl_rmsnorm_forward(out, rstd, x, w, n, c, 1e-6f);
            rl_rmsnorm_backward(dx, dw, g, x, w, rstd, n, c);
            compare("rmsnorm out", out, ref_f32("rmsnorm", "out", n * c), n * c);
            compare("rmsnorm dx", dx, ref_f32("rmsnorm", "dx", n * c), n * c);
            compare("rmsnorm dw", dw, ref_f32("rmsnorm", "dw", c), c);
            free(out); free(rstd); free(dx); free(dw);
        }
    }
    {
        const int64_t n = 4, c = 10;
        const float *x = ref_f32("softmax", "x", n * c), *g = ref_f32("softmax", "dout", n * c);
        if (x && g) {
            float *out = zeros(n * c), *dx = zeros(n * c);
            rl_softmax_forward(out, x, n, c);
            rl_softmax_backward(dx, g, out, n, c);
            compare("softmax out", out, ref_f32("softmax", "out", n * c), n * c);
            compare("softmax dx", dx, ref_f32("softmax", "dx", n * c), n * c);
            free(out); free(dx);
        }
    }
    {
        const int64_t n = 6, v = 13;
        const float *lg = ref_f32("logsoftmax", "logits", n * v), *g = ref_f32("logsoftmax", "dout", n);
        const int32_t *t = ref_i32("logsoftmax", "target", n);
        if (lg && g && t) {
            float *out = zeros(n), *lse = zeros(n), *dl = zeros(n * v);
            rl_logsoftmax_gather_forward(out, lse, lg, t, n, v);
            rl_logsoftmax_gather_backward(dl, g, lg, lse, t, n, v);
            compare("logsoftmax out", out, ref_f32("logsoftmax", "out", n), n);
            compare("logsoftmax dlogits", dl, ref_f32("logsoftmax", "dlogits", n * v), n * v);
            free(out); free(lse); free(dl);
        }
    }
}

static void test_embedding_mse(void) {
    {
        const int64_t rows = 10, c = 8, n = 12;
        const float *tab = ref_f32("embedding", "table", rows * c), *g = ref_f32("embedding", "dout", n * c);
        const int32_t *ids = ref_i32("embedding", "ids", n);
        if (tab && g && ids) {
            CHECK(rl_ids_check(ids, n, rows) == -1);
            float *out = zeros(n * c), *dt = zeros(rows * c);
            rl_embedding_forward(out, tab, ids, n, c);
            rl_embedding_backward(dt, g, ids, n, c);
            compare("embedding out", out, ref_f32("embedding", "out", n * c), n * c);
            compare("embedding dtable", dt, ref_f32("embedding", "dtable", rows * c), rows * c);
            free(out); free(dt);
        }
    }
    {
        const int64_t n = 37;
        const float *p = ref_f32("mse", "pred", n), *t = ref_f32("mse", "target", n);
        const float *g = ref_f32("mse", "dout", 1);
        if (p && t && g) {
            float out = rl_mse_forward(p, t, n);
            float *dp = zeros(n), *dt = zeros(n);
            rl_mse_backward(dp, dt, g[0], p, t, n);
            compare("mse out", &out, ref_f32("mse", "out", 1), 1);
            compare("mse dpred", dp, ref_f32("mse", "dpred", n), n);
            compare("mse dtarget", dt, ref_f32("mse", "dtarget", n), n);
            free(dp); free(dt);
        }
    }
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_error err = {0};
    int rc = rl_st_open(rl_test_path("tests/ref/kernels.safetensors"), &refs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return rl_test_finish("test_kernels_torch");
    test_matmul();
    test_linear();
    test_elementwise();
    test_norm_softmax();
    test_embedding_mse();
    rl_st_close(refs);
    return rl_test_finish("test_kernels_torch");
}
