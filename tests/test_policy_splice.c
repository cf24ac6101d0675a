/* Image embeddings spliced into the policy (issue 8, docs/policy.md "Image
 * splice"): positions holding image_pad_id take the rows of image_embeds in
 * batch order.
 * - model level: finite differences of a loss through the splice, into the
 *   image embeddings and into the parameters; the input-gradient-only
 *   backward (frozen policy) gives the same image gradient bit for bit and
 *   leaves the parameter gradients alone; a count mismatch is one error;
 * - graph level: a text-only batch is unchanged by the presence of the input
 *   (bit for bit), text-only rows of a mixed batch are unchanged;
 *   vision_encoder -> policy with graph gradients checked by finite
 *   differences, the same vit gradient with a frozen policy, AdamW over
 *   both sets lowering the loss without allocating in steady state; bad
 *   wiring and bad batches fail with one line naming the node. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "qwen2.h"
#include "testlib.h"
#include "vit.h"

#define PAD 11
#define B 3
#define T 6
#define D 8
#define NIMG 4 /* pads in the standard batch */

static const rl_qwen2_config micro = {.vocab = 13, .hidden = D, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                                      .inter = 12, .max_pos = 16, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = 0};

/* Row 0 and row 2 carry two image pads each, row 1 is text only. */
static const int32_t std_tokens[B * T] = {1, PAD, PAD, 4, 5, 2, 7, 8, 9, 0, 0, 0, PAD, 6, PAD, 3, 0, 0};
static const int32_t std_lengths[B] = {6, 3, 4};

static rl_qwen2 *new_model(uint64_t seed) {
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    CHECK_MSG(rl_qwen2_new(&micro, "micro", seed, &m, &e) == 0, "%s", e.msg);
    if (!m) return NULL;
    CHECK(rl_params_finalize(m->params, &e) == 0);
    /* Weights of order 0.5 so every path carries a visible gradient. */
    rl_test_fill(m->params->data, m->params->numel, seed + 100);
    for (size_t i = 0; i < m->params->numel; i++) m->params->data[i] *= 0.5f;
    return m;
}

/* ---- model level ---------------------------------------------------------- */

typedef struct mctx {
    rl_qwen2 *m;
    rl_qwen2_run r;
    const int32_t *tokens, *lengths;
    int32_t pad;
    float *img;
    int64_t n_img;
    float wl[B * T], we[B * T];
} mctx;

static int mctx_init(mctx *c, rl_qwen2 *m, int forward_only) {
    memset(&c->r, 0, sizeof c->r);
    c->m = m;
    c->r = (rl_qwen2_run){B * T, B, T, 4, 2, NULL, NULL, NULL};
    c->r.forward_only = forward_only;
    rl_qwen2_ws_bytes wb;
    rl_error e = {0};
    if (rl_qwen2_ws_size_run(&m->cfg, &c->r, &wb, &e)) return -1;
    c->r.saved = rl_malloc_aligned(wb.saved);
    c->r.fwd = rl_malloc_aligned(wb.fwd);
    c->r.bwd = wb.bwd ? rl_malloc_aligned(wb.bwd) : NULL;
    return c->r.saved && c->r.fwd ? 0 : -1;
}

static void mctx_free(mctx *c) {
    rl_free_aligned(c->r.saved);
    rl_free_aligned(c->r.fwd);
    rl_free_aligned(c->r.bwd);
}

static int mctx_forward(mctx *c, rl_error *e) {
    if (rl_qwen2_pack(c->m, &c->r, c->tokens, c->lengths, B, T, e)) return -1;
    if (rl_qwen2_splice_images(c->m, &c->r, c->pad, c->img, c->n_img, e)) return -1;
    return rl_qwen2_forward(c->m, &c->r, e);
}

