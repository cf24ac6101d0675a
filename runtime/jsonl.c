/* JSONL reader: lines read byte by byte into a growing buffer (so a NUL byte
 * or a missing final newline is handled, and memory goes through alloc.h),
 * each parsed by jansson. */
#define _GNU_SOURCE
#include "jsonl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct rl_jsonl {
    char *path;
    FILE *fp;
    char *buf;
    size_t cap;
    int64_t line;        /* lines consumed so far */
    int64_t rec_line;    /* line of the current record */
    json_t *rec;
};

int rl_jsonl_open(const char *path, rl_jsonl **out, rl_error *err) {
    *out = NULL;
    if (!path) return rl_fail(err, "(null): no path given");
    rl_jsonl *j = rl_calloc(1, sizeof *j);
    if (!j) return rl_fail(err, "%s: out of memory", path);
    j->path = rl_strdup(path);
    j->fp = fopen(path, "rb");
    if (!j->path || !j->fp) {
        int e = errno;
        rl_jsonl_close(j);
        return rl_fail(err, "%s: cannot open: %s", path, strerror(e));
    }
    *out = j;
    return 0;
}

void rl_jsonl_close(rl_jsonl *j) {
    if (!j) return;
    if (j->fp) fclose(j->fp);
    json_decref(j->rec);
    rl_free(j->buf);
    rl_free(j->path);
    rl_free(j);
}

const char *rl_jsonl_path(const rl_jsonl *j) { return j ? j->path : NULL; }
int64_t rl_jsonl_line(const rl_jsonl *j) { return j ? j->rec_line : 0; }
json_t *rl_jsonl_record(const rl_jsonl *j) { return j ? j->rec : NULL; }

/* Reads one line (without its '\n') into j->buf. Returns 1 with *len set, 0 at
   end of file, -1 on error (message filled). */
static int read_line(rl_jsonl *j, size_t *len, int *has_nul, rl_error *err) {
    size_t n = 0;
    int c, any = 0;
    *has_nul = 0;
    while ((c = getc_unlocked(j->fp)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (n + 1 >= j->cap) {
            size_t nc;
            if (rl_mul_size(j->cap ? j->cap : 128, 2, &nc))
                return rl_fail(err, "%s:%" PRId64 ": line too long", j->path, j->line + 1);
            char *nb = rl_realloc(j->buf, nc);
            if (!nb) return rl_fail(err, "%s:%" PRId64 ": out of memory reading the line", j->path, j->line + 1);
            j->buf = nb;
            j->cap = nc;
        }
        if (c == 0) *has_nul = 1;
        j->buf[n++] = (char)c;
    }
    if (ferror(j->fp)) return rl_fail(err, "%s:%" PRId64 ": read error: %s", j->path, j->line + 1, strerror(errno));
    if (!any) return 0;
    j->line++;
    if (n && j->buf[n - 1] == '\r') n--;
    if (!j->buf) { /* an empty line before any allocation */
        j->buf = rl_malloc(128);
        if (!j->buf) return rl_fail(err, "%s:%" PRId64 ": out of memory", j->path, j->line);
        j->cap = 128;
    }
    j->buf[n] = '\0';
    *len = n;
    return 1;
}

int rl_jsonl_next(rl_jsonl *j, rl_error *err) {
    json_decref(j->rec);
    j->rec = NULL;
    j->rec_line = 0;
    for (;;) {
        size_t len = 0;
        int has_nul = 0;
        int r = read_line(j, &len, &has_nul, err);
        if (r <= 0) return r;
        char *s = j->buf;
        /* A UTF-8 byte-order mark some editors put at the start of the file. */
        if (j->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            len -= 3;
        }
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
        if (k == len) continue; /* blank line */
        if (has_nul) return rl_fail(err, "%s:%" PRId64 ": line contains a NUL byte", j->path, j->line);
        json_error_t je;
        json_t *v = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
        if (!v)
            return rl_fail(err, "%s:%" PRId64 ": invalid JSON at column %d: %s", j->path, j->line, je.column, je.text);
        if (!json_is_object(v)) {
            const char *t = rl_json_type_name(v);
            json_decref(v);
            return rl_fail(err, "%s:%" PRId64 ": expected a JSON object, got %s", j->path, j->line, t);
        }
        j->rec = v;
        j->rec_line = j->line;
        return 1;
    }
}

const char *rl_json_type_name(const json_t *v) {
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Field lookup; a JSON null counts as absent. */
static json_t *field(const rl_jsonl *j, const char *key) {
    if (!j || !j->rec || !key) return NULL;
    json_t *v = json_object_get(j->rec, key);
    return json_is_null(v) ? NULL : v;
}

static int no_record(const rl_jsonl *j, rl_error *err) {
    return rl_fail(err, "%s: no current record", j ? j->path : "(null)");
}

static int missing(const rl_jsonl *j, const char *key, rl_error *err) {
    return rl_fail(err, "%s:%" PRId64 ": missing field '%s'", j->path, j->rec_line, key);
}

static int wrong_type(const rl_jsonl *j, const char *key, const json_t *v, const char *want, rl_error *err) {
    return rl_fail(err, "%s:%" PRId64 ": field '%s' is %s, expected %s", j->path, j->rec_line, key,
                   rl_json_type_name(v), want);
}

int rl_jsonl_has(const rl_jsonl *j, const char *key) { return field(j, key) != NULL; }

int rl_jsonl_string_opt(const rl_jsonl *j, const char *key, const char *def, const char **out, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    json_t *v = field(j, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v)) return wrong_type(j, key, v, "a string", err);
    *out = json_string_value(v);
    return 0;
}

int rl_jsonl_string(const rl_jsonl *j, const char *key, const char **out, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    if (!field(j, key)) return missing(j, key, err);
    return rl_jsonl_string_opt(j, key, NULL, out, err);
}

int rl_jsonl_number_opt(const rl_jsonl *j, const char *key, double def, double *out, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    json_t *v = field(j, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return wrong_type(j, key, v, "a number", err);
    *out = json_number_value(v);
    return 0;
}

int rl_jsonl_number(const rl_jsonl *j, const char *key, double *out, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    if (!field(j, key)) return missing(j, key, err);
    return rl_jsonl_number_opt(j, key, 0, out, err);
}

int rl_jsonl_int(const rl_jsonl *j, const char *key, int64_t *out, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    json_t *v = field(j, key);
    if (!v) return missing(j, key, err);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 3.0 is an integer; the bounds are exactly representable doubles. */
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
            *out = (int64_t)d;
            return 0;
        }
        return rl_fail(err, "%s:%" PRId64 ": field '%s' is %.17g, expected an integer", j->path, j->rec_line, key, d);
    }
    return wrong_type(j, key, v, "an integer", err);
}

