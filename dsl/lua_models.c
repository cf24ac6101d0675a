/* The "rlfr.models" Lua module: model bundles and the model objects in them.
 *   rlfr.load(path) -> {dir, policy, tokenizer, flow, vision, meta}
 *   rlfr.new_policy{HF config keys..., seed} -> qwen2 object
 *   rlfr.new_flow{hidden | policy, width, depth, eps, seed} -> flow object
 *   rlfr.save_bundle{dir, policy, tokenizer, flow, vision, meta, dtype}   (lua_models_save.c)
 *   rlfr.save_flow(flow, dir), rlfr.pack(dir, out)                (lua_models_save.c)
 *   rlfr.json_encode(value [, indent]) -> text, rlfr.json_decode(text) -> value
 * and methods on qwen2 / flow / vit objects: m:config(), m:num_params(), m:digest().
 * docs/dsl.md ("Models and bundles") and docs/models.md describe them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bundle.h"
#include "commands.h"
#include "flow.h"
#include "lua_json.h"
#include "lua_models.h"
#include "luax.h"
#include "qwen2.h"
#include "tokenizer.h"
#include "vit.h"

/* ---- tokenizer sources ------------------------------------------------
 * A bundle must be able to write its tokenizer back out, but the runtime
 * keeps no tokenizer.json text. Tokenizers that rlfr.load creates therefore
 * keep their source here, keyed by the tokenizer, until the object dies (its
 * destroy callback drops the entry). Objects are created and destroyed on
 * the Lua thread only. */

typedef struct tok_source {
    const rl_tokenizer *tok;
    char *json;
    size_t len;
    struct tok_source *next;
} tok_source;

static tok_source *g_sources;

static void tok_object_destroy(void *p) {
    for (tok_source **s = &g_sources; *s; s = &(*s)->next) {
        if ((*s)->tok == p) {
            tok_source *dead = *s;
            *s = dead->next;
            rl_free(dead->json);
            rl_free(dead);
            break;
        }
    }
    rl_tokenizer_free(p);
}

const char *rlfr_models_tokenizer_source(const rl_tokenizer *t, size_t *len) {
    for (tok_source *s = g_sources; s; s = s->next)
        if (s->tok == t) {
            *len = s->len;
            return s->json;
        }
    return NULL;
}

