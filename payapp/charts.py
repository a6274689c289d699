"""Bar charts as inline SVG geometry (no chart library, no script): the template draws the
rectangles this computes, with a <title> per bar and a table beside it for screen readers."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 160
GAP = 1


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


def bars(points: list[tuple[str, int]], width: int = WIDTH, height: int = HEIGHT) -> list[Bar]:
    """One bar per (label, value), scaled so the largest value fills ``height``."""
    if not points:
        return []
    top = max(value for _, value in points) or 1
    slot = width / len(points)
    return [
        Bar(
            x=round(i * slot, 2),
            y=round(height - value * height / top, 2),
            width=round(max(slot - GAP, 1), 2),
            height=round(value * height / top, 2),
            value=value,
            label=label,
        )
        for i, (label, value) in enumerate(points)
    ]
