/* The RL formulas of RLFR as pure functions over flat arrays: flow score ->
 * per-token flow reward, outcome rewards -> advantages (GRPO, RLOO,
 * REINFORCE++-baseline, Dr. GRPO), returns with KL-in-reward, entropy shaping,
 * the PPO clipped surrogate with its aggregations and KL loss, the online flow
 * loss and the dynamic-sampling group filter. The graph nodes in nodes/ are
 * thin wrappers over these, so every formula is testable without a graph.
 * docs/rl.md states each formula, option and default and where it comes from.
 *
 * Conventions: N = B*G responses in group-major order (responses i*G..i*G+G-1
 * belong to prompt i); per-token arrays are row-major [N, T]; mask[k] > 0
 * marks a valid response token. None of these functions allocates: callers
 * hand in the scratch they need (sizes documented per function). */
#ifndef RL_MATH_H
#define RL_MATH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* ---- KL estimators (Schulman, "Approximating KL"), l = logp - ref_logp ---- */

typedef enum rl_kl_estimator { RL_KL_K1 = 0, RL_KL_K2, RL_KL_K3 } rl_kl_estimator;

/* "k1" | "k2" | "k3" (also "low_var_kl" = k3, "mse" = k2). 0 or -1 with err naming the value. */
int rl_kl_estimator_parse(const char *s, rl_kl_estimator *out, rl_error *err);
/* k1 = l, k2 = l^2/2, k3 = exp(-l) - 1 + l. */
double rl_kl_value(rl_kl_estimator e, double l);
/* d(value)/d(logp): 1, l, 1 - exp(-l). */
double rl_kl_grad(rl_kl_estimator e, double l);

/* ---- Flow score -> per-token flow reward ---- */

typedef enum rl_flow_norm { RL_FLOW_NORM_MINMAX = 0, RL_FLOW_NORM_MINMAX_BILATERAL } rl_flow_norm;

int rl_flow_norm_parse(const char *s, rl_flow_norm *out, rl_error *err);

typedef struct rl_flow_reward_cfg {
    rl_flow_norm norm;   /* default minmax */
    double power;        /* gamma applied to the normalised score; default 1 */
    double threshold;    /* eta: keep s > eta (|s| > eta when bilateral); default 0.6 */
    int64_t topk;        /* keep the k largest (by |s| when bilateral); <= 0: no limit; default 15 */
    double coef;         /* beta = flow_coef; r = -beta * s; default 0.01 */
} rl_flow_reward_cfg;

void rl_flow_reward_cfg_default(rl_flow_reward_cfg *cfg);

typedef struct rl_flow_reward_stats {
    int64_t n_rewarded;  /* tokens with a non-zero flow reward (kept after threshold + top-k) */
    double reward_sum;   /* sum of r over those tokens */
} rl_flow_reward_stats;

/* score, mask: [N, T]; score_mask [N, T] or NULL: where a score exists (the
 * latent tap gives no score to tokens without a context partner); a token is
 * scored iff mask > 0 and (score_mask == NULL or score_mask > 0). out [N, T]
 * receives r (0 on unscored tokens). idx_scratch: T int32. Fails on a
 * non-finite score of a scored token (naming row and position). */
int rl_flow_reward(const float *score, const float *mask, const float *score_mask, int64_t N, int64_t T,
                   const rl_flow_reward_cfg *cfg, float *out, int32_t *idx_scratch,
                   rl_flow_reward_stats *stats, rl_error *err);

/* ---- Outcome advantages ---- */

typedef enum rl_adv_estimator {
    RL_ADV_GROUP_NORM = 0,      /* GRPO: (R - mean) / (std + eps), unbiased std */
    RL_ADV_RLOO,                /* R_i - mean of the other G-1 */
    RL_ADV_REINFORCE_BASELINE,  /* R - group mean, then whitened over the batch's valid tokens */
    RL_ADV_DR_GRPO,             /* R - group mean */
} rl_adv_estimator;

int rl_adv_estimator_parse(const char *s, rl_adv_estimator *out, rl_error *err);

