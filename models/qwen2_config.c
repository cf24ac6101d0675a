/* Qwen2 configuration <-> Hugging Face config.json (the keys HF's
 * Qwen2Config reads and writes), with consistency checks so a bad file fails
 * here with the key named rather than later with a wrong-shape tensor. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qwen2.h"

int rl_qwen2_config_check(rl_qwen2_config *c, const char *what, rl_error *err) {
    struct { const char *key; int64_t v; } pos[] = {
        {"vocab_size", c->vocab}, {"hidden_size", c->hidden}, {"num_hidden_layers", c->n_layers},
        {"num_attention_heads", c->n_heads}, {"num_key_value_heads", c->n_kv_heads},
        {"intermediate_size", c->inter}, {"max_position_embeddings", c->max_pos},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0 || pos[i].v > ((int64_t)1 << 31))
            return rl_fail(err, "%s: '%s' must be a positive integer below 2^31 (got %lld)", what, pos[i].key,
                           (long long)pos[i].v);
    if (c->hidden % c->n_heads)
        return rl_fail(err, "%s: hidden_size %lld is not divisible by num_attention_heads %lld", what,
                       (long long)c->hidden, (long long)c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return rl_fail(err, "%s: num_key_value_heads %lld does not divide num_attention_heads %lld", what,
                       (long long)c->n_kv_heads, (long long)c->n_heads);
    c->head_dim = c->hidden / c->n_heads;
    if (c->head_dim % 2)
        return rl_fail(err, "%s: head dimension %lld (hidden_size / num_attention_heads) must be even for rotary "
                            "embeddings", what, (long long)c->head_dim);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return rl_fail(err, "%s: 'rope_theta' must be positive", what);
    if (!(c->rms_eps > 0) || !isfinite(c->rms_eps))
        return rl_fail(err, "%s: 'rms_norm_eps' must be positive", what);
    return 0;
}

static int get_int(json_t *root, const char *path, const char *key, int required, int64_t def, int64_t *out,
                   rl_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v) {
        if (required) return rl_fail(err, "%s: missing key '%s'", path, key);
        *out = def;
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    return rl_fail(err, "%s: key '%s' must be an integer", path, key);
}

static int get_num(json_t *root, const char *path, const char *key, double def, double *out, rl_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return rl_fail(err, "%s: key '%s' must be a number", path, key);
    *out = json_number_value(v);
    return 0;
}

int rl_qwen2_config_load(const char *path, rl_qwen2_config *c, rl_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return rl_fail(err, "%s: cannot read JSON (line %d: %s)", path, je.line, je.text);
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) {
        rl_fail(err, "%s: top level is not a JSON object", path);
        goto done;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (mt && json_is_string(mt) && strcmp(json_string_value(mt), "qwen2") != 0)
        fprintf(stderr, "%s: warning: model_type '%s' loaded as qwen2\n", path, json_string_value(mt));
    if (get_int(root, path, "vocab_size", 1, 0, &c->vocab, err) ||
        get_int(root, path, "hidden_size", 1, 0, &c->hidden, err) ||
        get_int(root, path, "num_hidden_layers", 1, 0, &c->n_layers, err) ||
        get_int(root, path, "num_attention_heads", 1, 0, &c->n_heads, err) ||
        get_int(root, path, "intermediate_size", 1, 0, &c->inter, err) ||
        get_int(root, path, "num_key_value_heads", 0, c->n_heads, &c->n_kv_heads, err) ||
        get_int(root, path, "max_position_embeddings", 0, 32768, &c->max_pos, err) ||
        get_num(root, path, "rope_theta", 10000.0, &c->rope_theta, err) ||
        get_num(root, path, "rms_norm_eps", 1e-6, &c->rms_eps, err))
        goto done;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) {
        rl_fail(err, "%s: key 'tie_word_embeddings' must be true or false", path);
        goto done;
    }
    c->tie = tie ? json_is_true(tie) : 0;
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        rl_fail(err, "%s: hidden_act must be \"silu\" (Qwen2 SwiGLU)", path);
        goto done;
    }
    rc = rl_qwen2_config_check(c, path, err);
done:
    json_decref(root);
    return rc;
}

int rl_qwen2_config_save(const char *path, const rl_qwen2_config *c, rl_error *err) {
    json_t *root = json_object();
    json_t *arch = json_array();
    if (!root || !arch) {
        json_decref(root);
        json_decref(arch);
        return rl_fail(err, "%s: out of memory", path);
    }
    json_array_append_new(arch, json_string("Qwen2ForCausalLM"));
    json_object_set_new(root, "architectures", arch);
    json_object_set_new(root, "model_type", json_string("qwen2"));
    json_object_set_new(root, "hidden_act", json_string("silu"));
    json_object_set_new(root, "vocab_size", json_integer(c->vocab));
    json_object_set_new(root, "hidden_size", json_integer(c->hidden));
    json_object_set_new(root, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(root, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(root, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(root, "intermediate_size", json_integer(c->inter));
    json_object_set_new(root, "max_position_embeddings", json_integer(c->max_pos));
    json_object_set_new(root, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(root, "rms_norm_eps", json_real(c->rms_eps));
    json_object_set_new(root, "tie_word_embeddings", json_boolean(c->tie));
    json_object_set_new(root, "use_sliding_window", json_false());
    json_object_set_new(root, "attention_dropout", json_real(0.0));
    json_object_set_new(root, "torch_dtype", json_string("float32"));
    /* Write to a temporary name and rename: never leave a half-written config. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        json_decref(root);
        return rl_fail(err, "%s: path too long", path);
    }
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (rc != 0) return rl_fail(err, "%s: cannot write", tmp);
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return rl_fail(err, "%s: cannot rename from %s", path, tmp);
    }
    return 0;
}

int rl_tap_layers(const double *fractions, int n, int64_t n_layers, int64_t *layers, rl_error *err) {
    for (int i = 0; i < n; i++) {
        double p = fractions[i];
        if (!(p > 0.0 && p <= 1.0))
            return rl_fail(err, "tap layer fraction %g is outside (0, 1]", p);
        /* Python's round(): halves to even; rint does that in the default mode. */
        double j = nearbyint(p * (double)n_layers);
        int64_t li = (int64_t)j;
        if (li >= n_layers) li = n_layers - 1;
        if (li < 0) li = 0;
        layers[i] = li;
    }
    return 0;
}
