"""Inline SVG charts drawn on the server: no JavaScript, no CDN, readable without CSS.

Every bar carries a <title> with its exact value (hover shows it); vertical charts have a
value axis with three labelled ticks and gridlines, dates under the bars, and the value
printed above each bar when there is room.
"""

from collections.abc import Sequence

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

BAR_COLOR = "#417690"  # the admin's header blue
LABEL_WIDTH = 190
ROW_HEIGHT = 22
AXIS_WIDTH = 64
VALUE_LABEL_MIN_STEP = 22  # bars narrower than this get no printed value


def _scale(value: float, top: float, length: float) -> float:
    return 0.0 if top <= 0 else round(length * value / top, 1)


def _compact(value: float) -> str:
    """12345 → 12.3k, 2500000 → 2.5M (axis and bar labels; titles keep exact values)."""
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}" if isinstance(value, float) else str(value)


def _nice_top(top: float) -> float:
    """The axis maximum: the data maximum rounded up to 1, 2, 2.5 or 5 × a power of ten."""
    if top <= 0:
        return 1
    magnitude = 10 ** (len(str(int(top))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always ends at 10


def hbar_chart(rows: Sequence[tuple[str, int]], *, width: int = 560, unit: str = "") -> SafeString:
    """Horizontal bars, one per (label, value), each with its value printed."""
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


def vbar_chart(
    rows: Sequence[tuple[str, float]], *, height: int = 190, unit: str = "", axis_label: str = "", step: int = 26
) -> SafeString:
    """Vertical bars (one per day, say) with a value axis, gridlines, dates and values."""
    if not rows:
        return format_html('<p class="help">{}</p>', "No data yet.")
    top = _nice_top(max(value for _, value in rows))
    width = AXIS_WIDTH + step * len(rows) + 10
    plot_top, plot_bottom = 18, height - 30
    plot = plot_bottom - plot_top
    parts = [
        f'<svg class="op-chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(axis_label or 'chart')}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = plot_bottom - plot * fraction
        tick = top * fraction
        dash = 0 if fraction == 0 else 3
        parts.append(
            f'<line x1="{AXIS_WIDTH}" y1="{y}" x2="{width}" y2="{y}" stroke="#ccc" stroke-dasharray="{dash}"/>'
            f'<text x="{AXIS_WIDTH - 6}" y="{y + 4}" font-size="10" text-anchor="end">{escape(_compact(tick))}</text>'
        )
    if axis_label:
        parts.append(f'<text x="4" y="11" font-size="10">{escape(axis_label)}</text>')
    label_every = max(1, len(rows) // 6)
    for i, (label, value) in enumerate(rows):
        bar = _scale(value, top, plot)
        x = AXIS_WIDTH + 5 + i * step
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
        parts.append(
            f"<g><title>{escape(f'{label}: {shown}{unit}')}</title>"
            f'<rect x="{x}" y="{plot_bottom - bar}" width="{step - 6}" height="{bar}" fill="{BAR_COLOR}"/>'
        )
        if value and step >= VALUE_LABEL_MIN_STEP:
            parts.append(
                f'<text x="{x + (step - 6) / 2}" y="{plot_bottom - bar - 3}" font-size="9" text-anchor="middle">'
                f"{escape(_compact(value))}</text>"
            )
        parts.append("</g>")
        if i % label_every == 0 or i == len(rows) - 1:
            center = x + (step - 6) / 2
            parts.append(
                f'<text x="{center}" y="{height - 12}" font-size="10" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated string above is escaped
