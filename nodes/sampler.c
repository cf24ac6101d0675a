/* sampler: batched autoregressive generation from the Qwen2 policy with a KV
 * cache, G samples per prompt.
 *
 * Each prompt is prefilled once and its cache rows copied to its G sample
 * slots; then every step decodes one token for each unfinished sample.
 * Sample g of prompt p draws from its own Philox stream keyed by
 * (seed, step, prompt id, g), one uniform per token, so a sample does not
 * change when the batch around it changes. The cache, logits and all
 * scratch are one planned forward workspace: generation allocates nothing.
 *
 * Recorded log-probabilities are those of the sampled token under the
 * temperature-scaled full distribution, log softmax(z / T) (top-k / top-p
 * only restrict what is drawn); greedy records log softmax(z). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "node.h"
#include "qwen2.h"
#include "rng.h"

typedef struct cand {
    float z;
    int32_t id;
} cand;

typedef struct sampler_state {
    rl_qwen2 *m;
    int64_t G, max_new, top_k;
    double temperature, top_p;
    int greedy, bf16;
    int n_stop;
    int32_t *stop;
    int64_t B, Tp, L, S, max_rows;
    int threads;
    size_t dec_floats;
    int ws;
} sampler_state;

static const rl_port_spec sampler_inputs[] = {
    {"prompt", RL_I32, 2, RL_PORT_NO_GRAD, 0, "prompt token ids [B, Tp], right-padded"},
    {"prompt_len", RL_I32, 1, RL_PORT_NO_GRAD, 0, "prompt lengths [B] (>= 1)"},
    {"prompt_id", RL_I32, 1, RL_PORT_NO_GRAD | RL_PORT_OPTIONAL, 0,
     "ids keying the RNG streams [B] (default: the batch row)"},
};
static const rl_port_spec sampler_outputs[] = {
    {"tokens", RL_I32, 2, 0, 0, "[B*G, Tp+max_new]: prompt then response, right-padded; sample g of prompt b is row b*G+g"},
    {"lengths", RL_I32, 1, 0, 0, "[B*G] prompt + response tokens"},
    {"mask", RL_F32, 2, 0, 0, "[B*G, Tp+max_new] 1 on response tokens"},
    {"logprobs", RL_F32, 2, 0, 0, "[B*G, Tp+max_new] sampling log-probability of each response token"},
    {"finished", RL_I32, 1, 0, 0, "[B*G] 1 if a stop token ended the response"},
    {"truncated", RL_I32, 1, 0, 0, "[B*G] 1 if max_new was reached without a stop token"},
};
static const rl_option_spec sampler_options[] = {
    {"net", RL_VAL_OBJECT, NULL, "the Qwen2 model", "qwen2"},
    {"group", RL_VAL_INT, "1", "samples per prompt (G)", NULL},
    {"max_new", RL_VAL_INT, "64", "most new tokens per sample", NULL},
    {"temperature", RL_VAL_NUMBER, "1.0", "softmax temperature (0: greedy)", NULL},
    {"top_k", RL_VAL_INT, "0", "draw among the k most likely tokens (0: all)", NULL},
    {"top_p", RL_VAL_NUMBER, "1.0", "draw among the smallest set with this probability mass", NULL},
    {"stop", RL_VAL_NUMBERS, "", "stop token ids (kept in the response)", NULL},
    {"greedy", RL_VAL_BOOL, "false", "argmax decoding (evaluation)", NULL},
    {"seed", RL_VAL_INT, "0", "added to the run seed for this node's streams", NULL},
    {"bf16", RL_VAL_BOOL, "false", "decode with a bf16 copy of the weights (refreshed every run)", NULL},
};

static int sampler_init(rl_node *n, rl_error *err) {
    rl_object *o = rl_node_opt_object(n, "net");
    if (!o || !o->ptr) return rl_node_fail(n, err, "option 'net' must be a qwen2 model");
    sampler_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    s->m = o->ptr;
    s->G = rl_node_opt_int(n, "group");
    s->max_new = rl_node_opt_int(n, "max_new");
    s->top_k = rl_node_opt_int(n, "top_k");
    s->temperature = rl_node_opt_number(n, "temperature");
    s->top_p = rl_node_opt_number(n, "top_p");
    s->greedy = rl_node_opt_bool(n, "greedy") || s->temperature == 0.0;
    s->bf16 = rl_node_opt_bool(n, "bf16");
    if (s->G < 1 || s->G > 65536) return rl_node_fail(n, err, "option 'group' must be in [1, 65536]");
    if (s->max_new < 1) return rl_node_fail(n, err, "option 'max_new' must be at least 1");
    if (!(s->temperature >= 0) || !isfinite(s->temperature))
        return rl_node_fail(n, err, "option 'temperature' must be >= 0");
    if (s->top_k < 0) return rl_node_fail(n, err, "option 'top_k' must be >= 0");
    if (!(s->top_p > 0 && s->top_p <= 1)) return rl_node_fail(n, err, "option 'top_p' must be in (0, 1]");
    int ns = 0;
    const double *st = rl_node_opt_numbers(n, "stop", &ns);
    if (ns) {
        s->stop = rl_calloc((size_t)ns, sizeof *s->stop);
        if (!s->stop) return rl_node_fail(n, err, "out of memory");
        for (int i = 0; i < ns; i++) {
            if (st[i] != floor(st[i]) || st[i] < 0 || st[i] >= (double)s->m->cfg.vocab)
                return rl_node_fail(n, err, "stop token %g is not a token id of the vocabulary [0, %lld)", st[i],
                                    (long long)s->m->cfg.vocab);
            s->stop[i] = (int32_t)st[i];
        }
    }
    s->n_stop = ns;
    return rl_node_use_params(n, s->m->params, err);
}

/* One forward workspace holding everything, carved in this order. */
typedef struct sampler_ws {
    float *kc, *vc, *dec, *logits, *cos_t, *sin_t;
    cand *cands;
    rl_attn_seq *seqs;
    int32_t *toks, *act, *next, *pos, *gen;
    rl_rng *rng;
} sampler_ws;

