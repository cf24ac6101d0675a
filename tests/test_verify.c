/* Verifier rules, one hand-made case (or a few) per rule of docs/verifier.md. */
#include <string.h>

#include "testlib.h"
#include "verify.h"

static rl_verify_result run(const char *resp, const char *gold, int finished, const rl_verify_opts *o) {
    rl_verify_result r;
    rl_verify(resp, strlen(resp), gold, strlen(gold), finished, o, &r);
    return r;
}

static void expect(const char *resp, const char *gold, int finished, double reward, rl_verify_reason reason,
                   int line) {
    rl_verify_result r = run(resp, gold, finished, NULL);
    CHECK_MSG(r.reward == reward && r.reason == reason, "line %d: '%s' vs gold '%s': reward %g reason %s", line,
              resp, gold, r.reward, rl_verify_reason_name(r.reason));
}
#define EXPECT(resp, gold, fin, rew, reason) expect(resp, gold, fin, rew, reason, __LINE__)

static void eq(const char *a, const char *b, int want, int line) {
    int got = rl_answer_equal(a, strlen(a), b, strlen(b));
    char ca[4200], cb[4200];
    rl_answer_normalize(a, strlen(a), ca, sizeof ca);
    rl_answer_normalize(b, strlen(b), cb, sizeof cb);
    CHECK_MSG(got == want, "line %d: equal('%s', '%s') = %d, want %d (canonical '%s' / '%s')", line, a, b, got,
              want, ca, cb);
    /* equivalence is symmetric */
    int back = rl_answer_equal(b, strlen(b), a, strlen(a));
    CHECK_MSG(back == got, "line %d: equal is not symmetric for '%s' / '%s'", line, a, b);
}
#define EQ(a, b) eq(a, b, 1, __LINE__)
#define NE(a, b) eq(a, b, 0, __LINE__)

static void test_rules(void) {
    /* correct, wrong (partial), no box, truncated, too many boxes */
    EXPECT("17-15=2. 2*3=6. 6+63=69. \\boxed{69}", "69", 1, 1.0, RL_VR_CORRECT);
    EXPECT("17-15=2. \\boxed{68}", "69", 1, 0.5, RL_VR_WRONG);
    EXPECT("the answer is 69", "69", 1, 0.0, RL_VR_NO_BOX);
    EXPECT("\\boxed{69}", "69", 0, 0.0, RL_VR_TRUNCATED);
    EXPECT("\\boxed{1} \\boxed{2} \\boxed{3} \\boxed{69}", "69", 1, 1.0, RL_VR_CORRECT);
    EXPECT("\\boxed{1} \\boxed{2} \\boxed{3} \\boxed{4} \\boxed{69}", "69", 1, 0.0, RL_VR_TOO_MANY_BOXES);
    /* the last box counts */
    EXPECT("first \\boxed{69} then \\boxed{70}", "69", 1, 0.5, RL_VR_WRONG);
    EXPECT("first \\boxed{70} then \\boxed{69}", "69", 1, 1.0, RL_VR_CORRECT);
    /* nested braces */
    EXPECT("so \\boxed{\\frac{1}{2}} done", "0.5", 1, 1.0, RL_VR_CORRECT);
    EXPECT("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1, 1.0,
           RL_VR_CORRECT);
    /* unclosed or empty last box */
    EXPECT("\\boxed{69", "69", 1, 0.0, RL_VR_BAD_BOX);
    EXPECT("\\boxed{}", "69", 1, 0.0, RL_VR_BAD_BOX);
    EXPECT("\\boxed{69} and \\boxed{", "69", 1, 0.0, RL_VR_BAD_BOX);
    /* \boxed X (space form) and \boxed inside $...$ */
    EXPECT("so $\\boxed 69$.", "69", 1, 1.0, RL_VR_CORRECT);
    EXPECT("$\\boxed{69}$", "69", 1, 1.0, RL_VR_CORRECT);
    EXPECT("\\boxedx{69}", "69", 1, 0.0, RL_VR_NO_BOX);
    /* NUL-padded rows end at the NUL */
    {
        char row[32] = "\\boxed{5}";
        rl_verify_result r;
        rl_verify(row, sizeof row, "5", 1, 1, NULL, &r);
        CHECK(r.reason == RL_VR_CORRECT && r.reward == 1.0);
    }
    /* partial is an option; 0 gives binary rewards */
    rl_verify_opts o;
    rl_verify_opts_default(&o);
    o.partial = 0;
    CHECK(run("\\boxed{3}", "4", 1, &o).reward == 0.0);
    CHECK(run("\\boxed{4}", "4", 1, &o).reward == 1.0);
    o.partial = 0.25;
    CHECK(run("\\boxed{3}", "4", 1, &o).reward == 0.25);
    /* a list of gold answers: any alternative counts */
    EXPECT("\\boxed{15000}", "15000 \\text{ kcal m}^{-2} \\text{yr}^{-1}\x1f" "15000", 1, 1.0, RL_VR_CORRECT);
    EXPECT("\\boxed{7}", "5\x1f" "6\x1f" "7", 1, 1.0, RL_VR_CORRECT);
    EXPECT("\\boxed{8}", "5\x1f" "6\x1f" "7", 1, 0.5, RL_VR_WRONG);
}

