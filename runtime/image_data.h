/* Image-question data sets (docs/images.md): the procedural shapes task
 * (shapes_task.h), a JSONL file whose records name PNG images, or tar shards
 * in the WebDataset convention. Served in batches of NUL-padded text rows
 * (prompt with image placeholders, gold answer, expert solution) plus the
 * images as packed patch rows for the vision encoder (image.h layout) and
 * their patch grids.
 *
 * JSONL: one object per line with `problem`, `answer` (string, number or a
 * list of alternatives), `image` (PNG path, relative to the JSONL file's
 * directory unless absolute) and optional `solution`.
 * Shards: a .tar / .tar.zst / .tar.gz file, or a directory whose such files
 * are read in name order. Members are grouped by key (the member path up to
 * the first '.' of its base name): KEY.json holds the record (`problem`,
 * `answer`, optional `solution`, optional `image` naming another member of
 * the same shard) and KEY.png the image.
 *
 * File sources are loaded whole at open (images kept as 8-bit RGB), so
 * serving a batch reads no file and allocates nothing: it resizes,
 * normalises and patches into the caller's buffers. Order: as rl_dataset (a
 * cursor over per-epoch permutations of (seed, epoch)). */
#ifndef RL_IMAGE_DATA_H
#define RL_IMAGE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"     /* rl_dataset_cursor */
#include "error.h"
#include "shapes_task.h"

typedef enum rl_image_source { RL_IMG_SHAPES = 0, RL_IMG_JSONL, RL_IMG_SHARDS } rl_image_source;

typedef struct rl_image_data_cfg {
    rl_image_source source;
    const char *path;            /* JSONL file, or shard file / directory */
    rl_split split;              /* shapes: which split */
    rl_shapes_cfg shapes;
    int64_t size;                /* shapes: items (0 = 10000 train, 500 test) */
    int64_t patch, merge;        /* the encoder's patch side and merge size (14, 2) */
    int64_t min_pixels, max_pixels; /* smart-resize budget (3136, 50176 = 224x224) */
    int normalize;               /* CLIP mean/std (1) or plain [0, 1] values (0) */
    /* Text limits in bytes without the NUL (prompt: the question alone,
     * placeholders excluded); 0 = the longest of the source. File records
     * above an explicit limit are skipped. */
    size_t max_prompt, max_answer, max_solution;
    uint64_t seed;
    int shuffle;
} rl_image_data_cfg;

typedef struct rl_image_data rl_image_data;

/* The placeholder text of an image of `tokens` merged patches. */
#define RL_VISION_START "<|vision_start|>"
#define RL_IMAGE_PAD "<|image_pad|>"
#define RL_VISION_END "<|vision_end|>"

void rl_image_data_cfg_default(rl_image_data_cfg *c);
int rl_image_data_open(const rl_image_data_cfg *c, rl_image_data **out, rl_error *err);
void rl_image_data_free(rl_image_data *d);

int64_t rl_image_data_size(const rl_image_data *d);
int64_t rl_image_data_skipped(const rl_image_data *d);
/* Row widths (longest text + 1; the prompt's includes its placeholders). */
void rl_image_data_widths(const rl_image_data *d, size_t *prompt, size_t *answer, size_t *solution);
/* Most patches of one image, and floats per patch row (3 * patch^2). */
void rl_image_data_patches(const rl_image_data *d, int64_t *max_per_image, int64_t *dim);
/* Scratch bytes rl_image_data_next needs (resizing buffers). */
size_t rl_image_data_scratch_bytes(const rl_image_data *d);
/* Item i's resized size in pixels. */
int rl_image_data_item_size(const rl_image_data *d, int64_t i, int64_t *h, int64_t *w, rl_error *err);

/* The next `batch` items: text rows (row r at r * width; any may be NULL),
 * pixels (the images' patch rows one image after another; room for batch *
 * max_per_image rows), grid [batch, 2] (h, w in patches), index [batch] (the
 * item's index in its source: record order, or the task's problem index),
 * *n_patches the rows written. scratch: rl_image_data_scratch_bytes bytes. */
int rl_image_data_next(rl_image_data *d, int64_t batch, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                       float *pixels, int32_t *grid, int32_t *index, int64_t *n_patches, void *scratch,
                       rl_error *err);

void rl_image_data_get_cursor(const rl_image_data *d, rl_dataset_cursor *c);
int rl_image_data_set_cursor(rl_image_data *d, const rl_dataset_cursor *c, rl_error *err);

/* One item's image (8-bit RGB, resized and unnormalised floats are what
 * next() derives from it) and texts, for tools such as `rlfr shapes`: rgb
 * needs h*w*3 bytes of the source image (rl_image_data_source_size). */
int rl_image_data_source_size(const rl_image_data *d, int64_t i, int64_t *h, int64_t *w, rl_error *err);
int rl_image_data_item(const rl_image_data *d, int64_t i, uint8_t *rgb, uint8_t *prompt, uint8_t *answer,
                       uint8_t *solution, int32_t *source_index, rl_error *err);

#endif
