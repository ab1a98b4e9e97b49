/*
 * Firmware main of a generated training step under QEMU: trains on samples read through Arm
 * semihosting and writes loss, accuracy and timer ticks back. Used by `tinycompile simulate-train`.
 *
 * Files, relative to the directory QEMU runs in:
 *   tc_train.bin      a 32-byte header of eight little-endian uint32: magic "TCDS", version 1,
 *                     training samples per epoch, test samples, bytes per input, epochs, 0, 0.
 *                     Then epochs x training samples in visiting order, each an int8 input
 *                     followed by an int32 label.
 *   tc_test.bin       the test samples in the same record format
 *   tc_train_log.txt  written: "eval epoch=0 correct=C count=N ticks=T" before training and after
 *                     each epoch, "epoch=E steps=S loss_micro=L ticks=T" per epoch (loss summed
 *                     over the epoch, in millionths), "stack size=B used=U" at the end
 * Samples are read straight into the arena's input buffer, so the harness adds no input buffer.
 * The exit status is one of the TC_EXIT_* codes in tc_harness.h. Nothing here allocates memory.
 */
#include "semihosting.h"
#include "tc_harness.h"
#include "tc_train.h"
#include "train.h"

typedef struct {
    int handle;
    size_t length;
    int failed;
    char buffer[128];
} tc_log_t;

static tc_log_t tc_log;

static void tc_log_flush(void)
{
    if (!tc_log.failed && tc_log.length > 0) {
        tc_log.failed = tc_sh_write(tc_log.handle, tc_log.buffer, tc_log.length) != 0;
    }
    tc_log.length = 0;
}

static void tc_log_text(const char *text)
{
    while (*text != '\0') {
        if (tc_log.length == sizeof(tc_log.buffer)) {
            tc_log_flush();
        }
        tc_log.buffer[tc_log.length++] = *text++;
    }
}

static void tc_log_u64(uint64_t value)
{
    char digits[21];
    int count = 0;
    do {
        digits[count++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0);
    char text[21];
    for (int i = 0; i < count; ++i) {
        text[i] = digits[count - 1 - i];
    }
    text[count] = '\0';
    tc_log_text(text);
}

static void tc_log_field(const char *name, uint64_t value)
{
    tc_log_text(name);
    tc_log_u64(value);
}

static uint32_t tc_read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Read one record into the arena's input buffer and return its label, or -1. */
static int32_t tc_read_record(int handle)
{
    uint8_t label[4];
    if (tc_sh_read(handle, tc_train_input(), TC_TRAIN_INPUT_SIZE) != 0 || tc_sh_read(handle, label, 4) != 0) {
        return -1;
    }
    return (int32_t)tc_read_u32(label);
}

static int tc_evaluate(uint32_t epoch, uint32_t count)
{
    const int handle = tc_sh_open("tc_test.bin", TC_SH_MODE_READ_BINARY);
    if (handle < 0) {
        return TC_EXIT_INPUT_OPEN;
    }
    uint32_t correct = 0;
    uint64_t ticks = 0;
    for (uint32_t i = 0; i < count; ++i) {
        const int32_t label = tc_read_record(handle);
        if (label < 0) {
            return TC_EXIT_INPUT_SIZE;
        }
        const uint64_t start = tc_timer_now();
        const int predicted = tc_train_predict(tc_train_input(), 0);
        ticks += tc_timer_now() - start;
        if (predicted < 0) {
            return TC_EXIT_MODEL_INVOKE;
        }
        correct += predicted == label ? 1u : 0u;
    }
    tc_sh_close(handle);
    tc_log_field("eval epoch=", epoch);
    tc_log_field(" correct=", correct);
    tc_log_field(" count=", count);
    tc_log_field(" ticks=", ticks);
    tc_log_text("\n");
    tc_log_flush();
    return TC_EXIT_OK;
}

int main(void)
{
    tc_timer_init();
    const int data = tc_sh_open("tc_train.bin", TC_SH_MODE_READ_BINARY);
    uint8_t header[32];
    if (data < 0 || tc_sh_read(data, header, sizeof header) != 0 || tc_read_u32(header) != 0x53444354u) {
        return TC_EXIT_INPUT_OPEN;
    }
    const uint32_t n_train = tc_read_u32(header + 8);
    const uint32_t n_test = tc_read_u32(header + 12);
    const uint32_t epochs = tc_read_u32(header + 20);
    if (tc_read_u32(header + 16) != TC_TRAIN_INPUT_SIZE) {
        return TC_EXIT_INPUT_SIZE;
    }
    tc_log.handle = tc_sh_open("tc_train_log.txt", TC_SH_MODE_WRITE_BINARY);
    tc_log.failed = tc_log.handle < 0;
    if (tc_log.failed) {
        return TC_EXIT_OUTPUT_WRITE;
    }
    if (tc_train_init() != 0) {
        return TC_EXIT_MODEL_INIT;
    }
    int status = tc_evaluate(0, n_test);
    if (status != TC_EXIT_OK) {
        return status;
    }
    for (uint32_t epoch = 1; epoch <= epochs; ++epoch) {
        uint64_t ticks = 0;
        double loss_sum = 0.0;
        for (uint32_t i = 0; i < n_train; ++i) {
            const int32_t label = tc_read_record(data);
            if (label < 0) {
                return TC_EXIT_INPUT_SIZE;
            }
            float loss = 0.0f;
            const uint64_t start = tc_timer_now();
            const int result = tc_train_step(tc_train_input(), (int)label, &loss);
            ticks += tc_timer_now() - start;
            if (result != 0) {
                return TC_EXIT_MODEL_INVOKE;
            }
            loss_sum += (double)loss;
        }
        tc_log_field("epoch=", epoch);
        tc_log_field(" steps=", n_train);
        tc_log_field(" loss_micro=", (uint64_t)(loss_sum * 1e6 + 0.5));
        tc_log_field(" ticks=", ticks);
        tc_log_text("\n");
        status = tc_evaluate(epoch, n_test);
        if (status != TC_EXIT_OK) {
            return status;
        }
    }
    tc_sh_close(data);
    tc_log_field("stack size=", tc_stack_size());
    tc_log_field(" used=", tc_stack_used());
    tc_log_text("\n");
    tc_log_flush();
    tc_sh_close(tc_log.handle);
    return tc_log.failed ? TC_EXIT_OUTPUT_WRITE : TC_EXIT_OK;
}
