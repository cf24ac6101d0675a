/* JSONL reader: one JSON object per line (blank lines skipped, "\r\n" and a
 * UTF-8 byte-order mark tolerated). Records are read one at a time; field
 * helpers fetch strings, numbers and lists, and every error is one line
 * "file:line: what is wrong". Built on jansson. */
#ifndef RL_JSONL_H
#define RL_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

typedef struct rl_jsonl rl_jsonl;

int  rl_jsonl_open(const char *path, rl_jsonl **out, rl_error *err);
void rl_jsonl_close(rl_jsonl *j);

/* Reads the next record: 1 = a record is current, 0 = end of file, -1 = error
 * (invalid JSON with jansson's column, a line that is not an object, a read
 * error). After an error the reader may continue with the next line. */
int rl_jsonl_next(rl_jsonl *j, rl_error *err);

const char *rl_jsonl_path(const rl_jsonl *j);
int64_t rl_jsonl_line(const rl_jsonl *j);        /* 1-based line of the current record */
json_t *rl_jsonl_record(const rl_jsonl *j);      /* the current object (borrowed; NULL if none) */

/* Whether the current record has `key` (a JSON null counts as absent). */
int rl_jsonl_has(const rl_jsonl *j, const char *key);

/* Field helpers. Required variants fail with "file:line: missing field 'key'"
 * or "file:line: field 'key' is a number, expected a string". The _opt
 * variants return 0 and leave *out at `def` when the field is absent, and fail
 * only on a wrong type. Returned strings are borrowed until the next call to
 * rl_jsonl_next. */
int rl_jsonl_string(const rl_jsonl *j, const char *key, const char **out, rl_error *err);
int rl_jsonl_string_opt(const rl_jsonl *j, const char *key, const char *def, const char **out, rl_error *err);
int rl_jsonl_number(const rl_jsonl *j, const char *key, double *out, rl_error *err);
int rl_jsonl_number_opt(const rl_jsonl *j, const char *key, double def, double *out, rl_error *err);
/* An integer (a JSON number with no fractional part). */
int rl_jsonl_int(const rl_jsonl *j, const char *key, int64_t *out, rl_error *err);
/* A list: *out is the jansson array (borrowed), *n its length. */
int rl_jsonl_list(const rl_jsonl *j, const char *key, json_t **out, size_t *n, rl_error *err);

/* Answers in real data sets may be a string, a number or a list of those
 * (e.g. the eval sets' "answer"). rl_jsonl_texts_count gives the number of
 * alternatives (1 for a string or number, the length for a list);
 * rl_jsonl_text writes alternative `idx` as text into buf (numbers in their
 * shortest round-trip form: 7, 0.5, 1e-07), failing if it does not fit. */
int rl_jsonl_texts_count(const rl_jsonl *j, const char *key, size_t *n, rl_error *err);
int rl_jsonl_text(const rl_jsonl *j, const char *key, size_t idx, char *buf, size_t cap, rl_error *err);

/* Formats a JSON string or number as text (as rl_jsonl_text); -1 for other types
 * or when it does not fit in cap bytes. */
int rl_json_scalar_text(const json_t *v, char *buf, size_t cap);
/* "a string", "a number", "a list", ... for messages. */
const char *rl_json_type_name(const json_t *v);

#endif
