"""Run a model in a reference interpreter: TFLM's Python interpreter, LiteRT's reference kernels or ONNX Runtime.

TFLM (the `tflite-micro` package) is the default because microcontrollers run its kernels. LiteRT
(`ai-edge-litert`) runs with OpResolverType.BUILTIN_REF, its reference kernels, whose requantization
rounds once instead of twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tinycompile.errors import TinyCompileError, ToolError

log = logging.getLogger(__name__)


class ReferenceUnavailableError(TinyCompileError):
    """The reference interpreter could not load or run the model."""


def run_reference(model_path: Path, samples: list[list[np.ndarray]], reference: str,
                  num_outputs: int) -> list[list[np.ndarray]]:
    """Run every sample (one array per graph input) and return the outputs of each."""
    if reference == "tflm":
        return _run_tflm(Path(model_path), samples, num_outputs)
    if reference == "litert":
        return _run_litert(Path(model_path), samples)
    if reference == "onnxruntime":
        return _run_onnxruntime(Path(model_path), samples)
    raise TinyCompileError(f"unknown reference '{reference}'; use tflm, litert or onnxruntime")


def _run_tflm(model_path: Path, samples, num_outputs: int):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ToolError("the TFLM reference needs the tflite-micro package: pip install tflite-micro") from None
    try:
        # TFLM sizes its arena from the model file by default, which is too small for
        # models with large activations and few weights; give it room to spare.
        arena = max(4 << 20, 8 * model_path.stat().st_size)
        interpreter = runtime.Interpreter.from_file(str(model_path), arena_size=arena)
    except (RuntimeError, ValueError) as exc:
        raise ReferenceUnavailableError(f"TFLM cannot load '{model_path}': {exc}") from None
    results = []
    for sample in samples:
        for i, x in enumerate(sample):
            interpreter.set_input(x, i)
        interpreter.invoke()
        results.append([np.array(interpreter.get_output(i)) for i in range(num_outputs)])
    return results


def _run_litert(model_path: Path, samples):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ToolError("the LiteRT reference needs the ai-edge-litert package: pip install ai-edge-litert") from None
    try:
        interpreter = Interpreter(model_path=str(model_path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReferenceUnavailableError(f"LiteRT cannot load '{model_path.name}': {message}; verify with --rounding tflm") from None
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    results = []
    for sample in samples:
        for detail, x in zip(inputs, sample):
            interpreter.set_tensor(detail["index"], x.reshape(detail["shape"]))
        interpreter.invoke()
        results.append([np.array(interpreter.get_tensor(d["index"])) for d in outputs])
    return results


def _run_onnxruntime(model_path: Path, samples):
    """Run an ONNX model in ONNX Runtime's CPU provider with graph optimizations off and one thread.

    ORT_DISABLE_ALL runs the nodes exactly as the file lists them, so the result follows the ONNX
    operator definitions (a QDQ Conv is DequantizeLinear, float Conv, QuantizeLinear) and does not
    depend on which QDQ fusions a given ONNX Runtime version applies at higher levels. One thread
    keeps float reductions in a fixed order from run to run.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ToolError("the ONNX reference needs the onnxruntime package: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception classes, not exported stably
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReferenceUnavailableError(f"ONNX Runtime cannot load '{model_path.name}': {message[:200]}") from None
    names = [i.name for i in session.get_inputs()]
    results = []
    for sample in samples:
        outputs = session.run(None, {name: x for name, x in zip(names, sample)})
        results.append([np.asarray(o) for o in outputs])
    return results
