"""ONNX import: the ONNX backend node tests, whole quantized models, errors, and TFLite parity.

Whole models are built here with onnx.helper, quantized with onnxruntime's quantize_static in QDQ
and QOperator form, compiled, run on the host and compared with ONNX Runtime (graph
optimizations off) within the default tolerance of one quantization step.

The public int8 TFLite models exported by tf2onnx (tests/models/onnx, written by
tools/make_onnx_exports.py) must plan an arena within 5% of their TFLite originals and match
ONNX Runtime. Small hand-built models cover the tf2onnx patterns one at a time.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # noqa: E402
                                      quantize_static)

from conftest import REPO, run_cli, shared_model  # noqa: E402
from tinycompile.compiler import CompileOptions, compile_graph, load_model  # noqa: E402
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
    text = " ".join(result.stdout.split())
    assert "tolerance 1" in text
    assert "vs ONNX Runtime" in text


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


# ---- TFLite models exported by tf2onnx ---------------------------------------------------------

TF_PYTHON = REPO / ".venv-tf" / "bin" / "python"
ONNX_EXPORTS = REPO / "tests" / "models" / "onnx"
PLAN_SIZE_RTOL = 0.05
EXPORT_SAMPLES = 8


def load_export_tool():
    """Import tools/make_onnx_exports.py, which converts the models and lists them."""
    spec = importlib.util.spec_from_file_location("make_onnx_exports", REPO / "tools" / "make_onnx_exports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


EXPORT_TOOL = load_export_tool()
EXPORT_NAMES = [e.name for e in EXPORT_TOOL.EXPORTS]


def export_source(name: str) -> Path:
    export = next(e for e in EXPORT_TOOL.EXPORTS if e.name == name)
    return shared_model(export.tflite)


def compile_export(onnx_path: Path, tflite_graph, options: CompileOptions | None = None):
    """Compile an export for the TFLite model's input shape.

    tf2onnx leaves the batch dimension dynamic, so it is fixed as --input-shape would fix it.
    """
    onnx_input = onnx.load(str(onnx_path)).graph.input[0].name
    return compile_graph(load_model(onnx_path, {onnx_input: tuple(tflite_graph.inputs[0].shape)}), options)


def assert_plan_sizes_close(tflite_arena: int, onnx_arena: int, name: str) -> None:
    # Both plans use the default compile options, yet they may differ. The TFLite frontend's
    # CONV_2D runs the specialized kernels, whose im2col scratch buffer counts in the arena.
    # The ONNX frontend lowers Conv to the ONNX kernel (float requantization, as in ONNX
    # Runtime), which needs no scratch. An export may also keep layout transposes of its own.
    assert abs(onnx_arena - tflite_arena) <= PLAN_SIZE_RTOL * tflite_arena, (
        f"{name}: TFLite arena {tflite_arena} bytes, ONNX export {onnx_arena} bytes")


@pytest.mark.parametrize("name", EXPORT_NAMES)
def test_tflite_and_onnx_export_plan_sizes(name: str):
    tflite_graph = load_model(export_source(name))
    tflite_arena = compile_graph(tflite_graph).arena_size
    onnx_arena = compile_export(ONNX_EXPORTS / f"{name}.onnx", tflite_graph).arena_size
    assert_plan_sizes_close(tflite_arena, onnx_arena, name)
    # Without the scratch of the specialized kernels the two plans are the same size: the
    # export adds no tensor that the TFLite model does not have.
    portable = CompileOptions(kernels="portable")
    assert compile_export(ONNX_EXPORTS / f"{name}.onnx", tflite_graph, portable).arena_size == \
        compile_graph(tflite_graph, portable).arena_size


@pytest.mark.parametrize("name", EXPORT_NAMES)
def test_onnx_export_matches_onnxruntime(name: str):
    path = ONNX_EXPORTS / f"{name}.onnx"
    inputs = []
    if name == "kws_ds_cnn":
        inputs = [shared_model("mlperf_tiny/inputs/kws_input0_int8_49x10.bin")]
    tflite_shape = tuple(load_model(export_source(name)).inputs[0].shape)
    result = verify_model(path, samples=EXPORT_SAMPLES, inputs=inputs,
                          input_shapes={onnx.load(str(path)).graph.input[0].name: tflite_shape})
    assert result.reference == "onnxruntime"
    assert result.tolerance == 1
    assert result.samples == EXPORT_SAMPLES + len(inputs)
    for output in result.outputs:
        assert output.mismatches == 0, (f"{name} {output.name}: {output.mismatches} of {output.elements} differ by "
                                        f"more than one step (max |diff| {output.max_abs_diff})")


def test_onnx_export_lowering():
    # tf2onnx's MatMul + bias Add becomes one ONNX_MATMUL, and its Transpose of the NHWC input
    # before the first Conv costs no operator: the input already is the NHWC form of its result.
    graph = load_model(ONNX_EXPORTS / "resnet8.onnx", {"input_1_int8": (1, 32, 32, 3)})
    ops = [op.op_type for op in graph.operators]
    assert ops[0] == "ONNX_CONV"
    assert "TRANSPOSE" not in ops
    assert ops[-2:] == ["ONNX_MATMUL", "ONNX_SOFTMAX"]
    assert "ADD" in ops  # the residual additions stay
    assert graph.operators[-2].inputs[2] is not None  # the fused bias


@pytest.mark.slow
def test_tf2onnx_exports_reproduce(tmp_path: Path):
    # Converts all five models afresh in one TensorFlow process (a few seconds) and checks that
    # each compiles like its committed export in tests/models/onnx, which the tests above use.
    if not EXPORT_TOOL.tf2onnx_available(TF_PYTHON):
        pytest.skip(f"{TF_PYTHON} with tensorflow and tf2onnx is missing; the committed exports are tested instead")
    jobs = [(export_source(name), tmp_path / f"{name}.onnx") for name in EXPORT_NAMES]
    EXPORT_TOOL.convert(TF_PYTHON, jobs)
    for name, (source, fresh) in zip(EXPORT_NAMES, jobs):
        tflite_graph = load_model(source)
        tflite_arena = compile_graph(tflite_graph).arena_size
        fresh_compiled = compile_export(fresh, tflite_graph)
        committed = compile_export(ONNX_EXPORTS / f"{name}.onnx", tflite_graph)
        assert_plan_sizes_close(tflite_arena, fresh_compiled.arena_size, name)
        assert [op.op_type for op in fresh_compiled.graph.operators] == \
            [op.op_type for op in committed.graph.operators], f"{name}: regenerate with tools/make_onnx_exports.py"
        assert fresh_compiled.arena_size == committed.arena_size, name


# ---- tf2onnx patterns ----------------------------------------------------------------------------


def int8_tensor(rng, name: str, shape) -> TensorProto:
    return numpy_helper.from_array(rng.integers(-127, 128, shape).astype(np.int8), name)


def scalar(name: str, value, dtype) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def save_int8_model(path: Path, nodes, x_shape, y_shape, initializers, opset: int = 13) -> Path:
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.INT8, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, y_shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def matmul_bias_model(path: Path, bias: str, bias_shape=(10,), bias_first: bool = False,
                      bias_values: np.ndarray | None = None) -> Path:
    """int8 x -> DQ -> MatMul -> Add(bias) -> Relu -> Q, as tf2onnx writes FULLY_CONNECTED.

    `bias` is "int32" (DequantizeLinear of int32 data in scale s_x * s_w) or "float" (a float
    initializer). The bias DequantizeLinear comes after the MatMul in the file.
    """
    rng = np.random.default_rng(SEED + 3)
    s_x, s_w, s_y = 0.05, 0.02, 0.1
    values = rng.standard_normal(bias_shape).astype(np.float32) * 0.5 if bias_values is None else bias_values
    initializers = [int8_tensor(rng, "w", [16, 10]), scalar("s_x", s_x, np.float32), scalar("zp_x", 3, np.int8),
                    scalar("s_w", s_w, np.float32), scalar("zp_w", 0, np.int8), scalar("s_y", s_y, np.float32),
                    scalar("zp_y", -5, np.int8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s_x", "zp_x"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "s_w", "zp_w"], ["wf"]),
             helper.make_node("MatMul", ["xf", "wf"], ["mm"])]
    bias_nodes = []
    if bias == "int32":
        s_b = np.float32(s_x) * np.float32(s_w)
        initializers += [numpy_helper.from_array(np.rint(values / s_b).astype(np.int32), "b"),
                         scalar("s_b", s_b, np.float32), scalar("zp_b", 0, np.int32)]
        bias_nodes = [helper.make_node("DequantizeLinear", ["b", "s_b", "zp_b"], ["bf"])]
    else:
        initializers.append(numpy_helper.from_array(values, "bf"))
    nodes += bias_nodes
    nodes += [helper.make_node("Add", ["bf", "mm"] if bias_first else ["mm", "bf"], ["sum"]),
              helper.make_node("Relu", ["sum"], ["act"]),
              helper.make_node("QuantizeLinear", ["act", "s_y", "zp_y"], ["y"])]
    return save_int8_model(path, nodes, [4, 16], [4, 10], initializers)


@pytest.mark.parametrize("bias, bias_first", [("int32", False), ("float", True)])
def test_matmul_bias_add_fused(tmp_path: Path, bias: str, bias_first: bool):
    path = matmul_bias_model(tmp_path / f"mm_{bias}.onnx", bias, bias_first=bias_first)
    graph = load_model(path)
    assert [op.op_type for op in graph.operators] == ["ONNX_MATMUL"]
    assert graph.operators[0].inputs[2] is not None
    result = verify_model(path, samples=SAMPLES)
    assert_within_tolerance(result)


def test_conv_bias_add_fused(tmp_path: Path):
    # NHWC int8 input, Transpose to NCHW, Conv without bias, Add of a [C, 1, 1] float constant.
    rng = np.random.default_rng(SEED + 4)
    initializers = [int8_tensor(rng, "w", [6, 3, 3, 3]), scalar("s_x", 0.04, np.float32), scalar("zp_x", 0, np.int8),
                    numpy_helper.from_array(np.full(6, 0.01, np.float32), "s_w"),
                    numpy_helper.from_array(np.zeros(6, np.int8), "zp_w"),
                    numpy_helper.from_array(rng.standard_normal([6, 1, 1]).astype(np.float32), "b"),
                    scalar("s_y", 0.08, np.float32), scalar("zp_y", 2, np.int8)]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("DequantizeLinear", ["xt", "s_x", "zp_x"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "s_w", "zp_w"], ["wf"], axis=0),
             helper.make_node("Conv", ["xf", "wf"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["sum"]),
             helper.make_node("QuantizeLinear", ["sum", "s_y", "zp_y"], ["y"])]
    path = save_int8_model(tmp_path / "conv_bias.onnx", nodes, [1, 8, 8, 3], [1, 6, 8, 8], initializers)
    graph = load_model(path)
    # The input Transpose costs nothing; the NCHW output needs one.
    assert [op.op_type for op in graph.operators] == ["ONNX_CONV", "TRANSPOSE"]
    assert_within_tolerance(verify_model(path, samples=SAMPLES))


def test_reshape_of_int8_input_takes_its_quantization(tmp_path: Path):
    # tf2onnx turns a one-channel NHWC input into NCHW with a Reshape on the int8 data. The
    # DequantizeLinear after it gives the graph input its scale, and no byte needs to move.
    rng = np.random.default_rng(SEED + 5)
    initializers = [numpy_helper.from_array(np.asarray([1, 1, 6, 5], np.int64), "shape"),
                    int8_tensor(rng, "w", [4, 1, 3, 3]), scalar("s_x", 0.03, np.float32), scalar("zp_x", -2, np.int8),
                    scalar("s_w", 0.02, np.float32), scalar("zp_w", 0, np.int8), scalar("s_y", 0.05, np.float32),
                    scalar("zp_y", 0, np.int8)]
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["xr"]),
             helper.make_node("DequantizeLinear", ["xr", "s_x", "zp_x"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "s_w", "zp_w"], ["wf"]),
             helper.make_node("Conv", ["xf", "wf"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s_y", "zp_y"], ["y"])]
    path = save_int8_model(tmp_path / "reshape_input.onnx", nodes, [1, 6, 5, 1], [1, 4, 6, 5], initializers)
    graph = load_model(path)
    assert "TRANSPOSE" not in [op.op_type for op in graph.operators][:-1]
    assert graph.inputs[0].quant.scalar_scale == pytest.approx(0.03)
    assert_within_tolerance(verify_model(path, samples=SAMPLES))


def test_bias_add_not_per_channel_rejected(tmp_path: Path):
    path = matmul_bias_model(tmp_path / "mm_matrix_bias.onnx", "float", bias_shape=(4, 10))
    with pytest.raises(TinyCompileError, match=r"bias 'bf' has shape \[4, 10\], which is not one value per channel"):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "'bf'", "per-channel")


def test_bias_add_out_of_int32_range_rejected(tmp_path: Path):
    path = matmul_bias_model(tmp_path / "mm_huge_bias.onnx", "float", bias_values=np.full(10, 1e8, np.float32))
    with pytest.raises(TinyCompileError, match="does not fit int32"):
        load_model(path)


def test_dequantize_axis_outside_rank_rejected(tmp_path: Path):
    # The person_detect export has this: TFLite's quantized_dimension 3 copied onto a 1-D bias.
    rng = np.random.default_rng(SEED + 6)
    initializers = [int8_tensor(rng, "w", [16, 10]), scalar("s_x", 0.05, np.float32), scalar("zp_x", 0, np.int8),
                    scalar("s_w", 0.02, np.float32), scalar("zp_w", 0, np.int8), scalar("s_y", 0.1, np.float32),
                    scalar("zp_y", 0, np.int8),
                    numpy_helper.from_array(np.arange(10, dtype=np.int32), "b"),
                    numpy_helper.from_array(np.full(10, 0.001, np.float32), "s_b"),
                    numpy_helper.from_array(np.zeros(10, np.int32), "zp_b")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s_x", "zp_x"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "s_w", "zp_w"], ["wf"]),
             helper.make_node("DequantizeLinear", ["b", "s_b", "zp_b"], ["bf"], name="bias_dq", axis=3),
             helper.make_node("MatMul", ["xf", "wf"], ["mm"]),
             helper.make_node("Add", ["mm", "bf"], ["sum"]),
             helper.make_node("QuantizeLinear", ["sum", "s_y", "zp_y"], ["y"])]
    graph = helper.make_graph(nodes, "axis", [helper.make_tensor_value_info("x", TensorProto.INT8, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [4, 10])], initializers)
    path = tmp_path / "axis.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(TinyCompileError, match="axis 3, outside the valid range -1 to 0"):
        load_model(path)
    assert_one_line_error(run_cli("compile", path, "-o", tmp_path / "out"), "bias_dq", "set the axis attribute to 0")
    assert EXPORT_TOOL.repair_axes(path) == ["bias_dq"]
    assert [op.op_type for op in load_model(path).operators] == ["ONNX_MATMUL"]


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


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and gcc-arm-none-eabi (scripts/setup.sh installs them)")
@pytest.mark.parametrize("name", ["resnet8", "person_detect"])
def test_onnx_export_in_qemu(name: str):
    from tinycompile.simulate import simulate_model

    path = ONNX_EXPORTS / f"{name}.onnx"
    shape = tuple(load_model(export_source(name)).inputs[0].shape)
    result = simulate_model(path, board="qemu-m4", samples=3,
                            input_shapes={onnx.load(str(path)).graph.input[0].name: shape})
    assert result.reference == "onnxruntime"
    assert result.tolerance == 1
    for output in result.outputs:
        assert output.mismatches == 0, (f"{name} {output.name}: {output.mismatches} of {output.elements} differ by "
                                        f"more than one step (max |diff| {output.max_abs_diff})")
