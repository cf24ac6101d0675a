/* Runs a script under lua_pcall and reports a failure as exactly one line
 * "error: FILE:LINE: message" on stderr (plus a traceback with --verbose). */
#include "script.h"

#include <stdio.h>
#include <string.h>

#include "luax.h"

/* The error value `rlfr.train` raises in plan mode once the plan is printed:
   a table with rlfr_stop = true. It means "done", not failure. */
static int is_stop(lua_State *L, int idx) {
    if (!lua_istable(L, idx)) return 0;
    lua_getfield(L, idx, "rlfr_stop");
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* Message handler: runs where the error happened, so the stack still shows
   the script line to blame. Upvalue 1: verbose. */
static int on_error(lua_State *L) {
    if (is_stop(L, 1)) return 1;
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    /* One line: a message spanning lines would break "exactly one line". */
    msg = luaL_gsub(L, msg, "\n", " ");
    if (!rlfr_has_location(msg)) {
        char where[256];
        rlfr_user_where(L, where, sizeof where);
        if (strcmp(where, "?") != 0) msg = lua_pushfstring(L, "%s: %s", where, msg);
    }
    if (lua_toboolean(L, lua_upvalueindex(1))) luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Calls the function on top of the stack (no arguments). Returns 0 ok, 1 failed
   (reported), 2 stopped on purpose. */
static int protected_call(lua_State *L, int verbose) {
    int fn = lua_gettop(L);
    lua_pushboolean(L, verbose);
    lua_pushcclosure(L, on_error, 1);
    lua_insert(L, fn);
    int rc = lua_pcall(L, 0, 0, fn);
    lua_remove(L, fn);
    if (rc == LUA_OK) return 0;
    if (is_stop(L, -1)) {
        lua_pop(L, 1);
        return 2;
    }
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "error: %s\n", msg ? msg : "unknown error");
    lua_pop(L, 1);
    return 1;
}

/* After the script: the prelude's end-of-script checks (plan mode without a
   call to rlfr.train, --set given to a script without rlfr.config). */
static int finish(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushstring(L, "rlfr");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "_finish");
    lua_call(L, 0, 0);
    return 0;
}

int rlfr_run_script(const rlfr_script_args *a) {
    lua_State *L = rlfr_lua_new(a);
    if (!L) {
        fprintf(stderr, "error: cannot create the Lua state (out of memory)\n");
        return 1;
    }
    int status = 0;
    if (luaL_loadfilex(L, a->script, "t") != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "error: %s\n", msg ? msg : "cannot load script");
        status = 1;
    } else {
        int rc = protected_call(L, a->verbose);
        if (rc == 1) {
            status = 1;
        } else {
            lua_pushcfunction(L, finish);
            if (protected_call(L, a->verbose) == 1) status = 1;
        }
    }
    fflush(stdout);
    lua_close(L);
    return status;
}
