/* Qwen2 forward and backward over a packed batch (teacher forcing).
 *
 * Workspaces are carved from three caller-provided blocks (the planner's
 * buffers), laid out for the maximum sizes, so the actual batch only uses a
 * prefix of each array and nothing is allocated per step.
 *
 * Saved for backward per layer: block input x (the residual stream), rstd of
 * both norms, q and k after RoPE, v, the attention output o and its
 * log-sum-exp, the mid-block residual x2, and the gate/up projections.
 * The normalised inputs and the SwiGLU product are recomputed in backward
 * (cheap elementwise work) instead of being kept.
 *
 * A forward-only layout (r->forward_only: a frozen policy, scoring) keeps
 * one slot of per-layer activations that every layer overwrites, since
 * nothing is read back after the layer is done; only the residual stream
 * (block outputs are tapped) and the LM-head results stay per layer/row.
 *
 * Shared prefixes (rl_qwen2_pack_shared): the G rows of a group (RL: the
 * samples of one prompt) are packed as ONE copy of the prompt followed by
 * the G responses; a response's attention sees the prompt's keys through
 * rl_attn_seq's prefix range, and its first token is predicted by the
 * prompt's last row. That row's hidden state is copied into one extra
 * LM-head row per response (after the M packed rows), each with its own
 * target; backward adds the extra rows' gradients back into the prompt row,
 * and the attention backward sums every response's dK/dV into the prompt's
 * rows, so the prompt receives exactly the sum of its responses' gradients.
 * Everything else (norms, projections, MLP) is row-wise and unaffected. */
#include <math.h>
#include <string.h>

#include <omp.h>

#include "alloc.h"
#include "kernels.h"
#include "qwen2.h"
#include "threads.h"

#define ALIGN_F 16 /* floats: 64-byte alignment of every carved array */

typedef struct layer_saved {
    float *rstd1, *q, *k, *v, *o, *lse, *x2, *rstd2, *g, *u;
} layer_saved;

typedef struct carve {
    /* saved */
    int64_t *hdr;               /* [0] rows M, [1] seqs, [2] extra LM-head rows X, [3] batch rows,
                                   [4] 1 while the kept logits are the forward's (keep_logits) */
    rl_attn_seq *seqs;          /* [2 S]: with sharing, a prompt plus its responses */
    int32_t *batch_row, *tok, *tgt, *pos;
    rl_qwen2_row *rowmap;       /* [S]: where each batch row's positions live */
    int32_t *ex_src, *ex_tgt;   /* [S]: extra LM-head row e copies packed row ex_src[e] */
    int32_t *img;               /* [M]: image_embeds row of a spliced packed row, else -1 */
    float *cos_t, *sin_t;
    float *res;                 /* (N+1) x [M, d] */
    layer_saved *L;             /* not carved: filled per layer by layer_at() */
    float *layers;              /* N x per-layer block */
    float *rstdf, *nf, *logp, *ent, *lse; /* nf, logp, ent, lse (and tgt): M + S LM-head rows */
    int keep_logits;            /* one LM-head chunk holds every row: it is saved (f_chunk =
                                   b_chunk), and backward skips recomputing the logits */
    /* forward scratch */
    float *f_n, *f_m, *f_attn, *f_chunk;
    /* backward scratch */
    float *b_dres, *b_dn, *b_n, *b_dq, *b_dk, *b_dv, *b_do, *b_dg, *b_du, *b_m, *b_attn, *b_chunk;
    float *b_sink;              /* [d]: norm-weight gradients nobody wants (no_param_grad) */
    float *b_wgrad;             /* per-thread partial weight gradients (rl_gemm_wgrad) */
    size_t saved_bytes, fwd_bytes, bwd_bytes;
} carve;

typedef struct cursor {
    char *base;
    size_t off;
    int overflow;
} cursor;

static void *take(cursor *c, size_t count, size_t elem) {
    size_t bytes;
    if (rl_mul_size(count ? count : 1, elem, &bytes) || rl_add_size(bytes, 63, &bytes)) {
        c->overflow = 1;
        return NULL;
    }
    bytes &= ~(size_t)63;
    void *p = c->base ? c->base + c->off : NULL;
    if (rl_add_size(c->off, bytes, &c->off)) c->overflow = 1;
    return p;
}

static size_t layer_floats(const rl_qwen2_config *c, int64_t M) {
    const int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    size_t per_row = (size_t)(2 + qd + 2 * kd + qd + c->n_heads + c->hidden + 2 * c->inter);
    /* each of the 10 arrays is rounded up to 64 bytes */
    return per_row * (size_t)M + 10 * ALIGN_F;
}

