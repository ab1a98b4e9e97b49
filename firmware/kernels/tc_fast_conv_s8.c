/*
 * Int8 convolution as a matrix multiply, bit-exact with tc_conv2d_s8 (groups of 1).
 *
 * Output pixels go two at a time. Their receptive fields become two rows of k values (im2col),
 * and every pair of output channels is a 2x2 block of dot products over those rows, so each
 * loaded input value feeds two channels and each loaded weight two pixels. The compiler stored
 * the weights as int16, so no kernel unpacks a weight word for every pixel pair. The rows live
 * in `scratch`:
 *   - DSP: int16 halfword pairs, interleaved per four values as [A(0,1) A(2,3) B(0,1) B(2,3)],
 *     so that one SMLAD multiplies a pair of inputs with a word of two weights. They take
 *     4 * k4 bytes, plus 2 * k4 bytes of int8 staging when in_c is not a multiple of 4;
 *   - MVE and plain C: int8 rows of k4 bytes (none at all for 1x1 filters with stride 1 and no
 *     padding: those rows are the input itself).
 * Padding taps hold the input zero point, which adds nothing once the folded bias is counted.
 */
#include "tc_kernels_fast.h"

/* Up to three bytes, written out: compilers turn short byte loops into library calls. */
TC_INLINE void tc_copy_tail(int8_t *dst, const int8_t *src, int32_t n, int8_t pad)
{
    if (n > 0) {
        dst[0] = src ? src[0] : pad;
    }
    if (n > 1) {
        dst[1] = src ? src[1] : pad;
    }
    if (n > 2) {
        dst[2] = src ? src[2] : pad;
    }
}

/* Bytes of one filter tap run: copy n values, or fill them with the pad value; words first. */
TC_INLINE void tc_copy_or_fill(int8_t *dst, const int8_t *src, int32_t n, int8_t pad)
{
    const int32_t whole = n & ~3;
    if (src == NULL) {
        if (whole > 0) {
            memset(dst, pad, (size_t)whole);
        }
    } else {
        for (int32_t i = 0; i < whole; i += 4) {
            const uint32_t word = tc_load32(src + i);
            memcpy(dst + i, &word, 4);
        }
    }
    tc_copy_tail(dst + whole, src ? src + whole : NULL, n - whole, pad);
}

/* Copy `rows` runs of `run` bytes, `stride` apart, to dst, then `tail` (< 4) pad bytes. */
static void tc_gather_interior(int8_t *dst, const int8_t *src, size_t stride, int32_t rows, int32_t run,
                               int32_t tail, int8_t pad)
{
    const int32_t whole = run & ~3;
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t i = 0; i < whole; i += 4) {
            const uint32_t word = tc_load32(src + i);
            memcpy(dst + i, &word, 4);
        }
        tc_copy_tail(dst + whole, src + whole, run - whole, pad);
        dst += run;
        src += stride;
    }
    tc_copy_tail(dst, NULL, tail, pad);
}

