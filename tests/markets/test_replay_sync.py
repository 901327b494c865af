"""asset_sync with the replay source: the bundled year revealed hour by hour."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from markets.models import Asset, Candle
from markets.services import asset_sync, candles_upsert
from markets.sources.replay import ReplaySource

pytestmark = pytest.mark.django_db


@pytest.fixture
def bundled(settings) -> tuple:
    return ReplaySource(path=settings.BUNDLED_DATA_FILE, candles_per_sync=1).rows()


def last_time(asset: Asset) -> datetime:
    return Candle.objects.filter(asset=asset).latest("open_time").open_time


def test_a_new_asset_gets_the_first_90_percent_of_the_year(btc, replay, bundled):
    result = asset_sync(asset=btc)

    assert result.ok
    assert result.inserted == int(8749 * 0.9) == 7874
    assert last_time(btc) == bundled[7873].open_time
    btc.refresh_from_db()
    assert btc.last_synced_at is not None and btc.last_sync_error == ""


def test_each_sync_reveals_the_next_hour(btc, replay, bundled):
    asset_sync(asset=btc)

    for offset in range(3):
        result = asset_sync(asset=btc)
        assert result.inserted == 1
        assert last_time(btc) == bundled[7874 + offset].open_time


def test_the_pace_follows_the_hours_per_sync_setting(btc, replay, bundled, settings):
    settings.REPLAY_HOURS_PER_SYNC = 6
    asset_sync(asset=btc)

    result = asset_sync(asset=btc)

    assert result.inserted == 6
    assert last_time(btc) == bundled[7879].open_time


def test_an_outage_is_crossed_without_making_up_candles(btc, replay, bundled):
    # Stored up to 2021-04-20 01:00, the last candle before the first outage.
    before_gap = next(i for i, r in enumerate(bundled) if r.open_time == datetime(2021, 4, 20, 1, tzinfo=UTC))
    candles_upsert(asset=btc, rows=bundled[: before_gap + 1])

    asset_sync(asset=btc)

    assert last_time(btc) == datetime(2021, 4, 20, 4, tzinfo=UTC)
    assert not Candle.objects.filter(
        asset=btc, open_time__in=[datetime(2021, 4, 20, h, tzinfo=UTC) for h in (2, 3)]
    )


def test_it_stops_at_the_end_of_the_data_and_says_so(btc, replay, bundled):
    candles_upsert(asset=btc, rows=bundled[:-2])

    revealed = [asset_sync(asset=btc).inserted for _ in range(4)]

    assert revealed == [1, 1, 0, 0]
    assert Candle.objects.filter(asset=btc).count() == 8749
    final = asset_sync(asset=btc)
    assert final.ok
    assert "replay data exhausted" in final.note
    btc.refresh_from_db()
    assert btc.last_sync_error == ""


def test_a_symbol_missing_from_the_bundled_data_is_a_clear_error(db, replay):
    eth = Asset.objects.create(symbol="ETHUSDT", base="ETH", quote="USDT")

    result = asset_sync(asset=eth)

    eth.refresh_from_db()
    assert "the replay source only has BTCUSDT" in eth.last_sync_error
    assert "MARKET_DATA_SOURCE=binance" in result.error
    assert not Candle.objects.exists()
