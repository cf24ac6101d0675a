/* Byte-level BPE training, Qwen2-style: texts are NFC-normalized and split by
 * the Qwen2 regex (through a tokenizer built from the same JSON this writes, so
 * training and encoding split identically); pre-token counts feed the classic
 * algorithm: count adjacent pairs, repeatedly merge the most frequent (ties: the
 * smallest ids, as Hugging Face), updating only the words that contain it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "tokenizer_impl.h"

typedef struct word {
    uint32_t off, len;   /* symbols in tr->syms */
    uint64_t count;
    uint32_t stamp;      /* last merge that touched it (dedupes where-lists) */
} word;

typedef struct pair {
    int32_t a, b;
    int64_t count;
    uint32_t *where;
    uint32_t n, cap;
} pair;

struct rl_tok_trainer {
    rl_tokenizer *pre;   /* normalizer + pre-tokenizer only */
    /* Distinct pre-tokens: bytes in a pool, hashed. */
    uint8_t *wbytes;
    size_t wbytes_len, wbytes_cap;
    word *words;
    size_t n_words, words_cap;
    uint32_t *wslots;    /* word index + 1 */
    size_t wmask;
    /* Training state. */
    int32_t *syms;
    pair *pairs;
    size_t n_pairs, pairs_cap;
    uint32_t *pslots;    /* pair index + 1 */
    size_t pmask;
    uint32_t *touched;   /* pairs whose count grew during the current merge */
    size_t n_touched, touched_cap;
    int training;
    uint32_t *tslots;    /* token bytes -> token id + 1 */
    size_t tmask;
};

int rl_tok_trainer_new(rl_tok_trainer **out, rl_error *err) {
    *out = NULL;
    rl_tok_trainer *tr = rl_calloc(1, sizeof *tr);
    if (!tr) return rl_fail(err, "out of memory for the trainer");
    /* Build the pre-tokenizer from JSON so the regex is escaped exactly as written out. */
    json_t *re = json_string(TOK_QWEN2_REGEX);
    char *re_js = json_dumps(re, JSON_ENCODE_ANY);
    json_decref(re);
    char buf[1024];
    snprintf(buf, sizeof buf,
             "%s%s},\"behavior\":\"Isolated\",\"invert\":false},"
             "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
             "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
             "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
             "{\"type\":\"Split\",\"pattern\":{\"Regex\":",
             re_js ? re_js : "\"\"");
    free(re_js);
    tr->wmask = 4095;
    tr->wslots = rl_calloc(tr->wmask + 1, sizeof(uint32_t));
    if (!tr->wslots || rl_tokenizer_load_json(buf, strlen(buf), "trainer", &tr->pre, err)) {
        if (!tr->wslots) rl_fail(err, "out of memory for the trainer");
        rl_tok_trainer_free(tr);
        return -1;
    }
    *out = tr;
    return 0;
}

void rl_tok_trainer_free(rl_tok_trainer *tr) {
    if (!tr) return;
    rl_tokenizer_free(tr->pre);
    rl_free(tr->wbytes);
    rl_free(tr->words);
    rl_free(tr->wslots);
    rl_free(tr->syms);
    for (size_t i = 0; i < tr->n_pairs; i++) rl_free(tr->pairs[i].where);
    rl_free(tr->pairs);
    rl_free(tr->pslots);
    rl_free(tr->touched);
    rl_free(tr->tslots);
    rl_free(tr);
}

static int word_rehash(rl_tok_trainer *tr) {
    size_t cap = (tr->wmask + 1) * 2;
    uint32_t *s = rl_calloc(cap, sizeof(uint32_t));
    if (!s) return -1;
    for (size_t w = 0; w < tr->n_words; w++) {
        size_t i = (size_t)tok_hash(tr->wbytes + tr->words[w].off, tr->words[w].len) & (cap - 1);
        while (s[i]) i = (i + 1) & (cap - 1);
        s[i] = (uint32_t)w + 1;
    }
    rl_free(tr->wslots);
    tr->wslots = s;
    tr->wmask = cap - 1;
    return 0;
}