static void layer_at(const rl_qwen2_config *c, int64_t M, float *base, int64_t l, layer_saved *s) {
    const int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    cursor cu = {(char *)(base + (size_t)l * layer_floats(c, M)), 0, 0};
    s->rstd1 = take(&cu, (size_t)M, 4);
    s->q = take(&cu, (size_t)(M * qd), 4);
    s->k = take(&cu, (size_t)(M * kd), 4);
    s->v = take(&cu, (size_t)(M * kd), 4);
    s->o = take(&cu, (size_t)(M * qd), 4);
    s->lse = take(&cu, (size_t)(M * c->n_heads), 4);
    s->x2 = take(&cu, (size_t)(M * c->hidden), 4);
    s->rstd2 = take(&cu, (size_t)M, 4);
    s->g = take(&cu, (size_t)(M * c->inter), 4);
    s->u = take(&cu, (size_t)(M * c->inter), 4);
}

/* Lays out all three workspaces; with NULL bases only computes sizes. */
static int do_carve(const rl_qwen2_config *c, int64_t M, int64_t S, int64_t Tm, int64_t chunk, int threads,
                    int fwd_only, void *saved, void *fwd, void *bwd, carve *k) {
    memset(k, 0, sizeof *k);
    if (M < 1) M = 1;
    if (S < 1) S = 1;
    if (Tm < 1) Tm = 1;
    if (threads < 1) threads = 1;
    const int64_t d = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const int64_t N = c->n_layers, Fi = c->inter, half = c->head_dim / 2;
    /* Overflow guard on the largest products before any int64 multiply. */
    if (M > ((int64_t)1 << 40) / (d + qd + Fi + c->vocab) || S > ((int64_t)1 << 40) / (d + qd + Fi + c->vocab) ||
        Tm > ((int64_t)1 << 31))
        return -1;
    size_t attn = rl_attn_scratch_floats(Tm, Tm, c->head_dim, threads);
    size_t chunkf = (size_t)chunk * (size_t)c->vocab;
    cursor s = {saved, 0, 0};
    const int64_t LM = M + S; /* LM-head rows: packed rows plus at most one extra per batch row */
    k->hdr = take(&s, 5, 8);
    k->seqs = take(&s, (size_t)(2 * S), sizeof(rl_attn_seq));
    k->batch_row = take(&s, (size_t)(2 * S), 4);
    k->rowmap = take(&s, (size_t)S, sizeof(rl_qwen2_row));
    k->ex_src = take(&s, (size_t)S, 4);
    k->ex_tgt = take(&s, (size_t)S, 4);
    k->img = take(&s, (size_t)M, 4);
    k->tok = take(&s, (size_t)M, 4);
    k->tgt = take(&s, (size_t)LM, 4);
    k->pos = take(&s, (size_t)M, 4);
    k->cos_t = take(&s, (size_t)(Tm * half), 4);
    k->sin_t = take(&s, (size_t)(Tm * half), 4);
    k->res = take(&s, (size_t)((N + 1) * M * d), 4);
    k->layers = take(&s, (size_t)(fwd_only ? 1 : N) * layer_floats(c, M), 4);
    k->rstdf = take(&s, (size_t)M, 4);
    k->nf = take(&s, (size_t)(LM * d), 4);
    k->logp = take(&s, (size_t)LM, 4);
    k->ent = take(&s, (size_t)LM, 4);
    k->lse = take(&s, (size_t)LM, 4);
    /* Keeping the logits costs [LM, vocab] between forward and backward, but
       frees the chunk in both scratch blocks; only when one chunk is all. */
    k->keep_logits = !fwd_only && LM <= chunk;
    if (k->keep_logits) k->f_chunk = k->b_chunk = take(&s, chunkf, 4);
    cursor f = {fwd, 0, 0};
    k->f_n = take(&f, (size_t)(M * d), 4);
    k->f_m = take(&f, (size_t)(M * Fi), 4);
    k->f_attn = take(&f, attn, 4);
    if (!k->keep_logits) k->f_chunk = take(&f, chunkf, 4);
    cursor b = {bwd, 0, 0};
    if (fwd_only) goto done;
    k->b_dres = take(&b, (size_t)(M * d), 4);
    k->b_dn = take(&b, (size_t)(LM * d), 4);
    k->b_n = take(&b, (size_t)(M * d), 4);
    k->b_dq = take(&b, (size_t)(M * qd), 4);
    k->b_dk = take(&b, (size_t)(M * kd), 4);
    k->b_dv = take(&b, (size_t)(M * kd), 4);
    k->b_do = take(&b, (size_t)(M * qd), 4);
    k->b_dg = take(&b, (size_t)(M * Fi), 4);
    k->b_du = take(&b, (size_t)(M * Fi), 4);
    k->b_m = take(&b, (size_t)(M * Fi), 4);
    k->b_attn = take(&b, attn, 4);
    if (!k->keep_logits) k->b_chunk = take(&b, chunkf, 4);
    k->b_sink = take(&b, (size_t)d, 4);
    k->b_wgrad = take(&b, rl_gemm_wgrad_scratch_floats(qd > Fi ? qd : Fi, d, threads), 4);
done:
    if (s.overflow || f.overflow || b.overflow) return -1;
    k->saved_bytes = s.off;
    k->fwd_bytes = f.off;
    k->bwd_bytes = b.off;
    return 0;
}