/* loss = sum over packed rows of wl * logp + we * entropy (in double) */
static double model_loss(void *p) {
    mctx *c = p;
    rl_error e = {0};
    if (mctx_forward(c, &e)) return NAN;
    const int64_t M = rl_qwen2_rows(&c->r);
    const float *lp = rl_qwen2_logp(c->m, &c->r), *en = rl_qwen2_entropy(c->m, &c->r);
    double s = 0;
    for (int64_t i = 0; i < M; i++) s += (double)c->wl[i] * lp[i] + (double)c->we[i] * en[i];
    return s;
}

static void test_model_splice(void) {
    rl_qwen2 *m = new_model(7);
    if (!m) return;
    mctx c;
    CHECK(mctx_init(&c, m, 0) == 0);
    float img[NIMG * D], gimg[NIMG * D], gimg2[NIMG * D];
    rl_test_fill(img, NIMG * D, 5);
    c.tokens = std_tokens;
    c.lengths = std_lengths;
    c.pad = PAD;
    c.img = img;
    c.n_img = NIMG;
    rl_test_fill(c.wl, B * T, 21);
    rl_test_fill(c.we, B * T, 22);
    rl_error e = {0};

    /* Analytic gradients: image rows and every parameter. */
    CHECK_MSG(mctx_forward(&c, &e) == 0, "%s", e.msg);
    memset(gimg, 0, sizeof gimg);
    rl_params_zero_grad(m->params);
    c.r.image_grad = gimg;
    CHECK_MSG(rl_qwen2_backward(m, &c.r, c.wl, c.we, &e) == 0, "%s", e.msg);
    float *gpar = rl_malloc(m->params->numel * sizeof(float));
    memcpy(gpar, m->params->grad, m->params->numel * sizeof(float));
    /* The pad token's own embedding row was never read: no gradient. */
    float padrow = 0;
    for (int j = 0; j < D; j++) padrow += fabsf(gpar[m->off_embed + PAD * D + j]);
    CHECK_MSG(padrow == 0.0f, "pad token embedding got gradient %g", padrow);

    double wi = rl_test_gradcheck(img, NIMG * D, gimg, model_loss, &c, 2e-2, 0);
    CHECK_MSG(wi < 5e-2, "splice: image-embedding finite-difference rel err %g", wi);
    double wp = rl_test_gradcheck(m->params->data, m->params->numel, gpar, model_loss, &c, 2e-2, 150);
    CHECK_MSG(wp < 5e-2, "splice: parameter finite-difference rel err %g", wp);
    printf("splice finite differences: image rows %.2e (all %d), parameters %.2e (150 of %zu)\n", wi, NIMG * D, wp,
           m->params->numel);

    /* Input-gradient-only backward (a frozen policy feeding a trained
       encoder): same image gradient bit for bit, block weights untouched. */
    CHECK_MSG(mctx_forward(&c, &e) == 0, "%s", e.msg);
    memset(gimg2, 0, sizeof gimg2);
    rl_params_zero_grad(m->params);
    c.r.image_grad = gimg2;
    c.r.no_param_grad = 1;
    CHECK_MSG(rl_qwen2_backward(m, &c.r, c.wl, c.we, &e) == 0, "%s", e.msg);
    CHECK(memcmp(gimg, gimg2, sizeof gimg) == 0);
    float touched = 0;
    for (size_t i = m->layer[0].wq; i < m->layer[0].wq + (size_t)(D * D); i++) touched += fabsf(m->params->grad[i]);
    for (int64_t i = 0; i < micro.vocab * D; i++) touched += fabsf(m->params->grad[m->off_embed + i]);
    CHECK_MSG(touched == 0.0f, "no_param_grad backward touched weight gradients (%g)", touched);
    c.r.no_param_grad = 0;
    c.r.image_grad = NULL;

    /* Count mismatch: one line with both counts. */
    c.n_img = NIMG - 1;
    CHECK(mctx_forward(&c, &e) != 0);
    CHECK_MSG(strstr(e.msg, "4 <|image_pad|> tokens (id 11)") && strstr(e.msg, "3 image embedding rows"), "%s",
              e.msg);
    c.n_img = NIMG;
    rl_free(gpar);
    mctx_free(&c);
    rl_qwen2_free(m);
}