static int count_word(rl_tok_trainer *tr, const uint8_t *s, size_t n) {
    size_t i = (size_t)tok_hash(s, n) & tr->wmask;
    while (tr->wslots[i]) {
        word *w = &tr->words[tr->wslots[i] - 1];
        if (w->len == n && memcmp(tr->wbytes + w->off, s, n) == 0) {
            w->count++;
            return 0;
        }
        i = (i + 1) & tr->wmask;
    }
    if (tr->wbytes_len + n > UINT32_MAX || tr->n_words + 1 >= UINT32_MAX) return -1;
    if (tok_grow((void **)&tr->wbytes, &tr->wbytes_cap, tr->wbytes_len + n, 1) ||
        tok_grow((void **)&tr->words, &tr->words_cap, tr->n_words + 1, sizeof(word)))
        return -1;
    memcpy(tr->wbytes + tr->wbytes_len, s, n);
    word *w = &tr->words[tr->n_words];
    w->off = (uint32_t)tr->wbytes_len;
    w->len = (uint32_t)n;
    w->count = 1;
    w->stamp = 0;
    tr->wbytes_len += n;
    tr->wslots[i] = (uint32_t)++tr->n_words;
    if (tr->n_words * 2 > tr->wmask && word_rehash(tr)) return -1;
    return 0;
}

int rl_tok_trainer_feed(rl_tok_trainer *tr, const char *text, size_t len, rl_error *err) {
    rl_tokenizer *t = tr->pre;
    const uint8_t *s = (const uint8_t *)text;
    if (!tok_utf8_valid(s, len)) {
        size_t need;
        if (rl_mul_size(len, 3, &need) || tok_grow((void **)&t->clean, &t->clean_cap, need, 1))
            return rl_fail(err, "trainer: out of memory for a %zu-byte text", len);
        len = tok_utf8_lossy(s, len, t->clean);
        s = t->clean;
    }
    const uint8_t *ns;
    size_t nn;
    if (tok_normalize(t, s, len, &ns, &nn, err)) return -1;
    if (nn == 0) return 0;
    if (tok_grow((void **)&t->arena, &t->arena_cap, nn, 1) || tok_grow((void **)&t->pa, &t->pa_cap, 1, sizeof(tok_span)))
        return rl_fail(err, "trainer: out of memory");
    memcpy(t->arena, ns, nn);
    t->arena_len = nn;
    t->pa[0].off = 0;
    t->pa[0].len = nn;
    tok_span *sp;
    size_t n_sp;
    if (tok_pretokenize(t, 1, &sp, &n_sp, err)) return -1;
    for (size_t i = 0; i < n_sp; i++)
        if (count_word(tr, t->arena + sp[i].off, sp[i].len)) return rl_fail(err, "trainer: out of memory");
    return 0;
}

/* ---- pairs ---- */

static inline uint64_t pkey(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static int pair_rehash(rl_tok_trainer *tr) {
    size_t cap = tr->pslots ? (tr->pmask + 1) * 2 : 4096;
    uint32_t *s = rl_calloc(cap, sizeof(uint32_t));
    if (!s) return -1;
    for (size_t p = 0; p < tr->n_pairs; p++) {
        uint64_t k = pkey(tr->pairs[p].a, tr->pairs[p].b);
        size_t i = (size_t)tok_hash(&k, 8) & (cap - 1);
        while (s[i]) i = (i + 1) & (cap - 1);
        s[i] = (uint32_t)p + 1;
    }
    rl_free(tr->pslots);
    tr->pslots = s;
    tr->pmask = cap - 1;
    return 0;
}

/* Index of pair (a, b), created with count 0 if absent; -1 on OOM. */
static int64_t pair_get(rl_tok_trainer *tr, int32_t a, int32_t b) {
    uint64_t k = pkey(a, b);
    size_t i = (size_t)tok_hash(&k, 8) & tr->pmask;
    while (tr->pslots[i]) {
        pair *p = &tr->pairs[tr->pslots[i] - 1];
        if (p->a == a && p->b == b) return tr->pslots[i] - 1;
        i = (i + 1) & tr->pmask;
    }
    if (tok_grow((void **)&tr->pairs, &tr->pairs_cap, tr->n_pairs + 1, sizeof(pair))) return -1;
    pair *p = &tr->pairs[tr->n_pairs];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    tr->pslots[i] = (uint32_t)++tr->n_pairs;
    if (tr->n_pairs * 2 > tr->pmask) {
        if (pair_rehash(tr)) return -1;
    }
    return (int64_t)tr->n_pairs - 1;
}

static int pair_add(rl_tok_trainer *tr, int32_t a, int32_t b, int64_t delta, uint32_t w) {
    int64_t pi = pair_get(tr, a, b);
    if (pi < 0) return -1;
    pair *p = &tr->pairs[pi];
    p->count += delta;
    if (delta > 0 && tr->training) {
        if (tok_grow((void **)&tr->touched, &tr->touched_cap, tr->n_touched + 1, sizeof(uint32_t))) return -1;
        tr->touched[tr->n_touched++] = (uint32_t)pi;
    }
    if (delta > 0) {
        if (p->n == p->cap) {
            uint32_t cap = p->cap ? p->cap * 2 : 4;
            uint32_t *q = rl_realloc(p->where, cap * sizeof(uint32_t));
            if (!q) return -1;
            p->where = q;
            p->cap = cap;
        }
        p->where[p->n++] = w;
    }
    return 0;
}

/* Max-heap of (count, pair index) with lazy re-checks. */
typedef struct hent { int64_t count; uint32_t pair; } hent;

static int hent_less(const rl_tok_trainer *tr, hent x, hent y) { /* x below y in priority */
    if (x.count != y.count) return x.count < y.count;
    const pair *px = &tr->pairs[x.pair], *py = &tr->pairs[y.pair];
    return pkey(px->a, px->b) > pkey(py->a, py->b);
}

static int heap_push(const rl_tok_trainer *tr, hent **h, size_t *n, size_t *cap, hent v) {
    if (*n == *cap && tok_grow((void **)h, cap, *n + 1, sizeof(hent))) return -1;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hent_less(tr, (*h)[p], v)) break;
        (*h)[i] = (*h)[p];
        i = p;
    }
    (*h)[i] = v;
    return 0;
}

