#include <stdarg.h>
#include <stdio.h>

#include "commands.h"

int rlfr_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try 'rlfr --help')\n", stderr);
    va_end(ap);
    return 2;
}
