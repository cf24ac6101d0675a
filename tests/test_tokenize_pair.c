/* The tokenize_pair node (teacher forcing): the prompt part equals what the
 * tokenize node gives for the same prompt (chat and plain templates), the
 * response part is the tokenizer's own encoding of the response text (no
 * post-processor) followed by the end token; the mask covers exactly the
 * response and the end token; prompt_len, padding, T shrinking, truncation,
 * max_len and option errors; invalid UTF-8; steady-state runs allocate nothing. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "graph.h"
#include "testlib.h"
#include "tokenizer.h"

#define B 4
#define LP 40
#define LR 64

static const char *const prompts[B] = {"the cat sat on the mat", "12 + 30 = ?", "", "bytes \xff?"};
/* Row 3 has invalid UTF-8 (each bad byte may become 3 byte-level ids). */
static const char *const responses[B] = {"the dog sat. \\boxed{42}", "", "12+30=42. \\boxed{42}", "\xff\xfe\xc3 ok \xe2\x82"};

static const rl_port_spec src_out[] = {{"prompt", RL_U8, 2, 0, 0, "prompts"}, {"response", RL_U8, 2, 0, 0, "responses"}};
static int src_infer(rl_node *n, rl_error *err) {
    (void)err;
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(B, LP);
    n->out[1].dtype = RL_U8;
    n->out[1].shape = rl_shape2(B, LR);
    return 0;
}
static int src_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx; (void)err;
    memset(n->out[0].data, 0, B * LP);
    memset(n->out[1].data, 0, B * LR);
    for (int i = 0; i < B; i++) {
        memcpy(rl_u8(&n->out[0]) + i * LP, prompts[i], strlen(prompts[i]));
        memcpy(rl_u8(&n->out[1]) + i * LR, responses[i], strlen(responses[i]));
    }
    return 0;
}
static const rl_node_type t_src = {
    .name = "t_src", .doc = "fixed prompt/response pairs", .outputs = src_out, .n_outputs = 2,
    .infer = src_infer, .forward = src_forward,
};

static rl_object *make_tokenizer(int with_endoftext) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_tokpair_%d.json", (int)getpid());
    rl_error e = {0};
    rl_tok_trainer *tr;
    if (rl_tok_trainer_new(&tr, &e)) return NULL;
    const char *text = "the cat sat on the mat. the dog sat on the log. 12 + 30 = 42. \\boxed{42} then the cat ran. ";
    for (int i = 0; i < 10; i++) rl_tok_trainer_feed(tr, text, strlen(text), &e);
    const char *special[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    rl_tok_train_opts o = {320, 2, special, with_endoftext ? 3 : 2};
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
    rl_node *tp, *tk;
} built;

/* src -> tokenize_pair and, on the same prompts, tokenize (the reference for
   the prompt part). */
static int build(built *b, rl_object *tok, const char *tpl, int64_t max_len, int truncate, const char *eos,
                 rl_error *e) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_object(&o, "tokenizer", tok);
    rl_opts_set_string(&o, "template", tpl);
    rl_opts_set_int(&o, "max_len", max_len);
    rl_opts_set_bool(&o, "truncate", truncate);
    if (eos) rl_opts_set_string(&o, "eos", eos);
    b->g = rl_graph_new("pair");
    rl_node *src = rl_graph_add(b->g, &t_src, "src", "t.lua:1", NULL, NULL, e);
    b->tp = rl_graph_add_named(b->g, "tokenize_pair", "tp", "t.lua:2", NULL, &o, e);
    rl_opts_free(&o);
    rl_opts_init(&o);
    rl_opts_set_object(&o, "tokenizer", tok);
    rl_opts_set_string(&o, "template", tpl);
    b->tk = b->tp ? rl_graph_add_named(b->g, "tokenize", "tk", "t.lua:3", NULL, &o, e) : NULL;
    rl_opts_free(&o);
    if (!src || !b->tp || !b->tk) return -1;
    if (rl_graph_connect(b->g, b->tp, 0, src, 0, e) || rl_graph_connect(b->g, b->tp, 1, src, 1, e) ||
        rl_graph_connect(b->g, b->tk, 0, src, 0, e))
        return -1;
    for (int p = 0; p < 4; p++) rl_graph_mark_output(b->g, b->tp, p, e);
    for (int p = 0; p < 3; p++) rl_graph_mark_output(b->g, b->tk, p, e);
    return rl_graph_compile(b->g, NULL, e);
}

