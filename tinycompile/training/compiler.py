"""The training compile pipeline: model + configuration -> schedule -> one static memory plan.

`compile_training` reads the model (a .tflite file, or a tiny-training .json with its .npz) and
binds the configuration (head, updated biases and channels). It then derives the pruned backward
graph, orders forward, backward and update kernels into one schedule, and plans every buffer of
the step in one arena with the project's planners. A plan that exceeds the SRAM budget, or constant
data that exceed the flash budget, raise BudgetError with the memory breakdown.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinycompile import ir
from tinycompile.codegen.c_format import collect_const_arrays
from tinycompile.codegen.lowering import ConstArray
from tinycompile.compiler import load_model
from tinycompile.errors import BudgetError, TinyCompileError
from tinycompile.passes.validate import validate_graph
from tinycompile.planning.base import MemoryPlan, lower_bound, plan_memory
from tinycompile.training.autodiff import derive_backward
from tinycompile.training.config import TrainingConfig, load_config
from tinycompile.training.model import bind_config
from tinycompile.training.schedule import KINDS, TrainingSchedule, build_schedule

log = logging.getLogger(__name__)

ARENA_ALIGNMENT = 16


@dataclass
class MemorySummary:
    """SRAM and flash use of a training step, from the memory plan."""

    arena_size: int             # bytes of the one static arena: the step's SRAM for data
    lower_bound: int            # largest sum of buffers alive at one step; no plan is smaller
    planner: str
    master_bytes: int           # persistent float32 master copies (inside the arena)
    peak_step: int              # the step with the most bytes alive
    peak_comment: str
    peak_by_kind: dict[str, int] = field(default_factory=dict)   # bytes alive at the peak step, by value kind
    const_bytes: int = 0        # constant data kept in flash (weights and kernel parameters), code excluded
    steps: int = 0

    def describe(self) -> str:
        parts = ", ".join(f"{kind} {size:,}" for kind, size in self.peak_by_kind.items() if size)
        return (f"{self.arena_size:,} bytes of SRAM (at step {self.peak_step}, {self.peak_comment}: {parts}; "
                f"master copies {self.master_bytes:,} of them) and {self.const_bytes:,} bytes of constant flash data")


@dataclass
class TrainingProgram:
    """A compiled training step: the schedule and its memory plan."""

    schedule: TrainingSchedule
    plan: MemoryPlan
    memory: MemorySummary
    config: TrainingConfig
    rounding: str = "tflm"

    @property
    def tg(self):
        return self.schedule.tg


def load_training_model(path: str | Path) -> ir.Graph:
    """Read a .tflite model or a tiny-training .json model (with its .npz) into the IR."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        from tinycompile.training.mcunet import load_mcunet

        return load_mcunet(path)
    return load_model(path)


def compile_training(model: str | Path | ir.Graph, config: str | Path | TrainingConfig, *,
                     planner: str = "auto", rounding: str = "tflm", check_budget: bool = True) -> TrainingProgram:
    """Compile the training step of `model` under `config` and plan its memory."""
    if not isinstance(config, TrainingConfig):
        config = load_config(config)
    graph = load_training_model(model) if not isinstance(model, ir.Graph) else copy.copy(model)
    if isinstance(model, ir.Graph):
        graph.tensors = list(model.tensors)
    validate_graph(graph)
    tg = bind_config(graph, config)
    backward = derive_backward(tg)
    schedule = build_schedule(tg, backward, rounding)
    buffers = schedule.buffers()
    plan = plan_memory(buffers, planner, ARENA_ALIGNMENT)
    memory = summarize_memory(schedule, plan)
    log.info("training step: %d steps, %d buffers, arena %d bytes (%s)", len(schedule.steps), len(buffers),
             plan.arena_size, plan.planner)
    program = TrainingProgram(schedule, plan, memory, config, rounding)
    if check_budget:
        check_budgets(program)
    return program


def summarize_memory(schedule: TrainingSchedule, plan: MemoryPlan) -> MemorySummary:
    buffers = schedule.buffers()
    kind_of = {v.id: v.kind for v in schedule.values}
    # The peak step is the one with the most bytes alive, the step that sets the lower bound.
    best_step, best_live = 0, -1
    for step in range(len(schedule.steps)):
        live = sum(b.size for b in buffers if b.first <= step <= b.last)
        if live > best_live:
            best_step, best_live = step, live
    by_kind = {kind: 0 for kind in KINDS}
    for b in buffers:
        if b.first <= best_step <= b.last:
            by_kind[kind_of[b.id]] += b.size
    return MemorySummary(
        arena_size=plan.arena_size,
        lower_bound=lower_bound(buffers, ARENA_ALIGNMENT),
        planner=plan.planner,
        master_bytes=schedule.master_bytes,
        peak_step=best_step,
        peak_comment=schedule.steps[best_step].comment,
        peak_by_kind=by_kind,
        const_bytes=constant_bytes(schedule),
        steps=len(schedule.steps),
    )


def constant_bytes(schedule: TrainingSchedule) -> int:
    """Return the bytes of constant data the generated code keeps in flash (code not counted)."""
    tensors: dict[int, ir.Tensor] = {}
    arrays: dict[str, ConstArray] = {}
    for step in schedule.steps:
        for arg in step.args:
            if isinstance(arg, ir.Tensor) and arg.is_constant:
                tensors[id(arg)] = arg
            elif isinstance(arg, ConstArray):
                arrays[arg.symbol] = arg
    for m in schedule.masters:
        tensors[id(m.tensor)] = m.tensor
    for p in schedule.params:
        found: list[ConstArray] = []
        collect_const_arrays(p.struct, found)
        for a in found:
            arrays[a.symbol] = a
    return sum(t.nbytes for t in tensors.values()) + sum(np.asarray(a.values).nbytes for a in arrays.values())


def check_budgets(program: TrainingProgram) -> None:
    """Raise BudgetError when the plan exceeds the SRAM budget or constants exceed the flash budget."""
    config = program.config
    memory = program.memory
    if memory.arena_size > config.sram_budget:
        raise BudgetError(
            f"the training step needs {memory.describe()}, over the SRAM budget of {config.sram_budget:,} bytes; "
            "update fewer layers, biases or channels, or raise budget.sram_bytes"
        )
    if memory.const_bytes > config.flash_budget:
        raise BudgetError(
            f"the training step keeps {memory.const_bytes:,} bytes of constant data in flash, over the flash "
            f"budget of {config.flash_budget:,} bytes; use a smaller model or raise budget.flash_bytes"
        )


def require_label(label: int, num_classes: int, where: str) -> None:
    """Raise TinyCompileError for a label outside [0, num_classes)."""
    if not 0 <= label < num_classes:
        raise TinyCompileError(
            f"{where}: label {label} is outside the model's classes 0-{num_classes - 1}; "
            f"relabel the data or set head.num_classes to at least {label + 1}"
        )