int rlfr_models_read_file(const char *path, char **out, size_t *len, rl_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return rl_fail(err, "%s: cannot determine its size", path);
    }
    char *buf = rl_malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return rl_fail(err, "%s: out of memory for %ld bytes", path, size);
    }
    size_t n = fread(buf, 1, (size_t)size, f);
    int bad = ferror(f) || n != (size_t)size;
    fclose(f);
    if (bad) {
        rl_free(buf);
        return rl_fail(err, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

/* ---- rlfr.load ---------------------------------------------------------- */

typedef struct loaded {
    rl_qwen2 *policy;
    rl_tokenizer *tok;
    char *tok_json;
    size_t tok_len;
    rl_flow *flow;
    rl_vit *vision;
    json_t *meta;
} loaded;

static void loaded_free(loaded *x) {
    rl_qwen2_free(x->policy);
    rl_tokenizer_free(x->tok);
    rl_free(x->tok_json);
    rl_flow_free(x->flow);
    rl_vit_free(x->vision);
    json_decref(x->meta);
    memset(x, 0, sizeof *x);
}

/* Messages about files of an extracted archive name its private temporary
 * directory; say the bundle's own path instead, and make sure the message
 * names the bundle. */
static void name_bundle(rl_error *err, const char *tmpdir, const char *path) {
    char out[RL_ERROR_MSG];
    size_t tl = strlen(tmpdir), o = 0;
    const char *m = err->msg;
    while (*m && o + 1 < sizeof out) {
        if (tl && strncmp(m, tmpdir, tl) == 0) {
            int k = snprintf(out + o, sizeof out - o, "%s", path);
            o = k < 0 ? o : o + (size_t)k < sizeof out ? o + (size_t)k : sizeof out - 1;
            m += tl;
        } else {
            out[o++] = *m++;
        }
    }
    out[o] = 0;
    memcpy(err->msg, out, o + 1);
    if (!strstr(out, path)) rl_fail_prefix(err, "bundle %s: ", path);
}

static int load_parts(rl_bundle *b, const char *path, loaded *x, rl_error *err) {
    char file[4096];
    if (!rl_bundle_has(b, "config.json"))
        return rl_fail(err, "%s: not a model bundle: it has no config.json", path);
    if (rl_qwen2_load(rl_bundle_dir(b), "policy", &x->policy, err)) return -1;
    if (rl_bundle_has(b, "tokenizer.json")) {
        if (!rl_bundle_file(b, "tokenizer.json", file, sizeof file)) return rl_fail(err, "%s: path too long", path);
        if (rlfr_models_read_file(file, &x->tok_json, &x->tok_len, err)) return -1;
        char name[4096];
        snprintf(name, sizeof name, "%s/tokenizer.json", path);
        if (rl_tokenizer_load_json(x->tok_json, x->tok_len, name, &x->tok, err)) return -1;
    }
    if (rl_bundle_has(b, "flow.safetensors")) {
        x->flow = rl_flow_load(rl_bundle_dir(b), err);
        if (!x->flow) return -1;
        if (rl_flow_check_dim(x->flow, x->policy->cfg.hidden, err)) return rl_fail_prefix(err, "flow.safetensors: ");
    }
    if (rl_bundle_has(b, "vision.safetensors") || rl_bundle_has(b, "vision_config.json")) {
        x->vision = rl_vit_load(rl_bundle_dir(b), err);
        if (!x->vision) return -1;
        /* Its merged tokens replace <|image_pad|> embeddings of this policy. */
        if (x->vision->cfg.out_hidden != x->policy->cfg.hidden)
            return rl_fail(err, "%s/vision.safetensors: vision encoder outputs embeddings of size %lld "
                           "(hidden_size in vision_config.json) but the policy's hidden size is %lld",
                           path, (long long)x->vision->cfg.out_hidden, (long long)x->policy->cfg.hidden);
    }
    if (rl_bundle_has(b, "rlfr.json")) {
        if (!rl_bundle_file(b, "rlfr.json", file, sizeof file)) return rl_fail(err, "%s: path too long", path);
        json_error_t je;
        x->meta = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
        if (!x->meta) return rl_fail(err, "%s/rlfr.json: line %d: %s", path, je.line, je.text);
        if (!json_is_object(x->meta)) return rl_fail(err, "%s/rlfr.json: expected a JSON object", path);
    }
    return 0;
}

/* Hands a new object (one reference) over to Lua. */
static void push_new_object(lua_State *L, rl_object *o) {
    rlfr_push_object(L, o);
    rl_object_release(o); /* the Lua value holds the only reference now */
}

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rl_error err = {0};
    rl_bundle *b = NULL;
    loaded x = {0};
    if (rl_bundle_open(path, &b, &err)) return rlfr_raise(L, &err);
    int rc = load_parts(b, path, &x, &err);
    if (rc) name_bundle(&err, rl_bundle_dir(b), path);
    rl_bundle_close(b); /* nothing loaded refers to the bundle's files */
    if (rc) {
        loaded_free(&x);
        return rlfr_raise(L, &err);
    }
    /* Wrap everything in objects before touching Lua, so a failure leaks nothing. */
    rl_object *pol = rl_qwen2_object(x.policy), *tok = NULL, *flow = NULL, *vis = NULL;
    if (pol) x.policy = NULL;
    tok_source *src = NULL;
    if (x.tok) {
        src = rl_calloc(1, sizeof *src);
        tok = src ? rl_object_new("tokenizer", x.tok, tok_object_destroy) : NULL;
        if (tok) {
            src->tok = x.tok;
            src->json = x.tok_json;
            src->len = x.tok_len;
            src->next = g_sources;
            g_sources = src;
            x.tok = NULL;
            x.tok_json = NULL;
        } else {
            rl_free(src);
        }
    }
    int flow_lost = 0;
    if (x.flow) {
        flow = rl_flow_object(x.flow); /* frees the flow when it fails */
        flow_lost = flow == NULL;
        x.flow = NULL;
    }
    int vis_lost = 0;
    if (x.vision) {
        vis = rl_vit_object(x.vision); /* frees the encoder when it fails */
        vis_lost = vis == NULL;
        x.vision = NULL;
    }
    if (!pol || (x.tok && !tok) || flow_lost || vis_lost) {
        if (pol) rl_object_release(pol);
        if (tok) rl_object_release(tok);
        if (flow) rl_object_release(flow);
        if (vis) rl_object_release(vis);
        loaded_free(&x);
        return rlfr_raisef(L, "%s: out of memory", path);
    }
    json_t *meta = x.meta;
    x.meta = NULL;
    loaded_free(&x);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "dir");
    push_new_object(L, pol);
    lua_setfield(L, -2, "policy");
    if (tok) {
        push_new_object(L, tok);
        lua_setfield(L, -2, "tokenizer");
    }
    if (flow) {
        push_new_object(L, flow);
        lua_setfield(L, -2, "flow");
    }
    if (vis) {
        push_new_object(L, vis);
        lua_setfield(L, -2, "vision");
    }
    if (meta) rlfr_push_json(L, meta);
    else lua_newtable(L);
    json_decref(meta);
    lua_setfield(L, -2, "meta");
    return 1;
}

