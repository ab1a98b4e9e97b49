"""The analyze command and module: per-layer table, JSON, plot, board limits and the SRAM budget."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import REPO, run_cli
from tinycompile.analyze import analyze_model, check_arena_budget, render_text
from tinycompile.compiler import CompileOptions, compile_graph, load_model
from tinycompile.errors import BudgetError

MODELS = REPO / "tests" / "models" / "planning"
INVERTED_RESIDUAL = MODELS / "inverted_residual.tflite"


def compiled_model(**options):
    return compile_graph(load_model(INVERTED_RESIDUAL), CompileOptions(**options))


def test_report_layers_and_peak() -> None:
    report = analyze_model(compiled_model(), measure=False)
    assert [row.op for row in report.layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD",
                                                 "DEPTHWISE_CONV_2D"]
    peaks = [row for row in report.layers if row.peak]
    assert len(peaks) == 1
    assert peaks[0].live_bytes == max(row.live_bytes for row in report.layers)
    assert peaks[0].step == report.peak_step
    depthwise = report.layers[1]
    assert depthwise.inplace
    assert depthwise.input_shapes == [[1, 16, 16, 48]]
    assert depthwise.output_shapes == [[1, 16, 16, 48]]
    assert depthwise.macs == 16 * 16 * 48 * 9
    # The block input and the 12 KB buffer that input and output share, plus the kernel's scratch.
    assert depthwise.live_bytes == 2048 + 12288 + depthwise.scratch_bytes
    # At least the 3x3x48 int8 weights and 48 int32 biases.
    assert depthwise.weight_bytes >= 9 * 48 + 48 * 4


def test_report_weights_of_portable_depthwise() -> None:
    compiled = compiled_model(inplace="off", kernels="portable")
    assert compiled.layers[1].kernel == "tc_depthwise_conv2d_s8"
    report = analyze_model(compiled, measure=False)
    # Weights (3x3x48 int8 and 48 int32 biases) and per-channel multipliers and shifts.
    assert report.layers[1].weight_bytes == 9 * 48 + 48 * 4 + 2 * 48 * 4


def test_report_bounds_with_and_without_inplace() -> None:
    compiled = compiled_model()
    report = analyze_model(compiled, measure=False)
    assert report.arena_bytes == report.lower_bound
    assert report.gap_percent == 0.0
    # With separate buffers, x, the expanded tensor and its output are alive at the depthwise step.
    assert report.lower_bound_without_inplace >= 2048 + 2 * 12288
    assert report.lower_bound < report.lower_bound_without_inplace
    off = analyze_model(compiled_model(inplace="off"), measure=False)
    assert off.lower_bound == off.lower_bound_without_inplace
    assert off.lower_bound_without_inplace == report.lower_bound_without_inplace


def test_report_totals_add_up() -> None:
    report = analyze_model(compiled_model(), board="qemu-m4", measure=False)
    f = report.footprint
    assert f.board == "qemu-m4"
    assert f.sram_limit == 256 * 1024
    assert f.sram_total == f.arena + f.static_ram + f.stack
    assert f.flash_total == f.weights + f.parameters + f.code
    assert f.weights == sum(row.weight_bytes for row in report.layers) - f.parameters
    assert "estimated" in f.source


def test_report_without_board_module_assumes_256_kb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tinycompile.deploy.boards", None)
    report = analyze_model(compiled_model(), board="qemu-m4", measure=False)
    assert report.footprint.sram_limit == 256 * 1024
    assert report.footprint.flash_limit is None
    assert "assumed 262144 bytes of SRAM" in report.footprint.notes[0]
    assert "flash:" in render_text(report)


def test_analyze_text_output(tmp_path) -> None:
    report = analyze_model(compiled_model(), measure=False)
    result = run_cli("analyze", INVERTED_RESIDUAL, "--board", "qemu-m33")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for heading in ("step", "op", "input", "output", "MACs", "weights B", "live B", "scratch B"):
        assert heading in text
    assert "1x16x16x48" in text
    assert "peak" in text
    assert "in place" in text
    assert (f"arena: {report.arena_bytes:,} bytes; lower bound {report.lower_bound:,} (+0%), "
            f"{report.lower_bound_without_inplace:,} without in-place layers") in text
    assert "SRAM:" in text
    assert "on qemu-m33" in text
    assert "flash:" in text


def test_analyze_json_output() -> None:
    result = run_cli("analyze", INVERTED_RESIDUAL, "--format", "json", "--inplace", "off")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["arena_bytes"] == compiled_model(inplace="off").arena_size
    assert report["inplace_mode"] == "off"
    assert len(report["layers"]) == 5
    assert [row["peak"] for row in report["layers"]].count(True) == 1
    assert "in place" not in {b["kind"] for b in report["buffers"]}
    footprint = report["footprint"]
    assert footprint["sram_total"] == footprint["arena"] + footprint["static_ram"] + footprint["stack"]
    assert footprint["flash_limit"] > 0


def test_analyze_writes_plot(tmp_path) -> None:
    plot = tmp_path / "plan.png"
    result = run_cli("analyze", INVERTED_RESIDUAL, "--plot", plot, "--format", "json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000


def test_analyze_unwritable_plot_is_one_line_error(tmp_path) -> None:
    result = run_cli("analyze", INVERTED_RESIDUAL, "--plot", tmp_path / "missing" / "plan.png")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "of plot file" in result.stderr
    assert "not found; create it first" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # rejected before the report is computed


def test_analyze_unknown_plot_format(tmp_path) -> None:
    result = run_cli("analyze", INVERTED_RESIDUAL, "--plot", tmp_path / "plan.txt")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "suffix '.txt'" in result.stderr
    assert "Traceback" not in result.stderr


def test_analyze_unknown_board() -> None:
    result = run_cli("analyze", INVERTED_RESIDUAL, "--board", "no-such-board")
    assert result.returncode == 2
    assert "unknown board 'no-such-board'" in result.stderr


def test_budget_error_names_bytes_peak_and_fix() -> None:
    compiled = compiled_model(inplace="off")
    needed = compiled.arena_size
    fitting = compiled_model(inplace="all").arena_size
    with pytest.raises(BudgetError) as raised:
        check_arena_budget(compiled, 20000)
    message = str(raised.value)
    assert "\n" not in message
    assert f"the arena needs {needed:,} bytes but the SRAM budget is 20,000 bytes ({needed - 20000:,} short)" in message
    assert "peak at layer 1 DEPTHWISE_CONV_2D" in message
    assert "'functional_1/conv2d_1/Relu6' 12,288 B" in message
    assert f"fits with --inplace all ({fitting:,} bytes)" in message
    check_arena_budget(compiled, needed)


def test_budget_error_suggests_board_when_nothing_fits() -> None:
    compiled = compiled_model()
    with pytest.raises(BudgetError, match=f"use a board with at least {compiled.arena_size:,} bytes of SRAM"):
        check_arena_budget(compiled, 1000)


def test_compile_over_budget_exits_with_one_line(tmp_path) -> None:
    out = tmp_path / "out"
    needed = compiled_model(inplace="off").arena_size
    result = run_cli("compile", INVERTED_RESIDUAL, "-o", out, "--inplace", "off", "--sram-budget", "20000")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: the arena needs {needed:,} bytes")
    assert result.stderr.count("\n") == 1
    assert "--inplace all" in result.stderr
    assert not out.exists()


def test_compile_within_budget_prints_summary(tmp_path) -> None:
    compiled = compiled_model()
    budget = str(compiled.arena_size)
    result = run_cli("compile", INVERTED_RESIDUAL, "-o", tmp_path / "out", "--sram-budget", budget)
    assert result.returncode == 0, result.stderr
    assert f"arena: {compiled.arena_size:,} bytes" in result.stdout
    assert f"lower bound {compiled.lower_bound:,}, +0.0%" in result.stdout
    assert f"{len(compiled.buffers.inplace)} layers run in place" in result.stdout
