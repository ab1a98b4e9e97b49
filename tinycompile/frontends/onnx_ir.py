"""IR operators that only the ONNX frontend produces, and their typed attributes.

ONNX's quantized operators define requantization as float arithmetic rounded half to even
(QuantizeLinear's rule), while TFLite's kernels use a Q31 fixed-point multiplier rounded half away
from zero. Where an ONNX op has no TFLite counterpart with the same semantics (explicit asymmetric
padding, weight zero points, int32 outputs, float softmax, uint8 at the graph boundary), the
frontend emits one of the op types below; `tinycompile.codegen.ops.onnx_support` lowers them to
the kernels in `firmware/kernels/tc_onnx_*.c`. Every op type starts with `ONNX_` so that it never
collides with a TFLite op name that another lowering registers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ONNX_CONV = "ONNX_CONV"
ONNX_MATMUL = "ONNX_MATMUL"
ONNX_MAX_POOL = "ONNX_MAX_POOL"
ONNX_AVERAGE_POOL = "ONNX_AVERAGE_POOL"
ONNX_SOFTMAX = "ONNX_SOFTMAX"
ONNX_CONCAT = "ONNX_CONCAT"
ONNX_REQUANTIZE = "ONNX_REQUANTIZE"
ONNX_QUANTIZE = "ONNX_QUANTIZE"
ONNX_DEQUANTIZE = "ONNX_DEQUANTIZE"

ONNX_OP_TYPES = (ONNX_CONV, ONNX_MATMUL, ONNX_MAX_POOL, ONNX_AVERAGE_POOL, ONNX_SOFTMAX, ONNX_CONCAT,
                 ONNX_REQUANTIZE, ONNX_QUANTIZE, ONNX_DEQUANTIZE)


@dataclass
class OnnxConvAttrs:
    """Convolution with explicit padding; the filter is OHWI with in_c / groups input channels.

    `weight_zero_point` has one entry, or one per output channel. When `int32_output` is set the
    accumulator is written unchanged (ConvInteger); otherwise it is requantized to the output's
    scale with float arithmetic rounded half to even, as ONNX Runtime's QLinearConv does.
    """

    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    groups: int = 1
    weight_zero_point: np.ndarray | None = None
    int32_output: bool = False
    act_min: int = -128
    act_max: int = 127


@dataclass
class OnnxMatMulAttrs:
    """Batched matrix product A[..., M, K] x B[..., K, N] with numpy broadcasting of batch dims.

    `a_offsets` and `b_offsets` give, per output matrix, the element offset of its A and B
    operands, so broadcasting costs nothing at run time. `b_zero_point` has one entry or one
    per column of B.
    """

    m: int = 1
    k: int = 1
    n: int = 1
    a_offsets: np.ndarray | None = None
    b_offsets: np.ndarray | None = None
    b_zero_point: np.ndarray | None = None
    int32_output: bool = False
    act_min: int = -128
    act_max: int = 127


@dataclass
class OnnxPoolAttrs:
    """Max or average pooling over an NHWC tensor with explicit padding and dilation.

    `integer_sum` selects ONNX Runtime's QLinearGlobalAveragePool arithmetic (an int32 sum scaled
    once); otherwise an average pool sums dequantized floats as QLinearAveragePool does.
    """

    filter_h: int = 1
    filter_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    count_include_pad: bool = False
    integer_sum: bool = False


@dataclass
class OnnxAxisAttrs:
    """An op that works along one axis of its (stored, possibly NHWC) output: Softmax, Concat."""

    axis: int = -1


@dataclass
class OnnxRequantizeAttrs:
    """Element-wise requantization with a clamp: Relu, Clip, uint8 <-> int8 at the boundary.

    The clamp bounds are in the output's stored integer domain (int8, or uint8 for a uint8
    graph output).
    """

    act_min: int = -128
    act_max: int = 127
