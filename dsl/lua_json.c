/* Conversions between Lua values and jansson values (see lua_json.h). */
#include "lua_json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

/* Deeper nesting is surely a cycle (or not metadata). */
#define MAX_DEPTH 32

void rlfr_push_json(lua_State *L, const json_t *j) {
    luaL_checkstack(L, 4, "JSON nesting");
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            if (json_is_null(v)) continue;
            rlfr_push_json(L, v);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        lua_createtable(L, (int)json_array_size(j), 0);
        for (size_t i = 0; i < json_array_size(j); i++) {
            rlfr_push_json(L, json_array_get(j, i));
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(j)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(j)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default: lua_pushnil(L); break;
    }
}

/* 1 when the table at idx has exactly the keys 1..n with n > 0. */
static int is_sequence(lua_State *L, int idx, lua_Integer *n_out) {
    lua_Integer n = 0, max = 0;
    int only_ints = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
        if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max) max = k;
            if (k < 1) only_ints = 0;
        } else {
            only_ints = 0;
        }
    }
    *n_out = n;
    return n > 0 && only_ints && max == n;
}

static json_t *convert(lua_State *L, int idx, const char *what, int depth, char *msg, size_t cap) {
    if (depth > MAX_DEPTH) {
        snprintf(msg, cap, "%s: nested more than %d levels deep (a cycle?)", what, MAX_DEPTH);
        return NULL;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(msg, cap, "%s: Lua stack exhausted", what);
        return NULL;
    }
    idx = lua_absindex(L, idx);
    json_t *j = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: j = json_boolean(lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            j = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double v = lua_tonumber(L, idx);
            if (!isfinite(v)) {
                snprintf(msg, cap, "%s: %g cannot be written as JSON", what, v);
                return NULL;
            }
            j = json_real(v);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        j = json_stringn(s, n);
        if (!j) {
            snprintf(msg, cap, "%s: the string is not valid UTF-8", what);
            return NULL;
        }
        break;
    }
    case LUA_TTABLE: {
        lua_Integer n;
        char sub[256];
        if (is_sequence(L, idx, &n)) {
            j = json_array();
            for (lua_Integer i = 1; j && i <= n; i++) {
                lua_rawgeti(L, idx, i);
                snprintf(sub, sizeof sub, "%s[%lld]", what, (long long)i);
                json_t *v = convert(L, -1, sub, depth + 1, msg, cap);
                lua_pop(L, 1);
                if (!v || json_array_append_new(j, v)) {
                    if (v) snprintf(msg, cap, "%s: out of memory", sub);
                    json_decref(j);
                    return NULL;
                }
            }
            break;
        }
        j = json_object();
        lua_pushnil(L);
        while (j && lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                snprintf(msg, cap, "%s: a table written as JSON needs string keys or keys 1..n", what);
                lua_pop(L, 2);
                json_decref(j);
                return NULL;
            }
            const char *k = lua_tostring(L, -2);
            snprintf(sub, sizeof sub, "%s.%s", what, k);
            json_t *v = convert(L, -1, sub, depth + 1, msg, cap);
            lua_pop(L, 1);
            /* json_object_set_new releases v when it fails (a key that is not UTF-8). */
            if (!v || json_object_set_new(j, k, v)) {
                if (v) snprintf(msg, cap, "%s: the key is not valid UTF-8", sub);
                lua_pop(L, 1);
                json_decref(j);
                return NULL;
            }
        }
        break;
    }
    default:
        snprintf(msg, cap, "%s: a %s cannot be written as JSON", what, luaL_typename(L, idx));
        return NULL;
    }
    if (!j) snprintf(msg, cap, "%s: out of memory", what);
    return j;
}

json_t *rlfr_to_json(lua_State *L, int idx, const char *what, char *msg, size_t cap) {
    return convert(L, idx, what, 0, msg, cap);
}
