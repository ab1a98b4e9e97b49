"""The compile and verify commands: output folders, determinism, and every bad-input case."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO, run_cli, shared_model

BAD = REPO / "tests" / "models" / "bad"


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_compile_writes_c_folder(tmp_path):
    out = tmp_path / "hello"
    result = run_cli("compile", shared_model("tflm/hello_world/hello_world_int8.tflite"), "-o", out)
    assert result.returncode == 0, result.stderr
    for name in ("model.h", "model.c", "model_weights.c", "model_weights.h", "tc_config.h",
                 "report.json", "report.txt", "tc/tc_common.h"):
        assert (out / name).is_file(), name
    assert "arena:" in result.stdout
    model_c = (out / "model.c").read_text()
    assert "malloc" not in model_c
    assert "/* Layer 0: FULLY_CONNECTED" in model_c
    # Every array but the arena is const, so weights and parameters stay in flash.
    generated = model_c + (out / "model_weights.c").read_text()
    writable = re.findall(r"^(?:static )?(?:u?int(?:8|16|32)_t|float) (\w+)\[", generated, re.MULTILINE)
    assert writable == ["tc_arena"]
    assert re.search(r"^static const int32_t tc_layer0_\w+\[", generated, re.MULTILINE) or \
        "const int8_t tc_w" in generated


def test_compile_portable_weights_in_weights_file(tmp_path):
    from tinycompile.codegen.emit import write_model
    from tinycompile.compiler import CompileOptions, compile_model

    out = tmp_path / "hello"
    compiled = compile_model(shared_model("tflm/hello_world/hello_world_int8.tflite"),
                             CompileOptions(kernels="portable"))
    write_model(compiled, out)
    weights = (out / "model_weights.c").read_text()
    assert "const int8_t tc_w" in weights
    assert "TC_ALIGNED(16)" in weights
    assert (out / "tc" / "tc_fully_connected_s8.c").is_file()


def test_compile_is_deterministic(tmp_path):
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli("compile", model, "-o", first).returncode == 0
    assert run_cli("compile", model, "-o", second).returncode == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_compile_refuses_non_empty_folder(tmp_path):
    model = shared_model("tflm/hello_world/hello_world_int8.tflite")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert_one_line_error(run_cli("compile", model, "-o", out), "not empty", "--force")
    assert (out / "keep.txt").read_text() == "user data"
    result = run_cli("compile", model, "-o", out, "--force")
    assert result.returncode == 0, result.stderr
    assert not (out / "keep.txt").exists()
    assert (out / "model.c").exists()


def test_failed_compile_leaves_no_folder(tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(run_cli("compile", shared_model("tflm/magic_wand/magic_wand.tflite"), "-o", out))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_forced_compile_keeps_old_folder(tmp_path):
    out = tmp_path / "out"
    assert run_cli("compile", shared_model("tflm/hello_world/hello_world_int8.tflite"), "-o", out).returncode == 0
    before = (out / "model.c").read_bytes()
    bad = run_cli("compile", shared_model("tflm/magic_wand/magic_wand.tflite"), "-o", out, "--force")
    assert_one_line_error(bad)
    assert (out / "model.c").read_bytes() == before


def test_malformed_file(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(run_cli("compile", junk, "-o", tmp_path / "out"), "not a TFLite model")
    assert not (tmp_path / "out").exists()


def test_truncated_file(tmp_path):
    truncated = tmp_path / "kws_truncated.tflite"
    truncated.write_bytes(shared_model("mlperf_tiny/kws_ref_model.tflite").read_bytes()[:30000])
    assert_one_line_error(run_cli("compile", truncated, "-o", tmp_path / "out"), "malformed or truncated")
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path):
    assert_one_line_error(run_cli("compile", tmp_path / "nope.tflite", "-o", tmp_path / "out"), "not found")


def test_float_model():
    result = run_cli("compile", shared_model("tflm/magic_wand/magic_wand.tflite"), "-o", "unused-out")
    assert_one_line_error(result, "operator 0", "float32", "float model", "TFLITE_BUILTINS_INT8")
    assert not Path("unused-out").exists()


def test_weight_only_quantized_model(tmp_path):
    result = run_cli("compile", shared_model("mlperf_tiny/kws_ref_model_float32.tflite"), "-o", tmp_path / "o")
    assert_one_line_error(result, "operator 0 (CONV_2D", "weight-only quantized", "representative_dataset")


def test_custom_op(tmp_path):
    result = run_cli("compile", shared_model("tflm/person_detection/person_detect_vela.tflite"), "-o", tmp_path / "o")
    assert_one_line_error(result, "operator 0", "custom op 'ethos-u'")


def test_int16_activations(tmp_path):
    result = run_cli("compile", BAD / "int16_activations.tflite", "-o", tmp_path / "o")
    assert_one_line_error(result, "operator 0 (FULLY_CONNECTED", "int16", "int8 activations")


def test_several_subgraphs(tmp_path):
    result = run_cli("compile", BAD / "two_subgraphs.tflite", "-o", tmp_path / "o")
    assert_one_line_error(result, "3 subgraphs", "exactly one subgraph")


def test_dynamic_shape(tmp_path):
    result = run_cli("compile", BAD / "dynamic_shape.tflite", "-o", tmp_path / "o")
    assert_one_line_error(result, "tensor 0", "dynamic shape [1, -1]", "fixed input shape")


def test_verify_wrong_input_size(tmp_path):
    data = tmp_path / "short.bin"
    data.write_bytes(b"\x00" * 100)
    result = run_cli("verify", shared_model("mlperf_tiny/kws_ref_model.tflite"), "--input", data)
    assert_one_line_error(result, "short.bin", "100 bytes", "490 bytes")


def test_verify_reports_pass(tmp_path):
    result = run_cli("verify", shared_model("tflm/hello_world/hello_world_int8.tflite"), "--samples", "4")
    assert result.returncode == 0, result.stderr
    assert "PASS: bit-exact" in result.stdout
    assert "mismatches" in result.stdout


def test_verify_real_input_file():
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    data = model.parent / "inputs" / "kws_input0_int8_49x10.bin"
    result = run_cli("verify", model, "--input", data, "--samples", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 samples" in " ".join(result.stdout.split())
