/* Procedural arithmetic word problems (see arith_task.h and docs/tasks.md). */
#include "arith_task.h"

#include <stdio.h>
#include <string.h>

#include "rng.h"

/* ---- wordings ---------------------------------------------------------- */
/* Placeholders: {N} name, {P}/{p} he/she, {O} him/her, {R} his/her, {I} the
 * items (plural), {B} the container, {a} the start value, {x} the operand,
 * {e} the expression (frame 3). */

enum { F_PERSON = 0, F_PUZZLE, F_CONTAINER, F_EXPR, N_FRAMES };

typedef struct frame_words {
    const char *const *intro, *const *add, *const *sub, *const *mul, *const *div, *const *question;
} frame_words;

static const char *const person_intro[] = {"{N} has {a} {I}.", "{N} starts with {a} {I}.",
                                           "{N} owns {a} {I}.", NULL};
static const char *const person_add[] = {"{P} buys {x} more.", "{P} finds {x} more {I}.",
                                         "A friend gives {O} {x} {I}.", NULL};
static const char *const person_sub[] = {"{P} gives away {x}.", "{P} loses {x} {I}.", "{P} sells {x} of them.",
                                         NULL};
static const char *const person_mul[] = {"Then {p} has {x} times as many.",
                                         "The number of {R} {I} becomes {x} times as large.", NULL};
static const char *const person_div[] = {"{P} splits them into {x} equal groups and keeps one group.",
                                         "{P} shares them equally among {x} kids, {O} included, and keeps {R} share.",
                                         NULL};
static const char *const person_q[] = {"How many {I} does {N} have now?", "How many {I} does {N} have in the end?",
                                       NULL};

static const char *const puzzle_intro[] = {"{N} thinks of the number {a}.", "{N} writes down {a}.", NULL};
static const char *const puzzle_add[] = {"{P} adds {x}.", "{P} adds {x} to it.", NULL};
static const char *const puzzle_sub[] = {"{P} subtracts {x}.", "{P} takes away {x}.", NULL};
static const char *const puzzle_mul[] = {"{P} multiplies it by {x}.", "{P} multiplies the result by {x}.", NULL};
static const char *const puzzle_div[] = {"{P} divides it by {x}.", "{P} divides the result by {x}.", NULL};
static const char *const puzzle_q[] = {"What number does {N} get?", "What is the result?", NULL};

static const char *const box_intro[] = {"A {B} holds {a} {I}.", "There are {a} {I} in a {B}.", NULL};
static const char *const box_add[] = {"{x} more {I} are put in.", "Someone adds {x} {I}.", NULL};
static const char *const box_sub[] = {"{x} {I} are taken out.", "{x} of them are removed.", NULL};
static const char *const box_mul[] = {"It is refilled until it holds {x} times as many.",
                                      "The number of {I} is multiplied by {x}.", NULL};
static const char *const box_div[] = {"The {I} are split into {x} equal parts and one part stays.",
                                      "Only one of {x} equal shares of the {I} is kept.", NULL};
static const char *const box_q[] = {"How many {I} are in the {B} now?", "How many {I} does the {B} hold at the end?",
                                    NULL};

static const char *const expr_q[] = {"Compute {e}.", "What is {e}?", "Evaluate {e}.", "Find the value of {e}.",
                                     NULL};
static const char *const none[] = {"", NULL};

static const frame_words frames[N_FRAMES] = {
    {person_intro, person_add, person_sub, person_mul, person_div, person_q},
    {puzzle_intro, puzzle_add, puzzle_sub, puzzle_mul, puzzle_div, puzzle_q},
    {box_intro, box_add, box_sub, box_mul, box_div, box_q},
    {none, none, none, none, none, expr_q},
};

static const char *const names[] = {"Tom", "Anna", "Ben", "Mia", "Sam", "Lily", "Max", "Zoe"};
static const int name_female[] = {0, 1, 0, 1, 0, 1, 0, 1};
static const char *const items[] = {"apples", "marbles", "stickers", "coins", "books", "cards", "pencils", "shells"};
static const char *const boxes[] = {"box", "jar", "bag", "basket"};
#define N_NAMES 8
#define N_ITEMS 8
#define N_BOXES 4

static int count(const char *const *list) {
    int n = 0;
    while (list[n]) n++;
    return n;
}

static const char *const *op_words(const frame_words *f, char op) {
    switch (op) {
    case '+': return f->add;
    case '-': return f->sub;
    case '*': return f->mul;
    default: return f->div;
    }
}

/* ---- configuration ----------------------------------------------------- */

