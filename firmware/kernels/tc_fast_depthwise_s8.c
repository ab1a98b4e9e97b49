/*
 * Int8 depthwise convolution with depth multiplier 1, bit-exact with tc_depthwise_conv2d_s8
 * (which rounds twice in both rounding modes, as the references do).
 *
 * The kernel reads its input through a ring of `ring_rows` rows in `scratch`: the input rows that
 * the current output row needs, widened by the padding on both sides and filled with the input
 * zero point wherever the padded input has no data (x + offset = 0 there, so those taps add
 * nothing, as skipped taps do in the reference). Every output pixel then runs all filter taps
 * with no bounds checks, and 3x3 filters run fully unrolled. The ring also makes the kernel safe
 * in place: it copies every input row before any output row can overwrite it (an output row
 * never extends past the input rows copied for it), so the output may share the input's memory.
 *
 * Channels go four at a time. On DSP targets one 32-bit load fetches the four channels of a tap
 * and SXTAB16 adds the input offset to two of them at once; the compiler stored the weights as
 * int16 in the matching channel order (0, 2, 1, 3), so SMLABB and SMLATT multiply each lane with
 * its own weight.
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
 * Four channels (c..c+3 in lanes 0..3) of one output pixel; `in` points at channel c of the
 * filter's top-left tap in the ring, `rows[fy]` - rows[0] is the offset of filter row fy.
 * `lanes` < 4 only for the last group of an in_c that is not a multiple of 4.
 */
