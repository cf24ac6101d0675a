/* RL formulas over flat arrays (see rl_math.h and docs/rl.md). Accumulations
 * run in double so results do not depend on summation length more than
 * necessary and finite-difference checks of the losses stay clean. */
#include "rl_math.h"

#include <math.h>
#include <string.h>

/* ---- KL estimators ---- */

int rl_kl_estimator_parse(const char *s, rl_kl_estimator *out, rl_error *err) {
    if (!strcmp(s, "k1")) *out = RL_KL_K1;
    else if (!strcmp(s, "k2") || !strcmp(s, "mse")) *out = RL_KL_K2;
    else if (!strcmp(s, "k3") || !strcmp(s, "low_var_kl")) *out = RL_KL_K3;
    else return rl_fail(err, "unknown KL estimator '%s' (expected k1, k2 or k3)", s);
    return 0;
}

double rl_kl_value(rl_kl_estimator e, double l) {
    switch (e) {
    case RL_KL_K1: return l;
    case RL_KL_K2: return 0.5 * l * l;
    case RL_KL_K3: return exp(-l) - 1.0 + l;
    }
    return 0;
}

double rl_kl_grad(rl_kl_estimator e, double l) {
    switch (e) {
    case RL_KL_K1: return 1.0;
    case RL_KL_K2: return l;
    case RL_KL_K3: return 1.0 - exp(-l);
    }
    return 0;
}

/* ---- Flow reward ---- */

int rl_flow_norm_parse(const char *s, rl_flow_norm *out, rl_error *err) {
    if (!strcmp(s, "minmax")) *out = RL_FLOW_NORM_MINMAX;
    else if (!strcmp(s, "minmax_bilateral")) *out = RL_FLOW_NORM_MINMAX_BILATERAL;
    else return rl_fail(err, "unknown flow score normalisation '%s' (expected minmax or minmax_bilateral)", s);
    return 0;
}

void rl_flow_reward_cfg_default(rl_flow_reward_cfg *cfg) {
    cfg->norm = RL_FLOW_NORM_MINMAX;
    cfg->power = 1.0;
    cfg->threshold = 0.6;
    cfg->topk = 15;
    cfg->coef = 0.01;
}

int rl_flow_reward(const float *score, const float *mask, const float *score_mask, int64_t N, int64_t T,
                   const rl_flow_reward_cfg *cfg, float *out, int32_t *idx, rl_flow_reward_stats *stats,
                   rl_error *err) {
    const int bil = cfg->norm == RL_FLOW_NORM_MINMAX_BILATERAL;
    int64_t n_rewarded = 0;
    double reward_sum = 0;
    for (int64_t i = 0; i < N; i++) {
        const float *s = score + i * T, *m = mask + i * T, *sm = score_mask ? score_mask + i * T : NULL;
        float *r = out + i * T;
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t k = 0; k < T; k++) {
            if (!(m[k] > 0) || (sm && !(sm[k] > 0))) continue;
            if (!isfinite(s[k]))
                return rl_fail(err, "flow score is not finite at response %lld, position %lld",
                               (long long)i, (long long)k);
            if (s[k] < lo) lo = s[k];
            if (s[k] > hi) hi = s[k];
        }
        /* Normalised score (written into r for now), candidates into idx. A row
         * whose scored tokens are all equal (or that has none) gets s-hat = 0:
         * nothing deviates from anything, so nothing is penalised. */
        const double range = hi - lo;
        int32_t n_cand = 0;
        for (int64_t k = 0; k < T; k++) {
            r[k] = 0.0f;
            if (!(m[k] > 0) || (sm && !(sm[k] > 0)) || !(range > 0)) continue;
            double v = (s[k] - lo) / range;
            if (bil) v = 2.0 * v - 1.0;
            if (cfg->power != 1.0) {
                double a = pow(fabs(v), cfg->power);
                v = v < 0 ? -a : a;
            }
            double key = bil ? fabs(v) : v;
            if (!(key > cfg->threshold)) continue;
            r[k] = (float)v;
            idx[n_cand++] = (int32_t)k;
        }
        /* Top-k by partial selection sort over the candidates: k is small (15)
         * and the candidate list is at most T long. */
        int64_t keep = n_cand;
        if (cfg->topk > 0 && n_cand > cfg->topk) {
            keep = cfg->topk;
            /* Rank by s-hat (|s-hat| when bilateral); equal keys keep the
             * earlier position, so the choice depends on the data only. */
            for (int64_t a = 0; a < keep; a++) {
                int64_t best = a;
                for (int64_t b = a + 1; b < n_cand; b++) {
                    int32_t pb = idx[b], pbest = idx[best];
                    float kb = bil ? fabsf(r[pb]) : r[pb], kbest = bil ? fabsf(r[pbest]) : r[pbest];
                    int before = kb != kbest ? kb > kbest : pb < pbest;
                    if (before) best = b;
                }
                int32_t t = idx[a]; idx[a] = idx[best]; idx[best] = t;
            }
            for (int64_t a = keep; a < n_cand; a++) r[idx[a]] = 0.0f;
        }
        for (int64_t a = 0; a < keep; a++) {
            float v = (float)(-cfg->coef * r[idx[a]]);
            r[idx[a]] = v;
            if (v != 0.0f) { n_rewarded++; reward_sum += v; }
        }
    }
    if (stats) { stats->n_rewarded = n_rewarded; stats->reward_sum = reward_sum; }
    return 0;
}

