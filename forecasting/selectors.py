"""Reads behind the API and the web pages: assets, candles, forecasts, models, track record.

Every function runs a bounded number of queries whatever the number of
assets, versions or forecasts, and returns plain values or dataclasses that
a serializer or a template can render directly. Nothing here computes a
forecast: the request path only reads stored rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from forecasting.models import Forecast, ModelVersion, TrainingLease
from forecasting.track_record import ErrorStats, ScoredForecast, TrackRecord, track_record
from makeusrich.formats import datetime_text, iso_z
from markets.models import Asset, Candle, forecast_problem_for_members

# Binance symbols are upper-case letters and digits; anything else cannot exist,
# and is refused before it reaches the database (NUL bytes break PostgreSQL).
SYMBOL_RE = re.compile(r"^[A-Za-z0-9]{2,20}$")
CANDLE = timedelta(hours=1)
# How the staleness reason carrying the sync's error text starts (the pages replace it for members).
SYNC_FAILING_REASON = "market data sync is failing"
# What anyone but staff reads instead (pages, API): the exchange's or the configuration's words
# are for the operators.
SYNC_FAILING_FOR_MEMBERS = "market data for this asset is not updating; the operators see why in the admin"
# Only older holes could not be filled (the newest candles are in).
HOLES_FAILING_FOR_MEMBERS = (
    "some older missing hours could not be fetched; the operators see why in the admin"
)
# A failed version's reason, likewise (an exception's text can name hosts, paths, buckets).
FAILED_FOR_MEMBERS = "the operators see why in the admin"


def sync_error_for_members(asset: Asset) -> str | None:
    """The asset's last sync error as anyone but staff may read it; None when the sync is fine."""
    if not asset.last_sync_error:
        return None
    return HOLES_FAILING_FOR_MEMBERS if asset.holes_error else SYNC_FAILING_FOR_MEMBERS


def reason_for_members(reason: str) -> str:
    """A stale reason or forecast problem as anyone but staff may read it."""
    if reason.startswith(SYNC_FAILING_REASON):
        return SYNC_FAILING_FOR_MEMBERS
    return forecast_problem_for_members(reason)


# Version fields the pages and API never need on a hot path (large JSON).
HEAVY_VERSION_FIELDS = ("preprocessing", "loss_history", "hyperparameters", "features")


class ForecastUnavailable(Exception):
    """No forecast can be shown (no active model, or none stored yet); str() says why."""


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _latest_candle(field: str) -> Subquery:
    return Subquery(Candle.objects.filter(asset=OuterRef("pk")).order_by("-open_time").values(field)[:1])


def _assets_with_last_candle() -> QuerySet[Asset]:
    return (
        Asset.objects.filter(is_active=True)
        .defer("hyperparameters", "last_train_outcome")
        .annotate(last_candle_time=_latest_candle("open_time"), last_close=_latest_candle("close"))
    )


# --- assets and candles ------------------------------------------------------------


def asset_find(*, symbol: str) -> Asset | None:
    """The active asset named `symbol` (any case), annotated with last_candle_time and
    last_close (one query), or None."""
    if not SYMBOL_RE.fullmatch(symbol or ""):
        return None
    return _assets_with_last_candle().filter(symbol=symbol.upper()).first()


def asset_symbols() -> list[str]:
    """Symbols of the active assets, for messages such as 'unknown asset; try ...'."""
    return list(Asset.objects.filter(is_active=True).values_list("symbol", flat=True))


# --- staleness ---------------------------------------------------------------------


