/*
 * Timer calibration firmware: times a loop of a known instruction count and prints
 * "tc-harness: calibration instructions=<n> ticks=<m>".
 *
 * Under "qemu-system-arm -icount shift=0" the host divides n by m to get the instructions per
 * SysTick tick of a QEMU machine and compares it with the ratio stored in the board file. It
 * links with the harness start-up and timer code but without a model.
 */
#include "semihosting.h"
#include "tc_harness.h"

/* Iterations of the two-instruction loop below (subs + bne). */
#define TC_CALIBRATION_ITERATIONS 1000000u

static char *tc_append_text(char *cursor, const char *text)
{
    while (*text != '\0') {
        *cursor++ = *text++;
    }
    return cursor;
}

static char *tc_append_u64(char *cursor, uint64_t value)
{
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0);
    while (count > 0) {
        *cursor++ = digits[--count];
    }
    return cursor;
}

int main(void)
{
    static char message[96];
    char *cursor = message;
    uint32_t counter = TC_CALIBRATION_ITERATIONS;
    uint64_t start;
    uint64_t ticks;

    tc_timer_init();
    start = tc_timer_now();
    __asm__ volatile("1:\n"
                     "subs %0, %0, #1\n"
                     "bne 1b\n"
                     : "+l"(counter)
                     :
                     : "cc");
    ticks = tc_timer_now() - start;

    cursor = tc_append_text(cursor, "tc-harness: calibration instructions=");
    cursor = tc_append_u64(cursor, 2u * (uint64_t)TC_CALIBRATION_ITERATIONS);
    cursor = tc_append_text(cursor, " ticks=");
    cursor = tc_append_u64(cursor, ticks);
    cursor = tc_append_text(cursor, "\n");
    *cursor = '\0';
    tc_sh_write0(message);
    return TC_EXIT_OK;
}
