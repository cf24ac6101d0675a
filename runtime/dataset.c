/* Problem sources: the arithmetic task or a JSONL file, served in batches in
 * a deterministic (seed, epoch) order. See dataset.h. */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "jsonl.h"
#include "rng.h"
#include "state.h"
#include "verify.h"

#define PURPOSE_SHUFFLE 0x73687566ull /* 'shuf' */
#define ALT_TEXT_CAP 65536            /* longest single answer alternative read from JSONL */

struct rl_dataset {
    rl_dataset_cfg cfg;
    int64_t size, skipped;
    size_t wp, wa, ws;         /* row widths (with the NUL) */
    /* JSONL: texts in one block, "prompt\0answer\0solution\0" per item */
    char *text;
    size_t text_len, text_cap;
    size_t *off;               /* 3 offsets per item */
    int32_t *src;              /* source index (record order in the file) */
    /* order */
    uint32_t *perm;            /* NULL when shuffle is off */
    rl_dataset_cursor cur;
};

void rl_dataset_cfg_default(rl_dataset_cfg *c) {
    memset(c, 0, sizeof *c);
    c->source = RL_DATA_ARITH;
    c->split = RL_SPLIT_TRAIN;
    rl_arith_cfg_default(&c->arith);
    c->shuffle = 1;
}

void rl_dataset_free(rl_dataset *d) {
    if (!d) return;
    rl_free(d->text);
    rl_free(d->off);
    rl_free(d->src);
    rl_free(d->perm);
    rl_free(d);
}

int64_t rl_dataset_size(const rl_dataset *d) { return d->size; }
int64_t rl_dataset_skipped(const rl_dataset *d) { return d->skipped; }

void rl_dataset_widths(const rl_dataset *d, size_t *prompt, size_t *answer, size_t *solution) {
    if (prompt) *prompt = d->wp;
    if (answer) *answer = d->wa;
    if (solution) *solution = d->ws;
}

static int append(rl_dataset *d, const char *s, size_t n, rl_error *err) {
    size_t need;
    if (rl_add_size(d->text_len, n + 1, &need)) return rl_fail(err, "%s: texts too large", d->cfg.path);
    if (need > d->text_cap) {
        size_t cap = d->text_cap ? d->text_cap : 65536;
        while (cap < need) {
            if (rl_mul_size(cap, 2, &cap)) return rl_fail(err, "%s: texts too large", d->cfg.path);
        }
        char *t = rl_realloc(d->text, cap);
        if (!t) return rl_fail(err, "%s: out of memory for %zu bytes of text", d->cfg.path, cap);
        d->text = t;
        d->text_cap = cap;
    }
    memcpy(d->text + d->text_len, s, n);
    d->text[d->text_len + n] = '\0';
    d->text_len = need;
    return 0;
}

/* Appends the answer alternatives joined by RL_VERIFY_ALT_SEP, each without
 * trailing whitespace (some files end answers with "\n"). */
static int append_answer(rl_dataset *d, rl_jsonl *j, char *tmp, size_t *len, rl_error *err) {
    size_t alts = 0;
    if (rl_jsonl_texts_count(j, "answer", &alts, err) < 0) return -1;
    if (alts == 0) return rl_fail(err, "%s:%lld: field 'answer' is an empty list", d->cfg.path,
                                  (long long)rl_jsonl_line(j));
    size_t start = d->text_len;
    for (size_t a = 0; a < alts; a++) {
        if (rl_jsonl_text(j, "answer", a, tmp, ALT_TEXT_CAP, err) < 0) return -1;
        size_t n = strlen(tmp);
        while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r' || tmp[n - 1] == ' ' || tmp[n - 1] == '\t')) n--;
        if (a > 0) {
            /* replace the previous NUL by the separator */
            d->text[d->text_len - 1] = RL_VERIFY_ALT_SEP;
        }
        if (append(d, tmp, n, err) < 0) return -1;
    }
    *len = d->text_len - 1 - start;
    return 0;
}

