#include "value.h"

#include <string.h>

#include "alloc.h"

rl_object *rl_object_new(const char *type, void *ptr, void (*destroy)(void *ptr)) {
    rl_object *o = rl_calloc(1, sizeof *o);
    if (!o) return NULL;
    o->type = type;
    o->ptr = ptr;
    o->destroy = destroy;
    o->refs = 1;
    return o;
}

void rl_object_retain(rl_object *o) {
    if (o) o->refs++;
}

void rl_object_release(rl_object *o) {
    if (!o || --o->refs > 0) return;
    if (o->destroy) o->destroy(o->ptr);
    rl_free(o);
}

static void value_clear(rl_value *v) {
    rl_free(v->str);
    rl_free(v->nums);
    for (int i = 0; v->strs && i < v->n; i++) rl_free(v->strs[i]);
    rl_free(v->strs);
    rl_object_release(v->obj);
    memset(v, 0, sizeof *v);
}

void rl_opts_init(rl_opts *o) { memset(o, 0, sizeof *o); }

void rl_opts_free(rl_opts *o) {
    for (int i = 0; i < o->n; i++) {
        rl_free(o->keys[i]);
        value_clear(&o->vals[i]);
    }
    rl_free(o->keys);
    rl_free(o->vals);
    memset(o, 0, sizeof *o);
}

/* Returns the slot for key (cleared if it existed), or NULL on allocation failure. */
static rl_value *slot(rl_opts *o, const char *key) {
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) { value_clear(&o->vals[i]); return &o->vals[i]; }
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 8;
        char **keys = rl_realloc(o->keys, sizeof(char *) * (size_t)cap);
        if (!keys) return NULL;
        o->keys = keys;
        rl_value *vals = rl_realloc(o->vals, sizeof(rl_value) * (size_t)cap);
        if (!vals) return NULL;
        o->vals = vals;
        o->cap = cap;
    }
    o->keys[o->n] = rl_strdup(key);
    if (!o->keys[o->n]) return NULL;
    memset(&o->vals[o->n], 0, sizeof(rl_value));
    return &o->vals[o->n++];
}

int rl_opts_set_number(rl_opts *o, const char *key, double v) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_NUMBER;
    s->num = v;
    return 0;
}

int rl_opts_set_int(rl_opts *o, const char *key, int64_t v) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_INT;
    s->i = v;
    s->num = (double)v;
    return 0;
}

int rl_opts_set_bool(rl_opts *o, const char *key, int v) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_BOOL;
    s->i = v != 0;
    s->num = v != 0;
    return 0;
}

int rl_opts_set_string(rl_opts *o, const char *key, const char *v) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_STRING;
    s->str = rl_strdup(v ? v : "");
    return s->str ? 0 : -1;
}

int rl_opts_set_numbers(rl_opts *o, const char *key, const double *v, int n) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_NUMBERS;
    s->n = n;
    if (n > 0) {
        s->nums = rl_calloc((size_t)n, sizeof(double));
        if (!s->nums) return -1;
        memcpy(s->nums, v, sizeof(double) * (size_t)n);
    }
    return 0;
}

int rl_opts_set_strings(rl_opts *o, const char *key, const char *const *v, int n) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_STRINGS;
    if (n > 0) {
        s->strs = rl_calloc((size_t)n, sizeof(char *));
        if (!s->strs) return -1;
        for (int i = 0; i < n; i++) {
            s->strs[i] = rl_strdup(v[i]);
            if (!s->strs[i]) return -1;
            s->n = i + 1;
        }
    }
    return 0;
}

int rl_opts_set_object(rl_opts *o, const char *key, rl_object *obj) {
    rl_value *s = slot(o, key);
    if (!s) return -1;
    s->kind = RL_VAL_OBJECT;
    s->obj = obj;
    rl_object_retain(obj);
    return 0;
}

const rl_value *rl_opts_get(const rl_opts *o, const char *key) {
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) return &o->vals[i];
    return NULL;
}

int rl_opts_copy(rl_opts *dst, const rl_opts *src) {
    for (int i = 0; i < src->n; i++) {
        const rl_value *v = &src->vals[i];
        const char *k = src->keys[i];
        int rc = 0;
        switch (v->kind) {
        case RL_VAL_NUMBER: rc = rl_opts_set_number(dst, k, v->num); break;
        case RL_VAL_INT: rc = rl_opts_set_int(dst, k, v->i); break;
        case RL_VAL_BOOL: rc = rl_opts_set_bool(dst, k, (int)v->i); break;
        case RL_VAL_STRING: rc = rl_opts_set_string(dst, k, v->str); break;
        case RL_VAL_NUMBERS: rc = rl_opts_set_numbers(dst, k, v->nums, v->n); break;
        case RL_VAL_STRINGS: rc = rl_opts_set_strings(dst, k, (const char *const *)v->strs, v->n); break;
        case RL_VAL_OBJECT: rc = rl_opts_set_object(dst, k, v->obj); break;
        case RL_VAL_NONE: break;
        }
        if (rc) return -1;
    }
    return 0;
}

const char *rl_value_kind_name(rl_value_kind k) {
    switch (k) {
    case RL_VAL_NONE: return "nothing";
    case RL_VAL_NUMBER: return "number";
    case RL_VAL_INT: return "integer";
    case RL_VAL_BOOL: return "boolean";
    case RL_VAL_STRING: return "string";
    case RL_VAL_NUMBERS: return "list of numbers";
    case RL_VAL_STRINGS: return "list of strings";
    case RL_VAL_OBJECT: return "object";
    }
    return "?";
}

int rl_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return (int)(la > lb ? la : lb);
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}
