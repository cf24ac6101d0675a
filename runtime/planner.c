/* The buffer planner. Every activation, activation gradient and workspace of
 * a step becomes a buffer with a live interval [first, last] over the
 * schedule; buffers whose intervals do not overlap may share memory. Groups
 * (a buffer plus the outputs that overwrite it in place) are placed in one
 * arena greedily by size: largest first, each at the lowest offset that does
 * not collide with an already placed group live at the same time. Parameters,
 * their gradients, optimizer state, graph outputs and persistent workspace are
 * not planned. Set RLFR_TRACE_PLAN=1 to print every decision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "graph_impl.h"

int rl_plan_trace_enabled(void) {
    const char *v = getenv("RLFR_TRACE_PLAN");
    return v && v[0] && strcmp(v, "0") != 0;
}

static size_t align_up(size_t n) { return (n + RL_ARENA_ALIGN - 1) & ~(size_t)(RL_ARENA_ALIGN - 1); }

static int is_marked(const rl_graph *g, const rl_node *n, int port) {
    for (int i = 0; i < g->n_marked; i++)
        if (g->marked[i] == n->id * RL_MAX_PORTS + port) return 1;
    return 0;
}

static int add_buf(rl_graph *g, int *cap, rl_buffer b, rl_error *err) {
    if (g->n_bufs == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        rl_buffer *nb = rl_realloc(g->bufs, sizeof(rl_buffer) * (size_t)nc);
        if (!nb) return rl_fail(err, "out of memory");
        g->bufs = nb;
        *cap = nc;
    }
    b.group = g->n_bufs;
    g->bufs[g->n_bufs] = b;
    return g->n_bufs++;
}

static void extend(rl_buffer *b, int step) {
    if (step > b->last) b->last = step;
    if (step < b->first) b->first = step;
}

/* Step index of node n's forward / backward / optimizer step, or -1. */
static void node_steps(const rl_graph *g, int *fwd, int *bwd) {
    for (int i = 0; i < g->n_nodes; i++) fwd[i] = bwd[i] = -1;
    for (int s = 0; s < g->n_steps; s++) {
        const rl_step *st = &g->steps[s];
        if (st->kind == RL_STEP_BWD) bwd[st->node->id] = s;
        else fwd[st->node->id] = s; /* forward or optimizer step */
    }
}

