/* Decoding: ids -> bytes via the per-id decode table, then a lossy UTF-8 pass
 * (U+FFFD per maximal invalid subsequence), as HF's ByteLevel decoder does with
 * String::from_utf8_lossy. Without a decoder, HF joins the token spellings with
 * spaces; so do we. */
#include <string.h>

#include "alloc.h"
#include "tokenizer_impl.h"

void rl_tok_text_free(rl_tok_text *v) {
    rl_free(v->s);
    memset(v, 0, sizeof *v);
}

/* Concatenates the tokens' bytes into t->dbytes; returns the length via *len.
 * Stops once `limit` bytes are gathered (every input byte gives at least one
 * output byte, so a bounded output never needs more): no growth when truncating. */
static int gather(rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t limit, size_t *len,
                  rl_error *err) {
    size_t o = 0;
    int first = 1;
    for (size_t i = 0; i < n && o < limit; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || (t->tok_off[id] == UINT32_MAX && t->kind[id] == 0))
            return rl_fail(err, "%s: token id %d at position %zu is outside the vocabulary (size %d)", t->name, id, i,
                           t->n_ids);
        if (skip_special && t->kind[id] == 3) continue;
        size_t k = t->dec_len[id];
        if (k > limit - o) k = limit - o;
        size_t need = o + k + 2;
        if (need > t->dbytes_cap && tok_grow((void **)&t->dbytes, &t->dbytes_cap, need, 1))
            return rl_fail(err, "%s: out of memory while decoding", t->name);
        if (!t->decoder_byte_level && !first) t->dbytes[o++] = ' ';
        memcpy(t->dbytes + o, t->dec + t->dec_off[id], k);
        o += k;
        first = 0;
    }
    *len = o;
    return 0;
}

int rl_tokenizer_decode(rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, rl_tok_text *out,
                        rl_error *err) {
    size_t len, need;
    if (gather(t, ids, n, skip_special, SIZE_MAX - 1, &len, err)) return -1;
    if (rl_mul_size(len, 3, &need) || rl_add_size(need, out->n + 1, &need) ||
        tok_grow((void **)&out->s, &out->cap, need, 1))
        return rl_fail(err, "%s: out of memory while decoding", t->name);
    out->n += tok_utf8_lossy(t->dbytes, len, (uint8_t *)out->s + out->n);
    out->s[out->n] = '\0';
    return 0;
}

int rl_tokenizer_decode_into(rl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char *buf,
                             size_t cap, int truncate, size_t *len_out, rl_error *err) {
    size_t len;
    *len_out = 0;
    if (cap == 0) return rl_fail(err, "%s: decode buffer has no room", t->name);
    if (gather(t, ids, n, skip_special, truncate ? cap : SIZE_MAX - 1, &len, err)) return -1;
    /* Lossy conversion one lead byte (plus its continuation bytes) at a time,
     * which gives the same result as converting the whole (maximal invalid
     * subparts never span a lead byte), with a bound check per character. */
    size_t o = 0, i = 0;
    uint8_t *out = (uint8_t *)buf;
    while (i < len) {
        uint8_t tmp[12];
        size_t j = i + 1;
        while (j < len && j - i < 4 && (t->dbytes[j] & 0xC0) == 0x80) j++;
        size_t k = tok_utf8_lossy(t->dbytes + i, j - i, tmp);
        if (o + k + 1 > cap) {
            if (!truncate)
                return rl_fail(err, "%s: decoded text needs more than %zu bytes", t->name, cap - 1);
            break;
        }
        memcpy(out + o, tmp, k);
        o += k;
        i = j;
    }
    out[o] = '\0';
    *len_out = o;
    return 0;
}
