/* The shipped model models/arith-tiny through rlfr's loader and forward pass
 * against PyTorch reading the same files in Hugging Face terms
 * (tests/gen_arith_tiny_ref.py checks config.json keys and the
 * Qwen2ForCausalLM tensor names and shapes, then writes logits, log-probs and
 * entropies of three ChatML-framed sequences to tests/ref/arith_tiny.safetensors).
 * Also: the bundle stays within the 8 MB budget. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cblas.h>

#include "alloc.h"
#include "qwen2.h"
#include "safetensors.h"
#include "testlib.h"

#define REL_TOL 1e-4

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > worst) worst = d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    return worst / (scale > 1e-30 ? scale : 1e-30);
}

static float *ref_f32(rl_st_file *f, const char *name, size_t want) {
    const rl_st_info *info = rl_st_find(f, name);
    rl_error err = {0};
    float *x = info && (size_t)rl_shape_numel(&info->shape) == want ? rl_malloc(want * sizeof(float)) : NULL;
    if (!x || rl_st_read_f32(f, name, x, want, &err)) {
        CHECK_MSG(0, "reference tensor '%s': %s", name, info ? err.msg : "missing or mis-sized");
        rl_free(x);
        return NULL;
    }
    return x;
}

static long long bundle_bytes(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json", "flow.safetensors",
                                        "flow_config.json", "rlfr.json"};
    long long total = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (stat(p, &st) == 0) total += (long long)st.st_size;
    }
    return total;
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    char dir[512], refp[512];
    snprintf(dir, sizeof dir, "%s", rl_test_path("models/arith-tiny"));
    snprintf(refp, sizeof refp, "%s", rl_test_path("tests/ref/arith_tiny.safetensors"));
    long long bytes = bundle_bytes(dir);
    CHECK_MSG(bytes > 0 && bytes <= 8ll * 1000 * 1000, "bundle is %lld bytes", bytes);

    rl_error err = {0};
    rl_qwen2 *m = NULL;
    rl_st_file *ref = NULL;
    CHECK_MSG(rl_qwen2_load(dir, "arith-tiny", &m, &err) == 0, "%s", err.msg);
    CHECK_MSG(rl_st_open(refp, &ref, &err) == 0, "%s", err.msg);
    if (!m || !ref) return rl_test_finish("arith_tiny");

    const rl_st_info *ti = rl_st_find(ref, "tokens"), *li = rl_st_find(ref, "lengths");
    CHECK(ti && li && ti->dtype == RL_I32 && li->dtype == RL_I32);
    if (!ti || !li) return rl_test_finish("arith_tiny");
    const int64_t B = ti->shape.dim[0], T = ti->shape.dim[1], V = m->cfg.vocab, d = m->cfg.hidden;
    const int32_t *tokens = ti->data, *lengths = li->data;
    float *logits = ref_f32(ref, "logits", (size_t)(B * T * V));
    float *lp = ref_f32(ref, "logprobs", (size_t)(B * T)), *en = ref_f32(ref, "entropy", (size_t)(B * T));

    rl_qwen2_run r;
    memset(&r, 0, sizeof r);
    r.max_rows = B * T;
    r.max_seqs = B;
    r.max_len = T;
    r.chunk = 16;
    r.threads = 1;
    r.forward_only = 1;
    rl_qwen2_ws_bytes wb;
    CHECK_MSG(rl_qwen2_ws_size_run(&m->cfg, &r, &wb, &err) == 0, "%s", err.msg);
    r.saved = rl_malloc_aligned(wb.saved);
    r.fwd = rl_malloc_aligned(wb.fwd);
    r.bwd = wb.bwd ? rl_malloc_aligned(wb.bwd) : NULL;
    float *ulog = rl_calloc((size_t)(B * T * V), sizeof(float));
    float *ulp = rl_calloc((size_t)(B * T), sizeof(float)), *uen = rl_calloc((size_t)(B * T), sizeof(float));
    float *plog = rl_malloc((size_t)(B * T * V) * sizeof(float));
    if (logits && lp && en && r.saved && r.fwd && ulog && ulp && uen && plog) {
        CHECK_MSG(rl_qwen2_pack(m, &r, tokens, lengths, B, T, &err) == 0, "%s", err.msg);
        CHECK_MSG(rl_qwen2_forward(m, &r, &err) == 0, "%s", err.msg);
        const int64_t M = rl_qwen2_rows(&r);
        int64_t ns = 0;
        const int32_t *brow = NULL;
        const rl_attn_seq *seqs = rl_qwen2_seqs(m, &r, &ns, &brow);
        const float *plp = rl_qwen2_logp(m, &r), *pen = rl_qwen2_entropy(m, &r);
        /* Logits from the final hidden states and the (tied) head. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)V, (int)d, 1.0f,
                    rl_qwen2_final_hidden(m, &r), (int)d, m->params->data + m->off_head, (int)d, 0.0f, plog, (int)V);
        CHECK(ns == B);
        for (int64_t s = 0; s < ns; s++) {
            int64_t b = brow[s];
            for (int64_t t = 0; t < seqs[s].n_q; t++) {
                int64_t row = seqs[s].q_row + t;
                memcpy(ulog + (b * T + t) * V, plog + row * V, (size_t)V * sizeof(float));
                if (t + 1 < seqs[s].n_q) {
                    ulp[b * T + t + 1] = plp[row];
                    uen[b * T + t + 1] = pen[row];
                }
            }
        }
        double e = rel_err(ulog, logits, (size_t)(B * T * V));
        CHECK_MSG(e <= REL_TOL, "logits rel err %g", e);
        e = rel_err(ulp, lp, (size_t)(B * T));
        CHECK_MSG(e <= REL_TOL, "logprobs rel err %g", e);
        e = rel_err(uen, en, (size_t)(B * T));
        CHECK_MSG(e <= REL_TOL, "entropy rel err %g", e);
    }
    rl_free(plog);
    rl_free(ulog);
    rl_free(ulp);
    rl_free(uen);
    rl_free(logits);
    rl_free(lp);
    rl_free(en);
    rl_free_aligned(r.saved);
    rl_free_aligned(r.fwd);
    rl_free_aligned(r.bwd);
    rl_st_close(ref);
    rl_qwen2_free(m);
    return rl_test_finish("arith_tiny");
}
