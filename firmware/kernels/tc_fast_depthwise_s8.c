/*
 * Int8 depthwise convolution with depth multiplier 1, bit-exact with tc_depthwise_conv2d_s8
 * (which rounds twice in both rounding modes, as the references do).
 *
 * The kernel reads its input through a ring of `ring_rows` rows in `scratch`. The ring contains
 * the input rows that the current output row needs, widened by the padding on both sides and
 * filled with the input zero point wherever the padded input has no data. A tap in the padding then contributes
 * w * (zp + offset) = 0, exactly what a skipped tap contributes in the reference, so every output
 * pixel runs all filter taps with no bounds checks, and the compiler could fold the input offset
 * into the bias: the kernel multiplies raw int8 values. The ring also makes the kernel safe in
 * place: it copies every input row before any output row can overwrite it (an output row never
 * extends past the input rows copied for it), so the output may share the input's memory.
 *
 * Channels go four at a time. On DSP targets one 32-bit load fetches the four channels of a tap
 * and SXTB16 unpacks them into two halfword pairs; the compiler stored the weights as int16 in
 * the matching channel order (0, 2, 1, 3), so SMLABB and SMLATT multiply each lane with its own
 * weight. Full groups of 3x3 filters run in assembly, requantization included.
 */
#include "tc_kernels_fast.h"

typedef struct {
    int32_t a0, a1, a2, a3;
} tc_dw_acc;

/* Copy n bytes; whole words when both ends allow it (the C library copy may go byte by byte). */
TC_INLINE void tc_dw_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    if ((((uintptr_t)dst | (uintptr_t)src | (uintptr_t)n) & 3u) == 0) {
        uint32_t *d = (uint32_t *)(void *)dst;
        const uint32_t *s = (const uint32_t *)(const void *)src;
        for (int32_t i = n >> 2; i > 0; --i) {
            *d++ = *s++;
        }
    } else {
        memcpy(dst, src, (size_t)n);
    }
}

TC_INLINE void tc_dw_fill(int8_t *dst, int8_t value, int32_t n)
{
    if ((((uintptr_t)dst | (uintptr_t)n) & 3u) == 0) {
        uint32_t *d = (uint32_t *)(void *)dst;
        const uint32_t word = (uint32_t)(uint8_t)value * 0x01010101u;
        for (int32_t i = n >> 2; i > 0; --i) {
            *d++ = word;
        }
    } else {
        memset(dst, value, (size_t)n);
    }
}

/*
 * Four channels (c..c+3 in lanes 0..3) of one output pixel: `rows[fy] + col` is channel c of the
 * filter's tap (fy, 0) in the ring, `w` the group's weights. `lanes` < 4 only for the last group
 * of an in_c that is not a multiple of 4; `kh` and `kw` are the filter size (constants where the
 * caller knows them, so the tap loops unroll).
 */
TC_INLINE void tc_dw_group(const int8_t *const *rows, ptrdiff_t col, int32_t col_step, int32_t kh, int32_t kw,
                           const uint32_t *w, int lanes, tc_dw_acc *s)
{
    int32_t a0 = s->a0, a1 = s->a1, a2 = s->a2, a3 = s->a3;
#if TC_FAST_DSP
    if (lanes == 4) {
        for (int32_t fy = 0; fy < kh; ++fy) {
            const int8_t *ip = rows[fy] + col;
            for (int32_t fx = 0; fx < kw; ++fx) {
                const uint32_t x = tc_load32(ip);
                ip += col_step;
                const uint32_t x02 = __sxtb16(x);
                const uint32_t x13 = tc_sxtb16_ror8(x);
                a0 = __smlabb((int32_t)x02, (int32_t)w[0], a0);
                a2 = __smlatt((int32_t)x02, (int32_t)w[0], a2);
                a1 = __smlabb((int32_t)x13, (int32_t)w[1], a1);
                a3 = __smlatt((int32_t)x13, (int32_t)w[1], a3);
                w += 2;
            }
        }
        s->a0 = a0;
        s->a1 = a1;
        s->a2 = a2;
        s->a3 = a3;
        return;
    }
#endif
    const int16_t *wp = (const int16_t *)(const void *)w;
    for (int32_t fy = 0; fy < kh; ++fy) {
        const int8_t *ip = rows[fy] + col;
        for (int32_t fx = 0; fx < kw; ++fx) {
            /* The weights hold channels (0, 2, 1, 3) of the group in lanes 0..3. */
            a0 += ip[0] * wp[0];
            if (lanes == 4) {
                a1 += ip[1] * wp[2];
                a2 += ip[2] * wp[1];
                a3 += ip[3] * wp[3];
            } else {
                if (lanes > 1) {
                    a1 += ip[1] * wp[2];
                }
                if (lanes > 2) {
                    a2 += ip[2] * wp[1];
                }
            }
            ip += col_step;
            wp += 4;
        }
    }
    s->a0 = a0;
    s->a1 = a1;
    s->a2 = a2;
    s->a3 = a3;
}

