"""Best-fit planning: try several placement orders and keep the smallest arena.

Greedy-by-size places each buffer at the lowest offset that fits, which can strand a large buffer
in a gap that a later, smaller buffer needed, or leave long-lived buffers scattered. This planner
places each buffer in the smallest gap that fits (the range between its conflicting neighbours'
top and the current arena end counts as a gap, because filling it costs nothing), under several
orders: by size, by size x lifetime, by lifetime, by total conflicting size, and by first step.
It also runs the greedy plan itself, so its arena is never larger than the greedy one. The orders
are tried in a fixed sequence and ties keep the earlier one, so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tinycompile.planning.base import Buffer, Item, MemoryPlan, PackingProblem
from tinycompile.planning.greedy import size_order
from tinycompile.planning.placement import FitRule, best_fit, first_fit, place_in_order

OrderRule = Callable[[PackingProblem], list[int]]


def _sorted_indices(problem: PackingProblem, primary: Callable[[int], tuple[int, ...]]) -> list[int]:
    """Sort indices by `primary`, then by descending footprint, first step and id."""
    return sorted(
        range(len(problem)),
        key=lambda i: (
            *primary(i),
            -problem.footprints[i],
            problem.items[i].first,
            problem.items[i].id,
        ),
    )


def _lifetime(item: Item) -> int:
    return item.last - item.first + 1


def area_order(problem: PackingProblem) -> list[int]:
    """Return indices by descending area: footprint x steps, summed over an item's segments."""
    return _sorted_indices(problem, lambda i: (-problem.items[i].area,))


def lifetime_order(problem: PackingProblem) -> list[int]:
    """Return indices by descending lifetime in steps."""
    return _sorted_indices(problem, lambda i: (-_lifetime(problem.items[i]),))


def conflict_order(problem: PackingProblem) -> list[int]:
    """Return indices by descending sum of own and conflicting footprints."""

    def pressure(i: int) -> tuple[int]:
        total = problem.footprints[i] + sum(problem.height(j, i) for j in problem.conflicts[i])
        return (-total,)

    return _sorted_indices(problem, pressure)


def first_use_order(problem: PackingProblem) -> list[int]:
    """Return indices by ascending first step, longer-lived buffers first on a tie."""
    return _sorted_indices(
        problem, lambda i: (problem.items[i].first, -problem.items[i].last)
    )


# Tried in this order; the first strategy with the smallest arena wins. Greedy comes first so that
# best-fit returns the greedy plan unless another strategy is strictly smaller.
STRATEGIES: tuple[tuple[str, OrderRule, FitRule], ...] = (
    ("greedy", size_order, first_fit),
    ("size", size_order, best_fit),
    ("area", area_order, best_fit),
    ("lifetime", lifetime_order, best_fit),
    ("conflict", conflict_order, best_fit),
    ("first-use", first_use_order, best_fit),
    ("area first-fit", area_order, first_fit),
    ("conflict first-fit", conflict_order, first_fit),
)


def plan_best_fit(problem: PackingProblem) -> tuple[list[int], str]:
    """Return the offsets of the best strategy and that strategy's name."""
    best_offsets: list[int] = []
    best_arena = -1
    best_name = ""
    for name, order_rule, fit_rule in STRATEGIES:
        offsets = place_in_order(problem, order_rule(problem), fit_rule)
        arena = problem.arena_size(offsets)
        if best_arena < 0 or arena < best_arena:
            best_offsets, best_arena, best_name = offsets, arena, name
    return best_offsets, best_name


class BestFitPlanner:
    """Multi-order best-fit planner, never worse than greedy-by-size."""

    name = "best-fit"

    def plan(self, buffers: Sequence[Buffer], alignment: int) -> MemoryPlan:
        problem = PackingProblem.build(buffers, alignment)
        offsets, _ = plan_best_fit(problem)
        return problem.to_plan(offsets, self.name)
