"""PlatformIO projects: generation, the offline QEMU platform, the link check and `tinycompile flash`.

PlatformIO commands run with a core folder made for this test session and without network:
inside `unshare -n` (a network namespace with no interfaces up) when the tests run as root, or
else with every HTTP(S) request sent to a local proxy that records connections and answers none,
and the test asserts that it recorded none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli, shared_model
from tinycompile.compiler import CompileOptions, compile_graph, load_model
from tinycompile.deploy import MemoryRegion, list_boards, load_board
from tinycompile.deploy.cross import cpu_flags
from tinycompile.errors import BudgetError

platformio = pytest.importorskip("platformio", reason="PlatformIO is not installed")

from tinycompile.deploy import platformio as tc_pio  # noqa: E402
from tinycompile.deploy.pio_project import (  # noqa: E402
    QEMU_PLATFORM_DIR,
    SERIAL_BAUD_RATE,
    expected_console_lines,
)

SIMULATED = [name for name in list_boards() if load_board(name).simulated]
REAL = [name for name in list_boards() if not load_board(name).simulated]
HELLO = "tflm/hello_world/hello_world_int8.tflite"
KWS = "mlperf_tiny/kws_ref_model.tflite"
RESNET = "mlperf_tiny/pretrainedResnet_quant.tflite"
MLPERF_TINY = ["mlperf_tiny/kws_ref_model.tflite", "mlperf_tiny/vww_96_int8.tflite",
               "mlperf_tiny/pretrainedResnet_quant.tflite", "mlperf_tiny/ad01_int8.tflite"]
PIO_TIMEOUT = 600

needs_toolchain = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                     reason="arm-none-eabi-gcc is not installed")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm is not installed")


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


UNSHARE = _unshare_works()


class RecordingProxy:
    """A local TCP server used as HTTP(S) proxy: it records each connection and closes it unanswered."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="session")
def pio_core(tmp_path_factory) -> Path:
    """A PlatformIO core folder shared by the tests of this session, empty at the start."""
    return tmp_path_factory.mktemp("pio-core")


@pytest.fixture
def offline(pio_core, monkeypatch):
    """Return a function that runs a command offline with the test session's PlatformIO core folder."""
    monkeypatch.setenv(tc_pio.CORE_DIR_VARIABLE, str(pio_core))
    proxy = None if UNSHARE else RecordingProxy()

    def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        environment = tc_pio.pio_environment(pio_core)
        if proxy is not None:
            for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
                environment[name] = proxy.url
            environment["NO_PROXY"] = environment["no_proxy"] = ""
        prefix = ["unshare", "-n"] if UNSHARE else []
        return subprocess.run(prefix + command, cwd=cwd, env=environment, capture_output=True, text=True,
                              timeout=PIO_TIMEOUT, check=False)

    yield run
    if proxy is not None:
        proxy.close()
        assert proxy.connections == 0, f"PlatformIO made {proxy.connections} network requests"


def pio(*args: str) -> list[str]:
    return tc_pio.pio_command(*args)


def tinycompile(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinycompile.cli", *args]


def reference_outputs(model: Path, sample_index: int = 0, count: int = 4, seed: int = 0):
    """Compute the reference outputs of one of the project's default golden samples, independently."""
    from tinycompile.reference import run_reference
    from tinycompile.verify import random_samples

    graph = load_model(model)
    samples = random_samples(graph, count, seed)
    return graph, run_reference(model, [samples[sample_index]], "tflm", len(graph.outputs))[0]


def read_tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file() and ".pio" not in path.parts}


# --- Generation without PlatformIO ------------------------------------------------------------


def test_tool_scons_satisfies_platformio():
    from platformio.dependencies import get_core_dependencies
    from semantic_version import SimpleSpec, Version

    requirement = get_core_dependencies()["tool-scons"]
    assert SimpleSpec(requirement).match(Version(tc_pio.tool_scons_version())), requirement
    tc_pio.check_tool_scons()


def test_tool_scons_mismatch_raises(monkeypatch):
    monkeypatch.setattr(tc_pio, "tool_scons_version", lambda: "4.40000.0")
    with pytest.raises(tc_pio.ToolError, match="requires tool-scons .* local package .* 4.40000.0"):
        tc_pio.check_tool_scons()


@pytest.mark.parametrize("board_name", SIMULATED)
def test_qemu_manifest_matches_board(board_name):
    board = load_board(board_name)
    manifest = json.loads((QEMU_PLATFORM_DIR / "boards" / f"{board_name}.json").read_text())
    assert manifest["build"]["cpu_flags"] == cpu_flags(board)
    assert manifest["build"]["cpu"] == board.cpu
    assert manifest["upload"]["qemu_machine"] == board.qemu.machine
    assert manifest["upload"]["maximum_size"] == board.flash.size
    assert manifest["upload"]["maximum_ram_size"] == board.default_sram_budget
    assert manifest["build"]["f_cpu"] == f"{round(1e9 / board.qemu.instructions_per_tick)}L"


