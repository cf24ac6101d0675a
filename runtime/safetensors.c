/* safetensors reader (mmap + full header validation) and atomic writer.
 *
 * Validation follows Hugging Face's reference library: the data section must be
 * covered exactly by the tensors (sorted by offset, each begins where the
 * previous one ends, the last ends at the end of the file), so overlaps, gaps
 * and trailing bytes are all errors. Every message is one line that starts
 * with the file path. */
#define _GNU_SOURCE
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

/* HF rejects headers above 100 MB; a larger one is certainly not a model we
 * can load, and the cap keeps a hostile length from driving a huge parse. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

struct rl_st_file {
    char *path;
    void *map;            /* whole file, read-only; NULL for an empty mapping */
    size_t map_size;
    int n;
    rl_st_info *infos;    /* in data order */
    int *by_name;         /* indices into infos sorted by name, for rl_st_find */
    void **copies;        /* aligned copies of tensors whose bytes are misaligned in the map */
    int n_copies;
    int n_meta;
    char **meta_keys;
    char **meta_vals;
};

static const struct {
    const char *name;
    int supported;
    rl_dtype dtype;
} st_dtypes[] = {
    {"F32", 1, RL_F32}, {"BF16", 1, RL_BF16}, {"I32", 1, RL_I32}, {"U8", 1, RL_U8},
    {"F64", 0, RL_F32}, {"F16", 0, RL_F32}, {"I64", 0, RL_F32}, {"I16", 0, RL_F32},
    {"I8", 0, RL_F32}, {"U16", 0, RL_F32}, {"U32", 0, RL_F32}, {"U64", 0, RL_F32},
    {"BOOL", 0, RL_F32}, {"F8_E4M3", 0, RL_F32}, {"F8_E5M2", 0, RL_F32},
    {"F8_E8M0", 0, RL_F32}, {"F4", 0, RL_F32}, {"F6_E2M3", 0, RL_F32}, {"F6_E3M2", 0, RL_F32},
    {"C64", 0, RL_F32},
};

static const char *st_dtype_str(rl_dtype t) {
    switch (t) {
    case RL_F32: return "F32";
    case RL_BF16: return "BF16";
    case RL_I32: return "I32";
    case RL_U8: return "U8";
    default: return NULL;
    }
}

/* Names come from untrusted files: keep messages on one line and bounded. */
static const char *clean(const char *s, char *buf, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; s && s[i] && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s && j + 4 >= cap && s[j]) { buf[j++] = '.'; buf[j++] = '.'; buf[j++] = '.'; }
    buf[j] = '\0';
    return buf;
}

void rl_st_close(rl_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) rl_free(f->infos[i].name);
    rl_free(f->infos);
    rl_free(f->by_name);
    for (int i = 0; i < f->n_copies; i++) rl_free_aligned(f->copies[i]);
    rl_free(f->copies);
    for (int i = 0; i < f->n_meta; i++) {
        rl_free(f->meta_keys[i]);
        rl_free(f->meta_vals[i]);
    }
    rl_free(f->meta_keys);
    rl_free(f->meta_vals);
    if (f->map) munmap(f->map, f->map_size);
    rl_free(f->path);
    rl_free(f);
}

/* Per-tensor data range, kept beside the info while validating. */
typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* qsort has no context argument in C11, so names travel with their index
   (no global: files may be opened from several threads). */
typedef struct {
    const char *name;
    int idx;
} st_named;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_named *)a)->name, ((const st_named *)b)->name);
}

