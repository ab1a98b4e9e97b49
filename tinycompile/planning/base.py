"""Types, checks and the planner registry shared by every static memory planner.

The compiler describes each tensor or scratch area as a `Buffer`: a byte size and the inclusive
range of operator steps during which it is live. A planner assigns each buffer a byte offset in
one arena so that no two buffers alive at a common step share a byte, and returns a `MemoryPlan`.
Every planner pads each buffer to the alignment (its footprint), so offsets and the arena size
are multiples of the alignment. `lower_bound` is the largest sum of footprints alive at one step;
no plan can be smaller. `check_plan` independently verifies any plan against the buffers.

Which pairs of buffers may not share bytes is computed in one place, `PackingProblem`, so that
later rules (an in-place operator whose output may reuse its input, say) change only that class.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tinycompile.errors import TinyCompileError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Buffer:
    """One tensor or scratch area to place in the arena."""

    id: int  # caller's key, unique within one planning request
    name: str  # tensor or scratch name, used in reports and errors
    size: int  # bytes, > 0
    first: int  # first operator step at which it holds data (inclusive)
    last: int  # last operator step at which it is read (inclusive), last >= first


@dataclass
class MemoryPlan:
    """Byte offsets of every buffer in one static arena."""

    offsets: dict[int, int]  # buffer id -> byte offset, a multiple of the alignment
    arena_size: int  # bytes, a multiple of the alignment
    planner: str  # name of the planner that produced the plan


@runtime_checkable
class Planner(Protocol):
    """A strategy that assigns arena offsets to buffers."""

    name: str

    def plan(self, buffers: Sequence[Buffer], alignment: int) -> MemoryPlan: ...


# Planner name -> "module:class", imported on first use so that importing this module does not
# import the solver behind the exact planner. The order is the tie-break order of "auto".
_PLANNERS: dict[str, str] = {
    "greedy": "tinycompile.planning.greedy:GreedyPlanner",
    "best-fit": "tinycompile.planning.bestfit:BestFitPlanner",
    "exact": "tinycompile.planning.exact:ExactPlanner",
}

AUTO = "auto"


def available_planners() -> list[str]:
    """Return the planner names that `get_planner` accepts, in the tie-break order of "auto"."""
    return list(_PLANNERS)


def get_planner(name: str) -> Planner:
    """Create the planner registered under `name` with its default settings.

    Raises TinyCompileError for an unknown name, listing the known ones.
    """
    target = _PLANNERS.get(name)
    if target is None:
        known = ", ".join([*_PLANNERS, AUTO])
        raise TinyCompileError(
            f"unknown memory planner {name!r}: use one of {known}"
        )
    module_name, class_name = target.split(":")
    planner_class = getattr(importlib.import_module(module_name), class_name)
    return planner_class()


def plan_memory(
    buffers: Sequence[Buffer], planner: str | Planner = "auto", alignment: int = 16
) -> MemoryPlan:
    """Plan `buffers` with the named planner (or a planner object) and verify the result.

    "auto" runs every registered planner with its default limits and returns the smallest arena.
    On a tie it keeps the plan of the planner listed first by `available_planners`.
    """
    validate_buffers(buffers)
    validate_alignment(alignment)

    if isinstance(planner, str) and planner == AUTO:
        best: MemoryPlan | None = None
        for name in _PLANNERS:
            candidate = get_planner(name).plan(buffers, alignment)
            check_plan(buffers, candidate, alignment)
            logger.debug("planner %s: arena %d bytes", name, candidate.arena_size)
            if best is None or candidate.arena_size < best.arena_size:
                best = candidate
        assert best is not None
        return best

    chosen = get_planner(planner) if isinstance(planner, str) else planner
    plan = chosen.plan(buffers, alignment)
    check_plan(buffers, plan, alignment)
    return plan


def align_up(value: int, alignment: int) -> int:
    """Round `value` up to a multiple of `alignment`."""
    return -(-value // alignment) * alignment


def validate_alignment(alignment: int) -> None:
    """Raise TinyCompileError unless `alignment` is a positive power of two."""
    if isinstance(alignment, bool) or not isinstance(alignment, int):
        raise TinyCompileError(
            f"invalid memory alignment {alignment!r}: use a power of two such as 4, 8 or 16"
        )
    if alignment < 1 or alignment & (alignment - 1):
        raise TinyCompileError(
            f"invalid memory alignment {alignment}: use a power of two such as 4, 8 or 16"
        )


def validate_buffers(buffers: Sequence[Buffer]) -> None:
    """Raise ValueError for a duplicate id, a non-positive size or an empty lifetime.

    These are compiler bugs rather than user errors, so they raise ValueError.
    """
    seen: dict[int, Buffer] = {}
    for buffer in buffers:
        if buffer.id in seen:
            raise ValueError(
                f"buffers {seen[buffer.id].name!r} and {buffer.name!r} share id {buffer.id}"
            )
        seen[buffer.id] = buffer
        if buffer.size <= 0:
            raise ValueError(f"buffer {buffer.name!r} has size {buffer.size}, expected > 0")
        if buffer.last < buffer.first:
            raise ValueError(
                f"buffer {buffer.name!r} has last step {buffer.last} before first step "
                f"{buffer.first}"
            )


def lifetimes_overlap(a: Buffer, b: Buffer) -> bool:
    """Return True when `a` and `b` are alive at a common step."""
    return a.first <= b.last and b.first <= a.last


def lower_bound(buffers: Sequence[Buffer], alignment: int = 16) -> int:
    """Return the max over steps of the summed footprints of the buffers alive at that step."""
    validate_alignment(alignment)
    # Sweep over lifetime boundaries: +footprint at `first`, -footprint at `last + 1`. At equal
    # steps the removals sort first (key -1), so a buffer that dies at step s - 1 never counts
    # together with one born at step s.
    events: list[tuple[int, int, int]] = []
    for buffer in buffers:
        footprint = align_up(buffer.size, alignment)
        events.append((buffer.first, 0, footprint))
        events.append((buffer.last + 1, -1, -footprint))
    events.sort()

    live = 0
    peak = 0
    for _, _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def check_plan(buffers: Sequence[Buffer], plan: MemoryPlan, alignment: int) -> None:
    """Raise ValueError if `plan` is not a valid placement of `buffers`.

    Checks that every buffer has an aligned, non-negative offset, ends inside the arena, and shares
    no byte with another buffer alive at a common step. It uses the real sizes, not the footprints,
    so it accepts any correct plan, not only those made by the planners here.
    """
    if plan.arena_size < 0 or plan.arena_size % alignment:
        raise ValueError(
            f"{plan.planner} plan: arena size {plan.arena_size} is not a non-negative multiple "
            f"of the alignment {alignment}"
        )

    known_ids = {buffer.id for buffer in buffers}
    unknown_ids = sorted(set(plan.offsets) - known_ids)
    if unknown_ids:
        raise ValueError(f"{plan.planner} plan: offsets for unknown buffer ids {unknown_ids}")

    for buffer in buffers:
        offset = plan.offsets.get(buffer.id)
        if offset is None:
            raise ValueError(f"{plan.planner} plan: buffer {buffer.name!r} has no offset")
        if offset < 0 or offset % alignment:
            raise ValueError(
                f"{plan.planner} plan: buffer {buffer.name!r} offset {offset} is not a "
                f"non-negative multiple of the alignment {alignment}"
            )
        if offset + buffer.size > plan.arena_size:
            raise ValueError(
                f"{plan.planner} plan: buffer {buffer.name!r} ends at byte "
                f"{offset + buffer.size}, past the arena end {plan.arena_size}"
            )

    for a, b in overlapping_pairs(buffers):
        a_start = plan.offsets[a.id]
        b_start = plan.offsets[b.id]
        if a_start < b_start + b.size and b_start < a_start + a.size:
            raise ValueError(
                f"{plan.planner} plan: buffers {a.name!r} (bytes {a_start}-"
                f"{a_start + a.size - 1}, steps {a.first}-{a.last}) and {b.name!r} (bytes "
                f"{b_start}-{b_start + b.size - 1}, steps {b.first}-{b.last}) overlap"
            )


def overlapping_pairs(buffers: Sequence[Buffer]) -> list[tuple[Buffer, Buffer]]:
    """Return every pair of buffers alive at a common step, each pair once."""
    by_first = sorted(buffers, key=lambda buffer: (buffer.first, buffer.id))
    pairs: list[tuple[Buffer, Buffer]] = []
    for i, a in enumerate(by_first):
        for b in by_first[i + 1 :]:
            if b.first > a.last:
                break
            pairs.append((a, b))
    return pairs


@dataclass(frozen=True)
class PackingProblem:
    """Buffers prepared for placement: footprints and which buffers may not share bytes.

    Planners work on indices into `buffers`, which is sorted by id. `conflicts[i]` lists, in ascending order, the
    indices of the buffers whose bytes must stay disjoint from buffer i's bytes.
    """

    buffers: tuple[Buffer, ...]
    alignment: int
    footprints: tuple[int, ...]  # sizes rounded up to the alignment, in bytes
    conflicts: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, buffers: Sequence[Buffer], alignment: int) -> PackingProblem:
        """Validate `buffers` and `alignment` and compute footprints and conflicts."""
        validate_buffers(buffers)
        validate_alignment(alignment)
        # Sorting by id makes every planner's result independent of the caller's list order.
        ordered = tuple(sorted(buffers, key=lambda buffer: buffer.id))
        index_of = {buffer.id: i for i, buffer in enumerate(ordered)}
        neighbours: list[list[int]] = [[] for _ in ordered]
        for a, b in overlapping_pairs(ordered):
            neighbours[index_of[a.id]].append(index_of[b.id])
            neighbours[index_of[b.id]].append(index_of[a.id])
        return cls(
            buffers=ordered,
            alignment=alignment,
            footprints=tuple(align_up(buffer.size, alignment) for buffer in ordered),
            conflicts=tuple(tuple(sorted(n)) for n in neighbours),
        )

    def __len__(self) -> int:
        return len(self.buffers)

    def arena_size(self, offsets: Sequence[int]) -> int:
        """Return the arena size that placing buffer i at `offsets[i]` needs."""
        return max(
            (offset + footprint for offset, footprint in zip(offsets, self.footprints)),
            default=0,
        )

    def to_plan(self, offsets: Sequence[int], planner: str) -> MemoryPlan:
        """Wrap per-index offsets into a `MemoryPlan` keyed by buffer id."""
        return MemoryPlan(
            offsets={buffer.id: offset for buffer, offset in zip(self.buffers, offsets)},
            arena_size=self.arena_size(offsets),
            planner=planner,
        )
