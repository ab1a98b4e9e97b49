"""Write a compiled model as a self-contained C99 folder from the Jinja2 templates.

The folder contains model.h/model.c (API, arena, one call per layer), model_weights.h/.c (const
tensors, kept in flash), tc_config.h, the kernel sources the model uses under tc/, and the memory
report (report.json, report.txt). Files are first written to a temporary sibling folder that is
renamed into place, so a failed compile never leaves a half-written folder behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from tinycompile import __version__, ir
from tinycompile.codegen.c_format import c_array_body, c_identifier, c_initializer, collect_const_arrays
from tinycompile.codegen.lowering import ConstArray, CStruct, Scratch
from tinycompile.compiler import CompiledModel
from tinycompile.outdir import check_output_folder, write_folder

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = PACKAGE_ROOT / "templates"
FIRMWARE_DIR = PACKAGE_ROOT / "firmware"


def kernel_headers() -> list[Path]:
    """Return every kernel header; tc_kernels.h includes the per-family ones, so all are copied."""
    return sorted((FIRMWARE_DIR / "include").glob("*.h"))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


@dataclass
class _Names:
    """C symbols of tensors and buffers, made unique and stable."""

    weight: dict[int, str]
    offset_macro: dict[int, str]


def render_model(compiled: CompiledModel) -> dict[str, str]:
    """Return {relative path: file text} of the generated C folder (kernels and reports excluded)."""
    env = _environment()
    ctx = _context(compiled)
    files = {
        "model.h": env.get_template("model/model.h.j2").render(ctx),
        "model.c": env.get_template("model/model.c.j2").render(ctx),
        "model_weights.h": env.get_template("model/model_weights.h.j2").render(ctx),
        "model_weights.c": env.get_template("model/model_weights.c.j2").render(ctx),
        "tc_config.h": env.get_template("model/tc_config.h.j2").render(ctx),
        "report.txt": env.get_template("model/report.txt.j2").render(ctx),
        "report.json": json.dumps(memory_report(compiled), indent=2, sort_keys=True) + "\n",
    }
    return files


def write_model(compiled: CompiledModel, out_dir: str | Path, force: bool = False) -> Path:
    """Write the C folder for `compiled` to `out_dir` atomically and return its path."""
    check_output_folder(Path(out_dir), force=force)
    copies = {f"tc/{header.name}": header for header in kernel_headers()}
    copies.update({f"tc/{source}": FIRMWARE_DIR / "kernels" / source for source in compiled.kernel_sources})
    return write_folder(out_dir, render_model(compiled), copies, force=force)


def _names(compiled: CompiledModel) -> _Names:
    weight: dict[int, str] = {}
    used: set[str] = set()
    for layer in compiled.layers:
        for arg in layer.args:
            if isinstance(arg, ir.Tensor) and arg.is_constant and id(arg) not in weight:
                base = f"tc_w{arg.index}_{c_identifier(arg.name, 40)}"
                symbol = base
                n = 1
                while symbol in used:
                    n += 1
                    symbol = f"{base}_{n}"
                used.add(symbol)
                weight[id(arg)] = symbol
    offset_macro: dict[int, str] = {}
    for b in compiled.buffers.buffers:
        members = compiled.buffers.members.get(b.id)
        if members:
            t = members[0]
            offset_macro[b.id] = f"TC_OFFSET_T{t.index}_{c_identifier(t.name, 32).upper()}"
        else:
            offset_macro[b.id] = f"TC_OFFSET_SCRATCH{b.id}"
    return _Names(weight, offset_macro)


def _label(text: str, limit: int = 60) -> str:
    """Shorten a tensor name for a C comment; converters join many names with ';'."""
    text = text.replace("*/", "* /").replace("\n", " ")
    first = text.split(";")[0]
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _context(compiled: CompiledModel) -> dict:
    graph = compiled.graph
    names = _names(compiled)
    plan = compiled.plan

    def tensor_expr(t: ir.Tensor, const: bool) -> str:
        if t.is_constant:
            return names.weight[id(t)]
        bid = compiled.buffers.tensor_buffer[id(t)]
        qualifier = "const " if const else ""
        return f"TC_ARENA_PTR({qualifier}{t.dtype.c_type}, {names.offset_macro[bid]})"

    buffers_ctx = []
    for b in sorted(compiled.buffers.buffers, key=lambda b: (plan.offsets[b.id], b.id)):
        members = compiled.buffers.members.get(b.id, [])
        label = ", ".join(f"'{_label(t.name, 40)}'" for t in members) if members else b.name
        buffers_ctx.append({"macro": names.offset_macro[b.id], "offset": plan.offsets[b.id], "size": b.size,
                            "first": b.first, "last": b.last, "label": label})

    weights_ctx = []
    emitted: set[int] = set()
    layers_ctx = []
    call_index = 0
    peak = compiled.peak_step
    for step, layer in enumerate(compiled.layers):
        op = layer.op
        entry = {"op_index": op.index, "op_type": op.op_type, "label": _label(op.name), "macs": layer.macs,
                 "params": None, "call": None, "call_index": call_index, "arrays": []}
        if layer.kernel is not None:
            args = []
            outputs = {id(t) for t in op.outputs}
            for arg in layer.args:
                if isinstance(arg, CStruct):
                    symbol = f"tc_layer{op.index}_params"
                    arrays: list[ConstArray] = []
                    collect_const_arrays(arg, arrays)
                    entry["arrays"] = [{"symbol": a.symbol, "c_type": a.c_type, "length": max(a.values.size, 1),
                                        "body": c_array_body(a.values if a.values.size else np.zeros(1, a.values.dtype))}
                                       for a in arrays]
                    entry["params"] = c_initializer(arg)
                    entry["params_type"] = arg.c_type
                    entry["params_symbol"] = symbol
                    args.append("&" + symbol)
                elif isinstance(arg, ir.Tensor):
                    if arg.is_constant and id(arg) not in emitted:
                        emitted.add(id(arg))
                        weights_ctx.append(_weight_entry(arg, names.weight[id(arg)]))
                    args.append(tensor_expr(arg, const=id(arg) not in outputs))
                elif isinstance(arg, Scratch):
                    bid = compiled.buffers.scratch_buffer.get(id(arg))
                    args.append("NULL" if bid is None else f"TC_ARENA_PTR(void, {names.offset_macro[bid]})")
                elif isinstance(arg, ConstArray):
                    args.append(arg.symbol)
                elif arg is None:
                    args.append("NULL")
                else:
                    args.append(str(arg))
            entry["call"] = f"{layer.kernel}({', '.join(args)})"
            call_index += 1
        entry["peak"] = step == peak
        entry["live_bytes"] = compiled.layer_memory[step].live_bytes
        entry["scratch_bytes"] = compiled.layer_memory[step].scratch_bytes
        layers_ctx.append(entry)

    def io_entry(t: ir.Tensor, kind: str, index: int) -> dict:
        bid = compiled.buffers.tensor_buffer[id(t)]
        quantized = t.quant is not None and t.dtype in (ir.DType.INT8, ir.DType.UINT8, ir.DType.INT16)
        return {
            "kind": kind, "index": index, "name": _label(t.name), "prefix": f"{kind.upper()}{index}",
            "c_type": t.dtype.c_type, "shape": list(t.shape) or [1], "nbytes": t.nbytes, "elements": t.num_elements,
            "macro": names.offset_macro[bid], "quantized": quantized,
            "scale": repr(float(t.quant.scalar_scale)) if quantized else None,
            "zero_point": t.quant.scalar_zero_point if quantized else None,
        }

    weight_bytes = sum(w["nbytes"] for w in weights_ctx)
    param_bytes = sum(a["length"] * 4 for layer in layers_ctx for a in layer["arrays"])
    guard = f"TC_MODEL_{c_identifier(graph.name, 32).upper()}_H"
    peak_entry = layers_ctx[peak]
    return {
        "version": __version__,
        "model_name": graph.name,
        "source": Path(graph.name).name + "." + graph.source_format,
        "guard": guard,
        "rounding": compiled.options.rounding,
        "planner": plan.planner,
        "arena_size": plan.arena_size,
        "lower_bound": compiled.lower_bound,
        "total_macs": compiled.total_macs,
        "num_layers": call_index,
        "inputs": [io_entry(t, "input", i) for i, t in enumerate(graph.inputs)],
        "outputs": [io_entry(t, "output", i) for i, t in enumerate(graph.outputs)],
        "buffers": buffers_ctx,
        "layers": layers_ctx,
        "weights": weights_ctx,
        "weight_bytes": weight_bytes,
        "param_bytes": param_bytes,
        "const_bytes": weight_bytes + param_bytes,
        "peak": peak_entry,
        "rows": layers_ctx,
    }


def _weight_entry(t: ir.Tensor, symbol: str) -> dict:
    data = t.data
    if t.dtype == ir.DType.BOOL:
        data = data.astype(np.uint8)
    return {"symbol": symbol, "name": _label(t.name), "c_type": t.dtype.c_type, "shape": list(t.shape) or [1],
            "length": max(t.num_elements, 1), "nbytes": t.nbytes,
            "body": c_array_body(data if data.size else np.zeros(1, data.dtype), per_line=20)}


def memory_report(compiled: CompiledModel) -> dict:
    """Return the memory report as JSON-ready data."""
    ctx = _context(compiled)
    return {
        "model": ctx["source"],
        "tinycompile_version": __version__,
        "rounding": ctx["rounding"],
        "planner": ctx["planner"],
        "arena_bytes": ctx["arena_size"],
        "lower_bound_bytes": ctx["lower_bound"],
        "const_bytes": ctx["const_bytes"],
        "weight_bytes": ctx["weight_bytes"],
        "layer_param_bytes": ctx["param_bytes"],
        "total_macs": ctx["total_macs"],
        "peak_layer": {"index": ctx["peak"]["op_index"], "op": ctx["peak"]["op_type"], "name": ctx["peak"]["label"]},
        "layers": [
            {"index": r["op_index"], "op": r["op_type"], "name": r["label"], "macs": r["macs"],
             "live_bytes": r["live_bytes"], "scratch_bytes": r["scratch_bytes"]}
            for r in ctx["rows"]
        ],
        "buffers": [
            {"offset": b["offset"], "bytes": b["size"], "first_layer": b["first"], "last_layer": b["last"],
             "tensors": b["label"]}
            for b in ctx["buffers"]
        ],
    }
