/*
 * Shared declarations of the tinycompile firmware harness: exit codes, linker symbols, the
 * layer timer and the stack measurement.
 *
 * The exit codes become the QEMU process exit status (through SYS_EXIT_EXTENDED), which
 * tinycompile/deploy/qemu.py decodes, so keep both lists in step.
 */
#ifndef TC_HARNESS_H
#define TC_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#define TC_EXIT_OK 0
#define TC_EXIT_INPUT_OPEN 3      /* the input file cannot be opened or read */
#define TC_EXIT_INPUT_SIZE 4      /* the input length is not a multiple of one sample */
#define TC_EXIT_OUTPUT_WRITE 5    /* an output, profile or progress file cannot be written */
#define TC_EXIT_MODEL_INIT 6      /* tc_model_init() returned non-zero */
#define TC_EXIT_MODEL_INVOKE 7    /* tc_model_invoke() returned non-zero */
#define TC_EXIT_FAULT 8           /* a HardFault or other fault exception was taken */
#define TC_EXIT_STACK_OVERFLOW 9  /* the stack reached its limit */

/* Fill pattern written over the unused stack at reset. */
#define TC_STACK_PAINT 0xC5A5C5A5u

/* Symbols defined by the linker script (templates/linker). */
extern uint32_t __data_load_start[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_limit[];
extern uint32_t __stack_top[];

/* Copy .data from flash, zero .bss and paint the stack below the caller's frame. */
void tc_startup_init_memory(void);
/* Report a fault with the stacked exception frame (may be NULL) and exit. */
void tc_fault_report(const uint32_t *frame, const char *name) __attribute__((noreturn));

/* Start the layer timer: SysTick with a wrap counter, or the DWT cycle counter. */
void tc_timer_init(void);
/* Return the monotonic 64-bit count of timer ticks since tc_timer_init(). */
uint64_t tc_timer_now(void);
/* Name of the timer unit written to the profile: "systick" or "dwt". */
const char *tc_timer_name(void);

/* Return the number of stack bytes that were written since reset (high-water mark). */
size_t tc_stack_used(void);
/* Return the size of the stack region in bytes. */
size_t tc_stack_size(void);

#endif /* TC_HARNESS_H */
