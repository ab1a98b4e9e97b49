"""Write the single-op int8 TFLite models that tests/test_kernels_base.py verifies bit-exactly.

The models cover SOFTMAX, PAD, PADV2, MEAN, SUM, QUANTIZE, DEQUANTIZE, RELU, RELU6,
RELU_N1_TO_1 and LEAKY_RELU, with attributes and quantization parameters that a converter
seldom emits. Among them are softmax with beta other than 1, one-element rows and int16 output,
asymmetric padding on every side of 1-D to 5-D tensors, int64 paddings, and an int32 tensor
padded byte for byte. MEAN runs with and without keep_dims over one axis, several axes, and
negative and repeated axes. Scales and zero points reach the ends of their ranges.

Each model is written directly as a flatbuffer with the `tflite` schema package, so every
tensor's quantization is exactly what the case specifies and no TensorFlow is needed. A run writes
byte-identical files. `manifest.json` lists every model with the reference interpreters that can
run it (TFLM lacks a few of these ops) and the kind of edge-case inputs the tests add to the
random samples.

Usage: .venv/bin/python tools/make_kernel_models.py [--out DIR] [--only REGEX]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import flatbuffers
import numpy as np
import tflite

log = logging.getLogger("make_kernel_models")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "models" / "kernels"

_TYPES = {
    "int8": tflite.TensorType.INT8,
    "int16": tflite.TensorType.INT16,
    "int32": tflite.TensorType.INT32,
    "int64": tflite.TensorType.INT64,
    "float32": tflite.TensorType.FLOAT32,
}


@dataclass
class TensorSpec:
    """A tensor of a case: an activation when `data` is None, else a constant."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float | None = None
    zero_point: int = 0
    data: np.ndarray | None = None


@dataclass
class OpSpec:
    """An operator of a case: its builtin name, tensor indices, options and op version."""

    op: str
    inputs: list[int]
    outputs: list[int]
    version: int = 1
    options: tuple[int, Callable[[flatbuffers.Builder], int]] | None = None


@dataclass
class Case:
    """A model to write, with the references that run it and the edge inputs the tests add."""

    name: str
    tensors: list[TensorSpec]
    ops: list[OpSpec]
    inputs: list[int]
    outputs: list[int]
    references: tuple[str, ...] = ("tflm", "litert")
    edge_inputs: str = "none"      # kind of extra inputs that tests/test_kernels_base.py adds
    note: str = ""


# Flatbuffer writing.


def _vector_of_offsets(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _tensor(builder: flatbuffers.Builder, spec: TensorSpec, buffer_index: int) -> int:
    name = builder.CreateString(spec.name)
    shape = builder.CreateNumpyVector(np.asarray(spec.shape, dtype=np.int32))
    quant = None
    if spec.scale is not None:
        scale = builder.CreateNumpyVector(np.asarray([spec.scale], dtype=np.float32))
        zero_point = builder.CreateNumpyVector(np.asarray([spec.zero_point], dtype=np.int64))
        tflite.QuantizationParametersStart(builder)
        tflite.QuantizationParametersAddScale(builder, scale)
        tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
        quant = tflite.QuantizationParametersEnd(builder)
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape)
    tflite.TensorAddType(builder, _TYPES[spec.dtype])
    tflite.TensorAddBuffer(builder, buffer_index)
    tflite.TensorAddName(builder, name)
    if quant is not None:
        tflite.TensorAddQuantization(builder, quant)
    return tflite.TensorEnd(builder)


