"""How the site and the admin write dates: "6 Mar 2022 17:00 UTC", always with the year.

Django 5 always localizes, so a language's formats win over settings such as
DATETIME_FORMAT; settings.FORMAT_MODULE_PATH points here so that en/formats.py
is read before Django's own English formats, by the `date` filter and by the
admin alike. Python code writes a moment with `datetime_text`.

The API writes moments with `iso_z` and floats with `api_float`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils import dateformat, timezone

from makeusrich.formats.en.formats import DATETIME_FORMAT


def iso_z(value: datetime | None) -> str | None:
    """A moment as the JSON of the API and the commands writes it: "2022-03-06T17:00:00Z" (None stays None)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def datetime_text(value: datetime) -> str:
    """An aware datetime as every page writes it, in the site's time zone (UTC): "6 Mar 2022 17:00 UTC".

    Reads the format itself rather than through the active language, so that it
    says the same in a Celery task or a command, where no language may be active.
    """
    return dateformat.format(timezone.localtime(value), DATETIME_FORMAT)


def decimal_text(value: Decimal | None) -> str:
    """A stored decimal without the column's padding: 37814.4700000000 as "37814.47", 100.0000 as "100"."""
    if value is None:
        return "–"
    return f"{value.normalize():f}"  # "f": normalize() alone writes 100 as 1E+2


# Floats in the API's JSON keep 12 significant digits. Arithmetic leaves noise in the last of
# a float's ~16 (an MAE of 86.05999999999767 for 86.06); prices and the model's float32 outputs
# have fewer than 12 to lose. Significant digits, not decimal places: a coin at 0.00001234
# keeps all of them.
API_FLOAT_DIGITS = 12


def api_float(value: float, *, scale: float | None = None) -> float:
    """`value` to API_FLOAT_DIGITS significant digits: 86.05999999999767 -> 86.06.

    `scale`: a difference of two prices is only as precise as the prices (its last
    digits are theirs, cancelled), so round it at the digit where `scale`'s stop:
    38908.27 - 38908.26 = 0.00999999999476131 -> 0.01 with scale=38908.26.
    Non-finite values stay as they are.
    """
    if not math.isfinite(value):
        return value
    if scale and math.isfinite(scale) and abs(scale) > abs(value):
        exponent = math.floor(math.log10(abs(scale)))
        return round(value, API_FLOAT_DIGITS - 1 - exponent)
    return float(f"{value:.{API_FLOAT_DIGITS}g}")


# What cannot hold a float: kept without a call (a page of candles is mostly strings).
_LEAVES = frozenset({str, int, bool, type(None)})


def api_floats(data: Any) -> Any:
    """`data` with every float rounded by `api_float`; dicts, lists and tuples are rebuilt, in order."""
    if isinstance(data, float):
        return api_float(data)
    if isinstance(data, dict):
        return {key: value if type(value) in _LEAVES else api_floats(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [value if type(value) in _LEAVES else api_floats(value) for value in data]
    return data
