/* Shared-prefix teacher forcing (the RL update's G samples of one prompt):
 * - the attention kernel's prefix key range against finite differences, with
 *   two responses sharing one prompt and an ordinary sequence beside them;
 * - the model: rl_qwen2_pack_shared gives the same log-probs, entropies,
 *   block outputs and parameter gradients as rl_qwen2_pack on the same rows
 *   (groups of different prompt and response lengths, empty responses, a
 *   prompt of length 0, G = 1), also in the forward-only layout and with an
 *   image splice (the group's prompt takes its first row's image rows and
 *   their gradient is the sum over the group's copies);
 * - the policy node with `group` and `prompt_len`: outputs and gradients
 *   equal the unshared node's, a steady step allocates nothing, and rows that
 *   do not share their prompt fail with the node, row and position named. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "kernels_attn.h"
#include "qwen2.h"
#include "testlib.h"

#define TOL_EQ 1e-5 /* shared vs unshared: same maths, other summation order */

/* max |a - b| / max |b|: relative to the tensor's scale (elements near zero
   would make an element-wise ratio meaningless). */
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

/* ---- attention with a shared prefix: finite differences ---------------- */
enum { AH = 4, AHK = 2, AHD = 4, AROWS = 11, AQS = AH * AHD, AKS = AHK * AHD };
static float aq[AROWS * AQS], ak[AROWS * AKS], av[AROWS * AKS], ao[AROWS * AQS], alse[AROWS * AH], aw[AROWS * AQS];
static float ascratch[4096]; /* >= rl_attn_scratch_floats(7, 7, AHD, 2), checked below */
/* A prompt of 3 rows, two responses (4 and 2 rows) attending to it, and an
   unrelated sequence of 2 rows. */
static const rl_attn_seq aseqs[4] = {{0, 3, 0, 0, 0, 0}, {3, 4, 3, 0, 0, 3}, {7, 2, 7, 0, 0, 3}, {9, 2, 9, 0, 0, 0}};
static const rl_attn_dims adims = {AH, AHK, AHD};

static double attn_f(void *ctx) {
    (void)ctx;
    rl_attn_forward(aq, ak, av, ao, alse, aseqs, 4, adims, 4, 7, ascratch, 2);
    double s = 0;
    for (int i = 0; i < AROWS * AQS; i++) s += (double)aw[i] * ao[i];
    return s;
}

static void test_attention_prefix(void) {
    CHECK(rl_attn_scratch_floats(7, 7, AHD, 2) <= sizeof ascratch / sizeof ascratch[0]);
    rl_test_fill(aq, AROWS * AQS, 11);
    rl_test_fill(ak, AROWS * AKS, 12);
    rl_test_fill(av, AROWS * AKS, 13);
    rl_test_fill(aw, AROWS * AQS, 14);
    for (int i = 0; i < AROWS * AQS; i++) aq[i] *= 2.0f;
    static float dq[AROWS * AQS], dk[AROWS * AKS], dv[AROWS * AKS];
    /* Garbage in the outputs: backward must write every row it covers. */
    for (int i = 0; i < AROWS * AKS; i++) dk[i] = dv[i] = 1e3f;
    attn_f(NULL);
    rl_attn_backward(aq, ak, av, ao, alse, aw, dq, dk, dv, aseqs, 4, adims, 4, 7, ascratch, 2);
    double eq = rl_test_gradcheck(aq, AROWS * AQS, dq, attn_f, NULL, 1e-2, 0);
    double ek = rl_test_gradcheck(ak, AROWS * AKS, dk, attn_f, NULL, 1e-2, 0);
    double ev = rl_test_gradcheck(av, AROWS * AKS, dv, attn_f, NULL, 1e-2, 0);
    CHECK_MSG(eq < 2e-2, "prefix attention dq rel err %g", eq);
    CHECK_MSG(ek < 2e-2, "prefix attention dk rel err %g", ek);
    CHECK_MSG(ev < 2e-2, "prefix attention dv rel err %g", ev);

    /* The first response equals the full sequence prompt + response (rows
       0..2 then 3..6 laid out contiguously as one sequence). */
    static float q2[7 * AQS], k2[7 * AKS], v2[7 * AKS], o2[7 * AQS];
    memcpy(q2, aq, sizeof q2);
    memcpy(k2, ak, sizeof k2);
    memcpy(v2, av, sizeof v2);
    const rl_attn_seq full = {0, 7, 0, 0, 0, 0};
    attn_f(NULL);
    rl_attn_forward(q2, k2, v2, o2, NULL, &full, 1, adims, 7, 7, ascratch, 1);
    double worst = 0;
    for (int i = 0; i < 7 * AQS; i++) worst = fmax(worst, fabs(o2[i] - ao[i]));
    CHECK_MSG(worst < 1e-6, "prefix attention differs from the full sequence by %g", worst);
}

