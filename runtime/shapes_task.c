/* The shapes task: scene generation, the rasteriser and the texts. */
#include "shapes_task.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"

static const char *const kind_names[RL_SHAPE_KINDS] = {"circle", "square", "triangle", "star"};
static const char *const kind_plural[RL_SHAPE_KINDS] = {"circles", "squares", "triangles", "stars"};
static const char *const color_names[RL_COLORS] = {"red", "green", "blue", "yellow"};
static const char *const size_names[RL_SIZES] = {"small", "large"};
static const uint8_t color_rgb[RL_COLORS][3] = {{220, 40, 40}, {40, 170, 60}, {40, 80, 220}, {235, 190, 0}};
/* Plain, light backgrounds: every shape colour stands out on each. */
#define N_BACKGROUNDS 4
static const uint8_t background_rgb[N_BACKGROUNDS][3] = {{255, 255, 255}, {236, 236, 236}, {250, 244, 228}, {228, 236, 246}};
static const char *const cell_names[9] = {"top left", "top", "top right", "left", "center",
                                          "right", "bottom left", "bottom", "bottom right"};

const char *rl_shapes_kind_name(int kind) { return kind >= 0 && kind < RL_SHAPE_KINDS ? kind_names[kind] : "?"; }
const char *rl_shapes_color_name(int color) { return color >= 0 && color < RL_COLORS ? color_names[color] : "?"; }

void rl_shapes_cfg_default(rl_shapes_cfg *c) {
    c->width = c->height = 112;
    c->min_shapes = 2;
    c->max_shapes = 6;
    c->kinds = 4;
    c->test_percent = 10;
    c->seed = 0;
}

int rl_shapes_cfg_check(const rl_shapes_cfg *c, rl_error *err) {
    if (c->width < 32 || c->width > 1024 || c->height < 32 || c->height > 1024)
        return rl_fail(err, "shapes task: canvas %dx%d must be within 32..1024 a side", c->width, c->height);
    if (c->min_shapes < 1 || c->max_shapes > RL_SHAPES_MAX || c->min_shapes > c->max_shapes)
        return rl_fail(err, "shapes task: shapes per image %d..%d must be within 1..%d", c->min_shapes, c->max_shapes,
                       RL_SHAPES_MAX);
    if (c->kinds < 3 || c->kinds > RL_SHAPE_KINDS)
        return rl_fail(err, "shapes task: kinds = %d must be 3 or 4", c->kinds);
    if (c->test_percent < 1 || c->test_percent > 50)
        return rl_fail(err, "shapes task: test_percent = %d must be in [1, 50]", c->test_percent);
    return 0;
}

/* ---- content ------------------------------------------------------------ */

static int in_set(const rl_shapes_item *s, rl_shapes_set set) {
    return (set.color < 0 || s->color == set.color) && (set.kind < 0 || s->kind == set.kind);
}

int rl_shapes_count(const rl_shapes_problem *p, rl_shapes_set s) {
    int n = 0;
    for (int i = 0; i < p->n; i++) n += in_set(&p->shape[i], s);
    return n;
}

static int shape_key(const rl_shapes_item *s) { return (s->size * RL_COLORS + s->color) * RL_SHAPE_KINDS + s->kind; }

typedef struct out {
    char *p;
    size_t n, cap;
    int bad;
} out;

static void emit(out *o, const char *s) {
    size_t l = strlen(s);
    if (o->bad || o->n + l >= o->cap) {
        o->bad = 1;
        return;
    }
    memcpy(o->p + o->n, s, l);
    o->n += l;
    o->p[o->n] = '\0';
}

static void emit_i(out *o, int64_t v) {
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)v);
    emit(o, t);
}

static int finish(out *o) { return o->bad ? -1 : (int)o->n; }

static out out_make(char *buf, size_t cap) {
    out o = {buf, 0, cap, cap == 0};
    if (cap) buf[0] = '\0';
    return o;
}

