/* Internal layout of a graph, shared by graph.c (building), compile.c
 * (validation and schedule), planner.c (buffer placement) and scheduler.c (runs). */
#ifndef RL_GRAPH_IMPL_H
#define RL_GRAPH_IMPL_H

#include "graph.h"

typedef enum rl_step_kind { RL_STEP_FWD = 0, RL_STEP_BWD, RL_STEP_OPT } rl_step_kind;

typedef struct rl_step {
    rl_step_kind kind;
    rl_node *node;
    int phase;
    int zero_begin, zero_count;  /* gradient buffers to clear before this step (into zero_list) */
} rl_step;

typedef enum rl_buf_kind { RL_BUF_OUTPUT = 0, RL_BUF_GRAD, RL_BUF_WORKSPACE } rl_buf_kind;

typedef struct rl_buffer {
    rl_buf_kind kind;
    rl_node *node;
    int port;          /* output port, or workspace index */
    size_t bytes;      /* rounded up to the arena alignment */
    int first, last;   /* schedule steps (inclusive) */
    int planned;       /* 0: allocated on its own (graph outputs, persistent workspace) */
    int group;         /* buffers sharing one block (in-place); the group's leader index */
    int seed;          /* gradient of a loss: set to 1 at its first step */
    size_t offset;     /* in the arena (planned groups) */
    void *data;
} rl_buffer;

struct rl_graph {
    char *name;
    rl_node **nodes;
    int n_nodes, cap_nodes;
    char **phases;
    int n_phases;

    /* Graph outputs marked by the caller: node id * RL_MAX_PORTS + port. */
    int *marked;
    int n_marked, cap_marked;

    /* Compiled state. */
    int compiled;
    int unplanned;
    rl_node **order;               /* topological order */
    rl_step *steps;
    int n_steps;
    int *phase_first, *phase_last; /* step range of each phase (inclusive; last < first if empty) */
    rl_buffer *bufs;
    int n_bufs;
    int *out_buf;                  /* node id * RL_MAX_PORTS + port -> buffer, or -1 */
    int *grad_buf;                 /* same for the gradient of that output */
    int *ws_buf;                   /* node id * RL_MAX_WORKSPACE + index -> buffer */
    rl_shape *max_shape;           /* node id * RL_MAX_PORTS + port -> inferred maximum shape */
    int *zero_list;
    int n_zero;
    void *arena;
    rl_plan_stats stats;
};

#define RL_ARENA_ALIGN 64

int rl_compile_schedule(rl_graph *g, rl_error *err);   /* compile.c */
int rl_plan_buffers(rl_graph *g, rl_error *err);       /* planner.c */
void rl_graph_release_compiled(rl_graph *g);            /* planner.c */
int rl_plan_trace_enabled(void);

#endif