int rl_jsonl_list(const rl_jsonl *j, const char *key, json_t **out, size_t *n, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    json_t *v = field(j, key);
    if (!v) return missing(j, key, err);
    if (!json_is_array(v)) return wrong_type(j, key, v, "a list", err);
    *out = v;
    *n = json_array_size(v);
    return 0;
}

int rl_json_scalar_text(const json_t *v, char *buf, size_t cap) {
    int w;
    if (!buf || cap == 0) return -1;
    if (json_is_string(v)) {
        size_t l = json_string_length(v);
        if (l + 1 > cap) return -1;
        memcpy(buf, json_string_value(v), l + 1);
        return 0;
    }
    if (json_is_integer(v)) {
        w = snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return (w < 0 || (size_t)w >= cap) ? -1 : 0;
    }
    if (json_is_real(v)) {
        /* The shortest form that reads back as the same double. */
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            w = snprintf(buf, cap, "%.*g", prec, d);
            if (w < 0 || (size_t)w >= cap) return -1;
            if (strtod(buf, NULL) == d) return 0;
        }
        return 0;
    }
    return -1;
}

int rl_jsonl_texts_count(const rl_jsonl *j, const char *key, size_t *n, rl_error *err) {
    if (!j || !j->rec) return no_record(j, err);
    json_t *v = field(j, key);
    if (!v) return missing(j, key, err);
    if (json_is_string(v) || json_is_number(v)) {
        *n = 1;
        return 0;
    }
    if (!json_is_array(v)) return wrong_type(j, key, v, "a string, a number or a list of them", err);
    *n = json_array_size(v);
    return 0;
}

int rl_jsonl_text(const rl_jsonl *j, const char *key, size_t idx, char *buf, size_t cap, rl_error *err) {
    size_t n;
    if (rl_jsonl_texts_count(j, key, &n, err)) return -1;
    json_t *v = field(j, key);
    if (idx >= n)
        return rl_fail(err, "%s:%" PRId64 ": field '%s' has %zu items, asked for item %zu", j->path, j->rec_line, key, n,
                       idx);
    if (json_is_array(v)) {
        v = json_array_get(v, idx);
        if (!json_is_string(v) && !json_is_number(v))
            return rl_fail(err, "%s:%" PRId64 ": field '%s' item %zu is %s, expected a string or a number", j->path,
                           j->rec_line, key, idx, rl_json_type_name(v));
    }
    if (rl_json_scalar_text(v, buf, cap))
        return rl_fail(err, "%s:%" PRId64 ": field '%s' is longer than %zu bytes", j->path, j->rec_line, key,
                       cap ? cap - 1 : 0);
    return 0;
}
