/* Compiling and running a graph. A run walks the schedule of one phase (or of
 * all): before each step it points the node's ports at their buffers, clears
 * the gradient buffers that start there (backward accumulates), seeds the
 * gradient of each optimizer's loss with 1, and calls the node. No step
 * allocates. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "graph_impl.h"

int rl_graph_compile(rl_graph *g, const rl_compile_opts *opts, rl_error *err) {
    if (g->compiled) return 0;
    g->unplanned = opts && opts->unplanned;
    memset(&g->stats, 0, sizeof g->stats);
    if (g->n_nodes == 0) return rl_fail(err, "graph '%s' has no nodes", g->name);
    if (rl_compile_schedule(g, err) || rl_plan_buffers(g, err)) {
        rl_graph_release_compiled(g);
        return -1;
    }
    g->compiled = 1;
    return 0;
}

static void bind_inputs(rl_graph *g, rl_node *n) {
    for (int p = 0; p < n->type->n_inputs; p++) {
        rl_node *s = n->src[p];
        if (!s) { memset(&n->in[p], 0, sizeof n->in[p]); memset(&n->grad_in[p], 0, sizeof n->grad_in[p]); continue; }
        n->in[p] = s->out[n->src_port[p]];
        n->grad_in[p] = n->in[p];
        n->grad_in[p].dtype = RL_F32;
        int gb = g->grad_buf[s->id * RL_MAX_PORTS + n->src_port[p]];
        n->grad_in[p].data = n->need_grad_in[p] && gb >= 0 ? g->bufs[gb].data : NULL;
    }
}

static void bind_outputs(rl_graph *g, rl_node *n) {
    for (int p = 0; p < n->type->n_outputs; p++) {
        n->out[p].dtype = n->type->outputs[p].dtype;
        n->out[p].shape = g->max_shape[n->id * RL_MAX_PORTS + p];
        n->out[p].data = g->bufs[g->out_buf[n->id * RL_MAX_PORTS + p]].data;
    }
}

static void bind_grad_outputs(rl_graph *g, rl_node *n) {
    for (int p = 0; p < n->type->n_outputs; p++) {
        n->grad_out[p] = n->out[p];
        n->grad_out[p].dtype = RL_F32;
        int gb = g->grad_buf[n->id * RL_MAX_PORTS + p];
        n->grad_out[p].data = gb >= 0 ? g->bufs[gb].data : NULL;
    }
}

/* The loss an optimizer reads must be finite before its gradient is seeded. */
static int seed_loss(rl_graph *g, const rl_buffer *b, rl_run_ctx *ctx, rl_error *err) {
    rl_node *n = b->node;
    const rl_tensor *loss = &n->out[b->port];
    int64_t cnt = rl_tensor_numel(loss);
    const float *v = rl_f32(loss);
    for (int64_t i = 0; i < cnt; i++)
        if (!isfinite(v[i]))
            /* Steps are counted from 1 in messages, as the driver shows them. */
            return rl_node_fail(n, err, "output '%s' is %s at step %lld: the run stops here (no update applied)",
                                n->type->outputs[b->port].name, isnan(v[i]) ? "NaN" : "infinite", (long long)ctx->step + 1);
    float *gdata = b->data;
    for (int64_t i = 0; i < cnt; i++) gdata[i] = 1.0f;
    (void)g;
    return 0;
}

static int run_step(rl_graph *g, const rl_step *st, rl_run_ctx *ctx, rl_error *err) {
    rl_node *n = st->node;
    for (int k = 0; k < st->zero_count; k++) {
        rl_buffer *b = &g->bufs[g->zero_list[st->zero_begin + k]];
        memset(b->data, 0, b->bytes);
        if (b->seed && seed_loss(g, b, ctx, err)) return -1;
    }
    int rc;
    switch (st->kind) {
    case RL_STEP_FWD:
        bind_inputs(g, n);
        bind_outputs(g, n);
        rc = n->type->forward ? n->type->forward(n, ctx, err) : 0;
        break;
    case RL_STEP_BWD:
        bind_inputs(g, n);
        bind_grad_outputs(g, n);
        rc = n->type->backward(n, ctx, err);
        break;
    default: /* optimizer: its forward applies the update */
        bind_inputs(g, n);
        rc = n->type->forward ? n->type->forward(n, ctx, err) : 0;
        break;
    }
    if (rc) {
        if (!strstr(err->msg, n->label))
            rl_fail_prefix(err, "%s%snode '%s' (%s): ", n->where, n->where[0] ? ": " : "", n->label, n->type->name);
        return -1;
    }
    return 0;
}

int rl_graph_run(rl_graph *g, const char *phase, rl_run_ctx *ctx, rl_error *err) {
    if (!g->compiled && rl_graph_compile(g, NULL, err)) return -1;
    int first = 0, last = g->n_steps - 1;
    if (phase) {
        int ph = -1;
        for (int i = 0; i < g->n_phases; i++)
            if (strcmp(g->phases[i], phase) == 0) ph = i;
        if (ph < 0) return rl_fail(err, "graph '%s' has no phase '%s'", g->name, phase);
        first = g->phase_first[ph];
        last = g->phase_last[ph];
    }
    for (int s = first; s <= last; s++)
        if (run_step(g, &g->steps[s], ctx, err)) return -1;
    return 0;
}
