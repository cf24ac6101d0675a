/* The reward rule of DESIGN.md section 2 on top of extraction and
 * equivalence: truncated, unboxed or over-boxed responses get 0, a correct
 * answer 1, a boxed wrong one `partial`; the vision rule adds a format bonus. */
#include <string.h>

#include "verify.h"

void rl_verify_opts_default(rl_verify_opts *o) {
    o->kind = RL_VERIFY_BOXED;
    o->partial = 0.5;
    o->format_bonus = 0.5;
    o->accuracy = 1.0;
}

const char *rl_verify_reason_name(rl_verify_reason r) {
    switch (r) {
    case RL_VR_CORRECT: return "correct";
    case RL_VR_WRONG: return "wrong";
    case RL_VR_NO_BOX: return "no_box";
    case RL_VR_TRUNCATED: return "truncated";
    case RL_VR_TOO_MANY_BOXES: return "too_many_boxes";
    case RL_VR_BAD_BOX: return "bad_box";
    case RL_VR_NO_ANSWER: return "no_answer";
    case RL_VR_COUNT: break;
    }
    return "?";
}

int rl_verify_kind_parse(const char *s, rl_verify_kind *out) {
    if (s && strcmp(s, "boxed") == 0) { *out = RL_VERIFY_BOXED; return 0; }
    if (s && strcmp(s, "vision") == 0) { *out = RL_VERIFY_VISION; return 0; }
    return -1;
}

static void verify_vision(const char *r, size_t n, const char *gold, size_t gold_n, const rl_verify_opts *o,
                          rl_verify_result *res) {
    size_t st, len;
    res->format_ok = rl_verify_vision_format(r, n, &st, &len);
    if (len == 0) {
        res->reason = RL_VR_NO_ANSWER;
        return;
    }
    /* a boxed answer inside <answer> counts by its last box */
    size_t bs, bl;
    if (rl_verify_last_box(r + st, len, &bs, &bl) > 0) {
        if (bl == 0) {
            res->reason = RL_VR_BAD_BOX;
            res->reward = o->format_bonus * res->format_ok;
            return;
        }
        st += bs;
        len = bl;
    }
    res->correct = rl_answer_equal(r + st, len, gold, gold_n);
    res->reason = res->correct ? RL_VR_CORRECT : RL_VR_WRONG;
    res->reward = o->accuracy * res->correct + o->format_bonus * res->format_ok;
}

void rl_verify(const char *response, size_t n, const char *gold, size_t gold_n, int finished,
               const rl_verify_opts *o, rl_verify_result *res) {
    rl_verify_opts def;
    if (!o) {
        rl_verify_opts_default(&def);
        o = &def;
    }
    memset(res, 0, sizeof *res);
    if (!response) n = 0;
    if (!gold) gold_n = 0;
    if (!finished) {
        res->reason = RL_VR_TRUNCATED;
        return;
    }
    if (o->kind == RL_VERIFY_VISION) {
        verify_vision(response, n, gold, gold_n, o, res);
        return;
    }
    size_t st, len;
    int boxes = rl_verify_last_box(response, n, &st, &len);
    if (boxes == 0) {
        res->reason = RL_VR_NO_BOX;
    } else if (boxes >= RL_VERIFY_MAX_BOXES) {
        res->reason = RL_VR_TOO_MANY_BOXES;
    } else if (len == 0) {
        res->reason = RL_VR_BAD_BOX;
    } else {
        res->correct = rl_answer_equal(response + st, len, gold, gold_n);
        res->reason = res->correct ? RL_VR_CORRECT : RL_VR_WRONG;
        res->reward = res->correct ? 1.0 : o->partial;
    }
}
