/* Model bundles (directory and .tar.zst), hostile archives, checkpoint
 * directories with crash safety, node state blobs. */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "checkpoint.h"
#include "params.h"
#include "state.h"
#include "testlib.h"

static char root[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

/* Writes a tar.zst with one member of the given kind. */
static void make_archive(const char *path, const char *member, int kind /* 0 file, 1 symlink */, const char *body) {
    struct archive *a = archive_write_new();
    archive_write_add_filter_zstd(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, path);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "config.json");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 2);
    archive_write_header(a, e);
    archive_write_data(a, "{}", 2);
    archive_entry_clear(e);
    archive_entry_set_pathname(e, member);
    archive_entry_set_perm(e, 0644);
    if (kind == 1) {
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, "/etc/passwd");
        archive_write_header(a, e);
    } else {
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)strlen(body));
        archive_write_header(a, e);
        archive_write_data(a, body, strlen(body));
    }
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
}

static void test_bundles(void) {
    char dir[512], packed[512], p[600];
    rl_error e = {0};
    snprintf(dir, sizeof dir, "%s/model", root);
    CHECK(rl_mkdirs(dir, &e) == 0);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"hidden_size\": 8}");
    rl_params *ps = rl_params_new("m", 3);
    rl_params_add(ps, "w", rl_shape2(3, 4), RL_INIT_NORMAL, 1.0f, NULL, &e);
    rl_params_add(ps, "b", rl_shape1(4), RL_INIT_NORMAL, 1.0f, NULL, &e);
    CHECK(rl_params_finalize(ps, &e) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_MSG(rl_params_save(ps, p, RL_F32, NULL, NULL, 0, &e) == 0, "%s", e.msg);
    snprintf(packed, sizeof packed, "%s/model.tar.zst", root);
    CHECK_MSG(rl_bundle_pack(dir, packed, &e) == 0, "%s", e.msg);

    rl_bundle *bd = NULL, *bz = NULL;
    CHECK_MSG(rl_bundle_open(dir, &bd, &e) == 0, "%s", e.msg);
    CHECK_MSG(rl_bundle_open(packed, &bz, &e) == 0, "%s", e.msg);
    if (bd && bz) {
        char a[600], b[600];
        size_t la, lb;
        char *x = read_all(rl_bundle_file(bd, "model.safetensors", a, sizeof a), &la);
        char *y = read_all(rl_bundle_file(bz, "model.safetensors", b, sizeof b), &lb);
        CHECK(x && y && la == lb && memcmp(x, y, la) == 0);
        free(x);
        free(y);
        /* Loaded parameters are identical from both. */
        rl_params *q1 = rl_params_new("m", 9), *q2 = rl_params_new("m", 10);
        rl_params_add(q1, "w", rl_shape2(3, 4), RL_INIT_ZEROS, 0, NULL, &e);
        rl_params_add(q1, "b", rl_shape1(4), RL_INIT_ZEROS, 0, NULL, &e);
        rl_params_add(q2, "w", rl_shape2(3, 4), RL_INIT_ZEROS, 0, NULL, &e);
        rl_params_add(q2, "b", rl_shape1(4), RL_INIT_ZEROS, 0, NULL, &e);
        CHECK(rl_params_load(q1, rl_bundle_file(bd, "model.safetensors", a, sizeof a), &e) == 0);
        CHECK(rl_params_load(q2, rl_bundle_file(bz, "model.safetensors", b, sizeof b), &e) == 0);
        CHECK(memcmp(q1->data, ps->data, ps->numel * 4) == 0 && memcmp(q2->data, ps->data, ps->numel * 4) == 0);
        /* A mis-shaped tensor is named. */
        rl_params *q3 = rl_params_new("m", 1);
        rl_params_add(q3, "w", rl_shape2(4, 3), RL_INIT_ZEROS, 0, NULL, &e);
        CHECK(rl_params_load(q3, a, &e) != 0);
        CHECK_MSG(strstr(e.msg, "'w'") != NULL, "%s", e.msg);
        rl_params *q4 = rl_params_new("m", 1);
        rl_params_add(q4, "missing", rl_shape1(2), RL_INIT_ZEROS, 0, NULL, &e);
        CHECK(rl_params_load(q4, a, &e) != 0);
        CHECK_MSG(strstr(e.msg, "missing tensor 'missing'"), "%s", e.msg);
        rl_params_free(q1); rl_params_free(q2); rl_params_free(q3); rl_params_free(q4);
    }
    char extracted[4096] = {0};
    if (bz) snprintf(extracted, sizeof extracted, "%s", rl_bundle_dir(bz));
    rl_bundle_close(bd);
    rl_bundle_close(bz);
    struct stat st;
    CHECK(extracted[0] && stat(extracted, &st) != 0); /* the temporary extraction is gone */

    /* Truncated archive. */
    size_t len;
    char *full = read_all(packed, &len);
    snprintf(p, sizeof p, "%s/truncated.tar.zst", root);
    FILE *f = fopen(p, "wb");
    fwrite(full, 1, len / 2, f);
    fclose(f);
    free(full);
    rl_bundle *b = NULL;
    CHECK(rl_bundle_open(p, &b, &e) != 0 && b == NULL);
    CHECK_MSG(strstr(e.msg, "truncated") || strstr(e.msg, "corrupt"), "%s", e.msg);

    /* Hostile members. */
    const char *names[] = {"../x", "/abs/x", "a/../../x"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/evil%d.tar.zst", root, i);
        make_archive(p, names[i], 0, "pwned");
        CHECK(rl_bundle_open(p, &b, &e) != 0);
        CHECK_MSG(strstr(e.msg, "unsafe path"), "%s", e.msg);
    }
    snprintf(p, sizeof p, "%s/link.tar.zst", root);
    make_archive(p, "model.safetensors", 1, "");
    CHECK(rl_bundle_open(p, &b, &e) != 0);
    CHECK_MSG(strstr(e.msg, "is a link"), "%s", e.msg);
    char escaped[600];
    snprintf(escaped, sizeof escaped, "%s/../x", root);
    CHECK(stat(escaped, &st) != 0);

    /* Missing config.json. */
    snprintf(p, sizeof p, "%s/noconfig", root);
    rl_mkdirs(p, &e);
    CHECK(rl_bundle_open(p, &b, &e) != 0);
    CHECK_MSG(strstr(e.msg, "no config.json"), "%s", e.msg);
    CHECK(rl_bundle_open("/nonexistent/bundle", &b, &e) != 0);

    /* A corrupt safetensors inside a valid bundle fails when loaded. */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_text(p, "garbage that is not safetensors");
    CHECK(rl_params_load(ps, p, &e) != 0);
    CHECK_MSG(strstr(e.msg, "model.safetensors"), "%s", e.msg);
    rl_params_free(ps);
}

