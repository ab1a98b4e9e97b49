"""In-place layers and operator ordering: the in-place depthwise kernel, which layers may run in
place, the scheduling search, and small models compiled end to end and checked against TFLM."""

from __future__ import annotations

import itertools
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO
from tinycompile import ir
from tinycompile.build.host import host_compiler
from tinycompile.codegen.c_format import c_array_body, c_initializer, collect_const_arrays
from tinycompile.codegen.lowering import Layer, LoweringOptions, Scratch, lower_operator
from tinycompile.codegen.ops.common import output_size
from tinycompile.codegen.ops.conv import depthwise_inplace
from tinycompile.compiler import CompileOptions, compile_graph, load_model
from tinycompile.passes.liveness import build_buffers, inplace_candidates
from tinycompile.passes.schedule import _build, order_peak, schedule
from tinycompile.planning import check_plan, lower_bound
from tinycompile.reference import run_reference
from tinycompile.verify import compare, random_samples, run_generated

FIRMWARE = REPO / "firmware"
MODELS = REPO / "tests" / "models" / "planning"
# The in-place depthwise kernel replaces the portable kernel, whose parameters it reads.
PORTABLE = LoweringOptions(kernels="portable")


def quant(scale, zero_point=0) -> ir.Quantization:
    return ir.Quantization(np.atleast_1d(np.asarray(scale, dtype=np.float32)),
                           np.atleast_1d(np.asarray(zero_point, dtype=np.int64)))


def depthwise_op(rng: np.random.Generator, index: int) -> ir.Operator:
    """Draw a depth-multiplier-1 DEPTHWISE_CONV_2D with random geometry and quantization."""
    while True:
        batches, in_h, in_w, channels = (int(rng.integers(1, 3)), int(rng.integers(1, 10)),
                                         int(rng.integers(1, 10)), int(rng.integers(1, 6)))
        filter_h, filter_w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride_h, stride_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dilation_h, dilation_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        padding = ir.Padding.SAME if rng.integers(2) else ir.Padding.VALID
        out_h = output_size(padding, in_h, filter_h, stride_h, dilation_h)
        out_w = output_size(padding, in_w, filter_w, stride_w, dilation_w)
        if out_h > 0 and out_w > 0:
            break
    per_channel = bool(rng.integers(2))
    weight_scales = rng.uniform(0.002, 0.02, size=channels if per_channel else 1)
    x = ir.Tensor(0, "x", (batches, in_h, in_w, channels), ir.DType.INT8, quant(0.05, int(rng.integers(-20, 21))))
    w = ir.Tensor(1, "w", (1, filter_h, filter_w, channels), ir.DType.INT8,
                  quant(weight_scales, np.zeros(weight_scales.size, dtype=np.int64)),
                  rng.integers(-127, 128, size=(1, filter_h, filter_w, channels)).astype(np.int8))
    inputs = [x, w]
    if rng.integers(2):
        inputs.append(ir.Tensor(2, "b", (channels,), ir.DType.INT32, None,
                                rng.integers(-2000, 2000, size=channels).astype(np.int32)))
    y = ir.Tensor(3, "y", (batches, out_h, out_w, channels), ir.DType.INT8, quant(0.1, int(rng.integers(-20, 21))))
    activation = [ir.Activation.NONE, ir.Activation.RELU, ir.Activation.RELU6][int(rng.integers(3))]
    attrs = ir.DepthwiseConv2DAttrs(stride_h=stride_h, stride_w=stride_w, dilation_h=dilation_h,
                                    dilation_w=dilation_w, padding=padding, activation=activation,
                                    depth_multiplier=1)
    return ir.Operator(index, "DEPTHWISE_CONV_2D", inputs, [y], attrs)


