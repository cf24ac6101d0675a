/* Building a graph: adding nodes with validated options, connecting ports. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "graph_impl.h"
#include "state.h"

rl_graph *rl_graph_new(const char *name) {
    rl_graph *g = rl_calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = rl_strdup(name ? name : "graph");
    if (!g->name) { rl_free(g); return NULL; }
    return g;
}

void rl_graph_free(rl_graph *g) {
    if (!g) return;
    rl_graph_release_compiled(g);
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        if (n->type->destroy) n->type->destroy(n);
        rl_opts_free(&n->opts);
        rl_free(n->label);
        rl_free(n->where);
        rl_free(n->phase);
        rl_free(n);
    }
    for (int i = 0; i < g->n_phases; i++) rl_free(g->phases[i]);
    rl_free(g->phases);
    rl_free(g->nodes);
    rl_free(g->marked);
    rl_free(g->name);
    rl_free(g);
}

const char *rl_graph_name(const rl_graph *g) { return g->name; }
int rl_graph_node_count(const rl_graph *g) { return g->n_nodes; }
rl_node *rl_graph_node(const rl_graph *g, int i) { return i >= 0 && i < g->n_nodes ? g->nodes[i] : NULL; }
int rl_graph_phase_count(const rl_graph *g) { return g->n_phases; }
const char *rl_graph_phase_name(const rl_graph *g, int i) { return i >= 0 && i < g->n_phases ? g->phases[i] : NULL; }
int rl_graph_compiled(const rl_graph *g) { return g->compiled; }

rl_node *rl_graph_find(const rl_graph *g, const char *label) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i]->label, label) == 0) return g->nodes[i];
    return NULL;
}

static int phase_index(rl_graph *g, const char *phase, rl_error *err) {
    for (int i = 0; i < g->n_phases; i++)
        if (strcmp(g->phases[i], phase) == 0) return i;
    char **p = rl_realloc(g->phases, sizeof(char *) * (size_t)(g->n_phases + 1));
    if (!p) return rl_fail(err, "out of memory");
    g->phases = p;
    g->phases[g->n_phases] = rl_strdup(phase);
    if (!g->phases[g->n_phases]) return rl_fail(err, "out of memory");
    return g->n_phases++;
}

/* The closest name among candidates (for "did you mean"), or NULL if none is close. */
static const char *closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bestd = 1 << 30;
    for (int i = 0; i < n; i++) {
        int d = rl_edit_distance(name, cands[i]);
        if (d < bestd) { bestd = d; best = cands[i]; }
    }
    int limit = (int)strlen(name) / 3 + 2;
    return bestd <= limit ? best : NULL;
}

static int opt_kind_ok(const rl_option_spec *s, const rl_value *v) {
    switch (s->kind) {
    case RL_VAL_NUMBER: return v->kind == RL_VAL_NUMBER || v->kind == RL_VAL_INT;
    case RL_VAL_INT: return v->kind == RL_VAL_INT || (v->kind == RL_VAL_NUMBER && v->num == (double)(int64_t)v->num);
    case RL_VAL_BOOL: return v->kind == RL_VAL_BOOL;
    case RL_VAL_STRING: return v->kind == RL_VAL_STRING;
    case RL_VAL_NUMBERS: return v->kind == RL_VAL_NUMBERS || v->kind == RL_VAL_NUMBER || v->kind == RL_VAL_INT;
    case RL_VAL_STRINGS: return v->kind == RL_VAL_STRINGS || v->kind == RL_VAL_STRING;
    case RL_VAL_OBJECT: return v->kind == RL_VAL_OBJECT;
    default: return 0;
    }
}

