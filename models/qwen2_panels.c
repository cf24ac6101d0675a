/* Panel packing of the decode weights and the few-row product over panels
 * (layout in qwen2_panels.h). */
#include "qwen2_panels.h"

#include <string.h>

#include "alloc.h"
#include "simd.h"
#include "threads.h"

#define VW RL_VW
#define NV 4              /* vectors per panel row */
#define PW (NV * VW)      /* outputs per panel */
#define MR 4              /* rows per register tile: 4 x NV accumulators */

typedef rl_vf vf;

int64_t rl_qwen2_panel_width(void) { return PW; }

static size_t panels_of(int64_t out) { return (size_t)((out + PW - 1) / PW); }
static size_t packed_numel(int64_t out, int64_t in) { return panels_of(out) * (size_t)PW * (size_t)in; }

/* ---- packing ------------------------------------------------------------ */

typedef struct pack_job {
    const float *W;
    int64_t out, in;
    void *dst;
    int bf16;
} pack_job;

/* Panels [p0, p1), in blocks of IB inputs: the block is gathered from PW
   rows of W (contiguous reads of IB floats each) into an f32 tile laid out as
   the panel is, then stored (converted to bf16 in one pass when asked). */
#define IB 16
static void pack_panels(void *ctx, int64_t p0, int64_t p1, int slot) {
    (void)slot;
    const pack_job *j = ctx;
    float tile[IB * PW];
    for (int64_t p = p0; p < p1; p++)
        for (int64_t i0 = 0; i0 < j->in; i0 += IB) {
            const int64_t ni = j->in - i0 < IB ? j->in - i0 : IB;
            for (int64_t c = 0; c < PW; c++) {
                const int64_t o = p * PW + c;
                if (o < j->out) {
                    const float *row = j->W + o * j->in + i0;
                    for (int64_t ii = 0; ii < ni; ii++) tile[ii * PW + c] = row[ii];
                } else {
                    for (int64_t ii = 0; ii < ni; ii++) tile[ii * PW + c] = 0.0f;
                }
            }
            const size_t at = ((size_t)p * (size_t)j->in + (size_t)i0) * PW, n = (size_t)ni * PW;
            if (j->bf16)
                rl_f32_to_bf16_n(tile, (uint16_t *)j->dst + at, n);
            else
                memcpy((float *)j->dst + at, tile, n * sizeof(float));
        }
}

static void pack_matrix(const float *W, int64_t out, int64_t in, int bf16, void *dst, int threads) {
    pack_job j = {W, out, in, dst, bf16};
    rl_parallel_for((int64_t)panels_of(out), threads, pack_panels, &j);
}

/* Shapes [out, in] of block matrix `which`. */
static void mat_shape(const rl_qwen2_config *c, int which, int64_t *out, int64_t *in) {
    const int64_t d = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const int64_t outs[RL_PM_N] = {qd, kd, kd, d, c->inter, c->inter, d};
    const int64_t ins[RL_PM_N] = {d, d, d, qd, d, d, c->inter};
    *out = outs[which];
    *in = ins[which];
}

static size_t mat_param_off(const rl_qwen2_layer_off *o, int which) {
    const size_t offs[RL_PM_N] = {o->wq, o->wk, o->wv, o->wo, o->wg, o->wu, o->wd};
    return offs[which];
}

int rl_qwen2_decode_weights(rl_qwen2 *m, int bf16, rl_error *err) {
    if (!m->params->data) return rl_fail(err, "qwen2: parameters are not allocated");
    const rl_qwen2_config *c = &m->cfg;
    struct rl_qwen2_panels *pn = m->panels;
    if (pn && pn->bf16 != bf16) {
        rl_qwen2_decode_weights_drop(m);
        pn = NULL;
    }
    if (!pn) {
        pn = rl_calloc(1, sizeof *pn);
        if (pn) pn->off = rl_calloc((size_t)(c->n_layers * RL_PM_N), sizeof(size_t));
        if (!pn || !pn->off) {
            if (pn) rl_free(pn);
            return rl_fail(err, "qwen2: out of memory for the decode weights");
        }
        size_t n = 0;
        for (int64_t l = 0; l < c->n_layers; l++)
            for (int w = 0; w < RL_PM_N; w++) {
                int64_t out, in;
                mat_shape(c, w, &out, &in);
                pn->off[l * RL_PM_N + w] = n;
                n += packed_numel(out, in);
            }
        pn->head = n;
        n += packed_numel(c->vocab, c->hidden);
        pn->numel = n;
        pn->bf16 = bf16;
        size_t bytes;
        if (rl_mul_size(n, bf16 ? sizeof(uint16_t) : sizeof(float), &bytes) || !(pn->data = rl_malloc_aligned(bytes))) {
            rl_free(pn->off);
            rl_free(pn);
            return rl_fail(err, "qwen2: cannot allocate %zu %s elements for the decode weights", n, bf16 ? "bf16" : "f32");
        }
        m->panels = pn;
    }
    const size_t esz = bf16 ? sizeof(uint16_t) : sizeof(float);
    const int threads = rl_get_threads();
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int w = 0; w < RL_PM_N; w++) {
            int64_t out, in;
            mat_shape(c, w, &out, &in);
            pack_matrix(m->params->data + mat_param_off(&m->layer[l], w), out, in, bf16,
                        (char *)pn->data + pn->off[l * RL_PM_N + w] * esz, threads);
        }
    pack_matrix(m->params->data + m->off_head, c->vocab, c->hidden, bf16, (char *)pn->data + pn->head * esz, threads);
    return 0;
}

