/* safetensors: round trips of every dtype (bf16 rounding checked), metadata,
 * empty files and 0-element tensors, misaligned data, atomic replacement, and
 * every broken file in tests/broken/ failing with a one-line message that
 * names the file and the problem. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "safetensors.h"
#include "testlib.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static int count_dir_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int bits_equal(float a, float b) { return memcmp(&a, &b, 4) == 0; }

static void test_round_trip(void) {
    const char *path = tmp_path("rt.safetensors");
    float w[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
    /* bf16 rounding: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (ties to even: 1);
       1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6 (ties to even: 1 + 2^-6);
       1 + 2^-8 + 2^-20 is just above halfway (rounds up). */
    float b[5] = {1.00390625f, 1.01171875f, 1.00390625f + 0x1p-20f, INFINITY, -3.0f};
    float b_expect[5] = {1.0f, 1.015625f, 1.0078125f, INFINITY, -3.0f};
    uint16_t braw[3] = {0x3f80, 0xc000, 0x7fc0}; /* 1, -2, NaN as native bf16 */
    int32_t ids[4] = {7, -1, 2147483647, -2147483647 - 1};
    uint8_t bytes[3] = {'a', 0, 255};
    float scalar = 42.0f;
    rl_st_entry e[] = {
        {"bytes", RL_U8, rl_shape1(3), bytes, RL_U8}, /* odd size first: the writer must keep others aligned */
        {"w", RL_F32, rl_shape2(2, 3), w, RL_F32},
        {"b", RL_BF16, rl_shape1(5), b, RL_F32},
        {"braw", RL_BF16, rl_shape1(3), braw, RL_BF16},
        {"ids", RL_I32, rl_shape2(2, 2), ids, RL_I32},
        {"empty", RL_F32, rl_shape2(0, 5), NULL, RL_F32},
        {"scalar", RL_F32, rl_shape_make(0, NULL), &scalar, RL_F32},
    };
    const char *mk[] = {"format", "step"};
    const char *mv[] = {"pt", "12"};
    rl_error err = {0};
    CHECK_MSG(rl_st_write(path, e, 7, mk, mv, 2, &err) == 0, "%s", err.msg);
    CHECK(count_dir_entries() == 1); /* no temporary file left behind */

    rl_st_file *f = NULL;
    CHECK_MSG(rl_st_open(path, &f, &err) == 0, "%s", err.msg);
    if (!f) return;
    CHECK(rl_st_count(f) == 7);
    CHECK(strcmp(rl_st_path(f), path) == 0);
    CHECK(rl_st_metadata(f, "format") && strcmp(rl_st_metadata(f, "format"), "pt") == 0);
    CHECK(rl_st_metadata(f, "step") && strcmp(rl_st_metadata(f, "step"), "12") == 0);
    CHECK(rl_st_metadata(f, "nope") == NULL);

    const rl_st_info *in = rl_st_find(f, "w");
    CHECK(in && in->dtype == RL_F32 && in->nbytes == 24);
    if (in) {
        rl_shape s = rl_shape2(2, 3);
        CHECK(rl_shape_equal(&in->shape, &s));
        CHECK(((uintptr_t)in->data % 4) == 0);
        CHECK(memcmp(in->data, w, sizeof w) == 0);
    }
    float got[6];
    CHECK(rl_st_read_f32(f, "w", got, 6, &err) == 0);
    for (int i = 0; i < 6; i++) CHECK(bits_equal(got[i], w[i]));

    in = rl_st_find(f, "b");
    CHECK(in && in->dtype == RL_BF16 && in->nbytes == 10);
    float gb[5];
    CHECK_MSG(rl_st_read_f32(f, "b", gb, 5, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 5; i++) CHECK_MSG(bits_equal(gb[i], b_expect[i]), "b[%d] = %.9g, want %.9g", i, gb[i], b_expect[i]);
    float gr[3];
    CHECK(rl_st_read_f32(f, "braw", gr, 3, &err) == 0);
    CHECK(gr[0] == 1.0f && gr[1] == -2.0f && isnan(gr[2]));

    in = rl_st_find(f, "ids");
    CHECK(in && in->dtype == RL_I32 && in->nbytes == 16 && ((uintptr_t)in->data % 4) == 0);
    if (in) CHECK(memcmp(in->data, ids, sizeof ids) == 0);
    in = rl_st_find(f, "bytes");
    CHECK(in && in->dtype == RL_U8 && in->nbytes == 3 && in->shape.ndim == 1 && in->shape.dim[0] == 3);
    if (in) CHECK(memcmp(in->data, bytes, 3) == 0);
    in = rl_st_find(f, "empty");
    CHECK(in && in->nbytes == 0 && in->shape.ndim == 2 && in->shape.dim[0] == 0 && in->shape.dim[1] == 5);
    CHECK(rl_st_read_f32(f, "empty", NULL, 0, &err) == 0);
    in = rl_st_find(f, "scalar");
    CHECK(in && in->shape.ndim == 0 && in->nbytes == 4);
    float sc = 0;
    rl_shape s0 = rl_shape_make(0, NULL);
    CHECK(rl_st_read_f32_shape(f, "scalar", &s0, &sc, &err) == 0 && sc == 42.0f);

    /* rl_st_at walks all tensors; every name is found again by rl_st_find. */
    for (int i = 0; i < rl_st_count(f); i++) {
        const rl_st_info *a = rl_st_at(f, i);
        CHECK(a && rl_st_find(f, a->name) == a);
    }
    CHECK(rl_st_at(f, 7) == NULL && rl_st_at(f, -1) == NULL);

    /* Errors name the file and the tensor. */
    rl_error_clear(&err);
    CHECK(rl_st_read_f32(f, "w", got, 5, &err) == -1);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "'w'") && strstr(err.msg, "6 elements"));
    rl_shape bad = rl_shape2(3, 2);
    CHECK(rl_st_read_f32_shape(f, "w", &bad, got, &err) == -1);
    CHECK(strstr(err.msg, "shape [2, 3], expected [3, 2]") != NULL);
    CHECK(rl_st_read_f32(f, "missing", got, 6, &err) == -1);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "no tensor named 'missing'"));
    CHECK(rl_st_read_f32(f, "ids", got, 4, &err) == -1);
    CHECK(strstr(err.msg, "dtype I32") != NULL);
    rl_st_close(f);

    /* Overwriting replaces the file atomically with the new content. */
    rl_st_entry one = {"only", RL_F32, rl_shape1(1), &scalar, RL_F32};
    CHECK(rl_st_write(path, &one, 1, NULL, NULL, 0, &err) == 0);
    CHECK(rl_st_open(path, &f, &err) == 0);
    if (f) {
        CHECK(rl_st_count(f) == 1 && rl_st_find(f, "w") == NULL && rl_st_metadata(f, "format") == NULL);
        rl_st_close(f);
    }
    unlink(path);
}

