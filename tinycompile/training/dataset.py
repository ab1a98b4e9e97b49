"""Read a training data set (.npz) and bring it into the model's int8 input format.

The file contains `x_train` and `y_train`, and optionally `x_test` and `y_test` for held-out
accuracy. Inputs are either int8, already quantized for the model, or float, which is quantized
with the model input's scale and zero point (round half to even, clamped to [-128, 127]). Each
sample has the model input's shape without the batch dimension, or any shape with as many
elements. Labels are integers in 0 .. classes - 1.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinycompile import ir
from tinycompile.errors import TinyCompileError
from tinycompile.training.compiler import require_label


@dataclass
class Dataset:
    """Int8 inputs and labels of a training and a test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_dataset(path: str | Path, input_tensor: ir.Tensor, num_classes: int,
                 max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """Read `path` and return int8 samples shaped like `input_tensor` (batch dimension dropped)."""
    path = Path(path)
    if not path.is_file():
        raise TinyCompileError(f"dataset file '{path}' not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TinyCompileError(f"dataset file '{path}' is not a NumPy .npz file ({exc}); save it with numpy.savez") from None
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise TinyCompileError(f"dataset file '{path}' has no '{key}' array; it needs x_train and y_train "
                                   "(and optionally x_test and y_test)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise TinyCompileError(f"dataset file '{path}' must hold both x_test and y_test or neither")
    splits = []
    for split, limit in (("train", max_train), ("test", max_test)):
        if f"x_{split}" not in arrays:
            splits += [np.zeros((0, *input_tensor.shape[1:]), np.int8), np.zeros(0, np.int64)]
            continue
        x = _inputs(arrays[f"x_{split}"], input_tensor, path, f"x_{split}")
        y = _labels(arrays[f"y_{split}"], len(x), num_classes, path, f"y_{split}")
        if limit is not None:
            x, y = x[:limit], y[:limit]
        splits += [x, y]
    if len(splits[0]) == 0:
        raise TinyCompileError(f"dataset file '{path}' has no training samples")
    return Dataset(*splits)


def _inputs(x: np.ndarray, t: ir.Tensor, path: Path, key: str) -> np.ndarray:
    per_sample = int(np.prod(t.shape[1:]))
    if x.ndim < 1 or x.size != len(x) * per_sample:
        raise TinyCompileError(
            f"dataset '{path}' {key} has shape {list(x.shape)}, but one sample of the model input "
            f"'{t.name}' has shape {list(t.shape[1:])}; store N samples of {per_sample} values"
        )
    x = x.reshape(len(x), *t.shape[1:])
    if x.dtype == np.int8:
        return x
    if x.dtype.kind != "f":
        raise TinyCompileError(
            f"dataset '{path}' {key} has dtype {x.dtype}, which is invalid; store int8 values quantized for the model or float values"
        )
    scale, zero = float(t.quant.scalar_scale), int(t.quant.scalar_zero_point)
    return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)


def _labels(y: np.ndarray, count: int, num_classes: int, path: Path, key: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind not in "iu":
        raise TinyCompileError(f"dataset '{path}' {key} has dtype {y.dtype}, which is invalid; store integer labels")
    if len(y) != count:
        raise TinyCompileError(f"dataset '{path}' {key} has {len(y)} labels for {count} samples")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        require_label(int(y[bad[0]]), num_classes, f"dataset '{path}' {key}[{bad[0]}]")
    return y.astype(np.int64)
