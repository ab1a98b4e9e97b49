/*
 * Vector table and reset handler for Armv8-M Mainline cores (Cortex-M33, Cortex-M55).
 *
 * The harness runs in the Secure state, in which these cores leave reset. The reset handler
 * sets MSPLIM to the bottom of the stack region, so a stack overflow raises a UsageFault
 * (STKOF) at once instead of writing below the start of RAM, and enables CP10/CP11, which
 * covers both the FPU
 * and, on the Cortex-M55, the M-profile Vector Extension (MVE).
 */
#include "startup.h"

void tc_reset_continue(void) __attribute__((noreturn, used));
void tc_reset_continue(void)
{
    tc_reset_finish();
}

__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =__stack_limit\n"
        "msr msplim, r0\n"
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
        "movw r0, #0xED88\n"
        "movt r0, #0xE000\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #0x00F00000\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
#endif
        "b tc_reset_continue\n"
        ".ltorg\n");
}

/* The fault handlers clear MSPLIM first: after a stack-limit fault the handler's own pushes
 * would otherwise fault again and lock up the core. */
#define TC_FAULT_HANDLER(handler, label)                                              \
    void handler##_report(const uint32_t *frame) __attribute__((noreturn, used));     \
    void handler##_report(const uint32_t *frame)                                      \
    {                                                                                 \
        tc_fault_report(frame, label);                                                \
    }                                                                                 \
    __attribute__((naked)) void handler(void)                                         \
    {                                                                                 \
        __asm__ volatile("movs r1, #0\n"                                              \
                         "msr msplim, r1\n"                                           \
                         "tst lr, #4\n"                                               \
                         "ite eq\n"                                                   \
                         "mrseq r0, msp\n"                                            \
                         "mrsne r0, psp\n"                                            \
                         "bl " #handler "_report\n");                                 \
    }

TC_FAULT_HANDLER(HardFault_Handler, "HardFault")
TC_FAULT_HANDLER(MemManage_Handler, "MemManage fault")
TC_FAULT_HANDLER(BusFault_Handler, "BusFault")
TC_FAULT_HANDLER(UsageFault_Handler, "UsageFault")
TC_FAULT_HANDLER(SecureFault_Handler, "SecureFault")

static void Unexpected_Handler(void)
{
    tc_fault_report(NULL, "unexpected exception");
}

__attribute__((section(".vectors"), used)) const tc_vector_t tc_vector_table[16] = {
    {.address = __stack_top},
    {.handler = Reset_Handler},
    {.handler = Unexpected_Handler}, /* NMI */
    {.handler = HardFault_Handler},
    {.handler = MemManage_Handler},
    {.handler = BusFault_Handler},
    {.handler = UsageFault_Handler},
    {.handler = SecureFault_Handler},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* SVCall */
    {.handler = Unexpected_Handler}, /* DebugMonitor */
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* PendSV */
    {.handler = SysTick_Handler},
};