static void check_pairs(rl_object *tok, const char *tpl, const char *eos_opt, const char *eos_tok) {
    rl_tokenizer *t = tok->ptr;
    built b;
    rl_error e = {0};
    int rc = build(&b, tok, tpl, 200, 0, eos_opt, &e);
    CHECK_MSG(rc == 0, "%s: %s", tpl, e.msg);
    rl_run_ctx ctx = {0};
    if (rc == 0) CHECK_MSG(rl_graph_run(b.g, NULL, &ctx, &e) == 0, "run: %s", e.msg);
    if (rc == 0 && !e.failed) {
        const rl_tensor *tk = &b.tp->out[0], *ref = &b.tk->out[0];
        int64_t T = tk->shape.dim[1], Tr = ref->shape.dim[1], longest = 0;
        int32_t eos = eos_tok ? rl_tokenizer_token_id(t, eos_tok) : -1;
        if (eos_tok) CHECK(eos >= 0);
        for (int i = 0; i < B; i++) {
            int32_t len = rl_i32(&b.tp->out[1])[i], np = rl_i32(&b.tp->out[3])[i];
            int32_t ref_len = rl_i32(&b.tk->out[1])[i];
            /* prompt part: exactly the tokenize node's ids */
            CHECK_MSG(np == ref_len, "%s row %d: prompt_len %d, tokenize gives %d", tpl, i, np, ref_len);
            if (np == ref_len) CHECK(memcmp(rl_i32(tk) + i * T, rl_i32(ref) + i * Tr, (size_t)np * 4) == 0);
            /* response part: the tokenizer's encoding of the text, no post-processor */
            rl_tok_ids want = {0};
            CHECK(rl_tokenizer_encode(t, responses[i], strlen(responses[i]), 0, &want, &e) == 0);
            int32_t nr = (int32_t)want.n + (eos >= 0);
            CHECK_MSG(len == np + nr, "%s row %d: length %d, want %d + %d", tpl, i, len, np, nr);
            if (len == np + nr) {
                if (want.n) CHECK(memcmp(rl_i32(tk) + i * T + np, want.ids, want.n * 4) == 0);
                if (eos >= 0) CHECK(rl_i32(tk)[i * T + len - 1] == eos);
            }
            for (int64_t j = 0; j < T; j++) {
                float m = rl_f32(&b.tp->out[2])[i * T + j];
                CHECK_MSG(m == (j >= np && j < len ? 1.0f : 0.0f), "%s row %d pos %lld: mask %g", tpl, i, (long long)j, m);
                if (j >= len) CHECK(rl_i32(tk)[i * T + j] == rl_tokenizer_pad_id(t));
            }
            if (len > longest) longest = len;
            rl_tok_ids_free(&want);
        }
        CHECK_MSG(T == longest, "T = %lld, longest row %lld", (long long)T, (long long)longest);
        uint64_t before = rl_alloc_count();
        CHECK(rl_graph_run(b.g, NULL, &ctx, &e) == 0);
        CHECK_MSG(rl_alloc_count() == before, "%s: %llu allocations", tpl,
                  (unsigned long long)(rl_alloc_count() - before));
    }
    rl_graph_free(b.g);
}

