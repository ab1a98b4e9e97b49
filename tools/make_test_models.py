"""Generate the per-op int8 TFLite models that tests/test_ops.py checks bit-exactly.

Each case is a tiny tf.function with fixed weights that the TFLite converter turns into a
full-integer int8 model (per-channel weights, int8 graph inputs and outputs unless a case requests
float32 ones). The sweep covers the attributes of each op that an int8 model can carry:
kernel shapes, strides, dilations, padding modes with odd sizes, channel counts, optional bias,
fused activations, broadcasting and extreme quantization ranges. Weights and representative data
come from a NumPy generator seeded with the case name, so a run with the same TensorFlow version
writes byte-identical files.

The converter fuses, drops and inserts ops, so the manifest records what it actually emitted: the
op list, each op's builtin options, whether the weights are per-channel, and the graph inputs and
outputs with their quantization. A few attributes the converter never emits (a SOFTMAX beta other
than 1, a CONV_2D or DEPTHWISE_CONV_2D without a bias input) are made by patching the converted
flatbuffer in place. Those cases have a "patched" entry in their params.

Every model also runs next to a float32 reference (the same graph converted without quantization,
or a TensorFlow function for fake-quant graphs and patched models). The run fails when the int8
output is further from it than quantization noise explains, which catches a case whose model does
not compute what its name describes.

Usage: .venv-tf/bin/python tools/make_test_models.py [--out DIR] [--only REGEX]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tflite  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tflite_micro.python.tflite_micro import runtime as tflm_runtime  # noqa: E402

log = logging.getLogger("make_test_models")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "models" / "ops"
REPRESENTATIVE_SAMPLES = 32
CHECK_SAMPLES = 4

GraphFn = Callable[..., tf.Tensor]


@dataclass(frozen=True)
class InputSpec:
    """One float32 graph input: its shape and the range the representative data covers."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0


@dataclass
class Case:
    """One generated model: the graph, its inputs and how to convert it."""

    name: str
    op: str
    params: dict
    build: Callable[[np.random.Generator], GraphFn]
    inputs: tuple[InputSpec, ...]
    float_io: bool = False
    converter_flags: dict = field(default_factory=dict)
    patch: Callable[[bytearray], None] | None = None
    # A TensorFlow function that the float32 check runs in place of the float32 TFLite
    # conversion of the graph. Fake-quant graphs need one because they do not convert to
    # float32, and patched models because the patch changed what they compute.
    reference: GraphFn | None = None


def rng_for(name: str, purpose: str) -> np.random.Generator:
    """Return a generator seeded from the case name, so adding a case changes no other model."""
    return np.random.default_rng(zlib.crc32(f"{name}/{purpose}".encode()))


# ----------------------------------------------------------------------------------------------
# Weight helpers


def make_filter(rng: np.random.Generator, shape: Sequence[int], out_axis: int) -> np.ndarray:
    """Draw uniform weights and scale each output channel differently.

    Channel magnitudes spread over 0.1 to 2, so per-channel scales differ by a factor of 20 and
    a kernel that uses one scale for every channel gives visibly wrong results.
    """
    weights = rng.uniform(-1.0, 1.0, size=shape)
    channels = shape[out_axis]
    gains = np.geomspace(0.1, 2.0, channels) if channels > 1 else np.ones(1)
    gains = rng.permutation(gains)
    gain_shape = [1] * len(shape)
    gain_shape[out_axis] = channels
    return (weights * gains.reshape(gain_shape)).astype(np.float32)


def make_bias(rng: np.random.Generator, size: int, magnitude: float = 0.5) -> np.ndarray:
    return rng.uniform(-magnitude, magnitude, size=size).astype(np.float32)


def apply_activation(x: tf.Tensor, activation: str) -> tf.Tensor:
    """Apply an activation in the form the converter fuses into the preceding op."""
    if activation == "none":
        return x
    if activation == "relu":
        return tf.nn.relu(x)
    if activation == "relu6":
        return tf.nn.relu6(x)
    if activation == "relu_n1_to_1":
        return tf.clip_by_value(x, -1.0, 1.0)
    raise ValueError(f"unknown activation {activation!r}")


# ----------------------------------------------------------------------------------------------
# Flatbuffer patches for attributes the converter never emits


