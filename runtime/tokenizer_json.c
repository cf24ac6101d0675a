/* Loading tokenizer.json (jansson): model (BPE vocab + merges in both the
 * "a b" and [a, b] forms), added tokens, normalizer, pre-tokenizer,
 * post-processor and decoder. Anything outside the GPT-2 / Qwen2 family is
 * refused with an error naming it, rather than encoded differently. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "tokenizer_impl.h"
#include "tokenizer_jsonscan.h"

#define NOPOS UINT32_MAX

static int pool_add(rl_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (t->pool_len + n + 1 > UINT32_MAX) return -1;
    if (tok_grow((void **)&t->pool, &t->pool_cap, t->pool_len + n + 1, 1)) return -1;
    memcpy(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = '\0';
    *off = (uint32_t)t->pool_len;
    t->pool_len += n + 1;
    return 0;
}

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *key, int def) {
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

/* ---- model ---- */

static int load_vocab(rl_tokenizer *t, tok_rawjson *r, json_t *added, rl_error *err) {
    if (!r->has_vocab) return rl_fail(err, "%s: model.vocab is missing or not an object", t->name);
    int64_t max_id = -1;
    for (size_t i = 0; i < r->n_vocab; i++) {
        int64_t id = r->vocab[i].id;
        if (id < 0 || id >= INT32_MAX)
            return rl_fail(err, "%s: vocab entry '%.100s' has no valid id", t->name, r->strs.p + r->vocab[i].off);
        if (id > max_id) max_id = id;
    }
    size_t na = json_array_size(added);
    for (size_t i = 0; i < na; i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX)
            return rl_fail(err, "%s: added_tokens[%zu] has no valid id", t->name, i);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    t->n_ids = (int32_t)(max_id + 1);
    size_t n = (size_t)t->n_ids ? (size_t)t->n_ids : 1;
    t->tok_off = rl_malloc(n * sizeof(uint32_t));
    t->tok_len = rl_calloc(n, sizeof(uint32_t));
    t->kind = rl_calloc(n, 1);
    if (!t->tok_off || !t->tok_len || !t->kind) return rl_fail(err, "%s: out of memory for the vocabulary", t->name);
    for (size_t i = 0; i < n; i++) t->tok_off[i] = NOPOS;
    if (r->strs.len >= UINT32_MAX) return rl_fail(err, "%s: vocabulary too large", t->name);
    /* The scanner's decoded strings become the pool. */
    t->pool = r->strs.p;
    t->pool_len = r->strs.len;
    t->pool_cap = r->strs.cap;
    memset(&r->strs, 0, sizeof r->strs);
    for (size_t i = 0; i < r->n_vocab; i++) {
        int32_t id = (int32_t)r->vocab[i].id;
        const char *key = t->pool + r->vocab[i].off;
        if (t->kind[id])
            return rl_fail(err, "%s: vocab tokens '%.100s' and '%.100s' share id %d", t->name, t->pool + t->tok_off[id],
                           key, id);
        t->tok_off[id] = (uint32_t)r->vocab[i].off;
        t->tok_len[id] = (uint32_t)r->vocab[i].len;
        t->kind[id] = 1;
    }
    return tok_strmap_build(t, err);
}