/* Gather the receptive field of output pixel (b, oy, ox) into k4 int8 values. */
static void tc_gather_row(const tc_fast_conv_params *p, const int8_t *input, int32_t b, int32_t oy, int32_t ox,
                          int8_t *dst)
{
    const int8_t pad = (int8_t)p->pad_value;
    const int32_t in_c = p->in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    const int32_t ix0 = ox * p->stride_w - p->pad_left;
    const int8_t *batch = input + (size_t)b * p->in_h * p->in_w * in_c;
    const int32_t run = p->filter_w * in_c;
    int8_t *d = dst;
    if (p->dilation_h == 1 && p->dilation_w == 1 && iy0 >= 0 && iy0 + p->filter_h <= p->in_h && ix0 >= 0 &&
        ix0 + p->filter_w <= p->in_w) {
        /* The window lies inside the input: one contiguous run per filter row. */
        tc_gather_interior(d, batch + ((size_t)iy0 * p->in_w + (size_t)ix0) * in_c, (size_t)p->in_w * in_c,
                           p->filter_h, run, p->k4 - p->k, pad);
        return;
    }
    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
        const int32_t iy = iy0 + fy * p->dilation_h;
        if (iy < 0 || iy >= p->in_h) {
            tc_copy_or_fill(d, NULL, run, pad);
            d += run;
            continue;
        }
        const int8_t *row = batch + (size_t)iy * p->in_w * in_c;
        if (p->dilation_w == 1) {
            /* Taps [lead, lead + count) lie inside the row; the others are padding. */
            int32_t lead = 0;
            if (ix0 < 0) {
                lead = -ix0 < p->filter_w ? -ix0 : p->filter_w;
            }
            const int32_t end = p->in_w - ix0 < p->filter_w ? p->in_w - ix0 : p->filter_w;
            const int32_t count = end > lead ? end - lead : 0;
            tc_copy_or_fill(d, NULL, lead * in_c, pad);
            tc_copy_or_fill(d + lead * in_c, row + (ptrdiff_t)(ix0 + lead) * in_c, count * in_c, pad);
            tc_copy_or_fill(d + (lead + count) * in_c, NULL, run - (lead + count) * in_c, pad);
            d += run;
            continue;
        }
        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
            const int32_t ix = ix0 + fx * p->dilation_w;
            const int valid = ix >= 0 && ix < p->in_w;
            tc_copy_or_fill(d, valid ? row + (size_t)ix * in_c : NULL, in_c, pad);
            d += in_c;
        }
    }
    for (int32_t i = p->k; i < p->k4; ++i) {
        dst[i] = pad;
    }
}

#if TC_FAST_DSP && !TC_FAST_MVE
/*
 * Sign-extend the four bytes of w into two halfword pairs at dst[0], dst[1]: values (0, 1) and
 * (2, 3) to match int16 weight words (`wide`), else (0, 2) and (1, 3), the order in which SXTB16
 * unpacks an int8 weight word.
 */
TC_INLINE void tc_expand_word(uint32_t w, uint32_t *dst, int wide)
{
    const uint32_t x02 = __sxtb16(w), x13 = tc_sxtb16_ror8(w);
    if (wide) {
        dst[0] = (x02 & 0xffffu) | (x13 << 16);
        dst[1] = (x02 >> 16) | (x13 & 0xffff0000u);
    } else {
        dst[0] = x02;
        dst[1] = x13;
    }
}

/* Expand n int8 values (n a multiple of 4, src 4-byte aligned or not) into the slot `dst`. */
TC_INLINE void tc_expand_words(const int8_t *src, int32_t n, uint32_t *dst, int wide)
{
    for (int32_t i = 0; i < n; i += 4) {
        tc_expand_word(tc_load32(src + i), dst, wide);
        dst += 4;
    }
}

/* Expand a row of n values that may end short of a multiple of 4 (the rest reads as 0). */
TC_INLINE void tc_expand_row(const int8_t *src, int32_t n, uint32_t *dst, int wide)
{
    const int32_t whole = n & ~3;
    tc_expand_words(src, whole, dst, wide);
    if (whole < n) {
        uint32_t w = 0;
        for (int32_t i = whole; i < n; ++i) {
            w |= (uint32_t)(uint8_t)src[i] << (8 * (i - whole));
        }
        tc_expand_word(w, dst + whole, wide);
    }
}

/* Expand the receptive field of (b, oy, ox) straight from the input; needs in_c % 4 == 0. */
TC_INLINE void tc_expand_taps(const tc_fast_conv_params *p, const int8_t *input, int32_t b, int32_t oy,
                              int32_t ox, uint32_t *dst, int wide)
{
    const int32_t in_c = p->in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_top;
    const int32_t ix0 = ox * p->stride_w - p->pad_left;
    const int8_t *batch = input + (size_t)b * p->in_h * p->in_w * in_c;
    const uint32_t pad_word = (uint32_t)(uint8_t)p->pad_value * 0x01010101u;
    const uint32_t pad16 = __sxtb16(pad_word);
    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
        const int32_t iy = iy0 + fy * p->dilation_h;
        const int row_valid = iy >= 0 && iy < p->in_h;
        const int8_t *row = batch + (size_t)iy * p->in_w * in_c;
        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
            const int32_t ix = ix0 + fx * p->dilation_w;
            if (row_valid && ix >= 0 && ix < p->in_w) {
                tc_expand_words(row + (size_t)ix * in_c, in_c, dst, wide);
                dst += in_c;
            } else {
                for (int32_t i = 0; i < in_c; i += 4) {
                    dst[0] = pad16;
                    dst[1] = pad16;
                    dst += 4;
                }
            }
        }
    }
}
#endif

