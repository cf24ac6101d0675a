/* Image-question data sets: loading (JSONL + PNG files, WebDataset shards,
 * the shapes task) and serving batches of texts and patch rows. See
 * image_data.h and docs/images.md. */
#include "image_data.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "alloc.h"
#include "image.h"
#include "jsonl.h"
#include "rng.h"
#include "verify.h"

#define PURPOSE_SHUFFLE 0x696d6773687566ull /* 'imgshuf' */
#define ANSWER_CAP 8192
#define MAX_MEMBER_BYTES ((size_t)64 << 20) /* one shard member; larger is refused */

typedef struct img_item {
    char *question, *answer, *solution; /* owned */
    rl_image8 img;
    int64_t oh, ow;                     /* resized */
    int32_t src;
} img_item;

struct rl_image_data {
    rl_image_data_cfg cfg;
    int64_t size, skipped, cap_items;
    img_item *items;                    /* NULL for the shapes task */
    size_t wq, wa, ws, wp;              /* widths with NUL; wq: question alone */
    int64_t max_patches, dim, max_src_px, max_dst_px;
    int64_t shapes_oh, shapes_ow;
    uint32_t *perm;
    rl_dataset_cursor cur;
};

void rl_image_data_cfg_default(rl_image_data_cfg *c) {
    memset(c, 0, sizeof *c);
    c->source = RL_IMG_SHAPES;
    c->split = RL_SPLIT_TRAIN;
    rl_shapes_cfg_default(&c->shapes);
    c->patch = 14;
    c->merge = 2;
    c->min_pixels = 56 * 56;
    c->max_pixels = 224 * 224;
    c->normalize = 1;
    c->shuffle = 1;
}

void rl_image_data_free(rl_image_data *d) {
    if (!d) return;
    for (int64_t i = 0; d->items && i < d->size; i++) { /* shapes: no items */
        img_item *it = &d->items[i];
        rl_free(it->question);
        rl_free(it->answer);
        rl_free(it->solution);
        rl_image8_free(&it->img);
    }
    rl_free(d->items);
    rl_free(d->perm);
    rl_free(d);
}

int64_t rl_image_data_size(const rl_image_data *d) { return d->size; }
int64_t rl_image_data_skipped(const rl_image_data *d) { return d->skipped; }

void rl_image_data_widths(const rl_image_data *d, size_t *prompt, size_t *answer, size_t *solution) {
    if (prompt) *prompt = d->wp;
    if (answer) *answer = d->wa;
    if (solution) *solution = d->ws;
}

void rl_image_data_patches(const rl_image_data *d, int64_t *max_per_image, int64_t *dim) {
    if (max_per_image) *max_per_image = d->max_patches;
    if (dim) *dim = d->dim;
}

size_t rl_image_data_scratch_bytes(const rl_image_data *d) {
    /* u8 canvas (shapes), planar source, resized image */
    return (size_t)d->max_src_px * 3 + sizeof(float) * 3 * (size_t)(d->max_src_px + d->max_dst_px) + 64;
}

/* ---- loading -------------------------------------------------------------- */

/* Answer alternatives of a JSON value (string, number, or list of those)
 * joined by RL_VERIFY_ALT_SEP, trailing whitespace dropped. */
static int answer_text(const json_t *v, char *buf, size_t cap, const char *where, rl_error *err) {
    size_t n = 0;
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && count == 0) return rl_fail(err, "%s: field 'answer' is an empty list", where);
    for (size_t i = 0; i < count; i++) {
        const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
        char t[4096];
        if (rl_json_scalar_text(x, t, sizeof t) < 0)
            return rl_fail(err, "%s: field 'answer' is %s, expected a string, a number or a list of those", where,
                           rl_json_type_name(x));
        size_t l = strlen(t);
        while (l && (t[l - 1] == ' ' || t[l - 1] == '\n' || t[l - 1] == '\r' || t[l - 1] == '\t')) l--;
        if (n + l + 2 > cap) return rl_fail(err, "%s: field 'answer' is too long", where);
        if (i) buf[n++] = RL_VERIFY_ALT_SEP;
        memcpy(buf + n, t, l);
        n += l;
    }
    buf[n] = '\0';
    return 0;
}

