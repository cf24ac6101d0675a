/* The Lua binding modules: one line per module. Each becomes require "rlfr.NAME"
 * and its fields are merged into the rlfr module by the prelude. */
#include <stddef.h>

#include "commands.h"

const rlfr_module rlfr_modules[] = {
    {"core", rlfr_open_core},
    {"tokenizer", rlfr_open_tokenizer},
    {"models", rlfr_open_models},
    {"ckpt", rlfr_open_ckpt},
    {"vision", rlfr_open_vision},
    {NULL, NULL},
};
