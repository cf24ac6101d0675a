/* The `sampler` node: greedy generation equals step-by-step argmax of the
 * teacher-forced forward; KV-cache log-probs equal full recomputation; fixed
 * seeds reproduce; a sample is identical alone or in a batch; top-k = 1 and
 * a tiny top-p are greedy; stop tokens and max_new set finished / truncated;
 * bf16 decoding equals f32 decoding of bf16-rounded matrices; bad prompts
 * fail with one clear error; with image embeddings spliced into the prompts'
 * <|image_pad|> positions, greedy generation equals the argmax of the
 * teacher-forced forward with the same splice, and text-only prompts in the
 * same batch are unaffected. Model: tests/ref/qwen2_tied. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "alloc.h"
#include "graph.h"
#include "qwen2.h"
#include "testlib.h"

static int32_t g_prompt[64], g_plen[8], g_pid[8];
static int64_t g_B, g_Tp;

static const rl_port_spec src_out[] = {{"prompt", RL_I32, 2, 0, 0, ""}, {"len", RL_I32, 1, 0, 0, ""},
                                       {"id", RL_I32, 1, 0, 0, ""}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(g_B, g_Tp);
    n->out[1].shape = rl_shape1(g_B);
    n->out[2].shape = rl_shape1(g_B);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    memcpy(n->out[0].data, g_prompt, (size_t)(g_B * g_Tp) * 4);
    memcpy(n->out[1].data, g_plen, (size_t)g_B * 4);
    memcpy(n->out[2].data, g_pid, (size_t)g_B * 4);
    return 0;
}
static const rl_node_type t_src = {.name = "t_prompts", .doc = "prompts", .outputs = src_out, .n_outputs = 3,
                                   .infer = src_infer, .forward = src_forward};

/* Image embeddings source: g_img [g_n_img, 32] (the model's hidden size). */
static float g_img[16 * 32];
static int64_t g_n_img = -1; /* < 0: no image input */
static const rl_port_spec img_out[] = {{"image_embeds", RL_F32, 2, 0, 0, ""}};
static int img_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(g_n_img, 32);
    return 0;
}
static int img_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    (void)err;
    memcpy(n->out[0].data, g_img, (size_t)(g_n_img * 32) * 4);
    return 0;
}
static const rl_node_type t_img = {.name = "t_images", .doc = "image embeddings", .outputs = img_out,
                                   .n_outputs = 1, .infer = img_infer, .forward = img_forward};

typedef struct result {
    int64_t S, L;
    int32_t tok[256], len[16], fin[16], tru[16];
    float lp[256], mask[256];
} result;

/* Builds prompts -> sampler, runs it at `step`, copies the outputs. */
static int generate(rl_object *net, const rl_opts *extra, int64_t step, result *r, rl_error *e) {
    rl_graph *g = rl_graph_new("sampler-test");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_copy(&o, extra);
    rl_opts_set_object(&o, "net", net);
    rl_node *src = rl_graph_add(g, &t_src, NULL, "t.lua:1", NULL, NULL, e);
    rl_node *smp = src ? rl_graph_add_named(g, "sampler", NULL, "t.lua:2", NULL, &o, e) : NULL;
    rl_node *img = smp && g_n_img >= 0 ? rl_graph_add(g, &t_img, NULL, "t.lua:3", NULL, NULL, e) : NULL;
    rl_opts_free(&o);
    int rc = -1;
    if (smp && rl_graph_connect(g, smp, 0, src, 0, e) == 0 && rl_graph_connect(g, smp, 1, src, 1, e) == 0 &&
        rl_graph_connect(g, smp, 2, src, 2, e) == 0 && (g_n_img < 0 || (img && rl_graph_connect(g, smp, 3, img, 0, e) == 0))) {
        rc = 0;
        for (int i = 0; i < 6 && rc == 0; i++) rc = rl_graph_mark_output(g, smp, i, e);
        if (rc == 0) rc = rl_graph_compile(g, NULL, e);
        rl_run_ctx ctx = {.seed = 42, .step = step};
        if (rc == 0) rc = rl_graph_run(g, NULL, &ctx, e);
        if (rc == 0) {
            r->S = smp->out[0].shape.dim[0];
            r->L = smp->out[0].shape.dim[1];
            size_t n = (size_t)(r->S * r->L);
            if (n > 256 || r->S > 16) {
                rc = -1;
            } else {
                memcpy(r->tok, smp->out[0].data, n * 4);
                memcpy(r->mask, smp->out[2].data, n * 4);
                memcpy(r->lp, smp->out[3].data, n * 4);
                memcpy(r->len, smp->out[1].data, (size_t)r->S * 4);
                memcpy(r->fin, smp->out[4].data, (size_t)r->S * 4);
                memcpy(r->tru, smp->out[5].data, (size_t)r->S * 4);
            }
        }
    }
    rl_graph_free(g);
    return rc;
}

