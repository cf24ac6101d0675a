/* vision_encoder: images -> embeddings for the policy's <|image_pad|> slots
 * (models/vit.h, docs/vision.md).
 *
 * Input `pixels` holds the patches of every image of the batch packed one
 * image after another, in Qwen2-VL's merge order (rl_vit_patchify), so images
 * of different sizes share one tensor without padding; `grid` gives each
 * image's (h, w) in patches. Output `embeds` holds the merged tokens of all
 * images in order (image 0's h·w/m² rows, then image 1's, ...) and `counts`
 * how many belong to each image: the splice into the policy copies row k of
 * `embeds` into the k-th <|image_pad|> position of the batch.
 *
 * Trainable when an optimizer owns the vit's parameters (backward then
 * accumulates into them); frozen otherwise (no backward, no saved
 * activations). The pixels never receive a gradient. */
#include <omp.h>
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "vit.h"

enum { IN_PIXELS, IN_GRID };
enum { OUT_EMBEDS, OUT_COUNTS };

static const rl_port_spec vis_inputs[] = {
    {"pixels", RL_F32, 2, RL_PORT_NO_GRAD, 0,
     "[N, channels*p*p]: patches of all images packed, each image in merge order (docs/vision.md)"},
    {"grid", RL_I32, 2, RL_PORT_NO_GRAD | RL_PORT_NOT_IN_BACKWARD, 0,
     "[B, 2]: (h, w) of each image in patches, multiples of the merge size; sum of h*w = N"},
};
static const rl_port_spec vis_outputs[] = {
    {"embeds", RL_F32, 2, RL_PORT_NOT_IN_BACKWARD, 0,
     "[N/m^2, out_hidden]: merged tokens of image 0, then image 1, ... (row-major per image)"},
    {"counts", RL_I32, 1, RL_PORT_NOT_IN_BACKWARD, 0, "[B]: merged tokens of each image (h*w/m^2)"},
};
static const rl_option_spec vis_options[] = {
    {"net", RL_VAL_OBJECT, NULL, "the vision encoder (rlfr.new_vit / rlfr.load_vit)", "vit"},
    {"max_patches", RL_VAL_INT, "0",
     "most patches one image may have (sizes the attention scratch); 0: all rows of 'pixels'", NULL},
};

typedef struct vis_state {
    rl_vit *v;
    rl_vit_run run;   /* planned capacity; n / n_images set per batch */
    int64_t cap_n, cap_b, cap_len;
    int ws_saved, ws_fwd, ws_bwd;
    int ran;          /* a forward filled the saved workspace */
} vis_state;

static int vis_init(rl_node *n, rl_error *err) {
    vis_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->v = rl_vit_from_object(rl_node_opt_object(n, "net"));
    if (!s->v) return rl_node_fail(n, err, "option 'net' is not a vision encoder (vit)");
    if (rl_node_opt_int(n, "max_patches") < 0) return rl_node_fail(n, err, "option 'max_patches' must be >= 0");
    return rl_node_use_params(n, s->v->params, err);
}

static int64_t patch_floats(const rl_vit_config *c) { return c->channels * c->patch * c->patch; }

static int vis_infer(rl_node *n, rl_error *err) {
    vis_state *s = n->state;
    const rl_vit_config *c = &s->v->cfg;
    const rl_shape *px = &n->in[IN_PIXELS].shape, *gr = &n->in[IN_GRID].shape;
    char buf[64];
    if (px->dim[1] != patch_floats(c))
        return rl_node_fail(n, err, "input 'pixels' has shape %s: rows must hold channels*p*p = %lld*%lld*%lld = %lld "
                            "floats", rl_shape_str(px, buf, sizeof buf), (long long)c->channels, (long long)c->patch,
                            (long long)c->patch, (long long)patch_floats(c));
    if (gr->dim[1] != 2)
        return rl_node_fail(n, err, "input 'grid' has shape %s, expected [B, 2] (h, w per image)",
                            rl_shape_str(gr, buf, sizeof buf));
    const int64_t N = px->dim[0], B = gr->dim[0], mm = c->merge * c->merge;
    int64_t len = rl_node_opt_int(n, "max_patches");
    if (len == 0 || len > N) len = N;
    s->cap_n = N;
    s->cap_b = B;
    s->cap_len = len;
    s->run = (rl_vit_run){N, B, len, omp_get_max_threads(), NULL, NULL, NULL};
    rl_vit_ws_bytes wb;
    rl_error e = {0};
    if (rl_vit_ws_size(c, N, B, len, s->run.threads, &wb, &e)) return rl_node_fail(n, err, "%s", e.msg);
    n->n_ws = 0;
    s->ws_bwd = -1;
    /* Without a backward the activations only live through the forward. */
    rl_ws_kind keep = n->needs_backward ? RL_WS_SAVED : RL_WS_SCRATCH_FWD;
    if ((s->ws_saved = rl_node_request(n, keep, wb.saved, err)) < 0 ||
        (s->ws_fwd = rl_node_request(n, RL_WS_SCRATCH_FWD, wb.fwd, err)) < 0)
        return -1;
    if (n->needs_backward && (s->ws_bwd = rl_node_request(n, RL_WS_SCRATCH_BWD, wb.bwd, err)) < 0) return -1;
    n->out[OUT_EMBEDS].dtype = RL_F32;
    n->out[OUT_EMBEDS].shape = rl_shape2(N / mm, c->out_hidden);
    n->out[OUT_COUNTS].dtype = RL_I32;
    n->out[OUT_COUNTS].shape = rl_shape1(B);
    return 0;
}

