"""Cross-build a generated model with the firmware harness into a Cortex-M ELF image.

The model folder (``model.h``, ``model.c``, ``model_weights.c`` and ``tc/``) is compiled together
with ``firmware/harness`` by ``arm-none-eabi-gcc`` for the board's CPU, and linked with a linker
script rendered from ``templates/linker/<arch>.ld.j2``. The script's RAM region is as long as the
SRAM budget, so data + bss + stack that exceed the budget fail to link. That failure becomes a
``BudgetError`` with the overflow in bytes. Section sizes are read back from the ELF with
``arm-none-eabi-size``, and the ELF is checked for heap allocator symbols, because generated code
and harness must not allocate memory at run time.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from tinycompile.deploy.boards import DEFAULT_STACK_SIZE, Board, resolve_sram_budget
from tinycompile.errors import BudgetError, TinyCompileError, ToolError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT / "firmware" / "harness"
LINKER_TEMPLATE_DIR = REPO_ROOT / "templates" / "linker"

TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi and libnewlib-arm-none-eabi"

# Harness sources linked into every image. The start-up file and the main file are added per build.
_HARNESS_COMMON_SOURCES = ("semihosting.c", "startup_common.c", "timer.c")

# Symbols whose presence means something in the image allocates from a heap.
_HEAP_SYMBOLS = ("malloc", "_malloc_r", "calloc", "_calloc_r", "realloc", "_realloc_r", "_sbrk", "_sbrk_r")

_OVERFLOW_PATTERN = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_NO_FIT_PATTERN = re.compile(r"section `([^']+)' will not fit in region `(\w+)'")

# Output sections of the linker template, grouped the way FirmwareImage reports them.
_TEXT_SECTIONS = (".vectors", ".text", ".ARM.extab", ".ARM.exidx")
_RODATA_SECTIONS = (".rodata",)


@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware ELF and its section sizes in bytes, measured from the ELF.

    ``flash`` is what the image stores in flash: code, constants and the .data load image.
    ``sram`` is what it occupies in RAM: .data, .bss including the model arena, and the stack.
    ``timer`` is the layer timer compiled in: "systick" (QEMU and Cortex-M0+) or "dwt".
    """

    elf: Path
    board: str
    sram_budget: int
    stack_size: int
    profile: bool
    timer: str
    text: int
    rodata: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def sram(self) -> int:
        return self.data + self.bss + self.stack_size


def cpu_flags(board: Board) -> list[str]:
    """Return the gcc code-generation flags for the board's CPU, FPU, DSP and MVE settings."""
    extensions = ""
    if board.cpu in ("cortex-m33", "cortex-m55"):
        if not board.dsp:
            extensions += "+nodsp"
        if board.fpu is None:
            extensions += "+nofp"
    if board.cpu == "cortex-m55" and not board.mve:
        extensions += "+nomve"
    flags = [f"-mcpu={board.cpu}{extensions}", "-mthumb"]
    if board.fpu is None:
        flags.append("-mfloat-abi=soft")
    else:
        flags += ["-mfloat-abi=hard", f"-mfpu={board.fpu}"]
    return flags


