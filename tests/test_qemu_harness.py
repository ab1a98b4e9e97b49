"""Cross builds of the firmware harness and runs in QEMU, on the hand-written test model.

tests/fixtures/fake_model implements the generated-model API with three element-wise int8
layers, and reference_outputs() computes the same arithmetic in Python. Tests that need a failing
model copy the fixture and rewrite its fake_config.h.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path

import pytest

from tinycompile.deploy import (
    FirmwareError,
    FirmwareFaultError,
    FirmwareTimeoutError,
    build_firmware,
    list_boards,
    load_board,
    measure_instructions_per_tick,
    run_firmware,
)
from tinycompile.errors import BudgetError, TinyCompileError, ToolError

FAKE_MODEL = Path(__file__).parent / "fixtures" / "fake_model"
SIMULATED = [name for name in list_boards() if load_board(name).simulated]
REAL = [name for name in list_boards() if not load_board(name).simulated]
SAMPLE_SIZE = 20  # input 0: 16 bytes, input 1: 4 bytes
OUTPUT_SIZE = 16
LAYER_NAMES = ["add_bias", "scale", "sub_broadcast"]

BIAS = [1, -2, 3, -4, 5, -6, 7, -8, 100, -100, 27, -27, 0, 64, -64, 127]
SCALE = [4, 8, -4, 3, 1, 2, -8, 5, 7, -1, 4, 6, -3, 2, 9, -128]
ZERO_POINT = 5

needs_toolchain = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed"
)
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")


def _sat8(value: int) -> int:
    return max(-128, min(127, value))


def reference_outputs(sample: bytes) -> bytes:
    """Compute the fake model's output for one sample, as model.h documents it."""
    signed = [value - 256 if value > 127 else value for value in sample]
    input0, input1 = signed[:16], signed[16:]
    temp = [_sat8(x + b) for x, b in zip(input0, BIAS)]
    temp = [_sat8((t * s) >> 2) for t, s in zip(temp, SCALE)]
    output = [_sat8(t - input1[i % 4] + ZERO_POINT) for i, t in enumerate(temp)]
    return bytes(value & 0xFF for value in output)


def make_samples(count: int, seed: int) -> list[bytes]:
    """Return saturating edge cases followed by seeded random samples."""
    generator = random.Random(seed)
    samples = [bytes([0x80] * SAMPLE_SIZE), bytes([0x7F] * SAMPLE_SIZE), bytes(SAMPLE_SIZE)]
    while len(samples) < count:
        samples.append(bytes(generator.randrange(256) for _ in range(SAMPLE_SIZE)))
    return samples[:count]


def variant_model(tmp_path: Path, **settings: int) -> Path:
    """Copy the fake model into tmp_path with the given fake_config.h settings changed."""
    model_dir = tmp_path / "model"
    shutil.copytree(FAKE_MODEL, model_dir)
    config = model_dir / "fake_config.h"
    lines = []
    for line in config.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "#define" and fields[1] in settings:
            line = f"#define {fields[1]} {settings.pop(fields[1])}"
        lines.append(line)
    assert not settings, f"unknown settings {settings}"
    config.write_text("\n".join(lines) + "\n")
    return model_dir


