"""Celery entry points of the forecasting app: they take symbols, call one service each."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone

from forecasting import services
from forecasting.models import ModelVersion
from markets.models import Asset

logger = logging.getLogger(__name__)


def _active_asset(symbol: str) -> Asset | None:
    asset = Asset.objects.filter(symbol=symbol.upper()).first()
    if asset is None:
        logger.warning("no asset %s: nothing to do", symbol)
    return asset


# What a retrain redelivered after its worker was lost records instead of training.
REDELIVERED = (
    "not run again: it was redelivered after the worker running it was lost (killed, out of memory?); "
    "the schedule or 'retrain now' trains again"
)
# How long a started attempt is remembered: the broker redelivers after its visibility timeout
# (2 h), or when a worker that was down for days starts again.
STARTED_MEMORY_SECONDS = 7 * 24 * 3600


def _started_before(request: Any) -> dt.datetime | None:
    """When this attempt of this task (its id and retry number) started before, if it did.

    The broker marks as redelivered every unacknowledged message it hands out again, also
    those a lost worker had only reserved (a retry waiting for its countdown, a message
    restored at shutdown): those never started and must run. So each attempt notes its
    start in the cache, which every worker shares (Redis wherever there is redelivery).
    """
    key = f"retrain-started:{request.id}:{request.retries}"
    now = timezone.now()
    if cache.add(key, now, timeout=STARTED_MEMORY_SECONDS):
        return None
    if not (request.delivery_info or {}).get("redelivered"):
        return None
    return cache.get(key) or now


@shared_task(
    bind=True,
    acks_late=True,
    # A training that kills its worker (out of memory) would kill every worker it were
    # redelivered to, for ever: it is dropped instead, and the schedule tries again. This
    # covers a pool process that dies; when the whole worker dies, the broker hands the
    # unacknowledged message out again (Redis: after its visibility timeout), marked
    # redelivered, and the task drops it itself when that attempt had started.
    reject_on_worker_lost=False,
    autoretry_for=(OperationalError,),
    retry_backoff=30,
    max_retries=3,
    soft_time_limit=settings.TRAINING_TIME_LIMIT_SECONDS,
    time_limit=settings.TRAINING_TIME_LIMIT_SECONDS + 60,
)
def retrain_asset(self, symbol: str, mode: str = "full") -> dict:
    """Train one asset (full or warm); skipped when another training of it holds the lease, and
    when a run would only fail again (no candles; too little data and nothing changed).

    The outcome (skipped, the version's status and reason, or the error) is recorded
    on the asset for the admin.
    """
    asset = _active_asset(symbol)
    if asset is None:
        return {"symbol": symbol, "status": "unknown asset"}
    started = _started_before(self.request) if self.request.id is not None else None
    if started is not None:
        logger.warning("%s %s retrain %s", asset.symbol, mode, REDELIVERED)
        # An attempt that finished and lost only its acknowledgement recorded its outcome: keep it.
        if asset.last_train_outcome_at is None or asset.last_train_outcome_at < started:
            services.asset_train_outcome_record(
                asset=asset, mode=mode, status=services.SKIPPED, reason=REDELIVERED
            )
        return {"symbol": asset.symbol, "status": services.SKIPPED, "reason": REDELIVERED}
    try:
        summary = _retrain(asset, mode)
    except OperationalError:
        raise  # the database is away: nothing can be recorded, and the task is retried
    except Exception as exc:  # e.g. hyperparameters an admin saved past the form's check
        services.asset_train_outcome_record(asset=asset, mode=mode, error=exc)
        raise
    services.asset_train_outcome_record(
        asset=asset,
        mode=mode,
        version=summary.get("version"),
        status=summary["status"],
        reason=summary["reason"],
        forecast_problem=summary.get("forecast", ""),
    )
    return summary


def _retrain(asset: Asset, mode: str) -> dict:
    try:
        version = services.model_version_train(asset=asset, mode=mode)
    except (
        services.TrainingLocked,
        services.NothingNew,
        services.NoCandles,
        services.StillTooLittleData,
    ) as exc:
        logger.info("%s", exc)
        return {"symbol": asset.symbol, "status": "skipped", "reason": str(exc)}
    summary = {
        "symbol": asset.symbol,
        "version": version.version,
        "status": version.status,
        "reason": version.reason,
    }
    if version.status == ModelVersion.Status.ACTIVE:
        _, problem = services.forecast_refresh_if_possible(asset=asset)
        if problem:
            logger.warning("%s v%s is active, but %s", asset.symbol, version.version, problem)
            summary["forecast"] = problem
    return summary


@shared_task
def retrain_active_assets(mode: str = "warm") -> list[str]:
    """Fan out one retrain task per active asset, so several workers share the work."""
    symbols = list(Asset.objects.filter(is_active=True).values_list("symbol", flat=True))
    for symbol in symbols:
        retrain_asset.delay(symbol, mode)
    return symbols


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=5, max_retries=3)
def refresh_forecasts(symbol: str, rescore_from: str | None = None, rescore_to: str | None = None) -> dict:
    """Score settled forecasts and store the active model's forecast from the last candle.

    `rescore_from`/`rescore_to` (ISO times): a sync filled a hole in the stored
    history there, so forecasts scored while those hours were missing are scored again.
    """
    asset = _active_asset(symbol)
    if asset is None:
        return {"symbol": symbol, "status": "unknown asset"}
    if rescore_from is not None and rescore_to is not None:
        first, last = dt.datetime.fromisoformat(rescore_from), dt.datetime.fromisoformat(rescore_to)
        hours = [first + step * services.HOUR for step in range((last - first) // services.HOUR + 1)]
        services.forecasts_rescore(asset=asset, hours=hours)
    forecast, problem = services.forecast_refresh_if_possible(asset=asset)
    if problem:
        logger.warning("%s: %s", asset.symbol, problem)
        return {"symbol": asset.symbol, "status": "no forecast", "reason": problem}
    if forecast is None:
        return {"symbol": asset.symbol, "status": "no active model"}
    return {"symbol": asset.symbol, "status": "ok", "base_time": forecast.base_time.isoformat()}


@shared_task
def prune_model_versions() -> int:
    """Retention: keep the active version and the last MODEL_RETENTION others per asset."""
    return sum(services.model_versions_prune(asset=asset) for asset in Asset.objects.all())


@shared_task
def prune_forecasts() -> int:
    """Retention: delete scored forecasts older than FORECAST_RETENTION_DAYS."""
    return services.forecasts_prune()
