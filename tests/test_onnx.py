"""ONNX import: the ONNX backend node tests, whole quantized models, errors, and TFLite parity.

Whole models are built here with onnx.helper, quantized with onnxruntime's quantize_static in QDQ
and QOperator form, compiled, run on the host and compared with ONNX Runtime (graph
optimizations off) within the default tolerance of one quantization step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # noqa: E402
                                      quantize_static)

from conftest import REPO, SHARED_MODELS, run_cli  # noqa: E402
from tinycompile.compiler import compile_graph, load_model  # noqa: E402
from tinycompile.errors import TinyCompileError  # noqa: E402
from tinycompile.frontends.onnx import (OnnxDynamicShapeError, OnnxExternalDataError,  # noqa: E402
                                        OnnxFloatModelError, OnnxUnsupportedOpError)
from tinycompile.verify import verify_model  # noqa: E402

NODE_TESTS = REPO.parent / "shared" / "models" / "onnx_node_tests"
SEED = 0
SAMPLES = 12

# Node tests whose graph inputs beyond these positions are weights, scales or zero points: the
# test turns them into initializers, as a deployed model has them.
DATA_INPUTS = {"Add": 2, "Mul": 2}

# Node tests outside the supported set, with the error that each must raise.
OUT_OF_SCOPE = {
    "test_dynamicquantizelinear": (OnnxFloatModelError, "dynamically quantized"),
    "test_dequantizelinear_axis": (TinyCompileError, "per axis"),
}


# ---- helpers ------------------------------------------------------------------------------------


def read_pb(path: Path) -> np.ndarray:
    tensor = TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def node_test_dirs() -> list[Path]:
    if not NODE_TESTS.is_dir():
        return []
    return sorted(p for p in NODE_TESTS.iterdir() if (p / "model.onnx").is_file())


def freeze_node_test(folder: Path, out: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """Turn a node test's non-data inputs into initializers; return the model, its inputs and outputs."""
    model = onnx.load(str(folder / "model.onnx"))
    data = folder / "test_data_set_0"
    inputs = [read_pb(data / f"input_{i}.pb") for i in range(len(model.graph.input))]
    outputs = [read_pb(p) for p in sorted(data.glob("output_*.pb"))]
    keep = DATA_INPUTS.get(model.graph.node[0].op_type, 1)
    graph_inputs = list(model.graph.input)
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs[:keep])
    for value, array in zip(graph_inputs[keep:], inputs[keep:]):
        model.graph.initializer.append(numpy_helper.from_array(array, value.name))
    onnx.save(model, str(out))
    return out, inputs[:keep], outputs


class ArrayReader(CalibrationDataReader):
    def __init__(self, name: str, batches: list[np.ndarray]):
        self.name = name
        self.batches = iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.name: batch}


def quantize(float_model: Path, out: Path, shape, quant_format, activation_type, per_channel=True) -> Path:
    rng = np.random.default_rng(SEED)
    batches = [rng.standard_normal(shape).astype(np.float32) for _ in range(8)]
    quantize_static(str(float_model), str(out), ArrayReader("x", batches), quant_format=quant_format,
                    per_channel=per_channel, activation_type=activation_type, weight_type=QuantType.QInt8)
    return out


