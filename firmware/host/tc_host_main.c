/*
 * Host runner for a generated model: reads samples from a file, runs one inference per sample,
 * and writes the outputs to another file. Each sample is the model's inputs back to back, in
 * order; each result is its outputs back to back. Used by `tinycompile verify`.
 *
 * Usage: tc_host_runner INPUT_FILE OUTPUT_FILE
 * Exit status: 0 on success, 2 on a usage or I/O error, 3 + layer when a layer fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int read_exact(FILE *f, void *dst, size_t n)
{
    return fread(dst, 1, n, f) == n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT_FILE OUTPUT_FILE\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (!in || !out) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    size_t sample_bytes = 0;
    for (int i = 0; i < TC_MODEL_NUM_INPUTS; ++i) {
        sample_bytes += tc_model_input_size(i);
    }
    fseek(in, 0, SEEK_END);
    long total = ftell(in);
    fseek(in, 0, SEEK_SET);
    if (total <= 0 || (size_t)total % sample_bytes != 0) {
        fprintf(stderr, "input file holds %ld bytes, not a multiple of the %zu-byte sample\n", total, sample_bytes);
        return 2;
    }
    size_t samples = (size_t)total / sample_bytes;
    tc_model_init();
    for (size_t s = 0; s < samples; ++s) {
        for (int i = 0; i < TC_MODEL_NUM_INPUTS; ++i) {
            if (!read_exact(in, tc_model_input(i), tc_model_input_size(i))) {
                fprintf(stderr, "short read in sample %zu\n", s);
                return 2;
            }
        }
        int status = tc_model_invoke();
        if (status != 0) {
            fprintf(stderr, "layer %d failed on sample %zu\n", status - 1, s);
            return 3 + status - 1;
        }
        for (int i = 0; i < TC_MODEL_NUM_OUTPUTS; ++i) {
            if (fwrite(tc_model_output(i), 1, tc_model_output_size(i), out) != tc_model_output_size(i)) {
                fprintf(stderr, "write failed\n");
                return 2;
            }
        }
    }
    fclose(in);
    fclose(out);
    return 0;
}