def build_model(case: Case) -> bytes:
    """Serialize `case` as a .tflite flatbuffer."""
    builder = flatbuffers.Builder(1024)
    # Buffer 0 is the empty sentinel, and every constant gets its own buffer.
    buffer_data: list[bytes | None] = [None]
    tensor_buffer: list[int] = []
    for spec in case.tensors:
        if spec.data is None:
            tensor_buffer.append(0)
        else:
            data = np.asarray(spec.data).astype(np.dtype(spec.dtype))
            if data.shape != tuple(spec.shape):
                raise ValueError(f"{case.name}: tensor '{spec.name}' data shape {data.shape} != {spec.shape}")
            tensor_buffer.append(len(buffer_data))
            buffer_data.append(data.tobytes())

    buffers = []
    for data in buffer_data:
        vec = builder.CreateByteVector(data) if data else None
        tflite.BufferStart(builder)
        if vec is not None:
            tflite.BufferAddData(builder, vec)
        buffers.append(tflite.BufferEnd(builder))

    tensors = [_tensor(builder, spec, tensor_buffer[i]) for i, spec in enumerate(case.tensors)]

    op_names = sorted({(op.op, op.version) for op in case.ops})
    codes = []
    for name, version in op_names:
        code = getattr(tflite.BuiltinOperator, name)
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(builder, code)
        tflite.OperatorCodeAddVersion(builder, version)
        codes.append(tflite.OperatorCodeEnd(builder))

    operators = []
    for op in case.ops:
        inputs = builder.CreateNumpyVector(np.asarray(op.inputs, dtype=np.int32))
        outputs = builder.CreateNumpyVector(np.asarray(op.outputs, dtype=np.int32))
        options = op.options[1](builder) if op.options else None
        tflite.OperatorStart(builder)
        tflite.OperatorAddOpcodeIndex(builder, op_names.index((op.op, op.version)))
        tflite.OperatorAddInputs(builder, inputs)
        tflite.OperatorAddOutputs(builder, outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(builder, op.options[0])
            tflite.OperatorAddBuiltinOptions(builder, options)
        operators.append(tflite.OperatorEnd(builder))

    sg_tensors = _vector_of_offsets(builder, tensors)
    sg_ops = _vector_of_offsets(builder, operators)
    sg_inputs = builder.CreateNumpyVector(np.asarray(case.inputs, dtype=np.int32))
    sg_outputs = builder.CreateNumpyVector(np.asarray(case.outputs, dtype=np.int32))
    sg_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, sg_tensors)
    tflite.SubGraphAddOperators(builder, sg_ops)
    tflite.SubGraphAddInputs(builder, sg_inputs)
    tflite.SubGraphAddOutputs(builder, sg_outputs)
    tflite.SubGraphAddName(builder, sg_name)
    subgraph = tflite.SubGraphEnd(builder)

    subgraphs = _vector_of_offsets(builder, [subgraph])
    codes_vec = _vector_of_offsets(builder, codes)
    buffers_vec = _vector_of_offsets(builder, buffers)
    description = builder.CreateString(f"tinycompile kernel test: {case.name}")
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, codes_vec)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, description)
    tflite.ModelAddBuffers(builder, buffers_vec)
    model = tflite.ModelEnd(builder)
    builder.Finish(model, file_identifier=b"TFL3")
    return bytes(builder.Output())


# Option tables.


def softmax_options(beta: float):
    def build(builder: flatbuffers.Builder) -> int:
        tflite.SoftmaxOptionsStart(builder)
        tflite.SoftmaxOptionsAddBeta(builder, beta)
        return tflite.SoftmaxOptionsEnd(builder)
    return (tflite.BuiltinOptions.SoftmaxOptions, build)


def reducer_options(keep_dims: bool):
    def build(builder: flatbuffers.Builder) -> int:
        tflite.ReducerOptionsStart(builder)
        tflite.ReducerOptionsAddKeepDims(builder, keep_dims)
        return tflite.ReducerOptionsEnd(builder)
    return (tflite.BuiltinOptions.ReducerOptions, build)


def leaky_relu_options(alpha: float):
    def build(builder: flatbuffers.Builder) -> int:
        tflite.LeakyReluOptionsStart(builder)
        tflite.LeakyReluOptionsAddAlpha(builder, alpha)
        return tflite.LeakyReluOptionsEnd(builder)
    return (tflite.BuiltinOptions.LeakyReluOptions, build)


def empty_options(kind: str):
    start = getattr(tflite, f"{kind}Start")
    end = getattr(tflite, f"{kind}End")

    def build(builder: flatbuffers.Builder) -> int:
        start(builder)
        return end(builder)
    return (getattr(tflite.BuiltinOptions, kind), build)


# Cases.


def unary_case(name: str, op: str, shape: tuple[int, ...], in_q: tuple[float, int], out_q: tuple[float, int],
               version: int, options=None, in_dtype: str = "int8", out_dtype: str = "int8",
               references: tuple[str, ...] = ("tflm", "litert"), edge_inputs: str = "none", note: str = "") -> Case:
    tensors = [
        TensorSpec("input", shape, in_dtype, *in_q) if in_q else TensorSpec("input", shape, in_dtype),
        TensorSpec("output", shape, out_dtype, *out_q) if out_q else TensorSpec("output", shape, out_dtype),
    ]
    return Case(name, tensors, [OpSpec(op, [0], [1], version, options)], [0], [1], references, edge_inputs, note)


