/* The Qwen2 decoder (Hugging Face Qwen2ForCausalLM): configuration from
 * config.json, parameters with HF names in one rl_params flat buffer,
 * safetensors load/save, and a packed-batch forward/backward used by the
 * policy node (teacher forcing) and, through rl_qwen2_block_forward with
 * cached keys/values, by a decoding sampler.
 *
 * Batch layout: the graph hands right-padded [B, T] tokens plus lengths; the
 * model works on PACKED rows (the valid tokens of every sequence, one after
 * the other, M = sum of lengths), so no GEMM work is spent on padding and
 * attention never looks across sequences. */
#ifndef RL_QWEN2_H
#define RL_QWEN2_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "kernels_attn.h"
#include "params.h"
#include "tensor.h"
#include "value.h"

typedef struct rl_qwen2_config {
    int64_t vocab;        /* vocab_size */
    int64_t hidden;       /* hidden_size */
    int64_t n_layers;     /* num_hidden_layers */
    int64_t n_heads;      /* num_attention_heads */
    int64_t n_kv_heads;   /* num_key_value_heads */
    int64_t inter;        /* intermediate_size */
    int64_t max_pos;      /* max_position_embeddings */
    double rope_theta;
    double rms_eps;
    int tie;              /* tie_word_embeddings */
    int64_t head_dim;     /* hidden / n_heads (derived) */
} rl_qwen2_config;

/* Checks ranges and divisibility; fills head_dim. `what` names the source in messages. */
int rl_qwen2_config_check(rl_qwen2_config *c, const char *what, rl_error *err);
/* Reads a HF config.json (every key above must be present, except
 * max_position_embeddings (default 32768), rope_theta (10000),
 * rms_norm_eps (1e-6), tie_word_embeddings (false), num_key_value_heads
 * (= num_attention_heads)). */
int rl_qwen2_config_load(const char *path, rl_qwen2_config *c, rl_error *err);
int rl_qwen2_config_save(const char *path, const rl_qwen2_config *c, rl_error *err);

/* Offsets (in floats) of one block's tensors in the flat parameter buffer. */
typedef struct rl_qwen2_layer_off {
    size_t ln1, wq, bq, wk, bk, wv, bv, wo, ln2, wg, wu, wd;
} rl_qwen2_layer_off;

typedef struct rl_qwen2 {
    rl_qwen2_config cfg;
    rl_params *params;             /* owned */
    size_t off_embed, off_norm, off_head; /* off_head == off_embed when tied */
    rl_qwen2_layer_off *layer;     /* [n_layers] */
    struct rl_qwen2_panels *panels; /* decode weights (qwen2_panels.h): NULL until
                                       rl_qwen2_decode_weights */
} rl_qwen2;

/* Declares every tensor (HF names; init as HF: normal(0, 0.02) matrices,
 * zero biases, unit norms). The set is not finalised yet. */
int rl_qwen2_new(const rl_qwen2_config *cfg, const char *params_name, uint64_t seed, rl_qwen2 **out,
                 rl_error *err);
void rl_qwen2_free(rl_qwen2 *m);
/* An rl_object of type "qwen2" owning m (its `params` field is m->params). */
rl_object *rl_qwen2_object(rl_qwen2 *m);

/* Finalises the set and fills it from dir/model.safetensors or, failing
 * that, the shards listed in dir/model.safetensors.index.json (f32 or bf16).
 * Every tensor must be present with its exact shape; lm_head.weight is not
 * read when tied. */
int rl_qwen2_load_weights(rl_qwen2 *m, const char *dir, rl_error *err);
/* config.json + weights of a HF directory. */
int rl_qwen2_load(const char *dir, const char *params_name, rl_qwen2 **out, rl_error *err);
/* Writes dir/config.json and dir/model.safetensors (dtype RL_F32 or RL_BF16). */
int rl_qwen2_save(const rl_qwen2 *m, const char *dir, rl_dtype dtype, rl_error *err);

/* Creates (once) and refreshes the decode weights that rl_qwen2_decode
 * reads: every matrix repacked into panels for few-row products
 * (qwen2_panels.h), in f32 or, with bf16 = 1, rounded to bf16 (half the
 * memory traffic per generated token). They are a second copy of the
 * matrices (the model's size again in f32, half of it in bf16): call again
 * after the f32 weights change; a call with the other dtype replaces them. */
