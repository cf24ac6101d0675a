/* The procedural text task: multi-step arithmetic word problems with short
 * step-by-step expert solutions ending in \boxed{answer} (docs/tasks.md).
 *
 * A problem is a start value and a chain of operations applied left to right
 * (+, -, *, and / with exact results), told in one of several templates and
 * wordings. Problem `index` of a split is a pure function of (seed, split,
 * index). Train and test are disjoint by construction: a hash of the
 * problem's arithmetic alone (not its wording, not the seed) decides which
 * split it belongs to, and generation rejects the other split's problems, so
 * no test computation ever appears in train, under any wording or seed.
 * Generation does not allocate. */
#ifndef RL_ARITH_TASK_H
#define RL_ARITH_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RL_ARITH_MAX_STEPS 8

enum { RL_ARITH_ADD = 1, RL_ARITH_SUB = 2, RL_ARITH_MUL = 4, RL_ARITH_DIV = 8, RL_ARITH_ALL_OPS = 15 };

typedef enum rl_split { RL_SPLIT_TRAIN = 0, RL_SPLIT_TEST = 1 } rl_split;

typedef struct rl_arith_cfg {
    int min_steps, max_steps;  /* operations per problem, 1..RL_ARITH_MAX_STEPS */
    int64_t max_value;         /* start value and +/- operands in [1, max_value] */
    int max_factor;            /* multipliers and divisors in [2, max_factor] */
    int ops;                   /* RL_ARITH_* bitmask of allowed operations */
    int test_percent;          /* share of the problem space that is test, 1..50 */
    uint64_t seed;             /* content seed (the split rule ignores it) */
} rl_arith_cfg;

typedef struct rl_arith_problem {
    int steps;
    int64_t start;
    char op[RL_ARITH_MAX_STEPS];          /* '+', '-', '*', '/' */
    int64_t operand[RL_ARITH_MAX_STEPS];
    int64_t value[RL_ARITH_MAX_STEPS];    /* running result after each step */
    int frame;                            /* template */
    int wording[RL_ARITH_MAX_STEPS + 2];  /* intro, each step, question */
    int name, item;                       /* person / object choices */
} rl_arith_problem;

/* Defaults: 2-3 steps, numbers up to 30, factors up to 9, all four
 * operations, 10% test (the calibration point of docs/tasks.md). */
void rl_arith_cfg_default(rl_arith_cfg *c);
/* max_value = 10^digits - 1 (digits 1..9). */
int rl_arith_cfg_set_digits(rl_arith_cfg *c, int digits, rl_error *err);
int rl_arith_cfg_check(const rl_arith_cfg *c, rl_error *err);

/* Intermediate results stay in [0, cap]: cap = 10 * max_value (at least 100). */
int64_t rl_arith_value_cap(const rl_arith_cfg *c);

/* Problem `index` of `split`; fails only when the configuration's problem
 * space is too small to find a problem of that split. */
int rl_arith_generate(const rl_arith_cfg *c, rl_split split, uint64_t index, rl_arith_problem *p, rl_error *err);

/* The split a problem's arithmetic belongs to (hash of its canonical text). */
rl_split rl_arith_split_of(const rl_arith_problem *p, int test_percent);

/* Texts, written NUL-terminated into buf; each returns the length, or -1
 * when cap is too small. Canonical: "17-15*3+63" (left to right). */
int rl_arith_canonical(const rl_arith_problem *p, char *buf, size_t cap);
int rl_arith_prompt(const rl_arith_problem *p, char *buf, size_t cap);
int rl_arith_solution(const rl_arith_problem *p, char *buf, size_t cap);  /* "17-15=2. 2*3=6. ... \boxed{69}" */
int rl_arith_answer(const rl_arith_problem *p, char *buf, size_t cap);    /* "69" */

/* Upper bounds (bytes, without the NUL) of the three texts for any problem
 * of this configuration. */
void rl_arith_max_lengths(const rl_arith_cfg *c, size_t *prompt, size_t *answer, size_t *solution);

#endif