def c_case(inplace: Layer, number: int, rng: np.random.Generator) -> tuple[str, str]:
    """Return (C definitions, C call block) that run both kernels on one random input.

    Both kernels take the portable parameters, which the in-place layer carries.
    """
    params, _, w, bias, _ = inplace.args
    x, y = inplace.op.inputs[0], inplace.op.outputs[0]
    arrays: list = []
    collect_const_arrays(params, arrays)
    scratch = inplace.args[4]
    assert isinstance(scratch, Scratch)
    data = rng.integers(-128, 128, size=x.num_elements).astype(np.int8)

    lines = [f"static const {a.c_type} {a.symbol}[] = {{\n{c_array_body(a.values)}\n}};" for a in arrays]
    lines.append(f"static const tc_conv_params params{number} = {c_initializer(params)};")
    lines.append(f"static const int8_t weights{number}[] = {{\n{c_array_body(w.data)}\n}};")
    if bias is not None:
        lines.append(f"static const int32_t bias{number}[] = {{\n{c_array_body(bias.data)}\n}};")
    lines.append(f"static const int8_t input{number}[] = {{\n{c_array_body(data)}\n}};")

    bias_arg = f"bias{number}" if bias is not None else "NULL"
    call = f"""
    {{
        static int8_t expected[{y.num_elements}];
        static int8_t data[{x.num_elements}];
        static int8_t scratch[{scratch.nbytes}];
        memcpy(data, input{number}, sizeof(data));
        if (tc_depthwise_conv2d_s8(&params{number}, input{number}, weights{number}, {bias_arg}, expected) != TC_OK ||
            tc_depthwise_conv2d_s8_inplace(&params{number}, data, weights{number}, {bias_arg}, scratch) != TC_OK) {{
            printf("case {number}: kernel failed\\n");
            failures++;
        }} else if (memcmp(expected, data, sizeof(expected)) != 0) {{
            printf("case {number}: outputs differ\\n");
            failures++;
        }}
    }}"""
    return "\n".join(lines), call


