/*
 * Arm semihosting calls: each function fills the argument block that the specification defines
 * for its operation and traps to the host with "bkpt 0xAB".
 */
#include "semihosting.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20

/* Reason code for a normal application exit (ADP_Stopped_ApplicationExit). */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static int tc_sh_call(int operation, const void *argument)
{
    register int r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static size_t tc_strlen(const char *text)
{
    size_t length = 0;
    while (text[length] != '\0') {
        length++;
    }
    return length;
}

int tc_sh_open(const char *path, int mode)
{
    uint32_t block[3];
    block[0] = (uint32_t)(uintptr_t)path;
    block[1] = (uint32_t)mode;
    block[2] = (uint32_t)tc_strlen(path);
    return tc_sh_call(SYS_OPEN, block);
}

int tc_sh_close(int handle)
{
    uint32_t block[1];
    block[0] = (uint32_t)handle;
    return tc_sh_call(SYS_CLOSE, block);
}

int tc_sh_read(int handle, void *buffer, size_t length)
{
    uint32_t block[3];
    block[0] = (uint32_t)handle;
    block[1] = (uint32_t)(uintptr_t)buffer;
    block[2] = (uint32_t)length;
    /* SYS_READ returns the number of bytes NOT read. */
    return tc_sh_call(SYS_READ, block) == 0 ? 0 : -1;
}

int tc_sh_write(int handle, const void *buffer, size_t length)
{
    uint32_t block[3];
    block[0] = (uint32_t)handle;
    block[1] = (uint32_t)(uintptr_t)buffer;
    block[2] = (uint32_t)length;
    /* SYS_WRITE returns the number of bytes NOT written. */
    return tc_sh_call(SYS_WRITE, block) == 0 ? 0 : -1;
}

long tc_sh_flen(int handle)
{
    uint32_t block[1];
    block[0] = (uint32_t)handle;
    return (long)tc_sh_call(SYS_FLEN, block);
}

void tc_sh_write0(const char *text)
{
    tc_sh_call(SYS_WRITE0, text);
}

void tc_sh_exit(int status)
{
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    /* SYS_EXIT_EXTENDED carries the status code on AArch32. A host without it returns, and
     * plain SYS_EXIT then reports success or failure without the code. */
    tc_sh_call(SYS_EXIT_EXTENDED, block);
    tc_sh_call(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT : 0x20023u));
    for (;;) {
    }
}
