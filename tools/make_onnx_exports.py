"""Convert the public int8 TFLite models to ONNX with tf2onnx, as tests/test_onnx.py compiles them.

tinycompile should give a TFLite model and its ONNX export the same memory plan. This script
writes the exports of the four MLPerf Tiny int8 models and TFLM's person_detect into
tests/models/onnx, so that the parity test runs on machines without TensorFlow. Where tf2onnx is
installed, the test also converts the models again with this module's `convert`. The conversion is tf2onnx's
own (`tf2onnx.convert.from_tflite`, opset 13, what `python -m tf2onnx.convert --tflite X --output Y
--opset 13` runs), all models in one TensorFlow process to save its start-up time.

tf2onnx copies a TFLite tensor's quantized_dimension into the DequantizeLinear axis. The
person_detect file declares quantized_dimension 3 on its 1-D bias tensors (LiteRT refuses to load
it for that reason too), so the export has per-axis DequantizeLinear nodes with axis 3 on 1-D
tensors, which ONNX Runtime rejects. `repair_axes` sets such an axis to the one dimension that
has as many entries as there are scales, and logs each node it changed. The other exports need
no change.

Usage: .venv/bin/python tools/make_onnx_exports.py [--tf-python PATH] [--models DIR] [--out DIR]
(run with the project's venv; the conversion itself runs under --tf-python, the .venv-tf one).
With --compare it converts nothing and prints the arena of each TFLite model next to that of its
export in --out, compiled with the default options (the table in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper, numpy_helper

log = logging.getLogger("make_onnx_exports")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "models" / "onnx"
DEFAULT_MODELS = REPO_ROOT.parent / "shared" / "models"
DEFAULT_TF_PYTHON = REPO_ROOT / ".venv-tf" / "bin" / "python"
OPSET = 13
CONVERT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Export:
    name: str        # the ONNX file's stem
    tflite: str      # the source model, relative to the shared models folder


EXPORTS = (
    Export("resnet8", "mlperf_tiny/pretrainedResnet_quant.tflite"),
    Export("kws_ds_cnn", "mlperf_tiny/kws_ref_model.tflite"),
    Export("vww_mobilenet", "mlperf_tiny/vww_96_int8.tflite"),
    Export("ad01_autoencoder", "mlperf_tiny/ad01_int8.tflite"),
    Export("person_detect", "tflm/person_detection/person_detect.tflite"),
)

# Runs under the TensorFlow venv: argv[1] is a JSON list of [tflite path, onnx path, opset].
_CONVERT_PROGRAM = """
import json, sys
import tf2onnx.convert
for tflite, out, opset in json.loads(sys.argv[1]):
    tf2onnx.convert.from_tflite(tflite, opset=opset, output_path=out)
"""


class ConversionError(RuntimeError):
    """tf2onnx failed or is not installed in the given interpreter."""


def tf2onnx_available(tf_python: Path) -> bool:
    """Check that `tf_python` exists and finds tf2onnx and tensorflow (without importing them)."""
    if not Path(tf_python).is_file():
        return False
    program = ("import importlib.util, sys; "
               "sys.exit(any(importlib.util.find_spec(m) is None for m in ('tf2onnx', 'tensorflow')))")
    probe = subprocess.run([str(tf_python), "-c", program], capture_output=True, timeout=CONVERT_TIMEOUT_S)
    return probe.returncode == 0


def convert(tf_python: Path, jobs: list[tuple[Path, Path]]) -> None:
    """Convert each (tflite, onnx) pair with tf2onnx in one subprocess, then repair the axes."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    payload = json.dumps([[str(src), str(dst), OPSET] for src, dst in jobs])
    done = subprocess.run([str(tf_python), "-c", _CONVERT_PROGRAM, payload], capture_output=True, text=True,
                          env=env, timeout=CONVERT_TIMEOUT_S)
    if done.returncode != 0:
        raise ConversionError(f"tf2onnx under {tf_python} failed: {done.stderr.strip()[-2000:]}")
    for _, dst in jobs:
        if not dst.is_file():
            raise ConversionError(f"tf2onnx wrote no {dst}: {done.stderr.strip()[-2000:]}")
        changed = repair_axes(dst)
        if changed:
            log.info("%s: repaired the out-of-range axis of %d per-axis Quantize/DequantizeLinear nodes (%s, ...)",
                     dst.name, len(changed), changed[0])