static int make_buffers(rl_graph *g, rl_error *err) {
    int cap = 0, nn = g->n_nodes;
    int *fwd = rl_calloc((size_t)nn + 1, sizeof(int)), *bwd = rl_calloc((size_t)nn + 1, sizeof(int));
    g->out_buf = rl_malloc(sizeof(int) * ((size_t)nn * RL_MAX_PORTS + 1));
    g->grad_buf = rl_malloc(sizeof(int) * ((size_t)nn * RL_MAX_PORTS + 1));
    g->ws_buf = rl_malloc(sizeof(int) * ((size_t)nn * RL_MAX_WORKSPACE + 1));
    if (!fwd || !bwd || !g->out_buf || !g->grad_buf || !g->ws_buf) {
        rl_free(fwd); rl_free(bwd);
        return rl_fail(err, "out of memory");
    }
    for (int i = 0; i < nn * RL_MAX_PORTS; i++) g->out_buf[i] = g->grad_buf[i] = -1;
    for (int i = 0; i < nn * RL_MAX_WORKSPACE; i++) g->ws_buf[i] = -1;
    node_steps(g, fwd, bwd);

    for (int i = 0; i < nn; i++) {
        rl_node *n = g->nodes[i];
        int f = fwd[i], b = bwd[i];
        for (int p = 0; p < n->type->n_outputs; p++) {
            rl_buffer buf = {0};
            buf.kind = RL_BUF_OUTPUT;
            buf.node = n;
            buf.port = p;
            buf.bytes = align_up(rl_tensor_nbytes(&n->out[p]));
            buf.first = buf.last = f;
            buf.planned = !is_marked(g, n, p);
            if (b >= 0 && !(n->type->outputs[p].flags & RL_PORT_NOT_IN_BACKWARD)) extend(&buf, b);
            int id = add_buf(g, &cap, buf, err);
            if (id < 0) goto fail;
            g->out_buf[i * RL_MAX_PORTS + p] = id;
        }
        for (int w = 0; w < n->n_ws; w++) {
            rl_buffer buf = {0};
            buf.kind = RL_BUF_WORKSPACE;
            buf.node = n;
            buf.port = w;
            buf.bytes = align_up(n->ws[w].bytes);
            buf.planned = n->ws[w].kind != RL_WS_PERSISTENT;
            switch (n->ws[w].kind) {
            case RL_WS_SCRATCH_FWD: buf.first = buf.last = f; break;
            case RL_WS_SCRATCH_BWD:
                /* A backward that never runs needs no scratch: an empty buffer. */
                buf.first = buf.last = b >= 0 ? b : f;
                if (b < 0) buf.bytes = 0;
                break;
            case RL_WS_SAVED: buf.first = f; buf.last = b >= 0 ? b : f; break;
            case RL_WS_PERSISTENT: buf.first = 0; buf.last = g->n_steps - 1; break;
            }
            int id = add_buf(g, &cap, buf, err);
            if (id < 0) goto fail;
            g->ws_buf[i * RL_MAX_WORKSPACE + w] = id;
        }
    }
    /* Consumers extend their producers' outputs; cross-phase reads keep a
       buffer alive to the end of the reading phase, which may run repeatedly. */
    for (int i = 0; i < nn; i++) {
        rl_node *n = g->nodes[i];
        for (int p = 0; p < n->type->n_inputs; p++) {
            rl_node *s = n->src[p];
            if (!s) continue;
            rl_buffer *buf = &g->bufs[g->out_buf[s->id * RL_MAX_PORTS + n->src_port[p]]];
            extend(buf, fwd[i]);
            if (bwd[i] >= 0 && !(n->type->inputs[p].flags & RL_PORT_NOT_IN_BACKWARD)) extend(buf, bwd[i]);
            if (strcmp(s->phase, n->phase) != 0) {
                for (int ph = 0; ph < g->n_phases; ph++)
                    if (strcmp(g->phases[ph], n->phase) == 0) extend(buf, g->phase_last[ph]);
            }
        }
    }
    /* Gradients of activations: from the first backward that writes one to the
       producer's backward that reads it. */
    for (int i = 0; i < nn; i++) {
        rl_node *n = g->nodes[i];
        if (!n->needs_backward) continue;
        for (int p = 0; p < n->type->n_outputs; p++) {
            int first = -1, seed = 0;
            for (int j = 0; j < nn; j++) {
                rl_node *c = g->nodes[j];
                for (int q = 0; q < c->type->n_inputs; q++) {
                    if (c->src[q] != n || c->src_port[q] != p) continue;
                    if (c->type->flags & RL_NODE_OPTIMIZER && q == 0) seed = 1;
                    else if (c->need_grad_in[q] && (first < 0 || bwd[j] < first)) first = bwd[j];
                }
            }
            if (seed && (first < 0 || bwd[i] < first)) first = bwd[i];
            if (first < 0) continue; /* no gradient flows into this output */
            rl_buffer buf = {0};
            buf.kind = RL_BUF_GRAD;
            buf.node = n;
            buf.port = p;
            buf.bytes = align_up(rl_tensor_nbytes(&n->out[p]));
            buf.first = first;
            buf.last = bwd[i];
            buf.planned = 1;
            buf.seed = seed;
            int id = add_buf(g, &cap, buf, err);
            if (id < 0) goto fail;
            g->grad_buf[i * RL_MAX_PORTS + p] = id;
        }
    }
    rl_free(fwd);
    rl_free(bwd);
    return 0;
fail:
    rl_free(fwd);
    rl_free(bwd);
    return -1;
}