/* ---- the model: shared vs unshared packing ----------------------------- */
enum { MV = 29, PAD = 28 };

static rl_qwen2 *micro_model(const char *name, uint64_t seed, int tie) {
    rl_qwen2_config c = {.vocab = MV, .hidden = 16, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .inter = 24,
                         .max_pos = 32, .rope_theta = 10000.0, .rms_eps = 1e-6, .tie = tie};
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    if (rl_qwen2_new(&c, name, seed, &m, &e) || rl_params_finalize(m->params, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        rl_qwen2_free(m);
        return NULL;
    }
    /* Larger weights than HF's init so attention is far from uniform and
       differences in the prefix handling would show. */
    rl_test_fill(m->params->data, m->params->numel, seed + 100);
    for (size_t i = 0; i < m->params->numel; i++) m->params->data[i] *= 0.5f;
    return m;
}

/* One batch: B rows of T, G rows per group, prompt lengths and images. */
typedef struct batch {
    int64_t B, T, G;
    int32_t tok[16 * 16], len[16], plen[16];
    float wl[16 * 16], we[16 * 16];
    float img[16 * 16]; /* image rows, d = 16 */
    int64_t n_img;
} batch;

/* Per-group prompt length and the G response lengths. */
static void make_batch(batch *bt, int64_t G, int64_t n_groups, const int *p, const int *r, uint64_t seed) {
    memset(bt, 0, sizeof *bt);
    bt->B = G * n_groups;
    bt->T = 16;
    bt->G = G;
    float rnd[16 * 16];
    rl_test_fill(rnd, 16 * 16, seed);
    for (int64_t grp = 0; grp < n_groups; grp++)
        for (int64_t g = 0; g < G; g++) {
            const int64_t b = grp * G + g;
            bt->plen[b] = p[grp];
            bt->len[b] = p[grp] + r[b];
            for (int64_t t = 0; t < bt->len[b]; t++) {
                /* the prompt from the group's first row; responses per row */
                const int64_t src = t < p[grp] ? grp * G : b;
                int32_t id = (int32_t)(fabsf(rnd[src * 16 + t]) * 1000.0f) % (MV - 1);
                /* two image pads in some prompts (never in responses) */
                if (t < p[grp] && (t == 1 || t == 3) && p[grp] >= 5) id = PAD;
                bt->tok[b * 16 + t] = id;
            }
        }
    rl_test_fill(bt->wl, 16 * 16, seed + 1);
    rl_test_fill(bt->we, 16 * 16, seed + 2);
    /* image rows in batch order, identical for the rows of a group */
    int64_t k = 0;
    for (int64_t b = 0; b < bt->B; b++)
        for (int64_t t = 0; t < bt->len[b]; t++)
            if (bt->tok[b * 16 + t] == PAD) {
                const int64_t first = (b / G) * G;
                rl_test_fill(bt->img + k * 16, 16, seed + 50 + (uint64_t)first * 16 + (uint64_t)t);
                k++;
            }
    bt->n_img = k;
}

typedef struct result {
    float lp[16 * 16], en[16 * 16], hid[2 * 16 * 16 * 16];
    float *grad;  /* [numel] */
    float ig[16 * 16]; /* image gradient */
} result;

/* Runs the model on bt (shared or not), maps outputs to [B, T] like the
   policy node, and runs backward from wl/we unless fwd_only. */
static int run_model(rl_qwen2 *m, const batch *bt, int shared, int fwd_only, int splice, result *res, rl_error *e) {
    const int64_t B = bt->B, T = bt->T, d = m->cfg.hidden;
    rl_qwen2_run r = {B * T, B, T, 5, 2, NULL, NULL, NULL};
    r.forward_only = fwd_only;
    rl_qwen2_ws_bytes wb;
    if (rl_qwen2_ws_size_run(&m->cfg, &r, &wb, e)) return -1;
    r.saved = rl_malloc_aligned(wb.saved);
    r.fwd = rl_malloc_aligned(wb.fwd);
    r.bwd = wb.bwd ? rl_malloc_aligned(wb.bwd) : NULL;
    float *gl = rl_calloc((size_t)(B * T + B), sizeof(float)), *ge = rl_calloc((size_t)(B * T + B), sizeof(float));
    int rc = -1;
    if (!r.saved || !r.fwd || (wb.bwd && !r.bwd) || !gl || !ge) goto out;
    if (shared ? rl_qwen2_pack_shared(m, &r, bt->tok, bt->len, bt->plen, B, T, bt->G, e)
               : rl_qwen2_pack(m, &r, bt->tok, bt->len, B, T, e))
        goto out;
    if (rl_qwen2_splice_images(m, &r, splice ? PAD : -1, splice ? bt->img : NULL, splice ? bt->n_img : 0, e) ||
        rl_qwen2_forward(m, &r, e))
        goto out;
    memset(res->lp, 0, sizeof res->lp);
    memset(res->en, 0, sizeof res->en);
    memset(res->hid, 0, sizeof res->hid);
    const rl_qwen2_row *map = rl_qwen2_row_map(m, &r, NULL);
    const float *plp = rl_qwen2_logp(m, &r), *pen = rl_qwen2_entropy(m, &r);
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = map[b].n_pre + map[b].n_resp;
        if (len != bt->len[b]) {
            rl_fail(e, "row %lld maps %lld positions, not its length %d", (long long)b, (long long)len, bt->len[b]);
            goto out;
        }
        for (int64_t t = 1; t < len; t++) {
            res->lp[b * T + t] = plp[rl_qwen2_lm_row(&map[b], t)];
            res->en[b * T + t] = pen[rl_qwen2_lm_row(&map[b], t)];
            gl[rl_qwen2_lm_row(&map[b], t)] += bt->wl[b * T + t];
            ge[rl_qwen2_lm_row(&map[b], t)] += bt->we[b * T + t];
        }
        for (int64_t j = 0; j < 2; j++)
            for (int64_t t = 0; t < len; t++)
                memcpy(res->hid + ((j * B + b) * T + t) * d,
                       rl_qwen2_block_output(m, &r, j) + rl_qwen2_pos_row(&map[b], t) * d, (size_t)d * sizeof(float));
    }
    if (!fwd_only) {
        rl_params_zero_grad(m->params);
        memset(res->ig, 0, sizeof res->ig);
        r.image_grad = splice ? res->ig : NULL;
        if (rl_qwen2_backward(m, &r, gl, ge, e)) goto out;
        memcpy(res->grad, m->params->grad, m->params->numel * sizeof(float));
    }
    rc = 0;
out:
    rl_free_aligned(r.saved);
    rl_free_aligned(r.fwd);
    rl_free_aligned(r.bwd);
    rl_free(gl);
    rl_free(ge);
    return rc;
}

