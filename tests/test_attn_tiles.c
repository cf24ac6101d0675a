/* The attention kernels against a direct double-precision implementation,
 * on shapes that reach every path of their register tiles: head_dim 24, 40
 * and 64 (whole vectors plus a remainder, whatever the vector width), query
 * and key blocks with every remainder 1..7, a shared prefix of 5 keys (so key
 * blocks start off the vector grid) with two followers, and a sequence with
 * cached keys (pos0 > 0). Forward (o, lse) and backward (dq, dk, dv) must
 * agree within 1e-5 of the largest magnitude, and 1 and 2 threads must give
 * identical bits. (test_attn_grad and test_qwen2_shared_prefix check
 * gradients by finite differences on smaller shapes.) */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "kernels_attn.h"
#include "testlib.h"

enum { H = 4, HK = 2, QROWS = 28, KROWS = 32, NSEQ = 4 };

static const rl_attn_seq seqs[NSEQ] = {
    {0, 5, 0, 0, 0, 0},   /* a prompt: owns the prefix rows 0..4 */
    {5, 11, 5, 0, 0, 5},  /* a response attending to it */
    {16, 3, 16, 0, 0, 5}, /* another response */
    {19, 9, 19, 4, 0, 0}, /* 4 cached keys then 9 new ones: key rows 19..31 */
};

/* Keys of sequence s in attention order: prefix rows, then own rows. */
static int64_t keys_of(const rl_attn_seq *sq, int64_t *rows) {
    int64_t n = 0;
    for (int64_t j = 0; j < sq->n_pre; j++) rows[n++] = sq->pre_row + j;
    for (int64_t j = 0; j < sq->pos0 + sq->n_q; j++) rows[n++] = sq->k_row + j;
    return n;
}

static void reference(int64_t hd, const float *q, const float *k, const float *v, const float *dout, double *o,
                      double *lse, double *dq, double *dk, double *dv) {
    const int64_t qs = H * hd, ks = HK * hd, group = H / HK;
    const double scale = 1.0 / sqrt((double)hd);
    memset(o, 0, sizeof(double) * QROWS * (size_t)qs);
    memset(dq, 0, sizeof(double) * QROWS * (size_t)qs);
    memset(dk, 0, sizeof(double) * KROWS * (size_t)ks);
    memset(dv, 0, sizeof(double) * KROWS * (size_t)ks);
    int64_t rows[64];
    double p[64], dp[64];
    for (int s = 0; s < NSEQ; s++) {
        const rl_attn_seq *sq = &seqs[s];
        keys_of(sq, rows);
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / group;
            for (int64_t i = 0; i < sq->n_q; i++) {
                const int64_t qr = sq->q_row + i, vis = sq->n_pre + sq->pos0 + i + 1;
                const float *qi = q + qr * qs + h * hd, *doi = dout + qr * qs + h * hd;
                double mx = -INFINITY, sum = 0, pd = 0;
                for (int64_t j = 0; j < vis; j++) {
                    double d = 0;
                    for (int64_t c = 0; c < hd; c++) d += (double)qi[c] * k[rows[j] * ks + g * hd + c];
                    p[j] = d * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = 0; j < vis; j++) sum += (p[j] = exp(p[j] - mx));
                lse[qr * H + h] = mx + log(sum);
                for (int64_t j = 0; j < vis; j++) {
                    p[j] /= sum;
                    const float *vj = v + rows[j] * ks + g * hd;
                    dp[j] = 0;
                    for (int64_t c = 0; c < hd; c++) {
                        o[qr * qs + h * hd + c] += p[j] * vj[c];
                        dp[j] += (double)doi[c] * vj[c];
                        dv[rows[j] * ks + g * hd + c] += p[j] * doi[c];
                    }
                    pd += p[j] * dp[j];
                }
                for (int64_t j = 0; j < vis; j++) {
                    const double ds = p[j] * (dp[j] - pd) * scale;
                    for (int64_t c = 0; c < hd; c++) {
                        dq[qr * qs + h * hd + c] += ds * k[rows[j] * ks + g * hd + c];
                        dk[rows[j] * ks + g * hd + c] += ds * qi[c];
                    }
                }
            }
        }
    }
}

/* max |a - b| / max |b| */
static double rel(const float *a, const double *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static void run(int64_t hd, int threads, float *out[5], float *scratch, const float *q, const float *k,
                const float *v, const float *dout) {
    const rl_attn_dims dims = {H, HK, hd};
    rl_attn_forward(q, k, v, out[0], out[1], seqs, NSEQ, dims, 11, 16, scratch, threads);
    rl_attn_backward(q, k, v, out[0], out[1], dout, out[2], out[3], out[4], seqs, NSEQ, dims, 11, 16, scratch,
                     threads);
}

static void test_head_dim(int64_t hd) {
    const size_t qn = QROWS * (size_t)(H * hd), kn = KROWS * (size_t)(HK * hd);
    const size_t sizes[5] = {qn, QROWS * H, qn, kn, kn};
    float *q = rl_malloc(qn * 4), *k = rl_malloc(kn * 4), *v = rl_malloc(kn * 4), *dout = rl_malloc(qn * 4);
    float *scratch = rl_malloc(rl_attn_scratch_floats(11, 16, hd, 2) * 4);
    double *ref[5];
    float *one[5], *two[5];
    for (int i = 0; i < 5; i++) {
        ref[i] = rl_malloc(sizes[i] * sizeof(double));
        one[i] = rl_malloc(sizes[i] * 4);
        two[i] = rl_malloc(sizes[i] * 4);
    }
    rl_test_fill(q, qn, 1 + (uint64_t)hd);
    rl_test_fill(k, kn, 2 + (uint64_t)hd);
    rl_test_fill(v, kn, 3 + (uint64_t)hd);
    rl_test_fill(dout, qn, 4 + (uint64_t)hd);
    for (size_t i = 0; i < qn; i++) q[i] *= 2.0f; /* peakier probabilities */
    reference(hd, q, k, v, dout, ref[0], ref[1], ref[2], ref[3], ref[4]);
    run(hd, 1, one, scratch, q, k, v, dout);
    run(hd, 2, two, scratch, q, k, v, dout);
    static const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++) {
        const double e = rel(one[i], ref[i], sizes[i]);
        CHECK_MSG(e < 1e-5, "head_dim %lld: %s differs from the reference by %g", (long long)hd, names[i], e);
        CHECK_MSG(memcmp(one[i], two[i], sizes[i] * 4) == 0, "head_dim %lld: %s differs between 1 and 2 threads",
                  (long long)hd, names[i]);
    }
    for (int i = 0; i < 5; i++) {
        rl_free(ref[i]);
        rl_free(one[i]);
        rl_free(two[i]);
    }
    rl_free(q);
    rl_free(k);
    rl_free(v);
    rl_free(dout);
    rl_free(scratch);
}

int main(int argc, char **argv) {
    if (argc > 1) rl_test_set_source_dir(argv[1]);
    test_head_dim(24);
    test_head_dim(40);
    test_head_dim(64);
    return rl_test_finish("test_attn_tiles");
}