static int load_merges(rl_tokenizer *t, tok_rawjson *r, json_t *model, rl_error *err) {
    json_t *jm = json_object_get(model, "merges");
    if (!r->has_merges && jm && !(json_is_array(jm) && json_array_size(jm) == 0))
        return rl_fail(err, "%s: model.merges is not an array", t->name);
    size_t n = r->n_merges;
    if (n >= INT32_MAX) return rl_fail(err, "%s: too many merges", t->name);
    if (tok_merges_alloc(t, n, err)) return -1;
    char *buf = NULL;
    size_t cap = 0;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const tok_rawmerge *m = &r->merges[i];
        if (!m->ok) {
            if (m->str_off != SIZE_MAX)
                rl_fail(err, "%s: merge %zu ('%.100s') is not two tokens separated by one space", t->name, i + 1,
                        r->mstrs.p + m->str_off);
            else
                rl_fail(err, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", t->name, i + 1);
            goto done;
        }
        const char *a = r->mstrs.p + m->a_off, *b = r->mstrs.p + m->b_off;
        size_t na = m->a_len, nb = m->b_len;
        int32_t ia = tok_strmap_get(t, a, na), ib = tok_strmap_get(t, b, nb);
        if (ia < 0 || ib < 0) {
            rl_fail(err, "%s: merge %zu ('%.*s' '%.*s') refers to unknown token '%.*s'", t->name, i + 1, (int)na, a,
                    (int)nb, b, ia < 0 ? (int)na : (int)nb, ia < 0 ? a : b);
            goto done;
        }
        if (tok_grow((void **)&buf, &cap, na + nb + 1, 1)) { rl_fail(err, "%s: out of memory", t->name); goto done; }
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        int32_t im = tok_strmap_get(t, buf, na + nb);
        if (im < 0) {
            rl_fail(err, "%s: merge %zu: the merged token '%.*s' is not in the vocabulary", t->name, i + 1,
                    (int)(na + nb), buf);
            goto done;
        }
        tok_merges_put(t, ia, ib, (int32_t)i, im);
    }
    rc = 0;
done:
    rl_free(buf);
    return rc;
}

static int load_model(rl_tokenizer *t, json_t *root, tok_rawjson *r, rl_error *err) {
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return rl_fail(err, "%s: no \"model\" object", t->name);
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return rl_fail(err, "%s: unknown model type '%s' (only BPE is supported)", t->name, type);
    if (!type && !json_object_get(model, "merges"))
        return rl_fail(err, "%s: model has no type and no merges (only BPE is supported)", t->name);
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0)
        return rl_fail(err, "%s: BPE dropout is not supported (training-time randomness)", t->name);
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf))
        return rl_fail(err, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", t->name);
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added))
        return rl_fail(err, "%s: added_tokens is not an array", t->name);
    if (load_vocab(t, r, json_is_array(added) ? added : NULL, err)) return -1;
    if (load_merges(t, r, model, err)) return -1;
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    const char *unk = jstr(model, "unk_token");
    t->unk_id = unk ? tok_strmap_get(t, unk, strlen(unk)) : -1;
    if (unk && t->unk_id < 0) return rl_fail(err, "%s: unk_token '%s' is not in the vocabulary", t->name, unk);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_fb_id[b] = tok_strmap_get(t, name, strlen(name));
    }
    return 0;
}

/* ---- added tokens ---- */

static int load_added(rl_tokenizer *t, json_t *root, rl_error *err) {
    json_t *added = json_object_get(root, "added_tokens");
    size_t n = json_is_array(added) ? json_array_size(added) : 0;
    if (!n) return 0;
    t->added = rl_calloc(n, sizeof(tok_added));
    t->special_ids = rl_calloc(n, sizeof(int32_t));
    if (!t->added || !t->special_ids) return rl_fail(err, "%s: out of memory for added tokens", t->name);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(added, i);
        json_t *c = json_object_get(o, "content");
        if (!json_is_string(c) || json_string_length(c) == 0)
            return rl_fail(err, "%s: added_tokens[%zu] has no content", t->name, i);
        tok_added *a = &t->added[t->n_added++];
        a->id = (int32_t)json_integer_value(json_object_get(o, "id"));
        a->len = json_string_length(c);
        a->content = rl_malloc(a->len + 1);
        if (!a->content) return rl_fail(err, "%s: out of memory for added tokens", t->name);
        memcpy(a->content, json_string_value(c), a->len + 1);
        a->special = jbool(o, "special", 0);
        a->lstrip = jbool(o, "lstrip", 0);
        a->rstrip = jbool(o, "rstrip", 0);
        a->single_word = jbool(o, "single_word", 0);
        /* HF's default: special tokens match raw text, others normalized text. */
        a->normalized = jbool(o, "normalized", !a->special);
        if (a->special) t->special_ids[t->n_special++] = a->id;
        if (a->normalized) t->has_norm_added = 1;
        (a->normalized ? t->first_norm : t->first_raw)[(uint8_t)a->content[0]] = 1;
        /* The added spelling wins for id -> token, as in HF. */
        if (t->kind[a->id] != 1) {
            if (pool_add(t, a->content, a->len, &t->tok_off[a->id])) return rl_fail(err, "%s: out of memory", t->name);
            t->tok_len[a->id] = (uint32_t)a->len;
        }
        t->kind[a->id] = a->special ? 3 : 2;
    }
    return 0;
}

