"""Turn lowered layers into planner buffers, choose in-place layers, and plan the arena.

Step k is the k-th layer. A tensor is alive from the step that writes it (step 0 for graph inputs)
to the last step that reads it. Graph outputs stay alive one step past the last layer so that
nothing overwrites them before the caller reads them. Tensors that alias each other (a RESHAPE's
output is its input) share one buffer whose lifetime covers all of them.

A layer may write its output over an input whose buffer it reads for the last time. The output
buffer then shares the input buffer (`Buffer.shares`): same offset, born at the input's last
step, no larger. Some kernels allow that as they are (`Layer.inplace_ok` lists the input
positions), and for element-wise kernels it costs nothing, so it is always done unless in-place
is off. Other ops need another kernel to run in place (`INPLACE_REWRITES`): depthwise
convolution copies one input channel plane to scratch first and cannot use the specialized
kernels (see `tinycompile.codegen.ops.conv.depthwise_inplace`), so in "auto" mode it runs in
place only where that shrinks the planned arena (details in `plan_layers`). Mode "all" runs every
candidate in place, and mode "off" none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tinycompile import ir
from tinycompile.codegen.lowering import Layer, LoweringOptions
from tinycompile.codegen.ops.conv import depthwise_inplace
from tinycompile.errors import TinyCompileError
from tinycompile.planning.base import Buffer, MemoryPlan, align_up, lower_bound, plan_memory

log = logging.getLogger(__name__)

INPLACE_MODES = ("auto", "all", "off")

# Op types that can run in place with another kernel, and the rewrite to it: given a lowered
# layer and the lowering options, it returns the in-place layer (whose `inplace_ok` names the
# input it overwrites) or None when this layer cannot run in place.
INPLACE_REWRITES: dict[str, Callable[[Layer, LoweringOptions], Layer | None]] = {
    "DEPTHWISE_CONV_2D": depthwise_inplace,
}


@dataclass
class BufferMap:
    """The planner's buffers and how tensors and scratch map onto them."""

    buffers: list[Buffer]
    tensor_buffer: dict[int, int]                 # id(tensor) -> buffer id
    scratch_buffer: dict[int, int]                # id(Scratch) -> buffer id
    members: dict[int, list[ir.Tensor]] = field(default_factory=dict)  # buffer id -> tensors in it
    inplace: dict[int, int] = field(default_factory=dict)  # step -> input position it overwrites
    replaced: dict[int, Layer] = field(default_factory=dict)  # step -> layer before its in-place rewrite


@dataclass(frozen=True, eq=False)
class InplaceCandidate:
    """A layer whose output may take over the buffer of one of its inputs."""

    step: int
    position: int                 # index into the layer's op.inputs
    variant: Layer | None = None  # the in-place layer when the kernel must change, else None

    @property
    def rewrite(self) -> bool:
        return self.variant is not None


def inplace_options(layer: Layer, lowering: LoweringOptions | None) -> tuple[tuple[int, ...], Layer | None]:
    """Return the input positions `layer` may overwrite and the rewritten layer that does it.

    Ops listed in INPLACE_REWRITES always run in place through their rewrite. For other layers
    the rewritten layer is None, and the positions are the kernel's own `inplace_ok`. Returns
    ((), None) for a layer that cannot run in place.
    """
    if layer.kernel is None or layer.alias_of is not None or not layer.op.outputs:
        return (), None
    rewrite = INPLACE_REWRITES.get(layer.op.op_type)
    if rewrite is None:
        return tuple(layer.inplace_ok), None
    variant = rewrite(layer, lowering or LoweringOptions())
    if variant is None or not variant.inplace_ok:
        return (), None
    return tuple(variant.inplace_ok), variant


@dataclass
class _AliasGroups:
    """Tensors grouped by aliasing, with each group's lifetime and size in bytes."""

    root: Callable[[ir.Tensor], ir.Tensor]
    first: dict[int, int]                         # id(root) -> first step
    last: dict[int, int]                          # id(root) -> last step
    size: dict[int, int]                          # id(root) -> largest member size


