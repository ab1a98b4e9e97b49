"""Write a compiled training step as a self-contained C99 folder from the Jinja2 templates.

The folder contains train.h/train.c (the API, the arena with its plan, the parameter structs and
one call per step), train_weights.h/.c (constant tensors in flash), tc_config.h, the forward and
training kernels under tc/, and report.json/report.txt with the memory plan and the layout of the
exported parameters. Files are written to a temporary sibling folder that is renamed into place.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import jinja2
import numpy as np

from tinycompile import __version__, ir
from tinycompile.codegen.c_format import c_array_body, c_identifier, c_initializer, collect_const_arrays
from tinycompile.codegen.emit import FIRMWARE_DIR, TEMPLATES_DIR, kernel_headers
from tinycompile.codegen.lowering import ConstArray
from tinycompile.outdir import check_output_folder, write_folder
from tinycompile.training.compiler import TrainingProgram
from tinycompile.training.schedule import Params, Value

TRAINING_SOURCES = ("tc_train_grad.c", "tc_train_loss.c", "tc_train_update.c")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def kernel_sources(program: TrainingProgram) -> list[str]:
    """Return the kernel source files (under firmware/kernels) the generated step needs."""
    forward = {source for s in program.schedule.steps for source in s.sources}
    return sorted(forward | set(TRAINING_SOURCES))


def weight_symbol(t: ir.Tensor) -> str:
    return f"tc_w{t.index}_{c_identifier(t.name, 40)}"


def render_training(program: TrainingProgram) -> dict[str, str]:
    """Return {relative path: text} of the generated folder, kernels excluded."""
    env = _environment()
    ctx = _context(program)
    return {
        "train.h": env.get_template("training/train.h.j2").render(ctx),
        "train.c": env.get_template("training/train.c.j2").render(ctx),
        "train_weights.h": env.get_template("training/train_weights.h.j2").render(ctx),
        "train_weights.c": env.get_template("training/train_weights.c.j2").render(ctx),
        "tc_config.h": env.get_template("model/tc_config.h.j2").render(ctx),
        "report.json": json.dumps(training_report(program), indent=2) + "\n",
        "report.txt": render_report_text(program),
    }


def write_training(program: TrainingProgram, out_dir: str | Path, force: bool = False) -> Path:
    """Write the C folder of `program` to `out_dir` atomically and return its path."""
    check_output_folder(Path(out_dir), force=force)
    copies = {f"tc/{header.name}": header for header in kernel_headers()}
    copies.update({f"tc/{source}": FIRMWARE_DIR / "kernels" / source for source in kernel_sources(program)})
    return write_folder(out_dir, render_training(program), copies, force=force)


def offset_macro(v: Value) -> str:
    return f"TC_TRAIN_V{v.id}"


def _render_arg(arg) -> str:
    if isinstance(arg, Value):
        return f"TC_ARENA_PTR({arg.c_type}, {offset_macro(arg)})"
    if isinstance(arg, Params):
        return "&" + arg.symbol
    if isinstance(arg, ir.Tensor):
        return weight_symbol(arg)
    if isinstance(arg, ConstArray):
        return arg.symbol
    if arg is None:
        return "NULL"
    return str(arg)


def _label(text: str, limit: int = 60) -> str:
    text = text.replace("*/", "* /").replace("\n", " ")
    first = text.split(";")[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def layout_description(program: TrainingProgram) -> list[dict]:
    """Describe the exported master copies in order: layer, kind, shape and selected channels."""
    rows = []
    offset = 16
    for m in program.schedule.masters:
        entry = {"layer": m.layer.index, "op_index": m.layer.op.index, "name": m.layer.op.short_name,
                 "op_type": m.layer.op.op_type, "kind": m.kind, "shape": list(m.shape), "offset": offset,
                 "scale": "int8 weight units" if m.kind == "weight" else "int32 bias units"}
        if m.kind == "weight":
            entry["channels"] = [int(c) for c in m.layer.channels]
        rows.append(entry)
        offset += m.value.nbytes
    return rows


def layout_hash(program: TrainingProgram) -> int:
    text = json.dumps(layout_description(program), sort_keys=True)
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def params_size(program: TrainingProgram) -> int:
    return 16 + program.schedule.master_bytes


def _context(program: TrainingProgram) -> dict:
    schedule = program.schedule
    tg = schedule.tg
    plan = program.plan
    graph = tg.graph
    x = graph.inputs[0]

    kind_of = {v.id: v for v in schedule.values}
    buffers = []
    for b in sorted(schedule.buffers(), key=lambda b: (plan.offsets[b.id], b.id)):
        v = kind_of[b.id]
        buffers.append({"macro": offset_macro(v), "offset": plan.offsets[b.id], "size": b.size, "first": b.first,
                        "last": b.last, "kind": v.kind, "label": _label(v.name, 50)})

    arrays: dict[str, ConstArray] = {}
    weights: dict[int, ir.Tensor] = {}
    steps = []
    for s in schedule.steps:
        for arg in s.args:
            if isinstance(arg, ConstArray):
                arrays.setdefault(arg.symbol, arg)
            elif isinstance(arg, ir.Tensor) and arg.is_constant:
                weights.setdefault(id(arg), arg)
        call = f"{s.kernel}({', '.join(_render_arg(a) for a in s.args)})"
        steps.append({"phase": s.phase, "comment": _label(s.comment, 90), "call": call, "status": s.status,
                      "assign": s.assign, "inference": s.inference})
    params = []
    for p in schedule.params:
        found: list[ConstArray] = []
        collect_const_arrays(p.struct, found)
        for a in found:
            arrays.setdefault(a.symbol, a)
        params.append({"symbol": p.symbol, "c_type": p.struct.c_type, "body": c_initializer(p.struct)})
    masters = []
    for m in schedule.masters:
        weights.setdefault(id(m.tensor), m.tensor)
        ptr = _render_arg(m.value)
        if m.kind == "bias":
            init = f"tc_train_master_from_bias({m.value.count}, {weight_symbol(m.tensor)}, {ptr})"
        else:
            init = f"tc_train_master_from_weights(&{m.slice.symbol}, {weight_symbol(m.tensor)}, {ptr})"
        masters.append({"macro": offset_macro(m.value), "count": m.value.count, "kind": m.kind,
                        "label": f"operator {m.layer.op.index} '{_label(m.layer.op.short_name, 40)}'", "init": init})

    arrays_ctx = [{"symbol": a.symbol, "c_type": a.c_type, "length": max(np.asarray(a.values).size, 1),
                   "body": c_array_body(np.asarray(a.values) if np.asarray(a.values).size
                                        else np.zeros(1, np.asarray(a.values).dtype))}
                  for a in arrays.values()]
    weights_ctx = []
    for t in sorted(weights.values(), key=lambda t: t.index):
        weights_ctx.append({"symbol": weight_symbol(t), "c_type": t.dtype.c_type, "length": max(t.num_elements, 1),
                            "name": _label(t.name), "shape": list(t.shape) or [1],
                            "body": c_array_body(t.data.reshape(-1))})

    guard = f"TC_TRAIN_{c_identifier(graph.name, 32).upper()}_H"
    return {
        "version": __version__,
        "model_name": graph.name,
        "source": f"{Path(graph.name).name}.{graph.source_format}",
        "guard": guard,
        "rounding": program.rounding,
        "planner": plan.planner,
        "arena_size": plan.arena_size,
        "master_bytes": schedule.master_bytes,
        "input_shape": list(x.shape),
        "input_scale": repr(float(x.quant.scalar_scale)),
        "input_zero_point": int(x.quant.scalar_zero_point),
        "input_size": x.nbytes,
        "num_classes": tg.num_classes,
        "logits_scale": repr(float(tg.logits.quant.scalar_scale)),
        "params_size": params_size(program),
        "learning_rate": repr(float(program.config.learning_rate)),
        "layout_hash": layout_hash(program),
        "buffers": buffers,
        "arrays": arrays_ctx,
        "params": params,
        "masters": masters,
        "steps": steps,
        "inference_steps": sum(1 for s in steps if s["inference"]),
        "logits_macro": offset_macro(schedule.logits_value),
        "input_macro": offset_macro(schedule.input_value),
        "weights": weights_ctx,
    }


def training_report(program: TrainingProgram) -> dict:
    """Return the machine-readable report: memory plan, step counts and parameter layout."""
    memory = program.memory
    tg = program.tg
    return {
        "model": tg.graph.name,
        "tinycompile": __version__,
        "arena_bytes": memory.arena_size,
        "lower_bound_bytes": memory.lower_bound,
        "planner": memory.planner,
        "master_copy_bytes": memory.master_bytes,
        "const_flash_bytes": memory.const_bytes,
        "steps": memory.steps,
        "peak_step": memory.peak_step,
        "peak_step_comment": memory.peak_comment,
        "peak_bytes_by_kind": memory.peak_by_kind,
        "sram_budget_bytes": program.config.sram_budget,
        "flash_budget_bytes": program.config.flash_budget,
        "num_classes": tg.num_classes,
        "input_shape": list(tg.graph.inputs[0].shape),
        "learning_rate": program.config.learning_rate,
        "inplace_update": program.config.inplace_update,
        "layers": [{"layer": layer.index, "op_index": layer.op.index, "op_type": layer.op.op_type,
                    "name": layer.op.short_name, "head": layer.is_head, "bias": layer.update_bias,
                    "weight_channels": int(layer.channels.size) if layer.channels is not None else 0,
                    "weight_columns": int(layer.weight.shape[-1])} for layer in tg.layers],
        "params_layout": layout_description(program),
        "params_size": params_size(program),
        "layout_hash": layout_hash(program),
    }


def render_report_text(program: TrainingProgram) -> str:
    """Return a people-readable memory report of the training step."""
    memory = program.memory
    tg = program.tg
    lines = [
        f"tinycompile {__version__} training step report for {tg.graph.name}",
        "",
        f"SRAM arena:        {memory.arena_size:>10,} bytes  (planner {memory.planner}, budget {program.config.sram_budget:,})",
        f"Lower bound:       {memory.lower_bound:>10,} bytes  (largest sum of buffers alive at one step)",
        f"Master copies:     {memory.master_bytes:>10,} bytes  (float32, persistent, inside the arena)",
        f"Constant data:     {memory.const_bytes:>10,} bytes  (flash; code not included)",
        f"Steps:             {memory.steps:>10}",
        f"Peak step:         {memory.peak_step} ({memory.peak_comment})",
        "",
        "Alive at the peak step:",
    ]
    for kind, size in memory.peak_by_kind.items():
        lines.append(f"  {kind:<24} {size:>10,} bytes")
    lines += ["", " layer  op                   bias  weight channels  name"]
    for layer in tg.layers:
        if not layer.trained:
            continue
        channels = f"{layer.channels.size}/{layer.weight.shape[-1]}" if layer.updates_weights else "-"
        lines.append(f"{layer.index:>6}  {layer.op.op_type:<20} {'yes' if layer.update_bias else 'no':<5} "
                     f"{channels:>15}  {_label(layer.op.short_name, 40)}{'  (head)' if layer.is_head else ''}")
    return "\n".join(lines) + "\n"
