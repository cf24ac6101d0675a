/* Tokenizer throughput: loads a tokenizer.json (timed), then encodes a corpus
 * file on one thread, several times, and prints load seconds and MB/s as
 *   tokenizer load_s=X load_cpu_s=C encode_mb_s=Y encode_cpu_mb_s=Z tokens=N bytes=B
 * load_cpu_s and encode_cpu_mb_s use process CPU time (on a busy machine the
 * wall time says little). MB/s is the best of REPEAT passes. * bench/tokenizer/run.sh compares it with the Hugging Face library. The corpus
 * is encoded line-block by line-block (64 KiB chunks cut at newlines), like a
 * data loader would feed documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER.json CORPUS [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 3 ? atoi(argv[3]) : 3;
    if (repeat < 1) repeat = 1;
    FILE *f = fopen(argv[2], "rb");
    if (!f) { fprintf(stderr, "error: %s: cannot open\n", argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = rl_malloc(n > 0 ? (size_t)n : 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "error: read failed\n"); return 1; }
    fclose(f);
    rl_error err = {0};
    rl_tokenizer *t;
    double t0 = now();
    clock_t c0 = clock();
    if (rl_tokenizer_load(argv[1], &t, &err)) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
    double load = now() - t0, load_cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    rl_tok_ids ids = {0};
    double best = 1e30, best_cpu = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeat; r++) {
        tokens = 0;
        double s = now();
        clock_t cs = clock();
        for (long off = 0; off < n;) {
            long end = off + 65536 < n ? off + 65536 : n;
            while (end < n && text[end - 1] != '\n') end++;
            ids.n = 0;
            if (rl_tokenizer_encode(t, text + off, (size_t)(end - off), 0, &ids, &err)) {
                fprintf(stderr, "error: %s\n", err.msg);
                return 1;
            }
            tokens += ids.n;
            off = end;
        }
        double e = now() - s, ec = (double)(clock() - cs) / CLOCKS_PER_SEC;
        if (e < best) best = e;
        if (ec < best_cpu) best_cpu = ec;
    }
    printf("tokenizer load_s=%.3f load_cpu_s=%.3f encode_mb_s=%.2f encode_cpu_mb_s=%.2f tokens=%zu bytes=%ld\n", load,
           load_cpu, (double)n / 1e6 / best, (double)n / 1e6 / best_cpu, tokens, n);
    rl_tok_ids_free(&ids);
    rl_tokenizer_free(t);
    rl_free(text);
    return 0;
}