int rl_qwen2_decode_weights(rl_qwen2 *m, int bf16, rl_error *err);
/* Frees the decode weights. */
void rl_qwen2_decode_weights_drop(rl_qwen2 *m);

/* Tapped layers for fractions p: j = round(p*N) (halves to even), j = N -> N-1.
 * Fractions outside (0, 1] are an error. Writes n layer indices (0-based block). */
int rl_tap_layers(const double *fractions, int n, int64_t n_layers, int64_t *layers, rl_error *err);

/* ---- packed-batch training path ---------------------------------------- */

/* Sizes of the three workspaces for at most max_rows packed rows, sequences
 * of at most max_len tokens, an LM-head chunk of `chunk` rows and `threads`
 * OpenMP threads. 0 on success, -1 on overflow. */
typedef struct rl_qwen2_ws_bytes {
    size_t saved;       /* forward -> backward */
    size_t fwd;         /* forward scratch */
    size_t bwd;         /* backward scratch */
} rl_qwen2_ws_bytes;
int rl_qwen2_ws_size(const rl_qwen2_config *c, int64_t max_rows, int64_t max_seqs, int64_t max_len,
                     int64_t chunk, int threads, rl_qwen2_ws_bytes *out, rl_error *err);

/* A packed batch: n_seq sequences, sequence s occupies rows
 * [seq[s].q_row, seq[s].q_row + seq[s].n_q) with positions 0.. */
typedef struct rl_qwen2_run {
    int64_t max_rows, max_seqs, max_len, chunk;
    int threads;
    void *saved, *fwd, *bwd;       /* the workspaces (sizes from rl_qwen2_ws_size) */
    /* The fields below are optional: a zero-initialised tail keeps the plain
       behaviour (positional initialisers of the fields above stay valid). */
    int forward_only;              /* 1: no backward will run on this layout: every layer reuses
                                      one slot of activations (size with rl_qwen2_ws_size_run;
                                      saved must then only live through the forward) */
    int no_param_grad;             /* 1: backward produces input gradients (image_grad) only; the
                                      parameter set's gradient is not accumulated */
    /* Image splice (rl_qwen2_splice_images sets these): a packed row whose
       token is image_pad_id takes the next row of image_embeds instead of its
       token embedding. */
    int splice;                    /* 0: no splice */
    int32_t image_pad_id;
    const float *image_embeds;     /* [n_image_rows, hidden] */
    int64_t n_image_rows;
    float *image_grad;             /* backward ACCUMULATES d(image_embeds) here when non-NULL */
} rl_qwen2_run;

/* Workspace sizes for the layout r describes (max_* , chunk, threads and
   forward_only; the pointers are not read). forward_only gives saved much
   smaller (one layer of activations instead of n_layers) and bwd = 0. */
int rl_qwen2_ws_size_run(const rl_qwen2_config *c, const rl_qwen2_run *r, rl_qwen2_ws_bytes *out, rl_error *err);

/* Packs right-padded tokens [B, T] with lengths [B] into the saved workspace.
 * Checks lengths (0..T, at most max_len) and token ids (in the vocabulary);
 * errors name the row and position. */
int rl_qwen2_pack(const rl_qwen2 *m, const rl_qwen2_run *r, const int32_t *tokens, const int32_t *lengths,
                  int64_t B, int64_t T, rl_error *err);
/* Number of packed rows of the last rl_qwen2_pack. */
int64_t rl_qwen2_rows(const rl_qwen2_run *r);

/* ---- shared prefixes (RL: G samples of one prompt) ------------------------
 * rl_qwen2_pack_shared packs each group of `group` consecutive rows (which
 * must share their first prompt_len tokens, with prompt_len equal inside
 * the group and <= the row's length) as ONE copy of the prompt followed by
 * every row's response: M = sum over groups (p + sum of response lengths)
 * rows instead of sum of lengths. A response token at position p + j sees
 * the prompt's keys plus its own first j + 1; the log-prob / entropy of a
 * response's first token comes from the prompt's last hidden state through
 * an extra LM-head row (one per response), so logp / entropy have
 * rl_qwen2_lm_rows() = M + X rows and backward takes gradients of that
 * size. The results equal those of rl_qwen2_pack on the same rows (up to
 * float summation order); the prompt's rows get the sum of the gradients of
 * every row of the group. Errors name the row and position. group = 1 is
 * allowed (prompt and response as two pieces of one sequence). */
