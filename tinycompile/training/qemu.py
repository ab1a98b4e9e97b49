"""Cross-build a generated training step into Cortex-M firmware and train in QEMU.

The firmware is the generated folder plus templates/training/train_qemu_main.c, linked with the
project's harness (start-up, semihosting, SysTick timer) by `tinycompile.deploy.cross`. Its
linker script makes the RAM region as long as the SRAM budget, so a training step that does not
fit fails to link. QEMU runs with -icount shift=0, so SysTick ticks times the board's
instructions per tick is the number of executed instructions (not cycles).
"""

from __future__ import annotations

import logging
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile.codegen.emit import TEMPLATES_DIR
from tinycompile.deploy.boards import Board
from tinycompile.deploy.cross import FirmwareImage, _build
from tinycompile.deploy.qemu import find_qemu, qemu_command
from tinycompile.errors import TinyCompileError
from tinycompile.training.host import DATASET_MAGIC, EpochResult

log = logging.getLogger(__name__)

QEMU_MAIN = TEMPLATES_DIR / "training" / "train_qemu_main.c"
TRAINING_STACK = 8 * 1024

_EXIT_REASONS = {
    3: "the firmware could not open or read tc_train.bin or tc_test.bin",
    4: "a sample in the data files is short or the wrong size for this model",
    5: "the firmware could not write tc_train_log.txt",
    6: "tc_train_init() failed",
    7: "a training step or an inference failed",
    8: "the firmware took a fault exception",
    9: "the stack overflowed",
}


@dataclass
class QemuTrainingResult:
    """Per-epoch results of training in QEMU, with executed instructions."""

    epochs: list[EpochResult]
    instructions_per_step: float
    instructions_per_inference: float
    stack_used: int
    image: FirmwareImage


def build_training_firmware(model_dir: Path, board: Board, out_dir: Path, sram_budget: int) -> FirmwareImage:
    """Compile the generated training folder with the QEMU main into out_dir/firmware.elf."""
    model_dir = Path(model_dir)
    sources = sorted(model_dir.rglob("*.c")) + [QEMU_MAIN]
    # NOTE: _build is the cross-build module's internal entry point; build_firmware links the
    # inference harness main, which a training image replaces.
    return _build(board, Path(out_dir), sources=sources, includes=[model_dir, model_dir / "tc"], opt="-O2",
                  sram_budget=sram_budget, stack_size=TRAINING_STACK, defines=[], profile=False)


def _records(x: np.ndarray, y: np.ndarray) -> bytes:
    return b"".join(np.ascontiguousarray(xi, np.int8).tobytes() + struct.pack("<i", int(yi)) for xi, yi in zip(x, y))


_EVAL = re.compile(r"^eval epoch=(\d+) correct=(\d+) count=(\d+) ticks=(\d+)$")
_EPOCH = re.compile(r"^epoch=(\d+) steps=(\d+) loss_micro=(\d+) ticks=(\d+)$")
_STACK = re.compile(r"^stack size=(\d+) used=(\d+)$")


def run_training_firmware(image: FirmwareImage, board: Board, x_train: np.ndarray, y_train: np.ndarray,
                          x_test: np.ndarray, y_test: np.ndarray, epochs: int, seed: int,
                          timeout: float = 600.0) -> QemuTrainingResult:
    """Train for `epochs` in QEMU; the training order of each epoch is shuffled with `seed` here."""
    qemu = find_qemu()
    rng = np.random.default_rng(seed)
    sample_bytes = int(np.prod(x_train.shape[1:]))
    with tempfile.TemporaryDirectory(prefix="tc-train-qemu-") as work:
        work_dir = Path(work)
        with open(work_dir / "tc_train.bin", "wb") as f:
            f.write(struct.pack("<8I", DATASET_MAGIC, 1, len(x_train), len(x_test), sample_bytes, epochs, seed, 0))
            for _ in range(epochs):
                order = rng.permutation(len(x_train)) if seed else np.arange(len(x_train))
                f.write(_records(x_train[order], y_train[order]))
        (work_dir / "tc_test.bin").write_bytes(_records(x_test, y_test))
        command = qemu_command(qemu, board, image.elf)
        log.info("training in QEMU on %s: %d epochs of %d samples", board.name, epochs, len(x_train))
        try:
            result = subprocess.run(command, cwd=work_dir, stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise TinyCompileError(f"training in QEMU on board '{board.name}' did not finish within {timeout:g} s; "
                                   "train on fewer samples or epochs") from None
        text = (work_dir / "tc_train_log.txt").read_text() if (work_dir / "tc_train_log.txt").exists() else ""
        if result.returncode != 0:
            reason = _EXIT_REASONS.get(result.returncode, f"exit status {result.returncode}")
            console = (result.stdout + result.stderr).decode("utf-8", "replace").strip()[-300:]
            raise TinyCompileError(f"training firmware on board '{board.name}' failed: {reason}; console: {console}")
    return _parse_log(text, board, image)


def _parse_log(text: str, board: Board, image: FirmwareImage) -> QemuTrainingResult:
    ratio = board.qemu.instructions_per_tick
    evals: dict[int, tuple[int, int, int]] = {}
    epochs: dict[int, tuple[int, int, int]] = {}
    stack_used = 0
    for line in text.splitlines():
        if m := _EVAL.match(line):
            evals[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        elif m := _EPOCH.match(line):
            epochs[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        elif m := _STACK.match(line):
            stack_used = int(m.group(2))
    results = []
    step_ticks = step_count = eval_ticks = eval_count = 0
    for epoch in sorted(evals):
        correct, count, ticks = evals[epoch]
        eval_ticks += ticks
        eval_count += count
        train_loss = None
        per_step = None
        if epoch in epochs:
            steps, loss_micro, ticks = epochs[epoch]
            train_loss = loss_micro / 1e6 / max(steps, 1)
            per_step = ticks * ratio / max(steps, 1)
            step_ticks += ticks
            step_count += steps
        results.append(EpochResult(epoch, correct / count if count else 0.0, float("nan"), train_loss,
                                   instructions_per_step=per_step))
    return QemuTrainingResult(
        epochs=results,
        instructions_per_step=step_ticks * ratio / step_count if step_count else 0.0,
        instructions_per_inference=eval_ticks * ratio / eval_count if eval_count else 0.0,
        stack_used=stack_used,
        image=image,
    )
