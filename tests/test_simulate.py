"""QEMU end to end: real models cross-built for simulated Cortex-M boards, bit-exact against TFLM."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import SHARED_MODELS, run_cli, shared_model
from inputs import ad_samples, kws_samples, person_samples
from tinycompile.simulate import simulate_model

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                       reason="needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)"),
]

SAMPLES = 5


def assert_bit_exact(result) -> None:
    assert result.samples >= SAMPLES
    for output in result.outputs:
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} of {output.elements} differ"


def real_samples(model_name: str):
    if model_name.startswith("mlperf_tiny/kws"):
        return kws_samples(SHARED_MODELS)
    if model_name.startswith("mlperf_tiny/ad01"):
        return ad_samples(SHARED_MODELS, SHARED_MODELS / model_name, 3)
    if model_name.startswith("tflm/person_detection"):
        return person_samples(SHARED_MODELS)
    return []


@pytest.mark.parametrize("model_name", [
    "mlperf_tiny/kws_ref_model.tflite",
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/pretrainedResnet_quant.tflite",
    "mlperf_tiny/ad01_int8.tflite",
    "tflm/person_detection/person_detect.tflite",
    "tflm/hello_world/hello_world_int8.tflite",
    "tflm/memory_footprint/simple_add_model.tflite",
    "tflm/network_tester/network_model_dwconv_int8.tflite",
])
def test_model_on_qemu_m4(model_name):
    model = shared_model(model_name)
    real = real_samples(model_name)
    result = simulate_model(model, board="qemu-m4", samples=max(0, SAMPLES - len(real)), extra_samples=real)
    assert_bit_exact(result)
    assert result.run.total_instructions > 0
    assert len(result.layers) == len([layer for layer in result.compiled.layers if layer.kernel])
    assert result.image.flash < result.board.flash.size
    assert 0 < result.run.stack_used < result.run.stack_size


@pytest.mark.parametrize("board", ["qemu-m3", "qemu-m7", "qemu-m33", "qemu-m55"])
@pytest.mark.parametrize("model_name", ["mlperf_tiny/kws_ref_model.tflite",
                                        "mlperf_tiny/pretrainedResnet_quant.tflite"])
def test_model_on_other_boards(model_name, board):
    model = shared_model(model_name)
    real = real_samples(model_name)
    result = simulate_model(model, board=board, samples=SAMPLES - len(real), extra_samples=real)
    assert_bit_exact(result)


def test_instruction_counts_repeat(tmp_path):
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    first = simulate_model(model, board="qemu-m4", samples=2, seed=3)
    second = simulate_model(model, board="qemu-m4", samples=2, seed=3)
    assert first.run.layer_instructions_per_sample == second.run.layer_instructions_per_sample
    assert first.run.total_instructions == second.run.total_instructions


def test_simulate_cli_reports(tmp_path):
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    data = model.parent / "inputs" / "kws_input0_int8_49x10.bin"
    result = run_cli("simulate", model, "--input", data, "--samples", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "predicted class (argmax of output 0) per sample: 5," in text
    assert "PASS, bit-exact" in text
    assert "instructions per inference" in text
    assert "instructions per MAC" in text
    assert "flash:" in text
    assert "stack high-water" in text


def test_over_budget_fails_before_build(tmp_path):
    model = shared_model("mlperf_tiny/vww_96_int8.tflite")
    result = run_cli("simulate", model, "--sram-budget", "40000", "--samples", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.count("\n") == 0
    assert "40000" in message
    assert "peaks at layer" in message


def test_unknown_board_lists_known(tmp_path):
    result = run_cli("simulate", shared_model("tflm/hello_world/hello_world_int8.tflite"), "--board", "qemu-z80")
    assert result.returncode == 2
    assert "qemu-z80" in result.stderr
    assert "qemu-m4" in result.stderr


def run_simulate_with_tools(tmp_path, tools: tuple[str, ...]):
    """Run `tinycompile simulate` on hello_world with only `tools` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = dict(os.environ, PATH=str(bin_dir))
    return subprocess.run([sys.executable, "-m", "tinycompile.cli", "simulate",
                           str(shared_model("tflm/hello_world/hello_world_int8.tflite")), "--samples", "1"],
                          capture_output=True, text=True, env=env)


def test_missing_toolchain_names_package(tmp_path):
    result = run_simulate_with_tools(tmp_path, ("cc", "gcc", "qemu-system-arm"))
    assert result.returncode == 2
    assert "gcc-arm-none-eabi" in result.stderr


def test_missing_qemu_names_package(tmp_path):
    result = run_simulate_with_tools(tmp_path, ("cc", "gcc", "arm-none-eabi-gcc", "arm-none-eabi-size",
                                                "arm-none-eabi-nm", "arm-none-eabi-objcopy"))
    assert result.returncode == 2, result.stderr
    assert "qemu-system-arm" in result.stderr


def test_unoptimized_build_runs():
    # -O0 keeps every local of the inlined kernel bodies on the stack; simulate gives it room.
    model = shared_model("mlperf_tiny/kws_ref_model.tflite")
    result = simulate_model(model, board="qemu-m3", opt="-O0", samples=1)
    assert_bit_exact_samples(result, 1)


def assert_bit_exact_samples(result, count: int) -> None:
    assert result.samples == count
    for output in result.outputs:
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} of {output.elements} differ"


@pytest.mark.parametrize("planner", ["greedy", "best-fit", "exact"])
@pytest.mark.parametrize("model_name", [
    "mlperf_tiny/kws_ref_model.tflite",
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/pretrainedResnet_quant.tflite",
    "mlperf_tiny/ad01_int8.tflite",
    "tflm/person_detection/person_detect.tflite",
    "tflm/hello_world/hello_world_int8.tflite",
    "tflm/memory_footprint/simple_add_model.tflite",
    "tflm/network_tester/network_model_dwconv_int8.tflite",
])
def test_every_planner_in_place_on_qemu(model_name, planner):
    from tinycompile.compiler import CompileOptions

    options = CompileOptions(planner=planner, inplace="all")
    result = simulate_model(shared_model(model_name), board="qemu-m4", samples=2, compile_options=options)
    assert result.compiled.plan.planner == planner
    assert_bit_exact_samples(result, 2)


@pytest.mark.parametrize("board", ["qemu-m3", "qemu-m7", "qemu-m55"])
@pytest.mark.parametrize("model_name", [
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/ad01_int8.tflite",
    "tflm/person_detection/person_detect.tflite",
    "tflm/hello_world/hello_world_int8.tflite",
    "tflm/memory_footprint/simple_add_model.tflite",
    "tflm/network_tester/network_model_dwconv_int8.tflite",
])
def test_remaining_models_on_other_boards(model_name, board):
    # qemu-m3 has no DSP extension, so it runs the portable C paths of the specialized kernels.
    model = shared_model(model_name)
    real = real_samples(model_name)[:1]
    result = simulate_model(model, board=board, samples=2 - len(real), extra_samples=real)
    assert_bit_exact_samples(result, 2)
