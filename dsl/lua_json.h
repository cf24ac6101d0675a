/* Lua values <-> JSON (jansson) for the binding modules: bundle metadata
 * (rlfr.json) read into tables and tables written back. */
#ifndef RLFR_LUA_JSON_H
#define RLFR_LUA_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <lua.h>

/* Pushes j as a Lua value: objects -> tables, arrays -> sequences, integers ->
 * integers, reals -> floats, null -> nil (left out of tables). Raises only on
 * memory errors. */
void rlfr_push_json(lua_State *L, const json_t *j);

/* The Lua value at idx as a new JSON value, or NULL with msg set ("meta.x:
 * functions cannot be written as JSON"). `what` names the value in messages.
 * A table is an array when its keys are exactly 1..n (n > 0), else an object
 * whose keys must be strings; an empty table is an object. Never raises (so
 * the caller may hold heap memory). */
json_t *rlfr_to_json(lua_State *L, int idx, const char *what, char *msg, size_t cap);

#endif
