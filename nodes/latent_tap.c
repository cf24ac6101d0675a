/* latent_tap: (target, condition, tau) triples for the flow from the
 * policy's tapped hidden states (DESIGN.md section 2, "Latent tap").
 *
 * For every tapped layer i, context mode m and response token (b, k) that
 * has a partner p (token_pre: p = k + s, token_post: p = k − s, identity:
 * p = k), one row: target = h_i[b, k], cond = h_i[b, p], tau = tau_i,
 * index = (b, k, i·n_modes + m). The partner must be a valid position of
 * the same sequence (0 ≤ p < length), but need not be a response token: as
 * in the reference code, the whole sequence's latents are context, so the
 * first response token's token_post condition is the last prompt latent.
 * Padding is never context. A sequence's length is the `lengths` input
 * when connected, else one past its last response token (right padding).
 * Everything here is detached: the node has no backward, and its inputs
 * are NO_GRAD, so no gradient from the flow reaches the policy. */
#include <string.h>

#include "alloc.h"
#include "node.h"

enum { IN_HIDDEN, IN_TAU, IN_MASK, IN_LENGTHS, N_IN };
enum { OUT_TARGET, OUT_COND, OUT_TAU, OUT_INDEX, N_OUT };
enum { MODE_PRE, MODE_POST, MODE_IDENTITY };

#define LT_MAX_MODES 8

static const rl_port_spec lt_inputs[] = {
    {"hidden", RL_F32, 4, RL_PORT_NO_GRAD, 0, "[n_tap, B, T, d]: the policy's tapped block outputs"},
    {"tau", RL_F32, 1, RL_PORT_NO_GRAD, 0, "[n_tap]: j/N of each tapped block"},
    {"mask", RL_F32, 2, RL_PORT_NO_GRAD, 0, "[B, T]: 1 on response tokens"},
    {"lengths", RL_I32, 1, RL_PORT_NO_GRAD | RL_PORT_OPTIONAL, 0,
     "[B]: valid tokens per sequence (default: up to the last response token)"},
};
static const rl_port_spec lt_outputs[] = {
    {"target", RL_F32, 2, 0, 0, "[M, d]: latent h_k of each response token with a partner"},
    {"cond", RL_F32, 2, 0, 0, "[M, d]: its context latent"},
    {"tau", RL_F32, 1, 0, 0, "[M]: layer fraction j/N of the row's layer"},
    {"index", RL_I32, 2, 0, 0, "[M, 3]: (row b, position k, group = layer * n_modes + mode)"},
};
static const rl_option_spec lt_options[] = {
    {"context", RL_VAL_STRINGS, "token_pre",
     "context modes, any of token_pre (cond h_{k+s}), token_post (h_{k-s}), identity (h_k); several are averaged",
     NULL},
    {"shift", RL_VAL_NUMBERS, "1", "shift s >= 1: one for all modes, or one per mode", NULL},
};

typedef struct lt_state {
    int n_modes;
    int mode[LT_MAX_MODES];
    int64_t shift[LT_MAX_MODES];
} lt_state;

static int lt_init(rl_node *n, rl_error *err) {
    lt_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    n->state = s;
    int nm = 0, ns = 0;
    const char *const *modes = rl_node_opt_strings(n, "context", &nm);
    const double *shifts = rl_node_opt_numbers(n, "shift", &ns);
    if (nm < 1) return rl_node_fail(n, err, "option 'context' lists no mode");
    if (nm > LT_MAX_MODES) return rl_node_fail(n, err, "option 'context' lists %d modes (at most %d)", nm, LT_MAX_MODES);
    if (ns != 1 && ns != nm)
        return rl_node_fail(n, err, "option 'shift' has %d values for %d context modes (give one, or one per mode)", ns,
                            nm);
    for (int i = 0; i < nm; i++) {
        const char *m = modes[i];
        if (strcmp(m, "token_pre") == 0) s->mode[i] = MODE_PRE;
        else if (strcmp(m, "token_post") == 0) s->mode[i] = MODE_POST;
        else if (strcmp(m, "identity") == 0) s->mode[i] = MODE_IDENTITY;
        else
            return rl_node_fail(n, err, "unknown context mode '%s' (expected token_pre, token_post or identity)", m);
        double sh = shifts[ns == 1 ? 0 : i];
        if (!(sh >= 1 && sh <= 1e6) || sh != (double)(int64_t)sh)
            return rl_node_fail(n, err, "shift %g for context mode '%s' must be a whole number >= 1", sh, m);
        s->shift[i] = (int64_t)sh;
        for (int k = 0; k < i; k++)
            if (s->mode[k] == s->mode[i] && (s->shift[k] == s->shift[i] || s->mode[i] == MODE_IDENTITY))
                return rl_node_fail(n, err, "context mode '%s' is listed twice", m);
    }
    s->n_modes = nm;
    return 0;
}

