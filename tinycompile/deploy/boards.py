"""Board descriptions: load ``boards/<name>.yaml`` into validated, frozen :class:`Board` objects.

A board file states the CPU and its extensions (FPU, DSP, MVE) and the memory regions the
firmware may use: flash for code and constants, SRAM for data, arena and stack, and optionally a
separate boot region for the vector table. It also states how to run the firmware: a QEMU machine
for simulated boards, or a PlatformIO target and clock for real ones. Every field is checked when the file is loaded, so later stages
(linker script, compiler flags, QEMU command line) can trust the values; a bad file raises
``TinyCompileError`` with one line naming the file and the field.

Simulated boards map megabytes of RAM, far more than the microcontrollers tinycompile targets, so
builds for them are limited to an SRAM budget (256 KB unless the caller sets another).
:func:`check_fits` compares a memory plan with that budget before anything is compiled; the
linker script enforces the same limit afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tinycompile.errors import BudgetError, TinyCompileError

logger = logging.getLogger(__name__)

# The boards/ folder at the repository root (the package is used from a source checkout).
BOARDS_DIR = Path(__file__).resolve().parents[2] / "boards"

DEFAULT_BOARD = "qemu-m4"
# SRAM budget of simulated boards unless the caller sets one: the reference microcontroller size.
DEFAULT_SRAM_BUDGET = 256 * 1024
# Stack reserved by the firmware harness unless the caller sets another size.
DEFAULT_STACK_SIZE = 8 * 1024
# Static RAM of the firmware harness besides the model: output buffers, timer state and one
# 64-bit tick counter per layer. NOTE: this is an estimate, rounded up from a build of the test
# model on qemu-m4 (748 bytes of .bss besides the arena). The linker script is the exact check.
HARNESS_SRAM_BYTES = 1024
HARNESS_SRAM_BYTES_PER_LAYER = 8

# Architecture family of each supported CPU, which selects the start-up code and linker template.
CPU_ARCH = {
    "cortex-m0plus": "armv6m",
    "cortex-m3": "armv7m",
    "cortex-m4": "armv7m",
    "cortex-m7": "armv7m",
    "cortex-m33": "armv8m",
    "cortex-m55": "armv8m",
}

# gcc -mfpu values each CPU can have ("none" for no FPU). "auto" lets gcc derive the FPU and
# MVE from -mcpu, the only form gcc accepts for the Cortex-M55's MVE with floating point.
CPU_FPUS = {
    "cortex-m0plus": ("none",),
    "cortex-m3": ("none",),
    "cortex-m4": ("none", "fpv4-sp-d16"),
    "cortex-m7": ("none", "fpv5-sp-d16", "fpv5-d16"),
    "cortex-m33": ("none", "fpv5-sp-d16"),
    "cortex-m55": ("none", "auto"),
}

# The DSP extension is fixed for these CPUs: absent (False) or always present (True).
CPU_FIXED_DSP = {
    "cortex-m0plus": False,
    "cortex-m3": False,
    "cortex-m4": True,
    "cortex-m7": True,
}

_TOP_LEVEL_FIELDS = {
    "name", "description", "cpu", "fpu", "dsp", "mve", "simulated", "qemu", "platformio",
    "clock_hz", "memory",
}
_REGION_FIELDS = {"name", "origin", "size", "note"}


@dataclass(frozen=True)
class MemoryRegion:
    """One contiguous address range: origin and size in bytes, with a note on what it is."""

    name: str
    origin: int
    size: int
    note: str = ""

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.origin + self.size


@dataclass(frozen=True)
class QemuTarget:
    """How to simulate a board: the QEMU machine and its SysTick-to-instruction ratio.

    ``instructions_per_tick`` converts SysTick ticks to executed instructions under
    ``qemu-system-arm -icount shift=0``. It is 1e9 divided by the machine's SysTick clock in Hz.
    """

    machine: str
    instructions_per_tick: float


@dataclass(frozen=True)
class PlatformIOTarget:
    """PlatformIO platform, board id and framework used to build for a real board."""

    platform: str
    board: str
    framework: str


@dataclass(frozen=True)
class Board:
    """A validated board description loaded from ``boards/<name>.yaml``."""

    name: str
    description: str
    cpu: str
    fpu: str | None  # gcc -mfpu value, None when the CPU has no FPU
    dsp: bool
    mve: bool
    flash: MemoryRegion
    sram: MemoryRegion
    boot: MemoryRegion | None  # where the vector table goes when the reset VTOR is outside flash
    extra_regions: tuple[MemoryRegion, ...]
    simulated: bool
    qemu: QemuTarget | None
    platformio: PlatformIOTarget | None
    clock_hz: int | None
    path: Path

    @property
    def arch(self) -> str:
        """Architecture family: "armv6m", "armv7m" or "armv8m"."""
        return CPU_ARCH[self.cpu]

    @property
    def qemu_machine(self) -> str | None:
        """QEMU machine name of a simulated board, None for a real one."""
        return self.qemu.machine if self.qemu else None

    @property
    def default_sram_budget(self) -> int:
        """SRAM budget when the caller sets none: 256 KB on simulated boards, all SRAM on real ones."""
        return min(DEFAULT_SRAM_BUDGET, self.sram.size) if self.simulated else self.sram.size


@dataclass(frozen=True)
class FitReport:
    """Result of :func:`check_fits`: the budget, the bytes the plan needs and the bytes left."""

    board: str
    sram_budget: int
    required_bytes: int

    @property
    def free_bytes(self) -> int:
        return self.sram_budget - self.required_bytes


def list_boards(boards_dir: Path | None = None) -> list[str]:
    """Return the names of the boards that have a YAML file, sorted."""
    directory = boards_dir or BOARDS_DIR
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_board(name: str, boards_dir: Path | None = None) -> Board:
    """Load and validate the board called ``name``, raising TinyCompileError if unknown or invalid."""
    directory = boards_dir or BOARDS_DIR
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_boards(directory)) or "none"
        raise TinyCompileError(f"unknown board '{name}'; known boards: {known}")
    return load_board_file(path)


def load_board_file(path: Path) -> Board:
    """Load and validate one board YAML file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise TinyCompileError(f"board file {path}{where}: invalid YAML; fix the syntax") from None
    return _BoardParser(path, raw).parse()


