"""Bit-exact checks of the per-op int8 models in tests/models/ops.

tools/make_test_models.py generates the models and their manifest.json with TensorFlow. The tests
here need no TensorFlow: each model is compiled, its generated C runs on the host, and every
output element must equal the reference interpreter's, in both rounding modes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tflite

from tinycompile.reference import ReferenceUnavailableError
from tinycompile.verify import verify_model

MODELS_DIR = Path(__file__).parent / "models" / "ops"
MANIFEST = json.loads((MODELS_DIR / "manifest.json").read_text())
ROUNDING_MODES = ["tflm", "litert"]
MAX_TOTAL_BYTES = 2 * 1024 * 1024


def read_op_names(path: Path) -> list[str]:
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    subgraph = model.Subgraphs(0)
    names = []
    for index in range(subgraph.OperatorsLength()):
        code = model.OperatorCodes(subgraph.Operators(index).OpcodeIndex())
        names.append(tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())))
    return names


def test_manifest_lists_every_model():
    listed = {entry["name"] for entry in MANIFEST}
    on_disk = {path.stem for path in MODELS_DIR.glob("*.tflite")}
    assert len(listed) == len(MANIFEST), "manifest has duplicate names"
    assert on_disk - listed == set(), "models missing from manifest.json"
    assert listed - on_disk == set(), "manifest.json entries without a model file"


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda entry: entry["name"])
def test_manifest_ops_match_model(entry):
    assert read_op_names(MODELS_DIR / f"{entry['name']}.tflite") == entry["ops"]


def test_models_stay_small():
    total = sum(path.stat().st_size for path in MODELS_DIR.glob("*.tflite"))
    assert total < MAX_TOTAL_BYTES


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("entry", MANIFEST, ids=lambda entry: entry["name"])
def test_op_model_bit_exact(entry, rounding):
    path = MODELS_DIR / f"{entry['name']}.tflite"
    try:
        result = verify_model(path, rounding=rounding, samples=5, seed=0)
    except ReferenceUnavailableError as error:
        # LiteRT rejects CONV_2D without a bias input, and TFLM has no RELU_N1_TO_1 kernel.
        # Compile errors are not caught, so an op that tinycompile rejects still fails.
        pytest.skip(str(error))

    assert result.outputs, "verify_model compared no outputs"
    for output in result.outputs:
        assert output.elements > 0, f"output {output.name} compared no elements"
        assert output.mismatches == 0, (
            f"output {output.name}: {output.mismatches} of {output.elements} elements differ "
            f"from {result.reference}, max abs diff {output.max_abs_diff}"
        )
    assert result.ok
