/* The procedural arithmetic task: determinism, split disjointness, correct
 * solutions (checked by recomputation and by the verifier), length bounds. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arith_task.h"
#include "testlib.h"
#include "verify.h"

#define CANON 64

static int cmp_str(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Recomputes the answer from the canonical text, left to right. */
static long long eval_canonical(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    while (*end) {
        char op = *end++;
        long long x = strtoll(end, &end, 10);
        if (op == '+') v += x;
        else if (op == '-') v -= x;
        else if (op == '*') v *= x;
        else v /= x;
    }
    return v;
}

static void test_determinism(void) {
    rl_arith_cfg c;
    rl_arith_cfg_default(&c);
    rl_error err = {0};
    rl_arith_problem a, b;
    char pa[512], pb[512];
    int differ = 0;
    for (uint64_t i = 0; i < 200; i++) {
        CHECK(rl_arith_generate(&c, RL_SPLIT_TRAIN, i, &a, &err) == 0);
        CHECK(rl_arith_generate(&c, RL_SPLIT_TRAIN, i, &b, &err) == 0);
        rl_arith_prompt(&a, pa, sizeof pa);
        rl_arith_prompt(&b, pb, sizeof pb);
        CHECK(strcmp(pa, pb) == 0);
        c.seed = 7;
        CHECK(rl_arith_generate(&c, RL_SPLIT_TRAIN, i, &b, &err) == 0);
        c.seed = 0;
        rl_arith_prompt(&b, pb, sizeof pb);
        differ += strcmp(pa, pb) != 0;
    }
    CHECK_MSG(differ > 190, "another seed changed only %d of 200 problems", differ);
}

static void test_problems(const rl_arith_cfg *c, int n_train, int n_test) {
    rl_error err = {0};
    size_t max_p, max_a, max_s;
    rl_arith_max_lengths(c, &max_p, &max_a, &max_s);
    char *canon = rl_calloc((size_t)(n_train + n_test), CANON);
    CHECK(canon != NULL);
    if (!canon) return;
    int frames[4] = {0}, ops[128] = {0}, steps_seen[RL_ARITH_MAX_STEPS + 1] = {0};
    int bad = 0;
    for (int i = 0; i < n_train + n_test; i++) {
        rl_split split = i < n_train ? RL_SPLIT_TRAIN : RL_SPLIT_TEST;
        uint64_t index = (uint64_t)(i < n_train ? i : i - n_train);
        rl_arith_problem p;
        if (rl_arith_generate(c, split, index, &p, &err) < 0) {
            CHECK_MSG(0, "generate: %s", err.msg);
            break;
        }
        CHECK(rl_arith_split_of(&p, c->test_percent) == split);
        char prompt[1024], sol[512], ans[64];
        int lp = rl_arith_prompt(&p, prompt, sizeof prompt);
        int ls = rl_arith_solution(&p, sol, sizeof sol);
        int la = rl_arith_answer(&p, ans, sizeof ans);
        int lc = rl_arith_canonical(&p, canon + (size_t)i * CANON, CANON);
        if (lp < 0 || ls < 0 || la < 0 || lc < 0 || (size_t)lp > max_p || (size_t)ls > max_s || (size_t)la > max_a) {
            bad++;
            continue;
        }
        frames[p.frame]++;
        steps_seen[p.steps]++;
        for (int k = 0; k < p.steps; k++) {
            ops[(int)p.op[k]]++;
            /* intermediate values stay non-negative and under the cap */
            if (p.value[k] < 0 || p.value[k] > rl_arith_value_cap(c)) bad++;
        }
        if (p.start < 1 || p.start > c->max_value || p.steps < c->min_steps || p.steps > c->max_steps) bad++;
        /* the answer is the left-to-right value of the canonical text */
        if (eval_canonical(canon + (size_t)i * CANON) != strtoll(ans, NULL, 10)) bad++;
        /* the expert solution's box verifies against the answer */
        rl_verify_result r;
        rl_verify(sol, (size_t)ls, ans, (size_t)la, 1, NULL, &r);
        if (r.reason != RL_VR_CORRECT) {
            bad++;
            if (bad < 5) fprintf(stderr, "solution '%s' does not verify against '%s'\n", sol, ans);
        }
        /* the problem states every operand: the prompt mentions the start value */
        char start[24];
        snprintf(start, sizeof start, "%lld", (long long)p.start);
        if (!strstr(prompt, start)) bad++;
        if (i == 0 || i == n_train) printf("example %s: %s\n  solution: %s\n", i ? "test" : "train", prompt, sol);
    }
    CHECK_MSG(bad == 0, "%d problems broke a rule", bad);
    for (int f = 0; f < 4; f++) CHECK_MSG(frames[f] > 0, "template %d never used", f);
    if (c->ops == RL_ARITH_ALL_OPS) {
        CHECK(ops['+'] > 0 && ops['-'] > 0 && ops['*'] > 0 && ops['/'] > 0);
    }
    for (int s = c->min_steps; s <= c->max_steps; s++) CHECK_MSG(steps_seen[s] > 0, "never %d steps", s);
    /* disjointness: no canonical problem of test appears in train */
    qsort(canon, (size_t)n_train, CANON, cmp_str);
    int overlap = 0;
    for (int i = n_train; i < n_train + n_test; i++)
        if (bsearch(canon + (size_t)i * CANON, canon, (size_t)n_train, CANON, cmp_str)) overlap++;
    CHECK_MSG(overlap == 0, "%d test problems also appear in train", overlap);
    /* sanity of the sample itself: train repeats problems, so the check had
       something to find if the split rule were broken */
    int dup = 0;
    for (int i = 1; i < n_train; i++) dup += strcmp(canon + (size_t)i * CANON, canon + (size_t)(i - 1) * CANON) == 0;
    printf("train %d (%d repeated), test %d, overlap %d\n", n_train, dup, n_test, overlap);
    rl_free(canon);
}

