"""assets_sync: one asset's failure, whatever it is, is recorded on it and the others still sync."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from markets.models import Asset, Candle
from markets.services import assets_sync
from markets.sources import Fetched
from markets.sources.replay import ReplaySource

pytestmark = pytest.mark.django_db


class BrokenFor:
    """The bundled candles for every symbol, except one whose fetch raises `error`."""

    name = "broken"

    def __init__(self, symbol: str, error: BaseException) -> None:
        self.symbol, self.error = symbol, error
        self.rows = ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()[:48]

    def fetch(self, *, symbol: str, after: datetime | None, now: datetime) -> Fetched:
        if symbol == self.symbol:
            raise self.error
        return Fetched(list(self.rows), "48 bundled candles")


@pytest.fixture
def assets(btc) -> list[Asset]:
    return [
        Asset.objects.create(symbol="AAAUSDT", base="AAA", quote="USDT"),
        btc,
        Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT"),
    ]


def test_an_unexpected_error_is_recorded_on_its_asset_and_the_others_still_sync(assets, caplog):
    report = assets_sync(assets=assets, source=BrokenFor("BTCUSDT", OverflowError("date value out of range")))

    assert [r.symbol for r in report.failed] == ["BTCUSDT"]
    btc = Asset.objects.get(symbol="BTCUSDT")
    assert btc.last_sync_error == "unexpected error: OverflowError: date value out of range"
    assert btc.last_synced_at is None
    for symbol in ("AAAUSDT", "ETHUSDT"):
        assert Candle.objects.filter(asset__symbol=symbol).count() == 48
        assert Asset.objects.get(symbol=symbol).last_synced_at is not None
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged and logged[0].exc_info is not None  # the stack trace goes to the log


def test_the_task_time_limit_is_recorded_as_such(assets):
    report = assets_sync(assets=assets, source=BrokenFor("AAAUSDT", SoftTimeLimitExceeded()))

    assert [r.symbol for r in report.failed] == ["AAAUSDT"]
    assert "time limit" in Asset.objects.get(symbol="AAAUSDT").last_sync_error
    assert Candle.objects.filter(asset__symbol="BTCUSDT").count() == 48
