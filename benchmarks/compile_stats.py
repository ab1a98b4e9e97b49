"""Measure compile time, arena and const-data bytes of the real models; print a Markdown table.

Usage: .venv/bin/python benchmarks/compile_stats.py [--repeat N]
Compile time is the median wall time of N in-process compiles (frontend to rendered C text), so it
depends on the machine; arena and const bytes do not.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from real_models import MODELS, SHARED

from tinycompile.codegen.emit import render_model
from tinycompile.compiler import compile_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="compiles per model; the median time is reported")
    args = parser.parse_args()
    print("| model | compile time (s) | arena (bytes) | const data (bytes) | planner | layers |")
    print("|---|---:|---:|---:|---|---:|")
    for rel in MODELS:
        path = SHARED / rel
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            compiled = compile_model(path)
            files = render_model(compiled)
            times.append(time.perf_counter() - start)
        const_bytes = _const_bytes(files["report.json"])
        print(f"| {Path(rel).name} | {statistics.median(times):.2f} | {compiled.arena_size:,} | {const_bytes:,} "
              f"| {compiled.plan.planner} | {len(compiled.layers)} |")


def _const_bytes(report_json: str) -> int:
    import json

    return json.loads(report_json)["const_bytes"]


if __name__ == "__main__":
    main()
