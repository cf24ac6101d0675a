/* Qwen2 parameter layout: every tensor declared under its Hugging Face name
 * in one rl_params set, so a checkpoint maps 1:1 onto safetensors and a tied
 * LM head is simply the embedding declared twice (the set shares it). */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "qwen2.h"

#define NAME_MAX_LEN 160

static int add(rl_qwen2 *m, const char *name, rl_shape s, rl_init init, size_t *off, rl_error *err) {
    return rl_params_add(m->params, name, s, init, init == RL_INIT_NORMAL ? 0.02f : 0.0f, off, err);
}

static int add_layer(rl_qwen2 *m, int64_t i, rl_error *err) {
    const rl_qwen2_config *c = &m->cfg;
    const int64_t d = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    rl_qwen2_layer_off *L = &m->layer[i];
    char n[NAME_MAX_LEN];
#define P(field, suffix, shape, init)                                                   \
    do {                                                                                \
        snprintf(n, sizeof n, "model.layers.%lld.%s", (long long)i, suffix);            \
        if (add(m, n, shape, init, &L->field, err)) return -1;                          \
    } while (0)
    P(ln1, "input_layernorm.weight", rl_shape1(d), RL_INIT_ONES);
    P(wq, "self_attn.q_proj.weight", rl_shape2(qd, d), RL_INIT_NORMAL);
    P(bq, "self_attn.q_proj.bias", rl_shape1(qd), RL_INIT_ZEROS);
    P(wk, "self_attn.k_proj.weight", rl_shape2(kd, d), RL_INIT_NORMAL);
    P(bk, "self_attn.k_proj.bias", rl_shape1(kd), RL_INIT_ZEROS);
    P(wv, "self_attn.v_proj.weight", rl_shape2(kd, d), RL_INIT_NORMAL);
    P(bv, "self_attn.v_proj.bias", rl_shape1(kd), RL_INIT_ZEROS);
    P(wo, "self_attn.o_proj.weight", rl_shape2(d, qd), RL_INIT_NORMAL);
    P(ln2, "post_attention_layernorm.weight", rl_shape1(d), RL_INIT_ONES);
    P(wg, "mlp.gate_proj.weight", rl_shape2(c->inter, d), RL_INIT_NORMAL);
    P(wu, "mlp.up_proj.weight", rl_shape2(c->inter, d), RL_INIT_NORMAL);
    P(wd, "mlp.down_proj.weight", rl_shape2(d, c->inter), RL_INIT_NORMAL);
#undef P
    return 0;
}

int rl_qwen2_new(const rl_qwen2_config *cfg, const char *params_name, uint64_t seed, rl_qwen2 **out,
                 rl_error *err) {
    *out = NULL;
    rl_qwen2 *m = rl_calloc(1, sizeof *m);
    if (!m) return rl_fail(err, "out of memory");
    m->cfg = *cfg;
    if (rl_qwen2_config_check(&m->cfg, "qwen2 config", err)) {
        rl_free(m);
        return -1;
    }
    m->params = rl_params_new(params_name ? params_name : "qwen2", seed);
    m->layer = rl_calloc((size_t)m->cfg.n_layers, sizeof *m->layer);
    if (!m->params || !m->layer) {
        rl_qwen2_free(m);
        return rl_fail(err, "out of memory");
    }
    const int64_t d = m->cfg.hidden;
    if (add(m, "model.embed_tokens.weight", rl_shape2(m->cfg.vocab, d), RL_INIT_NORMAL, &m->off_embed, err))
        goto fail;
    for (int64_t i = 0; i < m->cfg.n_layers; i++)
        if (add_layer(m, i, err)) goto fail;
    if (add(m, "model.norm.weight", rl_shape1(d), RL_INIT_ONES, &m->off_norm, err)) goto fail;
    if (m->cfg.tie)
        m->off_head = m->off_embed;
    else if (add(m, "lm_head.weight", rl_shape2(m->cfg.vocab, d), RL_INIT_NORMAL, &m->off_head, err))
        goto fail;
    *out = m;
    return 0;
fail:
    rl_qwen2_free(m);
    return -1;
}

void rl_qwen2_free(rl_qwen2 *m) {
    if (!m) return;
    rl_qwen2_decode_weights_drop(m);
    rl_params_free(m->params);
    rl_free(m->layer);
    rl_free(m);
}

static void destroy_obj(void *p) { rl_qwen2_free(p); }

rl_object *rl_qwen2_object(rl_qwen2 *m) {
    rl_object *o = rl_object_new("qwen2", m, destroy_obj);
    /* So optimizer{params = model} reaches the weights (the object owns them). */
    if (o) o->params = m->params;
    return o;
}