def forecast_staleness(
    *,
    asset: Asset,
    version: ModelVersion,
    base_time: datetime,
    last_candle_time: datetime | None,
    now: datetime | None = None,
    time_text: Callable[[datetime], str] = datetime_text,
) -> list[str]:
    """Why a forecast should not be trusted as current; empty when it is fresh.

    Moments are written by `time_text`: the pages' "6 Mar 2022 17:00 UTC" by
    default; the API passes `iso_z`, the form of every other time in its JSON.

    Data age is the age of the last candle's close with Binance, and the age of
    the last successful sync with the replay source (whose candles are
    historical by design); a sync failing to store new candles is always
    reported. One that stored them but failed to fill an older hole is not: the
    forecast still starts from the newest candle (the pages and the admin show
    that error as the sync's status). So is why the last forecast refresh stored
    nothing (`asset.forecast_problem`: the active model cannot be loaded, too few
    recent candles), until a forecast is stored again.
    """
    now = now or timezone.now()
    reasons = []
    data_limit = timedelta(hours=settings.STALE_DATA_HOURS)
    if asset.new_candles_failing:
        reasons.append(f"{SYNC_FAILING_REASON}: {asset.last_sync_error[:200]}")
    if settings.MARKET_DATA_SOURCE == "replay":
        if asset.last_synced_at is None:
            reasons.append("market data has never been synced")
        elif now - asset.last_synced_at > data_limit:
            age = _hours(now - asset.last_synced_at)
            reasons.append(f"market data last synced {age} ago (limit {settings.STALE_DATA_HOURS} h)")
    elif last_candle_time is None:
        reasons.append("no candles stored")
    elif now - (last_candle_time + CANDLE) > data_limit:
        age = _hours(now - (last_candle_time + CANDLE))
        reasons.append(f"last candle closed {age} ago (limit {settings.STALE_DATA_HOURS} h)")
    trained_at = version.trained_at or version.created_at
    if trained_at and now - trained_at > timedelta(hours=settings.STALE_MODEL_HOURS):
        age = _hours(now - trained_at)
        reasons.append(
            f"model v{version.version} was trained {age} ago (limit {settings.STALE_MODEL_HOURS} h)"
        )
    if asset.forecast_problem:  # the last refresh failed: the active model cannot load, too few candles
        reasons.append(asset.forecast_problem[:300])
    if last_candle_time is not None and base_time != last_candle_time:
        reasons.append(
            f"forecast starts from the candle opened {time_text(base_time)}, "
            f"but a newer one (opened {time_text(last_candle_time)}) exists"
        )
    return reasons


# --- forecasts ---------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastDetail:
    """The latest stored forecast of the active version, as the API shows it.

    (The pages build their own panels in forecasting/overview.py.)
    """

    symbol: str
    model_version: int
    generated_at: datetime
    last_candle_time: datetime  # the candle the forecast starts from (its base)
    last_close: float
    horizon_hours: int
    points: list[dict[str, Any]]  # [{"time","close","lower","upper"}], index 0 = next hour
    stale: bool
    stale_reason: str | None
    metrics: dict[str, Any]  # the version's held-out test metrics (`train --json`)
    trained_at: datetime | None


@dataclass(frozen=True)
class ForecastSummary:
    """One line of the assets overview: where the active model expects the price to go."""

    model_version: int
    generated_at: datetime
    base_time: datetime
    horizon_hours: int
    next_close: float | None
    final_close: float | None
    final_lower: float | None
    final_upper: float | None
    stale: bool
    stale_reason: str | None


def _latest_active_forecasts() -> QuerySet[Forecast]:
    return (
        Forecast.objects.filter(model_version__status=ModelVersion.Status.ACTIVE)
        .select_related("model_version")
        .defer("scores", *(f"model_version__{name}" for name in HEAVY_VERSION_FIELDS))
        .order_by("-base_time")
    )


def forecast_unavailable_reason(*, asset: Asset) -> str:
    """Why `asset` has no forecast to serve, in words for the API's 503 and the pages."""
    latest = (
        ModelVersion.objects.filter(asset=asset)
        .only("version", "status", "reason", "created_at")
        .annotate(
            lease_owner=F("asset__training_lease__owner"),
            lease_expires=F("asset__training_lease__expires_at"),
        )
        .order_by("-version")
        .first()
    )
    if latest is not None and latest.status == ModelVersion.Status.ACTIVE:
        if asset.forecast_problem:
            return (
                f"no forecast stored yet for {asset.symbol} by model v{latest.version}: "
                f"{asset.forecast_problem_for_members}"
            )
        return (
            f"no forecast stored yet for {asset.symbol} by model v{latest.version}; "
            "the worker stores one after each training and every hour"
        )
    if latest is None and not Candle.objects.filter(asset=asset).exists():
        # Scheduled retrains skip an asset without candles: promise a model only after data.
        why = "it has no market data yet" + (
            f" ({SYNC_FAILING_FOR_MEMBERS})"
            if asset.last_sync_error
            else "; a model is trained once syncs bring it"
        )
    elif latest is None:
        why = "no model has been trained yet; training runs every hour"
    elif latest.status == ModelVersion.Status.TRAINING:
        why = f"training v{latest.version} (started {iso_z(latest.created_at)})"
        lease = TrainingLease(owner=latest.lease_owner or "", expires_at=latest.lease_expires)
        if not lease.held(timezone.now()):  # its worker died; the next run marks it interrupted
            why += (
                " stopped before finishing: no worker is training it; the next scheduled retrain starts again"
            )
    elif latest.status == ModelVersion.Status.FAILED:
        why = f"training v{latest.version} failed; {FAILED_FOR_MEMBERS}"  # as the pages say it
    else:
        why = f"v{latest.version} was not promoted: {latest.reason or 'no reason recorded'}"
    return f"no active model yet for {asset.symbol}: {why}"


