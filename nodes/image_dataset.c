/* image_dataset: batches of image questions (prompt with image placeholders,
 * gold answer, expert solution) and their images as packed patch rows for the
 * vision encoder, from the shapes task, a JSONL file or WebDataset shards.
 * See runtime/image_data.h and docs/images.md. */
#include <string.h>

#include "alloc.h"
#include "image_data.h"
#include "node.h"
#include "state.h"

static const rl_port_spec imd_outputs[] = {
    {"prompt", RL_U8, 2, 0, 0,
     "u8 [batch, L]: <|vision_start|>, one <|image_pad|> per merged patch, <|vision_end|>, then the question"},
    {"answer", RL_U8, 2, 0, 0, "gold answers u8 [batch, L]; alternatives joined by byte 0x1f"},
    {"solution", RL_U8, 2, 0, 0, "expert solutions u8 [batch, L] (<think>..</think><answer>..</answer>; empty when absent)"},
    {"pixels", RL_F32, 2, 0, 0,
     "f32 [patches, 3*patch*patch]: each image's patches in merge order, images one after another"},
    {"grid", RL_I32, 2, 0, 0, "i32 [batch, 2]: each image's (rows, columns) of patches"},
    {"index", RL_I32, 1, 0, 0, "each item's index in its source [batch]"},
};

static const rl_option_spec imd_options[] = {
    {"task", RL_VAL_STRING, "shapes", "\"shapes\" (procedural), \"jsonl\" (records with image paths) or \"shards\" (WebDataset tar)", NULL},
    {"path", RL_VAL_STRING, "", "JSONL file, or a .tar/.tar.zst shard or a directory of shards", NULL},
    {"split", RL_VAL_STRING, "train", "shapes: \"train\" or \"test\" (disjoint by construction)", NULL},
    {"batch", RL_VAL_INT, "8", "items per forward", NULL},
    {"seed", RL_VAL_INT, "0", "shuffling seed: epoch e uses the permutation of (seed, e)", NULL},
    {"shuffle", RL_VAL_BOOL, "true", "shuffle each epoch (false: source order)", NULL},
    {"size", RL_VAL_INT, "0", "shapes: items in the list (0 = 10000 train, 500 test)", NULL},
    {"patch", RL_VAL_INT, "14", "the vision encoder's patch side (pixels)", NULL},
    {"merge", RL_VAL_INT, "2", "the encoder's merge size: one image token per merge x merge patches", NULL},
    {"min_pixels", RL_VAL_INT, "3136", "smart resize: fewest pixels of a resized image", NULL},
    {"max_pixels", RL_VAL_INT, "50176", "smart resize: most pixels of a resized image", NULL},
    {"normalize", RL_VAL_BOOL, "true", "CLIP mean/std normalisation (false: values in [0, 1])", NULL},
    {"width", RL_VAL_INT, "112", "shapes: canvas width", NULL},
    {"height", RL_VAL_INT, "112", "shapes: canvas height", NULL},
    {"min_shapes", RL_VAL_INT, "2", "shapes: fewest shapes per image", NULL},
    {"max_shapes", RL_VAL_INT, "6", "shapes: most shapes per image", NULL},
    {"kinds", RL_VAL_INT, "4", "shapes: 3 (circle, square, triangle) or 4 (+ star)", NULL},
    {"test_percent", RL_VAL_INT, "10", "shapes: share of scenes that belong to the test split", NULL},
    {"task_seed", RL_VAL_INT, "0", "shapes: seed of the scenes' content (not of the split rule)", NULL},
    {"max_prompt_bytes", RL_VAL_INT, "0", "question limit without placeholders (0 = longest; records above are skipped)", NULL},
    {"max_answer_bytes", RL_VAL_INT, "0", "answer row limit (0 = longest)", NULL},
    {"max_solution_bytes", RL_VAL_INT, "0", "solution row limit (0 = longest)", NULL},
};
#define N_OPTIONS ((int)(sizeof imd_options / sizeof imd_options[0]))

typedef struct imd_state {
    rl_image_data *d;
    int64_t batch;
    int ws;
} imd_state;

static int opt_range(const rl_node *n, const char *key, int64_t lo, int64_t hi, int64_t *out, rl_error *err) {
    int64_t v = rl_node_opt_int(n, key);
    if (v < lo || v > hi)
        return rl_node_fail(n, err, "option '%s' = %lld must be in [%lld, %lld]", key, (long long)v, (long long)lo,
                            (long long)hi);
    *out = v;
    return 0;
}

