/* Direct reading of model.vocab and model.merges from tokenizer.json text
 * (see tokenizer_jsonscan.c for why). Internal to the tokenizer. */
#ifndef RL_TOKENIZER_JSONSCAN_H
#define RL_TOKENIZER_JSONSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct tok_jbuf {
    char *p;
    size_t len, cap;
} tok_jbuf;

typedef struct tok_rawtok {
    size_t off, len;  /* decoded spelling in strs (NUL-terminated) */
    int64_t id;       /* -1 when the value is not a small integer */
} tok_rawtok;

typedef struct tok_rawmerge {
    size_t a_off, a_len, b_off, b_len; /* in mstrs */
    size_t str_off;   /* the "a b" string (for messages), SIZE_MAX for other forms */
    int ok;           /* a well-formed pair */
} tok_rawmerge;

typedef struct tok_rawjson {
    tok_jbuf strs, mstrs;
    tok_rawtok *vocab;
    size_t n_vocab, vocab_cap;
    tok_rawmerge *merges;
    size_t n_merges, merges_cap;
    int has_vocab, has_merges;
    size_t vocab_start, vocab_end, merges_start, merges_end; /* value ranges in the text */
} tok_rawjson;

/* Checks the whole document's syntax and reads model.vocab / model.merges. */
int tok_rawjson_scan(const char *text, size_t n, const char *name, tok_rawjson *r, rl_error *err);
void tok_rawjson_free(tok_rawjson *r);

#endif