static void test_limits(rl_object *tok, rl_object *tok_noeot) {
    built b;
    rl_error e = {0};
    rl_run_ctx ctx = {0};
    /* Chat prompts need ~30 tokens: max_len 8 fails on the prompt of row 0. */
    if (build(&b, tok, "chat", 8, 1, NULL, &e) == 0) {
        CHECK(rl_graph_run(b.g, NULL, &ctx, &e) == -1);
        CHECK_MSG(strstr(e.msg, "tp") && strstr(e.msg, "t.lua:2") && strstr(e.msg, "row 0") && strstr(e.msg, "prompt"),
                  "%s", e.msg);
    } else {
        CHECK_MSG(0, "build: %s", e.msg);
    }
    rl_graph_free(b.g);
    /* plain: prompt "the cat sat on the mat" fits in 12 tokens, the response does not */
    rl_error_clear(&e);
    if (build(&b, tok, "plain", 12, 0, NULL, &e) == 0) {
        CHECK(rl_graph_run(b.g, NULL, &ctx, &e) == -1);
        CHECK_MSG(strstr(e.msg, "row 0") && strstr(e.msg, "max_len 12") && strstr(e.msg, "truncate"), "%s", e.msg);
    } else {
        CHECK_MSG(0, "build: %s", e.msg);
    }
    rl_graph_free(b.g);
    /* truncate = true cuts the response at max_len; the mask follows */
    rl_error_clear(&e);
    if (build(&b, tok, "plain", 12, 1, NULL, &e) == 0) {
        CHECK_MSG(rl_graph_run(b.g, NULL, &ctx, &e) == 0, "%s", e.msg);
        const float *m = rl_f32(&b.tp->out[2]);
        int64_t T = b.tp->out[0].shape.dim[1];
        CHECK(T == 12);
        CHECK(rl_i32(&b.tp->out[1])[0] == 12);
        int32_t np = rl_i32(&b.tp->out[3])[0];
        for (int64_t j = 0; j < T; j++) CHECK(m[j] == (j >= np ? 1.0f : 0.0f));
    } else {
        CHECK_MSG(0, "build: %s", e.msg);
    }
    rl_graph_free(b.g);
    /* option errors */
    struct {
        const char *key, *val, *want;
        rl_object *tok;
    } bad[] = {
        {"template", "xml", "xml", tok},
        {"eos", "<|nope|>", "<|nope|>", tok},
        {"eos", "auto", "<|endoftext|>", tok_noeot}, /* plain + auto needs <|endoftext|> */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_error_clear(&e);
        rl_graph *g = rl_graph_new("bad");
        rl_opts o;
        rl_opts_init(&o);
        rl_opts_set_object(&o, "tokenizer", bad[i].tok);
        if (i == 2) rl_opts_set_string(&o, "template", "plain");
        rl_opts_set_string(&o, bad[i].key, bad[i].val);
        CHECK_MSG(rl_graph_add_named(g, "tokenize_pair", "tp", "t.lua:9", NULL, &o, &e) == NULL &&
                      strstr(e.msg, bad[i].want) && strstr(e.msg, "t.lua:9"),
                  "case %zu: %s", i, e.msg);
        rl_opts_free(&o);
        rl_graph_free(g);
    }
    rl_error_clear(&e);
    rl_graph *g = rl_graph_new("bad");
    rl_opts o;
    rl_opts_init(&o);
    CHECK(rl_graph_add_named(g, "tokenize_pair", "tp", "t.lua:10", NULL, &o, &e) == NULL && strstr(e.msg, "tokenizer"));
    rl_opts_free(&o);
    rl_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_object *tok = make_tokenizer(1), *tok2 = make_tokenizer(0);
    CHECK(tok != NULL && tok2 != NULL);
    if (tok && tok2) {
        check_pairs(tok, "chat", NULL, "<|im_end|>");
        check_pairs(tok, "plain", NULL, "<|endoftext|>");
        check_pairs(tok, "chat", "none", NULL);
        check_pairs(tok, "plain", "<|im_end|>", "<|im_end|>");
        test_limits(tok, tok2);
    }
    if (tok) rl_object_release(tok);
    if (tok2) rl_object_release(tok2);
    return rl_test_finish("test_tokenize_pair");
}