def resolve_sram_budget(board: Board, sram_budget: int | None) -> int:
    """Return the SRAM budget for a build: the caller's value if valid, else the board default."""
    if sram_budget is None:
        return board.default_sram_budget
    if isinstance(sram_budget, bool) or not isinstance(sram_budget, int) or sram_budget <= 0:
        raise TinyCompileError(
            f"SRAM budget {sram_budget!r} is invalid; give a positive number of bytes"
        )
    if sram_budget > board.sram.size:
        raise TinyCompileError(
            f"SRAM budget of {sram_budget} bytes exceeds the {board.sram.size} bytes of SRAM on "
            f"board '{board.name}'; use at most {board.sram.size}"
        )
    return sram_budget


def harness_sram_bytes(num_layers: int) -> int:
    """Estimate the static RAM that the firmware harness adds to a model with ``num_layers``."""
    return HARNESS_SRAM_BYTES + HARNESS_SRAM_BYTES_PER_LAYER * num_layers


def check_fits(
    board: Board,
    arena_bytes: int,
    *,
    sram_budget: int | None = None,
    stack_bytes: int = DEFAULT_STACK_SIZE,
    other_bytes: int = 0,
) -> FitReport:
    """Check that arena + stack + other static data fit the SRAM budget of ``board``.

    ``other_bytes`` covers the model's other static RAM and the harness (see
    :func:`harness_sram_bytes`). Raises BudgetError naming the overflow in bytes.
    """
    budget = resolve_sram_budget(board, sram_budget)
    required = arena_bytes + stack_bytes + other_bytes
    if required > budget:
        raise BudgetError(
            f"the model needs {required} bytes of SRAM (arena {arena_bytes}, stack {stack_bytes}, "
            f"other static data {other_bytes}) but board '{board.name}' has a budget of "
            f"{budget} bytes, {required - budget} bytes short; shrink the model or raise the "
            f"SRAM budget"
        )
    return FitReport(board=board.name, sram_budget=budget, required_bytes=required)


