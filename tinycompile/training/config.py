"""Read and validate a training configuration file (YAML).

A configuration names what a training step updates and how:

    head:                    # optional: replace the classifier with a new one
      num_classes: 10
    bias_update:
      last_k: 20             # biases of the last k layers (an int, or "all")
    weight_update:           # weights of these layers, input-channel fraction each
      - {layer: 24, ratio: 0.25}
      - {layer: 27, ratio: 0.5}
    channel_selection: weight_norm   # or "first"
    learning_rate: 0.05
    epochs: 3
    batch_size: 1
    loss: cross_entropy
    budget: {sram_bytes: 262144, flash_bytes: 1048576}

Layers are numbered as in the tiny-training code of Lin et al.: the convolutions and fully
connected layers in execution order, from 0, the classifier excluded. A ratio of 0 keeps the
layer's weights frozen and updates only its bias, which is how that code reads a 0 (its compiler
skips layers with a ratio <= 0, and its training code multiplies their weight gradients by an
all-zero channel mask). Every mistake raises one TinyCompileError line that names the file, the
key and the accepted values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tinycompile.errors import TinyCompileError

SRAM_BUDGET_DEFAULT = 256 * 1024
FLASH_BUDGET_DEFAULT = 1024 * 1024
CHANNEL_SELECTIONS = ("weight_norm", "first")
LOSSES = ("cross_entropy",)

_TOP_KEYS = {"head", "bias_update", "weight_update", "channel_selection", "learning_rate", "epochs",
             "batch_size", "loss", "budget", "inplace_update", "seed"}


@dataclass(frozen=True)
class HeadConfig:
    """A new classifier head that replaces the model's last layer."""

    num_classes: int
    weight_scale: float | None = None   # int8 step of the new weights; None: the old head's mean scale
    init: str = "zeros"                 # "zeros" or "random"


@dataclass(frozen=True)
class WeightUpdate:
    """Weights of one layer to update: `ratio` of its input channels (0: bias only)."""

    layer: int | str                    # trainable-layer index, or the name of its output tensor
    ratio: float


