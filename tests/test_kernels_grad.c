/* Finite-difference gradient checks for every kernel in runtime/kernels.h.
 * Objective: f = sum(out · r) with a fixed random r, so d f / d out = r is the
 * upstream gradient handed to each backward. Every check is also run against a
 * deliberately corrupted copy of the analytic gradient, to show that the
 * tolerance is tight enough to catch a wrong backward. Also checks accumulate
 * semantics (a second backward adds the same again) and thread-count
 * independence of the non-BLAS kernels. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "testlib.h"
#include "threads.h"

enum kind {
    K_MATMUL, K_LINEAR, K_BIAS, K_ADD, K_MUL, K_SCALE, K_SILU, K_RMSNORM, K_RMSNORM_NOW, K_SOFTMAX,
    K_LOGSOFTMAX, K_EMBED, K_MSE,
};

#define MAXIN 3

typedef struct kctx {
    enum kind kind;
    int64_t m, n, k;   /* meaning depends on kind */
    int ta, tb;
    int nin;
    float *in[MAXIN];
    size_t nel[MAXIN];
    float *grad[MAXIN];
    float *out, *r, *aux;
    size_t nout;
    int32_t *ids;
} kctx;

static void forward(kctx *c) {
    switch (c->kind) {
    case K_MATMUL: rl_matmul_forward(c->out, c->in[0], c->in[1], c->m, c->n, c->k, c->ta, c->tb, 0); break;
    case K_LINEAR: rl_linear_forward(c->out, c->in[0], c->in[1], c->in[2], c->m, c->n, c->k); break;
    case K_BIAS: rl_bias_add_forward(c->out, c->in[0], c->in[1], c->m, c->n); break;
    case K_ADD: rl_add_forward(c->out, c->in[0], c->in[1], c->m); break;
    case K_MUL: rl_mul_forward(c->out, c->in[0], c->in[1], c->m); break;
    case K_SCALE: rl_scale_forward(c->out, c->in[0], -1.7f, c->m); break;
    case K_SILU: rl_silu_forward(c->out, c->in[0], c->m); break;
    case K_RMSNORM: rl_rmsnorm_forward(c->out, c->aux, c->in[0], c->in[1], c->m, c->n, 1e-5f); break;
    case K_RMSNORM_NOW: rl_rmsnorm_forward(c->out, c->aux, c->in[0], NULL, c->m, c->n, 1e-5f); break;
    case K_SOFTMAX: rl_softmax_forward(c->out, c->in[0], c->m, c->n); break;
    case K_LOGSOFTMAX: rl_logsoftmax_gather_forward(c->out, c->aux, c->in[0], c->ids, c->m, c->n); break;
    case K_EMBED: rl_embedding_forward(c->out, c->in[0], c->ids, c->m, c->n); break;
    case K_MSE: c->out[0] = rl_mse_forward(c->in[0], c->in[1], c->m); break;
    }
}

/* Backward with dout = r, accumulating into c->grad (NULL entries skipped). */
static void backward(kctx *c) {
    forward(c); /* refresh saved values (rstd, lse, softmax output) */
    float **g = c->grad;
    switch (c->kind) {
    case K_MATMUL: rl_matmul_backward(g[0], g[1], c->r, c->in[0], c->in[1], c->m, c->n, c->k, c->ta, c->tb); break;
    case K_LINEAR: rl_linear_backward(g[0], g[1], g[2], c->r, c->in[0], c->in[1], c->m, c->n, c->k); break;
    case K_BIAS: rl_bias_add_backward(g[0], g[1], c->r, c->m, c->n); break;
    case K_ADD: rl_add_backward(g[0], g[1], c->r, c->m); break;
    case K_MUL: rl_mul_backward(g[0], g[1], c->r, c->in[0], c->in[1], c->m); break;
    case K_SCALE: rl_scale_backward(g[0], c->r, -1.7f, c->m); break;
    case K_SILU: rl_silu_backward(g[0], c->r, c->in[0], c->m); break;
    case K_RMSNORM: rl_rmsnorm_backward(g[0], g[1], c->r, c->in[0], c->in[1], c->aux, c->m, c->n); break;
    case K_RMSNORM_NOW: rl_rmsnorm_backward(g[0], NULL, c->r, c->in[0], NULL, c->aux, c->m, c->n); break;
    case K_SOFTMAX: rl_softmax_backward(g[0], c->r, c->out, c->m, c->n); break;
    case K_LOGSOFTMAX: rl_logsoftmax_gather_backward(g[0], c->r, c->in[0], c->aux, c->ids, c->m, c->n); break;
    case K_EMBED: rl_embedding_backward(g[0], c->r, c->ids, c->m, c->n); break;
    case K_MSE: rl_mse_backward(g[0], g[1], c->r[0], c->in[0], c->in[1], c->m); break;
    }
}

