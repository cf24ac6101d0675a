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
    snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
    err->failed = 1;
    return -1;
}

void rl_error_clear(rl_error *err) {
    if (!err) return;
    err->failed = 0;
    err->msg[0] = '\0';
}
