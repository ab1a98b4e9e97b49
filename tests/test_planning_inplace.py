"""Planner tests for buffers that share another buffer's bytes in place (`Buffer.shares`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinycompile.planning import (
    Buffer,
    MemoryPlan,
    available_planners,
    check_plan,
    get_planner,
    lower_bound,
    plan_memory,
    render_timeline,
)
from tinycompile.planning.base import PackingProblem
from tinycompile.planning.exact import ExactPlanner, solve_with_cp_sat
from tinycompile.planning.placement import first_fit, place_in_order


def inverted_residual() -> list[Buffer]:
    """A MobileNetV2 block: expand, in-place depthwise with scratch, project, in-place ADD."""
    return [
        Buffer(0, "x", 2048, 0, 3),
        Buffer(1, "expand", 12288, 0, 1),
        Buffer(2, "depthwise", 12288, 1, 2, shares=1),
        Buffer(3, "project", 2048, 2, 3),
        Buffer(4, "add", 2048, 3, 4, shares=3),
        Buffer(5, "scratch", 256, 1, 1),
    ]


def shrinking_sharer() -> list[Buffer]:
    """A sharer smaller than its host lets b1 sit right above it; greedy and best-fit miss that."""
    return [
        Buffer(0, "b0", 64, 2, 3),
        Buffer(1, "b1", 128, 3, 4),
        Buffer(2, "b2", 112, 4, 5),
        Buffer(3, "b3", 128, 1, 1),
        Buffer(4, "b4", 128, 2, 2),
        Buffer(5, "s5", 96, 2, 3, shares=4),
    ]


EXPECTED = {
    "inverted-residual": (
        inverted_residual(),
        {
            name: ({0: 12288, 1: 0, 2: 0, 3: 14336, 4: 14336, 5: 14336}, 16384)
            for name in ("greedy", "best-fit", "exact")
        },
    ),
    "shrinking-sharer": (
        shrinking_sharer(),
        {
            "greedy": ({0: 224, 1: 96, 2: 224, 3: 0, 4: 0, 5: 0}, 336),
            "best-fit": ({0: 256, 1: 0, 2: 128, 3: 0, 4: 128, 5: 128}, 320),
            # At step 3 only the 96-byte sharer is left of the 128-byte group, so b1 fits
            # above it at 160.
            "exact": ({0: 0, 1: 160, 2: 0, 3: 0, 4: 64, 5: 64}, 288),
        },
    ),
}


@pytest.mark.parametrize(
    ("graph", "planner"),
    [(graph, planner) for graph, (_, per_planner) in EXPECTED.items() for planner in per_planner],
)
def test_inplace_hand_made_offsets(graph: str, planner: str) -> None:
    buffers, per_planner = EXPECTED[graph]
    offsets, arena = per_planner[planner]
    plan = plan_memory(buffers, planner, alignment=16)
    assert plan.offsets == offsets
    assert plan.arena_size == arena


def test_lower_bound_counts_shared_buffers_once() -> None:
    assert lower_bound(inverted_residual(), 16) == 16384
    separate = [Buffer(b.id, b.name, b.size, b.first, b.last) for b in inverted_residual()]
    # Without sharing, x, expand, depthwise and scratch are alive at step 1: 2048 + 2 * 12288 + 256.
    assert lower_bound(separate, 16) == 26880
    assert lower_bound(shrinking_sharer(), 16) == 288


def test_sharer_at_host_offset_passes_check() -> None:
    buffers = inverted_residual()
    plan = plan_memory(buffers, "greedy")
    assert plan.offsets[2] == plan.offsets[1]
    assert plan.offsets[4] == plan.offsets[3]
    check_plan(buffers, plan, 16)


def test_check_plan_rejects_sharer_elsewhere() -> None:
    buffers = [Buffer(0, "in", 64, 0, 1), Buffer(1, "out", 64, 1, 2, shares=0)]
    plan = MemoryPlan(offsets={0: 0, 1: 64}, arena_size=128, planner="test")
    with pytest.raises(ValueError, match="'out' at offset 64 shares 'in' but that is at offset 0"):
        check_plan(buffers, plan, 16)


def test_check_plan_rejects_third_buffer_in_shared_bytes() -> None:
    buffers = [Buffer(0, "in", 64, 0, 1), Buffer(1, "out", 32, 1, 2, shares=0), Buffer(2, "other", 32, 2, 2)]
    # At step 2 "out" uses bytes 0-31 only, so "other" may sit at 32 but not at 16.
    check_plan(buffers, MemoryPlan({0: 0, 1: 0, 2: 32}, 64, "test"), 16)
    with pytest.raises(ValueError, match="'out' .* and 'other' .* overlap"):
        check_plan(buffers, MemoryPlan({0: 0, 1: 0, 2: 16}, 64, "test"), 16)


@pytest.mark.parametrize(
    ("buffers", "match"),
    [
        ([Buffer(0, "a", 16, 0, 1), Buffer(1, "b", 16, 1, 2, shares=7)], "unknown or own buffer id 7"),
        ([Buffer(0, "a", 16, 0, 1, shares=0)], "unknown or own buffer id 0"),
        ([Buffer(0, "a", 16, 0, 1), Buffer(1, "b", 16, 2, 3, shares=0)], "not born at its last step"),
        ([Buffer(0, "a", 16, 0, 1), Buffer(1, "b", 32, 1, 2, shares=0)], "shares the smaller buffer"),
        (
            [Buffer(0, "a", 16, 0, 1), Buffer(1, "b", 16, 1, 2, shares=0), Buffer(2, "c", 16, 1, 1, shares=0)],
            "both share 'a'",
        ),
        ([Buffer(0, "a", 16, 1, 1, shares=1), Buffer(1, "b", 16, 1, 1, shares=0)], "sharing cycle"),
    ],
)
def test_invalid_sharing_rejected(buffers: list[Buffer], match: str) -> None:
    for name in available_planners():
        with pytest.raises(ValueError, match=match):
            plan_memory(buffers, name)
    with pytest.raises(ValueError, match=match):
        lower_bound(buffers)


def test_chain_of_sharers_gets_one_offset() -> None:
    buffers = [
        Buffer(0, "a", 96, 0, 1),
        Buffer(1, "b", 64, 1, 2, shares=0),
        Buffer(2, "c", 32, 2, 4, shares=1),
        Buffer(3, "d", 64, 3, 4),
    ]
    for name in available_planners():
        plan = plan_memory(buffers, name)
        assert plan.offsets[0] == plan.offsets[1] == plan.offsets[2]
        # From step 3 the group is 32 bytes tall, so d fits beside it in 96 bytes.
        assert plan.arena_size == 96


def test_timeline_draws_host_at_hand_off_step() -> None:
    buffers = [Buffer(0, "in", 64, 0, 1), Buffer(1, "out", 32, 1, 2, shares=0)]
    text = render_timeline(buffers, plan_memory(buffers, "greedy"), width=4)
    lines = text.splitlines()
    assert "in place of id 0" in lines[2]
    assert lines[-2].endswith("|0000| 64 bytes live")
    assert lines[-1].endswith("|11..| 32 bytes live")
    assert "!" not in text


@st.composite
def shared_buffer_sets(draw: st.DrawFn, max_count: int = 10) -> list[Buffer]:
    """Random buffers, some of which take over an earlier buffer's bytes in place."""
    count = draw(st.integers(1, max_count))
    ids = draw(st.lists(st.integers(0, 1000), min_size=count, max_size=count, unique=True))
    buffers: list[Buffer] = []
    hosted: set[int] = set()
    for buffer_id in ids:
        hosts = [b for b in buffers if b.id not in hosted]
        if hosts and draw(st.booleans()):
            host = draw(st.sampled_from(hosts))
            hosted.add(host.id)
            size = draw(st.integers(1, host.size))
            last = host.last + draw(st.integers(0, 4))
            buffers.append(Buffer(buffer_id, f"t{buffer_id}", size, host.last, last, shares=host.id))
        else:
            first = draw(st.integers(0, 8))
            size = draw(st.integers(1, 300))
            buffers.append(Buffer(buffer_id, f"t{buffer_id}", size, first, first + draw(st.integers(0, 4))))
    return buffers


