"""Memory and compute report of a compiled model, the SRAM budget check, and the plan plot.

`analyze_model` turns a `CompiledModel` into a `ModelReport`. It has one row per layer: op,
shapes, MACs, weight bytes, live activation bytes and scratch at that step, and whether the layer
runs in place. It also names the peak layer, the gap between the arena and its lower bound, and
SRAM and flash totals against a board's limits. SRAM is the arena plus the generated code's other
static RAM plus a stack estimate. Flash is the weights, the per-layer parameters and the code.

Code size, static RAM and stack come from compiling the generated model.c and the kernel sources
with the Arm GNU toolchain for the board's CPU (`-O2`, `-fstack-usage`) when arm-none-eabi-gcc is
on the PATH. Otherwise they are rough estimates, and the report's `source` field names which it used. The stack
figure is an estimate either way: the deepest kernel's frames plus tc_model_invoke's, not a
measured high-water mark.

Two lower bounds are reported. "lower bound" is computed on the planned buffers, so an in-place
layer's input and output count once (the merged buffers). "bound without in-place" is computed
on the same order with every tensor in its own buffer, which is what a planner without in-place
layers can at best reach.

`check_arena_budget` raises BudgetError when the arena exceeds a budget, with one line naming
the bytes, the peak layer and its live tensors, and the options that would help.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinycompile import ir
from tinycompile.codegen.c_format import collect_const_arrays
from tinycompile.codegen.emit import write_model
from tinycompile.codegen.lowering import CStruct, Layer
from tinycompile.compiler import ARENA_ALIGNMENT, CompiledModel, CompileOptions, compile_graph
from tinycompile.errors import BudgetError, TinyCompileError
from tinycompile.passes.liveness import build_buffers
from tinycompile.planning.base import lower_bound

log = logging.getLogger(__name__)

# Used when the board module cannot be loaded: the reference microcontroller's SRAM.
FALLBACK_SRAM_BYTES = 256 * 1024
# Estimates used without the Arm toolchain. NOTE: rough values from arm-none-eabi-gcc 12.2 -O2
# builds of the int8 kernels for a Cortex-M4 (0.2 to 1.8 KB of code and at most 170 bytes of
# stack per kernel source), rounded up.
ESTIMATED_CODE_PER_KERNEL = 1024
ESTIMATED_CODE_PER_LAYER = 48       # one call, a status check and a layer name in tc_model_invoke
ESTIMATED_KERNEL_STACK = 256
# Frames of tc_model_invoke and the caller that enters it, added to the deepest kernel's frames.
INVOKE_STACK_BYTES = 64


@dataclass
class LayerRow:
    """One layer of the report, in execution order."""

    step: int
    index: int                   # operator index in the model file
    op: str
    name: str
    kernel: str | None           # None for a layer that only aliases its input
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    macs: int
    weight_bytes: int            # constant inputs (weights, biases) and per-channel parameters
    live_bytes: int              # activation bytes alive at this step, scratch included
    scratch_bytes: int
    live_tensors: list[str]
    inplace: bool                # the output overwrites an input
    peak: bool


@dataclass
class BufferRow:
    """One arena buffer for the plot and the JSON report."""

    name: str
    offset: int
    size: int
    first: int
    last: int
    kind: str                    # "activation", "scratch" or "in place" (shares another buffer)


@dataclass
class Footprint:
    """SRAM and flash totals next to the board's limits, in bytes."""

    board: str
    arena: int
    static_ram: int              # runtime state: the generated code's static RAM besides the arena
    stack: int                   # estimate
    sram_total: int
    sram_limit: int
    weights: int                 # constant tensors in model_weights.c
    parameters: int              # per-layer parameter arrays and structs in model.c, repacked weights included
    code: int
    flash_total: int
    flash_limit: int | None      # None when the board is unknown
    source: str                  # how static RAM, code and stack were obtained
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelReport:
    """Everything `tinycompile analyze` prints."""

    model: str
    planner: str
    inplace_mode: str
    reordered: bool
    arena_bytes: int
    lower_bound: int             # on the planned (merged) buffers
    lower_bound_without_inplace: int
    gap_percent: float           # arena above `lower_bound`, in percent of it
    peak_step: int
    total_macs: int
    layers: list[LayerRow]
    buffers: list[BufferRow]
    footprint: Footprint


