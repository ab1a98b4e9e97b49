"""Compare tinycompile's arena with TFLM's on the public int8 models; write docs/benchmarks.md.

For every .tflite model in the mlperf_tiny and tflm folders of the shared model collection (the
`shared/models` folder beside the repository) that tinycompile compiles, and for the small models
in tests/models/planning, this script records:
- TFLM's arena: the "Arena allocation total" (and its "head": activations and kernel scratch) that
  print_allocations() of the tflite-micro Python interpreter prints to stderr, from a subprocess
  because the interpreter prints from C++;
- the lower bound of tinycompile's buffers with every tensor in its own buffer, and with every
  in-place layer on (merged buffers);
- the arena of each planner with in-place layers off and in the default mode (auto);
- the default arena (planner auto, in-place auto, reordering on) and its ratio to TFLM's total,
  and the default arena with the portable kernels;
- the wall time of one compile with the default options (frontend excluded).

The table replaces the "## Arena size versus TFLM" section of docs/benchmarks.md (other sections
are kept) unless --no-write is given.

Usage: .venv/bin/python benchmarks/arena.py [--no-write]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinycompile.compiler import CompileOptions, compile_graph, load_model
from tinycompile.errors import TinyCompileError
from tinycompile.planning import available_planners

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Arena size versus TFLM"
COMMAND = ".venv/bin/python benchmarks/arena.py"

TFLM_SCRIPT = """
import sys
from tflite_micro.python.tflite_micro import runtime
runtime.Interpreter.from_file(sys.argv[1], arena_size=8 << 20).print_allocations()
"""


@dataclass
class Row:
    """One model's measurements, in bytes unless named otherwise."""

    name: str
    tflm_total: int | None = None
    tflm_head: int | None = None
    bound_separate: int = 0
    bound_inplace: int = 0
    arenas: dict[tuple[str, str], int] = field(default_factory=dict)  # (planner, in-place mode) -> bytes
    default: int = 0
    default_planner: str = ""
    portable: int = 0  # default options but the portable kernels, whose only scratch is in-place depthwise
    peak_op: str = ""  # op type of the layer with the most live bytes in the default plan
    inplace_layers: int = 0
    seconds: float = 0.0


def tflm_arena(path: Path) -> tuple[int | None, int | None]:
    """Return TFLM's (total, head) arena bytes for the model, or (None, None) if TFLM fails."""
    result = subprocess.run([sys.executable, "-c", TFLM_SCRIPT, str(path)], capture_output=True, text=True,
                            timeout=300)
    found = dict(re.findall(r"Arena allocation (total|head) (\d+) bytes", result.stdout + result.stderr))
    if "total" not in found:
        return None, None
    return int(found["total"]), int(found["head"])


def measure(path: Path, name: str) -> Row:
    """Compile `path` with every planner and in-place mode and collect the numbers of one row."""
    row = Row(name)
    for planner in available_planners():
        for inplace in ("off", "auto"):
            row.arenas[planner, inplace] = compile_graph(load_model(path), CompileOptions(
                planner=planner, inplace=inplace)).arena_size
    row.bound_separate = compile_graph(load_model(path), CompileOptions(planner="greedy", inplace="off")).lower_bound
    row.bound_inplace = compile_graph(load_model(path), CompileOptions(planner="greedy", inplace="all")).lower_bound
    graph = load_model(path)
    start = time.perf_counter()
    compiled = compile_graph(graph, CompileOptions())
    row.seconds = time.perf_counter() - start
    row.default = compiled.arena_size
    row.default_planner = compiled.plan.planner
    row.inplace_layers = len(compiled.buffers.inplace)
    row.peak_op = compiled.layers[compiled.peak_step].op.op_type
    row.portable = compile_graph(load_model(path), CompileOptions(kernels="portable")).arena_size
    row.tflm_total, row.tflm_head = tflm_arena(path)
    return row


def candidate_models() -> list[tuple[str, Path]]:
    shared = sorted((SHARED / "mlperf_tiny").glob("*.tflite")) + sorted((SHARED / "tflm").glob("*/*.tflite"))
    planning = sorted((REPO / "tests" / "models" / "planning").glob("*.tflite"))
    return [(p.name, p) for p in shared] + [(f"{p.name} (test model)", p) for p in planning]