static void test_checkpoints(void) {
    char run[512], dir[4096], p[4200];
    rl_error e = {0};
    int64_t step = -1;
    snprintf(run, sizeof run, "%s/run", root);
    CHECK(rl_ckpt_latest(run, dir, sizeof dir, &step, &e) == 0);
    for (int s = 10; s <= 40; s += 10) {
        CHECK(rl_ckpt_begin(run, s, dir, sizeof dir, &e) == 0);
        snprintf(p, sizeof p, "%s/trainer.json", dir);
        char text[64];
        snprintf(text, sizeof text, "{\"step\": %d}", s);
        write_text(p, text);
        CHECK(rl_ckpt_commit(run, s, 2, &e) == 0);
    }
    CHECK(rl_ckpt_latest(run, dir, sizeof dir, &step, &e) == 1 && step == 40);
    struct stat st;
    snprintf(p, sizeof p, "%s/ckpt-00000010", run);
    CHECK(stat(p, &st) != 0); /* pruned */
    snprintf(p, sizeof p, "%s/ckpt-00000030", run);
    CHECK(stat(p, &st) == 0);
    /* A crash while writing step 50 leaves a .tmp: latest is still 40. */
    CHECK(rl_ckpt_begin(run, 50, dir, sizeof dir, &e) == 0);
    CHECK(rl_ckpt_latest(run, dir, sizeof dir, &step, &e) == 1 && step == 40);
    /* `latest` lost: the newest complete directory is found. */
    snprintf(p, sizeof p, "%s/latest", run);
    unlink(p);
    CHECK(rl_ckpt_latest(run, dir, sizeof dir, &step, &e) == 1 && step == 40);
}

static void test_state(void) {
    rl_error e = {0};
    rl_state *st = rl_state_new();
    rl_state_set_prefix(st, "opt");
    float m[3] = {1, 2, 3};
    long long cursor = 123456789012LL;
    CHECK(rl_state_put(st, "m", m, sizeof m, &e) == 0);
    CHECK(rl_state_put(st, "cursor", &cursor, sizeof cursor, &e) == 0);
    char p[600];
    snprintf(p, sizeof p, "%s/state.safetensors", root);
    CHECK_MSG(rl_state_save(st, p, &e) == 0, "%s", e.msg);
    rl_state *back = rl_state_new();
    CHECK_MSG(rl_state_load(back, p, &e) == 0, "%s", e.msg);
    rl_state_set_prefix(back, "opt");
    float m2[3] = {0};
    long long c2 = 0;
    CHECK(rl_state_get(back, "m", m2, sizeof m2, &e) == 0 && memcmp(m, m2, sizeof m) == 0);
    CHECK(rl_state_get(back, "cursor", &c2, sizeof c2, &e) == 0 && c2 == cursor);
    CHECK(rl_state_get(back, "m", m2, 8, &e) != 0 && strstr(e.msg, "opt.m"));
    CHECK(rl_state_get(back, "nothing", m2, 4, &e) != 0 && strstr(e.msg, "opt.nothing"));
    rl_state_free(st);
    rl_state_free(back);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    /* The work directory is a child of a fresh private directory, so the
     * escape check (nothing appears at root/../x) cannot see anyone else's x. */
    char top[64] = "/tmp/rlfr-test-bundle-XXXXXX";
    if (!mkdtemp(top)) return 1;
    snprintf(root, sizeof root, "%s/work", top);
    rl_error e = {0};
    rl_mkdirs(root, &e);
    test_bundles();
    test_checkpoints();
    test_state();
    rl_remove_tree(top, &e);
    return rl_test_finish("test_bundle");
}
