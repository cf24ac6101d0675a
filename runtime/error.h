/* Errors are values: a function that can fail returns 0 on success or -1 and
 * fills an rl_error. Only dsl/ turns them into Lua errors, so no longjmp ever
 * crosses a C frame that owns memory. */
#ifndef RL_ERROR_H
#define RL_ERROR_H

#include <stdarg.h>

#define RL_ERROR_MSG 1024

typedef struct rl_error {
    int failed;
    char msg[RL_ERROR_MSG];
} rl_error;

/* Sets the message (printf-style) and returns -1, so callers can write
 * `return rl_fail(err, "...")`. A NULL err is allowed (message dropped). */
int rl_fail(rl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("node 'fc1' (script.lua:12): ") to an existing message. */
int rl_fail_prefix(rl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rl_error_clear(rl_error *err);

#endif