/* ---- normalizer ---- */

static int load_normalizer(rl_tokenizer *t, json_t *n, rl_error *err) {
    if (!n || json_is_null(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return rl_fail(err, "%s: normalizer without a type", t->name);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return rl_fail(err, "%s: Sequence normalizer without a normalizers list", t->name);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_normalizer(t, json_array_get(list, i), err)) return -1;
        return 0;
    }
    int opts;
    if (strcmp(type, "NFC") == 0) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    else if (strcmp(type, "NFD") == 0) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    else if (strcmp(type, "NFKC") == 0) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (strcmp(type, "NFKD") == 0) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else return rl_fail(err, "%s: unknown normalizer type '%s' (supported: NFC, NFD, NFKC, NFKD, Sequence)", t->name, type);
    if (t->n_norm == TOK_MAX_NORM) return rl_fail(err, "%s: too many normalizers", t->name);
    t->norm_opts[t->n_norm++] = opts;
    return 0;
}

/* ---- pre-tokenizer ---- */

static int load_pretok(rl_tokenizer *t, json_t *p, rl_error *err) {
    if (!p || json_is_null(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type) return rl_fail(err, "%s: pre-tokenizer without a type", t->name);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return rl_fail(err, "%s: Sequence pre-tokenizer without a pretokenizers list", t->name);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_pretok(t, json_array_get(list, i), err)) return -1;
        return 0;
    }
    if (t->n_pre == TOK_MAX_PRETOK) return rl_fail(err, "%s: too many pre-tokenizers", t->name);
    tok_pretok *s = &t->pre[t->n_pre];
    memset(s, 0, sizeof *s);
    if (strcmp(type, "ByteLevel") == 0) {
        t->byte_level = 1;
        s->prefix_space = jbool(p, "add_prefix_space", 1);
        s->behavior = TOK_SPLIT_ISOLATED;
        if (jbool(p, "use_regex", 1) && tok_regex_compile(t, s, TOK_GPT2_REGEX, 0, err)) return -1;
        if (s->prefix_space || s->re) t->n_pre++; /* else it only maps bytes, which BPE does */
        return 0;
    }
    if (strcmp(type, "Split") == 0) {
        json_t *pat = json_object_get(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        if (!re && !lit) return rl_fail(err, "%s: Split pre-tokenizer needs pattern.Regex or pattern.String", t->name);
        const char *beh = jstr(p, "behavior");
        if (!beh) return rl_fail(err, "%s: Split pre-tokenizer without a behavior", t->name);
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        s->behavior = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(beh, names[i]) == 0) s->behavior = i;
        if (s->behavior < 0) return rl_fail(err, "%s: unknown Split behavior '%s'", t->name, beh);
        s->invert = jbool(p, "invert", 0);
        if (tok_regex_compile(t, s, re ? re : lit, re == NULL, err)) return -1;
        t->n_pre++;
        return 0;
    }
    return rl_fail(err, "%s: unknown pre-tokenizer type '%s' (supported: Split, ByteLevel, Sequence)", t->name, type);
}

/* ---- post-processor ---- */