class _BoardParser:
    """Validates the raw YAML mapping of one board file field by field."""

    def __init__(self, path: Path, raw: Any) -> None:
        self.path = path
        self.raw = raw

    def fail(self, field: str, message: str) -> TinyCompileError:
        return TinyCompileError(f"board file {self.path}: field '{field}' {message}")

    def parse(self) -> Board:
        if not isinstance(self.raw, dict):
            raise TinyCompileError(
                f"board file {self.path}: expected a mapping of fields, got "
                f"{type(self.raw).__name__}"
            )
        unknown = sorted(set(self.raw) - _TOP_LEVEL_FIELDS)
        if unknown:
            raise self.fail(
                unknown[0], f"is not a board field; known fields: {', '.join(sorted(_TOP_LEVEL_FIELDS))}"
            )

        name = self.string("name", self.raw.get("name"))
        if name != self.path.stem:
            raise self.fail("name", f"is '{name}' but the file is named {self.path.name}; make them match")
        cpu = self.choice("cpu", tuple(CPU_ARCH))
        fpu = self.choice("fpu", CPU_FPUS[cpu], detail=f"for {cpu}")
        dsp = self.boolean("dsp")
        if cpu in CPU_FIXED_DSP and dsp != CPU_FIXED_DSP[cpu]:
            has_dsp = "always has the" if CPU_FIXED_DSP[cpu] else "has no"
            raise self.fail("dsp", f"is {dsp} but {cpu} {has_dsp} DSP extension")
        mve = self.boolean("mve")
        if mve and cpu != "cortex-m55":
            raise self.fail("mve", f"is true but {cpu} has no M-profile Vector Extension")
        simulated = self.boolean("simulated")
        flash, sram, boot, extra = self.memory()

        qemu = platformio = clock_hz = None
        if simulated:
            qemu = self.qemu_target()
            for field in ("platformio", "clock_hz"):
                if field in self.raw:
                    raise self.fail(field, "applies to real boards only; remove it or set simulated: false")
        else:
            if "qemu" in self.raw:
                raise self.fail("qemu", "applies to simulated boards only; remove it or set simulated: true")
            platformio = self.platformio_target()
            clock_hz = self.positive_int("clock_hz", self.raw.get("clock_hz"))

        return Board(
            name=name,
            description=self.string("description", self.raw.get("description")),
            cpu=cpu,
            fpu=None if fpu == "none" else fpu,
            dsp=dsp,
            mve=mve,
            flash=flash,
            sram=sram,
            boot=boot,
            extra_regions=extra,
            simulated=simulated,
            qemu=qemu,
            platformio=platformio,
            clock_hz=clock_hz,
            path=self.path,
        )

    def string(self, field: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"is {value!r}; expected a non-empty string")
        return value

    def boolean(self, field: str) -> bool:
        value = self.raw.get(field)
        if not isinstance(value, bool):
            raise self.fail(field, f"is {value!r}; expected true or false")
        return value

    def choice(self, field: str, allowed: tuple[str, ...], *, detail: str = "") -> str:
        value = self.raw.get(field)
        if value not in allowed:
            suffix = f" {detail}" if detail else ""
            raise self.fail(field, f"is {value!r}; expected one of {', '.join(allowed)}{suffix}")
        return value

    def positive_int(self, field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(field, f"is {value!r}; expected a positive integer")
        return value

    def mapping(self, field: str, value: Any, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(field, f"is {value!r}; expected a mapping with {', '.join(sorted(required))}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{field}.{unknown[0]}", f"is not allowed here; allowed: {', '.join(sorted(allowed))}")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{field}.{missing[0]}", "is missing")
        return value

    def region(self, field: str, value: Any, default_name: str | None) -> MemoryRegion:
        required = {"origin", "size"} | (set() if default_name else {"name"})
        entry = self.mapping(field, value, _REGION_FIELDS, required)
        origin = entry["origin"]
        if isinstance(origin, bool) or not isinstance(origin, int) or not 0 <= origin < 2**32:
            raise self.fail(f"{field}.origin", f"is {origin!r}; expected an address from 0 to 0xFFFFFFFF")
        size = self.positive_int(f"{field}.size", entry["size"])
        if origin + size > 2**32:
            raise self.fail(f"{field}.size", f"is {size:#x}; the region would end past 0xFFFFFFFF")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise self.fail(f"{field}.note", f"is {note!r}; expected a string")
        name = entry.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise self.fail(f"{field}.name", f"is {name!r}; expected a non-empty string")
        return MemoryRegion(name=name, origin=origin, size=size, note=note)

    def memory(self) -> tuple[MemoryRegion, MemoryRegion, MemoryRegion | None, tuple[MemoryRegion, ...]]:
        memory = self.mapping("memory", self.raw.get("memory"), {"flash", "sram", "boot", "extra"}, {"flash", "sram"})
        flash = self.region("memory.flash", memory["flash"], "flash")
        sram = self.region("memory.sram", memory["sram"], "sram")
        boot = self.region("memory.boot", memory["boot"], "boot") if "boot" in memory else None
        for first, second in ((flash, sram), (boot, flash), (boot, sram)):
            if first is not None and first.origin < second.end and second.origin < first.end:
                raise self.fail(
                    f"memory.{first.name}", f"overlaps memory.{second.name}; the regions must be disjoint"
                )
        extra_raw = memory.get("extra", [])
        if not isinstance(extra_raw, list):
            raise self.fail("memory.extra", f"is {extra_raw!r}; expected a list of regions")
        extra = tuple(self.region(f"memory.extra[{index}]", item, None) for index, item in enumerate(extra_raw))
        return flash, sram, boot, extra

    def qemu_target(self) -> QemuTarget:
        entry = self.mapping("qemu", self.raw.get("qemu"), {"machine", "instructions_per_tick"}, {"machine", "instructions_per_tick"})
        machine = self.string("qemu.machine", entry["machine"])
        ratio = entry["instructions_per_tick"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
            raise self.fail("qemu.instructions_per_tick", f"is {ratio!r}; expected a positive number")
        return QemuTarget(machine=machine, instructions_per_tick=float(ratio))

    def platformio_target(self) -> PlatformIOTarget:
        fields = {"platform", "board", "framework"}
        entry = self.mapping("platformio", self.raw.get("platformio"), fields, fields)
        return PlatformIOTarget(
            platform=self.string("platformio.platform", entry["platform"]),
            board=self.string("platformio.board", entry["board"]),
            framework=self.string("platformio.framework", entry["framework"]),
        )