static void carve_run(const rl_qwen2 *m, const rl_qwen2_run *r, carve *k) {
    do_carve(&m->cfg, r->max_rows, r->max_seqs, r->max_len, r->chunk, r->threads, r->forward_only, r->saved, r->fwd,
             r->bwd, k);
}

static int ws_size(const rl_qwen2_config *c, int64_t max_rows, int64_t max_seqs, int64_t max_len, int64_t chunk,
                   int threads, int fwd_only, rl_qwen2_ws_bytes *out, rl_error *err) {
    carve k;
    if (chunk < 1) return rl_fail(err, "qwen2: LM-head chunk must be at least 1 row");
    /* Sizes derive from head_dim: check (and derive) it on a copy. */
    rl_qwen2_config cc = *c;
    if (rl_qwen2_config_check(&cc, "qwen2 config", err)) return -1;
    c = &cc;
    if (do_carve(c, max_rows, max_seqs, max_len, chunk, threads, fwd_only, NULL, NULL, NULL, &k))
        return rl_fail(err, "qwen2: workspace size overflows for %lld rows", (long long)max_rows);
    out->saved = k.saved_bytes;
    out->fwd = k.fwd_bytes;
    out->bwd = k.bwd_bytes;
    return 0;
}

int rl_qwen2_ws_size(const rl_qwen2_config *c, int64_t max_rows, int64_t max_seqs, int64_t max_len,
                     int64_t chunk, int threads, rl_qwen2_ws_bytes *out, rl_error *err) {
    return ws_size(c, max_rows, max_seqs, max_len, chunk, threads, 0, out, err);
}

int rl_qwen2_ws_size_run(const rl_qwen2_config *c, const rl_qwen2_run *r, rl_qwen2_ws_bytes *out, rl_error *err) {
    return ws_size(c, r->max_rows, r->max_seqs, r->max_len, r->chunk, r->threads, r->forward_only != 0, out, err);
}

/* Checks one row of a right-padded batch: length within [0, T] and the
 * context, token ids in the vocabulary. */
static int check_row(const rl_qwen2 *m, const rl_qwen2_run *r, const int32_t *tokens, const int32_t *lengths,
                     int64_t b, int64_t T, rl_error *err) {
    const int64_t V = m->cfg.vocab, len = lengths[b];
    if (len < 0 || len > T)
        return rl_fail(err, "row %lld: length %lld outside [0, %lld]", (long long)b, (long long)len, (long long)T);
    if (len > r->max_len || len > m->cfg.max_pos)
        return rl_fail(err, "row %lld: sequence of %lld tokens is longer than the context (%lld)", (long long)b,
                       (long long)len, (long long)(r->max_len < m->cfg.max_pos ? r->max_len : m->cfg.max_pos));
    for (int64_t t = 0; t < len; t++) {
        int32_t id = tokens[b * T + t];
        if (id < 0 || id >= V)
            return rl_fail(err, "row %lld, position %lld: token id %d outside the vocabulary [0, %lld)", (long long)b,
                           (long long)t, id, (long long)V);
    }
    return 0;
}

/* Appends the n tokens src[0..n) at positions pos0.. as packed rows from
 * `rows`; row i's target is src[i+1], the last row's `last_tgt`. */
static void put_rows(carve *k, int64_t rows, const int32_t *src, int64_t n, int64_t pos0, int32_t last_tgt) {
    for (int64_t t = 0; t < n; t++) {
        k->tok[rows + t] = src[t];
        k->tgt[rows + t] = t + 1 < n ? src[t + 1] : last_tgt;
        k->pos[rows + t] = (int32_t)(pos0 + t);
    }
}

/* Moves the extra LM-head rows' targets behind the M packed rows and makes
 * first_lm absolute (pack knows M only at the end). */
