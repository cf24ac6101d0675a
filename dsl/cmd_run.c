/* `rlfr run SCRIPT.lua` and `rlfr plan SCRIPT.lua`: command-line flags ->
 * rlfr.args, then the script. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "commands.h"
#include "script.h"
#include "threads.h"

/* The value of a flag given as "--flag value" or "--flag=value"; NULL if argv[*i]
   is not that flag. Sets *missing when the value is absent. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag, int *missing) {
    size_t len = strlen(flag);
    const char *a = argv[*i];
    if (strncmp(a, flag, len) != 0) return NULL;
    if (a[len] == '=') return a + len + 1;
    if (a[len] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int run_mode(int argc, char **argv, const char *mode) {
    rlfr_script_args a = {.mode = mode, .seed = 0, .threads = 0};
    const char **sets = rl_calloc((size_t)(argc > 0 ? argc : 1), sizeof *sets);
    if (!sets) return rlfr_usage_error("out of memory");
    int threads_given = 0, status = -1;
    long long v;
    for (int i = 1; i < argc && status < 0; i++) {
        int missing = 0;
        const char *val;
        if ((val = flag_value(argc, argv, &i, "--set", &missing))) {
            if (!strchr(val, '=') || val[0] == '=')
                status = rlfr_usage_error("--set %s: expected key=value", val);
            else
                sets[a.n_sets++] = val;
        } else if ((val = flag_value(argc, argv, &i, "--seed", &missing))) {
            if (parse_int(val, 0, INT64_MAX, &v))
                status = rlfr_usage_error("--seed %s: expected a non-negative integer", val);
            a.seed = v;
        } else if ((val = flag_value(argc, argv, &i, "--threads", &missing))) {
            if (parse_int(val, 0, 4096, &v))
                status = rlfr_usage_error("--threads %s: expected an integer from 0 (all cores) to 4096", val);
            a.threads = (int)v;
            threads_given = 1;
        } else if ((val = flag_value(argc, argv, &i, "--out", &missing))) {
            if (!val[0]) status = rlfr_usage_error("--out: empty directory name");
            a.out = val;
        } else if (missing) {
            status = rlfr_usage_error("%s needs a value", argv[i]);
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            a.verbose = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            status = rlfr_usage_error("%s: unknown flag '%s'", mode, argv[i]);
        } else if (a.script) {
            status = rlfr_usage_error("%s: more than one script ('%s' and '%s')", mode, a.script, argv[i]);
        } else {
            a.script = argv[i];
        }
    }
    if (status < 0 && !a.script) status = rlfr_usage_error("%s: no script given (rlfr %s SCRIPT.lua)", mode, mode);
    if (status < 0) {
        if (threads_given) rl_set_threads(a.threads);
        a.threads = rl_get_threads();
        a.sets = sets;
        status = rlfr_run_script(&a);
    }
    rl_free(sets);
    return status;
}

int rlfr_cmd_run(int argc, char **argv) { return run_mode(argc, argv, "run"); }
int rlfr_cmd_plan(int argc, char **argv) { return run_mode(argc, argv, "plan"); }
