/* The graph binding: a userdata owning one rl_graph plus its run context.
 * These are the thin primitives under the Lua builder in dsl/rlfr.lua
 * (which adds node constructors, port references and phases). Every C
 * failure becomes a Lua error carrying the core's message. */
#include "lua_graph.h"

#include <string.h>

#include "alloc.h"
#include "graph.h"
#include "lua_opts.h"
#include "luax.h"

#define GRAPH_MT "rlfr.graph"

typedef struct graph_box {
    rl_graph *g;
    rl_run_ctx ctx;
} graph_box;

static graph_box *check_graph(lua_State *L, int idx) {
    graph_box *b = luaL_checkudata(L, idx, GRAPH_MT);
    if (!b->g) rlfr_raisef(L, "graph already freed");
    return b;
}

rl_graph *rlfr_check_graph(lua_State *L, int idx) { return check_graph(L, idx)->g; }

static rl_node *check_node(lua_State *L, graph_box *b, int idx) {
    lua_Integer id = luaL_checkinteger(L, idx);
    rl_node *n = NULL;
    if (id >= 0 && id < rl_graph_node_count(b->g)) n = rl_graph_node(b->g, (int)id);
    if (!n || n->id != id) {
        /* ids are indices in practice; fall back to a scan if that ever changes */
        n = NULL;
        for (int i = 0; i < rl_graph_node_count(b->g); i++) {
            rl_node *m = rl_graph_node(b->g, i);
            if (m && m->id == id) n = m;
        }
    }
    if (!n) rlfr_raisef(L, "graph '%s' has no node %lld", rl_graph_name(b->g), (long long)id);
    return n;
}

static int graph_gc(lua_State *L) {
    graph_box *b = luaL_checkudata(L, 1, GRAPH_MT);
    if (b->g) rl_graph_free(b->g);
    b->g = NULL;
    return 0;
}

/* graph_new(name) -> G */
static int l_graph_new(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    graph_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, GRAPH_MT);
    b->g = rl_graph_new(name);
    if (!b->g) return rlfr_raisef(L, "graph '%s': out of memory", name);
    return 1;
}

/* add(G, type, label|nil, where, phase|nil, opts) -> node id */
static int l_add(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    const char *type = luaL_checkstring(L, 2);
    const char *label = luaL_optstring(L, 3, NULL);
    const char *where = luaL_optstring(L, 4, NULL);
    const char *phase = luaL_optstring(L, 5, NULL);
    luaL_checktype(L, 6, LUA_TTABLE);
    static const char *const reserved[] = {"name", "phase", NULL};
    rl_opts opts;
    rl_opts_init(&opts);
    rl_error err;
    rl_error_clear(&err);
    rl_node *n = NULL;
    int converted = rlfr_table_to_opts(L, 6, reserved, &opts, &err) == 0;
    if (converted) n = rl_graph_add_named(b->g, type, label, where, phase, &opts, &err);
    rl_opts_free(&opts);
    if (!n) {
        /* Errors about a created node already carry its location; the others
           (unknown type, bad option value) get the script line of the call,
           and the converter's ones also the node type it does not know. */
        char msg[RL_ERROR_MSG + 300];
        if (rlfr_has_location(err.msg))
            snprintf(msg, sizeof msg, "%s", err.msg);
        else if (!converted)
            snprintf(msg, sizeof msg, "%s: %s: %s", where ? where : "?", type, err.msg);
        else
            snprintf(msg, sizeof msg, "%s: %s", where ? where : "?", err.msg);
        return rlfr_raise_msg(L, msg);
    }
    lua_pushinteger(L, n->id);
    return 1;
}

/* connect(G, dst, dst_port, src, src_port) (ports 0-based) */
static int l_connect(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_node *dst = check_node(L, b, 2);
    int dport = (int)luaL_checkinteger(L, 3);
    rl_node *src = check_node(L, b, 4);
    int sport = (int)luaL_checkinteger(L, 5);
    rl_error err;
    rl_error_clear(&err);
    if (rl_graph_connect(b->g, dst, dport, src, sport, &err)) return rlfr_raise(L, &err);
    return 0;
}

/* mark_output(G, id, port) */
static int l_mark_output(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_node *n = check_node(L, b, 2);
    int port = (int)luaL_checkinteger(L, 3);
    rl_error err;
    rl_error_clear(&err);
    if (rl_graph_mark_output(b->g, n, port, &err)) return rlfr_raise(L, &err);
    return 0;
}

/* compile(G, unplanned) */
static int l_compile(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_compile_opts co = {.unplanned = lua_toboolean(L, 2)};
    rl_error err;
    rl_error_clear(&err);
    if (rl_graph_compile(b->g, &co, &err)) return rlfr_raise(L, &err);
    return 0;
}

static int l_compiled(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    lua_pushboolean(L, rl_graph_compiled(b->g));
    return 1;
}

/* run(G, phase|nil, step, repeat, seed, threads, reset_metrics) */
static int l_run(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    const char *phase = luaL_optstring(L, 2, NULL);
    b->ctx.step = (int64_t)luaL_optinteger(L, 3, 0);
    b->ctx.repeat = (int64_t)luaL_optinteger(L, 4, 0);
    b->ctx.seed = (uint64_t)luaL_optinteger(L, 5, 0);
    b->ctx.threads = (int)luaL_optinteger(L, 6, 1);
    if (lua_toboolean(L, 7)) b->ctx.n_metrics = 0;
    rl_error err;
    rl_error_clear(&err);
    if (rl_graph_run(b->g, phase, &b->ctx, &err)) return rlfr_raise(L, &err);
    return 0;
}

