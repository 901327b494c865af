"""Small synthetic markets for the forecasting services (fast, deterministic)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from markets.models import Asset, Candle
from tests.candles import candle_row

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
# A tiny network and short windows: the services are under test here, not the model.
TINY = {
    "window": 24,
    "horizon": 6,
    "hidden_size": 8,
    "max_epochs": 2,
    "warm_max_epochs": 1,
    "epoch_windows": 128,
    "warm_windows": 64,
    "volatility_hours": 12,
    "batch_size": 64,
}


def candles_create(asset: Asset, count: int, *, start: dt.datetime = START, seed: int = 0, skip=()) -> None:
    """`count` hourly candles of a random walk around 100, minus the hours in `skip`."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    rows = []
    for i, close in enumerate(closes):
        if i in skip:
            continue
        open_ = closes[i - 1] if i else close
        high, low = max(open_, close) * 1.002, min(open_, close) * 0.998
        when = start + i * HOUR
        rows.append(
            candle_row(
                asset,
                when,
                open=Decimal(f"{open_:.4f}"),
                high=Decimal(f"{high:.4f}"),
                low=Decimal(f"{low:.4f}"),
                close=Decimal(f"{close:.4f}"),
            )
        )
    Candle.objects.bulk_create(rows)


@pytest.fixture
def tiny_asset(db, settings, tmp_path) -> Asset:
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "artifacts")},
        },
    }
    asset = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT", hyperparameters=TINY)
    candles_create(asset, 600)
    return asset


@pytest.fixture
def asset_after_outage(tiny_asset) -> Asset:
    """tiny_asset whose last day misses 12 hours: trainable, but its last window cannot be filled."""
    Candle.objects.filter(asset=tiny_asset, open_time__gte=START + 580 * HOUR).filter(
        open_time__lt=START + 592 * HOUR
    ).delete()
    return tiny_asset
