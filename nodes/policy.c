/* policy: the Qwen2 language model, teacher-forced over a right-padded batch.
 *
 * Inputs are padded [B, T] (the graph's convention); internally the valid
 * tokens are PACKED (sequence after sequence, no padding rows), so GEMMs
 * spend nothing on padding and attention never crosses sequences. Outputs
 * are unpacked back to [B, T] with zeros on padding.
 *
 * All activations live in three planned workspaces (saved for backward,
 * forward scratch, backward scratch) sized in infer for the maximum batch;
 * the LM head runs `chunk` rows at a time, so no [B, T, vocab] tensor exists.
 * When no backward will run (frozen policy, scoring), the model uses its
 * forward-only layout and the whole block is forward scratch.
 *
 * Image splice: positions holding `image_pad_id` take the rows of the
 * optional `image_embeds` input (the vision encoder's output) in batch
 * order; backward returns their gradient when the encoder is trained.
 *
 * Shared prefixes (option `group` > 1 with the `prompt_len` input): each
 * group of G consecutive rows (the samples of one prompt) is packed as one
 * prompt copy plus G responses (rl_qwen2_pack_shared), so the prompt is
 * computed once per group instead of G times. The outputs keep the [B, T]
 * layout: every row's prompt positions get the shared values, and in
 * backward the gradients of those positions over the G rows are summed into
 * the one copy. */
#include <omp.h>
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "qwen2.h"

typedef struct policy_state {
    rl_qwen2 *m;
    int n_tap;
    int64_t *tap;
    rl_qwen2_run run;
    int ws_saved, ws_fwd, ws_bwd, ws_grad;
    int32_t pad_id;        /* image_pad_id option (-1: no splice) */
    int64_t group;         /* rows per shared prompt (1: no sharing) */
    int64_t B, T;          /* the shapes of the last forward */
} policy_state;

static const rl_port_spec policy_inputs[] = {
    {"tokens", RL_I32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "token ids [B, T], right-padded"},
    {"lengths", RL_I32, 1, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "valid tokens per row [B]"},
    /* Backward needs only d(input embeddings), not the values: not kept. */
    {"image_embeds", RL_F32, 2, RL_PORT_OPTIONAL | RL_PORT_NOT_IN_BACKWARD, 0,
     "[N_img, d]: row k replaces the embedding of the batch's k-th image_pad_id token (rows in batch order)"},
    {"prompt_len", RL_I32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "[B]: prompt tokens of each row (the sampler's 'start'); with group > 1 the rows of a group share them"},
};
enum { IN_TOKENS, IN_LENGTHS, IN_IMAGES, IN_PROMPT_LEN };
static const rl_port_spec policy_outputs[] = {
    {"logprobs", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0,
     "[B, T]: log p(token_t | tokens_<t); 0 at t = 0 and on padding"},
    {"entropy", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0,
     "[B, T]: entropy of the distribution predicting token t (same alignment)"},
    {"hidden", RL_F32, 4, RL_PORT_NOT_IN_BACKWARD | RL_PORT_NO_GRAD, 0,
     "[n_tap, B, T, d]: outputs of the tapped blocks before the final norm (detached)"},
    {"tau", RL_F32, 1, RL_PORT_NOT_IN_BACKWARD | RL_PORT_NO_GRAD, 0, "[n_tap]: j/N of each tapped block"},
};
static const rl_option_spec policy_options[] = {
    {"net", RL_VAL_OBJECT, NULL, "the Qwen2 model", "qwen2"},
    {"tap_layers", RL_VAL_NUMBERS, "", "fractions p in (0, 1]: block j = round(p*N) (N -> N-1) for 'hidden'",
     NULL},
    {"chunk", RL_VAL_INT, "0", "rows per LM-head chunk (0: about 32 MB of logits)", NULL},
    {"image_pad_id", RL_VAL_INT, "-1",
     "token id whose positions take the rows of 'image_embeds' (the tokenizer's <|image_pad|>; -1: none)", NULL},
    {"group", RL_VAL_INT, "1",
     "G: rows b*G..b*G+G-1 share their first prompt_len tokens, computed once (needs 'prompt_len'; 1: off)", NULL},
};

