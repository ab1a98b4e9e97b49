"""Compile a model for a simulated board, run it in QEMU, and check it against the reference.

It compiles the model and checks that the arena fits the board's SRAM budget before any build.
Then it cross-builds with arm-none-eabi-gcc and runs the firmware in qemu-system-arm with
`-icount shift=0`. It compares every output element with the reference interpreter and collects
per-layer instruction counts and the memory measured from the ELF and the run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile.codegen.emit import write_model
from tinycompile.compiler import CompileOptions, CompiledModel, compile_graph, load_model
from tinycompile.deploy.boards import (DEFAULT_BOARD, DEFAULT_STACK_SIZE, Board, check_fits, harness_sram_bytes,
                                       load_board, resolve_sram_budget)
from tinycompile.deploy.cross import FirmwareImage, build_firmware
from tinycompile.deploy.qemu import QemuRun, run_firmware
from tinycompile.errors import BudgetError, TinyCompileError
from tinycompile.reference import run_reference
from tinycompile.verify import OutputComparison, collect_samples, compare, default_tolerance, split_outputs

# An estimate: QEMU 7.2 with -icount shift=0 ran 50-200 million guest instructions per second on
# a 2-core x86-64 machine, and the portable kernels take up to about 35 instructions per MAC. The
# timeout assumes 20 million per second and 40 per MAC, plus 30 s for start-up.
_BASE_TIMEOUT_S = 30.0
_INSTRUCTIONS_PER_SECOND_FLOOR = 20e6
_INSTRUCTIONS_PER_MAC_CEILING = 40


@dataclass
class LayerCount:
    op_index: int
    op_type: str
    name: str
    macs: int
    instructions: int


@dataclass
class SimulationResult:
    model: str
    board: Board
    sram_budget: int
    compiled: CompiledModel
    image: FirmwareImage
    run: QemuRun
    reference: str
    tolerance: float
    outputs: list[OutputComparison]
    generated: list[list[np.ndarray]]
    expected: list[list[np.ndarray]]
    layers: list[LayerCount]

    @property
    def ok(self) -> bool:
        return all(o.mismatches == 0 for o in self.outputs)

    @property
    def samples(self) -> int:
        return len(self.generated)

    @property
    def instructions_per_mac(self) -> float:
        macs = self.compiled.total_macs
        return self.run.total_instructions / macs if macs else float("nan")


def default_timeout(compiled: CompiledModel, samples: int) -> float:
    estimate = max(compiled.total_macs, 10_000) * _INSTRUCTIONS_PER_MAC_CEILING / _INSTRUCTIONS_PER_SECOND_FLOOR
    return _BASE_TIMEOUT_S + estimate * samples


# Unoptimized builds keep every local of the inlined kernel bodies in separate stack slots: the
# specialized convolution kernel's frame measured 5.9 KB at -O0 (arm-none-eabi-gcc 12.2,
# -fstack-usage) against a few hundred bytes at -O2, so -O0 builds get a larger stack.
UNOPTIMIZED_STACK_SIZE = 24 * 1024


def stack_size_for(opt: str) -> int:
    return UNOPTIMIZED_STACK_SIZE if opt == "-O0" else DEFAULT_STACK_SIZE


def check_budget(compiled: CompiledModel, board: Board, sram_budget: int | None,
                 stack_size: int = DEFAULT_STACK_SIZE) -> int:
    """Raise BudgetError before any build if the plan cannot fit; return the budget in bytes."""
    budget = resolve_sram_budget(board, sram_budget)
    try:
        check_fits(board, compiled.arena_size, sram_budget=budget, stack_bytes=stack_size,
                   other_bytes=harness_sram_bytes(len(compiled.layers)))
    except BudgetError as exc:
        peak = compiled.layers[compiled.peak_step].op
        raise BudgetError(
            f"{exc}; the arena alone is {compiled.arena_size} bytes and peaks at layer {peak.index} "
            f"({peak.op_type} '{peak.short_name}')"
        ) from None
    return budget


def simulate_model(model_path: str | Path, board: str = DEFAULT_BOARD, inputs: list[Path] | tuple = (),
                   samples: int = 5, seed: int = 0, opt: str = "-O2", sram_budget: int | None = None,
                   rounding: str = "tflm", planner: str = "auto", tolerance: float | None = None,
                   timeout: float | None = None, extra_samples: list[list[np.ndarray]] | tuple = (),
                   workdir: Path | None = None, compile_options: CompileOptions | None = None,
                   input_shapes: dict[str, tuple[int, ...]] | None = None, kernels: str = "auto") -> SimulationResult:
    """Run `model_path` on a simulated board and compare every output element with the reference.

    The reference is ONNX Runtime for ONNX models and the rounding mode's interpreter otherwise.
    As in verify, `tolerance` defaults to 1 quantization step for ONNX and 0 for TFLite.
    """
    if opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
        raise TinyCompileError(f"optimization level '{opt}' is invalid; use -O2 or -Os")
    model_path = Path(model_path)
    target = load_board(board)
    if not target.simulated:
        raise TinyCompileError(
            f"board '{target.name}' is a real board; simulate runs qemu-* boards, and "
            f"`tinycompile project --check --board {target.name}` checks that the model fits it"
        )
    graph = load_model(model_path, input_shapes)
    data = collect_samples(graph, inputs, extra_samples, samples, seed)
    if not data:
        raise TinyCompileError("no samples to simulate; pass --samples N or --input FILE")
    options = compile_options or CompileOptions(rounding=rounding, planner=planner, kernels=kernels)
    compiled = compile_graph(graph, options)
    stack_size = stack_size_for(opt)
    budget = check_budget(compiled, target, sram_budget, stack_size)

    with tempfile.TemporaryDirectory(prefix="tinycompile-simulate-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        model_dir = write_model(compiled, work / "model", force=True)
        image = build_firmware(model_dir, target, work / "build", opt=opt, sram_budget=budget,
                               stack_size=stack_size)
        raw_samples = [b"".join(np.ascontiguousarray(x).tobytes() for x in s) for s in data]
        output_size = sum(t.nbytes for t in graph.outputs)
        run = run_firmware(image, target, raw_samples, output_size,
                           timeout=timeout or default_timeout(compiled, len(data)))

    generated = split_outputs(graph, b"".join(run.outputs))
    reference = "onnxruntime" if graph.source_format == "onnx" else options.rounding
    if tolerance is None:
        tolerance = default_tolerance(graph)
    expected = run_reference(model_path, data, reference, len(graph.outputs))

    code_layers = [layer for layer in compiled.layers if layer.kernel is not None]
    layers = [LayerCount(layer.op.index, layer.op.op_type, layer.op.short_name, layer.macs, count)
              for layer, count in zip(code_layers, run.layer_instructions)]
    return SimulationResult(
        model=str(model_path), board=target, sram_budget=budget, compiled=compiled, image=image, run=run,
        reference=reference, tolerance=tolerance, outputs=compare(graph, generated, expected, tolerance),
        generated=generated, expected=expected, layers=layers,
    )
