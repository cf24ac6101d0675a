/* The "rlfr.core" Lua module: the C primitives under the prelude
 * (dsl/rlfr.lua): graphs (lua_graph.c), parameter sets, the node registry,
 * threads, and the few OS services the driver needs. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "lua_graph.h"
#include "luax.h"
#include "node.h"
#include "params.h"
#include "threads.h"

/* type_names() -> {"linear", ...} in registry order */
static int l_type_names(lua_State *L) {
    int count = 0;
    const rl_node_type *const *types = rl_node_types(&count);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        lua_pushstring(L, types[i]->name);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void push_ports(lua_State *L, const rl_port_spec *ports, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const rl_port_spec *p = &ports[i];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, p->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, (p->flags & RL_PORT_ANY_DTYPE) ? "any" : rl_dtype_name(p->dtype));
        lua_setfield(L, -2, "dtype");
        lua_pushinteger(L, p->rank);
        lua_setfield(L, -2, "rank");
        lua_pushboolean(L, (p->flags & RL_PORT_OPTIONAL) != 0);
        lua_setfield(L, -2, "optional");
        lua_pushboolean(L, (p->flags & RL_PORT_NO_GRAD) != 0);
        lua_setfield(L, -2, "no_grad");
        lua_pushstring(L, p->doc ? p->doc : "");
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, i + 1);
    }
}

/* type_info(name) -> {name, doc, inputs, outputs, options, optimizer} or nil */
static int l_type_info(lua_State *L) {
    const rl_node_type *t = rl_node_type_find(luaL_checkstring(L, 1));
    if (!t) return 0;
    lua_createtable(L, 0, 6);
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, t->doc ? t->doc : "");
    lua_setfield(L, -2, "doc");
    push_ports(L, t->inputs, t->n_inputs);
    lua_setfield(L, -2, "inputs");
    push_ports(L, t->outputs, t->n_outputs);
    lua_setfield(L, -2, "outputs");
    lua_pushboolean(L, (t->flags & RL_NODE_OPTIMIZER) != 0);
    lua_setfield(L, -2, "optimizer");
    lua_pushboolean(L, t->backward != NULL);
    lua_setfield(L, -2, "backward");
    lua_createtable(L, t->n_options, 0);
    for (int i = 0; i < t->n_options; i++) {
        const rl_option_spec *o = &t->options[i];
        lua_createtable(L, 0, 5);
        lua_pushstring(L, o->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, rl_value_kind_name(o->kind));
        lua_setfield(L, -2, "kind");
        if (o->def) {
            lua_pushstring(L, o->def);
            lua_setfield(L, -2, "default");
        }
        lua_pushstring(L, o->doc ? o->doc : "");
        lua_setfield(L, -2, "doc");
        if (o->object_type) {
            lua_pushstring(L, o->object_type);
            lua_setfield(L, -2, "object_type");
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "options");
    return 1;
}

/* params(name, seed) -> object of type "params" */
static int l_params(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_Integer seed = luaL_optinteger(L, 2, 0);
    rl_params *p = rl_params_new(name, (uint64_t)seed);
    if (!p) return rlfr_raisef(L, "params '%s': out of memory", name);
    rl_object *o = rl_params_object(p);
    if (!o) {
        rl_params_free(p);
        return rlfr_raisef(L, "params '%s': out of memory", name);
    }
    rlfr_push_object(L, o);
    rl_object_release(o); /* the Lua value now holds the only reference */
    return 1;
}

/* params_info(obj) -> {name, numel, tensors, finalized} of a params set or a model's set */
static int l_params_info(lua_State *L) {
    rl_object *o = rlfr_check_object(L, 1, NULL);
    rl_params *p = rl_object_params(o);
    if (!p) return rlfr_raisef(L, "this %s object has no parameters", o->type ? o->type : "?");
    lua_createtable(L, 0, 4);
    lua_pushstring(L, p->name ? p->name : "");
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, (lua_Integer)p->numel);
    lua_setfield(L, -2, "numel");
    lua_pushinteger(L, p->n);
    lua_setfield(L, -2, "tensors");
    lua_pushboolean(L, p->finalized);
    lua_setfield(L, -2, "finalized");
    return 1;
}

static int l_set_threads(lua_State *L) {
    rl_set_threads((int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_get_threads(lua_State *L) {
    lua_pushinteger(L, rl_get_threads());
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* Monotonic seconds, for rates and ETAs (os.clock is CPU time, wrong with threads). */
static int l_clock(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* mkdir_p(path) -> true, or nil + message */
static int l_mkdir_p(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    char buf[4096];
    if (len == 0 || len >= sizeof buf) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad directory name '%s'", path);
        return 2;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot create directory '%s': %s", buf, strerror(errno));
            return 2;
        }
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        lua_pushnil(L);
        lua_pushfstring(L, "'%s' is not a directory", path);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_where(lua_State *L) {
    char where[256];
    rlfr_user_where(L, where, sizeof where);
    lua_pushstring(L, where);
    return 1;
}

static int l_raise(lua_State *L) { return rlfr_raise_msg(L, luaL_checkstring(L, 1)); }

static int l_has_location(lua_State *L) {
    lua_pushboolean(L, rlfr_has_location(luaL_checkstring(L, 1)));
    return 1;
}

static int l_edit_distance(lua_State *L) {
    lua_pushinteger(L, rl_edit_distance(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"type_names", l_type_names}, {"type_info", l_type_info}, {"params", l_params},
    {"params_info", l_params_info}, {"set_threads", l_set_threads}, {"get_threads", l_get_threads},
    {"isatty", l_isatty},         {"clock", l_clock},         {"mkdir_p", l_mkdir_p},
    {"where", l_where},           {"raise", l_raise},         {"has_location", l_has_location},
    {"edit_distance", l_edit_distance}, {NULL, NULL},
};

int rlfr_open_core(lua_State *L) {
    rlfr_object_setup(L);
    lua_newtable(L);
    luaL_setfuncs(L, core_funcs, 0);
    rlfr_graph_register(L);
    lua_pushstring(L, RLFR_VERSION);
    lua_setfield(L, -2, "version");
    /* Names of the binding modules, so the prelude can merge them into rlfr. */
    lua_newtable(L);
    for (int i = 0; rlfr_modules[i].name; i++) {
        lua_pushstring(L, rlfr_modules[i].name);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "modules");
    return 1;
}
