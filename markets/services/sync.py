"""Sync from a source: the new closed candles, then the holes in the stored history."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from makeusrich.celery import task_send
from markets.klines import INTERVAL, KlineRow
from markets.models import HOLES_ERROR_PREFIX, Asset, ConfirmedOutage
from markets.selectors import HourRange, asset_unconfirmed_gaps, candle_last_open_time
from markets.services.candles import UpsertResult, candles_upsert
from markets.sources import MAX_RANGE_HOURS, Fetched, KlineSource, SourceError, source_for

logger = logging.getLogger(__name__)

REFRESH_TASK = "forecasting.tasks.refresh_forecasts"  # by name: forecasting depends on markets


@dataclass(frozen=True, slots=True)
class SyncResult:
    symbol: str
    source: str
    inserted: int = 0
    already_present: int = 0
    note: str = ""
    error: str = ""
    last_open_time: datetime | None = None
    gaps: GapFillResult | None = None  # holes in the stored history, when the append succeeded

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True, slots=True)
class GapFillResult:
    """What one sync did about the hours missing between an asset's stored candles."""

    filled: int = 0  # candles the source had for them, now stored
    confirmed_empty: int = 0  # hours the source answered for with no candle (outages), now remembered
    still_missing: int = 0  # hours not asked about yet (the per-sync bound) or whose request failed
    requests: int = 0
    error: str = ""  # the request that failed; its hours are asked for again by the next sync
    outages: int = 0  # the runs of hours that make up confirmed_empty
    # Missing hours outside the source's data (KlineSource.coverage): not asked about, never
    # confirmed; `beyond_note` says where the source's data is.
    beyond_source: int = 0
    beyond_note: str = ""

    @property
    def anything(self) -> bool:
        return bool(
            self.filled or self.confirmed_empty or self.still_missing or self.error or self.beyond_source
        )

    def __str__(self) -> str:
        text = (
            f"holes: {self.filled} hour(s) filled, {self.confirmed_empty} confirmed empty"
            f"{f' ({self.outages} outage(s))' if self.confirmed_empty else ''}, {self.still_missing} still missing"
        )
        if self.error:
            text = f"{text} (failed, retried next sync: {self.error})"
        elif self.still_missing:
            text = f"{text} (left for the next syncs)"
        if self.beyond_source:
            text = f"{text}; {self.beyond_source} missing hour(s) {self.beyond_note}"
        return text


def _refresh_forecasts(
    symbol: str,
    filled_first: datetime | None = None,
    filled_last: datetime | None = None,
    *,
    inline: bool = False,
) -> None:
    """After the candles are committed: queue (or, inline, run) the asset's forecast refresh.

    The candles are stored whatever happens here, so a failure (the broker unreachable) is a
    warning, not the sync's failure: the next hourly refresh makes the forecast.
    """
    kwargs = {}
    if filled_first is not None and filled_last is not None:
        # Candles filled in a hole: forecasts scored while it was a hole are scored again.
        kwargs = {"rescore_from": filled_first.isoformat(), "rescore_to": filled_last.isoformat()}
    try:
        if inline:  # the task's body, in this process
            # Imported here: forecasting depends on markets, not the other way round.
            from forecasting.tasks import refresh_forecasts

            refresh_forecasts(symbol, **kwargs)
        else:  # by name, not reading its result: no wait on a result backend that is down
            task_send(REFRESH_TASK, symbol, **kwargs)
    except Exception as exc:
        logger.warning(
            "%s: the new candles are stored, but the forecast refresh could not be %s (%s: %s); "
            "the next scheduled run makes the forecast",
            symbol,
            "made" if inline else "queued",
            type(exc).__name__,
            exc,
            exc_info=True,
        )