/* Stores a given value under the spec's kind (a number into a list, 3.0 into an int ...). */
static int store_given(rl_opts *dst, const rl_option_spec *s, const rl_value *v) {
    switch (s->kind) {
    case RL_VAL_NUMBER: return rl_opts_set_number(dst, s->name, v->num);
    case RL_VAL_INT: return rl_opts_set_int(dst, s->name, v->kind == RL_VAL_INT ? v->i : (int64_t)v->num);
    case RL_VAL_BOOL: return rl_opts_set_bool(dst, s->name, (int)v->i);
    case RL_VAL_STRING: return rl_opts_set_string(dst, s->name, v->str);
    case RL_VAL_NUMBERS:
        if (v->kind == RL_VAL_NUMBERS) return rl_opts_set_numbers(dst, s->name, v->nums, v->n);
        return rl_opts_set_numbers(dst, s->name, &v->num, 1);
    case RL_VAL_STRINGS:
        if (v->kind == RL_VAL_STRINGS) return rl_opts_set_strings(dst, s->name, (const char *const *)v->strs, v->n);
        return rl_opts_set_strings(dst, s->name, (const char *const *)&v->str, 1);
    case RL_VAL_OBJECT: return rl_opts_set_object(dst, s->name, v->obj);
    default: return -1;
    }
}

/* Parses a spec's default text into dst. */
static int store_default(rl_opts *dst, const rl_option_spec *s, rl_error *err) {
    const char *d = s->def;
    char *end;
    switch (s->kind) {
    case RL_VAL_NUMBER: {
        double x = strtod(d, &end);
        if (end == d || *end) return rl_fail(err, "bad default '%s' for option '%s'", d, s->name);
        return rl_opts_set_number(dst, s->name, x);
    }
    case RL_VAL_INT: {
        long long x = strtoll(d, &end, 10);
        if (end == d || *end) return rl_fail(err, "bad default '%s' for option '%s'", d, s->name);
        return rl_opts_set_int(dst, s->name, x);
    }
    case RL_VAL_BOOL:
        if (strcmp(d, "true") && strcmp(d, "false")) return rl_fail(err, "bad default '%s' for option '%s'", d, s->name);
        return rl_opts_set_bool(dst, s->name, strcmp(d, "true") == 0);
    case RL_VAL_STRING: return rl_opts_set_string(dst, s->name, d);
    case RL_VAL_NUMBERS: {
        double xs[64];
        int n = 0;
        const char *p = d;
        while (*p && n < 64) {
            double x = strtod(p, &end);
            if (end == p) return rl_fail(err, "bad default '%s' for option '%s'", d, s->name);
            xs[n++] = x;
            p = end;
            while (*p == ',' || isspace((unsigned char)*p)) p++;
        }
        return rl_opts_set_numbers(dst, s->name, xs, n);
    }
    case RL_VAL_STRINGS: {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", d);
        const char *items[32];
        int n = 0;
        for (char *tok = strtok(buf, ","); tok && n < 32; tok = strtok(NULL, ",")) {
            while (isspace((unsigned char)*tok)) tok++;
            items[n++] = tok;
        }
        return rl_opts_set_strings(dst, s->name, items, n);
    }
    case RL_VAL_OBJECT: return 0; /* an optional object defaults to none */
    default: return rl_fail(err, "option '%s' has an unsupported kind", s->name);
    }
}

/* Builds the node's full option list: validated given values plus defaults. */
static int resolve_options(const rl_node_type *t, const rl_opts *given, rl_opts *out, uint64_t *given_mask,
                           const char *who, rl_error *err) {
    const char *names[128];
    int nn = t->n_options < 128 ? t->n_options : 128;
    for (int i = 0; i < nn; i++) names[i] = t->options[i].name;
    for (int i = 0; given && i < given->n; i++) {
        const char *key = given->keys[i];
        const rl_option_spec *s = NULL;
        for (int k = 0; k < t->n_options; k++)
            if (strcmp(t->options[k].name, key) == 0) {
                s = &t->options[k];
                if (k < 64) *given_mask |= 1ull << k;
                break;
            }
        if (!s) {
            const char *near = closest(key, names, nn);
            if (near) return rl_fail(err, "%s: unknown option '%s' (did you mean '%s'?)", who, key, near);
            return rl_fail(err, "%s: unknown option '%s' (see `rlfr help %s`)", who, key, t->name);
        }
        const rl_value *v = &given->vals[i];
        if (!opt_kind_ok(s, v))
            return rl_fail(err, "%s: option '%s' must be a %s, got a %s", who, key, rl_value_kind_name(s->kind),
                           rl_value_kind_name(v->kind));
        if (s->kind == RL_VAL_OBJECT && s->object_type && v->obj) {
            int ok = strcmp(v->obj->type, s->object_type) == 0 ||
                     (strcmp(s->object_type, "params") == 0 && v->obj->params);
            if (!ok)
                return rl_fail(err, "%s: option '%s' must be a %s object, got a %s object", who, key,
                               s->object_type, v->obj->type);
        }
        if (store_given(out, s, v)) return rl_fail(err, "out of memory");
    }
    for (int k = 0; k < t->n_options; k++) {
        const rl_option_spec *s = &t->options[k];
        if (rl_opts_get(out, s->name)) continue;
        if (!s->def) return rl_fail(err, "%s: missing required option '%s'", who, s->name);
        if (store_default(out, s, err)) return -1;
    }
    return 0;
}