static int policy_init(rl_node *n, rl_error *err) {
    rl_object *o = rl_node_opt_object(n, "net");
    if (!o || !o->ptr) return rl_node_fail(n, err, "option 'net' must be a qwen2 model");
    policy_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->m = o->ptr;
    int cnt = 0;
    const double *fr = rl_node_opt_numbers(n, "tap_layers", &cnt);
    if (cnt > 0) {
        s->tap = rl_calloc((size_t)cnt, sizeof *s->tap);
        if (!s->tap) return rl_node_fail(n, err, "out of memory");
        rl_error e = {0};
        if (rl_tap_layers(fr, cnt, s->m->cfg.n_layers, s->tap, &e))
            return rl_node_fail(n, err, "option 'tap_layers': %s", e.msg);
    }
    s->n_tap = cnt;
    if (rl_node_opt_int(n, "chunk") < 0) return rl_node_fail(n, err, "option 'chunk' must be >= 0");
    int64_t pad = rl_node_opt_int(n, "image_pad_id");
    if (pad < -1 || pad >= s->m->cfg.vocab)
        return rl_node_fail(n, err, "option 'image_pad_id' = %lld is outside the vocabulary [0, %lld) (or -1)",
                            (long long)pad, (long long)s->m->cfg.vocab);
    s->pad_id = (int32_t)pad;
    s->group = rl_node_opt_int(n, "group");
    if (s->group < 1 || s->group > 65536) return rl_node_fail(n, err, "option 'group' must be in [1, 65536]");
    return rl_node_use_params(n, s->m->params, err);
}

static int policy_infer(rl_node *n, rl_error *err) {
    policy_state *s = n->state;
    const rl_qwen2_config *c = &s->m->cfg;
    const int64_t B = n->in[0].shape.dim[0], T = n->in[0].shape.dim[1];
    char buf[64];
    if (n->in[1].shape.dim[0] != B)
        return rl_node_fail(n, err, "input 'lengths' has shape %s, expected [%lld]",
                            rl_shape_str(&n->in[1].shape, buf, sizeof buf), (long long)B);
    if (B < 1 || T < 1) return rl_node_fail(n, err, "input 'tokens' is empty");
    if (T > c->max_pos)
        return rl_node_fail(n, err, "input 'tokens' holds %lld positions, more than max_position_embeddings (%lld)",
                            (long long)T, (long long)c->max_pos);
    int64_t rows;
    if (__builtin_mul_overflow(B, T, &rows) || rows > ((int64_t)1 << 31))
        return rl_node_fail(n, err, "batch [%lld, %lld] is too large", (long long)B, (long long)T);
    int64_t chunk = rl_node_opt_int(n, "chunk");
    if (chunk == 0) {
        chunk = ((int64_t)1 << 23) / c->vocab; /* 32 MB of logits: 55 rows at a 152K vocabulary */
        if (chunk < 8) chunk = 8;
    }
    if (n->src[IN_IMAGES]) {
        if (n->in[IN_IMAGES].shape.dim[1] != c->hidden)
            return rl_node_fail(n, err, "input 'image_embeds' has shape %s, expected [N, %lld] (the hidden size)",
                                rl_shape_str(&n->in[IN_IMAGES].shape, buf, sizeof buf), (long long)c->hidden);
        if (s->pad_id < 0)
            return rl_node_fail(n, err, "input 'image_embeds' is connected but option 'image_pad_id' is not set");
    }
    if (s->group > 1) {
        if (!n->src[IN_PROMPT_LEN])
            return rl_node_fail(n, err, "option 'group' = %lld shares prompts: connect input 'prompt_len'",
                                (long long)s->group);
        if (B % s->group != 0)
            return rl_node_fail(n, err, "batch of %lld rows is not a whole number of groups of %lld (option 'group')",
                                (long long)B, (long long)s->group);
    }
    if (n->src[IN_PROMPT_LEN] && n->in[IN_PROMPT_LEN].shape.dim[0] != B)
        return rl_node_fail(n, err, "input 'prompt_len' has shape %s, expected [%lld]",
                            rl_shape_str(&n->in[IN_PROMPT_LEN].shape, buf, sizeof buf), (long long)B);
    /* At most the LM-head rows: the packed rows plus, with shared prompts,
       one extra row per batch row. A chunk that holds them all is kept from
       forward to backward instead of recomputed. */
    if (chunk > rows + B) chunk = rows + B;
    s->run = (rl_qwen2_run){rows, B, T, chunk, omp_get_max_threads(), NULL, NULL, NULL};
    /* Without a backward nothing outlives the forward: one layer slot of
       activations, all of it forward scratch, and no backward scratch. */
    s->run.forward_only = !n->needs_backward;
    rl_qwen2_ws_bytes wb;
    rl_error e = {0};
    if (rl_qwen2_ws_size_run(c, &s->run, &wb, &e)) return rl_node_fail(n, err, "%s", e.msg);
    n->n_ws = 0;
    s->ws_bwd = s->ws_grad = -1;
    if ((s->ws_saved = rl_node_request(n, n->needs_backward ? RL_WS_SAVED : RL_WS_SCRATCH_FWD, wb.saved, err)) < 0 ||
        (s->ws_fwd = rl_node_request(n, RL_WS_SCRATCH_FWD, wb.fwd, err)) < 0)
        return -1;
    if (n->needs_backward &&
        ((s->ws_bwd = rl_node_request(n, RL_WS_SCRATCH_BWD, wb.bwd, err)) < 0 ||
         /* gradients of logp and entropy per LM-head row: packed rows plus one extra per row */
         (s->ws_grad = rl_node_request(n, RL_WS_SCRATCH_BWD, (size_t)(rows + B) * 2 * sizeof(float), err)) < 0))
        return -1;
    n->out[0].dtype = n->out[1].dtype = n->out[2].dtype = n->out[3].dtype = RL_F32;
    n->out[0].shape = rl_shape2(B, T);
    n->out[1].shape = rl_shape2(B, T);
    n->out[2].shape = rl_shape4(s->n_tap, B, T, c->hidden);
    n->out[3].shape = rl_shape1(s->n_tap);
    return 0;
}

