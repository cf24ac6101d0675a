/* KV-cache decoding entry points beyond models/qwen2.h: the prefill with an
 * image splice (prompts whose <|image_pad|> positions take rows of a vision
 * encoder's output) used by the sampler node. */
#ifndef RL_QWEN2_DECODE_H
#define RL_QWEN2_DECODE_H

#include "qwen2.h"

/* rl_qwen2_decode, except that a new token equal to image_pad_id (>= 0)
 * takes row *image_next of image_embeds [n_image_rows, hidden] as its input
 * embedding instead of its token embedding, and *image_next advances (rows
 * are consumed in the order of the call's rows). Running out of image rows
 * is one error naming the counts. image_pad_id < 0: plain rl_qwen2_decode. */
int rl_qwen2_decode_img(const rl_qwen2 *m, float *kcache, float *vcache, int64_t cache_rows, const int32_t *tokens,
                        const rl_attn_seq *seqs, int64_t n_seqs, int64_t max_rows, int64_t max_q, int64_t max_keys,
                        const float *rope_cos, const float *rope_sin, int bf16, int threads, float *ws,
                        int32_t image_pad_id, const float *image_embeds, int64_t n_image_rows, int64_t *image_next,
                        float *logits, rl_error *err);

#endif