/* A text-only batch: the splice armed with zero rows changes nothing, and
   the forward-only layout computes the same numbers bit for bit. */
static void test_model_text_only(void) {
    rl_qwen2 *m = new_model(9);
    if (!m) return;
    static const int32_t toks[B * T] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 10, 12, 2, 3, 0, 0};
    mctx a, b, f;
    CHECK(mctx_init(&a, m, 0) == 0 && mctx_init(&b, m, 0) == 0 && mctx_init(&f, m, 1) == 0);
    a.tokens = b.tokens = f.tokens = toks;
    a.lengths = b.lengths = f.lengths = std_lengths;
    a.pad = -1, a.img = NULL, a.n_img = 0;
    b.pad = PAD, b.img = NULL, b.n_img = 0;
    f.pad = -1, f.img = NULL, f.n_img = 0;
    rl_error e = {0};
    CHECK_MSG(mctx_forward(&a, &e) == 0 && mctx_forward(&b, &e) == 0 && mctx_forward(&f, &e) == 0, "%s", e.msg);
    const int64_t M = rl_qwen2_rows(&a.r);
    mctx *o[2] = {&b, &f};
    for (int k = 0; k < 2; k++) {
        CHECK(memcmp(rl_qwen2_logp(m, &a.r), rl_qwen2_logp(m, &o[k]->r), (size_t)M * 4) == 0);
        CHECK(memcmp(rl_qwen2_entropy(m, &a.r), rl_qwen2_entropy(m, &o[k]->r), (size_t)M * 4) == 0);
        for (int j = 0; j < 2; j++)
            CHECK(memcmp(rl_qwen2_block_output(m, &a.r, j), rl_qwen2_block_output(m, &o[k]->r, j),
                         (size_t)(M * D) * 4) == 0);
    }
    rl_qwen2_ws_bytes full, fo;
    CHECK(rl_qwen2_ws_size_run(&m->cfg, &a.r, &full, &e) == 0 && rl_qwen2_ws_size_run(&m->cfg, &f.r, &fo, &e) == 0);
    CHECK(fo.saved < full.saved && fo.bwd == 0 && fo.fwd == full.fwd);
    /* No backward over the forward-only layout. */
    float g[B * T] = {0};
    CHECK(rl_qwen2_backward(m, &f.r, g, NULL, &e) != 0 && strstr(e.msg, "forward-only"));
    /* Pads without rows are a mismatch, rows without a pad id too. */
    float img[D] = {0};
    b.img = img;
    b.n_img = 1;
    CHECK(mctx_forward(&b, &e) != 0 && strstr(e.msg, "0 <|image_pad|> tokens"));
    mctx_free(&a);
    mctx_free(&b);
    mctx_free(&f);
    rl_qwen2_free(m);
}

/* The shared embedding helper (also for the sampler's prefill). */
static void test_embed_rows(void) {
    rl_qwen2 *m = new_model(3);
    if (!m) return;
    const int32_t toks[5] = {2, PAD, 4, PAD, 1};
    float img[2 * D], out[5 * D];
    rl_test_fill(img, 2 * D, 8);
    int64_t next = 0;
    rl_error e = {0};
    CHECK_MSG(rl_qwen2_embed_rows(m, toks, 5, PAD, img, 2, &next, 0, out, &e) == 0, "%s", e.msg);
    CHECK(next == 2);
    const float *E = m->params->data + m->off_embed;
    CHECK(memcmp(out, E + 2 * D, D * 4) == 0 && memcmp(out + D, img, D * 4) == 0 &&
          memcmp(out + 2 * D, E + 4 * D, D * 4) == 0 && memcmp(out + 3 * D, img + D, D * 4) == 0 &&
          memcmp(out + 4 * D, E + 1 * D, D * 4) == 0);
    next = 1;
    CHECK(rl_qwen2_embed_rows(m, toks, 5, PAD, img, 2, &next, 0, out, &e) != 0 &&
          strstr(e.msg, "more <|image_pad|> tokens (id 11) than the 2 image embedding rows"));
    CHECK(rl_qwen2_count_pads(std_tokens, std_lengths, B, T, PAD) == NIMG);
    CHECK(rl_qwen2_count_pads(std_tokens, std_lengths, B, T, -1) == 0);
    rl_qwen2_free(m);
}