/* Teacher-forced check of every response token: logp equals the full forward's
 * log-prob (KV cache == recomputation) and, when greedy, the token is the argmax. */
static void check_against_forward_img(const rl_qwen2 *m, const result *r, int64_t G, int greedy, int32_t pad,
                                     const float *img, int64_t n_img, int top_k, double top_p, const char *what) {
    rl_qwen2_run run = {r->S * r->L, r->S, r->L, 4, 2, NULL, NULL, NULL};
    rl_qwen2_ws_bytes wb;
    rl_error e = {0};
    if (rl_qwen2_ws_size(&m->cfg, run.max_rows, run.max_seqs, run.max_len, run.chunk, 2, &wb, &e)) {
        CHECK(0);
        return;
    }
    run.saved = rl_malloc_aligned(wb.saved);
    run.fwd = rl_malloc_aligned(wb.fwd);
    run.bwd = rl_malloc_aligned(wb.bwd);
    CHECK_MSG(rl_qwen2_pack(m, &run, r->tok, r->len, r->S, r->L, &e) == 0, "%s", e.msg);
    if (pad >= 0) CHECK_MSG(rl_qwen2_splice_images(m, &run, pad, img, n_img, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_qwen2_forward(m, &run, &e) == 0, "%s", e.msg);
    const int64_t V = m->cfg.vocab, d = m->cfg.hidden, M = rl_qwen2_rows(&run);
    float *logits = rl_malloc((size_t)(M * V) * 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)V, (int)d, 1.0f, rl_qwen2_final_hidden(m, &run),
                (int)d, m->params->data + m->off_head, (int)d, 0.0f, logits, (int)V);
    const float *plp = rl_qwen2_logp(m, &run);
    int64_t ns;
    const int32_t *brow;
    const rl_attn_seq *seqs = rl_qwen2_seqs(m, &run, &ns, &brow);
    int argmax_ok = 1, n_resp = 0, filter_ok = 1;
    double worst = 0;
    for (int64_t q = 0; q < ns; q++) {
        const int64_t sl = brow[q], b = sl / G;
        for (int64_t p = g_plen[b]; p < r->len[sl]; p++) {
            const int64_t row = seqs[q].q_row + p - 1; /* predicts token p */
            n_resp++;
            worst = fmax(worst, fabs(plp[row] - r->lp[sl * r->L + p]));
            if (greedy) {
                int64_t best = 0;
                for (int64_t j = 1; j < V; j++)
                    if (logits[row * V + j] > logits[row * V + best]) best = j;
                if (best != r->tok[sl * r->L + p]) argmax_ok = 0;
            }
            if (top_k > 0 || top_p < 1.0) {
                /* the drawn token is among the top_k and inside the top-p
                   prefix: fewer than top_k better tokens, whose mass < top_p */
                const float *z = logits + row * V;
                const int32_t t = r->tok[sl * r->L + p];
                double mx = z[0], tot = 0, better = 0;
                int64_t n_better = 0;
                for (int64_t j = 1; j < V; j++) mx = fmax(mx, z[j]);
                for (int64_t j = 0; j < V; j++) tot += exp(z[j] - mx);
                for (int64_t j = 0; j < V; j++)
                    if (z[j] > z[t] || (z[j] == z[t] && j < t)) n_better++, better += exp(z[j] - mx) / tot;
                if ((top_k > 0 && n_better >= top_k) || better >= top_p) filter_ok = 0;
            }
        }
    }
    CHECK_MSG(n_resp > 0, "%s: no response tokens", what);
    CHECK_MSG(argmax_ok, "%s: greedy token is not the teacher-forced argmax", what);
    CHECK_MSG(filter_ok, "%s: a drawn token is outside the top-k / top-p set", what);
    CHECK_MSG(worst < 1e-4, "%s: KV-cache log-prob differs from recomputation by %g", what, worst);
    rl_free(logits);
    rl_free_aligned(run.saved);
    rl_free_aligned(run.fwd);
    rl_free_aligned(run.bwd);
}

