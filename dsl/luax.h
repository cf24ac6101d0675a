/* Helpers shared by the Lua bindings in dsl/ (the only code that sees lua.h):
 * turning rl_error values into Lua errors with the script location, and
 * passing rl_object values (params sets, models, tokenizers) to and from Lua. */
#ifndef RLFR_LUAX_H
#define RLFR_LUAX_H

#include <stddef.h>

#include <lauxlib.h>
#include <lua.h>

#include "error.h"
#include "value.h"

/* Chunk names of the embedded prelude start with this, so stack walks can skip
 * prelude frames and report the user's script line instead. */
#define RLFR_PRELUDE_CHUNK "=[rlfr]"

/* Writes "file.lua:12" for the innermost stack frame that belongs to a user
 * script (not C, not the prelude); "?" when there is none. */
void rlfr_user_where(lua_State *L, char *buf, size_t cap);

/* Whether msg already carries a script location ("x.lua:12"), as errors about
 * a node do (the core formats them with the node's location). */
int rlfr_has_location(const char *msg);

/* Raises msg as a Lua error, prefixed with the user location unless it already
 * names one. Never returns (declared int for `return rlfr_raise(...)`). */
int rlfr_raise_msg(lua_State *L, const char *msg);
int rlfr_raise(lua_State *L, const rl_error *err);
int rlfr_raisef(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Objects: a full userdata (metatable "rlfr.object") holding one reference. */
#define RLFR_OBJECT_MT "rlfr.object"
/* Pushes obj, taking a new reference (the caller keeps its own). */
void rlfr_push_object(lua_State *L, rl_object *obj);
/* The object at idx, or NULL if idx is not an rlfr object. */
rl_object *rlfr_to_object(lua_State *L, int idx);
/* Same, but raises unless it is an object (of `type` when type != NULL). */
rl_object *rlfr_check_object(lua_State *L, int idx, const char *type);
/* Creates the metatable (idempotent). */
void rlfr_object_setup(lua_State *L);

#endif
