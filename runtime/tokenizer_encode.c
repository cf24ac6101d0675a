/* The encoding pipeline, in Hugging Face's order: added tokens that match the
 * raw text are cut out first; every other segment is normalized, cut again by
 * the added tokens that match normalized text, pre-tokenized, and each piece is
 * merged by BPE (through the cache). The post-processor template wraps it all. */
#include <string.h>

#include "alloc.h"
#include "tokenizer_impl.h"

int tok_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) return -1;
        c *= 2;
    }
    size_t bytes;
    if (rl_mul_size(c, elem, &bytes)) return -1;
    void *q = rl_realloc(*p, bytes);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int tok_ids_push(rl_tok_ids *v, int32_t id) {
    if (v->n == v->cap && tok_grow((void **)&v->ids, &v->cap, v->n + 1, sizeof(int32_t))) return -1;
    v->ids[v->n++] = id;
    return 0;
}

void rl_tok_ids_free(rl_tok_ids *v) {
    rl_free(v->ids);
    memset(v, 0, sizeof *v);
}

/* Leftmost-longest match of an added token of the given pass (0: not normalized,
 * matched on raw text; 1: normalized) at or after `from`. */
static int find_added(const rl_tokenizer *t, const uint8_t *s, size_t n, size_t from, int pass, size_t *ms,
                      size_t *me, int *idx) {
    const uint8_t *first = pass ? t->first_norm : t->first_raw;
    for (size_t i = from; i < n; i++) {
        if (!first[s[i]]) continue;
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < t->n_added; k++) {
            const tok_added *a = &t->added[k];
            if (a->normalized != pass || a->len <= best_len || a->len > n - i) continue;
            if ((uint8_t)a->content[0] == s[i] && memcmp(a->content, s + i, a->len) == 0) {
                best = k;
                best_len = a->len;
            }
        }
        if (best >= 0) {
            *ms = i;
            *me = i + best_len;
            *idx = best;
            return 1;
        }
    }
    return 0;
}

static int is_word_before(const uint8_t *s, size_t start) {
    if (start == 0) return 0;
    uint32_t cp;
    int k = tok_utf8_prev_len(s, start);
    tok_utf8_next(s + start - (size_t)k, (size_t)k, &cp);
    return tok_cp_is_word(cp);
}

static int is_word_after(const uint8_t *s, size_t n, size_t stop) {
    if (stop >= n) return 0;
    uint32_t cp;
    tok_utf8_next(s + stop, n - stop, &cp);
    return tok_cp_is_word(cp);
}

/* Pre-tokenizes one normalized segment and merges its pieces. */
static int encode_pieces(rl_tokenizer *t, const uint8_t *s, size_t n, rl_tok_ids *out, rl_error *err) {
    if (n == 0) return 0;
    if (n > t->arena_cap && tok_grow((void **)&t->arena, &t->arena_cap, n, 1))
        return rl_fail(err, "%s: out of memory while encoding", t->name);
    memcpy(t->arena, s, n);
    t->arena_len = n;
    if (t->pa_cap < 1 && tok_grow((void **)&t->pa, &t->pa_cap, 1, sizeof(tok_span)))
        return rl_fail(err, "%s: out of memory while encoding", t->name);
    t->pa[0].off = 0;
    t->pa[0].len = n;
    tok_span *spans;
    size_t ns;
    if (tok_pretokenize(t, 1, &spans, &ns, err)) return -1;
    for (size_t i = 0; i < ns; i++)
        if (tok_bpe_word(t, t->arena + spans[i].off, spans[i].len, out, err)) return -1;
    return 0;
}

static int encode_segment(rl_tokenizer *t, const uint8_t *s, size_t n, int pass, rl_tok_ids *out, rl_error *err);

/* A text segment between added tokens of the raw pass: normalize, then cut by
 * the normalized added tokens. */
static int encode_text(rl_tokenizer *t, const uint8_t *s, size_t n, int pass, rl_tok_ids *out, rl_error *err) {
    if (n == 0) return 0;
    if (pass == 1) return encode_pieces(t, s, n, out, err);
    const uint8_t *ns;
    size_t nn;
    if (tok_normalize(t, s, n, &ns, &nn, err)) return -1;
    if (!t->has_norm_added) return encode_pieces(t, ns, nn, out, err);
    return encode_segment(t, ns, nn, 1, out, err);
}

