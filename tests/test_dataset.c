/* Problem sources: arith and JSONL loading (the six eval files), epochs and
 * deterministic shuffling, the checkpoint cursor, text limits, errors, and
 * the dataset node (outputs, save/load of its cursor, no allocation). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "dataset.h"
#include "graph.h"
#include "state.h"
#include "testlib.h"
#include "verify.h"

static const char *eval_path(const char *name) {
    static char buf[8192];
    const char *shared = getenv("RLFR_SHARED_DIR");
    if (shared && shared[0]) snprintf(buf, sizeof buf, "%s/data/eval/%s.jsonl", shared, name);
    else {
        snprintf(buf, sizeof buf, "%s", rl_test_path("../shared/data/eval/"));
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s.jsonl", name);
    }
    return buf;
}

static rl_dataset *open_arith(int64_t size, uint64_t seed, int shuffle, rl_split split) {
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    c.size = size;
    c.seed = seed;
    c.shuffle = shuffle;
    c.split = split;
    rl_dataset *d = NULL;
    rl_error e = {0};
    CHECK_MSG(rl_dataset_open(&c, &d, &e) == 0, "%s", e.msg);
    return d;
}

/* Indices of `count` items drawn in batches of `batch`. */
static void draw(rl_dataset *d, int64_t batch, int count, int32_t *idx) {
    rl_error e = {0};
    size_t wp, wa, ws;
    rl_dataset_widths(d, &wp, &wa, &ws);
    uint8_t *p = rl_malloc(wp * (size_t)batch), *a = rl_malloc(wa * (size_t)batch), *s = rl_malloc(ws * (size_t)batch);
    for (int k = 0; k < count; k += (int)batch) {
        int32_t tmp[64];
        CHECK_MSG(rl_dataset_next(d, batch, p, a, s, tmp, &e) == 0, "%s", e.msg);
        for (int b = 0; b < batch && k + b < count; b++) idx[k + b] = tmp[b];
    }
    rl_free(p);
    rl_free(a);
    rl_free(s);
}

static void test_order(void) {
    /* 10 items, batches of 4: 3 epochs are 3 permutations of 0..9 */
    rl_dataset *d = open_arith(10, 5, 1, RL_SPLIT_TRAIN);
    if (!d) return;
    int32_t idx[32], again[32], other[32], plain[32];
    draw(d, 4, 32, idx);
    for (int ep = 0; ep < 3; ep++) {
        int seen[10] = {0};
        for (int i = 0; i < 10; i++) {
            int32_t v = idx[ep * 10 + i];
            if (v >= 0 && v < 10) seen[v]++;
        }
        for (int v = 0; v < 10; v++) CHECK_MSG(seen[v] == 1, "epoch %d: item %d served %d times", ep, v, seen[v]);
    }
    CHECK(memcmp(idx, idx + 10, 10 * sizeof(int32_t)) != 0); /* epochs reshuffle */
    rl_dataset_cursor cur;
    rl_dataset_get_cursor(d, &cur);
    CHECK(cur.epoch == 3 && cur.pos == 2);
    rl_dataset_free(d);
    /* same seed: same order; another seed: another order; no shuffle: 0..9 */
    d = open_arith(10, 5, 1, RL_SPLIT_TRAIN);
    draw(d, 4, 32, again);
    rl_dataset_free(d);
    CHECK(memcmp(idx, again, sizeof idx) == 0);
    d = open_arith(10, 6, 1, RL_SPLIT_TRAIN);
    draw(d, 4, 32, other);
    rl_dataset_free(d);
    CHECK(memcmp(idx, other, sizeof idx) != 0);
    d = open_arith(10, 5, 0, RL_SPLIT_TRAIN);
    draw(d, 3, 32, plain);
    rl_dataset_free(d);
    for (int i = 0; i < 32; i++) CHECK(plain[i] == i % 10);
    /* the batch size does not change the order */
    d = open_arith(10, 5, 1, RL_SPLIT_TRAIN);
    draw(d, 1, 32, again);
    rl_dataset_free(d);
    CHECK(memcmp(idx, again, sizeof idx) == 0);
}

