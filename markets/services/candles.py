"""Writes for markets: assets, candle upserts (the one path every candle is stored by), CSV import."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from markets.csvfile import PathOrFile, file_name_check, read_klines_csv
from markets.klines import (
    INTERVAL,
    Gap,
    KlineError,
    KlineRow,
    decimal_text,
    find_gaps,
    kline_is_closed,
    symbol_split,
)
from markets.models import CANDLE_FIELDS, Asset, Candle

Progress = Callable[[int, int], None]  # (rows stored so far, rows to store)


BATCH_SIZE = 500


# An import may leave at most this many missing hours between the file and the stored history:
# more is usually a file of another year or symbol (the caller may allow it, see ImportHoleError).
IMPORT_MAX_HOLE_HOURS = 24


class AssetError(ValueError):
    """An asset that cannot be created as asked; the message says why."""


class ImportHoleError(ValueError):
    """A file that would leave more than IMPORT_MAX_HOLE_HOURS missing hours between its candles
    and the asset's stored ones; nothing was imported. `hole` is that gap."""

    def __init__(self, symbol: str, hole: Gap, *, stored: tuple[datetime, datetime]) -> None:
        self.hole = hole
        super().__init__(
            f"it would leave a hole of {hole.missing_hours} missing hours (about "
            f"{hole.missing_hours / 24:,.0f} days, {hole.first_missing:%Y-%m-%d %H:%M} to "
            f"{hole.last_missing:%Y-%m-%d %H:%M} UTC) between its candles and the stored {symbol} "
            f"candles ({stored[0]:%Y-%m-%d %H:%M} to {stored[1]:%Y-%m-%d %H:%M} UTC). "
            "Check that the file is the one you meant (symbol, dates)"
        )


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
    active: bool = True  # the asset's state after the import
    activated: bool = False  # the import made an inactive (or new) asset active (activate=True)
    # Missing hours this import left between the file's candles and those stored before it.
    new_hole: Gap | None = None
    # A price jump by PRICE_JUMP_RATIO or more between the file and the stored candles next to
    # it, said in words ("" when none): a file of another symbol, or of other units.
    price_jump: str = ""


# No pair moves by this factor from one hour to the next: a warning, not a refusal (a new listing can).
PRICE_JUMP_RATIO = 2.0


def asset_get_or_create(*, symbol: str, active: bool = False) -> tuple[Asset, bool]:
    """The asset for `symbol` (any case), created with base/quote split from it.

    A new asset is inactive unless `active`: an active one is synced, trained and
    published (pages, API) at once, which a typo in a symbol should not be. An
    existing asset is returned as it is."""
    symbol = symbol.strip().upper()
    existing = Asset.objects.filter(symbol=symbol).first()
    if existing is not None:
        return existing, False
    try:
        base, quote = symbol_split(symbol)
        asset = Asset(symbol=symbol, base=base, quote=quote, is_active=active)
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
        f"{name} {_value_text(getattr(row, name))} in the file, {_value_text(kept)} stored"
        for name, kept in zip(COMPARED_FIELDS, stored, strict=True)
        if not _same_value(getattr(row, name), kept)
    ]
    return f"{row.open_time:%Y-%m-%d %H:%M} UTC: {', '.join(changed)}" if changed else ""


def _value_text(value: object) -> str:
    # Stored decimals come back with the column's 10 places (48109.7900000000).
    return decimal_text(value) if isinstance(value, Decimal) else str(value)


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
    allow_hole: bool = False,
    activate: bool = False,
) -> ImportSummary:
    """Import a Binance-kline CSV (plain or gzip) for `symbol`, all or nothing.

    A file named like a Binance dump of another symbol or interval is refused
    (markets.csvfile.file_name_check). Every row is checked first
    (markets.csvfile.CandleFileError names the lines and problems); then the
    asset (created if missing, inactive unless `activate`) and the new candles
    are written in one transaction. Re-importing adds nothing. `activate` makes
    the asset active, new or not.

    A file whose candles would stand more than IMPORT_MAX_HOLE_HOURS missing
    hours apart from the stored ones is refused (ImportHoleError, nothing
    written) unless `allow_hole`: a month of another year imported by mistake
    would otherwise become the asset's newest candles.

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
        asset, created = asset_get_or_create(symbol=symbol, active=activate)
        # Locked before the stored span is read: a concurrent import cannot move it meanwhile.
        Asset.objects.select_for_update().filter(pk=asset.pk).exists()
        stored = _stored_span(asset)
        new_hole = _hole_between(stored, rows[0].open_time, rows[-1].open_time) if stored else None
        if new_hole is not None and new_hole.missing_hours > IMPORT_MAX_HOLE_HOURS and not allow_hole:
            raise ImportHoleError(asset.symbol, new_hole, stored=stored)
        price_jump = _price_jump(asset, rows) if stored else ""
        activated = activate and not created and not asset.is_active
        if activated:
            assets_set_active(assets=Asset.objects.filter(pk=asset.pk), active=True)
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
        active=activate or asset.is_active,
        activated=activated or (created and activate),
        new_hole=new_hole,
        price_jump=price_jump,
    )


def _price_jump(asset: Asset, rows: list[KlineRow]) -> str:
    """Where the file's prices jump from the stored candles next to it by PRICE_JUMP_RATIO or
    more: the stored close just before its first candle against that candle's open, and its
    last close against the open of the stored candle just after it."""
    candles = Candle.objects.filter(asset=asset)
    before = candles.filter(open_time__lt=rows[0].open_time).order_by("-open_time").first()
    after = candles.filter(open_time__gt=rows[-1].open_time).order_by("open_time").first()
    pairs = []
    if before is not None:
        pairs.append((before.close, f"the stored close at {before.open_time:%Y-%m-%d %H:%M}", rows[0].open,
                      f"the file's first open ({rows[0].open_time:%Y-%m-%d %H:%M})"))  # fmt: skip
    if after is not None:
        pairs.append((rows[-1].close, f"the file's last close ({rows[-1].open_time:%Y-%m-%d %H:%M})", after.open,
                      f"the stored open at {after.open_time:%Y-%m-%d %H:%M}"))  # fmt: skip
    for old, old_text, new, new_text in pairs:
        if old > 0 and new > 0 and max(new / old, old / new) >= PRICE_JUMP_RATIO:
            return f"{old_text} is {decimal_text(old)}, {new_text} is {decimal_text(new)}"
    return ""


def _stored_span(asset: Asset) -> tuple[datetime, datetime] | None:
    span = Candle.objects.filter(asset=asset).aggregate(first=Min("open_time"), last=Max("open_time"))
    return None if span["first"] is None else (span["first"], span["last"])


def _hole_between(stored: tuple[datetime, datetime], first: datetime, last: datetime) -> Gap | None:
    """The missing hours between the stored span and the file's (`first` to `last`) when the
    two neither overlap nor touch; None when the file fills or extends the stored span."""
    if first > stored[1] + INTERVAL:
        return Gap(after=stored[1], before=first)
    if last < stored[0] - INTERVAL:
        return Gap(after=last, before=stored[0])
    return None


def _forecasts_rescore(asset: Asset, hours: tuple[datetime, ...]) -> int:
    # Imported here: forecasting depends on markets, not the other way round.
    from forecasting.services import forecasts_rescore

    return forecasts_rescore(asset=asset, hours=hours)
