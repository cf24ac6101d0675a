/* Internals shared by the runtime/tokenizer_*.c files (not a public API). */
#ifndef RL_TOKENIZER_IMPL_H
#define RL_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* The Qwen2 pre-tokenizer regex (also what the trainer writes). */
#define TOK_QWEN2_REGEX \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* GPT-2's, used by ByteLevel when use_regex is true. */
#define TOK_GPT2_REGEX \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* ---- UTF-8 and byte-level helpers (tokenizer_utf8.c) ---- */

/* GPT-2's reversible byte <-> printable code point map. */
extern uint32_t tok_byte_to_cp[256];
void tok_byte_map_init(void);
int  tok_cp_to_byte(uint32_t cp); /* -1 if cp is not in the map */
/* Decodes one code point from valid UTF-8; returns its length. */
int tok_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);
/* Length of the last code point of valid UTF-8 s[0..n) (n > 0). */
int tok_utf8_prev_len(const uint8_t *s, size_t n);
int tok_utf8_put(uint32_t cp, uint8_t *out); /* returns 1..4 */
/* 1 if s[0..n) is valid UTF-8. */
int tok_utf8_valid(const uint8_t *s, size_t n);
/* Lossy conversion: each maximal invalid subsequence becomes U+FFFD. out needs
 * room for 3*n bytes; returns the output length. */
size_t tok_utf8_lossy(const uint8_t *s, size_t n, uint8_t *out);
/* Rust's char::is_whitespace / regex \w, used by added-token lstrip/rstrip/single_word. */
int tok_cp_is_space(uint32_t cp);
int tok_cp_is_word(uint32_t cp);

/* ---- hash tables ---- */

uint64_t tok_hash(const void *p, size_t n);

/* String -> id over the tokenizer's string pool (open addressing). */
typedef struct tok_strmap {
    uint64_t *slots;
    size_t mask;
} tok_strmap;

/* (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_slot {
    uint64_t key; /* ((left+1) << 32) | (right+1); 0 = empty */
    int32_t rank, id;
} tok_merge_slot;

/* Bounded cache of pre-token -> ids: all memory allocated up front; cleared when full. */
typedef struct tok_cache_slot {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, ids_len;
} tok_cache_slot;

typedef struct tok_cache {
    tok_cache_slot *slots;
    size_t mask, used, max_used;
    uint8_t *keys;
    size_t keys_len, keys_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
} tok_cache;

/* ---- the tokenizer ---- */

typedef struct tok_added {
    int32_t id;
    char *content;
    size_t len;
    int special, lstrip, rstrip, normalized, single_word;
} tok_added;

enum { TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_PREV, TOK_SPLIT_NEXT, TOK_SPLIT_CONTIGUOUS };

typedef struct tok_pretok {
    int prefix_space;       /* ByteLevel add_prefix_space: prepend " " to each piece lacking one */
    pcre2_code *re;         /* NULL: no split */
    pcre2_match_data *md;
    int jit;
    int behavior, invert;
} tok_pretok;

typedef struct tok_span {
    size_t off, len;
} tok_span;

#define TOK_MAX_NORM 8
#define TOK_MAX_PRETOK 8

struct rl_tokenizer {
    char *name;
    /* Every id's tokenizer.json spelling, in one pool. */
    int32_t n_ids;
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *tok_off, *tok_len;    /* UINT32_MAX offset: no token for this id */
    uint8_t *kind;                  /* 0 none, 1 model vocab, 2 added normal, 3 added special */
    /* Per id, the bytes the decoder produces. */
    uint8_t *dec;
    uint32_t *dec_off, *dec_len;

    tok_strmap vocab;               /* model vocabulary by spelling */
    tok_merge_slot *merges;
    size_t merge_mask, n_merges;

    int byte_level;
    int32_t byte_id[256];           /* byte-level: id of each single byte (-1 if absent) */
    int32_t unk_id;
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_fb_id[256];        /* byte_fallback: id of "<0xAB>" */

    tok_added *added;
    int n_added;
    int32_t *special_ids;
    int n_special;
    uint8_t first_raw[256], first_norm[256]; /* first bytes of the added tokens of each pass */
    int has_norm_added;

    int n_norm;
    int norm_opts[TOK_MAX_NORM];     /* utf8proc option sets applied in order */

    tok_pretok pre[TOK_MAX_PRETOK];
    int n_pre;
    pcre2_jit_stack *jit_stack;
    pcre2_match_context *mctx;

    int32_t tpl_before[8], tpl_after[8];
    int n_tpl_before, n_tpl_after, has_template;

    int decoder_byte_level;         /* else tokens are joined with " " (HF without decoder) */
    int32_t pad_id;

    /* Scratch (grown on demand, sized up front by rl_tokenizer_reserve). */
    uint8_t *clean;   size_t clean_cap;    /* lossy-UTF-8 input */
    uint8_t *norm;    size_t norm_cap;     /* normalized segment */
    uint8_t *norm2;   size_t norm2_cap;    /* second buffer for normalizer sequences */
    int32_t *cps;     size_t cps_cap;      /* utf8proc work buffer */
    uint8_t *arena;   size_t arena_cap, arena_len; /* pre-token pieces */
    tok_span *pa, *pb, *pm; size_t pa_cap, pb_cap, pm_cap; /* pieces in, out; regex matches */
    uint8_t *pm_match; size_t pm_match_cap;
    int32_t *sym_id;  int32_t *sym_prev, *sym_next; size_t sym_cap; /* BPE symbols of a word */
    uint64_t *heap;   size_t heap_cap;                                /* (rank << 32 | position) */
    rl_tok_ids ids;                        /* encode_into staging */
    uint8_t *dbytes;  size_t dbytes_cap;   /* decode staging */

    tok_cache cache;
};

/* tokenizer_bpe.c */
int  tok_strmap_build(rl_tokenizer *t, rl_error *err);
int32_t tok_strmap_get(const rl_tokenizer *t, const char *s, size_t n);
int  tok_merges_alloc(rl_tokenizer *t, size_t n, rl_error *err);
void tok_merges_put(rl_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id);
int  tok_cache_init(tok_cache *c, rl_error *err);
void tok_cache_free(tok_cache *c);
/* Encodes one pre-token (raw bytes) by BPE, appending ids to out. */
int  tok_bpe_word(rl_tokenizer *t, const uint8_t *s, size_t n, rl_tok_ids *out, rl_error *err);
/* Sizes the merge engine's work arrays for pieces of up to n bytes. */
int  tok_bpe_reserve(rl_tokenizer *t, size_t n, rl_error *err);

/* tokenizer_pretok.c */
int  tok_regex_compile(rl_tokenizer *t, tok_pretok *p, const char *pattern, int literal, rl_error *err);
/* Splits spans of t->arena by every pre-tokenizer step; the result is in *spans. */
int  tok_pretokenize(rl_tokenizer *t, size_t n_in, tok_span **spans, size_t *n_out, rl_error *err);
/* Applies the normalizers to s; *out points to s itself (no normalizer) or to
 * a tokenizer buffer. */
int  tok_normalize(rl_tokenizer *t, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_len,
                   rl_error *err);

/* tokenizer_encode.c */
int tok_ids_push(rl_tok_ids *v, int32_t id);
int tok_grow(void **p, size_t *cap, size_t need, size_t elem);

#endif
