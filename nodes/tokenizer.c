/* tokenize / detokenize: text rows <-> token ids with a tokenizer object
 * (runtime/tokenizer.h). tokenize renders each row through the prompt template
 * (ChatML "chat" with a system prompt, or "plain") and right-pads with the pad
 * id; detokenize decodes [start, length) of each row for the verifier;
 * tokenize_pair builds teacher-forced sequences (prompt as tokenize encodes
 * it, then a response and an end token) with a response mask.
 *
 * No allocation in forward: init/infer size the tokenizer's scratch for the
 * longest row (rl_tokenizer_reserve) and this node's own buffers; the
 * tokenizer's pre-token cache is allocated up front at load and bounded (it is
 * cleared, not grown, when full). */
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "tokenizer.h"

/* ---- tokenize ---- */

static const rl_port_spec tk_inputs[] = {
    {"text", RL_U8, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "prompts u8 [B, L], NUL-padded rows"},
};
static const rl_port_spec tk_outputs[] = {
    {"tokens", RL_I32, 2, 0, 0, "token ids [B, T], right-padded with the pad id"},
    {"lengths", RL_I32, 1, 0, 0, "tokens per row [B]"},
    {"mask", RL_F32, 2, 0, 0, "1 on tokens, 0 on padding [B, T]"},
};
static const rl_option_spec tk_options[] = {
    {"tokenizer", RL_VAL_OBJECT, NULL, "the tokenizer (rlfr.tokenizer(path))", "tokenizer"},
    {"template", RL_VAL_STRING, "chat", "\"chat\" (ChatML, as Qwen) or \"plain\" (text as is)", NULL},
    {"system", RL_VAL_STRING, RL_TOK_MATH_SYSTEM, "system prompt of the chat template (\"\" for none)", NULL},
    {"max_len", RL_VAL_INT, "512", "T: most tokens per row", NULL},
    {"truncate", RL_VAL_BOOL, "false", "cut rows longer than max_len (else it is an error)", NULL},
    {"pad_id", RL_VAL_INT, "-1", "padding id (-1: the tokenizer's)", NULL},
    {"add_special", RL_VAL_BOOL, "true", "apply the tokenizer's post-processor template (e.g. a BOS id)", NULL},
};

/* Lays rows of ids written with stride T out with stride Tn (the longest row
 * of the batch, Tn <= T), padding each row after its length with `pad`, and
 * writes the 0/1 mask of positions [from[b], len[b]) (from = NULL: 0). */
static void compact_rows(int32_t *tok, float *mask, const int32_t *len, const int32_t *from, int64_t B, int64_t T,
                         int64_t Tn, int32_t pad) {
    for (int64_t b = 0; b < B; b++) {
        int32_t *src = tok + b * T, *dst = tok + b * Tn;
        if (dst != src) memmove(dst, src, (size_t)len[b] * sizeof(int32_t));
        for (int64_t j = len[b]; j < Tn; j++) dst[j] = pad;
        int64_t lo = from ? from[b] : 0;
        for (int64_t j = 0; j < Tn; j++) mask[b * Tn + j] = j >= lo && j < len[b] ? 1.0f : 0.0f;
    }
}

static void length_metrics(rl_run_ctx *ctx, const rl_node *n, int64_t longest, int truncate, int64_t cut) {
    if (!ctx) return;
    rl_metric_set(ctx, n, "tokens_max", (double)longest);
    if (truncate) rl_metric_set(ctx, n, "truncated", (double)cut);
}

typedef struct tk_state {
    rl_tokenizer *tok;
    rl_tok_template tpl;
    int64_t max_len;
    int32_t pad;
    char *buf;          /* one rendered row */
    size_t buf_cap;
    rl_tok_ids ids;     /* one row's ids (capacity fixed in infer) */
} tk_state;

