/* dataset: batches of problems (prompt, gold answer, expert solution) from
 * the procedural arithmetic task or a JSONL file; each forward serves the
 * next batch of a deterministic (seed, epoch) order. See runtime/dataset.h
 * and docs/tasks.md. */
#include <string.h>

#include "alloc.h"
#include "dataset.h"
#include "node.h"
#include "state.h"

static const rl_port_spec ds_outputs[] = {
    {"prompt", RL_U8, 2, 0, 0, "problem texts u8 [batch, max_prompt_bytes+1], NUL-padded"},
    {"answer", RL_U8, 2, 0, 0, "gold answers u8 [batch, max_answer_bytes+1]; alternatives joined by byte 0x1f"},
    {"solution", RL_U8, 2, 0, 0, "expert solutions u8 [batch, max_solution_bytes+1] (empty rows when absent)"},
    {"index", RL_I32, 1, 0, 0, "each problem's index in its source [batch]"},
};

static const rl_option_spec ds_options[] = {
    {"task", RL_VAL_STRING, "arith", "\"arith\" (procedural word problems) or \"jsonl\"", NULL},
    {"path", RL_VAL_STRING, "", "JSONL file (task = \"jsonl\"), or eval:NAME for shared/data/eval/NAME.jsonl", NULL},
    {"split", RL_VAL_STRING, "train", "\"train\" or \"test\" (arith: disjoint by construction)", NULL},
    {"batch", RL_VAL_INT, "16", "problems per forward", NULL},
    {"seed", RL_VAL_INT, "0", "shuffling seed: epoch e uses the permutation of (seed, e)", NULL},
    {"shuffle", RL_VAL_BOOL, "true", "shuffle each epoch (false: source order)", NULL},
    {"steps", RL_VAL_INT, "3", "arith: most operations per problem", NULL},
    {"min_steps", RL_VAL_INT, "0", "arith: fewest operations (0 = min(2, steps))", NULL},
    {"digits", RL_VAL_INT, "0", "arith: numbers up to 10^digits - 1 (0 = use max_value)", NULL},
    {"max_value", RL_VAL_INT, "30", "arith: start value and +/- operands in [1, max_value]", NULL},
    {"max_factor", RL_VAL_INT, "9", "arith: multipliers and divisors in [2, max_factor]", NULL},
    {"ops", RL_VAL_STRING, "+-*/", "arith: allowed operations", NULL},
    {"test_percent", RL_VAL_INT, "10", "arith: share of problems that belong to the test split", NULL},
    {"task_seed", RL_VAL_INT, "0", "arith: seed of the problems' content (not of the split rule)", NULL},
    {"size", RL_VAL_INT, "0", "arith: problems in the list (0 = 100000 train, 1000 test)", NULL},
    {"max_prompt_bytes", RL_VAL_INT, "0", "prompt row limit (0 = longest; JSONL rows above a limit are skipped)",
     NULL},
    {"max_answer_bytes", RL_VAL_INT, "0", "answer row limit (0 = longest)", NULL},
    {"max_solution_bytes", RL_VAL_INT, "0", "solution row limit (0 = longest)", NULL},
};
#define N_OPTIONS ((int)(sizeof ds_options / sizeof ds_options[0]))

typedef struct ds_state {
    rl_dataset *d;
    int64_t batch;
} ds_state;

static int parse_ops(const char *s, int *out) {
    int ops = 0;
    for (; *s; s++) {
        switch (*s) {
        case '+': ops |= RL_ARITH_ADD; break;
        case '-': ops |= RL_ARITH_SUB; break;
        case '*': case 'x': ops |= RL_ARITH_MUL; break;
        case '/': ops |= RL_ARITH_DIV; break;
        case ' ': case ',': break;
        default: return -1;
        }
    }
    *out = ops;
    return 0;
}

static int opt_size(const rl_node *n, const char *key, size_t *out, rl_error *err) {
    int64_t v = rl_node_opt_int(n, key);
    if (v < 0 || v > (1 << 24)) return rl_node_fail(n, err, "option '%s' = %lld must be in [0, %d]", key, (long long)v, 1 << 24);
    *out = (size_t)v;
    return 0;
}