/* ---- graph level ---------------------------------------------------------- */

static int32_t g_tokens[B * T], g_lengths[B];
static float g_embeds[8 * D];
static int64_t g_emb_rows, g_emb_max = NIMG, g_emb_cols = D;
static float g_wl[B * T], g_we[B * T];
#define NPATCH 16
#define PCOLS 12 /* channels 3 x patch 2 x patch 2 */
static float g_pixels[NPATCH * PCOLS];

static const rl_port_spec tok_out[] = {{"tokens", RL_I32, 2, 0, 0, "ids"}, {"lengths", RL_I32, 1, 0, 0, "lens"}};
static int tok_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(B, T);
    n->out[1].shape = rl_shape1(B);
    return 0;
}
static int tok_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    memcpy(n->out[0].data, g_tokens, sizeof g_tokens);
    memcpy(n->out[1].data, g_lengths, sizeof g_lengths);
    return 0;
}
static const rl_node_type t_tok = {.name = "t_tok", .doc = "tokens", .outputs = tok_out, .n_outputs = 2,
                                   .infer = tok_infer, .forward = tok_forward};

/* Embedding rows: planned for g_emb_max rows, g_emb_rows at run time. */
static const rl_port_spec emb_out[] = {{"embeds", RL_F32, 2, 0, 0, "rows"}};
static int emb_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(g_emb_max, g_emb_cols);
    return 0;
}
static int emb_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    n->out[0].shape = rl_shape2(g_emb_rows, g_emb_cols);
    memcpy(n->out[0].data, g_embeds, (size_t)(g_emb_rows * g_emb_cols) * sizeof(float));
    return 0;
}
static const rl_node_type t_emb = {.name = "t_emb", .doc = "embeds", .outputs = emb_out, .n_outputs = 1,
                                   .infer = emb_infer, .forward = emb_forward};

/* Two 2 x 4-patch images: two merged tokens each. */
static const rl_port_spec img_out[] = {{"pixels", RL_F32, 2, 0, 0, "patches"}, {"grid", RL_I32, 2, 0, 0, "grid"}};
static int img_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(NPATCH, PCOLS);
    n->out[1].shape = rl_shape2(2, 2);
    return 0;
}
static int img_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    static const int32_t grid[4] = {2, 4, 2, 4};
    memcpy(n->out[0].data, g_pixels, sizeof g_pixels);
    memcpy(n->out[1].data, grid, sizeof grid);
    return 0;
}
static const rl_node_type t_img = {.name = "t_img", .doc = "images", .outputs = img_out, .n_outputs = 2,
                                   .infer = img_infer, .forward = img_forward};

/* loss = sum(wl * logprobs + we * entropy), also metric 0 (in double) */
static const rl_port_spec wsum_in[] = {{"logprobs", RL_F32, 2, 0, 0, ""}, {"entropy", RL_F32, 2, 0, 0, ""}};
static const rl_port_spec wsum_out[] = {{"loss", RL_F32, 1, 0, 0, ""}};
static int wsum_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape1(1);
    return 0;
}
static int wsum_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)err;
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    double s = 0;
    for (int64_t i = 0; i < cnt; i++)
        s += (double)g_wl[i] * rl_f32(&n->in[0])[i] + (double)g_we[i] * rl_f32(&n->in[1])[i];
    rl_f32(&n->out[0])[0] = (float)s;
    rl_metric_set(ctx, n, "loss", s);
    return 0;
}
static int wsum_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    float d = rl_f32(&n->grad_out[0])[0];
    int64_t cnt = rl_tensor_numel(&n->in[0]);
    for (int k = 0; k < 2; k++)
        if (n->need_grad_in[k] && n->grad_in[k].data)
            for (int64_t i = 0; i < cnt; i++) rl_f32(&n->grad_in[k])[i] += d * (k ? g_we[i] : g_wl[i]);
    return 0;
}
static const rl_node_type t_wsum = {.name = "t_wsum", .doc = "weighted sum", .inputs = wsum_in, .n_inputs = 2,
                                    .outputs = wsum_out, .n_outputs = 1, .infer = wsum_infer,
                                    .forward = wsum_forward, .backward = wsum_backward};

