/* The tokenize and detokenize nodes in a graph: chat and plain templates give
 * the library's ids, right padding with the pad id, lengths and masks, T
 * shrunk to the longest row, max_len errors naming the node and row (or
 * truncation), detokenize of [start, length) ranges, option errors, and a
 * steady-state run that allocates nothing. Uses a tokenizer trained here. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "graph.h"
#include "testlib.h"
#include "tokenizer.h"

#define B 3
#define L 48

static const char *const rows[B] = {"the cat sat on the mat", "", "12 + 30 = ?"};

static const rl_port_spec src_out[] = {{"text", RL_U8, 2, 0, 0, "prompts"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(B, L);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memset(n->out[0].data, 0, B * L);
    for (int i = 0; i < B; i++) memcpy(rl_u8(&n->out[0]) + i * L, rows[i], strlen(rows[i]));
    return 0;
}
static const rl_node_type t_src = {
    .name = "t_src", .doc = "fixed prompts", .outputs = src_out, .n_outputs = 1, .infer = src_infer,
    .forward = src_forward,
};

static rl_object *make_tokenizer(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_toknode_%d.json", (int)getpid());
    rl_error e = {0};
    rl_tok_trainer *tr;
    if (rl_tok_trainer_new(&tr, &e)) return NULL;
    const char *text = "the cat sat on the mat. the dog sat on the log. 12 + 30 = 42. then the cat ran. ";
    for (int i = 0; i < 10; i++) rl_tok_trainer_feed(tr, text, strlen(text), &e);
    const char *special[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    rl_tok_train_opts o = {300, 2, special, 3};
    int rc = rl_tok_trainer_write(tr, &o, path, &e);
    rl_tok_trainer_free(tr);
    rl_tokenizer *t = NULL;
    if (rc || rl_tokenizer_load(path, &t, &e)) {
        fprintf(stderr, "tokenizer: %s\n", e.msg);
        return NULL;
    }
    remove(path);
    return rl_object_new("tokenizer", t, rl_tokenizer_destroy);
}

typedef struct built {
    rl_graph *g;
    rl_node *tk, *dt;
} built;

static int build(built *b, rl_object *tok, const char *tpl, int64_t max_len, int truncate, int with_start,
                 rl_error *e) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "tokenizer", tok);
    rl_opts_set_string(&o, "template", tpl);
    rl_opts_set_int(&o, "max_len", max_len);
    rl_opts_set_bool(&o, "truncate", truncate);
    b->g = rl_graph_new("tok");
    rl_node *src = rl_graph_add(b->g, &t_src, "src", "t.lua:1", NULL, NULL, e);
    b->tk = rl_graph_add_named(b->g, "tokenize", "tk", "t.lua:2", NULL, &o, e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "tokenizer", tok);
    rl_opts_set_int(&o, "max_bytes", 256);
    b->dt = b->tk ? rl_graph_add_named(b->g, "detokenize", "dt", "t.lua:3", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!src || !b->tk || !b->dt) return -1;
    if (rl_graph_connect(b->g, b->tk, 0, src, 0, e) || rl_graph_connect(b->g, b->dt, 0, b->tk, 0, e) ||
        rl_graph_connect(b->g, b->dt, 1, b->tk, 1, e))
        return -1;
    /* start = lengths: decode nothing but a check of the ranges; the test
       without start decodes everything. */
    if (with_start && rl_graph_connect(b->g, b->dt, 2, b->tk, 1, e)) return -1;
    for (int p = 0; p < 3; p++) rl_graph_mark_output(b->g, b->tk, p, e);
    rl_graph_mark_output(b->g, b->dt, 0, e);
    return rl_graph_compile(b->g, NULL, e);
}

