/* Lua option tables -> rl_opts (the values a node's init reads). */
#ifndef RLFR_LUA_OPTS_H
#define RLFR_LUA_OPTS_H

#include <lua.h>

#include "value.h"

/* Adds every field of the table at idx to opts: integer -> INT, float ->
 * NUMBER, boolean -> BOOL, string -> STRING, array of numbers -> NUMBERS,
 * array of strings -> STRINGS, rlfr object -> OBJECT. Keys in `skip`
 * (NULL-terminated, may be NULL) are ignored. Returns 0, or -1 with err set
 * (never raises a Lua error, so opts can be freed by the caller). */
int rlfr_table_to_opts(lua_State *L, int idx, const char *const *skip, rl_opts *opts, rl_error *err);

#endif
