/* Checkpoint directories of a run: RUN/ckpt-00000100/ holds whatever the
 * trainer writes (parameter sets, node state, trainer state). A checkpoint is
 * written into RUN/ckpt-00000100.tmp/, its files fsynced, then renamed, and
 * only then is RUN/latest (itself written to a temporary name and renamed)
 * pointed at it; older checkpoints are pruned last. A crash or SIGKILL at any
 * moment leaves the previous complete checkpoint reachable. */
#ifndef RL_CHECKPOINT_H
#define RL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Creates (emptying any stale one) RUN/ckpt-STEP.tmp and returns its path. */
int rl_ckpt_begin(const char *run_dir, int64_t step, char *tmp_dir, size_t cap, rl_error *err);
/* Publishes it: fsync, rename, update `latest`, keep the newest `keep` (>= 1). */
int rl_ckpt_commit(const char *run_dir, int64_t step, int keep, rl_error *err);
/* The newest complete checkpoint directory: 1 found, 0 none, -1 error. */
int rl_ckpt_latest(const char *run_dir, char *dir, size_t cap, int64_t *step, rl_error *err);

/* mkdir -p */
int rl_mkdirs(const char *path, rl_error *err);
/* rm -r of a directory we created (regular files and subdirectories only). */
int rl_remove_tree(const char *path, rl_error *err);
/* Writes a small file atomically (temporary name, fsync, rename). */
int rl_write_file_atomic(const char *path, const void *data, size_t bytes, rl_error *err);

#endif