rl_node *rl_graph_add(rl_graph *g, const rl_node_type *type, const char *label, const char *where,
                      const char *phase, const rl_opts *opts, rl_error *err) {
    char who[512];
    const char *loc = where && where[0] ? where : NULL;
    if (g->compiled) {
        rl_fail(err, "%s%sgraph '%s' is already compiled: add nodes before running it", loc ? loc : "",
                loc ? ": " : "", g->name);
        return NULL;
    }
    if (label && rl_graph_find(g, label)) {
        rl_fail(err, "%s%sa node named '%s' already exists", loc ? loc : "", loc ? ": " : "", label);
        return NULL;
    }
    char autolabel[128];
    if (!label) {
        snprintf(autolabel, sizeof autolabel, "%s", type->name);
        for (int k = 2; rl_graph_find(g, autolabel); k++) snprintf(autolabel, sizeof autolabel, "%s_%d", type->name, k);
        label = autolabel;
    }
    snprintf(who, sizeof who, "%s%snode '%s' (%s)", loc ? loc : "", loc ? ": " : "", label, type->name);
    if (type->n_inputs > RL_MAX_PORTS || type->n_outputs > RL_MAX_PORTS) {
        rl_fail(err, "%s: node type declares more than %d ports", who, RL_MAX_PORTS);
        return NULL;
    }
    int ph = phase_index(g, phase && phase[0] ? phase : "main", err);
    if (ph < 0) return NULL;

    rl_node *n = rl_calloc(1, sizeof *n);
    if (!n) { rl_fail(err, "out of memory"); return NULL; }
    n->type = type;
    n->graph = g;
    n->label = rl_strdup(label);
    n->where = rl_strdup(loc ? loc : "");
    n->phase = rl_strdup(g->phases[ph]);
    rl_opts_init(&n->opts);
    if (!n->label || !n->where || !n->phase) { rl_fail(err, "out of memory"); goto fail; }
    for (int i = 0; i < RL_MAX_PORTS; i++) n->src_port[i] = -1;
    if (resolve_options(type, opts, &n->opts, &n->opts_given, who, err)) goto fail;

    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        rl_node **nodes = rl_realloc(g->nodes, sizeof(rl_node *) * (size_t)cap);
        if (!nodes) { rl_fail(err, "out of memory"); goto fail; }
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    n->id = g->n_nodes;
    if (type->init && type->init(n, err)) {
        if (!strstr(err->msg, n->label)) rl_fail_prefix(err, "%s: ", who);
        if (type->destroy) type->destroy(n);
        goto fail;
    }
    g->nodes[g->n_nodes++] = n;
    return n;
fail:
    rl_opts_free(&n->opts);
    rl_free(n->label);
    rl_free(n->where);
    rl_free(n->phase);
    rl_free(n);
    return NULL;
}

rl_node *rl_graph_add_named(rl_graph *g, const char *type_name, const char *label, const char *where,
                            const char *phase, const rl_opts *opts, rl_error *err) {
    const rl_node_type *t = rl_node_type_find(type_name);
    if (!t) {
        int count;
        const rl_node_type *const *all = rl_node_types(&count);
        const char *names[256];
        int nn = count < 256 ? count : 256;
        for (int i = 0; i < nn; i++) names[i] = all[i]->name;
        const char *near = closest(type_name, names, nn);
        const char *loc = where && where[0] ? where : NULL;
        if (near)
            rl_fail(err, "%s%sunknown node type '%s' (did you mean '%s'?)", loc ? loc : "", loc ? ": " : "", type_name, near);
        else
            rl_fail(err, "%s%sunknown node type '%s' (`rlfr nodes` lists them)", loc ? loc : "", loc ? ": " : "", type_name);
        return NULL;
    }
    return rl_graph_add(g, t, label, where, phase, opts, err);
}