static void test_vision(void) {
    rl_verify_opts o;
    rl_verify_opts_default(&o);
    o.kind = RL_VERIFY_VISION;
    rl_verify_result r = run("<think>3 red, 4 blue</think><answer>7</answer>", "7", 1, &o);
    CHECK(r.reward == 1.5 && r.correct && r.format_ok && r.reason == RL_VR_CORRECT);
    r = run(" <think>x</think>\n<answer> 8 </answer>\n", "7", 1, &o);
    CHECK(r.reward == 0.5 && !r.correct && r.format_ok && r.reason == RL_VR_WRONG);
    /* answer without the think part: accuracy only */
    r = run("<answer>7</answer>", "7", 1, &o);
    CHECK(r.reward == 1.0 && r.correct && !r.format_ok);
    /* text after the answer breaks the format */
    r = run("<think>a</think><answer>7</answer> extra", "7", 1, &o);
    CHECK(r.reward == 1.0 && !r.format_ok);
    /* a boxed answer inside <answer> is read by its box */
    r = run("<think>a</think><answer>so \\boxed{7}</answer>", "7", 1, &o);
    CHECK(r.reward == 1.5 && r.correct);
    r = run("<think>a</think> no answer", "7", 1, &o);
    CHECK(r.reward == 0.0 && r.reason == RL_VR_NO_ANSWER);
    r = run("<think>a</think><answer>7</answer>", "7", 0, &o);
    CHECK(r.reward == 0.0 && r.reason == RL_VR_TRUNCATED);
    o.format_bonus = 0.25;
    o.accuracy = 2;
    r = run("<think>a</think><answer>7</answer>", "7", 1, &o);
    CHECK(r.reward == 2.25);
    rl_verify_kind k;
    CHECK(rl_verify_kind_parse("vision", &k) == 0 && k == RL_VERIFY_VISION);
    CHECK(rl_verify_kind_parse("boxed", &k) == 0 && k == RL_VERIFY_BOXED);
    CHECK(rl_verify_kind_parse("box", &k) < 0);
}

