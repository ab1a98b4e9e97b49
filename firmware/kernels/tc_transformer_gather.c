/* GATHER and EMBEDDING_LOOKUP: copy slices of a table selected by run-time indices. */
#include <string.h>

#include "tc_kernels_transformer.h"

static int64_t tc_read_index(const void *indices, int32_t index_bytes, int32_t i)
{
    if (index_bytes == 8) {
        return ((const int64_t *)indices)[i];
    }
    return ((const int32_t *)indices)[i];
}

tc_status tc_gather(const tc_gather_params *p, const void *params, const void *indices, void *output)
{
    const uint8_t *src = (const uint8_t *)params;
    uint8_t *dst = (uint8_t *)output;
    const size_t inner = (size_t)p->inner_bytes;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t o = 0; o < p->outer; ++o) {
            const uint8_t *slab = src + ((size_t)b * p->outer + o) * p->axis_size * inner;
            for (int32_t i = 0; i < p->indices_per_batch; ++i) {
                int64_t index = tc_read_index(indices, p->index_bytes, b * p->indices_per_batch + i);
                if (p->wrap_negative && index < 0) {
                    index += p->axis_size;
                }
                if (index < 0 || index >= p->axis_size) {
                    return TC_ERROR_ARGUMENT;
                }
                memcpy(dst, slab + (size_t)index * inner, inner);
                dst += inner;
            }
        }
    }
    return TC_OK;
}