/* ---- Outcome advantages ---- */

int rl_adv_estimator_parse(const char *s, rl_adv_estimator *out, rl_error *err) {
    if (!strcmp(s, "group_norm") || !strcmp(s, "grpo")) *out = RL_ADV_GROUP_NORM;
    else if (!strcmp(s, "rloo")) *out = RL_ADV_RLOO;
    else if (!strcmp(s, "reinforce_baseline")) *out = RL_ADV_REINFORCE_BASELINE;
    else if (!strcmp(s, "dr_grpo")) *out = RL_ADV_DR_GRPO;
    else return rl_fail(err, "unknown advantage estimator '%s' (expected group_norm, rloo, reinforce_baseline or dr_grpo)", s);
    return 0;
}

int rl_outcome_advantage(const float *reward, const float *keep, int64_t N, int64_t G, rl_adv_estimator est,
                         double eps, float *adv, rl_error *err) {
    if (G < 1 || N % G != 0)
        return rl_fail(err, "%lld responses do not form groups of %lld", (long long)N, (long long)G);
    for (int64_t i = 0; i < N; i++)
        if (!isfinite(reward[i])) return rl_fail(err, "reward of response %lld is not finite", (long long)i);
    for (int64_t g0 = 0; g0 < N; g0 += G) {
        /* Statistics over the kept members of the group only. */
        double sum = 0, n = 0;
        for (int64_t j = g0; j < g0 + G; j++)
            if (!keep || keep[j] != 0) { sum += reward[j]; n += 1; }
        double mean = n > 0 ? sum / n : 0, var = 0;
        for (int64_t j = g0; j < g0 + G; j++)
            if (!keep || keep[j] != 0) var += (reward[j] - mean) * (reward[j] - mean);
        double std = n > 1 ? sqrt(var / (n - 1)) : 0;
        for (int64_t j = g0; j < g0 + G; j++) {
            if (keep && keep[j] == 0) { adv[j] = 0.0f; continue; }
            double a;
            if (n < 2) {
                if (est == RL_ADV_RLOO)
                    return rl_fail(err, "rloo needs at least 2 responses per group (group %lld has %g)",
                                   (long long)(g0 / G), n);
                a = reward[j]; /* a lone response: baseline 0, scale 1 (verl's convention) */
            } else if (est == RL_ADV_GROUP_NORM) {
                a = (reward[j] - mean) / (std + eps);
            } else if (est == RL_ADV_RLOO) {
                a = reward[j] - (sum - reward[j]) / (n - 1);
            } else {
                a = reward[j] - mean;
            }
            adv[j] = (float)a;
        }
    }
    return 0;
}

void rl_returns(const float *adv, const float *mask, const float *flow, const float *kl, double kl_coef,
                const float *keep, int64_t N, int64_t T, double gamma, float *out) {
    for (int64_t i = 0; i < N; i++) {
        const float *m = mask + i * T;
        float *A = out + i * T;
        if (keep && keep[i] == 0) { memset(A, 0, (size_t)T * sizeof *A); continue; }
        int64_t last = -1;
        for (int64_t k = T - 1; k >= 0; k--) if (m[k] > 0) { last = k; break; }
        /* Backward recursion G_k = rho_k + gamma*G_next over valid tokens; the
         * response is contiguous, so this is sum_s gamma^(s-k) rho_s. */
        double G = 0;
        for (int64_t k = T - 1; k >= 0; k--) {
            if (!(m[k] > 0)) { A[k] = 0.0f; continue; }
            double rho = k == last ? adv[i] : 0.0;
            if (kl && kl_coef != 0) rho -= kl_coef * kl[i * T + k];
            if (flow) rho += flow[i * T + k];
            G = rho + gamma * G;
            A[k] = (float)G;
        }
    }
}