@dataclass(frozen=True)
class TrainingConfig:
    """A validated training configuration."""

    source: str = "<defaults>"
    head: HeadConfig | None = None
    bias_last_k: int | None = 0         # None: every layer
    weight_updates: tuple[WeightUpdate, ...] = ()
    channel_selection: str = "weight_norm"
    learning_rate: float = 0.05
    epochs: int = 1
    batch_size: int = 1
    loss: str = "cross_entropy"
    sram_budget: int = SRAM_BUDGET_DEFAULT
    flash_budget: int = FLASH_BUDGET_DEFAULT
    inplace_update: bool = True         # False: keep every gradient until the step's end, for comparison
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def load_config(path: str | Path) -> TrainingConfig:
    """Read the YAML file at `path` and return the validated configuration."""
    path = Path(path)
    if not path.is_file():
        raise TinyCompileError(f"training config '{path}' not found; pass an existing YAML file with --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise TinyCompileError(f"training config '{path}' is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise TinyCompileError(f"training config '{path}' is not UTF-8 text; save it as a YAML file") from None
    return parse_config(data, source=str(path))


def parse_config(data: Any, source: str = "<config>") -> TrainingConfig:
    """Validate a configuration already read into Python values."""
    where = f"training config '{source}'"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TinyCompileError(f"{where} must be a YAML mapping of keys such as head, bias_update, weight_update")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise TinyCompileError(
            f"{where}: unknown key '{unknown[0]}'; the keys are {', '.join(sorted(_TOP_KEYS))}"
        )

    head = _parse_head(data.get("head"), where)
    bias_last_k = _parse_bias(data.get("bias_update"), where)
    weight_updates = _parse_weights(data.get("weight_update"), where)

    selection = data.get("channel_selection", "weight_norm")
    if selection not in CHANNEL_SELECTIONS:
        raise TinyCompileError(
            f"{where}: channel_selection '{selection}' is invalid; use one of {', '.join(CHANNEL_SELECTIONS)}"
        )
    learning_rate = _number(data.get("learning_rate", 0.05), f"{where}: learning_rate")
    if not learning_rate > 0 or not math.isfinite(learning_rate):
        raise TinyCompileError(f"{where}: learning_rate {learning_rate} is invalid; use a positive number such as 0.05")
    epochs = _integer(data.get("epochs", 1), f"{where}: epochs", minimum=1)
    batch_size = _integer(data.get("batch_size", 1), f"{where}: batch_size", minimum=1)
    if batch_size != 1:
        raise TinyCompileError(f"{where}: batch_size {batch_size} is not supported; the training step takes batch size 1")
    loss = data.get("loss", "cross_entropy")
    if loss not in LOSSES:
        raise TinyCompileError(f"{where}: loss '{loss}' is not supported; use {', '.join(LOSSES)}")
    sram, flash = _parse_budget(data.get("budget"), where)
    inplace = data.get("inplace_update", True)
    if not isinstance(inplace, bool):
        raise TinyCompileError(f"{where}: inplace_update must be true or false, not {inplace!r}")
    seed = _integer(data.get("seed", 0), f"{where}: seed", minimum=0)
    return TrainingConfig(source=source, head=head, bias_last_k=bias_last_k, weight_updates=weight_updates,
                          channel_selection=selection, learning_rate=learning_rate, epochs=epochs,
                          batch_size=batch_size, loss=loss, sram_budget=sram, flash_budget=flash,
                          inplace_update=inplace, seed=seed)


def _parse_head(value: Any, where: str) -> HeadConfig | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TinyCompileError(f"{where}: head must be a mapping such as {{num_classes: 10}}")
    unknown = sorted(str(k) for k in value if k not in ("num_classes", "weight_scale", "init"))
    if unknown:
        raise TinyCompileError(f"{where}: unknown key head.{unknown[0]}; use num_classes, weight_scale, init")
    if "num_classes" not in value:
        raise TinyCompileError(f"{where}: head.num_classes is missing; give the number of classes of the new task")
    num_classes = _integer(value["num_classes"], f"{where}: head.num_classes", minimum=2)
    scale = value.get("weight_scale")
    if scale is not None:
        scale = _number(scale, f"{where}: head.weight_scale")
        if not scale > 0 or not math.isfinite(scale):
            raise TinyCompileError(f"{where}: head.weight_scale {scale} is invalid; use a positive number")
    init = value.get("init", "zeros")
    if init not in ("zeros", "random"):
        raise TinyCompileError(f"{where}: head.init '{init}' is invalid; use zeros or random")
    return HeadConfig(num_classes=num_classes, weight_scale=scale, init=init)


def _parse_bias(value: Any, where: str) -> int | None:
    if value is None:
        return 0
    if not isinstance(value, dict) or set(value) - {"last_k"}:
        raise TinyCompileError(f"{where}: bias_update must be a mapping {{last_k: N}} with N an integer or 'all'")
    last_k = value.get("last_k", 0)
    if last_k == "all":
        return None
    return _integer(last_k, f"{where}: bias_update.last_k", minimum=0)


def _parse_weights(value: Any, where: str) -> tuple[WeightUpdate, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TinyCompileError(f"{where}: weight_update must be a list of {{layer: N, ratio: R}} entries")
    updates = []
    seen: set = set()
    for i, entry in enumerate(value):
        key = f"{where}: weight_update[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"layer", "ratio"} or "layer" not in entry:
            raise TinyCompileError(f"{key} must be a mapping {{layer: N, ratio: R}}, not {entry!r}")
        layer = entry["layer"]
        if isinstance(layer, bool) or not isinstance(layer, (int, str)):
            raise TinyCompileError(f"{key}.layer {layer!r} is invalid; give a layer index or an output tensor name")
        if isinstance(layer, int) and layer < 0:
            raise TinyCompileError(f"{key}.layer {layer} is negative; layers are numbered from 0")
        ratio = _number(entry.get("ratio", 1.0), f"{key}.ratio")
        if not 0.0 <= ratio <= 1.0:
            raise TinyCompileError(
                f"{key}.ratio {ratio} is outside [0, 1]; give the fraction of input channels to update "
                "(0 updates only the bias)"
            )
        if layer in seen:
            raise TinyCompileError(f"{key}.layer {layer!r} is listed twice; give each layer once")
        seen.add(layer)
        updates.append(WeightUpdate(layer=layer, ratio=ratio))
    return tuple(updates)


def _parse_budget(value: Any, where: str) -> tuple[int, int]:
    if value is None:
        return SRAM_BUDGET_DEFAULT, FLASH_BUDGET_DEFAULT
    if not isinstance(value, dict) or set(value) - {"sram_bytes", "flash_bytes"}:
        raise TinyCompileError(f"{where}: budget must be a mapping {{sram_bytes: N, flash_bytes: N}}")
    sram = _integer(value.get("sram_bytes", SRAM_BUDGET_DEFAULT), f"{where}: budget.sram_bytes", minimum=1)
    flash = _integer(value.get("flash_bytes", FLASH_BUDGET_DEFAULT), f"{where}: budget.flash_bytes", minimum=1)
    return sram, flash


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TinyCompileError(f"{key} must be a number, not {value!r}")
    return float(value)


def _integer(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TinyCompileError(f"{key} must be an integer, not {value!r}")
    if value < minimum:
        raise TinyCompileError(f"{key} is {value}; use an integer of at least {minimum}")
    return value
