"""Measure the committed EmbBERT-Q-style models on qemu-m4 and print a Markdown table.

Usage: .venv/bin/python benchmarks/transformer_stats.py
For each model: tinycompile's arena and firmware flash, instructions per inference and per MAC
in QEMU (portable and specialized kernels), and TFLM's arena for the same model where TFLM can
run it (it has no GELU or SELECT kernel, so the standard-attention variant has no TFLM number).
"""

from __future__ import annotations

from pathlib import Path

from arena import tflm_arena

from tinycompile.compiler import CompileOptions
from tinycompile.simulate import simulate_model

MODELS = Path(__file__).resolve().parents[1] / "tests" / "models" / "transformer"
NAMES = ["embbert_small", "embbert_full", "standard_small"]


def main() -> None:
    print("| model | MACs | arena (B) | TFLM arena total (B) | flash (B) | instructions, portable | "
          "instr/MAC, portable | instructions, specialized | instr/MAC, specialized |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in NAMES:
        path = MODELS / f"{name}.tflite"
        rounding = "litert" if name == "standard_small" else "tflm"
        runs = {}
        for kernels in ("portable", "auto"):
            runs[kernels] = simulate_model(path, board="qemu-m4", samples=1, compile_options=CompileOptions(
                rounding=rounding, kernels=kernels))
        tflm_total, _ = tflm_arena(path)
        best = runs["auto"]
        portable = runs["portable"]
        tflm = f"{tflm_total:,}" if tflm_total else "TFLM cannot run it"
        print(f"| {name} | {best.compiled.total_macs:,} | {best.compiled.arena_size:,} | {tflm} "
              f"| {best.image.flash:,} | {portable.run.total_instructions:,} | {portable.instructions_per_mac:.2f} "
              f"| {best.run.total_instructions:,} | {best.instructions_per_mac:.2f} |")


if __name__ == "__main__":
    main()
