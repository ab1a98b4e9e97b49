/*
 * Vector table and reset handler for Armv6-M cores (Cortex-M0+).
 *
 * Armv6-M has no FPU, no configurable fault exceptions and no fault status registers: every
 * fault escalates to HardFault, which prints the stacked PC and exits with TC_EXIT_FAULT.
 */
#include "startup.h"

void Reset_Handler(void)
{
    tc_reset_finish();
}

void HardFault_Handler_report(const uint32_t *frame) __attribute__((noreturn, used));
void HardFault_Handler_report(const uint32_t *frame)
{
    tc_fault_report(frame, "HardFault");
}

/* Thumb-1 has no IT blocks, so the MSP/PSP choice uses a branch. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile("movs r0, #4\n"
                     "mov r1, lr\n"
                     "tst r0, r1\n"
                     "beq 1f\n"
                     "mrs r0, psp\n"
                     "bl HardFault_Handler_report\n"
                     "1:\n"
                     "mrs r0, msp\n"
                     "bl HardFault_Handler_report\n");
}

static void Unexpected_Handler(void)
{
    tc_fault_report(NULL, "unexpected exception");
}

__attribute__((section(".vectors"), used)) const tc_vector_t tc_vector_table[16] = {
    {.address = __stack_top},
    {.handler = Reset_Handler},
    {.handler = Unexpected_Handler}, /* NMI */
    {.handler = HardFault_Handler},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* SVCall */
    {.address = NULL},
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* PendSV */
    {.handler = SysTick_Handler},
};