def softmax_cases() -> list[Case]:
    out8 = (1.0 / 256, -128)
    out16 = (1.0 / 65536, -32768)
    cases = [
        ("softmax_2d", (1, 10), (0.1, 3), 1.0),
        ("softmax_1d", (16,), (0.0625, 0), 1.0),
        ("softmax_3d_beta2", (2, 5, 7), (0.05, -10), 2.0),
        ("softmax_4d_beta_half", (2, 3, 4, 5), (0.2, 20), 0.5),
        ("softmax_small_scale", (3, 12), (1.0 / 1024, -128), 1.0),
        ("softmax_tiny_beta", (2, 9), (0.01, 0), 0.05),
        ("softmax_large_beta", (2, 11), (0.25, 0), 50.0),
        ("softmax_saturated_beta", (2, 6), (0.5, 0), 100.0),
        ("softmax_one_element_rows", (6, 1), (0.3, 7), 1.0),
        ("softmax_long_rows", (2, 300), (0.08, -1), 1.0),
    ]
    result = [unary_case(name, "SOFTMAX", shape, in_q, out8, 2, softmax_options(beta), edge_inputs="softmax")
              for name, shape, in_q, beta in cases]
    result.append(unary_case("softmax_int16_output", "SOFTMAX", (3, 10), (0.1, 3), out16, 3, softmax_options(1.0),
                             out_dtype="int16", edge_inputs="softmax"))
    result.append(unary_case("softmax_int16_output_beta3", "SOFTMAX", (2, 33), (0.07, -20), out16, 3,
                             softmax_options(3.0), out_dtype="int16", edge_inputs="softmax"))
    return result


def pad_case(name: str, shape: tuple[int, ...], paddings: list[list[int]], dtype: str = "int8",
             q: tuple[float, int] | None = (0.05, -5), padv2_value: int | None = None, paddings_dtype: str = "int32",
             references: tuple[str, ...] = ("tflm", "litert")) -> Case:
    out_shape = tuple(d + a + b for d, (a, b) in zip(shape, paddings))
    qargs = q if (q is not None and dtype == "int8") else (None, 0)
    tensors = [
        TensorSpec("input", shape, dtype, *qargs),
        TensorSpec("paddings", (len(shape), 2), paddings_dtype, data=np.asarray(paddings)),
        TensorSpec("output", out_shape, dtype, *qargs),
    ]
    inputs = [0, 1]
    op = "PAD"
    options = empty_options("PadOptions")
    version = 2 if dtype == "int8" else 1
    if padv2_value is not None:
        tensors.append(TensorSpec("constant_values", (), dtype, *qargs, data=np.asarray(padv2_value)))
        inputs.append(3)
        op = "PADV2"
        options = empty_options("PadV2Options")
    if len(shape) > 4:
        version = 4
    return Case(name, tensors, [OpSpec(op, inputs, [2], version, options)], [0], [2], references)


def pad_cases() -> list[Case]:
    return [
        pad_case("pad_1d", (7,), [[2, 3]]),
        pad_case("pad_2d_asymmetric", (4, 7), [[3, 0], [0, 2]]),
        pad_case("pad_3d", (2, 3, 4), [[1, 1], [0, 2], [3, 1]], q=(0.5, 100)),
        pad_case("pad_4d_every_side", (1, 5, 6, 3), [[1, 2], [0, 3], [2, 1], [1, 0]]),
        pad_case("pad_4d_hw_only", (2, 4, 4, 8), [[0, 0], [1, 1], [1, 1], [0, 0]], q=(0.02, -128)),
        pad_case("pad_4d_none", (1, 3, 3, 2), [[0, 0], [0, 0], [0, 0], [0, 0]]),
        pad_case("pad_5d", (2, 1, 3, 2, 2), [[0, 1], [2, 0], [1, 1], [0, 0], [1, 2]]),
        pad_case("pad_int64_paddings", (1, 4, 3, 2), [[0, 0], [2, 1], [0, 3], [1, 1]], paddings_dtype="int64",
                 references=("litert",)),
        pad_case("pad_int32_tensor", (3, 5), [[1, 2], [2, 1]], dtype="int32", q=None),
        pad_case("padv2_4d", (1, 4, 5, 3), [[0, 1], [2, 0], [1, 2], [0, 1]], padv2_value=17),
        pad_case("padv2_min_value", (2, 6), [[1, 1], [3, 2]], q=(0.1, 0), padv2_value=-128),
        pad_case("padv2_int32_tensor", (4, 3), [[0, 2], [1, 0]], dtype="int32", q=None, padv2_value=-7),
    ]