static int lt_check(rl_node *n, rl_error *err) {
    char a[64], b[64];
    const rl_shape *h = &n->in[IN_HIDDEN].shape, *m = &n->in[IN_MASK].shape;
    if (n->in[IN_TAU].shape.dim[0] != h->dim[0])
        return rl_node_fail(n, err, "input 'tau' has %lld entries but 'hidden' %s has %lld tapped layers",
                            (long long)n->in[IN_TAU].shape.dim[0], rl_shape_str(h, a, sizeof a), (long long)h->dim[0]);
    if (m->dim[0] != h->dim[1] || m->dim[1] != h->dim[2])
        return rl_node_fail(n, err, "input 'mask' %s does not match 'hidden' %s (expected [B, T] = [%lld, %lld])",
                            rl_shape_str(m, a, sizeof a), rl_shape_str(h, b, sizeof b), (long long)h->dim[1],
                            (long long)h->dim[2]);
    if (n->src[IN_LENGTHS] && n->in[IN_LENGTHS].shape.dim[0] != h->dim[1])
        return rl_node_fail(n, err, "input 'lengths' has %lld entries for %lld sequences",
                            (long long)n->in[IN_LENGTHS].shape.dim[0], (long long)h->dim[1]);
    return 0;
}

static int lt_infer(rl_node *n, rl_error *err) {
    const lt_state *s = n->state;
    if (lt_check(n, err)) return -1;
    const rl_shape *h = &n->in[IN_HIDDEN].shape;
    int64_t M = rl_shape_numel(&(rl_shape){3, {h->dim[0], h->dim[1], h->dim[2]}});
    if (M < 0 || M > INT32_MAX / s->n_modes) return rl_node_fail(n, err, "too many latents");
    M *= s->n_modes;
    if (M == 0) M = 1; /* a zero-size buffer plans as nothing; keep one row */
    n->out[OUT_TARGET].shape = rl_shape2(M, h->dim[3]);
    n->out[OUT_COND].shape = rl_shape2(M, h->dim[3]);
    n->out[OUT_TAU].shape = rl_shape1(M);
    n->out[OUT_INDEX].shape = rl_shape2(M, 3);
    return 0;
}

static int lt_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    (void)ctx;
    const lt_state *s = n->state;
    if (lt_check(n, err)) return -1;
    const rl_shape *h = &n->in[IN_HIDDEN].shape;
    int64_t L = h->dim[0], B = h->dim[1], T = h->dim[2], d = h->dim[3];
    const float *hid = rl_f32(&n->in[IN_HIDDEN]), *tau = rl_f32(&n->in[IN_TAU]), *mask = rl_f32(&n->in[IN_MASK]);
    const int32_t *lens = n->src[IN_LENGTHS] ? rl_i32(&n->in[IN_LENGTHS]) : NULL;
    float *tg = rl_f32(&n->out[OUT_TARGET]), *cd = rl_f32(&n->out[OUT_COND]), *ot = rl_f32(&n->out[OUT_TAU]);
    int32_t *ix = rl_i32(&n->out[OUT_INDEX]);
    int64_t M = 0;
    for (int64_t i = 0; i < L; i++) {
        if (!(tau[i] > 0.0f && tau[i] <= 1.0f))
            return rl_node_fail(n, err, "input 'tau'[%lld] = %g is outside (0, 1]", (long long)i, (double)tau[i]);
        for (int mi = 0; mi < s->n_modes; mi++) {
            int64_t off = s->mode[mi] == MODE_PRE ? s->shift[mi] : s->mode[mi] == MODE_POST ? -s->shift[mi] : 0;
            for (int64_t b = 0; b < B; b++) {
                const float *mk = mask + b * T;
                int64_t len = 0;
                if (lens) {
                    len = lens[b] < 0 ? 0 : (lens[b] > T ? T : lens[b]);
                } else {
                    for (int64_t k = T - 1; k >= 0; k--)
                        if (mk[k] > 0.0f) { len = k + 1; break; }
                }
                const float *hb = hid + (i * B + b) * T * d;
                for (int64_t k = 0; k < len; k++) {
                    int64_t p = k + off;
                    if (!(mk[k] > 0.0f) || p < 0 || p >= len) continue;
                    memcpy(tg + M * d, hb + k * d, (size_t)d * sizeof(float));
                    memcpy(cd + M * d, hb + p * d, (size_t)d * sizeof(float));
                    ot[M] = tau[i];
                    ix[M * 3 + 0] = (int32_t)b;
                    ix[M * 3 + 1] = (int32_t)k;
                    ix[M * 3 + 2] = (int32_t)(i * s->n_modes + mi);
                    M++;
                }
            }
        }
    }
    n->out[OUT_TARGET].shape = rl_shape2(M, d);
    n->out[OUT_COND].shape = rl_shape2(M, d);
    n->out[OUT_TAU].shape = rl_shape1(M);
    n->out[OUT_INDEX].shape = rl_shape2(M, 3);
    return 0;
}

static void lt_destroy(rl_node *n) {
    rl_free(n->state);
    n->state = NULL;
}

const rl_node_type rl_node_latent_tap = {
    .name = "latent_tap",
    .doc = "flow inputs from tapped policy latents: (target h_k, context h_{k+-s}, tau) per response token",
    .inputs = lt_inputs,
    .n_inputs = N_IN,
    .outputs = lt_outputs,
    .n_outputs = N_OUT,
    .options = lt_options,
    .n_options = (int)(sizeof lt_options / sizeof lt_options[0]),
    .init = lt_init,
    .infer = lt_infer,
    .forward = lt_forward,
    .destroy = lt_destroy,
};
