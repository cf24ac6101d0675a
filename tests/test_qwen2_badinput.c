/* Bad Qwen2 checkpoints fail with one clear error naming the file and the
 * key or tensor: config.json with missing / inconsistent keys, safetensors
 * with missing or mis-shaped tensors, broken sharded indexes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "qwen2.h"
#include "safetensors.h"
#include "testlib.h"

static char dir[64];

static void write_file(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

#define GOOD_CFG                                                                                          \
    "{\"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"      \
    " \"num_key_value_heads\": 1, \"intermediate_size\": 12, \"max_position_embeddings\": 32,"            \
    " \"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": false}"

static void expect_load_error(const char *what, const char *needle1, const char *needle2) {
    rl_error e = {0};
    rl_qwen2 *m = NULL;
    int rc = rl_qwen2_load(dir, "bad", &m, &e);
    CHECK_MSG(rc != 0 && m == NULL, "%s: load succeeded", what);
    CHECK_MSG(strstr(e.msg, needle1) != NULL, "%s: message '%s' lacks '%s'", what, e.msg, needle1);
    if (needle2) CHECK_MSG(strstr(e.msg, needle2) != NULL, "%s: message '%s' lacks '%s'", what, e.msg, needle2);
    CHECK_MSG(strchr(e.msg, '\n') == NULL, "%s: message is not one line", what);
    rl_qwen2_free(m);
}

static void test_config(void) {
    struct { const char *json, *needle; } cases[] = {
        {"{\"hidden_size\": 8, \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 12}",
         "missing key 'vocab_size'"},
        {"{\"vocab_size\": 16, \"hidden_size\": 9, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
         " \"intermediate_size\": 12}", "hidden_size 9 is not divisible by num_attention_heads 2"},
        {"{\"vocab_size\": 16, \"hidden_size\": 12, \"num_hidden_layers\": 2, \"num_attention_heads\": 3,"
         " \"num_key_value_heads\": 2, \"intermediate_size\": 12}", "num_key_value_heads 2 does not divide"},
        {"{\"vocab_size\": 16, \"hidden_size\": \"8\", \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
         " \"intermediate_size\": 12}", "key 'hidden_size' must be an integer"},
        {"{\"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 0, \"num_attention_heads\": 2,"
         " \"intermediate_size\": 12}", "'num_hidden_layers' must be a positive integer"},
        {"{\"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
         " \"intermediate_size\": 12, \"rope_theta\": -1}", "'rope_theta' must be positive"},
        {"{\"vocab_size\": 16, \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
         " \"intermediate_size\": 12, \"tie_word_embeddings\": 1}", "'tie_word_embeddings' must be true or false"},
        {"{\"vocab_size\": 16, ", "cannot read JSON"},
        {"[1, 2]", "top level is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file("config.json", cases[i].json);
        expect_load_error("config", cases[i].needle, "config.json");
    }
    remove_file("config.json");
    expect_load_error("no config", "config.json", NULL);
}

static void test_weights(void) {
    write_file("config.json", GOOD_CFG);
    expect_load_error("no weights", "neither model.safetensors nor model.safetensors.index.json", NULL);

    rl_qwen2_config c;
    rl_error e = {0};
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_MSG(rl_qwen2_config_load(p, &c, &e) == 0, "%s", e.msg);
    rl_qwen2 *m = NULL;
    CHECK(rl_qwen2_new(&c, "src", 1, &m, &e) == 0);
    CHECK(rl_params_finalize(m->params, &e) == 0);
    int n = m->params->n;
    rl_st_entry *ent = rl_calloc((size_t)n, sizeof *ent);
    for (int i = 0; i < n; i++) {
        const rl_param_entry *pe = &m->params->entries[i];
        ent[i] = (rl_st_entry){pe->name, RL_F32, pe->shape, m->params->data + pe->offset, RL_F32};
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    /* A complete file loads. */
    CHECK_MSG(rl_st_write(p, ent, n, NULL, NULL, 0, &e) == 0, "%s", e.msg);
    rl_qwen2 *ok = NULL;
    CHECK_MSG(rl_qwen2_load(dir, "ok", &ok, &e) == 0, "%s", e.msg);
    rl_qwen2_free(ok);
    /* Missing tensor: the last one (lm_head.weight) left out. */
    CHECK(rl_st_write(p, ent, n - 1, NULL, NULL, 0, &e) == 0);
    expect_load_error("missing tensor", "missing tensor 'lm_head.weight'", "model.safetensors");
    /* Mis-shaped tensor: up_proj declared transposed. */
    int up = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(ent[i].name, "model.layers.1.mlp.up_proj.weight") == 0) up = i;
    CHECK(up >= 0);
    if (up >= 0) {
        ent[up].shape = rl_shape2(c.hidden, c.inter);
        CHECK(rl_st_write(p, ent, n, NULL, NULL, 0, &e) == 0);
        expect_load_error("mis-shaped", "tensor 'model.layers.1.mlp.up_proj.weight' has shape [8, 12], expected [12, 8]",
                          "model.safetensors");
        ent[up].shape = rl_shape2(c.inter, c.hidden);
    }
    /* Not a safetensors file at all. */
    write_file("model.safetensors", "garbage");
    expect_load_error("garbage", "model.safetensors", NULL);
    remove_file("model.safetensors");
    /* Sharded index that forgets a tensor, and one naming a missing shard. */
    snprintf(p, sizeof p, "%s/shard.safetensors", dir);
    CHECK(rl_st_write(p, ent, n, NULL, NULL, 0, &e) == 0);
    write_file("model.safetensors.index.json",
               "{\"weight_map\": {\"model.embed_tokens.weight\": \"shard.safetensors\"}}");
    expect_load_error("index", "missing tensor 'model.layers.0.input_layernorm.weight' in weight_map",
                      "model.safetensors.index.json");
    FILE *f = fopen((snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir), p), "w");
    if (f) {
        fprintf(f, "{\"weight_map\": {");
        for (int i = 0; i < n; i++) fprintf(f, "%s\"%s\": \"%s\"", i ? ", " : "", ent[i].name, i ? "shard.safetensors" : "gone.safetensors");
        fprintf(f, "}}");
        fclose(f);
    }
    expect_load_error("missing shard", "gone.safetensors", NULL);
    write_file("model.safetensors.index.json", "{\"nothing\": 1}");
    expect_load_error("index without map", "missing object 'weight_map'", NULL);
    remove_file("model.safetensors.index.json");
    remove_file("shard.safetensors");
    remove_file("config.json");
    rl_free(ent);
    rl_qwen2_free(m);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    snprintf(dir, sizeof dir, "/tmp/rlfr_qwen2_bad_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_config();
    test_weights();
    rmdir(dir);
    return rl_test_finish("test_qwen2_badinput");
}