static void test_empty_and_zero(void) {
    rl_error err = {0};
    const char *path = tmp_path("zero.safetensors");
    CHECK(rl_st_write(path, NULL, 0, NULL, NULL, 0, &err) == 0);
    rl_st_file *f = NULL;
    CHECK_MSG(rl_st_open(path, &f, &err) == 0, "%s", err.msg);
    CHECK(f && rl_st_count(f) == 0 && rl_st_find(f, "x") == NULL);
    rl_st_close(f);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 16); /* 8 + "{}" padded to 8 */

    const char *k = "only", *v = "metadata";
    CHECK(rl_st_write(path, NULL, 0, &k, &v, 1, &err) == 0);
    CHECK(rl_st_open(path, &f, &err) == 0);
    CHECK(f && rl_st_count(f) == 0 && rl_st_metadata(f, "only") && strcmp(rl_st_metadata(f, "only"), "metadata") == 0);
    rl_st_close(f);
    unlink(path);
}

static void test_writer_errors(void) {
    rl_error err = {0};
    float x = 1;
    rl_st_entry dup[] = {{"a", RL_F32, rl_shape1(1), &x, RL_F32}, {"a", RL_F32, rl_shape1(1), &x, RL_F32}};
    const char *path = tmp_path("dup.safetensors");
    CHECK(rl_st_write(path, dup, 2, NULL, NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, "'a' is used twice"));
    CHECK(access(path, F_OK) != 0);
    rl_st_entry conv = {"a", RL_I32, rl_shape1(1), &x, RL_F32};
    CHECK(rl_st_write(path, &conv, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "cannot store F32 data as I32"));
    rl_st_entry nodata = {"a", RL_F32, rl_shape1(3), NULL, RL_F32};
    CHECK(rl_st_write(path, &nodata, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "no data"));
    rl_st_entry neg = {"a", RL_F32, rl_shape1(-2), &x, RL_F32};
    CHECK(rl_st_write(path, &neg, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "invalid shape"));
    const char *ks[] = {"k", "k"}, *vs[] = {"1", "2"};
    CHECK(rl_st_write(path, dup, 1, ks, vs, 2, &err) == -1 && strstr(err.msg, "metadata key 'k'"));
    const char *nodir = "/nonexistent-dir-rlfr/x.safetensors";
    CHECK(rl_st_write(nodir, dup, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, nodir) == err.msg);
    CHECK(access(path, F_OK) != 0);

    /* Opening something that is not a file, or not there. */
    rl_st_file *f = NULL;
    CHECK(rl_st_open(tmpdir, &f, &err) == -1 && f == NULL && strstr(err.msg, "not a regular file"));
    CHECK(rl_st_open(tmp_path("absent.safetensors"), &f, &err) == -1 && strstr(err.msg, "cannot open"));
}

