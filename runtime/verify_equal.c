/* Answer equivalence: the structural and numeric half. Both answers are
 * first normalised to canonical text (verify_norm.c); equal texts are equal.
 * Otherwise the text is read as a structure (union of intervals, tuple,
 * interval, set, bare list, single element) and single elements as numbers:
 * integers, decimals, a/b, \frac{a}{b}, mixed numbers 2\frac{1}{2}, and
 * scientific "a\times10^{b}". Numbers compare exactly as rationals; a long
 * decimal (6 or more significant digits) or a value too large for exact
 * arithmetic compares with relative tolerance 1e-6. No heap: this runs in a
 * node's forward. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "verify.h"

#define MAX_ELEMS 64
#define MAX_PARTS 8
#define MAX_DEPTH 6
#define LONG_DIGITS 6
#define REL_TOL 1e-6L

typedef struct num {
    int exact;          /* p/q holds the value (reduced, q > 0) */
    int64_t p, q;
    long double v;      /* the value, always */
    int is_long;        /* came from a long decimal: compare with tolerance */
} num;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static __int128 gcd128(__int128 a, __int128 b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Sets r to p/q, exact when the reduced fraction fits in int64. */
static void num_set(num *r, __int128 p, __int128 q, int exact, long double v) {
    r->v = v;
    r->exact = 0;
    if (!exact || q == 0) return;
    if (q < 0) { p = -p; q = -q; }
    __int128 g = gcd128(p, q);
    if (g > 1) { p /= g; q /= g; }
    const __int128 lim = (__int128)INT64_MAX;
    if (p > lim || p < -lim || q > lim) return;
    r->exact = 1;
    r->p = (int64_t)p;
    r->q = (int64_t)q;
}

static void num_div(num *r, const num *a, const num *b) {
    int ex = a->exact && b->exact && b->p != 0;
    long double v = b->v != 0 ? a->v / b->v : NAN;
    num_set(r, ex ? (__int128)a->p * b->q : 0, ex ? (__int128)a->q * b->p : 1, ex, v);
    r->is_long = a->is_long || b->is_long;
}

static void num_add(num *r, const num *a, const num *b) {
    int ex = a->exact && b->exact;
    __int128 p = 0, q = 1;
    if (ex) {
        p = (__int128)a->p * b->q + (__int128)b->p * a->q;
        q = (__int128)a->q * b->q;
    }
    num_set(r, p, q, ex, a->v + b->v);
    r->is_long = a->is_long || b->is_long;
}

static void num_neg(num *r) {
    r->p = -r->p;
    r->v = -r->v;
}

/* r *= 10^e. */
static void num_scale10(num *r, int e) {
    long double v = r->v * powl(10.0L, (long double)e);
    if (!r->exact || e > 36 || e < -36) { r->exact = 0; r->v = v; return; }
    __int128 p = r->p, q = r->q;
    int ex = 1;
    for (int k = 0; k < (e < 0 ? -e : e); k++) {
        __int128 *x = e > 0 ? &p : &q;
        if (*x > ((__int128)1 << 120) / 10 || *x < -(((__int128)1 << 120) / 10)) { ex = 0; break; }
        *x *= 10;
    }
    int lg = r->is_long;
    num_set(r, p, q, ex, v);
    r->is_long = lg;
}

/* Unsigned decimal "12", "12.5", ".5", "3." at s[*i]; 0 if none. */
static int parse_decimal(const char *s, size_t n, size_t *i, num *r, int *has_point) {
    size_t j = *i;
    __int128 mant = 0;
    int exact = 1, digits = 0, sig = 0, frac = 0, point = 0;
    long double v = 0;
    for (; j < n; j++) {
        char c = s[j];
        if (c == '.' && !point) {
            point = 1;
            continue;
        }
        if (!is_digit(c)) break;
        digits++;
        if (sig > 0 || c != '0') sig++;
        if (point) frac++;
        v = v * 10 + (c - '0');
        if (mant < ((__int128)1 << 100)) mant = mant * 10 + (c - '0');
        else exact = 0;
    }
    if (digits == 0) return 0;
    /* a point must touch a digit: "3." and ".5" are fine, "." is not */
    *i = j;
    *has_point = point;
    v /= powl(10.0L, (long double)frac);
    __int128 den = 1;
    for (int k = 0; k < frac && exact; k++) {
        if (den > ((__int128)1 << 100)) exact = 0;
        else den *= 10;
    }
    num_set(r, mant, den, exact, v);
    r->is_long = sig >= LONG_DIGITS;
    return 1;
}

static int starts(const char *s, size_t n, size_t i, const char *w) {
    size_t l = strlen(w);
    return i + l <= n && memcmp(s + i, w, l) == 0;
}

/* Index past the brace group at s[i] (s[i] == '{'), or 0 if unclosed. */
static size_t group_end(const char *s, size_t n, size_t i) {
    int d = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '{') d++;
        else if (s[j] == '}' && --d == 0) return j + 1;
    }
    return 0;
}

