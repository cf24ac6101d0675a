#include "error.h"

#include <stdio.h>
#include <string.h>

int rl_fail(rl_error *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->failed = 1;
    return -1;
}

int rl_fail_prefix(rl_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[RL_ERROR_MSG], old[RL_ERROR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable here: the message stays one bounded line. */
    size_t lp = strnlen(prefix, sizeof prefix - 1), lo = strnlen(old, sizeof old - 1);
    if (lp > sizeof err->msg - 1) lp = sizeof err->msg - 1;
    if (lo > sizeof err->msg - 1 - lp) lo = sizeof err->msg - 1 - lp;
    memcpy(err->msg, prefix, lp);
    memcpy(err->msg + lp, old, lo);
    err->msg[lp + lo] = '\0';
    err->failed = 1;
    return -1;
}

void rl_error_clear(rl_error *err) {
    if (!err) return;
    err->failed = 0;
    err->msg[0] = '\0';
}