def reduce_case(name: str, op: str, shape: tuple[int, ...], axes: list[int], keep_dims: bool,
                in_q: tuple[float, int], out_q: tuple[float, int],
                references: tuple[str, ...] = ("tflm", "litert"), note: str = "") -> Case:
    resolved = sorted({a % len(shape) for a in axes})
    if keep_dims:
        out_shape = tuple(1 if i in resolved else d for i, d in enumerate(shape))
    else:
        out_shape = tuple(d for i, d in enumerate(shape) if i not in resolved)
    tensors = [
        TensorSpec("input", shape, "int8", *in_q),
        TensorSpec("axis", (len(axes),), "int32", data=np.asarray(axes)),
        TensorSpec("output", out_shape, "int8", *out_q),
    ]
    version = 2
    return Case(name, tensors, [OpSpec(op, [0, 1], [2], version, reducer_options(keep_dims))], [0], [2],
                references, note=note)


def reduce_cases() -> list[Case]:
    a, b = (0.04, -7), (0.015, 12)
    same = (0.04, -7)
    # LiteRT's reference int8 SUM returns wrong sums for every output but the first (its
    # optimized SUM agrees with TFLM up to rounding), so SUM is checked against TFLM only.
    sum_refs = {"references": ("tflm",), "note": "LiteRT's BUILTIN_REF int8 SUM is wrong"}
    return [
        reduce_case("mean_4d_hw_keep", "MEAN", (1, 7, 9, 8), [1, 2], True, a, b),
        reduce_case("mean_4d_hw_no_keep", "MEAN", (2, 5, 6, 4), [1, 2], False, a, b),
        reduce_case("mean_4d_wh_keep", "MEAN", (1, 4, 6, 3), [2, 1], True, a, b),
        reduce_case("mean_4d_hw_keep_same_quant", "MEAN", (1, 6, 6, 5), [1, 2], True, same, same),
        reduce_case("mean_4d_hw_no_keep_same_quant", "MEAN", (2, 3, 5, 4), [1, 2], False, same, same),
        reduce_case("mean_last_axis", "MEAN", (2, 3, 10), [2], False, a, b),
        reduce_case("mean_single_axis_keep", "MEAN", (4, 6), [0], True, a, b),
        reduce_case("mean_negative_axis", "MEAN", (3, 4, 5), [-1], True, a, b),
        reduce_case("mean_axis_0_and_2", "MEAN", (3, 4, 5), [0, 2], False, a, b),
        reduce_case("mean_all_axes", "MEAN", (3, 4), [0, 1], False, a, b),
        reduce_case("mean_repeated_axis", "MEAN", (2, 6, 3), [1, 1], True, a, b),
        reduce_case("mean_same_quant_last_axis", "MEAN", (5, 9), [1], False, same, same),
        reduce_case("mean_large_count", "MEAN", (1, 40, 40, 2), [1, 2], True, (0.1, 0), (0.001, -100)),
        reduce_case("mean_scale_up", "MEAN", (2, 8, 3), [1], False, (0.5, 3), (0.002, 0)),
        reduce_case("mean_three_axes", "MEAN", (2, 3, 4, 5), [0, 2, 3], True, a, b),
        reduce_case("sum_last_axis", "SUM", (3, 8), [1], False, (0.02, 4), (0.1, -3), **sum_refs),
        reduce_case("sum_4d_hw_keep", "SUM", (1, 3, 4, 5), [1, 2], True, (0.01, -20), (0.2, 9), **sum_refs),
        reduce_case("sum_same_quant", "SUM", (4, 5), [0], True, same, same, **sum_refs),
    ]


