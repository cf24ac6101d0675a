/* Qwen2 against PyTorch (tests/gen_qwen2_ref.py): a tiny untied and a tiny
 * tied checkpoint in HF naming; logits, log-probs, entropies, every block's
 * output and every parameter gradient of a fixed objective must match with
 * relative error <= 1e-4 (max |diff| / max |reference| per tensor). Also
 * f32 / bf16 save-reload and sharded loading via model.safetensors.index.json,
 * and the threaded kernel paths on a larger random batch (2 threads = 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "alloc.h"
#include "qwen2.h"
#include "safetensors.h"
#include "testlib.h"
#include "threads.h"

#define REL_TOL 1e-4

static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 1e-30 ? mb : 1e-30);
}

static float *read_ref(rl_st_file *f, const char *name, size_t *n) {
    const rl_st_info *info = rl_st_find(f, name);
    if (!info) {
        fprintf(stderr, "reference tensor '%s' missing\n", name);
        return NULL;
    }
    *n = (size_t)rl_shape_numel(&info->shape);
    float *x = rl_malloc(*n * sizeof(float));
    rl_error err = {0};
    if (x && rl_st_read_f32(f, name, x, *n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        rl_free(x);
        return NULL;
    }
    return x;
}

typedef struct ws {
    rl_qwen2_run run;
} ws;

static int ws_alloc(const rl_qwen2 *m, int64_t B, int64_t T, int64_t chunk, rl_qwen2_run *r) {
    rl_qwen2_ws_bytes b;
    rl_error err = {0};
    memset(r, 0, sizeof *r);
    r->max_rows = B * T;
    r->max_seqs = B;
    r->max_len = T;
    r->chunk = chunk;
    r->threads = 2;
    if (rl_qwen2_ws_size(&m->cfg, r->max_rows, B, T, chunk, 2, &b, &err)) return -1;
    r->saved = rl_malloc_aligned(b.saved);
    r->fwd = rl_malloc_aligned(b.fwd);
    r->bwd = rl_malloc_aligned(b.bwd);
    return r->saved && r->fwd && r->bwd ? 0 : -1;
}

static void ws_free(rl_qwen2_run *r) {
    rl_free_aligned(r->saved);
    rl_free_aligned(r->fwd);
    rl_free_aligned(r->bwd);
}

/* Compares every parameter of two models exactly (or after bf16 rounding of a). */
static int same_params(const rl_qwen2 *a, const rl_qwen2 *b, int bf16) {
    if (a->params->numel != b->params->numel) return 0;
    for (size_t i = 0; i < a->params->numel; i++) {
        float x = a->params->data[i];
        if (bf16) x = rl_bf16_to_f32(rl_f32_to_bf16(x));
        if (x != b->params->data[i]) return 0;
    }
    return 1;
}