static void test_cursor(void) {
    rl_dataset *a = open_arith(1000, 9, 1, RL_SPLIT_TRAIN), *b = open_arith(1000, 9, 1, RL_SPLIT_TRAIN);
    if (!a || !b) return;
    rl_error e = {0};
    size_t wp, wa, ws;
    rl_dataset_widths(a, &wp, &wa, &ws);
    int32_t ia[16], ib[16];
    uint8_t *pa = rl_malloc(16 * wp), *pb = rl_malloc(16 * wp);
    for (int k = 0; k < 70; k++) rl_dataset_next(a, 16, NULL, NULL, NULL, ia, &e); /* into epoch 1 */
    rl_dataset_cursor c;
    rl_dataset_get_cursor(a, &c);
    CHECK(c.epoch == 1 && c.pos == 120);
    CHECK(rl_dataset_set_cursor(b, &c, &e) == 0);
    for (int k = 0; k < 5; k++) {
        rl_dataset_next(a, 16, pa, NULL, NULL, ia, &e);
        rl_dataset_next(b, 16, pb, NULL, NULL, ib, &e);
        CHECK(memcmp(ia, ib, sizeof ia) == 0 && memcmp(pa, pb, 16 * wp) == 0);
    }
    rl_dataset_cursor bad = {0, 1001};
    CHECK(rl_dataset_set_cursor(b, &bad, &e) < 0 && strstr(e.msg, "cursor"));
    /* prompts are NUL-padded rows */
    CHECK(pa[wp - 1] == 0 && strlen((char *)pa) > 10);
    rl_free(pa);
    rl_free(pb);
    rl_dataset_free(a);
    rl_dataset_free(b);
}

static void test_arith_items(void) {
    rl_dataset *tr = open_arith(0, 0, 0, RL_SPLIT_TRAIN), *te = open_arith(0, 0, 0, RL_SPLIT_TEST);
    if (!tr || !te) return;
    CHECK(rl_dataset_size(tr) == 100000 && rl_dataset_size(te) == 1000);
    size_t wp, wa, ws;
    rl_dataset_widths(te, &wp, &wa, &ws);
    uint8_t p[1024], a[64], s[512];
    rl_error e = {0};
    int32_t src;
    CHECK(wp <= sizeof p && wa <= sizeof a && ws <= sizeof s);
    for (int64_t i = 0; i < 200; i++) {
        CHECK(rl_dataset_item(te, i, p, a, s, &src, &e) == 0 && src == i);
        rl_verify_result r;
        rl_verify((char *)s, ws, (char *)a, wa, 1, NULL, &r);
        CHECK(r.reason == RL_VR_CORRECT);
    }
    CHECK(rl_dataset_item(te, 1000, p, a, s, &src, &e) < 0 && strstr(e.msg, "out of range"));
    rl_dataset_free(tr);
    rl_dataset_free(te);
    /* explicit limits below the task's bound are an error */
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    c.max_prompt = 20;
    rl_dataset *d = NULL;
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "max_prompt_bytes"));
}

