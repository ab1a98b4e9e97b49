"""The specialized kernels against the portable ones and the reference interpreter.

One graph contains many independent layers, each with its own input and output, with shapes chosen
to reach every specialized path and its edges: channel counts that are not multiples of 4, odd
widths and pixel counts, padding on every border, strides, dilations, depth multipliers, dead
channels, every clamp range and both rounding modes. The graph is compiled twice, with the
portable kernels and with the specialized ones, and both must give the same bytes on the host
(plain C bodies) and in QEMU (DSP bodies on Cortex-M4 and M7, MVE on Cortex-M55, plain C on
Cortex-M3). The portable kernels are the oracle: tests/test_ops.py and test_models_host.py check
them against the reference interpreters. The real models run in QEMU against TFLM directly.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from tinycompile import ir
from tinycompile.codegen.emit import write_model
from tinycompile.codegen.ops.common import output_size
from tinycompile.compiler import CompileOptions, CompiledModel, compile_graph
from tinycompile.deploy import build_firmware, load_board, run_firmware
from tinycompile.errors import TinyCompileError
from tinycompile.simulate import simulate_model
from tinycompile.verify import random_samples, run_generated

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc is not installed")

ACTIVATIONS = [ir.Activation.NONE, ir.Activation.RELU, ir.Activation.RELU6, ir.Activation.RELU_N1_TO_1]


@dataclass
class _Builder:
    """Adds independent single-op cases to one graph."""

    rng: np.random.Generator
    tensors: list[ir.Tensor] = field(default_factory=list)
    operators: list[ir.Operator] = field(default_factory=list)
    inputs: list[ir.Tensor] = field(default_factory=list)
    outputs: list[ir.Tensor] = field(default_factory=list)

    def tensor(self, name: str, shape, dtype=ir.DType.INT8, quant=None, data=None) -> ir.Tensor:
        t = ir.Tensor(len(self.tensors), name, tuple(shape), dtype, quant, data)
        self.tensors.append(t)
        return t

    def activation_quant(self, zero_point: int | None = None, scale: float | None = None) -> ir.Quantization:
        scale = float(self.rng.uniform(0.01, 0.1)) if scale is None else scale
        zp = int(self.rng.integers(-128, 100)) if zero_point is None else zero_point
        return ir.Quantization(np.array([scale], np.float32), np.array([zp], np.int64))

    def op(self, op_type: str, inputs: list[ir.Tensor | None], out_shape, attrs, out_quant=None) -> ir.Tensor:
        name = f"case{len(self.operators)}_{op_type.lower()}"
        y = self.tensor(name, out_shape, quant=out_quant or self.activation_quant())
        self.operators.append(ir.Operator(len(self.operators), op_type, inputs, [y], attrs))
        for t in inputs:
            if t is not None and not t.is_constant and t not in self.inputs:
                self.inputs.append(t)
        self.outputs.append(y)
        return y

    def weights(self, shape, channels: int, axis: int, dead: int = 0, per_channel: bool = True) -> ir.Tensor:
        data = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        scale = self.rng.uniform(0.002, 0.02, size=channels if per_channel else 1).astype(np.float32)
        if dead:
            # Dead channels, as pruned models have: all-zero weights with a vanishing scale.
            index = [slice(None)] * len(shape)
            index[axis] = slice(0, dead)
            data[tuple(index)] = 0
            scale[:dead] = 1e-12
        quant = ir.Quantization(scale, np.zeros(scale.size, np.int64), axis)
        return self.tensor("w", shape, quant=quant, data=data)

    def bias(self, channels: int, x_quant, w_quant) -> ir.Tensor:
        data = self.rng.integers(-20000, 20000, size=channels).astype(np.int32)
        scale = (x_quant.scale[0] * w_quant.scale).astype(np.float32)
        return self.tensor("b", (channels,), ir.DType.INT32,
                           ir.Quantization(scale, np.zeros(scale.size, np.int64)), data)

    def conv(self, batch, h, w, in_c, out_c, kh, kw, stride=(1, 1), dilation=(1, 1), padding=ir.Padding.SAME,
             activation=ir.Activation.NONE, bias=True, dead=0, per_channel=True, out_scale=None):
        x = self.tensor("x", (batch, h, w, in_c), quant=self.activation_quant())
        wt = self.weights((out_c, kh, kw, in_c), out_c, 0, dead, per_channel)
        b = self.bias(out_c, x.quant, wt.quant) if bias else None
        oh = output_size(padding, h, kh, stride[0], dilation[0])
        ow = output_size(padding, w, kw, stride[1], dilation[1])
        attrs = ir.Conv2DAttrs(stride[0], stride[1], dilation[0], dilation[1], padding, activation)
        self.op("CONV_2D", [x, wt, b], (batch, oh, ow, out_c), attrs, self.activation_quant(scale=out_scale))

    def depthwise(self, batch, h, w, channels, multiplier, kh, kw, stride=(1, 1), dilation=(1, 1),
                  padding=ir.Padding.SAME, activation=ir.Activation.NONE, bias=True, dead=0):
        out_c = channels * multiplier
        x = self.tensor("x", (batch, h, w, channels), quant=self.activation_quant())
        wt = self.weights((1, kh, kw, out_c), out_c, 3, dead)
        b = self.bias(out_c, x.quant, wt.quant) if bias else None
        oh = output_size(padding, h, kh, stride[0], dilation[0])
        ow = output_size(padding, w, kw, stride[1], dilation[1])
        attrs = ir.DepthwiseConv2DAttrs(stride[0], stride[1], dilation[0], dilation[1], padding, activation,
                                        multiplier)
        self.op("DEPTHWISE_CONV_2D", [x, wt, b], (batch, oh, ow, out_c), attrs)

    def fully_connected(self, batches, in_features, out_features, activation=ir.Activation.NONE, bias=True,
                        per_channel=True):
        x = self.tensor("x", (batches, in_features), quant=self.activation_quant())
        wt = self.weights((out_features, in_features), out_features, 0, per_channel=per_channel)
        b = self.bias(out_features, x.quant, wt.quant) if bias else None
        self.op("FULLY_CONNECTED", [x, wt, b], (batches, out_features), ir.FullyConnectedAttrs(activation))

    def pool(self, op_type, batch, h, w, channels, kh, kw, stride, padding, activation=ir.Activation.NONE):
        x = self.tensor("x", (batch, h, w, channels), quant=self.activation_quant())
        oh = output_size(padding, h, kh, stride[0])
        ow = output_size(padding, w, kw, stride[1])
        attrs = ir.Pool2DAttrs(kh, kw, stride[0], stride[1], padding, activation)
        self.op(op_type, [x], (batch, oh, ow, channels), attrs, x.quant)

    def binary(self, op_type, shape1, shape2, activation=ir.Activation.NONE):
        a = self.tensor("a", shape1, quant=self.activation_quant())
        b = self.tensor("b", shape2, quant=self.activation_quant())
        out = tuple(np.broadcast_shapes(shape1, shape2))
        self.op(op_type, [a, b], out, ir.ActivationAttrs(activation))

    def graph(self, name: str) -> ir.Graph:
        return ir.Graph(name, self.tensors, self.operators, self.inputs, self.outputs)


def edge_cases(seed: int = 1) -> ir.Graph:
    """Layers that reach every specialized path and its edges (see the module docstring)."""
    g = _Builder(np.random.default_rng(seed))
    V, S = ir.Padding.VALID, ir.Padding.SAME
    # Convolution as matrix multiply: 1x1 read in place (aligned and unaligned rows, k % 8 odd
    # groups, odd pixel counts), im2col with in_c % 4 == 0 (taps expanded straight from the
    # input) and != 0 (staged bytes), padding on all borders, strides, dilations, batches.
    g.conv(1, 5, 7, 8, 6, 1, 1)                       # 1x1, aligned, 35 pixels (odd)
    g.conv(1, 3, 3, 5, 3, 1, 1, activation=ACTIVATIONS[1])  # unaligned rows, odd out_c
    g.conv(2, 4, 3, 12, 7, 1, 1)                      # 12: odd group count, batch 2
    g.conv(1, 6, 5, 4, 4, 1, 1, stride=(2, 2))        # 1x1 stride 2: gathered rows
    g.conv(1, 7, 6, 16, 9, 3, 3, activation=ACTIVATIONS[2])
    g.conv(1, 5, 5, 3, 8, 3, 3, stride=(2, 2), padding=V)
    g.conv(1, 9, 6, 1, 5, 4, 3, stride=(2, 1))        # in_c 1, tall filter, padding both sides
    g.conv(2, 6, 7, 4, 2, 3, 3, dilation=(2, 2))
    g.conv(1, 5, 6, 6, 3, 2, 5, stride=(1, 3), dilation=(1, 1))
    g.conv(1, 1, 1, 24, 5, 1, 1, bias=False)          # one pixel, no bias
    g.conv(1, 4, 4, 8, 6, 3, 3, dead=2, activation=ACTIVATIONS[3])  # dead channels, relu_n1_to_1
    g.conv(1, 4, 5, 8, 4, 3, 3, per_channel=False, out_scale=0.0002)  # large multipliers: exact path
    # Depthwise: 3x3 unrolled (in_c % 4 == 0), channel tails, strides with odd sizes, dilation,
    # other filter sizes, multiplier > 1 with one input channel (a convolution) and with several
    # (portable), batches, dead channels.
    g.depthwise(1, 6, 7, 8, 1, 3, 3)
    g.depthwise(1, 5, 5, 6, 1, 3, 3, activation=ACTIVATIONS[1])
    g.depthwise(1, 7, 9, 3, 1, 3, 3, stride=(2, 2))
    g.depthwise(2, 6, 6, 12, 1, 3, 3, stride=(2, 2), padding=V)
    g.depthwise(1, 8, 7, 5, 1, 3, 3, dilation=(2, 2), activation=ACTIVATIONS[2])
    g.depthwise(1, 6, 5, 4, 1, 5, 3, stride=(1, 2))
    g.depthwise(1, 5, 6, 7, 1, 1, 1)
    g.depthwise(1, 9, 9, 1, 8, 3, 3, stride=(2, 2), padding=V)
    g.depthwise(1, 5, 4, 3, 2, 3, 3)
    g.depthwise(1, 4, 4, 16, 1, 3, 3, dead=5, bias=False)
    # Fully connected: four-row blocks and remainders, ragged in_features, batches.
    g.fully_connected(1, 37, 11)
    g.fully_connected(3, 8, 4, activation=ACTIVATIONS[1])
    g.fully_connected(2, 64, 5, bias=False, per_channel=False)
    g.fully_connected(1, 3, 1)
    # Pooling: channel tails, padding, windows larger than 256 values (int32 sums).
    g.pool("AVERAGE_POOL_2D", 1, 7, 6, 8, 3, 3, (2, 2), S)
    g.pool("AVERAGE_POOL_2D", 2, 5, 5, 5, 2, 2, (1, 1), S, ACTIVATIONS[2])
    g.pool("AVERAGE_POOL_2D", 1, 17, 16, 4, 17, 16, (1, 1), V)
    g.pool("MAX_POOL_2D", 1, 7, 6, 12, 3, 3, (2, 2), S, ACTIVATIONS[1])
    g.pool("MAX_POOL_2D", 1, 5, 4, 3, 2, 3, (1, 2), S)
    # Element-wise: same shapes, scalars, broadcast rows and columns, every clamp.
    g.binary("ADD", (1, 4, 5, 6), (1, 4, 5, 6))
    g.binary("ADD", (1, 3, 4, 8), (8,), ACTIVATIONS[1])
    g.binary("SUB", (2, 3, 5), (1, 1, 1))
    g.binary("SUB", (1, 3, 1, 4), (1, 3, 5, 4), ACTIVATIONS[2])
    g.binary("MUL", (1, 4, 4, 3), (1, 4, 4, 3))
    g.binary("MUL", (2, 1, 6), (2, 5, 1), ACTIVATIONS[3])
    return g.graph("fast_kernel_cases")


# Kernels the optimized build must use, so the test fails if a specialization stops applying.
EXPECTED_KERNELS = {"tc_fast_conv_s8", "tc_fast_depthwise_conv2d_s8", "tc_fast_fully_connected_s8",
                    "tc_fast_avg_pool2d_s8", "tc_fast_max_pool2d_s8", "tc_fast_add_s8", "tc_fast_mul_s8"}


def _compile(graph: ir.Graph, kernels: str, rounding: str = "tflm", inplace: str = "auto") -> CompiledModel:
    return compile_graph(graph, CompileOptions(kernels=kernels, rounding=rounding, inplace=inplace))


def _samples(graph: ir.Graph, count: int) -> list[list[np.ndarray]]:
    samples = random_samples(graph, count, seed=3)
    # The extremes of int8 on every input, where accumulators and clamps are largest.
    samples.append([np.full(t.shape, -128, np.int8) for t in graph.inputs])
    samples.append([np.full(t.shape, 127, np.int8) for t in graph.inputs])
    return samples


def _host_outputs(compiled: CompiledModel, samples) -> list[list[np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix="tc-fast-") as tmp:
        return run_generated(compiled, samples, Path(tmp))


def _assert_same(got, want, graph: ir.Graph, where: str) -> None:
    for s, (outs_got, outs_want) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(outs_got, outs_want)):
            differ = int(np.count_nonzero(np.asarray(a) != np.asarray(b)))
            assert differ == 0, (f"{where}: sample {s}, layer {graph.operators[i].index} "
                                 f"({graph.operators[i].op_type}): {differ} of {a.size} outputs differ")


@pytest.fixture(scope="module")
def cases() -> ir.Graph:
    return edge_cases()


@pytest.fixture(scope="module")
def portable_outputs(cases):
    samples = _samples(cases, 3)
    return samples, _host_outputs(_compile(cases, "portable"), samples)


def test_every_specialization_is_selected(cases):
    optimized = _compile(cases, "optimized")
    used = {layer.kernel for layer in optimized.layers}
    assert EXPECTED_KERNELS <= used, f"not selected: {sorted(EXPECTED_KERNELS - used)}"
    # Depth multiplier 2 on several input channels keeps the portable kernel.
    assert "tc_depthwise_conv2d_s8" in used
    portable = _compile(cases, "portable")
    assert not any(layer.kernel.startswith("tc_fast_") for layer in portable.layers)
    modes = {layer.args[0].fields["out"].fields["mode"] for layer in optimized.layers
             if layer.kernel.startswith("tc_fast_") and "out" in layer.args[0].fields}
    assert modes == {0, 1, 2} or modes >= {1, 2}, f"output stage modes used: {modes}"


@pytest.mark.parametrize("kernels", ["optimized", "compact"])
def test_host_matches_portable(cases, portable_outputs, kernels):
    samples, want = portable_outputs
    got = _host_outputs(_compile(cases, kernels), samples)
    _assert_same(got, want, cases, f"host, {kernels}")


def test_compact_halves_convolution_weights(cases):
    def weight_bytes(kernels: str) -> int:
        compiled = _compile(cases, kernels)
        return sum(layer.args[0].fields["weights"].values.nbytes for layer in compiled.layers
                   if layer.kernel == "tc_fast_conv_s8")

    assert 2 * weight_bytes("compact") == weight_bytes("optimized")


def test_host_matches_portable_in_place(cases, portable_outputs):
    samples, want = portable_outputs
    compiled = _compile(cases, "optimized", inplace="all")
    inplace = {compiled.layers[step].kernel for step in compiled.buffers.inplace}
    assert "tc_fast_depthwise_conv2d_s8" in inplace, f"in-place kernels: {sorted(inplace)}"
    assert "tc_fast_add_s8" in inplace, f"in-place kernels: {sorted(inplace)}"
    _assert_same(_host_outputs(compiled, samples), want, cases, "host, in place")


def test_host_matches_portable_single_rounding(cases):
    samples = _samples(cases, 2)
    want = _host_outputs(_compile(cases, "portable", rounding="litert"), samples)
    got = _host_outputs(_compile(cases, "optimized", rounding="litert"), samples)
    _assert_same(got, want, cases, "host, single rounding")


def test_arena_grows_at_most_by_scratch(cases):
    portable = _compile(cases, "portable")
    optimized = _compile(cases, "optimized")
    scratch = max((sum(s.nbytes for s in layer.scratch) for layer in optimized.layers), default=0)
    assert optimized.arena_size <= portable.arena_size + scratch + 16


def test_invalid_kernel_choice_is_rejected():
    with pytest.raises(TinyCompileError, match="invalid kernel choice 'fast'"):
        CompileOptions(kernels="fast")


# TC_FAST_NO_ASM runs the C intrinsics bodies that otherwise only handle leftover pixels and channels.
QEMU_CASES = [("qemu-m3", "optimized", ()), ("qemu-m4", "optimized", ()), ("qemu-m7", "optimized", ()),
              ("qemu-m33", "optimized", ()), ("qemu-m55", "optimized", ()), ("qemu-m4", "compact", ()),
              ("qemu-m55", "compact", ()), ("qemu-m4", "optimized", ("TC_FAST_NO_ASM",)),
              ("qemu-m4", "compact", ("TC_FAST_NO_ASM",))]


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board,kernels,defines", QEMU_CASES,
                         ids=[f"{b}-{k}{'-no-asm' if d else ''}" for b, k, d in QEMU_CASES])
def test_qemu_matches_portable(board, kernels, defines, cases, portable_outputs, tmp_path):
    samples, want = portable_outputs
    compiled = _compile(cases, kernels)
    target = load_board(board)
    model_dir = write_model(compiled, tmp_path / "model")
    image = build_firmware(model_dir, target, tmp_path / "build", defines=defines)
    raw = [b"".join(np.ascontiguousarray(x).tobytes() for x in sample) for sample in samples]
    size = sum(t.nbytes for t in cases.outputs)
    run = run_firmware(image, target, raw, size, timeout=120)
    got = []
    for blob in run.outputs:
        outs, offset = [], 0
        for t in cases.outputs:
            outs.append(np.frombuffer(blob, np.int8, t.num_elements, offset).reshape(t.shape))
            offset += t.nbytes
        got.append(outs)
    _assert_same(got, want, cases, f"{board}, {kernels}")


KWS = "mlperf_tiny/kws_ref_model.tflite"
REAL_MODELS = [
    ("qemu-m4", "mlperf_tiny/vww_96_int8.tflite"),
    ("qemu-m7", "mlperf_tiny/pretrainedResnet_quant.tflite"),
    ("qemu-m55", "tflm/person_detection/person_detect.tflite"),
    ("qemu-m3", "mlperf_tiny/ad01_int8.tflite"),
]


@needs_qemu
@pytest.mark.qemu
@pytest.mark.parametrize("board,model", [(board, KWS) for board in ("qemu-m3", "qemu-m4", "qemu-m7", "qemu-m55")]
                         + REAL_MODELS, ids=lambda value: Path(value).stem)
def test_real_model_bit_exact_in_qemu(board, model):
    path = shared_model(model)
    result = simulate_model(path, board=board, samples=2, seed=0, compile_options=CompileOptions(kernels="optimized"))
    assert result.ok, f"{path.name} on {board}: {[o.mismatches for o in result.outputs]} outputs differ"
    if board != "qemu-m3":
        # Portable C runs on Cortex-M3; elsewhere the specialized bodies must win.
        assert result.instructions_per_mac < 3.0, f"{path.name} on {board}: {result.instructions_per_mac:.2f}"
