/*
 * Int8 fully connected layer, bit-exact with tc_fully_connected_s8 (symmetric weights).
 *
 * Four output rows share every load of the input: the kernel keeps four accumulators and walks
 * four weight rows together. The compiler folded the input offset into the bias, so the inner
 * loop multiplies raw int8 values. On DSP targets one word of input unpacks with SXTB16 into two
 * halfword pairs that serve all four rows, with two SMLADs per row per four inputs. With MVE one
 * VMLADAVA sums sixteen products. Weight rows are k4 bytes long, zero-padded past in_features.
 */
#include "tc_kernels_fast.h"

typedef struct {
    int32_t s[4];
} tc_fc_acc;

/* Dot products of `rows` (1 or 4) weight rows with the input row `x` of n values. */
TC_INLINE void tc_fc_rows(const int8_t *x, const int8_t *w, int32_t k4, int32_t n, const int rows, tc_fc_acc *acc)
{
    int32_t s0 = acc->s[0], s1 = acc->s[1], s2 = acc->s[2], s3 = acc->s[3];
    const int8_t *w0 = w, *w1 = w + k4, *w2 = w + 2 * k4, *w3 = w + 3 * k4;
    int32_t i = 0;
#if TC_FAST_MVE
    for (; i + 16 <= n; i += 16) {
        const int8x16_t vx = vldrbq_s8(x + i);
        s0 = vmladavaq_s8(s0, vx, vldrbq_s8(w0 + i));
        if (rows == 4) {
            s1 = vmladavaq_s8(s1, vx, vldrbq_s8(w1 + i));
            s2 = vmladavaq_s8(s2, vx, vldrbq_s8(w2 + i));
            s3 = vmladavaq_s8(s3, vx, vldrbq_s8(w3 + i));
        }
    }
    if (i < n) {
        const mve_pred16_t pr = vctp8q((uint32_t)(n - i));
        const int8x16_t vx = vldrbq_z_s8(x + i, pr);
        s0 = vmladavaq_s8(s0, vx, vldrbq_z_s8(w0 + i, pr));
        if (rows == 4) {
            s1 = vmladavaq_s8(s1, vx, vldrbq_z_s8(w1 + i, pr));
            s2 = vmladavaq_s8(s2, vx, vldrbq_z_s8(w2 + i, pr));
            s3 = vmladavaq_s8(s3, vx, vldrbq_z_s8(w3 + i, pr));
        }
        i = n;
    }
#elif TC_FAST_DSP
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TC_FAST_NO_ASM)
    if (rows == 4 && n >= 4) {
        /*
         * Four rows in assembly: the loop keeps fourteen values live, which compilers spill. Per
         * four inputs: one load and two SXTB16 of the input, then per row one load, two SXTB16
         * and two SMLADs, 23 instructions for 16 multiply-adds.
         */
        register int32_t r4 __asm__("r4") = s0;
        register int32_t r5 __asm__("r5") = s1;
        register int32_t r6 __asm__("r6") = s2;
        register int32_t r7 __asm__("r7") = s3;
        register const int8_t *r8 __asm__("r8") = w0;
        register const int8_t *r9 __asm__("r9") = w1;
        register const int8_t *r10 __asm__("r10") = w2;
        register const int8_t *r11 __asm__("r11") = w3;
        register const int8_t *r12 __asm__("r12") = x;
        register int32_t count __asm__("lr") = n >> 2;
#define TC_FC_ROW(row, acc)                                                                                    \
    "ldr     r2, [" row "], #4\n\t"                                                                             \
    "sxtb16  r3, r2\n\t"                                                                                       \
    "sxtb16  r2, r2, ror #8\n\t"                                                                               \
    "smlad   " acc ", r1, r3, " acc "\n\t"                                                                     \
    "smlad   " acc ", r0, r2, " acc "\n\t"
        __asm__ volatile("1:\n\t"
                         "ldr     r0, [r12], #4\n\t"
                         "sxtb16  r1, r0\n\t"
                         "sxtb16  r0, r0, ror #8\n\t"
                         TC_FC_ROW("r8", "r4") TC_FC_ROW("r9", "r5") TC_FC_ROW("r10", "r6") TC_FC_ROW("r11", "r7")
                         "subs    lr, lr, #1\n\t"
                         "bne     1b\n\t"
                         : "+r"(r4), "+r"(r5), "+r"(r6), "+r"(r7), "+r"(r8), "+r"(r9), "+r"(r10), "+r"(r11),
                           "+r"(r12), "+r"(count)
                         :
                         : "r0", "r1", "r2", "r3", "cc", "memory");
#undef TC_FC_ROW
        s0 = r4;
        s1 = r5;
        s2 = r6;
        s3 = r7;
        i = n & ~3;
    }
