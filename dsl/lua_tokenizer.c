/* The "rlfr.tokenizer" Lua module: rlfr.tokenizer(path) loads a tokenizer.json
 * into an rlfr object of type "tokenizer" (usable as the `tokenizer` option of
 * the tokenize / detokenize nodes) with methods
 *   tok:encode(text [, add_special]) -> {ids}     tok:decode(ids [, skip_special]) -> text
 *   tok:chat(user [, system]) -> {ids}            tok:vocab_size()  tok:pad_id()
 *   tok:token_id("<|im_end|>") -> id or nil       tok:special_ids() -> {ids}
 * and rlfr.train_tokenizer{texts = {...} | files = {...}, vocab_size = N,
 * min_frequency = k, special = {...}, out = "tokenizer.json"} -> tokenizer.
 *
 * Objects share one metatable (luax.c) whose __index only knows `type`; this
 * module chains a lookup of tokenizer methods in front of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "commands.h"
#include "luax.h"
#include "tokenizer.h"

static rl_tokenizer *check_tok(lua_State *L, int idx) {
    rl_object *o = rlfr_check_object(L, idx, "tokenizer");
    return o->ptr;
}

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rl_error err = {0};
    rl_tokenizer *t;
    if (rl_tokenizer_load(path, &t, &err)) return rlfr_raise(L, &err);
    rl_object *o = rl_object_new("tokenizer", t, rl_tokenizer_destroy);
    if (!o) {
        rl_tokenizer_free(t);
        return rlfr_raisef(L, "%s: out of memory", path);
    }
    rlfr_push_object(L, o);
    rl_object_release(o); /* the Lua value holds the only reference now */
    return 1;
}

