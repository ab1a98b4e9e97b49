"""The compile pipeline: frontend -> validation -> lowering -> memory planning -> C emission.

`compile_model` runs every stage up to the memory plan and returns a `CompiledModel`;
`tinycompile.codegen.emit.write_model` turns that into a C folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tinycompile import ir
from tinycompile.codegen.lowering import Layer, LoweringOptions, lower_operator
from tinycompile.codegen.ops.specialize import KERNEL_MODES
from tinycompile.errors import TinyCompileError, UnsupportedModelError
from tinycompile.passes.liveness import INPLACE_MODES, BufferMap, plan_layers
from tinycompile.passes.schedule import schedule_layers
from tinycompile.passes.transformer_fold import fold_transformer_patterns
from tinycompile.passes.validate import validate_graph
from tinycompile.planning.base import MemoryPlan, lower_bound

log = logging.getLogger(__name__)

ARENA_ALIGNMENT = 16
ROUNDING_MODES = ("tflm", "litert")


@dataclass
class CompileOptions:
    rounding: str = "tflm"          # "tflm" or "litert": which reference's rounding to reproduce
    planner: str = "auto"
    inplace: str = "auto"           # "auto", "all" or "off": which layers may overwrite their input
    reorder: bool = True            # run the layers in the order with the lowest peak memory
    sram_budget: int | None = None  # bytes available to the arena; None: no limit
    kernels: str = "auto"           # "auto", "optimized" or "portable": see codegen/ops/specialize.py

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDING_MODES:
            raise TinyCompileError(
                f"invalid rounding mode '{self.rounding}'; use one of {', '.join(ROUNDING_MODES)}"
            )
        if self.kernels not in KERNEL_MODES:
            raise TinyCompileError(
                f"invalid kernel choice '{self.kernels}'; use one of {', '.join(KERNEL_MODES)}"
            )
        if self.inplace not in INPLACE_MODES:
            raise TinyCompileError(
                f"invalid in-place mode '{self.inplace}'; use one of {', '.join(INPLACE_MODES)}"
            )


@dataclass
class LayerMemory:
    """Memory use at one layer's step, for reports."""

    step: int
    live_bytes: int
    scratch_bytes: int
    live_tensors: list[str] = field(default_factory=list)


@dataclass
class CompiledModel:
    graph: ir.Graph
    layers: list[Layer]
    buffers: BufferMap
    plan: MemoryPlan
    options: CompileOptions
    lower_bound: int
    layer_memory: list[LayerMemory]

    @property
    def arena_size(self) -> int:
        return self.plan.arena_size

    @property
    def peak_step(self) -> int:
        """The step with the most live bytes (the first such step): where memory must shrink.

        A step whose buffers merely reach the arena top because of where the planner put them
        is not the peak unless it also holds the most bytes.
        """
        best_step, best_live = 0, -1
        for memory in self.layer_memory:
            if memory.live_bytes > best_live:
                best_step, best_live = memory.step, memory.live_bytes
        return best_step

    @property
    def kernel_sources(self) -> list[str]:
        return sorted({s for layer in self.layers for s in layer.sources})

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def load_model(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> ir.Graph:
    """Read a model file with the frontend that its suffix selects.

    `input_shapes` fixes ONNX graph input shapes by name (the CLI's --input-shape).
    """
    path = Path(path)
    if not path.exists():
        raise TinyCompileError(f"model file '{path}' not found")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from tinycompile.frontends.tflite import load_tflite

        return load_tflite(path)
    if suffix == ".onnx":
        try:
            from tinycompile.frontends.onnx import load_onnx
        except ImportError:
            raise UnsupportedModelError(
                f"'{path}': ONNX import needs the onnx package: pip install onnx"
            ) from None
        return load_onnx(path, input_shapes)
    raise TinyCompileError(f"'{path}' has suffix '{suffix}'; tinycompile reads .tflite and .onnx models")


def compile_graph(graph: ir.Graph, options: CompileOptions | None = None) -> CompiledModel:
    options = options or CompileOptions()
    fold_transformer_patterns(graph)
    validate_graph(graph)
    lowering = LoweringOptions(rounding=options.rounding, kernels=options.kernels)
    layers = [lower_operator(op, lowering) for op in graph.operators]
    if options.reorder:
        layers = schedule_layers(graph, layers, options.inplace, ARENA_ALIGNMENT, lowering)
    planned = plan_layers(graph, layers, options.planner, options.inplace, ARENA_ALIGNMENT, lowering)
    layers, buffers, plan = planned.layers, planned.buffers, planned.plan
    bound = lower_bound(buffers.buffers, ARENA_ALIGNMENT)
    log.info("planned %d buffers with %s: arena %d bytes, lower bound %d", len(buffers.buffers),
             plan.planner, plan.arena_size, bound)
    compiled = CompiledModel(graph, layers, buffers, plan, options, bound, _layer_memory(layers, buffers))
    if options.sram_budget is not None:
        from tinycompile.analyze import check_arena_budget

        check_arena_budget(compiled, options.sram_budget)
    return compiled


def compile_model(path: str | Path, options: CompileOptions | None = None,
                  input_shapes: dict[str, tuple[int, ...]] | None = None) -> CompiledModel:
    return compile_graph(load_model(path, input_shapes), options)


def _layer_memory(layers: list[Layer], buffers: BufferMap) -> list[LayerMemory]:
    result = []
    scratch_ids = set(buffers.scratch_buffer.values())
    for step in range(len(layers)):
        # A buffer that takes over another in place lies inside it at the hand-off step.
        live = [b for b in buffers.buffers
                if b.first <= step <= b.last and not (b.shares is not None and b.first == step)]
        result.append(LayerMemory(
            step=step,
            live_bytes=sum(b.size for b in live),
            scratch_bytes=sum(b.size for b in live if b.id in scratch_ids),
            live_tensors=[b.name for b in live if b.id not in scratch_ids],
        ))
    return result
