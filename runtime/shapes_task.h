/* The procedural multimodal task (docs/tasks.md, "Shapes"): a rendered
 * picture of coloured shapes on a plain background and a question whose
 * answer needs the picture (count shapes of a colour and/or kind, compare two
 * counts, add/subtract/multiply counts), with an expert solution in the
 * multimodal reference format <think>...</think><answer>N</answer>.
 *
 * Problem `index` of a split is a pure function of (seed, split, index).
 * Train and test are disjoint by construction: the split of a scene is
 * decided by a fixed hash of its canonical content, the sorted multiset of its
 * shapes' (size, colour, kind) - not positions, background, question or
 * seed - and generation rejects the other split's scenes, so no test
 * collection of shapes ever appears in train, in any layout, under any seed.
 * Generation and drawing do not allocate. */
#ifndef RL_SHAPES_TASK_H
#define RL_SHAPES_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "arith_task.h" /* rl_split */
#include "error.h"

#define RL_SHAPES_MAX 12
enum { RL_SHAPE_CIRCLE = 0, RL_SHAPE_SQUARE, RL_SHAPE_TRIANGLE, RL_SHAPE_STAR, RL_SHAPE_KINDS };
enum { RL_COLOR_RED = 0, RL_COLOR_GREEN, RL_COLOR_BLUE, RL_COLOR_YELLOW, RL_COLORS };
enum { RL_SIZE_SMALL = 0, RL_SIZE_LARGE, RL_SIZES };

/* Question types. A "set" is shapes of one colour, one kind, or both. */
typedef enum rl_shapes_qtype {
    RL_SQ_COUNT = 0,  /* how many shapes of set A */
    RL_SQ_TOTAL,      /* how many shapes in all */
    RL_SQ_MORE,       /* how many more A than B (A has more) */
    RL_SQ_SUM,        /* count(A) + count(B) */
    RL_SQ_PRODUCT,    /* count(A) * count(B) */
    RL_SQ_TYPES
} rl_shapes_qtype;

typedef struct rl_shapes_cfg {
    int width, height;         /* canvas (pixels), 32..1024 */
    int min_shapes, max_shapes;/* 1..RL_SHAPES_MAX */
    int kinds;                 /* kinds used: 3 (circle, square, triangle) or 4 (+ star) */
    int test_percent;          /* share of scenes that are test, 1..50 */
    uint64_t seed;             /* content seed (the split rule ignores it) */
} rl_shapes_cfg;

typedef struct rl_shapes_item {
    int kind, color, size;
    float cx, cy, r;           /* centre and circumradius in pixels */
} rl_shapes_item;

typedef struct rl_shapes_set { int color, kind; } /* -1 = any */ rl_shapes_set;

typedef struct rl_shapes_problem {
    int width, height;         /* the canvas it was drawn for (positions in the solution) */
    int n;
    rl_shapes_item shape[RL_SHAPES_MAX];
    int background;            /* index into the background palette */
    rl_shapes_qtype qtype;
    rl_shapes_set a, b;
    int64_t answer;
    int wording;
} rl_shapes_problem;

/* Defaults: 112x112, 2-6 shapes, 4 kinds, 10% test. */
void rl_shapes_cfg_default(rl_shapes_cfg *c);
int rl_shapes_cfg_check(const rl_shapes_cfg *c, rl_error *err);

int rl_shapes_generate(const rl_shapes_cfg *c, rl_split split, uint64_t index, rl_shapes_problem *p, rl_error *err);
rl_split rl_shapes_split_of(const rl_shapes_problem *p, int test_percent);

/* Draws the scene into rgb [height, width, 3] (8-bit, anti-aliased by 4x4
 * supersampling). */
void rl_shapes_render(const rl_shapes_cfg *c, const rl_shapes_problem *p, uint8_t *rgb);

/* Number of shapes in a set. */
int rl_shapes_count(const rl_shapes_problem *p, rl_shapes_set s);

/* Texts, NUL-terminated into buf; each returns the length or -1 when cap is
 * too small. Canonical: "large red circle,small blue star" (sorted). */
int rl_shapes_canonical(const rl_shapes_problem *p, char *buf, size_t cap);
int rl_shapes_prompt(const rl_shapes_problem *p, char *buf, size_t cap);
int rl_shapes_solution(const rl_shapes_problem *p, char *buf, size_t cap);
int rl_shapes_answer(const rl_shapes_problem *p, char *buf, size_t cap);

/* Upper bounds (bytes, without NUL) of the three texts. */
void rl_shapes_max_lengths(const rl_shapes_cfg *c, size_t *prompt, size_t *answer, size_t *solution);

const char *rl_shapes_kind_name(int kind);   /* "circle" */
const char *rl_shapes_color_name(int color); /* "red" */

#endif