static void test_save_reload(const rl_qwen2 *m) {
    char dir[] = "/tmp/rlfr_qwen2_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    rl_error err = {0};
    rl_qwen2 *m2 = NULL;
    /* f32 round trip: bit exact; bf16: the bf16-rounded values. */
    for (int bf = 0; bf < 2; bf++) {
        CHECK_MSG(rl_qwen2_save(m, dir, bf ? RL_BF16 : RL_F32, &err) == 0, "%s", err.msg);
        CHECK_MSG(rl_qwen2_load(dir, "reloaded", &m2, &err) == 0, "%s", err.msg);
        if (m2) {
            CHECK(m2->cfg.tie == m->cfg.tie && m2->cfg.n_kv_heads == m->cfg.n_kv_heads &&
                  m2->cfg.rope_theta == m->cfg.rope_theta);
            CHECK_MSG(same_params(m, m2, bf), "%s round trip changed values", bf ? "bf16" : "f32");
        }
        rl_qwen2_free(m2);
        m2 = NULL;
    }
    /* Sharded: the first half of the tensors in one file, the rest (bf16) in another. */
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    int n = m->params->n, half = n / 2;
    rl_st_entry *e = rl_calloc((size_t)n, sizeof *e);
    for (int i = 0; i < n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        e[i] = (rl_st_entry){pe->name, i < half ? RL_F32 : RL_BF16, pe->shape, m->params->data + pe->offset, RL_F32};
    }
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    CHECK_MSG(rl_st_write(path, e, half, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK_MSG(rl_st_write(path, e + half, n - half, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", e[i].name, i < half ? 1 : 2);
    fprintf(f, "}}\n");
    fclose(f);
    CHECK_MSG(rl_qwen2_load(dir, "sharded", &m2, &err) == 0, "%s", err.msg);
    if (m2) {
        int ok = 1;
        for (int i = 0; i < n; i++) {
            const rl_param_entry *pe = &m->params->entries[i];
            for (int64_t j = 0; j < rl_shape_numel(&pe->shape); j++) {
                float x = m->params->data[pe->offset + (size_t)j];
                if (i >= half) x = rl_bf16_to_f32(rl_f32_to_bf16(x));
                if (x != m2->params->data[pe->offset + (size_t)j]) ok = 0;
            }
        }
        CHECK_MSG(ok, "sharded load changed values");
    }
    rl_qwen2_free(m2);
    rl_free(e);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* chunk 0: one LM-head chunk for every row, so the forward's logits are kept
   for the backward instead of recomputed. */
static void run_case(const char *name, int64_t chunk) {
    char dir[512], refp[600];
    snprintf(dir, sizeof dir, "%s", rl_test_path("tests/ref/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    snprintf(refp, sizeof refp, "%s/ref.safetensors", dir);
    rl_error err = {0};
    rl_qwen2 *m = NULL;
    rl_st_file *ref = NULL;
    CHECK_MSG(rl_qwen2_load(dir, name, &m, &err) == 0, "%s", err.msg);
    CHECK_MSG(rl_st_open(refp, &ref, &err) == 0, "%s", err.msg);
    if (!m || !ref) goto out;
    const rl_qwen2_config *c = &m->cfg;
    const rl_st_info *ti = rl_st_find(ref, "tokens"), *li = rl_st_find(ref, "lengths");
    CHECK(ti && li && ti->dtype == RL_I32);
    if (!ti || !li) goto out;
    const int64_t B = ti->shape.dim[0], T = ti->shape.dim[1], d = c->hidden, V = c->vocab, N = c->n_layers;
    const int32_t *tokens = ti->data, *lengths = li->data;
    size_t n;
    float *logits = read_ref(ref, "logits", &n), *lp = read_ref(ref, "logprobs", &n);
    float *en = read_ref(ref, "entropy", &n), *hid = read_ref(ref, "hidden", &n);
    float *wl = read_ref(ref, "w_logp", &n), *we = read_ref(ref, "w_ent", &n);
    CHECK(logits && lp && en && hid && wl && we);

    rl_qwen2_run r;
    CHECK(ws_alloc(m, B, T, chunk ? chunk : B * T + B, &r) == 0); /* chunk 3: several LM-head chunks */
    CHECK_MSG(rl_qwen2_pack(m, &r, tokens, lengths, B, T, &err) == 0, "%s", err.msg);
    CHECK_MSG(rl_qwen2_forward(m, &r, &err) == 0, "%s", err.msg);
    const int64_t M = rl_qwen2_rows(&r);
    int64_t ns;
    const int32_t *brow;
    const rl_attn_seq *seqs = rl_qwen2_seqs(m, &r, &ns, &brow);

    /* Unpack into [B, T] (logprobs/entropy shifted by one) and [N, B, T, d]. */
    float *ulp = rl_calloc((size_t)(B * T), 4), *uen = rl_calloc((size_t)(B * T), 4);
    float *uhid = rl_calloc((size_t)(N * B * T * d), 4), *ulog = rl_calloc((size_t)(B * T * V), 4);
    float *glogp = rl_calloc((size_t)M, 4), *gent = rl_calloc((size_t)M, 4);
    const float *plp = rl_qwen2_logp(m, &r), *pen = rl_qwen2_entropy(m, &r), *nf = rl_qwen2_final_hidden(m, &r);
    float *plogits = rl_malloc((size_t)(M * V) * 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)V, (int)d, 1.0f, nf, (int)d,
                m->params->data + m->off_head, (int)d, 0.0f, plogits, (int)V);
    for (int64_t s = 0; s < ns; s++) {
        int64_t b = brow[s];
        for (int64_t t = 0; t < seqs[s].n_q; t++) {
            int64_t row = seqs[s].q_row + t;
            memcpy(ulog + (b * T + t) * V, plogits + row * V, (size_t)V * 4);
            if (t + 1 < seqs[s].n_q) {
                ulp[b * T + t + 1] = plp[row];
                uen[b * T + t + 1] = pen[row];
                glogp[row] = wl[b * T + t + 1];
                gent[row] = we[b * T + t + 1];
            }
            for (int64_t j = 0; j < N; j++)
                memcpy(uhid + ((j * B + b) * T + t) * d, rl_qwen2_block_output(m, &r, j) + row * d, (size_t)d * 4);
        }
    }
    double e;
    e = rel_err(ulog, logits, (size_t)(B * T * V));
    CHECK_MSG(e <= REL_TOL, "%s logits rel err %g", name, e);
    e = rel_err(ulp, lp, (size_t)(B * T));
    CHECK_MSG(e <= REL_TOL, "%s logprobs rel err %g", name, e);
    e = rel_err(uen, en, (size_t)(B * T));
    CHECK_MSG(e <= REL_TOL, "%s entropy rel err %g", name, e);
    e = rel_err(uhid, hid, (size_t)(N * B * T * d));
    CHECK_MSG(e <= REL_TOL, "%s hidden rel err %g", name, e);

    /* One thread gives the same answer (up to BLAS reassociation). */
    {
        float *lp2 = rl_malloc((size_t)M * 4), *en2 = rl_malloc((size_t)M * 4);
        memcpy(lp2, plp, (size_t)M * 4);
        memcpy(en2, pen, (size_t)M * 4);
        int before = rl_get_threads();
        rl_set_threads(1);
        CHECK(rl_qwen2_forward(m, &r, &err) == 0);
        rl_set_threads(before);
        double dt = fmax(rel_err(plp, lp2, (size_t)M), rel_err(pen, en2, (size_t)M));
        CHECK_MSG(dt <= 1e-6, "%s: 1 thread differs from 2 by %g", name, dt);
        rl_free(lp2);
        rl_free(en2);
    }

    /* Gradients of L = sum(w_logp * logprobs + w_ent * entropy). */
    rl_params_zero_grad(m->params);
    CHECK_MSG(rl_qwen2_backward(m, &r, glogp, gent, &err) == 0, "%s", err.msg);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->params->n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        char gname[256];
        snprintf(gname, sizeof gname, "grad.%s", pe->name);
        size_t gn;
        float *g = read_ref(ref, gname, &gn);
        CHECK_MSG(g && gn == (size_t)rl_shape_numel(&pe->shape), "%s", gname);
        if (!g) continue;
        e = rel_err(m->params->grad + pe->offset, g, gn);
        if (e > worst) {
            worst = e;
            worst_name = pe->name;
        }
        rl_free(g);
    }
    CHECK_MSG(worst <= REL_TOL, "%s (chunk %lld) worst gradient rel err %g (%s)", name, (long long)chunk, worst,
              worst_name);
    printf("%s (LM-head chunk %s): gradients of %d tensors, worst rel err %.2e (%s)\n", name,
           chunk ? "of 3 rows" : "of all rows, logits kept", m->params->n, worst, worst_name);

    /* A second backward accumulates: gradients double (with kept logits, the
       second one recomputes them: the first consumed them). */
    float g0 = m->params->grad[m->layer[0].wq];
    CHECK(rl_qwen2_backward(m, &r, glogp, gent, &err) == 0);
    CHECK(fabsf(m->params->grad[m->layer[0].wq] - 2 * g0) <= 1e-6f * fabsf(g0) + 1e-12f);

    if (chunk) test_save_reload(m);
    rl_free(ulp);
    rl_free(uen);
    rl_free(uhid);
    rl_free(ulog);
    rl_free(glogp);
    rl_free(gent);
    rl_free(plogits);
    ws_free(&r);
    rl_free(logits);
    rl_free(lp);
    rl_free(en);
    rl_free(hid);
    rl_free(wl);
    rl_free(we);
out:
    if (ref) rl_st_close(ref);
    rl_qwen2_free(m);
}

/* A batch big enough for the threaded paths the reference batch is too small
 * for (token-split weight gradients, row-split products with seeded rows,
 * the attention's cost split, kept LM-head logits): the gradients on 2
 * threads must agree with those on 1 thread, where every kernel takes its
 * serial path. */
static void test_threaded_paths(void) {
    rl_qwen2_config c = {.vocab = 96, .hidden = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .inter = 192,
                         .rope_theta = 10000.0, .rms_eps = 1e-6, .max_pos = 512, .tie = 0};
    const int64_t B = 4, T = 160;
    rl_error err = {0};
    rl_qwen2 *m = NULL;
    if (rl_qwen2_new(&c, "threads", 7, &m, &err) || rl_params_finalize(m->params, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        rl_qwen2_free(m);
        return;
    }
    int32_t tok[4 * 160], len[4] = {160, 131, 160, 97};
    uint64_t s = 99;
    for (int64_t i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)c.vocab);
    }
    rl_qwen2_run r;
    CHECK(ws_alloc(m, B, T, B * T + B, &r) == 0);
    const size_t np = (size_t)m->params->numel;
    float *g[2] = {rl_malloc(np * 4), rl_malloc(np * 4)}, *gl = rl_malloc((size_t)(B * T) * 4);
    const int before = rl_get_threads();
    for (int pass = 0; pass < 2; pass++) {
        rl_set_threads(pass == 0 ? 2 : 1);
        rl_params_zero_grad(m->params);
        CHECK(rl_qwen2_pack(m, &r, tok, len, B, T, &err) == 0 && rl_qwen2_forward(m, &r, &err) == 0);
        const int64_t M = rl_qwen2_rows(&r);
        for (int64_t i = 0; i < M; i++) gl[i] = (float)((i % 7) - 3) * 0.01f;
        CHECK_MSG(rl_qwen2_backward(m, &r, gl, gl, &err) == 0, "%s", err.msg);
        memcpy(g[pass], m->params->grad, np * 4);
    }
    rl_set_threads(before);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->params->n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        const double e = rel_err(g[0] + pe->offset, g[1] + pe->offset, (size_t)rl_shape_numel(&pe->shape));
        if (e > worst) worst = e, worst_name = pe->name;
    }
    CHECK_MSG(worst <= 1e-5, "gradients on 2 threads differ from 1 thread by %g (%s)", worst, worst_name);
    printf("threaded paths (%lld x %lld tokens): 2 threads vs 1, worst gradient rel err %.2e (%s)\n",
           (long long)B, (long long)T, worst, worst_name);
    rl_free(g[0]);
    rl_free(g[1]);
    rl_free(gl);
    ws_free(&r);
    rl_qwen2_free(m);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    run_case("qwen2_untied", 3);
    run_case("qwen2_tied", 3);
    run_case("qwen2_untied", 0);
    run_case("qwen2_tied", 0);
    test_threaded_paths();
    return rl_test_finish("test_qwen2_parity");
}