def asset_sync(
    *,
    asset: Asset,
    source: KlineSource | None = None,
    now: datetime | None = None,
    refresh_inline: bool = False,
) -> SyncResult:
    """Fetch the asset's new closed candles from the source and store them.

    Everything is fetched before anything is written, then stored in one
    transaction: a failure stores nothing and is recorded in
    asset.last_sync_error; a success clears it and sets last_synced_at. The
    exception is a bad kline from the source: the good candles before it are
    stored and the error is recorded. Any failure, expected or not, is recorded
    and returned, never raised, so one asset cannot stop the others' syncs.
    When candles were added, forecasts are refreshed after the commit: by a
    refresh_forecasts task, or with `refresh_inline` in this process before
    returning (bootstrap, whose forecast must be there before the worker starts).
    """
    now = now or timezone.now()
    source_name = getattr(source, "name", "")
    bad_data: SourceError | None = None
    try:
        source = source or source_for()
        source_name = source.name
        try:
            fetched = source.fetch(symbol=asset.symbol, after=candle_last_open_time(asset=asset), now=now)
        except SourceError as error:
            if not error.rows:
                raise
            bad_data, fetched = error, Fetched(error.rows)
        result = _candles_store(
            asset=asset, rows=fetched.rows, now=now, succeeded=bad_data is None, refresh_inline=refresh_inline
        )
    except SourceError as error:
        return _sync_failed(asset, source_name, str(error))
    except DatabaseError as error:
        logger.exception("storing candles for %s failed", asset.symbol)
        return _sync_failed(asset, source_name, f"database error while storing candles: {error}")
    except SoftTimeLimitExceeded:
        return _sync_failed(
            asset, source_name, "stopped at the sync task's time limit (a slow exchange?); nothing stored"
        )
    except Exception as error:
        logger.exception("sync of %s from %s failed unexpectedly", asset.symbol, source_name or "?")
        return _sync_failed(asset, source_name, f"unexpected error: {type(error).__name__}: {error}")
    if bad_data is not None:
        return _sync_failed(
            asset,
            source_name,
            f"{bad_data}; the {result.inserted} new candle(s) before it were stored",
            inserted=result.inserted,
        )
    note = fetched.note or "no new candles"
    logger.info("synced %s from %s: %d new candle(s); %s", asset.symbol, source_name, result.inserted, note)
    last_open_time = candle_last_open_time(asset=asset)
    # Only after a successful append (new candles come first), with the same source.
    gaps = _gaps_fill_recording_failures(asset=asset, source=source, now=now, refresh_inline=refresh_inline)
    return SyncResult(
        symbol=asset.symbol,
        source=source_name,
        inserted=result.inserted,
        already_present=result.already_present,
        note=note,
        last_open_time=last_open_time,
        gaps=gaps,
    )


def _candles_store(
    *, asset: Asset, rows: list[KlineRow], now: datetime, succeeded: bool, refresh_inline: bool
) -> UpsertResult:
    with transaction.atomic():  # candles_upsert locks the asset: concurrent syncs run one after the other
        result = candles_upsert(asset=asset, rows=rows, now=now)
        if succeeded:
            synced_at = timezone.now()
            Asset.objects.filter(pk=asset.pk).update(last_synced_at=synced_at, last_sync_error="")
        if result.inserted:
            transaction.on_commit(partial(_refresh_forecasts, asset.symbol, inline=refresh_inline))
    if succeeded:
        asset.last_synced_at, asset.last_sync_error = synced_at, ""
    return result


