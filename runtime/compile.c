/* Compiling a graph: validation, topological order, which nodes need a
 * backward, shape inference, and the schedule (forward, backward, optimizer
 * steps of each phase). Buffer placement is planner.c's job. */
#include <string.h>

#include "alloc.h"
#include "graph_impl.h"

static int phase_of(const rl_graph *g, const rl_node *n) {
    for (int i = 0; i < g->n_phases; i++)
        if (strcmp(g->phases[i], n->phase) == 0) return i;
    return 0;
}

static int is_opt(const rl_node *n) { return (n->type->flags & RL_NODE_OPTIMIZER) != 0; }

/* Every required input is connected exactly once (connect refused doubles). */
static int check_inputs(rl_graph *g, rl_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        for (int p = 0; p < n->type->n_inputs; p++) {
            if (!n->src[p] && !(n->type->inputs[p].flags & RL_PORT_OPTIONAL))
                return rl_node_fail(n, err, "input '%s' is not connected", n->type->inputs[p].name);
        }
        if (is_opt(n) && n->type->n_inputs < 1)
            return rl_node_fail(n, err, "an optimizer node type must have a loss input");
    }
    return 0;
}

/* Kahn's algorithm, ties broken by creation order so schedules are stable. */
static int topo_sort(rl_graph *g, rl_error *err) {
    int n = g->n_nodes;
    int *indeg = rl_calloc((size_t)n + 1, sizeof(int));
    g->order = rl_calloc((size_t)n + 1, sizeof(rl_node *));
    if (!indeg || !g->order) { rl_free(indeg); return rl_fail(err, "out of memory"); }
    for (int i = 0; i < n; i++)
        for (int p = 0; p < g->nodes[i]->type->n_inputs; p++)
            if (g->nodes[i]->src[p]) indeg[i]++;
    int done = 0;
    char *placed = rl_calloc((size_t)n + 1, 1);
    if (!placed) { rl_free(indeg); return rl_fail(err, "out of memory"); }
    while (done < n) {
        int pick = -1;
        for (int i = 0; i < n; i++)
            if (!placed[i] && indeg[i] == 0) { pick = i; break; }
        if (pick < 0) break;
        placed[pick] = 1;
        g->order[done++] = g->nodes[pick];
        for (int i = 0; i < n; i++)
            for (int p = 0; p < g->nodes[i]->type->n_inputs; p++)
                if (g->nodes[i]->src[p] == g->nodes[pick]) indeg[i]--;
    }
    int rc = 0;
    if (done < n) {
        rl_node *culprit = NULL;
        for (int i = 0; i < n && !culprit; i++)
            if (!placed[i]) culprit = g->nodes[i];
        /* Name a node on the cycle and its predecessor on it. */
        rl_node *via = NULL;
        for (int p = 0; culprit && p < culprit->type->n_inputs; p++)
            if (culprit->src[p] && !placed[culprit->src[p]->id]) { via = culprit->src[p]; break; }
        rc = rl_node_fail(culprit, err, "is part of a cycle (its input comes from '%s', which depends on it)",
                          via ? via->label : "?");
    }
    rl_free(indeg);
    rl_free(placed);
    return rc;
}

/* Data may only flow from a phase to itself or to a later phase. */
static int check_phases(rl_graph *g, rl_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        for (int p = 0; p < n->type->n_inputs; p++) {
            rl_node *s = n->src[p];
            if (s && phase_of(g, s) > phase_of(g, n))
                return rl_node_fail(n, err, "in phase '%s' reads '%s' from node '%s' of the later phase '%s'",
                                    n->phase, n->type->inputs[p].name, s->label, s->phase);
        }
    }
    return 0;
}

static int finalize_params(rl_graph *g, rl_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        if (is_opt(n)) {
            for (int k = 0; k < n->type->n_options; k++) {
                if (n->type->options[k].kind != RL_VAL_OBJECT) continue;
                rl_params *p = rl_object_params(rl_node_opt_object(n, n->type->options[k].name));
                if (p) { p->trainable = 1; if (rl_node_use_params(n, p, err)) return -1; }
            }
        }
        for (int k = 0; k < n->n_params; k++)
            if (rl_params_finalize(n->params[k], err)) return rl_fail_prefix(err, "%s: node '%s': ", n->where, n->label);
    }
    return 0;
}

static int uses_trainable(const rl_node *n) {
    if (is_opt(n)) return 0;
    for (int k = 0; k < n->n_params; k++)
        if (n->params[k]->trainable) return 1;
    return 0;
}

/* requires_grad flows forward from trainable parameters; being on a path to a
 * loss flows backward from optimizers; a backward runs where both hold. */
