"""The place-one-buffer-at-a-time loop that the greedy and best-fit planners share.

Buffers are placed in a given order. For each buffer, the free gaps between the already-placed
buffers it conflicts with are collected, and a fit rule picks an offset from those gaps. Because every offset
is a sum of footprints, and footprints are multiples of the alignment, every offset is aligned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tinycompile.planning.base import PackingProblem


@dataclass(frozen=True)
class Gaps:
    """Free byte ranges for one buffer, given the placed buffers it conflicts with."""

    inner: tuple[tuple[int, int], ...]  # (start, end) ranges below `top`, in offset order
    top: int  # end of the highest conflicting placed buffer; everything above is free
    arena: int  # current arena size: the highest end over all placed buffers


# A fit rule maps (gaps, footprint) to the chosen offset.
FitRule = Callable[[Gaps, int], int]


def first_fit(gaps: Gaps, footprint: int) -> int:
    """Pick the lowest offset where the buffer fits."""
    for start, end in gaps.inner:
        if end - start >= footprint:
            return start
    return gaps.top


def best_fit(gaps: Gaps, footprint: int) -> int:
    """Pick the smallest gap that fits the buffer, and its lowest offset on a tie.

    The range between `top` and the current arena end counts as a gap too, because placing the
    buffer there does not grow the arena. When no gap fits, the buffer goes on `top`.
    """
    candidates = list(gaps.inner)
    if gaps.arena > gaps.top:
        candidates.append((gaps.top, gaps.arena))
    best: tuple[int, int] | None = None  # (gap length, start)
    for start, end in candidates:
        length = end - start
        if length >= footprint and (best is None or (length, start) < best):
            best = (length, start)
    return gaps.top if best is None else best[1]


def find_gaps(
    problem: PackingProblem, index: int, offsets: Sequence[int | None], arena: int
) -> Gaps:
    """Collect the free ranges for buffer `index` below its placed conflicting buffers' top."""
    occupied = sorted(
        (offset, offset + problem.footprints[other])
        for other in problem.conflicts[index]
        if (offset := offsets[other]) is not None
    )
    inner: list[tuple[int, int]] = []
    cursor = 0
    for start, end in occupied:
        if start > cursor:
            inner.append((cursor, start))
        cursor = max(cursor, end)
    return Gaps(inner=tuple(inner), top=cursor, arena=arena)


def place_in_order(problem: PackingProblem, order: Sequence[int], fit: FitRule) -> list[int]:
    """Place the buffers in `order` one by one with `fit`; return the offset of each index."""
    offsets: list[int | None] = [None] * len(problem)
    arena = 0
    for index in order:
        gaps = find_gaps(problem, index, offsets, arena)
        offset = fit(gaps, problem.footprints[index])
        offsets[index] = offset
        arena = max(arena, offset + problem.footprints[index])
    placed = [offset for offset in offsets if offset is not None]
    assert len(placed) == len(problem), "order must list every buffer index once"
    return placed
