#include "lua_opts.h"

#include <string.h>

#include "alloc.h"
#include "luax.h"

static int skipped(const char *key, const char *const *skip) {
    for (; skip && *skip; skip++)
        if (strcmp(key, *skip) == 0) return 1;
    return 0;
}

/* An array option: every element a number, or every element a string. */
static int set_list(lua_State *L, int t, const char *key, rl_opts *opts, rl_error *err) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, t);
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        count++;
        lua_pop(L, 1);
    }
    if (count != n) return rl_fail(err, "option '%s': a list must be an array (1..n), not a table with keys", key);
    if (n > 1000000) return rl_fail(err, "option '%s': list too long (%lld elements)", key, (long long)n);
    if (n == 0) {
        if (rl_opts_set_numbers(opts, key, NULL, 0)) return rl_fail(err, "option '%s': out of memory", key);
        return 0;
    }
    lua_rawgeti(L, t, 1);
    int first = lua_type(L, -1);
    lua_pop(L, 1);
    if (first != LUA_TNUMBER && first != LUA_TSTRING)
        return rl_fail(err, "option '%s': list elements must be numbers or strings, not %s", key,
                       lua_typename(L, first));
    size_t bytes;
    if (rl_mul_size((size_t)n, first == LUA_TNUMBER ? sizeof(double) : sizeof(char *), &bytes))
        return rl_fail(err, "option '%s': list too long", key);
    void *buf = rl_malloc(bytes);
    if (!buf) return rl_fail(err, "option '%s': out of memory", key);
    int rc = 0;
    for (lua_Integer i = 1; i <= n && rc == 0; i++) {
        lua_rawgeti(L, t, i);
        int ty = lua_type(L, -1);
        if (ty != first) {
            rc = rl_fail(err, "option '%s': element %lld is a %s, but the list holds %ss", key, (long long)i,
                         lua_typename(L, ty), first == LUA_TNUMBER ? "number" : "string");
        } else if (first == LUA_TNUMBER) {
            ((double *)buf)[i - 1] = (double)lua_tonumber(L, -1);
        } else {
            /* The string stays alive: it is referenced by the table. */
            ((const char **)buf)[i - 1] = lua_tostring(L, -1);
        }
        lua_pop(L, 1);
    }
    if (rc == 0) {
        int r = first == LUA_TNUMBER ? rl_opts_set_numbers(opts, key, buf, (int)n)
                                     : rl_opts_set_strings(opts, key, (const char *const *)buf, (int)n);
        if (r) rc = rl_fail(err, "option '%s': out of memory", key);
    }
    rl_free(buf);
    return rc;
}

int rlfr_table_to_opts(lua_State *L, int idx, const char *const *skip, rl_opts *opts, rl_error *err) {
    int t = lua_absindex(L, idx);
    if (!lua_istable(L, t)) return rl_fail(err, "options must be a table");
    lua_pushnil(L);
    while (lua_next(L, t)) {
        /* key at -2, value at -1 */
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return rl_fail(err, "options must be given as name = value (found a positional value)");
        }
        const char *key = lua_tostring(L, -2);
        int rc = 0;
        if (skipped(key, skip)) {
            /* handled by the DSL itself */
        } else {
            switch (lua_type(L, -1)) {
            case LUA_TNUMBER:
                if (lua_isinteger(L, -1))
                    rc = rl_opts_set_int(opts, key, (int64_t)lua_tointeger(L, -1));
                else
                    rc = rl_opts_set_number(opts, key, (double)lua_tonumber(L, -1));
                if (rc) rl_fail(err, "option '%s': out of memory", key);
                break;
            case LUA_TBOOLEAN:
                rc = rl_opts_set_bool(opts, key, lua_toboolean(L, -1));
                if (rc) rl_fail(err, "option '%s': out of memory", key);
                break;
            case LUA_TSTRING:
                rc = rl_opts_set_string(opts, key, lua_tostring(L, -1));
                if (rc) rl_fail(err, "option '%s': out of memory", key);
                break;
            case LUA_TTABLE:
                rc = set_list(L, lua_absindex(L, -1), key, opts, err);
                break;
            case LUA_TUSERDATA: {
                rl_object *o = rlfr_to_object(L, -1);
                if (!o) {
                    rc = rl_fail(err, "option '%s': this userdata is not an rlfr object", key);
                } else if (rl_opts_set_object(opts, key, o)) {
                    rc = rl_fail(err, "option '%s': out of memory", key);
                }
                break;
            }
            default:
                rc = rl_fail(err, "option '%s': a %s cannot be an option value", key, luaL_typename(L, -1));
            }
        }
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}