@pytest.fixture(scope="module")
def fake_images(tmp_path_factory):
    """Build the fake model once per simulated board."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    root = tmp_path_factory.mktemp("fake_images")
    return {name: build_firmware(FAKE_MODEL, load_board(name), root / name) for name in SIMULATED}


def test_reference_saturates():
    output = reference_outputs(bytes(SAMPLE_SIZE))
    # Zero inputs: bias 100 scaled by 7 saturates at 127 before the zero point is added.
    assert output[8] == 127
    assert output[15] == (_sat8((127 * -128) >> 2) + ZERO_POINT) & 0xFF


@needs_toolchain
@pytest.mark.parametrize("board_name", list_boards())
def test_fake_model_builds_for_every_board(tmp_path, board_name):
    board = load_board(board_name)
    image = build_firmware(FAKE_MODEL, board, tmp_path)
    assert image.elf.is_file()
    assert image.board == board_name
    assert image.text > 0
    assert image.rodata > 0
    assert image.data >= 1  # fake_zero_point
    assert image.bss >= 256  # the fake model's arena
    assert image.flash == image.text + image.rodata + image.data
    assert image.sram == image.data + image.bss + image.stack_size
    assert image.sram_budget == board.default_sram_budget
    expected_timer = "systick" if board.simulated or board.cpu == "cortex-m0plus" else "dwt"
    assert image.timer == expected_timer


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", SIMULATED)
def test_fake_model_outputs_on_qemu(fake_images, board_name):
    samples = make_samples(6, seed=7)
    run = run_firmware(fake_images[board_name], load_board(board_name), samples, OUTPUT_SIZE, timeout=20)

    assert run.exit_code == 0
    assert run.outputs == [reference_outputs(sample) for sample in samples]
    assert len(run.layer_instructions) == 3
    assert all(count > 0 for count in run.layer_instructions)
    assert len(run.layer_instructions_per_sample) == len(samples)
    assert sum(run.layer_instructions) <= run.total_instructions
    assert 0 < run.stack_used < run.stack_size
    assert run.stack_size == 8192


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", SIMULATED)
def test_instruction_counts_repeat_exactly(fake_images, board_name):
    board = load_board(board_name)
    samples = make_samples(4, seed=11)
    first = run_firmware(fake_images[board_name], board, samples, OUTPUT_SIZE, timeout=20)
    second = run_firmware(fake_images[board_name], board, samples, OUTPUT_SIZE, timeout=20)
    assert first.layer_instructions_per_sample == second.layer_instructions_per_sample
    assert first.total_instructions_per_sample == second.total_instructions_per_sample
    assert first.stack_used == second.stack_used


@needs_toolchain
@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", SIMULATED)
def test_systick_wraps_counted(fake_images, tmp_path, board_name):
    # A 64-tick SysTick period wraps inside many layers. A lost or doubled wrap would shift a
    # count by 64 ticks, while the wrap handler itself adds only a few instructions.
    board = load_board(board_name)
    samples = make_samples(48, seed=5)
    wrapping = build_firmware(FAKE_MODEL, board, tmp_path, defines=["TC_SYSTICK_RELOAD=63"])
    reference = run_firmware(fake_images[board_name], board, samples, OUTPUT_SIZE, timeout=20)
    measured = run_firmware(wrapping, board, samples, OUTPUT_SIZE, timeout=20)
    tolerance = 5 * board.qemu.instructions_per_tick
    assert measured.outputs == reference.outputs
    for expected, actual in zip(reference.total_instructions_per_sample, measured.total_instructions_per_sample):
        assert abs(actual - expected) <= tolerance
    for expected_layers, actual_layers in zip(reference.layer_instructions_per_sample, measured.layer_instructions_per_sample):
        for expected, actual in zip(expected_layers, actual_layers):
            assert abs(actual - expected) <= tolerance


@needs_toolchain
@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", SIMULATED)
def test_ticks_ratio_matches_board(tmp_path, board_name):
    board = load_board(board_name)
    measured = measure_instructions_per_tick(board, tmp_path)
    # The timed loop is 2,000,000 instructions, so the timer reads around it and the tick
    # quantisation shift the measurement by well under 0.1 %.
    assert measured == pytest.approx(board.qemu.instructions_per_tick, rel=1e-3)


@needs_toolchain
@needs_qemu
@pytest.mark.qemu
def test_hanging_model_times_out(tmp_path):
    board = load_board("qemu-m4")
    image = build_firmware(variant_model(tmp_path, FAKE_HANG_LAYER=1), board, tmp_path / "build")
    with pytest.raises(FirmwareTimeoutError) as caught:
        run_firmware(image, board, make_samples(2, seed=1), OUTPUT_SIZE, timeout=2)
    assert caught.value.last_layer == 0
    assert caught.value.last_sample == 0
    message = str(caught.value)
    assert "did not finish within 2 s" in message
    assert "last completed layer: 0 'add_bias' of sample 0" in message


@needs_toolchain
@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", ["qemu-m3", "qemu-m33"])
def test_faulting_model_reports_layer(tmp_path, board_name):
    board = load_board(board_name)
    image = build_firmware(variant_model(tmp_path, FAKE_FAULT_LAYER=2), board, tmp_path / "build")
    with pytest.raises(FirmwareFaultError) as caught:
        run_firmware(image, board, make_samples(1, seed=1), OUTPUT_SIZE, timeout=10)
    assert caught.value.last_layer == 1
    message = str(caught.value)
    assert "HardFault" in message
    assert "undefined instruction" in message
    assert "last completed layer: 1 'scale'" in message


@needs_toolchain
@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board_name", ["qemu-m4", "qemu-m33"])
def test_stack_overflow_detected(tmp_path, board_name):
    board = load_board(board_name)
    model_dir = variant_model(tmp_path, FAKE_STACK_BYTES=4096)
    image = build_firmware(model_dir, board, tmp_path / "build", stack_size=2048)
    with pytest.raises(FirmwareError) as caught:
        run_firmware(image, board, make_samples(1, seed=1), OUTPUT_SIZE, timeout=10)
    message = str(caught.value)
    if board.arch == "armv8m":
        # MSPLIM stops the overflow at the instruction that moves SP below the limit.
        assert "stack overflow (MSPLIM)" in message
    else:
        # The painted stack bottom is found overwritten after the run.
        assert "the stack overflowed" in message


@needs_toolchain
def test_oversized_arena_fails_to_link(tmp_path):
    board = load_board("qemu-m4")
    model_dir = variant_model(tmp_path, FAKE_ARENA_SIZE=300_000)
    with pytest.raises(BudgetError) as caught:
        build_firmware(model_dir, board, tmp_path / "build")
    message = str(caught.value)
    assert "budget of 262144 bytes" in message
    overflow = int(message.split(" needs ")[1].split(" bytes")[0])
    # Arena and stack alone exceed the budget by 46048 bytes, and the harness adds about 1 KB.
    assert 300_000 + 8192 - 262_144 <= overflow <= 300_000 + 8192 - 262_144 + 2048


@needs_toolchain
def test_small_budget_fails_to_link(tmp_path):
    with pytest.raises(BudgetError, match="budget of 4096 bytes"):
        build_firmware(FAKE_MODEL, load_board("qemu-m4"), tmp_path, sram_budget=4096)


@needs_toolchain
def test_larger_budget_allows_big_arena(tmp_path):
    board = load_board("qemu-m4")
    model_dir = variant_model(tmp_path, FAKE_ARENA_SIZE=300_000)
    image = build_firmware(model_dir, board, tmp_path / "build", sram_budget=512 * 1024)
    assert image.bss >= 300_000
    assert image.sram <= 512 * 1024


@needs_toolchain
def test_heap_use_rejected(tmp_path):
    model_dir = variant_model(tmp_path)
    model_source = model_dir / "model.c"
    text = model_source.read_text()
    text = text.replace("#include <stdint.h>", "#include <stdint.h>\n#include <stdlib.h>", 1)
    text = text.replace("    size_t i;\n", "    size_t i;\n    if (malloc(4) == NULL) {\n        return 1;\n    }\n", 1)
    model_source.write_text(text)
    with pytest.raises(TinyCompileError, match="calls the heap allocator"):
        build_firmware(model_dir, load_board("qemu-m4"), tmp_path / "build")


@needs_toolchain
def test_compile_error_is_tool_error(tmp_path):
    source = tmp_path / "broken.c"
    source.write_text("int broken(void) { return undefined_name; }\n")
    with pytest.raises(ToolError, match="arm-none-eabi-gcc failed for board 'qemu-m4'.*undefined_name"):
        build_firmware(FAKE_MODEL, load_board("qemu-m4"), tmp_path / "build", extra_sources=[source])


def test_missing_model_header(tmp_path):
    with pytest.raises(TinyCompileError, match="has no model.h"):
        build_firmware(tmp_path, load_board("qemu-m4"), tmp_path / "build")


def test_missing_toolchain_names_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError) as caught:
        build_firmware(FAKE_MODEL, load_board("qemu-m4"), tmp_path / "build")
    message = str(caught.value)
    assert "arm-none-eabi-gcc was not found" in message
    assert "gcc-arm-none-eabi" in message
    assert "libnewlib-arm-none-eabi" in message


@needs_toolchain
def test_missing_qemu_names_package(fake_images, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="qemu-system-arm was not found.*Debian package qemu-system-arm"):
        run_firmware(fake_images["qemu-m4"], load_board("qemu-m4"), make_samples(1, 0), OUTPUT_SIZE, timeout=5)


@needs_qemu
@pytest.mark.qemu
def test_wrong_sample_size_reported(fake_images):
    with pytest.raises(FirmwareError, match="not a whole number of samples"):
        run_firmware(fake_images["qemu-m4"], load_board("qemu-m4"), [bytes(21)], OUTPUT_SIZE, timeout=10)


@needs_qemu
def test_unequal_samples_rejected(fake_images):
    with pytest.raises(TinyCompileError, match=r"sizes \[19, 20\] bytes"):
        run_firmware(fake_images["qemu-m4"], load_board("qemu-m4"), [bytes(20), bytes(19)], OUTPUT_SIZE, timeout=10)


@needs_qemu
@pytest.mark.qemu
def test_wrong_output_size_reported(fake_images):
    with pytest.raises(FirmwareError, match="wrote 16 output bytes, expected 32"):
        run_firmware(fake_images["qemu-m4"], load_board("qemu-m4"), [bytes(20)], 32, timeout=10)


@needs_qemu
def test_real_board_cannot_run_in_qemu(fake_images):
    # A real board under the image's board name, so only the "not simulated" check can fail.
    real_board = dataclasses.replace(load_board("nrf52840-dk"), name="qemu-m4")
    with pytest.raises(TinyCompileError, match="is a real board, not simulated"):
        run_firmware(fake_images["qemu-m4"], real_board, [bytes(20)], OUTPUT_SIZE, timeout=5)


@needs_qemu
def test_image_for_other_board_rejected(fake_images):
    with pytest.raises(TinyCompileError, match="built for board 'qemu-m3', not 'qemu-m4'"):
        run_firmware(fake_images["qemu-m3"], load_board("qemu-m4"), [bytes(20)], OUTPUT_SIZE, timeout=5)
