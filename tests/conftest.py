"""Shared fixtures: where the real public models live, and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO.parent / "shared" / "models"


def shared_model(relative: str) -> Path:
    """Return the path of a model under ../shared/models, skipping the test if it is absent."""
    path = SHARED_MODELS / relative
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `tinycompile ARGS...` as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "tinycompile.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)