/* ---- option tables ------------------------------------------------------ */

/* Raises on a key of table idx that is not in known (with a suggestion). */
static void check_keys(lua_State *L, int idx, const char *fn, const char *const *known) {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            rlfr_raisef(L, "%s: option keys must be names", fn);
            return;
        }
        const char *k = lua_tostring(L, -1);
        const char *best = NULL;
        int best_d = 1 << 30, found = 0;
        for (int i = 0; known[i]; i++) {
            if (strcmp(k, known[i]) == 0) found = 1;
            int d = rl_edit_distance(k, known[i]);
            if (d < best_d) best_d = d, best = known[i];
        }
        if (!found) {
            int close = best && best_d <= (int)(strlen(k) / 3 > 2 ? strlen(k) / 3 : 2);
            rlfr_raisef(L, "%s: unknown option '%s'%s%s%s", fn, k, close ? " (did you mean '" : "",
                        close ? best : "", close ? "'?)" : "");
            return;
        }
    }
}

/* Integer field; returns 0 when absent (and `required` is false). */
static int64_t opt_int(lua_State *L, int idx, const char *fn, const char *key, int required, int64_t def) {
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        if (required) rlfr_raisef(L, "%s: option '%s' is required", fn, key);
        return def;
    }
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || t != LUA_TNUMBER) rlfr_raisef(L, "%s: option '%s' must be an integer", fn, key);
    return (int64_t)v;
}

static double opt_num(lua_State *L, int idx, const char *fn, const char *key, double def) {
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (t != LUA_TNUMBER) rlfr_raisef(L, "%s: option '%s' must be a number", fn, key);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *fn, const char *key, int def) {
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (t != LUA_TBOOLEAN) rlfr_raisef(L, "%s: option '%s' must be true or false", fn, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The seed option, else --seed (rlfr.args.seed), as rlfr.params does. */
static uint64_t opt_seed(lua_State *L, int idx, const char *fn) {
    int64_t def = 0;
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "rlfr.args") == LUA_TTABLE && lua_getfield(L, -1, "seed") == LUA_TNUMBER)
        def = (int64_t)lua_tointeger(L, -1);
    lua_settop(L, top);
    return (uint64_t)opt_int(L, idx, fn, "seed", 0, def);
}

/* ---- rlfr.new_policy / rlfr.new_flow ----------------------------------- */

static int l_new_policy(lua_State *L) {
    static const char *const known[] = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "intermediate_size", "rope_theta", "rms_norm_eps",
                                        "tie_word_embeddings", "max_position_embeddings", "seed", NULL};
    const char *fn = "new_policy";
    luaL_checktype(L, 1, LUA_TTABLE);
    check_keys(L, 1, fn, known);
    rl_qwen2_config c = {0};
    c.vocab = opt_int(L, 1, fn, "vocab_size", 1, 0);
    c.hidden = opt_int(L, 1, fn, "hidden_size", 1, 0);
    c.n_layers = opt_int(L, 1, fn, "num_hidden_layers", 1, 0);
    c.n_heads = opt_int(L, 1, fn, "num_attention_heads", 1, 0);
    c.n_kv_heads = opt_int(L, 1, fn, "num_key_value_heads", 0, c.n_heads);
    c.inter = opt_int(L, 1, fn, "intermediate_size", 1, 0);
    c.max_pos = opt_int(L, 1, fn, "max_position_embeddings", 0, 32768);
    c.rope_theta = opt_num(L, 1, fn, "rope_theta", 10000.0);
    c.rms_eps = opt_num(L, 1, fn, "rms_norm_eps", 1e-6);
    c.tie = opt_bool(L, 1, fn, "tie_word_embeddings", 1);
    uint64_t seed = opt_seed(L, 1, fn);
    rl_error err = {0};
    rl_qwen2 *m = NULL;
    if (rl_qwen2_new(&c, "policy", seed, &m, &err)) return rlfr_raise(L, &err);
    if (rl_params_finalize(m->params, &err)) {
        rl_qwen2_free(m);
        return rlfr_raise(L, &err);
    }
    rl_object *o = rl_qwen2_object(m);
    if (!o) {
        rl_qwen2_free(m);
        return rlfr_raisef(L, "new_policy: out of memory");
    }
    push_new_object(L, o);
    return 1;
}

