/* `rlfr tokenize`: encode standard input (or files) with a tokenizer.json,
 * decode ids back to text, or train a byte-level BPE tokenizer. Users debug
 * their data with it; the conformance test and the benchmark drive it. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "commands.h"
#include "tokenizer.h"

static const char USAGE[] =
    "usage: rlfr tokenize TOKENIZER.json [--decode] [--skip-special] [--no-template]\n"
    "                     [--chat [--system TEXT]] [--files FILE...] < input\n"
    "       rlfr tokenize --train OUT.json --vocab-size N [--min-frequency K] [--special TOKEN]... FILE...\n"
    "Encodes standard input and prints its ids, space-separated, on one line; --decode reads\n"
    "ids and prints the text. --files processes each file on its own, one output line each\n"
    "(decoded text then as a JSON string). --chat wraps the text in the ChatML template\n"
    "(system prompt: --system, default the math prompt; --system '' for none).\n";

static int read_all(FILE *f, char **out, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = rl_malloc(cap);
    if (!buf) return -1;
    for (;;) {
        if (n == cap) {
            char *b = rl_realloc(buf, cap * 2);
            if (!b) { rl_free(buf); return -1; }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    if (ferror(f)) { rl_free(buf); return -1; }
    *out = buf;
    *len = n;
    return 0;
}

static int read_path(const char *path, char **out, size_t *len, rl_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = read_all(f, out, len);
    fclose(f);
    return rc ? rl_fail(err, "%s: read error", path) : 0;
}

typedef struct opts {
    const char *tok_path, *system, *train_out;
    int decode, skip_special, no_template, chat;
    int64_t vocab_size, min_freq;
    const char **files, **special;
    int n_files, n_special;
} opts;

static int encode_one(rl_tokenizer *t, const opts *o, const char *text, size_t len, rl_error *err) {
    char *rendered = NULL;
    if (o->chat) {
        size_t cap = len + rl_tok_render_overhead(RL_TOK_CHAT, o->system), n;
        rendered = rl_malloc(cap);
        if (!rendered) return rl_fail(err, "out of memory");
        if (rl_tok_render(RL_TOK_CHAT, o->system, text, len, rendered, cap, &n, err)) { rl_free(rendered); return -1; }
        text = rendered;
        len = n;
    }
    rl_tok_ids ids = {0};
    int rc = rl_tokenizer_encode(t, text, len, !o->no_template, &ids, err);
    rl_free(rendered);
    if (rc) { rl_tok_ids_free(&ids); return -1; }
    for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.ids[i]);
    putchar('\n');
    rl_tok_ids_free(&ids);
    return 0;
}

static int decode_one(rl_tokenizer *t, const opts *o, char *text, const char *src, int as_json, rl_error *err) {
    rl_tok_ids ids = {0};
    char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            rl_tok_ids_free(&ids);
            int w = 0;
            while (w < 20 && p[w] && p[w] != ' ' && p[w] != '\t' && p[w] != '\n' && p[w] != '\r') w++;
            return rl_fail(err, "%s: '%.*s' is not a token id", src, w, p);
        }
        if (ids.n == ids.cap) {
            size_t cap = ids.cap ? ids.cap * 2 : 256;
            int32_t *q = rl_realloc(ids.ids, cap * sizeof(int32_t));
            if (!q) { rl_tok_ids_free(&ids); return rl_fail(err, "out of memory"); }
            ids.ids = q;
            ids.cap = cap;
        }
        ids.ids[ids.n++] = (int32_t)v;
        p = end;
    }
    rl_tok_text out = {0};
    int rc = rl_tokenizer_decode(t, ids.ids, ids.n, o->skip_special, &out, err);
    rl_tok_ids_free(&ids);
    if (rc) { rl_tok_text_free(&out); return -1; }
    if (as_json) {
        json_t *s = json_stringn(out.s ? out.s : "", out.n);
        char *dump = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        if (dump) puts(dump);
        free(dump);
        json_decref(s);
        if (!dump) { rl_tok_text_free(&out); return rl_fail(err, "out of memory"); }
    } else {
        fwrite(out.s ? out.s : "", 1, out.n, stdout);
    }
    rl_tok_text_free(&out);
    return 0;
}

static int run_train(const opts *o, rl_error *err) {
    if (o->vocab_size <= 0) return rl_fail(err, "--train needs --vocab-size N");
    if (o->n_files == 0) return rl_fail(err, "--train needs at least one input FILE");
    rl_tok_trainer *tr;
    if (rl_tok_trainer_new(&tr, err)) return -1;
    for (int i = 0; i < o->n_files; i++) {
        char *text;
        size_t len;
        if (read_path(o->files[i], &text, &len, err) || rl_tok_trainer_feed(tr, text, len, err)) {
            if (!err->failed) rl_fail(err, "%s: cannot read", o->files[i]);
            rl_tok_trainer_free(tr);
            return -1;
        }
        rl_free(text);
    }
    rl_tok_train_opts to = {o->vocab_size, o->min_freq, o->special, o->n_special};
    int rc = rl_tok_trainer_write(tr, &to, o->train_out, err);
    rl_tok_trainer_free(tr);
    return rc;
}

static int parse_args(int argc, char **argv, opts *o) {
    o->system = RL_TOK_MATH_SYSTEM;
    o->min_freq = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--decode") == 0) o->decode = 1;
        else if (strcmp(a, "--skip-special") == 0) o->skip_special = 1;
        else if (strcmp(a, "--no-template") == 0) o->no_template = 1;
        else if (strcmp(a, "--chat") == 0) o->chat = 1;
        else if (strcmp(a, "--system") == 0 && next) { o->system = next; i++; }
        else if (strcmp(a, "--train") == 0 && next) { o->train_out = next; i++; }
        else if (strcmp(a, "--vocab-size") == 0 && next) { o->vocab_size = atoll(next); i++; }
        else if (strcmp(a, "--min-frequency") == 0 && next) { o->min_freq = atoll(next); i++; }
        else if (strcmp(a, "--special") == 0 && next) { o->special[o->n_special++] = next; i++; }
        else if (strcmp(a, "--files") == 0) {
            for (i++; i < argc && strncmp(argv[i], "--", 2) != 0; i++) o->files[o->n_files++] = argv[i];
            i--;
        } else if (strncmp(a, "--", 2) == 0) {
            return rlfr_usage_error("tokenize: unknown or incomplete option '%s'", a);
        } else if (o->train_out) {
            o->files[o->n_files++] = a;
        } else if (!o->tok_path) {
            o->tok_path = a;
        } else {
            return rlfr_usage_error("tokenize: unexpected argument '%s'", a);
        }
    }
    if (!o->train_out && !o->tok_path) return rlfr_usage_error("tokenize: missing TOKENIZER.json");
    return 0;
}

int rlfr_cmd_tokenize(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(USAGE, stdout);
        return 0;
    }
    opts o;
    memset(&o, 0, sizeof o);
    o.files = rl_calloc((size_t)argc + 1, sizeof(char *));
    o.special = rl_calloc((size_t)argc + 1, sizeof(char *));
    if (!o.files || !o.special) { fprintf(stderr, "error: out of memory\n"); return 1; }
    int status = parse_args(argc, argv, &o);
    rl_error err = {0};
    rl_tokenizer *t = NULL;
    if (status) goto done;
    status = 1;
    if (o.train_out) {
        if (run_train(&o, &err) == 0) status = 0;
        goto done;
    }
    if (rl_tokenizer_load(o.tok_path, &t, &err)) goto done;
    if (o.n_files == 0) {
        char *text;
        size_t len;
        if (read_all(stdin, &text, &len)) { rl_fail(&err, "cannot read standard input"); goto done; }
        int rc;
        if (o.decode) {
            char *z = rl_realloc(text, len + 1);
            if (!z) { rl_free(text); rl_fail(&err, "out of memory"); goto done; }
            z[len] = '\0';
            rc = decode_one(t, &o, z, "standard input", 0, &err);
            text = z;
        } else {
            rc = encode_one(t, &o, text, len, &err);
        }
        rl_free(text);
        if (rc == 0) status = 0;
        goto done;
    }
    for (int i = 0; i < o.n_files; i++) {
        char *text;
        size_t len;
        if (read_path(o.files[i], &text, &len, &err)) goto done;
        int rc;
        if (o.decode) {
            char *z = rl_realloc(text, len + 1);
            if (!z) { rl_free(text); rl_fail(&err, "out of memory"); goto done; }
            z[len] = '\0';
            rc = decode_one(t, &o, z, o.files[i], 1, &err);
            text = z;
        } else {
            rc = encode_one(t, &o, text, len, &err);
        }
        rl_free(text);
        if (rc) goto done;
    }
    status = 0;
done:
    if (status == 1) fprintf(stderr, "error: %s\n", err.msg);
    fflush(stdout);
    rl_tokenizer_free(t);
    rl_free(o.files);
    rl_free(o.special);
    return status;
}
