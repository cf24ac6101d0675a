/* Normalization (utf8proc) and pre-tokenization (PCRE2 Split regexes with HF's
 * split behaviours, ByteLevel's prefix space). Pieces are spans of t->arena. */
#include <string.h>
#include <utf8proc.h>

#include "alloc.h"
#include "tokenizer_impl.h"

int tok_regex_compile(rl_tokenizer *t, tok_pretok *p, const char *pattern, int literal, rl_error *err) {
    int code;
    PCRE2_SIZE off;
    /* PCRE2 refuses UCP with LITERAL (nothing to classify in a literal). */
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    p->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &off, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return rl_fail(err, "%s: invalid pre-tokenizer regex '%.200s': %s at offset %zu", t->name, pattern,
                       (const char *)msg, (size_t)off);
    }
    p->jit = pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE) == 0;
    p->md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (!p->md) return rl_fail(err, "%s: out of memory for regex match data", t->name);
    if (!t->mctx) {
        /* Long whitespace or letter runs backtrack deeply: give JIT a big stack. */
        t->mctx = pcre2_match_context_create(NULL);
        t->jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
        if (!t->mctx || !t->jit_stack) return rl_fail(err, "%s: out of memory for the regex stack", t->name);
        pcre2_jit_stack_assign(t->mctx, NULL, t->jit_stack);
    }
    return 0;
}

static int span_push(tok_span **a, size_t *n, size_t *cap, size_t off, size_t len) {
    if (*n == *cap && tok_grow((void **)a, cap, *n + 1, sizeof(tok_span))) return -1;
    (*a)[*n].off = off;
    (*a)[*n].len = len;
    (*n)++;
    return 0;
}

static int match_push(rl_tokenizer *t, size_t *n, size_t off, size_t len, int is_match) {
    if (*n == t->pm_match_cap && tok_grow((void **)&t->pm_match, &t->pm_match_cap, *n + 1, 1)) return -1;
    size_t k = *n;
    if (span_push(&t->pm, &k, &t->pm_cap, off, len)) return -1;
    t->pm_match[*n] = (uint8_t)is_match;
    *n = k;
    return 0;
}

/* Splits one piece by the regex into (span, is_match) items covering it, as
 * HF's find_matches does: empty matches are kept (and dropped later). */
