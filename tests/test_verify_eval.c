/* The verifier on real answer formats: the gold answers of the six benchmark
 * files in ../shared/data/eval/ (RLFR_SHARED_DIR overrides where shared/ is).
 * - every gold answer, boxed, verifies as correct against its own gold;
 * - a shuffled (other problem's) gold answer does not, unless the two answers
 *   are coincidentally the same (checked independently of the normaliser);
 * - prints the share of gold answers the normaliser parses (numbers, or
 *   tuples/lists/intervals of numbers): the table in docs/verifier.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "jsonl.h"
#include "testlib.h"
#include "verify.h"

#define MAX_REC 1024
#define GOLD_CAP 1024

static const char *const files[] = {"math", "aime", "aime25", "amc", "minerva", "olympiad_bench"};
static const int expected_rows[] = {500, 30, 30, 83, 272, 675};

typedef struct rec {
    char gold[GOLD_CAP];   /* alternatives joined by RL_VERIFY_ALT_SEP */
    char first[GOLD_CAP];  /* the first alternative */
    int parsed;
} rec;

static const char *eval_path(const char *name) {
    static char buf[8192];
    const char *shared = getenv("RLFR_SHARED_DIR");
    if (shared && shared[0]) snprintf(buf, sizeof buf, "%s/data/eval/%s.jsonl", shared, name);
    else snprintf(buf, sizeof buf, "%s", rl_test_path("../shared/data/eval/"));
    if (!(shared && shared[0])) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s.jsonl", name);
    }
    return buf;
}

