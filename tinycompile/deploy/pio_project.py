"""Render a compiled model as a PlatformIO project from the Jinja2 templates in templates/platformio.

The project has three parts. src/ holds the generated model, the kernels it calls and an
application that reads one input (from the one marked sensor function), runs the model and
prints the outputs. test/ holds a golden-vector test: input samples and the outputs that the
reference interpreter computed for them, compared bit for bit on the target. Last come
platformio.ini and a README.

A simulated (qemu-*) board builds with the local PlatformIO platform in platformio/ and
bare-metal start-up code from firmware/harness, whose semihosting console QEMU prints. A real
board builds with its official PlatformIO platform and the Arduino framework, whose Serial
port carries the console.

Rendering is deterministic: the same model, board and options give byte-identical files,
because the golden samples come from a seeded generator and no timestamps are written. Files are
written to a temporary sibling folder that is then renamed into place, like
`tinycompile.codegen.emit.write_model`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from tinycompile import __version__, ir
from tinycompile.codegen.c_format import c_array_body
from tinycompile.codegen.emit import FIRMWARE_DIR, TEMPLATES_DIR, kernel_headers, render_model
from tinycompile.compiler import CompiledModel
from tinycompile.deploy.boards import Board
from tinycompile.deploy.cross import HARNESS_DIR, render_linker_script
from tinycompile.errors import TinyCompileError
from tinycompile.outdir import write_folder
from tinycompile.verify import output_step

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PLATFORMIO_DIR = REPO_ROOT / "platformio"
# The local PlatformIO development platform of the qemu-* boards, and the tool-scons package
# that runs SCons from the pip package.
QEMU_PLATFORM_DIR = PLATFORMIO_DIR / "tinycompile-qemu"
TOOL_SCONS_DIR = PLATFORMIO_DIR / "tool-scons"

SERIAL_BAUD_RATE = 115200
# Elements of each output that the application prints; keep in step with TC_APP_PRINT_LIMIT in
# templates/platformio/src/tc_app.c.j2.
PRINT_LIMIT = 32
UPLOAD_STATUS_FILE = "upload_exit_status.txt"

# Start-up and semihosting sources of the firmware harness that a simulated board's project
# compiles; the architecture's startup_<arch>.c is added per board.
_STARTUP_SOURCES = ("semihosting.c", "semihosting.h", "startup.h", "startup_common.c", "tc_harness.h", "timer.c")


@dataclass(frozen=True)
class GoldenVectors:
    """Input samples and the reference interpreter's outputs for them.

    ``inputs[sample][i]`` and ``outputs[sample][o]`` are arrays of the graph input's or output's
    dtype and shape. A ``tolerance`` of 0 makes the on-target test compare bit for bit.
    """

    inputs: list[list[np.ndarray]]
    outputs: list[list[np.ndarray]]
    reference: str
    source: str
    tolerance: float = 0.0  # largest accepted difference, in quantization steps for dequantized outputs

    @property
    def samples(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class ProjectSettings:
    """Board-level settings of a generated project."""

    board: Board
    sram_budget: int
    stack_size: int
    timeout_s: int


@dataclass(frozen=True)
class _CArray:
    symbol: str
    c_type: str
    length: int
    body: str
    comment: str


def env_name(board: Board) -> str:
    """Return the platformio.ini environment name of ``board``: the tinycompile board name."""
    return board.name


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _short_name(text: str, limit: int = 60) -> str:
    """Shorten a tensor name for a C comment or a message; converters join names with ';'."""
    first = text.replace("*/", "* /").replace("\n", " ").split(";")[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _storage(dtype: ir.DType) -> tuple[str, np.dtype]:
    """Return the C type and numpy dtype that hold a tensor's bytes in a C array initialiser.

    Floats are stored as their IEEE 754 bit patterns, so the arrays are exact and a comparison is
    bit for bit (it tells -0.0 from 0.0 and matches NaNs).
    """
    if dtype == ir.DType.FLOAT32:
        return "uint32_t", np.dtype(np.uint32)
    if dtype in (ir.DType.FLOAT16, ir.DType.BOOL):
        return dtype.c_type, np.dtype(np.uint16 if dtype == ir.DType.FLOAT16 else np.uint8)
    return dtype.c_type, dtype.numpy


def _c_array(symbol: str, tensor: ir.Tensor, values: np.ndarray, comment: str) -> _CArray:
    c_type, storage = _storage(tensor.dtype)
    raw = np.ascontiguousarray(values, dtype=tensor.dtype.numpy).reshape(-1)
    if raw.size != tensor.num_elements:
        raise TinyCompileError(
            f"golden values of tensor '{_short_name(tensor.name)}' have {raw.size} elements, "
            f"expected {tensor.num_elements}; the reference returned another shape"
        )
    stored = raw.view(storage)
    return _CArray(symbol=symbol, c_type=c_type, length=max(stored.size, 1),
                   body=c_array_body(stored if stored.size else np.zeros(1, storage), per_line=20),
                   comment=comment)


def _io_context(tensor: ir.Tensor, kind: str, index: int, *, tolerance: float = 0.0, step: float = 1.0) -> dict:
    quantized = tensor.quant is not None and tensor.dtype in (ir.DType.INT8, ir.DType.UINT8, ir.DType.INT16)
    storage_type, _ = _storage(tensor.dtype)
    is_float = tensor.dtype == ir.DType.FLOAT32
    return {
        "kind": kind,
        "index": index,
        "name": _short_name(tensor.name),
        "prefix": f"{kind.upper()}{index}",
        "c_type": tensor.dtype.c_type,
        "storage_type": storage_type,
        "print_hex": is_float,
        "tolerance": tolerance,
        "step": repr(float(step)),
        "shape": list(tensor.shape) or [1],
        "nbytes": tensor.nbytes,
        "elements": tensor.num_elements,
        "quantized": quantized,
        "scale": repr(float(tensor.quant.scalar_scale)) if quantized else None,
        "zero_point": tensor.quant.scalar_zero_point if quantized else None,
    }


def _format_value(value) -> str:
    """Format one output value the way tc_console.c prints it."""
    if isinstance(value, (float, np.floating)):
        magnitude = abs(float(value))
        if not magnitude < 1e12:
            bits = int(np.asarray(value, dtype=np.float32).view(np.uint32))
            return f"float:0x{bits:08x}"
        return ("-" if value < 0 else "") + f"{magnitude:.6f}"
    return str(int(value))


def expected_console_lines(graph: ir.Graph, outputs: Sequence[np.ndarray]) -> list[str]:
    """Return the output lines that the application prints for one sample's ``outputs``.

    Lines are "output <n>: v0 v1 ..." (the first PRINT_LIMIT values), and for a first output of
    more than one element, "argmax of output 0: <index>". NOTE: float values are formatted in
    double precision here and in single-to-double precision on the target, so a float ending in
    exactly 0.5e-6 could round differently; integer outputs match exactly.
    """
    lines = []
    for index, (tensor, values) in enumerate(zip(graph.outputs, outputs)):
        flat = np.asarray(values, dtype=tensor.dtype.numpy).reshape(-1)
        text = " ".join(_format_value(v) for v in flat[:PRINT_LIMIT])
        suffix = f" ... ({flat.size} values)" if flat.size > PRINT_LIMIT else ""
        lines.append(f"output {index}: {text}{suffix}")
        if index == 0 and flat.size > 1:
            lines.append(f"argmax of output 0: {int(np.argmax(flat))}")
    return lines


def _golden_context(graph: ir.Graph, golden: GoldenVectors) -> tuple[dict, list[_CArray]]:
    arrays: list[_CArray] = []
    input_symbols, output_symbols = [], []
    for sample in range(golden.samples):
        symbols = []
        for index, tensor in enumerate(graph.inputs):
            symbol = f"tc_golden_sample{sample}_input{index}"
            arrays.append(_c_array(symbol, tensor, golden.inputs[sample][index],
                                   f"sample {sample}, input {index} '{_short_name(tensor.name)}'"))
            symbols.append(symbol)
        input_symbols.append(symbols)
        symbols = []
        for index, tensor in enumerate(graph.outputs):
            symbol = f"tc_golden_sample{sample}_output{index}"
            arrays.append(_c_array(symbol, tensor, golden.outputs[sample][index],
                                   f"sample {sample}, output {index} '{_short_name(tensor.name)}' from {golden.reference}"))
            symbols.append(symbol)
        output_symbols.append(symbols)
    example = [
        _c_array(f"tc_example_input{index}", tensor, golden.inputs[0][index],
                 f"input {index} '{_short_name(tensor.name)}': {tensor.dtype.c_type}"
                 f"[{']['.join(str(d) for d in tensor.shape or (1,))}]"
                 + (" as IEEE 754 bit patterns" if tensor.dtype == ir.DType.FLOAT32 else ""))
        for index, tensor in enumerate(graph.inputs)
    ]
    if golden.tolerance == 0:
        note = "Outputs must match bit for bit (floats are compared as IEEE 754 bit patterns)."
    else:
        note = (f"Outputs may differ by up to {golden.tolerance:g}, in quantization steps for "
                f"dequantized float outputs, as `tinycompile verify` allows for this model.")
    context = {
        "tolerance_note": note,
        "samples": golden.samples,
        "reference": golden.reference.upper(),
        "source": golden.source,
        "arrays": arrays,
        "input_symbols": input_symbols,
        "output_symbols": output_symbols,
    }
    return context, example


def render_project(compiled: CompiledModel, golden: GoldenVectors, settings: ProjectSettings) -> dict[str, str]:
    """Return {relative path: text} of every file of the PlatformIO project."""
    if golden.samples == 0:
        raise TinyCompileError("no golden samples to write; pass at least one sample")
    board = settings.board
    graph = compiled.graph
    environment = _environment()
    golden_context, example_inputs = _golden_context(graph, golden)
    model_files = render_model(compiled)
    const_bytes = _const_bytes(model_files)

    context = {
        "version": __version__,
        "model_name": graph.name,
        "model_source": Path(graph.name).name + "." + graph.source_format,
        "board": board,
        "env_name": env_name(board),
        "simulated": board.simulated,
        "pio": board.platformio,
        "baud_rate": SERIAL_BAUD_RATE,
        "console_description": (
            "QEMU's standard output through Arm semihosting" if board.simulated
            else f"the Arduino Serial port at {SERIAL_BAUD_RATE} baud"
        ),
        "sram_budget": settings.sram_budget,
        "stack_size": settings.stack_size,
        "timeout_s": settings.timeout_s,
        "qemu_platform_dir": QEMU_PLATFORM_DIR.as_posix(),
        "tool_scons_dir": TOOL_SCONS_DIR.as_posix(),
        "upload_status_file": UPLOAD_STATUS_FILE,
        "inputs": [_io_context(t, "input", i) for i, t in enumerate(graph.inputs)],
        "outputs": [_io_context(t, "output", i, tolerance=golden.tolerance, step=output_step(graph, t))
                    for i, t in enumerate(graph.outputs)],
        "example_inputs": example_inputs,
        "example_output_lines": expected_console_lines(graph, golden.outputs[0]),
        "golden": golden_context,
        "arena_size": compiled.arena_size,
        "const_bytes": const_bytes,
        "num_layers": len(compiled.layers),
        "print_limit": PRINT_LIMIT,
    }

    def render(template: str) -> str:
        return environment.get_template(f"platformio/{template}.j2").render(context)

    files: dict[str, str] = {
        "platformio.ini": render("platformio.ini"),
        "README.md": render("README.md"),
        ".gitignore": render(".gitignore"),
        "model_report.txt": model_files["report.txt"],
        "model_report.json": model_files["report.json"],
    }
    for name in ("model.h", "model.c", "model_weights.h", "model_weights.c", "tc_config.h"):
        files[f"src/{name}"] = model_files[name]
    for header in kernel_headers():
        files[f"src/tc/{header.name}"] = header.read_text(encoding="utf-8")
    for source in compiled.kernel_sources:
        files[f"src/tc/{source}"] = (FIRMWARE_DIR / "kernels" / source).read_text(encoding="utf-8")
    for name in ("tc_app.h", "tc_app.c", "tc_console.h", "tc_console.c", "tc_example_input.h", "tc_example_input.c"):
        files[f"src/{name}"] = render(f"src/{name}")
    for name in ("golden_vectors.h", "golden_vectors.c", "golden_test.h", "golden_test.c"):
        files[f"test/test_golden/{name}"] = render(f"test/{name}")
    files["test/test_custom_runner.py"] = render("test/test_custom_runner.py")

    if board.simulated:
        files["src/main.c"] = render("src/main_baremetal.c")
        files["src/tc_console_semihosting.c"] = render("src/tc_console_semihosting.c")
        files["test/test_golden/test_main.c"] = render("test/test_main_baremetal.c")
        for name in (*_STARTUP_SOURCES, f"startup_{board.arch}.c"):
            files[f"src/startup/{name}"] = (HARNESS_DIR / name).read_text(encoding="utf-8")
        files["firmware.ld"] = render_linker_script(board, settings.sram_budget, settings.stack_size)
    else:
        files["src/main.cpp"] = render("src/main_arduino.cpp")
        files["src/tc_console_arduino.cpp"] = render("src/tc_console_arduino.cpp")
        files["test/test_golden/test_main.cpp"] = render("test/test_main_arduino.cpp")
    return dict(sorted(files.items()))


def _const_bytes(model_files: dict[str, str]) -> int:
    return int(json.loads(model_files["report.json"])["const_bytes"])


def write_project(files: dict[str, str], out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``files`` into ``out_dir`` atomically and return its path.

    A non-empty ``out_dir`` is replaced only with ``force``. The files go to a temporary sibling
    folder first, which is renamed into place, so a failure leaves no half-written project.
    """
    out_dir = write_folder(out_dir, files, force=force)
    logger.info("wrote PlatformIO project %s (%d files)", out_dir, len(files))
    return out_dir