def _staleness_of(asset: Asset, forecast: Forecast, now: datetime) -> tuple[bool, str | None]:
    """Staleness as the API states it (ForecastDetail and ForecastSummary are the API's), ISO times."""
    reasons = forecast_staleness(
        asset=asset,
        version=forecast.model_version,
        base_time=forecast.base_time,
        last_candle_time=getattr(asset, "last_candle_time", None),
        now=now,
        time_text=iso_z,
    )
    # The API answers anyone with a token: a sync error's or a bad artifact's details are for the admin.
    shown = [reason_for_members(reason) for reason in reasons]
    return bool(shown), "; ".join(shown) or None


def _detail(asset: Asset, forecast: Forecast, now: datetime) -> ForecastDetail:
    stale, stale_reason = _staleness_of(asset, forecast, now)
    version = forecast.model_version
    return ForecastDetail(
        symbol=asset.symbol,
        model_version=version.version,
        generated_at=forecast.generated_at,
        last_candle_time=forecast.base_time,
        last_close=float(forecast.last_close),
        horizon_hours=forecast.horizon,
        points=forecast.points or [],
        stale=stale,
        stale_reason=stale_reason,
        metrics=version.metrics or {},
        trained_at=version.trained_at,
    )


def forecast_latest(*, asset: Asset, now: datetime | None = None) -> ForecastDetail:
    """The active version's latest forecast for `asset` (an `asset_find` result).

    Raises ForecastUnavailable, saying why, when there is no active version or
    it has stored no forecast yet.
    """
    forecast = _latest_active_forecasts().filter(asset=asset).first()
    if forecast is None:
        raise ForecastUnavailable(forecast_unavailable_reason(asset=asset))
    return _detail(asset, forecast, now or timezone.now())


def forecast_latest_by_symbol(*, symbol: str, now: datetime | None = None) -> ForecastDetail | None:
    """`forecast_latest` for the active asset `symbol` in one query (the API's hot path).

    None when there is nothing to serve: the caller finds out why with
    `asset_find` (unknown asset) and `forecast_unavailable_reason`.
    """
    if not SYMBOL_RE.fullmatch(symbol or ""):
        return None
    last_candle = Candle.objects.filter(asset=OuterRef("asset_id")).order_by("-open_time").values("open_time")
    forecast = (
        _latest_active_forecasts()
        .select_related("asset")
        .defer("asset__hyperparameters", "asset__last_train_outcome")
        .filter(asset__symbol=symbol.upper(), asset__is_active=True)
        .annotate(asset_last_candle_time=Subquery(last_candle[:1]))
        .first()
    )
    if forecast is None:
        return None
    forecast.asset.last_candle_time = forecast.asset_last_candle_time
    return _detail(forecast.asset, forecast, now or timezone.now())


@dataclass(frozen=True)
class AssetOverview:
    asset: Asset
    last_candle_time: datetime | None
    last_close: Decimal | None
    forecast: ForecastSummary | None


