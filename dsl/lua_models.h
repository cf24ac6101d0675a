/* Internals shared by the "rlfr.models" binding files (lua_models.c,
 * lua_models_save.c). */
#ifndef RLFR_LUA_MODELS_H
#define RLFR_LUA_MODELS_H

#include <stddef.h>

#include <lua.h>

#include "error.h"
#include "tokenizer.h"

/* The tokenizer.json text a tokenizer made by rlfr.load was built from, or
 * NULL for other tokenizers (whose rl_tokenizer_name is their file). */
const char *rlfr_models_tokenizer_source(const rl_tokenizer *t, size_t *len);
/* Whole file into *out (rl_malloc'd, NUL-terminated). */
int rlfr_models_read_file(const char *path, char **out, size_t *len, rl_error *err);

int rlfr_models_save_bundle(lua_State *L); /* rlfr.save_bundle{...} */
int rlfr_models_save_flow(lua_State *L);   /* rlfr.save_flow(flow, dir) */
int rlfr_models_pack(lua_State *L);        /* rlfr.pack(dir, out) */

#endif