static void bind(rl_node *n, policy_state *s, rl_run_ctx *ctx) {
    s->run.saved = n->ws[s->ws_saved].data;
    s->run.fwd = n->ws[s->ws_fwd].data;
    s->run.bwd = s->ws_bwd >= 0 ? n->ws[s->ws_bwd].data : NULL;
    (void)ctx;
}

static int policy_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    policy_state *s = n->state;
    const rl_qwen2_config *c = &s->m->cfg;
    if (!s->m->params->data) return rl_node_fail(n, err, "parameter set '%s' is not finalised", s->m->params->name);
    const int64_t B = n->in[0].shape.dim[0], T = n->in[0].shape.dim[1], d = c->hidden;
    if (n->in[1].shape.dim[0] != B)
        return rl_node_fail(n, err, "inputs 'tokens' ([%lld, %lld]) and 'lengths' ([%lld]) disagree", (long long)B,
                            (long long)T, (long long)n->in[1].shape.dim[0]);
    if (B > s->run.max_seqs || T > s->run.max_len)
        return rl_node_fail(n, err, "batch [%lld, %lld] exceeds the planned capacity [%lld, %lld]", (long long)B,
                            (long long)T, (long long)s->run.max_seqs, (long long)s->run.max_len);
    bind(n, s, ctx);
    rl_error e = {0};
    const int shared = s->group > 1;
    if (shared && n->in[IN_PROMPT_LEN].shape.dim[0] != B)
        return rl_node_fail(n, err, "inputs 'tokens' ([%lld, %lld]) and 'prompt_len' ([%lld]) disagree", (long long)B,
                            (long long)T, (long long)n->in[IN_PROMPT_LEN].shape.dim[0]);
    if (shared ? rl_qwen2_pack_shared(s->m, &s->run, rl_i32(&n->in[0]), rl_i32(&n->in[1]),
                                      rl_i32(&n->in[IN_PROMPT_LEN]), B, T, s->group, &e)
               : rl_qwen2_pack(s->m, &s->run, rl_i32(&n->in[0]), rl_i32(&n->in[1]), B, T, &e))
        return rl_node_fail(n, err, "%s", e.msg);
    const int64_t n_img = n->src[IN_IMAGES] ? n->in[IN_IMAGES].shape.dim[0] : 0;
    if (rl_qwen2_splice_images(s->m, &s->run, s->pad_id, n->src[IN_IMAGES] ? rl_f32(&n->in[IN_IMAGES]) : NULL, n_img,
                               &e))
        return rl_node_fail(n, err, "%s", e.msg);
    if (rl_qwen2_forward(s->m, &s->run, &e)) return rl_node_fail(n, err, "%s", e.msg);
    s->B = B;
    s->T = T;
    n->out[0].shape = rl_shape2(B, T);
    n->out[1].shape = rl_shape2(B, T);
    n->out[2].shape = rl_shape4(s->n_tap, B, T, d);
    n->out[3].shape = rl_shape1(s->n_tap);
    float *lp = rl_f32(&n->out[0]), *en = rl_f32(&n->out[1]), *hid = rl_f32(&n->out[2]), *tau = rl_f32(&n->out[3]);
    memset(lp, 0, (size_t)(B * T) * sizeof(float));
    memset(en, 0, (size_t)(B * T) * sizeof(float));
    if (s->n_tap) memset(hid, 0, (size_t)s->n_tap * (size_t)(B * T * d) * sizeof(float));
    const rl_qwen2_row *map = rl_qwen2_row_map(s->m, &s->run, NULL);
    const float *plp = rl_qwen2_logp(s->m, &s->run), *pen = rl_qwen2_entropy(s->m, &s->run);
    for (int64_t b = 0; b < B; b++) {
        const rl_qwen2_row *w = &map[b];
        const int64_t len = w->n_pre + w->n_resp;
        /* Position t's log-prob is predicted from position t-1 (a shared
           prompt's last row: the row's own extra LM-head row). */
        for (int64_t t = 1; t < len; t++) {
            const int64_t r = rl_qwen2_lm_row(w, t);
            lp[b * T + t] = plp[r];
            en[b * T + t] = pen[r];
        }
        for (int i = 0; i < s->n_tap; i++) {
            const float *src = rl_qwen2_block_output(s->m, &s->run, s->tap[i]);
            float *dst = hid + ((int64_t)i * B + b) * T * d;
            memcpy(dst, src + w->pre_row * d, (size_t)(w->n_pre * d) * sizeof(float));
            memcpy(dst + w->n_pre * d, src + w->resp_row * d, (size_t)(w->n_resp * d) * sizeof(float));
        }
    }
    for (int i = 0; i < s->n_tap; i++) tau[i] = (float)((double)s->tap[i] / (double)c->n_layers);
    return 0;
}

