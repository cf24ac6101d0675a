/* The "rlfr.ckpt" Lua module: the C half of checkpoint/resume in rlfr.train
 * (dsl/rlfr.lua holds the policy: when to save, what the trainer state is).
 * A checkpoint directory RUN/ckpt-XXXXXXXX/ (runtime/checkpoint.h) holds
 *   params-II-NAME.safetensors  every parameter set of the graph, f32 (exact)
 *   state.safetensors           node state: optimizer moments, data cursors ...
 *   trainer.json                trainer state, written by the prelude as text
 * Fields (merged into rlfr with a leading underscore: internal):
 *   _ckpt_save(G, run_dir, step, keep, trainer_json) -> checkpoint directory
 *   _ckpt_latest(run_dir) -> dir, step | nil
 *   _ckpt_load(G, dir) -> trainer table (trainer.json decoded)
 *   _ckpt_clear(run_dir)  removes the run's checkpoints (a fresh start)
 *   _ckpt_kill_step() -> RLFR_TEST_KILL_AFTER_STEP as an integer, or nil
 *   _ckpt_kill()      SIGKILLs this process (the crash the test simulates)
 * Test hooks: RLFR_TEST_SLOW_CKPT=SECONDS[@STEP] makes the writer sleep after
 * every file (of checkpoint STEP only, if given), so a test can SIGKILL the process in the middle of a checkpoint
 * deterministically; RLFR_TEST_KILL_AFTER_STEP=K makes rlfr.train kill itself
 * right after step K (metrics line written, checkpoint if any). */
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "commands.h"
#include "graph.h"
#include "lua_graph.h"
#include "luax.h"
#include "params.h"
#include "state.h"

enum { MAX_SETS = 64 };

