/* Throughput of the Qwen2 policy on random weights and tokens.
 *
 *   bench_policy WORKLOAD [steps]      WORKLOAD: tiny | small | tiny-gen | small-gen
 *
 * Training (tiny, small): forward, loss = mean token NLL, backward, AdamW;
 * prints "rlfr WORKLOAD tokens/s=X gflops=G ceiling=C fraction=F" (fraction
 * of this machine's cblas_sgemm ceiling) plus forward+backward and AdamW
 * times. Generation (*-gen): the `sampler` node in a graph, 8 prompts of 16
 * tokens, 64 new tokens each, temperature 1 (no stop token); prints
 * "rlfr WORKLOAD gen_tokens/s=X". qwen05b: a random model of Qwen2.5-0.5B
 * shape saved as bf16 safetensors, loaded back, a forward of 1 x 64 tokens
 * (f32) and 32 generated tokens from a 16-token prompt with bf16 weights;
 * prints both rates and the peak resident memory. Threads: OMP_NUM_THREADS (OpenBLAS's
 * OpenMP build shares that pool). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>

#include "adamw.h"
#include "alloc.h"
#include "graph.h"
#include "qwen2.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of a few 1024^3 sgemms: the practical GEMM ceiling with these threads. */
static double sgemm_ceiling(void) {
    const int n = 1024;
    float *a = rl_malloc_aligned((size_t)n * n * 4), *b = rl_malloc_aligned((size_t)n * n * 4),
          *c = rl_malloc_aligned((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now() - t;
        double g = 2.0 * n * n * (double)n / t * 1e-9;
        if (g > best) best = g;
    }
    rl_free_aligned(a);
    rl_free_aligned(b);
    rl_free_aligned(c);
    return best;
}

/* Prompt source for the generation benchmark. */
static int32_t gen_prompt[8 * 16], gen_len[8];
static int gen_B = 8, gen_Tp = 16;
static const rl_port_spec gsrc_out[] = {{"prompt", RL_I32, 2, 0, 0, ""}, {"len", RL_I32, 1, 0, 0, ""}};
static int gsrc_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(gen_B, gen_Tp);
    n->out[1].shape = rl_shape1(gen_B);
    return 0;
}
static int gsrc_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    memcpy(n->out[0].data, gen_prompt, (size_t)(gen_B * gen_Tp) * 4);
    memcpy(n->out[1].data, gen_len, (size_t)gen_B * 4);
    return 0;
}
static const rl_node_type t_gsrc = {.name = "bench_prompts", .outputs = gsrc_out, .n_outputs = 2,
                                    .infer = gsrc_infer, .forward = gsrc_forward};

static int bench_generation(rl_qwen2 *m, const char *w, int steps, int B, int Tp, int max_new, int bf16) {
    rl_error err = {0};
    rl_object *net = rl_qwen2_object(m);
    gen_B = B;
    gen_Tp = Tp;
    for (int i = 0; i < B * Tp; i++) gen_prompt[i] = (int32_t)((i * 7919 + 13) % m->cfg.vocab);
    for (int b = 0; b < B; b++) gen_len[b] = Tp;
    rl_graph *g = rl_graph_new("bench-gen");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", net);
    rl_opts_set_int(&o, "max_new", max_new);
    rl_opts_set_bool(&o, "bf16", bf16);
    rl_node *src = rl_graph_add(g, &t_gsrc, NULL, NULL, NULL, NULL, &err);
    rl_node *smp = src ? rl_graph_add_named(g, "sampler", NULL, NULL, NULL, &o, &err) : NULL;
    rl_opts_free(&o);
    if (!smp || rl_graph_connect(g, smp, 0, src, 0, &err) || rl_graph_connect(g, smp, 1, src, 1, &err) ||
        rl_graph_mark_output(g, smp, 0, &err) || rl_graph_compile(g, NULL, &err)) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        return 1;
    }
    /* The sampler repacks the decode weights at every run (they follow
       training); that share of a run is printed on its own. */
    double tp = 0;
    for (int k = 0; k < 2; k++) { /* the second call: the first one also allocates */
        tp = now();
        if (rl_qwen2_decode_weights(m, bf16, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.msg);
            return 1;
        }
        tp = now() - tp;
    }
    double total = 0;
    for (int it = -1; it < steps; it++) {
        rl_run_ctx ctx = {.seed = 1, .step = it + 1};
        double t0 = now();
        if (rl_graph_run(g, NULL, &ctx, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.msg);
            return 1;
        }
        if (it >= 0) total += now() - t0;
    }
    printf("rlfr %s threads=%d repack_s=%.4f gen_tokens/s=%.1f\n", w, omp_get_max_threads(), tp,
           (double)B * max_new * steps / total);
    rl_graph_free(g);
    rl_object_release(net);
    return 0;
}