def asset_gaps_fill(
    *,
    asset: Asset,
    source: KlineSource,
    now: datetime | None = None,
    max_requests: int | None = None,
    refresh_inline: bool = False,
) -> GapFillResult:
    """Ask `source` for the hours missing between the asset's stored candles, newest first.

    What it has is stored (validated as any sync's candles); the hours it
    answered for without a candle are recorded as a ConfirmedOutage, so later
    syncs do not ask again. At most `max_requests` requests
    (settings.SYNC_GAP_REQUESTS) of at most MAX_RANGE_HOURS hours, each
    committed on its own; the rest is left for the next syncs. A request that
    fails (after the source's retries) stops the filling, confirms nothing
    and is asked again next time; SourceError is reported, not raised.
    Hours outside the source's data (KlineSource.coverage: the replay's bundled
    year) are neither asked about nor confirmed, only counted (beyond_source).
    Forecasts are refreshed after each request that stored candles, as in `asset_sync`.
    """
    now = now or timezone.now()
    max_requests = settings.SYNC_GAP_REQUESTS if max_requests is None else max_requests
    holes = asset_unconfirmed_gaps(asset=asset, source=source.name)
    if not holes:
        return GapFillResult()
    try:
        coverage = source.coverage(symbol=asset.symbol)
    except SourceError as fault:
        return GapFillResult(still_missing=sum(_hours(hole) for hole in holes), error=str(fault))
    beyond, beyond_note = 0, ""
    if coverage is not None:
        # An hour outside the source's data is not an outage: it is neither asked about nor confirmed.
        inside = _hour_ranges_within(holes, coverage)
        beyond = sum(_hours(hole) for hole in holes) - sum(_hours(hole) for hole in inside)
        holes = inside
        if beyond:
            beyond_note = (
                f"outside the {source.name} data ({coverage[0]:%Y-%m-%d %H:%M} to "
                f"{coverage[1]:%Y-%m-%d %H:%M} UTC): {source.name} has nothing there, they stay missing"
            )
    still_missing = sum(_hours(hole) for hole in holes)
    filled = confirmed = requests = outages = 0
    error = ""
    for batch in _gap_requests(holes)[:max_requests]:
        requests += 1
        first, last = batch[0][0], batch[-1][1]
        try:
            rows, failure = (
                source.fetch_range(symbol=asset.symbol, first=first, last=last, now=now).rows,
                None,
            )
        except SourceError as fault:  # after the retries, or a bad kline: the candles before it are kept
            rows, failure = fault.rows, fault
        found = {row.open_time for row in rows}
        empty = [] if failure else _hour_ranges_without(batch, found)
        inserted = _gap_store(
            asset=asset,
            source_name=source.name,
            rows=rows,
            empty=empty,
            now=now,
            refresh_inline=refresh_inline,
        )
        filled += inserted
        confirmed += sum(_hours(hole) for hole in empty)
        outages += len(empty)
        # Hours answered: a candle came for them, or they are now a confirmed outage.
        still_missing -= sum(1 for when in found if any(a <= when <= b for a, b in batch))
        still_missing -= sum(_hours(hole) for hole in empty)
        if failure is not None:
            error = str(failure)
            break
    result = GapFillResult(filled, confirmed, still_missing, requests, error, outages, beyond, beyond_note)
    if result.anything:
        logger.log(logging.WARNING if error else logging.INFO, "%s: %s", asset.symbol, result)
    return result


def _hours(hole: HourRange) -> int:
    return (hole[1] - hole[0]) // INTERVAL + 1


def _hour_ranges_within(ranges: list[HourRange], within: HourRange) -> list[HourRange]:
    """The hours of `ranges` (sorted, inclusive ends) that lie within `within`."""
    first, last = within
    return [(max(a, first), min(b, last)) for a, b in ranges if a <= last and b >= first]


def _gap_requests(holes: list[HourRange]) -> list[list[HourRange]]:
    """The holes grouped into requests of at most MAX_RANGE_HOURS hours, newest first.

    Newest first: the latest hours are the ones a forecast's window needs. Near
    holes share a request (the stored hours between them come back too and are
    left as they are); a longer hole is cut into several.
    """
    pieces: list[HourRange] = []
    for first, last in reversed(holes):
        while _hours((first, last)) > MAX_RANGE_HOURS:
            start = last - (MAX_RANGE_HOURS - 1) * INTERVAL
            pieces.append((start, last))
            last = start - INTERVAL
        pieces.append((first, last))
    batches: list[list[HourRange]] = []
    for piece in pieces:
        if batches and _hours((piece[0], batches[-1][-1][1])) <= MAX_RANGE_HOURS:
            batches[-1].insert(0, piece)
        else:
            batches.append([piece])
    return batches