static double objective(void *p) {
    kctx *c = p;
    forward(c);
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void setup(kctx *c, const size_t *nel, int nin, size_t nout, size_t naux, uint64_t seed) {
    c->nin = nin;
    for (int i = 0; i < nin; i++) {
        c->nel[i] = nel[i];
        c->in[i] = calloc(nel[i], sizeof(float));
        c->grad[i] = calloc(nel[i], sizeof(float));
        rl_test_fill(c->in[i], nel[i], seed + 17 * (uint64_t)i);
    }
    c->nout = nout;
    c->out = calloc(nout, sizeof(float));
    c->r = calloc(nout, sizeof(float));
    rl_test_fill(c->r, nout, seed + 1000);
    c->aux = calloc(naux ? naux : 1, sizeof(float));
}

static void teardown(kctx *c) {
    for (int i = 0; i < c->nin; i++) { free(c->in[i]); free(c->grad[i]); }
    free(c->out); free(c->r); free(c->aux); free(c->ids);
    memset(c, 0, sizeof *c);
}

#define TOL 1e-2
#define EPS 5e-3

/* Checks every input's gradient, the detection of a corrupted gradient, and
 * that a second backward accumulates the same amount again. */
static void check_all(const char *name, kctx *c) {
    for (int i = 0; i < c->nin; i++) memset(c->grad[i], 0, c->nel[i] * sizeof(float));
    backward(c);
    for (int i = 0; i < c->nin; i++) {
        if (!c->grad[i]) continue;
        double e = rl_test_gradcheck(c->in[i], c->nel[i], c->grad[i], objective, c, EPS, 0);
        CHECK_MSG(e < TOL, "%s: input %d: max rel err %.3g", name, i, e);
        /* Corrupt the largest gradient entry by 5%: the check must notice. */
        size_t w = 0;
        for (size_t j = 1; j < c->nel[i]; j++)
            if (fabsf(c->grad[i][j]) > fabsf(c->grad[i][w])) w = j;
        float *bad = malloc(c->nel[i] * sizeof(float));
        memcpy(bad, c->grad[i], c->nel[i] * sizeof(float));
        bad[w] = bad[w] * 1.05f + 0.01f;
        double eb = rl_test_gradcheck(c->in[i], c->nel[i], bad, objective, c, EPS, 0);
        CHECK_MSG(eb > TOL, "%s: input %d: corrupted gradient not detected (err %.3g)", name, i, eb);
        free(bad);
    }
    /* Accumulate: grads now hold g; a second backward must give 2g. */
    float *first[MAXIN] = {0};
    for (int i = 0; i < c->nin; i++) {
        if (!c->grad[i]) continue;
        first[i] = malloc(c->nel[i] * sizeof(float));
        memcpy(first[i], c->grad[i], c->nel[i] * sizeof(float));
        for (size_t j = 0; j < c->nel[i]; j++) first[i][j] *= 2.0f;
    }
    backward(c);
    for (int i = 0; i < c->nin; i++) {
        if (!c->grad[i]) continue;
        double e = rl_test_max_rel_err(c->grad[i], first[i], c->nel[i], 1e-3f, NULL);
        CHECK_MSG(e < 1e-5, "%s: input %d: backward does not accumulate (err %.3g)", name, i, e);
        free(first[i]);
    }
}

/* A NULL gradient pointer must be skipped while the others are still filled. */
static void check_null_grad(const char *name, kctx *c, int keep) {
    float *saved[MAXIN];
    for (int i = 0; i < c->nin; i++) {
        saved[i] = c->grad[i];
        memset(saved[i], 0, c->nel[i] * sizeof(float));
        if (i != keep) c->grad[i] = NULL;
    }
    backward(c);
    for (int i = 0; i < c->nin; i++) c->grad[i] = saved[i];
    double e = rl_test_gradcheck(c->in[keep], c->nel[keep], c->grad[keep], objective, c, EPS, 0);
    CHECK_MSG(e < TOL, "%s: only input %d wanted: err %.3g", name, keep, e);
}

static void test_matmul(void) {
    for (int t = 0; t < 4; t++) {
        kctx c = {.kind = K_MATMUL, .m = 5, .n = 4, .k = 3, .ta = t & 1, .tb = t >> 1};
        size_t nel[2] = {15, 12};
        setup(&c, nel, 2, 20, 0, 10 + (uint64_t)t);
        char name[64];
        snprintf(name, sizeof name, "matmul ta=%d tb=%d", c.ta, c.tb);
        check_all(name, &c);
        check_null_grad(name, &c, 0);
        check_null_grad(name, &c, 1);
        /* Forward against a naive triple loop. */
        forward(&c);
        float ref[20];
        for (int64_t i = 0; i < 5; i++)
            for (int64_t j = 0; j < 4; j++) {
                double s = 0;
                for (int64_t p = 0; p < 3; p++) {
                    float a = c.ta ? c.in[0][p * 5 + i] : c.in[0][i * 3 + p];
                    float b = c.tb ? c.in[1][j * 3 + p] : c.in[1][p * 4 + j];
                    s += (double)a * b;
                }
                ref[i * 4 + j] = (float)s;
            }
        CHECK_MSG(rl_test_max_rel_err(c.out, ref, 20, 1e-3f, NULL) < 1e-5, "%s forward", name);
        /* accumulate = 1 adds onto C. */
        float before[20];
        memcpy(before, c.out, sizeof before);
        rl_matmul_forward(c.out, c.in[0], c.in[1], 5, 4, 3, c.ta, c.tb, 1);
        for (int i = 0; i < 20; i++) before[i] *= 2;
        CHECK_MSG(rl_test_max_rel_err(c.out, before, 20, 1e-3f, NULL) < 1e-5, "%s accumulate", name);
        teardown(&c);
    }
}

static void test_linear(void) {
    kctx c = {.kind = K_LINEAR, .m = 6, .n = 5, .k = 4}; /* N=6 rows, C=5 in, OC=4 out */
    size_t nel[3] = {30, 20, 4};
    setup(&c, nel, 3, 24, 0, 30);
    check_all("linear", &c);
    check_null_grad("linear", &c, 1);
    check_null_grad("linear", &c, 2);
    /* Without bias: out = in·w^T exactly as matmul with trans_b. */
    float ref[24];
    rl_linear_forward(c.out, c.in[0], c.in[1], NULL, 6, 5, 4);
    rl_matmul_forward(ref, c.in[0], c.in[1], 6, 4, 5, 0, 1, 0);
    CHECK(memcmp(c.out, ref, sizeof ref) == 0);
    teardown(&c);
}

static void test_elementwise(void) {
    {
        kctx c = {.kind = K_BIAS, .m = 7, .n = 70}; /* > one column block */
        size_t nel[2] = {490, 70};
        setup(&c, nel, 2, 490, 0, 40);
        check_all("bias_add", &c);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_ADD, .m = 33};
        size_t nel[2] = {33, 33};
        setup(&c, nel, 2, 33, 0, 41);
        check_all("add", &c);
        check_null_grad("add", &c, 1);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_MUL, .m = 33};
        size_t nel[2] = {33, 33};
        setup(&c, nel, 2, 33, 0, 42);
        check_all("mul", &c);
        check_null_grad("mul", &c, 0);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_SCALE, .m = 33};
        size_t nel[1] = {33};
        setup(&c, nel, 1, 33, 0, 43);
        check_all("scale", &c);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_SILU, .m = 40};
        size_t nel[1] = {40};
        setup(&c, nel, 1, 40, 0, 44);
        for (int i = 0; i < 40; i++) c.in[0][i] *= 4.0f; /* cover both tails */
        check_all("silu", &c);
        teardown(&c);
    }
}

