/* The node interface. A node type is a table of function pointers plus
 * declarations of its ports and options; the graph, planner and scheduler
 * drive every node through it and know nothing of any particular type.
 *
 * Life of a node:
 *   init(n)      options are validated against `options` before this is called;
 *                read them with rl_node_opt_*; declare parameters (rl_params_add)
 *                and allocate private state (n->state). May allocate.
 *   infer(n)     parameter sets are finalised (allocated, initialised) and
 *                n->needs_backward is known;
 *                n->in[i] hold the producers' (maximum) shapes and dtypes; set
 *                n->out[j].dtype/shape (maximum shapes) and request workspace
 *                with rl_node_request(). Called once at compile time.
 *   forward(n)   n->in[i].data / n->out[j].data / n->ws[k].data are valid; write
 *                outputs. At run time inputs may be smaller than their maximum
 *                (e.g. fewer tokens): a node may shrink n->out[j].shape, never grow it.
 *                Must not allocate (the steady state allocates nothing).
 *   backward(n)  reads n->grad_out[j] (data NULL where no gradient flows) and
 *                ACCUMULATES into n->grad_in[i] where n->need_grad_in[i], and into
 *                the gradients of its parameter sets.
 *   destroy(n)   frees n->state.
 */
#ifndef RL_NODE_H
#define RL_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "params.h"
#include "tensor.h"
#include "value.h"

#define RL_MAX_PORTS 16
#define RL_MAX_WORKSPACE 16
#define RL_MAX_NODE_PARAMS 4

/* Port flags. */
enum {
    RL_PORT_OPTIONAL = 1u << 0,     /* input may stay unconnected (n->in[i].data == NULL) */
    RL_PORT_NO_GRAD = 1u << 1,      /* input: no gradient flows through it (stop-gradient) */
    RL_PORT_NOT_IN_BACKWARD = 1u << 2, /* input/output: backward does not read it, so the
                                          planner may free it right after forward */
    RL_PORT_ANY_DTYPE = 1u << 3,    /* dtype is not checked */
};

typedef struct rl_port_spec {
    const char *name;
    rl_dtype dtype;
    int rank;            /* required rank, or -1 for any */
    unsigned flags;
    int inplace;         /* outputs only: 1 + index of an input this output may overwrite
                            when that input dies here (same byte size); 0 = never */
    const char *doc;
} rl_port_spec;

typedef struct rl_option_spec {
    const char *name;
    rl_value_kind kind;      /* NUMBER accepts INT; NUMBERS accepts a single number */
    const char *def;         /* default as text ("0.2", "true", "chat", "0.25,0.5,0.75");
                                NULL: the option is required; "" for STRING: empty default */
    const char *doc;
    const char *object_type; /* for OBJECT options: required rl_object type */
} rl_option_spec;

typedef enum rl_ws_kind {
    RL_WS_SCRATCH_FWD = 0, /* live only during this node's forward */
    RL_WS_SCRATCH_BWD,     /* live only during this node's backward */
    RL_WS_SAVED,           /* from this node's forward to its backward */
    RL_WS_PERSISTENT,      /* lives for the whole graph (e.g. a KV cache reused across phases);
                              not planned */
} rl_ws_kind;

typedef struct rl_workspace {
    rl_ws_kind kind;
    size_t bytes;
    void *data;
} rl_workspace;

struct rl_node;
struct rl_run_ctx;
struct rl_state; /* runtime/state.h */

typedef struct rl_node_type {
    const char *name;
    const char *doc;             /* one line for `rlfr nodes` */
    const rl_port_spec *inputs;
    int n_inputs;
    const rl_port_spec *outputs;
    int n_outputs;
    const rl_option_spec *options;
    int n_options;
    unsigned flags;              /* RL_NODE_* below */
    int (*init)(struct rl_node *n, rl_error *err);
    int (*infer)(struct rl_node *n, rl_error *err);
    int (*forward)(struct rl_node *n, struct rl_run_ctx *ctx, rl_error *err);
    int (*backward)(struct rl_node *n, struct rl_run_ctx *ctx, rl_error *err); /* NULL: not differentiable */
    void (*destroy)(struct rl_node *n);
    /* Checkpointing (optional): state that lives outside parameter sets
       (optimizer moments, a data cursor, counters) as named byte blobs. */
    int (*save_state)(struct rl_node *n, struct rl_state *st, rl_error *err);
    int (*load_state)(struct rl_node *n, const struct rl_state *st, rl_error *err);
} rl_node_type;

