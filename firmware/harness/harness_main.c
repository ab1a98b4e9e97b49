/*
 * Firmware harness main: runs a generated model over the samples in a host file and writes the
 * outputs and measurements back, all through Arm semihosting.
 *
 * Files, relative to the directory QEMU runs in:
 *   tc_input.bin     all samples concatenated; one sample is the model inputs in index order
 *   tc_output.bin    written: the model outputs of every sample, in index order
 *   tc_profile.txt   written: "timer <name>", "layers <n>", then per sample
 *                    "sample <i> <invoke ticks> <layer 0 ticks> ... <layer n-1 ticks>",
 *                    then "stack <size> <used>" (bytes)
 *   tc_progress.txt  written while running: "<sample> <layer> <layer name>" after each layer
 *                    and "<sample> done" after each sample. After a timeout the host reads the
 *                    last line to name the last layer that finished.
 * The exit status is one of the TC_EXIT_* codes in tc_harness.h.
 *
 * Nothing here allocates memory dynamically: all buffers are static.
 */
#include "model.h"
#include "profile.h"
#include "semihosting.h"
#include "tc_harness.h"

#define TC_INPUT_FILE "tc_input.bin"
#define TC_OUTPUT_FILE "tc_output.bin"
#define TC_PROFILE_FILE "tc_profile.txt"
#define TC_PROGRESS_FILE "tc_progress.txt"

/* Buffered text output to a semihosting handle, with one host call per full buffer. */
typedef struct {
    int handle;
    size_t length;
    int failed;
    char buffer[256];
} tc_writer_t;

static tc_writer_t tc_profile_writer;
static tc_writer_t tc_progress_writer;
static uint32_t tc_current_sample;

static void tc_writer_open(tc_writer_t *writer, const char *path)
{
    writer->handle = tc_sh_open(path, TC_SH_MODE_WRITE_BINARY);
    writer->length = 0;
    writer->failed = writer->handle < 0;
}

static void tc_writer_flush(tc_writer_t *writer)
{
    if (!writer->failed && writer->length > 0) {
        writer->failed = tc_sh_write(writer->handle, writer->buffer, writer->length) != 0;
    }
    writer->length = 0;
}

static void tc_writer_char(tc_writer_t *writer, char c)
{
    if (writer->length == sizeof(writer->buffer)) {
        tc_writer_flush(writer);
    }
    writer->buffer[writer->length++] = c;
}

static void tc_writer_text(tc_writer_t *writer, const char *text)
{
    while (*text != '\0') {
        tc_writer_char(writer, *text++);
    }
}

static void tc_writer_u64(tc_writer_t *writer, uint64_t value)
{
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0);
    while (count > 0) {
        tc_writer_char(writer, digits[--count]);
    }
}

static void tc_fail(int status, const char *message)
{
    tc_sh_write0("tc-harness: error: ");
    tc_sh_write0(message);
    tc_sh_write0("\n");
    tc_sh_exit(status);
}

void tc_harness_layer_done(int layer)
{
    tc_writer_u64(&tc_progress_writer, tc_current_sample);
    tc_writer_char(&tc_progress_writer, ' ');
    tc_writer_u64(&tc_progress_writer, (uint64_t)layer);
    if (layer >= 0 && layer < TC_MODEL_NUM_LAYERS) {
        tc_writer_char(&tc_progress_writer, ' ');
        tc_writer_text(&tc_progress_writer, tc_model_layer_names[layer]);
    }
    tc_writer_char(&tc_progress_writer, '\n');
    /* Flushed at once: after a hang the host reads whatever reached the file. */
    tc_writer_flush(&tc_progress_writer);
}


static size_t tc_sample_input_bytes(void)
{
    size_t total = 0;
    int index;
    for (index = 0; index < TC_MODEL_NUM_INPUTS; index++) {
        total += tc_model_input_size(index);
    }
    return total;
}

static void tc_write_stack_report(void)
{
    size_t used = tc_stack_used();
    size_t size = tc_stack_size();

    tc_writer_text(&tc_profile_writer, "stack ");
    tc_writer_u64(&tc_profile_writer, size);
    tc_writer_char(&tc_profile_writer, ' ');
    tc_writer_u64(&tc_profile_writer, used);
    tc_writer_char(&tc_profile_writer, '\n');
    tc_writer_flush(&tc_profile_writer);
    if (used >= size) {
        tc_fail(TC_EXIT_STACK_OVERFLOW, "the stack reached its limit; raise the stack size");
    }
}

