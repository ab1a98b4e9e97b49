"""Exact planning with the CP-SAT constraint solver from OR-Tools.

Placing buffers with fixed lifetimes in a minimal arena is the dynamic storage allocation
problem, which is NP-hard, so the heuristics can leave bytes on the table. This planner states it
as a two-dimensional packing: each buffer is a rectangle whose time extent is fixed and whose
offset is a variable (one unit = one alignment step), no two rectangles may overlap, and the
arena end is minimised. A group of buffers that share bytes in place is one rectangle per
segment, all starting at the group's one offset variable. The best heuristic plan seeds the solver as a hint and caps the arena, so
the result is never worse than the heuristics. When the heuristic arena already equals the lower
bound it is optimal and the solver is skipped.

The solver runs single-threaded with a fixed seed. It stops on a work limit measured in CP-SAT's
deterministic time, which counts work done rather than seconds elapsed. So with one OR-Tools
version the same buffers give the same plan on every run and machine. A wall-clock limit backs it
up. If that one fires first, the result may differ between runs, and a warning says so. Above
`max_buffers` buffers, or when the solver stops without a better plan, the best heuristic plan is
returned and the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from tinycompile.errors import TinyCompileError
from tinycompile.planning.base import Buffer, MemoryPlan, PackingProblem, lower_bound
from tinycompile.planning.bestfit import plan_best_fit

logger = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERS = 80
# CP-SAT deterministic time. NOTE: 0.5 units took 2 to 3.5 s of wall time for 80 to 120 densely
# overlapping random buffers (OR-Tools 9.15, one core of an x86-64 server). Sparse CNN-like sets
# finish in milliseconds because the solver proves optimality early.
DEFAULT_WORK_LIMIT = 0.5
DEFAULT_TIME_LIMIT = 10.0  # wall-clock seconds, a backstop for slow machines


class ExactPlanner:
    """Optimal planner for small buffer sets, falling back to the best heuristic plan."""

    name = "exact"

    def __init__(
        self,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
        work_limit: float = DEFAULT_WORK_LIMIT,
        time_limit: float = DEFAULT_TIME_LIMIT,
        seed: int = 0,
    ) -> None:
        if max_buffers < 0:
            raise ValueError(f"max_buffers is {max_buffers}, expected >= 0")
        if work_limit <= 0:
            raise ValueError(f"work_limit is {work_limit}, expected > 0")
        if time_limit <= 0:
            raise ValueError(f"time_limit is {time_limit}, expected > 0")
        self.max_buffers = max_buffers
        self.work_limit = work_limit
        self.time_limit = time_limit
        self.seed = seed

    def plan(self, buffers: Sequence[Buffer], alignment: int) -> MemoryPlan:
        problem = PackingProblem.build(buffers, alignment)
        heuristic, strategy = plan_best_fit(problem)
        heuristic_arena = problem.arena_size(heuristic)
        bound = lower_bound(problem.buffers, alignment)

        if heuristic_arena == bound:
            logger.debug(
                "exact planner: heuristic %s reaches the lower bound %d bytes", strategy, bound
            )
            return problem.to_plan(heuristic, self.name)
        # A sharing group counts as one buffer here, because it has one offset variable.
        if len(problem) > self.max_buffers:
            logger.info(
                "exact planner: %d buffers exceed the limit of %d, so the %s heuristic plan "
                "(%d bytes, lower bound %d) is used",
                len(problem),
                self.max_buffers,
                strategy,
                heuristic_arena,
                bound,
            )
            return problem.to_plan(heuristic, self.name)

        offsets = solve_with_cp_sat(
            problem,
            heuristic,
            work_limit=self.work_limit,
            time_limit=self.time_limit,
            seed=self.seed,
        )
        if offsets is None or problem.arena_size(offsets) >= heuristic_arena:
            return problem.to_plan(heuristic, self.name)
        return problem.to_plan(offsets, self.name)


def solve_with_cp_sat(
    problem: PackingProblem,
    hint: Sequence[int],
    *,
    work_limit: float = DEFAULT_WORK_LIMIT,
    time_limit: float = DEFAULT_TIME_LIMIT,
    seed: int = 0,
) -> list[int] | None:
    """Minimise the arena of `problem` with CP-SAT, starting from the valid plan `hint`.

    Returns the offset of each buffer index, with an arena no larger than the hint's, or None
    when the solver stopped without a plan.
    """
    try:
        from ortools.sat.python import cp_model
    except ImportError as error:
        raise TinyCompileError(
            f"the exact memory planner needs OR-Tools ({error}): install it with "
            "'pip install ortools' or choose the best-fit planner"
        ) from error

    if not problem.items:
        return []
    unit = problem.alignment
    bound = lower_bound(problem.buffers, unit)
    upper = problem.arena_size(hint)
    model, starts = _build_model(cp_model, problem, hint)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = work_limit
    solver.parameters.max_time_in_seconds = time_limit
    status = solver.solve(model)

    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the memory model: {model.validate()}")
    stopped_early = status not in (cp_model.OPTIMAL, cp_model.INFEASIBLE)
    if stopped_early and solver.deterministic_time < work_limit:
        logger.warning(
            "exact planner: CP-SAT reached the wall-clock limit of %.1f s after %.2f of %.2f "
            "work units, so this plan may differ between runs; raise time_limit",
            time_limit,
            solver.deterministic_time,
            work_limit,
        )

    if status == cp_model.OPTIMAL:
        found = [solver.value(start) * unit for start in starts]
        logger.debug(
            "exact planner: optimal arena %d bytes (hint %d) in %.2f s",
            problem.arena_size(found),
            upper,
            solver.wall_time,
        )
        return found
    if status == cp_model.FEASIBLE:
        found = [solver.value(start) * unit for start in starts]
        logger.info(
            "exact planner: CP-SAT stopped at its limit after %.2f s with an arena of %d bytes "
            "(hint %d, lower bound %d), not proven optimal",
            solver.wall_time,
            problem.arena_size(found),
            upper,
            bound,
        )
        return found
    if status == cp_model.INFEASIBLE:
        # Unreachable unless the model is wrong: the hint itself satisfies every constraint.
        logger.warning("exact planner: CP-SAT reported the hinted plan infeasible; using the hint")
    else:
        logger.info(
            "exact planner: CP-SAT stopped with status %s after %.2f s without a plan; using "
            "the hint (%d bytes, lower bound %d)",
            solver.status_name(status),
            solver.wall_time,
            upper,
            bound,
        )
    return None


def _build_model(
    cp_model: ModuleType, problem: PackingProblem, hint: Sequence[int]
) -> tuple[Any, list[Any]]:
    """Return the CP-SAT model and the offset variable of each item index, in alignment units.

    Each segment of an item is a rectangle: a fixed interval over its steps times an interval
    over the arena that starts at the item's offset variable. The arena end lies between the
    lower bound and the hint's arena.
    """
    unit = problem.alignment
    sizes = [footprint // unit for footprint in problem.footprints]
    upper = problem.arena_size(hint) // unit
    bound = lower_bound(problem.buffers, unit) // unit
    hinted = [offset // unit for offset in hint]

    # Mirroring a plan (offset -> arena - offset - size) gives another valid plan when every item
    # is one rectangle, so then the largest item may be kept in the lower half, which halves the
    # search space. The hint is mirrored too when it breaks that rule. An item whose height
    # changes over time is bottom-aligned and has no mirror image, so sharing turns this off.
    symmetric = all(item.uniform for item in problem.items)
    largest = max(range(len(problem)), key=lambda i: (sizes[i], -i))
    if symmetric and 2 * hinted[largest] + sizes[largest] > upper:
        hinted = [upper - start - size for start, size in zip(hinted, sizes)]

    model = cp_model.CpModel()
    arena = model.new_int_var(bound, upper, "arena")
    starts = []
    offset_intervals = []
    time_intervals = []
    for i, item in enumerate(problem.items):
        start = model.new_int_var(0, upper - sizes[i], f"offset_{i}")
        starts.append(start)
        for k, segment in enumerate(item.segments):
            offset_intervals.append(
                model.new_fixed_size_interval_var(start, segment.footprint // unit, f"bytes_{i}_{k}")
            )
            time_intervals.append(
                model.new_fixed_size_interval_var(
                    segment.first, segment.last - segment.first + 1, f"steps_{i}_{k}"
                )
            )
        model.add(start + sizes[i] <= arena)
        model.add_hint(start, hinted[i])
    model.add_hint(arena, upper)

    model.add_no_overlap_2d(time_intervals, offset_intervals)
    if symmetric:
        model.add(2 * starts[largest] + sizes[largest] <= arena)
    model.minimize(arena)
    return model, starts
