/* Image data sets: JSONL with image paths and WebDataset shards (.tar and
 * .tar.zst, a directory of shards) give the same items; prompts carry one
 * <|image_pad|> per merged patch of the resized image; pixel rows equal the
 * decode -> resize -> normalise -> patch pipeline; the image_dataset node
 * runs without allocating and shrinks its pixel rows for small images. Bad
 * inputs give one clear error each, naming the file: a corrupt or truncated
 * PNG, an image path that does not exist, a shard whose JSON names a missing
 * image, unsafe shard members (.., absolute, link), a truncated shard.
 * Shards are written here with libarchive. */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "checkpoint.h"
#include "graph.h"
#include "image.h"
#include "image_data.h"
#include "node.h"
#include "state.h"
#include "testlib.h"

static char dir[256];

static char *path_in(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static int read_all(const char *path, uint8_t *buf, size_t cap, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    *n = fread(buf, 1, cap, f);
    fclose(f);
    return 0;
}

static void make_png(const char *name, int64_t h, int64_t w, int seed) {
    uint8_t *px = rl_malloc((size_t)(h * w * 3));
    for (int64_t i = 0; i < h * w * 3; i++) px[i] = (uint8_t)((i * (7 + seed)) ^ (i >> 5) ^ (seed * 29));
    rl_error e = {0};
    CHECK_MSG(rl_png_write(path_in(name), px, h, w, &e) == 0, "%s", e.msg);
    rl_free(px);
}

typedef struct tar_member {
    const char *name;
    const void *data; /* NULL with link != NULL: a symlink */
    size_t n;
    const char *link;
} tar_member;

static void make_tar(const char *path, const tar_member *m, int count, int zstd) {
    struct archive *a = archive_write_new();
    if (zstd) archive_write_add_filter_zstd(a);
    archive_write_set_format_pax_restricted(a);
    CHECK(archive_write_open_filename(a, path) == ARCHIVE_OK);
    for (int i = 0; i < count; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        if (m[i].link) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].link);
            archive_entry_set_size(e, 0);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)m[i].n);
        }
        archive_entry_set_perm(e, 0644);
        CHECK(archive_write_header(a, e) == ARCHIVE_OK);
        if (m[i].data && m[i].n) CHECK(archive_write_data(a, m[i].data, m[i].n) == (la_ssize_t)m[i].n);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static rl_image_data *open_src(rl_image_source src, const char *path, rl_error *e) {
    rl_image_data_cfg c;
    rl_image_data_cfg_default(&c);
    c.source = src;
    c.path = path;
    c.shuffle = 0;
    rl_image_data *d = NULL;
    if (rl_image_data_open(&c, &d, e) < 0) return NULL;
    return d;
}

static int count_pads(const char *s) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, RL_IMAGE_PAD)); p += strlen(RL_IMAGE_PAD)) n++;
    return n;
}

/* The pixel rows of one PNG file through the documented pipeline. */
static int64_t expected_rows(const char *png, float *out) {
    rl_image8 im;
    rl_error e = {0};
    if (rl_png_read(png, &im, &e) < 0) return -1;
    int64_t oh, ow;
    rl_image_smart_size(im.h, im.w, 28, 3136, 50176, &oh, &ow, &e);
    float *a = rl_malloc(sizeof(float) * (size_t)(3 * im.h * im.w)), *b = rl_malloc(sizeof(float) * (size_t)(3 * oh * ow));
    rl_image_to_planar(im.rgb, im.h, im.w, a);
    rl_image_resize_bilinear(a, 3, im.h, im.w, b, oh, ow);
    rl_image_normalize(b, oh, ow, rl_image_clip_mean, rl_image_clip_std);
    rl_image_to_patches(b, 3, oh, ow, 14, 2, out, &e);
    rl_free(a);
    rl_free(b);
    rl_image8_free(&im);
    return (oh / 14) * (ow / 14);
}

typedef struct batch {
    uint8_t *p, *a, *s;
    float *px;
    int32_t grid[16], idx[8];
    int64_t rows;
    void *scratch;
    size_t wp, wa, ws;
} batch;

static int next_batch(rl_image_data *d, int64_t n, batch *b, rl_error *e) {
    int64_t maxp, dim;
    rl_image_data_widths(d, &b->wp, &b->wa, &b->ws);
    rl_image_data_patches(d, &maxp, &dim);
    b->p = rl_calloc((size_t)n, b->wp);
    b->a = rl_calloc((size_t)n, b->wa);
    b->s = rl_calloc((size_t)n, b->ws);
    b->px = rl_calloc((size_t)(n * maxp * dim), sizeof(float));
    b->scratch = rl_malloc(rl_image_data_scratch_bytes(d));
    return rl_image_data_next(d, n, b->p, b->a, b->s, b->px, b->grid, b->idx, &b->rows, b->scratch, e);
}

