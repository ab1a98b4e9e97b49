/*
 * Pieces shared by the per-family start-up files (startup_armv6m.c, startup_armv7m.c,
 * startup_armv8m.c): the vector table entry type, the handler declarations and the C part of
 * the reset sequence.
 */
#ifndef TC_STARTUP_H
#define TC_STARTUP_H

#include "semihosting.h"
#include "tc_harness.h"

/* One vector table entry: the initial stack pointer or a handler address. */
typedef union {
    void (*handler)(void);
    const void *address;
} tc_vector_t;

int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);

/* Finish the reset sequence once the core registers are set up: initialise memory, run main()
 * and pass its return value to the host as the exit status. */
static inline void __attribute__((noreturn)) tc_reset_finish(void)
{
    tc_startup_init_memory();
    tc_sh_exit(main());
}

#endif /* TC_STARTUP_H */
