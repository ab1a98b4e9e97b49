"""The place-one-item-at-a-time loop that the greedy and best-fit planners share.

Items (buffers, or groups of buffers that share bytes in place) are placed in a given order. For
each item, the ranges of offsets where it would collide with no already-placed item it conflicts
with are collected, and a fit rule picks an offset from those ranges. An item and a placed
neighbour collide when the item starts less than its height beside that neighbour below the
neighbour, or less than the neighbour's height beside the item above it. Because every offset is
a sum or difference of footprints, and footprints are multiples of the alignment, every offset is
aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tinycompile.planning.base import PackingProblem


@dataclass(frozen=True)
class Gaps:
    """Offsets where one item fits, given the placed items it conflicts with."""

    # Inclusive (lowest, highest) ranges of valid offsets below `top`, in ascending order. The
    # slack of a range, highest - lowest, is how many bytes the gap has to spare for this item.
    free: tuple[tuple[int, int], ...]
    top: int  # every offset from here up is valid
    arena: int  # current arena size: the highest end over all placed items


# A fit rule maps (gaps, footprint) to the chosen offset.
FitRule = Callable[[Gaps, int], int]


def first_fit(gaps: Gaps, footprint: int) -> int:
    """Pick the lowest offset where the item fits."""
    if gaps.free:
        return gaps.free[0][0]
    return gaps.top


def best_fit(gaps: Gaps, footprint: int) -> int:
    """Pick the gap with the least slack, and its lowest offset on a tie.

    The range between `top` and the current arena end counts as a gap too, because placing the
    item there does not grow the arena. When no gap fits, the item goes on `top`.
    """
    candidates = list(gaps.free)
    if gaps.arena - footprint >= gaps.top:
        candidates.append((gaps.top, gaps.arena - footprint))
    best: tuple[int, int] | None = None  # (slack, lowest offset)
    for lowest, highest in candidates:
        slack = highest - lowest
        if best is None or (slack, lowest) < best:
            best = (slack, lowest)
    return gaps.top if best is None else best[1]


def find_gaps(
    problem: PackingProblem, index: int, offsets: Sequence[int | None], arena: int
) -> Gaps:
    """Collect the offsets where item `index` collides with none of its placed neighbours."""
    # Item `index` at offset o collides with neighbour j at o_j when
    # o_j - height(index, j) < o < o_j + height(j, index). Each blocked range is stored as
    # (highest valid offset below it, lowest valid offset above it).
    blocked = []
    for other, own_height in zip(problem.conflicts[index], problem.heights[index]):
        offset = offsets[other]
        if offset is not None:
            blocked.append((offset - own_height, offset + problem.height(other, index)))
    blocked.sort()

    free: list[tuple[int, int]] = []
    cursor = 0
    for below, above in blocked:
        if below >= cursor:
            free.append((cursor, below))
        cursor = max(cursor, above)
    return Gaps(free=tuple(free), top=cursor, arena=arena)


def place_in_order(problem: PackingProblem, order: Sequence[int], fit: FitRule) -> list[int]:
    """Place the items in `order` one by one with `fit`; return the offset of each index."""
    offsets: list[int | None] = [None] * len(problem)
    arena = 0
    for index in order:
        gaps = find_gaps(problem, index, offsets, arena)
        offset = fit(gaps, problem.footprints[index])
        offsets[index] = offset
        arena = max(arena, offset + problem.footprints[index])
    placed = [offset for offset in offsets if offset is not None]
    assert len(placed) == len(problem), "order must list every item index once"
    return placed