def test_inplace_depthwise_kernel_matches_reference_kernel(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    definitions, calls = [], []
    for number in range(60):
        layer = lower_operator(depthwise_op(rng, number), PORTABLE)
        inplace = depthwise_inplace(layer, PORTABLE)
        assert inplace is not None
        assert inplace.kernel == "tc_depthwise_conv2d_s8_inplace"
        assert inplace.inplace_ok == (0,)
        definition, call = c_case(inplace, number, rng)
        definitions.append(definition)
        calls.append(call)

    # A depth multiplier of 2 must be rejected, not computed wrongly.
    source = "\n".join([
        "#include <stdio.h>", "#include <string.h>", '#include "tc_kernels.h"', *definitions,
        "int main(void)", "{", "    int failures = 0;", *calls,
        "    tc_conv_params doubled = params0;",
        "    doubled.depth_multiplier = 2;",
        "    static int8_t spare[4096];",
        "    if (tc_depthwise_conv2d_s8_inplace(&doubled, spare, weights0, NULL, spare) != TC_ERROR_ARGUMENT) {",
        '        printf("depth multiplier 2 accepted\\n");', "        failures++;", "    }",
        '    printf("%d failures\\n", failures);', "    return failures != 0;", "}",
    ])

    (tmp_path / "main.c").write_text(source)
    (tmp_path / "tc_config.h").write_text("#define TC_SINGLE_ROUNDING 0\n")
    kernels = [FIRMWARE / "kernels" / "tc_depthwise_conv2d_s8.c", FIRMWARE / "kernels" / "tc_depthwise_inplace_s8.c"]
    build = subprocess.run([host_compiler(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}",
                            f"-I{FIRMWARE / 'include'}", str(tmp_path / "main.c"), *map(str, kernels),
                            "-o", str(tmp_path / "check")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]

    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-2000:]
    assert run.stdout.strip().endswith("0 failures")


def test_depthwise_multiplier_two_not_inplace() -> None:
    rng = np.random.default_rng(1)
    op = depthwise_op(rng, 0)
    x, w = op.inputs[0], op.inputs[1]
    channels = x.shape[3]
    op.inputs[1] = ir.Tensor(1, "w", (1, *w.shape[1:3], 2 * channels), ir.DType.INT8, quant(0.01),
                             np.ones((1, *w.shape[1:3], 2 * channels), dtype=np.int8))
    if len(op.inputs) > 2:
        op.inputs = op.inputs[:2]
    y = op.outputs[0]
    op.outputs[0] = ir.Tensor(3, "y", (*y.shape[:3], 2 * channels), ir.DType.INT8, y.quant)
    assert depthwise_inplace(lower_operator(op, PORTABLE), PORTABLE) is None


# Small graphs built in the IR. Tensor sizes are multiples of 16 bytes so footprints equal sizes.


def tensor(index: int, size: int) -> ir.Tensor:
    return ir.Tensor(index, f"t{index}", (size,), ir.DType.INT8, quant(0.1))


def binary_layer(index: int, a: ir.Tensor, b: ir.Tensor, y: ir.Tensor) -> Layer:
    op = ir.Operator(index, "ADD", [a, b], [y], ir.ActivationAttrs())
    return lower_operator(op, LoweringOptions())


def unary_layer(index: int, x: ir.Tensor, y: ir.Tensor, inplace_ok: tuple[int, ...] = ()) -> Layer:
    """A stand-in layer with one input and one output that runs no real kernel."""
    return Layer(ir.Operator(index, "TEST", [x], [y]), "tc_test", [x, y], inplace_ok=inplace_ok)


def graph_of(layers: list[Layer], inputs: list[ir.Tensor], outputs: list[ir.Tensor]) -> ir.Graph:
    tensors = {id(t): t for layer in layers for t in [*layer.op.inputs, *layer.op.outputs]}
    return ir.Graph("test", list(tensors.values()), [layer.op for layer in layers], inputs, outputs)


def test_broadcast_add_overwrites_only_full_input() -> None:
    a = ir.Tensor(0, "a", (1, 4, 4, 8), ir.DType.INT8, quant(0.1))
    b = ir.Tensor(1, "b", (1, 1, 1, 8), ir.DType.INT8, quant(0.1))
    y = ir.Tensor(2, "y", (1, 4, 4, 8), ir.DType.INT8, quant(0.1))
    assert binary_layer(0, a, b, y).inplace_ok == (0,)
    assert binary_layer(0, b, a, y).inplace_ok == (1,)
    assert binary_layer(0, a, y, ir.Tensor(3, "z", (1, 4, 4, 8), ir.DType.INT8, quant(0.1))).inplace_ok == (0, 1)


def test_depthwise_candidate_uses_rewrite() -> None:
    op = depthwise_op(np.random.default_rng(3), 1)
    x, y = op.inputs[0], op.outputs[0]
    layers = [lower_operator(op, PORTABLE)]
    assert layers[0].inplace_ok == ()
    (candidate,) = inplace_candidates(graph_of(layers, [x], [y]), layers, PORTABLE)
    assert candidate.position == 0
    assert candidate.rewrite
    assert candidate.variant.kernel == "tc_depthwise_conv2d_s8_inplace"
    assert candidate.variant.scratch[0].nbytes == x.shape[1] * x.shape[2]


def test_inplace_needs_last_use_of_input() -> None:
    x, a, b, y = tensor(0, 64), tensor(1, 64), tensor(2, 64), tensor(3, 64)
    # x is read by the ADD and again afterwards, a only by the ADD.
    layers = [unary_layer(0, x, a), binary_layer(1, x, a, b), binary_layer(2, b, x, y)]
    graph = graph_of(layers, [x], [y])
    candidates = inplace_candidates(graph, layers)
    assert [(c.step, c.position, c.rewrite) for c in candidates] == [(1, 1, False), (2, 0, False)]
    buffers = build_buffers(graph, layers, {c.step: c.position for c in candidates})
    by_name = {b.name: b for b in buffers.buffers}
    assert by_name["t2"].shares == by_name["t1"].id
    assert by_name["t3"].shares == by_name["t2"].id
    assert by_name["t0"].shares is None


def test_graph_output_not_overwritten() -> None:
    x, a, y = tensor(0, 64), tensor(1, 64), tensor(2, 64)
    layers = [unary_layer(0, x, a), unary_layer(1, a, y, inplace_ok=(0,))]
    assert [c.step for c in inplace_candidates(graph_of(layers, [x], [y]), layers)] == [1]
    # When a is a graph output too, it must survive to the end.
    assert inplace_candidates(graph_of(layers, [x], [a, y]), layers) == []


def test_larger_output_not_inplace() -> None:
    x, y = tensor(0, 64), tensor(1, 128)
    layers = [unary_layer(0, x, y, inplace_ok=(0,))]
    assert inplace_candidates(graph_of(layers, [x], [y]), layers) == []


def two_branch_layers() -> tuple[ir.Graph, list[Layer]]:
    """x feeds branches (wide a1 -> narrow a2) and (wide b1 -> narrow b2), stored interleaved."""
    x = tensor(0, 64)
    a1, b1, a2, b2, y = tensor(1, 512), tensor(2, 512), tensor(3, 64), tensor(4, 64), tensor(5, 64)
    layers = [unary_layer(0, x, a1), unary_layer(1, x, b1), unary_layer(2, a1, a2), unary_layer(3, b1, b2),
              binary_layer(4, a2, b2, y)]
    return graph_of(layers, [x], [y]), layers


def test_schedule_runs_one_branch_at_a_time() -> None:
    graph, layers = two_branch_layers()
    result = schedule(graph, layers)
    # Interleaved, both wide tensors and x are alive at step 1: 64 + 512 + 512.
    assert result.original_peak == 1088
    # Branch by branch, at most one wide tensor and two 64-byte tensors are alive: 512 + 2 * 64.
    assert result.peak == 640
    assert result.order == [0, 2, 1, 3, 4]
    assert result.exact


def test_schedule_keeps_chain_order() -> None:
    x, a, b, y = tensor(0, 64), tensor(1, 128), tensor(2, 64), tensor(3, 32)
    layers = [unary_layer(0, x, a), unary_layer(1, a, b), unary_layer(2, b, y)]
    result = schedule(graph_of(layers, [x], [y]), layers)
    assert result.order == [0, 1, 2]
    assert result.peak == result.original_peak == 192


def test_schedule_beam_of_one_still_topological() -> None:
    graph, layers = two_branch_layers()
    result = schedule(graph, layers, beam=1)
    assert sorted(result.order) == list(range(len(layers)))
    assert is_topological(graph, layers, result.order)
    assert result.peak <= result.original_peak


def test_schedule_prunes_wide_graph() -> None:
    # 24 independent layers have 2^24 downsets, far too many to search exactly.
    x = tensor(0, 64)
    outputs = [tensor(i + 1, 16 * (i + 1)) for i in range(24)]
    layers = [unary_layer(i, x, out) for i, out in enumerate(outputs)]
    result = schedule(graph_of(layers, [x], outputs), layers)
    assert not result.exact
    # Every output stays alive to the end, so every order has the same peak and the stored one stays.
    assert result.order == list(range(24))
    assert result.peak == result.original_peak == 64 + sum(out.nbytes for out in outputs)


def is_topological(graph: ir.Graph, layers: list[Layer], order: list[int]) -> bool:
    written = {id(t) for t in graph.inputs}
    for i in order:
        if any(t is not None and not t.is_constant and id(t) not in written for t in layers[i].op.inputs):
            return False
        written.update(id(t) for t in layers[i].op.outputs)
    return True


@st.composite
def random_dags(draw: st.DrawFn) -> tuple[ir.Graph, list[Layer]]:
    """Layers with one or two inputs drawn from earlier tensors; unread tensors become outputs."""
    count = draw(st.integers(1, 7))
    inputs = [tensor(0, 16 * draw(st.integers(1, 8)))]
    available = list(inputs)
    layers: list[Layer] = []
    for i in range(count):
        out = tensor(i + 1, 16 * draw(st.integers(1, 8)))
        first = draw(st.sampled_from(available))
        if draw(st.booleans()) and len(available) > 1:
            second = draw(st.sampled_from(available))
            size = max(first.nbytes, second.nbytes)
            out = tensor(i + 1, size if draw(st.booleans()) else out.nbytes)
            layers.append(Layer(ir.Operator(i, "TEST", [first, second], [out]), "tc_test", [first, second, out],
                                inplace_ok=(0, 1)))
        else:
            layers.append(unary_layer(i, first, out, inplace_ok=(0,) if draw(st.booleans()) else ()))
        available.append(out)
    read = {id(t) for layer in layers for t in layer.op.inputs}
    outputs = [layer.op.outputs[0] for layer in layers if id(layer.op.outputs[0]) not in read]
    return graph_of(layers, inputs, outputs), layers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=random_dags(), inplace=st.sampled_from(["off", "auto"]))