static size_t carve(const sampler_state *s, char *base, sampler_ws *w) {
    const rl_qwen2_config *c = &s->m->cfg;
    const size_t kd = (size_t)(c->n_kv_heads * c->head_dim);
    const size_t cache = (size_t)c->n_layers * (size_t)s->S * (size_t)s->L * kd;
    const size_t nseq = (size_t)(s->S > s->B ? s->S : s->B);
    const size_t rope = (size_t)s->L * (size_t)(c->head_dim / 2) * 4;
    size_t sizes[14] = {rope, rope, cache * 4, cache * 4, s->dec_floats * 4, (size_t)s->S * (size_t)c->vocab * 4,
                        (size_t)c->vocab * sizeof(cand), nseq * sizeof(rl_attn_seq), (size_t)s->max_rows * 4,
                        (size_t)s->S * 4, (size_t)s->S * 4, (size_t)s->S * 4, (size_t)s->S * 4,
                        (size_t)s->S * sizeof(rl_rng)};
    void **ptrs[14] = {(void **)&w->cos_t, (void **)&w->sin_t, (void **)&w->kc, (void **)&w->vc, (void **)&w->dec, (void **)&w->logits,
                       (void **)&w->cands, (void **)&w->seqs, (void **)&w->toks, (void **)&w->act,
                       (void **)&w->next, (void **)&w->pos, (void **)&w->gen, (void **)&w->rng};
    size_t off = 0;
    for (int i = 0; i < 14; i++) {
        if (base) *ptrs[i] = base + off;
        off += (sizes[i] + 63) & ~(size_t)63;
    }
    return off;
}