static void test_equivalence(void) {
    /* integers, signs, decimals, thousands separators */
    EQ("42", "42");
    EQ("+42", "42");
    EQ("-7", "-7");
    NE("-7", "7");
    EQ("3.50", "3.5");
    EQ("3.", "3");
    EQ(".5", "0.5");
    EQ("1,000", "1000");
    EQ("58,500", "58500");
    EQ("11,\\! 111,\\! 111,\\! 100", "11111111100");
    EQ("1{,}000", "1000");
    EQ("1\\,000", "1000");
    NE("1,3,5", "135");
    NE("12", "1.2");
    /* fractions */
    EQ("\\frac{1}{2}", "0.5");
    EQ("\\dfrac{33}{100}", "0.33");
    EQ("\\tfrac{2}{4}", "1/2");
    EQ("\\frac12", "\\frac{1}{2}");
    EQ("-\\frac{3}{4}", "\\frac{-3}{4}");
    EQ("-\\frac{3}{4}", "-0.75");
    NE("\\frac{3}{4}", "-0.75");
    EQ("2\\frac{1}{2}", "2.5");
    EQ("6/8", "0.75");
    NE("\\frac{1}{3}", "0.33");
    /* long decimals compare with relative tolerance 1e-6 */
    EQ("\\frac{1}{3}", "0.333333");
    EQ("3.14159265358979", "3.141592653589793");
    NE("4.03188", "4.03190");
    /* scientific notation */
    EQ("4.4 \\times 10^7", "44000000");
    EQ("2.19 \\times 10^6", "2.19 \\times 10^{6}");
    EQ("8.224 \\times 10^{-19}", "8.224e-19");
    NE("8.224 \\times 10^{-19}", "8.224 \\times 10^{-18}");
    /* LaTeX presentation: $, \left/\right, spaces, \text, units, degrees, percent */
    EQ("$5$", "5");
    EQ("\\left( 1, 2 \\right)", "(1,2)");
    EQ("5.4 \\text{ cents}", "5.4");
    EQ("12 \\mbox{ cm}^2", "12");
    EQ("15000 \\text{ kcal m}^{-2} \\text{yr}^{-1}", "15000");
    EQ("30 degrees", "30");
    EQ("4 square units", "4");
    EQ("90^\\circ", "90");
    EQ("90^{\\circ}", "90");
    EQ("28.71^{\\circ}", "28.71");
    EQ("45\xc2\xb0", "45");
    EQ("\xe2\x88\x92" "3", "-3");                 /* U+2212 minus */
    EQ("4.4\xc3\x97" "10^7", "44000000");         /* U+00D7 times */
    EQ("1\xc2\xa0" "000", "1000");                /* no-break space as a digit group separator */
    EQ("50\\%", "50");
    EQ("50%", "50");
    EQ("\\text{(C)}", "C");
    EQ("\\textbf{Devon}", "Devon");
    NE("5r^5", "5");
    NE("5 r^5", "5");
    NE("2k+2", "2");
    EQ("2k + 2", "2k+2");
    EQ("x = 5", "5");
    EQ("f(x)=x+1", "x+1");
    EQ("k=1", "1");
    NE("x \\le 5", "5");
    /* canonical text for expressions */
    EQ("\\sqrt2", "\\sqrt{2}");
    EQ("2 \\sqrt{113}", "2\\sqrt{113}");
    EQ("2^{k}", "2^k");
    EQ("10^{7}", "10^7");
    NE("\\sqrt{51}", "\\sqrt{52}");
    EQ("\\frac{\\sqrt3}{2}", "\\dfrac{\\sqrt{3}}{2}");
    /* tuples (ordered, brackets matter), intervals, sets and bare lists (unordered) */
    EQ("(1,-16,-4,43)", "(1, -16, -4, 43)");
    NE("(1,-16,-4,43)", "(-16,1,-4,43)");
    EQ("(\\frac{1}{2}, 3)", "(0.5, 3.0)");
    EQ("[2, 5)", "[2,5)");
    NE("[2, 5)", "(2,5)");
    NE("[2, 5]", "[2,5)");
    EQ("(-\\infty, 3] \\cup [5, \\infty)", "(-\\infty,3]\\cup[5,\\infty)");
    NE("(-\\infty, 3] \\cup [5, \\infty)", "(-\\infty,3]");
    EQ("1,3,5", "5, 3, 1");
    EQ("\\{1, 2\\}", "\\{2,1\\}");
    EQ("\\{1, 2\\}", "2, 1");
    NE("1,3,5", "1,3");
    NE("1,3,5", "1,3,3");
    EQ("x=1, y=2", "1,2");
    EQ("(0,0),(0, \\frac{5}{2})", "(0,2.5),(0,0)");
    EQ("(5)", "5");
    /* commas inside a tuple separate elements, never thousands */
    EQ("(2,12) \\cup (12,102)", "(2,12)\\cup(12,102)");
    NE("(12,102)", "(12102)");
    EQ("(1,000)", "(1, 0)"); /* documented: read as a pair */
    /* spaces after a command word separate it from the next letter */
    NE("\\pi G", "\\piG");
    EQ("\\pi G", "\\pi  G");
    /* matrix rows keep their \\\\ */
    NE("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\ 2 \\end{pmatrix}");
    EQ("1 \\text{ and } 2", "1, 2");
    /* long answers fall back to raw comparison */
    {
        static char big[RL_VERIFY_MAX_ANSWER + 100];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        CHECK(rl_answer_equal(big, strlen(big), big, strlen(big)) == 1);
        CHECK(rl_answer_equal(big, strlen(big), "a", 1) == 0);
    }
    NE("", "5");
    NE("", "");
}