void rl_whiten_tokens(float *A, const float *mask, const float *keep, int64_t N, int64_t T, double eps) {
    double sum = 0, n = 0;
    for (int64_t i = 0; i < N; i++) {
        if (keep && keep[i] == 0) continue;
        for (int64_t k = 0; k < T; k++) if (mask[i * T + k] > 0) { sum += A[i * T + k]; n += 1; }
    }
    if (n < 1) return;
    double mean = sum / n, var = 0;
    for (int64_t i = 0; i < N; i++) {
        if (keep && keep[i] == 0) continue;
        for (int64_t k = 0; k < T; k++)
            if (mask[i * T + k] > 0) { double d = A[i * T + k] - mean; var += d * d; }
    }
    double std = n > 1 ? sqrt(var / (n - 1)) : 0;
    for (int64_t i = 0; i < N; i++) {
        int drop = keep && keep[i] == 0;
        for (int64_t k = 0; k < T; k++) {
            float *a = &A[i * T + k];
            *a = (!drop && mask[i * T + k] > 0) ? (float)((*a - mean) / (std + eps)) : 0.0f;
        }
    }
}

/* ---- Entropy shaping ---- */

void rl_entropy_shape(const float *A, const float *H, const float *mask, int64_t n, double alpha, double kappa,
                      float *out) {
    for (int64_t k = 0; k < n; k++) {
        if (!(mask[k] > 0)) { out[k] = A[k]; continue; }
        double bonus = alpha * H[k], cap = fabs((double)A[k]) / kappa;
        out[k] = (float)(A[k] + (bonus < cap ? bonus : cap));
    }
}

/* ---- PPO clipped surrogate ---- */

int rl_agg_mode_parse(const char *s, rl_agg_mode *out, rl_error *err) {
    if (!strcmp(s, "token_mean")) *out = RL_AGG_TOKEN_MEAN;
    else if (!strcmp(s, "seq_mean_token_mean")) *out = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    else if (!strcmp(s, "seq_mean_token_sum_norm")) *out = RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM;
    else return rl_fail(err, "unknown loss aggregation '%s' (expected token_mean, seq_mean_token_mean or seq_mean_token_sum_norm)", s);
    return 0;
}

void rl_pg_cfg_default(rl_pg_cfg *cfg) {
    cfg->clip_low = 0.2;
    cfg->clip_high = 0.2;
    cfg->dual_clip = 0;
    cfg->agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
    cfg->norm_len = 0;
    cfg->kl_coef = 0;
    cfg->kl_est = RL_KL_K3;
}

/* One token: surrogate value and its derivative w.r.t. logp, plus which
 * branch is active (1 = ratio clip, 2 = dual clip). */
static double pg_token(const rl_pg_cfg *cfg, double lp, double old, double A, double *d, int *branch) {
    double ratio = exp(lp - old);
    double lo = 1.0 - cfg->clip_low, hi = 1.0 + cfg->clip_high;
    double clipped = ratio < lo ? lo : (ratio > hi ? hi : ratio);
    double u1 = -A * ratio, u2 = -A * clipped;
    double L, dL;
    *branch = 0;
    if (u2 > u1) { L = u2; dL = 0; *branch = 1; } /* clipped branch: constant in logp */
    else { L = u1; dL = -A * ratio; }
    if (cfg->dual_clip > 0 && A < 0) {
        double cap = -A * cfg->dual_clip;
        if (cap < L) { L = cap; dL = 0; *branch = 2; }
    }
    *d = dL;
    return L;
}

