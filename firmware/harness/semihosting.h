/*
 * Arm semihosting calls used by the tinycompile test harness.
 *
 * On M-profile cores a semihosting request is "bkpt 0xAB" with the operation number in r0 and
 * a pointer to the argument block in r1. The debugger or emulator (QEMU with
 * -semihosting-config enable=on,target=native) performs the request on the host and puts the
 * result in r0. Without a debugger attached the bkpt instruction faults, so firmware built with
 * this file only runs under QEMU or a debug probe with semihosting enabled.
 *
 * Operation numbers and argument blocks follow Arm's "Semihosting for AArch32 and AArch64"
 * specification, version 2.0.
 */
#ifndef TC_SEMIHOSTING_H
#define TC_SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

/* SYS_OPEN modes (index into the ISO C fopen mode table). */
#define TC_SH_MODE_READ_BINARY 1  /* "rb" */
#define TC_SH_MODE_WRITE_BINARY 5 /* "wb" */

/* Open a host file and return a non-negative handle, or -1 on failure. */
int tc_sh_open(const char *path, int mode);
/* Close a handle and return 0 on success. */
int tc_sh_close(int handle);
/* Read exactly `length` bytes and return 0, or -1 on a short read or error. */
int tc_sh_read(int handle, void *buffer, size_t length);
/* Write exactly `length` bytes and return 0, or -1 on a short write or error. */
int tc_sh_write(int handle, const void *buffer, size_t length);
/* Return the length of an open file in bytes, or -1. */
long tc_sh_flen(int handle);
/* Print a NUL-terminated string on the host console. */
void tc_sh_write0(const char *text);
/* Stop the program. QEMU exits with `status` as its own exit status. */
void tc_sh_exit(int status) __attribute__((noreturn));

#endif /* TC_SEMIHOSTING_H */
