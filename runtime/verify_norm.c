/* Answer normalisation: the textual half of equivalence. Every answer (the
 * model's and the gold one) goes through the same passes, so two answers that
 * differ only in presentation (spacing, \dfrac vs \frac, $, units, degree
 * signs, thousands separators, \left/\right) end up as the same text; the
 * numeric half (verify_equal.c) then parses that canonical text.
 * Fixed-size buffers only: this runs inside a node's forward. */
#include <ctype.h>
#include <string.h>

#include "verify.h"

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int overflow;
} sbuf;

static void put(sbuf *b, char c) {
    if (b->n + 1 >= b->cap) { b->overflow = 1; return; }
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
}

static void puts_n(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) put(b, s[i]);
}

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the letters-only command name after a backslash at s[i]. */
static size_t cmd_len(const char *s, size_t n, size_t i) {
    size_t j = i + 1;
    while (j < n && is_alpha(s[j])) j++;
    return j - (i + 1);
}

static int cmd_is(const char *s, size_t n, size_t i, const char *name) {
    size_t l = strlen(name);
    return cmd_len(s, n, i) == l && memcmp(s + i + 1, name, l) == 0;
}

/* Index just past the group that closes the '{' at s[i], or n if unclosed. */
static size_t skip_group(const char *s, size_t n, size_t i) {
    int depth = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '\\' && j + 1 < n) { j++; continue; }
        if (s[j] == '{') depth++;
        else if (s[j] == '}' && --depth == 0) return j + 1;
    }
    return n;
}

static size_t skip_spaces(const char *s, size_t n, size_t i) {
    while (i < n && s[i] == ' ') i++;
    return i;
}

/* Pass 1: characters. Drops '$', '%', degree signs and control characters
 * (newlines become spaces); the Unicode minus and multiplication signs become
 * '-' and \times; stops at a NUL. */
static void pass_chars(const char *s, size_t n, sbuf *o) {
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' && i + 1 < n && (s[i + 1] == '%' || s[i + 1] == '$')) { i++; continue; }
        if (c == '$' || c == '%') continue;
        unsigned char c1 = i + 1 < n ? (unsigned char)s[i + 1] : 0, c2 = i + 2 < n ? (unsigned char)s[i + 2] : 0;
        if (c == 0xC2 && c1 == 0xB0) { i++; continue; }                          /* U+00B0 degree sign */
        if (c == 0xC2 && c1 == 0xA0) { put(o, ' '); i++; continue; }              /* U+00A0 no-break space */
        if (c == 0xC3 && c1 == 0x97) { puts_n(o, "\\times", 6); i++; continue; } /* U+00D7 multiplication sign */
        if (c == 0xE2 && c1 == 0x88 && c2 == 0x92) { put(o, '-'); i += 2; continue; } /* U+2212 minus sign */
        if (c < 0x20 || c == '~') { put(o, ' '); continue; }
        put(o, (char)c);
    }
}

static const char *const text_cmds[] = {"text", "textbf", "textrm", "textit", "textsf", "texttt",
                                        "mathrm", "mathbf", "mathit", "mathsf", "mbox", "hbox",
                                        "operatorname", NULL};
static const char *const dropped_cmds[] = {"left", "right", "displaystyle", "textstyle", "quad",
                                           "qquad", "bigl", "bigr", "Bigl", "Bigr", "big", "Big",
                                           "biggl", "biggr", "limits", "nolimits", NULL};

static int in_list(const char *s, size_t n, size_t i, const char *const *list) {
    for (int k = 0; list[k]; k++)
        if (cmd_is(s, n, i, list[k])) return 1;
    return 0;
}

/* Whether text content is only words (a unit or a connective), not maths. */
static int words_only(const char *s, size_t n) {
    int letters = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_alpha(s[i])) letters++;
        else if (s[i] != ' ' && s[i] != '.' && s[i] != '/' && s[i] != '-') return 0;
    }
    return letters > 0;
}

static int only_spaces(const sbuf *o) {
    for (size_t i = 0; i < o->n; i++)
        if (o->p[i] != ' ') return 0;
    return 1;
}

