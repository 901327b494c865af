"""Number formats of the pages: prices with sensible decimals, signed changes, percentages."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from makeusrich.formats import datetime_text

register = template.Library()

Number = Decimal | float | int | None


def price_decimals(value: float) -> int:
    """Decimals a price of this size is shown with, on the cards and in the charts' hover.

    Enough to see hourly moves: 2 for BTC-sized prices, more for cents-sized coins, and
    four significant digits below a cent (0.00001234).
    """
    size = abs(value)
    if size >= 100:
        return 2
    if size >= 1:
        return 4
    if size >= 0.01 or size == 0:
        return 6
    return min(3 - math.floor(math.log10(size)), 12)


@register.filter
def price(value: Number) -> str:
    """43210.5 -> "43,210.50"; 0.061234 -> "0.061234"; None -> "–"."""
    if value is None or value == "":
        return "–"
    number = float(value)
    return f"{number:,.{price_decimals(number)}f}"


@register.filter
def amount(value: Number) -> str:
    """An error or spread in quote currency: 96.08 -> "96.08"; 0.000512 -> "0.000512";
    a coin's at 0.00001234, 1.2e-07 -> "0.00000012" (never the exponent form)."""
    if value is None or value == "":
        return "–"
    number = float(value)
    if abs(number) >= 1 or number == 0:
        return f"{number:,.2f}"
    # Three significant digits, written out: "%g" switches to "1.2e-07" below 1e-4, which is
    # where every error of a coin priced in hundred-thousandths (SHIB, PEPE) falls.
    return f"{Decimal(f'{number:.3g}'):f}"


# Below this a percentage change is float noise, not a move: a tick is at least ~1e-5 % of
# any price Binance lists.
NOISE_PCT = 1e-6


@register.filter
def signed_pct(value: Number, digits: int = 2) -> str:
    """A percentage change with its sign: "+1.25 %", "−0.40 %"; one significant digit when
    `digits` would round a real change to nothing: a stablecoin's "+0.003 %", not "+0.00 %"."""
    if value is None or value == "":
        return "–"
    number = float(value)
    text = f"{abs(number):.{int(digits)}f}"
    if abs(number) >= NOISE_PCT and not float(text):
        text = f"{Decimal(f'{abs(number):.1g}'):f}"
    return ("+" if number >= 0 else "−") + f"{text} %"


@register.filter
def pct(value: Number, digits: int = 0) -> str:
    """A share in [0, 1] as a percentage: 0.8 -> "80 %"."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def direction(value: Number) -> str:
    """CSS class of a change: "up", "down" or ""."""
    if value is None or value == "":
        return ""
    number = float(value)
    return "up" if number > 0 else "down" if number < 0 else ""


@register.filter
def duration(seconds: Number) -> str:
    """Training time in words: 41.2 -> "41 s", 754 -> "12 min 34 s"."""
    if seconds is None or seconds == "":
        return "–"
    total = round(float(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def at(values: list | None, index: int) -> float | None:
    """values[index] for metric arrays (index -1 = the horizon's end), None when missing."""
    if not values:
        return None
    try:
        return values[int(index)]
    except (IndexError, TypeError, ValueError):
        return None


@register.filter
def stats_skill_text(stats: object) -> str:
    """A track-record figure's skill (ErrorStats) in words, as on the dashboard; its errors
    say why a null skill is null."""
    from forecasting.overview import skill_words

    return skill_words(
        getattr(stats, "skill_rmse", None),
        rmse=getattr(stats, "rmse", None),
        persistence_rmse=getattr(stats, "persistence_rmse", None),
    )


@register.filter
def skill_short_at(metrics: dict | None, index: int) -> str:
    """skill_short of the `train --json` metrics at step `index` (-1 = the horizon's end)."""
    from forecasting.overview import no_change_was_exact, skill_at

    skill = skill_at(metrics or {}, int(index))
    if no_change_was_exact(skill.value, skill.rmse, skill.persistence_rmse):
        return "worse (no change was exact)"
    return skill_short(skill.value)


@register.filter
def skill_short(value: Number) -> str:
    """Skill for a table cell: "12 % better", "3 % worse", "same"."""
    if value is None or value == "":
        return "–"
    percent = round(float(value) * 100)
    if percent > 0:
        return f"{percent} % better"
    if percent < 0:
        return f"{-percent} % worse"
    return "same"


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago `value` was: "just now" under a minute (not "0 minutes ago"), else "5 minutes ago"."""
    if value is None:
        return ""
    now = now or timezone.now()
    if now - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value, now)} ago"


@register.filter
def when(value: datetime | None) -> str:
    """A moment as every page writes it, year and time zone included: "6 Mar 2022 17:00 UTC"."""
    return "" if value is None else datetime_text(value)