static int get_string(const json_t *o, const char *key, int required, const char **out, const char *where,
                      rl_error *err) {
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return required ? rl_fail(err, "%s: missing field '%s'", where, key) : 0;
    if (!json_is_string(v))
        return rl_fail(err, "%s: field '%s' is %s, expected a string", where, key, rl_json_type_name(v));
    *out = json_string_value(v);
    return 0;
}

static int grow_items(rl_image_data *d, rl_error *err) {
    if (d->size < d->cap_items) return 0;
    int64_t cap = d->cap_items ? d->cap_items * 2 : 64;
    size_t bytes;
    if (rl_mul_size((size_t)cap, sizeof(img_item), &bytes)) return rl_fail(err, "image data: too many items");
    img_item *t = rl_realloc(d->items, bytes);
    if (!t) return rl_fail(err, "image data: out of memory");
    d->items = t;
    d->cap_items = cap;
    return 0;
}

/* Adds one record (texts + decoded image, ownership of img taken). Records
 * over an explicit text limit are skipped. */
static int add_item(rl_image_data *d, const char *q, const char *a, const char *s, rl_image8 *img, int32_t src,
                    const char *where, rl_error *err) {
    const rl_image_data_cfg *c = &d->cfg;
    size_t lq = strlen(q), la = strlen(a), ls = s ? strlen(s) : 0;
    if ((c->max_prompt && lq > c->max_prompt) || (c->max_answer && la > c->max_answer) ||
        (c->max_solution && ls > c->max_solution)) {
        d->skipped++;
        rl_image8_free(img);
        return 0;
    }
    int64_t oh, ow;
    rl_error e = {0};
    if (rl_image_smart_size(img->h, img->w, c->patch * c->merge, c->min_pixels, c->max_pixels, &oh, &ow, &e) < 0) {
        rl_image8_free(img);
        return rl_fail(err, "%s: %s", where, e.msg);
    }
    if (grow_items(d, err) < 0) {
        rl_image8_free(img);
        return -1;
    }
    img_item *it = &d->items[d->size];
    memset(it, 0, sizeof *it);
    it->question = rl_strdup(q);
    it->answer = rl_strdup(a);
    it->solution = rl_strdup(s ? s : "");
    it->img = *img;
    img->rgb = NULL;
    it->oh = oh;
    it->ow = ow;
    it->src = src;
    d->size++; /* counted now so free() releases it on any later failure */
    if (!it->question || !it->answer || !it->solution) return rl_fail(err, "image data: out of memory");
    return 0;
}

/* The JSON record of `where`: problem, answer, optional solution (+ image
 * name for the caller). */
static int record_fields(const json_t *o, const char **q, char *answer, const char **s, const char **image,
                         int image_required, const char *where, rl_error *err) {
    if (!json_is_object(o)) return rl_fail(err, "%s: record is %s, expected an object", where, rl_json_type_name(o));
    if (get_string(o, "problem", 1, q, where, err) < 0 || get_string(o, "solution", 0, s, where, err) < 0 ||
        get_string(o, "image", image_required, image, where, err) < 0)
        return -1;
    const json_t *a = json_object_get(o, "answer");
    if (!a || json_is_null(a)) return rl_fail(err, "%s: missing field 'answer'", where);
    return answer_text(a, answer, ANSWER_CAP, where, err);
}

static int load_jsonl(rl_image_data *d, rl_error *err) {
    const char *path = d->cfg.path;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    rl_jsonl *j;
    if (rl_jsonl_open(path, &j, err) < 0) return -1;
    char *answer = rl_malloc(ANSWER_CAP);
    int rc = answer ? 0 : rl_fail(err, "image data: out of memory");
    int32_t record = 0;
    while (!rc) {
        int r = rl_jsonl_next(j, err);
        if (r <= 0) {
            rc = r;
            break;
        }
        char where[4200];
        snprintf(where, sizeof where, "%s:%lld", path, (long long)rl_jsonl_line(j));
        const char *q, *s, *image;
        if (record_fields(rl_jsonl_record(j), &q, answer, &s, &image, 1, where, err) < 0) {
            rc = -1;
            break;
        }
        char ipath[8400];
        if (image[0] == '/') snprintf(ipath, sizeof ipath, "%s", image);
        else snprintf(ipath, sizeof ipath, "%s/%s", dir, image);
        rl_image8 img;
        rl_error e = {0};
        if (rl_png_read(ipath, &img, &e) < 0) {
            rc = rl_fail(err, "%s: %s", where, e.msg);
            break;
        }
        rc = add_item(d, q, answer, s, &img, record++, where, err);
    }
    rl_free(answer);
    rl_jsonl_close(j);
    if (!rc && d->size == 0)
        rc = rl_fail(err, "%s: no usable records%s", path, d->skipped ? " (all above the text limits)" : "");
    return rc;
}

