"""Compare the training-step SRAM of update schemes of one model, each planned like the real step.

For a model and a configuration, whose head and learning rate are kept, this plans four schemes.
They are full update (every weight and bias), the last k layers (weights and biases), bias-only
(every bias), and the configured sparse scheme. The sparse scheme is planned twice: with in-place
updates, and with every update deferred to the end of the step. Each row is a full compile up
to the memory plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tinycompile import ir
from tinycompile.training.compiler import compile_training, load_training_model
from tinycompile.training.config import TrainingConfig, WeightUpdate
from tinycompile.training.model import TRAINABLE_OPS


@dataclass
class SchemeMemory:
    """Planned memory of one update scheme."""

    name: str
    arena_bytes: int
    master_bytes: int
    peak_comment: str
    trained_layers: int
    fits: bool


def count_layers(graph: ir.Graph) -> int:
    """Return the number of trainable layers before the classifier."""
    return sum(op.op_type in TRAINABLE_OPS for op in graph.operators) - 1


def compare_schemes(model, config: TrainingConfig, last_k: int = 12, planner: str = "auto") -> list[SchemeMemory]:
    graph = load_training_model(model) if not isinstance(model, ir.Graph) else model
    n = count_layers(graph)
    k = min(last_k, n)
    schemes = [
        ("full update", dataclasses.replace(config, bias_last_k=None, weight_updates=tuple(
            WeightUpdate(i, 1.0) for i in range(n)))),
        (f"last {k} layers", dataclasses.replace(config, bias_last_k=k, weight_updates=tuple(
            WeightUpdate(i, 1.0) for i in range(n - k, n)))),
        ("bias only", dataclasses.replace(config, bias_last_k=None, weight_updates=())),
        ("sparse (configured)", dataclasses.replace(config, inplace_update=True)),
        ("sparse, updates deferred", dataclasses.replace(config, inplace_update=False)),
    ]
    rows = []
    for name, scheme in schemes:
        program = compile_training(graph, scheme, planner=planner, check_budget=False)
        rows.append(SchemeMemory(name, program.memory.arena_size, program.memory.master_bytes,
                                 program.memory.peak_comment, sum(layer.trained for layer in program.tg.layers),
                                 program.memory.arena_size <= config.sram_budget))
    return rows