static void test_classify(void) {
    CHECK(rl_answer_classify("42", 2) == RL_ANS_NUMBER);
    CHECK(rl_answer_classify("$\\frac{1}{2}$", 13) == RL_ANS_NUMBER);
    CHECK(rl_answer_classify("(1,2)", 5) == RL_ANS_TUPLE);
    CHECK(rl_answer_classify("1,3,5", 5) == RL_ANS_TUPLE);
    CHECK(rl_answer_classify("\\sqrt{2}", 8) == RL_ANS_EXPR);
    CHECK(rl_answer_classify(" ", 1) == RL_ANS_EMPTY);
    char out[64];
    CHECK(rl_answer_normalize("\\dfrac12 \\text{ cm}", 19, out, sizeof out) > 0 && strcmp(out, "\\frac{1}{2}") == 0);
    CHECK(rl_answer_normalize("1,000", 5, out, 3) == -1);
}

/* Random LaTeX-ish token soup and random bytes: never a crash (the sanitizer
 * build checks memory), equality is reflexive and symmetric (apart from the
 * gold side reading byte 0x1f as an alternative separator). */
static void test_fuzz(void) {
    static const char *const tok[] = {"\\boxed{", "\\boxed ", "{", "}", "\\frac", "\\dfrac", "1", "23", ",", "(", ")",
                                      "[", "]", "\\left", "\\right", "\\text{", " cm", " ", "$", "-", ".", "/", "=",
                                      "\\cup", "^", "\\circ", "\\{", "\\}", "e", "\\", "\x1f", "%", "10^", "\\times",
                                      "x", "\\sqrt", "\\!", ",000", "<answer>", "</answer>", "<think>", "\xc2\xb0"};
    const int ntok = (int)(sizeof tok / sizeof tok[0]);
    uint64_t st = 12345;
    char a[512], b[512];
    int bad_reflexive = 0, bad_symmetric = 0;
    for (int it = 0; it < 20000; it++) {
        char *bufs[2] = {a, b};
        for (int w = 0; w < 2; w++) {
            size_t n = 0;
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            int len = (int)((st >> 33) % 40);
            for (int k = 0; k < len; k++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                if (it % 5 == 4) {
                    bufs[w][n++] = (char)(1 + (st >> 40) % 255); /* raw bytes */
                } else {
                    const char *t = tok[(st >> 33) % (uint64_t)ntok];
                    size_t l = strlen(t);
                    memcpy(bufs[w] + n, t, l);
                    n += l;
                }
            }
            bufs[w][n] = '\0';
        }
        char ca[4200];
        if (rl_answer_normalize(a, strlen(a), ca, sizeof ca) > 0 && !strchr(a, RL_VERIFY_ALT_SEP))
            bad_reflexive += !rl_answer_equal(a, strlen(a), a, strlen(a));
        int ab = rl_answer_equal(a, strlen(a), b, strlen(b)), ba = rl_answer_equal(b, strlen(b), a, strlen(a));
        if (ab != ba && !strchr(a, RL_VERIFY_ALT_SEP) && !strchr(b, RL_VERIFY_ALT_SEP)) {
            bad_symmetric++;
            fprintf(stderr, "asymmetric: [%s] [%s] %d %d\n", a, b, ab, ba);
        }
        rl_verify_opts o;
        rl_verify_opts_default(&o);
        rl_verify_result r;
        rl_verify(a, strlen(a), b, strlen(b), 1, &o, &r);
        CHECK(r.reward >= 0 && r.reward <= 1 && r.reason < RL_VR_COUNT);
        o.kind = RL_VERIFY_VISION;
        rl_verify(a, strlen(a), b, strlen(b), 1, &o, &r);
        CHECK(r.reward >= 0 && r.reward <= 1.5 && r.reason < RL_VR_COUNT);
        rl_answer_classify(a, strlen(a));
    }
    CHECK_MSG(bad_reflexive == 0, "%d answers are not equal to themselves", bad_reflexive);
    CHECK_MSG(bad_symmetric == 0, "%d pairs compare differently both ways", bad_symmetric);
    /* deep nesting is bounded, not a stack overflow: past the bound the
       structure is not read, so 900 parentheses around 1 are not 1 */
    char deep[RL_VERIFY_MAX_ANSWER];
    size_t n = 0;
    for (int k = 0; k < 900; k++) deep[n++] = '(';
    deep[n++] = '1';
    for (int k = 0; k < 900; k++) deep[n++] = ')';
    CHECK(rl_answer_equal(deep, n, "1", 1) == 0);
    CHECK(rl_answer_equal("((1))", 5, "1", 1) == 1);
    CHECK(rl_answer_equal(deep, n, deep, n) == 1);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_rules();
    test_vision();
    test_equivalence();
    test_classify();
    test_fuzz();
    return rl_test_finish("test_verify");
}