enum {
    /* An optimizer: input 0 is a scalar loss; its "params" option names the set it
       updates. The scheduler seeds d(loss) = 1 and runs it after backward. */
    RL_NODE_OPTIMIZER = 1u << 0,
};

/* What a run step knows: seed and counters for the RNG, thread count, metrics. */
typedef struct rl_metric {
    const char *node;   /* node label (owned by the graph) */
    const char *name;   /* static string supplied by the node */
    double value;
} rl_metric;

#define RL_MAX_METRICS 256

typedef struct rl_run_ctx {
    uint64_t seed;
    int64_t step;       /* training step, for RNG keys and schedules */
    int64_t repeat;     /* how many times the current phase already ran this step */
    int threads;
    int n_metrics;
    rl_metric metrics[RL_MAX_METRICS];
} rl_run_ctx;

/* Records a scalar for this step (later values of the same node/name overwrite). */
void rl_metric_set(rl_run_ctx *ctx, const struct rl_node *n, const char *name, double value);

typedef struct rl_node {
    const rl_node_type *type;
    struct rl_graph *graph;
    int id;
    char *label;             /* unique in the graph: user "name" or type name + counter */
    char *where;             /* "script.lua:12" where the script created it */
    char *phase;             /* phase name ("main" by default) */
    rl_opts opts;

    /* Inputs: producers and the tensors seen by this node (refreshed before each call). */
    struct rl_node *src[RL_MAX_PORTS];
    int src_port[RL_MAX_PORTS];
    rl_tensor in[RL_MAX_PORTS];
    rl_tensor grad_in[RL_MAX_PORTS];   /* where to accumulate d(loss)/d(input) */
    int need_grad_in[RL_MAX_PORTS];

    rl_tensor out[RL_MAX_PORTS];
    rl_tensor grad_out[RL_MAX_PORTS];  /* d(loss)/d(output); data NULL if none flows */

    rl_workspace ws[RL_MAX_WORKSPACE];
    int n_ws;

    rl_params *params[RL_MAX_NODE_PARAMS]; /* sets this node reads (and whose grads it fills) */
    int n_params;

    int needs_backward;      /* set by the graph at compile time, BEFORE infer, so infer
                                requests saved workspace only when backward will run */
    void *state;             /* the node type's private data */
    uint64_t opts_given;     /* bit k: option k of the type was given by the script */
} rl_node;

/* Option access (after validation every declared option has a value). */
double       rl_node_opt_number(const rl_node *n, const char *key);
int64_t      rl_node_opt_int(const rl_node *n, const char *key);
int          rl_node_opt_bool(const rl_node *n, const char *key);
const char  *rl_node_opt_string(const rl_node *n, const char *key);
const double *rl_node_opt_numbers(const rl_node *n, const char *key, int *count);
const char *const *rl_node_opt_strings(const rl_node *n, const char *key, int *count);
rl_object   *rl_node_opt_object(const rl_node *n, const char *key); /* NULL if unset */
/* Whether the script gave the option explicitly (not the default). */
int          rl_node_opt_given(const rl_node *n, const char *key);

/* Requests a workspace buffer during infer; returns its index in n->ws, or -1. */
int rl_node_request(rl_node *n, rl_ws_kind kind, size_t bytes, rl_error *err);
/* Declares that this node reads (and fills the gradients of) a parameter set. */
int rl_node_use_params(rl_node *n, rl_params *p, rl_error *err);

/* Fails with "node 'label' (where): message". */
int rl_node_fail(const rl_node *n, rl_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The registry: every rl_node_type defined in nodes/ (generated at build time). */
const rl_node_type *rl_node_type_find(const char *name);
const rl_node_type *const *rl_node_types(int *count);

#endif