def analyze_model(compiled: CompiledModel, board: str | None = None, measure: bool = True) -> ModelReport:
    """Build the report of `compiled` against `board` (the default board when None).

    With `measure`, code size, static RAM and stack come from the Arm toolchain when it is
    installed; otherwise they are estimated.
    """
    layers = _layer_rows(compiled)
    separate = build_buffers(compiled.graph, _without_inplace(compiled))
    bound = compiled.lower_bound
    gap = 100.0 * (compiled.arena_size - bound) / bound if bound else 0.0
    original = [op.index for op in compiled.graph.operators]
    return ModelReport(
        model=compiled.graph.name,
        planner=compiled.plan.planner,
        inplace_mode=compiled.options.inplace,
        reordered=[layer.op.index for layer in compiled.layers] != original,
        arena_bytes=compiled.arena_size,
        lower_bound=bound,
        lower_bound_without_inplace=lower_bound(separate.buffers, ARENA_ALIGNMENT),
        gap_percent=round(gap, 2),
        peak_step=compiled.peak_step,
        total_macs=compiled.total_macs,
        layers=layers,
        buffers=_buffer_rows(compiled),
        footprint=_footprint(compiled, board, measure),
    )


def _without_inplace(compiled: CompiledModel) -> list[Layer]:
    """Return the layers in the compiled order, each in-place rewrite replaced by its original."""
    return [compiled.buffers.replaced.get(step, layer) for step, layer in enumerate(compiled.layers)]


def _shape_list(tensors) -> list[list[int]]:
    return [list(t.shape) for t in tensors if t is not None and not t.is_constant]


def _param_bytes(layer) -> int:
    arrays = []
    for arg in layer.args:
        if isinstance(arg, CStruct):
            collect_const_arrays(arg, arrays)
    return sum(a.values.size * a.values.dtype.itemsize for a in arrays)


def _layer_rows(compiled: CompiledModel) -> list[LayerRow]:
    rows = []
    peak = compiled.peak_step
    for step, layer in enumerate(compiled.layers):
        memory = compiled.layer_memory[step]
        constants = {id(t): t.nbytes for t in layer.args if isinstance(t, ir.Tensor) and t.is_constant}
        rows.append(LayerRow(
            step=step,
            index=layer.op.index,
            op=layer.op.op_type,
            name=layer.op.short_name,
            kernel=layer.kernel,
            input_shapes=_shape_list(layer.op.inputs),
            output_shapes=_shape_list(layer.op.outputs),
            macs=layer.macs,
            weight_bytes=sum(constants.values()) + _param_bytes(layer),
            live_bytes=memory.live_bytes,
            scratch_bytes=memory.scratch_bytes,
            live_tensors=list(memory.live_tensors),
            inplace=step in compiled.buffers.inplace,
            peak=step == peak,
        ))
    return rows


def _buffer_rows(compiled: CompiledModel) -> list[BufferRow]:
    scratch = set(compiled.buffers.scratch_buffer.values())
    rows = []
    for b in compiled.buffers.buffers:
        if b.id in scratch:
            kind = "scratch"
        elif b.shares is not None:
            kind = "in place"
        else:
            kind = "activation"
        rows.append(BufferRow(b.name.split(";")[0], compiled.plan.offsets[b.id], b.size, b.first, b.last, kind))
    return rows


@dataclass
class _BoardLimits:
    name: str
    sram: int
    flash: int | None
    cpu_flags: list[str]
    note: str = ""


def _board_limits(board: str | None) -> _BoardLimits:
    """Load the board's SRAM budget and flash size, or fall back to a 256 KB SRAM budget."""
    try:
        from tinycompile.deploy.boards import DEFAULT_BOARD, load_board
        from tinycompile.deploy.cross import cpu_flags
    except ImportError as error:
        return _BoardLimits(board or "default", FALLBACK_SRAM_BYTES, None, [],
                            f"board descriptions unavailable ({error}); assumed {FALLBACK_SRAM_BYTES} bytes of SRAM")
    loaded = load_board(board or DEFAULT_BOARD)
    return _BoardLimits(loaded.name, loaded.default_sram_budget, loaded.flash.size, cpu_flags(loaded))