def quantize_cases() -> list[Case]:
    cases = []
    for name, (scale, zp) in {
        "quantize_f32": (0.05, -3),
        "quantize_f32_tiny_scale": (1e-4, 127),
        "quantize_f32_large_scale": (12.5, -128),
        "quantize_f32_pow2_scale": (2.0 ** -7, 0),
    }.items():
        cases.append(unary_case(name, "QUANTIZE", (2, 40), None, (scale, zp), 2, in_dtype="float32",
                                edge_inputs="float_halfway"))
    for name, (scale, zp) in {
        "dequantize_s8": (0.0173, -7),
        "dequantize_s8_tiny_scale": (3e-7, 127),
        "dequantize_s8_large_scale": (1000.0, -128),
    }.items():
        cases.append(unary_case(name, "DEQUANTIZE", (3, 50), (scale, zp), None, 2, out_dtype="float32",
                                edge_inputs="all_int8"))
    for name, in_q, out_q in (
        ("requantize_s8", (0.1, 5), (0.037, -20)),
        ("requantize_s8_upscale", (0.01, -100), (0.25, 60)),
        ("requantize_s8_same_scale", (0.05, 10), (0.05, -30)),
    ):
        cases.append(unary_case(name, "QUANTIZE", (4, 64), in_q, out_q, 2, edge_inputs="all_int8"))
    return cases


def activation_cases() -> list[Case]:
    same = (0.05, -20)
    return [
        unary_case("relu_same_quant", "RELU", (2, 128), same, same, 2, edge_inputs="all_int8"),
        unary_case("relu_requant", "RELU", (2, 128), (0.05, 10), (0.03, -128), 2, edge_inputs="all_int8"),
        unary_case("relu_requant_up", "RELU", (2, 128), (0.01, -50), (0.07, -100), 2, edge_inputs="all_int8"),
        # input_scale / output_scale rounds to different multipliers in float (LiteRT) and in
        # double (TFLM), which changes one of the 256 outputs.
        unary_case("relu_scale_ratio_rounding", "RELU", (2, 128), (0.09073881059885025, -96),
                   (0.07935580611228943, -128), 2, edge_inputs="all_int8"),
        unary_case("relu6_same_quant", "RELU6", (2, 128), same, same, 2, edge_inputs="all_int8"),
        unary_case("relu6_requant", "RELU6", (2, 128), (0.06, -3), (6.0 / 255, -128), 2, edge_inputs="all_int8"),
        unary_case("relu_n1_to_1_same_quant", "RELU_N1_TO_1", (2, 128), (0.01, 5), (0.01, 5), 1,
                   references=("litert",), edge_inputs="all_int8", note="TFLM has no RELU_N1_TO_1"),
        unary_case("relu_n1_to_1_requant", "RELU_N1_TO_1", (2, 128), (0.02, 0), (2.0 / 255, 0), 1,
                   references=("litert",), edge_inputs="all_int8", note="TFLM has no RELU_N1_TO_1"),
        unary_case("leaky_relu", "LEAKY_RELU", (2, 128), (0.05, 10), (0.04, -20), 2, leaky_relu_options(0.2),
                   edge_inputs="all_int8"),
        unary_case("leaky_relu_same_quant", "LEAKY_RELU", (2, 128), same, same, 2, leaky_relu_options(0.1),
                   edge_inputs="all_int8"),
        unary_case("leaky_relu_alpha_above_1", "LEAKY_RELU", (2, 128), (0.02, 0), (0.1, 30), 2,
                   leaky_relu_options(1.7), edge_inputs="all_int8"),
    ]


def all_cases() -> list[Case]:
    return [*softmax_cases(), *pad_cases(), *reduce_cases(), *quantize_cases(), *activation_cases()]


def write_cases(cases: list[Case], out_dir: Path) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for case in cases:
        data = build_model(case)
        (out_dir / f"{case.name}.tflite").write_bytes(data)
        entries.append({"name": case.name, "ops": [op.op for op in case.ops],
                        "references": list(case.references), "edge_inputs": case.edge_inputs,
                        **({"note": case.note} if case.note else {})})
        log.info("%-36s %6d bytes  %s", case.name, len(data), ", ".join(op.op for op in case.ops))
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--only", default=None, help="write only cases whose name matches this regex")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cases = all_cases()
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    else:
        for stale in args.out.glob("*.tflite"):
            stale.unlink()
    entries = write_cases(cases, args.out)
    if not args.only:
        (args.out / "manifest.json").write_text(json.dumps({"models": entries}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