static void compare(rl_qwen2 *m, const batch *bt, int splice, const char *what) {
    static result u, s, f;
    const size_t np = m->params->numel;
    u.grad = rl_malloc(np * sizeof(float));
    s.grad = rl_malloc(np * sizeof(float));
    f.grad = NULL;
    rl_error e = {0};
    if (!u.grad || !s.grad) goto out;
    CHECK_MSG(run_model(m, bt, 0, 0, splice, &u, &e) == 0, "%s: unshared: %s", what, e.msg);
    CHECK_MSG(run_model(m, bt, 1, 0, splice, &s, &e) == 0, "%s: shared: %s", what, e.msg);
    CHECK_MSG(run_model(m, bt, 1, 1, splice, &f, &e) == 0, "%s: shared forward-only: %s", what, e.msg);
    const size_t n = (size_t)(bt->B * bt->T), nh = 2 * n * 16;
    double el = rel_err(s.lp, u.lp, n), ee = rel_err(s.en, u.en, n), eh = rel_err(s.hid, u.hid, nh);
    double eg = rel_err(s.grad, u.grad, np);
    printf("%s: rel err logp %.2g entropy %.2g hidden %.2g grad %.2g\n", what, el, ee, eh, eg);
    CHECK_MSG(el <= TOL_EQ && ee <= TOL_EQ && eh <= TOL_EQ, "%s: outputs differ: %g %g %g", what, el, ee, eh);
    CHECK_MSG(eg <= TOL_EQ, "%s: parameter gradients differ: %g", what, eg);
    /* Every parameter tensor, so a small one is not hidden by a large one. */
    for (int i = 0; i < m->params->n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        const size_t off = pe->offset, cnt = (size_t)rl_shape_numel(&pe->shape);
        double et = rel_err(s.grad + off, u.grad + off, cnt);
        CHECK_MSG(et <= TOL_EQ, "%s: gradient of %s differs: %g", what, pe->name, et);
    }
    /* The forward-only layout computes the same thing. */
    CHECK(memcmp(f.lp, s.lp, sizeof f.lp) == 0 && memcmp(f.en, s.en, sizeof f.en) == 0 &&
          memcmp(f.hid, s.hid, sizeof f.hid) == 0);
    /* Some logp really came from extra rows and the prompt gradient is not 0. */
    double gmax = 0;
    for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(s.grad[i]));
    CHECK(gmax > 1e-3);
    if (splice && bt->n_img > 0) {
        /* The group's prompt reads its first row's image rows: their gradient
           is the sum of the unshared copies'; the other copies get none. */
        static float want[16 * 16];
        memset(want, 0, sizeof want);
        int64_t k = 0, first_k = 0;
        for (int64_t b = 0; b < bt->B; b++) {
            if (b % bt->G == 0) first_k = k;
            int64_t kk = 0;
            for (int64_t t = 0; t < bt->len[b]; t++)
                if (bt->tok[b * bt->T + t] == PAD) {
                    for (int j = 0; j < 16; j++) want[(first_k + kk) * 16 + j] += u.ig[(k + kk) * 16 + j];
                    kk++;
                }
            k += kk;
        }
        double ei = rel_err(s.ig, want, (size_t)(bt->n_img * 16));
        CHECK_MSG(ei <= TOL_EQ, "%s: image gradient differs: %g", what, ei);
        CHECK(u.ig[0] != 0.0f);
    }