def _find_operators(model: tflite.Model, op_name: str) -> list[tflite.Operator]:
    subgraph = model.Subgraphs(0)
    found = []
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        code = model.OperatorCodes(operator.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if tflite.opcode2name(builtin) == op_name:
            found.append(operator)
    if not found:
        raise RuntimeError(f"patch target {op_name} is not in the converted model")
    return found


def patch_softmax_beta(beta: float) -> Callable[[bytearray], None]:
    """Overwrite SoftmaxOptions.beta, which the converter always writes as 1.0."""

    def patch(buffer: bytearray) -> None:
        model = tflite.Model.GetRootAsModel(buffer, 0)
        for operator in _find_operators(model, "SOFTMAX"):
            table = operator.BuiltinOptions()
            options = tflite.SoftmaxOptions()
            options.Init(table.Bytes, table.Pos)
            # Field 0 (beta) sits at vtable offset 4. The converter writes 1.0 explicitly
            # because the schema default is 0.0, so the field is present and can be overwritten.
            field_offset = options._tab.Offset(4)
            if field_offset == 0:
                raise RuntimeError("SOFTMAX has no stored beta to patch")
            struct.pack_into("<f", buffer, options._tab.Pos + field_offset, beta)

    return patch


def patch_drop_bias(op_name: str) -> Callable[[bytearray], None]:
    """Shorten the operator's input list from 3 to 2 so the op has no bias input.

    The TFLite schema makes the bias of CONV_2D and DEPTHWISE_CONV_2D optional, but the
    converter always adds one, zero-filled when the graph has none. Rewriting the vector
    length prefix leaves the unused bias tensor in the tensor list, which is still valid.
    """

    def patch(buffer: bytearray) -> None:
        model = tflite.Model.GetRootAsModel(buffer, 0)
        for operator in _find_operators(model, op_name):
            if operator.InputsLength() != 3:
                raise RuntimeError(f"{op_name} has {operator.InputsLength()} inputs, expected 3")
            vector_offset = operator._tab.Offset(6)  # Operator.inputs
            start = operator._tab.Vector(vector_offset)
            struct.pack_into("<I", buffer, start - 4, 2)

    return patch


# ----------------------------------------------------------------------------------------------
# Case builders, one per op


def conv2d_case(
    name: str,
    *,
    hw: tuple[int, int],
    cin: int,
    cout: int,
    kernel: tuple[int, int],
    strides: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    padding: str = "SAME",
    bias: bool = True,
    activation: str = "none",
    batch: int = 1,
    per_channel: bool = True,
    low: float = -1.0,
    high: float = 1.0,
    float_io: bool = False,
    drop_bias_input: bool = False,
) -> Case:
    def build(rng: np.random.Generator) -> GraphFn:
        filters = tf.constant(make_filter(rng, (*kernel, cin, cout), out_axis=3))
        biases = tf.constant(make_bias(rng, cout)) if bias else None

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.raw_ops.Conv2D(
                input=x,
                filter=filters,
                strides=[1, *strides, 1],
                padding=padding,
                dilations=[1, *dilation, 1],
            )
            if biases is not None:
                y = tf.nn.bias_add(y, biases)
            return apply_activation(y, activation)

        return graph

    params = {
        "input_shape": [batch, *hw, cin],
        "output_channels": cout,
        "kernel": list(kernel),
        "strides": list(strides),
        "dilation": list(dilation),
        "padding": padding,
        "bias": bias,
        "activation": activation,
        "per_channel": per_channel,
        "input_range": [low, high],
        "float_io": float_io,
    }
    if drop_bias_input:
        params["patched"] = "bias input removed"
    return Case(
        name=name,
        op="CONV_2D",
        params=params,
        build=build,
        inputs=(InputSpec((batch, *hw, cin), low, high),),
        float_io=float_io,
        converter_flags={} if per_channel else {"_experimental_disable_per_channel": True},
        patch=patch_drop_bias("CONV_2D") if drop_bias_input else None,
    )


def depthwise_case(
    name: str,
    *,
    hw: tuple[int, int],
    channels: int,
    multiplier: int,
    kernel: tuple[int, int],
    strides: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    padding: str = "SAME",
    bias: bool = True,
    activation: str = "none",
    batch: int = 1,
    per_channel: bool = True,
    low: float = -1.0,
    high: float = 1.0,
    drop_bias_input: bool = False,
) -> Case:
    def build(rng: np.random.Generator) -> GraphFn:
        # TensorFlow's filter layout is [kh, kw, channels, multiplier], and output channel
        # c * multiplier + j comes from input channel c. The per-channel gains therefore go
        # over the flattened last two axes.
        flat = make_filter(rng, (*kernel, channels * multiplier), out_axis=2)
        filters = tf.constant(flat.reshape(*kernel, channels, multiplier))
        biases = tf.constant(make_bias(rng, channels * multiplier)) if bias else None

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.raw_ops.DepthwiseConv2dNative(
                input=x,
                filter=filters,
                strides=[1, *strides, 1],
                padding=padding,
                dilations=[1, *dilation, 1],
            )
            if biases is not None:
                y = tf.nn.bias_add(y, biases)
            return apply_activation(y, activation)

        return graph

    params = {
        "input_shape": [batch, *hw, channels],
        "depth_multiplier": multiplier,
        "kernel": list(kernel),
        "strides": list(strides),
        "dilation": list(dilation),
        "padding": padding,
        "bias": bias,
        "activation": activation,
        "per_channel": per_channel,
        "input_range": [low, high],
    }
    if drop_bias_input:
        params["patched"] = "bias input removed"
    return Case(
        name=name,
        op="DEPTHWISE_CONV_2D",
        params=params,
        build=build,
        inputs=(InputSpec((batch, *hw, channels), low, high),),
        converter_flags={} if per_channel else {"_experimental_disable_per_channel": True},
        patch=patch_drop_bias("DEPTHWISE_CONV_2D") if drop_bias_input else None,
    )


def fully_connected_case(
    name: str,
    *,
    input_shape: tuple[int, ...],
    units: int,
    bias: bool = True,
    activation: str = "none",
    per_channel: bool = True,
    low: float = -1.0,
    high: float = 1.0,
    float_io: bool = False,
) -> Case:
    depth = input_shape[-1]

    def build(rng: np.random.Generator) -> GraphFn:
        weights = tf.constant(make_filter(rng, (depth, units), out_axis=1))
        biases = tf.constant(make_bias(rng, units)) if bias else None

        def graph(x: tf.Tensor) -> tf.Tensor:
            # Keras Dense uses tensordot on a rank-3 input, and the converter turns it into
            # FULLY_CONNECTED with keep_num_dims=true.
            y = tf.matmul(x, weights) if len(input_shape) == 2 else tf.tensordot(x, weights, 1)
            if biases is not None:
                y = y + biases
            return apply_activation(y, activation)

        return graph

    return Case(
        name=name,
        op="FULLY_CONNECTED",
        params={
            "input_shape": list(input_shape),
            "units": units,
            "bias": bias,
            "activation": activation,
            "per_channel": per_channel,
            "input_range": [low, high],
            "float_io": float_io,
        },
        build=build,
        inputs=(InputSpec(input_shape, low, high),),
        float_io=float_io,
        converter_flags=(
            {}
            if per_channel
            else {"_experimental_disable_per_channel_quantization_for_dense_layers": True}
        ),
    )


def pool_case(
    name: str,
    op: str,
    *,
    hw: tuple[int, int],
    channels: int,
    filter_size: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    activation: str = "none",
    low: float = -1.0,
    high: float = 1.0,
    float_io: bool = False,
) -> Case:
    pool = tf.nn.avg_pool2d if op == "AVERAGE_POOL_2D" else tf.nn.max_pool2d

    def build(rng: np.random.Generator) -> GraphFn:
        def graph(x: tf.Tensor) -> tf.Tensor:
            y = pool(x, ksize=filter_size, strides=strides, padding=padding)
            return apply_activation(y, activation)

        return graph

    return Case(
        name=name,
        op=op,
        params={
            "input_shape": [1, *hw, channels],
            "filter": list(filter_size),
            "strides": list(strides),
            "padding": padding,
            "activation": activation,
            "input_range": [low, high],
            "float_io": float_io,
        },
        build=build,
        inputs=(InputSpec((1, *hw, channels), low, high),),
        float_io=float_io,
    )


def add_case(
    name: str,
    *,
    shape: tuple[int, ...],
    other_shape: tuple[int, ...],
    other_constant: bool,
    activation: str = "none",
    ranges: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (-1.0, 1.0)),
    float_io: bool = False,
) -> Case:
    """ADD of a graph input and either a second graph input or a constant of other_shape."""
    (low, high), (other_low, other_high) = ranges

    def build(rng: np.random.Generator) -> GraphFn:
        if other_constant:
            constant = tf.constant(
                rng.uniform(other_low, other_high, size=other_shape).astype(np.float32)
            )

            def graph(x: tf.Tensor) -> tf.Tensor:
                return apply_activation(x + constant, activation)

            return graph

        def graph_two_inputs(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            return apply_activation(x + y, activation)

        return graph_two_inputs

    inputs = [InputSpec(shape, low, high)]
    if not other_constant:
        inputs.append(InputSpec(other_shape, other_low, other_high))
    return Case(
        name=name,
        op="ADD",
        params={
            "shape": list(shape),
            "other_shape": list(other_shape),
            "other": "constant" if other_constant else "input",
            "activation": activation,
            "ranges": [list(r) for r in ranges],
            "float_io": float_io,
        },
        build=build,
        inputs=tuple(inputs),
        float_io=float_io,
    )


def unary_case(
    name: str,
    op: str,
    params: dict,
    shape: tuple[int, ...],
    fn: Callable[[tf.Tensor], tf.Tensor],
    *,
    low: float = -1.0,
    high: float = 1.0,
    float_io: bool = False,
    patch: Callable[[bytearray], None] | None = None,
    reference: GraphFn | None = None,
) -> Case:
    """A single-input case whose graph needs no weights."""
    return Case(
        name=name,
        op=op,
        params={"input_shape": list(shape), **params, "input_range": [low, high],
                "float_io": float_io},
        build=lambda rng: fn,
        inputs=(InputSpec(shape, low, high),),
        float_io=float_io,
        patch=patch,
        reference=reference,
    )


# ----------------------------------------------------------------------------------------------
# The sweep


def conv2d_cases() -> list[Case]:
    return [
        conv2d_case("conv_1x1_valid", hw=(7, 9), cin=3, cout=4, kernel=(1, 1), padding="VALID"),
        conv2d_case("conv_1x1_s2_nobias_relu6", hw=(7, 9), cin=5, cout=7, kernel=(1, 1),
                    strides=(2, 2), padding="VALID", bias=False, activation="relu6"),
        conv2d_case("conv_3x3_same_relu", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    activation="relu"),
        conv2d_case("conv_3x3_valid", hw=(7, 9), cin=1, cout=7, kernel=(3, 3), padding="VALID"),
        conv2d_case("conv_3x3_same_s2_nobias", hw=(7, 9), cin=5, cout=1, kernel=(3, 3),
                    strides=(2, 2), bias=False),
        # An even height with stride 2 and SAME padding pads one row more at the bottom.
        conv2d_case("conv_3x3_same_s2_even_h", hw=(10, 5), cin=3, cout=4, kernel=(3, 3),
                    strides=(2, 2), activation="relu6"),
        conv2d_case("conv_3x3_valid_s2_relu6", hw=(10, 5), cin=1, cout=7, kernel=(3, 3),
                    strides=(2, 2), padding="VALID", activation="relu6"),
        conv2d_case("conv_3x3_same_s1x2_nobias_relu", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    strides=(1, 2), bias=False, activation="relu"),
        conv2d_case("conv_5x3_same_relu", hw=(10, 5), cin=3, cout=4, kernel=(5, 3),
                    activation="relu"),
        conv2d_case("conv_5x3_valid_s2x1_relu6", hw=(10, 5), cin=5, cout=7, kernel=(5, 3),
                    strides=(2, 1), padding="VALID", activation="relu6"),
        conv2d_case("conv_5x3_same_s2_c1", hw=(7, 9), cin=1, cout=1, kernel=(5, 3),
                    strides=(2, 2)),
        conv2d_case("conv_3x5_same_s2x3", hw=(10, 11), cin=3, cout=7, kernel=(3, 5),
                    strides=(2, 3)),
        conv2d_case("conv_3x3_d2_same", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    dilation=(2, 2)),
        conv2d_case("conv_3x3_d2_valid_relu", hw=(10, 7), cin=1, cout=4, kernel=(3, 3),
                    dilation=(2, 2), padding="VALID", activation="relu"),
        conv2d_case("conv_3x3_d2x3_same", hw=(9, 11), cin=5, cout=4, kernel=(3, 3),
                    dilation=(2, 3)),
        conv2d_case("conv_3x3_d2_s2_same", hw=(10, 9), cin=3, cout=4, kernel=(3, 3),
                    strides=(2, 2), dilation=(2, 2)),
        # The kernel is larger than the input, so SAME padding dominates every output.
        conv2d_case("conv_5x5_same_small_input", hw=(3, 2), cin=3, cout=4, kernel=(5, 5)),
        conv2d_case("conv_3x3_same_batch2_relu", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    batch=2, activation="relu"),
        conv2d_case("conv_3x3_same_per_tensor", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    per_channel=False),
        conv2d_case("conv_3x3_same_relu_n1_to_1", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    activation="relu_n1_to_1"),
        conv2d_case("conv_3x3_no_bias_input", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    bias=False, drop_bias_input=True),
    ]


def depthwise_cases() -> list[Case]:
    return [
        depthwise_case("dw_3x3_m1_same_relu", hw=(7, 9), channels=3, multiplier=1,
                       kernel=(3, 3), activation="relu"),
        depthwise_case("dw_3x3_m1_c1", hw=(7, 9), channels=1, multiplier=1, kernel=(3, 3)),
        depthwise_case("dw_3x3_m2_valid_s2_relu6", hw=(10, 5), channels=3, multiplier=2,
                       kernel=(3, 3), strides=(2, 2), padding="VALID", activation="relu6"),
        depthwise_case("dw_3x3_m3_same_s2", hw=(10, 5), channels=1, multiplier=3,
                       kernel=(3, 3), strides=(2, 2)),
        depthwise_case("dw_5x5_m1_valid_relu", hw=(10, 7), channels=8, multiplier=1,
                       kernel=(5, 5), padding="VALID", activation="relu"),
        depthwise_case("dw_5x5_m3_same", hw=(7, 9), channels=1, multiplier=3, kernel=(5, 5)),
        depthwise_case("dw_5x5_m2_same_s2_nobias", hw=(7, 9), channels=3, multiplier=2,
                       kernel=(5, 5), strides=(2, 2), bias=False),
        depthwise_case("dw_5x3_m2_same", hw=(10, 5), channels=3, multiplier=2, kernel=(5, 3)),
        depthwise_case("dw_3x3_m1_same_s2_c8", hw=(7, 9), channels=8, multiplier=1,
                       kernel=(3, 3), strides=(2, 2), activation="relu6"),
        depthwise_case("dw_3x3_m1_same_s2x1", hw=(7, 9), channels=3, multiplier=1,
                       kernel=(3, 3), strides=(2, 1)),
        depthwise_case("dw_3x3_d2_same_c8", hw=(7, 9), channels=8, multiplier=1,
                       kernel=(3, 3), dilation=(2, 2)),
        depthwise_case("dw_3x3_d2_valid_m2_relu6", hw=(10, 7), channels=3, multiplier=2,
                       kernel=(3, 3), dilation=(2, 2), padding="VALID", activation="relu6"),
        depthwise_case("dw_3x3_d2x3_same", hw=(9, 11), channels=3, multiplier=1,
                       kernel=(3, 3), dilation=(2, 3)),
        depthwise_case("dw_3x3_d2_s2_same", hw=(10, 9), channels=3, multiplier=1,
                       kernel=(3, 3), strides=(2, 2), dilation=(2, 2)),
        depthwise_case("dw_3x3_m2_batch2", hw=(7, 9), channels=3, multiplier=2,
                       kernel=(3, 3), batch=2, activation="relu"),
        depthwise_case("dw_3x3_per_tensor", hw=(7, 9), channels=8, multiplier=1,
                       kernel=(3, 3), per_channel=False),
        depthwise_case("dw_3x3_relu_n1_to_1", hw=(7, 9), channels=3, multiplier=1,
                       kernel=(3, 3), activation="relu_n1_to_1"),
        depthwise_case("dw_3x3_no_bias_input", hw=(7, 9), channels=3, multiplier=2,
                       kernel=(3, 3), bias=False, drop_bias_input=True),
    ]


def fully_connected_cases() -> list[Case]:
    return [
        fully_connected_case("fc_per_channel", input_shape=(1, 6), units=5),
        fully_connected_case("fc_per_tensor", input_shape=(1, 6), units=5, per_channel=False),
        fully_connected_case("fc_per_channel_nobias_relu", input_shape=(1, 13), units=11,
                             bias=False, activation="relu"),
        fully_connected_case("fc_per_tensor_nobias_relu6", input_shape=(1, 13), units=11,
                             bias=False, activation="relu6", per_channel=False),
        fully_connected_case("fc_per_channel_relu6", input_shape=(1, 17), units=3,
                             activation="relu6"),
        fully_connected_case("fc_per_tensor_relu", input_shape=(1, 17), units=3,
                             activation="relu", per_channel=False),
        fully_connected_case("fc_batch3", input_shape=(3, 7), units=5),
        fully_connected_case("fc_units1", input_shape=(1, 9), units=1),
        fully_connected_case("fc_keep_dims_3d", input_shape=(1, 4, 6), units=5),
        fully_connected_case("fc_keep_dims_3d_per_tensor", input_shape=(1, 4, 6), units=5,
                             per_channel=False, activation="relu"),
        fully_connected_case("fc_relu_n1_to_1", input_shape=(1, 6), units=5,
                             activation="relu_n1_to_1"),
    ]


def pool_cases() -> list[Case]:
    cases = []
    for op, prefix in (("AVERAGE_POOL_2D", "avgpool"), ("MAX_POOL_2D", "maxpool")):
        cases += [
            pool_case(f"{prefix}_2x2_s2_valid", op, hw=(7, 9), channels=3, filter_size=(2, 2),
                      strides=(2, 2), padding="VALID"),
            pool_case(f"{prefix}_2x2_s2_same", op, hw=(7, 9), channels=3, filter_size=(2, 2),
                      strides=(2, 2), padding="SAME"),
            pool_case(f"{prefix}_3x3_s1_same", op, hw=(7, 9), channels=3, filter_size=(3, 3),
                      strides=(1, 1), padding="SAME"),
            pool_case(f"{prefix}_3x3_s2_valid", op, hw=(10, 5), channels=4, filter_size=(3, 3),
                      strides=(2, 2), padding="VALID"),
            pool_case(f"{prefix}_3x3_s2_same_relu", op, hw=(10, 5), channels=4,
                      filter_size=(3, 3), strides=(2, 2), padding="SAME", activation="relu"),
            pool_case(f"{prefix}_2x3_s1x2_same_relu6", op, hw=(7, 9), channels=5,
                      filter_size=(2, 3), strides=(1, 2), padding="SAME", activation="relu6",
                      low=-8.0, high=8.0),
            pool_case(f"{prefix}_3x1_s2x1_valid", op, hw=(10, 5), channels=2,
                      filter_size=(3, 1), strides=(2, 1), padding="VALID"),
            pool_case(f"{prefix}_global_7x9", op, hw=(7, 9), channels=8, filter_size=(7, 9),
                      strides=(1, 1), padding="VALID"),
        ]
    return cases


def add_cases() -> list[Case]:
    feature = (1, 5, 7, 3)
    return [
        add_case("add_same_shape", shape=feature, other_shape=feature, other_constant=False),
        add_case("add_same_shape_relu", shape=feature, other_shape=feature,
                 other_constant=False, activation="relu"),
        add_case("add_same_shape_relu6", shape=feature, other_shape=feature,
                 other_constant=False, activation="relu6", ranges=((-5, 5), (-4, 4))),
        add_case("add_different_ranges", shape=feature, other_shape=feature,
                 other_constant=False, ranges=((-1, 1), (-50, 50))),
        add_case("add_const_same_shape", shape=feature, other_shape=feature,
                 other_constant=True),
        add_case("add_const_scalar", shape=feature, other_shape=(), other_constant=True,
                 ranges=((-1, 1), (0.75, 0.75))),
        add_case("add_const_channel_vector", shape=feature, other_shape=(3,),
                 other_constant=True),
        add_case("add_const_1_h_1_c", shape=feature, other_shape=(1, 5, 1, 3),
                 other_constant=True, activation="relu"),
        add_case("add_input_channel_vector", shape=feature, other_shape=(3,),
                 other_constant=False),
        add_case("add_input_1_1_w_c", shape=feature, other_shape=(1, 1, 7, 3),
                 other_constant=False),
        add_case("add_input_1_h_1_c", shape=feature, other_shape=(1, 5, 1, 3),
                 other_constant=False),
        add_case("add_input_1_h_w_1", shape=feature, other_shape=(1, 5, 7, 1),
                 other_constant=False, activation="relu"),
        add_case("add_input_1_1_1_1", shape=feature, other_shape=(1, 1, 1, 1),
                 other_constant=False),
        # Both sides broadcast: [1,5,1,3] + [1,1,7,3] -> [1,5,7,3].
        add_case("add_both_broadcast", shape=(1, 5, 1, 3), other_shape=(1, 1, 7, 3),
                 other_constant=False),
        add_case("add_rank_3_and_4", shape=(5, 7, 3), other_shape=(2, 1, 1, 3),
                 other_constant=False),
        add_case("add_2d_row", shape=(4, 6), other_shape=(1, 6), other_constant=False),
        add_case("add_2d_column", shape=(4, 6), other_shape=(4, 1), other_constant=False,
                 activation="relu"),
        add_case("add_5d_broadcast", shape=(1, 2, 3, 4, 5), other_shape=(1, 2, 1, 4, 1),
                 other_constant=False),
    ]


def _mean(axes: list[int], keepdims: bool) -> Callable[[tf.Tensor], tf.Tensor]:
    return lambda x: tf.reduce_mean(x, axis=axes, keepdims=keepdims)


def _pad(paddings: list[list[int]]) -> Callable[[tf.Tensor], tf.Tensor]:
    return lambda x: tf.pad(x, paddings)


def _reshape(shape: list[int]) -> Callable[[tf.Tensor], tf.Tensor]:
    return lambda x: tf.reshape(x, shape)


def shape_and_reduction_cases() -> list[Case]:
    flatten = tf.keras.layers.Flatten()
    return [
        unary_case("reshape_flatten", "RESHAPE", {"layer": "keras Flatten"}, (1, 3, 4, 5),
                   lambda x: flatten(x)),
        unary_case("reshape_4d_to_2d", "RESHAPE", {"new_shape": [1, -1]}, (1, 3, 4, 5),
                   _reshape([1, -1])),
        unary_case("reshape_2d_to_4d", "RESHAPE", {"new_shape": [1, 2, 5, 3]}, (1, 30),
                   _reshape([1, 2, 5, 3])),
        unary_case("reshape_3d_to_3d", "RESHAPE", {"new_shape": [2, 6, 5]}, (1, 6, 10),
                   _reshape([2, 6, 5])),
        unary_case("softmax_2d", "SOFTMAX", {"beta": 1.0}, (1, 10), tf.nn.softmax,
                   low=-4.0, high=4.0),
        unary_case("softmax_2d_batch3", "SOFTMAX", {"beta": 1.0}, (3, 7), tf.nn.softmax,
                   low=-10.0, high=10.0),
        unary_case("softmax_4d", "SOFTMAX", {"beta": 1.0}, (1, 3, 4, 5), tf.nn.softmax),
        # The converter turns softmax(beta * x) into MUL and SOFTMAX with beta 1, so these
        # convert softmax(x) and then overwrite beta.
        unary_case("softmax_beta_0_5", "SOFTMAX", {"beta": 0.5, "patched": "beta set to 0.5"},
                   (1, 10), tf.nn.softmax, low=-4.0, high=4.0, patch=patch_softmax_beta(0.5),
                   reference=lambda x: tf.nn.softmax(0.5 * x)),
        unary_case("softmax_beta_2_4d", "SOFTMAX", {"beta": 2.0, "patched": "beta set to 2.0"},
                   (1, 2, 3, 6), tf.nn.softmax, low=-2.0, high=2.0,
                   patch=patch_softmax_beta(2.0), reference=lambda x: tf.nn.softmax(2.0 * x)),
        unary_case("pad_hw_asymmetric", "PAD", {"paddings": [[0, 0], [1, 2], [0, 3], [0, 0]]},
                   (1, 3, 4, 5), _pad([[0, 0], [1, 2], [0, 3], [0, 0]])),
        unary_case("pad_all_dims", "PAD", {"paddings": [[1, 0], [2, 1], [0, 1], [1, 2]]},
                   (1, 3, 4, 5), _pad([[1, 0], [2, 1], [0, 1], [1, 2]])),
        unary_case("pad_2d", "PAD", {"paddings": [[0, 0], [2, 1]]}, (2, 5),
                   _pad([[0, 0], [2, 1]])),
        # All-positive data gives zero point -128, so the padding value is -128, not 0.
        unary_case("pad_positive_input", "PAD", {"paddings": [[0, 0], [1, 1], [2, 0], [0, 0]]},
                   (1, 3, 4, 5), _pad([[0, 0], [1, 1], [2, 0], [0, 0]]), low=0.5, high=3.0),
        unary_case("mean_hw_keepdims", "MEAN", {"axes": [1, 2], "keepdims": True},
                   (1, 7, 9, 3), _mean([1, 2], True)),
        unary_case("mean_hw", "MEAN", {"axes": [1, 2], "keepdims": False}, (1, 7, 9, 3),
                   _mean([1, 2], False), low=-3.0, high=1.0),
        unary_case("mean_channels_keepdims", "MEAN", {"axes": [3], "keepdims": True},
                   (1, 5, 4, 6), _mean([3], True)),
        unary_case("mean_h", "MEAN", {"axes": [1], "keepdims": False}, (1, 5, 4, 6),
                   _mean([1], False)),
        unary_case("mean_2d_last_axis", "MEAN", {"axes": [1], "keepdims": False}, (3, 10),
                   _mean([1], False), low=0.0, high=2.0),
        unary_case("relu", "RELU", {}, (1, 5, 7, 3), tf.nn.relu),
        unary_case("relu_positive_input", "RELU", {}, (1, 5, 7, 3), tf.nn.relu,
                   low=0.25, high=2.0),
        unary_case("relu6", "RELU6", {}, (1, 5, 7, 3), tf.nn.relu6, low=-8.0, high=8.0),
        unary_case("relu6_small_range", "RELU6", {}, (1, 5, 7, 3), tf.nn.relu6,
                   low=-0.5, high=0.5),
        unary_case("relu_n1_to_1", "RELU_N1_TO_1", {}, (1, 5, 7, 3),
                   lambda x: tf.clip_by_value(x, -1.0, 1.0), low=-3.0, high=3.0),
        unary_case("relu_n1_to_1_2d", "RELU_N1_TO_1", {}, (4, 6),
                   lambda x: tf.clip_by_value(x, -1.0, 1.0), low=-1.5, high=0.5),
    ]


def boundary_cases() -> list[Case]:
    """Models with float32 graph inputs and outputs, and int8-to-int8 requantization."""
    fake_quant = tf.quantization.fake_quant_with_min_max_args

    def requantize_maxpool(x: tf.Tensor) -> tf.Tensor:
        # The second fake-quant range disagrees with the first, and MAX_POOL_2D must keep its
        # input scale, so the converter inserts an int8 -> int8 QUANTIZE between the pools.
        y = tf.nn.max_pool2d(fake_quant(x, min=-1.0, max=1.0), 2, 1, "VALID")
        return tf.nn.max_pool2d(fake_quant(y, min=-3.0, max=3.0), 2, 1, "VALID")

    def requantize_zero_point(x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.max_pool2d(fake_quant(x, min=-1.0, max=1.0), 2, 2, "SAME")
        return tf.nn.max_pool2d(fake_quant(y, min=-0.25, max=2.0), 2, 1, "VALID")

    return [
        conv2d_case("float_io_conv", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                    activation="relu", float_io=True),
        fully_connected_case("float_io_fc", input_shape=(1, 13), units=5, float_io=True),
        add_case("float_io_add_two_inputs", shape=(1, 5, 7, 3), other_shape=(1, 5, 7, 3),
                 other_constant=False, ranges=((-1, 1), (-3, 2)), float_io=True),
        pool_case("float_io_avgpool", "AVERAGE_POOL_2D", hw=(7, 9), channels=3,
                  filter_size=(2, 2), strides=(2, 2), padding="VALID", float_io=True),
        unary_case("float_io_softmax", "SOFTMAX", {"beta": 1.0}, (1, 10), tf.nn.softmax,
                   low=-4.0, high=4.0, float_io=True),
        unary_case("float_io_positive_relu", "RELU", {}, (1, 5, 7, 3), tf.nn.relu,
                   low=0.0, high=4.0, float_io=True),
        unary_case("requantize_between_maxpools", "QUANTIZE",
                   {"fake_quant_ranges": [[-1.0, 1.0], [-3.0, 3.0]]}, (1, 5, 5, 2),
                   requantize_maxpool, reference=requantize_maxpool),
        unary_case("requantize_zero_point_change", "QUANTIZE",
                   {"fake_quant_ranges": [[-1.0, 1.0], [-0.25, 2.0]]}, (1, 6, 6, 3),
                   requantize_zero_point, reference=requantize_zero_point),
    ]


def extreme_quantization_cases() -> list[Case]:
    """Input ranges that push zero points and scales to their limits.

    All-positive data gives zero point -128, all-negative data gives 127, [-0.0128, 0.0128]
    gives a scale near 1e-4 and [-12800, 12800] a scale near 100.
    """
    ranges = {
        "positive": (0.5, 4.0),
        "negative": (-4.0, -0.5),
        "tiny": (-0.0128, 0.0128),
        "huge": (-12800.0, 12800.0),
    }
    cases = []
    for label, (low, high) in ranges.items():
        cases += [
            conv2d_case(f"extreme_{label}_conv", hw=(7, 9), cin=3, cout=4, kernel=(3, 3),
                        low=low, high=high),
            depthwise_case(f"extreme_{label}_dw", hw=(7, 9), channels=3, multiplier=2,
                           kernel=(3, 3), low=low, high=high),
            fully_connected_case(f"extreme_{label}_fc", input_shape=(1, 13), units=5,
                                 low=low, high=high),
            add_case(f"extreme_{label}_add", shape=(1, 5, 7, 3), other_shape=(1, 5, 7, 3),
                     other_constant=False, ranges=((low, high), (low, high))),
            pool_case(f"extreme_{label}_avgpool", "AVERAGE_POOL_2D", hw=(7, 9), channels=3,
                      filter_size=(3, 3), strides=(2, 2), padding="SAME", low=low, high=high),
            unary_case(f"extreme_{label}_mean", "MEAN", {"axes": [1, 2], "keepdims": True},
                       (1, 7, 9, 3), _mean([1, 2], True), low=low, high=high),
            unary_case(f"extreme_{label}_softmax", "SOFTMAX", {"beta": 1.0}, (1, 10),
                       tf.nn.softmax, low=low, high=high),
        ]
    return cases


def combo_cases() -> list[Case]:
    """Short chains of ops as they appear in real models."""

    def conv_maxpool(rng: np.random.Generator) -> GraphFn:
        filters = tf.constant(make_filter(rng, (3, 3, 3, 6), out_axis=3))
        biases = tf.constant(make_bias(rng, 6))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.nn.relu(tf.nn.conv2d(x, filters, 1, "SAME") + biases)
            return tf.nn.max_pool2d(y, 2, 2, "VALID")

        return graph

    def conv_dw_pw(rng: np.random.Generator) -> GraphFn:
        stem = tf.constant(make_filter(rng, (3, 3, 3, 8), out_axis=3))
        stem_bias = tf.constant(make_bias(rng, 8))
        depthwise = tf.constant(make_filter(rng, (3, 3, 8), out_axis=2).reshape(3, 3, 8, 1))
        depthwise_bias = tf.constant(make_bias(rng, 8))
        pointwise = tf.constant(make_filter(rng, (1, 1, 8, 4), out_axis=3))
        pointwise_bias = tf.constant(make_bias(rng, 4))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.nn.relu6(tf.nn.conv2d(x, stem, 2, "SAME") + stem_bias)
            y = tf.nn.depthwise_conv2d(y, depthwise, [1, 1, 1, 1], "SAME")
            y = tf.nn.relu6(y + depthwise_bias)
            return tf.nn.conv2d(y, pointwise, 1, "VALID") + pointwise_bias

        return graph

    def classifier(rng: np.random.Generator) -> GraphFn:
        filters = tf.constant(make_filter(rng, (3, 3, 1, 4), out_axis=3))
        biases = tf.constant(make_bias(rng, 4))
        dense = tf.constant(make_filter(rng, (4 * 4 * 4, 10), out_axis=1))
        dense_bias = tf.constant(make_bias(rng, 10))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.nn.relu(tf.nn.conv2d(x, filters, 2, "VALID") + biases)
            y = tf.reshape(y, [1, -1])
            return tf.nn.softmax(tf.matmul(y, dense) + dense_bias)

        return graph

    def residual(rng: np.random.Generator) -> GraphFn:
        first = tf.constant(make_filter(rng, (3, 3, 4, 4), out_axis=3))
        first_bias = tf.constant(make_bias(rng, 4))
        second = tf.constant(make_filter(rng, (3, 3, 4, 4), out_axis=3))
        second_bias = tf.constant(make_bias(rng, 4))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.nn.relu(tf.nn.conv2d(x, first, 1, "SAME") + first_bias)
            y = tf.nn.conv2d(y, second, 1, "SAME") + second_bias
            return tf.nn.relu(x + y)

        return graph

    def dw_mean_fc(rng: np.random.Generator) -> GraphFn:
        depthwise = tf.constant(make_filter(rng, (3, 3, 6), out_axis=2).reshape(3, 3, 6, 1))
        depthwise_bias = tf.constant(make_bias(rng, 6))
        dense = tf.constant(make_filter(rng, (6, 3), out_axis=1))
        dense_bias = tf.constant(make_bias(rng, 3))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1], "VALID")
            y = tf.nn.relu(y + depthwise_bias)
            y = tf.reduce_mean(y, axis=[1, 2])
            return tf.matmul(y, dense) + dense_bias

        return graph

    def pad_conv(rng: np.random.Generator) -> GraphFn:
        filters = tf.constant(make_filter(rng, (3, 3, 3, 4), out_axis=3))
        biases = tf.constant(make_bias(rng, 4))

        def graph(x: tf.Tensor) -> tf.Tensor:
            y = tf.pad(x, [[0, 0], [1, 0], [0, 1], [0, 0]])
            return tf.nn.conv2d(y, filters, 2, "VALID") + biases

        return graph

    def combo(name: str, build: Callable[[np.random.Generator], GraphFn], shape: tuple[int, ...],
              description: str) -> Case:
        return Case(name=name, op="COMBO", params={"graph": description,
                                                     "input_shape": list(shape)},
                    build=build, inputs=(InputSpec(shape),))

    return [
        combo("combo_conv_maxpool", conv_maxpool, (1, 8, 9, 3),
              "conv 3x3 same + relu, max pool 2x2 stride 2"),
        combo("combo_conv_dw_pw", conv_dw_pw, (1, 9, 9, 3),
              "conv 3x3 stride 2 + relu6, depthwise 3x3 + relu6, pointwise 1x1"),
        combo("combo_classifier", classifier, (1, 9, 9, 1),
              "conv 3x3 stride 2 valid + relu, flatten, dense 10, softmax"),
        combo("combo_residual_add", residual, (1, 6, 6, 4),
              "two conv 3x3, residual add of the input, relu"),
        combo("combo_dw_mean_fc", dw_mean_fc, (1, 7, 7, 6),
              "depthwise 3x3 valid + relu, mean over H and W, dense 3"),
        combo("combo_pad_conv", pad_conv, (1, 8, 7, 3),
              "pad top 1 right 1, conv 3x3 stride 2 valid"),
    ]


