"""Bit-exact checks of SOFTMAX, PAD, MEAN, SUM, QUANTIZE, DEQUANTIZE and the activations.

tools/make_kernel_models.py writes the single-op models in tests/models/kernels and their
manifest.json. Each model is compiled and its generated C runs on the host. Every output element
must equal the reference interpreter's, for each reference that the manifest lists: TFLM lacks
RELU_N1_TO_1 and int64 paddings, and LiteRT's reference int8 SUM is wrong.

Besides random samples, each model gets edge inputs for its op: equal and extreme logits for
SOFTMAX, all 256 int8 values for element-wise maps, and floats exactly halfway between two
quantization steps for QUANTIZE.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from tinycompile import compiler, ir
from tinycompile.codegen.lowering import LoweringOptions, lower_operator
from tinycompile.compiler import load_model
from tinycompile.errors import UnsupportedModelError
from tinycompile.passes.validate import validate_graph
from tinycompile.verify import verify_model

MODELS_DIR = Path(__file__).parent / "models" / "kernels"
MANIFEST = json.loads((MODELS_DIR / "manifest.json").read_text())["models"]
CASES = [(entry, reference) for entry in MANIFEST for reference in entry["references"]]


def softmax_edge_samples(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Rows of equal logits, one huge logit among tiny ones, two maxima, and alternating extremes."""
    depth = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    samples = [np.full(shape, v, np.int8) for v in (127, 0, -128)]
    one_hot = np.full((rows, depth), -128, np.int8)
    one_hot[np.arange(rows), np.arange(rows) % depth] = 127
    two_max = np.full((rows, depth), -100, np.int8)
    two_max[:, 0] = 90
    two_max[:, -1] = 90
    alternating = np.where(np.arange(rows * depth) % 2 == 0, 127, -128).astype(np.int8)
    ramp = ((np.arange(rows * depth) * 7) % 256 - 128).astype(np.int8)
    samples += [one_hot.reshape(shape), two_max.reshape(shape), alternating.reshape(shape), ramp.reshape(shape)]
    return samples