static int template_ids(rl_tokenizer *t, json_t *specials, const char *name, int32_t *ids, int *n, rl_error *err) {
    json_t *sp = json_object_get(specials, name);
    json_t *list = json_object_get(sp, "ids");
    if (!json_is_array(list)) return rl_fail(err, "%s: TemplateProcessing: special token '%s' has no ids", t->name, name);
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (*n == 8) return rl_fail(err, "%s: TemplateProcessing: template too long", t->name);
        ids[(*n)++] = (int32_t)json_integer_value(json_array_get(list, i));
    }
    return 0;
}

static int load_post(rl_tokenizer *t, json_t *p, rl_error *err) {
    if (!p || json_is_null(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type) return rl_fail(err, "%s: post-processor without a type", t->name);
    if (strcmp(type, "ByteLevel") == 0) return 0; /* offsets only */
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "processors");
        if (!json_is_array(list)) return rl_fail(err, "%s: Sequence post-processor without a processors list", t->name);
        for (size_t i = 0; i < json_array_size(list); i++)
            if (load_post(t, json_array_get(list, i), err)) return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
        if (!json_is_array(single)) return rl_fail(err, "%s: TemplateProcessing without a single template", t->name);
        int seen_a = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            json_t *it = json_array_get(single, i);
            json_t *st = json_object_get(it, "SpecialToken");
            if (st) {
                const char *id = jstr(st, "id");
                if (!id) return rl_fail(err, "%s: TemplateProcessing: SpecialToken without id", t->name);
                if (seen_a ? template_ids(t, specials, id, t->tpl_after, &t->n_tpl_after, err)
                           : template_ids(t, specials, id, t->tpl_before, &t->n_tpl_before, err))
                    return -1;
            } else if (json_object_get(it, "Sequence")) {
                seen_a = 1;
            } else {
                return rl_fail(err, "%s: TemplateProcessing: unknown template item", t->name);
            }
        }
        t->has_template = 1;
        return 0;
    }
    return rl_fail(err, "%s: unknown post-processor type '%s' (supported: ByteLevel, TemplateProcessing, Sequence)",
                   t->name, type);
}

static int load_decoder(rl_tokenizer *t, json_t *d, rl_error *err) {
    if (!d || json_is_null(d)) return 0;
    const char *type = jstr(d, "type");
    if (type && strcmp(type, "ByteLevel") == 0) {
        t->decoder_byte_level = 1;
        return 0;
    }
    return rl_fail(err, "%s: unknown decoder type '%s' (supported: ByteLevel)", t->name, type ? type : "(none)");
}

/* Per id, the bytes HF's ByteLevel decoder produces: each character mapped back
 * to its byte, or the token's own UTF-8 when a character is outside the map. */
static int build_decode_table(rl_tokenizer *t, rl_error *err) {
    size_t n = (size_t)t->n_ids ? (size_t)t->n_ids : 1;
    t->dec_off = rl_calloc(n, sizeof(uint32_t));
    t->dec_len = rl_calloc(n, sizeof(uint32_t));
    size_t total = t->pool_len + 1;
    for (int k = 0; k < t->n_added; k++) total += t->added[k].len;
    t->dec = rl_malloc(total);
    if (!t->dec_off || !t->dec_len || !t->dec) return rl_fail(err, "%s: out of memory for the decode table", t->name);
    size_t o = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->tok_off[id] == NOPOS) continue;
        const uint8_t *s = (const uint8_t *)t->pool + t->tok_off[id];
        size_t len = t->tok_len[id];
        if (t->kind[id] >= 2) /* added: its content */
            for (int k = 0; k < t->n_added; k++)
                if (t->added[k].id == id) { s = (const uint8_t *)t->added[k].content; len = t->added[k].len; }
        t->dec_off[id] = (uint32_t)o;
        size_t start = o;
        int mapped = t->decoder_byte_level;
        for (size_t i = 0; mapped && i < len;) {
            uint32_t cp;
            i += (size_t)tok_utf8_next(s + i, len - i, &cp);
            int b = tok_cp_to_byte(cp);
            if (b < 0) mapped = 0;
            else t->dec[o++] = (uint8_t)b;
        }
        if (!mapped) {
            o = start;
            memcpy(t->dec + o, s, len);
            o += len;
        }
        t->dec_len[id] = (uint32_t)(o - start);
    }
    return 0;
}