def all_cases() -> list[Case]:
    cases = (
        conv2d_cases()
        + depthwise_cases()
        + fully_connected_cases()
        + pool_cases()
        + add_cases()
        + shape_and_reduction_cases()
        + boundary_cases()
        + extreme_quantization_cases()
        + combo_cases()
    )
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate case names: {duplicates}")
    return cases


# ----------------------------------------------------------------------------------------------
# Conversion


def input_name(index: int) -> str:
    return f"input_{index}"


def make_concrete_function(case: Case) -> tuple[tf.Module, tf.types.experimental.ConcreteFunction]:
    graph = case.build(rng_for(case.name, "weights"))
    signature = [
        tf.TensorSpec(spec.shape, tf.float32, name=input_name(index))
        for index, spec in enumerate(case.inputs)
    ]
    module = tf.Module()
    module.graph = tf.function(graph, input_signature=signature)
    return module, module.graph.get_concrete_function()


def representative_data(case: Case) -> list[dict[str, np.ndarray]]:
    """Draw the calibration samples, with the first sample pinned to the range ends.

    Pinning makes the observed input range exactly [low, high], so the extreme-range
    cases get the zero points and scales their names promise. Samples are keyed by input
    name because the converter (TensorFlow 2.21) feeds a list sample in the order of the
    converted model's inputs, which can differ from the function's argument order.
    """
    rng = rng_for(case.name, "representative")
    samples = []
    for index in range(REPRESENTATIVE_SAMPLES):
        sample = {}
        for position, spec in enumerate(case.inputs):
            values = rng.uniform(spec.low, spec.high, size=spec.shape).astype(np.float32)
            if index == 0 and values.size >= 2:
                values.flat[0] = spec.low
                values.flat[1] = spec.high
            sample[input_name(position)] = values
        samples.append(sample)
    return samples


