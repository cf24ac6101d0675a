/* The shapes task: determinism, train/test disjointness by scene content,
 * answers that match the picture (recounted from the rendered pixels by
 * connected components of each colour, and recomputed from the question
 * here), solutions that the multimodal verifier scores as correct with the
 * format bonus, and texts within the advertised bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shapes_task.h"
#include "testlib.h"
#include "verify.h"

static uint64_t fnv(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_determinism(void) {
    rl_shapes_cfg c;
    rl_shapes_cfg_default(&c);
    static uint8_t a[112 * 112 * 3], b[112 * 112 * 3];
    rl_error e = {0};
    int same_seed_differs = 0;
    for (uint64_t i = 0; i < 20; i++) {
        rl_shapes_problem p, q;
        CHECK(rl_shapes_generate(&c, RL_SPLIT_TRAIN, i, &p, &e) == 0);
        CHECK(rl_shapes_generate(&c, RL_SPLIT_TRAIN, i, &q, &e) == 0);
        char s1[2048], s2[2048];
        CHECK(rl_shapes_solution(&p, s1, sizeof s1) > 0 && rl_shapes_solution(&q, s2, sizeof s2) > 0 && !strcmp(s1, s2));
        rl_shapes_render(&c, &p, a);
        rl_shapes_render(&c, &q, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
        rl_shapes_cfg c2 = c;
        c2.seed = 7;
        CHECK(rl_shapes_generate(&c2, RL_SPLIT_TRAIN, i, &q, &e) == 0);
        rl_shapes_render(&c2, &q, b);
        same_seed_differs += memcmp(a, b, sizeof a) != 0;
    }
    CHECK(same_seed_differs >= 19);
    /* texts over a small buffer fail instead of overflowing */
    rl_shapes_problem p;
    char tiny[8];
    CHECK(rl_shapes_generate(&c, RL_SPLIT_TEST, 0, &p, &e) == 0);
    CHECK(rl_shapes_prompt(&p, tiny, sizeof tiny) == -1 && rl_shapes_solution(&p, tiny, sizeof tiny) == -1);
    c.max_shapes = 20;
    CHECK(rl_shapes_generate(&c, RL_SPLIT_TRAIN, 0, &p, &e) < 0 && strstr(e.msg, "shapes"));
}

static void test_split(void) {
    enum { NTRAIN = 3000, NTEST = 600 };
    static uint64_t tr[NTRAIN];
    uint64_t te[NTEST];
    rl_error e = {0};
    rl_shapes_cfg c;
    rl_shapes_cfg_default(&c);
    char t[1024];
    int wrong_split = 0;
    for (int i = 0; i < NTRAIN; i++) {
        rl_shapes_problem p;
        c.seed = (uint64_t)(i % 3); /* several content seeds: the split rule ignores them */
        CHECK(rl_shapes_generate(&c, RL_SPLIT_TRAIN, (uint64_t)i, &p, &e) == 0);
        wrong_split += rl_shapes_split_of(&p, c.test_percent) != RL_SPLIT_TRAIN;
        CHECK(rl_shapes_canonical(&p, t, sizeof t) > 0);
        tr[i] = fnv(t);
    }
    for (int i = 0; i < NTEST; i++) {
        rl_shapes_problem p;
        c.seed = (uint64_t)(i % 5);
        CHECK(rl_shapes_generate(&c, RL_SPLIT_TEST, (uint64_t)i, &p, &e) == 0);
        wrong_split += rl_shapes_split_of(&p, c.test_percent) != RL_SPLIT_TEST;
        CHECK(rl_shapes_canonical(&p, t, sizeof t) > 0);
        te[i] = fnv(t);
    }
    CHECK(wrong_split == 0);
    qsort(tr, NTRAIN, sizeof tr[0], cmp_u64);
    int shared = 0, distinct_test = 0;
    for (int i = 0; i < NTEST; i++) {
        shared += bsearch(&te[i], tr, NTRAIN, sizeof tr[0], cmp_u64) != NULL;
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= te[j] == te[i];
        distinct_test += !seen;
    }
    CHECK_MSG(shared == 0, "%d test scenes share their content with train scenes", shared);
    CHECK(distinct_test > NTEST / 2); /* the test split is not a handful of scenes */
}

/* Connected components (4-neighbour) of pixels within `tol` of colour col,
 * ignoring specks below min_px pixels (anti-aliased fringes). */
