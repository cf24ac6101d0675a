/* Decode weights: every matrix of a Qwen2 model repacked for few-row
 * products (KV-cache decoding), in f32 or bf16.
 *
 * A matrix W [out, in] (HF layout, one output per row) becomes panels of
 * RL_PANEL outputs: panel p holds, for i = 0..in-1, the RL_PANEL values
 * W[p*RL_PANEL + j, i] contiguously (zeros past `out`). A product then
 * streams each panel once, front to back, and keeps RL_PANEL outputs of up to
 * four rows in vector registers: one broadcast of x[r, i] and a few vector
 * loads feed 4 x RL_PANEL multiply-adds, with no horizontal sums at the end
 * (which dominated the dot-product form for hidden sizes of 128-256). */
#ifndef RL_QWEN2_PANELS_H
#define RL_QWEN2_PANELS_H

#include <stddef.h>
#include <stdint.h>

#include "qwen2.h"

/* The matrices of one block, in the order of rl_qwen2_panel_mat. */
enum { RL_PM_Q, RL_PM_K, RL_PM_V, RL_PM_O, RL_PM_G, RL_PM_U, RL_PM_D, RL_PM_N };

struct rl_qwen2_panels {
    int bf16;            /* 1: elements are bf16 (uint16_t), else f32 */
    size_t numel;        /* elements in data */
    void *data;
    size_t *off;         /* [n_layers * RL_PM_N] element offsets */
    size_t head;         /* offset of the LM head (the embedding when tied) */
};

/* Outputs per panel (a multiple of the vector width this file was built for). */
int64_t rl_qwen2_panel_width(void);

/* A matrix's panels: the base pointer handed to rl_panel_linear. */
const void *rl_qwen2_panel_mat(const rl_qwen2 *m, int64_t layer, int which);
const void *rl_qwen2_panel_head(const rl_qwen2 *m);

/* y[M, out] = beta*y + x[M, in] W^T (+ b), W as panels (bf16 or f32);
 * beta is 0 or 1. Threads take ranges of panels when the product is large
 * enough to pay for a fork/join. */
void rl_panel_linear(const float *x, const void *panels, int bf16, const float *b, float *y, int64_t M, int64_t out,
                     int64_t in, float beta, int threads);

#endif
