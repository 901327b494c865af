"""Writes for markets: assets, candle upserts, CSV import, sync from a source."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from markets.csvfile import PathOrFile, file_name_check, read_klines_csv
from markets.klines import INTERVAL, Gap, KlineError, KlineRow, find_gaps, kline_is_closed, symbol_split
from markets.models import CANDLE_FIELDS, Asset, Candle, ConfirmedOutage
from markets.selectors import HourRange, asset_unconfirmed_gaps, candle_last_open_time
from markets.sources import MAX_RANGE_HOURS, Fetched, KlineSource, SourceError, source_for

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (rows stored so far, rows to store)
BATCH_SIZE = 500


class AssetError(ValueError):
    """An asset that cannot be created as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class UpsertResult:
    inserted: int
    already_present: int
    still_open: int  # candles not yet closed at `now`, left for a later sync
    # Already present candles with other values than the rows given: kept as stored, unless replaced.
    differing: int = 0
    first_difference: str = ""
    replaced: tuple[datetime, ...] = ()  # open times of the differing candles overwritten (replace=True)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    symbol: str
    asset_created: bool
    rows_read: int
    inserted: int
    already_present: int
    differing: int  # of those already present, candles whose values differ from the file
    first_difference: str
    replaced: int  # of those differing, candles overwritten with the file's values (replace=True)
    rescored: int  # stored forecasts scored again because a candle they were scored against changed
    first_open_time: datetime
    last_open_time: datetime
    gaps: list[Gap]  # holes between the file's own rows
    seconds: float


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

    @property
    def anything(self) -> bool:
        return bool(self.filled or self.confirmed_empty or self.still_missing or self.error)

    def __str__(self) -> str:
        text = (
            f"holes: {self.filled} hour(s) filled, {self.confirmed_empty} confirmed empty, "
            f"{self.still_missing} still missing"
        )
        if self.error:
            return f"{text} (failed, retried next sync: {self.error})"
        return f"{text} (left for the next syncs)" if self.still_missing else text


def asset_get_or_create(*, symbol: str) -> tuple[Asset, bool]:
    """The asset for `symbol` (any case), created with base/quote split from it."""
    symbol = symbol.strip().upper()
    existing = Asset.objects.filter(symbol=symbol).first()
    if existing is not None:
        return existing, False
    try:
        base, quote = symbol_split(symbol)
        asset = Asset(symbol=symbol, base=base, quote=quote)
        # Uniqueness is left to the database: a check here could pass for two imports at once.
        asset.full_clean(validate_unique=False)
    except (KlineError, ValidationError) as error:
        raise AssetError(f"cannot create asset {symbol!r}: {error}") from error
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives the conflict
            asset.save(force_insert=True)
    except IntegrityError:
        # A concurrent import created it first (PostgreSQL waits for that one to commit).
        return Asset.objects.get(symbol=symbol), False
    return asset, True


def assets_set_active(*, assets: QuerySet[Asset], active: bool) -> int:
    """Activate or deactivate assets; returns how many changed."""
    return assets.exclude(is_active=active).update(is_active=active, updated_at=timezone.now())


def candles_upsert(
    *,
    asset: Asset,
    rows: Iterable[KlineRow],
    now: datetime | None = None,
    progress: Progress | None = None,
    replace: bool = False,
) -> UpsertResult:
    """Store the closed candles among `rows` that the asset does not have yet.

    Idempotent: a candle already stored for (asset, open_time) is left as it
    is, so importing or syncing the same rows again adds nothing; stored
    candles whose values differ from the rows are counted, with the first one
    described, so that the caller can say so. With `replace`, those are
    overwritten with the rows' values instead (identical ones are not
    written). Candles still open at `now` are skipped. All rows go in one
    transaction, which first locks the asset's row: concurrent upserts of one
    asset (two imports, an import and a sync) run one after the other on
    PostgreSQL, so each counts what the other stored and the counts are exact.
    (SQLite lets one writer in at a time anyway.)
    """
    now = now or timezone.now()
    closed: dict[datetime, KlineRow] = {}
    still_open = 0
    for row in rows:
        if not kline_is_closed(row, now):
            still_open += 1
        else:
            closed.setdefault(row.open_time, row)
    if not closed:
        return UpsertResult(0, 0, still_open)
    times = sorted(closed)
    with transaction.atomic():
        # Without the lock, two imports of one file both find nothing stored, both count
        # every row as inserted, and ignore_conflicts hides that one of them inserted none.
        Asset.objects.select_for_update().filter(pk=asset.pk).exists()
        existing = {
            stored[1]: stored
            for stored in Candle.objects.filter(
                asset=asset, open_time__gte=times[0], open_time__lte=times[-1]
            ).values_list("pk", *CANDLE_FIELDS)
        }
        differences = {t: _candle_difference(closed[t], existing[t][2:]) for t in times if t in existing}
        differences = {t: text for t, text in differences.items() if text}
        new = [_candle(asset, closed[t]) for t in times if t not in existing]
        changed = [_candle(asset, closed[t], pk=existing[t][0]) for t in differences] if replace else []
        to_write = len(new) + len(changed)
        for start in range(0, len(new), BATCH_SIZE):
            # ignore_conflicts: a concurrent writer that got there first is not an error.
            Candle.objects.bulk_create(new[start : start + BATCH_SIZE], ignore_conflicts=True)
            if progress is not None:
                progress(min(start + BATCH_SIZE, len(new)), to_write)
        for start in range(0, len(changed), BATCH_SIZE):
            Candle.objects.bulk_update(changed[start : start + BATCH_SIZE], COMPARED_FIELDS)
            if progress is not None:
                progress(len(new) + min(start + BATCH_SIZE, len(changed)), to_write)
    return UpsertResult(
        inserted=len(new),
        already_present=len(times) - len(new),
        still_open=still_open,
        differing=len(differences),
        first_difference=next(iter(differences.values()), ""),
        replaced=tuple(differences) if replace else (),
    )