static void test_jsonl_eval(void) {
    static const char *const files[] = {"math", "aime", "aime25", "amc", "minerva", "olympiad_bench"};
    static const int rows[] = {500, 30, 30, 83, 272, 675};
    for (int f = 0; f < 6; f++) {
        rl_dataset_cfg c;
        rl_dataset_cfg_default(&c);
        c.source = RL_DATA_JSONL;
        c.path = eval_path(files[f]);
        c.shuffle = 0;
        rl_dataset *d = NULL;
        rl_error e = {0};
        CHECK_MSG(rl_dataset_open(&c, &d, &e) == 0, "%s", e.msg);
        if (!d) continue;
        CHECK_MSG(rl_dataset_size(d) == rows[f], "%s: %lld rows", files[f], (long long)rl_dataset_size(d));
        size_t wp, wa, ws;
        rl_dataset_widths(d, &wp, &wa, &ws);
        CHECK(wp > 10 && wa > 1 && ws == 1); /* no solutions in these files */
        uint8_t *p = rl_malloc(wp), *a = rl_malloc(wa), *s = rl_malloc(ws);
        int32_t src;
        CHECK(rl_dataset_item(d, 0, p, a, s, &src, &e) == 0 && src == 0 && s[0] == 0);
        if (f == 3) CHECK(strcmp((char *)a, "142") == 0); /* amc: numeric answer */
        if (f == 1) CHECK(strcmp((char *)a, "204") == 0 && strncmp((char *)p, "Every morning Aya", 17) == 0);
        if (f == 4) {
            /* minerva: list answers keep every alternative, without the trailing newline */
            int with_alt = 0;
            for (int64_t i = 0; i < rl_dataset_size(d); i++) {
                rl_dataset_item(d, i, NULL, a, NULL, NULL, &e);
                if (strchr((char *)a, RL_VERIFY_ALT_SEP)) with_alt++;
                CHECK(!strchr((char *)a, '\n'));
            }
            CHECK_MSG(with_alt == 75, "%d minerva rows with alternatives", with_alt);
            CHECK(rl_dataset_item(d, 0, NULL, a, NULL, NULL, &e) == 0 && strcmp((char *)a, "9.6") == 0);
        }
        rl_free(p);
        rl_free(a);
        rl_free(s);
        rl_dataset_free(d);
    }
    /* a prompt limit skips longer rows; indices stay those of the file */
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    c.source = RL_DATA_JSONL;
    c.path = eval_path("math");
    c.max_prompt = 100;
    c.shuffle = 0;
    rl_dataset *d = NULL;
    rl_error e = {0};
    CHECK_MSG(rl_dataset_open(&c, &d, &e) == 0, "%s", e.msg);
    if (d) {
        CHECK(rl_dataset_size(d) + rl_dataset_skipped(d) == 500 && rl_dataset_skipped(d) > 0);
        size_t wp;
        rl_dataset_widths(d, &wp, NULL, NULL);
        CHECK(wp == 101);
        int32_t last = -1, src;
        int ok = 1;
        uint8_t p[101];
        for (int64_t i = 0; i < rl_dataset_size(d); i++) {
            rl_dataset_item(d, i, p, NULL, NULL, &src, &e);
            ok &= src > last && strlen((char *)p) <= 100;
            last = src;
        }
        CHECK(ok);
        rl_dataset_free(d);
    }
}

static const char *write_tmp(const char *name, const char *content) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_dataset_%d_%s", (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    return path;
}

static void test_jsonl_errors(void) {
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    c.source = RL_DATA_JSONL;
    rl_dataset *d = NULL;
    rl_error e = {0};
    c.path = "/nonexistent/x.jsonl";
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "/nonexistent/x.jsonl"));
    c.path = write_tmp("bad.jsonl", "{\"problem\": \"a\", \"answer\": 1}\n{\"problem\": \"b\", \"answer\": \n");
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, ":2"));
    unlink(c.path);
    c.path = write_tmp("noprob.jsonl", "{\"question\": \"a\", \"answer\": 1}\n");
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "problem"));
    unlink(c.path);
    c.path = write_tmp("emptylist.jsonl", "{\"problem\": \"a\", \"answer\": []}\n");
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "answer"));
    unlink(c.path);
    c.path = write_tmp("empty.jsonl", "\n");
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "no problems"));
    unlink(c.path);
    /* solutions are read when present */
    c.path = write_tmp("sol.jsonl", "{\"problem\": \"1+1?\", \"answer\": [\"2\", 2.5], \"solution\": \"1+1=2. \\\\boxed{2}\"}\n");
    CHECK_MSG(rl_dataset_open(&c, &d, &e) == 0, "%s", e.msg);
    if (d) {
        uint8_t p[64], a[64], s[64];
        size_t wp, wa, ws;
        rl_dataset_widths(d, &wp, &wa, &ws);
        CHECK(wp == 5 && wa == 6 && ws == 17);
        CHECK(rl_dataset_item(d, 0, p, a, s, NULL, &e) == 0);
        CHECK(strcmp((char *)a, "2\x1f" "2.5") == 0 && strcmp((char *)s, "1+1=2. \\boxed{2}") == 0);
        rl_dataset_free(d);
    }
    unlink(c.path);
}

