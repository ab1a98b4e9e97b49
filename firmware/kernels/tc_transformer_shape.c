/* Data movement: strided copies (TRANSPOSE, SLICE, STRIDED_SLICE) and CONCATENATION. */
#include <string.h>

#include "tc_kernels_transformer.h"

tc_status tc_strided_copy(const tc_strided_copy_params *p, const void *input, void *output)
{
    const uint8_t *src = (const uint8_t *)input;
    uint8_t *dst = (uint8_t *)output;
    const int32_t *d = p->out_dims;
    const int32_t *s = p->strides;
    const size_t bytes = (size_t)p->element_bytes;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                        int32_t e = p->start + i0 * s[0] + i1 * s[1] + i2 * s[2] + i3 * s[3] + i4 * s[4];
                        if (bytes == 1 && s[5] == 1) {
                            memcpy(dst, src + e, (size_t)d[5]);
                            dst += d[5];
                            continue;
                        }
                        for (int32_t i5 = 0; i5 < d[5]; ++i5) {
                            memcpy(dst, src + (size_t)e * bytes, bytes);
                            dst += bytes;
                            e += s[5];
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_concatenation(const tc_concat_params *p, const void *in0, const void *in1, const void *in2,
                           const void *in3, const void *in4, const void *in5, const void *in6,
                           const void *in7, void *output)
{
    const uint8_t *inputs[TC_CONCAT_MAX_INPUTS] = {
        (const uint8_t *)in0, (const uint8_t *)in1, (const uint8_t *)in2, (const uint8_t *)in3,
        (const uint8_t *)in4, (const uint8_t *)in5, (const uint8_t *)in6, (const uint8_t *)in7,
    };
    uint8_t *dst = (uint8_t *)output;
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t k = 0; k < p->num_inputs; ++k) {
            const size_t chunk = (size_t)p->chunk_bytes[k];
            memcpy(dst, inputs[k] + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    }
    return TC_OK;
}
