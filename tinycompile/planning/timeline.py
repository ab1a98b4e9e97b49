"""ASCII rendering of a memory plan: one row per operator step, one column per slice of arena.

Each buffer gets a one-character label (0-9, a-z, A-Z, then '*'). A column shows the live buffer
that covers most of its bytes, '.' when no live buffer touches it, and '!' when two live buffers
share a byte there, which a valid plan never does. Each row ends with the bytes alive at that step.
A legend above the rows maps labels to buffers. Meant for debugging plans by eye, like the plan
printout of TFLM's greedy planner.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinycompile.planning.base import Buffer, MemoryPlan

_LABELS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _label(index: int) -> str:
    return _LABELS[index] if index < len(_LABELS) else "*"


def _render_row(
    live: list[tuple[str, int, int]], arena_size: int, width: int
) -> str:
    """Render one step; `live` contains (label, start byte, end byte) of the buffers alive then."""
    cells = []
    for column in range(width):
        low = column * arena_size // width
        high = max(low + 1, (column + 1) * arena_size // width)
        covering = [
            (min(end, high) - max(start, low), -start, label, start, end)
            for label, start, end in live
            if start < high and end > low
        ]
        if not covering:
            cells.append(".")
            continue
        clash = any(
            a[3] < b[4] and b[3] < a[4] and max(a[3], b[3]) < high and min(a[4], b[4]) > low
            for n, a in enumerate(covering)
            for b in covering[n + 1 :]
        )
        cells.append("!" if clash else max(covering)[2])
    return "".join(cells)


def render_timeline(buffers: Sequence[Buffer], plan: MemoryPlan, width: int = 64) -> str:
    """Return a multi-line picture of `plan`: a legend, then one row per step."""
    if width < 1:
        raise ValueError(f"width is {width}, expected >= 1")
    ordered = sorted(buffers, key=lambda buffer: buffer.id)
    header = (
        f"memory plan by {plan.planner}: arena {plan.arena_size} bytes, {len(ordered)} buffers"
    )
    if not ordered:
        return header

    labels = {buffer.id: _label(index) for index, buffer in enumerate(ordered)}
    name_width = max(len(buffer.name) for buffer in ordered)
    lines = [header]
    for buffer in ordered:
        offset = plan.offsets.get(buffer.id)
        placed = "unplaced" if offset is None else f"bytes {offset}-{offset + buffer.size - 1}"
        lines.append(
            f"  {labels[buffer.id]}  id {buffer.id:<4} {buffer.name:<{name_width}}  "
            f"size {buffer.size:>7}  steps {buffer.first}-{buffer.last}  {placed}"
            + (f"  in place of id {buffer.shares}" if buffer.shares is not None else "")
        )

    arena = max(plan.arena_size, 1)
    first_step = min(buffer.first for buffer in ordered)
    last_step = max(buffer.last for buffer in ordered)
    step_width = max(len("step"), len(str(first_step)), len(str(last_step)))
    lines.append(
        f"  {'step':>{step_width}} |{width} columns of {arena / width:.4g} bytes from offset 0"
    )
    by_id = {buffer.id: buffer for buffer in ordered}
    for step in range(first_step, last_step + 1):
        # At the step where a buffer takes over another's bytes in place, the row shows the
        # buffer being overwritten, which is the larger of the two.
        live = [
            (labels[buffer.id], plan.offsets[buffer.id], plan.offsets[buffer.id] + buffer.size)
            for buffer in ordered
            if buffer.first <= step <= buffer.last
            and buffer.id in plan.offsets
            and not (buffer.shares in by_id and buffer.first == step)
        ]
        live_bytes = sum(end - start for _, start, end in live)
        lines.append(
            f"  {step:>{step_width}} |{_render_row(live, arena, width)}| {live_bytes} bytes live"
        )
    return "\n".join(lines)