static int l_new_flow(lua_State *L) {
    static const char *const known[] = {"hidden", "policy", "width", "depth", "eps", "seed", NULL};
    const char *fn = "new_flow";
    luaL_checktype(L, 1, LUA_TTABLE);
    check_keys(L, 1, fn, known);
    int64_t hidden = opt_int(L, 1, fn, "hidden", 0, 0);
    double eps = 0;
    if (lua_getfield(L, 1, "policy") != LUA_TNIL) {
        rl_qwen2 *m = rlfr_check_object(L, -1, "qwen2")->ptr;
        if (hidden && hidden != m->cfg.hidden)
            return rlfr_raisef(L, "new_flow: hidden = %lld but the policy's hidden size is %lld", (long long)hidden,
                               (long long)m->cfg.hidden);
        hidden = m->cfg.hidden;
        eps = m->cfg.rms_eps;
    }
    lua_pop(L, 1);
    if (hidden <= 0) return rlfr_raisef(L, "new_flow: give 'hidden' (the policy's hidden size, > 0) or 'policy'");
    rl_flow_config c = {0};
    rl_flow_config_default(&c, hidden);
    c.width = opt_int(L, 1, fn, "width", 0, c.width);
    c.depth = opt_int(L, 1, fn, "depth", 0, c.depth);
    c.eps = (float)opt_num(L, 1, fn, "eps", eps > 0 ? eps : c.eps);
    uint64_t seed = opt_seed(L, 1, fn);
    rl_error err = {0};
    if (rl_flow_config_check(&c, &err)) return rlfr_raise(L, &err);
    rl_flow *f = rl_flow_new(&c, seed, &err);
    if (!f) return rlfr_raise(L, &err);
    rl_object *o = rl_flow_object(f); /* frees f on failure */
    if (!o) return rlfr_raisef(L, "new_flow: out of memory");
    push_new_object(L, o);
    return 1;
}

/* ---- methods of qwen2 and flow objects ---------------------------------- */

static rl_params *object_params(lua_State *L) {
    rl_object *o = rlfr_check_object(L, 1, NULL);
    rl_params *p = rl_object_params(o);
    if (!p || !p->finalized) rlfr_raisef(L, "this %s object has no allocated parameters", o->type ? o->type : "?");
    return p;
}

static int m_num_params(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)object_params(L)->numel);
    return 1;
}

/* FNV-1a (64-bit) over the bytes of the f32 parameters, as 16 hex digits:
 * equal digests mean (practically) identical weights, e.g. after a save/load
 * round trip or for a policy that must stay frozen. */
static int m_digest(lua_State *L) {
    rl_params *p = object_params(L);
    const unsigned char *b = (const unsigned char *)p->data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < p->numel * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    lua_pushstring(L, hex);
    return 1;
}