static void finish_pack(carve *k, int64_t rows, int64_t ns, int64_t nx, int64_t B) {
    for (int64_t e = 0; e < nx; e++) k->tgt[rows + e] = k->ex_tgt[e];
    /* No splice until rl_qwen2_splice_images numbers this batch's pads. */
    for (int64_t i = 0; i < rows; i++) k->img[i] = -1;
    for (int64_t b = 0; b < B; b++)
        if (k->rowmap[b].first_lm >= 0) k->rowmap[b].first_lm += rows;
    k->hdr[0] = rows;
    k->hdr[1] = ns;
    k->hdr[2] = nx;
    k->hdr[3] = B;
    k->hdr[4] = 0; /* new rows: no logits of theirs yet */
}

static int capacity(const rl_qwen2_run *r, int64_t rows, int64_t add, rl_error *err) {
    if (rows + add > r->max_rows)
        return rl_fail(err, "batch of more than %lld tokens exceeds the capacity", (long long)r->max_rows);
    return 0;
}

int rl_qwen2_pack(const rl_qwen2 *m, const rl_qwen2_run *r, const int32_t *tokens, const int32_t *lengths,
                  int64_t B, int64_t T, rl_error *err) {
    carve k;
    carve_run(m, r, &k);
    if (B > r->max_seqs) return rl_fail(err, "batch of %lld rows exceeds the capacity of %lld", (long long)B,
                                        (long long)r->max_seqs);
    int64_t rows = 0, ns = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lengths[b];
        if (check_row(m, r, tokens, lengths, b, T, err) || capacity(r, rows, len, err)) return -1;
        /* The whole row is one "prompt" part: no response part, no extra row. */
        k.rowmap[b] = (rl_qwen2_row){rows, len, rows + len, 0, -1, 0};
        if (len == 0) continue;
        k.seqs[ns] = (rl_attn_seq){rows, len, rows, 0, 0, 0};
        k.batch_row[ns] = (int32_t)b;
        put_rows(&k, rows, tokens + b * T, len, 0, -2);
        rows += len;
        ns++;
    }
    finish_pack(&k, rows, ns, 0, B);
    return 0;
}

int rl_qwen2_pack_shared(const rl_qwen2 *m, const rl_qwen2_run *r, const int32_t *tokens, const int32_t *lengths,
                         const int32_t *prompt_len, int64_t B, int64_t T, int64_t group, rl_error *err) {
    carve k;
    carve_run(m, r, &k);
    if (B > r->max_seqs) return rl_fail(err, "batch of %lld rows exceeds the capacity of %lld", (long long)B,
                                        (long long)r->max_seqs);
    if (group < 1 || B % group != 0)
        return rl_fail(err, "batch of %lld rows is not a whole number of groups of %lld", (long long)B,
                       (long long)group);
    int64_t rows = 0, ns = 0, nx = 0;
    for (int64_t b0 = 0; b0 < B; b0 += group) {
        /* Validate the whole group before packing any of it. */
        const int64_t p = prompt_len[b0];
        for (int64_t b = b0; b < b0 + group; b++) {
            if (check_row(m, r, tokens, lengths, b, T, err)) return -1;
            if (prompt_len[b] < 0 || prompt_len[b] > lengths[b])
                return rl_fail(err, "row %lld: prompt_len %d outside [0, %d] (the row's length)", (long long)b,
                               prompt_len[b], lengths[b]);
            if (prompt_len[b] != p)
                return rl_fail(err, "row %lld: prompt_len %d differs from row %lld's %lld (the rows of a group share "
                               "one prompt)", (long long)b, prompt_len[b], (long long)b0, (long long)p);
            for (int64_t t = 0; t < p; t++)
                if (tokens[b * T + t] != tokens[b0 * T + t])
                    return rl_fail(err, "row %lld, position %lld: token %d differs from row %lld's %d inside the "
                                   "shared prompt (prompt_len %lld)", (long long)b, (long long)t, tokens[b * T + t],
                                   (long long)b0, tokens[b0 * T + t], (long long)p);
        }
        /* The prompt once; its last row predicts nothing itself (-2): each
           response's first token gets an extra LM-head row instead. */
        const int64_t P0 = rows;
        if (capacity(r, rows, p, err)) return -1;
        if (p > 0) {
            k.seqs[ns] = (rl_attn_seq){P0, p, P0, 0, 0, 0};
            k.batch_row[ns++] = (int32_t)b0;
            put_rows(&k, rows, tokens + b0 * T, p, 0, -2);
            rows += p;
        }
        for (int64_t b = b0; b < b0 + group; b++) {
            const int64_t n = lengths[b] - p;
            k.rowmap[b] = (rl_qwen2_row){P0, p, rows, n, -1, b > b0};
            if (n == 0) continue;
            if (capacity(r, rows, n, err)) return -1;
            /* Positions continue after the prompt; attention sees the prompt
               as a prefix (p = 0: an ordinary sequence). */
            k.seqs[ns] = (rl_attn_seq){rows, n, rows, 0, P0, p};
            k.batch_row[ns++] = (int32_t)b;
            put_rows(&k, rows, tokens + b * T + p, n, p, -2);
            if (p > 0) {
                k.ex_src[nx] = (int32_t)(P0 + p - 1);
                k.ex_tgt[nx] = tokens[b * T + p];
                k.rowmap[b].first_lm = nx++; /* made absolute by finish_pack */
            }
            rows += n;
        }
    }
    finish_pack(&k, rows, ns, nx, B);
    return 0;
}