static void pick_pad(rl_tokenizer *t, json_t *root) {
    json_t *pad = json_object_get(root, "padding");
    json_t *pid = json_object_get(pad, "pad_id");
    if (json_is_integer(pid) && json_integer_value(pid) >= 0 && json_integer_value(pid) < t->n_ids) {
        t->pad_id = (int32_t)json_integer_value(pid);
        return;
    }
    static const char *names[] = {"<|endoftext|>", "<pad>", "<|pad|>", "</s>"};
    for (int i = 0; i < 4; i++) {
        int32_t id = rl_tokenizer_token_id(t, names[i]);
        if (id >= 0) { t->pad_id = id; return; }
    }
    t->pad_id = 0;
}

/* The document without model.vocab and model.merges (blanked to {} and []),
 * for jansson. */
static char *rest_of_document(const char *text, size_t len, const tok_rawjson *r, size_t *out_len) {
    char *o = rl_malloc(len + 8);
    if (!o) return NULL;
    size_t cut[2][2];
    int nc = 0;
    const char *fill[2];
    if (r->has_vocab) { cut[nc][0] = r->vocab_start; cut[nc][1] = r->vocab_end; fill[nc++] = "{}"; }
    if (r->has_merges) { cut[nc][0] = r->merges_start; cut[nc][1] = r->merges_end; fill[nc++] = "[]"; }
    if (nc == 2 && cut[1][0] < cut[0][0]) {
        size_t a0 = cut[0][0], a1 = cut[0][1];
        cut[0][0] = cut[1][0]; cut[0][1] = cut[1][1]; cut[1][0] = a0; cut[1][1] = a1;
        const char *f = fill[0]; fill[0] = fill[1]; fill[1] = f;
    }
    size_t pos = 0, o_len = 0;
    for (int c = 0; c < nc; c++) {
        memcpy(o + o_len, text + pos, cut[c][0] - pos);
        o_len += cut[c][0] - pos;
        memcpy(o + o_len, fill[c], 2);
        o_len += 2;
        pos = cut[c][1];
    }
    memcpy(o + o_len, text + pos, len - pos);
    o_len += len - pos;
    *out_len = o_len;
    return o;
}

int rl_tokenizer_load_json(const char *text, size_t len, const char *name, rl_tokenizer **out, rl_error *err) {
    *out = NULL;
    tok_byte_map_init();
    tok_rawjson raw;
    if (tok_rawjson_scan(text, len, name, &raw, err)) {
        tok_rawjson_free(&raw);
        return -1;
    }
    size_t rest_len;
    char *rest = rest_of_document(text, len, &raw, &rest_len);
    if (!rest) {
        tok_rawjson_free(&raw);
        return rl_fail(err, "%s: out of memory", name);
    }
    json_error_t jerr;
    json_t *root = json_loadb(rest, rest_len, 0, &jerr);
    rl_free(rest);
    if (!root) {
        tok_rawjson_free(&raw);
        return rl_fail(err, "%s: malformed JSON at line %d column %d: %s", name, jerr.line, jerr.column, jerr.text);
    }
    rl_tokenizer *t = rl_calloc(1, sizeof *t);
    if (!t || !(t->name = rl_strdup(name))) {
        json_decref(root);
        tok_rawjson_free(&raw);
        rl_free(t);
        return rl_fail(err, "%s: out of memory", name);
    }
    int rc = -1;
    if (!json_is_object(root)) { rl_fail(err, "%s: not a JSON object", name); goto done; }
    if (load_model(t, root, &raw, err) || load_added(t, root, err)) goto done;
    if (load_normalizer(t, json_object_get(root, "normalizer"), err)) goto done;
    if (load_pretok(t, json_object_get(root, "pre_tokenizer"), err)) goto done;
    if (load_post(t, json_object_get(root, "post_processor"), err)) goto done;
    if (load_decoder(t, json_object_get(root, "decoder"), err)) goto done;
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int k = tok_utf8_put(tok_byte_to_cp[b], u);
        t->byte_id[b] = tok_strmap_get(t, (const char *)u, (size_t)k);
    }
    if (build_decode_table(t, err) || tok_cache_init(&t->cache, err)) goto done;
    pick_pad(t, root);
    rc = 0;
