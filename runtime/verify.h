/* The outcome verifier: turns a model response and a gold answer into a
 * reward, with the reference rules of DESIGN.md section 2 (see
 * docs/verifier.md for every rule and its reason name).
 *
 * Nothing here allocates: the graph calls it from a node's forward, where the
 * steady state must not touch the heap, so every buffer is a fixed-size one on
 * the stack (answers longer than RL_VERIFY_MAX_ANSWER bytes compare as raw
 * bytes only). */
#ifndef RL_VERIFY_H
#define RL_VERIFY_H

#include <stddef.h>

/* Separates acceptable alternatives inside one gold answer string (ASCII unit
 * separator): a JSONL answer given as a list travels as "a\x1fb\x1fc". */
#define RL_VERIFY_ALT_SEP '\x1f'

#define RL_VERIFY_MAX_ANSWER 2048 /* longest answer (bytes) that is normalised */
#define RL_VERIFY_MAX_BOXES 5     /* this many boxes or more -> too_many_boxes */

typedef enum rl_verify_kind {
    RL_VERIFY_BOXED = 0,  /* text: last \boxed{...} */
    RL_VERIFY_VISION,     /* multimodal: <think>..</think><answer>..</answer> */
} rl_verify_kind;

typedef enum rl_verify_reason {
    RL_VR_CORRECT = 0,
    RL_VR_WRONG,          /* boxed (or answered) but not equal to the gold answer */
    RL_VR_NO_BOX,         /* no \boxed at all */
    RL_VR_TRUNCATED,      /* the response did not end with the end token */
    RL_VR_TOO_MANY_BOXES, /* RL_VERIFY_MAX_BOXES or more \boxed */
    RL_VR_BAD_BOX,        /* the last \boxed is unclosed or empty */
    RL_VR_NO_ANSWER,      /* vision: no <answer>...</answer> to read */
    RL_VR_COUNT
} rl_verify_reason;

typedef struct rl_verify_opts {
    rl_verify_kind kind;
    double partial;       /* reward for a boxed but wrong answer (boxed kind; default 0.5) */
    double format_bonus;  /* vision: added when the format rule holds (default 0.5) */
    double accuracy;      /* vision: added when the answer is correct (default 1) */
} rl_verify_opts;

typedef struct rl_verify_result {
    double reward;
    int correct;          /* 1 when the answer equals the gold answer */
    int format_ok;        /* vision: the format rule held */
    rl_verify_reason reason;
} rl_verify_result;

void rl_verify_opts_default(rl_verify_opts *o);
const char *rl_verify_reason_name(rl_verify_reason r);
/* Parses "boxed"/"vision"; -1 if unknown. */
int rl_verify_kind_parse(const char *s, rl_verify_kind *out);

/* The whole rule. `response` need not be NUL-terminated (n bytes; a NUL ends
 * it early). `finished` is 0 when the response was truncated. `gold` may hold
 * several alternatives separated by RL_VERIFY_ALT_SEP. */
void rl_verify(const char *response, size_t n, const char *gold, size_t gold_n, int finished,
               const rl_verify_opts *o, rl_verify_result *res);

/* Box extraction: counts the \boxed occurrences and finds the content of the
 * last one ("\boxed{...}" with nested braces, or "\boxed X" up to the next
 * space or '$'). Returns the count; start and len are set when the last box is
 * well formed, else *len = 0 and *start = (size_t)-1. */
int rl_verify_last_box(const char *s, size_t n, size_t *start, size_t *len);

/* Vision format: whether s is <think>...</think> then <answer>...</answer>
 * (only whitespace around and between), and the span of the answer content
 * (also found when the format rule fails; *len = 0 and *start = (size_t)-1 if
 * there is no <answer>...</answer>). */
int rl_verify_vision_format(const char *s, size_t n, size_t *start, size_t *len);

/* Equivalence of one answer with a gold answer (alternatives allowed). */
int rl_answer_equal(const char *ans, size_t n, const char *gold, size_t gold_n);

/* The canonical text of an answer (the normalisation step alone): writes at
 * most cap-1 bytes plus a NUL; returns the length, or -1 if it does not fit. */
int rl_answer_normalize(const char *s, size_t n, char *out, size_t cap);

/* What the normaliser makes of an answer, for the coverage report. */
typedef enum rl_answer_class {
    RL_ANS_EMPTY = 0,
    RL_ANS_NUMBER,     /* one number (integer, decimal, fraction, scientific) */
    RL_ANS_TUPLE,      /* tuple, interval, list or union whose elements are all numbers */
    RL_ANS_EXPR,       /* anything else: compared as canonical text */
} rl_answer_class;

rl_answer_class rl_answer_classify(const char *s, size_t n);
const char *rl_answer_class_name(rl_answer_class c);

#endif
