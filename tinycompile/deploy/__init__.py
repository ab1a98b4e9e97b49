"""Deployment: board descriptions, cross builds of the firmware harness and QEMU runs."""

from tinycompile.deploy.boards import (
    DEFAULT_BOARD,
    DEFAULT_SRAM_BUDGET,
    DEFAULT_STACK_SIZE,
    Board,
    FitReport,
    MemoryRegion,
    PlatformIOTarget,
    QemuTarget,
    check_fits,
    harness_sram_bytes,
    list_boards,
    load_board,
    resolve_sram_budget,
)
from tinycompile.deploy.cross import FirmwareImage, build_calibration_firmware, build_firmware
from tinycompile.deploy.qemu import (
    FirmwareError,
    FirmwareFaultError,
    FirmwareTimeoutError,
    QemuRun,
    measure_instructions_per_tick,
    run_firmware,
)

__all__ = [
    "DEFAULT_BOARD",
    "DEFAULT_SRAM_BUDGET",
    "DEFAULT_STACK_SIZE",
    "Board",
    "FirmwareError",
    "FirmwareFaultError",
    "FirmwareImage",
    "FirmwareTimeoutError",
    "FitReport",
    "MemoryRegion",
    "PlatformIOTarget",
    "QemuRun",
    "QemuTarget",
    "build_calibration_firmware",
    "build_firmware",
    "check_fits",
    "harness_sram_bytes",
    "list_boards",
    "load_board",
    "measure_instructions_per_tick",
    "resolve_sram_budget",
    "run_firmware",
]