void rl_arith_cfg_default(rl_arith_cfg *c) {
    c->min_steps = 2;
    c->max_steps = 3;
    c->max_value = 30;
    c->max_factor = 9;
    c->ops = RL_ARITH_ALL_OPS;
    c->test_percent = 10;
    c->seed = 0;
}

int rl_arith_cfg_set_digits(rl_arith_cfg *c, int digits, rl_error *err) {
    if (digits < 1 || digits > 9) return rl_fail(err, "arith task: digits must be in 1..9, got %d", digits);
    int64_t v = 1;
    for (int i = 0; i < digits; i++) v *= 10;
    c->max_value = v - 1;
    return 0;
}

int rl_arith_cfg_check(const rl_arith_cfg *c, rl_error *err) {
    if (c->min_steps < 1 || c->max_steps > RL_ARITH_MAX_STEPS || c->min_steps > c->max_steps)
        return rl_fail(err, "arith task: steps must satisfy 1 <= min_steps (%d) <= steps (%d) <= %d", c->min_steps,
                       c->max_steps, RL_ARITH_MAX_STEPS);
    if (c->max_value < 2 || c->max_value > 999999999)
        return rl_fail(err, "arith task: max_value must be in 2..999999999, got %lld", (long long)c->max_value);
    if (c->max_factor < 2 || c->max_factor > 99)
        return rl_fail(err, "arith task: max_factor must be in 2..99, got %d", c->max_factor);
    if (!(c->ops & (RL_ARITH_ADD | RL_ARITH_SUB | RL_ARITH_MUL)))
        return rl_fail(err, "arith task: ops must include at least one of +, -, * (division alone cannot chain)");
    if (c->ops & ~RL_ARITH_ALL_OPS) return rl_fail(err, "arith task: unknown operation bits 0x%x", c->ops);
    if (c->test_percent < 1 || c->test_percent > 50)
        return rl_fail(err, "arith task: test_percent must be in 1..50, got %d", c->test_percent);
    return 0;
}

int64_t rl_arith_value_cap(const rl_arith_cfg *c) {
    int64_t cap = c->max_value * 10;
    return cap < 100 ? 100 : cap;
}

/* ---- split rule -------------------------------------------------------- */

static int put_int(char *buf, size_t cap, size_t *n, int64_t v) {
    char t[24];
    int l = snprintf(t, sizeof t, "%lld", (long long)v);
    if (*n + (size_t)l >= cap) return -1;
    memcpy(buf + *n, t, (size_t)l);
    *n += (size_t)l;
    buf[*n] = '\0';
    return 0;
}

static int put_str(char *buf, size_t cap, size_t *n, const char *s) {
    size_t l = strlen(s);
    if (*n + l >= cap) return -1;
    memcpy(buf + *n, s, l);
    *n += l;
    buf[*n] = '\0';
    return 0;
}

int rl_arith_canonical(const rl_arith_problem *p, char *buf, size_t cap) {
    size_t n = 0;
    if (cap == 0) return -1;
    buf[0] = '\0';
    if (put_int(buf, cap, &n, p->start) < 0) return -1;
    for (int k = 0; k < p->steps; k++) {
        char op[2] = {p->op[k], 0};
        if (put_str(buf, cap, &n, op) < 0 || put_int(buf, cap, &n, p->operand[k]) < 0) return -1;
    }
    return (int)n;
}

rl_split rl_arith_split_of(const rl_arith_problem *p, int test_percent) {
    char t[RL_ARITH_MAX_STEPS * 24 + 32];
    int n = rl_arith_canonical(p, t, sizeof t);
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

/* ---- generation -------------------------------------------------------- */

static int64_t uniform(rl_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)rl_rng_below(r, (uint64_t)(hi - lo + 1));
}

