"""Rows the web pages read, written directly (the pipeline's own tests cover how they are made)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from forecasting.models import Forecast, ModelVersion
from makeusrich.formats import api_float
from markets.models import Asset, Candle
from tests.candles import candle_row

HOUR = timedelta(hours=1)
HORIZON = 24


@dataclass
class Market:
    asset: Asset
    candles: list[Candle]
    version: ModelVersion
    forecast: Forecast
    scored: list[Forecast]


def last_full_hour(now: datetime | None = None) -> datetime:
    """Open time of the most recent closed candle."""
    now = now or timezone.now()
    return now.replace(minute=0, second=0, microsecond=0) - HOUR


def candles_create(*, asset: Asset, count: int, last: datetime, start_price: float = 40000.0) -> list[Candle]:
    """`count` hourly candles ending at `last`: a deterministic wave with hourly wiggles,
    each candle opening at the previous close."""
    rows = []
    previous = start_price
    for index in range(count):
        open_time = last - (count - 1 - index) * HOUR
        wave = start_price * (1 + 0.03 * math.sin(index / 9)) + index * 5
        base = previous
        close = wave * (1 + 0.002 * math.sin(index * 1.7))
        previous = close
        high = max(base, close) * 1.0015
        low = min(base, close) * 0.9985
        rows.append(
            candle_row(
                asset,
                open_time,
                open=Decimal(f"{base:.2f}"),
                high=Decimal(f"{high:.2f}"),
                low=Decimal(f"{low:.2f}"),
                close=Decimal(f"{close:.2f}"),
            )
        )
    return Candle.objects.bulk_create(rows)


def metrics(*, horizon: int = HORIZON, skill_first: float = 0.12, skill_last: float = -0.05) -> dict:
    """A `train --json` metrics object whose skill goes from `skill_first` to `skill_last`."""
    persistence = [100.0 + 40 * step for step in range(horizon)]
    skill = [skill_first + (skill_last - skill_first) * step / max(horizon - 1, 1) for step in range(horizon)]
    rmse = [p * (1 - s) for p, s in zip(persistence, skill, strict=True)]
    return {
        "horizon": horizon,
        "rmse": rmse,
        "mae": [value * 0.8 for value in rmse],
        "mape": [0.5] * horizon,
        "persistence_rmse": persistence,
        "persistence_mae": [value * 0.8 for value in persistence],
        "direction_accuracy": [0.55] * horizon,
        "coverage_80": [0.81] * horizon,
        "skill_rmse": skill,
    }


def version_create(*, asset: Asset, version: int, status: str, reason: str = "", **fields) -> ModelVersion:
    now = timezone.now()
    defaults = {
        "mode": ModelVersion.Mode.FULL,
        "horizon": HORIZON,
        "window": 120,
        "features": ["open", "high", "low", "close"],
        "trained_at": now - timedelta(minutes=30) if status != ModelVersion.Status.TRAINING else None,
        "epochs": 8 if status != ModelVersion.Status.TRAINING else 0,
        "train_seconds": 41.5 if status != ModelVersion.Status.TRAINING else None,
        "metrics": metrics() if status in (ModelVersion.Status.ACTIVE, ModelVersion.Status.VALIDATED) else {},
        "loss_history": [
            {"epoch": epoch, "train_loss": 0.5 / epoch, "val_loss": 0.6 / epoch + 0.01}
            for epoch in range(1, 9)
        ]
        if status != ModelVersion.Status.TRAINING
        else [],
    }
    defaults.update(fields)
    return ModelVersion.objects.create(asset=asset, version=version, status=status, reason=reason, **defaults)


def forecast_create(
    *, version: ModelVersion, base: Candle, closes: dict[datetime, float] | None = None
) -> Forecast:
    """A forecast from candle `base`; scored against `closes` (open time -> close) when given."""
    last_close = float(base.close)
    points, scores = [], []
    for step in range(1, HORIZON + 1):
        when = base.open_time + step * HOUR
        close = last_close * (1 + 0.001 * step)
        spread = 60.0 + 15 * step
        time = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        points.append({"time": time, "close": close, "lower": close - spread, "upper": close + spread})
        actual = (closes or {}).get(when)
        if actual is not None:
            scores.append(
                {
                    "time": time,
                    "actual": actual,
                    # Rounded as forecasts_score stores them (a price difference to the prices' digits).
                    "error": api_float(close - actual, scale=actual),
                    "inside": close - spread <= actual <= close + spread,
                    "persistence_error": api_float(last_close - actual, scale=actual),
                }
            )
    return Forecast.objects.create(
        asset=version.asset,
        model_version=version,
        base_time=base.open_time,
        last_close=base.close,
        horizon=HORIZON,
        points=points,
        scores=scores,
        fully_scored=len(scores) == HORIZON,
    )


def market_create(
    *, asset: Asset, candles: int = 150, scored: int = 30, last: datetime | None = None
) -> Market:
    """An asset as the pages see it after a few days of service (see the `market` fixture)."""
    last = last or last_full_hour()
    rows = candles_create(asset=asset, count=candles, last=last)
    asset.last_synced_at = timezone.now()
    asset.save(update_fields=["last_synced_at"])
    version_create(
        asset=asset, version=1, status=ModelVersion.Status.FAILED, reason="loss became NaN at epoch 3"
    )
    active = version_create(
        asset=asset, version=2, status=ModelVersion.Status.ACTIVE, activated_at=timezone.now(), mode="warm"
    )
    closes = {row.open_time: float(row.close) for row in rows}
    older = [forecast_create(version=active, base=row, closes=closes) for row in rows[-1 - scored : -1]]
    latest = forecast_create(version=active, base=rows[-1])
    return Market(asset=asset, candles=rows, version=active, forecast=latest, scored=older)


def lease_hold(
    *, asset: Asset, renewed_ago: timedelta = timedelta(0), ttl: timedelta = timedelta(minutes=40)
):
    """The asset's training lease as a running training holds it: renewed `renewed_ago` (at its
    last epoch), expiring `ttl` after that."""
    from forecasting.models import TrainingLease

    renewed = timezone.now() - renewed_ago
    lease, _ = TrainingLease.objects.update_or_create(
        asset=asset,
        defaults={"owner": "worker-1:42:1234:abcd1234", "renewed_at": renewed, "expires_at": renewed + ttl},
    )
    return lease
