"""On-device learning of a new task on the host: digits 5-9 on a CNN pre-trained on digits 0-4.

The model and data come from tools/make_training_models.py (scikit-learn's bundled digits,
pre-trained with TensorFlow and converted to int8). The generated training step learns a new
5-class head plus bias and partial-weight updates; held-out accuracy must rise from chance to at
least 85%. The exported parameters must load back into a fresh process unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinycompile.training.codegen import write_training
from tinycompile.training.compiler import compile_training
from tinycompile.training.host import build_training_runner, run_training_runner, write_dataset

MODELS = Path(__file__).parent / "models" / "training"


def quantize_inputs(program, x: np.ndarray) -> np.ndarray:
    t = program.tg.graph.inputs[0]
    scale, zero = t.quant.scalar_scale, t.quant.scalar_zero_point
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    program = compile_training(MODELS / "digits_base.tflite", MODELS / "digits_transfer.yaml")
    runner = build_training_runner(write_training(program, tmp / "model"), tmp / "runner")
    data = np.load(MODELS / "digits_transfer.npz")
    dataset = tmp / "digits.bin"
    write_dataset(dataset, quantize_inputs(program, data["x_train"]), data["y_train"],
                  quantize_inputs(program, data["x_test"]), data["y_test"], program.config.epochs, program.config.seed)
    result = run_training_runner(runner, dataset, export_params=tmp / "params.bin", logits=tmp / "logits.bin")
    return program, runner, dataset, result, tmp


def test_digits_start_at_chance(trained):
    _, _, _, result, _ = trained
    assert result.epochs[0].epoch == 0
    assert result.epochs[0].test_accuracy <= 0.3


def test_digits_reach_85_percent(trained):
    program, _, _, result, _ = trained
    assert len(result.epochs) == program.config.epochs + 1
    assert result.epochs[-1].test_accuracy >= 0.85
    assert result.epochs[-1].train_loss < result.epochs[1].train_loss


def test_digits_fit_small_arena(trained):
    program = trained[0]
    assert program.memory.arena_size <= 16 * 1024
    assert program.memory.arena_size >= program.memory.lower_bound


def test_params_round_trip(trained):
    _, runner, dataset, result, tmp = trained
    reloaded = run_training_runner(runner, dataset, epochs=0, import_params=tmp / "params.bin",
                                   export_params=tmp / "again.bin", logits=tmp / "logits_again.bin")
    assert (tmp / "again.bin").read_bytes() == (tmp / "params.bin").read_bytes()
    assert (tmp / "logits_again.bin").read_bytes() == (tmp / "logits.bin").read_bytes()
    assert reloaded.epochs[0].test_accuracy == result.epochs[-1].test_accuracy


def test_import_rejects_other_layout(trained, tmp_path):
    _, runner, dataset, _, tmp = trained
    raw = bytearray((tmp / "params.bin").read_bytes())
    raw[4] ^= 0xFF     # the layout hash
    (tmp_path / "bad.bin").write_bytes(bytes(raw))
    with pytest.raises(Exception, match="cannot import parameters"):
        run_training_runner(runner, dataset, epochs=0, import_params=tmp_path / "bad.bin")