/* "Optimizer" that copies its set's gradient to the slot named by option
   `slot` and zeroes it. */
static float *g_grab[2];
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"},
                                           {"slot", RL_VAL_INT, "0", "slot", NULL}};
static const rl_port_spec grab_in[] = {{"loss", RL_F32, -1, 0, 0, "loss"}};
static int grab_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    rl_params *p = rl_object_params(rl_node_opt_object(n, "params"));
    float *dst = g_grab[rl_node_opt_int(n, "slot")];
    if (dst) memcpy(dst, p->grad, p->numel * sizeof(float));
    rl_params_zero_grad(p);
    return 0;
}
static const rl_node_type t_grab = {.name = "t_grab", .doc = "grad snapshot", .inputs = grab_in, .n_inputs = 1,
                                    .options = grab_opts, .n_options = 2, .flags = RL_NODE_OPTIMIZER,
                                    .forward = grab_forward};

typedef enum { SRC_NONE, SRC_EMB, SRC_VIT } img_src;

typedef struct built {
    rl_graph *g;
    rl_node *pol, *loss;
} built;

/* tokens (+ image source) -> policy [-> wsum -> optimizers]. opt: NULL (no
   loss), "grab" or "adamw"; train_policy / train_vit pick the sets it owns. */
static int build(built *b, rl_object *net, rl_object *vit, img_src src, int64_t pad_id, const char *opt,
                 int train_policy, int train_vit, rl_error *e) {
    memset(b, 0, sizeof *b);
    b->g = rl_graph_new("splice");
    rl_opts o;
    rl_opts_init(&o);
    rl_node *tok = rl_graph_add(b->g, &t_tok, NULL, "s.lua:1", NULL, &o, e);
    rl_node *is = NULL;
    if (tok && src == SRC_EMB) is = rl_graph_add(b->g, &t_emb, NULL, "s.lua:2", NULL, &o, e);
    if (tok && src == SRC_VIT) {
        rl_node *px = rl_graph_add(b->g, &t_img, NULL, "s.lua:2", NULL, &o, e);
        rl_opts vo;
        rl_opts_init(&vo);
        rl_opts_set_object(&vo, "net", vit);
        is = px ? rl_graph_add_named(b->g, "vision_encoder", NULL, "s.lua:3", NULL, &vo, e) : NULL;
        rl_opts_free(&vo);
        if (is && (rl_graph_connect(b->g, is, 0, px, 0, e) || rl_graph_connect(b->g, is, 1, px, 1, e))) is = NULL;
    }
    rl_opts_set_object(&o, "net", net);
    rl_opts_set_numbers(&o, "tap_layers", (const double[]){0.5}, 1);
    rl_opts_set_int(&o, "chunk", 4);
    if (pad_id != -2) rl_opts_set_int(&o, "image_pad_id", pad_id);
    b->pol = tok && (src == SRC_NONE || is) ? rl_graph_add_named(b->g, "policy", NULL, "s.lua:4", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!b->pol || rl_graph_connect(b->g, b->pol, 0, tok, 0, e) || rl_graph_connect(b->g, b->pol, 1, tok, 1, e) ||
        (is && rl_graph_connect(b->g, b->pol, 2, is, 0, e)))
        return -1;
    for (int k = 0; k < 3; k++)
        if (rl_graph_mark_output(b->g, b->pol, k, e)) return -1;
    if (opt) {
        rl_opts_init(&o);
        b->loss = rl_graph_add(b->g, &t_wsum, NULL, "s.lua:5", NULL, &o, e);
        if (!b->loss || rl_graph_connect(b->g, b->loss, 0, b->pol, 0, e) ||
            rl_graph_connect(b->g, b->loss, 1, b->pol, 1, e) || rl_graph_mark_output(b->g, b->loss, 0, e))
            return -1;
        const int adam = strcmp(opt, "adamw") == 0;
        rl_object *sets[2] = {train_policy ? net : NULL, train_vit ? vit : NULL};
        for (int k = 0; k < 2; k++) {
            if (!sets[k]) continue;
            rl_opts_set_object(&o, "params", sets[k]);
            if (adam) rl_opts_set_number(&o, "lr", 1e-2);
            else rl_opts_set_int(&o, "slot", k);
            rl_node *on = rl_graph_add(b->g, adam ? rl_node_type_find("optimizer") : &t_grab, NULL, "s.lua:6", NULL,
                                       &o, e);
            if (!on || rl_graph_connect(b->g, on, 0, b->loss, 0, e)) {
                rl_opts_free(&o);
                return -1;
            }
        }
        rl_opts_free(&o);
    }
    return rl_graph_compile(b->g, NULL, e);
}

