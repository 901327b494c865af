"""Reads for markets: assets, candles (rows or a pandas frame), gaps."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Count, Exists, F, FloatField, Max, Min, OuterRef, QuerySet, Window
from django.db.models.functions import Cast, Lag

from markets.klines import INTERVAL, Gap, find_gaps
from markets.models import CANDLE_FIELDS, Asset, Candle, ConfirmedOutage

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
    """Candles with start <= open_time <= end, oldest first (as dicts), at most `limit` of them.

    As Binance's klines: with `start`, the first `limit` from `start` on (page
    forward with the next hour as `start`); without it, the `limit` newest up
    to `end` (page back with the hour before the oldest as `end`).
    """
    rows = Candle.objects.filter(asset=asset)
    if end is not None:
        rows = rows.filter(open_time__lte=end)
    if start is not None:
        return list(rows.filter(open_time__gte=start).order_by("open_time").values(*CANDLE_FIELDS)[:limit])
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
    """Holes (missing hours) between the asset's stored candles, oldest first.

    On PostgreSQL the database finds them (LAG over the (asset, open_time)
    index) and returns only the gaps: 40 ms instead of 113 ms for 100,000
    candles. SQLite evaluates the hour arithmetic in Python for every row, which
    is slower than reading the times and comparing them here (bench/bench_gaps.py).
    """
    candles = Candle.objects.filter(asset=asset)
    if since is not None:
        candles = candles.filter(open_time__gte=since)
    if connection.vendor == "postgresql":
        return gaps_by_lag(candles)
    return gaps_by_scan(candles)


def gaps_by_lag(candles: QuerySet[Candle]) -> list[Gap]:
    rows = (
        candles.annotate(previous=Window(Lag("open_time"), order_by=F("open_time").asc()))
        .filter(previous__lt=F("open_time") - INTERVAL)
        .order_by("open_time")
        .values_list("previous", "open_time")
    )
    return [Gap(after=after, before=before) for after, before in rows]


def gaps_by_scan(candles: QuerySet[Candle]) -> list[Gap]:
    times = candles.order_by("open_time").values_list("open_time", flat=True)
    return find_gaps(times.iterator(chunk_size=5000))


HourRange = tuple[datetime, datetime]  # open times of the first and last hour, inclusive


def asset_unconfirmed_gaps(*, asset: Asset, source: str) -> list[HourRange]:
    """Missing hours between the asset's stored candles that `source` has not confirmed empty.

    Oldest first, as (first missing hour, last missing hour). A sync asks the
    source for these; the rest are outages it already asked about. Every sync
    calls this, so the usual answer (none) costs two small queries: the
    candles' count and span, and the confirmed outages; only when they do not
    add up are the gaps themselves looked for (asset_gaps).
    """
    summary = Candle.objects.filter(asset=asset).aggregate(
        count=Count("pk"), first=Min("open_time"), last=Max("open_time")
    )
    if not summary["count"]:
        return []
    outages = list(
        ConfirmedOutage.objects.filter(asset=asset, source=source)
        .annotate(
            # A candle stored inside a confirmed outage later (an import) spoils the sum below.
            holds_candles=Exists(
                Candle.objects.filter(
                    asset=asset, open_time__gte=OuterRef("first_hour"), open_time__lte=OuterRef("last_hour")
                )
            )
        )
        .order_by("first_hour")
        .values_list("first_hour", "last_hour", "holds_candles")
    )
    confirmed = [(first, last) for first, last, _ in outages]
    span = (summary["last"] - summary["first"]) // INTERVAL + 1
    if not any(holds for *_, holds in outages) and _disjoint(confirmed):
        covered = sum(
            (min(last, summary["last"]) - max(first, summary["first"])) // INTERVAL + 1
            for first, last in confirmed
            if first <= summary["last"] and last >= summary["first"]
        )
        if summary["count"] + covered == span:
            return []
    gaps = [(gap.first_missing, gap.last_missing) for gap in asset_gaps(asset=asset)]
    return hour_ranges_subtract(gaps, confirmed)


def _disjoint(ranges: list[HourRange]) -> bool:
    return all(earlier[1] < later[0] for earlier, later in zip(ranges, ranges[1:], strict=False))


def hour_ranges_subtract(ranges: list[HourRange], removed: list[HourRange]) -> list[HourRange]:
    """The hours of `ranges` outside every range of `removed`; both sorted by start, inclusive ends."""
    result: list[HourRange] = []
    index = 0
    for first, last in ranges:
        # Removed ranges that end before this one starts cannot touch the later ones either.
        while index < len(removed) and removed[index][1] < first:
            index += 1
        start = first
        probe = index
        while start <= last and probe < len(removed) and removed[probe][0] <= last:
            cut_first, cut_last = removed[probe]
            if cut_first > start:
                result.append((start, cut_first - INTERVAL))
            start = max(start, cut_last + INTERVAL)
            probe += 1
        if start <= last:
            result.append((start, last))
    return result