static double peak_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

/* Qwen2.5-0.5B shape: bf16 checkpoint round trip, forward, bf16 generation. */
static int bench_qwen05b(int steps) {
    rl_qwen2_config c = {.vocab = 151936, .hidden = 896, .n_layers = 24, .n_heads = 14, .n_kv_heads = 2,
                         .inter = 4864, .max_pos = 32768, .rope_theta = 1000000.0, .rms_eps = 1e-6, .tie = 1};
    rl_error err = {0};
    rl_qwen2 *m = NULL;
    char dir[] = "/tmp/rlfr_qwen05b_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    double t0 = now();
    if (rl_qwen2_new(&c, "qwen05b", 1, &m, &err) || rl_params_finalize(m->params, &err) ||
        rl_qwen2_save(m, dir, RL_BF16, &err)) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        return 1;
    }
    const size_t numel = m->params->numel;
    rl_qwen2_free(m);
    m = NULL;
    double t1 = now();
    if (rl_qwen2_load(dir, "qwen05b", &m, &err)) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        return 1;
    }
    double t2 = now();
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    printf("rlfr qwen05b params=%zu init+save(bf16)=%.1fs load(bf16)=%.1fs\n", numel, t1 - t0, t2 - t1);
    /* Forward of 1 x 64 tokens (f32, the teacher-forced path). */
    const int64_t T = 64;
    rl_qwen2_run r = {T, 1, T, T, omp_get_max_threads(), NULL, NULL, NULL};
    rl_qwen2_ws_bytes wb;
    if (rl_qwen2_ws_size(&m->cfg, T, 1, T, r.chunk, r.threads, &wb, &err)) return 1;
    r.saved = rl_malloc_aligned(wb.saved);
    r.fwd = rl_malloc_aligned(wb.fwd);
    r.bwd = rl_malloc_aligned(wb.bwd);
    int32_t tok[64], len = (int32_t)T;
    for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 7919 + 13) % c.vocab);
    double tf = 0;
    for (int it = -1; it < steps; it++) {
        double a = now();
        if (rl_qwen2_pack(m, &r, tok, &len, 1, T, &err) || rl_qwen2_forward(m, &r, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.msg);
            return 1;
        }
        if (it >= 0) tf += now() - a;
    }
    printf("rlfr qwen05b forward_tokens/s=%.1f\n", (double)T * steps / tf);
    rl_free_aligned(r.saved);
    rl_free_aligned(r.fwd);
    rl_free_aligned(r.bwd);
    int rc = bench_generation(m, "qwen05b-gen", steps, 1, 16, 32, 1);
    printf("rlfr qwen05b peak_rss_gib=%.2f\n", peak_gib());
    return rc;
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "tiny";
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    rl_qwen2_config c = {.rope_theta = 10000.0, .rms_eps = 1e-6, .max_pos = 4096, .tie = 0};
    int64_t B, T;
    const int gen = strstr(w, "-gen") != NULL;
    if (strncmp(w, "tiny", 4) == 0) {
        c.vocab = 512, c.hidden = 128, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 2, c.inter = 384;
        B = 16, T = 128;
    } else if (strncmp(w, "small", 5) == 0) {
        c.vocab = 2048, c.hidden = 256, c.n_layers = 6, c.n_heads = 8, c.n_kv_heads = 2, c.inter = 768;
        B = 8, T = 256;
    } else if (strcmp(w, "qwen05b") == 0) {
        return bench_qwen05b(steps);
    } else {
        fprintf(stderr, "bench_policy: unknown workload '%s' (tiny, small, tiny-gen, small-gen, qwen05b)\n", w);
        return 2;
    }
    if (argc > 4) B = atoi(argv[3]), T = atoi(argv[4]); /* custom batch */
    rl_error err = {0};
    rl_qwen2 *m = NULL;
    if (rl_qwen2_new(&c, "bench", 1, &m, &err) || rl_params_finalize(m->params, &err)) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        return 1;
    }
    if (gen) return bench_generation(m, w, steps, 8, 16, 64, 0);
    const int threads = omp_get_max_threads();
    rl_qwen2_run r = {B * T, B, T, 0, threads, NULL, NULL, NULL};
    r.chunk = ((int64_t)1 << 23) / c.vocab; /* as the policy node's default: 32 MB of logits, */
    if (r.chunk > B * T + B) r.chunk = B * T + B; /* at most the LM-head rows (then kept, not recomputed) */
    rl_qwen2_ws_bytes wb;
    if (rl_qwen2_ws_size(&c, B * T, B, T, r.chunk, threads, &wb, &err)) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        return 1;
    }
    r.saved = rl_malloc_aligned(wb.saved);
    r.fwd = rl_malloc_aligned(wb.fwd);
    r.bwd = rl_malloc_aligned(wb.bwd);
    int32_t *tok = rl_malloc((size_t)(B * T) * 4), *len = rl_malloc((size_t)B * 4);
    float *gl = rl_malloc((size_t)(B * T) * 4);
    uint64_t s = 12345;
    for (int64_t i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)c.vocab);
    }
    for (int64_t b = 0; b < B; b++) len[b] = (int32_t)T;
    rl_adamw opt;
    rl_adamw_hparams hp = {0.9, 0.999, 1e-8, 0.01};
    if (rl_adamw_init(&opt, m->params->numel, &err)) return 1;

    double t_fb = 0, t_opt = 0, loss = 0;
    for (int it = -2; it < steps; it++) { /* two warm-up steps */
        double t0 = now();
        if (rl_qwen2_pack(m, &r, tok, len, B, T, &err) || rl_qwen2_forward(m, &r, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.msg);
            return 1;
        }
        const int64_t M = rl_qwen2_rows(&r), count = B * (T - 1);
        const float *lp = rl_qwen2_logp(m, &r);
        loss = 0;
        for (int64_t i = 0; i < M; i++) loss -= lp[i];
        loss /= (double)count;
        /* d(mean NLL)/d logp = -1/count on every predicted token. */
        for (int64_t i = 0; i < M; i++) gl[i] = -1.0f / (float)count;
        if (rl_qwen2_backward(m, &r, gl, NULL, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.msg);
            return 1;
        }
        double t1 = now();
        rl_adamw_step(&opt, &hp, 1e-3, m->params->data, m->params->grad);
        rl_params_zero_grad(m->params);
        double t2 = now();
        if (it >= 0) {
            t_fb += t1 - t0;
            t_opt += t2 - t1;
        }
    }
    const double tokens = (double)(B * T) * steps, step_t = (t_fb + t_opt) / steps;
    /* Model FLOPs per step: GEMMs 3x forward (+1x LM head recomputed in
       backward), causal attention 2 matmuls forward, 4 + 1 recompute backward. */
    const double d = (double)c.hidden, qd = d, kd = (double)(c.n_kv_heads * c.head_dim), Fi = (double)c.inter;
    const double per_tok = 2.0 * c.n_layers * (d * qd + 2 * d * kd + qd * d + 3 * d * Fi);
    const double head = 2.0 * d * (double)c.vocab;
    const double attn = 2.0 * 2.0 * (double)c.n_layers * (double)B * qd * (double)T * (double)(T + 1) / 2.0;
    const double flops = 3.0 * per_tok * (double)(B * T) + 4.0 * head * (double)(B * T) + 3.5 * attn;
    const double gflops = flops / step_t * 1e-9, ceil_g = sgemm_ceiling();
    printf("rlfr %s threads=%d loss=%.4f fwd+bwd=%.1fms adamw=%.1fms step=%.1fms\n", w, threads, loss,
           1e3 * t_fb / steps, 1e3 * t_opt / steps, 1e3 * step_t);
    printf("rlfr %s tokens/s=%.0f gflops=%.1f ceiling=%.1f fraction=%.2f\n", w, tokens / (t_fb + t_opt), gflops,
           ceil_g, gflops / ceil_g);
    rl_adamw_free(&opt);
    rl_free_aligned(r.saved);
    rl_free_aligned(r.fwd);
    rl_free_aligned(r.bwd);
    rl_free(tok);
    rl_free(len);
    rl_free(gl);
    rl_qwen2_free(m);
    return 0;
}
