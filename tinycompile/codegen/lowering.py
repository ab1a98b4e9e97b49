"""Lower IR operators to kernel calls.

Each supported op type registers one lowering function (in `tinycompile.codegen.ops`). A lowering
checks the operator's attributes and data types, precomputes everything that depends only on
constants (requantization multipliers, padding, broadcast strides), and returns a `Layer`: which C
kernel to call, with which const parameter struct and which tensors. It never touches memory
offsets; the planner assigns those afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from tinycompile import ir
from tinycompile.errors import UnsupportedModelError


@dataclass
class ConstArray:
    """A const array emitted into flash: weights, biases or per-channel parameters."""

    symbol: str
    c_type: str
    values: np.ndarray
    comment: str = ""


CValue = Union[int, float, str, "CStruct", ConstArray, list]


@dataclass
class CStruct:
    """A C struct initializer: the struct type and its fields in declaration order.

    Field values are ints, floats, nested CStructs, lists (C arrays), `ConstArray`s (emitted as
    their symbol) or strings, which are emitted verbatim as C expressions.
    """

    c_type: str
    fields: dict[str, CValue]


@dataclass
class Scratch:
    """A scratch buffer that a kernel needs only while it runs."""

    nbytes: int


Arg = Union[ir.Tensor, CStruct, ConstArray, Scratch, str, None]


@dataclass
class Layer:
    """One kernel call in the generated invoke function."""

    op: ir.Operator
    kernel: str | None                  # C function; None when the layer is an alias
    args: list[Arg] = field(default_factory=list)
    sources: tuple[str, ...] = ()       # kernel source files (under firmware/kernels) it needs
    macs: int = 0
    alias_of: ir.Tensor | None = None   # output shares this input's memory (RESHAPE)
    inplace_ok: tuple[int, ...] = ()    # input positions whose buffer the output may overwrite

    @property
    def scratch(self) -> list[Scratch]:
        return [a for a in self.args if isinstance(a, Scratch)]


@dataclass
class LoweringOptions:
    rounding: str = "tflm"              # "tflm" (double rounding) or "litert" (single rounding)
    kernels: str = "auto"               # "auto"/"optimized": specialized kernels where they apply;
                                        # "portable": the portable C kernels only

    @property
    def single_rounding(self) -> bool:
        return self.rounding == "litert"


LoweringFn = Callable[[ir.Operator, LoweringOptions], Layer]
_REGISTRY: dict[str, LoweringFn] = {}


def register(*op_types: str) -> Callable[[LoweringFn], LoweringFn]:
    """Register a lowering function for the given TFLite op type names."""

    def wrap(fn: LoweringFn) -> LoweringFn:
        for name in op_types:
            _REGISTRY[name] = fn
        return fn

    return wrap


def supported_ops() -> list[str]:
    _load_ops()
    return sorted(_REGISTRY)


def lower_operator(op: ir.Operator, options: LoweringOptions) -> Layer:
    _load_ops()
    fn = _REGISTRY.get(op.op_type)
    if fn is None:
        raise UnsupportedModelError(
            f"{op.describe()}: op {op.op_type} is not supported; supported ops are "
            f"{', '.join(supported_ops())}"
        )
    return fn(op, options)


def _load_ops() -> None:
    # Importing the package registers every lowering.
    from tinycompile.codegen import ops  # noqa: F401


# Helpers shared by the lowerings.


def require_int8(op: ir.Operator, tensor: ir.Tensor | None, role: str) -> ir.Tensor:
    """Check that `tensor` is a per-tensor quantized int8 activation and return it."""
    if tensor is None:
        raise UnsupportedModelError(f"{op.describe()}: missing {role} tensor")
    if tensor.dtype != ir.DType.INT8:
        raise UnsupportedModelError(
            f"{op.describe()}: {role} '{tensor.name}' is {tensor.dtype.value}, but this kernel needs int8; "
            "convert the model with full-integer int8 quantization"
        )
    if tensor.quant is None:
        raise UnsupportedModelError(f"{op.describe()}: {role} '{tensor.name}' has no quantization parameters")
    if tensor.quant.per_channel and role not in ("filter", "weights"):
        raise UnsupportedModelError(
            f"{op.describe()}: {role} '{tensor.name}' is quantized per channel; only weights may be"
        )
    return tensor


def require_constant(op: ir.Operator, tensor: ir.Tensor | None, role: str) -> ir.Tensor:
    if tensor is None or not tensor.is_constant:
        name = tensor.name if tensor is not None else "?"
        raise UnsupportedModelError(
            f"{op.describe()}: {role} '{name}' must be a constant; tinycompile does not support computed {role}s"
        )
    return tensor


def same_quantization(a: ir.Tensor, b: ir.Tensor) -> bool:
    return (a.quant is not None and b.quant is not None
            and float(a.quant.scale[0]) == float(b.quant.scale[0])
            and int(a.quant.zero_point[0]) == int(b.quant.zero_point[0]))


def symbol_for(tensor: ir.Tensor, suffix: str = "") -> str:
    """Return a C identifier derived from a tensor's index and name."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in tensor.name.lower())
    cleaned = "_".join(part for part in cleaned.split("_") if part)[:40]
    base = f"t{tensor.index}_{cleaned}" if cleaned else f"t{tensor.index}"
    return base + suffix
