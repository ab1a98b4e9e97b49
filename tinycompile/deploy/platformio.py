"""Generate PlatformIO projects for a model and flash them through PlatformIO.

`generate_project` compiles the model, checks that it fits the board before anything is built,
computes golden vectors with the reference interpreter, optionally link-checks the firmware
against the board's memory map, and writes the project (see `pio_project`). `flash` runs
`pio run -t upload` on a project: on a simulated board that runs the firmware in QEMU and
returns its exit status, and on a real board it flashes the board and can open the serial
monitor.

PlatformIO runs as `python -m platformio` from the environment of tinycompile, with a core
folder of tinycompile's own (never the user's ~/.platformio), telemetry off and the upgrade check
off. Simulated boards need no network at all. Their platform and the `tool-scons` package come
from platformio/ in the sources. PlatformIO looks its SCons package up as `platformio/tool-scons`
with a version requirement that depends on the PlatformIO release, so `check_tool_scons` compares
that requirement with the local package first. A mismatch would otherwise send PlatformIO to its
registry.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile import ir
from tinycompile.codegen.emit import memory_report, write_model
from tinycompile.compiler import CompiledModel, CompileOptions, compile_graph, load_model
from tinycompile.deploy.boards import (
    DEFAULT_STACK_SIZE,
    Board,
    FitReport,
    check_fits,
    harness_sram_bytes,
    load_board,
    resolve_sram_budget,
)
from tinycompile.deploy.cross import FirmwareImage, build_firmware
from tinycompile.deploy.pio_project import (
    TOOL_SCONS_DIR,
    UPLOAD_STATUS_FILE,
    GoldenVectors,
    ProjectSettings,
    env_name,
    render_project,
    write_project,
)
from tinycompile.errors import BudgetError, TinyCompileError, ToolError
from tinycompile.outdir import check_output_folder

logger = logging.getLogger(__name__)

# The PlatformIO release that the tests and the local tool-scons package were checked with.
TESTED_PLATFORMIO_VERSION = "6.2.0"
PLATFORMIO_INSTALL_HINT = f"pip install 'platformio=={TESTED_PLATFORMIO_VERSION}' scons"
# Environment variable that overrides the PlatformIO core folder tinycompile uses.
CORE_DIR_VARIABLE = "TINYCOMPILE_PLATFORMIO_CORE_DIR"
DEFAULT_GOLDEN_SAMPLES = 4
DEFAULT_TIMEOUT_S = 300

# Phrases of PlatformIO errors, mapped to the advice that tinycompile adds for a real board.
_NETWORK_ERRORS = re.compile(r"internet|HTTPClientError|registry|Could not resolve|connection", re.IGNORECASE)
_PORT_ERRORS = re.compile(r"upload_port|serial port|No such file or directory: '/dev/|could not open port|"
                          r"no device|device not found|not found.*(probe|st-link|j-link|debugger)|"
                          r"No Arm device|unable to find|Error: Please specify", re.IGNORECASE)


@dataclass(frozen=True)
class GeneratedProject:
    """A PlatformIO project written by `generate_project`, with the checks run before writing."""

    path: Path
    board: Board
    env_name: str
    compiled: CompiledModel
    golden: GoldenVectors
    fit: FitReport
    link_check: FirmwareImage | None


@dataclass(frozen=True)
class PioResult:
    """Exit status and combined stdout and stderr of one PlatformIO command."""

    returncode: int
    output: str


@dataclass(frozen=True)
class FlashResult:
    """Outcome of `flash`: the exit status to report and, on a simulated board, the firmware's."""

    exit_status: int
    firmware_status: int | None
    output: str


# --- PlatformIO installation -------------------------------------------------------------------


def platformio_version() -> str:
    """Return the version of the platformio Python package, or raise ToolError naming it."""
    try:
        import platformio
    except ImportError:
        raise ToolError(
            f"PlatformIO is not installed in the Python environment of tinycompile ({sys.executable}); "
            f"install it with: {PLATFORMIO_INSTALL_HINT}"
        ) from None
    return platformio.__version__


def tool_scons_version() -> str:
    """Return the version of the local tool-scons package (platformio/tool-scons/package.json)."""
    manifest = TOOL_SCONS_DIR / "package.json"
    return json.loads(manifest.read_text(encoding="utf-8"))["version"]