/* ---- shards ---------------------------------------------------------------- */

typedef struct member {
    char *name;
    uint8_t *data;
    size_t n;
} member;

typedef struct member_list {
    member *m;
    size_t n, cap;
} member_list;

static void members_clear(member_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        rl_free(l->m[i].name);
        rl_free(l->m[i].data);
    }
    rl_free(l->m);
    memset(l, 0, sizeof *l);
}

/* The same rule as model bundles: relative, no "..", not empty. */
static int safe_member_name(const char *name) {
    if (!name || !name[0] || name[0] == '/') return 0;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!slash) break;
        p = slash + 1;
    }
    return 1;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Reads a shard's .json and .png members into memory (other extensions are
 * ignored, as WebDataset readers do), refusing unsafe members. */
static int read_shard(const char *path, member_list *l, rl_error *err) {
    struct archive *a = archive_read_new();
    if (!a) return rl_fail(err, "out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        int rc = rl_fail(err, "%s: not a readable tar shard: %s", path, archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    struct archive_entry *e;
    int r, rc = 0;
    while (!rc && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        mode_t type = archive_entry_filetype(e);
        if (!safe_member_name(name)) {
            rc = rl_fail(err, "%s: unsafe member path '%s' in shard", path, name ? name : "");
            break;
        }
        if (archive_entry_hardlink(e) || type == AE_IFLNK) {
            rc = rl_fail(err, "%s: shard member '%s' is a link (not allowed)", path, name);
            break;
        }
        if (type == AE_IFDIR) continue;
        if (type != AE_IFREG) {
            rc = rl_fail(err, "%s: shard member '%s' is not a regular file", path, name);
            break;
        }
        if (!ends_with(name, ".json") && !ends_with(name, ".png")) continue;
        int64_t size = archive_entry_size(e);
        if (size < 0 || (uint64_t)size > MAX_MEMBER_BYTES) {
            rc = rl_fail(err, "%s: shard member '%s' is too large (%lld bytes)", path, name, (long long)size);
            break;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 64;
            member *m = rl_realloc(l->m, cap * sizeof *m);
            if (!m) {
                rc = rl_fail(err, "out of memory");
                break;
            }
            l->m = m;
            l->cap = cap;
        }
        member *m = &l->m[l->n];
        m->name = rl_strdup(name);
        m->data = rl_malloc((size_t)size + 1);
        m->n = 0;
        l->n++;
        if (!m->name || !m->data) {
            rc = rl_fail(err, "out of memory");
            break;
        }
        while (m->n < (size_t)size) {
            la_ssize_t got = archive_read_data(a, m->data + m->n, (size_t)size - m->n);
            if (got <= 0) {
                rc = rl_fail(err, "%s: truncated or corrupt shard (member '%s'): %s", path, name,
                             got < 0 ? archive_error_string(a) : "data ends early");
                break;
            }
            m->n += (size_t)got;
        }
        if (!rc) m->data[m->n] = '\0';
    }
    if (!rc && r != ARCHIVE_EOF) rc = rl_fail(err, "%s: truncated or corrupt shard: %s", path, archive_error_string(a));
    archive_read_free(a);
    return rc;
}

static const member *find_member(const member_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->m[i].name, name) == 0) return &l->m[i];
    return NULL;
}