static int regex_items(rl_tokenizer *t, tok_pretok *p, size_t off, size_t len, size_t *n_items, rl_error *err) {
    const uint8_t *subj = t->arena + off;
    size_t pos = 0, prev = 0, n = 0;
    while (pos <= len) {
        int rc = p->jit ? pcre2_jit_match(p->re, subj, len, pos, 0, p->md, t->mctx)
                        : pcre2_match(p->re, subj, len, pos, PCRE2_NO_UTF_CHECK, p->md, t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rl_fail(err, "%s: pre-tokenizer regex failed on a %zu-byte piece: %s", t->name, len,
                           (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        size_t s = ov[0], e = ov[1];
        if (s > prev && match_push(t, &n, off + prev, s - prev, 0)) goto oom;
        if (match_push(t, &n, off + s, e - s, 1)) goto oom;
        prev = e;
        if (e == s) {
            if (e >= len) break;
            uint32_t cp;
            pos = e + (size_t)tok_utf8_next(subj + e, len - e, &cp);
        } else {
            pos = e;
        }
    }
    if (prev < len && match_push(t, &n, off + prev, len - prev, 0)) goto oom;
    *n_items = n;
    return 0;
oom:
    return rl_fail(err, "%s: out of memory while pre-tokenizing", t->name);
}

/* Folds the items by the split behaviour (HF's SplitDelimiterBehavior) into out. */
static int apply_behavior(rl_tokenizer *t, const tok_pretok *p, size_t n, size_t *n_out) {
    tok_span *it = t->pm;
    uint8_t *m = t->pm_match;
    if (p->invert)
        for (size_t i = 0; i < n; i++) m[i] = !m[i];
    size_t k = 0; /* folded items, written back into pm in place (k <= i) */
    int prev_match = 0;
    switch (p->behavior) {
    case TOK_SPLIT_ISOLATED:
        k = n;
        break;
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!m[i]) it[k++] = it[i];
        break;
    case TOK_SPLIT_PREV:
        for (size_t i = 0; i < n; i++) {
            if (m[i] && !prev_match && k > 0) it[k - 1].len = it[i].off + it[i].len - it[k - 1].off;
            else it[k++] = it[i];
            prev_match = m[i];
        }
        break;
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            if (m[i] == prev_match && k > 0) it[k - 1].len = it[i].off + it[i].len - it[k - 1].off;
            else it[k++] = it[i];
            prev_match = m[i];
        }
        break;
    case TOK_SPLIT_NEXT: {
        /* Right to left: a delimiter joins the piece that follows it. */
        size_t w = n; /* write position from the end */
        for (size_t i = n; i-- > 0;) {
            if (m[i] && !prev_match && w < n) {
                it[w].len = it[w].off + it[w].len - it[i].off;
                it[w].off = it[i].off;
            } else {
                it[--w] = it[i];
            }
            prev_match = m[i];
        }
        memmove(it, it + w, (n - w) * sizeof(tok_span));
        k = n - w;
        break;
    }
    }
    *n_out = k;
    return 0;
}

static int ensure_arena(rl_tokenizer *t, size_t need) {
    if (need <= t->arena_cap) return 0;
    return tok_grow((void **)&t->arena, &t->arena_cap, need, 1);
}

int tok_pretokenize(rl_tokenizer *t, size_t n_in, tok_span **spans, size_t *n_out, rl_error *err) {
    size_t n = n_in;
    for (int s = 0; s < t->n_pre; s++) {
        tok_pretok *p = &t->pre[s];
        size_t nb = 0;
        for (size_t i = 0; i < n; i++) {
            size_t off = t->pa[i].off, len = t->pa[i].len;
            if (p->prefix_space && (len == 0 || t->arena[off] != ' ')) {
                if (ensure_arena(t, t->arena_len + len + 1)) goto oom;
                t->arena[t->arena_len] = ' ';
                memcpy(t->arena + t->arena_len + 1, t->arena + off, len);
                off = t->arena_len;
                len += 1;
                t->arena_len += len;
            }
            if (!p->re) {
                if (len && span_push(&t->pb, &nb, &t->pb_cap, off, len)) goto oom;
                continue;
            }
            size_t items, kept;
            if (regex_items(t, p, off, len, &items, err)) return -1;
            apply_behavior(t, p, items, &kept);
            for (size_t j = 0; j < kept; j++)
                if (t->pm[j].len && span_push(&t->pb, &nb, &t->pb_cap, t->pm[j].off, t->pm[j].len)) goto oom;
        }
        tok_span *tmp = t->pa; t->pa = t->pb; t->pb = tmp;
        size_t tc = t->pa_cap; t->pa_cap = t->pb_cap; t->pb_cap = tc;
        n = nb;
    }
    *spans = t->pa;
    *n_out = n;
    return 0;
oom:
    return rl_fail(err, "%s: out of memory while pre-tokenizing", t->name);
}

/* One normalizer on one chunk: decompose (and compose) into t->cps, then re-encode. */
static int norm_chunk(rl_tokenizer *t, int opts, const uint8_t *s, size_t n, uint8_t **dst, size_t *dcap,
                      size_t *o, rl_error *err) {
    for (;;) {
        utf8proc_ssize_t r = utf8proc_decompose_custom(s, (utf8proc_ssize_t)n, t->cps, (utf8proc_ssize_t)t->cps_cap,
                                                       (utf8proc_option_t)opts, NULL, NULL);
        if (r < 0) return rl_fail(err, "%s: normalizer failed: %s", t->name, utf8proc_errmsg(r));
        if ((size_t)r > t->cps_cap) {
            if (tok_grow((void **)&t->cps, &t->cps_cap, (size_t)r, sizeof(int32_t)))
                return rl_fail(err, "%s: out of memory while normalizing", t->name);
            continue;
        }
        r = utf8proc_reencode(t->cps, r, (utf8proc_option_t)opts);
        if (r < 0) return rl_fail(err, "%s: normalizer failed: %s", t->name, utf8proc_errmsg(r));
        if (*o + (size_t)r > *dcap && tok_grow((void **)dst, dcap, *o + (size_t)r, 1))
            return rl_fail(err, "%s: out of memory while normalizing", t->name);
        memcpy(*dst + *o, t->cps, (size_t)r);
        *o += (size_t)r;
        return 0;
    }
}

/* Only runs that contain non-ASCII bytes (plus the ASCII starter before them,
 * which a combining mark may compose with) go through utf8proc: ASCII is
 * unchanged by every normal form and never composes with what precedes it. */
static int norm_one(rl_tokenizer *t, int opts, const uint8_t *s, size_t n, uint8_t **dst, size_t *dcap,
                    size_t *out_len, rl_error *err) {
    if (*dcap < n && tok_grow((void **)dst, dcap, n, 1))
        return rl_fail(err, "%s: out of memory while normalizing", t->name);
    size_t i = 0, o = 0;
    while (i < n) {
        if (s[i] < 0x80 && (i + 1 >= n || s[i + 1] < 0x80)) {
            if (o + 1 > *dcap && tok_grow((void **)dst, dcap, o + 1, 1))
                return rl_fail(err, "%s: out of memory while normalizing", t->name);
            (*dst)[o++] = s[i++];
            continue;
        }
        size_t j = i;
        if (s[j] < 0x80) j++;
        while (j < n && s[j] >= 0x80) j++;
        if (norm_chunk(t, opts, s + i, j - i, dst, dcap, &o, err)) return -1;
        i = j;
    }
    *out_len = o;
    return 0;
}

int tok_normalize(rl_tokenizer *t, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_len,
                  rl_error *err) {
    *out = s;
    *out_len = n;
    for (int k = 0; k < t->n_norm; k++) {
        /* Alternate between the two buffers so the input of a step stays intact. */
        uint8_t **dst = (k % 2 == 0) ? &t->norm : &t->norm2;
        size_t *cap = (k % 2 == 0) ? &t->norm_cap : &t->norm2_cap;
        size_t len = 0;
        if (norm_one(t, t->norm_opts[k], *out, *out_len, dst, cap, &len, err)) return -1;
        *out = *dst;
        *out_len = len;
    }
    return 0;
}
