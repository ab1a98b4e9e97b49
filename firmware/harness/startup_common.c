/*
 * Start-up work shared by every Cortex-M family: .data copy, .bss zeroing, stack painting for the
 * high-water mark, and the fault report.
 */
#include "semihosting.h"
#include "tc_harness.h"

/* Words left unpainted below the reset handler's stack pointer, so that painting never
 * overwrites the frame of the function doing it. They count as used stack. */
#define TC_PAINT_MARGIN_WORDS 16

void tc_startup_init_memory(void)
{
    volatile uint32_t *word;
    const uint32_t *source = __data_load_start;
    uint32_t *stack_pointer;

    /* volatile stops the compiler from turning these loops into memcpy/memset calls, which
     * would run before .data exists. */
    for (word = __data_start; word < __data_end; word++) {
        *word = *source++;
    }
    for (word = __bss_start; word < __bss_end; word++) {
        *word = 0;
    }

    __asm__ volatile("mov %0, sp" : "=r"(stack_pointer));
    for (word = __stack_limit; word < stack_pointer - TC_PAINT_MARGIN_WORDS; word++) {
        *word = TC_STACK_PAINT;
    }
}

size_t tc_stack_used(void)
{
    const uint32_t *word = __stack_limit;
    while (word < __stack_top && *word == TC_STACK_PAINT) {
        word++;
    }
    return (size_t)((const char *)__stack_top - (const char *)word);
}

size_t tc_stack_size(void)
{
    return (size_t)((const char *)__stack_top - (const char *)__stack_limit);
}

static char *tc_append_hex(char *cursor, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    int shift;
    *cursor++ = '0';
    *cursor++ = 'x';
    for (shift = 28; shift >= 0; shift -= 4) {
        *cursor++ = digits[(value >> shift) & 0xFu];
    }
    return cursor;
}

static char *tc_append_text(char *cursor, const char *text)
{
    while (*text != '\0') {
        *cursor++ = *text++;
    }
    return cursor;
}

void tc_fault_report(const uint32_t *frame, const char *name)
{
    static char message[160];
    char *cursor = message;

    cursor = tc_append_text(cursor, "tc-harness: ");
    cursor = tc_append_text(cursor, name);
    if (frame != NULL && frame >= __stack_limit && frame + 8 <= __stack_top) {
        /* Exception frame: r0-r3, r12, lr, return address, xPSR. */
        cursor = tc_append_text(cursor, " pc=");
        cursor = tc_append_hex(cursor, frame[6]);
        cursor = tc_append_text(cursor, " lr=");
        cursor = tc_append_hex(cursor, frame[5]);
    }
#if __ARM_ARCH >= 7
    cursor = tc_append_text(cursor, " cfsr=");
    cursor = tc_append_hex(cursor, *(volatile uint32_t *)0xE000ED28u);
    cursor = tc_append_text(cursor, " hfsr=");
    cursor = tc_append_hex(cursor, *(volatile uint32_t *)0xE000ED2Cu);
#endif
    cursor = tc_append_text(cursor, "\n");
    *cursor = '\0';
    tc_sh_write0(message);
    tc_sh_exit(TC_EXIT_FAULT);
}