def test_qemu_platform_has_every_simulated_board():
    manifests = sorted(path.stem for path in (QEMU_PLATFORM_DIR / "boards").glob("*.json"))
    assert manifests == sorted(SIMULATED)


@pytest.mark.parametrize("board_name", ["qemu-m55", "raspberry-pi-pico"])
def test_project_is_deterministic(tmp_path, board_name):
    model = shared_model(HELLO)
    first = run_cli("project", model, "--board", board_name, "-o", tmp_path / "first")
    second = run_cli("project", model, "--board", board_name, "-o", tmp_path / "second")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    files = read_tree(tmp_path / "first")
    assert files == read_tree(tmp_path / "second")
    assert "platformio.ini" in files
    assert "test/test_golden/golden_vectors.c" in files
    assert "SENSOR INPUT" in files["src/tc_app.c"].decode()


def test_project_layout_simulated(tmp_path):
    project = tc_pio.generate_project(shared_model(HELLO), "qemu-m7", tmp_path / "project")
    files = set(read_tree(project.path))
    expected = {"platformio.ini", "README.md", "firmware.ld", "src/main.c", "src/model.c", "src/model.h",
                "src/tc_console_semihosting.c", "src/startup/startup_armv7m.c", "src/startup/semihosting.c",
                "test/test_custom_runner.py", "test/test_golden/test_main.c", "test/test_golden/golden_vectors.c"}
    expected |= {f"src/tc/{source}" for source in project.compiled.kernel_sources}
    assert expected <= files
    assert not any(name.endswith(".cpp") for name in files)
    ini = (project.path / "platformio.ini").read_text()
    assert f"platform = symlink://{QEMU_PLATFORM_DIR.as_posix()}" in ini
    assert "platformio/tool-scons@symlink://" in ini


def test_project_layout_real_board(tmp_path):
    project = tc_pio.generate_project(shared_model(HELLO), "arduino-nano-33-ble-sense", tmp_path / "project")
    files = set(read_tree(project.path))
    assert {"src/main.cpp", "src/tc_console_arduino.cpp", "test/test_golden/test_main.cpp"} <= files
    assert not any(name.startswith("src/startup/") for name in files)
    assert "firmware.ld" not in files


def test_project_rejects_non_empty_folder(tmp_path):
    model = shared_model(HELLO)
    out = tmp_path / "project"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    result = run_cli("project", model, "--board", "qemu-m4", "-o", out)
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert "--force" in result.stderr
    assert (out / "keep.txt").read_text() == "user file"
    forced = run_cli("project", model, "--board", "qemu-m4", "-o", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not (out / "keep.txt").exists()
    assert (out / "platformio.ini").is_file()


def test_project_unknown_board_lists_known(tmp_path):
    result = run_cli("project", shared_model(HELLO), "--board", "qemu-m99", "-o", tmp_path / "project")
    assert result.returncode == 2
    assert "unknown board 'qemu-m99'" in result.stderr
    for name in list_boards():
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "project").exists()