static int imd_init(rl_node *n, rl_error *err) {
    rl_image_data_cfg c;
    rl_image_data_cfg_default(&c);
    const char *task = rl_node_opt_string(n, "task"), *split = rl_node_opt_string(n, "split");
    if (strcmp(task, "shapes") == 0) c.source = RL_IMG_SHAPES;
    else if (strcmp(task, "jsonl") == 0) c.source = RL_IMG_JSONL;
    else if (strcmp(task, "shards") == 0) c.source = RL_IMG_SHARDS;
    else return rl_node_fail(n, err, "option 'task' = '%s': expected \"shapes\", \"jsonl\" or \"shards\"", task);
    if (strcmp(split, "train") == 0) c.split = RL_SPLIT_TRAIN;
    else if (strcmp(split, "test") == 0) c.split = RL_SPLIT_TEST;
    else return rl_node_fail(n, err, "option 'split' = '%s': expected \"train\" or \"test\"", split);
    c.path = rl_node_opt_string(n, "path");
    if (c.source != RL_IMG_SHAPES && !c.path[0]) return rl_node_fail(n, err, "task \"%s\" needs a 'path'", task);
    int64_t batch = 0, v = 0;
    if (opt_range(n, "batch", 1, 1 << 16, &batch, err) < 0) return -1;
    c.seed = (uint64_t)rl_node_opt_int(n, "seed");
    c.shuffle = rl_node_opt_bool(n, "shuffle");
    c.normalize = rl_node_opt_bool(n, "normalize");
    if (opt_range(n, "size", 0, INT32_MAX, &c.size, err) < 0 || opt_range(n, "patch", 1, 64, &c.patch, err) < 0 ||
        opt_range(n, "merge", 1, 8, &c.merge, err) < 0 ||
        opt_range(n, "min_pixels", 0, 1ll << 26, &c.min_pixels, err) < 0 ||
        opt_range(n, "max_pixels", 1, 1ll << 26, &c.max_pixels, err) < 0)
        return -1;
    if (opt_range(n, "width", 32, 1024, &v, err) < 0) return -1;
    c.shapes.width = (int)v;
    if (opt_range(n, "height", 32, 1024, &v, err) < 0) return -1;
    c.shapes.height = (int)v;
    if (opt_range(n, "min_shapes", 1, RL_SHAPES_MAX, &v, err) < 0) return -1;
    c.shapes.min_shapes = (int)v;
    if (opt_range(n, "max_shapes", 1, RL_SHAPES_MAX, &v, err) < 0) return -1;
    c.shapes.max_shapes = (int)v;
    if (opt_range(n, "kinds", 3, 4, &v, err) < 0) return -1;
    c.shapes.kinds = (int)v;
    if (opt_range(n, "test_percent", 1, 50, &v, err) < 0) return -1;
    c.shapes.test_percent = (int)v;
    c.shapes.seed = (uint64_t)rl_node_opt_int(n, "task_seed");
    int64_t mp = 0, ma = 0, ms = 0;
    if (opt_range(n, "max_prompt_bytes", 0, 1 << 24, &mp, err) < 0 ||
        opt_range(n, "max_answer_bytes", 0, 1 << 24, &ma, err) < 0 ||
        opt_range(n, "max_solution_bytes", 0, 1 << 24, &ms, err) < 0)
        return -1;
    c.max_prompt = (size_t)mp;
    c.max_answer = (size_t)ma;
    c.max_solution = (size_t)ms;
    imd_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    rl_error e = {0};
    if (rl_image_data_open(&c, &s->d, &e) < 0) {
        rl_free(s);
        return rl_node_fail(n, err, "%s", e.msg);
    }
    s->batch = batch;
    n->state = s;
    return 0;
}

static int imd_infer(rl_node *n, rl_error *err) {
    imd_state *s = n->state;
    size_t wp, wa, ws;
    int64_t maxp, dim;
    rl_image_data_widths(s->d, &wp, &wa, &ws);
    rl_image_data_patches(s->d, &maxp, &dim);
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(s->batch, (int64_t)wp);
    n->out[1].dtype = RL_U8;
    n->out[1].shape = rl_shape2(s->batch, (int64_t)wa);
    n->out[2].dtype = RL_U8;
    n->out[2].shape = rl_shape2(s->batch, (int64_t)ws);
    n->out[3].dtype = RL_F32;
    n->out[3].shape = rl_shape2(s->batch * maxp, dim);
    n->out[4].dtype = RL_I32;
    n->out[4].shape = rl_shape2(s->batch, 2);
    n->out[5].dtype = RL_I32;
    n->out[5].shape = rl_shape1(s->batch);
    s->ws = rl_node_request(n, RL_WS_SCRATCH_FWD, rl_image_data_scratch_bytes(s->d), err);
    return s->ws < 0 ? -1 : 0;
}

static int imd_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    imd_state *s = n->state;
    rl_error e = {0};
    int64_t rows = 0;
    if (rl_image_data_next(s->d, s->batch, rl_u8(&n->out[0]), rl_u8(&n->out[1]), rl_u8(&n->out[2]), rl_f32(&n->out[3]),
                           rl_i32(&n->out[4]), rl_i32(&n->out[5]), &rows, n->ws[s->ws].data, &e) < 0)
        return rl_node_fail(n, err, "%s", e.msg);
    n->out[3].shape.dim[0] = rows; /* images of different sizes: fewer rows than the maximum */
    rl_dataset_cursor c;
    rl_image_data_get_cursor(s->d, &c);
    if (ctx) rl_metric_set(ctx, n, "epoch", rl_dataset_cursor_epochs(&c, rl_image_data_size(s->d)));
    return 0;
}

static int imd_save(rl_node *n, rl_state *st, rl_error *err) {
    imd_state *s = n->state;
    rl_dataset_cursor c;
    rl_image_data_get_cursor(s->d, &c);
    return rl_dataset_cursor_save(st, &c, err);
}

static int imd_load(rl_node *n, const rl_state *st, rl_error *err) {
    imd_state *s = n->state;
    rl_dataset_cursor c;
    if (rl_dataset_cursor_load(st, &c, err) < 0) return -1;
    rl_error e = {0};
    if (rl_image_data_set_cursor(s->d, &c, &e) < 0) return rl_node_fail(n, err, "%s", e.msg);
    return 0;
}

static void imd_destroy(rl_node *n) {
    imd_state *s = n->state;
    if (s) rl_image_data_free(s->d);
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_image_dataset = {
    .name = "image_dataset",
    .doc = "batches of image questions (prompt with image placeholders, answer, solution) and their patches",
    .outputs = imd_outputs,
    .n_outputs = 6,
    .options = imd_options,
    .n_options = N_OPTIONS,
    .init = imd_init,
    .infer = imd_infer,
    .forward = imd_forward,
    .destroy = imd_destroy,
    .save_state = imd_save,
    .load_state = imd_load,
};