/* One candidate problem; 0 if the chain got stuck (no feasible operation). */
static int draw(const rl_arith_cfg *c, rl_rng *r, rl_arith_problem *p) {
    memset(p, 0, sizeof *p);
    int64_t cap = rl_arith_value_cap(c);
    p->steps = (int)uniform(r, c->min_steps, c->max_steps);
    p->start = uniform(r, 1, c->max_value);
    int64_t v = p->start;
    for (int k = 0; k < p->steps; k++) {
        char feasible[4];
        int nf = 0;
        if ((c->ops & RL_ARITH_ADD) && v + 1 <= cap) feasible[nf++] = '+';
        if ((c->ops & RL_ARITH_SUB) && v >= 1) feasible[nf++] = '-';
        if ((c->ops & RL_ARITH_MUL) && v >= 1 && v * 2 <= cap) feasible[nf++] = '*';
        int has_div = 0;
        if ((c->ops & RL_ARITH_DIV) && v >= 2)
            for (int d = 2; d <= c->max_factor && !has_div; d++) has_div = v % d == 0;
        if (has_div) feasible[nf++] = '/';
        if (nf == 0) return 0;
        char op = feasible[rl_rng_below(r, (uint64_t)nf)];
        int64_t x;
        if (op == '+') {
            int64_t hi = cap - v < c->max_value ? cap - v : c->max_value;
            x = uniform(r, 1, hi);
            v += x;
        } else if (op == '-') {
            x = uniform(r, 1, v < c->max_value ? v : c->max_value);
            v -= x;
        } else if (op == '*') {
            int64_t hi = cap / v < c->max_factor ? cap / v : c->max_factor;
            x = uniform(r, 2, hi);
            v *= x;
        } else {
            int divs[100], nd = 0;
            for (int d = 2; d <= c->max_factor; d++)
                if (v % d == 0) divs[nd++] = d;
            x = divs[rl_rng_below(r, (uint64_t)nd)];
            v /= x;
        }
        p->op[k] = op;
        p->operand[k] = x;
        p->value[k] = v;
    }
    p->frame = (int)rl_rng_below(r, N_FRAMES);
    const frame_words *f = &frames[p->frame];
    p->wording[0] = (int)rl_rng_below(r, (uint64_t)count(f->intro));
    for (int k = 0; k < p->steps; k++) p->wording[k + 1] = (int)rl_rng_below(r, (uint64_t)count(op_words(f, p->op[k])));
    p->wording[p->steps + 1] = (int)rl_rng_below(r, (uint64_t)count(f->question));
    p->name = (int)rl_rng_below(r, N_NAMES);
    p->item = (int)rl_rng_below(r, N_ITEMS * N_BOXES);
    return 1;
}

int rl_arith_generate(const rl_arith_cfg *c, rl_split split, uint64_t index, rl_arith_problem *p, rl_error *err) {
    if (rl_arith_cfg_check(c, err) < 0) return -1;
    /* enough tries that a split of 1% fails with probability ~e^-20 */
    const int max_attempts = 2000 + 20 * 100;
    for (int attempt = 0; attempt < max_attempts; attempt++) {
        rl_rng r;
        rl_rng_init(&r, c->seed, rl_rng_stream_hash((const uint64_t[]){0x617269746875ull, (uint64_t)split, index,
                                                                        (uint64_t)attempt},
                                                    4));
        if (draw(c, &r, p) && rl_arith_split_of(p, c->test_percent) == split) return 0;
    }
    return rl_fail(err, "arith task: no %s problem found for index %llu in %d tries (problem space too small: "
                        "raise max_value or steps)",
                   split == RL_SPLIT_TEST ? "test" : "train", (unsigned long long)index, max_attempts);
}

/* ---- texts ------------------------------------------------------------- */

typedef struct out {
    char *p;
    size_t n, cap;
    int bad;
} out;

static void emit(out *o, const char *s, size_t l) {
    if (o->bad || o->n + l >= o->cap) { o->bad = 1; return; }
    memcpy(o->p + o->n, s, l);
    o->n += l;
    o->p[o->n] = '\0';
}

static void emit_s(out *o, const char *s) { emit(o, s, strlen(s)); }

static void emit_i(out *o, int64_t v) {
    char t[24];
    int l = snprintf(t, sizeof t, "%lld", (long long)v);
    emit(o, t, (size_t)l);
}

/* The expression of frame 3: parentheses only where left-to-right order
 * needs them ("(a + b) * c"). */
static void emit_expr(out *o, const rl_arith_problem *p, int upto) {
    if (upto < 0) {
        emit_i(o, p->start);
        return;
    }
    char op = p->op[upto];
    int prev_low = upto > 0 && (p->op[upto - 1] == '+' || p->op[upto - 1] == '-');
    int paren = (op == '*' || op == '/') && prev_low;
    if (paren) emit_s(o, "(");
    emit_expr(o, p, upto - 1);
    if (paren) emit_s(o, ")");
    char t[4] = {' ', op, ' ', 0};
    emit_s(o, t);
    emit_i(o, p->operand[upto]);
}

static void fill(out *o, const char *pat, const rl_arith_problem *p, int64_t x) {
    int fem = name_female[p->name];
    for (const char *s = pat; *s; s++) {
        if (s[0] == '{' && s[1] && s[2] == '}') {
            switch (s[1]) {
            case 'N': emit_s(o, names[p->name]); break;
            case 'P': emit_s(o, fem ? "She" : "He"); break;
            case 'p': emit_s(o, fem ? "she" : "he"); break;
            case 'O': emit_s(o, fem ? "her" : "him"); break;
            case 'R': emit_s(o, fem ? "her" : "his"); break;
            case 'I': emit_s(o, items[p->item % N_ITEMS]); break;
            case 'B': emit_s(o, boxes[p->item / N_ITEMS]); break;
            case 'a': emit_i(o, p->start); break;
            case 'x': emit_i(o, x); break;
            case 'e': emit_expr(o, p, p->steps - 1); break;
            default: emit(o, s, 3); break;
            }
            s += 2;
            continue;
        }
        emit(o, s, 1);
    }
}

