"""Transformer ops and models: int8 kernels bit-exact against TFLM and LiteRT, and the memory budget.

The models come from tools/make_transformer_models.py: single-op models for the kernels' edge
cases, and EmbBERT-Q style text classifiers trained on the pydoc topics text, whose saved token
windows are real text.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tinycompile import ir
from tinycompile.compiler import CompileOptions, compile_model, load_model
from tinycompile.errors import TinyCompileError
from tinycompile.reference import run_reference
from tinycompile.verify import run_generated, verify_model

MODELS = Path(__file__).resolve().parent / "models" / "transformer"
SRAM_BUDGET = 256 * 1024
ALL_INT8 = np.arange(-128, 128, dtype=np.int8)

# LiteRT's reference MUL rounds twice, but the int8 MUL kernel rounds once in litert mode, so
# every model with a MUL differs from LiteRT by one step on a few elements.


def model(name: str) -> Path:
    return MODELS / f"{name}.tflite"


def assert_bit_exact(result) -> None:
    for output in result.outputs:
        assert output.mismatches == 0, f"{output.name}: {output.mismatches} of {output.elements} elements differ"


def every_int8_value(shape: tuple[int, ...]) -> np.ndarray:
    """Return a sample of `shape` that contains all 256 int8 values (repeated to fill it)."""
    count = int(np.prod(shape))
    return np.resize(ALL_INT8, count).reshape(shape)


# Element-wise tables at every input value, including both ends of the int8 range.

@pytest.mark.parametrize("name", ["op_logistic", "op_tanh", "op_hard_swish", "op_rsqrt"])
@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_lut_op_every_input(name, rounding):
    sample = [every_int8_value((4, 64))]
    result = verify_model(model(name), rounding=rounding, samples=3, extra_samples=[sample])
    assert_bit_exact(result)


@pytest.mark.parametrize("name", ["op_gelu", "op_gelu_approximate"])
@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_gelu_every_input(name, rounding):
    # TFLM has no GELU, so both rounding modes compare with LiteRT.
    sample = [every_int8_value((4, 64))]
    result = verify_model(model(name), rounding=rounding, reference="litert", samples=3, extra_samples=[sample])
    assert_bit_exact(result)


def test_logistic_extremes_saturate():
    result = verify_model(model("op_logistic"), rounding="tflm", samples=0,
                          extra_samples=[[every_int8_value((4, 64))]])
    out = result.generated[0][0].reshape(-1)
    assert out[0] == -128      # input -128 is about -10: sigmoid rounds to 0
    assert out[255] == 127     # input 127 is about +10: sigmoid saturates at 1


# BATCH_MATMUL, SQUARED_DIFFERENCE and the data movement ops.

@pytest.mark.parametrize("name", [
    "op_batch_matmul", "op_batch_matmul_adj", "op_batch_matmul_broadcast",
    "op_squared_difference", "op_squared_difference_broadcast",
    "op_concatenation", "op_slice", "op_strided_slice",
])
@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_op_bit_exact(name, rounding):
    assert_bit_exact(verify_model(model(name), rounding=rounding, samples=12))


def test_squared_difference_broadcasts_both_inputs():
    graph = load_model(model("op_squared_difference_broadcast"))
    a, b = graph.operators[0].inputs
    # In every dimension exactly one input has extent 1, so each input is broadcast somewhere.
    assert all((x == 1) != (y == 1) for x, y in zip(a.shape, b.shape))


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_transpose_every_permutation(rounding):
    graph = load_model(model("op_transpose_all"))
    perms = {tuple(int(v) for v in op.inputs[1].data) for op in graph.operators if op.op_type == "TRANSPOSE"}
    assert perms == set(itertools.permutations(range(4))) - {(0, 1, 2, 3)}
    assert_bit_exact(verify_model(model("op_transpose_all"), rounding=rounding, samples=4))


# GATHER and the Keras Embedding pattern.

def gather_ids(*rows: list[int]) -> list[list[np.ndarray]]:
    return [[np.array([row], np.int32)] for row in rows]


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_gather_first_and_last_row(rounding):
    samples = gather_ids([0, 49, 0, 49, 1, 48, 25], [49, 49, 49, 49, 49, 49, 49], [0, 0, 0, 0, 0, 0, 0])
    assert_bit_exact(verify_model(model("op_gather"), rounding=rounding, samples=0, extra_samples=samples))


def run_generated_code(name: str, samples, tmp_path: Path, rounding: str = "litert"):
    compiled = compile_model(model(name), CompileOptions(rounding=rounding))
    return run_generated(compiled, samples, tmp_path)


@pytest.mark.parametrize("reference", ["tflm", "litert"])
@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4, 5, 50], [-1, 0, 0, 0, 0, 0, 0]])
def test_gather_out_of_range_fails_like_reference(ids, reference, tmp_path):
    # Both references fail the invoke on an id outside the table instead of reading past it.
    with pytest.raises(RuntimeError, match="(?i)gather|invocation"):
        run_reference(model("op_gather"), gather_ids(ids), reference, 1)
    with pytest.raises(TinyCompileError, match="layer 0 failed"):
        run_generated_code("op_gather", gather_ids(ids), tmp_path)


def test_embedding_wrap_folded_into_gather():
    compiled = compile_model(model("op_embedding"))
    ops = [layer.op.op_type for layer in compiled.layers]
    assert ops == ["GATHER"]
    assert compiled.layers[0].op.attrs.wrap_negative


def test_embedding_negative_ids_bit_exact():
    # Keras wraps ids in [-50, 0) to the end of the table; -51 and 50 are out of range.
    samples = gather_ids([-1, -50, 0, 49, -25, 3, -2])
    assert_bit_exact(verify_model(model("op_embedding"), rounding="litert", samples=0, extra_samples=samples))


@pytest.mark.parametrize("ids", [[-51, 0, 0, 0, 0, 0, 0], [50, 0, 0, 0, 0, 0, 0]])
def test_embedding_out_of_range_fails(ids, tmp_path):
    with pytest.raises(RuntimeError, match="(?i)gather"):
        run_reference(model("op_embedding"), gather_ids(ids), "litert", 1)
    with pytest.raises(TinyCompileError, match="layer 0 failed"):
        run_generated_code("op_embedding", gather_ids(ids), tmp_path)


# Normalization, including a constant row (zero variance).

def constant_rows(shape: tuple[int, ...]) -> list[list[np.ndarray]]:
    zero_row = np.full(shape, 0, np.int8)
    mixed = np.random.default_rng(3).integers(-128, 128, size=shape).astype(np.int8)
    mixed[..., 0, :] = 57
    mixed[..., 1, :] = -128
    return [[zero_row], [np.full(shape, 127, np.int8)], [mixed]]


def test_layer_norm_island_folded():
    compiled = compile_model(model("op_layer_norm"))
    ops = [layer.op.op_type for layer in compiled.layers]
    assert "TC_INT8_LUT" in ops
    assert not {"DEQUANTIZE", "NEG", "QUANTIZE"} & set(ops)


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_layer_norm_constant_row(rounding):
    result = verify_model(model("op_layer_norm"), rounding=rounding, samples=8, extra_samples=constant_rows((1, 6, 8)))
    assert_bit_exact(result)


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_rms_norm_constant_row(rounding):
    result = verify_model(model("op_rms_norm"), rounding=rounding, samples=8, extra_samples=constant_rows((1, 6, 8)))
    assert_bit_exact(result)


# End to end on the text models.

def text_samples(name: str) -> list[list[np.ndarray]]:
    tokens = np.load(MODELS / f"{name}_tokens.npy")
    return [[row[None, :].astype(np.int32)] for row in tokens]


def edge_ids(seq: int, vocab: int) -> list[np.ndarray]:
    ids = np.arange(seq, dtype=np.int32) % vocab
    ids[0], ids[-1] = 0, vocab - 1
    return [ids[None, :]]


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_embbert_small_real_text(rounding):
    samples = text_samples("embbert_small") + [edge_ids(32, 512)]
    result = verify_model(model("embbert_small"), rounding=rounding, samples=4, extra_samples=samples)
    assert result.samples >= 10
    assert_bit_exact(result)


@pytest.mark.parametrize("rounding", ["tflm", "litert"])
def test_embbert_full_real_text(rounding):
    samples = text_samples("embbert_full") + [edge_ids(256, 8192)]
    result = verify_model(model("embbert_full"), rounding=rounding, samples=0, extra_samples=samples)
    assert result.samples >= 10
    assert_bit_exact(result)


def test_standard_small_real_text_litert():
    # TFLM has no SELECT or GELU kernel, so this model compares with LiteRT only.
    result = verify_model(model("standard_small"), rounding="litert", samples=2,
                          extra_samples=text_samples("standard_small"))
    assert_bit_exact(result)


def test_standard_small_compiles_every_op():
    compiled = compile_model(model("standard_small"), CompileOptions(rounding="litert"))
    ops = {layer.op.op_type for layer in compiled.layers}
    assert {"GATHER", "BATCH_MATMUL", "TRANSPOSE", "GELU", "SQUARED_DIFFERENCE", "TC_INT8_LUT"} <= ops
    assert not {"LESS", "SELECT", "NEG"} & ops


def test_embbert_full_fits_sram():
    compiled = compile_model(model("embbert_full"))
    assert compiled.arena_size <= SRAM_BUDGET
    assert compiled.graph.inputs[0].shape == (1, 256)
    assert compiled.graph.inputs[0].dtype == ir.DType.INT32
    table = compiled.graph.operators[0].inputs[0]
    assert table.shape == (8192, 16)