static void check_against_forward(const rl_qwen2 *m, const result *r, int64_t G, int greedy, const char *what) {
    check_against_forward_img(m, r, G, greedy, -1, NULL, 0, 0, 1.0, what);
}

/* Greedy generation from prompts carrying image pads (token 1): row 0 holds
 * 3, row 2 one, row 1 none (text only). */
static void check_images(rl_object *net, const rl_qwen2 *m) {
    rl_error e = {0};
    const int32_t pad = 1;
    g_B = 3;
    g_Tp = 5;
    const int32_t p[15] = {3, 1, 1, 1, 17, 11, 5, 29, 0, 0, 1, 50, 0, 0, 0};
    memcpy(g_prompt, p, sizeof p);
    g_plen[0] = 5, g_plen[1] = 3, g_plen[2] = 2;
    g_pid[0] = 0, g_pid[1] = 1, g_pid[2] = 2;
    uint64_t st = 12345;
    for (int i = 0; i < 4 * 32; i++) { /* xorshift values in [-2, 2): far from any token embedding */
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        g_img[i] = (float)((double)(st >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    g_n_img = 4;
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 2);
    rl_opts_set_int(&o, "max_new", 6);
    rl_opts_set_bool(&o, "greedy", 1);
    rl_opts_set_int(&o, "image_pad_id", pad);
    static result with, plain, text;
    CHECK_MSG(generate(net, &o, 0, &with, &e) == 0, "%s", e.msg);
    /* The teacher-forced reference sees every sample's copy of its prompt's
       image rows, in batch order: samples 0, 1 (rows 0-2), 4, 5 (row 3). */
    float rep[8 * 32];
    int64_t n_rep = 0, bad_pad = 0;
    for (int64_t sl = 0; sl < with.S; sl++) {
        const int64_t b = sl / 2;
        const int64_t first = b == 0 ? 0 : 3, cnt = b == 0 ? 3 : b == 2 ? 1 : 0;
        memcpy(rep + n_rep * 32, g_img + first * 32, (size_t)(cnt * 32) * 4);
        n_rep += cnt;
        for (int64_t t = g_plen[b]; t < with.len[sl]; t++) bad_pad += with.tok[sl * with.L + t] == pad;
    }
    CHECK_MSG(bad_pad == 0, "a response token equals the pad id: pick another pad id for this test");
    check_against_forward_img(m, &with, 2, 1, pad, rep, n_rep, 0, 1.0, "greedy with images");
    /* The image matters: without it (pad ids read as plain tokens) the image rows' samples change. */
    g_n_img = -1;
    rl_opts_set_int(&o, "image_pad_id", -1);
    CHECK_MSG(generate(net, &o, 0, &plain, &e) == 0, "%s", e.msg);
    double dimg = 0;
    for (int64_t i = 0; i < with.L * 2; i++) dimg = fmax(dimg, fabs(with.lp[i] - plain.lp[i]));
    CHECK_MSG(dimg > 1e-3, "image embeddings did not change the generation of row 0 (%g)", dimg);
    /* The text-only row is exactly what it is in a text-only batch. */
    CHECK_MSG(memcmp(with.tok + 2 * with.L, plain.tok + 2 * plain.L, (size_t)(2 * with.L) * 4) == 0,
              "a text-only prompt changed next to image prompts");
    g_B = 1;
    memmove(g_prompt, g_prompt + 5, 5 * sizeof(int32_t));
    g_plen[0] = 3;
    g_pid[0] = 1;
    CHECK_MSG(generate(net, &o, 0, &text, &e) == 0, "%s", e.msg);
    CHECK(memcmp(text.tok, with.tok + 2 * with.L, (size_t)(2 * with.L) * 4) == 0);
    /* A count mismatch is one clear error. */
    memcpy(g_prompt, p, sizeof p);
    g_B = 3;
    g_plen[0] = 5, g_plen[1] = 3, g_plen[2] = 2;
    g_n_img = 3;
    rl_opts_set_int(&o, "image_pad_id", pad);
    CHECK(generate(net, &o, 0, &text, &e) != 0);
    CHECK_MSG(strstr(e.msg, "node 'sampler'") && strstr(e.msg, "hold 4 image_pad_id (1) tokens but 'image_embeds' has 3 rows"),
              "%s", e.msg);
    /* image_embeds without image_pad_id. */
    rl_opts_set_int(&o, "image_pad_id", -1);
    CHECK(generate(net, &o, 0, &text, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'image_pad_id' is not set"), "%s", e.msg);
    g_n_img = -1;
    rl_opts_free(&o);
}

static void set_prompts(void) {
    g_B = 3;
    g_Tp = 5;
    const int32_t p[15] = {3, 17, 42, 8, 60, 11, 5, 29, 0, 0, 50, 0, 0, 0, 0};
    memcpy(g_prompt, p, sizeof p);
    g_plen[0] = 5, g_plen[1] = 3, g_plen[2] = 1;
    g_pid[0] = 100, g_pid[1] = 7, g_pid[2] = 3;
}

static int differs(const result *a, const result *b) {
    return memcmp(a->tok, b->tok, (size_t)(a->S * a->L) * 4) != 0;
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    CHECK_MSG(rl_qwen2_load(rl_test_path("tests/ref/qwen2_tied"), "policy", &m, &e) == 0, "%s", e.msg);
    if (!m) return rl_test_finish("test_qwen2_sampler");
    rl_object *net = rl_qwen2_object(m);
    static result greedy, a, b, c, alone;
    set_prompts();

    /* Greedy: argmax of the teacher-forced forward at every step; G copies agree. */
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 2);
    rl_opts_set_int(&o, "max_new", 6);
    rl_opts_set_bool(&o, "greedy", 1);
    CHECK_MSG(generate(net, &o, 0, &greedy, &e) == 0, "%s", e.msg);
    CHECK(greedy.S == 6 && greedy.L == 11);
    check_against_forward(m, &greedy, 2, 1, "greedy");
    CHECK(memcmp(greedy.tok, greedy.tok + greedy.L, (size_t)greedy.L * 4) == 0);
    for (int64_t sl = 0; sl < greedy.S; sl++) {
        CHECK(greedy.tru[sl] == 1 && greedy.fin[sl] == 0 && greedy.len[sl] == g_plen[sl / 2] + 6);
        CHECK(greedy.mask[sl * greedy.L + g_plen[sl / 2]] == 1.0f && greedy.mask[sl * greedy.L] == 0.0f);
    }
    /* top_k = 1 and a tiny top_p draw the argmax too. */
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 2);
    rl_opts_set_int(&o, "max_new", 6);
    rl_opts_set_int(&o, "top_k", 1);
    CHECK_MSG(generate(net, &o, 0, &a, &e) == 0, "%s", e.msg);
    CHECK_MSG(!differs(&a, &greedy), "top_k = 1 is not greedy");
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 2);
    rl_opts_set_int(&o, "max_new", 6);
    rl_opts_set_number(&o, "top_p", 1e-6);
    CHECK_MSG(generate(net, &o, 0, &a, &e) == 0, "%s", e.msg);
    CHECK_MSG(!differs(&a, &greedy), "tiny top_p is not greedy");
    /* Partial selection: every drawn token lies in the top-k / top-p set
       (64 candidates: the selection partitions before sorting). */
    const int ks[3] = {5, 0, 12};
    const double ps[3] = {1.0, 0.6, 0.9};
    for (int i = 0; i < 3; i++) {
        rl_opts_set_int(&o, "group", 3);
        rl_opts_set_int(&o, "top_k", ks[i]);
        rl_opts_set_number(&o, "top_p", ps[i]);
        CHECK_MSG(generate(net, &o, 9, &a, &e) == 0, "%s", e.msg);
        check_against_forward_img(m, &a, 3, 0, -1, NULL, 0, ks[i], ps[i], "top-k / top-p");
    }

    /* Sampling at temperature 1: log-probs match recomputation; seeds reproduce. */
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "group", 3);
    rl_opts_set_int(&o, "max_new", 7);
    CHECK_MSG(generate(net, &o, 5, &a, &e) == 0, "%s", e.msg);
    check_against_forward(m, &a, 3, 0, "sampled");
    CHECK(generate(net, &o, 5, &b, &e) == 0);
    CHECK_MSG(!differs(&a, &b) && memcmp(a.lp, b.lp, sizeof a.lp) == 0, "same seed and step differ");
    CHECK(generate(net, &o, 6, &c, &e) == 0);
    CHECK_MSG(differs(&a, &c), "another step gave the same samples");
    /* The G samples of one prompt differ from each other. */
    CHECK(memcmp(a.tok, a.tok + a.L, (size_t)a.L * 4) != 0 || memcmp(a.tok, a.tok + 2 * a.L, (size_t)a.L * 4) != 0);

    /* Prompt 1 alone (same prompt id) gives exactly its samples from the batch. */
    g_B = 1;
    memmove(g_prompt, g_prompt + 5, 5 * sizeof(int32_t));
    g_plen[0] = 3;
    g_pid[0] = 7;
    CHECK_MSG(generate(net, &o, 5, &alone, &e) == 0, "%s", e.msg);
    CHECK(alone.S == 3);
    CHECK_MSG(memcmp(alone.tok, a.tok + 3 * a.L, (size_t)(3 * a.L) * 4) == 0, "sample changed with the batch");
    double dl = 0;
    for (int64_t i = 0; i < 3 * a.L; i++) dl = fmax(dl, fabs(alone.lp[i] - a.lp[3 * a.L + i]));
    CHECK_MSG(dl < 1e-5, "log-probs changed with the batch by %g", dl);
    set_prompts();

    /* Stop tokens end a response (kept) and set `finished`. Stop on the
       greedy continuation's second token of prompt 0. */
    const double stop = (double)greedy.tok[g_plen[0] + 1];
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "max_new", 6);
    rl_opts_set_bool(&o, "greedy", 1);
    rl_opts_set_numbers(&o, "stop", &stop, 1);
    CHECK_MSG(generate(net, &o, 0, &a, &e) == 0, "%s", e.msg);
    CHECK(a.fin[0] == 1 && a.tru[0] == 0 && a.len[0] == g_plen[0] + 2 && a.tok[g_plen[0] + 1] == (int32_t)stop);
    CHECK(a.mask[g_plen[0] + 2] == 0.0f && a.tok[g_plen[0] + 2] == 0);
    for (int64_t sl = 0; sl < a.S; sl++) CHECK(a.fin[sl] + a.tru[sl] == 1);

    /* Suppressed tokens are never drawn: greedy takes the next best token,
       sampling never produces one; the rest of the greedy continuation is
       unchanged up to the first suppressed token. */
    {
        const double sup[2] = {(double)greedy.tok[g_plen[0]], (double)greedy.tok[g_plen[0] + 1]};
        static result su;
        rl_opts_free(&o);
        rl_opts_init(&o);
        rl_opts_set_int(&o, "max_new", 6);
        rl_opts_set_bool(&o, "greedy", 1);
        rl_opts_set_numbers(&o, "suppress", sup, 2);
        CHECK_MSG(generate(net, &o, 0, &su, &e) == 0, "%s", e.msg);
        int64_t hits = 0;
        for (int64_t i = 0; i < su.S * su.L; i++)
            if (su.mask[i] > 0 && (su.tok[i] == (int32_t)sup[0] || su.tok[i] == (int32_t)sup[1])) hits++;
        CHECK_MSG(hits == 0, "greedy drew a suppressed token %lld times", (long long)hits);
        CHECK(su.tok[g_plen[0]] != greedy.tok[g_plen[0]]);
        rl_opts_set_bool(&o, "greedy", 0);
        rl_opts_set_int(&o, "group", 3);
        CHECK_MSG(generate(net, &o, 4, &su, &e) == 0, "%s", e.msg);
        for (int64_t i = 0; i < su.S * su.L; i++)
            if (su.mask[i] > 0 && (su.tok[i] == (int32_t)sup[0] || su.tok[i] == (int32_t)sup[1])) hits++;
        CHECK_MSG(hits == 0, "sampling drew a suppressed token %lld times", (long long)hits);
        const double bad = 1e9;
        rl_opts_set_numbers(&o, "suppress", &bad, 1);
        CHECK(generate(net, &o, 0, &su, &e) != 0);
        CHECK_MSG(strstr(e.msg, "suppress token") && strstr(e.msg, "sampler"), "%s", e.msg);
    }

    /* bf16 decoding equals f32 decoding with bf16-rounded weights. */
    {
        rl_qwen2 *m2 = NULL;
        CHECK_MSG(rl_qwen2_load(rl_test_path("tests/ref/qwen2_tied"), "rounded", &m2, &e) == 0, "%s", e.msg);
        if (m2) {
            /* matrices and the embedding are read as bf16; norms and biases stay f32 */
            for (int t = 0; t < m2->params->n; t++) {
                const rl_param_entry *pe = &m2->params->entries[t];
                if (pe->shape.ndim != 2) continue;
                float *x = m2->params->data + pe->offset;
                for (int64_t i = 0; i < rl_shape_numel(&pe->shape); i++) x[i] = rl_bf16_to_f32(rl_f32_to_bf16(x[i]));
            }
            rl_object *net2 = rl_qwen2_object(m2);
            static result h, f;
            rl_opts_free(&o);
            rl_opts_init(&o);
            rl_opts_set_int(&o, "group", 2);
            rl_opts_set_int(&o, "max_new", 6);
            CHECK_MSG(generate(net2, &o, 3, &f, &e) == 0, "%s", e.msg);
            rl_opts_set_bool(&o, "bf16", 1);
            CHECK_MSG(generate(net, &o, 3, &h, &e) == 0, "%s", e.msg);
            CHECK_MSG(!differs(&h, &f), "bf16 decoding changed the samples");
            double dh = 0;
            for (int64_t i = 0; i < h.S * h.L; i++) dh = fmax(dh, fabs(h.lp[i] - f.lp[i]));
            CHECK_MSG(dh < 1e-4, "bf16 decoding log-probs differ by %g", dh);
            CHECK(m->panels != NULL);
            rl_object_release(net2);
        }
    }

    check_images(net, m);
    set_prompts();

    /* Bad input. */
    g_prompt[6] = 64;
    rl_opts_free(&o);
    rl_opts_init(&o);
    CHECK(generate(net, &o, 0, &a, &e) != 0);
    CHECK_MSG(strstr(e.msg, "node 'sampler'") && strstr(e.msg, "row 1, position 1: token id 64 outside the vocabulary"),
              "%s", e.msg);
    set_prompts();
    g_plen[2] = 0;
    CHECK(generate(net, &o, 0, &a, &e) != 0);
    CHECK_MSG(strstr(e.msg, "row 2: prompt length 0 outside [1, 5]"), "%s", e.msg);
    set_prompts();
    rl_opts_set_int(&o, "max_new", 124); /* 5 + 124 > 128 positions */
    CHECK(generate(net, &o, 0, &a, &e) != 0);
    CHECK_MSG(strstr(e.msg, "exceed the context of 128 positions"), "%s", e.msg);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_number(&o, "top_p", 0.0);
    CHECK(generate(net, &o, 0, &a, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'top_p' must be in (0, 1]"), "%s", e.msg);
    rl_opts_free(&o);
    rl_object_release(net);
    return rl_test_finish("test_qwen2_sampler");
}