out:
    rl_free(u.grad);
    rl_free(s.grad);
}

static void test_model(void) {
    rl_qwen2 *m = micro_model("untied", 3, 0), *mt = micro_model("tied", 4, 1);
    if (!m || !mt) {
        CHECK(0);
        rl_qwen2_free(m);
        rl_qwen2_free(mt);
        return;
    }
    batch bt;
    /* G = 3: prompts of 5 (two image pads), 1, 8 (two pads), 0 tokens; a
       response of length 0, a group whose responses are all empty, a group
       without a prompt. */
    const int p3[4] = {5, 1, 8, 0};
    const int r3[12] = {4, 0, 7, 3, 2, 1, 0, 0, 0, 3, 5, 0};
    make_batch(&bt, 3, 4, p3, r3, 21);
    CHECK(bt.n_img == 2 * 3 + 2 * 3);
    compare(m, &bt, 0, "G=3 untied");
    compare(mt, &bt, 0, "G=3 tied");
    compare(m, &bt, 1, "G=3 image splice");
    /* G = 1: every row its own group. */
    const int p1[4] = {3, 4, 0, 6};
    const int r1[4] = {2, 0, 5, 6};
    make_batch(&bt, 1, 4, p1, r1, 22);
    compare(m, &bt, 0, "G=1");
    compare(m, &bt, 1, "G=1 image splice");
    /* G = 4, one group, long responses. */
    const int p4[1] = {6};
    const int r4[4] = {9, 1, 10, 4};
    make_batch(&bt, 4, 1, p4, r4, 23);
    compare(mt, &bt, 1, "G=4");

    /* Validation: a different prompt token, prompt_len unequal in a group,
       prompt_len beyond the length, a batch that is not whole groups. */
    make_batch(&bt, 3, 4, p3, r3, 21);
    rl_qwen2_run r = {bt.B * bt.T, bt.B, bt.T, 5, 1, NULL, NULL, NULL};
    rl_qwen2_ws_bytes wb;
    rl_error e = {0};
    CHECK(rl_qwen2_ws_size_run(&m->cfg, &r, &wb, &e) == 0);
    r.saved = rl_malloc_aligned(wb.saved);
    r.fwd = rl_malloc_aligned(wb.fwd);
    r.bwd = rl_malloc_aligned(wb.bwd);
    batch bad = bt;
    bad.tok[4 * 16 + 0] = (bad.tok[4 * 16 + 0] + 1) % (MV - 1); /* row 4 = group 1, prompt of 1 */
    CHECK(rl_qwen2_pack_shared(m, &r, bad.tok, bad.len, bad.plen, bad.B, bad.T, 3, &e) == -1);
    CHECK_MSG(strstr(e.msg, "row 4, position 0") && strstr(e.msg, "row 3"), "message: %s", e.msg);
    bad = bt;
    bad.plen[2] = 4;
    CHECK(rl_qwen2_pack_shared(m, &r, bad.tok, bad.len, bad.plen, bad.B, bad.T, 3, &e) == -1);
    CHECK_MSG(strstr(e.msg, "row 2: prompt_len 4 differs from row 0's 5"), "message: %s", e.msg);
    bad = bt;
    bad.plen[6] = bad.plen[7] = bad.plen[8] = 9; /* lengths 8 */
    CHECK(rl_qwen2_pack_shared(m, &r, bad.tok, bad.len, bad.plen, bad.B, bad.T, 3, &e) == -1);
    CHECK_MSG(strstr(e.msg, "row 6: prompt_len 9 outside [0, 8]"), "message: %s", e.msg);
    CHECK(rl_qwen2_pack_shared(m, &r, bt.tok, bt.len, bt.plen, bt.B, bt.T, 5, &e) == -1);
    CHECK_MSG(strstr(e.msg, "not a whole number of groups"), "message: %s", e.msg);
    /* A mismatch is fine beyond prompt_len (responses differ by design). */
    CHECK_MSG(rl_qwen2_pack_shared(m, &r, bt.tok, bt.len, bt.plen, bt.B, bt.T, 3, &e) == 0, "%s", e.msg);
    /* Fewer rows than the unshared packing: the prompts are there once. */
    int64_t unshared = 0, M = rl_qwen2_rows(&r);
    for (int64_t b = 0; b < bt.B; b++) unshared += bt.len[b];
    CHECK_MSG(M == unshared - 2 * (5 + 1 + 8), "packed %lld rows", (long long)M);
    rl_free_aligned(r.saved);
    rl_free_aligned(r.fwd);
    rl_free_aligned(r.bwd);
    rl_qwen2_free(m);
    rl_qwen2_free(mt);
}