#if TC_FAST_DSP && defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(TC_FAST_NO_ASM)
#define TC_DW_ASM 1
/*
 * All full channel groups of one output pixel of a 3x3 filter with dilation 1, in assembly: the
 * taps keep fourteen values live (LDM of the records needs ascending fixed registers), which a
 * compiler would spill. Per tap and group it runs one load, two SXTB16, one LDRD of the weights
 * and four halfword multiply-adds. Then each channel loads its record with LDM and requantizes,
 * and each group stores one word (clamped with SSUB8 and SEL when the range is not all of int8).
 * Registers: r4-r7 accumulators, r8-r10 the three filter rows, r11 the channel count (column
 * step), r12 the weights and lr the records, both read in order.
 */
#define TC_DW_TAP(row, column)                                                                                 \
    "ldr     r0, [" row column "]\n\t"                                                                         \
    "sxtb16  r1, r0\n\t"                                                                                       \
    "sxtb16  r0, r0, ror #8\n\t"                                                                               \
    "ldrd    r2, r3, [r12], #8\n\t"                                                                            \
    "smlabb  r4, r1, r2, r4\n\t"                                                                               \
    "smlatt  r6, r1, r2, r6\n\t"                                                                               \
    "smlabb  r5, r0, r3, r5\n\t"                                                                               \
    "smlatt  r7, r0, r3, r7\n\t"

#define TC_DW_ROW(row) TC_DW_TAP(row, "") TC_DW_TAP(row, ", r11") TC_DW_TAP(row, ", r11, lsl #1")

#define TC_DW_REQUANT(acc)                                                                                     \
    "ldmia   lr!, {r0, r1, r2, r3}\n\t"                                                                        \
    "add     r2, r2, " acc ", asr #31\n\t"                                                                     \
    "smmlar  " acc ", " acc ", r1, r2\n\t"                                                                     \
    "asr     " acc ", " acc ", r3\n\t"                                                                         \
    "ssat    " acc ", #8, " acc "\n\t"

#define TC_DW_HEAD                                                                                             \
    "0:\n\t"                                                                                                   \
    "ldr     r4, [lr]\n\t"                                                                                     \
    "ldr     r5, [lr, #16]\n\t"                                                                                \
    "ldr     r6, [lr, #32]\n\t"                                                                                \
    "ldr     r7, [lr, #48]\n\t" TC_DW_ROW("r8") TC_DW_ROW("r9") TC_DW_ROW("r10")                               \
    TC_DW_REQUANT("r4") TC_DW_REQUANT("r5") TC_DW_REQUANT("r6") TC_DW_REQUANT("r7")                            \
    "bfi     r4, r5, #8, #8\n\t"                                                                               \
    "bfi     r4, r6, #16, #8\n\t"                                                                              \
    "bfi     r4, r7, #24, #8\n\t"

#define TC_DW_CLAMP                                                                                            \
    "ldr     r0, %[lo]\n\t"                                                                                    \
    "ssub8   r1, r4, r0\n\t"                                                                                   \
    "sel     r4, r4, r0\n\t"                                                                                   \
    "ldr     r0, %[hi]\n\t"                                                                                    \
    "ssub8   r1, r0, r4\n\t"                                                                                   \
    "sel     r4, r4, r0\n\t"

