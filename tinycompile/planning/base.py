"""Types, checks and the planner registry shared by every static memory planner.

The compiler describes each tensor or scratch area as a `Buffer`: a byte size and the inclusive
range of operator steps during which it is live. A planner assigns each buffer a byte offset in
one arena so that no two buffers alive at a common step share a byte, and returns a `MemoryPlan`.
Every planner pads each buffer to the alignment (its footprint), so offsets and the arena size
are multiples of the alignment. `check_plan` independently verifies any plan against the buffers.

An in-place operator writes its output over an input that it reads for the last time. The output
buffer then `shares` the input buffer: it is placed at the same offset, is born at the step where
the input is last read, and is no larger. Buffers linked this way form a chain (a sharing group)
that planners place as one item whose height changes over time: at the hand-off step the group
occupies the input's bytes, afterwards only the output's. `lower_bound` is the largest sum of
group footprints alive at one step; no plan of these buffers can be smaller.

Which items may not share bytes, and how tall each is beside the other, is computed in one place,
`PackingProblem`, so the planners only see items with pairwise heights.
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
    # Id of the buffer whose bytes this one takes over in place, or None. That buffer's last step
    # must equal this buffer's first step, its size must be at least this buffer's size, and it
    # may have no other sharer.
    shares: int | None = None


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
    """Raise ValueError for a duplicate id, a non-positive size, an empty lifetime or bad sharing.

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

    sharer_of: dict[int, Buffer] = {}
    for buffer in buffers:
        if buffer.shares is None:
            continue
        host = seen.get(buffer.shares)
        if host is None or host.id == buffer.id:
            raise ValueError(
                f"buffer {buffer.name!r} shares unknown or own buffer id {buffer.shares}"
            )
        if host.last != buffer.first:
            raise ValueError(
                f"buffer {buffer.name!r} (steps {buffer.first}-{buffer.last}) shares "
                f"{host.name!r} (steps {host.first}-{host.last}) but is not born at its last step"
            )
        if buffer.size > host.size:
            raise ValueError(
                f"buffer {buffer.name!r} ({buffer.size} bytes) shares the smaller buffer "
                f"{host.name!r} ({host.size} bytes)"
            )
        if host.id in sharer_of:
            raise ValueError(
                f"buffers {sharer_of[host.id].name!r} and {buffer.name!r} both share "
                f"{host.name!r}"
            )
        sharer_of[host.id] = buffer
    # Each host has one sharer and a sharer starts where its host ends, so a cycle needs every
    # member to live for one step. Walking up from each buffer finds it.
    for buffer in buffers:
        steps = 0
        current = buffer
        while current.shares is not None:
            current = seen[current.shares]
            steps += 1
            if steps > len(buffers):
                raise ValueError(f"buffer {buffer.name!r} is part of a sharing cycle")


def lifetimes_overlap(a: Buffer, b: Buffer) -> bool:
    """Return True when `a` and `b` are alive at a common step."""
    return a.first <= b.last and b.first <= a.last


@dataclass(frozen=True)
class Segment:
    """A step range during which a sharing group occupies `footprint` bytes from its offset."""

    first: int
    last: int
    footprint: int


@dataclass(frozen=True)
class Item:
    """One sharing group: buffers placed at one offset, from the first buffer to its last sharer.

    Segments do not overlap in time. A sharer's segment starts one step after its host's last
    step, because at the hand-off step the host's bytes, which are at least as many, already
    cover it.
    """

    members: tuple[Buffer, ...]  # the root first, then each sharer in order
    segments: tuple[Segment, ...]

    @property
    def id(self) -> int:
        return self.members[0].id

    @property
    def first(self) -> int:
        return self.segments[0].first

    @property
    def last(self) -> int:
        return self.segments[-1].last

    @property
    def footprint(self) -> int:
        """The item's largest footprint, which is how far it can reach above its offset."""
        return max(segment.footprint for segment in self.segments)

    @property
    def area(self) -> int:
        """Sum of footprint x steps over the segments."""
        return sum(s.footprint * (s.last - s.first + 1) for s in self.segments)

    @property
    def uniform(self) -> bool:
        """True when every segment has the same footprint, so the item is one rectangle."""
        return len({segment.footprint for segment in self.segments}) == 1


def sharing_groups(buffers: Sequence[Buffer], alignment: int) -> list[Item]:
    """Group `buffers` into items: chains linked by `shares`, sorted by root id.

    The buffers must already be valid (see `validate_buffers`).
    """
    sharer_of = {buffer.shares: buffer for buffer in buffers if buffer.shares is not None}
    items = []
    for root in sorted(buffers, key=lambda buffer: buffer.id):
        if root.shares is not None:
            continue
        members = [root]
        while members[-1].id in sharer_of:
            members.append(sharer_of[members[-1].id])
        segments = [Segment(root.first, root.last, align_up(root.size, alignment))]
        for member in members[1:]:
            if member.last > member.first:
                segments.append(
                    Segment(member.first + 1, member.last, align_up(member.size, alignment))
                )
        items.append(Item(tuple(members), tuple(segments)))
    return items


