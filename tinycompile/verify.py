"""Compile a model, run the generated C on the host, and compare it with a reference interpreter.

Every output element of every sample is compared. The result counts mismatching elements (those
differing by more than the tolerance) and the largest absolute difference per output.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinycompile import ir
from tinycompile.build.host import build_host_runner, run_host_runner
from tinycompile.codegen.emit import write_model
from tinycompile.compiler import CompileOptions, CompiledModel, compile_graph, load_model
from tinycompile.errors import TinyCompileError
from tinycompile.reference import run_reference


@dataclass
class OutputComparison:
    name: str
    elements: int            # elements compared, over all samples
    mismatches: int          # elements whose difference exceeds the tolerance
    max_abs_diff: float


@dataclass
class VerifyResult:
    model: str
    reference: str
    rounding: str
    samples: int
    tolerance: float
    outputs: list[OutputComparison] = field(default_factory=list)
    generated: list[list[np.ndarray]] = field(default_factory=list, repr=False)
    expected: list[list[np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return all(o.mismatches == 0 for o in self.outputs)


def sample_bytes(graph: ir.Graph) -> int:
    return sum(t.nbytes for t in graph.inputs)


def read_input_files(graph: ir.Graph, paths: list[Path]) -> list[list[np.ndarray]]:
    """Read samples from raw binary or .npy files, each containing one or more whole samples."""
    samples = []
    per_sample = sample_bytes(graph)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise TinyCompileError(f"input file '{path}' not found")
        if path.suffix == ".npy":
            data = np.load(path, allow_pickle=False)
            raw = np.ascontiguousarray(data).tobytes()
            if data.dtype != graph.inputs[0].dtype.numpy and len(graph.inputs) == 1:
                raise TinyCompileError(
                    f"input file '{path}' contains {data.dtype} values but input '{graph.inputs[0].name}' is "
                    f"{graph.inputs[0].dtype.value}; save the array as {graph.inputs[0].dtype.value}"
                )
        else:
            raw = path.read_bytes()
        if len(raw) == 0 or len(raw) % per_sample != 0:
            shapes = ", ".join(f"'{t.name[:40]}' {t.dtype.value}{list(t.shape)}" for t in graph.inputs)
            raise TinyCompileError(
                f"input file '{path}' has {len(raw)} bytes, but one sample of this model is {per_sample} bytes "
                f"({shapes}); pass a file of whole samples in the model's input type"
            )
        for start in range(0, len(raw), per_sample):
            samples.append(split_tensors(graph.inputs, raw[start:start + per_sample]))
    return samples


def split_tensors(tensors: list[ir.Tensor], raw: bytes) -> list[np.ndarray]:
    """Cut `raw`, the tensors' bytes back to back in order, into one array per tensor."""
    arrays = []
    offset = 0
    for t in tensors:
        arrays.append(np.frombuffer(raw, dtype=t.dtype.numpy, count=t.num_elements, offset=offset).reshape(t.shape))
        offset += t.nbytes
    return arrays


def split_outputs(graph: ir.Graph, raw: bytes) -> list[list[np.ndarray]]:
    """Cut the outputs of several samples, written back to back, into arrays per sample."""
    per_sample = sum(t.nbytes for t in graph.outputs)
    return [split_tensors(graph.outputs, raw[start:start + per_sample]) for start in range(0, len(raw), per_sample)]


def collect_samples(graph: ir.Graph, inputs: list[Path] | tuple, extra_samples: list[list[np.ndarray]] | tuple,
                    samples: int, seed: int) -> list[list[np.ndarray]]:
    """Return the samples of a run: from `inputs` files, then `extra_samples`, then `samples` random ones."""
    data = read_input_files(graph, list(inputs)) + [list(s) for s in extra_samples]
    return data + random_samples(graph, samples, seed)


def random_samples(graph: ir.Graph, count: int, seed: int) -> list[list[np.ndarray]]:
    """Draw `count` samples covering each input's full quantized range."""
    rng = np.random.default_rng(seed)
    consumers = graph.consumers()
    samples = []
    for _ in range(count):
        sample = []
        for t in graph.inputs:
            if t.dtype in (ir.DType.INT8, ir.DType.UINT8, ir.DType.INT16, ir.DType.INT32):
                info = np.iinfo(t.dtype.numpy)
                low, high = (info.min, info.max) if t.dtype != ir.DType.INT32 else (0, 256)
                sample.append(rng.integers(low, high, size=t.shape, endpoint=True).astype(t.dtype.numpy))
            elif t.dtype == ir.DType.FLOAT32:
                scale, zp = 1.0 / 64, 0
                for op in consumers.get(id(t), []):
                    if op.op_type in ("QUANTIZE", "ONNX_QUANTIZE") and op.outputs[0].quant is not None:
                        scale = op.outputs[0].quant.scalar_scale
                        zp = op.outputs[0].quant.scalar_zero_point
                        break
                q = rng.integers(-128, 127, size=t.shape, endpoint=True)
                sample.append(((q - zp) * scale + rng.uniform(-0.49, 0.49, size=t.shape) * scale).astype(np.float32))
            else:
                raise TinyCompileError(f"cannot draw random values for input '{t.name}' of type {t.dtype.value}")
        samples.append(sample)
    return samples


