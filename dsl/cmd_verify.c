/* `rlfr verify`: the outcome verifier as a command, for people debugging
 * rewards. The response comes on standard input; the first output line is
 * machine-readable: "reward=1 reason=correct" (vision adds " format=0|1"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "commands.h"
#include "jsonl.h"
#include "verify.h"

#define MAX_INPUT (64u << 20)

static const char usage_text[] =
    "usage: rlfr verify GOLD [GOLD...] [--partial X] [--truncated] [--format boxed|vision]\n"
    "                   [--format-bonus X] [--verbose] < response\n"
    "  GOLD        the gold answer; several GOLDs (or one JSON list of strings such as\n"
    "              '[\"1/2\", \"0.5\"]') are alternatives, any of which counts\n"
    "  --partial   reward of a boxed but wrong answer (default 0.5; 0 = binary)\n"
    "  --truncated the response did not end with the end token (reward 0)\n"
    "  --format    boxed (last \\boxed{...}, default) or vision (<think>..</think><answer>..</answer>)\n"
    "  --format-bonus  vision: reward for the format (default 0.5)\n"
    "  --verbose   also print the extracted answer and the canonical forms\n"
    "prints: reward=R reason=correct|wrong|no_box|truncated|too_many_boxes|bad_box|no_answer\n";

/* Appends alternative s (n bytes) to the gold buffer. */
static int add_gold(char **gold, size_t *len, const char *s, size_t n) {
    size_t need = *len + n + 2;
    char *g = rl_realloc(*gold, need);
    if (!g) return -1;
    if (*len) g[(*len)++] = RL_VERIFY_ALT_SEP;
    memcpy(g + *len, s, n);
    *len += n;
    g[*len] = '\0';
    *gold = g;
    return 0;
}

/* A JSON list of strings (numbers allowed beside them) is a list of golds;
 * anything else, e.g. the interval "[1,2]", is one literal gold. */
static int add_gold_arg(char **gold, size_t *len, const char *arg) {
    if (arg[0] == '[' && strchr(arg, '"')) {
        json_t *v = json_loads(arg, JSON_DECODE_ANY, NULL);
        if (v && json_is_array(v) && json_array_size(v) > 0) {
            size_t i;
            json_t *x;
            int ok = 1;
            json_array_foreach(v, i, x) {
                char buf[4096];
                if (rl_json_scalar_text(x, buf, sizeof buf) < 0 || add_gold(gold, len, buf, strlen(buf)) < 0) ok = 0;
            }
            json_decref(v);
            return ok ? 0 : -1;
        }
        json_decref(v);
    }
    return add_gold(gold, len, arg, strlen(arg));
}

static char *read_stdin(size_t *n) {
    size_t cap = 4096, len = 0;
    char *buf = rl_malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= MAX_INPUT) break;
            char *b = rl_realloc(buf, cap * 2);
            if (!b) { rl_free(buf); return NULL; }
            buf = b;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, stdin);
        if (r == 0) break;
        len += r;
    }
    buf[len] = '\0';
    *n = len;
    return buf;
}

static int parse_number(const char *flag, const char *v, double *out) {
    char *end;
    if (!v) return rlfr_usage_error("verify: %s needs a number", flag);
    *out = strtod(v, &end);
    if (end == v || *end) return rlfr_usage_error("verify: %s '%s' is not a number", flag, v);
    return 0;
}

int rlfr_cmd_verify(int argc, char **argv) {
    rl_verify_opts o;
    rl_verify_opts_default(&o);
    int finished = 1, verbose = 0, rc = 0;
    char *gold = NULL;
    size_t gold_len = 0;
    int n_gold = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            rl_free(gold);
            return 0;
        } else if (strcmp(a, "--partial") == 0) {
            rc = parse_number(a, i + 1 < argc ? argv[++i] : NULL, &o.partial) ? 2 : 0;
        } else if (strcmp(a, "--format-bonus") == 0) {
            rc = parse_number(a, i + 1 < argc ? argv[++i] : NULL, &o.format_bonus) ? 2 : 0;
        } else if (strcmp(a, "--truncated") == 0) {
            finished = 0;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = 1;
        } else if (strcmp(a, "--format") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            if (!v || rl_verify_kind_parse(v, &o.kind) < 0)
                rc = rlfr_usage_error("verify: --format takes boxed or vision, got '%s'", v ? v : "nothing");
        } else if (a[0] == '-' && a[1] == '-') {
            rc = rlfr_usage_error("verify: unknown flag '%s'", a);
        } else {
            if (add_gold_arg(&gold, &gold_len, a) < 0) {
                fprintf(stderr, "error: verify: out of memory\n");
                rc = 1;
            }
            n_gold++;
        }
    }
    if (rc == 0 && n_gold == 0) rc = rlfr_usage_error("verify: give the gold answer (rlfr verify GOLD < response)");
    if (rc) {
        rl_free(gold);
        return rc;
    }
    size_t n = 0;
    char *resp = read_stdin(&n);
    if (!resp) {
        rl_free(gold);
        fprintf(stderr, "error: verify: cannot read the response from standard input\n");
        return 1;
    }
    rl_verify_result r;
    rl_verify(resp, n, gold, gold_len, finished, &o, &r);
    printf("reward=%g reason=%s", r.reward, rl_verify_reason_name(r.reason));
    if (o.kind == RL_VERIFY_VISION) printf(" format=%d", r.format_ok);
    printf("\n");
    if (verbose) {
        size_t st = (size_t)-1, len = 0;
        if (o.kind == RL_VERIFY_VISION) rl_verify_vision_format(resp, n, &st, &len);
        else rl_verify_last_box(resp, n, &st, &len);
        static char canon[2 * RL_VERIFY_MAX_ANSWER + 64];
        if (len) {
            printf("answer: %.*s\n", (int)len, resp + st);
            if (rl_answer_normalize(resp + st, len, canon, sizeof canon) >= 0) printf("canonical: %s\n", canon);
        }
        for (size_t p = 0; p <= gold_len;) {
            const char *sep = memchr(gold + p, RL_VERIFY_ALT_SEP, gold_len - p);
            size_t e = sep ? (size_t)(sep - gold) : gold_len;
            int l = rl_answer_normalize(gold + p, e - p, canon, sizeof canon);
            printf("gold: %.*s -> %s (%s)\n", (int)(e - p), gold + p, l >= 0 ? canon : "(too long)",
                   rl_answer_class_name(rl_answer_classify(gold + p, e - p)));
            p = e + 1;
        }
    }
    rl_free(resp);
    rl_free(gold);
    return 0;
}
