"""The train-compile and simulate-train commands, and one-line errors for bad training input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

MODELS = Path(__file__).parent / "models" / "training"
DIGITS = MODELS / "digits_base.tflite"
DIGITS_CONFIG = MODELS / "digits_transfer.yaml"


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_train_compile_writes_folder(tmp_path):
    out = tmp_path / "train"
    result = run_cli("train-compile", DIGITS, "--config", DIGITS_CONFIG, "-o", out)
    assert result.returncode == 0, result.stderr
    for name in ("train.c", "train.h", "train_weights.c", "tc_config.h", "report.json", "tc/tc_train.h",
                 "tc/tc_train_grad.c"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["num_classes"] == 5
    assert 0 < report["lower_bound_bytes"] <= report["arena_bytes"] <= report["sram_budget_bytes"]
    assert "training step SRAM" in result.stdout
    assert f"{report['arena_bytes']:,}" in result.stdout


def test_simulate_train_host_reports_epochs(tmp_path):
    params = tmp_path / "params.bin"
    result = run_cli("simulate-train", DIGITS, "--config", DIGITS_CONFIG, "--dataset", MODELS / "digits_transfer.npz",
                     "--epochs", "2", "--max-test", "100", "--export", params)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert "training step SRAM" in result.stdout
    assert params.stat().st_size > 16


def test_unsupported_backward_op_is_named(tmp_path):
    config = write_config(tmp_path / "c.yaml", "weight_update:\n  - {layer: 0, ratio: 1}\n")
    result = run_cli("train-compile", MODELS / "padded_cnn.tflite", "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "PAD", "operator 1", "layer 0", "no backward rule")


def test_missing_layer_is_rejected(tmp_path):
    config = write_config(tmp_path / "c.yaml", "weight_update:\n  - {layer: 9, ratio: 0.5}\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "weight_update[0].layer 9 does not exist", "4 trainable layers")


def test_missing_layer_name_is_rejected(tmp_path):
    config = write_config(tmp_path / "c.yaml", "weight_update:\n  - {layer: no_such_conv, ratio: 0.5}\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "'no_such_conv' names no trainable layer")


@pytest.mark.parametrize("ratio", ["1.5", "-0.25"])
def test_ratio_outside_range_is_rejected(tmp_path, ratio):
    config = write_config(tmp_path / "c.yaml", f"weight_update:\n  - {{layer: 1, ratio: {ratio}}}\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, f"ratio {float(ratio)} is outside [0, 1]")


def test_ratio_selecting_no_channel_is_rejected(tmp_path):
    config = write_config(tmp_path / "c.yaml", "weight_update:\n  - {layer: 0, ratio: 0.5}\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "selects no channel")


def test_unknown_config_key_is_rejected(tmp_path):
    config = write_config(tmp_path / "c.yaml", "learning_rat: 0.1\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "unknown key 'learning_rat'")


def test_invalid_yaml_is_rejected(tmp_path):
    config = write_config(tmp_path / "c.yaml", "head: [1, 2\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    assert_one_line_error(result, "is not valid YAML")


def test_label_outside_classes_is_rejected(tmp_path):
    data = np.load(MODELS / "digits_transfer.npz")
    y_train = data["y_train"].copy()
    y_train[3] = 7
    dataset = tmp_path / "bad.npz"
    np.savez(dataset, x_train=data["x_train"], y_train=y_train, x_test=data["x_test"], y_test=data["y_test"])
    result = run_cli("simulate-train", DIGITS, "--config", DIGITS_CONFIG, "--dataset", dataset, "--epochs", "1")
    assert_one_line_error(result, "y_train[3]", "label 7 is outside the model's classes 0-4")


def test_scheme_over_budget_prints_memory_table(tmp_path):
    config = write_config(tmp_path / "c.yaml", DIGITS_CONFIG.read_text() + "budget:\n  sram_bytes: 4096\n")
    result = run_cli("train-compile", DIGITS, "--config", config, "-o", tmp_path / "out")
    line = assert_one_line_error(result, "over the SRAM budget of 4,096 bytes", "master copies")
    assert "bytes alive at the peak step" in result.stdout
    assert "master copy" in result.stdout
    assert not (tmp_path / "out").exists()
    assert "update fewer layers" in line