/* reward [N] -> adv [N] (the per-response outcome advantage A-hat). keep [N] or
 * NULL: responses with keep == 0 are left out of their group's statistics and
 * get advantage 0 (any other value keeps the response). Groups of size 1 use baseline 0
 * and scale 1 (as verl); rloo needs G >= 2. Non-finite rewards fail. For
 * reinforce_baseline this is only the group-mean step: the batch whitening
 * comes after the returns (rl_whiten_tokens). */
int rl_outcome_advantage(const float *reward, const float *keep, int64_t N, int64_t G, rl_adv_estimator est,
                         double eps, float *adv, rl_error *err);

/* Per-token rewards rho_k = adv_i*[k = last valid token] - kl_coef*KL_k + flow_k,
 * summed into returns A_k = sum_{s>=k valid} gamma^(s-k) rho_s (valid response
 * tokens are contiguous; the exponent counts valid tokens if they were not).
 * flow [N, T] or NULL; kl [N, T] (per-token KL values) or NULL; keep [N] or NULL
 * (rows with keep == 0 get A = 0 everywhere).
 * Positions with mask == 0 get A = 0. out: [N, T]. */
void rl_returns(const float *adv, const float *mask, const float *flow, const float *kl, double kl_coef,
                const float *keep, int64_t N, int64_t T, double gamma, float *out);

/* REINFORCE++ whitening over all valid tokens of the batch (token-weighted):
 * A <- (A - mean) / (std + eps), unbiased std; tokens with mask == 0 (and rows
 * with keep == 0) are excluded and stay 0. */
void rl_whiten_tokens(float *A, const float *mask, const float *keep, int64_t N, int64_t T, double eps);

/* ---- Entropy shaping (Cheng et al. 2025) ---- */

/* out = A + min(alpha*H, |A|/kappa) on valid tokens, A elsewhere. out may alias A. */
void rl_entropy_shape(const float *A, const float *H, const float *mask, int64_t n, double alpha, double kappa,
                      float *out);

/* ---- PPO clipped surrogate ---- */

typedef enum rl_agg_mode {
    RL_AGG_TOKEN_MEAN = 0,           /* sum over valid tokens / their count */
    RL_AGG_SEQ_MEAN_TOKEN_MEAN,      /* mean over non-empty sequences of per-sequence token means */
    RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM,  /* sum over valid tokens / (N * norm_len) (Dr. GRPO) */
} rl_agg_mode;

int rl_agg_mode_parse(const char *s, rl_agg_mode *out, rl_error *err);

typedef struct rl_pg_cfg {
    double clip_low, clip_high;  /* ratio clipped to [1-clip_low, 1+clip_high]; default 0.2, 0.2 */
    double dual_clip;            /* c > 1 enables dual clip for A < 0; <= 0: off (default) */
    rl_agg_mode agg;             /* default seq_mean_token_mean */
    double norm_len;             /* seq_mean_token_sum_norm constant; <= 0: T */
    double kl_coef;              /* KL-loss coefficient (needs ref_logp); default 0 */
    rl_kl_estimator kl_est;      /* default k3 */
} rl_pg_cfg;

void rl_pg_cfg_default(rl_pg_cfg *cfg);

typedef struct rl_pg_stats {
    double loss;          /* the aggregated loss (surrogate + kl_coef * KL) */
    double pg_loss;       /* the aggregated surrogate alone */
    double clip_frac;     /* valid tokens where the clipped branch is active (token mean) */
    double dual_clip_frac;/* valid tokens with A < 0 where the dual clip is active */
    double approx_kl;     /* token mean of (old_logp - logp): k1 of KL(pi_old || pi) */
    double ref_kl;        /* token mean of the KL estimator to the reference (0 without one) */
    double entropy;       /* token mean of the entropy input (0 without one) */
    int64_t n_tokens;     /* valid tokens */
} rl_pg_stats;

/* logp, old_logp, adv, mask: [N, T]; ref_logp, entropy: [N, T] or NULL.
 * Computes the aggregated loss into stats (may be NULL) and returns it. If grad
 * is non-NULL, ACCUMULATES grad[k] += gscale * d(loss)/d(logp[k]). */
