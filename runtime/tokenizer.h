/* Hugging Face `tokenizer.json` byte-level BPE (the GPT-2 / Qwen2 family):
 * loading, encoding, decoding, chat templates and a BPE trainer that writes
 * the same format. The ids match the Hugging Face `tokenizers` library; see
 * docs/tokenizer.md for what is supported and the few documented differences.
 *
 * A tokenizer is NOT thread-safe: encoding uses scratch buffers and a cache
 * owned by the tokenizer object. Use one tokenizer per thread. */
#ifndef RL_TOKENIZER_H
#define RL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct rl_tokenizer rl_tokenizer;

/* A growable id vector (rl_malloc'd; free with rl_tok_ids_free). */
typedef struct rl_tok_ids {
    int32_t *ids;
    size_t n, cap;
} rl_tok_ids;
void rl_tok_ids_free(rl_tok_ids *v);

/* A growable byte string, always NUL-terminated when non-empty. */
typedef struct rl_tok_text {
    char *s;
    size_t n, cap;
} rl_tok_text;
void rl_tok_text_free(rl_tok_text *v);

/* Loads a tokenizer.json file. Errors name the file and the offending part
 * ("unknown pre-tokenizer type 'Metaspace'", "merge 12: unknown token 'xy'"). */
int  rl_tokenizer_load(const char *path, rl_tokenizer **out, rl_error *err);
/* Same from a JSON string in memory; `name` is used in error messages. */
int  rl_tokenizer_load_json(const char *json, size_t len, const char *name, rl_tokenizer **out, rl_error *err);
void rl_tokenizer_free(rl_tokenizer *t);
/* For rl_object destroy callbacks. */
void rl_tokenizer_destroy(void *t);

/* Sizes the scratch buffers for texts of up to max_bytes, so that encoding and
 * decoding such texts allocates nothing afterwards (the nodes call this in init). */
int rl_tokenizer_reserve(rl_tokenizer *t, size_t max_bytes, rl_error *err);

/* Encodes `len` bytes of text and APPENDS the ids to *out. Invalid UTF-8 is first
 * replaced by U+FFFD (one per maximal invalid subsequence, as a JavaScript or Rust
 * lossy decoder does), since the reference library only sees valid strings.
 * add_special: apply the post-processor's template (e.g. a BOS id), as HF's
 * add_special_tokens=True. Added/special tokens inside the text are always matched. */
int rl_tokenizer_encode(rl_tokenizer *t, const char *text, size_t len, int add_special, rl_tok_ids *out,
                        rl_error *err);
/* Same into a caller buffer of `cap` ids; fails ("needs N tokens, more than CAP")
 * when it does not fit, with *n_out set to the number needed. No allocation once
 * rl_tokenizer_reserve covered the text length. */
int rl_tokenizer_encode_into(rl_tokenizer *t, const char *text, size_t len, int add_special, int32_t *ids,
                             size_t cap, size_t *n_out, rl_error *err);

/* Decodes ids to text (APPENDED to *out); skip_special drops special added tokens.
 * Bytes that do not form valid UTF-8 become U+FFFD, as in Hugging Face. An id
 * outside the vocabulary is an error. */
int rl_tokenizer_decode(rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, rl_tok_text *out,
                        rl_error *err);
/* Same into a caller buffer; NUL-terminated; fails when len+1 > cap unless
 * `truncate`, which cuts at a UTF-8 character boundary. *len_out = bytes written. */
int rl_tokenizer_decode_into(rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char *buf,
                             size_t cap, int truncate, size_t *len_out, rl_error *err);

/* 1 + the largest id (model vocabulary and added tokens). */
int64_t rl_tokenizer_vocab_size(const rl_tokenizer *t);
/* The id of a token given in its tokenizer.json spelling ("<|im_end|>", "Ġthe"); -1 if none. */
int32_t rl_tokenizer_token_id(const rl_tokenizer *t, const char *token);
/* The tokenizer.json spelling of an id; NULL if the id has none. */
const char *rl_tokenizer_id_to_token(const rl_tokenizer *t, int32_t id);
/* Ids of the special added tokens, in tokenizer.json order. */
int rl_tokenizer_special_ids(const rl_tokenizer *t, const int32_t **ids);
/* Padding id: the `padding.pad_id` of the file, else <|endoftext|>, <pad>,
 * <|pad|> or </s> when present, else 0. */
int32_t rl_tokenizer_pad_id(const rl_tokenizer *t);
/* Where the tokenizer was loaded from (for messages). */
const char *rl_tokenizer_name(const rl_tokenizer *t);

/* ---- Chat templates ---- */

/* The default system prompt of the math tasks. */
#define RL_TOK_MATH_SYSTEM "Please reason step by step, and put your final answer within \\boxed{}."

typedef enum rl_tok_template { RL_TOK_PLAIN = 0, RL_TOK_CHAT = 1 } rl_tok_template;
int rl_tok_template_parse(const char *name, rl_tok_template *out); /* "plain" / "chat" */

/* Renders one user turn. CHAT is ChatML as Qwen uses it:
 *   <|im_start|>system\nSYSTEM<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\n
 * (the system block is left out when system is NULL or empty); PLAIN is the user
 * text unchanged. Writes into buf (NUL-terminated); *len_out = bytes needed
 * excluding the NUL; fails when that does not fit in cap. */
int rl_tok_render(rl_tok_template tpl, const char *system, const char *user, size_t user_len, char *buf,
                  size_t cap, size_t *len_out, rl_error *err);
/* Bytes that rl_tok_render needs beyond the user text (plus the NUL). */
size_t rl_tok_render_overhead(rl_tok_template tpl, const char *system);

/* ---- Training ---- */

typedef struct rl_tok_trainer rl_tok_trainer;

typedef struct rl_tok_train_opts {
    int64_t vocab_size;            /* total, special tokens and the 256 bytes included */
    int64_t min_frequency;         /* a pair seen fewer times is never merged (>= 1) */
    const char *const *special;    /* special tokens, given ids 0..n_special-1 */
    int n_special;
} rl_tok_train_opts;

/* The trainer pre-tokenizes like Qwen2 (NFC, the Qwen2 Split regex, ByteLevel). */
int  rl_tok_trainer_new(rl_tok_trainer **out, rl_error *err);
void rl_tok_trainer_free(rl_tok_trainer *tr);
/* Adds a text (counts its pre-tokens). */
int  rl_tok_trainer_feed(rl_tok_trainer *tr, const char *text, size_t len, rl_error *err);
/* Learns the merges and writes tokenizer.json to out_path. */
int  rl_tok_trainer_write(rl_tok_trainer *tr, const rl_tok_train_opts *o, const char *out_path, rl_error *err);

#endif
