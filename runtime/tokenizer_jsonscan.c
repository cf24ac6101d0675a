/* A fast path for the two huge parts of tokenizer.json, model.vocab and
 * model.merges (300k strings in Qwen's 7-11 MB file): a general JSON library
 * spends ~0.5 s building a DOM of them, so they are read here directly into the
 * tokenizer's string pool, and jansson parses the rest of the document (with
 * those two values blanked) for everything else. The scanner checks the JSON
 * grammar of the whole document as it goes and reports line and column. */
#include <string.h>

#include "alloc.h"
#include "tokenizer_impl.h"
#include "tokenizer_jsonscan.h"

typedef struct scan {
    const char *s;
    size_t n, i;
    const char *name;
    rl_error *err;
} scan;

static int fail_at(scan *sc, const char *what) {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < sc->i && k < sc->n; k++) {
        if (sc->s[k] == '\n') { line++; col = 1; }
        else col++;
    }
    return rl_fail(sc->err, "%s: malformed JSON at line %zu column %zu: %s", sc->name, line, col, what);
}

static void ws(scan *sc) {
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
        sc->i++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(scan *sc, uint32_t *v) {
    if (sc->i + 4 > sc->n) return -1;
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(sc->s[sc->i + (size_t)k]);
        if (h < 0) return -1;
        x = x * 16 + (uint32_t)h;
    }
    sc->i += 4;
    *v = x;
    return 0;
}

/* Reads a string at sc->i (which must be '"'); decoded bytes are appended to
 * *buf (plus a NUL) when buf != NULL. */
static int read_string(scan *sc, tok_jbuf *buf, size_t *off, size_t *len) {
    if (sc->i >= sc->n || sc->s[sc->i] != '"') return fail_at(sc, "expected a string");
    sc->i++;
    size_t start = buf ? buf->len : 0;
    for (;;) {
        size_t j = sc->i;
        while (j < sc->n && sc->s[j] != '"' && sc->s[j] != '\\' && (unsigned char)sc->s[j] >= 0x20) j++;
        if (buf) {
            if (tok_grow((void **)&buf->p, &buf->cap, buf->len + (j - sc->i) + 8, 1)) return rl_fail(sc->err, "%s: out of memory", sc->name);
            memcpy(buf->p + buf->len, sc->s + sc->i, j - sc->i);
            buf->len += j - sc->i;
        }
        sc->i = j;
        if (j >= sc->n) return fail_at(sc, "unterminated string");
        char c = sc->s[j];
        if (c == '"') { sc->i++; break; }
        if (c != '\\') return fail_at(sc, "control character in a string");
        if (j + 1 >= sc->n) return fail_at(sc, "unterminated string");
        char e = sc->s[j + 1];
        sc->i = j + 2;
        uint8_t out[4];
        int k = 1;
        switch (e) {
        case '"': out[0] = '"'; break;
        case '\\': out[0] = '\\'; break;
        case '/': out[0] = '/'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (hex4(sc, &cp)) return fail_at(sc, "bad \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (sc->i + 2 > sc->n || sc->s[sc->i] != '\\' || sc->s[sc->i + 1] != 'u')
                    return fail_at(sc, "lone surrogate in \\u escape");
                sc->i += 2;
                if (hex4(sc, &lo) || lo < 0xDC00 || lo > 0xDFFF) return fail_at(sc, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail_at(sc, "lone surrogate in \\u escape");
            }
            k = tok_utf8_put(cp, out);
            break;
        }
        default:
            return fail_at(sc, "bad escape in a string");
        }
        if (buf) {
            memcpy(buf->p + buf->len, out, (size_t)k);
            buf->len += (size_t)k;
        }
    }
    if (buf) {
        *off = start;
        *len = buf->len - start;
        buf->p[buf->len++] = '\0';
    }
    return 0;
}

static int skip_value(scan *sc, int depth);

static int skip_number(scan *sc) {
    size_t j = sc->i;
    if (j < sc->n && sc->s[j] == '-') j++;
    size_t d = j;
    while (j < sc->n && sc->s[j] >= '0' && sc->s[j] <= '9') j++;
    if (j == d) return fail_at(sc, "invalid value");
    if (j < sc->n && sc->s[j] == '.') {
        j++;
        size_t f = j;
        while (j < sc->n && sc->s[j] >= '0' && sc->s[j] <= '9') j++;
        if (j == f) return fail_at(sc, "bad number");
    }
    if (j < sc->n && (sc->s[j] == 'e' || sc->s[j] == 'E')) {
        j++;
        if (j < sc->n && (sc->s[j] == '+' || sc->s[j] == '-')) j++;
        size_t f = j;
        while (j < sc->n && sc->s[j] >= '0' && sc->s[j] <= '9') j++;
        if (j == f) return fail_at(sc, "bad number");
    }
    sc->i = j;
    return 0;
}