def _footprint(compiled: CompiledModel, board: str | None, measure: bool) -> Footprint:
    limits = _board_limits(board)
    weights = _weight_bytes(compiled)
    parameters = sum(_param_bytes(layer) for layer in compiled.layers)
    measured = _measure(compiled, limits) if measure else None
    if measured is not None:
        static_ram, code, stack, source = measured.static_ram, measured.code, measured.stack, measured.source
        parameters = measured.parameters
    else:
        kernels = len(compiled.kernel_sources)
        calls = sum(1 for layer in compiled.layers if layer.kernel is not None)
        static_ram = 0
        code = kernels * ESTIMATED_CODE_PER_KERNEL + calls * ESTIMATED_CODE_PER_LAYER
        stack = ESTIMATED_KERNEL_STACK + INVOKE_STACK_BYTES
        source = "estimated (arm-none-eabi-gcc not used)"
    sram_total = compiled.arena_size + static_ram + stack
    flash_total = weights + parameters + code
    notes = [limits.note] if limits.note else []
    if sram_total > limits.sram:
        notes.append(f"SRAM exceeds the budget of board '{limits.name}' by {sram_total - limits.sram:,} bytes")
    if limits.flash is not None and flash_total > limits.flash:
        notes.append(f"flash exceeds board '{limits.name}' by {flash_total - limits.flash:,} bytes")
    return Footprint(
        board=limits.name, arena=compiled.arena_size, static_ram=static_ram, stack=stack,
        sram_total=sram_total, sram_limit=limits.sram, weights=weights, parameters=parameters,
        code=code, flash_total=flash_total, flash_limit=limits.flash, source=source, notes=notes,
    )


def _weight_bytes(compiled: CompiledModel) -> int:
    seen: dict[int, int] = {}
    for layer in compiled.layers:
        for arg in layer.args:
            if isinstance(arg, ir.Tensor) and arg.is_constant:
                seen[id(arg)] = arg.nbytes
    return sum(seen.values())


@dataclass
class _Measured:
    """Sizes from compiling the generated model.c and the kernel sources."""

    static_ram: int              # .data and .bss besides the arena
    code: int                    # .text sections
    parameters: int              # .rodata and .data: layer parameters, structs and layer names
    stack: int
    source: str


def _measure(compiled: CompiledModel, limits: _BoardLimits) -> _Measured | None:
    """Compile model.c and the kernels for the board and read their section sizes."""
    gcc = shutil.which("arm-none-eabi-gcc")
    size_tool = shutil.which("arm-none-eabi-size")
    if gcc is None or size_tool is None or not limits.cpu_flags:
        return None

    with tempfile.TemporaryDirectory(prefix="tinycompile-analyze-") as tmp:
        model_dir = write_model(compiled, Path(tmp) / "model")
        sources = [model_dir / "model.c", *(model_dir / "tc" / name for name in compiled.kernel_sources)]
        objects = []
        for source in sources:
            obj = Path(tmp) / (source.stem + ".o")
            command = [gcc, "-std=c99", "-O2", *limits.cpu_flags, "-ffunction-sections", "-fdata-sections",
                       "-fstack-usage", f"-I{model_dir}", f"-I{model_dir / 'tc'}", "-c", str(source), "-o", str(obj)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                log.warning("could not measure code size: %s failed: %s", source.name, result.stderr.strip()[:200])
                return None
            objects.append(obj)
        # The System V format lists every section, so code, constants and RAM can be told apart.
        result = subprocess.run([size_tool, "-A", *map(str, objects)], capture_output=True, text=True)
        if result.returncode != 0:
            log.warning("could not measure code size: arm-none-eabi-size failed: %s", result.stderr.strip()[:200])
            return None
        code = parameters = ram = 0
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                continue
            section, size = parts[0], int(parts[1])
            if section.startswith(".text"):
                code += size
            elif section.startswith(".rodata"):
                parameters += size
            elif section.startswith(".data"):
                parameters += size  # the initial values are stored in flash
                ram += size
            elif section.startswith(".bss"):
                ram += size
        stack = INVOKE_STACK_BYTES + max((_stack_of(obj.with_suffix(".su")) for obj in objects[1:]), default=0)
    source = f"measured with arm-none-eabi-gcc -O2 {' '.join(limits.cpu_flags)} (stack: an estimate)"
    return _Measured(max(0, ram - compiled.arena_size), code, parameters, stack, source)


def _stack_of(usage_file: Path) -> int:
    """Return the summed frames of one source file, which bound its deepest call chain."""
    if not usage_file.is_file():
        return ESTIMATED_KERNEL_STACK
    total = 0
    for line in usage_file.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].strip().isdigit():
            total += int(parts[1])
    return total


def report_json(report: ModelReport) -> dict:
    """Return the report as JSON-ready data."""
    return asdict(report)


# Rendering for people.