double rl_pg_loss(const float *logp, const float *old_logp, const float *adv, const float *mask,
                  const float *ref_logp, const float *entropy, int64_t N, int64_t T, const rl_pg_cfg *cfg,
                  float *grad, float gscale, rl_pg_stats *stats) {
    const int use_kl = ref_logp && cfg->kl_coef != 0;
    int64_t n_tok = 0, n_seq = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t c = 0;
        for (int64_t k = 0; k < T; k++) c += mask[i * T + k] > 0;
        n_tok += c;
        n_seq += c > 0;
    }
    double norm_len = cfg->norm_len > 0 ? cfg->norm_len : (double)T;
    double loss = 0, pg = 0, clipped = 0, dual = 0, akl = 0, rkl = 0, ent = 0;
    for (int64_t i = 0; i < N; i++) {
        const int64_t o = i * T;
        int64_t c = 0;
        for (int64_t k = 0; k < T; k++) c += mask[o + k] > 0;
        if (c == 0) continue;
        /* Weight of one token of this row in the aggregated loss. */
        double w;
        switch (cfg->agg) {
        case RL_AGG_TOKEN_MEAN: w = 1.0 / (double)n_tok; break;
        case RL_AGG_SEQ_MEAN_TOKEN_MEAN: w = 1.0 / ((double)n_seq * (double)c); break;
        default: w = 1.0 / ((double)N * norm_len); break;
        }
        for (int64_t k = 0; k < T; k++) {
            if (!(mask[o + k] > 0)) continue;
            double d;
            int branch;
            double L = pg_token(cfg, logp[o + k], old_logp[o + k], adv[o + k], &d, &branch);
            double tl = L;
            pg += w * L;
            if (ref_logp) {
                double l = (double)logp[o + k] - ref_logp[o + k];
                double kv = rl_kl_value(cfg->kl_est, l);
                rkl += kv;
                if (use_kl) {
                    tl += cfg->kl_coef * kv;
                    d += cfg->kl_coef * rl_kl_grad(cfg->kl_est, l);
                }
            }
            loss += w * tl;
            clipped += branch == 1;
            dual += branch == 2;
            akl += (double)old_logp[o + k] - logp[o + k];
            if (entropy) ent += entropy[o + k];
            if (grad) grad[o + k] += (float)(gscale * w * d);
        }
    }
    if (stats) {
        double nt = n_tok > 0 ? (double)n_tok : 1.0;
        stats->loss = loss;
        stats->pg_loss = pg;
        stats->clip_frac = clipped / nt;
        stats->dual_clip_frac = dual / nt;
        stats->approx_kl = akl / nt;
        stats->ref_kl = rkl / nt;
        stats->entropy = ent / nt;
        stats->n_tokens = n_tok;
    }
    return loss;
}

/* ---- Online flow loss ---- */

static void sift_down(float *x, int64_t root, int64_t n) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && x[c + 1] > x[c]) c++;
        if (!(x[c] > x[root])) return;
        float t = x[c]; x[c] = x[root]; x[root] = t;
        root = c;
    }
}

/* Heapsort: in place, O(n log n), no allocation (qsort may allocate). */
static void sort_floats(float *x, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(x, i, n);
    for (int64_t end = n - 1; end > 0; end--) {
        float t = x[0]; x[0] = x[end]; x[end] = t;
        sift_down(x, 0, end);
    }
}

double rl_quantile_inplace(float *x, int64_t n, double q) {
    sort_floats(x, n);
    if (q <= 0) return x[0];
    if (q >= 1) return x[n - 1];
    double pos = q * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos);
    int64_t hi = lo + 1 < n ? lo + 1 : lo;
    double f = pos - (double)lo;
    return (double)x[lo] + f * ((double)x[hi] - (double)x[lo]);
}

float rl_flow_weight(double reward, double correct, double soft_flow) {
    return reward >= correct ? 1.0f : (float)soft_flow;
}

int64_t rl_flow_weights(const float *reward, int64_t N, double correct, double soft_flow, float *weight) {
    int64_t zeros = 0;
    for (int64_t i = 0; i < N; i++) {
        weight[i] = rl_flow_weight(reward[i], correct, soft_flow);
        zeros += weight[i] == 0.0f;
    }
    return zeros;
}

/* Weights come from `weight` when given, else from the rewards: one body, so
 * the two entry points cannot drift apart. */