static void test_norm_softmax(void) {
    {
        kctx c = {.kind = K_RMSNORM, .m = 4, .n = 9};
        size_t nel[2] = {36, 9};
        setup(&c, nel, 2, 36, 4, 50);
        check_all("rmsnorm", &c);
        check_null_grad("rmsnorm", &c, 0);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_RMSNORM_NOW, .m = 4, .n = 9};
        size_t nel[1] = {36};
        setup(&c, nel, 1, 36, 4, 51);
        check_all("rmsnorm (no weight)", &c);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_SOFTMAX, .m = 3, .n = 7};
        size_t nel[1] = {21};
        setup(&c, nel, 1, 21, 0, 52);
        for (int i = 0; i < 21; i++) c.in[0][i] *= 3.0f;
        check_all("softmax", &c);
        forward(&c);
        for (int r = 0; r < 3; r++) {
            double s = 0;
            for (int j = 0; j < 7; j++) s += c.out[r * 7 + j];
            CHECK(fabs(s - 1.0) < 1e-6);
        }
        teardown(&c);
    }
    {
        kctx c = {.kind = K_LOGSOFTMAX, .m = 5, .n = 11};
        size_t nel[1] = {55};
        setup(&c, nel, 1, 5, 5, 53);
        for (int i = 0; i < 55; i++) c.in[0][i] *= 3.0f;
        c.ids = malloc(5 * sizeof(int32_t));
        const int32_t t[5] = {0, 10, 3, -1, 3}; /* -1: ignored position */
        memcpy(c.ids, t, sizeof t);
        check_all("logsoftmax_gather", &c);
        forward(&c);
        CHECK(c.out[3] == 0.0f);
        /* The ignored row gets no gradient at all. */
        memset(c.grad[0], 0, 55 * sizeof(float));
        backward(&c);
        int clean = 1;
        for (int j = 0; j < 11; j++) clean &= c.grad[0][3 * 11 + j] == 0.0f;
        CHECK(clean);
        /* Value against a direct log(softmax). */
        float sm[11];
        rl_softmax_forward(sm, c.in[0] + 2 * 11, 1, 11);
        CHECK(fabsf(c.out[2] - logf(sm[3])) < 1e-5f);
        teardown(&c);
    }
}