static int grow_items(rl_dataset *d, int64_t *cap, rl_error *err) {
    int64_t nc = *cap ? *cap * 2 : 1024;
    size_t b1, b2;
    if (rl_mul_size((size_t)nc, 3 * sizeof(size_t), &b1) || rl_mul_size((size_t)nc, sizeof(int32_t), &b2))
        return rl_fail(err, "%s: too many records", d->cfg.path);
    size_t *off = rl_realloc(d->off, b1);
    if (!off) return rl_fail(err, "%s: out of memory", d->cfg.path);
    d->off = off;
    int32_t *src = rl_realloc(d->src, b2);
    if (!src) return rl_fail(err, "%s: out of memory", d->cfg.path);
    d->src = src;
    *cap = nc;
    return 0;
}

int rl_dataset_resolve_path(const char *path, char *out, size_t cap, rl_error *err) {
    if (!path || !path[0]) return rl_fail(err, "dataset: a JSONL source needs a path");
    if (strncmp(path, "eval:", 5) != 0) {
        if ((size_t)snprintf(out, cap, "%s", path) >= cap) return rl_fail(err, "dataset: path too long: %s", path);
        return 0;
    }
    const char *name = path + 5;
    if (!name[0] || strchr(name, '/')) return rl_fail(err, "dataset: '%s': expected eval:NAME, e.g. eval:math", path);
    const char *shared = getenv("RLFR_SHARED_DIR"), *src = getenv("RLFR_SOURCE_DIR");
    char bases[4][4096];
    int nb = 0;
    if (shared && shared[0]) snprintf(bases[nb++], sizeof bases[0], "%s", shared);
    if (src && src[0]) snprintf(bases[nb++], sizeof bases[0], "%s/../shared", src);
    snprintf(bases[nb++], sizeof bases[0], "../shared");
    snprintf(bases[nb++], sizeof bases[0], "shared");
    for (int k = 0; k < nb; k++) {
        if ((size_t)snprintf(out, cap, "%s/data/eval/%s.jsonl", bases[k], name) >= cap) continue;
        if (access(out, R_OK) == 0) return 0;
    }
    return rl_fail(err, "dataset: '%s': no %s.jsonl in data/eval/ under $RLFR_SHARED_DIR, "
                        "$RLFR_SOURCE_DIR/../shared, ../shared or shared (set RLFR_SHARED_DIR)",
                   path, name);
}

static int load_jsonl(rl_dataset *d, rl_error *err) {
    const rl_dataset_cfg *c = &d->cfg;
    char path[4200];
    if (rl_dataset_resolve_path(c->path, path, sizeof path, err) < 0) return -1;
    d->cfg.path = path; /* for messages while loading */
    rl_jsonl *j = NULL;
    if (rl_jsonl_open(path, &j, err) < 0) return -1;
    char *tmp = rl_malloc(ALT_TEXT_CAP);
    if (!tmp) {
        rl_jsonl_close(j);
        return rl_fail(err, "%s: out of memory", c->path);
    }
    int64_t cap = 0, record = 0;
    size_t lp = 0, la = 0, ls = 0;
    int st, rc = 0;
    while ((st = rl_jsonl_next(j, err)) == 1) {
        if (record >= INT32_MAX) { rc = rl_fail(err, "%s: more than %d records", c->path, INT32_MAX); break; }
        if (d->size == cap && grow_items(d, &cap, err) < 0) { rc = -1; break; }
        const char *problem, *solution;
        size_t mark = d->text_len, a_len = 0;
        if (rl_jsonl_string(j, "problem", &problem, err) < 0 ||
            rl_jsonl_string_opt(j, "solution", "", &solution, err) < 0) {
            rc = -1;
            break;
        }
        size_t p_len = strlen(problem), s_len = strlen(solution);
        size_t *o = d->off + 3 * d->size;
        o[0] = d->text_len;
        if (append(d, problem, p_len, err) < 0) { rc = -1; break; }
        o[1] = d->text_len;
        if (append_answer(d, j, tmp, &a_len, err) < 0) { rc = -1; break; }
        o[2] = d->text_len;
        if (append(d, solution, s_len, err) < 0) { rc = -1; break; }
        if ((c->max_prompt && p_len > c->max_prompt) || (c->max_answer && a_len > c->max_answer) ||
            (c->max_solution && s_len > c->max_solution)) {
            d->text_len = mark; /* drop it */
            d->skipped++;
        } else {
            if (p_len > lp) lp = p_len;
            if (a_len > la) la = a_len;
            if (s_len > ls) ls = s_len;
            d->src[d->size++] = (int32_t)record;
        }
        record++;
    }
    if (st < 0) rc = -1;
    rl_free(tmp);
    rl_jsonl_close(j);
    if (rc < 0) return -1;
    if (d->size == 0)
        return rl_fail(err, "%s: no problems%s", c->path, d->skipped ? " within the text limits" : "");
    d->wp = (c->max_prompt ? c->max_prompt : lp) + 1;
    d->wa = (c->max_answer ? c->max_answer : la) + 1;
    d->ws = (c->max_solution ? c->max_solution : ls) + 1;
    return 0;
}