def convert(case: Case, quantize: bool) -> bytes:
    module, concrete = make_concrete_function(case)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if quantize:
        samples = representative_data(case)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not case.float_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        for flag, value in case.converter_flags.items():
            if not hasattr(converter, flag):
                raise RuntimeError(f"converter has no attribute {flag} (case {case.name})")
            setattr(converter, flag, value)
    model = bytearray(converter.convert())
    if case.patch is not None:
        case.patch(model)
    return bytes(model)


# ----------------------------------------------------------------------------------------------
# Inspection


_ENUM_OPTIONS = {
    "Padding": {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")},
    "FusedActivationFunction": {
        v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")
    },
}
_OPTION_TABLE_NAMES = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")
}
_SKIPPED_OPTION_FIELDS = ("QuantizedBiasType", "AsymmetricQuantizeInputs", "WeightsFormat")


def read_builtin_options(operator: tflite.Operator) -> dict:
    """Read every scalar field of the operator's builtin options table."""
    table = operator.BuiltinOptions()
    if table is None:
        return {}
    options = getattr(tflite, _OPTION_TABLE_NAMES[operator.BuiltinOptionsType()])()
    options.Init(table.Bytes, table.Pos)
    values = {}
    for attribute in sorted(dir(options)):
        if not attribute[0].isupper() or attribute in _SKIPPED_OPTION_FIELDS:
            continue
        if attribute.startswith(("GetRootAs", "Init")) or attribute.endswith(
            ("Length", "AsNumpy", "IsNone", "BufferHasIdentifier")
        ):
            continue
        value = getattr(options, attribute)()
        if isinstance(value, float):
            value = round(value, 6)
        values[attribute] = _ENUM_OPTIONS.get(attribute, {}).get(value, value)
    return values


