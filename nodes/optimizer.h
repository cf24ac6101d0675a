/* Access to an optimizer node's state, for checkpoints: the AdamW moments and
 * update count, and how many calls have accumulated gradients since the last
 * update (0 at an update boundary, where checkpoints should be taken: the
 * partially accumulated gradients themselves are not part of the state). */
#ifndef RL_OPTIMIZER_H
#define RL_OPTIMIZER_H

#include <stdint.h>

#include "adamw.h"
#include "node.h"

/* NULL unless n is an `optimizer` node whose state exists (after compile). */
rl_adamw *rl_optimizer_adamw(rl_node *n);
/* The parameter set the node updates (NULL unless n is an `optimizer` node). */
rl_params *rl_optimizer_params(const rl_node *n);
/* Calls since the last update (in [0, accumulate)); -1 if n is not an optimizer. */
int64_t rl_optimizer_pending(const rl_node *n);
int     rl_optimizer_set_pending(rl_node *n, int64_t pending, rl_error *err);

#endif
