"""SCons build script of the tinycompile QEMU platform.

Builds a project for a Cortex-M board that qemu-system-arm simulates, with the arm-none-eabi
toolchain found on PATH (the Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi), so
no toolchain is downloaded. The board manifest gives the compiler flags of the CPU
(`build.cpu_flags`) and the QEMU machine (`upload.qemu_machine`). The project supplies the
start-up code and the linker script (`board_build.ldscript`), because tinycompile renders both
for the project's SRAM budget.

The `upload` target runs the firmware in QEMU with Arm semihosting enabled and `-icount shift=0`,
prints its console output, and fails with the firmware's exit status unless that is 0. The status
is also written to `$BUILD_DIR/upload_exit_status.txt` for tools that call `pio run -t upload`.
"""

import os
import shutil
import subprocess
import sys

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()

TOOLCHAIN_PREFIX = "arm-none-eabi-"
QEMU = "qemu-system-arm"
EXIT_STATUS_FILE = "upload_exit_status.txt"
# Exit status of the upload when QEMU runs past upload.timeout, as coreutils `timeout` uses.
TIMEOUT_STATUS = 124


def fail(message):
    sys.stderr.write("Error: %s\n" % message)
    env.Exit(1)


for tool in ("gcc", "g++", "size"):
    if shutil.which(TOOLCHAIN_PREFIX + tool, path=env["ENV"].get("PATH")) is None:
        fail(
            "%s%s was not found on PATH; install the Debian packages gcc-arm-none-eabi and "
            "libnewlib-arm-none-eabi" % (TOOLCHAIN_PREFIX, tool)
        )

cpu_flags = board.get("build.cpu_flags", [])
if not cpu_flags:
    fail("board '%s' has no build.cpu_flags in its manifest" % env.subst("$BOARD"))

ldscript = board.get("build.ldscript", "")
if not ldscript:
    fail("set board_build.ldscript in platformio.ini to the project's linker script")
if not os.path.isabs(ldscript):
    ldscript = os.path.join(env.subst("$PROJECT_DIR"), ldscript)
if not os.path.isfile(ldscript):
    fail("linker script %s was not found; check board_build.ldscript" % ldscript)

env.Replace(
    AR=TOOLCHAIN_PREFIX + "gcc-ar",
    AS=TOOLCHAIN_PREFIX + "gcc",
    CC=TOOLCHAIN_PREFIX + "gcc",
    CXX=TOOLCHAIN_PREFIX + "g++",
    GDB=TOOLCHAIN_PREFIX + "gdb",
    OBJCOPY=TOOLCHAIN_PREFIX + "objcopy",
    RANLIB=TOOLCHAIN_PREFIX + "gcc-ranlib",
    SIZETOOL=TOOLCHAIN_PREFIX + "size",
    ARFLAGS=["rc"],
    LDSCRIPT_PATH=ldscript,
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    # Flash is code, constants and the load image of .data; RAM is the stack, .data and .bss,
    # as the sections of templates/linker/cortex-m.ld.j2 are named.
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPROGREGEXP=r"^(?:\.vectors|\.text|\.rodata|\.ARM\.extab|\.ARM\.exidx|\.data)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.stack|\.data|\.bss)\s+(\d+).*",
)

env.Append(
    ASFLAGS=cpu_flags + ["-x", "assembler-with-cpp"],
    CCFLAGS=cpu_flags + ["-O2", "-g", "-Wall", "-ffunction-sections", "-fdata-sections"],
    CXXFLAGS=["-fno-exceptions", "-fno-rtti"],
    LINKFLAGS=cpu_flags
    + [
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map," + os.path.join("$BUILD_DIR", "firmware.map"),
    ],
)


def qemu_command(elf):
    return [
        QEMU,
        "-M",
        board.get("upload.qemu_machine"),
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        elf,
    ]


def run_in_qemu(target, source, env):
    """Run the firmware in QEMU; return its exit status, which SCons treats as the result."""
    elf = str(source[0])
    status_path = os.path.join(env.subst("$BUILD_DIR"), EXIT_STATUS_FILE)
    if os.path.exists(status_path):
        os.remove(status_path)
    qemu = shutil.which(QEMU, path=env["ENV"].get("PATH"))
    if qemu is None:
        sys.stderr.write(
            "Error: %s was not found on PATH; install the Debian package qemu-system-arm\n" % QEMU
        )
        return 1
    timeout = float(board.get("upload.timeout", 300))
    command = qemu_command(elf)
    command[0] = qemu
    sys.stdout.flush()
    try:
        # stdin is closed so that QEMU leaves the terminal settings alone. QEMU prints the
        # semihosting console on stderr, which goes to stdout here: it is the firmware's output.
        status = subprocess.run(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=timeout, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        sys.stderr.write(
            "Error: the firmware did not exit within %g s; raise board_upload.timeout in "
            "platformio.ini or look for an endless loop\n" % timeout
        )
        status = TIMEOUT_STATUS
    with open(status_path, "w", encoding="utf-8") as handle:
        handle.write("%d\n" % status)
    if status != 0:
        sys.stderr.write("Error: the firmware exited with status %d\n" % status)
    return status


target_elf = env.BuildProgram()

AlwaysBuild(env.Alias("nobuild", target_elf))
env.AddPlatformTarget(
    "upload",
    target_elf,
    env.VerboseAction(run_in_qemu, "Running $SOURCE in QEMU (%s)" % board.get("upload.qemu_machine")),
    "Upload (run in QEMU)",
)

Default([target_elf])