static void test_embedding_mse(void) {
    {
        kctx c = {.kind = K_EMBED, .m = 6, .n = 5}; /* 6 ids into an 8x5 table */
        size_t nel[1] = {40};
        setup(&c, nel, 1, 30, 0, 60);
        c.ids = malloc(6 * sizeof(int32_t));
        const int32_t t[6] = {2, 7, 2, 0, 5, 2}; /* repeated ids accumulate */
        memcpy(c.ids, t, sizeof t);
        check_all("embedding", &c);
        CHECK(rl_ids_check(c.ids, 6, 8) == -1);
        CHECK(rl_ids_check(c.ids, 6, 7) == 1);
        int32_t neg[2] = {0, -3};
        CHECK(rl_ids_check(neg, 2, 8) == 1);
        teardown(&c);
    }
    {
        kctx c = {.kind = K_MSE, .m = 23};
        size_t nel[2] = {23, 23};
        setup(&c, nel, 2, 1, 0, 61);
        check_all("mse", &c);
        check_null_grad("mse", &c, 0);
        double s = 0;
        for (int i = 0; i < 23; i++) s += (double)(c.in[0][i] - c.in[1][i]) * (c.in[0][i] - c.in[1][i]);
        CHECK(fabs(rl_mse_forward(c.in[0], c.in[1], 23) - s / 23) < 1e-6);
        CHECK(rl_mse_forward(c.in[0], c.in[1], 0) == 0.0f);
        teardown(&c);
    }
}

/* The non-BLAS kernels must give bit-identical results with 1 and 2 threads
 * (sizes above every parallel threshold). */
static void run_all_nonblas(float *dst, const float *x, const float *y, const int32_t *ids, int64_t n,
                            int64_t c) {
    int64_t nc = n * c;
    float *o = dst; /* layout: several result blocks of nc, plus row vectors */
    rl_add_forward(o, x, y, nc); o += nc;
    rl_silu_forward(o, x, nc); o += nc;
    memset(o, 0, nc * sizeof(float)); rl_silu_backward(o, y, x, nc); o += nc;
    float *rstd = o + nc;
    rl_rmsnorm_forward(o, rstd, x, y, n, c, 1e-6f); o += nc + n;
    memset(o, 0, (nc + c) * sizeof(float));
    rl_rmsnorm_backward(o, o + nc, y, x, y, rstd, n, c); o += nc + c;
    rl_softmax_forward(o, x, n, c);
    float *sm = o; o += nc;
    memset(o, 0, nc * sizeof(float)); rl_softmax_backward(o, y, sm, n, c); o += nc;
    float *lse = o + n;
    rl_logsoftmax_gather_forward(o, lse, x, ids, n, c); o += 2 * n;
    memset(o, 0, nc * sizeof(float)); rl_logsoftmax_gather_backward(o, y, x, lse, ids, n, c); o += nc;
    memset(o, 0, c * sizeof(float)); rl_bias_add_backward(NULL, o, x, n, c); o += c;
    memset(o, 0, nc * sizeof(float)); rl_embedding_backward(o, x, ids, n, c); o += nc;
    o[0] = rl_mse_forward(x, y, nc);
}

static void test_thread_independence(void) {
    const int64_t n = 300, c = 257; /* 77k elements, odd width */
    size_t nc = (size_t)(n * c), total = 12 * nc + 8 * (size_t)n + 4 * (size_t)c + 16;
    float *x = malloc(nc * sizeof(float)), *y = malloc(nc * sizeof(float));
    float *a = calloc(total, sizeof(float)), *b = calloc(total, sizeof(float));
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    rl_test_fill(x, nc, 70);
    rl_test_fill(y, nc, 71);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 7919) % n % c);
    int saved = rl_get_threads();
    rl_set_threads(1);
    CHECK(rl_get_threads() == 1);
    run_all_nonblas(a, x, y, ids, n, c);
    rl_set_threads(2);
    CHECK(rl_get_threads() == 2);
    run_all_nonblas(b, x, y, ids, n, c);
    CHECK_MSG(memcmp(a, b, total * sizeof(float)) == 0, "results differ between 1 and 2 threads");
    rl_set_threads(saved);
    free(x); free(y); free(a); free(b); free(ids);
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    test_matmul();
    test_linear();
    test_elementwise();
    test_norm_softmax();
    test_embedding_mse();
    test_thread_independence();
    return rl_test_finish("test_kernels_grad");
}