static hent heap_pop(const rl_tok_trainer *tr, hent *h, size_t *n) {
    hent top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && hent_less(tr, h[c], h[c + 1])) c++;
        if (!hent_less(tr, v, h[c])) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* ---- writing ---- */

static char *spell(const uint8_t *s, size_t n) {
    char *o = rl_malloc(n * 2 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)tok_utf8_put(tok_byte_to_cp[s[i]], (uint8_t *)o + k);
    o[k] = '\0';
    return o;
}

static json_t *bytelevel_obj(void) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0,
                     "use_regex", 0);
}

int rl_tok_trainer_write(rl_tok_trainer *tr, const rl_tok_train_opts *o, const char *out_path, rl_error *err) {
    int rc = -1;
    int64_t min_freq = o->min_frequency < 1 ? 1 : o->min_frequency;
    if (o->vocab_size < o->n_special + 256)
        return rl_fail(err, "trainer: vocab_size %lld is below the %d special tokens + 256 bytes", (long long)o->vocab_size,
                       o->n_special);
    if (o->vocab_size > INT32_MAX) return rl_fail(err, "trainer: vocab_size too large");
    int32_t cap_tokens = (int32_t)o->vocab_size;
    /* Token bytes: specials, then the 256 bytes in code point order (HF sorts its
     * alphabet by character), then one per merge. */
    uint8_t **tb = rl_calloc((size_t)cap_tokens, sizeof(uint8_t *));
    uint32_t *tl = rl_calloc((size_t)cap_tokens, sizeof(uint32_t));
    int32_t *merge_a = rl_calloc((size_t)cap_tokens, sizeof(int32_t)), *merge_b = rl_calloc((size_t)cap_tokens, sizeof(int32_t));
    hent *heap = NULL;
    size_t hn = 0, hcap = 0;
    json_t *root = NULL;
    int32_t n_tok = 0, n_merges = 0, byte_tok[256];
    if (!tb || !tl || !merge_a || !merge_b) { rl_fail(err, "trainer: out of memory"); goto done; }
    for (int i = 0; i < o->n_special; i++) {
        size_t n = strlen(o->special[i]);
        if (!n) { rl_fail(err, "trainer: empty special token"); goto done; }
        for (int j = 0; j < i; j++)
            if (strcmp(o->special[j], o->special[i]) == 0) {
                rl_fail(err, "trainer: special token '%s' given twice", o->special[i]);
                goto done;
            }
        tb[n_tok] = rl_malloc(n);
        if (!tb[n_tok]) { rl_fail(err, "trainer: out of memory"); goto done; }
        memcpy(tb[n_tok], o->special[i], n);
        tl[n_tok++] = (uint32_t)n;
    }
    {
        int order[256];
        for (int b = 0; b < 256; b++) order[b] = b;
        for (int i = 1; i < 256; i++) /* insertion sort by mapped code point */
            for (int j = i; j > 0 && tok_byte_to_cp[order[j]] < tok_byte_to_cp[order[j - 1]]; j--) {
                int x = order[j]; order[j] = order[j - 1]; order[j - 1] = x;
            }
        for (int i = 0; i < 256; i++) {
            tb[n_tok] = rl_malloc(1);
            if (!tb[n_tok]) { rl_fail(err, "trainer: out of memory"); goto done; }
            tb[n_tok][0] = (uint8_t)order[i];
            tl[n_tok] = 1;
            byte_tok[order[i]] = n_tok++;
        }
    }
    /* Words as symbol sequences. */
    {
        size_t total = tr->wbytes_len ? tr->wbytes_len : 1;
        tr->syms = rl_malloc(total * sizeof(int32_t));
        if (!tr->syms || pair_rehash(tr)) { rl_fail(err, "trainer: out of memory"); goto done; }
        for (size_t w = 0; w < tr->n_words; w++)
            for (uint32_t i = 0; i < tr->words[w].len; i++)
                tr->syms[tr->words[w].off + i] = byte_tok[tr->wbytes[tr->words[w].off + i]];
        for (size_t w = 0; w < tr->n_words; w++) {
            const word *wd = &tr->words[w];
            for (uint32_t i = 0; i + 1 < wd->len; i++)
                if (pair_add(tr, tr->syms[wd->off + i], tr->syms[wd->off + i + 1], (int64_t)wd->count, (uint32_t)w)) {
                    rl_fail(err, "trainer: out of memory");
                    goto done;
                }
        }
        for (size_t p = 0; p < tr->n_pairs; p++)
            if (tr->pairs[p].count > 0 && heap_push(tr, &heap, &hn, &hcap, (hent){tr->pairs[p].count, (uint32_t)p})) {
                rl_fail(err, "trainer: out of memory");
                goto done;
            }
    }
    {
        size_t tcap = 16;
        while (tcap < (size_t)cap_tokens * 2) tcap *= 2;
        tr->tslots = rl_calloc(tcap, sizeof(uint32_t));
        if (!tr->tslots) goto oom;
        tr->tmask = tcap - 1;
        for (int32_t k = 0; k < n_tok; k++) {
            size_t ti = (size_t)tok_hash(tb[k], tl[k]) & tr->tmask;
            while (tr->tslots[ti]) ti = (ti + 1) & tr->tmask;
            tr->tslots[ti] = (uint32_t)k + 1;
        }
    }
    tr->training = 1;
    tr->n_touched = 0;
    uint32_t stamp = 0;
    while (n_tok < cap_tokens && hn) {
        hent top = heap_pop(tr, heap, &hn);
        pair *p = &tr->pairs[top.pair];
        if (top.count != p->count) { /* stale: requeue with the current count */
            if (p->count > 0 && heap_push(tr, &heap, &hn, &hcap, (hent){p->count, top.pair})) goto oom;
            continue;
        }
        if (p->count < min_freq) break;
        int32_t a = p->a, b = p->b;
        /* The new token (an existing spelling reuses its id, as HF does). */
        size_t nl = (size_t)tl[a] + tl[b];
        uint8_t *nb = rl_malloc(nl);
        if (!nb) goto oom;
        memcpy(nb, tb[a], tl[a]);
        memcpy(nb + tl[a], tb[b], tl[b]);
        int32_t id = -1;
        size_t ti = (size_t)tok_hash(nb, nl) & tr->tmask;
        for (; tr->tslots[ti]; ti = (ti + 1) & tr->tmask) {
            int32_t k = (int32_t)tr->tslots[ti] - 1;
            if (tl[k] == nl && memcmp(tb[k], nb, nl) == 0) { id = k; break; }
        }
        if (id < 0) {
            id = n_tok;
            tb[n_tok] = nb;
            tl[n_tok++] = (uint32_t)nl;
            tr->tslots[ti] = (uint32_t)id + 1;
        } else {
            rl_free(nb);
        }
        merge_a[n_merges] = a;
        merge_b[n_merges++] = b;
        stamp++;
        uint32_t nwhere = p->n;
        uint32_t *where = p->where;
        p->where = NULL;
        p->n = p->cap = 0;
        p->count = 0;
        for (uint32_t wi = 0; wi < nwhere; wi++) {
            word *wd = &tr->words[where[wi]];
            if (wd->stamp == stamp) continue;
            wd->stamp = stamp;
            int32_t *sy = tr->syms + wd->off;
            int64_t c = (int64_t)wd->count;
            uint32_t len = wd->len, i = 0, o2 = 0;
            /* Merge non-overlapping occurrences left to right, updating neighbour pairs. */
            while (i < len) {
                if (i + 1 < len && sy[i] == a && sy[i + 1] == b) {
                    if (o2 > 0) {
                        if (pair_add(tr, sy[o2 - 1], a, -c, 0) || pair_add(tr, sy[o2 - 1], id, c, where[wi])) { rl_free(where); goto oom; }
                    }
                    if (i + 2 < len) {
                        if (pair_add(tr, b, sy[i + 2], -c, 0) || pair_add(tr, id, sy[i + 2], c, where[wi])) { rl_free(where); goto oom; }
                    }
                    sy[o2++] = id;
                    i += 2;
                } else {
                    sy[o2++] = sy[i++];
                }
            }
            wd->len = o2;
        }
        rl_free(where);
        tr->pairs[top.pair].count = 0;
        /* Counts only grew for pairs with the new token: queue those (the lazy
         * check above handles the ones that shrank). */
        for (size_t q = 0; q < tr->n_touched; q++) {
            pair *pq = &tr->pairs[tr->touched[q]];
            if (pq->count > 0 && heap_push(tr, &heap, &hn, &hcap, (hent){pq->count, tr->touched[q]})) goto oom;
        }
        tr->n_touched = 0;
    }
    goto write;
oom:
    rl_fail(err, "trainer: out of memory");
    goto done;
write:
    root = json_object();
    json_t *added = json_array();
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    for (int i = 0; i < o->n_special; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i, "content",
                                               o->special[i], "single_word", 0, "lstrip", 0, "rstrip", 0,
                                               "normalized", 0, "special", 1));
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFC"));
    json_object_set_new(root, "pre_tokenizer",
                        json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type",
                                  "Split", "pattern", "Regex", TOK_QWEN2_REGEX, "behavior", "Isolated", "invert", 0,
                                  bytelevel_obj()));
    json_object_set_new(root, "post_processor", bytelevel_obj());
    json_object_set_new(root, "decoder", bytelevel_obj());
    json_t *model = json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b}", "type", "BPE", "dropout", "unk_token",
                              "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", 0);
    json_t *vocab = json_object(), *merges = json_array();
    char **spelled = rl_calloc((size_t)n_tok, sizeof(char *));
    if (!root || !added || !model || !vocab || !merges || !spelled) { rl_free(spelled); rl_fail(err, "trainer: out of memory"); goto done; }
    for (int32_t k = 0; k < n_tok; k++) {
        if (k < o->n_special) spelled[k] = rl_strdup(o->special[k]);
        else spelled[k] = spell(tb[k], tl[k]);
        if (!spelled[k]) { rl_fail(err, "trainer: out of memory"); break; }
        json_object_set_new(vocab, spelled[k], json_integer(k));
    }
    for (int32_t m = 0; m < n_merges && !err->failed; m++) {
        size_t la = strlen(spelled[merge_a[m]]), lb = strlen(spelled[merge_b[m]]);
        char *s = rl_malloc(la + lb + 2);
        if (!s) { rl_fail(err, "trainer: out of memory"); break; }
        memcpy(s, spelled[merge_a[m]], la);
        s[la] = ' ';
        memcpy(s + la + 1, spelled[merge_b[m]], lb + 1);
        json_array_append_new(merges, json_string(s));
        rl_free(s);
    }
    for (int32_t k = 0; k < n_tok; k++) rl_free(spelled[k]);
    rl_free(spelled);
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(model, "merges", merges);
    json_object_set_new(root, "model", model);
    if (err->failed) goto done;
    {
        /* Write to a temporary name and rename, so a failure never leaves half a file. */
        size_t pl = strlen(out_path);
        char *tmp = rl_malloc(pl + 8);
        if (!tmp) { rl_fail(err, "trainer: out of memory"); goto done; }
        memcpy(tmp, out_path, pl);
        memcpy(tmp + pl, ".tmp", 5);
        if (json_dump_file(root, tmp, JSON_INDENT(1)) != 0 || rename(tmp, out_path) != 0) {
            rl_fail(err, "%s: cannot write the tokenizer", out_path);
            remove(tmp);
            rl_free(tmp);
            goto done;
        }
        rl_free(tmp);
    }
    rc = 0;
done:
    json_decref(root);
    for (int32_t k = 0; tb && k < cap_tokens; k++) rl_free(tb[k]);
    rl_free(tb);
    rl_free(tl);
    rl_free(merge_a);
    rl_free(merge_b);
    rl_free(heap);
    return rc;
}