def _summary(asset: Asset, forecast: Forecast, now: datetime) -> ForecastSummary:
    points = forecast.points or []
    first, last = (points[0], points[-1]) if points else ({}, {})
    stale, stale_reason = _staleness_of(asset, forecast, now)
    return ForecastSummary(
        model_version=forecast.model_version.version,
        generated_at=forecast.generated_at,
        base_time=forecast.base_time,
        horizon_hours=forecast.horizon,
        next_close=first.get("close"),
        final_close=last.get("close"),
        final_lower=last.get("lower"),
        final_upper=last.get("upper"),
        stale=stale,
        stale_reason=stale_reason,
    )


def asset_overview_list(*, symbol: str | None = None, now: datetime | None = None) -> list[AssetOverview]:
    """Active assets (or just `symbol`) with last price and latest forecast summary: two queries."""
    now = now or timezone.now()
    latest_forecast = _latest_active_forecasts().filter(asset=OuterRef("pk")).values("pk")[:1]
    assets = _assets_with_last_candle().annotate(latest_forecast_id=Subquery(latest_forecast))
    if symbol is not None:
        assets = assets.filter(symbol=symbol.upper())
    assets = list(assets)
    ids = [asset.latest_forecast_id for asset in assets if asset.latest_forecast_id]
    forecasts = {forecast.pk: forecast for forecast in _latest_active_forecasts().filter(pk__in=ids)}
    overview = []
    for asset in assets:
        forecast = forecasts.get(asset.latest_forecast_id)
        overview.append(
            AssetOverview(
                asset=asset,
                last_candle_time=asset.last_candle_time,
                last_close=asset.last_close,
                forecast=_summary(asset, forecast, now) if forecast else None,
            )
        )
    return overview


# --- model versions ------------------------------------------------------------------


def model_version_list(
    *, asset: Asset, limit: int = 100, with_loss_history: bool = False
) -> list[ModelVersion]:
    """The asset's versions, newest first (at most `limit`), without the serving-only JSON."""
    heavy = [name for name in HEAVY_VERSION_FIELDS if not (with_loss_history and name == "loss_history")]
    return list(
        ModelVersion.objects.filter(asset=asset)
        .select_related("parent")
        .defer(*heavy, *(f"parent__{name}" for name in HEAVY_VERSION_FIELDS))
        .order_by("-version")[:limit]
    )


# What the API says of a version still "training" that no run is training (its worker died):
# the next run records it as failed with the reason "interrupted: ..." (services/training.py).
STOPPED_TRAINING_REASON = (
    "stopped before finishing: no worker is training it; the next scheduled retrain records it as failed"
)


def versions_left_training(
    versions: list[ModelVersion], lease: TrainingLease | None, now: datetime | None = None
) -> set[int]:
    """The pks of `versions` still "training" that no run is training (the pages and the API).

    `versions` are the asset's newest, newest first (model_version_list), and
    `lease` its training lease. Only the newest can be in training; it is while
    a run holds the lease, which is renewed at every epoch.
    """
    training = {version.pk for version in versions if version.status == ModelVersion.Status.TRAINING}
    if training and lease is not None and lease.held(now or timezone.now()):
        training.discard(versions[0].pk)
    return training


def model_version_active(*, asset: Asset, with_loss_history: bool = True) -> ModelVersion | None:
    """The version serving `asset`, or None.

    Annotated with `no_change_loss`, the loss history's reference
    (preprocessing.training.no_change_loss: {"train", "validation"}), None for
    versions trained before it was recorded; the rest of preprocessing stays unread.
    """
    heavy = [name for name in HEAVY_VERSION_FIELDS if not (with_loss_history and name == "loss_history")]
    no_change = KeyTransform("no_change_loss", KeyTransform("training", "preprocessing"))
    return (
        ModelVersion.objects.filter(asset=asset, status=ModelVersion.Status.ACTIVE)
        .defer(*heavy)
        .annotate(no_change_loss=no_change)
        .first()
    )


# --- live track record (aggregation in forecasting/track_record.py) -----------------

__all__ = [
    "AssetOverview",
    "ErrorStats",
    "ForecastDetail",
    "ForecastSummary",
    "ForecastUnavailable",
    "ScoredForecast",
    "TrackRecord",
    "asset_find",
    "asset_overview_list",
    "asset_symbols",
    "forecast_latest",
    "forecast_latest_by_symbol",
    "forecast_staleness",
    "forecast_unavailable_reason",
    "model_version_active",
    "model_version_list",
    "track_record",
]
