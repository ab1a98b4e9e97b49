"""mcunet-5fps (tiny-training's int8 format) with the 49 kB sparse-update scheme, and QEMU runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from tinycompile.training.codegen import write_training
from tinycompile.training.compiler import compile_training
from tinycompile.training.config import load_config
from tinycompile.training.host import build_training_runner, run_training_runner, write_dataset
from tinycompile.training.memory import compare_schemes

MODELS = Path(__file__).parent / "models" / "training"
SCHEME = MODELS / "mcunet_49kb.yaml"
SRAM = 256 * 1024
FLASH = 1024 * 1024


@pytest.fixture(scope="module")
def mcunet():
    model = shared_model("tiny_training/mcu_models/mcunet-5fps.json")
    return model, compile_training(model, SCHEME)


def random_images(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (count, 128, 128, 3)).astype(np.int8), np.arange(count) % 10


def test_scheme_selects_paper_layers(mcunet):
    _, program = mcunet
    layers = program.tg.layers
    assert len(layers) == 43
    assert layers[-1].is_head
    assert [layer.index for layer in layers if layer.update_bias] == list(range(22, 43))
    updated = {layer.index: int(layer.channels.size) for layer in layers[:-1] if layer.updates_weights}
    assert updated == {24: 12, 27: 24, 30: 24}   # ratios 0.25, 0.5, 0.5 of 48 input channels; 0 means frozen
    assert program.tg.num_classes == 10


def test_scheme_fits_256kb(mcunet):
    _, program = mcunet
    assert program.memory.lower_bound <= program.memory.arena_size <= SRAM
    assert program.memory.const_bytes <= FLASH


def test_backward_stops_at_earliest_update(mcunet):
    _, program = mcunet
    earliest = min(layer.op.index for layer in program.tg.layers if layer.trained)
    assert min(bop.op.index for bop in program.schedule.backward.ops) == earliest
    input_grads = [s for s in program.schedule.steps if s.kernel.endswith("_input_grad")]
    assert input_grads
    assert all(f"operator {earliest}:" not in s.comment for s in input_grads)


def test_host_training_steps_update_parameters(mcunet, tmp_path):
    _, program = mcunet
    runner = build_training_runner(write_training(program, tmp_path / "model"), tmp_path / "runner")
    x, y = random_images(4)
    dataset = tmp_path / "data.bin"
    write_dataset(dataset, x[:3], y[:3], x[3:], y[3:], epochs=1, seed=0)
    run_training_runner(runner, dataset, epochs=0, export_params=tmp_path / "before.bin")
    result = run_training_runner(runner, dataset, epochs=1, export_params=tmp_path / "after.bin", log_steps=True)
    assert len(result.step_losses) == 3
    assert all(np.isfinite(loss) and loss > 0 for loss in result.step_losses)
    before = np.frombuffer((tmp_path / "before.bin").read_bytes()[16:], np.float32)
    after = np.frombuffer((tmp_path / "after.bin").read_bytes()[16:], np.float32)
    assert before.shape == after.shape
    assert np.all(np.isfinite(after))
    offset = 0
    for m in program.schedule.masters:
        changed = np.any(before[offset:offset + m.value.count] != after[offset:offset + m.value.count])
        assert changed, f"{m.kind} of {m.layer.label} did not change"
        offset += m.value.count


def test_sparse_scheme_is_smallest(mcunet):
    model, program = mcunet
    rows = {r.name: r for r in compare_schemes(model, load_config(SCHEME))}
    full, last, bias = rows["full update"], rows["last 12 layers"], rows["bias only"]
    sparse = rows["sparse (configured)"]
    assert sparse.arena_bytes == program.memory.arena_size
    assert full.arena_bytes > last.arena_bytes > bias.arena_bytes > sparse.arena_bytes
    assert sparse.fits and not full.fits
    assert rows["sparse, updates deferred"].arena_bytes >= sparse.arena_bytes


@pytest.mark.qemu
def test_mcunet_trains_in_qemu(mcunet, tmp_path):
    from tinycompile.deploy.boards import load_board
    from tinycompile.training.qemu import build_training_firmware, run_training_firmware

    _, program = mcunet
    board = load_board("qemu-m4")
    image = build_training_firmware(write_training(program, tmp_path / "model"), board, tmp_path / "fw", SRAM)
    assert image.sram <= SRAM
    assert image.flash <= FLASH
    x, y = random_images(3, seed=1)
    result = run_training_firmware(image, board, x[:2], y[:2], x[2:], y[2:], epochs=1, seed=0)
    assert [e.epoch for e in result.epochs] == [0, 1]
    assert np.isfinite(result.epochs[1].train_loss)
    assert result.epochs[1].train_loss > 0
    assert result.instructions_per_step > result.instructions_per_inference > 0
    assert 0 < result.stack_used <= image.stack_size


@pytest.mark.qemu
@pytest.mark.slow
def test_digits_learn_in_qemu(tmp_path):
    from tinycompile.deploy.boards import load_board
    from tinycompile.training.dataset import load_dataset
    from tinycompile.training.qemu import build_training_firmware, run_training_firmware

    program = compile_training(MODELS / "digits_base.tflite", MODELS / "digits_transfer.yaml")
    board = load_board("qemu-m4")
    image = build_training_firmware(write_training(program, tmp_path / "model"), board, tmp_path / "fw", SRAM)
    data = load_dataset(MODELS / "digits_transfer.npz", program.tg.graph.inputs[0], 5)
    result = run_training_firmware(image, board, data.x_train, data.y_train, data.x_test, data.y_test,
                                   program.config.epochs, program.config.seed)
    assert result.epochs[0].test_accuracy <= 0.3
    assert result.epochs[-1].test_accuracy >= 0.85


def test_scheme_matches_tinyengine_graph(mcunet):
    """TinyEngine's compiled 49 kB graph computes the same weight-gradient slices and bias gradients."""
    import json

    graph = json.loads(shared_model("tiny_training/tinyengine_49kb_scheme/49kb-int8-graph.json").read_text())
    weight_grads = sorted(tuple(op["outputs"][0]["shape"][:2]) for op in graph if op["type"] == "transpose")
    bias_grads = [op for op in graph if op["type"] == "sum" and op["attrs"].get("axis") == [1]
                  and op["attrs"].get("exclude") == 1]
    _, program = mcunet
    ours = sorted((m.shape[0] if m.layer.is_head else m.layer.weight.shape[0], m.shape[1])
                  for m in program.schedule.masters if m.kind == "weight")
    assert ours == weight_grads
    assert len(bias_grads) == sum(m.kind == "bias" for m in program.schedule.masters) == 21