int rl_shapes_canonical(const rl_shapes_problem *p, char *buf, size_t cap) {
    int keys[RL_SHAPES_MAX];
    for (int i = 0; i < p->n; i++) keys[i] = shape_key(&p->shape[i]);
    for (int i = 1; i < p->n; i++) /* insertion sort: n <= 12 */
        for (int j = i; j > 0 && keys[j - 1] > keys[j]; j--) {
            int t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    out o = out_make(buf, cap);
    for (int i = 0; i < p->n; i++) {
        int k = keys[i];
        if (i) emit(&o, ",");
        emit(&o, size_names[k / (RL_COLORS * RL_SHAPE_KINDS)]);
        emit(&o, " ");
        emit(&o, color_names[(k / RL_SHAPE_KINDS) % RL_COLORS]);
        emit(&o, " ");
        emit(&o, kind_names[k % RL_SHAPE_KINDS]);
    }
    return finish(&o);
}

rl_split rl_shapes_split_of(const rl_shapes_problem *p, int test_percent) {
    char t[RL_SHAPES_MAX * 24 + 8];
    int n = rl_shapes_canonical(p, t, sizeof t);
    /* FNV-1a then a splitmix64 finaliser: fixed forever, so splits never move */
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= (unsigned char)t[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return (int)(h % 100) < test_percent ? RL_SPLIT_TEST : RL_SPLIT_TRAIN;
}

/* ---- generation --------------------------------------------------------- */

/* Bounding radius of a size on this canvas. */
static float size_radius(const rl_shapes_cfg *c, int size) {
    float m = (float)(c->width < c->height ? c->width : c->height);
    return m * (size == RL_SIZE_LARGE ? 0.13f : 0.075f);
}

static float unit(rl_rng *r) { return rl_rng_uniform(r); }

/* A set of the scene: colour only, kind only, or both; usually the set of a
 * shape that is present so counts of 0 stay a minority. */
static rl_shapes_set draw_set(const rl_shapes_cfg *c, const rl_shapes_problem *p, rl_rng *r, int form) {
    rl_shapes_set s;
    int from_scene = rl_rng_below(r, 4) != 0;
    const rl_shapes_item *sh = &p->shape[rl_rng_below(r, (uint64_t)p->n)];
    int color = from_scene ? sh->color : (int)rl_rng_below(r, RL_COLORS);
    int kind = from_scene ? sh->kind : (int)rl_rng_below(r, (uint64_t)c->kinds);
    s.color = form == 1 ? -1 : color;
    s.kind = form == 0 ? -1 : kind;
    return s;
}

static int same_set(rl_shapes_set a, rl_shapes_set b) { return a.color == b.color && a.kind == b.kind; }

/* One question for the scene; 0 if this draw found none (retry). */
static int draw_question(const rl_shapes_cfg *c, rl_shapes_problem *p, rl_rng *r) {
    p->qtype = (rl_shapes_qtype)rl_rng_below(r, RL_SQ_TYPES);
    p->wording = (int)rl_rng_below(r, 2);
    p->a.color = p->a.kind = p->b.color = p->b.kind = -1;
    if (p->qtype == RL_SQ_TOTAL) {
        p->answer = p->n;
        return 1;
    }
    if (p->qtype == RL_SQ_COUNT) {
        p->a = draw_set(c, p, r, (int)rl_rng_below(r, 3));
        p->answer = rl_shapes_count(p, p->a);
        return 1;
    }
    /* Two-set questions compare like with like (two colours or two kinds),
     * so the sets never overlap and "how many more" reads naturally. */
    int form = (int)rl_rng_below(r, 2);
    p->a = draw_set(c, p, r, form);
    p->b = draw_set(c, p, r, form);
    if (same_set(p->a, p->b)) return 0;
    int ca = rl_shapes_count(p, p->a), cb = rl_shapes_count(p, p->b);
    switch (p->qtype) {
    case RL_SQ_MORE:
        if (ca == cb) return 0;
        if (ca < cb) {
            rl_shapes_set t = p->a;
            p->a = p->b;
            p->b = t;
        }
        p->answer = ca > cb ? ca - cb : cb - ca;
        return 1;
    case RL_SQ_SUM: p->answer = ca + cb; return 1;
    default: p->answer = (int64_t)ca * cb; return 1;
    }
}

static int draw_scene(const rl_shapes_cfg *c, rl_rng *r, rl_shapes_problem *p) {
    memset(p, 0, sizeof *p);
    p->width = c->width;
    p->height = c->height;
    p->n = c->min_shapes + (int)rl_rng_below(r, (uint64_t)(c->max_shapes - c->min_shapes + 1));
    p->background = (int)rl_rng_below(r, N_BACKGROUNDS);
    for (int i = 0; i < p->n; i++) {
        rl_shapes_item *s = &p->shape[i];
        s->kind = (int)rl_rng_below(r, (uint64_t)c->kinds);
        s->color = (int)rl_rng_below(r, RL_COLORS);
        s->size = (int)rl_rng_below(r, RL_SIZES);
        s->r = size_radius(c, s->size);
        int placed = 0;
        for (int t = 0; t < 200 && !placed; t++) {
            float m = s->r + 2.0f;
            s->cx = m + unit(r) * ((float)c->width - 2 * m);
            s->cy = m + unit(r) * ((float)c->height - 2 * m);
            placed = 1;
            for (int j = 0; j < i && placed; j++) {
                float dx = s->cx - p->shape[j].cx, dy = s->cy - p->shape[j].cy, d = s->r + p->shape[j].r + 2.0f;
                placed = dx * dx + dy * dy >= d * d;
            }
        }
        if (!placed) return 0; /* crowded canvas: draw another scene */
    }
    for (int t = 0; t < 8; t++)
        if (draw_question(c, p, r)) return 1;
    return 0;
}

int rl_shapes_generate(const rl_shapes_cfg *c, rl_split split, uint64_t index, rl_shapes_problem *p, rl_error *err) {
    if (rl_shapes_cfg_check(c, err) < 0) return -1;
    const int max_attempts = 4000;
    for (int attempt = 0; attempt < max_attempts; attempt++) {
        rl_rng r;
        rl_rng_init(&r, c->seed,
                    rl_rng_stream_hash((const uint64_t[]){0x736861706573ull, (uint64_t)split, index, (uint64_t)attempt}, 4));
        if (draw_scene(c, &r, p) && rl_shapes_split_of(p, c->test_percent) == split) return 0;
    }
    return rl_fail(err, "shapes task: no %s scene found for index %llu in %d tries (canvas too small for %d shapes?)",
                   split == RL_SPLIT_TEST ? "test" : "train", (unsigned long long)index, max_attempts, c->max_shapes);
}

/* ---- rasteriser ---------------------------------------------------------- */

/* Polygon vertices (pixels) of a triangle or star around the shape centre. */
static int polygon(const rl_shapes_item *s, float *vx, float *vy) {
    const float pi = 3.14159265358979f;
    if (s->kind == RL_SHAPE_TRIANGLE) {
        for (int k = 0; k < 3; k++) { /* point up: y grows downwards */
            float a = -pi / 2 + (float)k * 2 * pi / 3;
            vx[k] = s->cx + s->r * cosf(a);
            vy[k] = s->cy + s->r * sinf(a);
        }
        return 3;
    }
    for (int k = 0; k < 10; k++) { /* five points, inner radius 0.45 */
        float a = -pi / 2 + (float)k * pi / 5, rr = k % 2 ? 0.45f * s->r : s->r;
        vx[k] = s->cx + rr * cosf(a);
        vy[k] = s->cy + rr * sinf(a);
    }
    return 10;
}

static int inside_polygon(const float *vx, const float *vy, int n, float x, float y) {
    int in = 0; /* even-odd rule: counts edge crossings of a ray to +x */
    for (int i = 0, j = n - 1; i < n; j = i++)
        if ((vy[i] > y) != (vy[j] > y) && x < vx[j] + (vx[i] - vx[j]) * (y - vy[j]) / (vy[i] - vy[j])) in = !in;
    return in;
}

static int inside(const rl_shapes_item *s, const float *vx, const float *vy, int nv, float x, float y) {
    float dx = x - s->cx, dy = y - s->cy;
    switch (s->kind) {
    case RL_SHAPE_CIRCLE: return dx * dx + dy * dy <= 0.85f * 0.85f * s->r * s->r;
    case RL_SHAPE_SQUARE: return fabsf(dx) <= 0.7f * s->r && fabsf(dy) <= 0.7f * s->r;
    default: return inside_polygon(vx, vy, nv, x, y);
    }
}

void rl_shapes_render(const rl_shapes_cfg *c, const rl_shapes_problem *p, uint8_t *rgb) {
    (void)c; /* the problem carries its canvas */
    int64_t W = p->width, H = p->height;
    const uint8_t *bg = background_rgb[p->background % N_BACKGROUNDS];
    for (int64_t i = 0; i < W * H; i++) memcpy(rgb + 3 * i, bg, 3);
    for (int k = 0; k < p->n; k++) {
        const rl_shapes_item *s = &p->shape[k];
        float vx[10], vy[10];
        int nv = s->kind == RL_SHAPE_TRIANGLE || s->kind == RL_SHAPE_STAR ? polygon(s, vx, vy) : 0;
        int64_t x0 = (int64_t)floorf(s->cx - s->r) - 1, x1 = (int64_t)ceilf(s->cx + s->r) + 1;
        int64_t y0 = (int64_t)floorf(s->cy - s->r) - 1, y1 = (int64_t)ceilf(s->cy + s->r) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > W - 1) x1 = W - 1;
        if (y1 > H - 1) y1 = H - 1;
        const uint8_t *col = color_rgb[s->color];
        for (int64_t y = y0; y <= y1; y++)
            for (int64_t x = x0; x <= x1; x++) {
                int hits = 0; /* 4x4 samples at sub-pixel centres: anti-aliased edges */
                for (int sy = 0; sy < 4; sy++)
                    for (int sx = 0; sx < 4; sx++)
                        hits += inside(s, vx, vy, nv, (float)x + (sx + 0.5f) / 4, (float)y + (sy + 0.5f) / 4);
                if (!hits) continue;
                uint8_t *px = rgb + 3 * (y * W + x);
                for (int ch = 0; ch < 3; ch++)
                    px[ch] = (uint8_t)((px[ch] * (16 - hits) + col[ch] * hits + 8) / 16);
            }
    }
}

/* ---- texts --------------------------------------------------------------- */

/* "red circles", "red shapes", "circles" */
static void emit_set(out *o, rl_shapes_set s) {
    if (s.color >= 0) {
        emit(o, color_names[s.color]);
        emit(o, " ");
    }
    emit(o, s.kind >= 0 ? kind_plural[s.kind] : "shapes");
}

static void emit_set_cap(out *o, rl_shapes_set s) {
    char t[40];
    out tmp = out_make(t, sizeof t);
    emit_set(&tmp, s);
    if (t[0] >= 'a' && t[0] <= 'z') t[0] = (char)(t[0] - 'a' + 'A');
    emit(o, t);
}

static void emit_question(out *o, const rl_shapes_problem *p) {
    int w = p->wording;
    switch (p->qtype) {
    case RL_SQ_COUNT:
        emit(o, w ? "Count the " : "How many ");
        emit_set(o, p->a);
        emit(o, w ? " in the image." : " are in the image?");
        break;
    case RL_SQ_TOTAL: emit(o, w ? "Count all the shapes in the image." : "How many shapes are in the image in total?"); break;
    case RL_SQ_MORE:
        emit(o, "How many more ");
        emit_set(o, p->a);
        emit(o, " than ");
        emit_set(o, p->b);
        emit(o, w ? " does the image show?" : " are there in the image?");
        break;
    case RL_SQ_SUM:
    case RL_SQ_PRODUCT:
        emit(o, w ? "In the image, what is the number of " : "What is the number of ");
        emit_set(o, p->a);
        emit(o, p->qtype == RL_SQ_SUM ? " plus the number of " : " times the number of ");
        emit_set(o, p->b);
        emit(o, w ? "?" : " in the image?");
        break;
    default: break;
    }
}

int rl_shapes_prompt(const rl_shapes_problem *p, char *buf, size_t cap) {
    out o = out_make(buf, cap);
    emit_question(&o, p);
    emit(&o, " Think in <think></think>, then give the number in <answer></answer>.");
    return finish(&o);
}

int rl_shapes_answer(const rl_shapes_problem *p, char *buf, size_t cap) {
    out o = out_make(buf, cap);
    emit_i(&o, p->answer);
    return finish(&o);
}

/* Which third of the canvas, across and down: "top left" ... "bottom right". */
static int cell_of(const rl_shapes_problem *p, const rl_shapes_item *s) {
    int cx = (int)(s->cx * 3 / (float)p->width), cy = (int)(s->cy * 3 / (float)p->height);
    if (cx > 2) cx = 2;
    if (cy > 2) cy = 2;
    return cy * 3 + cx;
}

int rl_shapes_solution(const rl_shapes_problem *p, char *buf, size_t cap) {
    int order[RL_SHAPES_MAX], cell[RL_SHAPES_MAX];
    for (int i = 0; i < p->n; i++) {
        order[i] = i;
        cell[i] = cell_of(p, &p->shape[i]);
    }
    for (int i = 1; i < p->n; i++) /* reading order: by cell, then left to right */
        for (int j = i; j > 0; j--) {
            const rl_shapes_item *a = &p->shape[order[j - 1]], *b = &p->shape[order[j]];
            int ca = cell[order[j - 1]], cb = cell[order[j]];
            if (ca < cb || (ca == cb && a->cx <= b->cx)) break;
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    out o = out_make(buf, cap);
    emit(&o, "<think>The image shows ");
    emit_i(&o, p->n);
    emit(&o, p->n == 1 ? " shape: " : " shapes: ");
    for (int i = 0; i < p->n; i++) {
        const rl_shapes_item *s = &p->shape[order[i]];
        if (i) emit(&o, ", ");
        emit(&o, "a ");
        emit(&o, size_names[s->size]);
        emit(&o, " ");
        emit(&o, color_names[s->color]);
        emit(&o, " ");
        emit(&o, kind_names[s->kind]);
        emit(&o, " (");
        emit(&o, cell_names[cell[order[i]]]);
        emit(&o, ")");
    }
    emit(&o, ". ");
    int ca = rl_shapes_count(p, p->a), cb = rl_shapes_count(p, p->b);
    switch (p->qtype) {
    case RL_SQ_TOTAL:
        emit(&o, "In total: ");
        emit_i(&o, p->n);
        emit(&o, ".");
        break;
    case RL_SQ_COUNT:
        emit_set_cap(&o, p->a);
        emit(&o, ": ");
        emit_i(&o, ca);
        emit(&o, ".");
        break;
    default:
        emit_set_cap(&o, p->a);
        emit(&o, ": ");
        emit_i(&o, ca);
        emit(&o, ". ");
        emit_set_cap(&o, p->b);
        emit(&o, ": ");
        emit_i(&o, cb);
        emit(&o, ". ");
        emit_i(&o, ca);
        emit(&o, p->qtype == RL_SQ_MORE ? " - " : p->qtype == RL_SQ_SUM ? " + " : " * ");
        emit_i(&o, cb);
        emit(&o, " = ");
        emit_i(&o, p->answer);
        emit(&o, ".");
        break;
    }
    emit(&o, "</think><answer>");
    emit_i(&o, p->answer);
    emit(&o, "</answer>");
    return finish(&o);
}

void rl_shapes_max_lengths(const rl_shapes_cfg *c, size_t *prompt, size_t *answer, size_t *solution) {
    /* Longest question: the product wording with two "yellow triangles" (16
     * bytes) sets, about 100 bytes, plus the 70-byte instruction. Each listed
     * shape is at most 48 bytes ("a small yellow triangle (bottom right), "),
     * and the reasoning after the list at most 110. */
    if (prompt) *prompt = 200;
    if (answer) *answer = 4; /* counts <= 12: at most 144 */
    if (solution) *solution = 40 + 48 * (size_t)c->max_shapes + 110 + 30;
}