def weights(rng, name: str, shape, scale: float = 0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def save_float_model(path: Path, nodes, x_shape, y_shape, initializers, opset: int = 17) -> Path:
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def cnn_model(path: Path) -> Path:
    """A small CNN: strided conv with PyTorch padding, residual add, depthwise, pools, Gemm, Softmax."""
    rng = np.random.default_rng(SEED)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r2"]),
        helper.make_node("Conv", ["r2", "wd", "bd"], ["d1"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Clip", ["d1", "lo", "hi"], ["d2"]),
        helper.make_node("Concat", ["d2", "r2"], ["cat"], axis=1),
        helper.make_node("MaxPool", ["cat"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("AveragePool", ["p1"], ["p2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["p2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    initializers = [weights(rng, "w1", [8, 3, 3, 3]), weights(rng, "b1", [8], 0.1),
                    weights(rng, "w2", [8, 8, 3, 3]), weights(rng, "b2", [8], 0.1),
                    weights(rng, "wd", [8, 1, 3, 3]), weights(rng, "bd", [8], 0.1),
                    numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(6.0), "hi"),
                    weights(rng, "wf", [10, 16]), weights(rng, "bf", [10], 0.1)]
    return save_float_model(path, nodes, [1, 3, 16, 16], [1, 10], initializers)


def mlp_model(path: Path) -> Path:
    """An MLP: MatMul + bias Add, Gemm with Relu, and a Mul by a constant."""
    rng = np.random.default_rng(SEED + 1)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"]),
        helper.make_node("Mul", ["h2", "s"], ["y"]),
    ]
    initializers = [weights(rng, "w1", [32, 24]), weights(rng, "b1", [24], 0.1), weights(rng, "w2", [24, 10]),
                    weights(rng, "b2", [10], 0.1), weights(rng, "s", [10], 1.0)]
    return save_float_model(path, nodes, [4, 32], [4, 10], initializers)


def attention_model(path: Path) -> Path:
    """Single-head self-attention: Q/K/V projections, Q x K^T, Softmax, x V, output projection."""
    rng = np.random.default_rng(SEED + 2)
    tokens, dim = 8, 16
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wk"], ["k"]),
        helper.make_node("MatMul", ["x", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Mul", ["scores", "inv_sqrt"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "wo"], ["proj"]),
        helper.make_node("Add", ["proj", "x"], ["y"]),
    ]
    initializers = [weights(rng, n, [dim, dim], 0.25) for n in ("wq", "wk", "wv", "wo")]
    initializers.append(numpy_helper.from_array(np.float32(1 / np.sqrt(dim)), "inv_sqrt"))
    return save_float_model(path, nodes, [1, tokens, dim], [1, tokens, dim], initializers)


MODELS = {"cnn": (cnn_model, [1, 3, 16, 16]), "mlp": (mlp_model, [4, 32]), "attention": (attention_model, [1, 8, 16])}


@pytest.fixture(scope="module")
def quantized_models(tmp_path_factory) -> dict[tuple[str, str, str], Path]:
    """Every test model in QDQ and QOperator form, with int8 and uint8 activations."""
    folder = tmp_path_factory.mktemp("onnx_models")
    result = {}
    for name, (build, shape) in MODELS.items():
        float_model = build(folder / f"{name}_float.onnx")
        for form, quant_format in (("qdq", QuantFormat.QDQ), ("qop", QuantFormat.QOperator)):
            for act_name, act_type in (("s8", QuantType.QInt8), ("u8", QuantType.QUInt8)):
                out = folder / f"{name}_{form}_{act_name}.onnx"
                result[(name, form, act_name)] = quantize(float_model, out, shape, quant_format, act_type)
    return result


def assert_within_tolerance(result) -> None:
    assert result.samples >= SAMPLES
    for output in result.outputs:
        assert output.mismatches == 0, (f"{output.name}: {output.mismatches} of {output.elements} differ by more "
                                        f"than {result.tolerance} step (max |diff| {output.max_abs_diff})")


# ---- node tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", node_test_dirs(), ids=lambda p: p.name)
def test_node_test_matches_expected(folder: Path, tmp_path: Path):
    model, inputs, expected = freeze_node_test(folder, tmp_path / f"{folder.name}.onnx")
    if folder.name in OUT_OF_SCOPE:
        error, text = OUT_OF_SCOPE[folder.name]
        with pytest.raises(error, match=text):
            compile_graph(load_model(model))
        return
    result = verify_model(model, samples=0, extra_samples=[inputs], tolerance=0)
    for got, want in zip(result.generated[0], expected):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert result.ok, [(o.name, o.mismatches) for o in result.outputs]


def test_node_tests_present():
    if not NODE_TESTS.is_dir():
        pytest.skip(f"{NODE_TESTS} is not present")
    assert len(node_test_dirs()) >= 13


# ---- whole models --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["qdq", "qop"])
@pytest.mark.parametrize("act", ["s8", "u8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_quantized_model_verifies(quantized_models, name: str, form: str, act: str):
    result = verify_model(quantized_models[(name, form, act)], samples=SAMPLES, seed=SEED)
    assert result.reference == "onnxruntime"
    assert result.tolerance == 1.0
    assert_within_tolerance(result)


def test_qdq_cnn_op_mapping(quantized_models):
    graph = load_model(quantized_models[("cnn", "qdq", "s8")])
    op_types = [op.op_type for op in graph.operators]
    # Add and MaxPool run TFLite's kernels; convolutions, Gemm and average pools the ONNX ones.
    assert {"ADD", "MAX_POOL_2D", "ONNX_CONV", "ONNX_MATMUL", "ONNX_AVERAGE_POOL", "ONNX_SOFTMAX"} <= set(op_types)
    assert op_types.count("ONNX_CONV") == 3
    strided = next(op for op in graph.operators if op.op_type == "ONNX_CONV")
    # PyTorch-style padding of a stride-2 convolution: one row on top, which TFLite's SAME cannot express.
    assert (strided.attrs.stride_h, strided.attrs.pad_top) == (2, 1)


def test_layout_keeps_nchw_boundary(quantized_models):
    graph = load_model(quantized_models[("cnn", "qdq", "s8")])
    assert graph.inputs[0].shape == (1, 3, 16, 16)
    assert graph.inputs[0].name == "x"
    assert graph.outputs[0].name == "y"
    first_ops = [op.op_type for op in graph.operators[:2]]
    assert first_ops == ["ONNX_QUANTIZE", "TRANSPOSE"]


def test_uint8_activations_become_int8(quantized_models):
    graph = load_model(quantized_models[("cnn", "qop", "u8")])
    quantize = graph.operators[0]
    assert quantize.op_type == "ONNX_QUANTIZE"
    assert quantize.outputs[0].dtype.value == "int8"
    activations = [t for t in graph.tensors if not t.is_constant and t.dtype.value == "uint8"]
    assert activations == []


def test_cli_verify_prints_tolerance(quantized_models):
    result = run_cli("verify", quantized_models[("mlp", "qdq", "s8")], "--samples", "3")
    assert result.returncode == 0, result.stderr
    assert "tolerance 1" in result.stdout
    assert "ONNXRUNTIME" in result.stdout


def test_cli_compile_writes_c(quantized_models, tmp_path: Path):
    result = run_cli("compile", quantized_models[("attention", "qop", "s8")], "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "model.c").is_file()
    assert (tmp_path / "out" / "tc" / "tc_onnx_conv.c").is_file()


# ---- errors --------------------------------------------------------------------------------------


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_float_model_rejected(tmp_path: Path):
    model = mlp_model(tmp_path / "mlp_float.onnx")
    with pytest.raises(OnnxFloatModelError):
        load_model(model)
    assert_one_line_error(run_cli("compile", model, "-o", tmp_path / "out"), "float model", "quantize_static")


def test_unsupported_op_names_node(quantized_models, tmp_path: Path):
    model = onnx.load(str(quantized_models[("mlp", "qdq", "s8")]))
    last = model.graph.node[-1]
    model.graph.node.append(helper.make_node("Sin", [last.output[0]], ["sin_out"], name="my_sin"))
    model.graph.output[0].name = "sin_out"
    path = tmp_path / "sin.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxUnsupportedOpError):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "my_sin", "Sin", "opset 17")


def test_old_opset_rejected(tmp_path: Path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "old",
                              [helper.make_tensor_value_info("x", TensorProto.INT8, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [4])])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]), str(path))
    with pytest.raises(OnnxUnsupportedOpError, match="opset 9"):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "opset 9")


def test_dynamic_shape_needs_override(quantized_models, tmp_path: Path):
    model = onnx.load(str(quantized_models[("cnn", "qdq", "s8")]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    dims[2].dim_param = "height"
    dims[3].dim_param = "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OnnxDynamicShapeError, match="--input-shape x:1,3,1,1"):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "'x'", "--input-shape")
    result = run_cli("compile", path, "-o", tmp_path / "out", "--input-shape", "x:1,3,16,16")
    assert result.returncode == 0, result.stderr
    verified = run_cli("verify", path, "--samples", "2", "--input-shape", "x:1,3,16,16")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_input_shape_for_unknown_input(quantized_models, tmp_path: Path):
    result = run_cli("compile", quantized_models[("cnn", "qdq", "s8")], "-o", tmp_path / "out",
                     "--input-shape", "image:1,3,16,16")
    assert_one_line_error(result, "'image'", "x")


def test_missing_external_data(quantized_models, tmp_path: Path):
    model = onnx.load(str(quantized_models[("mlp", "qdq", "s8")]))
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=0)
    assert load_model(path).operators
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(OnnxExternalDataError, match="weights.bin"):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "weights.bin", "not found")


# ---- parity with TFLite ---------------------------------------------------------------------------

TF_PYTHON = REPO / ".venv-tf" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=TinyCompileError,
                   reason="tf2onnx writes MatMul followed by a float bias Add before QuantizeLinear, "
                          "a QDQ pattern the frontend does not fuse yet")
def test_tflite_and_onnx_export_plan_sizes(tmp_path: Path):
    tflite_model = SHARED_MODELS / "mlperf_tiny" / "pretrainedResnet_quant.tflite"
    if not tflite_model.is_file():
        pytest.skip(f"{tflite_model} is not present")
    if not TF_PYTHON.is_file() or subprocess.run([str(TF_PYTHON), "-c", "import tf2onnx"],
                                                capture_output=True).returncode != 0:
        pytest.skip("tf2onnx is not installed in .venv-tf")
    onnx_model = tmp_path / "resnet8.onnx"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    converted = subprocess.run([str(TF_PYTHON), "-m", "tf2onnx.convert", "--tflite", str(tflite_model),
                                "--output", str(onnx_model), "--opset", "13"],
                               capture_output=True, text=True, env=env, timeout=600)
    assert converted.returncode == 0, converted.stderr[-2000:]
    tflite_arena = compile_graph(load_model(tflite_model)).arena_size
    # tf2onnx leaves the batch dimension dynamic; fix it to the TFLite model's batch of 1.
    tflite_input = load_model(tflite_model).inputs[0]
    onnx_input = onnx.load(str(onnx_model)).graph.input[0].name
    onnx_arena = compile_graph(load_model(onnx_model, {onnx_input: tflite_input.shape})).arena_size
    assert abs(onnx_arena - tflite_arena) <= 0.05 * tflite_arena, (tflite_arena, onnx_arena)


def test_python_is_project_venv():
    # The CLI tests run `python -m tinycompile.cli` with this interpreter.
    assert Path(sys.executable).exists()


# ---- QEMU ----------------------------------------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)")
@pytest.mark.parametrize("form", ["qdq", "qop"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_model_in_qemu(quantized_models, name: str, form: str):
    from tinycompile.simulate import simulate_model

    result = simulate_model(quantized_models[(name, form, "s8")], board="qemu-m4", samples=SAMPLES)
    assert result.reference == "onnxruntime"
    assert result.tolerance == 1
    assert_within_tolerance(result)