def number(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def render(rows: list[Row], skipped: list[tuple[str, str]]) -> str:
    planners = available_planners()
    header = (["model", "TFLM total", "TFLM head", "bound, separate", "bound, in place"]
              + [f"{p}, off" for p in planners] + [f"{p}, auto" for p in planners]
              + ["default", "default / TFLM total", "default / bound, separate", "in-place layers", "peak op",
                 "compile s", "portable kernels"])
    lines = [
        SECTION,
        "",
        f"Produced by `{COMMAND}` (tinycompile's arena needs no TFLM; TFLM's numbers come from the",
        "tflite-micro Python package, x86 build). All numbers are bytes with 16-byte alignment.",
        "",
        "- TFLM total: `print_allocations()` \"Arena allocation total\", which includes TFLM's own "
        "bookkeeping (tensor and node structs, persistent buffers); TFLM head: its non-persistent part, "
        "the activations and kernel scratch.",
        "- bound, separate: largest sum of buffers alive at one step with every tensor in its own buffer "
        "(in tinycompile's chosen order); bound, in place: the same on the merged buffers with every "
        "in-place layer on. No plan of those buffers can be smaller.",
        "- PLANNER, off / auto: arena of that planner with in-place layers off, and in the default "
        "mode (element-wise layers always in place, depthwise only where the arena shrinks).",
        "- default: `tinycompile compile` defaults (planner auto, in-place auto, reordering on).",
        "- compile s: one compile with the default options, frontend excluded, on the machine that "
        "ran the script (wall time, so it varies).",
        "- portable kernels: the default arena with the portable kernels (`CompileOptions(kernels=\"portable\")`). "
        "The specialized kernels (the default) add scratch buffers (im2col rows, depthwise row rings).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in rows:
        ratio = f"{row.default / row.tflm_total:.2f}" if row.tflm_total else "n/a"
        to_bound = f"{row.default / row.bound_separate:.3f}" if row.bound_separate else "n/a"
        cells = ([row.name, number(row.tflm_total), number(row.tflm_head), number(row.bound_separate),
                  number(row.bound_inplace)]
                 + [number(row.arenas[p, "off"]) for p in planners]
                 + [number(row.arenas[p, "auto"]) for p in planners]
                 + [f"{row.default:,} ({row.default_planner})", ratio, to_bound, str(row.inplace_layers),
                    row.peak_op, f"{row.seconds:.3f}", number(row.portable)])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *findings(rows)]
    if skipped:
        lines += ["", "Models that tinycompile does not compile, so they have no row:", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped]
    return "\n".join(lines) + "\n"


def findings(rows: list[Row]) -> list[str]:
    """Return sentences that check the table against the arena goals."""
    measured = [row for row in rows if row.tflm_total]
    above = [row.name for row in measured if row.default > row.tflm_total]
    below = [f"{row.name} ({row.default / row.bound_separate:.2f}x)" for row in rows
             if row.default < row.bound_separate]
    far = [row.name for row in rows if row.inplace_layers == 0 and row.default > 1.03 * row.bound_separate]
    above_head = [f"{row.name} (portable kernels: {row.portable:,} of {row.tflm_head:,})" for row in measured
                  if row.tflm_head is not None and row.default > row.tflm_head]
    lines = [
        "Findings of this run:",
        "",
        "- default arena above TFLM's total: " + (", ".join(above) if above else f"none of {len(measured)} models"),
        "- default arena above TFLM's head (activations and scratch alone), because of the specialized kernels' "
        "scratch: " + (", ".join(above_head) or "none"),
        "- default arena without in-place layers but more than 3% above the bound: " + (", ".join(far) or "none"),
        "- default arena below the bound of separate buffers, thanks to in-place layers: " + (", ".join(below) or "none"),
    ]
    for row in measured:
        if row.name.startswith(("vww", "person_detect")):
            lines.append(f"- {row.name}: {row.default / row.tflm_total:.2f}x TFLM's total; its peak is at a "
                         f"{row.peak_op} layer, where no in-place layer applies")
    return lines


def write_section(text: str) -> None:
    """Replace (or append) this script's section of docs/benchmarks.md, keeping the others."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = current.find(SECTION + "\n")
    if start < 0:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        rest = current[end + 1:] if end >= 0 else ""
        updated = current[:start] + text + ("\n" + rest if rest else "")
    DOCS.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table without updating the docs")
    args = parser.parse_args()
    rows, skipped = [], []
    for name, path in candidate_models():
        try:
            rows.append(measure(path, name))
        except TinyCompileError as error:
            skipped.append((name, str(error).split(";")[0]))
            continue
        print(f"measured {name}", file=sys.stderr)
    text = render(rows, skipped)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"updated {DOCS.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
