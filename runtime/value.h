/* Option values handed from a script (or a C test) to a node's init, and the
 * reference-counted objects (parameter sets, models, tokenizers) that options
 * may carry. The core knows nothing of any particular object type. */
#ifndef RL_VALUE_H
#define RL_VALUE_H

#include <stdint.h>

#include "error.h"

typedef enum rl_value_kind {
    RL_VAL_NONE = 0,
    RL_VAL_NUMBER,   /* double */
    RL_VAL_INT,      /* int64 (a Lua integer, or a number with no fraction) */
    RL_VAL_BOOL,
    RL_VAL_STRING,
    RL_VAL_NUMBERS,  /* list of doubles */
    RL_VAL_STRINGS,  /* list of strings */
    RL_VAL_OBJECT,   /* rl_object */
} rl_value_kind;

typedef struct rl_object {
    const char *type;            /* "params", "qwen2", "tokenizer", "flow", ... (static string) */
    void *ptr;
    void (*destroy)(void *ptr);
    int refs;
    /* The parameter set (rl_params *) an object owns, if any: a model object
       sets it so `optimizer{params = model}` and friends can reach its weights. */
    void *params;
} rl_object;

rl_object *rl_object_new(const char *type, void *ptr, void (*destroy)(void *ptr)); /* refs = 1 */
void rl_object_retain(rl_object *o);
void rl_object_release(rl_object *o);       /* destroys at 0 */

typedef struct rl_value {
    rl_value_kind kind;
    double num;      /* NUMBER, INT (also mirrored here), BOOL (0/1) */
    int64_t i;       /* INT */
    char *str;       /* STRING (owned) */
    double *nums;    /* NUMBERS (owned) */
    char **strs;     /* STRINGS (owned) */
    int n;           /* length of nums/strs */
    rl_object *obj;  /* OBJECT (retained) */
} rl_value;

/* A small owned key -> value list: a node's options. */
typedef struct rl_opts {
    int n, cap;
    char **keys;
    rl_value *vals;
} rl_opts;

void rl_opts_init(rl_opts *o);
void rl_opts_free(rl_opts *o);
/* The setters copy (strings, lists) or retain (objects); a key set twice keeps the last. */
int rl_opts_set_number(rl_opts *o, const char *key, double v);
int rl_opts_set_int(rl_opts *o, const char *key, int64_t v);
int rl_opts_set_bool(rl_opts *o, const char *key, int v);
int rl_opts_set_string(rl_opts *o, const char *key, const char *v);
int rl_opts_set_numbers(rl_opts *o, const char *key, const double *v, int n);
int rl_opts_set_strings(rl_opts *o, const char *key, const char *const *v, int n);
int rl_opts_set_object(rl_opts *o, const char *key, rl_object *obj);
const rl_value *rl_opts_get(const rl_opts *o, const char *key); /* NULL if absent */
int rl_opts_copy(rl_opts *dst, const rl_opts *src);

const char *rl_value_kind_name(rl_value_kind k);

/* Levenshtein distance, for "did you mean" suggestions. */
int rl_edit_distance(const char *a, const char *b);

#endif
