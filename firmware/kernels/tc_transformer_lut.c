/* Int8 element-wise functions applied through a 256-entry table that the compiler computed. */
#include "tc_kernels_transformer.h"

tc_status tc_lut_s8(const tc_lut_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = input[i];
        if (x < p->error_below) {
            return TC_ERROR_ARGUMENT;
        }
        output[i] = p->table[x + 128];
    }
    return TC_OK;
}