/* The options tokenize and tokenize_pair share: tokenizer, template, max_len, pad_id. */
static int read_common_opts(rl_node *n, rl_tokenizer **tok, rl_tok_template *tpl_out, int64_t *max_len,
                            int32_t *pad_out, rl_error *err) {
    rl_object *o = rl_node_opt_object(n, "tokenizer");
    if (!o || !o->ptr || strcmp(o->type, "tokenizer") != 0)
        return rl_node_fail(n, err, "option 'tokenizer' must be a tokenizer object");
    *tok = o->ptr;
    const char *tpl = rl_node_opt_string(n, "template");
    if (rl_tok_template_parse(tpl, tpl_out))
        return rl_node_fail(n, err, "option 'template' = '%s': expected \"chat\" or \"plain\"", tpl);
    *max_len = rl_node_opt_int(n, "max_len");
    if (*max_len < 1 || *max_len > INT32_MAX)
        return rl_node_fail(n, err, "option 'max_len' = %lld must be in [1, 2^31)", (long long)*max_len);
    int64_t pad = rl_node_opt_int(n, "pad_id");
    if (pad >= rl_tokenizer_vocab_size(*tok))
        return rl_node_fail(n, err, "option 'pad_id' = %lld is outside the vocabulary (%lld)", (long long)pad,
                            (long long)rl_tokenizer_vocab_size(*tok));
    *pad_out = pad < 0 ? rl_tokenizer_pad_id(*tok) : (int32_t)pad;
    return 0;
}

static int tk_init(rl_node *n, rl_error *err) {
    tk_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    if (read_common_opts(n, &s->tok, &s->tpl, &s->max_len, &s->pad, err)) return -1;
    return 0;
}

static int tk_infer(rl_node *n, rl_error *err) {
    tk_state *s = n->state;
    int64_t B = n->in[0].shape.dim[0], L = n->in[0].shape.dim[1];
    if (B < 0 || L < 1) return rl_node_fail(n, err, "input 'text' has no room for text (shape [%lld, %lld])",
                                            (long long)B, (long long)L);
    size_t need = (size_t)L + rl_tok_render_overhead(s->tpl, rl_node_opt_string(n, "system"));
    if (need > s->buf_cap) {
        char *b = rl_realloc(s->buf, need);
        if (!b) return rl_node_fail(n, err, "out of memory for a %zu-byte prompt", need);
        s->buf = b;
        s->buf_cap = need;
    }
    /* A valid UTF-8 byte gives at most one id, but an invalid one becomes
       U+FFFD (3 bytes, up to 3 byte-level ids): 3 per byte (+ template ids)
       bounds a row, so forward never grows the vector. */
    size_t ids_cap;
    if (rl_mul_size(need, 3, &ids_cap)) return rl_node_fail(n, err, "rows too long");
    ids_cap += 16;
    if (ids_cap > s->ids.cap) {
        int32_t *p = rl_realloc(s->ids.ids, ids_cap * sizeof(int32_t));
        if (!p) return rl_node_fail(n, err, "out of memory");
        s->ids.ids = p;
        s->ids.cap = ids_cap;
    }
    if (rl_tokenizer_reserve(s->tok, need, err)) return rl_fail_prefix(err, "node '%s' (%s): ", n->label,
                                                                       n->where ? n->where : "?");
    n->out[0].dtype = RL_I32;
    n->out[0].shape = rl_shape2(B, s->max_len);
    n->out[1].dtype = RL_I32;
    n->out[1].shape = rl_shape1(B);
    n->out[2].dtype = RL_F32;
    n->out[2].shape = rl_shape2(B, s->max_len);
    return 0;
}

