#include "state.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "safetensors.h"

typedef struct blob {
    char *key;
    void *data;
    size_t bytes;
} blob;

struct rl_state {
    blob *items;
    int n, cap;
    char prefix[256];
};

rl_state *rl_state_new(void) { return rl_calloc(1, sizeof(rl_state)); }

void rl_state_free(rl_state *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) { rl_free(st->items[i].key); rl_free(st->items[i].data); }
    rl_free(st->items);
    rl_free(st);
}

void rl_state_set_prefix(rl_state *st, const char *prefix) {
    snprintf(st->prefix, sizeof st->prefix, "%s", prefix ? prefix : "");
}

static void full_key(const rl_state *st, const char *key, char *out, size_t cap) {
    if (st->prefix[0]) snprintf(out, cap, "%s.%s", st->prefix, key);
    else snprintf(out, cap, "%s", key);
}

static blob *find(const rl_state *st, const char *full) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->items[i].key, full) == 0) return &st->items[i];
    return NULL;
}

static int put_full(rl_state *st, const char *full, const void *data, size_t bytes, rl_error *err) {
    blob *b = find(st, full);
    if (!b) {
        if (st->n == st->cap) {
            int cap = st->cap ? 2 * st->cap : 16;
            blob *items = rl_realloc(st->items, sizeof(blob) * (size_t)cap);
            if (!items) return rl_fail(err, "out of memory");
            st->items = items;
            st->cap = cap;
        }
        b = &st->items[st->n];
        memset(b, 0, sizeof *b);
        b->key = rl_strdup(full);
        if (!b->key) return rl_fail(err, "out of memory");
        st->n++;
    }
    rl_free(b->data);
    b->data = rl_malloc(bytes ? bytes : 1);
    if (!b->data) return rl_fail(err, "out of memory");
    memcpy(b->data, data, bytes);
    b->bytes = bytes;
    return 0;
}

int rl_state_put(rl_state *st, const char *key, const void *data, size_t bytes, rl_error *err) {
    char full[512];
    full_key(st, key, full, sizeof full);
    return put_full(st, full, data, bytes, err);
}

int rl_state_has(const rl_state *st, const char *key) {
    char full[512];
    full_key(st, key, full, sizeof full);
    return find(st, full) != NULL;
}

int rl_state_get(const rl_state *st, const char *key, void *data, size_t bytes, rl_error *err) {
    char full[512];
    full_key(st, key, full, sizeof full);
    const blob *b = find(st, full);
    if (!b) return rl_fail(err, "checkpoint state has no entry '%s'", full);
    if (b->bytes != bytes)
        return rl_fail(err, "checkpoint state entry '%s' has %zu bytes, expected %zu", full, b->bytes, bytes);
    memcpy(data, b->data, bytes);
    return 0;
}

int rl_state_save(const rl_state *st, const char *path, rl_error *err) {
    rl_st_entry *e = rl_calloc((size_t)st->n + 1, sizeof *e);
    if (!e) return rl_fail(err, "out of memory");
    for (int i = 0; i < st->n; i++) {
        e[i].name = st->items[i].key;
        e[i].dtype = RL_U8;
        e[i].src_dtype = RL_U8;
        e[i].shape = rl_shape1((int64_t)st->items[i].bytes);
        e[i].data = st->items[i].data;
    }
    int rc = rl_st_write(path, e, st->n, NULL, NULL, 0, err);
    rl_free(e);
    return rc;
}

int rl_state_load(rl_state *st, const char *path, rl_error *err) {
    rl_st_file *f;
    if (rl_st_open(path, &f, err)) return -1;
    int rc = 0;
    for (int i = 0; i < rl_st_count(f) && !rc; i++) {
        const rl_st_info *info = rl_st_at(f, i);
        if (info->dtype != RL_U8) rc = rl_fail(err, "%s: state entry '%s' is not u8", path, info->name);
        else rc = put_full(st, info->name, info->data, info->nbytes, err);
    }
    rl_st_close(f);
    return rc;
}