static int parse_metadata(rl_st_file *f, json_t *meta, rl_error *err) {
    const char *path = f->path;
    if (!json_is_object(meta)) return rl_fail(err, "%s: \"__metadata__\" is not an object", path);
    size_t n = json_object_size(meta);
    if (n > (size_t)INT_MAX) return rl_fail(err, "%s: too many metadata entries", path);
    if (n == 0) return 0;
    f->meta_keys = rl_calloc(n, sizeof(char *));
    f->meta_vals = rl_calloc(n, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return rl_fail(err, "%s: out of memory reading metadata", path);
    const char *key;
    json_t *val;
    char nb[128];
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val))
            return rl_fail(err, "%s: metadata value for key '%s' is not a string", path, clean(key, nb, sizeof nb));
        int i = f->n_meta;
        f->meta_keys[i] = rl_strdup(key);
        f->meta_vals[i] = rl_strdup(json_string_value(val));
        f->n_meta++;
        if (!f->meta_keys[i] || !f->meta_vals[i]) return rl_fail(err, "%s: out of memory reading metadata", path);
    }
    return 0;
}

/* Validates one tensor entry and fills info + range (offsets not yet checked
 * against the data section). */
static int parse_entry(const char *path, const char *name, json_t *e, rl_st_info *info, st_range *r,
                       rl_error *err) {
    char nb[128];
    const char *cn = clean(name, nb, sizeof nb);
    if (!json_is_object(e)) return rl_fail(err, "%s: entry for tensor '%s' is not an object", path, cn);
    json_t *jd = json_object_get(e, "dtype");
    json_t *js = json_object_get(e, "shape");
    json_t *jo = json_object_get(e, "data_offsets");
    if (!jd) return rl_fail(err, "%s: tensor '%s' has no \"dtype\"", path, cn);
    if (!js) return rl_fail(err, "%s: tensor '%s' has no \"shape\"", path, cn);
    if (!jo) return rl_fail(err, "%s: tensor '%s' has no \"data_offsets\"", path, cn);
    if (!json_is_string(jd)) return rl_fail(err, "%s: tensor '%s': \"dtype\" is not a string", path, cn);

    const char *ds = json_string_value(jd);
    int found = -1;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(ds, st_dtypes[i].name) == 0) { found = (int)i; break; }
    char db[64];
    if (found < 0)
        return rl_fail(err, "%s: tensor '%s' has unknown dtype '%s'", path, cn, clean(ds, db, sizeof db));
    if (!st_dtypes[found].supported)
        return rl_fail(err, "%s: tensor '%s' has unsupported dtype '%s' (supported: F32, BF16, I32, U8)", path, cn,
                       ds);
    info->dtype = st_dtypes[found].dtype;

    if (!json_is_array(js)) return rl_fail(err, "%s: tensor '%s': \"shape\" is not a list", path, cn);
    size_t nd = json_array_size(js);
    if (nd > RL_MAX_DIMS)
        return rl_fail(err, "%s: tensor '%s' has %zu dimensions (at most %d supported)", path, cn, nd, RL_MAX_DIMS);
    info->shape.ndim = (int)nd;
    size_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return rl_fail(err, "%s: tensor '%s': shape entry %zu is not an integer", path, cn, i);
        json_int_t v = json_integer_value(d);
        if (v < 0) return rl_fail(err, "%s: tensor '%s' has negative dimension %lld", path, cn, (long long)v);
        info->shape.dim[i] = (int64_t)v;
        if (rl_mul_size(numel, (size_t)v, &numel)) overflow = 1;
    }
    size_t nbytes = 0;
    if (overflow || rl_mul_size(numel, rl_dtype_size(info->dtype), &nbytes))
        return rl_fail(err, "%s: tensor '%s': shape is too large (size overflows)", path, cn);

    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return rl_fail(err, "%s: tensor '%s': \"data_offsets\" is not a list of two integers", path, cn);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je))
        return rl_fail(err, "%s: tensor '%s': \"data_offsets\" is not a list of two integers", path, cn);
    json_int_t b = json_integer_value(jb), en = json_integer_value(je);
    if (b < 0 || en < 0) return rl_fail(err, "%s: tensor '%s' has negative data offsets", path, cn);
    if (en < b)
        return rl_fail(err, "%s: tensor '%s' has data_offsets [%lld, %lld] with end before begin", path, cn,
                       (long long)b, (long long)en);
    if ((uint64_t)(en - b) != (uint64_t)nbytes) {
        char sb[96];
        return rl_fail(err, "%s: tensor '%s' of dtype %s and shape %s needs %zu bytes but data_offsets span %lld",
                       path, cn, ds, rl_shape_str(&info->shape, sb, sizeof sb), nbytes, (long long)(en - b));
    }
    info->nbytes = nbytes;
    r->begin = (uint64_t)b;
    r->end = (uint64_t)en;
    return 0;
}