/* A header whose length is not a multiple of 4 leaves f32 data misaligned in
   the mapping: the reader must still hand out an aligned pointer. */
static void test_misaligned(void) {
    const char *path = tmp_path("misaligned.safetensors");
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}"; /* 55 bytes */
    size_t hl = strlen(hdr);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    unsigned char len[8] = {0};
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    float v[3] = {1.5f, -2.0f, 3.0f};
    fwrite(len, 1, 8, fp);
    fwrite(hdr, 1, hl, fp);
    fwrite(v, 4, 3, fp);
    fclose(fp);
    rl_error err = {0};
    rl_st_file *f = NULL;
    CHECK_MSG(rl_st_open(path, &f, &err) == 0, "%s", err.msg);
    const rl_st_info *in = rl_st_find(f, "x");
    CHECK(in && ((uintptr_t)in->data % 4) == 0);
    if (in) CHECK(((const float *)in->data)[1] == -2.0f);
    rl_st_close(f);
    unlink(path);
}

/* Deterministic mutations of a valid file (byte changes in the header and the
   length prefix, truncations): each must open cleanly or fail with a one-line
   message naming the file; never crash (run under ASan/UBSan in CI). */
static void test_mutations(void) {
    const char *src = tmp_path("fuzz_src.safetensors"), *path = tmp_path("fuzz.safetensors");
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[2] = {1, 2};
    uint8_t u[3] = {1, 2, 3};
    rl_st_entry e[] = {{"w", RL_F32, rl_shape2(2, 3), w, RL_F32}, {"ids", RL_I32, rl_shape1(2), ids, RL_I32},
                       {"u", RL_U8, rl_shape1(3), u, RL_U8}, {"h", RL_BF16, rl_shape1(2), w, RL_F32}};
    const char *k = "m", *v = "x";
    rl_error err = {0};
    CHECK(rl_st_write(src, e, 4, &k, &v, 1, &err) == 0);
    FILE *fp = fopen(src, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    unsigned char orig[1024];
    size_t len = fread(orig, 1, sizeof orig, fp);
    fclose(fp);
    unsigned char buf[1024];
    static const char pool[] = "{}[]\",:0123456789-. eE\"FBIU";
    uint64_t r = 12345;
    int opened = 0, failed = 0;
    for (int it = 0; it < 1000; it++) {
        memcpy(buf, orig, len);
        size_t n = len;
        int muts = 1 + (int)(it % 3);
        for (int m = 0; m < muts; m++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(r >> 33) % n;
            unsigned kind = (unsigned)(r >> 20) % 4;
            if (kind == 0) buf[pos] = (unsigned char)pool[(r >> 40) % (sizeof pool - 1)];
            else if (kind == 1) buf[pos % 8] = (unsigned char)(r >> 48); /* length prefix */
            else if (kind == 2) buf[pos] ^= (unsigned char)(1u << ((r >> 44) % 8));
            else n = pos;                                             /* truncate */
        }
        fp = fopen(path, "wb");
        if (!fp) break;
        fwrite(buf, 1, n, fp);
        fclose(fp);
        rl_st_file *f = NULL;
        rl_error_clear(&err);
        if (rl_st_open(path, &f, &err) == 0) {
            opened++;
            for (int i = 0; i < rl_st_count(f); i++) {
                const rl_st_info *in = rl_st_at(f, i);
                volatile unsigned char sink = 0;
                for (size_t b = 0; b < in->nbytes; b++) sink ^= ((const unsigned char *)in->data)[b];
                (void)sink;
                size_t cnt = in->nbytes / rl_dtype_size(in->dtype);
                if ((in->dtype == RL_F32 || in->dtype == RL_BF16) && cnt <= 64) {
                    float tmp[64];
                    CHECK(rl_st_read_f32(f, in->name, tmp, cnt, &err) == 0);
                }
            }
            rl_st_close(f);
        } else {
            failed++;
            CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 && !strchr(err.msg, '\n'), "%s", err.msg);
        }
    }
    CHECK(failed > 800); /* most mutations must be caught */
    printf("mutations: %d opened, %d refused\n", opened, failed);
    unlink(path);
    unlink(src);
}