/* ---- the policy node ---------------------------------------------------- */
static batch g_bt;

static const rl_port_spec tok_out[] = {{"tokens", RL_I32, 2, 0, 0, "ids"},
                                       {"lengths", RL_I32, 1, 0, 0, "lens"},
                                       {"prompt_len", RL_I32, 1, 0, 0, "prompt lens"}};
static int tok_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape2(g_bt.B, g_bt.T);
    n->out[1].shape = rl_shape1(g_bt.B);
    n->out[2].shape = rl_shape1(g_bt.B);
    return 0;
}
static int tok_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    memcpy(n->out[0].data, g_bt.tok, (size_t)(g_bt.B * g_bt.T) * 4);
    memcpy(n->out[1].data, g_bt.len, (size_t)g_bt.B * 4);
    memcpy(n->out[2].data, g_bt.plen, (size_t)g_bt.B * 4);
    return 0;
}
static const rl_node_type t_tok = {.name = "t_tok", .doc = "tokens", .outputs = tok_out, .n_outputs = 3,
                                   .infer = tok_infer, .forward = tok_forward};

/* loss = sum(wl * logprobs + we * entropy) */
static const rl_port_spec wsum_in[] = {{"logprobs", RL_F32, 2, 0, 0, ""}, {"entropy", RL_F32, 2, 0, 0, ""}};
static const rl_port_spec wsum_out[] = {{"loss", RL_F32, 1, 0, 0, ""}};
static int wsum_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].shape = rl_shape1(1);
    return 0;
}
static int wsum_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    double s = 0;
    for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++)
        s += (double)g_bt.wl[i] * rl_f32(&n->in[0])[i] + (double)g_bt.we[i] * rl_f32(&n->in[1])[i];
    rl_f32(&n->out[0])[0] = (float)s;
    return 0;
}
static int wsum_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx, (void)err;
    const float dl = rl_f32(&n->grad_out[0])[0];
    for (int k = 0; k < 2; k++)
        if (n->need_grad_in[k] && n->grad_in[k].data)
            for (int64_t i = 0; i < rl_tensor_numel(&n->in[0]); i++)
                rl_f32(&n->grad_in[k])[i] += dl * (k ? g_bt.we[i] : g_bt.wl[i]);
    return 0;
}
static const rl_node_type t_wsum = {.name = "t_wsum", .doc = "weighted sum", .inputs = wsum_in, .n_inputs = 2,
                                    .outputs = wsum_out, .n_outputs = 1, .infer = wsum_infer,
                                    .forward = wsum_forward, .backward = wsum_backward};

