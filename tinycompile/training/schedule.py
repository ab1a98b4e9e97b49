"""Order the kernels of one training step and describe every buffer they touch.

A training step is one list of steps: copy the input, the forward pass, the loss, the backward
pass in reverse layer order, and the parameter updates. Each step is one kernel call whose
arguments name `Value`s, the buffers of the step: activations, gradients, saved activation
slices, weight and bias gradients, parameters re-quantized for one kernel, and the persistent
float32 master copies of the updated parameters. A value lives from the first to the last step
that touches it, and a master copy lives through the whole step (it keeps its contents between
steps), so one static plan (`tinycompile.planning`) places all of them in one arena.

With in-place updates (the default) each SGD step follows the gradient it reads at once, so that
gradient buffer dies there. Within a layer the input gradient is computed before the update, so
it uses the weights of the forward pass. Updates are deferred to the end of the step when the
configuration sets inplace_update: false, which is what frameworks do and is kept to compare
memory. Parameters are re-quantized from their master copies right before each kernel that reads
them, into short-lived buffers, so the updated int8 weights and int32 biases need no permanent
SRAM of their own.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from tinycompile import ir
from tinycompile.codegen.lowering import ConstArray, CStruct, Layer, LoweringOptions, Scratch, lower_operator
from tinycompile.errors import UnsupportedModelError
from tinycompile.planning.base import Buffer
from tinycompile.training import qas
from tinycompile.training.autodiff import ALIAS_OPS, BackwardGraph, BackwardOp
from tinycompile.training.mcunet import TorchConvAttrs
from tinycompile.training.model import TrainableLayer, TrainingGraph

log = logging.getLogger(__name__)

# Kinds of values, used in memory reports.
ACTIVATION = "activation"       # int8 forward tensor (kept for the backward pass when it needs it)
SAVED = "saved slice"           # int8 copy of the selected input channels of a weight update
MASK = "gradient mask"          # one bit per output element: where the output clamp passes the gradient
GRADIENT = "gradient"           # float32 gradient of an activation
PARAM_GRAD = "parameter gradient"  # float32 gradient of a weight slice or bias
PARAMETER = "re-quantized parameter"  # int8 weights or int32 bias re-quantized for one kernel
MASTER = "master copy"          # float32 master copy of updated parameters (persistent)
SCRATCH = "kernel scratch"      # working memory of one forward kernel call
KINDS = (ACTIVATION, MASK, SAVED, GRADIENT, PARAM_GRAD, PARAMETER, MASTER, SCRATCH)


@dataclass(eq=False)
class Value:
    """One buffer of the training step."""

    id: int
    name: str
    kind: str
    c_type: str
    count: int                  # elements

    @property
    def nbytes(self) -> int:
        return self.count * {"int8_t": 1, "uint8_t": 1, "void": 1, "int32_t": 4, "float": 4}[self.c_type]

    @property
    def persistent(self) -> bool:
        return self.kind == MASTER


@dataclass(eq=False)
class Params:
    """A static const parameter struct passed by address."""

    symbol: str
    struct: CStruct


Arg = Union[Value, Params, ir.Tensor, ConstArray, str, None]


@dataclass(eq=False)
class Step:
    """One kernel call of the training step."""

    phase: str                  # input, forward, save, loss, backward, update
    kernel: str
    args: list[Arg]
    comment: str
    status: bool = True         # the kernel returns tc_status
    assign: str | None = None   # C variable that receives the return value
    inference: bool = False     # part of the forward-only (inference) pass
    sources: tuple[str, ...] = ()  # kernel source files (under firmware/kernels) besides the training ones

    @property
    def values(self) -> list[Value]:
        return [a for a in self.args if isinstance(a, Value)]


@dataclass(eq=False)
class Master:
    """The persistent master copy of one updated weight slice or bias."""

    layer: TrainableLayer
    kind: str                   # "weight" or "bias"
    value: Value
    tensor: ir.Tensor           # the initial parameter, kept in flash
    slice: Params | None        # tc_train_slice of a weight master

    @property
    def shape(self) -> tuple[int, ...]:
        if self.kind == "bias":
            return (self.value.count,)
        return (self.value.count // self.layer.channels.size, int(self.layer.channels.size))


@dataclass(eq=False)
class TrainingSchedule:
    """The steps of one training step and the values they touch."""

    tg: TrainingGraph
    backward: BackwardGraph
    steps: list[Step]
    values: list[Value]
    params: list[Params]
    masters: list[Master]
    input_value: Value
    logits_value: Value
    lifetimes: dict[int, tuple[int, int]] = field(default_factory=dict)   # value id -> (first, last) step

    def buffers(self) -> list[Buffer]:
        return [Buffer(id=v.id, name=v.name, size=max(v.nbytes, 1), first=self.lifetimes[v.id][0],
                       last=self.lifetimes[v.id][1]) for v in self.values]

    @property
    def master_bytes(self) -> int:
        return sum(m.value.nbytes for m in self.masters)


def build_schedule(tg: TrainingGraph, backward: BackwardGraph, rounding: str = "tflm") -> TrainingSchedule:
    """Lower the forward graph, add the backward and update steps, and compute value lifetimes."""
    builder = _Builder(tg, backward, LoweringOptions(rounding=rounding))
    return builder.build()


class _Builder:
    def __init__(self, tg: TrainingGraph, backward: BackwardGraph, options: LoweringOptions):
        self.tg = tg
        self.backward = backward
        self.options = options
        self.values: list[Value] = []
        self.steps: list[Step] = []
        self.params: list[Params] = []
        self.masters: list[Master] = []
        self.root: dict[int, ir.Tensor] = {}
        self.activation: dict[int, Value] = {}   # id(root tensor) -> value
        self.grad: dict[int, Value] = {}         # id(root tensor) -> gradient value
        self.grad_written: set[int] = set()
        self.lowered: dict[int, Layer] = {}
        self.forward_params: dict[int, Params] = {}
        self.master_of: dict[tuple[int, str], Master] = {}
        self.saved: dict[int, Value] = {}        # id(op) -> saved input slice
        self.masks: dict[int, Value] = {}        # id(op) -> packed gradient mask of its output
        self.deferred: list[Step] = []

    # Values ---------------------------------------------------------------------------------

    def value(self, name: str, kind: str, c_type: str, count: int) -> Value:
        v = Value(len(self.values), name, kind, c_type, max(int(count), 1))
        self.values.append(v)
        return v

    def root_of(self, t: ir.Tensor) -> ir.Tensor:
        while id(t) in self.root:
            t = self.root[id(t)]
        return t

    def act(self, t: ir.Tensor) -> Value:
        return self.activation[id(self.root_of(t))]

    def grad_of(self, t: ir.Tensor) -> tuple[Value, int]:
        """Return the gradient value of `t` and whether a step must add to it (1) or overwrite it (0)."""
        r = self.root_of(t)
        if id(r) not in self.grad:
            self.grad[id(r)] = self.value(f"grad {r.name}", GRADIENT, "float", r.num_elements)
        accumulate = 1 if id(r) in self.grad_written else 0
        self.grad_written.add(id(r))
        return self.grad[id(r)], accumulate

    def add_params(self, symbol: str, struct: CStruct) -> Params:
        p = Params(symbol, struct)
        self.params.append(p)
        return p

    def step(self, *args, **kwargs) -> Step:
        s = Step(*args, **kwargs)
        self.steps.append(s)
        return s

    # Build ----------------------------------------------------------------------------------

    def build(self) -> TrainingSchedule:
        graph = self.tg.graph
        for op in graph.operators:
            self.lowered[id(op)] = self.lower(op)
        self.make_activations()
        self.make_masters()

        x = graph.inputs[0]
        input_value = self.act(x)
        self.step("input", "tc_train_copy_input", [input_value, "input", str(x.nbytes)],
                  "copy the input into the arena unless it is already there", status=False, inference=True)
        for op in graph.operators:
            self.forward(op)

        logits = self.tg.logits
        logits_value = self.act(logits)
        g_logits, _ = self.grad_of(logits)
        scale = float(logits.quant.scalar_scale)
        self.step("loss", "tc_train_softmax_cross_entropy",
                  [str(logits.num_elements), logits_value, f"{scale!r}f", "label", g_logits],
                  "softmax cross-entropy of the logits and its gradient", status=False, assign="step_loss")
        for bop in self.backward.ops:
            self.backward_op(bop)
        self.steps.extend(self.deferred)

        schedule = TrainingSchedule(self.tg, self.backward, self.steps, self.values, self.params, self.masters,
                                    input_value, logits_value)
        schedule.lifetimes = _lifetimes(self.steps, self.values)
        return schedule

    def lower(self, op: ir.Operator) -> Layer:
        # Every layer runs the portable kernels, which take plain int8 weights and int32 biases:
        # updated layers need that for their re-quantized parameters, and the backward pass reads
        # the portable parameter structs. TODO: frozen layers off the backward path could use the
        # compiler's specialized kernels, with their scratch buffers planned in the arena.
        options = self.options
        if hasattr(options, "kernels"):
            options = dataclasses.replace(options, kernels="portable")
        layer = lower_operator(op, options)
        if isinstance(op.attrs, TorchConvAttrs) and layer.args and isinstance(layer.args[0], CStruct):
            layer.args[0].fields["pad_top"] = op.attrs.pad_top
            layer.args[0].fields["pad_left"] = op.attrs.pad_left
        return layer

    def make_activations(self) -> None:
        for op in self.tg.graph.operators:
            layer = self.lowered[id(op)]
            if layer.alias_of is not None:
                self.root[id(op.outputs[0])] = self.root_of(layer.alias_of)
        sizes: dict[int, int] = {}
        order: list[ir.Tensor] = []
        tensors = list(self.tg.graph.inputs)
        for op in self.tg.graph.operators:
            tensors += [t for t in [*op.inputs, *op.outputs] if t is not None and not t.is_constant]
        for t in tensors:
            r = self.root_of(t)
            if id(r) not in sizes:
                order.append(r)
            sizes[id(r)] = max(sizes.get(id(r), 0), t.num_elements)
        for r in order:
            self.activation[id(r)] = self.value(r.name, ACTIVATION, "int8_t", sizes[id(r)])

    def make_masters(self) -> None:
        for layer in self.tg.layers:
            if not layer.trained:
                continue
            op = layer.op
            if layer.update_bias:
                bias = layer.bias
                v = self.value(f"master {bias.name}", MASTER, "float", bias.num_elements)
                m = Master(layer, "bias", v, bias, None)
                self.masters.append(m)
                self.master_of[(id(op), "bias")] = m
            if layer.updates_weights:
                w = layer.weight
                cols = int(w.shape[-1])
                rows = w.num_elements // cols
                if op.op_type == "CONV_2D":
                    per_channel = int(w.shape[1] * w.shape[2])
                elif op.op_type == "FULLY_CONNECTED":
                    per_channel = 1
                else:
                    per_channel = 0
                count = int(layer.channels.size)
                sym = f"tc_train{op.index}_slice"
                struct = CStruct("tc_train_slice", {
                    "rows": rows, "cols": cols, "count": count,
                    "index": ConstArray(f"{sym}_index", "int32_t", layer.channels.astype(np.int32)),
                    "rows_per_channel": per_channel,
                    "qas": ConstArray(f"{sym}_qas", "float", qas.weight_qas(op)),
                })
                v = self.value(f"master {w.name}", MASTER, "float", rows * count)
                m = Master(layer, "weight", v, w, self.add_params(sym, struct))
                self.masters.append(m)
                self.master_of[(id(op), "weight")] = m

    # Forward --------------------------------------------------------------------------------

    def materialize(self, op: ir.Operator, kind: str, phase: str, inference: bool) -> Value | None:
        master = self.master_of.get((id(op), kind))
        if master is None:
            return None
        t = master.tensor
        if kind == "bias":
            v = self.value(f"bias of {op.short_name}", PARAMETER, "int32_t", t.num_elements)
            self.step(phase, "tc_train_materialize_bias", [str(t.num_elements), master.value, v],
                      f"re-quantize the bias of operator {op.index}", status=False, inference=inference)
        else:
            v = self.value(f"weights of {op.short_name}", PARAMETER, "int8_t", t.num_elements)
            self.step(phase, "tc_train_materialize_weights", [master.slice, t, master.value, v],
                      f"re-quantize the weights of operator {op.index}", status=False, inference=inference)
        return v

    def forward(self, op: ir.Operator) -> None:
        layer = self.lowered[id(op)]
        if layer.kernel is None:
            return
        replacements: dict[int, Value] = {}
        if op.op_type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = self.materialize(op, "weight", "forward", True)
            b = self.materialize(op, "bias", "forward", True)
            if w is not None:
                replacements[id(op.inputs[1])] = w
            if b is not None:
                replacements[id(op.inputs[2])] = b
        bop = self.backward_of(op)
        if bop is not None and bop.save_input_slice:
            self.save_slice(op, bop.layer)
        args: list[Arg] = []
        for arg in layer.args:
            if isinstance(arg, CStruct):
                p = self.add_params(f"tc_layer{op.index}_params", arg)
                self.forward_params[id(op)] = p
                args.append(p)
            elif isinstance(arg, ir.Tensor):
                if id(arg) in replacements:
                    args.append(replacements[id(arg)])
                elif arg.is_constant:
                    args.append(arg)
                else:
                    args.append(self.act(arg))
            elif arg is None:
                args.append(None)
            elif isinstance(arg, Scratch):
                args.append(self.value(f"scratch of operator {op.index}", SCRATCH, "void", arg.nbytes)
                            if arg.nbytes > 0 else None)
            else:
                raise UnsupportedModelError(f"{op.describe()}: kernel argument {arg!r} is not supported in training")
        self.step("forward", layer.kernel, args, f"operator {op.index}: {op.op_type} '{op.short_name}'", inference=True,
                  sources=tuple(layer.sources))
        if bop is not None and bop.mask_output:
            self.save_mask(op)

    def save_mask(self, op: ir.Operator) -> None:
        y = op.outputs[0]
        act_min, act_max = self.clamp_range(op)
        bits = self.value(f"mask of {y.name}", MASK, "uint8_t", (y.num_elements + 7) // 8)
        self.masks[id(op)] = bits
        self.step("save", "tc_train_pack_mask", [str(y.num_elements), str(act_min), str(act_max), self.act(y), bits],
                  f"operator {op.index}: keep where the output clamp passes the gradient, one bit per element",
                  status=False)

    def clamp_range(self, op: ir.Operator) -> tuple[int, int]:
        fields = self.forward_params[id(op)].struct.fields
        if "q" in fields:
            fields = fields["q"].fields
        return int(fields["act_min"]), int(fields["act_max"])

    def backward_of(self, op: ir.Operator) -> BackwardOp | None:
        for bop in self.backward.ops:
            if bop.op is op:
                return bop
        return None

    def save_slice(self, op: ir.Operator, layer: TrainableLayer) -> None:
        x = op.inputs[0]
        channels = int(x.shape[-1])
        positions = x.num_elements // channels
        count = int(layer.channels.size)
        divisor = 1
        if op.op_type == "DEPTHWISE_CONV_2D":
            divisor = int(layer.weight.shape[-1]) // channels
        index = self.master_of[(id(op), "weight")].slice.struct.fields["index"]
        saved = self.value(f"saved channels of {x.name}", SAVED, "int8_t", positions * count)
        self.saved[id(op)] = saved
        self.step("save", "tc_train_gather_channels",
                  [str(positions), str(channels), str(count), index, str(divisor), self.act(x), saved],
                  f"keep the {count} updated channels of the input of operator {op.index}", status=False)

    # Backward -------------------------------------------------------------------------------

    def backward_op(self, bop: BackwardOp) -> None:
        op = bop.op
        if op.op_type in ALIAS_OPS:
            return
        out_root = self.root_of(op.outputs[0])
        if id(out_root) not in self.grad_written:
            log.debug("%s: no gradient reaches its output; skipped", op.describe())
            return
        g_y = self.grad[id(out_root)]
        if op.op_type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            self.backward_parameter_op(bop, g_y)
        elif op.op_type == "ADD":
            self.backward_add(bop, g_y)
        else:
            self.backward_pool(bop, g_y)

    def mask_step(self, op: ir.Operator, g_y: Value, scale: np.ndarray | None) -> None:
        y = op.outputs[0]
        fields = {"count": y.num_elements, "channels": int(y.shape[-1]),
                  "scale": ConstArray(f"tc_train{op.index}_grad_scale", "float", scale) if scale is not None else "NULL"}
        p = self.add_params(f"tc_train{op.index}_mask", CStruct("tc_train_mask_params", fields))
        what = "mask the gradient by the output clamp and scale it to the accumulator" if scale is not None \
            else "mask the gradient by the fused activation"
        self.step("backward", "tc_train_mask_scale", [p, self.masks[id(op)], g_y], f"operator {op.index}: {what}",
                  status=False)

    def backward_parameter_op(self, bop: BackwardOp, g_y: Value) -> None:
        op = bop.op
        fwd = self.forward_params[id(op)]
        self.mask_step(op, g_y, qas.grad_multiplier(op))
        kind = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fc"}[op.op_type]
        if 0 in bop.grad_inputs:
            w = self.materialize(op, "weight", "backward", False)
            weights: Arg = w if w is not None else op.inputs[1]
            g_x, accumulate = self.grad_of(op.inputs[0])
            self.step("backward", f"tc_train_{kind}_input_grad", [fwd, g_y, weights, g_x, str(accumulate)],
                      f"operator {op.index}: gradient of the input")
        y = op.outputs[0]
        channels = int(y.shape[-1])
        if bop.bias_update:
            master = self.master_of[(id(op), "bias")]
            gb = self.value(f"bias gradient of {op.short_name}", PARAM_GRAD, "float", channels)
            self.step("backward", "tc_train_bias_grad", [str(y.num_elements // channels), str(channels), g_y, gb],
                      f"operator {op.index}: bias gradient", status=False)
            qas_b = ConstArray(f"tc_train{op.index}_bias_qas", "float", qas.bias_qas(op))
            self.update(Step("update", "tc_train_sgd_bias", [str(channels), gb, qas_b, master.value, "tc_train_lr"],
                             f"operator {op.index}: SGD step of the bias with QAS", status=False))
        if bop.weight_update:
            master = self.master_of[(id(op), "weight")]
            gw = self.value(f"weight gradient of {op.short_name}", PARAM_GRAD, "float", master.value.count)
            saved = self.saved.get(id(op))
            x = saved if saved is not None else self.act(op.inputs[0])
            self.step("backward", f"tc_train_{kind}_weight_grad",
                      [fwd, master.slice, x, "1" if saved is not None else "0", g_y, gw],
                      f"operator {op.index}: gradient of the {bop.layer.channels.size} updated weight channels")
            self.update(Step("update", "tc_train_sgd_weights", [master.slice, gw, master.value, "tc_train_lr"],
                             f"operator {op.index}: SGD step of the weights with QAS", status=False))

    def update(self, step: Step) -> None:
        if self.tg.config.inplace_update:
            self.steps.append(step)
        else:
            self.deferred.append(step)

    def backward_add(self, bop: BackwardOp, g_y: Value) -> None:
        op = bop.op
        scale1, scale2 = qas.add_input_scales(op)
        grads: list[Arg] = [None, None]
        flags = [0, 0]
        for i in (0, 1):
            if i in bop.grad_inputs:
                grads[i], flags[i] = self.grad_of(op.inputs[i])
        struct = CStruct("tc_train_add_params", {
            "count": op.outputs[0].num_elements, "scale1": scale1, "scale2": scale2, "accumulate1": flags[0], "accumulate2": flags[1],
        })
        p = self.add_params(f"tc_train{op.index}_add", struct)
        self.step("backward", "tc_train_add_backward", [p, self.masks[id(op)], g_y, grads[0], grads[1]],
                  f"operator {op.index}: gradients of both ADD inputs", status=False)

    def backward_pool(self, bop: BackwardOp, g_y: Value) -> None:
        op = bop.op
        fwd = self.forward_params[id(op)]
        if bop.mask_output:
            self.mask_step(op, g_y, None)
        if 0 not in bop.grad_inputs:
            return
        g_x, accumulate = self.grad_of(op.inputs[0])
        if op.op_type == "AVERAGE_POOL_2D":
            self.step("backward", "tc_train_avg_pool_backward", [fwd, g_y, g_x, str(accumulate)],
                      f"operator {op.index}: gradient of the average pool input")
        else:
            self.step("backward", "tc_train_max_pool_backward", [fwd, self.act(op.inputs[0]), g_y, g_x, str(accumulate)],
                      f"operator {op.index}: gradient of the max pool input, routed to each window's maximum")


def _lifetimes(steps: list[Step], values: list[Value]) -> dict[int, tuple[int, int]]:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, s in enumerate(steps):
        for v in s.values:
            first.setdefault(v.id, k)
            last[v.id] = k
    end = len(steps) - 1
    result = {}
    for v in values:
        if v.persistent:
            result[v.id] = (0, end)
        elif v.id in first:
            result[v.id] = (first[v.id], last[v.id])
        else:
            result[v.id] = (0, 0)   # never touched: keep the planner's input valid
    return result
