/* JSONL reader: blank lines, CRLF, BOM, a last line without newline, field
 * helpers (string / number / int / list / answer texts), the broken files in
 * tests/broken/ (each error names file:line and the problem), and the real
 * eval sets under ../shared/data/eval when present. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
#include "testlib.h"

static void test_good(void) {
    char path[] = "/tmp/rlfr_jsonl_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char text[] =
        "\xEF\xBB\xBF{\"problem\": \"1+1?\", \"answer\": \"2\", \"n\": 3}\r\n"
        "\n"
        "   \t \r\n"
        "{\"problem\": \"half\", \"answer\": 0.5, \"n\": 4.0, \"w\": 1e-7, \"x\": null}\n"
        "{\"problem\": \"list\", \"answer\": [\"a\", 7, [1]], \"n\": 2.5}"; /* no final newline */
    CHECK(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);

    rl_error err = {0};
    rl_jsonl *j = NULL;
    CHECK(rl_jsonl_open(path, &j, &err) == 0);
    if (!j) return;
    const char *s;
    double d;
    int64_t i;
    char buf[64];
    size_t n;

    CHECK(rl_jsonl_next(j, &err) == 1 && rl_jsonl_line(j) == 1);
    CHECK(rl_jsonl_string(j, "problem", &s, &err) == 0 && strcmp(s, "1+1?") == 0);
    CHECK(rl_jsonl_int(j, "n", &i, &err) == 0 && i == 3);
    CHECK(rl_jsonl_texts_count(j, "answer", &n, &err) == 0 && n == 1);
    CHECK(rl_jsonl_text(j, "answer", 0, buf, sizeof buf, &err) == 0 && strcmp(buf, "2") == 0);
    CHECK(rl_jsonl_string_opt(j, "solution", "none", &s, &err) == 0 && strcmp(s, "none") == 0);
    CHECK(!rl_jsonl_has(j, "solution") && rl_jsonl_has(j, "answer"));
    /* Wrong type and missing field name the file, the line and the field. */
    CHECK(rl_jsonl_number(j, "problem", &d, &err) == -1);
    CHECK_MSG(strstr(err.msg, path) == err.msg && strstr(err.msg, ":1: field 'problem' is a string, expected a number"),
              "%s", err.msg);
    CHECK(rl_jsonl_string(j, "solution", &s, &err) == -1 && strstr(err.msg, ":1: missing field 'solution'"));

    CHECK(rl_jsonl_next(j, &err) == 1 && rl_jsonl_line(j) == 4);
    CHECK(rl_jsonl_number(j, "answer", &d, &err) == 0 && d == 0.5);
    CHECK(rl_jsonl_int(j, "n", &i, &err) == 0 && i == 4);
    CHECK(rl_jsonl_text(j, "answer", 0, buf, sizeof buf, &err) == 0 && strcmp(buf, "0.5") == 0);
    CHECK(rl_jsonl_text(j, "w", 0, buf, sizeof buf, &err) == 0 && strcmp(buf, "1e-07") == 0);
    CHECK(!rl_jsonl_has(j, "x")); /* null counts as absent */
    CHECK(rl_jsonl_number_opt(j, "x", -1.0, &d, &err) == 0 && d == -1.0);
    CHECK(rl_jsonl_text(j, "answer", 0, buf, 2, &err) == -1 && strstr(err.msg, "longer than 1 bytes"));

    CHECK(rl_jsonl_next(j, &err) == 1 && rl_jsonl_line(j) == 5);
    CHECK(rl_jsonl_int(j, "n", &i, &err) == -1 && strstr(err.msg, ":5: field 'n' is 2.5, expected an integer"));
    json_t *list;
    CHECK(rl_jsonl_list(j, "answer", &list, &n, &err) == 0 && n == 3);
    CHECK(rl_jsonl_texts_count(j, "answer", &n, &err) == 0 && n == 3);
    CHECK(rl_jsonl_text(j, "answer", 0, buf, sizeof buf, &err) == 0 && strcmp(buf, "a") == 0);
    CHECK(rl_jsonl_text(j, "answer", 1, buf, sizeof buf, &err) == 0 && strcmp(buf, "7") == 0);
    CHECK(rl_jsonl_text(j, "answer", 2, buf, sizeof buf, &err) == -1 && strstr(err.msg, "item 2 is a list"));
    CHECK(rl_jsonl_text(j, "answer", 3, buf, sizeof buf, &err) == -1 && strstr(err.msg, "has 3 items"));
    CHECK(rl_jsonl_list(j, "problem", &list, &n, &err) == -1 && strstr(err.msg, "is a string, expected a list"));

    CHECK(rl_jsonl_next(j, &err) == 0);
    CHECK(rl_jsonl_record(j) == NULL);
    CHECK(rl_jsonl_string(j, "problem", &s, &err) == -1 && strstr(err.msg, "no current record"));
    CHECK(rl_jsonl_next(j, &err) == 0);
    rl_jsonl_close(j);
    unlink(path);

    CHECK(rl_jsonl_open("/nonexistent/x.jsonl", &j, &err) == -1 && j == NULL &&
          strstr(err.msg, "/nonexistent/x.jsonl: cannot open"));
}