static int load_shard(rl_image_data *d, const char *path, int32_t *record, rl_error *err) {
    member_list l = {0};
    int rc = read_shard(path, &l, err);
    char *answer = rc ? NULL : rl_malloc(ANSWER_CAP);
    if (!rc && !answer) rc = rl_fail(err, "image data: out of memory");
    for (size_t i = 0; !rc && i < l.n; i++) {
        const member *m = &l.m[i];
        if (!ends_with(m->name, ".json")) continue;
        /* key: the path up to the first '.' of the base name */
        char key[4096];
        const char *base = strrchr(m->name, '/');
        base = base ? base + 1 : m->name;
        const char *dot = strchr(base, '.');
        snprintf(key, sizeof key, "%.*s", (int)(dot - m->name), m->name);
        char where[8400];
        snprintf(where, sizeof where, "%s: sample '%s' (%s)", path, key, m->name);
        json_error_t je;
        json_t *o = json_loadb((const char *)m->data, m->n, 0, &je);
        if (!o) {
            rc = rl_fail(err, "%s: invalid JSON: %s", where, je.text);
            break;
        }
        const char *q, *s, *image;
        if (record_fields(o, &q, answer, &s, &image, 0, where, err) < 0) {
            json_decref(o);
            rc = -1;
            break;
        }
        char iname[4200];
        if (image) { /* a member name, relative to the sample's directory */
            size_t dirlen = (size_t)(base - m->name);
            snprintf(iname, sizeof iname, "%.*s%s", (int)dirlen, m->name, image);
        } else {
            snprintf(iname, sizeof iname, "%s.png", key);
        }
        const member *im = find_member(&l, iname);
        if (!im) {
            rc = rl_fail(err, "%s: image '%s' is not in the shard", where, iname);
            json_decref(o);
            break;
        }
        char iwhere[8400];
        snprintf(iwhere, sizeof iwhere, "%s:%s", path, iname);
        rl_image8 img;
        if (rl_png_decode(im->data, im->n, iwhere, &img, err) < 0) {
            json_decref(o);
            rc = -1;
            break;
        }
        rc = add_item(d, q, answer, s, &img, (*record)++, where, err);
        json_decref(o);
    }
    rl_free(answer);
    members_clear(&l);
    return rc;
}

static int is_shard_name(const char *s) {
    return ends_with(s, ".tar") || ends_with(s, ".tar.zst") || ends_with(s, ".tar.gz") || ends_with(s, ".tgz");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_shards(rl_image_data *d, rl_error *err) {
    const char *path = d->cfg.path;
    struct stat st;
    if (stat(path, &st) != 0) return rl_fail(err, "%s: no such shard file or directory (%s)", path, strerror(errno));
    int32_t record = 0;
    int rc = 0;
    if (!S_ISDIR(st.st_mode)) {
        rc = load_shard(d, path, &record, err);
    } else {
        DIR *dir = opendir(path);
        if (!dir) return rl_fail(err, "%s: %s", path, strerror(errno));
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while (!rc && (e = readdir(dir))) {
            if (e->d_name[0] == '.' || !is_shard_name(e->d_name)) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **t = rl_realloc(names, cap * sizeof *t);
                if (!t) {
                    rc = rl_fail(err, "out of memory");
                    break;
                }
                names = t;
            }
            if (!(names[n] = rl_strdup(e->d_name))) rc = rl_fail(err, "out of memory");
            else n++;
        }
        closedir(dir);
        if (!rc && n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            char p[8400];
            snprintf(p, sizeof p, "%s/%s", path, names[i]);
            if (!rc) rc = load_shard(d, p, &record, err);
            rl_free(names[i]);
        }
        rl_free(names);
        if (!rc && n == 0) rc = rl_fail(err, "%s: directory holds no .tar/.tar.zst shards", path);
    }
    if (!rc && d->size == 0)
        rc = rl_fail(err, "%s: no usable samples%s", path, d->skipped ? " (all above the text limits)" : "");
    return rc;
}

/* ---- sizes ------------------------------------------------------------------ */

static size_t placeholder_len(int64_t tokens) {
    return strlen(RL_VISION_START) + (size_t)tokens * strlen(RL_IMAGE_PAD) + strlen(RL_VISION_END);
}