/* An "optimizer" that snapshots the gradient and clears it. */
static float *g_grab[2];
static const rl_option_spec grab_opts[] = {{"params", RL_VAL_OBJECT, NULL, "set", "params"},
                                           {"slot", RL_VAL_INT, "0", "which snapshot", NULL}};
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

static rl_graph *build(rl_object *net, int64_t group, int slot, rl_node **pol, rl_error *e) {
    rl_graph *g = rl_graph_new(group > 1 ? "shared" : "unshared");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "net", net);
    rl_opts_set_numbers(&o, "tap_layers", (const double[]){0.5, 1.0}, 2);
    rl_opts_set_int(&o, "chunk", 7);
    rl_opts_set_int(&o, "group", group);
    rl_node *src = rl_graph_add(g, &t_tok, NULL, "s.lua:1", NULL, NULL, e);
    rl_node *p = src ? rl_graph_add_named(g, "policy", NULL, "s.lua:2", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    rl_node *loss = p ? rl_graph_add(g, &t_wsum, NULL, "s.lua:3", NULL, NULL, e) : NULL;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "params", net);
    rl_opts_set_int(&o, "slot", slot);
    rl_node *opt = loss ? rl_graph_add(g, &t_grab, NULL, "s.lua:4", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!opt || rl_graph_connect(g, p, 0, src, 0, e) || rl_graph_connect(g, p, 1, src, 1, e) ||
        (group > 1 && rl_graph_connect(g, p, 3, src, 2, e)) || rl_graph_connect(g, loss, 0, p, 0, e) ||
        rl_graph_connect(g, loss, 1, p, 1, e) || rl_graph_connect(g, opt, 0, loss, 0, e) ||
        rl_graph_mark_output(g, p, 0, e) || rl_graph_mark_output(g, p, 1, e) || rl_graph_mark_output(g, p, 2, e) ||
        rl_graph_compile(g, NULL, e)) {
        rl_graph_free(g);
        return NULL;
    }
    *pol = p;
    return g;
}

