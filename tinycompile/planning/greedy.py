"""Greedy-by-size planning, the strategy of TensorFlow Lite Micro's GreedyMemoryPlanner.

Buffers (or groups of buffers that share bytes in place, placed as one item) are placed from the
largest footprint to the smallest (ties: earlier first step, then lower id). Each goes at the
lowest offset where it fits beside the already-placed items whose lifetimes overlap its own. Placing large buffers first lets small ones fill the gaps between
them instead of fragmenting the arena. It is fast (quadratic in the worst case) and matches what
TFLM users expect, so it is the reference the other planners must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinycompile.planning.base import Buffer, MemoryPlan, PackingProblem
from tinycompile.planning.placement import first_fit, place_in_order


def size_order(problem: PackingProblem) -> list[int]:
    """Return item indices by descending footprint, then ascending first step, then id."""
    return sorted(
        range(len(problem)),
        key=lambda i: (-problem.footprints[i], problem.items[i].first, problem.items[i].id),
    )


def plan_greedy(problem: PackingProblem) -> list[int]:
    """Return the greedy-by-size offset of each item index."""
    return place_in_order(problem, size_order(problem), first_fit)


class GreedyPlanner:
    """TFLM-style greedy-by-size planner."""

    name = "greedy"

    def plan(self, buffers: Sequence[Buffer], alignment: int) -> MemoryPlan:
        problem = PackingProblem.build(buffers, alignment)
        return problem.to_plan(plan_greedy(problem), self.name)