def check_tool_scons() -> None:
    """Raise ToolError unless the local tool-scons package satisfies PlatformIO's requirement.

    PlatformIO resolves SCons as the core package `platformio/tool-scons`. If the local package
    does not match the installed PlatformIO's requirement, PlatformIO asks its registry instead,
    which fails offline after a long wait, so this check runs before every PlatformIO command.
    """
    version = platformio_version()
    try:
        from platformio.dependencies import get_core_dependencies
        from semantic_version import SimpleSpec, Version
    except ImportError as error:
        raise ToolError(
            f"PlatformIO {version} is not usable ({error}); install the tested release with: "
            f"{PLATFORMIO_INSTALL_HINT}"
        ) from None
    requirement = get_core_dependencies().get("tool-scons")
    local = tool_scons_version()
    if requirement is None or not SimpleSpec(requirement).match(Version(local)):
        raise ToolError(
            f"PlatformIO {version} requires tool-scons {requirement}, but the local package "
            f"{TOOL_SCONS_DIR} is {local}; install the tested release with: {PLATFORMIO_INSTALL_HINT}"
        )
    try:
        import SCons  # noqa: F401  (the pip package behind the local tool-scons)
    except ImportError:
        raise ToolError(
            f"the Python package scons is missing, which the local tool-scons package runs; "
            f"install it with: {PLATFORMIO_INSTALL_HINT}"
        ) from None
    if version != TESTED_PLATFORMIO_VERSION:
        logger.warning("PlatformIO %s is installed; tinycompile was tested with %s", version,
                       TESTED_PLATFORMIO_VERSION)


def default_core_dir() -> Path:
    """Return tinycompile's PlatformIO core folder.

    It is $TINYCOMPILE_PLATFORMIO_CORE_DIR if set, else platformio-<version> under the user's
    cache folder. One folder per PlatformIO version means an upgrade starts from a fresh folder.
    PlatformIO would otherwise migrate the old folder by updating its core packages from the
    registry.
    """
    override = os.environ.get(CORE_DIR_VARIABLE)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tinycompile" / f"platformio-{platformio_version()}"