static int encode_segment(rl_tokenizer *t, const uint8_t *s, size_t n, int pass, rl_tok_ids *out, rl_error *err) {
    size_t pos = 0, seg = 0, ms, me;
    int idx;
    while (find_added(t, s, n, pos, pass, &ms, &me, &idx)) {
        const tok_added *a = &t->added[idx];
        size_t start = ms, stop = me;
        if (a->single_word && (is_word_before(s, start) || is_word_after(s, n, stop))) {
            pos = me; /* HF drops this match and searches on after it */
            continue;
        }
        if (a->lstrip) {
            while (start > seg) {
                uint32_t cp;
                int k = tok_utf8_prev_len(s, start);
                tok_utf8_next(s + start - (size_t)k, (size_t)k, &cp);
                if (!tok_cp_is_space(cp)) break;
                start -= (size_t)k;
            }
        }
        if (a->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int k = tok_utf8_next(s + stop, n - stop, &cp);
                if (!tok_cp_is_space(cp)) break;
                stop += (size_t)k;
            }
        }
        if (encode_text(t, s + seg, start - seg, pass, out, err)) return -1;
        if (tok_ids_push(out, a->id)) return rl_fail(err, "%s: out of memory while encoding", t->name);
        seg = stop;
        pos = stop > me ? stop : me;
    }
    return encode_text(t, s + seg, n - seg, pass, out, err);
}

int rl_tokenizer_encode(rl_tokenizer *t, const char *text, size_t len, int add_special, rl_tok_ids *out,
                        rl_error *err) {
    if (!t || (!text && len)) return rl_fail(err, "tokenizer encode: no tokenizer or no text");
    const uint8_t *s = (const uint8_t *)text;
    if (!tok_utf8_valid(s, len)) {
        size_t need;
        if (rl_mul_size(len, 3, &need) || tok_grow((void **)&t->clean, &t->clean_cap, need, 1))
            return rl_fail(err, "%s: out of memory for a %zu-byte text", t->name, len);
        len = tok_utf8_lossy(s, len, t->clean);
        s = t->clean;
    }
    if (add_special && t->has_template)
        for (int i = 0; i < t->n_tpl_before; i++)
            if (tok_ids_push(out, t->tpl_before[i])) return rl_fail(err, "%s: out of memory", t->name);
    if (encode_segment(t, s, len, 0, out, err)) return -1;
    if (add_special && t->has_template)
        for (int i = 0; i < t->n_tpl_after; i++)
            if (tok_ids_push(out, t->tpl_after[i])) return rl_fail(err, "%s: out of memory", t->name);
    return 0;
}

int rl_tokenizer_encode_into(rl_tokenizer *t, const char *text, size_t len, int add_special, int32_t *ids,
                             size_t cap, size_t *n_out, rl_error *err) {
    t->ids.n = 0;
    if (rl_tokenizer_encode(t, text, len, add_special, &t->ids, err)) return -1;
    *n_out = t->ids.n;
    if (t->ids.n > cap) return rl_fail(err, "text needs %zu tokens, more than %zu", t->ids.n, cap);
    memcpy(ids, t->ids.ids, t->ids.n * sizeof(int32_t));
    return 0;
}

int rl_tokenizer_reserve(rl_tokenizer *t, size_t max_bytes, rl_error *err) {
    size_t b3, b6;
    if (rl_mul_size(max_bytes + 16, 3, &b3) || rl_mul_size(b3, 2, &b6))
        return rl_fail(err, "%s: reserve size overflows", t->name);
    int bad = tok_grow((void **)&t->clean, &t->clean_cap, b3, 1) ||
              tok_grow((void **)&t->norm, &t->norm_cap, b3, 1) ||
              (t->n_norm > 1 && tok_grow((void **)&t->norm2, &t->norm2_cap, b3, 1)) ||
              tok_grow((void **)&t->cps, &t->cps_cap, b3, sizeof(int32_t)) ||
              tok_grow((void **)&t->arena, &t->arena_cap, b6, 1) ||
              tok_grow((void **)&t->pa, &t->pa_cap, b3, sizeof(tok_span)) ||
              tok_grow((void **)&t->pb, &t->pb_cap, b3, sizeof(tok_span)) ||
              tok_grow((void **)&t->pm, &t->pm_cap, b6, sizeof(tok_span)) ||
              tok_grow((void **)&t->pm_match, &t->pm_match_cap, b6, 1) ||
              tok_grow((void **)&t->ids.ids, &t->ids.cap, b3, sizeof(int32_t)) ||
              tok_grow((void **)&t->dbytes, &t->dbytes_cap, b3, 1);
    if (bad) return rl_fail(err, "%s: out of memory reserving for %zu-byte texts", t->name, max_bytes);
    /* The BPE symbol arrays are grown by the merge engine itself; size them for
     * the longest possible piece now. */
    return tok_bpe_reserve(t, b3, err);
}