static int vis_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    vis_state *s = n->state;
    const rl_vit_config *c = &s->v->cfg;
    if (!s->v->params->data) return rl_node_fail(n, err, "parameter set '%s' is not finalised", s->v->params->name);
    const rl_shape *px = &n->in[IN_PIXELS].shape, *gr = &n->in[IN_GRID].shape;
    const int64_t N = px->dim[0], B = gr->dim[0], mm = c->merge * c->merge;
    if (px->dim[1] != patch_floats(c) || gr->dim[1] != 2)
        return rl_node_fail(n, err, "inputs 'pixels' / 'grid' changed their row size at run time");
    if (N > s->cap_n || B > s->cap_b)
        return rl_node_fail(n, err, "batch of %lld patches in %lld images exceeds the planned %lld patches in %lld images",
                            (long long)N, (long long)B, (long long)s->cap_n, (long long)s->cap_b);
    const int32_t *grid = rl_i32(&n->in[IN_GRID]);
    int64_t len = 0, nm = 0;
    rl_error e = {0};
    if (rl_vit_check_grid(c, grid, B, N, &len, &nm, &e)) return rl_node_fail(n, err, "%s", e.msg);
    if (len > s->cap_len)
        return rl_node_fail(n, err, "an image has %lld patches, more than max_patches = %lld", (long long)len,
                            (long long)s->cap_len);
    s->run.n = N;
    s->run.n_images = B;
    s->run.saved = n->ws[s->ws_saved].data;
    s->run.fwd = n->ws[s->ws_fwd].data;
    n->out[OUT_EMBEDS].shape = rl_shape2(nm, c->out_hidden);
    n->out[OUT_COUNTS].shape = rl_shape1(B);
    int32_t *counts = rl_i32(&n->out[OUT_COUNTS]);
    for (int64_t b = 0; b < B; b++) counts[b] = (int32_t)((int64_t)grid[2 * b] * grid[2 * b + 1] / mm);
    if (N > 0) rl_vit_forward(s->v, &s->run, rl_f32(&n->in[IN_PIXELS]), grid, rl_f32(&n->out[OUT_EMBEDS]));
    s->ran = 1;
    return 0;
}

static int vis_backward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    vis_state *s = n->state;
    /* Frozen (no optimizer owns the set) or no gradient arriving: nothing to do. */
    if (!s->v->params->trainable || !n->grad_out[OUT_EMBEDS].data || s->run.n == 0) return 0;
    if (!s->ran || s->ws_bwd < 0) return rl_node_fail(n, err, "backward without a forward");
    s->run.bwd = n->ws[s->ws_bwd].data;
    rl_vit_backward(s->v, &s->run, rl_f32(&n->in[IN_PIXELS]), rl_f32(&n->grad_out[OUT_EMBEDS]), s->v->params->grad);
    return 0;
}

static void vis_destroy(rl_node *n) { rl_free(n->state); }

const rl_node_type rl_node_vision_encoder = {
    .name = "vision_encoder",
    .doc = "ViT (Qwen2-VL style): packed image patches -> merged embeddings for the policy's image slots",
    .inputs = vis_inputs,
    .n_inputs = 2,
    .outputs = vis_outputs,
    .n_outputs = 2,
    .options = vis_options,
    .n_options = 2,
    .init = vis_init,
    .infer = vis_infer,
    .forward = vis_forward,
    .backward = vis_backward,
    .destroy = vis_destroy,
};
