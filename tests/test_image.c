/* Images: PNG decoding of every colour type against the pixels the fixture
 * script encoded, a libpng round trip, bilinear resizing and CLIP
 * normalisation against PyTorch, Qwen2-VL's patch order and smart_resize, and
 * one clear error for corrupt, truncated, missing and non-PNG files. The
 * patch order is also checked against the vision encoder's rl_vit_patchify.
 * References: tests/gen_image_ref.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "image.h"
#include "safetensors.h"
#include "testlib.h"
#include "vit.h"

static rl_st_file *ref;

static void test_decode_fixtures(void) {
    static const char *names[] = {"rgb8", "gray8", "gray1", "palette", "rgba8", "rgb16", "graya16"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[512], tname[64];
        snprintf(path, sizeof path, "tests/ref/image/%s.png", names[k]);
        snprintf(tname, sizeof tname, "decoded.%s", names[k]);
        rl_image8 im;
        rl_error e = {0};
        int rc = rl_png_read(rl_test_path(path), &im, &e);
        CHECK_MSG(rc == 0, "%s: %s", names[k], e.msg);
        const rl_st_info *t = rl_st_find(ref, tname);
        CHECK(t != NULL);
        if (rc || !t) continue;
        CHECK_MSG(t->shape.dim[0] == im.h && t->shape.dim[1] == im.w, "%s: size %lldx%lld", names[k], (long long)im.w,
                  (long long)im.h);
        if (t->shape.dim[0] == im.h && t->shape.dim[1] == im.w)
            CHECK_MSG(memcmp(t->data, im.rgb, (size_t)(im.h * im.w * 3)) == 0, "%s: pixels differ", names[k]);
        rl_image8_free(&im);
    }
}

static void test_roundtrip(void) {
    int64_t h = 7, w = 13;
    uint8_t px[7 * 13 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37 + (i >> 3) * 11);
    char path[256];
    snprintf(path, sizeof path, "/tmp/rlfr_test_image_%ld.png", (long)getpid());
    rl_error e = {0};
    CHECK_MSG(rl_png_write(path, px, h, w, &e) == 0, "%s", e.msg);
    rl_image8 im;
    CHECK_MSG(rl_png_read(path, &im, &e) == 0, "%s", e.msg);
    CHECK(im.h == h && im.w == w && im.rgb && memcmp(im.rgb, px, sizeof px) == 0);
    rl_image8_free(&im);
    unlink(path);
    /* bad sizes are refused, not written */
    CHECK(rl_png_write(path, px, 0, w, &e) < 0 && strstr(e.msg, path));
    CHECK(access(path, F_OK) != 0);
}

static void test_resize(void) {
    const rl_st_info *src8 = rl_st_find(ref, "decoded.rgb8");
    CHECK(src8 != NULL);
    if (!src8) return;
    int64_t h = src8->shape.dim[0], w = src8->shape.dim[1];
    float planar[3 * 7 * 5], out[3 * 16 * 16];
    rl_image_to_planar(src8->data, h, w, planar);
    CHECK(fabsf(planar[0] - ((const uint8_t *)src8->data)[0] / 255.0f) < 1e-7f);
    static const int sizes[][2] = {{10, 14}, {3, 4}, {5, 7}, {12, 9}, {2, 13}};
    for (size_t k = 0; k < 5; k++) {
        int oh = sizes[k][0], ow = sizes[k][1];
        char name[64];
        snprintf(name, sizeof name, "resize.%dx%d", oh, ow);
        rl_image_resize_bilinear(planar, 3, h, w, out, oh, ow);
        float want[3 * 16 * 16];
        rl_error e = {0};
        rl_shape s = rl_shape3(3, oh, ow);
        CHECK_MSG(rl_st_read_f32_shape(ref, name, &s, want, &e) == 0, "%s", e.msg);
        double worst = 0;
        for (int i = 0; i < 3 * oh * ow; i++) worst = fmax(worst, fabs((double)out[i] - want[i]));
        CHECK_MSG(worst < 2e-6, "%s: max abs error %g vs torch", name, worst);
    }
    /* CLIP normalisation of the 10x14 resize */
    rl_image_resize_bilinear(planar, 3, h, w, out, 10, 14);
    rl_image_normalize(out, 10, 14, rl_image_clip_mean, rl_image_clip_std);
    float want[3 * 10 * 14];
    rl_error e = {0};
    rl_shape s = rl_shape3(3, 10, 14);
    CHECK_MSG(rl_st_read_f32_shape(ref, "normalized.10x14", &s, want, &e) == 0, "%s", e.msg);
    double worst = 0;
    for (int i = 0; i < 3 * 10 * 14; i++) worst = fmax(worst, fabs((double)out[i] - want[i]));
    CHECK_MSG(worst < 1e-5, "normalized: max abs error %g vs torch", worst);
}