def _alias_groups(graph: ir.Graph, layers: Sequence[Layer]) -> _AliasGroups:
    # Union-find over aliased tensors.
    parent: dict[int, ir.Tensor] = {}

    def root(t: ir.Tensor) -> ir.Tensor:
        while id(parent.get(id(t), t)) != id(t):
            t = parent[id(t)]
        return t

    for layer in layers:
        if layer.alias_of is not None:
            out = layer.op.outputs[0]
            parent[id(root(out))] = root(layer.alias_of)

    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: ir.Tensor, step: int) -> None:
        r = root(t)
        first[id(r)] = min(first.get(id(r), step), step)
        last[id(r)] = max(last.get(id(r), step), step)

    for t in graph.inputs:
        touch(t, 0)
    for step, layer in enumerate(layers):
        for t in layer.op.inputs:
            if t is not None and not t.is_constant:
                touch(t, step)
        for t in layer.op.outputs:
            touch(t, step)
    end = len(layers)
    for t in graph.outputs:
        touch(t, end)

    size: dict[int, int] = {}
    for t in graph.activations():
        r = root(t)
        size[id(r)] = max(size.get(id(r), 0), t.nbytes, 1)
    return _AliasGroups(root, first, last, size)


def inplace_candidates(graph: ir.Graph, layers: Sequence[Layer],
                       lowering: LoweringOptions | None = None) -> list[InplaceCandidate]:
    """Return the layers whose output may overwrite an input, in step order.

    A layer qualifies when its kernel or an in-place rewrite allows it (see `inplace_options`),
    the input's buffer is read for the last time at this step, and the output buffer is no larger
    than the input buffer. The first qualifying input position is taken.
    """
    groups = _alias_groups(graph, layers)
    candidates = []
    for step, layer in enumerate(layers):
        positions, variant = inplace_options(layer, lowering)
        if not positions:
            continue
        out_root = groups.root(layer.op.outputs[0])
        if groups.first[id(out_root)] != step:
            continue
        for position in positions:
            if position >= len(layer.op.inputs):
                continue
            t = layer.op.inputs[position]
            if t is None or t.is_constant:
                continue
            in_root = groups.root(t)
            if in_root is out_root or groups.last[id(in_root)] != step:
                continue
            if groups.size[id(out_root)] > groups.size[id(in_root)]:
                continue
            candidates.append(InplaceCandidate(step, position, variant))
            break
    return candidates


def build_buffers(graph: ir.Graph, layers: Sequence[Layer],
                  inplace: Mapping[int, int] | None = None) -> BufferMap:
    """Return the planner buffers of `layers`.

    `inplace` maps a step to the input position whose buffer that layer's output takes over;
    each entry must come from `inplace_candidates`. Rewritten layers must already be the
    candidates' variants.
    """
    inplace = dict(inplace or {})
    groups = _alias_groups(graph, layers)

    buffers: list[Buffer] = []
    tensor_buffer: dict[int, int] = {}
    members: dict[int, list[ir.Tensor]] = {}
    root_buffer: dict[int, int] = {}
    shares: dict[int, ir.Tensor] = {}  # id(output root) -> root of the input it overwrites
    for step, position in inplace.items():
        op = layers[step].op
        shares[id(groups.root(op.outputs[0]))] = groups.root(op.inputs[position])

    # Hosts get their ids first, so a sharer can name its host's id.
    activations = graph.activations()
    for t in activations:
        r = groups.root(t)
        if id(r) not in root_buffer:
            root_buffer[id(r)] = len(root_buffer)
    placed: dict[int, Buffer] = {}
    for t in activations:
        r = groups.root(t)
        bid = root_buffer[id(r)]
        if bid not in placed:
            host = shares.get(id(r))
            placed[bid] = Buffer(
                id=bid, name=r.name, size=groups.size[id(r)], first=groups.first[id(r)],
                last=groups.last[id(r)], shares=root_buffer[id(host)] if host is not None else None,
            )
            members[bid] = []
        tensor_buffer[id(t)] = bid
        members[bid].append(t)
    buffers.extend(placed[bid] for bid in sorted(placed))

    scratch_buffer: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for s in layer.scratch:
            if s.nbytes <= 0:
                continue
            bid = len(buffers)
            buffers.append(Buffer(id=bid, name=f"scratch of layer {layer.op.index} ({layer.op.op_type})",
                                  size=s.nbytes, first=step, last=step))
            scratch_buffer[id(s)] = bid
    return BufferMap(buffers, tensor_buffer, scratch_buffer, members, inplace)


