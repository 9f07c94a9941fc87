"""Inline SVG bar charts drawn on the server: no JavaScript, no CDN, readable without CSS.

Every bar carries a <title> with its exact value, so hovering shows the number.
"""

from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

BAR_COLOR = "#417690"  # the admin's header blue
LABEL_WIDTH = 190
ROW_HEIGHT = 22


def _scale(value: int, top: int, length: float) -> float:
    return 0.0 if top <= 0 else round(length * value / top, 1)


def hbar_chart(rows: Sequence[tuple[str, int]], *, width: int = 560, unit: str = "") -> SafeString:
    """Horizontal bars, one per (label, value)."""
    if not rows:
        return format_html('<p class="help">{}</p>', "No data yet.")
    top = max(value for _, value in rows)
    bar_space = width - LABEL_WIDTH - 70
    height = ROW_HEIGHT * len(rows) + 4
    parts = [f'<svg class="op-chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, (label, value) in enumerate(rows):
        y = i * ROW_HEIGHT + 2
        bar = _scale(value, top, bar_space)
        text = escape(f"{label}: {value:,}{unit}")
        parts.append(
            f"<g><title>{text}</title>"
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{bar}" height="{ROW_HEIGHT - 6}" fill="{BAR_COLOR}"/>'
            f'<text x="{LABEL_WIDTH + bar + 4}" y="{y + 15}" font-size="12">{value:,}{escape(unit)}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string above is escaped


def vbar_chart(rows: Sequence[tuple[str, int]], *, height: int = 160, unit: str = "") -> SafeString:
    """Vertical bars (e.g. one per day); labels under the first, middle and last bars."""
    if not rows:
        return format_html('<p class="help">{}</p>', "No data yet.")
    top = max(value for _, value in rows)
    step = 18
    width = step * len(rows) + 10
    plot = height - 22
    parts = [f'<svg class="op-chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    marks = {0: "start", len(rows) // 2: "middle", len(rows) - 1: "end"}
    for i, (label, value) in enumerate(rows):
        bar = _scale(value, top, plot - 4)
        x = 5 + i * step
        parts.append(
            f"<g><title>{escape(f'{label}: {value:,}{unit}')}</title>"
            f'<rect x="{x}" y="{plot - bar}" width="{step - 4}" height="{bar}" fill="{BAR_COLOR}"/></g>'
        )
        if i in marks:
            anchor = marks[i]
            tx = {"start": x, "middle": x + step // 2, "end": x + step - 4}[anchor]
            parts.append(
                f'<text x="{tx}" y="{height - 6}" font-size="10" text-anchor="{anchor}">{escape(label)}</text>'
            )
    parts.append(f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" stroke="#999"/></svg>')
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string above is escaped
