"""The graph IR that every frontend produces and every later stage consumes.

A `Graph` holds `Tensor`s and `Operator`s in execution order. Tensors carry their shape, data type,
quantization (per-tensor or per-channel with its axis) and, for constants, their data. Operators
carry typed attribute dataclasses, one class per op family, so a lowering reads `attrs.stride_h`
instead of looking up strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DType(enum.Enum):
    """Element types that can appear in a model."""

    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BOOL = "bool"

    @property
    def itemsize(self) -> int:
        return np.dtype(self.value).itemsize

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def c_type(self) -> str:
        return {
            DType.INT8: "int8_t",
            DType.UINT8: "uint8_t",
            DType.INT16: "int16_t",
            DType.INT32: "int32_t",
            DType.INT64: "int64_t",
            DType.FLOAT32: "float",
            DType.FLOAT16: "uint16_t",
            DType.BOOL: "uint8_t",
        }[self]


class Padding(enum.Enum):
    SAME = "same"
    VALID = "valid"


class Activation(enum.Enum):
    """Fused activation functions of TFLite operators."""

    NONE = "none"
    RELU = "relu"
    RELU_N1_TO_1 = "relu_n1_to_1"
    RELU6 = "relu6"
    TANH = "tanh"
    SIGN_BIT = "sign_bit"


@dataclass
class Quantization:
    """Affine quantization: real = scale * (q - zero_point).

    `scale` and `zero_point` have one element for per-tensor quantization, or one per slice
    along `axis` for per-channel quantization.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def scalar_scale(self) -> float:
        return float(self.scale[0])

    @property
    def scalar_zero_point(self) -> int:
        return int(self.zero_point[0])


@dataclass(eq=False)
class Tensor:
    """A value in the graph: an activation, a graph input or output, or a constant."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quantization | None = None
    data: np.ndarray | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.num_elements * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"Tensor({self.index}, {self.name!r}, {self.shape}, {self.dtype.value})"


# Typed attributes, one dataclass per op family.


@dataclass
class NoAttrs:
    pass


@dataclass
class Conv2DAttrs:
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE


@dataclass
class DepthwiseConv2DAttrs(Conv2DAttrs):
    depth_multiplier: int = 1


@dataclass
class FullyConnectedAttrs:
    activation: Activation = Activation.NONE
    keep_num_dims: bool = False


@dataclass
class Pool2DAttrs:
    filter_h: int = 1
    filter_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE


@dataclass
class ActivationAttrs:
    """Attributes of element-wise binary ops that fuse an activation (ADD, SUB, MUL, ...)."""

    activation: Activation = Activation.NONE


@dataclass
class SoftmaxAttrs:
    beta: float = 1.0


@dataclass
class ReshapeAttrs:
    new_shape: tuple[int, ...] = ()


@dataclass
class ReducerAttrs:
    keep_dims: bool = False


@dataclass
class ConcatenationAttrs:
    axis: int = 0
    activation: Activation = Activation.NONE


@dataclass
class StridedSliceAttrs:
    begin_mask: int = 0
    end_mask: int = 0
    ellipsis_mask: int = 0
    new_axis_mask: int = 0
    shrink_axis_mask: int = 0
    offset: bool = False


@dataclass
class BatchMatMulAttrs:
    adj_x: bool = False
    adj_y: bool = False


@dataclass
class GatherAttrs:
    axis: int = 0
    batch_dims: int = 0


@dataclass
class GeluAttrs:
    approximate: bool = False


@dataclass
class LeakyReluAttrs:
    alpha: float = 0.2


@dataclass
class SqueezeAttrs:
    squeeze_dims: tuple[int, ...] = ()


@dataclass
class GenericAttrs:
    """Attributes of ops without a dedicated class, kept by name."""

    values: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Operator:
    """One node of the graph. `inputs` may contain None for an optional input that is absent."""

    index: int
    op_type: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    attrs: Any = field(default_factory=NoAttrs)
    version: int = 1

    @property
    def name(self) -> str:
        """The name users know the layer by: its first output tensor's name."""
        return self.outputs[0].name if self.outputs else f"{self.op_type}_{self.index}"

    @property
    def short_name(self) -> str:
        """The name shortened for messages: converters join many names with ';' into one."""
        first = self.name.split(";")[0]
        return first if len(first) <= 64 else first[:61] + "..."

    def describe(self) -> str:
        """Return 'operator N (OP_TYPE, output NAME)' for error messages."""
        return f"operator {self.index} ({self.op_type}, output '{self.short_name}')"

    def __repr__(self) -> str:
        return f"Operator({self.index}, {self.op_type})"


@dataclass(eq=False)
class Graph:
    """A model: its tensors, its operators in execution order, and its inputs and outputs."""

    name: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[Tensor]
    outputs: list[Tensor]
    source_format: str = "tflite"

    def producers(self) -> dict[int, Operator]:
        """Map each tensor id to the operator that writes it."""
        result: dict[int, Operator] = {}
        for op in self.operators:
            for t in op.outputs:
                result[id(t)] = op
        return result

    def consumers(self) -> dict[int, list[Operator]]:
        """Map each tensor id to the operators that read it, in execution order."""
        result: dict[int, list[Operator]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t is not None:
                    result.setdefault(id(t), []).append(op)
        return result

    def activations(self) -> list[Tensor]:
        """Return the non-constant tensors that operators read or write, in first-use order."""
        seen: set[int] = set()
        result: list[Tensor] = []
        for t in self.inputs:
            if id(t) not in seen:
                seen.add(id(t))
                result.append(t)
        for op in self.operators:
            for t in [*op.inputs, *op.outputs]:
                if t is not None and not t.is_constant and id(t) not in seen:
                    seen.add(id(t))
                    result.append(t)
        return result

    def renumber(self) -> None:
        """Give operators consecutive indices after a pass removed or inserted some."""
        for i, op in enumerate(self.operators):
            op.index = i
