/* `rlfr shapes`: dumps samples of the procedural shapes task as PNG files
 * plus a JSONL file (problem, answer, solution, image, index) that the
 * image_dataset node reads back with task = "jsonl". For looking at the task
 * and for building fixed evaluation sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "checkpoint.h"
#include "commands.h"
#include "image.h"
#include "shapes_task.h"

static const char usage_text[] =
    "usage: rlfr shapes --out DIR [--n N] [--split train|test] [--start I] [--seed S]\n"
    "                   [--size WxH] [--shapes MIN-MAX] [--kinds 3|4]\n"
    "  --out     directory to write NNNNN.png and data.jsonl into (created)\n"
    "  --n       samples to write (default 8)\n"
    "  --split   train (default) or test: disjoint by construction\n"
    "  --start   index of the first sample (default 0)\n"
    "  --seed    the task's content seed (default 0)\n"
    "  --size    canvas (default 112x112)\n"
    "  --shapes  shapes per image (default 2-6)\n"
    "  --kinds   3 (circle, square, triangle) or 4 (+ star; default)\n";

static int parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!v) return rlfr_usage_error("shapes: %s needs a value", flag);
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < lo || x > hi)
        return rlfr_usage_error("shapes: %s '%s' must be an integer in [%lld, %lld]", flag, v, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

static int write_sample(const char *dir, FILE *jf, const rl_shapes_cfg *c, rl_split split, int64_t index,
                        uint8_t *rgb) {
    rl_error err = {0};
    rl_shapes_problem p;
    if (rl_shapes_generate(c, split, (uint64_t)index, &p, &err) < 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    rl_shapes_render(c, &p, rgb);
    char name[64], path[4200], prompt[1024], answer[64], solution[2048];
    snprintf(name, sizeof name, "%05lld.png", (long long)index);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (rl_png_write(path, rgb, c->height, c->width, &err) < 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    if (rl_shapes_prompt(&p, prompt, sizeof prompt) < 0 || rl_shapes_answer(&p, answer, sizeof answer) < 0 ||
        rl_shapes_solution(&p, solution, sizeof solution) < 0) {
        fprintf(stderr, "error: shapes task: sample %lld does not fit its text buffers\n", (long long)index);
        return 1;
    }
    json_t *o = json_object();
    json_object_set_new(o, "problem", json_string(prompt));
    json_object_set_new(o, "answer", json_string(answer));
    json_object_set_new(o, "solution", json_string(solution));
    json_object_set_new(o, "image", json_string(name));
    json_object_set_new(o, "index", json_integer(index));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    fprintf(jf, "%s\n", line);
    free(line); /* jansson's allocator */
    return 0;
}

int rlfr_cmd_shapes(int argc, char **argv) {
    rl_shapes_cfg c;
    rl_shapes_cfg_default(&c);
    const char *out = NULL;
    int64_t n = 8, start = 0, v;
    rl_split split = RL_SPLIT_TRAIN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--out") == 0) {
            if (!val) return rlfr_usage_error("shapes: --out needs a directory");
            out = val;
        } else if (strcmp(a, "--n") == 0) {
            rc = parse_i64(a, val, 1, 1000000, &n);
        } else if (strcmp(a, "--start") == 0) {
            rc = parse_i64(a, val, 0, INT32_MAX, &start);
        } else if (strcmp(a, "--seed") == 0) {
            rc = parse_i64(a, val, 0, INT64_MAX, &v);
            c.seed = (uint64_t)v;
        } else if (strcmp(a, "--kinds") == 0) {
            rc = parse_i64(a, val, 3, 4, &v);
            c.kinds = (int)v;
        } else if (strcmp(a, "--split") == 0) {
            if (val && strcmp(val, "train") == 0) split = RL_SPLIT_TRAIN;
            else if (val && strcmp(val, "test") == 0) split = RL_SPLIT_TEST;
            else return rlfr_usage_error("shapes: --split takes train or test, got '%s'", val ? val : "nothing");
        } else if (strcmp(a, "--size") == 0) {
            if (!val || sscanf(val, "%dx%d", &c.width, &c.height) != 2)
                return rlfr_usage_error("shapes: --size takes WxH, e.g. 112x112");
        } else if (strcmp(a, "--shapes") == 0) {
            if (!val || sscanf(val, "%d-%d", &c.min_shapes, &c.max_shapes) != 2)
                return rlfr_usage_error("shapes: --shapes takes MIN-MAX, e.g. 2-6");
        } else {
            return rlfr_usage_error("shapes: unknown argument '%s'", a);
        }
        if (rc) return rc;
        i++;
    }
    if (!out) return rlfr_usage_error("shapes: give --out DIR");
    rl_error err = {0};
    if (rl_shapes_cfg_check(&c, &err) < 0) return rlfr_usage_error("%s", err.msg);
    if (rl_mkdirs(out, &err) < 0) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    char jpath[4200];
    snprintf(jpath, sizeof jpath, "%s/data.jsonl", out);
    FILE *jf = fopen(jpath, "w");
    if (!jf) {
        fprintf(stderr, "error: %s: cannot write\n", jpath);
        return 1;
    }
    uint8_t *rgb = rl_malloc((size_t)c.width * (size_t)c.height * 3);
    int rc = rgb ? 0 : 1;
    for (int64_t k = 0; k < n && rc == 0; k++) rc = write_sample(out, jf, &c, split, start + k, rgb);
    rl_free(rgb);
    if (fclose(jf) != 0 && rc == 0) {
        fprintf(stderr, "error: %s: write failed\n", jpath);
        rc = 1;
    }
    if (rc == 0) printf("wrote %lld %s samples to %s (data.jsonl + PNGs)\n", (long long)n, split == RL_SPLIT_TEST ? "test" : "train", out);
    return rc;
}