/* Expected problem (substring) per broken file; every listed file must exist. */
static const struct {
    const char *file;
    const char *problem;
} broken[] = {
    {"st_truncated_header.safetensors", "truncated header"},
    {"st_header_past_eof.safetensors", "header length 4096 runs past the end of the file"},
    {"st_invalid_json.safetensors", "invalid JSON header"},
    {"st_header_not_object.safetensors", "must start with '{'"},
    {"st_missing_offsets.safetensors", "tensor 'a' has no \"data_offsets\""},
    {"st_offsets_past_eof.safetensors", "tensor 'a' data [4096, 4112) ends past the end of the file"},
    {"st_overlap.safetensors", "tensors 'a' and 'b' overlap"},
    {"st_gap.safetensors", "bytes [8, 16) of the data section belong to no tensor"},
    {"st_shape_mismatch.safetensors", "shape [2, 3] needs 24 bytes but data_offsets span 16"},
    {"st_unknown_dtype.safetensors", "unknown dtype 'Q4_K'"},
    {"st_unsupported_dtype.safetensors", "unsupported dtype 'F64'"},
    {"st_negative_dim.safetensors", "negative dimension -1"},
    {"st_truncated_data.safetensors", "tensor 'b' data [16, 32) ends past the end of the file"},
    {"st_empty.safetensors", "file has 0 bytes"},
    {"st_bad_metadata.safetensors", "metadata value for key 'step' is not a string"},
    {"st_duplicate_name.safetensors", "duplicate object key"},
};

static void test_broken(void) {
    char dirpath[4096];
    snprintf(dirpath, sizeof dirpath, "%s", rl_test_path("tests/broken"));
    int seen[sizeof broken / sizeof broken[0]] = {0};
    DIR *d = opendir(dirpath);
    CHECK_MSG(d != NULL, "cannot open %s", dirpath);
    if (!d) return;
    struct dirent *de;
    int n_files = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 12 || strcmp(de->d_name + l - 12, ".safetensors") != 0) continue;
        n_files++;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dirpath, de->d_name);
        rl_error err = {0};
        rl_st_file *f = NULL;
        int rc = rl_st_open(path, &f, &err);
        CHECK_MSG(rc == -1 && f == NULL, "%s opened without error", de->d_name);
        if (rc == 0) {
            rl_st_close(f);
            continue;
        }
        CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 && err.msg[strlen(path)] == ':',
                  "message does not start with the path: %s", err.msg);
        CHECK_MSG(strchr(err.msg, '\n') == NULL, "message is not one line: %s", err.msg);
        for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
            if (strcmp(broken[i].file, de->d_name) != 0) continue;
            seen[i] = 1;
            CHECK_MSG(strstr(err.msg, broken[i].problem) != NULL, "%s: got '%s', want '%s'", de->d_name, err.msg,
                      broken[i].problem);
        }
        if (getenv("RLFR_TEST_VERBOSE")) printf("%s\n", err.msg);
    }
    closedir(d);
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++)
        CHECK_MSG(seen[i], "missing broken file %s (run tests/make_broken_inputs.py)", broken[i].file);
    CHECK(n_files >= (int)(sizeof broken / sizeof broken[0]));
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlfr_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_empty_and_zero();
    test_writer_errors();
    test_misaligned();
    test_mutations();
    test_broken();
    rmdir(tmpdir);
    return rl_test_finish("test_safetensors");
}