static int parse_number_d(const char *s, size_t n, num *r, int depth);

/* \frac{A}{B} at s[*i]. */
static int parse_frac(const char *s, size_t n, size_t *i, num *r, int depth) {
    size_t j = *i;
    if (!starts(s, n, j, "\\frac{")) return 0;
    j += 5;
    size_t e1 = group_end(s, n, j);
    if (!e1 || e1 >= n || s[e1] != '{') return 0;
    size_t e2 = group_end(s, n, e1);
    if (!e2) return 0;
    num a, b;
    if (!parse_number_d(s + j + 1, e1 - j - 2, &a, depth + 1)) return 0;
    if (!parse_number_d(s + e1 + 1, e2 - e1 - 2, &b, depth + 1)) return 0;
    if (b.exact ? b.p == 0 : b.v == 0) return 0;
    num_div(r, &a, &b);
    *i = e2;
    return 1;
}

/* A signed integer exponent: "7", "-19", "{-19}". */
static int parse_exponent(const char *s, size_t n, size_t *i, int *e) {
    size_t j = *i;
    int brace = j < n && s[j] == '{';
    if (brace) j++;
    int neg = 0;
    if (j < n && (s[j] == '-' || s[j] == '+')) neg = s[j++] == '-';
    size_t d0 = j;
    long v = 0;
    /* without braces LaTeX takes one digit; "e-19" style takes them all */
    while (j < n && is_digit(s[j]) && v < 100000) v = v * 10 + (s[j++] - '0');
    if (j == d0) return 0;
    if (brace) {
        if (j >= n || s[j] != '}') return 0;
        j++;
    }
    *e = (int)(neg ? -v : v);
    *i = j;
    return 1;
}

static int parse_number_d(const char *s, size_t n, num *r, int depth) {
    if (depth > MAX_DEPTH || n == 0) return 0;
    /* strip one pair of braces or parentheses around the whole number */
    if (n >= 2 && ((s[0] == '{' && s[n - 1] == '}') || (s[0] == '(' && s[n - 1] == ')')))
        if (parse_number_d(s + 1, n - 2, r, depth + 1)) return 1;
    size_t i = 0;
    int neg = 0;
    if (s[i] == '-' || s[i] == '+') neg = s[i++] == '-';
    if (i < n && (s[i] == '-' || s[i] == '+')) return 0;
    if (starts(s, n, i, "\\frac{")) {
        if (!parse_frac(s, n, &i, r, depth)) return 0;
    } else {
        int point = 0;
        if (!parse_decimal(s, n, &i, r, &point)) return 0;
        if (i < n && starts(s, n, i, "\\frac{") && !point) {
            /* mixed number 2\frac{1}{2} */
            num f;
            size_t j = i;
            if (!parse_frac(s, n, &j, &f, depth) || f.v < 0 || f.v >= 1) return 0;
            num_add(r, r, &f);
            i = j;
        } else if (i < n && s[i] == '/') {
            i++;
            num b;
            int pb = 0;
            if (!parse_decimal(s, n, &i, &b, &pb)) return 0;
            if (b.exact ? b.p == 0 : b.v == 0) return 0;
            num_div(r, r, &b);
        } else {
            const char *mul[] = {"\\times10^", "\\cdot10^", "*10^", "\\times10^", NULL};
            int e = 0, scaled = 0;
            for (int k = 0; mul[k] && !scaled; k++) {
                if (starts(s, n, i, mul[k])) {
                    size_t j = i + strlen(mul[k]);
                    if (!parse_exponent(s, n, &j, &e)) return 0;
                    i = j;
                    scaled = 1;
                }
            }
            if (!scaled && i + 1 < n && (s[i] == 'e' || s[i] == 'E') &&
                (is_digit(s[i + 1]) || ((s[i + 1] == '-' || s[i + 1] == '+') && i + 2 < n && is_digit(s[i + 2])))) {
                size_t j = i + 1;
                if (!parse_exponent(s, n, &j, &e)) return 0;
                i = j;
                scaled = 1;
            }
            if (scaled) num_scale10(r, e);
        }
    }
    if (i != n) return 0;
    if (neg) num_neg(r);
    return 1;
}

