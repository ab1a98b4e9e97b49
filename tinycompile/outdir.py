"""Write generated folders so that a failure never leaves a half-written one behind.

The files go to a temporary sibling folder that is renamed into place. An existing folder is
replaced only when the caller allows it (the CLI's --force), and only after the new one is
complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tinycompile.errors import TinyCompileError


def check_output_folder(out_dir: Path, *, force: bool) -> None:
    """Raise TinyCompileError unless `out_dir` is absent, empty, or may be replaced (`force`)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise TinyCompileError(f"output path '{out_dir}' exists and is not a folder; choose another -o")
    if any(out_dir.iterdir()) and not force:
        raise TinyCompileError(
            f"output folder '{out_dir}' is not empty; pass --force to replace it or choose another -o"
        )


def write_folder(out_dir: str | Path, files: dict[str, str], copies: dict[str, Path] | None = None, *,
                 force: bool = False) -> Path:
    """Write `files` (relative path -> text) and `copies` (relative path -> source file) to `out_dir`.

    Returns the folder's path. Parent folders of each file are created as needed.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, force=force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for relative, text in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for relative, source in (copies or {}).items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, path)
        tmp.chmod(0o755)
        if out_dir.exists():
            backup = out_dir.with_name(f".{out_dir.name}.old-{tmp.name[-8:]}")
            out_dir.rename(backup)
            tmp.rename(out_dir)
            shutil.rmtree(backup)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