int rl_arith_prompt(const rl_arith_problem *p, char *buf, size_t cap) {
    out o = {buf, 0, cap, cap == 0};
    if (cap) buf[0] = '\0';
    const frame_words *f = &frames[p->frame];
    if (p->frame != F_EXPR) {
        fill(&o, f->intro[p->wording[0]], p, 0);
        for (int k = 0; k < p->steps; k++) {
            emit_s(&o, " ");
            fill(&o, op_words(f, p->op[k])[p->wording[k + 1]], p, p->operand[k]);
        }
        emit_s(&o, " ");
    }
    fill(&o, f->question[p->wording[p->steps + 1]], p, 0);
    return o.bad ? -1 : (int)o.n;
}

int rl_arith_solution(const rl_arith_problem *p, char *buf, size_t cap) {
    out o = {buf, 0, cap, cap == 0};
    if (cap) buf[0] = '\0';
    int64_t v = p->start;
    for (int k = 0; k < p->steps; k++) {
        char t[2] = {p->op[k], 0};
        emit_i(&o, v);
        emit_s(&o, t);
        emit_i(&o, p->operand[k]);
        emit_s(&o, "=");
        emit_i(&o, p->value[k]);
        emit_s(&o, ". ");
        v = p->value[k];
    }
    emit_s(&o, "\\boxed{");
    emit_i(&o, v);
    emit_s(&o, "}");
    return o.bad ? -1 : (int)o.n;
}

int rl_arith_answer(const rl_arith_problem *p, char *buf, size_t cap) {
    out o = {buf, 0, cap, cap == 0};
    if (cap) buf[0] = '\0';
    emit_i(&o, p->steps ? p->value[p->steps - 1] : p->start);
    return o.bad ? -1 : (int)o.n;
}

static size_t digits_of(int64_t v) {
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static size_t max_of(const char *const *list, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) > m) m = strlen(list[i]);
    return m;
}

/* The longest expansion of one pattern: each placeholder replaced by the
 * longest text it can stand for. */
static size_t pattern_max(const char *pat, size_t num, size_t expr) {
    size_t n = 0;
    for (const char *s = pat; *s; s++) {
        if (s[0] == '{' && s[1] && s[2] == '}') {
            switch (s[1]) {
            case 'N': n += max_of(names, N_NAMES); break;
            case 'P': case 'p': case 'O': case 'R': n += 3; break;
            case 'I': n += max_of(items, N_ITEMS); break;
            case 'B': n += max_of(boxes, N_BOXES); break;
            case 'a': case 'x': n += num; break;
            case 'e': n += expr; break;
            default: n += 3; break;
            }
            s += 2;
            continue;
        }
        n++;
    }
    return n;
}

static size_t list_max(const char *const *list, size_t num, size_t expr) {
    size_t m = 0;
    for (int i = 0; list[i]; i++) {
        size_t l = pattern_max(list[i], num, expr);
        if (l > m) m = l;
    }
    return m;
}

void rl_arith_max_lengths(const rl_arith_cfg *c, size_t *prompt, size_t *answer, size_t *solution) {
    size_t num = digits_of(rl_arith_value_cap(c)); /* every printed number is in [0, cap] */
    size_t steps = (size_t)c->max_steps, best = 0;
    /* "a op x" with " op x" per step and at most one pair of parentheses per step */
    size_t expr = num + steps * (num + 3 + 2);
    for (int fi = 0; fi < N_FRAMES; fi++) {
        const frame_words *f = &frames[fi];
        size_t step = list_max(f->add, num, expr);
        size_t t = list_max(f->sub, num, expr);
        if (t > step) step = t;
        t = list_max(f->mul, num, expr);
        if (t > step) step = t;
        t = list_max(f->div, num, expr);
        if (t > step) step = t;
        size_t total = list_max(f->question, num, expr);
        if (fi != F_EXPR) total += list_max(f->intro, num, expr) + 1 + steps * (step + 1);
        if (total > best) best = total;
    }
    if (prompt) *prompt = best;
    if (answer) *answer = num;
    /* "a*b=c. " per step, then "\boxed{v}" */
    if (solution) *solution = steps * (3 * num + 4) + num + 8;
}