static void test_node(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("ds");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_int(&o, "batch", 8);
    rl_opts_set_int(&o, "seed", 3);
    rl_opts_set_int(&o, "size", 20);
    rl_node *n = rl_graph_add_named(g, "dataset", "data", "t.lua:1", NULL, &o, &e);
    rl_opts_free(&o);
    CHECK_MSG(n != NULL, "%s", e.msg);
    if (!n) { rl_graph_free(g); return; }
    for (int p = 0; p < 4; p++) rl_graph_mark_output(g, n, p, &e);
    CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
    rl_run_ctx ctx = {0};
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    uint64_t before = rl_alloc_count();
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    CHECK(rl_alloc_count() == before);
    CHECK(n->out[0].shape.ndim == 2 && n->out[0].shape.dim[0] == 8 && n->out[3].shape.dim[0] == 8);
    /* save the cursor (after 16 items), run on, restore, rerun: same batch */
    rl_state *st = rl_state_new();
    CHECK(st && n->type->save_state(n, st, &e) == 0);
    int32_t first[8];
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    memcpy(first, n->out[3].data, sizeof first);
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    CHECK(n->type->load_state(n, st, &e) == 0);
    CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
    CHECK(memcmp(first, n->out[3].data, sizeof first) == 0);
    rl_dataset_cursor c;
    rl_dataset *d = rl_dataset_of_node(n);
    CHECK(d != NULL);
    if (d) {
        rl_dataset_get_cursor(d, &c);
        CHECK(c.epoch == 1 && c.pos == 4);
    }
    rl_state_free(st);
    rl_graph_free(g);

    /* option errors name the node and its script line */
    g = rl_graph_new("bad");
    const char *bad_keys[][2] = {{"task", "csv"}, {"split", "dev"}, {"ops", "+%"}};
    for (int k = 0; k < 3; k++) {
        rl_opts_init(&o);
        rl_opts_set_string(&o, bad_keys[k][0], bad_keys[k][1]);
        e.msg[0] = '\0';
        CHECK(rl_graph_add_named(g, "dataset", NULL, "t.lua:9", NULL, &o, &e) == NULL && strstr(e.msg, "t.lua:9") &&
              strstr(e.msg, bad_keys[k][0]));
        rl_opts_free(&o);
    }
    rl_opts_init(&o);
    rl_opts_set_string(&o, "task", "jsonl");
    CHECK(rl_graph_add_named(g, "dataset", NULL, "t.lua:9", NULL, &o, &e) == NULL && strstr(e.msg, "path"));
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_int(&o, "digits", 2);
    rl_opts_set_int(&o, "max_value", 20);
    CHECK(rl_graph_add_named(g, "dataset", NULL, "t.lua:9", NULL, &o, &e) == NULL && strstr(e.msg, "digits"));
    rl_opts_free(&o);
    rl_graph_free(g);
}

static void test_eval_names(void) {
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    c.source = RL_DATA_JSONL;
    c.path = "eval:aime25";
    rl_dataset *d = NULL;
    rl_error e = {0};
    CHECK_MSG(rl_dataset_open(&c, &d, &e) == 0, "%s", e.msg);
    if (d) CHECK(rl_dataset_size(d) == 30);
    rl_dataset_free(d);
    c.path = "eval:nosuchbench";
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "nosuchbench.jsonl") && strstr(e.msg, "RLFR_SHARED_DIR"));
    c.path = "eval:../x";
    CHECK(rl_dataset_open(&c, &d, &e) < 0 && strstr(e.msg, "eval:NAME"));
    char out[64];
    CHECK(rl_dataset_resolve_path("data/x.jsonl", out, sizeof out, &e) == 0 && strcmp(out, "data/x.jsonl") == 0);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        rl_test_set_source_dir(argv[1]);
        setenv("RLFR_SOURCE_DIR", argv[1], 0); /* for eval:NAME when run by hand */
    }
    test_order();
    test_cursor();
    test_arith_items();
    test_jsonl_eval();
    test_jsonl_errors();
    test_eval_names();
    test_node();
    return rl_test_finish("test_dataset");
}