def test_schedule_optimal_on_small_graphs(dag, inplace: str) -> None:
    graph, layers = dag
    result = schedule(graph, layers, inplace)
    problem = _build(graph, layers, inplace, 16)
    orders = [list(p) for p in itertools.permutations(range(len(layers))) if is_topological(graph, layers, list(p))]
    assert result.exact
    assert is_topological(graph, layers, result.order)
    assert result.peak == min(order_peak(problem, order) for order in orders)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag=random_dags(), inplace=st.sampled_from(["off", "auto"]), seed=st.integers(0, 1000))
def test_schedule_cost_matches_liveness(dag, inplace: str, seed: int) -> None:
    graph, layers = dag
    orders = [list(p) for p in itertools.permutations(range(len(layers))) if is_topological(graph, layers, list(p))]
    order = random.Random(seed).choice(orders)
    ordered = [layers[i] for i in order]
    candidates = [] if inplace == "off" else inplace_candidates(graph, ordered)
    buffers = build_buffers(graph, ordered, {c.step: c.position for c in candidates})
    assert order_peak(_build(graph, layers, inplace, 16), order) == lower_bound(buffers.buffers, 16)


# Small models from tests/models/planning, compiled and checked against TFLM.


def verify(path: Path, options: CompileOptions, samples: int = 3):
    """Compile with `options`, run on the host and compare with TFLM; return (compiled, comparisons)."""
    graph = load_model(path)
    data = random_samples(graph, samples, seed=0)
    compiled = compile_graph(graph, options)
    expected = run_reference(path, data, "tflm", len(graph.outputs))
    with tempfile.TemporaryDirectory(prefix="tinycompile-inplace-") as tmp:
        generated = run_generated(compiled, data, Path(tmp))
    return compiled, compare(graph, generated, expected, 0.0)