/* Index past an exponent "^x" / "^{...}" at s[i] (after spaces), or i. */
static size_t skip_exponent(const char *s, size_t n, size_t i) {
    size_t j = skip_spaces(s, n, i);
    if (j >= n || s[j] != '^') return i;
    j = skip_spaces(s, n, j + 1);
    if (j < n && s[j] == '{') return skip_group(s, n, j);
    if (j < n && s[j] == '-') j++;
    while (j < n && is_digit(s[j])) j++;
    return j;
}

/* Pass 2: LaTeX commands. \left, \right, spacing and size commands go;
 * \dfrac/\tfrac/\cfrac become \frac; degree marks go; \text{...} keeps its
 * content, unless it is words following something (a unit such as
 * "5.4 \text{ cents}"), which goes with its exponent; "\text{ and }" is a
 * list separator. */
static void pass_commands(const char *s, size_t n, sbuf *o) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '^') {
            /* ^\circ, ^{\circ}: a degree mark */
            size_t j = skip_spaces(s, n, i + 1);
            int brace = j < n && s[j] == '{';
            if (brace) j = skip_spaces(s, n, j + 1);
            if (j < n && s[j] == '\\' && cmd_is(s, n, j, "circ")) {
                j += 5;
                if (brace) {
                    j = skip_spaces(s, n, j);
                    if (j < n && s[j] == '}') j++;
                }
                i = j - 1;
                continue;
            }
            put(o, c);
            continue;
        }
        if (c != '\\' || i + 1 >= n) { put(o, c); continue; }
        char d = s[i + 1];
        if (d == '\\') { put(o, c); put(o, d); i++; continue; } /* a row break "\\\\" */
        if (d == '!' || d == ',' || d == ';' || d == ':' || d == ' ') { put(o, ' '); i++; continue; }
        size_t l = cmd_len(s, n, i);
        if (l == 0) { put(o, c); continue; }
        if (in_list(s, n, i, dropped_cmds)) {
            i += l;
            /* \left. and \right. are invisible delimiters */
            if (i + 1 < n && s[i + 1] == '.' && (cmd_is(s, n, i - l, "left") || cmd_is(s, n, i - l, "right")))
                i++;
            put(o, ' ');
            continue;
        }
        if (cmd_is(s, n, i, "dfrac") || cmd_is(s, n, i, "tfrac") || cmd_is(s, n, i, "cfrac")) {
            puts_n(o, "\\frac", 5);
            i += l;
            continue;
        }
        if (cmd_is(s, n, i, "circ") || cmd_is(s, n, i, "degree")) { i += l; continue; }
        if (in_list(s, n, i, text_cmds)) {
            size_t j = skip_spaces(s, n, i + 1 + l);
            if (j < n && s[j] == '{') {
                size_t end = skip_group(s, n, j);
                size_t cs = j + 1, ce = end > cs && s[end - 1] == '}' ? end - 1 : end;
                /* trim the content */
                while (cs < ce && s[cs] == ' ') cs++;
                while (ce > cs && s[ce - 1] == ' ') ce--;
                if ((ce - cs == 3 && memcmp(s + cs, "and", 3) == 0) ||
                    (ce - cs == 2 && memcmp(s + cs, "or", 2) == 0)) {
                    put(o, ',');
                } else if (words_only(s + cs, ce - cs) && !only_spaces(o)) {
                    end = skip_exponent(s, n, end);
                    put(o, ' ');
                } else {
                    /* the content may hold commands itself (\text{\frac..} is rare; copy raw) */
                    puts_n(o, s + cs, ce - cs);
                }
                i = end - 1;
                continue;
            }
            i += l;
            continue;
        }
        if (cmd_is(s, n, i, "le")) { puts_n(o, "\\leq", 4); i += l; continue; }
        if (cmd_is(s, n, i, "ge")) { puts_n(o, "\\geq", 4); i += l; continue; }
        puts_n(o, s + i, l + 1);
        i += l;
    }
}