static void set_int(lua_State *L, const char *k, int64_t v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static int m_policy_config(lua_State *L) {
    const rl_qwen2_config *c = &((rl_qwen2 *)rlfr_check_object(L, 1, "qwen2")->ptr)->cfg;
    lua_createtable(L, 0, 11);
    set_int(L, "vocab_size", c->vocab);
    set_int(L, "hidden_size", c->hidden);
    set_int(L, "num_hidden_layers", c->n_layers);
    set_int(L, "num_attention_heads", c->n_heads);
    set_int(L, "num_key_value_heads", c->n_kv_heads);
    set_int(L, "intermediate_size", c->inter);
    set_int(L, "max_position_embeddings", c->max_pos);
    set_int(L, "head_dim", c->head_dim);
    set_num(L, "rope_theta", c->rope_theta);
    set_num(L, "rms_norm_eps", c->rms_eps);
    lua_pushboolean(L, c->tie);
    lua_setfield(L, -2, "tie_word_embeddings");
    return 1;
}

static int m_flow_config(lua_State *L) {
    const rl_flow_config *c = &rl_flow_from_object(rlfr_check_object(L, 1, "flow"))->cfg;
    lua_createtable(L, 0, 4);
    set_int(L, "hidden", c->dim);
    set_int(L, "width", c->width);
    set_int(L, "depth", c->depth);
    set_num(L, "eps", c->eps);
    return 1;
}

static int m_vit_config(lua_State *L) {
    const rl_vit_config *c = &rl_vit_from_object(rlfr_check_object(L, 1, "vit"))->cfg;
    lua_createtable(L, 0, 10);
    set_int(L, "patch", c->patch);
    set_int(L, "channels", c->channels);
    set_int(L, "width", c->width);
    set_int(L, "depth", c->depth);
    set_int(L, "heads", c->heads);
    set_int(L, "mlp", c->mlp);
    set_int(L, "out_hidden", c->out_hidden);
    set_int(L, "merge", c->merge);
    set_num(L, "eps", c->eps);
    set_num(L, "rope_theta", c->rope_theta);
    return 1;
}

static const luaL_Reg policy_methods[] = {
    {"config", m_policy_config}, {"num_params", m_num_params}, {"digest", m_digest}, {NULL, NULL}};
static const luaL_Reg flow_methods[] = {
    {"config", m_flow_config}, {"num_params", m_num_params}, {"digest", m_digest}, {NULL, NULL}};
static const luaL_Reg vit_methods[] = {
    {"config", m_vit_config}, {"num_params", m_num_params}, {"digest", m_digest}, {NULL, NULL}};

/* __index for every rlfr object: qwen2 / flow / vit methods (upvalues 1-3),
 * then the previous __index (upvalue 4), as the tokenizer module chains its own. */
static int object_index(lua_State *L) {
    rl_object *o = rlfr_to_object(L, 1);
    int up = 0;
    if (o && o->type && lua_type(L, 2) == LUA_TSTRING)
        up = strcmp(o->type, "qwen2") == 0 ? 1 : strcmp(o->type, "flow") == 0 ? 2 : strcmp(o->type, "vit") == 0 ? 3 : 0;
    if (up) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(up)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(4));
    if (lua_isnil(L, -1)) return 1;
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

static void install_methods(lua_State *L) {
    rlfr_object_setup(L);
    luaL_getmetatable(L, RLFR_OBJECT_MT);
    if (lua_getfield(L, -1, "__rlfr_model_methods") == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_newlib(L, policy_methods);
        luaL_newlib(L, flow_methods);
        luaL_newlib(L, vit_methods);
        lua_getfield(L, -4, "__index");
        lua_pushcclosure(L, object_index, 4);
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "__rlfr_model_methods");
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---- rlfr.json_encode / rlfr.json_decode --------------------------------- */

/* json_encode(value [, indent]) -> text (keys sorted, so the text is stable). */
static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_Integer indent = luaL_optinteger(L, 2, 0);
    if (indent < 0 || indent > 31) return rlfr_raisef(L, "json_encode: indent must be in [0, 31]");
    char msg[RL_ERROR_MSG] = "";
    json_t *j = rlfr_to_json(L, 1, "json_encode: value", msg, sizeof msg);
    if (!j) return rlfr_raise_msg(L, msg);
    size_t flags = JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17) | JSON_INDENT(indent);
    if (!indent) flags |= JSON_COMPACT;
    char *text = json_dumps(j, flags);
    json_decref(j);
    if (!text) return rlfr_raisef(L, "json_encode: out of memory");
    lua_pushstring(L, text); /* may raise on memory only; text is tiny next to the Lua heap */
    free(text);              /* jansson allocates with malloc */
    return 1;
}

/* json_decode(text) -> value (null -> nil, also inside tables: left out). */
static int l_json_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_error_t je;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j) return rlfr_raisef(L, "json_decode: line %d, column %d: %s", je.line, je.column, je.text);
    rlfr_push_json(L, j);
    json_decref(j);
    return 1;
}

int rlfr_open_models(lua_State *L) {
    install_methods(L);
    static const luaL_Reg fns[] = {
        {"load", l_load},
        {"new_policy", l_new_policy},
        {"new_flow", l_new_flow},
        {"save_bundle", rlfr_models_save_bundle},
        {"save_flow", rlfr_models_save_flow},
        {"pack", rlfr_models_pack},
        {"json_encode", l_json_encode},
        {"json_decode", l_json_decode},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
