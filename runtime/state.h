/* Node state for checkpoints: a set of named byte blobs, saved as U8 tensors
 * in one safetensors file. Names are prefixed with the node label by the
 * graph, so a node only picks short keys ("m", "v", "cursor"). */
#ifndef RL_STATE_H
#define RL_STATE_H

#include <stddef.h>

#include "error.h"

typedef struct rl_state rl_state;

rl_state *rl_state_new(void);
void rl_state_free(rl_state *st);
/* Copies bytes under `prefix.key`. */
int rl_state_put(rl_state *st, const char *key, const void *data, size_t bytes, rl_error *err);
/* Copies exactly `bytes` bytes of `prefix.key` into data; a missing key or
   another size is an error naming both. */
int rl_state_get(const rl_state *st, const char *key, void *data, size_t bytes, rl_error *err);
int rl_state_has(const rl_state *st, const char *key);
/* The prefix put/get add to keys (the graph sets it to the node label). */
void rl_state_set_prefix(rl_state *st, const char *prefix);

int rl_state_save(const rl_state *st, const char *path, rl_error *err);  /* atomic */
int rl_state_load(rl_state *st, const char *path, rl_error *err);

#endif
