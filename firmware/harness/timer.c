/*
 * Layer timer of the harness.
 *
 * Two sources are supported:
 *  - SysTick (default). It counts down from 0xFFFFFF (TC_SYSTICK_RELOAD) on the core clock and
 *    raises an exception at each wrap. The handler counts wraps, so tc_timer_now() returns a 64-bit tick count. On
 *    hardware one tick is one core cycle. Under "qemu-system-arm -icount shift=0" QEMU does not
 *    model cycles but advances the virtual clock by 1 ns per executed instruction, so one tick is
 *    (1e9 / SysTick clock in Hz) instructions, a fixed ratio per machine that the host side
 *    multiplies back (the board YAML field qemu.instructions_per_tick). The Cortex-M0+ has no DWT
 *    cycle counter, so it always uses SysTick.
 *  - The DWT cycle counter (build with -DTC_TIMER_DWT), for Armv7-M and Armv8-M hardware.
 *    QEMU does not implement it (it reads as zero), so simulated boards never use it.
 */
#include "tc_harness.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CORE (1u << 2)
/* SysTick reload value. Tests build with a small value to make wraps frequent. */
#ifndef TC_SYSTICK_RELOAD
#define TC_SYSTICK_RELOAD 0x00FFFFFFu
#endif
#define TC_SYSTICK_PERIOD ((uint64_t)TC_SYSTICK_RELOAD + 1u)

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define DWT_CTRL_CYCCNTENA (1u << 0)

static volatile uint32_t tc_systick_wraps;

void SysTick_Handler(void)
{
    tc_systick_wraps++;
}

#if defined(TC_TIMER_DWT)

static uint64_t tc_dwt_high;
static uint32_t tc_dwt_last;

void tc_timer_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u; /* unlocks the DWT on cores that have a lock (Cortex-M7) */
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    tc_dwt_high = 0;
    tc_dwt_last = 0;
}

/* The 32-bit counter wraps after 2^32 cycles (about 20 s at 216 MHz). Each call extends it to
 * 64 bits, which is exact while calls are less than one wrap apart. NOTE: the harness reads the
 * timer around each layer, so a single layer longer than one wrap is under-counted. */
uint64_t tc_timer_now(void)
{
    uint32_t now = DWT_CYCCNT;
    if (now < tc_dwt_last) {
        tc_dwt_high += (uint64_t)1 << 32;
    }
    tc_dwt_last = now;
    return tc_dwt_high | now;
}

const char *tc_timer_name(void)
{
    return "dwt";
}

#else

void tc_timer_init(void)
{
    tc_systick_wraps = 0;
    SYST_RVR = TC_SYSTICK_RELOAD;
    SYST_CVR = 0; /* any write clears the counter */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CORE;
}

/*
 * The counter runs RELOAD, ..., 1, 0, RELOAD, ... and the wrap exception is raised when it
 * reaches 0, so (PERIOD - value) mod PERIOD counts up within one wrap period. A wrap whose
 * exception is still pending (PENDSTSET) has not been counted by the handler yet: in that case
 * the counter is read again and the wrap is added here. Interrupts are masked so the handler
 * cannot run between the two reads.
 */
uint64_t tc_timer_now(void)
{
    uint32_t primask;
    uint32_t wraps;
    uint32_t value;

    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    wraps = tc_systick_wraps;
    value = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        value = SYST_CVR;
        wraps++;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");

    return (uint64_t)wraps * TC_SYSTICK_PERIOD + (value == 0 ? 0 : TC_SYSTICK_PERIOD - value);
}

const char *tc_timer_name(void)
{
    return "systick";
}

#endif
