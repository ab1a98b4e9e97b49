"""Choose the execution order of the layers that lowers the peak of live activation bytes.

Any topological order of the graph computes the same outputs, but in graphs with branches
(residual blocks, several outputs) the order decides which tensors are alive together. This pass
searches the orders as paths through the downsets of the dependency graph (the sets of layers
that may have run so far): the memory alive after a downset does not depend on the order that
reached it, so the smallest peak to reach each downset is a shortest-path-like recurrence,
best(S + v) = min(max(best(S), cost of running v after S)). When the graph is small enough that
every level of that search keeps at most `beam` downsets, the result is the exact minimum. On
larger graphs only the `beam` downsets with the lowest (peak, live bytes) are kept at each level,
which is a beam search and a heuristic. The original order is kept unless the search finds a
strictly lower peak, so models whose order is already best come out unchanged.

The cost of a step is what `tinycompile.passes.liveness` will count there: groups of aliased
tensors alive at the step, plus the layer's new outputs and scratch, minus the output bytes that
an in-place layer writes over a dying input. Layers whose own kernel runs in place always count
that way. Layers that need an in-place rewrite (depthwise convolution) count that way only in
mode "all", because mode "auto" decides on them after the order is fixed. Sizes are footprints
rounded up to the arena alignment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tinycompile import ir
from tinycompile.codegen.lowering import Layer, LoweringOptions
from tinycompile.passes.liveness import inplace_options
from tinycompile.planning.base import align_up

log = logging.getLogger(__name__)

# Most downsets kept per level. Chains have one per level and a residual network a few, so the
# search is exact on such models. The work is about (downsets kept) x layers x (ready layers per
# downset), so on long or wide graphs each level keeps at most
# WORK_LIMIT // (layers x ready layers) downsets, but never fewer than MIN_BEAM. NOTE: WORK_LIMIT
# keeps the search near 0.3 s in CPython on the widest graph in the tests (23 independent layers).
DEFAULT_BEAM = 2000
WORK_LIMIT = 50_000
MIN_BEAM = 16


@dataclass
class _Problem:
    """Layers as nodes with bitmask dependencies and the byte groups they read and write."""

    n: int
    deps: list[int]               # per layer: bitmask of the layers it needs first
    reads: list[list[int]]        # per layer: groups read
    new: list[int]                # per layer: footprint of the groups it creates
    created: list[list[int]]      # per layer: groups it creates
    scratch: list[int]            # per layer: scratch footprint
    consumers: list[int]          # per group: bitmask of the layers reading it
    footprint: list[int]          # per group
    keep: list[bool]              # per group: a graph output, alive to the end
    initial: int                  # bytes alive before the first layer (graph inputs)
    inplace: list[list[tuple[int, int]]]  # per layer: (input group, saving) options in order


@dataclass(frozen=True)
class ScheduleResult:
    """The chosen order and its peak, next to the peak of the original order."""

    order: list[int]              # indices into the original layer list
    peak: int                     # bytes, by this module's cost model
    original_peak: int
    exact: bool                   # True when no level of the search was pruned


def _build(graph: ir.Graph, layers: Sequence[Layer], inplace: str, alignment: int,
           lowering: LoweringOptions | None = None) -> _Problem:
    parent: dict[int, ir.Tensor] = {}

    def root(t: ir.Tensor) -> ir.Tensor:
        while id(parent.get(id(t), t)) != id(t):
            t = parent[id(t)]
        return t

    for layer in layers:
        if layer.alias_of is not None:
            parent[id(root(layer.op.outputs[0]))] = root(layer.alias_of)

    group_of: dict[int, int] = {}
    size: list[int] = []
    for t in graph.activations():
        r = root(t)
        if id(r) not in group_of:
            group_of[id(r)] = len(size)
            size.append(0)
        size[group_of[id(r)]] = max(size[group_of[id(r)]], t.nbytes, 1)

    def group(t: ir.Tensor) -> int:
        return group_of[id(root(t))]

    n = len(layers)
    footprint = [align_up(s, alignment) for s in size]
    consumers = [0] * len(size)
    keep = [False] * len(size)
    producer: dict[int, int] = {}  # id(tensor) -> layer index
    for i, layer in enumerate(layers):
        for t in layer.op.outputs:
            producer[id(t)] = i
    deps = [0] * n
    reads: list[list[int]] = [[] for _ in range(n)]
    created: list[list[int]] = [[] for _ in range(n)]
    new = [0] * n
    scratch = [0] * n
    options: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    input_groups = {group(t) for t in graph.inputs}
    for t in graph.outputs:
        keep[group(t)] = True

    for i, layer in enumerate(layers):
        for t in layer.op.inputs:
            if t is None or t.is_constant:
                continue
            if id(t) in producer:
                deps[i] |= 1 << producer[id(t)]
            g = group(t)
            if g not in reads[i]:
                reads[i].append(g)
            consumers[g] |= 1 << i
        if layer.alias_of is not None:
            # The alias joins its input's group, which stays alive through this layer.
            consumers[group(layer.op.outputs[0])] |= 1 << i
            continue
        for t in layer.op.outputs:
            g = group(t)
            if g not in created[i] and g not in input_groups:
                created[i].append(g)
                new[i] += footprint[g]
        scratch[i] = sum(align_up(s.nbytes, alignment) for s in layer.scratch if s.nbytes > 0)
        if inplace == "off":
            continue
        positions, variant = inplace_options(layer, lowering)
        if variant is not None and inplace != "all":
            continue
        out_group = group(layer.op.outputs[0]) if positions else -1
        for position in positions:
            if position >= len(layer.op.inputs):
                continue
            t = layer.op.inputs[position]
            if t is None or t.is_constant or group(t) == out_group or size[out_group] > size[group(t)]:
                continue
            saving = footprint[out_group]
            if variant is not None:
                # The in-place kernel's scratch replaces the original kernel's.
                saving += scratch[i] - sum(align_up(s.nbytes, alignment) for s in variant.scratch if s.nbytes > 0)
            options[i].append((group(t), saving))

    initial = sum(footprint[g] for g in input_groups)
    return _Problem(n, deps, reads, new, created, scratch, consumers, footprint, keep, initial, options)


def _step(p: _Problem, done: int, live: int, i: int) -> tuple[int, int]:
    """Return (bytes alive during layer i, bytes alive after it) when `done` ran before it."""
    after_mask = done | (1 << i)
    dying = [g for g in p.reads[i] if not p.keep[g] and not (p.consumers[g] & ~after_mask)]
    cost = live + p.new[i] + p.scratch[i]
    for g, saving in p.inplace[i]:
        if g in dying:
            cost -= saving
            break
    after = live + p.new[i] - sum(p.footprint[g] for g in dying)
    # Outputs that no layer reads and that are not graph outputs die at once.
    after -= sum(p.footprint[g] for g in p.created[i] if not p.keep[g] and not p.consumers[g])
    return cost, after


def _floor(p: _Problem) -> int:
    """Return a peak that no order can beat: the most any single layer needs while it runs.

    A layer's step holds at least the groups it reads, the groups it creates and its scratch,
    less its largest in-place saving.
    """
    floor = 0
    for i in range(p.n):
        saving = max((s for _, s in p.inplace[i]), default=0)
        floor = max(floor, sum(p.footprint[g] for g in p.reads[i]) + p.new[i] + p.scratch[i] - saving)
    return floor


def order_peak(p: _Problem, order: Sequence[int]) -> int:
    done, live, peak = 0, p.initial, 0
    for i in order:
        cost, live = _step(p, done, live, i)
        peak = max(peak, cost)
        done |= 1 << i
    return peak


def schedule(graph: ir.Graph, layers: Sequence[Layer], inplace: str = "auto", alignment: int = 16,
             beam: int | None = None, lowering: LoweringOptions | None = None) -> ScheduleResult:
    """Search for the topological order of `layers` with the lowest peak of live bytes.

    `beam` is the most downsets kept per level. By default it shrinks on long or wide graphs so
    that the search stays within about WORK_LIMIT layer visits. `lowering` must be the options
    the layers were lowered with.
    """
    p = _build(graph, layers, inplace, alignment, lowering)
    original = list(range(p.n))
    original_peak = order_peak(p, original)
    if p.n == 0 or original_peak <= _floor(p):
        return ScheduleResult(original, original_peak, original_peak, True)

    successors: list[list[int]] = [[] for _ in range(p.n)]
    for i in range(p.n):
        for j in range(p.n):
            if p.deps[j] >> i & 1:
                successors[i].append(j)
    start_ready = tuple(i for i in range(p.n) if not p.deps[i])

    # Each level maps a downset (bitmask) to its entry: (peak, live bytes after it, previous
    # downset, last layer, layers ready to run next).
    Entry = tuple[int, int, int, int, tuple[int, ...]]
    level: dict[int, Entry] = {0: (0, p.initial, -1, -1, start_ready)}
    history: list[dict[int, Entry]] = [level]
    exact = True
    for _ in range(p.n):
        nxt: dict[int, Entry] = {}
        for done, (peak, live, _, _, ready) in level.items():
            for i in ready:
                key = done | 1 << i
                cost, after = _step(p, done, live, i)
                best = nxt.get(key)
                if best is not None and max(peak, cost) >= best[0]:
                    continue
                unlocked = [j for j in successors[i] if not p.deps[j] & ~key]
                next_ready = tuple(sorted({*ready, *unlocked} - {i}))
                nxt[key] = (max(peak, cost), after, done, i, next_ready)
        keep = beam
        if keep is None:
            ready_per_downset = max(1, sum(len(entry[4]) for entry in nxt.values()) // max(1, len(nxt)))
            keep = max(MIN_BEAM, min(DEFAULT_BEAM, WORK_LIMIT // (p.n * ready_per_downset)))
        if len(nxt) > keep:
            exact = False
            best_entries = sorted(nxt.items(), key=lambda item: (item[1][0], item[1][1], item[0]))[:keep]
            nxt = dict(best_entries)
        history.append(nxt)
        level = nxt

    full = (1 << p.n) - 1
    best_peak = level[full][0]
    if best_peak >= original_peak:
        return ScheduleResult(original, original_peak, original_peak, exact)
    order: list[int] = []
    state = full
    for depth in range(p.n, 0, -1):
        _, _, previous, i, _ = history[depth][state]
        order.append(i)
        state = previous
    order.reverse()
    return ScheduleResult(order, best_peak, original_peak, exact)


def schedule_layers(graph: ir.Graph, layers: Sequence[Layer], inplace: str = "auto",
                    alignment: int = 16, lowering: LoweringOptions | None = None) -> list[Layer]:
    """Return `layers` in the topological order with the lowest peak of live bytes."""
    result = schedule(graph, layers, inplace, alignment, lowering=lowering)
    if result.order != list(range(len(layers))):
        log.info("reordered %d layers: peak %d bytes instead of %d (%s search)", len(layers),
                 result.peak, result.original_peak, "exact" if result.exact else "beam")
    return [layers[i] for i in result.order]