static int finish_files(rl_image_data *d, rl_error *err) {
    size_t lq = 0, la = 0, ls = 0, lp = 0;
    for (int64_t i = 0; i < d->size; i++) {
        const img_item *it = &d->items[i];
        size_t q = strlen(it->question), a = strlen(it->answer), s = strlen(it->solution);
        int64_t tok = rl_image_tokens(it->oh, it->ow, d->cfg.patch, d->cfg.merge);
        size_t p = placeholder_len(tok) + q;
        if (q > lq) lq = q;
        if (a > la) la = a;
        if (s > ls) ls = s;
        if (p > lp) lp = p;
        int64_t np = (it->oh / d->cfg.patch) * (it->ow / d->cfg.patch);
        if (np > d->max_patches) d->max_patches = np;
        if (it->img.h * it->img.w > d->max_src_px) d->max_src_px = it->img.h * it->img.w;
        if (it->oh * it->ow > d->max_dst_px) d->max_dst_px = it->oh * it->ow;
    }
    const rl_image_data_cfg *c = &d->cfg;
    d->wq = (c->max_prompt ? c->max_prompt : lq) + 1;
    d->wp = lp + (c->max_prompt ? c->max_prompt - lq : 0) + 1;
    d->wa = (c->max_answer ? c->max_answer : la) + 1;
    d->ws = (c->max_solution ? c->max_solution : ls) + 1;
    (void)err;
    return 0;
}

static int setup_shapes(rl_image_data *d, rl_error *err) {
    const rl_image_data_cfg *c = &d->cfg;
    if (rl_shapes_cfg_check(&c->shapes, err) < 0) return -1;
    d->size = c->size ? c->size : (c->split == RL_SPLIT_TEST ? 500 : 10000);
    if (d->size < 1 || d->size > INT32_MAX) return rl_fail(err, "shapes task: size %lld out of range", (long long)d->size);
    if (rl_image_smart_size(c->shapes.height, c->shapes.width, c->patch * c->merge, c->min_pixels, c->max_pixels,
                            &d->shapes_oh, &d->shapes_ow, err) < 0)
        return rl_fail_prefix(err, "shapes task: ");
    size_t bq, ba, bs;
    rl_shapes_max_lengths(&c->shapes, &bq, &ba, &bs);
    if ((c->max_prompt && c->max_prompt < bq) || (c->max_answer && c->max_answer < ba) ||
        (c->max_solution && c->max_solution < bs))
        return rl_fail(err, "shapes task: text limits below the task's bounds (prompt %zu, answer %zu, solution %zu bytes)",
                       bq, ba, bs);
    d->wq = (c->max_prompt ? c->max_prompt : bq) + 1;
    d->wa = (c->max_answer ? c->max_answer : ba) + 1;
    d->ws = (c->max_solution ? c->max_solution : bs) + 1;
    d->wp = placeholder_len(rl_image_tokens(d->shapes_oh, d->shapes_ow, c->patch, c->merge)) + d->wq;
    d->max_patches = (d->shapes_oh / c->patch) * (d->shapes_ow / c->patch);
    d->max_src_px = (int64_t)c->shapes.width * c->shapes.height;
    d->max_dst_px = d->shapes_oh * d->shapes_ow;
    rl_shapes_problem p; /* fail now, not at step 1000, if the split cannot be generated */
    return rl_shapes_generate(&c->shapes, c->split, 0, &p, err);
}

static void shuffle_epoch(rl_image_data *d, int64_t epoch) {
    if (d->perm) rl_rng_permutation(d->perm, (uint32_t)d->size, d->cfg.seed, rl_rng_stream2(PURPOSE_SHUFFLE, (uint64_t)epoch));
}