def repair_axes(path: Path) -> list[str]:
    """Fix per-axis Quantize/DequantizeLinear axes outside their tensor's rank; return the nodes changed.

    Only an axis that ONNX forbids is changed, and only when exactly one dimension of the constant
    input has as many entries as there are scales.
    """
    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    changed = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or node.input[0] not in constants:
            continue
        scale = constants.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None or scale.size <= 1:
            continue
        data = constants[node.input[0]]
        axis_attr = next((a for a in node.attribute if a.name == "axis"), None)
        axis = 1 if axis_attr is None else helper.get_attribute_value(axis_attr)
        if -data.ndim <= axis < data.ndim:
            continue
        fits = [i for i, d in enumerate(data.shape) if d == scale.size]
        if len(fits) != 1:
            continue
        if axis_attr is None:
            node.attribute.append(helper.make_attribute("axis", fits[0]))
        else:
            axis_attr.i = fits[0]
        changed.append(node.name or node.output[0])
    if changed:
        onnx.save(model, str(path))
    return changed


def compare_arenas(models: Path, exports: Path) -> list[str]:
    """Compile each TFLite model and its export with the default options; return a Markdown table."""
    from tinycompile.compiler import compile_graph, load_model

    rows = ["| TFLite model | ONNX export | arena, TFLite (B) | arena, ONNX (B) | difference |",
            "|---|---|---:|---:|---:|"]
    for export in EXPORTS:
        tflite_graph = load_model(models / export.tflite)
        onnx_path = exports / f"{export.name}.onnx"
        onnx_input = onnx.load(str(onnx_path)).graph.input[0].name
        onnx_graph = load_model(onnx_path, {onnx_input: tuple(tflite_graph.inputs[0].shape)})
        tflite_arena = compile_graph(tflite_graph).arena_size
        onnx_arena = compile_graph(onnx_graph).arena_size
        change = (onnx_arena - tflite_arena) / tflite_arena * 100
        rows.append(f"| {Path(export.tflite).name} | {onnx_path.name} | {tflite_arena:,} | {onnx_arena:,} | "
                    f"{change:+.1f}% |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", type=Path, default=DEFAULT_TF_PYTHON,
                        help="Python interpreter with tensorflow and tf2onnx (default: .venv-tf)")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="folder of the public TFLite models")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .onnx files")
    parser.add_argument("--compare", action="store_true",
                        help="convert nothing; print the arenas of the TFLite models and of the exports in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # this script's progress, without the compiler's INFO lines

    if args.compare:
        print("\n".join(compare_arenas(args.models, args.out)))
        return 0

    if not tf2onnx_available(args.tf_python):
        log.error("%s is missing or lacks tensorflow and tf2onnx; install them there with "
                  "pip install tensorflow-cpu tf2onnx, or pass another interpreter with --tf-python", args.tf_python)
        return 2
    jobs = []
    for export in EXPORTS:
        source = args.models / export.tflite
        if not source.is_file():
            log.error("%s is missing; pass the folder of the public models with --models", source)
            return 2
        jobs.append((source, args.out / f"{export.name}.onnx"))

    args.out.mkdir(parents=True, exist_ok=True)
    try:
        convert(args.tf_python, jobs)
    except ConversionError as exc:
        log.error("%s", exc)
        return 1
    for source, dst in jobs:
        log.info("wrote %s (%d bytes) from %s", dst, dst.stat().st_size, source.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
