/* Images for the multimodal pipeline (docs/images.md): PNG decoding and
 * encoding with libpng, Qwen2-VL-style "smart resize" to a multiple of the
 * patch grid, bilinear resampling, CLIP normalisation and packing into the
 * patch rows the vision encoder reads.
 *
 * Two pixel forms:
 *  - rl_image8: 8-bit RGB, interleaved [H, W, 3] (what PNG files hold; data
 *    sets keep their images in this form, 4x smaller than floats);
 *  - planar floats [3, H, W] (what resizing, normalising and patching use).
 * Only decoding allocates; resizing, normalising, patching and drawing write
 * into caller buffers, so a node can run them in its forward. */
#ifndef RL_IMAGE_H
#define RL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Images larger than this many pixels (either side above 16384) are refused
 * before decoding: a corrupt or hostile header cannot make us allocate GBs. */
#define RL_IMAGE_MAX_SIDE 16384
#define RL_IMAGE_MAX_PIXELS (64ll << 20)

typedef struct rl_image8 {
    int64_t h, w;
    uint8_t *rgb;   /* [h, w, 3], owned (rl_malloc) */
} rl_image8;

void rl_image8_free(rl_image8 *im);

/* Decoding: grayscale (+alpha), palette (+tRNS), RGB(A), 1..16-bit PNGs all
 * come out as 8-bit RGB. Alpha is composited over white (a transparent pixel
 * is background, as a viewer shows it); 16-bit samples are rounded to 8 bits.
 * `name` is used in error messages ("img.png: truncated PNG (...)"). */
int rl_png_decode(const void *buf, size_t n, const char *name, rl_image8 *out, rl_error *err);
int rl_png_read(const char *path, rl_image8 *out, rl_error *err);
/* Writes an 8-bit RGB PNG atomically (temporary name, then rename). */
int rl_png_write(const char *path, const uint8_t *rgb, int64_t h, int64_t w, rl_error *err);

/* Qwen2-VL's smart_resize: the target size (oh, ow), both multiples of
 * `factor` (= patch * merge), close to (h, w) in aspect ratio, with
 * min_pixels <= oh*ow <= max_pixels:
 *   oh = max(factor, round(h / factor) * factor), same for ow (round half to even);
 *   if oh*ow > max_pixels: b = sqrt(h*w / max_pixels),
 *       oh = max(factor, floor(h / b / factor) * factor), same for ow;
 *   else if oh*ow < min_pixels: b = sqrt(min_pixels / (h*w)),
 *       oh = ceil(h * b / factor) * factor, same for ow.
 * Fails on an aspect ratio above 200 (as Qwen2-VL) or max_pixels < factor^2. */
int rl_image_smart_size(int64_t h, int64_t w, int64_t factor, int64_t min_pixels, int64_t max_pixels,
                        int64_t *oh, int64_t *ow, rl_error *err);

/* 8-bit RGB [h, w, 3] -> planar floats [3, h, w] in [0, 1] (x / 255). */
void rl_image_to_planar(const uint8_t *rgb, int64_t h, int64_t w, float *dst);

/* Bilinear resampling of planar [c, h, w] to [c, oh, ow], with the
 * convention of torch.nn.functional.interpolate(mode="bilinear",
 * align_corners=False, antialias=False): output pixel centre x maps to source
 * coordinate (x + 0.5) * w / ow - 0.5, clamped at 0 below; neighbours clamp
 * at the last row/column. Equal sizes copy. */
void rl_image_resize_bilinear(const float *src, int64_t c, int64_t h, int64_t w, float *dst, int64_t oh,
                              int64_t ow);

/* The CLIP statistics Qwen2-VL's processor uses (on values in [0, 1]). */
extern const float rl_image_clip_mean[3];
extern const float rl_image_clip_std[3];
/* In place: x[ch] = (x[ch] - mean[ch]) / std[ch] over planar [3, h, w]. */
void rl_image_normalize(float *x, int64_t h, int64_t w, const float mean[3], const float std[3]);

/* Patch packing (Qwen2-VL's order; docs/images.md). The image [c, h, w] with
 * h, w multiples of patch*merge gives a grid of gh = h/patch by gw = w/patch
 * patches, written as rows of c*patch*patch floats ordered (channel, y, x)
 * within the patch. Rows go block by block over the merge x merge blocks in
 * row-major order, and within a block row-major (for merge 2: top-left,
 * top-right, bottom-left, bottom-right), so the merger's 2x2 groups are
 * merge^2 consecutive rows. Patch row r of block (by, bx), offset (i, j)
 * covers pixels y in [(by*merge+i)*patch, +patch), x likewise with (bx, j).
 * out holds gh*gw*c*patch*patch floats. Fails if the sizes do not divide. */
int rl_image_to_patches(const float *img, int64_t c, int64_t h, int64_t w, int64_t patch, int64_t merge,
                        float *out, rl_error *err);

/* Number of merged tokens (one <|image_pad|> each) of an h x w image:
 * (h / (patch*merge)) * (w / (patch*merge)). */
int64_t rl_image_tokens(int64_t h, int64_t w, int64_t patch, int64_t merge);

#endif