def lower_bound(buffers: Sequence[Buffer], alignment: int = 16) -> int:
    """Return the max over steps of the summed footprints of the groups alive at that step.

    Buffers that share another buffer's bytes count once with it (see `Buffer.shares`).
    """
    validate_alignment(alignment)
    validate_buffers(buffers)
    # Sweep over segment boundaries: +footprint at `first`, -footprint at `last + 1`. At equal
    # steps the removals sort first (key -1), so a segment that ends at step s - 1 never counts
    # together with one that starts at step s.
    events: list[tuple[int, int, int]] = []
    for item in sharing_groups(buffers, alignment):
        for segment in item.segments:
            events.append((segment.first, 0, segment.footprint))
            events.append((segment.last + 1, -1, -segment.footprint))
    events.sort()

    live = 0
    peak = 0
    for _, _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def check_plan(buffers: Sequence[Buffer], plan: MemoryPlan, alignment: int) -> None:
    """Raise ValueError if `plan` is not a valid placement of `buffers`.

    Checks that every buffer has an aligned, non-negative offset, ends inside the arena, sits at
    the offset of the buffer it shares, and shares no byte with another buffer alive at a common
    step unless both belong to one sharing group. It uses the real sizes, not the footprints, so
    it accepts any correct plan, not only those made by the planners here.
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

    by_id = {buffer.id: buffer for buffer in buffers}
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

    group_of: dict[int, int] = {}
    for buffer in buffers:
        if buffer.shares is None:
            continue
        host = by_id[buffer.shares]
        if plan.offsets[buffer.id] != plan.offsets[host.id]:
            raise ValueError(
                f"{plan.planner} plan: buffer {buffer.name!r} at offset "
                f"{plan.offsets[buffer.id]} shares {host.name!r} but that is at offset "
                f"{plan.offsets[host.id]}"
            )
    for item in sharing_groups(buffers, alignment):
        for member in item.members:
            group_of[member.id] = item.id

    for a, b in overlapping_pairs(buffers):
        if group_of[a.id] == group_of[b.id]:
            continue
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


def overlap_height(item: Item, other: Item) -> int:
    """Return how far `item` reaches above its offset at the steps where `other` is alive.

    Zero means the two items are never alive at a common step.
    """
    height = 0
    for mine in item.segments:
        for theirs in other.segments:
            if mine.first <= theirs.last and theirs.first <= mine.last:
                height = max(height, mine.footprint)
                break
    return height


@dataclass(frozen=True)
class PackingProblem:
    """Buffers prepared for placement: sharing groups and which groups may not share bytes.

    Planners work on indices into `items`, which are sorted by root buffer id. Items i and j
    that conflict, placed at offsets o_i and o_j, are compatible when
    o_i + height(i, j) <= o_j or o_j + height(j, i) <= o_i. `conflicts[i][k]` is such a j and
    `heights[i][k]` is height(i, j): how far item i reaches above its offset while j is alive.
    Without sharing, every height is the item's footprint.
    """

    buffers: tuple[Buffer, ...]  # sorted by id
    items: tuple[Item, ...]
    alignment: int
    footprints: tuple[int, ...]  # per item: its largest footprint, in bytes
    conflicts: tuple[tuple[int, ...], ...]  # per item: ascending indices of conflicting items
    heights: tuple[tuple[int, ...], ...]  # per item: its height beside each conflicting item
    pair_heights: dict[tuple[int, int], int]  # (i, j) -> height(i, j), for conflicting pairs

    @classmethod
    def build(cls, buffers: Sequence[Buffer], alignment: int) -> PackingProblem:
        """Validate `buffers` and `alignment`, group shared buffers and compute conflicts."""
        validate_buffers(buffers)
        validate_alignment(alignment)
        # Sorting by id makes every planner's result independent of the caller's list order.
        ordered = tuple(sorted(buffers, key=lambda buffer: buffer.id))
        items = sharing_groups(ordered, alignment)

        by_first = sorted(range(len(items)), key=lambda i: (items[i].first, items[i].id))
        neighbours: list[dict[int, int]] = [{} for _ in items]
        for position, i in enumerate(by_first):
            for j in by_first[position + 1 :]:
                if items[j].first > items[i].last:
                    break
                height_i = overlap_height(items[i], items[j])
                if height_i:
                    neighbours[i][j] = height_i
                    neighbours[j][i] = overlap_height(items[j], items[i])
        conflicts = tuple(tuple(sorted(n)) for n in neighbours)
        pair_heights = {(i, j): height for i, n in enumerate(neighbours) for j, height in n.items()}
        heights = tuple(
            tuple(n[j] for j in conflict) for n, conflict in zip(neighbours, conflicts)
        )
        return cls(
            buffers=ordered,
            items=tuple(items),
            alignment=alignment,
            footprints=tuple(item.footprint for item in items),
            conflicts=conflicts,
            heights=heights,
            pair_heights=pair_heights,
        )

    def __len__(self) -> int:
        return len(self.items)

    def height(self, i: int, j: int) -> int:
        """Return how far item i reaches above its offset while item j is alive."""
        return self.pair_heights[(i, j)]

    def arena_size(self, offsets: Sequence[int]) -> int:
        """Return the arena size that placing item i at `offsets[i]` needs."""
        return max(
            (offset + footprint for offset, footprint in zip(offsets, self.footprints)),
            default=0,
        )

    def to_plan(self, offsets: Sequence[int], planner: str) -> MemoryPlan:
        """Wrap per-item offsets into a `MemoryPlan` keyed by buffer id."""
        return MemoryPlan(
            offsets={
                member.id: offset
                for item, offset in zip(self.items, offsets)
                for member in item.members
            },
            arena_size=self.arena_size(offsets),
            planner=planner,
        )
