"""A line chart as inline SVG: no script, no build step, readable by a screen reader."""

from __future__ import annotations

import html
from collections.abc import Sequence

WIDTH, HEIGHT, PAD = 480, 200, 28


def line_chart(values: Sequence[float | None], label: str) -> str:
    """Distance by round; missing rounds are skipped. Empty when nothing is measured yet."""
    label = html.escape(label)
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return ""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    steps = max(len(values) - 1, 1)

    def x(i: int) -> float:
        return PAD + i * (WIDTH - 2 * PAD) / steps

    def y(v: float) -> float:
        return HEIGHT - PAD - (v - low) * (HEIGHT - 2 * PAD) / span

    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3"><title>round {i}: {v:.4f}</title></circle>'
        for i, v in points
    )
    return (
        f'<svg role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart">'
        f"<title>{label}</title>"
        f'<text x="{PAD}" y="14">{high:.3f}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 6}">{low:.3f}</text>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{path}"/>'
        f"{dots}</svg>"
    )