static void test_templates(rl_object *tok) {
    rl_tokenizer *t = tok->ptr;
    const char *tpls[] = {"chat", "plain"};
    for (int k = 0; k < 2; k++) {
        built b;
        rl_error e = {0};
        int rc = build(&b, tok, tpls[k], 160, 0, 0, &e);
        CHECK_MSG(rc == 0, "%s: %s", tpls[k], e.msg);
        rl_run_ctx ctx = {0};
        if (rc == 0) CHECK_MSG(rl_graph_run(b.g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
        if (rc == 0 && !e.failed) {
            const rl_tensor *tk = &b.tk->out[0];
            int64_t T = tk->shape.dim[1];
            int64_t longest = 0;
            for (int i = 0; i < B; i++) {
                char buf[512];
                size_t n;
                rl_tok_render(k == 0 ? RL_TOK_CHAT : RL_TOK_PLAIN, RL_TOK_MATH_SYSTEM, rows[i], strlen(rows[i]), buf,
                              sizeof buf, &n, &e);
                rl_tok_ids want = {0};
                rl_tokenizer_encode(t, buf, n, 1, &want, &e);
                int32_t len = rl_i32(&b.tk->out[1])[i];
                CHECK_MSG((size_t)len == want.n, "%s row %d: %d tokens, want %zu", tpls[k], i, len, want.n);
                if ((size_t)len == want.n && want.n)
                    CHECK(memcmp(rl_i32(tk) + i * T, want.ids, want.n * sizeof(int32_t)) == 0);
                for (int64_t j = 0; j < T; j++) {
                    float m = rl_f32(&b.tk->out[2])[i * T + j];
                    CHECK(m == (j < len ? 1.0f : 0.0f));
                    if (j >= len) CHECK(rl_i32(tk)[i * T + j] == rl_tokenizer_pad_id(t));
                }
                if (len > longest) longest = len;
                /* detokenize (skip_special) gives back the text without the special tokens */
                const char *got = (const char *)rl_u8(&b.dt->out[0]) + i * 256;
                if (k == 1) CHECK_MSG(strcmp(got, rows[i]) == 0, "plain row %d: '%s'", i, got);
                else CHECK_MSG(strstr(got, rows[i]) && strstr(got, "assistant\n") && !strstr(got, "<|im"),
                               "chat row %d: '%s'", i, got);
                rl_tok_ids_free(&want);
            }
            CHECK_MSG(T == longest, "T = %lld, longest row %lld", (long long)T, (long long)longest);
            /* steady state: nothing allocated */
            uint64_t before = rl_alloc_count();
            CHECK(rl_graph_run(b.g, NULL, &ctx, &e) == 0);
            CHECK_MSG(rl_alloc_count() == before, "%s: %llu allocations", tpls[k],
                      (unsigned long long)(rl_alloc_count() - before));
        }
        rl_graph_free(b.g);
    }
}

static void test_limits(rl_object *tok) {
    built b;
    rl_error e = {0};
    rl_run_ctx ctx = {0};
    /* Chat prompts need ~40 tokens: max_len 8 fails naming the node and row 0. */
    if (build(&b, tok, "chat", 8, 0, 0, &e) == 0) {
        CHECK(rl_graph_run(b.g, NULL, &ctx, &e) == -1);
        CHECK_MSG(strstr(e.msg, "tk") && strstr(e.msg, "t.lua:2") && strstr(e.msg, "row 0") && strstr(e.msg, "max_len"),
                  "%s", e.msg);
    } else {
        CHECK_MSG(0, "build: %s", e.msg);
    }
    rl_graph_free(b.g);
    /* truncate = true cuts at max_len. */
    rl_error_clear(&e);
    if (build(&b, tok, "chat", 8, 1, 1, &e) == 0) {
        CHECK_MSG(rl_graph_run(b.g, NULL, &ctx, &e) == 0, "%s", e.msg);
        for (int i = 0; i < B; i++) CHECK(rl_i32(&b.tk->out[1])[i] == 8);
        /* start = lengths: every decoded row is empty */
        for (int i = 0; i < B; i++) CHECK(rl_u8(&b.dt->out[0])[i * 256] == 0);
    } else {
        CHECK_MSG(0, "build: %s", e.msg);
    }
    rl_graph_free(b.g);
    /* option errors */
    rl_error_clear(&e);
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "tokenizer", tok);
    rl_opts_set_string(&o, "template", "xml");
    CHECK(rl_graph_add_named(g, "tokenize", "tk", "t.lua:9", NULL, &o, &e) == NULL && strstr(e.msg, "xml") &&
          strstr(e.msg, "t.lua:9"));
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_error_clear(&e);
    CHECK(rl_graph_add_named(g, "tokenize", "tk2", "t.lua:10", NULL, &o, &e) == NULL && strstr(e.msg, "tokenizer"));
    rl_opts_free(&o);
    rl_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_object *tok = make_tokenizer();
    CHECK(tok != NULL);
    if (tok) {
        test_templates(tok);
        test_limits(tok);
        rl_object_release(tok);
    }
    return rl_test_finish("test_tokenizer_node");
}
