/* A graph of nodes: built once (usually by a Lua script through dsl/),
 * validated and planned by rl_graph_compile, then run many times, whole or by
 * named phase. */
#ifndef RL_GRAPH_H
#define RL_GRAPH_H

#include <stdio.h>

#include "node.h"

typedef struct rl_graph rl_graph;

rl_graph *rl_graph_new(const char *name);
void rl_graph_free(rl_graph *g);
const char *rl_graph_name(const rl_graph *g);

/* Adds a node of `type`. `label` may be NULL (then type name, "type_2", ...).
 * `where` is the script location ("file.lua:12") or NULL. `phase` NULL = "main".
 * Options are checked against the type (unknown key -> "did you mean ...",
 * wrong kind, missing required one), then init runs. */
rl_node *rl_graph_add(rl_graph *g, const rl_node_type *type, const char *label, const char *where,
                      const char *phase, const rl_opts *opts, rl_error *err);
/* Same, by registered type name ("unknown node type 'x' (did you mean 'y'?)"). */
rl_node *rl_graph_add_named(rl_graph *g, const char *type_name, const char *label, const char *where,
                            const char *phase, const rl_opts *opts, rl_error *err);

/* Port lookup by name; -1 if absent. */
int rl_node_input_index(const rl_node *n, const char *name);
int rl_node_output_index(const rl_node *n, const char *name);

/* Connects output `src_port` of `src` to input `dst_port` of `dst`. A doubly
 * connected input is an error. */
int rl_graph_connect(rl_graph *g, rl_node *dst, int dst_port, rl_node *src, int src_port, rl_error *err);

/* Marks an output as a graph output: allocated on its own (never reused), so
 * the caller may read it after a run. */
int rl_graph_mark_output(rl_graph *g, rl_node *n, int port, rl_error *err);

typedef struct rl_compile_opts {
    int unplanned;   /* allocate every buffer separately (for checking the planner) */
} rl_compile_opts;

/* Validates (missing inputs, dtype/rank mismatch, cycles, phase order, backward
 * availability), infers shapes, builds the schedule, plans and allocates the
 * arena, finalises parameter sets. Idempotent. */
int rl_graph_compile(rl_graph *g, const rl_compile_opts *opts, rl_error *err);
int rl_graph_compiled(const rl_graph *g);

/* Runs one phase (forward, backward, optimizers of the nodes in it), or every
 * phase in order when phase == NULL. No heap allocation after the first run. */
int rl_graph_run(rl_graph *g, const char *phase, rl_run_ctx *ctx, rl_error *err);

int rl_graph_node_count(const rl_graph *g);
rl_node *rl_graph_node(const rl_graph *g, int i);
rl_node *rl_graph_find(const rl_graph *g, const char *label);
int rl_graph_phase_count(const rl_graph *g);
const char *rl_graph_phase_name(const rl_graph *g, int i);

typedef struct rl_plan_stats {
    size_t arena_bytes;        /* the planned arena */
    size_t naive_bytes;        /* every planned buffer separately */
    size_t lower_bound_bytes;  /* most bytes live at one schedule step */
    size_t unplanned_bytes;    /* graph outputs, persistent workspace (not planned) */
    int n_buffers;
    int n_steps;
    int n_inplace;
} rl_plan_stats;

/* Checkpoint state of every node that has some (optimizer moments, data
   cursors, ...), keyed "label.key". Loading checks every node finds its keys. */
struct rl_state;
int rl_graph_save_state(rl_graph *g, struct rl_state *st, rl_error *err);
int rl_graph_load_state(rl_graph *g, const struct rl_state *st, rl_error *err);
/* Every distinct parameter set used by the graph's nodes. */
int rl_graph_param_sets(const rl_graph *g, rl_params **out, int cap);

const rl_plan_stats *rl_graph_plan_stats(const rl_graph *g);
/* The machine-readable line, then a table of buffers (schedule step, interval, offset, size). */
void rl_graph_print_plan(const rl_graph *g, FILE *f);

#endif