#define TC_DW_TAIL                                                                                             \
    "ldr     r0, %[out]\n\t"                                                                                   \
    "str     r4, [r0], #4\n\t"                                                                                 \
    "str     r0, %[out]\n\t"                                                                                   \
    "add     r8, r8, #4\n\t"                                                                                   \
    "add     r9, r9, #4\n\t"                                                                                   \
    "add     r10, r10, #4\n\t"                                                                                 \
    "ldr     r0, %[groups]\n\t"                                                                                \
    "subs    r0, r0, #1\n\t"                                                                                   \
    "str     r0, %[groups]\n\t"                                                                                \
    "bne     0b\n\t"

#define TC_DW_OPERANDS                                                                                         \
    : [out] "+m"(out), [groups] "+m"(groups), "+r"(p0), "+r"(p1), "+r"(p2), "+r"(wp), "+r"(rp)                 \
    : [lo] "m"(lo4), [hi] "m"(hi4), "r"(step)                                                                  \
    : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "cc", "memory"

/* Groups 0 .. groups - 1 (groups >= 1) of one pixel; returns nothing, advances nothing outside. */
static void tc_dw_3x3_groups(const int8_t *row0, const int8_t *row1, const int8_t *row2, int32_t in_c,
                             const uint32_t *weights, const int32_t *rq, int8_t *out, int32_t groups, int32_t lo,
                             int32_t hi, int full)
{
    register const int8_t *p0 __asm__("r8") = row0;
    register const int8_t *p1 __asm__("r9") = row1;
    register const int8_t *p2 __asm__("r10") = row2;
    register int32_t step __asm__("r11") = in_c;
    register const uint32_t *wp __asm__("r12") = weights;
    register const int32_t *rp __asm__("lr") = rq;
    const uint32_t lo4 = (uint32_t)(uint8_t)lo * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)hi * 0x01010101u;
    if (full) {
        __asm__ volatile(TC_DW_HEAD TC_DW_TAIL TC_DW_OPERANDS);
    } else {
        __asm__ volatile(TC_DW_HEAD TC_DW_CLAMP TC_DW_TAIL TC_DW_OPERANDS);
    }
}
#endif

/* Load virtual (padded) input row `v` of batch `in` into its ring slot. */
static void tc_dw_load_row(const tc_fast_depthwise_params *p, const int8_t *in, int32_t v, int8_t *ring)
{
    const int32_t in_c = p->in_c;
    const int32_t slot_bytes = p->ring_w * in_c;
    int8_t *slot = ring + (size_t)(v % p->ring_rows) * slot_bytes + (size_t)p->pad_left * in_c;
    const int32_t iy = v - p->pad_top;
    const int32_t cols = p->in_w < p->ring_w - p->pad_left ? p->in_w : p->ring_w - p->pad_left;
    if (iy >= 0 && iy < p->in_h) {
        tc_dw_copy(slot, in + (size_t)iy * p->in_w * in_c, cols * in_c);
    } else {
        tc_dw_fill(slot, (int8_t)-p->input_offset, cols * in_c);
    }
}