def step_footprints(buffers: Sequence[Buffer], alignment: int) -> list[int]:
    """Return, per step, the summed footprints alive then, counting a shared buffer once."""
    if not buffers:
        return []
    end = max(buffer.last for buffer in buffers)
    usage = [0] * (end + 1)
    for buffer in buffers:
        # A sharer's bytes lie inside its host's at the hand-off step.
        first = buffer.first + 1 if buffer.shares is not None else buffer.first
        for step in range(first, buffer.last + 1):
            usage[step] += align_up(buffer.size, alignment)
    return usage


@dataclass
class PlannedLayers:
    """Layers after the in-place choice, their buffers and the arena plan."""

    layers: list[Layer]
    buffers: BufferMap
    plan: MemoryPlan


def plan_layers(graph: ir.Graph, layers: Sequence[Layer], planner: str, inplace: str = "auto",
                alignment: int = 16, lowering: LoweringOptions | None = None) -> PlannedLayers:
    """Choose which layers run in place (mode "auto", "all" or "off") and plan the arena.

    `lowering` must be the options the layers were lowered with, because in-place rewrites
    lower their op again.
    """
    if inplace not in INPLACE_MODES:
        raise TinyCompileError(f"invalid in-place mode '{inplace}'; use one of {', '.join(INPLACE_MODES)}")
    layers = list(layers)
    candidates = [] if inplace == "off" else inplace_candidates(graph, layers, lowering)
    same_kernel = [c for c in candidates if not c.rewrite]
    rewrites = [c for c in candidates if c.rewrite]

    base = _plan_with(graph, layers, same_kernel, planner, alignment)
    if not rewrites:
        return base
    if inplace == "all":
        return _plan_with(graph, layers, candidates, planner, alignment)

    # "auto": a rewrite can only lower the peak at its own step, so when all rewrites together
    # lower the bound, keep those whose step would otherwise stay above the new bound. When they
    # do not, they may still help a planner that missed the bound, so try them all then.
    everything = build_buffers(graph, _rewrite(layers, rewrites), _steps(candidates))
    bound = lower_bound(everything.buffers, alignment)
    base_bound = lower_bound(base.buffers.buffers, alignment)
    if bound < base_bound:
        usage = step_footprints(base.buffers.buffers, alignment)
        needed = [c for c in rewrites if usage[c.step] > bound]
    elif base.plan.arena_size > base_bound:
        needed = rewrites
    else:
        log.debug("in-place depthwise cannot lower the arena of %d bytes; not used", base.plan.arena_size)
        return base
    trial = _plan_with(graph, layers, same_kernel + needed, planner, alignment)
    log.info("in-place depthwise at %d of %d layers: arena %d bytes instead of %d", len(needed),
             len(rewrites), trial.plan.arena_size, base.plan.arena_size)
    return trial if trial.plan.arena_size < base.plan.arena_size else base


def _steps(candidates: Sequence[InplaceCandidate]) -> dict[int, int]:
    return {c.step: c.position for c in sorted(candidates, key=lambda c: c.step)}


def _rewrite(layers: Sequence[Layer], candidates: Sequence[InplaceCandidate]) -> list[Layer]:
    result = list(layers)
    for c in candidates:
        if c.variant is not None:
            result[c.step] = c.variant
    return result


def _plan_with(graph: ir.Graph, layers: Sequence[Layer], candidates: Sequence[InplaceCandidate],
               planner: str, alignment: int) -> PlannedLayers:
    rewritten = _rewrite(layers, candidates)
    buffers = build_buffers(graph, rewritten, _steps(candidates))
    buffers.replaced = {c.step: layers[c.step] for c in candidates if c.variant is not None}
    plan = plan_memory(buffers.buffers, planner, alignment)
    return PlannedLayers(rewritten, buffers, plan)