const rl_qwen2_row *rl_qwen2_row_map(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t *n_rows) {
    carve k;
    carve_run(m, r, &k);
    if (n_rows) *n_rows = k.hdr[3];
    return k.rowmap;
}

int64_t rl_qwen2_lm_rows(const rl_qwen2_run *r) {
    const int64_t *h = r->saved;
    return h[0] + h[2];
}

int64_t rl_qwen2_rows(const rl_qwen2_run *r) { return ((const int64_t *)r->saved)[0]; }

const rl_attn_seq *rl_qwen2_seqs(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t *n_seqs,
                                 const int32_t **batch_row) {
    carve k;
    carve_run(m, r, &k);
    *n_seqs = k.hdr[1];
    if (batch_row) *batch_row = k.batch_row;
    return k.seqs;
}

/* y[M,out] = residual + x[M,in] W[out,in]^T + bias (residual, bias optional) */
static void lin_fwd(const float *x, const float *W, const float *bias, const float *residual, float *y, int64_t M,
                    int64_t out, int64_t in) {
    rl_linear_rows(y, x, W, bias, residual, M, in, out, 0, rl_get_threads());
}

/* dx[M,in] = beta*dx + dy[M,out] W[out,in] */
static void lin_dx(const float *dy, const float *W, float *dx, int64_t M, int64_t out, int64_t in, float beta) {
    rl_gemm_rows(0, 0, M, in, out, dy, out, W, in, beta, dx, in, rl_get_threads());
}

/* dW[out,in] += dy[M,out]^T x[M,in]; db[out] += column sums of dy; the
   tokens split over the threads, partials in scratch (rl_gemm_wgrad) */
static void lin_dw(const float *dy, const float *x, float *dW, float *db, int64_t M, int64_t out, int64_t in,
                   float *partial, int nt) {
    rl_gemm_wgrad(out, in, M, dy, x, dW, db, partial, nt);
}

/* n = x * rstd * w, from the saved rstd (the norm's forward without the reduction) */
static void renorm(const float *x, const float *rstd, const float *w, float *n, int64_t M, int64_t d) {
#pragma omp parallel for schedule(static) if (M * d > 65536)
    for (int64_t r = 0; r < M; r++)
        for (int64_t i = 0; i < d; i++) n[r * d + i] = w[i] * (x[r * d + i] * rstd[r]);
}

/* Threads for this call: what OpenMP allows now, at most what the scratch
 * layout was sized for (r->threads). */
static int run_threads(const rl_qwen2_run *r) {
    int nt = omp_get_max_threads();
    if (nt > r->threads) nt = r->threads;
    return nt < 1 ? 1 : nt;
}

