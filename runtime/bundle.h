/* Model bundles: a Hugging Face-style directory (config.json,
 * model.safetensors, tokenizer.json, flow.safetensors, rlfr.json) or the same
 * packed as .tar.zst. Opening an archive extracts it into a private temporary
 * directory, refusing absolute paths, `..` components, links and special
 * files; closing removes it. */
#ifndef RL_BUNDLE_H
#define RL_BUNDLE_H

#include <stddef.h>

#include "error.h"

typedef struct rl_bundle rl_bundle;

int rl_bundle_open(const char *path, rl_bundle **out, rl_error *err);
void rl_bundle_close(rl_bundle *b);
/* The directory holding the bundle's files. */
const char *rl_bundle_dir(const rl_bundle *b);
/* DIR/name into buf; returns buf, or NULL if it does not fit. */
const char *rl_bundle_file(const rl_bundle *b, const char *name, char *buf, size_t cap);
int rl_bundle_has(const rl_bundle *b, const char *name);

/* Packs the regular files of dir (no subdirectories) into a .tar.zst written
   atomically. */
int rl_bundle_pack(const char *dir, const char *out_path, rl_error *err);

#endif
