"""Build a generated C folder with the host C compiler and run it on sample files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tinycompile.errors import TinyCompileError, ToolError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
HOST_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


def host_compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise ToolError(f"host C compiler '{cc}' not found; install gcc (apt-get install gcc) or set CC")
    return cc


def build_host_runner(model_dir: Path, out: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the model folder and the host runner into the executable `out`."""
    model_dir = Path(model_dir)
    sources = sorted(str(p) for p in model_dir.rglob("*.c"))
    sources.append(str(FIRMWARE_DIR / "host" / "tc_host_main.c"))
    cmd = [host_compiler(), *HOST_FLAGS, *extra_flags, f"-I{model_dir}", f"-I{model_dir / 'tc'}",
           *sources, "-o", str(out), "-lm"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip()[:300])
        raise ToolError(f"host build of '{model_dir}' failed: {first}")
    return out


def run_host_runner(runner: Path, input_file: Path, output_file: Path, timeout: float = 120.0) -> None:
    try:
        result = subprocess.run([str(runner), str(input_file), str(output_file)], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinyCompileError(f"host run of the generated model timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        raise TinyCompileError(
            f"host run of the generated model failed with exit status {result.returncode}: {result.stderr.strip()}"
        )