static void test_patches(void) {
    float img[3 * 8 * 12], want[24 * 12], got[24 * 12];
    rl_error e = {0};
    rl_shape si = rl_shape3(3, 8, 12), so = rl_shape2(24, 12);
    CHECK(rl_st_read_f32_shape(ref, "patch.input", &si, img, &e) == 0);
    CHECK(rl_st_read_f32_shape(ref, "patch.output", &so, want, &e) == 0);
    CHECK_MSG(rl_image_to_patches(img, 3, 8, 12, 2, 2, got, &e) == 0, "%s", e.msg);
    CHECK(memcmp(got, want, sizeof got) == 0);
    /* row 1 is the top-right patch of the first 2x2 block: pixels (0..1, 2..3) */
    CHECK(got[12 + 0] == img[0 * 12 + 2] && got[12 + 1] == img[0 * 12 + 3] && got[12 + 2] == img[1 * 12 + 2]);
    CHECK(rl_image_to_patches(img, 3, 8, 10, 2, 2, got, &e) < 0 && strstr(e.msg, "multiple"));
    /* the vision encoder's own patchify agrees: image_dataset feeds it directly */
    rl_vit_config vc = {0};
    vc.patch = 2, vc.merge = 2, vc.channels = 3;
    float vit_rows[24 * 12];
    CHECK(rl_vit_patchify(&vc, img, 8, 12, vit_rows, &e) == 0 && memcmp(vit_rows, want, sizeof want) == 0);
    CHECK(rl_image_tokens(112, 224, 14, 2) == 32);
}

static void test_smart_size(void) {
    int32_t cases[10][5], outs[10][2];
    rl_error e = {0};
    rl_shape sc = rl_shape2(10, 5), so = rl_shape2(10, 2);
    const rl_st_info *ci = rl_st_find(ref, "smart.cases"), *oi = rl_st_find(ref, "smart.out");
    CHECK(ci && oi && rl_shape_equal(&ci->shape, &sc) && rl_shape_equal(&oi->shape, &so));
    if (!ci || !oi) return;
    memcpy(cases, ci->data, sizeof cases);
    memcpy(outs, oi->data, sizeof outs);
    for (int k = 0; k < 10; k++) {
        int64_t oh = 0, ow = 0;
        int rc = rl_image_smart_size(cases[k][0], cases[k][1], cases[k][2], cases[k][3], cases[k][4], &oh, &ow, &e);
        CHECK_MSG(rc == 0 && oh == outs[k][0] && ow == outs[k][1], "case %d (%dx%d): got %lldx%lld want %dx%d: %s", k,
                  cases[k][0], cases[k][1], (long long)oh, (long long)ow, outs[k][0], outs[k][1], rc ? e.msg : "");
    }
    int64_t oh, ow;
    CHECK(rl_image_smart_size(10, 2100, 28, 3136, 50176, &oh, &ow, &e) < 0 && strstr(e.msg, "aspect"));
    CHECK(rl_image_smart_size(0, 10, 28, 3136, 50176, &oh, &ow, &e) < 0);
    CHECK(rl_image_smart_size(100, 100, 28, 3136, 100, &oh, &ow, &e) < 0);
}

static void test_bad_files(void) {
    rl_image8 im;
    rl_error e = {0};
    const char *p = rl_test_path("tests/ref/image/corrupt.png");
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    CHECK(rl_png_read(path, &im, &e) < 0 && strstr(e.msg, path) && strstr(e.msg, "corrupt") && im.rgb == NULL);
    snprintf(path, sizeof path, "%s", rl_test_path("tests/ref/image/truncated.png"));
    CHECK(rl_png_read(path, &im, &e) < 0 && strstr(e.msg, path) && strstr(e.msg, "truncated"));
    CHECK(rl_png_read("/nonexistent/x.png", &im, &e) < 0 && strstr(e.msg, "/nonexistent/x.png"));
    snprintf(path, sizeof path, "%s", rl_test_path("tests/gen_image_ref.py"));
    CHECK(rl_png_read(path, &im, &e) < 0 && strstr(e.msg, "not a PNG"));
    /* every prefix of a valid file fails cleanly (no crash, no leak under ASan) */
    FILE *f = fopen(rl_test_path("tests/ref/image/palette.png"), "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(n > 50);
    int ok = 1;
    for (size_t k = 0; k < n; k++)
        if (rl_png_decode(buf, k, "prefix", &im, &e) == 0) ok = 0, rl_image8_free(&im);
    CHECK(ok);
    CHECK(rl_png_decode(buf, n, "whole", &im, &e) == 0);
    rl_image8_free(&im);
    /* a header claiming a huge image is refused before any allocation */
    uint8_t big[sizeof buf];
    memcpy(big, buf, n);
    big[16] = 0x7f; /* width's top byte */
    CHECK(rl_png_decode(big, n, "huge.png", &im, &e) < 0 && strstr(e.msg, "huge.png"));
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    rl_error e = {0};
    if (rl_st_open(rl_test_path("tests/ref/image_ref.safetensors"), &ref, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_decode_fixtures();
    test_roundtrip();
    test_resize();
    test_patches();
    test_smart_size();
    test_bad_files();
    rl_st_close(ref);
    return rl_test_finish("test_image");
}