/* One output pixel's channel groups from `first` on, in C. */
TC_INLINE void tc_dw_pixel(const int8_t *const *rows, ptrdiff_t col, int32_t col_step, int32_t kh, int32_t kw,
                           int32_t in_c, int32_t first, const uint32_t *weights, const int32_t *rq, int8_t *out,
                           tc_fast_clamp clamp, const int fast, const int full)
{
    const int32_t taps = kh * kw;
    const uint32_t *w = weights + (size_t)first * 2 * taps;
    const int32_t *r = rq + 16 * first;
    for (int32_t c = 4 * first; c < in_c; c += 4) {
        const int lanes = in_c - c >= 4 ? 4 : in_c - c;
        const tc_fast_rq q0 = tc_fast_rq_of(r), q1 = tc_fast_rq_of(r + 4);
        const tc_fast_rq q2 = tc_fast_rq_of(r + 8), q3 = tc_fast_rq_of(r + 12);
        tc_dw_acc s = {q0.bias, q1.bias, q2.bias, q3.bias};
        tc_dw_group(rows, col + c, col_step, kh, kw, w, lanes, &s);
        /* The doubled weights and bias give twice the accumulator, an even number. */
        const int8_t v0 = tc_fast_store(clamp, q0, s.a0 / 2, fast, full);
        const int8_t v1 = tc_fast_store(clamp, q1, s.a1 / 2, fast, full);
        const int8_t v2 = tc_fast_store(clamp, q2, s.a2 / 2, fast, full);
        const int8_t v3 = tc_fast_store(clamp, q3, s.a3 / 2, fast, full);
        out[c] = v0;
        if (lanes > 1) {
            out[c + 1] = v1;
        }
        if (lanes > 2) {
            out[c + 2] = v2;
        }
        if (lanes > 3) {
            out[c + 3] = v3;
        }
        w += 2 * taps;
        r += 16;
    }
}

TC_INLINE void tc_dw_body(const tc_fast_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *ring,
                          const int fast, const int full)
{
    const tc_fast_clamp clamp = tc_fast_clamp_of(&p->out);
    const int32_t *rq = p->out.rq;
    const uint32_t *weights = (const uint32_t *)(const void *)p->weights;
    const int32_t in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w;
    const int32_t kh = p->filter_h, kw = p->filter_w;
    const int32_t slot_bytes = p->ring_w * in_c;
    const int32_t col_stride = p->stride_w * in_c;
    const int32_t col_step = p->dilation_w * in_c;
    const int is_3x3 = kh == 3 && kw == 3 && p->dilation_w == 1;
    const int8_t *rows[TC_FAST_DW_MAX_FILTER_H];
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + (size_t)b * p->in_h * p->in_w * in_c;
        int8_t *out = output + (size_t)b * out_h * out_w * in_c;
        tc_dw_fill(ring, (int8_t)-p->input_offset, p->ring_rows * slot_bytes);
        int32_t loaded = 0;   /* next virtual row to load */
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t v0 = oy * p->stride_h;
            if (loaded < v0) {
                loaded = v0;
            }
            for (; loaded < v0 + p->ring_rows; ++loaded) {
                tc_dw_load_row(p, in, loaded, ring);
            }
            for (int32_t fy = 0; fy < kh; ++fy) {
                rows[fy] = ring + (size_t)((v0 + fy * p->dilation_h) % p->ring_rows) * slot_bytes;
            }
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const ptrdiff_t col = (ptrdiff_t)ox * col_stride;
                if (is_3x3) {
                    int32_t first = 0;
#if defined(TC_DW_ASM)
                    if (fast && in_c >= 4) {
                        tc_dw_3x3_groups(rows[0] + col, rows[1] + col, rows[2] + col, in_c, weights, rq, out,
                                         in_c >> 2, clamp.lo, clamp.hi, full);
                        first = in_c >> 2;
                    }
#endif
                    tc_dw_pixel(rows, col, col_step, 3, 3, in_c, first, weights, rq, out, clamp, fast, full);
                } else {
                    tc_dw_pixel(rows, col, col_step, kh, kw, in_c, 0, weights, rq, out, clamp, fast, full);
                }
                out += in_c;
            }
        }
    }
}

tc_status tc_fast_depthwise_conv2d_s8(const tc_fast_depthwise_params *p, const int8_t *input, int8_t *output,
                                      void *scratch)
{
    if (p->out_c != p->in_c || scratch == NULL || p->filter_h > TC_FAST_DW_MAX_FILTER_H) {
        return TC_ERROR_ARGUMENT;
    }
    int8_t *ring = (int8_t *)scratch;
    switch (tc_fast_variant(&p->out)) {
    case 2:
        tc_dw_body(p, input, output, ring, 1, 1);
        break;
    case 1:
        tc_dw_body(p, input, output, ring, 1, 0);
        break;
    default:
        tc_dw_body(p, input, output, ring, 0, 0);
        break;
    }
    return TC_OK;
}