#endif
    const uint32_t *u0 = (const uint32_t *)(const void *)(w0 + i), *u1 = (const uint32_t *)(const void *)(w1 + i);
    const uint32_t *u2 = (const uint32_t *)(const void *)(w2 + i), *u3 = (const uint32_t *)(const void *)(w3 + i);
    for (; i + 4 <= n; i += 4) {
        const uint32_t v = tc_load32(x + i);
        const uint32_t x02 = __sxtb16(v), x13 = tc_sxtb16_ror8(v);
        uint32_t t = *u0++;
        s0 = __smlad(x02, __sxtb16(t), s0);
        s0 = __smlad(x13, tc_sxtb16_ror8(t), s0);
        if (rows == 4) {
            t = *u1++;
            s1 = __smlad(x02, __sxtb16(t), s1);
            s1 = __smlad(x13, tc_sxtb16_ror8(t), s1);
            t = *u2++;
            s2 = __smlad(x02, __sxtb16(t), s2);
            s2 = __smlad(x13, tc_sxtb16_ror8(t), s2);
            t = *u3++;
            s3 = __smlad(x02, __sxtb16(t), s3);
            s3 = __smlad(x13, tc_sxtb16_ror8(t), s3);
        }
    }
#else
    /* Plain C. The fixed 16-value inner loop lets compilers vectorize it. */
    for (; i + 16 <= n; i += 16) {
        int32_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
        for (int32_t j = 0; j < 16; ++j) {
            const int32_t v = x[i + j];
            t0 += v * w0[i + j];
            if (rows == 4) {
                t1 += v * w1[i + j];
                t2 += v * w2[i + j];
                t3 += v * w3[i + j];
            }
        }
        s0 += t0;
        s1 += t1;
        s2 += t2;
        s3 += t3;
    }
#endif
    for (; i < n; ++i) {
        const int32_t v = x[i];
        s0 += v * w0[i];
        if (rows == 4) {
            s1 += v * w1[i];
            s2 += v * w2[i];
            s3 += v * w3[i];
        }
    }
    acc->s[0] = s0;
    acc->s[1] = s1;
    acc->s[2] = s2;
    acc->s[3] = s3;
}

TC_INLINE void tc_fc_body(const tc_fast_fc_params *p, const int8_t *input, int8_t *output, const int fast,
                          const int full)
{
    const tc_fast_clamp c = tc_fast_clamp_of(&p->out);
    const int32_t *rq = p->out.rq;
    const int32_t n = p->in_features;
    const int32_t rows = p->out_features;
    const int32_t batches = p->batches;
    const int32_t k4 = p->k4;
    const int8_t *weights = (const int8_t *)(const void *)p->weights;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *x = input + (size_t)b * n;
        int8_t *out = output + (size_t)b * rows;
        int32_t row = 0;
        for (; row + 4 <= rows; row += 4) {
            const tc_fast_rq q0 = tc_fast_rq_of(rq + 4 * row), q1 = tc_fast_rq_of(rq + 4 * row + 4);
            const tc_fast_rq q2 = tc_fast_rq_of(rq + 4 * row + 8), q3 = tc_fast_rq_of(rq + 4 * row + 12);
            tc_fc_acc acc = {{q0.bias, q1.bias, q2.bias, q3.bias}};
            tc_fc_rows(x, weights + (size_t)row * k4, k4, n, 4, &acc);
            const int8_t v0 = tc_fast_store(c, q0, acc.s[0], fast, full);
            const int8_t v1 = tc_fast_store(c, q1, acc.s[1], fast, full);
            const int8_t v2 = tc_fast_store(c, q2, acc.s[2], fast, full);
            const int8_t v3 = tc_fast_store(c, q3, acc.s[3], fast, full);
            out[row] = v0;
            out[row + 1] = v1;
            out[row + 2] = v2;
            out[row + 3] = v3;
        }
        for (; row < rows; ++row) {
            const tc_fast_rq q0 = tc_fast_rq_of(rq + 4 * row);
            tc_fc_acc acc = {{q0.bias, 0, 0, 0}};
            tc_fc_rows(x, weights + (size_t)row * k4, k4, n, 1, &acc);
            out[row] = tc_fast_store(c, q0, acc.s[0], fast, full);
        }
    }
}

tc_status tc_fast_fully_connected_s8(const tc_fast_fc_params *p, const int8_t *input, int8_t *output)
{
    switch (tc_fast_variant(&p->out)) {
    case 2:
        tc_fc_body(p, input, output, 1, 1);
        break;
    case 1:
        tc_fc_body(p, input, output, 1, 0);
        break;
    default:
        tc_fc_body(p, input, output, 0, 0);
        break;
    }
    return TC_OK;
}
