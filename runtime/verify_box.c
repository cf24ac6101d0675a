/* Finding the answer inside a response: the last \boxed{...} (text rule) and
 * the <think>..</think><answer>..</answer> layout (multimodal rule). */
#include <string.h>

#include "verify.h"

static size_t bounded_len(const char *s, size_t n) {
    const char *z = memchr(s, '\0', n);
    return z ? (size_t)(z - s) : n;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Index of the '}' closing the '{' at s[i]; escaped braces (\{ \}) do not
 * count. n if unclosed. */
static size_t close_brace(const char *s, size_t n, size_t i) {
    int d = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '\\' && j + 1 < n && (s[j + 1] == '{' || s[j + 1] == '}')) { j++; continue; }
        if (s[j] == '{') d++;
        else if (s[j] == '}' && --d == 0) return j;
    }
    return n;
}

int rl_verify_last_box(const char *s, size_t n, size_t *start, size_t *len) {
    size_t st = (size_t)-1, ln = 0;
    int count = 0;
    if (!s) n = 0;
    n = n ? bounded_len(s, n) : 0;
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\' || memcmp(s + i + 1, "boxed", 5) != 0) continue;
        size_t j = i + 6;
        if (j < n && is_alpha(s[j])) continue; /* \boxedsomething is another command */
        count++;
        st = (size_t)-1;
        ln = 0;
        size_t k = j;
        while (k < n && is_space(s[k])) k++;
        if (k < n && s[k] == '{') {
            size_t e = close_brace(s, n, k);
            if (e < n) {
                size_t a = k + 1, b = e;
                while (a < b && is_space(s[a])) a++;
                while (b > a && is_space(s[b - 1])) b--;
                if (b > a) { st = a; ln = b - a; }
            }
        } else if (k > j && k < n && s[k] != '$' && s[k] != '\\') {
            /* "\boxed 5": TeX takes one token; we take the run up to a space or '$' */
            size_t e = k;
            while (e < n && !is_space(s[e]) && s[e] != '$') e++;
            st = k;
            ln = e - k;
        }
        i = j - 1;
    }
    if (start) *start = st;
    if (len) *len = ln;
    return count;
}

/* Position of needle in s[from, n), or n. */
static size_t find(const char *s, size_t n, size_t from, const char *needle) {
    size_t l = strlen(needle);
    for (size_t i = from; i + l <= n; i++)
        if (memcmp(s + i, needle, l) == 0) return i;
    return n;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && is_space(s[i])) i++;
    return i;
}

int rl_verify_vision_format(const char *s, size_t n, size_t *start, size_t *len) {
    if (start) *start = (size_t)-1;
    if (len) *len = 0;
    if (!s) return 0;
    n = bounded_len(s, n);
    /* The answer: the first <answer>...</answer>, as the reference reads it. */
    size_t a = find(s, n, 0, "<answer>");
    if (a < n) {
        size_t e = find(s, n, a + 8, "</answer>");
        if (e < n) {
            size_t x = a + 8, y = e;
            while (x < y && is_space(s[x])) x++;
            while (y > x && is_space(s[y - 1])) y--;
            if (start) *start = x;
            if (len) *len = y - x;
        }
    }
    /* The format: ^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$ */
    size_t i = skip_ws(s, n, 0);
    if (find(s, n, i, "<think>") != i) return 0;
    size_t t = find(s, n, i + 7, "</think>");
    if (t >= n) return 0;
    i = skip_ws(s, n, t + 8);
    if (find(s, n, i, "<answer>") != i) return 0;
    size_t e = find(s, n, i + 8, "</answer>");
    if (e >= n) return 0;
    return skip_ws(s, n, e + 9) == n;
}
