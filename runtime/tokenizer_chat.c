/* Prompt templates: ChatML as Qwen renders it, or the text unchanged. The
 * rendered string is then encoded normally, so <|im_start|> and <|im_end|>
 * become their special ids through the added-token pass. */
#include <string.h>

#include "tokenizer.h"

int rl_tok_template_parse(const char *name, rl_tok_template *out) {
    if (strcmp(name, "plain") == 0) *out = RL_TOK_PLAIN;
    else if (strcmp(name, "chat") == 0) *out = RL_TOK_CHAT;
    else return -1;
    return 0;
}

static const char SYS_OPEN[] = "<|im_start|>system\n";
static const char TURN_END[] = "<|im_end|>\n";
static const char USER_OPEN[] = "<|im_start|>user\n";
static const char ASSISTANT_OPEN[] = "<|im_start|>assistant\n";

size_t rl_tok_render_overhead(rl_tok_template tpl, const char *system) {
    if (tpl == RL_TOK_PLAIN) return 1;
    size_t n = strlen(USER_OPEN) + strlen(TURN_END) + strlen(ASSISTANT_OPEN) + 1;
    if (system && *system) n += strlen(SYS_OPEN) + strlen(system) + strlen(TURN_END);
    return n;
}

int rl_tok_render(rl_tok_template tpl, const char *system, const char *user, size_t user_len, char *buf,
                  size_t cap, size_t *len_out, rl_error *err) {
    size_t need = rl_tok_render_overhead(tpl, system) + user_len;
    *len_out = need - 1;
    if (need > cap) return rl_fail(err, "prompt template needs %zu bytes, more than %zu", need - 1, cap ? cap - 1 : 0);
    char *p = buf;
#define PUT(s, n) do { memcpy(p, (s), (n)); p += (n); } while (0)
    if (tpl == RL_TOK_CHAT) {
        if (system && *system) {
            PUT(SYS_OPEN, strlen(SYS_OPEN));
            PUT(system, strlen(system));
            PUT(TURN_END, strlen(TURN_END));
        }
        PUT(USER_OPEN, strlen(USER_OPEN));
    }
    PUT(user, user_len);
    if (tpl == RL_TOK_CHAT) {
        PUT(TURN_END, strlen(TURN_END));
        PUT(ASSISTANT_OPEN, strlen(ASSISTANT_OPEN));
    }
#undef PUT
    *p = '\0';
    return 0;
}
