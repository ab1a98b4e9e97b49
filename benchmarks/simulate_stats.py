"""Run the real models on a simulated board and print a Markdown table of instructions and memory.

Usage: .venv/bin/python benchmarks/simulate_stats.py [--board qemu-m4] [--samples 2] [--kernels auto]
Instruction counts come from QEMU's -icount mode (deterministic, resolution one SysTick tick per
layer); arena and flash come from the compiler and the ELF; the stack high-water mark from a
painted stack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from real_models import MODELS, SHARED

from tinycompile.simulate import simulate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="qemu-m4")
    parser.add_argument("--samples", type=int, default=2, help="random samples per model (counts are means)")
    parser.add_argument("--kernels", default="auto", help="kernel set: auto, optimized, compact or portable")
    args = parser.parse_args()
    print("| model | MACs | instructions | instructions/MAC | arena (B) | stack high-water (B) | flash (B) | bit-exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for rel in MODELS:
        result = simulate_model(SHARED / rel, board=args.board, samples=args.samples, kernels=args.kernels)
        print(f"| {Path(rel).name} | {result.compiled.total_macs:,} | {result.run.total_instructions:,} "
              f"| {result.instructions_per_mac:.2f} | {result.compiled.arena_size:,} | {result.run.stack_used:,} "
              f"| {result.image.flash:,} | {'yes' if result.ok else 'NO'} |")


if __name__ == "__main__":
    main()
