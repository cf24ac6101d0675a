/* The node-side helpers of the node interface: option access, workspace
 * requests, parameter use, errors that name the node, metrics. */
#include "node.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

static const rl_value *opt(const rl_node *n, const char *key) {
    const rl_value *v = rl_opts_get(&n->opts, key);
    return v;
}

double rl_node_opt_number(const rl_node *n, const char *key) {
    const rl_value *v = opt(n, key);
    return v ? v->num : 0.0;
}

int64_t rl_node_opt_int(const rl_node *n, const char *key) {
    const rl_value *v = opt(n, key);
    if (!v) return 0;
    return v->kind == RL_VAL_INT || v->kind == RL_VAL_BOOL ? v->i : (int64_t)v->num;
}

int rl_node_opt_bool(const rl_node *n, const char *key) {
    const rl_value *v = opt(n, key);
    return v ? v->num != 0 : 0;
}

const char *rl_node_opt_string(const rl_node *n, const char *key) {
    const rl_value *v = opt(n, key);
    return v && v->kind == RL_VAL_STRING ? v->str : "";
}

const double *rl_node_opt_numbers(const rl_node *n, const char *key, int *count) {
    const rl_value *v = opt(n, key);
    if (!v || v->kind != RL_VAL_NUMBERS) { if (count) *count = 0; return NULL; }
    if (count) *count = v->n;
    return v->nums;
}

const char *const *rl_node_opt_strings(const rl_node *n, const char *key, int *count) {
    const rl_value *v = opt(n, key);
    if (!v || v->kind != RL_VAL_STRINGS) { if (count) *count = 0; return NULL; }
    if (count) *count = v->n;
    return (const char *const *)v->strs;
}

rl_object *rl_node_opt_object(const rl_node *n, const char *key) {
    const rl_value *v = opt(n, key);
    return v && v->kind == RL_VAL_OBJECT ? v->obj : NULL;
}

int rl_node_opt_given(const rl_node *n, const char *key) {
    for (int k = 0; k < n->type->n_options && k < 64; k++)
        if (strcmp(n->type->options[k].name, key) == 0) return (int)((n->opts_given >> k) & 1u);
    return 0;
}

int rl_node_request(rl_node *n, rl_ws_kind kind, size_t bytes, rl_error *err) {
    if (n->n_ws >= RL_MAX_WORKSPACE)
        return rl_node_fail(n, err, "more than %d workspace buffers requested", RL_MAX_WORKSPACE);
    if (kind == RL_WS_SCRATCH_BWD || kind == RL_WS_SAVED) {
        if (!n->type->backward)
            return rl_node_fail(n, err, "requests backward workspace but has no backward");
    }
    rl_workspace *w = &n->ws[n->n_ws];
    w->kind = kind;
    w->bytes = bytes;
    w->data = NULL;
    return n->n_ws++;
}

int rl_node_use_params(rl_node *n, rl_params *p, rl_error *err) {
    for (int i = 0; i < n->n_params; i++)
        if (n->params[i] == p) return 0;
    if (n->n_params >= RL_MAX_NODE_PARAMS)
        return rl_node_fail(n, err, "uses more than %d parameter sets", RL_MAX_NODE_PARAMS);
    n->params[n->n_params++] = p;
    return 0;
}

int rl_node_fail(const rl_node *n, rl_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char msg[RL_ERROR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n->where && n->where[0])
        return rl_fail(err, "%s: node '%s' (%s): %s", n->where, n->label, n->type->name, msg);
    return rl_fail(err, "node '%s' (%s): %s", n->label, n->type->name, msg);
}

void rl_metric_set(rl_run_ctx *ctx, const rl_node *n, const char *name, double value) {
    if (!ctx) return;
    for (int i = 0; i < ctx->n_metrics; i++) {
        rl_metric *m = &ctx->metrics[i];
        if (m->node == n->label && strcmp(m->name, name) == 0) { m->value = value; return; }
    }
    if (ctx->n_metrics >= RL_MAX_METRICS) return; /* silently capped: documented */
    ctx->metrics[ctx->n_metrics++] = (rl_metric){n->label, name, value};
}