static int setup_arith(rl_dataset *d, rl_error *err) {
    const rl_dataset_cfg *c = &d->cfg;
    if (rl_arith_cfg_check(&c->arith, err) < 0) return -1;
    d->size = c->size ? c->size : (c->split == RL_SPLIT_TEST ? 1000 : 100000);
    if (d->size < 1 || d->size > INT32_MAX)
        return rl_fail(err, "arith task: size must be in 1..%d, got %lld", INT32_MAX, (long long)d->size);
    size_t bp, ba, bs;
    rl_arith_max_lengths(&c->arith, &bp, &ba, &bs);
    const size_t lim[3] = {c->max_prompt, c->max_answer, c->max_solution}, bound[3] = {bp, ba, bs};
    const char *what[3] = {"max_prompt_bytes", "max_answer_bytes", "max_solution_bytes"};
    for (int k = 0; k < 3; k++)
        if (lim[k] && lim[k] < bound[k])
            return rl_fail(err, "arith task: %s = %zu is below the task's bound %zu for these settings", what[k],
                           lim[k], bound[k]);
    d->wp = (c->max_prompt ? c->max_prompt : bp) + 1;
    d->wa = (c->max_answer ? c->max_answer : ba) + 1;
    d->ws = (c->max_solution ? c->max_solution : bs) + 1;
    /* fail now, not at step 1000, if the split cannot be generated */
    rl_arith_problem p;
    return rl_arith_generate(&c->arith, c->split, 0, &p, err);
}

/* The permutation of epoch e: Fisher-Yates on the identity, keyed (seed, e). */
static void shuffle_epoch(rl_dataset *d, int64_t epoch) {
    if (d->perm) rl_rng_permutation(d->perm, (uint32_t)d->size, d->cfg.seed, rl_rng_stream2(PURPOSE_SHUFFLE, (uint64_t)epoch));
}

int rl_dataset_open(const rl_dataset_cfg *c, rl_dataset **out, rl_error *err) {
    *out = NULL;
    rl_dataset *d = rl_calloc(1, sizeof *d);
    if (!d) return rl_fail(err, "dataset: out of memory");
    d->cfg = *c;
    int rc = c->source == RL_DATA_JSONL ? load_jsonl(d, err) : setup_arith(d, err);
    if (rc == 0 && c->shuffle) {
        size_t bytes;
        if (rl_mul_size((size_t)d->size, sizeof(uint32_t), &bytes) || !(d->perm = rl_malloc(bytes)))
            rc = rl_fail(err, "dataset: out of memory for a permutation of %lld items", (long long)d->size);
    }
    if (rc < 0) {
        rl_dataset_free(d);
        return -1;
    }
    d->cfg.path = NULL; /* not owned; only needed while loading */
    shuffle_epoch(d, 0);
    *out = d;
    return 0;
}