alignments = st.sampled_from([1, 4, 16])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers=shared_buffer_sets(max_count=14), alignment=alignments)
def test_heuristics_valid_with_sharing(buffers: list[Buffer], alignment: int) -> None:
    bound = lower_bound(buffers, alignment)
    arenas = {}
    for name in ("greedy", "best-fit"):
        plan = get_planner(name).plan(buffers, alignment)
        check_plan(buffers, plan, alignment)
        for buffer in buffers:
            if buffer.shares is not None:
                assert plan.offsets[buffer.id] == plan.offsets[buffer.shares]
        assert plan.arena_size >= bound
        assert get_planner(name).plan(list(reversed(buffers)), alignment) == plan
        arenas[name] = plan.arena_size
    assert arenas["best-fit"] <= arenas["greedy"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers=shared_buffer_sets(max_count=12), alignment=alignments)
def test_sharing_never_raises_lower_bound(buffers: list[Buffer], alignment: int) -> None:
    separate = [Buffer(b.id, b.name, b.size, b.first, b.last) for b in buffers]
    assert lower_bound(buffers, alignment) <= lower_bound(separate, alignment)


def brute_force_optimum(buffers: list[Buffer], alignment: int) -> int:
    """Return the smallest arena by trying first-fit in every order of the sharing groups.

    Replaying an optimal plan in offset order with first-fit places each group at or below its
    optimal offset, because a group's height beside each neighbour does not depend on the offsets.
    """
    problem = PackingProblem.build(buffers, alignment)
    return min(
        problem.arena_size(place_in_order(problem, order, first_fit))
        for order in itertools.permutations(range(len(problem)))
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers=shared_buffer_sets(max_count=7), alignment=alignments)
def test_exact_optimal_with_sharing(buffers: list[Buffer], alignment: int) -> None:
    plan = ExactPlanner(work_limit=0.2).plan(buffers, alignment)
    check_plan(buffers, plan, alignment)
    assert plan.arena_size == brute_force_optimum(buffers, alignment)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffers=shared_buffer_sets(max_count=7), alignment=alignments)
def test_solver_with_sharing_from_stacked_hint(buffers: list[Buffer], alignment: int) -> None:
    problem = PackingProblem.build(buffers, alignment)
    stacked = list(itertools.accumulate([0, *problem.footprints[:-1]]))
    offsets = solve_with_cp_sat(problem, stacked, work_limit=0.2)
    assert offsets is not None
    plan = problem.to_plan(offsets, "cp-sat")
    check_plan(buffers, plan, alignment)
    assert plan.arena_size == brute_force_optimum(buffers, alignment)
