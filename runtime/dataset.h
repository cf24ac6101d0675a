/* Problem sources for training and evaluation: the procedural arithmetic task
 * (arith_task.h) or a JSONL file (`problem`, `answer`, optional `solution`),
 * read as a list of items and served in batches of NUL-padded text rows.
 *
 * Order: a cursor (epoch, position) walks a permutation of the items; the
 * permutation of epoch e is a pure function of (seed, e) (identity when
 * shuffle is off), so a batch sequence is reproducible and a checkpoint only
 * needs the cursor. Batches run across epoch boundaries. Serving a batch does
 * not allocate (items are loaded or generated into place). */
#ifndef RL_DATASET_H
#define RL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "arith_task.h"
#include "error.h"

typedef enum rl_data_source { RL_DATA_ARITH = 0, RL_DATA_JSONL } rl_data_source;

typedef struct rl_dataset_cfg {
    rl_data_source source;
    const char *path;        /* JSONL file, or "eval:NAME" (see rl_dataset_resolve_path) */
    rl_split split;          /* arith: which split; JSONL: informational */
    rl_arith_cfg arith;
    int64_t size;            /* arith: items in the list; 0 = 100000 (train) / 1000 (test) */
    /* Text limits in bytes, without the NUL. 0 = automatic: the longest text
     * of the file, or the task's bound. A JSONL row whose text exceeds an
     * explicit limit is skipped; for arith an explicit limit below the task's
     * bound is an error. */
    size_t max_prompt, max_answer, max_solution;
    uint64_t seed;           /* shuffling */
    int shuffle;
} rl_dataset_cfg;

typedef struct rl_dataset rl_dataset;

typedef struct rl_dataset_cursor {
    int64_t epoch;
    int64_t pos;             /* items of this epoch already served */
} rl_dataset_cursor;

void rl_dataset_cfg_default(rl_dataset_cfg *c);

/* Paths of the form "eval:NAME" name a benchmark file NAME.jsonl of the
 * shared data directory (data/eval/ under it), looked up in order in
 * $RLFR_SHARED_DIR, $RLFR_SOURCE_DIR/../shared, ../shared and shared (the
 * last two relative to the working directory); the first existing file wins.
 * Any other path is used as given. Writes the path to open into out. */
int rl_dataset_resolve_path(const char *path, char *out, size_t cap, rl_error *err);
int rl_dataset_open(const rl_dataset_cfg *c, rl_dataset **out, rl_error *err);
void rl_dataset_free(rl_dataset *d);

int64_t rl_dataset_size(const rl_dataset *d);
int64_t rl_dataset_skipped(const rl_dataset *d);  /* JSONL rows dropped by the limits */
/* Row widths of the three outputs (longest text + 1 for the NUL). */
void rl_dataset_widths(const rl_dataset *d, size_t *prompt, size_t *answer, size_t *solution);

/* Item i (0 <= i < size) into NUL-padded rows of the widths above (any
 * pointer may be NULL); *source_index gets its index in the source (line
 * order among the file's records, or the task's problem index). */
int rl_dataset_item(const rl_dataset *d, int64_t i, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                    int32_t *source_index, rl_error *err);

/* The next `batch` items in cursor order, advancing the cursor. Row r of each
 * output starts at r * width. */
int rl_dataset_next(rl_dataset *d, int64_t batch, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                    int32_t *index, rl_error *err);

void rl_dataset_get_cursor(const rl_dataset *d, rl_dataset_cursor *c);
int rl_dataset_set_cursor(rl_dataset *d, const rl_dataset_cursor *c, rl_error *err);

/* A cursor in a data node's checkpoint state (key "cursor": epoch and
 * position as two int64), shared by the text and image dataset nodes. */
struct rl_state;
int rl_dataset_cursor_save(struct rl_state *st, const rl_dataset_cursor *c, rl_error *err);
int rl_dataset_cursor_load(const struct rl_state *st, rl_dataset_cursor *c, rl_error *err);
/* Epochs done so far (epoch + pos / size): the data nodes' 'epoch' metric. */
double rl_dataset_cursor_epochs(const rl_dataset_cursor *c, int64_t size);

/* The dataset behind a `dataset` graph node (nodes/dataset.c), for trainers
 * that save or restore its cursor directly; NULL for any other node. The
 * node also saves the cursor itself through save_state/load_state (key
 * "cursor": two int64, epoch then position). */
struct rl_node;
rl_dataset *rl_dataset_of_node(const struct rl_node *n);

#endif