def _tensor_type_name(tensor: tflite.Tensor) -> str:
    names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    return names[tensor.Type()].lower()


def describe_tensor(tensor: tflite.Tensor) -> dict:
    quantization = tensor.Quantization()
    scales = quantization.ScaleAsNumpy() if quantization is not None else 0
    zero_points = quantization.ZeroPointAsNumpy() if quantization is not None else 0
    described = {"shape": tensor.ShapeAsNumpy().tolist(), "dtype": _tensor_type_name(tensor)}
    if isinstance(scales, np.ndarray) and scales.size == 1:
        described["scale"] = float(scales[0])
        described["zero_point"] = int(zero_points[0])
    return described


def describe_model(model_bytes: bytes) -> dict:
    """Summarize the ops, their options and the graph inputs and outputs."""
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    if model.SubgraphsLength() != 1:
        raise RuntimeError(f"expected 1 subgraph, found {model.SubgraphsLength()}")
    subgraph = model.Subgraphs(0)
    operators = []
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        code = model.OperatorCodes(operator.OpcodeIndex())
        name = tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        input_indices = operator.InputsAsNumpy().tolist()
        summary = {
            "op": name,
            "options": read_builtin_options(operator),
            "input_shapes": [
                subgraph.Tensors(i).ShapeAsNumpy().tolist() if i >= 0 else None
                for i in input_indices
            ],
        }
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weights = subgraph.Tensors(input_indices[1]).Quantization()
            summary["per_channel_weights"] = bool(weights.ScaleLength() > 1)
            summary["has_bias"] = len(input_indices) > 2 and input_indices[2] >= 0
        operators.append(summary)
    return {
        "ops": [summary["op"] for summary in operators],
        "operators": operators,
        "inputs": [describe_tensor(subgraph.Tensors(i)) for i in subgraph.InputsAsNumpy()],
        "outputs": [describe_tensor(subgraph.Tensors(i)) for i in subgraph.OutputsAsNumpy()],
    }