static int skip_value(scan *sc, int depth) {
    if (depth > 256) return fail_at(sc, "nesting too deep");
    ws(sc);
    if (sc->i >= sc->n) return fail_at(sc, "unexpected end of input");
    char c = sc->s[sc->i];
    if (c == '"') return read_string(sc, NULL, NULL, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        sc->i++;
        ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == close) { sc->i++; return 0; }
        for (;;) {
            if (c == '{') {
                ws(sc);
                if (read_string(sc, NULL, NULL, NULL)) return -1;
                ws(sc);
                if (sc->i >= sc->n || sc->s[sc->i] != ':') return fail_at(sc, "expected ':'");
                sc->i++;
            }
            if (skip_value(sc, depth + 1)) return -1;
            ws(sc);
            if (sc->i < sc->n && sc->s[sc->i] == ',') { sc->i++; continue; }
            if (sc->i < sc->n && sc->s[sc->i] == close) { sc->i++; return 0; }
            return fail_at(sc, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    static const char *lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (sc->n - sc->i >= l && memcmp(sc->s + sc->i, lits[k], l) == 0) { sc->i += l; return 0; }
    }
    return skip_number(sc);
}

static int read_int(scan *sc, int64_t *v) {
    ws(sc);
    size_t j = sc->i;
    int neg = 0;
    if (j < sc->n && sc->s[j] == '-') { neg = 1; j++; }
    int64_t x = 0;
    size_t d = j;
    while (j < sc->n && sc->s[j] >= '0' && sc->s[j] <= '9' && x < ((int64_t)1 << 40)) x = x * 10 + (sc->s[j++] - '0');
    int plain = j > d && (j >= sc->n || (sc->s[j] != '.' && sc->s[j] != 'e' && sc->s[j] != 'E' &&
                                         !(sc->s[j] >= '0' && sc->s[j] <= '9')));
    if (!plain) {
        *v = -1; /* not a small integer: validate it as a value, report later */
        return skip_value(sc, 0);
    }
    sc->i = j;
    *v = neg ? -x : x;
    return 0;
}

static int expect(scan *sc, char c, const char *what) {
    ws(sc);
    if (sc->i >= sc->n || sc->s[sc->i] != c) return fail_at(sc, what);
    sc->i++;
    return 0;
}

/* Sizes a buffer for everything that can follow (strings never decode longer
 * than their JSON text): no regrowth copies while reading ~10 MB. Pages that
 * are never written cost nothing. */
static int presize(scan *sc, tok_jbuf *b, void **arr, size_t *arr_cap, size_t elem) {
    size_t rest = sc->n - sc->i;
    if (tok_grow((void **)&b->p, &b->cap, b->len + rest + 8, 1) || tok_grow(arr, arr_cap, rest / 6 + 1, elem))
        return rl_fail(sc->err, "%s: out of memory", sc->name);
    return 0;
}

static int read_vocab(scan *sc, tok_rawjson *r) {
    if (expect(sc, '{', "model.vocab is not an object")) return -1;
    if (presize(sc, &r->strs, (void **)&r->vocab, &r->vocab_cap, sizeof(tok_rawtok))) return -1;
    ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') { sc->i++; return 0; }
    for (;;) {
        size_t off, len;
        ws(sc);
        if (read_string(sc, &r->strs, &off, &len)) return -1;
        if (expect(sc, ':', "expected ':'")) return -1;
        int64_t id;
        if (read_int(sc, &id)) return -1;
        if (tok_grow((void **)&r->vocab, &r->vocab_cap, r->n_vocab + 1, sizeof(tok_rawtok))) return rl_fail(sc->err, "%s: out of memory", sc->name);
        r->vocab[r->n_vocab].off = off;
        r->vocab[r->n_vocab].len = len;
        r->vocab[r->n_vocab++].id = id;
        ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == ',') { sc->i++; continue; }
        if (sc->i < sc->n && sc->s[sc->i] == '}') { sc->i++; return 0; }
        return fail_at(sc, "expected ',' or '}'");
    }
}