static void batch_free(batch *b) {
    rl_free(b->p);
    rl_free(b->a);
    rl_free(b->s);
    rl_free(b->px);
    rl_free(b->scratch);
}

static void test_jsonl(void) {
    make_png("a.png", 20, 30, 1);
    make_png("b.png", 112, 112, 2);
    mkdir(path_in("sub"), 0755);
    make_png("sub/c.png", 300, 200, 3);
    write_text(path_in("data.jsonl"),
               "{\"problem\": \"Q a?\", \"answer\": \"3\", \"image\": \"a.png\"}\n"
               "{\"problem\": \"Q b?\", \"answer\": [\"4\", \"four\"], \"image\": \"b.png\", \"solution\": \"S\"}\n"
               "{\"problem\": \"Q c?\", \"answer\": 5, \"image\": \"sub/c.png\"}\n");
    rl_error e = {0};
    rl_image_data *d = open_src(RL_IMG_JSONL, path_in("data.jsonl"), &e);
    CHECK_MSG(d != NULL, "%s", e.msg);
    if (!d) return;
    CHECK(rl_image_data_size(d) == 3);
    int64_t h, w;
    CHECK(rl_image_data_item_size(d, 0, &h, &w, &e) == 0 && h == 56 && w == 84); /* min_pixels scales it up */
    CHECK(rl_image_data_item_size(d, 2, &h, &w, &e) == 0 && h * w <= 50176 && h % 28 == 0 && w % 28 == 0);
    batch b;
    CHECK_MSG(next_batch(d, 3, &b, &e) == 0, "%s", e.msg);
    float *want = rl_malloc(sizeof(float) * 400 * 588);
    int64_t off = 0;
    const char *files[3] = {"a.png", "b.png", "sub/c.png"};
    for (int i = 0; i < 3; i++) {
        const char *p = (const char *)b.p + (size_t)i * b.wp;
        int64_t rows = expected_rows(path_in(files[i]), want);
        CHECK(b.grid[2 * i] * b.grid[2 * i + 1] == rows);
        CHECK(count_pads(p) == rows / 4);
        CHECK(strncmp(p, RL_VISION_START, strlen(RL_VISION_START)) == 0);
        const char *end = strstr(p, RL_VISION_END);
        CHECK(end && end[strlen(RL_VISION_END)] == 'Q');
        CHECK(memcmp(b.px + off * 588, want, sizeof(float) * (size_t)(rows * 588)) == 0);
        off += rows;
        CHECK(b.idx[i] == i);
    }
    CHECK(b.rows == off);
    CHECK(strcmp((char *)b.a + b.wa, "4\x1f" "four") == 0 && strcmp((char *)b.a + 2 * b.wa, "5") == 0);
    CHECK(strcmp((char *)b.s + b.ws, "S") == 0 && b.s[0] == 0);
    rl_free(want);
    batch_free(&b);
    rl_image_data_free(d);
}