static int components(const uint8_t *rgb, int w, int h, const uint8_t col[3], int tol, int min_px, int *label) {
    static int stack[112 * 112];
    for (int i = 0; i < w * h; i++) {
        int d = 0;
        for (int k = 0; k < 3; k++) d += abs(rgb[3 * i + k] - col[k]);
        label[i] = d <= tol ? 0 : -1;
    }
    int count = 0, next = 1;
    for (int i = 0; i < w * h; i++) {
        if (label[i] != 0) continue;
        int sp = 0, size = 0;
        stack[sp++] = i;
        label[i] = next;
        while (sp) {
            int q = stack[--sp], x = q % w, y = q / w;
            size++;
            int nb[4] = {x > 0 ? q - 1 : -1, x < w - 1 ? q + 1 : -1, y > 0 ? q - w : -1, y < h - 1 ? q + w : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && label[nb[k]] == 0) {
                    label[nb[k]] = next;
                    stack[sp++] = nb[k];
                }
        }
        next++;
        count += size >= min_px;
    }
    return count;
}

static int count_set(const rl_shapes_problem *p, int color, int kind) {
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += (color < 0 || p->shape[i].color == color) && (kind < 0 || p->shape[i].kind == kind);
    return n;
}

static void test_answers_and_solutions(void) {
    static const uint8_t colors[RL_COLORS][3] = {{220, 40, 40}, {40, 170, 60}, {40, 80, 220}, {235, 190, 0}};
    rl_shapes_cfg c;
    rl_shapes_cfg_default(&c);
    static uint8_t rgb[112 * 112 * 3];
    static int label[112 * 112];
    rl_error e = {0};
    size_t bp, ba, bs, mp = 0, ma = 0, ms = 0;
    rl_shapes_max_lengths(&c, &bp, &ba, &bs);
    int pix_bad = 0, ans_bad = 0, ver_bad = 0, types[RL_SQ_TYPES] = {0};
    rl_verify_opts vo;
    rl_verify_opts_default(&vo);
    vo.kind = RL_VERIFY_VISION;
    for (int i = 0; i < 400; i++) {
        rl_shapes_problem p;
        rl_split split = i % 4 == 0 ? RL_SPLIT_TEST : RL_SPLIT_TRAIN;
        CHECK(rl_shapes_generate(&c, split, (uint64_t)i, &p, &e) == 0);
        types[p.qtype]++;
        rl_shapes_render(&c, &p, rgb);
        for (int col = 0; col < RL_COLORS; col++) {
            int seen = components(rgb, 112, 112, colors[col], 24, 6, label);
            if (seen != count_set(&p, col, -1)) pix_bad++;
        }
        /* the answer, recomputed from the question's sets */
        int a = count_set(&p, p.a.color, p.a.kind), b = count_set(&p, p.b.color, p.b.kind);
        int64_t want = p.qtype == RL_SQ_COUNT ? a : p.qtype == RL_SQ_TOTAL ? p.n
                     : p.qtype == RL_SQ_MORE ? a - b : p.qtype == RL_SQ_SUM ? a + b : (int64_t)a * b;
        if (want != p.answer || (p.qtype == RL_SQ_MORE && want <= 0)) ans_bad++;
        char pr[1024], an[64], so[2048];
        int lp = rl_shapes_prompt(&p, pr, sizeof pr), la = rl_shapes_answer(&p, an, sizeof an),
            ls = rl_shapes_solution(&p, so, sizeof so);
        CHECK(lp > 0 && la > 0 && ls > 0);
        if ((size_t)lp > mp) mp = (size_t)lp;
        if ((size_t)la > ma) ma = (size_t)la;
        if ((size_t)ls > ms) ms = (size_t)ls;
        rl_verify_result r;
        rl_verify(so, strlen(so), an, strlen(an), 1, &vo, &r);
        if (!(r.correct && r.format_ok && r.reward == 1.5)) ver_bad++;
        if (i < 2) printf("%s\n  -> %s\n", pr, so);
        /* a wrong number in the same format gets the bonus only */
        char wrong[64];
        snprintf(wrong, sizeof wrong, "<think>x</think><answer>%lld</answer>", (long long)p.answer + 1);
        rl_verify(wrong, strlen(wrong), an, strlen(an), 1, &vo, &r);
        CHECK(!r.correct && r.reward == 0.5);
    }
    CHECK_MSG(pix_bad == 0, "%d colour counts in rendered images disagree with the scenes", pix_bad);
    CHECK(ans_bad == 0);
    CHECK_MSG(ver_bad == 0, "%d solutions do not verify", ver_bad);
    for (int t = 0; t < RL_SQ_TYPES; t++) CHECK_MSG(types[t] > 20, "question type %d drawn %d times", t, types[t]);
    CHECK_MSG(mp <= bp && ma <= ba && ms <= bs, "longest texts %zu/%zu/%zu over bounds %zu/%zu/%zu", mp, ma, ms, bp, ba, bs);
    printf("longest prompt %zu, answer %zu, solution %zu bytes (bounds %zu, %zu, %zu)\n", mp, ma, ms, bp, ba, bs);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_determinism();
    test_split();
    test_answers_and_solutions();
    return rl_test_finish("test_shapes_task");
}