void rl_qwen2_decode_weights_drop(rl_qwen2 *m) {
    struct rl_qwen2_panels *pn = m->panels;
    if (!pn) return;
    rl_free_aligned(pn->data);
    rl_free(pn->off);
    rl_free(pn);
    m->panels = NULL;
}

const void *rl_qwen2_panel_mat(const rl_qwen2 *m, int64_t layer, int which) {
    const struct rl_qwen2_panels *pn = m->panels;
    return (const char *)pn->data + pn->off[layer * RL_PM_N + which] * (pn->bf16 ? sizeof(uint16_t) : sizeof(float));
}

const void *rl_qwen2_panel_head(const rl_qwen2 *m) {
    const struct rl_qwen2_panels *pn = m->panels;
    return (const char *)pn->data + pn->head * (pn->bf16 ? sizeof(uint16_t) : sizeof(float));
}

/* ---- product ------------------------------------------------------------ */

/* acc[r][v] = sum_i x[r, i] * panel[i, v*VW ..], for nr rows (inlined with
   constant half and nr, so the loop has no dtype branch and a one-row call
   does no wasted work). */
static inline __attribute__((always_inline)) void panel_tile(const float *x, int64_t in, int nr,
                                                             const void *panel, int half, vf acc[MR][NV]) {
    const float *pf = panel;
    const uint16_t *ph = panel;
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = (vf){0};
    for (int64_t i = 0; i < in; i++) {
        vf w[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) w[v] = half ? rl_vload_bf16(ph + i * PW + v * VW) : rl_vload(pf + i * PW + v * VW);
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const vf xb = rl_vbcast(x[r * in + i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += xb * w[v];
        }
    }
}

#define TILE_CASE(NR)                                              \
    case NR:                                                       \
        if (bf16)                                                  \
            panel_tile(x, in, NR, panel, 1, acc);                  \
        else                                                       \
            panel_tile(x, in, NR, panel, 0, acc);                  \
        break;

static void tile(const float *x, int64_t in, int nr, const void *panel, int bf16, vf acc[MR][NV]) {
    switch (nr) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
        default:
        TILE_CASE(4)
    }
}

typedef struct lin_job {
    const float *x, *b;
    const void *panels;
    int bf16;
    float *y;
    int64_t M, out, in;
    float beta;
} lin_job;

static void linear_panels(void *ctx, int64_t p0, int64_t p1, int slot) {
    (void)slot;
    const lin_job *a = ctx;
    const int64_t M = a->M, out = a->out, in = a->in;
    const size_t esz = a->bf16 ? sizeof(uint16_t) : sizeof(float);
    for (int64_t p = p0; p < p1; p++) {
        const void *panel = (const char *)a->panels + (size_t)p * (size_t)in * PW * esz;
        const int64_t j0 = p * PW, nj = out - j0 < PW ? out - j0 : PW;
        /* The panel (in x PW elements) stays in L2 while row blocks reuse it. */
        for (int64_t r0 = 0; r0 < M; r0 += MR) {
            const int nr = M - r0 < MR ? (int)(M - r0) : MR;
            vf acc[MR][NV];
            tile(a->x + r0 * in, in, nr, panel, a->bf16, acc);
            for (int r = 0; r < nr; r++) {
                float *yr = a->y + (r0 + r) * out + j0;
                if (nj == PW) {
                    for (int v = 0; v < NV; v++) {
                        vf s = acc[r][v];
                        if (a->b) s += rl_vload(a->b + j0 + v * VW);
                        if (a->beta != 0.0f) s += rl_vload(yr + v * VW);
                        rl_vstore(yr + v * VW, s);
                    }
                } else {
                    float t[PW];
                    for (int v = 0; v < NV; v++) rl_vstore(t + v * VW, acc[r][v]);
                    for (int64_t j = 0; j < nj; j++)
                        yr[j] = t[j] + (a->b ? a->b[j0 + j] : 0.0f) + (a->beta != 0.0f ? yr[j] : 0.0f);
                }
            }
        }
    }
}

void rl_panel_linear(const float *x, const void *panels, int bf16, const float *b, float *y, int64_t M, int64_t out,
                     int64_t in, float beta, int threads) {
    lin_job a = {x, b, panels, bf16, y, M, out, in, beta};
    /* ~0.5 MFLOP per thread at least: below that a fork/join costs more than it saves */
    const int par = threads > 1 && M * out * in >= ((int64_t)1 << 18) * threads;
    rl_parallel_for((int64_t)panels_of(out), par ? threads : 1, linear_panels, &a);
}