static void test_shards(void) {
    uint8_t *pa = rl_malloc(1 << 20), *pb = rl_malloc(1 << 20);
    size_t na = 0, nb = 0;
    CHECK(read_all(path_in("a.png"), pa, 1 << 20, &na) == 0 && read_all(path_in("b.png"), pb, 1 << 20, &nb) == 0);
    const char *j0 = "{\"problem\": \"Q a?\", \"answer\": \"3\"}";
    const char *j1 = "{\"problem\": \"Q b?\", \"answer\": [\"4\", \"four\"], \"image\": \"pic.png\", \"solution\": \"S\"}";
    tar_member m[] = {
        {"s0.json", j0, strlen(j0), NULL}, {"s0.png", pa, na, NULL}, {"s0.txt", "ignored", 7, NULL},
        {"dir/s1.json", j1, strlen(j1), NULL}, {"dir/pic.png", pb, nb, NULL},
    };
    mkdir(path_in("shards"), 0755);
    make_tar(path_in("shards/000.tar"), m, 5, 0);
    make_tar(path_in("shards/001.tar.zst"), m, 5, 1);
    rl_error e = {0};
    const char *which[3] = {"shards/000.tar", "shards/001.tar.zst", "shards"};
    float *want = rl_malloc(sizeof(float) * 64 * 588);
    for (int k = 0; k < 3; k++) {
        rl_image_data *d = open_src(RL_IMG_SHARDS, path_in(which[k]), &e);
        CHECK_MSG(d != NULL, "%s: %s", which[k], e.msg);
        if (!d) continue;
        int64_t n = rl_image_data_size(d);
        CHECK(n == (k == 2 ? 4 : 2));
        batch b;
        CHECK_MSG(next_batch(d, n, &b, &e) == 0, "%s", e.msg);
        int64_t ra = expected_rows(path_in("a.png"), want);
        CHECK(memcmp(b.px, want, sizeof(float) * (size_t)(ra * 588)) == 0);
        int64_t rb = expected_rows(path_in("b.png"), want);
        CHECK(memcmp(b.px + ra * 588, want, sizeof(float) * (size_t)(rb * 588)) == 0);
        CHECK(count_pads((char *)b.p) == ra / 4 && count_pads((char *)b.p + b.wp) == rb / 4);
        CHECK(strcmp((char *)b.a + b.wa, "4\x1f" "four") == 0 && strcmp((char *)b.s + b.ws, "S") == 0);
        CHECK(b.idx[0] == 0 && b.idx[1] == 1 && (k < 2 || b.idx[3] == 3));
        batch_free(&b);
        rl_image_data_free(d);
    }
    rl_free(want);

    /* bad shards: one clear error each, naming the shard */
    struct {
        const char *file;
        tar_member m[2];
        int n;
        const char *expect;
    } bad[] = {
        {"missing.tar", {{"s1.json", j1, strlen(j1), NULL}}, 1, "pic.png"},
        {"nopng.tar", {{"s0.json", j0, strlen(j0), NULL}}, 1, "s0.png"},
        {"dotdot.tar", {{"../evil.json", j0, strlen(j0), NULL}}, 1, "unsafe"},
        {"abs.tar", {{"/tmp/evil.json", j0, strlen(j0), NULL}}, 1, "unsafe"},
        {"link.tar", {{"s0.json", j0, strlen(j0), NULL}, {"s0.png", NULL, 0, "/etc/passwd"}}, 2, "link"},
        {"badpng.tar", {{"s0.json", j0, strlen(j0), NULL}, {"s0.png", pa, na / 2, NULL}}, 2, "s0.png"},
        {"badjson.tar", {{"s0.json", "{\"problem\": ", 12, NULL}, {"s0.png", pa, na, NULL}}, 2, "invalid JSON"},
    };
    mkdir(path_in("bad"), 0755);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "bad/%s", bad[k].file);
        make_tar(path_in(name), bad[k].m, bad[k].n, 0);
        rl_image_data *d = open_src(RL_IMG_SHARDS, path_in(name), &e);
        CHECK_MSG(d == NULL && strstr(e.msg, bad[k].file) && strstr(e.msg, bad[k].expect), "%s: %s", bad[k].file,
                  d ? "opened" : e.msg);
        rl_image_data_free(d);
    }
    /* a truncated shard file */
    uint8_t *t = rl_malloc(1 << 20);
    size_t nt = 0;
    CHECK(read_all(path_in("shards/000.tar"), t, 1 << 20, &nt) == 0 && nt > 1200);
    FILE *f = fopen(path_in("bad/cut.tar"), "wb");
    if (f) {
        fwrite(t, 1, 1200, f);
        fclose(f);
    }
    rl_image_data *d = open_src(RL_IMG_SHARDS, path_in("bad/cut.tar"), &e);
    CHECK_MSG(d == NULL && strstr(e.msg, "cut.tar"), "%s", d ? "opened" : e.msg);
    rl_image_data_free(d);
    rl_free(t);
    rl_free(pa);
    rl_free(pb);
}

static void test_bad_jsonl(void) {
    rl_error e = {0};
    char line[1024];
    snprintf(line, sizeof line, "{\"problem\": \"Q\", \"answer\": \"1\", \"image\": \"%s\"}\n",
             rl_test_path("tests/ref/image/corrupt.png"));
    write_text(path_in("corrupt.jsonl"), line);
    rl_image_data *d = open_src(RL_IMG_JSONL, path_in("corrupt.jsonl"), &e);
    CHECK_MSG(d == NULL && strstr(e.msg, "corrupt.jsonl:1") && strstr(e.msg, "corrupt.png") && strstr(e.msg, "corrupt"),
              "%s", e.msg);
    rl_image_data_free(d);
    snprintf(line, sizeof line, "{\"problem\": \"Q\", \"answer\": \"1\", \"image\": \"%s\"}\n",
             rl_test_path("tests/ref/image/truncated.png"));
    write_text(path_in("trunc.jsonl"), line);
    d = open_src(RL_IMG_JSONL, path_in("trunc.jsonl"), &e);
    CHECK_MSG(d == NULL && strstr(e.msg, "truncated.png") && strstr(e.msg, "truncated"), "%s", e.msg);
    rl_image_data_free(d);
    write_text(path_in("missing.jsonl"), "{\"problem\": \"Q\", \"answer\": \"1\", \"image\": \"a.png\"}\n"
                                         "{\"problem\": \"Q\", \"answer\": \"1\", \"image\": \"nothere.png\"}\n");
    d = open_src(RL_IMG_JSONL, path_in("missing.jsonl"), &e);
    CHECK_MSG(d == NULL && strstr(e.msg, "missing.jsonl:2") && strstr(e.msg, "nothere.png"), "%s", e.msg);
    rl_image_data_free(d);
    write_text(path_in("noimage.jsonl"), "{\"problem\": \"Q\", \"answer\": \"1\"}\n");
    d = open_src(RL_IMG_JSONL, path_in("noimage.jsonl"), &e);
    CHECK_MSG(d == NULL && strstr(e.msg, "noimage.jsonl:1") && strstr(e.msg, "'image'"), "%s", e.msg);
    rl_image_data_free(d);
    d = open_src(RL_IMG_SHARDS, path_in("nothere"), &e);
    CHECK(d == NULL && strstr(e.msg, "nothere"));
}