static void put_row(uint8_t *row, size_t width, const char *s, size_t n) {
    if (!row) return;
    if (n > width - 1) n = width - 1;
    memcpy(row, s, n);
    memset(row + n, 0, width - n);
}

int rl_dataset_item(const rl_dataset *d, int64_t i, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                    int32_t *source_index, rl_error *err) {
    if (i < 0 || i >= d->size) return rl_fail(err, "dataset: item %lld out of range [0, %lld)", (long long)i,
                                              (long long)d->size);
    if (d->cfg.source == RL_DATA_JSONL) {
        const size_t *o = d->off + 3 * i;
        put_row(prompt, d->wp, d->text + o[0], strlen(d->text + o[0]));
        put_row(answer, d->wa, d->text + o[1], strlen(d->text + o[1]));
        put_row(solution, d->ws, d->text + o[2], strlen(d->text + o[2]));
        if (source_index) *source_index = d->src[i];
        return 0;
    }
    rl_arith_problem p;
    if (rl_arith_generate(&d->cfg.arith, d->cfg.split, (uint64_t)i, &p, err) < 0) return -1;
    /* widths were sized from the task's bounds, so the texts fit */
    if ((prompt && rl_arith_prompt(&p, (char *)prompt, d->wp) < 0) ||
        (answer && rl_arith_answer(&p, (char *)answer, d->wa) < 0) ||
        (solution && rl_arith_solution(&p, (char *)solution, d->ws) < 0))
        return rl_fail(err, "arith task: problem %lld does not fit its row widths", (long long)i);
    if (prompt) memset(prompt + strlen((char *)prompt), 0, d->wp - strlen((char *)prompt));
    if (answer) memset(answer + strlen((char *)answer), 0, d->wa - strlen((char *)answer));
    if (solution) memset(solution + strlen((char *)solution), 0, d->ws - strlen((char *)solution));
    if (source_index) *source_index = (int32_t)i;
    return 0;
}

int rl_dataset_next(rl_dataset *d, int64_t batch, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                    int32_t *index, rl_error *err) {
    for (int64_t b = 0; b < batch; b++) {
        if (d->cur.pos >= d->size) {
            d->cur.epoch++;
            d->cur.pos = 0;
            shuffle_epoch(d, d->cur.epoch);
        }
        int64_t item = d->perm ? (int64_t)d->perm[d->cur.pos] : d->cur.pos;
        if (rl_dataset_item(d, item, prompt ? prompt + (size_t)b * d->wp : NULL,
                            answer ? answer + (size_t)b * d->wa : NULL,
                            solution ? solution + (size_t)b * d->ws : NULL, index ? index + b : NULL, err) < 0)
            return -1;
        d->cur.pos++;
    }
    return 0;
}

void rl_dataset_get_cursor(const rl_dataset *d, rl_dataset_cursor *c) { *c = d->cur; }

int rl_dataset_set_cursor(rl_dataset *d, const rl_dataset_cursor *c, rl_error *err) {
    if (c->epoch < 0 || c->pos < 0 || c->pos > d->size)
        return rl_fail(err, "dataset: cursor (epoch %lld, position %lld) is out of range for %lld items",
                       (long long)c->epoch, (long long)c->pos, (long long)d->size);
    if (c->epoch != d->cur.epoch) shuffle_epoch(d, c->epoch);
    d->cur = *c;
    return 0;
}

int rl_dataset_cursor_save(rl_state *st, const rl_dataset_cursor *c, rl_error *err) {
    int64_t v[2] = {c->epoch, c->pos};
    return rl_state_put(st, "cursor", v, sizeof v, err);
}

int rl_dataset_cursor_load(const rl_state *st, rl_dataset_cursor *c, rl_error *err) {
    int64_t v[2];
    if (rl_state_get(st, "cursor", v, sizeof v, err) < 0) return -1;
    c->epoch = v[0];
    c->pos = v[1];
    return 0;
}

double rl_dataset_cursor_epochs(const rl_dataset_cursor *c, int64_t size) {
    return (double)c->epoch + (size > 0 ? (double)c->pos / (double)size : 0.0);
}
