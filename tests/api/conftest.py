"""Rows and clients for the API tests: created directly, the way the worker stores them."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from accounts.login_throttle import _keys
from accounts.services import api_token_create
from forecasting.models import Forecast, ModelVersion
from markets.models import Asset, Candle
from tests.candles import candle_row

HOUR = dt.timedelta(hours=1)
HORIZON = 4
METRICS = {
    "horizon": HORIZON,
    "rmse": [10.0, 12.0, 14.0, 16.0],
    "mae": [8.0, 9.0, 10.0, 11.0],
    "mape": [0.1, 0.2, 0.3, 0.4],
    "persistence_rmse": [11.0, 13.0, 15.0, 17.0],
    "persistence_mae": [9.0, 10.0, 11.0, 12.0],
    "direction_accuracy": [0.55, 0.54, 0.53, 0.52],
    "coverage_80": [0.8, 0.79, 0.81, 0.8],
    "skill_rmse": [0.09, 0.08, 0.07, 0.06],
}


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_floor(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def candles_create(asset: Asset, count: int, *, end: dt.datetime, close: float = 100.0) -> list[Candle]:
    """`count` hourly candles whose last opens at `end`; closes rise by 1 per hour from `close`."""
    start = end - (count - 1) * HOUR
    rows = []
    for i in range(count):
        when = start + i * HOUR
        price = Decimal(str(close + i))
        rows.append(
            candle_row(
                asset,
                when,
                open=price - 1,
                high=price + Decimal("0.5"),
                low=price - Decimal("1.5"),
                close=price,
            )
        )
    return Candle.objects.bulk_create(rows)


def version_create(asset: Asset, version: int = 1, *, status: str = "active", **fields) -> ModelVersion:
    defaults = {
        "horizon": HORIZON,
        "window": 24,
        "metrics": METRICS,
        "loss_history": [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.6}],
        "epochs": 1,
        "train_seconds": 3.5,
        "trained_at": timezone.now(),
        "reason": "",
    }
    defaults.update(fields)
    return ModelVersion.objects.create(asset=asset, version=version, status=status, **defaults)


def forecast_create(
    version: ModelVersion, base_time: dt.datetime, *, last_close: float = 100.0, scores=None
) -> Forecast:
    points = [
        {
            "time": iso(base_time + (step + 1) * HOUR),
            "close": last_close + step + 1,
            "lower": last_close + step - 4,
            "upper": last_close + step + 6,
        }
        for step in range(version.horizon)
    ]
    return Forecast.objects.create(
        asset=version.asset,
        model_version=version,
        base_time=base_time,
        last_close=Decimal(str(last_close)),
        horizon=version.horizon,
        points=points,
        scores=scores or [],
        fully_scored=bool(scores) and len(scores) == version.horizon,
    )


# The addresses and usernames the API tests log in from and as.
TEST_CLIENTS = ("127.0.0.1", *(f"203.0.113.{i}" for i in range(1, 21)))
TEST_USERNAMES = ("alice", "root", "nobody", *(f"guess{i}" for i in range(20)))


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    """Forget earlier login attempts (the rate per address and the failed-attempt counts).

    Only these keys: with REDIS_URL the cache may share its database with the broker.
    """
    keys = [ScopedRateThrottle.cache_format % {"scope": "login", "ident": ip} for ip in TEST_CLIENTS]
    keys += {
        key + suffix
        for user in TEST_USERNAMES
        for ip in TEST_CLIENTS
        for key in _keys(username=user, client=ip)
        for suffix in ("", ":until")
    }
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


SAVEPOINTS = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@pytest.fixture
def max_statements():
    """Like django_assert_max_num_queries, without the savepoints that only exist because
    the test runs inside a transaction (in production they are BEGIN/COMMIT, not statements)."""

    @contextmanager
    def check(limit: int):
        with CaptureQueriesContext(connection) as context:
            yield
        statements = [q["sql"] for q in context.captured_queries if not q["sql"].startswith(SAVEPOINTS)]
        assert len(statements) <= limit, f"{len(statements)} statements:\n" + "\n".join(statements)

    return check


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(user) -> APIClient:
    _, key = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def member_api(member) -> APIClient:
    return client_for(member)


@pytest.fixture
def staff_api(staff) -> APIClient:
    return client_for(staff)


@pytest.fixture
def market(btc, settings) -> dict:
    """BTCUSDT with 48 fresh candles, an active model v2 (after a retired v1) and its forecast."""
    settings.MARKET_DATA_SOURCE = "binance"  # staleness by candle age, like production
    last = hour_floor(timezone.now()) - HOUR  # the last closed hour
    candles = candles_create(btc, 48, end=last)
    btc.last_synced_at = timezone.now()
    btc.save(update_fields=["last_synced_at"])
    retired = version_create(btc, 1, status="retired")
    active = version_create(btc, 2, status="active", parent=retired, mode="warm")
    forecast_create(retired, last - HOUR, last_close=float(candles[-2].close))
    forecast = forecast_create(active, last, last_close=float(candles[-1].close))
    return {"asset": btc, "last": last, "candles": candles, "active": active, "forecast": forecast}