int rl_node_input_index(const rl_node *n, const char *name) {
    for (int i = 0; i < n->type->n_inputs; i++)
        if (strcmp(n->type->inputs[i].name, name) == 0) return i;
    return -1;
}

int rl_node_output_index(const rl_node *n, const char *name) {
    for (int i = 0; i < n->type->n_outputs; i++)
        if (strcmp(n->type->outputs[i].name, name) == 0) return i;
    return -1;
}

int rl_graph_connect(rl_graph *g, rl_node *dst, int dst_port, rl_node *src, int src_port, rl_error *err) {
    if (!dst || !src) return rl_fail(err, "cannot connect a missing node");
    if (g->compiled) return rl_node_fail(dst, err, "graph '%s' is already compiled", g->name);
    if (dst->graph != g || src->graph != g)
        return rl_node_fail(dst, err, "cannot connect nodes of different graphs");
    if (dst_port < 0 || dst_port >= dst->type->n_inputs)
        return rl_node_fail(dst, err, "has no input #%d (it has %d)", dst_port + 1, dst->type->n_inputs);
    if (src_port < 0 || src_port >= src->type->n_outputs)
        return rl_node_fail(dst, err, "input '%s': node '%s' has no output #%d", dst->type->inputs[dst_port].name,
                            src->label, src_port + 1);
    if (dst->src[dst_port])
        return rl_node_fail(dst, err, "input '%s' is connected twice (already from '%s.%s')",
                            dst->type->inputs[dst_port].name, dst->src[dst_port]->label,
                            dst->src[dst_port]->type->outputs[dst->src_port[dst_port]].name);
    if (src->type->flags & RL_NODE_OPTIMIZER)
        return rl_node_fail(dst, err, "input '%s' cannot read from optimizer '%s'", dst->type->inputs[dst_port].name,
                            src->label);
    dst->src[dst_port] = src;
    dst->src_port[dst_port] = src_port;
    return 0;
}

int rl_graph_mark_output(rl_graph *g, rl_node *n, int port, rl_error *err) {
    if (!n) return rl_fail(err, "cannot mark a missing node");
    if (g->compiled) return rl_node_fail(n, err, "graph '%s' is already compiled", g->name);
    if (port < 0 || port >= n->type->n_outputs) return rl_node_fail(n, err, "has no output #%d", port + 1);
    int key = n->id * RL_MAX_PORTS + port;
    for (int i = 0; i < g->n_marked; i++)
        if (g->marked[i] == key) return 0;
    if (g->n_marked == g->cap_marked) {
        int cap = g->cap_marked ? 2 * g->cap_marked : 8;
        int *m = rl_realloc(g->marked, sizeof(int) * (size_t)cap);
        if (!m) return rl_fail(err, "out of memory");
        g->marked = m;
        g->cap_marked = cap;
    }
    g->marked[g->n_marked++] = key;
    return 0;
}

int rl_graph_save_state(rl_graph *g, struct rl_state *st, rl_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        if (!n->type->save_state) continue;
        rl_state_set_prefix(st, n->label);
        if (n->type->save_state(n, st, err)) {
            rl_state_set_prefix(st, NULL);
            return -1;
        }
    }
    rl_state_set_prefix(st, NULL);
    return 0;
}

int rl_graph_load_state(rl_graph *g, const struct rl_state *st, rl_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        if (!n->type->load_state) continue;
        rl_state_set_prefix((rl_state *)st, n->label);
        int rc = n->type->load_state(n, st, err);
        rl_state_set_prefix((rl_state *)st, NULL);
        if (rc) return rl_node_fail(n, err, "cannot restore its checkpoint state: %s", err->msg);
    }
    return 0;
}

int rl_graph_param_sets(const rl_graph *g, rl_params **out, int cap) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const rl_node *n = g->nodes[i];
        for (int j = 0; j < n->n_params; j++) {
            int seen = 0;
            for (int q = 0; q < k && q < cap; q++)
                if (out[q] == n->params[j]) seen = 1;
            if (!seen) {
                if (k < cap) out[k] = n->params[j];
                k++;
            }
        }
    }
    return k;
}
