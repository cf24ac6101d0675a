/* The vision encoder: a ViT in the manner of Qwen2-VL's vision tower
 * (docs/vision.md).
 *
 *   patch embedding   x = pixels · W_patch^T            (no bias, like the Conv3d)
 *   depth blocks      x = x + proj(attn(rope2d(qkv(LN1(x)))))
 *                     x = x + fc2(GELU(fc1(LN2(x))))
 *   patch merger      y = fc2(GELU(fc1(concat_{m×m}(LN_q(x)))))  -> [N/m², out_hidden]
 *
 * Attention is bidirectional within one image; position enters only through
 * the 2-D rotary embedding (row and column of each patch). GELU is the exact
 * erf form, LayerNorm eps 1e-6 by default.
 *
 * Patch layout (what the node's `pixels` input holds): the patches of all
 * images packed one image after another; inside an image, in Qwen2-VL's merge
 * order: merge cells row-major over the (h/m, w/m) grid, and inside each cell
 * its m×m patches row-major. Each patch is flattened channel-major
 * (c, y, x) into channels·p·p floats. So every m² consecutive rows form one
 * merged token, and the merged tokens of image b come out in row-major order
 * of its (h/m, w/m) grid: the splice into the policy is a copy of rows.
 * rl_vit_patchify builds this layout from a [channels, H, W] image.
 *
 * Parameters live in one rl_params set; forward and backward never allocate
 * (the caller passes three workspaces sized by rl_vit_ws_size). */
#ifndef RL_VIT_H
#define RL_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "params.h"
#include "value.h"

typedef struct rl_vit_config {
    int64_t patch;       /* p: patch side in pixels (default 14) */
    int64_t channels;    /* input channels (default 3) */
    int64_t width;       /* d: embedding width (embed_dim) */
    int64_t depth;       /* transformer blocks */
    int64_t heads;       /* attention heads; head_dim = d/heads, a multiple of 4 */
    int64_t mlp;         /* MLP hidden size (default 4d) */
    int64_t out_hidden;  /* merger output: the policy's hidden size */
    int64_t merge;       /* m: merge m×m neighbouring patches (default 2) */
    float eps;           /* LayerNorm epsilon (default 1e-6) */
    double rope_theta;   /* rotary base (default 10000) */
} rl_vit_config;

typedef struct rl_vit_block {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b;
    size_t ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} rl_vit_block;

typedef struct rl_vit {
    rl_vit_config cfg;
    rl_params *params;        /* owned by params_obj */
    rl_object *params_obj;
    size_t patch_w;
    rl_vit_block *blocks;     /* depth entries */
    size_t mln_w, mln_b, m1_w, m1_b, m2_w, m2_b;
} rl_vit;

/* Fills zero fields with defaults (patch 14, channels 3, mlp 4·width,
 * merge 2, eps 1e-6, theta 10000). */
void rl_vit_config_default(rl_vit_config *cfg);
/* One clear line naming the field if a size is out of range. */
int rl_vit_config_check(const rl_vit_config *cfg, rl_error *err);

/* Declares and initialises the parameters (torch defaults: Linear weights
 * U(±1/sqrt(fan_in)) from `seed`, zero biases, LayerNorm 1 / 0). */
rl_vit *rl_vit_new(const rl_vit_config *cfg, uint64_t seed, rl_error *err);
void rl_vit_free(rl_vit *v);
/* Wraps v in an rl_object of type "vit" (takes ownership; params exposed so
 * optimizer{params = vit} works). NULL on out of memory (v freed). */
rl_object *rl_vit_object(rl_vit *v);
rl_vit *rl_vit_from_object(const rl_object *o);

/* Checks a batch: grid [n_images, 2] holds (h, w) in patches per image, each
 * >= m and a multiple of the merge size m, and the patches add up to
 * n_patches. Sets *max_len (most patches of one image) and *n_merged
 * (n_patches / m²); either may be NULL. */
int rl_vit_check_grid(const rl_vit_config *cfg, const int32_t *grid, int64_t n_images, int64_t n_patches,
                      int64_t *max_len, int64_t *n_merged, rl_error *err);

/* Workspace bytes for up to n patches in up to n_images images, at most
 * max_len patches per image, `threads` threads: saved (forward -> backward),
 * forward scratch, backward scratch. Fails if the sizes overflow. */
typedef struct rl_vit_ws_bytes {
    size_t saved, fwd, bwd;
} rl_vit_ws_bytes;
int rl_vit_ws_size(const rl_vit_config *cfg, int64_t n, int64_t n_images, int64_t max_len, int threads,
                   rl_vit_ws_bytes *out, rl_error *err);

/* One batch: sizes at run time (<= the sizes the workspaces were made for). */
typedef struct rl_vit_run {
    int64_t n;          /* patches */
    int64_t n_images;
    int64_t max_len;    /* as planned (scratch stride); >= every image's patches */
    int threads;
    void *saved, *fwd, *bwd;
} rl_vit_run;

/* out [n/m², out_hidden] from pixels [n, channels·p·p]. grid must have passed
 * rl_vit_check_grid. */
void rl_vit_forward(const rl_vit *v, const rl_vit_run *r, const float *pixels, const int32_t *grid, float *out);
/* From dout [n/m², out_hidden], ACCUMULATES parameter gradients into grad
 * (laid out like params->data). Reads the saved workspace of the forward. */
void rl_vit_backward(const rl_vit *v, const rl_vit_run *r, const float *pixels, const float *dout, float *grad);

/* Patches of one image img [channels, H, W] (H = h·p, W = w·p, h and w
 * multiples of m) written to out [h·w, channels·p·p] in the layout above. */
int rl_vit_patchify(const rl_vit_config *cfg, const float *img, int64_t H, int64_t W, float *out, rl_error *err);

/* Files: dir/vision.safetensors (config also in its metadata) and
 * dir/vision_config.json, each written atomically. Loading checks every
 * tensor's name and shape; errors name the file and the tensor or key. */
int rl_vit_save(const rl_vit *v, const char *dir, rl_error *err);
rl_vit *rl_vit_load(const char *dir, rl_error *err);
int rl_vit_config_json(const rl_vit_config *cfg, char *buf, size_t cap);
int rl_vit_config_parse(const char *json, const char *what, rl_vit_config *cfg, rl_error *err);

#endif