def all_int8_samples(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Every int8 value, in order and reversed, repeated to fill the input."""
    size = int(np.prod(shape, dtype=np.int64))
    values = np.arange(-128, 128, dtype=np.int16)
    forward = np.resize(values, size).astype(np.int8).reshape(shape)
    return [forward, forward[..., ::-1].copy()]


def halfway_float_samples(shape: tuple[int, ...], scale: float, zero_point: int) -> list[np.ndarray]:
    """Floats at (k + 1/2) steps from the zero point, one ulp either side, and far out of range.

    The far values stay below 2^31 steps: the references convert x / scale to int32 with a C++
    cast, which is undefined beyond that.
    """
    size = int(np.prod(shape, dtype=np.int64))
    steps = np.arange(-150, 150, dtype=np.float64) - zero_point
    halfway = ((steps + 0.5) * np.float32(scale)).astype(np.float32)
    far = np.array([1e3, -1e3, 1e6, -1e6, 2e9, -2e9], np.float64) * scale
    values = np.concatenate([
        halfway,
        np.nextafter(halfway, np.float32(np.inf)),
        np.nextafter(halfway, np.float32(-np.inf)),
        np.array([0.0, -0.0], np.float32),
        far.astype(np.float32),
    ])
    chunks = [np.resize(values[i:], size) for i in range(0, len(values), size)]
    return [chunk.astype(np.float32).reshape(shape) for chunk in chunks]


def edge_samples(entry: dict, graph: ir.Graph) -> list[np.ndarray]:
    x = graph.inputs[0]
    kind = entry["edge_inputs"]
    if kind == "softmax":
        return softmax_edge_samples(x.shape)
    if kind == "all_int8":
        return all_int8_samples(x.shape)
    if kind == "float_halfway":
        y = graph.operators[0].outputs[0]
        return halfway_float_samples(x.shape, y.quant.scalar_scale, y.quant.scalar_zero_point)
    assert kind == "none", f"unknown edge input kind {kind}"
    return []


def validate_allowing_int16_softmax(graph: ir.Graph) -> None:
    """The validator without its rule against int16 activations, for int8 -> int16 SOFTMAX only."""
    other_ops = [op for op in graph.operators
                 if not (op.op_type == "SOFTMAX" and op.outputs[0].dtype == ir.DType.INT16)]
    if other_ops:
        validate_graph(dataclasses.replace(graph, operators=other_ops))


def test_manifest_lists_every_model():
    listed = {entry["name"] for entry in MANIFEST}
    on_disk = {path.stem for path in MODELS_DIR.glob("*.tflite")}
    assert len(listed) == len(MANIFEST)
    assert listed == on_disk


@pytest.mark.parametrize("entry,reference", CASES, ids=[f"{e['name']}-{r}" for e, r in CASES])
def test_kernel_model_bit_exact(entry, reference, tmp_path, monkeypatch):
    path = MODELS_DIR / f"{entry['name']}.tflite"
    graph = load_model(path)
    if any(op.op_type == "SOFTMAX" and op.outputs[0].dtype == ir.DType.INT16 for op in graph.operators):
        monkeypatch.setattr(compiler, "validate_graph", validate_allowing_int16_softmax)
    inputs = []
    for index, sample in enumerate(edge_samples(entry, graph)):
        inputs.append(tmp_path / f"edge{index}.npy")
        np.save(inputs[-1], sample)
    result = verify_model(path, rounding=reference, samples=5, seed=1, inputs=inputs)
    assert result.samples == 5 + len(inputs)
    for output in result.outputs:
        assert output.elements > 0
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} elements differ, max {output.max_abs_diff}"


def test_relu_model_tells_the_references_apart(tmp_path):
    """Code compiled for one reference differs from the other on the RELU whose scale ratio rounds
    to different multipliers in float (LiteRT) and double (TFLM): the models are discriminating."""
    path = MODELS_DIR / "relu_scale_ratio_rounding.tflite"
    files = []
    for index, sample in enumerate(all_int8_samples(load_model(path).inputs[0].shape)):
        files.append(tmp_path / f"sample{index}.npy")
        np.save(files[-1], sample)
    for code, other in (("tflm", "litert"), ("litert", "tflm")):
        result = verify_model(path, rounding=code, reference=other, samples=0, inputs=files)
        assert 0 < result.outputs[0].mismatches <= 4


# Rejections: each error names the operator and the problem.


def _tensor(index: int, name: str, shape, dtype=ir.DType.INT8, scale=0.05, zero_point=0, data=None) -> ir.Tensor:
    quant = None
    if scale is not None:
        quant = ir.Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))
    return ir.Tensor(index, name, tuple(shape), dtype, quant, None if data is None else np.asarray(data))


def _reject(op: ir.Operator, rounding: str = "tflm") -> str:
    with pytest.raises(UnsupportedModelError) as error:
        lower_operator(op, LoweringOptions(rounding=rounding))
    message = str(error.value)
    assert "\n" not in message
    assert op.describe() in message
    return message


def test_pad_rejects_computed_paddings():
    x = _tensor(0, "x", (1, 4))
    paddings = _tensor(1, "paddings", (2, 2), ir.DType.INT32, scale=None)
    y = _tensor(2, "y", (1, 6))
    assert "constant" in _reject(ir.Operator(0, "PAD", [x, paddings], [y]))


def test_pad_rejects_negative_paddings_and_wrong_output():
    x = _tensor(0, "x", (1, 4))
    negative = _tensor(1, "paddings", (2, 2), ir.DType.INT32, scale=None, data=[[0, 0], [-1, 0]])
    assert "negative" in _reject(ir.Operator(0, "PAD", [x, negative], [_tensor(2, "y", (1, 3))]))
    paddings = _tensor(1, "paddings", (2, 2), ir.DType.INT32, scale=None, data=[[0, 0], [1, 2]])
    assert "[1, 7]" in _reject(ir.Operator(0, "PAD", [x, paddings], [_tensor(2, "y", (1, 6))]))


def test_pad_rejects_requantizing_output():
    x = _tensor(0, "x", (1, 4), zero_point=3)
    paddings = _tensor(1, "paddings", (2, 2), ir.DType.INT32, scale=None, data=[[0, 0], [1, 1]])
    assert "quantized differently" in _reject(ir.Operator(0, "PAD", [x, paddings], [_tensor(2, "y", (1, 6))]))


def test_softmax_rejects_wrong_output_quantization():
    x = _tensor(0, "x", (1, 10))
    y = _tensor(1, "y", (1, 10), scale=1.0 / 128, zero_point=0)
    assert "1/256" in _reject(ir.Operator(0, "SOFTMAX", [x], [y], ir.SoftmaxAttrs(beta=1.0)))


def test_softmax_rejects_beta_too_small_for_fixed_point():
    x = _tensor(0, "x", (1, 10), scale=1e-9)
    y = _tensor(1, "y", (1, 10), scale=1.0 / 256, zero_point=-128)
    assert "too small" in _reject(ir.Operator(0, "SOFTMAX", [x], [y], ir.SoftmaxAttrs(beta=1e-3)))


def test_mean_rejects_computed_axes_and_bad_axis():
    x = _tensor(0, "x", (2, 3, 4))
    y = _tensor(2, "y", (2, 4))
    computed = _tensor(1, "axis", (1,), ir.DType.INT32, scale=None)
    assert "constant" in _reject(ir.Operator(0, "MEAN", [x, computed], [y], ir.ReducerAttrs(keep_dims=False)))
    out_of_range = _tensor(1, "axis", (1,), ir.DType.INT32, scale=None, data=[3])
    assert "out of range" in _reject(ir.Operator(0, "MEAN", [x, out_of_range], [y], ir.ReducerAttrs()))


def test_quantize_rejects_unsupported_types():
    x = _tensor(0, "x", (4,), ir.DType.INT32, scale=None)
    assert "int32" in _reject(ir.Operator(0, "QUANTIZE", [x], [_tensor(1, "y", (4,))]))
    y = _tensor(1, "y", (4,), ir.DType.INT32, scale=None)
    assert "float32" in _reject(ir.Operator(0, "DEQUANTIZE", [_tensor(0, "x", (4,))], [y]))


def test_tflm_relu6_clamps_without_rescaling():
    """TFLM's RELU6 keeps input values and clamps them to the input's quantized [0, 6]."""
    x = _tensor(0, "x", (8,), scale=0.05, zero_point=-20)
    y = _tensor(1, "y", (8,), scale=0.1, zero_point=5)
    layer = lower_operator(ir.Operator(0, "RELU6", [x], [y]), LoweringOptions(rounding="tflm"))
    params = layer.args[0].fields
    assert layer.kernel == "tc_clamp_s8"
    assert (params["act_min"], params["act_max"]) == (-20, 100)
    layer = lower_operator(ir.Operator(0, "RELU6", [x], [y]), LoweringOptions(rounding="litert"))
    assert layer.kernel == "tc_requantize_s8"
    assert (layer.args[0].fields["act_min"], layer.args[0].fields["act_max"]) == (5, 65)


@pytest.mark.parametrize("relative", [
    "mlperf_tiny/kws_ref_model.tflite",
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/pretrainedResnet_quant.tflite",
    "tflm/person_detection/person_detect.tflite",
])
def test_real_models_with_softmax_match_tflm(relative):
    result = verify_model(shared_model(relative), rounding="tflm", samples=3)
    assert all(output.mismatches == 0 for output in result.outputs)