/* The 2x2 block: pixels A and B (rows a, b) times channels 0 and 1 (weight rows w0, w1). */
typedef struct {
    int32_t s00, s01, s10, s11;
} tc_acc4;

#if TC_FAST_MVE
/* Rows a, b of int8 inputs times int16 weight rows w0, w1, eight values per VMLADAVA. */
TC_INLINE void tc_dot_2x2(const int8_t *a, const int8_t *b, const int16_t *w0, const int16_t *w1, int32_t k,
                          tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    int32_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const int16x8_t va = vldrbq_s16(a + i);
        const int16x8_t vb = vldrbq_s16(b + i);
        const int16x8_t v0 = vldrhq_s16(w0 + i);
        const int16x8_t v1 = vldrhq_s16(w1 + i);
        s00 = vmladavaq_s16(s00, va, v0);
        s01 = vmladavaq_s16(s01, va, v1);
        s10 = vmladavaq_s16(s10, vb, v0);
        s11 = vmladavaq_s16(s11, vb, v1);
    }
    if (i < k) {
        const mve_pred16_t pr = vctp16q((uint32_t)(k - i));
        const int16x8_t va = vldrbq_z_s16(a + i, pr);
        const int16x8_t vb = vldrbq_z_s16(b + i, pr);
        const int16x8_t v0 = vldrhq_z_s16(w0 + i, pr);
        const int16x8_t v1 = vldrhq_z_s16(w1 + i, pr);
        s00 = vmladavaq_s16(s00, va, v0);
        s01 = vmladavaq_s16(s01, va, v1);
        s10 = vmladavaq_s16(s10, vb, v0);
        s11 = vmladavaq_s16(s11, vb, v1);
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}