/* Reads a file requiring string "problem" and text "answer"; returns the
   first error (-1) or 0, counting records. */
static int read_all(const char *path, int *records, rl_error *err) {
    rl_jsonl *j = NULL;
    *records = 0;
    if (rl_jsonl_open(path, &j, err)) return -1;
    int r, rc = 0;
    while ((r = rl_jsonl_next(j, err)) == 1) {
        const char *p;
        size_t n;
        char buf[4096];
        if (rl_jsonl_string(j, "problem", &p, err) || rl_jsonl_texts_count(j, "answer", &n, err) ||
            (n > 0 && rl_jsonl_text(j, "answer", 0, buf, sizeof buf, err))) {
            rc = -1;
            break;
        }
        (*records)++;
    }
    if (r < 0) rc = -1;
    rl_jsonl_close(j);
    return rc;
}

static void test_broken(void) {
    static const struct {
        const char *file;
        const char *problem;
    } cases[] = {
        {"jsonl_invalid_json.jsonl", ":3: invalid JSON at column"},
        {"jsonl_not_object.jsonl", ":2: expected a JSON object, got a list"},
        {"jsonl_missing_field.jsonl", ":3: missing field 'answer'"},
        {"jsonl_wrong_type.jsonl", ":2: field 'problem' is a number, expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", rl_test_path("tests/broken"), cases[i].file);
        rl_error err = {0};
        int recs;
        CHECK_MSG(read_all(path, &recs, &err) == -1, "%s read without error", cases[i].file);
        CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0, "message does not start with the path: %s", err.msg);
        CHECK_MSG(strstr(err.msg, cases[i].problem) != NULL, "%s: got '%s', want '%s'", cases[i].file, err.msg,
                  cases[i].problem);
        CHECK(strchr(err.msg, '\n') == NULL);
        if (getenv("RLFR_TEST_VERBOSE")) printf("%s\n", err.msg);
    }
}

/* After an invalid line the reader continues with the next one. */
static void test_continue_after_error(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s", rl_test_path("tests/broken/jsonl_invalid_json.jsonl"));
    rl_jsonl *j = NULL;
    rl_error err = {0};
    CHECK(rl_jsonl_open(path, &j, &err) == 0);
    if (!j) return;
    int ok = 0, bad = 0, r;
    while ((r = rl_jsonl_next(j, &err)) != 0) {
        if (r == 1) ok++;
        else bad++;
    }
    CHECK(ok == 3 && bad == 1);
    rl_jsonl_close(j);
}

static void test_eval_sets(void) {
    static const char *files[] = {"aime.jsonl", "aime25.jsonl", "amc.jsonl",
                                  "math.jsonl", "minerva.jsonl", "olympiad_bench.jsonl"};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", rl_test_path("../shared/data/eval"));
    if (access(dir, R_OK) != 0) {
        printf("skipping eval sets (%s not found)\n", dir);
        return;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        rl_error err = {0};
        int recs = 0;
        CHECK_MSG(read_all(path, &recs, &err) == 0, "%s", err.msg);
        CHECK_MSG(recs >= 30, "%s: only %d records", files[i], recs);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_good();
    test_broken();
    test_continue_after_error();
    test_eval_sets();
    return rl_test_finish("test_jsonl");
}