/* The body of rl_st_open once the file is mapped. */
static int parse_header(rl_st_file *f, rl_error *err) {
    const char *path = f->path;
    const unsigned char *base = f->map;
    size_t size = f->map_size;
    if (size < 8)
        return rl_fail(err, "%s: truncated header: file has %zu bytes, a safetensors file needs at least 8", path,
                       size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > size - 8)
        return rl_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)hlen, size);
    if (hlen > ST_MAX_HEADER)
        return rl_fail(err, "%s: header length %llu exceeds the %u-byte limit", path, (unsigned long long)hlen,
                       ST_MAX_HEADER);
    if (hlen < 2 || base[8] != '{')
        return rl_fail(err, "%s: invalid header: the JSON header must start with '{'", path);

    json_error_t je;
    json_t *root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return rl_fail(err, "%s: invalid JSON header: %s (line %d, column %d)", path, je.text, je.line, je.column);
    int rc = -1;
    st_range *ranges = NULL;
    if (!json_is_object(root)) {
        rl_fail(err, "%s: invalid header: the JSON header is not an object", path);
        goto done;
    }
    size_t total = json_object_size(root);
    json_t *meta = json_object_get(root, "__metadata__");
    size_t nt = total - (meta ? 1 : 0);
    if (nt > (size_t)INT_MAX / 2) {
        rl_fail(err, "%s: too many tensors (%zu)", path, nt);
        goto done;
    }
    if (meta && parse_metadata(f, meta, err)) goto done;
    if (nt) {
        f->infos = rl_calloc(nt, sizeof *f->infos);
        ranges = rl_calloc(nt, sizeof *ranges);
        f->by_name = rl_calloc(nt, sizeof *f->by_name);
        if (!f->infos || !ranges || !f->by_name) {
            rl_fail(err, "%s: out of memory reading the header", path);
            goto done;
        }
    }
    /* Parse into a temporary order (header order), then sort by offset. */
    rl_st_info *tmp = nt ? rl_calloc(nt, sizeof *tmp) : NULL;
    if (nt && !tmp) {
        rl_fail(err, "%s: out of memory reading the header", path);
        goto done;
    }
    int k = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        if (key[0] == '\0') {
            rl_fail(err, "%s: a tensor has an empty name", path);
            break;
        }
        ranges[k].idx = k;
        if (parse_entry(path, key, val, &tmp[k], &ranges[k], err)) break;
        tmp[k].name = rl_strdup(key);
        if (!tmp[k].name) {
            rl_fail(err, "%s: out of memory reading the header", path);
            break;
        }
        k++;
    }
    if (k != (int)nt) {
        for (int i = 0; i < k; i++) rl_free(tmp[i].name);
        rl_free(tmp);
        goto done;
    }

    /* Coverage: sorted by begin, each tensor starts where the previous ended
       and the last ends at the end of the file. */
    uint64_t data_size = (uint64_t)(size - 8 - hlen);
    if (nt > 1) qsort(ranges, nt, sizeof *ranges, cmp_range);
    uint64_t pos = 0;
    const char *prev = NULL;
    char nb[128], pb[128];
    for (size_t i = 0; i < nt && !err->failed; i++) {
        st_range *r = &ranges[i];
        const char *name = tmp[r->idx].name;
        if (r->end > data_size) {
            rl_fail(err, "%s: tensor '%s' data [%llu, %llu) ends past the end of the file (data section has %llu bytes)",
                    path, clean(name, nb, sizeof nb), (unsigned long long)r->begin, (unsigned long long)r->end,
                    (unsigned long long)data_size);
        } else if (r->begin < pos) {
            rl_fail(err, "%s: tensors '%s' and '%s' overlap (data_offsets [%llu, %llu) begins before %llu)", path,
                    clean(prev, pb, sizeof pb), clean(name, nb, sizeof nb), (unsigned long long)r->begin,
                    (unsigned long long)r->end, (unsigned long long)pos);
        } else if (r->begin > pos) {
            rl_fail(err, "%s: bytes [%llu, %llu) of the data section belong to no tensor (before tensor '%s')", path,
                    (unsigned long long)pos, (unsigned long long)r->begin, clean(name, nb, sizeof nb));
        }
        if (r->end > r->begin || !prev) prev = name;
        if (r->end > pos) pos = r->end;
    }
    if (!err->failed && pos != data_size)
        rl_fail(err, "%s: bytes [%llu, %llu) at the end of the data section belong to no tensor", path,
                (unsigned long long)pos, (unsigned long long)data_size);
    if (err->failed) {
        for (size_t i = 0; i < nt; i++) rl_free(tmp[i].name);
        rl_free(tmp);
        goto done;
    }

    const unsigned char *data = base + 8 + hlen;
    for (size_t i = 0; i < nt; i++) {
        f->infos[i] = tmp[ranges[i].idx];
        f->infos[i].data = data + ranges[i].begin;
        f->by_name[i] = (int)i;
    }
    f->n = (int)nt;
    rl_free(tmp);

    /* Writers pad the header so data is aligned, but not every writer does:
       tensors whose bytes are misaligned for their dtype get an aligned copy,
       so callers may use the pointer as float* / int32_t* directly. */
    for (int i = 0; i < f->n; i++) {
        rl_st_info *in = &f->infos[i];
        size_t al = rl_dtype_size(in->dtype);
        if (in->nbytes == 0 || ((uintptr_t)in->data % al) == 0) continue;
        if (!f->copies) {
            f->copies = rl_calloc((size_t)f->n, sizeof(void *));
            if (!f->copies) {
                rl_fail(err, "%s: out of memory", path);
                goto done;
            }
        }
        void *c = rl_malloc_aligned(in->nbytes);
        if (!c) {
            rl_fail(err, "%s: out of memory copying tensor '%s'", path, clean(in->name, nb, sizeof nb));
            goto done;
        }
        memcpy(c, in->data, in->nbytes);
        f->copies[f->n_copies++] = c;
        in->data = c;
    }

    if (f->n > 1) {
        st_named *tab = rl_calloc((size_t)f->n, sizeof *tab);
        if (!tab) {
            rl_fail(err, "%s: out of memory", path);
            goto done;
        }
        for (int i = 0; i < f->n; i++) tab[i] = (st_named){f->infos[i].name, i};
        qsort(tab, (size_t)f->n, sizeof *tab, cmp_name);
        for (int i = 0; i < f->n; i++) f->by_name[i] = tab[i].idx;
        rl_free(tab);
    }
    rc = 0;