def test_project_over_budget_fails_before_build(tmp_path):
    out = tmp_path / "project"
    result = run_cli("project", shared_model("mlperf_tiny/vww_96_int8.tflite"), "--board", "nrf52840-dk",
                     "--sram-budget", "32768", "--check", "-o", out)
    assert result.returncode == 2
    assert "budget of 32768 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_flash_without_platformio_names_package(tmp_path):
    # None in sys.modules makes `import platformio` raise ImportError, as if it were not installed.
    code = ("import sys; sys.modules['platformio'] = None; from tinycompile.cli import main; "
            f"main(['flash', {str(shared_model(HELLO))!r}, '--board', 'qemu-m4'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "PlatformIO is not installed" in result.stderr
    assert "pip install 'platformio==" in result.stderr


# --- Link check of real boards ----------------------------------------------------------------


@needs_toolchain
@pytest.mark.slow
@pytest.mark.parametrize("model_name", MLPERF_TINY)
def test_link_check_real_boards(model_name):
    """Every MLPerf Tiny model fits every real board (none of them is too small for any)."""
    compiled = compile_graph(load_model(shared_model(model_name)), CompileOptions())
    for board_name in REAL:
        board = load_board(board_name)
        image = tc_pio.link_check(compiled, board)
        assert image.board == board_name
        assert image.flash <= board.flash.size
        assert image.sram <= board.sram.size
        assert image.bss >= compiled.arena_size


@needs_toolchain
def test_link_check_fails_on_small_flash():
    board = load_board("nrf52840-dk")
    small = dataclasses.replace(board, flash=MemoryRegion("flash", board.flash.origin, 128 * 1024))
    compiled = compile_graph(load_model(shared_model("mlperf_tiny/ad01_int8.tflite")), CompileOptions())
    with pytest.raises(BudgetError, match=r"bytes larger than its flash region \(131072 bytes of flash\)"):
        tc_pio.link_check(compiled, small)


@needs_toolchain
def test_project_check_reports_fit(tmp_path):
    result = run_cli("project", shared_model(KWS), "--board", "stm32f746g-disco", "--check", "-o", tmp_path / "p")
    assert result.returncode == 0, result.stderr
    assert "link check on stm32f746g-disco" in result.stdout
    assert "of 1,048,576 bytes" in result.stdout
    assert "fits" in result.stdout


# --- PlatformIO, offline ----------------------------------------------------------------------


@pytest.mark.parametrize("board_name", REAL)
def test_real_board_config_is_valid(tmp_path, offline, board_name):
    from platformio.project.options import ProjectOptions

    board = load_board(board_name)
    project = tc_pio.generate_project(shared_model(HELLO), board_name, tmp_path / "project")
    result = offline(pio("project", "config", "--json-output"), cwd=project.path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = dict(json.loads(result.stdout.strip().splitlines()[-1]))
    env = dict(config[f"env:{board_name}"])
    assert env["platform"] == board.platformio.platform
    assert env["board"] == board.platformio.board
    assert env["framework"] in (board.platformio.framework, [board.platformio.framework])
    assert int(env["monitor_speed"]) == SERIAL_BAUD_RATE
    assert env["test_framework"] == "custom"
    unknown = [name for name in env if f"env.{name}" not in ProjectOptions and not name.startswith("board_")]
    assert unknown == []


def _generate(tmp_path: Path, model: Path, board_name: str) -> Path:
    out = tmp_path / "project"
    result = run_cli("project", model, "--board", board_name, "-o", out)
    assert result.returncode == 0, result.stderr
    return out


def _assert_upload_output(result: subprocess.CompletedProcess, model: Path) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    graph, outputs = reference_outputs(model)
    for line in expected_console_lines(graph, outputs):
        assert line in result.stdout.splitlines(), f"'{line}' missing from the upload output"
    assert "inference 0: ok" in result.stdout


def _assert_pio_test_passed(result: subprocess.CompletedProcess, samples: int = 4) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"{samples} test cases: {samples} succeeded" in output
    for sample in range(samples):
        assert f"golden_sample_{sample}\t[PASSED]" in output


@pytest.mark.qemu
@needs_toolchain
@needs_qemu
@pytest.mark.parametrize("model_name, board_name",
                         [(model, name) for model in (KWS, RESNET) for name in SIMULATED])
def test_qemu_upload_and_test(tmp_path, offline, model_name, board_name):
    model = shared_model(model_name)
    project = _generate(tmp_path, model, board_name)

    upload = offline(pio("run", "-t", "upload"), cwd=project)
    _assert_upload_output(upload, model)
    status = tc_pio.upload_status_path(project, board_name)
    assert status.read_text().strip() == "0"

    test = offline(pio("test", "-e", board_name), cwd=project)
    _assert_pio_test_passed(test)


@pytest.mark.qemu
@needs_toolchain
@needs_qemu
def test_golden_test_detects_mismatch(tmp_path, offline):
    project = _generate(tmp_path, shared_model(HELLO), "qemu-m3")
    vectors = project / "test" / "test_golden" / "golden_vectors.c"
    lines = vectors.read_text().splitlines()
    start = lines.index("static const int8_t tc_golden_sample2_output0[1] = {")
    value = int(lines[start + 1].strip().rstrip(","))
    lines[start + 1] = f"    {value + 1 if value < 127 else value - 1},"
    vectors.write_text("\n".join(lines) + "\n")

    result = offline(pio("test"), cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "golden_sample_2:FAIL: output 0: 1 of 1 elements differ" in output
    assert "1 failed, 3 succeeded" in output


@pytest.mark.qemu
@needs_toolchain
@needs_qemu
def test_flash_prints_firmware_output(offline):
    model = shared_model(HELLO)
    result = offline(tinycompile("flash", str(model), "--board", "qemu-m33"), cwd=REPO)
    _assert_upload_output(result, model)


@pytest.mark.qemu
@needs_toolchain
@needs_qemu
def test_flash_returns_firmware_status(tmp_path, offline, pio_core):
    project = tc_pio.generate_project(shared_model(HELLO), "qemu-m4", tmp_path / "project")
    main = project.path / "src" / "main.c"
    main.write_text(main.read_text().replace("    return status;\n", "    return status + 7;\n"))
    result = tc_pio.flash(project.path, project.board, core_dir=pio_core, timeout=PIO_TIMEOUT)
    assert result.firmware_status == 7
    assert result.exit_status == 7
    assert "the firmware exited with status 7" in result.output


def test_flash_rejects_port_for_qemu(tmp_path, pio_core):
    project = tc_pio.generate_project(shared_model(HELLO), "qemu-m4", tmp_path / "project")
    with pytest.raises(tc_pio.TinyCompileError, match="--port applies to real boards"):
        tc_pio.flash(project.path, project.board, port="/dev/ttyACM0", core_dir=pio_core)


FAKE_PIO_MAIN = """
import sys
print("Processing nrf52840-dk (platform: nordicnrf52; board: nrf52840_dk; framework: arduino)")
print("Error: Please specify `upload_port` for environment or use global `--upload-port` option.")
print("========================= [FAILED] Took 1.00 seconds =========================")
sys.exit(1)
"""


def test_flash_real_board_passes_error_through(tmp_path):
    """A stand-in platformio package plays a PlatformIO that finds no board to upload to."""
    fake = tmp_path / "fake" / "platformio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"__version__ = {tc_pio.TESTED_PLATFORMIO_VERSION!r}\n")
    requirement = f"~{tc_pio.tool_scons_version()}"
    (fake / "dependencies.py").write_text(
        f"def get_core_dependencies():\n    return {{'tool-scons': {requirement!r}}}\n")
    (fake / "__main__.py").write_text(FAKE_PIO_MAIN)
    environment = dict(os.environ, PYTHONPATH=f"{tmp_path / 'fake'}{os.pathsep}{REPO}",
                       **{tc_pio.CORE_DIR_VARIABLE: str(tmp_path / "core")})
    result = subprocess.run(tinycompile("flash", str(shared_model(HELLO)), "--board", "nrf52840-dk"),
                            cwd=REPO, env=environment, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 2
    assert "Please specify `upload_port`" in result.stdout
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1
    assert error_lines[0].startswith("error: PlatformIO failed to flash 'nrf52840-dk'")
    assert "pass its serial port with --port" in error_lines[0]


ARDUINO_STUB = """
#include <stddef.h>
#include <stdint.h>
class StubSerial {
public:
    void begin(unsigned long) {}
    size_t print(const char *) { return 0; }
    explicit operator bool() const { return true; }
};
extern StubSerial Serial;
unsigned long millis(void);
void delay(unsigned long);
"""

# Files that the templates generate, as opposed to the model and kernels that `compile` writes.
APPLICATION_SOURCES = ("src/tc_app.c", "src/tc_console.c", "src/tc_example_input.c", "src/main.c", "src/main.cpp",
                       "src/tc_console_semihosting.c", "src/tc_console_arduino.cpp",
                       "test/test_golden/golden_test.c", "test/test_golden/golden_vectors.c",
                       "test/test_golden/test_main.c", "test/test_golden/test_main.cpp")


@needs_toolchain
@pytest.mark.parametrize("board_name, model_name", [("raspberry-pi-pico", KWS), ("nucleo-l4r5zi", HELLO),
                                                    ("qemu-m33", RESNET)])
def test_application_compiles_warning_free(tmp_path, board_name, model_name):
    """The generated application and test compile with -Wall -Wextra -Werror, Arduino ones against a stub."""
    board = load_board(board_name)
    project = tc_pio.generate_project(shared_model(model_name), board_name, tmp_path / "project").path
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "Arduino.h").write_text(ARDUINO_STUB)
    includes = [f"-I{project / 'src'}", f"-I{project / 'src' / 'tc'}", f"-I{project / 'src' / 'startup'}",
                f"-I{project / 'test' / 'test_golden'}", f"-I{stub}"]
    compiled = []
    for relative in APPLICATION_SOURCES:
        source = project / relative
        if not source.exists():
            continue
        compiler = "arm-none-eabi-g++" if source.suffix == ".cpp" else "arm-none-eabi-gcc"
        standard = ["-std=c++11", "-fno-exceptions", "-fno-rtti"] if source.suffix == ".cpp" else ["-std=c99"]
        command = [compiler, *cpu_flags(board), *standard, "-O2", "-Wall", "-Wextra", "-Werror", *includes, "-c",
                   str(source), "-o", str(tmp_path / (source.name + ".o"))]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{relative}: {result.stderr}"
        compiled.append(relative)
    main = "src/main.c" if board.simulated else "src/main.cpp"
    assert main in compiled
    assert len(compiled) == 8