static int sampler_infer(rl_node *n, rl_error *err) {
    sampler_state *s = n->state;
    const rl_qwen2_config *c = &s->m->cfg;
    char buf[64];
    s->B = n->in[0].shape.dim[0];
    s->Tp = n->in[0].shape.dim[1];
    if (n->in[1].shape.dim[0] != s->B)
        return rl_node_fail(n, err, "input 'prompt_len' has shape %s, expected [%lld]",
                            rl_shape_str(&n->in[1].shape, buf, sizeof buf), (long long)s->B);
    if (n->src[2] && n->in[2].shape.dim[0] != s->B)
        return rl_node_fail(n, err, "input 'prompt_id' has shape %s, expected [%lld]",
                            rl_shape_str(&n->in[2].shape, buf, sizeof buf), (long long)s->B);
    if (s->B < 1 || s->Tp < 1) return rl_node_fail(n, err, "input 'prompt' is empty");
    s->L = s->Tp + s->max_new;
    if (s->L > c->max_pos)
        return rl_node_fail(n, err, "prompts of %lld tokens plus max_new %lld exceed the context of %lld positions",
                            (long long)s->Tp, (long long)s->max_new, (long long)c->max_pos);
    if (s->B > ((int64_t)1 << 31) / s->G) return rl_node_fail(n, err, "batch too large");
    s->S = s->B * s->G;
    s->max_rows = s->B * s->Tp > s->S ? s->B * s->Tp : s->S;
    s->threads = omp_get_max_threads();
    s->dec_floats = rl_qwen2_decode_floats(c, s->max_rows, s->S > s->B ? s->S : s->B, s->Tp, s->L, s->threads);
    if (!s->dec_floats) return rl_node_fail(n, err, "workspace size overflows");
    n->n_ws = 0;
    if ((s->ws = rl_node_request(n, RL_WS_SCRATCH_FWD, carve(s, NULL, &(sampler_ws){0}), err)) < 0) return -1;
    n->out[0].dtype = RL_I32;
    n->out[0].shape = rl_shape2(s->S, s->L);
    n->out[1].dtype = RL_I32;
    n->out[1].shape = rl_shape1(s->S);
    n->out[2].dtype = RL_F32;
    n->out[2].shape = rl_shape2(s->S, s->L);
    n->out[3].dtype = RL_F32;
    n->out[3].shape = rl_shape2(s->S, s->L);
    n->out[4].dtype = RL_I32;
    n->out[4].shape = rl_shape1(s->S);
    n->out[5].dtype = RL_I32;
    n->out[5].shape = rl_shape1(s->S);
    return 0;
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Draws one token from logits z (scaled in place by 1/T); returns its id and
 * the log-probability under softmax(z / T). */
static int32_t draw(const sampler_state *s, float *z, int64_t V, rl_rng *rng, cand *cands, float *logp) {
    if (s->greedy) {
        int64_t best = 0;
        for (int64_t j = 1; j < V; j++)
            if (z[j] > z[best]) best = j;
        double sum = 0;
        for (int64_t j = 0; j < V; j++) sum += exp((double)z[j] - z[best]);
        *logp = (float)(-log(sum));
        return (int32_t)best;
    }
    const float invt = (float)(1.0 / s->temperature);
    float mx = -INFINITY;
    for (int64_t j = 0; j < V; j++) {
        z[j] *= invt;
        if (z[j] > mx) mx = z[j];
    }
    double total = 0;
    for (int64_t j = 0; j < V; j++) total += exp((double)z[j] - mx);
    const double lse = mx + log(total);
    const double u = rl_rng_uniform_double(rng);
    int32_t tok = (int32_t)(V - 1);
    if (s->top_k == 0 && s->top_p >= 1.0) {
        double acc = 0, target = u * total;
        for (int64_t j = 0; j < V; j++) {
            acc += exp((double)z[j] - mx);
            if (acc > target) {
                tok = (int32_t)j;
                break;
            }
        }
    } else {
        for (int64_t j = 0; j < V; j++) cands[j] = (cand){z[j], (int32_t)j};
        qsort(cands, (size_t)V, sizeof *cands, cand_cmp);
        int64_t k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
        /* top-p over the full distribution: the smallest prefix reaching top_p */
        double mass = 0;
        int64_t keep = 0;
        while (keep < k) {
            mass += exp((double)cands[keep].z - lse);
            keep++;
            if (mass >= s->top_p) break;
        }
        double kept = 0;
        for (int64_t i = 0; i < keep; i++) kept += exp((double)cands[i].z - mx);
        double acc = 0, target = u * kept;
        tok = cands[keep - 1].id;
        for (int64_t i = 0; i < keep; i++) {
            acc += exp((double)cands[i].z - mx);
            if (acc > target) {
                tok = cands[i].id;
                break;
            }
        }
    }
    *logp = (float)((double)z[tok] - lse);
    return tok;
}

static int is_stop(const sampler_state *s, int32_t t) {
    for (int i = 0; i < s->n_stop; i++)
        if (s->stop[i] == t) return 1;
    return 0;
}

static int sampler_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    sampler_state *s = n->state;
    const rl_qwen2_config *c = &s->m->cfg;
    if (!s->m->params->data) return rl_node_fail(n, err, "parameter set '%s' is not finalised", s->m->params->name);
    const int64_t B = n->in[0].shape.dim[0], Tp = n->in[0].shape.dim[1], G = s->G, V = c->vocab;
    const int64_t L = s->L, S = B * G, kd = c->n_kv_heads * c->head_dim;
    if (B > s->B || Tp > s->Tp || n->in[1].shape.dim[0] != B)
        return rl_node_fail(n, err, "prompt batch [%lld, %lld] exceeds the planned [%lld, %lld]", (long long)B,
                            (long long)Tp, (long long)s->B, (long long)s->Tp);
    const int32_t *prompt = rl_i32(&n->in[0]), *plen = rl_i32(&n->in[1]);
    const int32_t *pid = n->in[2].data ? rl_i32(&n->in[2]) : NULL;
    rl_error e = {0};
    /* The f32 weights may have changed since the last run (training): the
       bf16 copy is refreshed each time (allocated on the first run only). */
    if (s->bf16 && rl_qwen2_bf16_weights(s->m, &e)) return rl_node_fail(n, err, "%s", e.msg);
    sampler_ws w;
    carve(s, n->ws[s->ws].data, &w);
    rl_rope_table(w.cos_t, w.sin_t, L, c->head_dim, c->rope_theta);
    /* Validate and pack the prompts (prefill rows). */
    int64_t rows = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = plen[b];
        if (len < 1 || len > Tp)
            return rl_node_fail(n, err, "row %lld: prompt length %lld outside [1, %lld]", (long long)b, (long long)len,
                                (long long)Tp);
        for (int64_t t = 0; t < len; t++) {
            int32_t id = prompt[b * Tp + t];
            if (id < 0 || id >= V)
                return rl_node_fail(n, err, "row %lld, position %lld: token id %d outside the vocabulary [0, %lld)",
                                    (long long)b, (long long)t, id, (long long)V);
            w.toks[rows + t] = id;
        }
        w.seqs[b] = (rl_attn_seq){rows, len, b * G * L, 0};
        rows += len;
    }
    if (rl_qwen2_decode(s->m, w.kc, w.vc, s->S * L, w.toks, w.seqs, B, s->max_rows, s->Tp, L, w.cos_t, w.sin_t,
                        s->bf16, s->threads, w.dec, w.logits, &e))
        return rl_node_fail(n, err, "%s", e.msg);
    /* Fan out: cache rows and next-token logits of prompt b go to its G slots
       (descending, so rows not yet copied are never overwritten). */
    for (int64_t b = B - 1; b >= 0; b--)
        for (int64_t g = G - 1; g >= 0; g--) {
            int64_t sl = b * G + g;
            if (sl != b) memcpy(w.logits + sl * V, w.logits + b * V, (size_t)V * sizeof(float));
            if (g == 0) continue;
            for (int64_t l = 0; l < c->n_layers; l++) {
                size_t off = (size_t)l * (size_t)(s->S * L) * (size_t)kd, bytes = (size_t)(plen[b] * kd) * sizeof(float);
                memcpy(w.kc + off + (size_t)(sl * L) * (size_t)kd, w.kc + off + (size_t)(b * G * L) * (size_t)kd, bytes);
                memcpy(w.vc + off + (size_t)(sl * L) * (size_t)kd, w.vc + off + (size_t)(b * G * L) * (size_t)kd, bytes);
            }
        }
    int32_t *tok = rl_i32(&n->out[0]), *len = rl_i32(&n->out[1]), *fin = rl_i32(&n->out[4]), *tru = rl_i32(&n->out[5]);
    float *mask = rl_f32(&n->out[2]), *lp = rl_f32(&n->out[3]);
    n->out[0].shape = n->out[2].shape = n->out[3].shape = rl_shape2(S, L);
    n->out[1].shape = n->out[4].shape = n->out[5].shape = rl_shape1(S);
    memset(tok, 0, (size_t)(S * L) * sizeof(int32_t));
    memset(mask, 0, (size_t)(S * L) * sizeof(float));
    memset(lp, 0, (size_t)(S * L) * sizeof(float));
    const uint64_t seed = ctx->seed + 0x9E3779B97F4A7C15ull * (uint64_t)rl_node_opt_int(n, "seed");
    for (int64_t sl = 0; sl < S; sl++) {
        int64_t b = sl / G;
        memcpy(tok + sl * L, prompt + b * Tp, (size_t)plen[b] * sizeof(int32_t));
        len[sl] = plen[b];
        fin[sl] = tru[sl] = 0;
        w.pos[sl] = plen[b];
        w.gen[sl] = 0;
        w.act[sl] = (int32_t)sl;
        rl_rng_init(&w.rng[sl], seed,
                    rl_rng_stream3((uint64_t)ctx->step, (uint64_t)(uint32_t)(pid ? pid[b] : (int32_t)b), (uint64_t)(sl % G)));
    }
    int64_t n_act = S, total_gen = 0;
    while (n_act > 0) {
        /* Draw for every active sample (its logits are row i), then decode the
           ones that continue. */
        int64_t n_next = 0;
        for (int64_t i = 0; i < n_act; i++) {
            const int64_t sl = w.act[i];
            float l;
            int32_t t = draw(s, w.logits + i * V, V, &w.rng[sl], w.cands, &l);
            const int64_t p = w.pos[sl];
            tok[sl * L + p] = t;
            lp[sl * L + p] = l;
            mask[sl * L + p] = 1.0f;
            len[sl] = (int32_t)(p + 1);
            w.gen[sl]++;
            total_gen++;
            if (is_stop(s, t))
                fin[sl] = 1;
            else if (w.gen[sl] >= s->max_new)
                tru[sl] = 1;
            else {
                w.seqs[n_next] = (rl_attn_seq){n_next, 1, sl * L, p};
                w.toks[n_next] = t;
                w.next[n_next++] = (int32_t)sl;
            }
            w.pos[sl] = (int32_t)(p + 1);
        }
        if (n_next == 0) break;
        if (rl_qwen2_decode(s->m, w.kc, w.vc, s->S * L, w.toks, w.seqs, n_next, s->max_rows, s->Tp, L, w.cos_t,
                            w.sin_t, s->bf16, s->threads, w.dec, w.logits, &e))
            return rl_node_fail(n, err, "%s", e.msg);
        memcpy(w.act, w.next, (size_t)n_next * sizeof(int32_t));
        n_act = n_next;
    }
    int64_t n_trunc = 0;
    for (int64_t sl = 0; sl < S; sl++) n_trunc += tru[sl];
    rl_metric_set(ctx, n, "response_len", (double)total_gen / (double)S);
    rl_metric_set(ctx, n, "truncated", (double)n_trunc / (double)S);
    return 0;
}

static void sampler_destroy(rl_node *n) {
    sampler_state *s = n->state;
    if (!s) return;
    rl_free(s->stop);
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_sampler = {
    .name = "sampler",
    .doc = "Qwen2 generation with a KV cache: G samples per prompt, temperature / top-k / top-p, stop tokens",
    .inputs = sampler_inputs,
    .n_inputs = 3,
    .outputs = sampler_outputs,
    .n_outputs = 6,
    .options = sampler_options,
    .n_options = 10,
    .init = sampler_init,
    .infer = sampler_infer,
    .forward = sampler_forward,
    .destroy = sampler_destroy,
};
