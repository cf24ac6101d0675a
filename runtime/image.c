/* PNG decoding/encoding (libpng) and the image transforms of image.h. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

void rl_image8_free(rl_image8 *im) {
    if (!im) return;
    rl_free(im->rgb);
    im->rgb = NULL;
    im->h = im->w = 0;
}

/* libpng reports errors through a callback that must not return: we keep its
 * message and longjmp back to the setjmp in the decoder (libpng's documented
 * protocol; only libpng frames are crossed, ours free their memory after the
 * jump). */
typedef struct png_ctx {
    const uint8_t *p;
    size_t n, off;
    char msg[200];
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void on_read(png_structp png, png_bytep out, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (len > c->n - c->off) png_error(png, "unexpected end of data");
    memcpy(out, c->p + c->off, len);
    c->off += len;
}

int rl_png_decode(const void *buf, size_t n, const char *name, rl_image8 *out, rl_error *err) {
    out->h = out->w = 0;
    out->rgb = NULL;
    if (n < 8 || png_sig_cmp((png_const_bytep)buf, 0, 8))
        return rl_fail(err, "%s: not a PNG file (bad signature)", name);
    png_ctx ctx = {.p = buf, .n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return rl_fail(err, "%s: out of memory", name);
    }
    uint8_t *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        rl_free(pix);
        rl_free(rows);
        return rl_fail(err, "%s: corrupt or truncated PNG (%s)", name, ctx.msg);
    }
    png_set_read_fn(png, &ctx, on_read);
    png_set_user_limits(png, RL_IMAGE_MAX_SIDE, RL_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if ((int64_t)w * (int64_t)h > RL_IMAGE_MAX_PIXELS) png_error(png, "image too large");
    /* Everything becomes 8-bit RGBA; we composite the alpha ourselves so the
     * arithmetic is exact and documented (over white, on the stored values). */
    if (depth == 16) png_set_scale_16(png);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_filler(png, 0xFF, PNG_FILLER_AFTER); /* no-op where alpha exists */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4) png_error(png, "unsupported pixel layout");
    pix = rl_malloc((size_t)w * h * 4);
    rows = rl_malloc(sizeof(png_bytep) * h);
    if (!pix || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pix + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    rl_free(rows);
    uint8_t *p = pix;
    size_t np = (size_t)w * h;
    for (size_t i = 0; i < np; i++) {
        unsigned a = p[4 * i + 3];
        for (int k = 0; k < 3; k++) {
            unsigned v = p[4 * i + k];
            p[3 * i + k] = (uint8_t)((v * a + 255u * (255u - a) + 127u) / 255u);
        }
    }
    out->rgb = p;
    out->h = h;
    out->w = w;
    return 0;
}

int rl_png_read(const char *path, rl_image8 *out, rl_error *err) {
    out->h = out->w = 0;
    out->rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return rl_fail(err, "%s: cannot open image: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            if (nc > ((size_t)1 << 31)) { rc = rl_fail(err, "%s: image file too large", path); break; }
            uint8_t *nb = rl_realloc(buf, nc);
            if (!nb) { rc = rl_fail(err, "%s: out of memory", path); break; }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = rl_fail(err, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc) rc = rl_png_decode(buf, n, path, out, err);
    rl_free(buf);
    return rc;
}

static int write_png_file(FILE *f, const uint8_t *rgb, int64_t h, int64_t w, char *msg, size_t cap) {
    png_ctx ctx = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        snprintf(msg, cap, "%s", ctx.msg);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int rl_png_write(const char *path, const uint8_t *rgb, int64_t h, int64_t w, rl_error *err) {
    if (h < 1 || w < 1 || h > RL_IMAGE_MAX_SIDE || w > RL_IMAGE_MAX_SIDE)
        return rl_fail(err, "%s: cannot write a %lldx%lld image", path, (long long)w, (long long)h);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rl_fail(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return rl_fail(err, "%s: cannot write: %s", path, strerror(errno));
    char msg[200];
    int rc = write_png_file(f, rgb, h, w, msg, sizeof msg);
    if (fclose(f) != 0 && rc == 0) {
        rc = -1;
        snprintf(msg, sizeof msg, "%s", strerror(errno));
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        snprintf(msg, sizeof msg, "%s", strerror(errno));
    }
    if (rc) {
        unlink(tmp);
        return rl_fail(err, "%s: cannot write PNG: %s", path, msg);
    }
    return 0;
}

int rl_image_smart_size(int64_t h, int64_t w, int64_t factor, int64_t min_pixels, int64_t max_pixels,
                        int64_t *oh, int64_t *ow, rl_error *err) {
    if (h < 1 || w < 1) return rl_fail(err, "image of size %lldx%lld is empty", (long long)w, (long long)h);
    if (factor < 1 || factor > 4096) return rl_fail(err, "resize factor %lld out of range", (long long)factor);
    if (max_pixels < factor * factor || min_pixels > max_pixels)
        return rl_fail(err, "pixel budget [%lld, %lld] cannot hold one %lldx%lld block", (long long)min_pixels,
                       (long long)max_pixels, (long long)factor, (long long)factor);
    double hd = (double)h, wd = (double)w, f = (double)factor;
    if ((hd > wd ? hd / wd : wd / hd) > 200.0)
        return rl_fail(err, "image of size %lldx%lld: aspect ratio above 200", (long long)w, (long long)h);
    /* nearbyint rounds half to even in the default mode, like Python's round(). */
    double hb = fmax(f, nearbyint(hd / f) * f), wb = fmax(f, nearbyint(wd / f) * f);
    if (hb * wb > (double)max_pixels) {
        double beta = sqrt(hd * wd / (double)max_pixels);
        hb = fmax(f, floor(hd / beta / f) * f);
        wb = fmax(f, floor(wd / beta / f) * f);
    } else if (hb * wb < (double)min_pixels) {
        double beta = sqrt((double)min_pixels / (hd * wd));
        hb = ceil(hd * beta / f) * f;
        wb = ceil(wd * beta / f) * f;
    }
    if (hb > RL_IMAGE_MAX_SIDE || wb > RL_IMAGE_MAX_SIDE)
        return rl_fail(err, "image of size %lldx%lld resizes beyond %d pixels a side", (long long)w, (long long)h,
                       RL_IMAGE_MAX_SIDE);
    *oh = (int64_t)hb;
    *ow = (int64_t)wb;
    return 0;
}

void rl_image_to_planar(const uint8_t *rgb, int64_t h, int64_t w, float *dst) {
    size_t np = (size_t)h * (size_t)w;
    for (size_t i = 0; i < np; i++)
        for (int k = 0; k < 3; k++) dst[(size_t)k * np + i] = (float)rgb[3 * i + k] * (1.0f / 255.0f);
}

/* Source index and weight along one axis (align_corners=False). */
static void axis_coord(int64_t o, int64_t in, int64_t out, int64_t *i0, int64_t *i1, float *lam) {
    float scale = (float)in / (float)out;
    float s = ((float)o + 0.5f) * scale - 0.5f;
    if (s < 0) s = 0;
    int64_t i = (int64_t)s;
    if (i > in - 1) i = in - 1;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *lam = s - (float)i;
}

void rl_image_resize_bilinear(const float *src, int64_t c, int64_t h, int64_t w, float *dst, int64_t oh,
                              int64_t ow) {
    if (oh == h && ow == w) {
        memcpy(dst, src, sizeof(float) * (size_t)(c * h * w));
        return;
    }
    for (int64_t y = 0; y < oh; y++) {
        int64_t y0, y1;
        float ly;
        axis_coord(y, h, oh, &y0, &y1, &ly);
        for (int64_t x = 0; x < ow; x++) {
            int64_t x0, x1;
            float lx;
            axis_coord(x, w, ow, &x0, &x1, &lx);
            for (int64_t k = 0; k < c; k++) {
                const float *s = src + k * h * w;
                float top = (1 - lx) * s[y0 * w + x0] + lx * s[y0 * w + x1];
                float bot = (1 - lx) * s[y1 * w + x0] + lx * s[y1 * w + x1];
                dst[(k * oh + y) * ow + x] = (1 - ly) * top + ly * bot;
            }
        }
    }
}

const float rl_image_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float rl_image_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

void rl_image_normalize(float *x, int64_t h, int64_t w, const float mean[3], const float std[3]) {
    size_t np = (size_t)h * (size_t)w;
    for (int k = 0; k < 3; k++) {
        float m = mean[k], inv = 1.0f / std[k];
        float *p = x + (size_t)k * np;
        for (size_t i = 0; i < np; i++) p[i] = (p[i] - m) * inv;
    }
}

int rl_image_to_patches(const float *img, int64_t c, int64_t h, int64_t w, int64_t patch, int64_t merge,
                        float *out, rl_error *err) {
    if (patch < 1 || merge < 1 || h % (patch * merge) || w % (patch * merge))
        return rl_fail(err, "image %lldx%lld is not a multiple of patch %lld x merge %lld", (long long)w,
                       (long long)h, (long long)patch, (long long)merge);
    int64_t bh = h / (patch * merge), bw = w / (patch * merge);
    float *o = out;
    for (int64_t by = 0; by < bh; by++)
        for (int64_t bx = 0; bx < bw; bx++)
            for (int64_t i = 0; i < merge; i++)
                for (int64_t j = 0; j < merge; j++) {
                    int64_t y0 = (by * merge + i) * patch, x0 = (bx * merge + j) * patch;
                    for (int64_t k = 0; k < c; k++)
                        for (int64_t py = 0; py < patch; py++) {
                            memcpy(o, img + (k * h + y0 + py) * w + x0, sizeof(float) * (size_t)patch);
                            o += patch;
                        }
                }
    return 0;
}

int64_t rl_image_tokens(int64_t h, int64_t w, int64_t patch, int64_t merge) {
    int64_t f = patch * merge;
    return f > 0 ? (h / f) * (w / f) : 0;
}