def build_firmware(
    model_dir: Path,
    board: Board,
    out_dir: Path,
    *,
    opt: str = "-O2",
    sram_budget: int | None = None,
    profile: bool = True,
    extra_sources: Sequence[Path] = (),
    stack_size: int = DEFAULT_STACK_SIZE,
    defines: Sequence[str] = (),
) -> FirmwareImage:
    """Compile the generated model in ``model_dir`` with the harness into ``out_dir/firmware.elf``.

    ``profile`` defines TC_PROFILE so the model calls the harness's per-layer hooks.
    ``defines`` are extra preprocessor definitions ("NAME" or "NAME=VALUE"). Raises ToolError if
    the toolchain is missing or compilation fails, BudgetError if the image does not fit the SRAM
    budget or the board's flash.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "model.h").is_file():
        raise TinyCompileError(f"{model_dir} has no model.h; pass the folder the compiler generated")
    sources = sorted(model_dir.rglob("*.c"))
    includes = [model_dir, model_dir / "tc"]
    harness = [HARNESS_DIR / "harness_main.c", HARNESS_DIR / "profile.c"]
    all_defines = list(defines) + (["TC_PROFILE"] if profile else [])
    return _build(
        board,
        Path(out_dir),
        sources=[*sources, *harness, *map(Path, extra_sources)],
        includes=includes,
        opt=opt,
        sram_budget=sram_budget,
        stack_size=stack_size,
        defines=all_defines,
        profile=profile,
    )


def build_calibration_firmware(board: Board, out_dir: Path) -> FirmwareImage:
    """Build the timer calibration firmware (firmware/harness/calibrate_main.c) for ``board``."""
    return _build(
        board,
        Path(out_dir),
        sources=[HARNESS_DIR / "calibrate_main.c"],
        includes=[],
        opt="-O2",
        sram_budget=None,
        stack_size=DEFAULT_STACK_SIZE,
        defines=[],
        profile=False,
    )


def _build(
    board: Board,
    out_dir: Path,
    *,
    sources: list[Path],
    includes: list[Path],
    opt: str,
    sram_budget: int | None,
    stack_size: int,
    defines: list[str],
    profile: bool,
) -> FirmwareImage:
    gcc = _find_tool("arm-none-eabi-gcc")
    size_tool = _find_tool("arm-none-eabi-size")
    nm_tool = _find_tool("arm-none-eabi-nm")
    if isinstance(stack_size, bool) or not isinstance(stack_size, int) or stack_size <= 0 or stack_size % 8:
        raise TinyCompileError(f"stack size {stack_size!r} is invalid; give a positive multiple of 8 bytes")
    budget = resolve_sram_budget(board, sram_budget)

    out_dir.mkdir(parents=True, exist_ok=True)
    linker_script = out_dir / "firmware.ld"
    linker_script.write_text(render_linker_script(board, budget, stack_size), encoding="utf-8")
    elf = out_dir / "firmware.elf"

    # DWT is absent on Armv6-M and not modelled by QEMU, but SysTick works everywhere.
    timer = "dwt" if not board.simulated and board.arch != "armv6m" else "systick"
    harness_sources = [HARNESS_DIR / name for name in _HARNESS_COMMON_SOURCES]
    harness_sources.append(HARNESS_DIR / f"startup_{board.arch}.c")
    command = [
        gcc,
        *cpu_flags(board),
        opt,
        "-g",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-ffunction-sections",
        "-fdata-sections",
        *(f"-D{define}" for define in defines),
        *(["-DTC_TIMER_DWT"] if timer == "dwt" else []),
        *(f"-I{path}" for path in includes),
        f"-I{HARNESS_DIR}",
        *(str(path) for path in [*sources, *harness_sources]),
        "-T",
        str(linker_script),
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        f"-Wl,-Map={out_dir / 'firmware.map'}",
        "-o",
        str(elf),
        "-lm",  # after the objects: kernels that follow float references call expf and friends
    ]
    logger.info("building firmware for %s in %s", board.name, out_dir)
    logger.debug("compile command: %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    log_path = out_dir / "build.log"
    log_path.write_text(" ".join(command) + "\n\n" + result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        _raise_build_failure(result.stderr, board, budget, log_path)

    sizes = _section_sizes(size_tool, elf)
    _reject_heap(nm_tool, elf)
    image = FirmwareImage(
        elf=elf,
        board=board.name,
        sram_budget=budget,
        stack_size=stack_size,
        profile=profile,
        timer=timer,
        text=sum(sizes.get(name, 0) for name in _TEXT_SECTIONS),
        rodata=sum(sizes.get(name, 0) for name in _RODATA_SECTIONS),
        data=sizes.get(".data", 0),
        bss=sizes.get(".bss", 0),
    )
    logger.info(
        "firmware %s: flash %d bytes, SRAM %d of %d bytes", elf, image.flash, image.sram, budget
    )
    return image


def render_linker_script(board: Board, sram_budget: int, stack_size: int) -> str:
    """Render the linker script of the board's architecture family with the budgeted RAM region."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(LINKER_TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    template_name = f"{board.arch}.ld.j2"

    def region(origin: int, length: int) -> dict[str, str]:
        return {"origin": f"0x{origin:08X}", "length": f"0x{length:X}"}

    return environment.get_template(template_name).render(
        template_name=template_name,
        board_name=board.name,
        boot=region(board.boot.origin, board.boot.size) if board.boot else None,
        flash=region(board.flash.origin, board.flash.size),
        ram=region(board.sram.origin, sram_budget),
        stack_size=stack_size,
    )