int rl_qwen2_pack_shared(const rl_qwen2 *m, const rl_qwen2_run *r, const int32_t *tokens, const int32_t *lengths,
                         const int32_t *prompt_len, int64_t B, int64_t T, int64_t group, rl_error *err);

/* Where the positions of batch row b live after either pack: positions
 * [0, n_pre) at packed rows pre_row.. (with sharing, the group's one prompt
 * copy; rl_qwen2_pack puts the whole row here), positions
 * [n_pre, n_pre + n_resp) at packed rows resp_row... */
typedef struct rl_qwen2_row {
    int64_t pre_row, n_pre;
    int64_t resp_row, n_resp;
    int64_t first_lm;  /* LM-head row predicting position n_pre (the first response token): an extra row
                          >= M when the prompt is shared; -1 when n_pre == 0 or n_resp == 0 */
    int shared;        /* 1: the prompt rows are owned by an earlier row of the group */
} rl_qwen2_row;

/* The row map of the last pack ([B] entries; *n_rows = B). */
const rl_qwen2_row *rl_qwen2_row_map(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t *n_rows);
/* Rows of rl_qwen2_logp / rl_qwen2_entropy and of backward's gradients:
 * M packed rows plus the extra first-token rows of a shared pack. */
int64_t rl_qwen2_lm_rows(const rl_qwen2_run *r);

/* Packed row holding position t of a mapped row (0 <= t < n_pre + n_resp). */
static inline int64_t rl_qwen2_pos_row(const rl_qwen2_row *w, int64_t t) {
    return t < w->n_pre ? w->pre_row + t : w->resp_row + (t - w->n_pre);
}
/* LM-head row whose log-prob / entropy belong to position t (1 <= t <
 * n_pre + n_resp): the row of position t-1, or first_lm at t = n_pre. */
static inline int64_t rl_qwen2_lm_row(const rl_qwen2_row *w, int64_t t) {
    if (t < w->n_pre) return w->pre_row + t - 1;
    if (t == w->n_pre) return w->first_lm;
    return w->resp_row + (t - w->n_pre - 1);
}

/* ---- image splice --------------------------------------------------------
 * Prompts carry one <|image_pad|> token per merged image patch; the vision
 * encoder's embeddings replace those tokens' embeddings, row k of
 * image_embeds for the k-th pad of the batch (rows in batch order, pads in
 * text order). Shared by the teacher-forced path and the sampler's prefill. */

/* Number of tokens equal to pad_id among the valid tokens of a right-padded
   batch (0 when pad_id < 0). */
int64_t rl_qwen2_count_pads(const int32_t *tokens, const int32_t *lengths, int64_t B, int64_t T, int32_t pad_id);
/* Input embeddings of n tokens into out [n, hidden]: the token's embedding
   row, except that a token equal to image_pad_id (>= 0) takes row
   *image_next of image_embeds [n_image_rows, hidden], and *image_next
   advances. bf16 = 1 rounds the token rows to bf16 (as the sampler's bf16
   decoding does). Running out of image rows is an error
   naming the counts; token ids are not checked (callers have). */
int rl_qwen2_embed_rows(const rl_qwen2 *m, const int32_t *tokens, int64_t n, int32_t image_pad_id,
                        const float *image_embeds, int64_t n_image_rows, int64_t *image_next, int bf16, float *out,
                        rl_error *err);
/* After rl_qwen2_pack: arms the splice of image_embeds [n_image_rows,
   hidden] into the next forward (and its backward, which accumulates
   d(image_embeds) into r->image_grad when the caller sets it). The number of
   pad tokens in the batch must equal n_image_rows (one error line with
   both counts otherwise). pad_id < 0 disarms it (then n_image_rows must be 0).
   After rl_qwen2_pack_shared, rows are still numbered as if every batch row
   were packed whole (row k = the batch's k-th pad); a group's one prompt copy
   takes its FIRST row's image rows, the other rows' copies are not read and
   get no gradient (they must hold the same embeddings for the result to equal
   the unshared one, as they do when one encoder output is repeated G times). */
