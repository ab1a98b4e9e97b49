"""The `train-compile` and `simulate-train` commands of the tinycompile command line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tinycompile.errors import BudgetError

console = Console()

_model = click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
_config = click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), required=True,
                       help="Training configuration (YAML): head, updated biases and weights, learning rate.")
_planner = click.option("--planner", default="auto", show_default=True,
                        help="Memory planner by name (greedy, best-fit, exact); auto keeps the smallest arena.")


def print_memory(program) -> None:
    memory = program.memory
    console.print(f"training step SRAM: {memory.arena_size:,} bytes (planner {memory.planner}, lower bound "
                  f"{memory.lower_bound:,}, budget {program.config.sram_budget:,}), of which {memory.master_bytes:,} "
                  "hold float32 master copies")
    console.print(f"peak step {memory.peak_step}: {memory.peak_comment}")
    table = Table(title="bytes alive at the peak step")
    table.add_column("kind")
    table.add_column("bytes", justify="right")
    for kind, size in memory.peak_by_kind.items():
        table.add_row(kind, f"{size:,}")
    console.print(table)
    console.print(f"constant data in flash: {memory.const_bytes:,} bytes (code not included)")


@click.command("train-compile")
@_model
@_config
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the generated training C into.")
@click.option("--force", is_flag=True, help="Replace the output folder if it is not empty.")
@click.option("--compare-schemes", "last_k", type=click.IntRange(min=1), default=None, metavar="K",
              help="Also plan full update, the last K layers, bias-only and the configured scheme, and print "
                   "their SRAM side by side.")
@_planner
def train_compile_command(model: Path, config: Path, output: Path, force: bool, last_k: int | None,
                          planner: str) -> None:
    """Compile the sparse-update training step of MODEL (.tflite, or tiny-training .json) to C."""
    from tinycompile.training.codegen import write_training

    if last_k is not None:
        print_scheme_table(model, config, last_k, planner)
    program = _compile(model, config, planner)
    write_training(program, output, force=force)
    console.print(f"wrote {output}/ ({len(program.schedule.steps)} steps, "
                  f"{sum(layer.trained for layer in program.tg.layers)} trained layers)")
    print_memory(program)


def print_scheme_table(model: Path, config: Path, last_k: int, planner: str) -> None:
    from tinycompile.training.config import load_config
    from tinycompile.training.memory import compare_schemes

    parsed = load_config(config)
    table = Table(title=f"training-step SRAM by update scheme (budget {parsed.sram_budget:,} bytes)")
    for name in ("scheme", "trained layers", "arena bytes", "master copies", "fits", "peak step"):
        table.add_column(name, justify="left" if name in ("scheme", "peak step") else "right")
    for row in compare_schemes(model, parsed, last_k, planner):
        table.add_row(row.name, str(row.trained_layers), f"{row.arena_bytes:,}", f"{row.master_bytes:,}",
                      "yes" if row.fits else "no", row.peak_comment)
    console.print(table)


def _compile(model: Path, config: Path, planner: str):
    from tinycompile.training.compiler import compile_training

    try:
        return compile_training(model, config, planner=planner)
    except BudgetError:
        program = compile_training(model, config, planner=planner, check_budget=False)
        print_memory(program)
        raise


@click.command("simulate-train")
@_model
@_config
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help=".npz file with x_train, y_train and optionally x_test, y_test (int8 or float inputs).")
@click.option("--target", type=click.Choice(["host", "qemu"]), default="host", show_default=True,
              help="Run on the host C compiler's build, or as Cortex-M firmware in QEMU.")
@click.option("--board", default="qemu-m4", show_default=True, help="Simulated board for --target qemu.")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Epochs to train; default: the config's.")
@click.option("--max-train", type=click.IntRange(min=1), default=None, help="Use at most this many training samples.")
@click.option("--max-test", type=click.IntRange(min=0), default=None, help="Use at most this many test samples.")
@click.option("--export", "export_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the trained parameters to this file (host target).")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep the generated C and the build here instead of a temporary folder.")
@_planner
def simulate_train_command(model: Path, config: Path, dataset: Path, target: str, board: str, epochs: int | None,
                           max_train: int | None, max_test: int | None, export_path: Path | None,
                           work_dir: Path | None, planner: str) -> None:
    """Train MODEL on DATASET with the generated step and report loss, accuracy, memory and cost."""
    from tinycompile.errors import TinyCompileError
    from tinycompile.training.codegen import write_training
    from tinycompile.training.dataset import load_dataset

    program = _compile(model, config, planner)
    data = load_dataset(dataset, program.tg.graph.inputs[0], program.tg.num_classes, max_train, max_test)
    epochs = program.config.epochs if epochs is None else epochs
    if export_path is not None and target != "host":
        raise TinyCompileError("--export works with --target host only; QEMU firmware keeps its parameters in SRAM")
    with tempfile.TemporaryDirectory(prefix="tinycompile-train-") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        out = write_training(program, root / "model", force=True)
        if target == "host":
            results, extra = _run_host(program, data, out, root, epochs, export_path)
        else:
            results, extra = _run_qemu(program, data, out, root, epochs, board)
    _print_results(results, target)
    print_memory(program)
    for line in extra:
        console.print(line)


def _run_host(program, data, out: Path, root: Path, epochs: int, export_path: Path | None):
    from tinycompile.training.host import build_training_runner, run_training_runner, write_dataset

    runner = build_training_runner(out, root / "train_runner")
    dataset = root / "dataset.bin"
    write_dataset(dataset, data.x_train, data.y_train, data.x_test, data.y_test, epochs, program.config.seed)
    result = run_training_runner(runner, dataset, epochs=epochs, export_params=export_path)
    extra = []
    if export_path is not None:
        extra.append(f"wrote the trained parameters to {export_path}")
    return result.epochs, extra


def _run_qemu(program, data, out: Path, root: Path, epochs: int, board_name: str):
    from tinycompile.deploy.boards import load_board
    from tinycompile.training.qemu import build_training_firmware, run_training_firmware

    board = load_board(board_name)
    image = build_training_firmware(out, board, root / "firmware", program.config.sram_budget)
    if image.flash > program.config.flash_budget:
        raise BudgetError(f"the training firmware needs {image.flash:,} bytes of flash, over the flash budget of "
                          f"{program.config.flash_budget:,} bytes")
    result = run_training_firmware(image, board, data.x_train, data.y_train, data.x_test, data.y_test, epochs,
                                   program.config.seed)
    extra = [
        f"firmware on {board.name}: flash {image.flash:,} bytes, SRAM {image.sram:,} bytes "
        f"(data + bss + {image.stack_size:,} stack; stack used {result.stack_used:,})",
        f"instructions per training step: {result.instructions_per_step:,.0f}; "
        f"per inference: {result.instructions_per_inference:,.0f} (QEMU -icount, not cycles)",
    ]
    return result.epochs, extra


def _print_results(results, target: str) -> None:
    table = Table(title=f"training on the {target}")
    table.add_column("epoch", justify="right")
    table.add_column("train loss", justify="right")
    table.add_column("test accuracy", justify="right")
    table.add_column("instructions/step" if target == "qemu" else "ms/step (host)", justify="right")
    for e in results:
        loss = "-" if e.train_loss is None else f"{e.train_loss:.4f}"
        if target == "qemu":
            cost = "-" if e.instructions_per_step is None else f"{e.instructions_per_step:,.0f}"
        else:
            cost = "-" if e.seconds_per_step is None else f"{e.seconds_per_step * 1e3:.3f}"
        table.add_row(str(e.epoch), loss, f"{e.test_accuracy:.2%}", cost)
    console.print(table)