static int push_ids(lua_State *L, const rl_tok_ids *ids) {
    lua_createtable(L, (int)ids->n, 0);
    for (size_t i = 0; i < ids->n; i++) {
        lua_pushinteger(L, ids->ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int encode_text(lua_State *L, rl_tokenizer *t, const char *s, size_t n, int add_special) {
    rl_tok_ids ids = {0};
    rl_error err = {0};
    if (rl_tokenizer_encode(t, s, n, add_special, &ids, &err)) {
        rl_tok_ids_free(&ids);
        return rlfr_raise(L, &err);
    }
    /* Convert before raising anything: push_ids cannot fail but for memory. */
    push_ids(L, &ids);
    rl_tok_ids_free(&ids);
    return 1;
}

static int m_encode(lua_State *L) {
    rl_tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int add_special = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
    return encode_text(L, t, s, n, add_special);
}

static int m_chat(lua_State *L) {
    rl_tokenizer *t = check_tok(L, 1);
    size_t n;
    const char *user = luaL_checklstring(L, 2, &n);
    const char *system = luaL_optstring(L, 3, RL_TOK_MATH_SYSTEM);
    size_t cap = n + rl_tok_render_overhead(RL_TOK_CHAT, system), len;
    char *buf = rl_malloc(cap);
    if (!buf) return rlfr_raisef(L, "out of memory");
    rl_error err = {0};
    if (rl_tok_render(RL_TOK_CHAT, system, user, n, buf, cap, &len, &err)) {
        rl_free(buf);
        return rlfr_raise(L, &err);
    }
    rl_tok_ids ids = {0};
    int rc = rl_tokenizer_encode(t, buf, len, 1, &ids, &err);
    rl_free(buf);
    if (rc) {
        rl_tok_ids_free(&ids);
        return rlfr_raise(L, &err);
    }
    push_ids(L, &ids);
    rl_tok_ids_free(&ids);
    return 1;
}

static int m_decode(lua_State *L) {
    rl_tokenizer *t = check_tok(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int skip = lua_toboolean(L, 3);
    lua_Integer n = luaL_len(L, 2);
    int32_t *ids = rl_malloc(n > 0 ? (size_t)n * sizeof(int32_t) : 1);
    if (!ids) return rlfr_raisef(L, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok || v < INT32_MIN || v > INT32_MAX) {
            rl_free(ids);
            return rlfr_raisef(L, "tokenizer decode: element %lld is not a token id", (long long)i);
        }
        ids[i - 1] = (int32_t)v;
    }
    rl_tok_text out = {0};
    rl_error err = {0};
    int rc = rl_tokenizer_decode(t, ids, (size_t)n, skip, &out, &err);
    rl_free(ids);
    if (rc) {
        rl_tok_text_free(&out);
        return rlfr_raise(L, &err);
    }
    lua_pushlstring(L, out.s ? out.s : "", out.n);
    rl_tok_text_free(&out);
    return 1;
}

static int m_vocab_size(lua_State *L) {
    lua_pushinteger(L, rl_tokenizer_vocab_size(check_tok(L, 1)));
    return 1;
}

static int m_pad_id(lua_State *L) {
    lua_pushinteger(L, rl_tokenizer_pad_id(check_tok(L, 1)));
    return 1;
}

static int m_token_id(lua_State *L) {
    int32_t id = rl_tokenizer_token_id(check_tok(L, 1), luaL_checkstring(L, 2));
    if (id < 0) lua_pushnil(L);
    else lua_pushinteger(L, id);
    return 1;
}

static int m_special_ids(lua_State *L) {
    const int32_t *ids;
    int n = rl_tokenizer_special_ids(check_tok(L, 1), &ids);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg methods[] = {
    {"encode", m_encode},       {"decode", m_decode},     {"chat", m_chat},
    {"vocab_size", m_vocab_size}, {"pad_id", m_pad_id}, {"token_id", m_token_id},
    {"special_ids", m_special_ids}, {NULL, NULL},
};

/* __index for every rlfr object: tokenizer methods first, then the previous
 * __index (upvalue 2). */
static int object_index(lua_State *L) {
    rl_object *o = rlfr_to_object(L, 1);
    if (o && o->type && strcmp(o->type, "tokenizer") == 0 && lua_type(L, 2) == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(2));
    if (lua_isnil(L, -1)) return 1;
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

static void install_methods(lua_State *L) {
    rlfr_object_setup(L);
    luaL_getmetatable(L, RLFR_OBJECT_MT);
    if (lua_getfield(L, -1, "__rlfr_tokenizer_methods") == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_newlib(L, methods);
        lua_getfield(L, -2, "__index");
        lua_pushcclosure(L, object_index, 2);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "__rlfr_tokenizer_methods");
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Strings of an array field into *out (NULL-terminated, rl_malloc'd; the
 * strings stay owned by Lua, valid while the table is alive). Never raises, so
 * the caller can free what it holds first: -1 with msg set on a bad field. */
static int string_list(lua_State *L, int t, const char *field, const char ***out, int *count, char *msg, size_t cap) {
    *out = NULL;
    *count = 0;
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        snprintf(msg, cap, "train_tokenizer: '%s' must be a list of strings", field);
        return -1;
    }
    lua_Integer n = luaL_len(L, -1);
    const char **list = rl_calloc(n > 0 ? (size_t)n + 1 : 1, sizeof(char *));
    if (!list) {
        lua_pop(L, 1);
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 2);
            rl_free(list);
            snprintf(msg, cap, "train_tokenizer: %s[%lld] is not a string", field, (long long)i);
            return -1;
        }
        list[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1); /* still referenced by the table */
    }
    lua_pop(L, 1);
    *out = list;
    *count = (int)n;
    return 0;
}

static int train_fail(lua_State *L, rl_tok_trainer *tr, const char **a, const char **b, const char **c,
                      const char *err) {
    char msg[RL_ERROR_MSG];
    snprintf(msg, sizeof msg, "%s", err);
    rl_tok_trainer_free(tr);
    rl_free(a);
    rl_free(b);
    rl_free(c);
    return rlfr_raise_msg(L, msg);
}

static int l_train(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *known[] = {"texts", "files", "vocab_size", "min_frequency", "special", "out", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(k, known[i]) == 0;
        if (!ok) return rlfr_raisef(L, "train_tokenizer: unknown option '%s'", k);
    }
    lua_getfield(L, 1, "out");
    const char *out = lua_tostring(L, -1);
    lua_getfield(L, 1, "vocab_size");
    lua_Integer vocab = lua_tointeger(L, -1);
    lua_getfield(L, 1, "min_frequency");
    lua_Integer minf = lua_isnil(L, -1) ? 2 : lua_tointeger(L, -1);
    lua_pop(L, 3);
    if (!out) return rlfr_raisef(L, "train_tokenizer: 'out' (the tokenizer.json to write) is required");
    if (vocab <= 0) return rlfr_raisef(L, "train_tokenizer: 'vocab_size' must be a positive integer");
    int n_texts, n_files, n_special;
    const char **texts = NULL, **files = NULL, **special = NULL;
    char msg[256];
    if (string_list(L, 1, "texts", &texts, &n_texts, msg, sizeof msg) ||
        string_list(L, 1, "files", &files, &n_files, msg, sizeof msg) ||
        string_list(L, 1, "special", &special, &n_special, msg, sizeof msg))
        return train_fail(L, NULL, texts, files, special, msg);
    rl_error err = {0};
    rl_tok_trainer *tr = NULL;
    if (n_texts + n_files == 0)
        return train_fail(L, tr, texts, files, special, "train_tokenizer: give 'texts' or 'files'");
    if (rl_tok_trainer_new(&tr, &err)) return train_fail(L, tr, texts, files, special, err.msg);
    lua_getfield(L, 1, "texts");
    for (int i = 0; i < n_texts; i++) {
        lua_rawgeti(L, -1, i + 1);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        int rc = rl_tok_trainer_feed(tr, s, len, &err);
        lua_pop(L, 1);
        if (rc) return train_fail(L, tr, texts, files, special, err.msg);
    }
    lua_pop(L, 1);
    for (int i = 0; i < n_files; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            rl_fail(&err, "train_tokenizer: %s: cannot open", files[i]);
            return train_fail(L, tr, texts, files, special, err.msg);
        }
        char *buf = NULL;
        size_t len = 0, cap = 0;
        int bad = 0;
        for (;;) {
            if (len == cap) {
                size_t nc = cap ? cap * 2 : 65536;
                char *nb = rl_realloc(buf, nc);
                if (!nb) { bad = 1; break; }
                buf = nb;
                cap = nc;
            }
            size_t k = fread(buf + len, 1, cap - len, f);
            len += k;
            if (k == 0) break;
        }
        bad |= ferror(f);
        fclose(f);
        int rc = bad ? rl_fail(&err, "train_tokenizer: %s: read error", files[i]) : rl_tok_trainer_feed(tr, buf, len, &err);
        rl_free(buf);
        if (rc) return train_fail(L, tr, texts, files, special, err.msg);
    }
    rl_tok_train_opts o = {vocab, minf, special, n_special};
    if (rl_tok_trainer_write(tr, &o, out, &err)) return train_fail(L, tr, texts, files, special, err.msg);
    rl_tok_trainer_free(tr);
    rl_free(texts);
    rl_free(files);
    rl_free(special);
    lua_pushcfunction(L, l_load);
    lua_pushstring(L, out);
    lua_call(L, 1, 1);
    return 1;
}

int rlfr_open_tokenizer(lua_State *L) {
    install_methods(L);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "tokenizer");
    lua_pushcfunction(L, l_train);
    lua_setfield(L, -2, "train_tokenizer");
    return 1;
}
