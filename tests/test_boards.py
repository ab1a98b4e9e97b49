"""Board files: loading, validation errors, memory facts and SRAM budget checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinycompile.deploy.boards import (
    BOARDS_DIR,
    DEFAULT_SRAM_BUDGET,
    check_fits,
    list_boards,
    load_board,
    resolve_sram_budget,
)
from tinycompile.deploy.cross import cpu_flags, render_linker_script
from tinycompile.errors import BudgetError, TinyCompileError

SIMULATED = ["qemu-m3", "qemu-m4", "qemu-m7", "qemu-m33", "qemu-m55"]
REAL = [
    "stm32f746g-disco",
    "nucleo-l4r5zi",
    "nrf52840-dk",
    "arduino-nano-33-ble-sense",
    "raspberry-pi-pico",
]


def test_list_boards_has_every_board():
    assert list_boards() == sorted(SIMULATED + REAL)


@pytest.mark.parametrize(
    ("name", "machine", "cpu", "ratio"),
    [
        ("qemu-m3", "mps2-an385", "cortex-m3", 40.0),
        ("qemu-m4", "mps2-an386", "cortex-m4", 40.0),
        ("qemu-m7", "mps2-an500", "cortex-m7", 40.0),
        ("qemu-m33", "mps2-an505", "cortex-m33", 50.0),
        ("qemu-m55", "mps3-an547", "cortex-m55", 31.25),
    ],
)
def test_simulated_board_fields(name, machine, cpu, ratio):
    board = load_board(name)
    assert board.simulated
    assert board.qemu_machine == machine
    assert board.cpu == cpu
    assert board.qemu.instructions_per_tick == ratio
    assert board.default_sram_budget == DEFAULT_SRAM_BUDGET
    assert board.platformio is None
    assert board.clock_hz is None


@pytest.mark.parametrize(
    ("name", "cpu", "fpu", "flash_origin", "flash_size", "sram_size", "clock_hz", "pio_board"),
    [
        ("stm32f746g-disco", "cortex-m7", "fpv5-sp-d16", 0x08000000, 1024 * 1024, 320 * 1024, 216_000_000, "disco_f746ng"),
        ("nucleo-l4r5zi", "cortex-m4", "fpv4-sp-d16", 0x08000000, 2048 * 1024, 640 * 1024, 120_000_000, "nucleo_l4r5zi"),
        ("nrf52840-dk", "cortex-m4", "fpv4-sp-d16", 0x0, 1024 * 1024, 256 * 1024, 64_000_000, "nrf52840_dk"),
        # The Arduino boot loader keeps the first 64 KB of flash.
        ("arduino-nano-33-ble-sense", "cortex-m4", "fpv4-sp-d16", 0x10000, 960 * 1024, 256 * 1024, 64_000_000, "nano33ble"),
        # boot2 keeps the first 256 bytes of the 2 MB flash.
        ("raspberry-pi-pico", "cortex-m0plus", None, 0x10000100, 2048 * 1024 - 256, 264 * 1024, 133_000_000, "pico"),
    ],
)
def test_real_board_memory_map(name, cpu, fpu, flash_origin, flash_size, sram_size, clock_hz, pio_board):
    board = load_board(name)
    assert not board.simulated
    assert board.cpu == cpu
    assert board.fpu == fpu
    assert board.flash.origin == flash_origin
    assert board.flash.size == flash_size
    assert board.sram.origin == 0x20000000
    assert board.sram.size == sram_size
    assert board.clock_hz == clock_hz
    assert board.platformio.board == pio_board
    assert board.default_sram_budget == sram_size
    assert board.qemu is None


def test_unknown_board_lists_known_boards():
    with pytest.raises(TinyCompileError) as caught:
        load_board("qemu-m99")
    message = str(caught.value)
    assert "qemu-m99" in message
    for name in SIMULATED + REAL:
        assert name in message
    assert "\n" not in message


def _write_variant(directory: Path, changes: dict, removals: tuple[str, ...] = (), name: str = "custom") -> None:
    data = yaml.safe_load((BOARDS_DIR / "qemu-m4.yaml").read_text())
    data["name"] = name
    for key in removals:
        data.pop(key)
    data.update(changes)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("changes", "removals", "expected"),
    [
        ({"cpu": "cortex-m9"}, (), "'cpu' is 'cortex-m9'"),
        ({"fpu": "fpv5-d16"}, (), "'fpu' is 'fpv5-d16'"),
        ({"dsp": "yes"}, (), "'dsp' is 'yes'"),
        ({"dsp": False}, (), "'dsp' is False"),
        ({"mve": True}, (), "'mve' is true"),
        ({"simulated": False}, (), "'qemu' applies to simulated boards only"),
        ({"clock_hz": 1000}, (), "'clock_hz' applies to real boards only"),
        ({"colour": "red"}, (), "'colour' is not a board field"),
        ({}, ("description",), "'description' is None"),
        ({"qemu": {"machine": "mps2-an386"}}, (), "'qemu.instructions_per_tick' is missing"),
        ({"qemu": {"machine": "mps2-an386", "instructions_per_tick": 0}}, (), "'qemu.instructions_per_tick' is 0"),
        ({"memory": {"flash": {"origin": 0, "size": 1024}}}, (), "'memory.sram' is missing"),
        ({"memory": {"flash": {"origin": 0, "size": 1024}, "sram": {"origin": 0x20000000, "size": -4}}}, (), "'memory.sram.size' is -4"),
        ({"memory": {"flash": {"origin": 0, "size": 0x2000}, "sram": {"origin": 0x1000, "size": 0x2000}}}, (), "'memory.flash' overlaps memory.sram"),
        ({"memory": {"flash": {"origin": 0, "size": 1024, "speed": 3}, "sram": {"origin": 0x20000000, "size": 1024}}}, (), "'memory.flash.speed' is not allowed"),
    ],
)
def test_invalid_board_names_field(tmp_path, changes, removals, expected):
    _write_variant(tmp_path, changes, removals)
    with pytest.raises(TinyCompileError) as caught:
        load_board("custom", boards_dir=tmp_path)
    message = str(caught.value)
    assert expected in message
    assert "custom.yaml" in message
    assert "\n" not in message


def test_board_name_must_match_file(tmp_path):
    _write_variant(tmp_path, {}, name="custom")
    (tmp_path / "custom.yaml").rename(tmp_path / "other.yaml")
    with pytest.raises(TinyCompileError, match="'name' is 'custom' but the file is named other.yaml"):
        load_board("other", boards_dir=tmp_path)


def test_invalid_yaml_reported(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(TinyCompileError, match="broken.yaml line .*invalid YAML"):
        load_board("broken", boards_dir=tmp_path)


def test_valid_variant_loads(tmp_path):
    _write_variant(tmp_path, {"description": "a copy"})
    board = load_board("custom", boards_dir=tmp_path)
    assert board.description == "a copy"
    assert board.path == tmp_path / "custom.yaml"


def test_resolve_sram_budget():
    board = load_board("qemu-m4")
    assert resolve_sram_budget(board, None) == 256 * 1024
    assert resolve_sram_budget(board, 64 * 1024) == 64 * 1024
    with pytest.raises(TinyCompileError, match="exceeds the 4194304 bytes of SRAM"):
        resolve_sram_budget(board, 8 * 1024 * 1024)
    with pytest.raises(TinyCompileError, match="SRAM budget 0 is invalid"):
        resolve_sram_budget(board, 0)


def test_check_fits_accepts_plan_within_budget():
    report = check_fits(load_board("qemu-m4"), 200_000, stack_bytes=8192, other_bytes=1000)
    assert report.sram_budget == 262_144
    assert report.required_bytes == 209_192
    assert report.free_bytes == 52_952


def test_check_fits_rejects_oversized_arena():
    with pytest.raises(BudgetError) as caught:
        check_fits(load_board("qemu-m4"), 300_000, sram_budget=262_144, stack_bytes=8192)
    message = str(caught.value)
    assert "46048 bytes short" in message
    assert "budget of 262144 bytes" in message


def test_check_fits_uses_real_board_sram():
    board = load_board("nucleo-l4r5zi")
    assert check_fits(board, 600_000).sram_budget == 640 * 1024
    with pytest.raises(BudgetError):
        check_fits(board, 650_000)


def test_linker_script_ram_length_is_budget():
    board = load_board("qemu-m33")
    script = render_linker_script(board, 128 * 1024, 4096)
    assert "FLASH (rx) : ORIGIN = 0x10000000, LENGTH = 0x400000" in script
    assert "RAM (rwx)  : ORIGIN = 0x38000000, LENGTH = 0x20000" in script
    assert "__stack_size = 4096;" in script
    assert "BOOT (rx)" not in script
    assert "} > FLASH" in script


def test_linker_script_boot_region_holds_vectors():
    script = render_linker_script(load_board("qemu-m55"), 256 * 1024, 8192)
    assert "BOOT (rx)  : ORIGIN = 0x00000000, LENGTH = 0x80000" in script
    assert "} > BOOT" in script


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qemu-m3", ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]),
        ("qemu-m4", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
        ("stm32f746g-disco", ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"]),
        ("qemu-m55", ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-mfpu=auto"]),
        ("raspberry-pi-pico", ["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"]),
    ],
)
def test_cpu_flags(name, expected):
    assert cpu_flags(load_board(name)) == expected