static int mark_backward(rl_graph *g, rl_error *err) {
    int n = g->n_nodes;
    char *req = rl_calloc((size_t)n + 1, 1), *onpath = rl_calloc((size_t)n + 1, 1);
    if (!req || !onpath) { rl_free(req); rl_free(onpath); return rl_fail(err, "out of memory"); }
    for (int k = 0; k < n; k++) {
        rl_node *x = g->order[k];
        if (is_opt(x)) continue;
        int r = uses_trainable(x);
        for (int p = 0; p < x->type->n_inputs && !r; p++)
            if (x->src[p] && !(x->type->inputs[p].flags & RL_PORT_NO_GRAD) && req[x->src[p]->id]) r = 1;
        req[x->id] = (char)r;
    }
    for (int k = n - 1; k >= 0; k--) {
        rl_node *x = g->order[k];
        if (is_opt(x)) {
            rl_node *loss = x->src[0];
            if (loss && req[loss->id]) onpath[loss->id] = 1;
            continue;
        }
        if (!onpath[x->id]) continue;
        for (int p = 0; p < x->type->n_inputs; p++) {
            rl_node *s = x->src[p];
            if (s && !(x->type->inputs[p].flags & RL_PORT_NO_GRAD) && req[s->id]) onpath[s->id] = 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rl_node *x = g->nodes[i];
        x->needs_backward = req[i] && onpath[i];
        if (x->needs_backward && !x->type->backward)
            rc = rl_node_fail(x, err, "gradients must flow through it to trainable parameters, but it has no backward");
    }
    for (int i = 0; i < n && !rc; i++) {
        rl_node *x = g->nodes[i];
        for (int p = 0; p < x->type->n_inputs; p++) {
            rl_node *s = x->src[p];
            x->need_grad_in[p] = x->needs_backward && s && s->needs_backward &&
                                 !(x->type->inputs[p].flags & RL_PORT_NO_GRAD);
            if (x->need_grad_in[p] && strcmp(s->phase, x->phase) != 0)
                rc = rl_node_fail(x, err, "gradient would cross from phase '%s' to phase '%s' (node '%s')", x->phase,
                                  s->phase, s->label);
        }
        if (!rc && is_opt(x) && x->src[0] && x->src[0]->needs_backward && strcmp(x->src[0]->phase, x->phase) != 0)
            rc = rl_node_fail(x, err, "its loss comes from phase '%s' but it is in phase '%s'", x->src[0]->phase, x->phase);
    }
    rl_free(req);
    rl_free(onpath);
    return rc;
}

static int infer_shapes(rl_graph *g, rl_error *err) {
    char a[96];
    g->max_shape = rl_calloc((size_t)g->n_nodes * RL_MAX_PORTS + 1, sizeof(rl_shape));
    if (!g->max_shape) return rl_fail(err, "out of memory");
    for (int k = 0; k < g->n_nodes; k++) {
        rl_node *n = g->order[k];
        for (int p = 0; p < n->type->n_inputs; p++) {
            const rl_port_spec *ps = &n->type->inputs[p];
            rl_node *s = n->src[p];
            if (!s) { memset(&n->in[p], 0, sizeof n->in[p]); continue; }
            n->in[p] = s->out[n->src_port[p]];
            n->in[p].data = NULL;
            if (!(ps->flags & RL_PORT_ANY_DTYPE) && n->in[p].dtype != ps->dtype)
                return rl_node_fail(n, err, "input '%s' must be %s, but '%s.%s' is %s", ps->name,
                                    rl_dtype_name(ps->dtype), s->label, s->type->outputs[n->src_port[p]].name,
                                    rl_dtype_name(n->in[p].dtype));
            if (ps->rank >= 0 && n->in[p].shape.ndim != ps->rank)
                return rl_node_fail(n, err, "input '%s' must have rank %d, but '%s.%s' has shape %s", ps->name,
                                    ps->rank, s->label, s->type->outputs[n->src_port[p]].name,
                                    rl_shape_str(&n->in[p].shape, a, sizeof a));
        }
        for (int p = 0; p < n->type->n_outputs; p++) {
            n->out[p].dtype = n->type->outputs[p].dtype;
            n->out[p].shape = (rl_shape){0};
            n->out[p].data = NULL;
        }
        n->n_ws = 0;
        if (n->type->infer && n->type->infer(n, err)) {
            if (!strstr(err->msg, n->label)) rl_fail_prefix(err, "%s: node '%s' (%s): ", n->where, n->label, n->type->name);
            return -1;
        }
        for (int p = 0; p < n->type->n_outputs; p++) {
            if (rl_shape_numel(&n->out[p].shape) < 0)
                return rl_node_fail(n, err, "inferred an invalid shape for output '%s'", n->type->outputs[p].name);
            g->max_shape[n->id * RL_MAX_PORTS + p] = n->out[p].shape;
        }
    }
    return 0;
}

static int build_schedule(rl_graph *g, rl_error *err) {
    int cap = 3 * g->n_nodes + 1;
    g->steps = rl_calloc((size_t)cap, sizeof(rl_step));
    g->phase_first = rl_calloc((size_t)g->n_phases + 1, sizeof(int));
    g->phase_last = rl_calloc((size_t)g->n_phases + 1, sizeof(int));
    if (!g->steps || !g->phase_first || !g->phase_last) return rl_fail(err, "out of memory");
    int s = 0;
    for (int ph = 0; ph < g->n_phases; ph++) {
        g->phase_first[ph] = s;
        for (int k = 0; k < g->n_nodes; k++) {
            rl_node *n = g->order[k];
            if (phase_of(g, n) == ph && !is_opt(n)) g->steps[s++] = (rl_step){RL_STEP_FWD, n, ph, 0, 0};
        }
        for (int k = g->n_nodes - 1; k >= 0; k--) {
            rl_node *n = g->order[k];
            if (phase_of(g, n) == ph && n->needs_backward) g->steps[s++] = (rl_step){RL_STEP_BWD, n, ph, 0, 0};
        }
        for (int k = 0; k < g->n_nodes; k++) {
            rl_node *n = g->order[k];
            if (phase_of(g, n) == ph && is_opt(n)) g->steps[s++] = (rl_step){RL_STEP_OPT, n, ph, 0, 0};
        }
        g->phase_last[ph] = s - 1;
    }
    g->n_steps = s;
    return 0;
}

int rl_compile_schedule(rl_graph *g, rl_error *err) {
    if (check_inputs(g, err) || topo_sort(g, err) || check_phases(g, err) || finalize_params(g, err) ||
        mark_backward(g, err) || infer_shapes(g, err) || build_schedule(g, err))
        return -1;
    return 0;
}