static const char *const unit_words[] = {
    "unit", "units", "square", "sq", "cubic", "cm", "mm", "km", "m", "meter", "meters", "metre",
    "metres", "inch", "inches", "ft", "foot", "feet", "yard", "yards", "mile", "miles", "mph",
    "kg", "g", "mg", "gram", "grams", "pound", "pounds", "lb", "lbs", "ounce", "ounces", "oz",
    "s", "sec", "second", "seconds", "min", "minute", "minutes", "hr", "hrs", "hour", "hours",
    "day", "days", "week", "weeks", "month", "months", "yr", "yrs", "year", "years", "dollar",
    "dollars", "cent", "cents", "degree", "degrees", "percent", "liter", "liters", "litre",
    "litres", "ml", "gallon", "gallons", "kcal", "cal", "calories", "eV", "keV", "MeV", "J", "kJ",
    "Hz", "kHz", "MHz", "nm", "pc", "kpc", "Mpc", "AU", "points", "people", "ways", "times", NULL};

static int is_unit_word(const char *s, size_t n) {
    for (int k = 0; unit_words[k]; k++)
        if (strlen(unit_words[k]) == n && memcmp(unit_words[k], s, n) == 0) return 1;
    return 0;
}

/* Pass 3 (in place): trailing unit words after a number ("12 cm^2",
 * "4 square units", "30 dollars"). A word only goes when it stands apart
 * (a space before it) and what remains ends in a digit or a closing brace,
 * so "5 r^5" or "2k" keep their letters. */
static void pass_units(sbuf *o) {
    size_t keep = o->n;
    for (;;) {
        size_t e = keep;
        while (e > 0 && o->p[e - 1] == ' ') e--;
        /* an exponent after the word: "^2", "^{-1}", "^3" */
        size_t w_end = e;
        for (size_t k = e; k > 0; k--) {
            if (o->p[k - 1] == '^') { w_end = k - 1; break; }
            if (is_alpha(o->p[k - 1])) break;
        }
        if (w_end == e) {
            /* no exponent: allow a final '.' (abbreviations) */
            if (w_end > 0 && o->p[w_end - 1] == '.') w_end--;
        }
        size_t w = w_end;
        while (w > 0 && is_alpha(o->p[w - 1])) w--;
        if (w == w_end || w == 0 || o->p[w - 1] != ' ' || !is_unit_word(o->p + w, w_end - w)) break;
        keep = w;
    }
    if (keep == o->n) return;
    size_t r = keep;
    while (r > 0 && o->p[r - 1] == ' ') r--;
    if (r == 0) return;
    char last = o->p[r - 1];
    if (!is_digit(last) && last != '}' && last != '.') return;
    o->n = r;
    o->p[r] = '\0';
}

/* Pass 4: spaces go; "{,}" becomes ","; digit groups "1,234,567" become
 * "1234567" (a comma followed by exactly three digits, in a run that starts
 * with one to three digits and is not part of a decimal); "\frac12" and
 * "\sqrt2" get braces; "^{x}" and "_{x}" of one character lose them; a final
 * '.' goes. */
#define MAX_DEPTH 64

/* Emits the arguments of \frac (rem = 2) or \sqrt (rem = 1) starting at t[j]:
 * a one-character argument gets braces; at a braced one, the count of
 * arguments still due is parked on pend[] until that group closes, so the
 * group's content is compacted like everything else. Returns the next index. */
static size_t emit_args(const char *t, size_t m, size_t j, int rem, int *depth, signed char *pend, sbuf *o) {
    while (rem > 0 && j < m) {
        char c = t[j];
        if (c == '{') {
            (*depth)++;
            if (*depth < MAX_DEPTH) pend[*depth] = (signed char)(rem - 1);
            put(o, '{');
            return j + 1;
        }
        if (c == '\\' || c == '}' || c == '[' || c == '^' || c == '_') break;
        put(o, '{');
        put(o, c);
        put(o, '}');
        j++;
        rem--;
    }
    return j;
}