int rl_image_data_open(const rl_image_data_cfg *c, rl_image_data **out, rl_error *err) {
    *out = NULL;
    if (c->patch < 1 || c->patch > 64 || c->merge < 1 || c->merge > 8)
        return rl_fail(err, "image data: patch %lld / merge %lld out of range (1..64, 1..8)", (long long)c->patch,
                       (long long)c->merge);
    if (c->min_pixels < 0 || c->max_pixels < 1 || c->max_pixels > RL_IMAGE_MAX_PIXELS)
        return rl_fail(err, "image data: pixel budget [%lld, %lld] out of range", (long long)c->min_pixels,
                       (long long)c->max_pixels);
    if (c->source != RL_IMG_SHAPES && (!c->path || !c->path[0]))
        return rl_fail(err, "image data: a %s source needs a path", c->source == RL_IMG_JSONL ? "jsonl" : "shards");
    rl_image_data *d = rl_calloc(1, sizeof *d);
    if (!d) return rl_fail(err, "image data: out of memory");
    d->cfg = *c;
    d->dim = 3 * c->patch * c->patch;
    int rc;
    if (c->source == RL_IMG_SHAPES) rc = setup_shapes(d, err);
    else rc = (c->source == RL_IMG_JSONL ? load_jsonl(d, err) : load_shards(d, err)) < 0 ? -1 : finish_files(d, err);
    if (rc == 0 && c->shuffle) {
        size_t bytes;
        if (rl_mul_size((size_t)d->size, sizeof(uint32_t), &bytes) || !(d->perm = rl_malloc(bytes)))
            rc = rl_fail(err, "image data: out of memory for a permutation of %lld items", (long long)d->size);
    }
    if (rc < 0) {
        rl_image_data_free(d);
        return -1;
    }
    d->cfg.path = NULL; /* not owned; only needed while loading */
    shuffle_epoch(d, 0);
    *out = d;
    return 0;
}

/* ---- serving ---------------------------------------------------------------- */

static void put_row(uint8_t *row, size_t width, const char *s) {
    if (!row) return;
    size_t n = strlen(s);
    if (n > width - 1) n = width - 1;
    memcpy(row, s, n);
    memset(row + n, 0, width - n);
}

int rl_image_data_source_size(const rl_image_data *d, int64_t i, int64_t *h, int64_t *w, rl_error *err) {
    if (i < 0 || i >= d->size)
        return rl_fail(err, "image data: item %lld out of range [0, %lld)", (long long)i, (long long)d->size);
    if (d->items) {
        *h = d->items[i].img.h;
        *w = d->items[i].img.w;
    } else {
        *h = d->cfg.shapes.height;
        *w = d->cfg.shapes.width;
    }
    return 0;
}

int rl_image_data_item_size(const rl_image_data *d, int64_t i, int64_t *h, int64_t *w, rl_error *err) {
    if (i < 0 || i >= d->size)
        return rl_fail(err, "image data: item %lld out of range [0, %lld)", (long long)i, (long long)d->size);
    *h = d->items ? d->items[i].oh : d->shapes_oh;
    *w = d->items ? d->items[i].ow : d->shapes_ow;
    return 0;
}

/* Texts and source pixels of item i; rgb_out gets a pointer to the pixels
 * (into the item, or rendered into canvas for the shapes task). */
static int item_texts(const rl_image_data *d, int64_t i, uint8_t *canvas, const uint8_t **rgb_out, uint8_t *question,
                      size_t wq, uint8_t *answer, uint8_t *solution, int32_t *src, rl_error *err) {
    if (d->items) {
        const img_item *it = &d->items[i];
        put_row(question, wq, it->question);
        put_row(answer, d->wa, it->answer);
        put_row(solution, d->ws, it->solution);
        if (src) *src = it->src;
        if (rgb_out) *rgb_out = it->img.rgb;
        return 0;
    }
    rl_shapes_problem p;
    if (rl_shapes_generate(&d->cfg.shapes, d->cfg.split, (uint64_t)i, &p, err) < 0) return -1;
    char t[2048];
    /* widths come from the task's bounds, so the texts fit */
    if (question) {
        if (rl_shapes_prompt(&p, t, sizeof t) < 0) return rl_fail(err, "shapes task: prompt too long");
        put_row(question, wq, t);
    }
    if (answer) {
        if (rl_shapes_answer(&p, t, sizeof t) < 0) return rl_fail(err, "shapes task: answer too long");
        put_row(answer, d->wa, t);
    }
    if (solution) {
        if (rl_shapes_solution(&p, t, sizeof t) < 0) return rl_fail(err, "shapes task: solution too long");
        put_row(solution, d->ws, t);
    }
    if (src) *src = (int32_t)i;
    if (canvas) rl_shapes_render(&d->cfg.shapes, &p, canvas);
    if (rgb_out) *rgb_out = canvas;
    return 0;
}