static void test_node(void) {
    /* Two models with the same weights: each graph's optimizer owns one. */
    rl_qwen2 *mu = micro_model("unshared", 9, 1), *ms = micro_model("shared", 9, 1);
    if (!mu || !ms) {
        CHECK(0);
        rl_qwen2_free(mu);
        rl_qwen2_free(ms);
        return;
    }
    rl_object *ou = rl_qwen2_object(mu), *os = rl_qwen2_object(ms);
    const int p[4] = {5, 2, 7, 3};
    const int r[8] = {6, 0, 1, 4, 8, 2, 0, 9};
    make_batch(&g_bt, 2, 4, p, r, 31);
    for (int64_t i = 0; i < g_bt.B * g_bt.T; i++)
        if (g_bt.tok[i] == PAD) g_bt.tok[i] = 0; /* no image input here */
    rl_error e = {0};
    rl_node *pu = NULL, *ps = NULL;
    rl_graph *gu = build(ou, 1, 0, &pu, &e);
    CHECK_MSG(gu != NULL, "%s", e.msg);
    rl_graph *gs = build(os, 2, 1, &ps, &e);
    CHECK_MSG(gs != NULL, "%s", e.msg);
    const size_t np = mu->params->numel;
    g_grab[0] = rl_malloc(np * sizeof(float));
    g_grab[1] = rl_malloc(np * sizeof(float));
    if (!gu || !gs || !g_grab[0] || !g_grab[1]) goto out;
    rl_run_ctx ctx = {0};
    CHECK_MSG(rl_graph_run(gu, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_graph_run(gs, NULL, &ctx, &e) == 0, "%s", e.msg);
    for (int k = 0; k < 3; k++) {
        const size_t n = (size_t)rl_tensor_numel(&pu->out[k]);
        double er = rel_err(rl_f32(&ps->out[k]), rl_f32(&pu->out[k]), n);
        CHECK_MSG(er <= TOL_EQ, "node output %d differs: %g", k, er);
    }
    double eg = rel_err(g_grab[1], g_grab[0], np);
    printf("node: gradient rel err %.2g\n", eg);
    CHECK_MSG(eg <= TOL_EQ, "node gradients differ: %g", eg);
    /* A steady shared step allocates nothing. */
    uint64_t before = rl_alloc_count();
    CHECK_MSG(rl_graph_run(gs, NULL, &ctx, &e) == 0, "%s", e.msg);
    CHECK(rl_alloc_count() == before);
    /* Rows of a group that do not share their prompt. */
    g_bt.tok[3 * 16 + 1] = (g_bt.tok[3 * 16 + 1] + 1) % (MV - 1);
    CHECK(rl_graph_run(gs, NULL, &ctx, &e) == -1);
    CHECK_MSG(strstr(e.msg, "policy") && strstr(e.msg, "s.lua:2") && strstr(e.msg, "row 3, position 1"),
              "message: %s", e.msg);
    g_bt.tok[3 * 16 + 1] = g_bt.tok[2 * 16 + 1];
    g_bt.plen[5] = 1;
    CHECK(rl_graph_run(gs, NULL, &ctx, &e) == -1);
    CHECK_MSG(strstr(e.msg, "row 5: prompt_len 1 differs from row 4's 7"), "message: %s", e.msg);
    g_bt.plen[5] = 7;
    CHECK_MSG(rl_graph_run(gs, NULL, &ctx, &e) == 0, "%s", e.msg);
out:
    rl_free(g_grab[0]);
    rl_free(g_grab[1]);
    rl_graph_free(gu);
    rl_graph_free(gs);
    rl_object_release(ou);
    rl_object_release(os);
}

/* group > 1 without prompt_len, or a batch that is not whole groups, fails
   when the graph is compiled. */
static void test_wiring(void) {
    rl_qwen2 *m = micro_model("w", 5, 1);
    if (!m) {
        CHECK(0);
        return;
    }
    rl_object *o = rl_qwen2_object(m);
    const int p[1] = {2};
    const int r[3] = {1, 1, 1};
    make_batch(&g_bt, 3, 1, p, r, 41);
    rl_error e = {0};
    for (int k = 0; k < 2; k++) {
        rl_graph *g = rl_graph_new("w");
        rl_opts op;
        rl_opts_init(&op);
        rl_opts_set_object(&op, "net", o);
        rl_opts_set_int(&op, "group", k == 0 ? 3 : 2);
        rl_node *src = rl_graph_add(g, &t_tok, NULL, "w.lua:1", NULL, NULL, &e);
        rl_node *pn = rl_graph_add_named(g, "policy", NULL, "w.lua:2", NULL, &op, &e);
        rl_opts_free(&op);
        int rc = !src || !pn || rl_graph_connect(g, pn, 0, src, 0, &e) || rl_graph_connect(g, pn, 1, src, 1, &e) ||
                 (k == 1 && rl_graph_connect(g, pn, 3, src, 2, &e)) || rl_graph_mark_output(g, pn, 0, &e);
        CHECK(rc == 0);
        CHECK(rl_graph_compile(g, NULL, &e) == -1);
        if (k == 0) CHECK_MSG(strstr(e.msg, "connect input 'prompt_len'"), "message: %s", e.msg);
        if (k == 1) CHECK_MSG(strstr(e.msg, "not a whole number of groups of 2"), "message: %s", e.msg);
        rl_graph_free(g);
    }
    rl_object_release(o);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_attention_prefix();
    test_model();
    test_node();
    test_wiring();
    return rl_test_finish("test_qwen2_shared_prefix");
}