# Every field but the key, open_time: what a re-import may find different, and replace.
COMPARED_FIELDS = CANDLE_FIELDS[1:]


def _candle(asset: Asset, row: KlineRow, pk: int | None = None) -> Candle:
    return Candle(pk=pk, asset=asset, **{name: getattr(row, name) for name in CANDLE_FIELDS})


def _candle_difference(row: KlineRow, stored: tuple[object, ...]) -> str:
    """How `row` differs from a stored candle's values (COMPARED_FIELDS), or "" when they agree."""
    changed = [
        f"{name} {getattr(row, name)} in the file, {kept} stored"
        for name, kept in zip(COMPARED_FIELDS, stored, strict=True)
        if not _same_value(getattr(row, name), kept)
    ]
    return f"{row.open_time:%Y-%m-%d %H:%M} UTC: {', '.join(changed)}" if changed else ""


def _same_value(given: object, stored: object) -> bool:
    """Compared as the database keeps them: SQLite holds 15 significant digits, so
    a relative difference below 1e-12 is the same decimal (a long quote volume
    would otherwise differ from itself after every round trip)."""
    if isinstance(given, Decimal) and isinstance(stored, Decimal):
        return math.isclose(float(given), float(stored), rel_tol=1e-12)
    return given == stored


def candles_import_csv(
    *,
    symbol: str,
    path_or_file: PathOrFile,
    progress: Progress | None = None,
    now: datetime | None = None,
    replace: bool = False,
) -> ImportSummary:
    """Import a Binance-kline CSV (plain or gzip) for `symbol`, all or nothing.

    A file named like a Binance dump of another symbol or interval is refused
    (markets.csvfile.file_name_check). Every row is checked first
    (markets.csvfile.CandleFileError names the lines and problems); then the
    asset (created if missing) and the new candles are written in one
    transaction. Re-importing adds nothing.

    With `replace`, stored candles whose values differ from the file are
    overwritten in that transaction, and the stored forecasts that had been
    scored against them are scored again (forecasting.services.forecasts_rescore),
    so that the track record measures them against the corrected prices.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    file_name_check(path_or_file, symbol=symbol)
    rows = read_klines_csv(path_or_file, now=now)
    with transaction.atomic():
        asset, created = asset_get_or_create(symbol=symbol)
        result = candles_upsert(asset=asset, rows=rows, now=now, progress=progress, replace=replace)
        rescored = _forecasts_rescore(asset, result.replaced) if result.replaced else 0
    return ImportSummary(
        symbol=asset.symbol,
        asset_created=created,
        rows_read=len(rows),
        inserted=result.inserted,
        already_present=result.already_present,
        differing=result.differing,
        first_difference=result.first_difference,
        replaced=len(result.replaced),
        rescored=rescored,
        first_open_time=rows[0].open_time,
        last_open_time=rows[-1].open_time,
        gaps=find_gaps(row.open_time for row in rows),
        seconds=time.perf_counter() - started,
    )


def _forecasts_rescore(asset: Asset, hours: tuple[datetime, ...]) -> int:
    # Imported here: forecasting depends on markets, not the other way round.
    from forecasting.services import forecasts_rescore

    return forecasts_rescore(asset=asset, hours=hours)


def _refresh_forecasts(
    symbol: str, filled_first: datetime | None = None, filled_last: datetime | None = None
) -> None:
    # Imported here: forecasting depends on markets, not the other way round.
    from forecasting import tasks as forecasting_tasks

    if filled_first is None or filled_last is None:
        forecasting_tasks.refresh_forecasts.delay(symbol)
    else:  # candles filled in a hole: forecasts scored while it was a hole are scored again
        forecasting_tasks.refresh_forecasts.delay(
            symbol, rescore_from=filled_first.isoformat(), rescore_to=filled_last.isoformat()
        )


def asset_sync(*, asset: Asset, source: KlineSource | None = None, now: datetime | None = None) -> SyncResult:
    """Fetch the asset's new closed candles from the source and store them.

    Everything is fetched before anything is written, then stored in one
    transaction: a failure stores nothing and is recorded in
    asset.last_sync_error; a success clears it and sets last_synced_at. The
    exception is a bad kline from the source: the good candles before it are
    stored and the error is recorded. Any failure, expected or not, is recorded
    and returned, never raised, so one asset cannot stop the others' syncs.
    When candles were added, forecasts are refreshed after the commit.
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
        result = _candles_store(asset=asset, rows=fetched.rows, now=now, succeeded=bad_data is None)
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
    gaps = _gaps_fill_recording_failures(asset=asset, source=source, now=now)
    return SyncResult(
        symbol=asset.symbol,
        source=source_name,
        inserted=result.inserted,
        already_present=result.already_present,
        note=note,
        last_open_time=last_open_time,
        gaps=gaps,
    )