# Byte counts of the inverted residual block: its input and the tensors of its expanded layers.
BLOCK_INPUT = 16 * 16 * 8
EXPANDED = 16 * 16 * 48
WIDE = 16 * 16 * 32  # a wide tensor of two_branches.tflite


@pytest.mark.parametrize("inplace", ["off", "auto", "all"])
def test_inverted_residual_bit_exact(inplace: str) -> None:
    compiled, comparisons = verify(MODELS / "inverted_residual.tflite", CompileOptions(inplace=inplace))
    assert all(c.mismatches == 0 for c in comparisons), comparisons
    check_plan(compiled.buffers.buffers, compiled.plan, 16)
    assert compiled.arena_size == compiled.lower_bound
    depthwise_live = compiled.layer_memory[1].live_bytes
    if inplace == "off":
        assert compiled.buffers.inplace == {}
        assert depthwise_live >= BLOCK_INPUT + 2 * EXPANDED
        return

    # In place, the depthwise layer on the expanded tensor no longer needs two 12 KB buffers.
    assert 1 in compiled.buffers.inplace
    assert depthwise_live < BLOCK_INPUT + 2 * EXPANDED
    off = compile_graph(load_model(MODELS / "inverted_residual.tflite"), CompileOptions(inplace="off"))
    assert compiled.arena_size < off.arena_size
    # The final stride-2 depthwise layer is not at the peak, so only "all" rewrites it.
    assert (4 in compiled.buffers.inplace) == (inplace == "all")


@pytest.mark.parametrize("reorder", [False, True])
def test_two_branches_reordered_bit_exact(reorder: bool) -> None:
    compiled, comparisons = verify(MODELS / "two_branches.tflite", CompileOptions(reorder=reorder))
    assert all(c.mismatches == 0 for c in comparisons), comparisons
    order = [layer.op.index for layer in compiled.layers]
    peak_live = max(memory.live_bytes for memory in compiled.layer_memory)
    if reorder:
        assert order == [0, 2, 1, 3, 4]
        assert peak_live < 2 * WIDE
        stored = compile_graph(load_model(MODELS / "two_branches.tflite"), CompileOptions(reorder=False))
        assert compiled.arena_size < stored.arena_size
    else:
        assert order == [0, 1, 2, 3, 4]
        assert peak_live >= 2 * WIDE