static int parse_number(const char *s, size_t n, num *r) {
    memset(r, 0, sizeof *r);
    return parse_number_d(s, n, r, 0);
}

static int num_eq(const num *a, const num *b) {
    if (a->exact && b->exact) {
        if (a->p == b->p && a->q == b->q) return 1;
        if (!a->is_long && !b->is_long) return 0;
    }
    if (isnan((double)a->v) || isnan((double)b->v)) return 0;
    long double d = fabsl(a->v - b->v), m = fmaxl(fabsl(a->v), fabsl(b->v));
    if (m == 0) return d == 0;
    return d <= REL_TOL * m;
}

static int is_open(char c) { return c == '(' || c == '[' || c == '{'; }
static int is_close(char c) { return c == ')' || c == ']' || c == '}'; }

/* Index of the bracket closing the one at s[0], or n if none. Bracket kinds
 * are not matched against each other, so a half-open interval [a,b) works. */
static size_t match_close(const char *s, size_t n) {
    int d = 0;
    for (size_t j = 0; j < n; j++) {
        if (is_open(s[j])) d++;
        else if (is_close(s[j]) && --d == 0) return j;
    }
    return n;
}

/* Splits at top-level occurrences of sep (a one-char "," or "\\cup"). */
static int split_top(const char *s, size_t n, const char *sep, size_t *st, size_t *len, int max) {
    size_t l = strlen(sep), last = 0;
    int d = 0, c = 0;
    for (size_t j = 0; j < n; j++) {
        if (is_open(s[j])) d++;
        else if (is_close(s[j])) d--;
        else if (d == 0 && starts(s, n, j, sep)) {
            if (c + 1 >= max) return -1;
            st[c] = last;
            len[c++] = j - last;
            last = j + l;
            j += l - 1;
        }
    }
    st[c] = last;
    len[c++] = n - last;
    return c;
}

/* "x=5", "f(x)=x+1", "k=1": drops a simple left-hand side. */
static void strip_lhs(const char **s, size_t *n) {
    const char *p = *s;
    size_t m = *n, eq = 0;
    int count = 0, d = 0;
    for (size_t j = 0; j < m; j++) {
        if (is_open(p[j])) d++;
        else if (is_close(p[j])) d--;
        else if (p[j] == '=' && d == 0) {
            count++;
            eq = j;
        }
    }
    if (count != 1 || eq == 0 || eq + 1 >= m) return;
    if (p[eq - 1] == '<' || p[eq - 1] == '>' || p[eq - 1] == '!') return;
    char c0 = p[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '\\')) return;
    for (size_t j = 0; j < eq; j++) {
        char c = p[j];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '{' ||
                 c == '}' || c == '(' || c == ')' || c == ',' || c == '\\' || c == '^' || c == '\'';
        if (!ok) return;
    }
    *s = p + eq + 1;
    *n = m - eq - 1;
}

enum { G_SINGLE = 0, G_TUPLE, G_SET, G_LIST };

typedef struct group {
    int kind;
    char open, close;
    int n;
    const char *base;
    size_t st[MAX_ELEMS], len[MAX_ELEMS];
} group;