# ----------------------------------------------------------------------------------------------
# Sanity check against float32


@dataclass(frozen=True)
class GraphTensor:
    """A graph input or output as the check needs it: name, type and quantization."""

    name: str
    dtype: str
    scale: float
    zero_point: int


def _graph_tensors(model_bytes: bytes, outputs: bool) -> list[GraphTensor]:
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    indices = subgraph.OutputsAsNumpy() if outputs else subgraph.InputsAsNumpy()
    tensors = []
    for index in indices:
        tensor = subgraph.Tensors(index)
        described = describe_tensor(tensor)
        match = re.search(r"input_\d+", tensor.Name().decode())
        tensors.append(GraphTensor(
            name=match.group(0) if match and not outputs else tensor.Name().decode(),
            dtype=described["dtype"],
            scale=described.get("scale", 0.0),
            zero_point=described.get("zero_point", 0),
        ))
    return tensors


def _run(model_bytes: bytes, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """Run the model with LiteRT's reference kernels, or in TFLM when LiteRT rejects it.

    LiteRT (ai-edge-litert 2.3) rejects CONV_2D without a bias input, which TFLM runs. Its
    default optimized kernels also crash on DEPTHWISE_CONV_2D without a bias input, so the
    check uses the reference kernels, which are also what tinycompile verifies against.
    """
    try:
        interpreter = Interpreter(
            model_content=model_bytes,
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        )
        interpreter.allocate_tensors()
    except RuntimeError as error:
        log.debug("LiteRT rejected the model (%s), running it in TFLM", error)
        micro = tflm_runtime.Interpreter.from_bytes(model_bytes)
        for index, values in enumerate(feeds):
            micro.set_input(values, index)
        micro.invoke()
        return [micro.get_output(i) for i in range(len(_graph_tensors(model_bytes, True)))]
    for detail, values in zip(interpreter.get_input_details(), feeds):
        interpreter.set_tensor(detail["index"], values)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def _dequantized_output_quantization(model_bytes: bytes) -> tuple[float, int]:
    """Return the scale and zero point of the int8 tensor that the final DEQUANTIZE reads."""
    operators = describe_model(model_bytes)["operators"]
    if not operators or operators[-1]["op"] != "DEQUANTIZE":
        raise RuntimeError("float32 output without a final DEQUANTIZE")
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    last = subgraph.Operators(subgraph.OperatorsLength() - 1)
    described = describe_tensor(subgraph.Tensors(last.Inputs(0)))
    return described["scale"], described["zero_point"]


def check_against_float(case: Case, quantized: bytes) -> float:
    """Return the largest output error of the int8 model in units of its output scale.

    Reference outputs are clipped to the range that the int8 output (or the int8 tensor
    before the final DEQUANTIZE) can represent, because the check samples may leave the
    calibrated range. A large error means the model does not compute the graph the case
    describes (a wrong patch, swapped inputs).
    """
    # The converter may reorder graph inputs, so match them to the case by name.
    inputs = _graph_tensors(quantized, outputs=False)
    specs = {input_name(i): spec for i, spec in enumerate(case.inputs)}
    if sorted(tensor.name for tensor in inputs) != sorted(specs):
        raise RuntimeError(f"{case.name}: graph inputs {[t.name for t in inputs]}, "
                           f"expected {sorted(specs)}")
    outputs = _graph_tensors(quantized, outputs=True)

    float_model = convert(case, quantize=False) if case.reference is None else None
    rng = rng_for(case.name, "check")
    worst = 0.0
    for _ in range(CHECK_SAMPLES):
        quantized_feeds, float_feeds = [], []
        for tensor in inputs:
            spec = specs[tensor.name]
            values = rng.uniform(spec.low, spec.high, size=spec.shape).astype(np.float32)
            if tensor.dtype == "int8":
                q = np.round(values / tensor.scale) + tensor.zero_point
                q = np.clip(q, -128, 127).astype(np.int8)
                quantized_feeds.append(q)
                # The float reference receives the same, already rounded, input values.
                values = ((q.astype(np.float32) - tensor.zero_point) * tensor.scale)
                values = values.astype(np.float32)
            else:
                quantized_feeds.append(values)
            float_feeds.append(values)

        actual = _run(quantized, quantized_feeds)
        if float_model is not None:
            expected = _run(float_model, float_feeds)
        else:
            named = {tensor.name: values for tensor, values in zip(inputs, float_feeds)}
            ordered = [tf.constant(named[input_name(i)]) for i in range(len(case.inputs))]
            expected = [np.asarray(case.reference(*ordered))]

        for tensor, got, want in zip(outputs, actual, expected):
            if tensor.dtype == "int8":
                scale, zero_point = tensor.scale, tensor.zero_point
                got = (got.astype(np.float32) - zero_point) * scale
            else:
                scale, zero_point = _dequantized_output_quantization(quantized)
            want = np.clip(want, (-128 - zero_point) * scale, (127 - zero_point) * scale)
            worst = max(worst, float(np.max(np.abs(got - want))) / scale)
    return worst


# ----------------------------------------------------------------------------------------------
# Main


def format_manifest(manifest: list[dict]) -> str:
    """Format the manifest as indented JSON with each list of numbers or strings on one line."""
    text = json.dumps(manifest, indent=1)
    innermost_list = re.compile(r"\[\s+([^\[\]{}]*?)\s+\]")
    previous = None
    while previous != text:
        previous = text
        text = innermost_list.sub(lambda match: "[" + " ".join(match.group(1).split()) + "]", text)
    return text + "\n"


def generate(cases: list[Case], out_dir: Path, max_error_steps: float) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    failures = []
    for case in cases:
        model = convert(case, quantize=True)
        (out_dir / f"{case.name}.tflite").write_bytes(model)
        description = describe_model(model)
        error_steps = check_against_float(case, model)
        log.info("%-36s %6d bytes  %-40s max error %.1f steps", case.name, len(model),
                 " ".join(description["ops"]), error_steps)
        if error_steps > max_error_steps:
            failures.append(f"{case.name}: output differs from float32 by {error_steps:.1f} "
                            f"quantization steps")
        manifest.append({"name": case.name, "op": case.op, "params": case.params, **description})
    (out_dir / "manifest.json").write_text(format_manifest(manifest))
    if failures:
        raise RuntimeError("; ".join(failures))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder for the .tflite files and manifest.json")
    parser.add_argument("--only", default=None,
                        help="generate only the cases whose name matches this regular "
                             "expression (the manifest then lists only those)")
    parser.add_argument("--max-error-steps", type=float, default=8.0,
                        help="largest int8-versus-float32 output error accepted, in output "
                             "quantization steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tf.get_logger().setLevel(logging.ERROR)
    # The calibrator still uses tf.lite.Interpreter and warns about it once per model.
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")

    cases = all_cases()
    if args.only:
        cases = [case for case in cases if re.search(args.only, case.name)]
    if args.only and args.out.resolve() == DEFAULT_OUT:
        parser.error("--only writes a partial manifest, so pass --out with a folder other "
                     "than tests/models/ops")
    if args.out.exists():
        for stale in args.out.glob("*.tflite"):
            stale.unlink()
    manifest = generate(cases, args.out, args.max_error_steps)
    total = sum((args.out / f"{entry['name']}.tflite").stat().st_size for entry in manifest)
    log.info("wrote %d models, %d bytes in all, to %s (TensorFlow %s)", len(manifest), total,
             args.out, tf.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
