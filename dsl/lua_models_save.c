/* Writing model bundles from Lua: rlfr.save_bundle{...} (policy, tokenizer,
 * flow, vision encoder, rlfr.json), rlfr.save_flow and
 * rlfr.pack (see lua_models.c for the module).
 *
 * A bundle is written whole into DIR.tmp and then put in place of DIR in one
 * step (renameat2 RENAME_EXCHANGE, or two renames where the file system lacks
 * it), so a crash leaves either the old bundle or the new one, never a mix.
 * The old DIR is only replaced when it is a bundle (it has a config.json) or
 * empty: a mistyped dir never wipes an unrelated directory. */
#define _GNU_SOURCE /* renameat2 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "alloc.h"
#include "bundle.h"
#include "checkpoint.h"
#include "flow.h"
#include "lua_json.h"
#include "lua_models.h"
#include "luax.h"
#include "qwen2.h"
#include "tokenizer.h"
#include "vit.h"

static void fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: makes the renames durable */
        close(fd);
    }
}

/* The directory holding path ("." when none). */
static void parent_dir(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == out) out[1] = 0;
    else *slash = 0;
}

/* 1 if dir has no entries besides . and .. */
static int dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

/* Puts the complete tmp directory in place of dir. */
static int publish(const char *tmp, const char *dir, rl_error *err) {
    struct stat st;
    char parent[4096];
    parent_dir(dir, parent, sizeof parent);
    if (lstat(dir, &st) != 0) {
        if (errno != ENOENT) return rl_fail(err, "%s: %s", dir, strerror(errno));
        if (rename(tmp, dir)) return rl_fail(err, "%s: cannot rename %s to it: %s", dir, tmp, strerror(errno));
        fsync_dir(parent);
        return 0;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        fsync_dir(parent);
        return rl_remove_tree(tmp, err); /* now the old bundle */
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return rl_fail(err, "%s: cannot replace it with %s: %s", dir, tmp, strerror(errno));
    /* No atomic exchange here: move the old bundle aside first. A crash in
       between leaves the complete old bundle in DIR.old and the new in DIR.tmp. */
    char old[4096];
    if (snprintf(old, sizeof old, "%s.old", dir) >= (int)sizeof old) return rl_fail(err, "%s: path too long", dir);
    if (rl_remove_tree(old, err)) return -1;
    if (rename(dir, old)) return rl_fail(err, "%s: cannot move it to %s: %s", dir, old, strerror(errno));
    if (rename(tmp, dir)) {
        int e = errno;
        rename(old, dir);
        return rl_fail(err, "%s: cannot rename %s to it: %s", dir, tmp, strerror(e));
    }
    fsync_dir(parent);
    return rl_remove_tree(old, err);
}

typedef struct save_job {
    const char *dir;
    rl_qwen2 *policy;
    rl_dtype dtype;
    const char *tok_json; /* borrowed or owned (tok_owned) */
    size_t tok_len;
    char *tok_owned;
    rl_flow *flow;
    rl_vit *vision;       /* vision.safetensors + vision_config.json */
    char *meta;           /* serialised rlfr.json */
} save_job;

static int join(char *out, size_t cap, const char *dir, const char *name, rl_error *err) {
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) return rl_fail(err, "%s: path too long", dir);
    return 0;
}