static double flow_loss_impl(const float *token_loss, const float *reward, const float *weight, const float *mask,
                             const float *entropy, int64_t N, int64_t T, const rl_flow_loss_cfg *cfg, float *dloss,
                             float *scratch, rl_flow_loss_stats *stats) {
    const int quant = cfg->entropy_quantile > 0 && entropy;
    double num = 0, wsum = 0;
    int64_t n_acc = 0;
    /* First pass: per-response weighted token means and the weight sum; the
     * per-token weights u/sum(u) go into dloss, scaled by w_i / sum(w) after. */
    for (int64_t i = 0; i < N; i++) {
        const int64_t o = i * T;
        const float *m = mask + o;
        double wi = weight ? weight[i] : rl_flow_weight(reward[i], cfg->correct, cfg->soft_flow);
        double thr = 0;
        if (quant) {
            int64_t c = 0;
            for (int64_t k = 0; k < T; k++) if (m[k] > 0) scratch[c++] = entropy[o + k];
            if (c > 0) thr = rl_quantile_inplace(scratch, c, cfg->entropy_quantile);
        }
        double usum = 0, lsum = 0;
        for (int64_t k = 0; k < T; k++) {
            double u = 0;
            if (m[k] > 0) u = (!quant || entropy[o + k] >= thr) ? 1.0 : cfg->soft_flow;
            usum += u;
            lsum += u * token_loss[o + k];
            if (dloss) dloss[o + k] = (float)u;
        }
        if (!(usum > 0)) {
            if (dloss) for (int64_t k = 0; k < T; k++) dloss[o + k] = 0.0f;
            continue;
        }
        num += wi * lsum / usum;
        wsum += wi;
        n_acc += wi > 0;
        if (dloss) for (int64_t k = 0; k < T; k++) dloss[o + k] = (float)(dloss[o + k] * wi / usum);
    }
    double loss = wsum > 0 ? num / wsum : 0.0;
    if (dloss) {
        double s = wsum > 0 ? 1.0 / wsum : 0.0;
        for (int64_t k = 0; k < N * T; k++) dloss[k] = (float)(dloss[k] * s);
    }
    if (stats) { stats->loss = loss; stats->weight_sum = wsum; stats->n_accepted = n_acc; }
    return loss;
}

double rl_flow_loss(const float *token_loss, const float *reward, const float *mask, const float *entropy,
                    int64_t N, int64_t T, const rl_flow_loss_cfg *cfg, float *dloss, float *scratch,
                    rl_flow_loss_stats *stats) {
    return flow_loss_impl(token_loss, reward, NULL, mask, entropy, N, T, cfg, dloss, scratch, stats);
}

double rl_flow_loss_weighted(const float *token_loss, const float *weight, const float *mask, const float *entropy,
                             int64_t N, int64_t T, const rl_flow_loss_cfg *cfg, float *dloss, float *scratch,
                             rl_flow_loss_stats *stats) {
    return flow_loss_impl(token_loss, NULL, weight, mask, entropy, N, T, cfg, dloss, scratch, stats);
}

/* ---- Group filter ---- */

int64_t rl_group_filter(const float *reward, int64_t N, int64_t G, rl_filter_by by, double correct, float *keep) {
    int64_t kept = 0;
    for (int64_t g0 = 0; g0 + G <= N; g0 += G) {
        int mixed;
        if (by == RL_FILTER_CORRECT) {
            int64_t nc = 0;
            for (int64_t j = g0; j < g0 + G; j++) nc += reward[j] >= correct;
            mixed = nc > 0 && nc < G;
        } else {
            mixed = 0;
            for (int64_t j = g0 + 1; j < g0 + G; j++) if (reward[j] != reward[g0]) mixed = 1;
        }
        kept += mixed;
        for (int64_t j = g0; j < g0 + G; j++) keep[j] = mixed ? 1.0f : 0.0f;
    }
    return kept;
}

/* Mean score over a response's valid tokens; 0 valid tokens -> NAN. */
static double response_mean(const float *score, const float *valid, int64_t i, int64_t t) {
    double sum = 0, cnt = 0;
    for (int64_t k = 0; k < t; k++)
        if (valid[i * t + k] > 0) { sum += score[i * t + k]; cnt += 1; }
    return cnt > 0 ? sum / cnt : NAN;
}

double rl_flow_separation(const float *score, const float *valid, const float *reward, int64_t n, int64_t t,
                          int64_t group, double *mean_correct, double *mean_wrong, int64_t *pairs) {
    double below = 0, sc = 0, sw = 0, nc = 0, nw = 0;
    int64_t np = 0;
    for (int64_t g0 = 0; group > 0 && g0 + group <= n; g0 += group) {
        for (int64_t i = g0; i < g0 + group; i++) {
            double mi = response_mean(score, valid, i, t);
            if (isnan(mi)) continue;
            if (reward[i] >= 1.0f) { sc += mi; nc += 1; } else { sw += mi; nw += 1; }
            if (reward[i] < 1.0f) continue;
            for (int64_t j = g0; j < g0 + group; j++) {
                if (reward[j] >= 1.0f) continue;
                double mj = response_mean(score, valid, j, t);
                if (isnan(mj)) continue;
                below += mi < mj;
                np++;
            }
        }
    }
    if (mean_correct) *mean_correct = nc > 0 ? sc / nc : 0;
    if (mean_wrong) *mean_wrong = nw > 0 ? sw / nw : 0;
    if (pairs) *pairs = np;
    return np > 0 ? below / (double)np : -1;
}