static int run(built *b, rl_run_ctx *ctx) {
    rl_error e = {0};
    int rc = rl_graph_run(b->g, NULL, ctx, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    return rc;
}

static void set_batch(const int32_t *toks) {
    memcpy(g_tokens, toks, sizeof g_tokens);
    memcpy(g_lengths, std_lengths, sizeof g_lengths);
}

/* The optional input does not change a text-only batch, nor the text-only
   rows of a mixed batch. */
static void test_graph_text_only(void) {
    rl_qwen2 *m = new_model(11);
    if (!m) return;
    rl_object *net = rl_qwen2_object(m);
    static const int32_t text[B * T] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 10, 12, 2, 3, 0, 0};
    built a, b;
    rl_error e = {0};
    CHECK_MSG(build(&a, net, NULL, SRC_NONE, -2, NULL, 0, 0, &e) == 0, "%s", e.msg);
    CHECK_MSG(build(&b, net, NULL, SRC_EMB, PAD, NULL, 0, 0, &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    set_batch(text);
    g_emb_rows = 0;
    if (!run(&a, &ctx) && !run(&b, &ctx))
        for (int k = 0; k < 3; k++)
            CHECK_MSG(memcmp(a.pol->out[k].data, b.pol->out[k].data, rl_tensor_nbytes(&a.pol->out[k])) == 0,
                      "text-only batch: output %d differs with the image input connected", k);
    /* Mixed batch: row 1 (text only) as without any splice; rows 0 and 2 differ. */
    set_batch(std_tokens);
    g_emb_rows = NIMG;
    rl_test_fill(g_embeds, NIMG * D, 31);
    if (!run(&a, &ctx) && !run(&b, &ctx)) {
        const float *la = rl_f32(&a.pol->out[0]), *lb = rl_f32(&b.pol->out[0]);
        CHECK(memcmp(la + T, lb + T, T * 4) == 0);
        CHECK(memcmp(rl_f32(&a.pol->out[2]) + T * D, rl_f32(&b.pol->out[2]) + T * D, T * D * 4) == 0);
        CHECK(memcmp(la, lb, T * 4) != 0 && memcmp(la + 2 * T, lb + 2 * T, T * 4) != 0);
        /* Steady state allocates nothing with the splice either. */
        uint64_t before = rl_alloc_count();
        run(&b, &ctx);
        CHECK_MSG(rl_alloc_count() == before, "step allocated %llu times",
                  (unsigned long long)(rl_alloc_count() - before));
    }
    /* Count mismatch at run time: names the node and both counts. */
    g_emb_rows = NIMG - 1;
    CHECK(rl_graph_run(b.g, NULL, &ctx, &e) != 0);
    CHECK_MSG(strstr(e.msg, "node 'policy'") && strstr(e.msg, "s.lua:4") && strstr(e.msg, "4 <|image_pad|> tokens (id 11)") &&
                  strstr(e.msg, "3 image embedding rows"),
              "%s", e.msg);
    rl_graph_free(a.g);
    rl_graph_free(b.g);

    /* Wiring errors at compile time. */
    const struct {
        int64_t pad, cols;
        const char *needle;
    } bad[] = {{-2, D, "option 'image_pad_id' is not set"},
               {PAD, D + 1, "input 'image_embeds' has shape [4, 9], expected [N, 8]"},
               {13, D, "option 'image_pad_id' = 13 is outside the vocabulary"}};
    for (int i = 0; i < 3; i++) {
        g_emb_cols = bad[i].cols;
        e = (rl_error){0};
        CHECK(build(&b, net, NULL, SRC_EMB, bad[i].pad, NULL, 0, 0, &e) != 0);
        CHECK_MSG(strstr(e.msg, bad[i].needle) && strstr(e.msg, "policy"), "got: %s", e.msg);
        rl_graph_free(b.g);
    }
    g_emb_cols = D;
    rl_object_release(net);
}

static rl_object *new_vit(uint64_t seed) {
    rl_error e = {0};
    rl_vit_config c = {.patch = 2, .channels = 3, .width = 8, .depth = 1, .heads = 2, .mlp = 16, .out_hidden = D,
                       .merge = 2};
    rl_vit *v = rl_vit_new(&c, seed, &e);
    CHECK_MSG(v != NULL, "%s", e.msg);
    return v ? rl_vit_object(v) : NULL;
}

static built g_fd;
static double graph_loss(void *p) {
    (void)p;
    rl_run_ctx rc = {0};
    rl_error e = {0};
    if (rl_graph_run(g_fd.g, NULL, &rc, &e)) return NAN;
    return rc.metrics[0].value;
}

/* vision_encoder -> policy: graph gradients of both sets against finite
   differences; a frozen policy passes the identical gradient to the vit. */
static void test_graph_vision(void) {
    rl_qwen2 *m = new_model(13);
    rl_object *vit = new_vit(17);
    if (!m || !vit) return;
    rl_object *net = rl_qwen2_object(m);
    rl_params *vp = rl_object_params(vit);
    rl_test_fill(g_pixels, NPATCH * PCOLS, 41);
    rl_test_fill(g_wl, B * T, 42);
    rl_test_fill(g_we, B * T, 43);
    set_batch(std_tokens);
    rl_error e = {0};
    CHECK_MSG(build(&g_fd, net, vit, SRC_VIT, PAD, "grab", 1, 1, &e) == 0, "%s", e.msg);
    if (!vp->data) return;
    /* vit weights large enough that its gradient is visible in f32. */
    for (size_t i = 0; i < vp->numel; i++) vp->data[i] *= 2.0f;
    float *gq = rl_calloc(m->params->numel, sizeof(float)), *gv = rl_calloc(vp->numel, sizeof(float));
    float *gv2 = rl_calloc(vp->numel, sizeof(float));
    g_grab[0] = gq;
    g_grab[1] = gv;
    rl_run_ctx ctx = {0};
    run(&g_fd, &ctx);
    g_grab[0] = g_grab[1] = NULL;
    /* The vit sits two networks deep under an f32 loss of order 10: central
       differences carry absolute noise, so its gradient is compared
       relative to its own scale (max |num - ana| / max |ana|). */
    double wv = 0, vscale = 0;
    for (size_t i = 0; i < vp->numel; i += vp->numel / 120 + 1) {
        const float sv = vp->data[i], h = 2e-3f; /* patch weights act on every patch: strong curvature */
        vp->data[i] = sv + h;
        double fp = graph_loss(NULL);
        vp->data[i] = sv - h;
        double fm = graph_loss(NULL);
        vp->data[i] = sv;
        wv = fmax(wv, fabs((fp - fm) / (2.0 * h) - gv[i]));
        vscale = fmax(vscale, fabs(gv[i]));
    }
    wv /= vscale > 0 ? vscale : 1;
    double wq = rl_test_gradcheck(m->params->data, m->params->numel, gq, graph_loss, NULL, 2e-2, 80);
    CHECK_MSG(wv < 1e-2, "vit gradient through the policy: finite-difference error %g of the largest", wv);
    CHECK_MSG(wq < 5e-2, "policy gradient with spliced images: finite-difference rel err %g", wq);
    double gnorm = 0;
    for (size_t i = 0; i < vp->numel; i++) gnorm += (double)gv[i] * gv[i];
    CHECK_MSG(gnorm > 1e-8, "vit gradient is zero (%g)", gnorm);
    printf("vision_encoder -> policy finite differences: vit %.2e of max |grad| (120 of %zu), policy %.2e (80 of %zu)\n", wv,
           vp->numel, wq, m->params->numel);
    rl_graph_free(g_fd.g);

    /* Frozen policy, trained vit: the same vit gradient bit for bit. A set
       stays trainable once an optimizer owned it: a twin with the same
       weights stands in for the frozen policy. */
    rl_qwen2 *m2 = new_model(13);
    if (!m2) return;
    CHECK(memcmp(m2->params->data, m->params->data, m->params->numel * sizeof(float)) == 0);
    rl_object *net2 = rl_qwen2_object(m2);
    built f;
    CHECK_MSG(build(&f, net2, vit, SRC_VIT, PAD, "grab", 0, 1, &e) == 0, "%s", e.msg);
    CHECK(m2->params->trainable == 0);
    g_grab[1] = gv2;
    run(&f, &ctx);
    g_grab[1] = NULL;
    CHECK_MSG(memcmp(gv, gv2, vp->numel * sizeof(float)) == 0, "frozen policy changes the vit gradient");
    rl_graph_free(f.g);
    rl_object_release(net2);
    rl_free(gq);
    rl_free(gv);
    rl_free(gv2);
    rl_object_release(net);
    rl_object_release(vit);
}

/* AdamW over both sets lowers the loss; a steady step allocates nothing. */
static void test_graph_train(void) {
    rl_qwen2 *m = new_model(19);
    rl_object *vit = new_vit(23);
    if (!m || !vit) return;
    rl_object *net = rl_qwen2_object(m);
    rl_params *vp = rl_object_params(vit);
    /* Maximise the log-probability of the text after each image. */
    for (int i = 0; i < B * T; i++) g_wl[i] = -1.0f, g_we[i] = 0.0f;
    set_batch(std_tokens);
    built b;
    rl_error e = {0};
    CHECK_MSG(build(&b, net, vit, SRC_VIT, PAD, "adamw", 1, 1, &e) == 0, "%s", e.msg);
    float *v0 = rl_malloc(vp->numel * sizeof(float));
    if (vp->data) memcpy(v0, vp->data, vp->numel * sizeof(float));
    rl_run_ctx ctx = {0};
    float first = NAN, last = NAN;
    for (int step = 0; step < 30; step++) {
        ctx.step = step;
        uint64_t before = rl_alloc_count();
        if (run(&b, &ctx)) break;
        if (step > 1)
            CHECK_MSG(rl_alloc_count() == before, "step %d allocated %llu times", step,
                      (unsigned long long)(rl_alloc_count() - before));
        last = rl_f32(&b.loss->out[0])[0];
        if (step == 0) first = last;
    }
    CHECK_MSG(last < 0.5f * first, "loss %g -> %g", first, last);
    double moved = 0;
    for (size_t i = 0; i < vp->numel; i++) moved += fabs((double)vp->data[i] - v0[i]);
    CHECK_MSG(moved > 0, "the vit's parameters did not move");
    printf("vision_encoder -> policy with AdamW over both: loss %.4f -> %.4f in 30 steps\n", first, last);
    rl_free(v0);
    rl_graph_free(b.g);
    rl_object_release(net);
    rl_object_release(vit);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_embed_rows();
    test_model_splice();
    test_model_text_only();
    test_graph_text_only();
    test_graph_vision();
    test_graph_train();
    return rl_test_finish("test_policy_splice");
}