int rl_image_data_item(const rl_image_data *d, int64_t i, uint8_t *rgb, uint8_t *prompt, uint8_t *answer,
                       uint8_t *solution, int32_t *source_index, rl_error *err) {
    if (i < 0 || i >= d->size)
        return rl_fail(err, "image data: item %lld out of range [0, %lld)", (long long)i, (long long)d->size);
    const uint8_t *src = NULL;
    if (item_texts(d, i, d->items ? NULL : rgb, &src, prompt, d->wq, answer, solution, source_index, err) < 0)
        return -1;
    if (rgb && d->items) memcpy(rgb, src, (size_t)(d->items[i].img.h * d->items[i].img.w * 3));
    return 0;
}

int rl_image_data_next(rl_image_data *d, int64_t batch, uint8_t *prompt, uint8_t *answer, uint8_t *solution,
                       float *pixels, int32_t *grid, int32_t *index, int64_t *n_patches, void *scratch,
                       rl_error *err) {
    const rl_image_data_cfg *c = &d->cfg;
    uint8_t *canvas = scratch;
    float *planar = (float *)(((uintptr_t)(canvas + d->max_src_px * 3) + 15) & ~(uintptr_t)15);
    float *resized = planar + 3 * d->max_src_px;
    int64_t rows = 0;
    for (int64_t b = 0; b < batch; b++) {
        if (d->cur.pos >= d->size) {
            d->cur.epoch++;
            d->cur.pos = 0;
            shuffle_epoch(d, d->cur.epoch);
        }
        int64_t i = d->perm ? (int64_t)d->perm[d->cur.pos] : d->cur.pos;
        uint8_t *prow = prompt ? prompt + (size_t)b * d->wp : NULL;
        const uint8_t *rgb;
        /* the question goes after the placeholders, written in place */
        int64_t h, w, oh, ow;
        rl_image_data_source_size(d, i, &h, &w, err);
        rl_image_data_item_size(d, i, &oh, &ow, err);
        int64_t tok = rl_image_tokens(oh, ow, c->patch, c->merge);
        size_t ph = placeholder_len(tok);
        if (item_texts(d, i, canvas, &rgb, prow ? prow + ph : NULL, d->wp - ph,
                       answer ? answer + (size_t)b * d->wa : NULL, solution ? solution + (size_t)b * d->ws : NULL,
                       index ? index + b : NULL, err) < 0)
            return -1;
        if (prow) {
            char *p = (char *)prow;
            size_t n = strlen(RL_VISION_START), k = strlen(RL_IMAGE_PAD);
            memcpy(p, RL_VISION_START, n);
            p += n;
            for (int64_t t = 0; t < tok; t++, p += k) memcpy(p, RL_IMAGE_PAD, k);
            memcpy(p, RL_VISION_END, strlen(RL_VISION_END));
        }
        if (pixels) {
            rl_image_to_planar(rgb, h, w, planar);
            rl_image_resize_bilinear(planar, 3, h, w, resized, oh, ow);
            if (c->normalize) rl_image_normalize(resized, oh, ow, rl_image_clip_mean, rl_image_clip_std);
            if (rl_image_to_patches(resized, 3, oh, ow, c->patch, c->merge, pixels + rows * d->dim, err) < 0) return -1;
        }
        if (grid) {
            grid[2 * b] = (int32_t)(oh / c->patch);
            grid[2 * b + 1] = (int32_t)(ow / c->patch);
        }
        rows += (oh / c->patch) * (ow / c->patch);
        d->cur.pos++;
    }
    if (n_patches) *n_patches = rows;
    return 0;
}

void rl_image_data_get_cursor(const rl_image_data *d, rl_dataset_cursor *c) { *c = d->cur; }

int rl_image_data_set_cursor(rl_image_data *d, const rl_dataset_cursor *c, rl_error *err) {
    if (c->epoch < 0 || c->pos < 0 || c->pos > d->size)
        return rl_fail(err, "image data: cursor (epoch %lld, position %lld) is out of range for %lld items",
                       (long long)c->epoch, (long long)c->pos, (long long)d->size);
    if (c->epoch != d->cur.epoch) shuffle_epoch(d, c->epoch);
    d->cur = *c;
    return 0;
}
