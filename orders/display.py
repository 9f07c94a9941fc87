"""One format everywhere the node shows money and time (admin, console, operator pages).

Sats with thousands separators and the unit, fiat with its currency code, the fee as a
percentage, times as `YYYY-MM-DD HH:MM UTC` (the node's TIME_ZONE), durations in words.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

TIME_FORMAT = "%Y-%m-%d %H:%M"


def sats(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{int(value):,} sats"


def fiat(amount, code: str = "") -> str:
    if amount is None or amount == "":
        return "—"
    number = Decimal(str(amount))
    text = f"{number:,.2f}" if number != number.to_integral_value() else f"{int(number):,}"
    return f"{text} {code}".strip()


def percent(fraction) -> str:
    """0.006 → "0.6 %"."""
    if fraction is None or fraction == "":
        return "—"
    return f"{float(fraction) * 100:g} %"


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{local.strftime(TIME_FORMAT)} {local.tzname() or ''}".strip()


def duration(value: timedelta | None) -> str:
    """3 d 4 h · 2 h 5 min · 45 s."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    sign, seconds = ("−", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    elif minutes:
        text = f"{minutes} min"
    else:
        text = f"{secs} s"
    return sign + text


def short(value, length: int = 8) -> str:
    text = str(value or "")
    return text if len(text) <= length + 1 else f"{text[:length]}…"


def copyable(value, length: int = 8) -> SafeString:
    """A shortened id with a copy-to-clipboard button (static/mostro/console.js); the full value
    is in the title and the data attribute."""
    if not value:
        return format_html("{}", "—")
    full = str(value)
    return format_html(
        '<span class="copy-id" title="{}"><code>{}</code>'
        '<button type="button" class="copy-btn" data-copy="{}" aria-label="Copy {}">copy</button></span>',
        full,
        short(full, length),
        full,
        full,
    )
