"""The `tinycompile` command line.

Every user error (bad model, unsupported op, wrong input, over budget, missing tool) ends as one
line on stderr and exit code 2; no traceback reaches the user.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from tinycompile import __version__
from tinycompile.errors import TinyCompileError

console = Console()
err_console = Console(stderr=True)

model_argument = click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
rounding_option = click.option(
    "--rounding", type=click.Choice(["tflm", "litert"]), default="tflm", show_default=True,
    help="Requantization rounding to reproduce: TFLM's kernels or LiteRT's reference kernels.",
)


def parse_input_shape(ctx, param, values: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Parse repeated NAME:D0,D1,... options into {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in values:
        name, sep, dims = text.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise click.BadParameter(f"'{text}' is not NAME:D0,D1,... with positive dimensions, "
                                     "e.g. input:1,3,32,32", ctx=ctx, param=param)
        shapes[name] = shape
    return shapes


kernels_option = click.option(
    "--kernels", type=click.Choice(["auto", "optimized", "compact", "portable"]), default="auto", show_default=True,
    help="Kernel set: auto and optimized pick specialized kernels where they apply (int16 conv weights, "
         "fastest), compact keeps int8 conv weights (smaller flash), portable uses the plain C kernels only.",
)
input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, callback=parse_input_shape, metavar="NAME:D0,D1,...",
    help="Fix the shape of an ONNX graph input with dynamic dimensions; repeatable.",
)
planner_option = click.option(
    "--planner", default="auto", show_default=True,
    help="Memory planner by name (greedy, best-fit, exact); auto keeps the smallest arena.",
)
inplace_option = click.option(
    "--inplace", type=click.Choice(["auto", "all", "off"]), default="auto", show_default=True,
    help="Layers whose output overwrites a dying input: auto (element-wise always, depthwise when the "
         "arena shrinks), all, or off.",
)
reorder_option = click.option(
    "--reorder/--no-reorder", default=True, show_default=True,
    help="Run the layers in the topological order with the lowest peak memory.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinycompile")
@click.option("-v", "--verbose", count=True, help="Log progress (-v) or debug details (-vv) to stderr.")
def cli(verbose: int) -> None:
    """Compile full-integer int8 models to static-memory C99 for microcontrollers."""
    levels = {0: logging.WARNING, 1: logging.INFO}
    level = levels.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command("compile")
@model_argument
@click.option("-o", "--output", "output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the generated C into.")
@click.option("--force", is_flag=True, help="Replace the output folder if it is not empty.")
@rounding_option
@planner_option
@inplace_option
@reorder_option
@click.option("--sram-budget", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Fail when the arena needs more than BYTES of SRAM.")
@input_shape_option
@kernels_option
def compile_command(model: Path, output: Path, force: bool, rounding: str, planner: str, inplace: str,
                    reorder: bool, sram_budget: int | None, input_shapes: dict[str, tuple[int, ...]],
                    kernels: str) -> None:
    """Compile MODEL into a self-contained C99 folder with a static memory plan."""
    from tinycompile.codegen.emit import write_model
    from tinycompile.compiler import CompileOptions, compile_model

    options = CompileOptions(rounding=rounding, planner=planner, inplace=inplace, reorder=reorder,
                             sram_budget=sram_budget, kernels=kernels)
    compiled = compile_model(model, options, input_shapes)
    write_model(compiled, output, force=force)
    print_compile_summary(compiled, output)


def print_compile_summary(compiled, output: Path | None) -> None:
    step = compiled.peak_step
    peak = compiled.layers[step].op
    if output is not None:
        with_code = sum(1 for layer in compiled.layers if layer.kernel is not None)
        aliases = len(compiled.layers) - with_code
        note = f", {aliases} of them only reuse their input's memory" if aliases else ""
        console.print(f"wrote {output}/ ({plural(len(compiled.layers), 'layer')}{note})")
    bound = compiled.lower_bound
    gap = 100.0 * (compiled.arena_size - bound) / bound if bound else 0.0
    console.print(f"arena: {compiled.arena_size:,} bytes (planner {compiled.plan.planner}, "
                  f"lower bound {bound:,}, +{gap:.1f}%)", highlight=False)
    console.print(f"peak layer: {peak.index} {peak.op_type} '{peak.short_name}' with "
                  f"{compiled.layer_memory[step].live_bytes:,} bytes live", markup=False, highlight=False,
                  soft_wrap=True)
    inplace = len(compiled.buffers.inplace)
    reordered = [layer.op.index for layer in compiled.layers] != [op.index for op in compiled.graph.operators]
    if inplace or reordered:
        console.print(("1 layer runs" if inplace == 1 else f"{inplace} layers run") + " in place"
                      + ("; layers reordered to lower the peak" if reordered else ""))
    console.print(f"MACs: {compiled.total_macs:,}")


@cli.command("verify")
@model_argument
@click.option("--input", "inputs", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Raw binary or .npy file of whole samples in the model's input type; repeatable.")
@click.option("--samples", default=10, show_default=True, type=click.IntRange(min=0),
              help="Number of random samples to add to the input files.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random samples.")
@click.option("--tolerance", default=None, type=click.FloatRange(min=0),
              help="Largest difference that still counts as a match, in output units (in quantization steps "
                   "for an ONNX model's dequantized outputs). Default: 1 for ONNX models, 0 for TFLite.")
@rounding_option
@planner_option
@input_shape_option
@kernels_option
def verify_command(model: Path, inputs: tuple[Path, ...], samples: int, seed: int, tolerance: float | None,
                   rounding: str, planner: str, input_shapes: dict[str, tuple[int, ...]], kernels: str) -> None:
    """Compile MODEL, run the C on the host, and compare every output element with the reference."""
    from tinycompile.verify import verify_model

    result = verify_model(model, rounding=rounding, samples=samples, seed=seed, inputs=list(inputs),
                          tolerance=tolerance, planner=planner, input_shapes=input_shapes, kernels=kernels)
    print_verify_result(result)
    if not result.ok:
        sys.exit(1)


def print_verify_result(result) -> None:
    table = Table(title=f"{Path(result.model).name}: generated C vs {reference_name(result.reference)} "
                        f"({plural(result.samples, 'sample')}, rounding {result.rounding}, "
                        f"tolerance {result.tolerance:g})")
    table.add_column("output")
    table.add_column("elements", justify="right")
    table.add_column("mismatches", justify="right")
    table.add_column("max |diff|", justify="right")
    for o in result.outputs:
        table.add_row(o.name[:48], f"{o.elements:,}", str(o.mismatches), f"{o.max_abs_diff:g}")
    console.print(table)
    if not result.ok:
        verdict = "FAIL"
    elif result.tolerance == 0:
        verdict = "PASS: bit-exact"
    else:
        verdict = "PASS"
    console.print(verdict)


@cli.command("analyze")
@model_argument
@click.option("--board", default=None, help="Board whose SRAM and flash limits to compare with (default qemu-m4).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Print a table for people or JSON for tools.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE.png",
              help="Also draw every tensor as a lifetime x size rectangle at its arena offset.")
@rounding_option
@planner_option
@inplace_option
@reorder_option
@input_shape_option
@kernels_option
def analyze_command(model: Path, board: str | None, output_format: str, plot: Path | None, rounding: str,
                    planner: str, inplace: str, reorder: bool, input_shapes: dict[str, tuple[int, ...]],
                    kernels: str) -> None:
    """Report per-layer memory and compute of MODEL, and its SRAM and flash against a board."""
    import json

    from tinycompile.analyze import analyze_model, plot_plan, render_text, report_json
    from tinycompile.compiler import CompileOptions, compile_model

    if plot is not None:
        check_plot_path(plot)
    options = CompileOptions(rounding=rounding, planner=planner, inplace=inplace, reorder=reorder, kernels=kernels)
    report = analyze_model(compile_model(model, options, input_shapes), board)
    if output_format == "json":
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        click.echo(render_text(report, width=console.width if console.is_terminal else 160), nl=False)
    if plot is not None:
        plot_plan(report, plot)
        if output_format == "text":
            click.echo(f"wrote {plot}")


@cli.command("simulate")
@model_argument
@click.option("--board", default="qemu-m4", show_default=True, help="Simulated board (qemu-m3, qemu-m4, ...).")
@click.option("--input", "inputs", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Raw binary or .npy file of whole samples in the model's input type; repeatable.")
@click.option("--samples", default=5, show_default=True, type=click.IntRange(min=0),
              help="Number of random samples to add to the input files.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random samples.")
@click.option("--opt", default="-O2", show_default=True, type=click.Choice(["-O2", "-Os", "-O3", "-O1", "-O0"]),
              help="Optimization level of the cross build.")
@click.option("--sram-budget", type=click.IntRange(min=1), default=None,
              help="SRAM budget in bytes (default: the board's, 256 KB for qemu-* boards).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds before a hanging firmware is stopped (default: from the model's MACs).")
@click.option("--tolerance", default=None, type=click.FloatRange(min=0),
              help="Largest difference that still counts as a match, in output units (in quantization steps "
                   "for float outputs); default 1 for ONNX models, 0 for TFLite.")
@click.option("--labels", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Text file with one class name per line, to name the predicted classes.")
@rounding_option
@planner_option
@input_shape_option
@kernels_option
def simulate_command(model: Path, board: str, inputs: tuple[Path, ...], samples: int, seed: int, opt: str,
                     sram_budget: int | None, timeout: float | None, tolerance: float | None,
                     labels: Path | None, rounding: str, planner: str,
                     input_shapes: dict[str, tuple[int, ...]], kernels: str) -> None:
    """Cross-build MODEL for a simulated board, run it in QEMU and compare it with the reference."""
    from tinycompile.simulate import simulate_model

    names = read_labels(labels) if labels else None
    if names is not None:
        from tinycompile.compiler import load_model

        classes = load_model(model, input_shapes).outputs[0].num_elements
        if len(names) != classes:
            raise TinyCompileError(
                f"labels file '{labels}' has {plural(len(names), 'name')} but output 0 of the model has "
                f"{plural(classes, 'class')}; give one name per line for each class"
            )
    with console.status(f"compiling, cross-building and running {model.name} on {board}"):
        result = simulate_model(model, board=board, inputs=list(inputs), samples=samples, seed=seed, opt=opt,
                                sram_budget=sram_budget, rounding=rounding, planner=planner,
                                tolerance=tolerance, timeout=timeout, input_shapes=input_shapes, kernels=kernels)
    print_simulation(result, opt, names)
    if not result.ok:
        sys.exit(1)


PLOT_FORMATS = (".png", ".pdf", ".svg")


def check_plot_path(path: Path) -> None:
    """Reject a plot file that matplotlib cannot write before any work is done."""
    if path.suffix.lower() not in PLOT_FORMATS:
        raise TinyCompileError(
            f"plot file '{path}' has suffix '{path.suffix}'; use one of {', '.join(PLOT_FORMATS)}"
        )
    if not path.parent.is_dir():
        raise TinyCompileError(f"folder '{path.parent}' of plot file '{path}' not found; create it first")


REFERENCE_NAMES = {"tflm": "TFLM", "litert": "LiteRT", "onnxruntime": "ONNX Runtime"}


def reference_name(reference: str) -> str:
    return REFERENCE_NAMES.get(reference, reference)


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    suffix = "es" if noun.endswith(("s", "x", "ch", "sh")) else "s"
    return f"{count:,} {noun}{suffix}"


def read_labels(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise TinyCompileError(f"cannot read labels file '{path}': {exc.strerror}") from None


def print_simulation(result, opt: str, labels: list[str] | None = None) -> None:
    board = result.board
    run = result.run
    console.print(f"[bold]{Path(result.model).name}[/bold] on {board.name} ({board.cpu}, QEMU "
                  f"{board.qemu_machine}), {opt}")

    top = [int(np.argmax(outs[0])) for outs in result.generated]
    if result.compiled.graph.outputs[0].num_elements > 1:
        named = [f"{c} ({labels[c]})" if labels and c < len(labels) else str(c) for c in top]
        console.print(f"predicted class (argmax of output 0) per sample: {', '.join(named)}")

    mismatches = sum(o.mismatches for o in result.outputs)
    elements = sum(o.elements for o in result.outputs)
    verdict = "PASS" if result.ok else "FAIL"
    exact = ", bit-exact" if result.ok and result.tolerance == 0 else ""
    console.print(f"verification vs {reference_name(result.reference)}: {plural(result.samples, 'sample')}, {mismatches} of "
                  f"{elements:,} output elements differ (tolerance {result.tolerance:g}): {verdict}{exact}")

    table = Table(title=f"instructions per layer (simulated: QEMU -icount, resolution "
                        f"{run.instructions_per_tick:g} instructions per layer)")
    table.add_column("layer", justify="right")
    table.add_column("op")
    table.add_column("MACs", justify="right")
    table.add_column("instructions", justify="right")
    table.add_column("instr/MAC", justify="right")
    for layer in result.layers:
        per_mac = f"{layer.instructions / layer.macs:.2f}" if layer.macs else "-"
        table.add_row(str(layer.op_index), layer.op_type, f"{layer.macs:,}", f"{layer.instructions:,}", per_mac)
    console.print(table)
    console.print(f"total: {run.total_instructions:,} instructions per inference, "
                  f"{result.compiled.total_macs:,} MACs, {result.instructions_per_mac:.2f} instructions per MAC")

    image = result.image
    flash_limit = board.flash.size
    console.print(f"flash: {image.flash:,} bytes (text {image.text:,} + rodata {image.rodata:,} + data "
                  f"{image.data:,}) of {flash_limit:,} ({100 * image.flash / flash_limit:.1f}%)")
    static = image.data + image.bss
    total = static + run.stack_used
    console.print(f"SRAM: {total:,} bytes of the {result.sram_budget:,}-byte budget "
                  f"({100 * total / result.sram_budget:.1f}%): data+bss {static:,} "
                  f"(arena {result.compiled.arena_size:,}) + stack high-water {run.stack_used:,} "
                  f"of {run.stack_size:,} reserved")


def project_options(function):
    """Options that `project` and `flash` share: board, golden vectors and compilation."""
    options = [
        click.option("--board", default="qemu-m4", show_default=True,
                     help="Board name from boards/ (qemu-* boards are simulated)."),
        click.option("--input", "inputs", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
                     help="Raw binary or .npy file of whole samples for the golden-vector test; repeatable."),
        click.option("--samples", default=4, show_default=True, type=click.IntRange(min=0),
                     help="Number of random golden samples to add to the input files."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random golden samples."),
        click.option("--sram-budget", type=click.IntRange(min=1), default=None, metavar="BYTES",
                     help="SRAM budget in bytes (default: 256 KB on qemu-* boards, all SRAM on real ones)."),
        click.option("--timeout", "timeout_s", default=300, show_default=True, type=click.IntRange(min=1),
                     help="Seconds that QEMU may run the firmware or the test (qemu-* boards)."),
        rounding_option,
        planner_option,
        input_shape_option,
    ]
    for option in reversed(options):
        function = option(function)
    return function


@cli.command("project")
@model_argument
@click.option("-o", "--output", "output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write the PlatformIO project into.")
@click.option("--force", is_flag=True, help="Replace the output folder if it is not empty.")
@click.option("--check", is_flag=True,
              help="Also link the firmware with the system Arm toolchain against the board's memory map, "
                   "to prove offline that it fits the board's flash and SRAM.")
@project_options
def project_command(model: Path, output: Path, force: bool, check: bool, board: str, inputs: tuple[Path, ...],
                    samples: int, seed: int, sram_budget: int | None, timeout_s: int, rounding: str, planner: str,
                    input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Write a PlatformIO project that runs MODEL on a board, with a golden-vector unit test."""
    from tinycompile.deploy.platformio import generate_project

    project = generate_project(model, board, output, force=force, check=check, rounding=rounding, planner=planner,
                               sram_budget=sram_budget, golden_samples=samples, seed=seed, inputs=inputs,
                               input_shapes=input_shapes or None, timeout_s=timeout_s)
    print_project_summary(project)
    if project.board.simulated:
        console.print(f"next: cd {project.path} && pio run -t upload && pio test "
                      f"(or: tinycompile flash {model} --board {project.board.name})", markup=False,
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"next: cd {project.path} && pio run -t upload && pio device monitor "
                      f"(or: tinycompile flash {model} --board {project.board.name} --monitor)", markup=False,
                      highlight=False, soft_wrap=True)