/* Lets an output take over a dying input's block where the node allows it. */
static void merge_inplace(rl_graph *g) {
    for (int s = 0; s < g->n_steps; s++) {
        const rl_step *st = &g->steps[s];
        if (st->kind != RL_STEP_FWD) continue;
        rl_node *n = st->node;
        for (int p = 0; p < n->type->n_outputs; p++) {
            int k = n->type->outputs[p].inplace - 1;
            if (k < 0 || k >= n->type->n_inputs || !n->src[k]) continue;
            rl_buffer *out = &g->bufs[g->out_buf[n->id * RL_MAX_PORTS + p]];
            int in_id = g->out_buf[n->src[k]->id * RL_MAX_PORTS + n->src_port[k]];
            rl_buffer *lead = &g->bufs[g->bufs[in_id].group];
            if (!out->planned || !lead->planned || lead->last != s || out->bytes > lead->bytes) continue;
            /* The input must not be read by any other input port of this node
               after being overwritten: only safe when it is the single reader. */
            int other = 0;
            for (int q = 0; q < n->type->n_inputs; q++)
                if (q != k && n->src[q] == n->src[k] && n->src_port[q] == n->src_port[k]) other = 1;
            if (other) continue;
            out->group = lead->group;
            if (out->last > lead->last) lead->last = out->last;
            g->stats.n_inplace++;
            if (rl_plan_trace_enabled())
                fprintf(stderr, "plan: %s.%s overwrites %s.%s in place at step %d\n", n->label,
                        n->type->outputs[p].name, n->src[k]->label,
                        n->src[k]->type->outputs[n->src_port[k]].name, s);
        }
    }
}