static int load(const char *path, rec *r, int max) {
    rl_error err = {0};
    rl_jsonl *j = NULL;
    if (rl_jsonl_open(path, &j, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    int n = 0;
    int st;
    while ((st = rl_jsonl_next(j, &err)) == 1 && n < max) {
        size_t alts = 0;
        if (rl_jsonl_texts_count(j, "answer", &alts, &err) < 0) break;
        size_t off = 0;
        r[n].gold[0] = '\0';
        for (size_t a = 0; a < alts; a++) {
            char t[GOLD_CAP];
            if (rl_jsonl_text(j, "answer", a, t, sizeof t, &err) < 0) { st = -1; break; }
            if (a == 0) snprintf(r[n].first, sizeof r[n].first, "%s", t);
            off += (size_t)snprintf(r[n].gold + off, sizeof r[n].gold - off, "%s%s", a ? "\x1f" : "", t);
            if (off >= sizeof r[n].gold) { st = -1; break; }
        }
        if (st < 0) break;
        n++;
    }
    if (st < 0) fprintf(stderr, "%s\n", err.msg);
    rl_jsonl_close(j);
    return st < 0 ? -1 : n;
}

/* Independent of the normaliser: same text once spaces, '$' and newlines go,
 * or both plain decimal numbers of the same value. */
static void squeeze(const char *s, char *o, size_t cap) {
    size_t m = 0;
    for (; *s && m + 1 < cap; s++)
        if (*s != ' ' && *s != '$' && *s != '\n') o[m++] = *s;
    o[m] = '\0';
}

static int coincide(const char *a, const char *b) {
    char x[GOLD_CAP], y[GOLD_CAP];
    squeeze(a, x, sizeof x);
    squeeze(b, y, sizeof y);
    if (strcmp(x, y) == 0) return 1;
    char *ex, *ey;
    double u = strtod(x, &ex), v = strtod(y, &ey);
    return *x && *y && !*ex && !*ey && u == v;
}

static int boxed_ok(const char *gold, const char *alt) {
    char resp[GOLD_CAP + 64];
    snprintf(resp, sizeof resp, "The answer is $\\boxed{%s}$.", alt);
    rl_verify_result r;
    rl_verify(resp, strlen(resp), gold, strlen(gold), 1, NULL, &r);
    return r.reason == RL_VR_CORRECT;
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rec *r = rl_calloc(MAX_REC, sizeof *r);
    CHECK(r != NULL);
    if (!r) return rl_test_finish("test_verify_eval");
    printf("%-16s %6s %7s %6s %6s %8s\n", "file", "rows", "number", "tuple", "expr", "parsed");
    int total = 0, total_parsed = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        const char *path = eval_path(files[f]);
        int n = load(path, r, MAX_REC);
        CHECK_MSG(n == expected_rows[f], "%s: %d rows, expected %d", path, n, expected_rows[f]);
        if (n <= 0) continue;
        int cls[4] = {0};
        for (int i = 0; i < n; i++) {
            /* a row counts as parsed if any alternative parses */
            rl_answer_class best = RL_ANS_EMPTY;
            const char *g = r[i].gold;
            while (1) {
                const char *sep = strchr(g, RL_VERIFY_ALT_SEP);
                size_t len = sep ? (size_t)(sep - g) : strlen(g);
                rl_answer_class c = rl_answer_classify(g, len);
                if (c == RL_ANS_NUMBER || (c == RL_ANS_TUPLE && best != RL_ANS_NUMBER) ||
                    (c == RL_ANS_EXPR && best == RL_ANS_EMPTY))
                    best = c;
                if (!sep) break;
                g = sep + 1;
            }
            cls[best]++;
            r[i].parsed = best == RL_ANS_NUMBER || best == RL_ANS_TUPLE;
            CHECK_MSG(best != RL_ANS_EMPTY, "%s row %d: empty gold answer", files[f], i + 1);
            /* every alternative, boxed, is correct */
            g = r[i].gold;
            while (1) {
                const char *sep = strchr(g, RL_VERIFY_ALT_SEP);
                char alt[GOLD_CAP];
                size_t len = sep ? (size_t)(sep - g) : strlen(g);
                memcpy(alt, g, len);
                alt[len] = '\0';
                CHECK_MSG(boxed_ok(r[i].gold, alt), "%s row %d: boxed gold '%s' does not verify", files[f], i + 1,
                          alt);
                if (!sep) break;
                g = sep + 1;
            }
        }
        /* shuffled golds: row i answered with the gold of row (i*7+3) mod n, a
         * fixed derangement-like pairing, for every row */
        int wrong_ok = 0, coincidences = 0, tried = 0;
        for (int i = 0; i < n; i++) {
            int j = (int)(((long)i * 7 + 3) % n);
            if (j == i) continue;
            tried++;
            if (!boxed_ok(r[i].gold, r[j].first)) { wrong_ok++; continue; }
            int same = 0;
            const char *g = r[i].gold;
            while (1) {
                const char *sep = strchr(g, RL_VERIFY_ALT_SEP);
                char alt[GOLD_CAP];
                size_t len = sep ? (size_t)(sep - g) : strlen(g);
                memcpy(alt, g, len);
                alt[len] = '\0';
                if (coincide(alt, r[j].first)) same = 1;
                if (!sep) break;
                g = sep + 1;
            }
            coincidences += same;
            CHECK_MSG(same, "%s: row %d's answer '%s' verifies against row %d's gold '%s'", files[f], j + 1,
                      r[j].first, i + 1, r[i].first);
        }
        CHECK(tried > 0 && wrong_ok > 0);
        int parsed = cls[RL_ANS_NUMBER] + cls[RL_ANS_TUPLE];
        printf("%-16s %6d %7d %6d %6d %7.1f%%   (shuffled: %d pairs, %d rejected, %d coincide)\n", files[f], n,
               cls[RL_ANS_NUMBER], cls[RL_ANS_TUPLE], cls[RL_ANS_EXPR], 100.0 * parsed / n, tried, wrong_ok,
               coincidences);
        total += n;
        total_parsed += parsed;
    }
    if (total) printf("%-16s %6d %30.1f%%\n", "all", total, 100.0 * total_parsed / total);
    rl_free(r);
    return rl_test_finish("test_verify_eval");
}