/* metrics(G) -> keys (array, in recording order), values {key = number}, nodes {key = label} */
static int l_metrics(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    int n = b->ctx.n_metrics;
    if (n < 0) n = 0;
    if (n > RL_MAX_METRICS) n = RL_MAX_METRICS;
    lua_createtable(L, n, 0);
    lua_createtable(L, 0, n);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        const rl_metric *m = &b->ctx.metrics[i];
        lua_pushfstring(L, "%s.%s", m->node ? m->node : "?", m->name ? m->name : "?");
        lua_pushvalue(L, -1);
        lua_rawseti(L, -5, i + 1);
        lua_pushvalue(L, -1);
        lua_pushnumber(L, (lua_Number)m->value);
        lua_rawset(L, -5);
        lua_pushstring(L, m->node ? m->node : "?");
        lua_rawset(L, -3);
    }
    return 3;
}

/* read(G, id, port) -> flat table of values with field shape = {dims} */
static int l_read(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_node *n = check_node(L, b, 2);
    int port = (int)luaL_checkinteger(L, 3);
    if (port < 0 || port >= n->type->n_outputs) return rlfr_raisef(L, "node '%s': no output %d", n->label, port);
    const rl_tensor *t = &n->out[port];
    if (!t->data)
        return rlfr_raisef(L, "%s: node '%s' (%s): output '%s' has no data yet (run the graph first)",
                           n->where ? n->where : "?", n->label, n->type->name, n->type->outputs[port].name);
    int64_t numel = rl_tensor_numel(t);
    if (numel < 0 || numel > (int64_t)1 << 26)
        return rlfr_raisef(L, "node '%s': output '%s' is too large to read into Lua", n->label,
                           n->type->outputs[port].name);
    lua_createtable(L, (int)numel, 1);
    for (int64_t i = 0; i < numel; i++) {
        switch (t->dtype) {
        case RL_F32: lua_pushnumber(L, rl_f32(t)[i]); break;
        case RL_BF16: lua_pushnumber(L, rl_bf16_to_f32(rl_bf16p(t)[i])); break;
        case RL_I32: lua_pushinteger(L, rl_i32(t)[i]); break;
        case RL_U8: lua_pushinteger(L, rl_u8(t)[i]); break;
        default: lua_pushnil(L);
        }
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    lua_createtable(L, t->shape.ndim, 0);
    for (int d = 0; d < t->shape.ndim; d++) {
        lua_pushinteger(L, t->shape.dim[d]);
        lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
    lua_pushstring(L, rl_dtype_name(t->dtype));
    lua_setfield(L, -2, "dtype");
    return 1;
}

static void set_size(lua_State *L, const char *k, size_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

/* plan(G) -> {arena_bytes, naive_bytes, lower_bound_bytes, ...} */
static int l_plan(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    const rl_plan_stats *s = rl_graph_plan_stats(b->g);
    if (!s) return rlfr_raisef(L, "graph '%s' is not compiled (call g:compile() first)", rl_graph_name(b->g));
    lua_createtable(L, 0, 7);
    set_size(L, "arena_bytes", s->arena_bytes);
    set_size(L, "naive_bytes", s->naive_bytes);
    set_size(L, "lower_bound_bytes", s->lower_bound_bytes);
    set_size(L, "unplanned_bytes", s->unplanned_bytes);
    set_size(L, "buffers", (size_t)s->n_buffers);
    set_size(L, "steps", (size_t)s->n_steps);
    set_size(L, "inplace", (size_t)s->n_inplace);
    return 1;
}

static int l_print_plan(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    if (!rl_graph_compiled(b->g))
        return rlfr_raisef(L, "graph '%s' is not compiled (call g:compile() first)", rl_graph_name(b->g));
    fflush(stdout);
    rl_graph_print_plan(b->g, stdout);
    fflush(stdout);
    return 0;
}

/* node_info(G, id) -> label, where, type */
static int l_node_info(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_node *n = check_node(L, b, 2);
    lua_pushstring(L, n->label ? n->label : "");
    lua_pushstring(L, n->where ? n->where : "");
    lua_pushstring(L, n->type->name);
    return 3;
}

/* find(G, label) -> id or nil */
static int l_find(lua_State *L) {
    graph_box *b = check_graph(L, 1);
    rl_node *n = rl_graph_find(b->g, luaL_checkstring(L, 2));
    if (!n) return 0;
    lua_pushinteger(L, n->id);
    return 1;
}

static const luaL_Reg graph_funcs[] = {
    {"graph_new", l_graph_new}, {"add", l_add},           {"connect", l_connect},
    {"mark_output", l_mark_output}, {"compile", l_compile}, {"compiled", l_compiled},
    {"run", l_run},             {"metrics", l_metrics},   {"read", l_read},
    {"plan", l_plan},           {"print_plan", l_print_plan}, {"node_info", l_node_info},
    {"find", l_find},           {NULL, NULL},
};

void rlfr_graph_register(lua_State *L) {
    if (luaL_newmetatable(L, GRAPH_MT)) {
        lua_pushcfunction(L, graph_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, graph_funcs, 0);
}
