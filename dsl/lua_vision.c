/* The "rlfr.vision" Lua module: the vision encoder as a script value.
 *   rlfr.new_vit{ patch = 14, width = 64, depth = 2, heads = 4, mlp = 256,
 *                 out_hidden = 96, merge = 2, channels = 3, eps = 1e-6,
 *                 rope_theta = 10000, seed = 0 }      -> object of type "vit"
 *   rlfr.save_vit(v, dir)   writes dir/vision.safetensors + dir/vision_config.json
 *   rlfr.load_vit(dir)      -> "vit"
 * The object exposes its parameter set, so optimizer{params = v} trains it
 * and the vision_encoder node takes it as its `net` option. */
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "luax.h"
#include "vit.h"

static const char *const vit_keys[] = {"patch", "width", "depth", "heads", "mlp", "out_hidden", "merge",
                                       "channels", "eps", "rope_theta", "seed", NULL};

static int push_vit(lua_State *L, rl_vit *v, const char *what) {
    rl_object *o = rl_vit_object(v);
    if (!o) return rlfr_raisef(L, "%s: out of memory", what);
    rlfr_push_object(L, o);
    rl_object_release(o); /* the Lua value holds the only reference now */
    return 1;
}

/* Integer field of the options table (0 when absent); raises on a non-integer. */
static int64_t int_field(lua_State *L, const char *key) {
    lua_getfield(L, 1, key);
    int64_t v = 0;
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        v = (int64_t)lua_tointegerx(L, -1, &ok);
        if (!ok) rlfr_raisef(L, "new_vit: '%s' must be an integer", key);
    }
    lua_pop(L, 1);
    return v;
}

static double num_field(lua_State *L, const char *key) {
    lua_getfield(L, 1, key);
    double v = 0;
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        v = (double)lua_tonumberx(L, -1, &ok);
        if (!ok) rlfr_raisef(L, "new_vit: '%s' must be a number", key);
    }
    lua_pop(L, 1);
    return v;
}

static int l_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        int ok = 0;
        for (int i = 0; vit_keys[i]; i++) ok |= strcmp(k, vit_keys[i]) == 0;
        if (!ok) return rlfr_raisef(L, "new_vit: unknown option '%s'", k);
    }
    rl_vit_config c = {0};
    c.patch = int_field(L, "patch");
    c.width = int_field(L, "width");
    c.depth = int_field(L, "depth");
    c.heads = int_field(L, "heads");
    c.mlp = int_field(L, "mlp");
    c.out_hidden = int_field(L, "out_hidden");
    c.merge = int_field(L, "merge");
    c.channels = int_field(L, "channels");
    c.eps = (float)num_field(L, "eps");
    c.rope_theta = num_field(L, "rope_theta");
    int64_t seed = int_field(L, "seed");
    if (!c.width || !c.heads || !c.out_hidden)
        return rlfr_raisef(L, "new_vit: 'width', 'heads' and 'out_hidden' are required");
    lua_getfield(L, 1, "depth");
    int no_depth = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (no_depth) return rlfr_raisef(L, "new_vit: 'depth' is required");
    rl_error err = {0};
    rl_vit *v = rl_vit_new(&c, (uint64_t)seed, &err);
    if (!v) return rlfr_raise(L, &err);
    return push_vit(L, v, "new_vit");
}

static int l_save(lua_State *L) {
    rl_object *o = rlfr_check_object(L, 1, "vit");
    const char *dir = luaL_checkstring(L, 2);
    rl_error err = {0};
    if (rl_mkdirs(dir, &err) || rl_vit_save(o->ptr, dir, &err)) return rlfr_raise(L, &err);
    return 0;
}

static int l_load(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    rl_error err = {0};
    rl_vit *v = rl_vit_load(dir, &err);
    if (!v) return rlfr_raise(L, &err);
    return push_vit(L, v, dir);
}

int rlfr_open_vision(lua_State *L) {
    static const luaL_Reg fns[] = {{"new_vit", l_new}, {"save_vit", l_save}, {"load_vit", l_load}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