def run_generated(compiled: CompiledModel, samples: list[list[np.ndarray]], workdir: Path) -> list[list[np.ndarray]]:
    """Build the generated C on the host, run it on `samples`, and return its outputs."""
    model_dir = write_model(compiled, workdir / "model")
    runner = build_host_runner(model_dir, workdir / "runner")
    inputs = workdir / "inputs.bin"
    outputs = workdir / "outputs.bin"
    inputs.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for s in samples for x in s))
    run_host_runner(runner, inputs, outputs)
    return split_outputs(compiled.graph, outputs.read_bytes())


ONNX_DEFAULT_TOLERANCE = 1.0  # ONNX Runtime's float requantization may round one step differently


def default_tolerance(graph: ir.Graph) -> float:
    """Return the default tolerance of verify: 1 quantization step for ONNX, 0 for TFLite."""
    return ONNX_DEFAULT_TOLERANCE if graph.source_format == "onnx" else 0.0


def output_step(graph: ir.Graph, tensor: ir.Tensor) -> float:
    """Return the size of one quantization step of a float output that an ONNX model dequantizes, else 1.

    For such outputs the tolerance counts steps of the int8 value behind the float, so that
    "1" means one LSB whatever the output scale.
    """
    producer = graph.producers().get(id(tensor))
    if producer is not None and producer.op_type == "ONNX_DEQUANTIZE" and producer.inputs[0].quant is not None:
        return producer.inputs[0].quant.scalar_scale
    return 1.0


def compare(graph: ir.Graph, generated, expected, tolerance: float) -> list[OutputComparison]:
    comparisons = []
    for i, t in enumerate(graph.outputs):
        step = output_step(graph, t)
        mismatches = 0
        max_diff = 0.0
        elements = 0
        for got, want in zip(generated, expected):
            a = got[i].astype(np.float64).reshape(-1)
            b = np.asarray(want[i]).astype(np.float64).reshape(-1)
            if a.size != b.size:
                raise TinyCompileError(
                    f"output '{t.name}' has {a.size} elements in the generated code but {b.size} in the reference"
                )
            diff = np.abs(a - b)
            elements += a.size
            if step != 1.0:
                # Dequantized outputs lie on a grid of `step`; rounding to whole steps removes the
                # float32 rounding of (q - zero_point) * scale on either side.
                mismatches += int(np.count_nonzero(np.rint(diff / step) > tolerance))
            else:
                mismatches += int(np.count_nonzero(diff > tolerance))
            max_diff = max(max_diff, float(diff.max()) if diff.size else 0.0)
        comparisons.append(OutputComparison(t.name, elements, mismatches, max_diff))
    return comparisons


def verify_model(model_path: str | Path, rounding: str = "tflm", reference: str | None = None,
                 samples: int = 10, seed: int = 0, inputs: list[Path] | tuple = (),
                 tolerance: float | None = None, planner: str = "auto", workdir: Path | None = None,
                 extra_samples: list[list[np.ndarray]] | tuple = (),
                 input_shapes: dict[str, tuple[int, ...]] | None = None, kernels: str = "auto") -> VerifyResult:
    """Compile `model_path`, run it on the host and compare every output element with the reference.

    Samples are, in order: those read from `inputs` files, `extra_samples` (one array per graph
    input), then `samples` random ones drawn with `seed`. `reference` defaults to onnxruntime for
    ONNX models and to the rounding mode otherwise; `tolerance` defaults to `default_tolerance`.
    `input_shapes` fixes dynamic ONNX input shapes by name.
    """
    model_path = Path(model_path)
    graph = load_model(model_path, input_shapes)
    data = collect_samples(graph, inputs, extra_samples, samples, seed)
    compiled = compile_graph(graph, CompileOptions(rounding=rounding, planner=planner, kernels=kernels))
    if not data:
        raise TinyCompileError("no samples to verify; pass --samples N or --input FILE")
    if reference is None:
        reference = "onnxruntime" if graph.source_format == "onnx" else rounding
    if tolerance is None:
        tolerance = default_tolerance(graph)
    expected = run_reference(model_path, data, reference, len(graph.outputs))
    with tempfile.TemporaryDirectory(prefix="tinycompile-verify-") as tmp:
        generated = run_generated(compiled, data, Path(workdir) if workdir else Path(tmp))
    result = VerifyResult(model=str(model_path), reference=reference, rounding=rounding, samples=len(data),
                          tolerance=tolerance)
    result.outputs = compare(graph, generated, expected, tolerance)
    result.generated = generated
    result.expected = expected
    return result
