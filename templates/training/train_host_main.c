/*
 * Host runner of a generated training step: trains on a dataset file and reports loss and
 * accuracy per epoch. Used by `tinycompile simulate-train`.
 *
 * Usage: train_runner DATASET [--epochs N] [--import FILE] [--export FILE] [--logits FILE] [--log-steps]
 *
 * DATASET is little-endian: a 32-byte header of eight uint32 (magic "TCDS", version 1, training
 * samples, test samples, bytes per input, epochs, shuffle seed, 0), then each training sample as
 * its int8 input followed by an int32 label, then the test samples the same way. Each epoch
 * visits the training samples in an order shuffled with the seed (seed 0: file order).
 * --logits writes the int8 logits of every test sample after training. Output lines are
 * "key=value" pairs that the Python side parses.
 * Exit status: 0 on success, 2 on a usage or I/O error, 3 when a step fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tc_train.h"
#include "train.h"

#define MAX_SAMPLES 200000u

static uint32_t read_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t next_random(uint32_t *state)
{
    /* xorshift32 */
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static int evaluate(const unsigned char *records, uint32_t count, size_t record_bytes, double *accuracy,
                    double *mean_loss)
{
    uint32_t correct = 0;
    double loss_sum = 0.0;
    int8_t logits[TC_TRAIN_NUM_CLASSES];
    float grad[TC_TRAIN_NUM_CLASSES];
    for (uint32_t i = 0; i < count; ++i) {
        const unsigned char *r = records + (size_t)i * record_bytes;
        const int32_t label = (int32_t)read_u32(r + TC_TRAIN_INPUT_SIZE);
        const int predicted = tc_train_predict((const int8_t *)r, logits);
        if (predicted < 0) {
            return 1;
        }
        correct += predicted == label ? 1u : 0u;
        loss_sum += tc_train_softmax_cross_entropy(TC_TRAIN_NUM_CLASSES, logits, TC_TRAIN_LOGITS_SCALE, label, grad);
    }
    *accuracy = count ? (double)correct / count : 0.0;
    *mean_loss = count ? loss_sum / count : 0.0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DATASET [--epochs N] [--import FILE] [--export FILE] [--logits FILE] [--log-steps]\n",
                argv[0]);
        return 2;
    }
    long epochs_override = -1;
    const char *import_path = NULL;
    const char *export_path = NULL;
    const char *logits_path = NULL;
    int log_steps = 0;
    for (int i = 2; i < argc; ++i) {
        if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc) {
            epochs_override = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--import") == 0 && i + 1 < argc) {
            import_path = argv[++i];
        } else if (strcmp(argv[i], "--export") == 0 && i + 1 < argc) {
            export_path = argv[++i];
        } else if (strcmp(argv[i], "--logits") == 0 && i + 1 < argc) {
            logits_path = argv[++i];
        } else if (strcmp(argv[i], "--log-steps") == 0) {
            log_steps = 1;
        } else {
            fprintf(stderr, "unknown argument %s\n", argv[i]);
            return 2;
        }
    }

    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    unsigned char header[32];
    if (fread(header, 1, sizeof header, f) != sizeof header || read_u32(header) != 0x53444354u) {
        fprintf(stderr, "%s is not a training dataset file\n", argv[1]);
        return 2;
    }
    const uint32_t n_train = read_u32(header + 8);
    const uint32_t n_test = read_u32(header + 12);
    const uint32_t sample_bytes = read_u32(header + 16);
    uint32_t epochs = read_u32(header + 20);
    uint32_t seed = read_u32(header + 24);
    if (sample_bytes != TC_TRAIN_INPUT_SIZE || n_train + n_test > MAX_SAMPLES) {
        fprintf(stderr, "dataset samples are %u bytes, the model takes %u\n", (unsigned)sample_bytes,
                (unsigned)TC_TRAIN_INPUT_SIZE);
        return 2;
    }
    if (epochs_override >= 0) {
        epochs = (uint32_t)epochs_override;
    }
    const size_t record_bytes = (size_t)sample_bytes + 4u;
    unsigned char *records = (unsigned char *)malloc(record_bytes * (n_train + n_test) + 1u);
    uint32_t *order = (uint32_t *)malloc(sizeof(uint32_t) * (n_train + 1u));
    if (!records || !order || fread(records, 1, record_bytes * (n_train + n_test), f) != record_bytes * (n_train + n_test)) {
        fprintf(stderr, "short read in %s\n", argv[1]);
        return 2;
    }
    fclose(f);

    tc_train_init();
    if (import_path) {
        static unsigned char params[TC_TRAIN_PARAMS_SIZE];
        FILE *p = fopen(import_path, "rb");
        if (!p || fread(params, 1, sizeof params, p) != sizeof params || tc_train_import_params(params, sizeof params) != 0) {
            fprintf(stderr, "cannot import parameters from %s\n", import_path);
            return 2;
        }
        fclose(p);
    }

    double accuracy = 0.0, test_loss = 0.0;
    if (n_test && evaluate(records + record_bytes * n_train, n_test, record_bytes, &accuracy, &test_loss)) {
        return 3;
    }
    printf("epoch=0 test_accuracy=%.6f test_loss=%.6f\n", accuracy, test_loss);

    for (uint32_t i = 0; i < n_train; ++i) {
        order[i] = i;
    }
    uint32_t state = seed ? seed : 1u;
    for (uint32_t epoch = 1; epoch <= epochs; ++epoch) {
        if (seed) {
            for (uint32_t i = n_train; i > 1; --i) {
                const uint32_t j = next_random(&state) % i;
                const uint32_t t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
        }
        double loss_sum = 0.0;
        const clock_t start = clock();
        for (uint32_t i = 0; i < n_train; ++i) {
            const unsigned char *r = records + record_bytes * order[i];
            const int32_t label = (int32_t)read_u32(r + sample_bytes);
            float loss = 0.0f;
            const int status = tc_train_step((const int8_t *)r, label, &loss);
            if (status != 0) {
                fprintf(stderr, "training step failed with status %d on sample %u\n", status, (unsigned)order[i]);
                return 3;
            }
            if (log_steps) {
                printf("step sample=%u label=%d loss=%.9g\n", (unsigned)order[i], (int)label, (double)loss);
            }
            loss_sum += loss;
        }
        const double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
        if (n_test && evaluate(records + record_bytes * n_train, n_test, record_bytes, &accuracy, &test_loss)) {
            return 3;
        }
        printf("epoch=%u train_loss=%.6f test_accuracy=%.6f test_loss=%.6f seconds_per_step=%.9f\n", (unsigned)epoch,
               n_train ? loss_sum / n_train : 0.0, accuracy, test_loss, n_train ? seconds / n_train : 0.0);
    }

    if (export_path) {
        static unsigned char params[TC_TRAIN_PARAMS_SIZE];
        const size_t size = tc_train_export_params(params, sizeof params);
        FILE *p = fopen(export_path, "wb");
        if (!p || fwrite(params, 1, size, p) != size) {
            fprintf(stderr, "cannot write %s\n", export_path);
            return 2;
        }
        fclose(p);
    }
    if (logits_path) {
        FILE *p = fopen(logits_path, "wb");
        int8_t logits[TC_TRAIN_NUM_CLASSES];
        for (uint32_t i = 0; p && i < n_test; ++i) {
            if (tc_train_predict((const int8_t *)(records + record_bytes * (n_train + i)), logits) < 0
                || fwrite(logits, 1, sizeof logits, p) != sizeof logits) {
                fprintf(stderr, "cannot write %s\n", logits_path);
                return 2;
            }
        }
        if (!p) {
            fprintf(stderr, "cannot write %s\n", logits_path);
            return 2;
        }
        fclose(p);
    }
    free(records);
    free(order);
    return 0;
}
