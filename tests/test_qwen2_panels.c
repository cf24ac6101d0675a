/* Decode weights (models/qwen2_panels.c): the panel product equals a plain
 * double-precision x W^T (+ b) for row counts 1..9 (full register tiles and
 * every remainder), output counts that are and are not a multiple of the
 * panel width, beta 0 and 1, with and without bias, f32 and bf16 panels (bf16:
 * against the bf16-rounded matrix), 1 and 2 threads; packing a whole model
 * places every matrix at its offset (a product through rl_qwen2_panel_mat
 * equals one through a freshly packed copy of that matrix), repacking after a
 * weight change picks the change up, and asking for the other dtype replaces
 * the copy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "qwen2.h"
#include "qwen2_panels.h"
#include "testlib.h"
#include "threads.h"

/* Reference: y = beta*y0 + x W^T + b in double. */
static void ref_linear(const float *x, const float *W, const float *b, const float *y0, float *y, int64_t M,
                       int64_t out, int64_t in, float beta) {
    for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < out; j++) {
            double s = b ? b[j] : 0.0;
            for (int64_t i = 0; i < in; i++) s += (double)x[r * in + i] * W[j * in + i];
            y[r * out + j] = (float)(s + (beta != 0.0f ? y0[r * out + j] : 0.0));
        }
}

/* A two-layer model with random weights: packing goes through the public
 * entry point, and every matrix shape of a block is covered. */
static rl_qwen2 *model(int64_t d, int64_t inter, int64_t vocab, int tie) {
    rl_qwen2_config c = {.vocab = vocab, .hidden = d, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                         .inter = inter, .max_pos = 64, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = tie};
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    if (rl_qwen2_config_check(&c, "test", &e) || rl_qwen2_new(&c, "p", 7, &m, &e) ||
        rl_params_finalize(m->params, &e)) {
        fprintf(stderr, "model: %s\n", e.msg);
        return NULL;
    }
    rl_test_fill(m->params->data, m->params->numel, 11);
    return m;
}

/* Checks every matrix of m, for several row counts, against the reference. */
static void check_model(rl_qwen2 *m, int bf16, int threads) {
    const rl_qwen2_config *c = &m->cfg;
    const int64_t d = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const int64_t outs[RL_PM_N] = {qd, kd, kd, d, c->inter, c->inter, d};
    const int64_t ins[RL_PM_N] = {d, d, d, qd, d, d, c->inter};
    const int64_t max_in = c->inter > d ? c->inter : d, max_out = c->vocab > c->inter ? c->vocab : c->inter;
    float *x = rl_malloc(sizeof(float) * 9 * (size_t)max_in), *W = rl_malloc(sizeof(float) * (size_t)(max_out * max_in));
    float *b = rl_malloc(sizeof(float) * (size_t)max_out), *y0 = rl_malloc(sizeof(float) * 9 * (size_t)max_out);
    float *y = rl_malloc(sizeof(float) * 9 * (size_t)max_out), *yr = rl_malloc(sizeof(float) * 9 * (size_t)max_out);
    rl_test_fill(x, 9 * (size_t)max_in, 3);
    rl_test_fill(b, (size_t)max_out, 5);
    rl_test_fill(y0, 9 * (size_t)max_out, 9);
    double worst = 0;
    for (int64_t l = -1; l < c->n_layers; l++)
        for (int w = 0; w < (l < 0 ? 1 : RL_PM_N); w++) {
            const rl_qwen2_layer_off *o = l < 0 ? NULL : &m->layer[l];
            const size_t offs[RL_PM_N] = {o ? o->wq : 0, o ? o->wk : 0, o ? o->wv : 0, o ? o->wo : 0,
                                          o ? o->wg : 0, o ? o->wu : 0, o ? o->wd : 0};
            const int64_t out = l < 0 ? c->vocab : outs[w], in = l < 0 ? d : ins[w];
            const float *src = m->params->data + (l < 0 ? m->off_head : offs[w]);
            for (int64_t i = 0; i < out * in; i++) W[i] = bf16 ? rl_bf16_to_f32(rl_f32_to_bf16(src[i])) : src[i];
            const void *pn = l < 0 ? rl_qwen2_panel_head(m) : rl_qwen2_panel_mat(m, l, w);
            for (int64_t M = 1; M <= 9; M++)
                for (int variant = 0; variant < 3; variant++) {
                    const float beta = variant == 2 ? 1.0f : 0.0f;
                    const float *bias = variant == 1 ? b : NULL;
                    memcpy(y, y0, sizeof(float) * (size_t)(M * out));
                    rl_panel_linear(x, pn, bf16, bias, y, M, out, in, beta, threads);
                    ref_linear(x, W, bias, y0, yr, M, out, in, beta);
                    for (int64_t i = 0; i < M * out; i++) {
                        double e = fabs((double)y[i] - yr[i]) / (1.0 + fabs((double)yr[i]));
                        if (e > worst) worst = e;
                    }
                }
        }
    CHECK_MSG(worst < 1e-5, "%s panels, %d threads, d=%lld inter=%lld vocab=%lld: max error %g",
              bf16 ? "bf16" : "f32", threads, (long long)d, (long long)c->inter, (long long)c->vocab, worst);
    rl_free(x);
    rl_free(W);
    rl_free(b);
    rl_free(y0);
    rl_free(y);
    rl_free(yr);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    const int64_t PW = rl_qwen2_panel_width();
    CHECK(PW >= 4 && PW % 4 == 0);
    /* Shapes: every output count a multiple of the panel width, then none. */
    const int64_t shapes[][4] = {{2 * PW, 4 * PW, 3 * PW, 1}, {48, 100, 37, 0}, {32, 72, 2 * PW + 5, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        rl_qwen2 *m = model(shapes[k][0], shapes[k][1], shapes[k][2], (int)shapes[k][3]);
        CHECK(m != NULL);
        if (!m) continue;
        rl_error e = {0};
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            CHECK_MSG(rl_qwen2_decode_weights(m, bf16, &e) == 0, "%s", e.msg);
            CHECK(m->panels != NULL && m->panels->bf16 == bf16);
            for (int threads = 1; threads <= 2; threads++) check_model(m, bf16, threads);
        }
        /* A weight change is picked up by the next repack (same dtype, same buffer). */
        const void *before = m->panels->data;
        for (size_t i = 0; i < m->params->numel; i++) m->params->data[i] *= -0.5f;
        CHECK_MSG(rl_qwen2_decode_weights(m, 1, &e) == 0, "%s", e.msg);
        CHECK(m->panels->data == before);
        check_model(m, 1, 2);
        rl_qwen2_decode_weights_drop(m);
        CHECK(m->panels == NULL);
        rl_qwen2_free(m);
    }
    return rl_test_finish("test_qwen2_panels");
}
