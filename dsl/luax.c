#include "luax.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rlfr_user_where(lua_State *L, char *buf, size_t cap) {
    lua_Debug ar;
    size_t plen = strlen(RLFR_PRELUDE_CHUNK);
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar)) continue;
        if (ar.currentline < 0) continue; /* C function */
        if (ar.source && strncmp(ar.source, RLFR_PRELUDE_CHUNK, plen) == 0) continue;
        snprintf(buf, cap, "%s:%d", ar.short_src, ar.currentline);
        return;
    }
    snprintf(buf, cap, "?");
}

int rlfr_has_location(const char *msg) {
    /* A location is "<name>:<digits>:" or "<name>:<digits>)" with a ".lua"
       name; scripts are .lua files, so that is specific enough. */
    for (const char *p = strstr(msg, ".lua:"); p; p = strstr(p + 1, ".lua:"))
        if (isdigit((unsigned char)p[5])) return 1;
    return 0;
}

int rlfr_raise_msg(lua_State *L, const char *msg) {
    char where[256];
    rlfr_user_where(L, where, sizeof where);
    /* No script frame (e.g. end-of-script checks): the message stands alone. */
    if (rlfr_has_location(msg) || strcmp(where, "?") == 0) {
        lua_pushstring(L, msg);
    } else {
        lua_pushfstring(L, "%s: %s", where, msg);
    }
    return lua_error(L);
}

int rlfr_raise(lua_State *L, const rl_error *err) {
    return rlfr_raise_msg(L, err && err->msg[0] ? err->msg : "unknown error");
}

int rlfr_raisef(lua_State *L, const char *fmt, ...) {
    char msg[RL_ERROR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rlfr_raise_msg(L, msg);
}

typedef struct { rl_object *obj; } object_box;

static int object_gc(lua_State *L) {
    object_box *b = luaL_checkudata(L, 1, RLFR_OBJECT_MT);
    if (b->obj) rl_object_release(b->obj);
    b->obj = NULL;
    return 0;
}

static int object_tostring(lua_State *L) {
    object_box *b = luaL_checkudata(L, 1, RLFR_OBJECT_MT);
    lua_pushfstring(L, "rlfr object (%s)", b->obj && b->obj->type ? b->obj->type : "?");
    return 1;
}

static int object_index(lua_State *L) {
    object_box *b = luaL_checkudata(L, 1, RLFR_OBJECT_MT);
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "type") == 0 && b->obj) {
        lua_pushstring(L, b->obj->type);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

void rlfr_object_setup(lua_State *L) {
    if (luaL_newmetatable(L, RLFR_OBJECT_MT)) {
        lua_pushcfunction(L, object_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, object_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, object_index);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void rlfr_push_object(lua_State *L, rl_object *obj) {
    object_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->obj = NULL;
    rlfr_object_setup(L);
    luaL_setmetatable(L, RLFR_OBJECT_MT);
    if (obj) rl_object_retain(obj);
    b->obj = obj;
}

rl_object *rlfr_to_object(lua_State *L, int idx) {
    object_box *b = luaL_testudata(L, idx, RLFR_OBJECT_MT);
    return b ? b->obj : NULL;
}

rl_object *rlfr_check_object(lua_State *L, int idx, const char *type) {
    rl_object *o = rlfr_to_object(L, idx);
    if (!o) {
        rlfr_raisef(L, "expected an rlfr object%s%s, got %s", type ? " of type " : "", type ? type : "",
                    luaL_typename(L, idx));
        return NULL;
    }
    if (type && (!o->type || strcmp(o->type, type) != 0)) {
        rlfr_raisef(L, "expected an rlfr object of type %s, got one of type %s", type, o->type ? o->type : "?");
        return NULL;
    }
    return o;
}