/* Rows a, b of int8 inputs times int8 weight rows w0, w1, sixteen values per VMLADAVA. */
TC_INLINE void tc_dot_2x2_narrow(const int8_t *a, const int8_t *b, const int8_t *w0, const int8_t *w1, int32_t k,
                                 tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    int32_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const int8x16_t va = vldrbq_s8(a + i);
        const int8x16_t vb = vldrbq_s8(b + i);
        const int8x16_t v0 = vldrbq_s8(w0 + i);
        const int8x16_t v1 = vldrbq_s8(w1 + i);
        s00 = vmladavaq_s8(s00, va, v0);
        s01 = vmladavaq_s8(s01, va, v1);
        s10 = vmladavaq_s8(s10, vb, v0);
        s11 = vmladavaq_s8(s11, vb, v1);
    }
    if (i < k) {
        const mve_pred16_t pr = vctp8q((uint32_t)(k - i));
        const int8x16_t va = vldrbq_z_s8(a + i, pr);
        const int8x16_t vb = vldrbq_z_s8(b + i, pr);
        const int8x16_t v0 = vldrbq_z_s8(w0 + i, pr);
        const int8x16_t v1 = vldrbq_z_s8(w1 + i, pr);
        s00 = vmladavaq_s8(s00, va, v0);
        s01 = vmladavaq_s8(s01, va, v1);
        s10 = vmladavaq_s8(s10, vb, v0);
        s11 = vmladavaq_s8(s11, vb, v1);
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}
#elif TC_FAST_DSP
/* x: interleaved int16 pair slot; w0, w1: int16 weight rows as words of two; groups = k4 / 4. */
TC_INLINE void tc_dot_2x2(const uint32_t *x, const uint32_t *w0, const uint32_t *w1, int32_t groups,
                          tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    for (int32_t g = groups; g > 0; --g) {
        const uint32_t a01 = x[0], a23 = x[1], b01 = x[2], b23 = x[3];
        x += 4;
        const uint32_t v01 = w0[0], v23 = w0[1], u01 = w1[0], u23 = w1[1];
        w0 += 2;
        w1 += 2;
        s00 = __smlad(a01, v01, s00);
        s00 = __smlad(a23, v23, s00);
        s10 = __smlad(b01, v01, s10);
        s10 = __smlad(b23, v23, s10);
        s01 = __smlad(a01, u01, s01);
        s01 = __smlad(a23, u23, s01);
        s11 = __smlad(b01, u01, s11);
        s11 = __smlad(b23, u23, s11);
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}

/* As tc_dot_2x2 with int8 weight rows (one word of four weights per group, unpacked by SXTB16). */
TC_INLINE void tc_dot_2x2_narrow(const uint32_t *x, const uint32_t *w0, const uint32_t *w1, int32_t groups,
                                 tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    for (int32_t g = groups; g > 0; --g) {
        const uint32_t a02 = x[0], a13 = x[1], b02 = x[2], b13 = x[3];
        x += 4;
        uint32_t w = *w0++;
        uint32_t w02 = __sxtb16(w), w13 = tc_sxtb16_ror8(w);
        s00 = __smlad(a02, w02, s00);
        s00 = __smlad(a13, w13, s00);
        s10 = __smlad(b02, w02, s10);
        s10 = __smlad(b13, w13, s10);
        w = *w1++;
        w02 = __sxtb16(w);
        w13 = tc_sxtb16_ror8(w);
        s01 = __smlad(a02, w02, s01);
        s01 = __smlad(a13, w13, s01);
        s11 = __smlad(b02, w02, s11);
        s11 = __smlad(b13, w13, s11);
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}

#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TC_FAST_NO_ASM)
#define TC_CONV_ASM 1
/*
 * All channel pairs of one pixel pair in assembly. The multiply-add loop needs all fourteen
 * registers, fixed ones because the register list of LDM must ascend. A compiler would spill the
 * channel loop's state around it on every pair, so here that state lives in stack slots ("m"
 * operands). Per four values of k: one LDM of both pixels' halfword pairs, one LDRD of two weight
 * words per channel and eight SMLADs, 11 instructions for 16 multiply-adds; the loop runs two
 * groups per pass and enters halfway when the group count is odd. Then per output: the fast
 * requantization (the record's addend already holds the output zero point), SSAT, and two
 * halfword stores per pair; with a partial clamp range the four results are clamped at once
 * with SSUB8 and SEL.
 */
#define TC_PAIR_GROUP                                                                                          \
    "ldmia   r10!, {r0, r1, r2, r3}\n\t"                                                                       \
    "ldrd    r4, r5, [r11], #8\n\t"                                                                            \
    "smlad   r6, r0, r4, r6\n\t"                                                                               \
    "smlad   r8, r2, r4, r8\n\t"                                                                               \
    "smlad   r6, r1, r5, r6\n\t"                                                                               \
    "smlad   r8, r3, r5, r8\n\t"                                                                               \
    "ldrd    r4, r5, [r12], #8\n\t"                                                                            \
    "smlad   r7, r0, r4, r7\n\t"                                                                               \
    "smlad   r9, r2, r4, r9\n\t"                                                                               \
    "smlad   r7, r1, r5, r7\n\t"                                                                               \
    "smlad   r9, r3, r5, r9\n\t"

/* With int8 weights: one load and two SXTB16 per weight word, 15 instructions per group. */
#define TC_PAIR_GROUP_NARROW                                                                                   \
    "ldmia   r10!, {r0, r1, r2, r3}\n\t"                                                                       \
    "ldr     r4, [r11], #4\n\t"                                                                                \
    "sxtb16  r5, r4\n\t"                                                                                       \
    "sxtb16  r4, r4, ror #8\n\t"                                                                               \
    "smlad   r6, r0, r5, r6\n\t"                                                                               \
    "smlad   r8, r2, r5, r8\n\t"                                                                               \
    "smlad   r6, r1, r4, r6\n\t"                                                                               \
    "smlad   r8, r3, r4, r8\n\t"                                                                               \
    "ldr     r4, [r12], #4\n\t"                                                                                \
    "sxtb16  r5, r4\n\t"                                                                                       \
    "sxtb16  r4, r4, ror #8\n\t"                                                                               \
    "smlad   r7, r0, r5, r7\n\t"                                                                               \
    "smlad   r9, r2, r5, r9\n\t"                                                                               \
    "smlad   r7, r1, r4, r7\n\t"                                                                               \
    "smlad   r9, r3, r4, r9\n\t"

/* acc (in place, not yet doubled) = SMMLAR(2 acc, multiplier r1, addend r2 + sign) >> shift r3. */
#define TC_PAIR_REQUANT_NARROW(acc)                                                                            \
    "add     r4, r2, " acc ", asr #31\n\t"                                                                     \
    "lsl     r5, " acc ", #1\n\t"                                                                              \
    "smmlar  " acc ", r5, r1, r4\n\t"                                                                          \
    "asr     " acc ", " acc ", r3\n\t"

/* acc (in place, already doubled) = SMMLAR(acc, multiplier r1, addend r2 + sign) >> shift r3. */
#define TC_PAIR_REQUANT(acc)                                                                                   \
    "add     r4, r2, " acc ", asr #31\n\t"                                                                     \
    "smmlar  " acc ", " acc ", r1, r4\n\t"                                                                     \
    "asr     " acc ", " acc ", r3\n\t"

#define TC_PAIR_HEAD(GROUP, REQUANT)                                                                           \
    "0:\n\t"                                                                                                   \
    "ldr     r10, %[x]\n\t"                                                                                    \
    "ldr     r0, %[rq]\n\t"                                                                                    \
    "ldr     r6, [r0]\n\t"                                                                                     \
    "ldr     r7, [r0, #16]\n\t"                                                                                \
    "mov     r8, r6\n\t"                                                                                       \
    "mov     r9, r7\n\t"                                                                                       \
    "ldr     r0, %[groups]\n\t"                                                                                \
    "lsrs    lr, r0, #1\n\t"                                                                                   \
    "bcc     1f\n\t"                                                                                           \
    "adds    lr, lr, #1\n\t"                                                                                   \
    "b       2f\n\t"                                                                                           \
    "1:\n\t" GROUP "2:\n\t" GROUP                                                                              \
    "subs    lr, lr, #1\n\t"                                                                                   \
    "bne     1b\n\t"                                                                                           \
    "ldr     r10, %[rq]\n\t"                                                                                   \
    "ldmia   r10!, {r0, r1, r2, r3}\n\t" REQUANT("r6") REQUANT("r8")                                           \
    "ldmia   r10!, {r0, r1, r2, r3}\n\t" REQUANT("r7") REQUANT("r9")                                           \
    "str     r10, %[rq]\n\t"                                                                                   \
    "ssat    r6, #8, r6\n\t"                                                                                   \
    "ssat    r7, #8, r7\n\t"                                                                                   \
    "ssat    r8, #8, r8\n\t"                                                                                   \
    "ssat    r9, #8, r9\n\t"                                                                                   \
    "bfi     r6, r7, #8, #8\n\t"                                                                               \
    "bfi     r8, r9, #8, #8\n\t"

#define TC_PAIR_CLAMP                                                                                          \
    "pkhbt   r6, r6, r8, lsl #16\n\t"                                                                          \
    "ldr     r0, %[lo]\n\t"                                                                                    \
    "ssub8   r1, r6, r0\n\t"                                                                                   \
    "sel     r6, r6, r0\n\t"                                                                                   \
    "ldr     r0, %[hi]\n\t"                                                                                    \
    "ssub8   r1, r0, r6\n\t"                                                                                   \
    "sel     r6, r6, r0\n\t"                                                                                   \
    "lsr     r8, r6, #16\n\t"

#define TC_PAIR_TAIL                                                                                           \
    "ldr     r0, %[oa]\n\t"                                                                                    \
    "strh    r6, [r0], #2\n\t"                                                                                 \
    "str     r0, %[oa]\n\t"                                                                                    \
    "ldr     r0, %[ob]\n\t"                                                                                    \
    "strh    r8, [r0], #2\n\t"                                                                                 \
    "str     r0, %[ob]\n\t"                                                                                    \
    "ldr     r0, %[row]\n\t"                                                                                   \
    "mov     r11, r12\n\t"                                                                                     \
    "add     r12, r12, r0\n\t"                                                                                 \
    "ldr     r0, %[pairs]\n\t"                                                                                 \
    "subs    r0, r0, #1\n\t"                                                                                   \
    "str     r0, %[pairs]\n\t"                                                                                 \
    "bne     0b\n\t"

#define TC_PAIR_OPERANDS                                                                                       \
    : [rq] "+m"(rq), [oa] "+m"(out_a), [ob] "+m"(out_b), [pairs] "+m"(pairs), "+r"(w0), "+r"(w1)              \
    : [x] "m"(x), [groups] "m"(groups), [row] "m"(row_bytes), [lo] "m"(lo4), [hi] "m"(hi4)                  \
    : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "lr", "cc", "memory"

/*
 * Output channels 0 .. 2 * pairs - 1 of pixels A and B: doubled int16 weights start at row 0,
 * `rq` at record 0 (fast records), outputs at out_a and out_b.
 */
static void tc_conv_pairs_wide(const uint32_t *x, const uint32_t *weights, int32_t groups, int32_t pairs,
                               const int32_t *rq, int8_t *out_a, int8_t *out_b, int32_t lo, int32_t hi, int full)
{
    const int32_t row_bytes = 8 * groups;
    register const uint32_t *w0 __asm__("r11") = weights;
    register const uint32_t *w1 __asm__("r12") = weights + 2 * groups;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    if (full) {
        __asm__ volatile(TC_PAIR_HEAD(TC_PAIR_GROUP, TC_PAIR_REQUANT) TC_PAIR_TAIL TC_PAIR_OPERANDS);
    } else {
        __asm__ volatile(TC_PAIR_HEAD(TC_PAIR_GROUP, TC_PAIR_REQUANT) TC_PAIR_CLAMP TC_PAIR_TAIL TC_PAIR_OPERANDS);
    }
}

/* As tc_conv_pairs_wide with int8 weight rows. */
static void tc_conv_pairs_narrow(const uint32_t *x, const uint32_t *weights, int32_t groups, int32_t pairs,
                                 const int32_t *rq, int8_t *out_a, int8_t *out_b, int32_t lo, int32_t hi, int full)
{
    const int32_t row_bytes = 4 * groups;
    register const uint32_t *w0 __asm__("r11") = weights;
    register const uint32_t *w1 __asm__("r12") = weights + groups;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    if (full) {
        __asm__ volatile(TC_PAIR_HEAD(TC_PAIR_GROUP_NARROW, TC_PAIR_REQUANT_NARROW) TC_PAIR_TAIL TC_PAIR_OPERANDS);
    } else {
        __asm__ volatile(TC_PAIR_HEAD(TC_PAIR_GROUP_NARROW, TC_PAIR_REQUANT_NARROW) TC_PAIR_CLAMP TC_PAIR_TAIL
                         TC_PAIR_OPERANDS);
    }
}
#endif
#else
/* Plain C. The fixed 16-value inner loop lets compilers vectorize it (GCC does at -O2 on x86). */
TC_INLINE void tc_dot_2x2(const int8_t *a, const int8_t *b, const int16_t *w0, const int16_t *w1, int32_t k,
                          tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    int32_t i = 0;
    for (; i + 16 <= k; i += 16) {
        int32_t t00 = 0, t01 = 0, t10 = 0, t11 = 0;
        for (int32_t j = 0; j < 16; ++j) {
            const int32_t xa = a[i + j], xb = b[i + j], v0 = w0[i + j], v1 = w1[i + j];
            t00 += xa * v0;
            t01 += xa * v1;
            t10 += xb * v0;
            t11 += xb * v1;
        }
        s00 += t00;
        s01 += t01;
        s10 += t10;
        s11 += t11;
    }
    for (; i < k; ++i) {
        const int32_t xa = a[i], xb = b[i], v0 = w0[i], v1 = w1[i];
        s00 += xa * v0;
        s01 += xa * v1;
        s10 += xb * v0;
        s11 += xb * v1;
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}

/* As tc_dot_2x2 with int8 weight rows. */
TC_INLINE void tc_dot_2x2_narrow(const int8_t *a, const int8_t *b, const int8_t *w0, const int8_t *w1, int32_t k,
                                 tc_acc4 *s)
{
    int32_t s00 = s->s00, s01 = s->s01, s10 = s->s10, s11 = s->s11;
    int32_t i = 0;
    for (; i + 16 <= k; i += 16) {
        int32_t t00 = 0, t01 = 0, t10 = 0, t11 = 0;
        for (int32_t j = 0; j < 16; ++j) {
            const int32_t xa = a[i + j], xb = b[i + j], v0 = w0[i + j], v1 = w1[i + j];
            t00 += xa * v0;
            t01 += xa * v1;
            t10 += xb * v0;
            t11 += xb * v1;
        }
        s00 += t00;
        s01 += t01;
        s10 += t10;
        s11 += t11;
    }
    for (; i < k; ++i) {
        const int32_t xa = a[i], xb = b[i], v0 = w0[i], v1 = w1[i];
        s00 += xa * v0;
        s01 += xa * v1;
        s10 += xb * v0;
        s11 += xb * v1;
    }
    s->s00 = s00;
    s->s01 = s01;
    s->s10 = s10;
    s->s11 = s11;
}
#endif

TC_INLINE void tc_conv_body(const tc_fast_conv_params *p, const int8_t *input, int8_t *output, void *scratch,
                            const int fast, const int full, const int wide)
{
    const tc_fast_clamp c = tc_fast_clamp_of(&p->out);
    const int32_t *rq = p->out.rq;
    const int32_t out_c = p->out_c;
    const int32_t k = p->k;
    const int32_t k4 = p->k4;
    const int32_t out_h = p->out_h, out_w = p->out_w, in_c = p->in_c;
    const int32_t pixels = p->batches * out_h * out_w;
    const int direct = p->filter_h == 1 && p->filter_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                       p->pad_top == 0 && p->pad_left == 0 && p->in_h == out_h && p->in_w == out_w;
    const int8_t *weights = (const int8_t *)(const void *)p->weights;
    const int32_t row_bytes = wide ? 2 * k4 : k4;   /* one weight row */
    int32_t b = 0, oy = 0, ox = 0;   /* coordinates of pixel A */

    for (int32_t pix = 0; pix < pixels; pix += 2) {
        const int two = pix + 1 < pixels;
        int32_t b2 = b, oy2 = oy, ox2 = ox + 1;   /* pixel B */
        if (ox2 == out_w) {
            ox2 = 0;
            if (++oy2 == out_h) {
                oy2 = 0;
                ++b2;
            }
        }
        if (!two) {
            b2 = b;
            oy2 = oy;
            ox2 = ox;
        }
#if TC_FAST_DSP && !TC_FAST_MVE
        uint32_t *x = (uint32_t *)scratch;
        if (direct) {
            tc_expand_row(input + (size_t)pix * in_c, k, x, wide);
            tc_expand_row(input + (size_t)(two ? pix + 1 : pix) * in_c, k, x + 2, wide);
        } else if ((in_c & 3) == 0) {
            tc_expand_taps(p, input, b, oy, ox, x, wide);
            tc_expand_taps(p, input, b2, oy2, ox2, x + 2, wide);
        } else {
            int8_t *stage = (int8_t *)scratch + 4 * (size_t)k4;
            tc_gather_row(p, input, b, oy, ox, stage);
            tc_expand_words(stage, k4, x, wide);
            tc_gather_row(p, input, b2, oy2, ox2, stage);
            tc_expand_words(stage, k4, x + 2, wide);
        }
#else
        const int8_t *row_a, *row_b;
        if (direct) {
            row_a = input + (size_t)pix * in_c;
            row_b = two ? row_a + in_c : row_a;
        } else {
            int8_t *rows = (int8_t *)scratch;
            tc_gather_row(p, input, b, oy, ox, rows);
            tc_gather_row(p, input, b2, oy2, ox2, rows + k4);
            row_a = rows;
            row_b = rows + k4;
        }
#endif
        int8_t *out_a = output + (size_t)pix * out_c;
        int8_t *out_b = out_a + out_c;
        int32_t first = 0;
#if TC_FAST_DSP && !TC_FAST_MVE && defined(TC_CONV_ASM)
        if (fast && two && out_c >= 2) {
            const uint32_t *words = (const uint32_t *)(const void *)weights;
            if (wide) {
                tc_conv_pairs_wide(x, words, k4 >> 2, out_c >> 1, rq, out_a, out_b, c.lo, c.hi, full);
            } else {
                tc_conv_pairs_narrow(x, words, k4 >> 2, out_c >> 1, rq, out_a, out_b, c.lo, c.hi, full);
            }
            first = out_c & ~1;
        }
#endif
        for (int32_t oc = first; oc < out_c; oc += 2) {
            const tc_fast_rq q0 = tc_fast_rq_of(rq + 4 * oc);
            const tc_fast_rq q1 = tc_fast_rq_of(rq + 4 * oc + 4);
            tc_acc4 s = {q0.bias, q1.bias, q0.bias, q1.bias};
            const int8_t *row0 = weights + (size_t)oc * row_bytes;
#if TC_FAST_DSP && !TC_FAST_MVE
            const uint32_t *w0 = (const uint32_t *)(const void *)row0;
            const uint32_t *w1 = (const uint32_t *)(const void *)(row0 + row_bytes);
            if (wide) {
                tc_dot_2x2(x, w0, w1, k4 >> 2, &s);
            } else {
                tc_dot_2x2_narrow(x, w0, w1, k4 >> 2, &s);
            }
#else
            if (wide) {
                const int16_t *w0 = (const int16_t *)(const void *)row0;
                tc_dot_2x2(row_a, row_b, w0, w0 + k4, k, &s);
            } else {
                tc_dot_2x2_narrow(row_a, row_b, row0, row0 + k4, k, &s);
            }
#endif
            if (wide) {
                /* The doubled weights and bias give twice the accumulator, an even number. */
                s.s00 /= 2;
                s.s01 /= 2;
                s.s10 /= 2;
                s.s11 /= 2;
            }
            const int8_t v00 = tc_fast_store(c, q0, s.s00, fast, full);
            const int8_t v01 = tc_fast_store(c, q1, s.s01, fast, full);
            const int8_t v10 = tc_fast_store(c, q0, s.s10, fast, full);
            const int8_t v11 = tc_fast_store(c, q1, s.s11, fast, full);
            out_a[oc] = v00;
            if (oc + 1 < out_c) {
                out_a[oc + 1] = v01;
            }
            if (two) {
                out_b[oc] = v10;
                if (oc + 1 < out_c) {
                    out_b[oc + 1] = v11;
                }
            }
        }
        /* Advance pixel A by two. */
        b = b2;
        oy = oy2;
        ox = ox2 + 1;
        if (ox == out_w) {
            ox = 0;
            if (++oy == out_h) {
                oy = 0;
                ++b;
            }
        }
    }
}

/* The body for one requantization variant, with int16 (`wide`) or int8 weights. */
static void tc_conv_wide(const tc_fast_conv_params *p, const int8_t *input, int8_t *output, void *scratch,
                         int variant)
{
    switch (variant) {
    case 2:
        tc_conv_body(p, input, output, scratch, 1, 1, 1);
        break;
    case 1:
        tc_conv_body(p, input, output, scratch, 1, 0, 1);
        break;
    default:
        tc_conv_body(p, input, output, scratch, 0, 0, 1);
        break;
    }
}

static void tc_conv_narrow(const tc_fast_conv_params *p, const int8_t *input, int8_t *output, void *scratch,
                           int variant)
{
    switch (variant) {
    case 2:
        tc_conv_body(p, input, output, scratch, 1, 1, 0);
        break;
    case 1:
        tc_conv_body(p, input, output, scratch, 1, 0, 0);
        break;
    default:
        tc_conv_body(p, input, output, scratch, 0, 0, 0);
        break;
    }
}

tc_status tc_fast_conv_s8(const tc_fast_conv_params *p, const int8_t *input, int8_t *output, void *scratch)
{
    if (scratch == NULL) {
        return TC_ERROR_ARGUMENT;
    }
    if (p->wide) {
        tc_conv_wide(p, input, output, scratch, tc_fast_variant(&p->out));
    } else {
        tc_conv_narrow(p, input, output, scratch, tc_fast_variant(&p->out));
    }
    return TC_OK;
}
