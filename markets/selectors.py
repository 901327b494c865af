"""Reads for markets: assets, candles (rows or a pandas frame), gaps."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, FloatField, Max, QuerySet
from django.db.models.functions import Cast

from markets.klines import Gap, find_gaps
from markets.models import CANDLE_FIELDS, Asset, Candle

if TYPE_CHECKING:
    import pandas as pd

# Every numeric field of a candle, in the stored order.
FRAME_FLOAT_COLUMNS = tuple(name for name in CANDLE_FIELDS if name not in ("open_time", "close_time"))
FRAME_COLUMNS = ("open_time", *FRAME_FLOAT_COLUMNS)


def asset_get(*, symbol: str) -> Asset:
    """The asset with this symbol, any case; raises Asset.DoesNotExist."""
    return Asset.objects.get(symbol=symbol.strip().upper())


def asset_list(*, active_only: bool = False) -> QuerySet[Asset]:
    """Assets with `candle_count` and `last_candle_time` annotated (one query)."""
    assets = Asset.objects.annotate(candle_count=Count("candles"), last_candle_time=Max("candles__open_time"))
    return assets.filter(is_active=True) if active_only else assets


def candle_last_open_time(*, asset: Asset) -> datetime | None:
    """Open time of the newest stored candle, None when there is none."""
    return (
        Candle.objects.filter(asset=asset).order_by("-open_time").values_list("open_time", flat=True).first()
    )


def candle_list(
    *, asset: Asset, limit: int = 120, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """The `limit` most recent candles with start <= open_time <= end, oldest first (as dicts)."""
    rows = Candle.objects.filter(asset=asset)
    if start is not None:
        rows = rows.filter(open_time__gte=start)
    if end is not None:
        rows = rows.filter(open_time__lte=end)
    newest_first = list(rows.order_by("-open_time").values(*CANDLE_FIELDS)[:limit])
    newest_first.reverse()
    return newest_first


def candles_count(*, asset: Asset) -> int:
    return Candle.objects.filter(asset=asset).count()


def candles_frame(
    *, asset: Asset, since: datetime | None = None, until: datetime | None = None
) -> pd.DataFrame:
    """The asset's candles as the ML pipeline wants them, sorted by open_time.

    Columns: open_time (datetime64, UTC) and FRAME_FLOAT_COLUMNS as float64.
    The database casts to float, so no Decimal or model instance is built.
    pandas is imported here, not at module level: web processes import this
    module (admin, API) but never build frames, and pandas costs them ~40 MB.
    """
    import pandas as pd

    candles = Candle.objects.filter(asset=asset)
    if since is not None:
        candles = candles.filter(open_time__gte=since)
    if until is not None:
        candles = candles.filter(open_time__lte=until)
    rows = candles.order_by("open_time").values_list(
        "open_time", *(Cast(name, FloatField()) for name in FRAME_FLOAT_COLUMNS)
    )
    frame = pd.DataFrame.from_records(list(rows), columns=list(FRAME_COLUMNS))
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    return frame.astype({name: "float64" for name in FRAME_FLOAT_COLUMNS})


def asset_gaps(*, asset: Asset, since: datetime | None = None) -> list[Gap]:
    """Holes (missing hours) between the asset's stored candles, oldest first."""
    candles = Candle.objects.filter(asset=asset)
    if since is not None:
        candles = candles.filter(open_time__gte=since)
    return find_gaps(
        candles.order_by("open_time").values_list("open_time", flat=True).iterator(chunk_size=5000)
    )