static int cmp_size_desc(const void *a, const void *b, void *ctx) {
    const rl_buffer *bufs = ctx;
    const rl_buffer *x = &bufs[*(const int *)a], *y = &bufs[*(const int *)b];
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

/* Insertion sort with a context (qsort_r is not portable C11); n is small. */
static void sort_ids(int *ids, int n, rl_buffer *bufs) {
    for (int i = 1; i < n; i++) {
        int v = ids[i], j = i - 1;
        while (j >= 0 && cmp_size_desc(&ids[j], &v, bufs) > 0) { ids[j + 1] = ids[j]; j--; }
        ids[j + 1] = v;
    }
}

static int place_groups(rl_graph *g, rl_error *err) {
    size_t cnt = (size_t)g->n_bufs + 1;
    int *ids = rl_calloc(cnt, sizeof(int)), *placed = rl_calloc(cnt, sizeof(int)), *conf = rl_calloc(cnt, sizeof(int));
    if (!ids || !placed || !conf) {
        rl_free(ids); rl_free(placed); rl_free(conf);
        return rl_fail(err, "out of memory");
    }
    /* A group's size is its largest member. */
    for (int i = 0; i < g->n_bufs; i++) {
        rl_buffer *b = &g->bufs[i], *lead = &g->bufs[b->group];
        if (b->bytes > lead->bytes) lead->bytes = b->bytes;
    }
    int n = 0;
    for (int i = 0; i < g->n_bufs; i++)
        if (g->bufs[i].planned && g->bufs[i].group == i) ids[n++] = i;
    sort_ids(ids, n, g->bufs);
    size_t arena = 0;
    int np = 0;
    for (int a = 0; a < n; a++) {
        rl_buffer *b = &g->bufs[ids[a]];
        /* The placed groups live at the same time, ordered by offset. */
        int m = 0;
        for (int k = 0; k < np; k++) {
            rl_buffer *o = &g->bufs[placed[k]];
            if (o->first <= b->last && b->first <= o->last) conf[m++] = placed[k];
        }
        for (int i = 1; i < m; i++) {
            int v = conf[i], j = i - 1;
            while (j >= 0 && g->bufs[conf[j]].offset > g->bufs[v].offset) { conf[j + 1] = conf[j]; j--; }
            conf[j + 1] = v;
        }
        /* Lowest offset with a gap large enough. */
        size_t off = 0;
        for (int k = 0; k < m; k++) {
            rl_buffer *o = &g->bufs[conf[k]];
            if (o->offset >= off + b->bytes) break;
            if (o->offset + o->bytes > off) off = o->offset + o->bytes;
        }
        b->offset = off;
        placed[np++] = ids[a];
        if (off + b->bytes > arena) arena = off + b->bytes;
        if (rl_plan_trace_enabled())
            fprintf(stderr, "plan: buffer %d (%s of '%s', %zu bytes, steps %d-%d) at offset %zu\n", ids[a],
                    b->kind == RL_BUF_WORKSPACE ? "workspace" : (b->kind == RL_BUF_GRAD ? "gradient" : "output"),
                    b->node->label, b->bytes, b->first, b->last, off);
    }
    g->stats.arena_bytes = arena;
    rl_free(ids);
    rl_free(placed);
    rl_free(conf);
    return 0;
}

static void compute_stats(rl_graph *g) {
    rl_plan_stats *st = &g->stats;
    st->n_buffers = g->n_bufs;
    st->n_steps = g->n_steps;
    st->naive_bytes = st->unplanned_bytes = st->lower_bound_bytes = 0;
    for (int i = 0; i < g->n_bufs; i++) {
        if (g->bufs[i].planned) st->naive_bytes += g->bufs[i].bytes;
        else st->unplanned_bytes += g->bufs[i].bytes;
    }
    for (int s = 0; s < g->n_steps; s++) {
        size_t live = 0;
        for (int i = 0; i < g->n_bufs; i++) {
            const rl_buffer *b = &g->bufs[i];
            if (b->planned && b->group == i && b->first <= s && s <= b->last) live += b->bytes;
        }
        if (live > st->lower_bound_bytes) st->lower_bound_bytes = live;
    }
}

static int build_zero_lists(rl_graph *g, rl_error *err) {
    g->zero_list = rl_calloc((size_t)g->n_bufs + 1, sizeof(int));
    if (!g->zero_list) return rl_fail(err, "out of memory");
    int k = 0;
    for (int s = 0; s < g->n_steps; s++) {
        g->steps[s].zero_begin = k;
        for (int i = 0; i < g->n_bufs; i++)
            if (g->bufs[i].kind == RL_BUF_GRAD && g->bufs[i].first == s) g->zero_list[k++] = i;
        g->steps[s].zero_count = k - g->steps[s].zero_begin;
    }
    g->n_zero = k;
    return 0;
}

static int allocate(rl_graph *g, rl_error *err) {
    if (!g->unplanned && g->stats.arena_bytes) {
        g->arena = rl_malloc_aligned(g->stats.arena_bytes);
        if (!g->arena) return rl_fail(err, "cannot allocate the %zu-byte arena of graph '%s'", g->stats.arena_bytes, g->name);
    }
    for (int i = 0; i < g->n_bufs; i++) {
        rl_buffer *b = &g->bufs[i];
        if (b->group != i) continue;
        if (b->planned && !g->unplanned) {
            b->data = (char *)g->arena + b->offset;
        } else {
            b->data = rl_malloc_aligned(b->bytes ? b->bytes : RL_ARENA_ALIGN);
            if (!b->data) return rl_fail(err, "cannot allocate %zu bytes for node '%s'", b->bytes, b->node->label);
            memset(b->data, 0, b->bytes);
        }
    }
    for (int i = 0; i < g->n_bufs; i++) g->bufs[i].data = g->bufs[g->bufs[i].group].data;
    for (int i = 0; i < g->n_nodes; i++) {
        rl_node *n = g->nodes[i];
        for (int w = 0; w < n->n_ws; w++) n->ws[w].data = g->bufs[g->ws_buf[i * RL_MAX_WORKSPACE + w]].data;
    }
    return 0;
}

int rl_plan_buffers(rl_graph *g, rl_error *err) {
    if (make_buffers(g, err)) return -1;
    if (!g->unplanned) merge_inplace(g);
    if (place_groups(g, err) || build_zero_lists(g, err)) return -1;
    compute_stats(g);
    if (g->unplanned) g->stats.arena_bytes = 0;
    return allocate(g, err);
}

void rl_graph_release_compiled(rl_graph *g) {
    for (int i = 0; g->bufs && i < g->n_bufs; i++) {
        rl_buffer *b = &g->bufs[i];
        if (b->group == i && (!b->planned || g->unplanned)) rl_free_aligned(b->data);
    }
    rl_free_aligned(g->arena);
    rl_free(g->bufs);
    rl_free(g->order);
    rl_free(g->steps);
    rl_free(g->phase_first);
    rl_free(g->phase_last);
    rl_free(g->out_buf);
    rl_free(g->grad_buf);
    rl_free(g->ws_buf);
    rl_free(g->max_shape);
    rl_free(g->zero_list);
    g->arena = NULL;
    g->bufs = NULL;
    g->order = NULL;
    g->steps = NULL;
    g->phase_first = g->phase_last = NULL;
    g->out_buf = g->grad_buf = g->ws_buf = NULL;
    g->max_shape = NULL;
    g->zero_list = NULL;
    g->n_bufs = g->n_steps = g->n_zero = 0;
    g->compiled = 0;
}

const rl_plan_stats *rl_graph_plan_stats(const rl_graph *g) { return &g->stats; }

static const char *buf_what(const rl_buffer *b, char *buf, size_t cap) {
    const rl_node *n = b->node;
    switch (b->kind) {
    case RL_BUF_OUTPUT: snprintf(buf, cap, "%s.%s", n->label, n->type->outputs[b->port].name); break;
    case RL_BUF_GRAD: snprintf(buf, cap, "d %s.%s", n->label, n->type->outputs[b->port].name); break;
    case RL_BUF_WORKSPACE: {
        static const char *kinds[] = {"scratch", "scratch-bwd", "saved", "persistent"};
        snprintf(buf, cap, "%s ws%d (%s)", n->label, b->port, kinds[n->ws[b->port].kind]);
        break;
    }
    }
    return buf;
}

void rl_graph_print_plan(const rl_graph *g, FILE *f) {
    const rl_plan_stats *st = &g->stats;
    fprintf(f, "arena_bytes=%zu naive_bytes=%zu lower_bound_bytes=%zu\n", st->arena_bytes, st->naive_bytes,
            st->lower_bound_bytes);
    fprintf(f, "graph '%s': %d steps, %d buffers, %d in place, unplanned %zu bytes; arena/lower bound = %.3f, "
               "arena/naive = %.3f\n",
            g->name, st->n_steps, st->n_buffers, st->n_inplace, st->unplanned_bytes,
            st->lower_bound_bytes ? (double)st->arena_bytes / (double)st->lower_bound_bytes : 1.0,
            st->naive_bytes ? (double)st->arena_bytes / (double)st->naive_bytes : 1.0);
    fprintf(f, "%-5s %-40s %12s %11s %12s\n", "buf", "what", "bytes", "steps", "offset");
    char what[160], iv[32], off[32];
    for (int i = 0; i < g->n_bufs; i++) {
        const rl_buffer *b = &g->bufs[i];
        snprintf(iv, sizeof iv, "%d-%d", b->first, b->last);
        if (!b->planned) snprintf(off, sizeof off, "unplanned");
        else if (b->group != i) snprintf(off, sizeof off, "=buf %d", b->group);
        else snprintf(off, sizeof off, "%zu", b->offset);
        fprintf(f, "%-5d %-40s %12zu %11s %12s\n", i, buf_what(b, what, sizeof what), b->bytes, iv, off);
    }
    fprintf(f, "schedule:");
    for (int s = 0; s < g->n_steps; s++) {
        const rl_step *stp = &g->steps[s];
        fprintf(f, "%s %d:%s(%s)", s % 6 ? "" : "\n ", s,
                stp->kind == RL_STEP_FWD ? "fwd" : (stp->kind == RL_STEP_BWD ? "bwd" : "opt"), stp->node->label);
    }
    fprintf(f, "\n");
}