def _hour_ranges_without(holes: list[HourRange], found: set[datetime]) -> list[HourRange]:
    """The runs of hours of `holes` that are not in `found`."""
    runs: list[HourRange] = []
    for first, last in holes:
        start, when = None, first
        while when <= last:
            if when in found:
                if start is not None:
                    runs.append((start, when - INTERVAL))
                    start = None
            elif start is None:
                start = when
            when += INTERVAL
        if start is not None:
            runs.append((start, last))
    return runs


def _gap_store(
    *,
    asset: Asset,
    source_name: str,
    rows: list[KlineRow],
    empty: list[HourRange],
    now: datetime,
    refresh_inline: bool,
) -> int:
    with transaction.atomic():
        inserted = candles_upsert(asset=asset, rows=rows, now=now).inserted if rows else 0
        ConfirmedOutage.objects.bulk_create(
            [ConfirmedOutage(asset=asset, source=source_name, first_hour=a, last_hour=b) for a, b in empty],
            ignore_conflicts=True,  # a concurrent sync confirmed it first
        )
        if inserted:
            filled = sorted(row.open_time for row in rows)
            transaction.on_commit(
                partial(_refresh_forecasts, asset.symbol, filled[0], filled[-1], inline=refresh_inline)
            )
    return inserted


def _gaps_fill_recording_failures(
    *, asset: Asset, source: KlineSource, now: datetime, refresh_inline: bool
) -> GapFillResult:
    """asset_gaps_fill for asset_sync: any failure is logged, reported and recorded in
    last_sync_error (after HOLES_ERROR_PREFIX), never raised, and leaves the append's result
    (already committed) as it is. The append cleared last_sync_error, so a fill that works
    again leaves it clear."""
    try:
        result = asset_gaps_fill(asset=asset, source=source, now=now, refresh_inline=refresh_inline)
    except DatabaseError as error:
        logger.exception("filling the holes of %s failed", asset.symbol)
        result = GapFillResult(error=f"database error while filling holes: {error}")
    except SoftTimeLimitExceeded:
        result = GapFillResult(error="stopped at the sync task's time limit")
    except Exception as error:
        logger.exception("filling the holes of %s failed unexpectedly", asset.symbol)
        result = GapFillResult(error=f"unexpected error: {type(error).__name__}: {error}")
    if result.error:
        _holes_failed(asset, result.error)
    return result


def _holes_failed(asset: Asset, error: str) -> None:
    # A bad kline in a hole fails every hour until the exchange corrects it: without this,
    # only the log and the task's result would ever say so.
    error = f"{HOLES_ERROR_PREFIX}{error}"[:2000]
    try:
        Asset.objects.filter(pk=asset.pk).update(last_sync_error=error)
    except DatabaseError:
        logger.warning("could not record the failed hole filling of %s", asset.symbol, exc_info=True)
        return
    asset.last_sync_error = error


def _sync_failed(asset: Asset, source_name: str, error: str, *, inserted: int = 0) -> SyncResult:
    logger.warning("sync of %s from %s failed: %s", asset.symbol, source_name or "?", error)
    error = error[:2000]
    Asset.objects.filter(pk=asset.pk).update(last_sync_error=error)
    asset.last_sync_error = error
    return SyncResult(symbol=asset.symbol, source=source_name, inserted=inserted, error=error)


@dataclass(frozen=True, slots=True)
class SyncReport:
    results: list[SyncResult] = field(default_factory=list)

    @property
    def failed(self) -> list[SyncResult]:
        return [r for r in self.results if not r.ok]


def assets_sync(*, assets: Iterable[Asset], source: KlineSource | None = None) -> SyncReport:
    """Sync several assets one after another with one source."""
    if source is None:
        try:
            source = source_for()
        except SourceError as error:
            return SyncReport([_sync_failed(a, "", str(error)) for a in assets])
    return SyncReport([asset_sync(asset=asset, source=source) for asset in assets])