def render_text(report: ModelReport, width: int = 160) -> str:
    """Return the report as plain text: the per-layer table, then the totals."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{Path(report.model).name}: {len(report.layers)} layers, planner {report.planner}, "
                        f"in-place {report.inplace_mode}", title_justify="left")
    for column, justify in (("step", "right"), ("op", "left"), ("input", "left"), ("output", "left"),
                            ("MACs", "right"), ("weights B", "right"), ("live B", "right"),
                            ("scratch B", "right"), ("", "left"), ("name", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "name")
    for row in report.layers:
        marks = []
        if row.peak:
            marks.append("peak")
        if row.inplace:
            marks.append("in place")
        table.add_row(str(row.step), row.op, _shapes(row.input_shapes), _shapes(row.output_shapes),
                      f"{row.macs:,}", f"{row.weight_bytes:,}", f"{row.live_bytes:,}",
                      f"{row.scratch_bytes:,}", " ".join(marks), row.name[:40])
    buffer = StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False, force_terminal=False)
    console.print(table)
    for line in summary_lines(report):
        console.print(line, markup=False)
    return buffer.getvalue()


def summary_lines(report: ModelReport) -> list[str]:
    """Return the totals of the report as short lines."""
    f = report.footprint
    peak = report.layers[report.peak_step] if report.layers else None
    lines = [
        f"arena: {report.arena_bytes:,} bytes; lower bound {report.lower_bound:,} (+{report.gap_percent:g}%), "
        f"{report.lower_bound_without_inplace:,} without in-place layers",
    ]
    if peak is not None:
        lines.append(f"peak: step {peak.step}, layer {peak.index} {peak.op} '{peak.name}', "
                     f"{peak.live_bytes:,} bytes live")
    inplace = sum(1 for row in report.layers if row.inplace)
    if inplace or report.reordered:
        lines.append(("1 layer runs" if inplace == 1 else f"{inplace} layers run") + " in place"
                     + ("; layers reordered to lower the peak" if report.reordered else ""))
    lines.append(f"SRAM: {f.sram_total:,} of {f.sram_limit:,} bytes on {f.board} "
                 f"(arena {f.arena:,} + runtime state {f.static_ram:,} + stack estimate {f.stack:,})")
    flash_limit = f"{f.flash_limit:,}" if f.flash_limit is not None else "unknown"
    lines.append(f"flash: {f.flash_total:,} of {flash_limit} bytes (weight tensors {f.weights:,} + layer "
                 f"parameters {f.parameters:,} + code {f.code:,}); code, runtime state and stack {f.source}")
    lines.extend(f"warning: {note}" for note in f.notes)
    return lines


def _shapes(shapes: list[list[int]]) -> str:
    return " ".join("x".join(map(str, shape)) or "scalar" for shape in shapes)


def plot_plan(report: ModelReport, path: str | Path) -> Path:
    """Draw every buffer as a lifetime x size rectangle at its offset and save a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    path = Path(path)
    colors = {"activation": "#4c72b0", "in place": "#55a868", "scratch": "#c44e52"}
    steps = max([b.last for b in report.buffers] + [len(report.layers)], default=1) + 1
    figure, axes = plt.subplots(figsize=(max(8.0, min(24.0, steps * 0.35)), 6.0))
    for b in report.buffers:
        # A buffer that takes over another in place starts inside it at the hand-off step, so
        # it is drawn from the next step on.
        start = b.first + 0.45 if b.kind == "in place" else b.first - 0.45
        end = b.last + 0.45
        axes.add_patch(Rectangle((start, b.offset), max(end - start, 0.1), b.size,
                                 facecolor=colors[b.kind], edgecolor="black", linewidth=0.5, alpha=0.8))
        # Converters prefix every tensor with the model's scope ("model/"), which labels skip.
        # About seven characters of 6-point text fit in one step's width.
        label = b.name.split("/", 1)[1] if b.name.count("/") >= 2 else b.name
        label = label[: max(1, int(7 * (end - start)))]
        if b.size >= report.arena_bytes * 0.06:
            axes.text(start + 0.05, b.offset + b.size / 2, label, fontsize=6, va="center", clip_on=True)
    axes.axhline(report.arena_bytes, color="black", linewidth=1)
    axes.axhline(report.lower_bound, color="gray", linestyle="--", linewidth=1)
    axes.axvspan(report.peak_step - 0.5, report.peak_step + 0.5, color="orange", alpha=0.15)
    axes.set_xlim(-1, steps)
    axes.set_ylim(0, max(report.arena_bytes, 1) * 1.05)
    axes.set_xlabel("step (layer in execution order)")
    axes.set_ylabel("arena offset (bytes)")
    axes.set_title(f"{Path(report.model).name}: arena {report.arena_bytes:,} bytes, lower bound "
                   f"{report.lower_bound:,} (dashed)\npeak at step {report.peak_step} (shaded), planner "
                   f"{report.planner}", fontsize=10)
    handles = [Patch(color=color, label=kind) for kind, color in colors.items()]
    axes.legend(handles=handles, loc="upper right", fontsize=8)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise TinyCompileError(f"cannot write plot '{path}': {error.strerror}; choose another --plot path") from None
    finally:
        plt.close(figure)
    return path