static void pass_compact(const char *s, size_t n, sbuf *o) {
    char t[2 * RL_VERIFY_MAX_ANSWER + 64];
    size_t m = 0;
    for (size_t i = 0; i < n && m + 1 < sizeof t; i++) {
        if (s[i] == ' ') {
            /* "\pi G" must not become the command "\piG": keep an empty group */
            size_t k = m, q = i;
            while (k > 0 && is_alpha(t[k - 1])) k--;
            while (q < n && s[q] == ' ') q++;
            if (k < m && k > 0 && t[k - 1] == '\\' && q < n && is_alpha(s[q]) && m + 3 < sizeof t) {
                t[m++] = '{';
                t[m++] = '}';
            }
            i = q - 1;
            continue;
        }
        if (s[i] == '{' && i + 2 < n && s[i + 1] == ',' && s[i + 2] == '}') { t[m++] = ','; i += 2; continue; }
        t[m++] = s[i];
    }
    t[m] = '\0';
    int depth = 0, paren = 0;
    signed char pend[MAX_DEPTH] = {0};
    for (size_t i = 0; i < m; i++) {
        if (t[i] == '(' || t[i] == '[') paren++;
        if ((t[i] == ')' || t[i] == ']') && paren > 0) paren--;
        /* thousands separators (not inside a tuple or interval, where a comma
           separates elements: "(12,102)" is a pair) */
        if (is_digit(t[i]) && paren == 0 && (i == 0 || (!is_digit(t[i - 1]) && t[i - 1] != '.' && t[i - 1] != ','))) {
            size_t j = i;
            while (j < m && is_digit(t[j])) j++;
            size_t lead = j - i, k = j;
            int groups = 0;
            while (k + 3 < m && t[k] == ',' && is_digit(t[k + 1]) && is_digit(t[k + 2]) && is_digit(t[k + 3]) &&
                   (k + 4 >= m || !is_digit(t[k + 4]))) {
                k += 4;
                groups++;
            }
            if (lead >= 1 && lead <= 3 && groups > 0 && !(k < m && t[k] == ',' && k + 1 < m && is_digit(t[k + 1])) &&
                !(k < m && t[k] == '.')) {
                for (size_t q = i; q < k; q++)
                    if (t[q] != ',') put(o, t[q]);
                i = k - 1;
                continue;
            }
            puts_n(o, t + i, j - i);
            i = j - 1;
            continue;
        }
        if (t[i] == '\\' && i + 1 < m && (t[i + 1] == '{' || t[i + 1] == '}')) {
            /* \{ \} are set braces, not groups */
            put(o, t[i]);
            put(o, t[++i]);
            continue;
        }
        if (t[i] == '\\' && (cmd_is(t, m, i, "frac") || cmd_is(t, m, i, "sqrt"))) {
            size_t l = cmd_len(t, m, i);
            puts_n(o, t + i, l + 1);
            i = emit_args(t, m, i + 1 + l, t[i + 1] == 'f' ? 2 : 1, &depth, pend, o) - 1;
            continue;
        }
        if (t[i] == '{') {
            depth++;
            if (depth < MAX_DEPTH) pend[depth] = 0;
            put(o, '{');
            continue;
        }
        if (t[i] == '}') {
            put(o, '}');
            int rem = depth > 0 && depth < MAX_DEPTH ? pend[depth] : 0;
            if (depth > 0) depth--;
            if (rem > 0) i = emit_args(t, m, i + 1, rem, &depth, pend, o) - 1;
            continue;
        }
        if ((t[i] == '^' || t[i] == '_') && i + 3 < m && t[i + 1] == '{' && t[i + 2] != '\\' &&
            t[i + 2] != '{' && t[i + 2] != '}' && t[i + 3] == '}') {
            put(o, t[i]);
            put(o, t[i + 2]);
            i += 3;
            continue;
        }
        put(o, t[i]);
    }
    while (o->n > 0 && o->p[o->n - 1] == '.') o->p[--o->n] = '\0';
}

int rl_answer_normalize(const char *s, size_t n, char *out, size_t cap) {
    if (!out || cap == 0) return -1;
    out[0] = '\0';
    if (n > RL_VERIFY_MAX_ANSWER) return -1;
    char a[2 * RL_VERIFY_MAX_ANSWER + 64], b[2 * RL_VERIFY_MAX_ANSWER + 64];
    sbuf A = {a, 0, sizeof a, 0}, B = {b, 0, sizeof b, 0};
    a[0] = b[0] = '\0';
    pass_chars(s, n, &A);
    pass_commands(a, A.n, &B);
    pass_units(&B);
    sbuf O = {out, 0, cap, 0};
    pass_compact(b, B.n, &O);
    if (A.overflow || B.overflow || O.overflow) {
        out[0] = '\0';
        return -1;
    }
    return (int)O.n;
}