double rl_pg_loss(const float *logp, const float *old_logp, const float *adv, const float *mask,
                  const float *ref_logp, const float *entropy, int64_t N, int64_t T, const rl_pg_cfg *cfg,
                  float *grad, float gscale, rl_pg_stats *stats);

/* ---- Online flow loss (rejection sampling) ---- */

typedef struct rl_flow_loss_cfg {
    double soft_flow;         /* weight of responses with reward < correct; default 0 */
    double correct;           /* reward >= correct counts as correct; default 1 */
    double entropy_quantile;  /* q in (0, 1): token weighting by entropy quantile; <= 0: off */
} rl_flow_loss_cfg;

typedef struct rl_flow_loss_stats {
    double loss;
    double weight_sum;    /* sum of the response weights w_i over non-empty responses */
    int64_t n_accepted;   /* responses with w_i > 0 and at least one weighted token */
} rl_flow_loss_stats;

/* token_loss, mask: [N, T]; reward [N]; entropy [N, T] (needed iff the
 * quantile is on). Returns the loss sum_i w_i*mean_i / sum_i w_i (0 when the
 * weights sum to 0). dloss [N, T] or NULL receives d(loss)/d(token_loss)
 * (written, not accumulated; all 0 when the weights sum to 0). sort_scratch: T
 * floats (used only with the quantile). */
double rl_flow_loss(const float *token_loss, const float *reward, const float *mask, const float *entropy,
                    int64_t N, int64_t T, const rl_flow_loss_cfg *cfg, float *dloss, float *sort_scratch,
                    rl_flow_loss_stats *stats);

/* The response weight of the online update, w = 1 if reward >= correct else
 * soft_flow, rounded to f32 because it travels between nodes as an f32
 * tensor. The one place this rule lives: rl_flow_loss, the flow_weights node
 * and (through those weights) the flow node's skipping of rejected rows. */
float rl_flow_weight(double reward, double correct, double soft_flow);
/* weight[i] = rl_flow_weight(reward[i], correct, soft_flow) for i < N.
 * Returns how many weights are exactly 0 (rows the flow may skip). */
int64_t rl_flow_weights(const float *reward, int64_t N, double correct, double soft_flow, float *weight);
/* rl_flow_loss with the response weights given (weight [N], e.g. from
 * rl_flow_weights) instead of derived from rewards: cfg->correct is unused,
 * cfg->soft_flow still weights tokens under the entropy quantile. Bit-identical
 * to rl_flow_loss when weight = rl_flow_weights(reward, ...). */
double rl_flow_loss_weighted(const float *token_loss, const float *weight, const float *mask, const float *entropy,
                             int64_t N, int64_t T, const rl_flow_loss_cfg *cfg, float *dloss, float *sort_scratch,
                             rl_flow_loss_stats *stats);

/* Linear-interpolation quantile (torch.quantile's default) of x[0..n); sorts x in place. n >= 1. */
double rl_quantile_inplace(float *x, int64_t n, double q);

/* ---- Group filter (DAPO dynamic sampling) ---- */

typedef enum rl_filter_by {
    RL_FILTER_CORRECT = 0,  /* keep groups with 0 < #(R >= correct) < G (verl metric=acc) */
    RL_FILTER_REWARD,       /* keep groups whose rewards are not all equal (OpenRLHF) */
} rl_filter_by;

/* reward [N] -> keep [N] (1 or 0 per response, constant within a group).
 * Returns the number of kept groups. */
int64_t rl_group_filter(const float *reward, int64_t N, int64_t G, rl_filter_by by, double correct, float *keep);

/* How well the flow score separates outcomes, within groups of `group`
 * responses: over every (correct, wrong) pair of one group (correct: reward
 * >= 1), the share in which the correct response has the lower mean score on
 * its scored tokens (valid = score mask, or the response mask). Responses
 * without a scored token are left out. Also the mean of those per-response
 * means over correct and over wrong responses. Returns -1 when no pair exists. */
double rl_flow_separation(const float *score, const float *valid, const float *reward, int64_t n, int64_t t,
                          int64_t group, double *mean_correct, double *mean_wrong, int64_t *pairs);

#endif