/* RLFR_TEST_SLOW_CKPT = "SECONDS" or "SECONDS@STEP" (only that checkpoint). */
static void slow_point(int64_t step) {
    const char *s = getenv("RLFR_TEST_SLOW_CKPT");
    if (!s || !*s) return;
    char *end;
    double sec = strtod(s, &end);
    if (*end == '@' && strtoll(end + 1, NULL, 10) != step) return;
    if (!(sec > 0) || sec > 3600) return;
    struct timespec ts = {(time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* "params-II-NAME.safetensors": the index keeps two sets with the same name
 * apart; the name (characters outside [A-Za-z0-9_.-] become '_') is there for
 * people reading the directory. */
static int set_file(char *buf, size_t cap, const char *dir, int i, const char *name) {
    char clean[128];
    size_t k = 0;
    for (const char *c = name; *c && k + 1 < sizeof clean; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                 *c == '-' || *c == '.';
        clean[k++] = ok ? *c : '_';
    }
    clean[k] = '\0';
    return snprintf(buf, cap, "%s/params-%02d-%s.safetensors", dir, i, clean) >= (int)cap ? -1 : 0;
}

static int graph_sets(lua_State *L, rl_graph *g, rl_params **sets) {
    int n = rl_graph_param_sets(g, sets, MAX_SETS);
    if (n > MAX_SETS) return rlfr_raisef(L, "graph '%s': more than %d parameter sets", rl_graph_name(g), MAX_SETS);
    return n;
}

static int l_save(lua_State *L) {
    rl_graph *g = rlfr_check_graph(L, 1);
    const char *run_dir = luaL_checkstring(L, 2);
    lua_Integer step = luaL_checkinteger(L, 3);
    lua_Integer keep = luaL_checkinteger(L, 4);
    size_t tlen;
    const char *trainer = luaL_checklstring(L, 5, &tlen);
    rl_error err = {0};
    char tmp[4096], path[4200];
    if (rl_ckpt_begin(run_dir, step, tmp, sizeof tmp, &err)) return rlfr_raise(L, &err);
    rl_params *sets[MAX_SETS];
    int n = graph_sets(L, g, sets);
    for (int i = 0; i < n; i++) {
        if (set_file(path, sizeof path, tmp, i, sets[i]->name)) return rlfr_raisef(L, "%s: path too long", tmp);
        if (rl_params_save(sets[i], path, RL_F32, NULL, NULL, 0, &err)) return rlfr_raise(L, &err);
        slow_point(step);
    }
    rl_state *st = rl_state_new();
    if (!st) return rlfr_raisef(L, "checkpoint: out of memory");
    snprintf(path, sizeof path, "%s/state.safetensors", tmp);
    int rc = rl_graph_save_state(g, st, &err);
    if (!rc) rc = rl_state_save(st, path, &err);
    rl_state_free(st);
    if (rc) return rlfr_raise(L, &err);
    slow_point(step);
    snprintf(path, sizeof path, "%s/trainer.json", tmp);
    if (rl_write_file_atomic(path, trainer, tlen, &err)) return rlfr_raise(L, &err);
    slow_point(step);
    if (rl_ckpt_commit(run_dir, step, keep < 1 ? 1 : (int)keep, &err)) return rlfr_raise(L, &err);
    snprintf(path, sizeof path, "%s/ckpt-%08lld", run_dir, (long long)step);
    lua_pushstring(L, path);
    return 1;
}

static int l_latest(lua_State *L) {
    const char *run_dir = luaL_checkstring(L, 1);
    char dir[4096];
    int64_t step = 0;
    rl_error err = {0};
    int rc = rl_ckpt_latest(run_dir, dir, sizeof dir, &step, &err);
    if (rc < 0) return rlfr_raise(L, &err);
    if (rc == 0) return 0;
    lua_pushstring(L, dir);
    lua_pushinteger(L, step);
    return 2;
}

/* JSON -> Lua (objects, arrays, strings, numbers, booleans; null -> nil). */
static void push_json(lua_State *L, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach(v, k, x) {
            push_json(L, x);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, x) {
            push_json(L, x);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    default: lua_pushnil(L); break;
    }
}

static int l_load(lua_State *L) {
    rl_graph *g = rlfr_check_graph(L, 1);
    const char *dir = luaL_checkstring(L, 2);
    char path[4200];
    rl_error err = {0};
    /* Trainer state first: a directory without it is not a checkpoint. */
    snprintf(path, sizeof path, "%s/trainer.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return rlfr_raisef(L, "%s: cannot read trainer state: %s (line %d)", path, je.text, je.line);
    if (!json_is_object(root)) {
        json_decref(root);
        return rlfr_raisef(L, "%s: trainer state must be a JSON object", path);
    }
    rl_params *sets[MAX_SETS];
    int n = graph_sets(L, g, sets);
    for (int i = 0; i < n; i++) {
        if (set_file(path, sizeof path, dir, i, sets[i]->name)) {
            json_decref(root);
            return rlfr_raisef(L, "%s: path too long", dir);
        }
        FILE *f = fopen(path, "rb");
        if (!f) {
            json_decref(root);
            return rlfr_raisef(L, "%s: no parameters for set '%s' of graph '%s' (%s); was the graph changed since "
                                  "the checkpoint?", dir, sets[i]->name, rl_graph_name(g), strerror(errno));
        }
        fclose(f);
        if (rl_params_load(sets[i], path, &err)) {
            json_decref(root);
            return rlfr_raise(L, &err);
        }
    }
    rl_state *st = rl_state_new();
    if (!st) {
        json_decref(root);
        return rlfr_raisef(L, "checkpoint: out of memory");
    }
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    int rc = rl_state_load(st, path, &err);
    if (!rc) rc = rl_graph_load_state(g, st, &err);
    rl_state_free(st);
    if (rc) {
        json_decref(root);
        return rlfr_raise(L, &err);
    }
    push_json(L, root);
    json_decref(root);
    return 1;
}

/* A fresh run in an existing run directory must not later resume from, or
 * be pruned against, another run's checkpoints. */
static int l_clear(lua_State *L) {
    const char *run_dir = luaL_checkstring(L, 1);
    rl_error err = {0};
    DIR *d = opendir(run_dir);
    if (!d) return 0;
    struct dirent *e;
    int rc = 0;
    char path[4200];
    while ((e = readdir(d)) && !rc) {
        if (strncmp(e->d_name, "ckpt-", 5) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", run_dir, e->d_name);
        rc = rl_remove_tree(path, &err);
    }
    closedir(d);
    if (rc) return rlfr_raise(L, &err);
    snprintf(path, sizeof path, "%s/latest", run_dir);
    if (remove(path) && errno != ENOENT) return rlfr_raisef(L, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

static int l_kill_step(lua_State *L) {
    const char *s = getenv("RLFR_TEST_KILL_AFTER_STEP");
    if (!s || !*s) return 0;
    char *end;
    long long k = strtoll(s, &end, 10);
    if (*end || k < 1) return rlfr_raisef(L, "RLFR_TEST_KILL_AFTER_STEP must be a positive integer, got '%s'", s);
    lua_pushinteger(L, (lua_Integer)k);
    return 1;
}

static int l_kill(lua_State *L) {
    (void)L;
    fflush(NULL);
    raise(SIGKILL);
    return 0;
}

int rlfr_open_ckpt(lua_State *L) {
    lua_createtable(L, 0, 6);
    lua_pushcfunction(L, l_kill_step);
    lua_setfield(L, -2, "_ckpt_kill_step");
    lua_pushcfunction(L, l_kill);
    lua_setfield(L, -2, "_ckpt_kill");
    lua_pushcfunction(L, l_save);
    lua_setfield(L, -2, "_ckpt_save");
    lua_pushcfunction(L, l_latest);
    lua_setfield(L, -2, "_ckpt_latest");
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "_ckpt_load");
    lua_pushcfunction(L, l_clear);
    lua_setfield(L, -2, "_ckpt_clear");
    return 1;
}