int rl_qwen2_splice_images(const rl_qwen2 *m, rl_qwen2_run *r, int32_t pad_id, const float *image_embeds,
                           int64_t n_image_rows, rl_error *err);

/* Forward over the packed batch; results stay in the saved workspace. Per
 * packed row r (sequence s, position t): logp[r] = log p(token_{t+1} |
 * tokens_<=t) and ent[r] the entropy of that distribution (both 0 for the
 * last position of a sequence, which predicts nothing; with shared prompts
 * also for a prompt's last row, whose predictions are the extra rows). */
int rl_qwen2_forward(const rl_qwen2 *m, const rl_qwen2_run *r, rl_error *err);
/* Backward from per-row gradients of logp and ent (either may be NULL;
 * rl_qwen2_lm_rows entries), ACCUMULATING into m->params->grad. Needs the
 * forward's saved workspace. */
int rl_qwen2_backward(const rl_qwen2 *m, const rl_qwen2_run *r, const float *glogp, const float *gent,
                      rl_error *err);
/* Views into the saved workspace after a forward (packed rows): */
const float *rl_qwen2_logp(const rl_qwen2 *m, const rl_qwen2_run *r);          /* [rl_qwen2_lm_rows] */
const float *rl_qwen2_entropy(const rl_qwen2 *m, const rl_qwen2_run *r);       /* [rl_qwen2_lm_rows] */
const float *rl_qwen2_block_output(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t j); /* [M, d] */
const float *rl_qwen2_final_hidden(const rl_qwen2 *m, const rl_qwen2_run *r);  /* [M, d], after the final norm */
/* The packing of the last rl_qwen2_pack: sequence descriptors (only
 * sequences with length > 0) and, for each, its batch row. */
const rl_attn_seq *rl_qwen2_seqs(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t *n_seqs,
                                 const int32_t **batch_row);

/* ---- KV-cache path (sampling) ------------------------------------------ */

/* Scratch floats rl_qwen2_decode needs for at most max_rows new tokens over
 * max_seqs sequences, max_q new tokens and max_keys keys per sequence. */
size_t rl_qwen2_decode_floats(const rl_qwen2_config *c, int64_t max_rows, int64_t max_seqs, int64_t max_q,
                              int64_t max_keys, int threads);
/* Runs seqs[s].n_q new tokens (tokens[q_row ..], rows consecutive from 0) per
 * sequence at positions pos0.. through the model with a KV cache:
 * kcache/vcache are [n_layers, cache_rows, n_kv_heads*head_dim]; the new
 * keys/values go to rows k_row+pos0+i and queries attend to rows
 * k_row .. k_row+pos0+i. The matrices come from the decode weights
 * (rl_qwen2_decode_weights, whose dtype must match bf16); bf16 = 1 also
 * rounds the token embeddings to bf16; norms and biases stay f32. Writes the logits of each sequence's last new token
 * to logits [n_seqs, vocab]. rope_cos/sin: rl_rope_table for max_keys
 * positions. ws: rl_qwen2_decode_floats(...) floats. */
int rl_qwen2_decode(const rl_qwen2 *m, float *kcache, float *vcache, int64_t cache_rows, const int32_t *tokens,
                    const rl_attn_seq *seqs, int64_t n_seqs, int64_t max_rows, int64_t max_q, int64_t max_keys,
                    const float *rope_cos, const float *rope_sin, int bf16, int threads, float *ws,
                    float *logits, rl_error *err);

/* ---- building blocks ---------------------------------------------------- */

/* y = rmsnorm(x) * w per row; writes rstd[row] when non-NULL. */
void rl_qwen2_rmsnorm(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t d,
                      float eps);
/* Backward: dx (written, or added when accumulate) and dw (accumulated). */
void rl_qwen2_rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                               float *dw, int64_t rows, int64_t d, int accumulate);

#endif
