"""Build a generated training step with the host C compiler and run training epochs on a dataset.

The dataset is written in the runner's binary format (see templates/training/train_host_main.c):
a header, then int8 inputs each followed by an int32 label, training samples first. The runner
prints one line per epoch, which `parse_epochs` turns into `EpochResult`s.
"""

from __future__ import annotations

import logging
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinycompile.build.host import HOST_FLAGS, host_compiler
from tinycompile.codegen.emit import TEMPLATES_DIR
from tinycompile.errors import TinyCompileError, ToolError

log = logging.getLogger(__name__)

DATASET_MAGIC = 0x53444354   # "TCDS"
HOST_MAIN = TEMPLATES_DIR / "training" / "train_host_main.c"


@dataclass
class EpochResult:
    """Loss and accuracy after one epoch (epoch 0: before training)."""

    epoch: int
    test_accuracy: float
    test_loss: float
    train_loss: float | None = None
    seconds_per_step: float | None = None      # host wall time
    instructions_per_step: float | None = None  # QEMU executed instructions


@dataclass
class RunResult:
    epochs: list[EpochResult]
    step_losses: list[float] = field(default_factory=list)
    output: str = ""


def write_dataset(path: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  epochs: int, seed: int) -> None:
    """Write samples in the runner's dataset format. Inputs must be int8 of one sample shape each."""
    sample_bytes = int(np.prod(x_train.shape[1:])) if len(x_train) else int(np.prod(x_test.shape[1:]))
    with open(path, "wb") as f:
        f.write(struct.pack("<8I", DATASET_MAGIC, 1, len(x_train), len(x_test), sample_bytes, epochs, seed, 0))
        for xs, ys in ((x_train, y_train), (x_test, y_test)):
            for x, y in zip(xs, ys):
                f.write(np.ascontiguousarray(x, np.int8).tobytes())
                f.write(struct.pack("<i", int(y)))


def build_training_runner(model_dir: Path, out: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the generated folder and the host runner into the executable `out`."""
    model_dir = Path(model_dir)
    sources = sorted(str(p) for p in model_dir.rglob("*.c"))
    cmd = [host_compiler(), *HOST_FLAGS, *extra_flags, f"-I{model_dir}", f"-I{model_dir / 'tc'}", *sources,
           str(HOST_MAIN), "-o", str(out), "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip()[:300])
        raise ToolError(f"host build of '{model_dir}' failed: {first}")
    return out


_EPOCH = re.compile(r"^epoch=(\d+)(.*)$")
_FIELD = re.compile(r"(\w+)=([-+0-9.eEnaif]+)")
_STEP = re.compile(r"^step sample=\d+ label=-?\d+ loss=(\S+)$")


def run_training_runner(runner: Path, dataset: Path, *, epochs: int | None = None, import_params: Path | None = None,
                        export_params: Path | None = None, logits: Path | None = None, log_steps: bool = False,
                        timeout: float = 600.0) -> RunResult:
    """Run the host runner and return its per-epoch results."""
    cmd = [str(runner), str(dataset)]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    if import_params is not None:
        cmd += ["--import", str(import_params)]
    if export_params is not None:
        cmd += ["--export", str(export_params)]
    if logits is not None:
        cmd += ["--logits", str(logits)]
    if log_steps:
        cmd.append("--log-steps")
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TinyCompileError(f"host training run timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        raise TinyCompileError(f"host training run failed with exit status {result.returncode}: {result.stderr.strip()}")
    return parse_output(result.stdout)


def parse_output(text: str) -> RunResult:
    epochs = []
    losses = []
    for line in text.splitlines():
        m = _EPOCH.match(line)
        if m:
            values = {k: float(v) for k, v in _FIELD.findall(m.group(2))}
            epochs.append(EpochResult(int(m.group(1)), values.get("test_accuracy", 0.0), values.get("test_loss", 0.0),
                                      values.get("train_loss"), values.get("seconds_per_step")))
            continue
        m = _STEP.match(line)
        if m:
            losses.append(float(m.group(1)))
    return RunResult(epochs, losses, text)