int rl_qwen2_forward(const rl_qwen2 *m, const rl_qwen2_run *r, rl_error *err) {
    const rl_qwen2_config *c = &m->cfg;
    if (!m->params->finalized) return rl_fail(err, "qwen2: parameters are not allocated");
    carve k;
    carve_run(m, r, &k);
    const int64_t M = k.hdr[0], S = k.hdr[1], d = c->hidden, Fi = c->inter;
    const int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    const float *P = m->params->data, eps = (float)c->rms_eps;
    const rl_attn_dims dims = {c->n_heads, c->n_kv_heads, c->head_dim};
    if (M == 0) return 0;
    const int nt = run_threads(r);
    int64_t tmax = 0; /* positions: a response continues after its prefix */
    for (int64_t s = 0; s < S; s++) {
        const int64_t end = k.seqs[s].n_pre + k.seqs[s].n_q;
        tmax = end > tmax ? end : tmax;
    }
    rl_rope_table(k.cos_t, k.sin_t, tmax, c->head_dim, c->rope_theta);

    /* Input embeddings; a spliced row takes its image row (rl_qwen2_splice_images). */
    const float *E = P + m->off_embed;
    for (int64_t i = 0; i < M; i++) {
        const float *src = r->splice && k.img[i] >= 0 ? r->image_embeds + (int64_t)k.img[i] * d
                                                      : E + (int64_t)k.tok[i] * d;
        memcpy(k.res + i * d, src, (size_t)d * sizeof(float));
    }
    for (int64_t l = 0; l < c->n_layers; l++) {
        const rl_qwen2_layer_off *o = &m->layer[l];
        layer_saved s;
        layer_at(c, r->max_rows, k.layers, r->forward_only ? 0 : l, &s);
        float *x = k.res + l * M * d, *y = k.res + (l + 1) * M * d;
        rl_qwen2_rmsnorm(x, P + o->ln1, k.f_n, s.rstd1, M, d, eps);
        lin_fwd(k.f_n, P + o->wq, P + o->bq, NULL, s.q, M, qd, d);
        lin_fwd(k.f_n, P + o->wk, P + o->bk, NULL, s.k, M, kd, d);
        lin_fwd(k.f_n, P + o->wv, P + o->bv, NULL, s.v, M, kd, d);
        rl_rope_apply(s.q, M, c->n_heads, c->head_dim, k.pos, k.cos_t, k.sin_t, 0, nt);
        rl_rope_apply(s.k, M, c->n_kv_heads, c->head_dim, k.pos, k.cos_t, k.sin_t, 0, nt);
        rl_attn_forward(s.q, s.k, s.v, s.o, s.lse, k.seqs, S, dims, r->max_len, r->max_len, k.f_attn, nt);
        lin_fwd(s.o, P + o->wo, NULL, x, s.x2, M, d, qd); /* x2 = x + attn Wo^T */
        rl_qwen2_rmsnorm(s.x2, P + o->ln2, k.f_n, s.rstd2, M, d, eps);
        lin_fwd(k.f_n, P + o->wg, NULL, NULL, s.g, M, Fi, d);
        lin_fwd(k.f_n, P + o->wu, NULL, NULL, s.u, M, Fi, d);
        rl_swiglu_forward(s.g, s.u, k.f_m, M * Fi, nt);
        lin_fwd(k.f_m, P + o->wd, NULL, s.x2, y, M, d, Fi); /* y = x2 + m Wd^T */
    }
    rl_qwen2_rmsnorm(k.res + c->n_layers * M * d, P + m->off_norm, k.nf, k.rstdf, M, d, eps);
    const int64_t X = k.hdr[2]; /* shared prompts: one row per response's first token */
    for (int64_t e = 0; e < X; e++)
        memcpy(k.nf + (M + e) * d, k.nf + (int64_t)k.ex_src[e] * d, (size_t)d * sizeof(float));
    rl_lmhead_forward(k.nf, P + m->off_head, M + X, d, c->vocab, k.tgt, r->chunk, k.f_chunk, k.logp, k.ent, k.lse,
                      nt);
    k.hdr[4] = k.keep_logits;
    return 0;
}