# Budget check.


def check_arena_budget(compiled: CompiledModel, budget: int) -> None:
    """Raise BudgetError with advice when the arena of `compiled` exceeds `budget` bytes."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise TinyCompileError(f"SRAM budget {budget!r} is invalid; give a positive number of bytes")
    needed = compiled.arena_size
    if needed <= budget:
        return
    step = compiled.peak_step
    layer = compiled.layers[step].op
    live = [b for b in compiled.buffers.buffers
            if b.first <= step <= b.last and not (b.shares is not None and b.first == step)]
    live.sort(key=lambda b: -b.size)
    largest = ", ".join(f"'{b.name.split(';')[0][:40]}' {b.size:,} B" for b in live[:4])
    more = f" and {len(live) - 4} more" if len(live) > 4 else ""
    message = (
        f"the arena needs {needed:,} bytes but the SRAM budget is {budget:,} bytes ({needed - budget:,} short); "
        f"peak at layer {layer.index} {layer.op_type} '{layer.short_name}' with {len(live)} buffers alive "
        f"({largest}{more}); {_advice(compiled, budget)}"
    )
    raise BudgetError(message)


def _advice(compiled: CompiledModel, budget: int) -> str:
    """Try the other planners, in-place modes and orders, and name the boards that would fit."""
    options = compiled.options
    trials: list[tuple[str, CompileOptions]] = []
    from tinycompile.planning.base import available_planners

    if options.planner != "auto":
        for name in available_planners():
            if name != options.planner:
                trials.append((f"--planner {name}", _replace(options, planner=name)))
    if options.inplace != "all":
        trials.append(("--inplace all", _replace(options, inplace="all")))
    if not options.reorder:
        trials.append(("--reorder", _replace(options, reorder=True)))
    strongest = _replace(options, planner="auto", inplace="all", reorder=True)
    if strongest != options and all(trial != strongest for _, trial in trials):
        trials.append(("--planner auto --inplace all --reorder", strongest))

    results = []
    for flag, trial in trials:
        try:
            arena = compile_graph(compiled.graph, trial).arena_size
        except TinyCompileError:
            continue
        results.append((arena, flag))
    fitting = sorted(r for r in results if r[0] <= budget)
    parts = []
    if fitting:
        parts.append("fits with " + ", ".join(f"{flag} ({arena:,} bytes)" for arena, flag in fitting))
    else:
        smallest = min(results, default=None)
        if smallest is not None and smallest[0] < compiled.arena_size:
            parts.append(f"{smallest[1]} lowers it to {smallest[0]:,} bytes, still over")
        elif results:
            parts.append("no other planner, in-place mode or order needs fewer bytes")
        best = min([compiled.arena_size, *(arena for arena, _ in results)])
        boards = _boards_with_sram(best)
        target = f"a board with at least {best:,} bytes of SRAM for the arena"
        parts.append(f"use {target} ({', '.join(boards)}) or a smaller model" if boards
                     else f"use {target} or a smaller model")
    return "; ".join(parts)


def _replace(options: CompileOptions, **changes) -> CompileOptions:
    return CompileOptions(**{**asdict(options), "sram_budget": None, **changes})


def _boards_with_sram(arena: int, limit: int = 3) -> list[str]:
    try:
        from tinycompile.deploy.boards import list_boards, load_board
    except ImportError:
        return []
    found = []
    for name in list_boards():
        try:
            board = load_board(name)
        except TinyCompileError:
            continue
        if board.default_sram_budget >= arena:
            found.append((board.default_sram_budget, name))
    return [f"{name} ({size // 1024} KB)" for size, name in sorted(found)[:limit]]