done:
    rl_free(ranges);
    json_decref(root);
    return rc;
}

int rl_st_open(const char *path, rl_st_file **out, rl_error *err) {
    *out = NULL;
    if (!path) return rl_fail(err, "(null): no path given");
    rl_st_file *f = rl_calloc(1, sizeof *f);
    if (!f) return rl_fail(err, "%s: out of memory", path);
    f->path = rl_strdup(path);
    if (!f->path) {
        rl_free(f);
        return rl_fail(err, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rl_fail(err, "%s: cannot open: %s", path, strerror(errno));
        rl_st_close(f);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rl_fail(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        rl_st_close(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        rl_fail(err, "%s: not a regular file", path);
        close(fd);
        rl_st_close(f);
        return -1;
    }
    f->map_size = (size_t)st.st_size;
    if (f->map_size > 0) {
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            rl_fail(err, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            f->map_size = 0;
            rl_st_close(f);
            return -1;
        }
        f->map = m;
    }
    close(fd); /* the mapping stays valid */
    rl_error local;
    rl_error_clear(&local);
    if (parse_header(f, &local)) {
        if (err) *err = local;
        rl_st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int rl_st_count(const rl_st_file *f) { return f ? f->n : 0; }

const rl_st_info *rl_st_at(const rl_st_file *f, int i) {
    if (!f || i < 0 || i >= f->n) return NULL;
    return &f->infos[i];
}

const rl_st_info *rl_st_find(const rl_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const rl_st_info *in = &f->infos[f->by_name[mid]];
        int c = strcmp(name, in->name);
        if (c == 0) return in;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *rl_st_path(const rl_st_file *f) { return f ? f->path : NULL; }

const char *rl_st_metadata(const rl_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

static int lookup_float(const rl_st_file *f, const char *name, const rl_st_info **out, rl_error *err) {
    char nb[128];
    const rl_st_info *in = rl_st_find(f, name);
    if (!in) return rl_fail(err, "%s: no tensor named '%s'", f->path, clean(name, nb, sizeof nb));
    if (in->dtype != RL_F32 && in->dtype != RL_BF16)
        return rl_fail(err, "%s: tensor '%s' has dtype %s, expected F32 or BF16", f->path, clean(name, nb, sizeof nb),
                       st_dtype_str(in->dtype));
    *out = in;
    return 0;
}

static void copy_as_f32(const rl_st_info *in, float *dst, size_t n) {
    if (n == 0) return;
    if (in->dtype == RL_F32) {
        memcpy(dst, in->data, n * sizeof(float));
    } else {
        const unsigned char *s = in->data;
        for (size_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, s + 2 * i, 2);
            dst[i] = rl_bf16_to_f32(b);
        }
    }
}

int rl_st_read_f32(const rl_st_file *f, const char *name, float *dst, size_t n, rl_error *err) {
    if (!f) return rl_fail(err, "(null): no safetensors file");
    const rl_st_info *in;
    if (lookup_float(f, name, &in, err)) return -1;
    size_t numel = in->nbytes / rl_dtype_size(in->dtype);
    char nb[128];
    if (numel != n)
        return rl_fail(err, "%s: tensor '%s' has %zu elements, expected %zu", f->path, clean(name, nb, sizeof nb),
                       numel, n);
    if (n && !dst) return rl_fail(err, "%s: tensor '%s': no destination buffer", f->path, clean(name, nb, sizeof nb));
    copy_as_f32(in, dst, n);
    return 0;
}

int rl_st_read_f32_shape(const rl_st_file *f, const char *name, const rl_shape *shape, float *dst, rl_error *err) {
    if (!f) return rl_fail(err, "(null): no safetensors file");
    const rl_st_info *in;
    if (lookup_float(f, name, &in, err)) return -1;
    if (!rl_shape_equal(&in->shape, shape)) {
        char nb[128], a[96], b[96];
        return rl_fail(err, "%s: tensor '%s' has shape %s, expected %s", f->path, clean(name, nb, sizeof nb),
                       rl_shape_str(&in->shape, a, sizeof a), rl_shape_str(shape, b, sizeof b));
    }
    return rl_st_read_f32(f, name, dst, in->nbytes / rl_dtype_size(in->dtype), err);
}

/* ---- writer ---- */

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes one entry's data in its stored dtype, converting F32 <-> BF16 in
   chunks so no buffer the size of the tensor is needed. */
static int write_entry_data(int fd, const rl_st_entry *e, size_t numel) {
    if (numel == 0) return 0;
    if (e->src_dtype == e->dtype) return write_all(fd, e->data, numel * rl_dtype_size(e->dtype));
    enum { CH = 4096 };
    if (e->src_dtype == RL_F32 && e->dtype == RL_BF16) {
        uint16_t buf[CH];
        const float *s = e->data;
        for (size_t i = 0; i < numel; i += CH) {
            size_t m = numel - i < CH ? numel - i : CH;
            rl_f32_to_bf16_n(s + i, buf, m);
            if (write_all(fd, buf, m * 2)) return -1;
        }
        return 0;
    }
    /* BF16 -> F32 */
    float buf[CH];
    const uint16_t *s = e->data;
    for (size_t i = 0; i < numel; i += CH) {
        size_t m = numel - i < CH ? numel - i : CH;
        rl_bf16_to_f32_n(s + i, buf, m);
        if (write_all(fd, buf, m * 4)) return -1;
    }
    return 0;
}

/* Makes the rename durable: fsync the directory holding path (best effort). */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int data_order_cmp_size(const rl_st_entry *entries, int a, int b) {
    size_t sa = rl_dtype_size(entries[a].dtype), sb = rl_dtype_size(entries[b].dtype);
    if (sa != sb) return sa > sb ? -1 : 1;
    return a - b;
}

int rl_st_write(const char *path, const rl_st_entry *entries, int n, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, rl_error *err) {
    if (!path) return rl_fail(err, "(null): no path given");
    if (n < 0 || n_meta < 0 || (n && !entries) || (n_meta && (!meta_keys || !meta_values)))
        return rl_fail(err, "%s: invalid arguments to the safetensors writer", path);
    char nb[128];
    int rc = -1;
    int *order = NULL;
    size_t *numels = NULL;
    char *hdr = NULL, *tmp = NULL;
    int fd = -1;
    json_t *root = json_object();
    if (!root) return rl_fail(err, "%s: out of memory", path);
    if (n) {
        order = rl_calloc((size_t)n, sizeof *order);
        numels = rl_calloc((size_t)n, sizeof *numels);
        if (!order || !numels) {
            rl_fail(err, "%s: out of memory", path);
            goto out;
        }
    }
    /* Validate entries. */
    for (int i = 0; i < n; i++) {
        const rl_st_entry *e = &entries[i];
        if (!e->name || !e->name[0]) {
            rl_fail(err, "%s: entry %d has no name", path, i);
            goto out;
        }
        const char *cn = clean(e->name, nb, sizeof nb);
        if (strcmp(e->name, "__metadata__") == 0) {
            rl_fail(err, "%s: '__metadata__' is not a valid tensor name", path);
            goto out;
        }
        if (!st_dtype_str(e->dtype) || !st_dtype_str(e->src_dtype)) {
            rl_fail(err, "%s: tensor '%s' has an invalid dtype", path, cn);
            goto out;
        }
        int conv_ok = e->dtype == e->src_dtype || (e->dtype == RL_BF16 && e->src_dtype == RL_F32) ||
                      (e->dtype == RL_F32 && e->src_dtype == RL_BF16);
        if (!conv_ok) {
            rl_fail(err, "%s: tensor '%s': cannot store %s data as %s", path, cn, st_dtype_str(e->src_dtype),
                    st_dtype_str(e->dtype));
            goto out;
        }
        if (e->shape.ndim < 0 || e->shape.ndim > RL_MAX_DIMS) {
            rl_fail(err, "%s: tensor '%s' has invalid rank %d", path, cn, e->shape.ndim);
            goto out;
        }
        int64_t ne = rl_shape_numel(&e->shape);
        size_t bytes;
        if (ne < 0 || rl_mul_size((size_t)ne, 4, &bytes)) {
            rl_fail(err, "%s: tensor '%s' has an invalid shape", path, cn);
            goto out;
        }
        numels[i] = (size_t)ne;
        if (ne > 0 && !e->data) {
            rl_fail(err, "%s: tensor '%s' has no data", path, cn);
            goto out;
        }
        if (json_object_get(root, e->name)) {
            rl_fail(err, "%s: tensor name '%s' is used twice", path, cn);
            goto out;
        }
        /* Placeholder; offsets are filled once the data order is known. */
        if (json_object_set_new(root, e->name, json_null())) {
            rl_fail(err, "%s: tensor name '%s' is not valid UTF-8", path, cn);
            goto out;
        }
        order[i] = i;
    }
    /* Data order: larger dtypes first (stable), so every tensor stays aligned
       given the 8-byte aligned data section, without gaps (which readers reject). */
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i - 1;
        while (j >= 0 && data_order_cmp_size(entries, order[j], v) > 0) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const rl_st_entry *e = &entries[order[k]];
        size_t bytes, end;
        if (rl_mul_size(numels[order[k]], rl_dtype_size(e->dtype), &bytes) || rl_add_size(off, bytes, &end)) {
            rl_fail(err, "%s: total size overflows", path);
            goto out;
        }
        json_t *obj = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !obj || !shape || !offs;
        for (int d = 0; !bad && d < e->shape.ndim; d++) bad = json_array_append_new(shape, json_integer(e->shape.dim[d]));
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) ||
              json_array_append_new(offs, json_integer((json_int_t)end));
        bad = bad || json_object_set_new(obj, "dtype", json_string(st_dtype_str(e->dtype)));
        if (bad) {
            json_decref(obj);
            json_decref(shape);
            json_decref(offs);
            rl_fail(err, "%s: out of memory building the header", path);
            goto out;
        }
        json_object_set_new(obj, "shape", shape);
        json_object_set_new(obj, "data_offsets", offs);
        json_object_set_new(root, e->name, obj);
        off = end;
    }
    if (n_meta) {
        json_t *meta = json_object();
        if (!meta) {
            rl_fail(err, "%s: out of memory", path);
            goto out;
        }
        json_object_set_new(root, "__metadata__", meta);
        for (int i = 0; i < n_meta; i++) {
            if (!meta_keys[i] || !meta_values[i]) {
                rl_fail(err, "%s: metadata entry %d has no key or value", path, i);
                goto out;
            }
            if (json_object_get(meta, meta_keys[i])) {
                rl_fail(err, "%s: metadata key '%s' is used twice", path, clean(meta_keys[i], nb, sizeof nb));
                goto out;
            }
            json_t *s = json_string(meta_values[i]);
            if (!s || json_object_set_new(meta, meta_keys[i], s)) {
                rl_fail(err, "%s: metadata entry '%s' is not valid UTF-8", path, clean(meta_keys[i], nb, sizeof nb));
                goto out;
            }
        }
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) {
        rl_fail(err, "%s: cannot serialise the header", path);
        goto out;
    }
    size_t hlen = strlen(hdr);
    size_t padded = (8 + hlen + 7) / 8 * 8 - 8; /* data section starts 8-byte aligned */
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    size_t tlen = strlen(path) + 32;
    tmp = rl_malloc(tlen);
    if (!tmp) {
        rl_fail(err, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rl_fail(err, "%s: cannot create temporary file '%s': %s", path, tmp, strerror(errno));
        goto out;
    }
    static const char spaces[8] = "        ";
    int werr = write_all(fd, lenbuf, 8) || write_all(fd, hdr, hlen) || write_all(fd, spaces, padded - hlen);
    for (int k = 0; !werr && k < n; k++) werr = write_entry_data(fd, &entries[order[k]], numels[order[k]]);
    if (werr) {
        rl_fail(err, "%s: write failed: %s", path, strerror(errno));
        goto out;
    }
    if (fsync(fd) != 0) {
        rl_fail(err, "%s: fsync failed: %s", path, strerror(errno));
        goto out;
    }
    int c = close(fd);
    fd = -1;
    if (c != 0) {
        rl_fail(err, "%s: close failed: %s", path, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rl_fail(err, "%s: cannot rename '%s' over it: %s", path, tmp, strerror(errno));
        goto out;
    }
    sync_parent_dir(path);
    rl_free(tmp);
    tmp = NULL;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp);
        rl_free(tmp);
    }
    free(hdr); /* allocated by jansson */
    json_decref(root);
    rl_free(order);
    rl_free(numels);
    return rc;
}