done:
    json_decref(root);
    tok_rawjson_free(&raw);
    if (rc) rl_tokenizer_free(t);
    else *out = t;
    return rc;
}

int rl_tokenizer_load(const char *path, rl_tokenizer **out, rl_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    /* One read of the known size: this file is 7-11 MB and load time matters. */
    char *buf = NULL;
    size_t n = 0, cap = 0;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (fseek(f, 0, SEEK_SET) != 0) size = -1;
    cap = size > 0 ? (size_t)size + 1 : 65536;
    buf = rl_malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return rl_fail(err, "%s: out of memory reading the file", path);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
        if (n == cap && tok_grow((void **)&buf, &cap, n + 65536, 1)) {
            rl_free(buf);
            buf = NULL;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        rl_free(buf);
        return rl_fail(err, "%s: read error", path);
    }
    int rc = rl_tokenizer_load_json(buf, n, path, out, err);
    rl_free(buf);
    return rc;
}

void rl_tokenizer_free(rl_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_match_data_free(t->pre[i].md);
        pcre2_code_free(t->pre[i].re);
    }
    /* A failed load may leave a half-built step behind the counted ones. */
    if (t->n_pre < TOK_MAX_PRETOK) {
        pcre2_match_data_free(t->pre[t->n_pre].md);
        pcre2_code_free(t->pre[t->n_pre].re);
    }
    pcre2_match_context_free(t->mctx);
    pcre2_jit_stack_free(t->jit_stack);
    for (int i = 0; i < t->n_added; i++) rl_free(t->added[i].content);
    rl_free(t->added);
    rl_free(t->special_ids);
    rl_free(t->name);
    rl_free(t->pool);
    rl_free(t->tok_off);
    rl_free(t->tok_len);
    rl_free(t->kind);
    rl_free(t->dec);
    rl_free(t->dec_off);
    rl_free(t->dec_len);
    rl_free(t->vocab.slots);
    rl_free(t->merges);
    rl_free(t->clean);
    rl_free(t->norm);
    rl_free(t->norm2);
    rl_free(t->cps);
    rl_free(t->arena);
    rl_free(t->pa);
    rl_free(t->pb);
    rl_free(t->pm);
    rl_free(t->pm_match);
    rl_free(t->sym_id);
    rl_free(t->sym_prev);
    rl_free(t->sym_next);
    rl_free(t->heap);
    rl_free(t->ids.ids);
    rl_free(t->dbytes);
    tok_cache_free(&t->cache);
    rl_free(t);
}

void rl_tokenizer_destroy(void *t) { rl_tokenizer_free(t); }

int64_t rl_tokenizer_vocab_size(const rl_tokenizer *t) { return t->n_ids; }

int32_t rl_tokenizer_token_id(const rl_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0) return t->added[i].id;
    return tok_strmap_get(t, token, n);
}

const char *rl_tokenizer_id_to_token(const rl_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids) return NULL;
    for (int i = 0; t->kind[id] >= 2 && i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].content;
    return t->tok_off[id] == NOPOS ? NULL : t->pool + t->tok_off[id];
}

int rl_tokenizer_special_ids(const rl_tokenizer *t, const int32_t **ids) {
    *ids = t->special_ids;
    return t->n_special;
}

int32_t rl_tokenizer_pad_id(const rl_tokenizer *t) { return t->pad_id; }
const char *rl_tokenizer_name(const rl_tokenizer *t) { return t->name; }