TC_INLINE void tc_dw_group(const tc_fast_depthwise_params *p, const int8_t *const *rows, ptrdiff_t col,
                           const uint32_t *w, int lanes, tc_dw_acc *s)
{
    const int32_t col_step = p->dilation_w * p->in_c;
    int32_t a0 = s->a0, a1 = s->a1, a2 = s->a2, a3 = s->a3;
#if TC_FAST_DSP
    if (lanes == 4) {
        const uint32_t off = ((uint32_t)p->input_offset & 0xffffu) * 0x10001u;
        for (int32_t fy = 0; fy < p->filter_h; ++fy) {
            const int8_t *ip = rows[fy] + col;
            for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                const uint32_t x = tc_load32(ip);
                ip += col_step;
                const uint32_t x02 = __sxtab16(off, x);
                const uint32_t x13 = tc_sxtab16_ror8(off, x);
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
    const int32_t off = p->input_offset;
    const int16_t *wp = (const int16_t *)(const void *)w;
    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
        const int8_t *ip = rows[fy] + col;
        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
            /* The weights hold channels (0, 2, 1, 3) of the group in lanes 0..3. */
            a0 += ((int32_t)ip[0] + off) * wp[0];
            if (lanes == 4) {
                a1 += ((int32_t)ip[1] + off) * wp[2];
                a2 += ((int32_t)ip[2] + off) * wp[1];
                a3 += ((int32_t)ip[3] + off) * wp[3];
            } else {
                if (lanes > 1) {
                    a1 += ((int32_t)ip[1] + off) * wp[2];
                }
                if (lanes > 2) {
                    a2 += ((int32_t)ip[2] + off) * wp[1];
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

#if TC_FAST_DSP
/* One tap of four channels: weights (wp)[0] for channels 0 and 2, (wp)[1] for 1 and 3. */
#define TC_DW_TAP(ptr, wp)                                                                                     \
    do {                                                                                                       \
        const uint32_t x_ = tc_load32(ptr);                                                                    \
        const uint32_t x02_ = __sxtab16(off, x_);                                                              \
        const uint32_t x13_ = tc_sxtab16_ror8(off, x_);                                                        \
        a0 = __smlabb((int32_t)x02_, (int32_t)(wp)[0], a0);                                                    \
        a2 = __smlatt((int32_t)x02_, (int32_t)(wp)[0], a2);                                                    \
        a1 = __smlabb((int32_t)x13_, (int32_t)(wp)[1], a1);                                                    \
        a3 = __smlatt((int32_t)x13_, (int32_t)(wp)[1], a3);                                                    \
    } while (0)

/* All nine taps of a 3x3 filter with dilation 1 for four channels. */
TC_INLINE void tc_dw_group_3x3(const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t in_c,
                               const uint32_t *w, uint32_t off, tc_dw_acc *s)
{
    int32_t a0 = s->a0, a1 = s->a1, a2 = s->a2, a3 = s->a3;
    TC_DW_TAP(r0, w + 0);
    TC_DW_TAP(r0 + in_c, w + 2);
    TC_DW_TAP(r0 + 2 * in_c, w + 4);
    TC_DW_TAP(r1, w + 6);
    TC_DW_TAP(r1 + in_c, w + 8);
    TC_DW_TAP(r1 + 2 * in_c, w + 10);
    TC_DW_TAP(r2, w + 12);
    TC_DW_TAP(r2 + in_c, w + 14);
    TC_DW_TAP(r2 + 2 * in_c, w + 16);
    s->a0 = a0;
    s->a1 = a1;
    s->a2 = a2;
    s->a3 = a3;
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

TC_INLINE void tc_dw_body(const tc_fast_depthwise_params *p, const int8_t *input, int8_t *output, int8_t *ring,
                          const int fast, const int full)
{
    const tc_fast_clamp clamp = tc_fast_clamp_of(&p->out);
    const int32_t *rq = p->out.rq;
    const uint32_t *weights = (const uint32_t *)(const void *)p->weights;
    const int32_t in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w;
    const int32_t taps = p->filter_h * p->filter_w;
    const int32_t groups = (in_c + 3) >> 2;
    const int32_t slot_bytes = p->ring_w * in_c;
    const int32_t col_stride = p->stride_w * in_c;
    const int8_t *rows[TC_FAST_DW_MAX_FILTER_H];
#if TC_FAST_DSP
    const int is_3x3 = p->filter_h == 3 && p->filter_w == 3 && p->dilation_h == 1 && p->dilation_w == 1;
    const uint32_t off = ((uint32_t)p->input_offset & 0xffffu) * 0x10001u;
#endif
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
            for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                rows[fy] = ring + (size_t)((v0 + fy * p->dilation_h) % p->ring_rows) * slot_bytes;
            }
#if TC_FAST_DSP
            const int8_t *r0 = rows[0], *r1 = rows[p->filter_h > 1 ? 1 : 0], *r2 = rows[p->filter_h > 2 ? 2 : 0];
#endif
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const ptrdiff_t col = (ptrdiff_t)ox * col_stride;
                const uint32_t *w = weights;
                const int32_t *r = rq;
                for (int32_t g = 0; g < groups; ++g) {
                    const int32_t c = 4 * g;
                    const int lanes = in_c - c >= 4 ? 4 : in_c - c;
                    const tc_fast_rq q0 = tc_fast_rq_of(r), q1 = tc_fast_rq_of(r + 4);
                    const tc_fast_rq q2 = tc_fast_rq_of(r + 8), q3 = tc_fast_rq_of(r + 12);
                    tc_dw_acc s = {q0.bias, q1.bias, q2.bias, q3.bias};
#if TC_FAST_DSP
                    if (is_3x3 && lanes == 4) {
                        tc_dw_group_3x3(r0 + col + c, r1 + col + c, r2 + col + c, in_c, w, off, &s);
                    } else
#endif
                    {
                        tc_dw_group(p, rows, col + c, w, lanes, &s);
                    }
                    const int8_t v0 = tc_fast_store(clamp, q0, s.a0, fast, full);
                    const int8_t v1 = tc_fast_store(clamp, q1, s.a1, fast, full);
                    const int8_t v2 = tc_fast_store(clamp, q2, s.a2, fast, full);
                    const int8_t v3 = tc_fast_store(clamp, q3, s.a3, fast, full);
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