def print_project_summary(project) -> None:
    fit = project.fit
    console.print(f"wrote {project.path}/ (PlatformIO environment {project.env_name}, "
                  f"{plural(project.golden.samples, 'golden sample')} from {reference_name(project.golden.reference)})",
                  markup=False, highlight=False, soft_wrap=True)
    console.print(f"SRAM estimate: {fit.required_bytes:,} of {fit.sram_budget:,} bytes "
                  f"(arena {project.compiled.arena_size:,})", highlight=False)
    image = project.link_check
    if image is not None:
        board = project.board
        console.print(f"link check on {board.name}: flash {image.flash:,} of {board.flash.size:,} bytes, "
                      f"SRAM {image.sram:,} of {image.sram_budget:,} bytes: fits", highlight=False, soft_wrap=True)


@cli.command("flash")
@model_argument
@click.option("--port", default=None, help="Serial port of a real board, e.g. /dev/ttyACM0 (default: PlatformIO's choice).")
@click.option("--monitor", is_flag=True, help="Open the serial monitor after flashing a real board.")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder to keep the PlatformIO project in (default: a temporary folder, deleted afterwards).")
@click.option("--force", is_flag=True, help="Replace the output folder if it is not empty.")
@project_options
def flash_command(model: Path, port: str | None, monitor: bool, output: Path | None, force: bool, board: str,
                  inputs: tuple[Path, ...], samples: int, seed: int, sram_budget: int | None, timeout_s: int,
                  rounding: str, planner: str, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Generate the PlatformIO project of MODEL and upload it: flash a real board, or run it in QEMU.

    On a qemu-* board the firmware's output is printed and its exit status becomes this command's.
    """
    import tempfile

    from tinycompile.deploy.platformio import check_tool_scons, flash, generate_project, remove_project

    check_tool_scons()
    project_dir = output if output is not None else Path(tempfile.mkdtemp(prefix="tinycompile-flash-"))
    try:
        project = generate_project(model, board, project_dir, force=force, rounding=rounding, planner=planner,
                                   sram_budget=sram_budget, golden_samples=samples, seed=seed, inputs=inputs,
                                   input_shapes=input_shapes or None, timeout_s=timeout_s)
        result = flash(project.path, project.board, port=port, monitor=monitor,
                       echo=lambda line: click.echo(line, nl=False))
    finally:
        if output is None:
            remove_project(project_dir)
    if result.firmware_status is not None and result.firmware_status != 0:
        err_console.print(f"error: the firmware on {board} exited with status {result.firmware_status}",
                          markup=False, highlight=False)
    sys.exit(result.exit_status)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user errors into one-line messages with exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="tinycompile", standalone_mode=False)
    except TinyCompileError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "tinycompile"
        err_console.print(f"error: {exc.format_message().rstrip('.')}; run '{command} --help' for usage",
                          markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.ClickException as exc:
        err_console.print(f"error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


from tinycompile.training.cli import simulate_train_command, train_compile_command  # noqa: E402

cli.add_command(train_compile_command)
cli.add_command(simulate_train_command)


if __name__ == "__main__":
    main()
