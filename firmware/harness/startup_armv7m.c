/*
 * Vector table and reset handler for Armv7-M cores (Cortex-M3, M4, M7).
 *
 * The reset handler enables the FPU (CPACR CP10/CP11 full access) when the build targets one, so
 * that compiler-generated floating-point code does not take a UsageFault, then hands over to the
 * shared C start-up code. Fault exceptions print the stacked PC and the fault status registers
 * through semihosting and exit with TC_EXIT_FAULT.
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
#if defined(__ARM_FP)
        "movw r0, #0xED88\n"
        "movt r0, #0xE000\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #0x00F00000\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
#endif
        "b tc_reset_continue\n");
}

/* Each fault handler passes the exception frame (on MSP or PSP, from EXC_RETURN bit 2) to a
 * C function that names the fault. */
#define TC_FAULT_HANDLER(handler, label)                                              \
    void handler##_report(const uint32_t *frame) __attribute__((noreturn, used));     \
    void handler##_report(const uint32_t *frame)                                      \
    {                                                                                 \
        tc_fault_report(frame, label);                                                \
    }                                                                                 \
    __attribute__((naked)) void handler(void)                                         \
    {                                                                                 \
        __asm__ volatile("tst lr, #4\n"                                               \
                         "ite eq\n"                                                   \
                         "mrseq r0, msp\n"                                            \
                         "mrsne r0, psp\n"                                            \
                         "bl " #handler "_report\n");                                 \
    }

TC_FAULT_HANDLER(HardFault_Handler, "HardFault")
TC_FAULT_HANDLER(MemManage_Handler, "MemManage fault")
TC_FAULT_HANDLER(BusFault_Handler, "BusFault")
TC_FAULT_HANDLER(UsageFault_Handler, "UsageFault")

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
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* SVCall */
    {.handler = Unexpected_Handler}, /* DebugMonitor */
    {.address = NULL},
    {.handler = Unexpected_Handler}, /* PendSV */
    {.handler = SysTick_Handler},
};
