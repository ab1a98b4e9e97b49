"""Run harness firmware in qemu-system-arm and collect outputs, instruction counts and stack use.

The firmware (see firmware/harness/harness_main.c) talks to the host through Arm semihosting: it
reads ``tc_input.bin`` and writes ``tc_output.bin``, ``tc_profile.txt`` and ``tc_progress.txt`` in
QEMU's working directory, a fresh temporary folder per run, and exits with a status code through
SYS_EXIT_EXTENDED.

QEMU runs with ``-icount shift=0``: the virtual clock advances exactly 1 ns per executed
instruction, so SysTick ticks, and therefore the reported counts, are identical on every run of
the same image and input, whatever the host load. The harness measures SysTick ticks per layer,
and this module multiplies them by the board's ``qemu.instructions_per_tick`` to report executed
instructions. These are not cycles, because QEMU does not model pipelines, caches or wait states.
One tick is several instructions, so each layer count is exact to within one tick's worth.

A firmware that hangs is killed at the timeout; one that faults exits through its fault handler.
Both raise a :class:`FirmwareError` subclass naming the last layer that completed, taken from the
progress file the harness flushes after every layer.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinycompile.deploy.boards import Board
from tinycompile.deploy.cross import FirmwareImage, build_calibration_firmware
from tinycompile.errors import TinyCompileError, ToolError

logger = logging.getLogger(__name__)

QEMU_BINARY = "qemu-system-arm"
QEMU_PACKAGE = "qemu-system-arm"

INPUT_FILE = "tc_input.bin"
OUTPUT_FILE = "tc_output.bin"
PROFILE_FILE = "tc_profile.txt"
PROGRESS_FILE = "tc_progress.txt"

# Exit codes of the harness (firmware/harness/tc_harness.h).
EXIT_OK = 0
EXIT_REASONS = {
    3: "the firmware could not open or read its input file",
    4: "the input is not a whole number of samples for this model; check the sample size",
    5: "the firmware could not write its output files",
    6: "tc_model_init() returned an error",
    7: "tc_model_invoke() returned an error",
    8: "the firmware took a fault exception",
    9: "the stack overflowed; raise the stack size",
}
EXIT_FAULT = 8

_CALIBRATION_PATTERN = re.compile(r"calibration instructions=(\d+) ticks=(\d+)")
_CFSR_PATTERN = re.compile(r"cfsr=0x([0-9a-f]{8})")

# Configurable Fault Status Register bits (Armv7-M and Armv8-M Mainline) worth naming.
_CFSR_BITS = {
    0: "instruction access violation",
    1: "data access violation",
    8: "instruction bus error",
    9: "precise data bus error",
    10: "imprecise data bus error",
    16: "undefined instruction",
    17: "invalid state",
    18: "invalid exception return",
    19: "coprocessor (FPU or MVE) disabled",
    20: "stack overflow (MSPLIM)",
    24: "unaligned access",
    25: "division by zero",
}


class FirmwareError(TinyCompileError):
    """The firmware did not complete its run in QEMU."""

    def __init__(self, message: str, *, last_sample: int | None = None, last_layer: int | None = None) -> None:
        super().__init__(message)
        self.last_sample = last_sample
        self.last_layer = last_layer


class FirmwareTimeoutError(FirmwareError):
    """The firmware did not exit before the timeout (a hang or an endless loop)."""


class FirmwareFaultError(FirmwareError):
    """The firmware took a HardFault or another fault exception."""


@dataclass(frozen=True)
class QemuRun:
    """Result of one firmware run in QEMU.

    Counts are executed instructions (SysTick ticks x the board's instructions per tick).
    ``layer_instructions`` and ``total_instructions`` are means over the samples, rounded, and
    the ``*_per_sample`` fields contain every sample's values. ``total_instructions`` covers the
    whole tc_model_invoke() call without the profiling hooks' progress output.
    """

    outputs: list[bytes]
    layer_instructions: list[int]
    total_instructions: int
    layer_instructions_per_sample: list[list[int]]
    total_instructions_per_sample: list[int]
    instructions_per_tick: float
    stack_used: int
    stack_size: int
    exit_code: int
    console: str


@dataclass(frozen=True)
class _Profile:
    timer: str
    layer_count: int
    samples: list[tuple[int, list[int]]]  # (invoke ticks, ticks per layer)
    stack_size: int
    stack_used: int


@dataclass(frozen=True)
class _Progress:
    sample: int | None
    layer: int | None
    layer_name: str | None
    samples_done: int


def find_qemu() -> str:
    """Return the path of qemu-system-arm or raise ToolError naming the Debian package."""
    path = shutil.which(QEMU_BINARY)
    if path is None:
        raise ToolError(
            f"{QEMU_BINARY} was not found on PATH; install the Debian package {QEMU_PACKAGE} "
            f"(apt-get install {QEMU_PACKAGE})"
        )
    return path


def qemu_command(qemu: str, board: Board, elf: Path) -> list[str]:
    """Return the qemu-system-arm command line that runs ``elf`` on a simulated board."""
    if not board.simulated or board.qemu is None:
        raise TinyCompileError(
            f"board '{board.name}' is a real board, not simulated; run it on hardware or pick a "
            f"qemu-* board"
        )
    return [
        qemu,
        "-M",
        board.qemu.machine,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        str(elf),
    ]


def run_firmware(
    image: FirmwareImage,
    board: Board,
    samples: Sequence[bytes],
    output_size: int,
    *,
    timeout: float,
) -> QemuRun:
    """Run ``image`` on the simulated ``board`` over ``samples`` and return outputs and counts.

    Each sample is the model's inputs concatenated in index order. ``output_size`` is the byte
    size of one sample's outputs, all outputs concatenated. Raises FirmwareTimeoutError after
    ``timeout`` seconds, FirmwareFaultError on a fault, FirmwareError on any other failure.
    """
    qemu = find_qemu()
    if image.board != board.name:
        raise TinyCompileError(
            f"firmware {image.elf} was built for board '{image.board}', not '{board.name}'; rebuild it"
        )
    command = qemu_command(qemu, board, image.elf)
    _check_samples(samples)

    with tempfile.TemporaryDirectory(prefix="tc-qemu-") as work:
        work_dir = Path(work)
        (work_dir / INPUT_FILE).write_bytes(b"".join(samples))
        logger.info("running %s on %s (%d samples)", image.elf, board.qemu_machine, len(samples))
        try:
            result = subprocess.run(
                command, cwd=work_dir, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as expired:
            progress = _read_progress(work_dir)
            logger.debug("qemu timed out; console output:\n%s", _decode(expired.stdout) + _decode(expired.stderr))
            raise FirmwareTimeoutError(
                f"firmware on board '{board.name}' did not finish within {timeout:g} s; "
                f"{_describe_progress(progress)}; check the next layer for an endless loop",
                last_sample=progress.sample,
                last_layer=progress.layer,
            ) from None
        console = _decode(result.stdout) + _decode(result.stderr)
        logger.debug("qemu exited with %d; console output:\n%s", result.returncode, console)

        if result.returncode != EXIT_OK:
            progress = _read_progress(work_dir)
            _raise_exit_failure(result.returncode, console, board, progress)

        outputs = _split_outputs(work_dir / OUTPUT_FILE, len(samples), output_size)
        profile = _parse_profile(work_dir / PROFILE_FILE)

    if len(profile.samples) != len(samples):
        raise FirmwareError(
            f"firmware profile lists {len(profile.samples)} samples, expected {len(samples)}"
        )
    ratio = board.qemu.instructions_per_tick
    layers_per_sample = [[round(ticks * ratio) for ticks in layers] for _, layers in profile.samples]
    totals = [round(invoke * ratio) for invoke, _ in profile.samples]
    layer_means = [round(sum(column) / len(column)) for column in zip(*layers_per_sample)]
    return QemuRun(
        outputs=outputs,
        layer_instructions=layer_means,
        total_instructions=round(sum(totals) / len(totals)),
        layer_instructions_per_sample=layers_per_sample,
        total_instructions_per_sample=totals,
        instructions_per_tick=ratio,
        stack_used=profile.stack_used,
        stack_size=profile.stack_size,
        exit_code=result.returncode,
        console=console,
    )


def measure_instructions_per_tick(board: Board, work_dir: Path, *, timeout: float = 30.0) -> float:
    """Measure how many instructions one SysTick tick is on ``board``'s QEMU machine.

    Builds firmware/harness/calibrate_main.c, which times a loop of 2,000,000 instructions, runs
    it under -icount shift=0 and returns instructions / ticks.
    """
    qemu = find_qemu()
    image = build_calibration_firmware(board, Path(work_dir))
    command = qemu_command(qemu, board, image.elf)
    try:
        result = subprocess.run(
            command, cwd=work_dir, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise FirmwareTimeoutError(
            f"calibration firmware on board '{board.name}' did not finish within {timeout:g} s"
        ) from None
    console = _decode(result.stdout) + _decode(result.stderr)
    match = _CALIBRATION_PATTERN.search(console)
    if result.returncode != EXIT_OK or match is None:
        raise FirmwareError(
            f"calibration firmware on board '{board.name}' failed (exit code {result.returncode}): "
            f"{console.strip() or 'no output'}"
        )
    instructions, ticks = int(match.group(1)), int(match.group(2))
    if ticks == 0:
        raise FirmwareError(f"SysTick did not advance on board '{board.name}'; run QEMU with -icount")
    return instructions / ticks


def _check_samples(samples: Sequence[bytes]) -> None:
    if len(samples) == 0:
        raise TinyCompileError("no input samples given; pass at least one sample")
    sizes = {len(sample) for sample in samples}
    if len(sizes) != 1 or 0 in sizes:
        raise TinyCompileError(
            f"input samples have sizes {sorted(sizes)} bytes; every sample must have the model's "
            f"total input size"
        )


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _read_progress(work_dir: Path) -> _Progress:
    """Parse the progress file: the last completed layer and the number of finished samples."""
    path = work_dir / PROGRESS_FILE
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
    samples_done = sum(1 for line in lines if line.endswith(" done"))
    for line in reversed(lines):
        fields = line.split(maxsplit=2)
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            name = fields[2] if len(fields) == 3 else None
            return _Progress(sample=int(fields[0]), layer=int(fields[1]), layer_name=name, samples_done=samples_done)
    return _Progress(sample=None, layer=None, layer_name=None, samples_done=samples_done)


def _describe_progress(progress: _Progress) -> str:
    if progress.layer is None:
        return f"no layer completed ({progress.samples_done} samples finished)"
    name = f" '{progress.layer_name}'" if progress.layer_name else ""
    return (
        f"last completed layer: {progress.layer}{name} of sample {progress.sample} "
        f"({progress.samples_done} samples finished)"
    )


def _raise_exit_failure(code: int, console: str, board: Board, progress: _Progress) -> None:
    harness_lines = [line for line in console.splitlines() if line.startswith("tc-harness:")]
    detail = harness_lines[-1].removeprefix("tc-harness:").strip() if harness_lines else console.strip()
    reason = EXIT_REASONS.get(code, f"QEMU exited with status {code}")
    cfsr = _CFSR_PATTERN.search(detail)
    if code == EXIT_FAULT and cfsr:
        value = int(cfsr.group(1), 16)
        causes = [text for bit, text in _CFSR_BITS.items() if value & (1 << bit)]
        if causes:
            reason += f": {', '.join(causes)}"
    message = f"firmware on board '{board.name}' failed: {reason} ({detail or 'no output'}); {_describe_progress(progress)}"
    error_class = FirmwareFaultError if code == EXIT_FAULT else FirmwareError
    raise error_class(message, last_sample=progress.sample, last_layer=progress.layer)


def _split_outputs(path: Path, sample_count: int, output_size: int) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    expected = sample_count * output_size
    if output_size <= 0 or len(data) != expected:
        raise FirmwareError(
            f"firmware wrote {len(data)} output bytes, expected {expected} "
            f"({sample_count} samples x {output_size} bytes); check the output size"
        )
    return [data[index * output_size : (index + 1) * output_size] for index in range(sample_count)]


def _parse_profile(path: Path) -> _Profile:
    if not path.exists():
        raise FirmwareError(f"firmware wrote no {PROFILE_FILE}")
    timer = ""
    layer_count = 0
    samples: list[tuple[int, list[int]]] = []
    stack_size = stack_used = 0
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        try:
            if fields[0] == "timer":
                timer = fields[1]
            elif fields[0] == "layers":
                layer_count = int(fields[1])
            elif fields[0] == "sample":
                ticks = [int(value) for value in fields[2:]]
                if len(ticks) != layer_count + 1:
                    raise ValueError("wrong number of values")
                samples.append((ticks[0], ticks[1:]))
            elif fields[0] == "stack":
                stack_size, stack_used = int(fields[1]), int(fields[2])
            else:
                raise ValueError("unknown record")
        except (IndexError, ValueError) as error:
            raise FirmwareError(f"{PROFILE_FILE} line {line_number} is malformed ({error}): {line!r}") from None
    if timer != "systick":
        raise FirmwareError(f"{PROFILE_FILE} reports timer {timer!r}; QEMU runs need the SysTick timer")
    return _Profile(timer=timer, layer_count=layer_count, samples=samples, stack_size=stack_size, stack_used=stack_used)