static void test_config(void) {
    rl_arith_cfg c;
    rl_error err = {0};
    rl_arith_cfg_default(&c);
    CHECK(rl_arith_cfg_check(&c, &err) == 0);
    CHECK(rl_arith_cfg_set_digits(&c, 3, &err) == 0 && c.max_value == 999);
    CHECK(rl_arith_cfg_set_digits(&c, 0, &err) < 0 && strstr(err.msg, "digits"));
    rl_arith_cfg_default(&c);
    c.min_steps = 4;
    c.max_steps = 3;
    CHECK(rl_arith_cfg_check(&c, &err) < 0 && strstr(err.msg, "steps"));
    rl_arith_cfg_default(&c);
    c.ops = RL_ARITH_DIV;
    CHECK(rl_arith_cfg_check(&c, &err) < 0);
    /* a tiny problem space: 1 step of + on {1,2}: four problems in all. The
       test split exists iff one of them hashes into it. */
    rl_arith_cfg_default(&c);
    c.min_steps = c.max_steps = 1;
    c.max_value = 2;
    c.ops = RL_ARITH_ADD;
    c.test_percent = 1;
    int any_test = 0;
    for (int a = 1; a <= 2; a++)
        for (int x = 1; x <= 2; x++) {
            rl_arith_problem p = {0};
            p.steps = 1;
            p.start = a;
            p.op[0] = '+';
            p.operand[0] = x;
            any_test |= rl_arith_split_of(&p, 1) == RL_SPLIT_TEST;
        }
    rl_arith_problem p;
    int rc = rl_arith_generate(&c, RL_SPLIT_TEST, 0, &p, &err);
    CHECK(any_test ? rc == 0 : (rc < 0 && strstr(err.msg, "too small") != NULL));
    /* a too small buffer is an error, not an overflow */
    rl_arith_cfg_default(&c);
    CHECK(rl_arith_generate(&c, RL_SPLIT_TRAIN, 0, &p, &err) == 0);
    char small[8];
    CHECK(rl_arith_prompt(&p, small, sizeof small) == -1);
    CHECK(rl_arith_solution(&p, small, sizeof small) == -1);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_determinism();
    rl_arith_cfg c;
    rl_arith_cfg_default(&c);
    test_problems(&c, 20000, 2000);
    /* a harder setting: 3-5 steps, 3 digits */
    rl_error err = {0};
    c.min_steps = 3;
    c.max_steps = 5;
    CHECK(rl_arith_cfg_set_digits(&c, 3, &err) == 0);
    test_problems(&c, 4000, 500);
    test_config();
    return rl_test_finish("test_arith_task");
}