def _candles_store(*, asset: Asset, rows: list[KlineRow], now: datetime, succeeded: bool) -> UpsertResult:
    with transaction.atomic():
        # Serialises concurrent syncs of one asset (beat and "sync now") on PostgreSQL.
        Asset.objects.select_for_update().filter(pk=asset.pk).exists()
        result = candles_upsert(asset=asset, rows=rows, now=now)
        if succeeded:
            synced_at = timezone.now()
            Asset.objects.filter(pk=asset.pk).update(last_synced_at=synced_at, last_sync_error="")
        if result.inserted:
            transaction.on_commit(partial(_refresh_forecasts, asset.symbol), robust=True)
    if succeeded:
        asset.last_synced_at, asset.last_sync_error = synced_at, ""
    return result


def asset_gaps_fill(
    *, asset: Asset, source: KlineSource, now: datetime | None = None, max_requests: int | None = None
) -> GapFillResult:
    """Ask `source` for the hours missing between the asset's stored candles, newest first.

    What it has is stored (validated as any sync's candles); the hours it
    answered for without a candle are recorded as a ConfirmedOutage, so later
    syncs do not ask again. At most `max_requests` requests
    (settings.SYNC_GAP_REQUESTS) of at most MAX_RANGE_HOURS hours, each
    committed on its own; the rest is left for the next syncs. A request that
    fails (after the source's retries) stops the filling, confirms nothing
    and is asked again next time; SourceError is reported, not raised.
    """
    now = now or timezone.now()
    max_requests = settings.SYNC_GAP_REQUESTS if max_requests is None else max_requests
    holes = asset_unconfirmed_gaps(asset=asset, source=source.name)
    still_missing = sum(_hours(hole) for hole in holes)
    filled = confirmed = requests = 0
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
        inserted = _gap_store(asset=asset, source_name=source.name, rows=rows, empty=empty, now=now)
        filled += inserted
        confirmed += sum(_hours(hole) for hole in empty)
        # Hours answered: a candle came for them, or they are now a confirmed outage.
        still_missing -= sum(1 for when in found if any(a <= when <= b for a, b in batch))
        still_missing -= sum(_hours(hole) for hole in empty)
        if failure is not None:
            error = str(failure)
            break
    result = GapFillResult(filled, confirmed, still_missing, requests, error)
    if result.anything:
        logger.log(logging.WARNING if error else logging.INFO, "%s: %s", asset.symbol, result)
    return result


def _hours(hole: HourRange) -> int:
    return (hole[1] - hole[0]) // INTERVAL + 1


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
    *, asset: Asset, source_name: str, rows: list[KlineRow], empty: list[HourRange], now: datetime
) -> int:
    with transaction.atomic():
        Asset.objects.select_for_update().filter(pk=asset.pk).exists()  # as _candles_store
        inserted = candles_upsert(asset=asset, rows=rows, now=now).inserted if rows else 0
        ConfirmedOutage.objects.bulk_create(
            [ConfirmedOutage(asset=asset, source=source_name, first_hour=a, last_hour=b) for a, b in empty],
            ignore_conflicts=True,  # a concurrent sync confirmed it first
        )
        if inserted:
            filled = sorted(row.open_time for row in rows)
            transaction.on_commit(
                partial(_refresh_forecasts, asset.symbol, filled[0], filled[-1]), robust=True
            )
    return inserted


def _gaps_fill_recording_failures(*, asset: Asset, source: KlineSource, now: datetime) -> GapFillResult:
    """asset_gaps_fill for asset_sync: any failure is logged and reported, never raised, and
    leaves the append's result (already committed) as it is."""
    try:
        return asset_gaps_fill(asset=asset, source=source, now=now)
    except DatabaseError as error:
        logger.exception("filling the holes of %s failed", asset.symbol)
        return GapFillResult(error=f"database error while filling holes: {error}")
    except SoftTimeLimitExceeded:
        return GapFillResult(error="stopped at the sync task's time limit")
    except Exception as error:
        logger.exception("filling the holes of %s failed unexpectedly", asset.symbol)
        return GapFillResult(error=f"unexpected error: {type(error).__name__}: {error}")


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
