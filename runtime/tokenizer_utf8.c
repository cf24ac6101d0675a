/* UTF-8 helpers and GPT-2's byte <-> code point map for byte-level BPE. */
#include <pthread.h>
#include <utf8proc.h>

#include "tokenizer_impl.h"

uint32_t tok_byte_to_cp[256];
static int16_t cp_to_byte_lo[324]; /* every mapped code point is < 324 */
static pthread_once_t map_once = PTHREAD_ONCE_INIT;

/* Printable Latin-1 bytes map to themselves; the rest (controls, space, 0x7F-0xA0,
 * 0xAD) to 256, 257, ... in byte order: so every byte has a visible character. */
static void map_build(void) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        tok_byte_to_cp[b] = printable ? (uint32_t)b : next++;
    }
    for (int i = 0; i < 324; i++) cp_to_byte_lo[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte_lo[tok_byte_to_cp[b]] = (int16_t)b;
}

/* Tokenizers may be loaded from several threads. */
void tok_byte_map_init(void) { pthread_once(&map_once, map_build); }

int tok_cp_to_byte(uint32_t cp) { return cp < 324 ? cp_to_byte_lo[cp] : -1; }

int tok_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80 || n < 2) { *cp = b; return 1; }
    if (b < 0xE0) { *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (b < 0xF0 || n < 4) {
        if (n < 3) { *cp = b; return 1; }
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
          (s[3] & 0x3F);
    return 4;
}

int tok_utf8_prev_len(const uint8_t *s, size_t n) {
    int k = 1;
    while (k < 4 && (size_t)k < n && (s[n - (size_t)k] & 0xC0) == 0x80) k++;
    return k;
}

int tok_utf8_put(uint32_t cp, uint8_t *o) {
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | (cp >> 6)); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12)); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18)); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid sequence at s[0..n) (1-4), or -(bytes of its maximal
 * invalid subpart) following the Unicode "maximal subpart" practice that
 * Rust's and JavaScript's lossy decoders implement. */
static int seq_len(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) { need = 2; lo = 0xA0; }
    else if (b == 0xED) { need = 2; hi = 0x9F; }
    else if (b >= 0xE1 && b <= 0xEF) need = 2;
    else if (b == 0xF0) { need = 3; lo = 0x90; }
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else if (b == 0xF4) { need = 3; hi = 0x8F; }
    else return -1;
    size_t j = 1;
    for (int k = 0; k < need; k++, j++) {
        if (j >= n) return -(int)j;
        uint8_t c = s[j];
        if (c < (k == 0 ? lo : 0x80) || c > (k == 0 ? hi : 0xBF)) return -(int)j;
    }
    return need + 1;
}

int tok_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            __builtin_memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        int k = seq_len(s + i, n - i);
        if (k < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

size_t tok_utf8_lossy(const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        int k = seq_len(s + i, n - i);
        if (k > 0) {
            for (int j = 0; j < k; j++) out[o++] = s[i + (size_t)j];
            i += (size_t)k;
        } else {
            out[o++] = 0xEF; out[o++] = 0xBF; out[o++] = 0xBD;
            i += (size_t)(-k);
        }
    }
    return o;
}

int tok_cp_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

int tok_cp_is_word(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}
