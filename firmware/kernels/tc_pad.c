/*
 * Constant padding (PAD, PADV2) of a tensor of up to six dimensions and any element size.
 *
 * The kernel writes the output row by row along the last dimension. A row whose outer index
 * falls in the padding is all pad value. Any other row is a copy of the matching input row with
 * pad values before and after it. Only bytes move, so the kernel is exact for every element type.
 */
#include <string.h>

#include "tc_kernels.h"

static void fill_elements(uint8_t *dst, const tc_pad_params *p, int32_t count)
{
    const size_t size = (size_t)p->element_size;
    if (size == 1) {
        memset(dst, p->pad_value[0], (size_t)count);
        return;
    }
    for (int32_t i = 0; i < count; ++i) {
        memcpy(dst + (size_t)i * size, p->pad_value, size);
    }
}

tc_status tc_pad(const tc_pad_params *p, const void *input, void *output)
{
    const int32_t *in = p->in_dims;
    const int32_t *out = p->out_dims;
    const int32_t *before = p->pad_before;
    const size_t size = (size_t)p->element_size;
    if (size == 0 || size > sizeof(p->pad_value)) {
        return TC_ERROR_ARGUMENT;
    }
    const uint8_t *src = (const uint8_t *)input;
    uint8_t *dst = (uint8_t *)output;
    const int32_t row_before = before[5];
    const int32_t row_after = out[5] - in[5] - before[5];
    const size_t in_row_bytes = (size_t)in[5] * size;
    int32_t idx[5];
    for (idx[0] = 0; idx[0] < out[0]; ++idx[0]) {
        for (idx[1] = 0; idx[1] < out[1]; ++idx[1]) {
            for (idx[2] = 0; idx[2] < out[2]; ++idx[2]) {
                for (idx[3] = 0; idx[3] < out[3]; ++idx[3]) {
                    for (idx[4] = 0; idx[4] < out[4]; ++idx[4]) {
                        /* Row-major index of the input row that this output row copies, if any. */
                        size_t in_row = 0;
                        int inside = 1;
                        for (int d = 0; d < 5; ++d) {
                            const int32_t i = idx[d] - before[d];
                            if (i < 0 || i >= in[d]) {
                                inside = 0;
                                break;
                            }
                            in_row = in_row * (size_t)in[d] + (size_t)i;
                        }
                        if (!inside) {
                            fill_elements(dst, p, out[5]);
                        } else {
                            fill_elements(dst, p, row_before);
                            memcpy(dst + (size_t)row_before * size, src + in_row * in_row_bytes, in_row_bytes);
                            fill_elements(dst + (size_t)row_before * size + in_row_bytes, p, row_after);
                        }
                        dst += (size_t)out[5] * size;
                    }
                }
            }
        }
    }
    return TC_OK;
}
