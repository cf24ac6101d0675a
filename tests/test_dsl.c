/* The Lua DSL below the CLI: option conversion (Lua values -> rl_opts),
 * location detection, and the graph builder driven from an inline script
 * (named/positional inputs, outputs read back, phases, metrics, plan,
 * config overrides, error locations). */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_opts.h"
#include "luax.h"
#include "script.h"
#include "testlib.h"

static void test_has_location(void) {
    CHECK(rlfr_has_location("a/b.lua:12: node 'x' (silu): bad"));
    CHECK(rlfr_has_location("node 'x' (g.lua:3): bad"));
    CHECK(!rlfr_has_location("unknown node type 'x'"));
    CHECK(!rlfr_has_location("file.lua: no line"));
    CHECK(!rlfr_has_location(""));
}

/* Evaluates `expr` (a Lua table constructor) and converts it. */
static int convert(lua_State *L, const char *expr, rl_opts *o, rl_error *err) {
    char code[512];
    snprintf(code, sizeof code, "return %s", expr);
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -2;
    }
    static const char *const skip[] = {"name", "phase", NULL};
    rl_error_clear(err);
    int rc = rlfr_table_to_opts(L, -1, skip, o, err);
    lua_pop(L, 1);
    return rc;
}

static void test_opts(void) {
    rlfr_script_args a = {.script = "x.lua", .mode = "run"};
    lua_State *L = rlfr_lua_new(&a);
    CHECK(L != NULL);
    if (!L) return;
    rl_opts o;
    rl_error err;
    rl_opts_init(&o);
    int top = lua_gettop(L);
    CHECK(convert(L, "{ n = 3, x = 2.5, whole = 2.0, b = true, s = 'chat', xs = {0.25, 1}, "
                     "ss = {'a', 'b'}, empty = {}, name = 'skipped', phase = 'update' }", &o, &err) == 0);
    const rl_value *v;
    CHECK((v = rl_opts_get(&o, "n")) && v->kind == RL_VAL_INT && v->i == 3);
    CHECK((v = rl_opts_get(&o, "x")) && v->kind == RL_VAL_NUMBER && v->num == 2.5);
    CHECK((v = rl_opts_get(&o, "whole")) && v->kind == RL_VAL_NUMBER && v->num == 2.0); /* float subtype */
    CHECK((v = rl_opts_get(&o, "b")) && v->kind == RL_VAL_BOOL && v->num == 1);
    CHECK((v = rl_opts_get(&o, "s")) && v->kind == RL_VAL_STRING && strcmp(v->str, "chat") == 0);
    CHECK((v = rl_opts_get(&o, "xs")) && v->kind == RL_VAL_NUMBERS && v->n == 2 && v->nums[0] == 0.25 &&
          v->nums[1] == 1.0);
    CHECK((v = rl_opts_get(&o, "ss")) && v->kind == RL_VAL_STRINGS && v->n == 2 && strcmp(v->strs[1], "b") == 0);
    CHECK((v = rl_opts_get(&o, "empty")) && v->kind == RL_VAL_NUMBERS && v->n == 0);
    CHECK(rl_opts_get(&o, "name") == NULL && rl_opts_get(&o, "phase") == NULL);
    rl_opts_free(&o);

    /* An object option keeps a reference to the params set. */
    rl_opts_init(&o);
    CHECK(convert(L, "{ params = require('rlfr').params{ name = 'p', seed = 3 } }", &o, &err) == 0);
    CHECK((v = rl_opts_get(&o, "params")) && v->kind == RL_VAL_OBJECT && strcmp(v->obj->type, "params") == 0 &&
          v->obj->refs >= 1);
    rl_opts_free(&o);
    lua_gc(L, LUA_GCCOLLECT);

    const char *bad[][2] = {
        {"{ xs = {1, 'a'} }", "element 2 is a string"},
        {"{ xs = {{1}} }", "list elements must be numbers or strings"},
        {"{ t = { a = 1 } }", "must be an array"},
        {"{ f = print }", "cannot be an option value"},
        {"{ 1, 2 }", "name = value"},
        {"{ u = io.stdout }", "not an rlfr object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_opts_init(&o);
        int rc = convert(L, bad[i][0], &o, &err);
        CHECK_MSG(rc == -1 && strstr(err.msg, bad[i][1]), "%s -> rc %d '%s'", bad[i][0], rc, err.msg);
        rl_opts_free(&o);
    }
    CHECK(lua_gettop(L) == top);
    lua_close(L);
}

/* The builder, end to end, from Lua. Line numbers matter: the chunk is named
   dsl_test.lua and the script checks the locations it gets back. */
static const char *script =
    "local rlfr = require 'rlfr'\n"                                                           /* 1 */
    "local cfg = rlfr.config { steps = 2, lr = 0.1, flow = { coef = 0.01, t = {0.8} }, tag = 'a', on = false }\n"
    "assert(cfg.lr == 0.5 and math.type(cfg.lr) == 'float', 'lr override')\n"                /* 3 */
    "assert(cfg.flow.coef == 0.0 and #cfg.flow.t == 2 and cfg.flow.t[2] == 0.9, 'nested override')\n"
    "assert(cfg.tag == 'b=c' and cfg.on == true and cfg.steps == 2, 'string/bool override')\n"
    "local g = rlfr.graph 'dsl'\n"                                                            /* 6 */
    "local d = g:regression_data { name = 'data', batch = 3, inputs = 2, outputs = 1, seed = 5 }\n"
    "assert(tostring(d):find('dsl_test.lua:7', 1, true), tostring(d))\n"                      /* 8 */
    "local s = g:scale { factor = 2.0 } { x = d.x }\n"                                        /* 9 */
    "local u\n"
    "g:phase('second', function() u = g:scale { name = 'again', factor = -1.0 } (s) end)\n"  /* 11 */
    "g:output(d.x); g:output(s); g:output(u.y)\n"
    "local loss = g:mse_loss { name = 'mse' } (s, d.x)\n"                                     /* 13 */
    "local ok, e = pcall(function() return d.nope end)\n"
    "assert(not ok and e:find('dsl_test.lua:14:', 1, true) and e:find(\"no output 'nope'\"), e)\n"
    "ok, e = pcall(function() return g:scale { factr = 2 } end)\n"                           /* 16 */
    "assert(not ok and e:find('dsl_test.lua:16:', 1, true) and e:find(\"did you mean 'factor'\"), e)\n"
    "g:compile()\n"                                                                           /* 18 */
    "local p = g:plan()\n"
    "assert(p.arena_bytes > 0 and p.naive_bytes >= p.arena_bytes and p.lower_bound_bytes <= p.arena_bytes)\n"
    "g:run('main', 0)\n"                                                                      /* 21 */
    "local x, y = g:read(d.x), g:read(s)\n"
    "assert(#x == 6 and x.shape[1] == 3 and x.shape[2] == 2 and x.dtype == 'f32', 'shape')\n"
    "for i = 1, 6 do assert(y[i] == 2 * x[i], 'scale') end\n"
    "local m = g:metrics()\n"                                                                 /* 25 */
    "local want = 0; for i = 1, 6 do want = want + x[i] * x[i] end; want = want / 6\n"
    "assert(math.abs(m['mse.loss'] - want) <= 1e-5 * want, 'mse metric')\n"
    "g:run('second', 0)\n"
    "local z = g:read(u.y)\n"                                                                 /* 29 */
    "for i = 1, 6 do assert(z[i] == -y[i], 'second phase') end\n"
    "local info = rlfr.params_info(rlfr.params { name = 'q' })\n"
    "assert(info.name == 'q' and info.numel == 0)\n"
    "assert(#rlfr.nodes() > 0 and rlfr.node_info('linear').inputs[1].name == 'x')\n"         /* 33 */
    "return 'done'\n";

static void test_builder(void) {
    const char *sets[] = {"lr=0.5", "flow.coef=0", "flow.t={0.8, 0.9}", "tag=b=c", "on=true"};
    rlfr_script_args a = {.script = "dsl_test.lua", .mode = "run", .seed = 1, .threads = 1,
                          .sets = sets, .n_sets = 5};
    lua_State *L = rlfr_lua_new(&a);
    CHECK(L != NULL);
    if (!L) return;
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_remove(L, -2);
    int rc = luaL_loadbuffer(L, script, strlen(script), "@dsl_test.lua");
    CHECK_MSG(rc == LUA_OK, "%s", lua_tostring(L, -1));
    if (rc == LUA_OK) {
        rc = lua_pcall(L, 0, 1, -2);
        CHECK_MSG(rc == LUA_OK, "%s", lua_tostring(L, -1));
        if (rc == LUA_OK) CHECK(strcmp(lua_tostring(L, -1), "done") == 0);
    }
    lua_close(L);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_has_location();
    test_opts();
    test_builder();
    return rl_test_finish("test_dsl");
}