def _find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(
            f"{name} was not found on PATH; install the Debian packages {TOOLCHAIN_PACKAGES} "
            f"(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )
    return path


def _raise_build_failure(stderr: str, board: Board, budget: int, log_path: Path) -> None:
    overflows = {region: int(count) for region, count in _OVERFLOW_PATTERN.findall(stderr)}
    if "RAM" in overflows:
        raise BudgetError(
            f"firmware for board '{board.name}' needs {overflows['RAM']} bytes more SRAM than the "
            f"budget of {budget} bytes (data + bss + stack); shrink the model or raise the SRAM "
            f"budget"
        )
    for region in ("FLASH", "BOOT"):
        if region in overflows:
            raise BudgetError(
                f"firmware for board '{board.name}' is {overflows[region]} bytes larger than its "
                f"{region.lower()} region ({board.flash.size} bytes of flash); shrink the model"
            )
    if "undefined reference to `end'" in stderr or "undefined reference to `_sbrk'" in stderr:
        # libnosys's _sbrk needs the heap start symbol `end`, which the linker script leaves out
        # on purpose, so any heap allocation fails to link here.
        raise TinyCompileError(
            f"firmware for board '{board.name}' calls the heap allocator (malloc or similar); "
            f"generated code and harness must use static memory only, so remove that call "
            f"(full log: {log_path})"
        )
    no_fit = _NO_FIT_PATTERN.search(stderr)
    if no_fit:
        raise BudgetError(
            f"section {no_fit.group(1)} does not fit in region {no_fit.group(2)} on board "
            f"'{board.name}'; shrink the model or raise the SRAM budget"
        )
    lines = [line for line in stderr.splitlines() if not line.startswith("collect2:")]
    first_error = next(
        (line for line in lines if "error:" in line or "undefined reference" in line),
        lines[0] if lines else "no output",
    )
    raise ToolError(f"arm-none-eabi-gcc failed for board '{board.name}': {first_error.strip()} (full log: {log_path})")


def _section_sizes(size_tool: str, elf: Path) -> dict[str, int]:
    """Return the size in bytes of each section of ``elf`` (``arm-none-eabi-size -A``)."""
    result = subprocess.run([size_tool, "-A", "-d", str(elf)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolError(f"arm-none-eabi-size failed on {elf}: {result.stderr.strip()}")
    sizes: dict[str, int] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith(".") and fields[1].isdigit():
            sizes[fields[0]] = int(fields[1])
    return sizes


def _reject_heap(nm_tool: str, elf: Path) -> None:
    result = subprocess.run([nm_tool, str(elf)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolError(f"arm-none-eabi-nm failed on {elf}: {result.stderr.strip()}")
    defined = {line.split()[-1] for line in result.stdout.splitlines() if line.strip()}
    found = sorted(set(_HEAP_SYMBOLS) & defined)
    if found:
        raise TinyCompileError(
            f"firmware {elf} links the heap allocator ({', '.join(found)}); generated code and "
            f"harness must use static memory only, so remove the call that needs it"
        )