static int tk_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    tk_state *s = n->state;
    const rl_tensor *text = &n->in[0];
    int64_t B = text->shape.dim[0], L = text->shape.dim[1], T = s->max_len;
    if ((size_t)L + rl_tok_render_overhead(s->tpl, rl_node_opt_string(n, "system")) > s->buf_cap)
        return rl_node_fail(n, err, "input 'text' rows of %lld bytes exceed the compiled size", (long long)L);
    int32_t *tok = rl_i32(&n->out[0]), *len = rl_i32(&n->out[1]);
    float *mask = rl_f32(&n->out[2]);
    int truncate = rl_node_opt_bool(n, "truncate"), add_special = rl_node_opt_bool(n, "add_special");
    const char *system = rl_node_opt_string(n, "system");
    int64_t longest = 0, cut = 0;
    for (int64_t b = 0; b < B; b++) {
        const char *row = (const char *)rl_u8(text) + (size_t)(b * L);
        size_t rl = strnlen(row, (size_t)L);
        size_t rendered;
        if (rl_tok_render(s->tpl, system, row, rl, s->buf, s->buf_cap, &rendered, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: ", n->label, n->where ? n->where : "?", (long long)b);
        s->ids.n = 0;
        if (rl_tokenizer_encode(s->tok, s->buf, rendered, add_special, &s->ids, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: ", n->label, n->where ? n->where : "?", (long long)b);
        size_t k = s->ids.n;
        if ((int64_t)k > T) {
            if (!truncate)
                return rl_node_fail(n, err, "row %lld needs %zu tokens, more than max_len %lld (or set truncate = true)",
                                    (long long)b, k, (long long)T);
            k = (size_t)T;
            cut++;
        }
        if ((int64_t)k > longest) longest = (int64_t)k;
        len[b] = (int32_t)k;
        memcpy(tok + b * T, s->ids.ids, k * sizeof(int32_t));
    }
    /* Shrink T to the longest row of this batch: rows are laid out with the
     * row stride of the new T. */
    int64_t Tn = longest > 0 ? longest : 1;
    compact_rows(tok, mask, len, NULL, B, T, Tn, s->pad);
    n->out[0].shape = rl_shape2(B, Tn);
    n->out[1].shape = rl_shape1(B);
    n->out[2].shape = rl_shape2(B, Tn);
    length_metrics(ctx, n, longest, truncate, cut);
    return 0;
}

static void tk_destroy(rl_node *n) {
    tk_state *s = n->state;
    if (s) {
        rl_free(s->buf);
        rl_free(s->ids.ids);
    }
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_tokenize = {
    .name = "tokenize",
    .doc = "text rows -> token ids, lengths and mask, through a prompt template (chat/plain)",
    .inputs = tk_inputs,
    .n_inputs = 1,
    .outputs = tk_outputs,
    .n_outputs = 3,
    .options = tk_options,
    .n_options = 7,
    .init = tk_init,
    .infer = tk_infer,
    .forward = tk_forward,
    .destroy = tk_destroy,
};

/* ---- detokenize ---- */

static const rl_port_spec dt_inputs[] = {
    {"tokens", RL_I32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "token ids [B, T]"},
    {"lengths", RL_I32, 1, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "end of each row's tokens [B]"},
    {"start", RL_I32, 1, RL_PORT_OPTIONAL | RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "where each row's part to decode begins [B] (e.g. the response); absent = 0"},
};
static const rl_port_spec dt_outputs[] = {
    {"text", RL_U8, 2, 0, 0, "decoded rows u8 [B, max_bytes], NUL-padded"},
};
static const rl_option_spec dt_options[] = {
    {"tokenizer", RL_VAL_OBJECT, NULL, "the tokenizer (rlfr.tokenizer(path))", "tokenizer"},
    {"max_bytes", RL_VAL_INT, "4096", "row width L of the text output, NUL included", NULL},
    {"skip_special", RL_VAL_BOOL, "true", "leave special tokens (<|im_end|>, ...) out of the text", NULL},
    {"truncate", RL_VAL_BOOL, "true", "cut longer texts at a character boundary (else it is an error)", NULL},
};

static int dt_init(rl_node *n, rl_error *err) {
    rl_object *o = rl_node_opt_object(n, "tokenizer");
    if (!o || !o->ptr || strcmp(o->type, "tokenizer") != 0)
        return rl_node_fail(n, err, "option 'tokenizer' must be a tokenizer object");
    n->state = o->ptr;
    int64_t mb = rl_node_opt_int(n, "max_bytes");
    if (mb < 1 || mb > ((int64_t)1 << 30))
        return rl_node_fail(n, err, "option 'max_bytes' = %lld must be in [1, 2^30]", (long long)mb);
    return 0;
}

static int dt_infer(rl_node *n, rl_error *err) {
    int64_t B = n->in[0].shape.dim[0];
    if (n->in[1].shape.dim[0] != B)
        return rl_node_fail(n, err, "input 'lengths' has %lld rows, 'tokens' has %lld", (long long)n->in[1].shape.dim[0],
                            (long long)B);
    if (n->src[2] && n->in[2].shape.dim[0] != B)
        return rl_node_fail(n, err, "input 'start' has %lld rows, 'tokens' has %lld", (long long)n->in[2].shape.dim[0],
                            (long long)B);
    int64_t mb = rl_node_opt_int(n, "max_bytes");
    if (rl_tokenizer_reserve(n->state, (size_t)mb, err))
        return rl_fail_prefix(err, "node '%s' (%s): ", n->label, n->where ? n->where : "?");
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(B, mb);
    return 0;
}

static int dt_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    rl_tokenizer *tok = n->state;
    const rl_tensor *ids = &n->in[0], *lens = &n->in[1], *st = &n->in[2];
    int64_t B = ids->shape.dim[0], T = ids->shape.dim[1], L = rl_node_opt_int(n, "max_bytes");
    if (lens->shape.dim[0] < B || (st->data && st->shape.dim[0] < B))
        return rl_node_fail(n, err, "inputs 'lengths'/'start' have fewer rows than 'tokens' (%lld)", (long long)B);
    int skip = rl_node_opt_bool(n, "skip_special"), truncate = rl_node_opt_bool(n, "truncate");
    uint8_t *out = rl_u8(&n->out[0]);
    for (int64_t b = 0; b < B; b++) {
        int64_t e = rl_i32(lens)[b], s = st->data ? rl_i32(st)[b] : 0;
        if (s < 0 || e < s || e > T)
            return rl_node_fail(n, err, "row %lld: tokens [%lld, %lld) are outside [0, %lld]", (long long)b,
                                (long long)s, (long long)e, (long long)T);
        char *row = (char *)out + (size_t)(b * L);
        size_t written;
        if (rl_tokenizer_decode_into(tok, rl_i32(ids) + b * T + s, (size_t)(e - s), skip, row, (size_t)L, truncate,
                                     &written, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: ", n->label, n->where ? n->where : "?", (long long)b);
        memset(row + written, 0, (size_t)L - written);
    }
    n->out[0].shape = rl_shape2(B, L);
    return 0;
}

const rl_node_type rl_node_detokenize = {
    .name = "detokenize",
    .doc = "token ids [start, length) of each row -> text rows (for the verifier)",
    .inputs = dt_inputs,
    .n_inputs = 3,
    .outputs = dt_outputs,
    .n_outputs = 1,
    .options = dt_options,
    .n_options = 4,
    .init = dt_init,
    .infer = dt_infer,
    .forward = dt_forward,
};

/* ---- tokenize_pair (teacher forcing) ---- */

/* prompt + expert response -> one sequence whose prompt part is encoded
 * exactly as `tokenize` encodes it (same template, system prompt and
 * post-processor), so the sampler's prompts and the teacher-forced sequences
 * agree token for token. The response is encoded on its own (no
 * post-processor: a BOS in the middle would be wrong) and followed by an end
 * token; the mask marks the response tokens and the end token, the positions
 * a policy is trained to produce. */

static const rl_port_spec tp_inputs[] = {
    {"prompt", RL_U8, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0, "prompts u8 [B, Lp], NUL-padded rows"},
    {"response", RL_U8, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "responses u8 [B, Lr] (e.g. the dataset's solution), NUL-padded rows"},
};
static const rl_port_spec tp_outputs[] = {
    {"tokens", RL_I32, 2, 0, 0, "prompt then response then end token [B, T], right-padded with the pad id"},
    {"lengths", RL_I32, 1, 0, 0, "tokens per row [B]"},
    {"mask", RL_F32, 2, 0, 0, "1 on the response tokens and the end token, else 0 [B, T]"},
    {"prompt_len", RL_I32, 1, 0, 0, "tokens of the templated prompt per row [B]"},
};
static const rl_option_spec tp_options[] = {
    {"tokenizer", RL_VAL_OBJECT, NULL, "the tokenizer (rlfr.tokenizer(path))", "tokenizer"},
    {"template", RL_VAL_STRING, "chat", "\"chat\" (ChatML, as Qwen) or \"plain\" (text as is), as in tokenize", NULL},
    {"system", RL_VAL_STRING, RL_TOK_MATH_SYSTEM, "system prompt of the chat template (\"\" for none)", NULL},
    {"max_len", RL_VAL_INT, "1024", "T: most tokens per row", NULL},
    {"truncate", RL_VAL_BOOL, "false", "cut the response of rows longer than max_len (else it is an error)", NULL},
    {"pad_id", RL_VAL_INT, "-1", "padding id (-1: the tokenizer's)", NULL},
    {"add_special", RL_VAL_BOOL, "true", "apply the post-processor template to the prompt, as tokenize does", NULL},
    {"eos", RL_VAL_STRING, "auto",
     "end token after the response: a token spelling, \"auto\" (<|im_end|> for chat, <|endoftext|> for plain) or "
     "\"none\"", NULL},
};

typedef struct tp_state {
    rl_tokenizer *tok;
    rl_tok_template tpl;
    int64_t max_len;
    int32_t pad, eos;   /* eos -1: none */
    char *buf;          /* one rendered prompt */
    size_t buf_cap;
    rl_tok_ids ids;     /* one row's ids (capacity fixed in infer) */
} tp_state;

static int tp_init(rl_node *n, rl_error *err) {
    tp_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    if (read_common_opts(n, &s->tok, &s->tpl, &s->max_len, &s->pad, err)) return -1;
    const char *eos = rl_node_opt_string(n, "eos");
    s->eos = -1;
    if (strcmp(eos, "none") != 0) {
        const char *name = strcmp(eos, "auto") != 0 ? eos : s->tpl == RL_TOK_CHAT ? "<|im_end|>" : "<|endoftext|>";
        s->eos = rl_tokenizer_token_id(s->tok, name);
        if (s->eos < 0)
            return rl_node_fail(n, err, "option 'eos': the tokenizer has no token '%s' (give eos = \"TOKEN\" or \"none\")",
                                name);
    }
    return 0;
}

static int tp_infer(rl_node *n, rl_error *err) {
    tp_state *s = n->state;
    int64_t B = n->in[0].shape.dim[0], Lp = n->in[0].shape.dim[1], Lr = n->in[1].shape.dim[1];
    if (n->in[1].shape.dim[0] != B)
        return rl_node_fail(n, err, "input 'response' has %lld rows, 'prompt' has %lld",
                            (long long)n->in[1].shape.dim[0], (long long)B);
    if (Lp < 1 || Lr < 1)
        return rl_node_fail(n, err, "inputs 'prompt' [%lld, %lld] and 'response' [%lld, %lld] need room for text",
                            (long long)B, (long long)Lp, (long long)B, (long long)Lr);
    size_t need = (size_t)Lp + rl_tok_render_overhead(s->tpl, rl_node_opt_string(n, "system"));
    if (need > s->buf_cap) {
        char *b = rl_realloc(s->buf, need);
        if (!b) return rl_node_fail(n, err, "out of memory for a %zu-byte prompt", need);
        s->buf = b;
        s->buf_cap = need;
    }
    /* An invalid UTF-8 byte becomes U+FFFD (3 bytes, up to 3 byte-level ids),
       so 3 ids per input byte bound a row; + template ids and the end token. */
    size_t ids_cap;
    if (rl_mul_size(need + (size_t)Lr, 3, &ids_cap)) return rl_node_fail(n, err, "rows too long");
    ids_cap += 32;
    if (ids_cap > s->ids.cap) {
        int32_t *p = rl_realloc(s->ids.ids, ids_cap * sizeof(int32_t));
        if (!p) return rl_node_fail(n, err, "out of memory");
        s->ids.ids = p;
        s->ids.cap = ids_cap;
    }
    if (rl_tokenizer_reserve(s->tok, need > (size_t)Lr ? need : (size_t)Lr, err))
        return rl_fail_prefix(err, "node '%s' (%s): ", n->label, n->where ? n->where : "?");
    n->out[0].dtype = RL_I32;
    n->out[0].shape = rl_shape2(B, s->max_len);
    n->out[1].dtype = RL_I32;
    n->out[1].shape = rl_shape1(B);
    n->out[2].dtype = RL_F32;
    n->out[2].shape = rl_shape2(B, s->max_len);
    n->out[3].dtype = RL_I32;
    n->out[3].shape = rl_shape1(B);
    return 0;
}

static int tp_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    tp_state *s = n->state;
    const rl_tensor *pr = &n->in[0], *rs = &n->in[1];
    int64_t B = pr->shape.dim[0], Lp = pr->shape.dim[1], Lr = rs->shape.dim[1], T = s->max_len;
    const char *system = rl_node_opt_string(n, "system");
    if (rs->shape.dim[0] < B || (size_t)Lp + rl_tok_render_overhead(s->tpl, system) > s->buf_cap ||
        ((size_t)Lp + (size_t)Lr) * 3 + 32 > s->ids.cap)
        return rl_node_fail(n, err, "inputs 'prompt' / 'response' exceed the compiled sizes");
    int32_t *tok = rl_i32(&n->out[0]), *len = rl_i32(&n->out[1]), *plen = rl_i32(&n->out[3]);
    float *mask = rl_f32(&n->out[2]);
    int truncate = rl_node_opt_bool(n, "truncate"), add_special = rl_node_opt_bool(n, "add_special");
    int64_t longest = 0, cut = 0;
    for (int64_t b = 0; b < B; b++) {
        const char *prow = (const char *)rl_u8(pr) + (size_t)(b * Lp);
        const char *rrow = (const char *)rl_u8(rs) + (size_t)(b * Lr);
        size_t rendered;
        if (rl_tok_render(s->tpl, system, prow, strnlen(prow, (size_t)Lp), s->buf, s->buf_cap, &rendered, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: ", n->label, n->where ? n->where : "?", (long long)b);
        s->ids.n = 0;
        if (rl_tokenizer_encode(s->tok, s->buf, rendered, add_special, &s->ids, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: prompt: ", n->label, n->where ? n->where : "?",
                                  (long long)b);
        size_t np = s->ids.n;
        if (rl_tokenizer_encode(s->tok, rrow, strnlen(rrow, (size_t)Lr), 0, &s->ids, err))
            return rl_fail_prefix(err, "node '%s' (%s): row %lld: response: ", n->label, n->where ? n->where : "?",
                                  (long long)b);
        if (s->eos >= 0) s->ids.ids[s->ids.n++] = s->eos; /* room reserved in infer */
        size_t k = s->ids.n;
        if ((int64_t)np >= T)
            return rl_node_fail(n, err, "row %lld: the prompt alone needs %zu tokens, max_len is %lld", (long long)b,
                                np, (long long)T);
        if ((int64_t)k > T) {
            if (!truncate)
                return rl_node_fail(n, err,
                                    "row %lld needs %zu tokens (prompt %zu), more than max_len %lld (or set truncate = true)",
                                    (long long)b, k, np, (long long)T);
            k = (size_t)T;
            cut++;
        }
        if ((int64_t)k > longest) longest = (int64_t)k;
        len[b] = (int32_t)k;
        plen[b] = (int32_t)np;
        memcpy(tok + b * T, s->ids.ids, k * sizeof(int32_t));
    }
    /* T shrinks to the longest row, as in tokenize. */
    int64_t Tn = longest > 0 ? longest : 1;
    compact_rows(tok, mask, len, plen, B, T, Tn, s->pad);
    n->out[0].shape = rl_shape2(B, Tn);
    n->out[2].shape = rl_shape2(B, Tn);
    length_metrics(ctx, n, longest, truncate, cut);
    return 0;
}

static void tp_destroy(rl_node *n) {
    tp_state *s = n->state;
    if (s) {
        rl_free(s->buf);
        rl_free(s->ids.ids);
    }
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_tokenize_pair = {
    .name = "tokenize_pair",
    .doc = "teacher forcing: templated prompt + response + end token -> tokens, lengths, response mask, prompt_len",
    .inputs = tp_inputs,
    .n_inputs = 2,
    .outputs = tp_outputs,
    .n_outputs = 4,
    .options = tp_options,
    .n_options = 8,
    .init = tp_init,
    .infer = tp_infer,
    .forward = tp_forward,
    .destroy = tp_destroy,
};