/* Reads the structure of a canonical answer; -1 if it has too many elements. */
static int parse_group(const char *s, size_t n, group *g) {
    g->kind = G_SINGLE;
    g->open = g->close = 0;
    g->base = s;
    g->n = 1;
    g->st[0] = 0;
    g->len[0] = n;
    if (n >= 2 && (s[0] == '(' || s[0] == '[') && (s[n - 1] == ')' || s[n - 1] == ']') && match_close(s, n) == n - 1) {
        int c = split_top(s + 1, n - 2, ",", g->st, g->len, MAX_ELEMS);
        if (c < 0) return -1;
        for (int k = 0; k < c; k++) g->st[k] += 1;
        if (c == 1 && s[0] == '(' && s[n - 1] == ')') {
            /* (x) is x */
            g->st[0] = 1;
            g->len[0] = n - 2;
            return 0;
        }
        g->kind = G_TUPLE;
        g->open = s[0];
        g->close = s[n - 1];
        g->n = c;
        return 0;
    }
    if (n >= 4 && starts(s, n, 0, "\\{") && s[n - 2] == '\\' && s[n - 1] == '}' && match_close(s + 1, n - 1) == n - 2) {
        int c = split_top(s + 2, n - 4, ",", g->st, g->len, MAX_ELEMS);
        if (c < 0) return -1;
        for (int k = 0; k < c; k++) g->st[k] += 2;
        g->kind = G_SET;
        g->n = c;
        return 0;
    }
    int c = split_top(s, n, ",", g->st, g->len, MAX_ELEMS);
    if (c < 0) return -1;
    if (c > 1) {
        g->kind = G_LIST;
        g->n = c;
    }
    return 0;
}

static int eq_canon(const char *a, size_t na, const char *b, size_t nb, int depth);

static int unordered_match(const group *ga, const group *gb, int depth) {
    unsigned char used[MAX_ELEMS] = {0};
    for (int i = 0; i < ga->n; i++) {
        int found = 0;
        for (int j = 0; j < gb->n && !found; j++) {
            if (used[j]) continue;
            if (eq_canon(ga->base + ga->st[i], ga->len[i], gb->base + gb->st[j], gb->len[j], depth + 1)) {
                used[j] = 1;
                found = 1;
            }
        }
        if (!found) return 0;
    }
    return 1;
}

static int eq_canon(const char *a, size_t na, const char *b, size_t nb, int depth) {
    if (na == nb && memcmp(a, b, na) == 0) return 1;
    if (depth > MAX_DEPTH) return 0;
    strip_lhs(&a, &na);
    strip_lhs(&b, &nb);
    if (na == 0 || nb == 0) return 0;
    if (na == nb && memcmp(a, b, na) == 0) return 1;

    size_t us[MAX_PARTS], ul[MAX_PARTS], vs[MAX_PARTS], vl[MAX_PARTS];
    int cu = split_top(a, na, "\\cup", us, ul, MAX_PARTS);
    int cv = split_top(b, nb, "\\cup", vs, vl, MAX_PARTS);
    if (cu < 0 || cv < 0) return 0;
    if (cu > 1 || cv > 1) {
        if (cu != cv) return 0;
        for (int k = 0; k < cu; k++)
            if (!eq_canon(a + us[k], ul[k], b + vs[k], vl[k], depth + 1)) return 0;
        return 1;
    }

    group ga, gb;
    if (parse_group(a, na, &ga) < 0 || parse_group(b, nb, &gb) < 0) return 0;
    if (ga.kind == G_SINGLE && ga.len[0] != na) return eq_canon(a + ga.st[0], ga.len[0], b, nb, depth + 1);
    if (gb.kind == G_SINGLE && gb.len[0] != nb) return eq_canon(a, na, b + gb.st[0], gb.len[0], depth + 1);
    if (ga.kind == G_SINGLE && gb.kind == G_SINGLE) {
        num x, y;
        return parse_number(a, na, &x) && parse_number(b, nb, &y) && num_eq(&x, &y);
    }
    int ua = ga.kind == G_SET || ga.kind == G_LIST, ub = gb.kind == G_SET || gb.kind == G_LIST;
    if (ga.n != gb.n) return 0;
    if (ua && ub) return unordered_match(&ga, &gb, depth);
    if (ga.kind != G_TUPLE || gb.kind != G_TUPLE || ga.open != gb.open || ga.close != gb.close) return 0;
    for (int k = 0; k < ga.n; k++)
        if (!eq_canon(a + ga.st[k], ga.len[k], b + gb.st[k], gb.len[k], depth + 1)) return 0;
    return 1;
}

