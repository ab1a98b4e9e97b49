"""Memory plans of the real public models: valid, bit-exact on the host under every planner with
every in-place layer on, and no larger than TFLM's arena."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conftest import shared_model
from tinycompile.compiler import CompileOptions, compile_graph, load_model
from tinycompile.planning import available_planners, check_plan
from tinycompile.reference import run_reference
from tinycompile.verify import compare, random_samples, run_generated

# TFLM's arena for each model: the "Arena allocation total" that print_allocations() of the
# tflite-micro Python interpreter (x86 build) prints, which includes TFLM's own bookkeeping.
TFLM_ARENA = {
    "mlperf_tiny/kws_ref_model.tflite": 24272,
    "mlperf_tiny/vww_96_int8.tflite": 103680,
    "mlperf_tiny/pretrainedResnet_quant.tflite": 55984,
    "mlperf_tiny/ad01_int8.tflite": 3984,
    "tflm/person_detection/person_detect.tflite": 85264,
    "tflm/hello_world/hello_world_int8.tflite": 1504,
    "tflm/memory_footprint/simple_add_model.tflite": 50176,
    "tflm/network_tester/network_model_dwconv_int8.tflite": 2400,
}
MODELS = list(TFLM_ARENA)


@pytest.mark.parametrize("model", MODELS)
def test_plans_valid_and_ordered(model: str) -> None:
    path = shared_model(model)
    arenas = {}
    for planner in available_planners():
        for inplace in ("off", "auto", "all"):
            compiled = compile_graph(load_model(path), CompileOptions(planner=planner, inplace=inplace))
            check_plan(compiled.buffers.buffers, compiled.plan, 16)
            assert compiled.arena_size >= compiled.lower_bound
            arenas[planner, inplace] = compiled.arena_size
    for inplace in ("off", "auto", "all"):
        assert arenas["exact", inplace] <= arenas["best-fit", inplace] <= arenas["greedy", inplace]
    # "auto" keeps a depthwise rewrite only when the arena shrinks.
    for planner in available_planners():
        assert arenas[planner, "auto"] <= arenas[planner, "off"]


@pytest.mark.parametrize("model", MODELS)
def test_arena_not_above_tflm(model: str) -> None:
    compiled = compile_graph(load_model(shared_model(model)))
    assert compiled.arena_size <= TFLM_ARENA[model]


@pytest.mark.parametrize("model", ["mlperf_tiny/vww_96_int8.tflite", "tflm/person_detection/person_detect.tflite"])
def test_mobilenet_arena_below_seventy_percent_of_tflm(model: str) -> None:
    compiled = compile_graph(load_model(shared_model(model)))
    assert compiled.arena_size <= 0.7 * TFLM_ARENA[model]


@pytest.mark.parametrize("model", MODELS)
def test_every_planner_bit_exact_in_place(model: str) -> None:
    """Each distinct plan of the model, with every in-place layer on, matches TFLM on 3 samples."""
    path = shared_model(model)
    graph = load_model(path)
    samples = random_samples(graph, 3, seed=0)
    expected = run_reference(path, samples, "tflm", len(graph.outputs))
    verified: dict[tuple, str] = {}
    for planner in available_planners():
        compiled = compile_graph(load_model(path), CompileOptions(planner=planner, inplace="all"))
        key = (tuple(layer.kernel for layer in compiled.layers), tuple(sorted(compiled.plan.offsets.items())))
        if key in verified:
            continue  # the same kernels at the same offsets as an already verified planner
        with tempfile.TemporaryDirectory(prefix="tinycompile-plan-") as tmp:
            generated = run_generated(compiled, samples, Path(tmp))
        for comparison in compare(graph, generated, expected, 0.0):
            assert comparison.mismatches == 0, f"{planner}: {comparison}"
        verified[key] = planner
    assert verified