def pio_environment(core_dir: Path | None = None) -> dict[str, str]:
    """Return the process environment for PlatformIO: own core folder, no telemetry, no upgrade check."""
    environment = dict(os.environ)
    environment.update({
        "PLATFORMIO_CORE_DIR": str(core_dir or default_core_dir()),
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
        "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    })
    return environment


def pio_command(*args: str) -> list[str]:
    """Return the command line that runs PlatformIO with ``args``."""
    return [sys.executable, "-m", "platformio", *args]


def run_pio(
    args: Sequence[str],
    *,
    core_dir: Path | None = None,
    echo: Callable[[str], None] | None = None,
    timeout: float | None = None,
    interactive: bool = False,
) -> PioResult:
    """Run one PlatformIO command and return its exit status and output.

    Each output line is passed to ``echo`` as it arrives. ``interactive`` connects the command to
    this terminal instead (for the serial monitor), and then no output is collected. After
    ``timeout`` seconds the command and its children are killed and ToolError is raised.
    """
    check_tool_scons()
    command = pio_command(*args)
    environment = pio_environment(core_dir)
    logger.info("running %s (PLATFORMIO_CORE_DIR=%s)", " ".join(command), environment["PLATFORMIO_CORE_DIR"])
    if interactive:
        try:
            return PioResult(subprocess.run(command, env=environment, check=False, timeout=timeout).returncode, "")
        except subprocess.TimeoutExpired:
            raise ToolError(f"'pio {' '.join(args)}' did not finish within {timeout:g} s") from None

    process = subprocess.Popen(
        command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", start_new_session=True,
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.start()
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if echo:
                echo(line)
        returncode = process.wait()
    finally:
        if timer:
            timer.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if timed_out.is_set():
        raise ToolError(f"'pio {' '.join(args)}' did not finish within {timeout:g} s and was stopped")
    return PioResult(returncode, "".join(lines))


# --- Project generation ------------------------------------------------------------------------


def make_golden_vectors(model_path: Path, graph: ir.Graph, samples: list[list[np.ndarray]], reference: str,
                        source: str, tolerance: float = 0.0) -> GoldenVectors:
    """Run ``samples`` through the reference interpreter and return them with its outputs."""
    from tinycompile.reference import run_reference

    outputs = run_reference(model_path, samples, reference, len(graph.outputs))
    converted = []
    for sample_outputs in outputs:
        row = []
        for tensor, values in zip(graph.outputs, sample_outputs):
            array = np.asarray(values)
            if array.size != tensor.num_elements:
                raise TinyCompileError(
                    f"the {reference} reference returned {array.size} values for output '{tensor.name[:60]}', "
                    f"expected {tensor.num_elements}; check the model"
                )
            row.append(array.astype(tensor.dtype.numpy).reshape(tensor.shape))
        converted.append(row)
    return GoldenVectors(inputs=samples, outputs=converted, reference=reference, source=source, tolerance=tolerance)


def check_flash_fits(board: Board, const_bytes: int) -> None:
    """Raise BudgetError if the model's constants alone exceed the board's flash."""
    if const_bytes > board.flash.size:
        raise BudgetError(
            f"the model's weights and constants need {const_bytes} bytes of flash but board "
            f"'{board.name}' has {board.flash.size} bytes, {const_bytes - board.flash.size} bytes "
            f"short; shrink the model or pick a board with more flash"
        )


def link_check(compiled: CompiledModel, board: Board, *, sram_budget: int | None = None,
               stack_size: int = DEFAULT_STACK_SIZE) -> FirmwareImage:
    """Build the model with the firmware harness for ``board``'s memory map with the system toolchain.

    This proves offline that code, weights, arena and stack fit the board's flash and SRAM, also
    for real boards whose PlatformIO platform cannot be downloaded. Raises BudgetError if they do
    not fit, ToolError if the toolchain is missing or the build fails.
    """
    with tempfile.TemporaryDirectory(prefix="tinycompile-link-check-") as work:
        model_dir = write_model(compiled, Path(work) / "model")
        image = build_firmware(model_dir, board, Path(work) / "build", sram_budget=sram_budget,
                               stack_size=stack_size, profile=False)
    logger.info("link check for %s: flash %d of %d bytes, SRAM %d of %d bytes", board.name, image.flash,
                board.flash.size, image.sram, image.sram_budget)
    return image


def generate_project(
    model_path: str | Path,
    board_name: str,
    out_dir: str | Path,
    *,
    force: bool = False,
    check: bool = False,
    rounding: str = "tflm",
    planner: str = "auto",
    sram_budget: int | None = None,
    stack_size: int = DEFAULT_STACK_SIZE,
    golden_samples: int = DEFAULT_GOLDEN_SAMPLES,
    seed: int = 0,
    inputs: Sequence[Path] = (),
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    tolerance: float | None = None,
    timeout_s: int = DEFAULT_TIMEOUT_S,
) -> GeneratedProject:
    """Compile ``model_path`` and write a PlatformIO project for ``board_name`` to ``out_dir``.

    The golden samples are those read from ``inputs`` files, then ``golden_samples`` random ones
    drawn with ``seed``. Their outputs come from the reference that `tinycompile verify` uses
    (onnxruntime for ONNX models, else the interpreter whose rounding ``rounding`` selects), with
    the same default ``tolerance``.
    Every check (board, output folder, SRAM and flash fit, and with ``check`` the link check)
    runs before any file is written.
    """
    from tinycompile.verify import default_tolerance, random_samples, read_input_files

    board = load_board(board_name)
    out_dir = Path(out_dir)
    check_output_folder(out_dir, force=force)
    if golden_samples < 0:
        raise TinyCompileError(f"golden sample count {golden_samples} is invalid; give 0 or more")
    if timeout_s <= 0:
        raise TinyCompileError(f"timeout {timeout_s} s is invalid; give a positive number of seconds")
    budget = resolve_sram_budget(board, sram_budget)

    model_path = Path(model_path)
    graph = load_model(model_path, input_shapes)
    samples = read_input_files(graph, list(inputs)) + random_samples(graph, golden_samples, seed)
    if not samples:
        raise TinyCompileError("no golden samples; pass --samples N with N > 0 or --input FILE")
    compiled = compile_graph(graph, CompileOptions(rounding=rounding, planner=planner))
    report = memory_report(compiled)

    fit = check_fits(board, compiled.arena_size, sram_budget=budget, stack_bytes=stack_size,
                     other_bytes=harness_sram_bytes(len(compiled.layers)))
    check_flash_fits(board, report["const_bytes"])
    image = link_check(compiled, board, sram_budget=budget, stack_size=stack_size) if check else None

    source_parts = []
    if inputs:
        source_parts.append(f"{len(samples) - golden_samples} from {', '.join(Path(p).name for p in inputs)}")
    if golden_samples:
        source_parts.append(f"{golden_samples} random with seed {seed}")
    reference = "onnxruntime" if graph.source_format == "onnx" else rounding
    if tolerance is None:
        tolerance = default_tolerance(graph)
    golden = make_golden_vectors(model_path, graph, samples, reference, "; ".join(source_parts), tolerance)

    settings = ProjectSettings(board=board, sram_budget=budget, stack_size=stack_size, timeout_s=timeout_s)
    files = render_project(compiled, golden, settings)
    path = write_project(files, out_dir, force=force)
    return GeneratedProject(path=path, board=board, env_name=env_name(board), compiled=compiled, golden=golden,
                            fit=fit, link_check=image)


# --- Flashing ----------------------------------------------------------------------------------


def upload_status_path(project_dir: Path, environment: str) -> Path:
    """Return the file where the QEMU platform's upload writes the firmware's exit status."""
    return Path(project_dir) / ".pio" / "build" / environment / UPLOAD_STATUS_FILE


def flash(
    project_dir: Path,
    board: Board,
    *,
    port: str | None = None,
    monitor: bool = False,
    core_dir: Path | None = None,
    echo: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> FlashResult:
    """Run `pio run -t upload` on a generated project, and the serial monitor if ``monitor``.

    On a simulated board the upload runs the firmware in QEMU, and the result carries the
    firmware's exit status. On a real board a failed upload raises ToolError with PlatformIO's
    last error line and one line of advice.
    """
    project_dir = Path(project_dir)
    environment = env_name(board)
    if board.simulated and port is not None:
        raise TinyCompileError(
            f"--port applies to real boards, but '{board.name}' runs in QEMU; drop --port"
        )
    args = ["run", "-d", str(project_dir), "-e", environment, "-t", "upload"]
    if port is not None:
        args += ["--upload-port", port]
    status_path = upload_status_path(project_dir, environment)
    status_path.unlink(missing_ok=True)
    result = run_pio(args, core_dir=core_dir, echo=echo, timeout=timeout)

    if board.simulated:
        if status_path.is_file():
            firmware_status = int(status_path.read_text(encoding="utf-8").strip())
            return FlashResult(exit_status=firmware_status, firmware_status=firmware_status, output=result.output)
        raise ToolError(
            f"PlatformIO failed to build the project for '{board.name}' (exit status "
            f"{result.returncode}): {_last_error_line(result.output)}; see its output above"
        )

    if result.returncode != 0:
        raise ToolError(
            f"PlatformIO failed to flash '{board.name}': {_last_error_line(result.output)}; "
            f"{_real_board_advice(board, result.output)}"
        )
    if monitor:
        monitor_args = ["device", "monitor", "-d", str(project_dir), "-e", environment]
        if port is not None:
            monitor_args += ["--port", port]
        monitor_result = run_pio(monitor_args, core_dir=core_dir, interactive=True)
        return FlashResult(exit_status=monitor_result.returncode, firmware_status=None, output=result.output)
    return FlashResult(exit_status=0, firmware_status=None, output=result.output)


def _last_error_line(output: str) -> str:
    """Return PlatformIO's last error line (or its last line), without a trailing colon."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("=")]
    line = errors[-1] if errors else lines[-1] if lines else "no output"
    return line.rstrip(":").strip()


def _real_board_advice(board: Board, output: str) -> str:
    platform = board.platformio.platform if board.platformio else "its"
    if _PORT_ERRORS.search(output):
        return ("connect the board over USB and pass its serial port with --port "
                "(`pio device list` lists the ports)")
    if _NETWORK_ERRORS.search(output):
        return (f"PlatformIO needs network access once to install the {platform} platform and the "
                f"Arduino framework; connect and run again, or check the fit offline with "
                f"`tinycompile project --check`")
    return ("check that the board is connected over USB and pass its serial port with --port "
            "(`pio device list` lists the ports)")


def remove_project(path: Path) -> None:
    """Delete a temporary project folder made for `tinycompile flash`."""
    shutil.rmtree(path, ignore_errors=True)