static int policy_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    policy_state *s = n->state;
    const float *glp = rl_f32(&n->grad_out[0]), *gen = rl_f32(&n->grad_out[1]);
    /* Only a set an optimizer trains gets gradients (a frozen reference
       policy's gradient would never be read or zeroed); a frozen policy
       still carries the gradient back to a trained vision encoder. */
    const int want_img = n->need_grad_in[IN_IMAGES] && n->grad_in[IN_IMAGES].data && s->run.splice;
    if ((!glp && !gen) || (!s->m->params->trainable && !want_img)) return 0;
    bind(n, s, ctx);
    s->run.no_param_grad = !s->m->params->trainable;
    s->run.image_grad = want_img ? rl_f32(&n->grad_in[IN_IMAGES]) : NULL;
    const int64_t LM = rl_qwen2_lm_rows(&s->run), T = s->T;
    float *gl = n->ws[s->ws_grad].data, *ge = gl + s->run.max_rows + s->run.max_seqs;
    memset(gl, 0, (size_t)LM * sizeof(float));
    memset(ge, 0, (size_t)LM * sizeof(float));
    int64_t B;
    const rl_qwen2_row *map = rl_qwen2_row_map(s->m, &s->run, &B);
    /* A shared prompt position's value went to all G rows: its gradient is
       their sum (accumulated in row order). */
    for (int64_t b = 0; b < B; b++) {
        const rl_qwen2_row *w = &map[b];
        const int64_t len = w->n_pre + w->n_resp;
        for (int64_t t = 1; t < len; t++) {
            const int64_t r = rl_qwen2_lm_row(w, t);
            if (glp) gl[r] += glp[b * T + t];
            if (gen) ge[r] += gen[b * T + t];
        }
    }
    rl_error e = {0};
    if (rl_qwen2_backward(s->m, &s->run, glp ? gl : NULL, gen ? ge : NULL, &e))
        return rl_node_fail(n, err, "%s", e.msg);
    return 0;
}

static void policy_destroy(rl_node *n) {
    policy_state *s = n->state;
    if (!s) return;
    rl_free(s->tap);
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_policy = {
    .name = "policy",
    .doc = "Qwen2 policy, teacher-forced: per-token log-probs, entropies and tapped hidden states",
    .inputs = policy_inputs,
    .n_inputs = 4,
    .outputs = policy_outputs,
    .n_outputs = 4,
    .options = policy_options,
    .n_options = 5,
    .init = policy_init,
    .infer = policy_infer,
    .forward = policy_forward,
    .backward = policy_backward,
    .destroy = policy_destroy,
};
