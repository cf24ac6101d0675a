/* Running one Lua script under the rlfr module: the shared body of
 * `rlfr run` and `rlfr plan`. */
#ifndef RLFR_SCRIPT_H
#define RLFR_SCRIPT_H

#include <stdint.h>

#include <lua.h>

typedef struct rlfr_script_args {
    const char *script;
    const char *mode;        /* "run" or "plan" */
    int64_t seed;
    int threads;             /* what --threads set (or the current count) */
    const char *out;         /* --out, or NULL */
    int verbose;
    const char *const *sets; /* "key=value" strings from --set */
    int n_sets;
} rlfr_script_args;

/* A lua_State with the standard libraries, require "rlfr" (the embedded
 * prelude), every binding module of dsl/modules.c, and rlfr.args filled from
 * `a`. NULL if out of memory. */
lua_State *rlfr_lua_new(const rlfr_script_args *a);

/* Runs the script; prints "error: FILE:LINE: message" on failure (plus a
 * traceback when verbose). Returns the process exit status. */
int rlfr_run_script(const rlfr_script_args *a);

#endif