static int write_bundle(const save_job *j, rl_error *err) {
    char tmp[4096], file[4096];
    struct stat st;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", j->dir) >= (int)sizeof tmp) return rl_fail(err, "%s: path too long", j->dir);
    if (lstat(j->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return rl_fail(err, "%s exists and is not a directory", j->dir);
        if (join(file, sizeof file, j->dir, "config.json", err)) return -1;
        if (access(file, F_OK) != 0 && !dir_empty(j->dir))
            return rl_fail(err, "%s exists and is not a model bundle (no config.json): refusing to replace it", j->dir);
    }
    if (rl_remove_tree(tmp, err) || rl_mkdirs(tmp, err)) return -1;
    int rc = rl_qwen2_save(j->policy, tmp, j->dtype, err);
    if (!rc && j->tok_json)
        rc = join(file, sizeof file, tmp, "tokenizer.json", err) ||
             rl_write_file_atomic(file, j->tok_json, j->tok_len, err);
    if (!rc && j->flow) rc = rl_flow_save(j->flow, tmp, err);
    if (!rc && j->vision) rc = rl_vit_save(j->vision, tmp, err);
    if (!rc) rc = join(file, sizeof file, tmp, "rlfr.json", err) || rl_write_file_atomic(file, j->meta, strlen(j->meta), err);
    if (!rc) fsync_dir(tmp);
    if (!rc) rc = publish(tmp, j->dir, err);
    if (rc) {
        rl_error ignore = {0};
        rl_remove_tree(tmp, &ignore);
        /* Say which bundle failed unless the message already does. */
        if (!strstr(err->msg, j->dir)) rl_fail_prefix(err, "save_bundle %s: ", j->dir);
    }
    return rc;
}

static void job_free(save_job *j) {
    rl_free(j->tok_owned);
    free(j->meta); /* jansson's json_dumps uses malloc */
}

/* Field `key` of table 1 as an object of `type` (NULL when absent). */
static rl_object *field_object(lua_State *L, const char *key, const char *type) {
    rl_object *o = NULL;
    if (lua_getfield(L, 1, key) != LUA_TNIL) {
        o = rlfr_to_object(L, -1);
        if (!o || !o->type || strcmp(o->type, type) != 0)
            rlfr_raisef(L, "save_bundle: '%s' must be a %s object (got %s)", key, type,
                        o && o->type ? o->type : luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* the table keeps the object alive */
    return o;
}

int rlfr_models_save_bundle(lua_State *L) {
    static const char *const known[] = {"dir", "policy", "tokenizer", "flow", "vision", "meta", "dtype", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(k, known[i]) == 0;
        if (!ok) return rlfr_raisef(L, "save_bundle: unknown option '%s' (known: dir, policy, tokenizer, flow, vision, meta, dtype)", k);
    }
    save_job j = {0};
    lua_getfield(L, 1, "dir");
    const char *d = lua_tostring(L, -1);
    char dir[4096];
    if (!d || !d[0]) return rlfr_raisef(L, "save_bundle: 'dir' (the bundle directory to write) is required");
    if (snprintf(dir, sizeof dir, "%s", d) >= (int)sizeof dir - 8) return rlfr_raisef(L, "save_bundle: 'dir' is too long");
    lua_pop(L, 1);
    /* "x/" would make the temporary "x/.tmp", inside the bundle. */
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = 0;
    j.dir = dir;
    rl_object *pol = field_object(L, "policy", "qwen2");
    if (!pol) return rlfr_raisef(L, "save_bundle: 'policy' (a qwen2 object) is required");
    j.policy = pol->ptr;
    rl_object *tok = field_object(L, "tokenizer", "tokenizer");
    rl_object *flow = field_object(L, "flow", "flow");
    j.flow = flow ? rl_flow_from_object(flow) : NULL;
    rl_object *vis = field_object(L, "vision", "vit");
    j.vision = vis ? rl_vit_from_object(vis) : NULL;
    lua_getfield(L, 1, "dtype");
    const char *dt = lua_isnil(L, -1) ? "f32" : lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!dt || (strcmp(dt, "f32") && strcmp(dt, "bf16")))
        return rlfr_raisef(L, "save_bundle: 'dtype' must be \"f32\" or \"bf16\"");
    j.dtype = strcmp(dt, "bf16") == 0 ? RL_BF16 : RL_F32;
    rl_error err = {0};
    if (j.flow && rl_flow_check_dim(j.flow, j.policy->cfg.hidden, &err)) {
        rl_fail_prefix(&err, "save_bundle %s: ", j.dir);
        return rlfr_raise(L, &err);
    }
    if (j.vision && j.vision->cfg.out_hidden != j.policy->cfg.hidden)
        return rlfr_raisef(L, "save_bundle %s: vision.safetensors: the vision encoder outputs embeddings of size %lld "
                           "but the policy's hidden size is %lld", j.dir, (long long)j.vision->cfg.out_hidden,
                           (long long)j.policy->cfg.hidden);
    /* From here on heap memory is held: no raising until it is freed. */
    char msg[RL_ERROR_MSG] = "";
    json_t *meta;
    if (lua_getfield(L, 1, "meta") == LUA_TNIL) {
        meta = json_object();
    } else if (!lua_istable(L, -1)) {
        meta = NULL;
        snprintf(msg, sizeof msg, "save_bundle: 'meta' must be a table");
    } else {
        meta = rlfr_to_json(L, -1, "save_bundle: meta", msg, sizeof msg);
        if (meta && !json_is_object(meta)) {
            json_decref(meta);
            meta = NULL;
            snprintf(msg, sizeof msg, "save_bundle: 'meta' must be a table with named fields");
        }
    }
    lua_pop(L, 1);
    if (!meta) {
        if (!msg[0]) snprintf(msg, sizeof msg, "save_bundle: out of memory");
        return rlfr_raise_msg(L, msg);
    }
    j.meta = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(meta);
    if (!j.meta) return rlfr_raisef(L, "save_bundle: out of memory");
    int rc = 0;
    if (tok) {
        j.tok_json = rlfr_models_tokenizer_source(tok->ptr, &j.tok_len);
        if (!j.tok_json) {
            /* rlfr.tokenizer(path) / train_tokenizer: the file it was loaded from. */
            const char *src = rl_tokenizer_name(tok->ptr);
            rc = rlfr_models_read_file(src, &j.tok_owned, &j.tok_len, &err);
            if (rc) rl_fail_prefix(&err, "save_bundle %s: the tokenizer's source file: ", j.dir);
            j.tok_json = j.tok_owned;
        }
    }
    if (!rc) rc = write_bundle(&j, &err);
    job_free(&j);
    if (rc) return rlfr_raise(L, &err);
    lua_pushstring(L, j.dir);
    return 1;
}

int rlfr_models_save_flow(lua_State *L) {
    rl_flow *f = rl_flow_from_object(rlfr_check_object(L, 1, "flow"));
    const char *dir = luaL_checkstring(L, 2);
    rl_error err = {0};
    if (rl_mkdirs(dir, &err) || rl_flow_save(f, dir, &err)) return rlfr_raise(L, &err);
    lua_pushstring(L, dir);
    return 1;
}

int rlfr_models_pack(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    const char *out = luaL_checkstring(L, 2);
    rl_error err = {0};
    struct stat st;
    char cfg[4096];
    if (snprintf(cfg, sizeof cfg, "%s/config.json", dir) >= (int)sizeof cfg) return rlfr_raisef(L, "pack: %s: path too long", dir);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return rlfr_raisef(L, "pack: %s: no such bundle directory", dir);
    if (access(cfg, F_OK) != 0) return rlfr_raisef(L, "pack: %s: not a model bundle: it has no config.json", dir);
    if (rl_bundle_pack(dir, out, &err)) return rlfr_raise(L, &err);
    lua_pushstring(L, out);
    return 1;
}