int rl_qwen2_backward(const rl_qwen2 *m, const rl_qwen2_run *r, const float *glogp, const float *gent,
                      rl_error *err) {
    const rl_qwen2_config *c = &m->cfg;
    if (!m->params->finalized) return rl_fail(err, "qwen2: parameters are not allocated");
    carve k;
    carve_run(m, r, &k);
    const int64_t M = k.hdr[0], S = k.hdr[1], d = c->hidden, Fi = c->inter;
    const int64_t qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    if (r->forward_only) return rl_fail(err, "qwen2: backward over a forward-only workspace layout");
    const float *P = m->params->data;
    /* pg: parameter gradients wanted. Without them, the weight GEMMs are
       skipped and the norms' weight gradients go to a scratch sink. */
    float *G = m->params->grad, *pg = r->no_param_grad ? NULL : G;
    const rl_attn_dims dims = {c->n_heads, c->n_kv_heads, c->head_dim};
    if (M == 0 || (!glogp && !gent)) return 0;
    if (!pg && !(r->splice && r->image_grad)) return 0; /* nothing asked for */
    const int nt = run_threads(r);
#define NORM_DW(off) (pg ? pg + (off) : k.b_sink)
#define LIN_DW(dy, x, wo, bo, Mr, out, in) \
    do { \
        if (pg) lin_dw(dy, x, pg + (wo), (bo) == (size_t)-1 ? NULL : pg + (bo), Mr, out, in, k.b_wgrad, nt); \
    } while (0)
    if (!pg) {
        /* The LM-head kernel always accumulates its weight gradient; point it
           at this untrained set's own gradient (which no optimizer reads or
           zeroes), cleared first so it stays bounded. */
        memset(G + m->off_head, 0, (size_t)(c->vocab * d) * sizeof(float));
    }
    const int64_t X = k.hdr[2];
    /* The kept logits serve one backward: it overwrites them. */
    rl_lmhead_backward(k.nf, P + m->off_head, M + X, d, c->vocab, k.tgt, r->chunk, k.b_chunk, k.hdr[4] != 0, k.lse,
                       k.ent, glogp, gent, k.b_dn, G + m->off_head, nt);
    k.hdr[4] = 0;
    /* An extra row is a copy of a prompt's last row: its gradient goes back
       there (in row order: a fixed summation order). */
    for (int64_t e = 0; e < X; e++) {
        float *dst = k.b_dn + (int64_t)k.ex_src[e] * d;
        const float *src = k.b_dn + (M + e) * d;
        for (int64_t j = 0; j < d; j++) dst[j] += src[j];
    }
    rl_qwen2_rmsnorm_backward(k.res + c->n_layers * M * d, P + m->off_norm, k.rstdf, k.b_dn, k.b_dres,
                              NORM_DW(m->off_norm), M, d, 0);
    for (int64_t l = c->n_layers - 1; l >= 0; l--) {
        const rl_qwen2_layer_off *o = &m->layer[l];
        layer_saved s;
        layer_at(c, r->max_rows, k.layers, l, &s);
        const float *x = k.res + l * M * d;
        /* MLP: y = x2 + swiglu(g, u) Wd^T. dm goes into b_dg, which the
           SwiGLU backward overwrites with dg in place while it recomputes
           m (for Wd's gradient) from the same sigmoid. */
        lin_dx(k.b_dres, P + o->wd, k.b_dg, M, d, Fi, 0.0f);
        rl_swiglu_backward(s.g, s.u, k.b_dg, k.b_dg, k.b_du, pg ? k.b_m : NULL, M * Fi, nt);
        LIN_DW(k.b_dres, k.b_m, o->wd, (size_t)-1, M, d, Fi);
        renorm(s.x2, s.rstd2, P + o->ln2, k.b_n, M, d);
        LIN_DW(k.b_dg, k.b_n, o->wg, (size_t)-1, M, Fi, d);
        LIN_DW(k.b_du, k.b_n, o->wu, (size_t)-1, M, Fi, d);
        lin_dx(k.b_dg, P + o->wg, k.b_dn, M, Fi, d, 0.0f);
        lin_dx(k.b_du, P + o->wu, k.b_dn, M, Fi, d, 1.0f);
        rl_qwen2_rmsnorm_backward(s.x2, P + o->ln2, s.rstd2, k.b_dn, k.b_dres, NORM_DW(o->ln2), M, d, 1);
        /* attention: x2 = x + attn(o) Wo^T */
        LIN_DW(k.b_dres, s.o, o->wo, (size_t)-1, M, d, qd);
        lin_dx(k.b_dres, P + o->wo, k.b_do, M, d, qd, 0.0f);
        rl_attn_backward(s.q, s.k, s.v, s.o, s.lse, k.b_do, k.b_dq, k.b_dk, k.b_dv, k.seqs, S, dims, r->max_len, r->max_len,
                         k.b_attn, nt);
        rl_rope_apply(k.b_dq, M, c->n_heads, c->head_dim, k.pos, k.cos_t, k.sin_t, 1, nt);
        rl_rope_apply(k.b_dk, M, c->n_kv_heads, c->head_dim, k.pos, k.cos_t, k.sin_t, 1, nt);
        renorm(x, s.rstd1, P + o->ln1, k.b_n, M, d);
        LIN_DW(k.b_dq, k.b_n, o->wq, o->bq, M, qd, d);
        LIN_DW(k.b_dk, k.b_n, o->wk, o->bk, M, kd, d);
        LIN_DW(k.b_dv, k.b_n, o->wv, o->bv, M, kd, d);
        lin_dx(k.b_dq, P + o->wq, k.b_dn, M, qd, d, 0.0f);
        lin_dx(k.b_dk, P + o->wk, k.b_dn, M, kd, d, 1.0f);
        lin_dx(k.b_dv, P + o->wv, k.b_dn, M, kd, d, 1.0f);
        rl_qwen2_rmsnorm_backward(x, P + o->ln1, s.rstd1, k.b_dn, k.b_dres, NORM_DW(o->ln1), M, d, 1);
    }
#undef NORM_DW
#undef LIN_DW
    /* Embedding rows in token order: a fixed summation order for repeated ids.
       A spliced row's gradient belongs to its image embedding, not to the
       pad token's embedding (which the forward never read). */
    float *dE = pg ? pg + m->off_embed : NULL;
    for (int64_t i = 0; i < M; i++) {
        float *dst;
        if (r->splice && k.img[i] >= 0)
            dst = r->image_grad ? r->image_grad + (int64_t)k.img[i] * d : NULL;
        else
            dst = dE ? dE + (int64_t)k.tok[i] * d : NULL;
        if (!dst) continue;
        const float *src = k.b_dres + i * d;
        for (int64_t j = 0; j < d; j++) dst[j] += src[j];
    }
    return 0;
}