static int ds_init(rl_node *n, rl_error *err) {
    rl_dataset_cfg c;
    rl_dataset_cfg_default(&c);
    const char *task = rl_node_opt_string(n, "task"), *split = rl_node_opt_string(n, "split");
    if (strcmp(task, "arith") == 0) c.source = RL_DATA_ARITH;
    else if (strcmp(task, "jsonl") == 0) c.source = RL_DATA_JSONL;
    else return rl_node_fail(n, err, "option 'task' = '%s': expected \"arith\" or \"jsonl\"", task);
    if (strcmp(split, "train") == 0) c.split = RL_SPLIT_TRAIN;
    else if (strcmp(split, "test") == 0) c.split = RL_SPLIT_TEST;
    else return rl_node_fail(n, err, "option 'split' = '%s': expected \"train\" or \"test\"", split);
    c.path = rl_node_opt_string(n, "path");
    if (c.source == RL_DATA_JSONL && !c.path[0]) return rl_node_fail(n, err, "task \"jsonl\" needs a 'path'");
    int64_t batch = rl_node_opt_int(n, "batch");
    if (batch < 1 || batch > (1 << 20)) return rl_node_fail(n, err, "option 'batch' = %lld must be in [1, %d]", (long long)batch, 1 << 20);
    c.seed = (uint64_t)rl_node_opt_int(n, "seed");
    c.shuffle = rl_node_opt_bool(n, "shuffle");
    int64_t steps = rl_node_opt_int(n, "steps"), min_steps = rl_node_opt_int(n, "min_steps");
    if (steps < 1 || steps > RL_ARITH_MAX_STEPS)
        return rl_node_fail(n, err, "option 'steps' = %lld must be in [1, %d]", (long long)steps, RL_ARITH_MAX_STEPS);
    if (min_steps == 0) min_steps = steps < 2 ? steps : 2;
    if (min_steps < 1 || min_steps > steps)
        return rl_node_fail(n, err, "option 'min_steps' = %lld must be in [1, steps = %lld]", (long long)min_steps, (long long)steps);
    c.arith.min_steps = (int)min_steps;
    c.arith.max_steps = (int)steps;
    int64_t digits = rl_node_opt_int(n, "digits");
    if (digits && rl_node_opt_given(n, "max_value"))
        return rl_node_fail(n, err, "give either 'digits' or 'max_value', not both");
    rl_error e = {0};
    if (digits) {
        if (digits > 9 || rl_arith_cfg_set_digits(&c.arith, (int)digits, &e) < 0)
            return rl_node_fail(n, err, "option 'digits' = %lld must be in [1, 9]", (long long)digits);
    } else {
        c.arith.max_value = rl_node_opt_int(n, "max_value");
    }
    int64_t mf = rl_node_opt_int(n, "max_factor"), tp = rl_node_opt_int(n, "test_percent"), size = rl_node_opt_int(n, "size");
    c.arith.max_factor = mf < 0 || mf > 1000 ? -1 : (int)mf;
    c.arith.test_percent = tp < 0 || tp > 100 ? -1 : (int)tp;
    c.arith.seed = (uint64_t)rl_node_opt_int(n, "task_seed");
    if (parse_ops(rl_node_opt_string(n, "ops"), &c.arith.ops) < 0)
        return rl_node_fail(n, err, "option 'ops' = '%s': use the characters + - * /", rl_node_opt_string(n, "ops"));
    if (size < 0) return rl_node_fail(n, err, "option 'size' = %lld must be >= 0", (long long)size);
    c.size = size;
    if (opt_size(n, "max_prompt_bytes", &c.max_prompt, err) < 0 || opt_size(n, "max_answer_bytes", &c.max_answer, err) < 0 ||
        opt_size(n, "max_solution_bytes", &c.max_solution, err) < 0)
        return -1;
    ds_state *s = rl_calloc(1, sizeof *s);
    if (!s) return rl_node_fail(n, err, "out of memory");
    if (rl_dataset_open(&c, &s->d, &e) < 0) {
        rl_free(s);
        return rl_node_fail(n, err, "%s", e.msg);
    }
    s->batch = batch;
    n->state = s;
    return 0;
}

static int ds_infer(rl_node *n, rl_error *err) {
    ds_state *s = n->state;
    size_t wp, wa, ws;
    rl_dataset_widths(s->d, &wp, &wa, &ws);
    n->out[0].dtype = RL_U8;
    n->out[0].shape = rl_shape2(s->batch, (int64_t)wp);
    n->out[1].dtype = RL_U8;
    n->out[1].shape = rl_shape2(s->batch, (int64_t)wa);
    n->out[2].dtype = RL_U8;
    n->out[2].shape = rl_shape2(s->batch, (int64_t)ws);
    n->out[3].dtype = RL_I32;
    n->out[3].shape = rl_shape1(s->batch);
    return 0;
}

static int ds_forward(rl_node *n, rl_run_ctx *ctx, rl_error *err) {
    ds_state *s = n->state;
    rl_error e = {0};
    if (rl_dataset_next(s->d, s->batch, rl_u8(&n->out[0]), rl_u8(&n->out[1]), rl_u8(&n->out[2]), rl_i32(&n->out[3]), &e) < 0)
        return rl_node_fail(n, err, "%s", e.msg);
    rl_dataset_cursor c;
    rl_dataset_get_cursor(s->d, &c);
    if (ctx) rl_metric_set(ctx, n, "epoch", rl_dataset_cursor_epochs(&c, rl_dataset_size(s->d)));
    return 0;
}

static int ds_save(rl_node *n, rl_state *st, rl_error *err) {
    ds_state *s = n->state;
    rl_dataset_cursor c;
    rl_dataset_get_cursor(s->d, &c);
    return rl_dataset_cursor_save(st, &c, err);
}

static int ds_load(rl_node *n, const rl_state *st, rl_error *err) {
    ds_state *s = n->state;
    rl_dataset_cursor c;
    if (rl_dataset_cursor_load(st, &c, err) < 0) return -1;
    rl_error e = {0};
    if (rl_dataset_set_cursor(s->d, &c, &e) < 0) return rl_node_fail(n, err, "%s", e.msg);
    return 0;
}

static void ds_destroy(rl_node *n) {
    ds_state *s = n->state;
    if (s) rl_dataset_free(s->d);
    rl_free(s);
    n->state = NULL;
}

const rl_node_type rl_node_dataset = {
    .name = "dataset",
    .doc = "batches of problems (prompt, answer, solution, index) from the arithmetic task or a JSONL file",
    .outputs = ds_outputs,
    .n_outputs = 4,
    .options = ds_options,
    .n_options = N_OPTIONS,
    .init = ds_init,
    .infer = ds_infer,
    .forward = ds_forward,
    .destroy = ds_destroy,
    .save_state = ds_save,
    .load_state = ds_load,
};

rl_dataset *rl_dataset_of_node(const rl_node *n) {
    if (!n || n->type != &rl_node_dataset || !n->state) return NULL;
    return ((ds_state *)n->state)->d;
}