/* Trimmed raw bytes, for answers too long to normalise. */
static int raw_equal(const char *a, size_t na, const char *b, size_t nb) {
    while (na && (a[0] == ' ' || a[0] == '\n')) { a++; na--; }
    while (na && (a[na - 1] == ' ' || a[na - 1] == '\n')) na--;
    while (nb && (b[0] == ' ' || b[0] == '\n')) { b++; nb--; }
    while (nb && (b[nb - 1] == ' ' || b[nb - 1] == '\n')) nb--;
    return na == nb && na > 0 && memcmp(a, b, na) == 0;
}

static size_t bounded_len(const char *s, size_t n) {
    const char *z = memchr(s, '\0', n);
    return z ? (size_t)(z - s) : n;
}

int rl_answer_equal(const char *ans, size_t n, const char *gold, size_t gold_n) {
    if (!ans || !gold) return 0;
    n = bounded_len(ans, n);
    gold_n = bounded_len(gold, gold_n);
    char ca[RL_VERIFY_MAX_ANSWER * 2 + 64], cb[RL_VERIFY_MAX_ANSWER * 2 + 64];
    int la = rl_answer_normalize(ans, n, ca, sizeof ca);
    size_t p = 0;
    while (p <= gold_n) {
        const char *sep = memchr(gold + p, RL_VERIFY_ALT_SEP, gold_n - p);
        size_t e = sep ? (size_t)(sep - gold) : gold_n;
        int lb = la >= 0 ? rl_answer_normalize(gold + p, e - p, cb, sizeof cb) : -1;
        if (la >= 0 && lb >= 0) {
            if (la > 0 && lb > 0 && eq_canon(ca, (size_t)la, cb, (size_t)lb, 0)) return 1;
        } else if (raw_equal(ans, n, gold + p, e - p)) {
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

static int numeric_structure(const char *s, size_t n, int depth) {
    if (depth > MAX_DEPTH || n == 0) return 0;
    strip_lhs(&s, &n);
    size_t us[MAX_PARTS], ul[MAX_PARTS];
    int cu = split_top(s, n, "\\cup", us, ul, MAX_PARTS);
    if (cu < 0) return 0;
    if (cu > 1) {
        for (int k = 0; k < cu; k++)
            if (!numeric_structure(s + us[k], ul[k], depth + 1)) return 0;
        return 2;
    }
    group g;
    if (parse_group(s, n, &g) < 0) return 0;
    if (g.kind == G_SINGLE) {
        if (g.len[0] != n) return numeric_structure(s + g.st[0], g.len[0], depth + 1);
        num x;
        return parse_number(s, n, &x) ? 1 : 0;
    }
    for (int k = 0; k < g.n; k++)
        if (!numeric_structure(s + g.st[k], g.len[k], depth + 1)) return 0;
    return 2;
}

rl_answer_class rl_answer_classify(const char *s, size_t n) {
    char c[RL_VERIFY_MAX_ANSWER * 2 + 64];
    n = bounded_len(s, n);
    int l = rl_answer_normalize(s, n, c, sizeof c);
    if (l < 0) return RL_ANS_EXPR;
    if (l == 0) return RL_ANS_EMPTY;
    int k = numeric_structure(c, (size_t)l, 0);
    return k == 1 ? RL_ANS_NUMBER : k == 2 ? RL_ANS_TUPLE : RL_ANS_EXPR;
}

const char *rl_answer_class_name(rl_answer_class c) {
    switch (c) {
    case RL_ANS_EMPTY: return "empty";
    case RL_ANS_NUMBER: return "number";
    case RL_ANS_TUPLE: return "tuple";
    case RL_ANS_EXPR: return "expr";
    }
    return "?";
}