int64_t rl_qwen2_count_pads(const int32_t *tokens, const int32_t *lengths, int64_t B, int64_t T, int32_t pad_id) {
    if (pad_id < 0) return 0;
    int64_t n = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = lengths[b] < 0 ? 0 : lengths[b] > T ? T : lengths[b];
        for (int64_t t = 0; t < len; t++) n += tokens[b * T + t] == pad_id;
    }
    return n;
}

int rl_qwen2_embed_rows(const rl_qwen2 *m, const int32_t *tokens, int64_t n, int32_t image_pad_id,
                        const float *image_embeds, int64_t n_image_rows, int64_t *image_next, int bf16, float *out,
                        rl_error *err) {
    const int64_t d = m->cfg.hidden;
    const float *E = m->params->data + m->off_embed;
    for (int64_t i = 0; i < n; i++) {
        float *dst = out + i * d;
        if (image_pad_id >= 0 && tokens[i] == image_pad_id) {
            if (!image_embeds || *image_next >= n_image_rows)
                return rl_fail(err, "more <|image_pad|> tokens (id %d) than the %lld image embedding rows",
                               image_pad_id, (long long)n_image_rows);
            memcpy(dst, image_embeds + (*image_next)++ * d, (size_t)d * sizeof(float));
        } else if (bf16) {
            const float *e = E + (int64_t)tokens[i] * d;
            for (int64_t j = 0; j < d; j++) dst[j] = rl_bf16_to_f32(rl_f32_to_bf16(e[j]));
        } else {
            memcpy(dst, E + (int64_t)tokens[i] * d, (size_t)d * sizeof(float));
        }
    }
    return 0;
}

int rl_qwen2_splice_images(const rl_qwen2 *m, rl_qwen2_run *r, int32_t pad_id, const float *image_embeds,
                           int64_t n_image_rows, rl_error *err) {
    r->splice = 0;
    r->image_embeds = NULL;
    r->n_image_rows = 0;
    r->image_pad_id = -1;
    if (pad_id >= m->cfg.vocab)
        return rl_fail(err, "image pad id %d outside the vocabulary [0, %lld)", pad_id, (long long)m->cfg.vocab);
    carve k;
    carve_run(m, r, &k);
    /* Pads are numbered in batch order, as if every row were packed whole;
       a row whose prompt is shared (not the group's first) counts its prompt
       pads but does not own packed rows for them: the group's prompt takes
       the first row's image rows. */
    int64_t pads = 0;
    for (int64_t i = 0; i < k.hdr[0]; i++) k.img[i] = -1;
    if (pad_id >= 0)
        for (int64_t b = 0; b < k.hdr[3]; b++) {
            const rl_qwen2_row *rw = &k.rowmap[b];
            for (int64_t t = 0; t < rw->n_pre; t++)
                if (k.tok[rw->pre_row + t] == pad_id) {
                    if (!rw->shared) k.img[rw->pre_row + t] = (int32_t)pads;
                    pads++;
                }
            for (int64_t t = 0; t < rw->n_resp; t++)
                if (k.tok[rw->resp_row + t] == pad_id) k.img[rw->resp_row + t] = (int32_t)pads++;
        }
    if (n_image_rows < 0 || (n_image_rows > 0 && !image_embeds) || pads != n_image_rows)
        return rl_fail(err, "%lld <|image_pad|> tokens (id %d) in the batch but %lld image embedding rows",
                       (long long)pads, pad_id, (long long)n_image_rows);
    if (pad_id < 0) return 0;
    r->splice = 1;
    r->image_pad_id = pad_id;
    r->image_embeds = image_embeds;
    r->n_image_rows = n_image_rows;
    return 0;
}

const float *rl_qwen2_logp(const rl_qwen2 *m, const rl_qwen2_run *r) {
    carve k;
    carve_run(m, r, &k);
    return k.logp;
}

const float *rl_qwen2_entropy(const rl_qwen2 *m, const rl_qwen2_run *r) {
    carve k;
    carve_run(m, r, &k);
    return k.ent;
}

const float *rl_qwen2_block_output(const rl_qwen2 *m, const rl_qwen2_run *r, int64_t j) {
    carve k;
    carve_run(m, r, &k);
    return k.res + (j + 1) * k.hdr[0] * m->cfg.hidden;
}

const float *rl_qwen2_final_hidden(const rl_qwen2 *m, const rl_qwen2_run *r) {
    carve k;
    carve_run(m, r, &k);
    return k.nf;
}
