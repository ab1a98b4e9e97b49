"""Static memory planning: assign every buffer an offset in one arena.

Use `plan_memory(buffers, planner="auto")`. The planners are "greedy" (TFLM's greedy-by-size),
"best-fit" (several orders with best-fit placement) and "exact" (CP-SAT, for up to 80 buffers by
default). "auto" runs all three and keeps the smallest arena. A buffer that an in-place layer
writes over its input names that input in `Buffer.shares`, and every planner gives it the same
offset.
"""

from tinycompile.planning.base import (
    Buffer,
    MemoryPlan,
    Planner,
    available_planners,
    check_plan,
    get_planner,
    lower_bound,
    plan_memory,
)
from tinycompile.planning.timeline import render_timeline

__all__ = [
    "Buffer",
    "MemoryPlan",
    "Planner",
    "available_planners",
    "check_plan",
    "get_planner",
    "lower_bound",
    "plan_memory",
    "render_timeline",
]