static void tc_run_sample(int input_handle, int output_handle)
{
    uint64_t start;
    uint64_t ticks;
    int index;

    for (index = 0; index < TC_MODEL_NUM_INPUTS; index++) {
        if (tc_sh_read(input_handle, tc_model_input(index), tc_model_input_size(index)) != 0) {
            tc_fail(TC_EXIT_INPUT_OPEN, "reading " TC_INPUT_FILE " failed");
        }
    }

    tc_profile_reset();
    start = tc_timer_now();
    if (tc_model_invoke() != 0) {
        tc_fail(TC_EXIT_MODEL_INVOKE, "tc_model_invoke() returned an error");
    }
    ticks = tc_timer_now() - start - tc_profile_hook_ticks();

    for (index = 0; index < TC_MODEL_NUM_OUTPUTS; index++) {
        if (tc_sh_write(output_handle, tc_model_output(index), tc_model_output_size(index)) != 0) {
            tc_fail(TC_EXIT_OUTPUT_WRITE, "writing " TC_OUTPUT_FILE " failed");
        }
    }

    tc_writer_text(&tc_profile_writer, "sample ");
    tc_writer_u64(&tc_profile_writer, tc_current_sample);
    tc_writer_char(&tc_profile_writer, ' ');
    tc_writer_u64(&tc_profile_writer, ticks);
    for (index = 0; index < TC_MODEL_NUM_LAYERS; index++) {
        tc_writer_char(&tc_profile_writer, ' ');
        tc_writer_u64(&tc_profile_writer, tc_profile_layer_ticks(index));
    }
    tc_writer_char(&tc_profile_writer, '\n');

    tc_writer_u64(&tc_progress_writer, tc_current_sample);
    tc_writer_text(&tc_progress_writer, " done\n");
    tc_writer_flush(&tc_progress_writer);
}

int main(void)
{
    size_t sample_bytes = tc_sample_input_bytes();
    int input_handle;
    int output_handle;
    long input_length;
    uint32_t sample_count;

    tc_timer_init();

    input_handle = tc_sh_open(TC_INPUT_FILE, TC_SH_MODE_READ_BINARY);
    if (input_handle < 0) {
        tc_fail(TC_EXIT_INPUT_OPEN, "cannot open " TC_INPUT_FILE);
    }
    input_length = tc_sh_flen(input_handle);
    if (input_length < 0 || sample_bytes == 0 || (size_t)input_length % sample_bytes != 0) {
        tc_fail(TC_EXIT_INPUT_SIZE, TC_INPUT_FILE " is not a whole number of samples");
    }
    sample_count = (uint32_t)((size_t)input_length / sample_bytes);

    output_handle = tc_sh_open(TC_OUTPUT_FILE, TC_SH_MODE_WRITE_BINARY);
    tc_writer_open(&tc_profile_writer, TC_PROFILE_FILE);
    tc_writer_open(&tc_progress_writer, TC_PROGRESS_FILE);
    if (output_handle < 0 || tc_profile_writer.failed || tc_progress_writer.failed) {
        tc_fail(TC_EXIT_OUTPUT_WRITE, "cannot create the output files");
    }

    tc_writer_text(&tc_profile_writer, "timer ");
    tc_writer_text(&tc_profile_writer, tc_timer_name());
    tc_writer_text(&tc_profile_writer, "\nlayers ");
    tc_writer_u64(&tc_profile_writer, TC_MODEL_NUM_LAYERS);
    tc_writer_char(&tc_profile_writer, '\n');

    if (tc_model_init() != 0) {
        tc_fail(TC_EXIT_MODEL_INIT, "tc_model_init() returned an error");
    }

    for (tc_current_sample = 0; tc_current_sample < sample_count; tc_current_sample++) {
        tc_run_sample(input_handle, output_handle);
    }

    tc_write_stack_report();
    if (tc_profile_writer.failed || tc_progress_writer.failed) {
        tc_fail(TC_EXIT_OUTPUT_WRITE, "writing the profile or progress file failed");
    }
    tc_sh_close(input_handle);
    tc_sh_close(output_handle);
    tc_sh_close(tc_profile_writer.handle);
    tc_sh_close(tc_progress_writer.handle);
    return TC_EXIT_OK;
}