static rl_node *add_node(rl_graph *g, const char *task, const char *path, int64_t batch, rl_error *e) {
    rl_opts o;
    rl_opts_init(&o);
    rl_opts_set_string(&o, "task", task);
    if (path) rl_opts_set_string(&o, "path", path);
    rl_opts_set_int(&o, "batch", batch);
    rl_opts_set_int(&o, "size", 20);
    rl_opts_set_bool(&o, "shuffle", 0);
    rl_node *n = rl_graph_add_named(g, "image_dataset", "img", "t.lua:1", NULL, &o, e);
    rl_opts_free(&o);
    return n;
}

static void test_node(void) {
    rl_error e = {0};
    rl_graph *g = rl_graph_new("img");
    rl_node *n = add_node(g, "shapes", NULL, 4, &e);
    CHECK_MSG(n != NULL, "%s", e.msg);
    if (n) {
        for (int p = 0; p < 6; p++) rl_graph_mark_output(g, n, p, &e);
        CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
        rl_run_ctx ctx = {0};
        CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
        uint64_t before = rl_alloc_count();
        CHECK_MSG(rl_graph_run(g, NULL, &ctx, &e) == 0, "%s", e.msg);
        CHECK(rl_alloc_count() == before);
        CHECK(n->out[3].shape.dim[0] == 4 * 64 && n->out[3].shape.dim[1] == 588);
        CHECK(rl_i32(&n->out[4])[0] == 8 && rl_i32(&n->out[4])[1] == 8);
        CHECK(count_pads((const char *)rl_u8(&n->out[0])) == 16);
        CHECK(rl_i32(&n->out[5])[0] == 4);
        /* save the cursor, run on, restore: the same batch again */
        rl_state *st = rl_state_new();
        CHECK(st && n->type->save_state(n, st, &e) == 0);
        CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
        int32_t first[4];
        memcpy(first, rl_i32(&n->out[5]), sizeof first);
        CHECK(n->type->load_state(n, st, &e) == 0);
        CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
        CHECK(memcmp(first, rl_i32(&n->out[5]), sizeof first) == 0);
        rl_state_free(st);
    }
    rl_graph_free(g);
    /* files of different sizes: the pixel rows shrink to what the batch holds */
    g = rl_graph_new("img2");
    n = add_node(g, "jsonl", path_in("data.jsonl"), 1, &e);
    CHECK_MSG(n != NULL, "%s", e.msg);
    if (n) {
        for (int p = 0; p < 6; p++) rl_graph_mark_output(g, n, p, &e);
        CHECK_MSG(rl_graph_compile(g, NULL, &e) == 0, "%s", e.msg);
        rl_run_ctx ctx = {0};
        CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
        CHECK(n->out[3].shape.dim[0] == 24); /* a.png: 56x84 -> 4x6 patches */
        CHECK(rl_graph_run(g, NULL, &ctx, &e) == 0);
        CHECK(n->out[3].shape.dim[0] == 64); /* b.png: 112x112 */
    }
    rl_graph_free(g);
    g = rl_graph_new("bad");
    CHECK(add_node(g, "jsonl", NULL, 1, &e) == NULL && strstr(e.msg, "path") && strstr(e.msg, "t.lua:1"));
    CHECK(add_node(g, "pictures", NULL, 1, &e) == NULL && strstr(e.msg, "task"));
    rl_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    snprintf(dir, sizeof dir, "/tmp/rlfr_test_image_data_%ld", (long)getpid());
    rl_error e = {0};
    if (rl_mkdirs(dir, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_jsonl();
    test_shards();
    test_bad_jsonl();
    test_node();
    rl_remove_tree(dir, &e);
    return rl_test_finish("test_image_data");
}
