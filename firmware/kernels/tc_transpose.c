/*
 * TRANSPOSE of up to six dimensions. The compiler folds the permutation into input strides
 * per output dimension, so the kernel walks the output in order and gathers each element.
 */
#include <string.h>

#include "tc_onnx_kernels.h"

tc_status tc_transpose(const tc_transpose_params *p, const void *input, void *output)
{
    const int32_t *d = p->out_dims;
    const int32_t *s = p->in_strides;
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    const size_t size = (size_t)p->element_size;
    if (size != 1 && size != 4) {
        return TC_ERROR_ARGUMENT;
    }
    size_t out_index = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                        const size_t base = (size_t)i0 * s[0] + (size_t)i1 * s[1] + (size_t)i2 * s[2]
                                            + (size_t)i3 * s[3] + (size_t)i4 * s[4];
                        for (int32_t i5 = 0; i5 < d[5]; ++i5) {
                            const size_t src = base + (size_t)i5 * s[5];
                            if (size == 1) {
                                out[out_index] = in[src];
                            } else {
                                memcpy(out + out_index * 4, in + src * 4, 4);
                            }
                            ++out_index;
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}
