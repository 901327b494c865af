"""One way to build a candle row in tests: the prices given, the rest plausible filler."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from markets.models import Asset, Candle

HOUR = dt.timedelta(hours=1)


def candle_row(
    asset: Asset, open_time: dt.datetime, *, open: Decimal, high: Decimal, low: Decimal, close: Decimal
) -> Candle:
    """An unsaved closed hourly candle (bulk_create a list of them)."""
    return Candle(
        asset=asset,
        open_time=open_time,
        close_time=open_time + HOUR - dt.timedelta(milliseconds=1),
        open=open,
        high=high,
        low=low,
        close=close,
        volume=Decimal("12.5"),
        quote_volume=Decimal("1250"),
        trades=42,
        taker_buy_base_volume=Decimal("6"),
        taker_buy_quote_volume=Decimal("600"),
    )