static int read_merges(scan *sc, tok_rawjson *r) {
    if (expect(sc, '[', "model.merges is not an array")) return -1;
    if (presize(sc, &r->mstrs, (void **)&r->merges, &r->merges_cap, sizeof(tok_rawmerge))) return -1;
    ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == ']') { sc->i++; return 0; }
    for (;;) {
        if (tok_grow((void **)&r->merges, &r->merges_cap, r->n_merges + 1, sizeof(tok_rawmerge)))
            return rl_fail(sc->err, "%s: out of memory", sc->name);
        tok_rawmerge *m = &r->merges[r->n_merges++];
        memset(m, 0, sizeof *m);
        ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == '"') {
            size_t off, len;
            if (read_string(sc, &r->mstrs, &off, &len)) return -1;
            const char *p = r->mstrs.p + off;
            const char *sp = memchr(p, ' ', len);
            if (sp && !memchr(sp + 1, ' ', len - (size_t)(sp - p) - 1)) {
                m->a_off = off;
                m->a_len = (size_t)(sp - p);
                m->b_off = off + m->a_len + 1;
                m->b_len = len - m->a_len - 1;
                m->ok = 1;
            }
            m->str_off = off; /* for the error message */
        } else if (sc->i < sc->n && sc->s[sc->i] == '[') {
            sc->i++;
            ws(sc);
            if (sc->i < sc->n && sc->s[sc->i] == '"') {
                if (read_string(sc, &r->mstrs, &m->a_off, &m->a_len)) return -1;
                ws(sc);
                if (sc->i < sc->n && sc->s[sc->i] == ',') {
                    sc->i++;
                    ws(sc);
                    if (sc->i < sc->n && sc->s[sc->i] == '"') {
                        if (read_string(sc, &r->mstrs, &m->b_off, &m->b_len)) return -1;
                        ws(sc);
                        if (sc->i < sc->n && sc->s[sc->i] == ']') { sc->i++; m->ok = 1; }
                    }
                }
            }
            if (!m->ok) { /* not a pair of strings: check the JSON and report it as a bad merge */
                while (sc->i < sc->n && sc->s[sc->i] != ']') {
                    if (sc->s[sc->i] == ',') sc->i++;
                    if (skip_value(sc, 1)) return -1;
                    ws(sc);
                }
                if (expect(sc, ']', "expected ']'")) return -1;
            }
            m->str_off = SIZE_MAX;
        } else {
            if (skip_value(sc, 1)) return -1;
            m->str_off = SIZE_MAX;
        }
        ws(sc);
        if (sc->i < sc->n && sc->s[sc->i] == ',') { sc->i++; continue; }
        if (sc->i < sc->n && sc->s[sc->i] == ']') { sc->i++; return 0; }
        return fail_at(sc, "expected ',' or ']'");
    }
}

int tok_rawjson_scan(const char *text, size_t n, const char *name, tok_rawjson *r, rl_error *err) {
    memset(r, 0, sizeof *r);
    scan sc = {text, n, 0, name, err};
    ws(&sc);
    if (sc.i >= n || text[sc.i] != '{') return skip_value(&sc, 0) ? -1 : 0; /* jansson reports the rest */
    sc.i++;
    ws(&sc);
    if (sc.i < n && text[sc.i] == '}') { sc.i++; goto tail; }
    for (;;) {
        size_t koff, klen;
        ws(&sc);
        tok_jbuf key = {0};
        if (read_string(&sc, &key, &koff, &klen)) { rl_free(key.p); return -1; }
        int is_model = klen == 5 && memcmp(key.p, "model", 5) == 0;
        rl_free(key.p);
        if (expect(&sc, ':', "expected ':'")) return -1;
        ws(&sc);
        if (is_model && sc.i < n && text[sc.i] == '{') {
            sc.i++;
            ws(&sc);
            if (sc.i < n && text[sc.i] == '}') sc.i++;
            else for (;;) {
                tok_jbuf mk = {0};
                ws(&sc);
                if (read_string(&sc, &mk, &koff, &klen)) { rl_free(mk.p); return -1; }
                int which = (klen == 5 && memcmp(mk.p, "vocab", 5) == 0) ? 1 : (klen == 6 && memcmp(mk.p, "merges", 6) == 0) ? 2 : 0;
                rl_free(mk.p);
                if (expect(&sc, ':', "expected ':'")) return -1;
                ws(&sc);
                size_t start = sc.i;
                if (which == 1 && !r->has_vocab && sc.i < n && text[sc.i] == '{') {
                    if (read_vocab(&sc, r)) return -1;
                    r->has_vocab = 1;
                    r->vocab_start = start;
                    r->vocab_end = sc.i;
                } else if (which == 2 && !r->has_merges && sc.i < n && text[sc.i] == '[') {
                    if (read_merges(&sc, r)) return -1;
                    r->has_merges = 1;
                    r->merges_start = start;
                    r->merges_end = sc.i;
                } else if (skip_value(&sc, 2)) {
                    return -1;
                }
                ws(&sc);
                if (sc.i < n && text[sc.i] == ',') { sc.i++; continue; }
                if (sc.i < n && text[sc.i] == '}') { sc.i++; break; }
                return fail_at(&sc, "expected ',' or '}'");
            }
        } else if (skip_value(&sc, 1)) {
            return -1;
        }
        ws(&sc);
        if (sc.i < n && text[sc.i] == ',') { sc.i++; continue; }
        if (sc.i < n && text[sc.i] == '}') { sc.i++; break; }
        return fail_at(&sc, "expected ',' or '}'");
    }
tail:
    ws(&sc);
    if (sc.i != n) return fail_at(&sc, "end of file expected");
    return 0;
}

void tok_rawjson_free(tok_rawjson *r) {
    rl_free(r->strs.p);
    rl_free(r->mstrs.p);
    rl_free(r->vocab);
    rl_free(r->merges);
    memset(r, 0, sizeof *r);
}
